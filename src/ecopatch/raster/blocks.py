"""Reading blocks of raster files the way each file stores them: the read layer under :mod:`ecopatch.raster.fileread`.

Private module.  A raster file stores its pixels in blocks (tiles or strips),
compressed or not, with the bands of a block together (pixel-interleaved) or
apart (band-interleaved).  What a read costs depends on that layout, not on
the number of pixels asked for: reading one band of a pixel-interleaved
DEFLATE tile decodes every band of it, reading 514 rows of a striped file
decodes 514 full-width strips, a JPEG 2000 tile of 1024 × 1024 pixels is
decoded whole for any pixel of it.  This module knows the layout of each
file (:func:`file_layout`) and reads accordingly:

* :class:`TileCache` keeps decoded blocks shared by neighbouring windows
  (tiles of tiled GeoTIFFs and JPEG 2000 files, groups of strips of striped
  GeoTIFFs; all bands of a block at once for pixel-interleaved files), so a
  windowed pass decodes each block about once;
* :func:`plan_reads` sizes a pass from the files it reads: the tile cache,
  the width of the stripes windows are taken in, and GDAL's block cache;
* :class:`ReadPlan` holds a pass's settings for the length of the pass, with
  GDAL's block cache scoped by :func:`ecopatch.raster.gdalcache.gdal_cache`.

Nothing here changes process-wide state beyond the scope of a call: the
GDAL cache size is restored when the outermost scope ends, and the tile
cache's blocks are dropped when the last pass using them ends.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecopatch._env import env_int
from ecopatch.errors import RasterReadError
from ecopatch.geo.grid import Window
from ecopatch.options import WINDOWS
from ecopatch.raster.gdalcache import gdal_cache
from ecopatch.raster.quiet import ignoring, short

log = logging.getLogger(__name__)

#: Default budget of the tile cache (MB); ``ECOPATCH_TILE_CACHE_MB`` overrides it, 0 turns it off.  A
#: pass over striped files may need more to hold one row of windows (:func:`plan_reads`).
TILE_CACHE_MB = 128
#: Largest budget a pass gives the tile cache (MB) when its files need more than the default, unless
#: their tiles are so large that a stripe is one tile wide (see :func:`plan_reads`).
MAX_TILE_CACHE_MB = 384
#: Largest decoded tile position (all bands, MB) the tile cache shares (:func:`tile_spec`).
MAX_SHARED_TILE_MB = 128
#: Smallest GeoTIFF tile (pixels, rows × columns) the tile cache shares: smaller tiles are read straight
#: through GDAL, whose own block cache costs less than the tile cache's book-keeping per tile (:func:`tile_spec`).
MIN_SHARED_TILE_PX = 256 * 256
#: Width (analysis pixels) of the stripes windows are taken in over tiled files; see :func:`plan_reads`.
STRIPE_PX = 4096
#: GDAL block cache during a pass at least (MB): ecopatch shares blocks itself (:class:`TileCache`).
PASS_GDAL_CACHE_MB = 1
#: Strips of a striped file are shared in groups of at least this many rows.
STRIP_GROUP_ROWS = 64
#: Pixel-interleaved files with at most this many bands are read all bands at once.
MAX_INTERLEAVED_BANDS = 32
#: Files whose decoded blocks (all bands of a pixel-interleaved one) are this large or larger keep no
#: idle handle in a pass's :class:`HandlePool`: each decode opens one and closes it (see there).
IDLE_HANDLE_MAX_BYTES = 32 * 1024 * 1024


# ---------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FileLayout:
    """How a raster file stores its pixels.

    Attributes
    ----------
    driver : str
        GDAL driver (``"GTiff"``, ``"JP2OpenJPEG"``, ``"VRT"`` ...).
    shape : (int, int)
        Rows, columns.
    count : int
        Bands.
    dtype : str
        Data type of band 1.
    block : (int, int)
        Block rows, columns (band 1): a tile, or a strip as wide as the file.
    interleave : {"pixel", "band"}
        Whether a block holds every band (pixel) or one (band).
    compression : str
        ``"none"``, ``"deflate"``, ``"lzw"``, ``"jpeg"``, ``"jpeg2000"`` ...
    overviews : tuple of int
        Decimation factors of band 1's overviews (internal or ``.ovr``).
    """

    driver: str
    shape: tuple[int, int]
    count: int
    dtype: str
    block: tuple[int, int]
    interleave: str
    compression: str
    overviews: tuple[int, ...]

    @property
    def striped(self) -> bool:
        """Blocks are strips as wide as the file (and there is more than one)."""
        return self.block[1] >= self.shape[1] and self.block[0] < self.shape[0]

    @property
    def tiled(self) -> bool:
        """Blocks are tiles narrower than the file."""
        return self.block[1] < self.shape[1]

    @property
    def multiband(self) -> bool:
        """Several bands decoded together: read them together (pixel-interleaved, not too many)."""
        return self.interleave == "pixel" and 1 < self.count <= MAX_INTERLEAVED_BANDS

    @property
    def banded(self) -> bool:
        """A band-interleaved file of several bands: the bands a read wants are read in one call.

        Each band's blocks decode on their own, so only the bands wanted are
        read (:func:`ecopatch.raster.fileread.band_reads`), but one call for
        them per window costs less than one per band: a full-tile
        ``assess_restoration``, band-interleaved tiled DEFLATE, 5.07 -> 4.35
        s.  Reading every band of the file instead cost more where some are
        not used (6 unused of 13: 1.48 -> 1.84 s).  Striped files too since
        stop 37: their groups of strips read all wanted bands at once made
        ``assess_and_detect`` slower at stop 34 (20.7-21.3 -> 22.0-22.1 s,
        0.74-0.77 -> 0.81-0.82 GiB), but with today's passes it is level
        (full 10980² pair, uncompressed: 16.38 and 15.75 s -> 16.2 and
        15.5 s, peak 0.74-0.76 -> 0.76-0.82 GiB; LZW: 22.76 and 23.15 s ->
        22.72 and 23.66 s, 0.75-0.76 -> 0.74-0.78 GiB), and the
        uncompressed stack's ``assess_restoration`` is faster (warm, two
        threads: 3.54-4.02 -> 2.79-2.96 s; LZW 8.85-9.29 -> 8.59-8.97 s).
        """
        return self.interleave != "pixel" and 1 < self.count <= MAX_INTERLEAVED_BANDS

    @property
    def px_bytes(self) -> int:
        """Bytes a pixel costs to hold when decoded: all its bands if they are decoded together."""
        return np.dtype(self.dtype).itemsize * (self.count if self.multiband else 1)

    @property
    def held_px_bytes(self) -> int:
        """Bytes a pixel costs in the tile cache when a pass reads all bands: each band's blocks are kept."""
        return np.dtype(self.dtype).itemsize * self.count

    @property
    def held_block_bytes(self) -> int:
        """Bytes one block position costs in the tile cache when a pass reads all bands (every band's block)."""
        return self.block[0] * min(self.block[1], self.shape[1]) * self.held_px_bytes

    @property
    def block_set_bytes(self) -> int:
        """Bytes of one decoded block (all bands of it for pixel-interleaved files)."""
        return self.block[0] * min(self.block[1], self.shape[1]) * self.px_bytes

    @property
    def large_blocks(self) -> bool:
        """True for a compressed GeoTIFF whose decoded blocks are :data:`LARGE_BLOCK_BYTES` or more.

        A GTiff handle of such a file keeps the last block it decoded (all
        bands of a pixel-interleaved one) and its compressed bytes until it is
        closed: about 90 MiB for a 7-band uint16 stack tiled 2048.
        """
        return self.driver == "GTiff" and self.compression != "none" and self.block_set_bytes >= LARGE_BLOCK_BYTES

    def describe(self) -> str:
        """One line: ``"GTiff 7 bands uint16, pixel-interleaved, tiled 256x256, deflate, no overviews"``."""
        kind = (f"striped ({self.block[0]} rows)" if self.striped else
                f"tiled {self.block[0]}x{self.block[1]}" if self.tiled else "one block")
        ov = f"overviews {list(self.overviews)}" if self.overviews else "no overviews"
        return (f"{self.driver} {self.count} band{'s' if self.count > 1 else ''} {self.dtype}, "
                f"{self.interleave}-interleaved, {kind}, {self.compression}, {ov}")


def layout_of(ds: Any) -> FileLayout:
    """The :class:`FileLayout` of an open rasterio dataset."""
    il = getattr(ds, "interleaving", None)
    name = getattr(il, "name", None) or ds.profile.get("interleave") or "band"
    interleave = "pixel" if str(name).lower() == "pixel" else "band"
    if ds.driver.startswith("JP2"):
        interleave = "pixel" if ds.count > 1 else "band"  # a JPEG 2000 tile decodes every component
        compression = "jpeg2000"
    else:
        comp = getattr(ds, "compression", None)
        compression = (getattr(comp, "value", None) or str(comp)).lower() if comp is not None else "none"
    bh, bw = ds.block_shapes[0] if ds.count else (1, 1)
    try:
        ovs = tuple(int(f) for f in ds.overviews(1)) if ds.count else ()
    except Exception:  # noqa: BLE001 - a driver without overview support
        ovs = ()
    return FileLayout(ds.driver, (ds.height, ds.width), ds.count, ds.dtypes[0] if ds.count else "uint8",
                      (int(bh), int(bw)), interleave, compression, ovs)


# ---------------------------------------------------------------------------
# Reading one rectangle
# ---------------------------------------------------------------------------
def ds_read(ds: Any, indexes: int | Sequence[int], win: Window, out: np.ndarray | None = None) -> np.ndarray:
    """``ds.read(indexes, window=win)`` with a clear :class:`RasterReadError` on failure (into ``out`` if given)."""
    try:
        return ds.read(indexes if isinstance(indexes, int) else list(indexes), window=win.to_rasterio(), out=out)
    except Exception as exc:
        what = f"band {indexes}" if isinstance(indexes, int) else f"bands {list(indexes)}"
        raise RasterReadError(
            f"{ds.name}: reading {what}, rows {win.row_off}-{win.row_end}, cols "
            f"{win.col_off}-{win.col_end} failed ({short(exc)}); the file is probably "
            "truncated or corrupt: re-download or re-export it"
        ) from exc


def sample_blocks(ds: Any, indexes: Sequence[int], *, per_side: int = 3, side: int = 64) -> np.ndarray:
    """A sample of a file's values that decodes a few blocks, not the whole file.

    The ``side`` × ``side`` pixels around the centre of each of up to
    ``per_side`` × ``per_side`` blocks spread evenly over the file's grid of
    blocks, all ``indexes`` in one read each.  A decimated read
    (``ds.read(out_shape=...)``) of a file without overviews decodes every
    block, and for a pixel-interleaved file every block again for each band
    read: sampling the 6 bands of a 10980² float32 7-band stack that way took
    47 s.

    Parameters
    ----------
    ds : rasterio dataset
    indexes : sequence of int
        1-based band indexes.
    per_side : int
        Blocks sampled along each axis (fewer where the file has fewer).
    side : int
        Side of the window read around each block's centre, pixels.

    Returns
    -------
    ndarray of shape (len(indexes), n)
        The sampled pixels, no data included (the caller knows the file's no-data value).

    Raises
    ------
    RasterReadError
        A read failed (:func:`ds_read`).
    """
    lay = layout_of(ds)
    h, w = lay.shape
    bh, bw = max(1, min(lay.block[0], h)), max(1, min(lay.block[1], w))
    nr, nc = -(-h // bh), -(-w // bw)
    rows = sorted({min(nr - 1, int((i + 0.5) * nr / per_side)) for i in range(per_side)})
    cols = sorted({min(nc - 1, int((i + 0.5) * nc / per_side)) for i in range(per_side)})
    sh, sw = min(side, h), min(side, w)
    parts = []
    for br in rows:
        for bc in cols:
            # centred on the block's centre, kept inside the file
            r0 = min(max(0, br * bh + min(bh, h - br * bh) // 2 - sh // 2), h - sh)
            c0 = min(max(0, bc * bw + min(bw, w - bc * bw) // 2 - sw // 2), w - sw)
            got = ds_read(ds, list(indexes), Window(col_off=c0, row_off=r0, width=sw, height=sh))
            parts.append(got.reshape(len(indexes), -1))
    return np.concatenate(parts, axis=1)


def open_raster(path: str) -> Any:
    """A new rasterio handle of ``path``, or a :class:`RasterReadError` that says what to check.

    A missing geotransform is left to :func:`ecopatch.raster.fileread.grid_of`'s clearer error.
    """
    import rasterio
    import rasterio.errors

    try:
        with ignoring(rasterio.errors.NotGeoreferencedWarning):
            return rasterio.open(path)
    except Exception as exc:  # rasterio raises RasterioIOError and friends
        raise RasterReadError(
            f"{path}: cannot open as a raster ({short(exc)}); it is not a raster, or it is "
            "truncated or corrupt: check the file, re-download or re-export it"
        ) from exc


def sample_file(path: str, indexes: Sequence[int], **kwargs: Any) -> np.ndarray:
    """:func:`sample_blocks` of a file through a handle of its own, closed afterwards.

    For the checks made when a file is opened (the value range of float
    bands): the thread's kept handle (:func:`ecopatch.raster.fileread.open_dataset`)
    would keep GDAL's buffers of the last block it decoded, and GDAL's cache
    the blocks sampled, for as long as the handle lives: 1.2 GiB once a
    float32 7-band stack tiled 2048 was opened.  GDAL's cache holds one
    block (all bands) while the sample is read, so each block is decoded
    once for all ``indexes``; closing the handle drops it.

    Raises
    ------
    RasterReadError
        The file cannot be opened or read.
    """
    ds = open_raster(path)
    try:
        with gdal_cache(2 * layout_of(ds).block_set_bytes):
            return sample_blocks(ds, indexes, **kwargs)
    finally:
        ds.close()


@dataclass(frozen=True)
class TileSpec:
    """How one band (or all bands) of a file is read through the :class:`TileCache`.

    ``key`` names the file and the bands a cached block holds; ``tile`` is
    the shape (rows, cols) blocks are shared in (a tile, or a group of
    strips); ``indexes`` are the bands decoded together (None: the one band
    ``key[-1]``); ``pooled``: the file's blocks are large
    (:attr:`FileLayout.large_blocks`), and decoded through the pass's
    :class:`HandlePool` rather than the reading thread's own handle;
    ``idle``: the pool may keep a handle of the file between two decodes
    (False where a block is :data:`IDLE_HANDLE_MAX_BYTES` or more).
    """

    key: tuple
    tile: tuple[int, int]
    indexes: tuple[int, ...] | None
    pooled: bool = False
    idle: bool = True


def tile_spec(layout: FileLayout, ident: tuple, index: int) -> TileSpec | None:
    """The :class:`TileSpec` for band ``index`` of a file, or None to read it straight through GDAL.

    Shared: compressed tiled GeoTIFFs and JPEG 2000 files whose decoded
    block position (all bands) is at most :data:`MAX_SHARED_TILE_MB` (a
    7-band stack tiled 2048: 56 MiB in uint16, 112 MiB in float32; tiles
    not shared were decoded again for every stripe and window across
    them: 20.5 times the decode for the float32 stack's assess + detect;
    :func:`plan_reads` gives the cache two rows of such tiles), compressed files of
    one block that fits as well (a 1000² stack written as one 2048² tile:
    every read decoded the whole tile), and striped GeoTIFFs (in groups of
    strips of at least :data:`STRIP_GROUP_ROWS` rows), compressed or not
    (GDAL reads an uncompressed strip whole too: read per window, a
    10980-pixel strip would be copied once for every window across it;
    assess + detect on the full tile took 16.9 s without sharing, 13.9 s
    with it).  Not shared: uncompressed tiled files, whose tiles GDAL reads
    without decoding (sharing them only added copies: the full tile's
    assess took 5.05 s with it, 4.19 s without, and assess + detect 12.9 s
    against 12.5 s, 0.78 against 0.62 GiB); files with one row of tiles;
    other drivers; GeoTIFF tiles smaller than :data:`MIN_SHARED_TILE_PX`,
    whose book-keeping (a lock, a lookup and a copy per tile: a 514²
    window touches 100 tiles of 64²) cost more than GDAL decoding a
    neighbour's halo tiles again (7-band DEFLATE stacks, full 10980² pair,
    1000 mines, s37 notes: ``assess_restoration`` 2.16 -> 1.74 s tiled 64
    and 2.37 -> 2.02 s tiled 128; assess + detect 17.6 -> 16.4 s and 17.1
    -> 16.6 s, peak 0.77 -> 0.62 GiB; tiled 256 keeps the cache, 18.4 s
    with it and 19.5 s without).
    """
    if layout.driver not in ("GTiff", "JP2OpenJPEG"):
        return None
    bh, bw = layout.block
    h, w = layout.shape
    if layout.striped:
        bh = bh * max(1, math.ceil(STRIP_GROUP_ROWS / bh))
        bw = w
    # neither striped nor tiled: one block for the whole file
    elif ((layout.tiled and bh >= h) or layout.compression == "none"
          or min(bh, h) * min(bw, w) * layout.held_px_bytes > MAX_SHARED_TILE_MB * 1024 * 1024
          or small_tiles(layout)):
        return None
    idle = layout.block_set_bytes < IDLE_HANDLE_MAX_BYTES
    if layout.multiband:
        return TileSpec((*ident, 0), (bh, bw), tuple(range(1, layout.count + 1)), layout.large_blocks, idle)
    return TileSpec((*ident, index), (bh, bw), None, layout.large_blocks, idle)


def small_tiles(layout: FileLayout) -> bool:
    """True for a tiled GeoTIFF whose tiles are under :data:`MIN_SHARED_TILE_PX`: read straight through GDAL."""
    bh, bw = layout.block
    return layout.driver == "GTiff" and layout.tiled and bh * bw < MIN_SHARED_TILE_PX and bh < layout.shape[0]


def bands_spec(layout: FileLayout, ident: tuple, indexes: tuple[int, ...]) -> TileSpec | None:
    """The :class:`TileSpec` for reading ``indexes`` of a band-interleaved file together, or None (straight)."""
    one = tile_spec(layout, ident, indexes[0])
    if one is None or one.indexes is not None:
        return None
    return TileSpec((*ident, "bands", tuple(indexes)), one.tile, tuple(indexes), one.pooled, one.idle)


def aligned(win: Window, tile: tuple[int, int], shape: tuple[int, int]) -> bool:
    """True if ``win`` covers whole shared blocks (nothing outside it would be decoded)."""
    bh, bw = tile
    return (win.row_off % bh == 0 and win.col_off % bw == 0
            and (win.row_end % bh == 0 or win.row_end == shape[0])
            and (win.col_end % bw == 0 or win.col_end == shape[1]))


class HandlePool:
    """Handles of files with large blocks, shared by the threads of a pass while they decode.

    A GTiff handle keeps the last block it decoded and its compressed bytes
    until it is closed (:attr:`FileLayout.large_blocks`: about 90 MiB for a
    7-band uint16 stack tiled 2048, 190 MiB in float32).  Each reading thread
    keeps its own handle of every file (GDAL handles are not thread-safe), so
    two threads reading a pair of such files held four of those buffers for
    the whole pass, and after it in the threads' handles.  During a pass,
    the tile cache decodes such a file's blocks with a handle borrowed here
    instead (:meth:`borrow`): an idle handle of the file if there is one,
    else a new one; a handle given back when the file already has an idle one
    is closed.  A file then has as many handles as threads decoding it at the
    same moment, one most of the time (a pass's two threads read a window's
    two dates in opposite orders: :func:`ecopatch.raster.ongrid.read_pair`),
    and its buffer is reused from block to block, not allocated afresh
    (closing a handle after each decode cost a 2048² tile 0.19 -> 0.26 s, the
    pages of a fresh buffer).  Except where blocks are
    :data:`IDLE_HANDLE_MAX_BYTES` or more (``keep_idle=False``): there each
    decode opens a handle and closes it, as the two idle handles of a pair
    held the pass's peak up (a pixel-interleaved 7-band uint16 stack tiled
    2048, assess + detect on the full pair, whole processes: 0.98-0.99 ->
    0.93 GiB, 36.3 -> 38.0 s).  :meth:`close` closes them all: the tile
    cache does when its last pass ends.
    """

    def __init__(self) -> None:
        self._idle: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._keep = False
        self.opened = 0  # handles opened, for tests and benchmarks

    @contextmanager
    def borrow(self, ds: Any, *, keep_idle: bool = True) -> Iterator[Any]:
        """A handle of the file ``ds`` reads (``ds.name``) for the length of the block, not shared meanwhile.

        ``keep_idle=False``: the handle is closed when given back, not kept
        for the file's next decode.
        """
        path = ds.name
        with self._lock:
            got = self._idle.pop(path, None)
            self._keep = True
        if got is None:
            got = open_raster(path)
            with self._lock:
                self.opened += 1
        try:
            yield got
        finally:
            with self._lock:
                if keep_idle and self._keep and path not in self._idle:
                    self._idle[path], got = got, None
            if got is not None:
                got.close()

    def close(self) -> None:
        """Close every idle handle; handles borrowed now are closed when given back."""
        with self._lock:
            idle, self._idle = list(self._idle.values()), {}
            self._keep = False
        for ds in idle:
            ds.close()


class TileCache:
    """Decoded blocks shared by the windows that touch them.

    Analysis windows are padded by a pixel or two, so a 514 x 514 window
    touches 16 tiles of 256 x 256 instead of 4 and, read straight through
    GDAL, decodes its neighbours' tiles for one row or column of them.  Here
    every block a window decodes at its rim is kept (least recently used out
    first, up to ``budget`` bytes) for the neighbouring windows, which copy
    the pixels they need; groups of strips of a striped file are kept whole,
    for the windows to the right.  The blocks missing from a window are
    decoded in one read of their bounding rectangle, outside the lock, so
    threads decode in parallel.  A pixel-interleaved file's blocks hold all
    its bands (decoded once for all).  Buffers are recycled, not freed, so
    the cache does not fragment the heap.

    The blocks are kept only while a pass that uses them runs
    (:meth:`session`): the last pass to end drops them, so nothing stays
    resident after an analysis returns.

    Windows go down vertical stripes, left to right
    (:func:`ecopatch.engine.tiling.locality_order`), set back by their halo
    (:func:`ecopatch.engine.tiling.blocks_touching`'s ``offset``), so a
    stripe's first windows reach twice their halo into the last tiles of the
    stripe before, long out of the cache.  Of every tile decoded in a
    session, the :data:`EDGE_PX` columns at its right edge are kept (least
    recently used out beyond an eighth of the budget, but at least 2 MiB),
    and a window needing no more of that tile copies them: a JPEG 2000 tile
    is otherwise decoded whole again for a 10-pixel halo.  A tile one thread
    is decoding is not decoded by another at the same time
    (:meth:`read_into`).
    """

    def __init__(self, budget_bytes: int | None) -> None:
        self.budget = budget_bytes
        self._tiles: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._edges: OrderedDict[tuple, tuple[int, np.ndarray]] = OrderedDict()
        self._edge_bytes = 0
        self._loading: dict[tuple, threading.Event] = {}  # tiles a thread is decoding now
        self._free: dict[tuple, list[np.ndarray]] = {}
        self._bytes = 0  # in cached tiles
        self._spare = 0  # in recycled buffers waiting for a tile
        self._lock = threading.Lock()
        self._sessions: list[int] = []  # budgets asked for by the passes running now
        self._base: int = 0 if budget_bytes is None else budget_bytes  # the budget outside sessions
        self.hits = 0
        self.decoded = 0
        self.handles = HandlePool()  # handles that decode files with large blocks while a pass runs

    def clear(self) -> None:
        """Drop every cached block and spare buffer; close the pooled handles."""
        with self._lock:
            self._tiles.clear()
            self._free.clear()
            self._edges.clear()
            self._bytes = self._spare = self._edge_bytes = 0
        self.handles.close()

    @property
    def active(self) -> bool:
        """True while a pass keeps blocks (inside :meth:`session`, with a budget above 0)."""
        return bool(self._sessions) and (self.budget or 0) > 0

    @contextmanager
    def session(self, budget_bytes: int | None = None) -> Iterator[None]:
        """Keep blocks for the length of a pass (budget at least ``budget_bytes``); drop them when the last ends.

        Outside every session blocks are read through the cache but not
        kept, so nothing stays resident between calls.
        """
        with self._lock:
            if not self._sessions:
                self._base = default_budget() if self.budget is None else self.budget
            want = self._base if budget_bytes is None or self._base <= 0 else max(int(budget_bytes), self._base)
            self._sessions.append(want)
            self.budget = max(self._sessions)
        try:
            yield
        finally:
            with self._lock:
                self._sessions.remove(want)
                last = not self._sessions
                self.budget = max(self._sessions) if self._sessions else self._base
            if last:
                self.clear()

    def read_into(self, ds: Any, spec: TileSpec, win: Window, out: np.ndarray) -> None:
        """Fill ``out`` (``win.shape``, or (bands, *win.shape) for a multi-band spec) from shared blocks.

        A tile another thread is decoding at that moment is not decoded
        again: this thread decodes the tiles no one is decoding, then waits
        for the others and copies them from the cache (two windows side by
        side start together, and the second one's halo needs the first one's
        tile).
        """
        bh, bw = spec.tile
        y0, y1, x0, x1 = win.row_off, win.row_end, win.col_off, win.col_end
        r0, r1 = y0 // bh, (y1 - 1) // bh
        c0, c1 = x0 // bw, (x1 - 1) // bw
        span = (r0, r1, c0, c1)
        key = spec.key
        missing: list[tuple[int, int]] = []
        waits: dict[tuple[int, int], threading.Event] = {}
        with self._lock:
            keep = self.active
            for tr in range(r0, r1 + 1):
                for tc in range(c0, c1 + 1):
                    if self._copy_cached(key, tr, tc, bh, bw, out, y0, x0):
                        continue
                    loading = self._loading.get((key, tr, tc)) if keep else None
                    if loading is not None:
                        waits[(tr, tc)] = loading
                    else:
                        missing.append((tr, tc))
            claimed = None
            if keep and missing:
                # the tiles this read will keep (see _decode_into): others wait for them, not decode them
                claimed = threading.Event()
                for tr, tc in missing:
                    if _shared_ring(tr, tc, span):
                        self._loading[(key, tr, tc)] = claimed
        if missing:
            try:
                self._decode_into(ds, spec, missing, span, out, y0, x0, keep)
            finally:
                if claimed is not None:
                    with self._lock:
                        for tr, tc in missing:
                            if self._loading.get((key, tr, tc)) is claimed:
                                del self._loading[(key, tr, tc)]
                    claimed.set()
        if not waits:
            return
        left = []
        for (tr, tc), ev in waits.items():
            ev.wait()
            with self._lock:
                if not self._copy_cached(key, tr, tc, bh, bw, out, y0, x0):
                    left.append((tr, tc))  # decoded but not kept (budget): decode it here
        if left:
            self._decode_into(ds, spec, left, span, out, y0, x0, keep)

    def reader(self, ds: Any, spec: TileSpec) -> AbstractContextManager[Any]:
        """The handle to decode blocks of ``spec``'s file with, for the length of the block.

        One of the pass's pool (:attr:`handles`) for a file of large blocks
        (``spec.pooled``; kept for the next decode if ``spec.idle``) while a
        pass runs; else ``ds``, the reading thread's own.
        """
        return self.handles.borrow(ds, keep_idle=spec.idle) if spec.pooled and self.active else nullcontext(ds)

    def _copy_cached(self, key: tuple, tr: int, tc: int, bh: int, bw: int, out: np.ndarray,
                     y0: int, x0: int) -> bool:
        """Copy tile ``(tr, tc)`` (or the kept columns it needs) into ``out`` if cached; hold the lock."""
        tile = self._tiles.get((key, tr, tc))
        if tile is None:
            edge = self._edges.get((key, tr, tc))
            if edge is not None and max(x0, tc * bw) >= edge[0]:
                # only the tile's last columns: the halo of the next stripe's window
                self._edges.move_to_end((key, tr, tc))
                self.hits += 1
                copy_part(edge[1], tr * bh, edge[0], out, y0, x0)
                return True
            return False
        self._tiles.move_to_end((key, tr, tc))
        self.hits += 1
        copy_part(tile, tr * bh, tc * bw, out, y0, x0)
        return True

    def _decode_into(self, ds: Any, spec: TileSpec, missing: list[tuple[int, int]],
                     span: tuple[int, int, int, int], out: np.ndarray, y0: int, x0: int, keep: bool) -> None:
        """Decode the ``missing`` tiles (one read of the rectangle holding them) into ``out``; keep some.

        ``span`` is the read's range of tiles ``(r0, r1, c0, c1)``: the tiles
        of its outer two rings are kept (tiles deep inside a large read are
        not shared with a padded neighbour), and every tile's last columns.
        """
        bh, bw = spec.tile
        key = spec.key
        mr0, mr1 = min(t[0] for t in missing), max(t[0] for t in missing)
        mc0, mc1 = min(t[1] for t in missing), max(t[1] for t in missing)
        ry, rx = mr0 * bh, mc0 * bw
        rect = Window(row_off=ry, col_off=rx,
                      height=min((mr1 + 1) * bh, ds.height) - ry, width=min((mc1 + 1) * bw, ds.width) - rx)
        indexes = spec.indexes if spec.indexes is not None else key[-1]
        buf = None
        if len(missing) == 1 and keep and _shared_ring(mr0, mc0, span):
            # a tile kept alone is decoded straight into its cache buffer: no copy, and no second
            # tile-sized array while it decodes (59 MiB for a 7-band uint16 stack tiled 2048)
            dtype = np.dtype(ds.dtypes[(indexes if isinstance(indexes, int) else indexes[0]) - 1])
            with self._lock:
                buf = self._take((len(indexes), *rect.shape) if spec.indexes is not None else rect.shape, dtype)
        try:
            with self.reader(ds, spec) as handle:
                data = ds_read(handle, indexes, rect, out=buf)
        except BaseException:
            if buf is not None:
                with self._lock:
                    self._bytes -= buf.nbytes
            raise
        want = set(missing)
        with self._lock:
            for tr in range(mr0, mr1 + 1):
                for tc in range(mc0, mc1 + 1):
                    ty, tx = tr * bh - ry, tc * bw - rx
                    part = data[..., ty:ty + bh, tx:tx + bw]
                    if (tr, tc) in want:
                        copy_part(part, tr * bh, tc * bw, out, y0, x0)
                    kept = keep and _shared_ring(tr, tc, span) and (key, tr, tc) not in self._tiles
                    if buf is not None:  # the one tile, read into the buffer taken for it
                        if kept:
                            self._tiles[(key, tr, tc)] = buf
                        else:  # kept meanwhile by a read that did not claim it
                            self._bytes -= buf.nbytes
                    elif kept:
                        self._put((key, tr, tc), part)
                    self.decoded += kept
                    if keep and (tc + 1) * bw < ds.width and part.shape[-1] > EDGE_PX:
                        self._put_edge((key, tr, tc), (tc + 1) * bw - EDGE_PX, part[..., -EDGE_PX:])

    def _put_edge(self, k: tuple, col: int, strip: np.ndarray) -> None:
        """Keep a copy of a tile's right-edge ``strip`` (first column ``col``): an eighth of the budget, >= 2 MiB."""
        assert self.budget is not None
        if k in self._edges:
            self._edges.move_to_end(k)
            return
        copy = np.array(strip, copy=True, order="C")
        self._edges[k] = (col, copy)
        self._edge_bytes += copy.nbytes
        while self._edge_bytes > max(self.budget // 8, 2 * 1024 * 1024) and self._edges:
            _, (_, old) = self._edges.popitem(last=False)
            self._edge_bytes -= old.nbytes

    def _put(self, k: tuple, part: np.ndarray) -> None:
        """Keep a copy of ``part``, evicting the least recently used tiles beyond the budget; hold the lock."""
        buf = self._take(part.shape, part.dtype)
        if buf is not None:
            buf[...] = part
            self._tiles[k] = buf

    def _take(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
        """A buffer for a tile to keep, counted in the budget; None when it is over a quarter of it; hold the lock.

        The least recently used tiles beyond the budget make room; a spare
        buffer of the shape is reused, else spares of other shapes (edge
        tiles, other data types) beyond the budget are freed first.
        """
        assert self.budget is not None
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if nbytes > self.budget // 4:
            return None
        while self._bytes + nbytes > self.budget and self._tiles:
            _, old = self._tiles.popitem(last=False)
            self._bytes -= old.nbytes
            self._spare += old.nbytes
            self._free.setdefault((old.shape, old.dtype.str), []).append(old)
        pool = self._free.get((tuple(shape), np.dtype(dtype).str))
        if pool:
            buf = pool.pop()
            self._spare -= buf.nbytes
        else:
            for other in list(self._free):
                while self._free[other] and self._bytes + self._spare + nbytes > self.budget:
                    self._spare -= self._free[other].pop().nbytes
            buf = np.empty(shape, dtype)
        self._bytes += nbytes
        return buf


def _shared_ring(tr: int, tc: int, span: tuple[int, int, int, int]) -> bool:
    """Whether tile ``(tr, tc)`` lies in the outer two rings of a read of tiles ``span`` = ``(r0, r1, c0, c1)``.

    Those are the tiles a padded neighbour may share, so the cache keeps them
    (and a read claims them while it decodes); tiles deep inside a large read
    are not shared.
    """
    r0, r1, c0, c1 = span
    return min(tr - r0, r1 - tr, tc - c0, c1 - tc) <= 1


def copy_part(tile: np.ndarray, ty: int, tx: int, out: np.ndarray, oy: int, ox: int) -> None:
    """Copy the overlap of ``tile`` (top-left pixel at row ``ty``, col ``tx``) into ``out`` (at ``oy``, ``ox``).

    Both may have a leading band axis (the same bands).
    """
    th, tw = tile.shape[-2:]
    oh, ow = out.shape[-2:]
    a, b = max(ty, oy), min(ty + th, oy + oh)
    c, d = max(tx, ox), min(tx + tw, ox + ow)
    if a < b and c < d:
        out[..., a - oy:b - oy, c - ox:d - ox] = tile[..., a - ty:b - ty, c - tx:d - tx]


def default_budget() -> int:
    """The tile cache budget (bytes) from ``ECOPATCH_TILE_CACHE_MB``, else :data:`TILE_CACHE_MB`."""
    mb = env_int("ECOPATCH_TILE_CACHE_MB", minimum=0, unit="MB")
    return (TILE_CACHE_MB if mb is None else mb) * 1024 * 1024


#: Columns at the right edge of each decoded tile the tile cache keeps for the next stripe's windows.
#: Windows are set back by their halo (the detection's 5 pixels, the assessment's 3) and by how far
#: their scenes' reads reach beyond it (Sentinel-2's 20 m SCL grown by its default 20 m: 3 pixels), so
#: they read twice that to their left (16 pixels for the detection), and nothing of the next stripe
#: to their right: a stripe's first windows then copy these columns instead of decoding the tiles
#: before them again (:meth:`TileCache.read_into`).  A larger ``cloud_buffer_m`` reads further left
#: and decodes those tiles again.  Not more: the columns are kept for every tile, within an eighth of
#: the budget, and 32 of them overflowed it on the JPEG 2000 SAFE (36 more tiles decoded twice).
EDGE_PX = 16

#: The tile cache of this process (budget read from the environment at the first read).
TILES = TileCache(None)


# ---------------------------------------------------------------------------
# Planning a pass's reads
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReadPlan:
    """How a windowed pass reads its files, from their layouts (:func:`plan_reads`).

    Attributes
    ----------
    stripe_px : int
        Width (analysis pixels) of the stripes windows are taken in
        (:func:`ecopatch.engine.tiling.locality_order`): the whole width when a
        file is striped.
    tile_cache_bytes : int or None
        Tile cache budget for the pass (None: the default).
    gdal_cache_bytes : int
        GDAL's block cache during the pass.
    layouts : tuple of (str, str)
        Each file and its layout in words, for logs and benchmarks.
    trim_every : int
        Hand the heap back to the system (glibc ``malloc_trim``) after every
        this many windows; 0: only when the pass ends.  1 for JPEG 2000
        files, whose decoder's per-tile buffers, freed in the worker threads'
        malloc arenas, left a full-tile detection at 1.6 GiB resident (0.80
        GiB with the trim; a window of such a file takes a second or more to
        decode, and the time did not change); 8 for striped files, whose
        whole-width strips did the same (assess + detect on the full tile:
        1.01-1.04 -> 0.82 GiB, 22.5 -> 23.2 s; after every window 24.0 s),
        and 8 for tiled GeoTIFFs whose decoded blocks of one position (all
        bands) are :data:`LARGE_BLOCK_BYTES` or more (a 7-band stack tiled
        1024: 1.23 -> 0.97-0.99 GiB whether every 1, 2, 4 or 8 windows,
        29.9 -> 30.3-32.3 s; band-interleaved, 0.97 -> 0.82 GiB, 22.5 -> 24.0 s).
    """

    stripe_px: int = STRIPE_PX
    tile_cache_bytes: int | None = None
    gdal_cache_bytes: int = PASS_GDAL_CACHE_MB * 1024 * 1024
    layouts: tuple[tuple[str, str], ...] = ()
    trim_every: int = 0

    @contextmanager
    def session(self) -> Iterator[None]:
        """The pass's read settings for the length of the block (tile cache and GDAL cache, both scoped)."""
        with gdal_cache(self.gdal_cache_bytes), TILES.session(self.tile_cache_bytes):
            yield

    @staticmethod
    def release_caller() -> None:
        """Close the calling thread's handles of files with large blocks, before a pass starts there.

        They hold the last block the set-up decoded in that thread
        (:func:`ecopatch.raster.fileread.release_large_handles`), and the
        windows are read by the pass's threads (a float32 7-band stack tiled
        2048, assess + detect on the full tile: the pass peaked at 2.43 GiB
        without this, 2.02 GiB with it).  Not done at each task's session in
        a worker process, whose handles the next task reads with.
        """
        from ecopatch.raster.fileread import release_large_handles

        release_large_handles()

    @contextmanager
    def gdal_scope(self) -> Iterator[None]:
        """GDAL's block cache at the pass's size for the length of the block, nothing else (no tile cache).

        For reads of these files outside the pass (a pass's set-up samples):
        without it they run with GDAL's default cache, 5 % of the RAM, which
        fills with decoded blocks the reads never use again (1024² JPEG 2000
        tiles: the set-up of a full-tile detection peaked at 1.2 GiB).
        """
        with gdal_cache(self.gdal_cache_bytes):
            yield

    @staticmethod
    def combine(plans: Iterable[ReadPlan | None]) -> ReadPlan:
        """One plan for passes that run together: the narrowest stripe, the largest caches."""
        ps = [p for p in plans if p is not None]
        if not ps:
            return ReadPlan()
        budgets = [p.tile_cache_bytes for p in ps if p.tile_cache_bytes is not None]
        return ReadPlan(min(p.stripe_px for p in ps), max(budgets) if budgets else None,
                        max(p.gdal_cache_bytes for p in ps), tuple(dict.fromkeys(x for p in ps for x in p.layouts)),
                        _finest_trim(p.trim_every for p in ps))


#: Windows between two hand-backs of the freed heap in a pass over striped files, or over tiled files
#: with blocks of :data:`LARGE_BLOCK_BYTES` or more (see :class:`ReadPlan`).
TRIM_STRIPED = 8
#: Decoded blocks of one position (all bands) this large or larger fragment the worker threads' malloc
#: arenas (:attr:`FileLayout.held_block_bytes`).
LARGE_BLOCK_BYTES = 8 * 1024 * 1024


def _finest_trim(every: Iterable[int]) -> int:
    """The most frequent trim asked for (0: none asked)."""
    asked = [e for e in every if e > 0]
    return min(asked) if asked else 0


def plan_reads(files: Sequence[tuple[FileLayout, float]], *, block: int = WINDOWS.block, workers: int = 2,
               grid_width: int | None = None, name: Sequence[str] = ()) -> ReadPlan:
    """Size a windowed pass for the files it reads.

    Parameters
    ----------
    files : sequence of (FileLayout, float)
        Each file the pass reads and its pixel size relative to the analysis
        grid (2.0 for a 20 m band on a 10 m grid).
    block : int
        Analysis window size, pixels.
    workers : int
        Threads reading at once.
    grid_width : int, optional
        Width of the analysis grid, pixels (the stripe over striped files).
    name : sequence of str
        Names of the files, for :attr:`ReadPlan.layouts`.

    Returns
    -------
    ReadPlan

    Notes
    -----
    *Tiled files*: windows go in stripes as wide as the tile cache can hold
    two rows of every file's tiles for (the tiles a window row shares with
    the next), from :data:`STRIPE_PX` down to two windows; 256-pixel tiles
    keep 4096-pixel stripes, JPEG 2000's 1024-pixel tiles get narrower ones
    and, when two windows' worth still does not fit, a larger cache (up to
    :data:`MAX_TILE_CACHE_MB`).
    *Striped files*: a strip is decoded whole, so windows go in rows across
    the whole width and the tile cache holds one row of windows' strips
    (raised up to :data:`MAX_TILE_CACHE_MB`).  GDAL's own block cache only
    has to hold the block a read is decoding (all bands of it), per thread.
    """
    base = default_budget()
    if not files:
        return ReadPlan()
    # GDAL's cache: two decoded blocks per reading thread, one where blocks are large (8 MiB or more: a
    # 2048² tile of a 7-band stack is 59 MiB), and none of a file with large blocks that the tile cache
    # reads whole and keeps itself (a 7-band stack tiled 2048, assess + detect on the full tile: 1.72 ->
    # 1.59 GiB with one, 1.32 -> 1.14 GiB with none, no slower)
    def gdal_holds(f: FileLayout) -> int:
        if base > 0 and f.large_blocks and tile_spec(f, (), 1) is not None:
            return 0
        return (1 if f.block_set_bytes >= LARGE_BLOCK_BYTES else 2) * workers * f.block_set_bytes

    gdal = max(PASS_GDAL_CACHE_MB * 1024 * 1024, *(gdal_holds(f) for f, _ in files))
    words = tuple((n, f.describe()) for n, (f, _) in zip(name, files))
    trim = (1 if any(f.driver == "JP2OpenJPEG" for f, _ in files)
            else TRIM_STRIPED if any(f.driver == "GTiff" and (f.striped or f.held_block_bytes >= LARGE_BLOCK_BYTES)
                                     for f, _ in files) else 0)
    if base <= 0:
        return ReadPlan(STRIPE_PX, None, gdal, words, trim)
    shared = [(f, s) for f, s in files if f.driver in ("GTiff", "JP2OpenJPEG") and not small_tiles(f)]
    if any(f.striped for f, _ in shared):
        width = grid_width or max(int(f.shape[1] * s) for f, s in files)
        strips = 0.0
        for f, s in shared:
            rows = (block + 4) / s + (f.block[0] * max(1, math.ceil(STRIP_GROUP_ROWS / f.block[0]))
                                      if f.striped else 2 * f.block[0])
            strips += rows * f.shape[1] * f.held_px_bytes
        budget: int | None = min(MAX_TILE_CACHE_MB * 1024 * 1024, max(base, int(strips * 1.25)))
        return ReadPlan(max(width, block), budget, gdal, words, trim)

    def need(stripe: int) -> float:
        # two rows of tiles across the stripe and one on each side; a GeoTIFF stripe no wider than one
        # tile: two rows of that tile, a tenth more (the windows, set back by their halo and reach, read no
        # tile of the next stripe and keep the previous one's edge columns; a 7-band stack tiled 2048 ran
        # as fast with 256 MiB as with 384 and thrashed at 160).  JPEG 2000's 20 m bands keep the first
        # rule, with which its budget was measured
        return sum(2.2 * f.block[0] * f.block[1] * f.held_px_bytes
                   if f.driver == "GTiff" and f.block[1] * s >= stripe
                   else 2 * f.block[0] * (stripe / s + 2 * f.block[1]) * f.held_px_bytes
                   for f, s in shared if f.tiled and f.compression != "none")

    # JPEG 2000 decodes a tile whole for any pixel of it (0.13 s a 1024² tile here): in stripes one
    # tile wide every stripe boundary is a tile boundary, and the windows' halos there decode the tiles
    # on both sides again (assess + detect on the full JPEG 2000 SAFE read each 10 m tile 2.3 times,
    # 269 s; with stripes of two tiles, 2.0 times and 192 s, 0.80 GiB both)
    narrowest = max(2 * block, 2 * min((int(f.block[1] * s) for f, s in shared if f.driver == "JP2OpenJPEG"),
                                       default=0),
                    max((int(f.block[1] * s) for f, s in shared if f.tiled and f.compression != "none"), default=0))
    stripe = STRIPE_PX
    while stripe > narrowest and need(stripe) > 0.75 * base:
        stripe //= 2
    # raised above the default, to what the stripe needs (it was a third more: with it, a 7-band GeoTIFF
    # stack tiled 1024 peaked at 0.97-1.03 GiB in assess + detect over the full tile, 0.91-0.92 GiB
    # without, in 30.9-31.0 s against 30.3-32.3 s)
    # files whose tiles are so large that two rows of them (the one-tile stripe's rule) exceed the cap
    # get that much: capped, their tiles were not shared and each was decoded again by every window over
    # it (a float32 7-band stack tiled 2048, 112 MiB a position: assess + detect took 254 s, 20.5 times
    # the decode, and 70 s with 493 MiB)
    cap = max(MAX_TILE_CACHE_MB * 1024 * 1024, int(need(0)))
    budget = None if need(stripe) <= 0.75 * base else min(cap, int(need(stripe)))
    return ReadPlan(stripe, budget, gdal, words, trim)
