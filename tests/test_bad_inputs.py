"""A corpus of bad inputs: each gets a specific EcopatchError naming the file or field and the fix.

Everything is generated in tmp_path (no committed binaries).  Each case is a
function building the input and the call; the table at the bottom says which
error class and message fragment it must raise.  Three groups: imagery and
polygons (``r_``, ``v_``), run configuration (``c_``) and field results
(``f_``).  A bad field-results *row* is not an exception in ecopatch: the
import rejects it with a reason and applies the other rows in one
transaction; the ``f_`` cases turn the rejection report into a
FieldCheckError so that every case is checked the same way.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from shapely.geometry import LineString, Point, Polygon, box

import ecopatch
from ecopatch import errors as E
from ecopatch.cli.main import cli
from ecopatch.fieldcheck import import_results
from ecopatch.raster.scene import open_scene
from ecopatch.vector.layers import read_patches
from tests.conftest import write_raster

S2 = ["B02", "B03", "B04", "B08", "B11", "B12"]
T = Affine(10, 0, 780_000, 0, -10, 3_350_000)
# a mine well inside the 64 x 64 test rasters (EPSG:32650)
MINE = box(780_100, 3_349_600, 780_300, 3_349_800)


def _s2(path: Path, *, value=1500, shape=(64, 64), crs="EPSG:32650", transform=T, dtype="uint16", bands=6,
        descriptions=S2, nodata=0, scl=None):
    if not isinstance(value, str):
        arr = np.full((bands, *shape), value, dtype=dtype)
    else:  # a recipe: forest left half, soil right half
        arr = np.empty((bands, *shape), dtype=dtype)
        forest = np.array([300, 600, 350, 3500, 1700, 800])[:bands]
        soil = np.array([1000, 1400, 2000, 2600, 3400, 3000])[:bands]
        arr[:, :, : shape[1] // 2] = forest[:, None, None]
        arr[:, :, shape[1] // 2:] = soil[:, None, None]
    descs = list(descriptions[:bands]) if descriptions else None
    if scl is not None:
        arr = np.concatenate([arr, np.full((1, *shape), scl, dtype=dtype)])
        descs = descs + ["SCL"]
    return write_raster(path, arr, crs=crs, transform=transform, nodata=nodata, descriptions=descs, dtype=dtype)


def _mines(path: Path, geoms=(MINE,), crs="EPSG:32650", **cols):
    cols = cols or {"矿山编号": [f"K{i}" for i in range(len(geoms))]}
    gpd.GeoDataFrame(cols, geometry=list(geoms), crs=crs).to_file(path)
    return path


# ---------------------------------------------------------------------------
# Rasters
# ---------------------------------------------------------------------------
def r_not_a_raster(tmp):
    p = tmp / "readme.tif"
    p.write_text("not a raster at all")
    open_scene(p)


def r_truncated(tmp):
    good = _s2(tmp / "good.tif", shape=(256, 256))
    p = tmp / "cut.tif"
    p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    open_scene(p).read()


def r_zero_bytes(tmp):
    p = tmp / "empty.tif"
    p.write_bytes(b"")
    open_scene(p)


def r_missing_file(tmp):
    open_scene(tmp / "nowhere" / "scene.tif")


def r_no_crs(tmp):
    p = tmp / "nocrs.tif"
    with rasterio.open(p, "w", driver="GTiff", width=8, height=8, count=6, dtype="uint16", transform=T) as ds:
        ds.write(np.full((6, 8, 8), 900, dtype="uint16"))
    open_scene(p, sensor="sentinel2_l2a", bands={"red": 3, "nir": 4})


def r_no_geotransform(tmp):
    p = tmp / "notransform.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(p, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint16",
                           crs="EPSG:32650") as ds:
            ds.write(np.full((1, 8, 8), 900, dtype="uint16"))
    open_scene(p, sensor="gf1_wfv", bands={"red": 1})


def r_rotated(tmp):
    p = write_raster(tmp / "rot.tif", np.full((4, 8, 8), 900, dtype="uint16"),
                     transform=Affine(10, 2, 780_000, 2, -10, 3_350_000))
    open_scene(p, sensor="gf1_wfv")


def r_unknown_sensor(tmp):
    p = write_raster(tmp / "mystery.tif", np.full((5, 8, 8), 0.2, dtype="float32"))
    open_scene(p)


def r_too_few_bands(tmp):
    p = write_raster(tmp / "gf1_wfv_x.tif", np.full((2, 8, 8), 900, dtype="uint16"))
    open_scene(p, sensor="gf1_wfv")


def r_band_out_of_range(tmp):
    p = write_raster(tmp / "gf.tif", np.full((4, 8, 8), 900, dtype="uint16"))
    open_scene(p, sensor="gf1_wfv", bands={"nir": 7})


def r_bad_band_name(tmp):
    p = write_raster(tmp / "gf.tif", np.full((4, 8, 8), 900, dtype="uint16"))
    open_scene(p, sensor="gf1_wfv", bands={"infrared": 4})


def r_unknown_sensor_name(tmp):
    p = write_raster(tmp / "gf.tif", np.full((4, 8, 8), 900, dtype="uint16"))
    open_scene(p, sensor="worldview3")


def r_index_needs_missing_band(tmp):
    p = write_raster(tmp / "drone.tif", np.full((3, 8, 8), 120, dtype="uint8"))
    s = open_scene(p)
    from ecopatch.compute.indices import compute_index

    compute_index("ndvi", s.read().bands, source=s.source)


def r_empty_folder(tmp):
    (tmp / "imagery").mkdir()
    (tmp / "imagery" / "notes.txt").write_text("x")
    open_scene(tmp / "imagery")


def r_bad_stac(tmp):
    p = tmp / "item.json"
    p.write_text('{"type": "Collection"}')
    open_scene(p)


def r_disjoint_extents(tmp):
    b = open_scene(_s2(tmp / "b_20210918.tif", value="forest|soil"))
    a = open_scene(_s2(tmp / "a_20210919.tif", value="forest|soil"))
    far = read_patches(_mines(tmp / "m.gpkg", geoms=[box(100_000, 100_000, 100_200, 100_200)]), id_field="矿山编号")
    ecopatch.assess_restoration(b, a, far, progress=False)


def r_all_nodata_after(tmp):
    b = open_scene(_s2(tmp / "b_20210918.tif", value="forest|soil"))
    a = open_scene(_s2(tmp / "a_20210919.tif", value=0))
    m = read_patches(_mines(tmp / "m.gpkg"), id_field="矿山编号")
    ecopatch.assess_restoration(b, a, m, progress=False)


def r_all_cloud_after(tmp):
    b = open_scene(_s2(tmp / "b_20210918.tif", value="forest|soil", scl=4))
    a = open_scene(_s2(tmp / "a_20210919.tif", value="forest|soil", scl=9))
    res = gpd.GeoDataFrame({"保护地名称": ["x"], "功能分区": ["核心区"]},
                           geometry=[box(780_050, 3_349_450, 780_550, 3_349_950)], crs="EPSG:32650")
    ecopatch.detect_changes(b, a, res, progress=False)


def r_reserves_without_zone_field(tmp):
    b = open_scene(_s2(tmp / "b_20210918.tif", value="forest|soil"))
    a = open_scene(_s2(tmp / "a_20210919.tif", value="forest|soil"))
    res = gpd.GeoDataFrame({"保护地名称": ["x"]}, geometry=[box(780_050, 3_349_450, 780_550, 3_349_950)],
                           crs="EPSG:32650")
    ecopatch.detect_changes(b, a, res, progress=False)


def r_negative_mmu(tmp):
    b = open_scene(_s2(tmp / "b_20210918.tif", value="forest|soil"))
    a = open_scene(_s2(tmp / "a_20210919.tif", value="forest|soil"))
    ecopatch.detect_changes(b, a, min_area_m2=-5, progress=False)


def r_bad_scheduler(tmp):
    b = open_scene(_s2(tmp / "b_20210918.tif", value="forest|soil"))
    a = open_scene(_s2(tmp / "a_20210919.tif", value="forest|soil"))
    m = read_patches(_mines(tmp / "m.gpkg"), id_field="矿山编号")
    ecopatch.assess_restoration(b, a, m, scheduler="quantum", progress=False)


def r_bad_date(tmp):
    open_scene(_s2(tmp / "b_20210918.tif"), date="last spring")


# ---------------------------------------------------------------------------
# Polygons
# ---------------------------------------------------------------------------
def v_missing_crs(tmp):
    p = tmp / "m.shp"
    _mines(p, id=["K1"])
    (tmp / "m.prj").unlink()
    read_patches(p)


def v_shapefile_field_name_cut_mid_character(tmp):
    # DBF field names hold 10 bytes: "矿山编号名称" in UTF-8 is cut inside a character
    p = tmp / "m.shp"
    _mines(p, 矿山编号名称=["K1"])
    read_patches(p)


def v_empty_layer(tmp):
    p = tmp / "m.gpkg"
    gpd.GeoDataFrame({"id": []}, geometry=[], crs="EPSG:4490").to_file(p)
    read_patches(p)


def v_points(tmp):
    read_patches(_mines(tmp / "m.gpkg", geoms=[Point(780_100, 3_349_600)]))


def v_lines(tmp):
    read_patches(_mines(tmp / "m.gpkg", geoms=[LineString([(780_100, 3_349_600), (780_200, 3_349_700)])]))


def v_duplicate_ids(tmp):
    read_patches(_mines(tmp / "m.gpkg", geoms=[MINE, MINE], 矿山编号=["K1", "K1"]), id_field="矿山编号")


def v_missing_ids(tmp):
    read_patches(_mines(tmp / "m.gpkg", geoms=[MINE, MINE], 矿山编号=["K1", None]), id_field="矿山编号")


def v_no_id_field(tmp):
    read_patches(_mines(tmp / "m.gpkg"), id_field="mine_no")


def v_all_empty_geometries(tmp):
    read_patches(_mines(tmp / "m.gpkg", geoms=[None, Polygon()], 矿山编号=["a", "b"]))


def v_bowtie_strict(tmp):
    bow = Polygon([(780_100, 3_349_600), (780_300, 3_349_800), (780_300, 3_349_600), (780_100, 3_349_800)])
    read_patches(_mines(tmp / "m.gpkg", geoms=[bow]), on_invalid="raise")


def v_bad_policy(tmp):
    read_patches(_mines(tmp / "m.gpkg"), on_invalid="pretend")


def v_swapped_latlon(tmp):
    read_patches(_mines(tmp / "m.gpkg", geoms=[box(30.22, 119.95, 30.23, 119.96)], crs="EPSG:4490"))


def v_gk_as_degrees(tmp):
    read_patches(_mines(tmp / "m.gpkg", geoms=[box(40_500_000, 3_345_000, 40_500_100, 3_345_100)], crs="EPSG:4490"))


def v_gk_zone_prefix_mismatch(tmp):
    read_patches(_mines(tmp / "m.gpkg", geoms=[box(40_500_000, 3_345_000, 40_500_100, 3_345_100)], crs="EPSG:4549"))


def v_not_a_vector(tmp):
    p = tmp / "m.gpkg"
    p.write_bytes(b"\x00" * 100)
    read_patches(p)


def v_multilayer_without_layer(tmp):
    p = tmp / "m.gpkg"
    gpd.GeoDataFrame({"a": [1]}, geometry=[MINE], crs="EPSG:32650").to_file(p, layer="one")
    gpd.GeoDataFrame({"a": [1]}, geometry=[MINE], crs="EPSG:32650").to_file(p, layer="two")
    read_patches(p)


def v_mines_without_patch_id(tmp):
    b = open_scene(_s2(tmp / "b_20210918.tif", value="forest|soil"))
    m = gpd.GeoDataFrame({"x": [1]}, geometry=[MINE], crs="EPSG:32650")
    ecopatch.assess_restoration(b, b, m, progress=False)


def v_unknown_direction(tmp):
    b = open_scene(_s2(tmp / "b_20210918.tif", value="forest|soil"))
    a = open_scene(_s2(tmp / "a_20210919.tif", value="forest|soil"))
    m = read_patches(_mines(tmp / "m.gpkg", 矿山编号=["K1"], 修复方向=["宜游泳"]), id_field="矿山编号")
    ecopatch.assess_restoration(b, a, m, progress=False)


# ---------------------------------------------------------------------------
# Run configuration
# ---------------------------------------------------------------------------
_GOOD_CFG = """
[inputs]
imagery = "imagery"
mines = "mines.gpkg"
reserves = "reserves.gpkg"

[outputs]
dir = "runs"
"""


def _cfg(tmp, text):
    from ecopatch.run.config import load_config

    (tmp / "imagery").mkdir(exist_ok=True)
    for name in ("mines.gpkg", "reserves.gpkg"):
        (tmp / name).write_bytes(b"")
    p = tmp / "ecopatch.toml"
    p.write_text(text, encoding="utf-8")
    return load_config(p)


def c_unknown_key(tmp):
    _cfg(tmp, _GOOD_CFG + "\n[detection]\nmin_aera = 400\n")


def c_unknown_section(tmp):
    _cfg(tmp, _GOOD_CFG + "\n[detections]\nmin_area = 400\n")


def c_wrong_type(tmp):
    _cfg(tmp, _GOOD_CFG + '\n[detection]\nmin_area = "big"\n')


def c_negative_mmu(tmp):
    _cfg(tmp, _GOOD_CFG + "\n[detection]\nmin_area = -1\n")


def c_bad_unit(tmp):
    _cfg(tmp, _GOOD_CFG + '\n[detection]\nmin_area_unit = "acre"\n')


def c_missing_path(tmp):
    _cfg(tmp, _GOOD_CFG.replace('mines = "mines.gpkg"', 'mines = "nowhere/mines.gpkg"'))


def c_missing_required(tmp):
    _cfg(tmp, _GOOD_CFG.replace('reserves = "reserves.gpkg"\n', ""))


def c_bad_baseline(tmp):
    _cfg(tmp, _GOOD_CFG + '\n[run]\nbaseline = "newest"\n')


def c_fixed_without_date(tmp):
    _cfg(tmp, _GOOD_CFG + '\n[run]\nbaseline = "fixed"\n')


def c_not_toml(tmp):
    _cfg(tmp, "[inputs\nimagery = \n")


# ---------------------------------------------------------------------------
# Field results
# ---------------------------------------------------------------------------
def _ledger_with_cases(tmp):
    from ecopatch.ledger import Ledger

    patches = gpd.GeoDataFrame(
        {"patch_id": ["20240912-a", "20240912-b"], "change_type": ["construction", "bare_soil"],
         "area_m2": [900.0, 700.0], "area_mu": [1.35, 1.05], "confidence": [0.9, 0.8],
         "date_before": ["2021-09-18"] * 2, "date_after": ["2024-09-12"] * 2, "ndvi_before": [0.8, 0.8],
         "ndvi_after": [0.2, 0.3], "centroid_lon": [119.95, 119.96], "centroid_lat": [30.22, 30.23],
         "cgcs2000_lon": [119.95, 119.96], "cgcs2000_lat": [30.22, 30.23], "reserve_name": ["x", "x"],
         "zone": ["core", "buffer"], "zone_name": ["核心区", "缓冲区"]},
        geometry=[box(119.95, 30.22, 119.9503, 30.2203), box(119.96, 30.23, 119.9603, 30.2303)], crs="EPSG:4490")
    ledger = Ledger(tmp / "ledger.gpkg")
    ledger.add_detections(patches, run_id="r1")
    return ledger, list(ledger.cases()["case_id"])


def _results_csv(tmp, rows, header="图斑编号,核查结论,实际类型,核查人,核查日期,整改期限"):
    p = tmp / "results.csv"
    p.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8-sig")
    return p


def _rejected(tmp, row_for):
    ledger, ids = _ledger_with_cases(tmp)
    rep = import_results(ledger, _results_csv(tmp, [row_for(ids)]), today=__import__("datetime").date(2024, 11, 1))
    if len(rep.rejected):
        raise E.FieldCheckError("; ".join(rep.rejected["reason"].astype(str)))
    return rep


def f_unknown_case(tmp):
    _rejected(tmp, lambda ids: "YB-2099-000001,确认,工业开发,李工,2024-10-10,2025-01-01")


def f_bad_date(tmp):
    _rejected(tmp, lambda ids: f"{ids[0]},确认,工业开发,李工,2024-02-30,2025-01-01")


def f_future_date(tmp):
    _rejected(tmp, lambda ids: f"{ids[0]},确认,工业开发,李工,2030-01-01,2031-01-01")


def f_value_not_allowed(tmp):
    _rejected(tmp, lambda ids: f"{ids[0]},不确定,工业开发,李工,2024-10-10,2025-01-01")


def f_type_not_allowed(tmp):
    _rejected(tmp, lambda ids: f"{ids[0]},确认,外星开发,李工,2024-10-10,2025-01-01")


def f_deadline_before_check(tmp):
    _rejected(tmp, lambda ids: f"{ids[0]},确认,工业开发,李工,2024-10-10,2024-09-01")


def f_workbook_reshaped(tmp):
    ledger, ids = _ledger_with_cases(tmp)
    p = _results_csv(tmp, [f"{ids[0]},确认"], header="编号,结论")
    import_results(ledger, p)


def f_not_a_workbook(tmp):
    ledger, _ = _ledger_with_cases(tmp)
    p = tmp / "results.xlsx"
    p.write_text("not a workbook")
    import_results(ledger, p)


CASES = [
    (r_not_a_raster, E.RasterReadError, "cannot open as a raster"),
    (r_truncated, E.RasterReadError, "truncated"),
    (r_zero_bytes, E.RasterReadError, "empty.tif"),
    (r_missing_file, E.RasterReadError, "no such file"),
    (r_no_crs, E.MissingCRSError, "gdal_edit.py -a_srs"),
    (r_no_geotransform, E.InputDataError, "no geotransform"),
    (r_rotated, E.InputDataError, "rotated"),
    (r_unknown_sensor, E.InputDataError, "pass sensor="),
    (r_too_few_bands, E.MissingBandError, "bands="),
    (r_band_out_of_range, E.MissingBandError, "file has 4 band"),
    (r_bad_band_name, E.ConfigError, "'infrared' is not a band name"),
    (r_unknown_sensor_name, E.ConfigError, "unknown sensor 'worldview3'"),
    (r_index_needs_missing_band, E.MissingBandError, "NDVI needs band"),
    (r_empty_folder, E.InputDataError, "no raster band files"),
    (r_bad_stac, E.InputDataError, "not a STAC item"),
    (r_disjoint_extents, E.NoOverlapError, "overlap"),
    (r_all_nodata_after, E.NoValidPixelsError, "a_20210919.tif"),
    (r_all_cloud_after, E.NoValidPixelsError, "cloud"),
    (r_reserves_without_zone_field, E.InputDataError, "zone_field"),
    (r_negative_mmu, E.ConfigError, "minimum mapping unit"),
    (r_bad_scheduler, E.ConfigError, "scheduler="),
    (r_bad_date, E.ConfigError, "YYYY-MM-DD"),
    (v_missing_crs, E.MissingCRSError, ".prj"),
    (v_shapefile_field_name_cut_mid_character, E.VectorReadError, "GeoPackage"),
    (v_empty_layer, E.GeometryError, "empty"),
    (v_points, E.GeometryError, "Point"),
    (v_lines, E.GeometryError, "LineString"),
    (v_duplicate_ids, E.DuplicateIDError, "repeats IDs ['K1']"),
    (v_missing_ids, E.DuplicateIDError, "empty in 1 row"),
    (v_no_id_field, E.InputDataError, "no field 'mine_no'"),
    (v_all_empty_geometries, E.GeometryError, "no feature has a usable polygon"),
    (v_bowtie_strict, E.GeometryError, "on_invalid='fix'"),
    (v_bad_policy, E.ConfigError, "on_invalid='pretend'"),
    (v_swapped_latlon, E.SuspiciousCoordinatesError, "swapped"),
    (v_gk_as_degrees, E.SuspiciousCoordinatesError, "not degrees"),
    (v_gk_zone_prefix_mismatch, E.SuspiciousCoordinatesError, "zone number"),
    (v_not_a_vector, E.VectorReadError, "m.gpkg"),
    (v_multilayer_without_layer, E.InputDataError, "layer="),
    (v_mines_without_patch_id, E.InputDataError, "patch_id"),
    (v_unknown_direction, E.InputDataError, "宜游泳"),
    (c_unknown_key, E.ConfigError, "min_aera"),
    (c_unknown_section, E.ConfigError, "detections"),
    (c_wrong_type, E.ConfigError, "min_area"),
    (c_negative_mmu, E.ConfigError, "min_area"),
    (c_bad_unit, E.ConfigError, "acre"),
    (c_missing_path, E.ConfigError, "nowhere"),
    (c_missing_required, E.ConfigError, "reserves"),
    (c_bad_baseline, E.ConfigError, "newest"),
    (c_fixed_without_date, E.ConfigError, "reference_date"),
    (c_not_toml, E.ConfigError, "TOML"),
    (f_unknown_case, E.FieldCheckError, "YB-2099-000001"),
    (f_bad_date, E.FieldCheckError, "2024-02-30"),
    (f_future_date, E.FieldCheckError, "2030-01-01"),
    (f_value_not_allowed, E.FieldCheckError, "不确定"),
    (f_type_not_allowed, E.FieldCheckError, "外星开发"),
    (f_deadline_before_check, E.FieldCheckError, "整改期限"),
    (f_workbook_reshaped, E.FieldCheckError, "核查结论"),
    (f_not_a_workbook, E.FieldCheckError, "results.xlsx"),
]


@pytest.mark.parametrize("build, cls, fragment", CASES, ids=[c[0].__name__ for c in CASES])
def test_bad_input_gets_a_clear_error(tmp_path, build, cls, fragment):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(cls) as info:
            build(tmp_path)
    assert isinstance(info.value, E.EcopatchError)
    assert fragment in str(info.value), str(info.value)


# ---------------------------------------------------------------------------
# Inputs that look odd but must work
# ---------------------------------------------------------------------------
def test_saturated_and_overflow_values_are_not_data(tmp_path):
    arr = np.full((6, 8, 8), 1500, dtype="uint16")
    arr[:, 0, 0] = 65535
    arr[3, 1, 1] = 60000  # reflectance 6.0: impossible
    s = open_scene(write_raster(tmp_path / "s_20210918.tif", arr, descriptions=S2, nodata=0))
    obs = s.read()
    assert not obs.valid[0, 0] and not obs.valid[1, 1] and obs.valid[2, 2]


def test_one_pixel_raster_and_mixed_dtypes(tmp_path):
    b = open_scene(_s2(tmp_path / "b_20210918.tif", value="forest|soil"))
    one = write_raster(tmp_path / "a_20210919.tif", np.full((6, 1, 1), 0.2, dtype="float32"), descriptions=S2,
                       transform=Affine(640, 0, 780_000, 0, -640, 3_350_000))
    a = open_scene(one, sensor="sentinel2_l2a")
    m = read_patches(_mines(tmp_path / "m.gpkg"), id_field="矿山编号")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = ecopatch.assess_restoration(b, a, m, progress=False)
    # a 640 m cell has one areal factor, so 300 m from its centre the area is off by ~2e-6
    assert len(r) == 1 and r["valid_fraction"].iloc[0] == pytest.approx(1.0, abs=1e-5)


def test_dates_in_different_crs_work(tmp_path):
    b = open_scene(_s2(tmp_path / "b_20210918.tif", value="forest|soil"))
    # the same ground in CGCS2000 Gauss-Kruger (EPSG:4549), 5 m pixels
    from ecopatch.geo.geodesy import transformer

    x, y = transformer("EPSG:32650", "EPSG:4549").transform(780_000, 3_350_000)
    a = open_scene(_s2(tmp_path / "a_20210919.tif", value="forest|soil", shape=(140, 140), crs="EPSG:4549",
                       transform=Affine(5, 0, x - 20, 0, -5, y + 20)))
    m = read_patches(_mines(tmp_path / "m.gpkg"), id_field="矿山编号")
    r = ecopatch.assess_restoration(b, a, m, progress=False)
    assert r["valid_fraction"].iloc[0] == pytest.approx(1.0)
    assert r["restored_m2"].iloc[0] < 0.02 * r["area_m2"].iloc[0]  # nothing changed


def test_huge_sparse_raster_is_not_read_whole(tmp_path):
    # a 200 000 x 200 000 px uint16 file (80 GB if read whole) holding real data in one tile only
    p = tmp_path / "huge_20210918.tif"
    prof = dict(driver="GTiff", width=200_000, height=200_000, count=6, dtype="uint16", crs="EPSG:32650",
                transform=T, nodata=0, tiled=True, blockxsize=256, blockysize=256, SPARSE_OK=True,
                compress="deflate", BIGTIFF="YES")
    with rasterio.open(p, "w", **prof) as ds:
        for i, v in enumerate([300, 600, 350, 3500, 1700, 800], start=1):
            ds.write(np.full((256, 256), v, dtype="uint16"), i, window=rasterio.windows.Window(0, 0, 256, 256))
        for i, d in enumerate(S2, start=1):
            ds.set_band_description(i, d)
    assert p.stat().st_size < 50_000_000
    s = open_scene(p)
    m = read_patches(_mines(tmp_path / "m.gpkg"), id_field="矿山编号")
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = ecopatch.assess_restoration(s, s, m, progress=False)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert r["valid_fraction"].iloc[0] == pytest.approx(1.0)
    assert grown_mb < 500


def test_polygon_far_outside_the_imagery_is_flagged_not_fatal(tmp_path):
    b = open_scene(_s2(tmp_path / "b_20210918.tif", value="forest|soil"))
    a = open_scene(_s2(tmp_path / "a_20210919.tif", value="forest|soil"))
    m = read_patches(_mines(tmp_path / "m.gpkg", geoms=[MINE, box(790_000, 3_340_000, 790_100, 3_340_100)],
                            矿山编号=["in", "out"]), id_field="矿山编号")
    with pytest.warns(E.LowCoverageWarning, match="out"):
        r = ecopatch.assess_restoration(b, a, m, progress=False)
    assert r.set_index("patch_id").loc["out", "status"] == "insufficient_data"


def test_cli_bad_input_exits_1_with_one_line_and_no_output(tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_text("nope")
    m = _mines(tmp_path / "m.gpkg")
    out = tmp_path / "result.gpkg"
    res = CliRunner().invoke(cli, ["assess", "--before", str(junk), "--after", str(junk), "--mines", str(m),
                                   "--out", str(out)])
    assert res.exit_code == 1
    assert "cannot open as a raster" in res.output and "Traceback" not in res.output
    assert not out.exists() and not list(tmp_path.glob(".result*"))
