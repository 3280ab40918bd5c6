"""``ecopatch report``: the monthly report (HTML with figures, Excel workbook)."""

from __future__ import annotations

import datetime as _dt

import click

from ecopatch.cli.options import open_pair, overwrite_opt, scene_opts


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> _dt.date | None:
    if value is None:
        return None
    try:
        return _dt.date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date like 2024-09-30") from exc


@click.command()
@click.option("--assessment", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Mine restoration table written by `ecopatch assess`: GPKG/GeoJSON/GeoParquet (on the maps "
              "too) or XLSX/CSV (tables only).")
@click.option("--patches", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Suspect patches written by `ecopatch detect` (GPKG/GeoJSON/GeoParquet, or XLSX/CSV).")
@click.option("--ledger", "ledger_path", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Case ledger (GeoPackage): case list, red/yellow/green codes, field-check precision.")
@click.option("--reserves", default=None, type=click.Path(exists=True),
              help="Reserve zones, for the overview map.")
@scene_opts(required=False)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: report.html, report.xlsx, figures/.")
@click.option("--lang", default="zh", show_default=True, type=click.Choice(["zh", "en"]),
              help="Language of the HTML report and figures (the workbook always has Chinese headers).")
@click.option("--title", default=None, help="Report title.")
@click.option("--today", default=None, callback=_date, metavar="YYYY-MM-DD",
              help="Report date and reference date of the red/yellow/green codes (default: today).")
@click.option("--max-cards", default=30, show_default=True, type=click.IntRange(0, 10_000),
              help="At most this many mine cards.")
@overwrite_opt
def report(assessment, patches, ledger_path, reserves, out_dir, lang, title, today, max_cards, overwrite,
           **scene):
    """Write the report: self-contained HTML with maps and tables, and an Excel workbook.

    Example: ecopatch report --assessment mines_2024.gpkg --patches patches_2024.gpkg
    --ledger ledger.gpkg --before S2_2021.SAFE --after S2_2024.SAFE --out report_2024_09
    """
    if not (assessment or patches or ledger_path):
        raise click.UsageError("give at least one of --assessment, --patches, --ledger")
    if (scene.get("before") is None) != (scene.get("after") is None):
        raise click.UsageError("--before and --after go together")
    from ecopatch.ledger import Ledger
    from ecopatch.outputs.report import write_report
    from ecopatch.raster.source import check_pair
    from ecopatch.vector.layers import read_patches

    a = _read_result(assessment, "assessment", _MINE_COLUMNS) if assessment else None
    p = _read_result(patches, "patches", _PATCH_COLUMNS) if patches else None
    r = read_patches(reserves) if reserves else None
    led = Ledger(ledger_path, create=False) if ledger_path else None
    b, af, swap = open_pair(scene)
    if b is not None and af is not None:
        b, af = check_pair(b, af, swap_dates=swap)
    paths = write_report(out_dir, assessment=a, patches=p, ledger=led, before=b, after=af, reserves=r,
                         title=title, lang=lang, overwrite=overwrite, today=today, max_mine_cards=max_cards)
    n_fig = sum(1 for k in paths if k.startswith("figure:"))
    parts = []
    if a is not None:
        parts.append(f"{len(a)} mines")
    if p is not None:
        parts.append(f"{len(p)} patches")
    if led is not None:
        parts.append("ledger cases")
    click.echo(f"report of {', '.join(parts)}: {n_fig} figures")
    click.echo(f"wrote {paths['html']}")
    click.echo(f"wrote {paths['xlsx']}")


_MINE_COLUMNS = ("patch_id", "status", "damaged_m2", "restored_m2", "restoration_rate")
_PATCH_COLUMNS = ("patch_id", "change_type", "area_m2")
_TABLES = (".xlsx", ".xlsm", ".csv")


def _read_result(path: str, what: str, needed: tuple[str, ...]):
    """A result written by ``ecopatch assess``/``detect``: a polygon file, or the XLSX/CSV table."""
    from pathlib import Path

    from ecopatch.errors import InputDataError
    from ecopatch.vector.layers import read_patches
    from ecopatch.vector.tables import read_table

    suffix = Path(path).suffix.lower()
    if suffix in _TABLES:
        table = read_table(path)
    elif suffix == ".xls":
        raise InputDataError(f"{path}: an old Excel 97-2003 workbook; save it as .xlsx")
    else:
        table = read_patches(path, id_field="patch_id")
    missing = [c for c in needed if c not in table.columns]
    if missing:
        cmd = "ecopatch assess" if what == "assessment" else "ecopatch detect"
        raise InputDataError(
            f"{path}: the {what} table lacks column(s) {missing} (it has {list(table.columns)[:12]}); give "
            f"--{what} the file `{cmd}` wrote (.gpkg, .geojson, .xlsx or .csv), with its columns unchanged"
        )
    return table
