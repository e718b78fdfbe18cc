"""Built-in generators and discriminators, registered through the same hooks as plugins.

>>> from i2i.models import unet_256, patch70
>>> unet_256(3, 3, ngf=4).size_multiple, patch70(6, ndf=8).receptive_field
(256, 70)
"""

from __future__ import annotations

from i2i import hookimpl
from i2i.models.layers import NORMS, init_weights, norm_layer
from i2i.models.patchgan import (
    PatchDiscriminator,
    image286,
    patch16,
    patch34,
    patch70,
    pixel,
    receptive_field,
)
from i2i.models.timm_unet import TimmUNet, load_encoder_weights, unet_timm
from i2i.models.unet import (
    UNetGenerator,
    encoder_decoder_128,
    encoder_decoder_256,
    unet_128,
    unet_256,
)


@hookimpl
def i2i_register_generators(register):
    """Register the built-in generators."""
    register(
        "unet_256",
        unet_256,
        aliases=("unet",),
        summary="pix2pix U-Net, 8 downsamplings, skips (sizes multiple of 256)",
        size_multiple=256,
        family="unet",
    )
    register(
        "unet_128",
        unet_128,
        summary="pix2pix U-Net, 7 downsamplings, skips (sizes multiple of 128)",
        size_multiple=128,
        family="unet",
    )
    register(
        "encoder_decoder_256",
        encoder_decoder_256,
        aliases=("encoder_decoder",),
        summary="The paper's encoder-decoder baseline: U-Net 256 without skips",
        size_multiple=256,
        family="encoder_decoder",
    )
    register(
        "encoder_decoder_128",
        encoder_decoder_128,
        summary="Encoder-decoder, 7 downsamplings, no skips (sizes multiple of 128)",
        size_multiple=128,
        family="encoder_decoder",
    )
    register(
        "unet_timm",
        unet_timm,
        summary="U-Net decoder on a timm encoder (resnet18 default; local weights only)",
    )


@hookimpl
def i2i_register_discriminators(register):
    """Register the built-in discriminators."""
    register("pixel", pixel, summary="PixelGAN: 1x1 convs, 1x1 receptive field", receptive_field=1)
    register("patch16", patch16, summary="PatchGAN, 16x16 receptive field", receptive_field=16)
    register("patch34", patch34, summary="PatchGAN, 34x34 receptive field", receptive_field=34)
    register(
        "patch70",
        patch70,
        aliases=("patch",),
        summary="PatchGAN, 70x70 receptive field (pix2pix default)",
        receptive_field=70,
    )
    register(
        "image286",
        image286,
        aliases=("image",),
        summary="ImageGAN, 286x286 receptive field (covers a 256 image)",
        receptive_field=286,
    )


__all__ = [
    "NORMS",
    "PatchDiscriminator",
    "TimmUNet",
    "UNetGenerator",
    "encoder_decoder_128",
    "encoder_decoder_256",
    "image286",
    "init_weights",
    "load_encoder_weights",
    "norm_layer",
    "patch16",
    "patch34",
    "patch70",
    "pixel",
    "receptive_field",
    "unet_128",
    "unet_256",
    "unet_timm",
]
