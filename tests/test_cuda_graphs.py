"""Inference replayed as CUDA graphs gives what the eager forward gives.

The GPU tests need a CUDA device (CI has none; `benchmarks/gpu_session.sh` runs them on a lent
GPU); the CPU tests check that nothing changes where graphs do not apply.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from i2i import Task
from i2i.inference.cuda_graphs import GraphedForward
from i2i.inference.translator import Translator
from i2i.models import UNetGenerator

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TASK = Task(summary="photo to photo", in_channels=3, out_channels=3, layout="aligned")


def _unet() -> torch.nn.Module:
    torch.manual_seed(0)
    return UNetGenerator(3, 3, num_downs=6, ngf=8, norm="batch", dropout=True)  # dropout inside


def _translator(device: str, *, cuda_graphs: bool | None, mode: str = "eval", **kw) -> Translator:
    return Translator(
        _unet(), TASK, mode=mode, device=device, cuda_graphs=cuda_graphs, seed=3, **kw
    )


def test_on_the_cpu_graphs_asked_for_change_nothing():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    asked = _translator("cpu", cuda_graphs=True, precision="fp32")
    plain = _translator("cpu", cuda_graphs=False, precision="fp32")
    assert not asked.uses_cuda_graphs and "CUDA graphs" not in asked.describe_speed()
    assert torch.equal(asked.run(x), plain.run(x))


def test_a_graphed_function_refuses_an_empty_cache():
    with pytest.raises(ValueError, match="max_graphs"):
        GraphedForward(lambda x: x, max_graphs=0)


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("mode", ["eval", "paper"])
def test_graphed_translation_equals_the_eager_one(precision, mode):
    torch.backends.cudnn.deterministic = True
    try:
        graphed = _translator("cuda", cuda_graphs=True, precision=precision, mode=mode)
        eager = _translator("cuda", cuda_graphs=False, precision=precision, mode=mode)
        assert graphed.uses_cuda_graphs and "CUDA graphs" in graphed.describe_speed()
        tol = 1e-4 if precision == "fp32" else 2e-2
        for seed in range(3):  # new inputs of one shape: one graph, replayed
            x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1
            want, got = eager.run(x), graphed.run(x)
            assert torch.allclose(got, want, atol=tol), (seed, (got - want).abs().max())
            assert torch.equal(graphed.run(x), got)  # the same input (and seed) again
        assert graphed._graphed.shapes == [(2, 3, 64, 64)]
    finally:
        torch.backends.cudnn.deterministic = False


@needs_cuda
def test_each_input_size_gets_its_graph_and_old_ones_are_dropped():
    tr = _translator("cuda", cuda_graphs=True, precision="fp32")
    eager = _translator("cuda", cuda_graphs=False, precision="fp32")
    tr._graphed.max_graphs = 2
    for size in (64, 128, 192, 64):
        x = torch.rand(1, 3, size, size) * 2 - 1
        assert torch.allclose(tr.run(x), eager.run(x), atol=1e-4)
    assert tr._graphed.shapes == [(1, 3, 192, 192), (1, 3, 64, 64)]
    tr.mode = "paper"  # another test mode: another graph, with dropout
    eager.mode = "paper"
    x = torch.rand(2, 3, 64, 64) * 2 - 1  # batch 2: batch statistics of more than one pixel
    assert torch.allclose(tr.run(x), eager.run(x), atol=1e-4)


class _WaitsForTheGpu(torch.nn.Module):
    """A generator whose forward reads a value back to the host, which a capture forbids."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = float(x.abs().amax())  # a host sync
        return self.conv(x) / max(scale, 1.0)


@needs_cuda
def test_a_forward_that_cannot_be_captured_runs_eagerly_with_one_warning():
    torch.manual_seed(0)
    net = _WaitsForTheGpu()
    reference = copy.deepcopy(net)  # stays on the CPU
    tr = Translator(net, TASK, mode="eval", device="cuda", precision="fp32", cuda_graphs=True)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with pytest.warns(RuntimeWarning, match="could not be captured as a CUDA graph"):
        got = tr.run(x)
    with torch.no_grad():
        torch.testing.assert_close(got.cpu(), reference(x), atol=1e-4, rtol=0)
        assert not tr.uses_cuda_graphs and "CUDA graphs" not in tr.describe_speed()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no second warning, no second attempt
            got = tr.run(x * 0.5)
        torch.testing.assert_close(got.cpu(), reference(x * 0.5), atol=1e-4, rtol=0)


# --- whole training steps ------------------------------------------------------------------


def _train_step(device: str, *, dropout: bool, seed: int = 0):
    from i2i.engine.devices import make_adam
    from i2i.engine.step import Pix2PixStep
    from i2i.losses import Objective
    from i2i.models import patch16
    from tests.test_engine_fixtures import tiny_catalog

    torch.manual_seed(seed)
    gen = UNetGenerator(3, 3, num_downs=5, ngf=8, norm="batch", dropout=dropout).to(device)
    disc = patch16(6, ndf=8).to(device)
    dev = torch.device(device)
    obj = Objective.parse("gan=1,l1=100", tiny_catalog().losses).to(device)
    adam = {"lr": 2e-4, "betas": (0.5, 0.999), "device": dev}
    return Pix2PixStep(
        gen, disc, obj, make_adam(gen.parameters(), **adam), make_adam(disc.parameters(), **adam),
        device=dev,
    )  # fmt: skip


def _train_batch(seed: int, batch: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "input": torch.rand(batch, 3, 64, 64, generator=g) * 2 - 1,
        "target": torch.rand(batch, 3, 64, 64, generator=g) * 2 - 1,
    }


@needs_cuda
@pytest.mark.parametrize("dropout", [False, True])
def test_a_graphed_training_step_trains_as_the_eager_one(dropout):
    from i2i.engine.graphed_step import GraphedTrainStep

    torch.backends.cudnn.deterministic = True
    try:
        eager, graphed_step = (
            _train_step("cuda", dropout=dropout),
            _train_step("cuda", dropout=dropout),
        )
        graphed = GraphedTrainStep(graphed_step, warmup=2)
        torch.manual_seed(5)
        want = [eager.train_step(_train_batch(s)) for s in range(8)]
        torch.manual_seed(5)
        got = [graphed(_train_batch(s)) for s in range(8)]
        assert graphed.captures == 1 and graphed.failure is None
        for w, g in zip(want, got, strict=True):
            for k in w:
                torch.testing.assert_close(g[k], w[k], atol=1e-4, rtol=1e-4)
        for a, b in zip(
            eager.generator.state_dict().values(),
            graphed_step.generator.state_dict().values(),
            strict=True,
        ):
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
        groups = graphed_step.opt_g.state_dict()["param_groups"]
        assert not any(g.get("capturable") for g in groups)  # checkpoints load on the CPU
    finally:
        torch.backends.cudnn.deterministic = False


@needs_cuda
def test_a_graphed_cyclegan_step_trains_as_the_eager_one_pools_included():
    """CycleGAN's pools draw on the host before each replay (``prepare_batch``) and the
    graph swaps the images in its bank: the same losses, weights and pooled images."""
    from i2i import RecipeSetup
    from i2i.catalog import Catalog
    from i2i.config import resolve_config
    from i2i.engine.graphed_step import GraphedTrainStep
    from i2i.plugins import make_plugin_manager

    catalog = Catalog.from_plugin_manager(make_plugin_manager())
    cfg = resolve_config(
        catalog, "facades", recipe="cyclegan", generator="resnet_6blocks",
        generator_kwargs={"ngf": 8}, discriminator="patch16", discriminator_kwargs={"ndf": 8},
        crop_size=64, load_size=72, device="cuda", precision="fp32",
        recipe_options={"pool_size": 3},
    )  # fmt: skip
    task = catalog.tasks.get("facades").obj

    def build():
        torch.manual_seed(0)
        setup = RecipeSetup.for_run(
            cfg, task=task, catalog=catalog, device=torch.device("cuda"), precision="fp32"
        )
        return catalog.recipes.get("cyclegan").obj.build(setup)

    torch.backends.cudnn.deterministic = True
    try:
        eager, graphed_step = build(), build()
        graphed = GraphedTrainStep(graphed_step, warmup=2)
        batches = [_train_batch(s, batch=1) for s in range(10)]  # full pools from step 4
        want = [eager.train_step(b) for b in batches]
        got = [graphed(b) for b in batches]
        assert graphed.captures == 1 and graphed.failure is None
        for w, g in zip(want, got, strict=True):
            for k in w:
                torch.testing.assert_close(g[k], w[k], atol=1e-4, rtol=1e-4)
        for role, module in eager.modules().items():
            for a, b in zip(
                module.state_dict().values(),
                graphed_step.modules()[role].state_dict().values(),
                strict=True,
            ):
                torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
        for judge, pool in eager.pools.items():
            for a, b in zip(pool.images, graphed_step.pools[judge].images, strict=True):
                torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
    finally:
        torch.backends.cudnn.deterministic = False


@needs_cuda
def test_a_new_learning_rate_or_batch_shape_captures_again():
    from i2i.engine.graphed_step import GraphedTrainStep

    step = _train_step("cuda", dropout=False)
    graphed = GraphedTrainStep(step, warmup=1)
    for s in range(3):
        graphed(_train_batch(s))
    assert graphed.captures == 1
    for group in step.opt_g.param_groups:
        group["lr"] = 0.0  # as the schedule does at an epoch's end
    before = [p.detach().clone() for p in step.generator.parameters()]
    graphed(_train_batch(3))
    assert graphed.captures == 2
    assert all(torch.equal(a, b) for a, b in zip(before, step.generator.parameters(), strict=True))
    graphed(_train_batch(4, batch=1))  # a last, smaller batch: eager first, then its own graph
    graphed(_train_batch(5, batch=1))
    assert graphed.captures == 3
    losses = graphed(_train_batch(6))  # the first shape's graph is still there
    assert graphed.captures == 3 and torch.isfinite(losses["g_loss"])


@needs_cuda
def test_a_training_step_that_cannot_be_captured_runs_eagerly_with_one_warning():
    from i2i.engine.graphed_step import GraphedTrainStep

    class ReadsBack:
        graph_capturable = True  # wrongly: it reads a value back to the host
        device = torch.device("cuda")

        def __init__(self):
            self.w = torch.nn.Parameter(torch.ones(3, device="cuda"))
            self.opt = torch.optim.Adam([self.w], lr=0.1, fused=True)

        def optimizers(self):
            return {"w": self.opt}

        def modules(self):
            return {}

        def train_step(self, batch):
            self.opt.zero_grad()
            x = torch.nn.functional.dropout(batch["input"].to("cuda"), 0.5)  # draws numbers
            loss = (self.w * x).sum()
            loss = loss / max(float(loss.detach()), 1.0)  # a host sync
            loss.backward()
            self.opt.step()
            return {"loss": loss.detach()}

    step = ReadsBack()
    graphed = GraphedTrainStep(step, warmup=1)
    graphed({"input": torch.ones(3)})
    with pytest.warns(RuntimeWarning, match="could not be captured as a CUDA graph"):
        graphed({"input": torch.ones(3)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, no second attempt
        graphed({"input": torch.ones(3)})
    assert graphed.failure is not None and graphed.captures == 0
    assert step.opt.state[step.w]["step"].item() == 3  # every call trained once
    torch.rand(3, device="cuda")  # the failed capture left the random generator usable
    assert torch.cuda.current_stream() == torch.cuda.default_stream()  # and the stream


@needs_cuda
def test_i2i_run_trains_with_cuda_graphs_and_dataloader_workers(tmp_path):
    """The whole engine path: pinned batches from worker processes, validation and saving
    between replays, a resume that captures again."""
    from click.testing import CliRunner

    from i2i.cli import build_cli
    from i2i.engine import checkpoint as ck
    from i2i.plugins import make_plugin_manager
    from tests.test_engine_fixtures import TinyPlugin, write_ab_data

    cli = build_cli(make_plugin_manager(load_entrypoints=False, plugins=(TinyPlugin(),)))
    data, out = write_ab_data(tmp_path / "data", n_train=4, n_val=2), tmp_path / "r"
    args = [
        "run",
        "--task",
        "demo",
        "--data",
        data,
        "--out",
        out,
        "--gen",
        "tiny_unet",
        "--disc",
        "patch16",
        "--load-size",
        "36",
        "--crop-size",
        "32",
        "--device",
        "cuda",
        "--num-workers",
        "2",
        "--batch-size",
        "2",
        "--epochs",
        "1",
        "--epochs-decay",
        "2",
        "--cuda-graphs",
    ]  # fmt: skip (3 epochs of 2 steps; the decay changes the rate twice)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert not [w for w in caught if "could not be captured" in str(w.message)]
    assert "CUDA graphs" in result.output
    assert ck.load_checkpoint(out).step == 6
    assert (out / "resolved.json").read_text().count('"cuda_graphs": true') == 1
    more = CliRunner().invoke(cli, ["run", "--resume", str(out), "--epochs-decay", "4"])
    assert more.exit_code == 0, more.output
    assert ck.load_checkpoint(out).step == 10


@needs_cuda
def test_after_a_failed_capture_with_dropout_random_numbers_still_work():
    """PyTorch leaves the generator marked as capturing when a capture fails; i2i restores it."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.dropout(x, 0.5)
        return y / max(float(y.abs().amax()), 1.0)  # a host sync: the capture fails

    graphed = GraphedForward(forward, warmup=1)
    x = torch.ones(4, 8, device="cuda")
    with pytest.warns(RuntimeWarning, match="could not be captured"):
        graphed(x)
    torch.manual_seed(1)
    a = graphed(x)
    torch.manual_seed(1)
    assert torch.equal(graphed(x), a) and graphed.failure is not None
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
    assert "operation not permitted" in graphed.failure or "capturing" in graphed.failure
