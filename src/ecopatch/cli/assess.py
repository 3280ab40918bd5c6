"""``ecopatch assess``: restoration of each mine between two dates."""

from __future__ import annotations

import click

from ecopatch.cli.options import (
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
from ecopatch.options import AssessOptions


@click.command()
@scene_opts
@click.option("--mines", required=True, type=click.Path(exists=True),
              help="Mine polygons (GPKG, SHP, GeoJSON, GeoParquet).")
@click.option("--id-field", default=None, help="Field with the mine ID, e.g. 矿山编号 (default: generated).")
@click.option("--layer", default=None, help="Layer of a multi-layer mines file.")
@options_of(AssessOptions)
@out_opt
@overwrite_opt
@click.option("--block", type=click.IntRange(16, 8192), default=None,
              help="Window size for windowed processing (pixels). [default: 1024; 512 when a file is striped]")
@scheduler_opt
@progress_opt
def assess(mines, id_field, layer, out, overwrite, block, scheduler, progress,
           **params):
    """Damaged, restored and still-bare area of every mine, in m² and mu, with a status.

    Example: ecopatch assess --before S2_2021.SAFE --after S2_2024.SAFE --mines mines.gpkg
    --id-field 矿山编号 --out result.xlsx

    A stack without band descriptions: --bands red=3,green=2,blue=1,nir=4,swir1=5,swir2=6 --scale 0.0001
    """
    from ecopatch.analyses.restoration import assess_restoration
    from ecopatch.vector.layers import read_patches, write_table

    check_new_outputs(out, overwrite=overwrite)
    opts = pop_options(AssessOptions, params)
    b, a, swap = open_pair(params)
    m = read_patches(mines, id_field=id_field, layer=layer)
    result = assess_restoration(b, a, m, options=opts, block=block, scheduler=scheduler, progress=progress,
                                swap_dates=swap)
    write_table(result, out, overwrite=overwrite)
    click.echo(summary_text(result))
    click.echo(f"wrote {out}")


def summary_text(result) -> str:
    """A few lines about an assessment table, for the terminal."""
    from ecopatch.geo.units import m2_to_mu

    counts = result["status_zh"].value_counts()
    dam = float(result["damaged_m2"].sum())
    res = float(result["restored_m2"].sum())
    lines = [
        f"{len(result)} mines: " + ", ".join(f"{k} {v}" for k, v in counts.items()),
        f"damaged {dam:,.0f} m² ({m2_to_mu(dam):,.1f} mu), restored {res:,.0f} m² "
        f"({m2_to_mu(res):,.1f} mu), rate {res / dam:.1%}" if dam > 0 else "no damaged ground found",
    ]
    return "\n".join(lines)
