"""The study's web server: the page, each participant's trial plan, their images, their answers.

Stdlib only (:class:`http.server.ThreadingHTTPServer`). Routes:

- ``GET /``: the study page (``?participant=NAME`` names the participant in the results).
- ``POST /api/session``: a new participant session, ``{"participant": NAME}`` -> its trials.
- ``GET /image/SESSION/TRIAL/left`` (or ``right``): the image shown on that side.
- ``POST /api/answer``: ``{"session", "trial", "choice": "left"|"right", "response_ms"}``.

Answers must come in trial order, once each; anything else (bad JSON, unknown session, a
repeated or skipped trial, a bad choice, a body over 4 KiB) gets a 4xx and writes nothing.

>>> import json, random, tempfile, threading, urllib.request
>>> from pathlib import Path
>>> from i2i.study.protocol import Pair
>>> d = Path(tempfile.mkdtemp())
>>> for f in ("g.png", "r.png"):
...     _ = (d / f).write_bytes(b"png")
>>> srv = make_server([Pair("m", "1", d / "g.png", d / "r.png")], d / "answers.jsonl",
...                   practice=1, main=1, port=0, seed=0)
>>> _ = threading.Thread(target=srv.serve_forever, daemon=True).start()
>>> url = f"http://127.0.0.1:{srv.server_port}"
>>> post = lambda path, data: json.load(urllib.request.urlopen(urllib.request.Request(
...     url + path, json.dumps(data).encode(), {"Content-Type": "application/json"})))
>>> s = post("/api/session", {"participant": "ann"})
>>> [t["phase"] for t in s["trials"]]
['practice', 'main']
>>> post("/api/answer", {"session": s["session"], "trial": 0, "choice": "left"})["done"]
False
>>> srv.shutdown(); srv.server_close()
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from i2i.study.page import study_page
from i2i.study.protocol import (
    MAIN_TRIALS,
    PRACTICE_TRIALS,
    SHOW_MS,
    SIDES,
    Pair,
    Trial,
    append_record,
    plan_trials,
)

MAX_BODY = 4096
_IMAGE_PATH = re.compile(r"^/image/([A-Za-z0-9_-]{1,64})/(\d{1,4})/(left|right)$")
_PARTICIPANT = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


class BadRequest(Exception):
    """An unusable request: answered with ``status`` and ``message``, nothing changes."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Session:
    participant: str
    trials: list[Trial]
    answered: int = 0
    created: float = field(default_factory=time.time)


class StudyState:
    """Sessions and their progress; every answer goes through :meth:`answer` under one lock."""

    def __init__(
        self,
        pairs: Sequence[Pair],
        results: Path,
        *,
        practice: int,
        main: int,
        show_ms: int,
        seed: int | None,
    ):
        self.pairs = list(pairs)
        self.results = Path(results)
        self.practice, self.main, self.show_ms = practice, main, show_ms
        self.rng = random.Random(seed)
        self.sessions: dict[str, Session] = {}
        self.lock = threading.Lock()

    def new_session(self, participant: str | None) -> tuple[str, Session]:
        if participant is not None and not _PARTICIPANT.match(participant):
            raise BadRequest(
                HTTPStatus.BAD_REQUEST, "participant: 1-64 letters, digits, '_', '.', '@', '-'"
            )
        with self.lock:
            sid = secrets.token_urlsafe(12)
            plan = plan_trials(self.pairs, practice=self.practice, main=self.main, rng=self.rng)
            session = Session(participant or sid, plan)
            self.sessions[sid] = session
        return sid, session

    def session(self, sid: Any) -> Session:
        session = self.sessions.get(sid) if isinstance(sid, str) else None
        if session is None:
            raise BadRequest(HTTPStatus.NOT_FOUND, "unknown session")
        return session

    def image(self, sid: str, index: int, side: str) -> Path:
        session = self.session(sid)
        if index >= len(session.trials):
            raise BadRequest(HTTPStatus.NOT_FOUND, "no such trial")
        trial = session.trials[index]
        return trial.pair.real if side == trial.real_side else trial.pair.generated

    def answer(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or set(body) - {"session", "trial", "choice", "response_ms"}:
            raise BadRequest(
                HTTPStatus.BAD_REQUEST, "expected {session, trial, choice[, response_ms]}"
            )
        trial_index, choice = body.get("trial"), body.get("choice")
        response_ms = body.get("response_ms")
        if not isinstance(trial_index, int) or isinstance(trial_index, bool):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "trial must be an integer")
        if choice not in SIDES:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "choice must be 'left' or 'right'")
        if response_ms is not None and (
            not isinstance(response_ms, int | float)
            or isinstance(response_ms, bool)
            or not 0 <= response_ms < 86_400_000
        ):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "response_ms must be a number of ms")
        with self.lock:
            session = self.session(body.get("session"))
            if trial_index != session.answered:
                raise BadRequest(
                    HTTPStatus.CONFLICT,
                    f"expected the answer to trial {session.answered}, got trial {trial_index}",
                )
            if session.answered >= len(session.trials):
                raise BadRequest(HTTPStatus.CONFLICT, "this session is finished")
            trial = session.trials[trial_index]
            correct = choice == trial.real_side
            record = {
                "session": body["session"],
                "participant": session.participant,
                "trial": trial.index,
                "phase": trial.phase,
                "method": trial.pair.method,
                "image": trial.pair.name,
                "real_side": trial.real_side,
                "choice": choice,
                "correct": correct,
                "judged_real": not correct,  # the generated image was taken for the real one
                "response_ms": None if response_ms is None else round(float(response_ms)),
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            append_record(self.results, record)
            session.answered += 1
            done = session.answered >= len(session.trials)
        reply: dict[str, Any] = {"ok": True, "done": done}
        if trial.phase == "practice":
            reply["correct"] = correct
            reply["real_side"] = trial.real_side
        return reply


class StudyHandler(BaseHTTPRequestHandler):
    """Routes requests to the :class:`StudyState` of its server."""

    server: StudyServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _fail(self, exc: BadRequest) -> None:
        self._json(exc.status, {"ok": False, "error": exc.message})

    def _body(self) -> Any:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise BadRequest(HTTPStatus.LENGTH_REQUIRED, "a Content-Length is required")
        if int(length) > MAX_BODY:
            raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
        raw = self.rfile.read(int(length))
        try:
            return json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "the body is not JSON") from exc

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        state = self.server.state
        try:
            if url.path in ("/", "/index.html"):
                page = study_page(state.practice, state.main, state.show_ms)
                self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
                return
            match = _IMAGE_PATH.match(url.path)
            if match is None:
                raise BadRequest(HTTPStatus.NOT_FOUND, "not found")
            path = state.image(match[1], int(match[2]), match[3])
            ctype = _CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
            self._send(HTTPStatus.OK, path.read_bytes(), ctype)
        except BadRequest as exc:
            self._fail(exc)

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        state = self.server.state
        try:
            if path == "/api/session":
                body = self._body()
                if not isinstance(body, dict):
                    raise BadRequest(HTTPStatus.BAD_REQUEST, "expected a JSON object")
                sid, session = state.new_session(body.get("participant") or None)
                trials = [
                    {
                        "index": t.index,
                        "phase": t.phase,
                        "left": f"/image/{sid}/{t.index}/left",
                        "right": f"/image/{sid}/{t.index}/right",
                    }
                    for t in session.trials
                ]
                self._json(
                    HTTPStatus.OK,
                    {"session": sid, "participant": session.participant, "trials": trials},
                )
            elif path == "/api/answer":
                self._json(HTTPStatus.OK, state.answer(self._body()))
            else:
                raise BadRequest(HTTPStatus.NOT_FOUND, "not found")
        except BadRequest as exc:
            self._fail(exc)
        except OSError as exc:  # the results file could not be written
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"ok": False, "error": str(exc)})

    def _not_allowed(self) -> None:
        self._fail(BadRequest(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed"))

    do_PUT = do_DELETE = do_PATCH = _not_allowed


class StudyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: StudyState, *, verbose: bool = False):
        super().__init__(address, StudyHandler)
        self.state, self.verbose = state, verbose


def make_server(
    pairs: Sequence[Pair],
    results: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    practice: int = PRACTICE_TRIALS,
    main: int = MAIN_TRIALS,
    show_ms: int = SHOW_MS,
    seed: int | None = None,
    verbose: bool = False,
) -> StudyServer:
    """A study server over ``pairs`` appending answers to ``results`` (not yet serving:
    call ``serve_forever``). ``port=0`` picks a free port (``server.server_port``)."""
    state = StudyState(
        pairs, Path(results), practice=practice, main=main, show_ms=show_ms, seed=seed
    )
    return StudyServer((host, port), state, verbose=verbose)
