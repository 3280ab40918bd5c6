import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box

from ecopatch.analyses.patchstats import patch_statistics
from ecopatch.errors import InputDataError
from ecopatch.geo.geodesy import geodesic_area_m2
from tests.conftest import write_raster

T = Affine(10, 0, 780_000, 0, -10, 3_350_000)


@pytest.fixture
def classes(tmp_path):
    arr = np.zeros((100, 120), dtype=np.uint8)
    arr[:, 60:] = 1           # right half class 1
    arr[40:50, :] = 255       # a nodata stripe
    return write_raster(tmp_path / "cls.tif", arr, transform=T, nodata=255)


def test_class_areas_count_partial_pixels(classes):
    # a 100 m square straddling the class boundary with a half-pixel offset
    sq = box(780_555, 3_349_105, 780_655, 3_349_205)
    p = gpd.GeoDataFrame({"patch_id": ["a"]}, geometry=[sq], crs="EPSG:32650")
    s = patch_statistics(classes, p, classes=[0, 1], block=32)
    area = geodesic_area_m2(sq, "EPSG:32650")
    k = area / 10_000  # ground area per map m² (UTM scale near 120° E)
    assert s["area_m2"].iloc[0] == pytest.approx(area)
    assert s["area_0_m2"].iloc[0] == pytest.approx(45 * 100 * k, rel=1e-4)  # x 555..600
    assert s["area_1_m2"].iloc[0] == pytest.approx(55 * 100 * k, rel=1e-4)
    assert s["observed_m2"].iloc[0] == pytest.approx(area, rel=1e-4)
    assert s["mean"].iloc[0] == pytest.approx(0.55, rel=1e-4)


def test_nodata_is_not_observed_and_blocks_do_not_matter(classes):
    geoms = [box(780_100, 3_349_400, 780_300, 3_349_700), box(780_050, 3_349_000, 781_150, 3_349_990)]
    p = gpd.GeoDataFrame({"patch_id": ["s", "big"]}, geometry=geoms, crs="EPSG:32650")
    a = patch_statistics(classes, p, classes=[0, 1], block=16)
    b = patch_statistics(classes, p, classes=[0, 1], block=4096, scheduler="synchronous")
    np.testing.assert_allclose(a.select_dtypes("number"), b.select_dtypes("number"), rtol=1e-12)
    assert a["observed_m2"].iloc[0] < a["area_m2"].iloc[0]  # crosses the nodata stripe
    np.testing.assert_allclose(a["area_0_m2"] + a["area_1_m2"], a["observed_m2"], rtol=1e-12)


def test_errors(classes):
    p = gpd.GeoDataFrame({"x": [1]}, geometry=[box(780_100, 3_349_400, 780_300, 3_349_700)], crs="EPSG:32650")
    with pytest.raises(InputDataError, match="patch_id"):
        patch_statistics(classes, p)
    p["patch_id"] = ["a"]
    with pytest.raises(InputDataError, match="band 3"):
        patch_statistics(classes, p, band=3)


def test_agrees_with_exactextract(classes):
    exactextract = pytest.importorskip("exactextract")
    rng = np.random.default_rng(3)
    geoms = [box(x, y, x + w, y + h) for x, y, w, h in zip(
        780_000 + rng.uniform(0, 900, 30), 3_349_000 + rng.uniform(0, 800, 30), rng.uniform(15, 200, 30),
        rng.uniform(15, 150, 30))]
    p = gpd.GeoDataFrame({"patch_id": [f"p{i}" for i in range(30)]}, geometry=geoms, crs="EPSG:32650")
    ours = patch_statistics(classes, p)
    ee = exactextract.exact_extract(str(classes), p, ["count", "mean"], include_cols=["patch_id"], output="pandas")
    np.testing.assert_allclose(ours["mean"], ee["mean"], rtol=1e-5, equal_nan=True)
    # exactextract counts pixels; ours are ground areas: compare the observed share of each patch
    cell = ours["area_m2"] / p.geometry.area * 100  # ground m² per 10 m cell at each patch
    np.testing.assert_allclose(ours["observed_m2"] / cell, ee["count"], rtol=1e-4)


def test_area_of_every_patch_once_whatever_the_blocks(classes):
    # each patch's geodesic area is computed by its first block only (in parallel); patches
    # spanning many blocks, partly outside the raster, wholly outside it and empty all get theirs
    geoms = [
        box(780_050, 3_349_000, 781_150, 3_349_990),  # spans many 16 px blocks
        box(781_100, 3_349_100, 781_400, 3_349_200),  # partly outside (the raster ends at 781 200)
        box(790_000, 3_340_000, 790_100, 3_340_100),  # outside
        box(780_100, 3_349_400, 780_300, 3_349_700).buffer(-1_000),  # empty
    ]
    p = gpd.GeoDataFrame({"patch_id": list("abcd")}, geometry=geoms, crs="EPSG:32650")
    truth = geodesic_area_m2(p.geometry.to_numpy(), p.crs)
    for block in (16, 4096):
        s = patch_statistics(classes, p, classes=[0, 1], block=block)
        np.testing.assert_array_equal(s["area_m2"].to_numpy(), truth)
        assert s["observed_m2"].iloc[2] == 0 and s["observed_m2"].iloc[3] == 0
        assert s["observed_m2"].iloc[1] == pytest.approx(truth[1] / 3, rel=1e-3)  # 100 of its 300 m


@pytest.mark.parametrize("pairs", [1, 2, 5, 10_000])
def test_blocks_grouped_into_tasks_any_way_give_the_same_sums(classes, monkeypatch, pairs):
    # Tasks take consecutive blocks up to PAIRS_PER_TASK (patch, block) pairs. A patch reaching
    # into a block of another task must be counted there and only there; and its area once.
    import ecopatch.analyses.patchstats as ps

    rng = np.random.default_rng(7)
    geoms = [box(x, y, x + w, y + h) for x, y, w, h in zip(
        780_000 + rng.uniform(-50, 1150, 40), 3_349_000 + rng.uniform(-50, 950, 40), rng.uniform(5, 400, 40),
        rng.uniform(5, 300, 40))]
    p = gpd.GeoDataFrame({"patch_id": [f"p{i}" for i in range(40)]}, geometry=geoms, crs="EPSG:32650")
    ref = patch_statistics(classes, p, classes=[0, 1], block=4096, scheduler="synchronous")  # one block
    monkeypatch.setattr(ps, "PAIRS_PER_TASK", pairs)
    got = patch_statistics(classes, p, classes=[0, 1], block=16)
    np.testing.assert_array_equal(got["area_m2"], ref["area_m2"])
    np.testing.assert_allclose(got.select_dtypes("number"), ref.select_dtypes("number"), rtol=1e-12, atol=1e-9)
    assert (ref["observed_m2"] > 0).sum() > 30


def test_classes_in_any_order_absent_or_repeated(classes):
    geoms = [box(780_100, 3_349_400, 780_300, 3_349_700), box(780_050, 3_349_000, 781_150, 3_349_990)]
    p = gpd.GeoDataFrame({"patch_id": ["s", "big"]}, geometry=geoms, crs="EPSG:32650")
    both = patch_statistics(classes, p, classes=[1, 7, 0, 1])
    for c in (0, 1, 7):
        alone = patch_statistics(classes, p, classes=[c])
        np.testing.assert_array_equal(both[f"area_{c}_m2"], alone[f"area_{c}_m2"])
    assert (both["area_7_m2"] == 0).all() and both["area_1_m2"].iloc[1] > 0 and both["area_0_m2"].iloc[0] > 0
    np.testing.assert_allclose(both["area_0_m2"] + both["area_1_m2"], both["observed_m2"], rtol=1e-12)


def test_a_class_map_in_memory_gives_the_files_statistics(classes):
    """An xarray DataArray (CRS in spatial_ref, x/y coordinates) and an open dataset read as the file does."""
    import rasterio

    xr = pytest.importorskip("xarray")
    with rasterio.open(classes) as ds:
        arr, crs = ds.read(1), ds.crs
        geoms = [box(780_100, 3_349_400, 780_300, 3_349_700), box(780_050, 3_349_000, 781_150, 3_349_990)]
        p = gpd.GeoDataFrame({"patch_id": ["s", "big"]}, geometry=geoms, crs="EPSG:32650")
        want = patch_statistics(classes, p, classes=[0, 1], block=32)
        from_dataset = patch_statistics(ds, p, classes=[0, 1], block=32)
    da = xr.DataArray(arr, dims=("y", "x"), attrs={"_FillValue": 255},
                      coords={"y": T.f + T.e * (np.arange(arr.shape[0]) + 0.5),
                              "x": T.c + T.a * (np.arange(arr.shape[1]) + 0.5),
                              "spatial_ref": xr.DataArray(0, attrs={"crs_wkt": crs.to_wkt()})})
    got = patch_statistics(da, p, classes=[0, 1], block=32)
    np.testing.assert_allclose(got.select_dtypes("number"), want.select_dtypes("number"), rtol=1e-12)
    np.testing.assert_allclose(from_dataset.select_dtypes("number"), want.select_dtypes("number"), rtol=1e-12)
    with pytest.raises(InputDataError, match="not imagery"):
        patch_statistics(42, p)
