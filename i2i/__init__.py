"""i2i: plugin-based image-to-image translation.

The public API, everything a plugin may import::

    from i2i import hookimpl, Task
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("i2i")

from i2i.catalog import Catalog  # noqa: E402
from i2i.config import ConfigError, adversarial_terms  # noqa: E402
from i2i.lazy import lazy_exports  # noqa: E402
from i2i.registry import Entry, RegistrationError, Registry, UnknownComponentError  # noqa: E402
from i2i.task import Task, to_image_range, to_model_range  # noqa: E402

#: Public names that need torch, imported on first use (never when ``i2i`` is, so that
#: ``i2i --help`` does not load torch).
_LAZY = {
    **dict.fromkeys(
        (
            "Recipe",
            "RecipeOption",
            "RecipeSetup",
            "RecipeStep",
            "ValidationContext",
            "Wrapping",
            "other_direction",
        ),
        "i2i.recipe",
    ),
    "Objective": "i2i.losses",
    "autocast": "i2i.engine.devices",
    "make_grad_scaler": "i2i.engine.devices",
    "check_finite": "i2i.engine.step",
    "set_requires_grad": "i2i.engine.step",
    "NonFiniteLossError": "i2i.engine.step",
    "in_test_mode": "i2i.engine.validate",
    "init_weights": "i2i.models.layers",
    "norm_layer": "i2i.models.layers",
    "check_image_batch": "i2i.models.layers",
    "DtypeKeepingReflectionPad2d": "i2i.models.layers",
    "LogicalOrderDropout": "i2i.models.layers",
    "GemmConv2d": "i2i.models.layers",
    "GemmConvTranspose2d": "i2i.models.layers",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    """The catalog of the default plugin manager, made on first use (never at import)."""
    from i2i.plugins import make_plugin_manager

    return Catalog.from_plugin_manager(make_plugin_manager())


def list_components(kind: str, pattern: str = "*") -> list[str]:
    """Names of registered components of ``kind`` matching a wildcard.

    >>> list_components("discriminators", "patch*")
    ['patch16', 'patch34', 'patch70']
    """
    return catalog().registry(kind).names(pattern)


def load(checkpoint: Any, **kwargs: Any):
    """A trained model from a checkpoint or run folder: ``i2i.load("runs/f").translate(img)``.

    Everything (task, generator, weights, test-time mode) comes from the checkpoint; keywords
    go to :func:`i2i.inference.load` (``device``, ``mode``, ``precision``, ``tile``, ...).
    """
    from i2i.inference import load as _load

    return _load(checkpoint, **kwargs)


def create_generator(name: str, in_channels: int = 3, out_channels: int = 3, **kwargs: Any):
    """Build a registered generator by name.

    >>> g = create_generator("unet_256", 3, 3, ngf=8)
    >>> g.size_multiple
    256
    """
    return (
        catalog()
        .generators.get(name)
        .build(in_channels=in_channels, out_channels=out_channels, **kwargs)
    )


def create_discriminator(name: str, in_channels: int = 6, **kwargs: Any):
    """Build a registered discriminator by name.

    >>> create_discriminator("patch70", 6).receptive_field
    70
    """
    return catalog().discriminators.get(name).build(in_channels=in_channels, **kwargs)


__all__ = [
    "Catalog",
    "ConfigError",
    "DtypeKeepingReflectionPad2d",
    "GemmConv2d",
    "GemmConvTranspose2d",
    "LogicalOrderDropout",
    "NonFiniteLossError",
    "Objective",
    "adversarial_terms",
    "autocast",
    "check_finite",
    "check_image_batch",
    "in_test_mode",
    "init_weights",
    "norm_layer",
    "make_grad_scaler",
    "set_requires_grad",
    "Entry",
    "RegistrationError",
    "Registry",
    "Recipe",
    "RecipeOption",
    "RecipeSetup",
    "RecipeStep",
    "Task",
    "UnknownComponentError",
    "ValidationContext",
    "Wrapping",
    "__version__",
    "catalog",
    "create_discriminator",
    "create_generator",
    "hookimpl",
    "list_components",
    "load",
    "other_direction",
    "to_image_range",
    "to_model_range",
]
