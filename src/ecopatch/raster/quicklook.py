"""Quick-looks: decimated reads of scenes for maps, reports and scene statistics.

A map panel of a full Sentinel-2 tile needs a few hundred thousand pixels,
not 120 million.  :func:`read_decimated` reads every k-th pixel of a scene
(or of an area of it) so that at most ``max_pixels`` come back:

* from the file's **overviews** where it has them (GDAL picks the level);
* where it has none, in **one pass over the file for all the bands asked**
  (the bands of a pixel-interleaved file, and the cloud band with them, in
  one GDAL read), files read in parallel, each on a handle of its own that
  is closed afterwards, so GDAL's cached blocks go with it.  GDAL's block
  cache is sized for the read (a row of the file's blocks) for its length
  only (:func:`ecopatch.raster.gdalcache.gdal_cache`);
* **building overviews first** when the caller allows it
  (``build_overviews=True``, or :func:`build_overviews`): an external
  ``.ovr`` beside each file, written under a temporary name and renamed,
  which every later quick-look of the file uses.

Inside :func:`shared_reads` (what a scheduled run does around its maps,
report, field-package chips and clear-sky share) each scene is read once at
a base resolution and every quick-look coarser than that is cut from it, so
a report of N figures costs one read per scene plus the figures' own
drawing.

Examples
--------
>>> from ecopatch.raster.quicklook import read_decimated, shared_reads
>>> with shared_reads():                                   # doctest: +SKIP
...     a = read_decimated(scene, max_pixels=250_000)      # reads the scene once
...     b = read_decimated(scene, aoi_bounds=box, max_pixels=60_000)  # cut from the same read
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecopatch.errors import RasterReadError
from ecopatch.geo.grid import Grid
from ecopatch.raster import blocks
from ecopatch.raster.gdalcache import gdal_cache
from ecopatch.raster.masks import grow_clouds
from ecopatch.raster.ongrid import decimated_grid, ground_unit_m
from ecopatch.raster.quiet import ignoring, short
from ecopatch.raster.source import Observation

if TYPE_CHECKING:
    from ecopatch.raster.scene import Scene

__all__ = ["build_overviews", "read_decimated", "shared_reads"]

log = logging.getLogger(__name__)

#: Pixels of the base read of each scene inside :func:`shared_reads` (per band).
BASE_PIXELS = 2_000_000
#: Files smaller than this (pixels) get no overviews built: a one-pass read of them is cheap.
MIN_OVERVIEW_PX = 2048 * 2048


# ---------------------------------------------------------------------------
# The decimated grid
# ---------------------------------------------------------------------------
# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------
def read_decimated(
    scene: Scene,
    *,
    aoi_bounds: tuple[float, float, float, float] | None = None,
    aoi_crs: Any = None,
    margin_m: float = 0.0,
    max_pixels: int = 1_000_000,
    bands: Sequence[str] | None = None,
    build_overviews: bool = False,
    within: Sequence[tuple[float, float, float, float]] | None = None,
) -> Observation:
    """A decimated read of a scene (or of an area of interest), for statistics and quick-looks.

    Reads every k-th pixel (nearest) so that at most ``max_pixels`` are
    returned: from the files' overviews where they have them, else in one
    pass over each file for all the bands asked (see the module notes).
    Inside :func:`shared_reads` the pixels come from the scene's shared
    base read when it is fine enough.

    Parameters
    ----------
    scene : Scene
    aoi_bounds : tuple of float, optional
        ``(left, bottom, right, top)`` in ``aoi_crs``; default the whole scene.
    aoi_crs : CRS-like, optional
        CRS of ``aoi_bounds`` (default the scene's).
    margin_m : float
        Ground distance added around the area of interest, m.
    max_pixels : int
        Upper bound on the returned pixels.
    bands : sequence of str, optional
        Bands to read; default all.
    build_overviews : bool
        Where a large file (at least 2048 × 2048 pixels) has no overviews
        and the read is decimated, build them first (an external ``.ovr``
        beside the file, see :func:`build_overviews`).  Off by default: it
        writes beside the user's imagery.
    within : sequence of (left, bottom, right, top), optional
        Rectangles in ``aoi_crs`` where the pixels are wanted: a GeoTIFF
        read without overviews then decodes only the blocks under them,
        and every decimated pixel whose centre is in none of them is NaN
        and not valid (read or not).  For reads that only matter near an
        area of interest scattered over a large scene (the detection's
        background around the reserves).  Default: everywhere.

    Returns
    -------
    Observation
        On a coarser grid covering the same ground; reflectance NaN where
        not valid (no data, saturated, cloud: the product's mask grown by
        the scene's cloud buffer at the decimated resolution; outside
        ``within``).
    """
    from ecopatch.raster.fileread import band_reflectance
    from ecopatch.raster.scene import computed_clear

    names = list(bands) if bands is not None else list(scene.bands)
    for n in names:
        scene.band(n)
    dgrid = decimated_grid(scene, aoi_bounds=aoi_bounds, aoi_crs=aoi_crs, margin_m=margin_m, max_pixels=max_pixels)
    wanted = wanted_pixels(dgrid, within, aoi_crs)
    shared = _ACTIVE.get()
    raw = shared.cut(scene, names, dgrid) if shared is not None else None
    if raw is None:
        build = build_overviews or (shared is not None and shared.build_overviews)
        raw = _fetch(scene, names, dgrid, build=build, handles=shared.handles if shared is not None else None,
                     wanted=wanted)
    out: dict[str, np.ndarray] = {}
    valid = np.ones(dgrid.shape, dtype=bool) if wanted is None else wanted.copy()
    for n in names:
        refl, ok = band_reflectance(raw[n], scene.band(n))
        out[n] = refl
        valid &= ok
    if scene.mask is not None and scene.mask.kind == "computed":
        valid &= computed_clear(scene, dgrid)
    elif scene.mask is not None:
        valid &= grow_clouds(raw[_MASK], scene.mask.kind, scene._buffer_px(dgrid.res[0] * ground_unit_m(dgrid)))
    valid &= ~scene._collar(out)
    for n in names:
        out[n][~valid] = np.nan
    return Observation(out, valid, dgrid)


_MASK = "\0mask"


def wanted_pixels(dgrid: Grid, within: Sequence[tuple[float, float, float, float]] | None,
                  crs: Any = None) -> np.ndarray | None:
    """Pixels of ``dgrid`` whose centres lie in any of the rectangles ``within`` (in ``crs``); None: all of them.

    A rectangle in another CRS than the grid's is replaced by the bounds of
    its outline (densified) in the grid's CRS.
    """
    if within is None:
        return None
    rects = np.asarray(within, dtype=np.float64).reshape(-1, 4)
    if crs is not None and len(rects):
        from ecopatch.geo.geodesy import as_crs

        if as_crs(crs) != dgrid.crs:
            from rasterio.warp import transform_bounds

            rects = np.asarray([transform_bounds(as_crs(crs), dgrid.crs, *r, densify_pts=21) for r in rects])
    want = np.zeros(dgrid.shape, dtype=bool)
    t = dgrid.transform
    xs = t.c + t.a * (np.arange(dgrid.width) + 0.5)
    ys = t.f + t.e * (np.arange(dgrid.height) + 0.5)
    for left, bottom, right, top in rects:
        cols = np.flatnonzero((xs >= left) & (xs <= right))
        rows = np.flatnonzero((ys >= bottom) & (ys <= top))
        if len(cols) and len(rows):
            want[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = True
    return None if want.all() else want


def _sources(scene: Scene, names: Sequence[str]) -> dict[str, tuple[str, int, Grid]]:
    """(path, band, file grid) of each band asked, and of the product mask under :data:`_MASK`."""
    src = {}
    for n in names:
        ref = scene.band(n)
        src[n] = (ref.path, ref.index, ref.grid)
    m = scene.mask
    if m is not None and m.kind != "computed":
        src[_MASK] = (m.path, m.index, m.grid)
    return src


def _fetch(scene: Scene, names: Sequence[str], dgrid: Grid, *, build: bool = False,
           handles: _Handles | None = None, wanted: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Raw values (DN, mask codes) of ``names`` and the mask on ``dgrid``: one read per file, files in parallel.

    ``wanted``: the pixels of ``dgrid`` needed (:func:`wanted_pixels`); the others may be left 0.
    """
    src = _sources(scene, names)
    by_file: dict[str, list[tuple[str, int]]] = {}
    grids: dict[str, Grid] = {}
    for key, (path, index, g) in src.items():
        by_file.setdefault(path, []).append((key, index))
        grids[path] = g
    if build:
        for path in by_file:
            _maybe_build(path, grids[path], dgrid)
    own = handles is None
    pool = handles or _Handles()
    try:
        need = sum(_row_bytes(pool, p, grids[p], dgrid, wanted=wanted is not None) for p in by_file)
        jobs = [(p, sorted({i for _, i in by_file[p]})) for p in by_file]
        with gdal_cache(2 * need):
            if len(jobs) > 1:
                with ThreadPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as ex:
                    got = list(ex.map(lambda j: _decimate_file(pool, j[0], j[1], grids[j[0]], dgrid, wanted), jobs))
            else:
                got = [_decimate_file(pool, p, idx, grids[p], dgrid, wanted) for p, idx in jobs]
    finally:
        if own:
            pool.close()
    out: dict[str, np.ndarray] = {}
    for (path, idx), data in zip(jobs, got):
        for key, index in by_file[path]:
            out[key] = data[idx.index(index)]
    return out


def _decimate_file(pool: _Handles, path: str, indexes: list[int], src: Grid, dgrid: Grid,
                   wanted: np.ndarray | None = None) -> np.ndarray:
    """``indexes`` of ``path`` on ``dgrid`` (nearest): from overviews where the file has them, else one pass.

    One GDAL read, or strips of whole blocks for a pixel-interleaved
    GeoTIFF (:func:`_decimate_in_strips`).  ``wanted`` (pixels of
    ``dgrid``, see :func:`wanted_pixels`): a GeoTIFF
    without overviews fine enough is read in strips
    (:func:`_decimate_in_strips`), only the blocks under wanted pixels;
    the other pixels are 0.
    """
    from rasterio.enums import Resampling

    with pool.use(path) as ds:
        shape = (len(indexes), *dgrid.shape)
        win = src.window_from_bounds(dgrid.bounds, clip=True)
        if win is None:
            return np.zeros(shape, dtype=ds.dtypes[indexes[0] - 1])
        try:
            k = min(win.width / shape[2], win.height / shape[1])
            lay = _in_strips_layout(path, ds, k, wanted is not None)
            if lay is not None:
                return _decimate_in_strips(ds, indexes, win, shape, lay, wanted)
            return ds.read(indexes, window=win.to_rasterio(), out_shape=shape, resampling=Resampling.nearest)
        except Exception as exc:
            raise RasterReadError(
                f"{path}: decimated read of band(s) {indexes} failed ({short(exc)}); the file is "
                "probably truncated or corrupt: re-download or re-export it"
            ) from exc


#: Largest strip of a pixel-interleaved file decoded at once by :func:`_decimate_in_strips`, bytes
#: (but at least one block).  GDAL's cache holds one such read (:func:`_row_bytes`): both dates of
#: a 7-band stack tiled 512 read at once peaked at 0.44 GiB with 64 MiB, 0.29 GiB with 16 MiB.
_STRIP_BYTES = 16 * 1024 * 1024


def _in_strips(lay: blocks.FileLayout, k: float) -> bool:
    """Whether a decimated read (every ``k``-th pixel) of the file goes by :func:`_decimate_in_strips`."""
    return (lay.driver == "GTiff" and lay.interleave == "pixel" and lay.count > 1 and k >= 1.5
            and not [f for f in lay.overviews if f <= k])


def _any_strips_layout(ds: Any, k: float) -> blocks.FileLayout | None:
    """The layout of a GeoTIFF of any interleave without overviews fine enough to decimate by ``k``, or None.

    Such a file can be decimated in strips (:func:`_decimate_in_strips`,
    the same pixels as GDAL's read) when only some of its blocks are wanted.
    """
    lay = blocks.layout_of(ds)
    ok = lay.driver == "GTiff" and k >= 1.5 and not [f for f in lay.overviews if f <= k]
    return lay if ok else None


def _in_strips_layout(path: str, ds: Any, k: float, wanted: bool) -> blocks.FileLayout | None:
    """The layout :func:`_decimate_file` reads ``ds`` in strips by (:func:`_decimate_in_strips`), or None.

    :func:`_strips_layout`'s, or where only some pixels are ``wanted``,
    :func:`_any_strips_layout`'s.  :func:`_row_bytes` sizes GDAL's cache by
    the same rule.
    """
    lay = _strips_layout(path, ds, k)
    if lay is None and wanted:
        lay = _any_strips_layout(ds, k)
    return lay


def _strips_layout(path: str, ds: Any, k: float) -> blocks.FileLayout | None:
    """The layout a decimated read of ``ds`` goes by in strips (:func:`_decimate_in_strips`), or None (GDAL's).

    A pixel-interleaved GeoTIFF of several bands without overviews fine
    enough: its own layout.  A VRT of several bands that only pastes
    whole-pixel copies of such GeoTIFFs (a mosaic or a band selection of
    stacks, :func:`ecopatch.raster.vrt.vrt_simple_sources`): the layout of
    its first source.  GDAL's decimated read of that VRT goes band by band
    and decodes every source tile again for each band (a 10980² 7-band
    stack through a VRT: 24.0 s against 3.7 s); a VRT window of all bands
    decodes each source tile once while GDAL's cache holds the strip.
    """
    lay = blocks.layout_of(ds)
    if lay.driver != "VRT" or lay.count < 2:
        return lay if _in_strips(lay, k) else None
    from ecopatch.raster.fileread import dataset_layout, open_dataset
    from ecopatch.raster.vrt import vrt_simple_sources

    found = []
    for index in range(1, lay.count + 1):
        srcs = vrt_simple_sources(path, ds, index, open_dataset)
        if srcs is None or not srcs.parts:
            return None
        found += [part[0] for part in srcs.parts]
    layouts = [dataset_layout(f)[1] for f in dict.fromkeys(found)]
    return layouts[0] if all(_in_strips(s, k) for s in layouts) else None


def _decimate_in_strips(ds: Any, indexes: list[int], win: Any, shape: tuple[int, int, int],
                        lay: blocks.FileLayout, wanted: np.ndarray | None = None) -> np.ndarray:
    """Nearest-neighbour decimation of a GeoTIFF without overviews, each block decoded once.

    GDAL's decimated read of a pixel-interleaved file (``out_shape``) goes
    band by band, and each band's pass decodes every block again, all bands
    of it: six to seven times a full decode for a 7-band stack.  Here the
    file is read in block-aligned strips, all bands asked in one read per
    strip (one decode of each block), and every k-th pixel taken from the
    strip, at the same pixels as GDAL's nearest rule (the source pixel
    under each output pixel's centre, :func:`_centre_indexes`).  A strip
    is at most :data:`_STRIP_BYTES` decoded, but at least a row of blocks;
    a tiled file's row of blocks that is larger (512-pixel tiles across a
    10980-pixel tile: 79 MB for 7 bands) is read a run of whole tiles at a
    time (:func:`_strip_parts`).

    Only the blocks holding a sampled row are read: a striped file whose
    strips are fewer rows than the step between sampled rows (one row per
    strip, as GDAL writes wide multi-band rows) is decoded at every k-th
    strip only.

    ``wanted`` (pixels of the output): only the blocks under wanted pixels
    are read, tile by tile in tiled files, strip by strip in striped ones;
    the other output pixels are 0.  Files of any interleave can be read so.
    """
    from rasterio.windows import Window as RioWindow

    n, out_h, out_w = shape
    rows = np.clip(_centre_indexes(win.row_off, win.height, out_h), 0, ds.height - 1)
    cols = np.clip(_centre_indexes(win.col_off, win.width, out_w), 0, ds.width - 1)
    bh = max(1, lay.block[0])
    per_px = lay.count if lay.interleave == "pixel" else len(indexes)
    px_bytes = per_px * np.dtype(ds.dtypes[indexes[0] - 1]).itemsize
    parts = _strip_parts(int(cols.min()), int(cols.max()) + 1, lay, bh * px_bytes)
    widest = max(c1 - c0 for c0, c1 in parts)
    if wanted is not None and lay.tiled:
        # tile by tile, then runs of wanted tiles no wider than the parts
        bw = lay.block[1]
        tiles = [(max(c0, a), min(c1, a + bw)) for c0, c1 in parts for a in range((c0 // bw) * bw, c1, bw)]
        parts = [p for p in tiles if p[0] < p[1]]
    h = max(bh, (_STRIP_BYTES // max(1, widest * px_bytes * bh)) * bh)
    if wanted is not None and lay.tiled:
        h = bh  # a row of tiles at a time: rows of tiles without wanted pixels are not decoded
    out = (np.empty if wanted is None else np.zeros)(shape, dtype=ds.dtypes[indexes[0] - 1])
    # rows and cols ascend: each strip's rows and each part's columns are a range of the output's
    spans = [(int(np.searchsorted(cols, c0)), int(np.searchsorted(cols, c1))) for c0, c1 in parts]
    if wanted is not None:
        # wanted pixels counted along each output row, so a part's count is one subtraction
        counts = np.zeros((out_h, out_w + 1), dtype=np.int32)
        np.cumsum(wanted, axis=1, out=counts[:, 1:])
        lo = np.array([a for a, _ in spans], dtype=np.intp)
        hi = np.array([b for _, b in spans], dtype=np.intp)
    start = (int(rows.min()) // bh) * bh
    end = int(rows.max()) + 1
    for top in range(start, end, h):
        ra, rb = int(np.searchsorted(rows, top)), int(np.searchsorted(rows, top + h))
        if ra >= rb:
            continue
        ri = np.arange(ra, rb)
        if wanted is not None:
            hit = np.asarray(((counts[ra:rb, hi] - counts[ra:rb, lo]) > 0).any(axis=0))
        runs: list[tuple[int, int, int, int]] = []  # first and end column of the file, of the output
        for p, ((c0, c1), (a, b)) in enumerate(zip(parts, spans)):
            if a >= b or (wanted is not None and not hit[p]):
                continue
            if runs and wanted is not None and runs[-1][1] == c0 and c1 - runs[-1][0] <= widest:
                runs[-1] = (runs[-1][0], c1, runs[-1][2], b)
            else:
                runs.append((c0, c1, a, b))
        if not runs:
            continue
        if wanted is not None:
            # the strip's rows with a wanted pixel
            within = np.zeros(rb - ra, dtype=bool)
            for _, _, a, b in runs:
                within |= (counts[ra:rb, b] - counts[ra:rb, a]) > 0
            ri = ri[within]
        # in runs of adjacent rows of blocks: a striped file's strips of fewer rows than the step
        # between sampled rows are decoded only where a sampled row is (every k-th strip)
        groups = np.split(ri, np.flatnonzero(np.diff(rows[ri] // bh) > 1) + 1)
        for rg in groups:
            r0, r1 = int(rows[rg].min()), int(rows[rg].max()) + 1
            # whole blocks: rows from the first sampled row's block start to the last one's block end
            b0 = (r0 // bh) * bh
            b1 = min(ds.height, -(-r1 // bh) * bh)
            for c0, c1, a, b in runs:
                ci = np.arange(a, b)
                data = ds.read(indexes, window=RioWindow(c0, b0, c1 - c0, b1 - b0))
                out[:, rg[:, None], ci[None, :]] = data[:, (rows[rg] - b0)[:, None], (cols[ci] - c0)[None, :]]
    return out


#: Added to the source coordinate of an output pixel's centre before it is floored, as GDAL does
#: in its nearest-neighbour decimation (``GDALRasterBand::IRasterIO``): 166.5 × 1000 / 333 is 500
#: exactly, but 499.99999999999994 in floating point.
_CENTRE_EPS = 1e-10


def _centre_indexes(off: float, size: float, n: int) -> np.ndarray:
    """Source pixel under the centre of each of ``n`` output pixels over ``size`` source pixels from ``off``."""
    return np.floor(off + (np.arange(n) + 0.5) * (size / n) + _CENTRE_EPS).astype(np.int64)


def _strip_parts(c0: int, c1: int, lay: blocks.FileLayout, column_bytes: int) -> list[tuple[int, int]]:
    """Column ranges a strip of :func:`_decimate_in_strips` is read in.

    Runs of whole tiles, each at most :data:`_STRIP_BYTES` for one row of
    blocks (``column_bytes``: one pixel column of it, all bands), at least
    one tile; the whole width for a striped file, whose strips are decoded
    whole anyway.
    """
    bw = lay.block[1]
    if not lay.tiled or (c1 - c0) * column_bytes <= _STRIP_BYTES:
        return [(c0, c1)]
    step = max(1, _STRIP_BYTES // max(1, bw * column_bytes)) * bw
    first = (c0 // bw) * bw
    return [(max(c0, a), min(c1, a + step)) for a in range(first, c1, step)]


#: Largest GDAL block cache (bytes) a decimated read of one file is given to hold the whole area it
#: reads at the overview level used (see :func:`_row_bytes`).
_WHOLE_READ_BYTES = 64 * 1024 * 1024


def _row_bytes(pool: _Handles, path: str, src: Grid, dgrid: Grid, *, wanted: bool = False) -> int:
    """Bytes of the file's blocks GDAL must hold for a decimated read to decode each block once.

    One row of blocks across the read (all bands of them), as GDAL goes
    down the rows; but a pixel-interleaved file read from its overviews is
    read band after band, each band going over every row, so GDAL must
    hold every block of the area at that overview level (up to
    :data:`_WHOLE_READ_BYTES`): with one row's worth, the full tile's
    7-band stack took 0.49 s instead of 0.04 s, every block decoded once
    per band.  A pixel-interleaved file read by :func:`_decimate_in_strips`
    reads whole blocks, each once: GDAL then holds one such read, none where
    the reads are of one block each (blocks of :data:`_STRIP_BYTES` or
    more, decoded once into the handle's buffer for every band).  A GeoTIFF
    of any interleave is read the same way when only some pixels are
    ``wanted`` (the detection's background near the reserves,
    :func:`_decimate_file`); where its blocks hold one band each (a band
    file, a band-interleaved stack) GDAL decodes each block once in a
    strip's read whatever its cache holds, so it gets none: a row of blocks
    of every band was 784 MiB for a band-interleaved 7-band stack tiled
    2048 (the detection's set-up peaked at 1.38 GiB instead of 0.64), and a
    strip's worth for each band file of a SAFE product of GeoTIFF bands
    (16 MiB each) kept 0.18 GiB of freed heap through the pass that
    followed (the full pair's peak 0.96-1.02 GiB, now 0.81-0.85).
    """
    with pool.use(path) as ds:
        lay = blocks.layout_of(ds)
        win = src.window_from_bounds(dgrid.bounds, clip=True)
        if win is None:
            return 0
        k = win.width / max(1, dgrid.width)
        level = max([f for f in lay.overviews if f <= k], default=1)
        bh, bw = lay.block
        px = np.dtype(lay.dtype).itemsize * lay.count
        strips = _in_strips_layout(path, ds, min(k, win.height / max(1, dgrid.height)), wanted)
        if strips is not None:
            # each block is read once, by one read of whole blocks of at most _STRIP_BYTES, and a block
            # more for the part-blocks at its ends; no strip is more than the whole area read.  Blocks of
            # _STRIP_BYTES or more are read one at a time (a 7-band stack tiled 2048: 56 MiB for uint16,
            # 112 MiB for float32; 512-row strips: 75 MiB), all bands in one read: GDAL decodes such a
            # block once into its handle's own buffer for every band, and its cache would only hold a
            # copy (a float32 stack tiled 2048: 0.42-0.44 s a tile either way, 469 against 197 MiB held).
            # Blocks of one band each are decoded once in a strip's read, band after band, with no cache
            if strips.block_set_bytes >= _STRIP_BYTES or strips.count == 1 or strips.interleave != "pixel":
                return 0
            return min(_STRIP_BYTES, int(win.width * win.height * px)) + strips.block_set_bytes
        across = math.ceil(min(win.width / level, lay.shape[1] / level) / min(bw, lay.shape[1])) + 1
        row = int(across * bh * min(bw, lay.shape[1]) * px)
        if lay.interleave == "pixel" and lay.count > 1 and level > 1:
            down = math.ceil(min(win.height / level, lay.shape[0] / level) / min(bh, lay.shape[0])) + 1
            whole = row * down
            if whole <= _WHOLE_READ_BYTES:
                return whole
        return row


class _Handles:
    """Dataset handles of one quick-look job, closed at its end (GDAL frees their cached blocks then)."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()

    @contextmanager
    def use(self, path: str) -> Iterator[Any]:
        import rasterio
        import rasterio.errors

        key = (path, threading.get_ident())
        with self._lock:
            ds = self._open.get(key)
        if ds is None:
            try:
                with ignoring(rasterio.errors.NotGeoreferencedWarning):
                    ds = rasterio.open(path)
            except Exception as exc:
                raise RasterReadError(f"{path}: cannot open as a raster ({short(exc)})") from exc
            with self._lock:
                self._open[key] = ds
        yield ds

    def close(self) -> None:
        with self._lock:
            for ds in self._open.values():
                ds.close()
            self._open.clear()


# ---------------------------------------------------------------------------
# Overviews
# ---------------------------------------------------------------------------
def overview_factors(shape: tuple[int, int], *, smallest: int = 256) -> list[int]:
    """Powers of two down to an overview of about ``smallest`` pixels on its shorter side."""
    out, f = [], 2
    while min(shape) / f >= smallest:
        out.append(f)
        f *= 2
    return out or [2]


def build_overviews(target: Scene | str | os.PathLike[str], *, factors: Sequence[int] | None = None,
                    overwrite: bool = False) -> list[Path]:
    """Build external overviews (``<file>.ovr``) for a scene's files, or one file, that have none.

    Every later decimated read of the file (maps, reports, the clear-sky
    share, the next run that uses it as its baseline) then reads a few
    blocks of an overview instead of decoding the whole file.  The file
    itself is not modified: GDAL finds ``<file>.ovr`` beside it.  Levels
    are built with nearest-neighbour resampling (cloud and class bands stay
    valid codes), compressed with DEFLATE, pixel-interleaved.  Each
    ``.ovr`` is written under a temporary name in the same folder and
    renamed when complete, so an interrupted build leaves none.

    Parameters
    ----------
    target : Scene or path
        A scene (all its band and mask files) or one raster file.
    factors : sequence of int, optional
        Decimation factors; default powers of two down to about 256 pixels.
    overwrite : bool
        Rebuild an existing ``.ovr`` too (files with internal overviews are
        always left alone).

    Returns
    -------
    list of Path
        The ``.ovr`` files written.

    Raises
    ------
    RasterReadError
        A file cannot be read, or the ``.ovr`` cannot be written (read-only
        folder: give the files overviews another way, e.g. ``gdaladdo -ro``
        as their owner, or leave ``build_overviews`` off).
    """
    if isinstance(target, (str, os.PathLike)):
        paths = [str(target)]
    else:
        paths = list(dict.fromkeys([r.path for _, r in target.band_refs]
                                   + ([target.mask.path] if target.mask is not None
                                      and target.mask.kind != "computed" else [])))
    written = []
    for p in paths:
        out = _build_one(p, factors, overwrite)
        if out is not None:
            written.append(out)
    return written


_build_lock = threading.Lock()


def _build_one(path: str, factors: Sequence[int] | None, overwrite: bool) -> Path | None:
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.shutil import copy as rio_copy

    src = Path(path)
    ovr = src.with_name(src.name + ".ovr")
    with _build_lock:
        try:
            with rasterio.open(src) as ds:
                if ds.overviews(1) and not (overwrite and ovr.exists()):
                    return None
                shape = (ds.height, ds.width)
                driver = ds.driver
        except Exception as exc:
            raise RasterReadError(f"{src}: cannot open to build overviews ({short(exc)})") from exc
        if driver not in ("GTiff", "VRT", "JP2OpenJPEG"):
            return None
        levels = list(factors) if factors else overview_factors(shape)
        tag = uuid.uuid4().hex[:8]
        vrt = src.with_name(f".{src.name}.{tag}.ovr-build.vrt")
        try:
            # GDAL writes a VRT's overviews to <vrt>.ovr: build them from a VRT pointing at the file,
            # then rename them to <file>.ovr, where GDAL looks for the file's external overviews
            rio_copy(str(src), str(vrt), driver="VRT")
            with rasterio.Env(COMPRESS_OVERVIEW="DEFLATE", INTERLEAVE_OVERVIEW="PIXEL", BIGTIFF_OVERVIEW="IF_SAFER"):
                with rasterio.open(vrt, "r+") as ds:
                    ds.build_overviews(levels, Resampling.nearest)
            os.replace(vrt.with_name(vrt.name + ".ovr"), ovr)
        except Exception as exc:
            raise RasterReadError(
                f"{src}: cannot write overviews beside it ({short(exc)}); is the folder read-only? "
                "Build them as the files' owner (gdaladdo -ro FILE), or leave build_overviews off"
            ) from exc
        finally:
            for leftover in (vrt, vrt.with_name(vrt.name + ".ovr")):
                try:
                    leftover.unlink()
                except OSError:
                    pass
    log.info("overviews %s written for %s (levels %s)", ovr.name, src.name, levels)
    return ovr


def _maybe_build(path: str, src: Grid, dgrid: Grid) -> None:
    """Build overviews for ``path`` when a decimated read of it would decode it whole (allowed by the caller)."""
    from ecopatch.raster.fileread import dataset_layout

    lay = dataset_layout(path)[1]
    if lay.overviews or lay.shape[0] * lay.shape[1] < MIN_OVERVIEW_PX:
        return
    win = src.window_from_bounds(dgrid.bounds, clip=True)
    if win is None or win.width / max(1, dgrid.width) < 2:
        return
    try:
        _build_one(path, None, False)
    except RasterReadError as exc:
        log.warning("%s; reading it in one pass instead", exc)
        return
    from ecopatch.raster.fileread import close_datasets

    close_datasets()  # handles opened before the .ovr existed do not see it


# ---------------------------------------------------------------------------
# Reads shared between the figures of one run
# ---------------------------------------------------------------------------
@dataclass
class _Base:
    grid: Grid
    raw: dict[str, np.ndarray]


@dataclass
class _Shared:
    base_pixels: int
    build_overviews: bool
    handles: _Handles = field(default_factory=_Handles)
    bases: dict[tuple, _Base | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    reads: int = 0
    served: int = 0

    def cut(self, scene: Scene, names: Sequence[str], dgrid: Grid) -> dict[str, np.ndarray] | None:
        """Raw values on ``dgrid`` from the scene's base read, or None if the base is too coarse."""
        if scene.mask is not None and scene.mask.kind == "computed":
            return None
        key = _scene_key(scene)
        with self.lock:
            base = self.bases.get(key)
            if key not in self.bases:
                all_names = list(scene.bands)
                bgrid = decimated_grid(scene, max_pixels=self.base_pixels)
                raw = _fetch(scene, all_names, bgrid, build=self.build_overviews, handles=self.handles)
                base = _Base(bgrid, raw)
                self.bases[key] = base
                self.reads += 1
        if base is None or not _coarser_or_equal(dgrid, base.grid):
            return None
        rows, cols = _nearest_index(base.grid, dgrid)
        out = {}
        for n in [*names, _MASK]:
            if n in base.raw:
                out[n] = base.raw[n][rows[:, None], cols[None, :]]
        self.served += 1
        return out


def _scene_key(scene: Scene) -> tuple:
    m = scene.mask
    return (scene.source, scene.grid.shape, tuple(scene.grid.transform)[:6],
            tuple((n, r.path, r.index, r.scale, r.offset, r.nodata) for n, r in scene.band_refs),
            (m.path, m.index, m.kind) if m is not None else None, scene.cloud_buffer_m)


def _coarser_or_equal(want: Grid, base: Grid) -> bool:
    return (want.crs == base.crs and abs(want.res[0]) >= abs(base.res[0]) * (1 - 1e-9)
            and abs(want.res[1]) >= abs(base.res[1]) * (1 - 1e-9))


def _nearest_index(base: Grid, want: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of ``base`` holding the centres of ``want``'s pixels (clipped to ``base``)."""
    bt, wt = base.transform, want.transform
    xs = wt.c + (np.arange(want.width) + 0.5) * wt.a
    ys = wt.f + (np.arange(want.height) + 0.5) * wt.e
    cols = np.clip(np.floor((xs - bt.c) / bt.a).astype(np.int64), 0, base.width - 1)
    rows = np.clip(np.floor((ys - bt.f) / bt.e).astype(np.int64), 0, base.height - 1)
    return rows, cols


_ACTIVE: contextvars.ContextVar[_Shared | None] = contextvars.ContextVar("ecopatch_shared_reads", default=None)


@contextmanager
def shared_reads(*, base_pixels: int = BASE_PIXELS, build_overviews: bool = False) -> Iterator[None]:
    """Within the block, decimated reads of a scene share one read of it (maps, reports, chips).

    The first decimated read of a scene reads all its bands and its mask at
    a base resolution (at most ``base_pixels`` per band: the whole scene at
    its own resolution up to 1414 × 1414 pixels); every later quick-look of
    that scene at the base resolution or coarser is cut from it (nearest
    pixel), and finer ones (a chip around one patch of a full tile) are read
    from the files on handles kept for the block.  Everything read is
    dropped, and the handles closed, when the block ends.

    Parameters
    ----------
    base_pixels : int
        Pixels per band of each scene's base read.
    build_overviews : bool
        Build missing overviews of large files before reading them (see
        :func:`build_overviews`).

    Notes
    -----
    The scope is the current thread (a :mod:`contextvars` variable): other
    threads do not see it unless they run in a copy of this context.
    """
    state = _Shared(int(base_pixels), bool(build_overviews))
    token = _ACTIVE.set(state)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
        state.handles.close()
        state.bases.clear()
        log.debug("shared reads: %d base read(s), %d quick-look(s) cut from them", state.reads, state.served)

