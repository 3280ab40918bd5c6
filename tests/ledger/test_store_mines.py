"""The ledger's mine side: one history row per mine per date (一矿一档), the schema-1 upgrade, field verdicts."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from ecopatch.errors import FieldCheckError, InputDataError, OutputExistsError
from ecopatch.fieldcheck import export_verdict_template, import_verdicts, verdict_agreement
from ecopatch.ledger import SCHEMA_VERSION, Ledger

X0, Y0, S = 120.10, 30.25, 0.001


def mines(date_after="2024-09-12", rate=(0.5, 0.9), status=("in_progress", "restored"), ref="S2A_2021"):
    return gpd.GeoDataFrame(
        {
            "patch_id": ["M01", "M02"], "area_m2": [5.0e4, 8.0e4], "observed_m2": [5.0e4, 8.0e4],
            "damaged_m2": [2.0e4, 3.0e4], "restored_m2": [2.0e4 * rate[0], 3.0e4 * rate[1]],
            "still_bare_m2": [2.0e4 * (1 - rate[0]), 3.0e4 * (1 - rate[1])], "degraded_m2": [0.0, 120.0],
            "veg_before_m2": [1.0e3, 2.0e3], "veg_after_m2": [1.1e4, 2.9e4], "restoration_rate": list(rate),
            "status": list(status), "alerts": ["", "behind_plan"], "direction": ["forest", "grass"],
            "fvc_before": [0.05, 0.1], "fvc_after": [0.4, 0.6], "valid_fraction": [1.0, 0.98],
            "reference_scene": ref, "reference_rule": "config reference = earliest: the earliest usable scene",
            "date_before": "2021-09-18", "date_after": date_after, "target_year": [2026, None],
            "target_rate": [0.85, None], "矿山名称": ["东山采石场", "西山采石场"],
        },
        geometry=[box(X0, Y0, X0 + S, Y0 + S), box(X0 + 2 * S, Y0, X0 + 3 * S, Y0 + S)],
        crs="EPSG:4490",
    )  # fmt: skip


@pytest.fixture
def ledger(tmp_path):
    return Ledger(tmp_path / "ledger.gpkg")


def test_one_row_per_mine_per_date(ledger):
    r = ledger.record_assessment(mines(), "S2B_20240912")
    assert (r.added, r.replaced, r.unchanged) == (2, 0, 0)
    # the same figures again (a --force rerun): nothing written
    r = ledger.record_assessment(mines(), "S2B_20240912")
    assert (r.added, r.replaced, r.unchanged) == (0, 0, 2)
    h = ledger.mine_history("M01")
    assert len(h) == 1 and h["date_after"].iloc[0] == dt.date(2024, 9, 12)
    row = h.iloc[0]
    assert row["reference_scene"] == "S2A_2021" and row["date_before"] == dt.date(2021, 9, 18)
    assert row["observed_m2"] == 5.0e4 and row["veg_after_m2"] == 1.1e4 and row["direction"] == "forest"
    assert row["target_year"] == 2026 and row["target_rate"] == 0.85 and row["attrs"] == {"矿山名称": "东山采石场"}
    assert pd.isna(ledger.mine_history("M02")["target_year"].iloc[0])
    # another date: a new row
    ledger.record_assessment(mines("2025-09-15", rate=(0.6, 0.9)), "S2B_20250915")
    assert list(ledger.mine_history("M01")["date_after"]) == [dt.date(2024, 9, 12), dt.date(2025, 9, 15)]
    assert len(ledger.mine_history()) == 4


def test_rerunning_a_date_replaces_its_row_and_keeps_the_old_one(ledger):
    ledger.record_assessment(mines(), "S2B_20240912")
    # the same date measured again against another reference (other figures): replaced, never duplicated
    r = ledger.record_assessment(mines(rate=(0.45, 0.9), ref="S2A_2020"), "S2B_20240912")
    assert (r.added, r.replaced, r.unchanged) == (0, 2, 0)
    h = ledger.mine_history("M01")
    assert len(h) == 1 and h["restoration_rate"].iloc[0] == 0.45 and h["reference_scene"].iloc[0] == "S2A_2020"
    old = ledger.mine_history(superseded=True)
    assert len(old) == 2 and set(old["reference_scene"]) == {"S2A_2021"}
    assert set(old["superseded_by_run"]) == {"S2B_20240912"} and old["superseded_at"].notna().all()
    # another product of the same day (a reprocessed baseline): one row per mine and date still
    ledger.record_assessment(mines(rate=(0.47, 0.9), ref="S2A_2020"), "S2B_20240912_N0511")
    assert len(ledger.mine_history()) == 2 and len(ledger.mine_history(superseded=True)) == 4
    # the superseded rows cannot be changed or deleted
    con = sqlite3.connect(ledger.path)
    try:
        for sql in ("UPDATE mine_history_superseded SET status='x'", "DELETE FROM mine_history_superseded"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                con.execute(sql)
    finally:
        con.close()
    assert ledger.check().ok


def test_a_failed_write_changes_nothing(ledger):
    ledger.record_assessment(mines(), "r1")
    bad = mines(rate=(0.1, 0.2))
    bad.loc[1, "date_after"] = "2024-02-30"  # not a date: refused before anything is written
    with pytest.raises(InputDataError, match=r"mine M02: date_after"):
        ledger.record_assessment(bad, "r2")
    assert list(ledger.mine_history()["restoration_rate"]) == [0.5, 0.9]
    with pytest.raises(InputDataError, match="date_after is empty"):
        ledger.record_assessment(mines(date_after=None), "r3")
    with pytest.raises(RuntimeError), ledger.transaction("x") as led:
        led.record_assessment(mines(rate=(0.2, 0.3)), "r4")
        raise RuntimeError("killed")
    assert list(ledger.mine_history()["restoration_rate"]) == [0.5, 0.9]
    assert ledger.mine_history(superseded=True).empty


def _schema_1_ledger(path):
    """A ledger as ecopatch wrote it before schema 2: mine_history keyed by run, append-only."""
    Ledger(path)
    con = sqlite3.connect(path)
    with con:
        for t in ("mine_history_superseded", "mine_verdicts"):
            for op in ("update", "delete"):
                con.execute(f"DROP TRIGGER {t}_no_{op}")
            con.execute(f"DROP TABLE {t}")
            con.execute("DELETE FROM gpkg_contents WHERE table_name=?", (t,))
        con.execute("DROP TABLE mine_history")
        con.execute("""CREATE TABLE mine_history (
          id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, run_id TEXT NOT NULL, patch_id TEXT NOT NULL,
          area_m2 DOUBLE, damaged_m2 DOUBLE, restored_m2 DOUBLE, restoration_rate DOUBLE,
          status TEXT, fvc_before DOUBLE, fvc_after DOUBLE, valid_fraction DOUBLE,
          date_before DATE, date_after DATE, attrs TEXT, recorded_at DATETIME NOT NULL,
          UNIQUE (run_id, patch_id))""")
        for op in ("UPDATE", "DELETE"):
            con.execute(f"CREATE TRIGGER mine_history_no_{op.lower()} BEFORE {op} ON mine_history "
                        "BEGIN SELECT RAISE(ABORT, 'ecopatch ledger: mine_history are append-only'); END")
        rows = [  # M01 recorded twice for 2024-09-12 (a forced rerun under another run ID), once for 2025
            ("run-a", "M01", 0.50, "2024-09-12", {"still_bare_m2": 1.0e4, "direction": "forest", "x": 1}),
            ("run-b", "M01", 0.52, "2024-09-12", {"still_bare_m2": 0.96e4, "direction": "forest"}),
            ("run-c", "M01", 0.60, "2025-09-15", {}),
            ("run-d", "M02", 0.90, None, {}),
        ]
        for run, pid, rate, date, attrs in rows:
            con.execute("INSERT INTO mine_history (run_id, patch_id, area_m2, damaged_m2, restored_m2, "
                        "restoration_rate, status, fvc_before, fvc_after, valid_fraction, date_before, date_after, "
                        "attrs, recorded_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (run, pid, 5e4, 2e4, 2e4 * rate, rate, "in_progress", 0.05, 0.4, 1.0, "2021-09-18", date,
                         json.dumps(attrs), "2025-01-01T00:00:00.000Z"))
        con.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    con.close()


def test_a_schema_1_ledger_is_upgraded_without_losing_a_row(tmp_path, caplog):
    path = tmp_path / "old.gpkg"
    _schema_1_ledger(path)
    led = Ledger(path)
    assert "upgraded from schema 1" in caplog.text
    assert led.schema_version == SCHEMA_VERSION == 3 and led.check().ok
    h = led.mine_history()
    assert list(zip(h["patch_id"], h["run_id"])) == [("M01", "run-b"), ("M01", "run-c")]
    assert h["still_bare_m2"].iloc[0] == 0.96e4 and h["direction"].iloc[0] == "forest" and h["attrs"].iloc[0] == {}
    old = led.mine_history(superseded=True)
    assert sorted(old["run_id"]) == ["run-a", "run-d"]  # the replaced row, and the undated one
    a = old.set_index("run_id").loc["run-a"]
    assert a["superseded_by_run"] == "run-b" and a["attrs"] == {"x": 1}
    # the upgraded ledger works as a new one
    assert led.record_assessment(mines("2025-09-15", rate=(0.6, 0.9)), "run-e").replaced == 1
    assert Ledger(path).schema_version == SCHEMA_VERSION  # opening again does nothing more


# --------------------------------------------------------------------------- field verdicts (修复核查)


def _fill(template, rows, out):
    """Fill the verdicts workbook as a field team would: by 矿山编号, in the yellow columns."""
    from openpyxl import load_workbook

    wb = load_workbook(template)
    ws = wb["修复核查"]
    head = [c.value for c in ws[1]]
    for r in range(2, ws.max_row + 1):
        pid = ws.cell(row=r, column=1).value
        for k, v in rows.get(pid, {}).items():
            ws.cell(row=r, column=head.index(k) + 1).value = v
    wb.save(out)
    return out


def test_verdicts_template_import_and_agreement(ledger, tmp_path):
    ledger.record_assessment(mines(), "r2024")
    ledger.record_assessment(mines("2025-09-15", rate=(0.6, 0.92)), "r2025")
    tpl = export_verdict_template(ledger, tmp_path / "verdicts.xlsx")
    with pytest.raises(OutputExistsError):
        export_verdict_template(ledger, tpl)
    t = pd.read_excel(tpl, sheet_name="修复核查")
    assert list(t["矿山编号"]) == ["M01", "M02"] and list(t["影像修复状态"]) == ["修复中", "已完成修复"]
    assert list(t["矿山名称"]) == ["东山采石场", "西山采石场"] and t["核查结论"].isna().all()
    filled = _fill(tpl, {
        "M01": {"核查结论": "已验收", "核查人": "王工", "核查日期": dt.datetime(2025, 10, 8), "实测修复面积": 12500},
        "M02": {"核查结论": "验收通过", "核查人": "李工", "核查日期": "2025-10-09", "备注": "复绿良好"},
    }, tmp_path / "filled.xlsx")
    rep = import_verdicts(ledger, filled, today=dt.date(2025, 11, 1), actor="gis")
    assert rep.applied and len(rep.accepted) == 2 and rep.rejected.empty
    v = ledger.mine_verdicts()
    assert list(v["verdict"]) == ["accepted", "accepted"] and list(v["verdict_text"]) == ["已验收", "验收通过"]
    assert v["restored_m2"].iloc[0] == 12500 and v["inspected_on"].iloc[1] == dt.date(2025, 10, 9)
    assert "by gis" in v["source"].iloc[0]
    # importing the same file again adds nothing
    again = import_verdicts(ledger, filled, today=dt.date(2025, 11, 1))
    assert again.accepted.empty and list(again.skipped["reason"]) == ["already imported (已导入)"] * 2
    assert len(ledger.mine_verdicts()) == 2
    # agreement: M01 accepted on the ground, in progress (60 %) in the imagery of 2025-09-15
    ag = verdict_agreement(ledger.mine_verdicts(), ledger.mine_history())
    assert ag.n == 2 and ag.agreement == 0.5 and list(ag.disagreements["patch_id"]) == ["M01"]
    row = ag.table.set_index("patch_id").loc["M01"]
    assert row["imagery_date"] == dt.date(2025, 9, 15) and row["days_apart"] == -23
    assert ag.confusion.loc["已验收 restored", "not restored"] == 1
    assert "agreement 50%" in str(ag) and "M01: field 已验收" in str(ag)
    assert verdict_agreement(ledger.mine_verdicts(), ledger.mine_history(), max_days=10).n == 0


def test_bad_verdict_rows_are_refused_with_reasons(ledger, tmp_path):
    ledger.record_assessment(mines(), "r2024")
    csv = tmp_path / "verdicts.csv"
    pd.DataFrame({
        "矿山编号": ["M01", "M09", "M02", "M02", ""],
        "核查结论": ["通过了", "已验收", "未通过验收", "未通过验收", ""],
        "核查人": ["王工", "王工", "", "李工", ""],
        "核查日期": ["2025-10-08", "2025-10-08", "2025-10-09", "2099-01-01", ""],
        "实测修复面积(平方米)": ["", "", "-5", "", ""],
    }).to_csv(csv, index=False, encoding="gb18030")
    rep = import_verdicts(ledger, csv, today=dt.date(2025, 11, 1))
    reasons = dict(zip(rep.rejected["row"], rep.rejected["reason"]))
    assert "核查结论 '通过了' is not allowed" in reasons[2]
    assert "矿山编号 'M09' is not a mine of this ledger" in reasons[3]
    assert "核查人 is empty" in reasons[4] and "实测修复面积 '-5'" in reasons[4]
    assert "in the future" in reasons[5]
    assert rep.accepted.empty and ledger.mine_verdicts().empty
    with pytest.raises(FieldCheckError, match=r"lacks required column\(s\) \['核查人'\]"):
        pd.DataFrame({"矿山编号": ["M01"], "核查结论": ["已验收"], "核查日期": ["2025-10-08"]}).to_csv(
            tmp_path / "short.csv", index=False)
        import_verdicts(ledger, tmp_path / "short.csv")
    # strict: one bad row, nothing recorded
    pd.DataFrame({"矿山编号": ["M01", "M09"], "核查结论": ["已验收"] * 2, "核查人": ["王工"] * 2,
                  "核查日期": ["2025-10-08"] * 2}).to_csv(tmp_path / "mixed.csv", index=False)
    strict = import_verdicts(ledger, tmp_path / "mixed.csv", today=dt.date(2025, 11, 1), strict=True)
    assert not strict.applied and strict.n_accepted == 0 and ledger.mine_verdicts().empty
    loose = import_verdicts(ledger, tmp_path / "mixed.csv", today=dt.date(2025, 11, 1))
    assert loose.n_accepted == 1 and len(ledger.mine_verdicts()) == 1


def test_verdict_template_needs_a_history(ledger, tmp_path):
    with pytest.raises(FieldCheckError, match="no mine history yet"):
        export_verdict_template(ledger, tmp_path / "v.xlsx")


def test_ledger_report_has_the_mine_history(ledger, tmp_path):
    ledger.record_assessment(mines(), "r2024")  # M02 has no target year
    paths = ledger.export_report(tmp_path / "rep")
    sheet = pd.read_excel(paths["xlsx"], sheet_name="矿山修复")
    assert list(sheet["patch_id"]) == ["M01", "M02"] and sheet["target_year"].iloc[0] == 2026
    assert pd.isna(sheet["target_year"].iloc[1]) and sheet["reference_scene"].iloc[0] == "S2A_2021"
