"""``i2i report RUN_DIR``: plots of a training run and its latest sample grids, as an HTML page.

Reads ``metrics.jsonl`` and ``samples/`` of a run folder and writes, by default into
``RUN_DIR/report/``: one PNG plot per group of curves (losses, learning rates, validation
metrics, speed), copies of the latest sample grids and ``index.html`` that shows them. The page
uses relative paths only, so it opens from disk; like the eval page it marks itself once every
image has loaded (``body[data-images-loaded]``).

>>> import json, tempfile
>>> from pathlib import Path
>>> run = Path(tempfile.mkdtemp())
>>> rows = [{"step": s, "kind": "train", "train/g_l1": 10.0 / s, "lr/generator": 2e-4}
...         for s in (1, 2, 3)]
>>> _ = (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
>>> page = write_run_report(run)
>>> page.name, sorted(p.name for p in (run / "report").glob("*.png"))
('index.html', ['learning_rates.png', 'losses.png'])
"""

from __future__ import annotations

import html
import shutil
import urllib.parse
from collections import defaultdict
from pathlib import Path
from typing import Any

import click

from i2i import hookimpl
from i2i.eval.report import LOADED_SCRIPT

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


class ReportError(Exception):
    """The run folder cannot be reported on (named in the message)."""


def read_series(metrics_file: Path) -> dict[str, list[tuple[int, float]]]:
    """``{metric name: [(step, value), ...]}`` from a ``metrics.jsonl`` file.

    Lines that are not JSON objects with a ``step`` are refused with the line number, since a
    report drawn from half a file would mislead.
    """
    import json

    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with open(metrics_file, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReportError(f"{metrics_file}, line {number}: not JSON ({exc.msg})") from exc
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ReportError(f"{metrics_file}, line {number}: no integer 'step'")
            for key, value in record.items():
                if "/" in key and key not in _SKIP and isinstance(value, (int, float)):
                    series[key].append((record["step"], float(value)))
    return dict(series)


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
    fig.savefig(path)
    plt.close(fig)
    return path


def write_run_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write the report of ``run_dir`` (plots, latest samples, ``index.html``); return the page."""
    run_dir = Path(run_dir)
    metrics_file = run_dir / "metrics.jsonl"
    if not metrics_file.is_file():
        raise ReportError(f"{run_dir} is not a run folder: {metrics_file.name} is missing")
    out = Path(out_dir) if out_dir is not None else run_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    series = read_series(metrics_file)
    plots: list[tuple[str, str]] = []
    for stem, title, prefixes, log in GROUPS:
        chosen = {k: v for k, v in series.items() if k.startswith(prefixes)}
        if chosen:
            plot_group(chosen, title, out / f"{stem}.png", log=log)
            plots.append((f"{stem}.png", title))
    samples = sorted((run_dir / "samples").glob("*.png"))[-SAMPLE_GRIDS:]
    copied = []
    for grid in samples:
        shutil.copyfile(grid, out / f"sample_{grid.name}")
        copied.append(f"sample_{grid.name}")
    page = out / "index.html"
    tmp = page.with_name(".index.html.tmp")
    tmp.write_text(_html(run_dir, series, plots, copied), encoding="utf-8")
    tmp.replace(page)
    return page


def _latest(series: dict[str, list[tuple[int, float]]]) -> dict[str, tuple[int, float]]:
    return {k: max(v) for k, v in series.items() if k.startswith("val/")}


def _html(
    run_dir: Path,
    series: dict[str, list[tuple[int, float]]],
    plots: list[tuple[str, str]],
    samples: list[str],
) -> str:
    esc = html.escape
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
        + f"{LOADED_SCRIPT}</body></html>\n"
    )


@click.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Folder [RUN_DIR/report].")
def report_cmd(run_dir: str, out: str | None) -> None:
    """Plot a training run's losses, learning rates and validation metrics as an HTML page."""
    try:
        page = write_run_report(run_dir, out)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(str(page))


@hookimpl
def i2i_register_commands(cli: Any) -> None:
    """Add ``i2i report``."""
    cli.add_command(report_cmd)
