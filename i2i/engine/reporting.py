"""Where a run reports: ``metrics.jsonl``, TensorBoard (when installed), the console, samples.

Only the main process of a run reports; on other ranks :class:`RunReport` is quiet and writes
nothing. A resumed run first drops the records of the steps it will redo (and a line torn by
the crash that stopped it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor

from i2i.engine.tracking import (
    Console,
    MetricsLog,
    TensorBoardSink,
    drop_torn_line,
    truncate_metrics,
)

METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"
TENSORBOARD_DIR = "tensorboard"


class RunReport:
    """The metrics file, TensorBoard sink and console of one run (``main=False``: silent)."""

    def __init__(
        self,
        run_dir: Path,
        *,
        main: bool,
        step: int,
        total: int,
        quiet: bool = False,
        bar: bool | None = None,
        echo: Callable[[str], None] | None = None,
    ):
        self.run_dir = run_dir
        if main and step:  # before opening it: truncation replaces the file
            drop_torn_line(run_dir / METRICS_FILE)
            truncate_metrics(run_dir / METRICS_FILE, step)
        self.metrics = MetricsLog(run_dir / METRICS_FILE) if main else None
        self.tb = TensorBoardSink.create(run_dir / TENSORBOARD_DIR) if main else None
        self.console = Console(
            total=total, initial=step, quiet=quiet or not main, bar=bar, echo=echo
        )

    def say(self, message: str) -> None:
        self.console.message(message)

    def advance(self) -> None:
        self.console.advance()

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` (stamped with the time) to the metrics file and TensorBoard."""
        if self.metrics is None:
            return
        record["time"] = time.time()
        self.metrics.write(record)
        if self.tb is not None:
            self.tb.scalars(record)

    def train(self, record: dict[str, Any]) -> None:
        if self.metrics is not None:
            self.write(record)
            self.console.report(record)

    def validation(self, record: dict[str, Any], values: dict[str, Any], mode: str) -> None:
        self.write(record)
        shown = "  ".join(f"{k} {v:.4g}" for k, v in values.items() if k != "images")
        self.say(
            f"validation at step {record['step']}: {shown}"
            f"  ({values.get('images', '?')} images, {mode} mode)"
        )

    def samples(self, grid: Tensor, *, epoch: int, step: int) -> Path:
        path = self.run_dir / SAMPLES_DIR / f"epoch{epoch:04d}_step{step:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        from torchvision.utils import save_image  # torchvision imports torch._dynamo: seconds

        save_image(grid, path)
        if self.tb is not None:
            self.tb.image("samples", grid, step)
        return path

    def close(self) -> None:
        self.console.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.tb is not None:
            self.tb.close()
