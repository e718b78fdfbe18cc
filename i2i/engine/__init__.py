"""Training, checkpoints and the pieces around them.

- :func:`train` runs a :class:`~i2i.config.RunConfig` (the API behind ``i2i run``);
- :mod:`i2i.engine.checkpoint`: ``load_checkpoint``, ``build_generator``, ``save_checkpoint``;
- :mod:`i2i.engine.step`: the pix2pix step; :mod:`i2i.engine.loop`: the loop that drives it.

>>> from i2i.engine import train, load_checkpoint
>>> callable(train) and callable(load_checkpoint)
True
"""

from __future__ import annotations

from i2i.engine.checkpoint import (
    Checkpoint,
    CheckpointError,
    build_discriminator,
    build_generator,
    load_checkpoint,
    save_checkpoint,
)
from i2i.engine.loop import Trainer, TrainingInterrupted
from i2i.engine.runner import prepare_run_dir, resume_config, train
from i2i.engine.step import Pix2PixStep, TrainStep

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "Pix2PixStep",
    "TrainStep",
    "Trainer",
    "TrainingInterrupted",
    "build_discriminator",
    "build_generator",
    "load_checkpoint",
    "prepare_run_dir",
    "resume_config",
    "save_checkpoint",
    "train",
]
