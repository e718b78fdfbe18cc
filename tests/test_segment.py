"""The FCN-score's segmenter: training, the checkpoint, scoring, and `i2i eval --segmenter`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from i2i import Task, hookimpl
from i2i.catalog import Catalog
from i2i.cli import build_cli
from i2i.data import write_image
from i2i.plugins import make_plugin_manager
from i2i.segment import SegmenterError, load_segmenter, train_segmenter
from tests.test_translate import make_checkpoint

PALETTE = (("dark", (0, 0, 224)), ("light", (255, 240, 0)), ("red", (255, 0, 0)))


def toy_task() -> Task:
    return Task(
        summary="toy labels -> photo",
        in_channels=3,
        out_channels=3,
        layout="aligned",
        direction="BtoA",
        palette=PALETTE,
    )


class ToyPlugin:
    @hookimpl
    def i2i_register_tasks(self, register):
        register("toy_labels", toy_task())


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A|B files: A = a 'photo' whose grey level tells the class, B = the label colours."""
    root = tmp_path_factory.mktemp("toy")
    colours = torch.tensor([rgb for _, rgb in PALETTE]).float() / 255
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 8), ("val", 3)):
        for i in range(n):
            classes = (
                torch.randint(0, 3, (4, 4), generator=g)
                .repeat_interleave(8, 0)
                .repeat_interleave(8, 1)
            )
            labels = colours[classes].permute(2, 0, 1)
            photo = (classes.float() / 2).expand(3, 32, 32) * 0.8 + 0.1
            write_image(torch.cat([photo, labels], dim=2), root / split / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def cli():
    return build_cli(make_plugin_manager(load_entrypoints=False, plugins=(ToyPlugin(),)))


def test_a_segmenter_learns_the_classes_and_scores_far_above_chance(data, tmp_path):
    torch.manual_seed(0)
    seg = train_segmenter(
        toy_task(),
        data,
        tmp_path / "seg",
        steps=40,
        size=32,
        batch_size=4,
        lr=1e-2,
        encoder="test_resnet",
        ngf=8,
        progress=False,
    )
    val = seg.info["val"]
    assert val["num_images"] == 3 and val["seg_pixel_acc"] > 0.9, val
    assert set(val["per_class"]) == {"dark", "light", "red"}
    cfg = json.loads((tmp_path / "seg" / "segmenter.json").read_text())
    assert cfg["classes"][2] == ["red", [255, 0, 0]] and cfg["size"] == 32
    assert cfg["train"]["images"] == 8 and cfg["train"]["steps"] == 40
    loaded = load_segmenter(tmp_path / "seg")
    photos = torch.rand(2, 3, 40, 24)
    assert torch.equal(loaded(photos), seg(photos))


def test_segmenter_commands_train_score_and_refuse(cli, data, tmp_path):
    out = tmp_path / "seg"
    args = ["segmenter", "train", "--task", "toy_labels", "--data", str(data), "--out", str(out)]
    small = ["--steps", "2", "--size", "32", "--batch-size", "2", "--encoder", "test_resnet"]
    result = CliRunner().invoke(cli, [*args, *small, "--ngf", "8", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "seg_pixel_acc" in result.output and (out / "segmenter.safetensors").is_file()
    again = CliRunner().invoke(cli, [*args, *small])
    assert again.exit_code == 1 and "--overwrite" in again.output
    scored = CliRunner().invoke(
        cli, ["segmenter", "score", str(out), "--data", str(data), "--json"]
    )
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output)["num_images"] == 3
    # the refusals name the task as the user types it, not by its summary
    no_data = CliRunner().invoke(cli, ["segmenter", "score", str(out)])
    assert no_data.exit_code == 1, no_data.output
    assert "Task 'toy_labels' has no built-in data" in no_data.output
    no_palette = CliRunner().invoke(
        cli, ["segmenter", "train", "--task", "maps", "--out", str(tmp_path / "x"), *small]
    )
    assert no_palette.exit_code == 1
    assert "task 'maps' declares no label palette" in no_palette.output
    no_data = CliRunner().invoke(
        cli, ["segmenter", "train", "--task", "toy_labels", "--out", str(tmp_path / "y"), *small]
    )
    assert no_data.exit_code == 1
    assert "Task 'toy_labels' has no built-in data" in no_data.output
    (out / "segmenter.json").write_text("{broken")
    with pytest.raises(SegmenterError, match="segmenter.json"):
        load_segmenter(out)
    broken = CliRunner().invoke(cli, ["segmenter", "score", str(out), "--data", str(data)])
    assert broken.exit_code == 1 and "segmenter.json" in broken.output


def test_eval_scores_a_checkpoint_with_a_segmenter_folder(cli, data, tmp_path):
    cat = Catalog.from_plugin_manager(
        make_plugin_manager(load_entrypoints=False, plugins=(ToyPlugin(),))
    )
    seg = train_segmenter(
        toy_task(),
        data,
        tmp_path / "seg",
        steps=40,
        size=32,
        batch_size=4,
        lr=1e-2,
        encoder="test_resnet",
        ngf=8,
        progress=False,
    )
    run = tmp_path / "run"
    make_checkpoint(
        run,
        cat,
        task="toy_labels",
        generator="unet_256",
        generator_kwargs={"ngf": 4},
        load_size=32,
        crop_size=32,
    )
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "-c",
            str(run),
            "--data",
            str(data),
            "--segmenter",
            str(tmp_path / "seg"),
            "--json",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])["metrics"]
    # an untrained generator's outputs are not the photos: the segmenter scores them lower
    assert 0 <= summary["seg_pixel_acc"] < seg.info["val"]["seg_pixel_acc"]


def test_a_saved_segmenter_never_reads_a_file_its_options_name(tmp_path):
    """segmenter.json comes with the folder: its options may not make i2i open other files."""
    from i2i.segment.model import Segmenter, load_segmenter

    palette = (("a", (0, 0, 0)), ("b", (255, 255, 255)))
    seg = Segmenter.new(palette, task="t", encoder="test_resnet", ngf=4, size=32)
    folder = seg.save(tmp_path / "seg")
    config = json.loads((folder / "segmenter.json").read_text())
    config["options"]["weights"] = str(tmp_path / "elsewhere.pt")  # absent: never opened
    (folder / "segmenter.json").write_text(json.dumps(config))
    loaded = load_segmenter(folder)
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(loaded.network.eval()(x), seg.network.eval()(x))
