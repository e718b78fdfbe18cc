"""One test per hook (datasette's discipline), plus the meta-test that keeps it so."""

import inspect

import click
import torch
from click.testing import CliRunner

from i2i import Task, hookimpl, hookspecs
from i2i.catalog import Catalog
from i2i.cli import build_cli
from i2i.plugins import make_plugin_manager


def catalog_with(plugin):
    return Catalog.from_plugin_manager(
        make_plugin_manager(load_entrypoints=False, plugins=(plugin,))
    )


def hook_names():
    return sorted(n for n, f in inspect.getmembers(hookspecs) if n.startswith("i2i_"))


def test_every_hook_has_a_test():
    tests = {n for n in globals() if n.startswith("test_hook_")}
    missing = [n for n in hook_names() if f"test_hook_{n}" not in tests]
    assert not missing, f"hooks without a test_hook_<name> test: {missing}"


def test_hook_i2i_register_generators():
    class P:
        @hookimpl
        def i2i_register_generators(self, register):
            def make(in_channels, out_channels):
                net = torch.nn.Conv2d(in_channels, out_channels, 1)
                net.size_multiple = 1
                return net

            register("conv1x1", make, aliases=("c1",), summary="1x1 conv", size_multiple=1)

    entry = catalog_with(P()).generators.get("c1")
    assert entry.name == "conv1x1" and entry.meta == {"size_multiple": 1}
    assert entry.build(in_channels=2, out_channels=5)(torch.zeros(1, 2, 4, 4)).shape[1] == 5


def test_hook_i2i_register_discriminators():
    class P:
        @hookimpl
        def i2i_register_discriminators(self, register):
            register(
                "point", lambda in_channels: torch.nn.Conv2d(in_channels, 1, 1), receptive_field=1
            )

    entry = catalog_with(P()).discriminators.get("point")
    assert entry.meta["receptive_field"] == 1 and entry.provider == "plugin 'P'"


def test_hook_i2i_register_losses():
    class P:
        @hookimpl
        def i2i_register_losses(self, register):
            register("l1_sum", lambda: torch.nn.L1Loss(reduction="sum"), type="reconstruction")

    loss = catalog_with(P()).losses.get("l1_sum")
    assert loss.meta["type"] == "reconstruction"
    assert loss.build()(torch.ones(2), torch.zeros(2)).item() == 2.0


def test_hook_i2i_register_tasks():
    task = Task(summary="identity", in_channels=3, out_channels=3, layout="aligned")

    class P:
        @hookimpl
        def i2i_register_tasks(self, register):
            register("same", task)

    assert catalog_with(P()).tasks.get("same").obj is task


def test_hook_i2i_register_metrics():
    class P:
        @hookimpl
        def i2i_register_metrics(self, register):
            register("max_error", lambda: lambda a, b: (a - b).abs().max(), summary="worst pixel")

    entry = catalog_with(P()).metrics.get("max_error")
    assert entry.summary == "worst pixel"
    assert entry.build()(torch.ones(2), torch.zeros(2)).item() == 1.0


def test_hook_i2i_register_commands():
    class P:
        @hookimpl
        def i2i_register_commands(self, cli):
            @cli.command()
            @click.argument("name")
            def greet(name):
                click.echo(f"hi {name}")

    pm = make_plugin_manager(load_entrypoints=False, plugins=(P(),))
    result = CliRunner().invoke(build_cli(pm), ["greet", "ada"])
    assert result.output == "hi ada\n"


def test_hook_i2i_register_recipes():
    from i2i import Recipe, RecipeOption

    class Slow(Recipe):
        summary = "a recipe with one option"
        options = {"patience": RecipeOption(3, "Steps to wait", minimum=0)}

    class P:
        @hookimpl
        def i2i_register_recipes(self, register):
            register("slow", Slow(), aliases=("patient",))

    entry = catalog_with(P()).recipes.get("patient")
    assert (entry.name, entry.summary) == ("slow", "a recipe with one option")
    assert entry.options() == {"patience": 3}
    assert entry.obj.resolve_options({"patience": 5}) == {"patience": 5}
