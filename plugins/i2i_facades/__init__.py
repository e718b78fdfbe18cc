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
"""

from __future__ import annotations

from i2i import hookimpl
from i2i.data.tasks_helpers import paired_task

facades = paired_task(
    "Facade labels to photo (CMP Facades, A|B files, A = photo)",
    direction="BtoA",
    description=__doc__.split("\n\n>>>")[0],
)


@hookimpl
def i2i_register_tasks(register):
    register("facades", facades)
