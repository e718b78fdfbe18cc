"""Devices, numeric precision, memory format, autocast, gradient scaling and the Adam flavour.

The one place that decides how training, validation and inference run: ``i2i run``,
``i2i translate``, ``i2i eval`` and :class:`~i2i.inference.Translator` all resolve their
``device`` and ``precision`` here. ``precision="auto"`` picks, on CUDA GPUs, fp32 for training
where cuDNN runs fp32 convolutions as TF32 on the tensor cores (Ampere and later) and bf16 for
inference, bf16 for both where TF32 is off, fp16 with a gradient scaler on GPUs without bf16;
on the CPU, for both, what :func:`i2i.engine.tuning.speed_choices` decided for this machine
(bf16 where the CPU runs it natively and faster, fp32 elsewhere). :func:`resolve_channels_last` does the same for the
memory format and :func:`resolve_prepack` for inference's pre-packed weights (``None`` = auto).

>>> resolve_device("cpu")
device(type='cpu')
>>> resolve_precision("fp32", torch.device("cpu"), training=True)
'fp32'
>>> with autocast(torch.device("cpu"), "fp32"):
...     (torch.ones(2) * 2).dtype
torch.float32
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

import torch
from torch import nn

from i2i.config import PRECISIONS

if TYPE_CHECKING:
    from i2i.engine.bf16_copies import Bf16WeightCopies

#: The torch dtype of each training precision but "auto" (the names: i2i.config.PRECISIONS).
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    """The C library, looked up once (``find_library`` runs helper programs); ``None`` where
    there is none to load."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """glibc: serve every allocation from the heap and keep freed memory there for reuse.

    Otherwise tensors of 32 MiB and more (the fp32 gradients of the U-Net's 8M-weight layers,
    batch-8 activations) are ``mmap``-ed and unmapped on every step, which pays their page
    faults again each time: 3-20 % of a CPU training step, about 25 % of batch-8 inference
    (benchmarks/README.md). The cost: the process keeps its peak memory. Process-wide and not
    undoable; returns False where the C library is not glibc (nothing changes then).
    """
    libc = _libc()
    try:
        return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
        )
    except AttributeError:  # no C library found, or one without mallopt (not glibc)
        return False


def release_freed_memory() -> bool:
    """glibc: hand the heap's free memory back to the system now (``malloc_trim(0)``).

    For a one-off release after a large free that will not be reused, such as the fp32 weights
    a :class:`~i2i.inference.Translator` replaces with bf16 or pre-packed ones: with
    :func:`keep_freed_memory` on, the process would otherwise hold them until it exits, and
    whether later allocations reuse them varies from run to run. Returns False where the C
    library is not glibc.

    >>> isinstance(release_freed_memory(), bool)
    True
    """
    try:
        _libc().malloc_trim(0)
        return True
    except AttributeError:  # no C library found, or one without malloc_trim (not glibc)
        return False


def tune_cpu_process() -> None:
    """What the ``i2i`` commands set once at start: flush denormals to zero (they are slow on
    CPUs and meaningless here) and keep freed memory (:func:`keep_freed_memory`).

    Process-wide, so the Python API leaves it to its caller.
    """
    torch.set_flush_denormal(True)
    keep_freed_memory()


class DeviceUnavailableError(RuntimeError):
    """A device was asked for that this machine does not have (the commands print it as an
    error, without a traceback)."""


def resolve_device(name: str | torch.device, local_rank: int | None = None) -> torch.device:
    """``auto`` -> CUDA (this process's GPU under torchrun), else MPS, else CPU; a device this
    machine lacks raises :class:`DeviceUnavailableError`."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError("--device cuda was asked for, but torch sees no CUDA GPU")
        return torch.device("cuda", local_rank or 0)
    if name == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailableError("--device mps was asked for, but MPS is not available")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceUnavailableError(
            f"--device {name!r} names no device; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(f"--device {name} was asked for, but torch sees no CUDA GPU")
    return device


@lru_cache(maxsize=1)
def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bf16 natively through oneDNN (AVX512-BF16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cuda_tf32_convolutions(device: torch.device) -> bool:
    """Whether fp32 convolutions on the CUDA GPU ``device`` run as TF32 on its tensor cores:
    compute capability 8.0 or later (Ampere on) with cuDNN's ``allow_tf32`` on, PyTorch's
    default, which the official pix2pix and CycleGAN code therefore also train with there.

    >>> cuda_tf32_convolutions(torch.device("cpu"))
    False
    """
    if device.type != "cuda" or not torch.backends.cudnn.allow_tf32:
        return False
    return torch.cuda.get_device_capability(device)[0] >= 8


def resolve_precision(name: str, device: torch.device, *, training: bool) -> str:
    """The concrete precision (fp32, bf16 or fp16) for ``name`` on ``device``, for training
    (``i2i run``, its validation and samples) or for inference.

    ``auto`` on a CUDA GPU with TF32 convolutions trains in fp32: on an H200 that ran 0.94-1.24x
    the fp32 reference at pix2pix's and CycleGAN's sizes, against 0.82-1.02x for bf16 autocast,
    whose weight and gradient casts cost kernel launches where launches bound the step
    (benchmarks/README.md, *GPU*); inference stays bf16 there (replayed as CUDA graphs).

    >>> resolve_precision("auto", torch.device("cpu"), training=True) in ("fp32", "bf16")
    True
    """
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {name!r}")
    if name != "auto":
        if name == "fp16" and device.type == "cpu":
            raise ValueError("--precision fp16 needs a GPU; use bf16 or fp32 on the CPU")
        if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("--precision bf16: this GPU does not support bf16; use fp16")
        return name
    if device.type == "cuda":
        if training and cuda_tf32_convolutions(device):
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_bf16_supported():
        from i2i.engine.tuning import speed_choices

        return speed_choices().precision
    return "fp32"


def resolve_channels_last(
    value: bool | None, device: torch.device, precision: str, *, training: bool
) -> bool:
    """Whether weights and activations go channels_last (NHWC); ``None`` decides.

    On the CPU: for inference always (oneDNN runs the U-Net faster so in fp32 and bf16); for
    training in the precisions :func:`i2i.engine.tuning.speed_choices` names (measured faster
    with bf16 autocast, and in fp32 with AVX-512; slower in fp32 with AVX2 alone). On a CUDA
    GPU: for inference in bf16 (the tensor cores' layout; on an H200 1.08-1.37x NCHW,
    benchmarks/README.md, *GPU*; fp16 on GPUs without bf16 was not measured and stays NCHW),
    not for training (no steady gain there). Off on other devices.

    >>> cpu, gpu = torch.device("cpu"), torch.device("cuda")
    >>> resolve_channels_last(None, cpu, "fp32", training=False), resolve_channels_last(
    ...     False, cpu, "fp32", training=False)
    (True, False)
    >>> [resolve_channels_last(None, gpu, p, training=t) for p, t in
    ...  (("bf16", False), ("fp16", False), ("fp32", False), ("bf16", True))]
    [True, False, False, False]
    """
    if value is not None:
        return bool(value)
    if device.type == "cuda":
        return not training and precision == "bf16"
    if device.type != "cpu":
        return False
    from i2i.engine.tuning import speed_choices

    choices = speed_choices()
    if not training:
        return choices.channels_last_infer
    return precision in choices.channels_last_train


def resolve_prepack(
    value: bool | None, device: torch.device, precision: str, batch: int | None = None
) -> bool:
    """Whether inference runs its convolutions with weights pre-packed for oneDNN
    (:mod:`i2i.inference.packing`); ``None`` decides.

    Only on the CPU, with a torch that has the packed ops. ``None``: where
    :func:`i2i.engine.tuning.speed_choices` says packing pays for ``precision`` on this CPU,
    at any batch (``prepack_infer``) or, given the ``batch`` of the generator's first input,
    for one image at a time (``prepack_infer_single``: fp32 where oneDNN has AVX-512).

    >>> resolve_prepack(True, torch.device("meta"), "fp32"), resolve_prepack(False, torch.device("cpu"), "bf16")
    (False, False)
    """
    from i2i.inference.packing import packing_available

    if device.type != "cpu" or not packing_available() or value is False:
        return False
    if value:
        return True
    from i2i.engine.tuning import speed_choices

    choices = speed_choices()
    if precision in choices.prepack_infer:
        return True
    return batch == 1 and precision in choices.prepack_infer_single


def resolve_cuda_graphs(
    value: bool | None, device: torch.device, *, training: bool = False
) -> bool:
    """Whether inference replays the generator's forward as CUDA graphs, one per input size
    (:mod:`i2i.inference.cuda_graphs`), or training its whole step where the step allows it
    (``training``, :mod:`i2i.engine.graphed_step`). ``None`` decides: inference on wherever
    the device is a CUDA GPU, where eager kernels at pix2pix's sizes wait on their launches
    (benchmarks/README.md, *GPU*); training off, asked for with ``--cuda-graphs``, until a
    whole ``i2i run`` has trained that way on a GPU (benchmarks/README.md, *GPU: 2026-12-04
    18:01*). Never off a CUDA device.

    >>> resolve_cuda_graphs(None, torch.device("cpu")), resolve_cuda_graphs(True, torch.device("cpu"))
    (False, False)
    >>> resolve_cuda_graphs(None, torch.device("cuda")), resolve_cuda_graphs(False, torch.device("cuda"))
    (True, False)
    >>> resolve_cuda_graphs(None, torch.device("cuda"), training=True)
    False
    """
    if training and value is None:
        return False
    return device.type == "cuda" and value is not False


def describe_gpu(index: int = 0) -> str | None:
    """The CUDA GPU ``index`` in words (name, compute capability, bf16, memory); None
    without one.

    >>> describe_gpu() is None or "compute" in describe_gpu()
    True
    """
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(index)
    bf16 = "bf16" if torch.cuda.is_bf16_supported() else "no bf16 (fp16 autocast)"
    return (
        f"{props.name}: compute {props.major}.{props.minor}, {bf16}, "
        f"{props.total_memory / 2**30:.0f} GiB"
    )


def use_cudnn_autotuner(device: torch.device, fixed_sizes: bool) -> bool:
    """On a CUDA device, let cuDNN time its convolution kernels once per shape and keep the
    fastest (``torch.backends.cudnn.benchmark``) where every training batch has the same size;
    returns whether it is on. The official pix2pix code does the same (on unless
    ``--preprocess scale_width``): with fixed crops the timing is paid once, at the first
    step. Process-wide; other devices are left as they are.

    >>> use_cudnn_autotuner(torch.device("cpu"), fixed_sizes=True)
    False
    """
    if device.type != "cuda":
        return False
    torch.backends.cudnn.benchmark = bool(fixed_sizes)
    return bool(fixed_sizes)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed-precision autocast for bf16/fp16; a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def make_grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (elsewhere it passes calls through)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


@lru_cache(maxsize=8)
def fused_adam_supported(device_type: str) -> bool:
    """Whether ``torch.optim.Adam(fused=True)`` runs on this device type."""
    try:
        p = nn.Parameter(torch.zeros(2, device=device_type))
        opt = torch.optim.Adam([p], fused=True)
        p.grad = torch.ones_like(p)
        opt.step()
        return True
    except (RuntimeError, TypeError, ValueError):
        return False


def keeps_bf16_weight_copies(
    device: torch.device, precision: str, *, distributed: bool = False, compiled: bool = False
) -> bool:
    """Whether training keeps bf16 copies of the weights that Adam updates
    (:mod:`i2i.engine.bf16_copies`): on the CPU under bf16 autocast, in one process, eager.

    It saves the per-step casts of every weight to bf16 and of every gradient back to fp32
    (``copy_`` 83 -> 17 ms of a 430-550 ms batch-1 U-Net step on the AMX machine; the whole
    step 1.01-1.16x faster, benchmarks/README.md item 13): memory traffic saved, not a
    per-CPU choice. Not under DDP (whose gradient hooks sit on the fp32 weights) nor
    ``torch.compile`` (the copies' hooks stand aside while dynamo traces, so they would only
    cost memory).

    >>> keeps_bf16_weight_copies(torch.device("cpu"), "bf16"), keeps_bf16_weight_copies(torch.device("cpu"), "fp32")
    (True, False)
    """
    return (
        device.type == "cpu"
        and precision == "bf16"
        and not distributed
        and not compiled
        and fused_adam_supported(device.type)
    )


def describe_adam(device: torch.device, precision: str) -> str:
    """The Adam that :func:`make_adam` gives a one-process eager run on ``device`` at
    ``precision``, in words (for ``i2i doctor``).

    >>> describe_adam(torch.device("cpu"), "fp32")
    'fused Adam, flat over channels_last weights'
    """
    if keeps_bf16_weight_copies(device, precision):
        from i2i.engine.bf16_copies import COMPILE_MIN_WEIGHTS, cxx_compiler, wanted_cxx

        cxx = cxx_compiler()
        how = (
            f"one update compiled by inductor with {cxx} for models of "
            f"{COMPILE_MIN_WEIGHTS // 1_000_000}M+ weights"
            if cxx
            else f"updated uncompiled: no {wanted_cxx()} on the PATH for inductor "
            "(set $CXX to a C++ compiler)"
        )
        return f"fused Adam with bf16 weight copies ({how})"
    if fused_adam_supported(device.type):
        return "fused Adam, flat over channels_last weights"
    return "multi-tensor (foreach) Adam"


def make_adam(
    params: Iterable[nn.Parameter],
    *,
    lr: float,
    betas: tuple[float, float],
    device: torch.device,
    copies: Bf16WeightCopies | None = None,
) -> torch.optim.Adam:
    """Adam, fused where the device supports it, else the multi-tensor (foreach) kernel.

    The fused one is :class:`~i2i.engine.flat_adam.FlatFusedAdam`: the same update and
    state dict, without copying channels_last weights on every step. With ``copies`` (see
    :func:`keeps_bf16_weight_copies`) it is :class:`~i2i.engine.bf16_copies.Bf16CopyAdam`,
    which also keeps those bf16 weight copies current.
    """
    from i2i.engine.flat_adam import FlatFusedAdam

    params = list(params)
    if copies is not None:
        from i2i.engine.bf16_copies import Bf16CopyAdam

        return Bf16CopyAdam(params, copies, lr=lr, betas=betas, fused=True)
    if fused_adam_supported(device.type):
        return FlatFusedAdam(params, lr=lr, betas=betas, fused=True)
    return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)
