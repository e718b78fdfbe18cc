"""Capturing work as a CUDA graph the way every i2i graph does it, and failing cleanly.

Used by inference (:mod:`i2i.inference.cuda_graphs`) and training
(:mod:`i2i.engine.graphed_step`). Inside :func:`capture`:

- autocast's cache of cast weights is off (PyTorch's CUDA graph notes: cached casts would be
  freed after the capture while the graph still reads them); autocast regions opened inside
  inherit the setting;
- the capture runs in ``thread_local`` mode: a DataLoader's pin-memory thread allocating pinned
  host memory meanwhile does not void it (the default ``global`` mode counts that as an error);
- a capture that fails (work that reads a value back to the host, such as ``.item()``) raises
  :class:`CaptureFailed`, after giving each CUDA random generator a fresh state equal to the
  one before the attempt: PyTorch leaves a generator marked as capturing when the capture's
  end fails, and every later random draw (dropout) would then fail too.

>>> str(CaptureFailed("x"))
'x'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class CaptureFailed(Exception):
    """A capture failed; ``__cause__`` says why (:func:`failure_reason` in one line)."""


def failure_reason(exc: BaseException) -> str:
    """The first line of what made a capture fail.

    >>> try:
    ...     raise CaptureFailed() from RuntimeError("operation not permitted\\nmore")
    ... except CaptureFailed as exc:
    ...     failure_reason(exc)
    'operation not permitted'
    """
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return (str(cause).strip().splitlines() or ["?"])[0]


@contextmanager
def capture(graph: torch.cuda.CUDAGraph) -> Iterator[None]:
    """Record into ``graph`` the CUDA work of the block (nothing runs until a replay)."""
    dtype, enabled = torch.get_autocast_dtype("cuda"), torch.is_autocast_enabled("cuda")
    saved = [(gen, gen.get_state()) for gen in torch.cuda.default_generators]
    try:
        with (
            torch.autocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=False),
            torch.cuda.graph(graph, capture_error_mode="thread_local"),
        ):
            yield
    except RuntimeError as exc:
        _restore_generators(saved)
        raise CaptureFailed from exc


def _restore_generators(saved: list[tuple[torch.Generator, torch.Tensor]]) -> None:
    for gen, state in saved:
        fresh = torch.Generator(device=gen.device)
        fresh.set_state(state)
        gen.graphsafe_set_state(fresh)
