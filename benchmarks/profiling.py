"""Where the time goes: ``torch.profiler`` top operators of a row, for each path.

>>> from benchmarks.rows import RowSpec
>>> from benchmarks.setups import REFERENCE, TrainSetup
>>> spec = RowSpec("t", "infer", TrainSetup(size=32, num_downs=5, ngf=4))
>>> "aten::" in top_ops(spec, REFERENCE, calls=1, warmup=0, limit=3)
True
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

from torch.profiler import ProfilerActivity, profile

from benchmarks.rows import RowSpec, make_fn
from benchmarks.setups import REFERENCE, PathSettings, enter_path


def top_ops(
    spec: RowSpec, settings: PathSettings, *, calls: int = 3, warmup: int = 2, limit: int = 15
) -> str:
    """The profiler's table of the ``limit`` operators with the most self CPU time."""
    enter_path(settings)
    fn = make_fn(spec, settings)
    for _ in range(warmup):
        fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    enter_path(REFERENCE)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=limit)


def run_profile(specs: list[RowSpec], out=print) -> dict:
    """Print the top operators of each row for each path, each profiled in a fresh process
    (process-wide settings such as the heap's must not leak from one path into the next)."""
    from benchmarks.bench import paths_for

    report = {}
    ctx = mp.get_context("spawn")
    for spec in specs:
        for name, settings in paths_for(spec).items():
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                table = pool.submit(top_ops, spec, settings).result()
            out(f"## {spec.label()}: {name} ({settings.describe()})\n{table}")
            report[f"{spec.name}/{name}"] = table
    return report
