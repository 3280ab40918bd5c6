"""Tests for ecopatch.data.datasets: the written products, layers, truth files and sample_data/."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio

from ecopatch.data.datasets import SIZES, _main, load_sample_data, make_sample_data, write_scene
from ecopatch.data.synthetic import BANDS_10M, DATES, RASTERS, make_scene
from ecopatch.errors import ConfigError, InputDataError, OutputExistsError
from ecopatch.geo.geodesy import geodesic_area_m2
from ecopatch.vocabulary import canonical_zone

REPO = Path(__file__).resolve().parents[2]
BAND_ID = {"B02": "1", "B03": "2", "B04": "3", "B08": "7", "B11": "11", "B12": "12"}


@pytest.fixture(scope="module")
def committed():
    """The committed sample_data/ folder (regenerate: python -m ecopatch.data.datasets sample_data)."""
    return load_sample_data()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    return make_sample_data(out, size=(64, 96), seed=5, n_mines=1, n_reserves=1, n_encroachments=2,
                            n_decoys=1)


def _mtd(path):
    root = ET.parse(path).getroot()
    return root


# -- layout ----------------------------------------------------------------------------------


def test_product_folders_follow_the_safe_layout(committed):
    after = committed.products["after"]
    assert after.name == "S2B_MSIL2A_20240912T023529_N0510_R089_T50RQU_20240912T061020.SAFE"
    assert committed.products["before"].name.startswith("S2A_MSIL2A_20210918T")
    b04 = committed.band("after", "B04")
    assert b04.relative_to(after).parts[:2] == ("GRANULE", "L2A_T50RQU_A038975_20240912T023529")
    assert b04.relative_to(after).as_posix().endswith("IMG_DATA/R10m/T50RQU_20240912T023529_B04_10m.tif")
    assert committed.band("after", "SCL").name == "T50RQU_20240912T023529_SCL_20m.tif"
    assert committed.band("after", "B11").parent.name == "R20m"
    assert (b04.parents[2] / "MTD_TL.xml").exists()
    assert committed.drone.name == "drone_YH-KS-006_20240912.tif"
    assert {str(d) for d in committed.dates.values()} == {"2021-09-18", "2024-09-12"}
    with pytest.raises(InputDataError, match="B8A"):
        committed.band("after", "B8A")


@pytest.mark.parametrize("date", DATES)
@pytest.mark.parametrize("band", RASTERS)
def test_band_geotiffs(committed, date, band):
    with rasterio.open(committed.band(date, band)) as ds:
        assert ds.crs.to_epsg() == 32650
        assert ds.res == ((10.0, 10.0) if band in BANDS_10M else (20.0, 20.0))
        assert ds.shape == ((400, 500) if band in BANDS_10M else (200, 250))
        assert ds.nodata == 0
        assert ds.descriptions == (band,)
        assert ds.dtypes[0] == ("uint8" if band == "SCL" else "uint16")
        assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
        assert ds.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "2"


def test_committed_bands_match_the_generator(committed):
    info = json.loads(committed.scene_json.read_text(encoding="utf-8"))
    scene = make_scene(shape=tuple(info["params"]["shape"]), seed=info["params"]["seed"])
    for d in DATES:
        for b in RASTERS:
            with rasterio.open(committed.band(d, b)) as ds:
                arr = ds.read(1)
            diff = np.abs(arr.astype(np.int64) - scene.dn[d][b])
            # bit-identical on the machine that wrote them; allow a libm ulp elsewhere
            assert (diff > 1).sum() == 0 and (diff > 0).mean() < 1e-3, (d, b)


def test_product_metadata_xml(committed):
    ns = {"n1": "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd"}
    for d, baseline in (("before", "03.01"), ("after", "05.10")):
        root = _mtd(committed.metadata[d])
        info = root.find("n1:General_Info/Product_Info", ns)
        assert info.findtext("PROCESSING_BASELINE") == baseline
        assert info.findtext("PRODUCT_TYPE") == "S2MSI2A"
        assert info.findtext("PRODUCT_START_TIME").startswith(committed.dates[d].isoformat())
        assert info.findtext("Datatake/SPACECRAFT_NAME") == ("Sentinel-2A" if d == "before" else "Sentinel-2B")
        chars = root.find("n1:General_Info/Product_Image_Characteristics", ns)
        assert chars.findtext("QUANTIFICATION_VALUES_LIST/BOA_QUANTIFICATION_VALUE") == "10000"
        offsets = {e.get("band_id"): e.text for e in chars.iter("BOA_ADD_OFFSET")}
        if d == "before":
            assert offsets == {}
        else:
            assert offsets == {str(i): "-1000" for i in range(13)}
        physical = {e.get("physicalBand"): e.get("bandId") for e in chars.iter("Spectral_Information")}
        for b, i in BAND_ID.items():
            assert physical[b.replace("B0", "B")] == i
        files = [e.text for e in root.iter("IMAGE_FILE")]
        assert any(f.endswith("_B04_10m") for f in files) and any(f.endswith("_SCL_20m") for f in files)


def test_after_dn_carry_the_offset(committed):
    arrays = {}
    for d in DATES:
        with rasterio.open(committed.band(d, "B04")) as ds:
            arrays[d] = ds.read(1).astype(float)
        with rasterio.open(committed.band(d, "SCL")) as ds:
            arrays[d + "_scl"] = np.repeat(np.repeat(ds.read(1), 2, 0), 2, 1)
    veg = (arrays["before_scl"] == 4) & (arrays["after_scl"] == 4)
    dn_diff = np.median(arrays["after"][veg] - arrays["before"][veg])
    assert 900 < dn_diff < 1100
    rho_diff = np.median((arrays["after"][veg] - 1000) / 1e4 - arrays["before"][veg] / 1e4)
    assert abs(rho_diff) < 0.01


# -- vector layers and truth --------------------------------------------------------------------


def test_mines_geopackage(committed):
    mines = gpd.read_file(committed.mines, layer="mines")
    assert mines.crs.to_epsg() == 4490
    assert list(mines.columns[:6]) == ["矿山编号", "矿山名称", "修复方向", "所在区县", "责任单位", "计划完成年份"]
    assert len(mines) == 8 and (~mines.geometry.is_valid).sum() == 1
    assert set(mines["修复方向"]) <= {"宜林", "宜草", "宜耕", "宜灌", "宜荒"}
    lon, lat = mines.geometry.iloc[0].representative_point().coords[0]
    assert 119.9 < lon < 120.0 and 30.1 < lat < 30.3  # x = longitude


def test_reserves_geopackage(committed):
    res = gpd.read_file(committed.reserves, layer="reserves")
    assert res.crs.to_epsg() == 4490
    assert list(res.columns[:5]) == ["保护地编号", "保护地名称", "保护地类型", "级别", "功能分区"]
    assert res["功能分区"].map(canonical_zone).notna().all()
    assert set(res["保护地类型"]) <= {"自然保护区", "森林公园", "湿地公园"}
    assert set(res["级别"]) <= {"国家级", "省级"}
    assert res["保护地名称"].nunique() == 2 and res.geometry.is_valid.all()


def test_truth_files(committed):
    truth = pd.read_csv(committed.restoration_truth)
    mines = gpd.read_file(committed.mines)
    assert list(truth["mine_id"]) == list(mines["矿山编号"])
    assert (truth["restored_m2"] <= truth["damaged_m2"] + 0.01).all()
    assert (truth["damaged_m2"] <= truth["area_m2"] + 0.01).all()
    enc = gpd.read_file(committed.encroachments, layer="encroachments")
    assert enc.crs.to_epsg() == 32650
    assert np.allclose(geodesic_area_m2(enc.geometry.values, enc.crs), enc["area_m2"], rtol=1e-9)
    assert (enc.loc[enc["is_decoy"], "area_m2"] < 400).all()
    assert (enc.loc[~enc["is_decoy"], "area_m2"] >= 400).all()
    assert enc["under_cloud"].any() and enc["zones"].str.contains(",").any()
    clouds = gpd.read_file(committed.clouds, layer="clouds")
    assert set(clouds["kind"]) == {"cloud_high", "cloud_medium", "cirrus", "shadow"}
    nodata = gpd.read_file(committed.clouds, layer="nodata")
    assert list(nodata["date"]) == ["before"]
    info = json.loads(committed.scene_json.read_text(encoding="utf-8"))
    assert info["params"]["seed"] == 20240912 and info["params"]["shape"] == [400, 500]
    assert "python -m ecopatch.data.datasets" in info["command"]


def test_drone_orthomosaic_file(committed):
    with rasterio.open(committed.drone) as ds:
        assert ds.crs.to_epsg() == 4549
        assert ds.count == 3 and ds.dtypes == ("uint8",) * 3 and ds.res == (0.1, 0.1)
        assert ds.profile["compress"] == "jpeg" and ds.profile["photometric"] == "ycbcr"
        assert ds.profile["tiled"] and ds.overviews(1)
        assert all(f == [rasterio.enums.MaskFlags.per_dataset] for f in ds.mask_flag_enums)
        mask = ds.read_masks(1, out_shape=(ds.height // 8, ds.width // 8))
        assert set(np.unique(mask)) == {0, 255}
        assert 400_000 < ds.bounds.left < 600_000  # easting first despite the northing-first CRS
    assert 0.5e6 < committed.drone.stat().st_size < 3e6


def test_sample_data_fits_the_size_budget():
    folder = REPO / "sample_data"
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert total < 10e6
    assert (folder / "README.md").exists()


# -- writer behaviour ------------------------------------------------------------------------


def test_write_scene_refuses_to_overwrite(written):
    scene = make_scene(shape=(64, 96), seed=5, n_mines=1, n_reserves=1, n_encroachments=2, n_decoys=1)
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_scene(scene, written.root)
    again = write_scene(scene, written.root, overwrite=True)
    assert again == written
    assert not [p for p in written.root.rglob(".*") if p.is_file()]  # no temporary files left


def test_written_sample_roundtrips_through_load(written):
    assert load_sample_data(written.root) == written
    assert all(p.exists() for p in written.files())
    with rasterio.open(written.drone) as ds:
        assert ds.crs.to_epsg() == 4549


def test_load_sample_data_explains_what_to_do(tmp_path):
    with pytest.raises(InputDataError, match=r"does not exist.*make_sample_data") as err:
        load_sample_data(tmp_path / "nowhere")
    assert "ecopatch demo" in str(err.value)
    with pytest.raises(InputDataError, match="found 0"):
        load_sample_data(tmp_path)


def test_sizes_and_module_entry_point(tmp_path, capsys):
    assert SIZES["small"] == (400, 500) and SIZES["tile"] == (10980, 10980)
    assert _main([str(tmp_path / "cli"), "--size", "48x64", "--seed", "3", "--no-drone"]) == 0
    assert "total" in capsys.readouterr().out
    assert _main([str(tmp_path / "cli"), "--size", "48x64", "--seed", "3", "--no-drone"]) == 1
    assert "already exist" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown size"):
        make_sample_data(tmp_path / "x", size="huge")
