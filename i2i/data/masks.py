"""Random hole masks for inpainting: boxes and free-form brush strokes, drawn from a generator.

A mask is a float tensor ``(1, H, W)`` with 1 in the hole and 0 where pixels are known. Sizes
are fractions of the image side, so the same settings suit 64 px tests and 256 px training.

>>> import torch
>>> m = random_mask(64, 64, torch.Generator().manual_seed(0))
>>> m.shape, bool(((m == 0) | (m == 1)).all()), 0.0 < float(m.mean()) < 1.0
(torch.Size([1, 64, 64]), True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class MaskConfig:
    """How holes are drawn; every ``(low, high)`` is a range sampled uniformly.

    - ``p_box``: probability that a mask is made of boxes (else of strokes);
    - ``boxes``: how many boxes; ``box_size``: box sides as a fraction of the image side;
    - ``strokes``: how many strokes; ``vertices``: segments per stroke;
      ``stroke_width``: brush width and ``stroke_length``: segment length, as fractions of the side;
    - ``max_coverage``: holes never cover more than this fraction of the image.
    """

    p_box: float = 0.5
    boxes: tuple[int, int] = (1, 3)
    box_size: tuple[float, float] = (0.1, 0.4)
    strokes: tuple[int, int] = (1, 4)
    vertices: tuple[int, int] = (2, 6)
    stroke_width: tuple[float, float] = (0.03, 0.08)
    stroke_length: tuple[float, float] = (0.1, 0.3)
    max_coverage: float = 0.6

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_box <= 1.0:
            raise ValueError(f"p_box must be in [0, 1], got {self.p_box}")
        for name in ("boxes", "strokes", "vertices"):
            lo, hi = getattr(self, name)
            if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi):
                raise ValueError(
                    f"{name} must be (low, high) ints with 1 <= low <= high, got {(lo, hi)}"
                )
        for name in ("box_size", "stroke_width", "stroke_length"):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi <= 1.0:
                raise ValueError(
                    f"{name} must be fractions with 0 < low <= high <= 1, got {(lo, hi)}"
                )
        if not 0.0 < self.max_coverage <= 1.0:
            raise ValueError(f"max_coverage must be in (0, 1], got {self.max_coverage}")


def _uniform(gen: torch.Generator | None, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def _randint(gen: torch.Generator | None, lo: int, hi: int) -> int:
    return int(torch.randint(lo, hi + 1, (), generator=gen))


def box_mask(height: int, width: int, gen: torch.Generator | None, cfg: MaskConfig) -> Tensor:
    """A mask of ``cfg.boxes`` axis-aligned rectangles."""
    mask = torch.zeros(1, height, width)
    for _ in range(_randint(gen, *cfg.boxes)):
        h = max(1, round(_uniform(gen, *cfg.box_size) * height))
        w = max(1, round(_uniform(gen, *cfg.box_size) * width))
        top = _randint(gen, 0, height - h)
        left = _randint(gen, 0, width - w)
        mask[:, top : top + h, left : left + w] = 1.0
    return mask


def stroke_mask(height: int, width: int, gen: torch.Generator | None, cfg: MaskConfig) -> Tensor:
    """A mask of free-form strokes: random walks drawn with a round brush."""
    side = min(height, width)
    ys = torch.arange(height, dtype=torch.float32)[:, None]
    xs = torch.arange(width, dtype=torch.float32)[None, :]
    mask = torch.zeros(height, width, dtype=torch.bool)
    for _ in range(_randint(gen, *cfg.strokes)):
        radius = max(0.5, _uniform(gen, *cfg.stroke_width) * side / 2)
        y, x = _uniform(gen, 0, height - 1), _uniform(gen, 0, width - 1)
        angle = _uniform(gen, 0, 2 * math.pi)
        for _ in range(_randint(gen, *cfg.vertices)):
            angle += _uniform(gen, -math.pi / 2, math.pi / 2)
            length = _uniform(gen, *cfg.stroke_length) * side
            y2 = min(max(y + length * math.sin(angle), 0.0), height - 1.0)
            x2 = min(max(x + length * math.cos(angle), 0.0), width - 1.0)
            mask |= _segment_distance(ys, xs, (y, x), (y2, x2)) <= radius
            y, x = y2, x2
    return mask[None].float()


def _segment_distance(
    ys: Tensor, xs: Tensor, p: tuple[float, float], q: tuple[float, float]
) -> Tensor:
    """Distance of every pixel centre to the segment p-q."""
    dy, dx = q[0] - p[0], q[1] - p[1]
    norm = dy * dy + dx * dx
    if norm == 0.0:
        t = torch.zeros(())
    else:
        t = (((ys - p[0]) * dy + (xs - p[1]) * dx) / norm).clamp(0.0, 1.0)
    return torch.hypot(ys - (p[0] + t * dy), xs - (p[1] + t * dx))


def random_mask(
    height: int,
    width: int,
    generator: torch.Generator | None = None,
    config: MaskConfig | None = None,
) -> Tensor:
    """Boxes (probability ``p_box``) or strokes; never empty, at most ``max_coverage`` of the image."""
    cfg = config or MaskConfig()
    use_boxes = float(torch.rand((), generator=generator)) < cfg.p_box
    draw = box_mask if use_boxes else stroke_mask
    mask = draw(height, width, generator, cfg)
    if float(mask.mean()) > cfg.max_coverage:  # too much hole: keep one box of the allowed area
        mask = torch.zeros(1, height, width)
        side = math.sqrt(cfg.max_coverage) * 0.9
        h, w = max(1, int(side * height)), max(1, int(side * width))
        top, left = _randint(generator, 0, height - h), _randint(generator, 0, width - w)
        mask[:, top : top + h, left : left + w] = 1.0
    if not mask.any():
        mask[:, height // 2, width // 2] = 1.0
    return mask
