"""Helpers that keep task plugins short: the paper's defaults and a paired-task builder.

>>> t = paired_task("labels to photo", direction="BtoA", defaults={"epochs": 100})
>>> t.layout, t.direction, t.defaults["crop_size"], t.defaults["epochs"]
('aligned', 'BtoA', 256, 100)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from i2i import Task, to_image_range, to_model_range
from i2i.data.builtin import builtin_data_root

#: The pix2pix paper's recipe (Isola et al. 2017 and the official code): U-Net 256, 70x70
#: PatchGAN, GAN + 100 * L1, 286 -> 256 random crops with flips, batch 1, BatchNorm, test-time
#: dropout and batch statistics, 100 epochs then 100 of linear decay.
PIX2PIX_DEFAULTS: dict[str, Any] = {
    "generator": "unet",
    "discriminator": "patch70",
    "objective": "gan=1,l1=100",
    "load_size": 286,
    "crop_size": 256,
    "preprocess": "resize_and_crop",
    "batch_size": 1,
    "norm": "batch",
    "test_mode": "paper",
    "epochs": 100,
    "epochs_decay": 100,
}

IMAGE_METRICS: tuple[str, ...] = ("l1", "psnr", "ssim")


def pix2pix_defaults(**overrides: Any) -> dict[str, Any]:
    """The paper's defaults with ``overrides`` applied."""
    return {**PIX2PIX_DEFAULTS, **overrides}


def to_gray(img: Tensor) -> Tensor:
    """RGB ``(..., 3, H, W)`` -> luminance ``(..., 1, H, W)`` (ITU-R 601 weights); gray stays gray.

    >>> to_gray(torch.ones(2, 3, 4, 4)).shape
    torch.Size([2, 1, 4, 4])
    """
    if img.shape[-3] == 1:
        return img
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=img.dtype, device=img.device)
    return (img[..., :3, :, :] * weights.view(3, 1, 1)).sum(dim=-3, keepdim=True)


def gray_to_input(img: Tensor) -> Tensor:
    """An RGB image in [0, 1] as a one-channel model input in [-1, 1]."""
    return to_model_range(to_gray(img))


def gray_source_pair(images, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``make_pair`` for paired tasks whose input is one channel (thermal, edges): gray source."""
    src, dst = images
    return to_model_range(to_gray(src)), to_model_range(dst)


def paired_task(
    summary: str,
    *,
    direction: str,
    layout: str = "aligned",
    in_channels: int = 3,
    out_channels: int = 3,
    defaults: dict[str, Any] | None = None,
    metrics: tuple[str, ...] = IMAGE_METRICS,
    description: str = "",
    palette: tuple[tuple[str, tuple[int, int, int]], ...] = (),
    canvas: str = "",
    **conversions: Callable[..., Any],
) -> Task:
    """A :class:`i2i.Task` for paired data (A|B files or A/ B/ folders) with the paper's defaults.

    With ``in_channels=1`` the source image is turned to grayscale (``to_gray``) for training and
    for ``i2i translate``. ``conversions`` may override ``make_pair``, ``image_to_input``,
    ``output_to_image`` or ``input_to_image``.
    """
    if in_channels == 1:
        conversions.setdefault("make_pair", gray_source_pair)
        conversions.setdefault("image_to_input", gray_to_input)
    return Task(
        summary=summary,
        in_channels=in_channels,
        out_channels=out_channels,
        layout=layout,
        direction=direction,
        defaults=pix2pix_defaults(**(defaults or {})),
        metrics=metrics,
        description=description,
        palette=palette,
        canvas=canvas,
        **conversions,
    )


def photo_task(
    summary: str,
    *,
    in_channels: int,
    out_channels: int = 3,
    make_pair: Callable[..., Any],
    defaults: dict[str, Any] | None = None,
    metrics: tuple[str, ...] = IMAGE_METRICS,
    description: str = "",
    canvas: str = "",
    reads_alpha: bool = False,
    **conversions: Callable[..., Any],
) -> Task:
    """A ``single``-layout :class:`i2i.Task` deriving its input from photos, with the paper's
    defaults and the built-in photos as default data.

    >>> t = photo_task("gray", in_channels=1, make_pair=lambda img, generator=None: (img, img))
    >>> t.layout, t.default_data.__name__
    ('single', 'builtin_data_root')
    """
    return Task(
        summary=summary,
        in_channels=in_channels,
        out_channels=out_channels,
        layout="single",
        make_pair=make_pair,
        defaults=pix2pix_defaults(**(defaults or {})),
        metrics=metrics,
        default_data=builtin_data_root,
        description=description,
        canvas=canvas,
        reads_alpha=reads_alpha,
        **conversions,
    )


__all__ = [
    "IMAGE_METRICS",
    "PIX2PIX_DEFAULTS",
    "gray_source_pair",
    "gray_to_input",
    "paired_task",
    "photo_task",
    "pix2pix_defaults",
    "to_gray",
    "to_image_range",
    "to_model_range",
]
