"""edges2photo, sketch2photo, edges2shoes, edges2handbags: line drawings -> photos.

``edges2photo`` and ``sketch2photo`` derive their input from any folder of photos (``single``
layout; with no ``--data`` the built-in photos): thin Canny edges, or hand-drawn-looking strokes
(see :mod:`i2i.data.edges`), black on white, one channel. The output is the RGB photo. At
``i2i translate`` time the input is a drawing: black lines on white, any colour mode.

``edges2shoes`` and ``edges2handbags`` are the pix2pix paired sets (A|B files, ``i2i data fetch``).
In the files the authors released, A (left) is the edge map and B (right) the photo, so the
default direction is AtoB (edges -> photo). Caveat: the 20-pair ``edges2shoes_sample`` in the
project's shared test data has the photo on the LEFT; train on it with ``--direction BtoA``.
The shoe photos are UT Zappos50K (A. Yu and K. Grauman, "Fine-Grained Visual Comparisons with
Local Learning", CVPR 2014; academic use with citation), the handbags are from iGAN (Zhu et al.,
ECCV 2016); the edge maps and pairs are pix2pix's.

>>> import torch
>>> x, y = edges2photo.make_pair(torch.rand(3, 32, 32))
>>> x.shape, y.shape
(torch.Size([1, 32, 32]), torch.Size([3, 32, 32]))
"""

from __future__ import annotations

import torch
from torch import Tensor

from i2i import Task, hookimpl, to_model_range
from i2i.data.edges import edge_map, sketch_map
from i2i.data.tasks_helpers import gray_to_input, paired_task, photo_task


def derived_task(summary: str, draw) -> Task:
    """A ``single``-layout task whose 1-channel input is ``draw(photo, generator)``."""

    def make_pair(img: Tensor, generator: torch.Generator | None = None):
        return to_model_range(draw(img, generator)), to_model_range(img)

    return photo_task(
        summary,
        in_channels=1,
        make_pair=make_pair,
        image_to_input=gray_to_input,
        canvas="pen",
        description=__doc__.split("\n\n>>>")[0],
    )


edges2photo = derived_task(
    "Edges to photo: Canny edge maps derived from photos -> photo",
    lambda img, generator: edge_map(img),
)
sketch2photo = derived_task(
    "Sketch to photo: hand-drawn-looking strokes derived from photos -> photo", sketch_map
)
# 15 epochs, batch 4: the paper's edges2shoes / edges2handbags settings.
_LARGE_SET = {"batch_size": 4, "epochs": 8, "epochs_decay": 7}
edges2shoes = paired_task(
    "Edges to shoe photo (pix2pix edges2shoes, A|B files, A = edges)",
    direction="AtoB",
    in_channels=1,
    canvas="pen",
    defaults=_LARGE_SET,
    description=__doc__.split("\n\n>>>")[0],
)
edges2handbags = paired_task(
    "Edges to handbag photo (pix2pix edges2handbags, A|B files, A = edges)",
    direction="AtoB",
    in_channels=1,
    canvas="pen",
    defaults=_LARGE_SET,
    description=__doc__.split("\n\n>>>")[0],
)


@hookimpl
def i2i_register_tasks(register):
    register("edges2photo", edges2photo)
    register("sketch2photo", sketch2photo)
    register("edges2shoes", edges2shoes)
    register("edges2handbags", edges2handbags)
