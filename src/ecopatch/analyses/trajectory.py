"""A mine's history (一矿一档): its status at each date, seen against the dates before.

:func:`ecopatch.assess_restoration` compares two dates: a mine's reference
(the state before restoration began) and now.  Some things only show in
the series of a mine's assessments, which a scheduled run keeps in the
ledger (:meth:`ecopatch.Ledger.mine_history`, one row per mine per date):

- **rebound** (反弹): the vegetated area fell since the previous
  observation, by at least the mine's loss threshold
  (:meth:`ecopatch.StatusRules.loss_threshold_m2`): a restored slope
  cleared again, a pit reopened.  Against the reference alone such a mine
  looks merely "not started" again.
- **stalled** (停滞): an ``in_progress`` mine whose restoration rate has
  moved less than ``stall_tolerance`` over its last ``stall_after``
  observations, spanning at least ``stall_min_days``.

:func:`mine_status` applies both to a new assessment; :func:`trajectory`
gives one mine's series for tables and plots.  Both are pure: the history
comes in as a DataFrame.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import numpy as np
import pandas as pd

from ecopatch.analyses.restoration import StatusRules, set_alerts
from ecopatch.errors import InputDataError
from ecopatch.vocabulary import MINE_STATUS_ZH

__all__ = ["HISTORY_COLUMNS", "mine_status", "plan_of", "trajectory"]

#: Columns :func:`mine_status` reads from the history (and from the new assessment).
HISTORY_COLUMNS: tuple[str, ...] = (
    "patch_id", "date_after", "date_before", "reference_scene", "status", "restoration_rate",
    "observed_m2", "veg_after_m2",
)


def _date(v: Any) -> _dt.date | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, pd.Timestamp):
        return None if pd.isna(v) else v.date()
    if isinstance(v, _dt.datetime):
        return v.date()
    if isinstance(v, _dt.date):
        return v
    try:
        return _dt.date.fromisoformat(str(v)[:10])
    except ValueError:
        return None


def _same_reference(h: pd.DataFrame, ref_scene: Any, ref_date: _dt.date | None) -> np.ndarray:
    """Rows of ``h`` measured against the same reference (scene ID when both have one, else its date)."""
    scenes = h["reference_scene"] if "reference_scene" in h.columns else pd.Series([None] * len(h), index=h.index)
    have = scenes.notna() & (scenes.astype(str) != "")
    if ref_scene is not None and not (isinstance(ref_scene, float) and math.isnan(ref_scene)) and str(ref_scene):
        by_scene = have & (scenes.astype(str) == str(ref_scene))
    else:
        by_scene = pd.Series(False, index=h.index)
    dates = h["date_before"].map(_date) if "date_before" in h.columns else pd.Series([None] * len(h), index=h.index)
    by_date = ~have & (dates == ref_date) if ref_date is not None else pd.Series(False, index=h.index)
    return (by_scene | by_date).to_numpy()


def _veg_share(row: Any) -> float:
    try:
        veg, obs = float(row["veg_after_m2"]), float(row["observed_m2"])
    except (KeyError, TypeError, ValueError):
        return math.nan
    return veg / obs if obs > 0 and math.isfinite(veg) else math.nan


def mine_status(
    assessment: pd.DataFrame,
    history: pd.DataFrame | None,
    rules: StatusRules | None = None,
) -> pd.DataFrame:
    """Each mine's status and alerts at this date, seen against its earlier observations.

    Parameters
    ----------
    assessment : DataFrame or GeoDataFrame
        One date's table from :func:`ecopatch.assess_restoration` (needs
        ``patch_id``, ``date_after``, ``date_before``, ``status``,
        ``direction``, ``restoration_rate``, ``observed_m2``,
        ``veg_after_m2``, ``degraded_m2``; ``reference_scene`` when known).
    history : DataFrame or None
        Earlier rows of the same mines, e.g. :meth:`ecopatch.Ledger.mine_history`.
        Only rows dated before each mine's ``date_after`` and measured
        against the same reference count; rows with ``insufficient_data`` are
        passed over.  None or empty: the assessment's own status stands.
    rules : StatusRules, optional
        Thresholds (the loss threshold and the ``stall_*`` settings).

    Returns
    -------
    DataFrame or GeoDataFrame
        A copy with ``status`` (``stalled`` replaces ``in_progress`` where
        the rate has not moved), ``status_zh``, ``alerts`` and ``alerts_zh``
        (``rebound`` added where the vegetated share fell since the previous
        observation by the loss threshold or more), and
        ``previous_date`` (the observation compared with, or None).

    Raises
    ------
    InputDataError
        A column is missing (named).

    Examples
    --------
    >>> import pandas as pd
    >>> h = pd.DataFrame({"patch_id": ["m"] * 2, "date_after": ["2022-09-01", "2023-09-01"],
    ...                   "date_before": "2021-09-01", "reference_scene": "S0", "status": "in_progress",
    ...                   "restoration_rate": [0.40, 0.41], "observed_m2": 1e4, "veg_after_m2": [4e3, 4.1e3]})
    >>> now = h.iloc[[-1]].assign(date_after="2024-09-01", restoration_rate=0.405, veg_after_m2=4.05e3,
    ...                           direction="forest", degraded_m2=0.0)
    >>> mine_status(now, h)[["status", "alerts"]].values.tolist()
    [['stalled', '']]
    >>> mine_status(now.assign(veg_after_m2=3e3, restoration_rate=0.30), h)[["status", "alerts"]].values.tolist()
    [['in_progress', 'rebound']]
    """
    rules = rules or StatusRules()
    need = ("patch_id", "date_after", "date_before", "status", "direction", "restoration_rate", "observed_m2",
            "veg_after_m2", "degraded_m2")
    missing = [c for c in need if c not in assessment.columns]
    if missing:
        raise InputDataError(f"mine_status: the assessment lacks {missing}; pass the output of assess_restoration")
    out = assessment.copy()
    out["previous_date"] = None
    if history is None or len(history) == 0:
        return out
    miss_h = [c for c in HISTORY_COLUMNS if c not in history.columns and c != "reference_scene"]
    if miss_h:
        raise InputDataError(f"mine_status: the history lacks {miss_h}; pass Ledger.mine_history()")
    hist = history.copy()
    hist["_date"] = hist["date_after"].map(_date)
    hist["_pid"] = hist["patch_id"].astype(str)
    by_mine = {pid: g.sort_values("_date", kind="stable") for pid, g in hist.groupby("_pid", sort=False)}
    statuses = list(out["status"])
    extra: dict[Any, list[str]] = {}
    previous: list[Any] = []
    for k, (label, r) in enumerate(out.iterrows()):
        when = _date(r["date_after"])
        g = by_mine.get(str(r["patch_id"]))
        prev_date = None
        if g is not None and when is not None and statuses[k] != "insufficient_data":
            ref = r["reference_scene"] if "reference_scene" in out.columns else None
            earlier = g[(g["_date"] < when) & _same_reference(g, ref, _date(r["date_before"]))]
            earlier = earlier[earlier["status"] != "insufficient_data"]
            if len(earlier):
                last = earlier.iloc[-1]
                prev_date = last["_date"]
                drop = _veg_share(last) - _veg_share(r)
                observed = float(r["observed_m2"])
                if math.isfinite(drop) and drop * observed >= rules.loss_threshold_m2(observed, str(r["direction"])):
                    extra[label] = ["rebound"]
            if statuses[k] == "in_progress" and _stalled(earlier, r, when, rules):
                statuses[k] = "stalled"
        previous.append(prev_date)
    out["status"] = statuses
    out["status_zh"] = [MINE_STATUS_ZH[s] for s in statuses]
    out["previous_date"] = previous
    return set_alerts(out, rules, extra=extra)


def _stalled(earlier: pd.DataFrame, now: Any, when: _dt.date, rules: StatusRules) -> bool:
    n = int(rules.stall_after)
    if len(earlier) < n - 1:
        return False
    window = earlier.iloc[len(earlier) - (n - 1):] if n > 1 else earlier.iloc[:0]
    rates = [float(v) for v in window["restoration_rate"]] + [float(now["restoration_rate"])]
    if not all(math.isfinite(v) for v in rates):
        return False
    first = window["_date"].iloc[0] if len(window) else when
    if (when - first).days < rules.stall_min_days:
        return False
    return max(rates) - min(rates) < rules.stall_tolerance


def trajectory(history: pd.DataFrame, patch_id: str, *, include_reference: bool = True) -> pd.DataFrame:
    """One mine's series, oldest first, for a table or a plot.

    Parameters
    ----------
    history : DataFrame
        :meth:`ecopatch.Ledger.mine_history` (all mines, or this one).
    patch_id : str
        The mine (矿山编号).
    include_reference : bool
        Start the series with the reference date of the latest reference:
        FVC before, restoration rate 0, restored 0 m².

    Returns
    -------
    DataFrame
        ``date`` (datetime.date), ``fvc`` (0-1), ``restoration_rate`` (0-1),
        ``restored_m2``, ``degraded_m2``, ``status``, ``alerts``,
        ``reference_scene``, ``is_reference`` (bool); only the rows measured
        against the mine's latest reference.

    Raises
    ------
    InputDataError
        The mine has no history.
    """
    h = history[history["patch_id"].astype(str) == str(patch_id)].copy()
    if h.empty:
        known = sorted(set(history["patch_id"].astype(str)))
        raise InputDataError(f"no history for mine {patch_id!r}; the history holds {known[:12]}"
                             + (" ..." if len(known) > 12 else ""))
    h["_date"] = h["date_after"].map(_date)
    h = h.sort_values("_date", kind="stable")
    last = h.iloc[-1]
    h = h[_same_reference(h, last.get("reference_scene"), _date(last.get("date_before")))]
    rows: list[dict[str, Any]] = []
    cols = {c: (h[c] if c in h.columns else pd.Series([np.nan] * len(h), index=h.index))
            for c in ("fvc_after", "fvc_before", "restoration_rate", "restored_m2", "degraded_m2", "alerts")}
    ref_date = _date(last.get("date_before"))
    if include_reference and ref_date is not None:
        fb = pd.to_numeric(cols["fvc_before"], errors="coerce").dropna()
        rows.append({"date": ref_date, "fvc": float(fb.median()) if len(fb) else math.nan, "restoration_rate": 0.0,
                     "restored_m2": 0.0, "degraded_m2": 0.0, "status": "reference", "alerts": "",
                     "reference_scene": last.get("reference_scene"), "is_reference": True})
    for i, (_, r) in enumerate(h.iterrows()):
        rows.append({"date": r["_date"], "fvc": _num(cols["fvc_after"].iloc[i]),
                     "restoration_rate": _num(cols["restoration_rate"].iloc[i]),
                     "restored_m2": _num(cols["restored_m2"].iloc[i]),
                     "degraded_m2": _num(cols["degraded_m2"].iloc[i]), "status": r["status"],
                     "alerts": "" if pd.isna(cols["alerts"].iloc[i]) else str(cols["alerts"].iloc[i]),
                     "reference_scene": r.get("reference_scene"), "is_reference": False})
    return pd.DataFrame(rows, columns=["date", "fvc", "restoration_rate", "restored_m2", "degraded_m2", "status",
                                       "alerts", "reference_scene", "is_reference"])


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def plan_of(history: pd.DataFrame, patch_id: str) -> tuple[int | None, float | None]:
    """The plan's target year and rate of a mine, from its latest history row (None when not given)."""
    h = history[history["patch_id"].astype(str) == str(patch_id)]
    if h.empty:
        return None, None
    last = h.sort_values("date_after", key=lambda s: s.map(_date), kind="stable").iloc[-1]
    y, r = last.get("target_year"), last.get("target_rate")
    year = int(y) if y is not None and not pd.isna(y) else None
    rate = float(r) if r is not None and not pd.isna(r) else None
    return year, rate
