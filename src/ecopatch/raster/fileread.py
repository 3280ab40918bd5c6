"""Reading raster files: thread-local handles, windows read as each file stores its blocks, DN -> reflectance.

The file side of :class:`ecopatch.raster.scene.Scene`: open handles per
thread (:func:`open_dataset`), windows of a band read through the tile cache
(:mod:`ecopatch.raster.blocks`) or straight through GDAL
(:func:`read_block`), coarser bands repeated or reprojected onto a finer
grid (:func:`whole_pixels`, :func:`read_resampled`), and a band's digital
numbers turned into reflectance (:func:`read_reflectance`).  The analyses
never import this module: they read through the raster-source protocol
(:mod:`ecopatch.raster.source`).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecopatch.errors import InputDataError, MissingCRSError, RasterReadError
from ecopatch.geo.grid import Grid, Window
from ecopatch.options import WINDOWS
from ecopatch.raster import blocks
from ecopatch.raster.ongrid import ground_unit_m, integer_ratio, reproject_array, source_window
from ecopatch.raster.radiometry import to_reflectance
from ecopatch.raster.source import VALID_REFLECTANCE
from ecopatch.raster.vrt import vrt_simple_sources

if TYPE_CHECKING:
    from ecopatch.raster.scene import BandRef

__all__ = [
    "FileValues",
    "close_datasets",
    "file_layout",
    "plan_file_reads",
]


# ---------------------------------------------------------------------------
# Low-level reads (thread-local dataset handles; blocks read as each file stores them)
# ---------------------------------------------------------------------------
thread_handles = threading.local()
#: Budget of the tile cache while a pass runs (MB); see :mod:`ecopatch.raster.blocks`.
TILE_CACHE_MB = blocks.TILE_CACHE_MB
TILES = blocks.TILES
_ds_read = blocks.ds_read


def open_dataset(path: str) -> Any:
    """The open handle of ``path`` in the calling thread (opened on first use).

    Handles are kept per thread (GDAL datasets are not thread-safe) and hold
    no GDAL setting of their own: the block cache size ecopatch sets for a
    pass (:func:`ecopatch.raster.gdalcache.gdal_cache`) is process-wide and
    restored when the pass ends, so a handle used after it reads as any
    other would.  :func:`close_datasets` closes this thread's handles.
    """
    cache = getattr(thread_handles, "datasets", None)
    if cache is None:
        cache = thread_handles.datasets = {}
    ds = cache.get(path)
    if ds is None or ds.closed:
        ds = blocks.open_raster(path)
        cache[path] = ds
        getattr(thread_handles, "layouts", {}).pop(path, None)
    return ds


def release_large_handles() -> None:
    """Close this thread's handles of compressed GeoTIFFs with large blocks (see ``ReadPlan.release_caller``).

    A GTiff handle keeps the last block it decoded (all bands of a
    pixel-interleaved file) and the compressed bytes of it until it is
    closed: about 90 MiB for a 7-band uint16 stack tiled 2048, 190 MiB in
    float32.  Called in the thread that starts a pass, whose set-up read
    samples of the files there and whose windows are read by other threads;
    a handle is reopened on its next use (about 1 ms).
    """
    cache = getattr(thread_handles, "datasets", None) or {}
    layouts = getattr(thread_handles, "layouts", None) or {}
    for path in list(cache):
        got = layouts.get(path)
        if got is None or got[0] is not cache[path]:
            continue
        if got[1].large_blocks:
            cache.pop(path).close()
            layouts.pop(path, None)


def close_datasets() -> None:
    """Close the raster handles this thread keeps open."""
    cache = getattr(thread_handles, "datasets", None) or {}
    for ds in cache.values():
        ds.close()
    cache.clear()
    getattr(thread_handles, "layouts", {}).clear()


def file_layout(path: str | os.PathLike[str]) -> blocks.FileLayout:
    """How a raster file stores its pixels: driver, bands, blocks, interleaving, compression, overviews.

    Examples
    --------
    >>> file_layout("T50RQU_B04_10m.tif").describe()  # doctest: +SKIP
    'GTiff 1 band uint16, band-interleaved, tiled 256x256, deflate, no overviews'
    """
    return dataset_layout(str(path))[1]


def dataset_layout(path: str) -> tuple[Any, blocks.FileLayout, tuple]:
    """(handle, layout, file identity) of ``path`` in this thread, computed once per handle."""
    ds = open_dataset(path)
    layouts = thread_handles.__dict__.setdefault("layouts", {})
    got = layouts.get(path)
    if got is None or got[0] is not ds:
        try:
            st = os.stat(path)
            ident: tuple = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            ident = (str(path), id(ds))
        got = (ds, blocks.layout_of(ds), ident)
        layouts[path] = got
    return got


def read_block(path: str, index: int, grid: Grid, window: Window, fill: float, *, shared: bool = True) -> np.ndarray:
    """Read ``window`` of band ``index`` (1-based) of ``path``; parts outside the file are ``fill``.

    ``shared=False`` reads straight through GDAL, for windows whose tiles no
    other window needs (they then stay out of the tile cache).  Inside
    :func:`band_reads` (as in :meth:`Scene.read`), a pixel-interleaved
    file's bands are decoded together at the first request and the others
    come from that read; there, a window inside the file may be given the
    band as read with the others (not a copy: read it, do not write to it).
    """
    ds, layout, _ = dataset_layout(path)
    inner = window.intersection(grid.window)
    dtype = np.dtype(ds.dtypes[index - 1])
    converted = dtype.kind in "iu" and not float(fill).is_integer()
    interleaved, wanted = _read_together(path, ds, layout, index) if inner is not None else (False, None)
    if interleaved and inner == window and not converted and getattr(thread_handles, "memo", None) is not None:
        # in Scene.read, the whole window in the file: the band as read with the others (no fill,
        # no copy), when it is C-ordered as a copy would be (the kernels it goes to are compiled so)
        band = interleaved_band(path, index, inner, shared, wanted)
        if band.flags.c_contiguous and band.dtype == dtype:
            return band
        return np.ascontiguousarray(band, dtype=dtype)
    if converted:
        dtype = np.dtype(np.float32)
    out = np.full(window.shape, fill, dtype=dtype if inner is not None else np.float32)
    if inner is None:
        return out
    rel = inner.relative_to(window)
    if interleaved:
        out[rel.slices] = interleaved_band(path, index, inner, shared, wanted)
        return out
    sources = vrt_simple_sources(path, ds, index, open_dataset) if ds.driver == "VRT" else None
    if sources is None:
        read_into(path, index, inner, out[rel.slices], shared)
        return out
    # a mosaic of whole-pixel copies of other files (gdalbuildvrt's usual output): read the
    # sources themselves, so their tiles go through the tile cache like single files'
    region = out[rel.slices]
    region[...] = sources.background
    for src_path, src_band, src_row, src_col, dst in sources.parts:
        ov = dst.intersection(inner)
        if ov is None:
            continue
        sw = Window(row_off=src_row + ov.row_off - dst.row_off, col_off=src_col + ov.col_off - dst.col_off,
                    height=ov.height, width=ov.width)
        region_part = region[ov.relative_to(inner).slices]
        if dataset_layout(src_path)[1].multiband:
            region_part[...] = interleaved_band(src_path, src_band, sw, shared)
        else:
            read_into(src_path, src_band, sw, region_part, shared)
    return out


def read_into(path: str, index: int, win: Window, out: np.ndarray, shared: bool) -> None:
    """Fill ``out`` with window ``win`` (inside the file) of band ``index``; all bands when ``index`` is 0.

    ``out`` has a leading band axis when ``index`` is 0 (a pixel-interleaved
    file read whole).  Blocks go through the tile cache while a pass runs
    (:mod:`ecopatch.raster.blocks`); otherwise, and for aligned or unshared
    reads, straight through GDAL.
    """
    ds, layout, ident = dataset_layout(path)
    spec = blocks.tile_spec(layout, ident, index or 1) if shared and TILES.active else None
    if spec is not None and (spec.indexes is None) != (index != 0):
        spec = None
    _read_through(ds, layout, spec, win, out, index if index else range(1, layout.count + 1))


def _read_through(ds: Any, layout: blocks.FileLayout, spec: blocks.TileSpec | None, win: Window,
                  out: np.ndarray, indexes: int | Sequence[int]) -> None:
    """Fill ``out`` from the tile cache with ``spec``, or straight through GDAL (no spec, or whole blocks).

    Whole blocks are read with the handle the tile cache decodes with
    (:meth:`blocks.TileCache.reader`: the pass's pool for a file of large ones).
    """
    if spec is not None and not blocks.aligned(win, spec.tile, layout.shape):
        TILES.read_into(ds, spec, win, out)
        return
    with TILES.reader(ds, spec) if spec is not None else nullcontext(ds) as handle:
        out[...] = _ds_read(handle, indexes, win)


def interleaved_band(path: str, index: int, win: Window, shared: bool,
                     wanted: tuple[int, ...] | None = None) -> np.ndarray:
    """Band ``index`` of ``win``, read in one call with the other bands of the file it comes with.

    Those are all the bands of a pixel-interleaved file (decoded together
    whatever is asked), or the bands ``wanted`` of a band-interleaved
    one (:func:`band_reads`).  Inside :func:`band_reads` the bands read are
    kept for the next request of the same file that falls inside the same
    window (the other bands of :meth:`Scene.read`, the mask first with its
    cloud-growth margin); outside, they are read and the one asked returned.
    """
    memo = getattr(thread_handles, "memo", None)
    if memo is not None:
        hit = memo.get(path)
        if hit is not None:
            w, idx, data = hit
            if index in idx and _contains(w, win):
                return data[idx.index(index)][win.relative_to(w).slices]
    ds, layout, ident = dataset_layout(path)
    idx = wanted if wanted is not None else tuple(range(1, layout.count + 1))
    data = np.empty((len(idx), win.height, win.width), dtype=ds.dtypes[idx[0] - 1])
    if wanted is None:
        read_into(path, 0, win, data, shared)
    else:
        spec = blocks.bands_spec(layout, ident, wanted) if shared and TILES.active else None
        _read_through(ds, layout, spec, win, data, wanted)
    if memo is not None:
        memo[path] = (win, idx, data)
    return data[idx.index(index)]


def _read_together(path: str, ds: Any, layout: blocks.FileLayout, index: int) -> tuple[bool, tuple[int, ...] | None]:
    """Whether band ``index`` of ``path`` is read in one call with other bands (:func:`interleaved_band`).

    Also returns the bands :func:`band_reads` wants with it (None: all bands of a pixel-interleaved
    file, or a band read alone).  Never for a VRT.
    """
    if ds.driver == "VRT":
        return False, None
    wanted = _wanted(path, layout, index)
    return layout.multiband or wanted is not None, wanted


def _wanted(path: str, layout: blocks.FileLayout, index: int) -> tuple[int, ...] | None:
    """The bands of ``path`` to read with ``index`` (:func:`band_reads`), for a band-interleaved file."""
    if not layout.banded:
        return None
    wanted = getattr(thread_handles, "wanted", None)
    got = wanted.get(path) if wanted else None
    return got if got is not None and len(got) > 1 and index in got else None


def plan_file_reads(scenes: Iterable[Any], *, block: int = WINDOWS.block,
                    workers: int | None = None) -> blocks.ReadPlan:
    """How a windowed pass over file ``scenes`` should read their files, from the files' layouts.

    The files of all the scenes of a pass are planned together (the tile
    cache holds their blocks side by side); see
    :func:`ecopatch.raster.source.plan_pass_reads`, which calls this with
    the sources that have files.

    Put into :class:`ecopatch.engine.tiling.WindowPass` (``reads=``) by the passes
    that read imagery; :func:`ecopatch.engine.tiling.run_passes` takes the windows
    in stripes of :attr:`~ecopatch.raster.blocks.ReadPlan.stripe_px` and holds
    the plan's session (tile cache and GDAL block cache sized for these
    files, released when the pass ends) while the windows run.

    Parameters
    ----------
    scenes : iterable of Scene
        The imagery the pass reads (each scene's bands and mask, :meth:`Scene.files`).
    block : int
        Analysis window size, pixels.
    workers : int, optional
        Threads reading at once (default: the CPU count).

    Returns
    -------
    ReadPlan
    """
    files, names, width = _pass_files(scenes)
    return blocks.plan_reads(files, block=block, workers=workers or os.cpu_count() or 1, grid_width=width or None,
                              name=names)


def decoded_bytes(scenes: Iterable[Any]) -> int:
    """Bytes the files of ``scenes`` take decoded whole (every band of every file, once), for the tile cache."""
    files, _, _ = _pass_files(scenes)
    return sum(lay.shape[0] * lay.shape[1] * lay.held_px_bytes for lay, _ in files)


def decoded_bytes_near(scenes: Iterable[Any], rects: Sequence[tuple[float, float, float, float]], crs: Any,
                       pad_px: int) -> int | None:
    """Bytes of the blocks of the scenes' files within ``pad_px`` of any of ``rects`` (in ``crs``), each once.

    What an analysis of the ground in ``rects`` decodes (every band of
    every block it touches); ``pad_px`` is in pixels of each scene's grid.
    None when it cannot be told (a VRT, a file that does not open).
    """
    from rasterio.warp import transform_bounds

    from ecopatch.geo.geodesy import as_crs

    seen: set[str] = set()
    total = 0
    want = as_crs(crs)
    for scene in scenes:
        for path, _index, rg in scene.files():
            try:
                ds, layout, _ = dataset_layout(path)
            except RasterReadError:
                return None
            if ds.driver == "VRT":
                return None
            if path in seen:
                continue
            seen.add(path)
            bh, bw = max(1, layout.block[0]), max(1, min(layout.block[1], layout.shape[1]))
            g = scene.grid
            pad = math.ceil(pad_px * (g.res[0] * ground_unit_m(g)) / (rg.res[0] * ground_unit_m(rg)))
            tiles: set[tuple[int, int]] = set()
            for r in rects:
                b = r if want == rg.crs else transform_bounds(want, rg.crs, *r, densify_pts=21)
                win = rg.window_from_bounds(tuple(b), pad=pad, clip=True)
                if win is not None:
                    tiles.update((tr, tc) for tr in range(win.row_off // bh, (win.row_end - 1) // bh + 1)
                                 for tc in range(win.col_off // bw, (win.col_end - 1) // bw + 1))
            total += len(tiles) * bh * bw * layout.held_px_bytes
    return total


def reads_striped_files(scenes: Iterable[Any]) -> bool:
    """Whether any file the scenes read is striped (blocks as wide as the file, :attr:`FileLayout.striped`)."""
    return any(f.striped for f, _ in _pass_files(scenes)[0])


def largest_large_block(scenes: Iterable[Any]) -> int:
    """Bytes of the largest decoded block of the files the scenes read that have large ones, else 0.

    Files with large blocks: :attr:`FileLayout.large_blocks`; a block's bytes:
    :attr:`FileLayout.block_set_bytes` (all bands of a pixel-interleaved one).
    """
    return max((f.block_set_bytes for f, _ in _pass_files(scenes)[0] if f.large_blocks), default=0)


def _pass_files(scenes: Iterable[Any]) -> tuple[list[tuple[blocks.FileLayout, float]], list[str], int]:
    """Each file the scenes read once (a mosaic VRT's source files instead of it): layout and scale, names, width."""
    files: list[tuple[blocks.FileLayout, float]] = []
    names: list[str] = []
    seen: set[str] = set()
    width = 0
    for scene in scenes:
        g = scene.grid
        width = max(width, g.width)
        for path, index, rg in scene.files():
            scale = (rg.res[0] * ground_unit_m(rg)) / (g.res[0] * ground_unit_m(g)) if g.res[0] else 1.0
            paths = [path]
            try:
                ds, layout, _ = dataset_layout(path)
                if ds.driver == "VRT":
                    src = vrt_simple_sources(path, ds, index, open_dataset)
                    paths = sorted({p for p, *_ in src.parts}) if src is not None else paths
            except RasterReadError:
                continue
            for fp in paths:
                if fp in seen:
                    continue
                seen.add(fp)
                try:
                    files.append((dataset_layout(fp)[1], scale))
                except RasterReadError:
                    continue
                names.append(fp)
    return files, names, width


def _contains(outer: Window, inner: Window) -> bool:
    return (outer.row_off <= inner.row_off and outer.col_off <= inner.col_off
            and inner.row_end <= outer.row_end and inner.col_end <= outer.col_end)


@contextmanager
def band_reads(wanted: Mapping[str, Iterable[int]] | None = None) -> Iterator[None]:
    """Within the block, the bands of a file asked for one after another are read once.

    A pixel-interleaved file's bands are decoded together at the first
    request.  ``wanted`` (path -> band numbers) names the bands of each
    file the block will ask for: a band-interleaved file's are then
    read in one call (:func:`interleaved_band`).
    """
    outer = getattr(thread_handles, "memo", None)
    outer_wanted = getattr(thread_handles, "wanted", None)
    thread_handles.memo = {} if outer is None else outer
    if wanted is not None:
        thread_handles.wanted = {p: tuple(sorted(set(i))) for p, i in wanted.items()}
    try:
        yield
    finally:
        thread_handles.wanted = outer_wanted
        if outer is None:
            thread_handles.memo = None


def read_resampled(
    path: str, index: int, src: Grid, dst: Grid, window: Window, *, categorical: bool
) -> np.ndarray:
    """Read band ``index`` of ``path`` (on grid ``src``) for ``window`` of grid ``dst``.

    Same grid: a plain window read.  ``src`` coarser by a whole factor and
    aligned (Sentinel-2 20 m bands on the 10 m grid): each coarse pixel is
    repeated, as Sen2Cor does.  Otherwise a reprojection (nearest for
    categorical bands, bilinear otherwise).
    """
    whole = whole_pixels(path, index, src, dst, window, fill=0 if categorical else np.nan)
    if whole is None:
        return _reproject_band(path, index, src, dst, window, categorical=categorical)
    block, rows, cols = whole
    if rows is None or cols is None:
        return block
    return block[rows][:, cols]


def whole_pixels(path: str, index: int, src: Grid, dst: Grid, window: Window, fill: float, pad: int = 0
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None:
    """The pixels of ``src`` under ``window`` of ``dst`` when each is a whole block of ``dst`` pixels.

    Returns ``(block, rows, cols)``: ``block`` covers the window plus ``pad``
    ``src`` pixels on every side, and ``window``'s pixel ``(i, j)`` is
    ``block[rows[i], cols[j]]`` (``rows`` and ``cols`` are None when the
    grids' pixels coincide and there is no pad: then ``block`` is the window
    itself).  None when ``src`` is not a whole-factor coarsening of ``dst``
    aligned with it.
    """
    ratio = integer_ratio(dst, src)
    if ratio is None:
        return None
    rx, ry, dc, dr = ratio
    # dst pixel (r, c) lies in src pixel ((r + dr) // ry, (c + dc) // rx)
    r0 = math.floor((window.row_off + dr) / ry)
    c0 = math.floor((window.col_off + dc) / rx)
    r1 = math.floor((window.row_end - 1 + dr) / ry) + 1
    c1 = math.floor((window.col_end - 1 + dc) / rx) + 1
    block = read_block(path, index, src, Window(row_off=r0 - pad, col_off=c0 - pad,
                                                height=r1 - r0 + 2 * pad, width=c1 - c0 + 2 * pad), fill=fill)
    if rx == 1 and ry == 1 and pad == 0:
        return block, None, None
    rows = (np.arange(window.row_off, window.row_end) + dr) // ry - (r0 - pad)
    cols = (np.arange(window.col_off, window.col_end) + dc) // rx - (c0 - pad)
    return block, rows, cols


def _reproject_band(
    path: str, index: int, src: Grid, dst: Grid, window: Window, *, categorical: bool
) -> np.ndarray:
    sw = source_window(src, dst, window)
    if sw is None:
        return np.full(window.shape, np.nan, dtype=np.float32)
    ds = open_dataset(path)
    block = read_block(path, index, src, sw, fill=np.nan).astype(np.float32)
    nod = ds.nodatavals[index - 1]
    if nod is not None and not categorical:
        block[block == nod] = np.nan
    res = "nearest" if categorical else ("bilinear" if src.res[0] >= dst.res[0] else "average")
    out = reproject_array(block, src.subgrid(sw), dst.subgrid(window), resampling=res)
    if nod is not None and not categorical:
        out[np.isnan(out)] = nod
    return out


def _saturation(ref: BandRef) -> float | None:
    """The fill / saturation value of an integer band (its type's maximum), None for floats."""
    dt = np.dtype(ref.dtype)
    return float(np.iinfo(dt).max) if dt.kind in "iu" else None


def read_reflectance(ref: BandRef, grid: Grid, window: Window, valid: np.ndarray) -> tuple[np.ndarray, int]:
    """Reflectance of ``ref`` for ``window`` of ``grid``: NaN where ``valid`` is False or the band has none.

    Clears ``valid`` (in place) where the band has no reflectance and
    returns how many pixels that cleared.  Bands whose pixels are whole
    blocks of ``grid``'s (the same grid, Sentinel-2's 20 m bands on the 10 m
    grid) go from the file's pixels to reflectance in one pass.
    """
    from ecopatch.compute.kernels import reflectance_kernel

    # integer DN outside the file are the saturation value (not reflectance): no float copy of the block
    sat = _saturation(ref)
    whole = whole_pixels(ref.path, ref.index, ref.grid, grid, window, fill=np.nan if sat is None else sat)
    if whole is not None:
        block, rows, cols = whole
        fused = reflectance_kernel(block, ref.scale, ref.offset, ref.nodata, sat,
                                   VALID_REFLECTANCE, rows=rows, cols=cols, valid=valid)
        if fused is not None:
            return fused[0], fused[2]
        dn = block if rows is None or cols is None else block[rows][:, cols]
    else:
        dn = read_resampled(ref.path, ref.index, ref.grid, grid, window, categorical=False)
    refl, ok = band_reflectance(dn, ref)
    cleared = int(np.count_nonzero(valid & ~ok))
    valid &= ok
    refl[~valid] = np.nan
    return refl, cleared


def read_reflectances(refs: Sequence[BandRef], grid: Grid, window: Window,
                      valid: np.ndarray) -> list[np.ndarray] | None:
    """Reflectance of several bands of one file read together, in one pass; None to read them band by band.

    What :func:`read_reflectance` gives band after band, once a later band's
    exclusions are cleared from the bands before it: every band NaN where
    ``valid`` is or becomes False (cleared in place wherever a band has no
    reflectance).  Taken when the bands lie in one pixel-interleaved file,
    or one band-interleaved file read with :func:`band_reads`, on the
    grid ``grid`` itself, and ``window`` lies inside it: the bands then come
    from one read (:func:`interleaved_band`), and the conversion of each
    band, about 17 µs of Python a band and window, is one kernel call.
    """
    from ecopatch.compute.kernels import reflectances_kernel

    if len(refs) < 2 or getattr(thread_handles, "memo", None) is None:
        return None
    first = refs[0]
    path = first.path
    if any(r.path != path or r.grid is not first.grid or r.dtype != first.dtype for r in refs):
        return None
    if integer_ratio(grid, first.grid) != (1, 1, 0, 0) or window.intersection(grid.window) != window:
        return None
    ds, layout, _ = dataset_layout(path)
    together, wanted = _read_together(path, ds, layout, first.index)
    if not together or (wanted is not None and any(r.index not in wanted for r in refs)):
        return None
    interleaved_band(path, first.index, window, True, wanted)  # the bands of the read, kept for the window
    w, idx, data = thread_handles.memo[path]
    if any(r.index not in idx for r in refs) or not _contains(w, window):
        return None
    rel = window.relative_to(w)
    refl = reflectances_kernel(data, [idx.index(r.index) for r in refs], (rel.row_off, rel.col_off), window.shape,
                               [r.scale for r in refs], [r.offset for r in refs], [r.nodata for r in refs],
                               [_saturation(r) for r in refs], VALID_REFLECTANCE, valid)
    return None if refl is None else list(refl)


def band_reflectance(dn: np.ndarray, ref: BandRef) -> tuple[np.ndarray, np.ndarray]:
    """DN -> float32 reflectance and a validity mask."""
    return to_reflectance(dn, ref.scale, ref.offset, ref.nodata, ref.dtype)


# ---------------------------------------------------------------------------
# Reading onto another grid
# ---------------------------------------------------------------------------
class FileValues:
    """Raw values of a raster file (a class map, an index), read a window at a time.

    A :class:`~ecopatch.raster.source.ValueRaster`; holds the path only, so
    it pickles to Dask workers.  Windows go straight through GDAL (not the
    tile cache): a patch-statistics pass reads each block once.
    """

    def __init__(self, path: str) -> None:
        self.path = str(path)
        self._grid, ds = grid_of(self.path)
        self._count = int(ds.count)
        self._nodata = tuple(ds.nodatavals)

    @property
    def grid(self) -> Grid:
        """The file's grid."""
        return self._grid

    @property
    def count(self) -> int:
        """Number of bands."""
        return self._count

    @property
    def source(self) -> str:
        """The file's path."""
        return self.path

    def band_nodata(self, band: int) -> float | None:
        """The file's nodata value of ``band`` (1-based)."""
        v = self._nodata[band - 1]
        return None if v is None else float(v)

    def read_values(self, band: int, window: Window) -> np.ndarray:
        """Values of ``band`` in ``window`` (NaN outside the file)."""
        return read_block(self.path, band, self._grid, window, fill=np.nan, shared=False)


# ---------------------------------------------------------------------------
# Opening products
# ---------------------------------------------------------------------------
#: GDAL drivers of photo formats: a file read by one of them is a picture, not a map.
_PHOTO_DRIVERS = {"JPEG": "JPEG photo", "PNG": "PNG image", "GIF": "GIF image", "BMP": "BMP image",
                  "WEBP": "WebP image", "HEIF": "HEIF/HEIC photo"}


def grid_of(path: str) -> tuple[Grid, Any]:
    ds = open_dataset(path)
    if ds.crs is None and ds.driver in _PHOTO_DRIVERS and ds.transform.is_identity:
        raise RasterReadError(
            f"{path}: a {_PHOTO_DRIVERS[ds.driver]} ({ds.width} x {ds.height} px, named "
            f"{Path(path).suffix or 'without a suffix'}), not a georeferenced raster; a drone photo or a "
            "screenshot cannot be measured. Export the orthomosaic as a GeoTIFF from the photogrammetry "
            "software (Pix4D, Metashape, OpenDroneMap), or give the satellite product itself"
        )
    if ds.crs is None and ds.transform.is_identity:
        gcps, gcp_crs = ds.gcps if ds.gcps else ([], None)
        if gcps:
            target = gcp_crs.to_string() if gcp_crs else "EPSG:4490"
            raise InputDataError(
                f"{path}: the raster is georeferenced only by {len(gcps)} ground control points (GCPs), not "
                f"on a map grid; warp it onto one first, e.g. `gdalwarp -t_srs {target} -r bilinear "
                f"{Path(path).name} {Path(path).stem}_warped.tif`, and give the warped file"
            )
        if ds.rpcs is not None:
            raise InputDataError(
                f"{path}: the raster carries only rational polynomial coefficients (RPCs), no map grid. A Gaofen "
                "Level-1A image: open the whole delivered package (its folder or .tar.gz, with the .rpb and "
                ".xml files), which ecopatch orthorectifies itself; any other: orthorectify it first, e.g. "
                f"`gdalwarp -rpc -to RPC_DEM=dem.tif -t_srs EPSG:4490 {Path(path).name} "
                f"{Path(path).stem}_ortho.tif`"
            )
    if ds.crs is None:
        raise MissingCRSError(
            f"{path}: the raster has no CRS; assign the right one, e.g. "
            f"`gdal_edit.py -a_srs EPSG:32650 {Path(path).name}`"
        )
    t = ds.transform
    if t.is_identity:
        raise InputDataError(
            f"{path}: the raster has no geotransform (pixel coordinates only); "
            "georeference it (gdal_translate -a_ullr, or gdalwarp with GCPs) first"
        )
    if t.b != 0 or t.d != 0:
        raise InputDataError(
            f"{path}: the raster's geotransform is rotated {tuple(t)[:6]}; "
            "warp it north-up first: gdalwarp -r bilinear in.tif out.tif"
        )
    return Grid((ds.height, ds.width), t, ds.crs), ds
