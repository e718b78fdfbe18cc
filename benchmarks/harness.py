"""Timing, FLOP counting and memory measurement shared by every benchmark row.

The machine is shared and noisy, so paths are timed *interleaved*: every repetition runs each
path once (alternating the order), so a burst of foreign load hits both paths alike. Results
are medians over repetitions after warm-up.

>>> t = interleaved({"a": lambda: None, "b": lambda: None}, reps=3, warmup=1)
>>> sorted(t), len(t["a"])
(['a', 'b'], 3)
>>> median([3.0, 1.0, 2.0])
2.0
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable, Iterable, Mapping

from torch.utils.flop_counter import FlopCounterMode


def median(values: Iterable[float]) -> float:
    """The median of ``values`` (a plain wrapper, so callers need no extra import)."""
    return float(statistics.median(list(values)))


def interleaved(
    fns: Mapping[str, Callable[[], object]],
    *,
    reps: int,
    warmup: int = 1,
    enter: Mapping[str, Callable[[], None]] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each function, ``reps`` times, calls interleaved across functions.

    ``enter[name]`` (optional) runs untimed before each call of ``name``: per-path process
    settings such as flush-denormal are switched there. Odd repetitions reverse the order.

    >>> calls = []
    >>> _ = interleaved({"x": lambda: calls.append("x"), "y": lambda: calls.append("y")}, reps=2, warmup=0)
    >>> calls
    ['x', 'y', 'y', 'x']
    """
    enter = enter or {}
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            if name in enter:
                enter[name]()
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            if name in enter:
                enter[name]()
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` as ``torch.utils.flop_counter`` counts them (matmuls, convs).

    >>> import torch
    >>> count_flops(lambda: torch.ones(2, 3) @ torch.ones(3, 4))
    48
    """
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def rss_bytes() -> int:
    """Resident set size of this process now, in bytes (Linux ``/proc``; else the peak).

    >>> rss_bytes() > 0
    True
    """
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes (``VmHWM``).

    >>> peak_rss_bytes() >= rss_bytes() > 0
    True
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux ``clear_refs``); True on success.

    >>> isinstance(reset_peak_rss(), bool)
    True
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
