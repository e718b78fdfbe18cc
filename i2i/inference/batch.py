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
    pairs: Sequence[tuple[Path, Path]], batch_size: int
) -> Iterator[tuple[torch.Tensor, list[Path]]]:
    """Read inputs in order and yield ``(images (B, 3, H, W), outputs)`` of same-size images.

    A batch is yielded when ``batch_size`` images of one size have been read; the rest at the end.
    """
    from i2i.data import read_image

    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    buckets: dict[tuple[int, int], list[tuple[torch.Tensor, Path]]] = {}
    for src, dst in pairs:
        img = read_image(src)
        bucket = buckets.setdefault(tuple(img.shape[-2:]), [])
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
) -> list[Path]:
    """Translate every ``(input, output)`` pair (see :func:`i2i.inference.files.plan_outputs`).

    Outputs are PNG files at the input's size. Returns the written paths, in the order written.
    """
    from i2i.data import write_image

    written: list[Path] = []
    with tqdm(total=len(pairs), unit="img", desc="translate", disable=not progress) as bar:
        for images, outputs in batches_by_size(pairs, batch_size):
            results = translator.translate_batch(images)
            for img, dst in zip(results, outputs, strict=True):
                written.append(write_image(img, dst, overwrite=overwrite))
            bar.update(len(outputs))
    return written
