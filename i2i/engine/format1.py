"""Checkpoints of format 1, written by i2i before recipes: read as pix2pix checkpoints.

A format-1 checkpoint folder holds ``generator.safetensors`` (and ``discriminator.safetensors``
when the objective had an adversarial term) and a ``config.json`` without ``roles``: its
networks are described by the run config's ``generator``/``discriminator`` fields. It reads as
the pix2pix recipe's two roles, ``generator`` translating in the run's direction; once resumed,
the run saves format 2.

>>> cfg = {"generator": "unet_256", "norm": "batch", "direction": "BtoA",
...        "in_channels": 3, "out_channels": 3}
>>> list(roles(cfg)), translators(cfg)
(['generator'], {'BtoA': 'generator'})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RECIPE = "pix2pix"
GENERATOR_ROLE, DISCRIMINATOR_ROLE = "generator", "discriminator"
GENERATOR_FILE = f"{GENERATOR_ROLE}.safetensors"
DISCRIMINATOR_FILE = f"{DISCRIMINATOR_ROLE}.safetensors"


def roles(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The two roles a format-1 config describes (a discriminator only when it had one)."""
    from i2i.engine.build import discriminator_options, generator_options
    from i2i.engine.checkpoint import role_spec

    out = {}
    if config.get("generator"):
        out[GENERATOR_ROLE] = role_spec(
            "generator",
            config["generator"],
            generator_options(config),
            config.get("in_channels", 3),
            config.get("out_channels", 3),
        )
    if config.get("discriminator") and config.get("discriminator_in_channels"):
        out[DISCRIMINATOR_ROLE] = role_spec(
            "discriminator",
            config["discriminator"],
            discriminator_options(config),
            config["discriminator_in_channels"],
        )
    return out


def translators(config: Mapping[str, Any]) -> dict[str, str]:
    """The generator, one way: the run's direction."""
    return {str(config.get("direction") or "AtoB"): GENERATOR_ROLE}
