"""A semantic segmenter for the FCN-score: photo -> one class index per pixel.

The pix2pix paper scores generated photos by how well an off-the-shelf segmenter (FCN-8s,
trained on real photos) recovers the labels they came from. Here the segmenter is a U-Net
decoder on a timm encoder (:class:`i2i.models.timm_unet.TimmUNet`, random init, per-class
logits), trained with cross-entropy on the real training photos of a label-map task
(:func:`i2i.segment.train.train_segmenter`). A segmenter folder holds
``segmenter.safetensors`` (weights) and ``segmenter.json`` (the network's options, the task
and its classes as ``[name, [r, g, b]]``, and how it was trained and scored).

>>> import tempfile, torch
>>> seg = Segmenter.new((("sky", (0, 0, 255)), ("road", (128, 64, 128))),
...                     encoder="test_resnet", ngf=8, size=32, task="demo")
>>> seg(torch.rand(2, 3, 40, 50)).shape  # any size: segmented at 32 x 32, scaled back
torch.Size([2, 40, 50])
>>> folder = seg.save(tempfile.mkdtemp())
>>> load_segmenter(folder).class_names
('sky', 'road')
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHTS_FILE = "segmenter.safetensors"
CONFIG_FILE = "segmenter.json"
FORMAT = "i2i-segmenter"
FORMAT_VERSION = 1

Palette = tuple[tuple[str, tuple[int, int, int]], ...]


class SegmenterError(ValueError):
    """A segmenter folder that cannot be read (the message names the file and the problem)."""


def _network(num_classes: int, options: dict[str, Any]) -> nn.Module:
    from i2i.models.timm_unet import TimmUNet

    return TimmUNet(3, num_classes, dropout=False, logits=True, **options)


class Segmenter:
    """Per-pixel classes of RGB photos: ``(B, 3, H, W)`` in [0, 1] -> ``(B, H, W)`` indices.

    ``palette`` names the classes and their label colours, in class-index order; ``options``
    are the :class:`~i2i.models.timm_unet.TimmUNet` keywords (``encoder``, ``ngf``, ``norm``);
    photos are segmented at ``size`` x ``size`` (the size it was trained at) and the class
    scores scaled back to each photo's own size; ``info`` is free JSON (how it was trained,
    its score on real photos).
    """

    def __init__(
        self,
        network: nn.Module,
        palette: Palette,
        *,
        options: dict[str, Any],
        size: int,
        task: str | None = None,
        info: dict[str, Any] | None = None,
    ):
        multiple = int(getattr(network, "size_multiple", 1))
        if size < 1 or size % multiple:
            raise ValueError(f"segmenter size {size} is not a positive multiple of {multiple}")
        self.network = network.eval()
        self.size = int(size)
        self.palette = tuple((str(n), tuple(int(c) for c in rgb)) for n, rgb in palette)
        self.options = dict(options)
        self.task = task
        self.info = dict(info or {})
        self.path: Path | None = None  # the folder it was loaded from

    @classmethod
    def new(
        cls,
        palette: Sequence[tuple[str, Sequence[int]]],
        *,
        task: str | None = None,
        encoder: str = "resnet18",
        ngf: int = 32,
        norm: str = "batch",
        size: int = 128,
    ) -> Segmenter:
        """A randomly initialised segmenter for the classes of ``palette``."""
        if len(palette) < 2:
            raise ValueError(f"a segmenter needs at least 2 classes, got {len(palette)}")
        options = {"encoder": encoder, "ngf": ngf, "norm": norm}
        pal = tuple((n, tuple(rgb)) for n, rgb in palette)
        return cls(_network(len(pal), options), pal, options=options, size=size, task=task)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.palette)

    @property
    def class_colors(self) -> tuple[tuple[int, int, int], ...]:
        return tuple(rgb for _, rgb in self.palette)

    @property
    def num_classes(self) -> int:
        return len(self.palette)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def logits(self, photos: Tensor) -> Tensor:
        """``(B, 3, size, size)`` photos in [0, 1] -> ``(B, K, size, size)`` class scores."""
        return self.network(photos * 2.0 - 1.0)

    def __call__(self, photos: Tensor) -> Tensor:
        if photos.ndim != 4 or photos.shape[1] != 3:
            raise ValueError(f"segmenter expected (B, 3, H, W) photos, got {tuple(photos.shape)}")
        self.network.eval()
        x = photos.to(self.device, torch.float32)
        shape = tuple(x.shape[-2:])
        if shape != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        with torch.no_grad():
            scores = self.logits(x.clamp(0, 1))
            if shape != (self.size, self.size):
                scores = F.interpolate(scores, size=shape, mode="bilinear")
        return scores.argmax(1).to(photos.device)

    @property
    def size_multiple(self) -> int:
        return int(getattr(self.network, "size_multiple", 1))

    def config(self) -> dict[str, Any]:
        """What :data:`CONFIG_FILE` holds."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "network": "unet_timm",
            "options": self.options,
            "size": self.size,
            "classes": [[n, list(rgb)] for n, rgb in self.palette],
            **self.info,
        }

    def save(self, folder: str | os.PathLike) -> Path:
        """Write weights and config into ``folder`` (atomically: temp file, then rename)."""
        from safetensors.torch import save_file

        from i2i.data.io import atomic_path
        from i2i.engine.checkpoint import write_json_atomic

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
        with atomic_path(folder / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp))
        write_json_atomic(folder / CONFIG_FILE, self.config())
        return folder

    def to(self, device: str | torch.device) -> Segmenter:
        self.network.to(device)
        return self


def is_segmenter(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a segmenter folder (holds :data:`CONFIG_FILE`).

    >>> is_segmenter("/nonexistent")
    False
    """
    return (Path(path) / CONFIG_FILE).is_file()


def load_segmenter(folder: str | os.PathLike, *, device: str | torch.device = "cpu") -> Segmenter:
    """The segmenter saved in ``folder`` (weights loaded strictly from safetensors)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_path, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not cfg_path.is_file():
        raise SegmenterError(f"{folder} is not a segmenter folder: {CONFIG_FILE} is missing")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SegmenterError(f"{cfg_path}: not readable JSON ({exc})") from exc
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise SegmenterError(f"{cfg_path}: not an i2i segmenter config (format {FORMAT!r})")
    try:
        palette = tuple((str(n), tuple(int(c) for c in rgb)) for n, rgb in cfg["classes"])
        options = dict(cfg["options"])
        size = int(cfg["size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SegmenterError(f"{cfg_path}: bad 'classes', 'options' or 'size' ({exc})") from exc
    from i2i.engine.build import without_random_init

    try:  # every weight comes from the safetensors file next, none from an options' file
        with without_random_init():
            network = _network(len(palette), options)
    except (TypeError, ValueError) as exc:
        raise SegmenterError(f"{cfg_path}: cannot build the network ({exc})") from exc
    except RuntimeError as exc:
        if "allocate" not in str(exc):
            raise
        raise SegmenterError(
            f"{cfg_path}: the network it describes does not fit in memory"
        ) from None
    if not weights.is_file():
        raise SegmenterError(f"{weights} is missing")
    try:
        state = load_file(str(weights))
    except (OSError, SafetensorError) as exc:
        raise SegmenterError(f"{weights}: not a readable safetensors file ({exc})") from exc
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise SegmenterError(f"{weights} does not fit the network in {cfg_path}: {exc}") from exc
    info = {
        k: v
        for k, v in cfg.items()
        if k not in ("format", "format_version", "task", "network", "options", "size", "classes")
    }
    try:
        seg = Segmenter(
            network, palette, options=options, size=size, task=cfg.get("task"), info=info
        )
    except ValueError as exc:
        raise SegmenterError(f"{cfg_path}: {exc}") from exc
    seg.path = folder.resolve()
    return seg.to(device)
