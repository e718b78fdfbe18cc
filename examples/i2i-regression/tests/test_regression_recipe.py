"""The example recipe's own tests: it registers, trains through i2i's engine, and its
checkpoints translate and resume, as any recipe author's tests would check."""

import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import i2i
from i2i.catalog import Catalog
from i2i.cli import build_cli
from i2i.config import ConfigError, resolve_config
from i2i.data import write_image
from i2i.engine import load_checkpoint, train
from i2i.engine.distributed import DistInfo
from i2i.plugins import make_plugin_manager

try:
    import i2i_regression
except ImportError:  # a source checkout where the package is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import i2i_regression


@pytest.fixture
def pm():
    return make_plugin_manager(load_entrypoints=False, plugins=(i2i_regression,))


@pytest.fixture
def catalog(pm):
    return Catalog.from_plugin_manager(pm)


@pytest.fixture
def photos(tmp_path):
    """A tiny folder of random photos: 4 to train on, 2 to validate with."""
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 4), ("val", 2)):
        for i in range(n):
            image = torch.rand(3, 32, 32, generator=gen)
            write_image(image, tmp_path / "photos" / split / f"{i}.png")
    return tmp_path / "photos"


def tiny_config(catalog, photos, out, **flags):
    """A colorize run of ``steps`` steps on 32 px crops with a small ResNet generator."""
    return resolve_config(
        catalog, "colorize", recipe="regression", data=str(photos), out=str(out),
        generator="resnet_6blocks", generator_kwargs={"ngf": 8}, crop_size=32, load_size=36,
        device="cpu", precision="fp32", num_workers=0, **flags,
    )  # fmt: skip


def test_i2i_list_recipes_shows_it_with_its_provider(pm):
    result = CliRunner().invoke(build_cli(pm), ["list", "recipes"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.strip().startswith("regression "))
    assert "Regression: reconstruction losses only" in line
    info = CliRunner().invoke(build_cli(pm), ["info", "regression"])
    assert "i2i_regression" in info.output and "ema = 0.999" in info.output


def test_its_defaults_replace_the_tasks_gan_settings(catalog, photos, tmp_path):
    cfg = tiny_config(catalog, photos, tmp_path / "run", max_steps=1)
    assert cfg.recipe == "regression" and cfg.objective == {"l1": 1.0}
    assert cfg.recipe_options == {"ema": 0.999} and cfg.beta1 == 0.9
    cfg = tiny_config(catalog, photos, tmp_path / "run", max_steps=1, objective="l2=1")
    assert cfg.objective == {"l2": 1.0}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"objective": "gan=1,l1=100"}, "trains no discriminator.*'gan'"),
        ({"recipe_options": {"ema": 1.0}}, "'ema' must be below 1"),
        ({"recipe_options": {"ema": -0.5}}, "'ema' must be >= 0"),
        ({"recipe_options": {"emma": 0.9}}, "Did you mean 'ema'"),
    ],
)
def test_refuses_what_it_cannot_train(catalog, photos, tmp_path, flags, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(catalog, photos, tmp_path / "run", max_steps=1, **flags)


def test_trains_saves_its_roles_translates_and_resumes(catalog, photos, tmp_path):
    cfg = tiny_config(catalog, photos, tmp_path / "run", max_steps=3, log_every=1)
    run = train(cfg, catalog=catalog, quiet=True)
    ckpt = load_checkpoint(run)
    assert ckpt.step == 3 and ckpt.recipe == "regression"
    assert sorted(ckpt.weights) == ["average", "model"]
    assert ckpt.translators == {"AtoB": "average"}
    assert ckpt.roles["average"] == ckpt.roles["model"]  # the same network, rebuilt alike
    assert ckpt.train_state()["recipe"]["ema_updates"] == 3
    # the average moved towards the model, without being it
    model, average = ckpt.weights["model"], ckpt.weights["average"]
    assert any(not torch.equal(model[k], average[k]) for k in model)
    metrics = (run / "metrics.jsonl").read_text()
    assert '"train/g_l1"' in metrics and '"val/images": 2' in metrics and '"val/loss"' in metrics

    model = i2i.load(run, device="cpu", catalog=catalog)
    colour = model.translate(torch.rand(3, 40, 48))  # any size comes back the same
    assert colour.shape[-2:] == (40, 48)

    resumed = train(
        tiny_config(catalog, photos, tmp_path / "run", max_steps=5),
        catalog=catalog, resume=run, quiet=True,
    )  # fmt: skip
    assert load_checkpoint(resumed).train_state()["recipe"]["ema_updates"] == 5


def test_without_the_average_the_model_translates(catalog, photos, tmp_path):
    cfg = tiny_config(
        catalog, photos, tmp_path / "run", max_steps=2, recipe_options={"ema": 0.0},
        objective="l2=1",
    )  # fmt: skip
    ckpt = load_checkpoint(train(cfg, catalog=catalog, quiet=True))
    assert sorted(ckpt.weights) == ["model"] and ckpt.translators == {"AtoB": "model"}


def test_a_nonfinite_loss_skips_the_update_when_asked(catalog, photos, tmp_path):
    cfg = tiny_config(catalog, photos, tmp_path / "run", max_steps=1, on_nonfinite="skip")
    recipe = catalog.recipes.get("regression").obj
    setup = i2i.RecipeSetup(cfg, dict(cfg.recipe_options), catalog.tasks.get("colorize").obj,
                            catalog, dist=DistInfo())  # fmt: skip
    step = recipe.build(setup)
    step.skip_nonfinite = True
    # the weights stay (batch-norm running statistics saw the forward pass: they may not)
    before = {k: v.clone() for k, v in step.model.named_parameters()}
    batch = {"input": torch.full((1, 1, 32, 32), float("nan")), "target": torch.zeros(1, 2, 32, 32)}
    with pytest.raises(i2i.NonFiniteLossError):
        step.train_step(batch)
    assert all(torch.equal(before[k], v) for k, v in step.model.named_parameters())
    assert step.updates == 0
