"""A segmentation score in the spirit of the pix2pix paper's FCN-score.

The paper (Isola et al. 2017, section 4.2) judges generated photos by how well an off-the-shelf
segmenter recovers the labels they were generated from: per-pixel accuracy, per-class accuracy
and class IoU. Here the segmenter is an i2i checkpoint too (a photo -> label-map model, such
as the reverse facades task), whose RGB output is mapped to classes by nearest palette colour.
The ground truth is the label map the photo was translated from (the model ``inputs``), mapped
the same way; ``truth="target"`` uses the targets instead (for photo -> labels models).

Summaries follow the FCN-score code of the paper (``scripts/eval_cityscapes/util.py``): one
confusion matrix over all pixels of all images; pixel accuracy ``trace / total``; per-class
accuracy and IoU averaged over classes present (NaN classes left out).

>>> import torch
>>> labels = torch.zeros(1, 3, 8, 8); labels[..., 4:] = 1.0
>>> seg = lambda photos: photos  # a perfect "segmenter" for this toy example
>>> m = SegmentationScore(seg, palette=torch.tensor([[0, 0, 0], [255, 255, 255]]))
>>> m.update(labels, labels, inputs=labels)
[{'seg_pixel_acc': 1.0, 'seg_class_acc': 1.0, 'seg_class_iou': 1.0}]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from i2i.metrics.base import Metric, check_images

#: The 12 CMP Facade classes as coloured in the pix2pix facades AB files (measured; see
#: ``shared/data/README.md``): CMP label ids 1..12 in order.
CMP_FACADES_CLASSES = (
    "background",
    "facade",
    "window",
    "door",
    "cornice",
    "sill",
    "balcony",
    "blind",
    "deco",
    "molding",
    "pillar",
    "shop",
)
CMP_FACADES_COLORS = (
    (0, 0, 224),
    (0, 48, 255),
    (0, 128, 255),
    (0, 208, 255),
    (32, 255, 224),
    (112, 255, 144),
    (192, 255, 64),
    (255, 240, 0),
    (255, 160, 0),
    (255, 80, 0),
    (255, 0, 0),
    (176, 0, 0),
)

#: Named palettes ``--palette`` accepts: name -> (class names, RGB colours 0..255).
PALETTES: dict[str, tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]] = {
    "cmp_facades": (CMP_FACADES_CLASSES, CMP_FACADES_COLORS),
}


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

    ``segmenter`` maps ``(B, 3, H, W)`` RGB photos in [0, 1] to RGB label maps in [0, 1]
    (a :class:`i2i.inference.Translator`'s ``translate_batch``, for example); ``palette`` is
    ``(K, 3)`` RGB colours 0..255, one per class.
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
        with torch.no_grad():
            segmented = self.segmenter(pred)
        predicted = nearest_class(segmented, self.palette)
        truth = nearest_class(truth_images, self.palette)
        k = self.palette.shape[0]
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
    palette: str = "cmp_facades",
    truth: str = "input",
) -> SegmentationScore:
    """Per-pixel acc., per-class acc. and class IoU of a segmenter checkpoint on the outputs."""
    if palette not in PALETTES:
        raise ValueError(f"Unknown palette {palette!r}; available: {', '.join(PALETTES)}")
    names, colors = PALETTES[palette]
    return SegmentationScore(segmenter, colors, class_names=names, truth=truth)
