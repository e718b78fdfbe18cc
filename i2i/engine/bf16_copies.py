"""bf16 copies of the weights that Adam keeps current, for CPU training under bf16 autocast.

Under autocast every fp32 convolution weight is cast to bf16 in each forward pass, and its bf16
gradient is cast back to fp32 for Adam: two passes over the weights besides Adam's own. At
batch 1 on a CPU, where the U-Net's 54M weights outweigh its activations, that is a large part
of a training step (benchmarks/README.md). With :class:`Bf16WeightCopies` the convolutions and
linear layers of a module compute with a bf16 copy of their weight (the very value autocast's
cast gives), their gradients stay bf16, and :class:`Bf16CopyAdam` updates the fp32 weight, both
moments and the bf16 copy in one pass over memory: a kernel inductor compiles once per process
(:func:`fused_update`, a few seconds), used where the copied weights are many enough to repay
it. Elsewhere, or without a C++ compiler, the same update runs as separate passes, as before.

The fp32 weights stay the modules' parameters, and the optimizer's state is plain Adam's: state
dicts and checkpoints do not change. Outside bf16 autocast the modules use their fp32 weights.

>>> net = torch.nn.Conv2d(3, 4, 3)
>>> copies = Bf16WeightCopies([net])
>>> opt = Bf16CopyAdam(net.parameters(), copies, lr=1e-3, fused=True)
>>> with torch.autocast("cpu", torch.bfloat16):
...     net(torch.randn(1, 3, 8, 8)).float().sum().backward()
>>> net.weight.grad is None, copies.grad_of(net.weight).dtype
(True, torch.bfloat16)
>>> opt.step(); opt.zero_grad()
>>> torch.equal(copies.copy_of(net.weight), net.weight.to(torch.bfloat16))
True
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor, nn

from i2i.engine.flat_adam import FlatFusedAdam, _dense_permuted, _flat_view
from i2i.models.layers import capturing_graph

log = logging.getLogger(__name__)

#: The compiled update pays for its compile (a few seconds) only on models this large: the
#: U-Net's 54M weights save about 50 ms a step with it (benchmarks/README.md). PatchGAN 70's
#: 2.8M weights are above it, so pix2pix's and CycleGAN's discriminators use it too. Whether an
#: optimizer compiles depends on its own size alone: the two ways round the same numbers
#: differently, and a choice that followed what the process had compiled before made a
#: second training in one process differ from the same training in a fresh one (2026-12-04).
COMPILE_MIN_WEIGHTS = 1_000_000

_COPIED_TYPES = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)


def _copies_weight(module: nn.Module) -> bool:
    """Whether ``module`` is a convolution or linear layer whose forward only feeds its weight
    to the convolution or matrix multiply (a subclass that does more, such as one that
    standardises the weight, keeps computing with the fp32 weight)."""
    from i2i.models.layers import GemmConv2d, GemmConvTranspose2d

    known = {t.forward for t in (*_COPIED_TYPES, GemmConv2d, GemmConvTranspose2d)}
    return isinstance(module, _COPIED_TYPES) and type(module).forward in known


def _bf16_autocast(device_type: str) -> bool:
    return torch.is_autocast_enabled(device_type) and (
        torch.get_autocast_dtype(device_type) == torch.bfloat16
    )


@dataclass
class _Copy:
    name: str
    param: nn.Parameter
    copy: Tensor | None = None
    source: tuple[int, int, tuple[int, ...]] | None = None  # the weight the copy was made from


def _source(p: Tensor) -> tuple[int, int, tuple[int, ...]]:
    return (p._version, p.data_ptr(), p.stride())


#: Each layer's copy, shared by every :class:`Bf16WeightCopies` that covers the layer (so two
#: optimizers over one module see the same gradients); gone with the layer.
_COPIES: weakref.WeakKeyDictionary[nn.Module, _Copy] = weakref.WeakKeyDictionary()
#: The same copies by ``id`` of their weight: layers that share a weight share its copy.
_BY_WEIGHT: weakref.WeakValueDictionary[int, _Copy] = weakref.WeakValueDictionary()


@torch.no_grad()
def _current(entry: _Copy) -> Tensor:
    """The copy of ``entry``'s weight, made again if the weight changed since."""
    p, copy = entry.param, entry.copy
    if copy is not None and entry.source == _source(p) and copy.shape == p.shape:
        return copy
    if copy is None or copy.shape != p.shape or copy.stride() != p.stride():
        copy = entry.copy = torch.empty_like(p, dtype=torch.bfloat16)
    copy.copy_(p)
    entry.source = _source(p)
    return copy


def _swap_in(module: nn.Module, args: Any) -> None:
    """Forward pre-hook: the layer computes with the bf16 copy while bf16 autocast is on."""
    entry = _COPIES.get(module)
    if entry is None or capturing_graph():
        return
    p = module._parameters.get(entry.name)
    if p is not entry.param or p.dtype != torch.float32 or not _bf16_autocast(p.device.type):
        return
    copy = _current(entry)
    if copy.requires_grad != p.requires_grad:
        copy.requires_grad_(p.requires_grad)
    module._parameters[entry.name] = copy


def _swap_out(module: nn.Module, args: Any, output: Any) -> None:
    """Forward hook (also after a failed forward): the fp32 weight is the parameter again."""
    entry = _COPIES.get(module)
    if entry is None:
        return
    current = module._parameters.get(entry.name)
    if current is not None and current is not entry.param and not isinstance(current, nn.Parameter):
        module._parameters[entry.name] = entry.param


class Bf16WeightCopies:
    """bf16 copies of the conv and linear weights of ``modules``, used under bf16 autocast.

    Forward hooks put each copy in place of its fp32 weight for the duration of the layer's
    forward pass; the copy is made again whenever the fp32 weight changed other than through
    :class:`Bf16CopyAdam` (a checkpoint loaded, weights set by hand). Gradients reach the
    copies (:meth:`grad_of`), not the fp32 weights. A deep copy of a module computes with its
    own fp32 weights.
    """

    def __init__(self, modules: Iterable[nn.Module]):
        self._by_param: dict[int, _Copy] = {}
        for top in modules:
            for module in top.modules():
                entry = _COPIES.get(module)
                if entry is None and _copies_weight(module):
                    weight = module._parameters.get("weight")
                    if weight is None or weight.dtype != torch.float32:
                        continue
                    entry = _BY_WEIGHT.get(id(weight))
                    if entry is None or entry.param is not weight:
                        entry = _BY_WEIGHT[id(weight)] = _Copy("weight", weight)
                    _COPIES[module] = entry
                    module.register_forward_pre_hook(_swap_in)
                    module.register_forward_hook(_swap_out, always_call=True)
                if entry is not None:
                    self._by_param[id(entry.param)] = entry

    def __len__(self) -> int:
        return len(self._by_param)

    def numel(self) -> int:
        """How many weights have copies."""
        return sum(e.param.numel() for e in self._by_param.values())

    def _entry(self, p: Tensor) -> _Copy | None:
        entry = self._by_param.get(id(p))
        return entry if entry is not None and entry.param is p else None

    def copy_of(self, p: Tensor) -> Tensor | None:
        """The bf16 copy of weight ``p`` (None before its first forward pass under autocast)."""
        entry = self._entry(p)
        return entry.copy if entry is not None else None

    def grad_of(self, p: Tensor) -> Tensor | None:
        """The gradient that reached the bf16 copy of ``p`` (bf16), if any."""
        copy = self.copy_of(p)
        return copy.grad if copy is not None else None

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the copies' gradients, as ``Optimizer.zero_grad`` does the weights'."""
        for entry in self._by_param.values():
            copy = entry.copy
            if copy is None or copy.grad is None:
                continue
            if set_to_none:
                copy.grad = None
            else:
                copy.grad.detach_().zero_()

    def mark_current(self, p: Tensor) -> None:
        """Say that the copy of ``p`` was updated together with ``p`` (no remake needed)."""
        entry = self._entry(p)
        if entry is not None:
            entry.source = _source(p)


def _adam_update(p: Tensor, g: Tensor, m: Tensor, v: Tensor, copy: Tensor, hyper: Tensor) -> None:
    """One Adam step on fp32 ``p`` with bf16 gradient ``g``, writing ``copy = bf16(p)``.

    ``hyper`` holds ``[lr / (1 - beta1^t), beta1, beta2, sqrt(1 - beta2^t), eps]``: the update
    of ``torch.optim.Adam`` without weight decay.
    """
    step_size, beta1, beta2, bc2_sqrt, eps = hyper.unbind()
    g = g.float()
    m_new = m + (g - m) * (1 - beta1)
    v_new = v * beta2 + g * g * (1 - beta2)
    p_new = p - step_size * m_new / (v_new.sqrt() / bc2_sqrt + eps)
    m.copy_(m_new)
    v.copy_(v_new)
    p.copy_(p_new)
    copy.copy_(p_new)


def wanted_cxx() -> str:
    """The C++ compiler inductor calls: ``$CXX``, else ``g++`` (``clang++`` on macOS).

    >>> wanted_cxx() != ""
    True
    """
    default = "clang++" if sys.platform == "darwin" else "g++"
    return os.environ.get("CXX") or default


def cxx_compiler() -> str | None:
    """The path of :func:`wanted_cxx` where it is on the PATH, else None. Finding it does not
    prove the compile works; :func:`fused_update` tries.

    >>> cxx_compiler() is None or isinstance(cxx_compiler(), str)
    True
    """
    return shutil.which(wanted_cxx())


@lru_cache(maxsize=1)
@torch.no_grad()  # as Bf16CopyAdam.step calls it: grad mode is part of the compiled code's guards
def fused_update() -> Callable[..., None] | None:
    """:func:`_adam_update` compiled by inductor into one loop over memory, checked against the
    eager update on a small example; None where it cannot be compiled (no C++ compiler, no
    inductor for this platform)."""
    # Inductor imports torch.utils.cpp_extension, which warns on CPU-only machines that have a
    # CUDA folder ("No CUDA runtime is found"): nothing a user of this update needs to read.
    quiet = logging.getLogger("torch.utils.cpp_extension")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        compiled = torch.compile(
            _adam_update,
            dynamic=True,
            fullgraph=True,
            # one kernel for every size, still run on all threads
            options={"cpp.dynamic_threads": True},
        )
        gen = torch.Generator().manual_seed(0)
        n = 37
        p, m = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
        v = torch.rand(n, generator=gen)
        g = torch.randn(n, generator=gen).bfloat16()
        hyper = torch.tensor([1e-2, 0.5, 0.999, 0.05, 1e-8])
        want = [t.clone() for t in (p, m, v)] + [torch.empty(n, dtype=torch.bfloat16)]
        _adam_update(want[0], g, want[1], want[2], want[3], hyper)
        got = [t.clone() for t in (p, m, v)] + [torch.empty(n, dtype=torch.bfloat16)]
        compiled(got[0], g, got[1], got[2], got[3], hyper)
        if not all(torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6) for a, b in zip(got, want, strict=True)):  # fmt: skip
            log.warning("the compiled Adam update disagrees with the eager one; not used")
            return None
        return compiled
    except Exception as exc:  # noqa: BLE001 - any compiler failure means: use the eager update
        log.info("Adam with bf16 weight copies runs uncompiled: %s", str(exc).splitlines()[0])
        return None
    finally:
        quiet.setLevel(level)


def _hyper(group: dict[str, Any], t: float) -> Tensor:
    """The scalars of :func:`_adam_update` for step ``t`` of ``group`` (see its docstring)."""
    beta1, beta2 = group["betas"]
    return torch.tensor(
        [group["lr"] / (1 - beta1**t), beta1, beta2, math.sqrt(1 - beta2**t), group["eps"]],
        dtype=torch.float32,
    )


class Bf16CopyAdam(FlatFusedAdam):
    """Adam over fp32 weights whose gradients arrive on their bf16 copies (``copies``).

    A weight whose copy has a gradient is updated from it, and its copy with it: in one
    compiled pass where :func:`fused_update` is available and the copied weights number at
    least ``compile_min_weights`` (``None``: never), else by the fused Adam kernel on the
    gradient cast to fp32, followed by a fresh copy. Every other
    parameter (biases, norms) is plain fused Adam. ``zero_grad`` clears the copies' gradients
    too.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        copies: Bf16WeightCopies,
        *,
        compile_min_weights: int | None = COMPILE_MIN_WEIGHTS,
        **kwargs: Any,
    ):
        super().__init__(params, **kwargs)
        self.copies = copies
        # the copies are fixed at their construction, so their size is too
        self._large = compile_min_weights is not None and copies.numel() >= compile_min_weights

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        self.copies.zero_grad(set_to_none)

    def _kernel_applies(self, group: dict[str, Any], p: Tensor, g: Tensor) -> bool:
        return (
            p.grad is None
            and group["fused"]
            and not group["amsgrad"]
            and not group["maximize"]
            and not group["differentiable"]
            and group["weight_decay"] == 0
            and not isinstance(group["lr"], Tensor)
            and (p.is_contiguous() or _dense_permuted(p))
            and g.stride() == p.stride()
            and self._large
            and fused_update() is not None
        )

    def _moments(self, group: dict[str, Any], p: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
        """Adam's state for ``p``, made as ``torch.optim.Adam`` makes it; None where the
        moments' layout differs from ``p``'s (a checkpoint saved another way)."""
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if m.stride() != p.stride() or v.stride() != p.stride() or m.dtype != p.dtype:
            return None
        return state["step"], m, v

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        fused, cast = [], []
        for group in self.param_groups:
            for p in group["params"]:
                g = self.copies.grad_of(p)
                if g is None:
                    continue
                moments = self._moments(group, p) if self._kernel_applies(group, p, g) else None
                if moments is not None:
                    fused.append((group, p, g, moments))
                else:
                    cast.append((p, p.grad))
                    g32 = g.to(p.dtype, memory_format=torch.preserve_format)
                    p.grad = g32 if p.grad is None else p.grad + g32
        super().step()  # every fp32 gradient, including the copies' gradients cast above
        for p, own_grad in cast:
            p.grad = own_grad  # the optimizer leaves gradients as it found them
            self._refresh(p)  # (the fused kernel leaves the weight's version counter as it was)
        update = fused_update() if fused else None
        hypers: dict[tuple[int, float], Tensor] = {}
        for group, p, g, (step_t, m, v) in fused:
            step_t += 1
            t = step_t.item()
            hyper = hypers.get((id(group), t))
            if hyper is None:
                hyper = hypers[id(group), t] = _hyper(group, t)
            flat = [_flat_view(x) for x in (p, g, m, v, self.copies.copy_of(p))]
            update(*flat, hyper)
            self.copies.mark_current(p)
        return loss

    def _refresh(self, p: Tensor) -> None:
        copy = self.copies.copy_of(p)
        if copy is not None:
            copy.copy_(p)
            self.copies.mark_current(p)
