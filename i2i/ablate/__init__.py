"""The paper's ablation studies in one command: ``i2i ablate objective|generator|discriminator|all``.

Each variant trains as an ordinary run (:func:`i2i.config.resolve_config` +
:func:`i2i.engine.train`), is evaluated through the eval API (:mod:`i2i.eval.runner`) with
L1, PSNR, SSIM, the Lab histogram intersections, the sharpness ratio and, given a segmenter,
the FCN-score; the summary is a Markdown table, JSON and an HTML page with plots and samples.

>>> from i2i.ablate import STUDY_NAMES, Settings, run_study
>>> STUDY_NAMES
('objective', 'generator', 'discriminator', 'all')
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from i2i.lazy import lazy_exports

if TYPE_CHECKING:
    from i2i.ablate.run import Settings

_EXPORTS = {
    "markdown_table": "i2i.ablate.report",
    "summarise_study": "i2i.ablate.report",
    "write_summary": "i2i.ablate.report",
    "Settings": "i2i.ablate.run",
    "eval_job": "i2i.ablate.run",
    "parse_shard": "i2i.ablate.run",
    "plan_jobs": "i2i.ablate.run",
    "train_job": "i2i.ablate.run",
    "trained_steps": "i2i.ablate.run",
    "STUDIES": "i2i.ablate.studies",
    "STUDY_NAMES": "i2i.ablate.studies",
    "variants": "i2i.ablate.studies",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "STUDIES",
    "STUDY_NAMES",
    "Settings",
    "markdown_table",
    "parse_shard",
    "plan_jobs",
    "run_study",
    "variants",
]


def run_study(
    study: str,
    settings: Settings,
    out: str | Path,
    *,
    seeds: int = 1,
    shard: tuple[int, int] = (1, 1),
    segmenter: str | Path | None = None,
    train: bool = True,
    samples: int = 4,
    catalog: Any = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train (unless ``train`` is false) and evaluate this shard's runs of ``study`` (an
    evaluation is redone only when its step, image count, metrics or segmenter changed), then
    summarise every evaluated run under ``out``; returns the summary (also written to
    ``OUT/<study>.json``, ``.md`` and ``.html``)."""
    from i2i.ablate import (  # the package's names, as a caller may have replaced them
        eval_job,
        plan_jobs,
        summarise_study,
        train_job,
        trained_steps,
        write_summary,
    )
    from i2i.segment import load_segmenter, score_real_photos

    if catalog is None:
        from i2i import catalog as default_catalog

        catalog = default_catalog()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seg = load_segmenter(segmenter) if segmenter is not None else None
    for job in plan_jobs(study, seeds=seeds, shard=shard):
        if train:
            train_job(job, settings, out, catalog, echo=echo)
        elif trained_steps(job.folder(out)) < settings.steps:
            continue  # not finished: only training may touch it
        eval_job(job, settings, out, catalog, segmenter=seg)
        echo(f"{job.name}: evaluated")
    ground_truth = None
    if seg is not None:
        task = catalog.tasks.get(settings.task).obj
        ground_truth = score_real_photos(
            seg, task, settings.data, "val", size=settings.crop_size, limit=settings.eval_limit
        )
        ground_truth.pop("per_class", None)
        ground_truth["segmenter"] = str(segmenter)
    summary = summarise_study(study, out, settings, seeds=seeds, ground_truth=ground_truth)
    write_summary(summary, out, samples=samples)
    return summary
