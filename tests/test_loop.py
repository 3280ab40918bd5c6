"""The whole loop on the golden sample: detect -> ledger -> field package -> field results -> a year later.

Issue acceptance: bad rows rejected with reasons and the rest applied; summary counts and colours
as the documented rule says; a second detection run a year later keeps case IDs and opens one
rebound on the case that had been closed.
"""

import datetime as dt
import xml.etree.ElementTree as ET

import geopandas as gpd
import openpyxl
import pytest

import ecopatch
from ecopatch.fieldcheck import RESULTS_SHEET, export_package, import_results

DETECTED_ON = dt.date(2024, 9, 20)


@pytest.fixture(scope="module")
def loop(inputs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loop")
    ledger = ecopatch.Ledger(tmp / "ledger.gpkg")
    first = ledger.add_detections(inputs.patches, run_id="2024-09", today=DETECTED_ON)
    again = ledger.add_detections(inputs.patches, run_id="2024-09", today=DETECTED_ON)
    package = export_package(ledger, tmp / "fieldcheck", today=DETECTED_ON)
    return tmp, ledger, first, again, package


def test_detections_open_cases_once(inputs, loop):
    _, ledger, first, again, _ = loop
    assert first.new == len(inputs.patches) and first.matched == 0
    assert again.new == 0 and again.rebound == 0  # the same detections twice change nothing
    assert len(ledger.cases()) == len(inputs.patches)
    assert ledger.check().ok


def test_field_package_opens_in_other_tools(inputs, loop):
    tmp, ledger, *_ = loop
    folder = tmp / "fieldcheck"
    kml = ET.parse(folder / "cases.kml")
    marks = kml.getroot().findall(".//{http://www.opengis.net/kml/2.2}Placemark")
    assert len(marks) == len(inputs.patches)
    wb = openpyxl.load_workbook(folder / "cases.xlsx")
    headers = [c.value for c in next(wb.active.iter_rows(max_row=1))]
    want = {"图斑编号", "变化类型", "面积(亩)", "面积(平方米)", "经度", "纬度", "保护地名称", "功能分区"}
    assert want <= set(headers)
    back = gpd.read_file(folder / "cases.gpkg")
    cases = ledger.cases()
    assert len(back) == len(cases)
    assert back.geometry.geom_equals_exact(cases.to_crs(back.crs).geometry, 1e-9, align=False).all()


def _fill(template, out, rows):
    wb = openpyxl.load_workbook(template)
    ws = wb[RESULTS_SHEET]
    headers = [c.value for c in ws[1]]
    col = {h: i + 1 for i, h in enumerate(headers)}
    ids = {ws.cell(row=r, column=col["图斑编号"]).value: r for r in range(2, ws.max_row + 1)}
    extra = ws.max_row + 1
    for case_id, values in rows:
        r = ids.get(case_id)
        if r is None:
            r = extra
            extra += 1
            ws.cell(row=r, column=col["图斑编号"], value=case_id)
        for k, v in values.items():
            ws.cell(row=r, column=col[k], value=v)
    wb.save(out)
    return out


@pytest.fixture(scope="module")
def imported(loop):
    tmp, ledger, *_ = loop
    ids = list(ledger.cases()["case_id"])
    ok = {"核查人": "王工", "核查日期": "2024-10-10"}
    rows = [
        (ids[0], {**ok, "核查结论": "确认", "实际类型": "工业开发", "责任单位": "某镇人民政府",
                  "整改期限": "2024-12-31"}),
        (ids[1], {**ok, "核查结论": "误报", "备注": "耕地翻耕，季节性裸露"}),
        (ids[2], {**ok, "核查结论": "也许"}),                                   # not an allowed value
        (ids[3], {**ok, "核查结论": "确认", "实际类型": "旅游开发", "核查日期": "2024-13-45"}),  # impossible date
        ("YB-2099-999999", {**ok, "核查结论": "误报"}),                          # unknown case
    ]
    filled = _fill(tmp / "fieldcheck" / "results_template.xlsx", tmp / "results_filled.xlsx", rows)
    report = import_results(ledger, filled, today=dt.date(2024, 10, 12))
    again = import_results(ledger, filled, today=dt.date(2024, 10, 12))
    return ids, report, again


def test_import_applies_good_rows_and_rejects_bad_ones_with_reasons(loop, imported):
    _, ledger, *_ = loop
    ids, report, again = imported
    assert len(report.accepted) == 2
    assert len(report.rejected) == 3
    reasons = " | ".join(report.rejected["reason"].astype(str))
    assert "也许" in reasons and "YB-2099-999999" in reasons and "2024-13-45" in reasons
    assert ledger.case(ids[0]).status.value == "confirmed"
    assert ledger.case(ids[1]).status.value == "false_alarm"
    assert ledger.case(ids[2]).status.value == "detected"
    assert len(again.accepted) == 0  # importing the same file twice adds nothing


def test_summary_colours_and_precision(loop, imported):
    _, ledger, *_ = loop
    ids, *_ = imported
    ledger.advance(ids[0], "start_rectification", today=dt.date(2024, 10, 20))
    today = dt.date(2025, 1, 10)  # the deadline 2024-12-31 has passed
    cases = ledger.cases(today=today).set_index("case_id")
    assert cases.loc[ids[0], "colour"] == "red"  # rectifying and overdue
    assert cases.loc[ids[1], "colour"] == "green"  # false alarm
    assert cases.loc[ids[2], "colour"] == "yellow"  # detected 112 days ago, never dispatched
    s = ledger.summary(today=today)
    by_colour = s[s["dimension"] == "colour"].set_index("key")["n_cases"]
    assert by_colour.get("red", 0) == 1 and by_colour.get("green", 0) == 1
    assert by_colour.sum() == len(cases)
    prec = ledger.precision()
    assert float(prec["precision"].iloc[0]) == pytest.approx(0.5)  # one confirmed, one false alarm


def test_a_year_later_cases_keep_ids_and_one_rebound_opens(inputs, loop, imported):
    _, ledger, *_ = loop
    ids, *_ = imported
    for kind, day in (("complete", dt.date(2025, 3, 1)), ("close", dt.date(2025, 4, 1))):
        ledger.advance(ids[0], kind, today=day)
    assert ledger.case(ids[0]).status.value == "closed"
    # the same ground a year later: the construction is still there
    year_later = inputs.after.with_date(dt.date(2025, 9, 15))
    patches = ecopatch.detect_changes(inputs.before, year_later, inputs.reserves, progress=False)
    result = ledger.add_detections(patches, run_id="2025-09", today=dt.date(2025, 9, 20))
    assert result.new == 0
    assert result.rebound == 1
    assert result.matched == len(patches) - 1
    assert set(ledger.cases()["case_id"]) == set(ids)
    assert ledger.case(ids[0]).status.value == "reopened"
    assert ledger.check().ok
