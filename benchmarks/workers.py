"""One worker process per path, driven step by step from the parent: isolation *and* interleaving.

Process-wide settings (flush-denormal, the allocator's behaviour, what the heap has kept from
earlier work) would leak from one path into the other if both ran in one process. So each path
of a row lives in its own fresh process; the parent asks the workers in turn for one timed
call, so both paths still see the same machine load, repetition by repetition. A worker also
reports its peak memory growth since before it built its networks (weights, optimizer state,
activations, allocator caches: everything the path costs): resident memory on the CPU, the
GPU memory torch allocated on a GPU.

>>> from benchmarks.rows import RowSpec
>>> from benchmarks.setups import REFERENCE, TrainSetup
>>> spec = RowSpec("t", "infer", TrainSetup(size=32, num_downs=5, ngf=4))
>>> with PathWorker(spec, REFERENCE) as w:
...     w.call() > 0, w.peak_bytes() > 0
(True, True)
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from dataclasses import asdict
from typing import Any

from benchmarks.device import bench_device, memory_baseline, peak_memory_growth, restart_peak
from benchmarks.harness import count_flops
from benchmarks.setups import PathSettings, TrainSetup, enter_path

STARTUP_TIMEOUT_S = 600.0
#: Idle time the parent leaves before each timed call, after any worker's call ended. A worker's
#: OpenMP threads keep spinning for some milliseconds after its call (libgomp's default wait
#: policy), and on 2 cores the next worker's call shares the cores with that spin: on Zen 5
#: (2026-12-05, infer256_b1) i2i's 18-ms call took 26-27 ms right after the reference's call,
#: 21-24 ms 2-5 ms after it, and its own 18-20 ms from 10 ms on; with passive waiting in both
#: workers there was no difference at all. Spinning lasts longer on CPUs with a slower
#: ``pause``, hence the margin.
SETTLE_S = 0.05


def _serve(conn: Any, spec_d: dict, settings_d: dict, seed: int) -> None:
    from benchmarks.rows import RowSpec, make_fn

    try:
        settings = PathSettings(**settings_d)
        spec = RowSpec(spec_d["name"], spec_d["kind"], TrainSetup(**spec_d["setup"]))
        enter_path(settings)
        device = bench_device()
        base = memory_baseline(device)
        fn = make_fn(spec, settings, seed)
        conn.send(("ready", None))
    except BaseException as exc:  # report, then die
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        cmd = conn.recv()
        try:
            if cmd == "call":
                start = time.perf_counter()
                fn()
                conn.send(("ok", time.perf_counter() - start))
            elif cmd == "peak":
                conn.send(("ok", peak_memory_growth(device, base)))
            elif cmd == "restart_peak":
                restart_peak(device)
                conn.send(("ok", None))
            elif cmd == "flops":
                conn.send(("ok", count_flops(fn)))
            elif cmd == "stop":
                conn.send(("ok", None))
                return
            else:
                conn.send(("error", f"unknown command {cmd!r}"))
        except BaseException as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class PathWorker:
    """A fresh process that builds ``spec`` for ``settings`` and runs it on request."""

    def __init__(self, spec: Any, settings: PathSettings, seed: int = 0, *, wait: bool = True):
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.name = f"{spec.name}/{settings.name}"
        self._proc = ctx.Process(
            target=_serve,
            args=(child, {**asdict(spec), "setup": asdict(spec.setup)}, asdict(settings), seed),
            daemon=True,
        )
        self._proc.start()
        child.close()
        self._ready = False
        if wait:
            self.wait_ready()

    def wait_ready(self) -> PathWorker:
        """Block until the worker has built its networks (start several, then wait for each)."""
        if not self._ready:
            self._expect(timeout=STARTUP_TIMEOUT_S)
            self._ready = True
        return self

    def _expect(self, timeout: float | None = None) -> Any:
        if timeout is not None and not self._conn.poll(timeout):
            raise RuntimeError(f"benchmark worker {self.name} did not answer in {timeout:.0f} s")
        try:
            status, value = self._conn.recv()
        except EOFError:
            raise RuntimeError(f"benchmark worker {self.name} died") from None
        if status == "error":
            raise RuntimeError(f"benchmark worker {self.name} failed: {value}")
        return value

    def _ask(self, cmd: str) -> Any:
        self._conn.send(cmd)
        return self._expect()

    #: when the last call of any worker ended (``time.perf_counter``)
    _idle_since = 0.0

    def call(self) -> float:
        """Seconds one call took in the worker, asked for once the cores have been idle for
        :data:`SETTLE_S` since the last call of any worker."""
        idle = time.perf_counter() - PathWorker._idle_since
        if idle < SETTLE_S:
            time.sleep(SETTLE_S - idle)
        try:
            return float(self._ask("call"))
        finally:
            PathWorker._idle_since = time.perf_counter()

    def peak_bytes(self) -> int:
        """Peak memory growth of the worker since before it built its networks: resident
        memory on the CPU, GPU memory on a GPU (:mod:`benchmarks.device`)."""
        return int(self._ask("peak"))

    def restart_peak(self) -> None:
        """From now on :meth:`peak_bytes` is the peak since this call (above the same
        baseline): the steady state once the warm-up calls have run."""
        self._ask("restart_peak")

    def flops(self) -> int:
        """FLOPs of one call, counted by ``torch.utils.flop_counter``."""
        return int(self._ask("flops"))

    def close(self) -> None:
        """Stop the worker (politely once it is ready, at once while it is still building)."""
        if self._ready and self._proc.is_alive():
            with contextlib.suppress(RuntimeError, OSError):
                self._ask("stop")
            self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=30)
        self._conn.close()

    def __enter__(self) -> PathWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
