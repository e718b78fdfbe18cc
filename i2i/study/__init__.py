"""The pix2pix paper's perceptual study: real vs generated, shown 1 s, which one is real?

``i2i study serve DIR... --answers FILE`` serves the study page; ``i2i study summary FILE``
prints "% judged real +- standard error" per method. See :mod:`i2i.study.protocol`.

>>> from i2i.study import load_pairs, make_server, summarise
"""

from i2i.study.protocol import (
    MAIN_TRIALS,
    PRACTICE_TRIALS,
    Pair,
    StudyError,
    append_record,
    load_pairs,
    plan_trials,
    read_records,
    summarise,
)
from i2i.study.server import make_server

__all__ = [
    "MAIN_TRIALS",
    "PRACTICE_TRIALS",
    "Pair",
    "StudyError",
    "append_record",
    "load_pairs",
    "make_server",
    "plan_trials",
    "read_records",
    "summarise",
]
