"""Every registered generator, discriminator, loss and task passes the i2i.testing checks.

Parametrized over the registries, so a newly registered component is tested automatically.
The checks themselves are tested on broken components at the end.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from i2i.catalog import Catalog
from i2i.plugins import make_plugin_manager
from i2i.task import Task
from i2i.testing import (
    ConformanceError,
    check_discriminator,
    check_generator,
    check_loss,
    check_task,
)

_CATALOG = Catalog.from_plugin_manager(make_plugin_manager(load_entrypoints=False))
GENERATORS = _CATALOG.generators.names()
DISCRIMINATORS = _CATALOG.discriminators.names()
LOSSES = _CATALOG.losses.names()
TASKS = _CATALOG.tasks.names()


def _tiny(entry, **options):
    """The keyword options the factory accepts, to keep the nets tiny."""
    accepted = entry.options()
    return {k: v for k, v in options.items() if k in accepted}


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_conformance(catalog, name):
    entry = catalog.generators.get(name)
    kwargs = _tiny(entry, ngf=4)
    multiple = entry.build(in_channels=1, out_channels=2, **kwargs).size_multiple
    size = multiple * math.ceil(64 / multiple)
    result = check_generator(entry, 1, 2, size=size, **kwargs)
    assert result["output_shape"] == (2, 2, size, size)


@pytest.mark.parametrize("name", DISCRIMINATORS)
def test_discriminator_conformance(catalog, name):
    entry = catalog.discriminators.get(name)
    result = check_discriminator(entry, 4, **_tiny(entry, ndf=4))
    assert result["measured"] == result["receptive_field"]


@pytest.mark.parametrize("name", LOSSES)
def test_loss_conformance(catalog, name):
    entry = catalog.losses.get(name)
    assert entry.meta.get("type") in ("adversarial", "reconstruction"), name
    check_loss(entry)


@pytest.mark.parametrize("name", TASKS)
def test_task_conformance(catalog, name):
    check_task(catalog.tasks.get(name).obj, name=name)


def test_the_built_ins_are_all_covered():
    assert {
        "unet_256",
        "unet_128",
        "encoder_decoder_256",
        "encoder_decoder_128",
        "unet_timm",
        "resnet_6blocks",
        "resnet_9blocks",
    } <= set(GENERATORS)
    assert {"pixel", "patch16", "patch34", "patch70", "image286"} <= set(DISCRIMINATORS)
    assert {"gan", "lsgan", "hinge", "wgan_gp", "l1", "l2"} <= set(LOSSES)


# --- the checks catch broken components ----------------------------------------------------


class _Gen(nn.Module):
    size_multiple = 4

    def __init__(self, in_channels, out_channels, *, out_extra=0, unused=False, scale=1.0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels + out_extra, 3, padding=1)
        self.scale = scale
        if unused:
            self.dead = nn.Linear(2, 2)

    def forward(self, x):
        return torch.tanh(self.conv(x)) * self.scale


def test_check_generator_accepts_a_good_one():
    assert check_generator(_Gen, 3, 2, name="good")["output_shape"] == (2, 2, 32, 32)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"out_extra": 1},
            r"generator 'bad': expected output \(2, 2, 32, 32\).*got \(2, 3, 32, 32\)",
        ),
        ({"unused": True}, r"generator 'bad': 2 parameters get no gradient.*dead.weight"),
        ({"scale": 3.0}, r"generator 'bad': output outside \[-1.0, 1.0\]"),
    ],
)
def test_check_generator_catches(kwargs, message):
    with pytest.raises(ConformanceError, match=message):
        check_generator(_Gen, 3, 2, name="generator 'bad'", **kwargs)


def test_check_generator_names_registry_entries(catalog):
    catalog.generators.add("broken", _Gen, provider="test", size_multiple=8)
    with pytest.raises(ConformanceError, match="generator 'broken': registered size_multiple=8"):
        check_generator(catalog.generators.get("broken"), 3, 3)


def test_check_generator_requires_size_multiple():
    def factory(in_channels, out_channels):
        return nn.Conv2d(in_channels, out_channels, 1)

    with pytest.raises(ConformanceError, match="positive int attribute 'size_multiple'"):
        check_generator(factory, 3, 3, name="g")


class _Disc(nn.Module):
    def __init__(self, in_channels, *, declared=3, pool=False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, 3)
        self.receptive_field = declared
        self.pool = pool

    def forward(self, x):
        out = self.conv(x)
        return out.mean(dim=(2, 3), keepdim=True).expand_as(out) if self.pool else out


def test_check_discriminator_accepts_a_good_one():
    assert check_discriminator(_Disc, 3, name="d")["measured"] == 3


def test_check_discriminator_catches_a_wrong_field():
    with pytest.raises(ConformanceError, match="'d': declares receptive_field=5 but measures 3"):
        check_discriminator(_Disc, 3, declared=5, name="'d'")


def test_check_discriminator_catches_global_dependence():
    with pytest.raises(ConformanceError, match="wider than the largest test input"):
        check_discriminator(_Disc, 3, pool=True, max_field_size=128, name="d")


class _BackwardsGAN(nn.Module):
    def discriminator_loss(self, real, fake):
        return real.mean() - fake.mean()  # rewards D for calling real fake

    def generator_loss(self, fake):
        return -fake.mean()

    def penalty(self, d, real, fake):
        return None


class _DetachedPenaltyGAN(_BackwardsGAN):
    def discriminator_loss(self, real, fake):
        return fake.mean() - real.mean()

    def penalty(self, d, real, fake):
        return d(real).detach().mean().requires_grad_()  # never reaches D's parameters


def test_check_loss_catches_wrong_sign():
    with pytest.raises(ConformanceError, match="'bw': discriminator_loss is not lower"):
        check_loss(_BackwardsGAN, type="adversarial", name="'bw'")


def test_check_loss_catches_penalty_without_gradient():
    with pytest.raises(ConformanceError, match="'dp': penalty gives no gradient to D's parameters"):
        check_loss(_DetachedPenaltyGAN, type="adversarial", name="'dp'")


def test_check_loss_catches_reconstruction_not_zero_at_identity():
    class Off(nn.Module):
        def forward(self, fake, target):
            return (fake - target).abs().mean() + 1.0

    with pytest.raises(ConformanceError, match="loss\\(t, t\\) == 0"):
        check_loss(Off, type="reconstruction", name="off")


def test_check_loss_requires_a_type():
    with pytest.raises(ConformanceError, match="expected type 'adversarial' or 'reconstruction'"):
        check_loss(nn.L1Loss, name="untyped")


def test_check_task_accepts_the_default_task():
    t = Task(summary="t", in_channels=3, out_channels=3, layout="aligned")
    assert check_task(t, name="t") == {"input_shape": (3, 64, 64), "target_shape": (3, 64, 64)}


def test_check_task_catches_wrong_channels_and_range():
    wrong_channels = Task(summary="t", in_channels=1, out_channels=3, layout="aligned")
    with pytest.raises(
        ConformanceError, match=r"task 'gray': make_pair input: expected \(1, 64, 64\)"
    ):
        check_task(wrong_channels, name="gray")
    out_of_range = Task(
        summary="t",
        in_channels=3,
        out_channels=3,
        layout="single",
        make_pair=lambda img, generator=None: (img * 4 - 2, img * 2 - 1),
    )
    with pytest.raises(ConformanceError, match="make_pair input outside"):
        check_task(out_of_range, name="oor")
