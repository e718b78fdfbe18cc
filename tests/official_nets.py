"""The networks of the official pytorch-CycleGAN-and-pix2pix code, rebuilt for tests.

Written from reading ``models/networks.py`` of junyanz/pytorch-CycleGAN-and-pix2pix: the same
submodules in the same order under the same attribute names, so ``state_dict()`` keys, shapes
and outputs are those of the official ``define_G``/``define_D`` networks. The official norm
rule is kept: ``batch`` = affine BatchNorm with running stats, ``instance`` = InstanceNorm
without affine parameters or running stats, ``none`` = an identity module; a conv followed by
a norm has a bias only when the norm is ``instance`` (``use_bias``).
"""

from __future__ import annotations

import torch
from torch import nn


def official_norm(norm: str):
    """(norm-layer factory, use_bias) as ``get_norm_layer`` and the nets' ``use_bias`` give."""
    if norm == "batch":
        return (lambda c: nn.BatchNorm2d(c, affine=True, track_running_stats=True)), False
    if norm == "instance":
        return (lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False)), True
    if norm == "none":
        return (lambda c: nn.Identity()), False
    raise ValueError(norm)


class ResnetBlock(nn.Module):
    def __init__(self, dim, norm_layer, use_dropout, use_bias):
        super().__init__()
        seq = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=use_bias)]
        seq += [norm_layer(dim), nn.ReLU(True)]
        if use_dropout:
            seq.append(nn.Dropout(0.5))
        seq += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=use_bias)]
        seq.append(norm_layer(dim))
        self.conv_block = nn.Sequential(*seq)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, ngf=64, norm="batch", use_dropout=False, n_blocks=6):
        super().__init__()
        norm_layer, use_bias = official_norm(norm)
        seq = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, padding=0, bias=use_bias)]
        seq += [norm_layer(ngf), nn.ReLU(True)]
        for i in range(2):
            m = 2**i
            seq.append(nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1, bias=use_bias))
            seq += [norm_layer(ngf * m * 2), nn.ReLU(True)]
        for _ in range(n_blocks):
            seq.append(ResnetBlock(ngf * 4, norm_layer, use_dropout, use_bias))
        for i in range(2):
            m = 2 ** (2 - i)
            seq.append(
                nn.ConvTranspose2d(
                    ngf * m, ngf * m // 2, 3, stride=2, padding=1, output_padding=1, bias=use_bias
                )
            )
            seq += [norm_layer(ngf * m // 2), nn.ReLU(True)]
        seq += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


class UnetSkipConnectionBlock(nn.Module):
    def __init__(
        self,
        outer_nc,
        inner_nc,
        input_nc=None,
        submodule=None,
        outermost=False,
        innermost=False,
        norm="batch",
        use_dropout=False,
    ):
        super().__init__()
        self.outermost = outermost
        norm_layer, use_bias = official_norm(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=use_bias)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            seq = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=use_bias)
            seq = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, norm_layer(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(
                inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=use_bias
            )
            seq = [nn.LeakyReLU(0.2, True), downconv, norm_layer(inner_nc), submodule]
            seq += [nn.ReLU(True), upconv, norm_layer(outer_nc)]
            if use_dropout:
                seq.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, num_downs, ngf=64, norm="batch", use_dropout=False):
        super().__init__()
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(
                ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout
            )
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(
            output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm=norm
        )

    def forward(self, x):
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf=64, n_layers=3, norm="batch"):
        super().__init__()
        norm_layer, use_bias = official_norm(norm)
        seq = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            seq.append(nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=use_bias))
            seq += [norm_layer(ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2**n_layers, 8)
        seq.append(nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=use_bias))
        seq += [norm_layer(ndf * mult), nn.LeakyReLU(0.2, True)]
        seq.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


class PixelDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf=64, norm="batch"):
        super().__init__()
        norm_layer, use_bias = official_norm(norm)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 1, stride=1, padding=0),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, stride=1, padding=0, bias=use_bias),
            norm_layer(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, stride=1, padding=0, bias=use_bias),
        )

    def forward(self, x):
        return self.net(x)


def define_G(input_nc, output_nc, ngf, netG, norm="batch", use_dropout=False) -> nn.Module:
    """The official ``define_G`` (without the init and device placement)."""
    if netG.startswith("resnet_"):
        blocks = int(netG[len("resnet_") : -len("blocks")])
        return ResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, n_blocks=blocks)
    if netG in ("unet_128", "unet_256"):
        downs = 7 if netG == "unet_128" else 8
        return UnetGenerator(input_nc, output_nc, downs, ngf, norm, use_dropout)
    raise ValueError(netG)


def define_D(input_nc, ndf, netD, n_layers_D=3, norm="batch") -> nn.Module:
    """The official ``define_D`` (without the init and device placement)."""
    if netD == "basic":
        return NLayerDiscriminator(input_nc, ndf, 3, norm)
    if netD == "n_layers":
        return NLayerDiscriminator(input_nc, ndf, n_layers_D, norm)
    if netD == "pixel":
        return PixelDiscriminator(input_nc, ndf, norm)
    raise ValueError(netD)


def randomize(net: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BatchNorm statistic distinct random values (a 'trained' net).

    Weights get a spread of ``1 / sqrt(fan_in)``, so activations stay of order one.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            noise = torch.randn(t.shape, generator=gen) if t.is_floating_point() else None
            if name.endswith("num_batches_tracked"):
                t.fill_(7)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif t.ndim > 1:  # conv weights
                t.copy_(noise / (t[0].numel() ** 0.5))
            elif name.endswith("weight"):  # BatchNorm scale
                t.copy_(1 + 0.2 * noise)
            else:  # biases, BatchNorm shift and running mean
                t.copy_(0.2 * noise)
    return net
