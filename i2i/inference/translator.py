"""The Translator: a trained generator with its task's pre- and postprocessing.

``i2i.load(checkpoint)`` rebuilds everything from the checkpoint alone (the task by name through
the catalog, the generator from the stored config and weights) and returns a
:class:`Translator`. Any input size works: inputs are reflect-padded to the generator's
``size_multiple`` and the result is cropped back; inputs larger than ``tile`` pixels go through
the network in overlapping, blended tiles.

>>> import torch
>>> from i2i import Task
>>> net = torch.nn.Conv2d(3, 3, 3, padding=1)
>>> task = Task(summary="photo to photo", in_channels=3, out_channels=3, layout="aligned")
>>> tr = Translator(net, task, mode="eval")
>>> tr.translate(torch.rand(3, 30, 41)).shape
torch.Size([3, 30, 41])
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from i2i.catalog import Catalog
from i2i.engine.devices import (
    autocast,
    release_freed_memory,
    resolve_channels_last,
    resolve_cuda_graphs,
    resolve_device,
    resolve_precision,
)
from i2i.inference.cuda_graphs import GraphedForward
from i2i.inference.modes import check_mode, set_test_mode
from i2i.inference.options import DEFAULT_TILE, MODES, PRECISIONS
from i2i.inference.packing import is_packed, pack_convolutions, unpack_convolutions
from i2i.inference.padding import crop, pad_to_multiple
from i2i.inference.tiling import tiled_forward
from i2i.task import Task

#: layers whose weights autocast would cast to bf16 on every call anyway
_AUTOCAST_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)


def _set_weight_dtype(module: nn.Module, dtype: torch.dtype) -> None:
    """Store the weights and biases of ``module``'s convolutions and linear layers in ``dtype``
    (normalisation layers and everything else stay as they are).

    >>> net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    >>> _set_weight_dtype(net, torch.bfloat16)
    >>> net[0].weight.dtype, net[0].bias.dtype, net[1].weight.dtype
    (torch.bfloat16, torch.bfloat16, torch.float32)
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, _AUTOCAST_LAYERS):
                for t in (m.weight, m.bias):
                    if t is not None and t.dtype != dtype:
                        t.data = t.data.to(dtype)


def _size_multiple(generator: nn.Module, config: Mapping[str, Any]) -> int:
    value = getattr(generator, "size_multiple", None) or config.get("size_multiple") or 1
    return int(value)


def _set_memory_format(module: nn.Module, fmt: torch.memory_format) -> None:
    """Store the 4-D weights and buffers of ``module`` in ``fmt``; other tensors stay as they are."""
    with torch.no_grad():
        for t in (*module.parameters(), *module.buffers()):
            if t.dim() == 4 and not t.is_contiguous(memory_format=fmt):
                t.data = t.data.contiguous(memory_format=fmt)


class Translator:
    """Translate images with a generator in a test mode, at any size.

    - ``translate(img)``: a PIL image or an image path -> PIL image; a tensor ``(3, H, W)`` or
      ``(B, 3, H, W)`` in [0, 1] -> a tensor of the same shape (on the CPU).
    - ``translate_batch(images)``: ``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1]
      (``(B, 4, H, W)`` with alpha in, for a task that reads it: ``Task.reads_alpha``).
    - ``run(x)``: the model's own input ``(B, in_channels, H, W)`` in [-1, 1] -> its output.

    ``mode`` is ``"eval"`` (deterministic) or ``"paper"`` (dropout on, batch statistics);
    in paper mode ``seed`` (when not ``None``) makes every call draw the same dropout masks.
    ``precision`` is ``fp32``, ``bf16`` (autocast) or ``auto``: what
    :func:`i2i.engine.devices.resolve_precision` picks for the device (bf16 on GPUs that
    have it and on CPUs where it runs natively and faster, see ``i2i doctor``). ``tile`` bounds the side of what
    goes through the network at once; ``overlap`` (default ``tile // 8``) is the blending width.
    ``channels_last`` stores the generator's weights in NHWC (``None``: as
    :func:`i2i.engine.devices.resolve_channels_last` decides: on the CPU, where oneDNN runs
    the U-Net's convolutions faster so, and on CUDA GPUs in bf16; see benchmarks/README.md);
    outputs equal the NCHW ones up to float rounding.

    ``bf16_weights`` (what ``i2i translate`` asks :func:`load` for) lets the Translator store
    the generator's convolution weights its own way: in bf16 while the precision is bf16
    (half their memory, and none of the casts autocast would otherwise make on every call;
    the same results, as autocast rounds the same way), and on the CPU pre-packed for oneDNN
    where ``prepack`` says so (:mod:`i2i.inference.packing`: the weights' reorder done once
    instead of on every call; ``None``: as :func:`i2i.engine.devices.resolve_prepack`
    decides, which for fp32 on CPUs with AVX-512 waits for the first call and packs where
    it is one image). Setting another precision then reloads the fp32 weights from ``checkpoint``
    (those of ``role``, default its translator in the trained direction).

    ``cuda_graphs`` replays the generator's forward on a CUDA GPU as one CUDA graph per input
    size (:mod:`i2i.inference.cuda_graphs`; ``None``: as
    :func:`i2i.engine.devices.resolve_cuda_graphs` decides, on for CUDA); the same outputs.
    """

    def __init__(
        self,
        generator: nn.Module,
        task: Task,
        *,
        config: Mapping[str, Any] | None = None,
        task_name: str = "task",
        mode: str = "eval",
        device: str | torch.device = "cpu",
        precision: str = "auto",
        tile: int = DEFAULT_TILE,
        overlap: int | None = None,
        seed: int | None = 0,
        checkpoint: Path | None = None,
        channels_last: bool | None = None,
        bf16_weights: bool = False,
        role: str | None = None,
        prepack: bool | None = None,
        cuda_graphs: bool | None = None,
    ):
        self._pack_lock = threading.Lock()
        self.cuda_graphs = cuda_graphs
        self.generator = generator
        self.bf16_weights = bf16_weights
        self.prepack = prepack
        self.role = role
        self._weight_dtype = torch.float32
        self.channels_last = channels_last
        self.task = task
        self.task_name = task_name
        self.config: dict[str, Any] = dict(config or {})
        self.checkpoint = checkpoint
        self.size_multiple = _size_multiple(generator, self.config)
        self.mode = mode
        self.seed = seed
        self.precision = precision
        self.tile, self.overlap = tile, overlap
        self.device = torch.device("cpu")
        self.to(device)

    # ------------------------------------------------------------------ settings

    @property
    def generator(self) -> nn.Module:
        """The network that translates; assigning another one drops the captured CUDA graphs."""
        return self._generator

    @generator.setter
    def generator(self, value: nn.Module) -> None:
        self._generator = value
        self._graphed = GraphedForward(self._eager_forward)  # a new forward: capture it anew
        self._pack_if_single = False  # a network assigned later runs as it is given
        self._packed_lazily = False

    def _drop_graphs(self) -> None:
        """Forget the captured CUDA graphs (they read the weights they were captured with)."""
        self._graphed.clear()

    @property
    def uses_cuda_graphs(self) -> bool:
        """Whether the forward replays CUDA graphs (``cuda_graphs`` on or decided so, on CUDA,
        and the generator's forward could be captured)."""
        graphs = resolve_cuda_graphs(self.cuda_graphs, self.device)
        return graphs and self._graphed.failure is None

    @property
    def mode(self) -> str:
        """``"eval"`` or ``"paper"``; assign to switch."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._mode = check_mode(value)

    def set_mode(self, mode: str) -> Translator:
        """Switch the test mode and return ``self``."""
        self.mode = mode
        return self

    @property
    def precision(self) -> str:
        """``"fp32"`` or ``"bf16"`` (``"auto"`` is resolved for the current device; on a CUDA
        GPU without bf16 it is ``"fp16"``)."""
        return resolve_precision(self._precision, self.device, training=False)

    @precision.setter
    def precision(self, value: str) -> None:
        if value not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {value!r}")
        self._precision = value
        if hasattr(self, "device"):  # not while __init__ is still setting up
            self._sync_weight_dtype()

    @property
    def prepack(self) -> bool | None:
        """Pre-pack the convolution weights for oneDNN (with ``bf16_weights``, on the CPU):
        ``True``, ``False`` or ``None`` (auto); assign to switch."""
        return self._prepack

    @prepack.setter
    def prepack(self, value: bool | None) -> None:
        self._prepack = value
        if hasattr(self, "device"):  # not while __init__ is still setting up
            self._sync_weight_dtype()

    def _sync_weight_dtype(self) -> None:
        """bf16 weights while running bf16 (with ``bf16_weights``), else fp32 ones; packed
        where :meth:`packs_weights` says so, or at the first call where it is one image and
        auto packs this precision only so."""
        want = torch.bfloat16 if self.bf16_weights and self.precision == "bf16" else torch.float32
        pack = self.packs_weights
        lazy = not pack and self._packs_weights_at(batch=1)
        if (
            lazy
            and self._packed_lazily
            and is_packed(self.generator)
            and want == self._weight_dtype
        ):
            return  # packed at the first call, as these settings would pack it again
        self._packed_lazily = False
        self._pack_if_single = lazy
        changed = want != self._weight_dtype or is_packed(self.generator) != pack
        if want != self._weight_dtype or not pack:
            unpack_convolutions(self.generator)
        if want != self._weight_dtype:
            self._store_weights_as(want)
        # after the cast: bf16 weights are half the bytes to copy into the other layout
        _set_memory_format(self.generator, self._memory_format)
        if pack and not is_packed(self.generator):
            pack_convolutions(self.generator, channels_last=self.is_channels_last)
        if changed:
            self._drop_graphs()  # the graphs read the replaced weights
        if changed and self.device.type == "cpu":
            release_freed_memory()  # the replaced weights, not to be reused

    @property
    def _memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.is_channels_last else torch.contiguous_format

    @property
    def packs_weights(self) -> bool:
        """Whether the convolutions run with pre-packed weights whatever the batch
        (``bf16_weights`` on the CPU, ``prepack`` on or decided so for this CPU and
        precision)."""
        return self._packs_weights_at(batch=None)

    def _packs_weights_at(self, batch: int | None) -> bool:
        from i2i.engine.devices import resolve_prepack

        return self.bf16_weights and resolve_prepack(
            self.prepack, self.device, self.precision, batch=batch
        )

    def _pack_for_first_input(self, x: Tensor) -> None:
        """The packing left to the first call: packed (for this input's size) where it is
        one image."""
        with self._pack_lock:
            if self._pack_if_single:
                self._pack_if_single = False
                if x.shape[0] == 1:
                    pack_convolutions(self.generator, channels_last=self.is_channels_last)
                    self._packed_lazily = True

    def _store_weights_as(self, want: torch.dtype) -> None:
        if want == torch.float32:
            if self.checkpoint is None:
                raise ValueError(
                    "this Translator keeps bf16 weights and has no checkpoint to reload fp32 "
                    "ones from; build it with bf16_weights=False to switch precisions"
                )
            from i2i.engine.checkpoint import load_checkpoint

            _set_weight_dtype(self.generator, torch.float32)
            ckpt = load_checkpoint(self.checkpoint, discriminator=False)
            self.generator.load_state_dict(ckpt.weights[self.role or ckpt.translator_role()])
        else:
            _set_weight_dtype(self.generator, torch.bfloat16)
        self._weight_dtype = want

    def describe_speed(self) -> str:
        """How it runs, for the commands' output: ``cpu, bf16, channels_last`` and the like.

        >>> from i2i import Task
        >>> t = Task(summary="x", in_channels=3, out_channels=3, layout="aligned")
        >>> Translator(torch.nn.Conv2d(3, 3, 1), t, precision="fp32", channels_last=False).describe_speed()
        'cpu, fp32, NCHW'
        """
        layout = "channels_last" if self.is_channels_last else "NCHW"
        packed = ", packed weights" if is_packed(self.generator) else ""
        graphs = ", CUDA graphs" if self.uses_cuda_graphs else ""
        return f"{self.device}, {self.precision}, {layout}{packed}{graphs}"

    @property
    def tile(self) -> int:
        """Tile side in pixels: a multiple of ``size_multiple``, at least one multiple."""
        return self._tile

    @tile.setter
    def tile(self, value: int) -> None:
        m = self.size_multiple
        if value < 1:
            raise ValueError(f"tile must be a positive number of pixels, got {value}")
        self._tile = max(m, value // m * m)

    @property
    def overlap(self) -> int:
        """Tile overlap in pixels: a multiple of ``size_multiple``, at most ``tile - multiple``."""
        m = self.size_multiple
        wanted = self._tile // 8 if self._overlap is None else self._overlap
        return min(-(-wanted // m) * m, self._tile - m)

    @overlap.setter
    def overlap(self, value: int | None) -> None:
        if value is not None and value < 0:
            raise ValueError(f"tile overlap must be >= 0, got {value}")
        self._overlap = value

    def to(self, device: str | torch.device) -> Translator:
        """Move the generator to ``device`` (``"auto"``: CUDA when available) and return ``self``."""
        self.device = resolve_device(device)
        self._drop_graphs()
        unpack_convolutions(self.generator)  # packed weights live on the CPU only
        self.generator.to(self.device)
        nhwc = resolve_channels_last(
            self.channels_last, self.device, self.precision, training=False
        )
        self.is_channels_last = nhwc
        self._sync_weight_dtype()  # casts, then sets the layout, then packs
        return self

    # ------------------------------------------------------------------ running

    @contextlib.contextmanager
    def _context(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.no_grad())
            stack.enter_context(set_test_mode(self.generator, self.mode))
            stack.enter_context(autocast(self.device, self.precision))
            if self.mode == "paper" and self.seed is not None:
                cuda = [self.device] if self.device.type == "cuda" else []
                stack.enter_context(torch.random.fork_rng(devices=cuda))
                torch.manual_seed(self.seed)
            yield

    def _eager_forward(self, x: Tensor) -> Tensor:
        if self._pack_if_single:
            self._pack_for_first_input(x)
        return self.generator(x).float()

    def _forward(self, x: Tensor) -> Tensor:
        if self.uses_cuda_graphs:
            return self._graphed(x, context=(self.mode, self.precision, self.is_channels_last))
        return self._eager_forward(x)

    def run(self, x: Tensor) -> Tensor:
        """Generator output for model input ``x`` (B, in_channels, H, W), any H and W.

        Returns float32 ``(B, out_channels, H, W)`` on the translator's device.
        """
        self.task.check_input(x, self.task_name)
        x = x.to(self.device, torch.float32)
        padded, box = pad_to_multiple(x, self.size_multiple)
        with self._context():
            if max(padded.shape[-2:]) > self.tile:
                y = tiled_forward(
                    self._forward,
                    padded,
                    tile=self.tile,
                    overlap=self.overlap,
                    multiple=self.size_multiple,
                )
            else:
                y = self._forward(padded)
        return crop(y, box)

    def translate_batch(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` RGB in [0, 1] -> translated ``(B, 3, H, W)`` RGB in [0, 1] (CPU)."""
        if images.ndim != 4:
            raise ValueError(f"expected images (B, 3, H, W) in [0, 1], got {tuple(images.shape)}")
        x = self.task.image_to_input(images.to(self.device, torch.float32))
        out = self.run(x)
        return self.task.output_to_image(x, out).clamp(0.0, 1.0).cpu()

    def translate(self, image: Image.Image | Tensor | str | os.PathLike) -> Image.Image | Tensor:
        """Translate one image: PIL or path -> PIL image; tensor in [0, 1] -> tensor."""
        if isinstance(image, Tensor):
            if image.ndim == 3:
                return self.translate_batch(image[None])[0]
            return self.translate_batch(image)
        keep_alpha = self.task.reads_alpha
        if isinstance(image, Image.Image):
            tensor = pil_to_tensor(image, keep_alpha=keep_alpha)
        elif isinstance(image, (str, os.PathLike)):
            from i2i.data import read_image

            tensor = read_image(image, keep_alpha=keep_alpha)
        else:
            raise TypeError(
                f"translate() takes a PIL image, an image path or a (3, H, W) tensor in [0, 1]; "
                f"got {type(image).__name__}"
            )
        return tensor_to_pil(self.translate_batch(tensor[None])[0])

    __call__ = translate

    def __repr__(self) -> str:
        where = f" from {self.checkpoint}" if self.checkpoint else ""
        return (
            f"Translator(task={self.task_name!r}, generator={self.config.get('generator', '?')!r}"
            f", mode={self.mode!r}, device={str(self.device)!r}{where})"
        )


def pil_to_tensor(image: Image.Image, *, keep_alpha: bool = False) -> Tensor:
    """A PIL image as ``(3, H, W)`` float RGB in [0, 1], converted as :func:`i2i.data.read_image`
    converts a file's (transparency composited onto white, or with ``keep_alpha`` kept as a
    fourth channel).

    >>> pil_to_tensor(Image.new("LA", (5, 4))).shape
    torch.Size([3, 4, 5])
    >>> pil_to_tensor(Image.new("LA", (5, 4)), keep_alpha=True).shape
    torch.Size([4, 4, 5])
    """
    from i2i.data.io import pil_image_to_tensor

    return pil_image_to_tensor(image, keep_alpha=keep_alpha)


def tensor_to_pil(image: Tensor) -> Image.Image:
    """``(3, H, W)`` in [0, 1] -> an RGB PIL image (rounded to 8 bits).

    >>> tensor_to_pil(torch.ones(3, 4, 5)).size
    (5, 4)
    """
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected an image (3, H, W) in [0, 1], got {tuple(image.shape)}")
    array = (image.detach().float().clamp(0, 1).expand(3, -1, -1) * 255.0).round()
    return Image.fromarray(array.to(torch.uint8).permute(1, 2, 0).cpu().numpy(), mode="RGB")


def load(
    checkpoint: str | os.PathLike,
    *,
    catalog: Catalog | None = None,
    device: str | torch.device = "cpu",
    mode: str | None = None,
    precision: str = "auto",
    tile: int = DEFAULT_TILE,
    overlap: int | None = None,
    seed: int | None = 0,
    channels_last: bool | None = None,
    direction: str | None = None,
    bf16_weights: bool = False,
    prepack: bool | None = None,
    cuda_graphs: bool | None = None,
) -> Translator:
    """A :class:`Translator` for a checkpoint folder, or a run folder (its latest checkpoint).

    ``mode`` defaults to the checkpoint's recorded ``test_mode``. ``catalog`` defaults to that of
    the installed plugins; the checkpoint's task must be registered in it. ``direction``
    (``AtoB``/``BtoA``) picks the role that translates that way in a two-way model (CycleGAN's
    G or F); by default the direction the run trained. ``precision`` ``auto`` is bf16 where
    :func:`i2i.engine.devices.resolve_precision` says so (``i2i doctor``). ``bf16_weights``
    (what ``i2i translate`` sets) keeps the convolutions' weights in bf16 while running bf16:
    faster, less memory, the same outputs, but ``translator.generator`` is then no longer an
    fp32 module to call on its own; with it, ``prepack`` (``None``: auto) pre-packs the
    convolutions' weights for oneDNN on the CPU (:mod:`i2i.inference.packing`).
    ``cuda_graphs`` (``None``: on for CUDA) replays the forward as CUDA graphs.
    """
    from i2i.engine.checkpoint import CheckpointError, build_role, load_checkpoint
    from i2i.task import reversed_task

    ckpt = load_checkpoint(checkpoint, discriminator=False)
    if catalog is None:
        from i2i import catalog as default_catalog

        catalog = default_catalog()
    cfg = ckpt.config
    task_name = cfg.get("task")
    if not task_name:
        raise CheckpointError(f"{ckpt.path}/config.json names no 'task'")
    if task_name not in catalog.tasks:
        raise CheckpointError(
            f"Checkpoint {ckpt.path} was trained for task {task_name!r}, which no installed "
            f"plugin registers (tasks: {', '.join(catalog.tasks.choices()) or 'none'}); "
            "install the plugin that provides it"
        )
    task: Task = catalog.tasks.get(task_name).obj
    for key in ("in_channels", "out_channels"):
        if key in cfg and cfg[key] != getattr(task, key):
            raise CheckpointError(
                f"Checkpoint {ckpt.path} has {key}={cfg[key]} but task {task_name!r} now "
                f"declares {getattr(task, key)}"
            )
    trained = cfg.get("direction") or task.direction
    role = ckpt.translator_role(direction)
    generator = build_role(ckpt, role, catalog)
    if (direction or trained) != trained:
        task = reversed_task(task)
    recorded = cfg.get("test_mode") or "eval"
    if mode is None and recorded not in MODES:
        raise CheckpointError(
            f"{ckpt.path}/config.json: test_mode must be one of {', '.join(MODES)}, got "
            f"{recorded!r}; pass a mode (i2i translate --mode)"
        )
    return Translator(
        generator,
        task,
        config=cfg,
        task_name=task_name,
        mode=mode or recorded,
        device=device,
        precision=precision,
        tile=tile,
        overlap=overlap,
        seed=seed,
        checkpoint=ckpt.path,
        channels_last=channels_last,
        bf16_weights=bf16_weights,
        role=role,
        prepack=prepack,
        cuda_graphs=cuda_graphs,
    )
