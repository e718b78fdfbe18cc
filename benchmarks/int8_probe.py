"""Would int8 inference pay on this CPU? A probe of a path i2i does not ship.

On a CPU whose bf16 peak is only about twice its fp32 peak (AVX512_BF16 without AMX), the
issue's batch-8 inference target lies beyond what bf16 can reach (benchmarks/README, *Against
the issue's targets*); int8 (AVX512-VNNI, AMX-INT8) has about twice the bf16 peak again. This
probe measures what stands between that peak and a working path, with torch's own post-training
quantization (``torch.ao``, FX graph mode, the ``x86`` engine, per-channel weights, calibrated
per-tensor activations):

1. convolution rates in fp32, bf16 and int8 on the U-Net's shapes;
2. whether torch's quantized ``ConvTranspose2d`` computes what the float layer does (in torch
   2.14.1 the ``x86``/``onednn`` engines' does not, so the decoder below runs its transposed
   convolutions as sub-pixel 2 x 2 int8 convolutions, :func:`subpixel_unet`);
3. a whole ``unet_256`` in eval mode (batch norm folded), int8 against i2i's default inference
   (``Translator``, bf16 where native), interleaved, at batch 1 and 8;
4. with ``--run RUN``: that run's generator on facades val, fp32, i2i's default and int8: the
   scores against the targets and the PSNR of each path's outputs from fp32's.

``python -m benchmarks.int8_probe``
``python -m benchmarks.int8_probe --run runs/facades``  (under 2 minutes on 2 cores, 2026-12-05)

``torch.ao``'s quantized tensors print a deprecation warning in torch 2.14; the probe silences it.

>>> from i2i.models.unet import UNetGenerator
>>> g = UNetGenerator(3, 3, num_downs=5, ngf=4).eval()
>>> x = torch.rand(1, 3, 32, 32) * 2 - 1
>>> with torch.no_grad():
...     same = torch.allclose(subpixel_unet(g)(x), g(x), atol=1e-5)
>>> same
True
"""

from __future__ import annotations

import argparse
import copy
import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.harness import count_flops, interleaved, median
from benchmarks.setups import (
    TrainSetup,
    build_networks,
    enter_path,
    inference_fn,
    translator_defaults,
)
from i2i.inference.packing import subpixel_phase_weight
from i2i.models.unet import UNetGenerator

#: (batch, C_in, C_out, input size, kernel, stride) of the conv-rate table: the conv peak's
#: 3 x 3 shape and the U-Net's 4 x 4, stride-2 ones
CONV_SHAPES = (
    (8, 512, 512, 32, 3, 1),
    (8, 128, 256, 64, 4, 2),
    (8, 256, 512, 32, 4, 2),
    (1, 256, 512, 32, 4, 2),
)
ENGINE = "x86"


def _quiet() -> None:
    warnings.filterwarnings("ignore", message=".*quantiz.*deprecated", category=UserWarning)
    warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated")
    warnings.filterwarnings("ignore", message="Please use quant_min and quant_max")
    # the skips' cat requantizes its inputs (measured under *Measured and not kept*)
    warnings.filterwarnings("ignore", message="All inputs of this cat operator must share")
    torch.backends.quantized.engine = ENGINE


@torch.no_grad()
def conv_rates(shapes: Sequence[tuple[int, ...]] = CONV_SHAPES, reps: int = 9) -> list[dict]:
    """GOP/s of one convolution forward per shape, fp32 and bf16 channels_last and int8.

    >>> r = conv_rates([(1, 8, 8, 8, 3, 1)], reps=1)[0]
    >>> sorted(r) == ["bf16", "fp32", "int8", "shape"]
    True
    """
    _quiet()
    out = []
    for b, c_in, c_out, size, k, stride in shapes:
        x = torch.randn(b, c_in, size, size).contiguous(memory_format=torch.channels_last)
        conv = nn.Conv2d(c_in, c_out, k, stride, 1).eval().to(memory_format=torch.channels_last)
        conv16 = copy.deepcopy(conv).bfloat16()
        x16 = x.bfloat16()
        qconv = torch.ao.nn.quantized.Conv2d(c_in, c_out, k, stride, 1)
        scales = conv.weight.abs().amax((1, 2, 3)) / 127
        zeros = torch.zeros(c_out, dtype=torch.long)
        qweight = torch.quantize_per_channel(conv.weight, scales, zeros, 0, torch.qint8)
        qconv.set_weight_bias(qweight, conv.bias)
        qx = torch.quantize_per_tensor(x, float(x.abs().max()) / 127, 128, torch.quint8)
        fns = {"fp32": partial(conv, x), "bf16": partial(conv16, x16), "int8": partial(qconv, qx)}
        ops = count_flops(fns["fp32"])
        times = interleaved(fns, reps=reps, warmup=2)
        row = {"shape": (b, c_in, c_out, size, k, stride)}
        row.update({name: ops / median(t) / 1e9 for name, t in times.items()})
        out.append(row)
    return out


@torch.no_grad()
def quantized_transpose_error(engine: str = ENGINE) -> float:
    """Relative RMS distance of torch's quantized 4 x 4, stride-2 ``ConvTranspose2d`` (after
    a ReLU, calibrated on its input) from the float layer: a few percent where it works.

    >>> quantized_transpose_error("fbgemm") < 0.1
    True
    """
    _quiet()
    from torch.ao.quantization import QConfig, get_default_qconfig_mapping
    from torch.ao.quantization.observer import HistogramObserver, MinMaxObserver
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        gen = torch.Generator().manual_seed(0)
        net = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1)).eval()
        x = torch.randn(2, 64, 16, 16, generator=gen)
        weight = MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
        qconfig = QConfig(activation=HistogramObserver.with_args(), weight=weight)
        mapping = get_default_qconfig_mapping(engine).set_object_type(nn.ConvTranspose2d, qconfig)
        prepared = prepare_fx(copy.deepcopy(net), mapping, (x,))
        prepared(x)
        ref, out = net(x), convert_fx(prepared)(x)
        return float((out - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt())
    finally:
        torch.backends.quantized.engine = before


class SubpixelTranspose(nn.Module):
    """A 4 x 4, stride-2, padding-1 transposed convolution as a 2 x 2 convolution to its four
    output phases, cropped and interleaved by ``pixel_shuffle``: only stock ops, so FX
    quantization turns the convolution into an int8 ``Conv2d``."""

    def __init__(self, layer: nn.ConvTranspose2d):
        super().__init__()
        c_in, c_out = layer.in_channels, layer.out_channels
        phase_major = subpixel_phase_weight(layer.weight.detach())  # channel k * C_out + c
        weight = phase_major.reshape(4, c_out, c_in, 2, 2).transpose(0, 1).reshape(-1, c_in, 2, 2)
        self.c_out = c_out
        self.conv = nn.Conv2d(c_in, 4 * c_out, 2, padding=1, bias=layer.bias is not None)
        with torch.no_grad():
            self.conv.weight.copy_(weight)  # channel c * 4 + k, as pixel_shuffle reads them
            if layer.bias is not None:
                self.conv.bias.copy_(layer.bias.detach().repeat_interleave(4))

    def forward(self, x: Tensor) -> Tensor:
        b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        p = self.conv(x).reshape(b, self.c_out, 4, h + 1, w + 1)
        phases = [p[:, :, 0, :h, :w], p[:, :, 1, :h, 1:], p[:, :, 2, 1:, :w], p[:, :, 3, 1:, 1:]]
        return F.pixel_shuffle(torch.stack(phases, 2).reshape(b, 4 * self.c_out, h, w), 2)


class _PlainUNet(nn.Module):
    """The U-Net's forward pass without its input checks: traceable by FX."""

    def __init__(self, encoder: nn.ModuleList, decoder: nn.ModuleList):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x: Tensor) -> Tensor:
        features = []
        for layer in self.encoder:
            x = layer(x)
            features.append(x)
        for j, layer in enumerate(self.decoder):
            if j > 0:
                x = torch.cat([features[len(self.encoder) - 1 - j], x], 1)
            x = layer(x)
        return x


def _stock(m: nn.Module) -> nn.Module:
    """A stock ``nn.Conv2d``/``nn.ConvTranspose2d`` with ``m``'s weights (FX quantization
    matches layers by their exact type), or ``m`` itself."""
    for cls in (nn.ConvTranspose2d, nn.Conv2d):
        if isinstance(m, cls) and type(m) is not cls:
            stock = cls(
                m.in_channels,
                m.out_channels,
                m.kernel_size,
                m.stride,
                m.padding,
                bias=m.bias is not None,
            )
            stock.load_state_dict(m.state_dict())
            return stock.train(m.training)
    return m


@torch.no_grad()
def subpixel_unet(generator: UNetGenerator) -> nn.Module:
    """An eval-mode float copy of a pix2pix U-Net (with skips) of stock layers, batch norm
    folded into the transposed convolutions, those as :class:`SubpixelTranspose`, dropout
    gone: the same outputs as ``generator.eval()``, to rounding."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if not isinstance(generator, UNetGenerator) or not generator.skips:
        raise TypeError(f"the int8 probe takes a U-Net with skips, not {type(generator).__name__}")
    generator = copy.deepcopy(generator).float().eval()
    blocks = []
    for block in [*generator.encoder, *generator.decoder]:
        layers = [_stock(m) for m in block if not isinstance(m, nn.Dropout)]
        out = []
        for m in layers:
            if isinstance(m, nn.BatchNorm2d) and out and isinstance(out[-1], nn.ConvTranspose2d):
                out[-1] = fuse_conv_bn_eval(out[-1], m, transpose=True)
            else:
                out.append(m)
        blocks.append(
            nn.Sequential(
                *[SubpixelTranspose(m) if isinstance(m, nn.ConvTranspose2d) else m for m in out]
            )
        )
    n = len(generator.encoder)
    return _PlainUNet(nn.ModuleList(blocks[:n]), nn.ModuleList(blocks[n:])).eval()


@torch.no_grad()
def quantize(net: nn.Module, calibration: Sequence[Tensor]) -> nn.Module:
    """``net`` with int8 convolutions (x86 engine, per-channel weights, per-tensor activations
    observed on the calibration batches)."""
    _quiet()
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    prepared = prepare_fx(
        copy.deepcopy(net), get_default_qconfig_mapping(ENGINE), (calibration[0],)
    )
    for x in calibration:
        prepared(x)
    return convert_fx(prepared)


def _call_without_grad(net: nn.Module, x: Tensor) -> None:
    with torch.no_grad():
        net(x)


def whole_network(batches: Sequence[int] = (1, 8), reps: int = 9) -> list[dict]:
    """Images/s of ``unet_256`` (random weights) in int8 and on i2i's default inference path,
    interleaved in one process, per batch."""
    settings = translator_defaults()
    enter_path(settings)
    out = []
    for batch in batches:
        setup = TrainSetup(batch=batch)
        default = inference_fn(setup, settings)
        gen, _ = build_networks(setup, 0)
        calibration = [
            torch.rand(batch, 3, 256, 256, generator=torch.Generator().manual_seed(s)) * 2 - 1
            for s in (1, 2)
        ]
        int8 = quantize(subpixel_unet(gen), calibration)
        x = calibration[0].contiguous(memory_format=torch.channels_last)

        run_int8 = partial(_call_without_grad, int8, x)
        times = interleaved({"default": default, "int8": run_int8}, reps=reps, warmup=2)
        rates = {k: batch / median(v) for k, v in times.items()}
        out.append({"batch": batch, "precision": settings.precision, **rates})
    return out


@torch.no_grad()
def scores(run: Path, data_root: Path, size: int = 256) -> dict[str, dict[str, float]]:
    """Mean L1/PSNR/SSIM on facades val of ``run``'s generator in eval mode: fp32, i2i's
    default path and int8 (calibrated on every 12th train image), and each path's PSNR (dB)
    from the fp32 outputs."""
    from benchmarks.quality import score_runners
    from i2i import catalog as default_catalog
    from i2i.data import PreprocessConfig, build_dataset
    from i2i.engine.checkpoint import build_role, load_checkpoint
    from i2i.inference.translator import Translator

    catalog = default_catalog()
    task = catalog.tasks.get("facades").obj
    ckpt = load_checkpoint(run, discriminator=False)
    gen = build_role(ckpt, ckpt.translator_role(None), catalog).float().eval()
    pre = PreprocessConfig(load_size=size, crop_size=size, mode="resize_and_crop", flip=False)
    val = build_dataset(task, data_root / "facades", "val", preprocess=pre, train=False)
    train = build_dataset(task, data_root / "facades", "train", preprocess=pre, train=False)
    int8 = quantize(subpixel_unet(gen), [train[i]["input"][None] for i in range(0, len(train), 12)])
    default = Translator(copy.deepcopy(gen), task, mode="eval", seed=None, bf16_weights=True)
    paths = {"fp32": gen, "default": default.run, "int8": int8}
    return score_runners(task, val, paths, baseline="fp32")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.int8_probe", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--run", type=Path, help="a facades run (or checkpoint) folder: also its scores"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="data root [$I2I_DATA or ../shared/data]"
    )
    args = parser.parse_args(argv)
    from benchmarks.machine import describe_machine

    print(describe_machine())
    print("\nconvolution forward, GOP/s (channels_last; int8: quantized Conv2d, x86 engine)")
    for r in conv_rates():
        b, ci, co, size, k, s = r["shape"]
        print(
            f"  batch {b}, {ci} -> {co}, {k}x{k} stride {s}, {size} px: fp32 {r['fp32']:.0f}, "
            f"bf16 {r['bf16']:.0f}, int8 {r['int8']:.0f} = {r['int8'] / r['bf16']:.2f}x bf16"
        )
    print("\nquantized ConvTranspose2d, relative RMS distance from the float layer:")
    for engine in ("x86", "onednn", "fbgemm"):
        print(f"  {engine}: {quantized_transpose_error(engine):.4f}")
    print("\nunet_256, eval mode, 256 px, images/s (int8 with sub-pixel transposed convolutions)")
    for r in whole_network():
        print(
            f"  batch {r['batch']}: i2i default ({r['precision']}) {r['default']:.1f}, "
            f"int8 {r['int8']:.1f} = {r['int8'] / r['default']:.2f}x"
        )
    if args.run:
        from benchmarks.bench import data_root

        root = args.data or data_root()
        print(f"\n{args.run} on facades val, eval mode: L1 / PSNR / SSIM, PSNR from fp32's outputs")
        for path, s in scores(args.run, root).items():
            tail = "" if path == "fp32" else f", {s['psnr_from_fp32']:.1f} dB from fp32"
            print(f"  {path}: {s['l1']:.4f} / {s['psnr']:.2f} / {s['ssim']:.4f}{tail}")


if __name__ == "__main__":
    main()
