"""Build the networks of a run from its configuration alone (training and checkpoints share it).

The generator gets ``in_channels``/``out_channels`` from the task and ``norm`` from the run
config (when its factory takes a ``norm`` keyword), then the run's ``generator_kwargs``; the discriminator gets ``in_channels``
(input + output channels when conditional, output channels otherwise).

>>> discriminator_in_channels(3, 3, conditional=True), discriminator_in_channels(1, 2, conditional=False)
(6, 2)
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn
from torch.nn import init
from torch.overrides import TorchFunctionMode

from i2i.catalog import Catalog
from i2i.config import ConfigError


def discriminator_in_channels(in_channels: int, out_channels: int, *, conditional: bool) -> int:
    """Channels a discriminator sees: ``cat([x, y])`` when conditional, ``y`` alone otherwise."""
    return in_channels + out_channels if conditional else out_channels


def _takes_norm(factory: Any) -> bool:
    """Whether ``factory`` accepts a ``norm`` keyword (by name or through ``**kwargs``)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "norm" or p.kind is p.VAR_KEYWORD for p in params)


def generator_options(config: Mapping[str, Any], factory: Any = None) -> dict[str, Any]:
    """The keywords passed to the generator factory: ``norm`` then ``generator_kwargs``."""
    norm = {"norm": config["norm"]} if factory is None or _takes_norm(factory) else {}
    return {**norm, **dict(config.get("generator_kwargs") or {})}


def discriminator_options(config: Mapping[str, Any], factory: Any = None) -> dict[str, Any]:
    """The keywords passed to the discriminator factory: ``norm`` then ``discriminator_kwargs``."""
    norm = {"norm": config["norm"]} if factory is None or _takes_norm(factory) else {}
    return {**norm, **dict(config.get("discriminator_kwargs") or {})}


def make_generator(
    catalog: Catalog, config: Mapping[str, Any], in_channels: int, out_channels: int
) -> nn.Module:
    """The generator named by ``config["generator"]``, freshly initialised."""
    entry = catalog.generators.get(config["generator"])
    options = generator_options(config, entry.obj)
    return _build(entry, "generator", options, in_channels=in_channels, out_channels=out_channels)


def make_discriminator(catalog: Catalog, config: Mapping[str, Any], in_channels: int) -> nn.Module:
    """The discriminator named by ``config["discriminator"]``, freshly initialised."""
    entry = catalog.discriminators.get(config["discriminator"])
    options = discriminator_options(config, entry.obj)
    return _build(entry, "discriminator", options, in_channels=in_channels)


def build_network(catalog: Catalog, spec: Mapping[str, Any]) -> nn.Module:
    """A fresh network from a role spec (see :func:`i2i.engine.checkpoint.role_spec`).

    >>> from i2i import catalog
    >>> net = build_network(catalog(), {"kind": "discriminator", "name": "patch16",
    ...                                 "options": {"ndf": 4}, "in_channels": 6})
    >>> net.receptive_field
    16
    """
    kind = spec.get("kind")
    if kind not in ("generator", "discriminator"):
        raise ConfigError(f"a role's kind must be 'generator' or 'discriminator', got {kind!r}")
    entry = catalog.registry(kind).get(spec["name"])
    options = spec.get("options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"a role's options must be a mapping of names to values, got {options!r}")
    options = dict(options)
    if "norm" in options and not _takes_norm(entry.obj):
        options.pop("norm")
    channels = {"in_channels": int(spec["in_channels"])}
    if kind == "generator":
        channels["out_channels"] = int(spec["out_channels"])
    return _build(entry, kind, options, **channels)


def _build(entry: Any, kind: str, options: Mapping[str, Any], **channels: int) -> nn.Module:
    """``entry.build(**channels, **options)``; a factory's refusal of its options (a wrong
    keyword or type, a bad value, a size beyond memory) is a :class:`ConfigError` naming them."""
    try:
        return entry.build(**channels, **options)
    except (TypeError, ValueError) as exc:
        why = str(exc)
    except RuntimeError as exc:
        if "allocate" not in str(exc):
            raise
        why = f"its weights need more memory than there is ({str(exc).splitlines()[0][:200]})"
    raise ConfigError(
        f"{kind} {entry.name!r} rejected its options {dict(options)} with {channels}: {why} "
        f"(see `i2i info {entry.name}`)"
    )


class _SkipRandomInit(TorchFunctionMode):
    """Turns torch's random weight initialisers into no-ops (the tensor keeps what it holds)."""

    SKIPPED = frozenset(
        {
            torch.Tensor.uniform_,
            torch.Tensor.normal_,
            init.uniform_,
            init.normal_,
            init.trunc_normal_,
            init.kaiming_uniform_,
            init.kaiming_normal_,
            init.xavier_uniform_,
            init.xavier_normal_,
            init.orthogonal_,
        }
    )

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        if func in self.SKIPPED:
            return args[0] if args else kwargs.get("tensor", kwargs.get("self"))
        return func(*args, **kwargs)


@contextmanager
def without_random_init() -> Iterator[None]:
    """Build networks whose weights are about to be loaded without drawing their random
    initial weights (about a second for a U-Net 256 on 2 cores, and a step of the global
    random stream): torch's random initialisers leave the freshly allocated tensors as they
    are. Load every parameter and persistent buffer (``strict=True``) before using the
    network.

    >>> with without_random_init():
    ...     net = nn.Linear(2, 3)
    >>> _ = net.load_state_dict({"weight": torch.ones(3, 2), "bias": torch.zeros(3)})
    >>> net(torch.ones(1, 2)).tolist()
    [[2.0, 2.0, 2.0]]
    """
    token = _WEIGHTS_LOADED_NEXT.set(True)
    try:
        with _SkipRandomInit():
            yield
    finally:
        _WEIGHTS_LOADED_NEXT.reset(token)


_WEIGHTS_LOADED_NEXT: ContextVar[bool] = ContextVar("i2i_weights_loaded_next", default=False)


def weights_loaded_next() -> bool:
    """Whether the network being built gets all its weights loaded next (inside
    :func:`without_random_init`, as a checkpoint rebuilds it): a factory then skips reading
    initial weights from a file, which the checkpoint's own weights replace anyway.

    >>> weights_loaded_next()
    False
    >>> with without_random_init():
    ...     weights_loaded_next()
    True
    """
    return _WEIGHTS_LOADED_NEXT.get()
