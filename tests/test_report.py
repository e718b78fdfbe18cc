"""``i2i report``: plots and sample grids of a run, on a page that loads in a browser."""

from __future__ import annotations

import json

import torch
from click.testing import CliRunner

from i2i.cli import build_cli
from i2i.data import write_image
from i2i.plugins import make_plugin_manager
from i2i.report import read_series
from tests.browser import chromium, dump_dom


def fake_run(root):
    """A run folder as the loop writes one: metrics.jsonl and sample grids."""
    root.mkdir()
    records = []
    for step in range(1, 21):
        records.append({"step": step, "epoch": 0, "kind": "train", "train/g_l1": 30.0 / step,
                        "train/d_loss": 0.7, "lr/generator": 2e-4, "speed/it_s": 2.0})  # fmt: skip
        if step % 10 == 0:
            records.append({"step": step, "kind": "val", "val/l1": 0.3 / step, "val/psnr": 10.0 + step,
                            "val/images": 4})  # fmt: skip
    (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / "samples").mkdir()
    for step in (10, 20):
        write_image(torch.rand(3, 32, 96), root / "samples" / f"epoch0001_step{step:08d}.png")
    return root


def test_report_page_and_plots_load_in_a_browser(tmp_path):
    browser = chromium()
    run = fake_run(tmp_path / "my run")
    result = CliRunner().invoke(
        build_cli(make_plugin_manager(load_entrypoints=False)), ["report", str(run)]
    )
    assert result.exit_code == 0, result.output
    page = run / "report" / "index.html"
    assert result.output.strip() == str(page)
    names = sorted(p.name for p in page.parent.glob("*.png"))
    assert names == [
        "learning_rates.png",
        "losses.png",
        "sample_epoch0001_step00000010.png",
        "sample_epoch0001_step00000020.png",
        "speed.png",
        "validation.png",
    ]
    dom = dump_dom(browser, page, tmp_path / "profile")
    assert 'data-images-loaded="6/6"' in dom, dom[-2000:]
    assert "val/psnr" in dom and "30" in dom  # latest validation: psnr 30 at step 20


def test_series_and_refusals(tmp_path):
    run = fake_run(tmp_path / "r")
    series = read_series(run / "metrics.jsonl")
    assert series["val/l1"] == [(10, 0.03), (20, 0.015)]
    assert "val/images" not in series
    cli = build_cli(make_plugin_manager(load_entrypoints=False))
    (run / "metrics.jsonl").write_text('{"step": 1}\nnot json\n')
    bad = CliRunner().invoke(cli, ["report", str(run)])
    assert bad.exit_code == 1 and "line 2: not JSON" in bad.output and "Traceback" not in bad.output
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = CliRunner().invoke(cli, ["report", str(empty)])
    assert missing.exit_code == 1 and "metrics.jsonl is missing" in missing.output


def _report(*args):
    cli = build_cli(make_plugin_manager(load_entrypoints=False))
    return CliRunner().invoke(cli, ["report", *map(str, args)])


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_report_out_never_replaces_files_it_did_not_write(tmp_path):
    run = fake_run(tmp_path / "run")
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_text("my page")
    (out / "losses.png").write_bytes(b"my plot")
    before = _tree(out)
    refused = _report(run, "--out", out)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert str(out / "losses.png") in refused.output and "--overwrite" in refused.output
    assert _tree(out) == before  # nothing written
    forced = _report(run, "--out", out, "--overwrite")
    assert forced.exit_code == 0, forced.output
    assert (out / "index.html").read_text() != "my page"
    # the report's own files are rewritten on the next call without a flag; grids it showed
    # that are no longer among the latest are removed, files it never wrote are kept
    (out / "userphoto.png").write_bytes(b"mine")
    write_image(torch.rand(3, 32, 96), run / "samples" / "epoch0002_step00000030.png")
    write_image(torch.rand(3, 32, 96), run / "samples" / "epoch0002_step00000040.png")
    again = _report(run, "--out", out)
    assert again.exit_code == 0, again.output
    samples = sorted(p.name for p in out.glob("sample_*.png"))
    assert samples == [
        f"sample_epoch000{e}_step000000{s}.png" for e, s in ((1, 20), (2, 30), (2, 40))
    ]
    assert (out / "userphoto.png").read_bytes() == b"mine"


def test_the_default_report_folder_is_rewritten_without_a_flag(tmp_path):
    run = fake_run(tmp_path / "run")
    assert _report(run).exit_code == 0
    (run / "report" / "index.html").write_text("an old page")  # e.g. from an older i2i
    result = _report(run)
    assert result.exit_code == 0, result.output
    assert "i2i run" in (run / "report" / "index.html").read_text()
    # the same folder named with --out is still the default one
    assert _report(run, "--out", run / "report").exit_code == 0


def test_symlinked_samples_are_skipped_with_a_note(tmp_path):
    run = fake_run(tmp_path / "run")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    (run / "samples" / "epoch0001_step00000030.png").symlink_to(secret)
    result = _report(run)
    assert result.exit_code == 0, result.output
    assert "skipped sample" in result.output and "symbolic link" in result.output
    copies = sorted(p.name for p in (run / "report").glob("sample_*"))
    assert copies == ["sample_epoch0001_step00000010.png", "sample_epoch0001_step00000020.png"]
    # a samples folder that is a link to outside the run
    other = fake_run(tmp_path / "other")
    elsewhere = tmp_path / "elsewhere"
    (other / "samples").rename(elsewhere)
    (other / "samples").symlink_to(elsewhere)
    result = _report(other)
    assert result.exit_code == 0 and "outside the run folder" in result.output, result.output
    assert not list((other / "report").glob("sample_*"))


def test_non_utf8_metrics_and_out_under_a_file_are_clear_errors(tmp_path):
    run = fake_run(tmp_path / "run")
    metrics = run / "metrics.jsonl"
    metrics.write_bytes(b'{"step": 1, "train/g_l1": 1.0}\n{"step": 2, "n\xe9": 1}\n')
    bad = _report(run)
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert f"{metrics}, line 2: not UTF-8" in bad.output and "0xe9" in bad.output
    assert not (run / "report").exists()
    metrics.write_text('{"step": 1, "train/g_l1": 1.0}\n')
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    result = _report(run, "--out", afile / "sub")
    assert result.exit_code == 1 and result.output.startswith("Error:"), result.output
    assert f"{afile} is a file, not a folder" in result.output and "Traceback" not in result.output
