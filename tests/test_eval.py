"""`i2i eval`: metrics over a checkpoint or folders, JSON + HTML report, segmentation score."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from i2i_facades import facades
from torch import nn

from i2i import Task, hookimpl
from i2i.catalog import Catalog
from i2i.cli import build_cli
from i2i.data import write_image
from i2i.plugins import make_plugin_manager
from tests.browser import chromium, dump_dom
from tests.test_translate import make_checkpoint

CMP_FACADES_COLORS = facades.class_colors

FACADE = torch.tensor(CMP_FACADES_COLORS[1]) / 255.0


class Identity(nn.Module):
    size_multiple = 1

    def forward(self, x):
        return x


class Facade(nn.Module):
    """Paints everything in the 'facade' label colour."""

    size_multiple = 1

    def forward(self, x):
        return (FACADE * 2 - 1).view(1, 3, 1, 1).expand(x.shape[0], 3, *x.shape[-2:])


class TestPlugin:
    __test__ = False  # not a test class for pytest

    @hookimpl
    def i2i_register_generators(self, register):
        register("identity", lambda in_channels, out_channels, **kw: Identity(), size_multiple=1)
        register(
            "facade_painter", lambda in_channels, out_channels, **kw: Facade(), size_multiple=1
        )

    @hookimpl
    def i2i_register_tasks(self, register):
        register(
            "photo2labels",
            Task(
                summary="photo -> labels",
                in_channels=3,
                out_channels=3,
                layout="aligned",
                direction="AtoB",
            ),
        )


@pytest.fixture(scope="module")
def cat():
    return Catalog.from_plugin_manager(
        make_plugin_manager(load_entrypoints=False, plugins=(TestPlugin(),))
    )


@pytest.fixture(scope="module")
def cli(cat):
    return build_cli(cat.plugin_manager)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Three 64x64 A|B pairs: A = a random photo, B = a label map in the CMP colours."""
    root = tmp_path_factory.mktemp("facades")
    palette = torch.tensor(CMP_FACADES_COLORS).float() / 255.0
    g = torch.Generator().manual_seed(0)
    for i in range(3):
        classes = (
            torch.randint(0, 12, (4, 4), generator=g)
            .repeat_interleave(16, 0)
            .repeat_interleave(16, 1)
        )
        labels = palette[classes].permute(2, 0, 1)
        photo = torch.rand(3, 64, 64, generator=g)
        write_image(torch.cat([photo, labels], dim=2), root / "val" / f"{i + 1}.png")
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cat) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    sizes = dict(load_size=64, crop_size=64)
    out = {}
    for name, task, gen in (
        ("identity", "facades", "identity"),
        ("painter", "facades", "facade_painter"),
        ("segmenter", "photo2labels", "identity"),
        ("unet", "facades", "unet_256"),
    ):
        kwargs = {"ngf": 4} if gen == "unet_256" else {}
        make_checkpoint(
            base / name, cat, task=task, generator=gen, generator_kwargs=kwargs, **sizes
        )
        out[name] = base / name
    return out


def _eval(cli, *args):
    return CliRunner().invoke(cli, ["eval", *map(str, args), "--no-progress"])


def test_eval_checkpoint_writes_json_and_html(cli, data, runs, tmp_path):
    out = tmp_path / "report"
    result = _eval(cli, "-c", runs["unet"], "--data", data, "--split", "val", "--out", out)
    assert result.exit_code == 0, result.output
    for key in ("l1", "psnr", "ssim"):
        assert re.search(rf"^{key}\s+\d+\.\d{{4}}$", result.output, re.M), result.output
    record = json.loads((out / "metrics.json").read_text())
    assert record["num_images"] == 3 and [r["name"] for r in record["images"]] == ["1", "2", "3"]
    mean_l1 = sum(r["metrics"]["l1"] for r in record["images"]) / 3
    assert record["metrics"]["l1"] == pytest.approx(mean_l1)
    assert record["higher_is_better"] == {"l1": False, "psnr": True, "ssim": True}
    page = (out / "index.html").read_text()
    for row in record["images"]:
        for column in ("input", "output", "target"):
            rel = row["images"][column]
            assert not Path(rel).is_absolute() and (out / rel).is_file()
            assert f'src="{rel}"' in page


def test_segmentation_score_through_the_command(cli, data, runs, tmp_path):
    # identity labels -> "photo" is the label map itself; the identity segmenter then recovers
    # the labels exactly
    perfect = _eval(
        cli, "-c", runs["identity"], "--data", data, "--segmenter", runs["segmenter"], "--json"
    )
    assert perfect.exit_code == 0, perfect.output
    summary = json.loads(perfect.output.strip().splitlines()[-1])["metrics"]
    assert summary["seg_pixel_acc"] == summary["seg_class_acc"] == summary["seg_class_iou"] == 1.0
    assert {"l1", "psnr", "ssim"} <= set(summary)
    # a generator that paints everything 'facade' scores the facade share of the labels
    out = tmp_path / "painter"
    painted = _eval(
        cli,
        "-c",
        runs["painter"],
        "--data",
        data,
        "--segmenter",
        runs["segmenter"],
        "--metrics",
        "seg_score",
        "--out",
        out,
    )
    assert painted.exit_code == 0, painted.output
    record = json.loads((out / "metrics.json").read_text())
    assert 0 < record["metrics"]["seg_pixel_acc"] < 0.3
    assert record["seg_score_per_class"]["facade"]["acc"] == 1.0


def test_eval_folders_and_refusals(cli, data, runs, tmp_path):
    pred, target = tmp_path / "pred", tmp_path / "target"
    for i in range(2):
        img = torch.rand(3, 32, 48)
        write_image(img, pred / f"{i}.png")
        write_image(img, target / f"{i}.png")
    out = tmp_path / "out"
    result = _eval(cli, "--pred", pred, "--target", target, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.splitlines()[0])
    assert summary["num_images"] == 2 and summary["metrics"]["l1"] == 0.0
    assert summary["metrics"]["ssim"] == pytest.approx(1.0, abs=1e-4)
    again = _eval(cli, "--pred", pred, "--target", target, "--out", out)
    assert again.exit_code == 1 and "metrics.json already exists" in again.output
    write_image(torch.rand(3, 32, 48), pred / "extra.png")
    missing = _eval(cli, "--pred", pred, "--target", target)
    assert missing.exit_code == 1 and "extra.png" in missing.output
    seg = _eval(cli, "--pred", target, "--target", target, "--segmenter", runs["segmenter"])
    assert seg.exit_code == 2 and "--palette" in seg.output  # no task says the classes
    seg = _eval(
        cli,
        "--pred",
        target,
        "--target",
        target,
        "--segmenter",
        runs["segmenter"],
        "--palette",
        "facades",
    )
    assert seg.exit_code == 1 and "--input" in seg.output
    bad = _eval(cli, "--pred", target, "--target", target, "--metrics", "psnr,ssmi")
    assert bad.exit_code == 2 and "ssim" in bad.output
    both = _eval(cli, "-c", runs["unet"], "--pred", pred, "--target", target)
    assert both.exit_code == 2


def test_report_page_opens_from_disk_in_a_browser(cli, data, runs, tmp_path):
    browser = chromium()
    out = tmp_path / "report dir"  # a space in the path, as users have
    result = _eval(cli, "-c", runs["identity"], "--data", data, "--out", out)
    assert result.exit_code == 0, result.output
    dom = dump_dom(browser, out / "index.html", tmp_path / "profile")
    assert 'data-images-loaded="9/9"' in dom, dom[-2000:]
    assert "all 9 images loaded" in dom
    # and a page with a broken image is caught by the same check
    (out / "images" / "00000_1_output.png").unlink()
    dom = dump_dom(browser, out / "index.html", tmp_path / "profile")
    assert 'data-images-loaded="8/9"' in dom


def _folders(root: Path, names=("a", "b")) -> tuple[Path, Path]:
    pred, target = root / "pred", root / "target"
    for name in names:
        img = torch.rand(3, 16, 16)
        write_image(img, pred / f"{name}.png")
        write_image(img, target / f"{name}.png")
    return pred, target


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_overwrite_replaces_only_the_earlier_report_s_own_files(cli, tmp_path):
    pred, target = _folders(tmp_path, ("a", "b", "c"))
    out = tmp_path / "out"
    first = _eval(cli, "--pred", pred, "--target", target, "--out", out)
    assert first.exit_code == 0, first.output
    earlier = sorted(p.name for p in (out / "images").iterdir())
    assert "00002_c_output.png" in earlier
    write_image(torch.rand(3, 8, 8), out / "images" / "userphoto.png")  # the user's own
    (out / "notes.txt").write_text("mine")
    again = _eval(cli, "--pred", pred, "--target", target, "--out", out, "--limit", "2")
    assert again.exit_code == 1 and "metrics.json already exists" in again.output
    assert "--overwrite" in again.output
    result = _eval(
        cli, "--pred", pred, "--target", target, "--out", out, "--limit", "2", "--overwrite"
    )
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "00000_a_output.png",
        "00000_a_target.png",
        "00001_b_output.png",
        "00001_b_target.png",
        "userphoto.png",  # kept; the earlier report's third image is gone with it
    ]
    assert json.loads((out / "metrics.json").read_text())["num_images"] == 2
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left


def test_report_refuses_user_files_in_its_way_before_writing(cli, tmp_path):
    pred, target = _folders(tmp_path)
    out = tmp_path / "out"
    mine = out / "images" / "00001_b_output.png"
    write_image(torch.rand(3, 8, 8), mine)
    before = _tree(out)
    for flags in ((), ("--overwrite",)):  # no earlier report: nothing there is i2i's
        result = _eval(cli, "--pred", pred, "--target", target, "--out", out, *flags)
        assert result.exit_code == 1, result.output
        assert str(mine) in result.output and "already exists" in result.output
        assert "Traceback" not in result.output
        assert _tree(out) == before and sorted(p.name for p in out.iterdir()) == ["images"]
    # a user's metrics.json that is no i2i eval report is not replaced by --overwrite either
    mine.unlink()
    (out / "metrics.json").write_text('{"mine": true}')
    result = _eval(cli, "--pred", pred, "--target", target, "--out", out, "--overwrite")
    assert result.exit_code == 1 and "not part of an earlier i2i eval report" in result.output
    assert (out / "metrics.json").read_text() == '{"mine": true}'


def test_checkpoint_eval_refuses_a_thumbnail_name_before_writing(cli, data, runs, tmp_path):
    out = tmp_path / "out"
    mine = out / "images" / "00002_3_input.png"
    write_image(torch.rand(3, 8, 8), mine)
    before = mine.read_bytes()
    result = _eval(cli, "-c", runs["identity"], "--data", data, "--out", out)
    assert result.exit_code == 1 and str(mine) in result.output, result.output
    assert mine.read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["images"]
    assert [p.name for p in (out / "images").iterdir()] == ["00002_3_input.png"]


def test_out_under_a_file_is_a_clear_error(cli, tmp_path):
    pred, target = _folders(tmp_path)
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    for out in (afile / "sub", afile):
        result = _eval(cli, "--pred", pred, "--target", target, "--out", out)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error:") and "Traceback" not in result.output
        assert f"{afile} is a file, not a folder" in result.output
    assert afile.read_text() == "x"


def test_a_failed_evaluation_leaves_the_earlier_report_as_it_was(cli, tmp_path):
    pred, target = _folders(tmp_path, ("a", "b"))
    out = tmp_path / "out"
    assert _eval(cli, "--pred", pred, "--target", target, "--out", out).exit_code == 0
    before = _tree(out)
    write_image(torch.rand(3, 16, 16), pred / "a.png", overwrite=True)  # new thumbnails for a
    write_image(torch.rand(3, 16, 16), pred / "c.png")
    write_image(torch.rand(3, 9, 9), target / "c.png")  # the third image fails mid-way
    result = _eval(cli, "--pred", pred, "--target", target, "--out", out, "--overwrite")
    assert result.exit_code == 1 and "c.png" in result.output, result.output
    assert _tree(out) == before and not [p for p in out.iterdir() if p.name.startswith(".")]
