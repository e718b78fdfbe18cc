"""``i2i ablate STUDY``: the paper's ablation tables at the scale you choose.

>>> from i2i.plugins import make_plugin_manager
>>> from i2i.cli import build_cli
>>> "ablate" in build_cli(make_plugin_manager(load_entrypoints=False)).commands
True
"""

from __future__ import annotations

from pathlib import Path

import click

from i2i import hookimpl
from i2i.ablate.studies import STUDY_NAMES
from i2i.cli import ComponentName, app

_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command("ablate")
@click.argument("study", type=click.Choice(STUDY_NAMES))
@click.option("--task", required=True, type=ComponentName("tasks"))
@click.option("--data", type=_DIR, help="Data folder [the task's built-in data].")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--steps", default=2000, show_default=True, type=click.IntRange(min=1))
@click.option("--crop-size", default=256, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--ngf",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Width of generator and discriminator (the paper: 64).",
)
@click.option("--batch-size", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--shard",
    default="1/1",
    show_default=True,
    help="Train and score every N-th job from the K-th.",
)
@click.option(
    "--segmenter",
    type=_DIR,
    help="Segmenter folder (i2i segmenter train): adds the FCN-score and its ground-truth row.",
)
@click.option("--eval-limit", type=click.IntRange(min=1), help="Score the first N val images.")
@click.option("--samples", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--no-train",
    is_flag=True,
    help="Train nothing: evaluate finished runs (if stale) and summarise.",
)
@click.pass_context
def ablate_cmd(
    ctx: click.Context,
    study: str,
    task: str,
    data: Path | None,
    out: Path,
    steps: int,
    crop_size: int,
    ngf: int,
    batch_size: int,
    seeds: int,
    shard: str,
    segmenter: Path | None,
    eval_limit: int | None,
    samples: int,
    device: str,
    no_train: bool,
) -> None:
    """Train every variant of a study of the paper (objective: Table 1, generator: Table 2,
    discriminator: Table 3; all: every one), evaluate each and write the table to OUT,
    named after the study (OUT/objective.md, .json and .html). Rerunning skips finished runs
    and resumes unfinished ones. With --shard only that shard's runs are trained and scored
    (with --segmenter too); the table covers every run scored so far."""
    from i2i.ablate import Settings, markdown_table, parse_shard, run_study
    from i2i.config import ConfigError
    from i2i.data import DataError
    from i2i.engine.checkpoint import CheckpointError
    from i2i.engine.devices import tune_cpu_process
    from i2i.eval.runner import EvalConfigError
    from i2i.segment import SegmenterError

    try:
        shard_kn = parse_shard(shard)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--shard") from exc
    catalog = app(ctx).catalog
    settings = Settings(
        task=catalog.tasks.get(task).name,
        data=str(data) if data else None,
        steps=steps,
        crop_size=crop_size,
        ngf=ngf,
        batch_size=batch_size,
        eval_limit=eval_limit,
        device=device,
    )
    tune_cpu_process()
    try:
        summary = run_study(
            study,
            settings,
            out,
            seeds=seeds,
            shard=shard_kn,
            segmenter=segmenter,
            train=not no_train,
            samples=samples,
            catalog=catalog,
            echo=click.echo,
        )
    except (ConfigError, DataError, CheckpointError, EvalConfigError, SegmenterError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(markdown_table(summary))
    click.echo(f"wrote {out / study}.md, .json, .html")


@hookimpl
def i2i_register_commands(cli: click.Group) -> None:
    """Add ``ablate``."""
    cli.add_command(ablate_cmd)
