"""Train a :class:`~i2i.segment.model.Segmenter` on a label-map task's real photos, and score it.

The task's data gives pairs whose model input is the label map and whose target is the photo
(facades and cityscapes: labels -> photo). The segmenter learns photo -> classes with
cross-entropy, the classes decoded from the label colours by nearest ``Task.palette`` colour.
The training photos are read once, resized to the segmenter's working size, and kept in memory
(400 facades at 128 px: 80 MB).
Only the ``train`` split is used for training; :func:`score_real_photos` scores the real photos
of another split with the FCN-score summary (the "ground truth" row of the paper's tables).

>>> import tempfile, torch
>>> from pathlib import Path
>>> from i2i import Task
>>> from i2i.data import write_image
>>> root = Path(tempfile.mkdtemp())
>>> for split, name in (("train", "1"), ("train", "2"), ("val", "1")):
...     _ = write_image(torch.rand(3, 32, 64), root / split / f"{name}.png")
>>> task = Task(summary="toy", in_channels=3, out_channels=3, layout="aligned",
...             palette=(("dark", (0, 0, 0)), ("light", (255, 255, 255))))
>>> seg = train_segmenter(task, root, steps=2, size=32, batch_size=2,
...                       encoder="test_resnet", ngf=8, progress=False)
>>> seg.info["val"]["num_images"], 0 <= seg.info["val"]["seg_pixel_acc"] <= 1
(1, True)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from i2i.segment.model import Segmenter
from i2i.task import Task


def _palette_of(task: Task, name: str | None = None) -> tuple:
    if not task.palette:
        raise ValueError(
            f"task {name or task.summary!r} declares no label palette (Task.palette); a "
            "segmenter needs the classes and their label colours"
        )
    return task.palette


def _check_data(task: Task, data: str | os.PathLike | None, name: str | None) -> None:
    """Refuse, naming the task by its registered ``name``, when there is no data to read."""
    from i2i.data.io import DatasetError

    if data is None and getattr(task, "default_data", None) is None:
        raise DatasetError(
            f"Task {name or task.summary!r} has no built-in data; pass a data folder (--data DIR)"
        )


def _classes(task: Task, label_maps: Tensor) -> Tensor:
    """Model-range label maps ``(B, C, H, W)`` -> ``(B, H, W)`` class indices."""
    from i2i.metrics.segmentation import nearest_class

    colours = torch.tensor(task.class_colors)
    return nearest_class(task.input_to_image(label_maps), colours)


def _photos(task: Task, x: Tensor, y: Tensor) -> Tensor:
    return task.output_to_image(x, y)


def _load_split(task: Task, data, split: str, size: int) -> tuple[Tensor, Tensor, list[str]]:
    """Every photo of ``split`` resized to ``size`` x ``size`` ([0, 1]), its classes, its name."""
    from i2i.data import PreprocessConfig, build_dataset

    preprocess = PreprocessConfig(load_size=size, crop_size=size, flip=False)
    dataset = build_dataset(task, data, split, preprocess=preprocess, train=False)
    photos, classes, names = [], [], []
    for i in range(len(dataset)):
        item = dataset[i]
        x, y = item["input"][None], item["target"][None]
        photos.append(_photos(task, x, y)[0])
        classes.append(_classes(task, x)[0])
        names.append(Path(str(item["path"])).stem)
    return torch.stack(photos), torch.stack(classes), names


def train_segmenter(
    task: Task,
    data: str | os.PathLike | None,
    out: str | os.PathLike | None = None,
    *,
    task_name: str | None = None,
    steps: int = 1500,
    size: int = 128,
    batch_size: int = 8,
    lr: float = 2e-3,
    encoder: str = "resnet18",
    ngf: int = 32,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> Segmenter:
    """Train a segmenter for ``steps`` batches on ``data``'s train split; score it on ``val``.

    The photos are resized to ``size`` x ``size`` once (the segmenter works at that size) and
    flipped at random; Adam with a cosine-decaying rate; cross-entropy on every pixel. Saves
    into ``out`` when given. ``seg.info`` records the training settings and the scores on the
    real validation photos.
    """
    from tqdm.auto import tqdm

    from i2i.data.io import DatasetError
    from i2i.engine.devices import resolve_device

    device = resolve_device(device)  # a device name that is not one: a message, not a traceback
    palette = _palette_of(task, task_name)
    if steps < 1 or size < 1 or batch_size < 1:
        raise ValueError("steps, size and batch_size must be positive")
    _check_data(task, data, task_name)
    torch.manual_seed(seed)
    seg = Segmenter.new(palette, task=task_name, encoder=encoder, ngf=ngf, size=size).to(device)
    photos, classes, _ = _load_split(task, data, "train", size)
    batch_size = min(batch_size, len(photos))
    rng = torch.Generator().manual_seed(seed)
    net = seg.network.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    start, losses = time.perf_counter(), []
    order = torch.randperm(len(photos), generator=rng)
    cursor = 0
    with tqdm(total=steps, desc="segmenter", unit="step", disable=not progress) as bar:
        for _ in range(steps):
            if cursor + batch_size > len(order):
                order, cursor = torch.randperm(len(photos), generator=rng), 0
            idx = order[cursor : cursor + batch_size]
            cursor += batch_size
            x, t = photos[idx], classes[idx]
            flip = torch.rand(len(idx), generator=rng) < 0.5
            x[flip], t[flip] = x[flip].flip(-1), t[flip].flip(-1)
            loss = F.cross_entropy(seg.logits(x.to(device)), t.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    seconds = time.perf_counter() - start
    net.eval()
    tail = losses[-min(50, len(losses)) :]
    seg.info["train"] = {
        "data": str(data) if data is not None else None,
        "images": len(photos),
        "steps": steps,
        "epochs": round(steps * batch_size / len(photos), 2),
        "batch_size": batch_size,
        "size": size,
        "lr": lr,
        "seed": seed,
        "final_loss": sum(tail) / len(tail),
        "seconds": round(seconds, 1),
    }
    try:
        seg.info["val"] = score_real_photos(seg, task, data, "val", size=size)
    except DatasetError:
        seg.info["val"] = None
    if echo is not None:
        final = seg.info["train"]["final_loss"]
        echo(f"trained {steps} steps in {seconds:.0f} s, final loss {final:.3f}")
    if out is not None:
        seg.save(out)
    return seg


def score_real_photos(
    seg: Callable[[Tensor], Tensor],
    task: Task,
    data: str | os.PathLike | None,
    split: str = "val",
    *,
    size: int = 128,
    limit: int | None = None,
) -> dict[str, Any]:
    """The FCN-score of the real photos of ``split``: how well ``seg`` recovers their labels.

    Photos and label maps are resized to ``size`` x ``size``, as evaluation at that crop size
    does.
    Returns the summary (``seg_pixel_acc``, ``seg_class_acc``, ``seg_class_iou``), ``per_class``
    and ``num_images``.
    """
    from i2i.data import PreprocessConfig, build_dataset
    from i2i.eval.runner import evaluate
    from i2i.eval.samples import Batch
    from i2i.metrics.segmentation import seg_score_metric

    _check_data(task, data, getattr(seg, "task", None))  # a Segmenter knows its task's name
    preprocess = PreprocessConfig(load_size=size, crop_size=size, flip=False)
    dataset = build_dataset(task, data, split, preprocess=preprocess, train=False)
    count = len(dataset) if limit is None else min(limit, len(dataset))

    def batches():
        for i in range(count):
            item = dataset[i]
            x, y = item["input"][None], item["target"][None]
            photo = _photos(task, x, y)
            name = Path(str(item["path"])).stem
            yield Batch([name], photo, photo, task.input_to_image(x))

    metric = seg_score_metric(seg, task.palette)
    result = evaluate(batches(), {"seg_score": metric}, progress=False, total=count)
    return {
        **result.summary,
        "per_class": result.extra["seg_score_per_class"],
        "num_images": len(result.images),
        "split": split,
        "size": size,
    }
