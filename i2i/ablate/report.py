"""A study's summary: mean and spread over seeds, as Markdown, JSON and an HTML page.

The page shows the table, one bar plot per metric (inline SVG, error bars = standard deviation
over seeds) and the same validation inputs through every variant side by side, using the
thumbnails of each run's ``eval/`` report (relative links: the page opens from disk).

>>> stats([0.5, 0.7])
{'mean': 0.6, 'std': 0.1414, 'n': 2}
"""

from __future__ import annotations

import html
import json
import math
import statistics
import urllib.parse
from pathlib import Path
from typing import Any

from i2i.ablate.run import EVAL_DIR, Job, Settings, finished_evals, plan_jobs
from i2i.ablate.studies import PAPER_CLAIMS, PAPER_TABLE1, variants
from i2i.config import ConfigError
from i2i.eval.report import LOADED_SCRIPT

#: Table columns: (metric key, header, format).
COLUMNS = (
    ("seg_pixel_acc", "FCN per-pixel acc.", "{:.3f}"),
    ("seg_class_acc", "FCN per-class acc.", "{:.3f}"),
    ("seg_class_iou", "FCN class IoU", "{:.3f}"),
    ("l1", "L1", "{:.4f}"),
    ("psnr", "PSNR dB", "{:.2f}"),
    ("ssim", "SSIM", "{:.3f}"),
    ("hist_L", "hist. ∩ L", "{:.3f}"),
    ("hist_a", "hist. ∩ a", "{:.3f}"),
    ("hist_b", "hist. ∩ b", "{:.3f}"),
    ("sharpness", "sharpness", "{:.3f}"),
)
PLOTTED = ("seg_pixel_acc", "seg_class_iou", "l1", "sharpness")


def stats(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one value) and count, rounded to 4 places."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(statistics.fmean(values), 4), "std": round(std, 4), "n": len(values)}


def summarise_study(
    study: str,
    out: Path,
    settings: Settings,
    *,
    seeds: int,
    ground_truth: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Whatever runs of ``study`` under ``out`` have an evaluation, summarised per variant."""
    evals = finished_evals(study, out, seeds)
    rows = []
    for variant in variants(study):
        records = evals.get(variant.key, [])
        label = variant.label(study)
        keys = {k for r in records for k in r["metrics"]}
        metrics = {k: stats([r["metrics"].get(k) for r in records]) for k in sorted(keys)}
        paper = PAPER_TABLE1.get(label) if study == "objective" else None
        rows.append(
            {
                "key": variant.key,
                "label": label,
                "runs": len(records),
                "seeds": sorted(r["source"]["seed"] for r in records),
                "steps": sorted({r["source"]["step"] for r in records}),
                "metrics": metrics,
                "paper_fcn": list(paper) if paper else None,
            }
        )
    total = len(plan_jobs(study, seeds=seeds))
    return {
        "study": study,
        "settings": {**settings.__dict__, "seeds": seeds},
        "finished_runs": sum(r["runs"] for r in rows),
        "planned_runs": total,
        "rows": rows,
        "ground_truth": ground_truth,
        "paper_ground_truth": list(PAPER_TABLE1["Ground truth"]) if study == "objective" else None,
        "paper": PAPER_CLAIMS.get(study),
    }


def _cell(stat: dict[str, Any] | None, fmt: str, spread: bool) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    text = fmt.format(stat["mean"])
    if spread and stat["n"] > 1:
        text += " ± " + fmt.format(stat["std"])
    return text


def markdown_table(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table (mean ± std over seeds), paper numbers beside."""
    columns = [c for c in COLUMNS if any(c[0] in r["metrics"] for r in summary["rows"])]
    with_paper = summary["study"] == "objective"
    head = ["variant", "runs", *(c[1] for c in columns)]
    if with_paper:
        head.append("paper (Cityscapes) FCN acc. / class acc. / IoU")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    gt = summary.get("ground_truth")
    if gt:
        cells = ["Ground truth (real photos)", ""]
        for key, _, fmt in columns:
            value = gt.get(key)
            cells.append(fmt.format(value) if isinstance(value, int | float) else "")
        if with_paper:
            cells.append(" / ".join(f"{v:.2f}" for v in summary["paper_ground_truth"]))
        lines.append("| " + " | ".join(cells) + " |")
    for row in summary["rows"]:
        cells = [row["label"], str(row["runs"])]
        cells += [_cell(row["metrics"].get(k), fmt, True) for k, _, fmt in columns]
        if with_paper:
            paper = row["paper_fcn"]
            cells.append(" / ".join(f"{v:.2f}" for v in paper) if paper else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _bars(summary: dict[str, Any], key: str, title: str) -> str:
    rows = [r for r in summary["rows"] if (r["metrics"].get(key) or {}).get("mean") is not None]
    if not rows:
        return ""
    tops = [r["metrics"][key]["mean"] + r["metrics"][key]["std"] for r in rows]
    top = max(max(tops), 1e-9)
    width, bar, gap, height = 150 + 44 * len(rows), 28, 16, 160
    parts = [
        f'<svg class="plot" width="{width}" height="{height + 60}" role="img" '
        f'aria-label="{html.escape(title)}"><text x="4" y="14">{html.escape(title)}</text>'
    ]
    for i, row in enumerate(rows):
        s = row["metrics"][key]
        x = 40 + i * (bar + gap)
        h = height * s["mean"] / top
        y = 20 + height - h
        err = height * s["std"] / top
        parts.append(
            f'<rect x="{x}" y="{y:.1f}" width="{bar}" height="{h:.1f}" fill="#4a7fb5">'
            f"<title>{html.escape(row['label'])}: {s['mean']}</title></rect>"
        )
        if err > 0:
            parts.append(
                f'<line x1="{x + bar / 2}" x2="{x + bar / 2}" y1="{y - err:.1f}" '
                f'y2="{y + err:.1f}" stroke="black"/>'
            )
        parts.append(
            f'<text x="{x}" y="{height + 34}" font-size="10" transform="rotate(20 {x} '
            f'{height + 34})">{html.escape(row["label"])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def html_page(summary: dict[str, Any], out: Path, page: Path, *, samples: int = 4) -> str:
    """The study page: settings, table, plots, and sample images of every variant side by side."""
    esc = html.escape
    table = markdown_table(summary).splitlines()
    head = [c.strip() for c in table[0].strip("|").split("|")]
    body_rows = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    thead = "".join(f"<th>{esc(c)}</th>" for c in head)
    tbody = "".join(
        "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in body_rows
    )
    plots = "".join(_bars(summary, key, header) for key, header, _ in COLUMNS if key in PLOTTED)
    # sample images: the first seed's eval thumbnails of each variant, same validation images
    columns: list[tuple[str, list[dict[str, Any]]]] = []
    for row in summary["rows"]:
        if not row["seeds"]:
            continue
        job = Job(
            next(v for v in variants(summary["study"]) if v.key == row["key"]), row["seeds"][0]
        )
        report = job.folder(out) / EVAL_DIR
        record = json.loads((report / "metrics.json").read_text())
        images = [
            {k: report / rel for k, rel in item["images"].items()} for item in record["images"]
        ]
        columns.append((row["label"], images[:samples]))
    grid = ""
    if columns:
        n = min(len(images) for _, images in columns)

        def img(path: Path, alt: str) -> str:
            rel = Path(_relative(path, page.parent)).as_posix()
            return f'<td><img src="{esc(urllib.parse.quote(rel))}" alt="{esc(alt)}"></td>'

        header = "<th>input</th>" + "".join(f"<th>{esc(label)}</th>" for label, _ in columns)
        header += "<th>target</th>"
        lines = []
        for i in range(n):
            first = columns[0][1][i]
            cells = img(first["input"], "input") if "input" in first else "<td></td>"
            cells += "".join(img(images[i]["output"], label) for label, images in columns)
            cells += img(first["target"], "target")
            lines.append(f"<tr>{cells}</tr>")
        grid = f"<table class='grid'><tr>{header}</tr>{''.join(lines)}</table>"
    settings = summary["settings"]
    listed = "".join(f"<li>{esc(str(k))}: {esc(str(v))}</li>" for k, v in settings.items())
    paper = f"<p>Paper: {esc(summary['paper'])}</p>" if summary.get("paper") else ""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>i2i ablate {esc(summary['study'])}</title><style>"
        "body{font-family:sans-serif;margin:1em} table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}"
        ".grid img{width:128px;height:128px;display:block} .plot{margin:0 1em 1em 0}"
        "</style></head><body>\n"
        f"<h1>Study: {esc(summary['study'])}</h1>\n"
        f"<p>{summary['finished_runs']} of {summary['planned_runs']} runs finished.</p>"
        f"<ul>{listed}</ul>{paper}\n"
        f"<h2>Scores (mean ± std over seeds)</h2>\n<table id='scores'><tr>{thead}</tr>"
        f"{tbody}</table>\n<h2>Plots</h2>\n<div>{plots}</div>\n"
        f"<h2>The same validation inputs through every variant</h2>\n{grid}\n"
        f"{LOADED_SCRIPT}</body></html>\n"
    )


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path.resolve(), start.resolve())


def write_summary(summary: dict[str, Any], out: Path, *, samples: int = 4) -> list[Path]:
    """Write ``OUT/<study>.json``, ``.md`` and ``.html`` (each atomically); their paths."""
    from i2i.engine.checkpoint import write_json_atomic

    study = summary["study"]
    json_path, md_path, html_path = (out / f"{study}{ext}" for ext in (".json", ".md", ".html"))
    for path, mark in (
        (json_path, None),
        (md_path, f"# Study: {study}"),
        (html_path, f"<title>i2i ablate {study}</title>"),
    ):  # a report of this study is rewritten; any other file of that name is the user's
        if path.exists() and not _written_for(path, study, mark):
            raise ConfigError(
                f"{path} exists and is not a report i2i ablate wrote for study {study!r}; "
                "move it, or pick another --out"
            )
    write_json_atomic(json_path, summary)
    for path, text in (
        (md_path, _markdown_page(summary)),
        (html_path, html_page(summary, out, html_path, samples=samples)),
    ):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return [json_path, md_path, html_path]


def _written_for(path: Path, study: str, mark: str | None) -> bool:
    """Whether ``path`` is a report of ``study``: ``mark`` in its first 4 KiB, or for the JSON
    summary (``mark`` None), its ``study`` field."""
    try:
        if mark is None:
            record = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(record, dict) and record.get("study") == study
        with open(path, "rb") as f:
            return mark.encode() in f.read(4096)
    except (OSError, ValueError):
        return False


def _markdown_page(summary: dict[str, Any]) -> str:
    s = summary["settings"]
    lines = [
        f"# Study: {summary['study']}",
        "",
        f"{summary['finished_runs']} of {summary['planned_runs']} runs finished; "
        f"task {s['task']}, {s['steps']} steps, {s['crop_size']} px crops, ngf {s['ngf']}, "
        f"{s['seeds']} seed(s); scores on "
        + (f"the first {s['eval_limit']}" if s.get("eval_limit") else "all")
        + " validation images (mean ± std over seeds).",
        "",
        markdown_table(summary),
    ]
    if summary.get("paper"):
        lines += [f"Paper: {summary['paper']}", ""]
    return "\n".join(lines)
