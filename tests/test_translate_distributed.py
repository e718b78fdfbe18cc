"""``torchrun -m i2i translate``: two CPU processes share the inputs, each output written once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from i2i.data import write_image
from i2i.engine.distributed import DistInfo
from i2i.inference.sharding import share
from tests.test_translate import make_checkpoint

REPO = Path(__file__).resolve().parent.parent


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "i2i", "translate", *args, "--device", "cpu", "--no-progress"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture
def inputs(tmp_path, catalog) -> tuple[Path, Path, list[str]]:
    run = tmp_path / "run"
    make_checkpoint(run, catalog, test_mode="eval")
    src = tmp_path / "in"
    names = [f"img{i}" for i in range(5)]
    torch.manual_seed(0)
    for i, name in enumerate(names):  # two sizes, so batches form per size on each rank
        write_image(torch.rand(3, 24 + 8 * (i % 2), 32), src / f"{name}.png")
    return run, src, names


def test_the_shares_of_all_ranks_cover_every_item_once():
    items = list(range(11))
    shares = [share(items, DistInfo(rank=r, world_size=3, local_rank=r)) for r in range(3)]
    assert sorted(sum(shares, [])) == items


@pytest.mark.slow
def test_two_processes_write_every_output_exactly_once(inputs, tmp_path):
    run, src, names = inputs
    out = tmp_path / "out"
    proc = _torchrun(["-c", str(run), str(src), "-o", str(out), "--batch-size", "2"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.png" for n in names)
    # rank 0 alone reports, with the sum of what each rank wrote: 5 means none twice
    assert proc.stdout.count("wrote ") == 1
    assert f"wrote 5 image(s) to {out} by 2 processes" in proc.stdout


@pytest.mark.slow
def test_two_processes_refuse_together_when_an_output_exists(inputs, tmp_path):
    run, src, _ = inputs
    out = tmp_path / "out"
    write_image(torch.rand(3, 8, 8), out / "img3.png")
    before = (out / "img3.png").read_bytes()
    proc = _torchrun(["-c", str(run), str(src), "-o", str(out)], tmp_path)
    assert proc.returncode != 0
    assert "already exist" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["img3.png"]
    assert (out / "img3.png").read_bytes() == before
