"""CycleGAN (Zhu et al. 2017) as a plugin: the ``cyclegan`` recipe, its image pool and generators.

Written as a third party would write it: it imports only i2i's public API.

>>> from i2i import catalog
>>> catalog().recipes.get("cyclegan").provider
"plugin 'i2i_cyclegan'"
"""

from __future__ import annotations

from i2i import hookimpl


@hookimpl
def i2i_register_recipes(register):
    """Register the cyclegan recipe."""
    from i2i_cyclegan.recipe import CycleGANRecipe

    register("cyclegan", CycleGANRecipe())
