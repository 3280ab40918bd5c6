"""``ecopatch detect``: suspect patches (疑似图斑) between two dates."""

from __future__ import annotations

from pathlib import Path

import click

from ecopatch.cli.options import (
    block_opt,
    check_new_outputs,
    open_pair,
    options_of,
    out_opt,
    overwrite_opt,
    pop_options,
    progress_opt,
    scene_opts,
    scheduler_opt,
)
from ecopatch.options import DetectOptions


class AreaOrAuto(click.ParamType):
    """A minimum mapping unit: a number >= 0 or ``auto``."""

    name = "AREA|auto"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float | str:
        """``"auto"``, or ``value`` as a float >= 0."""
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        try:
            x = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            self.fail(f"{value!r}: give a number >= 0 or 'auto'", param, ctx)
        if not x >= 0 or x == float("inf"):
            self.fail(f"{value!r}: give a number >= 0 or 'auto'", param, ctx)
        return x


@click.command()
@scene_opts
@click.option("--reserves", "--within", "reserves", default=None, type=click.Path(exists=True),
              help="Reserve / zone polygons; only change inside them is reported (--within: the same).")
@click.option("--min-area", default=DetectOptions().min_area_m2, show_default=True, type=AreaOrAuto(),
              help="Minimum mapping unit; 'auto': ten pixels of the imagery, 400-1000 m².")
@click.option("--core-min-area", default=None, type=click.FloatRange(min=0),
              help="Minimum mapping unit in core zones (核心区), in --unit (default 400 m²); the smaller of it "
                   "and --min-area applies there.")
@click.option("--unit", "min_area_unit", default="m2", show_default=True, type=click.Choice(["m2", "mu", "ha"]),
              help="Unit of --min-area and --core-min-area.")
@click.option("--exclude", default=None, type=click.Path(exists=True),
              help="Approved projects / permitted activities to leave out.")
@options_of(DetectOptions)
@out_opt
@overwrite_opt
@block_opt
@scheduler_opt
@progress_opt
def detect(reserves, min_area, core_min_area, min_area_unit, exclude, out, overwrite, block, scheduler, progress,
           **params):
    """Find new disturbance inside the reserves: one polygon per suspect patch.

    Writes OUT (GPKG, GeoJSON, KML, CSV or XLSX) and, next to it,
    OUT_observation.csv with the area of each zone observed at both dates.

    Example: ecopatch detect --before B.SAFE --after A.SAFE --reserves reserves.gpkg
    --min-area 400 --out patches.gpkg
    """
    from ecopatch.analyses.encroachment import detect_changes
    from ecopatch.geo.units import area_to_m2
    from ecopatch.vector.layers import read_patches, write_tables

    side = Path(out).with_name(Path(out).stem + "_observation.csv")
    check_new_outputs(out, side, overwrite=overwrite)
    opts = pop_options(DetectOptions, params,
                       min_area_m2=min_area if min_area == "auto" else area_to_m2(min_area, min_area_unit),
                       core_min_area_m2=(DetectOptions().core_min_area_m2 if core_min_area is None
                                         else area_to_m2(core_min_area, min_area_unit)))
    b, a, swap = open_pair(params)
    zones = read_patches(reserves) if reserves else None
    ex = read_patches(exclude) if exclude else None
    patches = detect_changes(b, a, zones, options=opts, exclude=ex, block=block, scheduler=scheduler,
                             progress=progress, swap_dates=swap)
    from ecopatch.analyses.encroachment import observation_table

    obs = observation_table(patches)
    tables = [(patches, Path(out))]
    if len(obs):
        tables.append((obs, side))
    written = write_tables(tables, overwrite=overwrite)  # both or neither
    click.echo(summary_text(patches))
    for w in written:
        click.echo(f"wrote {w}")


def summary_text(patches) -> str:
    """A few lines about a patch table, for the terminal."""
    if len(patches) == 0:
        return "no suspect patch found"
    by_type = patches.groupby("change_type")["area_m2"].agg(["count", "sum"])
    parts = [f"{t}: {int(r['count'])} ({r['sum']:,.0f} m²)" for t, r in by_type.iterrows()]
    return f"{len(patches)} suspect patches — " + "; ".join(parts)
