"""Speed benchmark of i2i against the official pix2pix way of training, in one table.

Run from the repository root::

    python -m benchmarks.bench                 # every row (about 4 minutes on 2 cores)
    python -m benchmarks.bench --quick         # smoke run: fewer repetitions
    python -m benchmarks.bench --rows train256_b1,infer256_b8 --json out.json
    python -m benchmarks.bench --quality       # fp32 vs default training quality
    python -m benchmarks.bench --profile train256_b1
    python -m benchmarks.bench --rows 'train256_*' --steady 30   # on a machine that changes speed
    python -m benchmarks.bench --device cuda --no-data         # on a GPU

Every row times the reference path and i2i's paths interleaved, repetition by repetition,
each in its own worker process, and reports medians after warm-up; see
:mod:`benchmarks.setups` for the paths and benchmarks/README.md for the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import fnmatch
import json
import os
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):  # `python benchmarks/bench.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.data_rate import data_images_per_second, default_workers, facades_dataset
from benchmarks.device import DEVICES, DeviceUnavailable, bench_device, describe_memory, use_device
from benchmarks.harness import median
from benchmarks.machine import (
    PEAK_DRIFT,
    conv_peaks,
    describe_machine,
    describe_peaks,
    load_average,
    machine_changed,
)
from benchmarks.rows import DEFAULT_ROWS, NAMED_ROWS, RowResult, RowSpec, measure_row
from benchmarks.setups import (
    REFERENCE,
    PathSettings,
    engine_defaults,
    proposed_inference,
    proposed_training,
    translator_defaults,
)

MIB = 1 << 20


def data_root() -> Path:
    """``$I2I_DATA`` or ``../shared/data`` beside the repository (as the tests find it)."""
    repo = Path(__file__).resolve().parent.parent
    return Path(os.environ.get("I2I_DATA", repo.parent / "shared" / "data"))


def select_rows(
    patterns: str | None,
    rows: tuple[RowSpec, ...] = DEFAULT_ROWS,
    named: tuple[RowSpec, ...] = NAMED_ROWS,
) -> list[RowSpec]:
    """Rows whose names match any comma-separated pattern (shell wildcards); all of ``rows``
    when None. The ``named`` rows only where a pattern is exactly their name.

    >>> [r.name for r in select_rows("infer*")]
    ['infer256_b1', 'infer256_b8']
    >>> [r.name for r in select_rows("infer256_b1,train256_b32")]
    ['infer256_b1', 'train256_b32']
    """
    if not patterns:
        return list(rows)
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [r for r in rows if any(fnmatch.fnmatch(r.name, p) for p in wanted)]
    chosen += [r for r in named if r.name in wanted]
    if not chosen:
        names = ", ".join(r.name for r in rows)
        also = ", ".join(r.name for r in named)
        raise SystemExit(
            f"--rows {patterns!r} matches no row; rows are: {names} (and by exact name: {also})"
        )
    return chosen


def reps_for(spec: RowSpec, quick: bool, reps: int | None) -> tuple[int, int]:
    """(repetitions, warm-up calls) for a row: more for cheap rows, fewer with ``--quick``.

    >>> reps_for(DEFAULT_ROWS[0], quick=False, reps=None)
    (9, 2)
    >>> reps_for(DEFAULT_ROWS[0], quick=True, reps=None)
    (2, 1)
    """
    if reps is not None:
        return reps, 1
    if quick:
        return 2, 1
    return (9, 2) if spec.setup.batch == 1 else (5, 1)


def _fmt_mb(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.0f}"


#: On a GPU, inference also without CUDA graphs (the Translator's default there), to show
#: what replaying the forward as one graph gains.
NO_GRAPHS = "i2i without CUDA graphs"
#: On a GPU, training also in the precision the defaults do not take there: fp32 (which
#: PyTorch runs as TF32 on the tensor cores) where they train under autocast, bf16 autocast
#: where they train in fp32 (GPUs with TF32, see ``resolve_precision``). At batch 1 a GPU step
#: waits on kernel launches, and autocast adds a cast of every weight and of its gradient
#: (about 70 of a U-Net 128 step's 460 ops).
FP32_TRAIN = "i2i in fp32 (TF32)"
BF16_TRAIN = "i2i in bf16 autocast"
#: With ``--with-compile``: the defaults with both networks under ``torch.compile`` (inductor;
#: CUDA graphs are its ``reduce-overhead`` mode, not this), compiled during the warm-up calls.
COMPILED = "i2i compiled"


def paths_for(spec: RowSpec, *, with_compile: bool = False) -> dict[str, PathSettings]:
    """``reference``, ``i2i`` (the defaults) and ``i2i+`` (proposals) where it differs; where
    the defaults replay CUDA graphs also :data:`NO_GRAPHS`; for training on a GPU also the
    other precision, :data:`FP32_TRAIN` or :data:`BF16_TRAIN`; with ``with_compile`` also :data:`COMPILED`.

    >>> {"i2i", "reference"} <= set(paths_for(DEFAULT_ROWS[0]))  # i2i+ where proposals differ
    True
    >>> paths_for(DEFAULT_ROWS[0], with_compile=True)[COMPILED].compile
    True
    """
    if spec.kind == "train":
        default, proposed = engine_defaults(), proposed_training()
    else:
        default, proposed = translator_defaults(), proposed_inference()
    paths = {"reference": REFERENCE, "i2i": default}
    if dataclasses.replace(proposed, name=default.name) != default:
        paths["i2i+"] = proposed
    if default.cuda_graphs:
        paths[NO_GRAPHS] = dataclasses.replace(default, name=NO_GRAPHS, cuda_graphs=False)
    if spec.kind == "train" and bench_device().type == "cuda":
        if default.precision != "fp32":
            paths[FP32_TRAIN] = dataclasses.replace(default, name=FP32_TRAIN, precision="fp32")
        elif torch.cuda.is_bf16_supported():
            paths[BF16_TRAIN] = dataclasses.replace(default, name=BF16_TRAIN, precision="bf16")
    if with_compile:
        paths[COMPILED] = dataclasses.replace(
            default, name=COMPILED, compile=True, cuda_graphs=False
        )
    return paths


def fastest_training(results: list[RowResult]) -> tuple[str, float] | None:
    """The highest training images/s of any non-reference path at 256 px, with its label."""
    best = None
    for r in results:
        if r.spec.kind != "train" or r.spec.setup.size != 256:
            continue
        for name, p in r.paths.items():
            if name != "reference" and (best is None or p.images_per_s > best[1]):
                best = (f"{r.spec.label()}, {name}", p.images_per_s)
    return best


TABLE_HEAD = (
    "| row | path | ref img/s | path img/s | speedup | GFLOP/img | ref GFLOP/s (% fp32 peak) "
    "| path GFLOP/s (% own peak) | ref peak MiB | path peak MiB |"
)


def format_table(
    results: list[RowResult], peaks: dict[str, float], *, reference: str = "reference"
) -> str:
    """The Markdown table: one line per row and non-reference path, each against the reference."""
    lines = [TABLE_HEAD, "|" + "---|" * 10]
    for r in results:
        ref = r.paths[reference]
        for name, new in r.paths.items():
            if name == reference:
                continue

            def pct(gf: float, peak: float | None) -> str:
                return f"{gf:.0f} ({100 * gf / peak:.0f}%)" if peak else f"{gf:.0f}"

            lines.append(
                f"| {r.spec.label()} | {name} | {ref.images_per_s:.2f} | {new.images_per_s:.2f} "
                f"| {r.speedup(name, reference):.2f}x | {r.flops / r.spec.setup.batch / 1e9:.1f} "
                f"| {pct(r.gflops(reference), peaks.get(ref.settings.precision))} "
                f"| {pct(r.gflops(name), peaks.get(new.settings.precision))} "
                f"| {_fmt_mb(ref.peak_bytes)} | {_fmt_mb(new.peak_bytes)} |"
            )
    return "\n".join(lines)


def format_steady_memory(results: list[RowResult]) -> str:
    """One line per row: each path's peak memory over the timed calls alone (after the
    warm-up), beside the table's peak from building the networks on; empty without figures.

    >>> format_steady_memory([])
    ''
    """
    lines = []
    for r in results:
        figures = [
            f"{name} {_fmt_mb(p.steady_peak_bytes)}"
            for name, p in r.paths.items()
            if p.steady_peak_bytes is not None
        ]
        if figures:
            lines.append(f"  {r.spec.label()}: {', '.join(figures)} MiB")
    if not lines:
        return ""
    head = (
        "peak memory over the timed calls alone, after the warm-up (the table's column also "
        "counts building the networks and the first calls: oneDNN's or cuDNN's kernel choice "
        "and its workspaces):"
    )
    return "\n".join([head, *lines])


def format_call_spread(results: list[RowResult], *, reference: str = "reference") -> str:
    """One line per row: each path's fastest, median and slowest call (ms), and the ratio of
    each path's fastest call to the reference's fastest: on a shared machine the reference's
    own calls can spread over 4x in one run, and this shows how much of a row's ratio that is.

    >>> from benchmarks.rows import PathResult
    >>> from benchmarks.setups import REFERENCE, TrainSetup, translator_defaults
    >>> row = RowResult(RowSpec("infer256_b1", "infer", TrainSetup()), flops=1)
    >>> row.paths["reference"] = PathResult(REFERENCE, [0.075, 0.4, 0.12], 1 / 0.12)
    >>> row.paths["i2i"] = PathResult(translator_defaults(), [0.017, 0.024, 0.018], 1 / 0.018)
    >>> print(format_call_spread([row]))
    calls, fastest / median / slowest ms (fastest against the reference's fastest):
      infer unet_256 256px b1: reference 75 / 120 / 400, i2i 17 / 18 / 24 (4.41x)
    """
    lines = []
    for r in results:
        if reference not in r.paths:
            continue
        figures = []
        for name, p in r.paths.items():
            ms = sorted(s * 1e3 for s in p.seconds)
            text = f"{name} {ms[0]:.0f} / {median(ms):.0f} / {ms[-1]:.0f}"
            if name != reference:
                text += f" ({r.fastest_speedup(name, reference):.2f}x)"
            figures.append(text)
        lines.append(f"  {r.spec.label()}: {', '.join(figures)}")
    if not lines:
        return ""
    head = "calls, fastest / median / slowest ms (fastest against the reference's fastest):"
    return "\n".join([head, *lines])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="few repetitions: a smoke run")
    p.add_argument(
        "--rows",
        help="comma-separated row names or wildcards (default: all but the batch-32 rows, "
        "which run only by exact name: train256_b32, infer256_b32)",
    )
    p.add_argument("--reps", type=int, help="timed repetitions per row (overrides the default)")
    p.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run every path in this process: no isolation (i2i+'s heap setting then applies "
        "to the paths after it), no memory figures",
    )
    p.add_argument(
        "--steady",
        type=float,
        metavar="MINUTES",
        help="for a machine whose speed changes with its neighbours: time rounds across every "
        "row for MINUTES with a short probe of the machine's speed between rounds, and report "
        "each row from every round and from the rounds at the run's best speed",
    )
    p.add_argument("--no-data", action="store_true", help="skip the data pipeline measurement")
    p.add_argument("--quality", action="store_true", help="run the quality comparison instead")
    p.add_argument("--quality-steps", type=int, default=400, help="training steps per quality run")
    p.add_argument("--quality-seeds", type=int, default=2, help="fp32 seeds in the quality run")
    p.add_argument(
        "--quality-fast-seeds",
        type=int,
        default=1,
        help="seeds of the default path in the quality run; from 2 on, also compare the means",
    )
    p.add_argument("--profile", metavar="ROW", help="print torch.profiler top ops of a row's paths")
    p.add_argument(
        "--with-compile",
        action="store_true",
        help="also time the defaults under torch.compile (compiled in the warm-up calls; "
        "minutes on 2 CPU cores)",
    )
    p.add_argument(
        "--device",
        choices=DEVICES,
        help="where the networks run (default: $I2I_BENCH_DEVICE, else cpu); cuda times each "
        "call until the GPU has finished it and reports GPU memory",
    )
    return p


def run_steady(
    specs: list[RowSpec], args: argparse.Namespace, peaks: dict, report: dict, out=print
) -> list[RowResult]:
    """``--steady``: rounds across every row for the given minutes (see :mod:`benchmarks.steady`).

    Prints the rows from the rounds at the run's best speed and from every round, stores both
    and every round in ``report``, and returns the best-speed rows (every round where none was).
    """
    from benchmarks.steady import best_probe, measure_steady

    if args.in_process:
        raise SystemExit("--steady runs every path in its own process; drop --in-process")
    out(
        f"  timing rounds across {', '.join(s.name for s in specs)} for {args.steady:g} minutes "
        "(a probe of the machine's speed between rounds) ..."
    )
    steady = measure_steady(
        specs,
        {spec.name: paths_for(spec, with_compile=args.with_compile) for spec in specs},
        minutes=args.steady,
        warmup={spec.name: reps_for(spec, args.quick, args.reps)[1] for spec in specs},
    )
    report["steady"] = steady.to_dict()
    best = best_probe(steady.rounds)
    out(
        f"\n{len(steady.rounds)} rounds; best probe readings fp32 {best['fp32']:.0f}, bf16 "
        f"{best['bf16']:.0f} GFLOP/s ({best['bf16'] / best['fp32']:.2f}x; batch-2 conv), copy "
        f"{best['copy_gbs']:.1f} GB/s; {sum(steady.keep)} rounds had every reading of both "
        f"probes within {PEAK_DRIFT:.0%} of those (the run's best speed); the tables' % columns "
        "are of the best probe readings"
    )
    for row in steady.all_rounds:
        kept, total = steady.counts(row.spec.name)
        ratios = ", ".join(
            f"{name} {row.fastest_speedup(name):.2f}x" for name in row.paths if name != "reference"
        )
        out(
            f"  {row.spec.name}: {kept} of {total} rounds at the best speed; fastest call of "
            f"each path against the reference's fastest: {ratios}"
        )
    out("\nfrom the rounds at the run's best speed:")
    out(format_table(steady.best_speed, best) if steady.best_speed else "(none)")
    out("\nfrom every round:")
    out(format_table(steady.all_rounds, best))
    return steady.best_speed or steady.all_rounds


def run_speed(args: argparse.Namespace, out=print) -> dict:
    """The speed table: peaks, rows, data pipeline; returns everything as a dict."""
    specs = select_rows(args.rows)
    started = dt.datetime.now()
    out(f"# i2i benchmark, {started:%Y-%m-%d %H:%M}")
    device = bench_device()
    out(f"machine: {describe_machine()}; load average at start {load_average()}")
    out(f"device: {device.type}; peak memory is the {describe_memory(device)}")
    if device.type == "cuda":
        out("every path runs with cudnn.benchmark (the official code sets it for fixed sizes)")
    out(f"reference:        {REFERENCE.describe()}")
    for kind, default, proposed in (
        ("train", engine_defaults(), proposed_training()),
        ("infer", translator_defaults(), proposed_inference()),
    ):
        out(f"i2i  ({kind}): {default.describe()}")
        out(f"i2i+ ({kind}): {proposed.describe()}")
    if device.type == "cuda":
        out(f"{NO_GRAPHS}: the i2i inference path launching its kernels one by one")
    if args.with_compile:
        out(f"{COMPILED}: the i2i paths with both networks under torch.compile")
    peaks = conv_peaks(reps=2 if args.quick else 5, device=device)
    out(f"conv peak (3x3, 512->512 ch, 8x32x32, forward): {describe_peaks(peaks)}")
    report = {
        "date": f"{started:%Y-%m-%d}",
        "machine": describe_machine(),
        "device": device.type,
        "load_average": load_average(),
        "peaks_gflops": peaks,
    }
    if args.steady is not None:
        results = run_steady(specs, args, peaks, report, out)
    else:
        results = []
        for spec in specs:
            reps, warmup = reps_for(spec, args.quick, args.reps)
            if args.with_compile:
                warmup = max(warmup, 3)  # the first calls compile (and may compile again)
            out(f"  measuring {spec.name} ({reps} reps after {warmup} warm-up) ...")
            results.append(
                measure_row(
                    spec,
                    paths_for(spec, with_compile=args.with_compile),
                    reps=reps,
                    warmup=warmup,
                    isolate=not args.in_process,
                )
            )
        out("")
        out(format_table(results, peaks))
        for extra in (format_steady_memory(results), format_call_spread(results)):
            if extra:
                out("")
                out(extra)
    report["rows"] = [r.to_dict() for r in results]
    if not args.no_data:
        root = data_root()
        try:
            dataset = facades_dataset(root)
        except FileNotFoundError as exc:
            out(f"\ndata pipeline: skipped ({exc})")
        else:
            rate = data_images_per_second(dataset, batches=40 if args.quick else 200)
            line = (
                f"\ndata pipeline alone (facades train files, 286 -> 256 crops with flips, "
                f"{default_workers()} workers, batch 1): {rate:.0f} images/s"
            )
            report["data_images_per_s"] = rate
            fastest = fastest_training(results)
            if fastest is not None:
                label, train_rate = fastest
                ratio = rate / train_rate
                line += (
                    f" = {ratio:.0f}x the fastest training rate measured at 256 px "
                    f"({train_rate:.2f} images/s, {label})"
                )
                report["data_to_train_ratio"] = ratio
            out(line)
    out(f"\nload average at end {load_average()}")
    report["load_average_end"] = load_average()
    end_peaks = conv_peaks(reps=2 if args.quick else 5, device=device)
    report["peaks_gflops_end"] = end_peaks
    out(f"conv peak at end: {describe_peaks(end_peaks)}")
    if machine_changed(peaks, end_peaks):
        out(
            "the machine's speed changed during the run (conv peaks at start and end differ "
            f"by more than {PEAK_DRIFT:.0%}): the rows may mix its states; run it again"
        )
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        device = use_device(args.device or bench_device().type)  # checks $I2I_BENCH_DEVICE too
    except DeviceUnavailable as exc:
        raise SystemExit(str(exc)) from None
    if device.type != "cpu" and (args.quality or args.profile or args.steady is not None):
        raise SystemExit(
            "--quality, --profile and --steady run on the CPU only (their probes and "
            "profiles are the CPU's); drop them or --device"
        )
    if args.quality:
        from benchmarks.quality import run_quality

        report = run_quality(
            data_root(),
            steps=args.quality_steps,
            fp32_seeds=args.quality_seeds,
            fast_seeds=args.quality_fast_seeds,
            quick=args.quick,
        )
    elif args.profile:
        from benchmarks.profiling import run_profile

        report = run_profile(select_rows(args.profile))
    else:
        report = run_speed(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
