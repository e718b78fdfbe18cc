"""bf16 weight copies kept by Adam: the same training as bf16 autocast, checkpoints unchanged."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from i2i.engine import checkpoint as ck
from i2i.engine.bf16_copies import Bf16CopyAdam, Bf16WeightCopies, fused_update
from i2i.engine.devices import keeps_bf16_weight_copies
from i2i.engine.flat_adam import FlatFusedAdam
from i2i.engine.runner import train
from i2i.engine.step import Pix2PixStep
from i2i.losses import Objective
from i2i.models import patch16
from tests.test_engine_fixtures import (  # noqa: F401 (one_thread is a fixture)
    one_thread,
    tiny_catalog,
    tiny_config,
    tiny_unet,
    write_ab_data,
)

pytestmark = pytest.mark.usefixtures("one_thread")
CL = torch.channels_last
BETAS = (0.5, 0.999)


def _nets():
    torch.manual_seed(0)
    gen = tiny_unet(3, 3, ngf=8, dropout=False).to(memory_format=CL)
    return gen, patch16(6, ndf=8).to(memory_format=CL)


def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for k in ("input", "target")}


def _train(adam, steps: int = 3) -> dict[str, torch.Tensor]:
    """``steps`` bf16 pix2pix steps of the tiny nets with ``adam(module)`` as each optimizer."""
    gen, disc = _nets()
    obj = Objective.parse("gan=1,l1=100", tiny_catalog().losses)
    step = Pix2PixStep(gen, disc, obj, adam(gen), adam(disc), precision="bf16", channels_last=True)
    for i in range(steps):
        step.train_step(_batch(i))
    return {
        f"{role}.{k}": v for role, m in step.modules().items() for k, v in m.state_dict().items()
    }


def _plain(module):
    return FlatFusedAdam(module.parameters(), lr=1e-3, betas=BETAS, fused=True)


def _with_copies(compile_min_weights):
    def adam(module):
        copies = Bf16WeightCopies([module])
        return Bf16CopyAdam(
            module.parameters(),
            copies,
            lr=1e-3,
            betas=BETAS,
            fused=True,
            compile_min_weights=compile_min_weights,
        )

    return adam


def test_training_with_uncompiled_copies_is_bf16_autocast_training_exactly():
    want = _train(_plain)
    got = _train(_with_copies(compile_min_weights=None))
    assert want.keys() == got.keys()
    changed = [k for k in want if not torch.equal(want[k], got[k])]
    assert changed == []


def test_the_compiled_update_is_adams_update():
    """One training step (the same gradients both ways), then Adam alone over several steps:
    later training steps differ by more only because early Adam steps move every weight by
    about lr whatever its gradient's size, so a last-bit difference can flip a tiny one."""
    if fused_update() is None:
        pytest.skip("inductor cannot compile here (no C++ compiler): the uncompiled path runs")
    start = _train(_plain, steps=0)
    want = _train(_plain, steps=1)
    got = _train(_with_copies(compile_min_weights=0), steps=1)
    assert any(not torch.equal(want[k], start[k]) for k in want)  # the step did train
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-6, atol=1e-7, msg=k)

    torch.manual_seed(1)
    w = torch.randn(8, 4, 3, 3).contiguous(memory_format=CL)
    a, b = torch.nn.Parameter(w.clone()), torch.nn.Parameter(w.clone())
    conv_b = torch.nn.Conv2d(4, 8, 3)
    conv_b.weight = b
    copies = Bf16WeightCopies([conv_b])
    opts = [
        FlatFusedAdam([a], lr=1e-2, betas=BETAS, fused=True),
        Bf16CopyAdam([b], copies, lr=1e-2, betas=BETAS, fused=True, compile_min_weights=0),
    ]
    for _ in range(5):
        g = torch.randn(8, 4, 3, 3).to(torch.bfloat16).contiguous(memory_format=CL)
        a.grad = g.float()
        with torch.autocast("cpu", torch.bfloat16):
            conv_b(torch.zeros(1, 4, 5, 5))  # makes the copy
        copies.copy_of(b).grad = g
        for opt in opts:
            opt.step()
            opt.zero_grad()
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)  # float rounding, 5 steps
    assert torch.equal(copies.copy_of(b), b.detach().to(torch.bfloat16))
    assert b.is_contiguous(memory_format=CL)


def test_a_training_does_not_depend_on_what_the_process_compiled_before():
    """Whether an optimizer's update is compiled follows its own size alone: a small model
    trains the same in a fresh process as after a large one compiled the update (the compiled
    and the uncompiled update round differently, and a GAN carries a last-bit difference on)."""
    if fused_update() is None:
        pytest.skip("inductor cannot compile here (no C++ compiler): the uncompiled path runs")
    adam = _with_copies(compile_min_weights=10**9)  # neither tiny net is large enough
    fused_update.cache_clear()  # as in a fresh process: nothing compiled yet
    fresh = _train(adam, steps=3)
    assert fused_update() is not None  # as a large model trained earlier in the process does
    after = _train(adam, steps=3)
    assert [k for k in fresh if not torch.equal(fresh[k], after[k])] == []


def test_the_copy_follows_weights_changed_from_outside_and_fp32_runs_without_it():
    conv = torch.nn.Conv2d(3, 4, 3)
    copies = Bf16WeightCopies([conv])
    x = torch.randn(1, 3, 8, 8)
    with torch.autocast("cpu", torch.bfloat16):
        conv(x)
    other = torch.nn.Conv2d(3, 4, 3)
    conv.load_state_dict(other.state_dict())  # e.g. a checkpoint loaded into the module
    with torch.autocast("cpu", torch.bfloat16):
        got, want = conv(x), other(x)
    assert torch.equal(got, want)
    assert torch.equal(copies.copy_of(conv.weight), other.weight.to(torch.bfloat16))
    assert torch.equal(conv(x), other(x))  # outside autocast: the fp32 weight
    assert conv.weight is conv._parameters["weight"]  # the hooks put the weight back


def test_frozen_weights_get_no_gradient_and_a_failed_forward_puts_the_weight_back():
    conv = torch.nn.Conv2d(3, 4, 3)
    copies = Bf16WeightCopies([conv])
    conv.weight.requires_grad_(False)
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    with torch.autocast("cpu", torch.bfloat16):
        conv(x).float().sum().backward()
    assert x.grad is not None and copies.grad_of(conv.weight) is None
    with pytest.raises(RuntimeError), torch.autocast("cpu", torch.bfloat16):
        conv(torch.randn(1, 5, 8, 8))
    assert conv._parameters["weight"] is conv.weight and conv.weight.dtype == torch.float32


def test_a_deep_copied_module_computes_with_its_own_weights():
    conv = torch.nn.Conv2d(3, 4, 3)
    Bf16WeightCopies([conv])
    twin = copy.deepcopy(conv)
    with torch.no_grad():
        twin.weight.mul_(2)
    x = torch.randn(1, 3, 8, 8)
    with torch.autocast("cpu", torch.bfloat16):
        doubled = twin(x)
        ref = torch.nn.functional.conv2d(x, twin.weight, twin.bias)
    assert torch.equal(doubled, ref)


def test_the_optimizer_state_is_plain_adams_both_ways():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    copies = Bf16WeightCopies([net])
    opt = Bf16CopyAdam(net.parameters(), copies, lr=1e-3, betas=BETAS, fused=True)
    for _ in range(2):
        opt.zero_grad()
        with torch.autocast("cpu", torch.bfloat16):
            net(torch.randn(2, 3, 8, 8)).float().square().mean().backward()
        opt.step()
    plain = torch.optim.Adam(net.parameters(), lr=1e-3, betas=BETAS)
    plain.load_state_dict(opt.state_dict())
    assert [int(s["step"]) for s in plain.state_dict()["state"].values()] == [2, 2, 2, 2]
    again = Bf16CopyAdam(net.parameters(), Bf16WeightCopies([]), lr=1e-3, fused=True)
    again.load_state_dict(plain.state_dict())
    assert again.state_dict()["state"][0]["exp_avg"].shape == (4, 3, 3, 3)


def test_the_decision_is_cpu_bf16_single_process_eager_only():
    cpu = torch.device("cpu")
    assert keeps_bf16_weight_copies(cpu, "bf16")
    assert not keeps_bf16_weight_copies(cpu, "fp32")
    assert not keeps_bf16_weight_copies(cpu, "bf16", distributed=True)
    assert not keeps_bf16_weight_copies(cpu, "bf16", compiled=True)
    assert not keeps_bf16_weight_copies(torch.device("meta"), "bf16")


def test_a_bf16_run_keeps_copies_records_it_and_resumes_without_them(tmp_path):
    catalog = tiny_catalog()
    data = write_ab_data(tmp_path / "data", n_train=2, n_val=1)
    cfg = tiny_config(catalog, data, tmp_path / "run", precision="bf16", max_steps=2)
    run = train(cfg, catalog=catalog, quiet=True)
    resolved = json.loads((run / "resolved.json").read_text())
    assert resolved["precision"] == "bf16" and resolved["bf16_weight_copies"] is True
    saved = ck.load_checkpoint(run)
    weights = [t for t in saved.generator_state.values() if t.is_floating_point()]
    assert weights and all(t.dtype == torch.float32 for t in weights)
    resumed = train(
        cfg.replace(max_steps=3, bf16_weight_copies=False), catalog=catalog, resume=run, quiet=True
    )
    assert ck.load_checkpoint(resumed).step == 3
    assert json.loads((run / "resolved.json").read_text())["bf16_weight_copies"] is False


def test_layers_sharing_a_weight_share_its_copy_and_train_as_with_autocast():
    def tied_net():
        torch.manual_seed(3)
        first, second = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
        second.weight = first.weight
        return torch.nn.Sequential(first, torch.nn.ReLU(), second)

    def trained(copies: bool):
        net = tied_net()
        if copies:
            opt = _with_copies(compile_min_weights=None)(net)
            assert len(opt.copies) == 1
        else:
            opt = _plain(net)
        x = torch.randn(4, 8, generator=torch.Generator().manual_seed(4))
        for _ in range(2):
            opt.zero_grad()
            with torch.autocast("cpu", torch.bfloat16):
                net(x).float().square().mean().backward()
            opt.step()
        return net.state_dict()

    want, got = trained(False), trained(True)
    assert all(torch.equal(want[k], got[k]) for k in want)


def test_cyclegan_trains_in_bf16_with_copies_of_all_four_networks(tmp_path):
    from click.testing import CliRunner

    from i2i.cli import build_cli
    from i2i.data.io import write_image
    from i2i.plugins import make_plugin_manager

    gen = torch.Generator().manual_seed(0)
    for folder in ("trainA", "trainB"):
        for i in range(2):
            write_image(torch.rand(3, 32, 32, generator=gen), tmp_path / "d" / folder / f"{i}.png")
    run = tmp_path / "run"
    result = CliRunner().invoke(
        build_cli(make_plugin_manager(load_entrypoints=False)),
        ["run", "--task", "photo2cartoon", "--data", str(tmp_path / "d"), "--out", str(run),
         "--max-steps", "2", "--crop-size", "32", "--gen-opt", "ngf=4", "--disc-opt", "ndf=4",
         "--device", "cpu", "--precision", "bf16", "--num-workers", "0", "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((run / "resolved.json").read_text())["bf16_weight_copies"] is True
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_losses = [v for r in records if r["kind"] == "train" for k, v in r.items() if "loss" in k]
    assert train_losses and all(math.isfinite(v) for v in train_losses)
