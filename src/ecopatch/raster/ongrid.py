"""Reading any raster source onto any grid: pixel alignment, reprojection of arrays, windows of sources.

Pure functions of grids and arrays plus :func:`read_on_grid`, which reads a
:class:`~ecopatch.raster.source.RasterSource` through its ``read`` and brings
the layers derived from its pixels onto an analysis grid.  No file is opened
here: the analyses use these freely.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from ecopatch.errors import NoOverlapError
from ecopatch.geo.grid import Grid, Window
from ecopatch.options import WINDOWS
from ecopatch.raster.quiet import ignoring
from ecopatch.raster.source import Observation, RasterSource

__all__ = [
    "Derive",
    "decimated_grid",
    "ground_unit_m",
    "integer_ratio",
    "read_on_grid",
    "read_pair",
    "reproject_array",
    "same_pixels",
    "source_window",
]


def integer_ratio(fine: Grid, coarse: Grid) -> tuple[int, int, int, int] | None:
    """(ratio_x, ratio_y, col_shift, row_shift) if ``coarse`` pixels are whole blocks of ``fine``."""
    if fine is coarse:  # a stack's bands on the scene's own grid: asked once per band and window
        return None if fine.transform.e > 0 else (1, 1, 0, 0)
    if fine.crs is not coarse.crs and fine.crs != coarse.crs:
        return None
    fx, fy = fine.res
    cx, cy = coarse.res
    rx, ry = cx / fx, cy / fy
    if abs(rx - round(rx)) > 1e-6 or abs(ry - round(ry)) > 1e-6 or round(rx) < 1 or round(ry) < 1:
        return None
    dc = (coarse.transform.c - fine.transform.c) / fx
    dr = (fine.transform.f - coarse.transform.f) / fy
    if abs(dc - round(dc)) > 1e-6 or abs(dr - round(dr)) > 1e-6:
        return None
    if fine.transform.e > 0 or coarse.transform.e > 0:
        return None
    return int(round(rx)), int(round(ry)), int(round(dc)), int(round(dr))


def source_window(src: Grid, dst: Grid, window: Window, pad: int = 2) -> Window | None:
    """The window of ``src`` under ``window`` of ``dst`` (any CRS), padded by ``pad`` pixels; None outside."""
    sub = dst.subgrid(window)
    if src.crs == dst.crs:
        bounds = sub.bounds
    else:
        bounds = sub.footprint_in(src.crs).bounds
    return src.window_from_bounds(bounds, pad=pad, clip=True)


def reproject_array(
    arr: np.ndarray, src: Grid, dst: Grid, *, resampling: str, fill: float = np.nan
) -> np.ndarray:
    """``arr`` on grid ``src`` warped onto grid ``dst`` (float32, NaN as no data; rasterio resampling name)."""
    import rasterio.errors
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    out = np.full(dst.shape, fill, dtype=np.float32)
    # the arrays come with explicit transforms; rasterio still warns "no geotransform" for an
    # identity one (a grid of 1-unit pixels at the origin, south-up): never a real image's
    with ignoring(rasterio.errors.NotGeoreferencedWarning):
        reproject(
            source=arr.astype(np.float32, copy=False),
            destination=out,
            src_transform=src.transform,
            src_crs=src.crs.to_wkt(),
            dst_transform=dst.transform,
            dst_crs=dst.crs.to_wkt(),
            resampling=getattr(Resampling, resampling),
            src_nodata=np.nan,
            dst_nodata=np.nan,
            num_threads=1,
        )
    return out


Derive = Callable[[Observation], Mapping[str, np.ndarray]]


def same_pixels(a: Grid, b: Grid) -> tuple[int, int] | None:
    """Row/col offset of grid ``b``'s origin in ``a``'s pixels when their pixels coincide."""
    r = integer_ratio(a, b)
    if r is None or r[0] != 1 or r[1] != 1:
        return None
    return r[3], r[2]


A = TypeVar("A")
B = TypeVar("B")
_THREADS = itertools.count()
_TURN = threading.local()


def read_pair(read_before: Callable[[], A], read_after: Callable[[], B]) -> tuple[A, B]:
    """Both dates' reads of one window: ``before`` first in one thread, ``after`` first in the next.

    A pass's two threads take neighbouring windows at about the same time,
    and those usually need the same blocks of each date's file.  Read in
    the same order, the second thread waits for the first's block of the
    before date (:meth:`ecopatch.raster.blocks.TileCache.read_into`), then
    for its block of the after date; each thread keeps its own order (the
    threads of a pass get alternate ones), so one decodes a before block
    while the other decodes an after block, and each then copies the
    other's.  The reads are pure functions of the window: the results do
    not depend on the order.
    """
    flip = getattr(_TURN, "flip", None)
    if flip is None:
        flip = _TURN.flip = bool(next(_THREADS) % 2)
    if flip:
        after = read_after()
        return read_before(), after
    before = read_before()
    return before, read_after()


def read_on_grid(
    scene: RasterSource,
    grid: Grid,
    window: Window | None = None,
    *,
    bands: Sequence[str] | None = None,
    derive: Derive | None = None,
    min_valid: float = 0.5,
    max_source_px: int = WINDOWS.max_source_px,
) -> dict[str, np.ndarray]:
    """Read a scene onto ``window`` of another grid, deriving layers at native resolution first.

    ``derive`` turns the scene's own pixels into layers (for example class
    fractions or an index); the layers are then brought onto ``grid`` by
    area-weighted averaging when the scene is finer (a drone mosaic onto a
    10 m grid: each 10 m cell gets the mean of the ~10 000 drone pixels in
    it) or bilinear interpolation when it is coarser.  Deriving before
    resampling keeps fractions linear: a 10 m cell half covered by grass in
    the drone mosaic gets vegetation fraction 0.5.

    Parameters
    ----------
    scene : Scene
        The imagery.
    grid : Grid
        The analysis grid (any CRS and resolution).
    window : Window, optional
        Pixels of ``grid`` to produce; default the whole grid.
    bands : sequence of str, optional
        Bands to read; default all the scene has.
    derive : callable, optional
        ``derive(observation) -> {name: float array}`` on the scene's own
        grid; NaN where not observed.  Default: the bands themselves.
    min_valid : float
        A target cell is valid when at least this share (0-1) of the scene
        pixels under it are valid; otherwise its layers are NaN.
    max_source_px : int
        Upper bound on the scene pixels read at once; larger target windows
        are split, so memory stays bounded for drone mosaics.

    Returns
    -------
    dict of str to ndarray of float32, shape ``window.shape``
        The derived layers plus ``"valid_fraction"`` (0-1).
    """
    window = window if window is not None else grid.window
    derive = derive or _bands_as_layers
    offset = same_pixels(scene.grid, grid)
    if offset is not None:
        dr, dc = offset
        same = Window(row_off=window.row_off + dr, col_off=window.col_off + dc,
                      height=window.height, width=window.width)
        obs = scene.read(bands, same)
        layers = {k: np.asarray(v, dtype=np.float32) for k, v in derive(obs).items()}
        layers["valid_fraction"] = obs.valid.astype(np.float32)
        return layers

    sw = source_window(scene.grid, grid, window)
    if sw is None:
        return _empty_layers(scene, derive, bands, window.shape)
    if sw.height * sw.width > max_source_px and (window.height > 1 or window.width > 1):
        return _split_read(scene, grid, window, bands, derive, min_valid, max_source_px)

    obs = scene.read(bands, sw)
    derived = derive(obs)
    src = scene.grid.subgrid(sw)
    dst = grid.subgrid(window)
    finer = scene.grid.res[0] * ground_unit_m(scene.grid) < grid.res[0] * ground_unit_m(grid)
    res = "average" if finer else "bilinear"
    out: dict[str, np.ndarray] = {}
    vf = reproject_array(obs.valid.astype(np.float32), src, dst, resampling=res)
    vf = np.nan_to_num(vf, nan=0.0)
    bad = vf < min_valid
    for k, v in derived.items():
        r = reproject_array(np.asarray(v, dtype=np.float32), src, dst, resampling=res)
        r[bad] = np.nan
        out[k] = r
    out["valid_fraction"] = vf
    return out


def ground_unit_m(grid: Grid) -> float:
    """Metres per CRS unit along x (about, for geographic CRSs: at the grid's mid-latitude)."""
    if grid.is_geographic:
        return 111_320.0 * math.cos(math.radians((grid.bounds[1] + grid.bounds[3]) / 2))
    info = grid.crs.axis_info
    return info[0].unit_conversion_factor if info else 1.0


def _bands_as_layers(obs: Observation) -> Mapping[str, np.ndarray]:
    return obs.bands


def _empty_layers(scene, derive, bands, shape):
    tiny = scene.read(bands, Window(row_off=0, col_off=0, height=1, width=1))
    names = list(derive(tiny).keys())
    out = {k: np.full(shape, np.nan, dtype=np.float32) for k in names}
    out["valid_fraction"] = np.zeros(shape, dtype=np.float32)
    return out


def _split_read(scene, grid, window, bands, derive, min_valid, max_source_px):
    h2, w2 = max(1, window.height // 2), max(1, window.width // 2)
    parts = []
    for r0, rh in ((window.row_off, h2), (window.row_off + h2, window.height - h2)):
        for c0, cw in ((window.col_off, w2), (window.col_off + w2, window.width - w2)):
            if rh > 0 and cw > 0:
                parts.append(Window(row_off=r0, col_off=c0, height=rh, width=cw))
    out: dict[str, np.ndarray] = {}
    for p in parts:
        sub = read_on_grid(scene, grid, p, bands=bands, derive=derive, min_valid=min_valid,
                           max_source_px=max_source_px)
        rel = p.relative_to(window)
        for k, v in sub.items():
            if k not in out:
                out[k] = np.full(window.shape, np.nan, dtype=np.float32)
            out[k][rel.slices] = v
    return out


def decimated_grid(scene: RasterSource, *, aoi_bounds: tuple[float, float, float, float] | None = None,
                   aoi_crs: Any = None, margin_m: float = 0.0, max_pixels: int = 1_000_000) -> Grid:
    """The grid of a decimated read: the window of ``scene.grid`` over the area, every k-th pixel.

    Raises
    ------
    NoOverlapError
        The area of interest does not overlap the scene.
    """
    g = scene.grid
    if aoi_bounds is not None:
        from shapely.geometry import box

        poly = box(*aoi_bounds)
        crs = aoi_crs if aoi_crs is not None else g.crs
        from ecopatch.geo.geodesy import as_crs, transformer

        if as_crs(crs) != g.crs:
            import shapely

            tr = transformer(crs, g.crs)
            poly = shapely.transform(shapely.segmentize(poly, (aoi_bounds[2] - aoi_bounds[0]) / 20 or 1),
                                     lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
        pad = int(math.ceil(margin_m / (g.res[0] * ground_unit_m(g))))
        win = g.window_from_bounds(poly.bounds, pad=pad, clip=True)
        if win is None:
            raise NoOverlapError(
                f"{scene.source}: the area of interest {tuple(round(float(v), 6) for v in aoi_bounds)} "
                "does not overlap the scene"
            )
    else:
        win = g.window
    k = max(1, math.ceil(math.sqrt(win.height * win.width / max_pixels)))
    shape = (max(1, math.ceil(win.height / k)), max(1, math.ceil(win.width / k)))
    a = g.subgrid(win).transform
    from affine import Affine

    return Grid(shape, Affine(a.a * win.width / shape[1], 0, a.c, 0, a.e * win.height / shape[0], a.f), g.crs)
