"""The run configuration: every choice of one training run, resolved and validated up front.

``resolve_config`` applies the task's defaults first, then the caller's flags, resolves every
component name through the catalog (aliases become canonical names) and checks the values,
so that a typo fails before any data is read. The result is plain JSON
(``RunConfig.to_dict()``), stored in the run folder and in every checkpoint.

Paper defaults (pix2pix, Isola et al. 2017, and the official code): Adam with lr 2e-4 and
betas (0.5, 0.999), objective ``gan=1,l1=100``, batch size 1, BatchNorm (``norm="batch"``;
with batch size 1 in training mode it normalises each image by its own statistics, as the
paper notes), 100 epochs at a constant learning rate then 100 of linear decay, and test-time
``paper`` mode (dropout and batch statistics kept at test time). Use ``--norm instance`` or
``--test-mode eval`` to depart from the paper.

>>> cfg = RunConfig(task="facades", objective={"gan": 1.0, "l1": 100.0})
>>> RunConfig.from_dict(cfg.to_dict()) == cfg
True
>>> parse_weights("gan=1,l1=100")
{'gan': 1.0, 'l1': 100.0}
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from i2i.catalog import Catalog
from i2i.task import DIRECTIONS, Task

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
NORMS = ("batch", "instance", "none")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
TEST_MODES = ("paper", "eval")
ON_NONFINITE = ("stop", "skip")
ON_BAD_IMAGE = ("error", "skip")  # what the datasets do with an image they cannot read
PAPER_OBJECTIVE = {"gan": 1.0, "l1": 100.0}
PAPER_LOAD_SIZE = 286  # resize to this, then random-crop PAPER_CROP_SIZE: the paper's jitter
PAPER_CROP_SIZE = 256


class ConfigError(ValueError):
    """A run configuration value that cannot work; the message names the field."""


REQUIRED = dataclasses.MISSING


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] = (),
    minimum: int | None = None,
    resumable: bool = False,
    task_default: bool = False,
    cli: str = "generated",
    flag: str | None = None,
) -> Any:
    """A :class:`RunConfig` field, declared once: its default, help and accepted values, whether
    a resumed run may change it and a task's ``defaults`` may set it, and how ``i2i run`` takes
    it (``cli="generated"``: an option made from this declaration; ``"custom"``: written by hand
    in :mod:`i2i.engine.commands`, e.g. component names and ``KEY=VALUE`` lists).

    ``default`` may be a callable (a fresh dict per config).
    """
    meta = {
        "help": help,
        "choices": tuple(choices),
        "minimum": minimum,
        "resumable": resumable,
        "task_default": task_default,
        "cli": cli,
        "flag": flag,
    }
    if default is REQUIRED:
        return field(metadata=meta)
    if callable(default):
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunConfig:
    """Everything that defines one training run (JSON-serialisable).

    ``epochs`` epochs run at the constant learning rate ``lr``, then ``epochs_decay`` epochs
    decay it linearly towards 0. ``max_steps`` caps the TOTAL number of optimisation steps
    (a resumed run counts the steps already done). Validation runs every ``val_every`` steps
    (0: at the end of every epoch) and at the end of the run. Checkpoints are saved at the end
    of every epoch and of the run, and every ``save_every`` steps too (0: no more); the newest
    ``keep_last`` stay, plus the one ending every ``keep_every``-th epoch (0: none).
    ``log_every`` steps, losses, learning rates and throughput go to ``metrics.jsonl``.
    ``on_bad_image`` says what an unreadable or unusable data file does: ``error`` stops the run
    naming it, ``skip`` leaves it out and counts it. ``on_nonfinite`` says what a NaN or infinite
    loss does: ``stop`` ends the run naming the step, without saving the bad weights; ``skip``
    drops that step's update and counts it. ``recipe`` names the training method (see
    ``i2i list recipes``) and ``recipe_options`` its options (every one, defaults filled in);
    ``unpaired`` draws the two sides of paired data independently; ``init_from`` starts the
    networks from another run's weights (fine-tuning).
    """

    task: str = option(REQUIRED, "Task to train (see `i2i list tasks`).", cli="custom")
    recipe: str = option(
        "pix2pix",
        "Training method, e.g. pix2pix or cyclegan (see `i2i list recipes`) [task default].",
        cli="custom",
        task_default=True,
    )
    recipe_options: dict[str, Any] = option(
        dict, "Recipe options (--recipe-opt KEY=VALUE).", cli="custom", task_default=True
    )
    unpaired: bool = option(
        False,
        "Draw the two sides of paired data independently (for recipes such as cyclegan).",
        flag="--unpaired",
    )
    init_from: str | None = option(
        None,
        "Start the networks from this run's or checkpoint's weights (fine-tuning).",
        cli="custom",
        resumable=True,
    )
    generator: str = option(
        "unet_256", "Generator [task default].", cli="custom", task_default=True
    )
    generator_kwargs: dict[str, Any] = option(
        dict, "Generator options (--gen-opt).", cli="custom", task_default=True
    )
    discriminator: str | None = option(
        "patch70", "Discriminator [task default].", cli="custom", task_default=True
    )
    discriminator_kwargs: dict[str, Any] = option(
        dict, "Discriminator options (--disc-opt).", cli="custom", task_default=True
    )
    conditional: bool = option(
        True,
        "The discriminator sees the input too (--unconditional: the output alone).",
        cli="custom",
    )
    objective: dict[str, float] = option(
        lambda: dict(PAPER_OBJECTIVE), "Weighted loss terms.", cli="custom", task_default=True
    )
    data: str | None = option(
        None, "Data folder [the task's built-in data].", cli="custom", resumable=True
    )
    direction: str | None = option(
        None,
        "Which side of an A|B pair is the input [task default].",
        choices=DIRECTIONS,
        task_default=True,
    )
    load_size: int = option(
        PAPER_LOAD_SIZE,
        "Resize to this before cropping [286, or crop size x 286/256].",
        minimum=1,
        task_default=True,
    )
    crop_size: int = option(
        PAPER_CROP_SIZE,
        "Training crop size [256]; the task's default generator follows it (unet_128 at 128).",
        minimum=1,
        task_default=True,
    )
    preprocess: str = option(
        "resize_and_crop",
        "Resize/crop mode [resize_and_crop].",
        choices=PREPROCESS_MODES,
        task_default=True,
    )
    flip: bool = option(True, "Random horizontal flips [on].", task_default=True)
    batch_size: int = option(1, "Images per step (per process) [1].", minimum=1, task_default=True)
    lr: float = option(2e-4, "Adam learning rate [2e-4].", cli="custom", task_default=True)
    beta1: float = option(0.5, "Adam beta1 [0.5].", cli="custom")
    beta2: float = option(0.999, "Adam beta2 [0.999].", cli="custom")
    epochs: int = option(
        100,
        "Epochs at the constant learning rate [100; with --epochs alone there is no decay phase].",
        minimum=0,
        resumable=True,
        task_default=True,
    )
    epochs_decay: int = option(
        100,
        "Epochs of linear decay after them [100 when --epochs is not given, else 0].",
        minimum=0,
        resumable=True,
        task_default=True,
    )
    max_steps: int | None = option(
        None,
        "Stop at this TOTAL step count (a resumed run counts earlier steps).",
        minimum=1,
        resumable=True,
    )
    norm: str = option(
        "batch", "Normalisation layers [batch, as the paper].", choices=NORMS, task_default=True
    )
    seed: int = option(0, "Random seed [0].", minimum=0)
    device: str = option("auto", "Where to train [auto].", choices=DEVICES, resumable=True)
    precision: str = option(
        "auto",
        "auto: on a CUDA GPU fp32 (TF32) where it has TF32, else bf16, fp16 on older GPUs; "
        "on the CPU bf16 where native and faster (see `i2i doctor`), else fp32 [auto].",
        choices=PRECISIONS,
        resumable=True,
    )
    channels_last: bool | None = option(
        None,
        "NHWC memory format [auto: on where measured faster, see `i2i doctor`].",
        resumable=True,
    )
    compile: bool = option(False, "Wrap the networks with torch.compile [off].", resumable=True)
    cuda_graphs: bool | None = option(
        None,
        "Replay each training step as one CUDA graph on a GPU, where the recipe allows it; not "
        "with fp16, torchrun, --compile, --on-nonfinite skip or crops of several sizes [off].",
        resumable=True,
    )
    bf16_weight_copies: bool = option(
        True,
        "bf16 training on the CPU: bf16 weight copies that Adam updates, no per-step casts [on].",
        resumable=True,
    )
    test_mode: str = option(
        "paper",
        "paper: dropout and batch stats at test time; eval: module.eval() [paper].",
        choices=TEST_MODES,
        resumable=True,
        task_default=True,
    )
    num_workers: int = option(2, "Data loading processes [2].", minimum=0, resumable=True)
    val_every: int = option(
        0, "Validate every N steps (0: every epoch) [0].", minimum=0, resumable=True
    )
    save_every: int = option(
        0, "Also save a checkpoint every N steps (0: epochs only) [0].", minimum=0, resumable=True
    )
    keep_last: int = option(3, "Checkpoints kept [3].", minimum=1, resumable=True)
    keep_every: int = option(
        5,
        "Also keep the checkpoint ending every N-th epoch (0: none) [5].",
        minimum=0,
        resumable=True,
    )
    log_every: int = option(100, "Log losses every N steps [100].", minimum=1, resumable=True)
    on_bad_image: str = option(
        "error",
        "A data file that cannot be read: error stops naming it; skip leaves it out, counts "
        "it and reports the count at the end [error].",
        choices=ON_BAD_IMAGE,
        resumable=True,
    )
    on_nonfinite: str = option(
        "stop",
        "A NaN or infinite loss: stop ends the run naming the step, keeping the last good "
        "checkpoint; skip drops that step's update and counts it [stop].",
        choices=ON_NONFINITE,
        resumable=True,
    )
    out: str | None = option(
        None, "Run folder [runs/<task>-<timestamp>].", cli="custom", resumable=True
    )

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-ready dict (a deep copy)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, ignore: tuple[str, ...] = ()) -> RunConfig:
        """Rebuild from :meth:`to_dict`; unknown keys are an error unless listed in ``ignore``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - set(ignore))
        if unknown:
            raise ConfigError(
                f"Unknown run config key(s) {', '.join(map(repr, unknown))}; "
                f"expected some of: {', '.join(sorted(names))}"
            )
        if "task" not in data:
            raise ConfigError("Run config has no 'task'")
        return cls(**{k: v for k, v in data.items() if k in names})

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` applied (unknown names are an error)."""
        return dataclasses.replace(self, **changes)

    @property
    def total_epochs(self) -> int:
        """Epochs at the constant rate plus epochs of decay."""
        return self.epochs + self.epochs_decay


def option_fields(**where: Any) -> list[dataclasses.Field]:
    """The :class:`RunConfig` fields whose declaration matches ``where`` (e.g. ``resumable=True``).

    >>> [f.name for f in option_fields(cli="generated")][:3]
    ['unpaired', 'direction', 'load_size']
    """
    return [
        f
        for f in dataclasses.fields(RunConfig)
        if all(f.metadata.get(k) == v for k, v in where.items())
    ]


#: Keys a task's ``defaults`` may set (each fills the RunConfig field of the same name).
TASK_DEFAULT_KEYS = tuple(f.name for f in option_fields(task_default=True))
#: Fields a resumed run may change; any other must match the checkpoint.
RESUMABLE_FIELDS = tuple(f.name for f in option_fields(resumable=True))


def field_names() -> list[str]:
    """The names of every :class:`RunConfig` field."""
    return [f.name for f in dataclasses.fields(RunConfig)]


def parse_weights(spec: str | dict[str, Any]) -> dict[str, float]:
    """``"gan=1,l1=100"`` (or a dict) -> ``{"gan": 1.0, "l1": 100.0}``.

    >>> parse_weights({"l1": 1})
    {'l1': 1.0}
    """
    if isinstance(spec, dict):
        items = list(spec.items())
    else:
        items = []
        for part in str(spec).split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep:
                raise ConfigError(f"Objective term {part!r} must look like name=weight")
            items.append((name.strip(), value.strip()))
    out: dict[str, float] = {}
    for name, value in items:
        try:
            weight = float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"Objective weight for {name!r} must be a number, got {value!r}"
            ) from None
        if not math.isfinite(weight):
            raise ConfigError(f"Objective weight for {name!r} must be finite, got {value!r}")
        if name in out:
            raise ConfigError(f"Objective term {name!r} given twice")
        out[name] = weight
    if not out:
        raise ConfigError("The objective is empty; give at least one term, e.g. 'gan=1,l1=100'")
    return out


def parse_options(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["ngf=32", "dropout=false"]`` -> ``{"ngf": 32, "dropout": False}`` (values as JSON).

    >>> parse_options(["ngf=32", "norm=instance", "dropout=false"])
    {'ngf': 32, 'norm': 'instance', 'dropout': False}
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"Option {pair!r} must look like key=value")
        raw = raw.strip()
        lowered = raw.lower()
        if lowered in ("true", "false"):
            out[key] = lowered == "true"
            continue
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def adversarial_terms(objective: dict[str, float], catalog: Catalog) -> list[str]:
    """The terms of ``objective`` whose registered loss has ``type="adversarial"``."""
    return [n for n in objective if catalog.losses.get(n).meta.get("type") == "adversarial"]


def default_out(task: str, now: datetime | None = None) -> str:
    """``runs/<task>-<YYYYmmdd-HHMMSS>``.

    >>> default_out("facades", datetime(2024, 1, 2, 3, 4, 5))
    'runs/facades-20240102-030405'
    """
    now = now or datetime.now()
    return f"runs/{task}-{now:%Y%m%d-%H%M%S}"


def resolve_config(catalog: Catalog, task: str, **flags: Any) -> RunConfig:
    """Task defaults, then ``flags`` (``None`` values are ignored), validated and canonical.

    ``objective`` may be a dict or ``"gan=1,l1=100"``; ``lambda_l1`` sets the ``l1`` weight.
    When ``epochs`` is given without ``epochs_decay``, the run has no decay phase (``--epochs 1``
    trains one epoch); when neither is given the paper's 100 + 100 apply.
    """
    unknown = sorted(set(flags) - set(field_names()) - {"lambda_l1"})
    if unknown:
        raise ConfigError(f"Unknown run option(s) {', '.join(map(repr, unknown))}")
    task_name = catalog.tasks.get(task).name
    task_obj: Task = catalog.tasks.get(task_name).obj
    values: dict[str, Any] = {"task": task_name}
    for key, value in (task_obj.defaults or {}).items():
        if key in TASK_DEFAULT_KEYS:
            values[key] = value
    given = {k: v for k, v in flags.items() if v is not None}
    task_recipe = values.get("recipe", "pix2pix")
    recipe_entry = catalog.recipes.get(given.get("recipe", task_recipe))
    if recipe_entry.name != catalog.recipes.get(task_recipe).name:
        # the task's defaults are for its own recipe: another one brings its own choices
        values.pop("recipe_options", None)
        values.update(dict(getattr(recipe_entry.obj, "defaults", {}) or {}))
    values["recipe"] = recipe_entry.name
    if "epochs" in given and "epochs_decay" not in given:
        given["epochs_decay"] = 0
    lambda_l1 = given.pop("lambda_l1", None)
    for key in ("generator_kwargs", "discriminator_kwargs", "recipe_options"):  # add to the task's
        if key in given and isinstance(values.get(key), dict):
            given[key] = {**values[key], **given[key]}
    if "crop_size" in given and "load_size" not in given:
        # keep the paper's jitter ratio (286 / 256) at other crop sizes
        given["load_size"] = round(given["crop_size"] * PAPER_LOAD_SIZE / PAPER_CROP_SIZE)
    values.update(given)
    if "generator" not in given and "generator" in values:
        values["generator"] = fitting_preset(
            catalog, values["generator"], values.get("crop_size", PAPER_CROP_SIZE)
        )
    values["objective"] = parse_weights(values.get("objective", PAPER_OBJECTIVE))
    if lambda_l1 is not None:
        values["objective"]["l1"] = float(lambda_l1)
    cfg = RunConfig(**values)
    return validate_config(cfg, catalog)


def validate_config(cfg: RunConfig, catalog: Catalog) -> RunConfig:
    """Check every value of ``cfg`` and canonicalise names; returns a new config."""
    task = catalog.tasks.get(cfg.task)
    task_obj: Task = task.obj
    gen = catalog.generators.get(cfg.generator)
    objective = {
        catalog.losses.get(n).name: float(w) for n, w in parse_weights(cfg.objective).items()
    }
    adv = adversarial_terms(objective, catalog)
    if len(adv) > 1:
        raise ConfigError(f"The objective may hold one adversarial term at most, got {adv}")
    disc_name = None
    if adv:
        if not cfg.discriminator:
            raise ConfigError(f"The objective's adversarial term {adv[0]!r} needs a discriminator")
        disc_name = catalog.discriminators.get(cfg.discriminator).name
    direction = cfg.direction or task_obj.direction
    _check_choice("direction", direction, DIRECTIONS)
    for f in dataclasses.fields(RunConfig):  # the checks each field declares
        value = getattr(cfg, f.name)
        if f.metadata.get("choices") and f.name != "direction":
            _check_choice(f.name, value, f.metadata["choices"])
        if f.metadata.get("minimum") is not None and (value is not None or f.default is not None):
            _check_int(f.name, value, minimum=f.metadata["minimum"])
    if cfg.total_epochs < 1 and cfg.max_steps is None:
        raise ConfigError("epochs + epochs_decay must be at least 1")
    if not (isinstance(cfg.lr, (int, float)) and cfg.lr > 0):
        raise ConfigError(f"lr must be a positive number, got {cfg.lr!r}")
    for name in ("beta1", "beta2"):
        value = getattr(cfg, name)
        if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
            raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
    if (
        cfg.preprocess in ("resize_and_crop", "scale_width_and_crop")
        and cfg.crop_size > cfg.load_size
    ):
        raise ConfigError(
            f"crop_size {cfg.crop_size} is larger than load_size {cfg.load_size} "
            f"with preprocess {cfg.preprocess!r}"
        )
    check_crop_size(gen.name, gen.meta.get("size_multiple"), cfg.crop_size)
    for name in ("generator_kwargs", "discriminator_kwargs", "recipe_options"):
        if not isinstance(getattr(cfg, name), dict):
            raise ConfigError(f"{name} must be a dict, got {getattr(cfg, name)!r}")
    recipe = catalog.recipes.get(cfg.recipe)
    recipe_options = recipe.obj.resolve_options(cfg.recipe_options)
    unpaired_layout = task_obj.layout == "unpaired"
    if (cfg.unpaired or unpaired_layout) and not getattr(recipe.obj, "unpaired", False):
        what = f"task {task.name!r} has unpaired data" if unpaired_layout else "--unpaired"
        able = [e.name for e in catalog.recipes if getattr(e.obj, "unpaired", False)]
        raise ConfigError(
            f"{what}, but recipe {recipe.name!r} learns from aligned pairs only; "
            f"use a recipe for unpaired data ({', '.join(able) or 'none installed'})"
        )
    if cfg.unpaired and task_obj.layout == "single":
        raise ConfigError(
            f"--unpaired needs paired data to draw apart; task {task.name!r} derives its input "
            "from one photo"
        )
    data = cfg.data
    if data is not None:
        data = os.path.abspath(os.path.expanduser(str(data)))
    init_from = cfg.init_from
    if init_from is not None:
        init_from = os.path.abspath(os.path.expanduser(str(init_from)))
    out = cfg.replace(
        task=task.name,
        recipe=recipe.name,
        recipe_options=recipe_options,
        unpaired=bool(cfg.unpaired),
        init_from=init_from,
        generator=gen.name,
        discriminator=disc_name,
        objective=objective,
        direction=direction,
        data=data,
        lr=float(cfg.lr),
        beta1=float(cfg.beta1),
        beta2=float(cfg.beta2),
        generator_kwargs=dict(cfg.generator_kwargs),
        discriminator_kwargs=dict(cfg.discriminator_kwargs),
    )
    recipe.obj.check_config(out, task_obj, catalog)
    return out


def fitting_preset(catalog: Catalog, generator: str, crop_size: int) -> str:
    """``generator``, or the preset of its family whose ``size_multiple`` fits ``crop_size``.

    Used for a task's default generator only: the paper's ``unet_256`` cannot run on 128 px
    crops, its 7-level sibling ``unet_128`` can. A name the user typed is never swapped.
    """
    entry = catalog.generators.get(generator)
    multiple, family = entry.meta.get("size_multiple"), entry.meta.get("family")
    if not isinstance(multiple, int) or crop_size % multiple == 0 or not family:
        return entry.name
    fits = [
        (e.meta["size_multiple"], e.name)
        for e in catalog.generators.entries()
        if e.meta.get("family") == family
        and isinstance(e.meta.get("size_multiple"), int)
        and crop_size % e.meta["size_multiple"] == 0
    ]
    return max(fits)[1] if fits else entry.name


def check_crop_size(generator: str, multiple: Any, crop_size: int) -> None:
    """Raise unless ``crop_size`` is a multiple of the generator's ``size_multiple``.

    >>> check_crop_size("unet_128", 128, 256)
    """
    if isinstance(multiple, int) and multiple > 1 and crop_size % multiple:
        raise ConfigError(
            f"generator {generator!r} needs image sides that are multiples of {multiple}, "
            f"but crop_size is {crop_size}; pick another --crop-size or --gen "
            f"(see `i2i list generators`)"
        )


def resolve_data_root(cfg: RunConfig, task: Task) -> Path:
    """The data folder of ``cfg``: ``cfg.data`` or the task's ``default_data()``."""
    if cfg.data:
        root = Path(cfg.data)
    elif task.default_data is not None:
        root = Path(task.default_data())
    else:
        raise ConfigError(f"Task {cfg.task!r} has no default data folder; pass --data DIR")
    if not root.is_dir():
        raise ConfigError(f"Data folder {root} does not exist (task {cfg.task!r})")
    return root


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
