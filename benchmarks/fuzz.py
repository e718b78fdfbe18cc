"""Fuzzing with hypothesis: image decoding, option parsing and the ``i2i run`` command line.

The same properties run in the test suite with a few dozen examples each
(``tests/test_reliability_fuzz.py``); this script runs them for longer::

    python -m benchmarks.fuzz --examples 5000              # every target
    python -m benchmarks.fuzz --targets images,cli --examples 20000 --seed 1

Targets and what each must never do:

- ``images``: bytes of real PNG, JPEG, BMP, TIFF, GIF and WebP files (RGB, RGBA, grayscale, 16-bit,
  palette, CMYK), cut short and with bytes overwritten: ``read_image`` returns an RGB tensor in
  [0, 1] or raises ``ImageReadError`` naming the file; nothing else.
- ``options``: ``parse_options`` (``--gen-opt`` / ``--disc-opt``) returns a dict of the given
  keys or raises ``ConfigError``.
- ``weights``: ``parse_weights`` (``--objective``) returns finite weights or raises
  ``ConfigError``.
- ``cli``: ``i2i run`` with random options and values (training replaced by a stub): exits 0, 1
  or 2 through click, never with an uncaught exception or a traceback; a config that reaches
  training is valid.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

if __package__ in (None, ""):  # `python benchmarks/fuzz.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from PIL import Image

# ---- images --------------------------------------------------------------------------------


def _seed_files() -> dict[str, bytes]:
    """Small real files in many formats and modes, the starting points of mutation."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    images = {
        "rgb": Image.fromarray(rgb),
        "rgba": Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA"),
        "gray": Image.fromarray(rgb[..., 0]),
        "gray16": Image.fromarray(rgb[..., 0].astype(np.uint16) * 257),
        "palette": Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8),
        "cmyk": Image.fromarray(rgb).convert("CMYK"),
    }
    plan = [
        ("rgb", "PNG"), ("rgba", "PNG"), ("gray16", "PNG"), ("palette", "PNG"), ("rgb", "JPEG"),
        ("cmyk", "JPEG"), ("gray", "JPEG"), ("rgb", "BMP"), ("rgb", "TIFF"), ("gray16", "TIFF"),
        ("palette", "GIF"), ("rgb", "WEBP"),
    ]  # fmt: skip
    out = {}
    for mode, fmt in plan:
        buf = io.BytesIO()
        images[mode].save(buf, format=fmt)
        out[f"{mode}.{fmt.lower()}"] = buf.getvalue()
    return out


SEED_FILES = _seed_files()


@st.composite
def mutated_image_bytes(draw: st.DrawFn) -> bytes:
    """A seed file, cut short and/or with a few bytes overwritten (or random bytes)."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=256))
    data = bytearray(SEED_FILES[draw(st.sampled_from(sorted(SEED_FILES)))])
    for _ in range(draw(st.integers(0, 6))):
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if data:
            data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@contextlib.contextmanager
def small_bomb_limit(pixels: int = 1_000_000) -> Iterator[None]:
    """Lower PIL's decompression-bomb limit: a mutated header may declare huge sizes, and the
    refusal path is the same at any limit, only faster."""
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def check_image_bytes(data: bytes, folder: Path) -> None:
    """``read_image`` gives an RGB image in [0, 1] or an ``ImageReadError`` naming the file."""
    import warnings

    from i2i.data.io import ImageReadError, read_image

    path = folder / "fuzz.img"
    path.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns about odd but readable files
            img = read_image(path)
    except ImageReadError as exc:
        assert str(path) in str(exc), exc
        assert exc.reason, exc
        return
    assert img.ndim == 3 and img.shape[0] == 3, tuple(img.shape)
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0


# ---- option and objective parsing ------------------------------------------------------------

_KEYS = st.one_of(
    st.sampled_from(["ngf", "ndf", "dropout", "norm", "n_layers", "encoder", "weights"]),
    st.text(max_size=6),
)
_VALUES = st.one_of(
    st.sampled_from(["32", "true", "False", "null", "[1, 2]", '{"a": 1}', "1e999", "NaN", ""]),
    st.text(max_size=10),
)


@st.composite
def option_pairs(draw: st.DrawFn) -> list[str]:
    """``key=value`` strings as ``--gen-opt`` receives them, some malformed."""
    pairs = []
    for _ in range(draw(st.integers(0, 4))):
        key, value = draw(_KEYS), draw(_VALUES)
        sep = draw(st.sampled_from(["=", "=", "=", " = ", ":", ""]))
        pairs.append(f"{key}{sep}{value}")
    return pairs


def check_options(pairs: list[str]) -> None:
    """``parse_options`` returns the given identifier keys, or raises ``ConfigError``."""
    from i2i.config import ConfigError, parse_options

    try:
        out = parse_options(pairs)
    except ConfigError as exc:
        assert "must look like key=value" in str(exc), exc
        return
    assert isinstance(out, dict)
    keys = [p.partition("=")[0].strip() for p in pairs]
    assert sorted(out) == sorted(set(keys)), (out, pairs)
    assert all(k.isidentifier() for k in out)


@st.composite
def weight_specs(draw: st.DrawFn) -> str | dict[str, Any]:
    """``--objective`` strings such as ``gan=1,l1=100``, some malformed; or dicts."""
    names = st.one_of(st.sampled_from(["gan", "l1", "lsgan", "wgan_gp", ""]), st.text(max_size=5))
    numbers = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False).map(repr),
        st.integers(-1000, 1000).map(str),
        st.sampled_from(["inf", "-inf", "nan", "1e400", "x", ""]),
    )
    if draw(st.integers(0, 4)) == 0:
        return draw(
            st.dictionaries(
                names, st.one_of(numbers, st.floats(allow_subnormal=False), st.none()), max_size=3
            )
        )
    parts = [f"{draw(names)}{draw(st.sampled_from(['=', '=', '']))}{draw(numbers)}"
             for _ in range(draw(st.integers(0, 4)))]  # fmt: skip
    return draw(st.sampled_from([",", ", ", ";"])).join(parts)


def check_weights(spec: str | dict[str, Any]) -> None:
    """``parse_weights`` returns a non-empty dict of finite floats, or raises ``ConfigError``."""
    from i2i.config import ConfigError, parse_weights

    try:
        out = parse_weights(spec)
    except ConfigError:
        return
    assert out and all(isinstance(w, float) and math.isfinite(w) for w in out.values()), out


# ---- the i2i run command line ----------------------------------------------------------------


def run_cli() -> click.Group:
    """``build_cli`` with the built-in plugins only (installed ones are not fuzzed)."""
    from i2i.cli import build_cli
    from i2i.plugins import make_plugin_manager

    return build_cli(make_plugin_manager(load_entrypoints=False))


def _run_options(cli: click.Group) -> list[tuple[str, list[str], bool]]:
    """(option string, choices, takes a value) for every option of ``i2i run``."""
    out = []
    for param in cli.commands["run"].params:
        if not isinstance(param, click.Option):
            continue
        choices = list(getattr(param.type, "choices", []) or [])
        takes_value = not param.is_flag
        for name in [*param.opts, *param.secondary_opts]:
            if name.startswith("--"):
                out.append((name, choices, takes_value))
    return out


@st.composite
def run_arguments(draw: st.DrawFn, options: list[tuple[str, list[str], bool]]) -> list[str]:
    """An ``i2i run`` argument list: mostly real options, with good and bad values."""
    components = ["facades", "colorize", "inpaint", "unet", "unet_128", "unet_256", "patch16",
                  "patch70", "pixel", "gan", "l1", "nope", ""]  # fmt: skip
    values = st.one_of(
        st.integers(-3, 600).map(str),
        st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False).map(repr),
        st.sampled_from(components),
        st.text(max_size=8),
    )
    args: list[str] = []
    if draw(st.integers(0, 3)):
        args += ["--task", draw(st.sampled_from(components))]
    for _ in range(draw(st.integers(0, 6))):
        name, choices, takes_value = draw(st.sampled_from(options))
        args.append(name)
        if takes_value:
            args.append(
                draw(st.sampled_from(choices)) if choices and draw(st.booleans()) else draw(values)
            )
    if draw(st.integers(0, 9)) == 0:
        args.append(draw(st.sampled_from(["--no-such-option", "extra", "-q", "--"])))
    return args


class StubTrain:
    """Stands in for ``i2i.engine.runner.train``: checks the config it gets, trains nothing."""

    def __init__(self) -> None:
        self.configs: list[Any] = []

    def __call__(self, cfg: Any, *, catalog: Any, **kwargs: Any) -> Path:
        from i2i.config import RunConfig, validate_config

        assert isinstance(cfg, RunConfig)
        assert validate_config(cfg, catalog) == cfg  # valid, and already canonical
        self.configs.append(cfg)
        return Path("stub-run")


def check_run_arguments(cli: click.Group, args: list[str], stub: StubTrain) -> None:
    """``i2i run ARGS`` exits 0, 1 or 2 through click; no uncaught exception, no traceback."""
    from click.testing import CliRunner

    with mock.patch("i2i.engine.runner.train", stub):
        result = CliRunner().invoke(cli, ["run", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        repr(result.exception),
        result.output[-2000:],
    )
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output[-2000:])
    assert "Traceback" not in result.output, (args, result.output[-2000:])
    if result.exit_code == 0:
        assert "--help" in args or "-h" in args or stub.configs, args


# ---- running ---------------------------------------------------------------------------------


def targets(folder: Path) -> dict[str, tuple[st.SearchStrategy, Callable[[Any], None]]]:
    """Each target's strategy and check (``folder`` holds the fuzzed image file)."""
    cli = run_cli()
    stub = StubTrain()
    return {
        "images": (mutated_image_bytes(), lambda data: check_image_bytes(data, folder)),
        "options": (option_pairs(), check_options),
        "weights": (weight_specs(), check_weights),
        "cli": (run_arguments(_run_options(cli)), lambda a: check_run_arguments(cli, a, stub)),
    }


def run_target(
    strategy: st.SearchStrategy, check: Callable[[Any], None], examples: int, seed: int | None
) -> None:
    """Run ``check`` on ``examples`` values drawn from ``strategy``; raises on a failure."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def prop(value: Any) -> None:
        check(value)

    if seed is not None:
        prop = hypothesis_seed(seed)(prop)
    with small_bomb_limit():
        prop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="Examples per target [1000].")
    parser.add_argument(
        "--targets", default="images,options,weights,cli", help="Comma-separated targets."
    )
    parser.add_argument("--seed", type=int, default=None, help="Seed for a reproducible run.")
    args = parser.parse_args(argv)
    failed = []
    with tempfile.TemporaryDirectory(prefix="i2i-fuzz-") as tmp:
        table = targets(Path(tmp))
        names = [n.strip() for n in args.targets.split(",") if n.strip()]
        unknown = sorted(set(names) - set(table))
        if unknown:
            parser.error(f"unknown target(s) {unknown}; choose from {', '.join(table)}")
        for name in names:
            start = time.perf_counter()
            try:
                run_target(*table[name], args.examples, args.seed)
            except Exception as exc:  # report every target, then fail
                failed.append(name)
                print(f"{name}: FAILED after {time.perf_counter() - start:.1f} s: {exc!r}")
            else:
                print(
                    f"{name}: {args.examples} examples passed in {time.perf_counter() - start:.1f} s"
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
