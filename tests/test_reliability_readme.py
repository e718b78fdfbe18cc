"""The README's Reliability section names tests that exist, and it stays the last section."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT


def _section() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    assert "\n## Reliability\n" in text
    return text.split("\n## Reliability\n", 1)[1]


def test_reliability_section_is_last():
    assert "\n## " not in _section()


def test_every_test_the_reliability_table_names_exists():
    refs = []
    for row in _section().splitlines():
        if not row.startswith("| ") or "tests/" not in row:
            continue
        path = None
        for ref in re.findall(r"`((?:tests/[\w/]+\.py)?(?:::\w+)?)`", row.split(" | ", 1)[1]):
            file, _, name = ref.partition("::")
            path = file or path  # `::name` continues the file named before it
            refs.append((path, name))
    assert len(refs) >= 20
    for path, name in refs:
        source = (REPO_ROOT / path).read_text()
        assert not name or f"def {name}(" in source, f"{path}::{name} is not a test"
