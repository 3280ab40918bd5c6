"""The mines' history (一矿一档) as the ledger keeps it (internal): columns, checks, rows.

:meth:`ecopatch.ledger.Ledger.record_assessment` takes a mines result (one row
per mine, from :func:`ecopatch.analyses.restoration.assess_restoration` or a scheduled
run), checks it with :func:`mine_records` and writes one ``mine_history`` row
per mine per date with :func:`write_mine_records`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ecopatch.errors import DuplicateIDError, InputDataError
from ecopatch.ledger.rows import supersede_mine_row, touch_contents
from ecopatch.ledger.schema import MINE_ROW
from ecopatch.ledger.values import as_date, as_float, as_str, clean, iso, now_utc, to_json

__all__ = [
    "MINE_COLUMNS",
    "MINE_OPTIONAL_COLUMNS",
    "AssessmentResult",
    "mine_record",
    "mine_records",
    "write_mine_records",
]

#: Columns ``record_assessment`` needs in a mines result, with their meaning.
MINE_COLUMNS: dict[str, str] = {
    "patch_id": "mine ID",
    "area_m2": "mine patch area, m²",
    "damaged_m2": "damaged (bare) area, m²",
    "restored_m2": "restored area, m²",
    "restoration_rate": "restored / damaged, fraction 0-1",
    "status": "restoration status class",
    "fvc_before": "fractional vegetation cover before, 0-1",
    "fvc_after": "fractional vegetation cover after, 0-1",
    "valid_fraction": "share of the patch observed (not cloud/nodata), 0-1",
    "date_before": "before date (ISO 8601)",
    "date_after": "after date (ISO 8601)",
}

#: Columns of ``mine_history`` kept when the mines result has them (else NULL), besides
#: :data:`MINE_COLUMNS`: areas in m², shares 0-1, the reference and the plan.
MINE_OPTIONAL_COLUMNS: dict[str, str] = {
    "observed_m2": "area observed at both dates, m²",
    "still_bare_m2": "damaged and not restored, m²",
    "degraded_m2": "vegetated at the reference, not at this date, m²",
    "veg_before_m2": "vegetated area at the reference, m²",
    "veg_after_m2": "vegetated area at this date, m²",
    "direction": "restoration direction key",
    "alerts": "comma-separated alert keys (degradation, rebound, behind_plan)",
    "target_year": "the plan's target year",
    "target_rate": "the plan's target restoration rate, 0-1",
    "reference_scene": "ID of the reference scene",
    "reference_rule": "how the reference was chosen",
}


@dataclass(frozen=True)
class AssessmentResult:
    """What :meth:`Ledger.record_assessment` did.

    Attributes
    ----------
    added : int
        Mines with no row for this date before.
    unchanged : int
        Mines whose row for this date already held the same figures.
    run_id : str
    replaced : int
        Mines whose row for this date held other figures (a rerun with other
        parameters or another reference): replaced, the old row kept in
        ``mine_history_superseded``.
    """

    added: int
    unchanged: int
    run_id: str
    replaced: int = 0

    def __str__(self) -> str:
        return (f"run {self.run_id}: {self.added} mine records added, {self.replaced} replaced, "
                f"{self.unchanged} unchanged")


def mine_records(mines: pd.DataFrame, run_id: str) -> list[dict[str, Any]]:
    """Check a mines result and give its ``mine_history`` rows (see :meth:`Ledger.record_assessment`).

    Raises
    ------
    InputDataError
        Not a DataFrame, a missing column (named), a bad date, or no ``date_after``.
    DuplicateIDError
        A mine ID repeated or missing.
    """
    if not isinstance(mines, pd.DataFrame):
        raise InputDataError(f"mines must be a (Geo)DataFrame, not {type(mines).__name__}")
    missing = [c for c in MINE_COLUMNS if c not in mines.columns]
    if missing:
        raise InputDataError(
            f"mines result lacks column(s) {missing} needed by record_assessment "
            f"(expected {list(MINE_COLUMNS)})"
        )
    ids = mines["patch_id"].map(as_str)
    if ids.isna().any() or ids.duplicated().any():
        bad = sorted(set(ids[ids.duplicated()].dropna()))
        raise DuplicateIDError(
            f"mines result has missing or repeated patch_id values {bad}; one row per mine"
        )
    geom_col = getattr(mines, "_geometry_column_name", None)
    known = set(MINE_COLUMNS) | set(MINE_OPTIONAL_COLUMNS)
    extra = [c for c in mines.columns if c not in known and c != geom_col]
    records = []
    for _, r in mines.iterrows():
        records.append(mine_record(r, run_id, extra))
    return records


def mine_record(r: Any, run_id: str, extra: Sequence[str]) -> dict[str, Any]:
    """One ``mine_history`` row from a row of a mines result."""
    pid = as_str(r["patch_id"])
    rec: dict[str, Any] = {"patch_id": pid, "run_id": run_id}
    for c in ("area_m2", "damaged_m2", "restored_m2", "restoration_rate", "fvc_before", "fvc_after",
              "valid_fraction", "observed_m2", "still_bare_m2", "degraded_m2", "veg_before_m2", "veg_after_m2",
              "target_rate"):
        rec[c] = as_float(r.get(c))
    for c in ("status", "direction", "reference_scene", "reference_rule"):
        rec[c] = as_str(r.get(c))
    rec["alerts"] = as_str(r.get("alerts")) or ""
    year = as_float(r.get("target_year"))
    rec["target_year"] = int(year) if year is not None else None
    rec["date_before"] = iso(as_date(r["date_before"], f"mine {pid}: date_before"))
    rec["date_after"] = iso(as_date(r["date_after"], f"mine {pid}: date_after"))
    if rec["date_after"] is None:
        raise InputDataError(f"mine {pid}: date_after is empty; the mine history keeps one row per mine per date")
    rec["attrs"] = to_json({c: clean(r[c]) for c in extra})
    rec["recorded_at"] = now_utc()
    return rec


def write_mine_records(con: sqlite3.Connection, records: Sequence[dict[str, Any]], run_id: str) -> tuple[int, int]:
    """Write ``mine_history`` rows inside the caller's transaction; returns (added, replaced).

    A mine's row of the same date is replaced when the figures differ (the
    old one goes to ``mine_history_superseded``) and left alone when they are
    the same.
    """
    added = replaced = 0
    cols = [c for c in MINE_ROW if c != "recorded_at"]
    for rec in records:
        old = con.execute(
            f"SELECT id, {','.join(cols)} FROM mine_history WHERE patch_id=? AND date_after=?",
            (rec["patch_id"], rec["date_after"]),
        ).fetchone()
        if old is not None and tuple(old[1:]) == tuple(rec[c] for c in cols):
            continue
        if old is not None:
            supersede_mine_row(con, int(old[0]), run_id)
            replaced += 1
        else:
            added += 1
        con.execute(
            f"INSERT INTO mine_history ({','.join(MINE_ROW)}) VALUES ({','.join('?' * len(MINE_ROW))})",
            [rec[c] for c in MINE_ROW],
        )
    if added or replaced:
        touch_contents(con, "mine_history")
    return added, replaced
