"""What the machine can do: its measured convolution peak, and a one-line description of it.

The peak is a large 3x3 convolution (batch 8, 512 -> 512 channels, 32 x 32, the best of the
shapes tried on this machine) run forward without grad: in fp32 NCHW, in fp32 channels_last,
and in bf16 channels_last with input and weight already bf16 (the kernel alone), timed
interleaved like every other row. ``fp32`` is the better of the two fp32 layouts. Each path's
achieved GFLOP/s is reported as a fraction of the peak of its own precision. Peaks measured
at a run's start and end tell whether the machine changed speed in between
(:func:`machine_changed`).

>>> p = conv_peaks(reps=1, warmup=0, batch=1, channels=8, size=8)
>>> sorted(p)
['bf16', 'fp32', 'fp32_channels_last', 'fp32_nchw']
>>> "torch" in describe_machine()
True
"""

from __future__ import annotations

import os
import platform
import subprocess

import torch
import torch.nn.functional as F

from benchmarks.device import synced
from benchmarks.harness import count_flops, interleaved, median


def conv_peaks(
    *,
    reps: int = 5,
    warmup: int = 1,
    batch: int = 8,
    channels: int = 512,
    size: int = 32,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Measured GFLOP/s of a large conv (medians): ``fp32_nchw``, ``fp32_channels_last``,
    ``fp32`` (the better of those two) and ``bf16``; on ``device`` (the CPU by default),
    each call timed until the device has finished it."""
    device = device or torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, size, size, generator=gen).to(device)
    w = (torch.randn(channels, channels, 3, 3, generator=gen) * 0.02).to(device)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    w_cl = w.contiguous(memory_format=torch.channels_last)
    x_bf, w_bf = x_cl.bfloat16(), w_cl.bfloat16()

    def conv(a, b):
        def run() -> None:
            with torch.no_grad():
                F.conv2d(a, b, padding=1)

        return synced(run, device)

    fns = {
        "fp32_nchw": conv(x, w),
        "fp32_channels_last": conv(x_cl, w_cl),
        "bf16": conv(x_bf, w_bf),
    }
    flops = count_flops(fns["fp32_nchw"])
    times = interleaved(fns, reps=reps, warmup=warmup)
    peaks = {k: flops / median(v) / 1e9 for k, v in times.items()}
    peaks["fp32"] = max(peaks["fp32_nchw"], peaks["fp32_channels_last"])
    return peaks


def cpu_model() -> str:
    """The CPU's model name (``lscpu``), or what ``platform`` knows."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def describe_cores() -> str:
    """``<n> cores``, or ``<n> of <m> cores`` where this process may run on fewer than the
    machine has (``taskset``, a container's CPU set).

    >>> describe_cores().endswith("cores")
    True
    """
    total = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = total
    return f"{usable} of {total} cores" if 0 < usable < total else f"{total} cores"


def describe_machine() -> str:
    """``<cpu>, <n> cores, torch <version>, <threads> threads[, <gpu>]``."""
    parts = [
        cpu_model(),
        describe_cores(),
        f"torch {torch.__version__}",
        f"{torch.get_num_threads()} threads",
    ]
    if torch.cuda.is_available():
        parts.append(torch.cuda.get_device_name(0))
    return ", ".join(parts)


def load_average() -> str:
    """The 1/5/15-minute load averages, for the record (``n/a`` where unknown)."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


#: Conv peaks at a run's start and end that differ by more than this say the machine changed
#: speed in between (the shared AMX machine moves between states 2-3x apart, benchmarks/README.md).
PEAK_DRIFT = 0.2


def describe_peaks(peaks: dict) -> str:
    """One line for :func:`benchmarks.machine.conv_peaks`' numbers.

    >>> describe_peaks({"fp32": 200, "fp32_nchw": 190, "fp32_channels_last": 200, "bf16": 1600})
    'fp32 200 GFLOP/s (NCHW 190, channels_last 200), bf16 channels_last 1600 GFLOP/s = 8.00x fp32'
    """
    return (
        f"fp32 {peaks['fp32']:.0f} GFLOP/s "
        f"(NCHW {peaks['fp32_nchw']:.0f}, channels_last {peaks['fp32_channels_last']:.0f}), "
        f"bf16 channels_last {peaks['bf16']:.0f} GFLOP/s = {peaks['bf16'] / peaks['fp32']:.2f}x fp32"
    )


def machine_changed(start: dict, end: dict, drift: float = PEAK_DRIFT) -> bool:
    """Whether the fp32 or bf16 conv peak moved by more than ``drift`` (relative) in a run.

    >>> machine_changed({"fp32": 200, "bf16": 1600}, {"fp32": 210, "bf16": 1500})
    False
    >>> machine_changed({"fp32": 200, "bf16": 1600}, {"fp32": 150, "bf16": 500})
    True
    """
    return any(abs(end[k] - start[k]) > drift * max(start[k], 1e-9) for k in ("fp32", "bf16"))
