"""Sample data on disk: Sentinel-2 L2A-like product folders, GeoPackages and truth files.

The edge around :mod:`ecopatch.data.synthetic`: :func:`write_scene` writes a
synthetic scene as a user would receive it (one shrunk ``.SAFE`` folder per
date with GeoTIFF bands and a genuine-looking ``MTD_MSIL2A.xml``, the mine and
reserve layers as EPSG:4490 GeoPackages with Chinese attributes, a
JPEG-compressed drone orthomosaic in EPSG:4549) plus the truth the accuracy
tests compare against.  :func:`load_sample_data` finds the committed
``sample_data/`` folder of a source checkout.

Regenerate the committed sample with::

    python -m ecopatch.data.datasets sample_data --size small --overwrite

Examples
--------
>>> from ecopatch.data.datasets import load_sample_data
>>> data = load_sample_data()            # doctest: +SKIP
>>> data.band("after", "B04").name       # doctest: +SKIP
'T50RQU_20240912T023529_B04_10m.tif'
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ecopatch.data.synthetic import (
    BANDS_10M,
    BANDS_20M,
    DATES,
    RASTERS,
    SCL_CLASSES,
    ProductMeta,
    SyntheticScene,
    make_drone,
    make_scene,
)
from ecopatch.data.synthetic.files import atomic, band_profile, rasters_in_place
from ecopatch.data.synthetic.metadata import mtd_tl_xml, mtd_xml
from ecopatch.errors import ConfigError, InputDataError, OutputError, OutputExistsError
from ecopatch.geo.grid import Window

__all__ = [
    "SAMPLE_MIN_AREA_M2",
    "SIZES",
    "SampleData",
    "load_sample_data",
    "make_sample_data",
    "write_repeat_product",
    "write_scene",
]

log = logging.getLogger(__name__)

#: Named scene sizes, ``(rows, cols)`` of the 10 m grid.
SIZES: dict[str, tuple[int, int]] = {
    "small": (400, 500),
    "medium": (1500, 1500),
    "tile": (10980, 10980),
}

#: The minimum mapping unit (m²) the sample scene is made for: its encroachments run from 400 m² in
#: every zone and its decoys are smaller (as its ``ecopatch.toml`` says).  The library's default on
#: 10 m imagery is 1000 m², 400 m² in core zones (:class:`ecopatch.options.DetectOptions`).
SAMPLE_MIN_AREA_M2: float = 400.0

_DEFAULT_SEED = 20240912
_WINDOW = 1024  # 10 m pixels per written window (a multiple of the 256 render tile)


@dataclass(frozen=True)
class SampleData:
    """Paths of a written scene.

    Attributes
    ----------
    root : Path
        The folder everything is in.
    dates : dict of str to datetime.date
        ``{"before": …, "after": …}`` acquisition dates.
    products : dict of str to Path
        Per date, the ``.SAFE`` product folder.
    metadata : dict of str to Path
        Per date, its ``MTD_MSIL2A.xml``.
    bands : dict of str to dict of str to Path
        Per date, GeoTIFF per raster (B02, B03, B04, B08 at 10 m; B11, B12,
        SCL at 20 m), EPSG:32650, nodata 0.
    mines : Path
        ``mines.gpkg`` (layer "mines", EPSG:4490, Chinese attributes; one
        geometry deliberately invalid).
    reserves : Path
        ``reserves.gpkg`` (layer "reserves", EPSG:4490, one row per zone).
    drone : Path or None
        ``drone_<mine id>_20240912.tif`` (RGB, EPSG:4549, JPEG/YCbCr with an
        internal mask), None when not written.
    restoration_truth : Path
        ``truth/restoration_truth.csv`` (UTF-8), one row per mine, areas in m².
    encroachments : Path
        ``truth/encroachments.gpkg`` (layer "encroachments", EPSG:32650).
    clouds : Path
        ``truth/clouds.gpkg`` (layers "clouds" and "nodata", EPSG:32650).
    scene_json : Path
        ``truth/scene.json``: generator parameters, seed, grids, products.
    pseudo_changes : Path or None
        ``truth/pseudo_changes.gpkg`` (layer "pseudo_changes", EPSG:32650):
        seasonal fields and brightness changes, when the scene has tricks.

    Notes
    -----
    A scene with tricks (:func:`ecopatch.data.synthetic.make_scene`) may hold
    more acquisitions than "before" and "after" (keyed by ISO date) and
    products other than Sentinel-2 L2A: then ``products[date]`` is the
    L1C ``.SAFE`` folder, the Landsat product folder or the Gaofen GeoTIFF,
    ``metadata[date]`` its ``MTD_MSIL1C.xml``, ``_MTL.txt`` or None, and
    ``bands[date]`` names its rasters (``B01`` … ``B12``; ``SR_B1`` …
    ``QA_PIXEL``; ``B1`` … ``B4``, all in the one Gaofen file).
    """

    root: Path
    dates: dict[str, _dt.date]
    products: dict[str, Path]
    metadata: dict[str, Path | None]
    bands: dict[str, dict[str, Path]]
    mines: Path
    reserves: Path
    drone: Path | None
    restoration_truth: Path
    encroachments: Path
    clouds: Path
    scene_json: Path
    pseudo_changes: Path | None = None

    def band(self, date: str, band: str) -> Path:
        """Path of one raster of one date, e.g. ``band("after", "B04")``."""
        try:
            return self.bands[date][band]
        except KeyError:
            raise InputDataError(
                f"no raster {band!r} for date {date!r} in {self.root}; "
                f"dates {sorted(self.bands)}, rasters {list(self.bands.get(date) or RASTERS)}"
            ) from None

    def files(self) -> list[Path]:
        """Every file of the sample (bands, metadata, layers, truth)."""
        out = [p for p in self.metadata.values() if p is not None]
        for d in self.bands.values():
            out.extend(d.values())
        out += [self.mines, self.reserves, self.restoration_truth, self.encroachments, self.clouds,
                self.scene_json]
        if self.drone is not None:
            out.append(self.drone)
        if self.pseudo_changes is not None:
            out.append(self.pseudo_changes)
        return list(dict.fromkeys(out))  # a multi-band product file names several bands


# ---------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------


def _product_paths(root: Path, p: ProductMeta) -> tuple[Path, Path, dict[str, Path]]:
    safe = root / f"{p.product_id}.SAFE"
    img = safe / "GRANULE" / p.granule_id / "IMG_DATA"
    bands = {b: img / "R10m" / f"{p.file_stem}_{b}_10m.tif" for b in BANDS_10M}
    bands.update({b: img / "R20m" / f"{p.file_stem}_{b}_20m.tif" for b in (*BANDS_20M, "SCL")})
    return safe, safe / "MTD_MSIL2A.xml", bands


def _layout(root: Path, scene: SyntheticScene, drone: bool) -> SampleData:
    from ecopatch.data.synthetic import products as other

    products: dict[str, Path] = {}
    metadata: dict[str, Path | None] = {}
    bands: dict[str, dict[str, Path]] = {}
    for d in scene.dates:
        if other.sensor_of(scene, d) == "sentinel2_l2a":
            products[d], metadata[d], bands[d] = _product_paths(root, scene.products[d])
        else:  # the world's tricks: another product (ecopatch.data.synthetic.products)
            products[d], metadata[d], bands[d] = other.layout(root, scene, d)
    drone_path = None
    if drone and scene.drone_mine_id:
        drone_path = root / f"drone_{scene.drone_mine_id}_{scene.dates['after']:%Y%m%d}.tif"
    truth = root / "truth"
    return SampleData(
        root=root, dates=dict(scene.dates), products=products, metadata=metadata, bands=bands,
        mines=root / "mines.gpkg", reserves=root / "reserves.gpkg", drone=drone_path,
        restoration_truth=truth / "restoration_truth.csv", encroachments=truth / "encroachments.gpkg",
        clouds=truth / "clouds.gpkg", scene_json=truth / "scene.json",
        pseudo_changes=truth / "pseudo_changes.gpkg" if scene.tricks is not None else None,
    )


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------


def write_scene(
    scene: SyntheticScene,
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    drone: bool = True,
) -> SampleData:
    """Write a synthetic scene as Sentinel-2 L2A-like products, GeoPackages and truth files.

    Parameters
    ----------
    scene : SyntheticScene
        From :func:`ecopatch.data.synthetic.make_scene`.
    out_dir : path-like
        Folder to write into (created if missing).  Files of other names in it
        are left alone.
    overwrite : bool
        Replace files that exist; otherwise :class:`OutputExistsError`.
    drone : bool
        Also render and write the drone orthomosaic of ``scene.drone_mine_id``.

    Returns
    -------
    SampleData
        The paths written.

    Raises
    ------
    OutputExistsError
        If a target file exists and ``overwrite`` is False (nothing is written).
    OutputError
        If a file cannot be written.

    Notes
    -----
    Bands are written window by window (1024 × 1024 pixels of 10 m), so a
    10980 × 10980 scene needs memory for a few windows only.  Each file is
    written under a temporary name and moved into place with :func:`os.replace`.
    """
    root = Path(out_dir)
    data = _layout(root, scene, drone)
    existing = [p for p in data.files() if p.exists()]
    if existing and not overwrite:
        names = ", ".join(str(p.relative_to(root)) for p in existing[:3])
        more = f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        raise OutputExistsError(
            f"{len(existing)} output file(s) already exist in {root} ({names}{more}); "
            "pass overwrite=True (or --overwrite) to replace them"
        )
    try:
        from ecopatch.data.synthetic import products as other

        for d in scene.dates:
            if other.sensor_of(scene, d) == "sentinel2_l2a":
                _write_product(scene, d, data)
            else:
                other.write_product(scene, d, root)
        _write_layers(scene, data)
        _write_truth(scene, data, drone)
        if data.drone is not None:
            _write_drone(scene, data.drone)
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"cannot write the sample data to {root}: {exc}") from exc
    log.info("wrote synthetic scene (seed %d, %s) to %s", scene.seed, scene.grid.shape, root)
    return data


def _write_product(scene: SyntheticScene, date: str, data: SampleData) -> None:
    import rasterio

    prod = scene.products[date]
    paths = data.bands[date]
    mtd = data.metadata[date]
    assert mtd is not None  # an L2A product has its MTD_MSIL2A.xml
    with atomic(mtd) as tmp:
        tmp.write_text(mtd_xml(scene, date, paths, data.products[date]), encoding="utf-8")
    tl = data.products[date] / "GRANULE" / prod.granule_id / "MTD_TL.xml"
    with atomic(tl) as tmp:
        tmp.write_text(mtd_tl_xml(scene, date), encoding="utf-8")
    with rasters_in_place(paths.values()) as (tmps, dsts):
        for b, p in paths.items():
            tmps[p].parent.mkdir(parents=True, exist_ok=True)
            g = scene.band_grid(b)
            dst = rasterio.open(tmps[p], "w", **band_profile(g, "uint8" if b == "SCL" else "uint16"))
            dsts[b] = dst
            dst.set_band_description(1, b)
        for win in scene.grid.chunks(_WINDOW):
            arrays = scene.render_window(date, win)
            w20 = Window(row_off=win.row_off // 2, col_off=win.col_off // 2,
                         height=(win.height + 1) // 2, width=(win.width + 1) // 2)
            for b, arr in arrays.items():
                target = win if b in BANDS_10M else w20
                dsts[b].write(arr, 1, window=target.to_rasterio())


def _write_gpkg(path: Path, layers: Sequence[tuple[str, Any]]) -> None:
    with atomic(path) as tmp:
        for name, gdf in layers:
            gdf.to_file(tmp, layer=name, driver="GPKG", engine="pyogrio")


def _write_layers(scene: SyntheticScene, data: SampleData) -> None:
    _write_gpkg(data.mines, [("mines", scene.mines_source)])
    _write_gpkg(data.reserves, [("reserves", scene.reserves.to_crs("EPSG:4490"))])


def _write_truth(scene: SyntheticScene, data: SampleData, drone: bool) -> None:
    from ecopatch.vector.tables import write_csv

    with atomic(data.restoration_truth) as tmp:
        t = scene.restoration_truth
        digits = {c: (6 if c in ("restoration_rate", "cloud_fraction") else 3)
                  for c in t.columns if t[c].dtype.kind == "f"}
        write_csv(t.round(digits), tmp, bom=False)
    _write_gpkg(data.encroachments, [("encroachments", scene.encroachments)])
    _write_gpkg(data.clouds, [("clouds", scene.clouds), ("nodata", scene.nodata)])
    if data.pseudo_changes is not None:
        _write_gpkg(data.pseudo_changes, [("pseudo_changes", scene.pseudo_changes)])
    with atomic(data.scene_json) as tmp:
        tmp.write_text(json.dumps(_scene_info(scene, data, drone), ensure_ascii=False, indent=2),
                       encoding="utf-8")


def _scene_info(scene: SyntheticScene, data: SampleData, drone: bool) -> dict[str, Any]:
    from ecopatch import __version__
    from ecopatch.data.synthetic import MATERIALS

    params = asdict(scene.params)
    tricks: dict[str, Any] = {}
    if scene.tricks is not None:
        from ecopatch.data.synthetic.tricks import cloud_geometry

        acq = scene.acquisitions.copy()
        acq["date"] = acq["date"].astype(str)
        tricks = {"tricks": scene.tricks.wanted.as_dict(), "acquisitions": acq.to_dict(orient="records"),
                  "cloud_geometry": cloud_geometry(),
                  "python": f"ecopatch.data.datasets.make_sample_data(OUT_DIR, size={_size_name(scene)!r}, "
                            f"seed={scene.seed}, **tricks)"}

    def grid_info(g: Any) -> dict[str, Any]:
        return {"shape": list(g.shape), "transform": list(g.transform)[:6], "crs": "EPSG:32650",
                "bounds": list(g.bounds)}

    return {
        "generator": "ecopatch.data.synthetic.make_scene",
        "ecopatch_version": __version__,
        "command": f"python -m ecopatch.data.datasets OUT_DIR --size {_size_name(scene)} --seed {scene.seed}",
        "params": params,
        "grid_10m": grid_info(scene.grid),
        "grid_20m": grid_info(scene.grid20),
        "dates": {d: v.isoformat() for d, v in scene.dates.items()},
        "products": {
            d: {
                "product_id": p.product_id, "spacecraft": p.spacecraft,
                "sensing_time": p.sensing_time.isoformat(), "processing_baseline": p.processing_baseline,
                "quantification_value": p.quantification_value, "add_offset": p.add_offset,
                "reflectance": "(DN + add_offset) / quantification_value; DN 0 = nodata",
            }
            for d, p in scene.products.items()
        },
        "drone_mine_id": scene.drone_mine_id if drone else None,
        "truth_crs": "EPSG:32650 (encroachments, clouds); mines/reserves GeoPackages EPSG:4490",
        "areas": "true ground (geodesic) areas in m², ecopatch.geo.geodesy.geodesic_area_m2",
        "scl_classes": {str(k): v for k, v in SCL_CLASSES.items()},
        "materials": [
            {"id": i, "key": m.key, "zh": m.zh, "group": m.group,
             "reflectance_B02_B03_B04_B08_B11_B12": list(m.spectrum)}
            for i, m in enumerate(MATERIALS)
        ],
        "counts": {
            "mines": len(scene.mines), "reserve_zones": len(scene.reserves),
            "encroachments": int((~scene.encroachments["is_decoy"]).sum()) if len(scene.encroachments) else 0,
            "decoys": int(scene.encroachments["is_decoy"].sum()) if len(scene.encroachments) else 0,
        },
        "licence": "CC0-1.0 (generated data)",
        **tricks,
    }


def _size_name(scene: SyntheticScene) -> str:
    for name, shape in SIZES.items():
        if tuple(scene.grid.shape) == shape:
            return name
    return f"{scene.grid.height}x{scene.grid.width}"


def _write_drone(scene: SyntheticScene, path: Path) -> None:
    import rasterio
    from rasterio.enums import ColorInterp, Resampling

    ortho = make_drone(scene)
    g = ortho.grid
    block = 512 if min(g.shape) >= 512 else 256
    profile = {
        "driver": "GTiff", "width": g.width, "height": g.height, "count": 3, "dtype": "uint8",
        "crs": g.crs.to_wkt(), "transform": g.transform, "tiled": True, "blockxsize": block,
        "blockysize": block, "compress": "JPEG", "photometric": "YCBCR", "jpeg_quality": 85,
        "interleave": "pixel",
    }
    levels = [f for f in (2, 4, 8, 16, 32) if min(g.shape) / f >= 128]
    with atomic(path) as tmp, rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True, COMPRESS_OVERVIEW="JPEG",
                                           PHOTOMETRIC_OVERVIEW="YCBCR", JPEG_QUALITY_OVERVIEW=85,
                                           INTERLEAVE_OVERVIEW="PIXEL"):
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(ortho.rgb)
            dst.write_mask(ortho.alpha)
            dst.colorinterp = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
            for i, name in enumerate(("red", "green", "blue"), start=1):
                dst.set_band_description(i, name)
            dst.update_tags(MINE_ID=ortho.mine_id, ACQUISITION_DATE=scene.dates[ortho.date].isoformat(),
                            GSD_M=f"{g.res[0]:g}", SOURCE="ecopatch.data.synthetic.make_drone")
            if levels:
                dst.build_overviews(levels, Resampling.average)


# ---------------------------------------------------------------------------
# Front doors
# ---------------------------------------------------------------------------


def _resolve_size(size: str | tuple[int, int] | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, str):
        if size in SIZES:
            return SIZES[size]
        parts = size.lower().replace("×", "x").split("x")
        if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
            return (int(parts[0]), int(parts[1]))
        raise ConfigError(f"unknown size {size!r}; use one of {sorted(SIZES)} or 'ROWSxCOLS'")
    try:
        rows, cols = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"size must be a name ({sorted(SIZES)}) or (rows, cols), got {size!r}") from None
    return (rows, cols)


def make_sample_data(
    out_dir: str | os.PathLike[str],
    *,
    size: str | tuple[int, int] = "small",
    seed: int = _DEFAULT_SEED,
    drone: bool = True,
    overwrite: bool = False,
    **scene_kwargs: Any,
) -> SampleData:
    """Generate a synthetic scene and write it (:func:`make_scene` + :func:`write_scene`).

    Parameters
    ----------
    out_dir : path-like
        Folder to write into.
    size : {"small", "medium", "tile"} or tuple of int
        "small" = 400 × 500 pixels of 10 m (4 × 5 km, the committed sample),
        "medium" = 1500 × 1500, "tile" = 10980 × 10980 (a full MGRS tile),
        or ``(rows, cols)``.
    seed : int
        Seed of the scene (the committed sample uses 20240912).
    drone : bool
        Also write the drone orthomosaic.
    overwrite : bool
        Replace existing files.
    **scene_kwargs
        Passed to :func:`ecopatch.data.synthetic.make_scene` (``n_mines=`` …),
        including the world's tricks: ``seasonal_cropland=``,
        ``brightness_changes=``, ``haze=``, ``dates=``, ``history=`` and
        ``sensors=`` (a date written as Sentinel-2 L1C, Landsat 8/9 C2 L2 or
        Gaofen-1 WFV); their truth goes to ``truth/pseudo_changes.gpkg`` and
        ``truth/scene.json``.

    Returns
    -------
    SampleData

    Examples
    --------
    A winter after date over seasonal cropland, written as Sentinel-2 L1C
    (top of atmosphere, 13 bands, no cloud mask):

    >>> data = make_sample_data("tricky", seasonal_cropland=0.8,          # doctest: +SKIP
    ...                         dates={"after": "2024-12-10"}, sensors={"after": "sentinel2_l1c"})
    >>> data.products["after"].name                                       # doctest: +SKIP
    'S2B_MSIL1C_20241210T023529_N0510_R089_T50RQU_20241210T042705.SAFE'
    """
    scene = make_scene(shape=_resolve_size(size), seed=seed, **scene_kwargs)
    return write_scene(scene, out_dir, overwrite=overwrite, drone=drone)


def _checkout_sample_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "sample_data"


def load_sample_data(path: str | os.PathLike[str] | None = None) -> SampleData:
    """Find written sample data and return its paths.

    Parameters
    ----------
    path : path-like, optional
        Folder written by :func:`write_scene`; default the committed
        ``sample_data/`` folder of the source checkout ecopatch runs from.

    Returns
    -------
    SampleData

    Raises
    ------
    InputDataError
        If the folder is missing or holds no complete sample.
    """
    root = Path(path) if path is not None else _checkout_sample_dir()
    hint = (f"generate it with `ecopatch demo {root}`, `python -m ecopatch.data.datasets {root}` or "
            f"ecopatch.data.datasets.make_sample_data({str(root)!r})")
    if not root.is_dir():
        raise InputDataError(f"no ecopatch sample data: folder {root} does not exist; {hint}")
    safes = sorted(root.glob("*.SAFE"))
    if len(safes) != 2:
        raise InputDataError(
            f"no complete ecopatch sample data in {root}: expected 2 Sentinel-2 .SAFE folders, "
            f"found {len(safes)}; {hint}"
        )
    by_date = sorted(safes, key=lambda p: p.name.split("_")[2])
    products: dict[str, Path] = {}
    metadata: dict[str, Path | None] = {}
    bands: dict[str, dict[str, Path]] = {}
    dates: dict[str, _dt.date] = {}
    for d, safe in zip(DATES, by_date):
        products[d] = safe
        metadata[d] = safe / "MTD_MSIL2A.xml"
        stamp = safe.name.split("_")[2]
        dates[d] = _dt.date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8]))
        found = {}
        for b in RASTERS:
            res = "10m" if b in BANDS_10M else "20m"
            hits = sorted(safe.glob(f"GRANULE/*/IMG_DATA/R{res}/*_{b}_{res}.tif"))
            if hits:
                found[b] = hits[0]
        bands[d] = found
    drones = sorted(root.glob("drone_*.tif"))
    truth = root / "truth"
    data = SampleData(
        root=root, dates=dates, products=products, metadata=metadata, bands=bands,
        mines=root / "mines.gpkg", reserves=root / "reserves.gpkg", drone=drones[0] if drones else None,
        restoration_truth=truth / "restoration_truth.csv", encroachments=truth / "encroachments.gpkg",
        clouds=truth / "clouds.gpkg", scene_json=truth / "scene.json",
    )
    missing = [p for p in data.files() if not p.exists()]
    missing += [Path(f"{d}:{b}") for d in DATES for b in RASTERS if b not in bands[d]]
    if missing:
        names = ", ".join(str(p) for p in missing[:3])
        raise InputDataError(f"incomplete ecopatch sample data in {root}: missing {names}; {hint}")
    return data


# ---------------------------------------------------------------------------
# Another date of the same ground
# ---------------------------------------------------------------------------
#: Reflectance of bare soil (B02, B03, B04, B08, B11, B12): the generator's ``bare_soil`` material.
_BARE_SOIL = {"B02": 0.075, "B03": 0.105, "B04": 0.17, "B08": 0.23, "B11": 0.31, "B12": 0.25}


def write_repeat_product(
    data: SampleData,
    date: _dt.date | str,
    *,
    like: str = "after",
    out_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    noise: float = 0.004,
    gain: float = 1.0,
    offset: float = 0.0,
    cleared: Mapping[str, float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write one more Sentinel-2 product showing the ground of ``like`` again, at another date.

    For runs over several dates (a mine's history, 一矿一档): the product is
    the ``like`` product's folder with every name and metadata date moved to
    ``date``, and its reflectance re-observed: ``gain · ρ + offset`` plus
    fresh Gaussian noise of ``noise`` (reflectance) per band and pixel.
    Vegetation inside some mines can be cleared to bare soil, to show a
    loss (退化/反弹).  Cloud masks (SCL) and no data are those of ``like``.

    Parameters
    ----------
    data : SampleData
        From :func:`write_scene` / :func:`load_sample_data`.
    date : datetime.date or str
        Acquisition date of the new product (``YYYY-MM-DD``).
    like : {"after", "before"}
        Which date's ground to show again.
    out_dir : path-like, optional
        Folder to write the ``.SAFE`` folder into (default ``data.root``).
    seed : int
        Seed of the noise.
    noise : float
        Standard deviation of the added noise, reflectance (0-1).
    gain, offset : float
        Radiometric difference of the new date (unitless, reflectance).
    cleared : mapping of str to float, optional
        Mine ID (矿山编号) -> share (0-1] of the mine, from its west edge,
        whose pixels become bare soil (pixel centres inside; soil texture
        and noise added).
    overwrite : bool
        Replace the product if it exists.

    Returns
    -------
    Path
        The new ``.SAFE`` folder.

    Raises
    ------
    OutputExistsError
        The product exists and ``overwrite`` is False.
    InputDataError
        An unknown mine ID in ``cleared``, or a share outside (0, 1].

    Examples
    --------
    >>> data = load_sample_data()                                           # doctest: +SKIP
    >>> write_repeat_product(data, "2025-09-15", cleared={"YH-KS-004": 0.5})  # doctest: +SKIP
    PosixPath('.../S2B_MSIL2A_20250915T023529_N0510_R089_T50RQU_20250915T061020.SAFE')
    """
    import shutil
    import warnings

    import numpy as np
    import rasterio
    from rasterio.features import geometry_mask
    from shapely.geometry import box

    from ecopatch.errors import GeometryRepairedWarning
    from ecopatch.geo.geodesy import geometries_in
    from ecopatch.raster.scene import open_scene
    from ecopatch.vector.layers import read_patches

    if like not in DATES:
        raise ConfigError(f"like={like!r}; use one of {list(DATES)}")
    new = _dt.date.fromisoformat(date) if isinstance(date, str) else date
    old = data.dates[like]
    src = data.products[like]
    stamp_old, stamp_new = f"{old:%Y%m%d}", f"{new:%Y%m%d}"
    dst = Path(out_dir or data.root) / src.name.replace(stamp_old, stamp_new)
    if dst.exists():
        if not overwrite:
            raise OutputExistsError(f"{dst} exists; pass overwrite=True to replace it")
        shutil.rmtree(dst)
    cleared = dict(cleared or {})
    mines = None
    if cleared:
        with warnings.catch_warnings():  # the sample's bow-tie mine, repaired on purpose
            warnings.simplefilter("ignore", GeometryRepairedWarning)
            mines = read_patches(data.mines, id_field="矿山编号")
        unknown = sorted(set(cleared) - set(mines["patch_id"].astype(str)))
        if unknown:
            raise InputDataError(f"cleared: no mine {unknown} in {data.mines}")
        for pid, share in cleared.items():
            if not 0.0 < float(share) <= 1.0:
                raise InputDataError(f"cleared[{pid!r}] = {share}: give a share of the mine in (0, 1]")
        mines = mines[mines["patch_id"].astype(str).isin(cleared)]
    scene = open_scene(src)
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
    shutil.copytree(src, tmp)
    try:
        for path in sorted(tmp.rglob("*"), key=lambda p: -len(p.parts)):  # deepest first
            if path.suffix.lower() == ".xml":
                text = path.read_text(encoding="utf-8")
                path.write_text(text.replace(stamp_old, stamp_new).replace(old.isoformat(), new.isoformat()),
                                encoding="utf-8")
            if stamp_old in path.name:
                path.rename(path.with_name(path.name.replace(stamp_old, stamp_new)))
        rng = np.random.default_rng(seed)
        for name, ref in scene.band_refs:
            band_id = ref.band_id or name
            rel = Path(ref.path).resolve().relative_to(src.resolve())
            target = tmp / Path(*(part.replace(stamp_old, stamp_new) for part in rel.parts))
            with rasterio.open(target) as ds:
                profile = ds.profile
                dn = ds.read(1)
                transform, crs = ds.transform, ds.crs
            bad = dn == 0
            rho = dn.astype(np.float64) * ref.scale + ref.offset
            rho = gain * rho + offset + rng.normal(0.0, noise, rho.shape)
            soil = _BARE_SOIL.get(band_id)
            if soil is not None and mines is not None:
                for pid, g in zip(mines["patch_id"].astype(str), geometries_in(mines, crs, what="mines")):
                    x0, _, x1, _ = g.bounds
                    share = float(cleared[pid])
                    part = g if share >= 1.0 else g.intersection(box(x0 - 1.0, -1e12, x0 + share * (x1 - x0), 1e12))
                    inside = geometry_mask([part], out_shape=dn.shape, transform=transform, invert=True)
                    texture = 1.0 + rng.normal(0.0, 0.06, dn.shape)
                    rho = np.where(inside, soil * texture + rng.normal(0.0, noise, dn.shape), rho)
            out = np.clip(np.rint((rho - ref.offset) / ref.scale), 1, np.iinfo(profile["dtype"]).max - 1)
            out = np.where(bad, 0, out).astype(profile["dtype"])
            with rasterio.open(target, "r+") as ds:
                ds.write(out, 1)
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %s: the %s ground again on %s (noise %.4f, gain %.3f, offset %.4f, cleared %s)", dst,
             like, new, noise, gain, offset, sorted(cleared) or "none")
    return dst


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ecopatch.data.datasets",
        description="Write ecopatch's synthetic sample data (two Sentinel-2 L2A-like products, "
                    "mine and reserve GeoPackages, a drone orthomosaic and the truth).",
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write into")
    parser.add_argument("--size", default="small",
                        help="small (400x500, default), medium (1500x1500), tile (10980x10980) or ROWSxCOLS")
    parser.add_argument("--seed", type=int, default=_DEFAULT_SEED, help=f"scene seed (default {_DEFAULT_SEED})")
    parser.add_argument("--no-drone", action="store_true", help="skip the drone orthomosaic")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pyogrio").setLevel(logging.WARNING)
    try:
        data = make_sample_data(args.out_dir, size=args.size, seed=args.seed, drone=not args.no_drone,
                                overwrite=args.overwrite)
    except (InputDataError, ConfigError, OutputError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    total = 0
    for p in data.files():
        size = p.stat().st_size
        total += size
        print(f"{size / 1e6:8.3f} MB  {p.relative_to(data.root)}")
    print(f"{total / 1e6:8.3f} MB  total in {data.root}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
