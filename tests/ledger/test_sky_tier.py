"""The sky tier (影像分级) of a case: probable when seen once, confirmed when a later clear scene sees it again."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pytest

from ecopatch.errors import InputDataError, LedgerTransitionError
from ecopatch.fieldcheck import export_package
from ecopatch.ledger import SCHEMA_VERSION, Event, Ledger, SkyTier, advance, open_case, replay, summarise_cases

from .test_store import T0, make_patches


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(tmp_path / "ledger.gpkg")
    led.add_detections(make_patches([("p1", 0, 0), ("p2", 10, 0), ("p3", 20, 0)]), "run-05-01", today=T0)
    return led


def tiers(led):
    c = led.cases(today=T0).set_index("case_id")
    return {cid: (r["sky_tier"], r["confirmed_on"]) for cid, r in c.iterrows()}


def test_model_sky_confirm_moves_the_tier_not_the_state():
    c = open_case("YB-2024-000001", Event("detect", dt.date(2024, 5, 10), data={"date_after": "2024-05-01"}))
    assert c.sky_tier is SkyTier.PROBABLE and c.confirmed_on is None
    c2 = advance(c, Event("sky_confirm", dt.date(2024, 6, 10), data={"confirmed_on": "2024-06-03"}))
    assert c2.status == c.status and c2.sky_tier is SkyTier.CONFIRMED and c2.confirmed_on == dt.date(2024, 6, 3)
    # once confirmed, the first confirmation's date stays; allowed in any state, also after a ground verdict
    c3 = replay("YB-2024-000001", [Event("detect", dt.date(2024, 5, 10)), Event("dismiss", dt.date(2024, 5, 20)),
                                   Event("sky_confirm", dt.date(2024, 6, 1), data={"confirmed_on": "2024-05-30"}),
                                   Event("sky_confirm", dt.date(2024, 7, 1), data={"confirmed_on": "2024-06-30"})])
    assert c3.status.value == "false_alarm" and c3.confirmed_on == dt.date(2024, 5, 30)
    assert SkyTier.PROBABLE.zh == "疑似" and SkyTier.CONFIRMED.zh == "影像确认"


def test_new_cases_are_probable(ledger):
    assert set(tiers(ledger).values()) == {("probable", None)}
    assert ledger.check().ok
    with pytest.raises(LedgerTransitionError, match="come from add_detections"):
        ledger.advance("YB-2024-000001", "sky_confirm", today=T0)  # only a later scene confirms from the sky


def test_found_again_later_and_clear_confirms(ledger):
    later = make_patches([("q1", 0, 0), ("q2", 10, 0)], date_after="2024-06-03")
    res = ledger.add_detections(later, "run-06-03", today=dt.date(2024, 6, 10),
                                clear_shares={"YB-2024-000001": 0.95, "YB-2024-000002": 0.4})
    assert (res.matched, res.sky_confirmed) == (2, 1)
    t = tiers(ledger)
    assert t["YB-2024-000001"] == ("confirmed", dt.date(2024, 6, 3))
    assert t["YB-2024-000002"] == ("probable", None)  # found again, but seen only 40 % clear
    assert t["YB-2024-000003"] == ("probable", None)  # not found again: stays probable
    ev = ledger.events("YB-2024-000001")
    assert list(ev["kind"]) == ["detect", "redetect", "sky_confirm"]
    last = ev.iloc[-1]
    assert last["from_status"] == last["to_status"] == "detected"  # the state does not move
    assert last["data"]["confirmed_on"] == "2024-06-03" and last["data"]["first_seen"] == "2024-05-01"
    assert last["data"]["clear_share"] == 0.95 and last["run_id"] == "run-06-03" and last["patch_id"] == "q1"
    c = ledger.cases(today=T0).set_index("case_id")
    assert c.loc["YB-2024-000001", "sky_tier_zh"] == "影像确认" and c.loc["YB-2024-000003", "sky_tier_zh"] == "疑似"
    assert c.loc["YB-2024-000001", "found_on"] == dt.date(2024, 5, 1)  # first seen stays
    assert ledger.check().ok
    # a third sighting changes nothing more
    third = make_patches([("r1", 0, 0)], date_after="2024-07-01")
    assert ledger.add_detections(third, "run-07-01", today=dt.date(2024, 7, 5)).sky_confirmed == 0
    assert tiers(ledger)["YB-2024-000001"] == ("confirmed", dt.date(2024, 6, 3))


def test_same_date_or_older_is_not_a_later_observation(ledger):
    # another tile of the same day, and a scene older than the first detection processed late
    same_day = make_patches([("s1", 0, 0)], date_after="2024-05-01")
    older = make_patches([("o2", 10, 0)], date_after="2024-04-20")
    assert ledger.add_detections(same_day, "other-tile", today=T0).matched == 1
    assert ledger.add_detections(older, "backfill", today=T0).matched == 1
    assert set(tiers(ledger).values()) == {("probable", None)}


def test_without_clear_shares_the_detection_counts_as_the_clear_observation(ledger):
    later = make_patches([("q3", 20, 0)], date_after="2024-06-03")
    assert ledger.add_detections(later, "lib", today=T0).sky_confirmed == 1
    assert tiers(ledger)["YB-2024-000003"] == ("confirmed", dt.date(2024, 6, 3))
    # a case missing from the mapping is not confirmed
    again = make_patches([("q1", 0, 0)], date_after="2024-06-03")
    assert ledger.add_detections(again, "run", today=T0, clear_shares={}).sky_confirmed == 0
    with pytest.raises(InputDataError, match="min_clear_share"):
        ledger.add_detections(again, "run2", today=T0, min_clear_share=1.5)


def test_summary_and_exports_carry_the_tier(ledger, tmp_path):
    ledger.add_detections(make_patches([("q1", 0, 0)], date_after="2024-06-03"), "run-06", today=T0)
    s = ledger.summary(today=T0)
    tier = s[s["dimension"] == "sky_tier"].set_index("key")
    assert dict(tier["n_cases"]) == {"probable": 2, "confirmed": 1}
    assert dict(tier["label"]) == {"probable": "疑似", "confirmed": "影像确认"}
    assert tier["n_cases"].sum() == s.loc[s["dimension"] == "all", "n_cases"].iloc[0]
    assert "sky_tier" not in set(summarise_cases(ledger.cases(today=T0).drop(columns="sky_tier"))["dimension"])

    import pandas as pd
    from openpyxl import load_workbook

    pkg = export_package(ledger, tmp_path / "pkg", today=T0)
    csv = pd.read_csv(pkg.csv, encoding="utf-8-sig").set_index("图斑编号")
    assert csv.loc["YB-2024-000001", "影像分级"] == "影像确认" and csv.loc["YB-2024-000002", "影像分级"] == "疑似"
    assert csv.loc["YB-2024-000001", "影像确认日期"] == "2024-06-03"
    ws = load_workbook(pkg.xlsx)["图斑清单"]
    head = [c.value for c in ws[1]]
    assert "影像分级" in head and "影像确认日期" in head
    rep = ledger.export_report(tmp_path / "rep", today=T0)
    wb = load_workbook(rep["xlsx"])
    head = [c.value for c in wb["案件清单"][1]]
    assert "影像分级" in head
    summ = [[c.value for c in row][:4] for row in wb["汇总"].iter_rows()]
    assert summ[0] == ["维度", "代码", "名称", "图斑数"]
    assert ["sky_tier", "confirmed", "影像确认", 1] in summ and ["sky_tier", "probable", "疑似", 2] in summ


# --------------------------------------------------------------------------- schema 2 -> 3


def _as_schema_2(path):
    """Turn a ledger without sky_confirm events into what ecopatch wrote before schema 3 (no tier columns)."""
    con = sqlite3.connect(path)
    with con:
        assert con.execute("SELECT COUNT(*) FROM events WHERE kind='sky_confirm'").fetchone()[0] == 0
        con.execute("ALTER TABLE cases DROP COLUMN sky_tier")
        con.execute("ALTER TABLE cases DROP COLUMN confirmed_on")
        con.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    con.close()


def test_a_schema_2_ledger_is_upgraded(tmp_path, caplog):
    path = tmp_path / "old.gpkg"
    led = Ledger(path)
    led.add_detections(make_patches([("p1", 0, 0), ("p2", 10, 0), ("p3", 20, 0)]), "run-05", today=T0)
    led.advance("YB-2024-000002", "dismiss", today=T0)
    # p1 found again later; p2 found again on the same date (another tile): no later observation
    # (clear_shares={}: nothing is confirmed as it is written, as before schema 3)
    for pid, dx, date, run in (("q1", 0, "2024-06-03", "run-06"), ("x2", 10, "2024-05-01", "tile-2"),
                               ("r1", 0, "2024-07-01", "run-07")):
        led.add_detections(make_patches([(pid, dx, 0)], date_after=date), run, today=T0, clear_shares={})
    _as_schema_2(path)
    con = sqlite3.connect(path)
    cols = {r[1] for r in con.execute("PRAGMA table_info(cases)")}
    n_events = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    con.close()
    assert "sky_tier" not in cols and n_events == 7

    up = Ledger(path)
    assert "upgraded from schema 2 to 3" in caplog.text and "1 of them confirmed" in caplog.text
    assert up.schema_version == SCHEMA_VERSION == 3 and up.check().ok
    t = tiers(up)
    assert t == {"YB-2024-000001": ("confirmed", dt.date(2024, 6, 3)),  # the earliest later re-detection
                 "YB-2024-000002": ("probable", None), "YB-2024-000003": ("probable", None)}
    ev = up.events("YB-2024-000001")
    assert list(ev["kind"]) == ["detect", "redetect", "redetect", "sky_confirm"]
    assert ev["source"].iloc[-1] == "upgrade_schema_3" and ev["data"].iloc[-1]["clear_share"] is None
    assert len(up.events()) == n_events + 1  # nothing lost, one event added
    assert up.case("YB-2024-000002").status.value == "false_alarm"
    # the upgraded ledger works on, and opening it again does nothing more
    up.add_detections(make_patches([("s3", 20, 0)], date_after="2024-08-01"), "run-08", today=T0)
    assert tiers(up)["YB-2024-000003"] == ("confirmed", dt.date(2024, 8, 1))
    assert Ledger(path).schema_version == 3 and len(Ledger(path).events()) == n_events + 3
    assert json.loads(json.dumps(up.summary(today=T0).to_dict("records")))  # plain values


def test_confirm_from_sky_records_the_evidence_once(ledger):
    import pandas as pd

    seen = pd.DataFrame({"case_id": ["YB-2024-000001", "YB-2024-000002", "YB-NOPE"],
                         "class_before": "vegetation", "class_after": "built", "class_now": "built",
                         "progress": [0.93, 0.71, 1.0], "clear_share": [1.0, 0.8, 1.0],
                         "veg": 0.1, "bare": 0.3, "built": 0.6, "water": float("nan")})
    done = ledger.confirm_from_sky(seen, "run-06-03", seen_on=dt.date(2024, 6, 3), today=dt.date(2024, 6, 10))
    assert done == ("YB-2024-000001", "YB-2024-000002")  # an unknown case is skipped
    t = tiers(ledger)
    assert t["YB-2024-000001"] == ("confirmed", dt.date(2024, 6, 3)) and t["YB-2024-000003"] == ("probable", None)
    ev = ledger.events("YB-2024-000001")
    assert list(ev["kind"]) == ["detect", "sky_confirm"] and ev["source"].iloc[-1] == "confirm_from_sky"
    d = ev["data"].iloc[-1]
    assert d["confirmed_on"] == "2024-06-03" and d["first_seen"] == "2024-05-01" and d["progress"] == 0.93
    assert d["class_now"] == "built" and "water" not in d  # NaN evidence is left out
    assert ledger.cases(today=T0).set_index("case_id").loc["YB-2024-000001", "status"] == "detected"
    assert ledger.check().ok
    # again, or with a scene not later than the first sighting: nothing more
    assert ledger.confirm_from_sky(seen, "run-06-03", seen_on=dt.date(2024, 6, 3)) == ()
    assert ledger.confirm_from_sky(seen.iloc[2:].assign(case_id="YB-2024-000003"), "run-x",
                                   seen_on=dt.date(2024, 5, 1)) == ()
    assert (ledger.events()["kind"] == "sky_confirm").sum() == 2
    with pytest.raises(InputDataError, match="case_id"):
        ledger.confirm_from_sky(pd.DataFrame({"x": [1]}), "run-y", seen_on=dt.date(2024, 7, 1))
    with pytest.raises(LedgerTransitionError, match="confirm_from_sky"):
        ledger.advance("YB-2024-000003", "sky_confirm", today=T0)
