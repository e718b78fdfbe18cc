"""Named registries of components, with helpful errors.

>>> reg = Registry("generator")
>>> reg.add("unet_256", dict, aliases=("unet",), provider="demo", summary="U-Net")
>>> reg.get("unet").name
'unet_256'
>>> reg.names("unet*")
['unet_256']
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


class RegistrationError(ValueError):
    """A component was registered with a bad or duplicate name."""


class UnknownComponentError(LookupError):
    """A name that no registry entry has; the message suggests the closest names."""

    def __init__(self, kind: str, name: str, choices: list[str]):
        self.kind, self.name, self.choices = kind, name, choices
        close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listed = ", ".join(choices) if choices else "(none registered)"
        super().__init__(
            f"Unknown {kind} {name!r}.{hint} Available: {listed}. "
            f"Run `i2i list {kind_plural(kind)}` to see them with summaries."
        )

    @property
    def suggestions(self) -> list[str]:
        return difflib.get_close_matches(self.name, self.choices, n=3, cutoff=0.5)


def kind_plural(kind: str) -> str:
    """'generator' -> 'generators', 'loss' -> 'losses'."""
    return kind + "es" if kind.endswith("s") else kind + "s"


@dataclass(frozen=True)
class Entry:
    """One registered component: its name, what builds it and what it declares."""

    name: str
    obj: Any
    kind: str
    provider: str
    summary: str = ""
    aliases: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """Keyword options of a factory with their defaults (empty for non-callables); a recipe's
        declared options."""
        if callable(getattr(self.obj, "option_defaults", None)):
            return dict(self.obj.option_defaults())
        if (
            not callable(self.obj)
            or inspect.isclass(self.obj)
            and not hasattr(self.obj, "__init__")
        ):
            return {}
        try:
            sig = inspect.signature(self.obj)
        except (TypeError, ValueError):
            return {}
        out = {}
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            out[p.name] = None if p.default is inspect.Parameter.empty else p.default
        return out

    def build(self, **kwargs: Any) -> Any:
        """Call the factory with keyword arguments."""
        return self.obj(**kwargs)


class Registry:
    """Names to entries, aliases included; duplicates and bad names fail loudly."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}

    def add(
        self,
        name: str,
        obj: Any,
        *,
        provider: str,
        aliases: tuple[str, ...] | list[str] = (),
        summary: str | None = None,
        **meta: Any,
    ) -> None:
        aliases = tuple(aliases)
        for n in (name, *aliases):
            if not isinstance(n, str) or not NAME_PATTERN.match(n):
                raise RegistrationError(
                    f"{provider} registered {self.kind} name {n!r}: names must match "
                    f"{NAME_PATTERN.pattern} (lowercase letters, digits and _)"
                )
            owner = self._owner(n)
            if owner is not None:
                raise RegistrationError(
                    f"{self.kind} name {n!r} is registered twice: by {owner.provider} "
                    f"(as {owner.name!r}) and by {provider}. Rename one, or start with "
                    f"I2I_LOAD_PLUGINS set to leave one plugin out."
                )
        if summary is None and isinstance(getattr(obj, "summary", None), str):
            summary = obj.summary  # a Task (or any object) that carries its own summary
        if summary is None:
            doc = inspect.getdoc(obj) or ""
            summary = doc.strip().splitlines()[0] if doc.strip() else ""
        self._entries[name] = Entry(name, obj, self.kind, provider, summary, aliases, dict(meta))
        for a in aliases:
            self._aliases[a] = name

    def _owner(self, n: str) -> Entry | None:
        if n in self._entries:
            return self._entries[n]
        if n in self._aliases:
            return self._entries[self._aliases[n]]
        return None

    def get(self, name: str) -> Entry:
        entry = self._owner(name)
        if entry is None:
            raise UnknownComponentError(self.kind, name, self.choices())
        return entry

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._owner(name) is not None

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def choices(self) -> list[str]:
        """Every accepted name, aliases included, sorted."""
        return sorted([*self._entries, *self._aliases])

    def names(self, pattern: str = "*") -> list[str]:
        """Canonical names matching a shell-style wildcard (aliases match too)."""
        return [e.name for e in self if self._matches(e, pattern)]

    def entries(self, pattern: str = "*") -> list[Entry]:
        return [e for e in self if self._matches(e, pattern)]

    @staticmethod
    def _matches(entry: Entry, pattern: str) -> bool:
        return any(fnmatch.fnmatchcase(n, pattern) for n in (entry.name, *entry.aliases))

    def registrar(self, provider: str) -> Callable[..., None]:
        """The ``register`` callback handed to one plugin's hook."""

        def register(name: str, obj: Any, **kwargs: Any) -> None:
            self.add(name, obj, provider=provider, **kwargs)

        return register
