"""photo2cartoon: photos -> cartoons, learnt from unpaired built-in data (CycleGAN's setting).

Two domains with no pairs (``unpaired`` layout): A holds photos and B holds cartoons of OTHER
photos: colours smoothed, made more vivid and posterised to 5 levels a channel, with dark lines
where the photo has edges (:func:`i2i_photo2cartoon.cartoon`). With no ``--data`` the task trains
on data made offline on first use from the built-in photographs (see
``i2i/data/BUILTIN_DATA.md``): each photo is resized so that its short side is 256 and 512 px
and cut into 128 px tiles on a grid; the tiles of the left half of a photo go to A, those of
its right half are cartooned one by one and go to B, so no pixel of a photo is in both domains.
The last two tiles of each photo half are held out for validation: ``trainA/`` and ``trainB/``
get 56 tiles each, ``valA/`` and ``valB/`` 12 each (about 2 MB in
``$I2I_CACHE/photo2cartoon-v1``; delete it to have it made again). Any CycleGAN-style
``trainA/`` ``trainB/`` data works with ``--data``.

>>> import torch
>>> out = cartoon(torch.rand(3, 32, 32))
>>> steps = out * (LEVELS - 1)  # posterised: whole steps only
>>> out.shape, bool((steps - steps.round()).abs().max() < 1e-5)
(torch.Size([3, 32, 32]), True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kornia
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from i2i import Task, hookimpl
from i2i.data import DatasetError, cached_folder
from i2i.data.builtin import SOURCES, skimage_data_dir

VERSION = 1
TILE = 128
SHORT_SIDES = (256, 512)  # each photo is tiled at these sizes of its short side
VAL_PER_HALF = 2  # the last tiles of each photo half, held out for validation
LEVELS = 5  # posterised levels per colour channel
SATURATION = 1.4
EDGE_THRESHOLD = 0.04  # Sobel magnitude (of a blurred gray) above which a line is drawn


def cartoon(img: Tensor) -> Tensor:
    """A photo as a cartoon: smoothed, vivid, posterised colours with dark edge lines.

    RGB in [0, 1], ``(3, H, W)`` or ``(B, 3, H, W)``; the same layout comes back, every value
    a multiple of ``1 / (LEVELS - 1)``. Deterministic and pointwise apart from two small blurs
    and a Sobel filter, so a convolutional generator can learn it.
    """
    x = img[None] if img.ndim == 3 else img
    smooth = kornia.filters.gaussian_blur2d(x, (5, 5), (1.0, 1.0))
    gray = kornia.color.rgb_to_grayscale(smooth)
    vivid = (gray + SATURATION * (smooth - gray)).clamp(0.0, 1.0)  # PIL's ImageEnhance.Color
    poster = torch.round(vivid * (LEVELS - 1)) / (LEVELS - 1)
    gray = kornia.color.rgb_to_grayscale(kornia.filters.gaussian_blur2d(x, (7, 7), (1.5, 1.5)))
    lines = kornia.filters.sobel(gray) > EDGE_THRESHOLD
    out = poster * (~lines).to(poster.dtype)
    return out[0] if img.ndim == 3 else out


def halves(img: Image.Image) -> tuple[list[Image.Image], list[Image.Image]]:
    """TILE px tiles of the left and of the right half of ``img``, on a centred grid.

    With an odd number of columns the middle one, which straddles both halves, is left out.

    >>> left, right = halves(Image.new("RGB", (3 * TILE + 10, 2 * TILE)))
    >>> len(left), len(right)
    (2, 2)
    """
    w, h = img.size
    cols, rows = w // TILE, h // TILE
    x0, y0 = (w - cols * TILE) // 2, (h - rows * TILE) // 2
    half = cols // 2
    out: tuple[list[Image.Image], list[Image.Image]] = ([], [])
    for side, columns in enumerate((range(half), range(cols - half, cols))):
        for r in range(rows):
            for c in columns:
                left, top = x0 + c * TILE, y0 + r * TILE
                out[side].append(img.crop((left, top, left + TILE, top + TILE)))
    return out


def _materialise(out: Path) -> dict[str, Any]:
    src_dir = skimage_data_dir()
    files: list[str] = []
    for source in SOURCES:
        path = src_dir / source.file
        if not path.is_file():
            raise DatasetError(
                f"Built-in data source {path} is missing from the installed scikit-image; "
                "reinstall it (pip install --force-reinstall scikit-image)"
            )
        with Image.open(path) as opened:
            photo = opened.convert("RGB")
        tiles: tuple[list[Image.Image], list[Image.Image]] = ([], [])
        for short in SHORT_SIDES:
            factor = short / min(photo.size)
            size = (round(photo.width * factor), round(photo.height * factor))
            resized = photo.resize(size, Image.Resampling.LANCZOS)
            left, right = halves(resized)
            tiles[0].extend(left)
            tiles[1].extend(right)
        rgb = torch.from_numpy(np.stack([np.asarray(t) for t in tiles[1]]))
        drawn = cartoon(rgb.permute(0, 3, 1, 2).float() / 255.0)
        drawn = (drawn * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        tiles = (tiles[0], [Image.fromarray(a) for a in drawn])
        stem = Path(source.file).stem
        for domain, side, parts in (("A", "left", tiles[0]), ("B", "right", tiles[1])):
            for k, tile in enumerate(parts):
                split = "val" if k >= len(parts) - VAL_PER_HALF else "train"
                rel = f"{split}{domain}/{stem}_{side}_{k:02d}.png"
                (out / f"{split}{domain}").mkdir(parents=True, exist_ok=True)
                tile.save(out / rel, format="PNG")
                files.append(rel)
    return {
        "version": VERSION,
        "tile": TILE,
        "short_sides": list(SHORT_SIDES),
        "domains": {
            "A": "photos: tiles of the left half of each source photo",
            "B": "cartoons (i2i_photo2cartoon.cartoon) of tiles of the right half",
        },
        "style": {"levels": LEVELS, "saturation": SATURATION, "edge_threshold": EDGE_THRESHOLD},
        "sources": [source.__dict__ for source in SOURCES],
        "files": files,
    }


def cartoon_data_root() -> Path:
    """The folder with ``trainA/ trainB/ valA/ valB/`` (photos, cartoons), made on first use."""
    return cached_folder(f"photo2cartoon-v{VERSION}", _materialise)


photo2cartoon = Task(
    summary="Photo to cartoon, unpaired: photos -> posterised, dark-lined cartoons of other photos",
    in_channels=3,
    out_channels=3,
    layout="unpaired",
    direction="AtoB",
    # CycleGAN's settings (Zhu et al. 2017; 6 residual blocks for 128 px images)
    defaults=dict(
        recipe="cyclegan",
        generator="resnet_6blocks",
        discriminator="patch70",
        objective="lsgan=1",
        norm="instance",
        test_mode="eval",
        load_size=143,
        crop_size=TILE,
        batch_size=1,
        lr=2e-4,
        epochs=100,
        epochs_decay=100,
    ),
    default_data=cartoon_data_root,
    description=__doc__.split("\n\n>>>")[0],
)


@hookimpl
def i2i_register_tasks(register):
    register("photo2cartoon", photo2cartoon)


__all__ = ["cartoon", "cartoon_data_root", "halves", "photo2cartoon"]
