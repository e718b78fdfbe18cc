"""Multi-process training under ``torchrun``: process group, DDP, SyncBatchNorm, collectives.

``torchrun --nproc-per-node N -m i2i run ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``;
:func:`init_distributed` then joins the group (``nccl`` on GPUs, ``gloo`` on CPUs). Rank 0
alone logs and writes files; every rank trains on its own shard of each epoch.

BatchNorm becomes SyncBatchNorm only on GPUs: PyTorch's SyncBatchNorm does not run on CPU
tensors, so CPU ranks keep per-rank batch statistics (with the paper's batch size 1 that is
exactly the per-image normalisation of single-process training).

>>> info = DistInfo()
>>> info.enabled, info.is_main
(False, True)
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the group (a single process is rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info_from_env() -> DistInfo:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as ``torchrun`` sets them."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        world_size=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by ``torchrun`` with more than one process."""
    info = dist_info_from_env()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return info


def shutdown_distributed() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.enabled:
        dist.barrier()


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any rank (e.g. a stop request)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def use_sync_batchnorm(module: nn.Module, device: torch.device, info: DistInfo) -> nn.Module:
    """Convert BatchNorm layers to SyncBatchNorm when several GPU ranks train together."""
    if info.enabled and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return module


def wrap_ddp(module: nn.Module, device: torch.device, info: DistInfo) -> nn.Module:
    """``DistributedDataParallel`` around ``module`` (its parameters broadcast from rank 0)."""
    if not info.enabled:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def local_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with SyncBatchNorm turned back into BatchNorm2d, for one rank alone.

    >>> m = local_copy(nn.SyncBatchNorm(4))
    >>> type(m).__name__
    'BatchNorm2d'
    """
    if not any(isinstance(m, nn.SyncBatchNorm) for m in module.modules()):
        return module
    device = next(module.parameters(), torch.empty(0)).device
    return _revert(copy.deepcopy(module)).to(device)


def _revert(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.SyncBatchNorm):
        out = nn.BatchNorm2d(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        out.load_state_dict(module.state_dict())
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _revert(child))
    return out


#: A folder where every rank writes hashes of its final weights (to check DDP keeps them equal).
DUMP_WEIGHTS_ENV = "I2I_DEBUG_DUMP_WEIGHTS"


def dump_weight_hashes(modules: dict[str, torch.nn.Module], folder: Path, rank: int) -> Path:
    """Write ``rank{rank}.json``: a SHA-256 of each module's parameters and of its buffers."""
    record: dict[str, str] = {}
    for role, module in modules.items():
        for kind, named in (
            ("params", module.named_parameters()),
            ("buffers", module.named_buffers()),
        ):
            digest = hashlib.sha256()
            for name, tensor in named:
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            record[f"{role}.{kind}"] = digest.hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"rank{rank}.json"
    path.write_text(json.dumps(record, indent=2))
    return path
