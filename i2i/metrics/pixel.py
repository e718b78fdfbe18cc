"""Per-pixel fidelity metrics on RGB images in [0, 1]: L1, PSNR and SSIM (kornia).

>>> import torch
>>> a = torch.rand(2, 3, 16, 16)
>>> l1_metric().update(a, a)
[{'l1': 0.0}, {'l1': 0.0}]
>>> [round(v["ssim"], 4) for v in ssim_metric().update(a, a)]
[1.0, 1.0]
"""

from __future__ import annotations

import math

import kornia
import torch
from torch import Tensor

from i2i.metrics.base import Metric, PerImageMetric, check_images

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


def gradient_energy(images: Tensor) -> Tensor:
    """Mean squared finite-difference gradient of the luma per image: ``(B, 3, H, W) -> (B,)``.

    >>> gradient_energy(torch.zeros(1, 3, 4, 4)).tolist()
    [0.0]
    """
    luma = (images * images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    dx = (luma[:, :, 1:] - luma[:, :, :-1]).pow(2).flatten(1).mean(1)
    dy = (luma[:, 1:, :] - luma[:, :-1, :]).pow(2).flatten(1).mean(1)
    return dx + dy


class SharpnessRatio(Metric):
    """Gradient energy of the outputs over that of the targets (1: as sharp as the real
    photos; below 1: blurrier, as L1-trained outputs are). Summarised over all images as the
    ratio of the summed energies.

    >>> m = SharpnessRatio()
    >>> x = torch.rand(2, 3, 8, 8)
    >>> [round(r["sharpness"], 3) for r in m.update(x, x)], m.compute()
    ([1.0, 1.0], {'sharpness': 1.0})
    """

    keys = ("sharpness",)
    higher_is_better = {"sharpness": True}

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._pred = self._target = 0.0

    def update(
        self, pred: Tensor, target: Tensor, inputs: Tensor | None = None
    ) -> list[dict[str, float]]:
        check_images(pred, target, "sharpness")
        p, t = gradient_energy(pred.float()), gradient_energy(target.float())
        self._pred += float(p.sum())
        self._target += float(t.sum())
        return [
            {"sharpness": float(a / b) if b > 0 else math.nan}
            for a, b in zip(p.tolist(), t.tolist(), strict=True)
        ]

    def compute(self) -> dict[str, float]:
        value = self._pred / self._target if self._target > 0 else math.nan
        return {"sharpness": value}


def sharpness_metric() -> SharpnessRatio:
    """Gradient energy of outputs over targets (1 = as sharp as the real images)."""
    return SharpnessRatio()
