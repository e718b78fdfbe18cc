"""Joint preprocessing: ONE random draw applied to the input and the target alike.

Modes, as in the official pix2pix code (``--preprocess``), for training (``train=True``):

- ``resize_and_crop``: resize to ``load_size`` x ``load_size``, random ``crop_size`` crop;
- ``crop``: random ``crop_size`` crop of the image as stored;
- ``scale_width``: resize so the width is ``load_size`` (height keeps the aspect ratio, at least
  ``crop_size``);
- ``scale_width_and_crop``: ``scale_width``, then a random ``crop_size`` crop;
- ``none``: only round the size to a multiple of 4 (the official ``make_power_2`` with base 4).

Then a horizontal flip with probability 1/2 when ``flip`` is on. For evaluation (``train=False``)
nothing is random: ``none`` rounds to a multiple of 4; ``scale_width*`` resize to width
``crop_size`` keeping the aspect ratio (height a multiple of 4); the other modes resize to
``crop_size`` x ``crop_size``. Resizing is bicubic with antialiasing, clamped to [0, 1].

The draw comes from a ``torch.Generator``; :func:`item_generator` makes one from
``(seed, epoch, index)`` so every sample of every epoch is reproducible.

>>> import torch
>>> t = JointTransform(PreprocessConfig(load_size=40, crop_size=32))
>>> a = torch.rand(3, 48, 48)
>>> x, y = t([a, a.clone()], item_generator(0, 0, 7))
>>> x.shape, bool(torch.equal(x, y))
(torch.Size([3, 32, 32]), True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

MODES: tuple[str, ...] = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


@dataclass(frozen=True)
class PreprocessConfig:
    """How images are resized, cropped and flipped before they reach the task."""

    load_size: int = 286
    crop_size: int = 256
    mode: str = "resize_and_crop"
    flip: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(
                f"preprocess mode must be one of {', '.join(MODES)}; got {self.mode!r}"
            )
        for name in ("load_size", "crop_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.mode in ("resize_and_crop", "scale_width_and_crop") and (
            self.crop_size > self.load_size
        ):
            raise ValueError(
                f"crop_size ({self.crop_size}) must not exceed load_size ({self.load_size}) "
                f"in mode {self.mode!r}"
            )

    @property
    def fixed_train_size(self) -> bool:
        """Whether every training image comes out ``crop_size`` x ``crop_size`` (the modes
        that crop); ``scale_width`` and ``none`` keep each image's own shape.

        >>> PreprocessConfig().fixed_train_size, PreprocessConfig(mode="scale_width").fixed_train_size
        (True, False)
        """
        return self.mode in ("resize_and_crop", "crop", "scale_width_and_crop")


@dataclass(frozen=True)
class TransformParams:
    """One draw: the size to resize to (or None), the crop box (or None) and the flip."""

    resize_to: tuple[int, int] | None  # (height, width)
    crop: tuple[int, int, int, int] | None  # (top, left, height, width)
    flip: bool


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed that depends on all of ``(seed, epoch, index)``.

    >>> item_seed(0, 0, 1) != item_seed(0, 1, 0)
    True
    """
    digest = hashlib.blake2b(f"{seed}/{epoch}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``(seed, epoch, index)``."""
    gen = torch.Generator()
    gen.manual_seed(item_seed(seed, epoch, index))
    return gen


def _multiple_of(value: float, base: int = 4) -> int:
    return max(base, int(round(value / base) * base))


class JointTransform:
    """Resize, crop and flip a list of same-sized images with one random draw."""

    def __init__(self, config: PreprocessConfig | None = None, *, train: bool = True):
        self.config = config or PreprocessConfig()
        self.train = train

    def __repr__(self) -> str:
        return f"JointTransform({self.config}, train={self.train})"

    def check_size(self, height: int, width: int) -> None:
        """Raise ``ValueError`` when an image of this size cannot be cropped as configured."""
        cfg = self.config
        if self.train and cfg.mode == "crop" and (height < cfg.crop_size or width < cfg.crop_size):
            raise ValueError(
                f"image is {width}x{height} (WxH), smaller than crop_size {cfg.crop_size} in "
                "mode 'crop'; use mode 'resize_and_crop' or a smaller crop_size"
            )

    def params(
        self, height: int, width: int, generator: torch.Generator | None = None
    ) -> TransformParams:
        """Draw the parameters for an image of ``height`` x ``width``.

        Three numbers are always drawn (crop x, crop y, flip), whatever the mode, so the stream
        of random numbers does not depend on the mode.
        """
        self.check_size(height, width)
        cfg = self.config
        u = torch.rand(3, generator=generator).tolist()
        if not self.train:
            return TransformParams(self._eval_size(height, width), None, False)
        resize_to: tuple[int, int] | None = None
        if cfg.mode == "resize_and_crop":
            resize_to = (cfg.load_size, cfg.load_size)
        elif cfg.mode in ("scale_width", "scale_width_and_crop"):
            if not (width == cfg.load_size and height >= cfg.crop_size):
                new_h = int(max(cfg.load_size * height / width, cfg.crop_size))
                resize_to = (new_h, cfg.load_size)
        elif cfg.mode == "none":
            resize_to = (_multiple_of(height), _multiple_of(width))
        h, w = resize_to or (height, width)
        crop = None
        if cfg.mode in ("resize_and_crop", "crop", "scale_width_and_crop"):
            c = cfg.crop_size
            left = min(int(u[0] * (w - c + 1)), w - c)
            top = min(int(u[1] * (h - c + 1)), h - c)
            crop = (top, left, c, c)
        if resize_to == (height, width):
            resize_to = None
        return TransformParams(resize_to, crop, bool(cfg.flip and u[2] < 0.5))

    def _eval_size(self, height: int, width: int) -> tuple[int, int] | None:
        cfg = self.config
        if cfg.mode == "none":
            size = (_multiple_of(height), _multiple_of(width))
        elif cfg.mode.startswith("scale_width"):
            size = (_multiple_of(cfg.crop_size * height / width), cfg.crop_size)
        else:
            size = (cfg.crop_size, cfg.crop_size)
        return None if size == (height, width) else size

    @staticmethod
    def apply(img: Tensor, params: TransformParams) -> Tensor:
        """Apply one drawn set of parameters to one ``(C, H, W)`` image."""
        if params.resize_to is not None:
            img = F.interpolate(
                img[None].float(),
                size=params.resize_to,
                mode="bicubic",
                align_corners=False,
                antialias=True,
            )[0].clamp(0.0, 1.0)
        if params.crop is not None:
            top, left, h, w = params.crop
            img = img[:, top : top + h, left : left + w]
        if params.flip:
            img = img.flip(-1)
        return img.contiguous()

    def __call__(
        self, images: Sequence[Tensor], generator: torch.Generator | None = None
    ) -> list[Tensor]:
        """Transform every image in ``images`` with the same draw; all must share H and W."""
        sizes = {tuple(im.shape[-2:]) for im in images}
        if len(sizes) != 1:
            raise ValueError(
                f"joint transform expects images of one size, got sizes (H, W) {sorted(sizes)}"
            )
        height, width = sizes.pop()
        params = self.params(height, width, generator)
        return [self.apply(im, params) for im in images]
