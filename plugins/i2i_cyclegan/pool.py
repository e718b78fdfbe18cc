"""The history of generated images each CycleGAN discriminator sees (Shrivastava et al. 2017).

>>> import torch
>>> pool = ImagePool(2, generator=torch.Generator().manual_seed(0))
>>> pool.query(torch.zeros(2, 3, 4, 4)).shape
torch.Size([2, 3, 4, 4])
>>> len(pool)
2
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor


class ImagePool:
    """Up to ``size`` earlier generated images; ``size=0`` passes images through.

    While filling, :meth:`query` returns the new images and stores them. Once full, each new
    image is, with probability 1/2, returned as it is; otherwise a random stored image is
    returned in its place and the new one is stored instead (the official code's rule).
    """

    def __init__(self, size: int = 50, *, generator: torch.Generator | None = None):
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = int(size)
        self.generator = generator or torch.Generator().manual_seed(0)
        self.images: list[Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: Tensor) -> Tensor:
        """A batch like ``images`` (detached) mixing them with stored earlier ones."""
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand((), generator=self.generator)) > 0.5:
                index = int(torch.randint(0, self.size, (), generator=self.generator))
                out.append(self.images[index].to(image.device).clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, Any]:
        """Stored images (CPU) and the random state: plain tensors, loads with weights_only."""
        return {
            "images": [t.cpu() for t in self.images],
            "rng": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        device = self.images[0].device if self.images else None
        self.images = [t.to(device) if device else t for t in state.get("images", [])]
        if "rng" in state:
            self.generator.set_state(state["rng"])
