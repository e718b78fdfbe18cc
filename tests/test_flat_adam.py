"""make_adam's fused Adam: the same update as Adam on channels_last weights, without copies."""

from __future__ import annotations

import torch

from i2i.engine.devices import make_adam
from i2i.engine.flat_adam import FlatFusedAdam


def test_flat_fused_adam_steps_channels_last_weights_like_adam():
    torch.manual_seed(0)
    shape = (4, 3, 4, 4)
    flat = torch.nn.Parameter(torch.randn(shape).contiguous(memory_format=torch.channels_last))
    plain = torch.nn.Parameter(flat.detach().clone(memory_format=torch.contiguous_format))
    opts = [
        FlatFusedAdam([flat], lr=0.1, betas=(0.5, 0.999), fused=True),
        torch.optim.Adam([plain], lr=0.1, betas=(0.5, 0.999), foreach=False),
    ]
    for _ in range(3):
        grad = torch.randn(shape)
        flat.grad = grad.contiguous(memory_format=torch.channels_last)
        plain.grad = grad.clone()
        for opt in opts:
            opt.step()
    assert flat.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(flat, plain, atol=1e-6)
    state = opts[0].state_dict()["state"][0]
    assert state["exp_avg"].shape == shape


def test_make_adam_state_dicts_load_into_plain_adam_and_back():
    """Checkpoints written before make_adam used FlatFusedAdam still load, and the other way."""
    net = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    opt = make_adam(net.parameters(), lr=1e-3, betas=(0.5, 0.999), device=torch.device("cpu"))
    net(torch.randn(1, 3, 8, 8)).sum().backward()
    opt.step()
    plain = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.999))
    plain.load_state_dict(opt.state_dict())
    again = make_adam(net.parameters(), lr=1e-3, betas=(0.5, 0.999), device=torch.device("cpu"))
    again.load_state_dict(plain.state_dict())
    again.step()
    assert net.weight.is_contiguous(memory_format=torch.channels_last)


def test_moments_loaded_from_an_nchw_run_take_the_channels_last_layout():
    """A run saved with NCHW weights and resumed channels_last keeps the flat, copy-free path."""
    nchw = torch.nn.Conv2d(3, 4, 3)
    opt = make_adam(nchw.parameters(), lr=1e-3, betas=(0.5, 0.999), device=torch.device("cpu"))
    nchw(torch.randn(1, 3, 8, 8)).sum().backward()
    opt.step()
    saved = opt.state_dict()
    nhwc = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    nhwc.load_state_dict(nchw.state_dict())
    again = make_adam(nhwc.parameters(), lr=1e-3, betas=(0.5, 0.999), device=torch.device("cpu"))
    again.load_state_dict(saved)
    moments = again.state[nhwc.weight]
    assert moments["exp_avg"].is_contiguous(memory_format=torch.channels_last)
    assert moments["exp_avg_sq"].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(moments["exp_avg"], opt.state[nchw.weight]["exp_avg"])
    assert again.state_dict()["state"][0]["exp_avg"].shape == (4, 3, 3, 3)
