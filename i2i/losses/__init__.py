"""Adversarial and reconstruction losses, and the weighted :class:`Objective` built from them.

>>> import torch
>>> from i2i import catalog
>>> obj = Objective.parse("gan=1,l1=100", catalog().losses)
>>> d = torch.nn.Conv2d(6, 1, 4, 2, 1)
>>> loss, parts = obj.discriminator_loss(d, torch.rand(2, 6, 8, 8), torch.rand(2, 6, 8, 8))
>>> loss.shape, list(parts)
(torch.Size([]), ['d_gan'])
"""

from __future__ import annotations

from i2i import hookimpl
from i2i.losses.adversarial import AdversarialLoss, GANLoss, HingeLoss, LSGANLoss, WGANGPLoss
from i2i.losses.objective import LOSS_TYPES, Objective, ObjectiveError, Term
from i2i.losses.reconstruction import L1Loss, L2Loss


@hookimpl
def i2i_register_losses(register):
    """Register the built-in losses."""
    register(
        "gan",
        GANLoss,
        summary="GAN loss on logits (BCE), non-saturating for G",
        type="adversarial",
    )
    register("lsgan", LSGANLoss, summary="Least-squares GAN (MSE to 1 and 0)", type="adversarial")
    register("hinge", HingeLoss, summary="Hinge GAN loss", type="adversarial")
    register(
        "wgan_gp",
        WGANGPLoss,
        summary="Wasserstein loss with gradient penalty (lambda_gp=10)",
        type="adversarial",
    )
    register(
        "l1", L1Loss, summary="Mean absolute error (the paper's L1 term)", type="reconstruction"
    )
    register("l2", L2Loss, summary="Mean squared error", type="reconstruction")


__all__ = [
    "LOSS_TYPES",
    "AdversarialLoss",
    "GANLoss",
    "HingeLoss",
    "L1Loss",
    "L2Loss",
    "LSGANLoss",
    "Objective",
    "ObjectiveError",
    "Term",
    "WGANGPLoss",
]
