"""The data pipeline's own throughput: facades files through ``build_dataset`` and a DataLoader.

The dataset and loader are built the way the engine builds them for ``i2i run --task facades``
(the task's preprocessing: 286 -> random 256 crop with flips; the engine's default number of
workers); nothing trains, so this is how fast data *can* arrive.

>>> from pathlib import Path
>>> facades_dataset(Path("/nonexistent"))
Traceback (most recent call last):
...
FileNotFoundError: facades data not found under /nonexistent (expected facades/train/*.jpg)
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from i2i import catalog as default_catalog
from i2i.config import RunConfig
from i2i.data import PreprocessConfig, build_dataset


def facades_dataset(
    root: Path, *, load_size: int = 286, crop_size: int = 256, split: str = "train"
) -> Dataset:
    """The facades training set under ``root`` (the folder holding ``facades/``)."""
    folder = Path(root) / "facades"
    if not (folder / split).is_dir():
        raise FileNotFoundError(
            f"facades data not found under {root} (expected facades/{split}/*.jpg)"
        )
    task = default_catalog().tasks.get("facades").obj
    pre = PreprocessConfig(load_size=load_size, crop_size=crop_size, mode="resize_and_crop")
    return build_dataset(task, folder, split, preprocess=pre, train=True, seed=0)


def default_workers() -> int:
    """The engine's default ``num_workers``.

    >>> default_workers() >= 0
    True
    """
    return int(RunConfig(task="facades").num_workers)


def data_images_per_second(
    dataset: Dataset,
    *,
    batch_size: int = 1,
    num_workers: int | None = None,
    batches: int = 200,
    skip: int | None = None,
) -> float:
    """Images per second a DataLoader delivers from ``dataset`` after its workers have started.

    The first ``skip`` batches (default: two per worker, at least 2) are not timed: they hold
    the workers' start-up. The dataset is cycled when it is shorter than needed.
    """
    workers = default_workers() if num_workers is None else num_workers
    skip = max(2, 2 * workers) if skip is None else skip
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    seen = 0
    start = None
    while True:
        for i, batch in enumerate(loader):
            if start is None and i + 1 >= skip:
                start = time.perf_counter()
                continue
            if start is not None:
                seen += int(batch["input"].shape[0])
                if seen >= batches * batch_size:
                    return seen / (time.perf_counter() - start)
        if start is None:  # dataset shorter than skip: time from the second pass
            start = time.perf_counter()
