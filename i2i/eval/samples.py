"""Where evaluation images come from: a checkpoint run over a dataset, or folders of files.

Both yield :class:`Batch` objects of RGB images in [0, 1]: the model inputs shown as images
(or ``None``), the translations and the targets, with one name per image.

>>> import tempfile, torch
>>> from pathlib import Path
>>> from i2i.data import write_image
>>> d = Path(tempfile.mkdtemp())
>>> for sub in ("pred", "target"):
...     _ = write_image(torch.rand(3, 8, 8), d / sub / "1.png")
>>> [b.names for b in folder_batches(d / "pred", d / "target")]
[['1']]
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor


class EvalDataError(ValueError):
    """Evaluation files that do not pair up (the message names them)."""


@dataclass
class Batch:
    """``(B, 3, H, W)`` RGB in [0, 1]; ``inputs`` may be ``None`` when unknown."""

    names: list[str]
    outputs: Tensor
    targets: Tensor
    inputs: Tensor | None = None


def checkpoint_batches(
    translator,
    dataset,
    *,
    batch_size: int = 1,
    limit: int | None = None,
) -> Iterator[Batch]:
    """Translate the items of a dataset (``build_dataset(..., train=False)``) batch by batch.

    Items are ``{"input", "target", "path"}`` in model range; consecutive items of one size
    are batched. The target is shown through ``task.output_to_image(input, target)``.
    """
    task = translator.task
    count = len(dataset) if limit is None else min(limit, len(dataset))
    pending: list[dict] = []

    def flush() -> Batch:
        x = torch.stack([item["input"] for item in pending])
        y = torch.stack([item["target"] for item in pending])
        names = [Path(str(item["path"])).stem for item in pending]
        pending.clear()
        out = translator.run(x).cpu()
        return Batch(
            names=names,
            outputs=task.output_to_image(x, out).clamp(0, 1),
            targets=task.output_to_image(x, y).clamp(0, 1),
            inputs=task.input_to_image(x).clamp(0, 1),
        )

    for index in range(count):
        item = dataset[index]
        if pending and item["input"].shape != pending[0]["input"].shape:
            yield flush()
        pending.append(item)
        if len(pending) == batch_size:
            yield flush()
    if pending:
        yield flush()


def _by_stem(folder: Path) -> dict[str, Path]:
    from i2i.data import list_images

    if not folder.is_dir():
        raise EvalDataError(f"{folder} is not a folder")
    found: dict[str, Path] = {}
    for path in list_images(folder):
        if path.stem in found:
            raise EvalDataError(f"{found[path.stem]} and {path} share the name {path.stem!r}")
        found[path.stem] = path
    if not found:
        raise EvalDataError(f"{folder} holds no images")
    return found


def folder_names(pred_dir: str | os.PathLike, *, limit: int | None = None) -> list[str]:
    """The image names :func:`folder_batches` yields for ``pred_dir``, in order."""
    names = list(_by_stem(Path(pred_dir)))
    return names[:limit] if limit is not None else names


def folder_batches(
    pred_dir: str | os.PathLike,
    target_dir: str | os.PathLike,
    input_dir: str | os.PathLike | None = None,
    *,
    limit: int | None = None,
) -> Iterator[Batch]:
    """Pair ``pred_dir`` and ``target_dir`` (and ``input_dir``) images by file stem, one by one.

    Every prediction needs a target (and an input, when ``input_dir`` is given) of its size.
    """
    from i2i.data import read_image

    preds = _by_stem(Path(pred_dir))
    targets = _by_stem(Path(target_dir))
    inputs = _by_stem(Path(input_dir)) if input_dir is not None else None
    for label, other in (("target", targets), ("input", inputs)):
        if other is None:
            continue
        missing = [s for s in preds if s not in other]
        if missing:
            shown = ", ".join(str(preds[s]) for s in missing[:5])
            raise EvalDataError(
                f"{len(missing)} prediction(s) have no {label} of the same name: {shown}"
            )
    for stem in list(preds)[:limit] if limit is not None else list(preds):
        pred, target = read_image(preds[stem]), read_image(targets[stem])
        inp = read_image(inputs[stem]) if inputs is not None else None
        for img, path in ((target, targets[stem]), (inp, None)):
            if img is not None and img.shape != pred.shape:
                where = path or inputs[stem]
                raise EvalDataError(
                    f"{where} is {tuple(img.shape[-2:])} (H, W) but the prediction "
                    f"{preds[stem]} is {tuple(pred.shape[-2:])}"
                )
        yield Batch(
            names=[stem],
            outputs=pred[None],
            targets=target[None],
            inputs=None if inp is None else inp[None],
        )
