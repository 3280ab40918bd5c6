"""Per-patch pixel coverage: the exact share of every pixel inside each patch polygon.

The numeric core of per-patch statistics (class area per mine patch, restored
area, observed share).  :func:`coverage_fraction` gives one polygon's
coverage as a dense window, :func:`coverage_table` gives many polygons'
coverage as a sparse table (:class:`Coverage`), and :func:`zonal_sums` turns
a table and some rasters into per-patch sums, in m² when weighted by
:meth:`ecopatch.geo.grid.Grid.cell_area_m2`.

Fractions are exact up to float rounding of the coordinates (they agree with
shapely's cell-by-cell intersection areas to better than 1e-9 of a pixel),
as in exactextract, and are computed in vectorised NumPy without shapely
calls per pixel.  See :func:`coverage_table`, Notes, for the method.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from ecopatch._warnfilters import filters_guard
from ecopatch.errors import ConfigError, CRSMismatchError, GeometryError, GeometryRepairedWarning, InputDataError
from ecopatch.geo.geodesy import as_crs, simple_polygon_coordinates
from ecopatch.geo.grid import Grid, Window

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Coverage", "coverage_fraction", "coverage_table", "coverage_windows", "outline_pixels", "zonal_sums"]

def outline_pixels(grid: Grid, geom: Any, footprint: Any = None) -> tuple[Window, np.ndarray, float] | None:
    """The pixels of ``grid`` that stand for one polygon, by the pixel-centre rule.

    Parameters
    ----------
    grid : Grid
    geom : shapely geometry
        A polygon in ``grid``'s CRS.
    footprint : shapely geometry, optional
        ``grid.footprint()``, when the caller has it already (many polygons).

    Returns
    -------
    (Window, ndarray of bool, float) or None
        The window of ``grid`` around the polygon (one pixel of margin,
        clipped), the mask of its pixels in that window (centres inside;
        every pixel it touches when it covers no centre), and the share
        (0-1) of the polygon's area inside the grid.  None when the polygon
        is empty, outside the grid or covers no pixel.
    """
    from rasterio.features import geometry_mask

    if geom is None or shapely.is_empty(geom) or shapely.area(geom) <= 0:
        return None
    footprint = grid.footprint() if footprint is None else footprint
    inside = float(shapely.area(shapely.intersection(geom, footprint)) / shapely.area(geom))
    win = grid.window_from_bounds(geom.bounds, pad=1, clip=True)
    if win is None or inside <= 0:
        return None
    sub = grid.subgrid(win)
    with filters_guard():  # rasterio's rasterising enters catch_warnings (see ecopatch._warnfilters)
        m = geometry_mask([geom], out_shape=win.shape, transform=sub.transform, invert=True)
        if not m.any():
            m = geometry_mask([geom], out_shape=win.shape, transform=sub.transform, invert=True, all_touched=True)
    return (win, m, min(1.0, inside)) if m.any() else None


#: Fractions at or below this (a share of one pixel) are float rounding noise
#: from vertices that sit on pixel edges, and are left out of the results.
FRAC_EPS = 1e-10

#: Default working-memory bound of :func:`coverage_table`, in cells.
DEFAULT_MAX_CELLS = 1 << 18

_ON_INVALID = ("raise", "fix", "ignore")
_POLYGONAL = (3, 6)  # shapely type ids of Polygon and MultiPolygon


@dataclass(frozen=True, eq=False)
class Coverage:
    """Sparse per-polygon pixel coverage, one entry per (polygon, cell) with overlap.

    Entries are sorted by ``index``, then ``row``, then ``col``; the arrays
    are read-only.

    Attributes
    ----------
    index : ndarray of int64, shape (n,)
        Position of the geometry in the input of :func:`coverage_table`.
    row, col : ndarray of int64, shape (n,)
        Absolute pixel indices in the grid (not relative to ``window``).
    frac : ndarray of float64, shape (n,)
        Share of the cell's map area covered by the geometry, in (0, 1]
        (unitless).
    n_geometries : int
        Number of input geometries, including empty and non-overlapping ones.
    window : Window
        The pixels the table was restricted to; every entry lies inside it.
    """

    index: np.ndarray
    row: np.ndarray
    col: np.ndarray
    frac: np.ndarray
    n_geometries: int
    window: Window

    def __post_init__(self) -> None:
        for name in ("index", "row", "col", "frac"):
            arr = getattr(self, name)
            if arr.flags.writeable:
                arr = arr.view()
                arr.flags.writeable = False
                object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        """Number of (geometry, cell) entries."""
        return int(self.index.size)

    def __repr__(self) -> str:
        return (
            f"Coverage({len(self)} entries, n_geometries={self.n_geometries}, window={self.window})"
        )


def coverage_fraction(
    geometry: Any,
    grid: Grid,
    *,
    window: Window | None = None,
    on_invalid: str = "raise",
) -> tuple[Window, np.ndarray]:
    """Exact share of every pixel covered by one polygon, over the polygon's bounding box.

    Parameters
    ----------
    geometry : shapely Polygon or MultiPolygon, or None
        In ``grid``'s CRS, x = easting or longitude (whatever the axis order
        of the CRS definition).  Holes are allowed; rings may run either way.
    grid : Grid
        The pixel grid.
    window : Window, optional
        Restrict the result to these pixels (default: the whole grid).  It
        must lie inside the grid.
    on_invalid : {"raise", "fix", "ignore"}
        What to do with an invalid polygon; see :func:`coverage_table`.

    Returns
    -------
    window : Window
        The whole pixels touching the polygon's bounding box, clipped to
        ``window`` (or the grid).  When the geometry is None or empty, or
        misses the clip window, this is a window of height 0 and width 0 at
        the top-left corner of the clip window.
    frac : ndarray of float64, shape ``window.shape``
        Share of each cell's map area inside the polygon, in [0, 1]
        (unitless); 0 where the cell only touches the bounding box.  Shares
        below :data:`FRAC_EPS` are 0.

    Raises
    ------
    GeometryError
        If the geometry is not polygonal, has non-finite coordinates, or is
        invalid and ``on_invalid="raise"``.
    InputDataError
        If ``window`` does not lie inside the grid.

    See Also
    --------
    coverage_table : the same for many polygons, as a sparse table.

    Notes
    -----
    The share is of the cell's area in map units (CRS units squared).  Over
    one cell, map area and ground area differ by a near-constant factor, so
    the share also holds for ground area to about 1e-7 for 10 m cells
    (projected grids) and about 1e-6 for 1e-4 degree cells (geographic).

    Examples
    --------
    A 15 m × 10 m rectangle on a 10 m UTM grid, shifted half a pixel right:

    >>> from affine import Affine
    >>> from shapely.geometry import box
    >>> grid = Grid((10, 10), Affine(10, 0, 500_000, 0, -10, 3_300_100), "EPSG:32650")
    >>> win, frac = coverage_fraction(box(500_005, 3_300_080, 500_020, 3_300_090), grid)
    >>> win
    Window(row_off=1, col_off=0, height=1, width=2)
    >>> frac
    array([[0.5, 1. ]])
    >>> coverage_fraction(None, grid)[1].shape
    (0, 0)
    """
    table = coverage_table([geometry], grid, window=window, on_invalid=on_invalid)
    clip = table.window
    win = _bbox_window(geometry, grid, clip)
    if win is None:
        return Window(row_off=clip.row_off, col_off=clip.col_off, height=0, width=0), np.zeros((0, 0))
    out = np.zeros(win.shape)
    out[table.row - win.row_off, table.col - win.col_off] = table.frac
    return win, out


def coverage_windows(
    geometries: Any,
    grid: Grid,
    windows: Iterable[Window],
    *,
    on_invalid: str = "raise",
) -> list[np.ndarray]:
    """The share of every pixel covered by each polygon, over a window of its own: many at once.

    One :func:`coverage_table` call for all the polygons, instead of one
    :func:`coverage_fraction` call each (the per-call cost dominates for
    the small polygons of mine patches: about 0.5 ms a call).

    Parameters
    ----------
    geometries : sequence of shapely Polygon / MultiPolygon
        In ``grid``'s CRS, as for :func:`coverage_table`.
    grid : Grid
        The pixel grid.
    windows : iterable of Window
        One per geometry: the pixels to report it on, each inside the grid
        (a polygon's bounding box plus a margin, typically).
    on_invalid : {"raise", "fix", "ignore"}
        As for :func:`coverage_table`.

    Returns
    -------
    list of ndarray of float64
        Per geometry, an array of its window's shape: the share (0-1,
        unitless) of each cell's map area inside the polygon, 0 outside it.
        What :func:`coverage_fraction` gives over that window, placed in
        it: bit for bit when no polygon has holes or parts and each window
        holds the part of its polygon's bounding box within the union of
        the windows; otherwise to about 1e-16 of a cell (the edges of all
        the polygons' rings are added together, in another order).
    """
    geoms = np.asarray(list(geometries) if not isinstance(geometries, np.ndarray) else geometries, dtype=object)
    wins = list(windows)
    if len(wins) != geoms.size:
        raise InputDataError(f"{geoms.size} geometries but {len(wins)} windows; give one window per geometry")
    if not wins:
        return []
    clip = wins[0]
    for w in wins:
        _check_window(grid, w)
        clip = clip.union(w)
    table = coverage_table(geoms, grid, window=clip, on_invalid=on_invalid)
    cuts = np.searchsorted(table.index, np.arange(geoms.size + 1))
    out = []
    for i, w in enumerate(wins):
        a = np.zeros(w.shape)
        lo, hi = cuts[i], cuts[i + 1]
        if hi > lo:
            r, c = table.row[lo:hi] - w.row_off, table.col[lo:hi] - w.col_off
            inside = (r >= 0) & (r < w.height) & (c >= 0) & (c < w.width)
            a[r[inside], c[inside]] = table.frac[lo:hi][inside]
        out.append(a)
    return out


def coverage_table(
    geometries: Iterable[Any],
    grid: Grid,
    *,
    window: Window | None = None,
    on_invalid: str = "raise",
    max_cells: int = DEFAULT_MAX_CELLS,
) -> Coverage:
    """Exact per-pixel coverage of many polygons, as a sparse table.

    Parameters
    ----------
    geometries : sequence of shapely Polygon / MultiPolygon, GeoSeries or GeoDataFrame
        Patch polygons in ``grid``'s CRS, x = easting or longitude (whatever
        the axis order of the CRS definition).  None and empty geometries
        cover nothing.  Holes are allowed and rings may run either way;
        parts of a MultiPolygon may share cells.  A GeoSeries or
        GeoDataFrame with a CRS is checked against ``grid.crs``.
    grid : Grid
        The pixel grid.
    window : Window, optional
        Only cells in this window are reported (default: the whole grid).
        It must lie inside the grid.  Coverage of a cell does not depend on
        the window, so tables of windows that tile the grid together hold
        exactly the entries of the whole-grid table.
    on_invalid : {"raise", "fix", "ignore"}
        Invalid polygons (self-intersecting rings, such as bow-ties):
        ``"raise"`` raises :class:`GeometryError`; ``"fix"`` repairs them
        with :func:`shapely.make_valid` (structure method, polygonal parts
        only) and warns with :class:`GeometryRepairedWarning`; ``"ignore"``
        skips the check (faster, for layers already repaired on reading:
        invalid polygons then give meaningless shares).
    max_cells : int
        Working-memory bound: cells of polygon bounding boxes (plus four per
        vertex) processed at once, about 50 bytes each.  A polygon whose
        bounding box is larger is processed in bands of rows.  The default
        (262 144) keeps the working arrays in the CPU cache.

    Returns
    -------
    Coverage
        Entries for every (geometry, cell) with a share above
        :data:`FRAC_EPS`, sorted by geometry, row and column; ``row`` and
        ``col`` are absolute grid indices.

    Raises
    ------
    CRSMismatchError
        If ``geometries`` carries a CRS other than ``grid.crs``.
    GeometryError
        If a geometry is not polygonal, has non-finite coordinates, or is
        invalid and ``on_invalid="raise"``.
    InputDataError
        If ``window`` does not lie inside the grid.
    ConfigError
        If ``on_invalid`` or ``max_cells`` is not allowed.

    Notes
    -----
    Signed-area accumulation, the scan method of exact font rasterisers
    (libart, font-rs, stb_truetype), vectorised over all edges of all
    polygons.  Ring vertices are mapped to pixel space (col, row).  Every
    edge is split where it crosses a pixel row boundary, then every piece
    where it crosses a column boundary, so that each piece lies in one cell
    (r, c).  The area of a cell inside a ring equals the signed sum, over
    the pieces in the cell's row, of the trapezoid between the piece and the
    cell's right edge for a piece in the same cell, plus the piece's full
    height for pieces further left.  So each piece adds
    ``-dv · (c + 1 - u_mid)`` to cell (r, c) and ``-dv`` to an accumulator
    at (r, c + 1), and a cumulative sum along each row turns the
    accumulator into the full-height terms.  Each ring is weighted by the
    sign of its own area, positive for exteriors and negative for holes, so
    ring orientation does not matter.  Pieces left of the window are moved
    onto its left edge and pieces right of it are moved onto a spare column,
    which clips exactly at pixel edges.  This is the font rasteriser's scan
    along rows; the transposed version (accumulating down columns) gives the
    same numbers but would need a sort to list entries row by row.

    The work is proportional to the number of edge pieces plus the cells of
    the polygons' bounding boxes, with no Python loop over polygons or
    pixels.  See :func:`coverage_fraction`, Notes, for map area versus
    ground area.

    Examples
    --------
    Two 1 ha patches on a 10 m UTM grid (100 m × 100 m = 100 pixels each),
    the second half a pixel off the pixel edges:

    >>> from affine import Affine
    >>> from shapely.geometry import box
    >>> grid = Grid((40, 40), Affine(10, 0, 500_000, 0, -10, 3_300_400), "EPSG:32650")
    >>> cov = coverage_table([box(500_000, 3_300_300, 500_100, 3_300_400),
    ...                       box(500_205, 3_300_005, 500_305, 3_300_105)], grid)
    >>> len(cov), cov.n_geometries
    (221, 2)
    >>> [float(cov.frac[cov.index == i].sum()) for i in (0, 1)]
    [100.0, 100.0]
    >>> sorted(set(cov.frac[cov.index == 1].tolist()))
    [0.25, 0.5, 1.0]
    """
    if on_invalid not in _ON_INVALID:
        raise ConfigError(f"on_invalid={on_invalid!r} is not allowed; use one of {_ON_INVALID}")
    if not isinstance(max_cells, (int, np.integer)) or max_cells < 1:
        raise ConfigError(f"max_cells must be a positive integer, got {max_cells!r}")
    clip = _check_window(grid, window)
    geoms = _as_geometry_array(geometries, grid)
    geoms = _check_geometries(geoms, on_invalid)
    n = int(geoms.size)

    # Bounding-box window of each geometry, clipped to the window.
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    gidx = np.flatnonzero(present)
    r0, c0, r1, c1 = _bbox_pixels(geoms[gidx], grid, clip)
    keep = (r1 > r0) & (c1 > c0)
    gidx, r0, c0, r1, c1 = gidx[keep], r0[keep], c0[keep], r1[keep], c1[keep]
    if gidx.size == 0:
        nothing = np.zeros(0, dtype=np.int64)
        return Coverage(nothing, nothing, nothing, np.zeros(0), n, clip)

    # Work items: each geometry's window, cut into bands of at most max_cells.
    height, width = r1 - r0, c1 - c0
    band = np.maximum(1, max_cells // (width + 1))
    n_bands = -(-height // band)
    item_g = np.repeat(np.arange(gidx.size), n_bands)
    item_dr = (np.arange(item_g.size) - np.repeat(np.cumsum(n_bands) - n_bands, n_bands)) * band[
        item_g
    ]
    item_h = np.minimum(band[item_g], height[item_g] - item_dr)
    item_w = width[item_g]
    # Batches of items, bounded in cells and in edges (about 4 edge pieces per edge).
    n_xy = shapely.get_num_coordinates(geoms[gidx])[item_g]
    cost = np.cumsum(item_h * (item_w + 1) + 4 * n_xy)
    bounds = [0]
    while bounds[-1] < item_g.size:
        lo = bounds[-1]
        hi = int(np.searchsorted(cost, (cost[lo - 1] if lo else 0) + max_cells, side="right"))
        bounds.append(max(hi, lo + 1))

    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        it = slice(lo, hi)
        g_lo, g_hi = int(item_g[lo]), int(item_g[hi - 1]) + 1
        g = item_g[it] - g_lo
        edges = _edges(geoms[gidx[g_lo:g_hi]], grid, r0[g_lo:g_hi], c0[g_lo:g_hi])
        frac, item, rr, cc = _rasterise(edges, g, item_dr[it], item_h[it], item_w[it])
        gi = g[item] + g_lo
        out.append((gidx[gi], r0[gi] + item_dr[it][item] + rr, c0[gi] + cc, frac))
    index, row, col, frac = (np.concatenate(a) for a in zip(*out))
    return Coverage(index, row, col, frac, n, clip)


def zonal_sums(
    coverage: Coverage,
    values: Mapping[str, np.ndarray],
    *,
    window: Window,
    weights: np.ndarray | float | None = None,
) -> dict[str, np.ndarray]:
    """Coverage-weighted sums of rasters per patch, counting observed pixels only.

    Parameters
    ----------
    coverage : Coverage
        From :func:`coverage_table`.  Entries outside ``window`` are left
        out, so one table can serve several chunks; for a tile cut into
        many chunks, a table per chunk (``coverage_table(...,
        window=chunk)``) avoids scanning the whole table for each chunk.
    values : mapping of str to ndarray of shape ``window.shape``
        Rasters to sum, by name (any units; any real dtype).  NaN (or any
        non-finite value) marks a pixel that was not observed.
    window : Window
        The pixels that the arrays in ``values`` and ``weights`` cover.
    weights : ndarray of shape ``window.shape``, or float, optional
        Weight of each cell, typically ``grid.cell_area_m2(window)`` (m²) so
        that the sums are areas.  Default 1, so that the sums count pixels.

    Returns
    -------
    dict of str to ndarray of float64, shape (coverage.n_geometries,)
        For each name in ``values``: ``"sum_<name>"`` = Σ frac·weight·value
        and ``"w_<name>"`` = Σ frac·weight over the cells where the value is
        finite (units: value units × weight units, and weight units, e.g.
        m²).  A geometry with no observed cell gets 0.0 in both.  Results of
        chunks add up to the result of the whole (up to float rounding),
        so the mean is ``sum_<name> / w_<name>`` after adding; pass the dict
        to :class:`pandas.DataFrame` for a table.

    Raises
    ------
    InputDataError
        If an array's shape is not ``window.shape`` or ``values`` is empty.

    Examples
    --------
    Share of vegetation (a 0/1 raster, NaN under cloud) in a 1 ha patch, in m²:

    >>> from affine import Affine
    >>> from shapely.geometry import box
    >>> grid = Grid((20, 20), Affine(10, 0, 500_000, 0, -10, 3_300_200), "EPSG:32650")
    >>> cov = coverage_table([box(500_000, 3_300_100, 500_100, 3_300_200)], grid)
    >>> veg = np.zeros(grid.shape, dtype=np.float32)
    >>> veg[:, :3] = 1.0        # three 10 m columns of vegetation
    >>> veg[9, :] = np.nan      # one row under cloud
    >>> s = zonal_sums(cov, {"veg": veg}, window=grid.window, weights=100.0)
    >>> float(s["sum_veg"][0]), float(s["w_veg"][0])   # m² of vegetation, m² observed
    (2700.0, 9000.0)
    """
    if not isinstance(coverage, Coverage):
        raise InputDataError(
            f"coverage must be a Coverage from coverage_table(), got {type(coverage).__name__}"
        )
    if not values:
        raise InputDataError("values is empty; pass at least one raster, e.g. {'ndvi': ndvi}")
    if not isinstance(window, Window):
        raise InputDataError(
            f"window must be the ecopatch.geo.grid.Window that the value arrays cover, "
            f"got {type(window).__name__}"
        )
    shape = window.shape
    idx, row, col, frac = coverage.index, coverage.row, coverage.col, coverage.frac
    if coverage.window.intersection(window) != coverage.window:
        sel = (
            (row >= window.row_off)
            & (row < window.row_end)
            & (col >= window.col_off)
            & (col < window.col_end)
        )
        idx, row, col, frac = idx[sel], row[sel], col[sel], frac[sel]
    flat = flat_index(row, col, window)
    if weights is None:
        fw = frac
    elif np.ndim(weights) == 0:
        fw = frac * float(weights)
    else:
        w_arr = np.asarray(weights)
        if w_arr.shape != shape:
            raise InputDataError(
                f"weights has shape {w_arr.shape} but window {window} has shape {shape}; "
                "pass grid.cell_area_m2(window)"
            )
        fw = frac * take_flat(w_arr, flat)
    n = coverage.n_geometries
    out: dict[str, np.ndarray] = {}
    for name, arr in values.items():
        arr = np.asarray(arr)
        if arr.shape != shape:
            raise InputDataError(
                f"values[{name!r}] has shape {arr.shape} but window {window} has shape {shape}; "
                "read the raster for exactly this window"
            )
        i, f, x = observed_entries(idx, fw, take_flat(arr, flat).astype(np.float64, copy=False))
        out[f"sum_{name}"] = np.bincount(i, f * x, minlength=n)
        out[f"w_{name}"] = np.bincount(i, f, minlength=n)
    return out


# -- helpers --------------------------------------------------------------


def flat_index(row: np.ndarray, col: np.ndarray, window: Window) -> np.ndarray:
    """Positions of absolute pixels (``row``, ``col``) in a C-ordered array covering ``window``."""
    return (row - window.row_off) * window.width + (col - window.col_off)


def observed_entries(idx: np.ndarray, fw: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The coverage entries whose value is finite: (geometry index, frac × weight, value)."""
    obs = np.isfinite(val)
    if obs.all():
        return idx, fw, val
    return idx[obs], fw[obs], val[obs]


def take_flat(arr: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """``arr.ravel()[flat]`` without copying ``arr``."""
    if arr.flags.c_contiguous:
        return arr.reshape(-1)[flat]
    rows, cols = np.divmod(flat, arr.shape[1])
    return arr[rows, cols]


def _check_window(grid: Grid, window: Window | None) -> Window:
    if window is None:
        return grid.window
    if not isinstance(window, Window):
        raise InputDataError(f"window must be an ecopatch.geo.grid.Window, got {type(window).__name__}")
    inside = window.intersection(grid.window)
    if window.height < 1 or window.width < 1 or inside != window:
        raise InputDataError(
            f"{window} does not lie inside the grid of shape {grid.shape}; "
            "clip it with window.intersection(grid.window) or tile with grid.chunks()"
        )
    return window


def _crs_name(crs: Any) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


def _as_geometry_array(geometries: Any, grid: Grid) -> np.ndarray:
    crs = getattr(geometries, "crs", None)
    if crs is not None:
        crs = as_crs(crs, what="geometries")
        if crs != grid.crs:
            raise CRSMismatchError(
                f"geometries are in {_crs_name(crs)} but the grid is in {_crs_name(grid.crs)}; "
                "reproject them first, e.g. gdf.to_crs(grid.crs)"
            )
    if hasattr(geometries, "geometry") and not isinstance(geometries, shapely.Geometry):
        geometries = geometries.geometry  # GeoDataFrame
    if not isinstance(geometries, (np.ndarray, shapely.Geometry)) and geometries is not None:
        geometries = list(geometries)
    geoms = np.asarray(geometries, dtype=object)
    return geoms.reshape(-1)


def _check_geometries(geoms: np.ndarray, on_invalid: str) -> np.ndarray:
    """Check types, coordinates and validity; repair when asked."""
    bad = ~(shapely.is_geometry(geoms) | shapely.is_missing(geoms))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise GeometryError(
            f"geometry {i} is a {type(geoms[i]).__name__}, not a shapely geometry; "
            "pass shapely polygons, a GeoSeries or a GeoDataFrame"
        )
    type_id = shapely.get_type_id(geoms)
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    wrong = present & ~np.isin(type_id, _POLYGONAL)
    if wrong.any():
        pos = np.flatnonzero(wrong)
        kinds = sorted({geoms[i].geom_type for i in pos})
        raise GeometryError(
            f"{pos.size} geometries are not polygons ({', '.join(kinds)}; first at position "
            f"{pos[0]}); coverage needs Polygon or MultiPolygon: drop them, or keep the "
            "polygonal parts of GeometryCollections"
        )
    if not present.any():
        return geoms
    xy, pos = shapely.get_coordinates(geoms[present], return_index=True)
    nonfinite = ~np.isfinite(xy).all(axis=1)
    if nonfinite.any():
        i = int(np.flatnonzero(present)[pos[np.flatnonzero(nonfinite)[0]]])
        raise GeometryError(
            f"geometry {i} has NaN or infinite coordinates; drop or repair it before "
            "computing coverage"
        )
    if on_invalid == "ignore":
        return geoms
    invalid = present.copy()
    with filters_guard():  # shapely's is_valid enters catch_warnings (see ecopatch._warnfilters)
        invalid[present] = ~shapely.is_valid(geoms[present])
    if not invalid.any():
        return geoms
    pos = np.flatnonzero(invalid)
    if on_invalid == "raise":
        raise GeometryError(
            f"{pos.size} polygons are invalid (first at position {pos[0]}: "
            f"{shapely.is_valid_reason(geoms[pos[0]])}); repair them with shapely.make_valid, "
            "or pass on_invalid='fix'"
        )
    geoms = geoms.copy()
    geoms[pos] = _make_valid_polygonal(geoms[pos])
    with filters_guard():  # raised under the caller's filters, not inside another thread's block
        warnings.warn(
            f"repaired {pos.size} invalid polygons (first at position {pos[0]}) with "
            "shapely.make_valid; repair the layer on reading to silence this",
            GeometryRepairedWarning,
            stacklevel=3,
        )
    return geoms


def _make_valid_polygonal(geoms: np.ndarray) -> np.ndarray:
    try:
        return shapely.make_valid(geoms, method="structure", keep_collapsed=False)
    except TypeError:  # pragma: no cover - shapely < 2.1
        fixed = shapely.make_valid(geoms)
        parts, idx = shapely.get_parts(fixed, return_index=True)
        poly = np.isin(shapely.get_type_id(parts), _POLYGONAL)
        out = np.empty(geoms.shape, dtype=object)
        for i in range(geoms.size):
            out[i] = shapely.union_all(parts[poly & (idx == i)])
        return out


def _bbox_pixels(
    geoms: np.ndarray, grid: Grid, clip: Window
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows/cols ``[r0, r1) × [c0, c1)`` of whole pixels touching each bbox, clipped.

    A bbox that reaches less than :data:`FRAC_EPS` of a pixel into a row or
    column (rounding, e.g. in degrees) does not take it: the polygon covers
    at most that share of any cell there, which would be dropped anyway.
    """
    b = shapely.bounds(geoms).reshape(-1, 4)
    t = grid.transform
    ua, ub = (b[:, 0] - t.c) / t.a, (b[:, 2] - t.c) / t.a
    va, vb = (b[:, 1] - t.f) / t.e, (b[:, 3] - t.f) / t.e
    c0 = np.maximum(np.floor(np.minimum(ua, ub) + FRAC_EPS), clip.col_off).astype(np.int64)
    c1 = np.minimum(np.ceil(np.maximum(ua, ub) - FRAC_EPS), clip.col_end).astype(np.int64)
    r0 = np.maximum(np.floor(np.minimum(va, vb) + FRAC_EPS), clip.row_off).astype(np.int64)
    r1 = np.minimum(np.ceil(np.maximum(va, vb) - FRAC_EPS), clip.row_end).astype(np.int64)
    return r0, c0, r1, c1


def _bbox_window(geometry: Any, grid: Grid, clip: Window) -> Window | None:
    """The clipped bounding-box window of one geometry, or None."""
    if geometry is None or shapely.is_empty(geometry):
        return None
    box = _bbox_pixels(np.array([geometry], dtype=object), grid, clip)
    r0, c0, r1, c1 = (int(a[0]) for a in box)
    return Window(row_off=r0, col_off=c0, height=r1 - r0, width=c1 - c0) if r1 > r0 and c1 > c0 else None


def _edges(geoms: np.ndarray, grid: Grid, r0: np.ndarray, c0: np.ndarray) -> tuple[np.ndarray, ...]:
    """Directed, weighted ring edges of polygons in pixel space.

    Coordinates are (col, row) relative to each geometry's window origin
    ``(r0, c0)``.  Returns ``u0, v0, u1, v1, weight, g`` for the edges that
    are not horizontal: ``weight`` is -1 or +1 so that the scan of
    :func:`_rasterise` gives +1 inside every polygon whatever the ring
    orientation, and ``g`` is the geometry of the edge (sorted).
    """
    simple = simple_polygon_coordinates(geoms)
    if simple is not None:  # one ring per geometry, its exterior
        xy, coord_ring = simple
        n_rings = geoms.size
        ring_g = np.arange(n_rings)
        is_exterior = np.ones(n_rings, dtype=bool)
    else:
        parts, part_g = shapely.get_parts(geoms, return_index=True)
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        xy, coord_ring = shapely.get_coordinates(rings, return_index=True)
        n_rings = rings.size
        ring_g = part_g[ring_part]
        is_exterior = np.r_[True, ring_part[1:] != ring_part[:-1]]
    t = grid.transform
    coord_g = ring_g[coord_ring]
    u = (xy[:, 0] - t.c) / t.a - c0[coord_g]
    v = (xy[:, 1] - t.f) / t.e - r0[coord_g]
    is_edge = coord_ring[1:] == coord_ring[:-1]
    e_ring = coord_ring[:-1][is_edge]
    u0, v0 = u[:-1][is_edge], v[:-1][is_edge]
    u1, v1 = u[1:][is_edge], v[1:][is_edge]
    # Twice the signed area of each ring; exteriors count +1, holes -1; the
    # scan direction (see coverage_table, Notes) adds a factor -1.
    ring_area2 = np.bincount(e_ring, (u0 - u1) * (v0 + v1), minlength=n_rings)
    ring_weight = -np.sign(ring_area2) * np.where(is_exterior, 1.0, -1.0)
    weight = ring_weight[e_ring]
    live = (weight != 0) & (v0 != v1)
    return u0[live], v0[live], u1[live], v1[live], weight[live], ring_g[e_ring[live]]


def _split(
    a0: np.ndarray, b0: np.ndarray, a1: np.ndarray, b1: np.ndarray, limit: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Split segments where coordinate ``a`` crosses an integer in ``[0, limit]``.

    Returns the pieces' ``a0, b0, a1, b1``, in order along each segment,
    and the segment of each piece (None when nothing was split).  At a
    crossing, ``a`` is exactly the integer.
    """
    m = a0.size
    amin, amax = np.minimum(a0, a1), np.maximum(a0, a1)
    k_lo = np.maximum(np.floor(amin) + 1.0, 0.0)
    k_hi = np.minimum(np.ceil(amax) - 1.0, limit)
    n = np.maximum(k_hi - k_lo + 1.0, 0.0).astype(np.int64)
    before = np.cumsum(n) - n  # crossings of earlier segments
    n_cross = int(before[-1] + n[-1]) if m else 0
    if n_cross == 0:
        return a0, b0, a1, b1, None
    # The c-th crossing overall, the j-th of segment s, is at a = k_first(s) ± j.
    up = a1 > a0
    step = np.where(up, 1.0, -1.0)
    base = np.where(up, k_lo, k_hi) - step * before
    has = n > 0
    slope = np.zeros(m)
    slope[has] = (b1[has] - b0[has]) / (a1[has] - a0[has])
    c = np.arange(n_cross)
    s = np.repeat(np.arange(m), n)
    k = base.take(s) + step.take(s) * c
    kb = b0.take(s) + (k - a0.take(s)) * slope.take(s)
    # Pieces: segment s has pieces first(s) ... first(s) + n(s); crossing c
    # ends piece c + s and starts piece c + s + 1.
    first = np.arange(m) + before
    p = m + n_cross
    pa0, pb0, pa1, pb1 = np.empty(p), np.empty(p), np.empty(p), np.empty(p)
    src = np.empty(p, dtype=np.int64)
    pa0[first], pb0[first], src[first] = a0, b0, np.arange(m)
    pa1[first + n], pb1[first + n] = a1, b1
    end = c + s
    pa1[end], pb1[end] = k, kb
    pa0[end + 1], pb0[end + 1], src[end + 1] = k, kb, s
    return pa0, pb0, pa1, pb1, src


def _rasterise(
    edges: tuple[np.ndarray, ...],
    item_g: np.ndarray,
    item_dr: np.ndarray,
    height: np.ndarray,
    width: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Signed-area accumulation of polygon edges into per-item buffers.

    Item ``i`` is rows ``item_dr[i] ...`` of geometry ``item_g[i]``'s window,
    ``height[i] × width[i]`` pixels, with a row-major buffer of
    ``height × (width + 1)`` cells (a spare column collects cover that
    leaves the window on the right).

    Returns the coverage of every cell above :data:`FRAC_EPS` (clipped to 1)
    with its item and its row and column within the item, in buffer order.
    """
    u0, v0, u1, v1, weight, edge_g = edges
    stride = width + 1
    sizes = height * stride
    offsets = np.cumsum(sizes) - sizes
    total = int(sizes.sum())
    # Edges of each item's geometry (repeated for each band of a geometry).
    e_start = np.searchsorted(edge_g, np.arange(int(item_g.max()) + 2))
    cnt = e_start[item_g + 1] - e_start[item_g]
    item = np.repeat(np.arange(item_g.size), cnt)
    if item.size != edge_g.size or item_dr.any():
        e = (
            np.arange(item.size)
            - np.repeat(np.cumsum(cnt) - cnt, cnt)
            + np.repeat(e_start[item_g], cnt)
        )
        u0, u1, weight = u0[e], u1[e], weight[e]
        dr = np.repeat(item_dr.astype(np.float64), cnt)
        v0, v1 = v0[e] - dr, v1[e] - dr
    # Only edges crossing the item's rows and not wholly right of it matter.
    h_e, w_e = height[item], width[item]
    keep = (np.minimum(v0, v1) < h_e) & (np.maximum(v0, v1) > 0) & (np.minimum(u0, u1) < w_e)
    if not keep.all():
        u0, v0, u1, v1, weight, item, w_e = (a[keep] for a in (u0, v0, u1, v1, weight, item, w_e))
    # 1. Split at row boundaries in the window; drop pieces outside its rows.
    v0, u0, v1, u1, src = _split(v0, u0, v1, u1, height.astype(np.float64).take(item))
    if src is not None:
        weight, item, w_e = weight.take(src), item.take(src), w_e.take(src)
    r = np.floor(0.5 * (v0 + v1))
    keep = (v0 != v1) & (r >= 0) & (r < height.take(item))
    if not keep.all():
        u0, v0, u1, v1, r, weight = u0[keep], v0[keep], u1[keep], v1[keep], r[keep], weight[keep]
        item, w_e = item[keep], w_e[keep]
    # 2. Split at column boundaries in the window; clamp pieces into [0, width].
    w_f = w_e.astype(np.float64)
    u0, v0, u1, v1, src = _split(u0, v0, u1, v1, w_f)
    if src is not None:
        r, weight, item, w_f = r.take(src), weight.take(src), item.take(src), w_f.take(src)
    np.clip(u0, 0.0, w_f, out=u0)
    np.clip(u1, 0.0, w_f, out=u1)
    dv = v1 - v0
    um = 0.5 * (u0 + u1)
    c = np.minimum(np.floor(um), w_f - 1.0)
    cover = weight * dv
    cell = offsets[item] + (r * (w_f + 1.0) + c).astype(np.int64)
    area = np.bincount(cell, cover * (c + 1.0 - um), minlength=total)
    acc = np.bincount(cell + 1, cover, minlength=total)
    # Cumulative sum along each row: subtract each row's own total at the start
    # of the next row (the totals are ~0: rings are closed and the spare column
    # takes what leaves the window), so that the sums restart exactly.
    row_start = np.repeat(offsets, height) + _ramp(height) * np.repeat(stride, height)
    row_sum = np.add.reduceat(acc, row_start)
    acc[row_start[1:]] -= row_sum[:-1]
    np.cumsum(acc, out=acc)
    area += acc
    cells = np.flatnonzero(area > FRAC_EPS)
    it = np.repeat(np.arange(item_g.size, dtype=np.int64), sizes)[cells]
    rr, cc = np.divmod(cells - offsets[it], stride[it])
    inside = cc < width[it]  # drop the spare column
    cells, it, rr, cc = cells[inside], it[inside], rr[inside], cc[inside]
    return np.minimum(area[cells], 1.0), it, rr, cc


def _ramp(counts: np.ndarray) -> np.ndarray:
    """``0, 1, ..., counts[0]-1, 0, 1, ..., counts[1]-1, ...``."""
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
