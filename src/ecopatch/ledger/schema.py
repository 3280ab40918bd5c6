"""The ledger's tables (internal): DDL, schema version, creating a new ledger file.

See :mod:`ecopatch.ledger.store` for what each table holds, and
:mod:`ecopatch.ledger.migrations` for the upgrades of older files.  Not part
of the public API (except :data:`SCHEMA_VERSION` and :data:`LEDGER_CRS`,
which :mod:`ecopatch.ledger` exports).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ecopatch.errors import LedgerError
from ecopatch.ledger.gpkg import APPLICATION_ID, SRS_ID, USER_VERSION, srs_rows
from ecopatch.ledger.values import now_utc

__all__ = [
    "APPEND_ONLY",
    "CASE_COLUMNS",
    "CONTENTS",
    "GPKG_DDL",
    "LEDGER_CRS",
    "MINE_DDL",
    "MINE_ROW",
    "SCHEMA_VERSION",
    "append_only_triggers",
    "create",
    "read_version",
    "tables",
]

#: Version of the ledger's table layout, stored in ``meta``.  Version 2: one mine-history row
#: per mine per date, superseded rows kept, restoration verdicts.  Version 3: each case's sky tier
#: (``sky_tier``, ``confirmed_on``).  An older ledger is upgraded in one transaction when it is
#: opened (:func:`ecopatch.ledger.migrations.upgrade`).
SCHEMA_VERSION = 3
#: CRS of every geometry in the ledger: CGCS2000 longitude/latitude.
LEDGER_CRS = "EPSG:4490"

GPKG_DDL = """
CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL, srs_id INTEGER NOT NULL PRIMARY KEY, organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
CREATE TABLE IF NOT EXISTS gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
  description TEXT DEFAULT '',
  last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (
  table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT uk_gc_table_name UNIQUE (table_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
CREATE TABLE IF NOT EXISTS meta (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, key TEXT NOT NULL UNIQUE, value TEXT);
CREATE TABLE IF NOT EXISTS cases (
  fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  geom MULTIPOLYGON,
  case_id TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL,
  change_type TEXT,
  area_m2 DOUBLE, area_mu DOUBLE, confidence DOUBLE,
  lon DOUBLE, lat DOUBLE,
  reserve_name TEXT, zone TEXT, zone_name TEXT,
  found_on DATE, opened_on DATE NOT NULL, status_since DATE NOT NULL,
  date_before DATE, date_after DATE,
  patch_id TEXT, run_id TEXT, n_detections INTEGER NOT NULL DEFAULT 1,
  responsible_unit TEXT, deadline DATE, real_type TEXT,
  n_events INTEGER NOT NULL DEFAULT 0,
  updated_at DATETIME NOT NULL,
  sky_tier TEXT NOT NULL DEFAULT 'probable', confirmed_on DATE);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  case_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
  from_status TEXT, to_status TEXT NOT NULL,
  on_date DATE NOT NULL, recorded_at DATETIME NOT NULL,
  actor TEXT, note TEXT, attachments TEXT, data TEXT,
  run_id TEXT, patch_id TEXT, source TEXT, dedupe_key TEXT UNIQUE,
  UNIQUE (case_id, seq));
CREATE TABLE IF NOT EXISTS detections (
  fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  geom MULTIPOLYGON,
  run_id TEXT NOT NULL, patch_id TEXT NOT NULL, case_id TEXT NOT NULL,
  outcome TEXT NOT NULL, score DOUBLE,
  change_type TEXT, area_m2 DOUBLE, area_mu DOUBLE, confidence DOUBLE,
  date_before DATE, date_after DATE, ndvi_before DOUBLE, ndvi_after DOUBLE,
  reserve_name TEXT, zone TEXT, zone_name TEXT,
  attrs TEXT, recorded_at DATETIME NOT NULL,
  UNIQUE (run_id, patch_id));
CREATE INDEX IF NOT EXISTS detections_patch_date ON detections (patch_id, date_after);
"""

#: The mine tables of schema 2 (see the module docstring).
MINE_HISTORY_FIELDS = """
  patch_id TEXT NOT NULL, date_after DATE, run_id TEXT NOT NULL,
  reference_scene TEXT, date_before DATE, reference_rule TEXT, direction TEXT,
  area_m2 DOUBLE, observed_m2 DOUBLE, damaged_m2 DOUBLE, restored_m2 DOUBLE, still_bare_m2 DOUBLE,
  degraded_m2 DOUBLE, veg_before_m2 DOUBLE, veg_after_m2 DOUBLE, restoration_rate DOUBLE,
  fvc_before DOUBLE, fvc_after DOUBLE, valid_fraction DOUBLE, status TEXT, alerts TEXT,
  target_year INTEGER, target_rate DOUBLE, attrs TEXT, recorded_at DATETIME NOT NULL"""
MINE_DDL = f"""
CREATE TABLE IF NOT EXISTS mine_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,{MINE_HISTORY_FIELDS},
  UNIQUE (patch_id, date_after));
CREATE TABLE IF NOT EXISTS mine_history_superseded (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,{MINE_HISTORY_FIELDS},
  superseded_at DATETIME NOT NULL, superseded_by_run TEXT);
CREATE TABLE IF NOT EXISTS mine_verdicts (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  patch_id TEXT NOT NULL, verdict TEXT NOT NULL, verdict_text TEXT, inspected_on DATE NOT NULL,
  inspector TEXT NOT NULL, restored_m2 DOUBLE, note TEXT, attachments TEXT,
  source TEXT, dedupe_key TEXT UNIQUE, recorded_at DATETIME NOT NULL);
CREATE INDEX IF NOT EXISTS mine_verdicts_patch ON mine_verdicts (patch_id, inspected_on);
"""
#: Columns of a ``mine_history`` row, in table order (without ``id``).
MINE_ROW = tuple(
    line.split()[0] for part in MINE_HISTORY_FIELDS.strip().split(",") for line in [part.strip()] if line
)

APPEND_ONLY = ("events", "detections", "mine_history_superseded", "mine_verdicts")

CONTENTS = (
    ("cases", "features", "cases", "suspect-patch cases (疑似图斑台账), CGCS2000"),
    ("detections", "features", "detections", "every detection added, append-only"),
    ("events", "attributes", "events", "case history, append-only"),
    ("mine_history", "attributes", "mine_history", "one row per mine per date (一矿一档)"),
    ("mine_history_superseded", "attributes", "mine_history_superseded",
     "mine-history rows replaced by a later run of the same date, append-only"),
    ("mine_verdicts", "attributes", "mine_verdicts", "restoration verdicts of field teams, append-only"),
    ("meta", "attributes", "meta", "ecopatch ledger metadata"),
)

CASE_COLUMNS = (
    "case_id", "status", "change_type", "area_m2", "area_mu", "confidence", "lon", "lat",
    "reserve_name", "zone", "zone_name", "found_on", "opened_on", "status_since",
    "date_before", "date_after", "patch_id", "run_id", "n_detections", "responsible_unit",
    "deadline", "real_type", "n_events", "updated_at", "sky_tier", "confirmed_on",
)  # fmt: skip



def tables(con: sqlite3.Connection) -> set[str]:
    """Names of the tables and views in the file."""
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table','view')")}


def append_only_triggers(con: sqlite3.Connection, names: tuple[str, ...] = APPEND_ONLY) -> None:
    """Triggers that refuse any UPDATE or DELETE on the append-only tables ``names``."""
    for t in names:
        for op in ("UPDATE", "DELETE"):
            con.execute(
                f"CREATE TRIGGER IF NOT EXISTS {t}_no_{op.lower()} BEFORE {op} ON {t} "
                f"BEGIN SELECT RAISE(ABORT, 'ecopatch ledger: {t} are append-only'); END"
            )


def create(con: sqlite3.Connection, id_prefix: str) -> None:
    """Create the tables of a new ledger, inside the caller's write transaction."""
    from ecopatch import __version__

    con.execute(f"PRAGMA application_id={APPLICATION_ID}")
    con.execute(f"PRAGMA user_version={USER_VERSION}")
    for stmt in (GPKG_DDL + MINE_DDL).split(";"):
        if stmt.strip():
            con.execute(stmt)
    append_only_triggers(con)
    con.executemany("INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)", srs_rows())
    now = now_utc()
    for name, dtype, ident, desc in CONTENTS:
        con.execute(
            "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, "
            "description, last_change, srs_id) VALUES (?,?,?,?,?,?)",
            (name, dtype, ident, desc, now, SRS_ID if dtype == "features" else None),
        )
        if dtype == "features":
            con.execute(
                "INSERT OR IGNORE INTO gpkg_geometry_columns VALUES (?,?,?,?,?,?)",
                (name, "geom", "MULTIPOLYGON", SRS_ID, 0, 0),
            )
    con.executemany(
        "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
        [
            ("schema_version", str(SCHEMA_VERSION)),
            ("id_prefix", id_prefix),
            ("created_at", now),
            ("created_by", f"ecopatch {__version__}"),
            ("crs", LEDGER_CRS),
        ],
    )


def read_version(con: sqlite3.Connection, path: Path) -> int:
    """The schema version in ``meta``, checked: a whole number, 1 to :data:`SCHEMA_VERSION`.

    Raises
    ------
    LedgerError
        No version, not a whole number (the message says how to repair it),
        newer than this ecopatch, or below 1.
    """
    row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        raise LedgerError(f"{path}: ledger has no schema_version in its 'meta' table")
    try:
        version = int(str(row[0]).strip().removesuffix(".0"))
    except ValueError:
        raise LedgerError(
            f"{path}: the ledger's schema_version in its 'meta' table is {row[0]!r}, not a whole "
            f"number; the file was edited by another program. Restore it from a backup, or set it back "
            f"with: sqlite3 {path.name} \"UPDATE meta SET value='{SCHEMA_VERSION}' WHERE "
            "key='schema_version'\" if you are sure the file is an ecopatch ledger"
        ) from None
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"{path} has ledger schema {version}, newer than this ecopatch understands "
            f"({SCHEMA_VERSION}); upgrade ecopatch"
        )
    if version < 1:
        raise LedgerError(f"{path} has an unknown ledger schema {version}")
    return version
