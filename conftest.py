"""Whole-suite settings (tests, doctests): the speed-choice cache lives in a temporary folder.

``i2i.engine.tuning`` caches a once-per-machine measurement in the user's cache folder; the
test suite (and the processes it starts, which inherit the variable) must not write there.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_made: list[str] = []


def pytest_configure(config) -> None:
    folder = tempfile.mkdtemp(prefix="i2i-test-cache-")
    _made.append(folder)
    os.environ["I2I_CACHE"] = folder


def pytest_unconfigure(config) -> None:
    for folder in _made:
        shutil.rmtree(folder, ignore_errors=True)
