"""Headless Chromium for tests that open generated HTML pages from disk."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def chromium() -> str:
    """The browser's path; skips the test when none is installed (fails under CI's flag)."""
    found = (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )
    if found is None:
        msg = "chromium not installed (apt-get install -y chromium)"
        if os.environ.get("I2I_REQUIRE_BROWSER") == "1":
            pytest.fail(msg + "; I2I_REQUIRE_BROWSER=1 makes this an error")
        pytest.skip(msg)
    return found


def dump_dom(browser: str, page: Path, profile: Path) -> str:
    """The page's DOM after its scripts ran, from headless Chromium with no network chatter."""
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
