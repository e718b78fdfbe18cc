"""Metric plugins: pixel metrics, Lab histogram intersection, the segmentation score."""

from __future__ import annotations

import math

import kornia
import pytest
import torch
from i2i_facades import FACADES_PALETTE

from i2i import hookimpl
from i2i.catalog import Catalog
from i2i.data import read_image
from i2i.eval.runner import EvalConfigError, build_metrics, default_metric_names
from i2i.metrics import Metric, as_metric
from i2i.metrics.color import LabHistogramIntersection, intersection, lab_histograms
from i2i.metrics.pixel import psnr_per_image, ssim_per_image
from i2i.metrics.segmentation import (
    SegmentationScore,
    confusion,
    nearest_class,
    scores,
    seg_score_metric,
)
from i2i.plugins import make_plugin_manager

CMP_FACADES_CLASSES = tuple(name for name, _ in FACADES_PALETTE)
CMP_FACADES_COLORS = tuple(rgb for _, rgb in FACADES_PALETTE)
PALETTE = torch.tensor(CMP_FACADES_COLORS)


def label_map(classes: torch.Tensor) -> torch.Tensor:
    """(B, H, W) class indices -> (B, 3, H, W) CMP colours in [0, 1]."""
    return (PALETTE[classes].permute(0, 3, 1, 2).float() / 255.0).contiguous()


def test_builtin_metrics_are_registered_with_their_keys(catalog):
    assert {"l1", "psnr", "ssim", "color_hist", "seg_score"} <= set(catalog.metrics.names())
    assert catalog.metrics.get("fcn_score").name == "seg_score"
    for entry in catalog.metrics:
        metric = as_metric(
            entry.name,
            entry.build(segmenter=lambda x: x, palette=FACADES_PALETTE)
            if "segmenter" in entry.meta.get("needs", ())
            else entry.build(),
        )
        assert isinstance(metric, Metric)
        assert tuple(entry.meta["keys"]) == metric.keys
        assert set(metric.higher_is_better) == set(metric.keys)


def test_pixel_metrics_known_values():
    a = torch.rand(2, 3, 32, 32)
    b = (a + 0.1).clamp(0, 1)
    b[1] = a[1]
    l1 = build_metrics(
        ["l1"], Catalog.from_plugin_manager(make_plugin_manager(load_entrypoints=False))
    )["l1"]
    rows = l1.update(b, a)
    assert rows[0]["l1"] == pytest.approx((b[0] - a[0]).abs().mean().item())
    assert rows[1]["l1"] == 0.0
    assert l1.compute()["l1"] == pytest.approx(rows[0]["l1"] / 2)
    psnr = psnr_per_image(b, a)
    assert psnr[0].item() == pytest.approx(kornia.metrics.psnr(b[:1], a[:1], 1.0).item(), rel=1e-5)
    assert psnr[1].item() == pytest.approx(100.0)  # identical: capped, finite
    ssim = ssim_per_image(b, a)
    assert ssim[1].item() == pytest.approx(1.0, abs=1e-5)
    noisy = (a + 0.3 * torch.randn_like(a)).clamp(0, 1)
    assert ssim_per_image(noisy, a)[0] < ssim[0] < 1.0


def test_ssim_works_on_images_smaller_than_its_window():
    assert ssim_per_image(torch.rand(1, 3, 6, 9), torch.rand(1, 3, 6, 9)).shape == (1,)


def test_lab_histogram_intersection():
    gray = torch.full((1, 3, 16, 16), 0.5)
    red = torch.zeros(1, 3, 16, 16)
    red[:, 0] = 1.0
    m = LabHistogramIntersection()
    same = m.update(gray, gray.clone())[0]
    assert same == pytest.approx({"hist_L": 1.0, "hist_a": 1.0, "hist_b": 1.0})
    diff = m.update(red, gray)[0]
    assert diff["hist_a"] == 0.0 and diff["hist_b"] == 0.0  # red vs neutral: disjoint a, b
    pooled = m.compute()  # half of all pred pixels match the pooled targets
    assert pooled["hist_a"] == pytest.approx(0.5)
    h = lab_histograms(torch.rand(2, 3, 8, 8))
    assert all(v.sum(-1).tolist() == [64.0, 64.0] for v in h.values())
    assert intersection(torch.tensor([3.0, 1.0]), torch.tensor([1.0, 3.0])).item() == 0.5


def test_nearest_colour_maps_noisy_labels_to_classes():
    torch.manual_seed(0)
    classes = torch.randint(0, 12, (2, 16, 16))
    noisy = (label_map(classes) + 0.03 * torch.randn(2, 3, 16, 16)).clamp(0, 1)
    assert torch.equal(nearest_class(noisy, PALETTE), classes)


def test_palette_matches_the_real_facade_labels(data_root):
    # shared/data/README.md: train/1.jpg is facade 53 %, window 14 %, background 12 %, shop 9 %
    label_half = read_image(data_root / "facades" / "train" / "1.jpg")[:, :, 256:]
    share = torch.bincount(nearest_class(label_half[None], PALETTE).flatten(), minlength=12)
    share = dict(zip(CMP_FACADES_CLASSES, (share.float() / share.sum()).tolist(), strict=True))
    for name, expected in {
        "facade": 0.53,
        "window": 0.14,
        "background": 0.12,
        "shop": 0.09,
    }.items():
        assert share[name] == pytest.approx(expected, abs=0.02), name


def test_confusion_and_scores_follow_the_fcn_score_code():
    truth = torch.tensor([0, 0, 1, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 0, 1])
    hist = confusion(truth, pred, 4)
    assert hist.sum() == 6 and hist[0, 0] == 1 and hist[1, 1] == 2 and hist[2, 1] == 1
    s = scores(hist)
    assert s["seg_pixel_acc"] == pytest.approx(3 / 6)
    assert s["seg_class_acc"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)  # class 3 absent: skipped
    iou = [1 / (2 + 2 - 1), 2 / (3 + 4 - 2), 0 / (1 + 0 - 0)]
    assert s["seg_class_iou"] == pytest.approx(sum(iou) / 3)


def test_segmentation_score_perfect_and_constant_segmenters():
    classes = torch.zeros(2, 8, 8, dtype=torch.long)
    classes[:, :, 4:] = 1  # half background, half facade
    classes[1, :2] = 2  # some windows in image 2
    labels = label_map(classes)
    photos = torch.rand(2, 3, 8, 8)
    table = {id(photos): classes}
    perfect = SegmentationScore(lambda x: table[id(x)], CMP_FACADES_COLORS)
    rows = perfect.update(photos, photos, inputs=labels)
    assert all(
        r == {"seg_pixel_acc": 1.0, "seg_class_acc": 1.0, "seg_class_iou": 1.0} for r in rows
    )
    facade_only = seg_score_metric(lambda x: torch.ones(2, 8, 8, dtype=torch.long), FACADES_PALETTE)
    facade_only.update(photos, photos, inputs=labels)
    summary = facade_only.compute()
    share = (classes == 1).float().mean().item()
    assert summary["seg_pixel_acc"] == pytest.approx(share)
    assert facade_only.per_class()["facade"]["acc"] == 1.0
    assert math.isnan(facade_only.per_class()["door"]["iou"])
    with pytest.raises(ValueError, match="--input"):
        facade_only.update(photos, photos, inputs=None)


def test_seg_score_needs_a_segmenter(catalog):
    with pytest.raises(EvalConfigError, match="segmenter"):
        build_metrics(["fcn_score"], catalog)
    metrics = build_metrics(
        ["seg_score"], catalog, {"segmenter": lambda x: x, "palette": FACADES_PALETTE}
    )
    assert metrics["seg_score"].class_names == CMP_FACADES_CLASSES
    assert default_metric_names(("l1",), {"segmenter": None}) == ["l1"]


def test_plugin_metrics_plain_callables_and_clashes():
    class P:
        @hookimpl
        def i2i_register_metrics(self, register):
            register("max_error", lambda: lambda a, b: (a - b).abs().max())
            register("l1_again", lambda: as_metric("l1", lambda a, b: (a - b).abs().mean()))

    cat = Catalog.from_plugin_manager(make_plugin_manager(load_entrypoints=False, plugins=(P(),)))
    m = build_metrics(["max_error"], cat)["max_error"]
    assert m.update(torch.ones(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)) == [{"max_error": 1.0}] * 2
    with pytest.raises(EvalConfigError, match="both report 'l1'"):
        build_metrics(["l1", "l1_again"], cat)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        m.update(torch.ones(3, 4, 4), torch.ones(3, 4, 4))
