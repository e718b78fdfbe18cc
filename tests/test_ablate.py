"""`i2i ablate`: a tiny study end to end (shards, seeds, resume, table, page in Chromium)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from i2i_facades import facades

from i2i.ablate import STUDIES, plan_jobs, variants
from i2i.ablate.studies import PAPER_TABLE1
from i2i.cli import build_cli
from i2i.data import write_image
from i2i.engine.checkpoint import load_checkpoint
from i2i.segment import train_segmenter
from tests.browser import chromium, dump_dom


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Facades-like A|B files (A = photo, B = labels in the CMP colours), 128 px sides."""
    root = tmp_path_factory.mktemp("facades")
    colours = torch.tensor(facades.class_colors).float() / 255
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            classes = torch.randint(0, 12, (4, 4), generator=g)
            classes = classes.repeat_interleave(32, 0).repeat_interleave(32, 1)
            labels = colours[classes].permute(2, 0, 1)
            photo = labels.flip(0) * 0.7 + 0.1 * torch.rand(3, 128, 128, generator=g)
            write_image(torch.cat([photo, labels], dim=2), root / split / f"{i}.png")
    return root


def test_studies_follow_the_paper_tables():
    assert [v.label("generator") for v in STUDIES["generator"]] == [
        "Encoder-decoder (L1)",
        "Encoder-decoder (L1+cGAN)",
        "U-Net (L1)",
        "U-Net (L1+cGAN)",
    ]
    assert [v.discriminator for v in STUDIES["discriminator"]] == [
        "pixel",
        "patch16",
        "patch70",
        "image286",
    ]
    gan = next(v for v in STUDIES["objective"] if v.label("objective") == "GAN")
    assert gan.conditional is False and gan.objective == "gan=1"
    assert set(PAPER_TABLE1) == {
        *(v.label("objective") for v in STUDIES["objective"]),
        "Ground truth",
    }
    jobs = [j.name for k in (1, 2, 3) for j in plan_jobs("all", seeds=2, shard=(k, 3))]
    assert sorted(jobs) == sorted(j.name for j in plan_jobs("all", seeds=2))  # shards cover all
    assert len(jobs) == len(set(jobs)) == 2 * len(variants("all")) == 20


def test_a_tiny_study_end_to_end(data, tmp_path, pm):
    cli = build_cli(pm)
    seg_dir = tmp_path / "seg"
    train_segmenter(
        facades,
        data,
        seg_dir,
        task_name="facades",
        steps=2,
        size=32,
        batch_size=2,
        encoder="test_resnet",
        ngf=8,
        progress=False,
    )
    out = tmp_path / "study"
    base = [
        "ablate",
        "generator",
        "--task",
        "facades",
        "--data",
        str(data),
        "--out",
        str(out),
        "--crop-size",
        "128",
        "--ngf",
        "4",
        "--seeds",
        "2",
        "--segmenter",
        str(seg_dir),
        "--samples",
        "2",
        "--device",
        "cpu",
    ]
    # shard 1 of 4 of 8 jobs: encoder-decoder (L1) and U-Net (L1), seed 0; first only 1 step
    first = CliRunner().invoke(cli, [*base, "--steps", "1", "--shard", "1/4"])
    assert first.exit_code == 0, first.output
    run = out / "runs" / "encdec_l1" / "seed0"
    assert load_checkpoint(run).step == 1
    resumed = CliRunner().invoke(cli, [*base, "--steps", "2", "--shard", "1/4"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming at step 1" in resumed.output and load_checkpoint(run).step == 2
    config = json.loads((run / "config.json").read_text())
    assert config["generator"] == "encoder_decoder_128" and config["objective"] == {"l1": 100.0}
    stamp = (run / "checkpoints").stat().st_mtime_ns, sorted((run / "checkpoints").iterdir())
    again = CliRunner().invoke(cli, [*base, "--steps", "2", "--shard", "1/4"])
    assert (
        again.exit_code == 0 and "training" not in again.output and "resuming" not in again.output
    )
    assert (
        (run / "checkpoints").stat().st_mtime_ns,
        sorted((run / "checkpoints").iterdir()),
    ) == stamp
    second = CliRunner().invoke(cli, [*base, "--steps", "2", "--shard", "2/4"])
    assert second.exit_code == 0, second.output

    summary = json.loads((out / "generator.json").read_text())
    assert summary["finished_runs"] == 4 and summary["planned_runs"] == 8
    rows = {r["label"]: r for r in summary["rows"]}
    assert rows["Encoder-decoder (L1)"]["seeds"] == [0, 1]
    assert rows["U-Net (L1+cGAN)"]["runs"] == 0
    l1 = rows["U-Net (L1)"]["metrics"]["l1"]
    assert l1["n"] == 2 and l1["mean"] > 0 and l1["std"] >= 0
    for key in ("seg_pixel_acc", "seg_class_iou", "psnr", "ssim", "hist_L", "sharpness"):
        assert rows["U-Net (L1)"]["metrics"][key]["n"] == 2, key
    assert summary["ground_truth"]["num_images"] == 2
    table = (out / "generator.md").read_text()
    assert "| Ground truth (real photos) |  |" in table
    assert "| U-Net (L1) | 2 |" in table and " ± " in table
    assert "| U-Net (L1+cGAN) | 0 |" in table

    page = out / "generator.html"
    dom = dump_dom(chromium(), page, tmp_path / "profile")
    assert "all 8 images loaded" in dom  # 2 samples x (input, 2 finished variants, target)
    assert dom.count("<svg") == 4 and "Encoder-decoder (L1)" in dom

    # a cached eval that is not one i2i wrote is evaluated again, not trusted
    cached = run / "eval" / "metrics.json"
    cached.write_text(json.dumps({"metrics": {"l1": "abc"}, "source": {}}))
    rescored = CliRunner().invoke(cli, [*base, "--steps", "2", "--shard", "1/4", "--no-train"])
    assert rescored.exit_code == 0, rescored.output
    assert isinstance(json.loads(cached.read_text())["metrics"]["l1"], float)
    # a broken latest checkpoint is named, and the run is neither retrained nor left out
    latest = load_checkpoint(run).path
    (latest / "generator.safetensors").write_bytes(b"not weights")
    for extra in ([], ["--no-train"]):
        broken = CliRunner().invoke(cli, [*base, "--steps", "3", "--shard", "1/4", *extra])
        assert broken.exit_code == 1 and "generator.safetensors" in broken.output, broken.output
        assert latest.is_dir() and (run / "config.json").is_file()


def test_bad_arguments_are_refused(tmp_path, pm):
    cli = build_cli(pm)
    base = ["ablate", "objective", "--task", "facades", "--out", str(tmp_path / "o")]
    bad_shard = CliRunner().invoke(cli, [*base, "--shard", "3/2"])
    assert bad_shard.exit_code == 2 and "--shard" in bad_shard.output
    bad_study = CliRunner().invoke(cli, ["ablate", "loss", "--task", "facades", "--out", "x"])
    assert bad_study.exit_code == 2
    odd_crop = CliRunner().invoke(
        cli, [*base, "--data", str(tmp_path), "--crop-size", "100", "--steps", "1"]
    )
    assert odd_crop.exit_code == 1 and "Error" in odd_crop.output


def test_a_file_of_the_user_s_is_never_taken_for_the_study_report(data, tmp_path, pm):
    out = tmp_path / "o"
    out.mkdir()
    (out / "objective.md").write_text("my notes")
    args = ["ablate", "objective", "--task", "facades", "--data", str(data), "--out", str(out)]
    result = CliRunner().invoke(build_cli(pm), [*args, "--no-train", "--steps", "1"])
    assert result.exit_code == 1 and "objective.md exists and is not a report" in result.output
    assert (out / "objective.md").read_text() == "my notes"
    assert not (out / "objective.json").exists()
