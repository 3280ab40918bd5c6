"""``ecopatch mines``: each mine's history (一矿一档) and the field's restoration verdicts (修复核查).

Each command parses its arguments, opens the :class:`ecopatch.ledger.Ledger`,
calls it or :mod:`ecopatch.fieldcheck` with it and prints a short summary; it
computes nothing itself.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING

import click

from ecopatch.cli.ledger import DATE, ledger_arg
from ecopatch.cli.options import overwrite_opt
from ecopatch.vector.sanitize import for_terminal
from ecopatch.vector.tables import csv_text

if TYPE_CHECKING:
    from ecopatch.ledger import Ledger

__all__ = ["mines"]

_SHOWN = ("patch_id", "date_after", "status", "restoration_rate", "restored_m2", "degraded_m2", "fvc_after",
          "valid_fraction", "alerts", "date_before")


def _open(path: str) -> Ledger:
    from ecopatch.ledger import Ledger

    return Ledger(path, create=False)


@click.group(name="mines")
def mines() -> None:
    """Mine histories (一矿一档) and restoration verdicts from the field (修复核查)."""


@mines.command("history")
@ledger_arg
@click.argument("mine", required=False)
@click.option("--csv", "as_csv", is_flag=True, help="Print every column as CSV.")
@click.option("--superseded", is_flag=True, help="Show the rows later runs of the same date replaced.")
def history(ledger_path: str, mine: str | None, as_csv: bool, superseded: bool) -> None:
    """Show the history of MINE (a 矿山编号), or of every mine: one row per date."""
    table = _open(ledger_path).mine_history(mine, superseded=superseded)
    if mine is not None and table.empty and not superseded:
        raise click.BadParameter(f"no history for mine {mine!r} in {ledger_path}", param_hint="MINE")
    if as_csv:
        click.echo(csv_text(table), nl=False)
        return
    if table.empty:
        click.echo("no mine history recorded")
        return
    click.echo(f"{'mine':<12} {'date':<10} {'status':<17} {'rate':>6} {'restored m2':>12} {'lost m2':>9} "
               f"{'FVC':>5} {'seen':>5}  alerts (reference date)")
    for c in table.to_dict("records"):
        click.echo(for_terminal(f"{c['patch_id']:<12} {c['date_after']!s:<10} {c['status']:<17} "
                                f"{_pct(c['restoration_rate']):>6} {_num(c['restored_m2']):>12} "
                                f"{_num(c['degraded_m2']):>9} {_f2(c['fvc_after']):>5} "
                                f"{_pct(c['valid_fraction']):>5}  {c['alerts'] or '-'} ({c['date_before']})"))


def _pct(v: object) -> str:
    try:
        return f"{float(v):.0%}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"


def _num(v: object) -> str:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"
    return "-" if f != f else f"{f:,.0f}"


def _f2(v: object) -> str:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"
    return "-" if f != f else f"{f:.2f}"


@mines.command("template")
@ledger_arg
@click.argument("out", type=click.Path(dir_okay=False))
@overwrite_opt
def template(ledger_path: str, out: str, overwrite: bool) -> None:
    """Write OUT (.xlsx): one row per mine for the field team's verdicts (已验收, 未通过验收, ...)."""
    from ecopatch.fieldcheck import export_verdict_template

    click.echo(str(export_verdict_template(_open(ledger_path), out, overwrite=overwrite)))


@mines.command("import")
@ledger_arg
@click.argument("verdicts", type=click.Path(exists=True, dir_okay=False))
@click.option("--today", type=DATE, default=None, help="Inspection dates after this are refused (default: today).")
@click.option("--actor", default=None, help="Who imports (kept with each verdict).")
@click.option("--strict", is_flag=True, help="Record nothing if any row is rejected (exit 1).")
@click.pass_context
def import_(ctx: click.Context, ledger_path: str, verdicts: str, today: _dt.date | None, actor: str | None,
            strict: bool) -> None:
    """Import the field's restoration verdicts (VERDICTS: .xlsx, .csv or .gpkg) into the ledger."""
    from ecopatch.fieldcheck import import_verdicts

    report = import_verdicts(_open(ledger_path), verdicts, today=today, actor=actor, strict=strict)
    click.echo(str(report))
    if not report.applied:
        ctx.exit(1)


@mines.command("agreement")
@ledger_arg
@click.option("--max-days", type=click.IntRange(0, 3650), default=365, show_default=True,
              help="Largest gap between an inspection and the observation it is compared with.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the per-verdict table as CSV.")
def agreement(ledger_path: str, max_days: int, as_csv: bool) -> None:
    """How far the field's verdicts agree with the imagery's status of each mine."""
    from ecopatch.fieldcheck import verdict_agreement

    led = _open(ledger_path)
    report = verdict_agreement(led.mine_verdicts(), led.mine_history(), max_days=max_days)
    if as_csv:
        click.echo(csv_text(report.table), nl=False)
        return
    click.echo(for_terminal(str(report)))
    if report.n:
        click.echo(report.confusion.to_string())
