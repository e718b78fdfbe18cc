"""``train(config)``: build everything a run needs from its config, then run the loop.

This is the Python API behind ``i2i run``::

    from i2i import catalog
    from i2i.config import resolve_config
    from i2i.engine import train

    cfg = resolve_config(catalog(), "facades", data="data/facades", out="runs/f", epochs=1)
    run_dir = train(cfg)
    run_dir = train(resume_config(run_dir, catalog(), epochs=2), resume=run_dir)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from i2i.catalog import Catalog
from i2i.config import (
    RESUMABLE_FIELDS,
    ConfigError,
    RunConfig,
    default_out,
    field_names,
    parse_weights,
    resolve_data_root,
    validate_config,
)
from i2i.engine import checkpoint as ckpt_io
from i2i.engine.devices import (
    resolve_cuda_graphs,
    resolve_device,
    resolve_precision,
    use_cudnn_autotuner,
)
from i2i.engine.distributed import (
    DistInfo,
    barrier,
    init_distributed,
    shutdown_distributed,
    wrap_ddp,
)
from i2i.engine.graphed_step import GraphedTrainStep, training_graphs_blocker
from i2i.engine.loop import METRICS_FILE, SAMPLES_DIR, TENSORBOARD_DIR, Trainer
from i2i.engine.rng import seed_everything
from i2i.engine.validate import task_metrics
from i2i.recipe import RecipeSetup, Wrapping

RUN_CONFIG_FILE = "config.json"
#: What ``auto`` settings resolved to in this run (device, precision, layout, optimizer).
RESOLVED_FILE = "resolved.json"


#: What an i2i run writes into its folder (``--overwrite`` removes these, nothing else).
RUN_OUTPUTS = (
    RUN_CONFIG_FILE,
    RESOLVED_FILE,
    METRICS_FILE,
    SAMPLES_DIR,
    TENSORBOARD_DIR,
    ckpt_io.CHECKPOINTS_DIR,
)


class RunDirError(ConfigError):
    """The output folder cannot be used as asked (it holds something we would overwrite)."""


def resume_config(path: str | os.PathLike, catalog: Catalog, **overrides: Any) -> RunConfig:
    """The config of the checkpoint at ``path`` with ``overrides`` (``None`` values ignored).

    Only :data:`RESUMABLE_FIELDS` may change; giving another field a different value is an
    error naming it. Giving ``epochs`` alone keeps no decay phase, as in ``resolve_config``.
    """
    ckpt = ckpt_io.load_checkpoint(path, discriminator=False)
    base = ckpt.run_config()
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(field_names()) - {"lambda_l1"})
    if unknown:
        raise ConfigError(f"Unknown run option(s) {', '.join(map(repr, unknown))}")
    if "lambda_l1" in given:
        objective = parse_weights(given.get("objective", base.objective))
        given["objective"] = {**objective, "l1": float(given.pop("lambda_l1"))}
    if "epochs" in given and "epochs_decay" not in given:
        given["epochs_decay"] = 0
    given.setdefault("out", str(ckpt.run_dir))
    cfg = validate_config(base.replace(**given), catalog)  # canonical names, checked values
    _refuse_structural_changes(base, cfg, ckpt.path)
    return cfg


def _refuse_structural_changes(saved: RunConfig, cfg: RunConfig, where: Path) -> None:
    """Raise unless ``cfg`` differs from ``saved`` only in :data:`RESUMABLE_FIELDS`."""
    old, new = saved.to_dict(), cfg.to_dict()
    changed = [k for k in old if k not in RESUMABLE_FIELDS and old[k] != new[k]]
    if changed:
        listed = ", ".join(f"{k} (checkpoint: {old[k]!r}, given: {new[k]!r})" for k in changed)
        raise ConfigError(
            f"Cannot change {listed} when resuming {where}; only "
            f"{', '.join(RESUMABLE_FIELDS)} may change. Start a new run instead."
        )


def prepare_run_dir(
    out: str | os.PathLike, *, resuming: Path | None = None, overwrite: bool = False
) -> Path:
    """Make ``out`` ready: new or empty; the run being resumed; or ``overwrite`` an old run.

    Never deletes a user's files: ``overwrite`` applies only to a folder an i2i run wrote
    (its ``config.json`` a run config), removes only what such a run writes
    (:data:`RUN_OUTPUTS`) and leaves every other file where it is.
    """
    out = Path(out).absolute()
    if resuming is not None and out.resolve() == resuming.resolve():
        return out
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        replace = (
            f"pass --overwrite to replace its i2i outputs ({', '.join(RUN_OUTPUTS)}; other "
            "files are left alone)"
        )
        if not is_run_folder(out):
            raise RunDirError(
                f"--out {out} already holds files and is not an i2i run folder (no run "
                f"{RUN_CONFIG_FILE}); pick another --out, a new or empty folder. --overwrite "
                "replaces only an earlier i2i run's outputs, never other files."
            )
        if not overwrite:
            if ckpt_io.list_checkpoints(out):
                raise RunDirError(
                    f"--out {out} already holds an earlier i2i run. Continue it with --resume "
                    f"{out}, pick another --out, or {replace}."
                )
            raise RunDirError(
                f"--out {out} already holds an earlier i2i run that saved no checkpoint; "
                f"pick another --out, or {replace}."
            )
        for name in RUN_OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def _later_checkpoints(checkpoint: ckpt_io.Checkpoint, out: Path) -> list[Path]:
    """The checkpoints after ``checkpoint`` in its own run, when training goes on into it and
    the run's latest checkpoint is a later one (not so for the leftover of a save killed
    before it was pointed to: resuming replaces that as before)."""
    if out.resolve() != checkpoint.run_dir.resolve():
        return []
    try:
        latest = ckpt_io.resolve_checkpoint_dir(checkpoint.run_dir)
    except ckpt_io.CheckpointError:
        return []
    if latest.resolve() == checkpoint.path.resolve():
        return []
    return [
        p
        for p in ckpt_io.list_checkpoints(checkpoint.run_dir)
        if ckpt_io.checkpoint_step(p) > checkpoint.step
    ]


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder``'s ``config.json`` is an i2i run config (a task and a generator)."""
    try:
        config = json.loads((folder / RUN_CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and {"task", "generator"} <= set(config)


def train(
    config: RunConfig,
    *,
    catalog: Catalog | None = None,
    resume: str | os.PathLike | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    bar: bool | None = None,
    echo: Callable[[str], None] | None = None,
) -> Path:
    """Train the run ``config`` describes (continuing ``resume`` when given); returns its folder.

    Raises :class:`~i2i.engine.loop.TrainingInterrupted` after saving a checkpoint when
    stopped by Ctrl-C or SIGTERM.
    """
    from i2i import catalog as default_catalog
    from i2i.data import build_dataset
    from i2i.data.io import DatasetError
    from i2i.data.transforms import PreprocessConfig

    catalog = catalog or default_catalog()
    cfg = validate_config(config, catalog)
    checkpoint = ckpt_io.load_checkpoint(resume) if resume is not None else None
    if checkpoint is not None:
        _refuse_structural_changes(checkpoint.run_config(), cfg, checkpoint.path)
    if cfg.out is None:
        cfg = cfg.replace(out=str(checkpoint.run_dir) if checkpoint else default_out(cfg.task))

    later = _later_checkpoints(checkpoint, Path(cfg.out)) if checkpoint else []
    if later and not overwrite:
        raise RunDirError(
            f"{checkpoint.path} is not the latest checkpoint of {checkpoint.run_dir}: "
            f"{', '.join(p.name for p in later)} came later, and resuming here would "
            "replace them. Resume the latest (--resume with the run folder), continue into "
            "another --out, or pass --overwrite to delete the later checkpoints first."
        )
    device = resolve_device(cfg.device, _local_rank())
    dist = init_distributed(device)
    try:
        if dist.is_main and later:  # --overwrite asked: point latest.json back, then delete
            record = {"step": checkpoint.step, "dir": checkpoint.path.name}
            ckpt_io.write_json_atomic(checkpoint.path.parent / ckpt_io.LATEST_FILE, record)
            for path in later:
                shutil.rmtree(path)
        if dist.is_main:
            run_dir = prepare_run_dir(
                cfg.out, resuming=checkpoint.run_dir if checkpoint else None, overwrite=overwrite
            )
            ckpt_io.write_json_atomic(run_dir / RUN_CONFIG_FILE, cfg.to_dict())
        barrier(dist)
        run_dir = Path(cfg.out).absolute()
        precision = resolve_precision(cfg.precision, device, training=True)
        task = catalog.tasks.get(cfg.task).obj
        root = resolve_data_root(cfg, task)
        preprocess = PreprocessConfig(
            load_size=cfg.load_size, crop_size=cfg.crop_size, mode=cfg.preprocess, flip=cfg.flip
        )
        common = dict(
            direction=cfg.direction,
            preprocess=preprocess,
            seed=cfg.seed,
            on_bad_image=cfg.on_bad_image,
        )
        unpaired = {"unpaired": True} if cfg.unpaired else {}
        train_data = build_dataset(task, root, "train", train=True, **common, **unpaired)
        try:
            val_data = build_dataset(task, root, "val", train=False, **common)
        except DatasetError:
            val_data = None
        sample_data = val_data or build_dataset(task, root, "train", train=False, **common)

        seed_everything(cfg.seed)
        use_cudnn_autotuner(device, fixed_sizes=preprocess.fixed_train_size)
        recipe = catalog.recipes.get(cfg.recipe).obj
        setup = RecipeSetup.for_run(
            cfg, task=task, catalog=catalog, device=device, precision=precision, dist=dist
        )
        step = recipe.build(setup)
        graphs_off = training_graphs_blocker(
            step,
            device,
            precision=precision,
            distributed=dist.enabled,
            compiled=cfg.compile,
            on_nonfinite=cfg.on_nonfinite,
            fixed_sizes=preprocess.fixed_train_size,
        )
        graphs = resolve_cuda_graphs(cfg.cuda_graphs, device, training=True) and graphs_off is None
        if dist.is_main:
            ckpt_io.write_json_atomic(
                run_dir / RESOLVED_FILE, resolved_settings(setup, cuda_graphs=graphs)
            )
        if cfg.init_from and checkpoint is None:
            init_weights(step, cfg.init_from)
        translator = step.modules()[step.translators[cfg.direction]]
        trainer = Trainer(
            step,
            config=cfg,
            run_dir=run_dir,
            task=task,
            train_data=train_data,
            val_data=val_data,
            sample_data=sample_data,
            device=device,
            precision=precision,
            dist=dist,
            metrics=lambda: task_metrics(catalog, task),
            checkpoint_extra={
                "recipe": cfg.recipe,
                "roles": step.specs,
                "translators": step.translators,
                "in_channels": task.in_channels,
                "out_channels": task.out_channels,
                "size_multiple": int(getattr(translator, "size_multiple", 1)),
            },
            quiet=quiet,
            bar=bar,
            echo=echo,
        )
        if checkpoint is not None:
            trainer.restore(checkpoint)
        step.wrap(_wrapping(device, dist, compile_=cfg.compile))
        if graphs:
            trainer.train_step_fn = GraphedTrainStep(step)
        if dist.is_main and not quiet:
            if cfg.cuda_graphs and not graphs:
                (echo or _stderr)(f"CUDA graphs off: {graphs_off}")
            (echo or _stderr)(
                f"device {device}, precision {precision}, channels_last {setup.channels_last}"
                + (", CUDA graphs" if graphs else "")
                + (f", {dist.world_size} processes" if dist.enabled else "")
                + (f"; resuming {checkpoint.path}" if checkpoint else "")
            )
        return trainer.fit()
    finally:
        if dist.enabled:
            shutdown_distributed()


def _stderr(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr, flush=True)


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def resolved_settings(setup: RecipeSetup, *, cuda_graphs: bool = False) -> dict[str, Any]:
    """What the run's ``auto`` settings became on this machine, for ``resolved.json``."""
    import dataclasses

    from i2i.engine.devices import fused_adam_supported
    from i2i.engine.tuning import speed_choices

    out: dict[str, Any] = {
        "device": str(setup.device),
        "precision": setup.precision,
        "channels_last": setup.channels_last,
        "adam": "flat-fused" if fused_adam_supported(setup.device.type) else "foreach",
        "bf16_weight_copies": setup.keeps_bf16_weight_copies,
        "torch": torch.__version__,
    }
    if setup.device.type == "cpu":
        out["cpu_choices"] = dataclasses.asdict(speed_choices())
    if setup.device.type == "cuda":
        out["cudnn_benchmark"] = torch.backends.cudnn.benchmark  # use_cudnn_autotuner
        out["cuda_graphs"] = cuda_graphs  # GraphedTrainStep
    return out


def _wrapping(device: torch.device, dist: DistInfo, *, compile_: bool) -> Wrapping:
    """DDP (under torchrun) and torch.compile (when asked) for the steps' forward passes."""
    return Wrapping(
        ddp=(lambda module: wrap_ddp(module, device, dist)) if dist.enabled else None,
        compile_=compile_,
        distributed=dist.enabled,
    )


def init_weights(step: Any, source: str | os.PathLike) -> list[str]:
    """Start ``step``'s roles from the weights of the checkpoint at ``source`` (fine-tuning).

    Every role both have is loaded strictly. A generator role the source lacks is an error
    naming it (a different method); a discriminator it lacks starts fresh (a converted model
    may come without one). Returns the roles loaded.
    """
    ckpt = ckpt_io.load_checkpoint(source)
    modules = step.modules()
    kinds = {role: spec.get("kind") for role, spec in step.specs.items()}
    missing = sorted(
        r for r in modules if r not in ckpt.weights and kinds.get(r) != "discriminator"
    )
    if missing:
        raise ConfigError(
            f"--init-from {ckpt.path} has no weights for role(s) {', '.join(missing)} of this "
            f"run (it holds {', '.join(sorted(ckpt.weights)) or 'none'})"
        )
    loaded = [r for r in modules if r in ckpt.weights]
    for role in loaded:
        module = modules[role]
        try:
            module.load_state_dict(ckpt.weights[role], strict=True)
        except RuntimeError as exc:
            raise ConfigError(
                f"--init-from {ckpt.path}: the {role!r} weights do not fit this run's network "
                f"({exc})"
            ) from exc
    return loaded
