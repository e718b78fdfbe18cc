"""The learning-rate schedule of every optimizer of a run: constant, then linear decay.

As the official pix2pix and CycleGAN code (``lr_policy=linear``): the learning rate stays at
``lr`` for ``epochs`` epochs, then decays linearly over ``epochs_decay`` epochs:
``lr * (1 - max(0, epoch + 1 - epochs) / (epochs_decay + 1))`` for 0-based ``epoch``.

>>> rule = lr_factor(epochs=2, epochs_decay=2)
>>> [round(rule(e), 3) for e in range(4)]
[1.0, 1.0, 0.667, 0.333]
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR


def lr_factor(epochs: int, epochs_decay: int) -> Callable[[int], float]:
    """The multiplier of the learning rate in 0-based ``epoch`` (constant, then linear decay)."""

    def rule(epoch: int) -> float:
        return max(0.0, 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1))

    return rule


def make_schedulers(
    optimizers: Mapping[str, torch.optim.Optimizer], epochs: int, epochs_decay: int
) -> dict[str, LambdaLR]:
    """One scheduler per optimizer, stepped once per epoch."""
    rule = lr_factor(epochs, epochs_decay)
    return {k: LambdaLR(opt, rule) for k, opt in optimizers.items()}


def end_epoch(schedulers: Mapping[str, LambdaLR]) -> None:
    """Move every scheduler on to the next epoch.

    A run resumed from a checkpoint saved at an epoch's end (stopped by a signal there) ends
    that epoch before its first step: its optimizers stepped in the earlier process, so
    torch's warning that the scheduler steps "before optimizer.step()" does not apply, and
    the learning rate of each epoch comes from the rule alone (nothing is skipped).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"Detected call of `lr_scheduler\.step\(\)` before",
            category=UserWarning,
        )
        for sched in schedulers.values():
            sched.step()


def load_schedulers(
    schedulers: Mapping[str, LambdaLR],
    states: Mapping[str, Any],
    *,
    epochs: int,
    epochs_decay: int,
    epoch: int,
) -> None:
    """Restore saved scheduler states under the run's (possibly changed) schedule."""
    rule = lr_factor(epochs, epochs_decay)
    for key, sched in schedulers.items():
        sched.load_state_dict(states[key])
        sched.lr_lambdas = [rule] * len(sched.optimizer.param_groups)
        for group, base in zip(sched.optimizer.param_groups, sched.base_lrs, strict=True):
            group["lr"] = base * rule(epoch)  # the schedule may have changed
