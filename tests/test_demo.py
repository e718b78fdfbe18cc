"""``i2i demo``: the page in headless Chromium, the server's refusals, the command itself."""

from __future__ import annotations

import http.client
import io
import json
import os
import queue
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from i2i.catalog import Catalog
from i2i.data import decode_image
from i2i.demo import Limits, load_models, make_server
from i2i.demo.server import DemoServer
from i2i.engine.devices import resolve_precision
from i2i.plugins import make_plugin_manager
from i2i.task import CANVASES
from tests.browser import DevTools, chromium
from tests.conftest import REPO_ROOT, data_root_path
from tests.http_raw import raw

# A facades run as the "i2i run --task facades ... && i2i demo --checkpoint runs/f",
# trained for 2 steps with the smallest built-in U-Net on 128-pixel crops of 6 real files.
RUN = ["--task", "facades", "--gen", "unet_128", "--gen-opt", "ngf=8", "--disc", "patch16",
       "--disc-opt", "ndf=8", "--load-size", "128", "--crop-size", "128", "--max-steps", "2",
       "--num-workers", "0", "--device", "cpu", "--precision", "fp32", "--quiet"]  # fmt: skip


def env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "I2I_LOAD_PLUGINS": "",
        "OMP_NUM_THREADS": "2",
    }


def train_facades(out: Path, work: Path) -> Path:
    """``i2i run --task facades`` for 2 steps on 2 train and 4 val files of the real data."""
    root = data_root_path() / "facades"
    if not (root / "train").is_dir():
        msg = f"real data not found at {root.parent} (set I2I_DATA)"
        if os.environ.get("I2I_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    data = work / "facades"
    for split, names in (("train", ["1", "2"]), ("val", ["1", "2", "3", "4"])):
        (data / split).mkdir(parents=True)
        for name in names:
            shutil.copy(root / split / f"{name}.jpg", data / split)
    done = subprocess.run(
        [sys.executable, "-m", "i2i", "run", *RUN, "--data", str(data), "--out", str(out)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def facades_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("demo")
    return train_facades(work / "runs" / "f", work)


@pytest.fixture(scope="module")
def models(facades_run):
    catalog = Catalog.from_plugin_manager(make_plugin_manager(load_entrypoints=False))
    return load_models([facades_run], catalog=catalog, device="cpu")


def serve(models, limits: Limits = Limits()) -> tuple[DemoServer, threading.Thread]:
    server = make_server(models, limits=limits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def server(models):
    srv, thread = serve(models, Limits(max_bytes=300_000, max_pixels=200 * 200, timeout=5))
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def request(server: DemoServer, method: str, path: str, body: bytes | None = None, **headers):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read()
    finally:
        conn.close()


def still_serving(server: DemoServer) -> None:
    status, kind, body = request(server, "GET", "/api/models")
    assert status == 200 and kind == "application/json"
    assert json.loads(body)["models"][0]["task"] == "facades"


# ---------------------------------------------------------------------- the page in Chromium


PIXEL = """(() => {{ const c = document.getElementById('input');
  const d = c.getContext('2d').getImageData({x}, {y}, 1, 1).data; return [d[0], d[1], d[2]]; }})()"""
OUTPUT_PIXELS = """(async () => { const img = document.getElementById('output');
  const c = new OffscreenCanvas(img.naturalWidth, img.naturalHeight); const g = c.getContext('2d');
  g.drawImage(img, 0, 0); return Array.from(g.getImageData(0, 0, c.width, c.height).data); })()"""


def canvas_points(
    page: DevTools, fractions: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    left, top, width, height = page.evaluate(
        "(() => { const r = document.getElementById('input').getBoundingClientRect();"
        " return [r.left, r.top, r.width, r.height]; })()"
    )
    return [(left + fx * width, top + fy * height) for fx, fy in fractions]


def translations(page: DevTools) -> int:
    return int(page.evaluate("Number(document.body.dataset.translations || 0)"))


def wait_translation(page: DevTools, after: int) -> int:
    page.wait_for(f"Number(document.body.dataset.translations || 0) > {after}", timeout=120)
    return translations(page)


def test_the_page_draws_picks_a_class_and_uploads_in_chromium(models, tmp_path):
    from i2i.demo import DemoModel
    from i2i.inference import Translator

    browser = chromium()
    facades = models[0].translator.task
    torch.manual_seed(0)  # a second model to compare with: one 1x1 convolution
    other = DemoModel(
        "conv", Translator(torch.nn.Conv2d(3, 3, 1), facades, config={"crop_size": 128}), "c"
    )
    server, thread = serve([*models, other])
    try:
        with DevTools(browser, tmp_path / "profile") as page:
            page.goto(server.url)
            page.wait_for("document.body.dataset.ready === '1'")
            done = wait_translation(page, 0)  # the first example input, translated
            names = page.evaluate(
                "[...document.querySelectorAll('#tools button')].map(b => b.textContent)"
            )
            assert names == list(facades.class_names)
            size = page.evaluate(
                "[document.getElementById('input').width, document.getElementById('input').height]"
            )
            assert size == [128, 128]

            # a stroke with the preselected class, then another class and a second stroke
            page.drag(canvas_points(page, [(0.2, 0.3), (0.5, 0.3), (0.8, 0.35)]))
            done = wait_translation(page, done)
            assert page.evaluate(PIXEL.format(x=64, y=38)) == list(facades.class_colors[1])
            page.click('#tools button[data-class="2"]')
            assert (
                page.evaluate(
                    "document.querySelector('#tools button[data-class=\"2\"]').getAttribute('aria-pressed')"
                )
                == "true"
            )
            before = page.evaluate(OUTPUT_PIXELS)
            page.drag(canvas_points(page, [(0.3, 0.7), (0.5, 0.75), (0.7, 0.7)]))
            done = wait_translation(page, done)
            assert page.evaluate(PIXEL.format(x=64, y=96)) == list(facades.class_colors[2])
            assert page.evaluate("document.body.dataset.strokes") == "2"
            output = page.evaluate(
                "[document.getElementById('output').naturalWidth, document.getElementById('output').naturalHeight]"
            )
            assert output == [128, 128]  # the canvas's size
            after = page.evaluate(OUTPUT_PIXELS)
            assert after != before  # the output follows the drawing
            expected = models[0].translate(
                decode_image(page_canvas_png(page)), mode="paper", seed=0
            )
            assert_same_image(after, expected)

            # an upload of another size comes back translated at that size
            upload = tmp_path / "labels.png"
            rng = np.random.default_rng(0)
            labels = rng.integers(0, len(facades.palette), (10, 12))
            colors = np.array(facades.class_colors, dtype=np.uint8)[labels]
            Image.fromarray(colors).resize((96, 80), Image.NEAREST).save(upload)
            page.set_files("#upload", upload)
            done = wait_translation(page, done)
            size = page.evaluate(
                "[document.getElementById('input').width, document.getElementById('input').height]"
            )
            output = page.evaluate(
                "[document.getElementById('output').naturalWidth, document.getElementById('output').naturalHeight]"
            )
            assert size == output == [96, 80]
            expected = models[0].translate(decode_image(upload.read_bytes()), mode="paper", seed=0)
            assert_same_image(page.evaluate(OUTPUT_PIXELS), expected)

            # eval mode is deterministic, and a refused upload is shown and changes nothing
            page.evaluate(
                "document.getElementById('mode').value = 'eval'; document.getElementById('mode').dispatchEvent(new Event('change'))"
            )
            done = wait_translation(page, done)
            expected = models[0].translate(decode_image(upload.read_bytes()), mode="eval")
            assert_same_image(page.evaluate(OUTPUT_PIXELS), expected)
            text = tmp_path / "notes.png"
            text.write_text("not a picture")
            page.set_files("#upload", text)
            message = page.wait_for("document.body.dataset.error")
            assert message.startswith("415: Cannot read image notes.png: not an image")
            assert page.evaluate("document.getElementById('status').textContent") == message
            assert translations(page) == done

            # the other model translates the same drawing; the downloads are the two images
            page.evaluate(
                "document.getElementById('model').value = '1';"
                " document.getElementById('model').dispatchEvent(new Event('change'))"
            )
            done = wait_translation(page, done)
            kept = np.asarray(Image.open(upload))[10, 10].tolist()
            assert page.evaluate(PIXEL.format(x=10, y=10)) == kept  # the drawing stayed
            expected = other.translate(decode_image(upload.read_bytes()), mode="eval")
            assert_same_image(page.evaluate(OUTPUT_PIXELS), expected)
            downloads = tmp_path / "downloads"
            page.send("Page.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
            page.click("#download-input")
            page.click("#download-output")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(list(downloads.glob("*.png"))) < 2:
                time.sleep(0.1)
            assert decode_image((downloads / "input.png").read_bytes()).shape == (3, 80, 96)
            assert_same_image(
                decode_image((downloads / "output.png").read_bytes()), expected, layout="chw"
            )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def page_canvas_png(page: DevTools) -> bytes:
    import base64

    url = page.evaluate("document.getElementById('input').toDataURL('image/png')")
    return base64.b64decode(url.split(",", 1)[1])


def assert_same_image(pixels, expected: torch.Tensor, layout: str = "rgba") -> None:
    """The page's output pixels (flat RGBA bytes, or a (3, H, W) tensor in [0, 1] with
    ``layout="chw"``) equal the translation computed here, up to 8-bit rounding."""
    h, w = expected.shape[1:]
    if layout == "chw":
        got = (pixels.permute(1, 2, 0).numpy() * 255).round().astype(np.int16)
    else:
        got = np.asarray(pixels, dtype=np.int16).reshape(h, w, 4)[:, :, :3]
    want = (expected.permute(1, 2, 0).numpy() * 255).round().astype(np.int16)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1


# ---------------------------------------------------------------------- refusals


def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(server):
    photo = png(Image.new("RGB", (64, 48), (0, 48, 255)))
    status, kind, body = request(server, "POST", "/api/translate?mode=eval", photo)
    assert status == 200 and kind == "image/png"
    assert Image.open(io.BytesIO(body)).size == (64, 48)

    cases = [
        # a non-image, named in the message when the page passes its name
        ("POST", "/api/upload?name=notes.txt", b"hello, not a picture", 415,
         "Cannot read image notes.txt: not an image that PIL recognises"),
        ("POST", "/api/translate", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, 415, "Cannot read image"),
        # too many pixels: refused before decoding them
        ("POST", "/api/upload", png(Image.new("RGB", (400, 300))), 413,
         "400x300 is 120000 pixels, more than the 40000 allowed"),
        # too many bytes
        ("POST", "/api/translate", os.urandom(400_000), 413,
         "the upload is 0.4 MiB; the limit is 0.3 MiB"),
        # malformed requests
        ("POST", "/api/translate", b"", 400, "the request has no image (empty body)"),
        ("POST", "/api/translate?mode=fast", photo, 400, "mode must be one of paper, eval"),
        ("POST", "/api/translate?seed=-1", photo, 400, "seed must be a whole number"),
        ("POST", "/api/translate?model=7", photo, 400, "model must be a number from 0 to 0"),
        ("GET", "/api/example?index=9", None, 404, "has 4 example(s)"),
        ("GET", "/../../etc/passwd", None, 404, "no such page"),
        ("GET", "/demo.py", None, 404, "no such page"),
        ("DELETE", "/", None, 405, "DELETE is not served here"),
    ]  # fmt: skip
    for method, path, body, want, message in cases:
        status, kind, answer = request(server, method, path, body)
        assert (status, kind) == (want, "application/json"), (path, answer)
        assert message in json.loads(answer)["error"], (path, answer)
        still_serving(server)

    no_length = b"POST /api/translate HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    assert raw(server, no_length) == (
        411,
        {"error": "send the image as the request body with its length"},
    )
    bad_length = b"POST /api/translate HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: ten\r\n\r\n"
    assert raw(server, bad_length) == (400, {"error": "bad Content-Length 'ten'"})
    short = b"POST /api/translate HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 900\r\n\r\n\x89PNG"
    assert raw(server, short) == (400, {"error": "the request body ended after 4 of 900 bytes"})
    assert raw(server, b"GET / and HTTP/1.0\r\n\r\n") == (
        400,
        {"error": "Bad request syntax ('GET / and HTTP/1.0')"},
    )
    assert raw(server, b"HELLO\r\n\r\n")[0] == 400
    other_host = b"GET /api/models HTTP/1.0\r\nHost: attacker.example:80\r\n\r\n"
    assert raw(server, other_host) == (
        403,
        {"error": "this demo answers only at 127.0.0.1 or localhost"},
    )
    still_serving(server)


def test_numbers_are_ascii_digits_so_unicode_digits_get_a_400_not_a_500(server):
    photo = png(Image.new("RGB", (32, 32), (0, 48, 255)))
    many = "1" * 5000  # more digits than int() converts
    cases = [
        ("GET", "/api/example?model=%C2%B2&index=0", None, "model must be a number from 0 to 0 "
         "(see /api/models), got '\u00b2'"),
        ("GET", "/api/example?model=%D9%A0&index=0", None, "got '\u0660'"),  # Arabic-Indic 0
        ("GET", f"/api/example?model={many}&index=0", None, "model must be a number from 0 to 0"),
        ("GET", "/api/example?index=%C2%B2", None, "has 4 example(s); got index '\u00b2'"),
        ("GET", "/api/example?index=x", None, "has 4 example(s); got index 'x'"),
        ("POST", "/api/translate?model=%C2%B2", photo, "model must be a number from 0 to 0"),
        ("POST", "/api/translate?seed=%C2%B2", photo,
         "seed must be a whole number >= 0, got '\u00b2'"),
        ("POST", f"/api/translate?seed={many}", photo, "seed must be a whole number >= 0"),
        ("POST", "/api/upload?model=%C2%B2", photo, "model must be a number from 0 to 0"),
    ]  # fmt: skip
    for method, path, body, message in cases:
        status, kind, answer = request(server, method, path, body)
        assert (status, kind) == (400, "application/json"), (path, answer)
        assert message in json.loads(answer)["error"], (path, answer)
    head = b"POST /api/translate HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: "
    assert raw(server, head + b"\xb2\r\n\r\n" + photo) == (
        400,
        {"error": "bad Content-Length '\u00b2'"},
    )
    still_serving(server)


def test_a_stalled_client_does_not_hold_up_the_others(server):
    photo = png(Image.new("RGB", (32, 32), (0, 48, 255)))
    with socket.create_connection(server.server_address[:2], timeout=30) as stalled:
        stalled.sendall(
            b"POST /api/translate HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n\x89PNG"
        )
        start = time.monotonic()
        still_serving(server)
        status, _, _ = request(server, "POST", "/api/translate?mode=eval", photo)
        assert status == 200
        assert time.monotonic() - start < server.limits.timeout  # not after the stalled one
        # the stalled request times out alone, with an answer
        ready, _, _ = select.select([stalled], [], [], server.limits.timeout + 10)
        assert ready
        answer = b""
        while chunk := stalled.recv(65536):  # head and body may come in separate writes
            answer += chunk
        assert answer.startswith(b"HTTP/1.0 408 ")
        assert b'{"error": "the request body did not arrive within 5 s"}' in answer


def test_paper_mode_draws_dropout_by_seed_and_eval_mode_is_deterministic(server):
    rng = np.random.default_rng(1)
    photo = png(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)))

    def out(query: str) -> bytes:
        status, _, body = request(server, "POST", f"/api/translate?{query}", photo)
        assert status == 200
        return np.asarray(Image.open(io.BytesIO(body))).tobytes()

    assert out("mode=paper&seed=1") == out("mode=paper&seed=1")
    assert out("mode=paper&seed=1") != out("mode=paper&seed=2")
    assert out("mode=eval&seed=1") == out("mode=eval&seed=2")
    assert out("mode=eval") != out("mode=paper&seed=1")


def test_models_describe_the_task_for_the_page(server, models):
    status, _, body = request(server, "GET", "/api/models")
    (info,) = json.loads(body)["models"]
    task = models[0].translator.task
    assert info["canvas"] == "palette" and info["size"] == 128 and info["mode"] == "paper"
    assert [(p["name"], tuple(p["color"])) for p in info["palette"]] == list(task.palette)
    assert info["examples"] == 4 and "val" in info["examples_note"]
    status, kind, body = request(server, "GET", "/api/example?model=0&index=3")
    assert status == 200 and kind == "image/png"
    assert Image.open(io.BytesIO(body)).size == (128, 128)
    page = request(server, "GET", "/")[2].decode()
    assert '<canvas id="input"' in page and 'src="demo.js"' in page


def test_every_task_canvas_is_one_the_page_draws(catalog):
    script = (REPO_ROOT / "i2i" / "demo" / "static" / "demo.js").read_text()
    blank = re.search(r"const BLANK = \{(.*?)\};", script).group(1)
    assert {k.strip().split(":")[0] for k in blank.split(",") if ":" in k} == set(CANVASES)
    for name in catalog.tasks.names():
        task = catalog.tasks.get(name).obj
        assert task.canvas in CANVASES
        assert (task.canvas == "palette") == bool(task.palette), name


# ---------------------------------------------------------------------- the command


def test_demo_command_serves_until_interrupted_and_refuses_a_busy_port(facades_run, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "i2i", "demo", "--checkpoint", str(facades_run), "--examples", "1"],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
    reader.start()
    try:
        seen = []
        while not seen or "i2i demo at" not in seen[-1]:
            try:
                seen.append(lines.get(timeout=300))
            except queue.Empty:
                pytest.fail(f"i2i demo printed no address: {seen}; stderr: {proc.stderr.read()}")
        url = re.search(r"http://127\.0\.0\.1:(\d+)/", seen[-1])
        assert url, seen
        port = int(url.group(1))
        # bf16 on CPUs that run it natively
        auto = resolve_precision("auto", torch.device("cpu"), training=False)
        assert f"f: task facades, unet_128, paper mode, cpu {auto}" in seen[0]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/")
        assert b"<canvas" in conn.getresponse().read()
        conn.close()

        busy = subprocess.run(
            [sys.executable, "-m", "i2i", "demo", "-c", str(facades_run), "--port", str(port),
             "--examples", "0"],
            env=env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert busy.returncode == 1
        assert f"Error: cannot listen on 127.0.0.1:{port}" in busy.stderr
        assert "Traceback" not in busy.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    reader.join(timeout=60)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert proc.returncode == 0, proc.stderr.read()
    assert rest == ["stopped\n"]


def test_demo_command_names_a_bad_checkpoint(tmp_path):
    from click.testing import CliRunner

    from i2i.cli import build_cli

    (tmp_path / "empty").mkdir()
    cli = build_cli(make_plugin_manager(load_entrypoints=False))
    result = CliRunner().invoke(cli, ["demo", "--checkpoint", str(tmp_path / "empty")])
    assert result.exit_code == 1
    assert str(tmp_path / "empty") in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------------- the docs' screenshot


def test_make_screenshots_captures_the_page_after_a_stroke(facades_run, tmp_path):
    from tests.test_docs import DOCS, load_script

    chromium()  # skips without a browser
    shots = load_script(DOCS / "make_screenshots.py")
    assert shots.main(["--checkpoint", str(facades_run), "--dest", str(tmp_path)]) == 0
    with Image.open(tmp_path / "demo.png") as img:
        assert img.size == (shots.WIDTH, shots.HEIGHT)
        colours = img.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 50  # a page, not a blank window
    assert (tmp_path / "demo.png").stat().st_size < 300_000
    assert not list(tmp_path.glob(".*"))  # the browser profile is gone


def test_the_quickstart_shows_the_committed_screenshot():
    page = (REPO_ROOT / "docs" / "quickstart.md").read_text()
    assert "](_static/figures/demo.png)" in page
    with Image.open(REPO_ROOT / "docs" / "_static" / "figures" / "demo.png") as img:
        assert img.size == (1180, 640)


def test_a_failing_model_is_a_500_with_its_message_and_the_server_goes_on(models, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    srv, thread = serve(models)
    try:
        monkeypatch.setattr(models[0], "translate", broken)
        photo = png(Image.new("RGB", (32, 32)))
        status, kind, body = request(srv, "POST", "/api/translate", photo)
        assert (status, kind) == (500, "application/json")
        assert json.loads(body) == {"error": "RuntimeError: out of memory (simulated)"}
        still_serving(srv)
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


def test_example_inputs_are_drawn_as_the_model_sees_them(catalog):
    from i2i.demo import DemoModel, example_inputs
    from i2i.inference import Translator

    colorize = catalog.tasks.get("colorize").obj
    tr = Translator(torch.nn.Conv2d(1, 2, 1), colorize, config={"crop_size": 64, "load_size": 64})
    images, note = example_inputs(tr, 2)
    assert len(images) == 2 and "val inputs of" in note
    for img in images:  # gray, and what the model gets back from it is what the data gave
        assert img.shape == (3, 64, 64)
        assert all(torch.allclose(img[0], channel, atol=1e-4) for channel in img[1:])

    cartoon = catalog.tasks.get("photo2cartoon").obj  # unpaired, built-in data
    tr = Translator(torch.nn.Conv2d(3, 3, 1), cartoon, config={"crop_size": 64, "load_size": 64})
    images, note = example_inputs(tr, 1)
    assert [img.shape for img in images] == [(3, 64, 64)], note

    inpaint = catalog.tasks.get("inpaint").obj
    x = inpaint.make_pair(torch.rand(3, 64, 64), torch.Generator().manual_seed(0))[0][None]
    shown = inpaint.input_to_image(x)  # the hole in pure black, as the eraser draws it
    assert torch.allclose(inpaint.image_to_input(shown), x, atol=1e-6)
    model = DemoModel("m", Translator(torch.nn.Conv2d(4, 3, 1), inpaint), "m")
    assert torch.allclose(model.as_seen(shown[0]), shown[0], atol=1e-6)


def test_an_inpaint_upload_shows_its_transparent_hole_in_black(catalog):
    """As the eraser draws a hole, so the page gets an upload's transparent one back."""
    from i2i.demo import DemoModel
    from i2i.inference import Translator

    inpaint = catalog.tasks.get("inpaint").obj
    srv, thread = serve([DemoModel("m", Translator(torch.nn.Conv2d(4, 3, 1), inpaint), "m")])
    try:
        upload = Image.new("RGBA", (16, 16), (200, 150, 100, 255))
        upload.paste((255, 255, 255, 0), (4, 4, 8, 8))
        status, kind, body = request(srv, "POST", "/api/upload?name=hole.png", png(upload))
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()
    assert (status, kind) == (200, "image/png"), body
    seen = np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(int)
    assert (seen[4:8, 4:8] == 0).all()
    assert np.abs(seen[0, 0] - (200, 150, 100)).max() <= 1 and (seen[8:] != 0).all()


def test_no_data_means_no_examples_and_says_why(catalog, tmp_path):
    from i2i.demo import example_inputs
    from i2i.inference import Translator

    facades = catalog.tasks.get("facades").obj
    tr = Translator(torch.nn.Conv2d(3, 3, 1), facades, config={"data": str(tmp_path / "gone")})
    images, note = example_inputs(tr)
    assert images == [] and note.startswith("no example inputs: Data folder")
    assert str(tmp_path / "gone") in note


def test_the_same_run_twice_gets_two_names(facades_run, catalog):
    models = load_models([facades_run, facades_run], catalog=catalog, device="cpu", examples=0)
    assert [m.name for m in models] == ["f", "f (2)"]
    assert [m.examples for m in models] == [[], []]
