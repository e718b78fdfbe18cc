"""thermal2color: a thermal (infrared) image -> a colour photo of the same scene.

Paired data as A|B files or ``A/`` ``B/`` folders, A = thermal, B = colour (e.g. aligned
KAIST multispectral frames; no public pix2pix archive exists, so bring your own), default
``AtoB``. The thermal image is read as luminance: one input channel (a colour-mapped thermal
image becomes its gray level). Output: RGB. Defaults: the paper's recipe.

>>> thermal2color.in_channels, thermal2color.out_channels, thermal2color.direction
(1, 3, 'AtoB')
"""

from __future__ import annotations

from i2i import hookimpl
from i2i.data.tasks_helpers import paired_task

thermal2color = paired_task(
    "Thermal to colour photo (A|B files or A/ B/ folders, A = thermal, 1 channel)",
    direction="AtoB",
    in_channels=1,
    canvas="gray",
    metrics=("l1", "psnr", "ssim", "color_hist"),
    description=__doc__.split("\n\n>>>")[0],
)


@hookimpl
def i2i_register_tasks(register):
    register("thermal2color", thermal2color)
