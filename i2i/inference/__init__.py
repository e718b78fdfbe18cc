"""Inference: translate images of any size with a trained checkpoint.

>>> from i2i.inference import Translator, load
>>> callable(load) and Translator.__name__
'Translator'
"""

from __future__ import annotations

from i2i.inference.modes import MODES, set_test_mode
from i2i.inference.translator import (
    DEFAULT_TILE,
    PRECISIONS,
    Translator,
    load,
    pil_to_tensor,
    tensor_to_pil,
)

__all__ = [
    "DEFAULT_TILE",
    "MODES",
    "PRECISIONS",
    "Translator",
    "load",
    "pil_to_tensor",
    "set_test_mode",
    "tensor_to_pil",
]
