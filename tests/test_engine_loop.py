"""The training loop: schedule, steps, resume, logging, samples, signals, run folders."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from PIL import Image

from i2i.config import RunConfig
from i2i.engine import checkpoint as ck
from i2i.engine.loop import Trainer, TrainingInterrupted, lr_factor
from i2i.engine.runner import RunDirError, prepare_run_dir, resume_config, train
from i2i.engine.sampling import EpochSampler
from i2i.engine.step import Pix2PixStep
from i2i.engine.tracking import read_metrics
from tests.test_engine_fixtures import (  # noqa: F401 (one_thread is a fixture)
    one_thread,
    tiny_catalog,
    tiny_config,
    write_ab_data,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def catalog():
    return tiny_catalog()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_ab_data(tmp_path_factory.mktemp("data"), n_train=6, n_val=3)


def _run(catalog, data, out, **over):
    return train(tiny_config(catalog, data, out, **over), catalog=catalog, quiet=True)


def _states(run_dir):
    ckpt = ck.load_checkpoint(run_dir)
    return ckpt, {
        **ckpt.generator_state,
        **{"D." + k: v for k, v in ckpt.weights["discriminator"].items()},
    }


def test_lr_factor_is_constant_then_linear_to_zero():
    rule = lr_factor(epochs=100, epochs_decay=100)
    assert rule(0) == rule(99) == 1.0
    assert rule(100) == pytest.approx(1 - 1 / 101)
    assert rule(199) == pytest.approx(1 / 101)
    assert lr_factor(1, 0)(0) == 1.0 and lr_factor(1, 0)(5) == 0.0


def test_learning_rate_per_epoch_in_a_run(catalog, data, tmp_path):
    run = _run(catalog, data, tmp_path / "r", epochs=2, epochs_decay=2, log_every=6)
    lrs = [r["lr/generator"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]
    assert lrs == pytest.approx([2e-4, 2e-4, 2e-4 * 2 / 3, 2e-4 / 3])


def test_train_records_name_the_epoch_of_their_steps(catalog, data, tmp_path):
    # 6 steps per epoch, logged every 5: the run's last record (step 12) comes after the end of
    # the second epoch and belongs to it
    run = _run(catalog, data, tmp_path / "r", epochs=2, log_every=5)
    train = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]
    assert [(r["step"], r["epoch"]) for r in train] == [(5, 0), (10, 1), (12, 1)]


def test_the_logged_rate_leaves_out_the_first_slow_step():
    import time

    from i2i.engine.throughput import LossMeter

    meter = LossMeter()
    time.sleep(0.3)  # the first step: kernels built, code compiled
    meter.add({"l1": torch.tensor(1.0)})
    for _ in range(3):
        meter.add({"l1": torch.tensor(1.0)})
    record = meter.record(batch_size=1, world_size=1)
    assert record["train/l1"] == 1.0 and record["speed/it_s"] > 100  # 4 / 0.3 s had it at 13


def test_sampler_orders_depend_on_seed_and_epoch_and_shard_evenly():
    a = EpochSampler(7, seed=1)
    orders = []
    for epoch in (0, 1):
        a.set_epoch(epoch)
        orders.append(list(a))
    assert sorted(orders[0]) == list(range(7)) and orders[0] != orders[1]
    shards = [EpochSampler(7, seed=1, rank=r, world_size=2) for r in (0, 1)]
    for s in shards:
        s.set_epoch(0)
    both = list(shards[0]) + list(shards[1])
    assert len(both) == 8 and set(both) == set(range(7))  # padded by one repeat


def test_max_steps_is_a_total_and_resume_continues(catalog, data, tmp_path):
    out = tmp_path / "r"
    _run(catalog, data, out, max_steps=4)
    assert ck.load_checkpoint(out).step == 4
    cfg = resume_config(out, catalog, max_steps=7)
    train(cfg, catalog=catalog, resume=out, quiet=True)
    ckpt = ck.load_checkpoint(out)
    assert ckpt.step == 7 and ckpt.train_state()["batch_in_epoch"] == 1  # 6 per epoch
    steps = [r["step"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == [2, 4, 6, 7]


def test_resuming_an_older_checkpoint_in_place_keeps_the_later_ones_unless_told(
    catalog, data, tmp_path
):
    out = _run(catalog, data, tmp_path / "r", max_steps=4, save_every=2)
    names = sorted(p.name for p in ck.list_checkpoints(out))
    assert names == ["step_00000002", "step_00000004"]
    older = out / "checkpoints" / "step_00000002"
    cfg = resume_config(older, catalog, max_steps=4)
    with pytest.raises(RunDirError, match="step_00000004 came later"):
        train(cfg, catalog=catalog, resume=older, quiet=True)
    assert ck.load_checkpoint(out).step == 4  # untouched
    branch = tmp_path / "branch"  # into another folder: nothing of the run is replaced
    train(cfg.replace(out=str(branch)), catalog=catalog, resume=older, quiet=True)
    assert ck.load_checkpoint(branch).step == 4 and ck.load_checkpoint(out).step == 4
    import i2i.engine.runner as runner

    def fails(*args, **kwargs):  # anything failing before the first new save
        raise RuntimeError("no data today")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "prepare_run_dir", fails)
        with pytest.raises(RuntimeError, match="no data today"):
            train(cfg, catalog=catalog, resume=older, overwrite=True, quiet=True)
    assert ck.load_checkpoint(out).step == 2  # latest.json points where a resume continues
    train(cfg, catalog=catalog, resume=older, overwrite=True, quiet=True)
    assert ck.load_checkpoint(out).step == 4


def test_resume_mid_epoch_gives_identical_weights(catalog, data, tmp_path):
    straight = _run(catalog, data, tmp_path / "straight", max_steps=10)
    half = _run(catalog, data, tmp_path / "half", max_steps=5)  # stops inside epoch 0
    train(resume_config(half, catalog, max_steps=10), catalog=catalog, resume=half, quiet=True)
    ckpt_a, a = _states(straight)
    ckpt_b, b = _states(half)
    assert ckpt_a.step == ckpt_b.step == 10
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    opt_a = ckpt_a.train_state()["recipe"]["optimizers"]["generator"]["state"]
    opt_b = ckpt_b.train_state()["recipe"]["optimizers"]["generator"]["state"]
    assert all(torch.equal(opt_a[i]["exp_avg"], opt_b[i]["exp_avg"]) for i in opt_a)


def test_a_run_saved_nchw_resumes_channels_last_on_the_same_course(catalog, data, tmp_path):
    """A run trained NCHW before fp32 training went channels_last on AVX-512 CPUs resumes
    under the new layout: same steps, same weights as training on in NCHW, up to rounding."""
    straight = _run(catalog, data, tmp_path / "straight", max_steps=8, channels_last=False)
    half = _run(catalog, data, tmp_path / "half", max_steps=4, channels_last=False)
    cfg = resume_config(half, catalog, max_steps=8, channels_last=True)
    train(cfg, catalog=catalog, resume=half, quiet=True)
    assert json.loads((half / "resolved.json").read_text())["channels_last"] is True
    ckpt_a, a = _states(straight)
    ckpt_b, b = _states(half)
    assert ckpt_a.step == ckpt_b.step == 8 and a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-4, rtol=1e-4, msg=key)
    assert all(t.is_contiguous() for t in b.values())  # saved in the usual NCHW layout


def test_metrics_samples_and_checkpoints_of_a_run(catalog, data, tmp_path):
    run = _run(catalog, data, tmp_path / "r", epochs=2, keep_last=1, keep_every=1)
    records = read_metrics(run / "metrics.jsonl")
    train_recs = [r for r in records if r["kind"] == "train"]
    val_recs = [r for r in records if r["kind"] == "val"]
    assert [r["step"] for r in val_recs] == [6, 12]  # each epoch; the last is the run's end
    for r in train_recs:
        assert {"train/d_loss", "train/g_loss", "train/g_gan", "train/g_l1", "lr/generator"} <= set(
            r
        )
        assert r["speed/it_s"] > 0 and r["speed/img_s"] == pytest.approx(r["speed/it_s"])
    for r in val_recs:
        assert 0 <= r["val/l1"] <= 1 and r["val/psnr"] > 0 and -1 <= r["val/ssim"] <= 1
        assert r["val/images"] == 3
    samples = sorted((run / "samples").iterdir())
    assert [p.name for p in samples] == ["epoch0001_step00000006.png", "epoch0002_step00000012.png"]
    w, h = Image.open(samples[0]).size
    assert (w, h) == (3 * 32 + 4 * 2, 3 * 32 + 4 * 2)  # 3 columns (in|out|target), 3 val rows
    ckpts = [p.name for p in ck.list_checkpoints(run)]
    assert ckpts == ["step_00000006", "step_00000012"]  # both end an epoch: keep_every=1
    assert (run / "config.json").is_file()


def test_short_run_still_validates_and_saves(catalog, data, tmp_path):
    run = _run(catalog, data, tmp_path / "r", max_steps=1)
    records = read_metrics(run / "metrics.jsonl")
    assert [(r["kind"], r["step"]) for r in records] == [("train", 1), ("val", 1)]
    assert ck.load_checkpoint(run).step == 1
    assert len(list((run / "samples").iterdir())) == 1


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_a_checkpoint_then_stops(catalog, data, tmp_path, monkeypatch, signum, code):
    real = Pix2PixStep.train_step
    calls = []

    def step_then_signal(self, batch):
        out = real(self, batch)
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signum)
        return out

    monkeypatch.setattr(Pix2PixStep, "train_step", step_then_signal)
    with pytest.raises(TrainingInterrupted) as info:
        _run(catalog, data, tmp_path / "r")
    assert info.value.exit_code == code
    assert ck.load_checkpoint(tmp_path / "r").step == 3
    assert signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler)


def test_keyboard_interrupt_between_steps_saves(catalog, data, tmp_path, monkeypatch):
    real = Trainer._log_train

    def interrupted(self):
        real(self)
        raise KeyboardInterrupt  # as if Ctrl-C hit outside our handler, between steps

    monkeypatch.setattr(Trainer, "_log_train", interrupted)
    with pytest.raises(TrainingInterrupted) as info:
        _run(catalog, data, tmp_path / "r")
    assert info.value.exit_code == 130 and ck.load_checkpoint(tmp_path / "r").step == 2


def test_loop_drives_any_step_object(catalog, data, tmp_path):
    """A different recipe (here: plain L1 regression) reuses the loop unchanged."""
    from i2i.data import build_dataset

    class L1Step:
        def __init__(self):
            torch.manual_seed(0)
            self.net = torch.nn.Conv2d(3, 3, 3, padding=1)
            self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)

        def train_step(self, batch):
            self.opt.zero_grad()
            loss = (self.net(batch["input"]) - batch["target"]).abs().mean()
            loss.backward()
            self.opt.step()
            return {"l1": loss.detach()}

        def modules(self):
            return {"generator": self.net}

        def optimizers(self):
            return {"generator": self.opt}

        def state_dict(self):
            return {"opt": self.opt.state_dict()}

        def load_state_dict(self, state):
            self.opt.load_state_dict(state["opt"])

    cfg = tiny_config(catalog, data, tmp_path / "r", epochs=1)
    task = catalog.tasks.get("demo").obj
    ds = build_dataset(task, data, "train", seed=0)
    trainer = Trainer(
        L1Step(), config=cfg, run_dir=tmp_path / "r", task=task, train_data=ds, quiet=True
    )
    trainer.fit()
    records = read_metrics(tmp_path / "r" / "metrics.jsonl")
    assert "train/l1" in records[0] and ck.load_checkpoint(tmp_path / "r").step == 6


def test_run_folder_is_never_clobbered(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "metrics.jsonl").write_text("{}\n")
    (out / "samples").mkdir()
    (out / "samples" / "my_photo.png").write_text("mine too")
    for overwrite in (False, True):  # not an i2i run: --overwrite cannot apply to it
        with pytest.raises(RunDirError, match="not an i2i run folder"):
            prepare_run_dir(out, overwrite=overwrite)
    assert (out / "samples" / "my_photo.png").is_file()
    (out / "config.json").write_text(json.dumps(RunConfig(task="colorize").to_dict()))
    with pytest.raises(RunDirError, match="saved no checkpoint; pick another --out, or pass --"):
        prepare_run_dir(out)
    (out / "checkpoints").mkdir()
    prepare_run_dir(out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # only i2i outputs went
    assert prepare_run_dir(out, resuming=out) == out.absolute()


def test_resume_refuses_structural_changes(catalog, data, tmp_path):
    from i2i.config import ConfigError

    out = _run(catalog, data, tmp_path / "r", max_steps=1)
    with pytest.raises(ConfigError, match="Cannot change discriminator .*'patch16'.*'patch70'"):
        resume_config(out, catalog, discriminator="patch")
    with pytest.raises(ConfigError, match="Cannot change objective"):
        resume_config(out, catalog, lambda_l1=10)
    cfg = resume_config(out, catalog, epochs=3, generator="tiny_unet")
    assert cfg.epochs == 3 and cfg.epochs_decay == 0 and cfg.out == str(out)


@pytest.mark.parametrize("state", [{}, {"step": "garbage", "epoch": 0, "batch_in_epoch": 0}])
def test_resume_state_of_another_shape_is_an_error_naming_it(catalog, data, tmp_path, state):
    out = _run(catalog, data, tmp_path / "r", max_steps=2)
    latest = ck.load_checkpoint(out).path
    torch.save(state, latest / "train_state.pt")
    with pytest.raises(ck.CheckpointError, match="train_state.pt is not resume state"):
        train(resume_config(out, catalog, max_steps=3), catalog=catalog, resume=out, quiet=True)
