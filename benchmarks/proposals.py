"""Speed changes measured here but not (yet) part of i2i's engine or translator.

The ``i2i+`` path of the benchmark uses them, so the table shows what each would bring; see
benchmarks/README.md for the numbers. Both are small and self-contained, ready to move into
``i2i/engine``:

- :class:`FlatFusedAdam`: ``torch.optim.Adam(fused=True)`` on the CPU copies every
  non-contiguous tensor (``.contiguous()`` on parameter, gradient and both moments, then back),
  which is what channels_last weights are. This subclass hands the kernel flat views of
  channels_last tensors instead: same math, same ``state_dict``, no copies.

>>> import torch
>>> p = torch.nn.Parameter(torch.ones(2, 3, 4, 4).contiguous(memory_format=torch.channels_last))
>>> opt = FlatFusedAdam([p], lr=0.1, fused=True)
>>> p.grad = torch.ones_like(p)
>>> opt.step()
>>> round(p[0, 0, 0, 0].item(), 4), p.is_contiguous(memory_format=torch.channels_last)
(0.9, True)
>>> opt.state_dict()["state"][0]["exp_avg"].shape
torch.Size([2, 3, 4, 4])
"""

from __future__ import annotations

import torch
from torch import Tensor

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def _flat_view(t: Tensor) -> Tensor:
    """``t``'s elements in memory order as a 1-D view (``t`` must be dense)."""
    return t.as_strided((t.numel(),), (1,), t.storage_offset())


def _dense_permuted(t: Tensor) -> bool:
    return (
        not t.is_contiguous()
        and t.dim() == 4
        and t.is_contiguous(memory_format=torch.channels_last)
    )


class FlatFusedAdam(torch.optim.Adam):
    """``torch.optim.Adam`` whose fused kernel sees channels_last tensors as flat views.

    A parameter is flattened only when its gradient and both moment buffers have exactly its
    strides, so every element meets its own gradient and moments; anything else goes to the
    kernel as it is. The optimizer's state keeps the parameters' shapes (checkpoints do not
    change).
    """

    def _init_group(self, group, params_with_grad, grads, exp_avgs, exp_avg_sqs, *rest):
        out = super()._init_group(group, params_with_grad, grads, exp_avgs, exp_avg_sqs, *rest)
        if group["fused"] and not group["amsgrad"]:
            for i, p in enumerate(params_with_grad):
                g, m, v = grads[i], exp_avgs[i], exp_avg_sqs[i]
                if _dense_permuted(p) and p.stride() == g.stride() == m.stride() == v.stride():
                    params_with_grad[i] = _flat_view(p)
                    grads[i], exp_avgs[i], exp_avg_sqs[i] = (
                        _flat_view(g),
                        _flat_view(m),
                        _flat_view(v),
                    )
        return out
