"""Checkpoints that describe themselves, written atomically.

Layout of a run folder ``OUT``::

    OUT/checkpoints/latest.json            {"step": 400, "dir": "step_00000400"}
    OUT/checkpoints/step_00000400/
        <role>.safetensors                 one per role, the recipe's named networks
                                           (safetensors: no pickle)
        config.json                        the resolved RunConfig + recipe, roles, translators,
                                           step, epoch, ...
        train_state.pt                     optimizers, schedulers, RNG: loads with weights_only

``config.json`` says how to rebuild every role without the recipe's code: ``roles`` maps each
role to ``{"kind": "generator"|"discriminator", "name", "options", "in_channels",
"out_channels"}``, and ``translators`` maps a data direction (``AtoB``, ``BtoA``) to the role
that translates that way. Checkpoints of format 1 (i2i before recipes, no ``roles``) load
through :mod:`i2i.engine.format1`.

A checkpoint is written into a hidden temporary folder beside its final place, every file
fsync'd, then renamed into place; ``latest.json`` is then replaced the same way. A crash at
any moment leaves the previous ``latest`` loadable. A save that fails (a full disk, say) removes
its temporary folder and raises :class:`CheckpointSaveError`, which names the checkpoint that
is kept.

Nothing is unpickled beyond plain data: weights are safetensors, ``train_state.pt`` loads with
``torch.load(weights_only=True)``, and a file that asks for any other Python object (a pickle
that would run code) is refused with a :class:`CheckpointError` naming it.

>>> import tempfile, torch
>>> run = Path(tempfile.mkdtemp())
>>> cfg = {"task": "demo", "generator": "g", "norm": "batch"}
>>> _ = save_checkpoint(run, step=3, epoch=0, config=cfg, weights={"G": {"w": torch.zeros(2)}},
...                     extra={"translators": {"AtoB": "G"}})
>>> ckpt = load_checkpoint(run)
>>> ckpt.step, ckpt.path.name, sorted(ckpt.weights), ckpt.translator_role()
(3, 'step_00000003', ['G'], 'G')
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors_file
from safetensors.torch import save as save_safetensors_bytes
from torch import Tensor, nn

from i2i.catalog import Catalog
from i2i.config import RunConfig
from i2i.engine import format1

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest.json"
WEIGHTS_SUFFIX = ".safetensors"
CONFIG_FILE = "config.json"
TRAIN_STATE_FILE = "train_state.pt"
FORMAT_VERSION = 2
#: Role names become file names: letters, digits and underscores, a letter first.
ROLE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".old-"
_STEP_NAME = re.compile(r"step_\d+")

#: Keys ``config.json`` of a checkpoint holds beside the :class:`RunConfig` fields.
CHECKPOINT_KEYS = (
    "format_version",
    "i2i_version",
    "step",
    "epoch",
    "keep",
    "in_channels",
    "out_channels",
    "discriminator_in_channels",
    "size_multiple",
    "recipe",
    "roles",
    "translators",
)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or unreadable; the message names the path."""


class CheckpointSaveError(CheckpointError, OSError):
    """A checkpoint could not be written (e.g. the disk is full); the previous one is kept.

    Also an :class:`OSError`, with the ``errno`` of the failure that caused it.
    """


@dataclass
class Checkpoint:
    """One loaded checkpoint: its folder, configuration and weights by role (CPU tensors)."""

    path: Path
    config: dict[str, Any]
    weights: dict[str, dict[str, Tensor]]
    step: int
    epoch: int = 0

    @property
    def run_dir(self) -> Path:
        """The run folder holding this checkpoint."""
        return self.path.parent.parent

    @property
    def recipe(self) -> str:
        """The recipe that trained it (format 1: :data:`i2i.engine.format1.RECIPE`)."""
        return str(self.config.get("recipe") or format1.RECIPE)

    @property
    def roles(self) -> dict[str, dict[str, Any]]:
        """Each role's network spec (kind, name, options, channels); see the module docstring."""
        return role_specs(self.config)

    @property
    def translators(self) -> dict[str, str]:
        """Data direction (``AtoB``/``BtoA``) -> the role that translates that way."""
        return translators_of(self.config)

    def translator_role(self, direction: str | None = None) -> str:
        """The role translating in ``direction`` (default: the direction the run trained)."""
        table = self.translators
        direction = direction or self.config.get("direction") or next(iter(table), None)
        if direction not in table:
            ways = ", ".join(table) or "none"
            one_way = "; it was trained one way: train a model the other way for that"
            raise CheckpointError(
                f"Checkpoint {self.path} translates {ways} only, not {direction}"
                + (one_way if len(table) == 1 else "")
            )
        return table[direction]

    @property
    def generator_state(self) -> dict[str, Tensor]:
        """The weights of the role that translates in the trained direction."""
        return self.weights[self.translator_role()]

    def run_config(self) -> RunConfig:
        """The resolved :class:`RunConfig` the checkpoint was trained with."""
        return RunConfig.from_dict(self.config, ignore=CHECKPOINT_KEYS)

    def train_state(self) -> dict[str, Any]:
        """Optimizer, scheduler and RNG state, loaded with ``weights_only=True`` on the CPU."""
        path = self.path / TRAIN_STATE_FILE
        if not path.is_file():
            raise CheckpointError(f"{path} is missing: this checkpoint cannot resume training")
        state = safe_torch_load(path, what="resume state")
        if not isinstance(state, dict):
            raise CheckpointError(
                f"{path}: expected a dict of resume state, got {type(state).__name__}"
            )
        return state


def role_spec(
    kind: str,
    name: str,
    options: Mapping[str, Any],
    in_channels: int,
    out_channels: int | None = None,
) -> dict[str, Any]:
    """How to rebuild one role's network: what ``config.json`` records under ``roles``.

    >>> role_spec("discriminator", "patch70", {"norm": "batch"}, 6)
    {'kind': 'discriminator', 'name': 'patch70', 'options': {'norm': 'batch'}, 'in_channels': 6}
    """
    if kind not in ("generator", "discriminator"):
        raise ValueError(f"role kind must be 'generator' or 'discriminator', got {kind!r}")
    spec: dict[str, Any] = {
        "kind": kind,
        "name": name,
        "options": dict(options),
        "in_channels": int(in_channels),
    }
    if out_channels is not None:
        spec["out_channels"] = int(out_channels)
    return spec


def role_specs(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``roles`` of a checkpoint config; for format 1, rebuilt from its generator fields.

    Raises :class:`CheckpointError` for a role whose name could not name a weights file
    (:data:`ROLE_PATTERN`) or whose spec is not a mapping.
    """
    specs = (
        dict(config["roles"]) if isinstance(config.get("roles"), dict) else format1.roles(config)
    )
    for role, spec in specs.items():
        if not ROLE_PATTERN.match(str(role)):
            raise CheckpointError(
                f"role {role!r} in the checkpoint config is not a role name (letters, digits "
                "and underscores, a letter first): i2i never writes such a name"
            )
        if not isinstance(spec, Mapping):
            raise CheckpointError(
                f"role {role!r} in the checkpoint config is {spec!r}, not a mapping of its "
                "kind, name and options"
            )
    return specs


def translators_of(config: Mapping[str, Any]) -> dict[str, str]:
    """The ``translators`` of a checkpoint config; for format 1, the generator one way.

    Raises :class:`CheckpointError` for a translator that is not a role name.
    """
    if not isinstance(config.get("translators"), dict):
        return format1.translators(config)
    table = {str(k): str(v) for k, v in config["translators"].items()}
    for direction, role in table.items():
        if not ROLE_PATTERN.match(role):
            raise CheckpointError(
                f"translator {direction!r} in the checkpoint config names {role!r}, which is "
                "not a role name (letters, digits and underscores, a letter first)"
            )
    return table


_GLOBAL_NAME = re.compile(r"GLOBAL ([\w.]+)")


def safe_torch_load(path: str | os.PathLike, *, what: str = "file") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with errors that name the file.

    A pickle that asks for a Python object outside plain data (``os.system``, ``exec``, any
    class) is refused, never run: :class:`CheckpointError` says so and names the object.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL_NAME.search(str(exc))
        if found is None and "global" not in str(exc).lower():  # garbage, not a request
            detail = str(exc).partition("WeightsUnpickler error:")[2].strip() or str(exc)
            raise CheckpointError(
                f"{path}: cannot read {what}: it is not a file torch.save wrote, or it is "
                f"corrupt ({detail.splitlines()[0][:200]})"
            ) from None
        asks = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            f"Refusing to load {path}: it asks for a Python object{asks} that safe loading "
            "(torch.load with weights_only=True) does not allow. i2i never unpickles arbitrary "
            "objects, because such a file can run code; do not load it unless you made it "
            "yourself."
        ) from None
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except Exception as exc:  # torch raises several types for corrupt files
        raise CheckpointError(f"{path}: cannot read {what} ({type(exc).__name__}: {exc})") from exc


def checkpoint_name(step: int) -> str:
    """``step_00000400`` for step 400."""
    return f"step_{step:08d}"


# --------------------------------------------------------------------------- writing


def save_checkpoint(
    run_dir: str | os.PathLike,
    *,
    step: int,
    epoch: int,
    config: Mapping[str, Any],
    weights: Mapping[str, Mapping[str, Tensor]] | None = None,
    train_state: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    keep: bool = False,
    keep_last: int | None = None,
) -> Path:
    """Write a checkpoint for ``step`` atomically, point ``latest.json`` at it, prune old ones.

    ``weights`` maps each role to its state dict (one ``<role>.safetensors`` each); ``config``
    is the run config dict; ``extra`` adds keys (``recipe``, ``roles``, ``translators``,
    channels) to the checkpoint's ``config.json``. ``keep=True`` marks a checkpoint that
    pruning never removes; otherwise only the newest ``keep_last`` unmarked ones stay (``None``:
    keep all).
    """
    from i2i import __version__

    weights = dict(weights or {})
    if not weights:
        raise CheckpointError("a checkpoint needs the weights of at least one role")
    for role in weights:
        if not ROLE_PATTERN.match(str(role)):
            raise CheckpointError(
                f"role name {role!r} cannot name a weights file; use letters, digits and "
                "underscores, starting with a letter"
            )

    ckdir = Path(run_dir) / CHECKPOINTS_DIR
    name = checkpoint_name(step)
    tmp = ckdir / f"{_TMP_PREFIX}{name}-{os.getpid()}"
    previous = _latest_name(ckdir)
    stage = "writing"
    try:
        ckdir.mkdir(parents=True, exist_ok=True)
        _finish_interrupted_replace(ckdir, previous)
        _remove_leftovers(ckdir)
        tmp.mkdir()
        meta = {"format": "pt", "i2i_version": __version__, "step": str(step)}
        for role, state in weights.items():
            data = save_safetensors_bytes(_cpu_state(state), {**meta, "role": role})
            _write_bytes(tmp / f"{role}{WEIGHTS_SUFFIX}", data)
        if train_state is not None:
            buffer = io.BytesIO()
            torch.save(dict(train_state), buffer)
            _write_bytes(tmp / TRAIN_STATE_FILE, buffer.getvalue())
        record = {
            **dict(config),
            **dict(extra or {}),
            "format_version": FORMAT_VERSION,
            "i2i_version": __version__,
            "step": int(step),
            "epoch": int(epoch),
            "keep": bool(keep),
        }
        record.setdefault("recipe", format1.RECIPE)
        if not isinstance(record.get("roles"), dict):  # described by format-1 fields, if at all
            described = role_specs({k: v for k, v in record.items() if k != "roles"})
            record["roles"] = {role: described.get(role, {}) for role in weights}
        record.setdefault("translators", translators_of(record))
        _write_bytes(tmp / CONFIG_FILE, (json.dumps(record, indent=2) + "\n").encode())
        _fsync_dir(tmp)
        final = ckdir / name
        if final.exists():  # saving the same step again (e.g. a resume that trained nothing)
            trash = ckdir / f"{_TRASH_PREFIX}{name}-{os.getpid()}"
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(ckdir)
        stage = "pointing latest.json at it"
        write_json_atomic(ckdir / LATEST_FILE, {"step": int(step), "dir": name})
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # frees the space a partial write took
        error = CheckpointSaveError(_save_failure(ckdir, name, previous, stage, exc))
        error.errno = exc.errno
        raise error from exc
    if keep_last is not None:
        prune_checkpoints(ckdir, keep_last=keep_last, protect=name)
    return final


def _latest_name(ckdir: Path) -> str | None:
    """The step folder ``latest.json`` names now, or None (also for a name that is not one)."""
    try:
        name = str(json.loads((ckdir / LATEST_FILE).read_text())["dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return name if _STEP_NAME.fullmatch(name) else None


def _save_failure(ckdir: Path, name: str, previous: str | None, stage: str, exc: OSError) -> str:
    """The message of a failed save: what failed, why, and which checkpoint is kept."""
    full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    why = f"the disk is full ({os.strerror(exc.errno)})" if full else f"{type(exc).__name__}: {exc}"
    if previous is not None:
        kept = (
            f"The previous checkpoint, {ckdir / previous}, is intact and kept "
            f"(latest.json still points at it); {'free some space' if full else 'fix that'}, "
            f"then continue with `i2i run --resume {ckdir.parent}`."
        )
    else:
        kept = "No earlier checkpoint of this run exists."
    return f"Cannot save checkpoint {name} in {ckdir} while {stage}: {why}. {kept}"


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with JSON ``data`` via a temporary file, fsync and rename."""
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}-{os.getpid()}")
    _write_bytes(tmp, (json.dumps(data, indent=2) + "\n").encode())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def prune_checkpoints(ckdir: Path, *, keep_last: int, protect: str | None = None) -> list[Path]:
    """Delete all but ``keep_last`` checkpoints not marked ``keep``: ``protect`` (the one just
    written) first, then the newest. Returns the removed folders."""
    unmarked = []
    for path in _step_dirs(ckdir):
        try:
            marked = json.loads((path / CONFIG_FILE).read_text()).get("keep", False)
        except (OSError, ValueError):
            marked = False  # unreadable: treat as an ordinary checkpoint
        if not marked:
            unmarked.append(path)
    order = sorted(unmarked, key=lambda p: (p.name == protect, checkpoint_step(p)), reverse=True)
    removed = []
    for path in order[max(keep_last, 0) :]:
        trash = path.with_name(f"{_TRASH_PREFIX}{path.name}-{os.getpid()}")
        try:  # out of the listing in one step: a process killed while deleting leaves no
            os.replace(path, trash)  # half checkpoint, only a leftover the next save removes
        except OSError:
            continue  # left whole
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(path)
    return removed


def _cpu_state(state: Mapping[str, Any]) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise CheckpointError(
                f"state entry {key!r} is a {type(value).__name__}, not a tensor; "
                "safetensors stores tensors only"
            )
        out[key] = value.detach().to("cpu").clone(memory_format=torch.contiguous_format)
    return out


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _interrupted_replace(ckdir: Path, name: str | None) -> Path | None:
    """Where a save of step folder ``name`` (the one ``latest.json`` names) was killed between
    moving the old folder aside and renaming the new one into its place: the new folder
    (written whole and fsynced before either rename), else the old one; None where nothing
    was interrupted so."""
    if name is None or not _STEP_NAME.fullmatch(name) or (ckdir / name).exists():
        return None
    for prefix in (_TMP_PREFIX, _TRASH_PREFIX):
        for candidate in sorted(ckdir.glob(f"{prefix}{name}-*")):
            if _is_whole_checkpoint(candidate):
                return candidate
    return None


def _finish_interrupted_replace(ckdir: Path, name: str | None) -> None:
    """Put the folder of :func:`_interrupted_replace` back under ``name`` (by the one process
    that saves; readers only read it where it lies)."""
    candidate = _interrupted_replace(ckdir, name)
    if candidate is not None:
        os.replace(candidate, ckdir / str(name))
        _fsync_dir(ckdir)


def _is_whole_checkpoint(path: Path) -> bool:
    """A checkpoint folder whose ``config.json`` (written last) reads whole."""
    try:
        json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return is_checkpoint_dir(path)


def _remove_leftovers(ckdir: Path) -> None:
    """Remove temporary folders of saves that crashed before their rename."""
    for path in ckdir.iterdir():
        if path.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- reading


def checkpoint_step(path: Path) -> int:
    """The step a ``step_N`` checkpoint folder's name gives: 400 for ``step_00000400``."""
    return int(path.name.split("_", 1)[1])


def _step_dirs(ckdir: Path) -> list[Path]:
    out = []
    for path in ckdir.iterdir():
        name = path.name
        if path.is_dir() and name.startswith("step_") and name[5:].isdigit():
            out.append(path)
    return sorted(out, key=checkpoint_step)


def is_checkpoint_dir(path: Path) -> bool:
    """Whether ``path`` holds a checkpoint: its ``config.json`` and weights of some role."""
    return (path / CONFIG_FILE).is_file() and any(path.glob(f"*{WEIGHTS_SUFFIX}"))


def list_checkpoints(path: str | os.PathLike) -> list[Path]:
    """The complete checkpoint folders of a run (or ``checkpoints/``) folder, oldest first."""
    p = Path(path)
    ckdir = p / CHECKPOINTS_DIR if (p / CHECKPOINTS_DIR).is_dir() else p
    if not ckdir.is_dir():
        return []
    return [d for d in _step_dirs(ckdir) if is_checkpoint_dir(d)]


def resolve_checkpoint_dir(path: str | os.PathLike) -> Path:
    """The checkpoint folder meant by ``path``: a checkpoint, a ``checkpoints/`` or a run folder."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"No checkpoint at {p}: the path does not exist")
    if p.is_file():
        raise CheckpointError(
            f"{p} is a file; pass a checkpoint folder (holding {CONFIG_FILE} and "
            f"*{WEIGHTS_SUFFIX} weights), a run folder or its {CHECKPOINTS_DIR}/ folder"
        )
    if is_checkpoint_dir(p):
        return p
    if (p / LATEST_FILE).is_file() or p.name == CHECKPOINTS_DIR:
        return _latest_in(p)
    if (p / CHECKPOINTS_DIR).is_dir():
        return _latest_in(p / CHECKPOINTS_DIR)
    if p.name.startswith("step_"):
        missing = CONFIG_FILE if not (p / CONFIG_FILE).is_file() else f"*{WEIGHTS_SUFFIX} weights"
        raise CheckpointError(f"Checkpoint {p} is incomplete: {missing} missing")
    raise CheckpointError(
        f"{p} is not a checkpoint folder (no {CONFIG_FILE} with *{WEIGHTS_SUFFIX} weights), "
        f"nor a run folder (no {CHECKPOINTS_DIR}/), nor a {CHECKPOINTS_DIR}/ folder"
    )


def _latest_in(ckdir: Path) -> Path:
    latest = ckdir / LATEST_FILE
    if latest.is_file():
        try:
            record = json.loads(latest.read_text())
            target = ckdir / str(record["dir"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{latest} is unreadable ({exc})") from exc
        if not _STEP_NAME.fullmatch(str(record["dir"])):
            # a pointer elsewhere would load, resume and prune another run's checkpoints
            raise CheckpointError(
                f"{latest} names {str(record['dir'])!r}, not a step_N folder inside {ckdir}; "
                "i2i writes only such names there: restore the file, or pass the checkpoint "
                "folder itself"
            )
        if is_checkpoint_dir(target):
            return target
        aside = _interrupted_replace(ckdir, str(record["dir"]))  # a save killed mid-rename
        if aside is not None:
            return aside
        if is_checkpoint_dir(target):  # that save finished meanwhile
            return target
        raise CheckpointError(f"{latest} names {target}, which holds no complete checkpoint")
    found = list_checkpoints(ckdir)
    if not found:
        raise CheckpointError(f"No checkpoints in {ckdir}")
    return found[-1]


def load_checkpoint(
    path: str | os.PathLike,
    *,
    discriminator: bool = True,
    roles: tuple[str, ...] | None = None,
) -> Checkpoint:
    """Load the checkpoint at ``path`` (checkpoint, ``checkpoints/`` or run folder: its latest).

    Loads the weights of every role (``roles`` restricts them; ``discriminator=False`` leaves
    out the discriminators). Weights load on the CPU with safetensors; nothing is unpickled.
    """
    ckpt_dir = resolve_checkpoint_dir(path)
    config_path = ckpt_dir / CONFIG_FILE
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"Checkpoint {ckpt_dir} is incomplete: {CONFIG_FILE} is missing"
        ) from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{config_path} is not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or "step" not in config:
        raise CheckpointError(f"{config_path} is not an i2i checkpoint config (no 'step')")
    try:
        specs = role_specs(config)
        translators_of(config)
    except CheckpointError as exc:
        raise CheckpointError(f"{config_path}: {exc}") from None
    if "roles" not in config and not (ckpt_dir / format1.GENERATOR_FILE).is_file():
        raise CheckpointError(
            f"Checkpoint {ckpt_dir} is incomplete: {format1.GENERATOR_FILE} is missing"
        )
    weights = {}
    for role, spec in specs.items():
        if roles is not None and role not in roles:
            continue
        if not discriminator and spec.get("kind") == "discriminator":
            continue
        file = ckpt_dir / f"{role}{WEIGHTS_SUFFIX}"
        if spec.get("kind") == "discriminator" and "roles" not in config and not file.is_file():
            continue  # format 1: a run without an adversarial term saved no discriminator
        weights[role] = _load_weights(file)
    try:
        step, epoch = int(config["step"]), int(config.get("epoch", 0))
    except (TypeError, ValueError):
        raise CheckpointError(
            f"{config_path}: 'step' and 'epoch' must be whole numbers, got "
            f"{config['step']!r} and {config.get('epoch', 0)!r}"
        ) from None
    return Checkpoint(path=ckpt_dir, config=config, weights=weights, step=step, epoch=epoch)


def _load_weights(path: Path) -> dict[str, Tensor]:
    try:
        return load_safetensors_file(path, device="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from exc


# --------------------------------------------------------------------------- rebuilding


def build_role(ckpt: Checkpoint, role: str, catalog: Catalog) -> nn.Module:
    """The network of ``role``, rebuilt from the checkpoint's config alone, weights loaded strictly.

    The module is returned in training mode, as a factory returns it; callers choose
    ``eval()`` or the paper's test mode.
    """
    from i2i.engine.build import build_network, without_random_init

    specs = ckpt.roles
    if role not in specs:
        raise CheckpointError(
            f"Checkpoint {ckpt.path} has no role {role!r}; its roles: {', '.join(specs) or 'none'}"
        )
    if role not in ckpt.weights:
        raise CheckpointError(f"Checkpoint {ckpt.path}: the weights of {role!r} were not loaded")
    spec = specs[role]
    from i2i.registry import UnknownComponentError

    try:
        with without_random_init():  # every weight is loaded next, strictly
            model = build_network(catalog, spec)
    except (UnknownComponentError, KeyError, TypeError, ValueError) as exc:
        what = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
        raise CheckpointError(
            f"{ckpt.path / CONFIG_FILE}: role {role!r} cannot be rebuilt from it: {what}"
        ) from exc
    _load_strict(model, ckpt.weights[role], ckpt.path / f"{role}{WEIGHTS_SUFFIX}", spec["name"])
    return model


def build_translator(ckpt: Checkpoint, catalog: Catalog, direction: str | None = None) -> nn.Module:
    """The generator that translates in ``direction`` (default: the trained direction)."""
    return build_role(ckpt, ckpt.translator_role(direction), catalog)


def build_generator(ckpt: Checkpoint, catalog: Catalog) -> nn.Module:
    """The checkpoint's generator for its trained direction (see :func:`build_translator`)."""
    return build_translator(ckpt, catalog)


def _load_strict(model: nn.Module, state: Mapping[str, Tensor], path: Path, name: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path} does not fit {name!r} as its config describes it: {exc}"
        ) from exc
