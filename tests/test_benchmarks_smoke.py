"""The benchmark harness still runs (tiny networks, one repetition); never a timing assertion."""

from __future__ import annotations

import dataclasses
import doctest
import itertools
import json
import mmap
import time

import pytest
import torch

from benchmarks import (
    bench,
    cyclegan,
    data_rate,
    device,
    harness,
    int8_probe,
    machine,
    profiling,
    quality,
    rows,
    setups,
    steady,
)
from benchmarks.data_rate import data_images_per_second, facades_dataset
from benchmarks.rows import RowSpec, measure_row
from benchmarks.setups import REFERENCE, TrainSetup, engine_defaults, translator_defaults

TINY = TrainSetup(size=32, num_downs=5, batch=1, ngf=8, ndf=8)
NEEDS_X86_INT8 = pytest.mark.skipif(
    not {"x86", "fbgemm"} <= set(torch.backends.quantized.supported_engines),
    reason="this torch build has no x86/fbgemm int8 engine (the int8 probe's)",
)


@pytest.mark.parametrize(
    "module",
    [
        harness,
        setups,
        rows,
        bench,
        quality,
        machine,
        profiling,
        data_rate,
        cyclegan,
        steady,
        device,
        pytest.param(int8_probe, marks=NEEDS_X86_INT8),
    ],
)
def test_doctests_of_the_benchmark_modules_pass(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {module.__name__}"


def test_train_and_infer_rows_in_process_give_a_table():
    defaults = {"train": engine_defaults(), "infer": translator_defaults()}
    results = [
        measure_row(
            RowSpec(kind, kind, TINY),
            {"reference": REFERENCE, "i2i": defaults[kind]},
            reps=1,
            warmup=0,
            isolate=False,
        )
        for kind in ("train", "infer")
    ]
    for r in results:
        assert r.flops > 0
        assert all(p.images_per_s > 0 and len(p.seconds) == 1 for p in r.paths.values())
    table = bench.format_table(results, {"fp32": 100.0, "bf16": 300.0})
    assert table.count("\n") == 3  # header, rule, two rows
    assert "| train unet(num_downs=5)+patch70 ngf8/ndf8 32px b1 |" in table
    assert "| infer unet(num_downs=5) ngf8/ndf8 32px b1 |" in table
    json.dumps([r.to_dict() for r in results])  # the --json report is plain JSON


def test_isolated_workers_report_time_memory_and_flops():
    spec = RowSpec("infer", "infer", TINY)
    paths = bench.paths_for(spec)  # i2i runs in-process above; here the proposals' process
    paths.pop("i2i")
    r = measure_row(spec, paths, reps=1, warmup=1, isolate=True)
    for p in r.paths.values():
        assert p.peak_bytes is not None and p.peak_bytes > 0 and p.images_per_s > 0
        assert 0 < p.steady_peak_bytes <= p.peak_bytes  # the timed calls are part of the whole
    steady = bench.format_steady_memory([r])
    assert all(f"{name} " in steady for name in r.paths) and steady.endswith("MiB")
    assert (
        bench.format_steady_memory([measure_row(spec, paths, reps=1, warmup=0, isolate=False)])
        == ""
    )
    assert r.flops == harness.count_flops(rows.make_fn(spec, REFERENCE))


def test_each_workers_call_starts_once_the_last_call_of_any_worker_has_settled(monkeypatch):
    from benchmarks.workers import SETTLE_S, PathWorker

    asked = []  # (worker, start, end) of every call

    def fake_ask(self, cmd):
        start = time.perf_counter()
        time.sleep(0.002)
        asked.append((self.name, start, time.perf_counter()))
        return 0.001

    monkeypatch.setattr(PathWorker, "_ask", fake_ask)
    a, b = object.__new__(PathWorker), object.__new__(PathWorker)
    a.name, b.name = "a", "b"
    for worker in (a, b, b, a, a, b):
        assert worker.call() == 0.001
    gaps = [nxt[1] - prev[2] for prev, nxt in itertools.pairwise(asked)]
    assert [w for w, *_ in asked] == ["a", "b", "b", "a", "a", "b"]
    assert min(gaps) >= SETTLE_S, gaps


def test_a_restarted_peak_leaves_out_the_memory_used_before_it():
    """The steady-state figure: memory touched and given back before the restart (as the
    warm-up's one-off allocations are) no longer counts, the baseline stays."""
    cpu, mib = torch.device("cpu"), 1 << 20
    base = device.memory_baseline(cpu)
    with mmap.mmap(-1, 256 * mib) as buf:  # given back to the system on close
        for offset in range(0, len(buf), mmap.PAGESIZE):
            buf[offset] = 1
    assert device.peak_memory_growth(cpu, base) >= 240 * mib
    device.restart_peak(cpu)
    assert device.peak_memory_growth(cpu, base) < 128 * mib


def test_reference_runs_stock_convolutions_and_matches_the_default_networks():
    gen_ref, _ = setups.build_networks(TINY, speedups=False)
    gen_new, _ = setups.build_networks(TINY, speedups=True)
    x = setups.synthetic_batch(TINY)["input"]
    gen_ref.eval(), gen_new.eval()
    with torch.no_grad():
        assert torch.allclose(gen_ref(x), gen_new(x), atol=1e-5)
    assert not any(getattr(m, "speedups", False) for m in gen_ref.modules())


@pytest.mark.parametrize("channels_last", [True, False])
def test_the_cyclegan_row_runs_the_memory_format_its_path_names(channels_last):
    # as `i2i run --recipe cyclegan` builds the step; until 2026-12-04 the row's i2i path
    # ran NCHW networks while its label said channels_last
    setup = TrainSetup(
        recipe="cyclegan", generator="resnet_6blocks", size=32, ngf=4, ndf=4, norm="instance"
    )
    path = dataclasses.replace(engine_defaults(), precision="fp32", channels_last=channels_last)
    step = cyclegan.build_cyclegan_step(setup, path)
    convs = [
        m.weight
        for net in step.modules().values()
        for m in net.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    assert convs and all(
        w.is_contiguous(memory_format=torch.channels_last) == channels_last for w in convs
    )
    assert step.to_device(torch.zeros(1, 3, 32, 32)).is_contiguous() != channels_last


def test_the_pix2pix_rows_default_path_trains_as_the_recipe_builds_it():
    # the pix2pix rows build their step themselves; what they run must not drift from the
    # step `i2i run` builds for the same networks (memory format, precision, Adam)
    from i2i import RecipeSetup
    from i2i import catalog as default_catalog
    from i2i.config import resolve_config

    setup = TrainSetup(generator="unet_128", size=128, ngf=4, ndf=4)
    path = engine_defaults()
    bench_step = setups.build_train_step(setup, path)
    cat = default_catalog()
    cfg = resolve_config(
        cat,
        "facades",
        generator="unet_128",
        discriminator="patch70",
        generator_kwargs={"ngf": 4},
        discriminator_kwargs={"ndf": 4},
        crop_size=128,
        load_size=143,
        device="cpu",
    )
    run_setup = RecipeSetup.for_run(
        cfg,
        task=cat.tasks.get("facades").obj,
        catalog=cat,
        device=torch.device("cpu"),
        precision=path.precision,
    )
    run_step = cat.recipes.get("pix2pix").obj.build(run_setup)

    def described(step):
        nets = step.modules()
        return (
            step.precision,
            step.channels_last,
            {
                role: [
                    w.is_contiguous(memory_format=torch.channels_last)
                    for w in net.parameters()
                    if w.ndim == 4
                ]
                for role, net in nets.items()
            },
            {name: type(opt).__name__ for name, opt in step.optimizers().items()},
        )

    assert described(bench_step) == described(run_step)


def test_select_rows_rejects_unknown_names():
    with pytest.raises(SystemExit, match="rows are: train256_b1.*by exact name: train256_b32"):
        bench.select_rows("nope")


def test_the_batch_32_rows_run_only_when_named():
    assert "train256_b32" not in [r.name for r in bench.select_rows(None)]
    assert "train256_b32" not in [r.name for r in bench.select_rows("train256_*,*b32")]
    named = bench.select_rows("train256_b32,infer256_b32")
    assert [(r.name, r.kind, r.setup.batch) for r in named] == [
        ("train256_b32", "train", 32),
        ("infer256_b32", "infer", 32),
    ]


def test_data_pipeline_rate_on_facades(data_root):
    dataset = facades_dataset(data_root, load_size=143, crop_size=128)
    assert data_images_per_second(dataset, num_workers=0, batches=3, skip=1) > 0


def test_steady_rounds_report_only_rows_timed_at_the_runs_best_speed():
    """Probes alternate fast, slow, fast, ...: only a round with fast probes on both sides counts."""
    fast = {"fp32": 250.0, "bf16": 2000.0, "copy_gbs": 30.0}
    slow = {"fp32": 250.0, "bf16": 2000.0, "copy_gbs": 10.0}  # memory bandwidth taken
    readings = iter([fast, slow] * 50)
    spec_a = RowSpec("a", "infer", TINY)
    spec_b = RowSpec("b", "infer", TrainSetup(size=32, num_downs=5, batch=2, ngf=8, ndf=8))
    paths = {
        s.name: {"reference": REFERENCE, "i2i": translator_defaults()} for s in (spec_a, spec_b)
    }
    report = steady.measure_steady(
        [spec_a, spec_b], paths, minutes=0, warmup={"a": 0, "b": 0}, probe=lambda: next(readings)
    )
    # one cycle: probes fast | a | slow | b | fast: neither round had fast probes on both sides
    assert [r.row for r in report.rounds] == ["a", "b"]
    assert report.keep == [False, False] and report.best_speed == []
    assert [r.spec.name for r in report.all_rounds] == ["a", "b"]
    for r in report.all_rounds:
        assert r.flops > 0 and set(r.paths) == {"reference", "i2i"}
        assert all(p.peak_bytes and len(p.seconds) == 1 for p in r.paths.values())
    json.dumps(report.to_dict())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_asking_for_a_gpu_without_one_says_so_before_measuring_anything(monkeypatch):
    monkeypatch.delenv("I2I_BENCH_DEVICE", raising=False)
    with pytest.raises(SystemExit, match="no CUDA GPU"):
        bench.main(["--device", "cuda", "--rows", "infer256_b1", "--quick", "--no-data"])
    assert "I2I_BENCH_DEVICE" not in __import__("os").environ
    monkeypatch.setenv("I2I_BENCH_DEVICE", "cuda")  # the same asked for through the environment
    with pytest.raises(SystemExit, match="no CUDA GPU"):
        bench.main(["--rows", "infer256_b1", "--quick", "--no-data"])


def test_a_timed_call_on_a_gpu_waits_for_the_device(monkeypatch):
    events = []
    monkeypatch.setattr(device, "synchronize", lambda d: events.append(("sync", d.type)))
    timed = device.synced(lambda: events.append("kernels queued"), torch.device("cuda"))
    timed()
    assert events == ["kernels queued", ("sync", "cuda")]
    plain = device.synced(lambda: events.append("cpu"), torch.device("cpu"))
    events.clear()
    plain()
    assert events == ["cpu"]


def test_on_a_gpu_inference_replays_graphs_channels_last_and_training_takes_tf32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (9, 0))
    gpu = torch.device("cuda")
    default, proposed = setups.engine_defaults(gpu), setups.proposed_training(gpu)
    assert (default.precision, default.channels_last) == ("fp32", False)  # TF32 convolutions
    # proposed in fp32: only the whole training step as a CUDA graph (i2i run --cuda-graphs)
    assert proposed == dataclasses.replace(default, name="i2i+", cuda_graphs=True)
    assert not default.cuda_graphs
    assert not default.flush_denormal and not default.keep_heap  # CPU-only settings
    infer = setups.translator_defaults(gpu)
    assert infer.precision == "bf16"
    assert infer.channels_last and infer.translator and not infer.prepack and infer.cuda_graphs
    assert setups.proposed_inference(gpu) == dataclasses.replace(infer, name="i2i+")
    monkeypatch.setenv("I2I_BENCH_DEVICE", "cuda")
    train = bench.paths_for(rows.DEFAULT_ROWS[0])
    assert list(train) == ["reference", "i2i", "i2i+", bench.BF16_TRAIN]
    assert train[bench.BF16_TRAIN] == dataclasses.replace(
        default, name=bench.BF16_TRAIN, precision="bf16"
    )
    # With cuDNN's TF32 switched off, fp32 is plain fp32: training takes bf16 autocast again,
    # channels_last is proposed for it, and fp32 is timed beside it.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    default, proposed = setups.engine_defaults(gpu), setups.proposed_training(gpu)
    assert (default.precision, default.channels_last) == ("bf16", False)
    assert (proposed.precision, proposed.channels_last) == ("bf16", True)
    train = bench.paths_for(rows.DEFAULT_ROWS[0])
    assert list(train) == ["reference", "i2i", "i2i+", bench.FP32_TRAIN]
    assert train["i2i+"].cuda_graphs and not train["i2i"].cuda_graphs
    assert train[bench.FP32_TRAIN] == dataclasses.replace(
        default, name=bench.FP32_TRAIN, precision="fp32"
    )
    infer_row = next(r for r in rows.DEFAULT_ROWS if r.kind == "infer")
    paths = bench.paths_for(infer_row, with_compile=True)
    assert list(paths) == ["reference", "i2i", bench.NO_GRAPHS, bench.COMPILED]
    assert paths["i2i"].cuda_graphs and not paths[bench.NO_GRAPHS].cuda_graphs
    assert not paths[bench.COMPILED].cuda_graphs  # compile is measured on its own


def test_the_quality_means_verdict_tells_a_shift_from_seed_noise():
    """The L1 of four fp32 and four bf16 trainings on a Zen 5 (2026-12-04), and the fp32 ones
    moved by 0.002: seed noise passes, a shift of three fp32 standard deviations does not."""
    from benchmarks.quality import mean_verdict

    fp32 = [{"l1": v} for v in (0.1750, 0.1737, 0.1747, 0.1740)]
    bf16 = [{"l1": v} for v in (0.1743, 0.1740, 0.1745, 0.1733)]
    shifted = [{"l1": s["l1"] + 0.002} for s in fp32]
    assert mean_verdict(bf16, fp32)["l1"]["within"]
    assert not mean_verdict(shifted, fp32)["l1"]["within"]
    with pytest.raises(ValueError, match="at least 2 fp32 seeds"):
        mean_verdict(bf16, fp32[:1])


def test_scored_paths_see_the_same_dropout_only_when_each_image_is_seeded():
    """Two paths that draw the same random output score alike only with the seed reset per
    image; a baseline gets no distance from itself."""
    from i2i import catalog

    task = catalog().tasks.get("facades").obj
    items = [{"input": torch.zeros(3, 16, 16), "target": torch.zeros(3, 16, 16)}] * 3
    noisy = {"a": lambda x: torch.rand_like(x) * 2 - 1, "b": lambda x: torch.rand_like(x) * 2 - 1}
    seeded = quality.score_runners(task, items, noisy, seed_each_image=True, baseline="a")
    assert seeded["a"] == {k: v for k, v in seeded["b"].items() if k != "psnr_from_a"}
    assert seeded["b"]["psnr_from_a"] >= 100 and "psnr_from_a" not in seeded["a"]
    unseeded = quality.score_runners(task, items, noisy, baseline="a")
    assert unseeded["a"]["l1"] != unseeded["b"]["l1"] and unseeded["b"]["psnr_from_a"] < 20


@NEEDS_X86_INT8
def test_the_int8_probe_runs_the_unet_it_was_given():
    from i2i.models.unet import UNetGenerator

    torch.manual_seed(0)
    g = UNetGenerator(3, 3, num_downs=5, ngf=8).eval()
    for m in g.modules():  # trained-looking statistics, so that folding them matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.2)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    plain = int8_probe.subpixel_unet(g)
    with torch.no_grad():
        want = g(x)
        assert torch.allclose(plain(x), want, atol=1e-5)
        int8 = int8_probe.quantize(plain, [x])(x)
    assert int8.shape == want.shape and int8.dtype == torch.float32
    error = (int8 - want).pow(2).mean().sqrt() / want.pow(2).mean().sqrt()
    assert error < 0.25, f"int8 output {error:.3f} of the float output's size away from it"
    with pytest.raises(TypeError, match="U-Net with skips"):
        int8_probe.subpixel_unet(torch.nn.Conv2d(3, 3, 1))
