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
