"""Evaluation: metrics over a checkpoint's translations or folders of images, JSON + HTML report.

>>> from i2i.eval import evaluate, build_metrics
>>> callable(evaluate) and callable(build_metrics)
True
"""

from __future__ import annotations

from i2i.lazy import lazy_exports

_EXPORTS = {
    "ReportWriter": "i2i.eval.report",
    "EvalConfigError": "i2i.eval.runner",
    "EvalResult": "i2i.eval.runner",
    "build_metrics": "i2i.eval.runner",
    "default_metric_names": "i2i.eval.runner",
    "evaluate": "i2i.eval.runner",
    "Batch": "i2i.eval.samples",
    "EvalDataError": "i2i.eval.samples",
    "checkpoint_batches": "i2i.eval.samples",
    "folder_batches": "i2i.eval.samples",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
