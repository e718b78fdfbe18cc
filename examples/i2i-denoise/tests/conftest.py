"""Let the tests run from a source checkout too, where the package may not be installed."""

import sys
from pathlib import Path

try:
    import i2i_denoise  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
