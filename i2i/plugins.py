"""Make the plugin manager: built-ins, installed entry points, an allowlist, strict hook names.

>>> pm = make_plugin_manager(load_entrypoints=False)
>>> "i2i.models" in [name for name, _ in pm.list_name_plugin()]
True
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass

import pluggy

from i2i import hookimpl, hookspecs

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


def _load_error(failure: str, exc: Exception) -> PluginLoadError:
    """``failure`` (which plugin, from where) with the error and the way out."""
    return PluginLoadError(
        f"{failure}: {type(exc).__name__}: {exc}. Start without installed plugins with "
        f"{ALLOWLIST_ENV}= (empty), or uninstall it."
    )


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
        plugin, path = _module_plugin(modname)
        pm.register(plugin, name=modname)
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


class DeferredPlugin:
    """Stands in for a plugin module: each of the module's hooks, called, imports the module and
    calls its own implementation. So a command line that calls only ``i2i_register_commands``
    (``i2i --help``) imports neither the networks and tasks nor torch.

    >>> plugin, _ = _module_plugin("i2i.models")
    >>> type(plugin).__name__, sorted(n for n in vars(plugin) if n.startswith("i2i_"))
    ('DeferredPlugin', ['i2i_register_discriminators', 'i2i_register_generators'])
    """

    def __init__(self, module: str, hooks: tuple[str, ...], failure: str | None = None):
        self.__name__ = module
        self._failure = failure  # what an installed plugin's import error is reported as
        for hook in hooks:
            setattr(self, hook, self._deferred_hook(hook))

    def _deferred_hook(self, hook: str):
        def call(*args, **kwargs):
            return getattr(self._load(), hook)(*args, **kwargs)

        call.__name__ = call.__qualname__ = hook
        call.__wrapped__ = getattr(hookspecs, hook)  # the parameters pluggy passes: the spec's
        return hookimpl(call)

    def _load(self):
        try:
            return importlib.import_module(self.__name__)
        except Exception as exc:
            if self._failure is None:  # a built-in: its own error
                raise
            raise _load_error(self._failure, exc) from exc

    def __repr__(self) -> str:
        return f"<DeferredPlugin {self.__name__}>"


def _module_plugin(module: str, failure: str | None = None) -> tuple[object, str | None]:
    """A :class:`DeferredPlugin` for ``module`` and its file, found without importing it; the
    module itself where it has no source file to read or its hooks are not all plain
    ``@hookimpl`` functions at the top level."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # e.g. a module put into sys.modules by hand
        spec = None
    path = spec.origin if spec is not None else None
    hooks = _plain_hooks(path) if path and path.endswith(".py") else None
    if hooks:
        return DeferredPlugin(module, hooks, failure), path
    loaded = importlib.import_module(module)
    return loaded, getattr(loaded, "__file__", None)


def _plain_hooks(path: str) -> tuple[str, ...] | None:
    """The hooks that the source at ``path`` implements, where every one is a top-level
    function decorated with a bare ``@hookimpl`` (``from i2i import hookimpl``) and taking its
    hookspec's parameters, and nothing else in the module touches hooks or the marker; else
    ``None`` (options such as ``specname``, ``import *``, hooks assigned, imported, deleted or
    nested, the marker renamed or rebound), so that only what is certain is deferred."""
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None  # imported at once, which reports the problem as it would have
    hooks, decorators, definitions = [], set(), set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("i2i_"):
            spec = getattr(hookspecs, node.name, None)
            if spec is None or [ast.unparse(d) for d in node.decorator_list] != ["hookimpl"]:
                return None
            if _parameters(node.args) != list(inspect.signature(spec).parameters):
                return None
            hooks.append(node.name)
            decorators.add(id(node.decorator_list[0]))
            definitions.add(id(node))
    marker = [
        a
        for n in tree.body
        if isinstance(n, ast.ImportFrom) and n.module == "i2i" and n.level == 0
        for a in n.names
        if a.name == "hookimpl" and a.asname is None
    ]
    if len(marker) != 1:
        return None
    for sub in ast.walk(tree):
        if _touches_hooks(sub) and id(sub) not in decorators | definitions and sub is not marker[0]:
            return None
    return tuple(hooks)


def _touches_hooks(node: ast.AST) -> bool:
    """Whether ``node`` names the marker or an ``i2i_*`` hook, or imports everything."""
    if isinstance(node, ast.Name):
        return (
            node.id == "hookimpl" or node.id.startswith("i2i_") and type(node.ctx) is not ast.Load
        )
    if isinstance(node, ast.Attribute):
        return node.attr == "hookimpl"
    if isinstance(node, ast.alias):
        bound, imported = (node.asname or node.name).split(".")[0], node.name.split(".")[-1]
        return node.name == "*" or "hookimpl" in (bound, imported) or imported.startswith("i2i_")
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name.startswith("i2i_")
    return False


def _parameters(args: ast.arguments) -> list[str] | None:
    """Plain parameter names (no defaults, ``*``, ``**`` or keyword-only ones), else None."""
    if args.posonlyargs or args.vararg or args.kwonlyargs or args.kwarg or args.defaults:
        return None
    return [a.arg for a in args.args]


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
            failure = (
                f"Plugin {ep.name!r} from distribution {dist_name} {dist.version} failed to "
                f"load ({ep.value})"
            )
            try:
                if ep.attr is None:  # a module: deferred like the built-ins
                    plugin, path = _module_plugin(ep.module, failure)
                else:
                    plugin = ep.load()
                    path = getattr(plugin, "__file__", None)
                pm.register(plugin, name=ep.name)
            except Exception as exc:
                raise _load_error(failure, exc) from exc
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
