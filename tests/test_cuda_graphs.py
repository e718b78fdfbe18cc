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
