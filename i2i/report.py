"""``i2i report RUN_DIR``: plots of a training run and its latest sample grids, as an HTML page.

Reads ``metrics.jsonl`` and ``samples/`` of a run folder and writes, by default into
``RUN_DIR/report/``: one PNG plot per group of curves (losses, learning rates, validation
metrics, speed), copies of the latest sample grids and ``index.html`` that shows them. The page
uses relative paths only, so it opens from disk; like the eval page it marks itself once every
image has loaded (``body[data-images-loaded]``).

What is replaced: the default folder ``RUN_DIR/report/`` is i2i's own and is rewritten on every
call. In another folder (``out_dir``) a file the report would write that exists already is
refused, naming it, before anything is written, unless the report there before listed it as its
own (``index.html`` records the files it wrote) or ``overwrite=True``. Files an earlier report
listed that the new one does not write (older sample grids) are removed. Sample grids that are
symbolic links, not plain files, or lie outside the run folder are skipped with a note.

>>> import json, tempfile
>>> from pathlib import Path
>>> run = Path(tempfile.mkdtemp())
>>> rows = [{"step": s, "kind": "train", "train/g_l1": 10.0 / s, "lr/generator": 2e-4}
...         for s in (1, 2, 3)]
>>> _ = (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
>>> page = write_run_report(run)
>>> page.name, sorted(p.name for p in (run / "report").glob("*.png"))
('index.html', ['learning_rates.png', 'losses.png'])
>>> write_run_report(run, run / "elsewhere") == run / "elsewhere" / "index.html"
True
>>> _ = (run / "mine").mkdir(), (run / "mine" / "losses.png").write_text("my plot")
>>> write_run_report(run, run / "mine")
Traceback (most recent call last):
...
i2i.report.ReportError: ... already exists and was not written by i2i report; ...
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import urllib.parse
from collections import defaultdict
from pathlib import Path
from typing import Any

import click

from i2i import hookimpl
from i2i.eval.report import LOADED_SCRIPT, out_folder_problem

REPORT_DIR = "report"
SAMPLE_GRIDS = 3  # the latest this many sample grids are shown

#: Plot groups: file stem, title, the metric-name prefixes that go in it, log scale.
GROUPS: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("losses", "Training losses", ("train/",), True),
    ("learning_rates", "Learning rates", ("lr/",), False),
    ("validation", "Validation metrics", ("val/",), False),
    ("speed", "Throughput", ("speed/",), False),
)
_SKIP = {"val/images"}
_REPORT_NAME = re.compile(
    rf"^(?:index\.html|(?:{'|'.join(g[0] for g in GROUPS)})\.png|sample_[^/\\]+\.png)$"
)
_MANIFEST = re.compile(r'<script type="application/json" id="i2i-report-files">(.*?)</script>')


class ReportError(Exception):
    """The run folder cannot be reported on (named in the message)."""


def read_series(metrics_file: Path) -> dict[str, list[tuple[int, float]]]:
    """``{metric name: [(step, value), ...]}`` from a ``metrics.jsonl`` file.

    Lines that are not JSON objects with a ``step`` are refused with the line number, since a
    report drawn from half a file would mislead.
    """
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    try:
        with open(metrics_file, "rb") as f:
            for number, raw in enumerate(f, 1):
                record = _record(metrics_file, number, raw)
                if record is None:
                    continue
                for key, value in record.items():
                    if "/" in key and key not in _SKIP and isinstance(value, (int, float)):
                        series[key].append((record["step"], float(value)))
    except OSError as exc:
        raise ReportError(f"Cannot read {metrics_file}: {exc.strerror or exc}") from exc
    return dict(series)


def _record(metrics_file: Path, number: int, raw: bytes) -> dict[str, Any] | None:
    """Line ``number`` of ``metrics.jsonl`` as a record with an integer step (None if blank)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportError(
            f"{metrics_file}, line {number}: not UTF-8 text "
            f"(byte {raw[exc.start]:#04x} at column {exc.start + 1})"
        ) from exc
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{metrics_file}, line {number}: not JSON ({exc.msg})") from exc
    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
        raise ReportError(f"{metrics_file}, line {number}: no integer 'step'")
    return record


def plot_group(
    series: dict[str, list[tuple[int, float]]], title: str, path: Path, *, log: bool
) -> Path:
    """One PNG with a line per series against the step."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    positive = True
    for name, points in sorted(series.items()):
        steps, values = zip(*sorted(points), strict=True)
        positive &= min(values) > 0
        ax.plot(steps, values, marker="o" if len(points) < 30 else None, ms=3, label=name)
    if log and positive:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def write_run_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    overwrite: bool = False,
    notes: list[str] | None = None,
) -> Path:
    """Write the report of ``run_dir`` (plots, latest samples, ``index.html``); return the page.

    ``out_dir`` defaults to ``RUN_DIR/report/``, which is rewritten freely; in another folder an
    existing file the report did not write before is refused unless ``overwrite``. Why sample
    grids were skipped is appended to ``notes``.
    """
    from i2i.data.io import atomic_path

    run_dir = Path(run_dir)
    metrics_file = run_dir / "metrics.jsonl"
    if not metrics_file.is_file():
        raise ReportError(f"{run_dir} is not a run folder: {metrics_file.name} is missing")
    out = Path(out_dir) if out_dir is not None else run_dir / REPORT_DIR
    problem = out_folder_problem(out)
    if problem is not None:
        raise ReportError(problem)
    series = read_series(metrics_file)
    plots: list[tuple[str, str, dict]] = []
    for stem, title, prefixes, log in GROUPS:
        chosen = {k: v for k, v in series.items() if k.startswith(prefixes)}
        if chosen:
            plots.append((f"{stem}.png", title, {"series": chosen, "log": log}))
    samples = _sample_grids(run_dir, notes if notes is not None else [])
    copied = [f"sample_{grid.name}" for grid in samples]
    files = [name for name, _, _ in plots] + copied + ["index.html"]
    own = _own_files(out)
    _refuse_existing(out, files, own, free=overwrite or _is_default(run_dir, out))
    out.mkdir(parents=True, exist_ok=True)
    for name, title, args in plots:
        with atomic_path(out / name) as tmp:
            plot_group(args["series"], title, tmp, log=args["log"])
    for grid, name in zip(samples, copied, strict=True):
        with atomic_path(out / name) as tmp:
            _copy_plain_file(grid, tmp)
    page = out / "index.html"
    text = _html(run_dir, series, [(n, t) for n, t, _ in plots], copied, files)
    with atomic_path(page) as tmp:
        tmp.write_text(text, encoding="utf-8")
    for stale in own - set(files):  # listed by the earlier report, not written now
        (out / stale).unlink(missing_ok=True)
    return page


def _is_default(run_dir: Path, out: Path) -> bool:
    return out.resolve() == (run_dir / REPORT_DIR).resolve()


def _own_files(out: Path) -> set[str]:
    """The files the report in ``out`` wrote, as its ``index.html`` lists them (plain names)."""
    try:
        found = _MANIFEST.search((out / "index.html").read_text(encoding="utf-8"))
        listed = json.loads(found.group(1)) if found else []
    except (OSError, UnicodeDecodeError, ValueError):
        return set()
    if not isinstance(listed, list):
        return set()
    return {n for n in listed if isinstance(n, str) and _REPORT_NAME.match(n)}


def _refuse_existing(out: Path, files: list[str], own: set[str], *, free: bool) -> None:
    if free:
        return
    for name in files:
        path = out / name
        if (path.exists() or path.is_symlink()) and name not in own:
            raise ReportError(
                f"{path} already exists and was not written by i2i report; nothing was written: "
                "pass --overwrite to replace it or choose another --out"
            )


def _sample_grids(run_dir: Path, notes: list[str]) -> list[Path]:
    """The latest sample grids that are plain files inside the run folder (others noted)."""
    root = run_dir.resolve()
    found = []
    for grid in sorted((run_dir / "samples").glob("*.png")):
        if grid.is_symlink():
            why = "a symbolic link"
        elif not grid.is_file():
            why = "not a plain file"
        elif not grid.resolve().is_relative_to(root):
            why = f"outside the run folder {run_dir}"
        else:
            found.append(grid)
            continue
        notes.append(f"skipped sample {grid}: {why}")
    return found[-SAMPLE_GRIDS:]


def _copy_plain_file(src: Path, dst: Path) -> None:
    """Copy ``src`` into ``dst``, refusing a ``src`` that became a symbolic link meanwhile."""
    fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)


def _latest(series: dict[str, list[tuple[int, float]]]) -> dict[str, tuple[int, float]]:
    return {k: max(v) for k, v in series.items() if k.startswith("val/")}


def _html(
    run_dir: Path,
    series: dict[str, list[tuple[int, float]]],
    plots: list[tuple[str, str]],
    samples: list[str],
    files: list[str],
) -> str:
    esc = html.escape
    manifest = json.dumps(files).replace("<", "\\u003c")
    steps = [s for points in series.values() for s, _ in points]
    rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{v:.4g}</td><td>{s}</td></tr>"
        for k, (s, v) in sorted(_latest(series).items())
    )
    figures = "".join(
        f'<figure><img src="{esc(urllib.parse.quote(f))}" alt="{esc(t)}">'
        f"<figcaption>{esc(t)}</figcaption></figure>"
        for f, t in plots
    )
    grids = "".join(
        f'<figure><img src="{esc(urllib.parse.quote(f))}" alt="{esc(f)}">'
        f"<figcaption>{esc(f.removeprefix('sample_'))} (input | output | target)</figcaption>"
        "</figure>"
        for f in samples
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>i2i run {esc(run_dir.name)}</title>"
        "<style>body{font-family:sans-serif;margin:1em}figure{display:inline-block;margin:.5em}"
        "td,th{border:1px solid #ccc;padding:3px 6px}table{border-collapse:collapse}</style>"
        f"</head>\n<body>\n<h1>i2i run {esc(run_dir.name)}</h1>\n"
        f"<p>{esc(str(run_dir.resolve()))}: up to step {max(steps, default=0)}</p>\n"
        + (
            f"<h2>Latest validation</h2><table><tr><th>metric</th><th>value</th><th>step</th>"
            f"</tr>{rows}</table>\n"
            if rows
            else ""
        )
        + f"<h2>Curves</h2>\n{figures}\n"
        + (f"<h2>Latest samples</h2>\n{grids}\n" if grids else "")
        + f"{LOADED_SCRIPT}"
        + f'<script type="application/json" id="i2i-report-files">{manifest}</script>\n'
        + "</body></html>\n"
    )


@click.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder [RUN_DIR/report]. RUN_DIR/report is i2i's own and rewritten on every call; in "
    "another folder an existing file the report did not write there before is refused.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace existing files in --out that an earlier report did not write.",
)
def report_cmd(run_dir: str, out: str | None, overwrite: bool) -> None:
    """Plot a training run's losses, learning rates and validation metrics as an HTML page.

    Sample grids in RUN_DIR/samples that are symbolic links or lie outside RUN_DIR are
    skipped with a note.
    """
    notes: list[str] = []
    try:
        page = write_run_report(run_dir, out, overwrite=overwrite, notes=notes)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(str(page))


@hookimpl
def i2i_register_commands(cli: Any) -> None:
    """Add ``i2i report``."""
    cli.add_command(report_cmd)
