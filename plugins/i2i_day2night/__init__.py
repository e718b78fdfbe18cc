"""day2night: a daytime scene -> the same scene at night.

Data: the pix2pix ``night2day`` set (Transient Attributes webcams; ``i2i data fetch night2day``),
A|B files with A (left) = night and B (right) = day. Its authors note that a day -> night model
needs ``BtoA``, so that is this task's default; ``--direction AtoB`` trains night -> day. With
your own A|B files or ``A/`` ``B/`` folders where A is the day photo, pass ``--direction AtoB``.
Paper recipe: 17,823 training images, 17 epochs, batch size 4 (here 9 constant + 8 decaying).

>>> day2night.direction
'BtoA'
"""

from __future__ import annotations

from i2i import hookimpl
from i2i.data.tasks_helpers import paired_task

day2night = paired_task(
    "Day to night (pix2pix night2day data: A = night, so BtoA)",
    direction="BtoA",
    defaults={"batch_size": 4, "epochs": 9, "epochs_decay": 8},
    description=__doc__.split("\n\n>>>")[0],
)


@hookimpl
def i2i_register_tasks(register):
    register("day2night", day2night)
