"""Adversarial and reconstruction losses, and the weighted Objective."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from i2i.losses import (
    GANLoss,
    HingeLoss,
    L1Loss,
    L2Loss,
    LSGANLoss,
    Objective,
    ObjectiveError,
    Term,
    WGANGPLoss,
)
from i2i.registry import UnknownComponentError

LOG2 = math.log(2.0)


def full(v: float, shape=(2, 1, 3, 3)) -> torch.Tensor:
    return torch.full(shape, float(v))


# --- adversarial losses --------------------------------------------------------------------


def test_gan_loss_values():
    loss = GANLoss()
    assert loss.discriminator_loss(full(0), full(0)).item() == pytest.approx(2 * LOG2)
    assert loss.generator_loss(full(0)).item() == pytest.approx(LOG2)
    # BCE(x, 1) = softplus(-x); BCE(x, 0) = softplus(x)
    sp = nn.functional.softplus
    expected = sp(torch.tensor(-2.0)) + sp(torch.tensor(-1.0))
    assert loss.discriminator_loss(full(2), full(-1)).item() == pytest.approx(expected.item())


def test_gan_generator_loss_is_non_saturating():
    """-log D(G(z)): a confident D (very negative fake logits) still gives G a strong gradient."""
    fake = full(-10).requires_grad_()
    GANLoss().generator_loss(fake).backward()
    per_element = fake.grad.abs().mean().item() * fake.numel()
    assert per_element == pytest.approx(1.0, abs=1e-3)  # saturating log(1 - D) would give ~4.5e-5


def test_lsgan_values():
    loss = LSGANLoss()
    assert loss.discriminator_loss(full(1), full(0)).item() == 0.0
    assert loss.discriminator_loss(full(0), full(1)).item() == pytest.approx(2.0)
    assert loss.generator_loss(full(3)).item() == pytest.approx(4.0)


def test_hinge_values():
    loss = HingeLoss()
    assert loss.discriminator_loss(full(1.5), full(-2)).item() == 0.0
    assert loss.discriminator_loss(full(0.5), full(0)).item() == pytest.approx(1.5)
    assert loss.generator_loss(full(2)).item() == pytest.approx(-2.0)


def test_wgan_values():
    loss = WGANGPLoss()
    assert loss.discriminator_loss(full(1), full(-2)).item() == pytest.approx(-3.0)
    assert loss.generator_loss(full(2)).item() == pytest.approx(-2.0)


class LinearCritic(nn.Module):
    """D(x) = <w, x> per sample, so grad_x D = w exactly."""

    def __init__(self, norm: float):
        super().__init__()
        w = torch.randn(1, 3, 4, 4)
        self.w = nn.Parameter(w / w.norm() * norm)

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1).view(-1, 1, 1, 1)


@pytest.mark.parametrize(
    "norm, lam, expected", [(1.0, 10.0, 0.0), (2.0, 10.0, 10.0), (3.0, 5.0, 20.0)]
)
def test_gradient_penalty_value(norm, lam, expected):
    critic = LinearCritic(norm)
    gp = WGANGPLoss(lambda_gp=lam).penalty(critic, torch.rand(4, 3, 4, 4), torch.rand(4, 3, 4, 4))
    assert gp.item() == pytest.approx(expected, abs=1e-4)


def test_gradient_penalty_trains_d_not_g():
    critic = LinearCritic(2.0)
    gen = nn.Conv2d(3, 3, 1)
    fake = gen(torch.rand(2, 3, 4, 4))
    gp = WGANGPLoss().penalty(critic, torch.rand(2, 3, 4, 4), fake)
    gp.backward()
    assert critic.w.grad is not None and critic.w.grad.abs().sum() > 0
    assert gen.weight.grad is None


def test_gradient_penalty_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\) and \(1, 3, 4, 4\)"):
        WGANGPLoss().penalty(LinearCritic(1), torch.rand(2, 3, 4, 4), torch.rand(1, 3, 4, 4))


def test_negative_gp_weight_rejected():
    with pytest.raises(ValueError, match="lambda_gp"):
        WGANGPLoss(lambda_gp=-1)


def test_only_wgan_gp_has_a_penalty():
    d = LinearCritic(1)
    x = torch.rand(1, 3, 4, 4)
    for loss in (GANLoss(), LSGANLoss(), HingeLoss()):
        assert loss.penalty(d, x, x) is None


# --- reconstruction losses -----------------------------------------------------------------


def test_reconstruction_values():
    a, b = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    assert L1Loss()(a, b).item() == pytest.approx(0.5)
    assert L2Loss()(a, b).item() == pytest.approx(0.25)


@pytest.mark.parametrize("loss", [L1Loss(), L2Loss()])
def test_reconstruction_refuses_broadcasting(loss):
    with pytest.raises(ValueError, match=r"fake \(2, 3, 4, 4\) and target \(2, 1, 4, 4\)"):
        loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 1, 4, 4))


def test_registered_with_types(catalog):
    types = {e.name: e.meta.get("type") for e in catalog.losses}
    assert types["gan"] == types["lsgan"] == types["hinge"] == types["wgan_gp"] == "adversarial"
    assert types["l1"] == types["l2"] == "reconstruction"


# --- Objective -----------------------------------------------------------------------------


def test_parse_the_paper_objective(catalog):
    obj = Objective.parse(" gan = 1 , l1=100 ", catalog.losses)
    assert obj.weights() == {"gan": 1.0, "l1": 100.0}
    assert obj.spec == "gan=1,l1=100"
    assert obj.adversarial.name == "gan" and isinstance(obj.adversarial.loss, GANLoss)
    assert [t.name for t in obj.reconstruction] == ["l1"]
    assert obj.needs_discriminator


def test_parse_bare_name_and_reconstruction_only(catalog):
    obj = Objective.parse("l1", catalog.losses)
    assert obj.weights() == {"l1": 1.0} and not obj.needs_discriminator


def test_from_weights(catalog):
    obj = Objective.from_weights({"hinge": 0.5, "l2": 10}, catalog.losses)
    assert obj.spec == "hinge=0.5,l2=10"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty objective"),
        ("gan=1,,l1=100", "has an empty term"),
        ("gan 1", "is not 'name=weight'"),
        ("=1", "is not 'name=weight'"),
        ("gan=x", "weight 'x' of 'gan' in objective 'gan=x' is not a number"),
        ("l1=1=2", "is not a number"),
        ("gan=-1", "weight of 'gan' must be a finite number >= 0, got -1.0"),
        ("gan=inf", "finite number"),
        ("gan=1,lsgan=1", "at most one adversarial term, got gan, lsgan"),
        ("l1=1,l1=2", "names 'l1' twice"),
    ],
)
def test_parse_errors(catalog, spec, message):
    with pytest.raises(ObjectiveError, match=message):
        Objective.parse(spec, catalog.losses)


def test_parse_unknown_name_uses_registry_error(catalog):
    with pytest.raises(UnknownComponentError, match="Did you mean 'l1'"):
        Objective.parse("gan=1,l11=100", catalog.losses)


def test_loss_without_type_is_rejected(catalog):
    catalog.losses.add("untyped", L1Loss, provider="test")
    with pytest.raises(ObjectiveError, match="'untyped'.*without type="):
        Objective.parse("untyped=1", catalog.losses)


def test_direct_construction_checks():
    with pytest.raises(ObjectiveError, match="at least one term"):
        Objective([])
    with pytest.raises(ObjectiveError, match="must be an i2i.losses.AdversarialLoss"):
        Objective([Term("fake_adv", 1.0, "adversarial", L1Loss())])


class ConstantD(nn.Module):
    """Logits = scale * mean of the input, per sample, on a 2x2 grid."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        return (self.scale * x.mean(dim=(1, 2, 3))).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)


def test_discriminator_loss_is_halved_weighted_and_detaches_fake(catalog):
    obj = Objective.parse("lsgan=2,l1=100", catalog.losses)
    d, gen = ConstantD(), nn.Conv2d(6, 6, 1)
    real_in = torch.full((2, 6, 4, 4), 0.5)
    fake_in = gen(torch.full((2, 6, 4, 4), -0.25))
    loss, parts = obj.discriminator_loss(d, real_in, fake_in)
    expected = 0.5 * 2 * LSGANLoss().discriminator_loss(d(real_in), d(fake_in)).item()
    assert loss.item() == pytest.approx(expected)
    assert set(parts) == {"d_lsgan"} and not parts["d_lsgan"].requires_grad
    loss.backward()
    assert d.scale.grad is not None and gen.weight.grad is None


def test_discriminator_loss_adds_gradient_penalty(catalog):
    obj = Objective.parse("wgan_gp=1", catalog.losses)
    d = LinearCritic(2.0)
    loss, parts = obj.discriminator_loss(d, torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4))
    assert set(parts) == {"d_wgan_gp", "d_wgan_gp_penalty"}
    assert parts["d_wgan_gp_penalty"].item() == pytest.approx(10.0, abs=1e-4)
    assert loss.item() == pytest.approx(sum(p.item() for p in parts.values()), abs=1e-5)
    loss.backward()
    assert d.w.grad.abs().sum() > 0


def test_generator_loss_sums_weighted_terms(catalog):
    obj = Objective.parse("gan=1,l1=100,l2=10", catalog.losses)
    d = ConstantD()
    gen = nn.Conv2d(3, 3, 1)
    x = torch.rand(2, 3, 4, 4)
    fake, target = gen(x), torch.rand(2, 3, 4, 4)
    fake_in = torch.cat([x, fake], 1)
    loss, parts = obj.generator_loss(d, fake_in, fake, target)
    expected = (
        GANLoss().generator_loss(d(fake_in))
        + 100 * L1Loss()(fake, target)
        + 10 * L2Loss()(fake, target)
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert list(parts) == ["g_gan", "g_l1", "g_l2"]
    assert loss.item() == pytest.approx(sum(p.item() for p in parts.values()), rel=1e-6)
    loss.backward()
    assert gen.weight.grad is not None and gen.weight.grad.abs().sum() > 0


def test_reconstruction_only_objective(catalog):
    obj = Objective.parse("l1=100", catalog.losses)
    fake, target = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    loss, parts = obj.generator_loss(None, None, fake, target)
    assert loss.item() == pytest.approx(100.0) and list(parts) == ["g_l1"]
    with pytest.raises(ObjectiveError, match="no adversarial term"):
        obj.discriminator_loss(ConstantD(), fake, fake)


def test_adversarial_objective_needs_the_discriminator(catalog):
    obj = Objective.parse("gan=1", catalog.losses)
    with pytest.raises(ObjectiveError, match="needs the discriminator"):
        obj.generator_loss(None, None, torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))


def test_alias_resolves_to_canonical_name(catalog):
    catalog.losses.add(
        "mae", L1Loss, provider="test", aliases=("abs_error",), type="reconstruction"
    )
    obj = Objective.parse("abs_error=3", catalog.losses)
    assert obj.spec == "mae=3"
