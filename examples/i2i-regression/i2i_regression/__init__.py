"""An example i2i recipe plugin: ``regression``, a generator trained on reconstruction losses
alone, with an exponential moving average (EMA) of its weights that does the translating.

No discriminator: the run's ``--objective`` holds reconstruction terms only (``l1=1`` by default;
``l2=1``, ``l1=1,l2=0.5`` or any plugin's reconstruction loss from ``i2i list losses``). After
every update, a second copy of the generator moves a little towards it::

    average <- decay * average + (1 - decay) * model,   decay = min(ema, (1 + n) / (10 + n))

(``n``: updates so far; the ramp lets the average follow the fast early changes). The average
is usually smoother and scores a little better than the last weights; ``--recipe-opt ema=0``
turns it off, and then the model itself translates.

Roles: ``model`` (trained by Adam) and ``average`` (the EMA; present when ``ema > 0``). Both are
generators, so checkpoints hold both and ``i2i translate`` / ``i2i.load`` use the one the
checkpoint's translators name: ``average`` when there is one.

>>> RegressionRecipe().option_defaults()
{'ema': 0.999}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from i2i import (
    Catalog,
    ConfigError,
    Recipe,
    RecipeOption,
    RecipeSetup,
    RecipeStep,
    Task,
    ValidationContext,
    Wrapping,
    adversarial_terms,
    autocast,
    check_finite,
    hookimpl,
    in_test_mode,
    make_grad_scaler,
)

if TYPE_CHECKING:  # a run's configuration, for type checkers only
    from i2i.config import RunConfig

MODEL, AVERAGE = "model", "average"


class RegressionStep(RecipeStep):
    """One Adam update of ``model`` on a batch's reconstruction loss, then of ``average``."""

    def __init__(
        self,
        model: nn.Module,
        average: nn.Module | None,
        objective: Any,
        opt: torch.optim.Optimizer,
        *,
        ema: float,
        specs: Mapping[str, dict[str, Any]],
        translators: Mapping[str, str],
    ):
        super().__init__(specs=specs, translators=translators)
        self.model, self.average = model, average
        self.objective, self.opt, self.ema = objective, opt, ema
        self.updates = 0  # EMA updates so far (its ramp): resume state
        self.scaler: Any = None  # made on first use, once device and precision are known
        self._model: Any = model  # what the forward passes call (DDP, compiled: see wrap)

    def modules(self) -> dict[str, nn.Module]:
        out = {MODEL: self.model}
        if self.average is not None:
            out[AVERAGE] = self.average
        return out

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {MODEL: self.opt}  # the average has none: it is never trained

    def wrap(self, wrapping: Wrapping) -> None:
        self._model = wrapping.train(self.model)

    def _scaler(self) -> Any:
        """The fp16 gradient scaler (with other precisions it passes calls through)."""
        if self.scaler is None:
            self.scaler = make_grad_scaler(self.device, self.precision)
        return self.scaler

    def extra_state(self) -> dict[str, Any]:
        return {"ema_updates": self.updates, "scaler": self._scaler().state_dict()}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.updates = int(state.get("ema_updates", 0))
        if state.get("scaler"):
            self._scaler().load_state_dict(state["scaler"])

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        x, y = self.to_device(batch["input"]), self.to_device(batch["target"])
        self.opt.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            loss, parts = self.objective.generator_loss(None, None, self._model(x), y)
        if self.skip_nonfinite:  # --on-nonfinite skip: raise before anything changes
            check_finite({"loss": loss, **parts}, self.agree)
        scaler = self._scaler()
        scaler.scale(loss).backward()
        scaler.step(self.opt)
        scaler.update()
        self._update_average()
        return {"loss": loss.detach(), **parts}

    @torch.no_grad()
    def _update_average(self) -> None:
        if self.average is None:
            return
        self.updates += 1
        decay = min(self.ema, (1 + self.updates) / (10 + self.updates))
        for avg, new in zip(self.average.parameters(), self.model.parameters(), strict=True):
            avg.lerp_(new, 1.0 - decay)
        for avg, new in zip(self.average.buffers(), self.model.buffers(), strict=True):
            avg.copy_(new)  # batch-norm statistics follow the model

    def validate(self, data: Any, ctx: ValidationContext) -> dict[str, float]:
        """The task's metrics of the translating role, and the objective on ``data`` too."""
        values = super().validate(data, ctx)
        net = ctx.local(self.translator(ctx.direction))
        total, count = 0.0, 0
        # paper mode uses batch statistics: one image at a time, as i2i's evaluation does
        loader = DataLoader(data, batch_size=1 if ctx.mode == "paper" else ctx.batch_size)
        with in_test_mode(net, ctx.mode):
            for batch in loader:
                x, y = self.to_device(batch["input"]), self.to_device(batch["target"])
                with autocast(self.device, self.precision):
                    loss, _ = self.objective.generator_loss(None, None, net(x), y)
                total += float(loss) * x.shape[0]
                count += x.shape[0]
        values["loss"] = total / max(count, 1)
        return values


class RegressionRecipe(Recipe):
    """A generator trained on reconstruction losses only, translating through its EMA."""

    summary = "Regression: reconstruction losses only (no discriminator), EMA of the weights"
    options = {
        "ema": RecipeOption(
            0.999,
            "Decay of the moving average of the weights that translates (0: off, the "
            "trained weights translate; below 1)",
            minimum=0.0,
        ),
    }
    #: Settings when the task's defaults are for another recipe (pix2pix's GAN choices).
    defaults = {"objective": {"l1": 1.0}, "beta1": 0.9, "test_mode": "eval"}

    def check_config(self, config: RunConfig, task: Task, catalog: Catalog) -> None:
        adversarial = adversarial_terms(config.objective, catalog)
        if adversarial:
            raise ConfigError(
                f"recipe 'regression' trains no discriminator, but the objective "
                f"{config.objective} has the adversarial term {adversarial[0]!r}; pass "
                "reconstruction terms only, e.g. --objective l1=1 or --objective l2=1"
            )
        if self.resolve_options(config.recipe_options)["ema"] >= 1:
            raise ConfigError("recipe option 'ema' must be below 1 (0 turns the average off)")

    def build(self, setup: RecipeSetup) -> RegressionStep:
        from i2i import Objective

        cfg, task = setup.config, setup.task
        model, spec = setup.generator(task.in_channels, task.out_channels)
        specs, average = {MODEL: spec}, None
        ema = float(setup.options["ema"])
        if ema > 0:
            average, specs[AVERAGE] = setup.generator(task.in_channels, task.out_channels)
            average.load_state_dict(model.state_dict())
            average.requires_grad_(False)
        objective = Objective.from_weights(cfg.objective, setup.catalog.losses).to(setup.device)
        step = RegressionStep(
            model,
            average,
            objective,
            setup.adam(model),
            ema=ema,
            specs=specs,
            translators={cfg.direction: AVERAGE if average is not None else MODEL},
        )
        return step.on(setup)  # device, precision and memory format of the run


@hookimpl
def i2i_register_recipes(register):
    """Register the regression recipe."""
    register("regression", RegressionRecipe())
