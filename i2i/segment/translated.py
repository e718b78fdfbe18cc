"""A photo -> label-colour translator used as a segmenter, and :func:`open_segmenter`, which
opens either kind."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from i2i.segment.model import Segmenter, is_segmenter, load_segmenter


class TranslatorSegmenter:
    """A photo -> label-colour translator used as a segmenter: nearest palette colour per pixel.

    >>> import torch
    >>> seg = TranslatorSegmenter(lambda x: x, (("black", (0, 0, 0)), ("white", (255, 255, 255))))
    >>> seg(torch.ones(1, 3, 2, 2)).tolist()
    [[[1, 1], [1, 1]]]
    """

    def __init__(self, translate_batch, palette):
        self.translate_batch = translate_batch
        self.palette = tuple((n, tuple(rgb)) for n, rgb in palette)

    def __call__(self, photos: Tensor) -> Tensor:
        from i2i.metrics.segmentation import nearest_class

        colours = torch.tensor([rgb for _, rgb in self.palette])
        return nearest_class(self.translate_batch(photos), colours)


def open_segmenter(
    path: str | os.PathLike,
    *,
    catalog: Any = None,
    device: str = "cpu",
    precision: str = "fp32",
    palette: tuple = (),
    fallback_palette: tuple = (),
) -> Segmenter | TranslatorSegmenter:
    """A segmenter folder (:func:`load_segmenter`), or an i2i checkpoint of a photo ->
    label-colour model wrapped as :class:`TranslatorSegmenter` with ``palette``, else its
    task's palette, else ``fallback_palette``."""
    if is_segmenter(path):
        from i2i.inference.translator import resolve_device

        return load_segmenter(path, device=resolve_device(device))
    from i2i.inference.translator import load

    translator = load(path, catalog=catalog, device=device, precision=precision)
    colours = palette or translator.task.palette or fallback_palette
    return TranslatorSegmenter(translator.translate_batch, colours)
