"""Inference: translate images of any size with a trained checkpoint.

>>> from i2i.inference import Translator, load
>>> callable(load) and Translator.__name__
'Translator'
"""

from __future__ import annotations

from i2i.lazy import lazy_exports

_EXPORTS = {
    "MODES": "i2i.inference.options",
    "set_test_mode": "i2i.inference.modes",
    "DEFAULT_TILE": "i2i.inference.options",
    "PRECISIONS": "i2i.inference.options",
    "Translator": "i2i.inference.translator",
    "load": "i2i.inference.translator",
    "pil_to_tensor": "i2i.inference.translator",
    "tensor_to_pil": "i2i.inference.translator",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
