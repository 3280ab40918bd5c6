"""Landsat Collection 2 TM/ETM+/OLI (Level-1 and Level-2) and HLS: band maps, scaling, QA masks."""

import datetime as dt
import math
import warnings

import numpy as np
import pytest

from ecopatch.errors import AssumptionWarning, InputDataError
from ecopatch.raster.landsat import identify_text, parse_mtl
from ecopatch.raster.scene import open_scene
from ecopatch.raster.sensors import landsat_qa_clear, landsat_qa_flags
from tests.raster.product_fixtures import L8, L8_ID, hls_granule, landsat_from_l8


def _open(*a, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = open_scene(*a, **kw)
    return s, {type(x.message) for x in w}


@pytest.mark.realdata
def test_real_landsat8_l2_from_its_mtl(shared_data):
    s, w = _open(shared_data / L8)
    assert s.sensor.name == "landsat_oli_c2l2" and s.info.platform == "LANDSAT_8" and s.info.level == "L2SP"
    assert s.band("red").band_id == "SR_B4" and s.band("nir").band_id == "SR_B5"
    assert s.band("red").scale == pytest.approx(2.75e-5) and s.band("red").offset == pytest.approx(-0.2)
    assert AssumptionWarning not in w


@pytest.mark.realdata
def test_real_qa_pixel_flags(shared_data):
    import rasterio

    with rasterio.open(shared_data / L8 / f"{L8_ID}_QA_PIXEL.TIF") as ds:
        qa = ds.read(1)
    f = landsat_qa_flags(qa)
    # PROVENANCE.md: 1 (fill) 44 854 px, 22280 (cloud, high) 24 286, 55052 (cloud + cirrus) 77 092,
    # 23888 (clear + cloud shadow) 62
    assert int(f["fill"].sum()) == 44_854
    assert int(f["cloud"].sum()) == 24_286 + 77_092
    assert int(f["cirrus"].sum()) == 77_092
    assert int(f["cloud_shadow"].sum()) == 62
    assert int((f["cloud_confidence"] == 3).sum()) == 24_286 + 77_092
    assert int(landsat_qa_clear(qa).sum()) == 0


@pytest.mark.realdata
@pytest.mark.parametrize("spacecraft, profile, inst", [(7, "landsat_etm_c2l2", "ETM+"), (5, "landsat_tm_c2l2", "TM")])
def test_tm_and_etm_level2_read_the_same_roles_as_oli(shared_data, tmp_path, spacecraft, profile, inst):
    # the derived product holds the L8 pixels under TM/ETM+ band numbers: red = SR_B3, NIR = SR_B4
    folder = landsat_from_l8(shared_data, tmp_path, spacecraft=spacecraft)
    s, w = _open(folder)
    assert s.sensor.name == profile and s.info.instrument == inst and s.info.platform == f"LANDSAT_{spacecraft}"
    assert s.band("red").band_id == "SR_B3" and s.band("nir").band_id == "SR_B4"
    assert s.band("swir1").band_id == "SR_B5" and s.band("swir2").band_id == "SR_B7"
    assert s.mask.kind == "qa_pixel" and AssumptionWarning not in w
    l8, _ = _open(shared_data / L8)
    a = s.with_mask(None).read(["red", "nir", "swir1"])
    b = l8.with_mask(None).read(["red", "nir", "swir1"])
    for band in ("red", "nir", "swir1"):
        np.testing.assert_array_equal(a[band], b[band], err_msg=band)
    assert s.read().valid.sum() == 0  # the QA_PIXEL mask still applies (99.9 % cloud)


@pytest.mark.realdata
def test_etm_level1_toa_from_the_mtl(shared_data, tmp_path):
    folder = landsat_from_l8(shared_data, tmp_path, spacecraft=7, level=1)
    s, _ = _open(folder, haze="none")
    assert s.sensor.name == "landsat_etm_c2l1" and s.info.level == "L1TP"
    mtl = parse_mtl(next(folder.glob("*_MTL.txt")))
    se = float(mtl["IMAGE_ATTRIBUTES"]["SUN_ELEVATION"])
    mult = float(mtl["LEVEL1_RADIOMETRIC_RESCALING"]["REFLECTANCE_MULT_BAND_3"])
    add = float(mtl["LEVEL1_RADIOMETRIC_RESCALING"]["REFLECTANCE_ADD_BAND_3"])
    red = s.band("red")
    assert red.band_id == "B3"
    assert red.scale == pytest.approx(mult / math.sin(math.radians(se)))
    assert red.offset == pytest.approx(add / math.sin(math.radians(se)))
    assert any("sin(" in p for p in s.info.processing)


@pytest.mark.realdata
def test_level1_files_without_mtl_are_refused(shared_data, tmp_path):
    folder = landsat_from_l8(shared_data, tmp_path, spacecraft=7, level=1)
    next(folder.glob("*_MTL.txt")).unlink()
    with pytest.raises(InputDataError, match="without their _MTL.txt"):
        open_scene(folder)


@pytest.mark.realdata
def test_level2_files_without_mtl_use_the_product_id(shared_data, tmp_path):
    folder = landsat_from_l8(shared_data, tmp_path, spacecraft=7)
    next(folder.glob("*_MTL.txt")).unlink()
    s, _ = _open(folder)
    assert s.sensor.name == "landsat_etm_c2l2" and s.band("nir").band_id == "SR_B4"
    assert s.date == dt.date(2020, 10, 31)


@pytest.mark.realdata
def test_wrong_sensor_given_is_kept_but_said(shared_data, tmp_path):
    folder = landsat_from_l8(shared_data, tmp_path, spacecraft=7)
    with pytest.warns(AssumptionWarning, match="band map differs"):
        s = open_scene(folder, sensor="landsat_oli_c2l2")
    assert s.sensor.name == "landsat_oli_c2l2"


@pytest.mark.parametrize("text, sat, inst, level", [
    ("LE07_L2SP_119038_20000317_20200917_02_T1_SR_B4.TIF", 7, "ETM+", 2),
    ("LT05_L1TP_119038_20090317_20200827_02_T1_B4.TIF", 5, "TM", 1),
    ("LC09_L2SP_119038_20230317_20230319_02_T1_SR_B5.TIF", 9, "OLI", 2),
    ("taizhou_2000-03-17_L7ETM.tif", 7, "ETM+", None),
    ("LE71190382000077EDC00_B3.TIF", 7, "ETM+", None),
])
def test_identify_text(text, sat, inst, level):
    lid = identify_text(text)
    assert (lid.spacecraft, lid.instrument, lid.level) == (sat, inst, level)


def test_mss_is_refused_with_a_reason():
    with pytest.raises(InputDataError, match="MSS"):
        identify_text("LM05_L1TP_119038_19900317_20200827_02_T2_B4.TIF")


def test_stacked_landsat_export_band_ids():
    assert identify_text("export.tif", {"SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "ST_B6", "SR_B7"}).instrument \
        == "ETM+"
    assert identify_text("export.tif", {"SR_B2", "SR_B6", "QA_PIXEL"}).instrument == "OLI"


def test_mtl_json_and_xml_read_like_the_text(tmp_path):
    import json

    doc = {"LANDSAT_METADATA_FILE": {"PRODUCT_CONTENTS": {"PROCESSING_LEVEL": "L2SP"},
                                     "IMAGE_ATTRIBUTES": {"SPACECRAFT_ID": "LANDSAT_5", "SUN_ELEVATION": 40.5}}}
    (tmp_path / "x_MTL.json").write_text(json.dumps(doc))
    assert parse_mtl(tmp_path / "x_MTL.json")["IMAGE_ATTRIBUTES"]["SPACECRAFT_ID"] == "LANDSAT_5"
    (tmp_path / "x_MTL.xml").write_text(
        "<LANDSAT_METADATA_FILE><IMAGE_ATTRIBUTES><SPACECRAFT_ID>LANDSAT_7</SPACECRAFT_ID>"
        "</IMAGE_ATTRIBUTES></LANDSAT_METADATA_FILE>")
    assert parse_mtl(tmp_path / "x_MTL.xml")["IMAGE_ATTRIBUTES"]["SPACECRAFT_ID"] == "LANDSAT_7"


def test_hls_l30_band_map_date_and_fmask(tmp_path):
    s, _ = _open(hls_granule(tmp_path, kind="L"))
    assert s.sensor.name == "hls_l30" and s.date == dt.date(2021, 9, 19)  # 2021, day 262
    assert s.band("nir").band_id == "B05" and s.band("swir1").band_id == "B06" and s.mask.kind == "fmask"
    obs = s.read()
    assert not obs.valid[5, 5] and not obs.valid[6, 6]  # cloud, cloud shadow
    assert obs.valid[7, 7] and obs.valid[8, 8]  # water, aerosol bits: kept
    assert not obs.valid[0, 0]  # -9999
    import rasterio

    with rasterio.open(s.band("red").path) as ds:
        dn = ds.read(1)
    np.testing.assert_allclose(obs["red"][1:4, 1:4], dn[1:4, 1:4] * 1e-4, rtol=1e-6)


def test_hls_s30_band_map(tmp_path):
    s, _ = _open(hls_granule(tmp_path, kind="S"))
    assert s.sensor.name == "hls_s30" and s.band("nir").band_id == "B08" and s.band("nir08").band_id == "B8A"
