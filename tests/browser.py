"""Headless Chromium for tests that open generated HTML pages from disk."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def chromium() -> str:
    """The browser's path; skips the test when none is installed (fails under CI's flag)."""
    found = (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )
    if found is None:
        msg = "chromium not installed (apt-get install -y chromium)"
        if os.environ.get("I2I_REQUIRE_BROWSER") == "1":
            pytest.fail(msg + "; I2I_REQUIRE_BROWSER=1 makes this an error")
        pytest.skip(msg)
    return found


def dump_dom(browser: str, page: Path, profile: Path) -> str:
    """The page's DOM after its scripts ran, from headless Chromium with no network chatter."""
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


class DevTools:
    """Headless Chromium driven over the DevTools protocol: navigate, run JavaScript, press and
    drag the mouse, choose files for an ``<input type=file>``, take screenshots.

    ``with DevTools(chromium(), tmp_path / "profile") as page: page.goto(url) ...``
    """

    def __init__(self, browser: str, profile: Path, *, width: int = 1280, height: int = 800):
        import websocket  # the test extra's websocket-client

        profile.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._id = 0
        try:
            port = self._port(profile / "DevToolsActivePort")
            page = self._first_page(port)
            self.ws = websocket.create_connection(
                page["webSocketDebuggerUrl"], timeout=120, suppress_origin=True
            )
            self.send("Page.enable")
            self.send(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
        except BaseException:
            self.process.kill()
            self.process.wait()
            raise

    def _port(self, path: Path, timeout: float = 60.0) -> int:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self.process.returncode}")
            lines = path.read_text().splitlines() if path.is_file() else []
            if lines and lines[0].isdigit():
                return int(lines[0])
            time.sleep(0.1)
        raise TimeoutError(f"chromium wrote no {path} in {timeout:.0f} s")

    @staticmethod
    def _first_page(port: int) -> dict:
        import json
        import time
        import urllib.request

        for _ in range(100):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]
            time.sleep(0.1)
        raise RuntimeError("chromium opened no page")

    def __enter__(self) -> DevTools:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection and end the browser process."""
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def send(self, method: str, **params: object) -> dict:
        """Call a DevTools method and return its result (events on the way are dropped)."""
        import json

        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> object:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(
                f"{expression!r} threw: {details.get('exception', {}).get('description', details)}"
            )
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0) -> object:
        """Poll ``expression`` until it is truthy; its value."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} still falsy after {timeout:.0f} s")
            time.sleep(0.05)

    def goto(self, url: str) -> None:
        """Open ``url`` and wait for its load event."""
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def center(self, selector: str) -> tuple[float, float]:
        """The viewport coordinates of the middle of the first element matching ``selector``."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        return box[0], box[1]

    def _mouse(self, kind: str, x: float, y: float, *, buttons: int) -> None:
        self.send(
            "Input.dispatchMouseEvent",
            type=kind,
            x=x,
            y=y,
            button="left",
            buttons=buttons,
            clickCount=1 if kind != "mouseMoved" else 0,
        )

    def click(self, selector: str) -> None:
        """Press and release the left button on the middle of an element, as a person would."""
        x, y = self.center(selector)
        self._mouse("mousePressed", x, y, buttons=1)
        self._mouse("mouseReleased", x, y, buttons=0)

    def drag(self, points: list[tuple[float, float]]) -> None:
        """Press the left button at the first point, move through the rest, release."""
        (x, y), rest = points[0], points[1:]
        self._mouse("mouseMoved", x, y, buttons=0)
        self._mouse("mousePressed", x, y, buttons=1)
        for x, y in rest:
            self._mouse("mouseMoved", x, y, buttons=1)
        self._mouse("mouseReleased", x, y, buttons=0)

    def set_files(self, selector: str, *paths: Path) -> None:
        """Choose files in an ``<input type=file>`` (fires its change event)."""
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.send("DOM.setFileInputFiles", nodeId=node, files=[str(p) for p in paths])

    def screenshot(self) -> bytes:
        """The viewport as PNG bytes."""
        import base64

        return base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
