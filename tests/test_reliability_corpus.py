"""The bad-image corpus through the real CLI: every case converted, skipped or refused clearly.

Each case is written here, then goes through ``i2i run`` (and ``i2i translate``) via click's
CliRunner on ``build_cli(pm)``, with a DataLoader worker process, as the default settings use.
Refused cases must exit with code 1 and a message naming the file and the problem, never with an
uncaught exception or a traceback; with ``--on-bad-image skip`` the run trains on the rest and
reports how many files it skipped.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result
from PIL import Image

from i2i.cli import build_cli
from i2i.data import write_image
from i2i.engine import checkpoint as ck
from i2i.engine.tracking import read_metrics
from i2i.plugins import make_plugin_manager
from tests.test_data_io import _png_chunk
from tests.test_engine_fixtures import TinyPlugin, one_thread  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--gen", "tiny_unet", "--disc", "patch16", "--disc-opt", "ndf=8", "--load-size", "36",
        "--crop-size", "32", "--device", "cpu", "--precision", "fp32", "--num-workers", "1",
        "--log-every", "1"]  # fmt: skip

H = 32  # every A|B file is H x 2H


def _ab_array(seed: int, width: int = 2 * H) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, width, 3), dtype=np.uint8)


def _save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def _bomb_png(path: Path) -> Path:
    """A tiny PNG whose header declares 20000 x 20000 pixels: PIL's bomb check refuses it."""
    side = 20000
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )
    path.write_bytes(png)
    return path


#: Files every reader must convert: name -> how it is written.
CONVERTED = ("rgba.png", "gray.png", "gray16png.png", "gray16tif.tif", "cmyk.jpg", "palette.png")
#: Files ``i2i run`` must refuse (or skip): name -> words of the reason.
REFUSED = {
    "empty.jpg": "empty (0 bytes)",
    "truncated.jpg": "truncated",
    "notes.jpg": "not an image",
    "bomb.png": "decompression bomb",
    "odd.png": "even width",
}


def write_corpus(folder: Path) -> dict[str, Path]:
    """Two good A|B files, the CONVERTED cases and the REFUSED cases in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i in range(2):
        paths[f"good{i}.png"] = _save(Image.fromarray(_ab_array(i)), folder / f"good{i}.png")
    rgba = np.dstack([_ab_array(2), np.full((H, 2 * H), 128, np.uint8)])
    paths["rgba.png"] = _save(Image.fromarray(rgba, "RGBA"), folder / "rgba.png")
    paths["gray.png"] = _save(Image.fromarray(_ab_array(3)[..., 0]), folder / "gray.png")
    deep = np.linspace(0, 65535, H * 2 * H).reshape(H, 2 * H).astype(np.uint16)
    for name in ("gray16png.png", "gray16tif.tif"):  # PIL opens both as mode I;16
        paths[name] = _save(Image.fromarray(deep), folder / name)
    cmyk = Image.fromarray(_ab_array(4)).convert("CMYK")
    paths["cmyk.jpg"] = _save(cmyk, folder / "cmyk.jpg", quality=95)
    pal = Image.fromarray(_ab_array(5)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    paths["palette.png"] = _save(pal, folder / "palette.png")

    (folder / "empty.jpg").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(_ab_array(6)).save(buf, format="JPEG", quality=95)
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / "notes.jpg").write_text("these are my notes, not a photo\n")
    _bomb_png(folder / "bomb.png")
    _save(Image.fromarray(_ab_array(7, width=2 * H + 1)), folder / "odd.png")
    paths.update({name: folder / name for name in REFUSED})
    return paths


@pytest.fixture(scope="module")
def cli():
    return build_cli(make_plugin_manager(load_entrypoints=False, plugins=(TinyPlugin(),)))


def _invoke(cli, *args) -> Result:
    return CliRunner().invoke(cli, [*map(str, args)])


def assert_refused(result: Result, *words: str) -> None:
    """Exit 1 through click (no uncaught exception), the words in the message, no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == 1, result.output
    for word in words:
        assert word in result.output, (word, result.output)
    assert "Traceback" not in result.output


def _good_pair(root: Path, name: str, seed: int, size: tuple[int, int] = (H, H)) -> None:
    for side, offset in (("A", 0), ("B", 100)):
        arr = np.random.default_rng(seed + offset).integers(0, 256, (*size, 3), dtype=np.uint8)
        _save(Image.fromarray(arr), root / "train" / side / name)


# ---- i2i run ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_run_refuses_each_bad_file_naming_it(cli, tmp_path, name):
    paths = write_corpus(tmp_path / "corpus")
    data = tmp_path / "data" / "train"
    data.mkdir(parents=True)
    for keep in ("good0.png", name):  # one good file and the bad one
        paths[keep].rename(data / keep)
    result = _invoke(cli, "run", "--task", "demo", "--data", data.parent, "--out",
                     tmp_path / "run", "--max-steps", "2", *TINY)  # fmt: skip
    assert_refused(result, str(data / name), REFUSED[name])


@pytest.fixture(scope="module")
def skip_run(cli, tmp_path_factory):
    """One ``--on-bad-image skip`` run over the whole corpus: (paths, run folder, result)."""
    root = tmp_path_factory.mktemp("skip")
    paths = write_corpus(root / "data" / "train")
    out = root / "run"
    result = _invoke(cli, "run", "--task", "demo", "--data", root / "data", "--out", out,
                     "--epochs", "1", "--batch-size", "4", "--on-bad-image", "skip", *TINY)  # fmt: skip
    return paths, out, result


def test_skip_trains_on_the_rest_and_reports_the_count_at_the_end(skip_run):
    paths, out, result = skip_run
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == str(out.absolute())  # the run folder, printed last
    assert [ln for ln in lines if ln.startswith("skipped ")] == [lines[-3]]  # once, at the end
    assert lines[-3].startswith("skipped 5 bad image file(s) (--on-bad-image skip)")
    assert lines[-2].startswith("finished at step")
    # exactly the refused files were skipped: every converted mode was read and trained on
    state = ck.load_checkpoint(out).train_state()
    assert {Path(p).name for p, _ in state["skipped_files"]} == set(REFUSED)
    reasons = dict(state["skipped_files"])
    for name, words in REFUSED.items():
        assert words in reasons[str(paths[name])]
    records = read_metrics(out / "metrics.jsonl")
    assert records[-1]["kind"] == "summary" and records[-1]["skipped/images"] == 5
    assert all(r["skipped/images"] <= 5 for r in records if r["kind"] == "train")


def test_converted_modes_train_in_error_mode(cli, tmp_path):
    paths = write_corpus(tmp_path / "corpus")
    data = tmp_path / "data" / "train"
    data.mkdir(parents=True)
    for name in ("good0.png", *CONVERTED):
        paths[name].rename(data / name)
    out = tmp_path / "run"
    result = _invoke(cli, "run", "--task", "demo", "--data", data.parent, "--out", out,
                     "--epochs", "1", "--batch-size", "7", *TINY)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert ck.load_checkpoint(out).train_state()["skipped_files"] == []


def test_paired_folders_missing_partner_refused_then_skipped(cli, tmp_path):
    root = tmp_path / "data"
    _good_pair(root, "1.png", 1)
    _good_pair(root, "2.png", 2)
    (root / "train" / "B" / "2.png").unlink()
    result = _invoke(cli, "run", "--task", "demo", "--data", root, "--out", tmp_path / "r1",
                     "--max-steps", "1", *TINY)  # fmt: skip
    assert_refused(result, str(root / "train" / "A" / "2.png"), "no partner", "train/B")

    out = tmp_path / "r2"
    result = _invoke(cli, "run", "--task", "demo", "--data", root, "--out", out,
                     "--max-steps", "1", "--on-bad-image", "skip", *TINY)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "skipped 1 bad image file(s)" in result.output and "no partner" in result.output
    assert ck.load_checkpoint(out).step == 1


def test_paired_folders_size_mismatch_refused(cli, tmp_path):
    root = tmp_path / "data"
    _good_pair(root, "1.png", 1)
    _good_pair(root, "2.png", 2)
    _save(Image.new("RGB", (40, 40)), root / "train" / "B" / "2.png")
    result = _invoke(cli, "run", "--task", "demo", "--data", root, "--out", tmp_path / "r",
                     "--max-steps", "2", *TINY)  # fmt: skip
    assert_refused(result, str(root / "train" / "A" / "2.png"), "different size", "40x40")


@pytest.mark.parametrize("layout", ["empty split", "empty root", "empty A folder"])
def test_empty_folders_refused(cli, tmp_path, layout):
    root = tmp_path / "data"
    if layout == "empty split":
        (root / "train").mkdir(parents=True)
        words = (str(root / "train"), "it is empty")
    elif layout == "empty root":
        root.mkdir()
        words = (str(root), "No 'train' images")
    else:
        _good_pair(root, "1.png", 1)
        for p in (root / "train" / "A").iterdir():
            p.unlink()
        words = (str(root / "train" / "A"), "it is empty")
    result = _invoke(cli, "run", "--task", "demo", "--data", root, "--out", tmp_path / "r",
                     "--max-steps", "1", *TINY)  # fmt: skip
    assert_refused(result, *words)


# ---- i2i translate ---------------------------------------------------------------------------

TRANSLATE_REFUSED = {k: v for k, v in REFUSED.items() if k != "odd.png"}  # odd width is fine here


@pytest.mark.parametrize("name", sorted(TRANSLATE_REFUSED))
def test_translate_refuses_each_bad_file_naming_it(cli, skip_run, tmp_path, name):
    paths, run, _ = skip_run
    result = _invoke(cli, "translate", "-c", run, paths[name], "--out", tmp_path / "o",
                     "--no-progress", "--device", "cpu")  # fmt: skip
    assert_refused(result, str(paths[name]), TRANSLATE_REFUSED[name])


def test_translate_converts_modes_and_skips_bad_files(cli, skip_run, tmp_path):
    paths, run, _ = skip_run
    out = tmp_path / "o"
    result = _invoke(cli, "translate", "-c", run, paths["good0.png"].parent, "--out", out,
                     "--no-progress", "--device", "cpu", "--on-bad-image", "skip")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == "skipped 4 bad image(s) (--on-bad-image skip)"
    for name, words in TRANSLATE_REFUSED.items():
        assert f"skipped: Cannot read image {paths[name]}: " in result.output and words in (
            result.output
        )
    written = {p.name for p in out.iterdir()}
    expected = {Path(n).stem + ".png" for n in paths if n not in TRANSLATE_REFUSED}
    assert written == expected
    for name in CONVERTED:
        img = Image.open(out / (Path(name).stem + ".png"))
        assert img.mode == "RGB" and img.size == (2 * H, H)
    assert Image.open(out / "odd.png").size == (2 * H + 1, H)


def test_bad_images_in_validation_are_refused_or_skipped(cli, tmp_path):
    """A bad file in val/ (read in the main process, during training) is handled the same way."""
    root = tmp_path / "data"
    for i in range(2):
        write_image(torch.rand(3, H, 2 * H), root / "train" / f"{i}.png")
        write_image(torch.rand(3, H, 2 * H), root / "val" / f"{i}.png")
    (root / "val" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = _invoke(cli, "run", "--task", "demo", "--data", root, "--out", tmp_path / "r1",
                     "--max-steps", "2", *TINY)  # fmt: skip
    assert_refused(result, str(root / "val" / "broken.png"))
    assert ck.load_checkpoint(tmp_path / "r1").step == 2  # the training done is saved first
    out = tmp_path / "r2"
    result = _invoke(cli, "run", "--task", "demo", "--data", root, "--out", out,
                     "--max-steps", "2", "--on-bad-image", "skip", *TINY)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "skipped 1 bad image file(s)" in result.output
    summary = read_metrics(out / "metrics.jsonl")[-1]
    assert summary["kind"] == "summary" and summary["skipped/images"] == 1
