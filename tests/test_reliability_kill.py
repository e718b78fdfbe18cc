"""Crashes: training processes killed with SIGKILL at random moments never corrupt a checkpoint.

Each trial starts ``i2i run`` in a process of its own (forked from this one, so that it starts in
milliseconds; one trial also runs the real ``python -m i2i run`` with the tiny task installed as
an entry-point plugin), waits until it is training and saving (a checkpoint every step, so that
kills land inside saves too), sleeps a seeded random time and kills it with SIGKILL. After each
kill every checkpoint folder of the run must load, with its resume state, and the next trial
resumes the run and must get further (past a log line torn by the kill, too). SIGTERM and SIGINT
sent to such a process save and exit with 143 and 130.

``I2I_KILL_TRIALS`` sets the number of trials (8 by default; e.g. 200 for a long soak).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from i2i.cli import build_cli
from i2i.engine import checkpoint as ck
from i2i.engine.tracking import read_metrics
from i2i.plugins import make_plugin_manager
from tests.test_engine_fixtures import TinyPlugin, write_ab_data

REPO = Path(__file__).resolve().parent.parent
TRIALS = int(os.environ.get("I2I_KILL_TRIALS", "8"))
TINY = ["--gen", "tiny_unet", "--disc", "patch16", "--disc-opt", "ndf=8", "--load-size", "36",
        "--crop-size", "32", "--device", "cpu", "--precision", "fp32", "--num-workers", "0",
        "--log-every", "1", "--quiet"]  # fmt: skip
#: Long enough never to finish before the kill; every step saves, two are kept.
ENDLESS = ["--max-steps", "100000", "--save-every", "1", "--keep-last", "2"]
WAIT_S = 60.0  # a child that shows no progress for this long is a failure, not a slow machine

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs fork (POSIX)"
)


def _cli():
    return build_cli(make_plugin_manager(load_entrypoints=False, plugins=(TinyPlugin(),)))


def _child(args: list[str]) -> None:
    """The body of a forked training process: ``i2i run ARGS`` exactly as the console runs it."""
    torch.set_num_threads(1)
    _cli().main(args=args, prog_name="i2i")


def _latest_step(run: Path) -> int:
    try:
        return int(json.loads((run / "checkpoints" / "latest.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return -1


def _wait_for_step_after(run: Path, step: int, alive) -> int:
    """Wait until latest.json names a step after ``step`` (the child trains and saves)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        now = _latest_step(run)
        if now > step:
            return now
        if not alive():
            raise AssertionError(f"the training process ended before saving past step {step}")
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint after step {step} within {WAIT_S} s")


def check_every_checkpoint_loads(run: Path) -> int:
    """Load every checkpoint folder of ``run`` (weights and resume state); returns latest's step."""
    folders = ck.list_checkpoints(run)
    assert folders, f"no checkpoint in {run}"
    for folder in folders:
        ckpt = ck.load_checkpoint(folder)
        state = ckpt.train_state()
        assert state["step"] == ckpt.step == int(folder.name.split("_")[1])
        assert ckpt.generator_state and ckpt.weights["discriminator"]
    latest = ck.load_checkpoint(run)
    # a kill between the two renames of a same-step save (every epoch's end saves the step that
    # --save-every 1 just saved, with the next epoch's state) leaves the new folder aside, where
    # readers use it as it lies and the next save renames it into place
    aside = (
        latest.path.name.startswith((".tmp-", ".old-")) and latest.path.parent == folders[0].parent
    )
    assert latest.path in folders or aside, latest.path
    if aside:
        assert latest.path.name.split("-")[1] == ck.checkpoint_name(latest.step)
        assert latest.train_state()["step"] == latest.step
    return latest.step


def _run_args(data: Path, run: Path) -> list[str]:
    if (run / "checkpoints").is_dir():
        return ["run", "--resume", str(run), *ENDLESS, "--quiet"]
    return ["run", "--task", "demo", "--data", str(data), "--out", str(run), *ENDLESS, *TINY]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_ab_data(tmp_path_factory.mktemp("data"), n_train=6, n_val=1, height=32)


def test_sigkill_at_random_moments_never_corrupts_and_resume_continues(data, tmp_path):
    rng = random.Random(8)
    ctx = multiprocessing.get_context("fork")
    run = tmp_path / "run"
    history = []
    for trial in range(TRIALS):
        before = _latest_step(run)
        proc = ctx.Process(target=_child, args=(_run_args(data, run),), daemon=True)
        proc.start()
        try:
            _wait_for_step_after(run, before, proc.is_alive)
            time.sleep(rng.uniform(0.0, 0.25))
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(WAIT_S)
        finally:
            if proc.is_alive():
                proc.kill()
        assert proc.exitcode == -signal.SIGKILL, f"trial {trial}: exit code {proc.exitcode}"
        step = check_every_checkpoint_loads(run)
        assert step > before, f"trial {trial}: the resumed run got no further than step {before}"
        history.append(step)
    assert history == sorted(history)
    with open(run / "metrics.jsonl", "a") as f:  # as if killed in the middle of a log line
        f.write('{"step": 99999, "kind": "tra')
    result = CliRunner().invoke(_cli(), ["run", "--resume", str(run), "--max-steps",
                                         str(history[-1] + 2), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert check_every_checkpoint_loads(run) == history[-1] + 2
    records = read_metrics(run / "metrics.jsonl")  # every line whole, every step logged once
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, history[-1] + 3))
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_to_a_training_process_save_and_exit(data, tmp_path, signum, code):
    ctx = multiprocessing.get_context("fork")
    run = tmp_path / "run"
    args = _run_args(data, run)
    args[args.index("--save-every") + 1] = "0"  # only the signal saves mid-epoch
    args[args.index("--log-every") + 1] = "100"
    proc = ctx.Process(target=_child, args=(args,), daemon=True)
    proc.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while not (run / "metrics.jsonl").is_file() and time.monotonic() < deadline:
            time.sleep(0.005)  # the loop opens it just before installing its signal handlers
        time.sleep(0.2)
        os.kill(proc.pid, signum)
        proc.join(WAIT_S)
    finally:
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == code
    step = check_every_checkpoint_loads(run)
    assert step >= 1


PLUGIN = """
    from tests.test_engine_fixtures import TinyPlugin

    plugin = TinyPlugin()
"""


def test_sigkill_of_python_m_i2i_run(data, tmp_path):
    """The real console path: ``python -m i2i run`` with the tiny task from an entry point."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "fake_tiny_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "fake_tiny-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-tiny\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[i2i]\nfake_tiny = fake_tiny_plugin:plugin\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(site), os.environ.get("PYTHONPATH", "")]),
        "I2I_LOAD_PLUGINS": "fake-tiny",
        "OMP_NUM_THREADS": "1",
    }
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "i2i", *_run_args(data, run)]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        _wait_for_step_after(run, 1, lambda: proc.poll() is None)  # past the first save
        time.sleep(random.Random(1).uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait(WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.stdout.read().decode(errors="replace")
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, output[-2000:]
    step = check_every_checkpoint_loads(run)
    result = CliRunner().invoke(_cli(), ["run", "--resume", str(run), "--max-steps",
                                         str(step + 1), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert check_every_checkpoint_loads(run) == step + 1


def test_a_resumed_run_keeps_logging_after_dropping_records_of_lost_steps(data, tmp_path):
    """Records past the checkpoint (logged before a crash) are dropped, and logging goes on."""
    run = tmp_path / "run"
    cli = _cli()
    first = ["run", "--task", "demo", "--data", str(data), "--out", str(run), "--max-steps", "4",
             "--save-every", "2", *TINY]  # fmt: skip
    assert CliRunner().invoke(cli, first).exit_code == 0
    # the run is at step 4; pretend steps 5 and 6 were logged, then a crash
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "kind": "train"}\n{"step": 6, "kind": "train"}\n{"step": 7, "ki')
    result = CliRunner().invoke(cli, ["run", "--resume", str(run), "--max-steps", "6", "--quiet"])
    assert result.exit_code == 0, result.output
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert all("train/g_loss" in r for r in records if r["kind"] == "train")
