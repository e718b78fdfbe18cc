"""What a training run saves besides the weights, and how it comes back (the Trainer's half).

Counters (step, epoch, position in the epoch), the recipe step's own state (optimizers, pools,
scalers), the learning-rate schedulers, every random generator, and the fault counters. A run
resumed with another world size or batch size restarts the epoch it was in, since its position
means another thing then.
"""

from __future__ import annotations

from typing import Any

import torch

from i2i.engine import checkpoint as ckpt_io
from i2i.engine.rng import capture_rng_state, derive_seed, restore_rng_state
from i2i.engine.schedule import load_schedulers


class ResumableState:
    """Mixed into :class:`i2i.engine.loop.Trainer`: its resume state and :meth:`restore`."""

    def state_dict(self) -> dict[str, Any]:
        """Everything but the weights needed to continue: counters, optimizers, RNG."""
        return {
            "step": self.global_step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "world_size": self.dist.world_size,
            "batch_size": self.config.batch_size,
            "recipe": self.step.state_dict(),
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "rng": capture_rng_state(),
            **self.faults.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        same_split = (state.get("world_size", 1), state.get("batch_size")) == (
            self.dist.world_size,
            self.config.batch_size,
        )
        # otherwise the position inside an epoch means another thing: restart the epoch
        self.batch_in_epoch = int(state["batch_in_epoch"]) if same_split else 0
        self.global_step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.step.load_state_dict(state["recipe"])
        cfg = self.config
        load_schedulers(
            self.schedulers,
            state["schedulers"],
            epochs=cfg.epochs,
            epochs_decay=cfg.epochs_decay,
            epoch=self.epoch,
        )
        restore_rng_state(state["rng"])
        self.faults.load_state_dict(state)
        if self.dist.rank > 0:
            torch.manual_seed(derive_seed(self.config.seed, self.global_step, self.dist.rank))
        self._last_saved = self.global_step

    def restore(self, checkpoint: ckpt_io.Checkpoint) -> None:
        """Load weights and training state from ``checkpoint`` (before any wrapping)."""
        for role, module in self.step.modules().items():
            if role not in checkpoint.weights:
                raise ckpt_io.CheckpointError(f"Checkpoint {checkpoint.path} has no {role} weights")
            module.load_state_dict(checkpoint.weights[role], strict=True)
        path = checkpoint.path / ckpt_io.TRAIN_STATE_FILE
        try:
            self.load_state_dict(checkpoint.train_state())
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            # a file torch.save wrote, but not i2i's resume state (or from an older layout)
            what = f"no {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            raise ckpt_io.CheckpointError(
                f"{path} is not resume state this i2i can read ({what}); resume from another "
                "checkpoint, or start a new run with --init-from on this one"
            ) from exc
        self.last_checkpoint = checkpoint.path
