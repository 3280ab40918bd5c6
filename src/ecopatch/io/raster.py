"""Reading imagery: products on disk -> reflectance windows on a :class:`~ecopatch.grid.Grid`.

:func:`open_scene` looks at what a user points it to (a Sentinel-2 SAFE
folder, a STAC item, a Landsat Collection 2 folder with its MTL file, a folder
of single-band files, or one multi-band GeoTIFF such as a Gaofen scene or a
drone orthomosaic) and returns a :class:`Scene`: a lazy, picklable
description of where each band is and how its digital numbers become
reflectance.  Nothing is read until :meth:`Scene.read` or
:func:`read_on_grid` asks for a window, so a full 10980 × 10980 tile costs
nothing to open.

Reads return float32 arrays with NaN wherever a pixel is not usable: nodata,
saturated, outside the valid reflectance range, or masked by the product's
own cloud band (Sentinel-2 SCL, Landsat QA_PIXEL, a drone mosaic's alpha).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import re
import threading
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from .._env import env_int
from ..errors import (
    ConfigError,
    EcopatchWarning,
    InputDataError,
    MissingBandError,
    MissingCRSError,
    RasterReadError,
)
from ..grid import Grid, Window
from ..sensors import COMMON_BANDS, SensorProfile, get_sensor, landsat_qa_clear, scl_clear

__all__ = [
    "BandRef",
    "MaskRef",
    "Observation",
    "Scene",
    "open_scene",
    "read_decimated",
    "read_on_grid",
    "read_sample",
]

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img", ".dat")
#: First Sentinel-2 processing baseline with the -1000 radiometric offset (25 Jan 2022).
S2_OFFSET_BASELINE = 4.0
#: Reflectance outside this range is treated as invalid (saturation, fill, overflow).
VALID_REFLECTANCE = (-0.15, 1.6)


# ---------------------------------------------------------------------------
# Values: what a scene is made of
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BandRef:
    """One band of a scene: where it is and how DN become reflectance.

    ``reflectance = DN × scale + offset``; DN equal to ``nodata`` (or to the
    dtype's maximum, the usual saturation/fill value of integer products)
    are invalid.
    """

    path: str
    index: int
    grid: Grid
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    dtype: str = "uint16"
    band_id: str = ""


@dataclass(frozen=True)
class MaskRef:
    """A product quality band: ``kind`` is "scl", "qa_pixel", "alpha" or "cloud01"."""

    path: str
    index: int
    grid: Grid
    kind: str


@dataclass(frozen=True)
class Observation:
    """Reflectance of some bands in one window, with a validity mask.

    Attributes
    ----------
    bands : mapping of str to ndarray of float32, shape (rows, cols)
        Reflectance (unitless, 0-1; relative brightness for drone RGB), NaN
        where ``valid`` is False.
    valid : ndarray of bool, shape (rows, cols)
        True where every band has data and the product's mask says clear.
    grid : Grid
        The grid of the window.
    """

    bands: Mapping[str, np.ndarray]
    valid: np.ndarray
    grid: Grid

    def __getitem__(self, name: str) -> np.ndarray:
        return self.bands[name]

    def __contains__(self, name: object) -> bool:
        return name in self.bands


@dataclass(frozen=True)
class Scene:
    """A lazily read image of one date: named bands on a grid, with a cloud mask.

    Use :func:`open_scene` to make one.  A Scene holds paths and numbers only
    (no open file), so it pickles to Dask workers.

    Attributes
    ----------
    sensor : SensorProfile
        The product type.
    band_refs : tuple of (str, BandRef)
        Common band name -> where that band is.
    grid : Grid
        The scene's working grid: that of its finest band.  Coarser bands
        (Sentinel-2 B11/B12 at 20 m) are brought onto it when read.
    date : datetime.date or None
        Acquisition date (UTC).
    mask : MaskRef or None
        The product's cloud/quality band, if any.
    source : str
        What the scene was opened from.
    metadata : mapping
        Product facts found on the way (processing baseline, offsets, ...).
    cloud_buffer_m : float
        Ground distance (m) by which the product's cloud, shadow and cirrus
        mask is grown: product masks miss the thin fringes of clouds.
    """

    sensor: SensorProfile
    band_refs: tuple[tuple[str, BandRef], ...]
    grid: Grid
    date: _dt.date | None
    mask: MaskRef | None
    source: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    cloud_buffer_m: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    # pickling: MappingProxyType cannot be pickled
    def __reduce__(self) -> Any:
        return (
            _rebuild_scene,
            (self.sensor.name, self.band_refs, self.grid, self.date, self.mask, self.source,
             dict(self.metadata), self.sensor if self.sensor.name not in _sensor_names() else None,
             self.cloud_buffer_m),
        )

    @property
    def bands(self) -> tuple[str, ...]:
        """Common names of the bands this scene has."""
        return tuple(name for name, _ in self.band_refs)

    def band(self, name: str) -> BandRef:
        """The :class:`BandRef` of a common band name.

        Raises
        ------
        MissingBandError
            Naming the bands the scene has.
        """
        for n, ref in self.band_refs:
            if n == name:
                return ref
        raise MissingBandError(
            f"{self.source}: no {name!r} band (the scene has {list(self.bands)}); "
            f"pass bands={{'{name}': <band number>}} to open_scene if the file has it "
            "under another name"
        )

    @property
    def label(self) -> str:
        """A short human name: sensor and date."""
        d = self.date.isoformat() if self.date else "undated"
        return f"{self.sensor.name} {d}"

    def require(self, names: Iterable[str], purpose: str) -> None:
        """Raise :class:`MissingBandError` unless the scene has every band in ``names``."""
        missing = [n for n in names if n not in self.bands]
        if missing:
            raise MissingBandError(
                f"{self.source}: {purpose} needs band(s) {missing}, but the scene has "
                f"{list(self.bands)}; use another index, or pass bands={{...}} to open_scene "
                "to name the file's bands"
            )

    def read(
        self, bands: Sequence[str] | None = None, window: Window | None = None
    ) -> Observation:
        """Read reflectance of ``bands`` in ``window`` of :attr:`grid`.

        Parameters
        ----------
        bands : sequence of str, optional
            Common band names; default all.
        window : Window, optional
            Pixels of :attr:`grid`; may extend past the grid (filled with NaN).
            Default the whole grid: only sensible for small scenes.

        Returns
        -------
        Observation
        """
        names = list(bands) if bands is not None else list(self.bands)
        for n in names:
            self.band(n)
        window = window or self.grid.window
        out: dict[str, np.ndarray] = {}
        # the mask first: each band is then NaN wherever it or the bands before it say "not
        # valid", and only pixels a later band excludes need a second pass
        if self.mask is not None:
            valid = self._mask_clear(window)  # C order: the band loops walk rows
        else:
            valid = np.ones(window.shape, dtype=bool)
        late = False  # a band excluded pixels that bands read before it had kept
        for k, n in enumerate(names):
            ref = self.band(n)
            refl, cleared = _read_reflectance(ref, self.grid, window, valid)
            out[n] = refl
            late |= k > 0 and cleared > 0
        if not self.sensor.reflectance:
            collar = self._collar(out)
            late |= bool((collar & valid).any())
            valid &= ~collar
        if late:
            invalid = ~valid
            for n in names:
                np.copyto(out[n], np.float32(np.nan), where=invalid)
        return Observation(out, valid, self.grid.subgrid(window))

    def _collar(self, bands: Mapping[str, np.ndarray]) -> np.ndarray:
        """Drone RGB mosaics often carry an untagged black collar: (0, 0, 0) is no data."""
        shape = next(iter(bands.values())).shape if bands else (0, 0)
        dark = np.zeros(shape, dtype=bool)
        if not self.sensor.reflectance and bands:
            dark = np.ones(shape, dtype=bool)
            for v in bands.values():
                dark &= v <= 0
        return dark

    def _buffer_px(self, res_m: float) -> int:
        """Cloud-buffer radius in pixels of ground size ``res_m``."""
        m = self.mask
        if m is None or self.cloud_buffer_m <= 0 or m.kind not in ("scl", "qa_pixel"):
            return 0
        return int(math.ceil(self.cloud_buffer_m / res_m))

    def _mask_clear(self, window: Window) -> np.ndarray:
        """The product mask's clear pixels in ``window``, with clouds grown by ``cloud_buffer_m``."""
        m = self.mask
        assert m is not None
        # a mask on a whole-factor coarser grid (Sentinel-2 SCL at 20 m): clouds are grown on
        # its own grid, then repeated onto the window: 4x fewer pixels
        k = self._buffer_px(m.grid.res[0] * _unit_m(m.grid))
        whole = _whole_pixels(m.path, m.index, m.grid, self.grid, window, fill=0, pad=k)
        if whole is not None:
            raw, rows, cols = whole
            if rows is None or cols is None:
                rows, cols = np.arange(window.height), np.arange(window.width)
            return _grow_clouds_at(raw, m.kind, k, rows, cols)
        k = self._buffer_px(self.grid.res[0] * _unit_m(self.grid))
        big = window.pad(k)
        raw = _read_resampled(m.path, m.index, m.grid, self.grid, big, categorical=True)
        rel = window.relative_to(big)
        return _grow_clouds_at(raw, m.kind, k, np.arange(rel.row_off, rel.row_end), np.arange(rel.col_off, rel.col_end))

    def with_date(self, date: _dt.date) -> Scene:
        """A copy with another acquisition date."""
        return replace(self, date=date)

    def __repr__(self) -> str:
        return (
            f"Scene({self.sensor.name}, date={self.date}, bands={list(self.bands)}, "
            f"grid={self.grid!r}, mask={self.mask.kind if self.mask else None}, source={self.source!r})"
        )


def _sensor_names() -> tuple[str, ...]:
    from ..sensors import SENSORS

    return tuple(SENSORS)


def _rebuild_scene(sensor_name, band_refs, grid, date, mask, source, metadata, sensor_obj,  # type: ignore[no-untyped-def]
                   cloud_buffer_m=0.0):
    sensor = sensor_obj if sensor_obj is not None else get_sensor(sensor_name)
    return Scene(sensor, band_refs, grid, date, mask, source, metadata, cloud_buffer_m)


# ---------------------------------------------------------------------------
# Low-level reads (thread-local dataset handles)
# ---------------------------------------------------------------------------
_local = threading.local()
_cache_mb: int | None = None  # the cap ecopatch set, MB; None before the first open
#: GDAL block cache (MB) for files tiled in blocks of at most 256 x 256 pixels.
SMALL_TILE_GDAL_CACHE_MB = 1
#: GDAL block cache (MB) once a file with larger tiles (JPEG 2000: 1024 x 1024) or strips is opened.
LARGE_TILE_GDAL_CACHE_MB = 64
_cache_lock = threading.Lock()


def _cap_gdal_cache(ds: Any) -> None:
    """Size GDAL's process-wide block cache (default 5 % of RAM) for the files being read.

    ecopatch reads window by window, and a window padded by a pixel or two
    touches its neighbours' tiles.  With small tiles (GeoTIFFs tiled 256 x
    256) re-decoding those edge tiles costs less than caching them: on a
    full Sentinel-2 tile pair (2 threads) a 64 MB cache left detection time
    unchanged, stopped two threads' reads from running in parallel, and
    fragmented the heap so that peak memory grew with the number of windows
    (detection alone: 0.49 GB with 1 MB, 0.78 GB with 64 MB on one tile,
    1.43 GB with 64 MB on a 2 x 2 mosaic).  So the cap starts at 1 MB, and
    tiled GeoTIFFs share their decoded tiles between windows through
    ecopatch's own :class:`_TileCache` instead.  Files with large tiles (JPEG 2000
    Sentinel-2 bands, 1024 x 1024) or strips need their decoded blocks
    shared between windows, and the first such file raises the cap to 64 MB.
    ``ECOPATCH_GDAL_CACHE_MB`` fixes the cap instead, and nothing is changed
    when ``GDAL_CACHEMAX`` is set in the environment.  This is the one piece
    of process-wide state ecopatch sets in the calling process; it is logged.
    (The malloc calls of :mod:`ecopatch.tiling` act on the C heap: glibc's
    mmap and trim thresholds set to 32 MiB at the first windowed pass unless
    malloc settings were chosen, a ``malloc_trim`` after each windowed pass,
    and on Dask workers whose nanny set a threshold, the mmap threshold
    raised for the length of a batch and then restored.)
    """
    global _cache_mb
    if "GDAL_CACHEMAX" in os.environ:
        return
    fixed = env_int("ECOPATCH_GDAL_CACHE_MB", minimum=0, unit="MB")
    if fixed is not None:
        want = fixed
    else:
        bh, bw = ds.block_shapes[0] if ds.count else (1, 1)
        small = bh * bw <= 256 * 256 and not (bw >= ds.width > 256)
        want = SMALL_TILE_GDAL_CACHE_MB if small else LARGE_TILE_GDAL_CACHE_MB
    with _cache_lock:
        if _cache_mb is not None and (want <= _cache_mb or fixed is not None):
            return
        from rasterio.env import set_gdal_config

        # in bytes: rasterio hands an integer straight to GDALSetCacheMax64, so a bare 64 means 64 bytes
        set_gdal_config("GDAL_CACHEMAX", want * 1024 * 1024)
        _cache_mb = want
    log.info("GDAL block cache capped at %d MB (set GDAL_CACHEMAX to choose another size)", want)


def _dataset(path: str) -> Any:
    import rasterio
    import rasterio.errors

    cache = getattr(_local, "datasets", None)
    if cache is None:
        cache = _local.datasets = {}
    ds = cache.get(path)
    if ds is None or ds.closed:
        try:
            with warnings.catch_warnings():
                # a missing geotransform gets our own clearer error in _grid_of
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                ds = rasterio.open(path)
        except Exception as exc:  # rasterio raises RasterioIOError and friends
            raise RasterReadError(
                f"{path}: cannot open as a raster ({_short(exc)}); it is not a raster, or it is "
                "truncated or corrupt: check the file, re-download or re-export it"
            ) from exc
        _cap_gdal_cache(ds)
        cache[path] = ds
    return ds


def close_datasets() -> None:
    """Close the raster handles this thread keeps open."""
    cache = getattr(_local, "datasets", None) or {}
    for ds in cache.values():
        ds.close()
    cache.clear()


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return msg[:200]


def _read_block(path: str, index: int, grid: Grid, window: Window, fill: float, *, shared: bool = True) -> np.ndarray:
    """Read ``window`` of band ``index`` (1-based) of ``path``; parts outside the file are ``fill``.

    ``shared=False`` reads straight through GDAL, for windows whose tiles no
    other window needs (they then stay out of the tile cache).
    """
    ds = _dataset(path)
    inner = window.intersection(grid.window)
    dtype = np.dtype(ds.dtypes[index - 1])
    if np.issubdtype(dtype, np.integer) and not float(fill).is_integer():
        dtype = np.dtype(np.float32)
    out = np.full(window.shape, fill, dtype=dtype if inner is not None else np.float32)
    if inner is None:
        return out
    rel = inner.relative_to(window)
    sources = _vrt_simple_sources(path, ds, index) if ds.driver == "VRT" else None
    if sources is None:
        _read_into(ds, path, index, inner, out[rel.slices], shared)
        return out
    # a mosaic of whole-pixel copies of other files (gdalbuildvrt's usual output): read the
    # sources themselves, so their tiles go through the tile cache like single files'
    region = out[rel.slices]
    region[...] = sources.background
    for src_path, src_band, src_row, src_col, dst in sources.parts:
        ov = dst.intersection(inner)
        if ov is None:
            continue
        sw = Window(src_row + ov.row_off - dst.row_off, src_col + ov.col_off - dst.col_off, ov.height, ov.width)
        _read_into(_dataset(src_path), src_path, src_band, sw, region[ov.relative_to(inner).slices], shared)
    return out


def _read_into(ds: Any, path: str, index: int, win: Window, out: np.ndarray, shared: bool) -> None:
    """Fill ``out`` with window ``win`` (inside the file) of band ``index``."""
    tiles = _shared_tiles(ds, path, index) if shared else None
    if tiles is not None and not _tile_aligned(win, tiles[1], ds):
        _TILES.read_into(ds, tiles, win, out)
    else:
        out[...] = _ds_read(ds, index, win)


@dataclass(frozen=True)
class _VRTSources:
    background: float  # what GDAL gives where no source covers: the band's nodata, else 0
    parts: tuple[tuple[str, int, int, int, Window], ...]  # (path, band, src row, src col, dst window)


_vrt_cache: dict[tuple, _VRTSources | None] = {}
_vrt_lock = threading.Lock()


def _vrt_simple_sources(path: str, ds: Any, index: int) -> _VRTSources | None:
    """The sources of band ``index`` of a VRT if it only pastes whole-pixel copies of local files.

    That is: ``SimpleSource`` elements (opaque copies, later ones on top)
    whose source and destination rectangles are whole pixels of the same
    size, from bands of the VRT band's own data type, with nothing else in
    the band (no other source types, masks, colour tables, functions).
    Anything else returns None and is read through GDAL.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size, index)
    with _vrt_lock:
        if key in _vrt_cache:
            return _vrt_cache[key]
    try:
        found = _parse_vrt_band(path, ds, index)
    except Exception:  # noqa: BLE001 - anything unexpected: let GDAL read it
        found = None
    with _vrt_lock:
        _vrt_cache[key] = found
    return found


_VRT_BAND_TAGS = {"NoDataValue", "Description", "ColorInterp", "Metadata", "SimpleSource", "Histograms"}


def _parse_vrt_band(path: str, ds: Any, index: int) -> _VRTSources | None:
    root = ET.parse(path).getroot()
    if root.tag != "VRTDataset" or root.get("subClass") or root.find("MaskBand") is not None:
        return None
    band = next((b for b in root.findall("VRTRasterBand") if int(b.get("band", "0")) == index), None)
    if band is None or band.get("subClass") or any(c.tag not in _VRT_BAND_TAGS for c in band):
        return None
    dtype = ds.dtypes[index - 1]
    parts = []
    for src in band.findall("SimpleSource"):
        if any(c.tag not in ("SourceFilename", "SourceBand", "SourceProperties", "SrcRect", "DstRect") for c in src):
            return None
        fn = src.find("SourceFilename")
        sb = src.findtext("SourceBand", "1").strip()
        sr, dr = src.find("SrcRect"), src.find("DstRect")
        if fn is None or sr is None or dr is None or not sb.isdigit() or src.get("resampling"):
            return None
        name = (fn.text or "").strip()
        if fn.get("relativeToVRT") == "1":
            name = os.path.join(os.path.dirname(os.path.abspath(path)), name)
        if name.startswith("/vsi") or not os.path.isfile(name):
            return None
        s = [float(sr.get(k, "nan")) for k in ("yOff", "xOff", "ySize", "xSize")]
        d = [float(dr.get(k, "nan")) for k in ("yOff", "xOff", "ySize", "xSize")]
        if not all(math.isfinite(v) and v == int(v) for v in s + d) or s[2:] != d[2:]:
            return None
        sds = _dataset(name)
        b = int(sb)
        if not 1 <= b <= sds.count or sds.dtypes[b - 1] != dtype:
            return None
        if s[0] < 0 or s[1] < 0 or s[0] + s[2] > sds.height or s[1] + s[3] > sds.width:
            return None
        parts.append((name, b, int(s[0]), int(s[1]), Window(int(d[0]), int(d[1]), int(d[2]), int(d[3]))))
    nd = ds.nodatavals[index - 1]
    return _VRTSources(0.0 if nd is None else float(nd), tuple(parts))


def _ds_read(ds: Any, index: int, win: Window) -> np.ndarray:
    try:
        return ds.read(index, window=win.to_rasterio())
    except Exception as exc:
        raise RasterReadError(
            f"{ds.name}: reading band {index}, rows {win.row_off}-{win.row_end}, cols "
            f"{win.col_off}-{win.col_end} failed ({_short(exc)}); the file is probably "
            "truncated or corrupt: re-download or re-export it"
        ) from exc


#: Budget of the shared tile cache (MB); ``ECOPATCH_TILE_CACHE_MB`` overrides it, 0 turns it off.
#: Sized to hold a row of tiles of a stripe (:data:`ecopatch.tiling.STRIPE_PX`).
TILE_CACHE_MB = 128


def _shared_tiles(ds: Any, path: str, index: int) -> tuple[tuple, tuple[int, int]] | None:
    """(file key, tile shape) if band ``index`` of ``ds`` should be read through :data:`_TILES`.

    Tiled GeoTIFFs with tiles of at most 512 x 512 pixels on a local file
    system, including the files under a VRT mosaic (read through their
    sources, :func:`_vrt_simple_sources`).  Other files (strips, JPEG 2000,
    ``/vsi`` paths, other VRTs) are read through GDAL's own block cache.
    """
    if _TILES.budget is None:
        _TILES.budget = _tile_cache_budget()
    if _TILES.budget <= 0 or ds.driver != "GTiff":
        return None
    bh, bw = ds.block_shapes[index - 1]
    if bw >= ds.width or bh >= ds.height or bh * bw > 512 * 512:
        return None
    ident = _local.__dict__.setdefault("idents", {}).get(path)
    if ident is None or ident[0] is not ds:
        try:
            st = os.stat(path)
        except OSError:
            return None
        ident = (ds, (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        _local.idents[path] = ident
    return (*ident[1], index), (bh, bw)


def _tile_aligned(win: Window, tile: tuple[int, int], ds: Any) -> bool:
    bh, bw = tile
    return (win.row_off % bh == 0 and win.col_off % bw == 0
            and (win.row_end % bh == 0 or win.row_end == ds.height)
            and (win.col_end % bw == 0 or win.col_end == ds.width))


class _TileCache:
    """Decoded GeoTIFF tiles shared by the windows that touch them.

    Analysis windows are padded by a pixel or two, so a 514 x 514 window
    touches 16 tiles of 256 x 256 instead of 4 and, read straight through
    GDAL, decodes its neighbours' tiles for one row or column of them.  Here
    every tile a window decodes is kept (least recently used out first, up to
    ``budget`` bytes) for the neighbouring windows, which copy the pixels
    they need.  The tiles missing from a window are decoded in one read of
    their bounding rectangle, outside the lock, so threads decode in
    parallel.  Tile buffers are recycled, not freed, so the cache does not
    fragment the heap.  Windows run in a locality order
    (:func:`ecopatch.tiling.locality_order`) so that the tiles shared with
    the next row of windows are still here when it comes.
    """

    def __init__(self, budget_bytes: int | None) -> None:
        from collections import OrderedDict

        self.budget = budget_bytes
        self._tiles: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._free: dict[tuple, list[np.ndarray]] = {}
        self._bytes = 0  # in cached tiles
        self._spare = 0  # in recycled buffers waiting for a tile
        self._lock = threading.Lock()
        self.hits = 0
        self.decoded = 0

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()
            self._free.clear()
            self._bytes = self._spare = 0

    def read_into(self, ds: Any, tiles: tuple[tuple, tuple[int, int]], win: Window, out: np.ndarray) -> None:
        """Fill ``out`` (shape ``win.shape``) with ``win`` of the band, from cached or freshly decoded tiles."""
        key, (bh, bw) = tiles
        y0, y1, x0, x1 = win.row_off, win.row_end, win.col_off, win.col_end
        r0, r1 = y0 // bh, (y1 - 1) // bh
        c0, c1 = x0 // bw, (x1 - 1) // bw
        missing = []
        with self._lock:
            for tr in range(r0, r1 + 1):
                for tc in range(c0, c1 + 1):
                    tile = self._tiles.get((key, tr, tc))
                    if tile is None:
                        missing.append((tr, tc))
                        continue
                    self._tiles.move_to_end((key, tr, tc))
                    self.hits += 1
                    _copy_part(tile, tr * bh, tc * bw, out, y0, x0)
        if not missing:
            return
        mr0, mr1 = min(t[0] for t in missing), max(t[0] for t in missing)
        mc0, mc1 = min(t[1] for t in missing), max(t[1] for t in missing)
        ry, rx = mr0 * bh, mc0 * bw
        rect = Window(ry, rx, min((mr1 + 1) * bh, ds.height) - ry, min((mc1 + 1) * bw, ds.width) - rx)
        data = _ds_read(ds, key[-1], rect)
        want = set(missing)
        with self._lock:
            for tr in range(mr0, mr1 + 1):
                for tc in range(mc0, mc1 + 1):
                    ty, tx = tr * bh - ry, tc * bw - rx
                    part = data[ty:ty + bh, tx:tx + bw]
                    if (tr, tc) in want:
                        _copy_part(part, tr * bh, tc * bw, out, y0, x0)
                    # tiles deep inside a large read are not shared with a padded neighbour
                    ring = min(tr - r0, r1 - tr, tc - c0, c1 - tc)
                    if ring <= 1 and (key, tr, tc) not in self._tiles:
                        self._put((key, tr, tc), part)
                        self.decoded += 1

    def _put(self, k: tuple, part: np.ndarray) -> None:
        """Keep a copy of ``part``, evicting the least recently used tiles beyond the budget."""
        assert self.budget is not None
        size = (part.shape, part.dtype.str)
        if part.nbytes > self.budget:
            return
        while self._bytes + part.nbytes > self.budget and self._tiles:
            _, old = self._tiles.popitem(last=False)
            self._bytes -= old.nbytes
            self._spare += old.nbytes
            self._free.setdefault((old.shape, old.dtype.str), []).append(old)
        pool = self._free.get(size)
        if pool:
            buf = pool.pop()
            self._spare -= buf.nbytes
        else:
            buf = np.empty(part.shape, part.dtype)
            # spare buffers of other shapes (edge tiles, other data types) beyond the budget are freed
            for other in list(self._free):
                while self._free[other] and self._bytes + self._spare + buf.nbytes > self.budget:
                    self._spare -= self._free[other].pop().nbytes
        buf[...] = part
        self._tiles[k] = buf
        self._bytes += buf.nbytes


def _copy_part(tile: np.ndarray, ty: int, tx: int, out: np.ndarray, oy: int, ox: int) -> None:
    """Copy the overlap of ``tile`` (top-left pixel at row ``ty``, col ``tx``) into ``out`` (at ``oy``, ``ox``)."""
    a, b = max(ty, oy), min(ty + tile.shape[0], oy + out.shape[0])
    c, d = max(tx, ox), min(tx + tile.shape[1], ox + out.shape[1])
    if a < b and c < d:
        out[a - oy:b - oy, c - ox:d - ox] = tile[a - ty:b - ty, c - tx:d - tx]


def _tile_cache_budget() -> int:
    mb = env_int("ECOPATCH_TILE_CACHE_MB", minimum=0, unit="MB")
    return (TILE_CACHE_MB if mb is None else mb) * 1024 * 1024


_TILES = _TileCache(None)  # budget read from the environment at the first read


def _integer_ratio(fine: Grid, coarse: Grid) -> tuple[int, int, int, int] | None:
    """(ratio_x, ratio_y, col_shift, row_shift) if ``coarse`` pixels are whole blocks of ``fine``."""
    if fine.crs != coarse.crs:
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


def _read_resampled(
    path: str, index: int, src: Grid, dst: Grid, window: Window, *, categorical: bool
) -> np.ndarray:
    """Read band ``index`` of ``path`` (on grid ``src``) for ``window`` of grid ``dst``.

    Same grid: a plain window read.  ``src`` coarser by a whole factor and
    aligned (Sentinel-2 20 m bands on the 10 m grid): each coarse pixel is
    repeated, as Sen2Cor does.  Otherwise a reprojection (nearest for
    categorical bands, bilinear otherwise).
    """
    whole = _whole_pixels(path, index, src, dst, window, fill=0 if categorical else np.nan)
    if whole is None:
        return _reproject_band(path, index, src, dst, window, categorical=categorical)
    block, rows, cols = whole
    if rows is None or cols is None:
        return block
    return block[rows][:, cols]


def _whole_pixels(path: str, index: int, src: Grid, dst: Grid, window: Window, fill: float, pad: int = 0
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None:
    """The pixels of ``src`` under ``window`` of ``dst`` when each is a whole block of ``dst`` pixels.

    Returns ``(block, rows, cols)``: ``block`` covers the window plus ``pad``
    ``src`` pixels on every side, and ``window``'s pixel ``(i, j)`` is
    ``block[rows[i], cols[j]]`` (``rows`` and ``cols`` are None when the
    grids' pixels coincide and there is no pad: then ``block`` is the window
    itself).  None when ``src`` is not a whole-factor coarsening of ``dst``
    aligned with it.
    """
    ratio = _integer_ratio(dst, src)
    if ratio is None:
        return None
    rx, ry, dc, dr = ratio
    # dst pixel (r, c) lies in src pixel ((r + dr) // ry, (c + dc) // rx)
    r0 = math.floor((window.row_off + dr) / ry)
    c0 = math.floor((window.col_off + dc) / rx)
    r1 = math.floor((window.row_end - 1 + dr) / ry) + 1
    c1 = math.floor((window.col_end - 1 + dc) / rx) + 1
    block = _read_block(path, index, src, Window(r0 - pad, c0 - pad, r1 - r0 + 2 * pad, c1 - c0 + 2 * pad), fill=fill)
    if rx == 1 and ry == 1 and pad == 0:
        return block, None, None
    rows = (np.arange(window.row_off, window.row_end) + dr) // ry - (r0 - pad)
    cols = (np.arange(window.col_off, window.col_end) + dc) // rx - (c0 - pad)
    return block, rows, cols


def _source_window(src: Grid, dst: Grid, window: Window, pad: int = 2) -> Window | None:
    sub = dst.subgrid(window)
    if src.crs == dst.crs:
        bounds = sub.bounds
    else:
        bounds = sub.footprint_in(src.crs).bounds
    return src.window_from_bounds(bounds, pad=pad, clip=True)


def _reproject_array(
    arr: np.ndarray, src: Grid, dst: Grid, *, resampling: str, fill: float = np.nan
) -> np.ndarray:
    import rasterio.errors
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    out = np.full(dst.shape, fill, dtype=np.float32)
    with warnings.catch_warnings():
        # the arrays come with explicit transforms; rasterio still warns "no geotransform"
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
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


def _reproject_band(
    path: str, index: int, src: Grid, dst: Grid, window: Window, *, categorical: bool
) -> np.ndarray:
    sw = _source_window(src, dst, window)
    if sw is None:
        return np.full(window.shape, np.nan, dtype=np.float32)
    ds = _dataset(path)
    block = _read_block(path, index, src, sw, fill=np.nan).astype(np.float32)
    nod = ds.nodatavals[index - 1]
    if nod is not None and not categorical:
        block[block == nod] = np.nan
    res = "nearest" if categorical else ("bilinear" if src.res[0] >= dst.res[0] else "average")
    out = _reproject_array(block, src.subgrid(sw), dst.subgrid(window), resampling=res)
    if nod is not None and not categorical:
        out[np.isnan(out)] = nod
    return out


def _saturation(ref: BandRef) -> float | None:
    """The fill / saturation value of an integer band (its type's maximum), None for floats."""
    dt = np.dtype(ref.dtype)
    return float(np.iinfo(dt).max) if np.issubdtype(dt, np.integer) else None


def _read_reflectance(ref: BandRef, grid: Grid, window: Window, valid: np.ndarray) -> tuple[np.ndarray, int]:
    """Reflectance of ``ref`` for ``window`` of ``grid``: NaN where ``valid`` is False or the band has none.

    Clears ``valid`` (in place) where the band has no reflectance and
    returns how many pixels that cleared.  Bands whose pixels are whole
    blocks of ``grid``'s (the same grid, Sentinel-2's 20 m bands on the 10 m
    grid) go from the file's pixels to reflectance in one pass.
    """
    from .._kernels import reflectance_kernel

    whole = _whole_pixels(ref.path, ref.index, ref.grid, grid, window, fill=np.nan)
    if whole is not None:
        block, rows, cols = whole
        fused = reflectance_kernel(block, ref.scale, ref.offset, ref.nodata, _saturation(ref),
                                   VALID_REFLECTANCE, rows=rows, cols=cols, valid=valid)
        if fused is not None:
            return fused[0], fused[2]
        dn = block if rows is None or cols is None else block[rows][:, cols]
    else:
        dn = _read_resampled(ref.path, ref.index, ref.grid, grid, window, categorical=False)
    refl, ok = _to_reflectance(dn, ref)
    cleared = int(np.count_nonzero(valid & ~ok))
    valid &= ok
    refl[~valid] = np.nan
    return refl, cleared


def _to_reflectance(dn: np.ndarray, ref: BandRef) -> tuple[np.ndarray, np.ndarray]:
    """DN -> float32 reflectance and a validity mask."""
    from .._kernels import reflectance_kernel

    maxval = _saturation(ref)
    fused = reflectance_kernel(dn, ref.scale, ref.offset, ref.nodata, maxval, VALID_REFLECTANCE)
    if fused is not None:
        return fused[0], fused[1]
    ok = np.ones(dn.shape, dtype=bool)
    if np.issubdtype(dn.dtype, np.floating):
        ok &= np.isfinite(dn)
    if ref.nodata is not None and not (isinstance(ref.nodata, float) and math.isnan(ref.nodata)):
        ok &= dn != ref.nodata
    if np.issubdtype(np.dtype(ref.dtype), np.integer):
        ok &= dn != np.iinfo(np.dtype(ref.dtype)).max  # saturation / fill
    refl = dn.astype(np.float32) * np.float32(ref.scale) + np.float32(ref.offset)
    lo, hi = VALID_REFLECTANCE
    with np.errstate(invalid="ignore"):
        ok &= (refl >= lo) & (refl <= hi)
    refl[~ok] = np.nan
    return refl, ok


def _grow_clouds_at(raw: np.ndarray, kind: str, k: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``_grow_clouds(raw, kind, k)[rows][:, cols]``, in one pass where the kernel can (C order)."""
    from .._kernels import clear_kernel
    from ..sensors import SCL_UNUSABLE

    fused = clear_kernel(raw, kind, k, rows, cols, SCL_UNUSABLE)
    if fused is not None:
        return fused
    return np.ascontiguousarray(_grow_clouds(raw, kind, k)[rows][:, cols])


def _grow_clouds(raw: np.ndarray, kind: str, k: int) -> np.ndarray:
    """Clear pixels of a quality band, with cloud/shadow/cirrus grown by ``k`` pixels (not no data)."""
    clear = _mask_clear(raw, kind)
    if k <= 0:
        return clear
    from scipy.ndimage import binary_dilation

    nodata = np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=0) == 0
    cloudy = ~clear & ~nodata
    yy, xx = np.mgrid[-k:k + 1, -k:k + 1]
    disk = (yy * yy + xx * xx) <= k * k
    return clear & ~binary_dilation(cloudy, structure=disk)


def _mask_clear(raw: np.ndarray, kind: str) -> np.ndarray:
    raw = np.nan_to_num(np.asarray(raw), nan=0)
    if kind == "scl":
        return scl_clear(raw.astype(np.int64))
    if kind == "qa_pixel":
        return landsat_qa_clear(raw.astype(np.int64))
    if kind == "alpha":
        return raw > 0
    if kind == "cloud01":
        return raw == 0
    raise ConfigError(f"unknown mask kind {kind!r}")  # pragma: no cover


# ---------------------------------------------------------------------------
# Reading onto another grid
# ---------------------------------------------------------------------------
Derive = Callable[[Observation], Mapping[str, np.ndarray]]


def _same_pixels(a: Grid, b: Grid) -> tuple[int, int] | None:
    """Row/col offset of grid ``b``'s origin in ``a``'s pixels when their pixels coincide."""
    r = _integer_ratio(a, b)
    if r is None or r[0] != 1 or r[1] != 1:
        return None
    return r[3], r[2]


def read_on_grid(
    scene: Scene,
    grid: Grid,
    window: Window | None = None,
    *,
    bands: Sequence[str] | None = None,
    derive: Derive | None = None,
    min_valid: float = 0.5,
    max_source_px: int = 4_000_000,
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
    window = window or grid.window
    derive = derive or _bands_as_layers
    offset = _same_pixels(scene.grid, grid)
    if offset is not None:
        dr, dc = offset
        sw = Window(window.row_off + dr, window.col_off + dc, window.height, window.width)
        obs = scene.read(bands, sw)
        layers = {k: np.asarray(v, dtype=np.float32) for k, v in derive(obs).items()}
        layers["valid_fraction"] = obs.valid.astype(np.float32)
        return layers

    sw = _source_window(scene.grid, grid, window)
    if sw is None:
        return _empty_layers(scene, derive, bands, window.shape)
    if sw.height * sw.width > max_source_px and (window.height > 1 or window.width > 1):
        return _split_read(scene, grid, window, bands, derive, min_valid, max_source_px)

    obs = scene.read(bands, sw)
    layers = derive(obs)
    src = scene.grid.subgrid(sw)
    dst = grid.subgrid(window)
    finer = scene.grid.res[0] * _unit_m(scene.grid) < grid.res[0] * _unit_m(grid)
    res = "average" if finer else "bilinear"
    out: dict[str, np.ndarray] = {}
    vf = _reproject_array(obs.valid.astype(np.float32), src, dst, resampling=res)
    vf = np.nan_to_num(vf, nan=0.0)
    bad = vf < min_valid
    for k, v in layers.items():
        r = _reproject_array(np.asarray(v, dtype=np.float32), src, dst, resampling=res)
        r[bad] = np.nan
        out[k] = r
    out["valid_fraction"] = vf
    return out


def _unit_m(grid: Grid) -> float:
    if grid.is_geographic:
        return 111_320.0 * math.cos(math.radians((grid.bounds[1] + grid.bounds[3]) / 2))
    info = grid.crs.axis_info
    return info[0].unit_conversion_factor if info else 1.0


def _bands_as_layers(obs: Observation) -> Mapping[str, np.ndarray]:
    return obs.bands


def _empty_layers(scene, derive, bands, shape):  # type: ignore[no-untyped-def]
    tiny = scene.read(bands, Window(0, 0, 1, 1))
    names = list(derive(tiny).keys())
    out = {k: np.full(shape, np.nan, dtype=np.float32) for k in names}
    out["valid_fraction"] = np.zeros(shape, dtype=np.float32)
    return out


def _split_read(scene, grid, window, bands, derive, min_valid, max_source_px):  # type: ignore[no-untyped-def]
    h2, w2 = max(1, window.height // 2), max(1, window.width // 2)
    parts = []
    for r0, rh in ((window.row_off, h2), (window.row_off + h2, window.height - h2)):
        for c0, cw in ((window.col_off, w2), (window.col_off + w2, window.width - w2)):
            if rh > 0 and cw > 0:
                parts.append(Window(r0, c0, rh, cw))
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


def read_decimated(
    scene: Scene,
    *,
    aoi_bounds: tuple[float, float, float, float] | None = None,
    aoi_crs: Any = None,
    margin_m: float = 0.0,
    max_pixels: int = 1_000_000,
    bands: Sequence[str] | None = None,
) -> Observation:
    """A decimated read of a scene (or of an area of interest), for statistics and quick-looks.

    Reads every k-th pixel (nearest, from the file's overviews where it has
    them) so that at most ``max_pixels`` are returned: cheap even for a full
    tile or a multi-GB drone mosaic.

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

    Returns
    -------
    Observation
        On a coarser grid covering the same ground.
    """
    from shapely.geometry import box

    g = scene.grid
    if aoi_bounds is not None:
        poly = box(*aoi_bounds)
        crs = aoi_crs if aoi_crs is not None else g.crs
        from ..geodesy import as_crs, transformer

        if as_crs(crs) != g.crs:
            import shapely

            tr = transformer(crs, g.crs)
            poly = shapely.transform(shapely.segmentize(poly, (aoi_bounds[2] - aoi_bounds[0]) / 20 or 1),
                                     lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
        pad = int(math.ceil(margin_m / (g.res[0] * _unit_m(g))))
        win = g.window_from_bounds(poly.bounds, pad=pad, clip=True)
        if win is None:
            from ..errors import NoOverlapError

            raise NoOverlapError(
                f"{scene.source}: the area of interest {tuple(round(float(v), 6) for v in aoi_bounds)} "
                "does not overlap the scene"
            )
    else:
        win = g.window
    k = max(1, math.ceil(math.sqrt(win.height * win.width / max_pixels)))
    shape = (max(1, math.ceil(win.height / k)), max(1, math.ceil(win.width / k)))
    sub = g.subgrid(win)
    a = sub.transform
    from affine import Affine

    dgrid = Grid(shape, Affine(a.a * win.width / shape[1], 0, a.c, 0, a.e * win.height / shape[0], a.f), g.crs)
    names = list(bands) if bands is not None else list(scene.bands)
    out: dict[str, np.ndarray] = {}
    valid = np.ones(shape, dtype=bool)
    for n in names:
        ref = scene.band(n)
        dn = _read_bounds(ref.path, ref.index, ref.grid, dgrid.bounds, shape)
        refl, ok = _to_reflectance(dn, ref)
        out[n] = refl
        valid &= ok
    if scene.mask is not None:
        m = scene.mask
        raw = _read_bounds(m.path, m.index, m.grid, dgrid.bounds, shape)
        valid &= _grow_clouds(raw, m.kind, scene._buffer_px(dgrid.res[0] * _unit_m(dgrid)))
    valid &= ~scene._collar(out)
    for n in names:
        out[n][~valid] = np.nan
    return Observation(out, valid, dgrid)


def read_sample(scene: Scene, *, max_pixels: int = 1_000_000, bands: Sequence[str] | None = None) -> Observation:
    """A spatially even sample of a whole scene, for scene statistics, in bounded time and memory.

    With overviews (as Sentinel-2 JP2 and most COGs have) this is a
    decimated read of the whole scene.  Without them a decimated read would
    still decode nearly every block of the file, so instead up to
    ``max_pixels`` are read as 256 × 256 windows on an even lattice across the
    scene: cheap whatever the raster's size.

    Returns
    -------
    Observation
        Bands and validity as arrays (2-D for a decimated read; 1-D, the
        windows concatenated, otherwise).
    """
    names = list(bands) if bands is not None else list(scene.bands)
    ds = _dataset(scene.band(names[0]).path)
    g = scene.grid
    if ds.overviews(1) or g.height * g.width <= 4 * max_pixels:
        return read_decimated(scene, max_pixels=max_pixels, bands=names)
    size = 256
    n = max(1, max_pixels // (size * size))
    k = max(1, int(math.sqrt(n)))
    rows = np.linspace(0, max(0, g.height - size), k).astype(int)
    cols = np.linspace(0, max(0, g.width - size), k).astype(int)
    parts = [scene.read(names, Window(int(r), int(c), min(size, g.height), min(size, g.width)))
             for r in rows for c in cols]
    out = {b: np.concatenate([p.bands[b].ravel() for p in parts]) for b in names}
    valid = np.concatenate([p.valid.ravel() for p in parts])
    return Observation(out, valid, g)


def _read_bounds(path: str, index: int, grid: Grid, bounds: tuple[float, float, float, float],
                 shape: tuple[int, int]) -> np.ndarray:
    from rasterio.enums import Resampling

    ds = _dataset(path)
    win = grid.window_from_bounds(bounds, clip=True)
    if win is None:
        return np.zeros(shape, dtype=ds.dtypes[index - 1])
    try:
        return ds.read(index, window=win.to_rasterio(), out_shape=shape, resampling=Resampling.nearest)
    except Exception as exc:
        raise RasterReadError(
            f"{path}: decimated read of band {index} failed ({_short(exc)}); the file is probably "
            "truncated or corrupt: re-download or re-export it"
        ) from exc


# ---------------------------------------------------------------------------
# Opening products
# ---------------------------------------------------------------------------
def _grid_of(path: str) -> tuple[Grid, Any]:
    ds = _dataset(path)
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


_DATE_PATTERNS = (
    re.compile(r"(?<!\d)(20\d{2}|19\d{2})(\d{2})(\d{2})T\d{6}"),
    re.compile(r"(?<!\d)(20\d{2}|19\d{2})-(\d{2})-(\d{2})(?!\d)"),
    re.compile(r"(?<!\d)(20\d{2}|19\d{2})(\d{2})(\d{2})(?!\d)"),
)


def _date_from_text(text: str) -> _dt.date | None:
    for pat in _DATE_PATTERNS:
        for m in pat.finditer(text):
            try:
                return _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                continue
    return None


def _parse_date(value: Any, what: str) -> _dt.date:
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    d = _date_from_text(str(value))
    if d is None:
        raise ConfigError(f"{what}: cannot read {value!r} as a date; use YYYY-MM-DD")
    return d


_BAND_TOKEN = re.compile(
    r"(?:^|[_\-.\s])(SR_B\d+|B\d{1,2}A?|SCL|QA_PIXEL|blue|green|red|nir|swir1|swir2|rededge\d?)"
    r"(?=$|[_\-.\s])",
    re.IGNORECASE,
)
_RES_TOKEN = re.compile(r"_(\d+)m(?=$|[_.])")


def _band_id_from_name(stem: str) -> str | None:
    hits = _BAND_TOKEN.findall(stem)
    if not hits:
        return None
    tok = hits[-1].upper()
    if re.fullmatch(r"B\d", tok):
        tok = f"B0{tok[1]}"
    return tok


def _common_from_id(sensor: SensorProfile, band_id: str) -> str | None:
    c = sensor.common_name(band_id)
    if c is None and band_id.lower() in COMMON_BANDS:
        return band_id.lower()
    if c is None and re.fullmatch(r"B0\d", band_id):
        c = sensor.common_name(band_id.replace("B0", "B"))
    return c


@dataclass
class _Found:
    files: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # band id -> [(path, res)]
    metadata: dict[str, Any] = field(default_factory=dict)
    date: _dt.date | None = None
    sensor: str | None = None
    offsets: dict[str, float] = field(default_factory=dict)  # band id -> additive DN offset
    scales: dict[str, float] = field(default_factory=dict)  # band id -> reflectance per DN
    add: dict[str, float] = field(default_factory=dict)  # band id -> reflectance offset


def _scan_folder(folder: Path) -> _Found:
    found = _Found()
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES and "QI_DATA" not in p.parts
    )
    for p in files:
        bid = _band_id_from_name(p.stem)
        if bid is None:
            continue
        m = _RES_TOKEN.search(p.stem)
        res = float(m.group(1)) if m else math.nan
        found.files.setdefault(bid, []).append((str(p), res))
    # product metadata
    for mtd in list(folder.glob("MTD_MSIL2A.xml")) + list(folder.glob("MTD_MSIL1C.xml")):
        _parse_s2_mtd(mtd, found)
    for mtl in folder.glob("*_MTL.txt"):
        _parse_landsat_mtl(mtl, found)
    for item in folder.glob("*.json"):
        try:
            _parse_stac_item(item, found, base=folder)
        except (ValueError, KeyError, json.JSONDecodeError):
            continue
    if found.date is None:
        found.date = _date_from_text(folder.name)
    if found.date is None:  # e.g. OSCD: imgs_1/S2A_..._20161209_B02.tif
        dates = {d for d in (_date_from_text(Path(p).name) for lst in found.files.values() for p, _ in lst) if d}
        if len(dates) == 1:
            found.date = dates.pop()
    return found


def _parse_s2_mtd(path: Path, found: _Found) -> None:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InputDataError(f"{path}: product metadata is not valid XML ({exc})") from exc
    level = "L2A" if "L2A" in path.name else "L1C"
    found.sensor = "sentinel2_l2a" if level == "L2A" else "sentinel2_l1c"
    band_ids = {}
    for el in root.iter():
        tag = el.tag.split("}")[-1]
        if tag == "PRODUCT_START_TIME" and el.text:
            found.date = _date_from_text(el.text.replace("-", "")[:8]) or _date_from_text(el.text)
        elif tag == "PROCESSING_BASELINE" and el.text:
            found.metadata["processing_baseline"] = el.text.strip()
        elif tag in ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE") and el.text:
            found.metadata["quantification"] = float(el.text)
        elif tag in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET") and el.text:
            found.offsets[el.attrib.get("band_id", "")] = float(el.text)
        elif tag == "Spectral_Information" and "bandId" in el.attrib:
            band_ids[el.attrib["bandId"]] = el.attrib.get("physicalBand", "")
    # offsets are given per numeric band id (0 = B01, ...); map to names
    named = {}
    for k, v in found.offsets.items():
        name = band_ids.get(k) or _S2_BAND_ORDER.get(k)
        if name:
            named[_norm_s2(name)] = v
    found.offsets = named


_S2_BAND_ORDER = {str(i): b for i, b in enumerate(
    ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"])}


def _norm_s2(name: str) -> str:
    name = name.strip().upper()
    m = re.fullmatch(r"B(\d)", name)
    return f"B0{m.group(1)}" if m else name


def _parse_landsat_mtl(path: Path, found: _Found) -> None:
    text = path.read_text(errors="replace")
    found.sensor = "landsat_c2l2" if "LEVEL2" in text or "_L2S" in path.name else found.sensor
    m = re.search(r'DATE_ACQUIRED\s*=\s*"?(\d{4}-\d{2}-\d{2})', text)
    if m:
        found.date = _date_from_text(m.group(1))
    grp = re.search(
        r"GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS(.*?)END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS",
        text, re.S,
    )
    if grp:
        for b, v in re.findall(r"REFLECTANCE_MULT_BAND_(\d+)\s*=\s*([-\d.Ee+]+)", grp.group(1)):
            found.scales[f"SR_B{b}"] = float(v)
        for b, v in re.findall(r"REFLECTANCE_ADD_BAND_(\d+)\s*=\s*([-\d.Ee+]+)", grp.group(1)):
            found.add[f"SR_B{b}"] = float(v)
    found.metadata["product"] = path.name.replace("_MTL.txt", "")


def _parse_stac_item(path: Path, found: _Found, base: Path) -> None:
    item = json.loads(path.read_text())
    if item.get("type") != "Feature" or "assets" not in item:
        raise ValueError("not a STAC item")
    props = item.get("properties", {})
    if props.get("datetime"):
        found.date = _date_from_text(props["datetime"][:10])
    platform = str(props.get("platform", "")).lower()
    pid = str(item.get("id", ""))
    if "sentinel-2" in platform or pid.startswith("S2"):
        found.sensor = "sentinel2_l1c" if "L1C" in pid else "sentinel2_l2a"
    elif "landsat" in platform:
        found.sensor = "landsat_c2l2"
    if "s2:processing_baseline" in props:
        found.metadata["processing_baseline"] = str(props["s2:processing_baseline"])
    for key, asset in item["assets"].items():
        href = str(asset.get("href", ""))
        if href.startswith(("http://", "https://", "s3://")):
            local = base / Path(href).name
            if not local.exists():
                continue
            href = str(local)
        elif not os.path.isabs(href):
            href = str((path.parent / href).resolve())
        if not Path(href).exists() or Path(href).suffix.lower() not in RASTER_SUFFIXES:
            continue
        bid = _band_id_from_name(Path(key).stem) or _band_id_from_name(Path(href).stem)
        if bid is None:
            for b in asset.get("eo:bands", []) or []:
                if b.get("common_name"):
                    bid = b["common_name"]
        if bid is None:
            continue
        res = asset.get("gsd") or math.nan
        lst = found.files.setdefault(bid, [])
        if all(p != href for p, _ in lst):
            lst.append((href, float(res)))
        if "raster:bands" in asset:
            rb = asset["raster:bands"][0]
            if "offset" in rb and rb.get("scale"):
                found.add[bid] = float(rb["offset"])
                found.scales[bid] = float(rb["scale"])


def _baseline_offset(found: _Found) -> bool:
    pb = found.metadata.get("processing_baseline")
    try:
        return float(str(pb)) >= S2_OFFSET_BASELINE
    except (TypeError, ValueError):
        return False


def open_scene(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    sensor: str | SensorProfile | None = None,
    bands: Mapping[str, int | str] | None = None,
    date: str | _dt.date | None = None,
    *,
    scale: float | None = None,
    offset: float | None = None,
    nodata: float | None = None,
    cloud_buffer_m: float | None = None,
    haze: str = "auto",
) -> Scene:
    """Open imagery of one date as a lazily read :class:`Scene`.

    Parameters
    ----------
    source : path or sequence of paths
        A Sentinel-2 ``.SAFE`` folder (or its ``IMG_DATA``), a STAC item
        ``.json`` with local assets, a Landsat Collection 2 folder (with its
        ``_MTL.txt``), a folder of single-band files (band IDs in the file
        names, e.g. ``..._B04_10m.tif``, ``SR_B4.TIF``, ``SCL.tif``), a list
        of such files, or one multi-band GeoTIFF (Gaofen, a drone mosaic, a
        stacked Sentinel-2 export).
    sensor : str or SensorProfile, optional
        Product type (see :data:`ecopatch.sensors.SENSORS`); guessed from the
        product's metadata, band names or data type when not given.
    bands : mapping, optional
        Explicit band naming: common name -> band number (1-based) in a
        multi-band file, or -> product band ID (``{"nir": "B8A"}``).
    date : str or date, optional
        Acquisition date, overriding what the metadata or file name says.
    scale, offset : float, optional
        Override ``reflectance = DN × scale + offset`` for every band.
    nodata : float, optional
        Override the DN meaning no data.
    cloud_buffer_m : float, optional
        Grow the product's cloud/shadow/cirrus mask by this ground distance
        (m).  Default 20 m (one SCL pixel) for Sentinel-2 SCL and Landsat
        QA_PIXEL, whose masks miss the thin fringes of clouds; 0 turns it off.

    Returns
    -------
    Scene

    Raises
    ------
    RasterReadError
        The path does not exist or is not a readable raster.
    MissingCRSError, InputDataError
        No CRS, no or a rotated geotransform, no recognisable band.

    Notes
    -----
    Sentinel-2 products from processing baseline 04.00 (25 January 2022) on
    carry ``BOA_ADD_OFFSET = -1000``: reflectance = (DN - 1000) / 10000.  The
    offset is taken from ``MTD_MSIL2A.xml``, the STAC item, or the GeoTIFF's
    ``BOA_ADD_OFFSET*`` tags; a product whose baseline is unknown gets no
    offset, with a warning when its date is after the change.
    """
    prof = get_sensor(sensor) if sensor is not None else None
    if isinstance(source, (list, tuple)):
        paths = [Path(p) for p in source]
        for p in paths:
            _check_exists(p)
        found = _Found()
        for p in paths:
            bid = _band_id_from_name(p.stem)
            if bid is None:
                raise InputDataError(
                    f"{p}: cannot tell which band this file is from its name; name files "
                    "like 'B04.tif' or pass one multi-band file with bands={...}"
                )
            found.files.setdefault(bid, []).append((str(p), math.nan))
        found.date = _date_from_text(" ".join(p.name for p in paths))
        scene = _scene_from_found(found, prof, bands, str(source[0]) if source else "", scale, offset, nodata)
    else:
        path = Path(source)
        _check_exists(path)
        if path.is_dir():
            found = _scan_folder(path)
            if not found.files:
                raise InputDataError(
                    f"{path}: no raster band files found (looked for *.tif/*.jp2 whose names "
                    "contain a band ID such as B04, SR_B4, SCL); point to a SAFE folder, a "
                    "Landsat folder, or a multi-band file"
                )
            scene = _scene_from_found(found, prof, bands, str(path), scale, offset, nodata)
        elif path.suffix.lower() == ".json":
            found = _Found()
            try:
                _parse_stac_item(path, found, base=path.parent)
            except (ValueError, KeyError, json.JSONDecodeError) as exc:
                raise InputDataError(f"{path}: not a STAC item with local assets ({exc})") from exc
            if not found.files:
                raise InputDataError(f"{path}: the STAC item has no local raster assets")
            scene = _scene_from_found(found, prof, bands, str(path), scale, offset, nodata)
        else:
            scene = _scene_from_file(path, prof, bands, scale, offset, nodata)
    if date is not None:
        scene = scene.with_date(_parse_date(date, f"{source}: date"))
    if cloud_buffer_m is None:
        cloud_buffer_m = 20.0 if scene.mask is not None and scene.mask.kind in ("scl", "qa_pixel") else 0.0
    if cloud_buffer_m < 0:
        raise ConfigError(f"cloud_buffer_m={cloud_buffer_m}: must be >= 0")
    scene = replace(scene, cloud_buffer_m=float(cloud_buffer_m))
    if (
        scene.sensor.name.startswith("sentinel2")
        and scene.date is not None
        and scene.date >= _dt.date(2022, 1, 25)
        and "processing_baseline" not in scene.metadata
        and offset is None
        and all(ref.offset == 0 for _, ref in scene.band_refs)
    ):
        warnings.warn(
            f"{source}: Sentinel-2 scene dated {scene.date} without a processing baseline; "
            "products from baseline 04.00 (25 Jan 2022) on need offset=-0.1 "
            "(BOA_ADD_OFFSET -1000). No offset applied: pass offset=-0.1 if DNs carry it.",
            EcopatchWarning,
            stacklevel=2,
        )
    if haze not in ("auto", "dos", "none"):
        raise ConfigError(f"haze={haze!r}; use 'auto', 'dos' or 'none'")
    if haze == "dos" or (haze == "auto" and scene.sensor.name == "sentinel2_l1c"):
        scene = _dark_object_subtraction(scene)
    log.info("opened %r", scene)
    return scene


#: Reflectance assumed for the darkest objects of a scene (deep water, shade) after haze removal.
DARK_OBJECT_REFLECTANCE = 0.01


def _dark_object_subtraction(scene: Scene) -> Scene:
    """Subtract each band's haze (0.1st percentile above 1 % reflectance) through the band offsets."""
    obs = read_sample(scene, max_pixels=500_000)
    refs = []
    haze = {}
    for name, ref in scene.band_refs:
        v = np.asarray(obs.bands[name], dtype=np.float64)
        v = v[np.isfinite(v)]
        h = max(0.0, float(np.percentile(v, 0.1)) - DARK_OBJECT_REFLECTANCE) if v.size else 0.0
        haze[name] = round(h, 5)
        refs.append((name, replace(ref, offset=ref.offset - h)))
    meta = dict(scene.metadata)
    meta["haze_removed"] = haze
    log.info("%s: dark-object subtraction %s", scene.source, haze)
    return replace(scene, band_refs=tuple(refs), metadata=meta)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise RasterReadError(f"{path}: no such file or folder")


def _scene_from_found(
    found: _Found,
    prof: SensorProfile | None,
    bands: Mapping[str, int | str] | None,
    source: str,
    scale: float | None,
    offset: float | None,
    nodata: float | None,
) -> Scene:
    if prof is None:
        if found.sensor:
            prof = get_sensor(found.sensor)
        elif any(b.startswith("SR_B") for b in found.files) or "QA_PIXEL" in found.files:
            prof = get_sensor("landsat_c2l2")
        elif any(re.fullmatch(r"B\d\d|B8A", b) for b in found.files):
            prof = get_sensor("sentinel2_l1c" if "L1C" in source.upper() else "sentinel2_l2a")
        else:
            raise InputDataError(
                f"{source}: cannot tell which sensor made these files ({sorted(found.files)}); "
                "pass sensor= (e.g. 'sentinel2_l2a', 'landsat_c2l2')"
            )
    want: dict[str, str] = {}
    if bands:
        for common, bid in bands.items():
            want[common] = str(bid).upper() if not isinstance(bid, int) else str(bid)
    else:
        for bid in found.files:
            c = _common_from_id(prof, bid)
            if c is not None and c not in want:
                want[c] = bid
    refs: list[tuple[str, BandRef]] = []
    apply_offset = _baseline_offset(found)
    for common in COMMON_BANDS:
        if common not in want:
            continue
        bid = want[common]
        cand = found.files.get(bid) or found.files.get(_norm_s2(bid))
        if not cand:
            raise MissingBandError(
                f"{source}: band {bid!r} (for {common!r}) not found; it has {sorted(found.files)}"
            )
        path, _ = _finest(cand)
        g, ds = _grid_of(path)
        dn_off = found.offsets.get(bid, -1000.0 if apply_offset and prof.name.startswith("sentinel2") else 0.0)
        if not apply_offset and prof.name.startswith("sentinel2"):
            dn_off = 0.0
        sc = found.scales.get(bid, prof.scale)
        q = found.metadata.get("quantification")
        if q and prof.name.startswith("sentinel2"):
            sc = 1.0 / float(q)
        off = found.add.get(bid, prof.offset + dn_off * sc)
        refs.append((common, BandRef(
            path=path, index=1, grid=g,
            scale=float(scale if scale is not None else sc),
            offset=float(offset if offset is not None else off),
            nodata=nodata if nodata is not None else (ds.nodata if ds.nodata is not None else prof.nodata),
            dtype=ds.dtypes[0], band_id=bid,
        )))
    if not refs:
        raise MissingBandError(
            f"{source}: none of the files is a band of {prof.name} ({sorted(found.files)}); "
            "pass bands={'red': 'B04', ...}"
        )
    grid = min((r.grid for _, r in refs), key=lambda g: g.res[0] * g.res[1])
    mask = None
    if prof.mask_band and prof.mask_band in found.files:
        mpath, _ = _finest(found.files[prof.mask_band])
        mg, _ = _grid_of(mpath)
        mask = MaskRef(mpath, 1, mg, prof.mask)
    meta = dict(found.metadata)
    meta["band_offsets_dn"] = {k: v for k, v in found.offsets.items()}
    return Scene(prof, tuple(refs), grid, found.date, mask, source, meta)


def _finest(cands: list[tuple[str, float]]) -> tuple[str, float]:
    def key(c: tuple[str, float]) -> float:
        return c[1] if not math.isnan(c[1]) else 1e9

    return sorted(cands, key=key)[0]


def _scene_from_file(
    path: Path,
    prof: SensorProfile | None,
    bands: Mapping[str, int | str] | None,
    scale: float | None,
    offset: float | None,
    nodata: float | None,
) -> Scene:
    spath = str(path)
    grid, ds = _grid_of(spath)
    tags = {k.upper(): v for k, v in ds.tags().items()}
    descriptions = [d or "" for d in ds.descriptions]
    colorinterp = [ci.name for ci in ds.colorinterp]
    count = ds.count
    dtype = ds.dtypes[0]

    if prof is None:
        try:
            prof = _guess_sensor(spath, tags, descriptions, count, dtype)
        except InputDataError:
            if not bands:
                raise
            if scale is None and not np.issubdtype(np.dtype(dtype), np.floating):
                raise InputDataError(
                    f"{path}: bands= says which band is which, but not how these {dtype} values become "
                    "reflectance: pass sensor= (e.g. 'gf1_wfv' for reflectance × 10000), or scale= and "
                    "offset= (e.g. scale=1/255 for 8-bit DN)"
                ) from None
            prof = SensorProfile(
                "generic", "bands described by the user", {k: str(v) for k, v in bands.items()},
                scale=float(scale) if scale is not None else 1.0, offset=float(offset or 0.0),
            )

    # band numbers for each common name
    mapping: dict[str, int] = {}
    mask: MaskRef | None = None
    if bands:
        for common, b in bands.items():
            if common not in COMMON_BANDS:
                raise ConfigError(
                    f"bands=: {common!r} is not a band name ecopatch knows; use {list(COMMON_BANDS)}"
                )
            if isinstance(b, int) or (isinstance(b, str) and b.isdigit()):
                idx = int(b)
            else:
                idx = _index_by_description(descriptions, str(b))
                if idx is None:
                    raise MissingBandError(f"{path}: no band described as {b!r} (descriptions: {descriptions})")
            if not 1 <= idx <= count:
                raise MissingBandError(
                    f"{path}: bands={{{common!r}: {idx}}} but the file has {count} band(s)"
                )
            mapping[common] = idx
    else:
        for i, desc in enumerate(descriptions, start=1):
            c = _common_from_id(prof, desc) if desc else None
            if c and c not in mapping:
                mapping[c] = i
            elif desc.upper() == "SCL" and prof.mask == "scl":
                mask = MaskRef(spath, i, grid, "scl")
            elif desc.upper() == "QA_PIXEL" and prof.mask == "qa_pixel":
                mask = MaskRef(spath, i, grid, "qa_pixel")
        if not mapping:
            order = prof.order
            n = min(count, len(order))
            if count < len(order) and not (prof.name == "drone_rgb" and count >= 3):
                raise MissingBandError(
                    f"{path}: {count} band(s) without descriptions, but {prof.name} has "
                    f"{len(order)} ({list(order)}); name them with bands={{'red': 3, 'nir': 4}}"
                )
            for i in range(n):
                mapping[order[i]] = i + 1
    for i, ci in enumerate(colorinterp, start=1):
        if ci == "alpha" and i not in mapping.values():
            mask = MaskRef(spath, i, grid, "alpha")

    # scale and offset
    pb = tags.get("PROCESSING_BASELINE")
    meta: dict[str, Any] = {"tags": dict(ds.tags())}
    if pb:
        meta["processing_baseline"] = pb
    found_date = None
    for key in ("ACQUISITION_DATE", "DATE_ACQUIRED", "SENSING_TIME", "PRODUCT_START_TIME", "DATETIME",
                "TIFFTAG_DATETIME"):
        if key in tags:
            found_date = _date_from_text(tags[key].replace(":", "-", 2)) or _date_from_text(tags[key])
            if found_date:
                break
    if found_date is None:
        found_date = _date_from_text(path.name)

    refs = []
    for common in COMMON_BANDS:
        if common not in mapping:
            continue
        i = mapping[common]
        bid = descriptions[i - 1] or str(i)
        sc, off = prof.scale, prof.offset
        if prof.name.startswith("sentinel2"):
            dn_off = tags.get(f"BOA_ADD_OFFSET_{_norm_s2(bid)}") or tags.get("BOA_ADD_OFFSET") \
                or tags.get("RADIO_ADD_OFFSET")
            if dn_off is not None:
                off = float(dn_off) * sc
            elif pb is not None:
                try:
                    off = -1000 * sc if float(pb) >= S2_OFFSET_BASELINE else 0.0
                except ValueError:
                    pass
        if dtype in ("float32", "float64") and prof.name not in ("drone_ms",) and scale is None:
            # float files are reflectance already, unless the values say otherwise
            sc, off = _float_scale(ds, i, prof)
        nd = ds.nodatavals[i - 1]
        refs.append((common, BandRef(
            path=spath, index=i, grid=grid,
            scale=float(scale if scale is not None else sc),
            offset=float(offset if offset is not None else off),
            nodata=nodata if nodata is not None else (nd if nd is not None else prof.nodata),
            dtype=ds.dtypes[i - 1], band_id=bid,
        )))
    if not refs:
        raise MissingBandError(f"{path}: no usable band found; pass bands={{'red': 3, 'nir': 4}}")
    return Scene(prof, tuple(refs), grid, found_date, mask, spath, meta)


def _float_scale(ds: Any, index: int, prof: SensorProfile) -> tuple[float, float]:
    """Float bands: reflectance as is, unless a sample shows ×10000 values."""
    try:
        sample = ds.read(index, out_shape=(min(ds.height, 64), min(ds.width, 64)))
    except Exception:  # noqa: BLE001 - sampling is advisory only
        return 1.0, 0.0
    finite = sample[np.isfinite(sample)]
    if finite.size and np.nanpercentile(finite, 50) > 5:
        return prof.scale if prof.scale != 1 else 1e-4, 0.0
    return 1.0, 0.0


def _index_by_description(descriptions: list[str], name: str) -> int | None:
    for i, d in enumerate(descriptions, start=1):
        if d.strip().upper() == name.strip().upper():
            return i
    return None


def _guess_sensor(path: str, tags: Mapping[str, str], descriptions: list[str], count: int,
                  dtype: str) -> SensorProfile:
    upper = [d.upper() for d in descriptions]
    name = Path(path).name.upper()
    if any(re.fullmatch(r"B0?\d|B8A|B1[0-2]", d) for d in upper) or "SPACECRAFT_NAME" in tags:
        if "L1C" in name or tags.get("PROCESSING_LEVEL", "").upper().endswith("1C"):
            return get_sensor("sentinel2_l1c")
        return get_sensor("sentinel2_l2a")
    if any(d.startswith("SR_B") for d in upper):
        return get_sensor("landsat_c2l2")
    if "GF1" in name and "WFV" in name:
        return get_sensor("gf1_wfv")
    if "GF6" in name and "WFV" in name:
        return get_sensor("gf6_wfv")
    if "GF2" in name:
        return get_sensor("gf2_pms")
    if dtype == "uint8" and count in (3, 4):
        return get_sensor("drone_rgb")
    if set(upper) >= {"RED", "NIR"} or set(d.lower() for d in descriptions) >= {"red", "nir"}:
        return get_sensor("drone_ms")
    raise InputDataError(
        f"{path}: cannot tell which sensor made this {count}-band {dtype} file; pass sensor= "
        "(e.g. 'gf1_wfv', 'sentinel2_l2a', 'drone_rgb') or name its bands with "
        "bands={'red': 3, 'nir': 4}"
    )
