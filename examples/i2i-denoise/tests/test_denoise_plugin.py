"""The example plugin's own tests, built on i2i.testing as any plugin author's would be."""

import pytest
import torch

import i2i_denoise
from i2i.catalog import Catalog
from i2i.plugins import make_plugin_manager
from i2i.testing import check_generator, check_task


@pytest.fixture
def catalog():
    pm = make_plugin_manager(load_entrypoints=False, plugins=(i2i_denoise,))
    return Catalog.from_plugin_manager(pm)


def test_registers_task_and_generator(catalog):
    assert catalog.tasks.get("denoise").obj is i2i_denoise.DENOISE
    assert "dncnn" in catalog.generators


def test_denoise_task_conforms():
    check_task(i2i_denoise.DENOISE)


def test_dncnn_conforms(catalog):
    check_generator(catalog.generators.get("dncnn"), 3, 3, size=16, depth=4, features=8)


def test_noise_is_reproducible_and_bounded():
    img = torch.rand(3, 16, 16)
    a = i2i_denoise.add_noise(img, torch.Generator().manual_seed(1))
    b = i2i_denoise.add_noise(img, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0])
    assert a[0].min() >= -1 and a[0].max() <= 1
    assert not torch.equal(a[0], a[1])


def test_dncnn_rejects_channel_mismatch():
    with pytest.raises(ValueError, match="in_channels must equal out_channels"):
        i2i_denoise.make_dncnn(1, 3)


def test_denoise_trains_through_the_engine(catalog, tmp_path):
    """The plugin's task and generator train with i2i's own loop: a few steps, a checkpoint."""
    from i2i.config import resolve_config
    from i2i.data import write_image
    from i2i.engine import load_checkpoint, train

    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 3), ("val", 1)):
        for i in range(n):
            write_image(
                torch.rand(3, 32, 32, generator=gen), tmp_path / "photos" / split / f"{i}.png"
            )
    cfg = resolve_config(
        catalog, "denoise", data=str(tmp_path / "photos"), out=str(tmp_path / "run"),
        max_steps=3, crop_size=32, load_size=36, device="cpu", precision="fp32", num_workers=0,
        generator_kwargs={"depth": 3, "features": 8}, discriminator="patch16",
        discriminator_kwargs={"ndf": 8},
    )  # fmt: skip
    run = train(cfg, catalog=catalog, quiet=True)
    ckpt = load_checkpoint(run)
    assert ckpt.step == 3 and ckpt.config["generator"] == "dncnn"
    assert (run / "metrics.jsonl").read_text().count('"val/psnr"') >= 1
