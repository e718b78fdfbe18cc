"""Download and unpack the pix2pix datasets: resumable, verified when a checksum is known, safe.

``fetch_dataset("facades", root)`` downloads ``{base}/facades.tar.gz`` (base: the Berkeley
server, or ``$I2I_DATASETS_URL``) into ``root/facades.tar.gz.part``, resuming a partial file with
an HTTP Range request, checks its SHA-256 when one is known (given by the caller: the table holds
none that this project did not compute itself), then extracts it into ``root`` after checking
every member: no absolute paths, no ``..``, no link pointing outside, no device files. A hostile
archive is refused before anything is written.

>>> dataset_url("facades", base="http://127.0.0.1:8000/d")
'http://127.0.0.1:8000/d/facades.tar.gz'
"""

from __future__ import annotations

import hashlib
import http.client
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

DEFAULT_BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
URL_ENV = "I2I_DATASETS_URL"
CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")  # C:\x and C:x are absolute on Windows


@dataclass(frozen=True)
class RemoteDataset:
    """A dataset archive on the server; ``sha256`` only when this project has computed it."""

    name: str
    summary: str
    sha256: str | None = None


PIX2PIX_DATASETS: dict[str, RemoteDataset] = {
    d.name: d
    for d in (
        RemoteDataset("facades", "CMP Facades, 400 train / 100 val / 106 test A|B pairs"),
        RemoteDataset("cityscapes", "Cityscapes photo|labels, 2975 train / 500 val"),
        RemoteDataset("maps", "Google Maps aerial|map, 1096 train / 1098 val"),
        RemoteDataset("edges2shoes", "UT Zappos50K edges|photo, about 50k pairs (2 GB)"),
        RemoteDataset("edges2handbags", "iGAN handbags edges|photo, about 137k pairs (8 GB)"),
        RemoteDataset("night2day", "Transient Attributes night|day, about 20k pairs"),
    )
}


class FetchError(RuntimeError):
    """A download or extraction that failed; the message says what to do."""


class UnsafeArchiveError(FetchError):
    """An archive member that would land outside the target folder, or is not a plain file."""


def dataset_url(name: str, base: str | None = None) -> str:
    """The archive URL of dataset ``name``."""
    base = base or os.environ.get(URL_ENV) or DEFAULT_BASE_URL
    return f"{base.rstrip('/')}/{name}.tar.gz"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming a partial ``.part`` file.

    An existing ``dest`` is kept (and checked when ``sha256`` is given). Raises
    :class:`FetchError` when offline, on HTTP errors, on a short download (the ``.part`` file
    stays, so running again resumes) and on a checksum mismatch (the bad file is removed).
    """
    dest = Path(dest)
    if dest.is_file():
        _verify(dest, sha256, url)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "i2i"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the .part file may be complete
            total = _total_from_content_range(exc.headers.get("Content-Range"))
            if total == have:
                return _finish(part, dest, sha256, url)
            part.unlink()
            return download(url, dest, sha256=sha256, progress=progress, timeout=timeout)
        raise FetchError(f"The server answered {exc.code} {exc.reason} for {url}") from None
    except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(
            f"Cannot reach {url} ({reason}). If this machine is offline, download that file "
            f"elsewhere, save it as {dest} and run the same command again: it will use it."
        ) from None
    with response:
        if response.status == 206:
            total = _total_from_content_range(response.headers.get("Content-Range"))
            mode = "ab"
        else:  # 200: the server ignored the Range header, start again
            have, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        bar = tqdm(
            total=total,
            initial=have,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=dest.name,
            disable=not progress,
        )
        done = have
        try:
            with open(part, mode) as fh, bar:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    fh.write(block)
                    done += len(block)
                    bar.update(len(block))
        except (TimeoutError, http.client.IncompleteRead, ConnectionError, OSError) as exc:
            raise FetchError(
                f"Download of {url} was interrupted after {done} bytes ({type(exc).__name__}); "
                f"run the same command again to resume from {part}"
            ) from None
    if total is not None and done != total:
        raise FetchError(
            f"Download of {url} stopped at {done} of {total} bytes; run the same command again "
            f"to resume from {part}"
        )
    return _finish(part, dest, sha256, url)


def _total_from_content_range(value: str | None) -> int | None:
    """``bytes 100-199/1234`` or ``bytes */1234`` -> 1234."""
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _finish(part: Path, dest: Path, sha256: str | None, url: str) -> Path:
    try:
        _verify(part, sha256, url)
    except FetchError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def _verify(path: Path, sha256: str | None, url: str) -> None:
    if sha256 is None:
        return
    actual = _sha256(path)
    if actual.lower() != sha256.lower():
        raise FetchError(
            f"Checksum mismatch for {path} (from {url}): expected sha256 {sha256}, got {actual}. "
            "The file was removed; run again to download it anew."
        )


def check_members(archive: tarfile.TarFile, target: str | os.PathLike) -> list[tarfile.TarInfo]:
    """Every member of ``archive``, checked to stay inside ``target``; raises on the first bad one.

    Refused: absolute names, names with ``..``, symbolic or hard links whose target leaves
    ``target`` (or is absolute), and anything that is not a file, a folder or such a link.
    """
    root = Path(target).resolve()
    members = archive.getmembers()
    for m in members:
        name = m.name
        if name.startswith(("/", "\\")) or _DRIVE.match(name):
            raise UnsafeArchiveError(f"Refusing archive member {name!r}: absolute path")
        if ".." in PurePosixPath(name.replace("\\", "/")).parts:
            raise UnsafeArchiveError(f"Refusing archive member {name!r}: contains '..'")
        dest = (root / name).resolve()
        if not dest.is_relative_to(root):
            raise UnsafeArchiveError(f"Refusing archive member {name!r}: it leaves {root}")
        if m.issym() or m.islnk():
            link = m.linkname
            if link.startswith(("/", "\\")) or _DRIVE.match(link):
                raise UnsafeArchiveError(
                    f"Refusing archive member {name!r}: link to absolute path {link!r}"
                )
            base = posixpath.dirname(name) if m.issym() else ""
            resolved = (root / base / link).resolve()
            if not resolved.is_relative_to(root):
                raise UnsafeArchiveError(
                    f"Refusing archive member {name!r}: link to {link!r} points outside {root}"
                )
        elif not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(
                f"Refusing archive member {name!r}: not a regular file or folder"
            )
    return members


def safe_extract(archive_path: str | os.PathLike, target: str | os.PathLike) -> list[Path]:
    """Extract a tar archive into ``target`` after :func:`check_members`; returns top-level paths.

    Extraction goes to a temporary folder inside ``target`` first, so a refused or broken archive
    leaves nothing behind; existing top-level entries are never replaced.
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".i2i-extract-", dir=target))
    try:
        try:
            with tarfile.open(archive_path, "r:*") as tar:
                members = check_members(tar, staging)
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(staging, members=members, filter="data")
                else:  # pragma: no cover - Python without extraction filters
                    tar.extractall(staging, members=members)
        except (tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, UnsafeArchiveError):
                raise
            raise FetchError(
                f"Cannot extract {archive_path}: {type(exc).__name__}: {exc}. Delete it and "
                "download it again."
            ) from None
        placed = []
        for entry in sorted(staging.iterdir()):
            final = target / entry.name
            if final.exists():
                raise FetchError(
                    f"{final} already exists; not replacing it. Move it away to extract again."
                )
            os.replace(entry, final)
            placed.append(final)
        return placed
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_dataset(
    name: str,
    root: str | os.PathLike = "datasets",
    *,
    sha256: str | None = None,
    base_url: str | None = None,
    progress: bool = True,
    keep_archive: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download and unpack pix2pix dataset ``name`` into ``root``; returns ``root/name``.

    A dataset folder that is already there is returned as it is.
    """
    if name not in PIX2PIX_DATASETS:
        raise FetchError(
            f"Unknown dataset {name!r}; available: {', '.join(sorted(PIX2PIX_DATASETS))}"
        )
    root = Path(root)
    folder = root / name
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    url = dataset_url(name, base_url)
    archive = root / f"{name}.tar.gz"
    download(
        url,
        archive,
        sha256=sha256 or PIX2PIX_DATASETS[name].sha256,
        progress=progress,
        timeout=timeout,
    )
    placed = safe_extract(archive, root)
    if not keep_archive:
        archive.unlink(missing_ok=True)
    if folder.is_dir():
        return folder
    if len(placed) == 1 and placed[0].is_dir():
        return placed[0]
    return root
