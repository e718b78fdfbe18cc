"""A U-Net decoder on any timm encoder (``features_only=True``), never downloading weights.

The encoder starts from random weights unless ``weights=PATH`` names a local safetensors file or
a ``torch.save``'d state dict (loaded with ``weights_only=True``); a checkpoint rebuilds the
network without reading that file again, as its own weights replace them. Inputs in [-1, 1] are mapped to
the encoder's expected normalization (its ``pretrained_cfg`` mean and std).

>>> import torch
>>> g = unet_timm(1, 2, encoder="test_efficientnet", ngf=8)
>>> g(torch.zeros(2, 1, 64, 64)).shape, g.size_multiple
(torch.Size([2, 2, 64, 64]), 32)
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import torch
from torch import Tensor, nn

from i2i.models.layers import (
    LogicalOrderDropout,
    check_image_batch,
    check_norm,
    init_weights,
    norm_layer,
    uses_bias,
)
from i2i.models.unet import DROPOUT_BLOCKS


def _conv_block(c_in: int, c_out: int, norm: str, dropout: bool) -> nn.Sequential:
    layers = [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=uses_bias(norm)),
        norm_layer(norm, c_out),
        nn.ReLU(),
    ]
    if dropout:
        layers.append(LogicalOrderDropout(0.5))  # one seed, one mask in either layout
    return nn.Sequential(*layers)


class _UpBlock(nn.Module):
    """Upsample by ``scale`` (nearest), concatenate the skip, conv-norm-ReLU(-dropout)."""

    def __init__(self, c_in: int, c_skip: int, c_out: int, scale: int, norm: str, dropout: bool):
        super().__init__()
        self.scale = scale
        self.conv = _conv_block(c_in + c_skip, c_out, norm, dropout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        if self.scale > 1:
            x = nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")
        return self.conv(torch.cat([skip, x], dim=1))


class TimmUNet(nn.Module):
    """U-Net decoder over the feature pyramid of a timm encoder.

    Input ``(B, in_channels, H, W)`` in [-1, 1] with ``H``, ``W`` multiples of
    ``size_multiple`` (the encoder's total reduction); output ``(B, out_channels, H, W)`` in
    [-1, 1]. Decoder widths are ``ngf * min(2**level, 8)``; the full-resolution head also sees
    the input itself. Dropout (the paper's noise) is in the first three decoder blocks.
    ``logits=True`` drops the final tanh (unbounded scores, e.g. per-class logits of a
    segmenter).

    >>> g = TimmUNet(3, 3, encoder="test_convnext", ngf=8)
    >>> g(torch.zeros(1, 3, 32, 64)).shape
    torch.Size([1, 3, 32, 64])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        encoder: str = "resnet18",
        ngf: int = 64,
        norm: str = "batch",
        dropout: bool = True,
        weights: str | Path | None = None,
        logits: bool = False,
    ):
        super().__init__()
        import timm

        check_norm(norm)
        self.in_channels, self.out_channels, self.encoder_name = in_channels, out_channels, encoder
        try:
            self.encoder = timm.create_model(
                encoder, pretrained=False, features_only=True, in_chans=in_channels
            )
        except RuntimeError as exc:  # timm's "Unknown model" is a RuntimeError
            raise ValueError(f"unet_timm: timm cannot build encoder {encoder!r}: {exc}") from exc
        info = self.encoder.feature_info
        reductions, channels = list(info.reduction()), list(info.channels())
        if any(b % a for a, b in pairwise(reductions)):
            raise ValueError(
                f"unet_timm: encoder {encoder!r} has feature reductions {reductions}; "
                "each must divide the next"
            )
        scales = [reductions[0], *(b // a for a, b in pairwise(reductions))]
        self.size_multiple = int(reductions[-1])
        widths = [ngf * min(2**level, 8) for level in range(len(channels))]

        blocks = []
        c_in = channels[-1]
        for k, level in enumerate(range(len(channels) - 2, -1, -1)):
            blocks.append(
                _UpBlock(
                    c_in,
                    channels[level],
                    widths[level],
                    scales[level + 1],
                    norm,
                    dropout and k < DROPOUT_BLOCKS,
                )
            )
            c_in = widths[level]
        self.decoder = nn.ModuleList(blocks)
        self.head_scale = scales[0]
        self.head = nn.Sequential(
            _conv_block(c_in + in_channels, ngf, norm, dropout and len(blocks) < DROPOUT_BLOCKS),
            nn.Conv2d(ngf, out_channels, 3, padding=1),
            nn.Identity() if logits else nn.Tanh(),
        )
        init_weights(self.decoder)
        init_weights(self.head)

        cfg = getattr(self.encoder, "pretrained_cfg", None) or {}
        mean = torch.tensor(cfg.get("mean", (0.5, 0.5, 0.5)), dtype=torch.float32)
        std = torch.tensor(cfg.get("std", (0.5, 0.5, 0.5)), dtype=torch.float32)
        if in_channels != len(mean):
            mean, std = mean.mean().repeat(in_channels), std.mean().repeat(in_channels)
        self.register_buffer("input_mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("input_std", std.view(1, -1, 1, 1), persistent=False)
        from i2i.engine.build import weights_loaded_next

        if weights is not None and not weights_loaded_next():  # a checkpoint holds them all
            load_encoder_weights(self.encoder, weights, in_channels=in_channels, name=encoder)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(
            x,
            self.in_channels,
            name="unet_timm",
            size_multiple=self.size_multiple,
            why=f" with encoder {self.encoder_name!r}",
        )
        feats = self.encoder(((x + 1) * 0.5 - self.input_mean) / self.input_std)
        y = feats[-1]
        for k, block in enumerate(self.decoder):
            y = block(y, feats[len(feats) - 2 - k])
        if self.head_scale > 1:
            y = nn.functional.interpolate(y, scale_factor=self.head_scale, mode="nearest")
        return self.head(torch.cat([x, y], dim=1))


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """A state dict from a safetensors or ``torch.save`` file (loaded safely: nothing but
    tensors and plain data is unpickled); an unreadable file is a ``ValueError`` naming it."""
    from i2i.engine.checkpoint import CheckpointError, safe_torch_load

    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ValueError(f"{path} is not a readable safetensors file ({exc})") from None
    try:
        obj = safe_torch_load(path, what="encoder weights")
    except CheckpointError as exc:
        raise ValueError(str(exc)) from None
    for key in ("state_dict", "model", "encoder"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return obj


def load_encoder_weights(
    encoder: nn.Module, path: str | Path, *, in_channels: int = 3, name: str = "encoder"
) -> None:
    """Load a local state dict (safetensors or ``torch.save``) into a timm features encoder.

    Classifier-head tensors are ignored; ``encoder.`` / ``module.`` prefixes are stripped; a
    3-channel first conv is adapted to ``in_channels`` with timm's ``adapt_input_conv``. Missing
    or mis-shaped tensors raise a ``ValueError`` naming the file.

    >>> import tempfile, timm, torch
    >>> enc = timm.create_model("test_efficientnet", features_only=True)
    >>> path = tempfile.mkdtemp() + "/enc.pt"
    >>> torch.save(enc.state_dict(), path)
    >>> enc1 = timm.create_model("test_efficientnet", features_only=True, in_chans=1)
    >>> load_encoder_weights(enc1, path, in_channels=1)
    >>> enc1.eval()(torch.zeros(1, 1, 32, 32))[-1].shape
    torch.Size([1, 64, 1, 1])
    """
    from timm.models import adapt_input_conv

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name} weights file not found: {path}")
    source = _read_state_dict(path)
    target = encoder.state_dict()
    prefix = max(
        ("", "encoder.", "module.", "module.encoder."),
        key=lambda p: sum(p + k in source for k in target),
    )
    state = {k: source[prefix + k] for k in target if prefix + k in source}
    if not state:
        raise ValueError(
            f"{path}: no tensor matches encoder {name!r} (file keys start with "
            f"{sorted(source)[:3]}, the encoder expects {list(target)[:3]})"
        )
    cfg = getattr(encoder, "pretrained_cfg", None) or {}
    first = cfg.get("first_conv") or ()
    for conv in (first,) if isinstance(first, str) else first:
        key = conv + ".weight"
        if key in state and key in target and state[key].shape[1] != target[key].shape[1]:
            state[key] = adapt_input_conv(in_channels, state[key])
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    bad = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(target[k].shape)})"
        for k in state
        if state[k].shape != target[k].shape
    ]
    if missing or bad:
        raise ValueError(
            f"{path}: weights do not fit encoder {name!r}: "
            + (f"{len(missing)} missing, e.g. {missing[:3]}; " if missing else "")
            + (f"mis-shaped: {bad[:3]}" if bad else "")
        )
    encoder.load_state_dict(state, strict=False)


def unet_timm(
    in_channels: int,
    out_channels: int,
    *,
    encoder: str = "resnet18",
    ngf: int = 64,
    norm: str = "batch",
    dropout: bool = True,
    weights: str | None = None,
) -> TimmUNet:
    """U-Net decoder on a timm encoder (``resnet18`` by default); random init unless ``weights``.

    >>> unet_timm(3, 3, encoder="test_resnet", ngf=8).size_multiple
    32
    """
    return TimmUNet(
        in_channels,
        out_channels,
        encoder=encoder,
        ngf=ngf,
        norm=norm,
        dropout=dropout,
        weights=weights,
    )
