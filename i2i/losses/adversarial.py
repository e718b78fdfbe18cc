"""Adversarial losses: what D minimizes on (real, fake) logits and what G minimizes on fake ones.

Each is an :class:`AdversarialLoss` with ``discriminator_loss(real_logits, fake_logits)`` (not
halved; :class:`i2i.losses.Objective` halves it as the paper does), ``generator_loss(fake_logits)``
and ``penalty(discriminator, real_in, fake_in)`` (``None`` except for ``wgan_gp``).

>>> import torch
>>> loss = GANLoss()
>>> real, fake = torch.full((2, 1, 4, 4), 3.0), torch.full((2, 1, 4, 4), -3.0)
>>> bool(loss.discriminator_loss(real, fake) < loss.discriminator_loss(fake, real))
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AdversarialLoss(nn.Module):
    """Base class of adversarial losses; subclasses define the two losses, maybe a penalty.

    >>> AdversarialLoss().penalty(nn.Identity(), torch.zeros(1), torch.zeros(1)) is None
    True
    """

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def penalty(self, discriminator: nn.Module, real_in: Tensor, fake_in: Tensor) -> Tensor | None:
        """An extra discriminator term computed from D itself (default: none)."""
        return None


class GANLoss(AdversarialLoss):
    """The original GAN loss on logits (BCE), with the non-saturating generator loss.

    D: ``BCE(D(real), 1) + BCE(D(fake), 0)``; G: ``BCE(D(fake), 1)``.

    >>> float(GANLoss().generator_loss(torch.zeros(1, 1, 2, 2)))  # log 2
    0.6931471824645996
    """

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return real + fake

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


class LSGANLoss(AdversarialLoss):
    """Least-squares GAN: D: ``(D(real) - 1)^2 + D(fake)^2``; G: ``(D(fake) - 1)^2`` (means).

    >>> float(LSGANLoss().discriminator_loss(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)))
    0.0
    """

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.mse_loss(real_logits, torch.ones_like(real_logits)) + F.mse_loss(
            fake_logits, torch.zeros_like(fake_logits)
        )

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return F.mse_loss(fake_logits, torch.ones_like(fake_logits))


class HingeLoss(AdversarialLoss):
    """Hinge loss: D: ``relu(1 - D(real)) + relu(1 + D(fake))``; G: ``-D(fake)`` (means).

    >>> float(HingeLoss().discriminator_loss(torch.full((1, 1, 2, 2), 2.0), -torch.ones(1, 1, 2, 2)))
    0.0
    """

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.mean()


class WGANGPLoss(AdversarialLoss):
    """Wasserstein loss with gradient penalty (Gulrajani et al. 2017).

    D: ``mean D(fake) - mean D(real)``; G: ``-mean D(fake)``; penalty:
    ``lambda_gp * mean((||grad_x D(x_hat)||_2 - 1)^2)`` on random interpolates ``x_hat`` of each
    real and fake sample, built with ``create_graph=True`` so that it trains D.

    >>> d = nn.Conv2d(3, 1, 3)
    >>> gp = WGANGPLoss().penalty(d, torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
    >>> gp.shape, gp.requires_grad
    (torch.Size([]), True)
    """

    def __init__(self, lambda_gp: float = 10.0):
        super().__init__()
        if lambda_gp < 0:
            raise ValueError(f"wgan_gp: lambda_gp must be >= 0, got {lambda_gp}")
        self.lambda_gp = float(lambda_gp)

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return fake_logits.mean() - real_logits.mean()

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.mean()

    def penalty(self, discriminator: nn.Module, real_in: Tensor, fake_in: Tensor) -> Tensor:
        if real_in.shape != fake_in.shape:
            raise ValueError(
                f"wgan_gp penalty: real and fake inputs must have one shape, got "
                f"{tuple(real_in.shape)} and {tuple(fake_in.shape)}"
            )
        real_in, fake_in = real_in.detach(), fake_in.detach()
        alpha = torch.rand(real_in.shape[0], *([1] * (real_in.ndim - 1)), device=real_in.device)
        mixed = (alpha * real_in + (1 - alpha) * fake_in).requires_grad_(True)
        with torch.enable_grad():
            out = discriminator(mixed)
            (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
        norms = grad.flatten(1).norm(2, dim=1)
        return self.lambda_gp * ((norms - 1.0) ** 2).mean()
