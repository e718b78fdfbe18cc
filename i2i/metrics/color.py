"""Colour-distribution match in Lab: histogram intersection of L, a and b separately.

The pix2pix paper (Isola et al. 2017, section 4.3 and figure 7) compares the marginal
distributions of L, a and b of generated and real images by histogram intersection,
``sum_i min(p_i, q_i)`` of the normalised histograms (1 = identical distributions). Each channel
is binned with unit width (L in [0, 100], a and b in [-128, 128]). Per image the score uses that
image's pixels; the summary pools the pixels of every image, as the paper does for a test set.

>>> import torch
>>> m = LabHistogramIntersection()
>>> img = torch.rand(2, 3, 16, 16)
>>> [round(v, 3) for v in m.update(img, img)[0].values()]
[1.0, 1.0, 1.0]
>>> sorted(m.compute())
['hist_L', 'hist_a', 'hist_b']
"""

from __future__ import annotations

import math

import kornia
import torch
from torch import Tensor

from i2i.metrics.base import Metric, check_images

#: channel -> (low, high, bins): unit-width bins.
RANGES = {"L": (0.0, 100.0, 100), "a": (-128.0, 128.0, 256), "b": (-128.0, 128.0, 256)}


def lab_histograms(images: Tensor) -> dict[str, Tensor]:
    """Per-image histograms of L, a, b: ``(B, 3, H, W)`` RGB [0, 1] -> ``{ch: (B, bins)}``."""
    lab = kornia.color.rgb_to_lab(images.float().clamp(0, 1))
    out = {}
    for i, (ch, (lo, hi, bins)) in enumerate(RANGES.items()):
        values = lab[:, i].flatten(1)
        idx = ((values - lo) / (hi - lo) * bins).floor().long().clamp(0, bins - 1)
        hist = torch.zeros(values.shape[0], bins, dtype=torch.float64, device=values.device)
        hist.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
        out[ch] = hist
    return out


def intersection(p: Tensor, q: Tensor) -> Tensor:
    """Histogram intersection of count histograms ``(..., bins)``, each normalised to sum 1.

    >>> intersection(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.0])).item()
    0.5
    """
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-12)
    q = q / q.sum(-1, keepdim=True).clamp_min(1e-12)
    return torch.minimum(p, q).sum(-1)


class LabHistogramIntersection(Metric):
    """Histogram intersection of the L, a and b distributions (higher is better)."""

    keys = ("hist_L", "hist_a", "hist_b")
    higher_is_better = dict.fromkeys(keys, True)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._pred: dict[str, Tensor] = {}
        self._target: dict[str, Tensor] = {}

    def update(
        self, pred: Tensor, target: Tensor, inputs: Tensor | None = None
    ) -> list[dict[str, float]]:
        check_images(pred, target, "color_hist")
        hp, ht = lab_histograms(pred), lab_histograms(target)
        per_channel = {}
        for ch in RANGES:
            self._pred[ch] = self._pred.get(ch, 0) + hp[ch].sum(0).cpu()
            self._target[ch] = self._target.get(ch, 0) + ht[ch].sum(0).cpu()
            per_channel[f"hist_{ch}"] = intersection(hp[ch], ht[ch]).tolist()
        return [
            {key: values[i] for key, values in per_channel.items()} for i in range(pred.shape[0])
        ]

    def compute(self) -> dict[str, float]:
        if not self._pred:
            return dict.fromkeys(self.keys, math.nan)
        return {
            f"hist_{ch}": float(intersection(self._pred[ch], self._target[ch])) for ch in RANGES
        }


def color_hist_metric() -> LabHistogramIntersection:
    """Histogram intersection of L, a, b distributions, as in the paper's colorization study."""
    return LabHistogramIntersection()
