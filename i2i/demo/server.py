"""The demo's web server: the standard library's threading HTTP server and one static page.

Routes (nothing else; no request names a file on disk):

- ``GET /``, ``/demo.js``, ``/demo.css``: the page, from the package's ``static/`` folder;
- ``GET /api/models``: the loaded models as JSON (task, canvas, palette, size, test modes);
- ``GET /api/example?model=I&index=J``: example input ``J`` of model ``I`` as PNG;
- ``POST /api/translate?model=I&mode=paper|eval&seed=S`` with an image as the body: the
  translation as PNG, at the input's size;
- ``POST /api/upload?model=I&name=N`` with an image file as the body: the image as the model sees it
  (decoded by :func:`i2i.data.decode_image`, gray for a 1-channel task, an inpaint upload's
  transparent hole in black), as PNG.

Every refusal is a 4xx with a JSON body ``{"error": message}``. Each connection has its own
thread and a socket timeout, so a slow or stalled client holds only its own thread; bound to
loopback, the server answers only at 127.0.0.1 or localhost. The plumbing is :mod:`i2i.web`'s,
shared with the study's server.

>>> server = make_server([], port=0)
>>> server.url.startswith("http://127.0.0.1:")
True
>>> server.server_close()
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from importlib.resources import files
from urllib.parse import parse_qs, urlsplit

from torch import Tensor

from i2i.data.io import SAVE_OPTIONS
from i2i.demo.models import DemoModel
from i2i.inference import MODES, tensor_to_pil
from i2i.web import TIMEOUT, JsonHandler, LocalServer, RequestError, whole_number

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/demo.js": ("demo.js", "text/javascript; charset=utf-8"),
    "/demo.css": ("demo.css", "text/css; charset=utf-8"),
}


@dataclass(frozen=True)
class Limits:
    """What one request may send: body bytes, image pixels, and seconds of silence."""

    max_bytes: int = 16 * 2**20
    max_pixels: int = 2048 * 2048
    timeout: float = TIMEOUT


def static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files by route: ``{"/": (bytes, content type), ...}``."""
    folder = files("i2i.demo").joinpath("static")
    return {
        route: (folder.joinpath(name).read_bytes(), kind) for route, (name, kind) in STATIC.items()
    }


def png_bytes(image: Tensor) -> bytes:
    """``(3, H, W)`` in [0, 1] as PNG bytes."""
    buffer = io.BytesIO()
    tensor_to_pil(image).save(buffer, format="PNG", **SAVE_OPTIONS["PNG"])
    return buffer.getvalue()


class DemoServer(LocalServer):
    """A threading HTTP server holding the models, the limits and the page."""

    what = "demo"

    def __init__(
        self,
        address: tuple[str, int],
        models: Sequence[DemoModel],
        limits: Limits = Limits(),
        *,
        log: bool = False,
    ):
        super().__init__(address, DemoHandler, timeout=limits.timeout, log=log)
        self.models = list(models)
        self.limits = limits
        self.static = static_files()


class DemoHandler(JsonHandler):
    """Answers the routes listed in :mod:`i2i.demo.server`."""

    server: DemoServer
    server_version = "i2i-demo"
    headers_out = {
        "Content-Security-Policy": (
            "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'"
        )
    }

    # ------------------------------------------------------------------ plumbing

    def _query(self) -> dict[str, str]:
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        return {key: values[-1] for key, values in query.items()}

    def _model(self, query: dict[str, str]) -> DemoModel:
        models = self.server.models
        text = query.get("model", "0")
        index = whole_number(text)
        if index is None or index >= len(models):
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"model must be a number from 0 to {len(models) - 1} (see /api/models), "
                f"got {text!r}",
            )
        return models[index]

    def _body(self) -> bytes:
        limit = self.server.limits.max_bytes
        length = self.content_length()
        if length is None:
            raise RequestError(
                HTTPStatus.LENGTH_REQUIRED, "send the image as the request body with its length"
            )
        if length == 0:
            raise RequestError(HTTPStatus.BAD_REQUEST, "the request has no image (empty body)")
        if length > limit:
            self.drain(length)
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the upload is {length / 2**20:.1f} MiB; the limit is {limit / 2**20:.1f} MiB "
                "(i2i demo --max-mb)",
            )
        return self.read_body(length)

    def _image(self, name: str, *, keep_alpha: bool = False) -> Tensor:
        from i2i.data import ImageReadError, ImageTooLargeError, decode_image

        data = self._body()
        try:
            return decode_image(
                data, name, keep_alpha=keep_alpha, max_pixels=self.server.limits.max_pixels
            )
        except ImageTooLargeError as exc:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"{exc} (i2i demo --max-pixels)"
            ) from None
        except ImageReadError as exc:
            raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, str(exc)) from None

    # ------------------------------------------------------------------ routes

    def do_GET(self) -> None:  # noqa: N802 (the base's naming)
        routes = {route: self._static for route in self.server.static}
        routes |= {"/api/models": self._models, "/api/example": self._example}
        self.dispatch(routes)

    do_HEAD = do_GET  # noqa: N815

    def do_POST(self) -> None:  # noqa: N802
        self.dispatch({"/api/translate": self._translate, "/api/upload": self._upload})

    def _static(self) -> None:
        body, kind = self.server.static[urlsplit(self.path).path]
        self.send(HTTPStatus.OK, body, kind)

    def _models(self) -> None:
        self.send_json(HTTPStatus.OK, {"models": [m.describe() for m in self.server.models]})

    def _example(self) -> None:
        query = self._query()
        model = self._model(query)
        text = query.get("index", "")
        index = whole_number(text)
        if index is None or index >= len(model.examples):
            raise RequestError(
                HTTPStatus.BAD_REQUEST if index is None else HTTPStatus.NOT_FOUND,
                f"model {model.name!r} has {len(model.examples)} example(s); got index {text!r}",
            )
        self.send(HTTPStatus.OK, png_bytes(model.examples[index]), "image/png")

    def _translate(self) -> None:
        query = self._query()
        model = self._model(query)
        mode = query.get("mode") or None
        if mode is not None and mode not in MODES:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"mode must be one of {', '.join(MODES)}, got {mode!r}"
            )
        text = query.get("seed", "0")
        seed = whole_number(text)
        if seed is None or seed >= 2**63:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"seed must be a whole number >= 0, got {text!r}"
            )
        image = self._image("the drawing")
        start = time.perf_counter()
        out = model.translate(image, mode=mode, seed=seed)
        took = f"{(time.perf_counter() - start) * 1000:.0f}"
        self.send(HTTPStatus.OK, png_bytes(out), "image/png", X_Translate_Ms=took)

    def _upload(self) -> None:
        query = self._query()
        model = self._model(query)
        name = "".join(c for c in query.get("name", "") if c.isprintable())[:100]
        keep_alpha = model.translator.task.reads_alpha  # an inpaint upload's transparent hole
        image = self._image(name or "the upload", keep_alpha=keep_alpha)
        self.send(HTTPStatus.OK, png_bytes(model.as_seen(image)), "image/png")


def make_server(
    models: Sequence[DemoModel],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    limits: Limits = Limits(),
    log: bool = False,
) -> DemoServer:
    """A bound, not yet serving :class:`DemoServer` (``port=0``: a free port); call
    ``serve_forever()`` on it, ``shutdown()`` from another thread stops it."""
    return DemoServer((host, port), models, limits, log=log)
