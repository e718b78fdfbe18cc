"""The checkpoints a demo serves: a :class:`~i2i.inference.Translator` each, with what the page
needs to draw for its task (canvas, palette, size) and a few example inputs from its data.

>>> import torch
>>> from i2i import Task
>>> from i2i.inference import Translator
>>> task = Task(summary="photo to photo", in_channels=3, out_channels=3, layout="aligned")
>>> model = DemoModel("m", Translator(torch.nn.Conv2d(3, 3, 1), task, mode="eval"), "runs/m")
>>> model.translate(torch.rand(3, 20, 30), mode="paper", seed=1).shape
torch.Size([3, 20, 30])
>>> model.describe()["canvas"], model.describe()["size"]
('color', 256)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from i2i.catalog import Catalog
from i2i.inference import MODES, Translator
from i2i.inference import load as load_translator

EXAMPLE_COUNT = 4
"""How many example inputs a model offers (the first images of its data's validation split)."""
EXAMPLE_SPLITS = ("val", "test", "train")


@dataclass
class DemoModel:
    """One loaded checkpoint. ``translate`` is safe to call from many threads at once."""

    name: str
    translator: Translator
    source: str
    examples: list[Tensor] = field(default_factory=list)
    examples_note: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def size(self) -> int:
        """The side the model was trained at: the canvas's default size."""
        return int(self.translator.config.get("crop_size") or 256)

    def translate(self, image: Tensor, *, mode: str | None = None, seed: int = 0) -> Tensor:
        """``(3, H, W)`` RGB in [0, 1] -> the translation ``(3, H, W)`` in [0, 1], in ``mode``
        (default: the checkpoint's test mode) with dropout seed ``seed`` in paper mode."""
        with self._lock:  # the translator's mode and seed are shared settings
            tr = self.translator
            default_mode = tr.mode
            tr.mode, tr.seed = mode or default_mode, seed
            try:
                return tr.translate_batch(image[None])[0]
            finally:
                tr.mode = default_mode

    def as_seen(self, image: Tensor) -> Tensor:
        """``image`` (RGB, or RGBA for a task that reads alpha) as the model sees it, shown as
        RGB: gray for a 1-channel task, an inpaint hole in black, and so on."""
        task = self.translator.task
        return task.input_to_image(task.image_to_input(image[None]))[0].clamp(0.0, 1.0)

    def describe(self) -> dict[str, Any]:
        """What the page needs: task, canvas, palette, size, modes, examples (JSON-ready)."""
        tr = self.translator
        return {
            "name": self.name,
            "source": self.source,
            "task": tr.task_name,
            "summary": tr.task.summary,
            "canvas": tr.task.canvas,
            "palette": [{"name": n, "color": list(c)} for n, c in tr.task.palette],
            "size": self.size,
            "mode": tr.mode,
            "modes": list(MODES),
            "generator": tr.config.get("generator", ""),
            "examples": len(self.examples),
            "examples_note": self.examples_note,
        }


def example_inputs(
    translator: Translator, count: int = EXAMPLE_COUNT, *, direction: str | None = None
) -> tuple[list[Tensor], str]:
    """The first ``count`` validation inputs of the checkpoint's data, as RGB images in [0, 1],
    preprocessed as ``i2i eval`` does, with a note saying where they came from (or why none).

    ``direction`` is the way the translator was loaded to translate (default: as trained). The
    examples are a convenience: data that cannot be read gives none, and the note says why.
    """
    from i2i.data import PreprocessConfig, build_dataset

    cfg = translator.config
    preprocess = PreprocessConfig(
        load_size=cfg.get("load_size", 286),
        crop_size=cfg.get("crop_size", 256),
        mode=cfg.get("preprocess", "resize_and_crop"),
        flip=False,
    )
    problems = []
    for split in EXAMPLE_SPLITS:
        try:
            dataset = build_dataset(
                translator.task,
                cfg.get("data"),
                split,
                direction=direction or cfg.get("direction"),
                preprocess=preprocess,
                train=False,
            )
            images = []
            for index in range(min(count, len(dataset))):
                x = dataset[index]["input"]
                images.append(translator.task.input_to_image(x[None])[0].clamp(0.0, 1.0))
        except Exception as exc:  # missing, moved or unreadable data: the demo runs without
            problems.append(str(exc) or type(exc).__name__)
            continue
        return images, f"the first {len(images)} {split} inputs of {dataset.folder}"
    return [], f"no example inputs: {problems[0] if problems else 'no data'}"


def load_models(
    checkpoints: Sequence[str | Path],
    *,
    catalog: Catalog | None = None,
    device: str = "auto",
    precision: str = "auto",
    direction: str | None = None,
    examples: int = EXAMPLE_COUNT,
) -> list[DemoModel]:
    """Load each checkpoint with :func:`i2i.inference.load` (``direction`` picks the way a
    two-way model translates); names are unique labels for the page (the run folder's name,
    numbered when two are alike)."""
    models: list[DemoModel] = []
    for path in checkpoints:
        translator = load_translator(
            path,
            catalog=catalog,
            device=device,
            precision=precision,
            direction=direction,
            bf16_weights=True,  # the demo calls the generator only through the Translator
        )
        base = Path(path).resolve().name or str(path)
        taken = {m.name for m in models}
        name, n = base, 2
        while name in taken:
            name, n = f"{base} ({n})", n + 1
        images, note = (
            example_inputs(translator, examples, direction=direction) if examples else ([], "")
        )
        models.append(DemoModel(name, translator, str(path), images, note))
    return models
