"""Build pix2pix A|B files from paired folders (``i2i data combine``).

``A_DIR`` and ``B_DIR`` either hold images directly, or hold split folders (``train/``,
``val/``, ...) as the official ``combine_A_and_B.py`` expects; files pair up by name. Each pair
is written as ``OUT[/split]/<name>.png``, A on the left and B on the right (lossless PNG). Nothing
is written if a partner is missing, sizes differ, or an output exists (unless ``overwrite``).

>>> import tempfile, torch
>>> from pathlib import Path
>>> from i2i.data.io import read_image, write_image
>>> d = Path(tempfile.mkdtemp())
>>> _ = write_image(torch.rand(3, 8, 8), d / "A" / "1.png")
>>> _ = write_image(torch.rand(3, 8, 8), d / "B" / "1.jpg")
>>> out = combine_folders(d / "A", d / "B", d / "AB", progress=False)
>>> read_image(out[0]).shape
torch.Size([3, 8, 16])
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from tqdm import tqdm

from i2i.data.datasets import pair_files
from i2i.data.io import DatasetError, list_images, read_image, write_image


def _splits(a_dir: Path, b_dir: Path) -> list[tuple[Path, Path, str]]:
    """``(a, b, relative out folder)`` for a flat pair of folders or for each shared split."""
    try:
        list_images(a_dir)
        return [(a_dir, b_dir, "")]
    except DatasetError:
        pass
    if not a_dir.is_dir():
        raise DatasetError(f"Folder {a_dir} does not exist")
    splits = sorted(p.name for p in a_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = [(a_dir / s, b_dir / s, s) for s in splits if (b_dir / s).is_dir()]
    if not found:
        raise DatasetError(
            f"No images in {a_dir}, and no split folder of {a_dir} (found: "
            f"{', '.join(splits) or 'none'}) has a counterpart in {b_dir}"
        )
    return found


def combine_folders(
    a_dir: str | os.PathLike,
    b_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Write one A|B PNG per pair of same-named images; returns the written paths."""
    a_dir, b_dir, out = Path(a_dir), Path(b_dir), Path(out)
    jobs = []
    for a, b, rel in _splits(a_dir, b_dir):
        pairs, _ = pair_files(a, b, strict=True)
        jobs += [(pa, pb, out / rel / f"{pa.stem}.png") for pa, pb in pairs]
    existing = [dst for _, _, dst in jobs if dst.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{len(existing)} output file(s) already exist, e.g. {existing[0]}; nothing was "
            "written (pass --overwrite to replace them)"
        )
    written = []
    for pa, pb, dst in tqdm(jobs, desc="combine", unit="pair", disable=not progress):
        a, b = read_image(pa), read_image(pb)
        if a.shape != b.shape:
            raise DatasetError(
                f"{pa} is {a.shape[2]}x{a.shape[1]} but its partner {pb} is "
                f"{b.shape[2]}x{b.shape[1]} (WxH); paired images must be the same size"
            )
        written.append(write_image(torch.cat([a, b], dim=2), dst, overwrite=overwrite))
    return written
