"""The perceptual study: trial plans, the answers file, the server's refusals, the real page."""

from __future__ import annotations

import http.client
import json
import random
import select
import socket
import threading
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from i2i.cli import build_cli
from i2i.eval.report import ReportWriter
from i2i.study.protocol import (
    Pair,
    StudyError,
    append_record,
    load_pairs,
    plan_trials,
    read_records,
    summarise,
)
from i2i.study.server import make_server
from tests.browser import chromium
from tests.cdp import Browser
from tests.http_raw import raw


def make_results(folder: Path, n: int = 3, seed: int = 0) -> Path:
    """An `i2i eval --out`-style report folder of n tiny output/target pairs."""
    g = torch.Generator().manual_seed(seed)
    report = ReportWriter(folder, title="demo")
    for i in range(n):
        out, real = torch.rand(3, 16, 16, generator=g), torch.rand(3, 16, 16, generator=g)
        report.add(str(i), {}, output=out, target=real, input=real)
    report.finish({}, higher_is_better={})
    return folder


@pytest.fixture
def pairs(tmp_path) -> list[Pair]:
    return load_pairs(make_results(tmp_path / "unet"), "unet") + load_pairs(
        make_results(tmp_path / "encdec", seed=1)
    )


@pytest.fixture
def server(pairs, tmp_path):
    srv = make_server(pairs, tmp_path / "answers.jsonl", port=0, practice=2, main=4, seed=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(srv, method: str, path: str, body: bytes | None = None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def post(srv, path: str, data) -> tuple[int, dict]:
    raw = json.dumps(data).encode()
    status, body = request(srv, "POST", path, raw, {"Content-Type": "application/json"})
    return status, json.loads(body)


def serving(srv):
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    return srv


def test_the_paper_protocol_plans_10_practice_then_40_trials_over_every_method(pairs):
    plan = plan_trials(pairs, rng=random.Random(1))
    assert [t.phase for t in plan] == ["practice"] * 10 + ["main"] * 40
    main = [t for t in plan if t.phase == "main"]
    counts = {m: sum(t.pair.method == m for t in main) for m in ("unet", "encdec")}
    assert counts == {"unet": 20, "encdec": 20}  # methods take turns
    sides = {t.real_side for t in plan}
    assert sides == {"left", "right"}


def test_result_folders_are_read_and_bad_ones_refused(tmp_path, pairs):
    assert {p.method for p in pairs} == {"unet", "encdec"} and len(pairs) == 6
    assert all(p.generated.is_file() and p.real.is_file() for p in pairs)
    with pytest.raises(StudyError, match="no metrics.json"):
        load_pairs(tmp_path)
    bad = tmp_path / "escape"
    bad.mkdir()
    (bad / "metrics.json").write_text(
        json.dumps({"images": [{"images": {"output": "../x.png", "target": "a.png"}}]})
    )
    with pytest.raises(StudyError, match="outside"):
        load_pairs(bad)


def test_concurrent_appends_never_tear_lines(tmp_path):
    path = tmp_path / "answers.jsonl"
    record = {"phase": "main", "method": "m", "judged_real": True, "pad": "x" * 3000}

    def writer():
        for _ in range(50):
            append_record(path, record)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records, bad = read_records(path)
    assert len(records) == 400 and bad == 0


def test_malformed_answers_get_4xx_and_leave_the_results_file_unchanged(server, tmp_path):
    answers = tmp_path / "answers.jsonl"
    status, session = post(server, "/api/session", {"participant": "ann"})
    assert status == 200
    sid = session["session"]
    assert post(server, "/api/answer", {"session": sid, "trial": 0, "choice": "left"})[0] == 200
    before = answers.read_bytes()
    assert before.count(b"\n") == 1
    bad_json = [
        {"session": sid, "trial": 0, "choice": "left"},  # answered already
        {"session": sid, "trial": 2, "choice": "left"},  # skips trial 1
        {"session": sid, "trial": 1, "choice": "up"},
        {"session": sid, "trial": "1", "choice": "left"},
        {"session": sid, "trial": True, "choice": "left"},
        {"session": sid, "trial": 1},
        {"session": "nope", "trial": 1, "choice": "left"},
        {"session": sid, "trial": 1, "choice": "left", "response_ms": -5},
        {"session": sid, "trial": 1, "choice": "left", "extra": 1},
        [sid, 1, "left"],
    ]
    for body in bad_json:
        status, reply = post(server, "/api/answer", body)
        assert 400 <= status < 500 and reply["ok"] is False, body
    raw_requests = [
        ("POST", "/api/answer", b"{not json", {"Content-Type": "application/json"}),
        ("POST", "/api/answer", b"\xff\xfe", {}),
        ("POST", "/api/answer", b"x" * 5000, {}),
        ("GET", "/api/answer", None, {}),
        ("PUT", "/api/answer", b"{}", {}),
        ("GET", "/image/nope/0/left", None, {}),
        ("GET", f"/image/{sid}/99/left", None, {}),
        ("GET", f"/image/{sid}/0/middle", None, {}),
        ("POST", "/api/session", json.dumps({"participant": "<script>"}).encode(), {}),
    ]
    for method, path, body, headers in raw_requests:
        status, _ = request(server, method, path, body, headers)
        assert 400 <= status < 500, (method, path, status)
    assert answers.read_bytes() == before
    # the session still takes its next answer
    assert post(server, "/api/answer", {"session": sid, "trial": 1, "choice": "right"})[0] == 200


def test_summary_counts_judged_real_with_standard_errors(tmp_path, pm):
    path = tmp_path / "answers.jsonl"
    for i in range(10):
        append_record(path, {"phase": "main", "method": "unet", "judged_real": i < 3})
        append_record(path, {"phase": "practice", "method": "unet", "judged_real": True})
    with path.open("a") as f:
        f.write("not json\n")
    summary = summarise(read_records(path)[0])
    assert summary["unet"]["n"] == 10 and summary["unet"]["percent"] == pytest.approx(30.0)
    assert summary["unet"]["stderr"] == pytest.approx(100 * (0.3 * 0.7 / 10) ** 0.5)
    result = CliRunner().invoke(build_cli(pm), ["study", "summary", str(path)])
    assert result.exit_code == 0, result.output
    assert "30.0% +- 14.5%" in result.output and "1 line(s)" in result.output


def test_the_study_page_in_chromium_through_practice_and_main_trials(server, tmp_path, pm):
    browser_path = chromium()
    answers = tmp_path / "answers.jsonl"
    with Browser(browser_path, tmp_path / "profile") as browser:
        browser.open(f"http://127.0.0.1:{server.server_port}/?participant=bob")
        assert browser.wait_for("document.body.dataset.state === 'intro'")
        browser.press(" ", "Space", 32)
        feedback = []
        for trial in range(6):
            browser.wait_for(
                "document.body.dataset.state === 'answer' && "
                f"document.body.dataset.trial === '{trial}'"
            )
            # while showing, both images were on screen; now they are hidden
            assert (
                browser.eval("getComputedStyle(document.querySelector('#left img')).visibility")
                == "hidden"
            )
            if trial % 2:
                browser.click("#right")
            else:
                browser.press("f", "KeyF", 70)
            if trial < 2:  # practice: the page says whether the answer was right
                browser.wait_for("document.body.dataset.state === 'feedback'")
                feedback.append(browser.eval("document.getElementById('message').textContent"))
            if trial == 1:  # the break between practice and the main trials
                browser.wait_for("document.body.dataset.state === 'break'")
                browser.click("#go")
        assert browser.wait_for("document.body.dataset.state === 'done'")
    assert all(f.startswith(("Correct", "Wrong")) for f in feedback) and len(feedback) == 2
    records, bad = read_records(answers)
    assert bad == 0 and [r["trial"] for r in records] == list(range(6))
    assert [r["choice"] for r in records] == ["left", "right"] * 3
    assert {r["participant"] for r in records} == {"bob"}
    assert [r["phase"] for r in records] == ["practice"] * 2 + ["main"] * 4
    result = CliRunner().invoke(build_cli(pm), ["study", "summary", str(answers), "--json"])
    assert result.exit_code == 0, result.output
    methods = json.loads(result.output)["methods"]
    assert sum(m["n"] for m in methods.values()) == 4
    judged = sum(r["judged_real"] for r in records if r["phase"] == "main")
    assert sum(m["judged_real"] for m in methods.values()) == judged


def test_serve_command_serves_the_page_and_refuses_a_folder_without_results(tmp_path, pm):
    import re
    import signal
    import subprocess
    import sys
    import urllib.request

    make_results(tmp_path / "unet")
    answers = tmp_path / "answers.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "i2i",
            "study",
            "serve",
            f"U-Net={tmp_path / 'unet'}",
            "--answers",
            str(answers),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "study page:" in line:
                break
        assert "3 pairs from 1 methods: U-Net" in lines[0], lines
        url = re.search(r"http://127\.0\.0\.1:\d+/", lines[-1])[0]
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200 and b"Which one is real?" in page.read()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0 and not answers.exists()
    missing = CliRunner().invoke(
        build_cli(pm), ["study", "serve", str(tmp_path), "--answers", str(answers)]
    )
    assert missing.exit_code == 1 and "no metrics.json" in missing.output


def test_a_foreign_host_is_refused_unless_served_beyond_loopback_on_purpose(
    server, pairs, tmp_path
):
    refused = (403, {"ok": False, "error": "this study answers only at 127.0.0.1 or localhost"})
    page = b"GET / HTTP/1.0\r\nHost: evil.example\r\n\r\n"
    assert raw(server, page) == refused  # a page elsewhere rebinding its name to 127.0.0.1
    assert raw(server, b"GET / HTTP/1.0\r\n\r\n") == refused  # no Host at all
    session = b"POST /api/session HTTP/1.0\r\nHost: evil.example:%d\r\nContent-Length: 2\r\n\r\n{}"
    assert raw(server, session % server.server_port) == refused
    assert server.state.sessions == {}  # refused before anything happened
    for host in (f"localhost:{server.server_port}", "127.0.0.1", "LOCALHOST"):
        assert raw(server, f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())[0] == 200
    # bound beyond loopback (--host 0.0.0.0), any name may reach it
    open_srv = serving(make_server(pairs, tmp_path / "a.jsonl", host="0.0.0.0", port=0))
    try:
        assert raw(open_srv, page)[0] == 200
    finally:
        open_srv.shutdown()
        open_srv.server_close()


def test_a_stalled_request_gets_a_408_and_holds_only_its_own_thread(pairs, tmp_path):
    srv = serving(make_server(pairs, tmp_path / "answers.jsonl", port=0, timeout=1))
    try:
        with socket.create_connection(("127.0.0.1", srv.server_port), timeout=30) as stalled:
            stalled.sendall(
                b"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"
            )
            start = time.monotonic()
            assert post(srv, "/api/session", {"participant": "ann"})[0] == 200
            assert time.monotonic() - start < 1  # not after the stalled one
            ready, _, _ = select.select([stalled], [], [], 15)
            assert ready, "the stalled request got no answer"
            answer = b""
            while chunk := stalled.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert answer.endswith(
            b'{"ok": false, "error": "the request body did not arrive within 1 s"}'
        )
        assert len(srv.state.sessions) == 1
    finally:
        srv.shutdown()
        srv.server_close()


def test_malformed_sessions_and_headers_get_a_json_4xx_and_the_server_goes_on(server):
    for participant in (["a"], 5, 0, 1.5, True, {"a": 1}, "a" * 65, "ann\n", "<b>"):
        status, reply = post(server, "/api/session", {"participant": participant})
        assert status == 400, participant
        assert reply == {
            "ok": False,
            "error": "participant must be a name of 1-64 letters, digits, '_', '.', '@', '-'",
        }
    assert post(server, "/api/session", {"participant": "a", "admin": True})[0] == 400
    assert post(server, "/api/session", ["a"])[0] == 400
    assert server.state.sessions == {}
    nested = b"[" * 4000
    assert request(server, "POST", "/api/answer", nested)[0] == 400
    head = b"POST /api/session HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: "
    assert raw(server, head + b"\xb2\r\n\r\n{}") == (  # a Unicode digit: "²"
        400,
        {"ok": False, "error": "bad Content-Length '\u00b2'"},
    )
    assert raw(server, head + b"\xd9\xa1\r\n\r\n{}")[0] == 400
    assert raw(server, b"GET / and HTTP/1.0\r\n\r\n") == (
        400,
        {"ok": False, "error": "Bad request syntax ('GET / and HTTP/1.0')"},
    )
    assert raw(server, b"OPTIONS / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n") == (
        405,
        {"ok": False, "error": "OPTIONS is not served here"},
    )
    # a participant left out, null or empty is named by the session's id
    for body in ({}, {"participant": None}, {"participant": ""}):
        status, reply = post(server, "/api/session", body)
        assert status == 200 and reply["participant"] == reply["session"]


def test_an_answers_file_that_cannot_be_appended_is_refused_before_serving(
    tmp_path, pairs, pm, monkeypatch
):
    from i2i.study.server import StudyServer

    afile = tmp_path / "afile.txt"
    afile.write_text("not a folder\n")
    bad = {
        tmp_path / "nodir" / "a.jsonl": "folder {parent} does not exist",
        afile / "a.jsonl": "{parent} is not a folder",
        tmp_path: "it is not a file",
    }
    for path, why in bad.items():
        message = f"cannot append answers to {path}: " + why.format(parent=path.parent)
        with pytest.raises(StudyError) as caught:
            make_server(pairs, path, port=0).server_close()
        assert str(caught.value) == message
    assert not (tmp_path / "nodir").exists()

    def served(self):
        raise AssertionError("it served")

    monkeypatch.setattr(StudyServer, "serve_forever", served)
    for path, why in list(bad.items())[:2]:  # tmp_path / "unet" holds results (pairs)
        message = f"cannot append answers to {path}: " + why.format(parent=path.parent)
        result = CliRunner().invoke(
            build_cli(pm),
            ["study", "serve", str(tmp_path / "unet"), "--answers", str(path), "--port", "0"],
        )
        assert result.exit_code == 1 and f"Error: {message}\n" in result.output, result.output
    monkeypatch.undo()
    # an existing answers file is appended to, never truncated
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"earlier": 1}\n')
    srv = serving(make_server(pairs, answers, port=0, practice=1, main=1))
    try:
        assert answers.read_text() == '{"earlier": 1}\n'
        status, session = post(srv, "/api/session", {})
        assert (
            post(srv, "/api/answer", {"session": session["session"], "trial": 0, "choice": "left"})[
                0
            ]
            == 200
        )
    finally:
        srv.shutdown()
        srv.server_close()
    assert answers.read_text().startswith('{"earlier": 1}\n{"')
    assert afile.read_text() == "not a folder\n"
