"""Suspect patches into cases (internal): checked, matched to the cases, written.

:func:`prepare_patches` validates a run's suspect patches and brings them to
EPSG:4490 MultiPolygons with true (geodesic) areas; :func:`write_detections`
matches them to the ledger's cases and writes the events, case rows and
``detections`` rows, inside the transaction of
:meth:`ecopatch.ledger.Ledger.add_detections`; :func:`confirm_seen` does the
writing of :meth:`ecopatch.ledger.Ledger.confirm_from_sky`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import sqlite3
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from ecopatch.errors import (
    DuplicateIDError,
    GeometryError,
    GeometryRepairedWarning,
    InputDataError,
    TooManyCasesError,
)
from ecopatch.geo.geodesy import as_crs, geodesic_area_m2, transformer
from ecopatch.geo.units import m2_to_mu
from ecopatch.ledger import model
from ecopatch.ledger.gpkg import SRS_ID, decode_geometry, encode_geometry
from ecopatch.ledger.match import match_patches
from ecopatch.ledger.model import Event, EventKind, SkyTier, Status
from ecopatch.ledger.rows import append_event, case_from_row, load_cases, next_serial, save_case, touch_contents
from ecopatch.ledger.values import as_date, as_float, as_str, clean, date_of, iso, now_utc, to_json
from ecopatch.vector.sanitize import text_problem
from ecopatch.vocabulary import ACTIVITY_TYPES, CHANGE_TYPE_ZH, CHANGE_TYPES, PATCH_COLUMNS

__all__ = [
    "EARLIEST_IMAGE",
    "AddResult",
    "activity_key",
    "confirm_seen",
    "change_key",
    "detection_data",
    "insert_detection",
        "prepare_patches",
    "sky_confirmation",
    "take_detection",
    "too_many_message",
    "write_detections",
]

log = logging.getLogger(__name__)

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


#: No satellite image of the earth is older (Landsat 1, 23 July 1972).
EARLIEST_IMAGE = _dt.date(1972, 7, 23)


def activity_key(value: str) -> str:
    """The HJ 1156 activity key of ``value`` (a key or its Chinese name); InputDataError if neither."""
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


def too_many_message(run_id: str, n_patches: int, n_new: int, limit: int) -> str:
    """Why :class:`TooManyCasesError` refuses a run, and what to do."""
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


def change_key(v: Any) -> str | None:
    """The change-type key of a key or Chinese name (unknown text is kept, for the check to name it)."""
    s = as_str(v)
    if s is None:
        return None
    if s in CHANGE_TYPES:
        return s
    return next((k for k, zh in CHANGE_TYPE_ZH.items() if zh == s), s)


def prepare_patches(patches: Any, today: _dt.date) -> list[dict[str, Any]]:
    """Validate suspect patches and bring them to EPSG:4490 MultiPolygons, one dict per row.

    Every value is checked as a field-results import is: the first problems
    found (up to 10, each naming the patch and the column) are raised
    together as one :class:`InputDataError`.  A date is in the future when it
    is after the later of ``today`` and the clock's date, with a day's grace
    for time zones (acquisition dates are UTC).
    """
    import geopandas as gpd

    from ecopatch.vector.layers import check_coordinates

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
    ids = patches["patch_id"].map(as_str)
    if ids.isna().any():
        raise DuplicateIDError(
            f"patches have {int(ids.isna().sum())} missing patch_id value(s); every patch needs one"
        )
    dup = sorted(set(ids[ids.duplicated()]))
    if dup:
        raise DuplicateIDError(f"patches repeat patch_id {dup[:10]}; patch IDs must be unique")
    geoms = np.asarray(patches.geometry.values, dtype=object)
    empty = [ids.iloc[i] for i, g in enumerate(geoms) if g is None or shapely.is_empty(g)]
    if empty:
        raise GeometryError(f"patches {empty[:10]} have no geometry; drop them before adding")
    check_coordinates(patches, "patches")  # swapped lon/lat, metres labelled as degrees
    target = CRS.from_epsg(SRS_ID)
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
        ctype = change_key(r["change_type"])
        if ctype is None:
            bad("change_type", "is empty")
        elif ctype not in CHANGE_TYPES:
            bad("change_type", f"{as_str(r['change_type'])!r} is not a change type; use one of {list(CHANGE_TYPES)} "
                               f"or {list(CHANGE_TYPE_ZH.values())}")
        conf = as_float(r["confidence"])
        if clean(r["confidence"]) is not None and conf is None:
            bad("confidence", f"{r['confidence']!r} is not a number")
        elif conf is not None and not (0.0 <= conf <= 1.0):
            bad("confidence", f"{conf:g} is outside [0, 1]")
        ndvi = {}
        for col in ("ndvi_before", "ndvi_after"):
            x = as_float(r[col])
            if x is not None and not (-1.0 <= x <= 1.0):
                bad(col, f"{x:g} is outside [-1, 1]")
            ndvi[col] = x
        dates: dict[str, _dt.date | None] = {}
        for col in ("date_before", "date_after"):
            try:
                d = as_date(r[col], f"patch {pid}: {col}")
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
            "reserve_name": as_str(r["reserve_name"]),
            "zone": as_str(r["zone"]),
            "zone_name": as_str(r["zone_name"]),
            "date_before": iso(dates["date_before"]),
            "date_after": iso(dates["date_after"]),
            "input_area_m2": as_float(r["area_m2"]) if math.isfinite(as_float(r["area_m2"]) or 0.0) else None,
            "attrs": {c: clean(r[c]) for c in extra},
        }
        recs.append(rec)
    if problems:
        more = " (the first 10 problems; there may be more)" if len(problems) >= 10 else ""
        raise InputDataError(f"cannot add the suspect patches{more}: " + "; ".join(problems[:10])
                             + "; nothing was written")
    return recs


def detection_data(rec: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The data of the event a prepared patch records."""
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


def sky_confirmation(row: dict[str, Any], rec: dict[str, Any], run_id: str, score: float,
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
        share = as_float(clear_shares.get(row["case_id"]))
        if share is None or share < min_clear:
            log.info("case %s found again on %s, but only %.0f %% of it was seen clear (< %.0f %%): stays probable",
                     row["case_id"], seen, 100 * (share or 0.0), 100 * min_clear)
            return None
    return {"confirmed_on": seen, "first_seen": first, "run_id": run_id, "patch_id": rec["patch_id"],
            "overlap_score": round(score, 4), "clear_share": None if share is None else round(share, 4)}


def take_detection(row: dict[str, Any], rec: dict[str, Any], run_id: str) -> None:
    """Copy a detection's geometry and descriptive attributes onto a case row."""
    row.update(
        geom=encode_geometry(rec["geometry"]),
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


def insert_detection(
    con: sqlite3.Connection,
    rec: dict[str, Any],
    run_id: str,
    case_id: str,
    outcome: str,
    score: float | None,
) -> None:
    """Insert the ``detections`` row of a prepared patch."""
    con.execute(
        "INSERT INTO detections (geom, run_id, patch_id, case_id, outcome, score, change_type, "
        "area_m2, area_mu, confidence, date_before, date_after, ndvi_before, ndvi_after, "
        "reserve_name, zone, zone_name, attrs, recorded_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            encode_geometry(rec["geometry"]), run_id, rec["patch_id"], case_id, outcome, score,
            rec["change_type"], rec["area_m2"], float(m2_to_mu(rec["area_m2"])),
            rec["confidence"], rec["date_before"], rec["date_after"], rec["ndvi_before"],
            rec["ndvi_after"], rec["reserve_name"], rec["zone"], rec["zone_name"],
            to_json(rec["attrs"] | {"input_area_m2": rec["input_area_m2"]}), now_utc(),
        ),
    )  # fmt: skip


def write_detections(
    con: sqlite3.Connection,
    prep: list[dict[str, Any]],
    run_id: str,
    case_ids: list[str],
    counts: dict[str, int],
    *,
    id_prefix: str,
    min_overlap: float,
    rule: str,
    rebound_growth: float,
    today: _dt.date,
    actor: str,
    max_new_cases: int | None,
    clear_shares: Mapping[str, float] | None,
    min_clear_share: float,
) -> None:
    """Write prepared patches into the cases, inside the caller's transaction (see :meth:`Ledger.add_detections`).

    Fills ``case_ids`` (one per patch, in input order) and ``counts`` (``new``,
    ``matched``, ``rebound``, ``unchanged``, ``sky_confirmed``).

    Raises
    ------
    TooManyCasesError
        More than ``max_new_cases`` new cases; the caller's transaction rolls back.
    """
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
    rows = load_cases(con)
    ids = sorted(rows)
    old_geoms = [decode_geometry(rows[c]["geom"]) for c in ids]
    result = match_patches(
        [prep[i]["geometry"] for i in todo], old_geoms, min_overlap=min_overlap, rule=rule
    )
    n_new = int((np.asarray(result.case_index) < 0).sum())
    if max_new_cases is not None and n_new > int(max_new_cases):
        raise TooManyCasesError(too_many_message(run_id, len(prep), n_new, int(max_new_cases)))
    serials: dict[int, int] = {}
    # 3. write, in input order
    for j, i in enumerate(todo):
        rec = prep[i]
        k = int(result.case_index[j])
        if k < 0:
            found = date_of(rec["date_after"]) or today
            year = found.year
            if year not in serials:
                serials[year] = next_serial(con, id_prefix, year)
            cid = f"{id_prefix}-{year:04d}-{serials[year]:06d}"
            serials[year] += 1
            ev = Event(EventKind.DETECT, today, actor, data=detection_data(rec, run_id))
            after = model.open_case(cid, ev)
            row: dict[str, Any] = {"case_id": cid, "found_on": found.isoformat(), "n_detections": 1}
            take_detection(row, rec, run_id)
            append_event(con, row, None, after, ev, source="add_detections",
                         run_id=run_id, patch_id=rec["patch_id"])  # fmt: skip
            save_case(con, row, insert=True)
            rows[cid] = row
            outcome, score = "new", None
            counts["new"] += 1
        else:
            cid = ids[k]
            row = rows[cid]
            before = case_from_row(row)
            area_old = row.get("area_m2") or 0.0
            rebound = before.status is Status.CLOSED or (
                before.status is Status.FALSE_ALARM
                and rec["area_m2"] > (1.0 + rebound_growth) * area_old
            )
            kind = EventKind.REBOUND if rebound else EventKind.REDETECT
            score = float(result.score[j])
            data = detection_data(rec, run_id) | {"overlap_score": round(score, 4)}
            if rebound:
                data["area_m2_before"] = area_old
            ev = Event(kind, today, actor, data=data)
            after = model.advance(before, ev)
            if (row.get("date_after") or "") <= (rec["date_after"] or ""):
                take_detection(row, rec, run_id)
            row["n_detections"] = int(row.get("n_detections") or 0) + 1
            append_event(con, row, before, after, ev, source="add_detections",
                         run_id=run_id, patch_id=rec["patch_id"])  # fmt: skip
            sky = sky_confirmation(row, rec, run_id, score, clear_shares, min_clear_share)
            if sky is not None:
                ev2 = Event(EventKind.SKY_CONFIRM, today, actor, data=sky)
                append_event(con, row, after, model.advance(after, ev2), ev2,
                         source="add_detections", run_id=run_id, patch_id=rec["patch_id"])  # fmt: skip
                counts["sky_confirmed"] += 1
            save_case(con, row, insert=False)
            outcome = "rebound" if rebound else "matched"
            counts[outcome] += 1
        case_ids[i] = cid
        insert_detection(con, rec, run_id, cid, outcome, score)
    if todo:
        all_geoms = [decode_geometry(r["geom"]) for r in rows.values()]
        new_geoms = [prep[i]["geometry"] for i in todo]
        touch_contents(con, "cases", shapely.total_bounds(all_geoms))
        touch_contents(
            con, "detections", shapely.total_bounds(new_geoms), expand=True
        )
        touch_contents(con, "events")


def confirm_seen(con: sqlite3.Connection, seen: pd.DataFrame, run_id: str, *, seen_on: _dt.date,
                 today: _dt.date, actor: str) -> list[str]:
    """Confirm from the sky the probable cases of ``seen``, inside the caller's transaction.

    See :meth:`Ledger.confirm_from_sky`; returns the cases confirmed.
    """
    on = seen_on.isoformat()
    keep = ("class_now", "class_before", "class_after", "progress", "clear_share", "veg", "bare", "built", "water")
    done: list[str] = []
    rows = load_cases(con)
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
        before = case_from_row(row)
        ev = Event(EventKind.SKY_CONFIRM, today, actor, data=data)
        append_event(con, row, before, model.advance(before, ev), ev, source="confirm_from_sky", run_id=run_id)
        save_case(con, row, insert=False)
        done.append(row["case_id"])
    if done:
        touch_contents(con, "events")
    return done
