"""The pix2pix paper's perceptual study: real vs generated, shown 1 s, which one is real?

``i2i study serve DIR... --answers FILE`` serves the study page; ``i2i study summary FILE``
prints "% judged real +- standard error" per method. See :mod:`i2i.study.protocol`.

>>> from i2i.study import load_pairs, make_server, summarise
"""

from i2i.lazy import lazy_exports

_EXPORTS = {
    "MAIN_TRIALS": "i2i.study.protocol",
    "PRACTICE_TRIALS": "i2i.study.protocol",
    "Pair": "i2i.study.protocol",
    "StudyError": "i2i.study.protocol",
    "append_record": "i2i.study.protocol",
    "load_pairs": "i2i.study.protocol",
    "plan_trials": "i2i.study.protocol",
    "read_records": "i2i.study.protocol",
    "summarise": "i2i.study.protocol",
    "make_server": "i2i.study.server",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
