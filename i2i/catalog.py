"""The registries, filled from one plugin manager.

>>> from i2i.plugins import make_plugin_manager
>>> cat = Catalog.from_plugin_manager(make_plugin_manager(load_entrypoints=False))
>>> "unet_256" in cat.generators
True
"""

from __future__ import annotations

from dataclasses import dataclass

import pluggy

from i2i.registry import Registry

#: registry attribute -> (hook name, kind as users type it)
KINDS: dict[str, tuple[str, str]] = {
    "generators": ("i2i_register_generators", "generator"),
    "discriminators": ("i2i_register_discriminators", "discriminator"),
    "losses": ("i2i_register_losses", "loss"),
    "tasks": ("i2i_register_tasks", "task"),
    "metrics": ("i2i_register_metrics", "metric"),
    "recipes": ("i2i_register_recipes", "recipe"),
}


@dataclass
class Catalog:
    """Every registered generator, discriminator, loss, task, metric and recipe."""

    generators: Registry
    discriminators: Registry
    losses: Registry
    tasks: Registry
    metrics: Registry
    recipes: Registry
    plugin_manager: pluggy.PluginManager | None = None

    @classmethod
    def from_plugin_manager(cls, pm: pluggy.PluginManager) -> Catalog:
        registries = {}
        for attr, (hook_name, kind) in KINDS.items():
            reg = Registry(kind)
            caller = getattr(pm.hook, hook_name)
            # Call each implementation with its own register callback, so that errors and
            # `i2i info` name the plugin that provided the component.
            for impl in caller.get_hookimpls():  # registration order: built-ins first
                impl.function(register=reg.registrar(_provider(pm, impl.plugin_name)))
            registries[attr] = reg
        return cls(**registries, plugin_manager=pm)

    def registry(self, kind: str) -> Registry:
        """The registry for ``kind``: 'generators' or 'generator' and so on."""
        for attr, (_, singular) in KINDS.items():
            if kind in (attr, singular):
                return getattr(self, attr)
        raise LookupError(f"Unknown component kind {kind!r}; expected one of {', '.join(KINDS)}")


def _provider(pm: pluggy.PluginManager, plugin_name: str) -> str:
    src = getattr(pm, "i2i_sources", {}).get(plugin_name)
    if src is not None and src.distribution and src.origin != "builtin":
        return f"plugin {plugin_name!r} ({src.distribution} {src.version})"
    return f"plugin {plugin_name!r}"
