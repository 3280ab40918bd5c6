"""The real-data benchmark's scoring pieces (benchmarks/_realdata.py) on synthetic patches: no real data needed."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from affine import Affine
from benchmarks import _realdata as R
from shapely.geometry import box

T = Affine(10, 0, 500_000, 0, -10, 3_000_100)  # 10 m pixels, EPSG:32650, 10 x 10 grid


def _grid(valid=None) -> R.LabelGrid:
    truth = np.zeros((10, 10), dtype=bool)
    truth[0:4, 0:4] = True  # 16 px of labelled change in the top-left corner
    return R.LabelGrid(T, "EPSG:32650", (10, 10), truth, valid)


def _px(r0, c0, r1, c1):
    """A box covering rows r0..r1-1, columns c0..c1-1 of the grid."""
    x0, y0 = T @ (c0, r1)
    x1, y1 = T @ (c1, r0)
    return box(x0, y0, x1, y1)


def _patches(confidence=True):
    gdf = gpd.GeoDataFrame(
        {"change_type": ["construction", "bare_soil", "vegetation_gain", "water"],
         "confidence": [0.95, 0.35, 1.0, 0.62]},
        geometry=[_px(0, 0, 4, 4), _px(2, 2, 6, 6), _px(8, 8, 10, 10), _px(6, 0, 7, 1).buffer(-4.9)],
        crs="EPSG:32650")
    return gdf if confidence else gdf.drop(columns="confidence")


def test_label_grid_bounds_and_scored_pixels():
    g = _grid()
    assert g.bounds == pytest.approx((500_000, 2_999_100 + 900, 500_100, 3_000_100))
    assert g.scored.all()
    v = np.zeros((10, 10), bool)
    v[:5] = True
    assert _grid(v).scored.sum() == 50


def test_burn_uses_pixel_centres_and_reprojects():
    g = _grid()
    p = _patches()
    m = R.burn(R.select(p, R.SCORED_TYPES), g)
    # the two boxes: 16 + 16 px with a 4 px overlap
    assert m.sum() == 28
    assert (R.burn(p.to_crs(4326), g) == R.burn(p, g)).all()
    assert not R.burn(p.iloc[:0], g).any()


def test_select_by_type_and_exclusion():
    p = _patches()
    assert list(R.select(p, exclude=(R.GAIN,))["change_type"]) == ["construction", "bare_soil", "water"]
    assert list(R.select(p, ["water"])["change_type"]) == ["water"]


def test_patch_label_overlap_counts_each_patch_and_sub_pixel_patches():
    g = _grid()
    ov = R.patch_label_overlap(_patches(), g)
    assert list(ov["n_px"][:3]) == [16, 16, 4]
    # the construction box is all labelled change; the bare-soil box is 4 of 16 px
    assert ov["overlap"][0] == 1.0 and ov["overlap"][1] == pytest.approx(0.25)
    assert ov["overlap"][2] == 0.0
    # a 0.2 m square inside one pixel covers no pixel centre: found by touching
    assert ov["n_px"][3] == 1 and ov["overlap"][3] == 0.0


def test_patch_label_overlap_on_sampled_labels():
    valid = np.zeros((10, 10), bool)
    valid[0, 0] = valid[5, 5] = True  # one changed sample, one unchanged sample
    g = _grid(valid)
    ov = R.patch_label_overlap(_patches(), g)
    assert list(ov["n_labelled"]) == [1, 1, 0, 0]
    assert ov["overlap"][0] == 1.0 and ov["overlap"][1] == 0.0
    assert np.isnan(ov["overlap"][2:]).all()  # no labelled pixel: left out of the reliability table


def test_score_flagged_shares():
    valid = np.zeros((10, 10), bool)
    valid[:2] = True
    g = _grid(valid)
    mask = np.zeros((10, 10), bool)
    mask[0, :2] = True
    mask[9, :] = True
    s = R.score(mask, g)
    assert s["flagged"] == pytest.approx(2 / 20) and s["flagged_scene"] == pytest.approx(12 / 100)
    assert s["precision"] == 1.0 and s["recall"] == pytest.approx(2 / 8) and s["n"] == 20


def test_reliability_bins_hits_and_calibration_error():
    conf = np.array([0.05, 0.15, 0.95, 0.95, 1.0, 0.55, 0.5])
    overlap = np.array([0.0, 0.0, 1.0, 0.6, 0.5, 0.49, np.nan])
    t = R.reliability(conf, overlap)
    assert t["status"] == "ok" and t["n"] == 6 and t["n_unlabelled"] == 1
    by = {r["lo"]: r for r in t["rows"]}
    assert len(t["rows"]) == 10 and sum(r["n"] for r in t["rows"]) == 6
    assert by[0.9]["n"] == 3 and by[0.9]["hits"] == 3  # 1.0 falls in the last bin; 0.5 overlap is a hit
    assert by[0.5]["n"] == 1 and by[0.5]["hits"] == 0
    assert by[0.0]["hit_rate"] == 0.0 and np.isnan(by[0.3]["hit_rate"])
    expected = (1 * 0.05 + 1 * 0.15 + 1 * 0.55 + 3 * abs((0.95 + 0.95 + 1.0) / 3 - 1.0)) / 6
    assert t["ece"] == pytest.approx(expected)
    assert t["brier"] == pytest.approx(np.mean((conf[:6] - np.array([0, 0, 1, 1, 1, 0])) ** 2))


def test_reliability_copes_with_missing_constant_nan_and_out_of_range_confidence():
    overlap = np.array([1.0, 0.0, 0.0])
    missing = R.reliability(None, overlap)
    assert missing["status"] == "missing" and missing["rows"] == [] and missing["hit_rate"] == pytest.approx(1 / 3)
    const = R.reliability(np.full(3, 0.97), overlap)
    assert const["status"] == "constant" and [r["n"] for r in const["rows"]][-1] == 3
    odd = R.reliability(np.array([np.nan, -0.2, 1.3]), overlap)
    assert odd["n"] == 2 and odd["n_nan"] == 1 and odd["n_outside"] == 2
    assert odd["rows"][0]["n"] == 1 and odd["rows"][-1]["n"] == 1
    empty = R.reliability(np.array([0.5, 0.5]), np.array([np.nan, np.nan]))
    assert empty["status"] == "empty" and empty["n"] == 0
    with pytest.raises(ValueError, match="confidences"):
        R.reliability(np.zeros(2), overlap)


def test_patch_reliability_reads_the_confidence_column_when_there_is_one():
    g = _grid()
    assert R.patch_reliability(_patches(), g)["n"] == 4
    assert R.patch_reliability(_patches(confidence=False), g)["status"] == "missing"
    assert R.patch_reliability(_patches().iloc[:0], g)["status"] == "empty"
    odd = _patches()
    odd["confidence"] = pd.array([0.9, None, 0.5, 0.7], dtype="Float64")
    assert R.patch_reliability(odd, g)["n_nan"] == 1
    odd["confidence"] = ["high", "0.9", "0.2", "0.8"]
    assert R.patch_reliability(odd, g)["n"] == 3


def test_merge_reliability_pools_the_counts():
    a = R.reliability(np.array([0.95, 0.15]), np.array([1.0, 0.0]))
    b = R.reliability(np.array([0.92]), np.array([0.0]))
    m = R.merge_reliability([a, b, R.reliability(None, np.zeros(1))])
    assert m["n"] == 3 and m["rows"][-1]["n"] == 2 and m["rows"][-1]["hits"] == 1
    assert m["rows"][-1]["mean_conf"] == pytest.approx((0.95 + 0.92) / 2)
    assert m["brier"] == pytest.approx((2 * a["brier"] + b["brier"]) / 3)
    assert R.merge_reliability([R.reliability(None, np.zeros(1))])["status"] == "missing"


def test_oscd_dates_and_band_files(tmp_path):
    (tmp_path / "dates.txt").write_text("date_1: 20150916\ndate_2: 20171015\n")
    d1, d2 = R.read_oscd_dates(tmp_path)
    assert (d1.isoformat(), d2.isoformat()) == ("2015-09-16", "2017-10-15")
    with pytest.raises(FileNotFoundError, match="B02"):
        R.oscd_band_files(tmp_path)
