"""Analysis layers on a grid: cover classes and FVC of one date, change codes of detected patches.

The per-mine and per-patch tables are the analyses' results; these are the
maps behind them, for further work in a notebook or a GIS: as numpy arrays,
or with ``as_xarray=True`` as an xarray Dataset/DataArray with the grid's
CRS and coordinates (:func:`ecopatch.raster.xarray_source.to_xarray`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ecopatch._warnfilters import filters_guard
from ecopatch.analyses.restoration import prepare_cover_params
from ecopatch.compute.cover import CLASSES, CoverParams, classify, cover_fractions
from ecopatch.errors import InputDataError
from ecopatch.geo.grid import Grid, Window
from ecopatch.raster.ongrid import read_on_grid
from ecopatch.raster.source import Observation, SourceLike, as_source

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["CLASS_CODES", "change_codes", "cover_layers"]

#: Codes of the ``class`` layer: 0 no data, then the cover classes.
CLASS_CODES: dict[int, str] = {0: "nodata", **{i + 1: c for i, c in enumerate(CLASSES)}}


class _Fractions:
    """Picklable derive: the cover fractions and FVC of an observation."""

    def __init__(self, params: CoverParams, source: str) -> None:
        self.params, self.source = params, source

    def __call__(self, obs: Observation) -> dict[str, np.ndarray]:
        f = cover_fractions(obs.bands, self.params, source=self.source)
        return {k: f[k] for k in (*CLASSES, "fvc") if k in f}


def cover_layers(
    source: SourceLike,
    *,
    grid: Grid | None = None,
    window: Window | None = None,
    params: CoverParams | None = None,
    as_xarray: bool = False,
) -> dict[str, np.ndarray] | Any:
    """Cover fractions, FVC and the cover class of one date on a grid, as :func:`ecopatch.assess_restoration` sees them.

    Parameters
    ----------
    source : RasterSource, path, xarray object or open rasterio dataset
        The imagery of one date.
    grid : Grid, optional
        The grid to produce (default the source's own).
    window : Window, optional
        Part of ``grid`` to produce (default all of it: mind the memory on a full tile).
    params : CoverParams, optional
        Cover parameters; what is left unset is estimated from the source
        (as the assessment does).
    as_xarray : bool
        Return an xarray Dataset (CRS and coordinates) instead of a dict.

    Returns
    -------
    dict of str to ndarray, or xarray.Dataset
        ``veg``, ``bare``, ``built``, ``water`` (fractions 0-1), ``fvc``
        (fractional vegetation cover 0-1), ``valid_fraction`` (0-1) as
        float32, NaN where not observed; ``class`` (uint8, codes in
        :data:`CLASS_CODES`).
    """
    src = as_source(source)
    g = grid or src.grid
    win = window or g.window
    p = prepare_cover_params(src, params)
    layers = read_on_grid(src, g, win, derive=_Fractions(p, src.source))
    layers["class"] = classify({c: layers[c] for c in CLASSES})
    if not as_xarray:
        return layers
    from ecopatch.raster.xarray_source import to_xarray

    return to_xarray(layers, g.subgrid(win), date=src.date,
                     attrs={"class_codes": ";".join(f"{k}={v}" for k, v in CLASS_CODES.items()),
                            "source": src.source})


def change_codes(
    patches: gpd.GeoDataFrame,
    grid: Grid,
    *,
    column: str = "change_type",
    codes: Mapping[str, int] | None = None,
    as_xarray: bool = False,
) -> tuple[np.ndarray, dict[str, int]] | Any:
    """The patches of :func:`ecopatch.detect_changes` as a raster of change codes on ``grid``.

    Parameters
    ----------
    patches : geopandas.GeoDataFrame
        Suspect patches (any CRS: transformed to the grid's).
    grid : Grid
        Typically the source's grid (``scene.grid``).
    column : str
        The attribute coded (default the change type).
    codes : mapping of str to int, optional
        Value -> code (default 1, 2, ... in sorted order of the values); 0 is
        no patch.
    as_xarray : bool
        Return an xarray DataArray (CRS, coordinates, the codes in
        ``attrs["codes"]``) instead of ``(array, codes)``.

    Returns
    -------
    (ndarray of int16, dict) or xarray.DataArray
        Each pixel whose centre is in a patch has the patch's code.
    """
    from rasterio.features import rasterize

    from ecopatch.geo.geodesy import geometries_in

    if column not in patches.columns:
        raise InputDataError(f"patches have no {column!r} column; pass column=")
    values = [str(v) for v in patches[column]]
    table = dict(codes) if codes is not None else {v: i + 1 for i, v in enumerate(sorted(set(values)))}
    missing = sorted(set(values) - set(table))
    if missing:
        raise InputDataError(f"codes= has no code for {missing}")
    geoms = geometries_in(patches, grid.crs, what="patches")
    shapes = [(g, table[v]) for g, v in zip(geoms, values) if g is not None and not g.is_empty]
    out = np.zeros(grid.shape, dtype=np.int16)
    if shapes:
        with filters_guard():  # rasterio's rasterising enters catch_warnings (see ecopatch._warnfilters)
            out = rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=0, dtype="int16")
    if not as_xarray:
        return out, table
    from ecopatch.raster.xarray_source import to_xarray

    return to_xarray(out, grid, name=column,
                     attrs={"codes": ";".join(f"{k}={v}" for k, v in table.items()), "nodata": 0})
