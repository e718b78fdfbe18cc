"""Make the plugin manager: built-ins, installed entry points, an allowlist, strict hook names.

>>> pm = make_plugin_manager(load_entrypoints=False)
>>> "i2i.models" in [name for name, _ in pm.list_name_plugin()]
True
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from dataclasses import dataclass

import pluggy

from i2i import hookspecs

ENTRY_POINT_GROUP = "i2i"
ALLOWLIST_ENV = "I2I_LOAD_PLUGINS"
TRACE_ENV = "I2I_TRACE_HOOKS"

#: Modules registered before any installed plugin, through the same hooks.
#: The ``i2i_*`` task plugins under ``plugins/`` are written exactly as a third party would.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "i2i.models",
    "i2i.losses",
    "i2i.metrics",
    "i2i.recipes",
    "i2i.inference.commands",
    "i2i.demo.commands",
    "i2i.eval.commands",
    "i2i.data.commands",
    "i2i.convert.commands",
    "i2i.segment.commands",
    "i2i.study.commands",
    "i2i.ablate.commands",
    "i2i_colorize",
    "i2i_inpaint",
    "i2i_edges2photo",
    "i2i_facades",
    "i2i_cityscapes",
    "i2i_maps",
    "i2i_day2night",
    "i2i_thermal2color",
    "i2i_cyclegan",
    "i2i_photo2cartoon",
    "i2i.engine.commands",
    "i2i.engine.doctor",
    "i2i.report",
)


class PluginLoadError(RuntimeError):
    """An installed plugin failed to import or register."""


@dataclass(frozen=True)
class PluginSource:
    """Where a loaded plugin came from, for ``i2i plugins``."""

    name: str
    distribution: str | None
    version: str | None
    origin: str  # "builtin" or "entry point <group>:<value>"
    path: str | None


def _allowlist() -> set[str] | None:
    raw = os.environ.get(ALLOWLIST_ENV)
    if raw is None:
        return None
    return {_normalise(n) for n in raw.split(",") if n.strip()}


def _normalise(dist_name: str) -> str:
    return dist_name.strip().lower().replace("_", "-").replace(".", "-")


def make_plugin_manager(
    *,
    load_entrypoints: bool = True,
    builtins: tuple[str, ...] | None = None,
    plugins: tuple[object, ...] = (),
) -> pluggy.PluginManager:
    """A fresh plugin manager with the built-ins, installed plugins and any extra ``plugins``.

    ``I2I_LOAD_PLUGINS`` restricts installed plugins: unset loads all, empty loads none,
    ``a,b`` loads only the distributions ``a`` and ``b``. Built-ins always load.
    """
    pm = pluggy.PluginManager("i2i")
    pm.add_hookspecs(hookspecs)
    pm.i2i_sources = {}  # plugin name -> PluginSource
    for modname in BUILTIN_PLUGINS if builtins is None else builtins:
        module = importlib.import_module(modname)
        pm.register(module, name=modname)
        path = getattr(module, "__file__", None)
        pm.i2i_sources[modname] = PluginSource(modname, "i2i", _i2i_version(), "builtin", path)
    if load_entrypoints:
        _load_entrypoints(pm)
    for plugin in plugins:
        name = pm.register(plugin, name=_plugin_name(plugin))
        pm.i2i_sources[name] = PluginSource(name, None, None, "registered in code", None)
    pm.check_pending()
    if os.environ.get(TRACE_ENV):
        pm.trace.root.setwriter(lambda msg: print(msg, end="", file=sys.stderr))
        pm.enable_tracing()
    return pm


def _plugin_name(plugin: object) -> str:
    """A readable name for a plugin registered in code: its module or class name."""
    return getattr(plugin, "__name__", None) or type(plugin).__name__


def _i2i_version() -> str:
    from i2i import __version__

    return __version__


def _load_entrypoints(pm: pluggy.PluginManager) -> None:
    allow = _allowlist()
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        dist_name = dist.metadata["Name"] or ""
        if dist_name in seen:  # the same distribution twice on sys.path: first one wins
            continue
        seen.add(dist_name)
        eps = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
        if not eps or (allow is not None and _normalise(dist_name) not in allow):
            continue
        for ep in eps:
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:
                raise PluginLoadError(
                    f"Plugin {ep.name!r} from distribution {dist_name} {dist.version} failed to "
                    f"load ({ep.value}): {type(exc).__name__}: {exc}. Start without installed "
                    f"plugins with {ALLOWLIST_ENV}= (empty), or uninstall it."
                ) from exc
            path = getattr(plugin, "__file__", None)
            pm.i2i_sources[ep.name] = PluginSource(
                ep.name, dist_name, dist.version, f"entry point {ep.group}:{ep.value}", path
            )


def describe_plugins(pm: pluggy.PluginManager) -> list[dict]:
    """Name, version, hooks and origin of every plugin that implements a hook."""
    out = []
    sources = getattr(pm, "i2i_sources", {})
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda np: np[0]):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        src = sources.get(name)
        out.append(
            {
                "name": name,
                "version": src.version if src else None,
                "distribution": src.distribution if src else None,
                "origin": src.origin if src else "unknown",
                "path": src.path if src else None,
                "hooks": hooks,
            }
        )
    return out
