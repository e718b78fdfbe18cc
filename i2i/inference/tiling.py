"""Tiled inference: run a network on overlapping tiles and blend them without seams.

Tiles start at multiples of the network's ``size_multiple`` (so strided networks see every tile
in the same phase) and overlap by at least ``overlap`` pixels. Each tile's output is weighted by
a separable raised-cosine window that rises over the overlap with its previous neighbour and
falls over the overlap with its next one (weights of two neighbours sum to one there); the
weighted sum is divided by the summed weights. Only one tile at a time goes through the
network, so peak memory is bounded by the tile size, not the image size.

>>> import torch
>>> x = torch.rand(1, 3, 64, 96)
>>> y = tiled_forward(lambda t: t * 2, x, tile=32, overlap=8)
>>> torch.allclose(y, x * 2, atol=1e-5)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``length``, overlapping >= ``overlap``.

    ``length``, ``tile`` and ``overlap`` are multiples of ``multiple``, and
    ``overlap <= tile - multiple``. Starts are spread evenly and are multiples of ``multiple``.

    >>> tile_starts(2048, 1024, 256, 256)
    [0, 512, 1024]
    >>> tile_starts(100, 128, 16)
    [0]
    """
    if length <= tile:
        return [0]
    for name, value in (("length", length), ("tile", tile), ("overlap", overlap)):
        if value % multiple:
            raise ValueError(f"tile {name} must be a multiple of {multiple}, got {value}")
    if not 0 <= overlap <= tile - multiple:
        raise ValueError(
            f"tile overlap must be in [0, tile - {multiple}] = [0, {tile - multiple}], "
            f"got {overlap}"
        )
    stride = (tile - overlap) // multiple * multiple
    n = math.ceil((length - tile) / stride) + 1
    step = (length - tile) / (n - 1) / multiple  # in units of `multiple`
    return sorted({min(length - tile, round(i * step) * multiple) for i in range(n)})


def raised_cosine(n: int) -> Tensor:
    """A rising window of ``n`` strictly positive weights; ``w + w.flip(0) == 1``.

    >>> w = raised_cosine(4)
    >>> bool((w > 0).all()), torch.allclose(w + w.flip(0), torch.ones(4))
    (True, True)
    """
    i = torch.arange(n, dtype=torch.float64) + 0.5
    return (torch.sin(0.5 * math.pi * i / n) ** 2).float()


def axis_window(starts: list[int], tile: int, index: int) -> Tensor:
    """Weights along one axis for tile ``index``: ramps over the overlaps with its neighbours.

    >>> axis_window([0, 24], 32, 0)[-8:].tolist() == raised_cosine(8).flip(0).tolist()
    True
    """
    w = torch.ones(tile)
    if index > 0:
        ov = starts[index - 1] + tile - starts[index]
        if ov > 0:
            w[:ov] *= raised_cosine(ov)
    if index < len(starts) - 1:
        ov = starts[index] + tile - starts[index + 1]
        if ov > 0:
            w[tile - ov :] *= raised_cosine(ov).flip(0)
    return w


def tiled_forward(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    tile: int,
    overlap: int,
    multiple: int = 1,
) -> Tensor:
    """``fn`` applied to ``x`` (B, C, H, W) tile by tile, blended; H and W multiples of ``multiple``.

    ``fn`` must keep the spatial size of its input; the result is float32 on ``x``'s device.
    """
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) batch to tile, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    th, tw = min(tile, h), min(tile, w)
    ys = tile_starts(h, th, min(overlap, max(0, th - multiple)), multiple)
    xs = tile_starts(w, tw, min(overlap, max(0, tw - multiple)), multiple)
    out: Tensor | None = None
    total = torch.zeros(1, 1, h, w, device=x.device)
    for iy, y0 in enumerate(ys):
        wy = axis_window(ys, th, iy).to(x.device)
        for ix, x0 in enumerate(xs):
            wx = axis_window(xs, tw, ix).to(x.device)
            window = wy[:, None] * wx[None, :]
            y = fn(x[..., y0 : y0 + th, x0 : x0 + tw])
            if y.shape[-2:] != (th, tw):
                raise ValueError(
                    f"tiled network must keep the tile size {th}x{tw}, returned "
                    f"{tuple(y.shape[-2:])}"
                )
            if out is None:
                out = torch.zeros(x.shape[0], y.shape[1], h, w, device=x.device)
            out[..., y0 : y0 + th, x0 : x0 + tw] += y.float() * window
            total[..., y0 : y0 + th, x0 : x0 + tw] += window
            del y
    assert out is not None
    return out / total
