"""RunConfig: task defaults then flags, names validated up front, JSON round trips."""

from __future__ import annotations

import json

import pytest

from i2i import Task, hookimpl
from i2i.catalog import Catalog
from i2i.config import ConfigError, RunConfig, parse_options, parse_weights, resolve_config
from i2i.plugins import make_plugin_manager
from i2i.registry import UnknownComponentError
from tests.test_engine_fixtures import TinyPlugin


class DefaultsPlugin:
    @hookimpl
    def i2i_register_tasks(self, register):
        register(
            "labels",
            Task(
                summary="with defaults",
                in_channels=3,
                out_channels=3,
                layout="aligned",
                direction="BtoA",
                defaults={
                    "generator": "unet",
                    "objective": "gan=1,l1=50",
                    "load_size": 143,
                    "crop_size": 128,
                    "generator_kwargs": {"ngf": 32},
                    "epochs": 100,
                    "epochs_decay": 100,
                },
            ),
        )


@pytest.fixture
def catalog():
    pm = make_plugin_manager(load_entrypoints=False, plugins=(TinyPlugin(), DefaultsPlugin()))
    return Catalog.from_plugin_manager(pm)


def test_task_defaults_then_flags(catalog):
    cfg = resolve_config(
        catalog, "labels", generator="unet_128", lambda_l1=10, generator_kwargs={"dropout": False}
    )
    assert cfg.generator == "unet_128" and cfg.crop_size == 128 and cfg.load_size == 143
    assert cfg.objective == {"gan": 1.0, "l1": 10.0}
    assert cfg.direction == "BtoA"
    assert cfg.generator_kwargs == {"ngf": 32, "dropout": False}  # options add to the task's
    assert (cfg.lr, cfg.beta1, cfg.beta2, cfg.batch_size, cfg.norm) == (
        2e-4,
        0.5,
        0.999,
        1,
        "batch",
    )


def test_epochs_alone_means_no_decay_phase(catalog):
    assert (
        resolve_config(catalog, "demo").epochs,
        resolve_config(catalog, "demo").epochs_decay,
    ) == (100, 100)
    cfg = resolve_config(catalog, "demo", epochs=1)
    assert (cfg.epochs, cfg.epochs_decay) == (1, 0)
    cfg = resolve_config(catalog, "demo", epochs=5, epochs_decay=5)
    assert cfg.total_epochs == 10


def test_aliases_become_canonical_names(catalog):
    cfg = resolve_config(
        catalog, "demo", generator="unet", discriminator="patch", objective="gan=1,l1=100"
    )
    assert (cfg.generator, cfg.discriminator) == ("unet_256", "patch70")


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        ({"generator": "unet_512"}, "generator 'unet_512'"),
        ({"discriminator": "patch71"}, "Did you mean 'patch70'"),
        ({"objective": "gan=1,l3=1"}, "loss 'l3'"),
    ],
)
def test_unknown_names_fail_up_front(catalog, flags, match):
    with pytest.raises(UnknownComponentError, match=match):
        resolve_config(catalog, "demo", **flags)


def test_unknown_task_fails(catalog):
    with pytest.raises(UnknownComponentError, match="Available"):
        resolve_config(catalog, "facadez")


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        ({"crop_size": 128}, "multiples of 256"),
        ({"crop_size": 300, "load_size": 286}, "larger than load_size"),
        ({"objective": "gan=1,lsgan=1"}, "one adversarial term"),
        ({"objective": "l1=x"}, "must be a number"),
        ({"norm": "group"}, "norm must be one of"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"direction": "AtoC"}, "direction"),
        ({"colour": 1}, "Unknown run option"),
    ],
)
def test_bad_values_fail_with_the_field_named(catalog, flags, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config(catalog, "demo", **flags)


def test_no_adversarial_term_needs_no_discriminator(catalog):
    cfg = resolve_config(catalog, "demo", objective="l1=1", crop_size=256)
    assert cfg.discriminator is None


def test_json_round_trip_and_unknown_keys(catalog):
    cfg = resolve_config(catalog, "demo", data="some/where", seed=3)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert RunConfig.from_dict(data) == cfg
    assert cfg.data.endswith("some/where") and cfg.data.startswith("/")
    with pytest.raises(ConfigError, match="'colour'"):
        RunConfig.from_dict({**data, "colour": "red"})
    assert RunConfig.from_dict({**data, "step": 3}, ignore=("step",)) == cfg


def test_parsers():
    assert parse_weights("gan=1, l1=100") == {"gan": 1.0, "l1": 100.0}
    with pytest.raises(ConfigError, match="twice"):
        parse_weights("l1=1,l1=2")
    assert parse_options(["ngf=16", "dropout=False", "encoder=resnet18", "scale=0.5"]) == {
        "ngf": 16,
        "dropout": False,
        "encoder": "resnet18",
        "scale": 0.5,
    }
    with pytest.raises(ConfigError, match="key=value"):
        parse_options(["ngf"])


def test_default_generator_follows_the_crop_size(catalog):
    """The paper's unet_256 cannot run on 128 px crops; the task default picks its sibling."""
    cfg = resolve_config(catalog, "labels", crop_size=128, generator_kwargs={})
    assert cfg.generator == "unet_128" and cfg.load_size == 143  # 128 * 286 / 256
    assert resolve_config(catalog, "labels", crop_size=256).generator == "unet_256"
    assert resolve_config(catalog, "labels", crop_size=256, load_size=300).load_size == 300


def test_a_typed_generator_is_never_swapped(catalog):
    with pytest.raises(ConfigError, match="multiples of 256.*crop_size is 128"):
        resolve_config(catalog, "labels", generator="unet_256", crop_size=128)
