"""Unpaired data: images of two domains drawn independently, as CycleGAN trains on them.

Where the files are looked for, for a ``split`` such as ``train``:

- ``root/trainA`` + ``root/trainB`` (the CycleGAN layout; any number of images on each side);
- the paired folders a paired task reads (``root/train/A`` + ``root/train/B``,
  ``root/A/train`` + ``root/B/train``, ``root/A`` + ``root/B``); file names need not match;
- A|B files in ``root/train`` (else ``root``): the left halves are domain A, the right halves
  domain B, and the halves of one file are not kept together.

The direction says which domain is the input (``AtoB``: A). Item ``i`` takes its input from
input file ``i % len(inputs)`` and its target from a target file drawn at random from
``(seed, epoch, i)``, as the official ``UnalignedDataset`` does (``serial_batches`` off); there
are ``max(len(inputs), len(targets))`` items. Each side gets its own resize/crop/flip draw, then
the task's ``make_pair((input image, target image), generator)`` makes the model tensors as for
a paired task. Items are ``{"input", "target", "path", "target_path", "index", "skipped"}``
(``path`` and ``index`` name the input's file; ``skipped`` as for every dataset). Datasets here
have ``paired = False``: output and target do not belong together, so pixel metrics between
them mean nothing.

Bad files are handled as by :class:`~i2i.data.datasets.ImageDataset`: an error naming the file,
or with ``on_bad_image="skip"`` the next good file of the same domain is used and the skip
recorded in ``skipped`` and ``item["skipped"]``.

>>> import tempfile, torch
>>> from pathlib import Path
>>> from i2i import Task
>>> from i2i.data.io import write_image
>>> root = Path(tempfile.mkdtemp())
>>> for name in ("trainA/1.png", "trainA/2.png", "trainA/3.png", "trainB/x.png"):
...     _ = write_image(torch.rand(3, 40, 40), root / name)
>>> task = Task(summary="demo", in_channels=3, out_channels=3, layout="unpaired")
>>> ds = build_unpaired_dataset(task, root, preprocess=PreprocessConfig(36, 32))
>>> item = ds[1]
>>> len(ds), ds.paired, item["input"].shape, Path(item["path"]).name, Path(item["target_path"]).name
(3, False, torch.Size([3, 32, 32]), '2.png', 'x.png')
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from i2i.data.datasets import (
    AlignedDataset,
    ImageDataset,
    SingleFolderDataset,
    _pair_dir_candidates,
    find_pair_dirs,
    resolve_split_dir,
)
from i2i.data.io import DatasetError, list_images
from i2i.data.transforms import PreprocessConfig, item_generator


class UnpairedDataset(ImageDataset):
    """Records of two domains; an item joins an input record with an independently drawn target.

    ``inputs`` and ``targets`` are the record indices of each side (they may be the same records,
    as for A|B files, where ``load`` gives ``[input half, target half]``); ``folders`` name where
    each side's files are, for messages.
    """

    layout = "unpaired"
    paired = False

    def __init__(
        self,
        task: Any,
        records: list[tuple[Path, ...]],
        *,
        inputs: range,
        targets: range,
        folders: tuple[Path, Path],
        **kwargs: Any,
    ):
        super().__init__(task, records, **kwargs)
        for side, indices in (("input", inputs), ("target", targets)):
            if len(indices) == 0 or indices.start < 0 or indices.stop > len(self.records):
                raise ValueError(f"{side} records {indices} outside the {len(records)} records")
        self.inputs, self.targets = inputs, targets
        self.folders = (Path(folders[0]), Path(folders[1]))

    def __len__(self) -> int:
        return max(len(self.inputs), len(self.targets))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.folders[0]} ({len(self.inputs)}) -> {self.folders[1]} "
            f"({len(self.targets)}), {len(self)} items, direction={self.direction}, "
            f"{self.transform}, skipped={len(self.skipped)})"
        )

    def target_draw(self, index: int) -> tuple[torch.Generator, int]:
        """The generator of item ``index`` and the target record it draws (before any skip)."""
        gen = item_generator(self.seed, self.epoch, index)
        drawn = int(torch.randint(len(self.targets), (1,), generator=gen))
        return gen, self.targets[drawn]

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        gen, drawn = self.target_draw(index)
        new: list[tuple[str, str]] = []
        first = self.inputs[index % len(self.inputs)]
        i, src = self._first_good(first, new, self.inputs, self.folders[0])
        j, dst = self._first_good(drawn, new, self.targets, self.folders[1])
        x, y = self._model_pair(self._augment(src[0], dst[-1], gen), gen)
        return {
            "input": x,
            "target": y,
            "path": str(self.records[i][0]),
            "target_path": str(self.records[j][0]),
            "index": i,
            "skipped": json.dumps(new) if new else "",
        }

    def _augment(self, src: Tensor, dst: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Each side with its own random draw (one after the other from ``gen``)."""
        return self.transform([src], gen)[0], self.transform([dst], gen)[0]


class UnpairedFolderDataset(UnpairedDataset, SingleFolderDataset):
    """Two folders of images, one per domain (``trainA/`` and ``trainB/``), any counts."""


class UnpairedAlignedDataset(UnpairedDataset, AlignedDataset):
    """A|B files whose halves are drawn independently: one file's A never meets its own B."""


def find_domain_dirs(root: str | os.PathLike, split: str) -> tuple[Path, Path] | None:
    """The ``(A, B)`` folders of ``split``: ``root/{split}A`` + ``root/{split}B`` or paired folders.

    When only one of ``trainA``/``trainB`` exists both are returned, so that reading the missing
    one names it. None when there are no such folders.
    """
    root = Path(root)
    a, b = root / f"{split}A", root / f"{split}B"
    if a.is_dir() or b.is_dir():
        return a, b
    return find_pair_dirs(root, split)


def build_unpaired_dataset(
    task: Any,
    root: str | os.PathLike,
    split: str = "train",
    *,
    direction: str = "AtoB",
    preprocess: PreprocessConfig | None = None,
    train: bool = True,
    seed: int = 0,
    on_bad_image: str = "error",
) -> UnpairedDataset:
    """The unpaired dataset of ``split`` under ``root`` (see the module docstring for where).

    What :func:`~i2i.data.datasets.build_dataset` returns for a task of layout ``unpaired`` and
    for any paired task with ``unpaired=True``.
    """
    root = Path(root)
    common: dict[str, Any] = dict(
        split=split,
        direction=direction,
        preprocess=preprocess,
        train=train,
        seed=seed,
        on_bad_image=on_bad_image,
    )
    dirs = find_domain_dirs(root, split)
    if dirs is not None:
        src_dir, dst_dir = dirs if direction == "AtoB" else dirs[::-1]
        src, dst = list_images(src_dir), list_images(dst_dir)
        return UnpairedFolderDataset(
            task,
            [(p,) for p in src + dst],
            inputs=range(len(src)),
            targets=range(len(src), len(src) + len(dst)),
            folders=(src_dir, dst_dir),
            folder=Path(os.path.commonpath([src_dir, dst_dir])),
            **common,
        )
    try:
        folder = resolve_split_dir(root, split)
    except DatasetError as exc:
        looked = ", ".join(
            f"{a} + {b}"
            for a, b in [(root / f"{split}A", root / f"{split}B")]
            + _pair_dir_candidates(root, split)
        )
        raise DatasetError(f"{exc}; for unpaired folders looked for {looked}") from None
    files = list_images(folder)
    return UnpairedAlignedDataset(
        task,
        [(p,) for p in files],
        inputs=range(len(files)),
        targets=range(len(files)),
        folders=(folder, folder),
        folder=folder,
        **common,
    )
