"""Identification of products: on the real files of ../shared/data, and on files made to trip it."""

import datetime as dt
import json
import pickle
import warnings

import numpy as np
import pytest
from affine import Affine

from ecopatch.errors import (
    AssumptionWarning,
    DateOrderError,
    DegradedAnalysisWarning,
    InputDataError,
    MissingMaskWarning,
    SameSceneWarning,
)
from ecopatch.raster.products import role_from_description
from ecopatch.raster.scene import open_scene
from ecopatch.raster.source import check_pair, read_decimated
from tests.conftest import write_raster


def _quiet_open(*a, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = open_scene(*a, **kw)
    return s, w


def _kinds(w):
    return {type(x.message) for x in w}


# --- real files -------------------------------------------------------------------------------------
@pytest.mark.realdata
@pytest.mark.parametrize("city", ["oscd_china/beihai", "oscd_cities/rennes", "oscd_cities/abudhabi"])
def test_oscd_band_folders_are_level_1c_both_dates(shared_data, city):
    # imgs_1 carries "L1C" in its names; imgs_2 (T49QCD_..._B10.tif) only has band B10 to tell
    for part in ("imgs_1", "imgs_2"):
        s, w = _quiet_open(shared_data / city / part)
        assert s.sensor.name == "sentinel2_l1c", (city, part, s.info.evidence)
        assert any("L1C" in e for e in s.info.evidence)
        assert not s.info.assumptions
        assert s.mask is None and s.mask_status["kind"] == "none"
        assert MissingMaskWarning in _kinds(w)
        assert s.band("nir").band_id == "B08" and s.band("red").band_id == "B04"
        assert s.band("cirrus").band_id == "B10"  # read: the cloud detector needs it
        assert "haze_removed" in s.metadata  # top of atmosphere: dark-object subtraction


@pytest.mark.realdata
def test_real_l2a_with_scl_says_why(shared_data):
    s, w = _quiet_open(shared_data / "s2l2a_landsatc2l2_formats" / "s2_l2a_S2A_29RKH_20200219")
    assert s.sensor.name == "sentinel2_l2a" and s.mask.kind == "scl"
    assert any("S2MSI2A" in e for e in s.info.evidence)
    assert not {AssumptionWarning, MissingMaskWarning} & _kinds(w)
    prov = s.provenance()
    json.dumps(prov)  # plain values only
    assert prov["mask"]["kind"] == "scl" and prov["bands"]["swir1"]["band_id"] == "B11"


@pytest.mark.realdata
def test_l2a_folder_without_its_scl_warns_and_records_it(shared_data, tmp_path):
    import shutil

    src = shared_data / "s2l2a_landsatc2l2_formats" / "s2_l2a_S2A_29RKH_20200219"
    dst = tmp_path / "S2A_29RKH_20200219_0_L2A"
    shutil.copytree(src, dst)
    (dst / "SCL.tif").unlink()
    s, w = _quiet_open(dst)
    assert s.sensor.name == "sentinel2_l2a" and s.mask is None
    assert MissingMaskWarning in _kinds(w)
    assert "without its SCL band" in s.mask_status["note"]


@pytest.mark.realdata
def test_naip_is_red_green_blue_nir_never_drone_rgb(shared_data):
    for f in sorted((shared_data / "naip_northdakota_timeseries").glob("m_*.tif")):
        s, w = _quiet_open(f)
        assert s.sensor.name == "naip", f
        assert [(n, r.index) for n, r in s.band_refs] == [("blue", 3), ("green", 2), ("red", 1), ("nir", 4)]
        assert not s.info.assumptions and AssumptionWarning not in _kinds(w)
        assert s.date.year in (2009, 2016, 2020)
        obs = read_decimated(s, max_pixels=100_000)
        # prairie and crops in August: NIR brighter than red on most of the scene (64-86 %); read as
        # drone RGB, band 4 was dropped and band 3 (blue) taken for red
        assert np.nanmean(obs["nir"] > obs["red"]) > 0.6


@pytest.mark.realdata
def test_landsat_display_composite_is_refused_with_the_fix(shared_data):
    p = shared_data / "landsat_pucallpa_vis" / "pucallpa_2020.tif"
    with pytest.raises(InputDataError, match=r"bands=\{'red': 3") as e:
        open_scene(p)
    assert "SWIR1, NIR, red, green" in str(e.value)
    s, _ = _quiet_open(p, bands={"swir1": 1, "nir": 2, "red": 3, "green": 4}, scale=1 / 255)
    assert s.band("nir").index == 2 and s.band("swir1").index == 1 and "blue" not in s.bands
    assert "blue" in s.missing_roles


@pytest.mark.realdata
def test_landsat7_dn_stack_named_by_descriptions(shared_data):
    p = shared_data / "landsat_cd_taizhou_nanjing" / "taizhou" / "taizhou_2000-03-17_L7ETM.tif"
    with pytest.raises(InputDataError, match="Landsat 7 ETM\\+ digital numbers .* scale="):
        open_scene(p)
    s, _ = _quiet_open(p, scale=1 / 255, haze="none")
    assert s.info.platform == "LANDSAT_7" and s.info.instrument == "ETM+"
    # "B4 NIR" is NIR on ETM+ (it would be red on Sentinel-2), "B7 SWIR2" is the 6th band
    assert {n: r.index for n, r in s.band_refs} == {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5,
                                                    "swir2": 6}
    assert s.date == dt.date(2000, 3, 17)


@pytest.mark.realdata
def test_drone_rgb_tile_by_colour_interpretation(shared_data):
    s, w = _quiet_open(shared_data / "drone_oam_tcd" / "5dded5bc0140b80006d2e565_23.tif")
    assert s.sensor.name == "drone_rgb" and not s.info.assumptions
    assert any("colour interpretation" in e for e in s.info.evidence)
    assert DegradedAnalysisWarning in _kinds(w) and "nir" in s.missing_roles


@pytest.mark.realdata
def test_eolearn_float_stack_is_l1c_from_its_name(shared_data):
    s, _ = _quiet_open(shared_data / "eolearn_s2_slovenia" / "s2_l1c_2015-07-31.tif", haze="none")
    assert s.sensor.name == "sentinel2_l1c" and s.band("swir1").index == 12 and s.band("nir08").index == 9
    assert s.band("red").scale == 1.0 and s.date == dt.date(2015, 7, 31)
    assert s.band("nir09").index == 10  # B09 (water vapour) is read: the cloud detector needs it


# --- made-up files ----------------------------------------------------------------------------------
S2 = ["B02", "B03", "B04", "B08", "B11", "B12"]


def test_unlabelled_s2_stack_opens_with_an_assumption(tmp_path):
    p = write_raster(tmp_path / "stack_20210918.tif", np.full((6, 4, 4), 900, "uint16"), descriptions=S2, nodata=0)
    s, w = _quiet_open(p)
    assert s.sensor.name == "sentinel2_l2a"
    assert AssumptionWarning in _kinds(w)
    assert any("sentinel2_l1c" in a for a in s.info.assumptions)
    assert "ASSUMED" in repr(s)


def test_s2_level_from_the_band_set_and_names(tmp_path):
    d = tmp_path / "tile"
    d.mkdir()
    for b in ("B02", "B03", "B04", "B08", "B10"):
        write_raster(d / f"T50RQU_20210918T023551_{b}.tif", np.full((4, 4), 900, "uint16"))
    assert _quiet_open(d)[0].sensor.name == "sentinel2_l1c"
    (d / "T50RQU_20210918T023551_B10.tif").unlink()
    s, w = _quiet_open(d)
    assert s.sensor.name == "sentinel2_l2a" and AssumptionWarning in _kinds(w)
    write_raster(d / "T50RQU_20210918T023551_SCL.tif", np.full((4, 4), 4, "uint8"))
    s, w = _quiet_open(d)
    assert s.sensor.name == "sentinel2_l2a" and s.mask.kind == "scl" and AssumptionWarning not in _kinds(w)


def test_user_sensor_against_the_evidence_is_kept_but_said(tmp_path):
    d = tmp_path / "S2A_MSIL1C_20210918"
    d.mkdir()
    for b in ("B02", "B03", "B04", "B08"):
        write_raster(d / f"{b}.tif", np.full((4, 4), 900, "uint16"))
    s, w = _quiet_open(d, sensor="sentinel2_l2a")
    assert s.sensor.name == "sentinel2_l2a"
    assert any("looks like sentinel2_l1c" in a for a in s.info.assumptions)


def test_four_bands_rgb_plus_undefined_is_rgbn_not_drone(tmp_path):
    arr = np.full((4, 6, 6), 100, "uint8")
    p = write_raster(tmp_path / "aerial.tif", arr, photometric="RGB")
    import rasterio

    with rasterio.open(p) as ds:
        assert [c.name for c in ds.colorinterp][:3] == ["red", "green", "blue"]
    s, w = _quiet_open(p)
    assert s.sensor.name == "rgbn" and s.band("nir").index == 4
    assert AssumptionWarning in _kinds(w)


def test_four_unlabelled_8bit_bands_are_refused(tmp_path):
    p = write_raster(tmp_path / "x.tif", np.full((4, 6, 6), 100, "uint8"), photometric="MINISBLACK")
    with pytest.raises(InputDataError, match="NAIP.*Gaofen.*Landsat"):
        open_scene(p)


def test_three_unlabelled_8bit_bands_open_as_rgb_with_a_warning(tmp_path):
    p = write_raster(tmp_path / "x.tif", np.full((3, 6, 6), 100, "uint8"), photometric="MINISBLACK")
    s, w = _quiet_open(p)
    assert s.sensor.name == "drone_rgb" and AssumptionWarning in _kinds(w)


def test_described_words_win_over_ids_and_chinese_names(tmp_path):
    p = write_raster(tmp_path / "gf_stack.tif", np.full((4, 6, 6), 0.2, "float32"),
                     descriptions=["蓝", "绿", "红", "近红外"])
    s, _ = _quiet_open(p)
    assert {n: r.index for n, r in s.band_refs} == {"blue": 1, "green": 2, "red": 3, "nir": 4}


@pytest.mark.parametrize("desc, want", [
    ("B04", (None, "B04")), ("SR_B5", (None, "SR_B5")), ("B4 NIR", ("nir", "B4")), ("Near infrared", ("nir", None)),
    ("near-infrared", ("nir", None)), ("Red", ("red", None)), ("Red edge 2", ("rededge2", None)),
    ("swir16", ("swir1", None)), ("SWIR 2", ("swir2", None)), ("B7 SWIR2", ("swir2", "B7")),
    ("short-wave", (None, None)), ("Coastal aerosol", ("coastal", None)), ("ST_B10", ("thermal", "ST_B10")),
    ("短波红外1", ("swir1", None)), ("红边", ("rededge1", None)), ("", (None, None)),
])
def test_role_from_description(desc, want):
    assert role_from_description(desc) == want


def test_provenance_and_repr_show_the_decision(tmp_path):
    p = write_raster(tmp_path / "S2B_MSIL2A_20240912_stack.tif", np.full((6, 4, 4), 2000, "uint16"),
                     descriptions=S2, nodata=0, tags={"PROCESSING_BASELINE": "05.10"})
    s, _ = _quiet_open(p)
    prov = s.provenance()
    assert prov["level"] == "L2A" and prov["bands"]["red"]["offset"] == pytest.approx(-0.1)
    assert prov["band_roles"]["missing"] == [] and prov["mask"]["kind"] == "none"
    r = repr(s)
    for word in ("sentinel2_l2a", "red=B04", "NONE", "identified"):
        assert word in r
    s2 = pickle.loads(pickle.dumps(s))
    assert s2.info == s.info


# --- guards -----------------------------------------------------------------------------------------
def _s2(path, date):
    return write_raster(path, np.full((6, 8, 8), 1500, "uint16"), descriptions=S2, nodata=0,
                        tags={"DATETIME": date, "PROCESSING_LEVEL": "Level-2A"})


def test_reversed_dates_raise_unless_swapped(tmp_path):
    b, _ = _quiet_open(_s2(tmp_path / "b.tif", "2021:09:18 00:00:00"))
    a, _ = _quiet_open(_s2(tmp_path / "a.tif", "2024:09:12 00:00:00"))
    assert b.date == dt.date(2021, 9, 18)
    with pytest.raises(DateOrderError, match="older than the before scene.*swap_dates"):
        check_pair(a, b)
    x, y = check_pair(a, b, swap_dates=True)
    assert (x.date, y.date) == (b.date, a.date)
    assert check_pair(b, a) == (b, a)


def test_the_same_scene_twice_warns(tmp_path):
    s, _ = _quiet_open(_s2(tmp_path / "b.tif", "2021:09:18 00:00:00"))
    again, _ = _quiet_open(tmp_path / "b.tif")
    with pytest.warns(SameSceneWarning, match="same scene"):
        check_pair(s, again)


def test_detect_refuses_reversed_dates(tmp_path):
    from ecopatch import detect_changes

    b, _ = _quiet_open(_s2(tmp_path / "b.tif", "2021:09:18 00:00:00"))
    a, _ = _quiet_open(_s2(tmp_path / "a.tif", "2024:09:12 00:00:00"))
    with pytest.raises(DateOrderError):
        detect_changes(a, b)


# --- masks plugged in ---------------------------------------------------------------------------------
class _HalfCloud:
    """A computed mask: the left half of any grid is cloud."""

    name = "half-cloud test detector"

    def clear(self, scene, grid):
        out = np.ones(grid.shape, dtype=bool)
        x = np.asarray(grid.transform.c + (np.arange(grid.shape[1]) + 0.5) * grid.transform.a)
        out[:, x < 780_040] = False
        return out


def test_a_computed_mask_plugs_in_and_is_recorded(tmp_path):
    s, _ = _quiet_open(_s2(tmp_path / "b.tif", "2021:09:18 00:00:00"))
    m = s.with_mask(_HalfCloud())
    obs = m.read()
    assert not obs.valid[:, :4].any() and obs.valid[:, 4:].all()
    assert np.isnan(obs["red"][:, :4]).all()
    assert m.mask_status["kind"] == "computed" and "half-cloud" in m.mask_status["source"]
    from ecopatch.raster.source import read_decimated

    assert read_decimated(m, max_pixels=64).valid.sum() == 32
    assert pickle.loads(pickle.dumps(m)).mask.kind == "computed"


def test_a_cloud_raster_given_at_open(tmp_path):
    cloud = np.zeros((4, 4), "uint8")
    cloud[:2] = 1
    c = write_raster(tmp_path / "cloud.tif", cloud, transform=Affine(20, 0, 780_000, 0, -20, 3_350_000))
    s, w = _quiet_open(_s2(tmp_path / "b.tif", "2021:09:18 00:00:00"), cloud_mask=c)
    assert MissingMaskWarning not in _kinds(w) and s.mask.kind == "cloud01"
    obs = s.read()
    assert not obs.valid[:4].any() and obs.valid[4:].all()


def test_s2_without_swir_warns_which_analyses_degrade(tmp_path):
    d = tmp_path / "S2B_MSIL2A_20240912.SAFE"
    d.mkdir()
    for b in ("B02", "B03", "B04", "B08", "SCL"):
        write_raster(d / f"T50RQU_20240912T023529_{b}_10m.tif", np.full((4, 4), 900 if b != "SCL" else 4, "uint16"))
    with pytest.warns(DegradedAnalysisWarning, match="bare soil and construction cannot be told apart"):
        s = open_scene(d, date="2021-09-18")
    assert s.missing_roles == ("swir1", "swir2")
    assert {d["analysis"] for d in s.degraded()} >= {"water (MNDWI)", "bare soil vs construction (BSI)"}
    assert s.provenance()["band_roles"]["missing"] == ["swir1", "swir2"]


def test_earth_engine_style_band_names(tmp_path):
    # Earth Engine names Sentinel-2 bands B2 ... B12 unpadded; with B11/B12 and QA60 that is plainly S2
    ee = ["B2", "B3", "B4", "B8", "B11", "B12", "QA60"]
    p = write_raster(tmp_path / "export.tif", np.full((7, 4, 4), 1500, "uint16"), descriptions=ee)
    s, w = _quiet_open(p)
    assert s.sensor.name.startswith("sentinel2") and s.band("nir").index == 4 and s.band("swir2").index == 6
    # B2 ... B5 alone could be Landsat Level-1 as well: read as Sentinel-2 numbering, with a warning
    p = write_raster(tmp_path / "export2.tif", np.full((4, 4, 4), 1500, "uint16"),
                     descriptions=["B2", "B3", "B4", "B8"])
    s, w = _quiet_open(p)
    assert s.band("red").index == 3 and s.band("nir").index == 4
    assert any("Sentinel-2 numbering" in a for a in s.info.assumptions) and AssumptionWarning in _kinds(w)


@pytest.mark.parametrize("value, scale", [(0.2, 1.0), (2000.0, 1e-4)])
def test_float_stacks_scale_from_a_few_blocks_not_a_whole_decode(tmp_path, monkeypatch, value, scale):
    # an Earth Engine / SNAP export: float32, pixel-interleaved, tiled, no overviews; reflectance or × 10000
    from ecopatch.raster import blocks

    arr = np.full((4, 512, 512), value, "float32")
    arr[:, :100] = np.nan  # no data along the top
    p = write_raster(tmp_path / "S2_export.tif", arr, descriptions=["B02", "B03", "B04", "B08"], nodata=float("nan"),
                     tags={"PROCESSING_LEVEL": "Level-2A"}, tiled=True, blockxsize=128, blockysize=128,
                     compress="deflate", interleave="pixel")
    from rasterio.env import get_gdal_config

    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    reads = []
    real = blocks.ds_read

    def spy(ds, indexes, win, out=None):
        reads.append((ds, tuple(indexes), win, get_gdal_config("GDAL_CACHEMAX")))
        return real(ds, indexes, win, out)

    monkeypatch.setattr(blocks, "ds_read", spy)
    s, _ = _quiet_open(p)
    assert s.band("red").scale == pytest.approx(scale)
    assert reads and all(w.width * w.height <= 64 * 64 for _, _, w, _ in reads)
    # every band in one read of each sampled block (a pixel-interleaved block is decoded once for all),
    # under a GDAL cache of a block or two, through a handle closed afterwards: the sample leaves no
    # decoded block behind (a float32 7-band stack tiled 2048 kept 1.2 GiB in GDAL's cache)
    assert len(reads) <= 9 and all(idx == (1, 2, 3, 4) for _, idx, _, _ in reads)
    assert all(int(c) <= 2 * 1024 * 1024 for _, _, _, c in reads)
    assert all(ds.closed for ds, _, _, _ in reads)
