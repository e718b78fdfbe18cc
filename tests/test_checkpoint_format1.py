"""Checkpoints written before recipes (format 1) keep loading, translating, exporting, resuming.

``tests/data/format1_run`` was written by i2i at commit 7e2888c (the last before recipes):
``i2i run --task facades --gen unet_128 --gen-opt ngf=4 --disc patch16 --disc-opt ndf=4
--crop-size 128 --load-size 136 --max-steps 2`` on random 128 x 256 A|B images.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from i2i.cli import build_cli
from i2i.data.io import write_image
from i2i.engine import checkpoint as ck
from i2i.plugins import make_plugin_manager

FIXTURE = Path(__file__).parent / "data" / "format1_run"


@pytest.fixture
def old_run(tmp_path) -> Path:
    run = tmp_path / "old_run"
    shutil.copytree(FIXTURE, run)
    return run


def _cli():
    return build_cli(make_plugin_manager(load_entrypoints=False))


def test_the_fixture_is_in_the_old_format():
    step = FIXTURE / "checkpoints" / "step_00000002"
    config = json.loads((step / "config.json").read_text())
    assert config["format_version"] == 1 and "roles" not in config and "recipe" not in config
    assert sorted(p.name for p in step.glob("*.safetensors")) == [
        "discriminator.safetensors",
        "generator.safetensors",
    ]


def test_an_old_checkpoint_loads_as_a_pix2pix_one(old_run, catalog):
    ckpt = ck.load_checkpoint(old_run)
    assert ckpt.recipe == "pix2pix" and ckpt.step == 2
    assert ckpt.translators == {"BtoA": "generator"}
    assert set(ckpt.roles) == {"generator", "discriminator"}
    assert ckpt.roles["generator"]["options"] == {"norm": "batch", "ngf": 4}
    assert ckpt.run_config().recipe == "pix2pix"
    generator = ck.build_translator(ckpt, catalog).eval()
    assert generator(torch.rand(1, 3, 128, 128)).shape == (1, 3, 128, 128)
    assert ck.build_role(ckpt, "discriminator", catalog).receptive_field == 16


def test_an_old_checkpoint_translates_and_exports(old_run, tmp_path):
    write_image(torch.rand(3, 70, 100), tmp_path / "in" / "label.png")
    result = CliRunner().invoke(
        _cli(),
        ["translate", "-c", str(old_run), str(tmp_path / "in"), "--out", str(tmp_path / "out")],
    )
    assert result.exit_code == 0, result.output
    from PIL import Image

    assert Image.open(tmp_path / "out" / "label.png").size == (100, 70)
    result = CliRunner().invoke(
        _cli(),
        ["export", "-c", str(old_run), "--format", "torchscript", "--out", str(tmp_path / "g.pt")],
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        _cli(),
        [
            "translate",
            "-c",
            str(old_run),
            "--direction",
            "AtoB",
            str(tmp_path / "in"),
            "--out",
            str(tmp_path / "out2"),
        ],
    )
    assert result.exit_code == 1 and "translates BtoA only" in result.output


@pytest.mark.parametrize("precision", ["fp32", "bf16"])  # bf16: with bf16 weight copies
def test_an_old_run_resumes_and_then_saves_in_the_new_format(old_run, tmp_path, precision, recwarn):
    gen = torch.Generator().manual_seed(1)
    for split, n in (("train", 2), ("val", 1)):
        for i in range(n):
            write_image(
                torch.rand(3, 128, 256, generator=gen), tmp_path / "data" / split / f"{i}.png"
            )
    result = CliRunner().invoke(
        _cli(),
        [
            "run",
            "--resume",
            str(old_run),
            "--data",
            str(tmp_path / "data"),
            "--max-steps",
            "3",
            "--device",
            "cpu",
            "--precision",
            precision,
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    # saved at the end of its first epoch: the resumed run ends that epoch before its first step
    assert not [w for w in recwarn if "lr_scheduler" in str(w.message)]
    resolved = json.loads((old_run / "resolved.json").read_text())
    assert resolved["bf16_weight_copies"] is (precision == "bf16")
    ckpt = ck.load_checkpoint(old_run)
    assert ckpt.step == 3 and ckpt.config["format_version"] == ck.FORMAT_VERSION
    assert ckpt.config["roles"]["generator"]["name"] == "unet_128"
    assert ckpt.translators == {"BtoA": "generator"}
    assert ck.load_checkpoint(old_run / "checkpoints" / "step_00000002").recipe == "pix2pix"
