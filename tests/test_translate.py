"""Inference: padding, tiling, test modes, the Translator API and `i2i translate`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch import nn

import i2i
from i2i.catalog import Catalog
from i2i.cli import build_cli
from i2i.config import RunConfig
from i2i.data import read_image, write_image
from i2i.engine.checkpoint import load_checkpoint, save_checkpoint
from i2i.inference import Translator, load, set_test_mode
from i2i.inference.files import OutputError, plan_outputs
from i2i.inference.padding import crop, pad_to_multiple
from i2i.inference.tiling import tile_starts, tiled_forward
from i2i.plugins import make_plugin_manager


def make_checkpoint(
    run_dir: Path,
    catalog: Catalog,
    *,
    task: str = "facades",
    generator: str = "unet_256",
    generator_kwargs: dict | None = None,
    test_mode: str = "eval",
    seed: int = 0,
    **config,
) -> Path:
    """Save a freshly initialised generator as a checkpoint of ``run_dir`` (nothing trained)."""
    kwargs = {"ngf": 4} if generator_kwargs is None else generator_kwargs
    cfg = RunConfig(
        task=task, generator=generator, generator_kwargs=kwargs, test_mode=test_mode, **config
    ).to_dict()
    t = catalog.tasks.get(task).obj
    torch.manual_seed(seed)
    net = catalog.generators.get(generator).build(
        in_channels=t.in_channels, out_channels=t.out_channels, norm=cfg["norm"], **kwargs
    )
    with torch.no_grad():  # non-trivial running statistics, so eval and paper modes differ
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return save_checkpoint(
        run_dir,
        step=1,
        epoch=0,
        config=cfg,
        weights={"generator": net.state_dict()},
        extra={
            "in_channels": t.in_channels,
            "out_channels": t.out_channels,
            "size_multiple": net.size_multiple,
        },
    )


@pytest.fixture(scope="module")
def module_catalog():
    return Catalog.from_plugin_manager(make_plugin_manager(load_entrypoints=False))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, module_catalog) -> Path:
    run = tmp_path_factory.mktemp("run")
    make_checkpoint(run, module_catalog, test_mode="eval")
    return run


def conv_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 3, 3, padding=1),
        nn.Tanh(),
    )
    return net.eval()


# ------------------------------------------------------------------ padding


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 70), multiple=st.sampled_from([1, 4, 16, 64, 256]))
def test_pad_to_multiple_then_crop_is_identity(h, w, multiple):
    x = torch.rand(1, 2, h, w)
    padded, box = pad_to_multiple(x, multiple)
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert padded.shape[-2] >= h and padded.shape[-1] >= w
    assert torch.equal(crop(padded, box), x)
    # the padding only repeats values of the image (reflection or replication)
    assert set(padded.unique().tolist()) <= set(x.unique().tolist())


def test_pad_reflects_like_a_mirror():
    x = torch.arange(4.0).view(1, 1, 1, 4)
    padded, _ = pad_to_multiple(x, 8)
    assert padded[0, 0, 0].tolist() == [2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0, 1.0]


# ------------------------------------------------------------------ tiling


@settings(max_examples=80, deadline=None)
@given(
    units=st.integers(1, 40),
    tile_units=st.integers(2, 8),
    overlap_units=st.integers(0, 7),
    multiple=st.sampled_from([1, 8, 256]),
)
def test_tile_starts_cover_with_enough_overlap(units, tile_units, overlap_units, multiple):
    length, tile = units * multiple, tile_units * multiple
    overlap = min(overlap_units, tile_units - 1) * multiple
    starts = tile_starts(length, tile, overlap, multiple)
    assert starts[0] == 0 and all(s % multiple == 0 for s in starts)
    assert starts[-1] + min(tile, length) == length
    for a, b in zip(starts, starts[1:], strict=False):
        assert 0 < b - a <= tile - overlap  # consecutive tiles overlap by >= overlap


def test_tiled_output_matches_untiled_for_a_conv_net():
    net = conv_net()
    x = torch.rand(1, 3, 96, 160) * 2 - 1
    with torch.no_grad():
        full = net(x)
        blended = tiled_forward(net, x, tile=32, overlap=16)
        seams = tiled_forward(net, x, tile=32, overlap=0)
    assert blended.shape == full.shape
    assert (blended - full).abs().max() < 0.01
    assert (seams - full).abs().max() > 0.05  # without overlap the tile borders show


def test_tiled_path_only_runs_tiles_through_the_network():
    seen = []

    def fn(t):
        seen.append(tuple(t.shape[-2:]))
        return t

    x = torch.rand(1, 3, 256, 512)
    out = tiled_forward(fn, x, tile=64, overlap=16, multiple=16)
    assert torch.allclose(out, x, atol=1e-6)
    assert set(seen) == {(64, 64)} and len(seen) >= 4 * 8


def test_translator_tiles_large_inputs_and_keeps_the_size():
    net = conv_net()
    task = i2i.Task(summary="t", in_channels=3, out_channels=3, layout="aligned")
    tiled = Translator(net, task, mode="eval", tile=64, overlap=16)
    whole = Translator(net, task, mode="eval", tile=4096)
    img = torch.rand(3, 150, 230)
    a, b = tiled.translate(img), whole.translate(img)
    assert a.shape == img.shape
    assert (a - b).abs().max() < 0.01


# ------------------------------------------------------------------ modes


def test_paper_mode_uses_batch_statistics_and_leaves_running_stats_alone(run_dir, module_catalog):
    tr = load(run_dir, catalog=module_catalog)
    assert tr.mode == "eval"
    before = {k: v.clone() for k, v in tr.generator.state_dict().items()}
    img = torch.rand(3, 64, 64)
    eval_out = tr.translate(img)
    assert torch.equal(eval_out, tr.translate(img))  # eval: deterministic
    tr.mode = "paper"
    paper_a, paper_b = tr.translate(img), tr.translate(img)
    assert torch.equal(paper_a, paper_b)  # paper mode with a fixed seed: reproducible
    assert (paper_a - eval_out).abs().max() > 1e-3
    tr.seed = 1
    assert not torch.equal(tr.translate(img), paper_a)  # another dropout draw
    after = tr.generator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_set_test_mode_flags():
    net = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1), nn.Dropout(0.5))
    net.eval()
    with set_test_mode(net, "paper"):
        assert [m.training for m in net] == [False, True, True]
        assert not net[1].track_running_stats
    assert [m.training for m in net] == [False, False, False]
    assert net[1].track_running_stats
    with pytest.raises(ValueError, match="paper, eval"), set_test_mode(net, "train"):
        pass


def test_paper_mode_dropout_keeps_torch_masks_for_nchw_and_the_same_ones_for_nhwc():
    net = nn.Sequential(nn.Dropout(0.5))
    x = torch.rand(2, 8, 5, 5)
    with set_test_mode(net, "paper"):
        torch.manual_seed(3)
        nchw = net(x)
        torch.manual_seed(3)
        nhwc = net(x.to(memory_format=torch.channels_last))
    torch.manual_seed(3)
    assert torch.equal(nchw, nn.functional.dropout(x, 0.5, training=True))
    assert torch.equal(nhwc, nchw) and (nchw == 0).any()
    net.train()
    torch.manual_seed(3)  # outside the block the layer is torch's own again
    assert torch.equal(net(x), nchw) and "forward" not in vars(net[0])


# ------------------------------------------------------------------ the Python API


def test_load_from_run_or_checkpoint_folder(run_dir, module_catalog):
    tr = load(run_dir, catalog=module_catalog)
    ckpt_dir = tr.checkpoint
    assert ckpt_dir.parent.name == "checkpoints"
    again = load(ckpt_dir, catalog=module_catalog)
    assert again.task_name == "facades" and again.config["generator"] == "unet_256"
    assert again.size_multiple == 256


def test_loading_gives_the_saved_weights_and_leaves_the_random_stream_alone(
    run_dir, module_catalog
):
    torch.manual_seed(5)
    expected = torch.rand(4)
    torch.manual_seed(5)
    tr = load(run_dir, catalog=module_catalog)  # no random initial weights drawn first
    assert torch.equal(torch.rand(4), expected)
    saved = load_checkpoint(tr.checkpoint, discriminator=False).weights["generator"]
    assert all(torch.equal(v, saved[k]) for k, v in tr.generator.state_dict().items())


@pytest.mark.parametrize("size", [(512, 512), (300, 400), (384, 640), (5, 3)])
def test_outputs_have_the_input_size(run_dir, module_catalog, size):
    tr = load(run_dir, catalog=module_catalog)
    out = tr.translate(torch.rand(3, *size))
    assert out.shape == (3, *size) and out.min() >= 0 and out.max() <= 1


def test_translate_accepts_pil_paths_and_tensors(run_dir, module_catalog, tmp_path):
    tr = i2i.inference.load(run_dir, catalog=module_catalog)
    img = torch.rand(3, 40, 56)
    path = write_image(img, tmp_path / "x.png")
    from_path = tr.translate(path)
    from_pil = tr.translate(Image.open(path))
    from_tensor = tr.translate(read_image(path))
    assert isinstance(from_path, Image.Image) and from_path.size == (56, 40)
    assert isinstance(from_pil, Image.Image)
    assert from_tensor.shape == (3, 40, 56)
    assert np.array_equal(np.asarray(from_path), np.asarray(from_pil))
    batch = tr.translate(torch.stack([img, img]))
    assert batch.shape == (2, 3, 40, 56)
    with pytest.raises(TypeError, match="PIL image"):
        tr.translate(42)


def test_bf16_precision_is_close_to_fp32(run_dir, module_catalog):
    tr = load(run_dir, catalog=module_catalog, precision="fp32")
    img = torch.rand(3, 64, 64)
    fp32 = tr.translate(img)
    tr.precision = "bf16"
    assert tr.precision == "bf16"
    bf16 = tr.translate(img)
    assert (fp32 - bf16).abs().mean() < 0.05


def test_bf16_weights_give_the_autocast_result_and_switch_back_to_exact_fp32(
    run_dir, module_catalog
):
    """bf16_weights (what `i2i translate` asks for) keeps bf16 weights while running bf16: the
    same output as autocast over fp32 weights, half the memory; switching to fp32 reloads the
    checkpoint's fp32 weights. The Python API's default leaves the generator in fp32."""
    img = torch.rand(3, 40, 48)
    fp32 = load(run_dir, catalog=module_catalog, precision="fp32")
    over_fp32 = Translator(
        fp32.generator, fp32.task, mode="eval", precision="bf16", checkpoint=fp32.checkpoint
    )  # a user's module: autocast over its fp32 weights, nothing converted
    expected_fp32, expected_bf16 = fp32.translate(img), over_fp32.translate(img)
    assert all(p.dtype == torch.float32 for p in fp32.generator.parameters())

    plain = load(run_dir, catalog=module_catalog, precision="bf16")  # the API default
    assert all(p.dtype == torch.float32 for p in plain.generator.parameters())
    assert torch.equal(plain.translate(img), expected_bf16)
    tr = load(run_dir, catalog=module_catalog, precision="bf16", bf16_weights=True, prepack=False)
    conv = next(m for m in tr.generator.modules() if isinstance(m, nn.Conv2d))
    norm = next(m for m in tr.generator.modules() if isinstance(m, nn.BatchNorm2d))
    assert conv.weight.dtype == torch.bfloat16 and norm.weight.dtype == torch.float32
    assert torch.equal(tr.translate(img), expected_bf16)
    tr.precision = "fp32"
    assert conv.weight.dtype == torch.float32
    assert torch.equal(tr.translate(img), expected_fp32)
    tr.precision = "bf16"
    assert torch.equal(tr.translate(img), expected_bf16)


def test_unknown_task_in_checkpoint_is_a_clear_error(tmp_path, module_catalog):
    class P:
        @i2i.hookimpl
        def i2i_register_tasks(self, register):
            register(
                "only_here", i2i.Task(summary="x", in_channels=3, out_channels=3, layout="aligned")
            )

    cat = Catalog.from_plugin_manager(make_plugin_manager(load_entrypoints=False, plugins=(P(),)))
    make_checkpoint(tmp_path, cat, task="only_here")
    with pytest.raises(Exception, match="only_here.*no installed plugin"):
        load(tmp_path, catalog=module_catalog)


# ------------------------------------------------------------------ the command


@pytest.fixture
def cli(pm):
    return build_cli(pm)


def _write_inputs(folder: Path) -> dict[str, tuple[int, int]]:
    sizes = {"a": (64, 64), "b": (64, 64), "c": (40, 72)}
    for name, (h, w) in sizes.items():
        write_image(torch.rand(3, h, w), folder / f"{name}.jpg")
    return sizes


def test_translate_command_files_folders_and_globs(cli, run_dir, tmp_path):
    src = tmp_path / "in"
    sizes = _write_inputs(src)
    write_image(torch.rand(3, 24, 24), tmp_path / "single.png")
    out = tmp_path / "out"
    args = [
        "translate",
        "-c",
        str(run_dir),
        str(src / "a.jpg"),
        str(src / "[bc].jpg"),
        str(tmp_path / "single.png"),
        "--out",
        str(out),
        "--no-progress",
        "--batch-size",
        "2",
        "--precision",  # fp32: exactly the same per image whatever the batch (bf16 kernels
        "fp32",  # may round differently at another batch size)
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png", "single.png"]
    for name, (h, w) in sizes.items():
        assert Image.open(out / f"{name}.png").size == (w, h)
    # a folder input gives the same images
    out2 = tmp_path / "out2"
    result = CliRunner().invoke(
        cli,
        ["translate", "-c", str(run_dir), str(src), "-o", str(out2), "--no-progress"]
        + ["--precision", "fp32"],
    )
    assert result.exit_code == 0, result.output
    for name in sizes:  # eval mode: batching does not change the results
        assert torch.equal(read_image(out / f"{name}.png"), read_image(out2 / f"{name}.png"))


def test_translate_never_overwrites_without_the_flag(cli, run_dir, tmp_path):
    src = tmp_path / "in"
    _write_inputs(src)
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.png").write_bytes(b"keep me")
    args = ["translate", "-c", str(run_dir), str(src), "-o", str(out), "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "b.png" in result.output and "--overwrite" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["b.png"]  # nothing else was written
    assert (out / "b.png").read_bytes() == b"keep me"
    result = CliRunner().invoke(cli, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert Image.open(out / "b.png").size == (64, 64)


def test_translate_refuses_clashing_stems_and_missing_inputs(cli, run_dir, tmp_path):
    write_image(torch.rand(3, 8, 8), tmp_path / "x" / "same.png")
    write_image(torch.rand(3, 8, 8), tmp_path / "y" / "same.jpg")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["translate", "-c", str(run_dir), str(tmp_path / "x"), str(tmp_path / "y"), "-o", str(out)],
    )
    assert result.exit_code == 1 and "same.png" in result.output and "same.jpg" in result.output
    assert not out.exists() or not any(out.iterdir())
    result = CliRunner().invoke(
        cli, ["translate", "-c", str(run_dir), str(tmp_path / "nope*.png"), "-o", str(out)]
    )
    assert result.exit_code == 1 and "matches no files" in result.output


def test_translate_never_replaces_an_input_even_with_overwrite(cli, run_dir, tmp_path):
    src = tmp_path / "in"
    _write_inputs(src)  # a.jpg, b.jpg, c.jpg: their outputs a.png ... are no inputs
    write_image(torch.rand(3, 16, 16), src / "d.png")
    (tmp_path / "link").symlink_to(src)
    originals = {p.name: p.read_bytes() for p in src.iterdir()}
    for out in (src, tmp_path / "link", tmp_path / "link" / ".." / "in"):
        args = ["translate", "-c", str(run_dir), str(src), "-o", str(out), "--overwrite"]
        result = CliRunner().invoke(cli, [*args, "--no-progress"])
        assert result.exit_code == 1, result.output
        assert "d.png" in result.output and "its input" in result.output
        assert "Traceback" not in result.output
        assert {p.name: p.read_bytes() for p in src.iterdir()} == originals  # nothing written
    # the same input named as a file, output elsewhere: fine
    result = CliRunner().invoke(
        cli,
        ["translate", "-c", str(run_dir), str(src / "d.png"), "-o", str(tmp_path / "out")]
        + ["--no-progress"],
    )
    assert result.exit_code == 0, result.output
    with pytest.raises(OutputError, match="would replace its input"):
        plan_outputs([src / "d.png"], src, overwrite=True)


def test_outputs_stay_inside_the_output_folder(tmp_path):
    pairs = plan_outputs([tmp_path / "a" / "x.png", Path("../../y.jpg")], tmp_path / "out")
    for _, dst in pairs:
        assert dst.resolve().parent == (tmp_path / "out").resolve()
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match="not a folder"):
        plan_outputs([tmp_path / "x.png"], tmp_path / "f")


def test_translate_mode_option(cli, run_dir, tmp_path):
    write_image(torch.rand(3, 32, 32), tmp_path / "in" / "p.png")
    outs = {}
    for mode in ("eval", "paper"):
        out = tmp_path / mode
        result = CliRunner().invoke(
            cli,
            [
                "translate",
                "-c",
                str(run_dir),
                str(tmp_path / "in"),
                "-o",
                str(out),
                "--mode",
                mode,
                "--no-progress",
            ],
        )
        assert result.exit_code == 0 and f"({mode} mode)" in result.output
        outs[mode] = read_image(out / "p.png")
    assert not torch.equal(outs["eval"], outs["paper"])


def test_channels_last_on_the_cpu_gives_the_nchw_result(catalog, tmp_path):
    """The CPU default stores the weights NHWC (faster there); the images do not change."""
    ckpt = make_checkpoint(
        tmp_path / "run", catalog, generator="unet_128", generator_kwargs={"ngf": 8}
    )
    nhwc, nchw = load(ckpt, catalog=catalog), load(ckpt, catalog=catalog, channels_last=False)
    weight = next(p for p in nhwc.generator.parameters() if p.dim() == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert all(p.is_contiguous() for p in nchw.generator.parameters())
    img = torch.rand(3, 100, 140, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(nhwc.translate(img), nchw.translate(img), atol=1e-5, rtol=0)


@pytest.mark.parametrize("layout", [{"channels_last": True}, {"prepack": True}])
def test_paper_mode_draws_the_same_dropout_masks_whatever_the_layout(catalog, tmp_path, layout):
    """One seed, one image in paper mode, whether the activations run NCHW, NHWC or through
    pre-packed convolutions (torch's own dropout would fill its masks in memory order)."""
    ckpt = make_checkpoint(
        tmp_path / "run", catalog, generator="unet_128", generator_kwargs={"ngf": 8}
    )
    opts = {"mode": "paper", "precision": "fp32", "bf16_weights": True, "channels_last": False}
    plain = load(ckpt, catalog=catalog, **opts, prepack=False)
    other = load(ckpt, catalog=catalog, **{**opts, **layout})
    img = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(0))
    expected = plain.translate(img)
    assert not torch.equal(expected, load(ckpt, catalog=catalog, mode="eval").translate(img))
    torch.testing.assert_close(other.translate(img), expected, atol=1e-4, rtol=0)


def test_channels_last_leaves_other_than_4d_weights_alone(module_catalog):
    facades_task = module_catalog.tasks.get("facades").obj
    net = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1))
    net.register_buffer("volume", torch.zeros(1, 1, 2, 2, 2))
    tr = Translator(net, facades_task, mode="eval")
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert net.volume.is_contiguous()
    assert tr.translate(torch.rand(3, 8, 8)).shape == (3, 8, 8)


def test_an_inpaint_image_s_transparent_hole_is_filled_as_a_black_one(
    cli, module_catalog, tmp_path
):
    """The inpaint task's rule for a user's hole (transparent, or pure black) holds for files,
    for PIL images and paths through the API, and for RGBA and RGB files batched together."""
    run = tmp_path / "run"
    make_checkpoint(run, module_catalog, task="inpaint", generator="resnet_6blocks")
    rng = np.random.default_rng(0)
    photo = rng.integers(10, 256, (32, 32, 3), dtype=np.uint8)  # no pure black pixel
    hole = (slice(8, 16), slice(8, 20))
    alpha = np.full((32, 32, 1), 255, np.uint8)
    alpha[hole] = 0
    black, white = photo.copy(), photo.copy()
    black[hole], white[hole] = 0, 255  # white: what compositing the transparency gives
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.concatenate([photo, alpha], axis=2), "RGBA").save(src / "rgba.png")
    Image.fromarray(black).save(src / "black.png")
    Image.fromarray(white).save(src / "white.png")
    out = tmp_path / "out"
    args = ["translate", "-c", str(run), str(src), "-o", str(out), "--no-progress"]
    result = CliRunner().invoke(cli, args + ["--batch-size", "3", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    got = {p.stem: np.asarray(Image.open(p)) for p in out.iterdir()}
    assert np.array_equal(got["rgba"], got["black"])
    assert not np.array_equal(got["rgba"][hole], got["white"][hole])
    known = np.ones((32, 32), bool)
    known[hole] = False
    assert np.array_equal(got["rgba"][known], photo[known])  # the known pixels are kept

    tr = i2i.load(run, precision="fp32")
    for source in (Image.open(src / "rgba.png"), src / "rgba.png"):
        assert np.array_equal(np.asarray(tr.translate(source)), got["black"])
