"""The pix2pix U-Net and its skip-less encoder-decoder twin: one class, thin named presets.

Paper plan (Isola et al. 2017, appendix 6.1.1) for 256 x 256 images, ``Ck`` = conv-norm-ReLU
with ``k`` filters, ``CDk`` = the same with 50 % dropout::

    encoder  C64-C128-C256-C512-C512-C512-C512-C512
    decoder  CD512-CD512-CD512-C512-C256-C128-C64   (then conv to out_channels, Tanh)

Each conv is 4 x 4 with stride 2. The U-Net concatenates encoder layer ``i`` with decoder layer
``n - i``. Encoder activations are LeakyReLU(0.2), decoder ReLU; the first encoder layer has no
norm, and neither has the innermost one (its output is 1 x 1), as in the official code.

Dropout sits in the first three decoder blocks, as the paper says; the official code instead
leaves the innermost decoder block without dropout and puts it in the ``num_downs - 5`` after it
(three for ``unet_256``, two for ``unet_128``): ``dropout_layout="official"`` does that, for
models converted from the official code (``i2i convert``), whose test-time outputs with dropout
on then have the official distribution.

>>> import torch
>>> g = unet_256(3, 2, ngf=4)
>>> g(torch.zeros(1, 3, 256, 256)).shape, g.size_multiple
(torch.Size([1, 2, 256, 256]), 256)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from i2i.models.layers import (
    GemmConv2d,
    GemmConvTranspose2d,
    LogicalOrderDropout,
    check_image_batch,
    check_norm,
    dense_grad,
    init_weights,
    norm_layer,
    speedups_apply,
    uses_bias,
)

DROPOUT_BLOCKS = 3  # decoder blocks with dropout: the paper's noise z
DROPOUT_LAYOUTS = ("paper", "official")


def dropout_blocks(num_downs: int, layout: str = "paper") -> range:
    """Indices of the decoder blocks (0 = innermost) that end with dropout.

    >>> list(dropout_blocks(8)), list(dropout_blocks(8, "official")), list(dropout_blocks(7, "official"))
    ([0, 1, 2], [1, 2, 3], [1, 2])
    """
    if layout not in DROPOUT_LAYOUTS:
        raise ValueError(
            f"dropout_layout must be one of {', '.join(DROPOUT_LAYOUTS)}; got {layout!r}"
        )
    if layout == "official":
        return range(1, max(num_downs - 4, 1))
    return range(min(DROPOUT_BLOCKS, num_downs - 1))


class UNetGenerator(nn.Module):
    """Encoder-decoder of ``num_downs`` stride-2 convs, with or without U-Net skips.

    Input ``(B, in_channels, H, W)`` in [-1, 1] with ``H`` and ``W`` multiples of
    ``size_multiple = 2 ** num_downs``; output ``(B, out_channels, H, W)`` in [-1, 1].

    >>> g = UNetGenerator(1, 2, num_downs=5, ngf=4)
    >>> g(torch.zeros(2, 1, 64, 32)).shape
    torch.Size([2, 2, 64, 32])
    """

    #: Speed paths on (see :func:`i2i.models.layers.set_speedups`); same results either way.
    speedups: bool = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: bool = True,
        skips: bool = True,
        dropout_layout: str = "paper",
    ):
        super().__init__()
        check_norm(norm)
        if num_downs < 2:
            raise ValueError(f"num_downs must be at least 2, got {num_downs}")
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("ngf", ngf),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_downs, self.skips = num_downs, skips
        self.size_multiple = 2**num_downs
        bias = uses_bias(norm)
        dropped = dropout_blocks(num_downs, dropout_layout) if dropout else range(0)
        widths = [ngf * min(2**i, 8) for i in range(num_downs)]  # 64 128 256 512 512 ...
        n = num_downs

        encoder = []
        for i in range(n):
            c_in = in_channels if i == 0 else widths[i - 1]
            conv = GemmConv2d(c_in, widths[i], 4, stride=2, padding=1, bias=bias)
            if i == 0:
                encoder.append(nn.Sequential(conv))
            elif i == n - 1:  # innermost: 1 x 1 output, no norm
                encoder.append(nn.Sequential(nn.LeakyReLU(0.2), conv))
            else:
                encoder.append(nn.Sequential(nn.LeakyReLU(0.2), conv, norm_layer(norm, widths[i])))
        self.encoder = nn.ModuleList(encoder)

        decoder = []
        for j in range(n):
            level = n - 1 - j  # the encoder layer this decoder layer mirrors
            c_in = widths[level] * (2 if skips and j > 0 else 1)
            if level == 0:  # outermost
                conv = GemmConvTranspose2d(c_in, out_channels, 4, stride=2, padding=1)
                decoder.append(nn.Sequential(nn.ReLU(inplace=True), conv, nn.Tanh()))
                continue
            c_out = widths[level - 1]
            conv = GemmConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=bias)
            block = [nn.ReLU(inplace=True), conv, norm_layer(norm, c_out)]
            if j in dropped:
                block.append(LogicalOrderDropout(0.5))
            decoder.append(nn.Sequential(*block))
        self.decoder = nn.ModuleList(decoder)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(
            x,
            self.in_channels,
            name=type(self).__name__,
            size_multiple=self.size_multiple,
            why=f" with {self.num_downs} downsamplings",
        )
        features = []
        for layer in self.encoder:
            x = layer(x)
            features.append(x)
        n = self.num_downs
        for j, layer in enumerate(self.decoder):
            if self.skips and j > 0:
                skip = features[n - 1 - j]
                x = torch.cat([skip, dense_grad(x) if speedups_apply(self, x) else x], dim=1)
            x = layer(x)
        return x


def unet_256(
    in_channels: int,
    out_channels: int,
    *,
    ngf: int = 64,
    norm: str = "batch",
    dropout: bool = True,
    dropout_layout: str = "paper",
) -> UNetGenerator:
    """U-Net with 8 downsamplings (pix2pix default for 256 x 256): sizes multiple of 256.

    >>> unet_256(3, 3, ngf=4).size_multiple
    256
    """
    return UNetGenerator(
        in_channels,
        out_channels,
        num_downs=8,
        ngf=ngf,
        norm=norm,
        dropout=dropout,
        dropout_layout=dropout_layout,
    )


def unet_128(
    in_channels: int,
    out_channels: int,
    *,
    ngf: int = 64,
    norm: str = "batch",
    dropout: bool = True,
    dropout_layout: str = "paper",
) -> UNetGenerator:
    """U-Net with 7 downsamplings (for 128 x 128): sizes multiple of 128.

    >>> unet_128(3, 3, ngf=4)(torch.zeros(1, 3, 128, 128)).shape
    torch.Size([1, 3, 128, 128])
    """
    return UNetGenerator(
        in_channels,
        out_channels,
        num_downs=7,
        ngf=ngf,
        norm=norm,
        dropout=dropout,
        dropout_layout=dropout_layout,
    )


def encoder_decoder_256(
    in_channels: int, out_channels: int, *, ngf: int = 64, norm: str = "batch", dropout: bool = True
) -> UNetGenerator:
    """The paper's encoder-decoder baseline: the U-Net of 8 downsamplings without skips.

    >>> encoder_decoder_256(3, 3, ngf=4).skips
    False
    """
    return UNetGenerator(
        in_channels, out_channels, num_downs=8, ngf=ngf, norm=norm, dropout=dropout, skips=False
    )


def encoder_decoder_128(
    in_channels: int, out_channels: int, *, ngf: int = 64, norm: str = "batch", dropout: bool = True
) -> UNetGenerator:
    """Encoder-decoder with 7 downsamplings, no skips: sizes multiple of 128.

    >>> encoder_decoder_128(3, 3, ngf=4).size_multiple
    128
    """
    return UNetGenerator(
        in_channels, out_channels, num_downs=7, ngf=ngf, norm=norm, dropout=dropout, skips=False
    )
