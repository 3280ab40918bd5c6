"""The real-data change benchmark's harness on one small OSCD city (Bercy) and Taizhou.

Runs the same code as ``benchmarks/bench_change_realdata.py`` (in
``benchmarks/_realdata.py``): default ``open_scene`` and ``detect_changes``,
construction + bare-soil patches scored against the labels, the baselines on
the same pixels, the reliability table, a change map.  It checks the
plumbing (scores in range, patches with true ground areas, the columns the
harness reads) and accuracy floors that guard against regressions; the
figures and their reading are in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.realdata

# ---------------------------------------------------------------------------
# TODO(issue 18, lead): accuracy floors.  Set now to what the method on main measures
# (commit 4e41ec2, the pre-rewrite method) minus a margin, so that main passes; raise
# them to the new method's measured values minus a margin once it lands.
# ---------------------------------------------------------------------------
#: Bercy, construction + bare-soil patches vs the urban-change labels.  main: F1 0.031.
BERCY_MIN_F1 = 0.015
#: Bercy: ecopatch's F1 may trail the best published baseline by at most this.  main: 0.150
#: behind PCA-k-means (0.181).  The acceptance wants ecopatch above it (gap < 0).
BERCY_MAX_GAP_TO_BEST_BASELINE = 0.20
#: Bercy: share of the scene flagged as any disturbance, at most.  main: 5.9 %.  Acceptance: 10 %.
BERCY_MAX_DISTURBANCE = 0.10
#: Taizhou, Cohen's kappa of any change on the labelled samples.  main: 0.402.  Acceptance: 0.90.
TAIZHOU_MIN_KAPPA = 0.30
#: Patch columns the harness and the ledger read.
#: TODO(issue 18, lead): add "class_before", "class_after" when the new typing lands.
PATCH_COLUMNS = ("patch_id", "change_type", "area_m2", "confidence", "geometry")

KNOWN_TYPES = {"vegetation_loss", "bare_soil", "construction", "water", "vegetation_gain"}


@pytest.fixture(scope="module")
def harness():
    from benchmarks import _realdata as R

    return R


@pytest.fixture(scope="module")
def bercy(shared_data, harness, tmp_path_factory):
    maps = tmp_path_factory.mktemp("maps")
    return harness.run_oscd_city(shared_data, "bercy", maps_dir=maps, variant=False)


@pytest.fixture(scope="module")
def taizhou(shared_data, harness):
    return harness.run_taizhou(shared_data, variant=False)


def _check_scores(row, n):
    assert row["n"] == n
    for k in ("precision", "recall", "f1", "iou", "overall_accuracy", "flagged", "flagged_scene"):
        if k == "precision" and row["flagged"] == 0:
            assert math.isnan(row[k])  # nothing flagged: precision undefined
        else:
            assert 0.0 <= row[k] <= 1.0, (row["method"], k)
    assert -1.0 <= row["kappa"] <= 1.0


def _check_patches(p, crs_epsg):
    from pyproj import Geod

    assert len(p) > 0
    assert set(PATCH_COLUMNS) <= set(p.columns)
    assert set(p["change_type"]) <= KNOWN_TYPES
    assert p.crs.to_epsg() == crs_epsg
    assert (p["area_m2"] > 0).all() and p.geometry.is_valid.all()
    conf = p["confidence"].to_numpy(dtype=float)
    assert np.isfinite(conf).all() and (conf >= 0).all() and (conf <= 1).all()
    # true ground areas: pyproj's geodesic area of the outlines, within 0.1 %
    geod = Geod(ellps="WGS84")
    sample = p.sort_values("area_m2").iloc[np.r_[0:10, -10:0]].to_crs(4326)
    theirs = np.array([abs(geod.geometry_area_perimeter(g)[0]) for g in sample.geometry])
    assert np.allclose(sample["area_m2"], theirs, rtol=1e-3)


def test_oscd_bercy_plumbing(bercy, harness):
    rows = {r["method"]: r for r in bercy["rows"]}
    assert list(rows) == ["ecopatch", *harness.BASELINES]
    assert bercy["dates"] == ("2016-11-30", "2017-08-29") and bercy["notes"] == []
    for r in rows.values():
        _check_scores(r, 395 * 360)  # every pixel of the dense label grid is scored
    _check_patches(bercy["patches"], 4326)  # no `within`: the scenes' own CRS
    e = bercy["ecopatch"]
    assert e["n_patches"] == len(bercy["patches"]) >= e["n_scored_patches"] == rows["ecopatch"]["n_patches"]
    assert sum(e["types"].values()) == e["n_patches"]
    # construction + bare soil is part of the disturbance, which is part of everything flagged
    assert rows["ecopatch"]["flagged_scene"] <= e["flagged_disturbance"] <= e["flagged_any"] <= 1
    assert e["seconds_detect"] > 0 and e["cpu_seconds_detect"] > 0
    # the reliability table bins every construction / bare-soil patch, each judged on its pixels
    rel = bercy["reliability"]
    assert rel["status"] in {"ok", "constant"} and rel["n"] == e["n_scored_patches"]
    assert sum(b["n"] for b in rel["rows"]) == rel["n"] and all(b["hits"] <= b["n"] for b in rel["rows"])
    assert 0 <= rel["ece"] <= 1
    # IR-MAD ran to its end and says how
    d = bercy["irmad"]["published"]
    assert 1 <= d["n_iter"] <= 30 and 0 < d["ess_share"] <= 1 and d["n_bands"] == 10
    # the map was written
    from pathlib import Path

    png = Path(bercy["map"])
    assert png.is_file() and png.stat().st_size > 50_000


def test_oscd_bercy_baselines_are_the_documented_ones(bercy):
    """The baselines do not depend on ecopatch: their figures on Bercy are fixed (RESULTS.md)."""
    rows = {r["method"]: r for r in bercy["rows"]}
    assert rows["CVA-z Otsu"]["f1"] == pytest.approx(0.145, abs=0.005)
    assert rows["PCA-k-means"]["f1"] == pytest.approx(0.181, abs=0.01)


def test_oscd_bercy_floors(bercy, harness):
    rows = {r["method"]: r for r in bercy["rows"]}
    eco = rows["ecopatch"]
    best = max(rows[m]["f1"] for m in harness.BASELINES)
    assert eco["f1"] >= BERCY_MIN_F1
    assert eco["f1"] >= best - BERCY_MAX_GAP_TO_BEST_BASELINE
    assert bercy["ecopatch"]["flagged_disturbance"] <= BERCY_MAX_DISTURBANCE


def test_taizhou_plumbing_and_floors(taizhou, harness):
    rows = taizhou["rows"]
    assert [(r["method"], r["types"]) for r in rows[:3]] == [
        ("ecopatch", "any"), ("ecopatch", "disturbance"), ("ecopatch", "construction+bare_soil")]
    assert [r["method"] for r in rows[3:]] == list(harness.BASELINES)
    for r in rows:
        _check_scores(r, 21_390)  # only the labelled samples are scored
    _check_patches(taizhou["patches"], 32651)
    # outlines on 30 m UTM pixels near 119.9° E (3.1° from the zone's meridian, scale factor 0.99975):
    # no patch smaller than one pixel's 900 m² of ground (less 1 %)
    assert taizhou["patches"]["area_m2"].min() >= 891.0
    rel = taizhou["reliability"]
    assert rel["n"] + rel["n_unlabelled"] == len(taizhou["patches"])
    by = {r["method"]: r for r in rows[3:]}
    # reference figures quoted in issue 18: z-scored CVA 0.90, IR-MAD + Otsu on sqrt(chi-square) 0.93
    assert by["CVA-z Otsu"]["kappa"] == pytest.approx(0.897, abs=0.005)
    assert by["IR-MAD Otsu"]["kappa"] == pytest.approx(0.934, abs=0.01)
    assert rows[0]["kappa"] >= TAIZHOU_MIN_KAPPA


def test_oscd_patches_do_not_depend_on_where_the_windows_fall(shared_data):
    """Cupertino (real L1C): windows of 256, 512 and 1024 give the same patches.

    A component whose changed area lay between half the unit and the unit
    was left out inside a window but kept where it crossed a window's
    border: 453, 449 and 442 patches with these windows before the merged
    components were held to the same rule.
    """
    import warnings

    import ecopatch

    folder = shared_data / "oscd_cities" / "cupertino"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    dates = dict(line.split(": ", 1) for line in (folder / "dates.txt").read_text().splitlines() if ": " in line)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = ecopatch.open_scene(folder / "imgs_1", date=dates["date_1"].strip())
        a = ecopatch.open_scene(folder / "imgs_2", date=dates["date_2"].strip())
        got = [ecopatch.detect_changes(b, a, block=block, progress=False) for block in (256, 512, 1024)]
    assert len(got[0]) > 100
    for other in got[1:]:
        assert list(other["patch_id"]) == list(got[0]["patch_id"])
        np.testing.assert_allclose(other["change_m2"], got[0]["change_m2"], rtol=1e-9)
