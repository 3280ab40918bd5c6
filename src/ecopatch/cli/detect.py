"""``ecopatch detect``: suspect patches (疑似图斑) between two dates."""

from __future__ import annotations

from pathlib import Path

import click

from ecopatch.cli.options import (
    block_opt,
    check_new_outputs,
    open_pair,
    out_opt,
    overwrite_opt,
    progress_opt,
    scene_opts,
    scheduler_opt,
)


@click.command()
@scene_opts
@click.option("--within", default=None, type=click.Path(exists=True),
              help="Reserve / zone polygons; only change inside them is reported.")
@click.option("--zone-field", default="auto", show_default=True, help="Zone field of --within ('none': no zones).")
@click.option("--name-field", default="auto", show_default=True, help="Reserve-name field of --within.")
@click.option("--min-area", default=400.0, show_default=True, type=click.FloatRange(min=0),
              help="Minimum mapping unit.")
@click.option("--unit", "min_area_unit", default="m2", show_default=True, type=click.Choice(["m2", "mu", "ha"]),
              help="Unit of --min-area.")
@click.option("--margin", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Also watch this many metres around the reserves.")
@click.option("--exclude", default=None, type=click.Path(exists=True),
              help="Approved projects / permitted activities to leave out.")
@click.option("--gain/--no-gain", default=True, show_default=True, help="Also report vegetation gain.")
@out_opt
@overwrite_opt
@block_opt
@scheduler_opt
@progress_opt
def detect(within, zone_field, name_field, min_area, min_area_unit, margin, exclude, gain, out, overwrite, block,
           scheduler, progress, **scene):  # type: ignore[no-untyped-def]
    """Find new disturbance inside the reserves: one polygon per suspect patch.

    Writes OUT (GPKG, GeoJSON, KML, CSV or XLSX) and, next to it,
    OUT_observation.csv with the area of each zone observed at both dates.

    Example: ecopatch detect --before B.SAFE --after A.SAFE --within reserves.gpkg
    --min-area 400 --out patches.gpkg
    """
    from ecopatch.analyses.encroachment import detect_changes
    from ecopatch.io.vector import read_patches, write_tables
    from ecopatch.units import area_to_m2

    side = Path(out).with_name(Path(out).stem + "_observation.csv")
    check_new_outputs(out, side, overwrite=overwrite)
    b, a, swap = open_pair(scene)
    w = read_patches(within) if within else None
    ex = read_patches(exclude) if exclude else None
    patches = detect_changes(
        b, a, w, min_area_m2=area_to_m2(min_area, min_area_unit), margin_m=margin, exclude=ex,
        zone_field=None if zone_field.lower() == "none" else zone_field,
        name_field=None if name_field.lower() == "none" else name_field,
        include_gain=gain, block=block, scheduler=scheduler, progress=progress, swap_dates=swap,
    )
    from ecopatch.analyses.encroachment import observation_table

    obs = observation_table(patches)
    tables = [(patches, Path(out))]
    if len(obs):
        tables.append((obs, side))
    written = write_tables(tables, overwrite=overwrite)  # both or neither
    click.echo(summary_text(patches))
    for w in written:
        click.echo(f"wrote {w}")


def summary_text(patches) -> str:  # type: ignore[no-untyped-def]
    """A few lines about a patch table, for the terminal."""
    if len(patches) == 0:
        return "no suspect patch found"
    by_type = patches.groupby("change_type")["area_m2"].agg(["count", "sum"])
    parts = [f"{t}: {int(r['count'])} ({r['sum']:,.0f} m²)" for t, r in by_type.iterrows()]
    return f"{len(patches)} suspect patches — " + "; ".join(parts)
