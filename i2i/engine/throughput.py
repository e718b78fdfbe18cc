"""What the loop logs every ``log_every`` steps: mean losses and images per second.

Time spent validating, drawing samples and saving is left out of the rate (:meth:`untimed`),
and so is the meter's first step: the one that builds oneDNN's kernels and compiles what is
compiled (seconds, once per process). A record whose steps were all untimed has no rate.

>>> import torch
>>> meter = LossMeter()
>>> meter.add({"l1": torch.tensor(1.0)}); meter.add({"l1": torch.tensor(3.0)})
>>> record = meter.record(batch_size=4, world_size=1)
>>> record["train/l1"], record["speed/img_s"] == 4 * record["speed/it_s"]
(2.0, True)
>>> first = LossMeter(); first.add({"l1": torch.tensor(1.0)})
>>> sorted(first.record(batch_size=4, world_size=1))
['train/l1']
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any


class LossMeter:
    """Sums of the losses of the steps since the last :meth:`record`, and their time."""

    def __init__(self) -> None:
        self.warm = False  # whether the first step (the warm-up) has been added
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, Any] = {}
        self.count = 0
        self.timed = 0  # steps whose time the rate counts
        self.start = time.perf_counter()

    def add(self, losses: Mapping[str, Any]) -> None:
        """Add one step's losses (device tensors: summed without a sync)."""
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1
        if self.warm:
            self.timed += 1
        else:  # the warm-up step: its losses count, its time does not
            self.warm = True
            self.start = time.perf_counter()

    @contextlib.contextmanager
    def untimed(self) -> Iterator[None]:
        """Leave the time of the ``with`` block out of the rate."""
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.start += time.perf_counter() - begin

    def record(self, *, batch_size: int, world_size: int) -> dict[str, Any]:
        """``train/<loss>`` means and ``speed/it_s``, ``speed/img_s`` (where a step was
        timed); then starts over."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        out: dict[str, Any] = {
            f"train/{k}": float(v / max(self.count, 1)) for k, v in self.sums.items()
        }
        if self.timed:
            it_s = self.timed / elapsed
            out["speed/it_s"] = it_s
            out["speed/img_s"] = it_s * batch_size * world_size
        self.reset()
        return out
