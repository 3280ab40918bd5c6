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
    type=click.Path(dir_okay=False),
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
    help="Dask scheduler: 'threads' (default, all cores), 'synchronous', or a dask.distributed "
    "address such as tcp://10.0.0.5:8786.",
)

block_opt = click.option(
    "--block",
    default=512,
    show_default=True,
    type=click.IntRange(16, 8192),
    help="Window size in pixels for windowed processing.",
)


def scene_opts(f):  # type: ignore[no-untyped-def]
    """--before/--after and their sensor overrides."""
    f = click.option("--after-sensor", default=None, help="Sensor of the after scene (default: guessed).")(f)
    f = click.option("--before-sensor", default=None, help="Sensor of the before scene (default: guessed).")(f)
    f = click.option("--after", "after", required=True, type=click.Path(exists=True),
                     help="After scene: SAFE folder, STAC item, Landsat folder or GeoTIFF.")(f)
    f = click.option("--before", "before", required=True, type=click.Path(exists=True),
                     help="Before scene: SAFE folder, STAC item, Landsat folder or GeoTIFF.")(f)
    return f
