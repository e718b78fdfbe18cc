"""Public names of a package that live in its submodules, imported on first use (PEP 562).

A package ``__init__`` that imports its submodules eagerly drags torch into every import of the
package, and so into ``i2i --help``, which only needs the command modules. With
:func:`lazy_exports` the package names its public objects and where they live; ``from pkg import
name`` and ``pkg.name`` import that submodule on first use and keep the object on the package.

>>> import sys, types
>>> pkg = sys.modules["lazy_demo"] = types.ModuleType("lazy_demo")
>>> pkg.__getattr__, pkg.__dir__ = lazy_exports("lazy_demo", {"dumps": "json"})
>>> "dumps" in dir(pkg), pkg.dumps([1])
(True, '[1]')
>>> pkg.loads
Traceback (most recent call last):
...
AttributeError: module 'lazy_demo' has no attribute 'loads'

A name that is no export but a submodule is imported as such (``import i2i; i2i.data.io``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose public name ``n`` lives in the
    module ``where[n]``."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:  # a submodule, as ``pkg.sub`` after ``import pkg``
            if _is_submodule(package, name):
                return importlib.import_module(f"{package}.{name}")
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # found by plain lookup from now on
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__


def _is_submodule(package: str, name: str) -> bool:
    if name.startswith("_") or not hasattr(sys.modules[package], "__path__"):
        return False
    try:
        return importlib.util.find_spec(f"{package}.{name}") is not None
    except (ImportError, ValueError):
        return False
