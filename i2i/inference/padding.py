"""Pad images up to a generator's ``size_multiple`` and crop results back.

Reflect padding needs ``pad < size`` along each side, so a large pad is done as repeated
reflections (each at most ``size - 1``); a side of one pixel cannot reflect and is replicated.

>>> import torch
>>> x = torch.rand(1, 3, 5, 300)
>>> padded, box = pad_to_multiple(x, 256)
>>> padded.shape, box
(torch.Size([1, 3, 256, 512]), (125, 130, 106, 406))
>>> crop(padded, box).shape
torch.Size([1, 3, 5, 300])
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

#: (top, bottom, left, right): where the original image lies inside the padded one, as
#: ``padded[..., top:bottom, left:right]``.
Box = tuple[int, int, int, int]


def padded_size(size: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is at least ``size`` (and at least ``multiple``).

    >>> padded_size(300, 256), padded_size(512, 256), padded_size(1, 1)
    (512, 512, 1)
    """
    if multiple < 1:
        raise ValueError(f"size multiple must be a positive int, got {multiple!r}")
    return max(multiple, -(-size // multiple) * multiple)


def _reflect_1d(x: Tensor, before: int, after: int, dim: int) -> Tensor:
    """Reflect-pad ``x`` by ``before``/``after`` along ``dim`` (-1 or -2), repeatedly if needed."""
    while before > 0 or after > 0:
        size = x.shape[dim]
        if size == 1:  # nothing to reflect: replicate the single row or column
            pads = (before, after, 0, 0) if dim == -1 else (0, 0, before, after)
            return F.pad(x, pads, mode="replicate")
        b, a = min(before, size - 1), min(after, size - 1)
        pads = (b, a, 0, 0) if dim == -1 else (0, 0, b, a)
        x = F.pad(x, pads, mode="reflect")
        before, after = before - b, after - a
    return x


def reflect_pad(x: Tensor, top: int, bottom: int, left: int, right: int) -> Tensor:
    """Reflect-pad a ``(B, C, H, W)`` batch by any amounts, even more than the image size.

    >>> import torch
    >>> reflect_pad(torch.arange(3.0).view(1, 1, 1, 3), 0, 0, 4, 0)[0, 0, 0].tolist()
    [0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0]
    """
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) batch to pad, got shape {tuple(x.shape)}")
    x = _reflect_1d(x, top, bottom, dim=-2)
    return _reflect_1d(x, left, right, dim=-1)


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, Box]:
    """Reflect-pad ``(B, C, H, W)`` so that H and W are multiples of ``multiple``, centred.

    Returns the padded batch and the :data:`Box` that :func:`crop` uses to cut the original
    area back out of a result of the same size.
    """
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, multiple) - h, padded_size(w, multiple) - w
    top, left = ph // 2, pw // 2
    box = (top, top + h, left, left + w)
    if ph == 0 and pw == 0:
        return x, box
    return reflect_pad(x, top, ph - top, left, pw - left), box


def crop(x: Tensor, box: Box) -> Tensor:
    """``x[..., top:bottom, left:right]``: undo :func:`pad_to_multiple`."""
    top, bottom, left, right = box
    return x[..., top:bottom, left:right]
