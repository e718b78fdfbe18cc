"""What i2i's local web servers (``i2i demo``, ``i2i study serve``) share.

- :class:`LocalServer`: a threading HTTP server that, bound to loopback (the default), answers
  only requests whose ``Host`` is ``127.0.0.1``, ``localhost`` or ``::1`` (a web page elsewhere
  cannot rebind its own name to 127.0.0.1 and drive the server); bound beyond loopback on
  purpose (``--host``), it answers any ``Host``.
- :class:`JsonHandler`: each connection gets a socket timeout, so a stalled client holds only
  its own thread: a stalled request body gets a 408, a stalled request line or header block
  has its connection closed; every refusal, the base class's own included, is a 4xx with a
  JSON body; a failure inside a route is a 500 with its message, and the server goes on.
- :func:`whole_number`: ASCII digits only, so ``"²"`` is a bad number, not a crash in ``int()``.

>>> whole_number("12"), whole_number("²"), whole_number("-1"), whole_number(" 1")
(12, None, None, None)
>>> allowed_host("127.0.0.1", "localhost:8000"), allowed_host("127.0.0.1", "[::1]:80")
(True, True)
>>> allowed_host("127.0.0.1", "evil.example"), allowed_host("127.0.0.1", None)
(False, False)
>>> allowed_host("0.0.0.0", "evil.example")  # served beyond loopback on purpose
True
>>> allowed_host("127.0.1.1", "vm:8000", ("vm",))  # --host vm, a name for a loopback address
True
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TIMEOUT = 30.0  # seconds a connection may stay silent
DRAIN_LIMIT = 32 * 2**20  # a refused body up to this size is read and dropped, so the client
# sees the answer instead of a reset connection


class RequestError(Exception):
    """A request refused with an HTTP status and a message for the person."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def whole_number(text: str) -> int | None:
    """``text`` as an ``int`` if it is ASCII digits only, else ``None``."""
    if not (text.isascii() and text.isdigit()):
        return None
    try:
        return int(text)
    except ValueError:  # more digits than int() converts
        return None


def is_loopback(address: str) -> bool:
    """Whether a bound address is a loopback one (``127.0.0.1``, ``127.0.0.2``, ``::1``)."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def allowed_host(bound: str, header: str | None, names: tuple[str, ...] = ()) -> bool:
    """Whether a request with ``Host: header`` may reach a server bound to ``bound``; ``names``
    are more names it answers at (the ``--host`` name the user gave, when it is not an IP)."""
    if not is_loopback(bound):
        return True  # served on purpose beyond loopback (--host)
    if not header:
        return False
    name = header.rsplit(":", 1)[0] if not header.endswith("]") else header
    return name.strip("[]").lower() in host_names(bound, names)


def host_names(bound: str, names: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The host names a loopback server answers at, in the order messages give them.

    >>> host_names("127.0.1.1", ("vm",))
    ('127.0.0.1', 'localhost', '::1', '127.0.1.1', 'vm')
    """
    extra = (bound, *(n.lower() for n in names))
    return LOOPBACK + tuple(dict.fromkeys(n for n in extra if n not in LOOPBACK))


class LocalServer(ThreadingHTTPServer):
    """A threading HTTP server for one of i2i's pages: ``what`` names it in messages."""

    daemon_threads = True
    allow_reuse_address = True
    what = "server"

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        timeout: float = TIMEOUT,
        log: bool = False,
    ):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.host_name = address[0]  # as given: a name like "vm" is answered at, too
        super().__init__(address, handler)
        self.request_timeout = timeout
        self.log = log

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
        """Whether a request's ``Host`` header may reach this server (see :func:`allowed_host`)."""
        return allowed_host(str(self.server_address[0]), header, (self.host_name,))

    @property
    def host_names(self) -> tuple[str, ...]:
        """The names a request's ``Host`` may give when the server is on loopback."""
        return host_names(str(self.server_address[0]), (self.host_name,))


class JsonHandler(BaseHTTPRequestHandler):
    """Plumbing for :class:`LocalServer`'s handlers: timeout, ``Host`` check, JSON refusals.

    Subclasses route with :meth:`dispatch` and may add headers (``headers_out``) or fields to
    every error body (:meth:`error_body`).
    """

    server: LocalServer
    headers_out: dict[str, str] = {}

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # a stalled client times out alone
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        if self.server.log:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        if format.startswith("Request timed out") and not self.server.log:
            return  # an idle keep-alive connection closed: no error
        sys.stderr.write(f"i2i {self.server.what}: {format % args}\n")

    def send(self, status: HTTPStatus, body: bytes, kind: str, **headers: str) -> None:
        """Answer ``body`` (not for ``HEAD``) with its type, length and ``headers_out``."""
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in {**self.headers_out, **headers}.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: HTTPStatus, value: Any) -> None:
        self.send(status, json.dumps(value).encode(), "application/json")

    def error_body(self, message: str) -> dict[str, Any]:
        """The JSON body of a refusal."""
        return {"error": message}

    def refuse(self, exc: RequestError) -> None:
        """Answer a refusal and close the connection (an unread body may follow)."""
        self.close_connection = True
        self.send_json(exc.status, self.error_body(exc.message))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's refusals (a malformed request line or header) as JSON too."""
        status = HTTPStatus(code)
        if self.command is None or self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # answer with a status line all the same
        self.command = self.command or "GET"
        self.refuse(RequestError(status, message or status.phrase))

    def content_length(self) -> int | None:
        """The request's ``Content-Length``: ``None`` if missing, a 400 if not a number."""
        text = self.headers.get("Content-Length")
        if text is None:
            return None
        length = whole_number(text.strip())
        if length is None:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {text[:50]!r}")
        return length

    def read_body(self, length: int) -> bytes:
        """Exactly ``length`` bytes of body: a 408 if they stall, a 400 if they stop short."""
        try:
            data = self.rfile.read(length)
        except TimeoutError:
            raise RequestError(
                HTTPStatus.REQUEST_TIMEOUT,
                f"the request body did not arrive within {self.server.request_timeout:g} s",
            ) from None
        if len(data) < length:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"the request body ended after {len(data)} of {length} bytes",
            )
        return data

    def drain(self, length: int) -> None:
        """Read and drop a refused body of up to :data:`DRAIN_LIMIT` bytes."""
        if length > DRAIN_LIMIT:
            return
        try:
            while length > 0:
                chunk = self.rfile.read(min(length, 2**20))
                if not chunk:
                    return
                length -= len(chunk)
        except OSError:
            return

    def dispatch(self, routes: Mapping[str, Callable[[], None]]) -> None:
        """Check the ``Host``, call the route for the request's path, answer any refusal."""
        try:
            if not self.server.allowed_host(self.headers.get("Host")):
                names = [n for n in self.server.host_names if n != "::1"]
                raise RequestError(
                    HTTPStatus.FORBIDDEN,
                    f"this {self.server.what} answers only at {' or '.join(names)}",
                )
            route = routes.get(urlsplit(self.path).path)
            if route is None:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such page: {self.path[:200]}")
            route()
        except RequestError as exc:
            self.refuse(exc)
        except (ConnectionError, TimeoutError):
            raise
        except Exception as exc:  # a bug or a failure behind the route: say so, keep serving
            self.log_error("%s failed: %r", self.path[:200], exc)
            self.refuse(
                RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")
            )

    def _not_allowed(self) -> None:
        self.refuse(
            RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not served here")
        )

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815
