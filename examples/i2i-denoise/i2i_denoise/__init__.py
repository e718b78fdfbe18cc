"""An example i2i plugin: the ``denoise`` task and the ``dncnn`` generator.

>>> import torch
>>> x, y = DENOISE.make_pair(torch.rand(3, 32, 32), torch.Generator().manual_seed(0))
>>> x.shape, y.shape
(torch.Size([3, 32, 32]), torch.Size([3, 32, 32]))
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from i2i import Task, hookimpl, to_model_range


class DnCNN(nn.Module):
    """DnCNN: predicts the noise and subtracts it from the input (residual learning).

    >>> DnCNN(3, 3, depth=4, features=8)(torch.zeros(1, 3, 16, 16)).shape
    torch.Size([1, 3, 16, 16])
    """

    size_multiple = 1

    def __init__(self, in_channels: int, out_channels: int, *, depth: int = 17, features: int = 64):
        super().__init__()
        if in_channels != out_channels:
            raise ValueError(
                f"dncnn subtracts its output from its input, so in_channels must equal "
                f"out_channels; got {in_channels} and {out_channels}"
            )
        layers: list[nn.Module] = [nn.Conv2d(in_channels, features, 3, padding=1), nn.ReLU(True)]
        for _ in range(depth - 2):
            layers += [
                nn.Conv2d(features, features, 3, padding=1, bias=False),
                nn.BatchNorm2d(features),
                nn.ReLU(True),
            ]
        layers.append(nn.Conv2d(features, out_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        # Images live in [-1, 1]; the residual estimate may overshoot, so clamp like tanh would.
        return (x - self.body(x)).clamp(-1.0, 1.0)


def make_dncnn(in_channels: int, out_channels: int, *, depth: int = 17, features: int = 64):
    """DnCNN residual denoiser (Zhang et al., 2017)."""
    return DnCNN(in_channels, out_channels, depth=depth, features=features)


def add_noise(
    clean: Tensor, generator: torch.Generator | None = None, sigma: float = 0.1
) -> tuple[Tensor, Tensor]:
    """(noisy, clean) in [-1, 1] from one clean [0, 1] image; sigma is in [0, 1] units."""
    noise = torch.randn(clean.shape, generator=generator) * sigma
    noisy = (clean + noise).clamp(0.0, 1.0)
    return to_model_range(noisy), to_model_range(clean)


def _builtin_data():
    """i2i's built-in photos: the task derives its input, so any photos will do."""
    from i2i.data import builtin_data_root

    return builtin_data_root()


DENOISE = Task(
    summary="Noisy photo -> clean photo (Gaussian noise, sigma 0.1)",
    in_channels=3,
    out_channels=3,
    layout="single",
    make_pair=add_noise,
    defaults={"generator": "dncnn", "discriminator": "patch70", "objective": "gan=1,l1=100"},
    metrics=("l1", "psnr", "ssim"),
    default_data=_builtin_data,
)


@hookimpl
def i2i_register_tasks(register):
    register("denoise", DENOISE)


@hookimpl
def i2i_register_generators(register):
    register("dncnn", make_dncnn, size_multiple=1)
