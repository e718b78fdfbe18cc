"""CycleGAN (Zhu et al. 2017) as a plugin: the ``cyclegan`` recipe and its ResNet generators.

Written as a third party would write it: it imports only i2i's public API.

>>> from i2i_cyclegan import resnet_9blocks
>>> resnet_9blocks(3, 3, ngf=4).size_multiple
4
>>> from i2i import catalog
>>> catalog().recipes.get("cyclegan").provider
"plugin 'i2i_cyclegan'"
"""

from __future__ import annotations

from i2i import hookimpl
from i2i_cyclegan.resnet import ResnetGenerator, resnet_6blocks, resnet_9blocks


@hookimpl
def i2i_register_generators(register):
    """Register ``resnet_9blocks`` and ``resnet_6blocks``."""
    register(
        "resnet_9blocks",
        resnet_9blocks,
        summary="ResNet, 9 residual blocks (CycleGAN default at 256 px; sizes multiple of 4)",
        size_multiple=4,
        family="resnet",
    )
    register(
        "resnet_6blocks",
        resnet_6blocks,
        summary="ResNet, 6 residual blocks (CycleGAN at 128 px; sizes multiple of 4)",
        size_multiple=4,
        family="resnet",
    )


@hookimpl
def i2i_register_recipes(register):
    """Register the cyclegan recipe."""
    from i2i_cyclegan.recipe import CycleGANRecipe

    register("cyclegan", CycleGANRecipe())


__all__ = ["ResnetGenerator", "resnet_6blocks", "resnet_9blocks"]
