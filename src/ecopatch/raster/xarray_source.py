"""xarray inputs as raster sources: the rioxarray, odc-stac and stackstac layouts.

:func:`from_xarray` reads what each layout records and makes an
:class:`~ecopatch.raster.arrays.ArraySource` over the object's arrays (a
window at a time: dask-backed objects are computed window by window):

============  ====================================  ==========================  ==============================
layout        bands                                 CRS                         date
============  ====================================  ==========================  ==============================
rioxarray     a ``band`` dimension (names from      ``rio.crs``, or the         ``date=``, ``attrs``
              ``long_name``) or one variable per    ``spatial_ref`` coordinate  (``date``, ``datetime``,
              band (``band_as_variable=True``)      (``crs_wkt``)               ``ACQUISITION_DATE``)
odc-stac      one variable per band, dims           ``spatial_ref`` coordinate  a ``time`` coordinate of
              ``(time, y, x)``                      (``crs_wkt``), ``odc.crs``  length 1
stackstac     a ``band`` dimension with the asset   ``attrs["crs"]``, the       a ``time`` coordinate of
              names, dims ``(time, band, y, x)``    ``epsg`` coordinate         length 1
============  ====================================  ==========================  ==============================

The pixel grid comes from the ``x``/``y`` coordinates (pixel centres), or
else from ``rio.transform()``, ``attrs["transform"]`` or the
``GeoTransform`` of the ``spatial_ref`` coordinate.  Band names may be the
analyses' common names (``blue``, ``green``, ``red``, ``nir``, ``swir1``,
``swir2``), STAC common names (``swir16``, ``swir22``) or product band IDs
(``B04``, ``SR_B4``); a quality variable (``scl``, ``qa_pixel``, ``fmask``)
becomes the cloud mask.  What is missing raises an
:class:`~ecopatch.errors.InputDataError` naming the field and the fix.

xarray is an optional dependency: it is only imported by the caller's
objects; this module only inspects them.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ecopatch.errors import InputDataError
from ecopatch.geo.grid import Grid
from ecopatch.raster.arrays import ArraySource, ArrayValues, parse_date
from ecopatch.raster.sensors import SensorProfile, get_sensor

__all__ = ["from_xarray", "is_xarray", "to_xarray", "values_from_xarray"]

#: STAC ``eo:common_name`` values and other spellings -> ecopatch's band roles.
BAND_ALIASES = {
    "swir16": "swir1", "swir1": "swir1", "swir_1": "swir1", "swir22": "swir2", "swir2": "swir2", "swir_2": "swir2",
    "blue": "blue", "green": "green", "red": "red", "nir": "nir", "nir08": "nir08", "coastal": "coastal",
    "rededge": "rededge1", "rededge1": "rededge1", "rededge2": "rededge2", "rededge3": "rededge3",
}
#: Quality variables that become the cloud mask, and how they are decoded.
MASK_VARIABLES = {"scl": "scl", "qa_pixel": "qa_pixel", "fmask": "fmask", "cloud": "cloud01", "alpha": "alpha"}
#: Attributes that may hold the acquisition date.
DATE_ATTRS = ("date", "acquisition_date", "ACQUISITION_DATE", "datetime", "DATE_ACQUIRED", "start_datetime")
#: Sensor profiles tried for product band IDs (``B04``, ``SR_B4``) when no sensor is given.
_ID_PROFILES = ("sentinel2_l2a", "landsat_oli_c2l2")


def is_xarray(obj: Any) -> bool:
    """True for an xarray Dataset or DataArray (without importing xarray)."""
    return type(obj).__module__.startswith("xarray.") and type(obj).__name__ in ("Dataset", "DataArray")


def from_xarray(
    obj: Any,
    *,
    bands: Sequence[str] | Mapping[str, str] | None = None,
    date: str | _dt.date | None = None,
    crs: Any = None,
    sensor: str | SensorProfile | None = None,
    scale: float | Mapping[str, float] | None = None,
    offset: float | Mapping[str, float] | None = None,
    nodata: float | Mapping[str, float | None] | None = None,
    mask: Any = None,
    cloud_buffer_m: float | None = None,
) -> ArraySource:
    """A raster source over an xarray Dataset or DataArray (rioxarray, odc-stac or stackstac layout).

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Spatial dims ``y``/``x`` (or ``latitude``/``longitude``); at most one
        ``time`` value.
    bands : sequence of str or mapping, optional
        The band role of each band, in order (a DataArray without band
        names), or role -> variable/band name (``{"nir": "B08"}``); default
        from the names.
    date : str or date, optional
        Acquisition date; default the ``time`` coordinate or a date attribute.
    crs : CRS-like, optional
        Overrides the CRS the object records.
    sensor : str or SensorProfile, optional
        The product (``"sentinel2_l2a"``): its band IDs name the variables and
        its scale applies to integer values without a ``scale_factor``.
    scale, offset : float or mapping, optional
        ``reflectance = value × scale + offset``; default the variables'
        ``scale_factor``/``add_offset``, else the sensor's, else 1 and 0 for
        floating-point values (integer values without any need ``scale=``).
    nodata : float or mapping, optional
        Default the variables' ``nodata``/``_FillValue`` attribute.
    mask : array-like or (array-like, kind), optional
        A cloud mask (see :class:`~ecopatch.raster.arrays.ArraySource`);
        default a quality variable of the Dataset (``scl``, ``qa_pixel``, ``fmask``).
    cloud_buffer_m : float, optional
        Ground distance the mask's clouds are grown by (default 20 m for
        SCL and QA_PIXEL, as for files; 0 otherwise).

    Returns
    -------
    ArraySource

    Raises
    ------
    InputDataError
        No CRS, no date, several dates, no band names, integer values
        without a scale, or dims that are not ``y``/``x`` (the message names
        the field and what to pass).
    """
    label = f"xarray.{type(obj).__name__}" + (f" {obj.name!r}" if getattr(obj, "name", None) else "")
    prof = sensor if isinstance(sensor, SensorProfile) else (get_sensor(sensor) if sensor is not None else None)
    when = parse_date(date, f"{label} date=") if date is not None else _date_of(obj, label)
    obj = _one_time(obj, label)
    ydim, xdim = _spatial_dims(obj, label)
    variables = _variables(obj, label, bands, ydim, xdim)  # name as found -> 2-D DataArray (y, x)
    roles, quality = _roles(variables, bands, prof, label)
    first = variables[next(iter(roles.values()))]
    grid = Grid((int(first.sizes[ydim]), int(first.sizes[xdim])), _transform(obj, first, ydim, xdim, label),
                _crs(obj, label) if crs is None else _as_crs(crs, label))
    layers = {role: _data(variables[name], ydim, xdim) for role, name in roles.items()}
    attrs = {role: dict(variables[name].attrs) for role, name in roles.items()}
    scales = _per_role(scale, attrs, ("scale_factor", "scales"), prof.scale if prof else None)
    offsets = _per_role(offset, attrs, ("add_offset", "offsets"), prof.offset if prof else None)
    for role, arr in layers.items():
        if scales[role] is None:
            if np.issubdtype(np.dtype(arr.dtype), np.integer):
                raise InputDataError(
                    f"{label}: band {role!r} ({roles[role]}) holds integers with no scale_factor attribute; pass "
                    "scale= (and offset=), e.g. scale=0.0001 for Sentinel-2 L2A or Landsat digital numbers of "
                    "that kind, or sensor='sentinel2_l2a'"
                )
            scales[role] = 1.0
        if offsets[role] is None:
            offsets[role] = 0.0
    nd = nodata if nodata is not None else {role: _nodata_attr(a) for role, a in attrs.items()}
    if mask is None and quality is not None:
        qname, kind = quality
        mask = (_native_quality(_data(variables[qname], ydim, xdim)), kind)
    mask_kind = mask[1] if isinstance(mask, tuple) else None
    if cloud_buffer_m is None:
        cloud_buffer_m = 20.0 if mask_kind in ("scl", "qa_pixel") else 0.0
    scale_of = {r: float(v if v is not None else 1.0) for r, v in scales.items()}
    offset_of = {r: float(v if v is not None else 0.0) for r, v in offsets.items()}
    return ArraySource(layers, grid, when, scale=scale_of, offset=offset_of, nodata=nd, mask=mask,
                       cloud_buffer_m=cloud_buffer_m, sensor=prof, source=label)


def values_from_xarray(obj: Any, *, crs: Any = None) -> ArrayValues:
    """Raw values of an xarray DataArray ``(y, x)`` or ``(band, y, x)`` (a class map), for patch statistics."""
    label = f"xarray.{type(obj).__name__}" + (f" {obj.name!r}" if getattr(obj, "name", None) else "")
    if type(obj).__name__ == "Dataset":
        if len(obj.data_vars) != 1:
            raise InputDataError(f"{label}: {len(obj.data_vars)} variables; give the one DataArray to measure")
        obj = next(iter(obj.data_vars.values()))
    obj = _one_time(obj, label)
    ydim, xdim = _spatial_dims(obj, label)
    other = [d for d in obj.dims if d not in (ydim, xdim)]
    da = obj.transpose(*other, ydim, xdim)
    grid = Grid((int(da.sizes[ydim]), int(da.sizes[xdim])), _transform(obj, da, ydim, xdim, label),
                _crs(obj, label) if crs is None else _as_crs(crs, label))
    return ArrayValues(da.data, grid, _nodata_attr(da.attrs), label)


# ---------------------------------------------------------------------------
# What each layout records
# ---------------------------------------------------------------------------
def _date_of(obj: Any, label: str) -> _dt.date:
    if "time" in obj.coords:
        t = np.atleast_1d(np.asarray(obj.coords["time"].values))
        if t.size == 1:
            return parse_date(t[0], f"{label} coordinate 'time'")
        raise InputDataError(
            f"{label}: the 'time' coordinate has {t.size} values ({str(t[0])[:10]} ... {str(t[-1])[:10]}); an "
            "analysis reads one date per source: select it, e.g. ds.isel(time=0) or ds.sel(time='2024-09-12'), "
            "or reduce the stack (a median composite) and pass date="
        )
    for key in DATE_ATTRS:
        if key in obj.attrs and obj.attrs[key] not in (None, ""):
            return parse_date(obj.attrs[key], f"{label} attrs[{key!r}]")
    raise InputDataError(
        f"{label}: no acquisition date: no 'time' coordinate and none of attrs {list(DATE_ATTRS)}; pass "
        "date='YYYY-MM-DD' (or set ds.attrs['date'])"
    )


def _one_time(obj: Any, label: str) -> Any:
    if "time" in obj.dims:
        if obj.sizes["time"] != 1:
            raise InputDataError(f"{label}: the 'time' dimension has {obj.sizes['time']} values; select one date")
        return obj.isel(time=0)
    return obj


def _spatial_dims(obj: Any, label: str) -> tuple[str, str]:
    dims = set(obj.dims)
    for y, x in (("y", "x"), ("latitude", "longitude"), ("lat", "lon")):
        if y in dims and x in dims:
            return y, x
    raise InputDataError(f"{label}: dims {tuple(obj.dims)} have no 'y' and 'x' (or latitude/longitude); rename "
                         "the spatial dims, e.g. da.rename({'rows': 'y', 'cols': 'x'})")


def _variables(obj: Any, label: str, bands: Any, ydim: str, xdim: str) -> dict[str, Any]:
    """Each band (and quality layer) as a 2-D DataArray, by the name the object gives it."""
    if type(obj).__name__ == "Dataset":
        out = {}
        for name, var in obj.data_vars.items():
            if ydim in var.dims and xdim in var.dims:
                if "band" in var.dims and var.sizes["band"] == 1:
                    var = var.isel(band=0)
                if var.ndim == 2:
                    out[str(name)] = var
        if not out:
            raise InputDataError(f"{label}: no variable with dims ({ydim}, {xdim})")
        return out
    da = obj
    if da.ndim == 2:
        if bands is None or isinstance(bands, Mapping) or len(bands) != 1:
            name = str(da.name) if da.name is not None else None
            if name is None:
                raise InputDataError(f"{label}: a single-band DataArray without a name; pass bands=['nir'] (its role)")
            return {name: da}
        return {str(bands[0]): da}
    bdim = next((d for d in da.dims if d not in (ydim, xdim)), None)
    if bdim is None or da.ndim != 3:
        raise InputDataError(f"{label}: dims {tuple(da.dims)}; expected (band, y, x)")
    names = _band_names(da, bdim, bands, label)
    return {n: da.isel({bdim: i}) for i, n in enumerate(names)}


def _band_names(da: Any, bdim: str, bands: Any, label: str) -> list[str]:
    n = da.sizes[bdim]
    if bands is not None and not isinstance(bands, Mapping):
        if len(bands) != n:
            raise InputDataError(f"{label}: {len(bands)} band name(s) {list(bands)} for {n} bands")
        return [str(b) for b in bands]
    if bdim in da.coords:
        vals = [v.item() if hasattr(v, "item") else v for v in np.asarray(da.coords[bdim].values)]
        if all(isinstance(v, str) for v in vals):
            return [str(v) for v in vals]
    long_name = da.attrs.get("long_name")
    if isinstance(long_name, (list, tuple)) and len(long_name) == n and all(long_name):
        return [str(v) for v in long_name]
    raise InputDataError(
        f"{label}: the {bdim!r} dimension has no band names (coordinate values {np.asarray(da.coords[bdim].values)[:6]}"
        f" and no attrs['long_name']); pass bands=['blue', 'green', 'red', 'nir', ...] in band order"
        if bdim in da.coords else f"{label}: the {bdim!r} dimension has no band names; pass bands=[...] in order"
    )


def _roles(variables: Mapping[str, Any], bands: Any, prof: SensorProfile | None, label: str
           ) -> tuple[dict[str, str], tuple[str, str] | None]:
    """Band role -> variable name, and the quality variable (name, mask kind) if any."""
    quality = next(((n, MASK_VARIABLES[n.lower()]) for n in variables if n.lower() in MASK_VARIABLES), None)
    if isinstance(bands, Mapping):
        missing = [v for v in bands.values() if v not in variables]
        if missing:
            raise InputDataError(f"{label}: bands= names {missing}, not among {list(variables)}")
        return {str(r): str(v) for r, v in bands.items()}, quality
    roles: dict[str, str] = {}
    profiles = [prof] if prof is not None else [get_sensor(p) for p in _ID_PROFILES]
    for name in variables:
        if quality is not None and name == quality[0]:
            continue
        role = BAND_ALIASES.get(name.lower())
        if role is None:
            for p in profiles:
                role = p.common_name(name.replace("SR_", "").replace("sr_", "")) or p.common_name(name)
                if role is not None:
                    break
        if role is not None and role not in roles:
            roles[role] = name
    if not roles:
        raise InputDataError(
            f"{label}: none of the variables {list(variables)} is a band ecopatch knows (common names blue, green, "
            "red, nir, swir1/swir16, swir2/swir22, or Sentinel-2/Landsat band IDs); pass bands={'red': '<name>', ...}"
        )
    return roles, quality


def _native_quality(arr: Any) -> Any:
    """A quality band put on a finer grid by nearest neighbour, back at its own resolution.

    odc-stac and stackstac load Sentinel-2's 20 m SCL onto the 10 m grid.  When every aligned
    2 x 2 block of the band holds one value, the band is returned at half resolution, so that
    clouds are grown on the band's own pixels, as the file reader grows them (the 20 m growth of
    a 20 m SCL differs from that of its 10 m copy at the cloud corners).  Lazy (dask) arrays and
    other bands are returned as given.
    """
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or min(arr.shape) < 2:
        return arr
    coarse = arr[::2, ::2]
    h, w = arr.shape
    if np.array_equal(np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)[:h, :w], arr):
        return coarse
    return arr


def _data(var: Any, ydim: str, xdim: str) -> Any:
    """The array of a 2-D variable in (y, x) order: numpy, or dask when lazy."""
    v = var.transpose(ydim, xdim)
    return v.data


def _coords_transform(obj: Any, ydim: str, xdim: str) -> Any:
    from affine import Affine

    if xdim not in obj.coords or ydim not in obj.coords:
        return None
    x = np.asarray(obj.coords[xdim].values, dtype=np.float64)
    y = np.asarray(obj.coords[ydim].values, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1 or x.size < 2 or y.size < 2:
        return None
    dx, dy = np.diff(x), np.diff(y)
    if not (np.allclose(dx, dx[0], rtol=1e-6, atol=0) and np.allclose(dy, dy[0], rtol=1e-6, atol=0)):
        return None
    a, e = float(x[-1] - x[0]) / (x.size - 1), float(y[-1] - y[0]) / (y.size - 1)
    return Affine(a, 0.0, float(x[0]) - a / 2, 0.0, e, float(y[0]) - e / 2)


def _transform(obj: Any, first: Any, ydim: str, xdim: str, label: str) -> Any:
    from affine import Affine

    t = _coords_transform(first, ydim, xdim)
    if t is not None:
        return t
    try:
        return obj.rio.transform()
    except Exception:  # noqa: BLE001 - no rioxarray accessor, or it cannot tell
        pass
    raw = obj.attrs.get("transform")
    if raw is not None and len(raw) >= 6:
        return Affine(*[float(v) for v in list(raw)[:6]])
    ref = _grid_mapping(obj)
    if ref is not None and "GeoTransform" in ref.attrs:
        c, a, b, f, d, e = (float(v) for v in str(ref.attrs["GeoTransform"]).split()[:6])
        return Affine(a, b, c, d, e, f)
    raise InputDataError(
        f"{label}: no pixel grid: the {xdim!r}/{ydim!r} coordinates are missing or irregular, and there is no "
        "rio.transform(), attrs['transform'] or spatial_ref GeoTransform; keep the x/y coordinates"
    )


def _grid_mapping(obj: Any) -> Any:
    name = obj.attrs.get("grid_mapping") or obj.encoding.get("grid_mapping") or "spatial_ref"
    if name in obj.coords:
        return obj.coords[name]
    for var in getattr(obj, "data_vars", {}).values():
        gm = var.attrs.get("grid_mapping") or var.encoding.get("grid_mapping")
        if gm and gm in obj.coords:
            return obj.coords[gm]
    return None


def _crs(obj: Any, label: str) -> Any:
    try:
        crs = obj.rio.crs
        if crs is not None:
            return _as_crs(crs, label)
    except Exception:  # noqa: BLE001 - no rioxarray accessor
        pass
    ref = _grid_mapping(obj)
    if ref is not None:
        for key in ("crs_wkt", "spatial_ref"):
            if ref.attrs.get(key):
                return _as_crs(ref.attrs[key], label)
    for key in ("crs", "crs_wkt"):
        if obj.attrs.get(key):
            return _as_crs(obj.attrs[key], label)
    if "epsg" in obj.coords:
        code = np.asarray(obj.coords["epsg"].values).ravel()
        if code.size and code[0] is not None:
            return _as_crs(f"EPSG:{int(code[0])}", label)
    try:
        crs = obj.odc.crs
        if crs is not None:
            return _as_crs(str(crs), label)
    except Exception:  # noqa: BLE001 - no odc accessor
        pass
    raise InputDataError(
        f"{label}: no CRS: none of rio.crs, a 'spatial_ref' coordinate with crs_wkt, attrs['crs'] or an 'epsg' "
        "coordinate; set one (ds.rio.write_crs('EPSG:32650') with rioxarray) or pass crs='EPSG:...'"
    )


def _as_crs(value: Any, label: str) -> Any:
    from ecopatch.geo.geodesy import as_crs

    return as_crs(value, what=f"{label} CRS")


def _per_role(given: Any, attrs: Mapping[str, Mapping[str, Any]], keys: tuple[str, ...], fallback: float | None
              ) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for role, a in attrs.items():
        if isinstance(given, Mapping):
            v = given.get(role)
        else:
            v = given
        if v is None:
            v = next((a[k] for k in keys if k in a and a[k] is not None), None)
            if isinstance(v, (list, tuple)):
                v = v[0] if v else None
        if v is None:
            v = fallback
        out[role] = None if v is None else float(v)
    return out


def _nodata_attr(attrs: Mapping[str, Any]) -> float | None:
    for key in ("nodata", "_FillValue", "nodatavals"):
        v = attrs.get(key)
        if isinstance(v, (list, tuple)):
            v = v[0] if v else None
        if v is not None:
            return float(v)
    return None


# ---------------------------------------------------------------------------
# Layers out
# ---------------------------------------------------------------------------
def to_xarray(layers: Any, grid: Grid, *, name: str | None = None, date: _dt.date | None = None,
              attrs: Mapping[str, Any] | None = None) -> Any:
    """Layers on a grid as xarray: a DataArray for one array, a Dataset for a mapping of them.

    The result has ``y``/``x`` coordinates at the pixel centres (in the CRS's
    units) and a ``spatial_ref`` coordinate with the CRS (``crs_wkt``) and
    the GDAL ``GeoTransform``, as rioxarray writes them, so ``.rio.crs`` and
    ``.rio.to_raster`` work when rioxarray is installed; a ``time``
    coordinate of length 1 when ``date`` is given.

    Parameters
    ----------
    layers : ndarray (rows, cols) or mapping of str to ndarray
        Class codes, FVC, change codes ... on ``grid``.
    grid : Grid
    name : str, optional
        Name of a single DataArray.
    date : date, optional
    attrs : mapping, optional
        Attributes to set (e.g. the meaning of class codes).

    Raises
    ------
    ImportError
        xarray is not installed (``pip install xarray``).
    """
    try:
        import xarray as xr
    except ImportError as exc:  # pragma: no cover - xarray is optional
        raise ImportError("as_xarray needs xarray: pip install xarray (or ecopatch[bench])") from exc
    t = grid.transform
    coords: dict[str, Any] = {
        "y": t.f + t.e * (np.arange(grid.height) + 0.5),
        "x": t.c + t.a * (np.arange(grid.width) + 0.5),
        "spatial_ref": xr.DataArray(0, attrs={
            "crs_wkt": grid.crs.to_wkt(), "spatial_ref": grid.crs.to_wkt(),
            "GeoTransform": " ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))}),
    }
    if date is not None:
        coords["time"] = np.datetime64(date.isoformat(), "ns")
    meta = {"grid_mapping": "spatial_ref", **dict(attrs or {})}
    if isinstance(layers, Mapping):
        data = {}
        for k, v in layers.items():
            if tuple(np.shape(v)) != tuple(grid.shape):
                raise InputDataError(f"layer {k!r} has shape {np.shape(v)}, the grid {grid.shape}")
            data[str(k)] = xr.DataArray(np.asarray(v), dims=("y", "x"), attrs={"grid_mapping": "spatial_ref"})
        return xr.Dataset(data, coords=coords, attrs=meta)
    if tuple(np.shape(layers)) != tuple(grid.shape):
        raise InputDataError(f"layer has shape {np.shape(layers)}, the grid {grid.shape}")
    return xr.DataArray(np.asarray(layers), dims=("y", "x"), coords=coords, name=name, attrs=meta)
