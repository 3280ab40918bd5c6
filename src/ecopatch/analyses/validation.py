"""Accuracy against known truth: suspect patches vs true changes, restored area vs truth, pixel maps.

Used by the tests on the synthetic scene (:mod:`ecopatch.data.synthetic`), by
``ecopatch demo`` and by the benchmarks on real labelled data (OSCD).  Pure
functions: GeoDataFrames and arrays in, tables and numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely

from ecopatch.errors import InputDataError

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["PatchScore", "pixel_scores", "score_patches", "score_restoration"]


@dataclass(frozen=True)
class PatchScore:
    """How well detected patches match true changes.

    Attributes
    ----------
    recall : float
        Share of the eligible true changes overlapped by at least one patch.
    precision : float
        Share of the patches that overlap a true change (any, eligible or not).
    n_true, n_found, n_patches : int
        Eligible true changes, those found, and patches.
    area_ratio : float
        Outline area of the patches matched to eligible changes over the
        true area of those changes (``area_m2``).
    change_area_ratio : float
        The same with the patches' estimated changed area (``change_m2``).
    type_accuracy : float
        Share of the found changes whose largest matching patch has the true
        change type.
    table : pandas.DataFrame
        One row per true change: its id, type, area, eligibility, the
        matching patch IDs and types, and the matched areas.
    false_patches : list of str
        IDs of patches overlapping no true change.
    """

    recall: float
    precision: float
    n_true: int
    n_found: int
    n_patches: int
    area_ratio: float
    change_area_ratio: float
    type_accuracy: float
    table: pd.DataFrame
    false_patches: list[str]


def score_patches(
    patches: gpd.GeoDataFrame,
    truth: gpd.GeoDataFrame,
    *,
    eligible: Any = None,
    reserves: gpd.GeoDataFrame | None = None,
    id_field: str = "enc_id",
    type_field: str = "change_type",
) -> PatchScore:
    """Match suspect patches to true change polygons by overlap (any shared area).

    Parameters
    ----------
    patches : geopandas.GeoDataFrame
        From :func:`ecopatch.detect_changes` (``patch_id``, ``change_type``,
        ``area_m2``, ``change_m2``).
    truth : geopandas.GeoDataFrame
        True changes with ``id_field`` and ``type_field`` and ``area_m2`` (m²).
    eligible : array of bool, optional
        True changes that count for recall and area (e.g. inside the
        reserves, at or above the minimum mapping unit, not under cloud).
        Default all.
    reserves : geopandas.GeoDataFrame, optional
        The area the patches were searched in (the reserves): a true change
        that crosses its edge counts with the area inside only, since the
        patches are clipped to it.

    Returns
    -------
    PatchScore
    """
    if patches.crs is None or truth.crs is None:
        raise InputDataError("score_patches: both layers need a CRS")
    truth = truth.to_crs(patches.crs).reset_index(drop=True)
    elig = np.ones(len(truth), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    true_area = truth["area_m2"].to_numpy(dtype=float)
    if reserves is not None:
        region = shapely.union_all(shapely.make_valid(reserves.to_crs(truth.crs).geometry.to_numpy()))
        tg = truth.geometry.to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(shapely.area(tg) > 0, shapely.area(shapely.intersection(tg, region)) / shapely.area(tg),
                             0.0)
        true_area = true_area * share
    pg = patches.geometry.to_numpy()
    tree = shapely.STRtree(pg)
    rows = []
    matched_patches: set[int] = set()
    type_ok = 0
    for i, geom in enumerate(truth.geometry.to_numpy()):
        cand = tree.query(geom, predicate="intersects")
        inter = shapely.area(shapely.intersection(pg[cand], geom)) if len(cand) else np.zeros(0)
        hits = [int(j) for j, a in zip(cand, inter) if a > 0]
        matched_patches.update(hits)
        types = [str(patches["change_type"].iloc[j]) for j in hits]
        best_type = None
        if hits:
            big = max(hits, key=lambda j: float(patches["area_m2"].iloc[j]))
            best_type = str(patches["change_type"].iloc[big])
            if elig[i] and best_type == truth[type_field].iloc[i]:
                type_ok += 1
        rows.append({
            id_field: truth[id_field].iloc[i],
            "true_type": truth[type_field].iloc[i],
            "true_area_m2": float(true_area[i]),
            "eligible": bool(elig[i]),
            "found": bool(hits),
            "patch_ids": [str(patches["patch_id"].iloc[j]) for j in hits],
            "patch_types": types,
            "type_found": best_type,
            "outline_m2": float(sum(patches["area_m2"].iloc[j] for j in hits)),
            "change_m2": float(sum(patches["change_m2"].iloc[j] for j in hits)) if "change_m2" in patches else np.nan,
        })
    table = pd.DataFrame(rows)
    el = table[table["eligible"]] if len(table) else table
    n_true = int(len(el))
    n_found = int(el["found"].sum()) if n_true else 0
    found = el[el["found"]] if n_true else el
    true_area = float(found["true_area_m2"].sum()) if len(found) else 0.0
    false = [str(patches["patch_id"].iloc[j]) for j in range(len(patches)) if j not in matched_patches]
    return PatchScore(
        recall=n_found / n_true if n_true else float("nan"),
        precision=(len(patches) - len(false)) / len(patches) if len(patches) else float("nan"),
        n_true=n_true,
        n_found=n_found,
        n_patches=int(len(patches)),
        area_ratio=float(found["outline_m2"].sum()) / true_area if true_area else float("nan"),
        change_area_ratio=float(found["change_m2"].sum()) / true_area if true_area else float("nan"),
        type_accuracy=type_ok / n_found if n_found else float("nan"),
        table=table,
        false_patches=false,
    )


def score_restoration(assessment: pd.DataFrame, truth: pd.DataFrame, *, id_field: str = "mine_id") -> pd.DataFrame:
    """Per-mine errors of :func:`ecopatch.assess_restoration` against truth.

    Parameters
    ----------
    assessment : DataFrame
        With ``patch_id``, ``damaged_m2``, ``restored_m2``, ``valid_fraction``.
    truth : DataFrame
        With ``id_field``, ``damaged_m2``, ``restored_m2`` (m²).

    Returns
    -------
    pandas.DataFrame
        One row per mine: both areas, ``restored_err`` and ``damaged_err``
        (relative, e.g. 0.02 = +2 %; NaN where the truth is 0), and
        ``restored_err_of_damaged`` (error over the true damaged area).
    """
    t = truth.rename(columns={id_field: "patch_id"})
    m = pd.DataFrame(assessment[["patch_id", "damaged_m2", "restored_m2", "valid_fraction"]]).merge(
        t[["patch_id", "damaged_m2", "restored_m2"]], on="patch_id", suffixes=("", "_true"), how="inner"
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        m["restored_err"] = np.where(m["restored_m2_true"] > 0, m["restored_m2"] / m["restored_m2_true"] - 1, np.nan)
        m["damaged_err"] = np.where(m["damaged_m2_true"] > 0, m["damaged_m2"] / m["damaged_m2_true"] - 1, np.nan)
        m["restored_err_of_damaged"] = np.where(
            m["damaged_m2_true"] > 0, (m["restored_m2"] - m["restored_m2_true"]) / m["damaged_m2_true"], np.nan
        )
    return m


def pixel_scores(predicted: np.ndarray, truth: np.ndarray, *, valid: np.ndarray | None = None) -> dict[str, float]:
    """Change-class precision, recall, F1, IoU, overall accuracy and Cohen's kappa of a binary change map.

    Parameters
    ----------
    predicted, truth : ndarray of bool
        Change (True) / no change per pixel, same shape.
    valid : ndarray of bool, optional
        Pixels to score (labelled and observed).

    Examples
    --------
    >>> p = np.array([1, 1, 0, 0], bool); t = np.array([1, 0, 0, 0], bool)
    >>> {k: round(v, 3) for k, v in pixel_scores(p, t).items()}["precision"]
    0.5
    """
    p = np.asarray(predicted, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise InputDataError(f"pixel_scores: shapes differ {p.shape} vs {t.shape}")
    v = np.ones(p.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    p, t = p[v], t[v]
    tp = float(np.sum(p & t))
    fp = float(np.sum(p & ~t))
    fn = float(np.sum(~p & t))
    tn = float(np.sum(~p & ~t))
    n = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    iou = tp / (tp + fp + fn) if tp + fp + fn else float("nan")
    oa = (tp + tn) / n if n else float("nan")
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n) if n else float("nan")
    kappa = (oa - pe) / (1 - pe) if n and pe != 1 else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1, "iou": iou, "overall_accuracy": oa,
            "kappa": kappa, "n": n}
