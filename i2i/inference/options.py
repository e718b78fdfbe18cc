"""The choices of ``i2i translate`` and the inference API, importable without torch.

>>> MODES, PRECISIONS, DEFAULT_TILE
(('paper', 'eval'), ('auto', 'fp32', 'bf16'), 1024)
"""

from i2i.config import TEST_MODES

#: Test modes: ``paper`` keeps dropout and batch statistics on, as the pix2pix paper tests;
#: ``eval`` is PyTorch's eval mode (:mod:`i2i.inference.modes`); the same as a run's.
MODES = TEST_MODES
#: Inference precisions (``auto``: :func:`i2i.engine.devices.resolve_precision`).
PRECISIONS = ("auto", "fp32", "bf16")
#: Inputs larger than this many pixels on a side are translated in overlapping tiles.
DEFAULT_TILE = 1024
