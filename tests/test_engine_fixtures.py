"""Shared pieces for the engine tests: a tiny plugin, tiny A|B data, tiny run configs.

(No tests here; the name keeps it beside the engine tests.)
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from i2i import Task, hookimpl
from i2i.catalog import Catalog
from i2i.config import RunConfig, resolve_config
from i2i.data.io import write_image
from i2i.models import UNetGenerator
from i2i.plugins import make_plugin_manager


def tiny_unet(
    in_channels: int, out_channels: int, *, ngf: int = 8, norm: str = "batch", dropout: bool = True
):
    """A 5-level U-Net: sizes multiple of 32, a few thousand parameters."""
    return UNetGenerator(
        in_channels, out_channels, num_downs=5, ngf=ngf, norm=norm, dropout=dropout
    )


def unet_64(
    in_channels: int, out_channels: int, *, ngf: int = 16, norm: str = "batch", dropout: bool = True
):
    """A 6-level U-Net for 64 x 64 images."""
    return UNetGenerator(
        in_channels, out_channels, num_downs=6, ngf=ngf, norm=norm, dropout=dropout
    )


class TinyPlugin:
    """Registers a paired 3 -> 3 task ``demo``, a 1 -> 3 task ``gray`` and tiny U-Nets."""

    @hookimpl
    def i2i_register_tasks(self, register):
        register(
            "demo", Task(summary="demo pairs", in_channels=3, out_channels=3, layout="aligned")
        )

        def gray_pair(images, generator=None):
            src, dst = images
            return src.mean(0, keepdim=True) * 2 - 1, dst * 2 - 1

        register(
            "gray",
            Task(
                summary="gray to rgb",
                in_channels=1,
                out_channels=3,
                layout="aligned",
                make_pair=gray_pair,
            ),
        )

    @hookimpl
    def i2i_register_generators(self, register):
        register("tiny_unet", tiny_unet, summary="5-level U-Net", size_multiple=32)
        register("unet_64", unet_64, summary="6-level U-Net", size_multiple=64)


def tiny_catalog() -> Catalog:
    return Catalog.from_plugin_manager(
        make_plugin_manager(load_entrypoints=False, plugins=(TinyPlugin(),))
    )


def write_ab_data(
    root: Path, n_train: int = 6, n_val: int = 3, *, height: int = 40, seed: int = 0
) -> Path:
    """Random A|B PNGs (``height`` x ``2 * height``) under ``root/train`` and ``root/val``."""
    gen = torch.Generator().manual_seed(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            a = torch.rand(3, height, height, generator=gen)
            b = (a.flip(-1) * 0.5 + 0.25).clamp(0, 1)  # a learnable relation
            write_image(torch.cat([a, b], -1), root / split / f"{i}.png")
    return root


def tiny_config(catalog: Catalog, data: Path, out: Path, **overrides: Any) -> RunConfig:
    """A CPU fp32 run of the tiny U-Net at 32 px on ``data``."""
    flags: dict[str, Any] = dict(
        generator="tiny_unet",
        discriminator="patch16",
        discriminator_kwargs={"ndf": 8},
        data=str(data),
        out=str(out),
        load_size=36,
        crop_size=32,
        epochs=2,
        device="cpu",
        precision="fp32",
        num_workers=0,
        log_every=2,
    )
    flags.update(overrides)
    return resolve_config(catalog, flags.pop("task", "demo"), **flags)


def facades_subset(data_root: Path, dest: Path, n_train: int, n_val: int) -> Path:
    """Copy the first ``n_train``/``n_val`` facades files into ``dest`` (train/ and val/)."""
    for split, n in (("train", n_train), ("val", n_val)):
        (dest / split).mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            shutil.copy(data_root / "facades" / split / f"{i}.jpg", dest / split / f"{i}.jpg")
    return dest


def facades_plugin_manager(monkeypatch: pytest.MonkeyPatch):
    """The built-ins plus the first-party facades plugin (imported from plugins/ if not installed)."""
    pm = make_plugin_manager(load_entrypoints=False)
    if "facades" not in Catalog.from_plugin_manager(pm).tasks:
        monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "plugins"))
        import i2i_facades

        pm.register(i2i_facades, name="i2i_facades")
    return pm


@pytest.fixture
def one_thread():
    """Run a test on one intra-op thread: tiny nets gain nothing from more, and on a busy
    2-core machine OpenMP threads that wait on each other slow such tests down many times."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
