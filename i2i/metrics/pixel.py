"""Per-pixel fidelity metrics on RGB images in [0, 1]: L1, PSNR and SSIM (kornia).

>>> import torch
>>> a = torch.rand(2, 3, 16, 16)
>>> l1_metric().update(a, a)
[{'l1': 0.0}, {'l1': 0.0}]
>>> [round(v["ssim"], 4) for v in ssim_metric().update(a, a)]
[1.0, 1.0]
"""

from __future__ import annotations

import kornia
import torch
from torch import Tensor

from i2i.metrics.base import PerImageMetric

#: PSNR of identical images would be infinite; the mean squared error is floored here
#: (1e-10 -> 100 dB) so that results stay finite numbers in JSON.
MSE_FLOOR = 1e-10


def l1_per_image(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute difference per image, in [0, 1] units: ``(B, 3, H, W) -> (B,)``."""
    return (pred - target).abs().flatten(1).mean(1)


def psnr_per_image(pred: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB per image with peak 1 (what ``kornia.metrics.psnr``
    computes for one image), capped at 100 dB for identical images.

    >>> psnr_per_image(torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.1)).round().tolist()
    [20.0]
    """
    mse = (pred - target).pow(2).flatten(1).mean(1).clamp_min(MSE_FLOOR)
    return 10.0 * torch.log10(1.0 / mse)


def ssim_per_image(pred: Tensor, target: Tensor, window_size: int = 11) -> Tensor:
    """Mean structural similarity per image (``kornia.metrics.ssim``, Gaussian window)."""
    window = min(window_size, *pred.shape[-2:])
    window -= 1 - window % 2  # kornia needs an odd window
    return kornia.metrics.ssim(pred, target, window, max_val=1.0).flatten(1).mean(1)


def l1_metric() -> PerImageMetric:
    """Mean absolute error of RGB values in [0, 1] (lower is better)."""
    return PerImageMetric("l1", l1_per_image, higher_is_better=False)


def psnr_metric() -> PerImageMetric:
    """Peak signal-to-noise ratio in dB, peak 1 (higher is better)."""
    return PerImageMetric("psnr", psnr_per_image)


def ssim_metric(window_size: int = 11) -> PerImageMetric:
    """Structural similarity, 11x11 Gaussian window, kornia (higher is better)."""
    return PerImageMetric("ssim", lambda p, t: ssim_per_image(p, t, window_size))
