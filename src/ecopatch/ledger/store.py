"""The case ledger (台账) in one GeoPackage file: :class:`Ledger`, the only code that writes it.

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
    Restoration verdicts of field teams (已验收, 未通过验收, ...), recorded
    by :meth:`Ledger.record_mine_verdict` (:func:`ecopatch.fieldcheck.import_verdicts`
    imports a filled workbook of them).
``meta`` (attributes)
    ``schema_version``, ID prefix, creation time.

The tables are defined in :mod:`ecopatch.ledger.schema`; the other modules of
:mod:`ecopatch.ledger` are this class's internals.  The field check
(:mod:`ecopatch.fieldcheck`) is a client: it records through :meth:`Ledger.record_event`.

Safety
------
Each logical write (one :meth:`Ledger.add_detections`, one
:meth:`Ledger.advance`, one :meth:`Ledger.transaction` block, ...) is exactly
one SQLite transaction, begun with ``BEGIN IMMEDIATE``: a second writer waits
up to ``timeout_s`` and then gets :class:`~ecopatch.errors.LedgerLockedError`;
a process killed mid-write leaves a hot rollback journal that SQLite replays on
the next open, so the ledger is exactly as before that write.  The journal mode
is ``DELETE`` (no ``-wal``/``-shm`` files left beside the user's file); if
another program (QGIS) has switched the file to WAL and still holds it open,
the ledger carries on in WAL, which is just as atomic, and switches back later.

Not written: an R-tree spatial index (its triggers need GDAL's SQL functions);
GDAL and QGIS read the layers without one.
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ecopatch.errors import (
    InputDataError,
    LedgerError,
    LedgerTransitionError,
)
from ecopatch.ledger import connection, migrations, model, queries, schema
from ecopatch.ledger.check import CheckReport, check_ledger
from ecopatch.ledger.detections import AddResult, activity_key, confirm_seen, prepare_patches, write_detections
from ecopatch.ledger.mines import (
    MINE_COLUMNS,
    MINE_OPTIONAL_COLUMNS,
    AssessmentResult,
    mine_records,
    write_mine_records,
)
from ecopatch.ledger.model import Case, Event, EventKind, Status
from ecopatch.ledger.report import write_ledger_report
from ecopatch.ledger.rows import (
    append_event,
    case_from_row,
    known_keys,
    load_cases,
    save_case,
    touch_contents,
)
from ecopatch.ledger.schema import SCHEMA_VERSION
from ecopatch.ledger.summary import detection_precision, plain_years, summarise_cases
from ecopatch.ledger.values import as_date, now_utc, to_json
from ecopatch.vector.sanitize import text_problem

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = [
    "AddResult",
    "AssessmentResult",
    "DEFAULT_CONFIRM_CLEAR",
    "DEFAULT_MAX_NEW_CASES",
    "Ledger",
    "MINE_COLUMNS",
    "MINE_OPTIONAL_COLUMNS",
]

log = logging.getLogger(__name__)

#: Share (0-1) of a case's outline a later scene must see clear for its detection there to confirm
#: the case from the sky (``min_clear_share`` of :meth:`Ledger.add_detections`).
DEFAULT_CONFIRM_CLEAR = 0.7
#: New cases one call of :meth:`Ledger.add_detections` may open by default (``max_new_cases``).
DEFAULT_MAX_NEW_CASES = 200


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
        return connection.connect(self.path, self.timeout_s)

    def _translate(self, exc: sqlite3.Error, what: str) -> LedgerError:
        return connection.translate(exc, self.path, self.timeout_s, what)


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
        the next open).  A scheduled run (:mod:`ecopatch.run.pipeline`) records a
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
            try:
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._translate(exc, what) from exc
            try:
                yield con
                connection.before_commit(con)
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
            tables = schema.tables(con)
            if "meta" in tables and "cases" in tables:
                if schema.read_version(con, self.path) < SCHEMA_VERSION:
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
            if "meta" in schema.tables(con):  # another process created it meanwhile
                return
            schema.create(con, id_prefix)
        log.info("created ledger %s (schema %d)", self.path, SCHEMA_VERSION)

    def _upgrade_schema(self) -> None:
        """Bring an older ledger to :data:`SCHEMA_VERSION` in one transaction (nothing is lost).

        See :func:`ecopatch.ledger.migrations.upgrade`.
        """
        with self._write(f"upgrade the ledger to schema {SCHEMA_VERSION}") as con:
            done = migrations.upgrade(con)
        if done is not None:
            log.warning("ledger %s: upgraded from schema %d to %d (%s); ecopatch older than this version cannot "
                        "open it any more", self.path, done[0], SCHEMA_VERSION, "; ".join(done[1]))

    def _meta(self, key: str) -> str | None:
        with self._read() as con:
            row = con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    @property
    def schema_version(self) -> int:
        """Schema version of the ledger file."""
        with self._read() as con:
            return schema.read_version(con, self.path)

    # ------------------------------------------------------------------ reading


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
        return case_from_row(r)

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
        with self._read() as con:
            con.row_factory = sqlite3.Row
            rows = con.execute("SELECT * FROM cases ORDER BY case_id").fetchall()
        return queries.cases_frame(rows, status=status, today=today, warn_days=warn_days, stale_days=stale_days)

    def events(self, case_id: str | None = None) -> pd.DataFrame:
        """The event history, oldest first (of one case, or of all).

        Returns
        -------
        pandas.DataFrame
            Columns ``case_id, seq, kind, from_status, to_status, on_date
            (datetime.date), recorded_at (UTC, ISO 8601), actor, note,
            attachments (list of str), data (dict), run_id, patch_id, source``.
        """
        with self._read() as con:
            return queries.events(con, case_id)

    def detections(self, run_id: str | None = None) -> gpd.GeoDataFrame:
        """Every detection added (or those of ``run_id``), in EPSG:4490."""
        with self._read() as con:
            return queries.detections(con, run_id)

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
        with self._read() as con:
            return queries.mine_history(con, patch_id, superseded=superseded)

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
        with self._read() as con:
            verdicts = queries.field_verdicts(con)
        return detection_precision(verdicts, by=by)


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
        with self._read() as con:
            return queries.mine_verdicts(con, patch_id)


    def case_states(self) -> dict[str, Case]:
        """The current state of every case, by case ID (one read).

        Returns
        -------
        dict of str to Case
        """
        with self._read() as con:
            return {cid: case_from_row(r) for cid, r in load_cases(con).items()}

    def known_event_keys(self, keys: Iterable[str]) -> set[str]:
        """The de-duplication keys among ``keys`` that events of the ledger already carry.

        An imported row records its event with a key of its content
        (:meth:`record_event`, ``dedupe_key``); a client that imports rows asks
        which of its keys are known, to skip what was imported before.
        """
        with self._read() as con:
            return known_keys(con, keys)

    def mine_ids(self) -> list[str]:
        """IDs of the mines with a recorded history (those a verdict may name)."""
        with self._read() as con:
            return [r[0] for r in con.execute("SELECT DISTINCT patch_id FROM mine_history")]

    def known_verdict_keys(self, keys: Iterable[str]) -> set[str]:
        """The de-duplication keys among ``keys`` that recorded mine verdicts already carry."""
        with self._read() as con:
            return known_keys(con, keys, table="mine_verdicts")

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
            were observed).  :func:`ecopatch.run.pipeline.run_pipeline` measures
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
        prep = prepare_patches(patches, today)
        n = len(prep)
        case_ids: list[str] = [""] * n
        counts = {"new": 0, "matched": 0, "rebound": 0, "unchanged": 0, "sky_confirmed": 0}
        if not (0.0 <= float(min_clear_share) <= 1.0):
            raise InputDataError(f"min_clear_share={min_clear_share!r}: give a share in [0, 1]")
        if n == 0:
            return AddResult(0, 0, 0, 0, run_id, ())
        with self._write("add detections") as con:
            write_detections(con, prep, run_id, case_ids, counts, id_prefix=self.id_prefix, min_overlap=min_overlap,
                             rule=rule, rebound_growth=rebound_growth, today=today, actor=actor,
                             max_new_cases=max_new_cases, clear_shares=clear_shares,
                             min_clear_share=float(min_clear_share))
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
        ground the case turned into.  :func:`ecopatch.analyses.sky_tier.persisting`
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
        if not len(seen):
            return ()
        with self._write("confirm from the sky") as con:
            done = confirm_seen(con, seen, run_id, seen_on=seen_on, today=today, actor=actor)
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
        records = mine_records(mines, run_id)
        with self._write("record a mine assessment") as con:
            added, replaced = write_mine_records(con, records, run_id)
        res = AssessmentResult(added, len(records) - added - replaced, run_id, replaced)
        log.info("ledger %s: %s", self.path, res)
        return res

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
            d = as_date(deadline, f"case {case_id}: deadline")
            data["deadline"] = d
        if real_type:
            data["real_type"] = activity_key(real_type)
        ev = Event(kind, today or _dt.date.today(), actor, note, tuple(attachments), data)
        after = self.record_event(case_id, ev, source="advance")
        log.info("ledger %s: case %s %s -> %s", self.path, case_id, kind.value, after.status.value)
        return after

    def record_event(self, case_id: str, event: Event, *, source: str, dedupe_key: str | None = None) -> Case:
        """Record one lifecycle event, as it is, on a case: the writer under :meth:`advance` and the field check.

        Parameters
        ----------
        case_id : str
            The case.
        event : Event
            The event (kind, date, actor, note, attachments, data); not a
            detection event, which only :meth:`add_detections` and
            :meth:`confirm_from_sky` record.
        source : str
            Where it comes from, kept with the event (e.g.
            ``"import_fieldcheck:results.xlsx#row3"``).
        dedupe_key : str, optional
            A key of the event's content: the ledger refuses a second event
            with the same key, and :meth:`known_event_keys` tells which keys
            it holds, so an import run twice records nothing new.

        Returns
        -------
        Case
            The case after the event.

        Raises
        ------
        LedgerTransitionError
            The event is not allowed from the case's state, or is a detection event.
        LedgerError
            There is no case ``case_id``.

        Notes
        -----
        One transaction, or part of the open :meth:`transaction`: a client
        that records several events at once (:func:`ecopatch.fieldcheck.import_results`)
        records them inside one ``with ledger.transaction(...)`` block.
        """
        if event.kind in (EventKind.DETECT, EventKind.REDETECT, EventKind.REBOUND, EventKind.SKY_CONFIRM):
            raise LedgerTransitionError(
                f"case {case_id}: {event.kind.value!r} events come from add_detections"
                + (" or confirm_from_sky" if event.kind is EventKind.SKY_CONFIRM else "") + ", not advance()"
            )
        with self._write(f"advance case {case_id}") as con:
            con.row_factory = sqlite3.Row
            r = con.execute("SELECT * FROM cases WHERE case_id=?", (case_id,)).fetchone()
            con.row_factory = None
            if r is None:
                raise LedgerError(f"ledger {self.path} has no case {case_id!r}")
            row = dict(r)
            before = case_from_row(row)
            after = model.advance(before, event)
            append_event(con, row, before, after, event, source=source, dedupe_key=dedupe_key)
            save_case(con, row, insert=False)
            touch_contents(con, "events")
            touch_contents(con, "cases")
        return after

    def record_mine_verdict(
        self,
        patch_id: str,
        verdict: str,
        *,
        inspected_on: _dt.date,
        inspector: str,
        verdict_text: str | None = None,
        restored_m2: float | None = None,
        note: str | None = None,
        attachments: Sequence[str] = (),
        source: str | None = None,
        dedupe_key: str | None = None,
    ) -> None:
        """Record one restoration verdict of a field team (修复核查) in the append-only ``mine_verdicts``.

        Parameters
        ----------
        patch_id : str
            The mine (矿山编号).
        verdict : str
            The verdict's key (``accepted``, ``rejected``, ``in_progress``,
            ``not_started``, ``degraded``; see :data:`ecopatch.fieldcheck.VERDICTS`).
        inspected_on : datetime.date
            Date of the inspection.
        inspector : str
            Who inspected.
        verdict_text : str, optional
            The verdict as the team wrote it.
        restored_m2 : float, optional
            Restored area measured in the field, m².
        note : str, optional
        attachments : sequence of str
            Photos and documents.
        source : str, optional
            Where it comes from (file and row).
        dedupe_key : str, optional
            Key of the row's content; a second verdict with the same key is
            refused (:meth:`known_verdict_keys` tells which are held).

        Notes
        -----
        One transaction, or part of the open :meth:`transaction`;
        :func:`ecopatch.fieldcheck.import_verdicts` validates a filled
        workbook and records its rows in one.
        """
        with self._write(f"record the verdict of mine {patch_id}") as con:
            con.execute(
                "INSERT INTO mine_verdicts (patch_id, verdict, verdict_text, inspected_on, inspector, "
                "restored_m2, note, attachments, source, dedupe_key, recorded_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (patch_id, verdict, verdict_text, inspected_on.isoformat(), inspector,
                 restored_m2, note, to_json(list(attachments)), source, dedupe_key, now_utc()),
            )
            touch_contents(con, "mine_verdicts")

    # ------------------------------------------------------------------ report and integrity

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
        today = today or _dt.date.today()
        cases = self.cases(today=today)
        return write_ledger_report(
            out_dir,
            cases=cases,
            summary=summarise_cases(cases),
            precision=self.precision(),
            events=self.events(),
            mines=plain_years(self.mine_history()),
            overwrite=overwrite,
        )

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
        report = check_ledger(self._read, self.path)
        if raise_on_error:
            report.raise_if_failed()
        return report
