"""The README's component list is generated from the registry and must not go stale."""

from i2i.reference import END, START, render_block, replace_block
from tests.conftest import REPO_ROOT


def test_readme_component_list_is_current():
    text = (REPO_ROOT / "README.md").read_text()
    assert START in text and END in text
    assert replace_block(text, render_block()) == text, (
        "README.md's component list is stale: run `python -m i2i.reference`"
    )


def test_readme_starts_with_two_commands():
    text = (REPO_ROOT / "README.md").read_text()
    head = text[: text.find("## ")]
    assert "i2i run" in head and "pytest" in head
