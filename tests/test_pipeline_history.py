"""Scheduled runs over several dates: two baselines, a fixed reference per mine, a history per mine.

The acceptance run of the restoration issue is here: the reference (2021), a later date (2024), then
the same ground again (2025); from the second run to the third every mine keeps its status and its
restored area.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from ecopatch.errors import ConfigError
from ecopatch.ledger import Ledger
from ecopatch.run.baseline import choose_baseline, choose_references, reference_request
from ecopatch.run.config import load_config
from ecopatch.run.discovery import SceneRef
from ecopatch.run.manifest import MANIFEST
from ecopatch.run.outcome import ExitCode
from ecopatch.run.pipeline import run_pipeline

from .runsite import AFTER, BEFORE, add_repeat_scene, make_site, sample_source

REPEAT = "S2B_MSIL2A_20250915T023529_N0510_R089_T50RQU_20250915T061020"
CLEARED = "S2B_MSIL2A_20260910T023529_N0510_R089_T50RQU_20260910T061020"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return sample_source(tmp_path_factory)


def sref(sid: str, y: int, m: int, d: int = 1) -> SceneRef:
    return SceneRef(sid, dt.date(y, m, d), Path(sid))


# --------------------------------------------------------------------------- the encroachment baseline


def test_season_baseline_is_last_years_scene_of_the_same_time_of_year():
    a, b, c = sref("a", 2022, 9, 10), sref("b", 2023, 9, 20), sref("c", 2024, 3, 1)
    s = sref("s", 2024, 9, 12)
    pick, why = choose_baseline(s, [a, b, c, s])
    assert pick is b and why.startswith("same season: 2023-09-20 is 8 day(s) from 2024-09-12")
    # the most recent year with a scene in the window, even when an older one is nearer in the calendar
    a2 = sref("a2", 2022, 9, 12)
    assert choose_baseline(s, [a2, b, c, s])[0] is b
    # within that year the nearest in the calendar
    b2 = sref("b2", 2023, 8, 5)
    assert choose_baseline(s, [a, b2, b, c, s])[0] is b
    # the window is configurable; outside it, the previous scene, with the reason
    pick, why = choose_baseline(s, [b, c, s], window_days=5)
    assert pick is c and why.startswith("previous scene: no earlier-year scene within ±5 days of 09-12")
    assert "the nearest, 2023-09-20, is 8 days away" in why
    assert choose_baseline(s, [a, b, c, s], window_days=5)[0] is a  # 2 days off, two years back
    # a skipped or failed scene is never a baseline
    assert choose_baseline(s, [a, b, c, s], unusable={"b"})[0] is a
    # across the new year
    d1, d2 = sref("d1", 2023, 12, 20), sref("d2", 2024, 1, 10)
    assert choose_baseline(d2, [d1, d2])[0] is d1
    assert choose_baseline(d2, [d1, d2])[1].startswith("same season: 2023-12-20 is 21 day(s)")
    # the first scene has none
    assert choose_baseline(a, [a, b]) == (None, "no earlier scene")
    # no earlier year at all: the previous scene
    e, f = sref("e", 2024, 5, 1), sref("f", 2024, 9, 1)
    assert choose_baseline(f, [e, f])[1].startswith("previous scene: no earlier-year scene")


# --------------------------------------------------------------------------- restoration references


def test_reference_requests_and_choice():
    s18, s20, s21, s24 = sref("s18", 2018, 9), sref("s20", 2020, 9), sref("s21", 2021, 9), sref("s24", 2024, 9)
    scenes = [s18, s20, s21, s24]
    clear = {"s18": [0.2, 1.0, 1.0, 1.0, 1.0], "s20": [0.9, 1.0, 0.3, 1.0, 1.0], "s21": [1.0] * 5,
             "s24": [1.0] * 5}
    reqs = [None, reference_request("2021-09-01"), reference_request(2022), reference_request("s20"),
            reference_request("2017-01-01")]
    refs = choose_references(reqs, scenes, rules=["-", "field a", "field b", "field c", "field d"],
                             clear=lambda s: clear[s.scene_id])
    ids = [r.scene.scene_id for r in refs]
    # default "earliest": s18 sees mine 0 only 20 % clear, so s20
    assert ids[0] == "s20" and "earliest usable scene that sees the mine clear (90% observed)" in refs[0].why
    assert refs[0].rule == "config reference = earliest"
    assert ids[1] == "s21" and refs[1].why == "the scene of 2021-09-01" and refs[1].rule == "field a"
    # restoration began in 2022: the latest scene before it that sees the mine clear (s21)
    assert ids[2] == "s21" and "latest usable scene before 2022" in refs[2].why
    assert ids[3] == "s20"
    # no scene before 2017: falls back to the default, and says so
    assert ids[4] == "s18" and "no scene on or before 2017-01-01" in refs[4].why and "fallback" in refs[4].rule
    # a scene skipped by its own run is not taken by the earliest rule
    assert choose_references([None], scenes, unusable={"s18"})[0].scene.scene_id == "s20"
    # no scene clear enough: the clearest
    dim = choose_references([None], [s18, s20], clear=lambda s: {"s18": [0.3], "s20": [0.5]}[s.scene_id])
    assert dim[0].scene is s20 and "the clearest, 2020-09-01 (50% observed)" in dim[0].why
    assert reference_request(float("nan")) is None and reference_request(pd.Timestamp("2021-09-18")) == (
        "date", dt.date(2021, 9, 18))


# --------------------------------------------------------------------------- runs over three and four dates


@pytest.fixture(scope="module")
def three_dates(tmp_path_factory, source):
    """2021 (reference) and 2024 processed, then 2025 (the 2024 ground again) by a second run."""
    site = tmp_path_factory.mktemp("three") / "site"
    cfg = load_config(make_site(site, source))
    first = run_pipeline(cfg, progress=False)
    add_repeat_scene(site, source, "2025-09-15", seed=7)
    second = run_pipeline(cfg, progress=False)
    return site, cfg, first, second


def test_fixed_reference_over_three_dates(three_dates):
    site, cfg, first, second = three_dates
    assert first.exit_code == second.exit_code == ExitCode.OK
    (o,) = second.outcomes
    # encroachment against last year's same season; restoration against each mine's reference, 2021
    assert o.scene.scene_id == REPEAT and o.baseline.scene_id == AFTER
    assert [(sc.scene_id, n) for sc, n in o.references] == [(BEFORE, 8)]
    m = json.loads((o.folder / MANIFEST).read_text(encoding="utf-8"))
    assert m["baseline"]["id"] == AFTER and m["baseline"]["why"].startswith("same season: 2024-09-12")
    assert {r["id"] for r in m["references"]["mines"].values()} == {BEFORE}
    assert "earliest usable scene" in m["references"]["mines"]["YH-KS-004"]["why"]
    assert f"reference {BEFORE}" in m["inputs"]  # the reference scene's checksum is recorded too
    table = gpd.read_file(o.folder / "results" / "mines.gpkg")
    assert (table["reference_scene"] == BEFORE).all() and (table["date_before"].astype(str) == "2021-09-18").all()
    assert table["reference_rule"].str.startswith("config reference = earliest").all()

    h = Ledger(cfg.outputs.ledger).mine_history()
    assert len(h) == 16 and h.groupby("patch_id").size().eq(2).all()  # one row per mine per date
    a = h[h["date_after"] == dt.date(2024, 9, 12)].set_index("patch_id")
    b = h[h["date_after"] == dt.date(2025, 9, 15)].set_index("patch_id")
    assert (a["status"] == b["status"]).all(), pd.concat([a["status"], b["status"]], axis=1)
    assert (a["status"] != "not_started").sum() >= 6  # not re-baselined on 2024
    restored = a["restoration_rate"] >= 0.05
    rel = (b["restored_m2"] / a["restored_m2"] - 1).abs()
    assert (rel[restored] <= 0.02).all(), rel
    # a mine with (nearly) nothing restored: its few hundred m² of noise move by less than the 400 m² MMU
    assert ((b["restored_m2"] - a["restored_m2"]).abs()[~restored] < 400).all()
    assert (b["alerts"].str.contains("rebound|degradation") == False).all()  # noqa: E712 - no loss on the same ground


def test_rerunning_a_date_replaces_never_duplicates(three_dates):
    site, cfg, _, _ = three_dates
    led = Ledger(cfg.outputs.ledger)
    before = led.mine_history()
    again = run_pipeline(cfg, force=True, scenes=["2025-09-15"], progress=False)
    (o,) = again.outcomes
    assert o.counts["ledger"]["mine_records_unchanged"] == 8 and o.counts["ledger"]["mine_records_added"] == 0
    after = led.mine_history()
    pd.testing.assert_frame_equal(before.drop(columns="recorded_at"), after.drop(columns="recorded_at"))
    assert led.mine_history(superseded=True).empty


def test_losses_are_flagged(three_dates, source, caplog):
    site, cfg, _, _ = three_dates
    add_repeat_scene(site, source, "2026-09-10", seed=9, cleared={"YH-KS-004": 0.5, "YH-KS-006": 1.0})
    res = run_pipeline(cfg, progress=False)
    (o,) = res.outcomes
    assert o.scene.scene_id == CLEARED and o.baseline.scene_id == REPEAT
    h = Ledger(cfg.outputs.ledger).mine_history()
    last = h[h["date_after"] == dt.date(2026, 9, 10)].set_index("patch_id")
    # against the 2021 reference the cleared ground is merely "not restored" again: the history sees the loss
    for pid in ("YH-KS-004", "YH-KS-006"):
        assert "rebound" in last.loc[pid, "alerts"], last.loc[pid]
    assert last.loc["YH-KS-006", "status"] == "not_started" and last.loc["YH-KS-004", "restoration_rate"] < 0.5
    untouched = last.drop(index=["YH-KS-004", "YH-KS-006"])
    assert not untouched["alerts"].str.contains("rebound|degradation").any()
    # three flat observations over two years: the mines where nothing moved are "stalled", the others not
    assert set(last.loc[last["status"] == "stalled"].index) <= {"YH-KS-005", "YH-KS-008"}
    assert (last["status"] == "stalled").any()
    table = pd.read_csv(o.folder / "results" / "mines.csv")
    assert table.set_index("patch_id").loc["YH-KS-006", "alerts_zh"].startswith("反弹")


def test_one_reference_for_all_and_per_mine_references(tmp_path, source, caplog):
    site = tmp_path / "site"
    make_site(site, source)
    add_repeat_scene(site, source, "2025-09-15", seed=7)
    # one mine names its own pre-restoration imagery date
    m = gpd.read_file(site / "mines.gpkg")
    m["修复前影像日期"] = [None] * len(m)
    m.loc[m["矿山编号"] == "YH-KS-004", "修复前影像日期"] = "2024-09-12"
    m.to_file(site / "mines.gpkg", driver="GPKG")
    cfg = load_config(site / "ecopatch.toml")
    with caplog.at_level(logging.INFO, logger="ecopatch"):
        res = run_pipeline(cfg, progress=False)
    first, second = res.outcomes
    assert [(sc.scene_id, n) for sc, n in first.references] == [(BEFORE, 7)]
    m1 = json.loads((first.folder / MANIFEST).read_text(encoding="utf-8"))
    assert "YH-KS-004" in m1["references"]["not_assessed"] and m1["counts"]["mines"] == 7
    assert "not assessed, no reference before this scene: YH-KS-004" in caplog.text
    assert sorted((sc.scene_id, n) for sc, n in second.references) == [(BEFORE, 7), (AFTER, 1)]
    t = pd.read_csv(second.folder / "results" / "mines.csv").set_index("patch_id")
    assert t.loc["YH-KS-004", "reference_scene"] == AFTER
    assert t.loc["YH-KS-004", "reference_rule"].startswith("field 修复前影像日期 = 2024-09-12: the scene of 2024-09-12")
    assert t.loc["YH-KS-004", "status"] == "not_started"  # the same ground as its reference
    assert t.loc["YH-KS-006", "reference_scene"] == BEFORE

    # one reference for all, in the configuration: a scene ID that is not in the imagery is refused
    text = (site / "ecopatch.toml").read_text(encoding="utf-8")
    bad = site / "bad.toml"
    bad.write_text(text + '\n[assessment]\nreference = "S2X_NOPE"\nreference_field = "none"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="S2X_NOPE.*no such scene"):
        run_pipeline(load_config(bad), dry_run=True)
    one = site / "one.toml"
    one.write_text(text.replace('dir = "out/runs"', 'dir = "out2/runs"').replace(
        'ledger = "out/ledger.gpkg"', 'ledger = "out2/ledger.gpkg"')
        + '\n[assessment]\nreference = 2024-09-12\nreference_field = "none"\n', encoding="utf-8")
    dry = run_pipeline(load_config(one), dry_run=True)
    assert [o.scene.scene_id for o in dry.outcomes] == [AFTER, REPEAT]
    assert "8 mine(s) without a reference before this scene" in dry.outcomes[0].message
    assert [(sc.scene_id, n) for sc, n in dry.outcomes[1].references] == [(AFTER, 8)]


def test_a_changed_reference_is_warned_and_replaces_the_rows_of_a_rerun_date(three_dates, caplog):
    site, cfg, _, _ = three_dates
    text = (site / "ecopatch.toml").read_text(encoding="utf-8")
    moved = site / "moved.toml"
    moved.write_text(text + '\n[assessment]\nreference = 2024-09-12\n', encoding="utf-8")
    led = Ledger(cfg.outputs.ledger)
    old = led.mine_history()
    old = old[old["date_after"] == dt.date(2025, 9, 15)].set_index("patch_id")
    with caplog.at_level(logging.WARNING, logger="ecopatch"):
        res = run_pipeline(load_config(moved), force=True, scenes=["2025-09-15"], progress=False)
    (o,) = res.outcomes
    assert o.counts["ledger"]["mine_records_replaced"] == 8
    assert "mine YH-KS-004: measured against S2B_MSIL2A_20240912" in caplog.text
    assert "earlier history rows were measured against S2A_MSIL2A_20210918" in caplog.text
    new = led.mine_history()
    new = new[new["date_after"] == dt.date(2025, 9, 15)].set_index("patch_id")
    assert (new["reference_scene"] == AFTER).all() and (new["status"] != "restored").all()
    gone = led.mine_history(superseded=True)
    assert len(gone) == 8 and (gone["reference_scene"] == BEFORE).all()
    assert gone.set_index("patch_id")["restored_m2"].round(6).to_dict() == old["restored_m2"].round(6).to_dict()
    # put the 2021 reference back for the other tests of this module
    run_pipeline(cfg, force=True, scenes=["2025-09-15"], progress=False)
    assert (Ledger(cfg.outputs.ledger).mine_history()["reference_scene"] == BEFORE).all()
