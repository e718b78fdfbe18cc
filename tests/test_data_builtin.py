"""The built-in photos: made offline from scikit-image's bundled files, once, in the cache."""

from __future__ import annotations

import json
import socket

import pytest
import torch

from i2i.data import builtin_data_root, list_images, read_image
from i2i.data.builtin import SOURCES, skimage_data_dir


@pytest.fixture
def offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the built-in data must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_builtin_data_materialises_offline(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("I2I_CACHE", str(tmp_path / "cache"))
    root = builtin_data_root()
    assert root == tmp_path / "cache" / "builtin-v1"
    train, val = list_images(root / "train"), list_images(root / "val")
    assert len(train) == 38 and len(val) == 6
    assert {p.stem.rsplit("_", 1)[0] for p in val} == {s.file.split(".")[0] for s in SOURCES}
    img = read_image(train[0])
    assert img.shape == (3, 256, 256)
    assert float(img.std()) > 0.05  # a photograph, not a blank tile
    colour = (img - img.mean(dim=0, keepdim=True)).abs().mean()
    assert float(colour) > 0.02  # colour photos, so colorize has something to learn
    manifest = json.loads((root / "MANIFEST.json").read_text())
    assert len(manifest["files"]) == 44 and all(s["licence"] for s in manifest["sources"])

    stamp = train[0].stat().st_mtime_ns
    assert builtin_data_root() == root and train[0].stat().st_mtime_ns == stamp  # made once
    train[3].unlink()  # an incomplete folder is made again
    assert builtin_data_root() == root and len(list_images(root / "train")) == 38
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".builtin-")]


def test_builtin_tiles_are_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("I2I_CACHE", str(tmp_path / "a"))
    first = read_image(builtin_data_root() / "val" / "coffee_07.png")
    monkeypatch.setenv("I2I_CACHE", str(tmp_path / "b"))
    assert torch.equal(first, read_image(builtin_data_root() / "val" / "coffee_07.png"))


def test_sources_ship_with_scikit_image():
    for source in SOURCES:
        assert (skimage_data_dir() / source.file).is_file(), source.file
