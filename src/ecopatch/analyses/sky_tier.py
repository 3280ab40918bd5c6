"""Sky tier (影像分级): a later clear scene that still shows a probable case's new ground confirms it.

A suspect patch seen in one observation is ``probable`` (疑似); a later clear
observation that sees it again makes it ``confirmed`` (影像确认), still
waiting for its ground check.  A scheduled run sees a case again in one of
two ways:

- its detection finds the patch again (the baseline is older than the
  change: :meth:`ecopatch.Ledger.add_detections`);
- its baseline already shows the change (``baseline = "previous"``: the
  scene before this one), so nothing is found again, but the scene by itself
  still shows the ground the patch turned into.  :func:`cover_over` reads
  each case's mean cover fractions in the scene, and :func:`persisting`
  keeps the cases whose cover now lies more than halfway from what their
  detection found before to what it found after: new built ground that is
  still built, a pit still bare, a pond still water.  A cloud taken for bare
  ground, or a field ploughed and green again, is not.

Only pixels the scene sees clear count: its product mask; for Sentinel-2
without one (L1C), s2cloudless on the case's window; for other products
without a mask, none (a single date cannot tell a dim overcast from new
ground: such cases are confirmed only by a detection).  A case needs
:data:`ecopatch.ledger.store.DEFAULT_CONFIRM_CLEAR` of its area seen clear.
The fractions are those of :func:`ecopatch.compute.cover.surface_fractions` on the
scene's reflectance as read (with the haze removal it was opened with, but
without the normalisation onto another date that a detection makes): enough
to tell vegetation, open ground and water apart, less sure between bare and
built.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ecopatch.compute.change import dominant_class
from ecopatch.errors import InputDataError
from ecopatch.raster.source import as_source, reads_outside_a_pass

if TYPE_CHECKING:
    import geopandas as gpd

    from ecopatch.raster.source import RasterSource, SourceLike

__all__ = ["cover_over", "persisting"]

#: Share of the way from a case's cover before to its cover after that a later scene must show
#: for the case to count as still there (:func:`persisting`).
MIN_PROGRESS = 0.5

_FRACTIONS = ("veg", "bare", "built", "water")

#: Bands :func:`ecopatch.compute.cover.surface_fractions` uses, where the scene has them.
_BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")


def cover_over(scene: SourceLike, polygons: gpd.GeoDataFrame | gpd.GeoSeries) -> pd.DataFrame:
    """Mean cover fractions and cover class of ``scene`` over each polygon, from its clear pixels.

    Parameters
    ----------
    scene : RasterSource
        The imagery (any sensor with red and NIR); read at its own resolution
        over each polygon's bounds only.
    polygons : geopandas.GeoDataFrame or GeoSeries
        Areas (any CRS), e.g. the ledger's cases (EPSG:4490).

    Returns
    -------
    pandas.DataFrame
        Indexed like ``polygons``: ``veg``, ``bare``, ``built``, ``water``
        (0-1, means over the polygon's clear pixels; NaN when none is clear),
        ``class_now`` (:func:`ecopatch.compute.change.dominant_class`; ``"unknown"``
        when no pixel is clear) and ``clear_share`` (0-1: the share of the
        polygon inside the scene times the share of its pixels seen clear;
        pixels whose centre is inside, or every pixel it touches when it
        covers no centre).  Clear: the product's mask says so, or, for
        Sentinel-2 without a mask, s2cloudless does; a product of another
        sensor without a mask has no pixel known clear (0).
    """
    import shapely

    from ecopatch.geo.geodesy import geometries_in

    scene = as_source(scene)
    if "red" not in scene.bands or "nir" not in scene.bands:
        raise InputDataError(f"{scene.source}: the cover of a case needs red and NIR bands; this scene has "
                             f"{sorted(scene.bands)}")
    bands = [b for b in _BANDS if b in scene.bands]
    grid = scene.grid
    geoms = shapely.make_valid(geometries_in(polygons, grid.crs, what="cases"))
    footprint = grid.footprint()
    rows: list[dict[str, Any]] = []
    # the cases' scattered reads hold GDAL's block cache at a pass's size, not GDAL's default
    with reads_outside_a_pass((scene,)):
        for poly in geoms:
            rows.append(_cover_of(scene, bands, grid, footprint, poly))
    return pd.DataFrame(rows, index=getattr(polygons, "index", None))


def _cover_of(scene: RasterSource, bands: list[str], grid: Any, footprint: Any, poly: Any) -> dict[str, Any]:
    """:func:`cover_over`'s row of one polygon (in the scene's CRS)."""
    from ecopatch.compute.cover import surface_fractions
    from ecopatch.compute.zonal import outline_pixels
    from ecopatch.errors import NoOverlapError

    row: dict[str, Any] = {"veg": np.nan, "bare": np.nan, "built": np.nan, "water": np.nan,
                           "class_now": "unknown", "clear_share": 0.0}
    got = outline_pixels(grid, poly, footprint)
    if got is None:
        return row
    win, m, inside = got
    try:
        obs = scene.read(bands, win)
    except NoOverlapError:
        return row
    clear = m & obs.valid & ~_not_known_clear(scene, win, m.shape)
    row["clear_share"] = float(inside * np.count_nonzero(clear) / np.count_nonzero(m))
    if not clear.any():
        return row
    f = surface_fractions({b: obs.bands[b] for b in bands})
    for k in ("veg", "bare", "built", "water"):
        v = f[k][clear]
        v = v[np.isfinite(v)]
        row[k] = float(v.mean()) if v.size else np.nan
    row["class_now"] = dominant_class(row["veg"], row["bare"], row["built"], row["water"])
    return row


def _not_known_clear(scene: RasterSource, win: Any, shape: tuple[int, int]) -> np.ndarray:
    """Pixels of a window not known to be clear beyond the product's mask: a cloud must not confirm.

    A product with a mask: none (the mask has spoken).  Sentinel-2 without
    one (L1C): s2cloudless on top-of-atmosphere reflectance, cloud from
    :data:`ecopatch.raster.clouds.S2CLOUDLESS_EDGE`.  Any other product without a
    mask: every pixel, so its cases are confirmed only by a detection
    (whose two-date cloud test has the other date to compare with).  A
    single-date brightness test is not enough: on the Slovenia L1C stack
    (``../shared/data/eolearn_s2_slovenia``) the overcast 2015-07-31 date,
    dim and grey, passed it as fully clear "built" ground, where
    s2cloudless finds 7 % of it clear.
    """
    from ecopatch.raster.clouds import S2CLOUDLESS_BANDS, S2CLOUDLESS_EDGE, s2cloudless_probability

    if scene.mask_status["kind"] != "none":
        return np.zeros(shape, dtype=bool)
    if scene.sensor.name.startswith("sentinel2") and all(b in scene.bands for b in S2CLOUDLESS_BANDS):
        # s2cloudless reads top-of-atmosphere reflectance: put back the haze a Level-1 scene had removed
        haze = dict(scene.metadata.get("haze_removed", {}) or {})
        toa = {b: np.asarray(v, dtype=np.float32) + np.float32(haze.get(b, 0.0))
               for b, v in scene.read(list(S2CLOUDLESS_BANDS), win).bands.items()}
        prob = s2cloudless_probability(toa)
        if prob is not None:
            return np.nan_to_num(prob, nan=0.0) >= S2CLOUDLESS_EDGE
    return np.ones(shape, dtype=bool)


def persisting(cases: pd.DataFrame, cover: pd.DataFrame, seen_on: _dt.date, *,
               min_clear_share: float, min_progress: float = MIN_PROGRESS) -> pd.DataFrame:
    """The probable cases a later scene still shows as their detection found them after.

    A case's detection recorded the mean cover fractions of its pixels before
    and after; the later scene's fractions over the same outline
    (:func:`cover_over`) are placed on the line between the two:
    ``progress = (f_now - f_before) · (f_after - f_before) / |f_after - f_before|²``
    over the four fractions, 0 at the ground as it was, 1 at the ground as
    found after.  The case still shows its new ground when ``progress``
    reaches ``min_progress``: more than halfway, by default, from what it was
    to what it became.  (A comparison of cover classes instead flips on a
    fraction a hundredth either side of a class boundary.)

    Parameters
    ----------
    cases : pandas.DataFrame
        ``case_id``, ``sky_tier``, ``found_on`` (date) and the fractions of
        the case's latest detection: ``veg_before``, ``bare_before``,
        ``built_before``, ``water_before`` and the same ``_after`` (0-1);
        ``class_before`` and ``class_after`` are kept as evidence when present.
    cover : pandas.DataFrame
        :func:`cover_over` of the later scene over the same cases (same index).
    seen_on : datetime.date
        Date of the later scene.
    min_clear_share : float
        Share (0-1) of a case the scene must see clear.
    min_progress : float
        See above (default :data:`MIN_PROGRESS`, 0.5).

    Returns
    -------
    pandas.DataFrame
        ``case_id``, ``class_before``, ``class_after``, ``class_now``,
        ``progress``, ``clear_share`` and the fractions now (``veg``,
        ``bare``, ``built``, ``water``) of the cases that are ``probable``,
        first found before ``seen_on``, seen clear enough and still showing
        their new ground.  A case without recorded fractions, or whose
        fractions did not change, is never confirmed this way.

    Examples
    --------
    >>> import datetime as dt
    >>> was = {"veg_before": 0.9, "bare_before": 0.1, "built_before": 0.0, "water_before": 0.0,
    ...        "veg_after": 0.1, "bare_after": 0.3, "built_after": 0.6, "water_after": 0.0}
    >>> cases = pd.DataFrame([was] * 3).assign(case_id=["A", "B", "C"], sky_tier="probable",
    ...                                         found_on=dt.date(2024, 9, 12))
    >>> cover = pd.DataFrame({"veg": [0.2, 0.8, 0.2], "bare": [0.3, 0.2, 0.3], "built": [0.5, 0.0, 0.5],
    ...                       "water": 0.0, "class_now": ["built", "vegetation", "built"],
    ...                       "clear_share": [0.9, 0.9, 0.2]})
    >>> list(persisting(cases, cover, dt.date(2024, 10, 10), min_clear_share=0.7)["case_id"])
    ['A']
    """
    if not 0.0 <= float(min_clear_share) <= 1.0:
        raise InputDataError(f"min_clear_share={min_clear_share!r}: give a share in [0, 1]")
    cols = ["case_id", "class_before", "class_after", "class_now", "progress", "clear_share",
            "veg", "bare", "built", "water"]
    if not len(cases):
        return pd.DataFrame(columns=cols)
    cover = cover.reindex(cases.index)

    def frac(suffix: str, frame: pd.DataFrame) -> np.ndarray:
        names = [f"{k}{suffix}" for k in _FRACTIONS]
        if not all(n in frame for n in names):
            return np.full((len(frame), len(_FRACTIONS)), np.nan)
        return frame[names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)

    f0, f1, fn = frac("_before", cases), frac("_after", cases), frac("", cover)
    step = f1 - f0
    norm2 = (step**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        progress = np.where(norm2 > 1e-6, ((fn - f0) * step).sum(axis=1) / norm2, np.nan)
    found = pd.to_datetime(cases["found_on"], errors="coerce").dt.date
    ok = ((cases["sky_tier"] == "probable").to_numpy() & found.notna().to_numpy()
          & np.array([f is not None and f == f and f < seen_on for f in found], dtype=bool)
          & (cover["clear_share"].fillna(0.0).to_numpy() >= float(min_clear_share))
          & np.nan_to_num(progress >= float(min_progress), nan=False).astype(bool))
    out = pd.DataFrame({"case_id": cases["case_id"].to_numpy()[ok]})
    for k in ("class_before", "class_after"):
        out[k] = cases[k].to_numpy()[ok] if k in cases else None
    out["class_now"] = cover["class_now"].to_numpy()[ok]
    out["progress"] = progress[ok]
    out["clear_share"] = cover["clear_share"].to_numpy()[ok]
    for j, k in enumerate(_FRACTIONS):
        out[k] = fn[ok, j]
    return out[cols]
