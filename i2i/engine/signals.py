"""Stopping a run cleanly: Ctrl-C and SIGTERM ask the loop to stop after the current step.

The loop saves a checkpoint, then raises :class:`TrainingInterrupted` (exit code 130 or 143);
a second Ctrl-C stops at once without saving.

>>> TrainingInterrupted(signal.SIGTERM, None).exit_code
143
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
#: Under torchrun, ranks agree on a stop request every this many steps (a collective each time).
STOP_CHECK_EVERY = 10


class TrainingInterrupted(Exception):
    """Training stopped on Ctrl-C or SIGTERM; ``exit_code`` is 130 or 143."""

    def __init__(self, signum: int, checkpoint: Path | None):
        self.signum = signum
        self.exit_code = EXIT_CODES.get(signum, 128 + int(signum))
        self.checkpoint = checkpoint
        where = f"saved {checkpoint}" if checkpoint else "no checkpoint saved for this step"
        super().__init__(f"training interrupted by {signal.Signals(signum).name}; {where}")


class StopRequests:
    """Catches SIGINT and SIGTERM while installed; ``received`` is the first one, or None.

    Handlers are installed only in the main thread (elsewhere Python refuses them) and the
    previous ones come back on :meth:`uninstall`.
    """

    def __init__(self, say: Callable[[str], None]):
        self.say = say
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            if signum == signal.SIGINT and self.received is not None:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now, without saving
            self.received = signum
            self.say(
                f"{signal.Signals(signum).name} received: stopping after this step "
                "(Ctrl-C again to quit without saving)"
            )

        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, handler)

    def agreed(self, step: int, agree: Callable[[bool], bool] | None) -> bool:
        """Whether to stop after ``step``: a signal arrived here, or under torchrun (``agree``:
        "any rank?") on any rank, asked every :data:`STOP_CHECK_EVERY` steps."""
        if agree is None:
            return self.received is not None
        if step % STOP_CHECK_EVERY:
            return False
        return agree(self.received is not None)

    def uninstall(self) -> None:
        for signum, old in self._previous.items():
            signal.signal(signum, old)
        self._previous = {}
