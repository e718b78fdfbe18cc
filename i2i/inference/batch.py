"""Translate many image files: same-size inputs are batched, progress shown with tqdm.

>>> import tempfile, torch
>>> from pathlib import Path
>>> from i2i import Task
>>> from i2i.data import write_image
>>> from i2i.inference import Translator
>>> d = Path(tempfile.mkdtemp())
>>> src = write_image(torch.rand(3, 8, 8), d / "in.png")
>>> task = Task(summary="identity", in_channels=3, out_channels=3, layout="aligned")
>>> tr = Translator(torch.nn.Identity(), task, mode="eval")
>>> [p.name for p in translate_files(tr, [(src, d / "out" / "in.png")], progress=False)]
['in.png']
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from i2i.inference.translator import Translator


def batches_by_size(
    pairs: Sequence[tuple[Path, Path]],
    batch_size: int,
    *,
    keep_alpha: bool = False,
    skipped: list[tuple[Path, str]] | None = None,
) -> Iterator[tuple[torch.Tensor, list[Path]]]:
    """Read inputs in order and yield ``(images (B, 3, H, W), outputs)`` of same-size images
    (with ``keep_alpha``, images with transparency come as ``(B, 4, H, W)``, batched apart).

    A batch is yielded when ``batch_size`` images of one size have been read; the rest at the end.
    An unreadable input raises :class:`~i2i.data.ImageReadError`, or, when a ``skipped`` list is
    given, is appended to it as ``(path, message)`` and left out.
    """
    from i2i.data import ImageReadError, read_image

    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    buckets: dict[tuple[int, int], list[tuple[torch.Tensor, Path]]] = {}
    for src, dst in pairs:
        try:
            img = read_image(src, keep_alpha=keep_alpha)
        except ImageReadError as exc:
            if skipped is None:
                raise
            skipped.append((Path(src), str(exc)))
            continue
        bucket = buckets.setdefault(tuple(img.shape), [])
        bucket.append((img, dst))
        if len(bucket) == batch_size:
            yield torch.stack([i for i, _ in bucket]), [o for _, o in bucket]
            bucket.clear()
    for bucket in buckets.values():
        if bucket:
            yield torch.stack([i for i, _ in bucket]), [o for _, o in bucket]


def translate_files(
    translator: Translator,
    pairs: Sequence[tuple[Path, Path]],
    *,
    batch_size: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    skipped: list[tuple[Path, str]] | None = None,
) -> list[Path]:
    """Translate every ``(input, output)`` pair (see :func:`i2i.inference.files.plan_outputs`).

    Outputs are PNG files at the input's size. Returns the written paths, in the order written.
    With a ``skipped`` list, unreadable inputs are appended to it instead of stopping the run.
    """
    from i2i.data import write_image

    written: list[Path] = []
    with tqdm(total=len(pairs), unit="img", desc="translate", disable=not progress) as bar:
        before = 0
        keep_alpha = translator.task.reads_alpha
        for images, outputs in batches_by_size(
            pairs, batch_size, keep_alpha=keep_alpha, skipped=skipped
        ):
            results = translator.translate_batch(images)
            for img, dst in zip(results, outputs, strict=True):
                written.append(write_image(img, dst, overwrite=overwrite))
            now = len(skipped) if skipped is not None else 0
            bar.update(len(outputs) + now - before)
            before = now
    return written
