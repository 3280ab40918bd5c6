"""Analysis layers (cover classes, FVC, change codes) on the source grid, as arrays or xarray."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ecopatch.analyses.layers import CLASS_CODES, change_codes, cover_layers
from tests.mapdata import inputs, sample  # noqa: F401 - session fixtures


def test_cover_layers_are_on_the_source_grid_and_agree_with_their_class(inputs):  # noqa: F811
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layers = cover_layers(inputs.after)
    g = inputs.after.grid
    assert layers["fvc"].shape == g.shape and layers["class"].dtype == np.uint8
    seen = layers["class"] > 0
    assert seen.mean() > 0.5
    stack = np.stack([layers[c] for c in ("veg", "bare", "built", "water")])
    np.testing.assert_array_equal(np.argmax(np.nan_to_num(stack[:, seen], nan=-1), axis=0) + 1, layers["class"][seen])
    assert set(np.unique(layers["class"])) <= set(CLASS_CODES)


def test_layers_come_back_as_xarray_with_crs_and_coordinates(inputs):  # noqa: F811
    pytest.importorskip("xarray")
    from ecopatch.raster.xarray_source import from_xarray

    g = inputs.after.grid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = cover_layers(inputs.after, as_xarray=True)
    assert ds["fvc"].dims == ("y", "x") and ds.sizes == {"y": g.height, "x": g.width}
    assert ds.coords["x"].values[0] == pytest.approx(g.transform.c + g.transform.a / 2)
    assert "class=" not in ds.attrs["class_codes"] and "1=veg" in ds.attrs["class_codes"]
    back = from_xarray(ds[["veg", "fvc"]].rename({"veg": "red", "fvc": "nir"}))  # grid, CRS and date survive
    assert back.grid == g and back.date == inputs.after.date

    da = change_codes(inputs.patches, g, as_xarray=True)
    arr, codes = change_codes(inputs.patches, g)
    np.testing.assert_array_equal(da.values, arr)
    assert da.attrs["codes"] == ";".join(f"{k}={v}" for k, v in codes.items())
    coded_m2 = np.count_nonzero(arr) * abs(g.transform.a * g.transform.e)
    map_m2 = inputs.patches.to_crs(g.crs).area.sum()
    assert coded_m2 == pytest.approx(map_m2, rel=0.15)  # pixel centres in the patches
