"""Inference with convolution weights pre-packed for oneDNN: same outputs, nothing lost."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from i2i.catalog import Catalog
from i2i.engine import devices, tuning
from i2i.engine.tuning import CpuFeatures
from i2i.inference import load
from i2i.inference.packing import (
    SUBPIXEL_KINDS,
    is_packed,
    pack_convolutions,
    packing_available,
    unpack_convolutions,
)
from i2i.models import UNetGenerator
from i2i.models.layers import set_speedups
from i2i.plugins import make_plugin_manager
from tests.test_translate import make_checkpoint

pytestmark = pytest.mark.skipif(
    not packing_available(), reason="this torch build has no oneDNN packed convolutions"
)
AVX2 = CpuFeatures("AMD EPYC (Zen 3)", bf16=False, amx=False, avx512_bf16=False, avx2=True)
AMX = CpuFeatures("Intel Xeon (SPR)", bf16=True, amx=True, avx512_bf16=True, avx2=True, avx512=True)  # fmt: skip
ZEN4_SLOW_BF16 = CpuFeatures("AMD EPYC (Zen 4)", bf16=True, amx=False, avx512_bf16=True, avx2=True, avx512=True)  # fmt: skip


def unet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = UNetGenerator(3, 3, num_downs=5, ngf=8).eval()
    for m in net.modules():  # non-trivial running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net


@pytest.mark.parametrize("channels_last", [True, False])
def test_a_packed_unet_gives_the_same_fp32_outputs_and_unpacks_bit_for_bit(channels_last):
    net = unet()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    with torch.no_grad():
        expected = net(x)
        assert pack_convolutions(net, channels_last=channels_last) == 10
        assert is_packed(net)
        got = net(x)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)
    assert unpack_convolutions(net) == 10 and not is_packed(net)
    after = net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    conv = net.encoder[1][1]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    with torch.no_grad():
        assert torch.equal(net(x), expected)


def test_packed_bf16_weights_run_close_to_autocast_and_take_no_extra_memory():
    net = unet()
    ref = unet()
    set_speedups(ref, False)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        expected = ref(x).float()
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.to(torch.bfloat16)
    pack_convolutions(net)
    conv = net.encoder[2][1]
    assert conv.weight.numel() == 0 and conv.weight.dtype == torch.bfloat16  # no second copy
    with torch.no_grad():
        got = net(x).float()
    assert (got - expected).abs().max() < 0.02  # bf16 rounding, different kernels


def test_layers_it_cannot_pack_are_left_alone_and_grouped_ones_round_trip():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
        nn.Conv2d(4, 4, 3, padding="same"),
        nn.Conv2d(4, 8, 3, padding=1, groups=2),
        nn.ConvTranspose2d(8, 4, 4, 2, 1, groups=2),
        nn.ConvTranspose2d(4, 3, 4, 2, 1),
    )
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        expected = net(x)
        assert pack_convolutions(net) == 2
        torch.testing.assert_close(net(x), expected, atol=1e-5, rtol=1e-4)
    assert net[0].weight.shape == (4, 3, 3, 3) and net[3].weight.shape == (8, 2, 4, 4)
    assert net[2].weight.numel() == 0 and net[4].weight.numel() == 0
    assert unpack_convolutions(net) == 2
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())


def test_a_packed_unet_saves_loads_copies_and_converts_as_the_model_it_is():
    net, other = unet(0), unet(1)
    plain = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected, expected_other = net(x), other(x)
    pack_convolutions(net, channels_last=False)
    saved = net.state_dict()
    assert saved.keys() == plain.keys()
    # the plain weights, not the empty placeholders
    assert all(torch.equal(saved[k], v) for k, v in plain.items())

    twin = copy.deepcopy(net)
    twin.load_state_dict(other.state_dict())  # packs what it loads
    assert is_packed(twin) and is_packed(net)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), expected_other, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(net(x), expected, atol=2e-5, rtol=1e-4)  # the copy is its own

    wrong = dict(saved, **{"encoder.1.1.weight": torch.zeros(16, 8, 3, 3)})
    with pytest.raises(RuntimeError, match="size mismatch for encoder.1.1.weight"):
        net.load_state_dict(wrong)

    net.to(memory_format=torch.channels_last)  # unpacked, converted, packed again
    assert is_packed(net) and net.encoder[1][1].weight.numel() == 0
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected, atol=2e-5, rtol=1e-4)
    with pytest.raises(TypeError, match="state_dict"):
        torch.save(net, io.BytesIO())
    net.double()  # float64 cannot be packed: plain layers from then on
    assert not is_packed(net) and net.encoder[1][1].weight.dtype == torch.float64
    with torch.no_grad():
        torch.testing.assert_close(net(x.double()).float(), expected, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [True, False])
def test_a_packed_transposed_convolution_gives_its_result_at_every_size(channels_last, dtype):
    """4 x 4 stride-2 layers: packed for the first input's size, right at the others too; with
    bf16 weights and every sub-pixel kind allowed this thin one runs as four sub-pixel phases
    at 8-16 px (the deep kind's sizes) and from 32 px, transposed at 4 px."""
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(16, 8, 4, 2, 1).to(dtype)
    plain = {k: v.clone() for k, v in layer.state_dict().items()}
    sizes = ((8, 8), (16, 12), (4, 4), (32, 8), (9, 15), (32, 40))
    inputs = [torch.randn(2, 16, h, w) for h, w in sizes]
    inputs.append(inputs[0][:1])  # another batch size
    with torch.no_grad():
        expected = [layer(x.to(dtype)).float() for x in inputs]
        pack_convolutions(layer, channels_last=channels_last, subpixel=SUBPIXEL_KINDS)
        for x, want in zip(inputs, expected, strict=True):
            got = layer(x).float()
            assert got.shape == want.shape
            if dtype == torch.float32:
                torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
            else:  # other kernels and summation orders, bf16 outputs
                assert (got - want).abs().max() < 0.05 * want.abs().max()
    assert all(torch.equal(layer.state_dict()[k], v) for k, v in plain.items())
    unpack_convolutions(layer)
    assert all(torch.equal(layer.state_dict()[k], v) for k, v in plain.items())


class _OneDnnOps(TorchDispatchMode):
    """Counts the oneDNN convolution ops that run: transposed or plain (the sub-pixel form)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.name()
        if name.startswith("mkldnn::_convolution"):
            self.ops.append("transposed" if "transpose" in name else "subpixel")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("kinds", [(), ("deep",), ("thin",), SUBPIXEL_KINDS])
def test_bf16_transposed_layers_run_as_subpixel_phases_of_the_kinds_asked_for(kinds):
    """``deep``: inputs of 8-16 px; ``thin``: fewer than 16 output channels, from 32 px. The
    same result to rounding either way, and never in fp32."""
    torch.manual_seed(0)
    wide, thin = nn.ConvTranspose2d(8, 16, 4, 2, 1), nn.ConvTranspose2d(8, 3, 4, 2, 1)
    for layer in (wide, thin):
        for size in (4, 8, 16, 32):
            for dtype in (torch.bfloat16, torch.float32):
                net = copy.deepcopy(layer).to(dtype)
                x = torch.randn(1, 8, size, size).to(dtype)
                with torch.no_grad():
                    want = net(x).float()
                    pack_convolutions(net, subpixel=kinds)
                    with _OneDnnOps() as seen:
                        got = net(x).float()
                deep = "deep" in kinds and 8 <= size <= 16
                subpixel = dtype == torch.bfloat16 and (
                    deep or ("thin" in kinds and layer is thin and size >= 32)
                )
                assert seen.ops == ["subpixel" if subpixel else "transposed"], (layer, size)
                assert (got - want).abs().max() <= 0.02 * want.abs().max()


def test_unknown_subpixel_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown sub-pixel kinds"):
        pack_convolutions(nn.ConvTranspose2d(4, 4, 4, 2, 1), subpixel=("everything",))


def test_packing_follows_the_machines_subpixel_choice_and_keeps_it_through_copies(amx):
    amx(AMX, subpixel={"deep": 0.8, "thin": 2.5})
    torch.manual_seed(0)
    net = nn.Sequential(nn.ConvTranspose2d(8, 3, 4, 2, 1)).to(torch.bfloat16)
    x = torch.randn(1, 8, 32, 32, dtype=torch.bfloat16)
    with torch.no_grad():
        pack_convolutions(net)
        for copy_of in (lambda n: n, copy.deepcopy, lambda n: n.float().bfloat16()):
            with _OneDnnOps() as seen:
                copy_of(net)(x)
            assert seen.ops == ["subpixel"]


def test_weights_loaded_into_a_packed_layer_are_its_own_copy():
    """Packing waits for the first call, so what load_state_dict hands over must not stay the
    caller's tensor."""
    torch.manual_seed(0)
    layer, source = nn.Conv2d(4, 8, 3, padding=1), nn.Conv2d(4, 8, 3, padding=1)
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        expected = source(x)
        pack_convolutions(layer, channels_last=False)
        state = source.state_dict()
        layer.load_state_dict(state)
        state["weight"].zero_()  # the caller reuses its tensors
        state["bias"].zero_()
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def module_catalog():
    return Catalog.from_plugin_manager(make_plugin_manager(load_entrypoints=False))


@pytest.fixture
def amx(monkeypatch, tmp_path):
    monkeypatch.setenv("I2I_CACHE", str(tmp_path / "cache"))

    def use(cpu: CpuFeatures, subpixel: dict[str, float] | None = None) -> None:
        monkeypatch.setattr(tuning, "cpu_features", lambda: cpu)
        monkeypatch.setattr(tuning, "subpixel_speedups", lambda **_: dict(subpixel or {}))
        monkeypatch.setattr(devices, "cpu_bf16_supported", lambda: cpu.bf16)
        tuning.forget_choices()

    yield use
    tuning.forget_choices()


def test_auto_packs_bf16_where_it_is_native_and_fp32_on_request(amx, monkeypatch):
    cpu = torch.device("cpu")
    amx(AMX)
    assert devices.resolve_prepack(None, cpu, "bf16") is True
    assert devices.resolve_prepack(None, cpu, "fp32") is False
    assert devices.resolve_prepack(True, cpu, "fp32") is True
    assert devices.resolve_prepack(False, cpu, "bf16") is False
    assert devices.resolve_prepack(None, cpu, "fp32", batch=1) is True  # AVX-512: one image
    assert devices.resolve_prepack(None, cpu, "fp32", batch=8) is False
    assert (
        "pre-packed bf16 and fp32 (batch 1) inference weights" in tuning.speed_choices().describe()
    )
    amx(AVX2)  # no native bf16: nothing packed unless asked
    assert devices.resolve_prepack(None, cpu, "fp32") is False
    assert devices.resolve_prepack(None, cpu, "fp32", batch=1) is False  # AVX2: sizes cost 0.5x
    assert devices.resolve_prepack(None, cpu, "bf16") is False
    assert devices.resolve_prepack(True, cpu, "fp32") is True
    assert devices.resolve_prepack(True, torch.device("meta"), "fp32") is False
    monkeypatch.setattr(tuning, "bf16_conv_speedup", lambda: 0.6)
    amx(ZEN4_SLOW_BF16)  # fp32 chosen by the measurement; bf16 on request is packed
    assert tuning.speed_choices().precision == "fp32"
    assert devices.resolve_prepack(None, cpu, "bf16") is True
    assert devices.resolve_prepack(None, cpu, "fp32") is False


def test_translate_packs_its_own_weights_and_switches_precision_back_exactly(
    tmp_path, module_catalog, amx
):
    """A Translator that owns its weights (bf16_weights, as `i2i translate` builds it) packs
    them where auto says so; a user's module (the API default) is never touched; switching to
    fp32 unpacks and reloads the checkpoint's exact fp32 weights (packed on request);
    prepack=False keeps the plain path with the exact autocast result."""
    amx(AMX)
    make_checkpoint(tmp_path, module_catalog, test_mode="eval")
    img = torch.rand(3, 256, 256)
    fp32 = load(tmp_path, catalog=module_catalog, precision="fp32")
    expected_fp32 = fp32.translate(img)
    plain = load(
        tmp_path, catalog=module_catalog, precision="bf16", bf16_weights=True, prepack=False
    )
    expected_bf16 = plain.translate(img)
    assert not is_packed(plain.generator)

    api = load(tmp_path, catalog=module_catalog, precision="bf16")
    assert not is_packed(api.generator)
    tr = load(tmp_path, catalog=module_catalog, precision="bf16", bf16_weights=True)
    assert is_packed(tr.generator) and tr.describe_speed().endswith("packed weights")
    assert (tr.translate(img) - expected_bf16).abs().max() < 0.03
    tr.precision = "fp32"
    assert not is_packed(tr.generator)
    tr.prepack = False  # auto would pack fp32 for this one image (AVX-512): exact without
    assert torch.equal(tr.translate(img), expected_fp32)
    tr.prepack = True  # fp32 packed on request: the same weights, the same result to rounding
    assert is_packed(tr.generator)
    weights = tr.generator.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in fp32.generator.state_dict().items())
    torch.testing.assert_close(tr.translate(img), expected_fp32, atol=1e-5, rtol=0)
    tr.prepack = None
    tr.precision = "bf16"
    assert is_packed(tr.generator)
    tr.prepack = False
    assert not is_packed(tr.generator) and torch.equal(tr.translate(img), expected_bf16)


@pytest.mark.parametrize(
    ("cpu", "first_batch", "packed"), [(AMX, 1, True), (AMX, 2, False), (AVX2, 1, False)]
)
def test_fp32_translation_packs_where_its_first_input_is_one_image_with_avx512(
    tmp_path, module_catalog, amx, cpu, first_batch, packed
):
    """fp32 at auto packs only on CPUs whose oneDNN has AVX-512 and only where the first call
    is one image (the `i2i translate` default); the decision is kept for later calls, and
    the outputs are those of the plain weights."""
    amx(cpu)
    make_checkpoint(tmp_path, module_catalog, test_mode="eval")
    plain = load(tmp_path, catalog=module_catalog, precision="fp32", prepack=False)
    tr = load(tmp_path, catalog=module_catalog, precision="fp32", bf16_weights=True)
    assert not is_packed(tr.generator)  # nothing decided before the first input
    first = torch.rand(first_batch, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(tr.run(first), plain.run(first), atol=1e-5, rtol=0)
    assert is_packed(tr.generator) is packed
    assert tr.describe_speed().endswith("packed weights") is packed
    other = torch.rand(3 - first_batch, 3, 64, 64) * 2 - 1  # the other batch size
    torch.testing.assert_close(tr.run(other), plain.run(other), atol=1e-5, rtol=0)
    assert is_packed(tr.generator) is packed
    weights = [m.weight for m in tr.generator.modules() if hasattr(m, "weight")]
    tr.prepack, tr.precision = None, "fp32"  # the same settings again: nothing to redo
    assert is_packed(tr.generator) is packed
    now = [m.weight for m in tr.generator.modules() if hasattr(m, "weight")]
    assert all(a is b for a, b in zip(weights, now, strict=True))  # not unpacked and redone
    torch.testing.assert_close(tr.run(other), plain.run(other), atol=1e-5, rtol=0)
    tr.prepack = False
    assert not is_packed(tr.generator)
    tr.run(first[:1])
    assert not is_packed(tr.generator)


@pytest.mark.parametrize("called_before", [True, False])
def test_torch_compile_runs_a_packed_unet_including_its_subpixel_layers(called_before):
    """Compiled after an eager call (weights packed, sub-pixel phases made) or before any
    (still plain weights: the graph keeps the stock convolutions)."""
    net = unet().to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 32, 32) * 2 - 1  # the decoder sees 8 and 16 px: the sub-pixel sizes
    with torch.no_grad():
        expected = net(x)
        for m in net.modules():  # bf16 weights: the sub-pixel path's precision
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.to(torch.bfloat16)
        pack_convolutions(net, channels_last=True, subpixel=SUBPIXEL_KINDS)
        if called_before:
            expected = net(x).float()
        compiled = torch.compile(net, dynamic=True, backend="eager")  # traced with symbolic sizes
        got = compiled(x).float()
    if called_before:
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    else:
        assert (got - expected).abs().max() < 0.05  # bf16 weights against the fp32 net
