"""Validation during training: L1, PSNR and SSIM on RGB images, and sample grids.

Metrics compare ``task.output_to_image(x, G(x))`` with ``task.output_to_image(x, y)``, both
RGB in [0, 1], per image, then average over the split. The generator runs in the run's test
mode: ``paper`` keeps dropout and batch statistics (as the pix2pix paper does at test time;
images go one at a time, and BatchNorm's running statistics are left untouched), ``eval``
uses ``module.eval()``.

>>> import torch
>>> pred, target = torch.zeros(2, 3, 16, 16), torch.full((2, 3, 16, 16), 0.5)
>>> {k: round(v.mean().item(), 3) for k, v in image_metrics(pred, target).items()}
{'l1': 0.5, 'psnr': 6.021, 'ssim': 0.0}
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import kornia
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.utils import make_grid

from i2i.engine.devices import autocast
from i2i.task import Task


@contextlib.contextmanager
def in_test_mode(module: nn.Module, mode: str) -> Iterator[nn.Module]:
    """Put ``module`` in the ``paper`` or ``eval`` test mode, under ``torch.no_grad()``.

    ``paper`` keeps training-mode layers (dropout, batch statistics) but restores every
    buffer afterwards, so running statistics are not moved by test images.

    >>> bn = nn.BatchNorm2d(1)
    >>> with in_test_mode(bn, "paper"):
    ...     _ = bn(torch.randn(2, 1, 4, 4) + 5)
    >>> float(bn.running_mean[0])
    0.0
    """
    if mode not in ("paper", "eval"):
        raise ValueError(f"test mode must be 'paper' or 'eval', got {mode!r}")
    was_training = module.training
    saved = {name: buf.clone() for name, buf in module.named_buffers()}
    module.train(mode == "paper")
    try:
        with torch.no_grad():
            yield module
    finally:
        buffers = dict(module.named_buffers())
        for name, value in saved.items():
            buffers[name].copy_(value)
        module.train(was_training)


def image_metrics(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Per-image ``l1``, ``psnr`` (dB) and ``ssim`` of ``(B, 3, H, W)`` images in [0, 1]."""
    pred, target = pred.float().clamp(0, 1), target.float().clamp(0, 1)
    l1 = (pred - target).abs().flatten(1).mean(1)
    psnr = torch.stack([kornia.metrics.psnr(p, t, 1.0) for p, t in zip(pred, target, strict=True)])
    window = min(11, *pred.shape[-2:])
    window -= 1 - window % 2  # odd
    ssim = kornia.metrics.ssim(pred, target, window_size=window, max_val=1.0).flatten(1).mean(1)
    return {"l1": l1, "psnr": psnr, "ssim": ssim}


def _loader(dataset: Dataset, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        generator=torch.Generator(),
    )


def evaluate(
    generator: nn.Module,
    dataset: Dataset,
    task: Task,
    *,
    device: torch.device,
    precision: str = "fp32",
    mode: str = "paper",
    batch_size: int = 1,
    num_workers: int = 0,
    channels_last: bool = False,
) -> dict[str, float]:
    """Mean ``l1``, ``psnr``, ``ssim`` of ``generator`` over ``dataset``; plus ``images``.

    In ``paper`` mode images go one at a time (batch statistics of one image, as at test
    time in the paper); in ``eval`` mode ``batch_size`` at a time.
    """
    sums: dict[str, float] = {}
    count = 0
    bs = 1 if mode == "paper" else batch_size
    with in_test_mode(generator, mode):
        for batch in _loader(dataset, bs, num_workers):
            x, y = batch["input"].to(device), batch["target"].to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                out = generator(x)
            out = out.float()
            pred = task.output_to_image(x, out)
            target = task.output_to_image(x, y)
            for key, values in image_metrics(pred, target).items():
                sums[key] = sums.get(key, 0.0) + float(values.sum())
            count += x.shape[0]
    result = {key: value / max(count, 1) for key, value in sums.items()}
    result["images"] = count
    return result


def sample_grid(
    generator: nn.Module,
    dataset: Dataset,
    task: Task,
    *,
    indices: Sequence[int],
    device: torch.device,
    precision: str = "fp32",
    mode: str = "paper",
    channels_last: bool = False,
) -> Tensor:
    """A grid image ``(3, H', W')`` in [0, 1]: one row per sample, input | output | target."""
    tiles: list[Tensor] = []
    with in_test_mode(generator, mode):
        for batch in _loader(Subset(dataset, list(indices)), 1, 0):
            x, y = batch["input"].to(device), batch["target"].to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                out = generator(x)
            out = out.float()
            tiles += [
                task.input_to_image(x)[0].float().cpu(),
                task.output_to_image(x, out)[0].float().cpu(),
                task.output_to_image(x, y)[0].float().cpu(),
            ]
    if not tiles:
        raise ValueError("sample_grid needs at least one sample index")
    return make_grid(torch.stack(_same_size(tiles)), nrow=3, padding=2, pad_value=1.0)


def _same_size(tiles: list[Tensor]) -> list[Tensor]:
    """Resize tiles to the first one's size (eval datasets may keep varying aspect ratios)."""
    h, w = tiles[0].shape[-2:]
    out = []
    for t in tiles:
        if t.shape[-2:] != (h, w):
            t = torch.nn.functional.interpolate(t[None], size=(h, w), mode="bilinear")[0]
        out.append(t)
    return out


def metric_record(values: dict[str, Any], prefix: str = "val/") -> dict[str, Any]:
    """``{"l1": ..}`` -> ``{"val/l1": ..}``.

    >>> metric_record({"l1": 0.5})
    {'val/l1': 0.5}
    """
    return {prefix + key: value for key, value in values.items()}
