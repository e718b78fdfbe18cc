"""Benchmark rows: one network configuration, every path measured interleaved in one run.

>>> from benchmarks.setups import REFERENCE, TrainSetup
>>> spec = RowSpec("t", "train", TrainSetup(size=32, num_downs=5, ngf=4, ndf=4))
>>> r = measure_row(spec, {"reference": REFERENCE}, reps=1, warmup=0, isolate=False)
>>> r.flops > 0, r.paths["reference"].images_per_s > 0
(True, True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from benchmarks.device import bench_device, synced
from benchmarks.harness import count_flops, interleaved, median
from benchmarks.setups import (
    REFERENCE,
    PathSettings,
    TrainSetup,
    enter_path,
    inference_fn,
    train_step_fn,
)

KINDS = ("train", "infer")


@dataclass(frozen=True)
class RowSpec:
    """A row: ``kind`` (train or infer) of ``setup``."""

    name: str
    kind: str
    setup: TrainSetup

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"row kind must be one of {', '.join(KINDS)}; got {self.kind!r}")

    def label(self) -> str:
        """Human-readable: ``train unet_256+patch70 256px b1``.

        >>> RowSpec("x", "infer", TrainSetup()).label()
        'infer unet_256 256px b1'
        """
        s = self.setup
        gen = s.generator if s.num_downs is None else f"unet(num_downs={s.num_downs})"
        nets = gen if self.kind == "infer" else f"{gen}+{s.discriminator}"
        width = "" if (s.ngf, s.ndf) == (64, 64) else f" ngf{s.ngf}/ndf{s.ndf}"
        recipe = "" if s.recipe == "pix2pix" else f" {s.recipe}"
        return f"{self.kind}{recipe} {nets}{width} {s.size}px b{s.batch}"


#: The rows of the issue: the facades setup at 256 (batch 1 and 8), the same at 128 with
#: unet_128, generator inference at 256 (batch 1 and 8); and a CycleGAN step (the cyclegan
#: recipe's G, F, D_X, D_Y: resnet_9blocks + PatchGAN 70, instance norm) at 256, batch 1.
DEFAULT_ROWS: tuple[RowSpec, ...] = (
    RowSpec("train256_b1", "train", TrainSetup(batch=1)),
    RowSpec("train256_b8", "train", TrainSetup(batch=8)),
    RowSpec("train128_b1", "train", TrainSetup(generator="unet_128", size=128, batch=1)),
    RowSpec("train128_b8", "train", TrainSetup(generator="unet_128", size=128, batch=8)),
    RowSpec("infer256_b1", "infer", TrainSetup(batch=1)),
    RowSpec("infer256_b8", "infer", TrainSetup(batch=8)),
    RowSpec(
        "cyclegan256_b1",
        "train",
        TrainSetup(recipe="cyclegan", generator="resnet_9blocks", norm="instance", batch=1),
    ),
)

#: Rows timed only when named exactly (``--rows train256_b32``), not in the default table nor
#: by wildcard: batch 32 at 256 px, where a GPU's tensor-core arithmetic rather than its kernel
#: launches may bound a step, so bf16 could overtake fp32 (TF32) there (benchmarks/README.md,
#: *GPU*); on 2 CPU cores one such step takes about 15 s.
NAMED_ROWS: tuple[RowSpec, ...] = (
    RowSpec("train256_b32", "train", TrainSetup(batch=32)),
    RowSpec("infer256_b32", "infer", TrainSetup(batch=32)),
)


@dataclass
class PathResult:
    """One path's measurements in one row."""

    settings: PathSettings
    seconds: list[float]
    images_per_s: float
    peak_bytes: int | None = None  # from building the networks to the last call
    steady_peak_bytes: int | None = None  # over the timed calls only, after the warm-up

    @property
    def median_s(self) -> float:
        return median(self.seconds)


@dataclass
class RowResult:
    """Every path of one row, plus the row's FLOPs per call (counted on the reference path)."""

    spec: RowSpec
    flops: int
    paths: dict[str, PathResult] = field(default_factory=dict)

    def gflops(self, path: str) -> float:
        """Achieved GFLOP/s of ``path``: the row's FLOPs over its median time per call."""
        return self.flops / self.paths[path].median_s / 1e9

    def speedup(self, path: str, reference: str = "reference") -> float:
        """Median images/s of ``path`` over that of ``reference``."""
        return self.paths[path].images_per_s / self.paths[reference].images_per_s

    def fastest_speedup(self, path: str, reference: str = "reference") -> float:
        """``reference``'s fastest call over ``path``'s fastest call."""
        return min(self.paths[reference].seconds) / min(self.paths[path].seconds)

    def to_dict(self) -> dict:
        return {
            "name": self.spec.name,
            "label": self.spec.label(),
            "kind": self.spec.kind,
            "setup": asdict(self.spec.setup),
            "flops_per_call": self.flops,
            "paths": {
                k: {
                    "settings": asdict(v.settings),
                    "seconds": v.seconds,
                    "images_per_s": v.images_per_s,
                    "peak_bytes": v.peak_bytes,
                    "steady_peak_bytes": v.steady_peak_bytes,
                }
                for k, v in self.paths.items()
            },
        }


def make_fn(spec: RowSpec, settings: PathSettings, seed: int = 0):
    """The no-argument callable the row times for ``settings``; on a GPU it returns once the
    device has finished the call's work (:func:`benchmarks.device.synced`)."""
    make = train_step_fn if spec.kind == "train" else inference_fn
    return synced(make(spec.setup, settings, seed), bench_device())


def _interleave_workers(
    workers: dict, reps: int, warmup: int
) -> tuple[dict[str, list[float]], dict[str, tuple[int, int]]]:
    """The timed calls of every worker, interleaved, and each worker's (whole, steady) peak
    memory: from building its networks to the last call, and over the timed calls alone."""
    names = list(workers)
    for _ in range(warmup):
        for name in names:
            workers[name].call()
    warm = {name: w.peak_bytes() for name, w in workers.items()}
    for w in workers.values():
        w.restart_peak()
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            times[name].append(workers[name].call())
    steady = {name: w.peak_bytes() for name, w in workers.items()}
    return times, {name: (max(warm[name], steady[name]), steady[name]) for name in names}


def start_workers(spec: RowSpec, paths: dict[str, PathSettings]) -> dict:
    """A :class:`benchmarks.workers.PathWorker` per path, started, not yet waited for: start
    every worker of a run first, then ``wait_ready`` each, so they build their networks at once."""
    from benchmarks.workers import PathWorker

    workers: dict = {}
    try:
        for name, settings in paths.items():
            workers[name] = PathWorker(spec, settings, wait=False)
    except BaseException:
        for worker in workers.values():
            worker.close()
        raise
    return workers


def row_flops(spec: RowSpec, paths: dict[str, PathSettings], workers: dict) -> int:
    """FLOPs of one call of ``spec``: counted by the reference path's worker where there is
    one, else on the reference path in this process."""
    ref_name = next((n for n, s in paths.items() if s == REFERENCE), None)
    if ref_name is not None:
        return workers[ref_name].flops()
    enter_path(REFERENCE)
    return count_flops(make_fn(spec, REFERENCE))


def measure_row(
    spec: RowSpec,
    paths: dict[str, PathSettings],
    *,
    reps: int,
    warmup: int,
    isolate: bool = True,
) -> RowResult:
    """Time every path of ``spec`` interleaved; count FLOPs once (reference path).

    ``isolate=True``: each path in its own worker process (see :mod:`benchmarks.workers`),
    which also gives its peak memory. ``isolate=False``: everything in this process, switching
    the per-path settings before each call; no memory figure.
    """
    if isolate:
        workers: dict = {}
        try:
            workers = start_workers(spec, paths)
            for worker in workers.values():
                worker.wait_ready()
            times, peaks = _interleave_workers(workers, reps, warmup)
            flops = row_flops(spec, paths, workers)
        finally:
            for w in workers.values():
                w.close()
    else:
        fns = {}
        for name, settings in paths.items():
            enter_path(settings)
            fns[name] = make_fn(spec, settings)
        enter = {name: (lambda s=settings: enter_path(s)) for name, settings in paths.items()}
        times = interleaved(fns, reps=reps, warmup=warmup, enter=enter)
        enter_path(REFERENCE)
        flops = count_flops(make_fn(spec, REFERENCE))
        peaks = dict.fromkeys(paths, (None, None))
    result = RowResult(spec, flops)
    for name, settings in paths.items():
        secs = times[name]
        whole, steady = peaks[name]
        result.paths[name] = PathResult(
            settings,
            secs,
            spec.setup.batch / median(secs),
            peak_bytes=whole,
            steady_peak_bytes=steady,
        )
    return result
