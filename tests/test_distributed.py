"""Two CPU processes under torchrun: DDP keeps the ranks' weights identical; rank 0 saves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from i2i.engine import checkpoint as ck
from i2i.engine.loop import DUMP_WEIGHTS_ENV, dump_weight_hashes
from tests.test_engine_fixtures import tiny_catalog, write_ab_data

REPO = Path(__file__).resolve().parent.parent

LAUNCHER = """
import sys
from i2i.cli import build_cli
from i2i.plugins import make_plugin_manager
from tests.test_engine_fixtures import TinyPlugin

pm = make_plugin_manager(load_entrypoints=False, plugins=(TinyPlugin(),))
build_cli(pm).main(args=sys.argv[1:], prog_name="i2i")
"""


@pytest.mark.slow
def test_two_cpu_processes_train_in_step(tmp_path):
    data = write_ab_data(tmp_path / "data", n_train=6, n_val=2)
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    out, dump = tmp_path / "run", tmp_path / "dump"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        DUMP_WEIGHTS_ENV: str(dump),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        str(launcher), "run", "--task", "demo", "--gen", "tiny_unet", "--disc", "patch16",
        "--disc-opt", "ndf=8", "--data", str(data), "--out", str(out), "--load-size", "36",
        "--crop-size", "32", "--max-steps", "4", "--device", "cpu", "--precision", "fp32",
        "--num-workers", "0", "--log-every", "2", "--quiet",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.splitlines().count(str(out)) == 1, proc.stdout  # -q: once, by rank 0

    ranks = [json.loads((dump / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["generator.params"] == ranks[1]["generator.params"]
    assert ranks[0]["discriminator.params"] == ranks[1]["discriminator.params"]

    ckpt = ck.load_checkpoint(out)  # written by rank 0 alone; 6 images / 2 ranks = 3 steps/epoch
    assert ckpt.step == 4 and ckpt.epoch == 1
    gen = ck.build_generator(ckpt, tiny_catalog())
    mine = json.loads(dump_weight_hashes({"generator": gen}, tmp_path / "check", 0).read_text())
    assert mine["generator.params"] == ranks[0]["generator.params"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [2, 4]  # one log line per step count, not per rank
    assert train[0]["speed/img_s"] == pytest.approx(2 * train[0]["speed/it_s"])
