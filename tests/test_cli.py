"""The CLI through click's CliRunner on build_cli(pm)."""

import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from i2i import __version__, hookimpl
from i2i.cli import build_cli
from i2i.plugins import make_plugin_manager


def invoke(pm, *args):
    return CliRunner().invoke(build_cli(pm), list(args), catch_exceptions=False)


def test_version(pm):
    result = invoke(pm, "--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_list_discriminators_shows_receptive_fields(pm):
    result = invoke(pm, "list", "discriminators", "--json")
    assert result.exit_code == 0
    fields = {r["name"]: r["receptive_field"] for r in json.loads(result.output)}
    assert fields == {"pixel": 1, "patch16": 16, "patch34": 34, "patch70": 70, "image286": 286}
    text = invoke(pm, "list", "discriminators").output
    assert "patch70" in text and "receptive field: 70" in text


def test_list_with_wildcard(pm):
    rows = json.loads(invoke(pm, "list", "generators", "unet*", "--json").output)
    assert {r["name"] for r in rows} >= {"unet_256", "unet_128"}
    assert all(r["name"].startswith("unet") for r in rows)


def test_list_everything(pm):
    result = invoke(pm, "list")
    assert result.exit_code == 0
    for header in ("generators:", "discriminators:", "losses:"):
        assert header in result.output


def test_info_shows_options_and_provider(pm):
    row = json.loads(invoke(pm, "info", "patch70", "--json").output)
    assert row["receptive_field"] == 70
    assert row["provider"] == "plugin 'i2i.models'"
    assert "ndf" in row["options"]
    assert "patch" in row["aliases"]


def test_info_unknown_exits_2_and_suggests(pm):
    result = CliRunner().invoke(build_cli(pm), ["info", "patch71"])
    assert result.exit_code == 2
    assert "patch70" in result.output


def test_plugins_json_lists_builtins(pm):
    rows = json.loads(invoke(pm, "plugins").output)
    models = next(r for r in rows if r["name"] == "i2i.models")
    assert "i2i_register_generators" in models["hooks"]
    assert models["origin"] == "builtin"


def test_plugin_commands_and_components_appear():
    class Extra:
        @hookimpl
        def i2i_register_commands(self, cli):
            import click

            @cli.command()
            def hello():
                """Say hello."""
                click.echo("hello from a plugin")

        @hookimpl
        def i2i_register_generators(self, register):
            def make(in_channels, out_channels, *, depth=3):
                """An extra generator."""

            register("extra_gen", make, size_multiple=1)

    pm = make_plugin_manager(load_entrypoints=False, plugins=(Extra(),))
    assert invoke(pm, "hello").output.strip() == "hello from a plugin"
    assert "extra_gen" in invoke(pm, "list", "generators").output
    info = json.loads(invoke(pm, "info", "extra_gen", "--json").output)
    assert info["provider"] == "plugin 'Extra'" and info["options"]["depth"] == 3


@pytest.mark.parametrize("kind", ["generators", "discriminators", "losses", "tasks", "metrics"])
def test_list_json_for_every_kind(pm, kind):
    result = invoke(pm, "list", kind, "--json")
    assert result.exit_code == 0
    json.loads(result.output)


def test_the_cli_starts_without_the_compiler_stack():
    """``torchvision`` imports ``torch._dynamo`` (seconds on 2 cores); the CLI and its plugins
    load neither until a command needs them (sample grids, ``--compile``)."""
    code = (
        "import sys\n"
        "from i2i.cli import build_cli\n"
        "from i2i.plugins import make_plugin_manager\n"
        "build_cli(make_plugin_manager())\n"
        "print(sorted(m for m in ('torchvision', 'torch._dynamo') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


HELP_OF_EVERY_COMMAND = """
import sys
import click
from click.testing import CliRunner
from i2i.cli import build_cli
from i2i.plugins import make_plugin_manager

cli = build_cli(make_plugin_manager())

def paths(group, prefix):
    for name, command in sorted(group.commands.items()):
        yield [*prefix, name]
        if isinstance(command, click.Group):
            yield from paths(command, [*prefix, name])

shown = [["--version"], ["--help"], *([*p, "--help"] for p in paths(cli, []))]
for args in shown:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (args, result.output)
print(len(shown), sorted(m for m in ("torch", "numpy", "PIL", "kornia") if m in sys.modules))
"""


def test_help_of_every_command_starts_without_torch():
    """``i2i --help`` and every command's ``--help`` import neither torch nor the networks:
    the built-in plugins (and installed ones that are plain modules) are imported when one of
    their hooks other than ``i2i_register_commands`` is first called."""
    out = subprocess.run(
        [sys.executable, "-c", HELP_OF_EVERY_COMMAND], capture_output=True, text=True, check=True
    )
    count, imported = out.stdout.split(" ", 1)
    assert int(count) > 20 and imported.strip() == "[]"


@pytest.mark.parametrize(
    "package",
    ["i2i", "i2i.ablate", "i2i.convert", "i2i.data", "i2i.demo", "i2i.engine", "i2i.eval"]
    + ["i2i.inference", "i2i.segment", "i2i.study"],
)
def test_every_public_name_of_a_package_resolves(package):
    """The packages import their public names on first use; each one in ``__all__`` is there."""
    import importlib

    module = importlib.import_module(package)
    lazy = getattr(module, "_EXPORTS", None) or getattr(module, "_LAZY", {})
    for name in {*module.__all__, *lazy}:
        assert getattr(module, name) is not None, f"{package}.{name}"
        assert name in dir(module)


def test_submodules_are_attributes_of_their_package_as_before():
    code = "import i2i; print(i2i.data.io.__name__, i2i.engine.checkpoint.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["i2i.data.io", "i2i.engine.checkpoint"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_device_the_machine_lacks_is_an_error_message_not_a_traceback(tmp_path, capsys):
    from i2i.cli import main

    out = tmp_path / "run"
    args = ["run", "--task", "colorize", "--max-steps", "1", "--device", "cuda", "--out", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.strip() == "Error: --device cuda was asked for, but torch sees no CUDA GPU"
    assert not out.exists()


@pytest.mark.parametrize(
    "error, message",
    [
        (
            NotADirectoryError(20, "Not a directory", "notes.txt/out"),
            "Not a directory: notes.txt/out",
        ),
        (PermissionError(13, "Permission denied", "/root/x"), "Permission denied: /root/x"),
    ],
)
def test_a_path_that_cannot_be_used_is_a_message_not_a_traceback(
    monkeypatch, capsys, error, message
):
    import click

    import i2i.cli

    @click.command()
    def fails():
        raise error

    monkeypatch.setattr(i2i.cli, "build_cli", lambda pm: fails)
    with pytest.raises(SystemExit) as exit_:
        i2i.cli.main([])
    assert exit_.value.code == 1 and capsys.readouterr().err == f"Error: {message}\n"


def test_a_device_that_does_not_exist_is_named():
    from i2i.engine.devices import DeviceUnavailableError, resolve_device

    for name in ("banana", "cuda:7" if not torch.cuda.is_available() else "banana"):
        with pytest.raises(DeviceUnavailableError, match=f"--device '?{name}"):
            resolve_device(name)
