"""im2col and col2im in channels-last order, for the small-convolution GEMM path.

``F.unfold`` and ``F.fold`` order their columns channel first, ``(C, kh, kw)``: for the
channels_last activations and weights that i2i trains with on the CPU, each GEMM layer then
paid a transposing copy of its columns (slow, strided gathers) in the forward pass and
another in the backward pass. Here the columns are ordered ``(kh, kw, C)``, as a channels_last
weight ``(Cout, kh, kw, Cin)`` is stored, so that every copy moves whole runs of ``C``
channels: :func:`unfold_nhwc` gathers the windows of a padded ``(B, H, W, C)`` tensor in one
strided copy, and :func:`fold_nhwc` adds them back, as one strided add per block of kernel
taps that land on distinct output pixels (four for a 4 x 4 kernel at stride 2). Each is the
other's adjoint, so :class:`UnfoldNhwc` and :class:`FoldNhwc` are each other's backward
(differentiable again, for gradient penalties). benchmarks/README.md, *What changed*, item 20,
has the measurements.

>>> x = torch.arange(16.0).view(1, 4, 4, 1)  # (B, H, W, C)
>>> cols = unfold_nhwc(x, (2, 2), (2, 2), (0, 0), (1, 1))  # (B, ho, wo, kh, kw, C)
>>> cols.shape, cols[0, 0, 0, :, :, 0].tolist()
(torch.Size([1, 2, 2, 2, 2, 1]), [[0.0, 1.0], [4.0, 5.0]])
>>> torch.equal(fold_nhwc(cols, 4, 4, (2, 2), (2, 2), (0, 0), (1, 1)), x)
True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

Pair = tuple[int, int]


def conv_output_size(size: Pair, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Pair:
    """The output height and width of a convolution over ``size``.

    >>> conv_output_size((32, 32), (4, 4), (2, 2), (1, 1), (1, 1))
    (16, 16)
    """
    return tuple(  # type: ignore[return-value]
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip(size, kernel, stride, padding, dilation, strict=True)
    )


def conv_transpose_output_size(
    size: Pair, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> Pair:
    """The output height and width of a transposed convolution over ``size`` (no output
    padding): the size whose :func:`conv_output_size` is ``size``, every window inside.

    >>> conv_transpose_output_size((16, 16), (4, 4), (2, 2), (1, 1), (1, 1))
    (32, 32)
    """
    return tuple(  # type: ignore[return-value]
        (n - 1) * s - 2 * p + d * (k - 1) + 1
        for n, k, s, p, d in zip(size, kernel, stride, padding, dilation, strict=True)
    )


def unfold_nhwc(x: Tensor, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Tensor:
    """The convolution windows of ``x`` ``(B, H, W, C)``: ``(B, ho, wo, kh, kw, C)``,
    contiguous (zero padding included)."""
    b, h, w, c = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    ho, wo = conv_output_size((h, w), kernel, stride, padding, dilation)
    if ph or pw:
        padded = x.new_zeros(b, h + 2 * ph, w + 2 * pw, c)
        padded[:, ph : ph + h, pw : pw + w] = x
        x = padded
    else:
        x = x.contiguous()
    s_b, s_h, s_w, s_c = x.stride()
    windows = x.as_strided(
        (b, ho, wo, kh, kw, c), (s_b, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c)
    )
    return windows.contiguous()


def fold_nhwc(
    cols: Tensor, height: int, width: int, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> Tensor:
    """The adjoint of :func:`unfold_nhwc`: ``cols`` ``(B, ho, wo, kh, kw, C)`` summed into a
    contiguous ``(B, height, width, C)`` (what falls in the padding is dropped)."""
    b, ho, wo, kh, kw, c = cols.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    if dilation == (1, 1) and kh % sh == 0 and kw % sw == 0:
        out = _fold_by_blocks(cols, stride)
    else:
        full_h, full_w = conv_transpose_output_size((ho, wo), (kh, kw), stride, (0, 0), dilation)
        out = cols.new_zeros(b, full_h, full_w, c)
        for i in range(kh):
            for j in range(kw):
                rows = slice(i * dh, i * dh + sh * (ho - 1) + 1, sh)
                columns = slice(j * dw, j * dw + sw * (wo - 1) + 1, sw)
                out[:, rows, columns] += cols[:, :, :, i, j]
    out = out[:, ph : ph + height, pw : pw + width]
    if out.shape[1] < height or out.shape[2] < width:  # windows that stop short of the edge
        full = cols.new_zeros(b, height, width, c)
        full[:, : out.shape[1], : out.shape[2]] = out
        return full
    return out.contiguous()


def _fold_by_blocks(cols: Tensor, stride: Pair) -> Tensor:
    """:func:`fold_nhwc` before cropping the padding, for kernels that are whole multiples of
    the stride: the taps ``(a * sh + r, a2 * sw + q)`` of one ``(a, a2)`` land on distinct
    pixels, so each ``(a, a2)`` is one strided add over ``sh x sw`` pixel blocks."""
    b, ho, wo, kh, kw, c = cols.shape
    sh, sw = stride
    ah, aw = kh // sh, kw // sw
    out = cols.new_zeros(b, ho - 1 + ah, sh, wo - 1 + aw, sw, c)
    taps = cols.reshape(b, ho, wo, ah, sh, aw, sw, c)
    for a in range(ah):
        for a2 in range(aw):
            out[:, a : a + ho, :, a2 : a2 + wo] += taps[:, :, :, a, :, a2].permute(0, 1, 3, 2, 4, 5)
    return out.view(b, (ho - 1 + ah) * sh, (wo - 1 + aw) * sw, c)


class UnfoldNhwc(torch.autograd.Function):
    """:func:`unfold_nhwc` with :class:`FoldNhwc` as its backward."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair
    ) -> Tensor:
        ctx.geometry = (x.shape[1], x.shape[2], kernel, stride, padding, dilation)
        return unfold_nhwc(x, kernel, stride, padding, dilation)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return (FoldNhwc.apply(grad, *ctx.geometry), None, None, None, None)


class FoldNhwc(torch.autograd.Function):
    """:func:`fold_nhwc` with :class:`UnfoldNhwc` as its backward."""

    @staticmethod
    def forward(
        ctx: Any,
        cols: Tensor,
        height: int,
        width: int,
        kernel: Pair,
        stride: Pair,
        padding: Pair,
        dilation: Pair,
    ) -> Tensor:
        ctx.geometry = (kernel, stride, padding, dilation)
        return fold_nhwc(cols, height, width, kernel, stride, padding, dilation)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return (UnfoldNhwc.apply(grad, *ctx.geometry), None, None, None, None, None, None)
