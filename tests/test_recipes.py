"""Recipes: the registry, options, and a third-party recipe trained by the generic engine."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from i2i import Recipe, RecipeOption, RecipeStep, hookimpl
from i2i.catalog import Catalog
from i2i.cli import build_cli
from i2i.config import ConfigError, resolve_config
from i2i.engine import checkpoint as ck
from i2i.engine.devices import resolve_channels_last
from i2i.engine.runner import train
from i2i.plugins import make_plugin_manager
from tests.test_engine_fixtures import TinyPlugin, tiny_config, write_ab_data


def _cli(*plugins):
    return build_cli(make_plugin_manager(load_entrypoints=False, plugins=plugins))


def test_list_recipes_names_both_with_their_providers():
    result = CliRunner().invoke(_cli(), ["list", "recipes", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert set(rows) >= {"pix2pix", "cyclegan"}
    assert rows["pix2pix"]["provider"] == "plugin 'i2i.recipes'"
    assert rows["cyclegan"]["provider"] == "plugin 'i2i_cyclegan'"


def test_info_cyclegan_shows_the_papers_defaults():
    result = CliRunner().invoke(_cli(), ["info", "cyclegan", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["options"] == {
        "lambda_x": 10.0,
        "lambda_y": 10.0,
        "lambda_identity": 0.5,
        "pool_size": 50,
    }
    run = info["run_defaults"]
    assert run["objective"] == {"lsgan": 1.0}
    assert (run["lr"], run["beta1"], run["beta2"]) == (2e-4, 0.5, 0.999)
    assert (run["epochs"], run["epochs_decay"]) == (100, 100)
    assert run["generator"] == "resnet_9blocks" and run["norm"] == "instance"
    assert info["unpaired"] is True


def test_recipe_options_are_checked_by_name_and_type(catalog):
    with pytest.raises(ConfigError, match="Did you mean 'pool_size'"):
        resolve_config(catalog, "facades", recipe="cyclegan", recipe_options={"pool_sz": 3})
    with pytest.raises(ConfigError, match="'pool_size' must be a int"):
        resolve_config(catalog, "facades", recipe="cyclegan", recipe_options={"pool_size": "x"})
    with pytest.raises(ConfigError, match=">= 0"):
        resolve_config(catalog, "facades", recipe="cyclegan", recipe_options={"lambda_x": -1})
    cfg = resolve_config(catalog, "facades", recipe="cyclegan", recipe_options={"pool_size": 0})
    assert cfg.recipe_options == {
        "lambda_x": 10.0,
        "lambda_y": 10.0,
        "lambda_identity": 0.5,
        "pool_size": 0,
    }


def test_another_recipe_brings_its_own_run_defaults(catalog):
    pix = resolve_config(catalog, "facades")
    cyc = resolve_config(catalog, "facades", recipe="cyclegan")
    assert (pix.recipe, pix.objective, pix.norm) == ("pix2pix", {"gan": 1.0, "l1": 100.0}, "batch")
    assert (cyc.recipe, cyc.objective, cyc.norm) == ("cyclegan", {"lsgan": 1.0}, "instance")
    assert cyc.direction == "BtoA"  # the task's data orientation still holds
    flags = resolve_config(catalog, "facades", recipe="cyclegan", norm="batch")
    assert flags.norm == "batch"  # flags win over the recipe's choices


def test_unpaired_needs_a_recipe_that_learns_without_pairs(catalog):
    with pytest.raises(ConfigError, match="learns from aligned pairs only; use a recipe"):
        resolve_config(catalog, "facades", unpaired=True)
    with pytest.raises(ConfigError, match="derives its input"):
        resolve_config(catalog, "colorize", recipe="cyclegan", unpaired=True)


def test_cyclegan_refuses_reconstruction_terms_and_mismatched_identity(catalog):
    with pytest.raises(ConfigError, match="one adversarial term"):
        resolve_config(catalog, "facades", recipe="cyclegan", objective="lsgan=1,l1=100")
    with pytest.raises(ConfigError, match="lambda_identity=0"):
        resolve_config(catalog, "edges2shoes", recipe="cyclegan")
    cfg = resolve_config(
        catalog, "edges2shoes", recipe="cyclegan", recipe_options={"lambda_identity": 0}
    )
    assert cfg.recipe_options["lambda_identity"] == 0.0


def test_run_cli_refuses_an_unknown_recipe_with_a_suggestion():
    result = CliRunner().invoke(_cli(), ["run", "--task", "facades", "--recipe", "cyclegn"])
    assert result.exit_code == 2
    assert "Did you mean 'cyclegan'" in result.output


# --------------------------------------------------------------------------- a third-party recipe


class MeanStep(RecipeStep):
    """Regress the target with an L1 loss only: one role, named by the recipe."""

    def __init__(self, net, opt, spec, direction, weight):
        super().__init__(specs={"regressor": spec}, translators={direction: "regressor"})
        self.net, self.opt, self.weight = net, opt, weight

    def modules(self):
        return {"regressor": self.net}

    def optimizers(self):
        return {"regressor": self.opt}

    def extra_state(self):
        return {"seen": torch.tensor(getattr(self, "seen", 0))}

    def load_extra_state(self, state):
        self.seen = int(state["seen"])

    def train_step(self, batch):
        x, y = self.to_device(batch["input"]), self.to_device(batch["target"])
        loss = (self.net(x) - y).abs().mean() * self.weight
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.seen = getattr(self, "seen", 0) + x.shape[0]
        return {"l1": loss.detach()}


class MeanRecipe(Recipe):
    summary = "L1 regression, a test recipe"
    options = {"weight": RecipeOption(1.0, "Weight of the L1 term", minimum=0.0)}

    def build(self, setup):
        net, spec = setup.generator(setup.task.in_channels, setup.task.out_channels)
        step = MeanStep(net, setup.adam(net), spec, setup.config.direction, 1.0)
        step.weight = setup.options["weight"]
        return step.on(setup)


class RecipePlugin:
    @hookimpl
    def i2i_register_recipes(self, register):
        register("l1_only", MeanRecipe())


def test_a_plugin_recipe_trains_saves_its_roles_resumes_and_translates(tmp_path):
    pm = make_plugin_manager(load_entrypoints=False, plugins=(TinyPlugin(), RecipePlugin()))
    catalog = Catalog.from_plugin_manager(pm)
    data = write_ab_data(tmp_path / "data", n_train=2, n_val=1)
    cfg = tiny_config(
        catalog,
        data,
        tmp_path / "run",
        recipe="l1_only",
        recipe_options={"weight": 2.0},
        max_steps=2,
    )
    run = train(cfg, catalog=catalog, quiet=True)
    ckpt = ck.load_checkpoint(run)
    assert sorted(p.name for p in ckpt.path.glob("*.safetensors")) == ["regressor.safetensors"]
    assert ckpt.recipe == "l1_only" and ckpt.translators == {"AtoB": "regressor"}
    assert ckpt.config["recipe_options"] == {"weight": 2.0}
    assert int(ckpt.train_state()["recipe"]["seen"]) == 2
    resolved = json.loads((run / "resolved.json").read_text())  # what "auto" became
    auto_layout = resolve_channels_last(None, torch.device("cpu"), "fp32", training=True)
    assert (resolved["device"], resolved["precision"], resolved["channels_last"]) == (
        "cpu",
        "fp32",
        auto_layout,  # NHWC where this CPU's choices say so (AVX-512: yes; AVX2 alone: no)
    )

    resumed = train(cfg.replace(max_steps=4), catalog=catalog, resume=run, quiet=True)
    assert ck.load_checkpoint(resumed).step == 4
    assert int(ck.load_checkpoint(resumed).train_state()["recipe"]["seen"]) == 4

    from i2i.inference import load

    translator = load(run, catalog=catalog)
    out = translator.translate(torch.rand(3, 40, 56))
    assert out.shape == (3, 40, 56)
