"""A task declares its data and preprocessing, nothing else.

Images travel between the data layer and a task as float tensors in [0, 1], RGB, shaped
``(3, H, W)``; model tensors are in [-1, 1] with the task's channel counts.

>>> import torch
>>> t = Task(summary="photo to photo", in_channels=3, out_channels=3, layout="aligned")
>>> x, y = t.make_pair((torch.rand(3, 8, 8), torch.rand(3, 8, 8)))
>>> x.shape, float(x.min()) >= -1.0
(torch.Size([3, 8, 8]), True)
>>> t.output_to_image(x, y).shape
torch.Size([3, 8, 8])
>>> t.canvas, Task(summary="edges", in_channels=1, out_channels=3, layout="single", canvas="pen").canvas
('color', 'pen')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is not imported until a task converts a tensor
    import torch
    from torch import Tensor

LAYOUTS = ("aligned", "folders", "single", "unpaired")
"""``aligned``: one file per pair, A|B side by side (the pix2pix format);
``folders``: ``A/`` and ``B/`` folders with matching file names;
``single``: one folder of photos from which the task derives its input;
``unpaired``: two domains with no pairs, ``trainA/`` and ``trainB/`` (the CycleGAN format)."""

DIRECTIONS = ("AtoB", "BtoA")

CANVASES = ("color", "gray", "pen", "palette", "holes")
"""What a person draws a task's input with in ``i2i demo``: ``color`` a colour brush, ``gray`` a
gray brush (colorize, thermal), ``pen`` a black pen on white (edges, sketches), ``palette`` the
task's label classes (label maps), ``holes`` an eraser that cuts pure-black holes (inpainting)."""


def to_model_range(img: Tensor) -> Tensor:
    """[0, 1] -> [-1, 1]."""
    return img * 2.0 - 1.0


def to_image_range(t: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return ((t + 1.0) * 0.5).clamp(0.0, 1.0)


def _paired_make_pair(images: Sequence[Tensor], generator: torch.Generator | None = None):
    src, dst = images
    return to_model_range(src), to_model_range(dst)


def _identity_input(img: Tensor) -> Tensor:
    return to_model_range(img)


def _rgb_output(x: Tensor, out: Tensor) -> Tensor:
    return to_image_range(out)


def _rgb_input(x: Tensor) -> Tensor:
    if x.shape[-3] == 1:
        return to_image_range(x).expand(*x.shape[:-3], 3, *x.shape[-2:])
    return to_image_range(x[..., :3, :, :])


@dataclass(frozen=True)
class Task:
    """What a translation problem is: channels, data layout and the conversions around the model.

    - ``make_pair(images, generator) -> (x, y)``: from the data layer's images (one tensor for
      ``single``, ``(source, target)`` already oriented by direction for the other layouts, the
      two drawn independently for ``unpaired``) to the model's input and target, per sample
      ``(C, H, W)``. ``generator`` drives any randomness (masks, for example) so that runs are
      reproducible.
    - ``image_to_input(img) -> x``: what ``i2i translate`` feeds the model for a user's image.
    - ``output_to_image(x, out) -> rgb``: a model output (with its input) as an RGB [0, 1] image.
    - ``input_to_image(x) -> rgb``: the model input as an RGB [0, 1] image, for sample grids.
    - ``palette``: for label-map tasks, the classes as ``(name, (r, g, b))`` with colours 0..255,
      in class-index order; what a demo draws with, what a segmentation score decodes labels by.
    - ``canvas``: what ``i2i demo`` draws the input with, one of :data:`CANVASES`; by default
      ``palette`` for a task with a palette, ``color`` otherwise.
    - ``reads_alpha``: whether ``image_to_input`` reads a user's alpha channel. ``i2i
      translate``, :meth:`i2i.inference.Translator.translate` and the demo's uploads then hand it
      an image with transparency as ``(4, H, W)`` (RGB, then alpha); images without it still
      come as ``(3, H, W)``. False: transparency is composited onto white first.

    All conversions accept ``(C, H, W)`` and ``(B, C, H, W)``.
    """

    summary: str
    in_channels: int
    out_channels: int
    layout: str
    direction: str = "AtoB"
    make_pair: Callable[..., tuple[Tensor, Tensor]] = _paired_make_pair
    image_to_input: Callable[[Tensor], Tensor] = _identity_input
    output_to_image: Callable[[Tensor, Tensor], Tensor] = _rgb_output
    input_to_image: Callable[[Tensor], Tensor] = _rgb_input
    defaults: dict[str, Any] = field(default_factory=dict)
    metrics: tuple[str, ...] = ("l1", "psnr", "ssim")
    default_data: Callable[[], Path] | None = None
    description: str = ""
    palette: tuple[tuple[str, tuple[int, int, int]], ...] = ()
    canvas: str = ""
    reads_alpha: bool = False

    def __post_init__(self) -> None:
        if not self.canvas:  # frozen: the default is filled in once, here
            object.__setattr__(self, "canvas", "palette" if self.palette else "color")
        if self.canvas not in CANVASES:
            raise ValueError(f"Task canvas must be one of {CANVASES}, got {self.canvas!r}")
        if self.canvas == "palette" and not self.palette:
            raise ValueError("Task canvas 'palette' needs a palette of (name, (r, g, b)) classes")
        if self.layout not in LAYOUTS:
            raise ValueError(f"Task layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"Task direction must be one of {DIRECTIONS}, got {self.direction!r}")
        for name in ("in_channels", "out_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Task {name} must be a positive int, got {value!r}")
        for entry in self.palette:
            name, rgb = entry
            if not (
                isinstance(name, str)
                and len(rgb) == 3
                and all(isinstance(c, int) and 0 <= c <= 255 for c in rgb)
            ):
                raise ValueError(f"Task palette entries must be (name, (r, g, b)), got {entry!r}")

    @property
    def class_names(self) -> tuple[str, ...]:
        """The palette's class names, in class-index order (empty without a palette)."""
        return tuple(name for name, _ in self.palette)

    @property
    def class_colors(self) -> tuple[tuple[int, int, int], ...]:
        """The palette's RGB colours 0..255, in class-index order (empty without a palette)."""
        return tuple(tuple(rgb) for _, rgb in self.palette)

    def check_input(self, x: Tensor, name: str = "task") -> None:
        """Raise a clear error when ``x`` is not a ``(B, in_channels, H, W)`` batch."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected (B, {self.in_channels}, H, W) for task {name!r}, got {tuple(x.shape)}"
            )


def _channels_input(channels: int) -> Callable[[Tensor], Tensor]:
    """RGB [0, 1] -> a model input of ``channels`` channels in [-1, 1] (grey for one)."""

    def image_to_input(img: Tensor) -> Tensor:
        if channels == 3:
            return to_model_range(img)
        grey = (
            0.299 * img[..., 0:1, :, :] + 0.587 * img[..., 1:2, :, :] + 0.114 * img[..., 2:3, :, :]
        )
        return to_model_range(grey.expand(*grey.shape[:-3], channels, *grey.shape[-2:]))

    return image_to_input


def _generic_output(x: Tensor, out: Tensor) -> Tensor:
    return _rgb_input(out)


def _channels_pair(in_channels: int, out_channels: int) -> Callable[..., tuple[Tensor, Tensor]]:
    """(source, target) RGB images -> model tensors of the given channel counts."""
    source, target = _channels_input(in_channels), _channels_input(out_channels)

    def make_pair(images: Sequence[Tensor], generator: torch.Generator | None = None):
        src, dst = images
        return source(src), target(dst)

    return make_pair


def reversed_task(task: Task) -> Task:
    """The task the other way round, for a two-way model's reverse mapping (CycleGAN's F).

    Its input is an RGB image of the target side (grey when that side has one channel); its
    output is shown as RGB. Task-specific conversions (Lab colour, masks) do not reverse.

    >>> import torch
    >>> t = Task(summary="edges to photo", in_channels=1, out_channels=3, layout="aligned")
    >>> r = reversed_task(t)
    >>> r.in_channels, r.out_channels, r.direction, tuple(r.image_to_input(torch.rand(3, 4, 4)).shape)
    (3, 1, 'BtoA', (3, 4, 4))
    """
    return Task(
        summary=f"{task.summary} (reversed)",
        in_channels=task.out_channels,
        out_channels=task.in_channels,
        layout=task.layout,
        direction="BtoA" if task.direction == "AtoB" else "AtoB",
        make_pair=_channels_pair(task.out_channels, task.in_channels),
        image_to_input=_channels_input(task.out_channels),
        output_to_image=_generic_output,
        input_to_image=_rgb_input,
        metrics=task.metrics,
        description=task.description,
    )
