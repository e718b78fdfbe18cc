"""Evaluation metrics, registered through ``i2i_register_metrics`` like any plugin's.

Built-ins: ``l1``, ``psnr``, ``ssim``, ``sharpness`` (gradient energy of outputs over
targets), ``color_hist`` (Lab histogram intersection) and ``seg_score`` (alias ``fcn_score``;
needs a segmenter, see :mod:`i2i.segment`). A metric factory's registration meta says ``keys`` (the values it reports), ``higher_is_better``, ``needs``
(context the evaluator must supply, such as ``("segmenter",)``) and ``needs_inputs`` (whether it
scores against the model inputs, which ``--pred`` evaluation only has with ``--input``).

>>> from i2i.plugins import make_plugin_manager
>>> from i2i.catalog import Catalog
>>> cat = Catalog.from_plugin_manager(make_plugin_manager(load_entrypoints=False))
>>> cat.metrics.names()
['color_hist', 'l1', 'psnr', 'seg_score', 'sharpness', 'ssim']
"""

from __future__ import annotations

from i2i import hookimpl
from i2i.metrics.base import Metric, PerImageMetric, as_metric, check_images
from i2i.metrics.color import LabHistogramIntersection, color_hist_metric
from i2i.metrics.pixel import (
    SharpnessRatio,
    l1_metric,
    psnr_metric,
    sharpness_metric,
    ssim_metric,
)
from i2i.metrics.segmentation import SegmentationScore, seg_score_metric

__all__ = [
    "LabHistogramIntersection",
    "Metric",
    "PerImageMetric",
    "SegmentationScore",
    "SharpnessRatio",
    "as_metric",
    "check_images",
]


@hookimpl
def i2i_register_metrics(register):
    """Register the built-in metrics."""
    register("l1", l1_metric, keys=("l1",), higher_is_better=False)
    register("psnr", psnr_metric, keys=("psnr",), higher_is_better=True)
    register("ssim", ssim_metric, keys=("ssim",), higher_is_better=True)
    register("sharpness", sharpness_metric, keys=SharpnessRatio.keys, higher_is_better=True)
    register(
        "color_hist",
        color_hist_metric,
        aliases=("lab_hist",),
        keys=LabHistogramIntersection.keys,
        higher_is_better=True,
    )
    register(
        "seg_score",
        seg_score_metric,
        aliases=("fcn_score",),
        keys=SegmentationScore.keys,
        higher_is_better=True,
        needs=("segmenter",),
        needs_inputs=True,
    )
