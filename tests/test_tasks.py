"""The first-party task plugins: conformance, conversions, and loading real and built-in data."""

from __future__ import annotations

import pytest
import torch

from i2i.data import PreprocessConfig, build_dataset, write_image
from i2i.testing import check_task

PLUGIN_TASKS = {
    # name: (plugin module, in, out, layout, direction)
    "colorize": ("i2i_colorize", 1, 2, "single", "AtoB"),
    "inpaint": ("i2i_inpaint", 4, 3, "single", "AtoB"),
    "edges2photo": ("i2i_edges2photo", 1, 3, "single", "AtoB"),
    "sketch2photo": ("i2i_edges2photo", 1, 3, "single", "AtoB"),
    "edges2shoes": ("i2i_edges2photo", 1, 3, "aligned", "AtoB"),
    "edges2handbags": ("i2i_edges2photo", 1, 3, "aligned", "AtoB"),
    "facades": ("i2i_facades", 3, 3, "aligned", "BtoA"),
    "cityscapes": ("i2i_cityscapes", 3, 3, "aligned", "BtoA"),
    "maps": ("i2i_maps", 3, 3, "aligned", "AtoB"),
    "day2night": ("i2i_day2night", 3, 3, "aligned", "BtoA"),
    "thermal2color": ("i2i_thermal2color", 1, 3, "aligned", "AtoB"),
}
SMALL = PreprocessConfig(load_size=72, crop_size=64)


@pytest.fixture(scope="module")
def builtin_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("I2I_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def task(catalog, name):
    return catalog.tasks.get(name).obj


@pytest.mark.parametrize("name", sorted(PLUGIN_TASKS))
def test_task_conformance_and_declaration(catalog, name):
    module, in_ch, out_ch, layout, direction = PLUGIN_TASKS[name]
    entry = catalog.tasks.get(name)
    assert entry.provider == f"plugin {module!r}"
    t = entry.obj
    assert (t.in_channels, t.out_channels, t.layout, t.direction) == (
        in_ch,
        out_ch,
        layout,
        direction,
    )
    assert entry.summary == t.summary and len(t.summary) > 10
    for key in ("generator", "discriminator", "objective", "load_size", "crop_size", "norm"):
        assert key in t.defaults, key
    assert set(t.metrics) <= set(catalog.metrics.choices())
    assert (t.default_data is not None) == (layout == "single")
    check_task(t, name=name)
    check_task(t, size=32, name=name)


@pytest.mark.parametrize("name", sorted(PLUGIN_TASKS))
def test_task_defaults_resolve_to_a_valid_run_config(catalog, name):
    config = pytest.importorskip("i2i.config")
    cfg = config.resolve_config(catalog, name)
    assert cfg.task == name and cfg.objective == {"gan": 1.0, "l1": 100.0}
    assert cfg.crop_size == 256 and cfg.load_size == 286


# ---- colorize ------------------------------------------------------------------------------


def test_colorize_roundtrip_and_gray_input(catalog):
    t = task(catalog, "colorize")
    img = torch.rand(2, 3, 16, 16)
    x, y = t.make_pair(img)
    assert x.shape == (2, 1, 16, 16) and y.shape == (2, 2, 16, 16)
    assert torch.allclose(t.output_to_image(x, y), img, atol=2e-3)  # L + ab gives the photo back
    gray = img.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    gx, gy = t.make_pair(gray)
    assert gy.abs().max() < 0.01  # no colour in a gray image
    assert torch.allclose(t.image_to_input(gray), gx)
    shown = t.input_to_image(x)
    assert torch.allclose(shown[:, 0], shown[:, 1], atol=1e-3)  # the input shows as gray


# ---- inpaint -------------------------------------------------------------------------------


def test_inpaint_input_is_masked_photo_plus_mask():
    from i2i_inpaint import inpaint, inpaint_task

    img = torch.rand(3, 64, 64)
    x, y = inpaint.make_pair(img, torch.Generator().manual_seed(3))
    mask = x[3]
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and 0 < float(mask.mean()) <= 0.6
    assert torch.equal(x[:3][:, mask.bool()], torch.zeros(3, int(mask.sum())))
    assert torch.allclose(x[:3][:, ~mask.bool()], y[:, ~mask.bool()])
    again, _ = inpaint.make_pair(img, torch.Generator().manual_seed(3))
    other, _ = inpaint.make_pair(img, torch.Generator().manual_seed(4))
    assert torch.equal(x, again) and not torch.equal(x, other)
    out = torch.zeros(3, 64, 64)  # a model output of mid gray
    composite = inpaint.output_to_image(x, out)
    assert torch.allclose(composite[:, ~mask.bool()], img[:, ~mask.bool()], atol=1e-6)
    assert torch.allclose(
        composite[:, mask.bool()], torch.full_like(composite[:, mask.bool()], 0.5)
    )

    boxes = inpaint_task(p_box=1.0, boxes=(1, 1), box_size=(0.25, 0.25))
    m = boxes.make_pair(img, torch.Generator().manual_seed(0))[0][3]
    rows, cols = m.any(dim=1).nonzero(), m.any(dim=0).nonzero()
    assert len(rows) == 16 and len(cols) == 16 and float(m.sum()) == 256  # one 16x16 box
    strokes = inpaint_task(p_box=0.0)
    m = strokes.make_pair(img, torch.Generator().manual_seed(0))[0][3]
    assert 0 < float(m.mean()) < 0.6 and float(m.sum()) != 16 * 16


def test_inpaint_translate_rule_alpha_or_black():
    from i2i_inpaint import inpaint

    rgba = torch.rand(1, 4, 8, 8).clamp(0.1, 1)
    rgba[:, 3] = 1.0
    rgba[:, 3, :4, :4] = 0.0  # transparent corner = hole
    x = inpaint.image_to_input(rgba)
    assert (
        x.shape == (1, 4, 8, 8) and float(x[0, 3].sum()) == 16 and float(x[0, 3, :4, :4].min()) == 1
    )
    rgb = torch.rand(1, 3, 8, 8).clamp(0.1, 1)
    rgb[:, :, 2:5, 2:5] = 0.0  # pure black = hole
    x = inpaint.image_to_input(rgb)
    assert float(x[0, 3].sum()) == 9 and float(x[0, 3, 3, 3]) == 1


# ---- edges and sketches --------------------------------------------------------------------


def _square(size=64) -> torch.Tensor:
    img = torch.zeros(3, size, size)
    img[:, 16:48, 16:48] = 1.0
    return img


def test_edges_are_black_strokes_on_white(catalog):
    t = task(catalog, "edges2photo")
    x, y = t.make_pair(_square())
    strokes = x[0] < 0
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    assert 0.02 < float(strokes.float().mean()) < 0.2  # a thin outline, mostly white
    assert not strokes[:8].any() and not strokes[28:36, 28:36].any()  # flat areas stay white
    assert strokes[12:20, 16:48].any()  # the square's top edge is drawn


def test_sketch_is_reproducible_and_sketchier(catalog):
    t = task(catalog, "sketch2photo")
    img = _square()
    a, _ = t.make_pair(img, torch.Generator().manual_seed(1))
    b, _ = t.make_pair(img, torch.Generator().manual_seed(1))
    c, _ = t.make_pair(img, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    edges, _ = task(catalog, "edges2photo").make_pair(img)
    assert not torch.equal(a, edges)


def test_one_channel_paired_tasks_take_gray_source(catalog):
    t = task(catalog, "thermal2color")
    src, dst = torch.rand(3, 8, 8), torch.rand(3, 8, 8)
    x, y = t.make_pair((src, dst))
    assert x.shape == (1, 8, 8) and torch.allclose(y, dst * 2 - 1)
    assert torch.allclose(t.image_to_input(src[None]), x[None])


# ---- data through build_dataset ------------------------------------------------------------


@pytest.mark.parametrize("name", ["colorize", "inpaint", "edges2photo", "sketch2photo"])
def test_derived_tasks_train_on_builtin_data(catalog, builtin_cache, name):
    t = task(catalog, name)
    ds = build_dataset(t, None, "train", preprocess=SMALL)
    assert len(ds) == 38 and len(build_dataset(t, None, "val", preprocess=SMALL)) == 6
    item = ds[0]
    assert item["input"].shape == (t.in_channels, 64, 64)
    assert item["target"].shape == (t.out_channels, 64, 64)
    for key in ("input", "target"):
        assert float(item[key].min()) >= -1.0 and float(item[key].max()) <= 1.0


def test_paired_task_on_written_ab_files(catalog, tmp_path):
    for name in ("maps", "cityscapes", "day2night", "thermal2color"):
        write_image(torch.rand(3, 40, 80), tmp_path / name / "train" / "1.png")
        t = task(catalog, name)
        item = build_dataset(t, tmp_path / name, preprocess=SMALL)[0]
        assert item["input"].shape == (t.in_channels, 64, 64)


def _facade_colours() -> torch.Tensor:
    from i2i_facades import facades

    return torch.tensor(facades.class_colors, dtype=torch.float32) * (2 / 255) - 1


FACADE_PALETTE = _facade_colours()


def label_fraction(x: torch.Tensor) -> float:
    """Share of pixels within reach of one of the 12 facade label colours."""
    d = torch.cdist(x.flatten(1).T, FACADE_PALETTE).min(dim=1).values
    return float((d < 0.25).float().mean())


def test_facades_real_data_labels_are_the_input(catalog, data_root):
    t = task(catalog, "facades")
    ds = build_dataset(t, data_root / "facades", "train", preprocess=SMALL)
    photo_first = build_dataset(
        t, data_root / "facades", "train", direction="AtoB", preprocess=SMALL
    )
    assert len(ds) == 400 and len(build_dataset(t, data_root / "facades", "val")) == 100
    for i in (0, 123, 399):
        item, swapped = ds[i], photo_first[i]
        assert item["input"].shape == (3, 64, 64) and item["target"].shape == (3, 64, 64)
        assert float(item["input"].min()) >= -1 and float(item["target"].max()) <= 1
        assert label_fraction(item["input"]) > 0.5  # BtoA: the label map is the input
        assert label_fraction(item["target"]) < 0.1  # and the photo the target
        assert torch.equal(item["input"], swapped["target"])  # same draw, halves swapped
        assert torch.equal(item["target"], swapped["input"])
    val = build_dataset(t, data_root / "facades", "val", train=False, preprocess=SMALL)[0]
    assert val["path"].endswith("1.jpg") and val["input"].shape == (3, 64, 64)


def test_edges2shoes_sample_needs_btoa(catalog, data_root):
    t = task(catalog, "edges2shoes")
    root = data_root / "edges2shoes_sample"
    edges_first = build_dataset(t, root, "val", direction="BtoA", preprocess=SMALL)
    default = build_dataset(t, root, "val", preprocess=SMALL)
    assert len(edges_first) == 10
    for i in range(len(edges_first)):
        item = edges_first[i]
        assert item["input"].shape == (1, 64, 64) and item["target"].shape == (3, 64, 64)
        assert float((item["input"] > 0.5).float().mean()) > 0.9  # white page, dark strokes
    white = [float((default[i]["input"] > 0.5).float().mean()) for i in range(len(default))]
    assert sum(white) / len(white) < 0.8  # the default AtoB reads the photo half: the caveat


def test_cityscapes_palette_is_the_official_train_classes_then_unlabeled(catalog):
    city = catalog.tasks.get("cityscapes").obj
    assert len(city.palette) == 20 and city.canvas == "palette"
    assert city.class_names[:3] == ("road", "sidewalk", "building")
    assert city.class_colors[0] == (128, 64, 128) and city.class_colors[13] == (0, 0, 142)
    assert city.palette[-1] == ("unlabeled", (0, 0, 0))
    assert len(set(city.class_colors)) == 20 and len(set(city.class_names)) == 20
