"""`i2i convert --from official`: official pix2pix/CycleGAN weights become i2i checkpoints.

The official networks are rebuilt in tests/official_nets.py with the official module trees;
their state dicts are saved with ``torch.save`` as the official code saves them, converted, and
the i2i networks rebuilt from the converted checkpoint must compute the same outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

import i2i
from i2i.catalog import Catalog
from i2i.cli import build_cli
from i2i.convert import (
    CONVERSION_FILE,
    ConvertError,
    OfficialFileError,
    OfficialOptions,
    convert_official,
)
from i2i.engine.checkpoint import build_role, build_translator, load_checkpoint
from i2i.engine.runner import RUN_CONFIG_FILE
from i2i.plugins import make_plugin_manager
from tests.official_nets import ResnetGenerator, define_D, define_G, randomize
from tests.test_reliability_faults import hostile_bytes

NGF = 8  # tiny networks, the official module trees


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog.from_plugin_manager(make_plugin_manager(load_entrypoints=False))


@pytest.fixture(scope="module")
def cli():
    return build_cli(make_plugin_manager(load_entrypoints=False))


def save_official(net: torch.nn.Module, path: Path, *, data_parallel: bool = False) -> Path:
    """``torch.save(net.state_dict())`` as the official ``save_networks`` does."""
    state = net.state_dict()
    if data_parallel:
        state = {f"module.{k}": v for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def same_outputs(official: torch.nn.Module, mine: torch.nn.Module, x: torch.Tensor) -> float:
    """Largest difference of the eval-mode outputs (after checking they are not trivial)."""
    official.eval(), mine.eval()
    with torch.no_grad():
        a, b = official(x), mine(x)
    assert a.shape == b.shape
    assert a.std() > 1e-3  # a constant output would prove nothing
    return (a - b).abs().max().item()


# --- the ResNet generators are the official ones ------------------------------------------


@pytest.mark.parametrize("blocks", [6, 9])
@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_resnet_generator_has_the_official_state_dict(cat, blocks, norm):
    official = randomize(ResnetGenerator(3, 2, NGF, norm, use_dropout=True, n_blocks=blocks))
    mine = cat.generators.get(f"resnet_{blocks}blocks").build(
        in_channels=3, out_channels=2, ngf=NGF, norm=norm, dropout=True
    )
    theirs = official.state_dict()
    assert list(mine.state_dict()) == list(theirs)  # same names, same order
    mine.load_state_dict(theirs, strict=True)
    assert same_outputs(official, mine, torch.rand(2, 3, 64, 64) * 2 - 1) < 1e-6
    convs = [m for m in mine.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(convs) == 1 + 2 + 2 * blocks + 2 + 1
    # the official use_bias: only with instance norm; the last conv always
    assert [c.bias is not None for c in convs] == [norm == "instance"] * (len(convs) - 1) + [True]


# --- pix2pix: G and D ---------------------------------------------------------------------

PIX2PIX_CASES = [  # netG, norm, image size, netD, n_layers_D, i2i discriminator
    ("unet_256", "batch", 256, "basic", 3, "patch70"),
    ("unet_256", "instance", 256, "n_layers", 1, "patch16"),
    ("unet_128", "batch", 128, "n_layers", 2, "patch34"),
    ("unet_128", "none", 128, "pixel", 3, "pixel"),
    ("resnet_6blocks", "batch", 64, "pixel", 3, "pixel"),
    ("resnet_6blocks", "instance", 64, "basic", 3, "patch70"),
    ("resnet_9blocks", "batch", 64, "n_layers", 5, "image286"),
    ("resnet_9blocks", "instance", 64, "pixel", 3, "pixel"),
]


@pytest.mark.parametrize("net_g, norm, size, net_d, n_layers, disc", PIX2PIX_CASES)
def test_pix2pix_converts_to_the_same_networks(
    cat, tmp_path, net_g, norm, size, net_d, n_layers, disc
):
    torch.manual_seed(0)
    g = randomize(define_G(3, 3, NGF, net_g, norm, use_dropout=True), seed=1)
    d = randomize(define_D(6, NGF, net_d, n_layers, norm), seed=2)
    folder = tmp_path / "checkpoints" / "facades_pix2pix"
    save_official(g, folder / "latest_net_G.pth", data_parallel=net_g == "unet_256")
    save_official(d, folder / "latest_net_D.pth")
    opts = OfficialOptions(
        netG=net_g, netD=net_d, n_layers_D=n_layers, norm=norm, ngf=NGF, ndf=NGF, direction="BtoA"
    )
    out = tmp_path / "run"
    convert_official(folder, out, task="facades", options=opts, catalog=cat)

    ckpt = load_checkpoint(out)
    assert ckpt.recipe == "pix2pix" and ckpt.translators == {"BtoA": "generator"}
    assert set(ckpt.roles) == {"generator", "discriminator"}
    assert ckpt.roles["discriminator"]["name"] == disc
    x = torch.rand(2, 3, size, size) * 2 - 1
    assert same_outputs(g, build_translator(ckpt, cat), x) < 1e-5
    d_size = 128 if disc == "image286" else 64
    xy = torch.rand(2, 6, d_size, d_size) * 2 - 1
    assert same_outputs(d, build_role(ckpt, "discriminator", cat), xy) < 1e-5

    config = json.loads((out / RUN_CONFIG_FILE).read_text())
    assert (config["task"], config["generator"], config["discriminator"]) == (
        "facades",
        net_g,
        disc,
    )
    assert (config["norm"], config["direction"]) == (norm, "BtoA")
    record = json.loads((out / CONVERSION_FILE).read_text())
    assert (
        record["files"]["generator"]["net"] == "G"
        and len(record["files"]["generator"]["sha256"]) == 64
    )


def test_the_translator_of_a_converted_run_matches_the_official_generator(cat, tmp_path):
    """i2i.load (what `i2i translate` uses) on the run folder gives the official outputs."""
    g = randomize(define_G(3, 3, NGF, "unet_256", "batch", use_dropout=True), seed=3)
    path = save_official(g, tmp_path / "latest_net_G.pth")
    opts = OfficialOptions(ngf=NGF, direction="BtoA")
    convert_official([path], tmp_path / "run", task="facades", options=opts, catalog=cat)
    translator = i2i.load(tmp_path / "run", catalog=cat, mode="eval")
    assert same_outputs(g, translator.generator, torch.rand(1, 3, 256, 256) * 2 - 1) < 1e-5


@pytest.mark.parametrize("net_g, size", [("unet_256", 256), ("unet_128", 128)])
def test_paper_mode_draws_the_official_dropout(cat, tmp_path, net_g, size):
    """With dropout on and batch statistics (the official test.py default), the same seed gives
    the official network's output: dropout sits in the same blocks."""
    g = randomize(define_G(3, 3, NGF, net_g, "batch", use_dropout=True), seed=4)
    path = save_official(g, tmp_path / "latest_net_G.pth")
    opts = OfficialOptions(netG=net_g, ngf=NGF)
    convert_official([path], tmp_path / "run", task="facades", options=opts, catalog=cat)
    mine = build_translator(load_checkpoint(tmp_path / "run"), cat)
    x = torch.rand(2, 3, size, size) * 2 - 1
    g.train(), mine.train()
    with torch.no_grad():
        torch.manual_seed(5)
        a = g(x)
        torch.manual_seed(5)
        b = mine(x)
        torch.manual_seed(6)
        c = mine(x)
    assert (a - b).abs().max() < 1e-5
    assert (a - c).abs().max() > 1e-2  # the dropout really draws


def test_old_official_files_convert(cat, tmp_path):
    """BatchNorm files without num_batches_tracked (PyTorch < 0.4.1) and InstanceNorm files with
    running statistics (which the official loader deletes) convert too."""
    g = randomize(define_G(3, 3, NGF, "unet_128", "batch"), seed=7)
    old = {k: v for k, v in g.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "latest_net_G.pth")
    opts = OfficialOptions(netG="unet_128", ngf=NGF)
    convert_official(tmp_path, tmp_path / "ra", task="facades", options=opts, catalog=cat)
    ckpt = load_checkpoint(tmp_path / "ra")
    assert same_outputs(g, build_translator(ckpt, cat), torch.rand(1, 3, 128, 128) * 2 - 1) < 1e-5

    r = randomize(define_G(3, 3, NGF, "resnet_6blocks", "instance"), seed=8)
    old = dict(r.state_dict())
    old["model.2.running_mean"] = torch.zeros(NGF)  # an InstanceNorm's old statistics
    old["model.2.running_var"] = torch.ones(NGF)
    path = tmp_path / "b" / "latest_net_G.pth"
    path.parent.mkdir()
    torch.save(old, path)
    opts = OfficialOptions(netG="resnet_6blocks", norm="instance", no_dropout=True, ngf=NGF)
    convert_official([path], tmp_path / "rb", task="facades", options=opts, catalog=cat)
    ckpt = load_checkpoint(tmp_path / "rb")
    assert same_outputs(r, build_translator(ckpt, cat), torch.rand(1, 3, 64, 64) * 2 - 1) < 1e-5


# --- CycleGAN: four roles -------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_cyclegan_converts_to_four_roles(cat, tmp_path, direction):
    """edges2shoes is 1 -> 3 channels: G_A maps 1 -> 3 in the trained direction, G_B back."""
    nets = {
        "G_A": define_G(1, 3, NGF, "resnet_6blocks", "instance"),
        "G_B": define_G(3, 1, NGF, "resnet_6blocks", "instance"),
        "D_A": define_D(3, NGF, "basic", norm="instance"),
        "D_B": define_D(1, NGF, "basic", norm="instance"),
    }
    folder = tmp_path / "horse2zebra"
    for seed, (name, net) in enumerate(nets.items()):
        save_official(randomize(net, seed), folder / f"latest_net_{name}.pth")
    opts = OfficialOptions(
        model="cycle_gan", netG="resnet_6blocks", ngf=NGF, ndf=NGF, direction=direction
    )
    convert_official(folder, tmp_path / "run", task="edges2shoes", options=opts, catalog=cat)

    ckpt = load_checkpoint(tmp_path / "run")
    other = "BtoA" if direction == "AtoB" else "AtoB"
    assert ckpt.recipe == "cyclegan"
    assert ckpt.translators == {direction: "G", other: "F"}
    x1, x3 = torch.rand(2, 1, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    assert same_outputs(nets["G_A"], build_translator(ckpt, cat, direction), x1) < 1e-5
    assert same_outputs(nets["G_B"], build_translator(ckpt, cat, other), x3) < 1e-5
    assert same_outputs(nets["D_A"], build_role(ckpt, "D_Y", cat), x3) < 1e-5
    assert same_outputs(nets["D_B"], build_role(ckpt, "D_X", cat), x1) < 1e-5
    config = json.loads((tmp_path / "run" / RUN_CONFIG_FILE).read_text())
    assert config["norm"] == "instance" and config["generator_kwargs"]["dropout"] is False


def test_cyclegan_without_discriminators_converts_its_generators(cat, tmp_path):
    for name, (i, o) in {"G_A": (3, 3), "G_B": (3, 3)}.items():
        save_official(
            define_G(i, o, NGF, "resnet_9blocks", "instance"), tmp_path / f"latest_net_{name}.pth"
        )
    opts = OfficialOptions(model="cycle_gan", ngf=NGF)
    convert_official(tmp_path, tmp_path / "run", task="facades", options=opts, catalog=cat)
    assert set(load_checkpoint(tmp_path / "run").roles) == {"G", "F"}


# --- refusals -------------------------------------------------------------------------------


def _convert(cli, *args):
    return CliRunner().invoke(cli, ["convert", "--from", "official", *map(str, args)])


def test_a_file_of_another_generator_is_refused_naming_it(cli, tmp_path):
    path = save_official(define_G(3, 3, NGF, "unet_128", "batch"), tmp_path / "latest_net_G.pth")
    out = tmp_path / "run"
    result = _convert(cli, path, "--task", "facades", "--ngf", NGF, "--out", out)
    assert result.exit_code == 1
    msg = result.output
    assert str(path) in msg and "official unet_256 generator" in msg
    assert "missing key" in msg and "model.model.1.model.3.model.3.model.3.model.3.model.3" in msg
    assert "Traceback" not in msg
    assert not out.exists()  # nothing written


def test_wrong_channels_name_the_shape(cli, tmp_path):
    """An official edges2shoes model trained on 3-channel edges does not fit the 1-channel task."""
    path = save_official(define_G(3, 3, NGF, "unet_256", "batch"), tmp_path / "latest_net_G.pth")
    result = _convert(cli, path, "--task", "edges2shoes", "--ngf", NGF, "--out", tmp_path / "r")
    assert result.exit_code == 1
    assert "model.model.0.weight (file 8x3x4x4, expected 8x1x4x4)" in result.output


def test_a_truncated_file_is_refused(cli, tmp_path):
    path = save_official(define_G(3, 3, NGF, "unet_256", "batch"), tmp_path / "latest_net_G.pth")
    path.write_bytes(path.read_bytes()[:1000])
    result = _convert(cli, path, "--task", "facades", "--ngf", NGF, "--out", tmp_path / "r")
    assert result.exit_code == 1
    assert str(path) in result.output and "cannot read official weights" in result.output


def test_a_pickle_that_would_run_code_is_refused_unrun(cli, tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "latest_net_G.pth"
    path.write_bytes(hostile_bytes(marker))
    result = _convert(cli, path, "--task", "facades", "--out", tmp_path / "r")
    assert result.exit_code == 1
    assert "Refusing to load" in result.output and str(path) in result.output
    assert not marker.exists()


def test_a_non_empty_out_is_refused(cli, tmp_path):
    path = save_official(define_G(3, 3, NGF, "unet_256", "batch"), tmp_path / "latest_net_G.pth")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = _convert(cli, path, "--task", "facades", "--ngf", NGF, "--out", out)
    assert result.exit_code == 1 and "not an empty folder" in result.output
    assert (out / "notes.txt").read_text() == "keep me" and len(list(out.iterdir())) == 1


def test_a_failed_write_leaves_no_half_run(cat, tmp_path, monkeypatch):
    import errno

    from i2i.engine import checkpoint as ckpt_io

    def full_disk(*args, **kwargs):
        raise ckpt_io.CheckpointSaveError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_io, "save_checkpoint", full_disk)
    path = save_official(define_G(3, 3, NGF, "unet_256", "batch"), tmp_path / "latest_net_G.pth")
    out = tmp_path / "run"
    with pytest.raises(ConvertError, match="Cannot write the converted run into .*No space left"):
        convert_official([path], out, task="facades", options=OfficialOptions(ngf=NGF), catalog=cat)
    assert not out.exists()


def test_missing_generators_and_odd_names_are_refused(cli, tmp_path):
    save_official(define_D(6, NGF, "basic"), tmp_path / "latest_net_D.pth")
    result = _convert(
        cli, "--checkpoints-dir", tmp_path, "--task", "facades", "--out", tmp_path / "r"
    )
    assert result.exit_code == 1 and "No net_G" in result.output
    odd = save_official(define_G(3, 3, NGF, "unet_256", "batch"), tmp_path / "generator.pth")
    result = _convert(cli, odd, "--task", "facades", "--out", tmp_path / "r")
    assert result.exit_code == 1 and "<epoch>_net_<G|D>.pth" in result.output
    result = _convert(cli, "--task", "facades", "--out", tmp_path / "r")
    assert result.exit_code == 2


def test_n_layers_without_a_preset_is_refused(cat, tmp_path):
    with pytest.raises(ConvertError, match="--n-layers-D 4 has no i2i preset"):
        OfficialOptions(netD="n_layers", n_layers_D=4).resolved()


def test_official_file_error_is_raised_by_the_api(cat, tmp_path):
    path = save_official(define_D(6, NGF, "basic"), tmp_path / "latest_net_G.pth")
    with pytest.raises(OfficialFileError, match="latest_net_G.pth does not match"):
        convert_official([path], tmp_path / "r", task="facades", catalog=cat)


# --- the converted run works with the CLI ---------------------------------------------------


def test_converted_pix2pix_translates_with_the_cli(cli, tmp_path):
    g = randomize(define_G(3, 3, NGF, "unet_256", "batch", use_dropout=True), seed=9)
    folder = tmp_path / "checkpoints" / "facades_label2photo"
    save_official(g, folder / "latest_net_G.pth", data_parallel=True)
    save_official(randomize(define_D(6, NGF, "basic")), folder / "latest_net_D.pth")
    out = tmp_path / "run"
    result = _convert(
        cli,
        "--checkpoints-dir",
        folder,
        "--task",
        "facades",
        "--direction",
        "BtoA",
        "--ngf",
        NGF,
        "--ndf",
        NGF,
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert f"discriminator  <- {folder / 'latest_net_D.pth'}" in result.output
    image = tmp_path / "labels.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(image)
    result = CliRunner().invoke(
        cli,
        [
            "translate",
            "--checkpoint",
            str(out),
            str(image),
            "--out",
            str(tmp_path / "t"),
            "--mode",
            "eval",
            "--precision",  # the official fp32 outputs to the 8-bit step (auto may be bf16)
            "fp32",
        ],
    )
    assert result.exit_code == 0, result.output
    written = Image.open(tmp_path / "t" / "labels.png")
    assert written.size == (256, 256)
    x = torch.from_numpy(np.asarray(Image.open(image), dtype=np.float32) / 127.5 - 1).permute(
        2, 0, 1
    )
    g.eval()
    with torch.no_grad():
        expected = ((g(x[None])[0] + 1) * 127.5).clamp(0, 255).permute(1, 2, 0).numpy()
    assert np.abs(np.asarray(written, dtype=np.float32) - expected).max() <= 1.0


def test_a_converted_run_starts_a_new_run_with_init_from(tmp_path):
    """`i2i run --init-from` trains on from the official weights (a learning rate of 1e-12
    leaves them where they were after one step)."""
    from tests.test_engine_fixtures import TinyPlugin, write_ab_data

    cli = build_cli(make_plugin_manager(load_entrypoints=False, plugins=(TinyPlugin(),)))
    g = randomize(define_G(3, 3, NGF, "resnet_6blocks", "batch", use_dropout=True), seed=10)
    d = randomize(define_D(6, NGF, "basic"), seed=11)
    folder = tmp_path / "official"
    save_official(g, folder / "latest_net_G.pth")
    save_official(d, folder / "latest_net_D.pth")
    converted = tmp_path / "converted"
    result = _convert(
        cli, "--checkpoints-dir", folder, "--task", "demo", "--netG", "resnet_6blocks",
        "--ngf", NGF, "--ndf", NGF, "--out", converted,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = write_ab_data(tmp_path / "data", n_train=2, n_val=1, height=32)
    out = tmp_path / "finetuned"
    result = CliRunner().invoke(cli, [
        "run", "--task", "demo", "--data", str(data), "--out", str(out), "--init-from",
        str(converted), "--gen", "resnet_6blocks", "--gen-opt", f"ngf={NGF}", "--gen-opt",
        "dropout=true", "--disc", "patch70", "--disc-opt", f"ndf={NGF}", "--load-size", "36",
        "--crop-size", "32", "--max-steps", "1", "--lr", "1e-12", "--device", "cpu",
        "--precision", "fp32", "--num-workers", "0",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    trained = load_checkpoint(out)
    assert trained.step == 1
    for role, official in (("generator", g), ("discriminator", d)):
        theirs = official.state_dict()
        for key, value in trained.weights[role].items():
            if key.endswith(".weight") and value.ndim == 4:  # conv weights: not running stats
                torch.testing.assert_close(value, theirs[key], rtol=0, atol=1e-9)
