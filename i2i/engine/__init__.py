"""Training, checkpoints and the pieces around them.

- :func:`train` runs a :class:`~i2i.config.RunConfig` with its recipe (the API behind
  ``i2i run``);
- :mod:`i2i.engine.checkpoint`: ``load_checkpoint``, ``build_role``, ``build_translator``,
  ``save_checkpoint``;
- :mod:`i2i.engine.loop`: the loop that drives any recipe's step.

>>> from i2i.engine import train, load_checkpoint
>>> callable(train) and callable(load_checkpoint)
True
"""

from __future__ import annotations

from i2i.engine.checkpoint import (
    Checkpoint,
    CheckpointError,
    build_generator,
    build_role,
    build_translator,
    load_checkpoint,
    save_checkpoint,
)
from i2i.engine.loop import Trainer, TrainingInterrupted
from i2i.engine.runner import prepare_run_dir, resume_config, train
from i2i.engine.step import TrainStep

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "TrainStep",
    "Trainer",
    "TrainingInterrupted",
    "build_generator",
    "build_role",
    "build_translator",
    "load_checkpoint",
    "prepare_run_dir",
    "resume_config",
    "save_checkpoint",
    "train",
]
