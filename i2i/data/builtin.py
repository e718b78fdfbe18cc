"""Built-in default data: 256x256 tiles of public-domain / CC0 photographs bundled with scikit-image.

Nothing is downloaded: the source photos are files inside the installed ``skimage/data`` folder
(never the ones ``skimage.data`` fetches on demand). On first use they are cut into tiles, without
any randomness, and written as PNG to ``$I2I_CACHE/builtin-v1`` (default ``~/.cache/i2i``; ``$XDG_CACHE_HOME/i2i``
when that is set), with ``train/`` and ``val/`` folders. See ``BUILTIN_DATA.md`` for origin and licences.

>>> len(tiles(Image.new("RGB", (384, 256))))  # 2 tiles at 256 px, 6 at 512 px
8
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from i2i.data.io import DatasetError

VERSION = 1
TILE = 256
CACHE_ENV = "I2I_CACHE"


@dataclass(frozen=True)
class Source:
    """One bundled photograph and its licence, as stated in scikit-image's ``skimage.data``."""

    file: str
    title: str
    licence: str


SOURCES: tuple[Source, ...] = (
    Source("astronaut.png", "Astronaut Eileen Collins (NASA)", "public domain"),
    Source("chelsea.png", "Chelsea the cat (Stefan van der Walt)", "CC0"),
    Source("coffee.png", "Coffee cup (Rachel Michetti)", "CC0"),
    Source("rocket.jpg", "DSCOVR launch on Falcon 9 (SpaceX)", "public domain"),
    Source("hubble_deep_field.jpg", "Hubble eXtreme Deep Field (NASA)", "public domain"),
    Source("retina.jpg", "Fundus photograph of a left eye (Mikael Haggstrom)", "CC0"),
)
SCALES = (1, 2)  # the short side is resized to TILE * scale, then cut into TILE x TILE tiles


def cache_root() -> Path:
    """``$I2I_CACHE``, else ``$XDG_CACHE_HOME/i2i``, else ``~/.cache/i2i``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "i2i"


def skimage_data_dir() -> Path:
    """The ``data`` folder of the installed scikit-image package (found without importing it)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "The built-in data needs scikit-image, which is not installed: pip install scikit-image"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _positions(total: int, count: int) -> list[int]:
    """``count`` tile offsets spread evenly from 0 to ``total - TILE``."""
    if count == 1:
        return [(total - TILE) // 2]
    return [round(i * (total - TILE) / (count - 1)) for i in range(count)]


def tiles(img: Image.Image) -> list[Image.Image]:
    """Deterministic TILE x TILE tiles of ``img`` at every scale in ``SCALES``."""
    out = []
    w, h = img.size
    for scale in SCALES:
        short = TILE * scale
        factor = short / min(w, h)
        size = (max(short, round(w * factor)), max(short, round(h * factor)))
        resized = img.resize(size, Image.Resampling.LANCZOS)
        cols = _positions(size[0], math.ceil(size[0] / TILE))
        rows = _positions(size[1], math.ceil(size[1] / TILE))
        for top in rows:
            for left in cols:
                out.append(resized.crop((left, top, left + TILE, top + TILE)))
    return out


def builtin_data_root() -> Path:
    """The folder with ``train/`` and ``val/`` built-in photos, made on first use (offline)."""
    return cached_folder(f"builtin-v{VERSION}", _materialise)


def cached_folder(
    name: str, make: Callable[[Path], dict[str, Any]], *, cache: Path | None = None
) -> Path:
    """``cache / name`` (``cache`` defaults to :func:`cache_root`), made once by ``make``.

    ``make(folder)`` writes into an empty staging folder and returns a manifest whose ``"files"``
    lists the paths it wrote (relative to ``folder``); the manifest is saved as ``MANIFEST.json``
    and the folder moved into place in one step, so a crash never leaves a half-made folder in
    use. A folder with a missing or empty listed file is made again; when two processes race,
    the first complete one wins.

    >>> def make(folder):
    ...     (folder / "hello.txt").write_text("hi")
    ...     return {"files": ["hello.txt"]}
    >>> cache = Path(tempfile.mkdtemp())
    >>> (cached_folder("demo-v1", make, cache=cache) / "hello.txt").read_text()
    'hi'
    """
    root = (cache_root() if cache is None else Path(cache)) / name
    if _complete(root):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root.parent))
    try:
        manifest = make(staging)
        (staging / "MANIFEST.json").write_text(json.dumps(manifest, indent=2))
        if root.exists() and not _complete(root):
            shutil.rmtree(root)  # a partial folder from an interrupted older write
        try:
            os.replace(staging, root)
        except OSError:
            if not _complete(root):  # another process finished first: use its copy
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _complete(root: Path) -> bool:
    manifest = root / "MANIFEST.json"
    if not manifest.is_file():
        return False
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError, OSError):
        return False
    return all((root / f).is_file() and (root / f).stat().st_size > 0 for f in files)


def _materialise(out: Path) -> dict[str, Any]:
    src_dir = skimage_data_dir()
    files = []
    for source in SOURCES:
        path = src_dir / source.file
        if not path.is_file():
            raise DatasetError(
                f"Built-in data source {path} is missing from the installed scikit-image; "
                "reinstall it (pip install --force-reinstall scikit-image)"
            )
        with Image.open(path) as img:
            parts = tiles(img.convert("RGB"))
        stem = Path(source.file).stem
        for k, tile in enumerate(parts):
            split = "val" if k == len(parts) - 1 else "train"  # the last tile of each photo
            rel = f"{split}/{stem}_{k:02d}.png"
            (out / split).mkdir(parents=True, exist_ok=True)
            tile.save(out / rel, format="PNG")
            files.append(rel)
    return {
        "version": VERSION,
        "tile": TILE,
        "sources": [source.__dict__ for source in SOURCES],
        "files": files,
    }
