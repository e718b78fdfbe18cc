"""Building blocks shared by the generators and discriminators: norm layers and weight init.

>>> type(norm_layer("instance", 8)).__name__
'InstanceNorm2d'
>>> uses_bias("batch"), uses_bias("instance")
(False, True)
"""

from __future__ import annotations

from torch import nn

NORMS = ("batch", "instance", "none")


def check_norm(norm: str) -> str:
    """Return ``norm`` when it is one of :data:`NORMS`, else raise a ``ValueError``.

    >>> check_norm("batch")
    'batch'
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
    return norm


def uses_bias(norm: str) -> bool:
    """Whether a conv followed by ``norm`` has a bias (BatchNorm's shift makes it redundant).

    >>> uses_bias("none")
    True
    """
    return check_norm(norm) != "batch"


def norm_layer(norm: str, channels: int) -> nn.Module:
    """The norm layer for ``channels`` channels, as the official pix2pix code builds it.

    ``batch``: ``BatchNorm2d`` (affine, running stats); ``instance``: ``InstanceNorm2d`` with
    ``affine=False, track_running_stats=False``; ``none``: ``Identity``.

    >>> n = norm_layer("instance", 4)
    >>> n.affine, n.track_running_stats, type(norm_layer("none", 4)).__name__
    (False, False, 'Identity')
    """
    check_norm(norm)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


def init_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """pix2pix init in place: conv weights ~ N(0, std), norm weights ~ N(1, std), biases 0.

    >>> m = init_weights(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)))
    >>> m[0].bias.abs().max().item(), m[1].bias.abs().max().item()
    (0.0, 0.0)
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module
