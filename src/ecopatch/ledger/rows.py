"""Reading and writing the ledger's rows on an open connection (internal).

Every function here works inside a transaction the caller holds (see
:class:`ecopatch.ledger.Ledger`): it neither opens nor commits.  A case row is
a ``dict`` of the ``cases`` columns; :func:`append_event` adds an event and
brings the row's state columns up to date, :func:`save_case` writes the row.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ecopatch.ledger.model import Case, Event, EventKind, SkyTier, Status
from ecopatch.ledger.schema import CASE_COLUMNS, MINE_ROW
from ecopatch.ledger.values import date_of, iso, now_utc, to_json

__all__ = [
    "append_event",
    "case_from_row",
    "known_keys",
    "load_cases",
    "next_serial",
    "save_case",
    "supersede_mine_row",
    "touch_contents",
]


def case_from_row(r: sqlite3.Row | Mapping[str, Any]) -> Case:
    """The :class:`~ecopatch.ledger.model.Case` of a ``cases`` row."""
    return Case(
        case_id=r["case_id"],
        status=Status(r["status"]),
        opened_on=_dt.date.fromisoformat(r["opened_on"]),
        status_since=_dt.date.fromisoformat(r["status_since"]),
        responsible_unit=r["responsible_unit"],
        deadline=date_of(r["deadline"]),
        real_type=r["real_type"],
        sky_tier=SkyTier(r["sky_tier"] or SkyTier.PROBABLE.value),
        confirmed_on=date_of(r["confirmed_on"]),
    )


def load_cases(con: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """Every ``cases`` row, by case ID."""
    con.row_factory = sqlite3.Row
    rows = con.execute("SELECT * FROM cases ORDER BY case_id").fetchall()
    con.row_factory = None
    return {r["case_id"]: dict(r) for r in rows}


def known_keys(con: sqlite3.Connection, keys: Iterable[str], table: str = "events") -> set[str]:
    """The ``dedupe_key`` values among ``keys`` already in ``table`` (events or mine_verdicts)."""
    if table not in ("events", "mine_verdicts"):
        raise ValueError(f"table={table!r}: use 'events' or 'mine_verdicts'")
    keys = list(keys)
    found: set[str] = set()
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        q = f"SELECT dedupe_key FROM {table} WHERE dedupe_key IN ({','.join('?' * len(chunk))})"
        found.update(r[0] for r in con.execute(q, chunk))
    return found


def append_event(
    con: sqlite3.Connection,
    row: dict[str, Any],
    before: Case | None,
    after: Case,
    event: Event,
    *,
    source: str,
    run_id: str | None = None,
    patch_id: str | None = None,
    dedupe_key: str | None = None,
) -> None:
    """Append one event and bring the case row's state columns up to date (in ``row``)."""
    data = dict(event.data)
    if event.kind in (EventKind.CONFIRM, EventKind.DISMISS):
        # what detection said when the field checked it, for precision by type/zone
        for k in ("change_type", "zone", "reserve_name", "area_m2"):
            data.setdefault(k, row.get(k))
    seq = int(row.get("n_events") or 0) + 1
    con.execute(
        "INSERT INTO events (case_id, seq, kind, from_status, to_status, on_date, "
        "recorded_at, actor, note, attachments, data, run_id, patch_id, source, dedupe_key) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            after.case_id, seq, event.kind.value,
            before.status.value if before else None, after.status.value,
            event.on.isoformat(), now_utc(), event.actor, event.note,
            to_json(list(event.attachments)), to_json(data), run_id, patch_id, source, dedupe_key,
        ),
    )  # fmt: skip
    row.update(
        n_events=seq,
        status=after.status.value,
        opened_on=after.opened_on.isoformat(),
        status_since=after.status_since.isoformat(),
        responsible_unit=after.responsible_unit,
        deadline=iso(after.deadline),
        real_type=after.real_type,
        sky_tier=after.sky_tier.value,
        confirmed_on=iso(after.confirmed_on),
        updated_at=now_utc(),
    )


def save_case(con: sqlite3.Connection, row: Mapping[str, Any], *, insert: bool) -> None:
    """Insert or update one ``cases`` row."""
    cols = ("geom", *CASE_COLUMNS)
    vals = [row.get(c) for c in cols]
    if insert:
        con.execute(f"INSERT INTO cases ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", vals)
    else:
        sets = ",".join(f"{c}=?" for c in cols if c != "case_id")
        con.execute(
            f"UPDATE cases SET {sets} WHERE case_id=?",
            [row.get(c) for c in cols if c != "case_id"] + [row["case_id"]],
        )


def touch_contents(
    con: sqlite3.Connection,
    table: str,
    bounds: Sequence[float] | npt.NDArray[np.float64] | None = None,
    *,
    expand: bool = False,
) -> None:
    """Update ``last_change`` (and the extent, or grow it with ``expand``) of ``table``."""
    if bounds is not None and expand:
        old = con.execute(
            "SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name=?", (table,)
        ).fetchone()
        if old is not None and None not in old:
            bounds = (
                min(old[0], bounds[0]), min(old[1], bounds[1]),
                max(old[2], bounds[2]), max(old[3], bounds[3]),
            )  # fmt: skip
    if bounds is not None and all(np.isfinite(bounds)):
        con.execute(
            "UPDATE gpkg_contents SET last_change=?, min_x=?, min_y=?, max_x=?, max_y=? "
            "WHERE table_name=?",
            (now_utc(), *map(float, bounds), table),
        )
    else:
        con.execute("UPDATE gpkg_contents SET last_change=? WHERE table_name=?", (now_utc(), table))


def next_serial(con: sqlite3.Connection, id_prefix: str, year: int) -> int:
    """The next free serial of case IDs ``{id_prefix}-{year}-NNNNNN``."""
    stem = f"{id_prefix}-{year:04d}-"
    row = con.execute(
        "SELECT MAX(CAST(substr(case_id, ?) AS INTEGER)) FROM cases WHERE case_id LIKE ?",
        (len(stem) + 1, stem + "%"),
    ).fetchone()
    return int(row[0] or 0) + 1


def supersede_mine_row(con: sqlite3.Connection, row_id: int, run_id: str | None) -> None:
    """Move one ``mine_history`` row to ``mine_history_superseded`` (same transaction)."""
    cols = ",".join(MINE_ROW)
    con.execute(
        f"INSERT INTO mine_history_superseded ({cols}, superseded_at, superseded_by_run) "
        f"SELECT {cols}, ?, ? FROM mine_history WHERE id=?",
        (now_utc(), run_id, row_id),
    )
    con.execute("DELETE FROM mine_history WHERE id=?", (row_id,))
