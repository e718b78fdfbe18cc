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
