"""A history of generated images for a discriminator to see (Shrivastava et al. 2017).

CycleGAN updates each discriminator on a mix of the newest fakes and older ones, which keeps the
discriminator from chasing only the generator's latest mode. The rule is the official code's
``ImagePool``: while the pool is filling, each new image is stored and returned as it is; once
the pool holds ``size`` images, each new image is returned with probability 1/2, and otherwise a
random stored image is returned in its place and the new one is stored instead. ``size=0``
turns the pool off: images pass through.

Random draws come from a ``torch.Generator`` (passed in, or seeded with ``seed``), so a run is
reproducible; :meth:`ImagePool.state_dict` holds the stored images, their count and the
generator's state as plain tensors and ints, so a resumed run goes on with the same pool and
the same draws, and ``torch.load(..., weights_only=True)`` reads it back.

>>> import torch
>>> pool = ImagePool(2, seed=0)
>>> first = pool.query(torch.zeros(2, 3, 4, 4))  # filling: the new images come back
>>> bool(first.eq(0).all()), len(pool)
(True, 2)
>>> mixed = pool.query(torch.ones(8, 3, 4, 4))  # full: some come back as stored older ones
>>> mixed.shape, sorted({float(img.mean()) for img in mixed})
(torch.Size([8, 3, 4, 4]), [0.0, 1.0])
>>> again = ImagePool(2)
>>> again.load_state_dict(pool.state_dict())
>>> new = torch.full((4, 3, 4, 4), 2.0)
>>> torch.equal(again.query(new), pool.query(new))  # the same stored images and draws
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

DEFAULT_SIZE = 50
"""The pool size of the CycleGAN paper and code."""


class ImagePool:
    """Up to ``size`` earlier images (detached); :meth:`query` mixes a batch with them.

    Stored images stay on the device they came from; the ones a :meth:`query` returns are on
    the batch's device and dtype. What comes back is always detached from the graph.
    """

    def __init__(
        self,
        size: int = DEFAULT_SIZE,
        *,
        generator: torch.Generator | None = None,
        seed: int = 0,
    ):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"image pool size must be an integer >= 0, got {size!r}")
        self.size = size
        self.generator = generator if generator is not None else torch.Generator()
        if generator is None:
            self.generator.manual_seed(seed)
        self.images: list[Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return f"ImagePool(size={self.size}, holding {len(self.images)})"

    def query(self, images: Tensor) -> Tensor:
        """A batch shaped like ``images`` ``(B, ...)``: each image, or a stored one in its place."""
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand((), generator=self.generator)) > 0.5:
                index = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[index].to(device=image.device, dtype=image.dtype))
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        """``{"images": [CPU tensors], "count": int, "rng": generator state}``, for a checkpoint.

        The generator's state is included so that a resumed run draws what the uninterrupted
        one would have; when pools share a generator, each holds the same state.
        """
        return {
            "images": [t.detach().cpu() for t in self.images],
            "count": len(self.images),
            "rng": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s ``state`` (``rng`` is optional)."""
        images = list(state.get("images", []))
        count = int(state.get("count", len(images)))
        if count != len(images) or not all(isinstance(t, Tensor) for t in images):
            raise ValueError(
                f"image pool state: 'count' is {count} but 'images' holds {len(images)} tensors"
            )
        if count > self.size:
            raise ValueError(
                f"image pool state holds {count} images, more than this pool's size {self.size}"
            )
        self.images = [t.detach().clone() for t in images]
        if "rng" in state:
            self.generator.set_state(state["rng"])


__all__ = ["DEFAULT_SIZE", "ImagePool"]
