"""Plugin loading: built-ins, entry points from a fake dist-info, the allowlist, broken plugins."""

import json
import sys
import textwrap

import click
import pytest

from i2i import hookimpl
from i2i.catalog import Catalog
from i2i.plugins import PluginLoadError, describe_plugins, make_plugin_manager
from i2i.registry import RegistrationError


def write_fake_distribution(root, dist, module, body, version="1.2.3"):
    """A minimal installed distribution: a module plus a dist-info with an `i2i` entry point."""
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[i2i]\n{module} = {module}\n")


GOOD_PLUGIN = """
    from torch import nn
    from i2i import hookimpl

    def make_one_by_one(in_channels, out_channels, *, width=4):
        '''A 1x1 convolution generator.'''
        net = nn.Conv2d(in_channels, out_channels, 1)
        net.size_multiple = 1
        return net

    @hookimpl
    def i2i_register_generators(register):
        register("one_by_one", make_one_by_one, size_multiple=1)
"""


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("fake_good_plugin", "fake_broken_plugin"):
        sys.modules.pop(name, None)


def test_builtins_register_through_hooks(pm):
    names = [name for name, _ in pm.list_name_plugin()]
    assert "i2i.models" in names and "i2i.losses" in names
    cat = Catalog.from_plugin_manager(pm)
    assert "unet_256" in cat.generators
    assert cat.generators.get("unet").provider == "plugin 'i2i.models'"


def test_entry_point_plugin_is_found(fake_site, monkeypatch):
    monkeypatch.delenv("I2I_LOAD_PLUGINS", raising=False)
    write_fake_distribution(fake_site, "fake-good", "fake_good_plugin", GOOD_PLUGIN)
    pm = make_plugin_manager()
    cat = Catalog.from_plugin_manager(pm)
    entry = cat.generators.get("one_by_one")
    assert entry.provider == "plugin 'fake_good_plugin' (fake-good 1.2.3)"
    assert entry.summary == "A 1x1 convolution generator."
    rows = {r["name"]: r for r in describe_plugins(pm)}
    assert rows["fake_good_plugin"]["version"] == "1.2.3"
    assert rows["fake_good_plugin"]["hooks"] == ["i2i_register_generators"]
    assert rows["fake_good_plugin"]["origin"] == "entry point i2i:fake_good_plugin"
    assert rows["fake_good_plugin"]["path"].startswith(str(fake_site))


@pytest.mark.parametrize(
    ("allow", "loaded"),
    [("", False), ("fake-good", True), ("fake_good", True), ("something-else", False)],
)
def test_allowlist(fake_site, monkeypatch, allow, loaded):
    write_fake_distribution(fake_site, "fake-good", "fake_good_plugin", GOOD_PLUGIN)
    monkeypatch.setenv("I2I_LOAD_PLUGINS", allow)
    pm = make_plugin_manager()
    assert (pm.get_plugin("fake_good_plugin") is not None) is loaded
    assert pm.get_plugin("i2i.models") is not None  # built-ins always load


def test_broken_plugin_names_itself_and_the_way_out(fake_site, monkeypatch):
    monkeypatch.delenv("I2I_LOAD_PLUGINS", raising=False)
    write_fake_distribution(
        fake_site, "fake-broken", "fake_broken_plugin", "raise ImportError('no gpu here')\n"
    )
    with pytest.raises(PluginLoadError) as info:
        make_plugin_manager()
    msg = str(info.value)
    assert "'fake_broken_plugin'" in msg and "fake-broken" in msg
    assert "no gpu here" in msg and "I2I_LOAD_PLUGINS=" in msg
    assert isinstance(info.value.__cause__, ImportError)


def test_misspelled_hook_fails_loudly():
    class Typo:
        @hookimpl
        def i2i_register_generator(self, register):  # missing the s
            pass

    with pytest.raises(Exception, match="i2i_register_generator"):
        make_plugin_manager(load_entrypoints=False, plugins=(Typo(),))


def test_duplicate_from_a_plugin_names_both():
    class Clash:
        @hookimpl
        def i2i_register_generators(self, register):
            register("unet", lambda in_channels, out_channels: None)

    pm = make_plugin_manager(load_entrypoints=False, plugins=(Clash(),))
    with pytest.raises(RegistrationError, match=r"i2i\.models.*Clash|Clash.*i2i\.models"):
        Catalog.from_plugin_manager(pm)


def test_trace_env_prints_hook_calls(monkeypatch, capsys):
    monkeypatch.setenv("I2I_TRACE_HOOKS", "1")
    pm = make_plugin_manager(load_entrypoints=False)
    pm.hook.i2i_register_commands(cli=click.Group())
    assert "i2i_register_commands" in capsys.readouterr().err


def test_describe_plugins_is_json(pm):
    rows = describe_plugins(pm)
    json.dumps(rows)
    assert {"name", "version", "hooks", "origin", "path"} <= set(rows[0])
