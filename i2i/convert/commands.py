"""The ``i2i convert`` command: a thin call into :func:`i2i.convert.convert_official`.

>>> from i2i.plugins import make_plugin_manager
>>> from i2i.cli import build_cli
>>> "convert" in build_cli(make_plugin_manager(load_entrypoints=False)).commands
True
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from i2i import hookimpl
from i2i.cli import ComponentName, app
from i2i.convert.flags import MODELS, NET_D, NET_G, NORMS
from i2i.task import DIRECTIONS

SOURCES = ("official",)


@click.command("convert")
@click.option(
    "--from",
    "source",
    type=click.Choice(SOURCES),
    required=True,
    help="Where the model comes from: official = the pytorch-CycleGAN-and-pix2pix code.",
)
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--checkpoints-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The official checkpoints/<experiment> folder (instead of FILES).",
)
@click.option("--epoch", default="latest", show_default=True, help="Which <epoch>_net_*.pth.")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="New run folder.")
@click.option(
    "--task", required=True, type=ComponentName("tasks"), help="i2i task (gives the channels)."
)
@click.option("--model", type=click.Choice(MODELS), default="pix2pix", show_default=True)
@click.option(
    "--netG",
    "net_g",
    type=click.Choice(NET_G),
    help="[pix2pix: unet_256, cycle_gan: resnet_9blocks]",
)
@click.option("--netD", "net_d", type=click.Choice(NET_D), default="basic", show_default=True)
@click.option(
    "--n-layers-D", "n_layers_d", type=click.IntRange(min=1), default=3, show_default=True
)
@click.option("--norm", type=click.Choice(NORMS), help="[pix2pix: batch, cycle_gan: instance]")
@click.option(
    "--no-dropout/--dropout",
    "no_dropout",
    default=None,
    help="Whether it trained without dropout [pix2pix: with, cycle_gan: without].",
)
@click.option("--ngf", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--ndf", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--direction", type=click.Choice(DIRECTIONS), default="AtoB", show_default=True)
@click.option("--lambda-A", "lambda_a", type=float, default=10.0, show_default=True)
@click.option("--lambda-B", "lambda_b", type=float, default=10.0, show_default=True)
@click.option(
    "--lambda-identity",
    type=float,
    help="cycle_gan: [0.5, or 0 when the task's sides differ in channels]",
)
@click.option("--pool-size", type=click.IntRange(min=0), default=50, show_default=True)
@click.pass_context
def convert_cmd(
    ctx: click.Context,
    source: str,
    files: tuple[Path, ...],
    checkpoints_dir: Path | None,
    epoch: str,
    out: Path,
    task: str,
    model: str,
    net_g: str | None,
    net_d: str,
    n_layers_d: int,
    norm: str | None,
    no_dropout: bool | None,
    ngf: int,
    ndf: int,
    direction: str,
    lambda_a: float,
    lambda_b: float,
    lambda_identity: float | None,
    pool_size: int,
) -> None:
    """Turn a model trained elsewhere into an i2i run folder (for translate, eval, export, run).

    From the official code: give its checkpoints/<experiment> folder (--checkpoints-dir) or its
    .pth files, and the flags it was trained with (official defaults apply; --lambda-A,
    --lambda-B, --lambda-identity and --pool-size become the cyclegan recipe's options, for
    training on with `i2i run --init-from`):

        i2i convert --from official --checkpoints-dir checkpoints/facades_pix2pix
        --task facades --direction BtoA --out runs/facades-official
    """
    from i2i.convert import CONVERSION_FILE, ConvertError, OfficialFileError, convert_official

    if (checkpoints_dir is None) == (not files):
        raise click.UsageError("Give either --checkpoints-dir DIR or the .pth FILES")
    from i2i.convert.official import OfficialOptions

    options = OfficialOptions(
        model=model,
        netG=net_g,
        netD=net_d,
        n_layers_D=n_layers_d,
        norm=norm,
        no_dropout=no_dropout,
        ngf=ngf,
        ndf=ndf,
        direction=direction,
        lambda_A=lambda_a,
        lambda_B=lambda_b,
        lambda_identity=lambda_identity,
        pool_size=pool_size,
    )
    try:
        ckpt = convert_official(
            checkpoints_dir if checkpoints_dir is not None else files,
            out,
            task=task,
            options=options,
            epoch=epoch,
            catalog=app(ctx).catalog,
        )
    except (ConvertError, OfficialFileError) as exc:
        raise click.ClickException(str(exc)) from exc
    record = json.loads((out / CONVERSION_FILE).read_text())
    for role, source in record["files"].items():
        click.echo(f"{role:<14} <- {source['path']}")
    click.echo(f"wrote {ckpt}")


@hookimpl
def i2i_register_commands(cli: click.Group) -> None:
    """Add ``convert``."""
    cli.add_command(convert_cmd)
