"""The paper's generators and discriminators: sizes, parameter counts, fields, noise, norms."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from torch import nn

from i2i.models import (
    PatchDiscriminator,
    UNetGenerator,
    encoder_decoder_256,
    init_weights,
    load_encoder_weights,
    patch70,
    receptive_field,
    unet_256,
    unet_timm,
)
from i2i.testing import ConformanceError, measure_receptive_field


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# --- parameter counts against the official pix2pix code ------------------------------------


def test_unet_256_parameter_count_matches_official_code():
    assert n_params(unet_256(3, 3, norm="batch")) == 54_413_955


def test_patch70_parameter_count_matches_official_code():
    assert n_params(patch70(6, norm="batch")) == 2_768_705


# --- discriminator receptive fields: computed, declared and measured -----------------------

FIELD_NAMES = ["pixel", "patch16", "patch34", "patch70", "image286"]


def _field_from_name(name: str) -> int:
    return 1 if name == "pixel" else int(re.search(r"\d+$", name).group())


@pytest.mark.parametrize("name", FIELD_NAMES)
def test_receptive_field_measured_equals_name(catalog, name):
    entry = catalog.discriminators.get(name)
    disc = entry.build(in_channels=3, ndf=4)
    expected = _field_from_name(name)
    assert measure_receptive_field(disc, 3) == expected
    assert disc.receptive_field == expected
    assert entry.meta["receptive_field"] == expected


def test_receptive_field_arithmetic():
    assert receptive_field([(4, 2)] * 5 + [(4, 1)] * 2) == 286
    assert receptive_field([(3, 1), (3, 1)]) == 5
    assert receptive_field([(7, 2), (3, 2)]) == 11


@pytest.mark.parametrize(
    "module, expected",
    [
        (nn.Conv2d(2, 1, 5), 5),
        (nn.Conv2d(2, 1, 3, dilation=2), 5),
        (nn.Sequential(nn.Conv2d(2, 3, 3, stride=2), nn.ReLU(), nn.Conv2d(3, 1, 3)), 7),
    ],
)
def test_measure_receptive_field_on_known_modules(module, expected):
    assert measure_receptive_field(module, 2) == expected


def test_measure_receptive_field_ignores_instance_norm_coupling():
    disc = PatchDiscriminator(3, n_layers=2, ndf=4, norm="instance")
    assert measure_receptive_field(disc, 3) == 34


def test_measure_receptive_field_rejects_global_pooling():
    disc = nn.Sequential(nn.Conv2d(3, 1, 3), nn.AdaptiveAvgPool2d(1))
    with pytest.raises(ConformanceError, match="wider than"):
        measure_receptive_field(disc, 3, max_size=128)


def test_aliases_resolve(catalog):
    assert catalog.discriminators.get("patch").name == "patch70"
    assert catalog.discriminators.get("image").name == "image286"
    assert catalog.generators.get("unet").name == "unet_256"
    assert catalog.generators.get("encoder_decoder").name == "encoder_decoder_256"


def test_patch70_logits_grid_on_256():
    d = patch70(6, ndf=4)
    assert d(torch.zeros(1, 6, 256, 256)).shape == (1, 1, 30, 30)


def test_discriminator_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"expected \(B, 6, H, W\), got \(1, 3, 64, 64\)"):
        patch70(6, ndf=4)(torch.zeros(1, 3, 64, 64))


# --- generators ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(512, 512), (256, 512)])
def test_unet_256_is_fully_convolutional(shape):
    g = unet_256(3, 2, ngf=4).eval()
    with torch.no_grad():
        out = g(torch.zeros(1, 3, *shape))
    assert out.shape == (1, 2, *shape)


def test_unet_rejects_sizes_that_are_not_multiples():
    with pytest.raises(ValueError, match="multiples of 256, got 200 x 256"):
        unet_256(3, 3, ngf=4)(torch.zeros(1, 3, 200, 256))


def test_unet_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"expected \(B, 1, H, W\), got \(1, 3, 256, 256\)"):
        unet_256(1, 3, ngf=4)(torch.zeros(1, 3, 256, 256))


def test_paper_layer_plan():
    g = unet_256(3, 3, ngf=64)
    enc = [m.out_channels for m in g.modules() if isinstance(m, nn.Conv2d)]
    dec = [m.out_channels for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert enc == [64, 128, 256, 512, 512, 512, 512, 512]
    assert dec == [512, 512, 512, 512, 256, 128, 64, 3]
    dec_in = [m.in_channels for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert dec_in == [512, 1024, 1024, 1024, 1024, 512, 256, 128]  # skips double the input
    assert isinstance(g.decoder[-1][-1], nn.Tanh)
    leaky = [m for m in g.encoder.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(leaky) == 7 and all(m.negative_slope == 0.2 for m in leaky)


def test_encoder_decoder_has_no_skips():
    g = encoder_decoder_256(3, 3, ngf=64)
    dec_in = [m.in_channels for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert dec_in == [512, 512, 512, 512, 512, 256, 128, 64]
    assert n_params(g) < n_params(unet_256(3, 3, ngf=64))


def test_unet_skip_carries_detail_encoder_decoder_cannot():
    """A U-Net output pixel sees its input pixel through the outermost skip, undiluted."""
    torch.manual_seed(0)
    for make, skips in ((unet_256, True), (encoder_decoder_256, False)):
        g = make(1, 1, ngf=4, dropout=False).eval()
        x = (torch.rand(1, 1, 256, 256) * 2 - 1).requires_grad_()
        g(x)[0, 0, 128, 128].backward()
        grad = x.grad[0, 0].abs()
        # through a 1x1 bottleneck every input pixel matters about equally; skips concentrate
        # the sensitivity near the output pixel
        local = grad[120:136, 120:136].mean() / grad.mean()
        assert (local > 20) == skips, (make.__name__, float(local))


def test_dropout_is_the_noise_train_vs_eval():
    torch.manual_seed(0)
    g = unet_256(3, 3, ngf=4)
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    g.train()
    assert not torch.allclose(g(x), g(x))
    g.eval()
    assert torch.equal(g(x), g(x))
    g_plain = unet_256(3, 3, ngf=4, dropout=False).train()
    assert torch.equal(g_plain(x), g_plain(x))


def test_dropout_sits_in_the_first_three_decoder_blocks():
    g = unet_256(3, 3, ngf=4)
    with_dropout = [any(isinstance(m, nn.Dropout) for m in block) for block in g.decoder]
    assert with_dropout == [True, True, True, False, False, False, False, False]
    assert all(m.p == 0.5 for m in g.modules() if isinstance(m, nn.Dropout))
    assert not any(
        isinstance(m, nn.Dropout) for m in unet_256(3, 3, ngf=4, dropout=False).modules()
    )


def _norms(m: nn.Module, kind: type) -> list[nn.Module]:
    return [x for x in m.modules() if isinstance(x, kind)]


@pytest.mark.parametrize(
    "build", [lambda n: unet_256(3, 3, ngf=4, norm=n), lambda n: patch70(6, ndf=4, norm=n)]
)
def test_norm_options(build):
    batch, inst, none = build("batch"), build("instance"), build("none")
    assert _norms(batch, nn.BatchNorm2d) and not _norms(batch, nn.InstanceNorm2d)
    inorms = _norms(inst, nn.InstanceNorm2d)
    assert inorms and not _norms(inst, nn.BatchNorm2d)
    assert all(not m.affine and not m.track_running_stats for m in inorms)
    assert not _norms(none, nn.BatchNorm2d) and not _norms(none, nn.InstanceNorm2d)
    convs = (nn.Conv2d, nn.ConvTranspose2d)
    # use_bias = norm != "batch", as the official code (the output convs always have a bias)
    assert sum(m.bias is None for m in batch.modules() if isinstance(m, convs)) > 0
    for model in (inst, none):
        assert all(m.bias is not None for m in model.modules() if isinstance(m, convs))
    assert len(_norms(batch, nn.BatchNorm2d)) == len(inorms)


@pytest.mark.parametrize(("batch", "affine"), [(1, False), (3, False), (2, True)])
def test_instance_norm_keeps_channels_last_and_computes_what_pytorchs_does(batch, affine):
    from i2i.models.layers import LayoutKeepingInstanceNorm2d

    torch.manual_seed(0)
    ours = LayoutKeepingInstanceNorm2d(6, affine=affine)
    stock = nn.InstanceNorm2d(6, affine=affine)
    if affine:
        with torch.no_grad():
            ours.weight.uniform_(0.5, 1.5), ours.bias.uniform_(-0.5, 0.5)
        stock.load_state_dict(ours.state_dict())  # the same state dict, both ways
    x = torch.randn(batch, 6, 9, 7) * 3 + 1
    x_cl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    x_ref = x.clone().requires_grad_()
    y, y_ref = ours(x_cl), stock(x_ref)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert ours(x).is_contiguous()  # NCHW in, NCHW out
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(y_ref)
    y.backward(g), y_ref.backward(g)
    torch.testing.assert_close(x_cl.grad, x_ref.grad, atol=1e-5, rtol=1e-5)


def test_a_channels_last_instance_norm_network_stays_channels_last():
    """Every conv of a channels_last ResNet generator gets channels_last input: none reorders."""
    from i2i_cyclegan import resnet_6blocks

    from i2i.models.layers import set_speedups

    net = resnet_6blocks(3, 3, ngf=4).to(memory_format=torch.channels_last)
    seen: list[bool] = []
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.register_forward_pre_hook(
                lambda _m, args: seen.append(
                    args[0].is_contiguous(memory_format=torch.channels_last)
                )
            )
    x = torch.randn(1, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    net(x)
    assert seen and all(seen)
    seen.clear()
    set_speedups(net, False)  # PyTorch's own instance norm: NCHW after every norm
    net(x)
    assert not all(seen)


def test_resnet_convolutions_get_bf16_inputs_under_autocast_with_the_same_results():
    """CPU autocast pads in fp32; the ResNet generator's pads keep bf16, so no convolution of
    its blocks receives an fp32 tensor to cast, and the outputs are the stock pads' bit for bit
    (padding copies values). The input gradients differ by rounding (the border sums in bf16):
    far less than bf16 autocast's own distance to an fp32 backward pass."""
    from i2i_cyclegan import resnet_6blocks

    from i2i.models.layers import DtypeKeepingReflectionPad2d, set_speedups

    torch.manual_seed(0)
    net = resnet_6blocks(3, 3, ngf=8).to(memory_format=torch.channels_last)
    stock = resnet_6blocks(3, 3, ngf=8).to(memory_format=torch.channels_last)
    stock.load_state_dict(net.state_dict())
    pads = [m for m in stock.modules() if isinstance(m, DtypeKeepingReflectionPad2d)]
    assert len(pads) == 14  # two per block, one at each end
    for m in pads:
        m.speedups = False  # the stock pad, every other speed path as in net
    dtypes: list[torch.dtype] = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.stride == (1, 1):
            m.register_forward_pre_hook(lambda _m, args: dtypes.append(args[0].dtype))
    x = torch.rand(1, 3, 32, 32).contiguous(memory_format=torch.channels_last) * 2 - 1

    def run(model: nn.Module, bf16: bool) -> tuple[torch.Tensor, torch.Tensor]:
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            y = model(xi)
        y.float().square().sum().backward()
        return y, xi.grad

    (y_new, g_new), (y_stock, g_stock) = run(net, True), run(stock, True)
    assert dtypes == [torch.bfloat16] * 12
    assert torch.equal(y_new, y_stock)
    dtypes.clear()
    _, g_fp32 = run(stock, False)
    bf16_error = (g_stock - g_fp32).abs().mean()
    assert (g_new - g_stock).abs().mean() < 0.2 * bf16_error
    assert (g_new - g_fp32).abs().mean() < 1.1 * bf16_error
    set_speedups(net, False)
    with torch.autocast("cpu", torch.bfloat16):
        net(x)
    assert dtypes == [torch.float32] * 12  # the stock pads: fp32 under CPU autocast


@pytest.mark.parametrize("net", ["unet_timm", "resnet_6blocks"])
def test_generators_with_dropout_draw_one_mask_per_seed_in_either_layout(net):
    """With dropout on, one seed gives the same outputs and gradients (to rounding) with NCHW
    and channels_last activations: a run resumed in the other layout trains the same course."""
    from i2i_cyclegan import resnet_6blocks

    torch.manual_seed(0)
    if net == "unet_timm":
        nchw = unet_timm(3, 3, encoder="test_resnet", ngf=8, norm="instance")
    else:
        nchw = resnet_6blocks(3, 3, ngf=4, dropout=True)
    nhwc = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 32, 32)
    results = []
    for model, inp in ((nchw, x), (nhwc, x.contiguous(memory_format=torch.channels_last))):
        inp = inp.clone().requires_grad_()
        torch.manual_seed(1)
        y = model(inp)
        y.square().sum().backward()
        results.append((y.detach(), inp.grad, *(p.grad for p in model.parameters())))
    for got, want in zip(*results, strict=True):  # rounding apart: the layouts' conv kernels
        assert (got - want).abs().max() <= 1e-3 * max(1.0, want.abs().max().item())


def test_unknown_norm_lists_the_choices():
    with pytest.raises(ValueError, match="batch, instance, none; got 'group'"):
        unet_256(3, 3, norm="group")
    with pytest.raises(ValueError, match="got 'layer'"):
        patch70(6, norm="layer")


def test_init_is_pix2pix_normal():
    torch.manual_seed(0)
    g = UNetGenerator(3, 3, num_downs=6, ngf=32)
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    w = torch.cat([m.weight.flatten() for m in convs])
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.02) < 1e-3
    bns = _norms(g, nn.BatchNorm2d)
    gamma = torch.cat([m.weight for m in bns])
    assert abs(gamma.mean().item() - 1) < 5e-3 and abs(gamma.std().item() - 0.02) < 5e-3
    biases = [m.bias for m in g.modules() if getattr(m, "bias", None) is not None]
    assert all(torch.count_nonzero(b) == 0 for b in biases)


def test_init_weights_returns_module():
    m = nn.Conv2d(2, 2, 3)
    assert init_weights(m) is m


def test_invalid_sizes_and_channels_rejected():
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        unet_256(0, 3)
    with pytest.raises(ValueError, match="num_downs must be at least 2"):
        UNetGenerator(3, 3, num_downs=1)
    with pytest.raises(ValueError, match="n_layers must be at least 1"):
        PatchDiscriminator(3, n_layers=0)


# --- unet_timm -----------------------------------------------------------------------------


def test_unet_timm_defaults_to_resnet18_without_download(monkeypatch):
    import timm.models._builder as builder

    def no_download(*args, **kwargs):
        raise AssertionError("unet_timm tried to load pretrained weights")

    monkeypatch.setattr(builder, "load_pretrained", no_download)
    g = unet_timm(1, 2, ngf=8)
    assert g.encoder_name == "resnet18" and g.size_multiple == 32
    with torch.no_grad():
        assert g.eval()(torch.zeros(1, 1, 64, 96)).shape == (1, 2, 64, 96)


def test_unet_timm_rejects_bad_sizes_and_unknown_encoders():
    g = unet_timm(3, 3, encoder="test_efficientnet", ngf=4)
    with pytest.raises(ValueError, match="multiples of 32, got 48 x 64"):
        g(torch.zeros(1, 3, 48, 64))
    with pytest.raises(ValueError, match="no_such_net"):
        unet_timm(3, 3, encoder="no_such_net")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_unet_timm_loads_local_weights(tmp_path, suffix):
    src = unet_timm(3, 3, encoder="test_efficientnet", ngf=4)
    state = {k: v.clone() for k, v in src.encoder.state_dict().items()}
    path = tmp_path / f"enc{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, path)
    g = unet_timm(3, 3, encoder="test_efficientnet", ngf=4, weights=str(path))
    loaded = g.encoder.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    # a 1-channel encoder gets the first conv adapted, the rest as saved
    g1 = unet_timm(1, 3, encoder="test_efficientnet", ngf=4, weights=str(path))
    first = g1.encoder.state_dict()["conv_stem.weight"]
    assert first.shape[1] == 1
    assert torch.allclose(first[:, 0], state["conv_stem.weight"].sum(1))
    assert torch.equal(g1.encoder.state_dict()["bn1.weight"], state["bn1.weight"])


def test_unet_timm_weight_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        unet_timm(3, 3, encoder="test_efficientnet", weights=str(tmp_path / "missing.pt"))
    other = unet_timm(3, 3, encoder="test_resnet", ngf=4).encoder.state_dict()
    path = tmp_path / "resnet.pt"
    torch.save(other, path)
    with pytest.raises(ValueError, match="resnet.pt"):
        unet_timm(3, 3, encoder="test_efficientnet", weights=str(path))
    enc = unet_timm(3, 3, encoder="test_efficientnet", ngf=4).encoder
    partial = dict(list(enc.state_dict().items())[5:])
    torch.save(partial, path)
    with pytest.raises(ValueError, match="missing"):
        load_encoder_weights(enc, path, name="test_efficientnet")


def test_a_unet_timm_checkpoint_loads_without_its_encoder_weights_file(tmp_path):
    """The encoder weights file seeds training only: rebuilt from a checkpoint, the network
    takes every weight from the checkpoint, even where that file is gone (another machine)."""
    from i2i import catalog
    from i2i.engine.checkpoint import build_role, load_checkpoint, role_spec, save_checkpoint

    path = tmp_path / "enc.pt"
    torch.save(unet_timm(3, 3, encoder="test_efficientnet", ngf=4).encoder.state_dict(), path)
    options = {"encoder": "test_efficientnet", "ngf": 4, "weights": str(path)}
    trained = unet_timm(3, 3, **options)
    spec = role_spec("generator", "unet_timm", options, 3, 3)
    save_checkpoint(
        tmp_path / "run",
        step=1,
        epoch=0,
        config={"task": "colorize", "generator": "unet_timm"},
        weights={"generator": trained.state_dict()},
        extra={"roles": {"generator": spec}, "translators": {"AtoB": "generator"}},
    )
    path.unlink()
    rebuilt = build_role(load_checkpoint(tmp_path / "run"), "generator", catalog())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(rebuilt.eval()(x), trained.eval()(x))
