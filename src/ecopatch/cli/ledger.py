"""``ecopatch ledger``: add detections to the case ledger, summarise, export, check.

Each command parses its arguments, calls :class:`ecopatch.ledger.Ledger` and
prints a short summary; it computes nothing itself.
"""

from __future__ import annotations

import datetime as _dt

import click

from ecopatch.cli.options import overwrite_opt
from ecopatch.vector.sanitize import for_terminal

__all__ = ["ledger"]


class _DateType(click.ParamType):
    """A calendar date written YYYY-MM-DD."""

    name = "DATE"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None):
        """Parse ``value`` as an ISO date."""
        if isinstance(value, _dt.date):
            return value
        try:
            return _dt.date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date; write it as YYYY-MM-DD", param, ctx)


DATE = _DateType()

today_opt = click.option(
    "--today",
    type=DATE,
    default=None,
    help="Reference date for red/yellow/green codes and events (default: today).",
)
ledger_arg = click.argument(
    "ledger_path", metavar="LEDGER", type=click.Path(exists=True, dir_okay=False)
)


def _open(path: str, *, create: bool = False):
    from ecopatch.ledger import Ledger

    return Ledger(path, create=create)


@click.group(name="ledger")
def ledger() -> None:
    """Case ledger (台账): every suspect patch from detection to closure (销号)."""


@ledger.command("add")
@click.argument("patches", type=click.Path(exists=True))
@click.option(
    "--ledger",
    "ledger_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Ledger GeoPackage (created if missing).",
)
@click.option("--run-id", required=True, help="ID of the detection run, e.g. 2024-06-s2.")
@click.option("--layer", default=None, help="Layer of PATCHES to read (default: the first).")
@click.option(
    "--min-overlap",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=0.3,
    show_default=True,
    help="Overlap (intersection over the smaller area) that keeps a case's ID.",
)
@click.option(
    "--max-new-cases",
    type=click.IntRange(0),
    default=200,
    show_default=True,
    help="Refuse (write nothing) if the patches would open more new cases than this: so many from one "
    "pair of scenes usually means season, haze or cloud, not change.",
)
@click.option(
    "--allow-many-cases",
    is_flag=True,
    help="Open any number of new cases (lifts --max-new-cases).",
)
@today_opt
def add(
    patches: str,
    ledger_path: str,
    run_id: str,
    layer: str | None,
    min_overlap: float,
    max_new_cases: int,
    allow_many_cases: bool,
    today: _dt.date | None,
) -> None:
    """Add the suspect patches in PATCHES (a polygon file) to the ledger.

    Every patch is checked first (CRS and axis order, dates, change type,
    confidence, text); a problem refuses the whole file and writes nothing.
    """
    import geopandas as gpd

    from ecopatch.errors import VectorReadError

    try:
        gdf = gpd.read_file(patches, layer=layer, engine="pyogrio")
    except Exception as exc:  # noqa: BLE001 - any GDAL error means unreadable
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise VectorReadError(f"cannot read suspect patches from {patches}: {first}") from exc
    result = _open(ledger_path, create=True).add_detections(
        gdf, run_id, min_overlap=min_overlap, today=today,
        max_new_cases=None if allow_many_cases else max_new_cases,
    )
    click.echo(for_terminal(str(result)))


@ledger.command("summary")
@ledger_arg
@today_opt
@click.option("--csv", "as_csv", is_flag=True, help="Print the tidy table as CSV.")
def summary(ledger_path: str, today: _dt.date | None, as_csv: bool) -> None:
    """Counts and areas by status, colour, change type, reserve and zone."""
    table = _open(ledger_path).summary(today=today)
    if as_csv:
        from ecopatch.vector.tables import csv_text

        click.echo(csv_text(table), nl=False)
        return
    for dim, part in table.groupby("dimension", sort=False):
        click.echo(f"[{dim}]")
        for r in part.itertuples(index=False):
            click.echo(for_terminal(
                f"  {r.label:<10} {r.key:<16} {r.n_cases:>6} cases {r.area_m2:>14,.1f} m2 "
                f"{r.area_mu:>10,.2f} mu"
            ))


@ledger.command("export")
@ledger_arg
@click.argument("out_dir", type=click.Path(file_okay=False))
@today_opt
@overwrite_opt
def export(ledger_path: str, out_dir: str, today: _dt.date | None, overwrite: bool) -> None:
    """Write the ledger report (ledger_report.xlsx, ledger_cases.csv) into OUT_DIR."""
    paths = _open(ledger_path).export_report(out_dir, today=today, overwrite=overwrite)
    for p in paths.values():
        click.echo(str(p))


@ledger.command("check")
@ledger_arg
@click.pass_context
def check(ctx: click.Context, ledger_path: str) -> None:
    """Check the ledger's integrity; exit 1 if a problem is found."""
    report = _open(ledger_path).check()
    click.echo(for_terminal(str(report)))
    if not report.ok:
        ctx.exit(1)


@ledger.command("advance")
@ledger_arg
@click.argument("case_id")
@click.argument(
    "kind",
    type=click.Choice(
        [
            "dispatch",
            "confirm",
            "dismiss",
            "start_rectification",
            "complete",
            "close",
            "reopen",
            "update",
            "note",
        ]  # fmt: skip
    ),
)
@click.option("--date", "on", type=DATE, default=None, help="Date of the event (default: today).")
@click.option("--actor", default=None, help="Who did it.")
@click.option("--note", default=None, help="Free text.")
@click.option("--attach", multiple=True, help="Path of a photo or document (repeatable).")
@click.option("--unit", "responsible_unit", default=None, help="Responsible unit (责任单位).")
@click.option("--deadline", type=DATE, default=None, help="Rectification deadline (整改期限).")
@click.option("--real-type", default=None, help="HJ 1156 activity type found on the ground.")
def advance(
    ledger_path: str,
    case_id: str,
    kind: str,
    on: _dt.date | None,
    actor: str | None,
    note: str | None,
    attach: tuple[str, ...],
    responsible_unit: str | None,
    deadline: _dt.date | None,
    real_type: str | None,
) -> None:
    """Record one lifecycle event (KIND) on case CASE_ID, e.g. close (销号)."""
    case = _open(ledger_path).advance(
        case_id,
        kind,
        today=on,
        actor=actor,
        note=note,
        attachments=attach,
        responsible_unit=responsible_unit,
        deadline=deadline,
        real_type=real_type,
    )
    click.echo(f"{case.case_id}: {case.status.value} ({case.status.zh})")
