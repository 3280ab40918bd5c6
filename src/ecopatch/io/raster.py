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
own cloud band (Sentinel-2 SCL, Landsat QA_PIXEL, HLS Fmask, a drone mosaic's
alpha) or by a mask plugged in with :meth:`Scene.with_mask`.

How each product is recognised (Sentinel-2 L1C/L2A, Landsat TM/ETM+/OLI
Collection 2 Level-1 and Level-2, HLS, Gaofen WFV/PMS packages, NAIP, drone
mosaics) lives in :mod:`ecopatch.io.products`, :mod:`ecopatch.io.landsat` and
:mod:`ecopatch.io.gaofen`; what was decided travels with the scene as a
:class:`ProductInfo` and shows in its ``repr`` and :meth:`Scene.provenance`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ecopatch.errors import InputDataError, MissingBandError, MissingCRSError, RasterReadError
from ecopatch.grid import Grid, Window
from ecopatch.io import _blocks
from ecopatch.raster.masks import MASK_KINDS, grow_clouds_at
from ecopatch.raster.ongrid import ground_unit_m, integer_ratio, reproject_array, source_window
from ecopatch.raster.quiet import ignoring, short
from ecopatch.raster.radiometry import to_reflectance
from ecopatch.raster.source import (
    VALID_REFLECTANCE,
    MaskProvider,
    Observation,
    ProductInfo,
    RasterSource,
    SourceBase,
)
from ecopatch.sensors import SensorProfile, get_sensor

if TYPE_CHECKING:
    from ecopatch.io.products import Calibration

__all__ = [
    "BandRef",
    "MaskRef",
    "Scene",
    "FileValues",
    "file_layout",
    "open_scene",
    "plan_file_reads",
]

log = logging.getLogger(__name__)

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
    """A scene's cloud/quality mask.

    ``kind`` is "scl" (Sentinel-2 L2A), "qa_pixel" (Landsat Collection 2),
    "fmask" (HLS), "alpha" (an alpha band), "cloud01" (a user's raster, 1 =
    cloud, 0 = clear) or "computed" (``provider`` computes it; ``path`` then
    names the provider and ``index`` is 0).
    """

    path: str
    index: int
    grid: Grid
    kind: str
    provider: MaskProvider | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Scene(SourceBase):
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
    product : ProductInfo or None
        What the scene was identified as and how (see :meth:`provenance`).
    """

    sensor: SensorProfile
    band_refs: tuple[tuple[str, BandRef], ...]
    grid: Grid
    date: _dt.date | None
    mask: MaskRef | None
    source: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    cloud_buffer_m: float = 0.0
    product: ProductInfo | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    # pickling: MappingProxyType cannot be pickled
    def __reduce__(self) -> Any:
        return (
            _rebuild_scene,
            (self.sensor.name, self.band_refs, self.grid, self.date, self.mask, self.source,
             dict(self.metadata), self.sensor if self.sensor.name not in _sensor_names() else None,
             self.cloud_buffer_m, self.product),
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
        with _band_reads():  # the bands of a pixel-interleaved file decoded once, with the mask
            return self._read(names, window)

    def _read(self, names: list[str], window: Window) -> Observation:
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

    # -- what was decided ------------------------------------------------------
    @property
    def info(self) -> ProductInfo:
        """The scene's :class:`ProductInfo` (a minimal one from the sensor profile if none was recorded)."""
        if self.product is not None:
            return self.product
        return ProductInfo(self.sensor.description, level=self.sensor.level, quantity=self.sensor.quantity,
                           evidence=(f"sensor profile {self.sensor.name}",))

    @property
    def mask_status(self) -> dict[str, Any]:
        """The cloud mask in words: ``{"kind", "source", "note"}``; kind ``"none"`` with the reason when absent."""
        m = self.mask
        if m is None:
            note = self.info.mask_note or (
                f"{self.sensor.description} has no cloud mask here: clouds and their shadows count as "
                "observed ground"
            )
            return {"kind": "none", "source": None, "note": note}
        if m.kind == "computed":
            return {"kind": "computed", "source": m.path, "note": f"computed by {m.path}"}
        return {"kind": m.kind, "source": m.path, "note": MASK_KINDS.get(m.kind, m.kind)}

    # -- the rest of the raster-source protocol ----------------------------------
    @property
    def scales(self) -> dict[str, tuple[float, float]]:
        """Per band ``(scale, offset)``: ``reflectance = DN × scale + offset``."""
        return {n: (r.scale, r.offset) for n, r in self.band_refs}

    @property
    def nodata(self) -> dict[str, float | None]:
        """Per band, the DN meaning no data (None: none; integer bands' maximum is also invalid)."""
        return {n: r.nodata for n, r in self.band_refs}

    def files(self) -> tuple[tuple[str, int, Grid], ...]:
        """``(path, band, file grid)`` of each band and of the product mask, for read planning."""
        refs = [(r.path, r.index, r.grid) for _, r in self.band_refs]
        if self.mask is not None and self.mask.kind != "computed":
            refs.append((self.mask.path, self.mask.index, self.mask.grid))
        return tuple(refs)

    def data_key(self) -> frozenset[Any]:
        """The files and bands the scene reads (real paths): equal keys, the same imagery."""
        return frozenset((os.path.realpath(r.path), r.index) for _, r in self.band_refs)

    def read_decimated(self, *, aoi_bounds: tuple[float, float, float, float] | None = None, aoi_crs: Any = None,
                       margin_m: float = 0.0, max_pixels: int = 1_000_000, bands: Sequence[str] | None = None,
                       build_overviews: bool = False) -> Observation:
        """Every k-th pixel, from the files' overviews where they have them (see :mod:`ecopatch.io.quicklook`)."""
        from ecopatch.io.quicklook import read_decimated

        return read_decimated(self, aoi_bounds=aoi_bounds, aoi_crs=aoi_crs, margin_m=margin_m,
                              max_pixels=max_pixels, bands=bands, build_overviews=build_overviews)

    def read_sample(self, *, max_pixels: int = 1_000_000, bands: Sequence[str] | None = None) -> Observation:
        """A spatially even sample of the whole scene, in bounded time and memory.

        With overviews (as Sentinel-2 JP2 and most COGs have) this is a
        decimated read of the whole scene.  Without them a decimated read
        would still decode nearly every block of the file, so instead up to
        ``max_pixels`` are read as 256 × 256 windows on an even lattice
        across the scene: cheap whatever the raster's size.
        """
        names = list(bands) if bands is not None else list(self.bands)
        ds = _dataset(self.band(names[0]).path)
        g = self.grid
        if ds.overviews(1) or g.height * g.width <= 4 * max_pixels:
            return self.read_decimated(max_pixels=max_pixels, bands=names)
        size = 256
        n = max(1, max_pixels // (size * size))
        k = max(1, int(math.sqrt(n)))
        rows = np.linspace(0, max(0, g.height - size), k).astype(int)
        cols = np.linspace(0, max(0, g.width - size), k).astype(int)
        parts = [self.read(names, Window(int(r), int(c), min(size, g.height), min(size, g.width)))
                 for r in rows for c in cols]
        out = {b: np.concatenate([p.bands[b].ravel() for p in parts]) for b in names}
        valid = np.concatenate([p.valid.ravel() for p in parts])
        return Observation(out, valid, g)

    def provenance(self) -> dict[str, Any]:
        """What was read and how, as plain JSON-able values, for manifests and output metadata.

        Returns
        -------
        dict
            ``source``, ``sensor_profile``, ``product``, ``platform``,
            ``instrument``, ``level``, ``quantity``, ``date``,
            ``identified_by`` and ``assumed`` (sentences), ``bands`` (per
            role: band ID, file, band number, scale, offset, nodata),
            ``unused_bands``, ``mask`` (see :attr:`mask_status`; with the
            cloud buffer, m), ``band_roles`` (present / missing),
            ``degraded`` (see :meth:`degraded`), ``processing`` and ``grid``.
        """
        info = self.info
        bands = {}
        for name, ref in self.band_refs:
            bands[name] = {"band_id": ref.band_id, "file": ref.path, "band": ref.index,
                           "scale": ref.scale, "offset": ref.offset,
                           "nodata": None if ref.nodata is None or (isinstance(ref.nodata, float)
                                                                    and math.isnan(ref.nodata)) else ref.nodata}
        crs = self.grid.crs
        epsg = crs.to_epsg()
        return {
            "source": self.source,
            "sensor_profile": self.sensor.name,
            "product": info.product,
            "platform": info.platform,
            "instrument": info.instrument,
            "level": info.level,
            "quantity": info.quantity,
            "date": self.date.isoformat() if self.date else None,
            "identified_by": list(info.evidence),
            "assumed": list(info.assumptions),
            "bands": bands,
            "unused_bands": list(info.unused_bands),
            "mask": dict(self.mask_status, cloud_buffer_m=self.cloud_buffer_m),
            "band_roles": {"present": [b for b, h in self.band_roles.items() if h],
                           "missing": list(self.missing_roles)},
            "degraded": self.degraded(),
            "processing": list(info.processing),
            "grid": {"shape": list(self.grid.shape), "res": list(self.grid.res),
                     "crs": f"EPSG:{epsg}" if epsg else crs.to_wkt()},
        }

    def with_mask(self, mask: MaskRef | MaskProvider | str | os.PathLike[str] | None, *,
                  cloud_buffer_m: float | None = None) -> Scene:
        """A copy with another cloud mask.

        Parameters
        ----------
        mask : MaskRef, MaskProvider, path or None
            A :class:`MaskRef`; an object with a ``clear(scene, grid)``
            method (:class:`MaskProvider`, e.g. a cloud detector run on the
            scene's own bands); the path of a one-band raster, 1 (or any
            value > 0) = cloud, 0 = clear, on any grid and CRS; or None to
            drop the mask.
        cloud_buffer_m : float, optional
            Ground distance (m) to grow the new mask by (default: unchanged).

        Returns
        -------
        Scene
        """
        if mask is None or isinstance(mask, MaskRef):
            ref = mask
        elif hasattr(mask, "clear") and hasattr(mask, "name"):
            ref = MaskRef(str(mask.name), 0, self.grid, "computed", provider=mask)
        else:
            path = str(mask)
            if not Path(path).exists():
                raise RasterReadError(f"{path}: no such cloud-mask file")
            g, _ = _grid_of(path)
            ref = MaskRef(path, 1, g, "cloud01")
        info = self.info
        note = "" if ref is not None else "cloud mask removed with Scene.with_mask(None)"
        new = replace(self, mask=ref, product=replace(info, mask_note=note))
        if cloud_buffer_m is not None:
            new = replace(new, cloud_buffer_m=float(cloud_buffer_m))
        return new

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
        if m.kind == "computed":
            return _computed_clear(self, self.grid.subgrid(window))
        # a mask on a whole-factor coarser grid (Sentinel-2 SCL at 20 m): clouds are grown on
        # its own grid, then repeated onto the window: 4x fewer pixels
        k = self._buffer_px(m.grid.res[0] * ground_unit_m(m.grid))
        whole = _whole_pixels(m.path, m.index, m.grid, self.grid, window, fill=0, pad=k)
        if whole is not None:
            raw, rows, cols = whole
            if rows is None or cols is None:
                rows, cols = np.arange(window.height), np.arange(window.width)
            return grow_clouds_at(raw, m.kind, k, rows, cols)
        k = self._buffer_px(self.grid.res[0] * ground_unit_m(self.grid))
        big = window.pad(k)
        raw = _read_resampled(m.path, m.index, m.grid, self.grid, big, categorical=True)
        rel = window.relative_to(big)
        return grow_clouds_at(raw, m.kind, k, np.arange(rel.row_off, rel.row_end), np.arange(rel.col_off, rel.col_end))

    def with_date(self, date: _dt.date) -> Scene:
        """A copy with another acquisition date."""
        return replace(self, date=date)

    def __repr__(self) -> str:
        info = self.info
        lines = [f"Scene({self.sensor.name}, date={self.date}, source={self.source!r})",
                 f"  product     {info.product}" + (f" [{info.platform}]" if info.platform else "")]
        if info.evidence:
            lines.append("  identified  " + "; ".join(info.evidence))
        if info.assumptions:
            lines.append("  ASSUMED     " + "; ".join(info.assumptions))
        lines.append("  bands       " + ", ".join(_band_words(n, r) for n, r in self.band_refs))
        if info.unused_bands:
            lines.append("  not used    " + ", ".join(info.unused_bands))
        ms = self.mask_status
        lines.append("  mask        " + (f"{ms['kind']} ({ms['note']})" if ms["kind"] != "none"
                                         else f"NONE: {ms['note']}"))
        if self.missing_roles:
            lines.append("  missing     " + ", ".join(self.missing_roles) + " -> degraded: "
                         + "; ".join(d["analysis"] for d in self.degraded()))
        if info.processing:
            lines.append("  processing  " + "; ".join(info.processing))
        lines.append(f"  grid        {self.grid!r}")
        return "\n".join(lines)


def _sensor_names() -> tuple[str, ...]:
    from ecopatch.sensors import SENSORS

    return tuple(SENSORS)


def _rebuild_scene(sensor_name, band_refs, grid, date, mask, source, metadata, sensor_obj,  # type: ignore[no-untyped-def]
                   cloud_buffer_m=0.0, product=None):
    sensor = sensor_obj if sensor_obj is not None else get_sensor(sensor_name)
    return Scene(sensor, band_refs, grid, date, mask, source, metadata, cloud_buffer_m, product)


def _band_words(name: str, ref: BandRef) -> str:
    where = ref.band_id or f"band {ref.index}"
    if ref.band_id and ref.band_id != str(ref.index) and Path(ref.path).suffix.lower() not in (".vrt",):
        try:
            multi = _dataset(ref.path).count > 1
        except RasterReadError:
            multi = False
        if multi:
            where = f"{ref.band_id} (band {ref.index})"
    return f"{name}={where} ×{ref.scale:.6g}{ref.offset:+.6g}"


def _computed_clear(scene: Scene, grid: Grid) -> np.ndarray:
    """Clear pixels of a computed mask (the provider sees the scene without its mask)."""
    m = scene.mask
    assert m is not None and m.provider is not None
    bare = replace(scene, mask=None)
    out = np.asarray(m.provider.clear(bare, grid), dtype=bool)
    if out.shape != grid.shape:
        raise InputDataError(
            f"cloud mask {m.path!r} returned an array of shape {out.shape} for a window of {grid.shape}; "
            "MaskProvider.clear must return one value per pixel of the grid it is given"
        )
    return np.ascontiguousarray(out)


# ---------------------------------------------------------------------------
# Low-level reads (thread-local dataset handles; blocks read as each file stores them)
# ---------------------------------------------------------------------------
_local = threading.local()
#: Budget of the tile cache while a pass runs (MB); see :mod:`ecopatch.io._blocks`.
TILE_CACHE_MB = _blocks.TILE_CACHE_MB
_TILES = _blocks.TILES
_ds_read = _blocks.ds_read
_short = short


def _dataset(path: str) -> Any:
    """The open handle of ``path`` in the calling thread (opened on first use).

    Handles are kept per thread (GDAL datasets are not thread-safe) and hold
    no GDAL setting of their own: the block cache size ecopatch sets for a
    pass (:func:`ecopatch.io._blocks.gdal_cache`) is process-wide and
    restored when the pass ends, so a handle used after it reads as any
    other would.  :func:`close_datasets` closes this thread's handles.
    """
    import rasterio
    import rasterio.errors

    cache = getattr(_local, "datasets", None)
    if cache is None:
        cache = _local.datasets = {}
    ds = cache.get(path)
    if ds is None or ds.closed:
        try:
            # a missing geotransform gets our own clearer error in _grid_of
            with ignoring(rasterio.errors.NotGeoreferencedWarning):
                ds = rasterio.open(path)
        except Exception as exc:  # rasterio raises RasterioIOError and friends
            raise RasterReadError(
                f"{path}: cannot open as a raster ({_short(exc)}); it is not a raster, or it is "
                "truncated or corrupt: check the file, re-download or re-export it"
            ) from exc
        cache[path] = ds
        getattr(_local, "layouts", {}).pop(path, None)
    return ds


def close_datasets() -> None:
    """Close the raster handles this thread keeps open."""
    cache = getattr(_local, "datasets", None) or {}
    for ds in cache.values():
        ds.close()
    cache.clear()
    getattr(_local, "layouts", {}).clear()


def file_layout(path: str | os.PathLike[str]) -> _blocks.FileLayout:
    """How a raster file stores its pixels: driver, bands, blocks, interleaving, compression, overviews.

    Examples
    --------
    >>> file_layout("T50RQU_B04_10m.tif").describe()  # doctest: +SKIP
    'GTiff 1 band uint16, band-interleaved, tiled 256x256, deflate, no overviews'
    """
    return _layout(str(path))[1]


def _layout(path: str) -> tuple[Any, _blocks.FileLayout, tuple]:
    """(handle, layout, file identity) of ``path`` in this thread, computed once per handle."""
    ds = _dataset(path)
    layouts = _local.__dict__.setdefault("layouts", {})
    got = layouts.get(path)
    if got is None or got[0] is not ds:
        try:
            st = os.stat(path)
            ident: tuple = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            ident = (str(path), id(ds))
        got = (ds, _blocks.layout_of(ds), ident)
        layouts[path] = got
    return got


def _read_block(path: str, index: int, grid: Grid, window: Window, fill: float, *, shared: bool = True) -> np.ndarray:
    """Read ``window`` of band ``index`` (1-based) of ``path``; parts outside the file are ``fill``.

    ``shared=False`` reads straight through GDAL, for windows whose tiles no
    other window needs (they then stay out of the tile cache).  Inside
    :func:`_band_reads` (as in :meth:`Scene.read`), a pixel-interleaved
    file's bands are decoded together at the first request and the others
    come from that read.
    """
    ds, layout, _ = _layout(path)
    inner = window.intersection(grid.window)
    dtype = np.dtype(ds.dtypes[index - 1])
    if np.issubdtype(dtype, np.integer) and not float(fill).is_integer():
        dtype = np.dtype(np.float32)
    out = np.full(window.shape, fill, dtype=dtype if inner is not None else np.float32)
    if inner is None:
        return out
    rel = inner.relative_to(window)
    if layout.multiband and ds.driver != "VRT":
        out[rel.slices] = _interleaved_band(path, index, inner, shared)
        return out
    sources = _vrt_simple_sources(path, ds, index) if ds.driver == "VRT" else None
    if sources is None:
        _read_into(path, index, inner, out[rel.slices], shared)
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
        region_part = region[ov.relative_to(inner).slices]
        if _layout(src_path)[1].multiband:
            region_part[...] = _interleaved_band(src_path, src_band, sw, shared)
        else:
            _read_into(src_path, src_band, sw, region_part, shared)
    return out


def _read_into(path: str, index: int, win: Window, out: np.ndarray, shared: bool) -> None:
    """Fill ``out`` with window ``win`` (inside the file) of band ``index``; all bands when ``index`` is 0.

    ``out`` has a leading band axis when ``index`` is 0 (a pixel-interleaved
    file read whole).  Blocks go through the tile cache while a pass runs
    (:mod:`ecopatch.io._blocks`); otherwise, and for aligned or unshared
    reads, straight through GDAL.
    """
    ds, layout, ident = _layout(path)
    spec = _blocks.tile_spec(layout, ident, index or 1) if shared and _TILES.active else None
    if spec is not None and (spec.indexes is None) == (index != 0) \
            and not _blocks.aligned(win, spec.tile, layout.shape):
        _TILES.read_into(ds, spec, win, out)
    else:
        out[...] = _ds_read(ds, index if index else range(1, layout.count + 1), win)


def _interleaved_band(path: str, index: int, win: Window, shared: bool) -> np.ndarray:
    """Band ``index`` of ``win`` of a pixel-interleaved file, decoding all its bands once per window.

    Inside :func:`_band_reads` the decoded bands are kept for the next
    request of the same file that falls inside the same window (the other
    bands of :meth:`Scene.read`, the mask first with its cloud-growth
    margin); outside, the bands are decoded and the one wanted returned.
    """
    memo = getattr(_local, "memo", None)
    if memo is not None:
        hit = memo.get(path)
        if hit is not None:
            w, data = hit
            if _contains(w, win):
                return data[index - 1][win.relative_to(w).slices]
    ds, layout, _ = _layout(path)
    data = np.empty((layout.count, win.height, win.width), dtype=ds.dtypes[0])
    _read_into(path, 0, win, data, shared)
    if memo is not None:
        memo[path] = (win, data)
    return data[index - 1]


def plan_file_reads(scenes: Iterable[Any], *, block: int = 512, workers: int | None = None) -> _blocks.ReadPlan:
    """How a windowed pass over file ``scenes`` should read their files, from the files' layouts.

    The files of all the scenes of a pass are planned together (the tile
    cache holds their blocks side by side); see
    :func:`ecopatch.raster.source.plan_pass_reads`, which calls this with
    the sources that have files.

    Put into :class:`ecopatch.tiling.WindowPass` (``reads=``) by the passes
    that read imagery; :func:`ecopatch.tiling.run_passes` takes the windows
    in stripes of :attr:`~ecopatch.io._blocks.ReadPlan.stripe_px` and holds
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
    files: list[tuple[_blocks.FileLayout, float]] = []
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
                ds, layout, _ = _layout(path)
                if ds.driver == "VRT":
                    src = _vrt_simple_sources(path, ds, index)
                    paths = sorted({p for p, *_ in src.parts}) if src is not None else paths
            except RasterReadError:
                continue
            for fp in paths:
                if fp in seen:
                    continue
                seen.add(fp)
                try:
                    files.append((_layout(fp)[1], scale))
                except RasterReadError:
                    continue
                names.append(fp)
    return _blocks.plan_reads(files, block=block, workers=workers or os.cpu_count() or 1, grid_width=width or None,
                              name=names)


def _contains(outer: Window, inner: Window) -> bool:
    return (outer.row_off <= inner.row_off and outer.col_off <= inner.col_off
            and inner.row_end <= outer.row_end and inner.col_end <= outer.col_end)


@contextmanager
def _band_reads() -> Iterator[None]:
    """Within the block, the bands of a pixel-interleaved file asked for one after another are decoded once."""
    outer = getattr(_local, "memo", None)
    _local.memo = {} if outer is None else outer
    try:
        yield
    finally:
        if outer is None:
            _local.memo = None


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
    ratio = integer_ratio(dst, src)
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


def _reproject_band(
    path: str, index: int, src: Grid, dst: Grid, window: Window, *, categorical: bool
) -> np.ndarray:
    sw = source_window(src, dst, window)
    if sw is None:
        return np.full(window.shape, np.nan, dtype=np.float32)
    ds = _dataset(path)
    block = _read_block(path, index, src, sw, fill=np.nan).astype(np.float32)
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
    return float(np.iinfo(dt).max) if np.issubdtype(dt, np.integer) else None


def _read_reflectance(ref: BandRef, grid: Grid, window: Window, valid: np.ndarray) -> tuple[np.ndarray, int]:
    """Reflectance of ``ref`` for ``window`` of ``grid``: NaN where ``valid`` is False or the band has none.

    Clears ``valid`` (in place) where the band has no reflectance and
    returns how many pixels that cleared.  Bands whose pixels are whole
    blocks of ``grid``'s (the same grid, Sentinel-2's 20 m bands on the 10 m
    grid) go from the file's pixels to reflectance in one pass.
    """
    from ecopatch._kernels import reflectance_kernel

    # integer DN outside the file are the saturation value (not reflectance): no float copy of the block
    sat = _saturation(ref)
    whole = _whole_pixels(ref.path, ref.index, ref.grid, grid, window, fill=np.nan if sat is None else sat)
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
        self._grid, ds = _grid_of(self.path)
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
        return _read_block(self.path, band, self._grid, window, fill=np.nan, shared=False)


# ---------------------------------------------------------------------------
# Opening products
# ---------------------------------------------------------------------------
#: GDAL drivers of photo formats: a file read by one of them is a picture, not a map.
_PHOTO_DRIVERS = {"JPEG": "JPEG photo", "PNG": "PNG image", "GIF": "GIF image", "BMP": "BMP image",
                  "WEBP": "WebP image", "HEIF": "HEIF/HEIC photo"}


def _grid_of(path: str) -> tuple[Grid, Any]:
    ds = _dataset(path)
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


@overload
def open_scene(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    sensor: str | SensorProfile | None = ...,
    bands: Mapping[str, int | str] | None = ...,
    date: str | _dt.date | None = ...,
    *,
    scale: float | None = ...,
    offset: float | None = ...,
    nodata: float | None = ...,
    cloud_buffer_m: float | None = ...,
    haze: str = ...,
    cloud_mask: MaskRef | MaskProvider | str | os.PathLike[str] | None = ...,
    dem: str | os.PathLike[str] | None = ...,
    calibration: str | os.PathLike[str] | Calibration | None = ...,
    pansharpen: bool = ...,
    workdir: str | os.PathLike[str] | None = ...,
    transform: Any = ...,
    crs: Any = ...,
) -> Scene: ...


@overload
def open_scene(
    source: Any,
    sensor: str | SensorProfile | None = ...,
    bands: Mapping[str, int | str] | Sequence[str] | None = ...,
    date: str | _dt.date | None = ...,
    *,
    scale: float | None = ...,
    offset: float | None = ...,
    nodata: float | None = ...,
    cloud_buffer_m: float | None = ...,
    haze: str = ...,
    cloud_mask: MaskRef | MaskProvider | str | os.PathLike[str] | None = ...,
    dem: str | os.PathLike[str] | None = ...,
    calibration: str | os.PathLike[str] | Calibration | None = ...,
    pansharpen: bool = ...,
    workdir: str | os.PathLike[str] | None = ...,
    transform: Any = ...,
    crs: Any = ...,
) -> RasterSource: ...


def open_scene(
    source: Any,
    sensor: str | SensorProfile | None = None,
    bands: Mapping[str, int | str] | Sequence[str] | None = None,
    date: str | _dt.date | None = None,
    *,
    scale: float | None = None,
    offset: float | None = None,
    nodata: float | None = None,
    cloud_buffer_m: float | None = None,
    haze: str = "auto",
    cloud_mask: MaskRef | MaskProvider | str | os.PathLike[str] | None = None,
    dem: str | os.PathLike[str] | None = None,
    calibration: str | os.PathLike[str] | Calibration | None = None,
    pansharpen: bool = True,
    workdir: str | os.PathLike[str] | None = None,
    transform: Any = None,
    crs: Any = None,
) -> Any:
    """Open imagery of one date as a lazily read :class:`Scene`, and say what it was read as.

    The product, its level and sensor, which band is which, how values become
    reflectance and where the cloud mask comes from are decided from the
    product's metadata, band descriptions, colour interpretation, file names
    and sensor profiles (see :mod:`ecopatch.io.products` and the README's
    table of products).  The decision and its evidence are kept in
    :attr:`Scene.product`, shown by ``repr(scene)`` and written into every
    output's provenance.  Where the evidence is thin the scene still opens,
    with an :class:`~ecopatch.errors.AssumptionWarning` naming what was
    assumed and the argument that says otherwise; where there is none, an
    :class:`~ecopatch.errors.InputDataError` says what to pass.  A product
    without a cloud mask warns (:class:`~ecopatch.errors.MissingMaskWarning`),
    and so does a scene lacking band roles some analyses need
    (:class:`~ecopatch.errors.DegradedAnalysisWarning`).

    Parameters
    ----------
    source : path, sequence of paths, xarray object, rasterio dataset, array or RasterSource
        A Sentinel-2 ``.SAFE`` folder (or its ``IMG_DATA``), a STAC item
        ``.json`` with local assets, a Landsat Collection 2 folder (with its
        ``_MTL.txt``/``.json``/``.xml``), an HLS folder, a Gaofen L1A package
        (``.tar.gz`` or its folder, with -MSS/-PAN TIFF, ``.rpb`` and
        ``.xml``), a folder of single-band files (band IDs in the file
        names, e.g. ``..._B04_10m.tif``, ``SR_B4.TIF``, ``SCL.tif``), a list
        of such files, or one multi-band GeoTIFF (a Gaofen orthoimage, NAIP,
        a drone mosaic, a stacked export).  Also imagery already in memory
        (an :class:`~ecopatch.raster.arrays.ArraySource` is returned): an
        xarray ``Dataset`` or ``DataArray`` in the rioxarray, odc-stac or
        stackstac layout (see :func:`ecopatch.raster.xarray_source.from_xarray`),
        an open rasterio dataset (one whose file is on disk is opened from
        its path, with the product readers), or a numpy array of shape
        ``(bands, rows, cols)`` with ``bands=`` (a list of band roles),
        ``date=``, ``transform=`` and ``crs=``.  A raster source is returned
        as it is (with ``date=`` or ``cloud_mask=`` applied).
    sensor : str or SensorProfile, optional
        Product type (see :data:`ecopatch.sensors.SENSORS`); identified from
        the product when not given.
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
    haze : {"auto", "dos", "none"}
        Dark-object subtraction; ``"auto"`` applies it to top-of-atmosphere
        products (Sentinel-2 L1C, Landsat Level-1, Gaofen L1A).
    cloud_mask : path, MaskRef or MaskProvider, optional
        A cloud mask to use instead of (or where there is no) product mask:
        a raster with 1 = cloud, 0 = clear, or a computed mask (see
        :meth:`Scene.with_mask`).
    dem : path, optional
        Elevation model (any GDAL raster, metres above the ellipsoid or
        geoid) for orthorectifying Gaofen L1A imagery through its RPCs;
        without one a constant height (the RPC height offset) is used, with
        a warning.
    calibration : path or Calibration, optional
        Gaofen absolute calibration coefficients (a JSON table like the one
        shipped, see :func:`ecopatch.io.gaofen.load_calibration`) to use
        instead of the shipped, cited ones.
    pansharpen : bool
        Gaofen PMS packages: pan-sharpen the multispectral bands to the
        panchromatic resolution (default) or keep the multispectral grid.
    workdir : path, optional
        Where a Gaofen ``.tar.gz`` is unpacked and its orthorectification
        VRTs written (default: beside the package).
    transform, crs : optional
        The affine transform and CRS of a numpy array ``source``.

    Returns
    -------
    Scene or RasterSource
        A :class:`Scene` for files and products.

    Raises
    ------
    RasterReadError
        The path does not exist or is not a readable raster.
    MissingCRSError, InputDataError
        No CRS, no or a rotated geotransform, no recognisable band, or bands
        whose roles cannot be told (the message says what to pass).

    Notes
    -----
    Sentinel-2 products from processing baseline 04.00 (25 January 2022) on
    carry ``BOA_ADD_OFFSET = -1000``: reflectance = (DN - 1000) / 10000.  The
    offset is taken from ``MTD_MSIL2A.xml``, the STAC item, or the GeoTIFF's
    ``BOA_ADD_OFFSET*`` tags; a product whose baseline is unknown gets no
    offset, with a warning when its date is after the change.
    """
    from ecopatch.raster.adapters import adapt, is_rasterio_dataset

    adapted = adapt(source, sensor=sensor, bands=bands, date=date, scale=scale, offset=offset, nodata=nodata,
                    cloud_buffer_m=cloud_buffer_m, cloud_mask=cloud_mask, transform=transform, crs=crs,
                    file_only={"dem": dem, "calibration": calibration, "workdir": workdir})
    if adapted is not None:
        return adapted
    if is_rasterio_dataset(source):
        source = str(source.name)  # a dataset whose file is on disk: read as that file
    if transform is not None or crs is not None:
        raise InputDataError("transform= and crs= are for arrays; a file carries its own grid (fix it with "
                             "gdal_edit.py -a_srs / -a_ullr)")
    from ecopatch.io.products import open_product

    return open_product(source, sensor, bands, date, scale=scale, offset=offset, nodata=nodata,
                        cloud_buffer_m=cloud_buffer_m, haze=haze, cloud_mask=cloud_mask, dem=dem,
                        calibration=calibration, pansharpen=pansharpen, workdir=workdir)
