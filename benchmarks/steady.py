"""Rows timed over a long window, every repetition tagged with the machine's speed at the time.

Some shared machines move between speed states within minutes: the AMX machine of
benchmarks/README.md runs its bf16 convolutions 2-4x slower in its "slow" state, which can hold
for hours, and comes back to full speed for a minute or two at a time. A 4-minute run then
mixes states or never sees the fast one. ``python -m benchmarks.bench --steady MINUTES`` keeps
the worker processes of every selected row alive for MINUTES and times *rounds* in turn across
the rows: one call of each path of a row (order alternating), with a short probe of the
machine's speed (:func:`probe`: convolutions and a memory copy) between consecutive rounds. At the end each row is reported twice: from every
round, and from the rounds whose probes on both sides reached the run's best speed
(:func:`at_best_speed`: fp32, bf16 and copy bandwidth each within ``tolerance`` of the best
reading of the run). Both paths of a round share its machine state, so their ratio is fair in
either report. That selection means something only where a state outlasts a round: on
2026-12-03 the AMX machine flipped within a second (see benchmarks/README.md), and its rounds
at the best probes were too few and too mixed to stand for its full speed.

>>> fast = {"fp32": 250.0, "bf16": 2000.0, "copy_gbs": 30.0}
>>> slow = {"fp32": 150.0, "bf16": 500.0, "copy_gbs": 30.0}
>>> rounds = [Round("r", {"a": 1.0}, fast, fast), Round("r", {"a": 2.0}, fast, slow)]
>>> at_best_speed(rounds)
[True, False]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import torch

from benchmarks.harness import median
from benchmarks.machine import PEAK_DRIFT, conv_peaks
from benchmarks.rows import PathResult, RowResult, RowSpec, row_flops, start_workers
from benchmarks.setups import PathSettings

PROBE_KEYS = ("fp32", "bf16", "copy_gbs")


def copy_bandwidth(mib: int = 64, reps: int = 3) -> float:
    """GB/s of copying one fp32 tensor of ``mib`` MiB into another (bytes read + written), best of
    ``reps``: the memory side of the machine's state, which the optimizers and batch norm feel.

    >>> copy_bandwidth(mib=1, reps=1) > 0
    True
    """
    src = torch.ones(mib << 18)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * src.element_size() / best / 1e9


def probe() -> dict[str, float]:
    """A quick reading of the machine's state (about 0.3 s on 2 cores): the conv peaks at batch
    2, one repetition (``fp32``, ``bf16``, GFLOP/s) and :func:`copy_bandwidth` (``copy_gbs``)."""
    peaks = conv_peaks(reps=1, warmup=0, batch=2)
    return {"fp32": peaks["fp32"], "bf16": peaks["bf16"], "copy_gbs": copy_bandwidth()}


@dataclass
class Round:
    """One call of each path of row ``row`` (seconds by path), with the probes around it."""

    row: str
    seconds: dict[str, float]
    before: dict[str, float]
    after: dict[str, float]


def best_probe(rounds: Sequence[Round]) -> dict[str, float]:
    """The highest reading of each kind (fp32, bf16, copy bandwidth) in any probe of ``rounds``.

    >>> a, b = {"fp32": 1, "bf16": 5, "copy_gbs": 9}, {"fp32": 2, "bf16": 4, "copy_gbs": 8}
    >>> best_probe([Round("r", {}, a, b)])
    {'fp32': 2, 'bf16': 5, 'copy_gbs': 9}
    """
    probes = [p for r in rounds for p in (r.before, r.after)]
    return {k: max(p[k] for p in probes) for k in PROBE_KEYS}


def at_best_speed(rounds: Sequence[Round], tolerance: float = PEAK_DRIFT) -> list[bool]:
    """For each round: were both its probes within ``tolerance`` of the run's best, in every
    reading (fp32, bf16, copy bandwidth)?"""
    if not rounds:
        return []
    best = best_probe(rounds)

    def fast(p: Mapping[str, float]) -> bool:
        return all(p[k] >= (1 - tolerance) * best[k] for k in PROBE_KEYS)

    return [fast(r.before) and fast(r.after) for r in rounds]


def run_rounds(
    rows: Mapping[str, Mapping[str, Callable[[], float]]],
    *,
    seconds: float,
    probe: Callable[[], dict[str, float]] = probe,
    clock: Callable[[], float] = time.monotonic,
) -> list[Round]:
    """Rounds across ``rows`` (row -> path -> a call returning its seconds) for ``seconds``.

    Every row gets at least one round; a cycle over the rows that has begun is finished.

    >>> calls = {"r1": {"a": lambda: 1.0, "b": lambda: 2.0}, "r2": {"a": lambda: 3.0}}
    >>> rs = run_rounds(calls, seconds=0, probe=lambda: {"fp32": 1.0, "bf16": 2.0, "copy_gbs": 9.0})
    >>> [(r.row, r.seconds) for r in rs]
    [('r1', {'a': 1.0, 'b': 2.0}), ('r2', {'a': 3.0})]
    """
    end = clock() + seconds
    rounds: list[Round] = []
    before = probe()
    cycle = 0
    while cycle == 0 or clock() < end:
        for row, paths in rows.items():
            names = list(paths) if cycle % 2 == 0 else list(paths)[::-1]
            times = {name: paths[name]() for name in names}
            after = probe()
            rounds.append(Round(row, {n: times[n] for n in paths}, before, after))
            before = after
        cycle += 1
    return rounds


def row_results(
    specs: Sequence[RowSpec],
    paths: Mapping[str, Mapping[str, PathSettings]],
    rounds: Sequence[Round],
    keep: Sequence[bool],
    flops: Mapping[str, int],
    peaks: Mapping[str, Mapping[str, int | None]],
) -> list[RowResult]:
    """A :class:`RowResult` per row from its kept rounds; rows with none kept are left out."""
    results = []
    for spec in specs:
        kept = [r for r, k in zip(rounds, keep, strict=True) if k and r.row == spec.name]
        if not kept:
            continue
        result = RowResult(spec, flops[spec.name])
        for name, settings in paths[spec.name].items():
            secs = [r.seconds[name] for r in kept]
            result.paths[name] = PathResult(
                settings, secs, spec.setup.batch / median(secs), peak_bytes=peaks[spec.name][name]
            )
        results.append(result)
    return results


@dataclass
class SteadyReport:
    """Every round, which were at the run's best speed, and the rows from all rounds and
    from those."""

    rounds: list[Round]
    keep: list[bool]
    all_rounds: list[RowResult]
    best_speed: list[RowResult]

    def counts(self, row: str) -> tuple[int, int]:
        """(rounds at the run's best speed, all rounds) of ``row``."""
        flags = [k for r, k in zip(self.rounds, self.keep, strict=True) if r.row == row]
        return sum(flags), len(flags)

    def to_dict(self) -> dict:
        pairs = zip(self.rounds, self.keep, strict=True)
        return {
            "best_probe": best_probe(self.rounds),
            "rounds": [{**asdict(r), "best_speed": k} for r, k in pairs],
            "rows_all_rounds": [r.to_dict() for r in self.all_rounds],
            "rows_best_speed": [r.to_dict() for r in self.best_speed],
        }


def measure_steady(
    specs: Sequence[RowSpec],
    paths: Mapping[str, Mapping[str, PathSettings]],
    *,
    minutes: float,
    warmup: Mapping[str, int],
    tolerance: float = PEAK_DRIFT,
    probe: Callable[[], dict[str, float]] = probe,
) -> SteadyReport:
    """Start a worker per path of every row, warm each up, time rounds for ``minutes``."""
    workers: dict[str, dict] = {}
    try:
        for spec in specs:  # start them all, then wait for each
            workers[spec.name] = start_workers(spec, dict(paths[spec.name]))
        for row in workers.values():
            for worker in row.values():
                worker.wait_ready()
        for spec in specs:
            for _ in range(warmup[spec.name]):
                for worker in workers[spec.name].values():
                    worker.call()
        calls = {row: {n: w.call for n, w in ws.items()} for row, ws in workers.items()}
        rounds = run_rounds(calls, seconds=60 * minutes, probe=probe)
        peaks = {row: {n: w.peak_bytes() for n, w in ws.items()} for row, ws in workers.items()}
        flops = {s.name: row_flops(s, dict(paths[s.name]), workers[s.name]) for s in specs}
    finally:
        for row in workers.values():
            for worker in row.values():
                worker.close()
    keep = at_best_speed(rounds, tolerance)
    every = [True] * len(rounds)
    return SteadyReport(
        rounds,
        keep,
        row_results(specs, paths, rounds, every, flops, peaks),
        row_results(specs, paths, rounds, keep, flops, peaks),
    )
