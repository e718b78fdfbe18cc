"""The ``i2i translate`` and ``i2i export`` commands: thin calls into the inference API.

>>> from i2i.plugins import make_plugin_manager
>>> from i2i.cli import build_cli
>>> sorted(set(build_cli(make_plugin_manager(load_entrypoints=False)).commands) & {"translate", "export"})
['export', 'translate']
"""

from __future__ import annotations

from pathlib import Path

import click

from i2i import hookimpl
from i2i.config import ON_BAD_IMAGE
from i2i.inference.options import DEFAULT_TILE, MODES, PRECISIONS


def _user_errors() -> tuple[type[Exception], ...]:
    from i2i.data import DataError
    from i2i.engine.checkpoint import CheckpointError
    from i2i.inference.files import InputError, OutputError

    return (CheckpointError, DataError, InputError, OutputError, FileExistsError)


checkpoint_option = click.option(
    "--checkpoint",
    "-c",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="A checkpoint folder, or a run folder (meaning its latest checkpoint).",
)

#: Which way a two-way model (CycleGAN's G and F) translates; one option for every command.
direction_option = click.option(
    "--direction",
    type=click.Choice(("AtoB", "BtoA")),
    default=None,
    help="Which way a two-way model (cyclegan) translates [the direction it trained].",
)


@click.command("translate")
@checkpoint_option
@direction_option
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default=None,
    help="paper: dropout on and batch statistics, as in pix2pix; eval: deterministic. "
    "Default: the checkpoint's test_mode.",
)
@click.option(
    "--batch-size",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Images of the same size translated together (in paper mode they share batch statistics).",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="auto",
    show_default=True,
    help="auto: bf16 autocast on GPUs that support it and on CPUs where it runs natively and "
    "faster (see `i2i doctor`), fp32 otherwise.",
)
@click.option(
    "--channels-last/--no-channels-last",
    default=None,
    help="Generator weights in NHWC. Default: as `i2i doctor` says (on for the CPU, and for "
    "CUDA GPUs in bf16).",
)
@click.option(
    "--prepack/--no-prepack",
    default=None,
    help="On the CPU, reorder the convolution weights for oneDNN once instead of on every "
    "call. Default: as `i2i doctor` says (on in bf16 where it is native; in fp32 with "
    "AVX-512 where the first batch is one image).",
)
@click.option(
    "--cuda-graphs/--no-cuda-graphs",
    default=None,
    help="On a CUDA GPU, replay the generator as one CUDA graph per input size instead of "
    "launching its kernels one by one. Default: on for CUDA.",
)
@click.option(
    "--tile",
    default=DEFAULT_TILE,
    show_default=True,
    type=click.IntRange(min=1),
    help="Images larger than this (after padding) go through in blended tiles.",
)
@click.option(
    "--overlap",
    default=None,
    type=click.IntRange(min=0),
    help="Tile overlap in pixels. Default: tile / 8, rounded up to the size multiple.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seed of the dropout noise in paper mode.",
)
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option(
    "--on-bad-image",
    type=click.Choice(ON_BAD_IMAGE),
    default="error",
    show_default=True,
    help="An input that cannot be read: error stops naming it; skip leaves it out and reports "
    "the count at the end.",
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.pass_context
def translate_cmd(
    ctx: click.Context,
    checkpoint: Path,
    inputs: tuple[str, ...],
    out: Path,
    mode: str | None,
    batch_size: int,
    precision: str,
    channels_last: bool | None,
    prepack: bool | None,
    cuda_graphs: bool | None,
    tile: int,
    overlap: int | None,
    device: str,
    seed: int,
    overwrite: bool,
    on_bad_image: str,
    progress: bool,
    direction: str | None,
) -> None:
    """Translate image files, folders or glob patterns INPUT... into PNG files in --out.

    Each output keeps its input's name stem and size. Nothing is written when any output
    already exists (unless --overwrite) or two inputs share a stem. Outputs never land outside
    --out. Under `torchrun --nproc-per-node N -m i2i translate ...` the N processes share the
    inputs, each writing its own outputs.
    """
    from i2i.cli import app
    from i2i.engine.devices import resolve_device, tune_cpu_process
    from i2i.engine.distributed import dist_info_from_env, init_distributed, shutdown_distributed
    from i2i.inference import sharding
    from i2i.inference.batch import translate_files
    from i2i.inference.files import expand_inputs, plan_outputs
    from i2i.inference.translator import load

    tune_cpu_process()
    info = dist_info_from_env()
    try:
        where = resolve_device(device, info.local_rank)
    except RuntimeError as exc:  # a device this machine does not have
        raise click.ClickException(str(exc)) from exc
    if info.enabled:
        init_distributed(where)
    try:
        try:
            pairs = plan_outputs(expand_inputs(inputs), out, overwrite=overwrite)
            translator = load(
                checkpoint,
                catalog=app(ctx).catalog,
                device=where,
                mode=mode,
                precision=precision,
                tile=tile,
                overlap=overlap,
                seed=seed,
                channels_last=channels_last,
                direction=direction,
                bf16_weights=True,  # nothing here calls the generator outside the Translator
                prepack=prepack,
                cuda_graphs=cuda_graphs,
            )
        except _user_errors() as exc:
            sharding.agree(exc, info, where)
        sharding.agree(None, info, translator.device)
        skipped: list[tuple[Path, str]] | None = [] if on_bad_image == "skip" else None
        written = translate_files(
            translator,
            sharding.share(pairs, info),
            batch_size=batch_size,
            overwrite=overwrite,
            progress=progress and info.is_main,
            skipped=skipped,
        )
        count = sharding.total(len(written), info, translator.device)
    except (*_user_errors(), sharding.OtherRankError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if info.enabled:
            shutdown_distributed()
    for _, message in skipped or ():
        click.echo(f"skipped: {message}", err=True)
    if info.is_main:
        ranks = f" by {info.world_size} processes" if info.enabled else ""
        click.echo(
            f"wrote {count} image(s) to {out}{ranks} ({translator.mode} mode) "
            f"on {translator.describe_speed()}"
        )
    if skipped:
        click.echo(f"skipped {len(skipped)} bad image(s) (--on-bad-image skip)", err=True)


@click.command("export")
@checkpoint_option
@direction_option
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), required=True)
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output file.")
@click.option(
    "--size",
    default=None,
    type=click.IntRange(min=1),
    help="Side of the example input used for tracing. Default: the smallest multiple of the size multiple of at least 64.",
)
@click.option("--opset", default=17, show_default=True, type=int, help="ONNX opset.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.pass_context
def export_cmd(
    ctx: click.Context,
    checkpoint: Path,
    fmt: str,
    out: Path,
    size: int | None,
    opset: int,
    overwrite: bool,
    direction: str | None,
) -> None:
    """Export the generator (eval mode, dynamic height and width) to ONNX or TorchScript.

    The exported graph maps the model input (B, in_channels, H, W) in [-1, 1] to its output;
    H and W must be multiples of the generator's size multiple. The task's pre- and
    postprocessing are not included: they are recorded in the file's metadata.
    """
    from i2i.cli import app
    from i2i.export import ExportError, export_checkpoint

    try:
        path = export_checkpoint(
            checkpoint,
            out,
            fmt=fmt,
            catalog=app(ctx).catalog,
            size=size,
            opset=opset,
            overwrite=overwrite,
            direction=direction,
        )
    except (*_user_errors(), ExportError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path}")


@hookimpl
def i2i_register_commands(cli: click.Group) -> None:
    """Add ``translate`` and ``export``."""
    cli.add_command(translate_cmd)
    cli.add_command(export_cmd)
