"""CycleGAN: it learns without pairs, and runs end to end through the CLI on real data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from i2i import RecipeSetup
from i2i.config import resolve_config
from i2i.data.builtin import builtin_data_root
from i2i.data.io import list_images, read_image
from i2i.metrics.color import color_hist_metric
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
    outputs have moved toward domain Y's colours (Lab histogram intersection with Y).
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
    for _ in range(120):
        step.train_step(
            {"input": xs[torch.randint(0, 64, (4,))], "target": ys[torch.randint(0, 64, (4,))]}
        )
    cycle1, toward_y1 = measure()
    baseline = _hist_intersection(held_out, ys[:16])  # the photos themselves against Y
    assert cycle1 < 0.8 * cycle0, (cycle0, cycle1)
    assert toward_y1 > toward_y0 + 0.1 and toward_y1 > baseline + 0.05, (
        toward_y0,
        toward_y1,
        baseline,
    )
