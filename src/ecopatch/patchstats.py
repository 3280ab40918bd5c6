"""Per-patch statistics of any raster: class areas and means, exact at patch edges, read only where needed.

The general tool under the restoration assessment, for users who bring their
own classification or index raster: for each polygon, the true ground area
(m²) of each class and the coverage-weighted mean of a band, counting the
exact share of every edge pixel (as exactextract does).  Only the blocks of
the raster that the polygons touch are read, so a few patches on a full
Sentinel-2 tile cost a few blocks, and the work runs on Dask like the rest of
ecopatch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely

from .errors import ConfigError, InputDataError
from .geodesy import as_crs, geodesic_area_m2
from .grid import Grid, Window
from .tiling import PatchSums, Scheduler, add_partials, blocks_touching, run_tasks
from .zonal import coverage_table, zonal_sums

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["patch_statistics"]


@dataclass(frozen=True)
class _Task:
    path: str
    band: int
    grid: Grid
    window: Window
    geometries: tuple[Any, ...]
    index: np.ndarray
    classes: tuple[float, ...]
    nodata: float | None


def _block(task: _Task) -> PatchSums:
    from .io.raster import _read_block

    w = task.window
    data = _read_block(task.path, task.band, task.grid, w, fill=np.nan).astype(np.float64)
    if task.nodata is not None and not np.isnan(task.nodata):
        data[data == task.nodata] = np.nan
    area = task.grid.cell_area_m2(w)
    cov = coverage_table(list(task.geometries), task.grid, window=w, on_invalid="ignore")
    layers: dict[str, np.ndarray] = {"value": data}
    for i, c in enumerate(task.classes):
        layers[f"c{i}"] = np.where(np.isnan(data), np.nan, (data == c).astype(np.float64))
    sums = zonal_sums(cov, layers, window=w, weights=area)
    cols = [sums["w_value"], sums["sum_value"]] + [sums[f"sum_c{i}"] for i in range(len(task.classes))]
    return PatchSums(task.index, np.column_stack(cols)[: len(task.geometries)])


def patch_statistics(
    patches: gpd.GeoDataFrame,
    raster: str | os.PathLike[str],
    *,
    band: int = 1,
    classes: Sequence[float] | None = None,
    nodata: float | None = None,
    id_field: str = "patch_id",
    block: int = 1024,
    scheduler: Scheduler = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Exact per-patch class areas (m²) and mean of one raster band.

    Parameters
    ----------
    patches : geopandas.GeoDataFrame
        Polygons in any CRS (transformed to the raster's).
    raster : path-like
        A single raster file; ``band`` is read.
    band : int
        Band number, 1-based.
    classes : sequence of numbers, optional
        Class values whose areas to report (a classification raster).
    nodata : float, optional
        Value meaning "not observed" (default the file's nodata).
    id_field : str
        Column identifying the patches in the result.
    block : int
        Block size in pixels; only blocks touching a patch are read.
    scheduler, progress
        As for :func:`ecopatch.assess_restoration`.

    Returns
    -------
    pandas.DataFrame
        One row per patch: ``id_field``, ``area_m2`` (geodesic area of the
        polygon), ``observed_m2`` (area of the cells with data, partial edge
        cells counted by their exact share), ``mean`` (coverage- and
        area-weighted mean of the band over the observed part), and
        ``area_<class>_m2`` for each of ``classes``.

    Raises
    ------
    InputDataError
        ``id_field`` missing or ``band`` out of range.
    """
    from .io.raster import _dataset, _grid_of

    if id_field not in patches.columns:
        raise InputDataError(f"patches have no {id_field!r} column; pass id_field= or read them with read_patches")
    path = str(raster)
    grid, ds = _grid_of(path)
    if not 1 <= band <= ds.count:
        raise InputDataError(f"{path}: band {band} requested but the file has {ds.count}")
    if block < 16:
        raise ConfigError(f"block size {block} px is too small; use at least 16")
    nd = nodata if nodata is not None else _dataset(path).nodatavals[band - 1]
    crs = as_crs(patches.crs, what="patches")
    geoms = shapely.make_valid(patches.to_crs(grid.crs).geometry.to_numpy())
    cls = tuple(float(c) for c in (classes or ()))
    plan = blocks_touching(grid, geoms, block=block)
    tasks = [_Task(path, band, grid, w, tuple(geoms[idx]), idx, cls, nd) for w, idx in plan]
    parts = run_tasks(_block, tasks, scheduler=scheduler, progress=progress, desc="patch stats")
    sums = add_partials(len(patches), 2 + len(cls), parts)
    observed = sums[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(observed > 0, sums[:, 1] / observed, np.nan)
    out = pd.DataFrame({
        id_field: patches[id_field].to_numpy(),
        "area_m2": geodesic_area_m2(patches.geometry.to_numpy(), crs),
        "observed_m2": observed,
        "mean": mean,
    })
    for i, c in enumerate(cls):
        name = int(c) if float(c).is_integer() else c
        out[f"area_{name}_m2"] = sums[:, 2 + i]
    return out
