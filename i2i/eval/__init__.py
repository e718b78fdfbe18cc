"""Evaluation: metrics over a checkpoint's translations or folders of images, JSON + HTML report.

>>> from i2i.eval import evaluate, build_metrics
>>> callable(evaluate) and callable(build_metrics)
True
"""

from __future__ import annotations

from i2i.eval.report import ReportWriter
from i2i.eval.runner import (
    EvalConfigError,
    EvalResult,
    build_metrics,
    default_metric_names,
    evaluate,
)
from i2i.eval.samples import Batch, EvalDataError, checkpoint_batches, folder_batches

__all__ = [
    "Batch",
    "EvalConfigError",
    "EvalDataError",
    "EvalResult",
    "ReportWriter",
    "build_metrics",
    "checkpoint_batches",
    "default_metric_names",
    "evaluate",
    "folder_batches",
]
