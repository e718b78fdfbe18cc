"""Bring models of the official pix2pix/CycleGAN code into i2i: ``convert_official``.

The official code (github.com/junyanz/pytorch-CycleGAN-and-pix2pix) saves one state dict per
network, ``<epoch>_net_<name>.pth`` in ``checkpoints/<experiment>/``: ``G`` and ``D`` for
``--model pix2pix``; ``G_A``, ``G_B``, ``D_A``, ``D_B`` for ``--model cycle_gan``. The files do
not say how the networks were built, so :class:`OfficialOptions` takes the flags that trained
them, with the official defaults. Each file is read with ``torch.load(weights_only=True)``,
checked key by key against the i2i network those flags name, and written as a role of an i2i
checkpoint (format 2) in a new run folder, which ``i2i translate``, ``i2i eval``, ``i2i export``
and ``i2i run --init-from`` take like a trained run.

Roles: pix2pix -> ``generator`` (G) and ``discriminator`` (D). CycleGAN -> ``G`` = G_A, which
maps the trained ``--direction``'s source to its target (the official ``set_input`` swaps A and
B for ``BtoA``, so G_A always translates in the given direction), ``F`` = G_B (the other way),
``D_Y`` = D_A (judges G's outputs), ``D_X`` = D_B. Discriminator files are optional.

>>> OfficialOptions(model="cycle_gan").resolved()
OfficialOptions(model='cycle_gan', netG='resnet_9blocks', netD='basic', n_layers_D=3, \
norm='instance', no_dropout=True, ngf=64, ndf=64, direction='AtoB')
>>> role_plan("cycle_gan", "BtoA")["G"], translators_for("cycle_gan", "BtoA")
('G_A', {'BtoA': 'G', 'AtoB': 'F'})
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from i2i.catalog import Catalog
from i2i.config import ConfigError, field_names, resolve_config
from i2i.convert.names import FAMILIES, OfficialFileError, official_to_i2i
from i2i.engine import checkpoint as ckpt_io
from i2i.engine.build import discriminator_options, generator_options
from i2i.engine.runner import RUN_CONFIG_FILE
from i2i.task import DIRECTIONS

MODELS = ("pix2pix", "cycle_gan")
NET_G = ("unet_256", "unet_128", "resnet_9blocks", "resnet_6blocks")
NET_D = ("basic", "n_layers", "pixel")
NORMS = ("batch", "instance", "none")
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


class ConvertError(ValueError):
    """Conversion cannot proceed (bad flags, missing or mismatched files); says what to fix."""


@dataclass(frozen=True)
class OfficialOptions:
    """The official ``train.py`` flags that decide the networks; ``None`` = the model's default.

    Defaults as in the official code: ``pix2pix`` trains ``unet_256`` with batch norm and
    dropout, ``cycle_gan`` ``resnet_9blocks`` with instance norm and no dropout; both use the
    70 x 70 PatchGAN (``--netD basic``), ``ngf = ndf = 64`` and ``--direction AtoB``.
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


def role_plan(model: str, direction: str) -> dict[str, str]:
    """i2i role -> official network name, for ``--model`` ``model`` (any ``direction``).

    >>> role_plan("pix2pix", "AtoB")
    {'generator': 'G', 'discriminator': 'D'}
    """
    _choice("--direction", direction, DIRECTIONS)
    if model == "pix2pix":
        return {"generator": "G", "discriminator": "D"}
    _choice("--model", model, MODELS)
    return {"G": "G_A", "F": "G_B", "D_Y": "D_A", "D_X": "D_B"}


def translators_for(model: str, direction: str) -> dict[str, str]:
    """Which role translates in which data direction.

    >>> translators_for("pix2pix", "BtoA")
    {'BtoA': 'generator'}
    """
    if model == "pix2pix":
        return {direction: "generator"}
    other = "BtoA" if direction == "AtoB" else "AtoB"
    return {direction: "G", other: "F"}


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
        cfg = resolve_config(catalog, task, **_run_flags(opts))
    except (ConfigError, LookupError) as exc:
        raise ConvertError(str(exc)) from exc
    task_obj = catalog.tasks.get(cfg.task).obj
    roles = _role_specs(catalog, cfg.to_dict(), opts, task_obj.in_channels, task_obj.out_channels)
    plan = role_plan(opts.model, cfg.direction)
    weights: dict[str, dict[str, Tensor]] = {}
    for role, net in plan.items():
        if net not in files:
            roles.pop(role)
            continue
        weights[role] = _convert_file(files[net], roles[role], catalog, opts)

    out.mkdir(parents=True, exist_ok=True)
    ckpt_io.write_json_atomic(out / RUN_CONFIG_FILE, cfg.to_dict())
    record = {
        "from": "official pytorch-CycleGAN-and-pix2pix",
        "options": dataclasses.asdict(opts),
        "epoch": epoch,
        "files": {
            role: {
                "net": plan[role],
                "path": str(files[plan[role]]),
                "sha256": _sha256(files[plan[role]]),
            }
            for role in weights
        },
    }
    ckpt_io.write_json_atomic(out / CONVERSION_FILE, record)
    extra = {
        "in_channels": task_obj.in_channels,
        "out_channels": task_obj.out_channels,
        "size_multiple": catalog.generators.get(cfg.generator).meta.get("size_multiple", 1),
    }
    return _save(
        out,
        cfg.to_dict(),
        roles,
        weights,
        recipe=_RECIPES[opts.model],
        translators=translators_for(opts.model, cfg.direction),
        extra=extra,
    )


def _run_flags(opts: OfficialOptions) -> dict[str, Any]:
    """The :func:`~i2i.config.resolve_config` flags the official options amount to."""
    generator_kwargs: dict[str, Any] = {"ngf": opts.ngf, "dropout": not opts.no_dropout}
    if opts.netG.startswith("unet") and not opts.no_dropout:
        generator_kwargs["dropout_layout"] = "official"  # dropout in the official blocks
    flags: dict[str, Any] = {
        "generator": opts.netG,
        "generator_kwargs": generator_kwargs,
        "discriminator": opts.discriminator,
        "discriminator_kwargs": {"ndf": opts.ndf},
        "norm": opts.norm,
        "direction": opts.direction,
    }
    if "recipe" in field_names():
        flags["recipe"] = _RECIPES[opts.model]
    return flags


def _role_specs(
    catalog: Catalog, config: dict[str, Any], opts: OfficialOptions, c_in: int, c_out: int
) -> dict[str, dict[str, Any]]:
    """Every role's spec (kind, registry name, options, channels), as format 2 stores them."""
    gen = catalog.generators.get(config["generator"])
    disc = catalog.discriminators.get(config["discriminator"])
    g_opts = generator_options(config, gen.obj)
    d_opts = discriminator_options(config, disc.obj)

    def g(i: int, o: int) -> dict[str, Any]:
        return ckpt_io.role_spec("generator", gen.name, g_opts, i, o)

    def d(i: int) -> dict[str, Any]:
        return ckpt_io.role_spec("discriminator", disc.name, d_opts, i)

    if opts.model == "pix2pix":
        return {"generator": g(c_in, c_out), "discriminator": d(c_in + c_out)}
    return {"G": g(c_in, c_out), "F": g(c_out, c_in), "D_Y": d(c_out), "D_X": d(c_in)}


def _convert_file(
    path: Path, spec: dict[str, Any], catalog: Catalog, opts: OfficialOptions
) -> dict[str, Tensor]:
    """The i2i state dict of the role ``spec`` from official file ``path``, checked."""
    kind, name = spec["kind"], spec["name"]
    registry = catalog.generators if kind == "generator" else catalog.discriminators
    channels = {"in_channels": spec["in_channels"]}
    if kind == "generator":
        channels["out_channels"] = spec["out_channels"]
    model = registry.get(name).build(**channels, **spec["options"])
    arrow = (
        f"{spec['in_channels']} -> {spec['out_channels']}"
        if kind == "generator"
        else (str(spec["in_channels"]))
    )
    official = opts.netG if kind == "generator" else opts.netD
    width = f"ngf {opts.ngf}" if kind == "generator" else f"ndf {opts.ndf}"
    network = (
        f"official {official} {kind} (i2i {name}; norm {opts.norm}, {width}, {arrow} channels)"
    )
    try:
        state = ckpt_io.safe_torch_load(path, what="official weights")
    except ckpt_io.CheckpointError as exc:
        raise ConvertError(str(exc)) from None
    return official_to_i2i(
        state, model, family=FAMILIES[name], norm=opts.norm, source=str(path), network=network
    )


def _save(
    out: Path,
    config: dict[str, Any],
    roles: dict[str, dict[str, Any]],
    weights: dict[str, dict[str, Tensor]],
    *,
    recipe: str,
    translators: dict[str, str],
    extra: dict[str, Any],
) -> Path:
    """Write the checkpoint: one role per converted network, with recipe and translators."""
    record = {**config, "recipe": recipe, "roles": roles, "translators": translators}
    return ckpt_io.save_checkpoint(
        out, step=0, epoch=0, config=record, weights=weights, extra=extra, keep=True
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
    "OfficialFileError",
    "OfficialOptions",
    "convert_official",
]
