"""Every example under examples/ runs, on tiny settings, in the order a user would run them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.browser import chromium, dump_dom
from tests.conftest import REPO_ROOT
from tests.test_engine_fixtures import facades_subset

EXAMPLES = REPO_ROOT / "examples"
TINY = "--max-steps 3 --gen-opt ngf=8 --disc-opt ndf=8 --num-workers 0 --device cpu --quiet"


def _run(cmd: list[str], cwd: Path, **env: str) -> str:
    full_env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "I2I_LOAD_PLUGINS": "",  # the built-ins and first-party tasks only
        "OMP_NUM_THREADS": "1",
        **env,
    }
    done = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.mark.slow
def test_train_translate_evaluate_and_the_python_api(data_root, tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("bash not found")
    data = facades_subset(data_root, tmp_path / "facades", n_train=3, n_val=2)
    run = tmp_path / "runs" / "facades"
    _run(
        ["bash", str(EXAMPLES / "train_facades.sh")],
        tmp_path,
        DATA=str(data),
        OUT=str(run),
        EXTRA=TINY,
    )
    assert (run / "report" / "index.html").is_file()
    assert 'data-images-loaded="' in dump_dom(
        chromium(), run / "report" / "index.html", tmp_path / "p"
    )

    labels = tmp_path / "labels"
    labels.mkdir()
    for i, size in ((1, (256, 256)), (2, (300, 200))):  # (W, H): any size comes back the same
        ab = Image.open(data / "val" / f"{i}.jpg")
        ab.crop((256, 0, 512, 256)).resize(size).save(labels / f"label{i}.png")
    out = _run(["bash", str(EXAMPLES / "translate_folder.sh")], tmp_path,
               RUN=str(run), IMAGES=str(labels), OUT=str(tmp_path / "translated"))  # fmt: skip
    assert out.split()[-2:] == ["label1.png", "label2.png"]
    assert Image.open(tmp_path / "translated" / "label2.png").size == (300, 200)

    _run(["bash", str(EXAMPLES / "evaluate.sh")], tmp_path,
         RUN=str(run), DATA=str(data), OUT=str(tmp_path / "eval"))  # fmt: skip
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["num_images"] == 2 and {"l1", "psnr", "ssim"} <= set(report["metrics"])

    out = _run([sys.executable, str(EXAMPLES / "python_api.py"), str(run),
                str(labels / "label2.png"), str(tmp_path / "api.png")], tmp_path)  # fmt: skip
    assert "patch70 receptive field: 70" in out and "unet_256 parameters: 54413955" in out
    assert Image.open(tmp_path / "api.png").size == (300, 200)
