"""Convolution weights pre-packed for oneDNN, for inference on the CPU.

In eager PyTorch a CPU convolution hands oneDNN its weights in PyTorch's plain layout, and
oneDNN reorders them into its blocked layout on every call. For a U-Net 256 at batch 1 that
reorder costs about as much as the arithmetic (the innermost layers hold millions of weights
and touch a handful of pixels). :func:`pack_convolutions` reorders each convolution's weights
once, the way ``torch.compile`` with ``freezing`` does, and runs the layer through oneDNN's own
convolution ops from then on; :func:`unpack_convolutions` puts the plain weights back, bit for
bit. Inference only: packed layers have no gradients.

While packed, a layer's ``weight`` parameter is an empty placeholder (the packed copy replaces
it, so memory does not double) and its ``state_dict`` is not the model's: unpack before saving,
loading weights or moving the module to another device. :class:`~i2i.inference.Translator`
does all of this itself (``bf16_weights=True``, what ``i2i translate`` uses).

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
from functools import lru_cache

import torch
from torch import Tensor, nn

#: the layers this module packs
PACKABLE = (nn.Conv2d, nn.ConvTranspose2d)
#: attribute: (packed weight, bias, op arguments, input memory format, weight was NHWC)
_PACKED = "_i2i_packed"


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


def _packed_forward(self: nn.Module, x: Tensor, output_size: list[int] | None = None) -> Tensor:
    weight, bias, args, fmt, _ = getattr(self, _PACKED)
    if output_size is not None:
        raise ValueError("a packed ConvTranspose2d takes no output_size; unpack it first")
    if x.dtype != weight.dtype or not x.is_contiguous(memory_format=fmt):
        x = x.to(weight.dtype, memory_format=fmt)
    if isinstance(self, nn.ConvTranspose2d):
        return torch.ops.mkldnn._convolution_transpose_pointwise(
            x, weight, bias, *args, "none", [None], ""
        )
    return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, *args, "none", [None], "")


def pack_convolutions(module: nn.Module, *, channels_last: bool = True) -> int:
    """Pack the weights of ``module``'s CPU convolutions (fp32 or bf16, each in its own
    dtype), in place; returns how many layers were packed (0 where :func:`packing_available`
    is false).

    Layers with ``padding_mode`` other than zeros, string padding, weights off the CPU, and
    grouped transposed convolutions stay as they are. A packed layer casts its input to its weights' dtype and, with
    ``channels_last`` (oneDNN's fast layout), to NHWC; its output follows its input's layout.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if not packing_available():
        return 0
    count = 0
    with torch.no_grad():
        for m in module.modules():
            if not _packable(m):
                continue
            args = _op_args(m)
            weight = m.weight.detach()
            if isinstance(m, nn.ConvTranspose2d):
                packed = torch.ops.mkldnn._reorder_convolution_transpose_weight(weight, *args, None)
            else:
                packed = torch.ops.mkldnn._reorder_convolution_weight(weight, *args, None)
            bias = None if m.bias is None else m.bias.detach().to(weight.dtype)
            was_nhwc = not weight.is_contiguous() and weight.is_contiguous(
                memory_format=torch.channels_last
            )
            setattr(m, _PACKED, (packed, bias, args, fmt, was_nhwc))
            m.weight.data = torch.empty(0, dtype=m.weight.dtype)  # the packed copy replaces it
            m.forward = types.MethodType(_packed_forward, m)
            count += 1
    return count


def unpack_convolutions(module: nn.Module) -> int:
    """Undo :func:`pack_convolutions`: the same plain weights and the layers' own forward
    again; returns how many layers were unpacked."""
    count = 0
    with torch.no_grad():
        for m in module.modules():
            packed = getattr(m, _PACKED, None)
            if packed is None:
                continue
            plain = packed[0].to_dense()
            if isinstance(m, nn.ConvTranspose2d):  # oneDNN holds it as (out, in, kh, kw)
                plain = plain.transpose(0, 1).contiguous()
            if packed[4]:
                plain = plain.contiguous(memory_format=torch.channels_last)
            m.weight.data = plain
            delattr(m, _PACKED)
            del m.forward  # back to the class's forward
            count += 1
    return count


def is_packed(module: nn.Module) -> bool:
    """Whether any layer of ``module`` is packed.

    >>> is_packed(nn.Conv2d(1, 1, 1))
    False
    """
    return any(hasattr(m, _PACKED) for m in module.modules())
