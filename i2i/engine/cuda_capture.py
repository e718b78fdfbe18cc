"""Capturing work as a CUDA graph the way every i2i graph does it, and failing cleanly.

Used by inference (:mod:`i2i.inference.cuda_graphs`) and training
(:mod:`i2i.engine.graphed_step`). Inside :func:`capture`:

- autocast's cache of cast weights is off (PyTorch's CUDA graph notes: cached casts would be
  freed after the capture while the graph still reads them); autocast regions opened inside
  inherit the setting;
- the capture runs in ``thread_local`` mode: a DataLoader's pin-memory thread allocating pinned
  host memory meanwhile does not void it (the default ``global`` mode counts that as an error);
- a capture that fails (work that reads a value back to the host, such as ``.item()``) raises
  :class:`CaptureFailed` after putting back what PyTorch leaves behind when a capture's end
  fails: the stream that was current before (PyTorch leaves its capture stream current), and
  the device's random generator as it was (torch 2.11 left it marked as capturing, so that
  every later random draw, e.g. dropout, failed too; where a draw still works, only its
  state is put back).

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
    while isinstance(cause.__context__, RuntimeError):  # the capture's end failing reports
        cause = cause.__context__  # only "a previous error": name that error
    return (str(cause).strip().splitlines() or ["?"])[0]


@contextmanager
def capture(graph: torch.cuda.CUDAGraph) -> Iterator[None]:
    """Record into ``graph`` the CUDA work of the block (nothing runs until a replay)."""
    dtype, enabled = torch.get_autocast_dtype("cuda"), torch.is_autocast_enabled("cuda")
    stream = torch.cuda.current_stream()
    generator = torch.cuda.default_generators[stream.device.index]
    state = generator.get_state()
    try:
        with (
            torch.autocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=False),
            torch.cuda.graph(graph, capture_error_mode="thread_local"),
        ):
            yield
    except RuntimeError as exc:
        torch.cuda.set_stream(stream)
        _repair_generator(generator, state)
        raise CaptureFailed from exc


def _repair_generator(generator: torch.Generator, state: torch.Tensor) -> None:
    """``generator`` as it was before a failed capture (``state``), drawing again."""
    try:
        torch.empty(1, device=generator.device).uniform_()  # a draw from ``generator``
    except RuntimeError:  # still marked as capturing: give it a fresh state object
        fresh = torch.Generator(device=generator.device)
        fresh.set_state(state)
        generator.graphsafe_set_state(fresh)
    else:
        generator.set_state(state)  # the same object (graphs captured earlier share it)
