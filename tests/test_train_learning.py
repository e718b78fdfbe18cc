"""The paper's recipe learns: on 8 facades (labels -> photo) at 64 px, L1 to the target falls.

Adam 2e-4 (0.5, 0.999), GAN + 100 L1, batch 1, BatchNorm, dropout, 70x70 PatchGAN; only the
U-Net is shallower (6 levels for 64 px) and narrower. Without augmentation the 8 pairs are
fitted: validation on the same pairs (paper test mode) shows the fit.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from i2i.catalog import Catalog
from i2i.config import resolve_config
from i2i.data import PreprocessConfig, build_dataset
from i2i.engine.build import make_generator
from i2i.engine.rng import isolated_rng, seed_everything
from i2i.engine.runner import train
from i2i.engine.tracking import read_metrics
from i2i.engine.validate import evaluate
from tests.test_engine_fixtures import (  # noqa: F401 (one_thread is a fixture)
    TinyPlugin,
    facades_plugin_manager,
    facades_subset,
    one_thread,
)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_paper_recipe_fits_eight_facades(data_root, tmp_path, monkeypatch):
    pm = facades_plugin_manager(monkeypatch)
    pm.register(TinyPlugin())
    catalog = Catalog.from_plugin_manager(pm)
    data = facades_subset(data_root, tmp_path / "facades", n_train=8, n_val=0)
    shutil.copytree(data / "train", data / "val", dirs_exist_ok=True)
    cfg = resolve_config(
        catalog,
        "facades",
        generator="unet_64",
        generator_kwargs={"ngf": 16},
        discriminator="patch70",
        discriminator_kwargs={"ndf": 16},
        data=str(data),
        out=str(tmp_path / "run"),
        load_size=64,
        crop_size=64,
        flip=False,
        max_steps=400,
        epochs=1000,
        val_every=200,
        log_every=50,
        device="cpu",
        precision="fp32",
        num_workers=0,
    )
    assert (cfg.lr, cfg.beta1, cfg.objective, cfg.batch_size) == (
        2e-4,
        0.5,
        {"gan": 1.0, "l1": 100.0},
        1,
    )
    task = catalog.tasks.get("facades").obj
    val = build_dataset(task, data, "val", preprocess=PreprocessConfig(64, 64), train=False)
    seed_everything(cfg.seed)  # the run's initial generator, built the way train() builds it
    untrained = make_generator(catalog, cfg.to_dict(), 3, 3)
    with isolated_rng(0):
        start = evaluate(untrained, val, task, device=torch.device("cpu"), mode="paper")

    run = train(cfg, catalog=catalog, quiet=True)

    records = read_metrics(run / "metrics.jsonl")
    vals = [r for r in records if r["kind"] == "val"]
    assert [r["step"] for r in vals] == [200, 400]
    end = vals[-1]
    assert end["val/l1"] < 0.6 * start["l1"], (start, end)
    assert end["val/psnr"] > start["psnr"] + 3.0
    g_l1 = [r["train/g_l1"] for r in records if r["kind"] == "train"]
    assert g_l1[-1] < 0.7 * g_l1[0], g_l1
