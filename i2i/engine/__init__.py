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

from i2i.lazy import lazy_exports

_EXPORTS = {
    "Checkpoint": "i2i.engine.checkpoint",
    "CheckpointError": "i2i.engine.checkpoint",
    "build_generator": "i2i.engine.checkpoint",
    "build_role": "i2i.engine.checkpoint",
    "build_translator": "i2i.engine.checkpoint",
    "load_checkpoint": "i2i.engine.checkpoint",
    "save_checkpoint": "i2i.engine.checkpoint",
    "Trainer": "i2i.engine.loop",
    "TrainingInterrupted": "i2i.engine.loop",
    "prepare_run_dir": "i2i.engine.runner",
    "resume_config": "i2i.engine.runner",
    "train": "i2i.engine.runner",
    "TrainStep": "i2i.engine.step",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
