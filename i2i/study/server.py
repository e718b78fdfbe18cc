"""The study's web server: the page, each participant's trial plan, their images, their answers.

Stdlib only (:class:`http.server.ThreadingHTTPServer`). Routes:

- ``GET /``: the study page (``?participant=NAME`` names the participant in the results).
- ``POST /api/session``: a new participant session, ``{"participant": NAME}`` -> its trials.
- ``GET /image/SESSION/TRIAL/left`` (or ``right``): the image shown on that side.
- ``POST /api/answer``: ``{"session", "trial", "choice": "left"|"right", "response_ms"}``.

Answers must come in trial order, once each; anything else (bad JSON, a participant that is
not a name, an unknown session, a repeated or skipped trial, a bad choice, a body over 4 KiB)
gets a 4xx with a JSON body ``{"ok": false, "error": message}`` and writes nothing. Bound to
loopback (the default), the server answers only at 127.0.0.1 or localhost (or the ``--host``
given); each connection has a socket timeout (a stalled request holds only its own thread; a
stalled body gets a 408). The plumbing is
:mod:`i2i.web`'s, shared with the demo's server. :func:`make_server` checks that the answers
file can be appended to before it listens.

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
    check_answers_file,
    plan_trials,
)
from i2i.web import TIMEOUT, JsonHandler, LocalServer, RequestError

MAX_BODY = 4096
_IMAGE_PATH = re.compile(r"/image/([A-Za-z0-9_-]{1,64})/([0-9]{1,4})/(left|right)")
_PARTICIPANT = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


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

    def new_session(self, participant: Any = None) -> tuple[str, Session]:
        """A new session with its trial plan; ``participant`` None or "" names it by its id."""
        if participant == "":
            participant = None
        if participant is not None and not (
            isinstance(participant, str) and _PARTICIPANT.fullmatch(participant)
        ):
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                "participant must be a name of 1-64 letters, digits, '_', '.', '@', '-'",
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
            raise RequestError(HTTPStatus.NOT_FOUND, "unknown session")
        return session

    def image(self, sid: str, index: int, side: str) -> Path:
        session = self.session(sid)
        if index >= len(session.trials):
            raise RequestError(HTTPStatus.NOT_FOUND, "no such trial")
        trial = session.trials[index]
        return trial.pair.real if side == trial.real_side else trial.pair.generated

    def answer(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or set(body) - {"session", "trial", "choice", "response_ms"}:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, "expected {session, trial, choice[, response_ms]}"
            )
        trial_index, choice = body.get("trial"), body.get("choice")
        response_ms = body.get("response_ms")
        if not isinstance(trial_index, int) or isinstance(trial_index, bool):
            raise RequestError(HTTPStatus.BAD_REQUEST, "trial must be an integer")
        if choice not in SIDES:
            raise RequestError(HTTPStatus.BAD_REQUEST, "choice must be 'left' or 'right'")
        if response_ms is not None and (
            not isinstance(response_ms, int | float)
            or isinstance(response_ms, bool)
            or not 0 <= response_ms < 86_400_000
        ):
            raise RequestError(HTTPStatus.BAD_REQUEST, "response_ms must be a number of ms")
        with self.lock:
            session = self.session(body.get("session"))
            if trial_index != session.answered:
                raise RequestError(
                    HTTPStatus.CONFLICT,
                    f"expected the answer to trial {session.answered}, got trial {trial_index}",
                )
            if session.answered >= len(session.trials):
                raise RequestError(HTTPStatus.CONFLICT, "this session is finished")
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


class StudyHandler(JsonHandler):
    """Routes requests to the :class:`StudyState` of its server."""

    server: StudyServer
    server_version = "i2i-study"
    protocol_version = "HTTP/1.1"

    def error_body(self, message: str) -> dict[str, Any]:
        return {"ok": False, "error": message}

    def _body(self) -> Any:
        length = self.content_length()
        if length is None:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length is required")
        if length > MAX_BODY:
            self.drain(length)
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
        raw = self.read_body(length)
        try:
            return json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is not JSON") from exc

    def do_GET(self) -> None:  # noqa: N802
        routes = {"/": self._page, "/index.html": self._page}
        path = urlsplit(self.path).path
        if match := _IMAGE_PATH.fullmatch(path):
            routes[path] = lambda: self._image(match[1], int(match[2]), match[3])
        self.dispatch(routes)

    do_HEAD = do_GET  # noqa: N815

    def do_POST(self) -> None:  # noqa: N802
        self.dispatch({"/api/session": self._session, "/api/answer": self._answer})

    def _page(self) -> None:
        state = self.server.state
        page = study_page(state.practice, state.main, state.show_ms)
        self.send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")

    def _image(self, sid: str, index: int, side: str) -> None:
        path = self.server.state.image(sid, index, side)
        ctype = _CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
        self.send(HTTPStatus.OK, path.read_bytes(), ctype)

    def _session(self) -> None:
        body = self._body()
        if not isinstance(body, dict) or set(body) - {"participant"}:
            raise RequestError(HTTPStatus.BAD_REQUEST, "expected {[participant]}")
        sid, session = self.server.state.new_session(body.get("participant"))
        trials = [
            {
                "index": t.index,
                "phase": t.phase,
                "left": f"/image/{sid}/{t.index}/left",
                "right": f"/image/{sid}/{t.index}/right",
            }
            for t in session.trials
        ]
        self.send_json(
            HTTPStatus.OK, {"session": sid, "participant": session.participant, "trials": trials}
        )

    def _answer(self) -> None:
        self.send_json(HTTPStatus.OK, self.server.state.answer(self._body()))


class StudyServer(LocalServer):
    """A threading HTTP server holding the study's :class:`StudyState`."""

    what = "study"

    def __init__(
        self,
        address: tuple[str, int],
        state: StudyState,
        *,
        timeout: float = TIMEOUT,
        verbose: bool = False,
    ):
        super().__init__(address, StudyHandler, timeout=timeout, log=verbose)
        self.state = state


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
    timeout: float = TIMEOUT,
    verbose: bool = False,
) -> StudyServer:
    """A study server over ``pairs`` appending answers to ``results`` (not yet serving:
    call ``serve_forever``). ``port=0`` picks a free port (``server.server_port``); ``timeout``
    is how many seconds a connection may stay silent. A :class:`StudyError` if ``results``
    cannot be appended to."""
    check_answers_file(results)
    state = StudyState(
        pairs, Path(results), practice=practice, main=main, show_ms=show_ms, seed=seed
    )
    return StudyServer((host, port), state, timeout=timeout, verbose=verbose)
