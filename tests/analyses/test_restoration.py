"""Restoration assessment against the golden sample's truth (issue acceptance figures)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod

import ecopatch
from ecopatch.analyses.restoration import StatusRules
from ecopatch.analyses.validation import score_restoration
from ecopatch.errors import ConfigError, LowCoverageWarning


@pytest.fixture(scope="module")
def scored(sample, inputs):
    truth = pd.read_csv(sample.restoration_truth)
    return score_restoration(inputs.assessment, truth), truth


def test_restored_area_per_mine_within_3_percent(scored):
    s, truth = scored
    clear = s[s["valid_fraction"] >= 0.999]
    big = clear[(clear["damaged_m2_true"] >= 10_000) & (clear["restored_m2_true"] > 0)]
    assert len(big) >= 3
    assert (big["restored_err"].abs() <= 0.03).all(), big[["patch_id", "restored_m2", "restored_m2_true"]]
    # a mine with nothing restored reports (almost) nothing: under 1 % of its damaged ground
    none = clear[(clear["damaged_m2_true"] >= 10_000) & (clear["restored_m2_true"] == 0)]
    assert (none["restored_m2"] <= 0.01 * none["damaged_m2_true"]).all()


def test_total_restored_and_damaged_within_1_percent(scored):
    s, _ = scored
    clear = s[s["valid_fraction"] >= 0.999]
    assert abs(clear["restored_m2"].sum() / clear["restored_m2_true"].sum() - 1) <= 0.01
    assert abs(clear["damaged_m2"].sum() / clear["damaged_m2_true"].sum() - 1) <= 0.01


def test_drone_after_within_5_percent(sample, inputs):
    if inputs.drone is None:
        pytest.skip("sample written without the drone mosaic")
    truth = pd.read_csv(sample.restoration_truth)
    mine_id = sample.drone.stem.split("_")[1]
    one = inputs.mines[inputs.mines["patch_id"] == mine_id]
    r = ecopatch.assess_restoration(inputs.before, inputs.drone, one, progress=False)
    t = truth.set_index("mine_id").loc[mine_id]
    assert r["valid_fraction"].iloc[0] > 0.99
    assert r["restored_m2"].iloc[0] == pytest.approx(t["restored_m2"], rel=0.05)
    assert r["damaged_m2"].iloc[0] == pytest.approx(t["damaged_m2"], rel=0.05)


def test_cloudy_mine_is_insufficient_data(inputs, sample):
    truth = pd.read_csv(sample.restoration_truth).set_index("mine_id")
    a = inputs.assessment.set_index("patch_id")
    cloudy = truth.index[truth["cloud_fraction"] > 0.4]
    assert len(cloudy) >= 1
    for mid in cloudy:
        assert a.loc[mid, "status"] == "insufficient_data"
        assert a.loc[mid, "valid_fraction"] < 0.7


def test_class_areas_add_up_and_restored_le_damaged_le_area(inputs):
    a = inputs.assessment
    parts = a["veg_before_m2"] + a["damaged_m2"] + a["water_before_m2"]
    np.testing.assert_allclose(parts, a["observed_m2"], rtol=1e-9)
    assert (a["restored_m2"] <= a["damaged_m2"] + 1e-6).all()
    assert (a["damaged_m2"] <= a["observed_m2"] + 1e-6).all()
    assert (a["observed_m2"] <= a["area_m2"] * (1 + 1e-6)).all()
    np.testing.assert_allclose(a["restored_mu"], a["restored_m2"] * 15 / 10_000)


@pytest.mark.parametrize("crs", ["EPSG:4490", "EPSG:4549", "EPSG:4528", "EPSG:32650", "EPSG:32651"])
def test_area_is_geodesic_and_results_do_not_depend_on_the_mines_crs(inputs, crs):
    mines = inputs.mines.to_crs(crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LowCoverageWarning)
        r = ecopatch.assess_restoration(inputs.before, inputs.after, mines, progress=False)
    geod = Geod(ellps="GRS80")
    ll = inputs.mines.to_crs(4490).geometry
    true = np.array([abs(geod.geometry_area_perimeter(shapely.orient_polygons(g))[0]) for g in ll])
    np.testing.assert_allclose(r["area_m2"], true, rtol=1e-3)
    np.testing.assert_allclose(r["restored_m2"], inputs.assessment["restored_m2"], rtol=1e-6, atol=1e-3)


def test_status_rules():
    r = StatusRules()
    assert r.status(0.9, 0.7, 1.0, 0.8, "forest") == "restored"
    assert r.status(0.9, 0.3, 1.0, 0.8, "forest") == "in_progress"  # rate reached, canopy too thin
    assert r.status(0.5, 0.7, 1.0, 0.8, "forest") == "in_progress"
    assert r.status(0.01, 0.1, 1.0, 0.8, "forest") == "not_started"
    assert r.status(0.35, 0.3, 1.0, 0.8, "natural") == "restored"
    assert r.status(0.99, 0.9, 0.5, 0.8, "forest") == "insufficient_data"
    custom = StatusRules(done_rate={"forest": 0.5})
    assert custom.status(0.6, 0.7, 1.0, 0.8, "forest") == "restored"
    with pytest.raises(ConfigError, match="unknown direction"):
        StatusRules(done_rate={"jungle": 0.5})


def test_unmixing_beats_uniform_edges_on_damaged_area(sample, inputs, scored):
    s, truth = scored
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LowCoverageWarning)
        u = ecopatch.assess_restoration(inputs.before, inputs.after, inputs.mines, edge="uniform", progress=False)
    su = score_restoration(u, truth)
    clear = s["valid_fraction"] >= 0.999
    err_unmix = abs(s.loc[clear, "damaged_m2"].sum() / s.loc[clear, "damaged_m2_true"].sum() - 1)
    err_uniform = abs(su.loc[clear, "damaged_m2"].sum() / su.loc[clear, "damaged_m2_true"].sum() - 1)
    assert err_unmix < err_uniform


def test_cli_assess_writes_xlsx(sample, tmp_path):
    from click.testing import CliRunner

    from ecopatch.cli.main import cli

    out = tmp_path / "result.xlsx"
    res = CliRunner().invoke(cli, ["assess", "--before", str(sample.products["before"]), "--after",
                                   str(sample.products["after"]), "--mines", str(sample.mines), "--id-field",
                                   "矿山编号", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "mines" in res.output and out.exists()
    df = pd.read_excel(out)
    assert {"patch_id", "restored_m2", "restored_mu", "status"} <= set(df.columns)


def test_apply_status_recomputes_without_imagery(inputs):
    strict = StatusRules(done_rate={d: 0.999 for d in ("forest", "shrub", "grass", "cropland", "natural")})
    again = ecopatch.analyses.restoration.apply_status(inputs.assessment, StatusRules())
    assert list(again["status"]) == list(inputs.assessment["status"])
    tough = ecopatch.analyses.restoration.apply_status(inputs.assessment, strict)
    assert (tough["status"] == "restored").sum() < (inputs.assessment["status"] == "restored").sum()
    assert list(tough["restored_m2"]) == list(inputs.assessment["restored_m2"])


# --------------------------------------------------------------------------- losses (退化) and the plan


@pytest.fixture(scope="module")
def cleared(sample, tmp_path_factory):
    """The after ground again a year later, with half of YH-KS-004 and all of YH-KS-006 cleared to bare soil."""
    from ecopatch.data.datasets import write_repeat_product

    out = tmp_path_factory.mktemp("repeat")
    return ecopatch.open_scene(write_repeat_product(sample, "2025-09-15", out_dir=out, seed=11,
                                                    cleared={"YH-KS-004": 0.5, "YH-KS-006": 1.0}))


def test_a_mine_that_loses_vegetation_is_flagged(inputs, cleared):
    # measured from a reference where the mines were (partly) vegetated: 2024 -> 2025
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LowCoverageWarning)
        a = ecopatch.assess_restoration(inputs.after, cleared, inputs.mines, progress=False).set_index("patch_id")
    six, four, two = a.loc["YH-KS-006"], a.loc["YH-KS-004"], a.loc["YH-KS-002"]
    # YH-KS-006 lost nearly all of its ~12 000 m² of vegetation: net loss, the status drops to 退化
    assert six["degraded_m2"] == pytest.approx(six["veg_before_m2"], rel=0.1) and six["degraded_m2"] > 10_000
    assert six["status"] == "degraded" and six["status_zh"] == "退化" and "degradation" in six["alerts"]
    # half of YH-KS-004 cleared: flagged, and degraded too (the net loss passes 5 % of the mine)
    assert "degradation" in four["alerts"] and four["status"] == "degraded"
    assert 0.3 < four["degraded_m2"] / four["veg_before_m2"] < 0.7
    # an untouched mine: no loss beyond noise, no flag
    assert two["degraded_m2"] < 400 and "degradation" not in two["alerts"] and two["status"] != "degraded"
    # gross loss >= net loss, and never more than what was vegetated
    assert (a["degraded_m2"] >= a["veg_before_m2"] - a["veg_after_m2"] - 1e-6).all()
    assert (a["degraded_m2"] <= a["veg_before_m2"] + 1e-6).all()
    assert (a["reference_scene"] == "S2B_MSIL2A_20240912T023529_N0510_R089_T50RQU_20240912T061020").all()


def test_gain_elsewhere_does_not_hide_a_loss():
    r = StatusRules()
    # 10 000 m² observed forest mine: 600 m² lost (>= 5 % and >= 400 m²) -> alert, but a net gain -> no 退化 status
    assert r.loss_threshold_m2(10_000, "forest") == 500.0
    assert r.loss_threshold_m2(2_000, "forest") == 400.0  # the minimum mapping unit
    assert r.loss_threshold_m2(10_000, "cropland") == 3_000.0
    assert r.status(0.5, 0.5, 1.0, 0.8, "forest", net_loss_m2=-2_000, observed_m2=10_000) == "in_progress"
    assert r.status(0.5, 0.5, 1.0, 0.8, "forest", net_loss_m2=600, observed_m2=10_000) == "degraded"
    assert r.status(0.5, 0.5, 1.0, 0.8, "cropland", net_loss_m2=600, observed_m2=10_000) == "in_progress"
    assert r.status(0.5, 0.5, 0.5, 0.8, "forest", net_loss_m2=9_000, observed_m2=10_000) == "insufficient_data"
    tolerant = StatusRules(max_loss={"forest": 0.2}, min_loss_m2=0)
    assert tolerant.max_loss["grass"] == 0.10 and tolerant.loss_threshold_m2(10_000, "forest") == 2_000


@pytest.mark.parametrize("kw, match", [
    ({"max_loss": {"jungle": 0.1}}, "unknown direction"),
    ({"stall_after": 1}, "stall_after"),
    ({"stall_tolerance": 1.5}, "stall_tolerance"),
    ({"stall_min_days": -1}, "stall_min_days"),
    ({"min_loss_m2": -5}, "min_loss_m2"),
])
def test_status_rules_are_checked(kw, match):
    with pytest.raises(ConfigError, match=match):
        StatusRules(**kw)


def test_plan_fields_and_behind_plan_alert(inputs):
    from ecopatch.analyses.restoration import mine_plans, set_alerts

    m = pd.DataFrame({"patch_id": ["a", "b", "c", "d"], "计划完成年份": ["2023年", 2030, None, "2024-06-30"],
                      "目标修复率": ["80%", 90, 0.5, None]})
    p = mine_plans(m)
    assert p["target_year"].iloc[[0, 1, 3]].tolist() == [2023, 2030, 2024] and pd.isna(p["target_year"].iloc[2])
    assert p["target_rate"].tolist()[:3] == [0.8, 0.9, 0.5] and np.isnan(p["target_rate"].iloc[3])
    assert mine_plans(m, target_year_field=None, target_rate_field=None)["target_rate"].isna().all()
    from ecopatch.errors import InputDataError

    with pytest.raises(InputDataError, match=r"mine b: 计划完成年份 = 'soon' is not a year"):
        mine_plans(m.assign(计划完成年份=["2023", "soon", None, None]))
    with pytest.raises(InputDataError, match=r"mine a: 目标修复率 = '150%'"):
        mine_plans(m.assign(目标修复率=["150%", None, None, None]))
    with pytest.raises(InputDataError, match="no field 'plan_year'"):
        mine_plans(m, target_year_field="plan_year")
    # the sample has 计划完成年份: mines past it and not restored are behind plan in 2024
    a = inputs.assessment.set_index("patch_id")
    assert a.loc["YH-KS-005", "target_year"] == 2022 and "behind_plan" in a.loc["YH-KS-005", "alerts"]
    assert a.loc["YH-KS-007", "status"] == "restored" and "behind_plan" not in a.loc["YH-KS-007", "alerts"]
    # with a target rate, the rate decides
    row = inputs.assessment[inputs.assessment["patch_id"] == "YH-KS-005"].assign(target_rate=0.3)
    assert set_alerts(row, StatusRules())["alerts"].iloc[0] == ""


def test_assessment_windows_are_wide_unless_a_file_is_striped(tmp_path, inputs):
    from ecopatch.analyses.restoration import WIDE_BLOCK, assessment_block
    from ecopatch.options import WINDOWS
    from tests.conftest import write_raster

    assert assessment_block(inputs.before, inputs.after) == WIDE_BLOCK > WINDOWS.block  # the sample: tiled files
    arr = np.full((6, 64, 64), 2000, "uint16")
    kw = dict(descriptions=["B02", "B03", "B04", "B08", "B11", "B12"], nodata=0,
              tags={"PROCESSING_LEVEL": "Level-2A", "ACQUISITION_DATE": "2024-09-12"})
    tiled = write_raster(tmp_path / "S2_tiled.tif", arr, tiled=True, blockxsize=32, blockysize=32, **kw)
    striped = write_raster(tmp_path / "S2_striped.tif", arr, blockysize=8, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t, s = ecopatch.open_scene(tiled), ecopatch.open_scene(striped)
    assert assessment_block(t, t) == WIDE_BLOCK
    # a strip is decoded across the whole width: wider windows hold more rows of it
    assert assessment_block(t, s) == assessment_block(s, t) == WINDOWS.block


def test_the_default_windows_give_the_tables_of_the_shared_ones(inputs):
    got = inputs.assessment  # the default windows (1024 on the sample's tiled files)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        narrow = ecopatch.assess_restoration(inputs.before, inputs.after, inputs.mines, block=256)
    num = got.select_dtypes("number").columns
    assert len(num) > 10
    pd.testing.assert_frame_equal(got[num], narrow[num], check_exact=False, rtol=1e-9, atol=1e-6)
    assert (got["status"] == narrow["status"]).all()


def test_no_window_reads_beyond_its_block_to_the_right_or_below(inputs):
    """Windows are set back by their halo, so their reads end at a multiple of the block.

    A right-hand halo would decode a tile of the next stripe, which that
    stripe decodes again (a JPEG 2000 tile costs as much for 3 columns as
    whole); the 2 × halo columns read to the left are kept by the tile cache.
    """
    from ecopatch.analyses.restoration import _HALO, _mine_windows, _reads, assessment_pass
    from ecopatch.raster.source import read_reach_px

    block = 256
    p = assessment_pass(inputs.before, inputs.after, inputs.mines, block=block)
    height, width = p.tasks[0].grid.shape
    # the scenes' reads reach past a window (the 20 m SCL grown by its cloud margin): windows are set
    # back by that too (the bound itself is tested in tests/raster/test_scene.py)
    reach = read_reach_px((inputs.before, inputs.after), p.tasks[0].grid)
    assert reach > 0
    offset = _HALO + reach
    at_edge = 0
    for task in p.tasks:
        w = task.window
        assert (w.col_off + offset) % block == 0 or w.col_off == 0
        assert (w.row_off + offset) % block == 0 or w.row_off == 0
        right = min((w.col_off + offset) // block * block + block, width)
        below = min((w.row_off + offset) // block * block + block, height)
        for read in _reads(task, _mine_windows(task)):
            assert read.col_end + reach <= right and read.row_end + reach <= below
            assert read.col_off >= w.col_off - 2 * _HALO and read.row_off >= w.row_off - 2 * _HALO
            at_edge += read.col_end + reach == right < width
    assert at_edge  # a mine reaches across a block boundary: the test would see a halo beyond it


def test_the_set_up_samples_read_with_the_pass_s_gdal_cache(inputs, monkeypatch):
    """The scenes' samples (cover end-members) run with GDAL's cache at the pass's size, not GDAL's default.

    GDAL's default (5 % of the RAM) kept the decoded blocks of each scene's
    sample: 0.6 GiB per date for a 7-band stack tiled 2048.
    """
    from rasterio.env import get_gdal_config

    from ecopatch.analyses import restoration
    from ecopatch.raster import gdalcache
    from ecopatch.raster.source import plan_pass_reads

    if gdalcache._user_chose_gdal_cache():
        pytest.skip("GDAL_CACHEMAX is set in the environment: ecopatch leaves GDAL's cache alone")
    seen = []
    orig = restoration.prepare_cover_params

    def spy(scene, params, **kw):
        seen.append(get_gdal_config("GDAL_CACHEMAX"))
        return orig(scene, params, **kw)

    monkeypatch.setattr(restoration, "prepare_cover_params", spy)
    before, after = inputs.before, inputs.after
    outside = get_gdal_config("GDAL_CACHEMAX")
    restoration.assessment_pass(before, after, inputs.mines)
    want = plan_pass_reads((before, after)).gdal_cache_bytes
    # the pass's size (a read inside may raise it for a row of blocks, never to GDAL's default)
    assert want < outside and seen[0] == want and all(want <= v < outside for v in seen) and len(seen) == 2
    assert get_gdal_config("GDAL_CACHEMAX") == outside  # restored after the set-up


def test_both_dates_cover_parameters_are_estimated_at_once_and_shared(inputs, monkeypatch):
    """The after date's estimate runs in a second thread, into the caller's memo; the values are the sequential ones."""
    import os
    import threading

    from ecopatch.analyses import restoration

    sequential = (restoration.prepare_cover_params(inputs.before, None),
                  restoration.prepare_cover_params(inputs.after, None))
    threads = []
    real = restoration._estimate_cover_params
    monkeypatch.setattr(restoration, "_estimate_cover_params",
                        lambda scene, *a: threads.append((scene, threading.current_thread())) or real(scene, *a))
    with restoration.shared_scene_estimates():
        got = restoration._both_cover_params(inputs.before, None, inputs.after, None)
        assert got == sequential
        # the worker wrote into the caller's memo: no scene is sampled again
        assert restoration.prepare_cover_params(inputs.after, None) == sequential[1]
        assert restoration.prepare_cover_params(inputs.before, None) == sequential[0]
    assert sorted(id(s) for s, _ in threads) == sorted([id(inputs.before), id(inputs.after)])  # once each
    by_scene = {id(s): t for s, t in threads}
    assert by_scene[id(inputs.before)] is threading.main_thread()
    if (os.cpu_count() or 1) >= 2:
        assert by_scene[id(inputs.after)] is not threading.main_thread()
    # an error in either date comes out as raised
    monkeypatch.setattr(restoration, "_estimate_cover_params", lambda *a: (_ for _ in ()).throw(ValueError("x")))
    with pytest.raises(ValueError, match="x"):
        restoration._both_cover_params(inputs.before, None, inputs.after, None)
