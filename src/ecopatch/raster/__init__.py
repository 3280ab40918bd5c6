"""Imagery: the raster-source protocol, its adapters, and the file and product readers behind it.

What the analyses read through (they import only these three)
    :mod:`~ecopatch.raster.source`  the :class:`RasterSource` protocol, :class:`Observation`,
                                    pair checks, read plans, samples; :func:`as_source`
    :mod:`~ecopatch.raster.ongrid`  any source read onto any grid (:func:`read_on_grid`)
    :mod:`~ecopatch.raster.masks`, :mod:`~ecopatch.raster.radiometry`  quality bands and DN -> reflectance

Adapters (in memory)
    :mod:`~ecopatch.raster.arrays`  numpy/dask arrays with a grid (:func:`from_array`), rasterio datasets
    :mod:`~ecopatch.raster.xarray_source`  rioxarray, odc-stac and stackstac layouts; layers out (:func:`to_xarray`)
    :mod:`~ecopatch.raster.adapters`  which adapter takes what :func:`ecopatch.open_scene` is given

Files and products
    :mod:`~ecopatch.raster.scene`  :class:`Scene` and :func:`open_scene`
    :mod:`~ecopatch.raster.fileread`, :mod:`~ecopatch.raster.blocks`, :mod:`~ecopatch.raster.vrt`,
    :mod:`~ecopatch.raster.gdalcache`  windowed reads, tile cache, VRT mosaics, GDAL's cache scoped
    :mod:`~ecopatch.raster.products`, :mod:`~ecopatch.raster.landsat`, :mod:`~ecopatch.raster.gaofen`,
    :mod:`~ecopatch.raster.sensors`  what a product is; :mod:`~ecopatch.raster.clouds` cloud masks computed;
    :mod:`~ecopatch.raster.quicklook`  decimated reads and overviews

Submodules are imported on first use (``ecopatch.raster.scene``), so ``import ecopatch.raster`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from ecopatch.raster.source import Observation, RasterSource, as_source

__all__ = ["Observation", "RasterSource", "as_source", "from_array", "from_xarray", "to_xarray"]

_LAZY = {"from_array": "ecopatch.raster.arrays", "from_xarray": "ecopatch.raster.xarray_source",
         "to_xarray": "ecopatch.raster.xarray_source"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    try:
        return importlib.import_module(f"ecopatch.raster.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise  # the submodule exists and lacks a dependency
        raise AttributeError(f"module 'ecopatch.raster' has no attribute {name!r}") from None
