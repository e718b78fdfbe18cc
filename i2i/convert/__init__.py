"""Convert models trained elsewhere into i2i checkpoints (``i2i convert``).

>>> from i2i.convert import OfficialOptions
>>> OfficialOptions().resolved().netG
'unet_256'
"""

from __future__ import annotations

from i2i.convert.names import OfficialFileError
from i2i.convert.official import (
    CONVERSION_FILE,
    ConvertError,
    OfficialOptions,
    convert_official,
)

__all__ = [
    "CONVERSION_FILE",
    "ConvertError",
    "OfficialFileError",
    "OfficialOptions",
    "convert_official",
]
