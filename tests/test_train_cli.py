"""``i2i run`` through click's CliRunner on build_cli(pm)."""

from __future__ import annotations

import os
import signal

import pytest
from click.testing import CliRunner

from i2i.cli import build_cli
from i2i.engine import checkpoint as ck
from i2i.engine.step import Pix2PixStep
from i2i.engine.tracking import read_metrics
from i2i.plugins import make_plugin_manager
from tests.test_engine_fixtures import (  # noqa: F401 (one_thread is a fixture)
    TinyPlugin,
    facades_plugin_manager,
    facades_subset,
    one_thread,
    write_ab_data,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--gen", "tiny_unet", "--disc", "patch16", "--disc-opt", "ndf=8", "--load-size", "36", "--crop-size", "32",
        "--device", "cpu", "--precision", "fp32", "--num-workers", "0", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_ab_data(tmp_path_factory.mktemp("data"), n_train=4, n_val=2)


@pytest.fixture
def cli():
    return build_cli(make_plugin_manager(load_entrypoints=False, plugins=(TinyPlugin(),)))


def _invoke(cli, *args):
    return CliRunner().invoke(cli, ["run", *map(str, args)], catch_exceptions=False)


def test_unknown_component_exits_2(cli, data, tmp_path):
    result = _invoke(
        cli, "--task", "demo", "--gen", "unet_512", "--data", data, "--out", tmp_path / "r"
    )
    assert result.exit_code == 2 and "unet_256" in result.output
    assert not (tmp_path / "r").exists()


def test_missing_task_exits_2(cli):
    result = _invoke(cli, "--epochs", "1")
    assert result.exit_code == 2 and "--task" in result.output


def test_bad_size_for_generator_is_a_clear_error(cli, data, tmp_path):
    result = _invoke(
        cli, "--task", "demo", "--data", data, "--crop-size", "128", "--out", tmp_path / "r"
    )
    assert result.exit_code == 1 and "multiples of 256" in result.output


def test_run_refuse_non_empty_out_and_resume(cli, data, tmp_path):
    out = tmp_path / "r"
    result = _invoke(cli, "--task", "demo", "--data", data, "--out", out, "--max-steps", "3", *TINY)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out.absolute())
    assert ck.load_checkpoint(out).step == 3

    again = _invoke(cli, "--task", "demo", "--data", data, "--out", out, "--max-steps", "3", *TINY)
    assert again.exit_code == 1 and "--resume" in again.output and "--overwrite" in again.output

    more = _invoke(cli, "--resume", out, "--max-steps", "6", "--quiet")
    assert more.exit_code == 0, more.output
    assert ck.load_checkpoint(out).step == 6

    changed = _invoke(cli, "--resume", out, "--disc", "patch")
    assert changed.exit_code == 1 and "Cannot change discriminator" in changed.output


def test_sigterm_exits_143_after_saving(cli, data, tmp_path, monkeypatch):
    real = Pix2PixStep.train_step

    def step_then_term(self, batch):
        out = real(self, batch)
        os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(Pix2PixStep, "train_step", step_then_term)
    result = _invoke(cli, "--task", "demo", "--data", data, "--out", tmp_path / "r", *TINY)
    assert result.exit_code == 143
    assert ck.load_checkpoint(tmp_path / "r").step == 1


@pytest.mark.slow
def test_facades_end_to_end(data_root, tmp_path, monkeypatch):
    cli = build_cli(facades_plugin_manager(monkeypatch))
    sub = facades_subset(data_root, tmp_path / "facades", n_train=4, n_val=2)
    out = tmp_path / "f"
    result = _invoke(
        cli, "--task", "facades", "--data", sub, "--out", out, "--max-steps", "5",
        "--gen", "unet_128", "--gen-opt", "ngf=8", "--disc-opt", "ndf=8", "--load-size", "143",
        "--crop-size", "128", "--num-workers", "0", "--log-every", "1", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ckpt = ck.load_checkpoint(out)
    assert ckpt.step == 5 and ckpt.config["direction"] == "BtoA"
    assert ckpt.config["generator"] == "unet_128" and ckpt.config["size_multiple"] == 128
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4, 5]
    val = [r for r in records if r["kind"] == "val"]
    assert [(r["step"], r["val/images"]) for r in val] == [(4, 2), (5, 2)]  # epoch end, run end
    assert len(list((out / "samples").glob("*.png"))) == 2


def test_an_out_under_a_file_is_named_and_no_hint_that_cannot_work(cli, data, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / "run"
    result = _invoke(cli, "--task", "demo", "--data", data, "--out", out, "--max-steps", "1", *TINY)
    assert result.exit_code == 1 and f"Not a directory: {out}" in result.output, result.output
    assert "--resume" not in result.output and "--overwrite" not in result.output
    assert (tmp_path / "notes.txt").read_text() == "mine"
