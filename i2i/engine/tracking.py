"""Where a run reports: ``metrics.jsonl``, TensorBoard (when installed) and the console.

``metrics.jsonl`` holds one JSON object per line, each with ``"step"`` and ``"kind"``
(``train`` for losses, learning rates and throughput; ``val`` for validation metrics).

>>> import tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "metrics.jsonl"
>>> log = MetricsLog(path)
>>> log.write({"step": 1, "kind": "train", "train/g_loss": 2.5})
>>> log.close()
>>> read_metrics(path)[0]["train/g_loss"]
2.5
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor


class MetricsLog:
    """Appends JSON lines to ``path``, flushed after each line."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)

    def write(self, record: dict[str, Any]) -> None:
        if "step" not in record:
            raise ValueError(f"a metrics record needs a 'step', got keys {sorted(record)}")
        clean = {k: _jsonable(v) for k, v in record.items()}
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible
    return value


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of a ``metrics.jsonl`` file."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def truncate_metrics(path: str | os.PathLike, after_step: int) -> int:
    """Drop records with ``step > after_step`` (a resumed run re-does them); returns how many."""
    path = Path(path)
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [ln for ln in lines if ln.strip() and json.loads(ln).get("step", 0) <= after_step]
    dropped = sum(1 for ln in lines if ln.strip()) - len(kept)
    if dropped:
        tmp = path.with_name(f".tmp-{path.name}")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, path)
    return dropped


class TensorBoardSink:
    """Scalars and images to TensorBoard; ``None`` from :meth:`create` when not installed."""

    def __init__(self, writer: Any):
        self.writer = writer

    @classmethod
    def create(cls, log_dir: str | os.PathLike) -> TensorBoardSink | None:
        try:
            import tensorboard  # noqa: F401  (torch's writer needs it)
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return cls(SummaryWriter(log_dir=str(log_dir)))

    def scalars(self, record: dict[str, Any]) -> None:
        step = record["step"]
        for key, value in record.items():
            if key not in ("step", "epoch", "kind", "time") and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, step)

    def image(self, tag: str, image: Tensor, step: int) -> None:
        self.writer.add_image(tag, image, step)

    def close(self) -> None:
        self.writer.close()


class Console:
    """Progress for a person: a tqdm bar on a terminal, plain log lines otherwise, or nothing."""

    def __init__(
        self,
        *,
        total: int,
        initial: int = 0,
        quiet: bool = False,
        bar: bool | None = None,
        echo: Callable[[str], None] | None = None,
    ):
        self.quiet = quiet
        self.echo = echo or (lambda msg: print(msg, file=sys.stderr, flush=True))
        use_bar = (sys.stderr.isatty() if bar is None else bar) and not quiet
        self.bar = None
        if use_bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
        self._last = time.perf_counter()

    def message(self, text: str) -> None:
        """A line for the person watching (kept clear of the bar)."""
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            self.echo(text)

    def advance(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def report(self, record: dict[str, Any]) -> None:
        """Show a train record: postfix of the bar, or one log line."""
        if self.quiet:
            return
        losses = {k.split("/", 1)[1]: v for k, v in record.items() if k.startswith("train/")}
        if self.bar is not None:
            self.bar.set_description(f"epoch {record.get('epoch', 0) + 1}")
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
            return
        parts = " ".join(f"{k}={v:.4g}" for k, v in losses.items())
        speed = record.get("speed/it_s")
        tail = f" {speed:.2f} it/s" if isinstance(speed, float) else ""
        self.echo(f"epoch {record.get('epoch', 0) + 1} step {record['step']}: {parts}{tail}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def drop_torn_line(path: Path) -> bool:
    """Cut a last line that lacks its newline: a write torn by a crash or a full disk.

    Records are whole lines, so such a line is never a complete record. Returns whether one
    was cut.
    """
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if not data or data.endswith(b"\n"):
                return False
            f.truncate(data.rfind(b"\n") + 1)
            return True
    except FileNotFoundError:
        return False
