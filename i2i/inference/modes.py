"""Test-time modes of a generator: ``eval`` (deterministic) and ``paper``.

``paper`` is how pix2pix tests (Isola et al. 2017, section 3.3 and the official code): dropout
stays on and batch-norm layers normalise with the statistics of the batch at hand rather than
their running averages. The running averages are left untouched, so switching back to ``eval``
gives the same results as before. In ``paper`` mode a :class:`torch.nn.Dropout` draws its mask
in the tensor's logical (N, C, H, W) order whatever its memory layout, so one seed gives the same
masks with NCHW or channels_last activations and with plain or pre-packed convolutions (torch's
own dropout fills its mask in memory order).

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.Dropout(0.5))
>>> with set_test_mode(net, "paper"):
...     net[1].training, net[2].training, net[0].training
(True, True, False)
>>> net.training, net[1].track_running_stats
(True, True)
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

from i2i.inference.options import MODES
from i2i.models.layers import LogicalOrderDropout, dropout_in_logical_order


def _logical_order_forward(self: nn.Dropout, x: Tensor) -> Tensor:
    return dropout_in_logical_order(x, self.p) if self.training else x


def check_mode(mode: str) -> str:
    """Return ``mode`` when it is one of :data:`MODES`, else raise ``ValueError``.

    >>> check_mode("eval")
    'eval'
    """
    if mode not in MODES:
        raise ValueError(f"test mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


@contextmanager
def set_test_mode(module: nn.Module, mode: str) -> Iterator[nn.Module]:
    """Put ``module`` in test ``mode`` for the ``with`` block, then restore every flag.

    ``eval``: every submodule in eval mode. ``paper``: eval mode except dropout layers and
    batch-norm layers, which use batch statistics without updating their running averages.
    """
    check_mode(mode)
    flags = [(m, m.training) for m in module.modules()]
    tracking: list[tuple[_BatchNorm, bool]] = []
    reordered: list[nn.Dropout] = []
    module.eval()
    if mode == "paper":
        for m in module.modules():
            if isinstance(m, _DropoutNd):
                m.train()
                if type(m) in (nn.Dropout, LogicalOrderDropout) and "forward" not in vars(m):
                    m.forward = types.MethodType(_logical_order_forward, m)
                    reordered.append(m)
            elif isinstance(m, _BatchNorm):
                m.train()
                tracking.append((m, m.track_running_stats))
                m.track_running_stats = False  # batch statistics, running averages untouched
    try:
        yield module
    finally:
        for m in reordered:
            del m.forward  # back to the class's own forward
        for m, tracked in tracking:
            m.track_running_stats = tracked
        for m, training in flags:
            m.training = training
