"""`i2i export`: ONNX and TorchScript files that match eager PyTorch at several sizes."""

from __future__ import annotations

import warnings

import pytest
import torch
from click.testing import CliRunner

from i2i.cli import build_cli
from i2i.export import ExportError, export_checkpoint, read_metadata
from i2i.inference import load
from tests.test_translate import make_checkpoint

SIZES = [(256, 256), (256, 512)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from i2i.catalog import Catalog
    from i2i.plugins import make_plugin_manager

    run = tmp_path_factory.mktemp("run")
    make_checkpoint(run, Catalog.from_plugin_manager(make_plugin_manager(load_entrypoints=False)))
    return run


def _eager(run_dir, x):
    tr = load(run_dir, mode="eval", precision="fp32")
    return tr.generator.eval()(x)


def _inputs():
    g = torch.Generator().manual_seed(0)
    return [torch.rand(2 if w > h else 1, 3, h, w, generator=g) * 2 - 1 for h, w in SIZES]


def test_onnx_export_matches_eager(pm, run_dir, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    pytest.importorskip("onnx", reason="the export extra is not installed")
    path = tmp_path / "g.onnx"
    result = CliRunner().invoke(
        build_cli(pm), ["export", "-c", str(run_dir), "--format", "onnx", "--out", str(path)]
    )
    assert result.exit_code == 0, result.output
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for x in _inputs():
            ref = _eager(run_dir, x)
            (got,) = session.run(None, {"input": x.numpy()})
            assert got.shape == tuple(ref.shape)
            assert abs(got - ref.numpy()).max() <= 1e-4
    meta = read_metadata(path)
    assert meta["task"] == "facades" and meta["size_multiple"] == 256
    assert meta["in_channels"] == 3 and meta["input_range"] == [-1.0, 1.0]


def test_torchscript_export_matches_eager(pm, run_dir, tmp_path):
    path = tmp_path / "g.pt"
    result = CliRunner().invoke(
        build_cli(pm), ["export", "-c", str(run_dir), "--format", "torchscript", "-o", str(path)]
    )
    assert result.exit_code == 0, result.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
        scripted = torch.jit.load(str(path))
    with torch.no_grad():
        for x in _inputs():
            assert (scripted(x) - _eager(run_dir, x)).abs().max() <= 1e-4
    assert read_metadata(path)["generator"] == "unet_256"


@pytest.mark.filterwarnings("ignore:Exporting to ONNX opset version 999")  # torch says so too
def test_export_refuses_to_overwrite_and_bad_sizes(run_dir, tmp_path):
    path = tmp_path / "g.pt"
    path.write_bytes(b"old")
    with pytest.raises(ExportError, match="already exists"):
        export_checkpoint(run_dir, path, fmt="torchscript")
    assert path.read_bytes() == b"old"
    with pytest.raises(ExportError, match="multiple of .* 256"):
        export_checkpoint(run_dir, tmp_path / "h.pt", fmt="torchscript", size=300)
    assert not (tmp_path / "h.pt").exists()
    export_checkpoint(run_dir, path, fmt="torchscript", overwrite=True)
    assert path.read_bytes() != b"old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    pytest.importorskip("onnx")
    with pytest.raises(ExportError, match="cannot export ONNX opset 999"):
        export_checkpoint(run_dir, tmp_path / "g.onnx", fmt="onnx", opset=999)
    assert not [p for p in tmp_path.iterdir() if "g.onnx" in p.name]


def test_export_into_a_path_under_a_file_names_that_file(pm, run_dir, tmp_path):
    blocker = tmp_path / "afile.txt"
    blocker.write_text("not a folder")
    for out in (blocker / "x.onnx", blocker / "sub" / "x.pt"):
        fmt = "onnx" if out.suffix == ".onnx" else "torchscript"
        result = CliRunner().invoke(
            build_cli(pm), ["export", "-c", str(run_dir), "--format", fmt, "-o", str(out)]
        )
        assert result.exit_code == 1, result.output
        assert f"its parent folder {blocker} is a file, not a folder" in result.output
        assert "Errno" not in result.output
    assert blocker.read_text() == "not a folder"
