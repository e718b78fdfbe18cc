"""The device a benchmark runs on, and timing and memory figures that are right for it.

``$I2I_BENCH_DEVICE`` names it (``cpu`` unless set; ``python -m benchmarks.bench --device
cuda`` sets it, and the worker processes inherit it). On a GPU, kernels run asynchronously:
a timed call counts only once the device has finished (:func:`synced`), and a path's memory
is the peak of the GPU memory torch allocated, not the process's resident memory.

>>> bench_device({"I2I_BENCH_DEVICE": "cpu"}), bench_device({})
(device(type='cpu'), device(type='cpu'))
>>> calls = []
>>> synced(lambda: calls.append("call"), torch.device("cpu"))()
>>> calls
['call']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import torch

from benchmarks.harness import peak_rss_bytes, reset_peak_rss, rss_bytes

ENV = "I2I_BENCH_DEVICE"
DEVICES = ("cpu", "cuda")


class DeviceUnavailable(RuntimeError):
    """The benchmark was asked for a device this machine does not have."""


def bench_device(env: Mapping[str, str] | None = None) -> torch.device:
    """The device named by ``$I2I_BENCH_DEVICE`` (``env``: ``os.environ``), ``cpu`` if unset.

    >>> bench_device({"I2I_BENCH_DEVICE": "tpu"})
    Traceback (most recent call last):
    ...
    benchmarks.device.DeviceUnavailable: I2I_BENCH_DEVICE must be one of cpu, cuda; got 'tpu'
    """
    name = (os.environ if env is None else env).get(ENV, "cpu") or "cpu"
    if name not in DEVICES:
        raise DeviceUnavailable(f"{ENV} must be one of {', '.join(DEVICES)}; got {name!r}")
    return torch.device(name)


def use_device(name: str, env: dict[str, str] | None = None) -> torch.device:
    """Make ``name`` the benchmark's device for this process and the workers it starts.

    >>> env = {}
    >>> use_device("cpu", env), env
    (device(type='cpu'), {'I2I_BENCH_DEVICE': 'cpu'})
    >>> use_device("cuda", {}) if not torch.cuda.is_available() else None
    Traceback (most recent call last):
    ...
    benchmarks.device.DeviceUnavailable: --device cuda: torch sees no CUDA GPU on this machine
    """
    target = os.environ if env is None else env
    device = bench_device({ENV: name})
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable("--device cuda: torch sees no CUDA GPU on this machine")
    target[ENV] = name
    return device


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has run everything queued on it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synced(fn: Callable[[], object], device: torch.device) -> Callable[[], None]:
    """``fn`` followed by :func:`synchronize`, so that timing a call times its kernels; ``fn``
    itself on the CPU."""
    if device.type == "cpu":
        return fn  # type: ignore[return-value]

    def run() -> None:
        fn()
        synchronize(device)

    return run


def memory_baseline(device: torch.device) -> int:
    """Start a path's memory measurement on ``device``; returns the baseline that
    :func:`peak_memory_growth` subtracts (resident memory on the CPU, allocated GPU memory on
    a GPU)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return int(torch.cuda.memory_allocated(device))
    reset_peak_rss()
    return rss_bytes()


def restart_peak(device: torch.device) -> None:
    """Start a new peak on ``device``, keeping the baseline: :func:`peak_memory_growth` then
    reports the peak since this call (e.g. the steady state after the warm-up calls, without
    the first calls' one-off allocations such as cuDNN's autotuning workspaces).

    >>> base = memory_baseline(torch.device("cpu"))
    >>> restart_peak(torch.device("cpu")); peak_memory_growth(torch.device("cpu"), base) >= 0
    True
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_peak_rss()


def peak_memory_growth(device: torch.device, baseline: int) -> int:
    """Peak memory on ``device`` since :func:`memory_baseline`, above its baseline.

    >>> base = memory_baseline(torch.device("cpu"))
    >>> peak_memory_growth(torch.device("cpu"), base) >= 0
    True
    """
    if device.type == "cuda":
        synchronize(device)
        return max(0, int(torch.cuda.max_memory_allocated(device)) - baseline)
    return max(0, peak_rss_bytes() - baseline)


def describe_memory(device: torch.device) -> str:
    """What the peak-memory column measures on ``device``, for the table's legend.

    >>> describe_memory(torch.device("cpu"))
    "peak RSS growth of the path's own process"
    """
    if device.type == "cuda":
        return "peak GPU memory torch allocated in the path's own process"
    return "peak RSS growth of the path's own process"
