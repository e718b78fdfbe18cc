"""Building blocks shared by the generators and discriminators: norm layers and weight init.

>>> isinstance(norm_layer("instance", 8), nn.InstanceNorm2d)
True
>>> uses_bias("batch"), uses_bias("instance")
(False, True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from i2i.models.im2col import (
    FoldNhwc,
    Pair,
    UnfoldNhwc,
    conv_output_size,
    conv_transpose_output_size,
)

NORMS = ("batch", "instance", "none")


def check_norm(norm: str) -> str:
    """Return ``norm`` when it is one of :data:`NORMS`, else raise a ``ValueError``.

    >>> check_norm("batch")
    'batch'
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
    return norm


def uses_bias(norm: str) -> bool:
    """Whether a conv followed by ``norm`` has a bias (BatchNorm's shift makes it redundant).

    >>> uses_bias("none")
    True
    """
    return check_norm(norm) != "batch"


def norm_layer(norm: str, channels: int) -> nn.Module:
    """The norm layer for ``channels`` channels, as the official pix2pix code builds it.

    ``batch``: ``BatchNorm2d`` (affine, running stats); ``instance``: ``InstanceNorm2d`` with
    ``affine=False, track_running_stats=False`` (:class:`LayoutKeepingInstanceNorm2d`, the
    same layer keeping channels_last inputs channels_last); ``none``: ``Identity``.

    >>> n = norm_layer("instance", 4)
    >>> n.affine, n.track_running_stats, type(norm_layer("none", 4)).__name__
    (False, False, 'Identity')
    """
    check_norm(norm)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return LayoutKeepingInstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


def capturing_graph() -> bool:
    """Whether this code runs under ``torch.jit`` tracing or scripting or ``torch.compile``:
    then i2i's eager-only paths (GEMM small convolutions, layout-keeping norms, dense skip
    gradients, weight packing for a size) step aside and the stock operations are recorded.

    >>> capturing_graph()
    False
    """
    return torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()


def speedups_apply(module: nn.Module, x: Tensor) -> bool:
    """Whether ``module``'s speed path runs for ``x``: switched on (:func:`set_speedups`), ``x``
    on the CPU, and not while tracing, scripting or compiling (exported and compiled graphs keep
    the stock operations, which generalise to other sizes).

    The speed paths were tuned against oneDNN on CPUs; on a CUDA GPU (an H200) cuDNN's stock
    kernels ran 1.1-1.5x faster than them (benchmarks/README.md, *GPU*), so other devices
    always take the stock operations.

    >>> conv = GemmConv2d(4, 4, 3)
    >>> speedups_apply(conv, torch.zeros(1, 4, 4, 4)), speedups_apply(conv, torch.zeros(1, 4, 4, 4, device="meta"))
    (True, False)
    """
    return bool(module.speedups) and x.device.type == "cpu" and not capturing_graph()


def dropout_in_logical_order(x: Tensor, p: float) -> Tensor:
    """Dropout whose mask is drawn in ``x``'s logical order: for a contiguous ``x`` the same
    result as ``torch.nn.functional.dropout(x, p, training=True)`` under the same seed (on the
    CPU), and for any other layout the same values as for ``x.contiguous()``.

    >>> x = torch.ones(1, 4, 3, 3)
    >>> _ = torch.manual_seed(0); a = dropout_in_logical_order(x, 0.5)
    >>> _ = torch.manual_seed(0); b = dropout_in_logical_order(x.to(memory_format=torch.channels_last), 0.5)
    >>> torch.equal(a, b)
    True
    """
    if p <= 0:
        return x
    if p >= 1:
        return x * 0
    keep = torch.empty(x.shape, dtype=x.dtype, device=x.device).bernoulli_(1 - p)
    return x * keep.div_(1 - p)


class LogicalOrderDropout(nn.Dropout):
    """``nn.Dropout`` whose mask does not depend on the input's memory layout: a contiguous
    input gets torch's own dropout, any other (channels_last) the mask of its contiguous form
    (:func:`dropout_in_logical_order`). So one seed trains the same course with NCHW and
    channels_last activations, whichever layout each layer hands on.

    >>> drop = LogicalOrderDropout(0.5)
    >>> x = torch.ones(2, 3, 4, 4)
    >>> _ = torch.manual_seed(0); a = drop(x)
    >>> _ = torch.manual_seed(0); b = drop(x.to(memory_format=torch.channels_last))
    >>> torch.equal(a, b), torch.equal(drop.eval()(x), x)
    (True, True)
    """

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or x.is_contiguous() or self.inplace:
            return super().forward(x)
        return dropout_in_logical_order(x, self.p)


class LayoutKeepingInstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` whose output keeps a channels_last input's memory format.

    PyTorch's instance norm returns NCHW whatever it is given, so in a channels_last network
    (a CycleGAN ResNet, a PatchGAN with instance norm) every convolution after it reorders its
    input back (see benchmarks/README.md, item 14, for what that cost). Without
    running statistics, instance norm of one sample is batch norm in training mode over that
    sample, which runs natively on channels_last tensors at the speed of instance norm on NCHW
    ones; this layer does that per sample. Same state dict and results (up to float rounding)
    as ``nn.InstanceNorm2d``; NCHW inputs, running statistics and ``speedups = False`` (see
    :func:`set_speedups`) take PyTorch's own path.

    >>> norm = LayoutKeepingInstanceNorm2d(4)
    >>> x = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    >>> y = norm(x)
    >>> y.is_contiguous(memory_format=torch.channels_last)
    True
    >>> torch.allclose(y, F.instance_norm(x.contiguous()), atol=1e-5)
    True
    """

    speedups: bool = True

    def forward(self, x: Tensor) -> Tensor:
        keep = (
            speedups_apply(self, x)
            and x.dim() == 4
            and not self.track_running_stats
            and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous()
        )
        if not keep:
            return super().forward(x)
        w, b = self.weight, self.bias
        # x itself at batch 1, else split: a slice's backward fills a zero tensor of x's whole
        # size for every sample (0.7 ms at 256 x 64 x 64, 130 ms of a CycleGAN step on Zen 5)
        samples = (x,) if x.shape[0] == 1 else x.split(1)
        parts = [F.batch_norm(s, None, None, w, b, training=True, eps=self.eps) for s in samples]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class DtypeKeepingReflectionPad2d(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d`` that pads a bf16 tensor in bf16 under CPU autocast.

    CPU autocast runs reflection padding in fp32, so under bf16 autocast every padded
    activation of a ResNet generator was cast to fp32, padded, and cast back to bf16 by the
    next convolution, and its gradient the same way back: 432 casts in a CycleGAN step
    (benchmarks/README.md, item 19). Padding only copies values, so the convolution receives
    the very same bf16 values; in the backward pass the border gradients (at most four terms)
    are summed in bf16 instead of fp32, the same to rounding. Off the speed path
    (:func:`set_speedups`, other devices, tracing) it is ``nn.ReflectionPad2d``.

    >>> pad = DtypeKeepingReflectionPad2d(1)
    >>> x = torch.randn(1, 2, 4, 4).bfloat16()
    >>> with torch.autocast("cpu", torch.bfloat16):
    ...     y = pad(x)
    >>> y.dtype, torch.equal(y, nn.ReflectionPad2d(1)(x.float()).bfloat16())
    (torch.bfloat16, True)
    """

    speedups: bool = True

    def forward(self, x: Tensor) -> Tensor:
        if not speedups_apply(self, x):
            return super().forward(x)
        with torch.autocast("cpu", enabled=False):  # x's own dtype, whatever autocast says
            return super().forward(x)


def init_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """pix2pix init in place: conv weights ~ N(0, std), norm weights ~ N(1, std), biases 0.

    >>> m = init_weights(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)))
    >>> m[0].bias.abs().max().item(), m[1].bias.abs().max().item()
    (0.0, 0.0)
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


def check_image_batch(
    x: Tensor, in_channels: int, *, name: str, size_multiple: int = 1, why: str = ""
) -> None:
    """Refuse ``x`` unless it is ``(B, in_channels, H, W)`` with ``H`` and ``W`` multiples of
    ``size_multiple``: a ``ValueError`` naming the network ``name`` (and ``why`` the sides must
    be multiples, e.g. " with 8 downsamplings") and the shape it got.

    >>> check_image_batch(torch.zeros(1, 3, 8, 8), 3, name="net", size_multiple=4)
    >>> check_image_batch(torch.zeros(1, 3, 6, 8), 3, name="net", size_multiple=4, why=" with 2 downsamplings")
    Traceback (most recent call last):
    ...
    ValueError: net with 2 downsamplings needs H and W multiples of 4, got 6 x 8
    >>> check_image_batch(torch.zeros(3, 8, 8), 3, name="net")
    Traceback (most recent call last):
    ...
    ValueError: net expected (B, 3, H, W), got (3, 8, 8)
    """
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"{name} expected (B, {in_channels}, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % size_multiple or w % size_multiple:
        raise ValueError(f"{name}{why} needs H and W multiples of {size_multiple}, got {h} x {w}")


# --- speed helpers ---------------------------------------------------------------------------


def dense_grad(t: Tensor) -> Tensor:
    """``t`` itself, whose gradient will arrive dense, in ``t``'s own memory format.

    The gradient of one input of ``torch.cat`` is a channel slice of the output's gradient:
    strided, neither NCHW- nor channels_last-contiguous. Batch norm's backward on such a
    gradient takes a generic path 5x (NCHW) to 20x (channels_last) slower than on a dense one;
    one copy (about 1 ms for a 8 x 64 x 128 x 128 bf16 tensor) avoids that. A no-op without
    grad, and while tracing or compiling; callers ask :func:`speedups_apply` first (the CPU
    only).

    >>> x = torch.ones(1, 2, 3, 3, requires_grad=True)
    >>> y = torch.cat([torch.zeros(1, 1, 3, 3), dense_grad(x * 1)], 1)
    >>> y.sum().backward(); x.grad.shape
    torch.Size([1, 2, 3, 3])
    """
    if not t.requires_grad or capturing_graph():
        return t
    fmt = torch.channels_last if _is_channels_last(t) else torch.contiguous_format
    t.register_hook(lambda g: g.contiguous(memory_format=fmt))
    return t


# --- small convolutions as one matrix multiply ----------------------------------------------

#: Convolutions whose matrix multiply has at most this many rows (batch x output positions for
#: a conv, batch x input positions for a transposed conv) run as one GEMM with im2col/col2im
#: (channels_last weights: :mod:`i2i.models.im2col`'s NHWC columns; NCHW weights:
#: ``F.unfold``/``F.fold``) instead of through oneDNN, whose kernels are slow on such tiny
#: images: the innermost U-Net layers (1 x 1 to 8 x 8 pixels, 512-1024 channels) train 2-5x
#: faster on a CPU this way (see benchmarks/README.md). Same parameters, same result (to
#: rounding). Without grad (inference) the GEMM wins on fewer rows only.
SMALL_GEMM_ROWS = 256
SMALL_GEMM_ROWS_NO_GRAD = 64


def _gemm_rows_limit() -> int:
    return SMALL_GEMM_ROWS if torch.is_grad_enabled() else SMALL_GEMM_ROWS_NO_GRAD


#: A stride-1 convolution with at least this many input channels per output channel (the
#: PatchGAN's last layer, 512 -> 1) runs "weights first": one GEMM of the input pixels with
#: all kernel taps, then the taps' thin results summed into place (:func:`_thin_output_conv`).
#: oneDNN's kernels compute such thin outputs at a few percent of the peak; this form was
#: 1.2-3.8x faster forward + backward for 256 -> 1 and 512 -> 1, in bf16 and fp32, with and
#: without AVX-512 (benchmarks/README.md, *What changed*, item 21).
THIN_OUTPUT_MIN_RATIO = 256


def _gemm_possible(module: nn.Module, x: Tensor) -> bool:
    """Whether ``module`` may take its GEMM path for ``x`` at all (size not yet considered).

    Only where :func:`speedups_apply` says so (the CPU, not while tracing or compiling).
    """
    return (
        speedups_apply(module, x)
        and x.ndim == 4
        and module.groups == 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


def _is_channels_last(w: Tensor) -> bool:
    return not w.is_contiguous() and w.is_contiguous(memory_format=torch.channels_last)


class GemmConv2d(nn.Conv2d):
    """``nn.Conv2d`` that computes small problems as ``im2col`` + one matrix multiply.

    Used exactly like ``nn.Conv2d`` (same parameters and state dict); with ``speedups``
    false (see :func:`set_speedups`), or for larger inputs, it *is* ``nn.Conv2d``. The GEMM
    path's output is channels_last, the layout it produces for free.

    >>> conv = GemmConv2d(8, 4, 4, stride=2, padding=1)
    >>> x = torch.randn(2, 8, 4, 4)
    >>> torch.allclose(conv(x), nn.functional.conv2d(x, conv.weight, conv.bias, 2, 1), atol=1e-6)
    True
    """

    speedups: bool = True

    def forward(self, x: Tensor) -> Tensor:
        if not _gemm_possible(self, x):
            return super().forward(x)
        b, _, h, w = x.shape
        kernel, stride, padding, dilation = (
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
        )
        ho, wo = conv_output_size((h, w), kernel, stride, padding, dilation)
        if ho < 1 or wo < 1:
            return super().forward(x)
        if self._thin_output():  # at any size: never slower than oneDNN or im2col (item 21)
            return _thin_output_conv(x, self.weight, self.bias, padding)
        if b * ho * wo > _gemm_rows_limit():
            return super().forward(x)
        weight = self.weight
        if _is_channels_last(weight):
            # memory order (Cout, kh, kw, Cin): columns in that order, from NHWC windows
            weight = weight.permute(0, 2, 3, 1)
            windows = UnfoldNhwc.apply(x.permute(0, 2, 3, 1), kernel, stride, padding, dilation)
            rows = windows.view(b * ho * wo, -1)
        else:
            cols = F.unfold(x, kernel, dilation, padding, stride)  # (B, Cin*kh*kw, L)
            rows = cols.transpose(1, 2).reshape(b * ho * wo, -1)
        # One 2-D GEMM (B*L, K) @ (K, Cout): a batched matmul would broadcast the weight.
        out = torch.mm(rows, weight.reshape(self.out_channels, -1).t())  # (B*L, Cout)
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out.view(b, ho, wo, self.out_channels).permute(0, 3, 1, 2)

    def _thin_output(self) -> bool:
        """Whether this layer takes the weights-first form (:data:`THIN_OUTPUT_MIN_RATIO`)."""
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        return (
            self.in_channels >= THIN_OUTPUT_MIN_RATIO * self.out_channels
            and tuple(self.stride) == (1, 1)
            and tuple(self.dilation) == (1, 1)
            and kh * kw > 1
            and ph < kh
            and pw < kw
        )


def _thin_output_conv(x: Tensor, weight: Tensor, bias: Tensor | None, padding: Pair) -> Tensor:
    """A stride-1 convolution computed weights first; channels_last output.

    A stride-1 convolution is the stride-1 transposed convolution with the kernel flipped and
    padding ``k - 1 - p``: one GEMM gives every input pixel's product with every tap,
    ``(B*H*W, Cin) @ (Cin, kh*kw*Cout)``, and :class:`FoldNhwc` adds the taps' results into
    place. For few output channels the columns are ``Cin`` times smaller than im2col's. The
    taps are summed in fp32 (or fp64), whatever the GEMM's dtype: bf16 sums of 16 taps had
    3.4x the rounding error of oneDNN's kernel, fp32 sums 1.5x.

    >>> x, w = torch.randn(2, 512, 6, 7), torch.randn(1, 512, 4, 4)
    >>> ref = F.conv2d(x, w, None, 1, 1)
    >>> torch.allclose(_thin_output_conv(x, w, None, (1, 1)), ref, atol=1e-3)
    True
    """
    b, c, h, w = x.shape
    cout, _, kh, kw = weight.shape
    ph, pw = padding
    ho, wo = conv_output_size((h, w), (kh, kw), (1, 1), padding, (1, 1))
    rows = x.permute(0, 2, 3, 1).reshape(b * h * w, c)  # a view for channels_last x
    taps = weight.flip(2, 3).permute(1, 2, 3, 0).reshape(c, kh * kw * cout)
    cols = torch.mm(rows, taps)
    dtype = cols.dtype  # bf16 under autocast: the taps are summed in fp32, as oneDNN does
    cols = cols.to(torch.promote_types(dtype, torch.float32)).view(b, h, w, kh, kw, cout)
    flipped_padding = (kh - 1 - ph, kw - 1 - pw)
    out = FoldNhwc.apply(cols, ho, wo, (kh, kw), (1, 1), flipped_padding, (1, 1))
    if bias is not None:
        out = out + bias.to(out.dtype)
    return out.permute(0, 3, 1, 2).to(dtype)


class GemmConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` that computes small problems as one matrix multiply + ``col2im``.

    Used exactly like ``nn.ConvTranspose2d`` (same parameters and state dict); with
    ``speedups`` false, for larger inputs, or with ``output_size``/``output_padding``, it
    computes what ``nn.ConvTranspose2d`` computes, through the same kernels, but for a bias
    that needs a gradient (:func:`_bias_apart`).

    >>> up = GemmConvTranspose2d(8, 4, 4, stride=2, padding=1)
    >>> x = torch.randn(2, 8, 3, 5)
    >>> ref = nn.functional.conv_transpose2d(x, up.weight, up.bias, 2, 1)
    >>> up(x).shape, torch.allclose(up(x), ref, atol=1e-6)
    (torch.Size([2, 4, 6, 10]), True)
    """

    speedups: bool = True

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if output_size is not None or any(self.output_padding) or not _gemm_possible(self, x):
            return self._stock_forward(x, output_size)
        b, c, h, w = x.shape
        if b * h * w > _gemm_rows_limit():
            return self._stock_forward(x)
        kernel, stride, padding, dilation = geometry = (
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
        )
        (kh, kw), cout = kernel, self.out_channels
        ho, wo = conv_transpose_output_size((h, w), *geometry)
        rows = x.permute(0, 2, 3, 1).reshape(b * h * w, c)  # a view for channels_last x
        weight = self.weight
        if _is_channels_last(weight):  # memory order (Cin, kh, kw, Cout): NHWC columns
            cols = torch.mm(rows, weight.permute(0, 2, 3, 1).reshape(c, -1))
            cols = cols.view(b, h, w, kh, kw, cout)
            out = FoldNhwc.apply(cols, ho, wo, *geometry).permute(0, 3, 1, 2)
        else:
            cols = torch.mm(rows, weight.reshape(c, -1)).view(b, h * w, -1).transpose(1, 2)
            out = F.fold(
                cols.reshape(b, cout * kh * kw, h * w), (ho, wo), kernel, dilation, padding, stride
            )
        if self.bias is not None:
            out = out + self.bias.to(out.dtype).view(1, -1, 1, 1)
        return out

    def _stock_forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        """oneDNN's transposed convolution; a bias that needs a gradient is added after it."""
        if not _bias_apart(self, x):
            return super().forward(x, output_size)
        output_padding = self._output_padding(
            x, output_size, self.stride, self.padding, self.kernel_size, 2, self.dilation
        )
        out = F.conv_transpose2d(
            x,
            self.weight,
            None,
            self.stride,
            self.padding,
            output_padding,
            self.groups,
            self.dilation,
        )
        return out + self.bias.to(out.dtype).view(1, -1, 1, 1)


def _bias_apart(module: nn.Module, x: Tensor) -> bool:
    """Whether ``module`` (a transposed convolution) adds its bias after oneDNN's kernel
    instead of inside it: where the bias needs a gradient, on the speed path, in bf16 or fp16
    or channels_last (not in plain fp32 or fp64 NCHW).

    oneDNN's transposed-convolution backward computes the bias gradient far slower than a
    sum over the output gradient: 6.5 ms against 0.16 ms for the CycleGAN generator's
    128 -> 64 layer at 128 px in bf16 channels_last, 2.2 ms in bf16 NCHW, 2.0 ms in fp32
    channels_last, but nothing in fp32 NCHW (benchmarks/README.md, *What changed*, item 22).
    The add costs one pass over the output; the values are the same to rounding.
    """
    bias = module.bias
    if bias is None or not bias.requires_grad or not torch.is_grad_enabled():
        return False
    if not speedups_apply(module, x):
        return False
    low_precision = torch.is_autocast_enabled("cpu") or x.dtype in (torch.bfloat16, torch.float16)
    return low_precision or _is_channels_last(x) or _is_channels_last(module.weight)


def set_speedups(module: nn.Module, enabled: bool) -> int:
    """Switch i2i's speed paths in ``module`` on or off; returns how many modules were switched.

    They are the GEMM path of :class:`GemmConv2d`/:class:`GemmConvTranspose2d`, the dense
    skip gradients of the U-Net (:func:`dense_grad`), the channels_last path of
    :class:`LayoutKeepingInstanceNorm2d` and the bf16 padding of
    :class:`DtypeKeepingReflectionPad2d`. Off, a network runs exactly the stock
    PyTorch operations of the official pix2pix code (the benchmarks' reference path does this);
    the results are the same either way, up to float rounding. On other devices than the CPU
    they never run (:func:`speedups_apply`).

    >>> net = nn.Sequential(GemmConv2d(3, 4, 4, 2, 1), GemmConvTranspose2d(4, 3, 4, 2, 1))
    >>> set_speedups(net, False), net[0].speedups
    (2, False)
    """
    switched = [m for m in module.modules() if isinstance(getattr(type(m), "speedups", None), bool)]
    for m in switched:
        m.speedups = enabled
    return len(switched)
