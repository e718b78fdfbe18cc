"""The PatchGAN discriminator family: one conv stack, named by the receptive field of a logit.

``n_layers`` stride-2 4 x 4 convs (the first one without norm) are followed by two stride-1
4 x 4 convs, the last giving one logit per patch, as ``NLayerDiscriminator`` of the official
pix2pix code. With ``kernel_size=1`` every conv is 1 x 1 with stride 1 (``PixelDiscriminator``;
its logit conv keeps its bias here, one parameter more than the official code with BatchNorm).

Receptive field of one output logit, walking the convs from the last to the first:
``r = 1`` then ``r = (r - 1) * stride + kernel`` per conv. For 4 x 4 convs with strides
``[2] * n_layers + [1, 1]``::

    n_layers=1: 1 -> 4 -> 7 -> 16                   patch16
    n_layers=2: ... -> 16 -> 34                     patch34
    n_layers=3: ... -> 34 -> 70                     patch70 (the paper's default)
    n_layers=5: ... -> 70 -> 142 -> 286             image286
    1 x 1 convs: 1                                  pixel

>>> import torch
>>> d = patch70(6, ndf=8)
>>> d(torch.zeros(2, 6, 256, 256)).shape, d.receptive_field
(torch.Size([2, 1, 30, 30]), 70)
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from i2i.models.layers import (
    GemmConv2d,
    check_image_batch,
    check_norm,
    init_weights,
    norm_layer,
    uses_bias,
)


def receptive_field(layers: Sequence[tuple[int, int]]) -> int:
    """Side of the input patch one output value sees, for convs given as ``(kernel, stride)``.

    >>> receptive_field([(4, 2), (4, 2), (4, 2), (4, 1), (4, 1)])
    70
    >>> receptive_field([(1, 1), (1, 1), (1, 1)])
    1
    """
    r = 1
    for kernel, stride in reversed(list(layers)):
        r = (r - 1) * stride + kernel
    return r


class PatchDiscriminator(nn.Module):
    """Fully-convolutional discriminator: ``(B, in_channels, H, W)`` -> logits ``(B, 1, h, w)``.

    Widths are ``ndf * min(2**i, 8)``; conv biases only where no BatchNorm follows; LeakyReLU(0.2)
    after every conv but the last. ``receptive_field`` is computed from the layer config.

    >>> import torch
    >>> d = PatchDiscriminator(3, n_layers=1, ndf=8)
    >>> d(torch.zeros(1, 3, 64, 64)).shape, d.receptive_field
    (torch.Size([1, 1, 30, 30]), 16)
    """

    def __init__(
        self,
        in_channels: int,
        *,
        n_layers: int = 3,
        ndf: int = 64,
        norm: str = "batch",
        kernel_size: int = 4,
    ):
        super().__init__()
        check_norm(norm)
        for name, value in (("in_channels", in_channels), ("ndf", ndf)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        if kernel_size not in (1, 4):
            raise ValueError(f"kernel_size must be 4 (PatchGAN) or 1 (pixel), got {kernel_size}")
        self.in_channels = in_channels
        bias = uses_bias(norm)
        pad = 1 if kernel_size == 4 else 0
        down = 2 if kernel_size == 4 else 1
        # (c_in, c_out, stride, normalized) per conv
        widths = [ndf * min(2**i, 8) for i in range(n_layers + 1)]
        plan = [(in_channels, widths[0], down, False)]
        plan += [(widths[i - 1], widths[i], down, True) for i in range(1, n_layers)]
        plan.append((widths[n_layers - 1], widths[n_layers], 1, True))  # the stride-1 conv
        layers: list[nn.Module] = []
        self.layer_config: list[tuple[int, int]] = []
        for c_in, c_out, stride, normalized in plan:
            layers.append(
                nn.Conv2d(c_in, c_out, kernel_size, stride, pad, bias=bias or not normalized)
            )
            if normalized:
                layers.append(norm_layer(norm, c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            self.layer_config.append((kernel_size, stride))
        # the thin 512 -> 1 output: computed weights first on the CPU (GemmConv2d)
        layers.append(GemmConv2d(plan[-1][1], 1, kernel_size, 1, pad))
        self.layer_config.append((kernel_size, 1))
        self.model = nn.Sequential(*layers)
        self.receptive_field = receptive_field(self.layer_config)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x, self.in_channels, name=type(self).__name__)
        return self.model(x)


def pixel(in_channels: int, *, ndf: int = 64, norm: str = "batch") -> PatchDiscriminator:
    """PixelGAN (1 x 1 field): 1 x 1 convs classify each pixel on its own.

    >>> import torch
    >>> pixel(6, ndf=8)(torch.zeros(1, 6, 32, 32)).shape
    torch.Size([1, 1, 32, 32])
    """
    return PatchDiscriminator(in_channels, n_layers=1, ndf=ndf, norm=norm, kernel_size=1)


def patch16(in_channels: int, *, ndf: int = 64, norm: str = "batch") -> PatchDiscriminator:
    """PatchGAN with a 16 x 16 field (1 stride-2 conv).

    >>> patch16(6, ndf=8).receptive_field
    16
    """
    return PatchDiscriminator(in_channels, n_layers=1, ndf=ndf, norm=norm)


def patch34(in_channels: int, *, ndf: int = 64, norm: str = "batch") -> PatchDiscriminator:
    """PatchGAN with a 34 x 34 field (2 stride-2 convs).

    >>> patch34(6, ndf=8).receptive_field
    34
    """
    return PatchDiscriminator(in_channels, n_layers=2, ndf=ndf, norm=norm)


def patch70(in_channels: int, *, ndf: int = 64, norm: str = "batch") -> PatchDiscriminator:
    """PatchGAN with a 70 x 70 field (3 stride-2 convs): the pix2pix default.

    >>> patch70(6, ndf=8).receptive_field
    70
    """
    return PatchDiscriminator(in_channels, n_layers=3, ndf=ndf, norm=norm)


def image286(in_channels: int, *, ndf: int = 64, norm: str = "batch") -> PatchDiscriminator:
    """ImageGAN with a 286 x 286 field (5 stride-2 convs): the whole 256 x 256 image and more.

    >>> image286(6, ndf=8).receptive_field
    286
    """
    return PatchDiscriminator(in_channels, n_layers=5, ndf=ndf, norm=norm)
