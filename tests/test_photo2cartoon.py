"""photo2cartoon: the built-in unpaired domains are made offline, disjoint, and read as data."""

from __future__ import annotations

import json
import socket

import pytest
import torch

from i2i.data import PreprocessConfig, build_dataset, list_images, read_image
from i2i.testing import check_task

SPLITS = {"trainA": 56, "trainB": 56, "valA": 12, "valB": 12}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The domains, made once for this module in a fresh cache with the network refused."""
    from i2i_photo2cartoon import cartoon_data_root

    def refuse(*args, **kwargs):
        raise AssertionError("the built-in data must not touch the network")

    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("I2I_CACHE", str(cache))
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        yield cartoon_data_root()


def images(root, split) -> torch.Tensor:
    return torch.stack([read_image(p) for p in list_images(root / split)])


def test_domains_materialise_once(made):
    assert made.name == "photo2cartoon-v1"
    for split, n in SPLITS.items():
        assert len(list_images(made / split)) == n, split
    manifest = json.loads((made / "MANIFEST.json").read_text())
    assert len(manifest["files"]) == sum(SPLITS.values())
    assert all(s["licence"] for s in manifest["sources"])
    img = read_image(list_images(made / "trainA")[0])
    assert img.shape == (3, 128, 128) and float(img.std()) > 0.05

    from i2i_photo2cartoon import cartoon_data_root

    first = list_images(made / "trainB")[0]
    stamp = first.stat().st_mtime_ns
    assert cartoon_data_root() == made and first.stat().st_mtime_ns == stamp  # made once


def test_domains_are_deterministic(made, tmp_path, monkeypatch):
    from i2i_photo2cartoon import cartoon_data_root

    monkeypatch.setenv("I2I_CACHE", str(tmp_path))
    again = cartoon_data_root()
    for split in SPLITS:
        for a, b in zip(list_images(made / split), list_images(again / split), strict=True):
            assert a.name == b.name and a.read_bytes() == b.read_bytes()


def test_b_is_the_cartoon_style_and_a_is_not(made):
    levels = torch.tensor([0, 64, 128, 191, 255]) / 255.0  # 5 posterised levels as 8-bit
    for split, styled in (("trainA", False), ("trainB", True)):
        x = images(made, split)
        on_grid = (x[..., None] - levels).abs().min(dim=-1).values < 1e-4
        assert bool(on_grid.all()) is styled, split
    b = images(made, "trainB")
    assert float((b == 0).all(dim=1).float().mean()) > 0.05  # dark lines


def test_domains_are_disjoint(made):
    """No B image is the cartoon of an A image: B comes from other parts of the photos."""
    from i2i_photo2cartoon import cartoon

    a = torch.cat([images(made, "trainA"), images(made, "valA")])
    b = torch.cat([images(made, "trainB"), images(made, "valB")])
    names_a = {p.stem for s in ("trainA", "valA") for p in list_images(made / s)}
    names_b = {p.stem for s in ("trainB", "valB") for p in list_images(made / s)}
    assert not names_a & names_b
    styled = cartoon(a)
    # every A's cartoon against every B: the share of pixels off by more than 0.2 in a channel
    off = ((styled[:, None] - b[None]).abs().amax(dim=2) > 0.2).float().mean(dim=(2, 3))
    assert float(off.min()) > 0.02  # a pair would differ by 8-bit rounding only: 0 %


def test_the_task_reads_its_default_data(made, catalog, monkeypatch):
    monkeypatch.setenv("I2I_CACHE", str(made.parent))
    entry = catalog.tasks.get("photo2cartoon")
    assert entry.provider == "plugin 'i2i_photo2cartoon'"
    task = entry.obj
    assert (task.layout, task.direction, task.in_channels, task.out_channels) == (
        "unpaired",
        "AtoB",
        3,
        3,
    )
    assert task.defaults["recipe"] == "cyclegan" and task.defaults["crop_size"] == 128
    check_task(task, name="photo2cartoon")
    train = build_dataset(task, preprocess=PreprocessConfig(load_size=143, crop_size=128))
    assert len(train) == 56 and train.paired is False and train.folders[0] == made / "trainA"
    item = train[3]
    assert item["input"].shape == (3, 128, 128) and item["target"].shape == (3, 128, 128)
    assert "_left_" in item["path"] and "_right_" in item["target_path"]
    val = build_dataset(task, split="val", train=False, preprocess=PreprocessConfig(143, 128))
    assert len(val) == 12
    btoa = build_dataset(task, direction="BtoA", preprocess=PreprocessConfig(143, 128))
    assert "_right_" in btoa[0]["path"]


def test_defaults_resolve_to_a_cyclegan_run(catalog):
    from i2i.config import resolve_config

    cfg = resolve_config(catalog, "photo2cartoon")
    assert (cfg.recipe, cfg.generator, cfg.norm, cfg.crop_size, cfg.load_size) == (
        "cyclegan",
        "resnet_6blocks",
        "instance",
        128,
        143,
    )
    assert cfg.objective == {"lsgan": 1.0}
