"""Convolution weights pre-packed for oneDNN, for inference on the CPU.

In eager PyTorch a CPU convolution hands oneDNN its weights in PyTorch's plain layout, and
oneDNN reorders them into its blocked layout on every call. For a U-Net 256 at batch 1 that
reorder costs about as much as the arithmetic (the innermost layers hold millions of weights
and touch a handful of pixels). :func:`pack_convolutions` reorders each convolution's weights
once, the way ``torch.compile`` with ``freezing`` does, and runs the layer through oneDNN's own
convolution ops from then on; :func:`unpack_convolutions` puts the plain weights back, bit for
bit. The blocked layout oneDNN chooses depends on the input's size too, so a layer keeps its
plain weights until its first call and packs them then, for that input's size, as freezing does
for its example inputs. Inputs of other sizes still run, with oneDNN reordering the weights on
every call: with AVX-512 that costs little (fp32 ``unet_256`` packed for 256 px ran 512 px
inputs at 1.02-1.07x the unpacked speed), with AVX2 alone it halves the speed (0.50x), and
packing again on every change of size was slower still where sizes alternate (0.47-0.50x), so
packs stay with the first size. Packed for no size, as before 2026-12-04, the same model ran at
0.16x with AVX2 and 1.14x (1.21x packed for the size) with AVX-512. Inference only: packed
layers have no gradients. A 4 x 4, stride-2 transposed convolution with bf16 weights may run
as one 2 x 2 convolution to its four output phases (sub-pixel), with the same result to
rounding: the *kinds* of layer that do (:data:`SUBPIXEL_KINDS`) are those that measured faster
so on this CPU (:func:`i2i.engine.tuning.subpixel_speedups`), or those ``pack_convolutions``
is given.

While packed, a layer's ``weight`` parameter is an empty placeholder (the held or packed copy
replaces it, so memory does not double), and the layer still behaves as the model it is:
``state_dict()`` gives the plain weights, ``load_state_dict()`` packs the weights it loads,
``.to()``, ``.float()`` and the like unpack, convert and pack again where the result can be
packed (CPU, fp32 or bf16), and ``copy.deepcopy`` packs a copy. Pickling the module itself is
refused with a message (save its ``state_dict()``). :class:`~i2i.inference.Translator` packs
and unpacks its own generator (``bf16_weights=True``, what ``i2i translate`` uses).

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(8, 3, 4, 2, 1))
>>> x = torch.randn(1, 3, 16, 16)
>>> with torch.no_grad():
...     before = net(x)
...     n = pack_convolutions(net) if packing_available() else 2
...     after = net(x)
>>> n, torch.allclose(before, after, atol=1e-5)
(2, True)
>>> unpack_convolutions(net) == (2 if packing_available() else 0), net[0].weight.shape
(True, torch.Size([8, 3, 4, 4]))
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from i2i.engine.devices import release_freed_memory
from i2i.models.layers import capturing_graph

#: the layers this module packs
PACKABLE = (nn.Conv2d, nn.ConvTranspose2d)
#: attribute holding a packed layer's :class:`_PackedWeights`
_PACKED = "_i2i_packed"
#: attribute holding the handles of a packed layer's state-dict hooks
_HOOKS = "_i2i_packed_hooks"


@lru_cache(maxsize=1)
def packing_available() -> bool:
    """Whether this torch build has oneDNN and the packed-convolution ops ``torch.compile``
    itself uses on the CPU (so a build without them falls back to plain convolutions).

    >>> isinstance(packing_available(), bool)
    True
    """
    if not torch.backends.mkldnn.is_available():
        return False
    ops = torch.ops.mkldnn
    names = (
        "_reorder_convolution_weight",
        "_reorder_convolution_transpose_weight",
        "_convolution_pointwise",
        "_convolution_transpose_pointwise",
    )
    try:
        return all(hasattr(ops, name) for name in names)
    except RuntimeError:
        return False


def _packable(m: nn.Module) -> bool:
    return (
        isinstance(m, PACKABLE)
        and not hasattr(m, _PACKED)
        and m.weight.dim() == 4
        and m.weight.device.type == "cpu"
        and m.padding_mode == "zeros"
        and not isinstance(m.padding, str)
        and m.weight.dtype in (torch.float32, torch.bfloat16)
        and not (isinstance(m, nn.ConvTranspose2d) and m.groups != 1)
    )


def _op_args(m: nn.Module) -> tuple:
    geometry = [list(m.padding)]
    if isinstance(m, nn.ConvTranspose2d):
        geometry.append(list(m.output_padding))
    return (*geometry, list(m.stride), list(m.dilation), m.groups)


@dataclass
class _PackedWeights:
    """One layer's weights: plain until its first call, then in oneDNN's blocked layout for
    that call's input size; and what the layer needs to run and to give the plain weights back."""

    weight: Tensor  # the plain weights, then (input_size set) oneDNN's opaque blocked tensor
    bias: Tensor | None
    args: tuple
    memory_format: torch.memory_format  # of the layer's input
    transposed: bool
    was_nhwc: bool  # the plain weight's layout, restored on unpacking
    subpixel: tuple[Tensor, Tensor | None] | None = None  # see _subpixel_weights
    input_size: tuple[int, ...] | None = None  # the input shape packed for; None: still plain
    subpixel_kinds: tuple[str, ...] = ()  # of SUBPIXEL_KINDS: where it runs as sub-pixel phases

    @classmethod
    def pack(
        cls,
        weight: Tensor,
        bias: Tensor | None,
        args: tuple,
        memory_format: torch.memory_format,
        transposed: bool,
        subpixel_kinds: tuple[str, ...] = (),
    ) -> _PackedWeights:
        """Hold ``weight`` (not a copy) to be packed on the layer's first call (:meth:`fit`)."""
        weight = weight.detach()
        was_nhwc = not weight.is_contiguous() and weight.is_contiguous(
            memory_format=torch.channels_last
        )
        bias = None if bias is None else bias.detach().to(weight.dtype)
        kinds = tuple(subpixel_kinds)
        return cls(weight, bias, args, memory_format, transposed, was_nhwc, subpixel_kinds=kinds)

    def fit(self, input_size: tuple[int, ...]) -> None:
        """Pack the weights in the layout oneDNN chooses for inputs of ``input_size``
        (N, C, H, W); the plain copy is freed."""
        reorder = (
            torch.ops.mkldnn._reorder_convolution_transpose_weight
            if self.transposed
            else torch.ops.mkldnn._reorder_convolution_weight
        )
        self.weight = reorder(self.plain(), *self.args, list(input_size))
        self.input_size = tuple(input_size)
        release_freed_memory()  # the plain copy: a hole that would raise the peak otherwise

    @property
    def shape(self) -> tuple[int, ...]:
        """The plain weights' shape, without unpacking them."""
        shape = tuple(self.weight.shape)
        if self.input_size is None or not self.transposed:
            return shape
        return (shape[1], shape[0], *shape[2:])  # oneDNN holds it as (out, in, kh, kw)

    def plain(self) -> Tensor:
        """The weights in PyTorch's own layout, bit for bit (before the first call: the held
        tensor itself)."""
        if self.input_size is None:
            return self.weight
        plain = self.weight.to_dense()
        if self.transposed:  # oneDNN holds it as (out, in, kh, kw)
            plain = plain.transpose(0, 1).contiguous()
        if self.was_nhwc:
            plain = plain.contiguous(memory_format=torch.channels_last)
        return plain

    def __deepcopy__(self, memo: dict) -> _PackedWeights:
        bias = None if self.bias is None else self.bias.clone()
        plain = self.weight.clone() if self.input_size is None else self.plain()
        return _PackedWeights.pack(
            plain, bias, self.args, self.memory_format, self.transposed, self.subpixel_kinds
        )

    def __reduce__(self) -> Any:
        raise TypeError(
            "a layer with weights pre-packed for oneDNN cannot be pickled; save its "
            "state_dict() (it holds the plain weights) or call "
            "i2i.inference.packing.unpack_convolutions(module) first"
        )


def _packed_forward(self: nn.Module, x: Tensor, output_size: list[int] | None = None) -> Tensor:
    packed: _PackedWeights = getattr(self, _PACKED)
    weight, bias, args = packed.weight, packed.bias, packed.args
    if output_size is not None:
        raise ValueError("a packed ConvTranspose2d takes no output_size; unpack it first")
    if x.dtype != weight.dtype or not x.is_contiguous(memory_format=packed.memory_format):
        x = x.to(weight.dtype, memory_format=packed.memory_format)
    if packed.transposed and _runs_subpixel(self, x, packed.subpixel_kinds):
        return _subpixel_forward(packed, x)
    if packed.input_size is None:
        if capturing_graph():  # a graph keeps the stock operation (any size)
            return _plain_forward(self, packed, x)
        packed.fit(tuple(x.shape))
    weight = packed.weight  # read after any fit (another thread may have made it)
    if packed.transposed:
        return torch.ops.mkldnn._convolution_transpose_pointwise(
            x, weight, bias, *args, "none", [None], ""
        )
    return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, *args, "none", [None], "")


def _plain_forward(m: nn.Module, packed: _PackedWeights, x: Tensor) -> Tensor:
    w, b = packed.weight, packed.bias
    if packed.transposed:
        return F.conv_transpose2d(
            x, w, b, m.stride, m.padding, m.output_padding, m.groups, m.dilation
        )
    return F.conv2d(x, w, b, m.stride, m.padding, m.dilation, m.groups)


#: The kinds of 4 x 4, stride-2, bf16 transposed convolution that may run as one 2 x 2
#: convolution to four times the channels, one per output phase (sub-pixel), each where
#: :func:`i2i.engine.tuning.subpixel_speedups` measured it faster on this CPU:
#:
#: - ``deep``: inputs of :data:`SUBPIXEL_SIZES` px. On an AMX CPU, packed bf16 ``unet_256``'s
#:   decoder layers at 8 and 16 px (1024 input channels) ran at 40 % of the bf16 peak as
#:   transposed convolutions, and as sub-pixel phases the whole network ran 1.12-1.14x at
#:   batch 8, 1.07x at batch 1 (at 4 and 32 px nothing gained, at 1-2 and 64-128 px lost). On a
#:   2-core AMD Zen 5 the same layers ran at 0.76x (8 px) and 0.93x (16 px) that way.
#: - ``thin``: fewer than :data:`SUBPIXEL_THIN_CHANNELS` output channels (a generator's last
#:   layer, 3 channels at 128 px in ``unet_256``), inputs of :data:`SUBPIXEL_THIN_MIN_SIZE` px
#:   or more: oneDNN's transposed kernels spread output channels over the vector lanes, so 3
#:   of them waste most; as phases they are 12. On Zen 5, 128 input channels at batch 1:
#:   3.1-3.3x with 1-4 outputs, 1.9x with 8, 1.3x with 12, 1.04x with 16, 0.90x with 32;
#:   3 outputs 2.2-2.6x from 64 to 256 px and at batches 4 and 8, 1.4x at 32 px, 0.6-0.8x at
#:   8-16 px. On the AMX machine the same last layer had lost (0.27x), hence measured.
#:
#: bf16 only: in fp32 on an AVX-512 CPU the deep kind measured level (0.98x at batch 1, 1.02x
#: at batch 8) and its phase weights held another 50 MB beside the layer's own.
SUBPIXEL_KINDS = ("deep", "thin")
#: input sizes (height and width, pixels) of the ``deep`` kind
SUBPIXEL_SIZES = range(8, 17)
#: the ``thin`` kind has fewer output channels than this
SUBPIXEL_THIN_CHANNELS = 16
#: and inputs of at least this many pixels in height and width
SUBPIXEL_THIN_MIN_SIZE = 32
#: the taps of a 4 x 4, stride-2, padding-1 transposed kernel that reach output phase 0 and 1
_PHASE_TAPS = ((3, 1), (2, 0))
#: padding, stride, dilation, groups of the 2 x 2 phase convolution
_SUBPIXEL_ARGS = ([1, 1], [1, 1], [1, 1], 1)


def _runs_subpixel(m: nn.Module, x: Tensor, kinds: tuple[str, ...]) -> bool:
    if not kinds:
        return False
    h, w = x.shape[-2], x.shape[-1]
    # comparisons, not `in range(...)`: torch.compile traces them on symbolic sizes
    deep = SUBPIXEL_SIZES.start <= h < SUBPIXEL_SIZES.stop
    deep = "deep" in kinds and deep and SUBPIXEL_SIZES.start <= w < SUBPIXEL_SIZES.stop
    thin = "thin" in kinds and m.out_channels < SUBPIXEL_THIN_CHANNELS
    thin = thin and h >= SUBPIXEL_THIN_MIN_SIZE and w >= SUBPIXEL_THIN_MIN_SIZE
    return (
        (deep or thin)
        and tuple(m.kernel_size) == (4, 4)
        and tuple(m.stride) == (2, 2)
        and tuple(m.padding) == (1, 1)
        and tuple(m.output_padding) == (0, 0)
        and tuple(m.dilation) == (1, 1)
        and m.groups == 1
        and x.dtype == torch.bfloat16
    )


def subpixel_phase_weight(weight: Tensor) -> Tensor:
    """The ``(4 * C_out, C_in, 2, 2)`` weight of the 2 x 2 convolution (padding 1) whose output
    channels ``k * C_out + c`` are output phase ``k`` (row-major over ``(row, column)`` parity)
    of the 4 x 4, stride-2, padding-1 transposed convolution with ``weight`` ``(C_in, C_out, 4,
    4)``; phase ``(a, d)`` of an ``H x W`` input is that output cropped to ``[a : a + H, d : d +
    W]``.

    >>> w = torch.randn(3, 2, 4, 4)
    >>> x = torch.randn(1, 3, 5, 5)
    >>> phases = F.conv2d(x, subpixel_phase_weight(w), padding=1)
    >>> out = F.conv_transpose2d(x, w, stride=2, padding=1)
    >>> torch.allclose(phases[:, 2:4, :5, 1:6], out[:, :, ::2, 1::2], atol=1e-5)
    True
    """
    phases = [
        weight[:, :, list(_PHASE_TAPS[a])][:, :, :, list(_PHASE_TAPS[b])].transpose(0, 1)
        for a in (0, 1)
        for b in (0, 1)
    ]
    return torch.cat(phases)


def _subpixel_weights(packed: _PackedWeights, x: Tensor) -> tuple[Tensor, Tensor | None]:
    """The packed 2 x 2 convolution whose ``4 * C_out`` outputs are the transposed
    convolution's four output phases (made on first use, packed for ``x``'s size, kept beside
    the layer's own)."""
    if packed.subpixel is None:
        weight = subpixel_phase_weight(packed.plain()).contiguous(memory_format=torch.channels_last)
        size = None if capturing_graph() else list(x.shape)
        reordered = torch.ops.mkldnn._reorder_convolution_weight(weight, *_SUBPIXEL_ARGS, size)
        bias = None if packed.bias is None else packed.bias.repeat(4)
        packed.subpixel = (reordered, bias)
    return packed.subpixel


def _subpixel_forward(packed: _PackedWeights, x: Tensor) -> Tensor:
    """The transposed convolution as a 2 x 2 convolution (padding 1) to four phases, each
    cropped into its strided place in the output: the same result to rounding."""
    weight, bias = _subpixel_weights(packed, x)
    phases = torch.ops.mkldnn._convolution_pointwise(
        x, weight, bias, *_SUBPIXEL_ARGS, "none", [None], ""
    )
    b, _, h, w = x.shape
    c = phases.shape[1] // 4
    out = torch.empty(b, c, 2 * h, 2 * w, dtype=phases.dtype, memory_format=packed.memory_format)
    for k, (a, d) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        out[:, :, a::2, d::2] = phases[:, k * c : (k + 1) * c, a : a + h, d : d + w]
    return out


def _packed_apply(self: nn.Module, fn: Callable, *args: Any, **kwargs: Any) -> nn.Module:
    """``.to()``, ``.float()``, ``.cpu()`` and the like on a packed layer: unpack, convert,
    and pack again where the result can be packed (CPU, fp32 or bf16)."""
    packed: _PackedWeights = getattr(self, _PACKED)
    _unpack(self)
    type(self)._apply(self, fn, *args, **kwargs)
    if _packable(self):
        _pack(self, packed.memory_format, packed.subpixel_kinds)
    return self


def _plain_weight_in_state_dict(
    m: nn.Module, state: dict[str, Any], prefix: str, local_metadata: Any
) -> None:
    state[prefix + "weight"] = getattr(m, _PACKED).plain()


def _repack_loaded_weights(m: nn.Module, state: dict[str, Any], prefix: str, *_: Any) -> None:
    """Before ``load_state_dict`` copies into a packed layer: pack the incoming weights (and
    bias) and let the empty placeholder take an empty tensor."""
    key = prefix + "weight"
    if key not in state:
        return
    packed: _PackedWeights = getattr(m, _PACKED)
    incoming = state[key]
    if tuple(incoming.shape) != packed.shape:
        raise RuntimeError(
            f"size mismatch for {key}: copying a param with shape {tuple(incoming.shape)} "
            f"from checkpoint, the shape in current model is {packed.shape}"
        )
    layout = torch.channels_last if packed.was_nhwc else torch.contiguous_format
    # a copy: packing happens on the next call, and the caller keeps its own tensors
    weight = incoming.detach().to(packed.weight.dtype, memory_format=layout, copy=True)
    bias = None if m.bias is None else state.get(prefix + "bias", m.bias)
    bias = None if bias is None else bias.detach().to(m.bias.dtype, copy=True)
    setattr(
        m,
        _PACKED,
        _PackedWeights.pack(
            weight,
            bias,
            packed.args,
            packed.memory_format,
            packed.transposed,
            packed.subpixel_kinds,
        ),
    )
    state[key] = torch.empty(0, dtype=packed.weight.dtype)


def _pack(m: nn.Module, fmt: torch.memory_format, subpixel: tuple[str, ...]) -> None:
    packed = _PackedWeights.pack(
        m.weight, m.bias, _op_args(m), fmt, isinstance(m, nn.ConvTranspose2d), subpixel
    )
    setattr(m, _PACKED, packed)
    m.weight.data = torch.empty(0, dtype=m.weight.dtype)  # the packed copy replaces it
    m.forward = types.MethodType(_packed_forward, m)
    m._apply = types.MethodType(_packed_apply, m)
    hooks = (
        m.register_state_dict_post_hook(_plain_weight_in_state_dict),
        m.register_load_state_dict_pre_hook(_repack_loaded_weights),
    )
    setattr(m, _HOOKS, hooks)


def _unpack(m: nn.Module) -> None:
    m.weight.data = getattr(m, _PACKED).plain()
    for handle in getattr(m, _HOOKS):
        handle.remove()
    for name in (_PACKED, _HOOKS, "forward", "_apply"):
        delattr(m, name)  # forward and _apply: back to the class's own


def pack_convolutions(
    module: nn.Module, *, channels_last: bool = True, subpixel: Iterable[str] | None = None
) -> int:
    """Pack the weights of ``module``'s CPU convolutions (fp32 or bf16, each in its own
    dtype), in place; returns how many layers were packed (0 where :func:`packing_available`
    is false).

    ``subpixel``: the :data:`SUBPIXEL_KINDS` of bf16 transposed layer to run as sub-pixel
    phases; ``None``: those this CPU runs faster so
    (:func:`i2i.engine.tuning.speed_choices`, measured once per machine).

    Layers with ``padding_mode`` other than zeros, string padding, weights off the CPU, and
    grouped transposed convolutions stay as they are. A packed layer casts its input to its weights' dtype and, with
    ``channels_last`` (oneDNN's fast layout), to NHWC; its output follows its input's layout.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if not packing_available():
        return 0
    if subpixel is None:
        from i2i.engine.tuning import speed_choices

        subpixel = speed_choices().subpixel_infer
    kinds = tuple(subpixel)
    unknown = sorted(set(kinds) - set(SUBPIXEL_KINDS))
    if unknown:
        raise ValueError(f"unknown sub-pixel kinds {unknown}; known: {list(SUBPIXEL_KINDS)}")
    count = 0
    with torch.no_grad():
        for m in module.modules():
            if _packable(m):
                _pack(m, fmt, kinds)
                count += 1
    return count


def unpack_convolutions(module: nn.Module) -> int:
    """Undo :func:`pack_convolutions`: the same plain weights and the layers' own forward
    again; returns how many layers were unpacked."""
    count = 0
    with torch.no_grad():
        for m in module.modules():
            if hasattr(m, _PACKED):
                _unpack(m)
                count += 1
    return count


def is_packed(module: nn.Module) -> bool:
    """Whether any layer of ``module`` is packed.

    >>> is_packed(nn.Conv2d(1, 1, 1))
    False
    """
    return any(hasattr(m, _PACKED) for m in module.modules())
