"""Summaries of the ledger: counts and areas by dimension, detection precision from field verdicts.

Pure functions over the frames the ledger gives (:meth:`ecopatch.ledger.Ledger.cases`,
the field verdicts of its events); they read no file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecopatch.geo.units import m2_to_mu
from ecopatch.ledger.model import Colour, SkyTier, Status
from ecopatch.vocabulary import CHANGE_TYPE_ZH, ZONE_ZH

__all__ = ["detection_precision", "plain_years", "summarise_cases"]

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
        sizes, sums = agg["size"].to_dict(), agg["sum"].to_dict()
        for key in order:
            n, a = (
                (int(sizes[key]), float(sums[key]))
                if key in sizes
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



def plain_years(history: pd.DataFrame) -> pd.DataFrame:
    """The mine history with ``target_year`` as ints and None (spreadsheet writers take no ``pd.NA``)."""
    years = pd.Series([None if pd.isna(v) else int(v) for v in history["target_year"]], index=history.index)
    return history.assign(target_year=years)


_PRECISION_BY = (None, "change_type", "zone", "reserve_name")


def detection_precision(verdicts: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Detection precision from field verdicts: confirmed / (confirmed + false alarm).

    Parameters
    ----------
    verdicts : pandas.DataFrame
        One row per checked case: ``verdict`` ("confirmed" or "false_alarm")
        and the grouping columns (``change_type``, ``zone``, ``reserve_name``).
    by : {None, "change_type", "zone", "reserve_name"}
        Overall (one row) or one row per group (missing values as "(none)").

    Returns
    -------
    pandas.DataFrame
        ``[by], confirmed, false_alarm, checked, precision`` (0-1; NaN where
        nothing was checked).

    Examples
    --------
    >>> v = pd.DataFrame({"verdict": ["confirmed", "confirmed", "false_alarm"],
    ...                   "zone": ["core", "buffer", "core"]})
    >>> detection_precision(v, by="zone")[["zone", "precision"]].to_dict("list")
    {'zone': ['buffer', 'core'], 'precision': [1.0, 0.5]}
    """
    if by not in _PRECISION_BY:
        raise ValueError(f"by={by!r} is not allowed; use one of {list(_PRECISION_BY)}")
    v = verdicts.copy()
    v["confirmed"] = (v["verdict"] == "confirmed").astype(int)
    v["false_alarm"] = (v["verdict"] == "false_alarm").astype(int)
    if by is None:
        out = pd.DataFrame(
            {"confirmed": [int(v["confirmed"].sum())], "false_alarm": [int(v["false_alarm"].sum())]}
        )
    else:
        keys = v[by].astype(object).where(v[by].notna(), "(none)") if by in v else "(none)"
        v["_k"] = keys
        out = (
            v.groupby("_k", sort=True)[["confirmed", "false_alarm"]]
            .sum()
            .reset_index()
            .rename(columns={"_k": by})
        )
    out["checked"] = out["confirmed"] + out["false_alarm"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["precision"] = np.where(
            out["checked"] > 0,
            out["confirmed"] / out["checked"].where(out["checked"] > 0, 1),
            np.nan,
        )
    return out.reset_index(drop=True)
