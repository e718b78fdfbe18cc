"""A forward pass replayed as one CUDA graph per input shape.

At the sizes pix2pix works at (a 256 x 256 U-Net, batch 1-8) a GPU finishes each of the
forward pass's hundred-odd kernels faster than Python can launch the next: on an H200 the
eager forward ran at 2 % of the GPU's fp32 peak (benchmarks/README.md, *GPU*). Captured once
as a CUDA graph, the whole forward is one launch. The first call with a new input shape (and
dtype) warms the forward up on a side stream, so that cuDNN picks its kernels, then captures
it; later calls of that shape copy their input into the graph's input buffer, replay, and
return a copy of its output. Random numbers (dropout in paper mode) are drawn afresh at each
replay from the default CUDA generator, so ``torch.manual_seed`` still makes runs repeatable.

Only the last ``max_graphs`` shapes keep their graph (each holds the memory of one forward).
Calls are serialised by a lock: the graph's buffers are shared. A forward that cannot be
captured (one that waits for the GPU inside, e.g. with ``.item()``, which a capture forbids)
runs eagerly from then on, with one warning; ``failure`` says why.

>>> graphed = GraphedForward(lambda x: x * 2)
>>> graphed(torch.ones(2))  # not on a CUDA device: runs the function itself
tensor([2., 2.])
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import Tensor

from i2i.engine.cuda_capture import CaptureFailed, capture, failure_reason


class GraphedForward:
    """``fn`` (a forward pass without grad) as CUDA graphs keyed by input shape and dtype.

    Call it inside the same no-grad and autocast context each time: the graph keeps the
    context it was captured in. Inputs off a CUDA device run ``fn`` itself.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], *, max_graphs: int = 4, warmup: int = 2):
        if max_graphs < 1:
            raise ValueError(f"max_graphs must be at least 1, got {max_graphs}")
        self.fn = fn
        self.max_graphs = max_graphs
        self.warmup = warmup
        self._graphs: OrderedDict[tuple, tuple[torch.cuda.CUDAGraph, Tensor, Tensor]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()
        #: why the forward could not be captured (then it runs eagerly); None until it fails
        self.failure: str | None = None

    def clear(self) -> None:
        """Drop every graph (they read the weights they were captured with); a failure to
        capture is kept, since it belongs to the forward, not to the weights."""
        with self._lock:
            self._graphs.clear()

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """The input shapes that have a graph now, oldest first."""
        return [key[0] for key in self._graphs]

    def __call__(self, x: Tensor, context: object = None) -> Tensor:
        """``fn(x)``; ``context`` names what else the forward depends on (a test mode, a
        precision): a new value captures a new graph."""
        if x.device.type != "cuda" or self.failure is not None:
            return self.fn(x)
        key = (tuple(x.shape), x.dtype, x.device, context)
        with self._lock:
            entry = self._graphs.get(key)
            if entry is None:
                try:
                    entry = self._capture(x)
                except CaptureFailed as exc:
                    self.failure = failure_reason(exc)
                    warnings.warn(
                        f"the forward could not be captured as a CUDA graph ({self.failure}); "
                        "it runs eagerly from now on (i2i translate --no-cuda-graphs skips "
                        "the attempt)",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    self._graphs.clear()
                    return self.fn(x)
                self._graphs[key] = entry
                while len(self._graphs) > self.max_graphs:
                    self._graphs.popitem(last=False)
            else:
                self._graphs.move_to_end(key)
            graph, static_in, static_out = entry
            static_in.copy_(x)
            graph.replay()
            return static_out.clone()

    def _capture(self, x: Tensor) -> tuple[torch.cuda.CUDAGraph, Tensor, Tensor]:
        static_in = x.clone()
        # Autocast's cache off for the warm-up too, as in the capture (i2i.engine.cuda_capture)
        dtype = torch.get_autocast_dtype("cuda")
        enabled = torch.is_autocast_enabled("cuda")
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        # The warm-up draws no random numbers a replay would otherwise see: the first call of
        # a shape gives what every later call under the same seed gives.
        with (
            torch.random.fork_rng(devices=[x.device]),
            torch.autocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=False),
        ):
            with torch.cuda.stream(side):
                for _ in range(self.warmup):
                    self.fn(static_in)
            torch.cuda.current_stream(x.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # errors of the forward itself came up in the warm-up, outside the capture
            with capture(graph):
                static_out = self.fn(static_in)
        return graph, static_in, static_out
