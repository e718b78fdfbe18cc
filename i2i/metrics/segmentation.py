"""A segmentation score in the spirit of the pix2pix paper's FCN-score.

The paper (Isola et al. 2017, section 4.2) judges generated photos by how well an off-the-shelf
segmenter recovers the labels they were generated from: per-pixel accuracy, per-class accuracy
and class IoU. The segmenter maps photos to class indices: a semantic segmentation network
(:mod:`i2i.segment`, ``i2i segmenter train``) or any callable, such as a photo -> label-colour
translator followed by :func:`nearest_class`. The ground truth is the label map the photo was
translated from (the model ``inputs``), decoded to classes by nearest palette colour (the task's
``Task.palette``); ``truth="target"`` uses the targets instead (for photo -> labels models).

Summaries follow the FCN-score code of the paper (``scripts/eval_cityscapes/util.py``): one
confusion matrix over all pixels of all images; pixel accuracy ``trace / total``; per-class
accuracy and IoU averaged over classes present (NaN classes left out).

>>> import torch
>>> palette = torch.tensor([[0, 0, 0], [255, 255, 255]])
>>> labels = torch.zeros(1, 3, 8, 8); labels[..., 4:] = 1.0
>>> seg = lambda photos: nearest_class(photos, palette)  # perfect on these toy "photos"
>>> m = SegmentationScore(seg, palette)
>>> m.update(labels, labels, inputs=labels)
[{'seg_pixel_acc': 1.0, 'seg_class_acc': 1.0, 'seg_class_iou': 1.0}]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from i2i.metrics.base import Metric, check_images

#: A task's palette: ``(name, (r, g, b))`` per class, colours 0..255, in class-index order.
Palette = Sequence[tuple[str, Sequence[int]]]


def nearest_class(images: Tensor, palette: Tensor) -> Tensor:
    """Class index of each pixel by nearest palette colour: ``(B, 3, H, W)`` [0, 1] -> ``(B, H, W)``.

    >>> nearest_class(torch.tensor([0.1, 0.9]).view(1, 1, 1, 2).expand(1, 3, 1, 2),
    ...               torch.tensor([[0, 0, 0], [255, 255, 255]])).tolist()
    [[[0, 1]]]
    """
    pal = palette.to(images.device, torch.float32) / 255.0  # (K, 3)
    pixels = images.float().permute(0, 2, 3, 1)  # (B, H, W, 3)
    # |p - c|^2 = |p|^2 - 2 p.c + |c|^2; |p|^2 is the same for every c, so it drops out
    distance = pal.pow(2).sum(-1) - 2.0 * pixels @ pal.T  # (B, H, W, K)
    return distance.argmin(-1)


def confusion(truth: Tensor, pred: Tensor, num_classes: int) -> Tensor:
    """``(K, K)`` counts, rows = true class, columns = predicted class.

    >>> confusion(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), 2).tolist()
    [[1, 0], [1, 1]]
    """
    idx = truth.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores(hist: Tensor) -> dict[str, float]:
    """Pixel accuracy, mean per-class accuracy and mean IoU of a confusion matrix.

    >>> s = scores(torch.tensor([[3, 1], [0, 0]]))
    >>> s["seg_pixel_acc"], s["seg_class_acc"], s["seg_class_iou"]
    (0.75, 0.75, 0.375)
    """
    h = hist.double()
    diag, truth, predicted = h.diag(), h.sum(1), h.sum(0)
    total = h.sum()
    with torch.no_grad():
        class_acc = diag / truth  # NaN for classes absent from the truth
        iou = diag / (truth + predicted - diag)
    return {
        "seg_pixel_acc": float(diag.sum() / total) if total > 0 else math.nan,
        "seg_class_acc": _nanmean(class_acc),
        "seg_class_iou": _nanmean(iou),
    }


def _nanmean(values: Tensor) -> float:
    kept = values[~torch.isnan(values)]
    return float(kept.mean()) if kept.numel() else math.nan


class SegmentationScore(Metric):
    """FCN-score-like accuracy of a segmenter on the translations (higher is better).

    ``segmenter`` maps ``(B, 3, H, W)`` RGB photos in [0, 1] to ``(B, H, W)`` class indices
    (an :class:`i2i.segment.Segmenter`, for example); ``palette`` is ``(K, 3)`` RGB colours
    0..255, one per class, by which the ground-truth label maps are decoded.
    """

    keys = ("seg_pixel_acc", "seg_class_acc", "seg_class_iou")
    higher_is_better = dict.fromkeys(keys, True)

    def __init__(
        self,
        segmenter: Callable[[Tensor], Tensor],
        palette: Tensor | Sequence[Sequence[int]],
        *,
        class_names: Sequence[str] | None = None,
        truth: str = "input",
    ):
        if truth not in ("input", "target"):
            raise ValueError(f"truth must be 'input' or 'target', got {truth!r}")
        self.segmenter = segmenter
        self.palette = torch.as_tensor(palette)
        if self.palette.ndim != 2 or self.palette.shape[1] != 3:
            raise ValueError(f"palette must be (K, 3) RGB colours, got {tuple(self.palette.shape)}")
        k = self.palette.shape[0]
        self.class_names = tuple(class_names or (str(i) for i in range(k)))
        if len(self.class_names) != k:
            raise ValueError(f"{len(self.class_names)} class names for a palette of {k} colours")
        self.truth = truth
        self.reset()

    def reset(self) -> None:
        k = self.palette.shape[0]
        self.hist = torch.zeros(k, k, dtype=torch.long)

    def update(
        self, pred: Tensor, target: Tensor, inputs: Tensor | None = None
    ) -> list[dict[str, float]]:
        check_images(pred, target, "seg_score")
        truth_images = inputs if self.truth == "input" else target
        if truth_images is None:
            raise ValueError(
                "the segmentation score needs the label maps the images were translated from "
                "(the model inputs); with --pred/--target pass them with --input DIR"
            )
        if truth_images.shape != pred.shape:
            raise ValueError(
                f"label maps {tuple(truth_images.shape)} and translations {tuple(pred.shape)} "
                "differ in shape"
            )
        k = self.palette.shape[0]
        with torch.no_grad():
            predicted = torch.as_tensor(self.segmenter(pred))
        if predicted.shape != (pred.shape[0], *pred.shape[-2:]) or predicted.is_floating_point():
            raise ValueError(
                f"the segmenter returned {predicted.dtype} {tuple(predicted.shape)}; expected "
                f"(B, H, W) class indices for images {tuple(pred.shape)}"
            )
        if predicted.numel() and (predicted.min() < 0 or predicted.max() >= k):
            raise ValueError(f"the segmenter returned class indices outside 0..{k - 1}")
        truth = nearest_class(truth_images, self.palette)
        out = []
        for t, p in zip(truth, predicted, strict=True):
            hist = confusion(t.cpu(), p.cpu(), k)
            self.hist += hist
            out.append(scores(hist))
        return out

    def compute(self) -> dict[str, float]:
        return scores(self.hist)

    def per_class(self) -> dict[str, dict[str, float]]:
        """Accuracy and IoU of each class over everything seen (NaN: class never present)."""
        h = self.hist.double()
        diag, truth, predicted = h.diag(), h.sum(1), h.sum(0)
        acc, iou = diag / truth, diag / (truth + predicted - diag)
        return {
            name: {"acc": float(acc[i]), "iou": float(iou[i])}
            for i, name in enumerate(self.class_names)
        }


def seg_score_metric(
    segmenter: Callable[[Tensor], Tensor],
    palette: Palette = (),
    truth: str = "input",
) -> SegmentationScore:
    """Per-pixel acc., per-class acc. and class IoU of a segmenter on the outputs (FCN-score).

    ``palette`` (a task's ``Task.palette``) decodes the label maps; by default the segmenter's
    own (an :class:`i2i.segment.Segmenter` knows its classes).
    """
    own = tuple(getattr(segmenter, "palette", ()))
    given = tuple((str(n), tuple(rgb)) for n, rgb in palette)
    if own and given and [n for n, _ in own] != [n for n, _ in given]:
        raise ValueError(
            f"the segmenter's classes {[n for n, _ in own]} differ from the palette's "
            f"{[n for n, _ in given]}"
        )
    palette = given or own
    if not palette:
        raise ValueError(
            "seg_score needs the label colours: a segmenter that knows its classes, or a "
            "palette (a task's Task.palette)"
        )
    names = [name for name, _ in palette]
    colors = [tuple(rgb) for _, rgb in palette]
    return SegmentationScore(segmenter, colors, class_names=names, truth=truth)
