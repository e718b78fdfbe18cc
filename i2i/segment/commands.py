"""``i2i segmenter train`` and ``i2i segmenter score``: the FCN-score's segmenter.

>>> from i2i.plugins import make_plugin_manager
>>> from i2i.cli import build_cli
>>> sorted(build_cli(make_plugin_manager(load_entrypoints=False)).commands["segmenter"].commands)
['score', 'train']
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from i2i import hookimpl
from i2i.cli import ComponentName, app

_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


def _table(summary: dict) -> str:
    keys = ("seg_pixel_acc", "seg_class_acc", "seg_class_iou")
    return "\n".join(
        f"{k:<14} {'n/a' if math.isnan(summary[k]) else f'{summary[k]:.4f}'}" for k in keys
    )


@click.group("segmenter")
def segmenter_group() -> None:
    """Train and score the semantic segmenter behind the FCN-score (seg_score)."""


@segmenter_group.command("train")
@click.option("--task", required=True, type=ComponentName("tasks"), help="A label-map task.")
@click.option("--data", type=_DIR, help="Data folder with train/ (and val/) [task default].")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Segmenter folder.")
@click.option("--steps", default=1500, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--size",
    default=128,
    show_default=True,
    type=click.IntRange(min=32),
    help="Working size: photos are segmented at SIZE x SIZE.",
)
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=2e-3, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option(
    "--encoder", default="resnet18", show_default=True, help="timm encoder (random init)."
)
@click.option("--ngf", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--device", default="cpu", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace a segmenter already in --out.")
@click.option("--progress/--no-progress", default=True)
@click.pass_context
def train_cmd(
    ctx: click.Context,
    task: str,
    data: Path | None,
    out: Path,
    steps: int,
    size: int,
    batch_size: int,
    lr: float,
    encoder: str,
    ngf: int,
    seed: int,
    device: str,
    overwrite: bool,
    progress: bool,
) -> None:
    """Train a segmenter on a label-map task's training photos; score it on the real val photos.

    Writes segmenter.safetensors and segmenter.json (network, classes, training settings and
    the validation FCN-score: the "ground truth" row) into --out.
    """
    from i2i.data import DataError
    from i2i.engine.devices import tune_cpu_process
    from i2i.segment.model import CONFIG_FILE, WEIGHTS_FILE
    from i2i.segment.train import train_segmenter

    catalog = app(ctx).catalog
    entry = catalog.tasks.get(task)
    if out.exists() and not out.is_dir():
        raise click.ClickException(f"--out {out} is a file, not a folder")
    existing = [out / n for n in (CONFIG_FILE, WEIGHTS_FILE) if (out / n).exists()]
    if existing and not overwrite:
        raise click.ClickException(f"{existing[0]} already exists; pass --overwrite")
    tune_cpu_process()
    try:
        seg = train_segmenter(
            entry.obj,
            data,
            out,
            task_name=entry.name,
            steps=steps,
            size=size,
            batch_size=batch_size,
            lr=lr,
            encoder=encoder,
            ngf=ngf,
            seed=seed,
            device=device,
            progress=progress,
            echo=click.echo,
        )
    except (DataError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    val = seg.info.get("val")
    if val:
        click.echo(f"real {val['split']} photos ({val['num_images']}):")
        click.echo(_table(val))
    click.echo(f"wrote {out / WEIGHTS_FILE}, {out / CONFIG_FILE}")


@segmenter_group.command("score")
@click.argument("segmenter", type=_DIR)
@click.option("--data", type=_DIR, help="Data folder [the segmenter's task default].")
@click.option("--split", default="val", show_default=True)
@click.option(
    "--size", type=click.IntRange(min=32), help="Resize the photos to SIZE [the segmenter's]."
)
@click.option("--limit", type=click.IntRange(min=1), help="Score the first N images only.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@click.pass_context
def score_cmd(
    ctx: click.Context,
    segmenter: Path,
    data: Path | None,
    split: str,
    size: int | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """FCN-score of a segmenter on real photos (how far above chance it segments them)."""
    from i2i.data import DataError
    from i2i.segment.model import SegmenterError, load_segmenter
    from i2i.segment.train import score_real_photos

    catalog = app(ctx).catalog
    try:
        seg = load_segmenter(segmenter)
        if not seg.task or seg.task not in catalog.tasks:
            raise SegmenterError(f"{segmenter}: its task {seg.task!r} is not registered")
        task = catalog.tasks.get(seg.task).obj
        result = score_real_photos(seg, task, data, split, size=size or seg.size, limit=limit)
    except (SegmenterError, DataError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"real {split} photos ({result['num_images']}):")
        click.echo(_table(result))


@hookimpl
def i2i_register_commands(cli: click.Group) -> None:
    """Add ``segmenter train`` and ``segmenter score``."""
    cli.add_command(segmenter_group)
