"""Reading the ledger's tables into (Geo)DataFrames (internal).

Each function reads on a connection the caller holds (inside one read
transaction, so several reads see one state of the file) and gives the frame
that the matching :class:`ecopatch.ledger.Ledger` method documents.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from typing import TYPE_CHECKING, Any

import pandas as pd

from ecopatch.ledger import model
from ecopatch.ledger.gpkg import decode_geometry
from ecopatch.ledger.model import EventKind, Status
from ecopatch.ledger.rows import case_from_row
from ecopatch.ledger.schema import CASE_COLUMNS, LEDGER_CRS
from ecopatch.ledger.values import date_of
from ecopatch.vocabulary import CHANGE_TYPE_ZH, ZONE_ZH

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["cases_frame", "detections", "events", "field_verdicts", "mine_history", "mine_verdicts"]


def cases_frame(
    rows: list[sqlite3.Row],
    *,
    status: Any,
    today: _dt.date | None,
    warn_days: int,
    stale_days: int,
) -> gpd.GeoDataFrame:
    """The frame of :meth:`Ledger.cases` from ``cases`` rows (sorted by the caller)."""
    import geopandas as gpd

    today = today or _dt.date.today()
    recs = []
    geoms = []
    for r in rows:
        d = {c: r[c] for c in CASE_COLUMNS}
        case = case_from_row(r)
        colour = model.case_colour(case, today, warn_days=warn_days, stale_days=stale_days)
        for c in ("found_on", "opened_on", "status_since", "date_before", "date_after",
                  "deadline", "confirmed_on"):  # fmt: skip
            d[c] = date_of(d[c])
        d["status_zh"] = case.status.zh
        d["sky_tier_zh"] = case.sky_tier.zh
        d["colour"] = colour.value
        d["colour_zh"] = colour.zh
        d["change_type_zh"] = CHANGE_TYPE_ZH.get(d["change_type"] or "", d["change_type"])
        d["zone_zh"] = ZONE_ZH.get(d["zone"] or "", d["zone"])
        recs.append(d)
        geoms.append(decode_geometry(r["geom"]))
    cols = [*CASE_COLUMNS, "status_zh", "colour", "colour_zh", "change_type_zh", "zone_zh", "sky_tier_zh"]
    df = pd.DataFrame(recs, columns=cols)
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=LEDGER_CRS), crs=LEDGER_CRS)
    if status is not None:
        wanted = [status] if isinstance(status, (str, Status)) else list(status)
        keys = {Status.get(s).value for s in wanted}
        gdf = gdf[gdf["status"].isin(keys)].reset_index(drop=True)
    return gdf


def events(con: sqlite3.Connection, case_id: str | None = None) -> pd.DataFrame:
    """The frame of :meth:`Ledger.events`."""
    q = "SELECT * FROM events"
    args: tuple[Any, ...] = ()
    if case_id is not None:
        q += " WHERE case_id=?"
        args = (case_id,)
    df = pd.read_sql_query(q + " ORDER BY id", con, params=args)
    df["on_date"] = [date_of(v) for v in df["on_date"]]
    df["attachments"] = [json.loads(v) if v else [] for v in df["attachments"]]
    df["data"] = [json.loads(v) if v else {} for v in df["data"]]
    return df.drop(columns=["id"]).reset_index(drop=True)


def detections(con: sqlite3.Connection, run_id: str | None = None) -> gpd.GeoDataFrame:
    """The frame of :meth:`Ledger.detections`."""
    import geopandas as gpd

    q = "SELECT * FROM detections"
    args: tuple[Any, ...] = ()
    if run_id is not None:
        q += " WHERE run_id=?"
        args = (run_id,)
    df = pd.read_sql_query(q + " ORDER BY fid", con, params=args)
    geom = [decode_geometry(b) for b in df.pop("geom")]
    df["attrs"] = [json.loads(v) if v else {} for v in df["attrs"]]
    return gpd.GeoDataFrame(df.drop(columns=["fid"]), geometry=geom, crs=LEDGER_CRS)


def mine_history(con: sqlite3.Connection, patch_id: str | None = None, *, superseded: bool = False) -> pd.DataFrame:
    """The frame of :meth:`Ledger.mine_history`."""
    table = "mine_history_superseded" if superseded else "mine_history"
    q = f"SELECT * FROM {table}"
    args: tuple[Any, ...] = ()
    if patch_id is not None:
        q += " WHERE patch_id=?"
        args = (str(patch_id),)
    df = pd.read_sql_query(q + " ORDER BY patch_id, date_after, id", con, params=args)
    for c in ("date_before", "date_after"):
        df[c] = [date_of(v) if isinstance(v, str) else None for v in df[c]]
    df["attrs"] = [json.loads(v) if isinstance(v, str) and v else {} for v in df["attrs"]]
    df["target_year"] = df["target_year"].astype("Int64")
    df["alerts"] = df["alerts"].fillna("")
    return df.drop(columns=["id"]).reset_index(drop=True)


def mine_verdicts(con: sqlite3.Connection, patch_id: str | None = None) -> pd.DataFrame:
    """The frame of :meth:`Ledger.mine_verdicts`."""
    q = "SELECT * FROM mine_verdicts"
    args: tuple[Any, ...] = ()
    if patch_id is not None:
        q += " WHERE patch_id=?"
        args = (str(patch_id),)
    df = pd.read_sql_query(q + " ORDER BY inspected_on, id", con, params=args)
    df["inspected_on"] = [date_of(v) for v in df["inspected_on"]]
    df["attachments"] = [json.loads(v) if v else [] for v in df["attachments"]]
    return df.drop(columns=["id", "dedupe_key"]).reset_index(drop=True)


def field_verdicts(con: sqlite3.Connection) -> pd.DataFrame:
    """The latest field verdict of each checked case: ``case_id, verdict, change_type, zone, reserve_name``.

    ``verdict`` is ``"confirmed"`` or ``"false_alarm"``; the other columns are
    what detection said of the case when the field checked it.
    """
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
