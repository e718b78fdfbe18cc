"""Validation during training: the task's metrics on RGB images, and sample grids.

Metrics come from the metrics registry (the same objects ``i2i eval`` uses) and compare
``task.output_to_image(x, G(x))`` with ``task.output_to_image(x, y)``, both RGB in [0, 1],
image by image, then summarise over the split. The generator runs in the run's test mode,
switched by :func:`i2i.inference.modes.set_test_mode`, the one switch inference uses too:
``paper`` keeps dropout and batch statistics (as the pix2pix paper does at test time; images
go one at a time, and running statistics are left untouched), ``eval`` is ``module.eval()``.

>>> import torch
>>> from torch import nn
>>> from i2i import Task
>>> from torch.utils.data import TensorDataset
>>> class Pairs(torch.utils.data.Dataset):
...     def __len__(self): return 2
...     def __getitem__(self, i): return {"input": torch.zeros(3, 8, 8), "target": torch.ones(3, 8, 8)}
>>> task = Task(summary="demo", in_channels=3, out_channels=3, layout="aligned")
>>> values = evaluate(nn.Identity(), Pairs(), task, device=torch.device("cpu"))
>>> round(values["l1"], 3), values["images"]
(0.5, 2)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from i2i.engine.devices import autocast
from i2i.inference.modes import set_test_mode
from i2i.metrics.base import Metric
from i2i.task import Task


@contextlib.contextmanager
def in_test_mode(module: nn.Module, mode: str) -> Iterator[nn.Module]:
    """:func:`~i2i.inference.modes.set_test_mode` under ``torch.no_grad()``.

    >>> bn = nn.BatchNorm2d(1)
    >>> with in_test_mode(bn, "paper"):
    ...     _ = bn(torch.randn(2, 1, 4, 4) + 5)
    >>> float(bn.running_mean[0])
    0.0
    """
    with set_test_mode(module, mode), torch.no_grad():
        yield module


def pixel_metrics() -> dict[str, Metric]:
    """The built-in ``l1``, ``psnr`` and ``ssim`` metric objects (as the registry makes them)."""
    from i2i.metrics.pixel import l1_metric, psnr_metric, ssim_metric

    return {"l1": l1_metric(), "psnr": psnr_metric(), "ssim": ssim_metric()}


def task_metrics(catalog: Any, task: Task) -> dict[str, Metric]:
    """Fresh metric objects for the task's metrics that need no extra context (no segmenter).

    >>> from i2i import catalog
    >>> sorted(task_metrics(catalog(), catalog().tasks.get("facades").obj))
    ['l1', 'psnr', 'ssim']
    """
    from i2i.metrics.base import as_metric

    out: dict[str, Metric] = {}
    for name in task.metrics:
        if name not in catalog.metrics:
            continue
        entry = catalog.metrics.get(name)
        if entry.meta.get("needs"):
            continue
        out[entry.name] = as_metric(entry.name, entry.build())
    return out or pixel_metrics()


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
    metrics: Mapping[str, Metric] | None = None,
    precision: str = "fp32",
    mode: str = "paper",
    batch_size: int = 1,
    num_workers: int = 0,
    channels_last: bool = False,
) -> dict[str, float]:
    """The summary of each of ``metrics`` (default: l1, psnr, ssim) over ``dataset``; plus
    ``images``.

    In ``paper`` mode images go one at a time (batch statistics of one image, as at test
    time in the paper); in ``eval`` mode ``batch_size`` at a time.
    """
    metrics = dict(metrics) if metrics is not None else pixel_metrics()
    for metric in metrics.values():
        metric.reset()
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
            pred = task.output_to_image(x, out).float().clamp(0, 1)
            target = task.output_to_image(x, y).float().clamp(0, 1)
            inputs = task.input_to_image(x).float()
            for metric in metrics.values():
                metric.update(pred, target, inputs)
            count += x.shape[0]
    result: dict[str, Any] = {}
    for metric in metrics.values():
        result.update(metric.compute())
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
    from torchvision.utils import make_grid  # torchvision imports torch._dynamo: seconds

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


class RunEvaluation:
    """What a run measures and shows while it trains: the recipe step's validation on
    ``val_data`` and its sample grid of the first :data:`SAMPLE_COUNT` items of
    ``sample_data``, each under its own seeded random state (so resumed runs repeat them)."""

    SAMPLE_COUNT = 4

    def __init__(
        self,
        task: Task,
        *,
        direction: str,
        mode: str,
        batch_size: int,
        seed: int,
        val_data: Dataset | None,
        sample_data: Dataset | None,
        metrics: Any = None,
    ):
        self.val_data, self.sample_data, self.seed = val_data, sample_data, seed
        from i2i.engine.distributed import local_copy
        from i2i.recipe import ValidationContext

        self.context = ValidationContext(
            task=task,
            direction=direction,
            mode=mode,
            batch_size=batch_size,
            metrics=metrics or pixel_metrics,
            local=local_copy,
        )

    def validate(self, step: Any, global_step: int) -> dict[str, Any]:
        """The step's validation values (empty without validation data)."""
        from i2i.engine.rng import derive_seed, isolated_rng

        if self.val_data is None:
            return {}
        with isolated_rng(derive_seed(self.seed, global_step, 2)):
            return step.validate(self.val_data, self.context)

    def samples(self, step: Any, global_step: int) -> Tensor | None:
        """The step's sample grid (None without sample data)."""
        from i2i.engine.rng import derive_seed, isolated_rng

        if self.sample_data is None or not len(self.sample_data):
            return None
        indices = list(range(min(self.SAMPLE_COUNT, len(self.sample_data))))
        with isolated_rng(derive_seed(self.seed, global_step, 3)):
            return step.sample_grid(self.sample_data, self.context, indices)
