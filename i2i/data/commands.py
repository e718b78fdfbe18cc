"""``i2i data``: fetch the pix2pix datasets, combine paired folders into A|B files.

>>> import click
>>> cli = click.Group("i2i")
>>> i2i_register_commands(cli)
>>> sorted(cli.commands["data"].commands)
['combine', 'fetch']
"""

from __future__ import annotations

from pathlib import Path

import click

from i2i import hookimpl


@hookimpl
def i2i_register_commands(cli: click.Group) -> None:
    from i2i.data.fetch import PIX2PIX_DATASETS

    @cli.group("data")
    def data_group() -> None:
        """Fetch and prepare datasets."""

    @data_group.command("fetch")
    @click.argument("name", type=click.Choice(sorted(PIX2PIX_DATASETS)))
    @click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("datasets"),
        show_default=True,
        help="Folder to put the dataset in (as ROOT/NAME).",
    )
    @click.option("--sha256", help="Expected SHA-256 of the archive; checked after download.")
    @click.option("--keep-archive", is_flag=True, help="Keep the .tar.gz after extracting it.")
    @click.option("--quiet", is_flag=True, help="No progress bar.")
    def fetch_cmd(
        name: str, root: Path, sha256: str | None, keep_archive: bool, quiet: bool
    ) -> None:
        """Download and unpack the pix2pix dataset NAME (resumable; $I2I_DATASETS_URL sets the server)."""
        from i2i.data.fetch import FetchError, dataset_url, fetch_dataset

        if not quiet:
            click.echo(f"{name}: {PIX2PIX_DATASETS[name].summary}", err=True)
            click.echo(f"from {dataset_url(name)}", err=True)
        try:
            folder = fetch_dataset(
                name, root, sha256=sha256, progress=not quiet, keep_archive=keep_archive
            )
        except FetchError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{name} is ready in {folder}")

    @data_group.command("combine")
    @click.argument("a_dir", type=click.Path(file_okay=False, path_type=Path))
    @click.argument("b_dir", type=click.Path(file_okay=False, path_type=Path))
    @click.argument("out", type=click.Path(file_okay=False, path_type=Path))
    @click.option("--overwrite", is_flag=True, help="Replace A|B files that already exist.")
    @click.option("--quiet", is_flag=True, help="No progress bar.")
    def combine_cmd(a_dir: Path, b_dir: Path, out: Path, overwrite: bool, quiet: bool) -> None:
        """Write A|B files (A left, B right) into OUT from same-named images in A_DIR and B_DIR.

        Split folders (train/, val/, ...) found in both A_DIR and B_DIR are kept in OUT.
        """
        from i2i.data.combine import combine_folders
        from i2i.data.io import DataError

        try:
            written = combine_folders(a_dir, b_dir, out, overwrite=overwrite, progress=not quiet)
        except (DataError, FileExistsError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"wrote {len(written)} A|B files to {out}")
