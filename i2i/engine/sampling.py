"""The order of the data: a permutation per epoch from ``(seed, epoch)``, sharded across ranks.

Like ``DistributedSampler`` with ``set_epoch``, but it can also start part-way through an
epoch, so a resumed run skips exactly the batches it had already trained on.

>>> s = EpochSampler(10, seed=0)
>>> s.set_epoch(1)
>>> full = list(s)
>>> s.set_epoch(1, skip=4)
>>> list(s) == full[4:]
True
>>> [len(EpochSampler(10, seed=0, rank=r, world_size=3)) for r in range(3)]
[4, 4, 4]
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler

from i2i.engine.rng import derive_seed


class EpochSampler(Sampler[int]):
    """Indices of one epoch for one rank: shuffled from ``(seed, epoch)``, padded to even shards."""

    def __init__(
        self,
        size: int,
        *,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        if size < 1:
            raise ValueError(f"cannot sample from an empty dataset (size {size})")
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.skip = 0

    @property
    def per_rank(self) -> int:
        """Samples each rank sees in a full epoch."""
        return math.ceil(self.size / self.world_size)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Serve ``epoch``'s order, leaving out its first ``skip`` samples on this rank."""
        self.epoch = int(epoch)
        self.skip = int(skip)

    def order(self) -> list[int]:
        """This rank's full order for the current epoch (before skipping)."""
        if self.shuffle:
            gen = torch.Generator()
            gen.manual_seed(derive_seed(self.seed, self.epoch))
            indices = torch.randperm(self.size, generator=gen).tolist()
        else:
            indices = list(range(self.size))
        total = self.per_rank * self.world_size
        while len(indices) < total:  # pad by repeating, as DistributedSampler does
            indices += indices[: total - len(indices)]
        return indices[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.skip :])

    def __len__(self) -> int:
        return max(self.per_rank - self.skip, 0)


def epoch_loader(
    data: Any,
    sampler: EpochSampler,
    *,
    epoch: int,
    done: int,
    batch_size: int,
    num_workers: int,
    seed: int,
    pin_memory: bool = False,
) -> Any:
    """The DataLoader of ``epoch``, skipping the ``done`` batches already trained on."""
    from torch.utils.data import DataLoader

    sampler.set_epoch(epoch, skip=done * batch_size)
    if hasattr(data, "set_epoch"):
        data.set_epoch(epoch)
    return DataLoader(
        data,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(derive_seed(seed, epoch, 1)),
    )
