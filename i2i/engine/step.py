"""What every training step shares: the interface the loop drives, and non-finite checks.

A step knows nothing of epochs, schedules, logging or devices beyond its own batch; the
training loop (:mod:`i2i.engine.loop`) drives any object with the small interface of
:class:`TrainStep` (recipes build :class:`i2i.recipe.RecipeStep` subclasses, such as
:class:`i2i.recipes.pix2pix.Pix2PixStep`).

With ``skip_nonfinite`` set (``--on-nonfinite skip``) a step reads each loss before the update
it would feed (:func:`check_finite`, one device sync per update) and raises
:class:`NonFiniteLossError` instead of updating.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch
from torch import Tensor, nn


class NonFiniteLossError(FloatingPointError):
    """A loss of the step is NaN or infinite; raised before the update it would have fed.

    ``losses`` holds the values (floats) of the losses computed so far in the step.
    """

    def __init__(self, losses: Mapping[str, float]):
        self.losses = dict(losses)
        shown = ", ".join(f"{k}={v:g}" for k, v in self.losses.items())
        super().__init__(f"non-finite loss ({shown}); the update was skipped")


def check_finite(losses: Mapping[str, Tensor], agree: Callable[[bool], bool] | None = None) -> None:
    """Raise :class:`NonFiniteLossError` when any of ``losses`` is NaN or infinite.

    One device sync; ``agree`` (e.g. "any rank?") makes distributed ranks decide together.

    >>> check_finite({"l1": torch.tensor(0.5)})
    >>> check_finite({"l1": torch.tensor(float("nan"))})
    Traceback (most recent call last):
    ...
    i2i.engine.step.NonFiniteLossError: non-finite loss (l1=nan); the update was skipped
    """
    values = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
    bad = not bool(torch.isfinite(values).all())
    if agree is not None:
        bad = agree(bad)
    if bad:
        raise NonFiniteLossError(dict(zip(losses, values.tolist(), strict=True)))


class TrainStep(Protocol):
    """The interface the training loop needs from a recipe."""

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...

    def modules(self) -> dict[str, nn.Module]: ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...


def set_requires_grad(module: nn.Module | None, flag: bool) -> None:
    """Switch gradients of every parameter of ``module`` on or off."""
    if module is None:
        return
    for p in module.parameters():
        p.requires_grad_(flag)


def __getattr__(name: str) -> Any:
    # Pix2PixStep moved to the pix2pix recipe; importing it from here keeps working.
    if name == "Pix2PixStep":
        from i2i.recipes.pix2pix import Pix2PixStep

        return Pix2PixStep
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
