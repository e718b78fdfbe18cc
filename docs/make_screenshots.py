"""Take the screenshot of ``i2i demo`` that the quickstart shows, in headless Chromium.

The page is served for a checkpoint exactly as ``i2i demo`` serves it; the script waits for the
first example input's translation, draws one gray stroke across the canvas with the mouse, waits
for the new translation and captures the window.

    python docs/make_screenshots.py --checkpoint runs/colorize   # the quickstart's run
    python docs/make_screenshots.py --checkpoint runs/colorize --dest /tmp/shots

The committed ``docs/_static/figures/demo.png`` comes from the quickstart's own run
(``i2i run --task colorize --gen unet --disc patch70 --epochs 2 --out runs/colorize``, about two
minutes on a 2-core CPU). It needs Chromium (``apt-get install -y chromium``) and the test extra
(``websocket-client`` drives the browser over the DevTools protocol).
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from PIL import Image

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # the project root, for tests/ when run as a script

from i2i.demo import load_models, make_server  # noqa: E402
from tests.browser import DevTools  # noqa: E402

DEFAULT_DEST = DOCS / "_static" / "figures"
FIGURE = "demo.png"
WIDTH, HEIGHT = 1180, 640
PALETTE_COLOURS = 192  # stored as a palette PNG: a fraction of the RGB size
STROKE = [(0.15, 0.55), (0.35, 0.6), (0.55, 0.58), (0.8, 0.62)]  # across the canvas, as fractions


def find_chromium() -> str:
    """The Chromium binary, or exit with what to install."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("make_screenshots.py needs Chromium: apt-get install -y chromium")


def capture(checkpoint: Path, dest: Path, *, device: str = "cpu") -> Path:
    """Serve ``checkpoint``, draw one stroke in the page, save the window as ``dest/demo.png``."""
    models = load_models([checkpoint], device=device)
    server = make_server(models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    profile = tempfile.TemporaryDirectory(prefix="i2i-chromium-")
    try:
        with DevTools(find_chromium(), Path(profile.name), width=WIDTH, height=HEIGHT) as page:
            page.goto(server.url)
            page.wait_for("document.body.dataset.ready === '1'", timeout=300)
            page.wait_for("Number(document.body.dataset.translations || 0) >= 1", timeout=300)
            left, top, width, height = page.evaluate(
                "(() => { const r = document.getElementById('input').getBoundingClientRect();"
                " return [r.left, r.top, r.width, r.height]; })()"
            )
            page.drag([(left + fx * width, top + fy * height) for fx, fy in STROKE])
            page.wait_for("Number(document.body.dataset.translations || 0) >= 2", timeout=300)
            shot = page.screenshot()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        profile.cleanup()
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / FIGURE
    with Image.open(io.BytesIO(shot)) as img:
        img.convert("RGB").quantize(PALETTE_COLOURS).save(path, optimize=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="a checkpoint or run folder to serve"
    )
    parser.add_argument(
        "--dest", type=Path, default=DEFAULT_DEST, help=f"output folder [{DEFAULT_DEST}]"
    )
    parser.add_argument("--device", default="cpu", help="where the model runs [cpu]")
    args = parser.parse_args(argv)
    print(capture(args.checkpoint, args.dest, device=args.device))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
