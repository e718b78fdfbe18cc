"""The pix2pix step: what each network's gradient is, and what each update touches."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from i2i.engine.step import Pix2PixStep
from i2i.losses import Objective
from i2i.models import patch16
from tests.test_engine_fixtures import (  # noqa: F401 (one_thread is a fixture)
    one_thread,
    tiny_catalog,
    tiny_unet,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _nets(seed=0, *, d_in=6):
    torch.manual_seed(seed)
    return tiny_unet(3, 3, ngf=4, dropout=False), patch16(d_in, ndf=4)


def _batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    return {
        "input": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1,
        "target": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1,
    }


def _step(gen, disc, *, lr_g=0.0, lr_d=0.0, objective="gan=1,l1=100", **kw):
    obj = Objective.parse(objective, tiny_catalog().losses)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr_g)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr_d) if disc is not None else None
    return Pix2PixStep(gen, disc, obj, opt_g, opt_d, **kw)


def _grads(module):
    return [p.grad.clone() for p in module.parameters()]


def test_discriminator_gradient_is_half_the_gan_loss():
    gen, disc = _nets()
    ref_g, ref_d = copy.deepcopy(gen), copy.deepcopy(disc)
    batch = _batch()
    _step(gen, disc).train_step(batch)  # lr 0: weights stay, gradients are left in .grad

    x, y = batch["input"], batch["target"]
    fake = ref_g(x).detach()
    real_logits = ref_d(torch.cat([x, y], 1))
    fake_logits = ref_d(torch.cat([x, fake], 1))
    loss = 0.5 * (
        F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    )
    loss.backward()
    for got, want in zip(_grads(disc), _grads(ref_d), strict=True):
        torch.testing.assert_close(got, want)


def test_generator_gradient_is_non_saturating_gan_plus_lambda_l1():
    gen, disc = _nets()
    ref_g, ref_d = copy.deepcopy(gen), copy.deepcopy(disc)
    batch = _batch()
    losses = _step(gen, disc).train_step(batch)

    x, y = batch["input"], batch["target"]
    ref_d(torch.cat([x, y], 1))  # keep D's BatchNorm statistics in step with the real run
    ref_d(torch.cat([x, ref_g(x).detach()], 1))
    fake = ref_g(x)
    logits = ref_d(torch.cat([x, fake], 1))
    gan = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))  # -log D(G(x))
    l1 = (fake - y).abs().mean()
    (gan + 100 * l1).backward()
    for got, want in zip(_grads(gen), _grads(ref_g), strict=True):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(losses["g_gan"], gan.detach())
    torch.testing.assert_close(losses["g_l1"], 100 * l1.detach())


def test_generator_step_leaves_discriminator_untouched():
    gen, disc = _nets()
    step = _step(gen, disc, lr_g=1e-2, lr_d=0.0)
    before = copy.deepcopy(disc.state_dict())
    d_grads = None
    losses = step.train_step(_batch())
    d_grads = _grads(disc)
    for key, value in disc.state_dict().items():
        if "running" in key or "num_batches" in key:
            continue  # BatchNorm statistics move with every forward pass
        assert torch.equal(value, before[key]), key
    assert all(p.requires_grad for p in disc.parameters())  # unfrozen again after the G step
    # D's gradients are exactly those of its own step (the G step added none): same as a fresh run
    gen2, disc2 = _nets()
    _step(gen2, disc2).train_step(_batch())
    for got, want in zip(d_grads, _grads(disc2), strict=True):
        torch.testing.assert_close(got, want)
    assert set(losses) == {"d_loss", "d_gan", "g_loss", "g_gan", "g_l1"}
    assert all(not v.requires_grad and v.ndim == 0 for v in losses.values())
    torch.testing.assert_close(losses["g_loss"], losses["g_gan"] + losses["g_l1"])


def test_updates_change_both_networks():
    gen, disc = _nets()
    g0, d0 = copy.deepcopy(gen), copy.deepcopy(disc)
    _step(gen, disc, lr_g=1e-3, lr_d=1e-3).train_step(_batch())
    assert any(
        not torch.equal(a, b) for a, b in zip(gen.parameters(), g0.parameters(), strict=True)
    )
    assert any(
        not torch.equal(a, b) for a, b in zip(disc.parameters(), d0.parameters(), strict=True)
    )


def test_reconstruction_only_objective_needs_no_discriminator():
    gen, _ = _nets()
    losses = _step(gen, None, lr_g=1e-3, objective="l1=1").train_step(_batch())
    assert set(losses) == {"g_loss", "g_l1"}


def test_unconditional_discriminator_sees_the_output_only():
    gen, disc = _nets(d_in=3)
    losses = _step(gen, disc, conditional=False).train_step(_batch())
    assert torch.isfinite(losses["d_loss"])


def test_bf16_autocast_on_cpu_and_channels_last():
    gen, disc = _nets()
    gen, disc = (
        gen.to(memory_format=torch.channels_last),
        disc.to(memory_format=torch.channels_last),
    )
    losses = _step(
        gen, disc, lr_g=1e-3, lr_d=1e-3, precision="bf16", channels_last=True
    ).train_step(_batch())
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in losses.values())
    assert all(p.dtype == torch.float32 for p in gen.parameters())


def test_state_dict_round_trip():
    gen, disc = _nets()
    step = _step(gen, disc, lr_g=1e-3, lr_d=1e-3)
    step.train_step(_batch())
    state = step.state_dict()
    gen2, disc2 = _nets()
    step2 = _step(gen2, disc2, lr_g=1e-3, lr_d=1e-3)
    step2.load_state_dict(state)
    assert step2.opt_g.state_dict()["state"][0]["step"] == 1
    with pytest.raises(ValueError, match="together"):
        Pix2PixStep(gen, disc, step.objective, step.opt_g, None)
