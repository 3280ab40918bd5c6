"""``ecopatch fieldcheck``: field packages out, field results in (地上查).

Each command parses its arguments, opens the :class:`ecopatch.ledger.Ledger`,
calls :mod:`ecopatch.fieldcheck` with it and prints a short summary; it
computes nothing itself.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING

import click

from ecopatch.cli.ledger import DATE, ledger_arg, today_opt
from ecopatch.cli.options import overwrite_opt

if TYPE_CHECKING:
    from ecopatch.ledger import Ledger

__all__ = ["fieldcheck"]


def _open(path: str) -> Ledger:
    from ecopatch.ledger import Ledger

    return Ledger(path, create=False)


@click.group(name="fieldcheck")
def fieldcheck() -> None:
    """Ground check (地上查): field packages out, field results in."""


@fieldcheck.command("export")
@ledger_arg
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--case", "case_ids", multiple=True, help="Case ID to include (repeatable).")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    help="Include the cases in this state (repeatable; default: detected, dispatched, reopened).",
)
@click.option("--dispatch", is_flag=True, help="Record the exported cases as dispatched (已派发).")
@today_opt
@overwrite_opt
def export(
    ledger_path: str,
    out_dir: str,
    case_ids: tuple[str, ...],
    statuses: tuple[str, ...],
    dispatch: bool,
    today: _dt.date | None,
    overwrite: bool,
) -> None:
    """Write the field package (GPKG, KML, CSV, XLSX, results template) into OUT_DIR."""
    led = _open(ledger_path)
    cases = None
    if statuses:
        try:
            cases = list(led.cases(status=statuses)["case_id"])
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--status") from None
    if case_ids:
        cases = sorted(set(cases or []) | set(case_ids))
    from ecopatch.fieldcheck import export_package

    pkg = export_package(led, out_dir, cases, overwrite=overwrite, today=today, dispatch=dispatch)
    click.echo(str(pkg))


@fieldcheck.command("import")
@ledger_arg
@click.argument("results", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--today",
    type=DATE,
    default=None,
    help="Inspection dates after this are refused (default: today).",
)
@click.option("--strict", is_flag=True, help="Apply nothing if any row is rejected (exit 1).")
@click.pass_context
def import_(
    ctx: click.Context, ledger_path: str, results: str, today: _dt.date | None, strict: bool
) -> None:
    """Import filled field results (RESULTS: .xlsx, .csv or .gpkg) into the ledger."""
    from ecopatch.fieldcheck import import_results

    report = import_results(_open(ledger_path), results, today=today, strict=strict)
    click.echo(str(report))  # ImportReport shows users' text through for_terminal
    if not report.applied:
        ctx.exit(1)
