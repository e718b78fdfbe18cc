"""What pix2pix does with one batch: a discriminator step, then a generator step.

The step knows nothing of epochs, schedules, logging or devices beyond its own batch; the
training loop (:mod:`i2i.engine.loop`) drives any object with the same small interface
(:class:`TrainStep`), so another recipe (CycleGAN's unpaired step, say) reuses the loop.

D step: ``objective.discriminator_loss(D, real_in, fake_in)`` with the generator's output
detached (the objective halves the adversarial part, as the paper does). G step:
``objective.generator_loss(D, fake_in, fake, target)``, i.e. the non-saturating adversarial
loss plus lambda * L1, with D's parameters frozen. Returned losses are detached tensors: the
step never waits on the device; the loop reads values only when it logs.

With ``skip_nonfinite`` set (``--on-nonfinite skip``) the step reads each loss before the update
it would feed (one device sync per update) and raises :class:`NonFiniteLossError` instead of
updating: a NaN or infinite D loss leaves both networks as they were; a non-finite G loss
(rarer: D's loss sees the same fake images) leaves G as it was, D's update of that step stands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from i2i.engine.devices import autocast, make_grad_scaler


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


class Pix2PixStep:
    """One pix2pix update of ``generator`` and ``discriminator`` on a batch.

    ``discriminator`` and ``opt_d`` are ``None`` when the objective has no adversarial term
    (an L1-only baseline). ``wrap`` swaps in wrapped callables (DDP, ``torch.compile``) while
    state dicts keep coming from the plain modules. ``skip_nonfinite`` and ``agree`` are set by
    the loop for ``on_nonfinite="skip"`` (see the module docstring).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module | None,
        objective: Any,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer | None,
        *,
        conditional: bool = True,
        device: torch.device | str = "cpu",
        precision: str = "fp32",
        channels_last: bool = False,
    ):
        if (discriminator is None) != (opt_d is None):
            raise ValueError("discriminator and opt_d must be given together")
        self.generator = generator
        self.discriminator = discriminator
        self.objective = objective
        self.opt_g = opt_g
        self.opt_d = opt_d
        self.conditional = conditional
        self.device = torch.device(device)
        self.precision = precision
        self.channels_last = channels_last
        self.scaler_g = make_grad_scaler(self.device, precision)
        self.scaler_d = make_grad_scaler(self.device, precision)
        self._g: Callable[[Tensor], Tensor] = generator
        self._d: Callable[[Tensor], Tensor] | None = discriminator
        self._d_for_g: Callable[[Tensor], Tensor] | None = discriminator
        self.skip_nonfinite = False
        self.agree: Callable[[bool], bool] | None = None

    def wrap(
        self,
        *,
        generator: Callable[[Tensor], Tensor] | None = None,
        discriminator: Callable[[Tensor], Tensor] | None = None,
        discriminator_for_generator: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        """Use wrapped callables for the forward passes.

        ``discriminator_for_generator`` is what the G step calls: under DDP the plain (or
        compiled) module, since D's gradients from the G step are never used.
        """
        if generator is not None:
            self._g = generator
        if discriminator is not None:
            self._d = discriminator
        if discriminator_for_generator is not None:
            self._d_for_g = discriminator_for_generator

    def modules(self) -> dict[str, nn.Module]:
        """The trained modules by role (plain, unwrapped)."""
        out = {"generator": self.generator}
        if self.discriminator is not None:
            out["discriminator"] = self.discriminator
        return out

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        out = {"generator": self.opt_g}
        if self.opt_d is not None:
            out["discriminator"] = self.opt_d
        return out

    def state_dict(self) -> dict[str, Any]:
        """Optimizer and gradient-scaler states (the weights travel separately)."""
        return {
            "optimizers": {k: opt.state_dict() for k, opt in self.optimizers().items()},
            "scalers": {
                "generator": self.scaler_g.state_dict(),
                "discriminator": self.scaler_d.state_dict(),
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, opt in self.optimizers().items():
            opt.load_state_dict(state["optimizers"][key])
        scalers = state.get("scalers", {})
        if scalers.get("generator"):
            self.scaler_g.load_state_dict(scalers["generator"])
        if scalers.get("discriminator"):
            self.scaler_d.load_state_dict(scalers["discriminator"])

    def _to_device(self, t: Tensor) -> Tensor:
        t = t.to(self.device, non_blocking=True)
        if self.channels_last and t.ndim == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def _disc_input(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.cat([x, y], dim=1) if self.conditional else y

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Update D then G on ``batch`` ({"input": x, "target": y}); returns detached losses."""
        x = self._to_device(batch["input"])
        y = self._to_device(batch["target"])
        with autocast(self.device, self.precision):
            fake = self._g(x)
        losses: dict[str, Tensor] = {}

        if self.discriminator is not None:
            set_requires_grad(self.discriminator, True)
            self.opt_d.zero_grad(set_to_none=True)
            with autocast(self.device, self.precision):
                d_loss, d_parts = self.objective.discriminator_loss(
                    self._d, self._disc_input(x, y), self._disc_input(x, fake.detach())
                )
            if self.skip_nonfinite:
                check_finite({"d_loss": d_loss, **d_parts}, self.agree)
            self.scaler_d.scale(d_loss).backward()
            self.scaler_d.step(self.opt_d)
            self.scaler_d.update()
            set_requires_grad(self.discriminator, False)  # the G step leaves D alone
            losses["d_loss"] = d_loss.detach()
            losses.update({k: v.detach() for k, v in d_parts.items()})

        self.opt_g.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            fake_in = self._disc_input(x, fake) if self.discriminator is not None else None
            g_loss, g_parts = self.objective.generator_loss(self._d_for_g, fake_in, fake, y)
        if self.skip_nonfinite:
            try:
                check_finite({"g_loss": g_loss, **g_parts}, self.agree)
            except NonFiniteLossError:
                set_requires_grad(self.discriminator, True)  # as after a full step
                raise
        self.scaler_g.scale(g_loss).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        set_requires_grad(self.discriminator, True)
        losses["g_loss"] = g_loss.detach()
        losses.update({k: v.detach() for k, v in g_parts.items()})
        return losses
