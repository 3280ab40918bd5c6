"""Reading imagery: products on disk -> reflectance windows on a :class:`~ecopatch.geo.grid.Grid`.

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
mosaics) lives in :mod:`ecopatch.raster.products`, :mod:`ecopatch.raster.landsat` and
:mod:`ecopatch.raster.gaofen`; what was decided travels with the scene as a
:class:`ProductInfo` and shows in its ``repr`` and :meth:`Scene.provenance`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ecopatch.errors import ConfigError, InputDataError, MissingBandError, RasterReadError
from ecopatch.geo.grid import Grid, Window
from ecopatch.raster.fileread import (
    band_reads,
    grid_of,
    open_dataset,
    read_reflectance,
    read_reflectances,
    read_resampled,
    whole_pixels,
)
from ecopatch.raster.masks import MASK_KINDS, grow_clouds_at
from ecopatch.raster.ongrid import ground_unit_m
from ecopatch.raster.sensors import SensorProfile, get_sensor
from ecopatch.raster.source import (
    MaskProvider,
    Observation,
    ProductInfo,
    RasterSource,
    SourceBase,
)

if TYPE_CHECKING:
    from ecopatch.raster.products import Calibration

__all__ = [
    "BandRef",
    "MaskRef",
    "Scene",
    "open_scene",
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
        # the bands of a pixel-interleaved file decoded once, with the mask; those of a band-interleaved
        # tiled file read in one call
        with band_reads(self._wanted_bands(names)):
            return self._read(names, window)

    def _wanted_bands(self, names: Sequence[str]) -> dict[str, list[int]]:
        """Per file, the band numbers a read of ``names`` (and the mask) asks for."""
        wanted: dict[str, list[int]] = {}
        for n in names:
            ref = self.band(n)
            wanted.setdefault(ref.path, []).append(ref.index)
        if self.mask is not None and self.mask.kind != "computed":
            wanted.setdefault(self.mask.path, []).append(self.mask.index)
        return wanted

    def _read(self, names: list[str], window: Window) -> Observation:
        out: dict[str, np.ndarray] = {}
        # the mask first: each band is then NaN wherever it or the bands before it say "not
        # valid", and only pixels a later band excludes need a second pass
        if self.mask is not None:
            valid = self._mask_clear(window)  # C order: the band loops walk rows
        else:
            valid = np.ones(window.shape, dtype=bool)
        late = False  # a band excluded pixels that bands read before it had kept
        together = read_reflectances([self.band(n) for n in names], self.grid, window, valid)
        if together is not None:  # the bands of one file in one pass, NaN wherever one is not valid
            out.update(zip(names, together))
        for k, n in enumerate(names if together is None else ()):
            ref = self.band(n)
            refl, cleared = read_reflectance(ref, self.grid, window, valid)
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
                       build_overviews: bool = False,
                       within: Sequence[tuple[float, float, float, float]] | None = None) -> Observation:
        """Every k-th pixel, from the files' overviews where they have them (see :mod:`ecopatch.raster.quicklook`)."""
        from ecopatch.raster.quicklook import read_decimated

        return read_decimated(self, aoi_bounds=aoi_bounds, aoi_crs=aoi_crs, margin_m=margin_m,
                              max_pixels=max_pixels, bands=bands, build_overviews=build_overviews, within=within)

    def read_sample(self, *, max_pixels: int = 1_000_000, bands: Sequence[str] | None = None) -> Observation:
        """A spatially even sample of the whole scene, in bounded time and memory.

        With overviews (as Sentinel-2 JP2 and most COGs have) this is a
        decimated read of the whole scene.  Without them a decimated read
        would still decode nearly every block of the file, so instead up to
        ``max_pixels`` are read as 256 × 256 windows on an even lattice
        across the scene: cheap whatever the raster's size.
        """
        names = list(bands) if bands is not None else list(self.bands)
        ds = open_dataset(self.band(names[0]).path)
        g = self.grid
        if ds.overviews(1) or g.height * g.width <= 4 * max_pixels:
            return self.read_decimated(max_pixels=max_pixels, bands=names)
        size = 256
        n = max(1, max_pixels // (size * size))
        k = max(1, int(math.sqrt(n)))
        rows = np.linspace(0, max(0, g.height - size), k).astype(int)
        cols = np.linspace(0, max(0, g.width - size), k).astype(int)
        parts = [self.read(names, Window(row_off=int(r), col_off=int(c),
                                         height=min(size, g.height), width=min(size, g.width)))
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
        elif not isinstance(mask, (str, os.PathLike)):  # a MaskProvider: clear(scene, grid) and a name
            ref = MaskRef(str(mask.name), 0, self.grid, "computed", provider=mask)
        else:
            path = str(mask)
            if not Path(path).exists():
                raise RasterReadError(f"{path}: no such cloud-mask file")
            g, _ = grid_of(path)
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

    def read_reach_px(self) -> int:
        """Pixels of this scene's grid beyond a window that :meth:`read` of it may touch, at most.

        A band on a whole-factor coarser grid (Sentinel-2's 20 m bands on the
        10 m grid, ``r`` = 2) is read in whole pixels of its own: ``r - 1``
        beyond a window that ends inside one.  The product mask is read with
        its cloud-growth margin (``cloud_buffer_m``, ``k`` pixels of the
        mask's grid) besides: ``(k + 1) * r - 1``.  Grids that are not a
        whole factor of this one are resampled; they are counted at one
        source pixel more, an estimate.  The passes set their windows back
        by this much more than their halo, so that a window's reads end at a
        multiple of the window size (:func:`ecopatch.engine.tiling.blocks_touching`).
        """
        res = self.grid.res[0] * ground_unit_m(self.grid)

        def reach(grid: Grid, pad: int) -> int:
            r = grid.res[0] * ground_unit_m(grid) / res
            if abs(r - round(r)) < 1e-9 and round(r) >= 1:
                return (pad + 1) * int(round(r)) - 1
            return (pad + 1) * math.ceil(r) + 1

        out = max((reach(ref.grid, 0) for _, ref in self.band_refs), default=0)
        m = self.mask
        if m is not None and m.kind != "computed":
            out = max(out, reach(m.grid, self._buffer_px(m.grid.res[0] * ground_unit_m(m.grid))))
        return out

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
            return computed_clear(self, self.grid.subgrid(window))
        # a mask on a whole-factor coarser grid (Sentinel-2 SCL at 20 m): clouds are grown on
        # its own grid, then repeated onto the window: 4x fewer pixels
        k = self._buffer_px(m.grid.res[0] * ground_unit_m(m.grid))
        whole = whole_pixels(m.path, m.index, m.grid, self.grid, window, fill=0, pad=k)
        if whole is not None:
            raw, rows, cols = whole
            if rows is None or cols is None:
                rows, cols = np.arange(window.height), np.arange(window.width)
            return grow_clouds_at(raw, m.kind, k, rows, cols)
        k = self._buffer_px(self.grid.res[0] * ground_unit_m(self.grid))
        big = window.pad(k)
        raw = read_resampled(m.path, m.index, m.grid, self.grid, big, categorical=True)
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
    from ecopatch.raster.sensors import SENSORS

    return tuple(SENSORS)


def _rebuild_scene(sensor_name, band_refs, grid, date, mask, source, metadata, sensor_obj,
                   cloud_buffer_m=0.0, product=None):
    sensor = sensor_obj if sensor_obj is not None else get_sensor(sensor_name)
    return Scene(sensor, band_refs, grid, date, mask, source, metadata, cloud_buffer_m, product)


def _band_words(name: str, ref: BandRef) -> str:
    where = ref.band_id or f"band {ref.index}"
    if ref.band_id and ref.band_id != str(ref.index) and Path(ref.path).suffix.lower() not in (".vrt",):
        try:
            multi = open_dataset(ref.path).count > 1
        except RasterReadError:
            multi = False
        if multi:
            where = f"{ref.band_id} (band {ref.index})"
    return f"{name}={where} ×{ref.scale:.6g}{ref.offset:+.6g}"


def computed_clear(scene: Scene, grid: Grid) -> np.ndarray:
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
    and sensor profiles (see :mod:`ecopatch.raster.products` and the README's
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
        Product type (see :data:`ecopatch.raster.sensors.SENSORS`); identified from
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
        shipped, see :func:`ecopatch.raster.gaofen.load_calibration`) to use
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
    from ecopatch.raster.products import open_product

    if bands is not None and not isinstance(bands, Mapping):
        raise ConfigError(f"bands={bands!r}: for a file or product, give a mapping of band role -> band number or "
                          "band ID, e.g. bands={'red': 3, 'nir': 4}")

    return open_product(source, sensor, bands, date, scale=scale, offset=offset, nodata=nodata,
                        cloud_buffer_m=cloud_buffer_m, haze=haze, cloud_mask=cloud_mask, dem=dem,
                        calibration=calibration, pansharpen=pansharpen, workdir=workdir)
