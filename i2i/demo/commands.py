"""The ``i2i demo`` command: a thin call into :mod:`i2i.demo`.

>>> from i2i.plugins import make_plugin_manager
>>> from i2i.cli import build_cli
>>> "demo" in build_cli(make_plugin_manager(load_entrypoints=False)).commands
True
"""

from __future__ import annotations

from pathlib import Path

import click

from i2i import hookimpl
from i2i.inference.commands import direction_option
from i2i.inference.options import PRECISIONS


@click.command("demo")
@click.option(
    "--checkpoint",
    "-c",
    "checkpoints",
    required=True,
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="A checkpoint or run folder; repeat it to compare models on the same drawing.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback lets other machines use the demo.",
)
@click.option(
    "--port",
    default=0,
    type=click.IntRange(0, 65535),
    help="Port to listen on. Default: a free one.",
)
@direction_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="auto",
    show_default=True,
    help="As for i2i translate: auto is bf16 autocast on GPUs that support it and on CPUs "
    "where it runs natively and faster (see `i2i doctor`), fp32 otherwise.",
)
@click.option(
    "--max-mb",
    default=16.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Largest upload, in MiB.",
)
@click.option(
    "--max-pixels",
    default=2048 * 2048,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest image, in pixels (width x height).",
)
@click.option(
    "--examples",
    default=4,
    show_default=True,
    type=click.IntRange(min=0),
    help="Example inputs offered per model, from the validation split of its data.",
)
@click.option("--log", is_flag=True, help="Print every request to stderr.")
@click.pass_context
def demo_cmd(
    ctx: click.Context,
    checkpoints: tuple[Path, ...],
    host: str,
    port: int,
    direction: str | None,
    device: str,
    precision: str,
    max_mb: float,
    max_pixels: int,
    examples: int,
    log: bool,
) -> None:
    """Draw or upload an input in the browser and see the model translate it.

    Serves a page at 127.0.0.1 on a free port (prints the address) until Ctrl-C: a canvas that
    draws what the task takes (label classes, a pen, a gray brush, an eraser that cuts holes),
    the translation beside it after each stroke, the test mode and dropout seed, a choice of
    the loaded models and downloads of both images.
    """
    from i2i.cli import app
    from i2i.data import DataError
    from i2i.demo.models import load_models
    from i2i.demo.server import Limits, make_server
    from i2i.engine.checkpoint import CheckpointError
    from i2i.engine.devices import tune_cpu_process

    tune_cpu_process()
    try:
        models = load_models(
            checkpoints,
            catalog=app(ctx).catalog,
            device=device,
            precision=precision,
            direction=direction,
            examples=examples,
        )
    except (CheckpointError, DataError) as exc:
        raise click.ClickException(str(exc)) from exc
    limits = Limits(max_bytes=int(max_mb * 2**20), max_pixels=max_pixels)
    try:
        server = make_server(models, host=host, port=port, limits=limits, log=log)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    for model in models:
        tr = model.translator
        click.echo(
            f"{model.name}: task {tr.task_name}, {tr.config.get('generator', '?')}, "
            f"{tr.mode} mode, {tr.device} {tr.precision}; {model.examples_note}"
        )
    click.echo(f"i2i demo at {server.url} (Ctrl-C stops)", nl=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.server_close()


@hookimpl
def i2i_register_commands(cli: click.Group) -> None:
    """Add ``demo``."""
    cli.add_command(demo_cmd)
