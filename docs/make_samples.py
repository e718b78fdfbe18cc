"""Train, score and plot the sample runs that the task pages of the docs show.

Each sample is one real ``i2i run`` on real data (the facades and edges2shoes folders of
``$I2I_DATA``, or the built-in photos), then ``i2i eval`` on its val split and ``i2i report``.
What the pages show is written to ``docs/_static/samples/<task>/``: ``samples.png`` (input |
output | target rows of the first val images), ``losses.png`` (from the report) and
``results.json`` (the command, the measured metrics, steps, wall time and the machine). The
task pages are then regenerated (``python -m i2i.reference``), which shows them.

    python docs/make_samples.py                    # every sample (about an hour on 2 CPU cores)
    python docs/make_samples.py facades colorize   # some of them
    python docs/make_samples.py --quick --dest /tmp/s colorize   # a smoke run of a few steps

``--quick`` keeps the commands but stops after a few steps with tiny networks: the tests use it
to keep this script working; its numbers mean nothing and it never writes into the docs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # the project root, for benchmarks/ when run as a script

from benchmarks.bench import data_root  # noqa: E402
from benchmarks.machine import cpu_model  # noqa: E402

STATIC = DOCS / "_static" / "samples"
ROWS = 3  # val images shown per figure
CELL = 128  # pixels per figure cell


@dataclass(frozen=True)
class Sample:
    """One sample run: the task, the data folder under $I2I_DATA (None: built-in) and flags."""

    task: str
    data: str | None
    flags: tuple[str, ...]
    note: str = ""
    extra_eval: tuple[str, ...] = field(default=())


SAMPLES = {
    s.task: s
    for s in [
        Sample(
            "colorize",
            None,
            ("--gen", "unet", "--disc", "patch70", "--epochs", "2"),
            "the README's first command",
        ),
        Sample("facades", "facades", ("--epochs", "5", "--crop-size", "128")),
        Sample(
            "edges2shoes",
            "edges2shoes_sample",
            ("--direction", "BtoA", "--epochs", "40", "--crop-size", "128"),
            "the sample files hold the photo on the left, hence BtoA",
        ),
        Sample("edges2photo", None, ("--epochs", "10", "--crop-size", "128")),
        Sample("sketch2photo", None, ("--epochs", "10", "--crop-size", "128")),
        Sample("inpaint", None, ("--epochs", "10", "--crop-size", "128")),
    ]
}

QUICK_FLAGS = ("--max-steps", "2", "--gen-opt", "ngf=8", "--disc-opt", "ndf=8")


def i2i(*args: str) -> str:
    """Run ``python -m i2i ARGS`` and return its stdout; a failure stops the script."""
    done = subprocess.run([sys.executable, "-m", "i2i", *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"i2i {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def run_command(sample: Sample, out: Path, quick: bool) -> list[str]:
    cmd = ["run", "--task", sample.task]
    if sample.data:
        cmd += ["--data", str(data_root() / sample.data)]
    cmd += [*sample.flags, *(QUICK_FLAGS if quick else ()), "--out", str(out), "--quiet"]
    return cmd


def shown_command(sample: Sample) -> str:
    """The command as a user types it, data folder relative to the project root."""
    data = ["--data", f"../shared/data/{sample.data}"] if sample.data else []
    return " ".join(["i2i", "run", "--task", sample.task, *data, *sample.flags])


def figure(images: Path, dest: Path, rows: int = ROWS) -> None:
    """Write input | output | target rows of the first ``rows`` eval images as one PNG."""
    stems = sorted(p.name[: -len("_output.png")] for p in images.glob("*_output.png"))[:rows]
    if not stems:
        raise SystemExit(f"{images}: no *_output.png images to show")
    sheet = Image.new("RGB", (3 * CELL, len(stems) * CELL), "white")
    for r, stem in enumerate(stems):
        for c, part in enumerate(("input", "output", "target")):
            with Image.open(images / f"{stem}_{part}.png") as im:
                cell = im.convert("RGB").resize((CELL, CELL), Image.Resampling.LANCZOS)
            sheet.paste(cell, (c * CELL, r * CELL))
    sheet.save(dest, optimize=True)


def eval_size(images: Path) -> str:
    """``WxH`` of the first image that ``i2i eval`` wrote."""
    with Image.open(sorted(images.glob("*_output.png"))[0]) as im:
        return f"{im.width}x{im.height}"


def machine() -> str:
    import torch

    return (
        f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"Python {platform.python_version()}"
    )


def used_precision(config: dict) -> str:
    """The precision a run's "auto" settings resolved to on this machine."""
    from i2i.engine.devices import resolve_device, resolve_precision

    return resolve_precision(config["precision"], resolve_device(config["device"]), training=True)


def make(sample: Sample, dest: Path, work: Path, quick: bool) -> dict:
    """Train, evaluate and plot one sample; write its figures and results.json into ``dest``."""
    run_dir, eval_dir = work / f"{sample.task}-run", work / f"{sample.task}-eval"
    for d in (run_dir, eval_dir):
        if d.exists():
            raise SystemExit(f"{d} exists; remove it or pass another --work")
    start = time.perf_counter()
    i2i(*run_command(sample, run_dir, quick))
    wall = time.perf_counter() - start
    ev = ["eval", "--checkpoint", str(run_dir), "--out", str(eval_dir), "--json", "--no-progress"]
    if sample.data:
        ev += ["--data", str(data_root() / sample.data)]
    i2i(*ev, *sample.extra_eval)
    summary = json.loads((eval_dir / "metrics.json").read_text())
    i2i("report", str(run_dir))
    config = json.loads((run_dir / "config.json").read_text())
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
    steps = max((r.get("step", 0) for r in records), default=0)
    dest.mkdir(parents=True, exist_ok=True)
    figure(eval_dir / "images", dest / "samples.png")
    (dest / "losses.png").write_bytes((run_dir / "report" / "losses.png").read_bytes())
    result = {
        "task": sample.task,
        "command": shown_command(sample),
        "note": sample.note,
        "generator": config["generator"],
        "discriminator": config["discriminator"],
        "crop_size": config["crop_size"],
        "batch_size": config["batch_size"],
        "precision": used_precision(config),
        "steps": steps,
        "train_seconds": round(wall, 1),
        "val_images": summary["num_images"],
        "eval_size": eval_size(eval_dir / "images"),
        "test_mode": summary["source"]["mode"],
        "metrics": {k: round(v, 4) for k, v in summary["metrics"].items()},
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
    }
    (dest / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tasks", nargs="*", help=f"of {', '.join(SAMPLES)} [all]")
    parser.add_argument("--quick", action="store_true", help="a few steps, tiny networks")
    parser.add_argument("--dest", type=Path, help="figures go here [docs/_static/samples]")
    parser.add_argument("--work", type=Path, default=Path("runs/docs"), help="run folders")
    args = parser.parse_args(argv)
    unknown = [t for t in args.tasks if t not in SAMPLES]
    if unknown:
        parser.error(f"no sample for {', '.join(unknown)}; choose from {', '.join(SAMPLES)}")
    if args.quick and args.dest is None:
        parser.error("--quick needs --dest: its numbers must not land in the docs")
    for task in args.tasks or list(SAMPLES):
        result = make(SAMPLES[task], (args.dest or STATIC) / task, args.work, args.quick)
        print(json.dumps(result))
    if args.dest is None:
        from i2i.reference import main as write_reference

        write_reference([str(DOCS.parent)])


if __name__ == "__main__":
    main()
