"""Faults during a run: non-finite losses, a full disk, hostile checkpoint files.

Every case goes through the real ``i2i run`` / ``i2i translate`` (click's CliRunner on
``build_cli(pm)``) or the Python API behind it, with the tiny models of the engine tests.
"""

from __future__ import annotations

import errno
import io
import math
import pickle
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

from i2i.cli import build_cli
from i2i.data.io import DatasetError, ImageReadError
from i2i.engine import checkpoint as ck
from i2i.engine import faults as faults_mod
from i2i.engine.loop import TrainingDiverged
from i2i.engine.runner import train
from i2i.engine.step import NonFiniteLossError, Pix2PixStep
from i2i.engine.tracking import MetricsLog, read_metrics
from i2i.losses import Objective
from i2i.plugins import make_plugin_manager
from tests.test_engine_fixtures import (  # noqa: F401 (one_thread is a fixture)
    TinyPlugin,
    one_thread,
    tiny_catalog,
    tiny_config,
    write_ab_data,
)
from tests.test_reliability_corpus import assert_refused

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--gen", "tiny_unet", "--disc", "patch16", "--disc-opt", "ndf=8", "--load-size", "36",
        "--crop-size", "32", "--device", "cpu", "--precision", "fp32", "--num-workers", "0"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_ab_data(tmp_path_factory.mktemp("data"), n_train=8, n_val=1, height=32)


@pytest.fixture(scope="module")
def cli():
    return build_cli(make_plugin_manager(load_entrypoints=False, plugins=(TinyPlugin(),)))


def _run(cli, *args) -> Result:
    return CliRunner().invoke(cli, ["run", *map(str, args)])


def _finite(state: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())


def inject_nan(monkeypatch: pytest.MonkeyPatch, at_calls: set[int]) -> None:
    """Make the discriminator loss NaN on the given 1-based calls (one call per step)."""
    real = Objective.discriminator_loss
    calls = []

    def patched(self, *args, **kwargs):
        loss, parts = real(self, *args, **kwargs)
        calls.append(1)
        if len(calls) in at_calls:
            loss = loss * float("nan")
        return loss, parts

    monkeypatch.setattr(Objective, "discriminator_loss", patched)


# ---- non-finite losses -------------------------------------------------------------------------


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    cli, data, tmp_path, monkeypatch
):
    inject_nan(monkeypatch, {3})
    out = tmp_path / "r"
    result = _run(cli, "--task", "demo", "--data", data, "--out", out, "--max-steps", "8",
                  "--save-every", "2", "--log-every", "100", *TINY)  # fmt: skip
    assert_refused(result, "Training diverged: non-finite loss (d_loss", "at step 3;")
    assert "stopped at step 4 without saving" in result.output
    assert "step_00000002" in result.output and "--on-nonfinite skip" in result.output
    ckpt = ck.load_checkpoint(out)
    assert (
        ckpt.step == 2 and _finite(ckpt.generator_state) and _finite(ckpt.weights["discriminator"])
    )
    assert [p.name for p in ck.list_checkpoints(out)] == ["step_00000002"]


def test_nan_loss_with_skip_drops_the_updates_and_counts_them(cli, data, tmp_path, monkeypatch):
    inject_nan(monkeypatch, {3, 5})
    out = tmp_path / "r"
    result = _run(cli, "--task", "demo", "--data", data, "--out", out, "--max-steps", "6",
                  "--log-every", "2", "--on-nonfinite", "skip", *TINY)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "step 3: non-finite loss (d_loss=nan" in result.output
    assert "skipped the update of 2 step(s) with a non-finite loss" in result.output
    ckpt = ck.load_checkpoint(out)
    assert (
        ckpt.step == 6 and _finite(ckpt.generator_state) and _finite(ckpt.weights["discriminator"])
    )
    assert ckpt.train_state()["nonfinite_steps"] == 2
    records = read_metrics(out / "metrics.jsonl")
    train_records = [r for r in records if r["kind"] == "train"]
    assert [(r["step"], r["skipped/nonfinite_steps"]) for r in train_records] == [
        (2, 0),
        (4, 1),
        (6, 2),
    ]
    assert all(isinstance(r["train/d_loss"], float) and math.isfinite(r["train/d_loss"])
               for r in train_records)  # fmt: skip
    assert records[-1]["kind"] == "summary" and records[-1]["skipped/nonfinite_steps"] == 2
    # the count survives a resume
    more = _run(cli, "--resume", out, "--max-steps", "7", "--log-every", "1")
    assert more.exit_code == 0, more.output
    assert read_metrics(out / "metrics.jsonl")[-1]["skipped/nonfinite_steps"] == 2


def test_skip_leaves_weights_and_optimizer_untouched():
    """A non-finite D loss raises before any update: both networks and Adam stay as they were."""
    from i2i.engine.build import make_discriminator, make_generator

    torch.manual_seed(0)
    cat = tiny_catalog()
    cfg = {"generator": "tiny_unet", "discriminator": "patch16", "norm": "batch"}
    gen, disc = make_generator(cat, cfg, 3, 3), make_discriminator(cat, cfg, 6)
    objective = Objective.from_weights({"gan": 1.0, "l1": 100.0}, cat.losses)
    opt_g = torch.optim.Adam(gen.parameters())
    opt_d = torch.optim.Adam(disc.parameters())
    step = Pix2PixStep(gen, disc, objective, opt_g, opt_d)
    step.skip_nonfinite = True
    params = [*gen.parameters(), *disc.parameters()]
    before = [p.detach().clone() for p in params]
    batch = {"input": torch.full((1, 3, 32, 32), float("nan")), "target": torch.zeros(1, 3, 32, 32)}
    with pytest.raises(NonFiniteLossError, match="d_loss=nan"):
        step.train_step(batch)
    assert all(torch.equal(a, p) for a, p in zip(before, params, strict=True))
    assert all(p.grad is None for p in params)
    assert not opt_g.state and not opt_d.state  # Adam never stepped
    assert all(p.requires_grad for p in disc.parameters())
    good = {"input": torch.rand(1, 3, 32, 32) * 2 - 1, "target": torch.rand(1, 3, 32, 32) * 2 - 1}
    assert set(step.train_step(good)) >= {"d_loss", "g_loss"}  # the next good batch trains


def test_many_non_finite_steps_in_a_row_stop_the_run(data, tmp_path, monkeypatch):
    monkeypatch.setattr(faults_mod, "MAX_CONSECUTIVE_NONFINITE", 3)
    inject_nan(monkeypatch, set(range(1, 100)))
    cat = tiny_catalog()
    cfg = tiny_config(cat, data, tmp_path / "r", max_steps=10, on_nonfinite="skip")
    with pytest.raises(TrainingDiverged, match="3 steps in a row") as info:
        train(cfg, catalog=cat, quiet=True)
    assert info.value.step == 3 and info.value.checkpoint is None
    assert ck.list_checkpoints(tmp_path / "r") == []


# ---- a full disk -------------------------------------------------------------------------------


def test_full_disk_while_saving_keeps_the_previous_checkpoint(cli, data, tmp_path, monkeypatch):
    out = tmp_path / "r"
    real_write = ck._write_bytes

    def full_disk(path: Path, payload: bytes) -> None:
        if "step_00000004" in path.parent.name:  # the second save: half written, then full
            with open(path, "wb") as f:
                f.write(payload[: len(payload) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, payload)

    monkeypatch.setattr(ck, "_write_bytes", full_disk)
    result = _run(cli, "--task", "demo", "--data", data, "--out", out, "--max-steps", "4",
                  "--save-every", "2", "--log-every", "100", *TINY)  # fmt: skip
    assert_refused(result, "Cannot save checkpoint step_00000004", "the disk is full")
    kept = out.absolute() / "checkpoints" / "step_00000002"
    assert f"The previous checkpoint, {kept}, is intact and kept" in result.output
    assert f"--resume {out.absolute()}" in result.output
    ckpt = ck.load_checkpoint(out)
    assert ckpt.step == 2 and ckpt.train_state()["step"] == 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "latest.json",
        "step_00000002",
    ]  # the half-written temporary folder is gone: its space is free again

    monkeypatch.setattr(ck, "_write_bytes", real_write)  # space freed: the run continues
    more = _run(cli, "--resume", out, "--max-steps", "4")
    assert more.exit_code == 0, more.output
    assert ck.load_checkpoint(out).step == 4


def test_full_disk_while_logging_is_a_clear_error(cli, data, tmp_path, monkeypatch):
    def full(self, record):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(MetricsLog, "write", full)
    out = tmp_path / "r"
    result = _run(cli, "--task", "demo", "--data", data, "--out", out, "--max-steps", "2",
                  "--log-every", "1", *TINY)  # fmt: skip
    assert_refused(result, "the disk is full", "metrics.jsonl", f"--out {out} --overwrite")
    assert "--resume" not in result.output  # there is no checkpoint to resume yet


# ---- hostile files -----------------------------------------------------------------------------


class Exploit:
    """Unpickling this writes ``marker``: what a hostile checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def hostile_bytes(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"step": 1, "payload": Exploit(marker)}, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def trained(cli, data, tmp_path_factory) -> Path:
    """A real one-step run (its checkpoint is copied, then poisoned, by each test)."""
    out = tmp_path_factory.mktemp("trained") / "r"
    result = _run(cli, "--task", "demo", "--data", data, "--out", out, "--max-steps", "1", *TINY)
    assert result.exit_code == 0, result.output
    return out


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_safe_loading_would_really_run_the_exploit(tmp_path):
    """The test file is really hostile: unsafe loading writes the marker."""
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    path.write_bytes(hostile_bytes(marker))
    torch.load(path, weights_only=False)
    assert marker.read_text() == "pwned"


def test_hostile_train_state_is_refused_on_resume(cli, trained, tmp_path):
    run = _copy_run(trained, tmp_path / "run")
    marker = tmp_path / "marker"
    state = ck.resolve_checkpoint_dir(run) / ck.TRAIN_STATE_FILE
    state.write_bytes(hostile_bytes(marker))
    with pytest.raises(
        ck.CheckpointError,
        match=r"Refusing to load .*train_state.pt: it asks for a Python object \(exec\)",
    ):
        ck.load_checkpoint(run).train_state()
    result = _run(cli, "--resume", run, "--max-steps", "2")
    assert_refused(result, f"Refusing to load {state}", "can run code")
    assert not marker.exists()
    assert ck.load_checkpoint(run).step == 1  # nothing was saved over it


def test_hostile_weights_file_is_refused(cli, trained, tmp_path):
    run = _copy_run(trained, tmp_path / "run")
    marker = tmp_path / "marker"
    weights = ck.resolve_checkpoint_dir(run) / "generator.safetensors"
    weights.write_bytes(pickle.dumps(Exploit(marker)))
    with pytest.raises(ck.CheckpointError, match="not a readable safetensors file"):
        ck.load_checkpoint(run)
    img = tmp_path / "in.png"
    from i2i.data import write_image

    write_image(torch.rand(3, 32, 32), img)
    result = CliRunner().invoke(
        cli, ["translate", "-c", str(run), str(img), "--out", str(tmp_path / "o"), "--no-progress"]
    )
    assert_refused(result, str(weights), "safetensors")
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_hostile_timm_encoder_weights_are_refused(tmp_path):
    from i2i.models.timm_unet import load_encoder_weights

    marker = tmp_path / "marker"
    path = tmp_path / "encoder.pt"
    path.write_bytes(hostile_bytes(marker))
    with pytest.raises(ValueError, match=f"Refusing to load {path}: it asks for a Python object"):
        load_encoder_weights(torch.nn.Identity(), path)
    assert not marker.exists()
    with pytest.raises(ck.CheckpointError, match=f"Refusing to load {path}"):
        ck.safe_torch_load(path)
    assert not marker.exists()


def test_translate_never_writes_through_a_link_out_of_its_folder(cli, trained, tmp_path):
    """An output path that is a symlink to a file elsewhere is refused, even with --overwrite."""
    from i2i.data import write_image

    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"keep me")
    out = tmp_path / "o"
    out.mkdir()
    (out / "in.png").symlink_to(outside)
    src = write_image(torch.rand(3, 32, 32), tmp_path / "src" / "in.png")
    args = ["translate", "-c", str(trained), str(src), "--out", str(out), "--no-progress"]
    for extra in ([], ["--overwrite"]):
        result = CliRunner().invoke(cli, [*args, *extra])
        assert_refused(result, str(out / "in.png"), f"would land outside {out}")
    assert outside.read_bytes() == b"keep me" and (out / "in.png").is_symlink()


# ---- data errors travel intact from DataLoader workers ------------------------------------------


def test_data_errors_survive_pickling_and_worker_reraise():
    err = ImageReadError("/data/a b/1.jpg", "the file is truncated or incomplete (x)")
    again = pickle.loads(pickle.dumps(err))
    assert (again.path, again.reason, str(again)) == (err.path, err.reason, str(err))
    worker_text = (
        "Caught ImageReadError in DataLoader worker process 1.\nOriginal Traceback (most recent "
        'call last):\n  File "x.py", line 1, in f\n    raise ImageReadError(\n'
        f"i2i.data.io.ImageReadError: {err}\n"
    )
    rebuilt = ImageReadError(worker_text)  # what torch does in the main process
    assert str(rebuilt) == str(err) and rebuilt.path == err.path
    multi = DatasetError("2 bad file(s) in /d:\n  one\n  two")
    text = f"Caught DatasetError in DataLoader worker process 0.\nOriginal Tb\ni2i.data.io.DatasetError: {multi}\n"
    assert str(DatasetError(text)) == str(multi)
