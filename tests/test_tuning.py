"""The speed choices: decided from CPU features where reliable, else measured once and cached."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from i2i.engine import devices, tuning
from i2i.engine.tuning import CpuFeatures, SpeedChoices

AVX2 = CpuFeatures("AMD EPYC (Zen 3)", bf16=False, amx=False, avx512_bf16=False, avx2=True)
SKYLAKE = CpuFeatures("Intel Xeon (SKX)", bf16=False, amx=False, avx512_bf16=False, avx2=True, avx512=True)  # fmt: skip
ZEN4 = CpuFeatures("AMD EPYC (Zen 4)", bf16=True, amx=False, avx512_bf16=True, avx2=True, avx512=True)  # fmt: skip
AMX = CpuFeatures("Intel Xeon (SPR)", bf16=True, amx=True, avx512_bf16=True, avx2=True, avx512=True)  # fmt: skip
CPU = torch.device("cpu")
SUB = f"{ZEN4.model} sub-pixel"  # the machine fixture's log of a sub-pixel measurement


def _no_measure() -> float:
    raise AssertionError("the CPU's features settle this: nothing may be measured")


def _no_subpixel() -> dict[str, float]:
    raise AssertionError("no bf16 weights are packed here: no sub-pixel form to measure")


#: what the sub-pixel probes measured on a 2-core AMD Zen 5 (transposed / sub-pixel time)
ZEN5_SUBPIXEL = {"deep": 0.76, "thin": 2.48}


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """Pretend to run on ``cpu``, with a fresh cache folder; returns a setter and a call log."""
    monkeypatch.setenv("I2I_CACHE", str(tmp_path / "cache"))
    calls: list[str] = []

    def use(cpu: CpuFeatures, ratio: float = 2.0, subpixel: dict | None = None) -> list[str]:
        def measure(**_) -> float:
            calls.append(cpu.model)
            return ratio

        def measure_subpixel(**_) -> dict[str, float]:
            calls.append(f"{cpu.model} sub-pixel")
            return dict(ZEN5_SUBPIXEL if subpixel is None else subpixel)

        monkeypatch.setattr(tuning, "cpu_features", lambda: cpu)
        monkeypatch.setattr(tuning, "bf16_conv_speedup", measure)
        monkeypatch.setattr(tuning, "subpixel_speedups", measure_subpixel)
        monkeypatch.setattr(devices, "cpu_bf16_supported", lambda: cpu.bf16)
        tuning.forget_choices()
        return calls

    yield use
    tuning.forget_choices()


def test_a_cpu_without_native_bf16_keeps_todays_fp32_defaults():
    c = tuning.decide(AVX2, measure=_no_measure, measure_subpixel=_no_subpixel)
    assert (c.precision, c.channels_last_train, c.channels_last_infer) == ("fp32", (), True)
    assert c.source == "features" and not c.measured and c.subpixel_infer == ()


def test_fp32_training_goes_channels_last_where_onednn_has_avx512():
    c = tuning.decide(SKYLAKE, measure=_no_measure, measure_subpixel=_no_subpixel)
    assert (c.precision, c.channels_last_train, c.source) == ("fp32", ("fp32",), "features")
    assert "channels_last training" in c.describe()


def test_amx_means_bf16_and_channels_last_without_measuring_bf16():
    c = tuning.decide(AMX, measure=_no_measure, measure_subpixel=lambda: {"deep": 1.3})
    assert (c.precision, c.channels_last_infer, c.source) == ("bf16", True, "features")
    assert set(c.channels_last_train) == {"bf16", "fp32"}
    assert c.subpixel_infer == ("deep",) and c.measured  # the sub-pixel form is measured


@pytest.mark.parametrize(
    ("ratios", "want"),
    [
        (ZEN5_SUBPIXEL, ("thin",)),
        ({"deep": 1.3, "thin": 1.05}, ("deep",)),  # below the margin: kept transposed
        ({"deep": 1.1, "thin": 2.0}, ("deep", "thin")),
        ({}, ()),  # a torch without packed convolutions measured nothing
    ],
)
def test_transposed_layers_run_as_subpixel_phases_where_that_measured_faster(ratios, want):
    for cpu in (ZEN4, AMX):
        c = tuning.decide(cpu, measure=lambda: 2.0, measure_subpixel=lambda r=ratios: r)
        assert c.subpixel_infer == want and c.subpixel_speedups == ratios
    text = tuning.decide(ZEN4, lambda: 2.0, measure_subpixel=lambda: ZEN5_SUBPIXEL).describe()
    assert "sub-pixel bf16 transposed convolutions (thin)" in text
    assert "sub-pixel measured: deep 0.76x, thin 2.48x" in text


@pytest.mark.parametrize(
    ("isa", "amx", "avx512_bf16", "avx512"),
    [
        (None, True, True, True),
        ("no-such-isa", True, True, True),  # oneDNN ignores it, so do we
        ("avx512_core_bf16", False, True, True),
        ("AVX512_CORE", False, False, True),
        ("AVX2", False, False, False),
    ],
)
def test_a_capped_onednn_instruction_set_hides_what_it_may_not_use(
    monkeypatch, isa, amx, avx512_bf16, avx512
):
    """With ONEDNN_MAX_CPU_ISA below AMX an AMX CPU is decided as the CPU oneDNN may use."""
    flags = {"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16", "amx_bf16"}
    monkeypatch.setattr(tuning, "_cpu_flags", lambda: ("Intel Xeon (SPR)", flags))
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if isa is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    tuning.cpu_features.cache_clear()
    try:
        cpu = tuning.cpu_features()
    finally:
        tuning.cpu_features.cache_clear()
    assert (cpu.amx, cpu.avx512_bf16, cpu.avx2, cpu.avx512) == (amx, avx512_bf16, True, avx512)
    decided = tuning.decide(cpu, measure=lambda: 0.9, measure_subpixel=dict)
    assert ("fp32" in decided.channels_last_train) == avx512
    if avx512_bf16 and not amx:  # with native bf16, decided by measurement as on Zen 4
        native = dataclasses.replace(cpu, bf16=True)
        assert tuning.decide(native, lambda: 0.9, measure_subpixel=dict).source == "measured"


@pytest.mark.parametrize(("ratio", "want"), [(2.08, "bf16"), (1.0, "fp32"), (0.12, "fp32")])
def test_native_bf16_without_amx_is_decided_by_measurement(ratio, want):
    c = tuning.decide(ZEN4, measure=lambda: ratio, measure_subpixel=dict)
    assert c.precision == want and c.source == "measured" and c.bf16_speedup == ratio
    assert c.channels_last_train == (("bf16", "fp32") if want == "bf16" else ("fp32",))


def test_the_measurement_runs_once_and_is_cached_in_the_cache_folder(machine, tmp_path):
    calls = machine(ZEN4, ratio=1.9)
    assert devices.resolve_precision("auto", CPU, training=True) == "bf16"
    assert devices.resolve_precision("auto", CPU, training=True) == "bf16"
    assert calls == [SUB, ZEN4.model]
    files = list((tmp_path / "cache").glob("speed-choices-*.json"))
    assert len(files) == 1
    cached = json.loads(files[0].read_text())
    assert cached["bf16_speedup"] == 1.9 and cached["subpixel_speedups"] == ZEN5_SUBPIXEL

    tuning.forget_choices()  # a new process: reads the file, does not measure
    c = tuning.speed_choices()
    assert (c.precision, c.subpixel_infer, calls) == ("bf16", ("thin",), [SUB, ZEN4.model])
    tuning.speed_choices(remeasure=True)
    assert calls == [SUB, ZEN4.model, SUB, ZEN4.model]


def test_an_amx_cpu_caches_its_subpixel_measurement(machine, tmp_path):
    calls = machine(AMX, subpixel={"deep": 1.4, "thin": 1.0})
    assert tuning.speed_choices().subpixel_infer == ("deep",)
    tuning.forget_choices()
    assert tuning.speed_choices().subpixel_infer == ("deep",)
    assert calls == [f"{AMX.model} sub-pixel"]  # bf16 itself is decided by the features


def test_feature_decisions_are_not_cached(machine, tmp_path):
    machine(AVX2)
    assert devices.resolve_precision("auto", CPU, training=True) == "fp32"
    assert not (tmp_path / "cache").exists()


def test_a_broken_cache_file_is_measured_again(machine, tmp_path):
    calls = machine(ZEN4, ratio=0.8)
    path = tuning.cache_file(ZEN4)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert tuning.speed_choices().precision == "fp32" and calls == [SUB, ZEN4.model]


def test_a_cache_file_of_the_older_format_is_measured_again(machine, tmp_path):
    """channels_last_train was one bool before version 3; such a file is not trusted."""
    calls = machine(ZEN4, ratio=0.8)
    path = tuning.cache_file(ZEN4)
    path.parent.mkdir(parents=True)
    old = dataclasses.asdict(tuning.decide(ZEN4, measure=lambda: 2.0, measure_subpixel=dict))
    path.write_text(json.dumps({**old, "channels_last_train": True}))
    c = tuning.speed_choices()
    assert (c.precision, c.channels_last_train, calls) == ("fp32", ("fp32",), [SUB, ZEN4.model])


@pytest.mark.parametrize(("cpu", "want"), [(AVX2, False), (SKYLAKE, True)])
def test_fp32_training_layout_follows_the_instruction_set(machine, cpu, want):
    machine(cpu)
    assert devices.resolve_channels_last(None, CPU, "fp32", training=True) is want
    assert devices.resolve_channels_last(None, CPU, "fp32", training=False) is True


def test_flags_override_every_choice(machine):
    machine(AMX)
    assert devices.resolve_precision("fp32", CPU, training=True) == "fp32"
    assert devices.resolve_channels_last(False, CPU, "bf16", training=False) is False
    assert devices.resolve_channels_last(True, CPU, "fp32", training=True) is True
    assert devices.resolve_channels_last(None, CPU, "bf16", training=True) is True
    assert devices.resolve_channels_last(None, CPU, "fp32", training=True) is True  # AVX-512
    assert devices.resolve_channels_last(False, CPU, "fp32", training=True) is False
    assert (
        devices.resolve_channels_last(None, torch.device("meta"), "bf16", training=False) is False
    )


@pytest.mark.parametrize(("cpu", "want"), [(AVX2, "fp32"), (AMX, "bf16")])
def test_the_translator_and_training_resolve_auto_the_same_way(machine, cpu, want):
    from i2i import Task
    from i2i.inference import Translator

    machine(cpu)
    task = Task(summary="x", in_channels=3, out_channels=3, layout="aligned")
    tr = Translator(torch.nn.Conv2d(3, 3, 3, padding=1), task, mode="eval")
    assert tr.precision == devices.resolve_precision("auto", CPU, training=True) == want
    assert tr.describe_speed() == f"cpu, {want}, channels_last"


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        devices.resolve_precision("fp8", CPU, training=True)


def test_every_training_precision_the_cli_offers_has_a_dtype():
    from i2i.config import PRECISIONS

    assert ("auto", *devices.DTYPES) == PRECISIONS
    for name in ("fp32", "bf16"):  # fp16 needs a GPU
        assert devices.resolve_precision(name, CPU, training=True) == name


def test_the_real_measurement_on_tiny_shapes_gives_a_ratio():
    assert tuning.bf16_conv_speedup(reps=1, channels=4, size=4) > 0


def test_measuring_runs_on_one_thread_and_gives_the_threads_back():
    threads = torch.get_num_threads()
    seen = []
    best = tuning.fastest_calls({"a": lambda: seen.append(torch.get_num_threads())}, reps=3)
    assert seen == [1] * 5 and best["a"] >= 0  # two warm-up calls, three timed ones
    assert torch.get_num_threads() == threads
    with pytest.raises(ZeroDivisionError):
        tuning.fastest_calls({"a": lambda: 1 / 0}, reps=1)
    assert torch.get_num_threads() == threads


def test_the_real_subpixel_measurement_on_small_shapes_gives_a_ratio_per_kind():
    from i2i.inference.packing import packing_available

    ratios = tuning.subpixel_speedups(reps=1, scale=8)
    if not packing_available():
        assert ratios == {}
    else:
        assert sorted(ratios) == ["deep", "thin"] and all(r > 0 for r in ratios.values())


def test_choices_describe_how_they_were_decided():
    c = SpeedChoices("bf16", ("bf16",), True, "measured", bf16_speedup=2.08)
    assert "measured: bf16 convolutions 2.08x fp32" in c.describe()


def test_doctor_shows_the_choices_and_the_cache_file(machine, pm, tmp_path):
    from click.testing import CliRunner

    from i2i.cli import build_cli

    machine(ZEN4, ratio=1.7)
    cli = build_cli(pm)
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "precision auto  bf16" in result.output
    assert "measured: bf16 convolutions 1.70x fp32" in result.output
    assert str(tmp_path / "cache") in result.output
    report = json.loads(CliRunner().invoke(cli, ["doctor", "--json"]).output)
    assert report["precision"] == "bf16" and report["cpu_choices"]["source"] == "measured"
    assert report["training_adam"].startswith("fused Adam with bf16 weight copies")


def test_doctor_names_the_missing_compiler_when_the_adam_update_cannot_be_compiled(
    machine, pm, monkeypatch
):
    from click.testing import CliRunner

    from i2i.cli import build_cli

    machine(ZEN4, ratio=1.7)
    monkeypatch.setenv("CXX", "no-such-cxx-for-i2i")
    report = json.loads(CliRunner().invoke(build_cli(pm), ["doctor", "--json"]).output)
    assert "updated uncompiled: no no-such-cxx-for-i2i on the PATH" in report["training_adam"]


def test_cudnn_times_its_kernels_only_where_training_sizes_are_fixed(monkeypatch):
    from i2i.data.transforms import PreprocessConfig

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)  # put back afterwards
    gpu = torch.device("cuda")  # a flag only: no GPU is touched
    for mode, want in [
        ("resize_and_crop", True),
        ("crop", True),
        ("scale_width_and_crop", True),
        ("scale_width", False),
        ("none", False),
    ]:
        fixed = PreprocessConfig(mode=mode).fixed_train_size
        assert devices.use_cudnn_autotuner(gpu, fixed_sizes=fixed) is want, mode
        assert torch.backends.cudnn.benchmark is want, mode
    torch.backends.cudnn.benchmark = True
    assert devices.use_cudnn_autotuner(CPU, fixed_sizes=False) is False
    assert torch.backends.cudnn.benchmark is True  # the CPU leaves the flag as it was


def test_doctor_names_the_gpu_and_its_autotuner_only_where_there_is_one(machine, pm, monkeypatch):
    from types import SimpleNamespace

    from click.testing import CliRunner

    from i2i.cli import build_cli

    machine(AMX)
    cli = build_cli(pm)
    plain = CliRunner().invoke(cli, ["doctor"]).output
    labels = [line.split(" ", 1)[0] for line in plain.splitlines()]
    assert "gpu" not in labels and "cudnn" not in labels and "cpu" in labels
    props = SimpleNamespace(name="NVIDIA H200", major=9, minor=0, total_memory=139 * 2**30)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert devices.describe_gpu() == "NVIDIA H200: compute 9.0, bf16, 139 GiB"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # doctor's device stays cpu
    monkeypatch.setattr(devices, "describe_gpu", lambda index=0: "NVIDIA H200: compute 9.0")
    shown = CliRunner().invoke(cli, ["doctor"]).output
    assert "gpu              NVIDIA H200: compute 9.0" in shown
    assert "cudnn autotuner  on in `i2i run` where every training crop has one size" in shown


@pytest.mark.parametrize(
    ("capability", "bf16", "tf32", "train", "infer"),
    [
        ((9, 0), True, True, "fp32", "bf16"),  # Hopper: TF32 training, bf16 inference
        ((8, 0), True, True, "fp32", "bf16"),  # Ampere
        ((9, 0), True, False, "bf16", "bf16"),  # TF32 switched off: fp32 would be plain fp32
        ((7, 5), False, True, "fp16", "fp16"),  # Turing: neither TF32 nor bf16
    ],
)
def test_auto_precision_on_a_cuda_gpu_trains_in_tf32_where_it_has_it(
    monkeypatch, capability, bf16, tf32, train, infer
):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", tf32)
    gpu = torch.device("cuda", 0)
    assert devices.resolve_precision("auto", gpu, training=True) == train
    assert devices.resolve_precision("auto", gpu, training=False) == infer
    assert devices.resolve_precision("fp32", gpu, training=False) == "fp32"  # a flag wins
