"""The case ledger (台账) in one GeoPackage file: the only code that writes it.

"Manage online" (网上管): every suspect patch is a case with a stable ID, a
current state and an append-only history of events.  The store is a real
GeoPackage (SQLite, no server) written with :mod:`sqlite3`, so QGIS, ArcGIS
and GDAL open the ``cases`` and ``detections`` layers directly.

File layout
-----------
``cases`` (features, MULTIPOLYGON, EPSG:4490 CGCS2000)
    One row per case: geometry of its latest detection, status, responsible
    unit, deadline, areas (m², mu), reserve and zone.  A projection of the
    events, rewritten by each write.
``events`` (attributes, append-only)
    One row per event: case, sequence number, kind, state before and after,
    date, who, note, attachments (JSON list), facts (JSON), the run and the
    detection's own ``patch_id``.  SQLite triggers refuse any UPDATE or DELETE.
``detections`` (features, append-only)
    Every suspect patch ever added, with its run, ``patch_id``, the case it
    went to and how (new / matched / rebound).
``mine_history`` (attributes)
    One row per mine per date (一矿一档): damaged, restored, still-bare and
    degraded m², restoration rate, FVC, observed share, status, alerts, the
    reference it was measured against and the plan's target.  Recording a
    date again replaces its row (when the figures differ); the row replaced
    goes to ``mine_history_superseded`` (append-only), so nothing is lost.
``mine_verdicts`` (attributes, append-only)
    Restoration verdicts of field teams (已验收, 未通过验收, ...), imported
    like case results (:meth:`Ledger.import_mine_verdicts`).
``meta`` (attributes)
    ``schema_version``, ID prefix, creation time.

Safety
------
Each logical write (one :meth:`Ledger.add_detections`, one
:meth:`Ledger.import_fieldcheck`, one :meth:`Ledger.advance`, ...) is exactly
one SQLite transaction, begun with ``BEGIN IMMEDIATE``: a second writer waits
up to ``timeout_s`` and then gets :class:`~ecopatch.errors.LedgerLockedError`;
a process killed mid-write leaves a hot rollback journal that SQLite replays on
the next open, so the ledger is exactly as before that write.  The journal mode
is ``DELETE`` (no ``-wal``/``-shm`` files left beside the user's file); if
another program (QGIS) has switched the file to WAL and still holds it open,
the ledger carries on in WAL, which is just as atomic, and switches back later.

The environment variable ``ECOPATCH_TEST_PAUSE_IN_TXN`` (seconds) is **for
tests only**: when set, every write transaction pauses that long just before
``COMMIT`` (with a tiny page cache, so changed pages have already reached the
file), after touching the file named by ``ECOPATCH_TEST_PAUSE_SIGNAL`` if set.
The fault tests use it to kill a writer mid-transaction.

Not written: an R-tree spatial index (its triggers need GDAL's SQL functions);
GDAL and QGIS read the layers without one.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import logging
import math
import os
import sqlite3
import struct
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from ecopatch.errors import (
    DuplicateIDError,
    GeometryError,
    GeometryRepairedWarning,
    InputDataError,
    LedgerError,
    LedgerIntegrityError,
    LedgerLockedError,
    LedgerTransitionError,
    TooManyCasesError,
)
from ecopatch.geodesy import as_crs, geodesic_area_m2, transformer
from ecopatch.ledger import model
from ecopatch.ledger.match import match_patches
from ecopatch.ledger.model import Case, Colour, Event, EventKind, SkyTier, Status
from ecopatch.sanitize import text_problem
from ecopatch.units import m2_to_mu
from ecopatch.vocabulary import ACTIVITY_TYPES, CHANGE_TYPE_ZH, CHANGE_TYPES, PATCH_COLUMNS, ZONE_ZH

if TYPE_CHECKING:
    import geopandas as gpd

    from ecopatch.fieldcheck import FieldPackage, ImportReport

__all__ = [
    "AddResult",
    "AssessmentResult",
    "CheckReport",
    "DEFAULT_CONFIRM_CLEAR",
    "DEFAULT_MAX_NEW_CASES",
    "LEDGER_CRS",
    "Ledger",
    "MINE_COLUMNS",
    "MINE_OPTIONAL_COLUMNS",
    "SCHEMA_VERSION",
    "content_key",
    "gpkg_blob",
    "gpkg_geometry",
    "summarise_cases",
]

log = logging.getLogger(__name__)

#: Version of the ledger's table layout, stored in ``meta``.  Version 2: one mine-history row
#: per mine per date, superseded rows kept, restoration verdicts.  Version 3: each case's sky tier
#: (``sky_tier``, ``confirmed_on``).  An older ledger is upgraded in one transaction when it is
#: opened (:meth:`Ledger._upgrade_schema`).
SCHEMA_VERSION = 3
#: Share (0-1) of a case's outline a later scene must see clear for its detection there to confirm
#: the case from the sky (``min_clear_share`` of :meth:`Ledger.add_detections`).
DEFAULT_CONFIRM_CLEAR = 0.7
#: New cases one call of :meth:`Ledger.add_detections` may open by default (``max_new_cases``).
DEFAULT_MAX_NEW_CASES = 200
#: No satellite image of the earth is older (Landsat 1, 23 July 1972).
EARLIEST_IMAGE = _dt.date(1972, 7, 23)
#: CRS of every geometry in the ledger: CGCS2000 longitude/latitude.
LEDGER_CRS = "EPSG:4490"
_SRS_ID = 4490
_GPKG_APPLICATION_ID = 0x47504B47  # 'GPKG'
_GPKG_USER_VERSION = 10400  # GeoPackage 1.4.0
PAUSE_ENV = "ECOPATCH_TEST_PAUSE_IN_TXN"
PAUSE_SIGNAL_ENV = "ECOPATCH_TEST_PAUSE_SIGNAL"

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


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class AddResult:
    """What :meth:`Ledger.add_detections` did.

    Attributes
    ----------
    new : int
        Detections that opened new cases.
    matched : int
        Detections matched to an existing case (``redetect`` event).
    rebound : int
        Detections that reopened a closed (or much grown false-alarm) case
        (``rebound`` event, 反弹回潮).
    unchanged : int
        Detections already in the ledger (same run and ``patch_id``, or same
        ``patch_id`` and after date); nothing was written for them.
    run_id : str
        The run.
    case_ids : tuple of str
        Case ID of each input row, in input order.
    sky_confirmed : int
        Cases whose sky tier went from ``probable`` to ``confirmed`` (影像确认):
        found again in this later, clear observation.
    """

    new: int
    matched: int
    rebound: int
    unchanged: int
    run_id: str
    case_ids: tuple[str, ...] = ()
    sky_confirmed: int = 0

    def __str__(self) -> str:
        return (
            f"run {self.run_id}: {self.new} new (新增), {self.matched} matched (已有), "
            f"{self.rebound} rebound (反弹), {self.unchanged} unchanged (重复), "
            f"{self.sky_confirmed} confirmed by imagery (影像确认)"
        )


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


# --------------------------------------------------------------------------- GeoPackage


def gpkg_blob(geom: Any, srs_id: int = _SRS_ID) -> bytes:
    """GeoPackage binary of a 2-D geometry: GP header, xy envelope, ISO WKB.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> b = gpkg_blob(box(0, 0, 1, 1))
    >>> b[:2], len(b) == 8 + 32 + len(shapely.to_wkb(box(0, 0, 1, 1)))
    (b'GP', True)
    >>> gpkg_geometry(b).equals(box(0, 0, 1, 1))
    True
    """
    if geom is None or shapely.is_empty(geom):
        # empty flag set, no envelope; WKB of an empty multipolygon
        flags = 0b0001_0001
        return (
            b"GP"
            + struct.pack("<BBi", 0, flags, srs_id)
            + shapely.to_wkb(shapely.MultiPolygon(), byte_order=1)
        )
    minx, miny, maxx, maxy = shapely.bounds(geom)
    flags = 0b0000_0011  # little endian, envelope [minx, maxx, miny, maxy]
    head = b"GP" + struct.pack("<BBi", 0, flags, srs_id)
    env = struct.pack("<4d", minx, maxx, miny, maxy)
    wkb = shapely.to_wkb(geom, byte_order=1, flavor="iso", output_dimension=2)
    return head + env + wkb


_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def gpkg_geometry(blob: bytes | None) -> Any:
    """Shapely geometry from GeoPackage binary (None for NULL).

    Raises
    ------
    ValueError
        If ``blob`` is not GeoPackage binary.
    """
    if blob is None:
        return None
    blob = bytes(blob)
    if blob[:2] != b"GP":
        raise ValueError("not GeoPackage geometry binary (no 'GP' magic)")
    flags = blob[3]
    env = (flags >> 1) & 0b111
    if env not in _ENVELOPE_BYTES:
        raise ValueError(f"bad GeoPackage envelope indicator {env}")
    return shapely.from_wkb(blob[8 + _ENVELOPE_BYTES[env] :])


def _envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    """(minx, maxx, miny, maxy) of GeoPackage binary, or None when NULL or empty."""
    if blob is None:
        return None
    g = gpkg_geometry(blob)
    if g is None or g.is_empty:
        return None
    minx, miny, maxx, maxy = g.bounds
    return minx, maxx, miny, maxy


def _register_gpkg_functions(con: sqlite3.Connection) -> None:
    """SQL functions GDAL's R-tree triggers call (ST_IsEmpty, ST_MinX, ...).

    The ledger writes no spatial index, but if a user adds one in QGIS or with
    GDAL, its triggers call these; providing them keeps the ledger writable.
    """

    def part(i: int) -> Callable[[bytes | None], float | None]:
        def f(blob: bytes | None) -> float | None:
            env = _envelope(blob)
            return None if env is None else env[i]

        return f

    det = {"deterministic": True}
    con.create_function("ST_IsEmpty", 1, lambda b: 1 if _envelope(b) is None else 0, **det)
    for i, name in enumerate(("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY")):
        con.create_function(name, 1, part(i), **det)


def _srs_rows() -> list[tuple[Any, ...]]:
    def wkt(code: int) -> str:
        return CRS.from_epsg(code).to_wkt("WKT1_GDAL")

    undefined = "undefined {} coordinate reference system"
    return [
        ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", undefined.format("cartesian")),
        ("Undefined geographic SRS", 0, "NONE", 0, "undefined", undefined.format("geographic")),
        ("WGS 84 geodetic", 4326, "EPSG", 4326, wkt(4326), "WGS 84 longitude/latitude, degrees"),
        ("China Geodetic Coordinate System 2000", 4490, "EPSG", 4490, wkt(4490),
         "CGCS2000 longitude/latitude, degrees"),
    ]  # fmt: skip


_GPKG_DDL = """
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
_MINE_HISTORY_FIELDS = """
  patch_id TEXT NOT NULL, date_after DATE, run_id TEXT NOT NULL,
  reference_scene TEXT, date_before DATE, reference_rule TEXT, direction TEXT,
  area_m2 DOUBLE, observed_m2 DOUBLE, damaged_m2 DOUBLE, restored_m2 DOUBLE, still_bare_m2 DOUBLE,
  degraded_m2 DOUBLE, veg_before_m2 DOUBLE, veg_after_m2 DOUBLE, restoration_rate DOUBLE,
  fvc_before DOUBLE, fvc_after DOUBLE, valid_fraction DOUBLE, status TEXT, alerts TEXT,
  target_year INTEGER, target_rate DOUBLE, attrs TEXT, recorded_at DATETIME NOT NULL"""
_MINE_DDL = f"""
CREATE TABLE IF NOT EXISTS mine_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,{_MINE_HISTORY_FIELDS},
  UNIQUE (patch_id, date_after));
CREATE TABLE IF NOT EXISTS mine_history_superseded (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,{_MINE_HISTORY_FIELDS},
  superseded_at DATETIME NOT NULL, superseded_by_run TEXT);
CREATE TABLE IF NOT EXISTS mine_verdicts (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  patch_id TEXT NOT NULL, verdict TEXT NOT NULL, verdict_text TEXT, inspected_on DATE NOT NULL,
  inspector TEXT NOT NULL, restored_m2 DOUBLE, note TEXT, attachments TEXT,
  source TEXT, dedupe_key TEXT UNIQUE, recorded_at DATETIME NOT NULL);
CREATE INDEX IF NOT EXISTS mine_verdicts_patch ON mine_verdicts (patch_id, inspected_on);
"""
#: Columns of a ``mine_history`` row, in table order (without ``id``).
_MINE_ROW = tuple(
    line.split()[0] for part in _MINE_HISTORY_FIELDS.strip().split(",") for line in [part.strip()] if line
)

_APPEND_ONLY = ("events", "detections", "mine_history_superseded", "mine_verdicts")

_CONTENTS = (
    ("cases", "features", "cases", "suspect-patch cases (疑似图斑台账), CGCS2000"),
    ("detections", "features", "detections", "every detection added, append-only"),
    ("events", "attributes", "events", "case history, append-only"),
    ("mine_history", "attributes", "mine_history", "one row per mine per date (一矿一档)"),
    ("mine_history_superseded", "attributes", "mine_history_superseded",
     "mine-history rows replaced by a later run of the same date, append-only"),
    ("mine_verdicts", "attributes", "mine_verdicts", "restoration verdicts of field teams, append-only"),
    ("meta", "attributes", "meta", "ecopatch ledger metadata"),
)

_CASE_COLUMNS = (
    "case_id", "status", "change_type", "area_m2", "area_mu", "confidence", "lon", "lat",
    "reserve_name", "zone", "zone_name", "found_on", "opened_on", "status_since",
    "date_before", "date_after", "patch_id", "run_id", "n_detections", "responsible_unit",
    "deadline", "real_type", "n_events", "updated_at", "sky_tier", "confirmed_on",
)  # fmt: skip


def _now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, default=_json_default)


def _json_default(v: Any) -> Any:
    if isinstance(v, (_dt.date, _dt.datetime, pd.Timestamp)):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


def _clean(v: Any) -> Any:
    """None for NaN/NA, Python scalars for numpy ones."""
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v


def _as_date(v: Any, what: str) -> _dt.date | None:
    from ecopatch.fieldcheck import parse_date

    v = _clean(v)
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    try:
        return parse_date(v)
    except ValueError as exc:
        raise InputDataError(f"{what}: {exc}") from None


def _iso(d: _dt.date | None) -> str | None:
    return d.isoformat() if d is not None else None


def _float(v: Any) -> float | None:
    v = _clean(v)
    if v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _str(v: Any) -> str | None:
    v = _clean(v)
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _date_of(v: str | None) -> _dt.date | None:
    return _dt.date.fromisoformat(v) if v else None


# --------------------------------------------------------------------------- the ledger


class Ledger:
    """A case ledger (台账) stored in one GeoPackage file.

    Parameters
    ----------
    path : str or Path
        The ``.gpkg`` file.  Created (with its tables) if it does not exist
        and ``create`` is true; its folder must exist.
    create : bool
        Create the ledger when ``path`` does not exist (default True).  With
        False a missing file raises :class:`~ecopatch.errors.LedgerError`.
    id_prefix : str
        Prefix of new case IDs, ``{prefix}-{year}-{serial:06d}`` (default
        ``"YB"``, 疑似图斑).  Fixed when the ledger is created.
    timeout_s : float
        Seconds a write waits for another process's write to finish before
        :class:`~ecopatch.errors.LedgerLockedError` (default 30 s).

    Raises
    ------
    LedgerError
        If ``path`` is missing (with ``create=False``), not a GeoPackage, not
        an ecopatch ledger, or of a newer schema version.

    Notes
    -----
    The object holds only the path and settings: every method opens its own
    SQLite connection and closes it, so a ``Ledger`` can be shared between
    threads or pickled to other processes.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     led = Ledger(os.path.join(d, "ledger.gpkg"))
    ...     len(led.cases()), led.check().ok
    (0, True)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        id_prefix: str = "YB",
        timeout_s: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.timeout_s = float(timeout_s)
        if not id_prefix or not str(id_prefix).replace("_", "").isalnum():
            raise ValueError(f"id_prefix={id_prefix!r} must be letters/digits, e.g. 'YB'")
        if not self.path.exists():
            if not create:
                raise LedgerError(
                    f"no ledger at {self.path}; check the path, or create one with "
                    f"Ledger(path) (or `ecopatch ledger add`)"
                )
            if not self.path.parent.is_dir():
                raise LedgerError(
                    f"cannot create ledger {self.path}: folder {self.path.parent} does not exist"
                )
        self._init_or_validate(str(id_prefix))
        self.id_prefix = self._meta("id_prefix") or str(id_prefix)

    #: The open connection of a :meth:`transaction` (None outside one).
    _con: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    # ------------------------------------------------------------------ connections

    def _connect(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(str(self.path), timeout=self.timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
        _register_gpkg_functions(con)
        try:
            mode = str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            if mode != "delete":
                # Another program (QGIS opens GeoPackages in WAL mode) switched it; go back
                # to a rollback journal when we can.  WAL is as safe, so carry on if not.
                try:
                    con.execute("PRAGMA journal_mode=DELETE")
                except sqlite3.OperationalError:
                    log.warning(
                        "ledger %s is in %s journal mode, set by another program that still "
                        "has it open (QGIS?); writes stay atomic",
                        self.path,
                        mode,
                    )
        except sqlite3.OperationalError as exc:
            con.close()
            raise self._translate(exc, "open") from exc
        except sqlite3.DatabaseError as exc:
            con.close()
            raise LedgerError(
                f"{self.path} is not a GeoPackage/SQLite file ({exc}); is this the ledger?"
            ) from exc
        return con

    def _translate(self, exc: sqlite3.Error, what: str) -> LedgerError:
        msg = str(exc).lower()
        if "locked" in msg or "busy" in msg:
            return LedgerLockedError(
                f"ledger {self.path} is locked by another process: waited {self.timeout_s:g} s "
                f"to {what} and gave up, nothing was written; try again when the other run "
                f"has finished, or pass a longer timeout_s"
            )
        return LedgerError(f"ledger {self.path}: cannot {what}: {exc}")

    @contextmanager
    def transaction(self, what: str = "write") -> Iterator[Ledger]:
        """Group several writes into one transaction: all of them are kept, or none.

        Parameters
        ----------
        what : str
            What the writes do, for error messages.

        Yields
        ------
        Ledger
            A ledger bound to the open transaction: its writes
            (:meth:`record_assessment`, :meth:`add_detections`, ...) and reads
            join that transaction instead of committing on their own.  Use it
            only inside the ``with`` block, in this thread.

        Raises
        ------
        LedgerLockedError
            Another process held the ledger longer than ``timeout_s``.

        Notes
        -----
        The transaction commits when the block ends and rolls back when it
        raises (or the process dies: SQLite replays the rollback journal on
        the next open).  A scheduled run (:mod:`ecopatch.pipeline`) records a
        scene's mine assessment and its detections this way.

        Examples
        --------
        >>> with ledger.transaction("record run 2024-09") as led:  # doctest: +SKIP
        ...     led.record_assessment(mines, run_id)
        ...     led.add_detections(patches, run_id)
        """
        with self._write(what) as con:
            bound = copy.copy(self)
            bound._con = con
            yield bound

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``/``ROLLBACK``)."""
        if self._con is not None:  # inside transaction(): join it
            yield from self._joined()
            return
        con = self._connect()
        try:
            pause = os.environ.get(PAUSE_ENV)
            if pause:
                con.execute("PRAGMA cache_size=1")  # spill changed pages to the file
            try:
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._translate(exc, what) from exc
            try:
                yield con
                if pause:
                    self._test_pause(float(pause))
                con.execute("COMMIT")
            except BaseException as exc:
                try:
                    con.execute("ROLLBACK")
                except sqlite3.Error:  # pragma: no cover - already rolled back
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise self._translate(exc, what) from exc
                raise
        finally:
            con.close()

    def _joined(self) -> Iterator[sqlite3.Connection]:
        """The open connection of :meth:`transaction`, with its row factory restored afterwards."""
        assert self._con is not None
        row_factory = self._con.row_factory
        try:
            yield self._con
        finally:
            self._con.row_factory = row_factory

    @staticmethod
    def _test_pause(seconds: float) -> None:
        signal = os.environ.get(PAUSE_SIGNAL_ENV)
        if signal:
            Path(signal).write_text(str(os.getpid()))
        log.warning("%s set: pausing %.1f s inside a write transaction", PAUSE_ENV, seconds)
        time.sleep(seconds)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: a consistent snapshot across several SELECTs."""
        if self._con is not None:  # inside transaction(): read what it has written so far
            yield from self._joined()
            return
        con = self._connect()
        try:
            con.execute("BEGIN")
            yield con
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._translate(exc, "read") from exc
        finally:
            con.close()

    # ------------------------------------------------------------------ schema

    def _init_or_validate(self, id_prefix: str) -> None:
        con = self._connect()
        try:
            tables = self._tables(con)
            if "meta" in tables and "cases" in tables:
                if self._validate(con) < SCHEMA_VERSION:
                    con.close()
                    self._upgrade_schema()
                return
            if tables - {"sqlite_sequence"}:
                kind = "a GeoPackage" if "gpkg_contents" in tables else "an SQLite database"
                raise LedgerError(
                    f"{self.path} is {kind} but not an ecopatch ledger (no 'meta'/'cases' "
                    f"tables); give a new file name for the ledger"
                )
        except sqlite3.OperationalError as exc:
            raise self._translate(exc, "open") from exc
        except sqlite3.DatabaseError as exc:
            raise LedgerError(
                f"{self.path} is not a GeoPackage/SQLite file ({exc}); is this the ledger?"
            ) from exc
        finally:
            con.close()
        with self._write("create the ledger") as con:
            if "meta" in self._tables(con):  # another process created it meanwhile
                return
            con.execute(f"PRAGMA application_id={_GPKG_APPLICATION_ID}")
            con.execute(f"PRAGMA user_version={_GPKG_USER_VERSION}")
            for stmt in (_GPKG_DDL + _MINE_DDL).split(";"):
                if stmt.strip():
                    con.execute(stmt)
            for t in _APPEND_ONLY:
                for op in ("UPDATE", "DELETE"):
                    con.execute(
                        f"CREATE TRIGGER IF NOT EXISTS {t}_no_{op.lower()} BEFORE {op} ON {t} "
                        f"BEGIN SELECT RAISE(ABORT, 'ecopatch ledger: {t} are append-only'); END"
                    )
            con.executemany(
                "INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)", _srs_rows()
            )
            now = _now_utc()
            for name, dtype, ident, desc in _CONTENTS:
                con.execute(
                    "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, "
                    "description, last_change, srs_id) VALUES (?,?,?,?,?,?)",
                    (name, dtype, ident, desc, now, _SRS_ID if dtype == "features" else None),
                )
                if dtype == "features":
                    con.execute(
                        "INSERT OR IGNORE INTO gpkg_geometry_columns VALUES (?,?,?,?,?,?)",
                        (name, "geom", "MULTIPOLYGON", _SRS_ID, 0, 0),
                    )
            from ecopatch import __version__

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
        log.info("created ledger %s (schema %d)", self.path, SCHEMA_VERSION)

    @staticmethod
    def _tables(con: sqlite3.Connection) -> set[str]:
        return {
            r[0]
            for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table','view')")
        }

    def _validate(self, con: sqlite3.Connection) -> int:
        row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            raise LedgerError(f"{self.path}: ledger has no schema_version in its 'meta' table")
        try:
            version = int(str(row[0]).strip().removesuffix(".0"))
        except ValueError:
            raise LedgerError(
                f"{self.path}: the ledger's schema_version in its 'meta' table is {row[0]!r}, not a whole "
                f"number; the file was edited by another program. Restore it from a backup, or set it back "
                f"with: sqlite3 {self.path.name} \"UPDATE meta SET value='{SCHEMA_VERSION}' WHERE "
                "key='schema_version'\" if you are sure the file is an ecopatch ledger"
            ) from None
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path} has ledger schema {version}, newer than this ecopatch understands "
                f"({SCHEMA_VERSION}); upgrade ecopatch"
            )
        if version < 1:
            raise LedgerError(f"{self.path} has an unknown ledger schema {version}")
        return version

    def _meta(self, key: str) -> str | None:
        with self._read() as con:
            row = con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    @property
    def schema_version(self) -> int:
        """Schema version of the ledger file."""
        with self._read() as con:
            return self._validate(con)

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _case_from_row(r: sqlite3.Row | dict[str, Any]) -> Case:
        return Case(
            case_id=r["case_id"],
            status=Status(r["status"]),
            opened_on=_dt.date.fromisoformat(r["opened_on"]),
            status_since=_dt.date.fromisoformat(r["status_since"]),
            responsible_unit=r["responsible_unit"],
            deadline=_date_of(r["deadline"]),
            real_type=r["real_type"],
            sky_tier=SkyTier(r["sky_tier"] or SkyTier.PROBABLE.value),
            confirmed_on=_date_of(r["confirmed_on"]),
        )

    def case(self, case_id: str) -> Case:
        """The current state of one case.

        Raises
        ------
        LedgerError
            If there is no case ``case_id``.
        """
        with self._read() as con:
            con.row_factory = sqlite3.Row
            r = con.execute("SELECT * FROM cases WHERE case_id=?", (case_id,)).fetchone()
        if r is None:
            raise LedgerError(f"ledger {self.path} has no case {case_id!r}")
        return self._case_from_row(r)

    def cases(
        self,
        *,
        status: str | Status | Iterable[str | Status] | None = None,
        today: _dt.date | None = None,
        warn_days: int = model.WARN_DAYS,
        stale_days: int = model.STALE_DAYS,
    ) -> gpd.GeoDataFrame:
        """All cases (or those in ``status``) as a GeoDataFrame in EPSG:4490.

        Parameters
        ----------
        status : str, Status or iterable of them, optional
            Keep only cases in these states (English keys or Chinese labels).
        today : datetime.date, optional
            Reference date for the red/yellow/green code; default the local date.
        warn_days, stale_days : int
            Passed to :func:`ecopatch.ledger.model.case_colour`.

        Returns
        -------
        geopandas.GeoDataFrame
            One row per case, sorted by ``case_id``: the stored columns
            (``area_m2`` in m², ``area_mu`` in mu, ``lon``/``lat`` of a point on
            the patch in CGCS2000 degrees, dates as ``datetime.date``) plus
            ``status_zh``, ``colour``, ``colour_zh``, ``change_type_zh`` and
            ``zone_zh``; geometry MultiPolygon, CRS EPSG:4490.
        """
        import geopandas as gpd

        with self._read() as con:
            con.row_factory = sqlite3.Row
            rows = con.execute("SELECT * FROM cases ORDER BY case_id").fetchall()
        return _cases_frame(rows, status=status, today=today, warn_days=warn_days,
                            stale_days=stale_days, gpd=gpd)  # fmt: skip

    def events(self, case_id: str | None = None) -> pd.DataFrame:
        """The event history, oldest first (of one case, or of all).

        Returns
        -------
        pandas.DataFrame
            Columns ``case_id, seq, kind, from_status, to_status, on_date
            (datetime.date), recorded_at (UTC, ISO 8601), actor, note,
            attachments (list of str), data (dict), run_id, patch_id, source``.
        """
        q = "SELECT * FROM events"
        args: tuple[Any, ...] = ()
        if case_id is not None:
            q += " WHERE case_id=?"
            args = (case_id,)
        with self._read() as con:
            df = pd.read_sql_query(q + " ORDER BY id", con, params=args)
        df["on_date"] = [_date_of(v) for v in df["on_date"]]
        df["attachments"] = [json.loads(v) if v else [] for v in df["attachments"]]
        df["data"] = [json.loads(v) if v else {} for v in df["data"]]
        return df.drop(columns=["id"]).reset_index(drop=True)

    def detections(self, run_id: str | None = None) -> gpd.GeoDataFrame:
        """Every detection added (or those of ``run_id``), in EPSG:4490."""
        import geopandas as gpd

        q = "SELECT * FROM detections"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            q += " WHERE run_id=?"
            args = (run_id,)
        with self._read() as con:
            df = pd.read_sql_query(q + " ORDER BY fid", con, params=args)
        geom = [gpkg_geometry(b) for b in df.pop("geom")]
        df["attrs"] = [json.loads(v) if v else {} for v in df["attrs"]]
        return gpd.GeoDataFrame(df.drop(columns=["fid"]), geometry=geom, crs=LEDGER_CRS)

    def mine_history(self, patch_id: str | None = None, *, superseded: bool = False) -> pd.DataFrame:
        """The history of the mines (一矿一档): one row per mine per date, oldest first.

        Parameters
        ----------
        patch_id : str, optional
            One mine (矿山编号); default all.
        superseded : bool
            Instead, the rows that later runs of the same date replaced
            (with ``superseded_at`` and ``superseded_by_run``).

        Returns
        -------
        pandas.DataFrame
            ``patch_id, date_after`` (datetime.date), ``run_id,
            reference_scene, date_before`` (the reference's date),
            ``reference_rule, direction, area_m2, observed_m2, damaged_m2,
            restored_m2, still_bare_m2, degraded_m2, veg_before_m2,
            veg_after_m2`` (m²), ``restoration_rate, fvc_before, fvc_after,
            valid_fraction`` (0-1), ``status, alerts, target_year,
            target_rate, attrs`` (dict), ``recorded_at``.  Empty (with these
            columns) when nothing is recorded.

        Examples
        --------
        >>> ledger.mine_history("YH-KS-004")[["date_after", "restored_m2", "status"]]  # doctest: +SKIP
        """
        table = "mine_history_superseded" if superseded else "mine_history"
        q = f"SELECT * FROM {table}"
        args: tuple[Any, ...] = ()
        if patch_id is not None:
            q += " WHERE patch_id=?"
            args = (str(patch_id),)
        with self._read() as con:
            df = pd.read_sql_query(q + " ORDER BY patch_id, date_after, id", con, params=args)
        for c in ("date_before", "date_after"):
            df[c] = [_date_of(v) if isinstance(v, str) else None for v in df[c]]
        df["attrs"] = [json.loads(v) if isinstance(v, str) and v else {} for v in df["attrs"]]
        df["target_year"] = df["target_year"].astype("Int64")
        df["alerts"] = df["alerts"].fillna("")
        return df.drop(columns=["id"]).reset_index(drop=True)

    def summary(self, today: _dt.date | None = None) -> pd.DataFrame:
        """Counts and areas by status, sky tier, colour, change type, reserve and zone.

        Parameters
        ----------
        today : datetime.date, optional
            Reference date for the red/yellow/green code; default the local date.

        Returns
        -------
        pandas.DataFrame
            Tidy: one row per (``dimension``, ``key``) with ``label`` (Chinese),
            ``n_cases``, ``area_m2`` (m²) and ``area_mu`` (mu).  ``dimension`` is
            ``"all"``, ``"status"`` (every state, zeros included), ``"sky_tier"``
            (``probable`` 疑似 and ``confirmed`` 影像确认, zeros included), ``"colour"``
            (all three), ``"change_type"``, ``"reserve"`` and ``"zone"``; each
            dimension's counts add up to the ``"all"`` row.  Missing reserve or
            zone shows as key ``"(none)"``.
        """
        return summarise_cases(self.cases(today=today))

    def precision(self, by: str | None = None) -> pd.DataFrame:
        """Detection precision from the field verdicts: confirmed / (confirmed + false alarm).

        Each case counts once, with its latest verdict (``confirm`` or
        ``dismiss`` event), grouped by the change type and zone the case had
        when it was checked.

        Parameters
        ----------
        by : {None, "change_type", "zone", "reserve_name"}
            Overall (None) or per group.

        Returns
        -------
        pandas.DataFrame
            Columns ``[by], confirmed, false_alarm, checked, precision``
            (precision NaN where nothing was checked).
        """
        from ecopatch.fieldcheck import detection_precision

        return detection_precision(self._verdicts(), by=by)

    def _verdicts(self) -> pd.DataFrame:
        with self._read() as con:
            rows = con.execute(
                "SELECT case_id, kind, data FROM events WHERE kind IN (?, ?) ORDER BY case_id, seq",
                (EventKind.CONFIRM.value, EventKind.DISMISS.value),
            ).fetchall()
        latest: dict[str, tuple[str, dict[str, Any]]] = {}
        for cid, kind, data in rows:
            latest[cid] = (kind, json.loads(data) if data else {})
        return pd.DataFrame(
            [
                {
                    "case_id": cid,
                    "verdict": "confirmed" if kind == EventKind.CONFIRM.value else "false_alarm",
                    "change_type": d.get("change_type"),
                    "zone": d.get("zone"),
                    "reserve_name": d.get("reserve_name"),
                }
                for cid, (kind, d) in latest.items()
            ],
            columns=["case_id", "verdict", "change_type", "zone", "reserve_name"],
        )

    # ------------------------------------------------------------------ writing helpers

    @staticmethod
    def _load_cases(con: sqlite3.Connection) -> dict[str, dict[str, Any]]:
        con.row_factory = sqlite3.Row
        rows = con.execute("SELECT * FROM cases ORDER BY case_id").fetchall()
        con.row_factory = None
        return {r["case_id"]: dict(r) for r in rows}

    @staticmethod
    def _known_keys(con: sqlite3.Connection, keys: Iterable[str]) -> set[str]:
        keys = list(keys)
        found: set[str] = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT dedupe_key FROM events WHERE dedupe_key IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in con.execute(q, chunk))
        return found

    def _append_event(
        self,
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
                event.on.isoformat(), _now_utc(), event.actor, event.note,
                _json(list(event.attachments)), _json(data), run_id, patch_id, source, dedupe_key,
            ),
        )  # fmt: skip
        row.update(
            n_events=seq,
            status=after.status.value,
            opened_on=after.opened_on.isoformat(),
            status_since=after.status_since.isoformat(),
            responsible_unit=after.responsible_unit,
            deadline=_iso(after.deadline),
            real_type=after.real_type,
            sky_tier=after.sky_tier.value,
            confirmed_on=_iso(after.confirmed_on),
            updated_at=_now_utc(),
        )

    @staticmethod
    def _save_case(con: sqlite3.Connection, row: dict[str, Any], *, insert: bool) -> None:
        cols = ("geom", *_CASE_COLUMNS)
        vals = [row.get(c) for c in cols]
        if insert:
            con.execute(
                f"INSERT INTO cases ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", vals
            )
        else:
            sets = ",".join(f"{c}=?" for c in cols if c != "case_id")
            con.execute(
                f"UPDATE cases SET {sets} WHERE case_id=?",
                [row.get(c) for c in cols if c != "case_id"] + [row["case_id"]],
            )

    @staticmethod
    def _touch_contents(
        con: sqlite3.Connection,
        table: str,
        bounds: Sequence[float] | None = None,
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
                (_now_utc(), *map(float, bounds), table),
            )
        else:
            con.execute(
                "UPDATE gpkg_contents SET last_change=? WHERE table_name=?", (_now_utc(), table)
            )

    def _next_serial(self, con: sqlite3.Connection, year: int) -> int:
        stem = f"{self.id_prefix}-{year:04d}-"
        row = con.execute(
            "SELECT MAX(CAST(substr(case_id, ?) AS INTEGER)) FROM cases WHERE case_id LIKE ?",
            (len(stem) + 1, stem + "%"),
        ).fetchone()
        return int(row[0] or 0) + 1

    # ------------------------------------------------------------------ add_detections

    def add_detections(
        self,
        patches: gpd.GeoDataFrame,
        run_id: str,
        *,
        min_overlap: float = 0.3,
        rule: str = "smaller",
        rebound_growth: float = 0.5,
        today: _dt.date | None = None,
        actor: str | None = None,
        max_new_cases: int | None = DEFAULT_MAX_NEW_CASES,
        clear_shares: Mapping[str, float] | None = None,
        min_clear_share: float = DEFAULT_CONFIRM_CLEAR,
    ) -> AddResult:
        """Add a run's suspect patches: match them to cases, open new ones, flag rebounds.

        Parameters
        ----------
        patches : geopandas.GeoDataFrame
            Suspect patches with the columns of
            :data:`ecopatch.vocabulary.PATCH_COLUMNS` (more columns are kept as
            attributes of the detection) and a CRS (any; geometries are
            transformed to EPSG:4490 with x = longitude).
        run_id : str
            ID of the detection run (e.g. ``"2024-06-s2"``).
        min_overlap : float
            Overlap score needed to match an existing case (default 0.3; see
            :mod:`ecopatch.ledger.match`).
        rule : {"smaller", "iou"}
            Overlap rule (default intersection over the smaller area).
        rebound_growth : float
            A false-alarm case found again reopens (rebound) only if the new
            patch is larger than ``(1 + rebound_growth)`` times the case's
            area; otherwise it is just matched.  Default 0.5 (50 % larger).
        today : datetime.date, optional
            Date recorded on the events; default the local date.
        actor : str, optional
            Who ran it; default ``"run {run_id}"``.
        max_new_cases : int or None
            Refuse (and write nothing) when the patches would open more new
            cases than this (default 200): so many from one pair of scenes
            usually means the dates are not comparable (season, haze, cloud),
            not real change.  None: no limit.
        clear_shares : mapping of str to float, optional
            Case ID -> share (0-1) of the case's outline that the patches'
            (after) scene sees clear of cloud and no-data.  A match confirms a
            ``probable`` case from the sky only where the share is at least
            ``min_clear_share`` (a case missing from the mapping is not
            confirmed).  None: the matching detection itself counts as the
            clear observation (a change is detected only where both dates
            were observed).  :func:`ecopatch.pipeline.run_pipeline` measures
            the shares on the new scene.
        min_clear_share : float
            See ``clear_shares`` (default 0.7).

        Returns
        -------
        AddResult
            Counts of new / matched / rebound / unchanged detections.

        Raises
        ------
        InputDataError
            A missing column (named), not a GeoDataFrame, or a value the
            ledger cannot take (named with the patch and the column): a date
            that cannot be read, lies in the future or before 1972, or a
            ``date_after`` not after ``date_before``; a ``change_type`` not in
            :data:`ecopatch.vocabulary.CHANGE_TYPES`; a ``confidence`` outside
            [0, 1] or an NDVI outside [-1, 1]; text holding control or
            direction-override characters; coordinates outside the globe.
        TooManyCasesError
            More than ``max_new_cases`` new cases; nothing was written.
        SuspiciousCoordinatesError
            Coordinates that do not fit the patches' CRS (longitude and
            latitude swapped, metres labelled as degrees).
        MissingCRSError
            ``patches`` has no CRS.
        DuplicateIDError
            Repeated or missing ``patch_id`` values.
        GeometryError
            A patch with no polygon area.
        LedgerLockedError
            Another process held the ledger longer than ``timeout_s``.

        Notes
        -----
        Matching (each detection to at most one case, by overlap; see
        :mod:`ecopatch.ledger.match`):

        - no match: a new case ``{prefix}-{year of date_after}-{serial}``
          opens in ``detected`` with a ``detect`` event;
        - a match on a ``closed`` case, or on a ``false_alarm`` case whose area
          grew by more than ``rebound_growth``: a ``rebound`` event, and the
          case goes to ``reopened`` (反弹回潮);
        - any other match: a ``redetect`` event, status unchanged.

        Sky tier (影像分级): a new case is ``probable``.  A match whose
        ``date_after`` is later than the case's first detection (``found_on``)
        and whose scene sees the case clear (``clear_shares``) adds a
        ``sky_confirm`` event after the ``redetect`` (or ``rebound``): the
        case becomes ``confirmed`` (影像确认) with ``confirmed_on`` = that
        ``date_after``.  The state does not move: a ground check is still
        needed.  A case that a later clear scene does not detect again stays
        ``probable``.

        On a match the case takes the new detection's geometry, area, type,
        confidence, dates and zone when its after date is not older than the
        case's.  A detection already in the ledger (same ``run_id`` and
        ``patch_id``, or same ``patch_id`` and ``date_after``) is counted as
        unchanged and writes nothing, so adding the same patches twice changes
        nothing.  The whole call is one transaction.
        """
        run_id = str(run_id).strip()
        if not run_id:
            raise InputDataError("run_id must be a non-empty string")
        today = today or _dt.date.today()
        actor = actor or f"run {run_id}"
        problem = (text_problem(run_id, multiline=False, max_chars=200)
                   or text_problem(actor, multiline=False, max_chars=200))
        if problem:
            raise InputDataError(f"run_id or actor {problem}")
        if max_new_cases is not None and (isinstance(max_new_cases, bool) or int(max_new_cases) < 0):
            raise InputDataError(f"max_new_cases={max_new_cases!r}: give a whole number >= 0, or None for no limit")
        prep = _prepare_patches(patches, today)
        n = len(prep)
        case_ids: list[str] = [""] * n
        counts = {"new": 0, "matched": 0, "rebound": 0, "unchanged": 0, "sky_confirmed": 0}
        if not (0.0 <= float(min_clear_share) <= 1.0):
            raise InputDataError(f"min_clear_share={min_clear_share!r}: give a share in [0, 1]")
        if n == 0:
            return AddResult(0, 0, 0, 0, run_id, ())
        with self._write("add detections") as con:
            # 1. already in the ledger?
            todo: list[int] = []
            for i, rec in enumerate(prep):
                hit = con.execute(
                    "SELECT case_id FROM detections WHERE (run_id=? AND patch_id=?) "
                    "OR (patch_id=? AND date_after IS NOT NULL AND date_after=?) LIMIT 1",
                    (run_id, rec["patch_id"], rec["patch_id"], rec["date_after"]),
                ).fetchone()
                if hit:
                    case_ids[i] = hit[0]
                    counts["unchanged"] += 1
                else:
                    todo.append(i)
            # 2. match the rest to the existing cases, sorted by case ID
            rows = self._load_cases(con)
            ids = sorted(rows)
            old_geoms = [gpkg_geometry(rows[c]["geom"]) for c in ids]
            result = match_patches(
                [prep[i]["geometry"] for i in todo], old_geoms, min_overlap=min_overlap, rule=rule
            )
            n_new = int((np.asarray(result.case_index) < 0).sum())
            if max_new_cases is not None and n_new > int(max_new_cases):
                raise TooManyCasesError(_too_many_message(run_id, len(prep), n_new, int(max_new_cases)))
            serials: dict[int, int] = {}
            # 3. write, in input order
            for j, i in enumerate(todo):
                rec = prep[i]
                k = int(result.case_index[j])
                if k < 0:
                    found = _date_of(rec["date_after"]) or today
                    year = found.year
                    if year not in serials:
                        serials[year] = self._next_serial(con, year)
                    cid = f"{self.id_prefix}-{year:04d}-{serials[year]:06d}"
                    serials[year] += 1
                    ev = Event(EventKind.DETECT, today, actor, data=_detection_data(rec, run_id))
                    after = model.open_case(cid, ev)
                    row = {"case_id": cid, "found_on": found.isoformat(), "n_detections": 1}
                    _take_detection(row, rec, run_id)
                    self._append_event(con, row, None, after, ev, source="add_detections",
                                       run_id=run_id, patch_id=rec["patch_id"])  # fmt: skip
                    self._save_case(con, row, insert=True)
                    rows[cid] = row
                    outcome, score = "new", None
                    counts["new"] += 1
                else:
                    cid = ids[k]
                    row = rows[cid]
                    before = self._case_from_row(row)
                    area_old = row.get("area_m2") or 0.0
                    rebound = before.status is Status.CLOSED or (
                        before.status is Status.FALSE_ALARM
                        and rec["area_m2"] > (1.0 + rebound_growth) * area_old
                    )
                    kind = EventKind.REBOUND if rebound else EventKind.REDETECT
                    score = float(result.score[j])
                    data = _detection_data(rec, run_id) | {"overlap_score": round(score, 4)}
                    if rebound:
                        data["area_m2_before"] = area_old
                    ev = Event(kind, today, actor, data=data)
                    after = model.advance(before, ev)
                    if (row.get("date_after") or "") <= (rec["date_after"] or ""):
                        _take_detection(row, rec, run_id)
                    row["n_detections"] = int(row.get("n_detections") or 0) + 1
                    self._append_event(con, row, before, after, ev, source="add_detections",
                                       run_id=run_id, patch_id=rec["patch_id"])  # fmt: skip
                    sky = _sky_confirmation(row, rec, run_id, score, clear_shares, float(min_clear_share))
                    if sky is not None:
                        ev2 = Event(EventKind.SKY_CONFIRM, today, actor, data=sky)
                        self._append_event(con, row, after, model.advance(after, ev2), ev2,
                                           source="add_detections", run_id=run_id,
                                           patch_id=rec["patch_id"])  # fmt: skip
                        counts["sky_confirmed"] += 1
                    self._save_case(con, row, insert=False)
                    outcome = "rebound" if rebound else "matched"
                    counts[outcome] += 1
                case_ids[i] = cid
                _insert_detection(con, rec, run_id, cid, outcome, score)
            if todo:
                all_geoms = [gpkg_geometry(r["geom"]) for r in rows.values()]
                new_geoms = [prep[i]["geometry"] for i in todo]
                self._touch_contents(con, "cases", shapely.total_bounds(all_geoms))
                self._touch_contents(
                    con, "detections", shapely.total_bounds(new_geoms), expand=True
                )
                self._touch_contents(con, "events")
        res = AddResult(run_id=run_id, case_ids=tuple(case_ids), **counts)
        log.info("ledger %s: %s", self.path, res)
        return res

    def confirm_from_sky(
        self,
        seen: pd.DataFrame,
        run_id: str,
        *,
        seen_on: _dt.date,
        today: _dt.date | None = None,
        actor: str | None = None,
    ) -> tuple[str, ...]:
        """Confirm probable cases whose new ground a later clear scene still shows (影像确认).

        The other way to the ``confirmed`` tier than :meth:`add_detections`:
        a run whose baseline already shows the change (``baseline =
        "previous"``) cannot find it again, but its scene can still show the
        ground the case turned into.  :func:`ecopatch.sky_tier.persisting`
        decides that from the scene alone; this records it.

        Parameters
        ----------
        seen : pandas.DataFrame
            One row per case to confirm: ``case_id`` and the evidence kept in
            the event (``class_now``, ``class_before``, ``class_after``,
            ``progress``, ``clear_share`` (0-1) and the cover fractions now
            ``veg``, ``bare``, ``built``, ``water`` (0-1), where present).
        run_id : str
            The run whose scene it is.
        seen_on : datetime.date
            Date of that scene.
        today, actor : optional
            Date and author of the events (default today, ``"run <run_id>"``).

        Returns
        -------
        tuple of str
            The cases confirmed now.  A case that is not ``probable``, or
            first found on or after ``seen_on``, is left as it is, so calling
            this twice changes nothing the second time.  One transaction.
        """
        run_id = str(run_id).strip()
        if not run_id:
            raise InputDataError("run_id must be a non-empty string")
        if "case_id" not in getattr(seen, "columns", ()):
            raise InputDataError("confirm_from_sky: `seen` needs a case_id column")
        today = today or _dt.date.today()
        actor = actor or f"run {run_id}"
        on = seen_on.isoformat()
        keep = ("class_now", "class_before", "class_after", "progress", "clear_share", "veg", "bare", "built", "water")
        done: list[str] = []
        if not len(seen):
            return ()
        with self._write("confirm from the sky") as con:
            rows = self._load_cases(con)
            for rec in seen.to_dict("records"):
                row = rows.get(str(rec["case_id"]))
                if row is None or (row.get("sky_tier") or SkyTier.PROBABLE.value) != SkyTier.PROBABLE.value:
                    continue
                first = row.get("found_on")
                if not first or first >= on:
                    continue
                data: dict[str, Any] = {"confirmed_on": on, "first_seen": first, "run_id": run_id,
                                        "how": "still shows its new ground"}
                for k in keep:
                    v = rec.get(k)
                    if v is not None and not (isinstance(v, float) and not math.isfinite(v)):
                        data[k] = round(float(v), 4) if isinstance(v, float) else v
                before = self._case_from_row(row)
                ev = Event(EventKind.SKY_CONFIRM, today, actor, data=data)
                self._append_event(con, row, before, model.advance(before, ev), ev, source="confirm_from_sky",
                                   run_id=run_id)  # fmt: skip
                self._save_case(con, row, insert=False)
                done.append(row["case_id"])
            if done:
                self._touch_contents(con, "events")
        log.info("ledger %s: %d case(s) confirmed from the sky by run %s (still showing their new ground)",
                 self.path, len(done), run_id)
        return tuple(done)

    # ------------------------------------------------------------------ assessments

    def record_assessment(self, mines: pd.DataFrame, run_id: str) -> AssessmentResult:
        """Record one date's mine assessment: one row per mine per date (一矿一档).

        Parameters
        ----------
        mines : pandas.DataFrame or geopandas.GeoDataFrame
            With the columns of :data:`MINE_COLUMNS` (``patch_id`` is the mine
            ID; areas in m², rates and fractions 0-1); those of
            :data:`MINE_OPTIONAL_COLUMNS` are kept when present.  Other
            columns are kept as ``attrs``; geometry is not stored.
        run_id : str
            ID of the assessment run (a scheduled run uses the scene ID).

        Returns
        -------
        AssessmentResult

        Raises
        ------
        InputDataError
            A missing column (named), a bad date, or no ``date_after``.
        DuplicateIDError
            A mine ID repeated or missing in ``mines``.

        Notes
        -----
        A mine's row for the same ``date_after`` is replaced when the new
        figures differ (a rerun with other parameters, another reference), and
        the old row is kept in ``mine_history_superseded``; when they are the
        same the row is left as it is (counted as unchanged), so recording the
        same result twice changes nothing.  All rows are written in one
        transaction.
        """
        run_id = str(run_id).strip()
        if not run_id:
            raise InputDataError("run_id must be a non-empty string")
        if not isinstance(mines, pd.DataFrame):
            raise InputDataError(f"mines must be a (Geo)DataFrame, not {type(mines).__name__}")
        missing = [c for c in MINE_COLUMNS if c not in mines.columns]
        if missing:
            raise InputDataError(
                f"mines result lacks column(s) {missing} needed by record_assessment "
                f"(expected {list(MINE_COLUMNS)})"
            )
        ids = mines["patch_id"].map(_str)
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
            records.append(_mine_record(r, run_id, extra))
        added = replaced = 0
        cols = [c for c in _MINE_ROW if c != "recorded_at"]
        with self._write("record a mine assessment") as con:
            for rec in records:
                old = con.execute(
                    f"SELECT id, {','.join(cols)} FROM mine_history WHERE patch_id=? AND date_after=?",
                    (rec["patch_id"], rec["date_after"]),
                ).fetchone()
                if old is not None and tuple(old[1:]) == tuple(rec[c] for c in cols):
                    continue
                if old is not None:
                    self._supersede_mine_row(con, int(old[0]), run_id)
                    replaced += 1
                else:
                    added += 1
                con.execute(
                    f"INSERT INTO mine_history ({','.join(_MINE_ROW)}) VALUES ({','.join('?' * len(_MINE_ROW))})",
                    [rec[c] for c in _MINE_ROW],
                )
            if added or replaced:
                self._touch_contents(con, "mine_history")
        res = AssessmentResult(added, len(records) - added - replaced, run_id, replaced)
        log.info("ledger %s: %s", self.path, res)
        return res

    @staticmethod
    def _supersede_mine_row(con: sqlite3.Connection, row_id: int, run_id: str | None) -> None:
        """Move one ``mine_history`` row to ``mine_history_superseded`` (same transaction)."""
        cols = ",".join(_MINE_ROW)
        con.execute(
            f"INSERT INTO mine_history_superseded ({cols}, superseded_at, superseded_by_run) "
            f"SELECT {cols}, ?, ? FROM mine_history WHERE id=?",
            (_now_utc(), run_id, row_id),
        )
        con.execute("DELETE FROM mine_history WHERE id=?", (row_id,))

    def _upgrade_schema(self) -> None:
        """Bring an older ledger to :data:`SCHEMA_VERSION` in one transaction (nothing is lost).

        1 -> 2 (:meth:`_upgrade_1_to_2`): one ``mine_history`` row per mine per
        date.  2 -> 3 (:meth:`_upgrade_2_to_3`): the sky tier of each case.
        """
        with self._write(f"upgrade the ledger to schema {SCHEMA_VERSION}") as con:
            row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None or int(row[0]) >= SCHEMA_VERSION:  # another process upgraded it meanwhile
                return
            version = int(row[0])
            done = []
            if version < 2:
                done.append(f"mine history: one row per mine per date, {self._upgrade_1_to_2(con)} row(s) kept")
            if version < 3:
                n, confirmed = self._upgrade_2_to_3(con)
                done.append(f"sky tier: {n} case(s), {confirmed} of them confirmed by a later re-detection")
            con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        log.warning("ledger %s: upgraded from schema %d to %d (%s); ecopatch older than this version cannot open "
                    "it any more", self.path, version, SCHEMA_VERSION, "; ".join(done))

    @staticmethod
    def _upgrade_1_to_2(con: sqlite3.Connection) -> int:
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
        for stmt in _MINE_DDL.split(";"):
            if stmt.strip():
                con.execute(stmt)
        for t in ("mine_history_superseded", "mine_verdicts"):
            for op in ("UPDATE", "DELETE"):
                con.execute(
                    f"CREATE TRIGGER IF NOT EXISTS {t}_no_{op.lower()} BEFORE {op} ON {t} "
                    f"BEGIN SELECT RAISE(ABORT, 'ecopatch ledger: {t} are append-only'); END"
                )
        now = _now_utc()
        for name, dtype, ident, desc in _CONTENTS:
            con.execute(
                "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, "
                "description, last_change, srs_id) VALUES (?,?,?,?,?,?)",
                (name, dtype, ident, desc, now, None),
            )
        con.execute("UPDATE gpkg_contents SET description=? WHERE table_name='mine_history'",
                    (dict((c[0], c[3]) for c in _CONTENTS)["mine_history"],))
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for r in old:
            if r.get("date_after"):
                latest[(r["patch_id"], r["date_after"])] = r
        keep = {id(r) for r in latest.values()}
        cols = ",".join(_MINE_ROW)
        for r in old:
            attrs = json.loads(r["attrs"]) if r.get("attrs") else {}
            rec = {c: r.get(c) for c in _MINE_ROW}
            for c in ("observed_m2", "still_bare_m2", "degraded_m2", "veg_before_m2", "veg_after_m2"):
                rec[c] = _float(attrs.pop(c, None))
            for c in ("direction", "alerts", "reference_scene", "reference_rule"):
                rec[c] = _str(attrs.pop(c, None))
            rec["attrs"] = _json(attrs)
            vals = [rec[c] for c in _MINE_ROW]
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

    def _upgrade_2_to_3(self, con: sqlite3.Connection) -> tuple[int, int]:
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
        rows = self._load_cases(con)
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
            before = self._case_from_row(row)
            data = {"confirmed_on": seen, "first_seen": row["found_on"], "run_id": run_id, "patch_id": patch_id,
                    "clear_share": None, "upgrade": "a re-detection recorded before ledger schema 3"}
            ev = Event(EventKind.SKY_CONFIRM, today, "ecopatch (ledger upgrade)", data=data)
            self._append_event(con, row, before, model.advance(before, ev), ev, source="upgrade_schema_3",
                               run_id=run_id, patch_id=patch_id)
            self._save_case(con, row, insert=False)
        if seen_again:
            self._touch_contents(con, "events")
            self._touch_contents(con, "cases")
        return len(rows), len(seen_again)

    # ------------------------------------------------------------------ restoration verdicts (修复核查)

    def export_verdict_template(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the verdicts workbook field teams fill in (see :func:`ecopatch.minecheck.write_verdict_template`).

        Returns
        -------
        Path
        """
        from ecopatch.minecheck import write_verdict_template

        return write_verdict_template(self.mine_history(), path, overwrite=overwrite)

    def import_mine_verdicts(
        self,
        path: str | os.PathLike[str],
        *,
        today: _dt.date | None = None,
        actor: str | None = None,
        strict: bool = False,
    ) -> Any:
        """Import restoration verdicts of field teams (已验收, 未通过验收, ...), like case results.

        Parameters
        ----------
        path : path
            The filled verdicts workbook (sheet 修复核查, from
            :meth:`export_verdict_template`), or a CSV / GeoPackage with the
            same Chinese columns (矿山编号, 核查结论, 核查人, 核查日期; 实测修复面积,
            备注, 照片 optional).
        today : datetime.date, optional
            Inspection dates after it are refused; default the local date.
        actor : str, optional
            Who imported (kept in each row's ``source``).
        strict : bool
            Record nothing if any row is rejected.

        Returns
        -------
        ecopatch.minecheck.VerdictImportReport

        Raises
        ------
        FieldCheckError
            The file is not a verdicts table (wrong sheet, missing column).

        Notes
        -----
        Validation: :func:`ecopatch.minecheck.validate_verdicts`.  The accepted
        rows are written in one transaction to the append-only
        ``mine_verdicts`` table; a verdict imported before is skipped, so
        importing the same file twice adds nothing.
        """
        from ecopatch.minecheck import VerdictImportReport, read_verdicts, validate_verdicts

        path = Path(path)
        raw = read_verdicts(path)
        with self._write(f"import mine verdicts {path.name}") as con:
            mines = [r[0] for r in con.execute("SELECT DISTINCT patch_id FROM mine_history")]

            def known(keys: list[str]) -> set[str]:
                found: set[str] = set()
                for i in range(0, len(keys), 500):
                    chunk = keys[i:i + 500]
                    q = f"SELECT dedupe_key FROM mine_verdicts WHERE dedupe_key IN ({','.join('?' * len(chunk))})"
                    found.update(r[0] for r in con.execute(q, chunk))
                return found

            plan = validate_verdicts(raw, mines, today=today or _dt.date.today(), known_keys=known)
            applied = not (strict and len(plan.rejected))
            if applied and plan.verdicts:
                now = _now_utc()
                for v in plan.verdicts:
                    source = f"import_mine_verdicts:{path.name}#row{v.row}" + (f" by {actor}" if actor else "")
                    con.execute(
                        "INSERT INTO mine_verdicts (patch_id, verdict, verdict_text, inspected_on, inspector, "
                        "restored_m2, note, attachments, source, dedupe_key, recorded_at) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (v.patch_id, v.verdict, v.verdict_text, v.inspected_on.isoformat(), v.inspector,
                         v.restored_m2, v.note, _json(list(v.attachments)), source, v.dedupe_key, now),
                    )
                self._touch_contents(con, "mine_verdicts")
        report = VerdictImportReport(path, plan.accepted, plan.rejected, plan.skipped, applied)
        log.info("ledger %s: %s", self.path, report.headline())
        return report

    def mine_verdicts(self, patch_id: str | None = None) -> pd.DataFrame:
        """Restoration verdicts imported from the field, oldest inspection first.

        Returns
        -------
        pandas.DataFrame
            ``patch_id, verdict`` (key), ``verdict_text`` (as written),
            ``inspected_on`` (datetime.date), ``inspector, restored_m2`` (m²,
            field-measured, or NaN), ``note, attachments`` (list),
            ``source, recorded_at``.
        """
        q = "SELECT * FROM mine_verdicts"
        args: tuple[Any, ...] = ()
        if patch_id is not None:
            q += " WHERE patch_id=?"
            args = (str(patch_id),)
        with self._read() as con:
            df = pd.read_sql_query(q + " ORDER BY inspected_on, id", con, params=args)
        df["inspected_on"] = [_date_of(v) for v in df["inspected_on"]]
        df["attachments"] = [json.loads(v) if v else [] for v in df["attachments"]]
        return df.drop(columns=["id", "dedupe_key"]).reset_index(drop=True)

    def verdict_agreement(self, *, max_days: int = 365) -> Any:
        """How far the field's verdicts and the imagery's status of each mine agree.

        See :func:`ecopatch.minecheck.verdict_agreement`.

        Returns
        -------
        ecopatch.minecheck.AgreementReport
        """
        from ecopatch.minecheck import verdict_agreement

        return verdict_agreement(self.mine_verdicts(), self.mine_history(), max_days=max_days)

    # ------------------------------------------------------------------ lifecycle

    def advance(
        self,
        case_id: str,
        kind: str | EventKind,
        *,
        today: _dt.date | None = None,
        actor: str | None = None,
        note: str | None = None,
        attachments: Sequence[str] = (),
        responsible_unit: str | None = None,
        deadline: _dt.date | str | None = None,
        real_type: str | None = None,
    ) -> Case:
        """Record one lifecycle event on a case (dispatch, confirm, close, ...).

        Parameters
        ----------
        case_id : str
            The case.
        kind : str or EventKind
            ``dispatch``, ``confirm``, ``dismiss`` (false alarm),
            ``start_rectification``, ``complete``, ``close`` (销号), ``reopen``,
            ``update`` or ``note``.  Detection events come only from
            :meth:`add_detections`.
        today : datetime.date, optional
            Date of the event; default the local date.
        actor : str, optional
            Who did it.
        note : str, optional
            Free text.
        attachments : sequence of str
            Paths or URLs of photos and documents.
        responsible_unit : str, optional
            Responsible unit (责任单位), kept on the case.
        deadline : datetime.date or ISO str, optional
            Rectification deadline (整改期限), kept on the case.
        real_type : str, optional
            Activity type found (HJ 1156 key or Chinese name).

        Returns
        -------
        Case
            The case after the event.

        Raises
        ------
        LedgerTransitionError
            If the event is not allowed from the case's state (the message lists
            the allowed next states) or is a detection event.
        LedgerError
            If there is no such case.
        """
        kind = EventKind.get(kind)
        for what, text, multiline, limit in (("actor", actor, False, 200), ("note", note, True, 30_000),
                                              ("responsible_unit", responsible_unit, False, 200),
                                              *(("attachment", a, False, 2_000) for a in attachments)):
            problem = text_problem(str(text), multiline=multiline, max_chars=limit) if text is not None else None
            if problem:
                raise InputDataError(f"case {case_id}: {what} {problem}; nothing was recorded")
        if kind in (EventKind.DETECT, EventKind.REDETECT, EventKind.REBOUND, EventKind.SKY_CONFIRM):
            raise LedgerTransitionError(
                f"case {case_id}: {kind.value!r} events come from add_detections"
                + (" or confirm_from_sky" if kind is EventKind.SKY_CONFIRM else "") + ", not advance()"
            )
        data: dict[str, Any] = {}
        if responsible_unit:
            data["responsible_unit"] = str(responsible_unit)
        if deadline is not None:
            d = _as_date(deadline, f"case {case_id}: deadline")
            data["deadline"] = d
        if real_type:
            data["real_type"] = _activity_key(real_type)
        ev = Event(kind, today or _dt.date.today(), actor, note, tuple(attachments), data)
        with self._write(f"advance case {case_id}") as con:
            con.row_factory = sqlite3.Row
            r = con.execute("SELECT * FROM cases WHERE case_id=?", (case_id,)).fetchone()
            con.row_factory = None
            if r is None:
                raise LedgerError(f"ledger {self.path} has no case {case_id!r}")
            row = dict(r)
            before = self._case_from_row(row)
            after = model.advance(before, ev)
            self._append_event(con, row, before, after, ev, source="advance")
            self._save_case(con, row, insert=False)
            self._touch_contents(con, "events")
            self._touch_contents(con, "cases")
        log.info("ledger %s: case %s %s -> %s", self.path, case_id, kind.value, after.status.value)
        return after

    # ------------------------------------------------------------------ field check

    def export_fieldcheck(
        self,
        out_dir: str | os.PathLike[str],
        cases: Iterable[str] | pd.DataFrame | None = None,
        *,
        chips: Callable[[pd.Series, Path, Path], None] | None = None,
        overwrite: bool = False,
        today: _dt.date | None = None,
        dispatch: bool = False,
        actor: str | None = None,
    ) -> FieldPackage:
        """Write the field package (地上查) for field teams.

        Parameters
        ----------
        out_dir : path
            Folder for the package (created if missing).
        cases : iterable of case IDs, or a DataFrame with ``case_id``, optional
            Which cases; default those awaiting a ground check (``detected``,
            ``dispatched`` and ``reopened``).
        chips : callable, optional
            ``chips(case_row, before_png, after_png)`` writes the before/after
            image chips of one case (PNG, with the outline); called per case.
            ``case_row`` is the case's row of :meth:`cases` (geometry in
            EPSG:4490, ``date_before``/``date_after`` of its latest detection).
        overwrite : bool
            Replace existing package files (default False:
            :class:`~ecopatch.errors.OutputExistsError`).
        today : datetime.date, optional
            Reference date for the red/yellow/green code and dispatch events.
        dispatch : bool
            After the files are written, record a ``dispatch`` event on every
            exported case in ``detected`` or ``reopened`` (one transaction).
        actor : str, optional
            Who dispatched.

        Returns
        -------
        ecopatch.fieldcheck.FieldPackage
            Paths of ``cases.gpkg``, ``cases.kml``, ``cases.csv``,
            ``cases.xlsx``, ``results_template.xlsx`` and the chips.

        Raises
        ------
        LedgerError
            If a requested case ID is not in the ledger.
        OutputExistsError
            If a package file exists and ``overwrite`` is False.
        """
        from ecopatch.fieldcheck import write_field_package

        today = today or _dt.date.today()
        gdf = self.cases(today=today)
        if cases is None:
            sel = gdf[gdf["status"].isin([Status.DETECTED.value, Status.DISPATCHED.value,
                                          Status.REOPENED.value])]  # fmt: skip
        else:
            wanted = list(cases["case_id"]) if isinstance(cases, pd.DataFrame) else list(cases)
            unknown = sorted(set(wanted) - set(gdf["case_id"]))
            if unknown:
                raise LedgerError(f"ledger {self.path} has no case(s) {unknown[:10]}")
            sel = gdf[gdf["case_id"].isin(wanted)]
        pkg = write_field_package(sel, out_dir, chips=chips, overwrite=overwrite)
        if dispatch:
            todo = sel[sel["status"].isin([Status.DETECTED.value, Status.REOPENED.value])]
            with self._write("dispatch cases") as con:
                rows = self._load_cases(con)
                for cid in todo["case_id"]:
                    row = rows[cid]
                    before = self._case_from_row(row)
                    if before.status not in (Status.DETECTED, Status.REOPENED):
                        continue  # moved on meanwhile
                    ev = Event(
                        EventKind.DISPATCH, today, actor, note=f"field package {pkg.out_dir}"
                    )
                    after = model.advance(before, ev)
                    self._append_event(con, row, before, after, ev, source="export_fieldcheck")
                    self._save_case(con, row, insert=False)
                self._touch_contents(con, "events")
        log.info("ledger %s: field package of %d cases in %s", self.path, len(sel), pkg.out_dir)
        return pkg

    def import_fieldcheck(
        self,
        path: str | os.PathLike[str],
        *,
        today: _dt.date | None = None,
        actor: str | None = None,
        strict: bool = False,
    ) -> ImportReport:
        """Import filled field results (地上查 back): validate every row, apply the good ones.

        Parameters
        ----------
        path : path
            The filled ``results_template.xlsx`` (sheet 核查结果), or a CSV or
            GeoPackage with the same Chinese column names.
        today : datetime.date, optional
            Inspection dates after ``today`` are rejected; default the local date.
        actor : str, optional
            Who imported (kept as ``imported_by`` in each event's data); the
            inspector (核查人) of each row is the event's actor.
        strict : bool
            Apply nothing if any row is rejected (default False: apply the valid
            rows, report the others).

        Returns
        -------
        ecopatch.fieldcheck.ImportReport
            ``accepted`` and ``rejected`` (with a ``reason`` per row) and
            ``skipped`` (blank, or already imported) rows.

        Raises
        ------
        FieldCheckError
            If the file is not a results table (wrong sheet, missing column).

        Notes
        -----
        Validation (see :func:`ecopatch.fieldcheck.validate_results`): unknown
        case IDs, values not in the allowed lists, unparseable, impossible or
        future dates, a deadline before the inspection, a case in more than one
        row, and transitions not allowed from the case's current state are
        rejected.  All accepted rows are written in one transaction; a row
        imported before (same content for the same case) is skipped, so
        importing the same file twice adds nothing.
        """
        from ecopatch.fieldcheck import ImportReport, read_results, validate_results

        today = today or _dt.date.today()
        path = Path(path)
        if actor is not None and text_problem(str(actor), multiline=False, max_chars=200):
            raise InputDataError(f"actor {text_problem(str(actor), multiline=False, max_chars=200)}")
        raw = read_results(path)
        with self._write(f"import field results {path.name}") as con:
            rows = self._load_cases(con)
            plan = validate_results(
                raw,
                {cid: self._case_from_row(r) for cid, r in rows.items()},
                found_on={cid: _date_of(r["found_on"]) for cid, r in rows.items()},
                today=today,
                known_keys=lambda keys: self._known_keys(con, keys),
            )
            applied = not (strict and len(plan.rejected))
            if applied:
                for p in plan.events:
                    row = rows[p.case_id]
                    before = self._case_from_row(row)
                    ev = p.event
                    if actor:
                        ev = replace(ev, data={**ev.data, "imported_by": actor})
                    after = model.advance(before, ev)
                    self._append_event(con, row, before, after, ev,
                                       source=f"import_fieldcheck:{path.name}#row{p.row}",
                                       dedupe_key=p.dedupe_key)  # fmt: skip
                    self._save_case(con, row, insert=False)
                if plan.events:
                    self._touch_contents(con, "events")
                    self._touch_contents(con, "cases")
        report = ImportReport(
            path=path,
            accepted=plan.accepted,
            rejected=plan.rejected,
            skipped=plan.skipped,
            applied=applied,
        )
        log.info("ledger %s: %s", self.path, report.headline())
        return report

    def export_report(
        self,
        out_dir: str | os.PathLike[str],
        *,
        today: _dt.date | None = None,
        overwrite: bool = False,
    ) -> dict[str, Path]:
        """Write the monthly ledger report (月复盘): all cases, events, summary, precision.

        Writes ``ledger_report.xlsx`` (sheets 案件清单 cases with colour codes,
        汇总 summary, 核查精度 precision, 事件记录 events, 矿山修复 mine
        history) and ``ledger_cases.csv`` (UTF-8 with BOM), each atomically.

        Returns
        -------
        dict of str to Path
            ``{"xlsx": ..., "csv": ...}``.

        Raises
        ------
        OutputExistsError
            If a file exists and ``overwrite`` is False.
        """
        from ecopatch.fieldcheck import write_ledger_report

        today = today or _dt.date.today()
        cases = self.cases(today=today)
        return write_ledger_report(
            out_dir,
            cases=cases,
            summary=summarise_cases(cases),
            precision=self.precision(),
            events=self.events(),
            mines=_plain_years(self.mine_history()),
            overwrite=overwrite,
        )

    # ------------------------------------------------------------------ integrity

    def check(self, *, raise_on_error: bool = False) -> CheckReport:
        """Check the ledger's integrity.

        Checks SQLite's ``PRAGMA integrity_check``, the GeoPackage header
        (application_id, user_version), the schema version, that every case's
        stored state equals the replay of its events through
        :mod:`ecopatch.ledger.model`, that event sequences run 1..n with
        consistent from/to states, that every geometry decodes, and that no
        event or detection points to a missing case.

        Parameters
        ----------
        raise_on_error : bool
            Raise :class:`~ecopatch.errors.LedgerIntegrityError` instead of
            returning a failed report.

        Returns
        -------
        CheckReport
        """
        problems: list[str] = []
        version: int | None = None
        n_cases = n_events = 0
        try:
            with self._read() as con:
                ic = [r[0] for r in con.execute("PRAGMA integrity_check")]
                if ic != ["ok"]:
                    problems.append("SQLite integrity_check: " + "; ".join(ic[:5]))
                app = con.execute("PRAGMA application_id").fetchone()[0]
                if app != _GPKG_APPLICATION_ID:
                    problems.append(f"application_id is {app:#x}, not 'GPKG'")
                uv = con.execute("PRAGMA user_version").fetchone()[0]
                if uv < 10200:
                    problems.append(f"GeoPackage user_version {uv} is not 1.2 or later")
                row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                version = int(row[0]) if row else None
                if version != SCHEMA_VERSION:
                    problems.append(f"schema_version is {version}, expected {SCHEMA_VERSION}")
                cases = self._load_cases(con)
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
                stored = self._case_from_row(row)
                if stored != state:
                    problems.append(f"case {cid}: stored {stored} != replay of events {state}")
                if row["n_events"] != len(evs):
                    problems.append(f"case {cid}: n_events {row['n_events']} != {len(evs)}")
            except (LedgerTransitionError, ValueError, KeyError) as exc:
                problems.append(f"case {cid}: events do not replay: {exc}")
            try:
                g = gpkg_geometry(row["geom"])
                if g is None or g.is_empty:
                    problems.append(f"case {cid}: empty geometry")
            except Exception as exc:  # noqa: BLE001 - report any decoding failure
                problems.append(f"case {cid}: geometry does not decode: {exc}")
        report = CheckReport(self.path, not problems, tuple(problems), version, n_cases, n_events)
        if raise_on_error:
            report.raise_if_failed()
        return report


# --------------------------------------------------------------------------- helpers


def _plain_years(history: pd.DataFrame) -> pd.DataFrame:
    """The history with ``target_year`` as ints and None (spreadsheet writers take no ``pd.NA``)."""
    return history.assign(target_year=[None if pd.isna(v) else int(v) for v in history["target_year"]])


def _mine_record(r: Any, run_id: str, extra: Sequence[str]) -> dict[str, Any]:
    """One ``mine_history`` row from a row of a mines result."""
    pid = _str(r["patch_id"])
    rec: dict[str, Any] = {"patch_id": pid, "run_id": run_id}
    for c in ("area_m2", "damaged_m2", "restored_m2", "restoration_rate", "fvc_before", "fvc_after",
              "valid_fraction", "observed_m2", "still_bare_m2", "degraded_m2", "veg_before_m2", "veg_after_m2",
              "target_rate"):
        rec[c] = _float(r.get(c))
    for c in ("status", "direction", "reference_scene", "reference_rule"):
        rec[c] = _str(r.get(c))
    rec["alerts"] = _str(r.get("alerts")) or ""
    year = _float(r.get("target_year"))
    rec["target_year"] = int(year) if year is not None else None
    rec["date_before"] = _iso(_as_date(r["date_before"], f"mine {pid}: date_before"))
    rec["date_after"] = _iso(_as_date(r["date_after"], f"mine {pid}: date_after"))
    if rec["date_after"] is None:
        raise InputDataError(f"mine {pid}: date_after is empty; the mine history keeps one row per mine per date")
    rec["attrs"] = _json({c: _clean(r[c]) for c in extra})
    rec["recorded_at"] = _now_utc()
    return rec


def _activity_key(value: str) -> str:
    v = str(value).strip()
    if v in ACTIVITY_TYPES:
        return v
    for k, zh in ACTIVITY_TYPES.items():
        if v == zh:
            return k
    raise InputDataError(
        f"real_type {value!r} is not an HJ 1156 activity type; use one of "
        f"{list(ACTIVITY_TYPES)} or {list(ACTIVITY_TYPES.values())}"
    )


def _too_many_message(run_id: str, n_patches: int, n_new: int, limit: int) -> str:
    return (
        f"run {run_id}: the {n_patches} suspect patches would open {n_new} new cases, more than "
        f"max_new_cases = {limit}; nothing was written. So many new cases from one pair of scenes usually "
        "means that the two dates are not comparable (a different season: crops, leaf fall; haze or thin "
        "cloud; a scene without a cloud mask), not that much real change, and field teams would be sent out "
        "for nothing. Look at the change map and choose a baseline of the same season, clear of cloud. If the "
        "changes are real, allow them: `ecopatch ledger add ... --allow-many-cases` (or --max-new-cases N); "
        "for `ecopatch run`, `[run] allow_many_cases = true` (or max_new_cases = N) or --allow-many-cases; "
        "in Python, max_new_cases=None"
    )


def _change_key(v: Any) -> str | None:
    s = _str(v)
    if s is None:
        return None
    if s in CHANGE_TYPES:
        return s
    return next((k for k, zh in CHANGE_TYPE_ZH.items() if zh == s), s)


def _prepare_patches(patches: Any, today: _dt.date) -> list[dict[str, Any]]:
    """Validate suspect patches and bring them to EPSG:4490 MultiPolygons, one dict per row.

    Every value is checked as a field-results import is: the first problems
    found (up to 10, each naming the patch and the column) are raised
    together as one :class:`InputDataError`.  A date is in the future when it
    is after the later of ``today`` and the clock's date, with a day's grace
    for time zones (acquisition dates are UTC).
    """
    import geopandas as gpd

    from ecopatch.io.vector import check_coordinates

    if not isinstance(patches, gpd.GeoDataFrame):
        raise InputDataError(
            f"patches must be a GeoDataFrame of suspect patches, not {type(patches).__name__}"
        )
    missing = [c for c in PATCH_COLUMNS if c not in patches.columns]
    if missing:
        raise InputDataError(
            f"patches lack column(s) {missing} needed by add_detections; a suspect-patch table "
            f"has the columns of ecopatch.vocabulary.PATCH_COLUMNS: {list(PATCH_COLUMNS)}"
        )
    crs = as_crs(patches.crs, what="patches")
    if len(patches) == 0:
        return []
    ids = patches["patch_id"].map(_str)
    if ids.isna().any():
        raise DuplicateIDError(
            f"patches have {int(ids.isna().sum())} missing patch_id value(s); every patch needs one"
        )
    dup = sorted(set(ids[ids.duplicated()]))
    if dup:
        raise DuplicateIDError(f"patches repeat patch_id {dup[:10]}; patch IDs must be unique")
    geoms = np.asarray(patches.geometry.values, dtype=object)
    bad = [ids.iloc[i] for i, g in enumerate(geoms) if g is None or shapely.is_empty(g)]
    if bad:
        raise GeometryError(f"patches {bad[:10]} have no geometry; drop them before adding")
    check_coordinates(patches, "patches")  # swapped lon/lat, metres labelled as degrees
    target = CRS.from_epsg(_SRS_ID)
    if not crs.equals(target):
        tr = transformer(crs, target)
        geoms = shapely.transform(
            geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))
        )
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        warnings.warn(
            f"repaired invalid geometries of patches {list(ids[invalid])[:10]} (make_valid)",
            GeometryRepairedWarning,
            stacklevel=3,
        )
        geoms = np.where(invalid, shapely.make_valid(geoms), geoms)
    out_geoms = []
    for pid, g in zip(ids, geoms):
        parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
        polys = [q for p in parts for q in shapely.get_parts(p)]
        if not polys:
            raise GeometryError(
                f"patch {pid}: geometry is a {g.geom_type} with no polygon area; suspect "
                f"patches must be polygons"
            )
        out_geoms.append(shapely.MultiPolygon(polys))
    problems: list[str] = []
    latest = max(today, _dt.date.today()) + _dt.timedelta(days=1)
    bounds = shapely.bounds(np.asarray(out_geoms, dtype=object))
    outside = ~np.all(np.isfinite(bounds), axis=1) | (bounds[:, 0] < -180) | (bounds[:, 2] > 180) | (
        bounds[:, 1] < -90) | (bounds[:, 3] > 90)
    for i in np.flatnonzero(outside)[:10]:
        problems.append(f"patch {ids.iloc[i]}: its coordinates fall outside the globe in EPSG:4490 "
                        f"({bounds[i].round(4).tolist()}); check the layer's CRS and axis order")
    if problems:
        raise InputDataError("; ".join(problems))
    area = geodesic_area_m2(out_geoms, target)
    reps = shapely.point_on_surface(out_geoms)
    geom_col = patches.geometry.name
    extra = [c for c in patches.columns if c not in PATCH_COLUMNS and c != geom_col]
    recs = []
    attrs = pd.DataFrame(patches.drop(columns=geom_col)).to_dict("records")
    for i, r in enumerate(attrs):
        pid = ids.iloc[i]
        p0 = len(problems)

        def bad(col: str, why: str, pid: str = pid) -> None:
            problems.append(f"patch {pid}: {col} {why}")

        for col in ("patch_id", "reserve_name", "zone", "zone_name"):
            v = r[col]
            if isinstance(v, str):
                why = text_problem(v, multiline=False, max_chars=500)
                if why:
                    bad(col, why)
        for col in extra:
            v = r[col]
            if isinstance(v, str) and text_problem(v, max_chars=32_000):
                bad(col, text_problem(v, max_chars=32_000) or "")
        ctype = _change_key(r["change_type"])
        if ctype is None:
            bad("change_type", "is empty")
        elif ctype not in CHANGE_TYPES:
            bad("change_type", f"{_str(r['change_type'])!r} is not a change type; use one of {list(CHANGE_TYPES)} "
                               f"or {list(CHANGE_TYPE_ZH.values())}")
        conf = _float(r["confidence"])
        if _clean(r["confidence"]) is not None and conf is None:
            bad("confidence", f"{r['confidence']!r} is not a number")
        elif conf is not None and not (0.0 <= conf <= 1.0):
            bad("confidence", f"{conf:g} is outside [0, 1]")
        ndvi = {}
        for col in ("ndvi_before", "ndvi_after"):
            x = _float(r[col])
            if x is not None and not (-1.0 <= x <= 1.0):
                bad(col, f"{x:g} is outside [-1, 1]")
            ndvi[col] = x
        dates: dict[str, _dt.date | None] = {}
        for col in ("date_before", "date_after"):
            try:
                d = _as_date(r[col], f"patch {pid}: {col}")
            except InputDataError as exc:
                problems.append(str(exc))
                d = None
            if d is not None and d > latest:
                bad(col, f"{d} is in the future (today is {latest - _dt.timedelta(days=1)})")
            elif d is not None and d < EARLIEST_IMAGE:
                bad(col, f"{d} is before any satellite image (Landsat 1, {EARLIEST_IMAGE})")
            dates[col] = d
        if dates["date_before"] is not None and dates["date_after"] is not None and (
                dates["date_after"] <= dates["date_before"]):
            bad("date_after", f"{dates['date_after']} is not after date_before {dates['date_before']}")
        if not np.isfinite(area[i]) or area[i] <= 0:
            bad("geometry", "has no ground area (coordinates outside the CRS's valid range?)")
        if len(problems) >= 10:
            break
        if len(problems) > p0:
            continue
        rec: dict[str, Any] = {
            "patch_id": pid,
            "geometry": out_geoms[i],
            "area_m2": float(area[i]),
            "lon": float(shapely.get_x(reps[i])),
            "lat": float(shapely.get_y(reps[i])),
            "change_type": ctype,
            "confidence": conf,
            "ndvi_before": ndvi["ndvi_before"],
            "ndvi_after": ndvi["ndvi_after"],
            "reserve_name": _str(r["reserve_name"]),
            "zone": _str(r["zone"]),
            "zone_name": _str(r["zone_name"]),
            "date_before": _iso(dates["date_before"]),
            "date_after": _iso(dates["date_after"]),
            "input_area_m2": _float(r["area_m2"]) if math.isfinite(_float(r["area_m2"]) or 0.0) else None,
            "attrs": {c: _clean(r[c]) for c in extra},
        }
        recs.append(rec)
    if problems:
        more = " (the first 10 problems; there may be more)" if len(problems) >= 10 else ""
        raise InputDataError(f"cannot add the suspect patches{more}: " + "; ".join(problems[:10])
                             + "; nothing was written")
    return recs


def _detection_data(rec: dict[str, Any], run_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "patch_id": rec["patch_id"],
        "change_type": rec["change_type"],
        "area_m2": round(rec["area_m2"], 3),
        "confidence": rec["confidence"],
        "date_before": rec["date_before"],
        "date_after": rec["date_after"],
        "zone": rec["zone"],
    }


def _sky_confirmation(row: dict[str, Any], rec: dict[str, Any], run_id: str, score: float,
                      clear_shares: Mapping[str, float] | None, min_clear: float) -> dict[str, Any] | None:
    """The data of a ``sky_confirm`` event when this match confirms the case from the sky, else None.

    The case must be ``probable``, the detection's ``date_after`` later than
    the case's first detection (``found_on``), and its scene must see the
    case clear (``clear_shares``, when given).
    """
    if (row.get("sky_tier") or SkyTier.PROBABLE.value) != SkyTier.PROBABLE.value:
        return None
    seen, first = rec.get("date_after"), row.get("found_on")
    if not seen or not first or seen <= first:
        return None
    share = None
    if clear_shares is not None:
        share = _float(clear_shares.get(row["case_id"]))
        if share is None or share < min_clear:
            log.info("case %s found again on %s, but only %.0f %% of it was seen clear (< %.0f %%): stays probable",
                     row["case_id"], seen, 100 * (share or 0.0), 100 * min_clear)
            return None
    return {"confirmed_on": seen, "first_seen": first, "run_id": run_id, "patch_id": rec["patch_id"],
            "overlap_score": round(score, 4), "clear_share": None if share is None else round(share, 4)}


def _take_detection(row: dict[str, Any], rec: dict[str, Any], run_id: str) -> None:
    """Copy a detection's geometry and descriptive attributes onto a case row."""
    row.update(
        geom=gpkg_blob(rec["geometry"]),
        change_type=rec["change_type"],
        area_m2=rec["area_m2"],
        area_mu=float(m2_to_mu(rec["area_m2"])),
        confidence=rec["confidence"],
        lon=rec["lon"],
        lat=rec["lat"],
        reserve_name=rec["reserve_name"],
        zone=rec["zone"],
        zone_name=rec["zone_name"],
        date_before=rec["date_before"],
        date_after=rec["date_after"],
        patch_id=rec["patch_id"],
        run_id=run_id,
    )


def _insert_detection(
    con: sqlite3.Connection,
    rec: dict[str, Any],
    run_id: str,
    case_id: str,
    outcome: str,
    score: float | None,
) -> None:
    con.execute(
        "INSERT INTO detections (geom, run_id, patch_id, case_id, outcome, score, change_type, "
        "area_m2, area_mu, confidence, date_before, date_after, ndvi_before, ndvi_after, "
        "reserve_name, zone, zone_name, attrs, recorded_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            gpkg_blob(rec["geometry"]), run_id, rec["patch_id"], case_id, outcome, score,
            rec["change_type"], rec["area_m2"], float(m2_to_mu(rec["area_m2"])),
            rec["confidence"], rec["date_before"], rec["date_after"], rec["ndvi_before"],
            rec["ndvi_after"], rec["reserve_name"], rec["zone"], rec["zone_name"],
            _json(rec["attrs"] | {"input_area_m2": rec["input_area_m2"]}), _now_utc(),
        ),
    )  # fmt: skip


def _cases_frame(
    rows: list[sqlite3.Row],
    *,
    status: Any,
    today: _dt.date | None,
    warn_days: int,
    stale_days: int,
    gpd: Any,
) -> gpd.GeoDataFrame:
    today = today or _dt.date.today()
    recs = []
    geoms = []
    for r in rows:
        d = {c: r[c] for c in _CASE_COLUMNS}
        case = Ledger._case_from_row(r)
        colour = model.case_colour(case, today, warn_days=warn_days, stale_days=stale_days)
        for c in ("found_on", "opened_on", "status_since", "date_before", "date_after",
                  "deadline", "confirmed_on"):  # fmt: skip
            d[c] = _date_of(d[c])
        d["status_zh"] = case.status.zh
        d["sky_tier_zh"] = case.sky_tier.zh
        d["colour"] = colour.value
        d["colour_zh"] = colour.zh
        d["change_type_zh"] = CHANGE_TYPE_ZH.get(d["change_type"] or "", d["change_type"])
        d["zone_zh"] = ZONE_ZH.get(d["zone"] or "", d["zone"])
        recs.append(d)
        geoms.append(gpkg_geometry(r["geom"]))
    cols = [*_CASE_COLUMNS, "status_zh", "colour", "colour_zh", "change_type_zh", "zone_zh", "sky_tier_zh"]
    df = pd.DataFrame(recs, columns=cols)
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=LEDGER_CRS), crs=LEDGER_CRS)
    if status is not None:
        wanted = [status] if isinstance(status, (str, Status)) else list(status)
        keys = {Status.get(s).value for s in wanted}
        gdf = gdf[gdf["status"].isin(keys)].reset_index(drop=True)
    return gdf


_SUMMARY_DIMS = (
    ("all", None),
    ("status", "status"),
    ("sky_tier", "sky_tier"),
    ("colour", "colour"),
    ("change_type", "change_type"),
    ("reserve", "reserve_name"),
    ("zone", "zone"),
)


def summarise_cases(cases: pd.DataFrame) -> pd.DataFrame:
    """Tidy counts and areas of cases by status, sky tier, colour, change type, reserve and zone.

    Parameters
    ----------
    cases : pandas.DataFrame
        As from :meth:`Ledger.cases` (needs ``status``, ``colour``,
        ``change_type``, ``reserve_name``, ``zone`` and ``area_m2`` in m²;
        ``sky_tier`` is counted when present).

    Returns
    -------
    pandas.DataFrame
        Columns ``dimension, key, label, n_cases, area_m2, area_mu``; see
        :meth:`Ledger.summary`.
    """
    out = []
    none = "(none)"
    for dim, col in _SUMMARY_DIMS:
        if col is not None and col not in cases.columns and dim == "sky_tier":
            continue
        if col is None:
            keys = pd.Series(["all"] * len(cases), index=cases.index, dtype=object)
        else:
            keys = cases[col].astype(object).where(cases[col].notna(), none)
        grouped = pd.DataFrame({"key": keys, "area_m2": cases["area_m2"].astype(float)})
        agg = grouped.groupby("key", sort=True)["area_m2"].agg(["size", "sum"])
        if dim == "status":
            order = [s.value for s in Status]
        elif dim == "colour":
            order = [c.value for c in Colour]
        elif dim == "sky_tier":
            order = [t.value for t in SkyTier]
        elif dim == "all":
            order = ["all"]
        else:
            order = list(agg.index)
        for key in order:
            n, a = (
                (int(agg.loc[key, "size"]), float(agg.loc[key, "sum"]))
                if key in agg.index
                else (0, 0.0)
            )
            out.append(
                {
                    "dimension": dim,
                    "key": key,
                    "label": _label(dim, key),
                    "n_cases": n,
                    "area_m2": a,
                    "area_mu": float(m2_to_mu(a)),
                }
            )
    return pd.DataFrame(out, columns=["dimension", "key", "label", "n_cases", "area_m2", "area_mu"])


def _label(dim: str, key: str) -> str:
    if dim == "all":
        return "合计"
    if key == "(none)":
        return "(无)"
    if dim == "status":
        return Status(key).zh
    if dim == "colour":
        return Colour(key).zh
    if dim == "sky_tier":
        return SkyTier(key).zh
    if dim == "change_type":
        return CHANGE_TYPE_ZH.get(key, key)
    if dim == "zone":
        return ZONE_ZH.get(key, key)
    return key


def content_key(*parts: Any) -> str:
    """A short stable hash of ``parts`` (for de-duplicating imported rows)."""
    h = hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode())
    return h.hexdigest()[:32]
