"""The ``i2i`` command line: a thin layer over the Python API.

``build_cli(pm)`` builds the command group from a plugin manager, so that tests and docs make
their own CLI with no import-time side effects. Plugins add commands through
``i2i_register_commands(cli)``.
"""

from __future__ import annotations

import json
import sys
from functools import cached_property
from typing import Any

import click
import pluggy

from i2i import __version__
from i2i.catalog import KINDS, Catalog
from i2i.registry import UnknownComponentError


class AppContext:
    """What every command gets in ``ctx.obj``: the plugin manager and its catalog."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog.from_plugin_manager(self.pm)


def app(ctx: click.Context | None = None) -> AppContext:
    """The :class:`AppContext` of the running command."""
    ctx = ctx or click.get_current_context()
    return ctx.find_object(AppContext)


class ComponentName(click.ParamType):
    """A click type for a registered name: unknown names exit 2 with suggestions; completes names."""

    def __init__(self, kind: str):
        self.kind = kind
        self.name = KINDS[kind][1] if kind in KINDS else kind

    def _registry(self, ctx: click.Context | None):
        obj = ctx.find_object(AppContext) if ctx is not None else None
        if obj is None:
            from i2i import catalog

            return catalog().registry(self.kind)
        return obj.catalog.registry(self.kind)

    def convert(self, value: Any, param, ctx):
        if value is None:
            return None
        try:
            return self._registry(ctx).get(str(value)).name
        except UnknownComponentError as exc:
            self.fail(str(exc), param, ctx)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        reg = self._registry(ctx)
        return [CompletionItem(n) for n in reg.choices() if n.startswith(incomplete)]


def _entry_row(entry) -> dict[str, Any]:
    row: dict[str, Any] = {"name": entry.name, "kind": entry.kind, "summary": entry.summary}
    if entry.aliases:
        row["aliases"] = list(entry.aliases)
    row.update({k: v for k, v in entry.meta.items() if _jsonable(v)})
    row["provider"] = entry.provider
    return row


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def _task_meta(entry) -> dict[str, Any]:
    task = entry.obj
    return {
        "in_channels": task.in_channels,
        "out_channels": task.out_channels,
        "layout": task.layout,
        "direction": task.direction,
    }


def build_cli(pm: pluggy.PluginManager) -> click.Group:
    """The ``i2i`` click group for plugin manager ``pm``."""

    @click.group(name="i2i", context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="i2i")
    @click.pass_context
    def cli(ctx: click.Context) -> None:
        """i2i: image-to-image translation with pluggable tasks, networks and losses."""
        ctx.obj = AppContext(pm)

    @cli.command("list")
    @click.argument("kind", required=False, type=click.Choice(list(KINDS)))
    @click.argument("pattern", required=False, default="*")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON rows.")
    @click.pass_context
    def list_cmd(ctx: click.Context, kind: str | None, pattern: str, as_json: bool) -> None:
        """List registered components, optionally of one KIND matching a wildcard PATTERN."""
        cat = app(ctx).catalog
        kinds = [kind] if kind else list(KINDS)
        rows = []
        for k in kinds:
            for entry in cat.registry(k).entries(pattern):
                row = _entry_row(entry)
                if k == "tasks":
                    row.update(_task_meta(entry))
                rows.append(row)
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        for k in kinds:
            krows = [r for r in rows if r["kind"] == KINDS[k][1]]
            if not krows:
                continue
            click.echo(f"{k}:")
            for r in krows:
                click.echo("  " + _format_row(r))

    @cli.command("info")
    @click.argument("name")
    @click.option("--kind", type=click.Choice(list(KINDS)), help="Look only in this registry.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.pass_context
    def info_cmd(ctx: click.Context, name: str, kind: str | None, as_json: bool) -> None:
        """Summary, options with defaults and provider of the component NAME."""
        cat = app(ctx).catalog
        kinds = [kind] if kind else list(KINDS)
        found = [cat.registry(k).get(name) for k in kinds if name in cat.registry(k)]
        if not found:
            choices = sorted({n for k in kinds for n in cat.registry(k).choices()})
            err = UnknownComponentError("component", name, choices)
            raise click.BadParameter(str(err).replace("i2i list components", "i2i list"))
        out = []
        for entry in found:
            row = _entry_row(entry)
            if entry.kind == "task":
                row.update(_task_meta(entry))
                row["defaults"] = dict(entry.obj.defaults)
                row["metrics"] = list(entry.obj.metrics)
            elif entry.kind == "recipe":
                row["options"] = entry.options()
                row["option_help"] = entry.obj.option_help()
                row["run_defaults"] = dict(getattr(entry.obj, "defaults", {}) or {})
                row["unpaired"] = bool(getattr(entry.obj, "unpaired", False))
            else:
                row["options"] = {
                    k: v if _jsonable(v) else repr(v) for k, v in entry.options().items()
                }
            out.append(row)
        if as_json:
            click.echo(json.dumps(out if len(out) > 1 else out[0], indent=2))
            return
        for row in out:
            click.echo(f"{row['name']} ({row['kind']})")
            for key, value in row.items():
                if key in ("name", "kind"):
                    continue
                if isinstance(value, dict):
                    click.echo(f"  {key}:")
                    for k2, v2 in value.items():
                        click.echo(f"    {k2} = {v2!r}")
                else:
                    click.echo(f"  {key}: {value}")

    @cli.command("plugins")
    @click.pass_context
    def plugins_cmd(ctx: click.Context) -> None:
        """Print the loaded plugins as JSON: name, version, hooks and where each came from."""
        from i2i.plugins import describe_plugins

        click.echo(json.dumps(describe_plugins(app(ctx).pm), indent=2))

    pm.hook.i2i_register_commands(cli=cli)
    return cli


def _format_row(r: dict[str, Any]) -> str:
    extras = []
    if "aliases" in r:
        extras.append("aliases: " + ", ".join(r["aliases"]))
    for key in ("receptive_field", "size_multiple", "kind_of_loss"):
        if key in r:
            extras.append(f"{key.replace('_', ' ')}: {r[key]}")
    if r["kind"] == "loss" and "type" in r:
        extras.append(r["type"])
    if r["kind"] == "task":
        extras.append(
            f"{r['in_channels']}->{r['out_channels']} ch, {r['layout']}, {r['direction']}"
        )
    tail = f"  [{'; '.join(extras)}]" if extras else ""
    return f"{r['name']:<22} {r['summary']}{tail}"


def describe_os_error(exc: OSError) -> str:
    """A failed file operation in one line, naming the file(s).

    >>> describe_os_error(NotADirectoryError(20, "Not a directory", "notes.txt/out"))
    'Not a directory: notes.txt/out'
    >>> describe_os_error(OSError(28, "No space left on device", "run/metrics.jsonl"))
    'the disk is full: No space left on device: run/metrics.jsonl'
    """
    import errno

    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    text = f"{exc.strerror or exc}" + (f": {' -> '.join(names)}" if names else "")
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        text = f"the disk is full: {text}"
    return text


def main(argv: list[str] | None = None) -> None:
    """Console entry point: build the default plugin manager, then run the CLI."""
    from i2i.plugins import PluginLoadError, make_plugin_manager

    try:
        pm = make_plugin_manager()
    except PluginLoadError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    try:
        build_cli(pm).main(args=argv, prog_name="i2i")
    except PluginLoadError as exc:  # an installed plugin imported when its hook is first called
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:  # a path of the user's that cannot be read or written (full disk...)
        if exc.filename is None:
            raise
        click.echo(f"Error: {describe_os_error(exc)}", err=True)
        sys.exit(1)
    except Exception as exc:
        devices = sys.modules.get("i2i.engine.devices")  # not imported: not from there
        if devices is None or not isinstance(exc, devices.DeviceUnavailableError):
            raise
        click.echo(f"Error: {exc}", err=True)  # from any command's --device
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
