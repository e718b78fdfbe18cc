"""Random number generator states as plain types, so resume state loads with ``weights_only``.

>>> state = capture_rng_state()
>>> a = torch.rand(2)
>>> restore_rng_state(state)
>>> torch.equal(a, torch.rand(2))
True
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def capture_rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python ``random`` states as tensors, ints and lists."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        states = list(cuda)[: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Run a block with every generator seeded from ``seed``, restoring the outer states after.

    Validation and sample grids use it, so that they neither disturb training nor depend on
    when they ran.

    >>> with isolated_rng(1):
    ...     a = torch.rand(1)
    >>> with isolated_rng(1):
    ...     b = torch.rand(1)
    >>> torch.equal(a, b)
    True
    """
    outer = capture_rng_state()
    try:
        seed_everything(seed)
        yield
    finally:
        restore_rng_state(outer)


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), numpy and Python ``random``."""
    seed = int(seed) % (2**63)
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)


def derive_seed(*parts: int) -> int:
    """A stable 63-bit seed from integers (e.g. ``(seed, epoch)``), the same on every machine.

    >>> derive_seed(0, 1) == derive_seed(0, 1) != derive_seed(1, 0)
    True
    """
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value ^= (int(part) + 0x9E3779B97F4A7C15 + ((value << 6) & (2**64 - 1)) + (value >> 2)) & (
            2**64 - 1
        )
        value = (value * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    return value >> 1
