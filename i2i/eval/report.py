"""The evaluation report: ``metrics.json`` and an ``index.html`` page with thumbnails.

The page shows input | output | target for each image with its metrics; the thumbnails are PNG
files in ``images/`` beside it, referenced by relative paths, so the page opens from disk
(``file://``) with no server. A small script marks the page once every image has loaded
(``document.title`` ends with ``all N images loaded``, and ``body[data-images-loaded]``), which
the tests check in a headless browser.

Nothing in the output folder is replaced that an earlier report did not write: thumbnails are
made in a hidden staging folder and moved into ``images/`` only when the report is finished,
after a check that no file they would replace exists (:class:`ReportExistsError` names one
in the way). What may be replaced is the ``replace`` argument: ``"nothing"`` (``i2i eval``),
``"report"`` (``i2i eval --overwrite``: the files the earlier report lists in its
``metrics.json``, i.e. ``metrics.json``, ``index.html`` and its thumbnails; those of its
thumbnails the new report does not write are removed) or ``"any"`` (the default, for a folder
i2i owns, such as an ablation job's ``eval/``: whatever has the report's file names).

>>> import tempfile, torch
>>> from pathlib import Path
>>> out = Path(tempfile.mkdtemp())
>>> r = ReportWriter(out, title="demo")
>>> r.add("1", {"l1": 0.5}, output=torch.rand(3, 8, 8), target=torch.rand(3, 8, 8))
>>> paths = r.finish({"l1": 0.5}, higher_is_better={"l1": False})
>>> sorted(p.name for p in paths), len(list((out / "images").iterdir()))
(['index.html', 'metrics.json'], 2)
>>> ReportWriter(out, replace="nothing").check(["1"])
Traceback (most recent call last):
...
i2i.eval.report.ReportExistsError: ... already exists; pass --overwrite to replace the earlier report or choose another --out
>>> ReportWriter(out, replace="report").check(["1"])  # the earlier report's own files
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

IMAGES_DIR = "images"
THUMBNAIL = 256  # longest side of the thumbnails, in pixels
COLUMNS = ("input", "output", "target")
REPORT_FILES = ("metrics.json", "index.html")
REPLACE = ("nothing", "report", "any")
"""What a :class:`ReportWriter` may replace in its folder."""
_THUMBNAIL_NAME = re.compile(
    rf"^{IMAGES_DIR}/\d{{5}}_[A-Za-z0-9_.-]+_(?:{'|'.join(COLUMNS)})\.png$"
)


class ReportExistsError(FileExistsError):
    """A file the report would write exists and may not be replaced (the message names it)."""


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


def out_folder_problem(out: Path, option: str = "--out") -> str | None:
    """Why ``out`` cannot be an output folder (it or a folder above it is a file), or None.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "afile.txt"
    >>> _ = f.write_text("x")
    >>> out_folder_problem(f / "sub") == f"--out {f / 'sub'}: {f} is a file, not a folder"
    True
    >>> out_folder_problem(f.parent / "new" / "sub") is None
    True
    """
    from i2i.data.io import file_in_the_way

    blocker = file_in_the_way(out)
    if blocker is None:
        return None
    where = "" if blocker == out else f": {blocker}"
    return f"{option} {out}{where} is a file, not a folder"


def previous_report(out_dir: Path) -> set[str] | None:
    """The thumbnails (``images/...`` paths) that the i2i eval report in ``out_dir`` lists in its
    ``metrics.json``; None when there is no such report there."""
    try:
        record = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not (
        isinstance(record, dict)
        and isinstance(record.get("metrics"), dict)
        and isinstance(record.get("images"), list)
    ):
        return None
    files = set()
    for row in record["images"]:
        listed = row.get("images") if isinstance(row, dict) else None
        for rel in listed.values() if isinstance(listed, dict) else ():
            if isinstance(rel, str) and _THUMBNAIL_NAME.match(rel):
                files.add(rel)
    return files


def thumbnail_name(index: int, name: str, column: str) -> str:
    """Where the thumbnail of image ``index`` (named ``name``) goes, relative to the report.

    >>> thumbnail_name(3, "my photo", "input")
    'images/00003_my_photo_input.png'
    """
    return f"{IMAGES_DIR}/{index:05d}_{_safe(name)}_{column}.png"


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
    """Collects per-image results (staging thumbnails as they come), then writes the report.

    ``replace``: which existing files in ``out_dir`` the report may replace, one of
    :data:`REPLACE` (see the module's documentation).
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        title: str = "i2i eval",
        source: dict | None = None,
        replace: str = "any",
    ):
        self.out_dir = Path(out_dir)
        self.title = title
        self.source = dict(source or {})
        if replace not in REPLACE:
            raise ValueError(f"replace must be one of {', '.join(REPLACE)}, got {replace!r}")
        self.replace = replace
        self.rows: list[dict[str, Any]] = []
        self._previous = previous_report(self.out_dir)
        self._staging: Path | None = None

    def check(self, names: Sequence[str] = (), *, inputs: bool = True) -> None:
        """Refuse now, before anything is written, what :meth:`finish` would refuse: an output
        folder that is a file, and existing files among those a report on images ``names``
        (with input thumbnails when ``inputs``) writes that it may not replace."""
        images = self.out_dir / IMAGES_DIR
        problem = out_folder_problem(self.out_dir)
        if problem is None and images.exists() and not images.is_dir():
            problem = f"{images} is a file, not a folder"
        if problem is not None:
            raise ReportExistsError(problem)
        columns = COLUMNS if inputs else COLUMNS[1:]
        self._refuse_existing(
            [
                *REPORT_FILES,
                *(thumbnail_name(i, n, c) for i, n in enumerate(names) for c in columns),
            ]
        )

    def _earlier(self, rel: str) -> bool:
        """Whether the earlier report in the folder lists ``rel`` as its own."""
        if self._previous is None:
            return False
        return rel in REPORT_FILES or rel in self._previous

    def _refuse_existing(self, rels: Sequence[str]) -> None:
        for rel in rels:
            path = self.out_dir / rel
            if not (path.exists() or path.is_symlink()):
                continue
            if self.replace == "any" or (self.replace == "report" and self._earlier(rel)):
                continue
            if self.replace == "nothing" and self._earlier(rel):
                hint = "pass --overwrite to replace the earlier report or choose another --out"
            else:
                hint = (
                    "it is not part of an earlier i2i eval report there, so it is never "
                    "replaced; nothing was written: move it away or choose another --out"
                )
            raise ReportExistsError(f"{path} already exists; {hint}")

    def add(
        self,
        name: str,
        metrics: dict[str, float],
        *,
        output: Tensor,
        target: Tensor,
        input: Tensor | None = None,
    ) -> None:
        """Record one image: its metrics, and its thumbnails (staged until :meth:`finish`)."""
        from i2i.data import write_image

        if self._staging is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._staging = Path(tempfile.mkdtemp(prefix=".i2i-eval-", dir=self.out_dir))
        files = {}
        for column, image in zip(COLUMNS, (input, output, target), strict=True):
            if image is None:
                continue
            rel = thumbnail_name(len(self.rows), name, column)
            staged = self._staging / Path(rel).name
            write_image(thumbnail(image.detach().cpu()).clamp(0, 1), staged)
            files[column] = rel
        self.rows.append({"name": name, "metrics": dict(metrics), "images": files})

    def discard(self) -> None:
        """Remove the staged thumbnails (an evaluation that failed writes nothing)."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def finish(
        self,
        summary: dict[str, float],
        *,
        higher_is_better: dict[str, bool],
        extra: dict[str, Any] | None = None,
    ) -> list[Path]:
        """Write ``metrics.json``, ``index.html`` and the thumbnails; return the first two.

        Raises :class:`ReportExistsError` (writing nothing) for a file in the way."""
        from i2i.data.io import atomic_path
        from i2i.engine.checkpoint import write_json_atomic

        thumbs = [rel for row in self.rows for rel in row["images"].values()]
        try:
            self.check()
            self._refuse_existing(thumbs)
            (self.out_dir / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
            for rel in thumbs:
                os.replace(self._staging / Path(rel).name, self.out_dir / rel)
        finally:
            self.discard()
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
        with atomic_path(html_path) as tmp:
            tmp.write_text(self._html(summary, higher_is_better), encoding="utf-8")
        if self.replace != "nothing" and self._previous:  # earlier thumbnails not shown now
            for rel in self._previous - set(thumbs):
                (self.out_dir / rel).unlink(missing_ok=True)
        self._previous = set(thumbs)
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
