"""The GEMM path of small convolutions computes exactly what the stock PyTorch layers compute."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from i2i.models import im2col, layers, patch70, unet_128
from i2i.models.layers import (
    SMALL_GEMM_ROWS,
    SMALL_GEMM_ROWS_NO_GRAD,
    GemmConv2d,
    GemmConvTranspose2d,
    LogicalOrderDropout,
    set_speedups,
)

FORMATS = [torch.contiguous_format, torch.channels_last]


@pytest.fixture
def gemm_calls(monkeypatch):
    """Counts of im2col (``unfold``: the conv GEMM path, and the transposed conv's backward in
    NHWC) and col2im calls (``fold``: the transposed conv GEMM path, and the conv's backward in
    NHWC), whether ``F.unfold``/``F.fold`` (NCHW weights) or :mod:`i2i.models.im2col`'s."""
    calls = {"unfold": 0, "fold": 0}
    for owner, suffix in ((F, ""), (im2col, "_nhwc")):
        for name in calls:
            real = getattr(owner, name + suffix)

            def spy(*args, _real=real, _name=name, **kwargs):
                calls[_name] += 1
                return _real(*args, **kwargs)

            monkeypatch.setattr(owner, name + suffix, spy)
    return calls


def _grads(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_()
    y = module(x)
    (y.square().sum() + y.sum()).backward()
    out = (y.detach(), x.grad, *(p.grad for p in module.parameters()))
    module.zero_grad(set_to_none=True)
    return out


def _assert_same(got, want, tol=1e-5):
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        scale = max(1.0, b.abs().max().item())
        assert (a - b).abs().max().item() <= tol * scale


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("cin", "cout", "size", "stride", "bias"),
    [(8, 16, 2, 2, False), (16, 8, 4, 2, True), (6, 4, 5, 2, True), (8, 4, 6, 1, True)],
)
def test_gemm_conv_matches_conv2d_forward_and_backward(
    gemm_calls, fmt, cin, cout, size, stride, bias
):
    torch.manual_seed(0)
    gemm = GemmConv2d(cin, cout, 4, stride, 1, bias=bias).to(memory_format=fmt)
    stock = nn.Conv2d(cin, cout, 4, stride, 1, bias=bias).to(memory_format=fmt)
    stock.load_state_dict(gemm.state_dict())
    x = torch.randn(3, cin, size, size + 1).contiguous(memory_format=fmt)
    _assert_same(_grads(gemm, x), _grads(stock, x))
    assert gemm_calls["unfold"] == 1  # the GEMM path was taken


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("cin", "cout", "h", "w", "bias"), [(8, 16, 1, 1, False), (16, 3, 3, 5, True)]
)
def test_gemm_conv_transpose_matches_conv_transpose2d(gemm_calls, fmt, cin, cout, h, w, bias):
    torch.manual_seed(0)
    gemm = GemmConvTranspose2d(cin, cout, 4, 2, 1, bias=bias).to(memory_format=fmt)
    stock = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=bias).to(memory_format=fmt)
    stock.load_state_dict(gemm.state_dict())
    x = torch.randn(2, cin, h, w).contiguous(memory_format=fmt)
    got, want = _grads(gemm, x), _grads(stock, x)
    assert got[0].shape == (2, cout, 2 * h, 2 * w)
    _assert_same(got, want)
    assert gemm_calls["fold"] == 1


def test_large_inputs_and_switched_off_layers_run_the_stock_kernels(gemm_calls):
    conv = GemmConv2d(4, 4, 4, 2, 1)
    side = 2 * int(SMALL_GEMM_ROWS**0.5) + 2  # output (side/2)^2 > SMALL_GEMM_ROWS positions
    conv(torch.randn(1, 4, side, side))
    set_speedups(conv, False)
    conv(torch.randn(1, 4, 4, 4))
    assert gemm_calls == {"unfold": 0, "fold": 0}


def test_without_grad_the_gemm_path_takes_fewer_rows(gemm_calls):
    up = GemmConvTranspose2d(4, 2, 4, 2, 1)
    x = torch.randn(SMALL_GEMM_ROWS_NO_GRAD * 2 // 16, 4, 4, 4)  # 2x the no-grad limit of rows
    assert x.shape[0] * 16 <= SMALL_GEMM_ROWS
    up(x)
    assert gemm_calls["fold"] == 1
    with torch.no_grad():
        up(x)
    assert gemm_calls["fold"] == 1


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")  # as i2i.export does
def test_tracing_takes_the_stock_path_so_exports_keep_dynamic_sizes():
    up = GemmConvTranspose2d(4, 2, 4, 2, 1).eval()
    traced = torch.jit.trace(up, torch.randn(1, 4, 2, 2), check_trace=False)
    x = torch.randn(2, 4, 24, 24)  # another batch and size than the example
    assert torch.allclose(traced(x), F.conv_transpose2d(x, up.weight, up.bias, 2, 1), atol=1e-6)


def test_networks_keep_their_state_dict_and_match_the_stock_networks_end_to_end():
    torch.manual_seed(0)
    gen = unet_128(3, 3, ngf=8).eval()
    stock = copy.deepcopy(gen)
    assert set_speedups(stock, False) == 15  # 7 convs + 7 transposed convs + the U-Net
    assert list(gen.state_dict()) == list(stock.state_dict())
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(gen(x), stock(x), atol=1e-5)
    assert set_speedups(patch70(6, ndf=8), True) == 1  # the PatchGAN: its last, thin conv


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("cin", "cout", "kernel", "padding", "size", "bias"),
    [
        (256, 1, 4, 1, (7, 6), True),
        (256, 1, 4, 0, (5, 9), False),
        (256, 1, 4, 3, (3, 3), True),
        (512, 2, 3, 1, (4, 5), True),
        (256, 1, 2, 1, (1, 1), False),
    ],
)
def test_thin_output_conv_matches_conv2d(gemm_calls, fmt, cin, cout, kernel, padding, size, bias):
    torch.manual_seed(0)
    thin = GemmConv2d(cin, cout, kernel, 1, padding, bias=bias).double().to(memory_format=fmt)
    stock = nn.Conv2d(cin, cout, kernel, 1, padding, bias=bias).double().to(memory_format=fmt)
    stock.load_state_dict(thin.state_dict())
    x = torch.randn(2, cin, *size, dtype=torch.float64).contiguous(memory_format=fmt)
    _assert_same(_grads(thin, x), _grads(stock, x), tol=1e-10)
    assert gemm_calls == {"fold": 1, "unfold": 1}  # weights first: forward fold, backward unfold


@pytest.mark.parametrize(
    ("cin", "cout", "stride", "padding"), [(255, 1, 1, 1), (512, 1, 2, 1), (256, 1, 1, 4)]
)
def test_thin_output_form_needs_its_channel_ratio_stride_1_and_a_padding_below_the_kernel(
    gemm_calls, cin, cout, stride, padding
):
    conv = GemmConv2d(cin, cout, 4, stride, padding)
    conv(torch.randn(2, cin, 32, 32))  # 2 x 15 x 15 rows and more: above the GEMM row limit
    assert gemm_calls == {"fold": 0, "unfold": 0}


def test_thin_output_conv_is_twice_differentiable(monkeypatch):
    """Gradient penalties (WGAN-GP) differentiate the discriminator's input gradient again."""
    monkeypatch.setattr(layers, "THIN_OUTPUT_MIN_RATIO", 2)
    torch.manual_seed(0)
    conv = GemmConv2d(4, 2, 3, 1, 1).double()
    assert conv._thin_output()
    x = torch.randn(1, 4, 4, 3, dtype=torch.float64, requires_grad=True)
    weight = conv.weight.detach().clone().requires_grad_()
    fn = lambda inp, w: layers._thin_output_conv(inp, w, conv.bias, (1, 1))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, weight))
    assert torch.autograd.gradgradcheck(fn, (x, weight))


def test_patchgan_with_its_thin_last_conv_trains_as_the_stock_one(gemm_calls):
    """ndf=32: the last conv is 256 -> 1, which takes the weights-first form; the gradient
    penalty's double backward goes through it too."""
    from i2i.losses.adversarial import WGANGPLoss

    torch.manual_seed(0)
    fast = patch70(6, ndf=32).to(memory_format=torch.channels_last)
    stock = copy.deepcopy(fast)
    set_speedups(stock, False)
    x = torch.randn(2, 6, 64, 64).contiguous(memory_format=torch.channels_last)
    got = _grads(fast, x)
    assert gemm_calls["fold"] == 1
    _assert_same(got, _grads(stock, x), tol=1e-4)
    fake = torch.randn_like(x)
    penalties = []
    for net in (fast, stock):
        torch.manual_seed(1)
        gp = WGANGPLoss().penalty(net, x, fake)
        params = list(net.parameters())
        grads = torch.autograd.grad(gp, params, allow_unused=True)  # the last bias: unused
        penalties.append(
            (
                gp.detach(),
                *(
                    torch.zeros_like(p) if g is None else g
                    for p, g in zip(params, grads, strict=True)
                ),
            )
        )
    _assert_same(penalties[0], penalties[1], tol=1e-4)


def test_bf16_autocast_stays_close_to_fp32():
    torch.manual_seed(0)
    up = GemmConvTranspose2d(64, 32, 4, 2, 1)
    x = torch.randn(1, 64, 2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = up(x)
    ref = F.conv_transpose2d(x, up.weight, up.bias, 2, 1)
    assert y.dtype == torch.bfloat16
    assert (y.float() - ref).abs().max() <= 0.02 * ref.abs().max()


@pytest.mark.parametrize("fmt", FORMATS)
def test_unet_gradients_match_with_speedups_off(gemm_calls, fmt):
    torch.manual_seed(0)
    fast = unet_128(3, 3, ngf=8, dropout=False).to(memory_format=fmt)
    stock = copy.deepcopy(fast)
    set_speedups(stock, False)
    x = torch.randn(2, 3, 128, 128).contiguous(memory_format=fmt)
    got = _grads(fast, x)
    calls = dict(gemm_calls)
    _assert_same(got, _grads(stock, x))
    assert calls["unfold"] > 0 and calls["fold"] > 0  # the fast network used its GEMM paths
    assert gemm_calls == calls  # the stock one did not


def test_a_unet_with_dropout_trains_alike_in_both_layouts():
    """One seed, the same dropout masks and gradients (to rounding) whether the activations are
    NCHW or channels_last, although the GEMM layers hand on channels_last outputs."""
    torch.manual_seed(0)
    nchw = unet_128(3, 3, ngf=8)
    nhwc = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 128, 128)
    grads = []
    for net, inp in ((nchw, x), (nhwc, x.contiguous(memory_format=torch.channels_last))):
        torch.manual_seed(1)
        grads.append(_grads(net, inp))
    _assert_same(grads[1], grads[0], tol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_logical_order_dropout_is_torch_dropout_on_contiguous_inputs(dtype):
    x = torch.randn(2, 8, 4, 4, dtype=dtype, requires_grad=True)
    drop = LogicalOrderDropout(0.5)
    torch.manual_seed(3)
    want = nn.Dropout(0.5)(x)
    torch.manual_seed(3)
    got = drop(x)
    assert torch.equal(got, want)
    torch.manual_seed(3)
    last = drop(x.detach().contiguous(memory_format=torch.channels_last).requires_grad_())
    assert torch.equal(last, want) and last.grad_fn is not None


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("kernel", "output_padding", "side"), [(3, 1, 20), (4, 0, 24)]
)  # above the GEMM row limit: oneDNN's kernel, with the bias added apart where that pays
def test_large_transposed_convs_match_the_stock_layer_bias_gradient_included(
    fmt, kernel, output_padding, side
):
    torch.manual_seed(0)
    args = (16, 8, kernel, 2, 1, output_padding)
    fast = GemmConvTranspose2d(*args).to(memory_format=fmt)
    stock = nn.ConvTranspose2d(*args).to(memory_format=fmt)
    stock.load_state_dict(fast.state_dict())
    x = torch.randn(2, 16, side, side).contiguous(memory_format=fmt)
    assert 2 * side * side > SMALL_GEMM_ROWS
    _assert_same(_grads(fast, x), _grads(stock, x))
    fast_bf16, stock_bf16 = [], []
    for net, out in ((fast, fast_bf16), (stock, stock_bf16)):
        with torch.autocast("cpu", torch.bfloat16):
            out.extend(_grads(net, x))
    fp32 = _grads(stock, x)
    for got, want, exact in zip(fast_bf16, stock_bf16, fp32, strict=True):
        # the same to bf16 rounding: as close to fp32 as the stock layer's own bf16 result
        assert (got.float() - exact).abs().max() <= 2 * (want.float() - exact).abs().max() + 1e-2


def test_thin_output_conv_in_bf16_rounds_about_as_onednn_does():
    """Under bf16 autocast the 16 taps are summed in fp32: the rounding error stays near
    oneDNN's (summed in bf16 it was 3.4x)."""
    torch.manual_seed(0)
    thin = GemmConv2d(512, 1, 4, 1, 1).to(memory_format=torch.channels_last)
    x = F.leaky_relu(torch.randn(2, 512, 31, 31), 0.2).contiguous(memory_format=torch.channels_last)
    as_bf16 = [t.to(torch.bfloat16).double() for t in (x, thin.weight, thin.bias)]
    exact = F.conv2d(*as_bf16, 1, 1)  # the exact result for the bf16-rounded operands
    with torch.autocast("cpu", torch.bfloat16):
        ours, onednn = thin(x), nn.Conv2d.forward(thin, x)
    assert ours.dtype == onednn.dtype == torch.bfloat16
    rms = [(y.double() - exact).square().mean().sqrt().item() for y in (ours, onednn)]
    assert rms[0] <= 2 * rms[1], rms
