"""Translating on many processes: ``torchrun --nproc-per-node N -m i2i translate ...``.

Every rank plans all outputs (so every rank applies the one-process refusal rules: nothing is
written when an output exists or two inputs share a stem), the ranks agree that none refused,
then each translates and writes only its own share, every ``world_size``-th pair from its
``rank``. Several machines join through torchrun's own rendezvous (``--nnodes``,
``--rdzv-backend c10d --rdzv-endpoint HOST:PORT``); every node must see the same input and
output folders.

>>> from i2i.engine.distributed import DistInfo
>>> share(list("abcde"), DistInfo(rank=1, world_size=2, local_rank=1))
['b', 'd']
>>> share(list("abc"), DistInfo())
['a', 'b', 'c']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import torch

from i2i.engine.distributed import DistInfo

T = TypeVar("T")


class OtherRankError(RuntimeError):
    """Another rank refused (its own message says why); this one stops without writing."""


def share(items: Sequence[T], info: DistInfo) -> list[T]:
    """This rank's share of ``items``: every ``world_size``-th one, from index ``rank``."""
    return list(items[info.rank :: info.world_size])


def agree(error: BaseException | None, info: DistInfo, device: torch.device) -> None:
    """Raise ``error`` here, or :class:`OtherRankError` when another rank had one: every rank
    stops before writing when any refused. A collective: every rank must call it."""
    from i2i.engine.distributed import any_rank

    failed = any_rank(error is not None, info, device)
    if error is not None:
        raise error
    if failed:
        raise OtherRankError(
            f"rank {info.rank}: another rank refused (see its message); nothing was written"
        )


def total(count: int, info: DistInfo, device: torch.device) -> int:
    """The sum of ``count`` over all ranks (``count`` itself in one process)."""
    if not info.enabled:
        return count
    import torch.distributed as dist

    t = torch.tensor([count], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return int(t.item())
