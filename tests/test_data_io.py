"""Reading, listing and writing images: the bad-image corpus and every colour mode."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from i2i.data import DatasetError, ImageReadError, list_images, read_image, write_image


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def _rgb_pattern(w=16, h=12, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---- files that must be refused with a message naming the file -----------------------------


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty") as info:
        read_image(path)
    assert str(path) in str(info.value) and info.value.path == path


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_rgb_pattern(64, 64)).save(buf, format="JPEG", quality=95)
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageReadError, match="truncated") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n")
    with pytest.raises(ImageReadError, match="not an image") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)


@pytest.mark.parametrize("factor", [1.5, 3.0])  # warning zone (> limit) and error zone (> 2x)
def test_decompression_bomb_refused(tmp_path, monkeypatch, factor):
    path = _save(Image.fromarray(_rgb_pattern(40, 40)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", int(40 * 40 / factor))
    with pytest.raises(ImageReadError, match="decompression bomb") as info:
        read_image(path)
    assert str(path) in str(info.value) and "MAX_IMAGE_PIXELS" in str(info.value)
    limit = int(40 * 40 / factor)  # the one limit the message names, whichever PIL zone
    assert f"1600 pixels, more than the {limit} of" in str(info.value)


def test_float_image_out_of_range_refused(tmp_path):
    path = _save(Image.fromarray(np.full((4, 5), 3.5, np.float32), mode="F"), tmp_path / "f.tif")
    with pytest.raises(ImageReadError, match=r"expected values in \[0, 1\]"):
        read_image(path)


# ---- modes and bit depths converted to RGB [0, 1] ------------------------------------------


def test_rgb_png_roundtrip_exact(tmp_path):
    arr = _rgb_pattern()
    img = read_image(_save(Image.fromarray(arr), tmp_path / "a.png"))
    assert img.shape == (3, 12, 16) and img.dtype == torch.float32
    assert torch.equal((img * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(arr))


def test_grayscale_becomes_three_equal_channels(tmp_path):
    arr = _rgb_pattern()[:, :, 0]
    img = read_image(_save(Image.fromarray(arr), tmp_path / "g.png"))
    assert img.shape == (3, 12, 16)
    assert torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])
    assert torch.allclose(img[0], torch.from_numpy(arr).float() / 255)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_grayscale_scaled_not_clipped(tmp_path, suffix):
    arr = np.linspace(0, 65535, 12 * 16).reshape(12, 16).astype(np.uint16)
    path = _save(Image.fromarray(arr), tmp_path / f"deep{suffix}")
    img = read_image(path)
    expected = torch.from_numpy(arr.astype(np.float32) / 65535.0)
    assert img.shape == (3, 12, 16)
    assert torch.allclose(img[0], expected, atol=1e-6)
    assert 0.4 < float(img.mean()) < 0.6  # a naive convert("RGB") would saturate to ~1


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def test_sixteen_bit_rgb_png(tmp_path):
    h, w = 4, 5
    arr = np.random.default_rng(1).integers(0, 65536, (h, w, 3), dtype=np.uint16)
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )
    path = tmp_path / "rgb16.png"
    path.write_bytes(png)
    img = read_image(path)
    assert img.shape == (3, h, w)
    expected = torch.from_numpy(arr.astype(np.float32) / 65535.0).permute(2, 0, 1)
    assert torch.allclose(img, expected, atol=1.0 / 255)  # PIL keeps the high byte


def test_rgba_composited_on_white_or_kept(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:, :4, 3] = 255  # left half opaque, right half transparent
    path = _save(Image.fromarray(rgba), tmp_path / "alpha.png")
    img = read_image(path)
    assert img.shape == (3, 8, 8)
    assert torch.allclose(
        img[:, :, :4], torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 8, 4)
    )
    assert torch.allclose(img[:, :, 4:], torch.ones(3, 8, 4))
    kept = read_image(path, keep_alpha=True)
    assert kept.shape == (4, 8, 8)
    assert torch.equal(kept[3, :, :4], torch.ones(8, 4)) and torch.equal(
        kept[3, :, 4:], torch.zeros(8, 4)
    )


def test_gray_with_alpha(tmp_path):
    la = Image.fromarray(
        np.stack([np.full((6, 6), 0, np.uint8), np.full((6, 6), 0, np.uint8)], -1), "LA"
    )
    img = read_image(_save(la, tmp_path / "la.png"))
    assert torch.allclose(img, torch.ones(3, 6, 6))  # fully transparent black -> white


def test_palette_png_and_transparency(tmp_path):
    pal = Image.new("P", (6, 4))
    pal.putpalette([0, 0, 255, 255, 0, 0] + [0] * 762)
    pal.putpixel((0, 0), 1)
    img = read_image(_save(pal, tmp_path / "p.png"))
    assert torch.allclose(img[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(img[:, 1, 1], torch.tensor([0.0, 0.0, 1.0]))
    img_t = read_image(_save(pal, tmp_path / "pt.png", transparency=0))
    assert torch.allclose(img_t[:, 1, 1], torch.ones(3))  # transparent index -> white


def test_cmyk_jpeg(tmp_path):
    path = _save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    img = read_image(path)
    assert img.shape == (3, 8, 8)
    r, g, b = img.mean(dim=(1, 2)).tolist()
    assert r > 0.9 and g < 0.1 and b < 0.1


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)  # 20 wide, 10 high, a marker at the top-left
    arr[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(Image.fromarray(arr), tmp_path / "phone.jpg", exif=exif, quality=100)
    img = read_image(path)
    assert img.shape == (3, 20, 10)  # displayed upright: 10 wide, 20 high
    assert float(img[:, 0, -1].mean()) > 0.5  # the marker moved to the top-right


def test_float_tiff_in_range(tmp_path):
    arr = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    img = read_image(_save(Image.fromarray(arr, mode="F"), tmp_path / "f.tif"))
    assert torch.allclose(img[1], torch.from_numpy(arr))


# ---- fuzzing: any bytes give an image or ImageReadError, never another exception -------------

_SEEDS = {}


def _seed_bytes(fmt: str) -> bytes:
    if fmt not in _SEEDS:
        buf = io.BytesIO()
        Image.fromarray(_rgb_pattern(8, 8)).save(buf, format=fmt)
        _SEEDS[fmt] = buf.getvalue()
    return _SEEDS[fmt]


@pytest.mark.filterwarnings("ignore::UserWarning:PIL.*")
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fmt=st.sampled_from(["PNG", "JPEG", "BMP", "TIFF", "GIF"]),
    cut=st.integers(0, 400),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
)
def test_fuzzed_bytes_never_crash(tmp_path, fmt, cut, flips):
    data = bytearray(_seed_bytes(fmt))
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    data = bytes(data[: max(cut, 0)] if cut < len(data) else data)
    path = tmp_path / "fuzz.img"
    path.write_bytes(data)
    try:
        img = read_image(path)
    except ImageReadError as exc:
        assert str(path) in str(exc)
    else:
        assert img.ndim == 3 and img.shape[0] == 3
        assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0


# ---- listing and writing -----------------------------------------------------------------------


def test_list_images_natural_order_and_filters(tmp_path):
    for name in ["10.jpg", "2.jpg", "1.PNG", "b.tiff", "a.webp", ".hidden.jpg", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.jpg").mkdir()
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["1.PNG", "2.jpg", "10.jpg", "a.webp", "b.tiff"]


def test_list_images_missing_or_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as info:
        list_images(tmp_path / "missing")
    assert str(tmp_path / "missing") in str(info.value)
    with pytest.raises(DatasetError, match="empty") as info:
        list_images(tmp_path)
    assert str(tmp_path) in str(info.value)
    (tmp_path / "readme.md").write_text("hi")
    with pytest.raises(DatasetError, match=r"No images in .*readme\.md"):
        list_images(tmp_path)


def test_write_image_never_overwrites(tmp_path):
    path = write_image(torch.rand(3, 5, 7), tmp_path / "sub" / "out.png")
    before = path.read_bytes()
    with pytest.raises(FileExistsError) as info:
        write_image(torch.rand(3, 5, 7), path)
    assert str(path) in str(info.value) and path.read_bytes() == before
    write_image(torch.zeros(3, 5, 7), path, overwrite=True)
    assert torch.equal(read_image(path), torch.zeros(3, 5, 7))
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.png"]  # no temp files left


def test_write_image_modes_and_errors(tmp_path):
    gray = write_image(torch.full((1, 4, 4), 0.5), tmp_path / "g.png")
    assert Image.open(gray).mode == "L"
    rgba = write_image(torch.rand(4, 4, 4), tmp_path / "a.png")
    assert Image.open(rgba).mode == "RGBA"
    with pytest.raises(ValueError, match=r"expected a \(1\|3\|4, H, W\) tensor, got \(2, 4, 4\)"):
        write_image(torch.rand(2, 4, 4), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="unknown image suffix"):
        write_image(torch.rand(3, 4, 4), tmp_path / "x.gifx")


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_replaced_files_get_the_usual_mode_not_mkstemp_s(tmp_path, umask):
    """``overwrite=True`` writes through a temp file; the result has the mode ``open`` gives."""
    from i2i.data.io import atomic_path

    old = os.umask(umask)
    try:
        usual = 0o666 & ~umask
        kept = write_image(torch.rand(3, 4, 4), tmp_path / "kept.png")
        assert kept.stat().st_mode & 0o777 == usual
        write_image(torch.rand(3, 4, 4), kept, overwrite=True)  # i2i translate --overwrite
        assert kept.stat().st_mode & 0o777 == usual
        new = write_image(torch.rand(3, 4, 4), tmp_path / "new.png", overwrite=True)
        assert new.stat().st_mode & 0o777 == usual
        with atomic_path(tmp_path / "model.onnx") as tmp:
            tmp.write_bytes(b"weights")
        assert (tmp_path / "model.onnx").stat().st_mode & 0o777 == usual
        with atomic_path(tmp_path / "model.onnx") as tmp:  # a writer that recreates the file
            tmp.unlink()  # with mode 0o600, as safetensors' save_file does
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600))
            tmp.write_bytes(b"weights")
        assert (tmp_path / "model.onnx").stat().st_mode & 0o777 == usual
        with pytest.raises(RuntimeError), atomic_path(tmp_path / "model.onnx") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("export failed")
        assert (tmp_path / "model.onnx").read_bytes() == b"weights"
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.png", "model.onnx", "new.png"]
