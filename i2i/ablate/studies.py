"""The pix2pix paper's ablation studies as lists of run variants.

- ``objective`` (paper Table 1): L1, GAN (unconditional), cGAN, L1+GAN, L1+cGAN; U-Net, 70x70.
- ``generator`` (Table 2): encoder-decoder and U-Net, each with L1 and with L1+cGAN.
- ``discriminator`` (Table 3): 1x1 PixelGAN, 16x16 and 70x70 PatchGAN, 286x286 ImageGAN,
  each with L1+cGAN and the U-Net.
- ``all``: every variant of the three, each trained once (L1+cGAN with U-Net and 70x70 is in
  all three studies).

A variant's ``key`` names its run folder and says what it is, so studies that share a variant
share its runs. L1 weights are the paper's lambda = 100 throughout.

>>> [v.label("objective") for v in STUDIES["objective"]]
['L1', 'GAN', 'cGAN', 'L1+GAN', 'L1+cGAN']
>>> [v.key for v in variants("all")][:3]
['unet_l1', 'unet_gan_patch70', 'unet_cgan_patch70']
>>> len(variants("all"))
10
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The pix2pix paper (Isola et al., CVPR 2017, arXiv:1611.07004v3), Table 1: FCN-scores of
#: the objectives on Cityscapes labels -> photo (per-pixel acc., per-class acc., class IoU).
#: Not comparable in value with facades numbers; compare the orderings.
PAPER_TABLE1 = {
    "L1": (0.42, 0.15, 0.11),
    "GAN": (0.22, 0.05, 0.01),
    "cGAN": (0.57, 0.22, 0.16),
    "L1+GAN": (0.64, 0.20, 0.15),
    "L1+cGAN": (0.66, 0.23, 0.17),
    "Ground truth": (0.80, 0.26, 0.21),
}

#: What the paper reports for the studies whose numbers are not copied here.
PAPER_CLAIMS = {
    "objective": "Table 1 (Cityscapes): L1+cGAN scores best; GAN alone worst; the "
    "conditional GAN beats the unconditional one.",
    "generator": "Table 2 (Cityscapes): the U-Net beats the encoder-decoder, with L1 and with "
    "L1+cGAN.",
    "discriminator": "Table 3 (Cityscapes): the 70x70 PatchGAN scores best; 1x1 PixelGAN and "
    "the 286x286 ImageGAN score lower.",
}


@dataclass(frozen=True)
class Variant:
    """One run setting: its folder ``key``, a ``label`` per study, and the run options."""

    key: str
    labels: dict[str, str]
    generator: str
    objective: str
    conditional: bool = True
    discriminator: str | None = None

    def label(self, study: str) -> str:
        return self.labels.get(study) or next(iter(self.labels.values()))

    def run_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`i2i.config.resolve_config`."""
        options: dict[str, Any] = {
            "generator": self.generator,
            "objective": self.objective,
            "conditional": self.conditional,
        }
        if self.discriminator:
            options["discriminator"] = self.discriminator
        return options


def _v(key, labels, gen, objective, conditional=True, disc=None) -> Variant:
    return Variant(key, labels, gen, objective, conditional, disc)


_UNET, _ENCDEC = "unet_256", "encoder_decoder_256"
_ALL = [
    _v("unet_l1", {"objective": "L1", "generator": "U-Net (L1)"}, _UNET, "l1=100"),
    _v("unet_gan_patch70", {"objective": "GAN"}, _UNET, "gan=1", False, "patch70"),
    _v("unet_cgan_patch70", {"objective": "cGAN"}, _UNET, "gan=1", True, "patch70"),
    _v("unet_l1_gan_patch70", {"objective": "L1+GAN"}, _UNET, "gan=1,l1=100", False, "patch70"),
    _v(
        "unet_l1_cgan_patch70",
        {"objective": "L1+cGAN", "generator": "U-Net (L1+cGAN)", "discriminator": "70x70"},
        _UNET,
        "gan=1,l1=100",
        True,
        "patch70",
    ),
    _v("encdec_l1", {"generator": "Encoder-decoder (L1)"}, _ENCDEC, "l1=100"),
    _v(
        "encdec_l1_cgan_patch70",
        {"generator": "Encoder-decoder (L1+cGAN)"},
        _ENCDEC,
        "gan=1,l1=100",
        True,
        "patch70",
    ),
    _v("unet_l1_cgan_pixel", {"discriminator": "1x1"}, _UNET, "gan=1,l1=100", True, "pixel"),
    _v("unet_l1_cgan_patch16", {"discriminator": "16x16"}, _UNET, "gan=1,l1=100", True, "patch16"),
    _v(
        "unet_l1_cgan_image286",
        {"discriminator": "286x286"},
        _UNET,
        "gan=1,l1=100",
        True,
        "image286",
    ),
]

_ORDER = {
    "objective": [
        "unet_l1",
        "unet_gan_patch70",
        "unet_cgan_patch70",
        "unet_l1_gan_patch70",
        "unet_l1_cgan_patch70",
    ],
    "generator": ["encdec_l1", "encdec_l1_cgan_patch70", "unet_l1", "unet_l1_cgan_patch70"],
    "discriminator": [
        "unet_l1_cgan_pixel",
        "unet_l1_cgan_patch16",
        "unet_l1_cgan_patch70",
        "unet_l1_cgan_image286",
    ],
}
_BY_KEY = {v.key: v for v in _ALL}
STUDIES: dict[str, list[Variant]] = {
    name: [_BY_KEY[k] for k in keys] for name, keys in _ORDER.items()
}
STUDY_NAMES = (*STUDIES, "all")


def variants(study: str) -> list[Variant]:
    """The variants of ``study`` (``all``: every variant once, in study order)."""
    if study == "all":
        seen: dict[str, Variant] = {}
        for name in STUDIES:
            for v in STUDIES[name]:
                seen.setdefault(v.key, v)
        return list(seen.values())
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r}; choose from {', '.join(STUDY_NAMES)}")
    return list(STUDIES[study])
