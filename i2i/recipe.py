"""Recipes: how a method trains, registered by name like networks, losses and tasks.

A recipe (pix2pix, cyclegan, ...) is registered through ``i2i_register_recipes``. It declares
its options (:class:`RecipeOption`: default, help, choices) and builds, from a
:class:`RecipeSetup` (the run config, the task, the catalog, device and precision), a
:class:`RecipeStep`: its *roles* (named networks) with their optimizers, the training step on
one batch, what validation measures, what sample grids show and which role translates in
which direction. The engine's :class:`~i2i.engine.loop.Trainer` drives any such step through
epochs, schedules, logging, checkpoints, faults, signals and devices; it knows no role name.

A minimal recipe, an L1-only regression (no discriminator)::

    from i2i import Recipe, RecipeOption, RecipeStep, hookimpl

    class L1Step(RecipeStep):
        def __init__(self, net, opt, spec, direction):
            super().__init__(specs={"net": spec}, translators={direction: "net"})
            self.net, self.opt = net, opt

        def modules(self):
            return {"net": self.net}

        def optimizers(self):
            return {"net": self.opt}

        def train_step(self, batch):
            x, y = self.to_device(batch["input"]), self.to_device(batch["target"])
            loss = (self.net(x) - y).abs().mean() * self.weight
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            return {"l1": loss.detach()}

    class L1Recipe(Recipe):
        summary = "Regression with an L1 loss only"
        options = {"weight": RecipeOption(1.0, "Weight of the L1 term", minimum=0.0)}

        def build(self, setup):
            net, spec = setup.generator(setup.task.in_channels, setup.task.out_channels)
            step = L1Step(net, setup.adam(net), spec, setup.config.direction)
            step.weight = setup.options["weight"]
            return step.on(setup)

    @hookimpl
    def i2i_register_recipes(register):
        register("l1_only", L1Recipe())

>>> r = Recipe()
>>> r.options = {"lambda_cycle": RecipeOption(10.0, "Cycle weight", minimum=0.0)}
>>> r.resolve_options({"lambda_cycle": 5})
{'lambda_cycle': 5.0}
>>> r.resolve_options({"lambda_cyc": 5})
Traceback (most recent call last):
...
i2i.config.ConfigError: Unknown recipe option 'lambda_cyc'. Did you mean 'lambda_cycle'? Options: lambda_cycle
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from i2i.catalog import Catalog
from i2i.config import ConfigError, RunConfig, check_crop_size
from i2i.task import DIRECTIONS, Task

if TYPE_CHECKING:
    from i2i.engine.distributed import DistInfo


def other_direction(direction: str) -> str:
    """``AtoB`` <-> ``BtoA``.

    >>> other_direction("AtoB")
    'BtoA'
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return "BtoA" if direction == "AtoB" else "AtoB"


@dataclass(frozen=True)
class RecipeOption:
    """One option of a recipe: its default, help, and what values it accepts.

    The value's type follows the default's (bool, int, float or str; an int is accepted for
    a float). ``choices`` limits the values; ``minimum`` bounds numbers from below.

    >>> RecipeOption(50, "Image pool size", minimum=0).check("pool_size", 10)
    10
    """

    default: Any
    help: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None

    def check(self, name: str, value: Any) -> Any:
        """``value`` converted to the option's type, or a :class:`ConfigError` naming ``name``."""
        kind = type(self.default)
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value)
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise ConfigError(
                f"Recipe option {name!r} must be a {kind.__name__} (like its default "
                f"{self.default!r}), got {value!r}"
            )
        value = kind(value)
        if self.choices and value not in self.choices:
            raise ConfigError(
                f"Recipe option {name!r} must be one of {', '.join(map(str, self.choices))}; "
                f"got {value!r}"
            )
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"Recipe option {name!r} must be >= {self.minimum}, got {value!r}")
        return value


class Recipe:
    """A training method. Subclasses set ``summary`` and ``options`` and implement :meth:`build`.

    ``unpaired`` says whether the method can learn from unpaired data (``--unpaired`` and the
    unpaired layout are refused for methods that cannot).
    """

    summary: str = ""
    options: Mapping[str, RecipeOption] = {}
    unpaired: bool = False

    def option_defaults(self) -> dict[str, Any]:
        """Every option with its default (what ``i2i info`` shows)."""
        return {name: opt.default for name, opt in self.options.items()}

    def option_help(self) -> dict[str, str]:
        """Every option with its help text."""
        return {name: opt.help for name, opt in self.options.items()}

    def resolve_options(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The defaults updated by ``given``, each value checked; unknown names are an error."""
        values = self.option_defaults()
        for name, value in (given or {}).items():
            if name not in self.options:
                close = difflib.get_close_matches(name, list(self.options), n=1, cutoff=0.5)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                listed = ", ".join(self.options) or "(this recipe has none)"
                raise ConfigError(f"Unknown recipe option {name!r}.{hint} Options: {listed}")
            values[name] = self.options[name].check(name, value)
        return values

    #: Run settings (RunConfig fields) this recipe chooses when the task's own defaults are
    #: for another recipe: its networks, objective, optimiser and schedule.
    defaults: Mapping[str, Any] = {}

    def check_config(self, config: RunConfig, task: Task, catalog: Catalog) -> None:
        """Refuse a run configuration this method cannot train (called before anything runs)."""

    def build(self, setup: RecipeSetup) -> RecipeStep:
        """The roles, optimizers and training step of one run."""
        raise NotImplementedError(f"{type(self).__name__} does not implement build()")


@dataclass
class RecipeSetup:
    """What a recipe builds a run from: the config, its resolved recipe options, the task, the
    catalog, and where and how to compute. Networks come out on the device, ready to train."""

    config: RunConfig
    options: dict[str, Any]
    task: Task
    catalog: Catalog
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    dist: DistInfo | None = None
    #: The resolved memory format (the run's ``channels_last``, ``None`` decided by the engine).
    channels_last: bool = False

    @classmethod
    def for_run(
        cls,
        config: RunConfig,
        *,
        task: Task,
        catalog: Catalog,
        device: torch.device,
        precision: str,
        dist: DistInfo | None = None,
    ) -> RecipeSetup:
        """The setup ``i2i run`` builds for ``config``: its recipe options, and its
        ``channels_last`` resolved for training on ``device`` in ``precision`` (see
        :func:`i2i.engine.devices.resolve_channels_last`).

        >>> from i2i import catalog as default_catalog
        >>> from i2i.config import resolve_config
        >>> cat = default_catalog()
        >>> cfg = resolve_config(cat, "facades", recipe="cyclegan", channels_last=True)
        >>> setup = RecipeSetup.for_run(cfg, task=cat.tasks.get("facades").obj, catalog=cat,
        ...                             device=torch.device("cpu"), precision="fp32")
        >>> setup.channels_last, sorted(setup.options)[:2]
        (True, ['lambda_identity', 'lambda_x'])
        """
        from i2i.engine.devices import resolve_channels_last

        return cls(
            config=config,
            options=dict(config.recipe_options),
            task=task,
            catalog=catalog,
            device=device,
            precision=precision,
            dist=dist,
            channels_last=resolve_channels_last(
                config.channels_last, device, precision, training=True
            ),
        )

    def generator(
        self,
        in_channels: int,
        out_channels: int,
        *,
        name: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> tuple[nn.Module, dict[str, Any]]:
        """A fresh generator (the run's ``--gen`` unless ``name``) and its role spec."""
        from i2i.engine.build import generator_options

        entry = self.catalog.generators.get(name or self.config.generator)
        opts = options if options is not None else generator_options(self.config.to_dict())
        net, spec = self._network("generator", entry.name, opts, in_channels, out_channels)
        check_crop_size(entry.name, getattr(net, "size_multiple", 1), self.config.crop_size)
        return net, spec

    def discriminator(
        self,
        in_channels: int,
        *,
        name: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> tuple[nn.Module, dict[str, Any]]:
        """A fresh discriminator (the run's ``--disc`` unless ``name``) and its role spec."""
        from i2i.engine.build import discriminator_options

        chosen = name or self.config.discriminator
        if not chosen:
            raise ConfigError("this recipe needs a discriminator; pass --disc")
        entry = self.catalog.discriminators.get(chosen)
        opts = options if options is not None else discriminator_options(self.config.to_dict())
        return self._network("discriminator", entry.name, opts, in_channels, None)

    def _network(
        self,
        kind: str,
        name: str,
        options: Mapping[str, Any],
        in_channels: int,
        out_channels: int | None,
    ) -> tuple[nn.Module, dict[str, Any]]:
        from i2i.engine.build import _takes_norm, build_network
        from i2i.engine.checkpoint import role_spec
        from i2i.engine.distributed import use_sync_batchnorm

        opts = dict(options)
        if "norm" in opts and not _takes_norm(self.catalog.registry(kind).get(name).obj):
            opts.pop("norm")
        spec = role_spec(kind, name, opts, in_channels, out_channels)
        net = build_network(self.catalog, spec)
        if self.dist is not None:
            net = use_sync_batchnorm(net, self.device, self.dist)
        memory_format = torch.channels_last if self.channels_last else torch.preserve_format
        return net.to(self.device, memory_format=memory_format), spec

    def adam(
        self,
        *modules: nn.Module,
        lr: float | None = None,
        betas: tuple[float, float] | None = None,
    ) -> torch.optim.Optimizer:
        """One Adam over the parameters of ``modules``, with the run's ``lr`` and betas unless
        given."""
        from i2i.engine.devices import make_adam

        copies = None
        if self.keeps_bf16_weight_copies:
            from i2i.engine.bf16_copies import Bf16WeightCopies

            copies = Bf16WeightCopies(modules)
        return make_adam(
            [p for m in modules for p in m.parameters()],
            lr=self.config.lr if lr is None else lr,
            betas=betas or (self.config.beta1, self.config.beta2),
            device=self.device,
            copies=copies,
        )

    @property
    def keeps_bf16_weight_copies(self) -> bool:
        """Whether :meth:`adam` keeps bf16 copies of the weights it updates: where
        :func:`i2i.engine.devices.keeps_bf16_weight_copies` says they apply, unless the run
        says ``--no-bf16-weight-copies``."""
        from i2i.engine.devices import keeps_bf16_weight_copies

        return self.config.bf16_weight_copies and keeps_bf16_weight_copies(
            self.device,
            self.precision,
            distributed=self.dist is not None and self.dist.enabled,
            compiled=bool(self.config.compile),
        )


class Wrapping:
    """How the runner wraps a role's module for the forward passes: DDP, ``torch.compile``.

    ``train(module)`` is what a step calls modules through when their gradients update them
    (DDP under torchrun, compiled when asked); ``frozen(module)`` when they do not (no DDP:
    its gradient hooks would wait for a reduction that never comes).
    """

    def __init__(
        self,
        ddp: Callable[[nn.Module], Callable[..., Tensor]] | None = None,
        compile_: bool = False,
        distributed: bool = False,
    ):
        self._ddp = ddp
        self._compile = compile_
        self.distributed = distributed
        self._compiled: dict[int, Callable[..., Tensor]] = {}
        self._trained: dict[int, Callable[..., Tensor]] = {}

    def train(self, module: nn.Module) -> Callable[..., Tensor]:
        if id(module) not in self._trained:
            wrapped = self._ddp(module) if self._ddp is not None else module
            self._trained[id(module)] = torch.compile(wrapped) if self._compile else wrapped
        return self._trained[id(module)]

    def frozen(self, module: nn.Module) -> Callable[..., Tensor]:
        if not self._compile:
            return module
        if id(module) not in self._compiled:
            self._compiled[id(module)] = torch.compile(module)
        return self._compiled[id(module)]


class RecipeStep:
    """What a recipe builds and the training loop drives: roles, optimizers, one batch's update.

    Subclasses implement :meth:`modules`, :meth:`optimizers` and :meth:`train_step`. ``specs``
    (role -> network spec) and ``translators`` (direction -> role) go into every checkpoint so
    that ``i2i translate`` rebuilds a role without the recipe. Set ``skip_nonfinite`` and
    ``agree`` are honoured by steps that can skip an update (``--on-nonfinite skip``).
    """

    skip_nonfinite: bool = False
    agree: Callable[[bool], bool] | None = None
    #: Whether :meth:`train_step` may be captured as one CUDA graph and replayed
    #: (:mod:`i2i.engine.graphed_step`): it never reads a value back to the host (outside
    #: ``skip_nonfinite``), keeps no state in Python that changes from step to step (what it
    #: must decide on the host goes in :meth:`prepare_batch`), and takes its batch's tensors
    #: by key. False unless the class that defines ``train_step`` says so
    #: (docs/plugins/recipe.md, *Wrapping*).
    graph_capturable: bool = False

    def __init__(
        self,
        *,
        specs: Mapping[str, dict[str, Any]] | None = None,
        translators: Mapping[str, str] | None = None,
        device: torch.device | str = "cpu",
        precision: str = "fp32",
        channels_last: bool = False,
    ):
        self.specs = dict(specs or {})
        self.translators = dict(translators or {})
        self.device = torch.device(device)
        self.precision = precision
        self.channels_last = channels_last

    def on(self, setup: RecipeSetup) -> RecipeStep:
        """Take device, precision and memory format from ``setup``; returns ``self``."""
        self.device = setup.device
        self.precision = setup.precision
        self.channels_last = setup.channels_last
        return self

    # ----------------------------------------------------------------- what subclasses give

    def modules(self) -> dict[str, nn.Module]:
        """The trained networks by role (plain, unwrapped): what checkpoints save."""
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers by name; the loop schedules each one's learning rate."""
        raise NotImplementedError

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Update on one batch; returns detached losses (the loop reads them when it logs)."""
        raise NotImplementedError

    def prepare_batch(self, batch: Mapping[str, Any]) -> Mapping[str, Any]:
        """``batch`` with what the step decides on the host before it runs, as tensors added
        by key (default: ``batch`` itself).

        A step replayed as a CUDA graph (:mod:`i2i.engine.graphed_step`) cannot draw random
        numbers in Python or count in Python inside :meth:`train_step`: the graph would
        replay the first step's decisions forever. Such a step draws here instead; the wrapper
        calls this once per batch and hands the result to :meth:`train_step`, whose graph reads
        the draws from their tensors. Called without them, :meth:`train_step` draws itself.
        """
        return batch

    # ----------------------------------------------------------------- defaults

    def state_dict(self) -> dict[str, Any]:
        """Resume state besides the weights: optimizers, plus :meth:`extra_state`."""
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
            **self.extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, opt in self.optimizers().items():
            opt.load_state_dict(state["optimizers"][key])
        self.load_extra_state(state)

    def extra_state(self) -> dict[str, Any]:
        """More resume state (plain tensors and numbers only: it loads with weights_only)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`extra_state` saved."""

    def wrap(self, wrapping: Wrapping) -> None:
        """Swap in wrapped callables (DDP, compile) for the forward passes; default: none."""

    def to_device(self, t: Tensor) -> Tensor:
        """A batch tensor moved to the step's device (channels_last when the run asks)."""
        t = t.to(self.device, non_blocking=True)
        if self.channels_last and t.ndim == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def translator(self, direction: str | None = None) -> nn.Module:
        """The role's module that translates in ``direction`` (default: the first listed)."""
        if not self.translators:
            raise ValueError(f"{type(self).__name__} declares no translator role")
        role = self.translators[direction] if direction else next(iter(self.translators.values()))
        return self.modules()[role]

    def validate(self, data: Any, ctx: ValidationContext) -> dict[str, float]:
        """Metrics of the trained direction's translator on ``data`` (paired data only)."""
        if not getattr(data, "paired", True):
            return {}
        from i2i.engine.validate import evaluate

        return evaluate(
            ctx.local(self.translator(ctx.direction)),
            data,
            ctx.task,
            metrics=ctx.metrics(),
            device=self.device,
            precision=self.precision,
            mode=ctx.mode,
            batch_size=ctx.batch_size,
            channels_last=self.channels_last,
        )

    def sample_grid(self, data: Any, ctx: ValidationContext, indices: list[int]) -> Tensor:
        """A grid image: one row per sample, input | output | target."""
        from i2i.engine.validate import sample_grid

        return sample_grid(
            ctx.local(self.translator(ctx.direction)),
            data,
            ctx.task,
            indices=indices,
            device=self.device,
            precision=self.precision,
            mode=ctx.mode,
            channels_last=self.channels_last,
        )


@dataclass
class ValidationContext:
    """What the loop hands to :meth:`RecipeStep.validate` and :meth:`RecipeStep.sample_grid`.

    ``metrics()`` makes fresh metric objects (the task's, from the metrics registry);
    ``local(module)`` is a copy fit for one process (SyncBatchNorm back to BatchNorm).
    """

    task: Task
    direction: str
    mode: str
    batch_size: int
    metrics: Callable[[], dict[str, Any]]
    local: Callable[[nn.Module], nn.Module] = lambda m: m
