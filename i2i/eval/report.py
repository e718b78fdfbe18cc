"""The evaluation report: ``metrics.json`` and an ``index.html`` page with thumbnails.

The page shows input | output | target for each image with its metrics; the thumbnails are PNG
files in ``images/`` beside it, referenced by relative paths, so the page opens from disk
(``file://``) with no server. A small script marks the page once every image has loaded
(``document.title`` ends with ``all N images loaded``, and ``body[data-images-loaded]``), which
the tests check in a headless browser.

>>> import tempfile, torch
>>> from pathlib import Path
>>> out = Path(tempfile.mkdtemp())
>>> r = ReportWriter(out, title="demo")
>>> r.add("1", {"l1": 0.5}, output=torch.rand(3, 8, 8), target=torch.rand(3, 8, 8))
>>> paths = r.finish({"l1": 0.5}, higher_is_better={"l1": False})
>>> sorted(p.name for p in paths), len(list((out / "images").iterdir()))
(['index.html', 'metrics.json'], 2)
"""

from __future__ import annotations

import html
import math
import re
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

IMAGES_DIR = "images"
THUMBNAIL = 256  # longest side of the thumbnails, in pixels
COLUMNS = ("input", "output", "target")

LOADED_SCRIPT = """
<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", ok + "/" + imgs.length);
  if (ok === imgs.length) { document.title += " - all " + ok + " images loaded"; }
  else { document.title += " - " + (imgs.length - ok) + " images FAILED"; }
});
</script>
"""

_STYLE = """
<style>
body { font-family: sans-serif; margin: 1em; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 4px; vertical-align: top; text-align: left; }
img { display: block; max-width: 256px; max-height: 256px; image-rendering: pixelated; }
.m { font-family: monospace; white-space: pre; }
</style>
"""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80] or "image"


def thumbnail(image: Tensor, size: int = THUMBNAIL) -> Tensor:
    """Shrink ``(3, H, W)`` so that its longest side is at most ``size`` (never enlarges).

    >>> import torch
    >>> thumbnail(torch.rand(3, 512, 1024)).shape
    torch.Size([3, 128, 256])
    """
    import torch.nn.functional as F

    h, w = image.shape[-2:]
    scale = size / max(h, w)
    if scale >= 1:
        return image
    new = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(image[None].float(), size=new, mode="area")[0]


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN or Infinity
    if isinstance(value, dict):
        return {k: _json_number(v) for k, v in value.items()}
    return value


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}"


class ReportWriter:
    """Collects per-image results (writing thumbnails as they come), then writes the report."""

    def __init__(self, out_dir: str | Path, *, title: str = "i2i eval", source: dict | None = None):
        self.out_dir = Path(out_dir)
        self.title = title
        self.source = dict(source or {})
        self.rows: list[dict[str, Any]] = []
        (self.out_dir / IMAGES_DIR).mkdir(parents=True, exist_ok=True)

    def add(
        self,
        name: str,
        metrics: dict[str, float],
        *,
        output: Tensor,
        target: Tensor,
        input: Tensor | None = None,
    ) -> None:
        """Record one image: its metrics, and its thumbnails written as PNG files."""
        from i2i.data import write_image

        stem = f"{len(self.rows):05d}_{_safe(name)}"
        files = {}
        for column, image in zip(COLUMNS, (input, output, target), strict=True):
            if image is None:
                continue
            rel = f"{IMAGES_DIR}/{stem}_{column}.png"
            write_image(
                thumbnail(image.detach().cpu()).clamp(0, 1), self.out_dir / rel, overwrite=True
            )
            files[column] = rel
        self.rows.append({"name": name, "metrics": dict(metrics), "images": files})

    def finish(
        self,
        summary: dict[str, float],
        *,
        higher_is_better: dict[str, bool],
        extra: dict[str, Any] | None = None,
    ) -> list[Path]:
        """Write ``metrics.json`` and ``index.html``; return their paths."""
        from i2i.engine.checkpoint import write_json_atomic

        record = {
            "title": self.title,
            "source": self.source,
            "num_images": len(self.rows),
            "metrics": summary,
            "higher_is_better": higher_is_better,
            **(extra or {}),
            "images": self.rows,
        }
        json_path = self.out_dir / "metrics.json"
        write_json_atomic(json_path, _json_number(record))
        html_path = self.out_dir / "index.html"
        tmp = html_path.with_name(".index.html.tmp")
        tmp.write_text(self._html(summary, higher_is_better), encoding="utf-8")
        tmp.replace(html_path)
        return [json_path, html_path]

    def _html(self, summary: dict[str, float], higher_is_better: dict[str, bool]) -> str:
        esc = html.escape
        keys = list(summary)
        head = "".join(
            f"<th>{esc(k)} {'&uarr;' if higher_is_better.get(k, True) else '&darr;'}</th>"
            for k in keys
        )
        mean_row = "".join(f"<td>{_fmt(summary[k])}</td>" for k in keys)
        source = "".join(f"<li>{esc(str(k))}: {esc(str(v))}</li>" for k, v in self.source.items())
        rows = []
        for row in self.rows:
            cells = []
            for column in COLUMNS:
                rel = row["images"].get(column)
                if rel is None:
                    cells.append("<td></td>")
                    continue
                src = esc(urllib.parse.quote(rel))
                cells.append(f'<td><img src="{src}" alt="{esc(column)}" loading="eager"></td>')
            text = "\n".join(f"{k}: {_fmt(v)}" for k, v in row["metrics"].items())
            rows.append(
                f"<tr><td>{esc(row['name'])}</td>{''.join(cells)}"
                f'<td class="m">{esc(text)}</td></tr>'
            )
        return (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
            f"<title>{esc(self.title)}</title>{_STYLE}</head>\n<body>\n"
            f"<h1>{esc(self.title)}</h1>\n<ul>{source}<li>images: {len(self.rows)}</li></ul>\n"
            f"<h2>Summary</h2>\n<table><tr>{head}</tr><tr>{mean_row}</tr></table>\n"
            "<h2>Images</h2>\n<table><tr><th>name</th><th>input</th><th>output</th>"
            "<th>target</th><th>metrics</th></tr>\n" + "\n".join(rows) + "\n</table>\n"
            f"{LOADED_SCRIPT}</body></html>\n"
        )
