"""Scheduled runs set the sky tier of the cases: a later clear scene that sees a case again confirms it.

The sample's 2021 -> 2024-09-12 run opens the cases (``probable``, 疑似).  Then
- a 2024-10-10 scene of the same 2024 ground, compared with 2021 (same season), finds them again:
  they become ``confirmed`` (影像确认) on 2024-10-10, and the report counts both tiers;
- a 2024-10-10 scene of the 2021 ground (nothing changed there, and clear) finds nothing: they stay
  ``probable``.
With ``baseline = "previous"`` the 2024-10-10 run is compared with 2024-09-12, which already shows the
change: nothing is found again, but the scene still shows the cases' new ground and confirms them
(``Ledger.confirm_from_sky``), unless it shows the 2021 ground.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from ecopatch.ledger import Ledger
from ecopatch.run.config import load_config
from ecopatch.run.manifest import MANIFEST
from ecopatch.run.outcome import ExitCode
from ecopatch.run.pipeline import run_pipeline

from .runsite import BEFORE, add_repeat_scene, make_site, sample_source

LATER = dt.date(2024, 10, 10)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return sample_source(tmp_path_factory)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, source):
    """The site after the 2021 -> 2024-09-12 run."""
    site = tmp_path_factory.mktemp("tiers") / "site"
    cfg = load_config(make_site(site, source, report=True))
    res = run_pipeline(cfg, progress=False)
    assert res.exit_code == ExitCode.OK, res.summary()
    return site


def _second(first_run: Path, source: Path, tmp: Path, like: str):
    site = tmp / "site"
    shutil.copytree(first_run, site)
    add_repeat_scene(site, source, LATER.isoformat(), seed=5, like=like)
    cfg = load_config(site / "ecopatch.toml")
    before = Ledger(cfg.outputs.ledger).cases()
    res = run_pipeline(cfg, progress=False)
    assert res.exit_code == ExitCode.OK, res.summary()
    (o,) = res.outcomes
    return o, before, Ledger(cfg.outputs.ledger)


def test_seen_again_in_a_later_clear_scene_confirms(first_run, source, tmp_path):
    o, before, led = _second(first_run, source, tmp_path, "after")
    assert len(before) >= 8 and (before["sky_tier"] == "probable").all()
    assert o.baseline.scene_id == BEFORE  # same season of an earlier year
    after = led.cases().set_index("case_id")
    old = after.loc[before["case_id"]]
    confirmed = old[old["sky_tier"] == "confirmed"]
    # every case opened by the first run is seen again in the same ground, clear (the 2024 masks)
    assert len(confirmed) >= len(before) - 1, old[["sky_tier", "n_detections"]]
    assert (confirmed["confirmed_on"] == LATER).all() and (confirmed["found_on"] == dt.date(2024, 9, 12)).all()
    assert (confirmed["status"] == "detected").all()  # the ground check is still to come
    assert o.counts["ledger"]["sky_confirmed"] == len(confirmed) and o.counts["ledger"]["new"] <= 2
    ev = led.events(confirmed.index[0])
    assert list(ev["kind"]) == ["detect", "redetect", "sky_confirm"]
    d = ev["data"].iloc[-1]
    assert d["confirmed_on"] == "2024-10-10" and d["clear_share"] >= 0.7 and ev["run_id"].iloc[-1] == o.scene.scene_id
    assert led.check().ok
    m = json.loads((o.folder / MANIFEST).read_text(encoding="utf-8"))
    assert m["counts"]["ledger"]["sky_confirmed"] == len(confirmed)
    # the report counts both tiers and lists each case's tier
    from openpyxl import load_workbook

    wb = load_workbook(o.folder / "report" / "report.xlsx")
    rows = [[c.value for c in r] for r in wb["汇总"].iter_rows()]
    counts = {r[0].strip(): r[1] for r in rows if isinstance(r[0], str)}
    assert counts["其中影像确认"] == (after["sky_tier"] == "confirmed").sum()
    assert counts["其中疑似"] == (after["sky_tier"] == "probable").sum()
    sheet = next(ws for ws in wb.worksheets if "影像分级" in [c.value for c in ws[1]])
    head = [c.value for c in sheet[1]]
    tiers = [r[head.index("影像分级")].value for r in sheet.iter_rows(min_row=2)]
    assert tiers.count("影像确认") == len(confirmed)


def test_clear_and_unchanged_later_scene_leaves_cases_probable(first_run, source, tmp_path):
    o, before, led = _second(first_run, source, tmp_path, "before")
    assert o.counts["clear_fraction"] > 0.5 and o.counts["ledger"]["sky_confirmed"] == 0
    after = led.cases().set_index("case_id").loc[before["case_id"]]
    assert (after["sky_tier"] == "probable").all() and after["confirmed_on"].isna().all()
    assert not (led.events()["kind"] == "sky_confirm").any()


def _second_previous(first_run: Path, source: Path, tmp: Path, like: str):
    """The second run with ``baseline = "previous"``: its baseline (2024-09-12) already shows the change."""
    site = tmp / "site"
    shutil.copytree(first_run, site)
    add_repeat_scene(site, source, LATER.isoformat(), seed=5, like=like)
    toml = site / "ecopatch.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("[run]\n", '[run]\nbaseline = "previous"\n', 1),
                    encoding="utf-8")
    cfg = load_config(toml)
    assert cfg.run.baseline == "previous"
    before = Ledger(cfg.outputs.ledger).cases()
    res = run_pipeline(cfg, progress=False)
    assert res.exit_code == ExitCode.OK, res.summary()
    (o,) = res.outcomes
    return o, before, Ledger(cfg.outputs.ledger), cfg


def test_previous_baseline_confirms_cases_the_later_scene_still_shows(first_run, source, tmp_path):
    o, before, led, cfg = _second_previous(first_run, source, tmp_path, "after")
    assert o.baseline.scene_id != BEFORE and o.baseline.date == dt.date(2024, 9, 12)  # nothing to find again
    assert o.counts["ledger"]["matched"] == 0
    old = led.cases().set_index("case_id").loc[before["case_id"]]
    confirmed = old[old["sky_tier"] == "confirmed"]
    # the 2024 ground seen again, clear: the cases whose new ground the scene shows are confirmed
    assert len(confirmed) >= len(before) - 1, old[["sky_tier", "change_type"]]
    assert (confirmed["confirmed_on"] == LATER).all() and (confirmed["status"] == "detected").all()
    assert o.counts["ledger"]["sky_confirmed_still_shown"] == len(confirmed) == o.counts["ledger"]["sky_confirmed"]
    ev = led.events(confirmed.index[0])
    assert list(ev["kind"]) == ["detect", "sky_confirm"] and ev["source"].iloc[-1] == "confirm_from_sky"
    d = ev["data"].iloc[-1]
    assert d["confirmed_on"] == LATER.isoformat() and d["clear_share"] >= 0.7
    assert d["progress"] >= 0.5 and d["class_now"] in ("vegetation", "sparse_vegetation", "bare", "built", "water")
    assert led.check().ok
    # the same scene run again changes nothing
    res = run_pipeline(cfg, progress=False, force=True, scenes=[o.scene.scene_id])
    assert res.exit_code == ExitCode.OK, res.summary()
    assert (led.events()["kind"] == "sky_confirm").sum() == len(confirmed)


def test_previous_baseline_leaves_cases_probable_when_the_ground_is_as_before(first_run, source, tmp_path):
    o, before, led, _ = _second_previous(first_run, source, tmp_path, "before")
    assert o.counts["ledger"]["sky_confirmed"] == 0
    after = led.cases().set_index("case_id").loc[before["case_id"]]
    assert (after["sky_tier"] == "probable").all()
