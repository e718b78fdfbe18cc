"""Where a training step is replayed as a CUDA graph, and that nothing changes where it is not.

The replays themselves need a GPU: tests/test_cuda_graphs.py (skipped without one).
"""

from __future__ import annotations

import copy

import pytest
import torch
from click.testing import CliRunner

from i2i.cli import build_cli
from i2i.config import RunConfig
from i2i.engine.graphed_step import GraphedTrainStep, training_graphs_blocker
from i2i.engine.step import Pix2PixStep
from i2i.losses import Objective
from i2i.models import patch16
from i2i.plugins import make_plugin_manager
from tests.test_engine_fixtures import (  # noqa: F401 (one_thread is a fixture)
    one_thread,
    tiny_catalog,
    tiny_unet,
)

pytestmark = pytest.mark.usefixtures("one_thread")
CUDA = torch.device("cuda")  # only a name here: nothing runs on it


def _step(seed: int = 0) -> Pix2PixStep:
    torch.manual_seed(seed)
    gen, disc = tiny_unet(3, 3, ngf=4, dropout=False), patch16(6, ndf=4)
    obj = Objective.parse("gan=1,l1=100", tiny_catalog().losses)
    return Pix2PixStep(
        gen,
        disc,
        obj,
        torch.optim.Adam(gen.parameters(), lr=1e-3),
        torch.optim.Adam(disc.parameters(), lr=1e-3),
    )


def _batch(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "input": torch.rand(2, 3, 32, 32, generator=g),
        "target": torch.rand(2, 3, 32, 32, generator=g),
    }


def test_off_a_gpu_the_wrapper_trains_exactly_as_the_step():
    plain = _step()
    wrapped = copy.deepcopy(plain)
    graphed = GraphedTrainStep(wrapped, warmup=1)
    for seed in range(3):
        want, got = plain.train_step(_batch(seed)), graphed(_batch(seed))
        assert want.keys() == got.keys()
        assert all(torch.equal(want[k], got[k]) for k in want)
    for a, b in zip(plain.generator.parameters(), wrapped.generator.parameters(), strict=True):
        assert torch.equal(a, b)
    assert graphed.captures == 0 and graphed.failure is None


def test_pix2pix_steps_may_be_captured_where_nothing_reads_back():
    step = _step()
    assert training_graphs_blocker(step, CUDA, precision="fp32") is None
    assert training_graphs_blocker(step, CUDA, precision="bf16") is None
    assert training_graphs_blocker(step, torch.device("cpu"), precision="fp32") == (
        "not on a CUDA device"
    )


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"precision": "fp16"}, "gradient scaler"),
        ({"precision": "fp32", "distributed": True}, "torchrun"),
        ({"precision": "fp32", "compiled": True}, "torch.compile"),
        ({"precision": "fp32", "on_nonfinite": "skip"}, "--on-nonfinite skip"),
    ],
)
def test_what_keeps_a_step_eager(kw, why):
    assert why in training_graphs_blocker(_step(), CUDA, **kw)


def test_a_recipe_step_that_does_not_say_so_stays_eager():
    from i2i_cyclegan.recipe import CycleGANStep  # its image pool decides in Python each step

    class Plain:
        def train_step(self, batch):
            return {}

    assert "does not allow capture" in training_graphs_blocker(Plain(), CUDA, precision="fp32")
    assert not CycleGANStep.graph_capturable


def test_the_wrapper_refuses_nonsense_sizes():
    with pytest.raises(ValueError, match="at least 1"):
        GraphedTrainStep(_step(), warmup=0)


def test_i2i_run_takes_the_setting_and_a_config_without_it_loads():
    assert RunConfig(task="facades").cuda_graphs is None
    out = (
        CliRunner()
        .invoke(build_cli(make_plugin_manager(load_entrypoints=False)), ["run", "--help"])
        .output
    )
    assert "--cuda-graphs / --no-cuda-graphs" in out
    saved = RunConfig(task="facades").to_dict()
    del saved["cuda_graphs"]  # a run saved before the setting existed
    assert RunConfig.from_dict(saved).cuda_graphs is None


def test_asked_for_off_a_gpu_the_run_says_why_not_and_trains(tmp_path):
    from tests.test_engine_fixtures import TinyPlugin, write_ab_data

    cli = build_cli(make_plugin_manager(load_entrypoints=False, plugins=(TinyPlugin(),)))
    data, out = write_ab_data(tmp_path / "data", n_train=2, n_val=1), tmp_path / "r"
    args = ["run", "--task", "demo", "--data", data, "--out", out, "--gen", "tiny_unet",
            "--disc", "patch16", "--disc-opt", "ndf=8", "--load-size", "36", "--crop-size", "32",
            "--device", "cpu", "--precision", "fp32", "--num-workers", "0", "--max-steps", "2",
            "--cuda-graphs"]  # fmt: skip
    result = CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "CUDA graphs off: not on a CUDA device" in result.output
