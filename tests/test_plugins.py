"""Plugin loading: built-ins, entry points from a fake dist-info, the allowlist, broken plugins."""

import importlib
import json
import sys
import textwrap
import types

import click
import pytest

from i2i import hookimpl
from i2i.catalog import Catalog
from i2i.plugins import BUILTIN_PLUGINS, PluginLoadError, describe_plugins, make_plugin_manager
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
    for name in ("fake_good_plugin", "fake_broken_plugin", "fake_eager_plugin"):
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


def test_a_plugin_module_is_imported_when_its_hooks_are_first_called(fake_site, monkeypatch):
    monkeypatch.delenv("I2I_LOAD_PLUGINS", raising=False)
    write_fake_distribution(fake_site, "fake-good", "fake_good_plugin", GOOD_PLUGIN)
    pm = make_plugin_manager()
    assert "fake_good_plugin" not in sys.modules
    pm.hook.i2i_register_commands(cli=click.Group())  # what `i2i --help` calls
    assert "fake_good_plugin" not in sys.modules
    assert Catalog.from_plugin_manager(pm).generators.get("one_by_one").name == "one_by_one"
    assert "fake_good_plugin" in sys.modules


EAGER_PLUGIN = """
    from i2i import hookimpl

    @hookimpl(tryfirst=True)
    def i2i_register_generators(register):
        pass
"""


def test_a_plugin_module_with_hook_options_is_imported_at_once(fake_site, monkeypatch):
    monkeypatch.delenv("I2I_LOAD_PLUGINS", raising=False)
    write_fake_distribution(fake_site, "fake-eager", "fake_eager_plugin", EAGER_PLUGIN)
    pm = make_plugin_manager()
    assert pm.get_plugin("fake_eager_plugin") is sys.modules["fake_eager_plugin"]


HOOK_ELSEWHERE = {
    "specname": """
        from i2i import hookimpl

        @hookimpl
        def i2i_register_tasks(register):
            pass

        @hookimpl(specname="i2i_register_generators")
        def generators(register):
            register("odd_gen", lambda in_channels, out_channels: None)
    """,
    "assigned": """
        from i2i import hookimpl

        @hookimpl
        def i2i_register_tasks(register):
            pass

        def _generators(register):
            register("odd_gen", lambda in_channels, out_channels: None)

        globals()["i2i_register_generators"] = hookimpl(_generators)
    """,
    "imported": """
        from i2i import hookimpl
        from fake_odd_impl import i2i_register_generators as generators  # noqa: F401

        @hookimpl
        def i2i_register_tasks(register):
            pass
    """,
    "star": """
        from i2i import hookimpl
        from fake_odd_impl import *  # noqa: F403

        @hookimpl
        def i2i_register_tasks(register):
            pass
    """,
}
ODD_IMPL = """
    from i2i import hookimpl

    @hookimpl
    def i2i_register_generators(register):
        register("odd_gen", lambda in_channels, out_channels: None)
"""


@pytest.mark.parametrize("how", sorted(HOOK_ELSEWHERE))
def test_a_module_whose_hooks_are_not_all_plain_is_imported_and_loses_none(
    fake_site, monkeypatch, how
):
    """Only modules whose every hook is a plain ``@hookimpl`` function are deferred; the
    others load at start-up as before, so a hook made another way is never dropped."""
    (fake_site / "fake_odd_impl.py").write_text(textwrap.dedent(ODD_IMPL))
    (fake_site / f"fake_odd_{how}.py").write_text(textwrap.dedent(HOOK_ELSEWHERE[how]))
    monkeypatch.delitem(sys.modules, f"fake_odd_{how}", raising=False)
    monkeypatch.delitem(sys.modules, "fake_odd_impl", raising=False)
    plugins = (*BUILTIN_PLUGINS, f"fake_odd_{how}")
    if how == "imported":  # pluggy refuses a hook under another name, at start-up as before
        with pytest.raises(Exception, match="generators"):
            make_plugin_manager(load_entrypoints=False, builtins=plugins)
        return
    pm = make_plugin_manager(load_entrypoints=False, builtins=plugins)
    assert f"fake_odd_{how}" in sys.modules
    assert "odd_gen" in Catalog.from_plugin_manager(pm).generators


def test_a_module_made_in_code_registers_as_itself():
    module = types.ModuleType("fake_handmade_plugin")  # no source, no spec
    module.i2i_register_tasks = hookimpl(lambda register: None)
    sys.modules[module.__name__] = module
    try:
        pm = make_plugin_manager(load_entrypoints=False, builtins=(module.__name__,))
        assert pm.get_plugin(module.__name__) is module
    finally:
        del sys.modules[module.__name__]


def test_every_builtin_stands_in_for_exactly_its_modules_hooks(pm):
    """The built-ins register without being imported; each stand-in has the hooks that the
    module itself implements, so nothing a module registers is lost."""
    rows = {r["name"]: r for r in describe_plugins(pm)}
    for name in BUILTIN_PLUGINS:
        module = importlib.import_module(name)
        hooks = sorted(n for n in dir(module) if pm.parse_hookimpl_opts(module, n) is not None)
        assert type(pm.get_plugin(name)).__name__ == "DeferredPlugin", name
        assert rows[name]["hooks"] == hooks and hooks, name
        assert rows[name]["path"] == module.__file__


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


def test_a_plugin_that_fails_on_first_use_names_itself_and_the_way_out(
    fake_site, monkeypatch, capsys
):
    """A plain plugin module is imported when its hooks are first called: `i2i --help` works
    without it, and a command that needs it stops with the message start-up would give."""
    from i2i.cli import main

    monkeypatch.delenv("I2I_LOAD_PLUGINS", raising=False)
    broken = "raise ImportError('no gpu here')\n" + textwrap.dedent(GOOD_PLUGIN)
    write_fake_distribution(fake_site, "fake-broken", "fake_broken_plugin", broken)
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "translate" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["list", "generators"])
    assert info.value.code == 1
    msg = capsys.readouterr().err
    assert msg.startswith("Error: Plugin 'fake_broken_plugin' from distribution fake-broken")
    assert "no gpu here" in msg and "I2I_LOAD_PLUGINS=" in msg and "Traceback" not in msg
    with pytest.raises(PluginLoadError) as loaded:
        Catalog.from_plugin_manager(make_plugin_manager())
    assert isinstance(loaded.value.__cause__, ImportError)


def test_a_plugin_with_a_syntax_error_fails_at_start_up(fake_site, monkeypatch):
    monkeypatch.delenv("I2I_LOAD_PLUGINS", raising=False)
    broken = textwrap.dedent(GOOD_PLUGIN) + "def oops(:\n"
    write_fake_distribution(fake_site, "fake-broken", "fake_broken_plugin", broken)
    with pytest.raises(PluginLoadError, match="'fake_broken_plugin'.*SyntaxError"):
        make_plugin_manager()


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
