"""Run metrics over evaluation batches and summarise them (the Python API behind ``i2i eval``).

>>> import torch
>>> from i2i.eval.samples import Batch
>>> from i2i.metrics import PerImageMetric
>>> l1 = PerImageMetric("l1", lambda p, t: (p - t).abs().flatten(1).mean(1), higher_is_better=False)
>>> batch = Batch(["a", "b"], torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4))
>>> result = evaluate([batch], {"l1": l1}, progress=False)
>>> result.summary, [row["metrics"] for row in result.images]
({'l1': 1.0}, [{'l1': 1.0}, {'l1': 1.0}])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from i2i.catalog import Catalog
from i2i.eval.report import ReportWriter
from i2i.eval.samples import Batch
from i2i.metrics.base import Metric, as_metric


class EvalConfigError(ValueError):
    """Metrics that cannot run as asked (a missing segmenter, clashing value names)."""


@dataclass
class EvalResult:
    """Summary values, per-image rows ``{"name", "metrics", "images"}`` and report files."""

    summary: dict[str, float]
    higher_is_better: dict[str, bool]
    images: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def default_metric_names(task_metrics: Sequence[str], context: Mapping[str, Any]) -> list[str]:
    """The task's metrics, plus ``seg_score`` when a segmenter is given.

    >>> default_metric_names(("l1", "psnr"), {"segmenter": object()})
    ['l1', 'psnr', 'seg_score']
    """
    names = list(task_metrics)
    if context.get("segmenter") is not None and "seg_score" not in names:
        names.append("seg_score")
    return names


def build_metrics(
    names: Iterable[str],
    catalog: Catalog,
    context: Mapping[str, Any] | None = None,
    *,
    have_inputs: bool = True,
) -> dict[str, Metric]:
    """Build metrics by registered name; ``context`` supplies what a metric ``needs`` and any
    factory keyword of the same name (``segmenter``, ``palette``, ...). A metric registered with
    ``needs_inputs=True`` is refused when ``have_inputs`` is false (no model inputs known)."""
    context = {k: v for k, v in (context or {}).items() if v is not None}
    metrics: dict[str, Metric] = {}
    owner: dict[str, str] = {}
    for name in names:
        entry = catalog.metrics.get(name)
        missing = [n for n in entry.meta.get("needs", ()) if n not in context]
        if missing:
            flags = ", ".join(f"--{n}" for n in missing)
            raise EvalConfigError(f"metric {entry.name!r} needs {', '.join(missing)} ({flags})")
        if entry.meta.get("needs_inputs") and not have_inputs:
            raise EvalConfigError(
                f"metric {entry.name!r} needs the model inputs (the label maps the images were "
                "translated from); with --pred/--target pass them with --input DIR"
            )
        kwargs = {k: context[k] for k in entry.options() if k in context}
        metric = as_metric(entry.name, entry.build(**kwargs))
        for key in metric.keys:
            if key in owner:
                raise EvalConfigError(
                    f"metrics {owner[key]!r} and {entry.name!r} both report {key!r}"
                )
            owner[key] = entry.name
        metrics[entry.name] = metric
    return metrics


def evaluate(
    batches: Iterable[Batch],
    metrics: Mapping[str, Metric],
    *,
    report: ReportWriter | None = None,
    progress: bool = True,
    total: int | None = None,
) -> EvalResult:
    """Score every batch with every metric; write thumbnails and the report when ``report``."""
    try:
        return _evaluate(batches, metrics, report, progress, total)
    except BaseException:
        if report is not None:
            report.discard()  # nothing of a failed evaluation is left in the report folder
        raise


def _evaluate(
    batches: Iterable[Batch],
    metrics: Mapping[str, Metric],
    report: ReportWriter | None,
    progress: bool,
    total: int | None,
) -> EvalResult:
    for metric in metrics.values():
        metric.reset()
    rows: list[dict[str, Any]] = []
    with tqdm(total=total, unit="img", desc="eval", disable=not progress) as bar:
        for batch in batches:
            values: list[dict[str, float]] = [{} for _ in batch.names]
            for metric in metrics.values():
                for row, scores in zip(
                    values, metric.update(batch.outputs, batch.targets, batch.inputs), strict=True
                ):
                    row.update(scores)
            for i, name in enumerate(batch.names):
                if report is not None:
                    report.add(
                        name,
                        values[i],
                        output=batch.outputs[i],
                        target=batch.targets[i],
                        input=None if batch.inputs is None else batch.inputs[i],
                    )
                rows.append({"name": name, "metrics": values[i]})
            bar.update(len(batch.names))
    summary: dict[str, float] = {}
    better: dict[str, bool] = {}
    extra: dict[str, Any] = {}
    for name, metric in metrics.items():
        summary.update(metric.compute())
        better.update(metric.higher_is_better)
        per_class = getattr(metric, "per_class", None)
        if callable(per_class):
            extra[f"{name}_per_class"] = per_class()
    files: list[Path] = []
    if report is not None:
        files = report.finish(summary, higher_is_better=better, extra=extra)
        rows = report.rows
    return EvalResult(summary, better, rows, extra, files)
