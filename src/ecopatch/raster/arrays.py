"""In-memory raster sources: numpy (or dask) arrays with a grid, as read from xarray or rasterio.

:class:`ArraySource` is the :class:`~ecopatch.raster.source.RasterSource` of
arrays already in memory (or lazily computed, as dask arrays from odc-stac
or stackstac are): one 2-D array per band on one
:class:`~ecopatch.geo.grid.Grid`, values turned into reflectance as a file's
are (``value × scale + offset``; no data, the saturation value of integer
arrays and reflectance outside the valid range are not valid), with an
optional cloud mask.  :func:`from_array` makes one from numpy arrays and an
affine transform; :func:`ecopatch.raster.xarray_source.from_xarray` and
:func:`from_rasterio` from the other layouts.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ecopatch.errors import InputDataError, MissingBandError
from ecopatch.geo.grid import Grid, Window
from ecopatch.raster.masks import MASK_KINDS, grow_clouds, grow_clouds_at
from ecopatch.raster.ongrid import decimated_grid, ground_unit_m
from ecopatch.raster.radiometry import to_reflectance
from ecopatch.raster.sensors import SensorProfile, get_sensor
from ecopatch.raster.source import MaskProvider, Observation, ProductInfo, SourceBase

__all__ = ["ArraySource", "ArrayValues", "from_array", "from_rasterio", "parse_date"]


def parse_date(value: Any, what: str) -> _dt.date:
    """A date from a ``date``/``datetime``/numpy ``datetime64``/ISO text, or InputDataError naming ``what``."""
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise InputDataError(f"{what}: the date is NaT (not a time); pass date=")
        return _dt.date.fromisoformat(str(value.astype("datetime64[D]")))
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        return value.to_pydatetime().date()
    text = str(value).strip()
    try:
        return _dt.date.fromisoformat(text[:10])
    except ValueError:
        raise InputDataError(f"{what}: {value!r} is not a date; pass date='YYYY-MM-DD'") from None


def _generic_profile(bands: Sequence[str], reflectance: bool = True) -> SensorProfile:
    return SensorProfile(
        "arrays", "reflectance arrays" if reflectance else "brightness arrays", {b: b for b in bands},
        order=tuple(bands), reflectance=reflectance,
        quantity="surface reflectance" if reflectance else "relative brightness",
    )


class ArraySource(SourceBase):
    """A :class:`~ecopatch.raster.source.RasterSource` over arrays: named bands on one grid.

    Parameters
    ----------
    bands : mapping of str to array-like, shape (rows, cols)
        Common band name (``"blue"``, ``"green"``, ``"red"``, ``"nir"``,
        ``"swir1"``, ``"swir2"``) -> values; numpy or dask arrays (read a
        window at a time, so a lazy array is computed window by window).
    grid : Grid
        The arrays' grid (shape ``(rows, cols)``, affine transform, CRS).
    date : date, optional
        Acquisition date; the analyses order and name patches by it.
    scale, offset : float or mapping of str to float
        ``reflectance = value × scale + offset``, for all bands or per band
        (default 1 and 0: the arrays are reflectance).
    nodata : float or mapping of str to float, optional
        The value meaning no data (NaN always does).
    mask : array-like or (array-like, str), optional
        A cloud mask on ``grid``: a boolean array (True = clear), or a
        quality band and its kind (``"scl"``, ``"qa_pixel"``, ``"fmask"``,
        ``"alpha"``, ``"cloud01"``) decoded as for files.
    cloud_buffer_m : float
        Ground distance (m) the clouds of an ``"scl"`` or ``"qa_pixel"`` mask
        are grown by (files: 20 m).
    sensor : str or SensorProfile, optional
        The product type (``"sentinel2_l2a"`` ...): its description, and the
        cloud detection used for Sentinel-2 without a mask; default a generic
        reflectance profile.
    source : str
        What the arrays came from, for messages and provenance.
    metadata : mapping, optional
        Facts kept with the source (``"haze_removed"``: per band,
        reflectance subtracted).
    """

    def __init__(
        self,
        bands: Mapping[str, Any],
        grid: Grid,
        date: _dt.date | None = None,
        *,
        scale: float | Mapping[str, float] = 1.0,
        offset: float | Mapping[str, float] = 0.0,
        nodata: float | None | Mapping[str, float | None] = None,
        mask: Any = None,
        cloud_buffer_m: float = 0.0,
        sensor: str | SensorProfile | None = None,
        source: str = "arrays",
        metadata: Mapping[str, Any] | None = None,
        provider: MaskProvider | None = None,
    ) -> None:
        if not bands:
            raise InputDataError(f"{source}: no band given")
        layers: dict[str, Any] = {}
        for name, arr in bands.items():
            if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
                arr = np.asarray(arr)
            if tuple(arr.shape) != tuple(grid.shape):
                raise InputDataError(
                    f"{source}: band {name!r} has shape {tuple(arr.shape)}, the grid {tuple(grid.shape)}; give one "
                    "2-D array (rows, cols) per band on the grid"
                )
            layers[str(name)] = arr
        self._layers = layers
        self._grid = grid
        self._date = date
        self._scales = {n: (_per_band(scale, n, 1.0), _per_band(offset, n, 0.0)) for n in layers}
        self._nodata = {n: _per_band(nodata, n, None) for n in layers}
        self._mask = _mask_layer(mask, grid, source)
        self._provider = provider
        self.cloud_buffer_m = float(cloud_buffer_m)
        self._sensor = sensor if isinstance(sensor, SensorProfile) else (
            get_sensor(sensor) if sensor is not None else _generic_profile(list(layers)))
        self._source = source
        self._metadata = dict(metadata or {})

    # -- the protocol's values -------------------------------------------------
    @property
    def grid(self) -> Grid:
        """The arrays' grid."""
        return self._grid

    @property
    def date(self) -> _dt.date | None:
        """Acquisition date."""
        return self._date

    @property
    def bands(self) -> tuple[str, ...]:
        """Common band names."""
        return tuple(self._layers)

    @property
    def sensor(self) -> SensorProfile:
        """The product type (a generic reflectance profile unless given)."""
        return self._sensor

    @property
    def source(self) -> str:
        """What the arrays came from."""
        return self._source

    @property
    def scales(self) -> dict[str, tuple[float, float]]:
        """Per band ``(scale, offset)``."""
        return dict(self._scales)

    @property
    def nodata(self) -> dict[str, float | None]:
        """Per band, the value meaning no data."""
        return dict(self._nodata)

    @property
    def metadata(self) -> Mapping[str, Any]:
        """Facts kept with the source."""
        return dict(self._metadata)

    @property
    def layers(self) -> Mapping[str, Any]:
        """The arrays themselves, by band name (as given: numpy or dask)."""
        return dict(self._layers)

    @property
    def info(self) -> ProductInfo:
        """What the source is: the sensor profile's description, from arrays."""
        note = "" if self._mask is not None or self._provider is not None else (
            f"{self.source}: no cloud mask given (mask=...): clouds and their shadows count as observed ground")
        return ProductInfo(self.sensor.description, level=self.sensor.level, quantity=self.sensor.quantity,
                           evidence=(f"arrays from {self.source}",), mask_note=note)

    @property
    def mask_status(self) -> dict[str, Any]:
        """Which cloud mask the source has."""
        if self._provider is not None:
            return {"kind": "computed", "source": self._provider.name, "note": f"computed by {self._provider.name}"}
        if self._mask is None:
            return {"kind": "none", "source": None, "note": self.info.mask_note}
        kind = self._mask[1]
        return {"kind": kind, "source": self.source, "note": MASK_KINDS.get(kind, "clear-pixel array")}

    # -- reading -----------------------------------------------------------------
    def read(self, bands: Sequence[str] | None = None, window: Window | None = None) -> Observation:
        """Reflectance of ``bands`` in ``window`` of :attr:`grid` (NaN outside the grid and where not valid)."""
        names = list(bands) if bands is not None else list(self.bands)
        for n in names:
            self._check(n)
        window = window or self._grid.window
        valid = self._clear(window) if (self._mask is not None or self._provider is not None) \
            else np.ones(window.shape, dtype=bool)
        out: dict[str, np.ndarray] = {}
        for n in names:
            raw = self._raw(self._layers[n], window)
            scale, offset = self._scales[n]
            refl, ok = to_reflectance(raw, scale, offset, self._nodata[n], self._layers[n].dtype)
            out[n] = refl
            valid &= ok
        if not self.sensor.reflectance and out:
            dark = np.ones(window.shape, dtype=bool)
            for v in out.values():
                dark &= v <= 0
            valid &= ~dark
        invalid = ~valid
        for n in names:
            np.copyto(out[n], np.float32(np.nan), where=invalid)
        return Observation(out, valid, self._grid.subgrid(window))

    def read_decimated(self, *, aoi_bounds: tuple[float, float, float, float] | None = None, aoi_crs: Any = None,
                       margin_m: float = 0.0, max_pixels: int = 1_000_000, bands: Sequence[str] | None = None,
                       build_overviews: bool = False,
                       within: Sequence[tuple[float, float, float, float]] | None = None) -> Observation:
        """Every k-th pixel (nearest) of the arrays over the area; only those pixels are read.

        ``build_overviews`` does not apply to arrays.  The mask's clouds are
        grown at the decimated resolution, as for files.  Pixels outside
        ``within`` (rectangles in ``aoi_crs``) are NaN and not valid, as for
        files; all are read (they are in memory or in the arrays' chunks).
        """
        names = list(bands) if bands is not None else list(self.bands)
        for n in names:
            self._check(n)
        dgrid = decimated_grid(self, aoi_bounds=aoi_bounds, aoi_crs=aoi_crs, margin_m=margin_m,
                               max_pixels=max_pixels)
        g = self._grid
        # the source pixel under each decimated pixel's centre (north-up grids)
        inv = ~g.transform
        cx = dgrid.transform.c + dgrid.transform.a * (np.arange(dgrid.width) + 0.5)
        cy = dgrid.transform.f + dgrid.transform.e * (np.arange(dgrid.height) + 0.5)
        cols = np.clip(np.floor((inv * (cx, np.full_like(cx, cy[0])))[0]).astype(np.int64), 0, g.width - 1)
        rows = np.clip(np.floor((inv * (np.full_like(cy, cx[0]), cy))[1]).astype(np.int64), 0, g.height - 1)
        from ecopatch.raster.quicklook import wanted_pixels

        wanted = wanted_pixels(dgrid, within, aoi_crs)
        out: dict[str, np.ndarray] = {}
        valid = np.ones(dgrid.shape, dtype=bool) if wanted is None else wanted.copy()
        for n in names:
            arr = self._layers[n]
            scale, offset = self._scales[n]
            refl, ok = to_reflectance(np.asarray(arr[rows][:, cols]), scale, offset, self._nodata[n], arr.dtype)
            out[n] = refl
            valid &= ok
        if self._provider is not None:
            valid &= np.asarray(self._provider.clear(self._copy(_provider=None, _mask=None), dgrid), dtype=bool)
        elif self._mask is not None:
            arr, kind, f = self._mask
            raw = np.asarray(arr[rows // f][:, cols // f])
            if kind == "clear":
                valid &= np.nan_to_num(raw.astype(np.float32), nan=0.0) > 0
            else:
                valid &= grow_clouds(raw, kind, self._buffer_px(dgrid.res[0] * ground_unit_m(dgrid)))
        if not self.sensor.reflectance and out:
            dark = np.ones(dgrid.shape, dtype=bool)
            for v in out.values():
                dark &= v <= 0
            valid &= ~dark
        for n in names:
            out[n][~valid] = np.nan
        return Observation(out, valid, dgrid)

    def read_sample(self, *, max_pixels: int = 1_000_000, bands: Sequence[str] | None = None) -> Observation:
        """A decimated read of the whole source (every k-th pixel, at most ``max_pixels``)."""
        return self.read_decimated(max_pixels=max_pixels, bands=bands)

    def dask_chunks(self) -> tuple[int, int] | None:
        """Rows and columns of the largest chunk of the dask-backed arrays (bands and mask); None: none is dask."""
        arrays = list(self._layers.values()) + ([self._mask[0]] if self._mask is not None else [])
        sides = [(max(c[-2]), max(c[-1])) for a in arrays
                 if isinstance(c := getattr(a, "chunks", None), tuple) and len(c) >= 2 and isinstance(c[-1], tuple)]
        return (max(r for r, _ in sides), max(c for _, c in sides)) if sides else None

    def files(self) -> tuple[tuple[str, int, Grid], ...]:
        """No file: arrays need no read plan."""
        return ()

    def data_key(self) -> frozenset[Any]:
        """The identities of the band arrays: the same arrays, the same imagery."""
        return frozenset((n, id(a)) for n, a in self._layers.items())

    # -- copies ------------------------------------------------------------------
    def _copy(self, **changes: Any) -> ArraySource:
        new = object.__new__(ArraySource)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    def with_mask(self, mask: Any, *, cloud_buffer_m: float | None = None) -> ArraySource:
        """A copy with another cloud mask: a :class:`MaskProvider`, a mask as for ``mask=``, or None."""
        if mask is not None and hasattr(mask, "clear") and hasattr(mask, "name") and not hasattr(mask, "shape"):
            new = self._copy(_provider=mask, _mask=None)
        else:
            new = self._copy(_provider=None, _mask=_mask_layer(mask, self._grid, self._source))
        if cloud_buffer_m is not None:
            new.cloud_buffer_m = float(cloud_buffer_m)
        return new

    def with_date(self, date: _dt.date) -> ArraySource:
        """A copy with another acquisition date."""
        return self._copy(_date=date)

    def provenance(self) -> dict[str, Any]:
        """What was read and how, as plain JSON-able values (as :meth:`Scene.provenance`)."""
        crs = self._grid.crs
        epsg = crs.to_epsg()
        return {
            "source": self.source,
            "sensor_profile": self.sensor.name,
            "product": self.info.product,
            "platform": "", "instrument": "", "level": self.sensor.level, "quantity": self.sensor.quantity,
            "date": self.date.isoformat() if self.date else None,
            "identified_by": list(self.info.evidence),
            "assumed": [],
            "bands": {n: {"band_id": n, "file": None, "band": i + 1, "scale": self._scales[n][0],
                          "offset": self._scales[n][1], "nodata": _json_nodata(self._nodata[n])}
                      for i, n in enumerate(self._layers)},
            "unused_bands": [],
            "mask": dict(self.mask_status, cloud_buffer_m=self.cloud_buffer_m),
            "band_roles": {"present": [b for b, h in self.band_roles.items() if h],
                           "missing": list(self.missing_roles)},
            "degraded": self.degraded(),
            "processing": [],
            "grid": {"shape": list(self._grid.shape), "res": list(self._grid.res),
                     "crs": f"EPSG:{epsg}" if epsg else crs.to_wkt()},
        }

    def __repr__(self) -> str:
        ms = self.mask_status
        return (f"ArraySource({self.sensor.name}, date={self.date}, source={self.source!r}, "
                f"bands={list(self.bands)}, mask={ms['kind']}, grid={self._grid!r})")

    # -- internals -----------------------------------------------------------------
    def _check(self, name: str) -> None:
        if name not in self._layers:
            raise MissingBandError(f"{self.source}: no {name!r} band (the source has {list(self.bands)})")

    def _raw(self, arr: Any, window: Window) -> np.ndarray:
        """``window`` of ``arr`` (boundless: outside the grid is NaN, or the saturation value of integers)."""
        inner = window.intersection(self._grid.window)
        dtype = np.dtype(arr.dtype)
        if inner is not None and inner == window:
            return np.asarray(arr[window.slices])
        fill: float = float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else np.nan
        if np.issubdtype(dtype, np.bool_):
            dtype, fill = np.dtype(np.float32), np.nan
        out = np.full(window.shape, fill, dtype=dtype)
        if inner is not None:
            out[inner.relative_to(window).slices] = np.asarray(arr[inner.slices])
        return out

    def _buffer_px(self, res_m: float) -> int:
        if self._mask is None or self.cloud_buffer_m <= 0 or self._mask[1] not in ("scl", "qa_pixel"):
            return 0
        return int(math.ceil(self.cloud_buffer_m / res_m))

    def _clear(self, window: Window) -> np.ndarray:
        if self._provider is not None:
            bare = self._copy(_provider=None, _mask=None)
            out = np.asarray(self._provider.clear(bare, self._grid.subgrid(window)), dtype=bool)
            if out.shape != window.shape:
                raise InputDataError(f"cloud mask {self._provider.name!r} returned shape {out.shape} for a "
                                     f"window of {window.shape}; MaskProvider.clear must return one value per pixel")
            return np.ascontiguousarray(out)
        assert self._mask is not None
        arr, kind, f = self._mask
        if kind == "clear":
            raw = self._raw(arr, window)
            return np.ascontiguousarray(np.nan_to_num(raw.astype(np.float32), nan=0.0) > 0)
        # clouds grown on the mask's own pixels, then each repeated onto the window (as for files)
        k = self._buffer_px(self._grid.res[0] * f * ground_unit_m(self._grid))
        r0, c0 = window.row_off // f, window.col_off // f
        r1, c1 = (window.row_end - 1) // f + 1, (window.col_end - 1) // f + 1
        big = Window(row_off=r0 - k, col_off=c0 - k, height=r1 - r0 + 2 * k, width=c1 - c0 + 2 * k)
        raw = _boundless(arr, big, 0)
        rows = np.arange(window.row_off, window.row_end) // f - big.row_off
        cols = np.arange(window.col_off, window.col_end) // f - big.col_off
        return grow_clouds_at(raw, kind, k, rows, cols)


def _boundless(arr: Any, window: Window, fill: float) -> np.ndarray:
    """``window`` of a 2-D array, ``fill`` outside it."""
    h, w = int(arr.shape[0]), int(arr.shape[1])
    out = np.full(window.shape, fill, dtype=np.dtype(arr.dtype))
    inner = window.intersection(Window(row_off=0, col_off=0, height=h, width=w))
    if inner is not None:
        out[inner.relative_to(window).slices] = np.asarray(arr[inner.slices])
    return out


def _per_band(value: Any, name: str, default: Any) -> Any:
    if isinstance(value, Mapping):
        v = value.get(name, default)
    else:
        v = value
    if v is None:
        return default if default is None else v
    return float(v)


def _json_nodata(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _mask_layer(mask: Any, grid: Grid, source: str) -> tuple[Any, str, int] | None:
    """``mask=`` as ``(array, kind, factor)``; a bare array is a clear-pixel array (kind ``"clear"``).

    ``factor`` is how many grid pixels a mask pixel spans along each axis: 1,
    or a whole factor for a quality band kept at its own coarser resolution
    (Sentinel-2 SCL at 20 m under 10 m bands), aligned with the grid's
    top-left corner.
    """
    if mask is None:
        return None
    if isinstance(mask, tuple) and len(mask) == 2 and isinstance(mask[1], str):
        arr, kind = mask
        if kind not in MASK_KINDS:
            raise InputDataError(f"{source}: mask kind {kind!r}; use one of {sorted(MASK_KINDS)} (or a boolean "
                                 "array, True = clear)")
    else:
        arr, kind = mask, "clear"
    if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
        arr = np.asarray(arr)
    shape, want = tuple(int(v) for v in arr.shape), tuple(grid.shape)
    factor = 1
    if shape != want:
        k = -(-want[0] // shape[0]) if len(shape) == 2 and shape[0] else 0
        if kind == "clear" or k < 2 or -(-want[1] // k) != shape[1] or -(-want[0] // k) != shape[0]:
            raise InputDataError(
                f"{source}: the mask has shape {shape}, the grid {want}; give it on the grid, or a quality band "
                "at a whole-factor coarser resolution aligned with the grid's corner (SCL at 20 m under 10 m bands)"
            )
        factor = k
    return arr, kind, factor


class ArrayValues:
    """Raw values of a raster in memory (a class map, an index), for :func:`ecopatch.patch_statistics`.

    Parameters
    ----------
    data : array-like, shape (bands, rows, cols) or (rows, cols)
    grid : Grid
    nodata : float, optional
    source : str
    """

    def __init__(self, data: Any, grid: Grid, nodata: float | None = None, source: str = "array") -> None:
        if not hasattr(data, "ndim"):
            data = np.asarray(data)
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3 or tuple(data.shape[1:]) != tuple(grid.shape):
            raise InputDataError(f"{source}: values of shape {tuple(data.shape)} do not fit the grid {grid.shape}")
        self.data, self._grid, self._nodata, self._source = data, grid, nodata, source

    @property
    def grid(self) -> Grid:
        """The values' grid."""
        return self._grid

    @property
    def source(self) -> str:
        """What the values came from."""
        return self._source

    @property
    def count(self) -> int:
        """Number of bands."""
        return int(self.data.shape[0])

    def band_nodata(self, band: int) -> float | None:
        """The value meaning no data in ``band`` (1-based)."""
        return self._nodata

    def read_values(self, band: int, window: Window) -> np.ndarray:
        """Values of ``band`` (1-based) in ``window`` as float, NaN outside the grid."""
        out = np.full(window.shape, np.nan, dtype=np.float64)
        inner = window.intersection(self._grid.window)
        if inner is not None:
            out[inner.relative_to(window).slices] = np.asarray(self.data[band - 1][inner.slices])
        return out


def from_array(
    data: Any,
    transform: Any,
    crs: Any,
    bands: Sequence[str],
    date: str | _dt.date | None,
    **options: Any,
) -> ArraySource:
    """A raster source from a numpy (or dask) array, an affine transform and a CRS.

    Parameters
    ----------
    data : array-like, shape (bands, rows, cols), or mapping of band name -> (rows, cols)
        The values; a mapping ignores ``bands``' order but still needs the names.
    transform : affine.Affine or sequence of 6 floats
        Pixel -> CRS coordinates of the top-left corner (rasterio/GDAL order
        ``a, b, c, d, e, f``); north-up only.
    crs : CRS-like
        Anything pyproj understands (``"EPSG:32650"``, WKT, a CRS object).
    bands : sequence of str
        Common band name of each band (``["blue", "green", "red", "nir", "swir1", "swir2"]``).
    date : str or date
        Acquisition date.
    **options
        ``scale``, ``offset``, ``nodata``, ``mask``, ``cloud_buffer_m``,
        ``sensor``, ``source``, ``metadata``: see :class:`ArraySource`.

    Examples
    --------
    >>> import numpy as np
    >>> from affine import Affine
    >>> refl = np.full((2, 4, 4), 0.2, dtype="float32")
    >>> src = from_array(refl, Affine(10, 0, 500000, 0, -10, 3300000), "EPSG:32650", ["red", "nir"], "2024-09-12")
    >>> src.read(["nir"]).bands["nir"].mean()
    np.float32(0.2)
    """
    from affine import Affine

    from ecopatch.geo.geodesy import as_crs

    t = transform if isinstance(transform, Affine) else Affine(*list(transform)[:6])
    if t.b != 0 or t.d != 0:
        raise InputDataError(f"transform {tuple(t)[:6]} is rotated; warp the arrays north-up first")
    if isinstance(data, Mapping):
        layers = {str(k): v for k, v in data.items()}
    else:
        if not hasattr(data, "ndim"):
            data = np.asarray(data)
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3 or data.shape[0] != len(bands):
            raise InputDataError(f"array of shape {tuple(data.shape)} with {len(bands)} band name(s) {list(bands)}; "
                                 "give (bands, rows, cols) and one name per band")
        layers = {str(b): data[i] for i, b in enumerate(bands)}
    shape = tuple(next(iter(layers.values())).shape)
    if date is None:
        raise InputDataError("from_array: no date given; pass date='YYYY-MM-DD' (the acquisition date)")
    grid = Grid((int(shape[0]), int(shape[1])), t, as_crs(crs, what="from_array crs"))
    return ArraySource(layers, grid, parse_date(date, "from_array date"), **options)


def from_rasterio(ds: Any, *, bands: Sequence[str] | Mapping[str, int] | None = None,
                  date: str | _dt.date | None = None, **options: Any) -> ArraySource:
    """A raster source from an open rasterio dataset (read into memory; a file on disk: see the notes).

    Parameters
    ----------
    ds : rasterio.io.DatasetReader
        An open dataset (a file, a ``MemoryFile``, a ``/vsimem/`` dataset).
    bands : sequence of str or mapping of str to int, optional
        Common name of each band, in order, or name -> band number; default
        the band descriptions.
    date : str or date, optional
        Acquisition date; default the ``ACQUISITION_DATE``/``DATE`` tag.
    **options
        As for :class:`ArraySource`; ``scale``/``offset``/``nodata`` default
        to the dataset's own (``scales``, ``offsets``, ``nodatavals``).

    Notes
    -----
    :func:`ecopatch.open_scene` gives a dataset whose file is on disk to the
    file readers (windowed, cached block reads, product identification); this
    function is for datasets that only live in memory.
    """
    names: dict[str, int]
    if bands is None:
        desc = [d for d in (ds.descriptions or ())]
        if not desc or any(not d for d in desc):
            raise InputDataError(f"{ds.name}: the bands have no descriptions; pass bands=['blue', 'green', ...]")
        names = {str(d).lower(): i + 1 for i, d in enumerate(desc)}
    elif isinstance(bands, Mapping):
        names = {str(k): int(v) for k, v in bands.items()}
    else:
        names = {str(b): i + 1 for i, b in enumerate(bands)}
    if date is None:
        tags = ds.tags()
        raw = next((tags[k] for k in ("ACQUISITION_DATE", "DATE", "TIFFTAG_DATETIME", "datetime") if k in tags), None)
        if raw is None:
            raise InputDataError(f"{ds.name}: no acquisition date (no ACQUISITION_DATE or DATE tag); pass date=")
        date = parse_date(raw.replace(":", "-", 2) if raw[4:5] == ":" else raw, f"{ds.name} date tag")
    if ds.crs is None:
        raise InputDataError(f"{ds.name}: the dataset has no CRS; assign one, or give the file to open_scene")
    first = next(iter(names.values()))
    options.setdefault("scale", {n: float(ds.scales[i - 1]) for n, i in names.items()})
    options.setdefault("offset", {n: float(ds.offsets[i - 1]) for n, i in names.items()})
    options.setdefault("nodata", ds.nodatavals[first - 1])
    options.setdefault("source", str(ds.name))
    layers = {n: ds.read(i) for n, i in names.items()}
    return from_array(layers, ds.transform, ds.crs, list(names), date, **options)
