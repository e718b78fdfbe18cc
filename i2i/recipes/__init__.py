"""The built-in recipe, registered through ``i2i_register_recipes`` as a plugin's would be.

CycleGAN comes from the first-party plugin package ``i2i_cyclegan``, written as a third party
would write it.
"""

from __future__ import annotations

from i2i import hookimpl


@hookimpl
def i2i_register_recipes(register):
    """Register pix2pix."""
    from i2i.recipes.pix2pix import Pix2PixRecipe

    register("pix2pix", Pix2PixRecipe())
