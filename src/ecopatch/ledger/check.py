"""The ledger's integrity check: the file, its header, and every case against the replay of its events.

:func:`check_ledger` does what :meth:`ecopatch.ledger.Ledger.check` promises
and gives a :class:`CheckReport`.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecopatch.errors import LedgerError, LedgerIntegrityError, LedgerTransitionError
from ecopatch.ledger import model
from ecopatch.ledger.gpkg import APPLICATION_ID, decode_geometry
from ecopatch.ledger.model import Case, Event, EventKind
from ecopatch.ledger.rows import case_from_row, load_cases
from ecopatch.ledger.schema import SCHEMA_VERSION

__all__ = ["CheckReport", "check_ledger"]


@dataclass(frozen=True)
class CheckReport:
    """Result of :meth:`Ledger.check`.

    Attributes
    ----------
    ok : bool
        True when no problem was found.
    problems : tuple of str
        One sentence per problem.
    schema_version : int or None
    n_cases, n_events : int
    """

    path: Path
    ok: bool
    problems: tuple[str, ...]
    schema_version: int | None
    n_cases: int
    n_events: int

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        head = (
            f"ledger {self.path}: schema {self.schema_version}, {self.n_cases} cases, "
            f"{self.n_events} events: " + ("OK" if self.ok else f"{len(self.problems)} problem(s)")
        )
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])

    def raise_if_failed(self) -> None:
        """Raise :class:`LedgerIntegrityError` listing the problems, if any."""
        if not self.ok:
            raise LedgerIntegrityError(str(self))



def check_ledger(read: Callable[[], AbstractContextManager[sqlite3.Connection]], path: Path) -> CheckReport:
    """Check a ledger's integrity (see :meth:`ecopatch.ledger.Ledger.check`).

    Parameters
    ----------
    read : callable
        Opens a read transaction on the ledger (``Ledger._read``), giving the connection.
    path : Path
        The ledger file, for the report.

    Returns
    -------
    CheckReport
    """
    problems: list[str] = []
    version: int | None = None
    n_cases = n_events = 0
    try:
        with read() as con:
            ic = [r[0] for r in con.execute("PRAGMA integrity_check")]
            if ic != ["ok"]:
                problems.append("SQLite integrity_check: " + "; ".join(ic[:5]))
            app = con.execute("PRAGMA application_id").fetchone()[0]
            if app != APPLICATION_ID:
                problems.append(f"application_id is {app:#x}, not 'GPKG'")
            uv = con.execute("PRAGMA user_version").fetchone()[0]
            if uv < 10200:
                problems.append(f"GeoPackage user_version {uv} is not 1.2 or later")
            row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else None
            if version != SCHEMA_VERSION:
                problems.append(f"schema_version is {version}, expected {SCHEMA_VERSION}")
            cases = load_cases(con)
            n_cases = len(cases)
            ev_rows = con.execute(
                "SELECT case_id, seq, kind, from_status, to_status, on_date, actor, note, "
                "attachments, data FROM events ORDER BY case_id, seq"
            ).fetchall()
            n_events = len(ev_rows)
            orphan_det = con.execute(
                "SELECT COUNT(*) FROM detections "
                "WHERE case_id NOT IN (SELECT case_id FROM cases)"
            ).fetchone()[0]
    except LedgerError as exc:
        problems.append(str(exc))
        cases, ev_rows, orphan_det = {}, [], 0
    if orphan_det:
        problems.append(f"{orphan_det} detection(s) point to no case")
    by_case: dict[str, list[tuple[Any, ...]]] = {}
    for r in ev_rows:
        by_case.setdefault(r[0], []).append(r)
    orphans = sorted(set(by_case) - set(cases))
    if orphans:
        problems.append(f"events of unknown case(s) {orphans[:10]}")
    for cid, row in cases.items():
        evs = by_case.get(cid, [])
        if not evs:
            problems.append(f"case {cid} has no events")
            continue
        seqs = [e[1] for e in evs]
        if seqs != list(range(1, len(evs) + 1)):
            problems.append(f"case {cid}: event sequence {seqs[:10]} is not 1..{len(evs)}")
        try:
            state: Case | None = None
            for e in evs:
                ev = Event(
                    EventKind(e[2]), _dt.date.fromisoformat(e[5]), e[6], e[7],
                    tuple(json.loads(e[8]) if e[8] else ()), json.loads(e[9]) if e[9] else {},
                )  # fmt: skip
                prev = state.status.value if state else None
                if e[3] != prev:
                    problems.append(f"case {cid} event {e[1]}: from_status {e[3]} != {prev}")
                state = model.open_case(cid, ev) if state is None else model.advance(state, ev)
                if e[4] != state.status.value:
                    problems.append(
                        f"case {cid} event {e[1]}: to_status {e[4]} != {state.status.value}"
                    )
            stored = case_from_row(row)
            if stored != state:
                problems.append(f"case {cid}: stored {stored} != replay of events {state}")
            if row["n_events"] != len(evs):
                problems.append(f"case {cid}: n_events {row['n_events']} != {len(evs)}")
        except (LedgerTransitionError, ValueError, KeyError) as exc:
            problems.append(f"case {cid}: events do not replay: {exc}")
        try:
            g = decode_geometry(row["geom"])
            if g is None or g.is_empty:
                problems.append(f"case {cid}: empty geometry")
        except Exception as exc:  # noqa: BLE001 - report any decoding failure
            problems.append(f"case {cid}: geometry does not decode: {exc}")
    return CheckReport(path, not problems, tuple(problems), version, n_cases, n_events)
