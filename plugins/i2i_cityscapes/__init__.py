"""cityscapes: semantic labels <-> street photo (the pix2pix ``cityscapes`` set).

A|B files made by the official ``prepare_cityscapes_dataset.py``: A (left) = the photo, B (right)
= the colour-coded label map. The default direction ``BtoA`` is the paper's labels -> photo;
``--direction AtoB`` trains photo -> labels (semantic segmentation as translation). Paper recipe:
2975 training images, 200 epochs (100 + 100 decay), batch size 1. The label colours are
Cityscapes' own; the data is under the Cityscapes licence (register at cityscapes-dataset.com).

>>> cityscapes.direction
'BtoA'
"""

from __future__ import annotations

from i2i import hookimpl
from i2i.data.tasks_helpers import paired_task

cityscapes = paired_task(
    "Cityscapes labels to street photo (A|B files, A = photo; AtoB for photo to labels)",
    direction="BtoA",
    description=__doc__.split("\n\n>>>")[0],
)


@hookimpl
def i2i_register_tasks(register):
    register("cityscapes", cityscapes)
