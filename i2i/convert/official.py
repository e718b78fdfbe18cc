"""Bring models of the official pix2pix/CycleGAN code into i2i: ``convert_official``.

The official code (github.com/junyanz/pytorch-CycleGAN-and-pix2pix) saves one state dict per
network, ``<epoch>_net_<name>.pth`` in ``checkpoints/<experiment>/``: ``G`` and ``D`` for
``--model pix2pix``; ``G_A``, ``G_B``, ``D_A``, ``D_B`` for ``--model cycle_gan``. The files do
not say how the networks were built, so :class:`OfficialOptions` takes the flags that trained
them, with the official defaults. They become a run config (recipe ``pix2pix`` or
``cyclegan``), whose recipe builds its roles as ``i2i run`` would; each file is read with
``torch.load(weights_only=True)``, checked key by key against its role's network and written
as that role of a checkpoint in a new run folder, which ``i2i translate``, ``i2i eval``,
``i2i export`` and ``i2i run --init-from`` take like a trained run.

Roles: pix2pix -> ``generator`` (G) and ``discriminator`` (D). CycleGAN -> ``G`` = G_A, which
maps the trained ``--direction``'s source to its target (the official ``set_input`` swaps A and
B for ``BtoA``, so G_A always translates in the given direction), ``F`` = G_B (the other way),
``D_Y`` = D_A (judges G's outputs), ``D_X`` = D_B. Discriminator files are optional.

>>> OfficialOptions(model="cycle_gan").resolved().netG
'resnet_9blocks'
>>> ROLE_PLAN["cycle_gan"]
{'G': 'G_A', 'F': 'G_B', 'D_Y': 'D_A', 'D_X': 'D_B'}
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from i2i.catalog import Catalog
from i2i.config import ConfigError, resolve_config
from i2i.convert.flags import MODELS, NET_D, NET_G, NORMS
from i2i.convert.names import FAMILIES, official_to_i2i
from i2i.engine import checkpoint as ckpt_io
from i2i.engine.distributed import DistInfo
from i2i.engine.runner import RUN_CONFIG_FILE
from i2i.recipe import RecipeSetup
from i2i.task import DIRECTIONS

#: Official ``--netD n_layers --n_layers_D N`` -> the i2i PatchGAN preset of that depth.
N_LAYERS_PRESETS = {1: "patch16", 2: "patch34", 3: "patch70", 5: "image286"}
#: What ``i2i convert`` writes beside ``config.json``: where the weights came from.
CONVERSION_FILE = "conversion.json"

_FILE_NAME = re.compile(r"^(?P<epoch>.+)_net_(?P<net>G_A|G_B|D_A|D_B|G|D)\.pth$")
_MODEL_DEFAULTS = {  # what the official model's modify_commandline_options set
    "pix2pix": {"netG": "unet_256", "norm": "batch", "no_dropout": False},
    "cycle_gan": {"netG": "resnet_9blocks", "norm": "instance", "no_dropout": True},
}
_NETS = {"pix2pix": ("G", "D"), "cycle_gan": ("G_A", "G_B", "D_A", "D_B")}
_RECIPES = {"pix2pix": "pix2pix", "cycle_gan": "cyclegan"}
#: i2i role of the recipe -> the official network it comes from. The official cycle_gan swaps
#: the A and B images for ``--direction BtoA`` (``set_input``), so G_A always maps the trained
#: direction's source to its target, as i2i's ``G`` does, and D_A judges G_A's outputs.
ROLE_PLAN = {
    "pix2pix": {"generator": "G", "discriminator": "D"},
    "cycle_gan": {"G": "G_A", "F": "G_B", "D_Y": "D_A", "D_X": "D_B"},
}


class ConvertError(ValueError):
    """Conversion cannot proceed (bad flags, missing or mismatched files); says what to fix."""


@dataclass(frozen=True)
class OfficialOptions:
    """The official ``train.py`` flags that decide the networks; ``None`` = the model's default.

    Defaults as in the official code: ``pix2pix`` trains ``unet_256`` with batch norm and
    dropout, ``cycle_gan`` ``resnet_9blocks`` with instance norm and no dropout; both use the
    70 x 70 PatchGAN (``--netD basic``), ``ngf = ndf = 64`` and ``--direction AtoB``.
    ``lambda_A``, ``lambda_B``, ``lambda_identity`` and ``pool_size`` (CycleGAN's) become the
    cyclegan recipe's options, for training on (``lambda_identity`` defaults to 0.5, or 0 when
    the task's two sides differ in channels: the official code refuses that otherwise).
    """

    model: str = "pix2pix"
    netG: str | None = None
    netD: str = "basic"
    n_layers_D: int = 3
    norm: str | None = None
    no_dropout: bool | None = None
    ngf: int = 64
    ndf: int = 64
    direction: str = "AtoB"
    lambda_A: float = 10.0
    lambda_B: float = 10.0
    lambda_identity: float | None = None
    pool_size: int = 50

    def resolved(self) -> OfficialOptions:
        """These options with the model's defaults filled in, every value checked."""
        _choice("--model", self.model, MODELS)
        filled = {k: v for k, v in _MODEL_DEFAULTS[self.model].items() if getattr(self, k) is None}
        opts = dataclasses.replace(self, **filled)
        _choice("--netG", opts.netG, NET_G)
        _choice("--netD", opts.netD, NET_D)
        _choice("--norm", opts.norm, NORMS)
        _choice("--direction", opts.direction, DIRECTIONS)
        for name in ("ngf", "ndf", "n_layers_D"):
            value = getattr(opts, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConvertError(f"--{name.replace('_', '-')} must be a positive integer")
        if opts.netD == "n_layers" and opts.n_layers_D not in N_LAYERS_PRESETS:
            raise ConvertError(
                f"--netD n_layers --n-layers-D {opts.n_layers_D} has no i2i preset; i2i has "
                + ", ".join(f"{n} ({name})" for n, name in N_LAYERS_PRESETS.items())
            )
        return opts

    @property
    def discriminator(self) -> str:
        """The i2i discriminator preset of ``netD`` (and ``n_layers_D``)."""
        if self.netD == "pixel":
            return "pixel"
        return N_LAYERS_PRESETS[3 if self.netD == "basic" else self.n_layers_D]


def official_files(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    model: str,
    epoch: str = "latest",
) -> dict[str, Path]:
    """Official network name -> ``.pth`` file: from a checkpoints folder or a list of files.

    A folder is searched for ``<epoch>_net_<name>.pth``; files are recognised by that name
    pattern. The generators (``G``; ``G_A`` and ``G_B``) must be there; discriminators may not.
    """
    nets = _NETS[model]
    found: dict[str, Path] = {}
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        folder = Path(source)
        for net in nets:
            path = folder / f"{epoch}_net_{net}.pth"
            if path.is_file():
                found[net] = path
        where = f"in {folder} (looked for {epoch}_net_{{{','.join(nets)}}}.pth)"
    else:
        paths = (
            [Path(source)] if isinstance(source, (str, os.PathLike)) else list(map(Path, source))
        )
        for path in paths:
            if not path.is_file():
                raise ConvertError(f"{path} does not exist or is not a file")
            match = _FILE_NAME.match(path.name)
            if match is None or match["net"] not in nets:
                raise ConvertError(
                    f"{path.name}: official --model {model} files are named "
                    f"<epoch>_net_<{'|'.join(nets)}>.pth (as the official code saves them); "
                    "rename it or check --model"
                )
            if match["net"] in found:
                raise ConvertError(
                    f"Two files for net {match['net']}: {found[match['net']]}, {path}"
                )
            found[match["net"]] = path
        where = "among the files given"
    missing = [n for n in nets if n.startswith("G") and n not in found]
    if missing:
        raise ConvertError(
            f"No {', '.join(f'net_{n}' for n in missing)} {where}; --model {model} needs "
            f"the generator{'s' if len(missing) > 1 else ''}"
        )
    return found


def convert_official(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    task: str,
    options: OfficialOptions | None = None,
    epoch: str = "latest",
    catalog: Catalog | None = None,
) -> Path:
    """Convert official ``.pth`` files (a checkpoints folder, or the files) into run folder ``out``.

    ``out`` must not exist or be empty. Writes ``out/config.json`` (the run config),
    ``out/conversion.json`` (the source files, their SHA-256 and the official flags) and one
    checkpoint with a role per converted network; returns its folder. Raises
    :class:`ConvertError` (or :class:`~i2i.convert.names.OfficialFileError`, a file that does
    not match) before writing anything.
    """
    from i2i import catalog as default_catalog

    catalog = catalog or default_catalog()
    opts = (options or OfficialOptions()).resolved()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConvertError(f"--out {out} already exists and is not an empty folder; pick another")
    files = official_files(source, model=opts.model, epoch=epoch)
    try:
        task_obj = catalog.tasks.get(catalog.tasks.get(task).name).obj
        cfg = resolve_config(catalog, task, **_run_flags(opts, task_obj))
        setup = RecipeSetup(
            config=cfg,
            options=dict(cfg.recipe_options),
            task=task_obj,
            catalog=catalog,
            dist=DistInfo(),  # one process on the CPU
        )
        step = catalog.recipes.get(cfg.recipe).obj.build(setup)  # what `i2i run` would train
    except (ConfigError, LookupError) as exc:
        raise ConvertError(str(exc)) from exc
    plan = ROLE_PLAN[opts.model]
    modules = step.modules()
    unplanned = sorted(set(modules) - set(plan))
    if unplanned:
        raise ConvertError(
            f"recipe {cfg.recipe!r} has role(s) {', '.join(unplanned)} that the official "
            f"--model {opts.model} has no network for"
        )
    weights = {
        role: _convert_file(files[plan[role]], module, step.specs[role], opts)
        for role, module in modules.items()
        if plan[role] in files
    }

    record = {
        "from": "official pytorch-CycleGAN-and-pix2pix",
        "options": dataclasses.asdict(opts),
        "epoch": epoch,
        "files": {
            role: {
                "net": plan[role],
                "path": str(files[plan[role]].absolute()),
                "sha256": _sha256(files[plan[role]]),
            }
            for role in weights
        },
    }
    translator = modules[step.translators[cfg.direction]]
    extra = {  # as the runner records them
        "recipe": cfg.recipe,
        "roles": {role: step.specs[role] for role in weights},
        "translators": step.translators,
        "in_channels": task_obj.in_channels,
        "out_channels": task_obj.out_channels,
        "size_multiple": int(getattr(translator, "size_multiple", 1)),
    }
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        ckpt_io.write_json_atomic(out / RUN_CONFIG_FILE, cfg.to_dict())
        ckpt_io.write_json_atomic(out / CONVERSION_FILE, record)
        return ckpt_io.save_checkpoint(
            out, step=0, epoch=0, config=cfg.to_dict(), weights=weights, extra=extra, keep=True
        )
    except OSError as exc:  # a full disk, say: leave --out as it was (new or empty)
        shutil.rmtree(out / ckpt_io.CHECKPOINTS_DIR, ignore_errors=True)
        for name in (RUN_CONFIG_FILE, CONVERSION_FILE):
            (out / name).unlink(missing_ok=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise ConvertError(f"Cannot write the converted run into {out}: {exc}") from exc


def _run_flags(opts: OfficialOptions, task: Any) -> dict[str, Any]:
    """The :func:`~i2i.config.resolve_config` flags the official options amount to."""
    generator_kwargs: dict[str, Any] = {"ngf": opts.ngf, "dropout": not opts.no_dropout}
    if opts.netG.startswith("unet") and not opts.no_dropout:
        generator_kwargs["dropout_layout"] = "official"  # dropout in the official blocks
    flags: dict[str, Any] = {
        "recipe": _RECIPES[opts.model],
        "generator": opts.netG,
        "generator_kwargs": generator_kwargs,
        "discriminator": opts.discriminator,
        "discriminator_kwargs": {"ndf": opts.ndf},
        "norm": opts.norm,
        "direction": opts.direction,
    }
    if opts.model == "cycle_gan":
        identity = opts.lambda_identity
        if identity is None:
            identity = 0.5 if task.in_channels == task.out_channels else 0.0
        flags["recipe_options"] = {
            "lambda_x": float(opts.lambda_A),  # real_A is the direction's source: X
            "lambda_y": float(opts.lambda_B),
            "lambda_identity": float(identity),
            "pool_size": int(opts.pool_size),
        }
    return flags


def _convert_file(
    path: Path, model: nn.Module, spec: dict[str, Any], opts: OfficialOptions
) -> dict[str, Tensor]:
    """The state dict of role network ``model`` (built from ``spec``) from official ``path``."""
    kind, name = spec["kind"], spec["name"]
    if kind == "generator":
        official, width = opts.netG, f"ngf {opts.ngf}"
        channels = f"{spec['in_channels']} -> {spec['out_channels']} channels"
    else:
        official, width = opts.netD, f"ndf {opts.ndf}"
        channels = f"{spec['in_channels']} input channels"
    network = f"official {official} {kind} (i2i {name}; norm {opts.norm}, {width}, {channels})"
    try:
        state = ckpt_io.safe_torch_load(path, what="official weights")
    except ckpt_io.CheckpointError as exc:
        raise ConvertError(str(exc)) from None
    return official_to_i2i(
        state, model, family=FAMILIES[name], norm=opts.norm, source=str(path), network=network
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _choice(flag: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConvertError(f"{flag} must be one of {', '.join(choices)}; got {value!r}")


__all__ = [
    "CONVERSION_FILE",
    "ConvertError",
    "OfficialOptions",
    "ROLE_PLAN",
    "convert_official",
    "official_files",
]
