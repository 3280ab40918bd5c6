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

from ecopatch.compute.zonal import coverage_table, flat_index, observed_entries, take_flat
from ecopatch.engine.tiling import PatchSums, Scheduler, add_partials, blocks_touching, run_tasks
from ecopatch.errors import ConfigError, InputDataError
from ecopatch.geo.geodesy import as_crs, geodesic_area_m2, geometries_in
from ecopatch.geo.grid import Grid, Window
from ecopatch.raster.source import ValueRaster, as_values

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["patch_statistics"]


#: A task takes consecutive blocks (row-major) until it holds this many (patch, block) pairs, so
#: that sparse patches do not pay a task's fixed costs (repair, geodesic areas, coverage set-up,
#: the per-patch sums) once per block: 100 patches on a full tile touch 66 blocks.
PAIRS_PER_TASK = 256


@dataclass(frozen=True)
class _Task:
    raster: ValueRaster
    band: int
    grid: Grid
    block: int
    #: the blocks of this task, each clipped to the grid
    blocks: tuple[Window, ...]
    #: the patches touching them, once each, and their positions in the patch list
    geometries: tuple[Any, ...]
    index: np.ndarray
    classes: tuple[float, ...]
    nodata: float | None
    #: the patches (positions into ``geometries``, input geometries and CRS) whose geodesic area
    #: this task computes: those whose first block is in it, so that each area is computed once,
    #: in parallel, and added to zeros
    home: np.ndarray
    home_geometries: tuple[Any, ...]
    crs: Any


def _block(task: _Task) -> PatchSums:
    """Per-patch sums over the blocks of one task, from the covered pixels only.

    The same arithmetic as :func:`ecopatch.compute.zonal.zonal_sums`, without building
    a block-sized float layer per class: patches usually cover a small share
    of a block.  Coverage is computed once for the task's patches and kept
    where it falls in the task's own blocks (a patch reaching into a block of
    another task is counted there); each block then reads only the bounding
    box of its covered pixels.
    """
    grid, size = task.grid, task.block
    n = len(task.geometries)
    areas = np.zeros(n)
    areas[task.home] = geodesic_area_m2(np.asarray(task.home_geometries, dtype=object), task.crs)
    # repaired here rather than before planning: in the tasks it runs in parallel (100 000 patches: 0.6 s)
    geoms = shapely.make_valid(np.asarray(task.geometries, dtype=object))
    r0 = min(w.row_off for w in task.blocks)
    c0 = min(w.col_off for w in task.blocks)
    span = Window(row_off=r0, col_off=c0,
                  height=max(w.row_end for w in task.blocks) - r0, width=max(w.col_end for w in task.blocks) - c0)
    cov = coverage_table(geoms, grid, window=span, on_invalid="ignore")
    idx, row, col, frac = cov.index, cov.row, cov.col, cov.frac
    if len(task.blocks) > 1:
        n_bc = -(-grid.width // size)
        key = (row // size) * n_bc + col // size  # block of each entry
        own = np.array([(w.row_off // size) * n_bc + w.col_off // size for w in task.blocks])
        keep = np.isin(key, own)
        if not keep.all():
            idx, row, col, frac, key = idx[keep], row[keep], col[keep], frac[keep], key[keep]
    if len(idx) == 0:
        return PatchSums(task.index, np.column_stack([areas, np.zeros((n, 2 + len(task.classes)))]))
    val = np.empty(len(idx))
    if len(task.blocks) == 1:
        parts: list[Any] = [slice(None)]
    else:
        order = np.argsort(key, kind="stable")
        parts = np.split(order, np.flatnonzero(np.diff(key[order])) + 1)
    for part in parts:
        # read only the part of the block the patches cover (few small patches: a few pixels)
        r, c = row[part], col[part]
        pr, pc = int(r.min()), int(c.min())
        w = Window(row_off=pr, col_off=pc, height=int(r.max()) - pr + 1, width=int(c.max()) - pc + 1)
        data = task.raster.read_values(task.band, w)
        val[part] = take_flat(data, flat_index(r, c, w))
    if task.nodata is not None and not np.isnan(task.nodata):
        val[val == task.nodata] = np.nan
    i, f, x = observed_entries(idx, frac * grid.cell_area_m2_at(row, col), val)
    cols = [areas, np.bincount(i, f, minlength=n), np.bincount(i, f * x, minlength=n)]
    if task.classes:
        # all classes in one pass: the entries of each (patch, class) are added in the same order
        # as a per-class pass would (which adds 0.0 for the entries of other classes)
        values, column = np.unique(np.asarray(task.classes), return_inverse=True)
        pos = np.minimum(np.searchsorted(values, x), len(values) - 1)
        hit = values[pos] == x
        per_class = np.bincount(i[hit] * len(values) + pos[hit], f[hit], minlength=n * len(values))
        cols += list(per_class.reshape(n, len(values))[:, column].T)
    return PatchSums(task.index, np.column_stack(cols))


def patch_statistics(
    raster: str | os.PathLike[str] | ValueRaster | Any,
    patches: gpd.GeoDataFrame,
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
    raster : path-like, xarray.DataArray, open rasterio dataset or ValueRaster
        A raster file, or values in memory on a grid (an xarray DataArray
        with its CRS and x/y coordinates; an
        :class:`~ecopatch.raster.arrays.ArrayValues`); ``band`` is read.
    patches : geopandas.GeoDataFrame
        Polygons in any CRS (transformed to the raster's).
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
    if id_field not in patches.columns:
        raise InputDataError(f"patches have no {id_field!r} column; pass id_field= or read them with read_patches")
    values = as_values(raster)
    grid = values.grid
    if not 1 <= band <= values.count:
        raise InputDataError(f"{values.source}: band {band} requested but the raster has {values.count}")
    if block < 16:
        raise ConfigError(f"block size {block} px is too small; use at least 16")
    nd = nodata if nodata is not None else values.band_nodata(band)
    crs = as_crs(patches.crs, what="patches")
    geoms = geometries_in(patches, grid.crs, what="patches")
    cls = tuple(float(c) for c in (classes or ()))
    plan = blocks_touching(grid, geoms, block=block)
    original = patches.geometry.to_numpy()
    groups: list[list[tuple[Window, np.ndarray]]] = []
    pairs = PAIRS_PER_TASK
    for w, idx in plan:
        if pairs >= PAIRS_PER_TASK:
            groups.append([])
            pairs = 0
        groups[-1].append((w, idx))
        pairs += len(idx)
    seen = np.zeros(len(patches), dtype=bool)
    tasks = []
    for group in groups:
        idx = np.unique(np.concatenate([i for _, i in group]))
        home = np.flatnonzero(~seen[idx])  # plan is in row-major order: a patch's first block is here
        seen[idx] = True
        tasks.append(_Task(values, band, grid, block, tuple(w for w, _ in group), tuple(geoms[idx]), idx,
                           cls, nd, home, tuple(original[idx[home]]), crs))
    b = shapely.bounds(geoms)
    bbox_px = np.nansum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])) / abs(grid.transform.a * grid.transform.e)
    parts = run_tasks(_block, tasks, scheduler=scheduler, progress=progress, desc="patch stats",
                      work_px=float(bbox_px))
    sums = add_partials(len(patches), 3 + len(cls), parts)
    area = sums[:, 0]
    area[~seen] = geodesic_area_m2(original[~seen], crs)  # outside the raster, or empty
    observed = sums[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(observed > 0, sums[:, 2] / observed, np.nan)
    out = pd.DataFrame({
        id_field: patches[id_field].to_numpy(),
        "area_m2": area,
        "observed_m2": observed,
        "mean": mean,
    })
    for i, c in enumerate(cls):
        name = int(c) if float(c).is_integer() else c
        out[f"area_{name}_m2"] = sums[:, 3 + i]
    return out
