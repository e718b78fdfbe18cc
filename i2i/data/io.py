"""Read and write images robustly: every failure is an :class:`ImageReadError` naming the file.

Images travel as float tensors in [0, 1], RGB, shaped ``(3, H, W)``. How files are converted:

- grayscale (``L``, ``1``), palette (``P``), ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: to RGB;
- 16-bit grayscale (``I;16*`` and ``I``, as PIL opens 16-bit PNG and TIFF): divided by 65535, so
  no precision is lost before the float conversion; 16-bit RGB PNGs are opened by PIL as 8-bit RGB;
- 32-bit float (``F``): taken as it is when inside [0, 1], refused otherwise;
- an alpha channel (``RGBA``, ``LA``, ``PA``, palette or RGB with a transparent colour): composited
  onto white, or kept as a fourth channel with ``keep_alpha=True``;
- EXIF orientation is applied, so a phone photo comes out upright; a broken EXIF block is ignored;
- multi-frame files (GIF, TIFF): the first frame.

Refused with a clear message: a missing or empty file, a folder, a file PIL does not recognise as an
image (a text file named ``.jpg``), a truncated or corrupt file, and an image with more pixels than
``PIL.Image.MAX_IMAGE_PIXELS`` (decompression-bomb protection; raise that limit only for files you
trust).

>>> import tempfile, torch
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> path = write_image(torch.rand(3, 8, 12), folder / "10.png")
>>> _ = write_image(torch.rand(3, 8, 12), folder / "2.png")
>>> read_image(path).shape
torch.Size([3, 8, 12])
>>> [p.name for p in list_images(folder)]
['2.png', '10.png']
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
"""File endings (any case) that :func:`list_images` picks up."""

_WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
SAVE_OPTIONS: dict[str, dict[str, int]] = {"PNG": {"compress_level": 1}}
"""Pillow's save options by format. PNG at zlib level 1 (OpenCV's default too) is as lossless
as any level: a 256 x 256 facades photo encodes in 10 ms instead of 24 ms at Pillow's default
level 6, and its file is about 5 % larger."""
_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


_WORKER_HEADER = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.")
_READ_MESSAGE = re.compile(r"^Cannot read image (.+?): (.*)$", re.DOTALL)


def _unwrap_worker_message(message: str, cls: type) -> str:
    """The original message of an error that a DataLoader worker re-raised in the main process.

    PyTorch rebuilds a worker's exception as ``cls(text)``, where ``text`` holds the worker's
    whole traceback; a person should see the message, not that traceback.

    >>> text = "Caught DataError in DataLoader worker process 0.\\nOriginal Traceback (most recent"
    >>> text += " call last):\\n  File ...\\ni2i.data.io.DataError: the message\\n"
    >>> _unwrap_worker_message(text, DataError)
    'the message'
    """
    if not _WORKER_HEADER.match(message):
        return message
    marker = f"{cls.__module__}.{cls.__qualname__}: "
    at = message.rfind(marker)
    return message[at + len(marker) :].rstrip("\n") if at >= 0 else message


class DataError(ValueError):
    """Base class of the data layer's errors: bad files and bad dataset folders.

    Raised inside a DataLoader worker, it reaches the main process with its own message (not the
    worker's traceback), and it pickles.
    """

    def __init__(self, message: str = "", *args: object):
        super().__init__(_unwrap_worker_message(str(message), type(self)), *args)


class ImageReadError(DataError):
    """An image file that cannot be read; ``path`` names it and ``reason`` says why.

    ``ImageReadError(message)`` with one argument rebuilds the error from its message (as
    pickling and DataLoader workers do).

    >>> err = ImageReadError("a/b.png", "the file is empty (0 bytes)")
    >>> str(err), ImageReadError(str(err)).path.name
    ('Cannot read image a/b.png: the file is empty (0 bytes)', 'b.png')
    """

    def __init__(self, path: str | os.PathLike, reason: str | None = None):
        if reason is None:  # rebuilt from a message
            message = _unwrap_worker_message(str(path), type(self))
            match = _READ_MESSAGE.match(message)
            if match is None:
                self.path, self.reason = Path(), message
                super().__init__(message)
                return
            path, reason = match.group(1), match.group(2)
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Cannot read image {self.path}: {reason}")

    def __reduce__(self) -> tuple:
        return (type(self), (self.path, self.reason))


class ImageTooLargeError(ImageReadError):
    """An image with more pixels than a caller's limit (see :func:`decode_image`)."""


class DatasetError(DataError):
    """A dataset folder that is missing, empty or inconsistent (the message names it)."""


def read_image(path: str | os.PathLike, *, keep_alpha: bool = False) -> Tensor:
    """Read an image file as a float tensor ``(3, H, W)`` in [0, 1], RGB.

    With ``keep_alpha=True`` an image that has an alpha channel comes back as ``(4, H, W)``
    (RGB plus alpha, straight, not premultiplied); other images still come back with 3 channels.
    Raises :class:`ImageReadError` naming the file when it cannot be read.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise ImageReadError(path, "it is a folder, expected an image file")
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    return _decode(path, path, size, keep_alpha=keep_alpha)


def decode_image(
    data: bytes,
    name: str = "upload",
    *,
    keep_alpha: bool = False,
    max_pixels: int | None = None,
) -> Tensor:
    """Decode image bytes (an upload) exactly as :func:`read_image` reads a file.

    ``name`` stands for the file in messages. ``max_pixels`` refuses larger images before their
    pixels are decoded, raising :class:`ImageTooLargeError` (``None``: only
    ``PIL.Image.MAX_IMAGE_PIXELS`` applies).

    >>> import io
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (5, 4)).save(buffer, format="PNG")
    >>> decode_image(buffer.getvalue()).shape
    torch.Size([3, 4, 5])
    >>> decode_image(b"hello", "notes.txt")
    Traceback (most recent call last):
    ...
    i2i.data.io.ImageReadError: Cannot read image notes.txt: not an image that PIL recognises (5 bytes; is it really a .txt file?)
    """
    import io

    return _decode(
        io.BytesIO(data), Path(name), len(data), keep_alpha=keep_alpha, max_pixels=max_pixels
    )


def _decode(
    source: Path | BinaryIO,
    path: Path,
    size: int,
    *,
    keep_alpha: bool,
    max_pixels: int | None = None,
) -> Tensor:
    """Open ``source`` (a file path or a byte stream), every failure an error naming ``path``."""
    if size == 0:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                if max_pixels is not None and img.width * img.height > max_pixels:
                    raise ImageTooLargeError(
                        path,
                        f"{img.width}x{img.height} is {img.width * img.height} pixels, more than "
                        f"the {max_pixels} allowed",
                    )
                img.load()
                img = _upright(img)
                tensor = pil_image_to_tensor(img, keep_alpha=keep_alpha, name=str(path))
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"Image size \((\d+) pixels\)", str(exc))
        pixels = f"{int(found.group(1))} pixels" if found else "more pixels than allowed"
        raise ImageReadError(
            path,
            f"refused as a possible decompression bomb: {pixels}, more than the "
            f"{Image.MAX_IMAGE_PIXELS} of PIL.Image.MAX_IMAGE_PIXELS; if you trust the file, "
            "raise that limit (in Python, before reading) or make the image smaller",
        ) from None
    except UnidentifiedImageError:
        raise ImageReadError(
            path,
            f"not an image that PIL recognises ({size} bytes; is it really a "
            f"{path.suffix or 'picture'} file?)",
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        detail = str(exc) or type(exc).__name__
        if "truncated" in detail.lower():
            reason = f"the file is truncated or incomplete ({detail})"
        else:
            reason = f"the file is corrupt or unsupported ({type(exc).__name__}: {detail})"
        raise ImageReadError(path, reason) from None
    return tensor


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag; a broken EXIF block leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # corrupt EXIF must not make a readable image unreadable
        return img


def pil_image_to_tensor(
    img: Image.Image, *, keep_alpha: bool = False, name: str = "the image"
) -> Tensor:
    """A decoded PIL image as ``(3, H, W)`` (or, with ``keep_alpha`` and transparency, ``(4, H,
    W)``) float in [0, 1], converted as this module's docstring says; ``name`` stands for the
    image in an :class:`ImageReadError`.

    >>> pil_image_to_tensor(Image.new("I;16", (3, 2), 65535)).unique().tolist()
    [1.0]
    """
    array = _to_array(img, Path(name), keep_alpha)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _to_array(img: Image.Image, path: Path, keep_alpha: bool) -> np.ndarray:
    """PIL image -> float32 ``(H, W, 3 or 4)`` in [0, 1]."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        gray = np.asarray(img).astype(np.float32)
        gray = np.clip(gray, 0.0, 65535.0) / 65535.0
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":
        gray = np.asarray(img, dtype=np.float32)
        if not np.isfinite(gray).all() or gray.min() < 0.0 or gray.max() > 1.0:
            raise ImageReadError(
                path,
                f"32-bit float image with values in [{np.nanmin(gray):g}, {np.nanmax(gray):g}]; "
                "expected values in [0, 1]",
            )
        return np.repeat(gray[:, :, None], 3, axis=2)
    has_alpha = mode in _ALPHA_MODES or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        if keep_alpha:
            return np.asarray(rgba, dtype=np.float32) / 255.0
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    rgb = img.convert("RGB")
    return np.asarray(rgb, dtype=np.float32) / 255.0


def natural_key(path: str | os.PathLike) -> list:
    """Sort key that orders numbers by value: ``2.jpg`` before ``10.jpg``.

    >>> sorted(["10.jpg", "2.jpg", "1_AB.jpg"], key=natural_key)
    ['1_AB.jpg', '2.jpg', '10.jpg']
    """
    name = Path(path).name
    parts = re.split(r"(\d+)", name.lower())
    # re.split with a group alternates text, number, text, ...: same types at the same positions.
    return [int(part) if i % 2 else part for i, part in enumerate(parts)] + [name]


def list_images(
    folder: str | os.PathLike, *, extensions: Iterable[str] = IMAGE_EXTENSIONS
) -> list[Path]:
    """The image files directly in ``folder``, in natural order (``2.jpg`` before ``10.jpg``).

    Hidden files (``.name``) are left out. Raises :class:`DatasetError` naming the folder when it
    is missing, not a folder, or holds no image.
    """
    folder = Path(folder)
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    if not folder.exists():
        raise DatasetError(f"Image folder {folder} does not exist")
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder; expected a folder of images")
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    files = [p for p in entries if p.suffix.lower() in exts and p.is_file()]
    if not files:
        found = (
            f"it holds {len(entries)} other entries (e.g. {sorted(p.name for p in entries)[:3]})"
            if entries
            else "it is empty"
        )
        raise DatasetError(
            f"No images in {folder}: expected files ending in {', '.join(sorted(exts))}; {found}"
        )
    return sorted(files, key=natural_key)


def write_image(img: Tensor, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``img`` (``(1, H, W)``, ``(3, H, W)`` or ``(4, H, W)``, float in [0, 1] or uint8).

    The format follows the suffix (``.png`` recommended: lossless). Parent folders are created.
    An existing file is never replaced unless ``overwrite=True`` (then atomically: temp + rename);
    otherwise :class:`FileExistsError` names it.
    """
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"Cannot write {path}: unknown image suffix {path.suffix!r}; "
            f"expected one of {', '.join(sorted(_WRITE_FORMATS))}"
        )
    pil = _to_pil(img, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        try:
            with open(path, "xb") as fh:
                try:
                    pil.save(fh, format=fmt, **SAVE_OPTIONS.get(fmt, {}))
                except BaseException:
                    fh.close()
                    path.unlink(missing_ok=True)
                    raise
        except FileExistsError:
            raise FileExistsError(
                f"{path} already exists; not overwriting it (pass overwrite=True to replace it)"
            ) from None
        return path
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        pil.save(fh, format=fmt, **SAVE_OPTIONS.get(fmt, {}))
    return path


def file_in_the_way(folder: str | os.PathLike) -> Path | None:
    """The entry that keeps ``folder`` from being (made) a folder: ``folder`` itself or the
    nearest existing entry above it, when that is a file or a dangling link; None otherwise.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "afile.txt"
    >>> _ = f.write_text("x")
    >>> file_in_the_way(f / "sub" / "deeper") == f, file_in_the_way(f.parent / "new") is None
    (True, True)
    """
    folder = Path(folder)
    for entry in (folder, *folder.parents):
        if entry.is_dir():
            return None
        if entry.exists() or entry.is_symlink():
            return entry
    return None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A new empty temporary file beside ``path``, renamed onto ``path`` when the block succeeds.

    Write the whole file to the yielded path (opening it with ``"wb"``, or with a library's save
    function); an error in the block removes the temporary file and leaves ``path`` as it was.
    The result gets the mode ``open(path, "w")`` gives a new file (``0o666`` less the umask),
    not the ``0o600`` of :func:`tempfile.mkstemp`, even when the writer recreated the file with
    another mode (as safetensors' ``save_file`` does).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "a.bin") as tmp:
    ...     _ = tmp.write_bytes(b"x")
    >>> _ = (folder / "plain.bin").write_bytes(b"y")  # made by open(path, "wb")
    >>> (folder / "a.bin").read_bytes(), [p.name for p in folder.iterdir() if p.name[0] == "."]
    (b'x', [])
    >>> (folder / "a.bin").stat().st_mode == (folder / "plain.bin").stat().st_mode
    True
    """
    path = Path(path)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    usual = tmp.stat().st_mode & 0o777  # what the umask left of 0o666
    try:
        yield tmp
        if tmp.stat().st_mode & 0o777 != usual:
            os.chmod(tmp, usual)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _to_pil(img: Tensor, path: Path) -> Image.Image:
    if not isinstance(img, Tensor) or img.ndim != 3 or img.shape[0] not in (1, 3, 4):
        shape = tuple(img.shape) if isinstance(img, Tensor) else type(img).__name__
        raise ValueError(f"Cannot write {path}: expected a (1|3|4, H, W) tensor, got {shape}")
    img = img.detach().cpu()
    if img.dtype != torch.uint8:
        img = (img.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    array = img.permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(array[:, :, 0]))  # mode L
    return Image.fromarray(np.ascontiguousarray(array))  # mode RGB or RGBA from the shape
