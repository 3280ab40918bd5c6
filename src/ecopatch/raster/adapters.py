"""Which adapter makes a raster source of what a user holds: a source, xarray, a rasterio dataset, arrays.

:func:`ecopatch.open_scene` asks :func:`adapt` first; paths (None here) go to
the product readers.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ecopatch.errors import ConfigError, InputDataError
from ecopatch.raster.sensors import SensorProfile
from ecopatch.raster.source import RasterSource

__all__ = ["adapt", "is_rasterio_dataset"]


def is_rasterio_dataset(obj: Any) -> bool:
    """True for an open rasterio dataset (reader or writer)."""
    return type(obj).__module__.startswith("rasterio") and hasattr(obj, "read") and hasattr(obj, "transform")


def adapt(
    obj: Any,
    *,
    sensor: str | SensorProfile | None = None,
    bands: Any = None,
    date: str | _dt.date | None = None,
    scale: float | None = None,
    offset: float | None = None,
    nodata: float | None = None,
    cloud_buffer_m: float | None = None,
    cloud_mask: Any = None,
    transform: Any = None,
    crs: Any = None,
    file_only: Mapping[str, Any] | None = None,
) -> RasterSource | None:
    """The raster source of ``obj`` when it is not a path (None for paths: the product readers take them).

    Parameters
    ----------
    obj : RasterSource, xarray.Dataset/DataArray, rasterio dataset or ndarray
    sensor, bands, date, scale, offset, nodata, cloud_buffer_m, cloud_mask
        As for :func:`ecopatch.open_scene`.
    transform, crs
        The grid of a numpy array.
    file_only : mapping, optional
        Options that only apply to files (``dem``, ``calibration``,
        ``workdir``...): an error when set for an in-memory source.

    Raises
    ------
    InputDataError
        ``obj`` is not imagery, or lacks what the adapter needs.
    ConfigError
        A file-only option given with an in-memory source.
    """
    from ecopatch.raster.arrays import from_array, from_rasterio, parse_date
    from ecopatch.raster.xarray_source import from_xarray, is_xarray

    if isinstance(obj, (str, os.PathLike)):
        return None
    if isinstance(obj, Sequence) and not isinstance(obj, (bytes, bytearray)) and obj \
            and all(isinstance(p, (str, os.PathLike)) for p in obj):
        return None
    if is_rasterio_dataset(obj) and os.path.isfile(str(obj.name)):
        return None  # a file on disk: the product readers (block reads, identification) take its path
    used = {k: v for k, v in (file_only or {}).items() if v is not None}
    if used:
        raise ConfigError(f"{', '.join(sorted(used))}= only apply to files and products, not to a "
                          f"{type(obj).__module__}.{type(obj).__qualname__}")
    src: RasterSource
    if isinstance(obj, RasterSource):
        src = obj
        if date is not None:
            src = src.with_date(parse_date(date, f"{src.source} date="))
    elif is_xarray(obj):
        src = from_xarray(obj, bands=bands, date=date, sensor=sensor, scale=scale, offset=offset, nodata=nodata,
                          cloud_buffer_m=cloud_buffer_m, crs=crs)
    elif is_rasterio_dataset(obj):
        opts = _options(scale=scale, offset=offset, nodata=nodata, sensor=sensor, cloud_buffer_m=cloud_buffer_m)
        src = from_rasterio(obj, bands=bands, date=date, **opts)
    elif isinstance(obj, np.ndarray) or (hasattr(obj, "__array__") and hasattr(obj, "shape")):
        if transform is None or crs is None or bands is None:
            raise InputDataError(
                "an array needs its grid and band names: open_scene(array, bands=['blue', 'green', 'red', 'nir'], "
                "date='YYYY-MM-DD', transform=Affine(...), crs='EPSG:...') (or ecopatch.raster.from_array)"
            )
        opts = _options(scale=scale, offset=offset, nodata=nodata, sensor=sensor, cloud_buffer_m=cloud_buffer_m)
        src = from_array(obj, transform, crs, list(bands), date, **opts)
    else:
        from ecopatch.raster.source import not_a_source

        raise not_a_source(obj, "open_scene")
    if cloud_mask is not None:
        src = src.with_mask(cloud_mask, cloud_buffer_m=cloud_buffer_m)
    return src


def _options(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}
