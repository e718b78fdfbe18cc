"""pix2pix (Isola et al. 2017), the first recipe: a discriminator step, then a generator step.

D step: ``objective.discriminator_loss(D, real_in, fake_in)`` with the generator's output
detached (the objective halves the adversarial part, as the paper does). G step:
``objective.generator_loss(D, fake_in, fake, target)``, i.e. the non-saturating adversarial
loss plus lambda * L1, with D's parameters frozen. Returned losses are detached tensors: the
step never waits on the device; the loop reads values only when it logs.

With ``skip_nonfinite`` set (``--on-nonfinite skip``) a NaN or infinite D loss leaves both
networks as they were; a non-finite G loss (rarer: D's loss sees the same fake images) leaves G
as it was, D's update of that step stands.

Roles: ``generator`` and ``discriminator`` (absent when the objective has no adversarial
term), the names checkpoints have always had. The generator translates in the run's direction.

>>> from i2i import catalog
>>> recipe = catalog().recipes.get("pix2pix").obj
>>> recipe.option_defaults()
{}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from i2i.engine.devices import autocast, make_grad_scaler
from i2i.engine.step import NonFiniteLossError, check_finite, set_requires_grad
from i2i.recipe import Recipe, RecipeSetup, RecipeStep, Wrapping


class Pix2PixStep(RecipeStep):
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
        specs: Mapping[str, dict[str, Any]] | None = None,
        translators: Mapping[str, str] | None = None,
    ):
        if (discriminator is None) != (opt_d is None):
            raise ValueError("discriminator and opt_d must be given together")
        super().__init__(
            specs=specs,
            translators=translators or {"AtoB": "generator"},
            device=device,
            precision=precision,
            channels_last=channels_last,
        )
        self.generator = generator
        self.discriminator = discriminator
        self.objective = objective
        self.opt_g = opt_g
        self.opt_d = opt_d
        self.conditional = conditional
        self.scaler_g = make_grad_scaler(self.device, precision)
        self.scaler_d = make_grad_scaler(self.device, precision)
        self._g: Callable[[Tensor], Tensor] = generator
        self._d: Callable[[Tensor], Tensor] | None = discriminator
        self._d_for_g: Callable[[Tensor], Tensor] | None = discriminator
        self.skip_nonfinite = False
        self.agree: Callable[[bool], bool] | None = None

    #: the D and G updates hold no Python state between steps and read nothing back
    graph_capturable = True

    def wrap(self, wrapping: Wrapping | None = None, **callables: Any) -> None:
        """DDP and compile around G and D; the G step calls D unwrapped by DDP.

        Without ``wrapping``, the keywords of :meth:`wrap_callables` set the callables directly.
        """
        if wrapping is None:
            self.wrap_callables(**callables)
            return
        d = self.discriminator
        self.wrap_callables(
            generator=wrapping.train(self.generator),
            discriminator=wrapping.train(d) if d is not None else None,
            discriminator_for_generator=(
                (wrapping.frozen(d) if wrapping.distributed else wrapping.train(d))
                if d is not None
                else None
            ),
        )

    def wrap_callables(
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

    def _disc_input(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.cat([x, y], dim=1) if self.conditional else y

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Update D then G on ``batch`` ({"input": x, "target": y}); returns detached losses."""
        x = self.to_device(batch["input"])
        y = self.to_device(batch["target"])
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


class Pix2PixRecipe(Recipe):
    """Conditional GAN + L1 on aligned pairs: U-Net generator, PatchGAN discriminator."""

    summary = "pix2pix: conditional GAN + lambda * L1 on aligned pairs (Isola et al. 2017)"
    options: Mapping[str, Any] = {}

    def build(self, setup: RecipeSetup) -> Pix2PixStep:
        from i2i.engine.build import discriminator_in_channels
        from i2i.engine.rng import derive_seed
        from i2i.losses import Objective

        cfg, task = setup.config, setup.task
        generator, g_spec = setup.generator(task.in_channels, task.out_channels)
        objective = Objective.from_weights(cfg.objective, setup.catalog.losses)
        specs = {"generator": g_spec}
        discriminator = None
        if objective.needs_discriminator:
            channels = discriminator_in_channels(
                task.in_channels, task.out_channels, conditional=cfg.conditional
            )
            discriminator, specs["discriminator"] = setup.discriminator(channels)
        if setup.dist is not None and setup.dist.rank > 0:
            # same initial weights on every rank, different dropout noise
            torch.manual_seed(derive_seed(cfg.seed, setup.dist.rank))
        opt_g = setup.adam(generator)
        opt_d = setup.adam(discriminator) if discriminator is not None else None
        return Pix2PixStep(
            generator,
            discriminator,
            objective.to(setup.device),
            opt_g,
            opt_d,
            conditional=cfg.conditional,
            device=setup.device,
            precision=setup.precision,
            channels_last=setup.channels_last,
            specs=specs,
            translators={cfg.direction: "generator"},
        )
