"""CycleGAN: it learns without pairs, and runs end to end through the CLI on real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from i2i import RecipeSetup
from i2i.cli import build_cli
from i2i.config import resolve_config
from i2i.data.builtin import builtin_data_root
from i2i.data.io import list_images, read_image, write_image
from i2i.engine import checkpoint as ck
from i2i.metrics.color import color_hist_metric
from i2i.plugins import make_plugin_manager
from tests.test_engine_fixtures import one_thread  # noqa: F401 (a fixture)


def _crops(paths: list[Path], n: int, gen: torch.Generator, size: int = 32) -> torch.Tensor:
    """``n`` random ``size`` px crops of the photos, in model range [-1, 1]."""
    out = []
    for i in range(n):
        img = read_image(paths[i % len(paths)])
        h, w = img.shape[-2:]
        top = int(torch.randint(0, h - size, (), generator=gen))
        left = int(torch.randint(0, w - size, (), generator=gen))
        out.append(img[:, top : top + size, left : left + size])
    return torch.stack(out) * 2 - 1


def _hist_intersection(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean Lab histogram intersection of two batches in model range (1: same colours)."""
    metric = color_hist_metric()
    metric.update(((a + 1) / 2).clamp(0, 1), ((b + 1) / 2).clamp(0, 1))
    return sum(metric.compute().values()) / 3


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_cyclegan_learns_photos_to_their_negatives_without_pairs(catalog):
    """Domain X: photos; domain Y: colour-inverted copies of OTHER photos (nothing paired).

    After 120 steps the cycle error F(G(x)) - x is well below where it started, and G's
    outputs have moved toward domain Y's colours (Lab histogram intersection with Y) at one of
    the checks after 120, 160 and 200 steps: the colours of a GAN's outputs swing from step
    to step (on an AMD Zen 5 this seed read 0.30, 0.26, 0.30 and 0.54 at 80-200 steps), while
    a generator that learned nothing stays where it started at every check.
    """
    torch.manual_seed(0)
    files = list_images(builtin_data_root() / "train")
    half = len(files) // 2
    gen = torch.Generator().manual_seed(0)
    xs, ys = _crops(files[:half], 64, gen), -_crops(files[half:], 64, gen)
    held_out = _crops(files[:half], 16, gen)
    cfg = resolve_config(
        catalog,
        "facades",
        recipe="cyclegan",
        generator="resnet_6blocks",
        generator_kwargs={"ngf": 16},
        discriminator="patch16",
        discriminator_kwargs={"ndf": 16},
        crop_size=32,
        load_size=36,
        device="cpu",
        precision="fp32",
        lr=5e-4,
        recipe_options={"lambda_identity": 0.0},  # identity pulls G toward x, not toward -x
    )
    task = catalog.tasks.get("facades").obj
    setup = RecipeSetup(config=cfg, options=cfg.recipe_options, task=task, catalog=catalog)
    step = catalog.recipes.get("cyclegan").obj.build(setup)
    g, f = step.modules()["G"], step.modules()["F"]

    def measure() -> tuple[float, float]:
        with torch.no_grad():
            g.eval(), f.eval()
            gx = g(held_out)
            cycle = float((f(gx) - held_out).abs().mean())
            g.train(), f.train()
        return cycle, _hist_intersection(gx, ys[:16])

    cycle0, toward_y0 = measure()
    checks = []
    for i in range(1, 201):
        step.train_step(
            {"input": xs[torch.randint(0, 64, (4,))], "target": ys[torch.randint(0, 64, (4,))]}
        )
        if i in (120, 160, 200):
            checks.append(measure())
    baseline = _hist_intersection(held_out, ys[:16])  # the photos themselves against Y
    assert checks[0][0] < 0.8 * cycle0, (cycle0, checks)
    toward_y1 = max(toward for _, toward in checks)
    assert toward_y1 > toward_y0 + 0.1 and toward_y1 > baseline + 0.05, (
        toward_y0,
        checks,
        baseline,
    )


def _cli():
    return build_cli(make_plugin_manager(load_entrypoints=False))


@pytest.mark.slow
def test_cyclegan_on_facades_without_pairs_end_to_end(data_root, tmp_path):
    """Train unpaired on facades, resume, translate both ways at other sizes, export both."""
    from tests.test_engine_fixtures import facades_subset

    data = facades_subset(data_root, tmp_path / "facades", n_train=6, n_val=2)
    run = tmp_path / "run"
    common = ["--device", "cpu", "--precision", "fp32", "--num-workers", "0", "-q"]
    result = CliRunner().invoke(
        _cli(),
        [
            "run", "--recipe", "cyclegan", "--task", "facades", "--data", str(data),
            "--unpaired", "--max-steps", "4", "--out", str(run), "--crop-size", "64",
            "--gen", "resnet_6blocks", "--gen-opt", "ngf=8", "--disc-opt", "ndf=8",
            *common,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ckpt = ck.load_checkpoint(run)
    assert ckpt.step == 4 and ckpt.recipe == "cyclegan"
    assert sorted(p.stem for p in ckpt.path.glob("*.safetensors")) == ["D_X", "D_Y", "F", "G"]
    assert ckpt.translators == {"BtoA": "G", "AtoB": "F"}
    assert ckpt.config["unpaired"] is True
    val = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in val if r["kind"] == "val"]
    assert val and {"val/cycle_x", "val/cycle_y", "val/l1"} <= set(val[-1])  # val data is paired

    result = CliRunner().invoke(_cli(), ["run", "--resume", str(run), "--max-steps", "6", *common])
    assert result.exit_code == 0, result.output
    assert ck.load_checkpoint(run).step == 6

    write_image(torch.rand(3, 52, 76), tmp_path / "in" / "x.png")
    for direction in ("AtoB", "BtoA"):
        out = tmp_path / f"out_{direction}"
        result = CliRunner().invoke(
            _cli(),
            ["translate", "-c", str(run), "--direction", direction, str(tmp_path / "in"),
             "--out", str(out), "--no-progress"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        from PIL import Image

        assert Image.open(out / "x.png").size == (76, 52)
        target = tmp_path / f"{direction}.pt"
        result = CliRunner().invoke(
            _cli(),
            ["export", "-c", str(run), "--direction", direction, "--format", "torchscript",
             "--out", str(target)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    from i2i.export import read_metadata

    assert read_metadata(tmp_path / "AtoB.pt")["direction"] == "AtoB"


def test_unpaired_layout_trains_and_eval_refuses_to_score_it(tmp_path):
    """Data in the CycleGAN layout (trainA/ trainB/ valA/ valB/) trains; `i2i eval` on its
    unpaired val data refuses, since every metric compares an output with its own target."""
    gen = torch.Generator().manual_seed(0)
    for folder in ("trainA", "trainB", "valA", "valB"):
        for i in range(2):
            write_image(torch.rand(3, 40, 40, generator=gen), tmp_path / "d" / folder / f"{i}.png")
    run = tmp_path / "run"
    result = CliRunner().invoke(
        _cli(),
        ["run", "--task", "photo2cartoon", "--data", str(tmp_path / "d"), "--out", str(run),
         "--max-steps", "1", "--crop-size", "32", "--gen-opt", "ngf=4", "--disc-opt", "ndf=4",
         "--device", "cpu", "--precision", "fp32", "--num-workers", "0", "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["kind"] == "val"][-1]
    assert "val/cycle_x" in val and "val/l1" not in val  # nothing paired to compare with
    result = CliRunner().invoke(
        _cli(), ["eval", "-c", str(run), "--data", str(tmp_path / "d"), "--no-progress"]
    )
    assert result.exit_code == 1 and "is unpaired" in result.output
