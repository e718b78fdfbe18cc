"""Speed settings whose winner depends on the CPU, decided once per machine and torch version.

Which is faster, bf16 or fp32, channels_last or NCHW, differs between CPUs (see
benchmarks/README.md): on a CPU without native bf16 (AMD Zen 3, AVX2) bf16 convolutions are
emulated at 0.12x fp32; with AMX (Intel Sapphire Rapids and later) they run 6.7x faster than
fp32; with AVX512_BF16 alone about 2x on AMD Zen 4/5 but 0.6x on an Intel Xeon whose AMX the
hypervisor hides. fp32 training runs faster channels_last where oneDNN has AVX-512 and slower
where it has AVX2 only. Which transposed convolutions run faster as sub-pixel phases in packed
bf16 inference differs too (AMX machine and Zen 5 disagree), so that is always measured where
bf16 is native. :func:`decide` turns the CPU's features into :class:`SpeedChoices` where
they settle the question, and otherwise measures a short bf16 against fp32 convolution (well
under a second). :func:`speed_choices` caches the result as JSON
in the user's cache folder (``$I2I_CACHE``, else ``$XDG_CACHE_HOME/i2i``, else ``~/.cache/i2i``),
keyed by the CPU and the torch version; ``i2i doctor`` shows it. Flags (``--precision``,
``channels_last=``) override every choice.

>>> cpu = CpuFeatures(model="test", bf16=False, amx=False, avx512_bf16=False, avx2=True)
>>> decide(cpu).precision, decide(cpu).source
('fp32', 'features')
>>> amx = CpuFeatures("test", bf16=True, amx=True, avx512_bf16=True, avx2=True)
>>> c = decide(amx, measure_subpixel=lambda: {"deep": 1.3, "thin": 0.9})
>>> c.precision, c.subpixel_infer
('bf16', ('deep',))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

CACHE_ENV = "I2I_CACHE"
#: 2: prepack_infer; 3: channels_last_train per precision; 4: bf16 packing where native;
#: 5: prepack_infer_single (fp32 packing for one image at a time with AVX-512);
#: 6: subpixel_infer (measured, no longer the AMX machine's rule everywhere)
CACHE_VERSION = 6
#: bf16 becomes ``auto`` only where its convolutions measured at least this much faster
BF16_MIN_RATIO = 1.25
#: a kind of transposed convolution runs as sub-pixel phases only where that measured at least
#: this much faster (the forms give the same result to rounding, not bit for bit)
SUBPIXEL_MIN_RATIO = 1.1
#: each kind's layer, timed both ways at batch 1 in bf16: (in channels, out channels, input px).
#: ``deep``: unet_256's decoder at 8 px (1024 -> 512); ``thin``: its last layer (128 -> 3)
SUBPIXEL_PROBES = {"deep": (1024, 512, 8), "thin": (128, 3, 128)}


@dataclass(frozen=True)
class CpuFeatures:
    """What the CPU offers for this decision: oneDNN's native bf16, AMX, AVX512_BF16, AVX2 and
    AVX-512 (F, BW, VL and DQ: oneDNN's ``avx512_core``)."""

    model: str
    bf16: bool  # torch.ops.mkldnn._is_mkldnn_bf16_supported()
    amx: bool  # amx_bf16 in the CPU flags
    avx512_bf16: bool
    avx2: bool
    avx512: bool = False

    def describe(self) -> str:
        """``<model>: AMX, AVX512_BF16, native bf16`` and the like.

        >>> CpuFeatures("X", bf16=False, amx=False, avx512_bf16=False, avx2=True).describe()
        'X: AVX2, no native bf16'
        """
        flags = [n for n, on in (("AMX", self.amx), ("AVX512_BF16", self.avx512_bf16)) if on]
        if not flags and self.avx512:
            flags.append("AVX-512")
        elif not flags and self.avx2:
            flags.append("AVX2")
        flags.append("native bf16" if self.bf16 else "no native bf16")
        return f"{self.model}: {', '.join(flags)}"


def _cpu_flags() -> tuple[str, set[str]]:
    """The CPU's model name and flags from ``/proc/cpuinfo`` (empty where unreadable)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = value.strip()
                elif key in ("flags", "Features"):
                    flags = set(value.split())
                if flags and key == "":  # end of the first processor's block
                    break
    except OSError:
        pass
    return model, flags


#: the values of ``ONEDNN_MAX_CPU_ISA`` that cap oneDNN (its CPU dispatcher documentation, v2-v3)
ONEDNN_ISA_CAPS = frozenset(
    (
        "SSE41",
        "AVX",
        "AVX2",
        "AVX2_VNNI",
        "AVX2_VNNI_2",
        "AVX512_MIC",
        "AVX512_MIC_4OPS",
        "AVX512_CORE",
        "AVX512_CORE_VNNI",
        "AVX512_CORE_BF16",
        "AVX512_CORE_FP16",
        "AVX10_1_512",
        "AVX512_CORE_AMX",
        "AVX10_1_512_AMX",
        "AVX512_CORE_AMX_FP16",
        "AVX10_1_512_AMX_FP16",
        "AVX10_2_512",
        "AVX10_2_512_AMX_2",
    )
)


#: the flags that make oneDNN's ``avx512_core`` (Skylake-SP and later, AMD Zen 4 and later)
AVX512_CORE_FLAGS = frozenset(("avx512f", "avx512bw", "avx512vl", "avx512dq"))
#: the caps below ``avx512_core``
_BELOW_AVX512_CORE = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_MIC", "AVX512_MIC_4OPS")  # fmt: skip


def onednn_isa_limit(flags: set[str], isa: str | None) -> set[str]:
    """The CPU ``flags`` that oneDNN may use when ``ONEDNN_MAX_CPU_ISA`` is ``isa``.

    A user (or a benchmark playing another machine class) can cap oneDNN's instruction set;
    AMX and AVX512_BF16 then count only where the cap includes them. ``None``, ``ALL``,
    ``DEFAULT`` and values oneDNN does not know (it ignores them) leave the flags as they are.

    >>> sorted(onednn_isa_limit({"avx2", "avx512_bf16", "amx_bf16"}, "AVX512_CORE_BF16"))
    ['avx2', 'avx512_bf16']
    >>> sorted(onednn_isa_limit({"avx2", "avx512f", "avx512_bf16", "amx_bf16"}, "avx2"))
    ['avx2']
    >>> sorted(onednn_isa_limit({"avx2", "amx_bf16"}, "no-such-isa"))
    ['amx_bf16', 'avx2']
    """
    isa = (isa or "").upper()
    out = set(flags)
    if isa not in ONEDNN_ISA_CAPS:
        return out
    if "AMX" not in isa:
        out.discard("amx_bf16")
        bf16_isas = ("AVX512_CORE_BF16", "AVX512_CORE_FP16")
        if isa not in bf16_isas and not isa.startswith("AVX10"):
            out.discard("avx512_bf16")
    if isa in _BELOW_AVX512_CORE:
        out -= AVX512_CORE_FLAGS
    if isa in ("SSE41", "AVX"):
        out.discard("avx2")
    return out


@lru_cache(maxsize=1)
def cpu_features() -> CpuFeatures:
    """This machine's :class:`CpuFeatures` (read once per process), as far as oneDNN may use
    them (``ONEDNN_MAX_CPU_ISA``, see :func:`onednn_isa_limit`)."""
    from i2i.engine.devices import cpu_bf16_supported

    model, flags = _cpu_flags()
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    flags = onednn_isa_limit(flags, isa)
    return CpuFeatures(
        model=model,
        bf16=cpu_bf16_supported(),
        amx="amx_bf16" in flags,
        avx512_bf16="avx512_bf16" in flags,
        avx2="avx2" in flags,
        avx512=flags >= AVX512_CORE_FLAGS,
    )


@dataclass(frozen=True)
class SpeedChoices:
    """The CPU settings ``auto`` stands for on this machine, and how they were decided.

    - ``precision``: ``bf16`` (autocast) or ``fp32``, for training, validation and inference;
    - ``channels_last_train``: the training precisions that run NHWC weights and activations
      (a win with bf16, and in fp32 with AVX-512; lost in fp32 with AVX2 alone);
    - ``channels_last_infer``: NHWC generator weights in the Translator (a win everywhere
      measured);
    - ``source``: ``features`` (the CPU's flags settled it) or ``measured`` (a short conv
      timing did; ``bf16_speedup`` is its bf16 / fp32 ratio);
    - ``prepack_infer``: the inference precisions whose convolutions run with weights
      pre-packed for oneDNN (:mod:`i2i.inference.packing`);
    - ``prepack_infer_single``: the inference precisions whose weights are pre-packed only
      where the generator's first input is one image (packing paid at batch 1 there, not at
      batch 8);
    - ``subpixel_infer``: the kinds of packed bf16 4 x 4, stride-2 transposed convolution
      that run as one 2 x 2 convolution to their four output phases
      (:mod:`i2i.inference.packing`): ``deep`` (8-16 px inputs) and ``thin`` (fewer than 16
      output channels), each where it measured faster on this CPU (``subpixel_speedups``:
      transposed time / sub-pixel time of :data:`SUBPIXEL_PROBES`).
    """

    precision: str
    channels_last_train: tuple[str, ...]
    channels_last_infer: bool
    source: str
    bf16_speedup: float | None = None
    prepack_infer: tuple[str, ...] = ()
    prepack_infer_single: tuple[str, ...] = ()
    subpixel_infer: tuple[str, ...] = ()
    subpixel_speedups: dict[str, float] | None = None
    cpu: str = ""
    torch_version: str = torch.__version__

    @property
    def measured(self) -> bool:
        """Whether any choice came from a measurement on this machine (then it is cached).

        >>> SpeedChoices("bf16", (), True, "features", subpixel_speedups={"thin": 2.0}).measured
        True
        """
        return self.source == "measured" or self.subpixel_speedups is not None

    def describe(self) -> str:
        """One line for ``i2i doctor`` and the commands' output.

        >>> SpeedChoices("fp32", (), True, "features").describe()
        'fp32, channels_last inference (decided from the CPU features)'
        """
        parts = [self.precision]
        train_cl = self.precision in self.channels_last_train
        cl = [k for k, on in (("training", train_cl), ("inference", self.channels_last_infer)) if on]  # fmt: skip
        if cl:
            parts.append(f"channels_last {' and '.join(cl)}")
        packed = [*self.prepack_infer]
        packed += [f"{p} (batch 1)" for p in self.prepack_infer_single if p not in packed]
        if packed:
            parts.append(f"pre-packed {' and '.join(packed)} inference weights")
        if self.subpixel_infer:
            parts.append(
                f"sub-pixel bf16 transposed convolutions ({', '.join(self.subpixel_infer)})"
            )
        how = "decided from the CPU features"
        if self.source == "measured":
            how = f"measured: bf16 convolutions {self.bf16_speedup:.2f}x fp32"
        if self.subpixel_speedups:
            ratios = ", ".join(f"{k} {v:.2f}x" for k, v in self.subpixel_speedups.items())
            how += f"; sub-pixel measured: {ratios}"
        return f"{', '.join(parts)} ({how})"


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one thread for the block, then as before."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fastest_calls(calls: Mapping[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Per name: the least CPU time (seconds) one call of it took over ``reps`` calls, the
    names alternated, after two warm-up calls each, all on one thread.

    On one thread and in the thread's own CPU time, another process on the machine hardly
    moves a figure: with two busy processes on a 2-core Zen 5, the bf16 / fp32 ratio timed
    this way read 1.97-2.01x (1.98x quiet), where two threads on the wall clock read 1.25-1.43x
    (a thread of the pair waits for the other to be scheduled at every barrier).

    >>> sorted(fastest_calls({"a": lambda: None, "b": lambda: None}, reps=2))
    ['a', 'b']
    """
    times: dict[str, list[float]] = {k: [] for k in calls}
    with _one_thread(), torch.no_grad():
        for call in calls.values():  # warm-up: oneDNN builds its kernels, packs weights
            call()
            call()
        for _ in range(reps):
            for name, call in calls.items():
                start = time.thread_time()
                call()
                times[name].append(time.thread_time() - start)
    return {k: min(v) for k, v in times.items()}


def bf16_conv_speedup(
    *, reps: int = 5, batch: int = 1, channels: int = 256, size: int = 64
) -> float:
    """bf16 over fp32 speed of one 3x3 convolution (channels_last, no grad;
    :func:`fastest_calls`).

    The default shape (0.6 GFLOP) takes well under a second in all on a 2-core machine; small
    shapes understate bf16 (batch 1, 128 channels at 32 px: 1.1x where this one gives 3x).

    >>> bf16_conv_speedup(reps=1, channels=4, size=4) > 0
    True
    """
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    fmt = torch.channels_last
    x = torch.randn(batch, channels, size, size, generator=gen).contiguous(memory_format=fmt)
    w = (torch.randn(channels, channels, 3, 3, generator=gen) * 0.05).contiguous(memory_format=fmt)
    pairs = {"fp32": (x, w), "bf16": (x.bfloat16(), w.bfloat16())}
    calls = {k: (lambda a=a, b=b: F.conv2d(a, b, padding=1)) for k, (a, b) in pairs.items()}
    best = fastest_calls(calls, reps)
    return best["fp32"] / max(best["bf16"], 1e-12)


def subpixel_speedups(*, reps: int = 7, scale: int = 1) -> dict[str, float]:
    """Per kind of :data:`SUBPIXEL_PROBES`: the time of its layer as a packed bf16 transposed
    convolution over its time as sub-pixel phases (batch 1, :func:`fastest_calls`). Empty
    where this torch has no packed convolutions. ``scale`` divides the channels and sizes
    (tests). About 0.2 s on a 2-core Zen 5.

    >>> sorted(subpixel_speedups(reps=1, scale=8)) in ([], ["deep", "thin"])
    True
    """
    from torch import nn

    from i2i.inference.packing import pack_convolutions, packing_available

    if not packing_available():
        return {}
    gen = torch.Generator().manual_seed(0)
    fmt = torch.channels_last
    out: dict[str, float] = {}
    for kind, (cin, cout, size) in SUBPIXEL_PROBES.items():
        cin, size = max(cin // scale, 1), max(size // scale, 8)
        cout = max(cout // scale, 1) if kind == "deep" else cout
        x = torch.randn(1, cin, size, size, generator=gen).to(torch.bfloat16, memory_format=fmt)
        calls = {}
        for form, kinds in (("transposed", ()), ("subpixel", (kind,))):
            layer = nn.ConvTranspose2d(cin, cout, 4, 2, 1).to(torch.bfloat16)
            pack_convolutions(layer, channels_last=True, subpixel=kinds)
            calls[form] = lambda layer=layer, x=x: layer(x)
        best = fastest_calls(calls, reps)
        out[kind] = round(best["transposed"] / max(best["subpixel"], 1e-12), 3)
    return out


def decide(
    cpu: CpuFeatures,
    measure: Callable[[], float] | None = None,
    measure_subpixel: Callable[[], Mapping[str, float]] | None = None,
) -> SpeedChoices:
    """The choices for ``cpu``: from its features where they settle it, else by ``measure``.

    - no native bf16: fp32 (bf16 is emulated there, 8x slower), channels_last inference,
      nothing measured;
    - AMX: bf16 with channels_last (bf16 convolutions 6.7x fp32), nothing measured;
    - native bf16 without AMX: bf16 when ``measure()`` (bf16 / fp32 speed) reaches
      ``BF16_MIN_RATIO``, else fp32 (``measure`` defaults to :func:`bf16_conv_speedup`);
    - training channels_last: with bf16 wherever bf16 is chosen; with fp32 where oneDNN has
      AVX-512 (``cpu.avx512``: 1.07x at batch 1 and 1.19x at batch 8 on an Intel Xeon, also
      with oneDNN capped to plain AVX-512, where AVX2 alone measured 0.90x and 0.85x on the
      same machine and 0.94-0.97x on AMD Zen 3);
    - inference convolution weights are pre-packed for oneDNN in bf16 wherever bf16 is native
      (1.3-1.5x on the AMX machine, 1.47x / 1.12x limited to AVX512_BF16, 1.16x / 1.10x on
      the Xeon without AMX); in fp32 only where oneDNN has AVX-512 and the generator's first
      input is one image (``prepack_infer_single``): there it gained 1.05-1.22x at batch 1
      with less peak memory, but 0.94-1.09x at batch 8 with up to 50 MiB more, and with AVX2
      alone it ran inputs of another size than the first at 0.50x (benchmarks/README.md);
    - sub-pixel transposed convolutions (``subpixel_infer``) wherever bf16 is native, by
      ``measure_subpixel()`` (default :func:`subpixel_speedups`): the kinds that measured at
      least ``SUBPIXEL_MIN_RATIO`` faster. On a 2-core AMD Zen 5 the ``deep`` layers ran at
      0.76-0.93x that way and the ``thin`` last layer at 2.4x; on the AMX machine the deep
      ones had gained 1.07-1.14x in the whole network (benchmarks/README.md).

    >>> zen4 = CpuFeatures("z", bf16=True, amx=False, avx512_bf16=True, avx2=True)
    >>> fast, slow = (decide(zen4, lambda: r, measure_subpixel=dict) for r in (2.1, 0.9))
    >>> fast.precision, slow.precision
    ('bf16', 'fp32')
    """
    fp32_avx512 = ("fp32",) if cpu.avx512 else ()
    prepack = ("bf16",) if cpu.bf16 else ()
    base: dict = dict(
        cpu=cpu.model,
        torch_version=torch.__version__,
        prepack_infer=prepack,
        prepack_infer_single=fp32_avx512,
    )
    if not cpu.bf16:
        return SpeedChoices("fp32", fp32_avx512, True, "features", **base)
    # bf16 weights are packed here: which transposed layers run as sub-pixel phases
    ratios = dict((measure_subpixel or subpixel_speedups)())
    base["subpixel_speedups"] = ratios
    base["subpixel_infer"] = tuple(k for k, r in ratios.items() if r >= SUBPIXEL_MIN_RATIO)
    if cpu.amx:
        return SpeedChoices("bf16", ("bf16", *fp32_avx512), True, "features", **base)
    ratio = float((measure or bf16_conv_speedup)())
    bf16 = ratio >= BF16_MIN_RATIO
    return SpeedChoices(
        "bf16" if bf16 else "fp32",
        ("bf16", *fp32_avx512) if bf16 else fp32_avx512,
        True,
        "measured",
        bf16_speedup=round(ratio, 3),
        **base,
    )


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$I2I_CACHE``, else ``$XDG_CACHE_HOME/i2i``, else ``~/.cache/i2i`` (``env``: os.environ).

    >>> str(cache_dir({"I2I_CACHE": "/tmp/c", "XDG_CACHE_HOME": "/x"})), str(cache_dir({"XDG_CACHE_HOME": "/x"}))
    ('/tmp/c', '/x/i2i')
    """
    env = os.environ if env is None else env
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    xdg = env.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "i2i"


def cache_file(cpu: CpuFeatures) -> Path:
    """The cache file for ``cpu`` and this torch version."""
    key = f"{CACHE_VERSION}|{cpu}|{torch.__version__}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"speed-choices-{digest}.json"


def _read_cache(path: Path) -> SpeedChoices | None:
    try:
        data = json.loads(path.read_text())
        for key in ("prepack_infer", "prepack_infer_single", "subpixel_infer"):
            data[key] = tuple(data.get(key, ()))
        data["channels_last_train"] = tuple(data["channels_last_train"])
        return SpeedChoices(**data)
    except (OSError, ValueError, TypeError):
        return None


def _write_cache(path: Path, choices: SpeedChoices) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(choices), indent=2) + "\n")
        tmp.replace(path)
    except OSError:
        pass  # a read-only home: measure again next time


_CHOICES: SpeedChoices | None = None


def speed_choices(*, remeasure: bool = False) -> SpeedChoices:
    """This machine's choices: from memory, the cache file, or :func:`decide` (then cached).

    Only choices that needed a measurement are written to the cache; feature-decided ones
    cost nothing to redo.
    """
    global _CHOICES
    if _CHOICES is not None and not remeasure:
        return _CHOICES
    cpu = cpu_features()
    path = cache_file(cpu)
    cached = None if remeasure else _read_cache(path)
    if cached is not None:
        _CHOICES = cached
        return cached
    choices = decide(cpu)
    if choices.measured:
        _write_cache(path, choices)
    _CHOICES = choices
    return choices


def forget_choices() -> None:
    """Drop the in-memory choices (tests; the cache file stays)."""
    global _CHOICES
    _CHOICES = None
