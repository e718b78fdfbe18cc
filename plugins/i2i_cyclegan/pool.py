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

A query is two halves (:meth:`ImagePool.query` does both): :meth:`~ImagePool.draw` makes the
decisions on the host, and :meth:`~ImagePool.apply` carries them out with tensor operations
only, on one bank of stored images on the images' device, reading no value back. A training
step replayed as a CUDA graph (``i2i run --cuda-graphs``) draws before each replay and the graph
applies the draws it is given.

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
>>> pool.draw(2)  # per image: returns a stored one?, which slot it reads, which it writes
tensor([[1, 0, 0],
        [0, 0, 2]])
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

    The images are kept in one bank, a tensor of ``size + 1`` rows (the last one takes the
    writes of images that are not stored), while they all have one shape: every fixed-size
    training run. An image of another shape than those stored (``--preprocess scale_width``
    and the like) turns the bank into a list, as the official pool keeps them, until the
    stored images and a new batch have one shape again.
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
        self._count = 0  # images stored, or decided to be stored by the draws so far
        self._bank: Tensor | None = None  # (size + 1, ...) while every image has one shape
        self._loose: list[Tensor] = []  # the stored images otherwise

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"ImagePool(size={self.size}, holding {len(self)})"

    @property
    def images(self) -> list[Tensor]:
        """The stored images, oldest slot first (copies)."""
        if self._bank is not None:
            return [row.clone() for row in self._bank[: self._count]]
        return [t.clone() for t in self._loose]

    def query(self, images: Tensor) -> Tensor:
        """A batch shaped like ``images`` ``(B, ...)``: each image, or a stored one in its place."""
        return self.apply(images, self.draw(images.shape[0]))

    def draw(self, n: int) -> Tensor:
        """The decisions for the next ``n`` images, on the host: ``(n, 3)`` int64 rows of
        (1 if a stored image is returned in its place, the slot it comes from, the slot the new
        image goes to; ``size`` for none). They count as made: :meth:`apply` must follow."""
        plan = torch.zeros(n, 3, dtype=torch.int64)
        plan[:, 2] = self.size
        if self.size == 0:
            return plan
        for i in range(n):
            if self._count < self.size:
                plan[i, 2] = self._count
                self._count += 1
            elif float(torch.rand((), generator=self.generator)) > 0.5:
                slot = int(torch.randint(self.size, (), generator=self.generator))
                plan[i] = torch.tensor([1, slot, slot])
        return plan

    def apply(self, images: Tensor, plan: Tensor) -> Tensor:
        """Carry out :meth:`draw`'s ``plan`` on ``images``; with one shape throughout, by
        tensor operations alone (``plan`` may already be on the images' device)."""
        images = images.detach()
        if self.size == 0:
            return images
        if len(plan) != len(images):
            raise ValueError(f"image pool: {len(plan)} decisions for {len(images)} images")
        bank = self._bank_for(images)
        if bank is None:
            return self._apply_to_list(images, plan)
        plan = plan.to(images.device, non_blocking=True)
        shape = (1,) * images.ndim
        out = []
        for i in range(len(images)):  # in order: an image may take one stored just before it
            image = images[i : i + 1]
            stored = bank.index_select(0, plan[i, 1:2]).to(image.dtype)
            out.append(torch.where(plan[i, 0:1].bool().view(shape), stored, image))
            bank.index_copy_(0, plan[i, 2:3], image.to(bank.dtype))
        pooled = torch.cat(out)
        if images.ndim == 4 and images.is_contiguous(memory_format=torch.channels_last):
            pooled = pooled.contiguous(memory_format=torch.channels_last)
        return pooled

    def _bank_for(self, images: Tensor) -> Tensor | None:
        """The bank that ``images`` fit (made on their device when the stored images all have
        their shape), else None: the images are kept in a list."""
        shape = tuple(images.shape[1:])
        bank = self._bank
        if bank is not None and tuple(bank.shape[1:]) == shape and bank.device == images.device:
            return bank
        if bank is not None:  # another shape or device: a list (rows being filled included)
            self._loose, self._bank = list(bank[: self._count].clone().unbind(0)), None
        if any(tuple(t.shape) != shape for t in self._loose):
            return None
        bank = images.new_zeros((self.size + 1, *shape))
        if images.ndim == 4 and images.is_contiguous(memory_format=torch.channels_last):
            bank = bank.contiguous(memory_format=torch.channels_last)
        for slot, stored in enumerate(self._loose):
            bank[slot].copy_(stored)
        self._bank, self._loose = bank, []
        return bank

    def _apply_to_list(self, images: Tensor, plan: Tensor) -> Tensor:
        out = []
        for image, (returns_stored, read, write) in zip(images, plan.tolist(), strict=True):
            out.append(
                self._loose[read].to(device=image.device, dtype=image.dtype)
                if returns_stored
                else image
            )
            if write < self.size and write == len(self._loose):
                self._loose.append(image.clone())
            elif write < self.size:
                self._loose[write] = image.clone()
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        """``{"images": [CPU tensors], "count": int, "rng": generator state}``, for a checkpoint.

        The generator's state is included so that a resumed run draws what the uninterrupted
        one would have; when pools share a generator, each holds the same state.
        """
        return {
            "images": [t.cpu() for t in self.images],  # copies, not views of the bank
            "count": len(self),
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
        loaded = [t.detach().clone() for t in images]
        if self._bank is not None and all(t.shape == self._bank.shape[1:] for t in loaded):
            for slot, stored in enumerate(loaded):  # in place: a CUDA graph holds the bank
                self._bank[slot].copy_(stored)
        else:
            self._bank, self._loose = None, loaded
        self._count = count
        if "rng" in state:
            self.generator.set_state(state["rng"])


__all__ = ["DEFAULT_SIZE", "ImagePool"]
