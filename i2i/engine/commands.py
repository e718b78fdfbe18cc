"""``i2i run``: train a model. A thin layer: flags -> RunConfig -> :func:`i2i.engine.train`.

Registered as a built-in plugin through ``i2i_register_commands``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import click

from i2i import hookimpl
from i2i.cli import ComponentName, app
from i2i.config import ConfigError, RunConfig, option_fields, parse_options, resolve_config
from i2i.registry import UnknownComponentError


def _click_option(f: dataclasses.Field) -> Callable[[Any], Any]:
    """The ``i2i run`` option of one RunConfig field, from its declaration (None: not given)."""
    meta, name = f.metadata, f.name.replace("_", "-")
    if f.type in ("bool", "bool | None"):
        if meta["flag"]:  # a plain flag: on when given
            return click.option(meta["flag"], f.name, is_flag=True, default=None, help=meta["help"])
        return click.option(f"--{name}/--no-{name}", f.name, default=None, help=meta["help"])
    if meta["choices"]:
        kind: Any = click.Choice(meta["choices"])
    elif meta["minimum"] is not None:
        kind = click.IntRange(min=meta["minimum"])
    else:
        kind = int if f.type.startswith("int") else str
    return click.option(meta["flag"] or f"--{name}", f.name, type=kind, help=meta["help"])


def generated_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add an option for every RunConfig field declared with ``cli="generated"``."""
    for f in reversed(option_fields(cli="generated")):
        fn = _click_option(f)(fn)
    return fn


def _help(name: str) -> str:
    """The help of RunConfig field ``name``, as declared."""
    return next(f.metadata["help"] for f in dataclasses.fields(RunConfig) if f.name == name)


@click.command("run")
@click.option("--task", type=ComponentName("tasks"), help=_help("task"))
@click.option("--recipe", type=ComponentName("recipes"), help=_help("recipe"))
@click.option(
    "--recipe-opt",
    multiple=True,
    metavar="KEY=VALUE",
    help="Recipe option, e.g. lambda_x=5 (repeatable; `i2i info RECIPE` lists them).",
)
@click.option("--init-from", type=click.Path(exists=True), help=_help("init_from"))
@click.option("--gen", "generator", type=ComponentName("generators"), help=_help("generator"))
@click.option(
    "--disc", "discriminator", type=ComponentName("discriminators"), help=_help("discriminator")
)
@click.option("--data", type=click.Path(file_okay=False), help=_help("data"))
@click.option("--out", type=click.Path(), help=_help("out"))
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help=_help("lr"))
@click.option("--beta1", type=click.FloatRange(0, 1, max_open=True), help=_help("beta1"))
@click.option("--beta2", type=click.FloatRange(0, 1, max_open=True), help=_help("beta2"))
@click.option("--lambda-l1", type=click.FloatRange(min=0), help="Weight of the L1 term [100].")
@click.option(
    "--objective", help='Weighted loss terms, e.g. "gan=1,l1=100" (see `i2i list losses`).'
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
@generated_options
@click.option(
    "--resume", type=click.Path(exists=True), help="Continue the run (or checkpoint) at this path."
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Reuse the --out of an earlier i2i run, replacing only its i2i outputs (never a "
    "folder that is not an i2i run); with --resume of an older checkpoint, delete the later ones.",
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
    from i2i.engine.distributed import dist_info_from_env

    if dist_info_from_env().is_main:  # under torchrun, once (rank 0), not once per process
        click.echo(str(run_dir))


def _os_error_message(exc: OSError, out: str | None) -> str:
    """A one-line account of a failed file operation during a run, naming the file."""
    from pathlib import Path

    from i2i.cli import describe_os_error
    from i2i.engine.checkpoint import list_checkpoints
    from i2i.engine.runner import is_run_folder

    if out is None:
        then = ""
    elif list_checkpoints(out):
        then = f"; continue from its latest checkpoint with `i2i run --resume {out}`"
    elif is_run_folder(Path(out)):
        then = f"; it saved no checkpoint yet: start it again with `--out {out} --overwrite`"
    else:
        then = ""
    return f"Training stopped: {describe_os_error(exc)}{then}"


def _flags(opts: dict[str, Any]) -> dict[str, Any]:
    """Click options -> ``resolve_config`` keywords (``None`` = not given)."""
    flags = dict(opts)
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
