"""maps: aerial photo <-> map (the pix2pix ``maps`` set, scraped from Google Maps).

A|B files, A (left) = the aerial photo, B (right) = the map tile. The default ``AtoB`` is
aerial -> map (the official ``sat2map`` model); ``--direction BtoA`` gives map -> aerial
(``map2sat``). Paper recipe: 1096 training images, 200 epochs (100 + 100 decay), batch size 1.
The images are 600x600; the default 286 -> 256 resize and crop follows the paper.

>>> maps.direction
'AtoB'
"""

from __future__ import annotations

from i2i import hookimpl
from i2i.data.tasks_helpers import paired_task

maps = paired_task(
    "Aerial photo to map (pix2pix maps, A|B files, A = aerial; BtoA for map to aerial)",
    direction="AtoB",
    description=__doc__.split("\n\n>>>")[0],
)


@hookimpl
def i2i_register_tasks(register):
    register("maps", maps)
