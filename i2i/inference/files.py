"""Which files ``i2i translate`` reads, and where it writes: checked before anything is written.

Inputs are image files, folders (their images, sorted naturally) and glob patterns. Each output
is ``OUT/<input stem>.png``; two inputs with the same stem, an existing output (without
``overwrite``), an output that is one of the inputs (even with ``overwrite``) or a name that
would land outside ``OUT`` are errors raised before any write.

>>> import tempfile
>>> from pathlib import Path
>>> d = Path(tempfile.mkdtemp())
>>> _ = (d / "a.jpg").write_bytes(b"x"); _ = (d / "b.png").write_bytes(b"x")
>>> [p.name for p in expand_inputs([str(d / "*.jpg"), str(d / "b.png")])]
['a.jpg', 'b.png']
>>> [str(o.relative_to(d)) for _, o in plan_outputs(expand_inputs([str(d)]), d / "out")]
['out/a.png', 'out/b.png']
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

_GLOB_CHARS = frozenset("*?[")


class InputError(ValueError):
    """An input argument that names no image (the message names the argument)."""


class OutputError(ValueError):
    """Outputs that would clash, overwrite existing files or leave the output folder."""


def _list_folder(folder: Path) -> list[Path]:
    from i2i.data import list_images

    return list(list_images(folder))


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files, folders and glob patterns -> image paths, in argument order, without repeats."""
    from i2i.data.io import IMAGE_EXTENSIONS

    out: list[Path] = []
    seen: set[Path] = set()
    for arg in inputs:
        text = os.fspath(arg)
        path = Path(text)
        if path.is_dir():
            found = _list_folder(path)
            if not found:
                raise InputError(
                    f"Folder {path} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)})"
                )
        elif path.is_file():
            found = [path]
        elif _GLOB_CHARS & set(text):
            found = [Path(p) for p in sorted(glob.glob(text)) if Path(p).is_file()]
            if not found:
                raise InputError(f"Pattern {text!r} matches no files")
        else:
            raise InputError(
                f"Input {text!r} is not a file, a folder or a glob pattern that matches"
            )
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                out.append(p)
    return out


def output_path(input_path: Path, out_dir: Path) -> Path:
    """``out_dir/<stem>.png`` for ``input_path``; refuses a name that leaves ``out_dir``.

    >>> output_path(Path("x/photo.jpg"), Path("out")).as_posix()
    'out/photo.png'
    """
    stem = input_path.stem
    if not stem or stem in (".", "..") or "/" in stem or os.sep in stem:
        raise OutputError(
            f"Cannot name an output after {input_path}: its stem {stem!r} is unusable"
        )
    target = out_dir / f"{stem}.png"
    if target.resolve().parent != out_dir.resolve():
        raise OutputError(f"Output {target} for {input_path} would land outside {out_dir}")
    return target


def plan_outputs(
    inputs: Sequence[Path], out_dir: str | os.PathLike, *, overwrite: bool = False
) -> list[tuple[Path, Path]]:
    """(input, output) pairs; raises :class:`OutputError` before any file is written."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir} exists and is not a folder")
    pairs = [(p, output_path(p, out_dir)) for p in inputs]
    by_output: dict[Path, Path] = {}
    for src, dst in pairs:
        if dst in by_output:
            raise OutputError(
                f"{by_output[dst]} and {src} would both be written to {dst}: "
                "rename one or translate them into different --out folders"
            )
        by_output[dst] = src
    _refuse_inputs_as_outputs(pairs)
    if not overwrite:
        existing = [dst for _, dst in pairs if dst.exists()]
        if existing:
            shown = ", ".join(str(p) for p in existing[:5])
            more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
            raise OutputError(
                f"{len(existing)} output file(s) already exist: {shown}{more}. Nothing was "
                "written; pass --overwrite to replace them or choose another --out"
            )
    return pairs


def _refuse_inputs_as_outputs(pairs: Sequence[tuple[Path, Path]]) -> None:
    """An output that is one of the inputs (``--out`` is the input folder and the input is a
    ``.png``) is refused even with ``overwrite``: translating would destroy the original."""
    by_path = {src.resolve(): src for src, _ in pairs}
    by_inode: dict[tuple[int, int], Path] | None = None  # also catches a case-insensitive disk
    for src, dst in pairs:
        same = by_path.get(dst.resolve())
        if same is None and dst.exists():
            if by_inode is None:
                by_inode = {_inode(p): p for p in by_path.values() if p.exists()}
            same = by_inode.get(_inode(dst))
        if same is not None:
            what = f"would replace its input {src}" if same == src else f"is the input {same}"
            raise OutputError(
                f"Output {dst} of {src} {what}. An input is never overwritten, even with "
                "--overwrite; nothing was written: choose another --out"
            )


def _inode(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino
