"""Reusable pieces of the real-data change benchmark: data, default detection, scoring, baselines, maps.

Used by ``benchmarks/bench_change_realdata.py`` (the script a person runs)
and ``tests/test_realdata_change.py`` (the same harness on one small city
and Taizhou).  Everything is read in place from the shared data folder
(``$ECOPATCH_SHARED_DATA`` or ``../shared/data``); nothing is copied.

What ecopatch is asked is what a user gets: each date opened with
:func:`ecopatch.open_scene` and its default settings, then
:func:`ecopatch.detect_changes` (before, after) with no argument but
``progress=False``.  Only the returned patch table is read: its geometry,
``change_type`` and, where present, ``confidence`` (and ``area_m2`` by the
test), so the harness works unchanged whatever method produces them.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if __package__:
    from . import baselines as bl
else:  # run as a script from benchmarks/
    import baselines as bl

#: ``../shared/data`` next to the repository.
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: The ten labelled OSCD cities: Beihai in ``oscd_china/``, the nine others in ``oscd_cities/``.
OSCD_CITIES: tuple[str, ...] = ("beihai", "abudhabi", "aguasclaras", "bercy", "bordeaux", "cupertino", "mumbai",
                                "nantes", "paris", "rennes")
#: Change types scored against the OSCD urban-change labels.
SCORED_TYPES: tuple[str, ...] = ("construction", "bare_soil")
#: The only change type that is not a disturbance.
GAIN = "vegetation_gain"
#: Sentinel-2 bands the baselines use: the 10 m and 20 m bands, 20 m resampled (bilinear) to the label grid.
S2_BASELINE_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12")
#: Confidence bins of the reliability table (right edge of the last bin included).
CONF_BINS: np.ndarray = np.round(np.linspace(0.0, 1.0, 11), 10)
#: A patch "is" labelled change when at least this share of its (labelled) pixels is labelled change.
HIT_SHARE = 0.5
#: Significance of the IR-MAD chi-square rules.
IRMAD_ALPHA = 0.01
#: The baselines, in table order: the published methods; "best baseline" is the best of these.
BASELINES: tuple[str, ...] = ("CVA-z Otsu", "PCA-k-means", "IR-MAD Otsu", "IR-MAD chi2")
#: Variants reported beside the baselines, not counted: CVA-z with Otsu's histogram clipped at the
#: 99.9th percentile (a few saturated pixels otherwise set its range), IR-MAD with a robust
#: no-change spread (not in the paper).
VARIANTS: tuple[str, ...] = ("CVA-z Otsu-clip", "IR-MAD-r Otsu", "IR-MAD-r chi2")
#: Percentile of the clipped Otsu variant.
OTSU_CLIP_PCT = 99.9
#: Taizhou: Landsat-7 ETM+ band order of the shipped 6-band uint8 DN files.
TAIZHOU_BANDS: dict[str, int] = {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 6}
TAIZHOU_FILES = ("taizhou_2000-03-17_L7ETM.tif", "taizhou_2003-02-06_L7ETM.tif")
SLOVENIA_DATES = ("2015-07-11", "2015-07-31", "2015-08-20", "2015-08-30", "2015-09-09")
S2_L2A_TILE = Path("s2l2a_landsatc2l2_formats") / "s2_l2a_S2A_29RKH_20200219"
#: Warnings that say nothing about the method (rasterio 1.4 on in-memory warp sources).
_QUIET = ("Dataset has no geotransform",)


def shared_data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The real-data folder: ``path``, else ``$ECOPATCH_SHARED_DATA``, else ``../shared/data``."""
    return Path(path or os.environ.get("ECOPATCH_SHARED_DATA") or DEFAULT_DATA)


def oscd_city_dir(root: Path, city: str) -> Path:
    """Folder of an OSCD city (Beihai is in ``oscd_china/``)."""
    return root / ("oscd_china" if city == "beihai" else "oscd_cities") / city


# ---------------------------------------------------------------------------
# Label grids
# ---------------------------------------------------------------------------
@dataclass
class LabelGrid:
    """The grid scores are computed on, with its labels.

    Attributes
    ----------
    transform, crs, shape
        The label raster's grid.
    truth : ndarray of bool
        Labelled change.
    valid : ndarray of bool or None
        Labelled pixels (None: every pixel is labelled, OSCD).
    """

    transform: Any
    crs: Any
    shape: tuple[int, int]
    truth: np.ndarray
    valid: np.ndarray | None = None

    @property
    def scored(self) -> np.ndarray:
        """Pixels that are scored."""
        return np.ones(self.shape, dtype=bool) if self.valid is None else self.valid

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in ``crs``."""
        from rasterio.transform import array_bounds

        west, south, east, north = array_bounds(*self.shape, self.transform)
        return west, south, east, north


def read_oscd_labels(city_dir: Path) -> LabelGrid:
    """``cm/<city>-cm_georef.tif`` (1 = no change, 2 = change) as a :class:`LabelGrid`."""
    import rasterio

    with rasterio.open(city_dir / "cm" / f"{city_dir.name}-cm_georef.tif") as ds:
        lab = ds.read(1)
        return LabelGrid(ds.transform, ds.crs, ds.shape, lab == 2, None)


def read_oscd_dates(city_dir: Path) -> tuple[_dt.date, _dt.date]:
    """The two acquisition dates of ``dates.txt`` (``date_1: YYYYMMDD``)."""
    out = {}
    for line in (city_dir / "dates.txt").read_text().splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = _dt.datetime.strptime(v.strip(), "%Y%m%d").date()
    return out["date_1"], out["date_2"]


def read_taizhou_labels(site: Path) -> LabelGrid:
    """Taizhou's sampled labels: changed samples, and changed | unchanged samples as ``valid``."""
    import rasterio

    with rasterio.open(site / "taizhou_ref_change.tif") as ds:
        changed = ds.read(1) == 1
        transform, crs, shape = ds.transform, ds.crs, ds.shape
    with rasterio.open(site / "taizhou_ref_unchanged.tif") as ds:
        unchanged = ds.read(1) == 1
    return LabelGrid(transform, crs, shape, changed, changed | unchanged)


def band_stack(files: Sequence[Path], grid: LabelGrid, *, scale: float = 1.0) -> np.ndarray:
    """Single-band files warped onto ``grid`` (bilinear), float64 × ``scale``.

    Works whatever each file's own grid (10/20 m bands, dates on different grids).
    """
    import rasterio
    from rasterio.warp import Resampling, reproject

    out = np.empty((len(files), *grid.shape), dtype=np.float64)
    for i, f in enumerate(files):
        with rasterio.open(f) as ds:
            src = ds.read(1).astype(np.float64)
            same = ds.crs == grid.crs and ds.transform == grid.transform and ds.shape == grid.shape
            if same:
                out[i] = src
            else:
                dst = np.full(grid.shape, np.nan)
                reproject(src, dst, src_transform=ds.transform, src_crs=ds.crs, dst_transform=grid.transform,
                          dst_crs=grid.crs, resampling=Resampling.bilinear, src_nodata=None, dst_nodata=np.nan)
                out[i] = dst
    return out * scale


def oscd_band_files(folder: Path, bands: Iterable[str] = S2_BASELINE_BANDS) -> list[Path]:
    """The band files of an OSCD ``imgs_N`` folder, in ``bands`` order."""
    files = []
    for b in bands:
        hits = sorted(folder.glob(f"*_{b}.tif"))
        if len(hits) != 1:
            raise FileNotFoundError(f"{folder}: expected one *_{b}.tif, found {len(hits)}")
        files.append(hits[0])
    return files


# ---------------------------------------------------------------------------
# Opening and detecting as a user would
# ---------------------------------------------------------------------------
def _messages(records: Iterable[warnings.WarningMessage]) -> list[str]:
    seen: list[str] = []
    for r in records:
        msg = str(r.message)
        if any(q in msg for q in _QUIET):
            continue
        line = f"{r.category.__name__}: {msg}"
        if line not in seen:
            seen.append(line)
    return seen


@dataclass
class Opened:
    """A scene opened with defaults, the warnings it raised, and what the harness had to add."""

    scene: Any
    warnings: list[str] = field(default_factory=list)
    note: str = ""


def open_default(source: Path, *, date: _dt.date | None = None, **kw: Any) -> Opened:
    """:func:`ecopatch.open_scene` with default settings (plus ``kw``).

    ``date``: the acquisition date known from the data set (OSCD
    ``dates.txt``).  When the reader finds none, or another one, the scene
    is opened again with ``date=`` (what a user would do) and the
    disagreement is kept in :attr:`Opened.note`.
    """
    import ecopatch

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            scene = ecopatch.open_scene(source, **kw)
            found = scene.date
        except ecopatch.errors.EcopatchError as exc:
            if date is None or "date" not in str(exc).lower():
                raise
            scene, found = None, None
        note = ""
        if date is not None and found != date:
            note = (f"{source.parent.name}/{source.name}: reader's date {found} differs from dates.txt {date}; "
                    f"opened with date={date}")
            scene = ecopatch.open_scene(source, date=date, **kw)
    return Opened(scene, _messages(rec), note)


@dataclass
class Detection:
    """Patches of one default :func:`ecopatch.detect_changes` call and what it cost.

    Attributes
    ----------
    seconds, cpu_seconds : float
        Wall-clock and process CPU time (all threads) of the call.
    load_before : float
        The machine's 1-minute load average just before the call (other
        processes share the cores).
    """

    patches: Any
    seconds: float
    cpu_seconds: float
    load_before: float
    warnings: list[str] = field(default_factory=list)

    def types(self) -> dict[str, int]:
        """Patch count per change type."""
        if not len(self.patches):
            return {}
        return {str(k): int(v) for k, v in self.patches["change_type"].value_counts().sort_index().items()}


def detect_default(before: Any, after: Any) -> Detection:
    """:func:`ecopatch.detect_changes` (before, after) with its defaults, timed."""
    import ecopatch
    from ecopatch.errors import NoValidPixelsError

    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            patches = ecopatch.detect_changes(before, after, progress=False)
        except NoValidPixelsError as exc:
            # nothing observed at both dates (a date all cloud): no patch, and the reason kept
            import geopandas as gpd

            patches = gpd.GeoDataFrame({"change_type": [], "area_m2": []}, geometry=[], crs=before.grid.crs)
            warnings.warn(f"NoValidPixelsError: {exc}", stacklevel=1)
    return Detection(patches, time.perf_counter() - t0, time.process_time() - c0, load, _messages(rec))


# ---------------------------------------------------------------------------
# Rasterising patches and scoring
# ---------------------------------------------------------------------------
def select(patches: Any, types: Iterable[str] | None = None, *, exclude: Iterable[str] = ()) -> Any:
    """Patches whose ``change_type`` is in ``types`` (None: any) and not in ``exclude``."""
    keep = np.ones(len(patches), dtype=bool)
    if types is not None:
        keep &= patches["change_type"].isin(list(types)).to_numpy()
    ex = list(exclude)
    if ex:
        keep &= ~patches["change_type"].isin(ex).to_numpy()
    return patches[keep]


def burn(patches: Any, grid: LabelGrid) -> np.ndarray:
    """Boolean mask of the patches on ``grid`` (pixel-centre rule)."""
    from rasterio.features import rasterize

    if not len(patches):
        return np.zeros(grid.shape, dtype=bool)
    geoms = [g for g in patches.to_crs(grid.crs).geometry if g is not None and not g.is_empty]
    if not geoms:
        return np.zeros(grid.shape, dtype=bool)
    return rasterize([(g, 1) for g in geoms], out_shape=grid.shape, transform=grid.transform, fill=0,
                     dtype="uint8").astype(bool)


def _pixels_of(geom: Any, grid: LabelGrid, *, all_touched: bool = False) -> np.ndarray:
    """Flat indices of the grid pixels a geometry covers (pixel centres, or every touched pixel)."""
    from affine import Affine
    from rasterio.features import rasterize
    from rasterio.windows import from_bounds

    rows, cols = grid.shape
    w = from_bounds(*geom.bounds, transform=grid.transform)
    r0, c0 = max(int(np.floor(w.row_off)) - 1, 0), max(int(np.floor(w.col_off)) - 1, 0)
    r1 = min(int(np.ceil(w.row_off + w.height)) + 1, rows)
    c1 = min(int(np.ceil(w.col_off + w.width)) + 1, cols)
    if r1 <= r0 or c1 <= c0:
        return np.zeros(0, dtype=np.int64)
    m = rasterize([(geom, 1)], out_shape=(r1 - r0, c1 - c0), transform=grid.transform @ Affine.translation(c0, r0),
                  fill=0, dtype="uint8", all_touched=all_touched)
    rr, cc = np.nonzero(m)
    return (rr + r0) * cols + (cc + c0)


def burn_index(patches: Any, grid: LabelGrid) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Which patch covers each pixel: ``(ids, extra)``.

    ``ids`` holds 1 + the patch's position (0 = none; pixel-centre rule).
    ``extra`` maps the position of a patch whose pixels ``ids`` cannot tell
    to the flat indices of its pixels: a patch overlapping another (its own
    pixel centres) and a patch covering no pixel centre (smaller than a
    label pixel, or off the grid's phase: every pixel it touches).
    """
    import shapely
    from rasterio.features import rasterize

    ids = np.zeros(grid.shape, dtype=np.int32)
    if not len(patches):
        return ids, {}
    gs = patches.to_crs(grid.crs).geometry
    geoms = gs.to_numpy()
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    shapes = [(g, i + 1) for i, g in enumerate(geoms) if ok[i]]
    if shapes:
        ids = rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=0, dtype="int32")
    extra: dict[int, np.ndarray] = {}
    # patches whose interiors meet another's (touching edges are fine)
    left, right = gs.sindex.query(geoms[ok], predicate="intersects")
    pos = np.flatnonzero(ok)
    left, right = pos[left], pos[right]
    keep = left != right
    left, right = left[keep], right[keep]
    if left.size:
        inner = ~shapely.touches(geoms[left], geoms[right])
        for i in np.unique(np.r_[left[inner], right[inner]]):
            extra[int(i)] = _pixels_of(geoms[i], grid)
    present = np.zeros(len(geoms) + 1, dtype=bool)
    present[np.unique(ids)] = True
    for i in np.flatnonzero(ok):
        if not present[i + 1] and (int(i) not in extra or extra[int(i)].size == 0):
            extra[int(i)] = _pixels_of(geoms[i], grid, all_touched=True)
    return ids, extra


def patch_label_overlap(patches: Any, grid: LabelGrid) -> dict[str, np.ndarray]:
    """Per patch: its pixels on ``grid``, how many are labelled, how many labelled change.

    Returns ``n_px``, ``n_labelled``, ``n_change`` (int arrays in patch
    order) and ``overlap`` = ``n_change / n_labelled`` (NaN where the patch
    holds no labelled pixel; on dense labels, the share of the patch's
    pixels that are labelled change).
    """
    n = len(patches)
    ids, extra = burn_index(patches, grid)
    flat = ids.ravel()
    lab = grid.scored.ravel()
    chg = (grid.truth & grid.scored).ravel()
    n_px = np.bincount(flat, minlength=n + 1)[1:]
    n_lab = np.bincount(flat, weights=lab, minlength=n + 1)[1:]
    n_chg = np.bincount(flat, weights=chg, minlength=n + 1)[1:]
    for i, px in extra.items():
        n_px[i], n_lab[i], n_chg[i] = px.size, lab[px].sum(), chg[px].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        overlap = np.where(n_lab > 0, n_chg / np.maximum(n_lab, 1), np.nan)
    return {"n_px": n_px.astype(int), "n_labelled": n_lab.astype(int), "n_change": n_chg.astype(int),
            "overlap": overlap}


def score(mask: np.ndarray, grid: LabelGrid) -> dict[str, float]:
    """:func:`ecopatch.analyses.validation.pixel_scores` of ``mask`` on the scored pixels, plus flagged shares.

    ``flagged``: share of the scored pixels flagged; ``flagged_scene``:
    share of the whole grid flagged.
    """
    from ecopatch.analyses.validation import pixel_scores

    s = pixel_scores(mask, grid.truth, valid=grid.valid)
    s["flagged"] = float(mask[grid.scored].mean())
    s["flagged_scene"] = float(mask.mean())
    return s


def reliability(
    confidence: Any, overlap: np.ndarray, *, bins: np.ndarray = CONF_BINS, hit_share: float = HIT_SHARE
) -> dict[str, Any]:
    """Reliability table of patch confidences against the labels.

    Parameters
    ----------
    confidence : array-like or None
        One value per patch (the ``confidence`` column), or None when the
        patches have none.
    overlap : ndarray
        Per patch, the share of its labelled pixels that are labelled change
        (:func:`patch_label_overlap`); NaN = no labelled pixel, left out.
    bins : ndarray
        Bin edges on [0, 1]; a value equal to the last edge falls in the last
        bin.
    hit_share : float
        A patch is a hit when ``overlap >= hit_share``.

    Returns
    -------
    dict
        ``status`` ("ok", "missing", "constant" or "empty"), ``rows`` (per
        bin: ``lo``, ``hi``, ``n``, ``mean_conf``, ``hits``, ``hit_rate``),
        ``n`` (patches scored), ``n_unlabelled`` (left out: no labelled
        pixel), ``n_nan`` (NaN confidence), ``n_outside`` (confidence
        outside [0, 1], clipped into the end bins), ``ece`` (expected
        calibration error: Σ n_b/N |mean_conf_b − hit_rate_b|), ``brier``
        (mean (confidence − hit)²) and ``hit_rate`` (over all scored
        patches).
    """
    overlap = np.asarray(overlap, dtype=np.float64)
    labelled = np.isfinite(overlap)
    hit = overlap >= hit_share
    base = {"hit_share": hit_share, "n_unlabelled": int((~labelled).sum()),
            "hit_rate": float(hit[labelled].mean()) if labelled.any() else float("nan")}
    if confidence is None:
        return {**base, "status": "missing", "rows": [], "n": int(labelled.sum()), "n_nan": 0, "n_outside": 0,
                "ece": float("nan"), "brier": float("nan")}
    conf = np.asarray(confidence, dtype=np.float64)
    if conf.shape != overlap.shape:
        raise ValueError(f"reliability: {conf.shape[0]} confidences for {overlap.shape[0]} patches")
    nan = ~np.isfinite(conf)
    use = labelled & ~nan
    c, h = conf[use], hit[use]
    outside = int(((c < bins[0]) | (c > bins[-1])).sum())
    c_bin = np.clip(c, bins[0], bins[-1])
    idx = np.clip(np.searchsorted(bins, c_bin, side="right") - 1, 0, len(bins) - 2)
    rows = []
    for k in range(len(bins) - 1):
        sel = idx == k
        nk = int(sel.sum())
        rows.append({"lo": float(bins[k]), "hi": float(bins[k + 1]), "n": nk,
                     "mean_conf": float(c[sel].mean()) if nk else float("nan"),
                     "hits": int(h[sel].sum()), "hit_rate": float(h[sel].mean()) if nk else float("nan")})
    n = int(use.sum())
    ece = sum(r["n"] / n * abs(r["mean_conf"] - r["hit_rate"]) for r in rows if r["n"]) if n else float("nan")
    status = "empty" if n == 0 else ("constant" if np.unique(c).size == 1 else "ok")
    return {**base, "status": status, "rows": rows, "n": n, "n_nan": int((labelled & nan).sum()),
            "n_outside": outside, "ece": float(ece),
            "brier": float(np.mean((np.clip(c, 0, 1) - h) ** 2)) if n else float("nan")}


def merge_reliability(tables: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pool per-scene reliability tables (same bins) into one."""
    tables = [t for t in tables if t["rows"]]
    if not tables:
        return {"status": "missing", "rows": [], "n": 0, "n_unlabelled": 0, "n_nan": 0, "n_outside": 0,
                "ece": float("nan"), "brier": float("nan"), "hit_rate": float("nan"), "hit_share": HIT_SHARE}
    rows = []
    for k in range(len(tables[0]["rows"])):
        parts = [t["rows"][k] for t in tables]
        n = sum(p["n"] for p in parts)
        hits = sum(p["hits"] for p in parts)
        mc = sum(p["mean_conf"] * p["n"] for p in parts if p["n"]) / n if n else float("nan")
        rows.append({"lo": parts[0]["lo"], "hi": parts[0]["hi"], "n": n, "mean_conf": mc, "hits": hits,
                     "hit_rate": hits / n if n else float("nan")})
    n = sum(r["n"] for r in rows)
    ece = sum(r["n"] / n * abs(r["mean_conf"] - r["hit_rate"]) for r in rows if r["n"]) if n else float("nan")
    brier = sum(t["brier"] * t["n"] for t in tables if t["n"]) / n if n else float("nan")
    statuses = {t["status"] for t in tables}
    return {"status": "ok" if "ok" in statuses else statuses.pop(), "rows": rows, "n": n,
            "n_unlabelled": sum(t["n_unlabelled"] for t in tables), "n_nan": sum(t["n_nan"] for t in tables),
            "n_outside": sum(t["n_outside"] for t in tables), "ece": float(ece), "brier": float(brier),
            "hit_rate": sum(r["hits"] for r in rows) / n if n else float("nan"), "hit_share": tables[0]["hit_share"]}


def patch_reliability(patches: Any, grid: LabelGrid) -> dict[str, Any]:
    """:func:`reliability` of ``patches`` (their ``confidence`` column, if any) on ``grid``."""
    ov = patch_label_overlap(patches, grid)["overlap"] if len(patches) else np.zeros(0)
    conf = None
    if "confidence" in patches.columns:  # numbers, nullable numbers or text: anything not a number is NaN
        import pandas as pd

        conf = pd.to_numeric(patches["confidence"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    out = reliability(conf, ov)
    # what the confidence is a function of, per labelled patch: for refitting it (--fit-confidence)
    if len(patches) and {"change_z", "n_px"} <= set(patches.columns):
        ok = np.isfinite(ov)
        out["samples"] = {"z": np.asarray(patches["change_z"], dtype=np.float64)[ok].tolist(),
                          "n_px": np.asarray(patches["n_px"], dtype=np.float64)[ok].tolist(),
                          "hit": (ov[ok] >= HIT_SHARE).astype(float).tolist()}
    return out


def _logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1e-3, iterations: int = 60) -> np.ndarray:
    """Weighted logistic regression by Newton's method (intercept first), lightly ridged."""
    X = np.column_stack([np.ones(len(X)), X])
    b = np.zeros(X.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-X @ b))
        W = w * p * (1 - p)
        H = X.T @ (X * W[:, None]) + l2 * np.eye(len(b))
        step = np.linalg.solve(H, X.T @ (w * (y - p)) - l2 * b)
        b = b + step
        if np.abs(step).max() < 1e-9:
            break
    return b


def fit_confidence(samples: Mapping[str, Mapping[str, Sequence[float]]]) -> dict[str, Any]:
    """Fit :func:`ecopatch.analyses.encroachment.patch_confidence`'s coefficients on labelled patches.

    Parameters
    ----------
    samples : mapping of scene name to ``{"z", "n_px", "hit"}`` lists
        As :func:`patch_reliability` collects them.

    Returns
    -------
    dict
        ``coef`` (intercept, mean z, log10 pixels; each scene weighted
        equally) and ``loo`` (a reliability table of every patch scored by
        coefficients fitted without its own scene).
    """
    scenes = [k for k, v in samples.items() if len(v["hit"])]

    def design(keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X, y, w = [], [], []
        for k in keys:
            v = samples[k]
            z = np.minimum(np.nan_to_num(np.asarray(v["z"], float)), 30.0)
            X.append(np.column_stack([z, np.log10(np.maximum(np.asarray(v["n_px"], float), 1.0))]))
            y.append(np.asarray(v["hit"], float))
            w.append(np.full(len(z), 1.0 / len(z)))
        W = np.concatenate(w)
        return np.vstack(X), np.concatenate(y), W / W.mean()

    X, y, w = design(scenes)
    coef = _logistic(X, y, w)
    conf, hits = [], []
    for k in scenes:
        b = _logistic(*design([s for s in scenes if s != k]))
        Xk, yk, _ = design([k])
        conf.append(1 / (1 + np.exp(-(b[0] + Xk @ b[1:]))))
        hits.append(yk)
    c, h = np.concatenate(conf), np.concatenate(hits)
    return {"coef": [float(v) for v in coef], "scenes": scenes, "loo": reliability(c, h)}


# ---------------------------------------------------------------------------
# Baselines on the label grid
# ---------------------------------------------------------------------------
def run_baselines(before: np.ndarray, after: np.ndarray, grid: LabelGrid, *, alpha: float = IRMAD_ALPHA,
                  variant: bool = True) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The baselines on two band stacks on ``grid``; no label is used.

    Parameters
    ----------
    before, after : ndarray, shape (bands, rows, cols)
        The two dates on the label grid.
    grid : LabelGrid
    alpha : float
        Significance of the IR-MAD chi-square rule.
    variant : bool
        Also run the :data:`VARIANTS`.

    Returns
    -------
    rows : dict
        Name (:data:`BASELINES`, then :data:`VARIANTS`) -> :func:`score` of
        its change mask, plus ``seconds`` and the ``mask`` itself.
    irmad : dict
        ``"published"`` (and ``"robust"``) -> :meth:`baselines.IRMADResult.diagnostics`
        with the thresholds used and the seconds taken.
    """
    from scipy.stats import chi2 as chi2_law

    masks: dict[str, np.ndarray] = {}
    secs: dict[str, float] = {}
    t0 = time.perf_counter()
    mag = bl.cva_magnitude(before, after, z=True)
    t_cva = bl.otsu_threshold(mag)
    masks["CVA-z Otsu"] = np.nan_to_num(mag, nan=-np.inf) > t_cva
    secs["CVA-z Otsu"] = time.perf_counter() - t0
    if variant:
        masks["CVA-z Otsu-clip"] = np.nan_to_num(mag, nan=-np.inf) > bl.otsu_threshold(mag, clip_pct=OTSU_CLIP_PCT)
        secs["CVA-z Otsu-clip"] = secs["CVA-z Otsu"]
    t0 = time.perf_counter()
    masks["PCA-k-means"] = bl.pca_kmeans(mag)
    secs["PCA-k-means"] = time.perf_counter() - t0 + secs["CVA-z Otsu"]
    diags: dict[str, dict[str, Any]] = {}
    runs = [("IR-MAD", "weighted", "published")] + ([("IR-MAD-r", "robust", "robust")] if variant else [])
    for prefix, sigma, key in runs:
        t0 = time.perf_counter()
        res = bl.irmad(before, after, sigma=sigma)
        t_ir = time.perf_counter() - t0
        masks[f"{prefix} Otsu"] = bl.irmad_change(res, "otsu")
        masks[f"{prefix} chi2"] = bl.irmad_change(res, "chi2", alpha=alpha)
        secs[f"{prefix} Otsu"] = secs[f"{prefix} chi2"] = t_ir
        d: dict[str, Any] = dict(res.diagnostics())
        d.update({"sigma": sigma, "alpha": alpha, "chi2_threshold": float(chi2_law.isf(alpha, res.n_bands)),
                  "otsu_sqrt_threshold": bl.otsu_threshold(np.sqrt(res.chi2)), "n_bands": res.n_bands,
                  "ridge": res.ridge, "seconds": t_ir, "rho": [float(r) for r in res.rho]})
        diags[key] = d
    order = [m for m in (*BASELINES, *VARIANTS) if m in masks]
    out = {name: {**score(masks[name], grid), "seconds": secs[name], "mask": masks[name]} for name in order}
    return out, diags


# ---------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------
def _row(dataset: str, scene: str, method: str, types: str, s: dict[str, float], **extra: Any) -> dict[str, Any]:
    keep = ("precision", "recall", "f1", "iou", "overall_accuracy", "kappa", "n", "flagged", "flagged_scene")
    return {"dataset": dataset, "scene": scene, "method": method, "types": types,
            **{k: float(s[k]) for k in keep}, **extra}


def run_oscd_city(root: Path, city: str, *, maps_dir: Path | None = None, baselines: bool = True,
                  variant: bool = True) -> dict[str, Any]:
    """Default ecopatch and the baselines on one OSCD city, scored against its labels.

    Returns
    -------
    dict
        ``rows`` (ecopatch construction+bare, then each baseline),
        ``ecopatch`` (patch counts per type, disturbance share, timings,
        warnings), ``reliability`` (construction + bare-soil patches),
        ``irmad`` (diagnostics), ``notes``, ``map`` (PNG path or None),
        ``patches`` (the GeoDataFrame detect_changes returned).
    """
    cdir = oscd_city_dir(root, city)
    grid = read_oscd_labels(cdir)
    d1, d2 = read_oscd_dates(cdir)
    t_open = time.perf_counter()
    ob = open_default(cdir / "imgs_1", date=d1)
    oa = open_default(cdir / "imgs_2", date=d2)
    t_open = time.perf_counter() - t_open
    det = detect_default(ob.scene, oa.scene)
    p = det.patches
    scored = select(p, SCORED_TYPES)
    dist = select(p, exclude=(GAIN,))
    s = score(burn(scored, grid), grid)
    dist_mask = burn(dist, grid)
    eco = {"n_patches": len(p), "n_scored_patches": len(scored), "types": det.types(),
           "flagged_disturbance": float(dist_mask.mean()), "flagged_any": float(burn(p, grid).mean()),
           "seconds_detect": det.seconds, "cpu_seconds_detect": det.cpu_seconds, "seconds_open": t_open,
           "load_before": det.load_before, "warnings": ob.warnings + oa.warnings + det.warnings,
           "columns": [str(c) for c in p.columns]}
    rows = [_row("OSCD", city, "ecopatch", "construction+bare_soil", s, n_patches=len(scored),
                 flagged_disturbance=eco["flagged_disturbance"], seconds=det.seconds)]
    rel = patch_reliability(scored, grid)
    irmad_diag: dict[str, Any] = {}
    if baselines:
        b = band_stack(oscd_band_files(cdir / "imgs_1"), grid, scale=1e-4)
        a = band_stack(oscd_band_files(cdir / "imgs_2"), grid, scale=1e-4)
        brows, irmad_diag = run_baselines(b, a, grid, variant=variant)
        for name, r in brows.items():
            r.pop("mask")
            rows.append(_row("OSCD", city, name, "-", r, n_patches=None, flagged_disturbance=None,
                             seconds=r["seconds"]))
    notes = [n for n in (ob.note, oa.note) if n]
    out = {"city": city, "dates": (d1.isoformat(), d2.isoformat()), "grid_shape": grid.shape,
           "label_change_share": float(grid.truth.mean()), "rows": rows, "ecopatch": eco, "reliability": rel,
           "irmad": irmad_diag, "notes": notes, "map": None, "patches": p}
    if maps_dir is not None:
        base = [r for r in rows if r["method"] in BASELINES]
        best = max(base, key=lambda r: r["f1"]) if base else None
        sub = (f"ecopatch construction+bare_soil: F1 {s['f1']:.3f} (P {s['precision']:.3f}, R {s['recall']:.3f}); "
               f"disturbance flagged {eco['flagged_disturbance']:.1%} of the scene")
        if best is not None:
            sub += f"; best baseline {best['method']}: F1 {best['f1']:.3f}"
        out["map"] = str(write_change_map(Path(maps_dir) / f"oscd_{city}.png", ob.scene, oa.scene, p, grid,
                                          title=f"OSCD {city}: {d1} → {d2}", subtitle=sub,
                                          label_name="OSCD label: urban change"))
    return out


def open_taizhou(root: Path) -> tuple[Opened, Opened]:
    """Taizhou as a user opens it: bands named, DN scaled to 0-1 (``scale=1/255``), haze removal asked for."""
    site = root / "landsat_cd_taizhou_nanjing" / "taizhou"
    return tuple(open_default(site / f, bands=TAIZHOU_BANDS, scale=1 / 255, haze="dos")  # type: ignore[return-value]
                 for f in TAIZHOU_FILES)


def run_taizhou(root: Path, *, maps_dir: Path | None = None, baselines: bool = True,
                variant: bool = True) -> dict[str, Any]:
    """Default ecopatch and the baselines on the Taizhou Landsat-7 pair, scored on the labelled samples.

    Rows: ecopatch for any change (all patch types, the acceptance's
    figure), disturbance (all but vegetation gain) and construction +
    bare soil; then each baseline on the six DN bands.  Reliability over
    all patches, each judged on the labelled pixels it holds.  Keys as
    :func:`run_oscd_city`.
    """
    site = root / "landsat_cd_taizhou_nanjing" / "taizhou"
    grid = read_taizhou_labels(site)
    t_open = time.perf_counter()
    ob, oa = open_taizhou(root)
    t_open = time.perf_counter() - t_open
    det = detect_default(ob.scene, oa.scene)
    p = det.patches
    rows = []
    for label, sel in (("any", p), ("disturbance", select(p, exclude=(GAIN,))),
                       ("construction+bare_soil", select(p, SCORED_TYPES))):
        rows.append(_row("Taizhou", "taizhou", "ecopatch", label, score(burn(sel, grid), grid),
                         n_patches=len(sel), seconds=det.seconds))
    eco = {"n_patches": len(p), "types": det.types(),
           "flagged_disturbance": float(burn(select(p, exclude=(GAIN,)), grid).mean()),
           "flagged_any": float(burn(p, grid).mean()), "seconds_detect": det.seconds,
           "cpu_seconds_detect": det.cpu_seconds, "seconds_open": t_open, "load_before": det.load_before,
           "warnings": ob.warnings + oa.warnings + det.warnings, "columns": [str(c) for c in p.columns]}
    irmad_diag: dict[str, Any] = {}
    if baselines:
        stacks = [_read_all_bands(site / f) for f in TAIZHOU_FILES]  # the label grid; raw DN
        brows, irmad_diag = run_baselines(stacks[0], stacks[1], grid, variant=variant)
        for name, r in brows.items():
            r.pop("mask")
            rows.append(_row("Taizhou", "taizhou", name, "-", r, n_patches=None, seconds=r["seconds"]))
    out = {"rows": rows, "ecopatch": eco, "reliability": patch_reliability(p, grid), "irmad": irmad_diag,
           "notes": [n for n in (ob.note, oa.note) if n], "map": None, "patches": p}
    if maps_dir is not None:
        any_s = rows[0]
        sub = (f"ecopatch any change: kappa {any_s['kappa']:.3f}, F1 {any_s['f1']:.3f} on the "
               f"{int(any_s['n'])} labelled pixels")
        out["map"] = str(write_change_map(Path(maps_dir) / "taizhou.png", ob.scene, oa.scene, p, grid,
                                          title="Taizhou (Landsat-7 ETM+): 2000-03-17 → 2003-02-06", subtitle=sub,
                                          label_name="changed samples", other_name="unchanged samples"))
    return out


def _read_all_bands(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read().astype(np.float64)


def slovenia_cloud_shares(folder: Path) -> dict[str, float]:
    """Share of the patch s2cloudless calls cloud on each date (eo-learn's ``CLM`` layer, by date).

    Read for the table only, never given to ecopatch: the L1C files carry
    no mask, which is the case the acceptance is about.
    """
    import rasterio

    with rasterio.open(folder / "cloudmask_clm_68dates.tif") as ds:
        desc = ds.descriptions
        out = {}
        for i, d in enumerate(desc, start=1):
            if d and d[:10] in SLOVENIA_DATES:
                out[d[:10]] = float(ds.read(i).mean())
    return out


def run_slovenia(root: Path) -> list[dict[str, Any]]:
    """Flagged share of the Slovenia patch for each consecutive pair of the summer 2015 dates and first → last.

    Nothing is labelled: a forest / grassland patch over two months of one
    summer, where the acceptance wants at most 1 % flagged.  Each row also
    carries the s2cloudless cloud share of both dates
    (:func:`slovenia_cloud_shares`).
    """
    folder = root / "eolearn_s2_slovenia"
    clouds = slovenia_cloud_shares(folder)
    scenes = {d: open_default(folder / f"s2_l1c_{d}.tif") for d in SLOVENIA_DATES}
    pairs = [*zip(SLOVENIA_DATES[:-1], SLOVENIA_DATES[1:]), (SLOVENIA_DATES[0], SLOVENIA_DATES[-1])]
    rows = []
    for d1, d2 in pairs:
        b, a = scenes[d1], scenes[d2]
        det = detect_default(b.scene, a.scene)
        row = _flag_row("Slovenia", f"{d1} → {d2}", b.scene, det)
        row["cloud_before"], row["cloud_after"] = clouds.get(d1, float("nan")), clouds.get(d2, float("nan"))
        rows.append(row)
    return rows


def run_s2_self(root: Path) -> dict[str, Any]:
    """The Sentinel-2 L2A tile compared with itself (the acceptance wants nothing flagged)."""
    o = open_default(root / S2_L2A_TILE)
    det = detect_default(o.scene, o.scene)
    return _flag_row("S2 L2A self", "29RKH 2020-02-19 vs itself", o.scene, det)


def _flag_row(dataset: str, scene_name: str, grid_scene: Any, det: Detection) -> dict[str, Any]:
    """Flagged shares of a detection without labels, on ``grid_scene``'s grid (its observed pixels)."""
    g = grid_scene.grid
    grid = LabelGrid(g.transform, g.crs, g.shape, np.zeros(g.shape, bool), None)
    p = det.patches
    return {"dataset": dataset, "scene": scene_name, "method": "ecopatch", "n_patches": len(p),
            "types": det.types(), "flagged_any": float(burn(p, grid).mean()),
            "flagged_disturbance": float(burn(select(p, exclude=(GAIN,)), grid).mean()),
            "area_m2_any": float(p["area_m2"].sum()) if len(p) and "area_m2" in p.columns else 0.0,
            "seconds": det.seconds, "cpu_seconds": det.cpu_seconds, "load_before": det.load_before,
            "warnings": det.warnings}


# ---------------------------------------------------------------------------
# Maps
# ---------------------------------------------------------------------------
def _label_shapes(mask: np.ndarray, grid: LabelGrid) -> list[Any]:
    from rasterio.features import shapes
    from shapely.geometry import shape

    if not mask.any():
        return []
    return [shape(g) for g, _ in shapes(mask.astype(np.uint8), mask=mask, transform=grid.transform)]


def _polygon_path(geoms: Iterable[Any]) -> Any:
    """One matplotlib Path of polygons, holes included (rings oriented for the nonzero rule)."""
    import shapely
    from matplotlib.path import Path as MPath

    verts, codes = [], []
    for g in geoms:
        for poly in shapely.get_parts(shapely.orient_polygons(g)):
            if poly.geom_type != "Polygon" or poly.is_empty:
                continue
            for ring in (poly.exterior, *poly.interiors):
                xy = np.asarray(ring.coords)
                verts.append(xy)
                codes.append(np.r_[MPath.MOVETO, np.full(len(xy) - 2, MPath.LINETO), MPath.CLOSEPOLY])
    if not verts:
        return None
    return MPath(np.concatenate(verts), np.concatenate(codes).astype(np.uint8))


def _ring_lines(geoms: Iterable[Any]) -> list[np.ndarray]:
    import shapely

    lines = []
    for g in geoms:
        for poly in shapely.get_parts(g):
            if poly.geom_type == "Polygon":
                lines += [np.asarray(r.coords) for r in (poly.exterior, *poly.interiors)]
    return lines


def write_change_map(path: Path, before: Any, after: Any, patches: Any, grid: LabelGrid, *, title: str,
                     subtitle: str = "", label_name: str = "labelled change",
                     other_name: str | None = None, dpi: int = 130) -> Path:
    """PNG: before and after true colour (:func:`ecopatch.outputs.maps.change_map`), then the patches by type
    with the labels' outlines over them, all on the label grid's extent.

    ``other_name``: where the labels are sampled (Taizhou), the unchanged
    samples are outlined too, under this name.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, PathPatch

    from ecopatch.outputs.maps import CHANGE_COLOURS, change_map

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, cols = grid.shape
    fig = Figure(figsize=(17, 6.2 * max(min(rows / cols, 1.6), 0.6) + 1.0), layout="constrained")
    axs = fig.subplots(1, 3, sharex=True, sharey=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        change_map(before, after, None, bounds=grid.bounds, crs=grid.crs, index=None, lang="en", axes=axs[:2],
                   margin_m=0.0)
    ax = axs[2]
    imgs = axs[1].get_images()
    if imgs:
        arr = np.asarray(imgs[0].get_array(), dtype=float)
        grey = arr[..., :3].mean(axis=-1) if arr.ndim == 3 else arr
        ax.imshow(grey, cmap="gray", extent=imgs[0].get_extent(), alpha=0.45, interpolation="nearest", zorder=0)
    handles = []
    pg = patches.to_crs(grid.crs) if len(patches) else patches
    for t, colour in CHANGE_COLOURS.items():
        sel = pg[pg["change_type"] == t] if len(pg) else pg
        mp = _polygon_path(sel.geometry) if len(sel) else None
        if mp is not None:
            ax.add_patch(PathPatch(mp, facecolor=colour, edgecolor="none", alpha=0.85, zorder=2))
        handles.append(Patch(facecolor=colour, label=f"{t} ({len(sel)})"))
    others = sorted(set(pg["change_type"]) - set(CHANGE_COLOURS)) if len(pg) else []
    for t in others:
        sel = pg[pg["change_type"] == t]
        mp = _polygon_path(sel.geometry)
        if mp is not None:
            ax.add_patch(PathPatch(mp, facecolor="#8000ff", edgecolor="none", alpha=0.85, zorder=2))
        handles.append(Patch(facecolor="#8000ff", label=f"{t} ({len(sel)})"))
    lab = _ring_lines(_label_shapes(grid.truth, grid))
    ax.add_collection(LineCollection(lab, colors="black", linewidths=0.7, zorder=3))
    handles.append(Line2D([], [], color="black", lw=1.0, label=label_name))
    if other_name is not None and grid.valid is not None:
        oth = _ring_lines(_label_shapes(grid.valid & ~grid.truth, grid))
        ax.add_collection(LineCollection(oth, colors="#1f4ed8", linewidths=0.5, zorder=3))
        handles.append(Line2D([], [], color="#1f4ed8", lw=1.0, label=other_name))
    ax.set_xlim(axs[0].get_xlim())
    ax.set_ylim(axs[0].get_ylim())
    ax.set_aspect(axs[0].get_aspect())
    ax.set_title(f"patches by type ({len(pg)}) and label outlines", fontsize=9)
    ax.tick_params(labelleft=False, labelsize=7)
    ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.85)
    fig.suptitle(title + ("\n" + subtitle if subtitle else ""), fontsize=10)
    fig.savefig(path, dpi=dpi)
    return path
