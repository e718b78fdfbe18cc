"""Reconstruction losses ``loss(fake, target) -> scalar`` between a generator output and target.

>>> import torch
>>> L1Loss()(torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4))
tensor(1.)
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def _check_shapes(name: str, fake: Tensor, target: Tensor) -> None:
    if fake.shape != target.shape:
        raise ValueError(
            f"{name} loss: expected fake and target of one shape, got fake "
            f"{tuple(fake.shape)} and target {tuple(target.shape)}"
        )


class L1Loss(nn.Module):
    """Mean absolute error (the paper's L1 term): shapes must match exactly (no broadcasting).

    >>> import torch
    >>> L1Loss()(torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), -0.5))
    tensor(0.5000)
    """

    def forward(self, fake: Tensor, target: Tensor) -> Tensor:
        _check_shapes("l1", fake, target)
        return F.l1_loss(fake, target)


class L2Loss(nn.Module):
    """Mean squared error: shapes must match exactly (no broadcasting).

    >>> import torch
    >>> L2Loss()(torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), -0.5))
    tensor(0.2500)
    """

    def forward(self, fake: Tensor, target: Tensor) -> Tensor:
        _check_shapes("l2", fake, target)
        return F.mse_loss(fake, target)
