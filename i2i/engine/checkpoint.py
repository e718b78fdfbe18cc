"""Checkpoints that describe themselves, written atomically.

Layout of a run folder ``OUT``::

    OUT/checkpoints/latest.json            {"step": 400, "dir": "step_00000400"}
    OUT/checkpoints/step_00000400/
        generator.safetensors              weights (safetensors: no pickle)
        discriminator.safetensors          absent when the objective has no adversarial term
        config.json                        the resolved RunConfig + step, epoch, channels, ...
        train_state.pt                     optimizers, schedulers, RNG: loads with weights_only

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
>>> _ = save_checkpoint(run, step=3, epoch=0, config=cfg,
...                     generator_state={"w": torch.zeros(2)}, discriminator_state=None)
>>> ckpt = load_checkpoint(run)
>>> ckpt.step, ckpt.path.name, sorted(ckpt.generator_state)
(3, 'step_00000003', ['w'])
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

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest.json"
GENERATOR_FILE = "generator.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"
CONFIG_FILE = "config.json"
TRAIN_STATE_FILE = "train_state.pt"
FORMAT_VERSION = 1
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".old-"

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
)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or unreadable; the message names the path."""


class CheckpointSaveError(CheckpointError, OSError):
    """A checkpoint could not be written (e.g. the disk is full); the previous one is kept.

    Also an :class:`OSError`, with the ``errno`` of the failure that caused it.
    """


@dataclass
class Checkpoint:
    """One loaded checkpoint: its folder, configuration and weights (CPU tensors)."""

    path: Path
    config: dict[str, Any]
    generator_state: dict[str, Tensor]
    discriminator_state: dict[str, Tensor] | None
    step: int
    epoch: int = 0

    @property
    def run_dir(self) -> Path:
        """The run folder holding this checkpoint."""
        return self.path.parent.parent

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
    generator_state: Mapping[str, Tensor],
    discriminator_state: Mapping[str, Tensor] | None,
    train_state: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    keep: bool = False,
    keep_last: int | None = None,
) -> Path:
    """Write a checkpoint for ``step`` atomically, point ``latest.json`` at it, prune old ones.

    ``config`` is the run config dict; ``extra`` adds keys (channels, size_multiple) to the
    checkpoint's ``config.json``. ``keep=True`` marks a checkpoint that pruning never removes;
    otherwise only the newest ``keep_last`` unmarked ones stay (``None``: keep all).
    """
    from i2i import __version__

    ckdir = Path(run_dir) / CHECKPOINTS_DIR
    name = checkpoint_name(step)
    tmp = ckdir / f"{_TMP_PREFIX}{name}-{os.getpid()}"
    previous = _latest_name(ckdir)
    stage = "writing"
    try:
        ckdir.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(ckdir)
        tmp.mkdir()
        meta = {"format": "pt", "i2i_version": __version__, "step": str(step)}
        data = save_safetensors_bytes(_cpu_state(generator_state), meta)
        _write_bytes(tmp / GENERATOR_FILE, data)
        if discriminator_state is not None:
            data = save_safetensors_bytes(_cpu_state(discriminator_state), meta)
            _write_bytes(tmp / DISCRIMINATOR_FILE, data)
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
    """The folder ``latest.json`` names now, or None."""
    try:
        return str(json.loads((ckdir / LATEST_FILE).read_text())["dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
    order = sorted(unmarked, key=lambda p: (p.name == protect, _step_of(p)), reverse=True)
    removed = order[max(keep_last, 0) :]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
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


def _remove_leftovers(ckdir: Path) -> None:
    """Remove temporary folders of saves that crashed before their rename."""
    for path in ckdir.iterdir():
        if path.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- reading


def _step_of(path: Path) -> int:
    return int(path.name.split("_", 1)[1])


def _step_dirs(ckdir: Path) -> list[Path]:
    out = []
    for path in ckdir.iterdir():
        name = path.name
        if path.is_dir() and name.startswith("step_") and name[5:].isdigit():
            out.append(path)
    return sorted(out, key=_step_of)


def list_checkpoints(path: str | os.PathLike) -> list[Path]:
    """The complete checkpoint folders of a run (or ``checkpoints/``) folder, oldest first."""
    p = Path(path)
    ckdir = p / CHECKPOINTS_DIR if (p / CHECKPOINTS_DIR).is_dir() else p
    if not ckdir.is_dir():
        return []
    return [d for d in _step_dirs(ckdir) if (d / GENERATOR_FILE).is_file()]


def resolve_checkpoint_dir(path: str | os.PathLike) -> Path:
    """The checkpoint folder meant by ``path``: a checkpoint, a ``checkpoints/`` or a run folder."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"No checkpoint at {p}: the path does not exist")
    if p.is_file():
        raise CheckpointError(
            f"{p} is a file; pass a checkpoint folder (holding {GENERATOR_FILE}), "
            f"a run folder or its {CHECKPOINTS_DIR}/ folder"
        )
    if (p / GENERATOR_FILE).is_file():
        return p
    if (p / LATEST_FILE).is_file() or p.name == CHECKPOINTS_DIR:
        return _latest_in(p)
    if (p / CHECKPOINTS_DIR).is_dir():
        return _latest_in(p / CHECKPOINTS_DIR)
    if p.name.startswith("step_"):
        raise CheckpointError(f"Checkpoint {p} is incomplete: {GENERATOR_FILE} is missing")
    raise CheckpointError(
        f"{p} is not a checkpoint folder (no {GENERATOR_FILE}), nor a run folder "
        f"(no {CHECKPOINTS_DIR}/), nor a {CHECKPOINTS_DIR}/ folder"
    )


def _latest_in(ckdir: Path) -> Path:
    latest = ckdir / LATEST_FILE
    if latest.is_file():
        try:
            record = json.loads(latest.read_text())
            target = ckdir / str(record["dir"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{latest} is unreadable ({exc})") from exc
        if not (target / GENERATOR_FILE).is_file():
            raise CheckpointError(f"{latest} names {target}, which has no {GENERATOR_FILE}")
        return target
    found = list_checkpoints(ckdir)
    if not found:
        raise CheckpointError(f"No checkpoints in {ckdir}")
    return found[-1]


def load_checkpoint(path: str | os.PathLike, *, discriminator: bool = True) -> Checkpoint:
    """Load the checkpoint at ``path`` (checkpoint, ``checkpoints/`` or run folder: its latest).

    Weights load on the CPU with safetensors; nothing is unpickled.
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
    gen_state = _load_weights(ckpt_dir / GENERATOR_FILE)
    disc_path = ckpt_dir / DISCRIMINATOR_FILE
    disc_state = _load_weights(disc_path) if discriminator and disc_path.is_file() else None
    return Checkpoint(
        path=ckpt_dir,
        config=config,
        generator_state=gen_state,
        discriminator_state=disc_state,
        step=int(config["step"]),
        epoch=int(config.get("epoch", 0)),
    )


def _load_weights(path: Path) -> dict[str, Tensor]:
    try:
        return load_safetensors_file(path, device="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from exc


# --------------------------------------------------------------------------- rebuilding


def build_generator(ckpt: Checkpoint, catalog: Catalog) -> nn.Module:
    """The checkpoint's generator, rebuilt from its config alone with its weights loaded strictly.

    The module is returned in training mode, as a factory returns it; callers choose
    ``eval()`` or the paper's test mode.
    """
    from i2i.engine.build import make_generator

    cfg = ckpt.config
    model = make_generator(catalog, cfg, cfg["in_channels"], cfg["out_channels"])
    _load_strict(model, ckpt.generator_state, ckpt.path / GENERATOR_FILE, cfg["generator"])
    return model


def build_discriminator(ckpt: Checkpoint, catalog: Catalog) -> nn.Module:
    """The checkpoint's discriminator, rebuilt from its config with its weights loaded strictly."""
    from i2i.engine.build import make_discriminator

    cfg = ckpt.config
    if ckpt.discriminator_state is None or not cfg.get("discriminator"):
        raise CheckpointError(f"Checkpoint {ckpt.path} has no discriminator")
    model = make_discriminator(catalog, cfg, cfg["discriminator_in_channels"])
    path = ckpt.path / DISCRIMINATOR_FILE
    _load_strict(model, ckpt.discriminator_state, path, cfg["discriminator"])
    return model


def _load_strict(model: nn.Module, state: Mapping[str, Tensor], path: Path, name: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path} does not fit {name!r} as its config describes it: {exc}"
        ) from exc
