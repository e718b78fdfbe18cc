"""``i2i doctor``: what this machine offers and which speed settings ``auto`` means here.

Shows torch, threads, the device ``auto`` picks, the CPU's features, a CUDA GPU where there
is one (with the cuDNN autotuner ``i2i run`` uses there), the speed choices of
:mod:`i2i.engine.tuning` with how they were decided, and the cache file holding a
measurement. ``--remeasure`` times the bf16 / fp32 convolution and the sub-pixel transposed
convolutions again (about a second; on a quiet machine, as the first time should be).

>>> from click.testing import CliRunner
>>> "precision auto" in CliRunner().invoke(doctor_cmd, []).output
True
"""

from __future__ import annotations

import dataclasses
import json

import click

from i2i import hookimpl


def doctor_report(*, remeasure: bool = False) -> dict:
    """Everything ``i2i doctor`` shows, as a plain dict."""
    import torch

    from i2i.engine.devices import (
        cuda_tf32_convolutions,
        describe_adam,
        describe_gpu,
        resolve_channels_last,
        resolve_cuda_graphs,
        resolve_device,
        resolve_precision,
    )
    from i2i.engine.tuning import cache_file, cpu_features, speed_choices

    choices = speed_choices(remeasure=remeasure)
    device = resolve_device("auto")
    precision = resolve_precision("auto", device, training=True)
    precision_infer = resolve_precision("auto", device, training=False)
    cpu = cpu_features()
    cache = cache_file(cpu)
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "precision": precision,
        "precision_infer": precision_infer,
        "tf32_convolutions": cuda_tf32_convolutions(device),
        "channels_last_train": resolve_channels_last(None, device, precision, training=True),
        "channels_last_infer": resolve_channels_last(None, device, precision_infer, training=False),
        "cuda_graphs_infer": resolve_cuda_graphs(None, device),
        "cpu": dataclasses.asdict(cpu),
        "cpu_choices": dataclasses.asdict(choices),
        "cpu_choices_text": choices.describe(),
        "training_adam": describe_adam(device, precision),
        "cache_file": str(cache) if cache.exists() else None,
        "gpu": describe_gpu(),
    }


@click.command("doctor")
@click.option(
    "--remeasure",
    is_flag=True,
    help="Time bf16 against fp32 and the sub-pixel transposed convolutions again, and cache it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor_cmd(remeasure: bool, as_json: bool) -> None:
    """Show this machine's features and the speed settings `auto` picks on it.

    Precision, channels_last and the Adam flavour are decided from the CPU's features where
    those settle it (no native bf16: fp32; AMX: bf16), else by a short measurement cached per
    machine and torch version in $I2I_CACHE (default $XDG_CACHE_HOME/i2i or ~/.cache/i2i).
    Where bf16 is native, which transposed convolutions run as sub-pixel phases in bf16
    inference is measured too. --precision and --channels-last flags override them.
    """
    from i2i.engine.tuning import cpu_features

    report = doctor_report(remeasure=remeasure)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    rows = [
        ("torch", f"{report['torch']}, {report['threads']} threads"),
        ("cpu", cpu_features().describe()),
        ("device auto", report["device"]),
        (
            "precision auto",
            _per_use(report["precision"], report["precision_infer"], report["tf32_convolutions"]),
        ),
        (
            "channels_last",
            f"training {report['channels_last_train']}, inference {report['channels_last_infer']}",
        ),  # fmt: skip
        ("cpu choices", report["cpu_choices_text"]),
        ("training Adam", report["training_adam"]),
        ("cache", report["cache_file"] or "none (nothing measured)"),
    ]
    if report["gpu"]:
        rows[2:2] = [
            ("gpu", report["gpu"]),
            ("cudnn autotuner", "on in `i2i run` where every training crop has one size"),
            (
                "cuda graphs",
                "inference replays one per input size (--no-cuda-graphs: off); training "
                "one per batch shape with `i2i run --cuda-graphs`",
            ),
        ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


def _per_use(training: str, inference: str, tf32: bool) -> str:
    """One precision, or which one training and inference each take; fp32 says where the
    GPU runs its convolutions as TF32.

    >>> _per_use("bf16", "bf16", False), _per_use("fp32", "bf16", True)
    ('bf16', 'training fp32 (TF32 on this GPU), inference bf16')
    >>> _per_use("fp32", "bf16", False)
    'training fp32, inference bf16'
    """
    if training == inference:
        return training
    shown = "fp32 (TF32 on this GPU)" if training == "fp32" and tf32 else training
    return f"training {shown}, inference {inference}"


@hookimpl
def i2i_register_commands(cli: click.Group) -> None:
    """Add ``i2i doctor``."""
    cli.add_command(doctor_cmd)
