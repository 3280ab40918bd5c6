"""Upgrades of older ledger files to :data:`~ecopatch.ledger.schema.SCHEMA_VERSION` (internal).

:func:`upgrade` runs inside the write transaction the ledger opens when it
finds an older file, so an upgrade is kept whole or not at all, and nothing a
user recorded is lost: rows that a new layout no longer keeps in place move to
the append-only tables.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from typing import Any

from ecopatch.ledger import model
from ecopatch.ledger.model import Event, EventKind
from ecopatch.ledger.rows import append_event, case_from_row, load_cases, save_case, touch_contents
from ecopatch.ledger.schema import CONTENTS, MINE_DDL, MINE_ROW, SCHEMA_VERSION, append_only_triggers
from ecopatch.ledger.values import as_float, as_str, now_utc, to_json

__all__ = ["upgrade", "upgrade_1_to_2", "upgrade_2_to_3"]


def upgrade(con: sqlite3.Connection) -> tuple[int, list[str]] | None:
    """Bring the ledger to :data:`SCHEMA_VERSION`, inside the caller's write transaction.

    1 -> 2 (:func:`upgrade_1_to_2`): one ``mine_history`` row per mine per
    date.  2 -> 3 (:func:`upgrade_2_to_3`): the sky tier of each case.

    Returns
    -------
    (int, list of str) or None
        The version upgraded from and a note per step; None when the file is
        already at :data:`SCHEMA_VERSION` (another process upgraded it meanwhile).
    """
    row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None or int(row[0]) >= SCHEMA_VERSION:
        return None
    version = int(row[0])
    done = []
    if version < 2:
        done.append(f"mine history: one row per mine per date, {upgrade_1_to_2(con)} row(s) kept")
    if version < 3:
        n, confirmed = upgrade_2_to_3(con)
        done.append(f"sky tier: {n} case(s), {confirmed} of them confirmed by a later re-detection")
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
    return version, done


def upgrade_1_to_2(con: sqlite3.Connection) -> int:
    """Schema 1 -> 2, inside the upgrade's transaction; returns the number of mine-history rows.

    Schema 1 kept one ``mine_history`` row per mine per *run*, append-only.
    Schema 2 keeps one per mine per *date*: of the rows of one mine and
    date, the last recorded stays in ``mine_history``, the others go to
    ``mine_history_superseded``, as do rows without a date.  Figures that
    schema 1 kept in ``attrs`` (still-bare, degraded, observed and
    vegetated m², direction) fill their new columns.
    """
    con.row_factory = sqlite3.Row
    old = [dict(r) for r in con.execute("SELECT * FROM mine_history ORDER BY id")]
    con.row_factory = None
    for op in ("update", "delete"):
        con.execute(f"DROP TRIGGER IF EXISTS mine_history_no_{op}")
    con.execute("DROP TABLE mine_history")
    for stmt in MINE_DDL.split(";"):
        if stmt.strip():
            con.execute(stmt)
    append_only_triggers(con, ("mine_history_superseded", "mine_verdicts"))
    now = now_utc()
    for name, dtype, ident, desc in CONTENTS:
        con.execute(
            "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, "
            "description, last_change, srs_id) VALUES (?,?,?,?,?,?)",
            (name, dtype, ident, desc, now, None),
        )
    con.execute("UPDATE gpkg_contents SET description=? WHERE table_name='mine_history'",
                (dict((c[0], c[3]) for c in CONTENTS)["mine_history"],))
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for r in old:
        if r.get("date_after"):
            latest[(r["patch_id"], r["date_after"])] = r
    keep = {id(r) for r in latest.values()}
    cols = ",".join(MINE_ROW)
    for r in old:
        attrs = json.loads(r["attrs"]) if r.get("attrs") else {}
        rec = {c: r.get(c) for c in MINE_ROW}
        for c in ("observed_m2", "still_bare_m2", "degraded_m2", "veg_before_m2", "veg_after_m2"):
            rec[c] = as_float(attrs.pop(c, None))
        for c in ("direction", "alerts", "reference_scene", "reference_rule"):
            rec[c] = as_str(attrs.pop(c, None))
        rec["attrs"] = to_json(attrs)
        vals = [rec[c] for c in MINE_ROW]
        if id(r) in keep:
            con.execute(f"INSERT INTO mine_history ({cols}) VALUES ({','.join('?' * len(vals))})", vals)
        else:
            newer = latest.get((r["patch_id"], r["date_after"]))
            con.execute(
                f"INSERT INTO mine_history_superseded ({cols}, superseded_at, superseded_by_run) "
                f"VALUES ({','.join('?' * (len(vals) + 2))})",
                [*vals, now, newer["run_id"] if newer else None],
            )
    return len(old)


def upgrade_2_to_3(con: sqlite3.Connection) -> tuple[int, int]:
    """Schema 2 -> 3, inside the upgrade's transaction: the sky tier (影像分级) of each case.

    Adds ``sky_tier`` (default ``probable``) and ``confirmed_on`` to
    ``cases``.  A case the ledger already shows found again in a later
    observation (a ``redetect`` or ``rebound`` event whose detection's
    ``date_after`` is after the case's ``found_on``) becomes
    ``confirmed``, with ``confirmed_on`` the earliest such date, through
    a ``sky_confirm`` event appended to its history (source
    ``upgrade_schema_3``), so that the tier stays the replay of the
    events.  Whether that later scene saw the whole case clear was not
    recorded then: a detection there shows the change was observed.

    Returns
    -------
    (int, int)
        Cases, and cases confirmed.
    """
    cols = {r[1] for r in con.execute("PRAGMA table_info(cases)")}
    if "sky_tier" not in cols:
        con.execute("ALTER TABLE cases ADD COLUMN sky_tier TEXT NOT NULL DEFAULT 'probable'")
    if "confirmed_on" not in cols:
        con.execute("ALTER TABLE cases ADD COLUMN confirmed_on DATE")
    rows = load_cases(con)
    seen_again: dict[str, tuple[str, str | None, str | None]] = {}
    for cid, data, run_id, patch_id in con.execute(
        "SELECT case_id, data, run_id, patch_id FROM events WHERE kind IN (?, ?) ORDER BY case_id, seq",
        (EventKind.REDETECT.value, EventKind.REBOUND.value),
    ):
        d = json.loads(data) if data else {}
        seen, first = d.get("date_after"), (rows.get(cid) or {}).get("found_on")
        if seen and first and str(seen) > str(first) and (cid not in seen_again or str(seen) < seen_again[cid][0]):
            seen_again[cid] = (str(seen), run_id, patch_id)
    today = _dt.date.today()
    for cid, (seen, run_id, patch_id) in sorted(seen_again.items()):
        row = rows[cid]
        before = case_from_row(row)
        data = {"confirmed_on": seen, "first_seen": row["found_on"], "run_id": run_id, "patch_id": patch_id,
                "clear_share": None, "upgrade": "a re-detection recorded before ledger schema 3"}
        ev = Event(EventKind.SKY_CONFIRM, today, "ecopatch (ledger upgrade)", data=data)
        append_event(con, row, before, model.advance(before, ev), ev, source="upgrade_schema_3",
                 run_id=run_id, patch_id=patch_id)
        save_case(con, row, insert=False)
    if seen_again:
        touch_contents(con, "events")
        touch_contents(con, "cases")
    return len(rows), len(seen_again)

