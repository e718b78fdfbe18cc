"""Where a training step is replayed as a CUDA graph, and that nothing changes where it is not.

The replays themselves need a GPU: tests/test_cuda_graphs.py (skipped without one).
"""

from __future__ import annotations

import copy

import pytest
import torch
from click.testing import CliRunner

from i2i.catalog import Catalog
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
    from i2i_cyclegan.recipe import CycleGANStep  # draws its image pools before the step

    class Plain:
        def train_step(self, batch):
            return {}

    class MyPix2Pix(Pix2PixStep):  # its own step, which may keep state in Python
        def train_step(self, batch):
            return super().train_step(batch)

    for step in (Plain(), MyPix2Pix.__new__(MyPix2Pix)):
        why = training_graphs_blocker(step, CUDA, precision="fp32")
        assert "does not allow capture" in why, type(step)
    assert (
        training_graphs_blocker(CycleGANStep.__new__(CycleGANStep), CUDA, precision="fp32") is None
    )
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


# ------------------------------------------------------- replayed as recorded (emulated graphs)


@pytest.fixture
def emulated_cuda(fake_cuda, monkeypatch):
    """GraphedTrainStep with CUDA graphs emulated on the CPU (tests/cuda_graph_emulator.py):
    a capture records the step's operations and leaves no trace, a replay runs the recording.
    A step that decides anything in Python during the step trains differently replayed."""
    import contextlib

    from i2i.engine import graphed_step as gs
    from tests import cuda_graph_emulator as emu

    @contextlib.contextmanager
    def capture(graph):
        try:
            with emu.capture(graph):
                yield
        except emu.HostReadDuringCapture as exc:
            raise gs.CaptureFailed() from exc

    monkeypatch.setattr(gs, "capture", capture)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", emu.EmulatedGraph)


def _cyclegan_step(pool_size: int = 2):
    from i2i import RecipeSetup
    from i2i.config import resolve_config

    catalog = Catalog.from_plugin_manager(make_plugin_manager())
    cfg = resolve_config(
        catalog, "facades", recipe="cyclegan", generator="resnet_6blocks",
        generator_kwargs={"ngf": 4}, discriminator="patch16", discriminator_kwargs={"ndf": 4},
        crop_size=32, load_size=36, device="cpu", precision="fp32",
        recipe_options={"pool_size": pool_size},
    )  # fmt: skip
    setup = RecipeSetup(
        config=cfg, options=cfg.recipe_options, task=catalog.tasks.get("facades").obj,
        catalog=catalog,
    )  # fmt: skip
    torch.manual_seed(0)
    return catalog.recipes.get("cyclegan").obj.build(setup)


def _train_alike(make_step, batches, *, warmup=1):
    """Losses and weights of the same step trained eagerly and through emulated graphs."""
    eager, graphed = make_step(), make_step()
    wrapper = GraphedTrainStep(graphed, warmup=warmup)
    torch.manual_seed(1)
    want = [eager.train_step(b) for b in batches]
    torch.manual_seed(1)
    got = [wrapper(b) for b in batches]
    return eager, graphed, wrapper, want, got


def _assert_same_training(eager, graphed, want, got):
    for step, (w, g) in enumerate(zip(want, got, strict=True)):
        assert w.keys() == g.keys()
        for k in w:
            torch.testing.assert_close(g[k], w[k], rtol=1e-5, atol=1e-6, msg=f"{k} at {step}")
    for role, module in eager.modules().items():
        for (name, a), b in zip(
            module.state_dict().items(), graphed.modules()[role].state_dict().values(), strict=True
        ):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=f"{role}.{name}")


def _fused_pix2pix_step(cls=Pix2PixStep, objective="gan=1,l1=100"):
    """A tiny pix2pix step with dropout and fused Adam (the kernel a capture uses)."""
    torch.manual_seed(0)
    gen, disc = tiny_unet(3, 3, ngf=4, dropout=True), patch16(6, ndf=4)
    obj = Objective.parse(objective, tiny_catalog().losses)
    return cls(
        gen, disc, obj,
        torch.optim.Adam(gen.parameters(), lr=1e-3, fused=True),
        torch.optim.Adam(disc.parameters(), lr=1e-3, fused=True),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("objective", "precision"),
    [("gan=1,l1=100", "fp32"), ("gan=1,l1=100", "bf16"), ("lsgan=1", "fp32"),
     ("hinge=1,l2=10", "fp32"), ("wgan_gp=1", "fp32")],
)  # fmt: skip
def test_pix2pix_replayed_as_recorded_trains_as_eagerly(emulated_cuda, objective, precision):
    def make():
        step = _fused_pix2pix_step(objective=objective)
        step.precision = precision  # bf16: under autocast, whose casts the graph holds
        return step

    batches = [_batch(s) for s in range(5)]
    eager, graphed, wrapper, want, got = _train_alike(make, batches)
    assert wrapper.captures == 1 and wrapper.failure is None
    _assert_same_training(eager, graphed, want, got)


def test_cyclegan_replayed_as_recorded_trains_as_eagerly_pools_included(emulated_cuda):
    batches = [{k: v[:1] for k, v in _batch(s).items()} for s in range(7)]
    eager, graphed, wrapper, want, got = _train_alike(_cyclegan_step, batches)
    assert wrapper.captures == 1 and wrapper.failure is None
    _assert_same_training(eager, graphed, want, got)
    for judge, pool in eager.pools.items():  # the same images went in and came out
        assert len(pool) == 2
        for a, b in zip(pool.images, graphed.pools[judge].images, strict=True):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    assert (
        eager.pools["D_X"].generator.get_state().equal(graphed.pools["D_X"].generator.get_state())
    )


def test_the_emulator_catches_a_step_that_decides_in_python(emulated_cuda, monkeypatch):
    """The counter-test: CycleGAN drawing its pools inside the step (as before it had
    prepare_batch) reads values back during the capture; a step whose loss weight changes in
    Python each step trains differently replayed."""
    from i2i_cyclegan.recipe import CycleGANStep

    monkeypatch.setattr(CycleGANStep, "prepare_batch", lambda self, batch: batch)
    step = _cyclegan_step(pool_size=2)
    wrapper = GraphedTrainStep(step, warmup=3)  # the pools are full when it captures
    with pytest.warns(RuntimeWarning, match="read back to the host"):
        for s in range(4):
            wrapper({k: v[:1] for k, v in _batch(s).items()})
    assert wrapper.failure is not None

    class Counting(Pix2PixStep):
        graph_capturable = True

        def train_step(self, batch):
            self.calls = getattr(self, "calls", 0) + 1  # a Python decision per step
            return super().train_step({**batch, "target": batch["target"] / self.calls})

    batches = [_batch(s) for s in range(4)]
    eager, graphed, wrapper, want, got = _train_alike(
        lambda: _fused_pix2pix_step(Counting), batches
    )
    assert wrapper.captures == 1
    with pytest.raises(AssertionError):
        _assert_same_training(eager, graphed, want, got)
