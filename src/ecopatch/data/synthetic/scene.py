"""The synthetic scene: vector truth plus rasters rendered on demand, by window, in bounded memory."""

from __future__ import annotations

import datetime as _dt
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from shapely.geometry import box

from ecopatch.data.synthetic.materials import BANDS_10M, BANDS_20M, MATERIALS, RASTERS, RENDER_TILE
from ecopatch.data.synthetic.render import render_tile
from ecopatch.data.synthetic.tricks import acquisition_table, empty_pseudo_changes
from ecopatch.errors import InputDataError
from ecopatch.geo.grid import Grid, Window

if TYPE_CHECKING:  # pragma: no cover
    import geopandas as gpd
    import pandas as pd

    from ecopatch.data.synthetic.materials import ProductMeta
    from ecopatch.data.synthetic.world import SceneParams, World


# ---------------------------------------------------------------------------
# The scene
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DroneOrtho:
    """A drone RGB orthomosaic rendered from the scene truth.

    Attributes
    ----------
    rgb : ndarray of uint8, shape (3, rows, cols)
        Red, green, blue; 0 outside the flown area (black collar).
    alpha : ndarray of uint8, shape (rows, cols)
        255 inside the flown area, 0 outside.
    grid : Grid
        Its own grid, in EPSG:4549 (CGCS2000 / 3-degree Gauss-Krüger CM 120E,
        metres; northing-first in the CRS definition, x = easting here).
    mine_id : str
        The mine flown.
    date : str
        "after".
    flight_area : shapely Polygon
        The flown area, EPSG:4549.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    grid: Grid
    mine_id: str
    date: str
    flight_area: Any


@dataclass(frozen=True, eq=False)
class SyntheticScene:
    """A synthetic two-date Sentinel-2 L2A scene with its truth.

    Arrays are (row, col); DN are uint16 (SCL uint8) with 0 = nodata.
    Geometries are in EPSG:32650 (WGS 84 / UTM 50N, the imagery CRS) unless
    stated; every ``*_m2`` value is a true ground (geodesic) area.

    The rasters are rendered on demand: :attr:`dn` renders and keeps the
    whole scene (small scenes), :meth:`render_window` and
    :meth:`render_block` render any window with bounded memory (big scenes),
    :meth:`reflectance` converts to surface reflectance.  The vector truth the
    rasters are drawn from is :meth:`surface_shapes`; the terrain is
    :meth:`dem`.  A scene pickles (for Dask workers) without its caches.

    Attributes
    ----------
    params : SceneParams
        Generator parameters (seed, shape, counts).
    grid : Grid
        10 m grid (B02, B03, B04, B08), EPSG:32650.
    grid20 : Grid
        20 m grid (B11, B12, SCL): ``ceil(rows / 2) × ceil(cols / 2)``, same origin.
    dates : dict of str to datetime.date
        ``{"before": 2021-09-18, "after": 2024-09-12}``.
    products : dict of str to ProductMeta
        Per date: product name, processing baseline, quantification and offset.
    mines : GeoDataFrame
        Mine patches as a bureau digitises them (Chinese columns 矿山编号,
        矿山名称, 修复方向, 所在区县, 责任单位, 计划完成年份) with the valid truth
        geometry, EPSG:32650.
    mines_source : GeoDataFrame
        Same attributes in EPSG:4490 with the geometry as digitised: one
        polygon carries a self-intersecting bow-tie (invalid on purpose).
    reserves : GeoDataFrame
        One row per functional-zone polygon (保护地编号, 保护地名称, 保护地类型,
        级别, 功能分区), EPSG:32650.
    encroachments : GeoDataFrame
        Truth of every change between the dates: ``enc_id``, ``change_type``
        (one of :data:`ecopatch.vocabulary.CHANGE_TYPES`), ``area_m2``,
        ``reserve_name`` (None outside), ``zone`` (strictest canonical zone or
        "outside"), ``zones`` (comma-separated canonical zones touched),
        ``zone_name``, ``under_cloud``, ``cloud_fraction``, ``is_decoy``
        (a real change smaller than 400 m²), ``before_material``,
        ``after_material``.
    clouds : GeoDataFrame
        After-date cloud truth, one row per kind: ``kind`` in
        {"cloud_high", "cloud_medium", "cirrus", "shadow"}, ``scl_class``
        (9, 8, 10, 3), ``date``; kinds are disjoint.
    nodata : GeoDataFrame
        Nodata regions per date (``date``, geometry); may be empty.
    restoration_truth : DataFrame
        One row per mine: ``mine_id``, ``name``, ``direction`` (宜林 …),
        ``direction_key``, ``area_m2``, ``damaged_m2``, ``restored_m2``,
        ``still_bare_m2``, ``restoration_rate`` (0-1, restored / damaged),
        ``vegetated_before_m2``, ``water_m2``, ``cloud_touched``,
        ``cloud_fraction``, ``n_parts``, ``has_hole``, ``invalid_in_source``.
    mine_parts : GeoDataFrame
        Fine truth: the material partition of every mine at each date
        (``mine_id``, ``date``, ``material``, ``group``, geometry).
    drone_mine_id : str or None
        A partly restored mine suitable for :func:`make_drone`.
    tricks : Tricks or None
        The world's tricks asked of :func:`make_scene` (seasons, brightness
        changes, haze, other sensors, extra dates) with their truth; None
        for a plain scene.  See :attr:`pseudo_changes` and :attr:`acquisitions`.
    """

    params: SceneParams
    grid: Grid
    grid20: Grid
    dates: dict[str, _dt.date]
    products: dict[str, ProductMeta]
    mines: gpd.GeoDataFrame
    mines_source: gpd.GeoDataFrame
    reserves: gpd.GeoDataFrame
    encroachments: gpd.GeoDataFrame
    clouds: gpd.GeoDataFrame
    nodata: gpd.GeoDataFrame
    restoration_truth: pd.DataFrame
    mine_parts: gpd.GeoDataFrame
    drone_mine_id: str | None
    _world: World = field(repr=False, compare=False)
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False, compare=False)
    _cache_lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)
    tricks: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        state = {f: getattr(self, f) for f in self.__dataclass_fields__ if f not in ("_cache", "_cache_lock")}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)
        object.__setattr__(self, "_cache", OrderedDict())
        object.__setattr__(self, "_cache_lock", threading.Lock())

    @property
    def seed(self) -> int:
        """The seed the scene derives from."""
        return self.params.seed

    @property
    def crs(self) -> Any:
        """The imagery CRS (EPSG:32650)."""
        return self.grid.crs

    # -- the world's tricks (ecopatch.data.synthetic.tricks) --------------------
    @property
    def pseudo_changes(self) -> gpd.GeoDataFrame:
        """Truth of what changes in the imagery without being an encroachment (伪变化).

        Seasonal cropland and existing bare or built surfaces whose brightness
        changes; empty unless :func:`make_scene` was asked for them.  See
        :func:`ecopatch.data.synthetic.tricks.pseudo_change_columns` for the columns.
        """
        return self.tricks.pseudo_changes if self.tricks is not None else empty_pseudo_changes(self.crs)

    @property
    def acquisitions(self) -> pd.DataFrame:
        """One row per acquisition (``before``, ``after``, extra dates): date, sensor, product, haze, clouds."""
        return acquisition_table(self)

    def _check_key(self, date: str) -> None:
        if date not in self.dates:
            raise InputDataError(f"unknown date {date!r}; use one of {list(self.dates)}")

    def band_grid(self, band: str) -> Grid:
        """The grid a band (or "SCL") lives on: :attr:`grid` or :attr:`grid20`."""
        if band in BANDS_10M:
            return self.grid
        if band in BANDS_20M or band == "SCL":
            return self.grid20
        raise InputDataError(f"unknown band {band!r}; use one of {list(RASTERS)}")

    # -- rendering -------------------------------------------------------
    def _tile(self, date: str, ti: int, tj: int) -> dict[str, np.ndarray]:
        key = (date, ti, tj)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        out = render_tile(self._world, self.params, date, ti, tj)
        with self._cache_lock:
            self._cache[key] = out
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
        return out

    def render_window(self, date: str, window: Window | None = None) -> dict[str, np.ndarray]:
        """Render every raster of ``date`` over a window of the 10 m grid.

        Parameters
        ----------
        date : str
            Acquisition: "before", "after", or an extra date of the scene
            (its ISO date, see :attr:`acquisitions`).  Every acquisition is
            rendered here as Sentinel-2 L2A, whatever product it is written
            as (:func:`ecopatch.data.synthetic.render_product` renders that).
        window : Window, optional
            Window of :attr:`grid` (10 m pixels) with even row and column
            offsets; default the whole grid.  It may extend past the grid.

        Returns
        -------
        dict of str to ndarray
            B02, B03, B04, B08 (uint16) of ``window.shape``; B11, B12 (uint16)
            and SCL (uint8, Sen2Cor classes) over the 20 m window
            ``(row_off // 2, col_off // 2, ceil(height / 2), ceil(width / 2))``.
            DN = reflectance × 10000 + dn_offset (0 before, 1000 after);
            0 = nodata in every raster.

        Notes
        -----
        Rendering goes through fixed 256 × 256 tiles aligned to the grid
        origin, so any tiling of the grid gives bit-identical arrays.  Memory
        is bounded by the window plus a few tiles.
        """
        self._check_key(date)
        win = window or self.grid.window
        if win.row_off % 2 or win.col_off % 2:
            raise InputDataError(
                f"render_window needs even row/col offsets so that 20 m pixels line up; got {win}"
            )
        w20 = Window(row_off=win.row_off // 2, col_off=win.col_off // 2,
                     height=(win.height + 1) // 2, width=(win.width + 1) // 2)
        out = {b: np.zeros(win.shape, np.uint16) for b in BANDS_10M}
        out.update({b: np.zeros(w20.shape, np.uint16) for b in BANDS_20M})
        out["SCL"] = np.zeros(w20.shape, np.uint8)
        for ti in range(win.row_off // RENDER_TILE, (win.row_end - 1) // RENDER_TILE + 1):
            for tj in range(win.col_off // RENDER_TILE, (win.col_end - 1) // RENDER_TILE + 1):
                tile = self._tile(date, ti, tj)
                tw = Window(row_off=ti * RENDER_TILE, col_off=tj * RENDER_TILE, height=RENDER_TILE, width=RENDER_TILE)
                inter = tw.intersection(win)
                if inter is not None:
                    src = inter.relative_to(tw).slices
                    dst = inter.relative_to(win).slices
                    for b in BANDS_10M:
                        out[b][dst] = tile[b][src]
                tw20 = Window(row_off=ti * RENDER_TILE // 2, col_off=tj * RENDER_TILE // 2,
                              height=RENDER_TILE // 2, width=RENDER_TILE // 2)
                inter20 = tw20.intersection(w20)
                if inter20 is not None:
                    src = inter20.relative_to(tw20).slices
                    dst = inter20.relative_to(w20).slices
                    for b in (*BANDS_20M, "SCL"):
                        out[b][dst] = tile[b][src]
        return out

    def render_block(self, date: str, band: str, window: Window | None = None) -> np.ndarray:
        """Render one band over a window of its own grid (10 m or 20 m).

        Parameters
        ----------
        date : {"before", "after"}
        band : str
            One of :data:`RASTERS`.
        window : Window, optional
            Window of :meth:`band_grid` ``(band)``; default the whole grid.

        Returns
        -------
        ndarray of uint16 (uint8 for SCL), shape ``window.shape``
            DN (see :meth:`render_window`); identical to the same pixels of
            the whole rendered band.
        """
        g = self.band_grid(band)
        win = window or g.window
        if band in BANDS_10M:
            r0, c0 = win.row_off - win.row_off % 2, win.col_off - win.col_off % 2
            w10 = Window(row_off=r0, col_off=c0, height=win.row_end - r0, width=win.col_end - c0)
            arr = self.render_window(date, w10)[band]
            return arr[win.row_off - r0:, win.col_off - c0:].copy()
        w10 = Window(row_off=win.row_off * 2, col_off=win.col_off * 2, height=win.height * 2, width=win.width * 2)
        return self.render_window(date, w10)[band]

    @cached_property
    def dn(self) -> dict[str, dict[str, np.ndarray]]:
        """Whole-scene Sentinel-2 L2A DN per date and raster: ``dn["after"]["B04"]`` (uint16; SCL uint8).

        Computed on first access and kept; for big scenes use
        :meth:`render_window` instead.
        """
        return {d: self.render_window(d) for d in self.dates}

    def reflectance(self, date: str, band: str) -> np.ndarray:
        """Whole-scene surface reflectance of one band (float32, NaN = nodata)."""
        dn = self.dn[date][band].astype(np.float32)
        p = self.products[date]
        out = (dn + p.add_offset) / p.quantification_value
        out[dn == 0] = np.nan
        return out

    # -- fine truth ------------------------------------------------------
    def surface_shapes(self, date: str, bounds: tuple[float, float, float, float]) -> list[tuple[Any, str]]:
        """Material polygons of ``date`` intersecting ``bounds`` (EPSG:32650), in paint order.

        The ground not covered by any of them is forest.  Later shapes cover
        earlier ones.  This is the vector truth the rasters are rendered from.
        """
        self._check_key(date)
        bx = box(*bounds)
        w = self._world
        ground, _ = w.state(date)
        return [(g, MATERIALS[w.base_of(m)].key) for g, m in w.surface_shapes(ground, bx, acq=date)]

    def dem(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Terrain elevation (m) on the grid of EPSG:32650 coordinates ``ys`` × ``xs``."""
        return self._world.dem_grid(np.asarray(xs, float), np.asarray(ys, float))
