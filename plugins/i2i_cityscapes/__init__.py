"""cityscapes: semantic labels <-> street photo (the pix2pix ``cityscapes`` set).

A|B files made by the official ``prepare_cityscapes_dataset.py``: A (left) = the photo, B (right)
= the colour-coded label map. The default direction ``BtoA`` is the paper's labels -> photo;
``--direction AtoB`` trains photo -> labels (semantic segmentation as translation). Paper recipe:
2975 training images, 200 epochs (100 + 100 decay), batch size 1. The label colours are
Cityscapes' own; the data is under the Cityscapes licence (register at cityscapes-dataset.com).

>>> cityscapes.direction, len(cityscapes.palette)
('BtoA', 20)
>>> cityscapes.class_names[0], cityscapes.class_colors[0]
('road', (128, 64, 128))
"""

from __future__ import annotations

from i2i import hookimpl
from i2i.data.tasks_helpers import paired_task

#: The 19 Cityscapes train classes in train-id order with their official colours (the colours
#: of the label halves of the pix2pix cityscapes A|B files), then ``unlabeled`` in black.
CITYSCAPES_PALETTE = (
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)),
    ("fence", (190, 153, 153)),
    ("pole", (153, 153, 153)),
    ("traffic light", (250, 170, 30)),
    ("traffic sign", (220, 220, 0)),
    ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)),
    ("person", (220, 20, 60)),
    ("rider", (255, 0, 0)),
    ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)),
    ("bus", (0, 60, 100)),
    ("train", (0, 80, 100)),
    ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)),
    ("unlabeled", (0, 0, 0)),
)

cityscapes = paired_task(
    "Cityscapes labels to street photo (A|B files, A = photo; AtoB for photo to labels)",
    direction="BtoA",
    description=__doc__.split("\n\n>>>")[0],
    palette=CITYSCAPES_PALETTE,
)


@hookimpl
def i2i_register_tasks(register):
    register("cityscapes", cityscapes)
