"""inpaint: a photo with missing pixels -> the whole photo.

Training draws one hole mask per sample (boxes or free-form strokes, see
:class:`i2i.data.masks.MaskConfig`) from the sample's generator, so runs are reproducible. The
model input has 4 channels: the photo in [-1, 1] with the hole set to 0, then the mask (1 in the
hole, 0 elsewhere); the target is the photo. ``output_to_image`` pastes the generated pixels into
the hole and keeps the known pixels.

For ``i2i translate`` (and the Python API's ``translate``, and an upload to ``i2i demo``) the
hole is given in the image itself: where it is pure black (every channel at most 1/255) and,
in an image with transparency (an RGBA PNG, say), also where it is transparent (alpha < 1/2).
Save such images as PNG: JPEG compression moves black pixels off zero, and drops transparency. Use :func:`inpaint_task` to make a variant
with other mask sizes.

>>> import torch
>>> x, y = inpaint.make_pair(torch.rand(3, 32, 32), torch.Generator().manual_seed(0))
>>> x.shape, y.shape
(torch.Size([4, 32, 32]), torch.Size([3, 32, 32]))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from i2i import Task, hookimpl, to_image_range, to_model_range
from i2i.data.masks import MaskConfig, random_mask
from i2i.data.tasks_helpers import photo_task

BLACK = 1.0 / 255.0


def mask_input(img: Tensor, mask: Tensor) -> Tensor:
    """RGB [0, 1] and a 0/1 mask -> the 4-channel input (masked photo in [-1, 1], mask)."""
    return torch.cat([to_model_range(img) * (1.0 - mask), mask], dim=-3)


def hole_from_image(img: Tensor) -> Tensor:
    """The hole of a user's image (RGB or RGBA in [0, 1]): its pure black pixels and, with an
    alpha channel, its transparent ones.

    >>> img = torch.ones(4, 1, 3)
    >>> img[:3, 0, 0] = 0.0  # black and opaque
    >>> img[3, 0, 1] = 0.0  # white and transparent
    >>> hole_from_image(img).flatten().tolist()
    [1.0, 1.0, 0.0]
    """
    hole = (img[..., :3, :, :] <= BLACK).all(dim=-3, keepdim=True)
    if img.shape[-3] == 4:
        hole |= img[..., 3:, :, :] < 0.5
    return hole.to(img.dtype)


def inpaint_task(**mask_options: Any) -> Task:
    """The inpaint task with holes drawn by ``MaskConfig(**mask_options)``."""
    config = MaskConfig(**mask_options)

    def make_pair(img: Tensor, generator: torch.Generator | None = None):
        mask = random_mask(img.shape[-2], img.shape[-1], generator, config).to(img.dtype)
        return mask_input(img, mask), to_model_range(img)

    def image_to_input(img: Tensor) -> Tensor:
        return mask_input(img[..., :3, :, :], hole_from_image(img))

    def output_to_image(x: Tensor, out: Tensor) -> Tensor:
        mask = x[..., 3:, :, :]
        known = to_image_range(x[..., :3, :, :])
        return known * (1.0 - mask) + to_image_range(out) * mask

    def input_to_image(x: Tensor) -> Tensor:
        # the hole in pure black, as image_to_input reads a user's image: the two round-trip
        return to_image_range(x[..., :3, :, :]) * (1.0 - x[..., 3:, :, :])

    return photo_task(
        "Fill holes: photo with missing pixels + mask -> photo",
        in_channels=4,
        make_pair=make_pair,
        image_to_input=image_to_input,
        output_to_image=output_to_image,
        input_to_image=input_to_image,
        canvas="holes",
        reads_alpha=True,
        description=__doc__.split("\n\n>>>")[0],
    )


inpaint = inpaint_task()


@hookimpl
def i2i_register_tasks(register):
    register("inpaint", inpaint)
