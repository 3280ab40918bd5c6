"""Gaofen L1A packages (fixtures following the CRESDA layout, see product_fixtures): identification,
calibration, orthorectification through the RPCs, pan-sharpening."""

import datetime as dt
import json
import math
import warnings

import numpy as np
import pytest

from ecopatch.errors import AssumptionWarning, InputDataError
from ecopatch.raster.gaofen import calibration_for, earth_sun_distance_au, load_calibration
from ecopatch.raster.scene import open_scene
from tests.conftest import write_raster
from tests.raster.product_fixtures import gaofen_package


def _open(*a, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = open_scene(*a, **kw)
    return s, w


def _reflectance(dn, sat, sensor, year, band, role, zenith, date):
    cal, _ = calibration_for(sat, sensor, year, {band: role})
    d = earth_sun_distance_au(date)
    return math.pi * (cal.gain[band] * dn + cal.bias[band]) * d * d / (cal.esun[band] * math.cos(math.radians(zenith)))


def test_shipped_table_cites_every_set():
    doc = load_calibration()
    for c in doc["coefficients"]:
        assert c["source"] in doc["sources"], c
    # GF-1 2017 as in CRESDA's 2017 table
    cal, note = calibration_for("GF1", "WFV3", 2017, {"B1": "blue"})
    assert cal.gain["B1"] == 0.1870 and cal.bias["B1"] == 0.0 and not note and "2017" in cal.source
    cal, note = calibration_for("GF2", "PMS1", 2023, {"B4": "nir"})
    assert cal.year == 2018 and "2023" in note and "calibration=" in note
    with pytest.raises(InputDataError, match="no calibration coefficients for GF4"):
        calibration_for("GF4", "PMI", 2020, {})


def test_gf2_pms_package_identified_calibrated_orthorectified(tmp_path):
    pkg = gaofen_package(tmp_path)
    s, w = _open(pkg, pansharpen=False, haze="none")
    assert s.sensor.name == "gf2_pms_l1a" and s.info.platform == "GF2" and s.info.instrument == "PMS1"
    assert s.info.level == "LEVEL1A" and s.date == dt.date(2016, 3, 24)
    assert any("SatelliteID = GF2" in e for e in s.info.evidence)
    assert {AssumptionWarning} <= {type(x.message) for x in w}  # no DEM
    assert any("no DEM" in a for a in s.info.assumptions)
    # orthorectified onto UTM 49N at 3.2 m
    assert s.grid.crs.to_epsg() == 32649 and s.grid.res == pytest.approx((3.2, 3.2))
    obs = s.read()
    c = obs.grid.shape[1]
    # vegetation (left) and soil (right): calibrated TOA reflectance, checked against the formula
    want = _reflectance(300, "GF2", "PMS1", 2016, "B4", "nir", 35.0, dt.date(2016, 3, 24))
    assert np.nanmedian(obs["nir"][20:50, 3:c // 2 - 4]) == pytest.approx(want, rel=1e-3)
    want = _reflectance(240, "GF2", "PMS1", 2016, "B3", "red", 35.0, dt.date(2016, 3, 24))
    assert np.nanmedian(obs["red"][20:50, c // 2 + 4:c - 3]) == pytest.approx(want, rel=1e-3)
    # the bright block sits where its ground coordinates say (rows 10-13, cols 40-43 of the L1A image)
    lat = 23.0 + (32 - 12) * 3.2 / 110_574.0
    lon = 113.5 + (42 - 32) * 3.2 / (111_320.0 * math.cos(math.radians(23.0)))
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32649", always_xy=True).transform(lon, lat)
    cc, r = ~s.grid.transform * (x, y)
    assert obs["red"][int(r), int(cc)] > 0.2  # DN 900 there, ~0.07 around


def test_gf2_pms_pansharpened_to_0_8_m(tmp_path):
    pkg = gaofen_package(tmp_path)
    s, _ = _open(pkg, haze="none")
    assert s.grid.res == pytest.approx((0.8, 0.8))
    assert any("pan-sharpened to 0.8 m" in p for p in s.info.processing)
    ms, _ = _open(pkg, pansharpen=False, haze="none")
    obs = s.read()
    # radiometry kept over uniform ground: sharpened vegetation NIR = multispectral NIR (weights fitted)
    c = obs.grid.shape[1]
    want = float(np.nanmedian(ms.read()["nir"][20:50, 3:25]))
    assert np.nanmedian(obs["nir"][100:200, 20:100]) == pytest.approx(want, rel=0.02)
    # the 4 x 4 pan-only dark spot (3.2 m) shows in the sharpened bands, not in the multispectral ones
    dark = np.nanmin(obs["red"][90:120, 10:40])
    assert dark < 0.3 * np.nanmedian(obs["red"][90:120, 10:40])
    assert np.nanmin(ms.read()["red"][20:35, 3:12]) > 0.5 * np.nanmedian(ms.read()["red"][20:35, 3:12])
    assert c > 200


def test_dem_moves_the_terrain_and_removes_the_warning(tmp_path):
    # the RPC column depends on height (0.1 x samp_scale per 500 m): a DEM at 600 m (RPC height offset
    # 100 m) shifts the image by 0.1 x 32 = 3.2 multispectral pixels = 10.24 m east-west
    pkg = gaofen_package(tmp_path, h_term=0.1, archive=False)
    flat, _ = _open(pkg, pansharpen=False, haze="none")
    from affine import Affine

    g = flat.grid
    big = Affine(30, 0, g.bounds[0] - 300, 0, -30, g.bounds[3] + 300)
    dem = write_raster(tmp_path / "dem.tif", np.full((20, 20), 600.0, "float32"), crs="EPSG:32649", transform=big)
    hill, w = _open(pkg, pansharpen=False, haze="none", dem=dem, workdir=tmp_path / "work")
    assert not any("no DEM" in a for a in hill.info.assumptions)
    assert any("with the DEM" in p for p in hill.info.processing)

    def block_x(sc):
        o = sc.read()
        rows, cols = np.nonzero(o["red"] > 0.2)
        return (sc.grid.transform * (cols.mean() + 0.5, rows.mean() + 0.5))[0]

    assert abs(block_x(hill) - block_x(flat)) == pytest.approx(10.24, abs=2.0)


def test_gf1_wfv_single_image_with_xml(tmp_path):
    folder = gaofen_package(tmp_path, sat="GF1", sensor="WFV3", date="2017-09-16", archive=False)
    tiff = next(folder.glob("*.tiff"))
    s, _ = _open(tiff, haze="none")
    assert s.sensor.name == "gf1_wfv_l1a" and s.grid.res == pytest.approx((16.0, 16.0))
    assert any("GF1 WFV3 2017" in p for p in s.info.processing)


def test_no_solar_zenith_computes_it_and_says_so(tmp_path):
    pkg = gaofen_package(tmp_path, zenith=None)
    s, _ = _open(pkg, pansharpen=False)
    assert any("computed" in a and "Beijing" in a for a in s.info.assumptions)


def test_user_calibration_table(tmp_path):
    table = {"sources": {"me": "bureau's own 2016 field calibration"},
             "coefficients": [{"satellite": "GF2", "sensor": "PMS1", "year": 2016, "source": "me",
                               "bands": {"B1": [0.2, 0], "B2": [0.2, 0], "B3": [0.2, 0], "B4": [0.2, 0]},
                               "esun": {"B1": 2000, "B2": 1800, "B3": 1500, "B4": 1000}}]}
    (tmp_path / "cal.json").write_text(json.dumps(table))
    pkg = gaofen_package(tmp_path)
    s, _ = _open(pkg, pansharpen=False, haze="none", calibration=tmp_path / "cal.json")
    d = earth_sun_distance_au(dt.date(2016, 3, 24))
    assert s.band("nir").scale == pytest.approx(math.pi * 0.2 * d * d / (1000 * math.cos(math.radians(35))))
    assert any("bureau's own" in p for p in s.info.processing)


def test_missing_rpb_is_a_clear_error(tmp_path):
    folder = gaofen_package(tmp_path, archive=False)
    for p in folder.glob("*.rpb"):
        p.unlink()
    with pytest.raises(InputDataError, match="no rational polynomial coefficients"):
        open_scene(folder)


def test_orthoimage_without_xml_in_dn_is_refused(tmp_path):
    p = write_raster(tmp_path / "GF2_PMS1_E113.5_N23.0_20160324_ortho.tif", np.full((4, 8, 8), 300, "uint16"))
    with pytest.raises(InputDataError, match="10-bit digital numbers"):
        open_scene(p)
    p = write_raster(tmp_path / "GF2_PMS1_E113.5_N23.0_20160324_fused.tif", np.full((4, 8, 8), 2500, "uint16"))
    s, w = _open(p)
    assert s.sensor.name == "gf2_pms" and any("reflectance × 10000" in a for a in s.info.assumptions)


def test_earth_sun_distance():
    assert earth_sun_distance_au(dt.date(2021, 1, 4)) == pytest.approx(0.9833, abs=2e-4)
    assert earth_sun_distance_au(dt.date(2021, 7, 5)) == pytest.approx(1.0167, abs=2e-4)
