"""``i2i study serve`` and ``i2i study summary``: the paper's "real vs fake" perceptual study.

>>> from i2i.plugins import make_plugin_manager
>>> from i2i.cli import build_cli
>>> sorted(build_cli(make_plugin_manager(load_entrypoints=False)).commands["study"].commands)
['serve', 'summary']
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from i2i import hookimpl
from i2i.study.protocol import MAIN_TRIALS, PRACTICE_TRIALS, SHOW_MS


def _method_folder(value: str) -> tuple[str | None, Path]:
    name, sep, folder = value.partition("=")
    if sep and name and "/" not in name:
        return name, Path(folder)
    return None, Path(value)


@click.group("study")
def study_group() -> None:
    """Run the paper's perceptual study (real vs generated, 1 s per trial) and summarise it."""


@study_group.command("serve")
@click.argument("results_dirs", nargs=-1, required=True, metavar="[NAME=]DIR...")
@click.option(
    "--answers",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON-lines file the answers are appended to (created if missing).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--practice", default=PRACTICE_TRIALS, show_default=True, type=click.IntRange(0))
@click.option("--trials", "main", default=MAIN_TRIALS, show_default=True, type=click.IntRange(1))
@click.option(
    "--show-ms",
    default=SHOW_MS,
    show_default=True,
    type=click.IntRange(1),
    help="How long both images stay on screen.",
)
@click.option("--seed", type=int, help="Seed of the trial plans [random].")
def serve_cmd(
    results_dirs: tuple[str, ...],
    answers: Path,
    host: str,
    port: int,
    practice: int,
    main: int,
    show_ms: int,
    seed: int | None,
) -> None:
    """Serve the study page over the real/generated pairs of result folders.

    Each DIR is an `i2i eval --out` report (or an `i2i ablate` run's eval folder); NAME=DIR
    names its method (default: the folder's name). Participants open the printed address.
    """
    from i2i.study.protocol import StudyError, load_pairs
    from i2i.study.server import make_server

    pairs = []
    try:
        for value in results_dirs:
            name, folder = _method_folder(value)
            pairs.extend(load_pairs(folder, name))
    except StudyError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        server = make_server(
            pairs,
            answers,
            host=host,
            port=port,
            practice=practice,
            main=main,
            show_ms=show_ms,
            seed=seed,
        )
    except StudyError as exc:  # the answers file cannot be appended to
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc
    methods = sorted({p.method for p in pairs})
    click.echo(f"{len(pairs)} pairs from {len(methods)} methods: {', '.join(methods)}")
    click.echo(f"study page: {server.url}  (answers: {answers})")
    click.echo("Ctrl-C stops.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@study_group.command("summary")
@click.argument("answers", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--practice", "phase", flag_value="practice", help="Summarise the practice trials.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def summary_cmd(answers: Path, phase: str | None, as_json: bool) -> None:
    """Per method: % of main trials where its generated image was judged real, +- s.e."""
    from i2i.study.protocol import StudyError, format_summary, read_records, summarise

    try:
        records, bad = read_records(answers)
    except StudyError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = summarise(records, phase=phase or "main")
    if as_json:
        click.echo(json.dumps({"phase": phase or "main", "methods": summary, "bad_lines": bad}))
        return
    if bad:
        click.echo(f"warning: {bad} line(s) of {answers} are not answers; left out", err=True)
    if not summary:
        raise click.ClickException(f"{answers} holds no {phase or 'main'} trial answers yet")
    participants = {r.get("participant") for r in records if r.get("phase") == (phase or "main")}
    click.echo(f"{len(participants)} participant(s), {phase or 'main'} trials")
    click.echo(format_summary(summary))


@hookimpl
def i2i_register_commands(cli: click.Group) -> None:
    """Add ``study serve`` and ``study summary``."""
    cli.add_command(study_group)
