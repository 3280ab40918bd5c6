"""The raster-source protocol: what every analysis reads imagery through.

A *raster source* is imagery of one date as named reflectance bands on a
:class:`~ecopatch.geo.grid.Grid`, with a validity (cloud) mask.  The analyses
(:mod:`ecopatch.analyses`) see nothing else: file and product scenes
(:class:`ecopatch.raster.scene.Scene`), numpy arrays, xarray objects in the
rioxarray, odc-stac and stackstac layouts and open rasterio datasets all
become a source (:func:`as_source`), as exactextract's ``RasterSource``
classes share ``res()``, ``extent()`` and ``read_window()``.

This module holds the protocol, the values it returns and the generic
functions over any source (pair checks, read planning, samples); it opens
no file itself (the file readers are imported only when a path is given).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ecopatch.errors import (
    DateOrderError,
    InputDataError,
    MissingBandError,
    SameSceneWarning,
    SlowInputWarning,
    caller_stacklevel,
)
from ecopatch.geo.grid import Grid, Window
from ecopatch.options import WINDOWS
from ecopatch.raster.sensors import ANALYSIS_NEEDS, SensorProfile

if TYPE_CHECKING:
    from ecopatch.raster.blocks import ReadPlan

__all__ = [
    "CORE_BANDS",
    "SourceLike",
    "VALID_REFLECTANCE",
    "MaskProvider",
    "Observation",
    "ProductInfo",
    "RasterSource",
    "SourceBase",
    "ValueRaster",
    "as_source",
    "as_values",
    "check_pair",
    "plan_pass_reads",
    "read_decimated",
    "large_block_bytes",
    "reads_outside_a_pass",
    "read_sample",
    "release_large_blocks",
]

log = logging.getLogger(__name__)

#: Reflectance outside this range is treated as invalid (saturation, fill, overflow).
VALID_REFLECTANCE = (-0.15, 1.6)
#: The band roles ecopatch's analyses read (see :data:`ecopatch.raster.sensors.ANALYSIS_NEEDS`).
CORE_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir1", "swir2")


@dataclass(frozen=True)
class Observation:
    """Reflectance of some bands in one window, with a validity mask.

    Attributes
    ----------
    bands : mapping of str to ndarray of float32, shape (rows, cols)
        Reflectance (unitless, 0-1; relative brightness for drone RGB), NaN
        where ``valid`` is False.
    valid : ndarray of bool, shape (rows, cols)
        True where every band has data and the source's mask says clear.
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
class ProductInfo:
    """What a source was identified as, on which evidence, and what had to be assumed.

    Attributes
    ----------
    product : str
        Human name of the product, e.g. ``"Landsat 7 ETM+ Collection 2
        Level-2 surface reflectance"``.
    platform, instrument, level : str
        ``"LANDSAT_7"``, ``"ETM+"``, ``"L2SP"``; ``""`` when unknown.
    quantity : str
        What the values are after scaling (surface or top-of-atmosphere
        reflectance, relative brightness).
    evidence : tuple of str
        How it was identified: each a sentence naming the file, field or
        rule (``"MTL SPACECRAFT_ID = LANDSAT_7"``).
    assumptions : tuple of str
        What was assumed where the evidence was thin, each with how to say
        otherwise; these are also issued as
        :class:`~ecopatch.errors.AssumptionWarning` when the scene is opened.
    unused_bands : tuple of str
        Bands of the product that no analysis uses (never dropped silently).
    mask_note : str
        Why the source has no cloud mask (empty when it has one).
    processing : tuple of str
        Steps applied on reading: calibration, orthorectification,
        pan-sharpening, haze removal.
    """

    product: str
    platform: str = ""
    instrument: str = ""
    level: str = ""
    quantity: str = ""
    evidence: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()
    unused_bands: tuple[str, ...] = ()
    mask_note: str = ""
    processing: tuple[str, ...] = ()


class MaskProvider(Protocol):
    """A cloud mask computed rather than read from a product band (a cloud detector, a user's model).

    Plug one into a source with its ``with_mask``.  ``clear`` gets the
    source *without* its mask (so it may read the source's bands) and the
    grid of the pixels wanted, and returns True where the ground is seen
    clearly.  It must be picklable (a module-level class) for Dask workers.
    """

    @property
    def name(self) -> str:
        """What the mask is, for the observation table (e.g. ``"s2cloudless 0.4"``)."""

    def clear(self, scene: Any, grid: Grid) -> np.ndarray:
        """Boolean array of ``grid.shape``: True where clear, False for cloud, shadow or no data."""
        ...  # pragma: no cover


@runtime_checkable
class RasterSource(Protocol):
    """Imagery of one date: named reflectance bands on a grid, with a validity mask.

    What every analysis reads through.  Implemented by
    :class:`ecopatch.raster.scene.Scene` (files and products) and
    :class:`ecopatch.raster.arrays.ArraySource` (numpy, xarray, an open
    rasterio dataset); :func:`as_source` makes one from any of them.

    Attributes
    ----------
    grid : Grid
        The source's pixels: shape, affine transform and CRS.
    date : datetime.date or None
        Acquisition date (UTC).
    bands : tuple of str
        Common band names (``"blue"``, ``"red"``, ``"nir"``, ``"swir1"`` ...):
        the band roles the analyses read (:data:`CORE_BANDS`).
    sensor : SensorProfile
        The product type: band IDs, nominal scale, whether values are
        reflectance (False for drone RGB brightness).
    scales : mapping of str to (float, float)
        Per band ``(scale, offset)``: ``reflectance = value × scale + offset``.
    nodata : mapping of str to float or None
        Per band, the value meaning no data.
    source : str
        What it was made from (a path, ``"xarray.Dataset"`` ...), for messages.
    label : str
        A short human name: sensor and date.
    metadata : mapping
        Facts found on the way (``"haze_removed"``: per band, reflectance
        subtracted by dark-object subtraction).
    info : ProductInfo
        What the source was identified as.
    mask_status : dict
        Which cloud mask it has: ``{"kind", "source", "note"}``; kind
        ``"none"`` with the reason when it has none.
    """

    @property
    def grid(self) -> Grid:
        """The source's pixels: shape, affine transform and CRS."""
        ...

    @property
    def date(self) -> _dt.date | None:
        """Acquisition date (UTC), None when unknown."""
        ...

    @property
    def bands(self) -> tuple[str, ...]:
        """Common band names the source has."""
        ...

    @property
    def sensor(self) -> SensorProfile:
        """The product type."""
        ...

    @property
    def scales(self) -> Mapping[str, tuple[float, float]]:
        """Per band ``(scale, offset)``: reflectance = value × scale + offset."""
        ...

    @property
    def nodata(self) -> Mapping[str, float | None]:
        """Per band, the value meaning no data."""
        ...

    @property
    def source(self) -> str:
        """What the source was made from, for messages."""
        ...

    @property
    def label(self) -> str:
        """A short human name: sensor and date."""
        ...

    @property
    def metadata(self) -> Mapping[str, Any]:
        """Facts found on the way (``haze_removed`` ...)."""
        ...

    @property
    def info(self) -> ProductInfo:
        """What the source was identified as."""
        ...

    @property
    def mask_status(self) -> dict[str, Any]:
        """Which cloud mask it has: ``{"kind", "source", "note"}``."""
        ...

    def read(self, bands: Sequence[str] | None = None, window: Window | None = None) -> Observation:
        """Reflectance of ``bands`` in ``window`` of :attr:`grid` (NaN outside the grid and where not valid)."""
        ...

    def read_decimated(self, *, aoi_bounds: tuple[float, float, float, float] | None = None, aoi_crs: Any = None,
                       margin_m: float = 0.0, max_pixels: int = 1_000_000, bands: Sequence[str] | None = None,
                       build_overviews: bool = False,
                       within: Sequence[tuple[float, float, float, float]] | None = None) -> Observation:
        """Every k-th pixel (nearest) of the source or of an area of it: at most ``max_pixels``."""
        ...

    def read_sample(self, *, max_pixels: int = 1_000_000, bands: Sequence[str] | None = None) -> Observation:
        """A spatially even sample of the whole source, for scene statistics."""
        ...

    def files(self) -> tuple[tuple[str, int, Grid], ...]:
        """``(path, band, file grid)`` of each file band the source reads (empty for arrays), for read planning."""
        ...

    def data_key(self) -> frozenset[Any]:
        """What data the source reads (files and bands, or array identities): equal keys, same imagery."""
        ...

    def require(self, names: Iterable[str], purpose: str) -> None:
        """Raise :class:`~ecopatch.errors.MissingBandError` unless the source has every band in ``names``."""
        ...

    def degraded(self) -> list[dict[str, Any]]:
        """The analyses this source cannot run in full (``{"analysis", "missing", "consequence"}``)."""
        ...

    def provenance(self) -> dict[str, Any]:
        """What was read and how, as plain JSON-able values."""
        ...

    def with_mask(self, mask: Any, *, cloud_buffer_m: float | None = None) -> RasterSource:
        """A copy with another cloud mask (a :class:`MaskProvider`, or None to drop it)."""
        ...

    def with_date(self, date: _dt.date) -> RasterSource:
        """A copy with another acquisition date."""
        ...


#: What the analyses accept as imagery: a :class:`RasterSource`, or what :func:`as_source` turns into one (a path,
#: a sequence of band files, an xarray Dataset/DataArray, an open rasterio dataset).
SourceLike = Any


class SourceBase:
    """What every source derives from its bands, sensor, source and date (a mixin)."""

    if TYPE_CHECKING:  # what the classes using this mixin define

        @property
        def bands(self) -> tuple[str, ...]: ...  # noqa: D102
        @property
        def sensor(self) -> SensorProfile: ...  # noqa: D102
        @property
        def source(self) -> str: ...  # noqa: D102
        @property
        def date(self) -> _dt.date | None: ...  # noqa: D102

    @property
    def label(self) -> str:
        """A short human name: sensor and date."""
        d = self.date.isoformat() if self.date else "undated"
        return f"{self.sensor.name} {d}"

    @property
    def band_roles(self) -> dict[str, bool]:
        """For each role ecopatch's analyses read (:data:`CORE_BANDS`), whether the source has it."""
        return {b: b in self.bands for b in CORE_BANDS}

    @property
    def missing_roles(self) -> tuple[str, ...]:
        """The roles of :data:`CORE_BANDS` the source lacks (e.g. ``("swir1", "swir2")`` for Gaofen)."""
        return tuple(b for b, have in self.band_roles.items() if not have)

    def degraded(self) -> list[dict[str, Any]]:
        """The analyses this source cannot run in full, from :data:`ecopatch.raster.sensors.ANALYSIS_NEEDS`.

        Returns
        -------
        list of dict
            ``{"analysis", "missing", "consequence"}`` per degraded analysis;
            empty when the source has every band role the analyses read.
        """
        out = []
        for need in ANALYSIS_NEEDS:
            missing = [b for b in need.bands if b not in self.bands]
            if missing:
                out.append({"analysis": need.analysis, "missing": missing, "consequence": need.without})
        return out

    def require(self, names: Iterable[str], purpose: str) -> None:
        """Raise :class:`MissingBandError` unless the source has every band in ``names``."""
        missing = [n for n in names if n not in self.bands]
        if missing:
            ids = [f"{n} ({self.sensor.bands[n]})" if n in self.sensor.bands else n for n in missing]
            raise MissingBandError(
                f"{self.source}: {purpose} needs band(s) {', '.join(ids)}, but the scene has "
                f"{list(self.bands)}; if it is a downloaded product, the band file is missing (an "
                "incomplete download: fetch it again); else pass bands={...} to open_scene to name the "
                "file's bands"
            )


@runtime_checkable
class ValueRaster(Protocol):
    """Raw values of a raster (a class map, an index, a DEM): what :func:`ecopatch.patch_statistics` reads.

    Implemented by :class:`ecopatch.raster.scene.FileValues` (a file) and
    :class:`ecopatch.raster.arrays.ArrayValues` (arrays, xarray);
    :func:`as_values` makes one.
    """

    @property
    def grid(self) -> Grid:
        """The raster's pixels."""
        ...

    @property
    def count(self) -> int:
        """Number of bands."""
        ...

    @property
    def source(self) -> str:
        """What it was made from, for messages."""
        ...

    def band_nodata(self, band: int) -> float | None:
        """The value meaning no data in ``band`` (1-based), None when none is recorded."""
        ...

    def read_values(self, band: int, window: Window) -> np.ndarray:
        """Values of ``band`` (1-based) in ``window`` (float, NaN outside the raster)."""
        ...


def as_values(obj: Any) -> ValueRaster:
    """The :class:`ValueRaster` of a path, an xarray DataArray, an open rasterio dataset or a ValueRaster."""
    if isinstance(obj, ValueRaster):
        return obj
    if isinstance(obj, (str, os.PathLike)) or (type(obj).__module__.startswith("rasterio") and hasattr(obj, "name")
                                               and os.path.isfile(str(obj.name))):
        from ecopatch.raster.fileread import FileValues  # the file reader, only for a file

        return FileValues(str(getattr(obj, "name", obj)) if not isinstance(obj, (str, os.PathLike)) else str(obj))
    from ecopatch.raster.xarray_source import is_xarray, values_from_xarray

    if is_xarray(obj):
        return values_from_xarray(obj)
    raise not_a_source(obj, "patch_statistics raster")


# ---------------------------------------------------------------------------
# Any input -> a source
# ---------------------------------------------------------------------------
def as_source(obj: Any, **kwargs: Any) -> RasterSource:
    """The raster source of ``obj``: a source as it is, else what :func:`ecopatch.open_scene` makes of it.

    Parameters
    ----------
    obj : RasterSource, path, sequence of paths, xarray.Dataset, xarray.DataArray, rasterio dataset or ndarray
        See :func:`ecopatch.open_scene` for the options each takes.
    **kwargs
        Options of :func:`ecopatch.open_scene` (only used when ``obj`` is not
        a source already).

    Raises
    ------
    InputDataError
        ``obj`` is none of these.
    """
    if isinstance(obj, RasterSource) and not kwargs:
        return obj
    from ecopatch.raster.scene import open_scene  # the file readers, only for what is not a source yet

    return open_scene(obj, **kwargs)


def as_sources(*objs: Any) -> tuple[RasterSource, ...]:
    """:func:`as_source` of each (None stays None)."""
    return tuple(None if o is None else as_source(o) for o in objs)  # type: ignore[misc]


# ---------------------------------------------------------------------------
# Generic functions over sources
# ---------------------------------------------------------------------------
def read_decimated(
    source: RasterSource,
    *,
    aoi_bounds: tuple[float, float, float, float] | None = None,
    aoi_crs: Any = None,
    margin_m: float = 0.0,
    max_pixels: int = 1_000_000,
    bands: Sequence[str] | None = None,
    build_overviews: bool = False,
    within: Sequence[tuple[float, float, float, float]] | None = None,
) -> Observation:
    """A decimated read of a source (or of an area of interest), for statistics and quick-looks.

    Reads every k-th pixel (nearest) so that at most ``max_pixels`` are
    returned; files read through their overviews where they have them (see
    :func:`ecopatch.raster.quicklook.read_decimated`).

    Parameters
    ----------
    source : RasterSource
    aoi_bounds : tuple of float, optional
        ``(left, bottom, right, top)`` in ``aoi_crs``; default the whole source.
    aoi_crs : CRS-like, optional
        CRS of ``aoi_bounds`` (default the source's).
    margin_m : float
        Ground distance added around the area of interest, m.
    max_pixels : int
        Upper bound on the returned pixels.
    bands : sequence of str, optional
        Bands to read; default all.
    build_overviews : bool
        Build missing overviews of large files first (an external ``.ovr``
        beside each; off by default).
    within : sequence of (left, bottom, right, top), optional
        Rectangles in ``aoi_crs`` where pixels are wanted: files without
        overviews then decode only the blocks under them, and the pixels
        outside them are NaN and not valid.  Default: everywhere.

    Returns
    -------
    Observation
        On a coarser grid covering the same ground.
    """
    return source.read_decimated(aoi_bounds=aoi_bounds, aoi_crs=aoi_crs, margin_m=margin_m, max_pixels=max_pixels,
                                 bands=bands, build_overviews=build_overviews, within=within)


def read_sample(source: RasterSource, *, max_pixels: int = 1_000_000,
                bands: Sequence[str] | None = None) -> Observation:
    """A spatially even sample of a whole source, for scene statistics, in bounded time and memory.

    Returns
    -------
    Observation
        Bands and validity as arrays (2-D for a decimated read; 1-D, the
        windows concatenated, for a lattice of windows of a large file
        without overviews).
    """
    return source.read_sample(max_pixels=max_pixels, bands=bands)


def plan_pass_reads(sources: Iterable[RasterSource], *, block: int = WINDOWS.block, workers: int | None = None
                    ) -> ReadPlan | None:
    """How a windowed pass over ``sources`` should read them, from their files' layouts.

    Put into :class:`ecopatch.engine.tiling.WindowPass` (``reads=``) by the passes
    that read imagery; :func:`ecopatch.engine.tiling.run_passes` holds the plan's
    session (tile cache and GDAL block cache sized for these files, released
    when the pass ends) while the windows run.

    Parameters
    ----------
    sources : iterable of RasterSource
        The imagery the pass reads.
    block : int
        Analysis window size, pixels.
    workers : int, optional
        Threads reading at once (default: the CPU count).

    Returns
    -------
    ReadPlan or None
        None when no source reads files (arrays need no plan).
    """
    sources = list(sources)
    _warn_large_chunks(sources, block)
    with_files = [s for s in sources if s.files()]
    if not with_files:
        return None
    # the files of all the sources of a pass are planned together: the tile cache holds them side by side
    from ecopatch.raster.fileread import plan_file_reads

    return plan_file_reads(with_files, block=block, workers=workers or os.cpu_count() or 1)


def _warn_large_chunks(sources: Sequence[RasterSource], block: int) -> None:
    """Warn when a dask-backed source's chunks are larger than a pass's windows (each is computed again per window)."""
    for s in sources:
        chunks = getattr(s, "dask_chunks", lambda: None)()
        if chunks is None:
            continue
        rows, cols = chunks
        h, w = s.grid.shape
        if (rows > block and h > block) or (cols > block and w > block):
            warnings.warn(
                f"{s.source}: dask-backed arrays in chunks of {rows} x {cols} pixels, read by windows of {block}: "
                "each chunk is computed again for every window that reads it (a full Sentinel-2 tile in chunks of "
                "2048: about 30 times, 82 s for assess_restoration against 4.5 s from the same data as GeoTIFFs). "
                "Load the data into memory first if it fits (ds.load(): numpy arrays, read without dask), or save "
                "it as GeoTIFFs and open those; persisted dask arrays are still sliced through dask window by "
                "window, and smaller chunks are slower still (each window then gathers many)",
                SlowInputWarning, stacklevel=caller_stacklevel())


def read_reach_px(sources: Iterable[RasterSource | None], grid: Grid) -> int:
    """Pixels of ``grid`` beyond a window that reading it from any of ``sources`` may touch, at most.

    A scene's reads reach beyond the window asked for by the whole pixels
    of its coarser bands and its mask's cloud-growth margin
    (:meth:`ecopatch.raster.scene.Scene.read_reach_px`), counted here in
    pixels of ``grid``; sources that read no files (arrays, xarray objects)
    reach nothing.  The windowed passes set their windows back by this much
    more than their halo.
    """
    import math

    from ecopatch.raster.ongrid import ground_unit_m

    reach = 0
    res = grid.res[0] * ground_unit_m(grid)
    for s in sources:
        get = getattr(s, "read_reach_px", None)
        if s is None or get is None:
            continue
        px = int(get())
        if px > 0:
            ratio = s.grid.res[0] * ground_unit_m(s.grid) / res  # the scene's pixels in the grid's
            reach = max(reach, math.ceil(px * ratio - 1e-9))
    return reach


def striped_sources(sources: Iterable[RasterSource]) -> bool:
    """Whether any file the sources read is striped (a strip is decoded whole, across the file's width)."""
    with_files = [s for s in sources if s.files()]
    if not with_files:
        return False
    from ecopatch.raster.fileread import reads_striped_files

    return reads_striped_files(with_files)


def large_block_bytes(sources: Iterable[RasterSource]) -> int:
    """Bytes of the largest decoded block among the sources' compressed GeoTIFFs of large blocks; 0 if none.

    Large: 8 MiB or more, all bands of a pixel-interleaved block
    (:attr:`ecopatch.raster.blocks.FileLayout.large_blocks`; a 7-band
    uint16 stack tiled 2048 has 56 MiB blocks).  Reading any pixel of
    such a block decodes all of it, and the reading thread's handle keeps it.
    """
    with_files = [s for s in sources if s.files()]
    if not with_files:
        return 0
    from ecopatch.raster.fileread import largest_large_block

    return largest_large_block(with_files)


@contextmanager
def reads_outside_a_pass(sources: Iterable[RasterSource]) -> Iterator[None]:
    """GDAL's block cache at the size a pass over ``sources`` gives it, for reads made outside a pass.

    Scattered reads (a pass's set-up sample, a case's window) would otherwise
    run with GDAL's default cache, 5 % of the RAM, which keeps decoded blocks
    they never use again (1024² JPEG 2000 tiles: a full-tile detection's
    set-up peaked at 1.2 GiB).  Scoped and restored as a pass's cache is
    (:meth:`ecopatch.raster.blocks.ReadPlan.gdal_scope`); nothing for
    sources without files.
    """
    plan = plan_pass_reads(sources)
    if plan is None:
        yield
        return
    with plan.gdal_scope():
        yield


def release_large_blocks() -> None:
    """Let go of the decoded blocks this thread's file handles keep, where blocks are large.

    A GTiff handle keeps the last block it decoded until it is closed (all
    bands of a pixel-interleaved stack tiled 2048: about 90 MiB a file).
    Called by a set-up that has read its sample of one date in the calling
    thread and reads no more of it there; a handle is reopened on its next
    read.  Nothing for other files.
    """
    from ecopatch.raster.fileread import release_large_handles

    release_large_handles()


@contextmanager
def decoded_once(sources: Iterable[RasterSource | None],
                 near: tuple[Sequence[tuple[float, float, float, float]], Any] | None = None) -> Iterator[None]:
    """Keep the decoded blocks of small files from an analysis's set-up to the end of its passes.

    A pass keeps the blocks its windows share only while it runs
    (:meth:`ecopatch.raster.blocks.TileCache.session`), so the set-up's
    sample windows (the normalisation, the noise model) and the pass after
    it decoded the same blocks twice.  When the files of ``sources`` take no
    more than the tile cache's budget decoded whole (a 1000² pair of
    Sentinel-2 products takes 17.6 MiB; the default budget is 128 MiB), the
    cache is held for the length of the block, so each block is decoded
    once; larger files are left to the passes' own sessions, as the set-up
    reads a sample of them only.  Everything is dropped when the block ends.

    ``near`` (rectangles and their CRS: the reserves, the mines): when the
    blocks of the files within :data:`NEAR_PAD_PX` of them fit in
    :data:`NEAR_CACHE_MB`, the cache holds those: a few reserves on a full
    Sentinel-2 tile, whose set-up sample and pass decode the same 1024²
    JPEG 2000 tiles.  The bound keeps the peak under 1 GiB (5 of the bench
    reserves: 256 MiB held, 0.88 GiB).
    """
    from ecopatch.raster import blocks
    from ecopatch.raster.fileread import decoded_bytes, decoded_bytes_near

    with_files = [s for s in sources if s is not None and s.files()]
    need = decoded_bytes(with_files) if with_files else 0
    if 0 < need <= blocks.default_budget():
        with blocks.TILES.session(need):
            yield
        return
    if near is not None and with_files and blocks.default_budget() > 0:
        rects, crs = near
        part = decoded_bytes_near(with_files, rects, crs, NEAR_PAD_PX) if len(rects) else None
        if part is not None and 0 < part <= NEAR_CACHE_MB * 1024 * 1024:
            with blocks.TILES.session(part):
                yield
            return
    yield


def near_frames(frames: Iterable[Any], crs: Any) -> tuple[list[tuple[float, float, float, float]], Any] | None:
    """The bounds of every geometry of ``frames`` (GeoDataFrames or None) in ``crs``: :func:`decoded_once`'s ``near``.

    None when a frame is None (the whole scene is analysed), has no CRS or cannot be read so: it
    only sizes a cache, and the analysis reports what is wrong with its inputs itself.
    """
    import shapely

    rects: list[tuple[float, float, float, float]] = []
    for f in frames:
        if f is None or getattr(f, "crs", None) is None:
            return None
        try:
            g = np.asarray(f.to_crs(crs).geometry.values if f.crs != crs else f.geometry.values, dtype=object)
            g = g[~(shapely.is_missing(g) | shapely.is_empty(g))]
            rects.extend((float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in shapely.bounds(g))
        except Exception:  # noqa: BLE001 - an optimisation only; the analysis checks its inputs
            return None
    return (rects, crs) if rects else None


#: Pixels around the area of interest whose blocks an analysis may decode (its set-up's sample
#: windows of 128 pixels with their halo, the windows' halos): :func:`decoded_once`'s ``near``.
NEAR_PAD_PX = 160
#: Most a tile cache held by :func:`decoded_once` for the blocks near the area of interest may take
#: (MiB): the full-tile JPEG 2000 detection around 5 reserves peaked at 0.88 GiB holding 256 MiB.
NEAR_CACHE_MB = 288


def check_pair(before: RasterSource, after: RasterSource, *, swap_dates: bool = False
               ) -> tuple[RasterSource, RasterSource]:
    """Check that two sources make a before/after pair, and return them in date order.

    Parameters
    ----------
    before, after : RasterSource
        The sources as given.
    swap_dates : bool
        When the after source is the older one, swap them (with a log line)
        instead of raising.

    Returns
    -------
    (RasterSource, RasterSource)
        ``(before, after)``, swapped if asked.

    Raises
    ------
    DateOrderError
        ``after`` was taken before ``before`` and ``swap_dates`` is False:
        restoration would read backwards (a mine "100 % restored") and patch
        IDs would carry the older date.

    Warns
    -----
    SameSceneWarning
        Both are the same imagery (same files, or same arrays): no change
        can be found.
    """
    if _same_data(before, after):
        warnings.warn(
            f"the before and the after scene are the same scene ({before.source}, {before.date}): no change "
            "can be found; give imagery of two dates",
            SameSceneWarning, stacklevel=3,
        )
    if before.date is not None and after.date is not None and after.date < before.date:
        if swap_dates:
            log.info("swap_dates: %s is older than %s; using it as the before scene", after.label, before.label)
            return after, before
        raise DateOrderError(
            f"the after scene ({after.source}, {after.date}) is older than the before scene "
            f"({before.source}, {before.date}); swap them, or pass swap_dates=True (--swap-dates) to have "
            "ecopatch order them"
        )
    return before, after


def _same_data(a: RasterSource, b: RasterSource) -> bool:
    if a is b:
        return True
    ka, kb = a.data_key(), b.data_key()
    return bool(ka) and ka == kb


def not_a_source(obj: Any, what: str) -> InputDataError:
    """The error for an input that is not imagery, naming what it is and what is accepted."""
    return InputDataError(
        f"{what}: got a {type(obj).__module__}.{type(obj).__qualname__}, not imagery; give a path, a Scene from "
        "ecopatch.open_scene, an xarray Dataset/DataArray (rioxarray, odc-stac, stackstac), an open rasterio "
        "dataset or ecopatch.raster.from_array(...)"
    )
