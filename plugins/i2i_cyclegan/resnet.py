"""ResNet generators (Johnson et al. 2016), as CycleGAN uses them: ``resnet_6blocks``, ``resnet_9blocks``.

Plan, ``c7s1-k`` = 7 x 7 conv with ``k`` filters and stride 1 after a reflection pad of 3,
``dk`` = 3 x 3 conv stride 2, ``Rk`` = residual block of two 3 x 3 convs (reflection pad 1),
``uk`` = 3 x 3 transposed conv stride 2; every conv but the last is followed by the norm and ReLU::

    c7s1-64, d128, d256, R256 x n_blocks, u128, u64, c7s1-out (then Tanh)

Two stride-2 downsamplings, so image sides must be multiples of ``size_multiple = 4``.

The module tree is that of ``ResnetGenerator`` in the official pytorch-CycleGAN-and-pix2pix
code: one ``nn.Sequential`` named ``model`` whose residual blocks hold an ``nn.Sequential``
named ``conv_block``, so an official state dict loads as it is. Conv biases follow the official
rule too: a conv has a bias only with ``norm="instance"`` (BatchNorm's shift makes one
redundant; with ``norm="none"`` the official code also leaves them out); the last conv always
has one. Instance norm has no affine parameters and no running statistics, as there.

>>> import torch
>>> g = resnet_6blocks(3, 2, ngf=8)
>>> g(torch.zeros(1, 3, 32, 32)).shape, g.size_multiple
(torch.Size([1, 2, 32, 32]), 4)
"""

from __future__ import annotations

from torch import Tensor, nn

from i2i import (
    DtypeKeepingReflectionPad2d,
    GemmConvTranspose2d,
    LogicalOrderDropout,
    check_image_batch,
    init_weights,
    norm_layer,
)

NORMS = ("batch", "instance", "none")
N_DOWNSAMPLING = 2


class ResnetBlock(nn.Module):
    """``x + conv_block(x)``: pad, 3 x 3 conv, norm, ReLU, (dropout), pad, 3 x 3 conv, norm.

    >>> import torch
    >>> ResnetBlock(4, norm="instance", bias=True)(torch.zeros(1, 4, 8, 8)).shape
    torch.Size([1, 4, 8, 8])
    """

    def __init__(self, channels: int, *, norm: str, bias: bool, dropout: bool = False):
        super().__init__()
        layers: list[nn.Module] = [
            DtypeKeepingReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
            nn.ReLU(inplace=True),
        ]
        if dropout:
            layers.append(LogicalOrderDropout(0.5))  # one seed, one mask in either layout
        layers += [
            DtypeKeepingReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
        ]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Downsample twice, ``n_blocks`` residual blocks, upsample twice.

    Input ``(B, in_channels, H, W)`` in [-1, 1] with ``H`` and ``W`` multiples of 4; output
    ``(B, out_channels, H, W)`` in [-1, 1]. ``dropout`` puts a 50 % dropout in every residual
    block (the official code's default for pix2pix; CycleGAN trains with ``--no_dropout``).

    >>> import torch
    >>> g = ResnetGenerator(1, 3, n_blocks=2, ngf=4, norm="batch")
    >>> g(torch.zeros(2, 1, 16, 12)).shape
    torch.Size([2, 3, 16, 12])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        n_blocks: int = 9,
        ngf: int = 64,
        norm: str = "instance",
        dropout: bool = False,
    ):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("ngf", ngf),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or n_blocks < 0:
            raise ValueError(f"n_blocks must be an int >= 0, got {n_blocks!r}")
        self.in_channels, self.out_channels, self.n_blocks = in_channels, out_channels, n_blocks
        self.size_multiple = 2**N_DOWNSAMPLING
        bias = norm == "instance"  # the official use_bias rule

        layers: list[nn.Module] = [
            DtypeKeepingReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            norm_layer(norm, ngf),
            nn.ReLU(inplace=True),
        ]
        width = ngf
        for _ in range(N_DOWNSAMPLING):
            layers += [
                nn.Conv2d(width, width * 2, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, width * 2),
                nn.ReLU(inplace=True),
            ]
            width *= 2
        layers += [
            ResnetBlock(width, norm=norm, bias=bias, dropout=dropout) for _ in range(n_blocks)
        ]
        for _ in range(N_DOWNSAMPLING):
            layers += [
                GemmConvTranspose2d(  # nn.ConvTranspose2d with a faster bias gradient
                    width, width // 2, 3, stride=2, padding=1, output_padding=1, bias=bias
                ),
                norm_layer(norm, width // 2),
                nn.ReLU(inplace=True),
            ]
            width //= 2
        layers += [DtypeKeepingReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(
            x, self.in_channels, name=type(self).__name__, size_multiple=self.size_multiple
        )
        return self.model(x)


def resnet_9blocks(
    in_channels: int,
    out_channels: int,
    *,
    ngf: int = 64,
    norm: str = "instance",
    dropout: bool = False,
) -> ResnetGenerator:
    """ResNet generator with 9 residual blocks (CycleGAN's default, for 256 x 256 images).

    >>> resnet_9blocks(3, 3, ngf=4).n_blocks
    9
    """
    return ResnetGenerator(
        in_channels, out_channels, n_blocks=9, ngf=ngf, norm=norm, dropout=dropout
    )


def resnet_6blocks(
    in_channels: int,
    out_channels: int,
    *,
    ngf: int = 64,
    norm: str = "instance",
    dropout: bool = False,
) -> ResnetGenerator:
    """ResNet generator with 6 residual blocks (CycleGAN's choice for 128 x 128 images).

    >>> resnet_6blocks(3, 3, ngf=4).n_blocks
    6
    """
    return ResnetGenerator(
        in_channels, out_channels, n_blocks=6, ngf=ngf, norm=norm, dropout=dropout
    )
