"""Short fuzzing runs in the suite; ``python -m benchmarks.fuzz`` runs the same checks longer.

Image decoding: mutated files of many formats and modes give an RGB image or an
``ImageReadError`` naming the file. Option and objective parsing give a result or a
``ConfigError``. ``i2i run`` with random options exits 0, 1 or 2, never with a traceback.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings

from benchmarks.fuzz import (
    SEED_FILES,
    StubTrain,
    _run_options,
    check_image_bytes,
    check_options,
    check_run_arguments,
    check_weights,
    mutated_image_bytes,
    option_pairs,
    run_arguments,
    run_cli,
    small_bomb_limit,
    weight_specs,
)

FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CLI = run_cli()
OPTIONS = _run_options(CLI)


@pytest.mark.filterwarnings("ignore::UserWarning")
@FAST
@given(data=mutated_image_bytes())
def test_mutated_images_decode_or_are_refused_naming_the_file(tmp_path, data):
    with small_bomb_limit():
        check_image_bytes(data, tmp_path)


@pytest.mark.parametrize("name", sorted(SEED_FILES))
def test_every_seed_file_decodes(tmp_path, name):
    """The mutation seeds themselves are good images, so mutations start from real files."""
    from i2i.data import read_image

    path = tmp_path / name
    path.write_bytes(SEED_FILES[name])
    img = read_image(path)
    assert img.shape == (3, 8, 10) and 0.0 <= float(img.min()) <= float(img.max()) <= 1.0


@FAST
@given(pairs=option_pairs())
@example(pairs=["ngf=32", "dropout=false", "norm = instance"])
@example(pairs=["=1"])
@example(pairs=["ngf:32"])
@example(pairs=["weights=[1, 2"])
def test_option_parsing_returns_the_keys_or_a_config_error(pairs):
    check_options(pairs)


@FAST
@given(spec=weight_specs())
@example(spec="gan=1,l1=100")
@example(spec="gan=nan")
@example(spec="l1=1e400")
@example(spec="gan=1,gan=2")
@example(spec={"l1": None})
@example(spec=",,")
def test_objective_parsing_returns_finite_weights_or_a_config_error(spec):
    check_weights(spec)


@pytest.fixture
def stub():
    yield StubTrain()
    torch.set_flush_denormal(False)  # `i2i run` sets it for the process; leave it as found


@FAST
@given(args=run_arguments(OPTIONS))
@example(args=["--task", "facades", "--objective", "gan=nan"])
@example(args=["--task", "facades", "--gen-opt", "ngf"])
@example(args=["--task", "facades", "--crop-size", "100"])
@example(args=["--task", "facades", "--on-bad-image", "ignore"])
@example(args=["--task", "colorize", "--disc", "patch16", "--gen-opt", "ngf=8"])
def test_run_command_line_never_crashes(stub, args):
    check_run_arguments(CLI, args, stub)


def test_the_run_fuzzer_reaches_training_and_catches_crashes():
    """The CLI check passes valid configs to the stub, and fails on an uncaught exception."""
    stub = StubTrain()
    check_run_arguments(CLI, ["--task", "facades", "--gen-opt", "ngf=8"], stub)
    assert len(stub.configs) == 1 and stub.configs[0].generator_kwargs["ngf"] == 8

    class Broken(StubTrain):
        def __call__(self, *args, **kwargs):
            raise KeyError("a bug")

    with pytest.raises(AssertionError, match="KeyError"):
        check_run_arguments(CLI, ["--task", "facades"], Broken())
    torch.set_flush_denormal(False)
