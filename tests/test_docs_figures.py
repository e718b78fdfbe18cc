"""docs/make_figures.py draws the measured receptive fields (the measurement: test_models.py)."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.test_docs import DOCS, load_script

DECLARED = {"pixel": 1, "patch16": 16, "patch34": 34, "patch70": 70, "image286": 286}


@pytest.fixture(scope="module")
def figures():
    """The script as a module (docs/ is not a package)."""
    return load_script(DOCS / "make_figures.py")


@pytest.mark.parametrize("data", ["absent", "default"])
def test_main_writes_a_png(figures, tmp_path, monkeypatch, capsys, data):
    if data == "absent":  # no facade photo: the panels fall back to grey
        monkeypatch.setenv("I2I_DATA", str(tmp_path / "no-data"))
    dest = tmp_path / "figures"
    assert figures.main(["--dest", str(dest)]) == 0
    path = dest / "receptive_fields.png"
    with Image.open(path) as img:
        img.load()
        assert img.format == "PNG"
        assert img.width > img.height > 100
    assert path.stat().st_size < 200_000
    printed = capsys.readouterr().out
    for name, field in DECLARED.items():
        assert f"{name}: {field}x{field}\n" in printed
