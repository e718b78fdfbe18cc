"""``i2i run``: train a model. A thin layer: flags -> RunConfig -> :func:`i2i.engine.train`.

Registered as a built-in plugin through ``i2i_register_commands``.
"""

from __future__ import annotations

from typing import Any

import click

from i2i import hookimpl
from i2i.cli import ComponentName, app
from i2i.config import (
    DEVICES,
    NORMS,
    ON_BAD_IMAGE,
    ON_NONFINITE,
    PRECISIONS,
    PREPROCESS_MODES,
    TEST_MODES,
    ConfigError,
    parse_options,
    resolve_config,
)
from i2i.registry import UnknownComponentError
from i2i.task import DIRECTIONS


def _int(minimum: int = 0) -> click.IntRange:
    return click.IntRange(min=minimum)


@click.command("run")
@click.option("--task", type=ComponentName("tasks"), help="Task to train (see `i2i list tasks`).")
@click.option(
    "--recipe",
    type=ComponentName("recipes"),
    help="Training method, e.g. pix2pix or cyclegan (see `i2i list recipes`) [task default].",
)
@click.option(
    "--recipe-opt",
    multiple=True,
    metavar="KEY=VALUE",
    help="Recipe option, e.g. lambda_cycle=5 (repeatable; `i2i info RECIPE` lists them).",
)
@click.option(
    "--unpaired",
    is_flag=True,
    default=None,
    help="Draw the two sides of paired data independently (for recipes such as cyclegan).",
)
@click.option(
    "--init-from",
    type=click.Path(exists=True),
    help="Start the networks from this run's or checkpoint's weights (fine-tuning).",
)
@click.option(
    "--gen", "generator", type=ComponentName("generators"), help="Generator [task default]."
)
@click.option(
    "--disc",
    "discriminator",
    type=ComponentName("discriminators"),
    help="Discriminator [task default].",
)
@click.option(
    "--data", type=click.Path(file_okay=False), help="Data folder [the task's built-in data]."
)
@click.option("--out", type=click.Path(), help="Run folder [runs/<task>-<timestamp>].")
@click.option(
    "--direction",
    type=click.Choice(DIRECTIONS),
    help="Which side of an A|B pair is the input [task default].",
)
@click.option(
    "--epochs",
    type=_int(),
    help="Epochs at the constant learning rate [100; with --epochs alone there is no decay phase].",
)
@click.option(
    "--epochs-decay",
    type=_int(),
    help="Epochs of linear decay after them [100 when --epochs is not given, else 0].",
)
@click.option(
    "--max-steps",
    type=_int(1),
    help="Stop at this TOTAL step count (a resumed run counts earlier steps).",
)
@click.option("--batch-size", type=_int(1), help="Images per step (per process) [1].")
@click.option(
    "--load-size",
    type=_int(1),
    help="Resize to this before cropping [286, or crop size x 286/256].",
)
@click.option(
    "--crop-size",
    type=_int(1),
    help="Training crop size [256]; the task's default generator follows it (unet_128 at 128).",
)
@click.option(
    "--preprocess", type=click.Choice(PREPROCESS_MODES), help="Resize/crop mode [resize_and_crop]."
)
@click.option("--flip/--no-flip", default=None, help="Random horizontal flips [on].")
@click.option(
    "--norm", type=click.Choice(NORMS), help="Normalisation layers [batch, as the paper]."
)
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), help="Adam learning rate [2e-4]."
)
@click.option("--beta1", type=click.FloatRange(0, 1, max_open=True), help="Adam beta1 [0.5].")
@click.option("--lambda-l1", type=click.FloatRange(min=0), help="Weight of the L1 term [100].")
@click.option(
    "--objective", help='Weighted loss terms, e.g. "gan=1,l1=100" (see `i2i list losses`).'
)
@click.option("--seed", type=_int(), help="Random seed [0].")
@click.option("--device", type=click.Choice(DEVICES), help="Where to train [auto].")
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    help="auto: bf16 where supported, fp16 on older GPUs, else fp32 [auto].",
)
@click.option("--channels-last/--no-channels-last", default=None, help="NHWC memory format [off].")
@click.option(
    "--compile/--no-compile",
    "compile_",
    default=None,
    help="Wrap the networks with torch.compile [off].",
)
@click.option(
    "--test-mode",
    type=click.Choice(TEST_MODES),
    help="paper: dropout and batch stats at test time; eval: module.eval() [paper].",
)
@click.option(
    "--unconditional",
    is_flag=True,
    default=None,
    help="The discriminator sees the output alone, not input + output.",
)
@click.option(
    "--gen-opt",
    multiple=True,
    metavar="KEY=VALUE",
    help="Generator option, e.g. ngf=32 (repeatable).",
)
@click.option(
    "--disc-opt",
    multiple=True,
    metavar="KEY=VALUE",
    help="Discriminator option, e.g. ndf=32 (repeatable).",
)
@click.option("--num-workers", type=_int(), help="Data loading processes [2].")
@click.option("--val-every", type=_int(), help="Validate every N steps (0: every epoch) [0].")
@click.option(
    "--save-every", type=_int(), help="Also save a checkpoint every N steps (0: epochs only) [0]."
)
@click.option("--keep-last", type=_int(1), help="Checkpoints kept [3].")
@click.option(
    "--keep-every",
    type=_int(),
    help="Also keep the checkpoint ending every N-th epoch (0: none) [5].",
)
@click.option("--log-every", type=_int(1), help="Log losses every N steps [100].")
@click.option(
    "--on-bad-image",
    type=click.Choice(ON_BAD_IMAGE),
    help="A data file that cannot be read: error stops naming it; skip leaves it out, counts "
    "it and reports the count at the end [error].",
)
@click.option(
    "--on-nonfinite",
    type=click.Choice(ON_NONFINITE),
    help="A NaN or infinite loss: stop ends the run naming the step, keeping the last good "
    "checkpoint; skip drops that step's update and counts it [stop].",
)
@click.option(
    "--resume", type=click.Path(exists=True), help="Continue the run (or checkpoint) at this path."
)
@click.option(
    "--overwrite", is_flag=True, help="Reuse a non-empty --out, replacing only its i2i outputs."
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but the run folder.")
@click.pass_context
def run_cmd(ctx: click.Context, **opts: Any) -> None:
    """Train a model for a task with a recipe; prints the run folder when done.

    \b
      i2i run --task facades --data data/facades --out runs/f
      i2i run --recipe cyclegan --task facades --data data/facades --unpaired
      i2i run --resume runs/f --epochs 2
      torchrun --nproc-per-node 2 -m i2i run --task facades ...

    Ctrl-C or SIGTERM saves a checkpoint, then exits with 130 or 143. Bad data, a diverged run
    (NaN loss) or a full disk exit with 1 and a message naming the file or the step.
    """
    from i2i.data.io import DataError
    from i2i.engine.checkpoint import CheckpointError
    from i2i.engine.devices import tune_cpu_process
    from i2i.engine.loop import TrainingDiverged, TrainingInterrupted
    from i2i.engine.runner import resume_config, train

    catalog = app(ctx).catalog
    resume = opts.pop("resume")
    overwrite = opts.pop("overwrite")
    quiet = opts.pop("quiet")
    flags = _flags(opts)
    tune_cpu_process()
    try:
        if resume:
            cfg = resume_config(resume, catalog, **flags)
        else:
            task = flags.pop("task")
            if task is None:
                raise click.UsageError("Missing option '--task' (or --resume RUN_DIR).")
            cfg = resolve_config(catalog, task, **flags)
        run_dir = train(cfg, catalog=catalog, resume=resume, overwrite=overwrite, quiet=quiet)
    except TrainingInterrupted as exc:
        click.echo(str(exc), err=True)
        ctx.exit(exc.exit_code)
    except UnknownComponentError as exc:
        raise click.UsageError(str(exc)) from exc
    except (ConfigError, CheckpointError, DataError, TrainingDiverged) as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:  # e.g. the disk filled up while writing metrics or samples
        raise click.ClickException(_os_error_message(exc, opts.get("out") or resume)) from exc
    click.echo(str(run_dir))


def _os_error_message(exc: OSError, out: str | None) -> str:
    """A one-line account of a failed file operation during a run, naming the file."""
    import errno

    where = f" ({exc.filename})" if exc.filename else ""
    text = f"{exc.strerror or exc}{where}"
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        text = f"the disk is full: {text}"
    resume = f"; continue from its latest checkpoint with `i2i run --resume {out}`" if out else ""
    return f"Training stopped: {text}{resume}"


def _flags(opts: dict[str, Any]) -> dict[str, Any]:
    """Click options -> ``resolve_config`` keywords (``None`` = not given)."""
    flags = dict(opts)
    flags["compile"] = flags.pop("compile_")
    flags["conditional"] = False if flags.pop("unconditional") else None
    try:
        gen_opts, disc_opts = flags.pop("gen_opt"), flags.pop("disc_opt")
        recipe_opts = flags.pop("recipe_opt")
        flags["generator_kwargs"] = parse_options(gen_opts) if gen_opts else None
        flags["discriminator_kwargs"] = parse_options(disc_opts) if disc_opts else None
        flags["recipe_options"] = parse_options(recipe_opts) if recipe_opts else None
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from exc
    return flags


@hookimpl
def i2i_register_commands(cli: click.Group) -> None:
    """Add ``i2i run``."""
    cli.add_command(run_cmd)
