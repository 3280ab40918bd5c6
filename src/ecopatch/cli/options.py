"""Options shared by several ``ecopatch`` subcommands."""

from __future__ import annotations

import click

overwrite_opt = click.option(
    "--overwrite/--no-overwrite",
    default=False,
    show_default=True,
    help="Replace existing output files.",
)

out_opt = click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="Output file; the format follows the extension (.gpkg, .geojson, .csv, .xlsx, .kml).",
)

progress_opt = click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: only on a terminal).",
)

scheduler_opt = click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Dask scheduler: 'threads' (default), 'synchronous', or a dask.distributed address.",
)
