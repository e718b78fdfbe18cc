"""Shared fixtures: a fresh plugin manager per test, and the real data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root_path() -> Path:
    """Where the real data lives: ``$I2I_DATA`` or ``../shared/data`` beside the repo."""
    return Path(os.environ.get("I2I_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture
def data_root() -> Path:
    """The real data folder; skips (or fails with I2I_REQUIRE_DATA=1) when it is absent."""
    root = data_root_path()
    if not (root / "facades" / "train").is_dir():
        msg = f"real data not found at {root} (set I2I_DATA to the folder holding facades/)"
        if os.environ.get("I2I_REQUIRE_DATA") == "1":
            pytest.fail(msg + "; I2I_REQUIRE_DATA=1 makes this an error")
        pytest.skip(msg)
    return root


@pytest.fixture
def pm():
    """A fresh plugin manager with the built-ins and no installed plugins."""
    from i2i.plugins import make_plugin_manager

    return make_plugin_manager(load_entrypoints=False)


@pytest.fixture
def catalog(pm):
    from i2i.catalog import Catalog

    return Catalog.from_plugin_manager(pm)
