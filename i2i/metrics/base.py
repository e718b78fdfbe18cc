"""What a metric is: something that scores batches of images and summarises a whole set.

Every metric sees RGB images in [0, 1] shaped ``(B, 3, H, W)``: the translation ``pred``, the
ground truth ``target`` and, when known, the model ``inputs`` shown as images (segmentation
scores take their ground-truth labels from them). ``update`` returns one dict of values per
image; ``compute`` summarises everything since ``reset`` (a mean, or a score of pooled counts
such as the histogram intersection of all pixels).

A plugin may register a plain callable ``fn(pred, target) -> scalar tensor`` instead;
:func:`as_metric` wraps it to score image by image.

>>> import torch
>>> m = PerImageMetric("max_error", lambda p, t: (p - t).abs().amax(dim=(1, 2, 3)))
>>> m.update(torch.ones(2, 3, 4, 4), torch.zeros(2, 3, 4, 4))
[{'max_error': 1.0}, {'max_error': 1.0}]
>>> m.compute()
{'max_error': 1.0}
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import Tensor


class Metric:
    """Base class: accumulates scores over batches of RGB images in [0, 1].

    ``keys`` names the values :meth:`update` and :meth:`compute` return; ``higher_is_better``
    says which way each one improves.
    """

    keys: tuple[str, ...] = ()
    higher_is_better: dict[str, bool] = {}

    def reset(self) -> None:
        """Forget everything seen so far."""
        raise NotImplementedError

    def update(
        self, pred: Tensor, target: Tensor, inputs: Tensor | None = None
    ) -> list[dict[str, float]]:
        """Score one batch; returns one ``{key: value}`` per image."""
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """The summary over every image since :meth:`reset`."""
        raise NotImplementedError


def check_images(pred: Tensor, target: Tensor, name: str) -> None:
    """Raise ``ValueError`` unless ``pred`` and ``target`` are same-shaped ``(B, 3, H, W)`` batches."""
    if pred.ndim != 4 or pred.shape[1] != 3 or pred.shape != target.shape:
        raise ValueError(
            f"metric {name!r} expected pred and target (B, 3, H, W) of one shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )


class PerImageMetric(Metric):
    """A metric from ``fn(pred, target) -> (B,)`` per-image values; summarised by their mean."""

    def __init__(
        self,
        name: str,
        fn: Callable[[Tensor, Tensor], Tensor],
        *,
        higher_is_better: bool = True,
    ):
        self.name, self.fn = name, fn
        self.keys = (name,)
        self.higher_is_better = {name: higher_is_better}
        self.reset()

    def reset(self) -> None:
        self._values: list[float] = []

    def update(
        self, pred: Tensor, target: Tensor, inputs: Tensor | None = None
    ) -> list[dict[str, float]]:
        check_images(pred, target, self.name)
        values = self.fn(pred, target).detach().float().reshape(-1).tolist()
        if len(values) != pred.shape[0]:
            raise ValueError(
                f"metric {self.name!r} returned {len(values)} values for {pred.shape[0]} images"
            )
        self._values.extend(values)
        return [{self.name: v} for v in values]

    def compute(self) -> dict[str, float]:
        if not self._values:
            return {self.name: math.nan}
        return {self.name: sum(self._values) / len(self._values)}


def as_metric(name: str, obj: object) -> Metric:
    """``obj`` when it is a :class:`Metric`; a plain ``fn(pred, target)`` scored image by image.

    >>> import torch
    >>> m = as_metric("worst", lambda a, b: (a - b).abs().max())
    >>> m.update(torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2))
    [{'worst': 1.0}]
    """
    if isinstance(obj, Metric):
        return obj
    if not callable(obj):
        raise TypeError(
            f"metric {name!r}: its factory returned a {type(obj).__name__}; expected an "
            "i2i.metrics.Metric or a callable fn(pred, target) -> scalar tensor"
        )
    import torch

    fn = obj

    def per_image(pred: Tensor, target: Tensor) -> Tensor:
        return torch.stack(
            [
                torch.as_tensor(fn(p[None], t[None])).float()
                for p, t in zip(pred, target, strict=True)
            ]
        )

    return PerImageMetric(name, per_image)
