"""Line drawings derived from photos: clean edges and a sketchier hand-drawn style.

Both take RGB in [0, 1], ``(3, H, W)`` or ``(B, 3, H, W)``, and return one channel of the same
layout in [0, 1]: black strokes (0) on white (1), like the HED edge maps of edges2shoes.

- :func:`edge_map`: Canny (kornia) on a blurred grayscale, thin 1 px lines, with hysteresis done
  as a few steps of growing strong edges into weak ones (fast and deterministic);
- :func:`sketch_map`: broader Canny lines, 2 px wide, bent by a smooth random displacement and
  broken where low-frequency noise is low, so they look drawn by hand. Needs a generator.

>>> import torch
>>> img = torch.rand(3, 32, 32)
>>> edge_map(img).shape, sketch_map(img[None], torch.Generator().manual_seed(0)).shape
(torch.Size([1, 32, 32]), torch.Size([1, 1, 32, 32]))
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor


def _batched(img: Tensor) -> tuple[Tensor, bool]:
    if img.ndim == 3:
        return img[None], True
    if img.ndim == 4:
        return img, False
    raise ValueError(f"expected an RGB image (3, H, W) or (B, 3, H, W), got {tuple(img.shape)}")


def _canny(img: Tensor, low: float, high: float, sigma: float) -> Tensor:
    """Non-maximum-suppressed Canny responses: 1 strong, 0.5 weak, 0 none."""
    k = 2 * round(2 * sigma) + 1
    _, edges = kornia.filters.canny(
        img.float(), low, high, kernel_size=(k, k), sigma=(sigma, sigma), hysteresis=False
    )
    return edges


def edge_map(
    img: Tensor, *, low: float = 0.1, high: float = 0.25, sigma: float = 2.0, steps: int = 8
) -> Tensor:
    """Thin black edges on white; weak edges are kept where they touch strong ones."""
    x, squeeze = _batched(img)
    edges = _canny(x, low, high, sigma)
    strong, weak = edges > 0.75, edges > 0.25
    for _ in range(steps):
        grown = F.max_pool2d(strong.float(), 3, stride=1, padding=1) > 0
        strong = strong | (weak & grown)
    out = 1.0 - strong.float()
    return out[0] if squeeze else out


def sketch_map(
    img: Tensor,
    generator: torch.Generator | None = None,
    *,
    wobble: float = 2.0,
    gaps: float = 0.2,
    sigma: float = 2.5,
) -> Tensor:
    """Hand-drawn-looking strokes: 2 px lines, displaced by up to ``wobble`` px, with gaps."""
    x, squeeze = _batched(img)
    b, _, h, w = x.shape
    strokes = (_canny(x, 0.1, 0.25, sigma) > 0.25).float()
    strokes = F.max_pool2d(F.pad(strokes, (0, 1, 0, 1)), 2, stride=1)
    noise = torch.rand(b, 1, max(2, h // 16), max(2, w // 16), generator=generator)
    strokes = strokes * (F.interpolate(noise, size=(h, w), mode="bilinear") > gaps)
    disp = torch.rand(b, 2, max(2, h // 32), max(2, w // 32), generator=generator) * 2 - 1
    disp = F.interpolate(disp, size=(h, w), mode="bicubic").permute(0, 2, 3, 1)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    grid = torch.stack([xs, ys], dim=-1)[None] + disp * (2 * wobble / torch.tensor([w, h]))
    strokes = F.grid_sample(
        strokes, grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    out = 1.0 - (strokes > 0.35).float()
    return out[0] if squeeze else out
