"""CycleGAN (Zhu et al. 2017): two mappings learnt from unpaired data, made to invert each other.

Domains: X is the run's input side, Y its target side (with ``--direction`` as for pix2pix).

- ``G: X -> Y`` and ``F: Y -> X`` (roles ``G`` and ``F``), ResNet generators by default;
- ``D_Y`` tells real y from G(x), ``D_X`` real x from F(y): plain (unconditional) PatchGANs;
- the adversarial term of the run's objective (least-squares GAN by default, Mao et al.), its
  discriminator loss halved as in the paper;
- cycle consistency ``lambda_x * |F(G(x)) - x|_1 + lambda_y * |G(F(y)) - y|_1``;
- identity ``lambda_identity * (lambda_y * |G(y) - y|_1 + lambda_x * |F(x) - x|_1)`` when both
  domains have as many channels (the official code's 0.5 default);
- a history of generated images for each discriminator (Shrivastava et al.), 50 by default;
- Adam 2e-4 (0.5, 0.999) for G and F together and for D_X and D_Y together, constant then
  linearly decaying learning rates (the run's ``--epochs``/``--epochs-decay``).

One step, as the official code: G and F update with D_X and D_Y frozen, then D_X and D_Y update
on real images and pooled fakes. ``G`` translates in the run's direction and ``F`` the other
way: ``i2i translate --direction`` picks either.

Validation reports the cycle reconstruction errors (``cycle_x``, ``cycle_y``: mean absolute
error in [0, 1] images) on whatever validation data there is, and the task's pixel metrics of
``G`` only when that data is paired.

>>> recipe = CycleGANRecipe()
>>> recipe.option_defaults()
{'lambda_x': 10.0, 'lambda_y': 10.0, 'lambda_identity': 0.5, 'pool_size': 50}
>>> recipe.defaults["objective"], recipe.defaults["lr"], recipe.defaults["norm"]
({'lsgan': 1.0}, 0.0002, 'instance')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

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
    in_test_mode,
    make_grad_scaler,
    other_direction,
    set_requires_grad,
    to_image_range,
)
from i2i_cyclegan.pool import ImagePool

if TYPE_CHECKING:
    from i2i.config import RunConfig

X_TO_Y, Y_TO_X = "G", "F"
JUDGE_X, JUDGE_Y = "D_X", "D_Y"


#: The batch keys of the image pools' draws (:meth:`CycleGANStep.prepare_batch`), by pool.
POOL_DRAWS = {JUDGE_Y: "pool_draws_y", JUDGE_X: "pool_draws_x"}


class CycleGANStep(RecipeStep):
    """One CycleGAN update of G, F (together) then D_X, D_Y (together) on an unpaired batch.

    ``batch["input"]`` holds images of X, ``batch["target"]`` images of Y (their pairing, if
    any, is never used). The image pools draw on the host in :meth:`prepare_batch` where the
    step is replayed as a CUDA graph (``i2i run --cuda-graphs``), else during the step.
    """

    graph_capturable = True

    def __init__(
        self,
        nets: Mapping[str, nn.Module],
        objective: Any,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        *,
        options: Mapping[str, Any],
        specs: Mapping[str, dict[str, Any]],
        translators: Mapping[str, str],
        seed: int = 0,
    ):
        super().__init__(specs=specs, translators=translators)
        self.nets = dict(nets)
        self.objective = objective
        self.opt_g, self.opt_d = opt_g, opt_d
        self.scalers: dict[str, Any] = {}
        self.lambda_x = float(options["lambda_x"])
        self.lambda_y = float(options["lambda_y"])
        self.lambda_identity = float(options["lambda_identity"])
        gen = torch.Generator().manual_seed(int(seed))
        self.pools = {
            JUDGE_X: ImagePool(int(options["pool_size"]), generator=gen),
            JUDGE_Y: ImagePool(int(options["pool_size"]), generator=gen),
        }
        self._call: dict[str, Any] = dict(self.nets)  # wrapped callables for forward passes
        self._frozen: dict[str, Any] = dict(self.nets)

    def modules(self) -> dict[str, nn.Module]:
        return dict(self.nets)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generators": self.opt_g, "discriminators": self.opt_d}

    def wrap(self, wrapping: Wrapping) -> None:
        for role, net in self.nets.items():
            self._call[role] = wrapping.train(net)
            self._frozen[role] = wrapping.frozen(net) if wrapping.distributed else self._call[role]

    def _scaler(self, name: str) -> Any:
        """The fp16 gradient scaler of one optimizer (it passes calls through otherwise)."""
        if name not in self.scalers:
            self.scalers[name] = make_grad_scaler(self.device, self.precision)
        return self.scalers[name]

    def extra_state(self) -> dict[str, Any]:
        return {
            "pools": {k: p.state_dict() for k, p in self.pools.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
        }

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        for key, saved in state.get("scalers", {}).items():
            if saved:
                self._scaler(key).load_state_dict(saved)
        for key, pool in self.pools.items():
            saved = state.get("pools", {}).get(key)
            if saved is not None:
                pool.load_state_dict(saved)

    def prepare_batch(self, batch: Mapping[str, Any]) -> Mapping[str, Any]:
        """``batch`` with both pools' draws for it (D_Y's fakes are G(x), D_X's are F(y))."""
        sizes = {JUDGE_Y: len(batch["input"]), JUDGE_X: len(batch["target"])}
        return {**batch, **{key: self.pools[j].draw(sizes[j]) for j, key in POOL_DRAWS.items()}}

    def _pooled(self, judge: str, fakes: Tensor, batch: Mapping[str, Any]) -> Tensor:
        """``fakes`` mixed with ``judge``'s pool, by the batch's draws or by drawing now."""
        pool, draws = self.pools[judge], batch.get(POOL_DRAWS[judge])
        return pool.query(fakes) if draws is None else pool.apply(fakes, draws)

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        x = self.to_device(batch["input"])
        y = self.to_device(batch["target"])
        g, f = self._call[X_TO_Y], self._call[Y_TO_X]
        discriminators = (self.nets[JUDGE_X], self.nets[JUDGE_Y])

        # G and F, with D_X and D_Y frozen
        for d in discriminators:
            set_requires_grad(d, False)
        self.opt_g.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            fake_y, fake_x = g(x), f(y)
            rec_x, rec_y = f(fake_y), g(fake_x)
            adv_y, parts_y = self.objective.generator_loss(
                self._frozen[JUDGE_Y], fake_y, fake_y, fake_y
            )
            adv_x, parts_x = self.objective.generator_loss(
                self._frozen[JUDGE_X], fake_x, fake_x, fake_x
            )
            cycle_x = F.l1_loss(rec_x.float(), x.float()) * self.lambda_x
            cycle_y = F.l1_loss(rec_y.float(), y.float()) * self.lambda_y
            losses = {"g_adv_y": adv_y, "g_adv_x": adv_x, "cycle_x": cycle_x, "cycle_y": cycle_y}
            if self.lambda_identity > 0:
                idt_y = F.l1_loss(g(y).float(), y.float()) * self.lambda_y * self.lambda_identity
                idt_x = F.l1_loss(f(x).float(), x.float()) * self.lambda_x * self.lambda_identity
                losses.update(idt_y=idt_y, idt_x=idt_x)
            g_loss = sum(v.float() for v in losses.values())
        if self.skip_nonfinite:
            try:
                check_finite({"g_loss": g_loss, **losses}, self.agree)
            except FloatingPointError:
                for d in discriminators:
                    set_requires_grad(d, True)
                raise
        scaler = self._scaler("generators")
        scaler.scale(g_loss).backward()
        scaler.step(self.opt_g)
        scaler.update()
        for d in discriminators:
            set_requires_grad(d, True)

        # D_X and D_Y on real images and pooled fakes
        self.opt_d.zero_grad(set_to_none=True)
        pooled_y = self._pooled(JUDGE_Y, fake_y, batch)
        pooled_x = self._pooled(JUDGE_X, fake_x, batch)
        with autocast(self.device, self.precision):
            d_y, d_parts_y = self.objective.discriminator_loss(self._call[JUDGE_Y], y, pooled_y)
            d_x, d_parts_x = self.objective.discriminator_loss(self._call[JUDGE_X], x, pooled_x)
            d_loss = d_y.float() + d_x.float()
        if self.skip_nonfinite:
            check_finite({"d_loss": d_loss, "d_y": d_y, "d_x": d_x}, self.agree)
        scaler = self._scaler("discriminators")
        scaler.scale(d_loss).backward()
        scaler.step(self.opt_d)
        scaler.update()

        out = {"g_loss": g_loss.detach(), "d_loss": d_loss.detach()}
        out.update({k: v.detach() for k, v in losses.items()})
        out.update({"d_y": d_y.detach(), "d_x": d_x.detach()})
        return out

    # ----------------------------------------------------------------- validation

    def validate(self, data: Any, ctx: ValidationContext) -> dict[str, float]:
        """Cycle errors on ``data``; the task's metrics of G too when ``data`` is paired."""
        values: dict[str, float] = {}
        if getattr(data, "paired", True):
            values.update(super().validate(data, ctx))
        values.update(self._cycle_errors(data, ctx))
        return values

    def _cycle_errors(self, data: Any, ctx: ValidationContext) -> dict[str, float]:
        g, f = ctx.local(self.nets[X_TO_Y]), ctx.local(self.nets[Y_TO_X])
        bs = 1 if ctx.mode == "paper" else ctx.batch_size
        sums = {"cycle_x": 0.0, "cycle_y": 0.0}
        count = 0
        loader = DataLoader(data, batch_size=bs, shuffle=False, num_workers=0)
        with in_test_mode(g, ctx.mode), in_test_mode(f, ctx.mode):
            for batch in loader:
                x = self.to_device(batch["input"])
                y = self.to_device(batch["target"])
                with autocast(self.device, self.precision):
                    rec_x, rec_y = f(g(x)), g(f(y))
                sums["cycle_x"] += float(_image_l1(rec_x, x).sum())
                sums["cycle_y"] += float(_image_l1(rec_y, y).sum())
                count += x.shape[0]
        out = {k: v / max(count, 1) for k, v in sums.items()}
        out.setdefault("images", count)
        return out

    def sample_grid(self, data: Any, ctx: ValidationContext, indices: list[int]) -> Tensor:
        """One row per sample: x | G(x) | F(G(x)) | y | F(y) | G(F(y))."""
        g, f = ctx.local(self.nets[X_TO_Y]), ctx.local(self.nets[Y_TO_X])
        tiles: list[Tensor] = []
        loader = DataLoader(Subset(data, list(indices)), batch_size=1, num_workers=0)
        with in_test_mode(g, ctx.mode), in_test_mode(f, ctx.mode):
            for batch in loader:
                x = self.to_device(batch["input"])
                y = self.to_device(batch["target"])
                with autocast(self.device, self.precision):
                    fy = g(x).float()
                    fx = f(y).float()
                    rx, ry = f(fy).float(), g(fx).float()
                tiles += [_rgb(t) for t in (x, fy, rx, y, fx, ry)]
        size = tiles[0].shape[-2:]
        tiles = [
            t
            if t.shape[-2:] == size
            else F.interpolate(t[None], size=tuple(size), mode="bilinear")[0]
            for t in tiles
        ]
        from torchvision.utils import make_grid  # torchvision imports torch._dynamo: seconds

        return make_grid(torch.stack(tiles), nrow=6, padding=2, pad_value=1.0)


def _image_l1(a: Tensor, b: Tensor) -> Tensor:
    """Per-image mean absolute error of model tensors, in [0, 1] image units: ``(B,)``."""
    return (to_image_range(a.float()) - to_image_range(b.float())).abs().flatten(1).mean(1)


def _rgb(t: Tensor) -> Tensor:
    """A model tensor ``(1, C, H, W)`` as an RGB [0, 1] image ``(3, H, W)`` for the grid."""
    img = to_image_range(t[0].float()).cpu()
    if img.shape[0] == 1:
        return img.expand(3, -1, -1)
    if img.shape[0] == 3:
        return img
    return img[:3] if img.shape[0] > 3 else torch.cat([img, img[-1:]], 0)[:3]


class CycleGANRecipe(Recipe):
    """CycleGAN: G: X->Y and F: Y->X with cycle consistency, for data without pairs."""

    summary = "CycleGAN: G, F, D_X, D_Y with cycle consistency, for unpaired data (Zhu et al.)"
    unpaired = True
    options = {
        "lambda_x": RecipeOption(10.0, "Weight of the cycle term x -> G -> F -> x", minimum=0.0),
        "lambda_y": RecipeOption(10.0, "Weight of the cycle term y -> F -> G -> y", minimum=0.0),
        "lambda_identity": RecipeOption(
            0.5,
            "Identity term |G(y) - y|, |F(x) - x| as a fraction of the cycle weights "
            "(0: off; needs as many channels on both sides)",
            minimum=0.0,
        ),
        "pool_size": RecipeOption(
            50, "Generated images each discriminator remembers (0: no history)", minimum=0
        ),
    }
    #: Run settings this recipe chooses when the task's own defaults are for another recipe.
    defaults = {
        "generator": "resnet_9blocks",
        "generator_kwargs": {},
        "discriminator": "patch70",
        "discriminator_kwargs": {},
        "objective": {"lsgan": 1.0},
        "norm": "instance",
        "lr": 2e-4,
        "beta1": 0.5,
        "beta2": 0.999,
        "batch_size": 1,
        "epochs": 100,
        "epochs_decay": 100,
        "test_mode": "eval",
    }

    def check_config(self, config: RunConfig, task: Task, catalog: Catalog) -> None:
        adv = adversarial_terms(config.objective, catalog)
        others = sorted(set(config.objective) - set(adv))
        if not adv or others:
            raise ConfigError(
                f"recipe 'cyclegan' takes an objective of one adversarial term (e.g. lsgan=1, "
                f"gan=1), got {config.objective}; its cycle and identity weights are the recipe "
                "options lambda_x, lambda_y and lambda_identity (--recipe-opt)"
            )
        options = self.resolve_options(config.recipe_options)
        if options["lambda_identity"] > 0 and task.in_channels != task.out_channels:
            raise ConfigError(
                f"the identity term compares G(y) with y, but task {config.task!r} maps "
                f"{task.in_channels} channels to {task.out_channels}; pass "
                "--recipe-opt lambda_identity=0"
            )

    def build(self, setup: RecipeSetup) -> CycleGANStep:
        from i2i import Objective

        cfg, task = setup.config, setup.task
        cx, cy = task.in_channels, task.out_channels
        nets, specs = {}, {}
        nets[X_TO_Y], specs[X_TO_Y] = setup.generator(cx, cy)
        nets[Y_TO_X], specs[Y_TO_X] = setup.generator(cy, cx)
        nets[JUDGE_X], specs[JUDGE_X] = setup.discriminator(cx)
        nets[JUDGE_Y], specs[JUDGE_Y] = setup.discriminator(cy)
        objective = Objective.from_weights(cfg.objective, setup.catalog.losses).to(setup.device)
        opt_g = setup.adam(nets[X_TO_Y], nets[Y_TO_X])
        opt_d = setup.adam(nets[JUDGE_X], nets[JUDGE_Y])
        step = CycleGANStep(
            nets,
            objective,
            opt_g,
            opt_d,
            options=setup.options,
            specs=specs,
            translators={cfg.direction: X_TO_Y, other_direction(cfg.direction): Y_TO_X},
            seed=cfg.seed,
        )
        return step.on(setup)  # type: ignore[return-value]
