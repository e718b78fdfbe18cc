"""A whole training step (forward, backward, both optimizers) replayed as one CUDA graph.

At pix2pix's sizes (a 256 x 256 U-Net, batch 1-8) a GPU waits on Python launching kernels:
training on an H200 ran at about the speed of the official code whatever the precision
(benchmarks/README.md, *GPU*), with both networks' forward and backward passes, the losses
and both Adam updates each launched kernel by kernel. :class:`GraphedTrainStep` runs a
recipe step's ``train_step`` eagerly for the first ``warmup`` batches of a shape (on a side
stream, so cuDNN and the optimizers settle: those are real training steps), then captures one
call as a CUDA graph and from then on copies each batch into the graph's input buffers and
replays it: one launch a step, the same update.

What the graph depends on besides the batch's shapes (the learning rates, which the schedule
changes once an epoch; the modules' train/eval modes; optimizer states replaced by loading a
checkpoint) is checked at every call: a change captures the step again. Random numbers
(dropout) are drawn afresh at each replay from the default CUDA generator; what a step decides
on the host (CycleGAN's image pools) it decides in ``prepare_batch`` before each call, and the
graph reads those decisions as inputs, as it reads the batch. A step that cannot
be captured (one that reads a value back to the host, as ``--on-nonfinite skip`` does) runs
eagerly from then on, after one warning (:attr:`GraphedTrainStep.failure` says why), with the
CUDA random generators as they were before the attempt. ``i2i run --cuda-graphs`` wraps a
recipe's step where its step says it may be captured (``RecipeStep.graph_capturable``) and
:func:`training_graphs_blocker` finds nothing against it (benchmarks/README.md, *GPU:
2026-12-04 18:01*: 3.6x the official code at batch 1 on an H200).

>>> class Step:
...     def train_step(self, batch):
...         return {"loss": batch["input"].sum()}
>>> graphed = GraphedTrainStep(Step())
>>> graphed({"input": torch.ones(2)})  # not on a CUDA device: the step itself
{'loss': tensor(2.)}
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from i2i.engine.cuda_capture import CaptureFailed, capture, failure_reason

#: Eager steps per batch shape before the capture (cuDNN's autotuner and the optimizers'
#: lazily made states settle in these; PyTorch's CUDA-graph notes ask for a few).
WARMUP_STEPS = 3


def training_graphs_blocker(
    step: Any,
    device: torch.device,
    *,
    precision: str,
    distributed: bool = False,
    compiled: bool = False,
    on_nonfinite: str = "stop",
    fixed_sizes: bool = True,
) -> str | None:
    """Why ``step`` cannot train as CUDA graphs here (None: it can). ``fixed_sizes``: every
    training batch has one shape (each shape keeps its own graph, two at most).

    >>> training_graphs_blocker(object(), torch.device("cpu"), precision="fp32")
    'not on a CUDA device'
    """
    if device.type != "cuda":
        return "not on a CUDA device"
    if not declares_capturable(step):
        return f"the recipe's step ({type(step).__name__}) does not allow capture"
    if not fixed_sizes:
        return "training images of several sizes (each size would capture its own graph)"
    if precision == "fp16":
        return "fp16 training's gradient scaler reads its overflow check back each step"
    if distributed:
        return "under torchrun (DDP's gradient communication is not captured here)"
    if compiled:
        return "under torch.compile"
    if on_nonfinite == "skip":
        return "--on-nonfinite skip reads each step's losses back before the update"
    return None


def declares_capturable(step: Any) -> bool:
    """Whether the class that defines ``step``'s ``train_step`` says it may be captured
    (``graph_capturable`` set beside it): a subclass that writes its own ``train_step`` must
    say so again.

    >>> class A:
    ...     graph_capturable = True
    ...     def train_step(self, batch): ...
    >>> class B(A):
    ...     def train_step(self, batch): ...
    >>> declares_capturable(A()), declares_capturable(B())
    (True, False)
    """
    for cls in type(step).__mro__:
        if "train_step" in vars(cls):
            return bool(vars(cls).get("graph_capturable", False))
    return False


class GraphedTrainStep:
    """``step.train_step`` as CUDA graphs, one per batch shape (see the module docstring).

    Call it as ``step.train_step``: it returns the same losses (copies of the graph's own).
    Batches off a CUDA device, and every batch after a failed capture, run the step itself.
    """

    def __init__(self, step: Any, *, warmup: int = WARMUP_STEPS, max_graphs: int = 2):
        if warmup < 1 or max_graphs < 1:
            raise ValueError(
                f"warmup and max_graphs must be at least 1, got {warmup}, {max_graphs}"
            )
        self.step = step
        self.warmup = warmup
        self.max_graphs = max_graphs
        #: shape key -> (state key, graph, static batch, static losses)
        self._graphs: OrderedDict[tuple, tuple[tuple, Any, dict, dict]] = OrderedDict()
        self._seen: dict[tuple, int] = {}
        #: why the step could not be captured (then it runs eagerly); None until it fails
        self.failure: str | None = None
        #: how many graphs were captured so far (a new shape, a new learning rate, ...)
        self.captures = 0
        self._side: Any = None  # the warm-up steps' stream

    @property
    def device(self) -> torch.device:
        return torch.device(getattr(self.step, "device", "cpu"))

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        if self.device.type != "cuda" or self.failure is not None:
            return self.step.train_step(batch)
        prepare = getattr(self.step, "prepare_batch", None)
        if prepare is not None:  # the host's decisions for this batch, as graph inputs
            batch = prepare(batch)
        shape = _shape_key(batch)
        state = self._state_key()
        entry = self._graphs.get(shape)
        if entry is not None and not _same_state(entry[0], state):
            del self._graphs[shape]  # the learning rate or a mode changed: capture again
            entry = None
        if entry is None:
            seen = self._seen.get(shape, 0)
            if seen < self.warmup:
                self._seen[shape] = seen + 1
                return self._eager_on_side_stream(batch)
            try:
                entry = self._capture(batch, state)
            except CaptureFailed as exc:
                self.failure = failure_reason(exc)
                warnings.warn(
                    f"the training step could not be captured as a CUDA graph ({self.failure}); "
                    "it runs eagerly from now on (i2i run --no-cuda-graphs skips the attempt)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._graphs.clear()
                return self.step.train_step(batch)
            self._graphs[shape] = entry
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(shape)
        _, graph, static_batch, static_losses = entry
        _fill(static_batch, batch)
        graph.replay()
        return {k: v.clone() for k, v in static_losses.items()}

    def _state_key(self) -> tuple:
        """What the graph depends on besides the batch: the optimizers' state dicts themselves
        (replaced by ``load_state_dict``; held, so that their memory stays the graph's), the
        learning rates and the modules' train/eval modes."""
        opts = self.step.optimizers().values()
        return (
            tuple(opt.state for opt in opts),
            tuple(_lr(group) for opt in opts for group in opt.param_groups),
            tuple(m.training for m in self.step.modules().values()),
        )

    def _eager_on_side_stream(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        main = torch.cuda.current_stream(self.device)
        if self._side is None:
            self._side = torch.cuda.Stream(device=self.device)
        side = self._side
        side.wait_stream(main)
        with torch.cuda.stream(side):
            losses = self.step.train_step(batch)
        main.wait_stream(side)
        return losses

    def _capture(self, batch: Mapping[str, Any], state: tuple) -> tuple[tuple, Any, dict, dict]:
        static = {
            k: _static_copy(v, self.device) if isinstance(v, Tensor) else v
            for k, v in batch.items()
        }
        graph = torch.cuda.CUDAGraph()
        groups = [g for opt in self.step.optimizers().values() for g in opt.param_groups]
        capturable = [g.get("capturable", False) for g in groups]
        try:
            for g in groups:  # Adam refuses a capture otherwise; its fused kernel is the same
                g["capturable"] = True
            with capture(graph):
                losses = self.step.train_step(static)
        finally:
            for g, was in zip(groups, capturable, strict=True):
                g["capturable"] = was  # saved optimizer states stay loadable on the CPU
        self.captures += 1
        return state, graph, static, dict(losses)


def _static_copy(t: Tensor, device: torch.device) -> Tensor:
    """A copy of ``t`` on ``device`` that the graph reads its batch from."""
    return t.to(device, non_blocking=True).clone()


def _same_state(a: tuple, b: tuple) -> bool:
    return all(x is y for x, y in zip(a[0], b[0], strict=True)) and a[1:] == b[1:]


def _lr(group: Mapping[str, Any]) -> float | int:
    lr = group["lr"]
    return float(lr) if not isinstance(lr, Tensor) else lr.data_ptr()


def _shape_key(batch: Mapping[str, Any]) -> tuple:
    return tuple(
        (k, tuple(v.shape), v.dtype) if isinstance(v, Tensor) else (k, None, None)
        for k, v in sorted(batch.items())
    )


def _fill(static: dict[str, Any], batch: Mapping[str, Any]) -> None:
    for k, v in batch.items():
        if isinstance(v, Tensor):
            static[k].copy_(v, non_blocking=True)
