"""Train and evaluate the runs of a study: one ordinary run folder per variant and seed.

``OUT/runs/<variant key>/seed<N>/`` is an ``i2i run`` folder (trained through
:func:`i2i.engine.train`), with ``eval/`` beside its checkpoints: the ``i2i eval`` report of
its latest checkpoint on the validation split (``metrics.json``, ``index.html``, thumbnails),
which the study summary reads and ``i2i study serve`` can show. Rerunning skips finished runs
and resumes unfinished ones; ``shard=(k, n)`` takes every n-th job from the k-th (1-based), so
several processes or machines sharing ``OUT`` split a study between them.

>>> [job.name for job in plan_jobs("generator", seeds=2, shard=(2, 3))]
['encdec_l1/seed1', 'unet_l1/seed0', 'unet_l1_cgan_patch70/seed1']
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2i.ablate.studies import Variant, variants

RUNS_DIR = "runs"
EVAL_DIR = "eval"
#: The metrics every run is scored with (``seg_score`` too when a segmenter is given).
METRICS = ("l1", "psnr", "ssim", "color_hist", "sharpness")


@dataclass(frozen=True)
class Job:
    variant: Variant
    seed: int

    @property
    def name(self) -> str:
        return f"{self.variant.key}/seed{self.seed}"

    def folder(self, out: Path) -> Path:
        return Path(out) / RUNS_DIR / self.variant.key / f"seed{self.seed}"


@dataclass(frozen=True)
class Settings:
    """How every run of a study trains and is evaluated."""

    task: str
    data: str | None
    steps: int
    crop_size: int = 256
    ngf: int = 64
    batch_size: int = 1
    eval_limit: int | None = None
    device: str = "auto"
    num_workers: int = 0


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/3"`` -> ``(2, 3)``; refuses anything but ``1 <= k <= n``.

    >>> parse_shard("1/1")
    (1, 1)
    """
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must look like K/N (e.g. 1/2), got {text!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def plan_jobs(study: str, *, seeds: int = 1, shard: tuple[int, int] = (1, 1)) -> list[Job]:
    """The (variant, seed) jobs of ``study`` this shard runs, seeds inner."""
    jobs = [Job(v, s) for v in variants(study) for s in range(seeds)]
    k, n = shard
    return jobs[k - 1 :: n]


def run_config(job: Job, settings: Settings, out: Path, catalog: Any):
    """The :class:`~i2i.config.RunConfig` of a job: the variant's options at the study's scale."""
    from i2i.config import fitting_preset, resolve_config

    options = job.variant.run_options()
    options["generator"] = fitting_preset(catalog, options["generator"], settings.crop_size)
    return resolve_config(
        catalog,
        settings.task,
        **options,
        data=settings.data,
        out=str(job.folder(out)),
        crop_size=settings.crop_size,
        batch_size=settings.batch_size,
        generator_kwargs={"ngf": settings.ngf},
        discriminator_kwargs={"ndf": settings.ngf},
        epochs=settings.steps,  # enough: max_steps ends the run
        epochs_decay=0,
        max_steps=settings.steps,
        seed=job.seed,
        val_every=settings.steps,
        keep_last=1,
        keep_every=0,
        log_every=max(1, min(100, settings.steps)),
        num_workers=settings.num_workers,
        device=settings.device,
    )


def trained_steps(folder: Path) -> int:
    """The step of the newest checkpoint in a run folder (0: none).

    An unreadable latest checkpoint is a :class:`~i2i.engine.checkpoint.CheckpointError`
    naming it, never 0: training from scratch over it would delete the run's older checkpoints.
    """
    from i2i.engine.checkpoint import CheckpointError, list_checkpoints, load_checkpoint

    if not folder.is_dir() or not list_checkpoints(folder):
        return 0
    try:
        return int(load_checkpoint(folder, discriminator=False).step)
    except CheckpointError as exc:
        raise CheckpointError(
            f"{exc}. i2i ablate neither retrains over a run with a broken checkpoint nor leaves "
            f"it out: repair or remove that checkpoint folder of {folder}, then run again"
        ) from exc


def train_job(
    job: Job,
    settings: Settings,
    out: Path,
    catalog: Any,
    *,
    echo: Callable[[str], None] = print,
    quiet: bool = True,
) -> str:
    """Train one job to ``settings.steps``: ``"done"`` (already), ``"trained"`` or ``"resumed"``."""
    from i2i.engine import train

    folder = job.folder(out)
    done = trained_steps(folder)
    if done >= settings.steps:
        return "done"
    cfg = run_config(job, settings, out, catalog)
    if done:
        echo(f"{job.name}: resuming at step {done}")
        train(cfg, catalog=catalog, resume=folder, quiet=quiet, bar=False, echo=echo)
        return "resumed"
    echo(f"{job.name}: training {settings.steps} steps")
    # a folder without a checkpoint is a run that died before its first save: start it again
    overwrite = folder.is_dir() and any(folder.iterdir())
    train(cfg, catalog=catalog, overwrite=overwrite, quiet=quiet, bar=False, echo=echo)
    return "trained"


def eval_job(
    job: Job,
    settings: Settings,
    out: Path,
    catalog: Any,
    *,
    segmenter: Any = None,
) -> dict[str, Any]:
    """Evaluate a trained job's latest checkpoint (cached in ``eval/metrics.json`` per step)."""
    from i2i.data import PreprocessConfig, build_dataset
    from i2i.eval.report import ReportWriter
    from i2i.eval.runner import build_metrics, evaluate
    from i2i.eval.samples import checkpoint_batches
    from i2i.inference.translator import load

    folder = job.folder(out)
    report_dir = folder / EVAL_DIR
    step = trained_steps(folder)
    cached = _read_eval(report_dir)
    wanted = list(METRICS) + (["seg_score"] if segmenter is not None else [])
    limit = settings.eval_limit
    seg_id = str(getattr(segmenter, "path", None) or "") if segmenter is not None else None
    cache_key = [step, limit, wanted, seg_id]
    if cached is not None and cached.get("source", {}).get("key") == cache_key:
        return cached
    translator = load(folder, catalog=catalog, device=settings.device)
    cfg = translator.config
    preprocess = PreprocessConfig(
        load_size=cfg.get("load_size", 286), crop_size=cfg.get("crop_size", 256), flip=False
    )
    dataset = build_dataset(
        translator.task,
        cfg.get("data"),
        "val",
        direction=cfg.get("direction"),
        preprocess=preprocess,
        train=False,
    )
    context = {"segmenter": segmenter}
    metrics = build_metrics(wanted, catalog, context)
    source = {
        "checkpoint": str(translator.checkpoint),
        "variant": job.variant.key,
        "seed": job.seed,
        "step": step,
        "eval_limit": limit,
        "mode": translator.mode,
        "segmenter": seg_id,
        "key": cache_key,  # what the cached report was made for
    }
    report = ReportWriter(report_dir, title=f"i2i ablate: {job.name}", source=source)
    total = len(dataset) if limit is None else min(limit, len(dataset))
    evaluate(
        checkpoint_batches(translator, dataset, limit=limit),
        metrics,
        report=report,
        progress=False,
        total=total,
    )
    result = _read_eval(report_dir)
    if result is None:
        raise RuntimeError(f"{report_dir}/metrics.json was not written")
    return result


def _read_eval(report_dir: Path) -> dict[str, Any] | None:
    """The cached eval record, or None where there is none or it is not one i2i eval wrote
    (then the run is evaluated again)."""
    try:
        record = json.loads((report_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("source", {}), dict):
        return None
    metrics = record.get("metrics")
    if not isinstance(metrics, dict) or not all(
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
        for v in metrics.values()
    ):
        return None
    return record


def finished_evals(study: str, out: Path, seeds: int) -> dict[str, list[dict[str, Any]]]:
    """Per variant key, the eval records of the runs that have one (any shard's)."""
    results: dict[str, list[dict[str, Any]]] = {}
    for job in plan_jobs(study, seeds=seeds):
        record = _read_eval(job.folder(out) / EVAL_DIR)
        if record is not None:
            results.setdefault(job.variant.key, []).append(record)
    return results
