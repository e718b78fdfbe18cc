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


def test_readme_names_every_package_of_the_test_extra():
    import re

    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    extra = re.search(r"^test = \[(.*?)^\]", pyproject, re.S | re.M).group(1)
    names = re.findall(r'^\s*"([A-Za-z0-9_.-]+)', extra, re.M)
    assert "pytest" in names and "onnx" in names
    install = (REPO_ROOT / "README.md").read_text().split("## Install", 1)[1].split("\n## ", 1)[0]
    for name in names:
        assert name in install, f"README's Install section does not name {name} of [test]"
