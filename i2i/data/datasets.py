"""Datasets by layout: A|B files, paired ``A/`` and ``B/`` folders, or one folder of photos.

(Unpaired data, two domains drawn independently, is in :mod:`i2i.data.unpaired`.)

Where the files are looked for, for a ``split`` such as ``train``:

- ``aligned`` and ``single``: ``root/split/``, else ``root/`` itself when it holds images;
- ``folders``: ``root/split/A`` + ``root/split/B``, ``root/A/split`` + ``root/B/split`` (the
  layout the official ``combine_A_and_B.py`` reads), else ``root/A`` + ``root/B``.

A paired task (``aligned`` or ``folders``) reads whichever paired layout it finds. Files are read
lazily in ``__getitem__``. With ``on_bad_image="skip"`` a file that cannot be used is recorded in
``dataset.skipped`` as ``(path, reason)`` and the next index is served instead;
``dataset.validate()`` reads every file up front. Skips made inside DataLoader worker processes
are recorded in those processes, so every item also carries the skips made while serving it
(``item["skipped"]``, read back from a batch with :func:`skipped_in_batch`).

>>> import tempfile, torch
>>> from pathlib import Path
>>> from i2i import Task
>>> from i2i.data.io import write_image
>>> root = Path(tempfile.mkdtemp())
>>> _ = write_image(torch.rand(3, 40, 80), root / "train" / "1.png")
>>> task = Task(summary="demo", in_channels=3, out_channels=3, layout="aligned")
>>> ds = build_dataset(task, root, preprocess=PreprocessConfig(load_size=36, crop_size=32))
>>> item = ds[0]
>>> item["input"].shape, item["target"].shape, len(ds)
(torch.Size([3, 32, 32]), torch.Size([3, 32, 32]), 1)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from i2i.config import ON_BAD_IMAGE
from i2i.data.io import DataError, DatasetError, ImageReadError, list_images, read_image
from i2i.data.transforms import JointTransform, PreprocessConfig, item_generator
from i2i.task import DIRECTIONS


def _has_images(folder: Path) -> bool:
    try:
        list_images(folder)
    except DatasetError:
        return False
    return True


def _subfolders(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def resolve_split_dir(root: str | os.PathLike, split: str) -> Path:
    """``root/split`` when it exists, else ``root`` when it holds images directly.

    Raises :class:`DatasetError` saying what was looked for.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"Data folder {root} does not exist (or is not a folder)")
    if (root / split).is_dir():
        return root / split
    if _has_images(root):
        return root
    subs = _subfolders(root)
    raise DatasetError(
        f"No {split!r} images under {root}: looked for the folder {root / split} and for images "
        f"directly in {root}; found " + (f"subfolders {', '.join(subs)}" if subs else "neither")
    )


def find_pair_dirs(root: str | os.PathLike, split: str) -> tuple[Path, Path] | None:
    """The ``(A, B)`` folders for ``split`` under ``root``, or None when there are none."""
    root = Path(root)
    for a, b in _pair_dir_candidates(root, split):
        if a.is_dir() and b.is_dir():
            return a, b
    return None


def _pair_dir_candidates(root: Path, split: str) -> list[tuple[Path, Path]]:
    return [
        (root / split / "A", root / split / "B"),
        (root / "A" / split, root / "B" / split),
        (root / "A", root / "B"),
    ]


def pair_files(
    a_dir: str | os.PathLike, b_dir: str | os.PathLike, *, strict: bool = True
) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """Match the images of ``a_dir`` and ``b_dir`` by file stem (``1.jpg`` with ``1.png``).

    Returns ``(pairs, problems)``. A file with no partner is an error naming both sides when
    ``strict``; otherwise it is listed in ``problems`` as ``(path, reason)``.
    """
    a_dir, b_dir = Path(a_dir), Path(b_dir)
    a_files, b_files = list_images(a_dir), list_images(b_dir)
    b_by_stem: dict[str, Path] = {}
    for p in b_files:
        if p.stem in b_by_stem:
            raise DatasetError(
                f"Two files in {b_dir} share the name {p.stem!r}: {b_by_stem[p.stem].name} "
                f"and {p.name}; keep one"
            )
        b_by_stem[p.stem] = p
    pairs, problems = [], []
    seen: set[str] = set()
    for a in a_files:
        if a.stem in seen:
            raise DatasetError(f"Two files in {a_dir} share the name {a.stem!r}; keep one")
        seen.add(a.stem)
        b = b_by_stem.pop(a.stem, None)
        if b is None:
            problems.append(
                (str(a), f"no partner for {a} in {b_dir} (looked for {b_dir / a.stem}.*)")
            )
        else:
            pairs.append((a, b))
    for stem, b in b_by_stem.items():
        problems.append((str(b), f"no partner for {b} in {a_dir} (looked for {a_dir / stem}.*)"))
    if problems and strict:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DatasetError(f"Unpaired files: {problems[0][1]}{more}")
    return pairs, problems


class ImageDataset(Dataset):
    """Base class: records of file paths, a lazy loader, one joint transform, then the task.

    Items are dicts ``{"input": x, "target": y, "path": str, "index": int}`` with ``x`` and ``y``
    in [-1, 1] shaped ``(task.in_channels, H, W)`` and ``(task.out_channels, H, W)``; ``path``
    and ``index`` name the record served (the next good one when a bad file was skipped);
    ``skipped`` is a JSON list of the ``(path, reason)`` skipped on the way ("" when none).
    ``paired`` says whether an item's target belongs to its input (False for unpaired data, where
    pixel metrics between output and target mean nothing).
    """

    layout = ""
    paired = True

    def __init__(
        self,
        task: Any,
        records: Sequence[tuple[Path, ...]],
        *,
        folder: Path,
        split: str = "train",
        direction: str = "AtoB",
        preprocess: PreprocessConfig | None = None,
        train: bool = True,
        seed: int = 0,
        on_bad_image: str = "error",
        skipped: Sequence[tuple[str, str]] = (),
    ):
        if on_bad_image not in ON_BAD_IMAGE:
            raise ValueError(f"on_bad_image must be 'error' or 'skip', got {on_bad_image!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
        self.task = task
        self.records = list(records)
        self.folder = Path(folder)
        self.split = split
        self.direction = direction
        self.transform = JointTransform(preprocess or PreprocessConfig(), train=train)
        self.seed = seed
        self.epoch = 0
        self.on_bad_image = on_bad_image
        self.skipped: list[tuple[str, str]] = list(skipped)
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.folder}, {len(self)} items, direction={self.direction}, "
            f"{self.transform}, skipped={len(self.skipped)})"
        )

    @property
    def paths(self) -> list[str]:
        """The first file of every record (the A|B file, the A file or the photo)."""
        return [str(r[0]) for r in self.records]

    def set_epoch(self, epoch: int) -> None:
        """Use the random draws of ``epoch`` (each item's draw depends on seed, epoch, index)."""
        self.epoch = int(epoch)

    def load(self, index: int) -> list[Tensor]:
        """The images of record ``index`` in [0, 1], ordered (source, target) for paired data."""
        raise NotImplementedError

    def _checked_load(self, index: int) -> list[Tensor]:
        images = self.load(index)
        height, width = images[0].shape[-2:]
        try:
            self.transform.check_size(height, width)
        except ValueError as exc:
            raise ImageReadError(self.records[index][0], str(exc)) from None
        return images

    def _skip(self, index: int, exc: DataError) -> tuple[str, str]:
        self._bad.add(index)
        path = str(getattr(exc, "path", self.records[index][0]))
        self.skipped.append((path, str(exc)))
        return path, str(exc)

    def _check_index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} items")
        return index % n

    def _first_good(
        self,
        index: int,
        new: list[tuple[str, str]],
        among: range | None = None,
        folder: Path | None = None,
    ) -> tuple[int, list[Tensor]]:
        """Record ``index`` and its images or, with ``on_bad_image="skip"``, the next good one.

        The search wraps around within the record indices ``among`` (all records by default);
        skips are recorded in ``skipped`` and appended to ``new``. ``folder`` names where the
        records come from when every one of them fails.
        """
        among = range(len(self.records)) if among is None else among
        n = len(among)
        for offset in range(n):
            i = among[(index - among.start + offset) % n]
            if i in self._bad:
                continue
            try:
                return i, self._checked_load(i)
            except DataError as exc:
                if self.on_bad_image == "error":
                    raise
                new.append(self._skip(i, exc))
        raise DatasetError(
            f"Every file in {folder or self.folder} failed to load ({len(self.skipped)} "
            f"skipped); first: {self.skipped[0][1] if self.skipped else 'none'}"
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        new: list[tuple[str, str]] = []
        i, images = self._first_good(self._check_index(index), new)
        item = self._make_item(i, images)
        item["skipped"] = json.dumps(new) if new else ""
        return item

    def _model_pair(self, sample: Any, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The task's ``make_pair`` of ``sample``, its shapes checked against the task's."""
        x, y = self.task.make_pair(sample, generator)
        for name, t, ch in (
            ("input", x, self.task.in_channels),
            ("target", y, self.task.out_channels),
        ):
            if t.ndim != 3 or t.shape[0] != ch:
                raise ValueError(
                    f"task {self.task.summary!r} make_pair returned {name} of shape "
                    f"{tuple(t.shape)}; expected ({ch}, H, W)"
                )
        return x, y

    def _make_item(self, index: int, images: list[Tensor]) -> dict[str, Any]:
        gen = item_generator(self.seed, self.epoch, index)
        images = self.transform(images, gen)
        sample = images[0] if len(images) == 1 else tuple(images)
        x, y = self._model_pair(sample, gen)
        return {"input": x, "target": y, "path": str(self.records[index][0]), "index": index}

    def validate(self) -> list[tuple[str, str]]:
        """Read every file now. Returns the problems found as ``(path, reason)``.

        With ``on_bad_image="error"`` any problem raises :class:`DatasetError` listing them;
        with ``"skip"`` bad records are recorded in ``skipped`` and left out from then on.
        """
        problems = []
        for i in range(len(self.records)):
            if i in self._bad:
                continue
            try:
                self._checked_load(i)
            except DataError as exc:
                path = str(getattr(exc, "path", self.records[i][0]))
                problems.append((path, str(exc)))
                if self.on_bad_image == "skip":
                    self._skip(i, exc)
        if problems and self.on_bad_image == "error":
            listed = "\n  ".join(reason for _, reason in problems[:10])
            more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise DatasetError(
                f"{len(problems)} bad file(s) in {self.folder}:\n  {listed}{more}\n"
                "Fix or remove them, or use on_bad_image='skip' (--on-bad-image skip)."
            )
        return problems


def skipped_in_batch(batch: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The ``(path, reason)`` pairs a batch's items report as skipped (see ``item["skipped"]``).

    >>> skipped_in_batch({"skipped": ["", '[["a.png", "empty"]]']})
    [('a.png', 'empty')]
    """
    out = []
    for text in batch.get("skipped") or ():
        if text:
            out += [(str(path), str(reason)) for path, reason in json.loads(text)]
    return out


class AlignedDataset(ImageDataset):
    """One file per pair, A on the left half and B on the right (the pix2pix format)."""

    layout = "aligned"

    def load(self, index: int) -> list[Tensor]:
        (path,) = self.records[index]
        ab = read_image(path)
        width = ab.shape[-1]
        if width % 2 or width < 2:
            raise ImageReadError(
                path,
                f"an A|B file must have an even width (A left, B right), got width {width}",
            )
        a, b = ab[:, :, : width // 2], ab[:, :, width // 2 :]
        return [b, a] if self.direction == "BtoA" else [a, b]


class PairedFolderDataset(ImageDataset):
    """``A/`` and ``B/`` folders whose files pair up by name."""

    layout = "folders"

    def load(self, index: int) -> list[Tensor]:
        a_path, b_path = self.records[index]
        a, b = read_image(a_path), read_image(b_path)
        if a.shape != b.shape:
            raise ImageReadError(
                a_path,
                f"its partner {b_path} has a different size: {a.shape[2]}x{a.shape[1]} vs "
                f"{b.shape[2]}x{b.shape[1]} (WxH); paired images must be the same size",
            )
        return [b, a] if self.direction == "BtoA" else [a, b]


class SingleFolderDataset(ImageDataset):
    """One folder of photos; the task derives the input from each (colorize, inpaint, ...)."""

    layout = "single"

    def load(self, index: int) -> list[Tensor]:
        (path,) = self.records[index]
        return [read_image(path)]


def build_dataset(
    task: Any,
    root: str | os.PathLike | None = None,
    split: str = "train",
    *,
    direction: str | None = None,
    preprocess: PreprocessConfig | None = None,
    train: bool = True,
    seed: int = 0,
    on_bad_image: str = "error",
    unpaired: bool = False,
) -> ImageDataset:
    """The dataset for ``task`` under ``root`` (the task's default data when ``root`` is None).

    ``direction`` defaults to the task's; ``train=False`` makes the transform deterministic.
    ``unpaired=True`` reads a paired task's data as two independent domains (the halves of
    A|B files, or the ``A/`` and ``B/`` folders, drawn apart); a task of layout ``unpaired``
    always reads its data so. See :mod:`i2i.data.unpaired`.
    """
    if root is None:
        default: Callable[[], Path] | None = getattr(task, "default_data", None)
        if default is None:
            raise DatasetError(
                f"Task {task.summary!r} has no built-in data; pass a data folder (--data DIR)"
            )
        root = default()
    root = Path(root)
    direction = direction or task.direction
    common = dict(
        split=split,
        direction=direction,
        preprocess=preprocess,
        train=train,
        seed=seed,
        on_bad_image=on_bad_image,
    )
    if task.layout == "single":
        if unpaired:
            raise ValueError(
                f"Task {task.summary!r} derives its input from each photo (layout 'single'); "
                "it has no two domains to read unpaired"
            )
        folder = resolve_split_dir(root, split)
        return SingleFolderDataset(
            task, [(p,) for p in list_images(folder)], folder=folder, **common
        )
    if unpaired or task.layout == "unpaired":
        from i2i.data.unpaired import build_unpaired_dataset

        return build_unpaired_dataset(task, root, **common)
    dirs = find_pair_dirs(root, split)
    if dirs is not None:
        pairs, problems = pair_files(*dirs, strict=on_bad_image == "error")
        if not pairs:
            raise DatasetError(f"No paired images in {dirs[0]} and {dirs[1]}")
        return PairedFolderDataset(task, pairs, folder=dirs[0].parent, skipped=problems, **common)
    try:
        folder = resolve_split_dir(root, split)
    except DatasetError as exc:
        looked = ", ".join(f"{a} + {b}" for a, b in _pair_dir_candidates(root, split))
        raise DatasetError(f"{exc}; for paired folders looked for {looked}") from None
    return AlignedDataset(task, [(p,) for p in list_images(folder)], folder=folder, **common)
