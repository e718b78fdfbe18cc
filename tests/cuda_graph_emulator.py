"""CUDA graphs emulated on the CPU, to test which training steps survive being replayed.

A CUDA graph records the kernels of one call and replays them later on the same memory: what
the call decided in Python (a random draw made with ``float()``, a counter, a branch on a value)
is frozen into the recording, and a value read back to the host fails the capture. This
emulator does the same with PyTorch's ATen operations on CPU tensors:

- :func:`capture` records every operation of the block (under autograd and autocast, as a
  graph would see the kernels) and raises on a value read back to the host
  (``aten._local_scalar_dense``: ``.item()``, ``float(t)``, ``if t:``); like a real capture,
  the block leaves no trace: every tensor it wrote and the CPU random generator are put back;
- :meth:`EmulatedGraph.replay` runs the recorded operations again on the recorded tensors and
  writes each result into the tensor the capture produced, so later operations, the
  parameters, the gradients and the optimizer states see it, as a graph's memory would.
  Random operations draw afresh, as a graph's do from the CUDA generator.

So a step that trains the same replayed as eagerly is free of host decisions that a graph
would freeze. What the emulator cannot see: host-to-device copies (all tensors are on the CPU),
and kernels CUDA itself cannot capture.

>>> import torch
>>> w, x = torch.zeros(2), torch.ones(2)
>>> graph = EmulatedGraph()
>>> with capture(graph):
...     _ = w.add_(x)
>>> w  # the capture left no trace
tensor([0., 0.])
>>> graph.replay(); graph.replay()
>>> w
tensor([2., 2.])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class HostReadDuringCapture(RuntimeError):
    """The captured block read a tensor's value back to the host."""


class EmulatedGraph:
    """What :func:`capture` recorded; :meth:`replay` runs it again."""

    def __init__(self) -> None:
        self.ops: list[tuple[Any, tuple, dict, Any]] = []

    def replay(self) -> None:
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            for func, args, kwargs, recorded in self.ops:
                if func.is_view:
                    continue  # a view of memory that the other operations update
                result = func(*args, **kwargs)
                for new, old in zip(
                    tree_flatten(result)[0], tree_flatten(recorded)[0], strict=True
                ):
                    if isinstance(old, Tensor) and new is not old:
                        old.copy_(new)


class _Recorder(TorchDispatchMode):
    def __init__(self, graph: EmulatedGraph) -> None:
        super().__init__()
        self.graph = graph
        self.before: list[tuple[Tensor, Tensor]] = []  # (tensor from before, its value then)
        self._seen: set[int] = set()  # ids of the tensors met so far (all kept alive)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            raise HostReadDuringCapture(
                "operation not permitted when stream is capturing: a value read back to the host"
            )
        # every tensor from before the block, as it was: the operations' schemas do not mark
        # every write (batch norm's running statistics are updated unannounced)
        for t in tree_flatten((args, kwargs))[0]:
            if isinstance(t, Tensor) and id(t) not in self._seen:
                self._seen.add(id(t))
                self.before.append((t, t.detach().clone()))
        result = func(*args, **kwargs)
        self._seen.update(id(t) for t in tree_flatten(result)[0] if isinstance(t, Tensor))
        self.graph.ops.append((func, args, kwargs, result))
        return result


@contextlib.contextmanager
def capture(graph: EmulatedGraph) -> Iterator[None]:
    """Record the block's operations into ``graph``, then undo what the block did."""
    rng = torch.get_rng_state()
    recorder = _Recorder(graph)
    try:
        with recorder:
            yield
    finally:
        with torch.no_grad():
            for tensor, value in reversed(recorder.before):  # the earliest value last
                tensor.copy_(value)
        torch.set_rng_state(rng)
