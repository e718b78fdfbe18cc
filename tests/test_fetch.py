"""`i2i data fetch` against a local HTTP server, hostile archives, and `i2i data combine`."""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from i2i.cli import build_cli
from i2i.data import read_image, write_image
from i2i.data.combine import combine_folders
from i2i.data.fetch import (
    FetchError,
    UnsafeArchiveError,
    download,
    fetch_dataset,
    safe_extract,
)


class Server:
    """A tiny HTTP server on 127.0.0.1 that honours ``Range: bytes=N-`` and can cut a reply."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut_after: int | None = None  # send only this many body bytes, then hang up
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.requests.append((self.path, rng))
                data = outer.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and not outer.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_after is not None:
                    self.wfile.write(body[: outer.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/datasets"


@pytest.fixture
def server():
    srv = Server()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    srv.thread.join(timeout=5)


def make_archive(members: dict[str, bytes], *, links: dict[str, tuple[str, bytes]] = ()) -> bytes:
    """A .tar.gz with files ``name -> bytes`` and links ``name -> (target, SYMTYPE|LNKTYPE)``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, (target, kind) in dict(links).items():
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def facades_archive() -> bytes:
    files = {}
    for split in ("train", "val"):
        buf = io.BytesIO()
        from PIL import Image

        Image.new("RGB", (64, 32), (200, 10, 10)).save(buf, format="JPEG")
        files[f"facades/{split}/1.jpg"] = buf.getvalue()
    files["facades/noise.bin"] = random.Random(0).randbytes(200_000)  # incompressible
    return make_archive(files)


def test_fetch_downloads_verifies_and_extracts(server, tmp_path, monkeypatch):
    data = facades_archive()
    server.files["/datasets/facades.tar.gz"] = data
    monkeypatch.setenv("I2I_DATASETS_URL", server.base)
    folder = fetch_dataset("facades", tmp_path, sha256=hashlib.sha256(data).hexdigest())
    assert folder == tmp_path / "facades"
    assert read_image(folder / "train" / "1.jpg").shape == (3, 32, 64)
    assert not (tmp_path / "facades.tar.gz").exists()  # the archive is removed after extraction
    assert sorted(p.name for p in tmp_path.iterdir()) == ["facades"]  # no staging leftovers
    n = len(server.requests)
    assert fetch_dataset("facades", tmp_path) == folder and len(server.requests) == n  # cached


def test_download_resumes_a_partial_file(server, tmp_path):
    data = facades_archive()
    server.files["/datasets/facades.tar.gz"] = data
    dest = tmp_path / "facades.tar.gz"
    server.cut_after = 70_000
    with pytest.raises(FetchError, match="run the same command again"):
        download(f"{server.base}/facades.tar.gz", dest, progress=False, timeout=10)
    part = tmp_path / "facades.tar.gz.part"
    assert part.stat().st_size == 70_000 and not dest.exists()
    server.cut_after = None
    download(f"{server.base}/facades.tar.gz", dest, progress=False, timeout=10)
    assert server.requests[-1][1] == "bytes=70000-"  # resumed, not restarted
    assert dest.read_bytes() == data and not part.exists()


def test_download_restarts_when_range_is_ignored(server, tmp_path):
    data = b"0123456789" * 100
    server.files["/datasets/x.tar.gz"] = data
    (tmp_path / "x.tar.gz.part").write_bytes(b"garbage")
    server.ignore_range = True
    dest = download(f"{server.base}/x.tar.gz", tmp_path / "x.tar.gz", progress=False)
    assert dest.read_bytes() == data


def test_complete_part_file_is_finished_without_download(server, tmp_path):
    data = b"abc" * 50
    server.files["/datasets/x.tar.gz"] = data
    (tmp_path / "x.tar.gz.part").write_bytes(data)
    dest = download(f"{server.base}/x.tar.gz", tmp_path / "x.tar.gz", progress=False)
    assert dest.read_bytes() == data and server.requests[-1][1] == f"bytes={len(data)}-"


def test_checksum_mismatch_removes_file(server, tmp_path):
    server.files["/datasets/x.tar.gz"] = b"payload"
    with pytest.raises(FetchError, match="Checksum mismatch.*expected sha256 0+"):
        download(f"{server.base}/x.tar.gz", tmp_path / "x.tar.gz", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_error_and_offline_messages(server, tmp_path):
    with pytest.raises(FetchError, match="404"):
        download(f"{server.base}/missing.tar.gz", tmp_path / "m.tar.gz", progress=False)
    port = server.httpd.server_address[1]
    server.httpd.shutdown()
    server.httpd.server_close()
    url = f"http://127.0.0.1:{port}/datasets/maps.tar.gz"
    with pytest.raises(FetchError, match="Cannot reach") as info:
        download(url, tmp_path / "maps.tar.gz", progress=False, timeout=5)
    msg = str(info.value)
    assert url in msg and str(tmp_path / "maps.tar.gz") in msg and "offline" in msg


@pytest.mark.parametrize(
    ("members", "links", "why"),
    [
        ({"facades/ok.txt": b"ok", "../evil.txt": b"evil"}, {}, "contains '..'"),
        ({"facades/ok.txt": b"ok", "facades/../../evil.txt": b"evil"}, {}, "contains '..'"),
        ({"/tmp/evil.txt": b"evil"}, {}, "absolute path"),
        (
            {"facades/ok.txt": b"ok"},
            {"facades/link": ("../../outside", tarfile.SYMTYPE)},
            "outside",
        ),
        ({"facades/ok.txt": b"ok"}, {"facades/abs": ("/etc/passwd", tarfile.SYMTYPE)}, "absolute"),
        (
            {"facades/ok.txt": b"ok"},
            {"facades/hard": ("../../outside", tarfile.LNKTYPE)},
            "outside",
        ),
    ],
)
def test_hostile_archive_is_refused_and_writes_nothing(tmp_path, members, links, why):
    archive = tmp_path / "hostile.tar.gz"
    archive.write_bytes(make_archive(members, links=links))
    target = tmp_path / "deep" / "target"
    target.mkdir(parents=True)
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(UnsafeArchiveError, match=why):
        safe_extract(archive, target)
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing inside or outside
    assert not Path("/tmp/evil.txt").exists() or Path("/tmp/evil.txt").read_bytes() != b"evil"


def test_hostile_archive_through_fetch_and_cli(server, tmp_path, monkeypatch):
    server.files["/datasets/maps.tar.gz"] = make_archive({"maps/x": b"1", "../evil.txt": b"e"})
    monkeypatch.setenv("I2I_DATASETS_URL", server.base)
    from i2i.plugins import make_plugin_manager

    root = tmp_path / "root"
    result = CliRunner().invoke(
        build_cli(make_plugin_manager(load_entrypoints=False)),
        ["data", "fetch", "maps", "--root", str(root), "--quiet"],
    )
    assert result.exit_code == 1 and "Refusing archive member '../evil.txt'" in result.output
    assert not (tmp_path / "evil.txt").exists() and not (root / "maps").exists()


def test_fetch_cli_success(server, tmp_path, monkeypatch):
    server.files["/datasets/night2day.tar.gz"] = make_archive({"night2day/val/1.jpg": b"x"})
    monkeypatch.setenv("I2I_DATASETS_URL", server.base)
    from i2i.plugins import make_plugin_manager

    cli = build_cli(make_plugin_manager(load_entrypoints=False))
    result = CliRunner().invoke(cli, ["data", "fetch", "night2day", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "night2day" / "val" / "1.jpg").read_bytes() == b"x"
    bad = CliRunner().invoke(cli, ["data", "fetch", "imagenet"])
    assert bad.exit_code == 2 and "facades" in bad.output


# ---- combine -------------------------------------------------------------------------------


def _paired(root: Path, splits=("train", "val")) -> None:
    for split in splits:
        for stem in ("1", "2"):
            write_image(torch.zeros(3, 8, 6), root / "A" / split / f"{stem}.png")
            write_image(torch.ones(3, 8, 6), root / "B" / split / f"{stem}.jpg")


def test_combine_builds_ab_files_per_split(tmp_path):
    _paired(tmp_path)
    written = combine_folders(tmp_path / "A", tmp_path / "B", tmp_path / "AB", progress=False)
    assert sorted(str(p.relative_to(tmp_path / "AB")) for p in written) == [
        "train/1.png",
        "train/2.png",
        "val/1.png",
        "val/2.png",
    ]
    ab = read_image(tmp_path / "AB" / "train" / "1.png")
    assert ab.shape == (3, 8, 12)
    assert float(ab[:, :, :6].max()) == 0.0 and float(ab[:, :, 6:].min()) > 0.95  # A | B


def test_combine_never_overwrites_and_reports_problems(tmp_path):
    _paired(tmp_path, splits=("train",))
    runner = CliRunner()
    from i2i.plugins import make_plugin_manager

    cli = build_cli(make_plugin_manager(load_entrypoints=False))
    args = ["data", "combine", str(tmp_path / "A"), str(tmp_path / "B"), str(tmp_path / "AB")]
    assert runner.invoke(cli, [*args, "--quiet"]).exit_code == 0
    out = tmp_path / "AB" / "train" / "1.png"
    stamp = out.stat().st_mtime_ns
    again = runner.invoke(cli, [*args, "--quiet"])
    assert (
        again.exit_code == 1 and "already exist" in again.output and "--overwrite" in again.output
    )
    assert out.stat().st_mtime_ns == stamp
    assert runner.invoke(cli, [*args, "--quiet", "--overwrite"]).exit_code == 0

    write_image(torch.zeros(3, 8, 6), tmp_path / "A" / "train" / "3.png")
    missing = runner.invoke(cli, [*args, "--quiet", "--overwrite"])
    assert missing.exit_code == 1 and "no partner" in missing.output and "3.png" in missing.output
    write_image(torch.ones(3, 9, 6), tmp_path / "B" / "train" / "3.png")
    sized = runner.invoke(cli, [*args, "--quiet", "--overwrite"])
    assert sized.exit_code == 1 and "same size" in sized.output
    assert str(tmp_path / "A" / "train" / "3.png") in sized.output


def test_fetch_uses_an_archive_saved_by_hand_when_offline(tmp_path, monkeypatch):
    (tmp_path / "facades.tar.gz").write_bytes(facades_archive())
    monkeypatch.setenv("I2I_DATASETS_URL", "http://127.0.0.1:9/nothing-listens-here")
    folder = fetch_dataset("facades", tmp_path, progress=False, timeout=5)
    assert (folder / "val" / "1.jpg").is_file()
