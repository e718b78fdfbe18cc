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
thread and a socket timeout, so a slow or stalled client holds only its own thread.

>>> server = make_server([], port=0)
>>> server.url.startswith("http://127.0.0.1:")
True
>>> server.server_close()
"""

from __future__ import annotations

import io
import json
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlsplit

from torch import Tensor

from i2i.data.io import SAVE_OPTIONS
from i2i.demo.models import DemoModel
from i2i.inference import MODES, tensor_to_pil

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/demo.js": ("demo.js", "text/javascript; charset=utf-8"),
    "/demo.css": ("demo.css", "text/css; charset=utf-8"),
}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
DRAIN_LIMIT = 32 * 2**20  # a refused body up to this size is read and dropped, so the client
# sees the answer instead of a reset connection


@dataclass(frozen=True)
class Limits:
    """What one request may send: body bytes, image pixels, and seconds of silence."""

    max_bytes: int = 16 * 2**20
    max_pixels: int = 2048 * 2048
    timeout: float = 30.0


class RequestError(Exception):
    """A request refused with an HTTP status and a message for the person."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


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


class DemoServer(ThreadingHTTPServer):
    """A threading HTTP server holding the models, the limits and the page."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        models: Sequence[DemoModel],
        limits: Limits = Limits(),
        *,
        log: bool = False,
    ):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, DemoHandler)
        self.models = list(models)
        self.limits = limits
        self.log = log
        self.static = static_files()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is no error; anything else is reported as usual."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        """The page's address, e.g. ``http://127.0.0.1:8765/``."""
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"

    def allowed_host(self, header: str | None) -> bool:
        """Whether a request's ``Host`` header may reach a loopback-bound server (a web page
        elsewhere cannot rebind its name to 127.0.0.1 and drive the demo)."""
        if str(self.server_address[0]) not in LOOPBACK:
            return True  # served on purpose beyond loopback (--host)
        if not header:
            return False
        name = header.rsplit(":", 1)[0] if not header.endswith("]") else header
        return name.strip("[]") in LOOPBACK


class DemoHandler(BaseHTTPRequestHandler):
    """Answers the routes listed in :mod:`i2i.demo.server`."""

    server: DemoServer
    server_version = "i2i-demo"

    def setup(self) -> None:
        self.timeout = self.server.limits.timeout  # a stalled client times out alone
        super().setup()

    # ------------------------------------------------------------------ plumbing

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        if self.server.log:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        sys.stderr.write(f"i2i demo: {format % args}\n")

    def _send(self, status: HTTPStatus, body: bytes, kind: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'",
        )
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: HTTPStatus, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's refusals (a malformed request line or header) as JSON too."""
        self.close_connection = True
        status = HTTPStatus(code)
        text = message or status.phrase
        if self.command is None or self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # answer with a status line all the same
        self.command = self.command or "GET"
        self._json(status, {"error": text})

    def _error(self, exc: RequestError) -> None:
        self.close_connection = True
        self._json(exc.status, {"error": exc.message})

    def _query(self) -> dict[str, str]:
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        return {key: values[-1] for key, values in query.items()}

    def _model(self, query: dict[str, str]) -> DemoModel:
        models = self.server.models
        text = query.get("model", "0")
        if not text.isdigit() or int(text) >= len(models):
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"model must be a number from 0 to {len(models) - 1} (see /api/models), "
                f"got {text!r}",
            )
        return models[int(text)]

    def _body(self) -> bytes:
        limit = self.server.limits.max_bytes
        text = self.headers.get("Content-Length")
        if text is None:
            raise RequestError(
                HTTPStatus.LENGTH_REQUIRED, "send the image as the request body with its length"
            )
        if not text.strip().isdigit():
            raise RequestError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {text!r}")
        length = int(text)
        if length == 0:
            raise RequestError(HTTPStatus.BAD_REQUEST, "the request has no image (empty body)")
        if length > limit:
            if length <= DRAIN_LIMIT:
                self._drain(length)
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the upload is {length / 2**20:.1f} MiB; the limit is {limit / 2**20:.1f} MiB "
                "(i2i demo --max-mb)",
            )
        try:
            data = self.rfile.read(length)
        except TimeoutError:
            raise RequestError(
                HTTPStatus.REQUEST_TIMEOUT,
                f"the request body did not arrive within {self.server.limits.timeout:g} s",
            ) from None
        if len(data) < length:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"the request body ended after {len(data)} of {length} bytes",
            )
        return data

    def _drain(self, length: int) -> None:
        try:
            while length > 0:
                chunk = self.rfile.read(min(length, 2**20))
                if not chunk:
                    return
                length -= len(chunk)
        except OSError:
            return

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

    def _dispatch(self, routes: dict[str, Any]) -> None:
        try:
            if not self.server.allowed_host(self.headers.get("Host")):
                raise RequestError(
                    HTTPStatus.FORBIDDEN, "this demo answers only at 127.0.0.1 or localhost"
                )
            route = routes.get(urlsplit(self.path).path)
            if route is None:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such page: {self.path[:200]}")
            route()
        except RequestError as exc:
            self._error(exc)
        except (ConnectionError, TimeoutError):
            raise
        except Exception as exc:  # a bug or a model failure: say so, keep serving
            self.log_error("%s failed: %r", self.path, exc)
            self._error(
                RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")
            )

    # ------------------------------------------------------------------ routes

    def do_GET(self) -> None:  # noqa: N802 (the base's naming)
        routes = {route: self._static for route in self.server.static}
        routes |= {"/api/models": self._models, "/api/example": self._example}
        self._dispatch(routes)

    do_HEAD = do_GET  # noqa: N815

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch({"/api/translate": self._translate, "/api/upload": self._upload})

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{self.command} is not served here"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815

    def _static(self) -> None:
        body, kind = self.server.static[urlsplit(self.path).path]
        self._send(HTTPStatus.OK, body, kind)

    def _models(self) -> None:
        self._json(HTTPStatus.OK, {"models": [m.describe() for m in self.server.models]})

    def _example(self) -> None:
        query = self._query()
        model = self._model(query)
        text = query.get("index", "")
        if not text.isdigit() or int(text) >= len(model.examples):
            raise RequestError(
                HTTPStatus.NOT_FOUND,
                f"model {model.name!r} has {len(model.examples)} example(s); got index {text!r}",
            )
        self._send(HTTPStatus.OK, png_bytes(model.examples[int(text)]), "image/png")

    def _translate(self) -> None:
        query = self._query()
        model = self._model(query)
        mode = query.get("mode") or None
        if mode is not None and mode not in MODES:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"mode must be one of {', '.join(MODES)}, got {mode!r}"
            )
        seed = query.get("seed", "0")
        if not seed.isdigit() or int(seed) >= 2**63:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"seed must be a whole number >= 0, got {seed!r}"
            )
        image = self._image("the drawing")
        start = time.perf_counter()
        out = model.translate(image, mode=mode, seed=int(seed))
        took = f"{(time.perf_counter() - start) * 1000:.0f}"
        self._send(HTTPStatus.OK, png_bytes(out), "image/png", X_Translate_Ms=took)

    def _upload(self) -> None:
        query = self._query()
        model = self._model(query)
        name = "".join(c for c in query.get("name", "") if c.isprintable())[:100]
        keep_alpha = model.translator.task.reads_alpha  # an inpaint upload's transparent hole
        image = self._image(name or "the upload", keep_alpha=keep_alpha)
        self._send(HTTPStatus.OK, png_bytes(model.as_seen(image)), "image/png")


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
