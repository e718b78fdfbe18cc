"""facades: architectural labels -> photo (CMP Facades, the pix2pix ``facades`` set).

A|B files, A (left) = the photo, B (right) = the colour-coded label map, so labels -> photo is
``BtoA`` (the default, as ``--direction BtoA`` in the official code). Paper recipe: 400 training
images, 200 epochs (100 constant + 100 decaying learning rate), batch size 1, U-Net 256, 70x70
PatchGAN, GAN + 100 L1, 286 -> 256 random crops with flips. ``i2i data fetch facades`` downloads it.
The images and labels are by R. Tyleček and R. Šára (CMP, Czech Technical University): cite
"Spatial Pattern Templates for Recognition of Objects with Regular Structure", GCPR 2013, and the
pix2pix paper for the A|B packaging.

>>> facades.direction, facades.in_channels, facades.out_channels
('BtoA', 3, 3)
>>> facades.class_names[:3], facades.class_colors[2]
(('background', 'facade', 'window'), (0, 128, 255))
"""

from __future__ import annotations

from i2i import hookimpl
from i2i.data.tasks_helpers import paired_task

#: The 12 CMP Facade classes (CMP label ids 1..12 in order) with the colours they have in the
#: pix2pix facades A|B files (measured on the files; see ``shared/data/README.md``).
FACADES_PALETTE = (
    ("background", (0, 0, 224)),
    ("facade", (0, 48, 255)),
    ("window", (0, 128, 255)),
    ("door", (0, 208, 255)),
    ("cornice", (32, 255, 224)),
    ("sill", (112, 255, 144)),
    ("balcony", (192, 255, 64)),
    ("blind", (255, 240, 0)),
    ("deco", (255, 160, 0)),
    ("molding", (255, 80, 0)),
    ("pillar", (255, 0, 0)),
    ("shop", (176, 0, 0)),
)

facades = paired_task(
    "Facade labels to photo (CMP Facades, A|B files, A = photo)",
    direction="BtoA",
    description=__doc__.split("\n\n>>>")[0],
    palette=FACADES_PALETTE,
)


@hookimpl
def i2i_register_tasks(register):
    register("facades", facades)
