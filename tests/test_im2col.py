"""NHWC im2col/col2im (i2i.models.im2col): the same windows as F.unfold, each the other's
adjoint, and differentiable twice."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from i2i.models.im2col import FoldNhwc, UnfoldNhwc, conv_output_size, fold_nhwc, unfold_nhwc

# (H, W, kernel, stride, padding, dilation): the U-Net's 4x4/2 layers, stride 1, odd sizes
# whose last windows stop short of the edge, kernels that are not multiples of the stride,
# dilation, no padding
GEOMETRIES = [
    (4, 6, (4, 4), (2, 2), (1, 1), (1, 1)),
    (5, 7, (4, 4), (2, 2), (1, 1), (1, 1)),
    (2, 2, (4, 4), (2, 2), (1, 1), (1, 1)),
    (6, 5, (3, 3), (1, 1), (1, 1), (1, 1)),
    (7, 8, (3, 3), (2, 2), (1, 1), (1, 1)),
    (9, 9, (3, 2), (2, 1), (2, 0), (2, 1)),
    (8, 8, (2, 2), (2, 2), (0, 0), (1, 1)),
]


def _nchw_columns(x_nhwc, kernel, stride, padding, dilation):
    """F.unfold's columns of the same input, reordered to (B, ho, wo, kh, kw, C)."""
    b, h, w, c = x_nhwc.shape
    ho, wo = conv_output_size((h, w), kernel, stride, padding, dilation)
    cols = F.unfold(x_nhwc.permute(0, 3, 1, 2), kernel, dilation, padding, stride)
    return cols.view(b, c, kernel[0], kernel[1], ho, wo).permute(0, 4, 5, 2, 3, 1)


@pytest.mark.parametrize(("h", "w", "kernel", "stride", "padding", "dilation"), GEOMETRIES)
def test_unfold_takes_the_windows_of_f_unfold(h, w, kernel, stride, padding, dilation):
    x = torch.randn(2, h, w, 3)
    got = unfold_nhwc(x, kernel, stride, padding, dilation)
    assert got.is_contiguous()
    assert torch.equal(got, _nchw_columns(x, kernel, stride, padding, dilation))


@pytest.mark.parametrize(("h", "w", "kernel", "stride", "padding", "dilation"), GEOMETRIES)
def test_fold_is_the_adjoint_of_unfold(h, w, kernel, stride, padding, dilation):
    torch.manual_seed(0)
    x = torch.randn(2, h, w, 3, dtype=torch.float64)
    cols = torch.randn_like(unfold_nhwc(x, kernel, stride, padding, dilation))
    folded = fold_nhwc(cols, h, w, kernel, stride, padding, dilation)
    assert folded.shape == x.shape and folded.is_contiguous()
    # <unfold(x), cols> == <x, fold(cols)>
    lhs = (unfold_nhwc(x, kernel, stride, padding, dilation) * cols).sum()
    assert torch.allclose(lhs, (x * folded).sum(), rtol=1e-12)
    # and F.fold of the same columns gives the same image
    b, ho, wo, kh, kw, c = cols.shape
    nchw = cols.permute(0, 5, 3, 4, 1, 2).reshape(b, c * kh * kw, ho * wo)
    want = F.fold(nchw, (h, w), kernel, dilation, padding, stride).permute(0, 2, 3, 1)
    assert torch.allclose(folded, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("geometry", [GEOMETRIES[1], GEOMETRIES[5]])
def test_the_autograd_functions_pass_gradcheck_twice(geometry):
    h, w, kernel, stride, padding, dilation = geometry
    x = torch.randn(1, h, w, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(UnfoldNhwc.apply, (x, kernel, stride, padding, dilation))
    assert torch.autograd.gradgradcheck(UnfoldNhwc.apply, (x, kernel, stride, padding, dilation))
    cols = unfold_nhwc(x.detach(), kernel, stride, padding, dilation).requires_grad_()
    args = (cols, h, w, kernel, stride, padding, dilation)
    assert torch.autograd.gradcheck(FoldNhwc.apply, args)
    assert torch.autograd.gradgradcheck(FoldNhwc.apply, args)


def test_strided_inputs_and_bf16():
    x = torch.randn(2, 3, 6, 6).contiguous(memory_format=torch.channels_last)
    nhwc = x.permute(0, 2, 3, 1)  # contiguous
    nchw_view = x.contiguous().permute(0, 2, 3, 1)  # not contiguous
    geometry = ((4, 4), (2, 2), (1, 1), (1, 1))
    assert torch.equal(unfold_nhwc(nhwc, *geometry), unfold_nhwc(nchw_view, *geometry))
    bf16 = unfold_nhwc(nhwc.bfloat16(), *geometry)
    assert bf16.dtype == torch.bfloat16
    assert torch.equal(bf16, unfold_nhwc(nhwc, *geometry).bfloat16())
