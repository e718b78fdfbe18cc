"""Convert models trained elsewhere into i2i checkpoints (``i2i convert``).

>>> from i2i.convert import OfficialOptions
>>> OfficialOptions().resolved().netG
'unet_256'
"""

from __future__ import annotations

from i2i.lazy import lazy_exports

_EXPORTS = {
    "OfficialFileError": "i2i.convert.names",
    "CONVERSION_FILE": "i2i.convert.official",
    "ConvertError": "i2i.convert.official",
    "OfficialOptions": "i2i.convert.official",
    "convert_official": "i2i.convert.official",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "CONVERSION_FILE",
    "ConvertError",
    "OfficialFileError",
    "OfficialOptions",
    "convert_official",
]
