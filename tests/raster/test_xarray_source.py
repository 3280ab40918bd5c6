"""from_xarray: each layout's fields, and a clear error naming the field when one is missing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from ecopatch.errors import InputDataError
from ecopatch.raster.xarray_source import from_xarray

xr = pytest.importorskip("xarray")


def _coords(n: int = 4) -> dict[str, np.ndarray]:
    return {"y": 3_300_000 - 10 * (np.arange(n) + 0.5), "x": 500_000 + 10 * (np.arange(n) + 0.5)}


def _ds(**attrs):
    from pyproj import CRS

    ref = xr.DataArray(0, attrs={"crs_wkt": CRS("EPSG:32650").to_wkt()})
    data = {b: xr.DataArray(np.full((4, 4), v, dtype="float32"), dims=("y", "x"))
            for b, v in (("red", 0.1), ("nir", 0.4))}
    return xr.Dataset(data, coords={**_coords(), "spatial_ref": ref}, attrs=attrs)


def test_a_rioxarray_layout_gives_grid_crs_date_and_bands():
    src = from_xarray(_ds(date="2024-09-12"))
    assert src.date == dt.date(2024, 9, 12)
    assert src.grid.crs.to_epsg() == 32650
    assert src.grid.transform.c == 500_000 and src.grid.transform.f == 3_300_000 and src.grid.res == (10, 10)
    obs = src.read(["nir"])
    np.testing.assert_allclose(obs["nir"], 0.4)
    assert src.mask_status["kind"] == "none"


def test_a_missing_date_names_the_fields_looked_at():
    with pytest.raises(InputDataError, match=r"no acquisition date.*'time' coordinate.*date="):
        from_xarray(_ds())


def test_a_missing_crs_names_the_fields_looked_at():
    ds = _ds(date="2024-09-12").drop_vars("spatial_ref")
    with pytest.raises(InputDataError, match=r"no CRS.*spatial_ref.*attrs\['crs'\].*crs="):
        from_xarray(ds)
    assert from_xarray(ds, crs="EPSG:32650").grid.crs.to_epsg() == 32650


def test_several_dates_ask_for_one():
    ds = _ds().expand_dims(time=np.array(["2024-09-12", "2024-09-22"], dtype="datetime64[ns]"))
    with pytest.raises(InputDataError, match=r"'time' coordinate has 2 values.*isel\(time=0\)"):
        from_xarray(ds)
    assert from_xarray(ds.isel(time=[1])).date == dt.date(2024, 9, 22)


def test_integers_without_a_scale_ask_for_one():
    ds = _ds(date="2024-09-12")
    ds["red"] = ds["red"].astype("uint16")
    with pytest.raises(InputDataError, match=r"'red'.*integers with no scale_factor.*scale="):
        from_xarray(ds)


def test_a_band_dimension_without_names_asks_for_them():
    da = xr.DataArray(np.zeros((2, 4, 4), dtype="float32"), dims=("band", "y", "x"),
                      coords={"band": [1, 2], **_coords()}, attrs={"crs": "EPSG:32650", "date": "2024-09-12"})
    with pytest.raises(InputDataError, match=r"no band names.*bands=\["):
        from_xarray(da)
    src = from_xarray(da, bands=["red", "nir"])
    assert src.bands == ("red", "nir")


def test_windows_past_the_edge_are_nan_and_not_valid():
    from ecopatch.geo.grid import Window

    obs = from_xarray(_ds(date="2024-09-12")).read(["red"], Window(row_off=-2, col_off=-2, height=4, width=4))
    assert np.isnan(obs["red"][:2]).all() and not obs.valid[:2].any() and obs.valid[2:, 2:].all()


def test_a_quality_band_put_on_the_finer_grid_is_read_at_its_own_resolution():
    from ecopatch.raster.xarray_source import _native_quality

    scl20 = np.array([[4, 9, 4], [8, 4, 3]], dtype=np.uint8)
    on10 = np.repeat(np.repeat(scl20, 2, axis=0), 2, axis=1)[:, :5]  # an odd width, cut as a crop would
    assert np.array_equal(_native_quality(on10), scl20)
    native10 = on10.copy()
    native10[0, 1] = 3  # not nearest-neighbour from 20 m: kept as given
    assert _native_quality(native10) is native10


@pytest.mark.parametrize("chunks, warned", [(None, False), (64, False), (192, True)])
def test_dask_chunks_larger_than_the_windows_are_named_with_the_fix(chunks, warned):
    import warnings

    from ecopatch.errors import SlowInputWarning
    from ecopatch.raster.source import plan_pass_reads

    n = 256
    data = {b: xr.DataArray(np.full((n, n), v, dtype="float32"), dims=("y", "x"))
            for b, v in (("red", 0.1), ("nir", 0.4))}
    if chunks is not None:
        pytest.importorskip("dask")
        data = {b: a.chunk({"y": chunks, "x": chunks}) for b, a in data.items()}
    from pyproj import CRS

    ref = xr.DataArray(0, attrs={"crs_wkt": CRS("EPSG:32650").to_wkt()})
    src = from_xarray(xr.Dataset(data, coords={**_coords(n), "spatial_ref": ref}, attrs={"date": "2024-09-12"}))
    assert src.dask_chunks() == (None if chunks is None else (chunks, chunks))
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        plan_pass_reads([src], block=128)
    slow = [w for w in got if issubclass(w.category, SlowInputWarning)]
    assert bool(slow) == warned
    if warned:
        assert "192 x 192" in str(slow[0].message) and "ds.load()" in str(slow[0].message)


def test_arrays_decimated_within_rectangles_mask_the_rest():
    """As for files: pixels outside ``within`` are NaN and not valid, those inside the arrays' values."""
    from affine import Affine

    from ecopatch.raster.arrays import from_array

    refl = np.random.default_rng(2).uniform(0.01, 0.4, (2, 60, 80)).astype("float32")
    src = from_array(refl, Affine(10, 0, 500_000, 0, -10, 3_300_000), "EPSG:32650", ["red", "nir"], "2024-09-12")
    whole = src.read_decimated(max_pixels=1200)
    rect = (500_100.0, 3_299_600.0, 500_300.0, 3_299_900.0)
    part = src.read_decimated(max_pixels=1200, within=[rect])
    g = part.grid
    xs = g.transform.c + g.transform.a * (np.arange(g.width) + 0.5)
    ys = g.transform.f + g.transform.e * (np.arange(g.height) + 0.5)
    inside = ((ys >= rect[1]) & (ys <= rect[3]))[:, None] & ((xs >= rect[0]) & (xs <= rect[2]))[None, :]
    assert 0 < inside.sum() < inside.size
    np.testing.assert_array_equal(part["nir"][inside], whole["nir"][inside])
    assert np.isnan(part["nir"][~inside]).all() and not part.valid[~inside].any()
