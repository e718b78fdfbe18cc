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

    class MyPix2Pix(Pix2PixStep):  # its own step, which may keep state in Python
        def train_step(self, batch):
            return super().train_step(batch)

    for step in (Plain(), CycleGANStep.__new__(CycleGANStep), MyPix2Pix.__new__(MyPix2Pix)):
        why = training_graphs_blocker(step, CUDA, precision="fp32")
        assert "does not allow capture" in why, type(step)
    assert "several sizes" in training_graphs_blocker(
        _step(), CUDA, precision="fp32", fixed_sizes=False
    )


class _FakeGraph:
    replays = 0

    def replay(self):
        _FakeGraph.replays += 1


@pytest.fixture
def fake_cuda(monkeypatch):
    """GraphedTrainStep on the CPU as if on a GPU: a "capture" runs the step once, eagerly
    (it trains), a replay runs nothing; the wrapper's bookkeeping is what is tested."""
    import contextlib

    from i2i.engine import graphed_step as gs

    failing = []

    @contextlib.contextmanager
    def capture(graph):
        if failing:
            raise gs.CaptureFailed() from RuntimeError("operation not permitted when capturing")
        yield

    class Stream:
        def __init__(self, device=None):
            pass

        def wait_stream(self, other):
            pass

    monkeypatch.setattr(gs, "capture", capture)
    monkeypatch.setattr(gs, "_static_copy", lambda t, device: t.clone())
    monkeypatch.setattr(gs.GraphedTrainStep, "device", property(lambda self: CUDA))
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _FakeGraph)
    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    _FakeGraph.replays = 0
    return failing


def _counting_step():
    step = _step()
    step.opt_g = torch.optim.Adam(step.generator.parameters(), lr=1e-3, fused=True)
    step.opt_d = torch.optim.Adam(step.discriminator.parameters(), lr=1e-3, fused=True)
    calls = []
    train_step = step.train_step
    step.train_step = lambda batch: calls.append(batch["input"].shape[0]) or train_step(batch)
    return step, calls


def test_warm_up_then_one_capture_then_replays(fake_cuda):
    step, calls = _counting_step()
    graphed = GraphedTrainStep(step, warmup=2)
    for s in range(5):
        losses = graphed(_batch(s))
        assert set(losses) == {"d_loss", "d_gan", "g_loss", "g_gan", "g_l1"}
    assert len(calls) == 3 and graphed.captures == 1 and _FakeGraph.replays == 3
    assert not any(g["capturable"] for g in step.opt_g.param_groups)  # put back after capture


def test_what_captures_again_and_which_graphs_are_kept(fake_cuda):
    step, _ = _counting_step()
    graphed = GraphedTrainStep(step, warmup=1, max_graphs=2)
    small = {k: v[:1] for k, v in _batch(9).items()}
    graphed(_batch(0)), graphed(_batch(1))
    assert graphed.captures == 1
    for group in step.opt_g.param_groups:
        group["lr"] = 5e-4  # the schedule's decay: capture again, without eager steps
    graphed(_batch(2))
    assert graphed.captures == 2
    step.opt_d.load_state_dict(step.opt_d.state_dict())  # new state tensors: again
    graphed(_batch(3))
    assert graphed.captures == 3
    step.generator.eval()  # another mode: again
    graphed(_batch(4))
    step.generator.train()
    graphed(_batch(5))
    assert graphed.captures == 5
    graphed(small), graphed(small)  # a second shape: its own warm-up and graph
    assert graphed.captures == 6
    graphed(_batch(6))  # the first shape's graph was kept
    assert graphed.captures == 6
    third = {k: v[:, :, :, :32] for k, v in _batch(7).items()}
    for _ in range(3):
        graphed({k: torch.cat([v, v]) for k, v in third.items()})  # 4 x 32 x 32
    assert graphed.captures == 7
    graphed(small)  # the oldest graph (batch 1) went to make room: captured again
    assert graphed.captures == 8


def test_a_failed_capture_warns_once_and_trains_eagerly_from_then_on(fake_cuda):
    step, calls = _counting_step()
    graphed = GraphedTrainStep(step, warmup=1)
    fake_cuda.append(True)  # every capture fails
    graphed(_batch(0))
    with pytest.warns(RuntimeWarning, match="operation not permitted when capturing"):
        graphed(_batch(1))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graphed(_batch(2))
    assert len(calls) == 3 and graphed.captures == 0 and _FakeGraph.replays == 0
    assert graphed.failure == "operation not permitted when capturing"


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
