"""colorize: grayscale -> colour, learned in Lab space.

The input is the lightness L of a photo (1 channel, L/50 - 1 in [-1, 1]); the target is its
colour ab (2 channels, ab/110 clamped to [-1, 1], the scale of the official pix2pix colorization
mode). Outputs are put back together with the input's L and converted to RGB. Trains on any folder
of colour photos (``single`` layout); with no ``--data`` on the built-in photos.

>>> import torch
>>> x, y = colorize.make_pair(torch.rand(3, 16, 16))
>>> x.shape, y.shape, colorize.output_to_image(x, y).shape
(torch.Size([1, 16, 16]), torch.Size([2, 16, 16]), torch.Size([3, 16, 16]))
"""

from __future__ import annotations

import kornia
import torch
from torch import Tensor

from i2i import hookimpl
from i2i.data.tasks_helpers import IMAGE_METRICS, photo_task

AB_SCALE = 110.0


def rgb_to_l_ab(img: Tensor) -> tuple[Tensor, Tensor]:
    """RGB [0, 1] ``(..., 3, H, W)`` -> (L, ab) in [-1, 1]."""
    lab = kornia.color.rgb_to_lab(img[..., :3, :, :].clamp(0.0, 1.0))
    light = lab[..., :1, :, :] / 50.0 - 1.0
    ab = (lab[..., 1:, :, :] / AB_SCALE).clamp(-1.0, 1.0)
    return light.clamp(-1.0, 1.0), ab


def l_ab_to_rgb(light: Tensor, ab: Tensor) -> Tensor:
    """(L, ab) in [-1, 1] -> RGB [0, 1]."""
    lab = torch.cat([(light + 1.0) * 50.0, ab * AB_SCALE], dim=-3)
    return kornia.color.lab_to_rgb(lab, clip=True).clamp(0.0, 1.0)


def make_pair(img: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    return rgb_to_l_ab(img)


def image_to_input(img: Tensor) -> Tensor:
    """Any photo (colour or gray) -> its lightness."""
    return rgb_to_l_ab(img)[0]


def output_to_image(x: Tensor, out: Tensor) -> Tensor:
    return l_ab_to_rgb(x, out.clamp(-1.0, 1.0))


def input_to_image(x: Tensor) -> Tensor:
    return l_ab_to_rgb(x, torch.zeros_like(x).expand(*x.shape[:-3], 2, *x.shape[-2:]))


colorize = photo_task(
    "Grayscale to colour: lightness L -> colour ab in Lab space",
    in_channels=1,
    out_channels=2,
    make_pair=make_pair,
    image_to_input=image_to_input,
    output_to_image=output_to_image,
    input_to_image=input_to_image,
    canvas="gray",
    metrics=(*IMAGE_METRICS, "color_hist"),  # Lab histogram intersection, as in the paper
    description=__doc__.split("\n\n>>>")[0],
)


@hookimpl
def i2i_register_tasks(register):
    register("colorize", colorize)
