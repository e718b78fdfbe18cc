"""The paths every row compares, built from i2i's own code.

- ``reference``: what the official pix2pix code does: the same networks in fp32, NCHW, eager,
  ``torch.optim.Adam(foreach=True)``, no compile, denormals left alone, PyTorch's stock layers
  (i2i's model speedups switched off, see :func:`i2i.models.layers.set_speedups`).
- ``i2i``: what i2i does by default. Training: the engine's
  :class:`~i2i.engine.step.Pix2PixStep` and ``make_adam`` with the precision, memory format and
  compile setting a default :class:`~i2i.config.RunConfig` resolves to on this device
  (:mod:`i2i.engine.devices`, :mod:`i2i.engine.tuning`), and flush-denormal (``i2i run`` sets
  it). Inference: i2i's :class:`~i2i.inference.translator.Translator` with its defaults.
- ``i2i+``: settings that are decided but not wired into the default path yet (training:
  channels_last as ``resolve_channels_last(None, ...)`` decides it, while ``RunConfig`` still
  says ``channels_last=False``), shown only where it differs from ``i2i``.

Training paths share the step and the objective; inference runs the generator in eval mode.
Everything runs on the benchmark's device (:func:`benchmarks.device.bench_device`: the CPU
unless ``--device cuda``).

>>> s = TrainSetup(size=32, num_downs=5, ngf=4, ndf=4)
>>> train_step_fn(s, REFERENCE, seed=0)()
>>> inference_fn(s, translator_defaults(), seed=0)()
>>> REFERENCE.precision, REFERENCE.channels_last
('fp32', False)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from benchmarks.device import bench_device
from i2i import catalog as default_catalog
from i2i.config import RunConfig
from i2i.engine.bf16_copies import Bf16WeightCopies
from i2i.engine.build import discriminator_in_channels
from i2i.engine.devices import (
    autocast,
    fused_adam_supported,
    keeps_bf16_weight_copies,
    make_adam,
    resolve_channels_last,
    resolve_cuda_graphs,
    resolve_precision,
    resolve_prepack,
)
from i2i.engine.step import Pix2PixStep
from i2i.losses import Objective
from i2i.models import UNetGenerator
from i2i.models.layers import set_speedups

PAPER_OBJECTIVE = {"gan": 1.0, "l1": 100.0}
LR, BETAS = 2e-4, (0.5, 0.999)


@dataclass(frozen=True)
class PathSettings:
    """How one path runs the same networks."""

    name: str
    precision: str  # fp32 | bf16 | fp16
    channels_last: bool
    fused_adam: bool
    compile: bool
    flush_denormal: bool
    speedups: bool = True  # i2i's model speedups (GEMM for tiny convs, dense skip grads)
    keep_heap: bool = False  # i2i.engine.devices.keep_freed_memory
    flat_adam: bool = False  # i2i.engine.flat_adam.FlatFusedAdam (make_adam's fused Adam)
    bf16_copies: bool = False  # i2i.engine.bf16_copies: bf16 weight copies Adam keeps current
    translator: bool = False  # inference through i2i's Translator
    #: Translator: convolution weights pre-packed for oneDNN (None: where the first input is
    #: one image, as the Translator's auto packs fp32 on CPUs with AVX-512)
    prepack: bool | None = False
    #: Translator: the forward replayed as CUDA graphs; training: the whole step
    #: (i2i.engine.graphed_step.GraphedTrainStep, where the recipe's step allows it)
    cuda_graphs: bool = False

    def describe(self) -> str:
        """One line for the table's legend.

        >>> REFERENCE.describe()
        'fp32, NCHW, foreach Adam, eager, stock layers'
        """
        parts = [
            self.precision if self.precision == "fp32" else f"{self.precision} autocast",
            "channels_last" if self.channels_last else "NCHW",
        ]
        if not self.translator:
            adam = "fused" if self.fused_adam else "foreach"
            parts.append(f"{adam} Adam" + (" on flat views" if self.flat_adam else ""))
            if self.bf16_copies:
                parts.append("bf16 weight copies kept by Adam")
            if self.cuda_graphs:
                parts.append("whole step as CUDA graph")
        parts.append("torch.compile" if self.compile else "eager")
        if self.flush_denormal:
            parts.append("flush-denormal")
        parts.append("i2i model speedups" if self.speedups else "stock layers")
        if self.keep_heap:
            parts.append("glibc heap kept")
        if self.translator:
            if self.precision == "bf16":
                parts.append("bf16 weights")
            if self.prepack:
                parts.append("pre-packed for oneDNN")
            elif self.prepack is None:
                parts.append("pre-packed for oneDNN at batch 1")
            if self.cuda_graphs:
                parts.append("CUDA graphs")
            parts.append("through Translator.run")
        return ", ".join(parts)


REFERENCE = PathSettings(
    "reference",
    precision="fp32",
    channels_last=False,
    fused_adam=False,
    compile=False,
    flush_denormal=False,
    speedups=False,
)


def engine_defaults(device: torch.device | None = None) -> PathSettings:
    """Training as a default ``RunConfig`` resolves on ``device`` (what ``i2i run`` does;
    ``None``: the benchmark's device, :func:`benchmarks.device.bench_device`)."""
    device = device or bench_device()
    cfg = RunConfig(task="facades")
    precision = resolve_precision(cfg.precision, device, training=True)
    fused = fused_adam_supported(device.type)
    return PathSettings(
        "i2i",
        precision=precision,
        channels_last=resolve_channels_last(cfg.channels_last, device, precision, training=True),
        fused_adam=fused,
        flat_adam=fused,  # make_adam's fused Adam is FlatFusedAdam
        bf16_copies=cfg.bf16_weight_copies
        and keeps_bf16_weight_copies(device, precision, compiled=bool(cfg.compile)),
        compile=bool(cfg.compile),
        flush_denormal=device.type == "cpu",  # `i2i run` sets both (tune_cpu_process)
        keep_heap=device.type == "cpu",
        cuda_graphs=_trains_graphed(cfg.cuda_graphs, device, precision),
    )


def _trains_graphed(value: bool | None, device: torch.device, precision: str) -> bool:
    """Whether a path's training asks for the whole step as a CUDA graph, as ``i2i run``
    resolves ``value``; :func:`train_step_fn` then asks the built step
    (``training_graphs_blocker``), whose fp16 rule is checked here already for the label."""
    return resolve_cuda_graphs(value, device, training=True) and precision != "fp16"


def _proposed_channels_last(device: torch.device, precision: str, *, training: bool) -> bool:
    """channels_last as :func:`resolve_channels_last` decides it here; on a GPU, on under
    autocast (the layout of its tensor cores) for training too, which i2i does not choose
    there: the GPU tables had it 0.89-1.14x NCHW (benchmarks/README.md, *GPU*)."""
    if device.type == "cuda":
        return precision != "fp32"
    return resolve_channels_last(None, device, precision, training=training)


def proposed_training(device: torch.device | None = None) -> PathSettings:
    """The engine's defaults with channels_last as :func:`_proposed_channels_last` proposes it
    and, on a GPU, the whole step replayed as a CUDA graph (``i2i run --cuda-graphs``): the
    same as the defaults on the CPU (``RunConfig.channels_last=None`` resolves the same way)."""
    device = device or bench_device()
    base = engine_defaults(device)
    auto = _proposed_channels_last(device, base.precision, training=True)
    graphs = _trains_graphed(True, device, base.precision)
    return dataclasses.replace(base, name="i2i+", channels_last=auto, cuda_graphs=graphs)


def translator_defaults(device: torch.device | None = None) -> PathSettings:
    """Inference as i2i's Translator runs it by default (precision and memory format auto)."""
    device = device or bench_device()
    precision = resolve_precision("auto", device, training=False)
    packs = resolve_prepack(None, device, precision)
    packs_single = resolve_prepack(None, device, precision, batch=1)
    return PathSettings(
        "i2i",
        precision=precision,
        channels_last=resolve_channels_last(None, device, precision, training=False),
        fused_adam=False,
        compile=False,
        flush_denormal=device.type == "cpu",  # `i2i translate` sets both (tune_cpu_process)
        keep_heap=device.type == "cpu",
        translator=True,
        prepack=True if packs else (None if packs_single else False),
        cuda_graphs=resolve_cuda_graphs(None, device),
    )


def proposed_inference(device: torch.device | None = None) -> PathSettings:
    """The Translator's defaults with channels_last as :func:`_proposed_channels_last`
    proposes it: the same as the defaults on the CPU (no ``i2i+`` row), on under autocast on
    a GPU."""
    device = device or bench_device()
    base = translator_defaults(device)
    auto = _proposed_channels_last(device, base.precision, training=False)
    return dataclasses.replace(base, name="i2i+", channels_last=auto)


def enter_path(settings: PathSettings) -> None:
    """Apply the process-wide settings of a path (once per worker process, or before each
    call when paths share a process; ``keep_heap`` cannot be undone there). On a GPU every
    path lets cuDNN pick its kernels for the row's fixed sizes (``cudnn.benchmark``), as the
    official code and ``i2i run`` do for fixed-size crops."""
    torch.set_flush_denormal(settings.flush_denormal)
    if bench_device().type == "cuda":
        torch.backends.cudnn.benchmark = True
    if settings.keep_heap:
        from i2i.engine.devices import keep_freed_memory

        keep_freed_memory()


@dataclass(frozen=True)
class TrainSetup:
    """One network configuration: the facades setup by default (U-Net 256 + PatchGAN 70)."""

    generator: str = "unet_256"
    discriminator: str = "patch70"
    size: int = 256
    batch: int = 1
    ngf: int = 64
    ndf: int = 64
    norm: str = "batch"
    in_channels: int = 3
    out_channels: int = 3
    num_downs: int | None = None  # tiny test networks: a UNetGenerator with this many levels
    recipe: str = "pix2pix"  # or "cyclegan": that recipe's step (benchmarks.cyclegan)

    def replace(self, **changes: object) -> TrainSetup:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


def build_networks(
    setup: TrainSetup, seed: int = 0, *, speedups: bool = True
) -> tuple[nn.Module, nn.Module]:
    """The generator and the conditional discriminator of ``setup``, seeded.

    ``speedups=False`` switches i2i's model speedups off (GEMM for tiny convolutions, dense
    skip gradients): the networks then run PyTorch's stock operations, as the official code.
    """
    cat = default_catalog()
    torch.manual_seed(seed)
    options = {"ngf": setup.ngf, "norm": setup.norm}
    if setup.num_downs is not None:
        gen = UNetGenerator(
            setup.in_channels, setup.out_channels, num_downs=setup.num_downs, **options
        )
    else:
        gen = cat.generators.get(setup.generator).build(
            in_channels=setup.in_channels, out_channels=setup.out_channels, **options
        )
    d_in = discriminator_in_channels(setup.in_channels, setup.out_channels, conditional=True)
    disc = cat.discriminators.get(setup.discriminator).build(
        in_channels=d_in, ndf=setup.ndf, norm=setup.norm
    )
    set_speedups(gen, speedups)
    set_speedups(disc, speedups)
    return gen, disc


def build_adam(modules: list[nn.Module], settings: PathSettings) -> torch.optim.Adam:
    """The paper's Adam over ``modules``: foreach (reference), the engine's ``make_adam`` (flat
    fused, with bf16 weight copies when ``settings`` say so), or PyTorch's fused one."""
    params = [p for m in modules for p in m.parameters()]
    if not settings.fused_adam:
        return torch.optim.Adam(params, lr=LR, betas=BETAS, foreach=True)
    if settings.flat_adam:
        copies = Bf16WeightCopies(modules) if settings.bf16_copies else None
        return make_adam(params, lr=LR, betas=BETAS, device=bench_device(), copies=copies)
    return torch.optim.Adam(params, lr=LR, betas=BETAS, fused=True)


def synthetic_batch(setup: TrainSetup, seed: int = 0) -> dict[str, Tensor]:
    """A batch ``{"input", "target"}`` of uniform noise in [-1, 1] (NCHW, as a DataLoader gives)."""
    g = torch.Generator().manual_seed(seed)
    shape = (setup.batch, setup.in_channels, setup.size, setup.size)
    x = torch.rand(shape, generator=g) * 2 - 1
    y = torch.rand((setup.batch, setup.out_channels, setup.size, setup.size), generator=g) * 2 - 1
    return {"input": x, "target": y}


def _memory_format(settings: PathSettings) -> torch.memory_format:
    return torch.channels_last if settings.channels_last else torch.preserve_format


def build_train_step(setup: TrainSetup, settings: PathSettings, seed: int = 0) -> Pix2PixStep:
    """The engine's pix2pix step for ``setup`` run the way ``settings`` says."""
    device = bench_device()
    gen, disc = build_networks(setup, seed, speedups=settings.speedups)
    fmt = _memory_format(settings)
    gen, disc = gen.to(device, memory_format=fmt), disc.to(device, memory_format=fmt)
    objective = Objective.from_weights(PAPER_OBJECTIVE, default_catalog().losses).to(device)
    step = Pix2PixStep(
        gen,
        disc,
        objective,
        build_adam([gen], settings),
        build_adam([disc], settings),
        conditional=True,
        device=device,
        precision=settings.precision,
        channels_last=settings.channels_last,
    )
    if settings.compile:
        step.wrap(generator=torch.compile(gen), discriminator=torch.compile(disc))
    return step


def train_step_fn(setup: TrainSetup, settings: PathSettings, seed: int = 0) -> Callable[[], None]:
    """A no-argument callable running one training step on a fixed synthetic batch."""
    if setup.recipe == "cyclegan":
        from benchmarks.cyclegan import build_cyclegan_step

        step = build_cyclegan_step(setup, settings, seed)
    else:
        step = build_train_step(setup, settings, seed)
    batch = synthetic_batch(setup, seed)
    train = step.train_step
    if settings.cuda_graphs:
        from i2i.engine.graphed_step import GraphedTrainStep, training_graphs_blocker

        blocker = training_graphs_blocker(
            step, bench_device(), precision=settings.precision, compiled=settings.compile
        )
        if blocker is None:
            train = GraphedTrainStep(step)

    def run() -> None:
        train(batch)

    return run


def inference_fn(setup: TrainSetup, settings: PathSettings, seed: int = 0) -> Callable[[], None]:
    """A no-argument callable: the generator in eval mode on a fixed batch, without grad.

    With ``settings.translator`` the batch goes through ``Translator.run`` (i2i's own
    inference, with its padding check and test-mode handling); otherwise straight into the
    generator, as the official test script does. The batch starts on the CPU, as a
    DataLoader's does, so on a GPU both paths copy it over in each call.
    """
    device = bench_device()
    gen, _ = build_networks(setup, seed, speedups=settings.speedups)
    # The Translator sets the layout itself, after its bf16 cast, as `i2i translate` does.
    fmt = torch.contiguous_format if settings.translator else _memory_format(settings)
    gen = gen.to(device, memory_format=fmt).eval()
    for p in gen.parameters():
        p.requires_grad_(False)
    x = synthetic_batch(setup, seed)["input"]
    if settings.translator:
        from i2i.inference.translator import Translator

        task = default_catalog().tasks.get("facades").obj
        translator = Translator(
            gen,
            task,
            mode="eval",
            precision=settings.precision,
            channels_last=settings.channels_last,
            bf16_weights=True,  # as `i2i translate` builds it
            prepack=settings.prepack,
            cuda_graphs=settings.cuda_graphs,
            device=device,
        )
        if settings.compile:
            translator.generator = torch.compile(gen)

        def run_translator() -> None:
            translator.run(x)

        return run_translator
    net = torch.compile(gen) if settings.compile else gen

    def run() -> None:
        with torch.no_grad(), autocast(device, settings.precision):
            net(x.to(device)).float()

    return run
