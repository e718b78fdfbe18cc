"""Export a checkpoint's generator to ONNX or TorchScript, in eval mode, with dynamic H and W.

The exported graph is the generator alone: input ``(B, in_channels, H, W)`` in [-1, 1], with
H and W multiples of its ``size_multiple``, to output ``(B, out_channels, H, W)``. The task's
pre- and postprocessing stay in Python; what they are is recorded as JSON in the file
(ONNX ``metadata_props`` key ``i2i``; TorchScript extra file ``i2i.json``), with the channel
counts and size multiple.

ONNX export needs the ``export`` extra (``pip install 'i2i[export]'``: onnx, onnxruntime,
onnxscript). It uses torch's TorchScript-based exporter (``dynamo=False``) with ``dynamic_axes``:
the newer ``torch.export`` route refuses generators that check their input size in Python.

>>> import tempfile, torch
>>> from pathlib import Path
>>> net = torch.nn.Conv2d(3, 3, 3, padding=1)
>>> path = export_torchscript(net, Path(tempfile.mkdtemp()) / "g.pt", in_channels=3, size=16,
...                           metadata={"task": "demo"})
>>> read_metadata(path)["task"]
'demo'
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from i2i.catalog import Catalog

FORMATS = ("onnx", "torchscript")
METADATA_KEY = "i2i"
TORCHSCRIPT_METADATA_FILE = "i2i.json"
INPUT_NAME, OUTPUT_NAME = "input", "output"
DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}


class ExportError(RuntimeError):
    """An export that cannot be done: missing extra, existing file, unsupported generator."""


@contextlib.contextmanager
def _quiet_tracing() -> Iterator[None]:
    """Silence the warnings tracing always raises (deprecations, Python-side shape checks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\..*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\..*")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        yield


@contextlib.contextmanager
def _atomic_target(path: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it when the block succeeds."""
    if path.exists() and not overwrite:
        raise ExportError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it")
    if path.exists() and path.is_dir():
        raise ExportError(f"{path} is a folder; expected a file name for the export")
    from i2i.data.io import atomic_path, file_in_the_way

    blocker = file_in_the_way(path.parent)
    if blocker is not None:
        raise ExportError(
            f"cannot write {path}: its parent folder {blocker} is a file, not a folder"
        )

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # the usual file mode, not mkstemp's 0600
        yield tmp


def _example(generator: nn.Module, in_channels: int, size: int) -> torch.Tensor:
    param = next(iter(generator.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    return torch.zeros(1, in_channels, size, size, device=device)


def export_onnx(
    generator: nn.Module,
    path: str | os.PathLike,
    *,
    in_channels: int,
    size: int,
    metadata: Mapping[str, Any],
    opset: int = 17,
    overwrite: bool = False,
) -> Path:
    """Write ``generator`` (put in eval mode) as an ONNX file with dynamic batch, H and W."""
    try:
        import onnx
    except ImportError as exc:
        raise ExportError(
            "ONNX export needs the onnx package: pip install 'i2i[export]' "
            "(onnx, onnxruntime, onnxscript)"
        ) from exc
    path = Path(path)
    generator.eval()
    example = _example(generator, in_channels, size)
    with _atomic_target(path, overwrite) as tmp:
        with _quiet_tracing(), torch.no_grad():
            try:
                torch.onnx.export(
                    generator,
                    (example,),
                    str(tmp),
                    dynamo=False,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: DYNAMIC_AXES, OUTPUT_NAME: DYNAMIC_AXES},
                    opset_version=opset,
                    do_constant_folding=True,
                )
            except (RuntimeError, ValueError) as exc:
                if "opset" not in str(exc).lower():
                    raise
                raise ExportError(
                    f"cannot export ONNX opset {opset} with torch {torch.__version__} "
                    f"({str(exc).splitlines()[0]}); the default is 17"
                ) from None
        model = onnx.load(str(tmp))
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(dict(metadata))
        onnx.save(model, str(tmp))
    return path


def export_torchscript(
    generator: nn.Module,
    path: str | os.PathLike,
    *,
    in_channels: int,
    size: int,
    metadata: Mapping[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write ``generator`` (put in eval mode) traced to TorchScript; any batch, H and W."""
    path = Path(path)
    generator.eval()
    example = _example(generator, in_channels, size)
    with _atomic_target(path, overwrite) as tmp, _quiet_tracing(), torch.no_grad():
        traced = torch.jit.trace(generator, example, check_trace=False)
        extra = {TORCHSCRIPT_METADATA_FILE: json.dumps(dict(metadata))}
        torch.jit.save(traced, str(tmp), _extra_files=extra)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The i2i metadata of an exported file (``.onnx`` by suffix, else TorchScript)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        import onnx

        props = {
            p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props
        }
        if METADATA_KEY not in props:
            raise ExportError(f"{path} has no {METADATA_KEY!r} metadata: not exported by i2i")
        return json.loads(props[METADATA_KEY])
    files = {TORCHSCRIPT_METADATA_FILE: ""}
    with _quiet_tracing():
        torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    if not files[TORCHSCRIPT_METADATA_FILE]:
        raise ExportError(f"{path} has no {TORCHSCRIPT_METADATA_FILE}: not exported by i2i")
    return json.loads(files[TORCHSCRIPT_METADATA_FILE])


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    fmt: str,
    catalog: Catalog | None = None,
    size: int | None = None,
    opset: int = 17,
    overwrite: bool = False,
    direction: str | None = None,
) -> Path:
    """Export the generator of ``checkpoint`` (or a run folder's latest) to ``out``; for a
    two-way model, the one translating in ``direction`` (default: the trained direction)."""
    from i2i import __version__
    from i2i.inference.translator import load

    if fmt not in FORMATS:
        raise ExportError(f"export format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    translator = load(
        checkpoint,
        catalog=catalog,
        mode="eval",
        device="cpu",
        precision="fp32",
        direction=direction,
    )
    m = translator.size_multiple
    # the smallest multiple of m of at least 64 px: a 4 px input would leave ResNet's
    # instance norms a single pixel to normalise
    size = m * -(-64 // m) if size is None else size
    if size % m:
        raise ExportError(
            f"--size must be a multiple of the generator's size multiple {m}, got {size}"
        )
    cfg = translator.config
    metadata = {
        "i2i_version": __version__,
        "task": translator.task_name,
        "generator": cfg.get("generator"),
        "in_channels": translator.task.in_channels,
        "out_channels": translator.task.out_channels,
        "size_multiple": m,
        "direction": direction or cfg.get("direction"),
        "input_range": [-1.0, 1.0],
        "test_mode": "eval",
        "step": cfg.get("step"),
        "checkpoint": str(translator.checkpoint),
    }
    kwargs = dict(in_channels=translator.task.in_channels, size=size, metadata=metadata)
    if fmt == "onnx":
        return export_onnx(translator.generator, out, opset=opset, overwrite=overwrite, **kwargs)
    return export_torchscript(translator.generator, out, overwrite=overwrite, **kwargs)
