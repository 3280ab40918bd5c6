"""Change detection against real labels: ecopatch vs plain unsupervised baselines, side by side.

Two labelled pairs from ``../shared/data`` (or ``$ECOPATCH_SHARED_DATA``;
nothing is copied into the repository):

* **OSCD Beihai** (``oscd_china/beihai``): Sentinel-2 L1C, 2016-12-09 ->
  2018-03-09, EPSG:4326, one file per band at 10/20/60 m; dense labels of
  *urban* change (``cm/beihai-cm_georef.tif``: 1 = no change, 2 = change).
  Every pixel of the 902 x 772 grid is scored.
* **Taizhou** (``landsat_cd_taizhou_nanjing/taizhou``): Landsat-7 ETM+,
  2000-03-17 -> 2003-02-06, EPSG:32651, 6 reflective bands as uint8 Level-1
  DN (not reflectance); *sampled* labels (4 227 changed, 17 163 unchanged
  pixels of 160 000).  Only labelled pixels are scored.

ecopatch: :func:`ecopatch.detect_changes` with ``within=None`` (the whole
scene), patches rasterised onto the label grid (pixel-centre rule; the
patches follow the analysis grid's pixel edges, which is the label grid for
both pairs) for the change types chosen, scored with
:func:`ecopatch.validation.pixel_scores`.  Settings a user would try:
``thresholds`` "fixed" / "otsu", ``min_area_m2`` 0 / 400, and which change
types count (all disturbance types = everything but ``vegetation_gain``;
construction + bare soil; construction only; everything).

Scene preparation, both labelled in the tables:

* ``as opened``: the files as distributed.  OSCD: ``open_scene(folder,
  sensor="sentinel2_l1c")`` (DN / 10000 = top-of-atmosphere reflectance).
  Taizhou: a :class:`ecopatch.sensors.SensorProfile` for the uint8 DN stack
  with ``scale=1/255`` -- there is no way to reflectance in what was shipped,
  so the values are relative brightness with each band's dark offset (path
  radiance and the sensor's bias) still in them.
* ``DOS``: dark-object subtraction done here, outside ecopatch, on
  temporary copies: per band and date, DN - (0.01th percentile) + a floor of
  100 DN (0.01 reflectance, OSCD) or 1 DN (Taizhou).  This is the crude
  atmospheric correction a user without surface reflectance would apply; it
  removes most of the additive haze that makes TOA soil look like concrete
  to the cover rules.

Baselines, implemented here (no training, no labels used):

* **CVA** -- magnitude of the spectral difference vector, Otsu threshold;
  on the reflectance (DN) as given, and with each band standardised per date
  (z-score), the usual normalisation because CVA is not invariant to gains
  and offsets between dates.  OSCD: the 10 bands at 10/20 m (B02-B08, B8A,
  B11, B12), 20 m bands bilinearly resampled to 10 m; Taizhou: 6 bands.
* IR-MAD (Nielsen 2007) was tried and left out: implemented as published
  (weights = chi-square no-change probability), its statistic drifted above
  the chi-square law even on synthetic pure no-change Gaussian pairs after a
  few iterations (median 12 for 6 bands instead of 5.3), and on Beihai the
  weights collapsed onto < 1 % of the pixels, so any threshold on it was
  arbitrary (F1 0.05-0.33 on Beihai depending on the rule).
* **PCA-k-means** (Celik 2009) -- 4 x 4 neighbourhoods of the z-scored CVA
  magnitude, principal components holding 90 % of the variance, k-means with
  two clusters (fixed seed); the cluster with the larger mean magnitude is
  change.

Run by hand (about 35 s on 2 cores)::

    /work/venv/bin/python benchmarks/bench_change_realdata.py
    /work/venv/bin/python benchmarks/bench_change_realdata.py --json results.json --only oscd

It prints Markdown tables (the source of ``benchmarks/RESULTS.md``).
Deterministic: same numbers on every run.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.features import rasterize

import ecopatch
from ecopatch.sensors import SensorProfile
from ecopatch.validation import pixel_scores

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: Change-type selections scored against the labels.
TYPE_SETS: dict[str, tuple[str, ...]] = {
    "disturbance": ("vegetation_loss", "bare_soil", "construction", "water"),
    "construction+bare": ("construction", "bare_soil"),
    "construction": ("construction",),
    "all incl. gain": ("vegetation_loss", "bare_soil", "construction", "water", "vegetation_gain"),
}

#: Landsat-7 ETM+ Level-1 DN stack as shipped with the Taizhou pair (uint8, band order 1-5, 7).
TAIZHOU_DN = SensorProfile(
    "landsat7_etm_dn",
    "Landsat-7 ETM+ Level-1 DN, 6 reflective bands, uint8 (relative brightness, not reflectance)",
    {"blue": "1", "green": "2", "red": "3", "nir": "4", "swir1": "5", "swir2": "6"},
    order=("blue", "green", "red", "nir", "swir1", "swir2"),
    scale=1 / 255,
    offset=0.0,
    nodata=None,
    res_m=30.0,
)
TAIZHOU_BANDS = {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 6}
OSCD_BASELINE_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")


def shared_data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The real-data folder: ``path``, else ``$ECOPATCH_SHARED_DATA``, else ``../shared/data``."""
    return Path(path or os.environ.get("ECOPATCH_SHARED_DATA") or DEFAULT_DATA)


# ---------------------------------------------------------------------------
# Cases: scenes, labels and the band stacks the baselines use
# ---------------------------------------------------------------------------
@dataclass
class Case:
    """One labelled scene pair prepared one way.

    Attributes
    ----------
    name, prep : str
        Data set and preparation (``"as opened"`` or ``"DOS"``).
    before, after : ecopatch.Scene
        For :func:`ecopatch.detect_changes`.
    truth : ndarray of bool
        Change label on the label grid.
    valid : ndarray of bool or None
        Labelled pixels (None: all).
    transform, crs, shape
        The label grid.
    stack_before, stack_after : ndarray of float64, shape (bands, rows, cols)
        Band values for the baselines, on the label grid.
    """

    name: str
    prep: str
    before: Any
    after: Any
    truth: np.ndarray
    valid: np.ndarray | None
    transform: Any
    crs: Any
    shape: tuple[int, int]
    stack_before: np.ndarray
    stack_after: np.ndarray


def _dark_object_subtract(src: Path, dst: Path, floor: int) -> None:
    """Write ``src`` with each band shifted so its 0.01th-percentile DN becomes ``floor``."""
    with rasterio.open(src) as ds:
        x = ds.read().astype(np.int64)
        prof = ds.profile
        desc = ds.descriptions
        tags = ds.tags()
    dark = np.percentile(x.reshape(x.shape[0], -1), 0.01, axis=1).astype(np.int64)
    hi = np.iinfo(np.dtype(prof["dtype"])).max
    y = np.clip(x - dark[:, None, None] + floor, 1, hi).astype(prof["dtype"])
    with rasterio.open(dst, "w", **prof) as out:
        out.write(y)
        for i, d in enumerate(desc, start=1):
            if d:
                out.set_band_description(i, d)
        out.update_tags(**tags)


def oscd_beihai(root: Path, *, dos: bool = False, tmp: Path | None = None) -> Case:
    """OSCD Beihai as a :class:`Case` (``dos``: dark-object-subtracted copies under ``tmp``)."""
    city = root / "oscd_china" / "beihai"
    folders = [city / "imgs_1", city / "imgs_2"]
    if dos:
        assert tmp is not None
        new = []
        for f in folders:
            out = tmp / "oscd" / f.name
            out.mkdir(parents=True, exist_ok=True)
            for band in sorted(f.glob("*.tif")):
                _dark_object_subtract(band, out / band.name, floor=100)
            new.append(out)
        folders = new
    # The dates are in the file names; in folder mode open_scene only reads the folder
    # name ("imgs_1"), so pass them (see RESULTS.md, library notes).
    before = ecopatch.open_scene(folders[0], sensor="sentinel2_l1c", date="2016-12-09")
    after = ecopatch.open_scene(folders[1], sensor="sentinel2_l1c", date="2018-03-09")
    with rasterio.open(city / "cm" / "beihai-cm_georef.tif") as ds:
        label = ds.read(1)
        transform, crs, shape = ds.transform, ds.crs, ds.shape

    def stack(folder: Path) -> np.ndarray:
        out = []
        for band in OSCD_BASELINE_BANDS:
            (path,) = glob.glob(str(folder / f"*_{band}.tif"))
            with rasterio.open(path) as ds:
                out.append(ds.read(1, out_shape=shape, resampling=Resampling.bilinear).astype(np.float64) * 1e-4)
        return np.stack(out)

    return Case("OSCD Beihai (S2 L1C)", "DOS" if dos else "as opened", before, after, label == 2, None,
                transform, crs, shape, stack(folders[0]), stack(folders[1]))


def taizhou(root: Path, *, dos: bool = False, tmp: Path | None = None) -> Case:
    """The Taizhou Landsat-7 pair as a :class:`Case` (scored on the sampled labels only)."""
    site = root / "landsat_cd_taizhou_nanjing" / "taizhou"
    files = [site / "taizhou_2000-03-17_L7ETM.tif", site / "taizhou_2003-02-06_L7ETM.tif"]
    if dos:
        assert tmp is not None
        (tmp / "taizhou").mkdir(parents=True, exist_ok=True)
        new = []
        for f in files:
            _dark_object_subtract(f, tmp / "taizhou" / f.name, floor=1)
            new.append(tmp / "taizhou" / f.name)
        files = new
    before = ecopatch.open_scene(files[0], sensor=TAIZHOU_DN, bands=TAIZHOU_BANDS)
    after = ecopatch.open_scene(files[1], sensor=TAIZHOU_DN, bands=TAIZHOU_BANDS)
    with rasterio.open(site / "taizhou_ref_change.tif") as ds:
        changed = ds.read(1) == 1
        transform, crs, shape = ds.transform, ds.crs, ds.shape
    with rasterio.open(site / "taizhou_ref_unchanged.tif") as ds:
        unchanged = ds.read(1) == 1
    stacks = []
    for f in files:
        with rasterio.open(f) as ds:
            stacks.append(ds.read().astype(np.float64))
    return Case("Taizhou (L7 ETM+ DN)", "DOS" if dos else "as opened", before, after, changed,
                changed | unchanged, transform, crs, shape, stacks[0], stacks[1])


# ---------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------
def otsu(values: np.ndarray) -> float:
    """Otsu's threshold of the finite values (256-bin histogram)."""
    from skimage.filters import threshold_otsu

    v = np.asarray(values, dtype=np.float64)
    return float(threshold_otsu(v[np.isfinite(v)]))


def standardize(x: np.ndarray) -> np.ndarray:
    """Each band to zero mean and unit variance over the scene (shape (bands, rows, cols))."""
    m = x.mean(axis=(1, 2), keepdims=True)
    s = x.std(axis=(1, 2), keepdims=True)
    return (x - m) / np.where(s > 0, s, 1.0)


def cva_magnitude(before: np.ndarray, after: np.ndarray, *, z: bool) -> np.ndarray:
    """Change vector analysis: Euclidean norm of ``after - before`` per pixel (bands first).

    ``z=True`` standardises each band of each date first.
    """
    if z:
        before, after = standardize(before), standardize(after)
    return np.sqrt(np.sum((after - before) ** 2, axis=0))


def pca_kmeans(diff: np.ndarray, *, h: int = 4, var: float = 0.9, seed: int = 0) -> np.ndarray:
    """Celik (2009): PCA of h x h neighbourhoods of a difference image, then 2-means; True = change."""
    from numpy.lib.stride_tricks import sliding_window_view
    from scipy.cluster.vq import kmeans2

    rows, cols = diff.shape
    blocks = diff[: rows // h * h, : cols // h * h].reshape(rows // h, h, cols // h, h)
    blocks = blocks.transpose(0, 2, 1, 3).reshape(-1, h * h)
    mean = blocks.mean(axis=0)
    evals, evecs = np.linalg.eigh(np.cov(blocks - mean, rowvar=False))
    order = np.argsort(evals)[::-1]
    evals, evecs = evals[order], evecs[:, order]
    s = int(np.searchsorted(np.cumsum(evals) / evals.sum(), var) + 1)
    lo, hi = (h - 1) // 2, h // 2
    padded = np.pad(diff, ((lo, hi), (lo, hi)), mode="reflect")
    feats = sliding_window_view(padded, (h, h)).reshape(rows * cols, h * h)
    feats = (feats - mean) @ evecs[:, :s]
    rng = np.random.default_rng(seed)
    _, lab = kmeans2(feats, 2, minit="++", seed=rng)
    lab = lab.reshape(rows, cols)
    change = int(np.argmax([diff[lab == k].mean() if np.any(lab == k) else -np.inf for k in (0, 1)]))
    return lab == change


def baselines(case: Case) -> dict[str, np.ndarray]:
    """Binary change maps of the baselines on ``case`` (label grid)."""
    out = {}
    for z in (False, True):
        mag = cva_magnitude(case.stack_before, case.stack_after, z=z)
        out["CVA z-scored" if z else "CVA as given"] = mag > otsu(mag)
    out["PCA-k-means"] = pca_kmeans(cva_magnitude(case.stack_before, case.stack_after, z=True))
    return out


# ---------------------------------------------------------------------------
# ecopatch
# ---------------------------------------------------------------------------
def rasterise_types(patches: Any, case: Case) -> dict[str, np.ndarray]:
    """One boolean mask per change type on the label grid (pixel-centre rule)."""
    patches = patches.to_crs(case.crs)
    masks = {}
    for t in TYPE_SETS["all incl. gain"]:
        geoms = patches.geometry[patches["change_type"] == t].to_numpy()
        if len(geoms):
            masks[t] = rasterize([(g, 1) for g in geoms], out_shape=case.shape, transform=case.transform,
                                 fill=0, dtype="uint8").astype(bool)
        else:
            masks[t] = np.zeros(case.shape, dtype=bool)
    return masks


def detect(case: Case, **kw: Any) -> tuple[Any, float]:
    """``ecopatch.detect_changes`` over the whole scene; returns the patches and the seconds taken."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # rasterio 1.4 warns that an in-memory warp source "has no geotransform" before it sets one
        warnings.filterwarnings("ignore", message="Dataset has no geotransform")
        patches = ecopatch.detect_changes(case.before, case.after, within=None, progress=False, **kw)
    return patches, time.perf_counter() - t0


def score(mask: np.ndarray, case: Case) -> dict[str, float]:
    """:func:`pixel_scores` of a change mask, plus the share of scored pixels flagged."""
    s = pixel_scores(mask, case.truth, valid=case.valid)
    v = np.ones(case.shape, bool) if case.valid is None else case.valid
    s["flagged"] = float(mask[v].mean())
    return s


BASELINE_SETTING = {
    "CVA as given": "Otsu",
    "CVA z-scored": "Otsu",
    "PCA-k-means": "h=4, 90 % var., k=2",
}

SETTINGS: tuple[dict[str, Any], ...] = (
    {"thresholds": "fixed", "min_area_m2": 400.0},
    {"thresholds": "fixed", "min_area_m2": 0.0},
    {"thresholds": "otsu", "min_area_m2": 400.0},
    {"thresholds": "otsu", "min_area_m2": 0.0},
)


def run_case(case: Case, settings: tuple[dict[str, Any], ...] = SETTINGS) -> list[dict[str, Any]]:
    """Score every ecopatch setting and type selection, and every baseline, on one case."""
    rows: list[dict[str, Any]] = []
    for kw in settings:
        patches, secs = detect(case, **kw)
        masks = rasterise_types(patches, case)
        counts = patches["change_type"].value_counts().to_dict()
        for sel, types in TYPE_SETS.items():
            m = np.zeros(case.shape, dtype=bool)
            for t in types:
                m |= masks[t]
            rows.append({"data": case.name, "prep": case.prep, "method": "ecopatch",
                         "setting": f"thresholds={kw['thresholds']}, min_area_m2={kw['min_area_m2']:g}",
                         "types": sel, "n_patches": int(sum(counts.get(t, 0) for t in types)),
                         "seconds": secs, **score(m, case)})
    for name, m in baselines(case).items():
        rows.append({"data": case.name, "prep": case.prep, "method": name, "setting": BASELINE_SETTING[name],
                     "types": "-", "n_patches": None, "seconds": None, **score(m, case)})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    head = ("| data | prep | method | setting | types | patches | flagged | precision | recall | F1 | IoU "
            "| OA | kappa |\n|" + " --- |" * 13)
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['prep']} | {r['method']} | {r['setting']} | {r['types']} | "
            f"{'' if r['n_patches'] is None else r['n_patches']} | {r['flagged']:.3f} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['f1']:.3f} | {r['iou']:.3f} | {r['overall_accuracy']:.3f} | "
            f"{r['kappa']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="shared data folder (default $ECOPATCH_SHARED_DATA or ../shared/data)")
    ap.add_argument("--only", choices=["oscd", "taizhou"], help="run one data set only")
    ap.add_argument("--json", help="also write all rows to this JSON file")
    args = ap.parse_args(argv)
    root = shared_data_dir(args.data)
    if not root.is_dir():
        print(f"no real data at {root}; set ECOPATCH_SHARED_DATA or pass --data")
        return 0
    loaders: Mapping[str, Callable[..., Case]] = {"oscd": oscd_beihai, "taizhou": taizhou}
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for key, load in loaders.items():
            if args.only and key != args.only:
                continue
            for dos in (False, True):
                case = load(root, dos=dos, tmp=Path(tmp))
                rows += run_case(case)
    print(f"ecopatch {ecopatch.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"{time.perf_counter() - t0:.0f} s in all\n")
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
