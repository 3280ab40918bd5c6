"""Restoration assessment against the golden sample's truth (issue acceptance figures)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod

import ecopatch
from ecopatch.errors import ConfigError, LowCoverageWarning
from ecopatch.restoration import StatusRules
from ecopatch.validation import score_restoration


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
    r = ecopatch.assess_restoration(one, inputs.before, inputs.drone, progress=False)
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
        r = ecopatch.assess_restoration(mines, inputs.before, inputs.after, progress=False)
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
        u = ecopatch.assess_restoration(inputs.mines, inputs.before, inputs.after, edge="uniform", progress=False)
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
    again = ecopatch.restoration.apply_status(inputs.assessment, StatusRules())
    assert list(again["status"]) == list(inputs.assessment["status"])
    tough = ecopatch.restoration.apply_status(inputs.assessment, strict)
    assert (tough["status"] == "restored").sum() < (inputs.assessment["status"] == "restored").sum()
    assert list(tough["restored_m2"]) == list(inputs.assessment["restored_m2"])
