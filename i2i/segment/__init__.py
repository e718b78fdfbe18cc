"""Semantic segmenters for the FCN-score: train one on a label-map task's real photos, load it.

``i2i segmenter train --task facades --data DIR --out DIR`` trains a :class:`Segmenter` on the
training photos (cross-entropy on the classes decoded from the label colours of the task's
``Task.palette``) and scores it on the real validation photos: the "ground truth" row of the
paper's FCN-score tables. ``i2i eval --segmenter DIR`` and the ``seg_score`` metric use it.

>>> from i2i.segment import Segmenter, load_segmenter, open_segmenter, train_segmenter
"""

from __future__ import annotations

from i2i.lazy import lazy_exports

_EXPORTS = {
    "Segmenter": "i2i.segment.model",
    "SegmenterError": "i2i.segment.model",
    "is_segmenter": "i2i.segment.model",
    "load_segmenter": "i2i.segment.model",
    "score_real_photos": "i2i.segment.train",
    "train_segmenter": "i2i.segment.train",
    "TranslatorSegmenter": "i2i.segment.translated",
    "open_segmenter": "i2i.segment.translated",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "Segmenter",
    "SegmenterError",
    "TranslatorSegmenter",
    "is_segmenter",
    "load_segmenter",
    "open_segmenter",
    "score_real_photos",
    "train_segmenter",
]
