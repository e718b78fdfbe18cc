"""Draw the figures of the Concepts page: the receptive fields of the registered discriminators.

The field of each discriminator is measured (:func:`i2i.testing.measure_receptive_field`), not
read from its ``receptive_field`` attribute: the side of the input square on which one central
output logit depends (the support of its gradient). Each panel shows a 256 x 256 facade photo (``facades/val/1.jpg`` of ``$I2I_DATA``,
default ``../shared/data`` beside the repository; a plain grey square when it is absent) with
the measured field drawn around the centre pixel.

    python docs/make_figures.py                  # writes docs/_static/figures/receptive_fields.png
    python docs/make_figures.py --dest /tmp/fig  # somewhere else

It takes a few seconds on a CPU: the networks are built with ``ndf=8`` (the field does not
depend on the width) and run once each on a 320 x 320 input.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Circle, Rectangle  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

import i2i  # noqa: E402
from i2i.testing import measure_receptive_field  # noqa: E402

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # the project root, for benchmarks/ when run as a script

from benchmarks.bench import data_root  # noqa: E402

DEFAULT_DEST = DOCS / "_static" / "figures"
FIGURE = "receptive_fields.png"
PHOTO_SIZE = 256
MEASURE_SIZE = 320  # input side for the measurement: the 286 field of image286 fits inside
IN_CHANNELS = 6  # input + output of a conditional discriminator on RGB -> RGB
SEED = 0
DPI = 100
RED = "#e8112d"
PALETTE_COLOURS = 128  # stored as a palette PNG: a small fraction of the RGB size


def build(name: str) -> nn.Module:
    """The registered discriminator ``name`` for RGB -> RGB, narrow (``ndf=8``) where it can be."""
    torch.manual_seed(SEED)
    try:
        return i2i.create_discriminator(name, IN_CHANNELS, ndf=8)
    except TypeError:  # a plugin discriminator without an ndf option
        torch.manual_seed(SEED)
        return i2i.create_discriminator(name, IN_CHANNELS)


def measure_all(size: int = MEASURE_SIZE) -> list[tuple[str, int, int | None]]:
    """``(name, measured, declared)`` of every registered discriminator, smallest field first."""
    rows = []
    for name in i2i.list_components("discriminators"):
        module = build(name)
        declared = getattr(module, "receptive_field", None)
        rows.append((name, measure_receptive_field(module, IN_CHANNELS, size=size), declared))
    return sorted(rows, key=lambda row: (row[1], row[0]))


def facade_photo() -> np.ndarray:
    """The 256 x 256 photo of ``facades/val/1.jpg`` (left half), or a grey square without data."""
    path = data_root() / "facades" / "val" / "1.jpg"
    try:
        with Image.open(path) as img:
            pair = img.convert("RGB")
    except OSError:
        return np.full((PHOTO_SIZE, PHOTO_SIZE, 3), 160, dtype=np.uint8)
    side = pair.height
    photo = pair.crop((0, 0, side, side)).resize((PHOTO_SIZE, PHOTO_SIZE), Image.BICUBIC)
    return np.asarray(photo)


def draw(fields: list[tuple[str, int, int | None]], dest: Path) -> Path:
    """Draw one panel per ``(name, measured, declared)`` into ``dest/receptive_fields.png``."""
    photo = facade_photo()
    centre = PHOTO_SIZE // 2
    margin = max(0, (max(f for _, f, _ in fields) - PHOTO_SIZE) // 2) + 8
    fig, axes = plt.subplots(1, len(fields), figsize=(2.3 * len(fields), 2.5), squeeze=False)
    for ax, (name, field, _) in zip(axes[0], fields, strict=True):
        ax.imshow(photo, extent=(-0.5, PHOTO_SIZE - 0.5, PHOTO_SIZE - 0.5, -0.5))
        ax.add_patch(
            Rectangle(
                (centre - field / 2, centre - field / 2),
                field,
                field,
                fill=False,
                edgecolor=RED,
                linewidth=1.5,
                clip_on=False,
            )
        )
        if field < 8:  # too small to see at this scale: ring the centre pixel
            ax.add_patch(Circle((centre, centre), 14, fill=False, edgecolor=RED, linestyle="--"))
        ax.set_xlim(-margin, PHOTO_SIZE + margin)
        ax.set_ylim(PHOTO_SIZE + margin, -margin)
        ax.set_title(f"{name}: {field}x{field}", fontsize=11)
        ax.axis("off")
    fig.tight_layout()
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / FIGURE
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, format="png")
    plt.close(fig)
    with Image.open(buffer) as img:
        img.convert("RGB").quantize(PALETTE_COLOURS).save(path, optimize=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """Measure the fields, report any that differ from the declared ones, draw the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dest", type=Path, default=DEFAULT_DEST, help=f"output folder [{DEFAULT_DEST}]"
    )
    args = parser.parse_args(argv)
    fields = measure_all()
    for name, measured, declared in fields:
        note = "" if measured == declared else f"  (declared: {declared})"
        print(f"{name}: {measured}x{measured}{note}")
    print(draw(fields, args.dest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
