"""Field packages out, field results in, and detection precision (地上查)."""

from __future__ import annotations

import csv
import datetime as dt
import xml.etree.ElementTree as ET

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from openpyxl import load_workbook
from shapely.geometry import box

from ecopatch.errors import FieldCheckError, OutputExistsError
from ecopatch.fieldcheck import export_package, import_results, parse_date, read_results
from ecopatch.ledger import Ledger, Status

X0, Y0, S = 120.10, 30.25, 0.001
T0 = dt.date(2024, 5, 10)
KML = {"k": "http://www.opengis.net/kml/2.2"}


def make_patches(specs, *, date_after="2024-05-01"):
    """specs: (patch_id, dx, dy[, size, change_type, zone]) in units of S from (X0, Y0)."""
    rows = []
    for spec in specs:
        pid, dx, dy, size, ctype, zone = (*spec, *(1.0, "construction", "core")[len(spec) - 3 :])
        x, y = X0 + dx * S, Y0 + dy * S
        rows.append(
            dict(
                patch_id=pid, change_type=ctype, area_m2=1.0e4, area_mu=15.0, confidence=0.8,
                date_before="2023-05-01", date_after=date_after, ndvi_before=0.7, ndvi_after=0.2,
                centroid_lon=x, centroid_lat=y, cgcs2000_lon=x, cgcs2000_lat=y,
                reserve_name="西溪湿地", zone=zone,
                zone_name="核心保护区" if zone == "core" else None,
                geometry=box(x, y, x + size * S, y + size * S),
            )
        )  # fmt: skip
    return gpd.GeoDataFrame(rows, crs="EPSG:4490")


SPECS = [
    ("p1", 0, 0),
    ("p2", 10, 0, 2.0, "bare_soil", "buffer"),
    ("p3", 20, 0, 1.0, "vegetation_loss", "core"),
    ("p4", 30, 0, 1.0, "construction", "experimental"),
    ("p5", 40, 0, 0.5, "water", "buffer"),
]


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(tmp_path / "ledger.gpkg")
    led.add_detections(make_patches(SPECS), "run-2024-05", today=T0)
    return led


@pytest.fixture
def package(ledger, tmp_path):
    return export_package(ledger, tmp_path / "pkg", today=T0)


def fill(template, path, rows, *, sheet="核查结果"):
    """Fill the results template: rows = {excel_row: {header: value}}."""
    wb = load_workbook(template)
    ws = wb[sheet]
    col = {c.value: c.column for c in ws[1]}
    for r, values in rows.items():
        for h, v in values.items():
            ws.cell(row=r, column=col[h]).value = v
    wb.save(path)
    return path


def ok_confirm(**kw):
    d = {"核查结论": "确认", "实际类型": "工业开发", "责任单位": "某镇人民政府",
         "整改期限": dt.date(2024, 8, 31), "核查人": "张三", "核查日期": dt.date(2024, 5, 20),
         "备注": "新建厂房", "照片": "photos/p1_1.jpg; photos/p1_2.jpg"}  # fmt: skip
    d.update(kw)
    return d


# --------------------------------------------------------------------------- package out


def test_package_files(package):
    for p in (package.gpkg, package.kml, package.csv, package.xlsx, package.results_template):
        assert p.exists() and p.stat().st_size > 0
    assert package.n_cases == 5
    assert not list(package.out_dir.glob(".*tmp*"))  # no temporaries left


def test_kml_has_one_placemark_per_case_with_facts(package, ledger):
    root = ET.parse(package.kml).getroot()
    pms = root.findall(".//k:Placemark", KML)
    assert [pm.find("k:name", KML).text for pm in pms] == list(ledger.cases()["case_id"])
    first = pms[0]
    desc = first.find("k:description", KML).text
    assert "图斑编号" in desc and "YB-2024-000001" in desc and "新增建设" in desc
    lon, lat = map(float, first.find(".//k:Point/k:coordinates", KML).text.split(","))
    assert lon == pytest.approx(X0 + S / 2, abs=1e-6) and lat == pytest.approx(Y0 + S / 2, abs=1e-6)
    ring = first.find(".//k:Polygon//k:coordinates", KML).text.split()
    assert ring[0].startswith("120.")  # lon,lat order
    data = {d.get("name"): d.find("k:value", KML).text for d in first.iter(f"{{{KML['k']}}}Data")}
    assert float(data["面积(亩)"]) == round(ledger.cases()["area_mu"].iloc[0], 2)
    assert data["功能分区"] == "核心保护区"


def test_kml_opens_in_gdal(package):
    drivers = pyogrio.list_drivers()
    if not ({"KML", "LIBKML"} & set(drivers)):
        pytest.skip("GDAL has no KML driver")
    gdf = gpd.read_file(package.kml)
    assert len(gdf) == 5


def test_excel_has_chinese_headers(package):
    wb = load_workbook(package.xlsx)
    ws = wb["图斑清单"]
    headers = [c.value for c in ws[1]]
    for h in ("图斑编号", "变化类型", "面积(亩)", "面积(平方米)", "经度", "纬度", "保护地名称",
              "功能分区", "发现日期", "红黄绿码", "前时相影像", "后时相影像"):  # fmt: skip
        assert h in headers
    assert ws.freeze_panes == "A2"
    assert ws.max_row == 6
    row2 = {h: ws.cell(2, j + 1).value for j, h in enumerate(headers)}
    assert row2["图斑编号"] == "YB-2024-000001" and row2["变化类型"] == "新增建设"
    assert row2["面积(平方米)"] == pytest.approx(10_700, rel=0.01)
    assert row2["面积(亩)"] == pytest.approx(row2["面积(平方米)"] * 15 / 10_000, abs=0.01)
    assert row2["发现日期"].date() == dt.date(2024, 5, 1)
    assert ws.column_dimensions["A"].width >= 14


def test_csv_is_utf8_with_bom(package):
    raw = package.csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with open(package.csv, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and rows[1]["变化类型"] == "新增裸土" and rows[1]["功能分区"] == "缓冲区"


def test_gpkg_reads_back_with_the_same_geometries(package, ledger):
    gdf = gpd.read_file(package.gpkg, layer="cases")
    ours = ledger.cases()
    assert gdf.crs.to_epsg() == 4490
    assert all(a.equals_exact(b, 0) for a, b in zip(gdf.geometry, ours.geometry))
    assert "核查结论" in gdf.columns and "图斑编号" in gdf.columns


def test_results_template_has_dropdowns(package):
    wb = load_workbook(package.results_template)
    ws = wb["核查结果"]
    headers = [c.value for c in ws[1]]
    assert headers[:3] == ["图斑编号", "变化类型", "面积(亩)"]
    for h in ("核查结论", "实际类型", "责任单位", "整改期限", "核查人", "核查日期", "备注", "照片"):
        assert h in headers
    assert [ws.cell(r, 1).value for r in range(2, 7)] == [f"YB-2024-00000{i}" for i in range(1, 6)]
    vals = wb["取值"]
    assert vals.sheet_state == "hidden"
    allowed = [vals.cell(r, 1).value for r in range(2, 4)]
    assert allowed == ["确认", "误报"]
    assert "矿产资源开发" in [vals.cell(r, 2).value for r in range(2, 9)]
    lists = [dv for dv in ws.data_validations.dataValidation if dv.type == "list"]
    assert len(lists) == 2
    dates = [dv for dv in ws.data_validations.dataValidation if dv.type == "date"]
    assert len(dates) == 1 and len(str(dates[0].sqref).split()) == 2  # 整改期限, 核查日期
    col_of = {h: chr(ord("A") + i) for i, h in enumerate(headers)}
    ranges = {str(dv.sqref): dv.formula1 for dv in lists}
    assert ranges[f"{col_of['核查结论']}2:{col_of['核查结论']}200"] == "'取值'!$A$2:$A$3"
    assert ranges[f"{col_of['实际类型']}2:{col_of['实际类型']}200"] == "'取值'!$B$2:$B$8"
    assert ws.cell(1, headers.index("核查结论") + 1).comment is not None


def test_chips_are_called_per_case_and_referenced(ledger, tmp_path):
    calls = []

    def chips(row, before, after):
        calls.append(row["case_id"])
        assert before.parent == after.parent == tmp_path / "pkg" / "chips"
        before.write_bytes(b"\x89PNG before")
        after.write_bytes(b"\x89PNG after")

    pkg = export_package(ledger, tmp_path / "pkg", ["YB-2024-000002", "YB-2024-000001"],
                                   chips=chips, today=T0)  # fmt: skip
    assert calls == ["YB-2024-000001", "YB-2024-000002"]
    before, after = pkg.chips["YB-2024-000002"]
    assert before.name == "YB-2024-000002_before.png" and after.read_bytes() == b"\x89PNG after"
    table = pd.read_csv(pkg.csv, encoding="utf-8-sig")
    assert table["前时相影像"].tolist() == [
        "chips/YB-2024-000001_before.png",
        "chips/YB-2024-000002_before.png",
    ]
    assert 'img src="chips/YB-2024-000001_after.png"' in pkg.kml.read_text(encoding="utf-8")
    assert not list((tmp_path / "pkg" / "chips").glob(".*"))


def test_a_failing_chip_function_stops_the_export_cleanly(ledger, tmp_path):
    def chips(row, before, after):
        raise RuntimeError("no imagery for " + row["case_id"])

    with pytest.raises(RuntimeError, match="no imagery"):
        export_package(ledger, tmp_path / "pkg", chips=chips, today=T0)
    assert not (tmp_path / "pkg" / "cases.csv").exists()
    assert not [p for p in (tmp_path / "pkg").rglob("*") if p.is_file()]


def test_nothing_is_overwritten_without_asking(ledger, package):
    mtime = package.csv.stat().st_mtime_ns
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        export_package(ledger, package.out_dir, today=T0)
    assert package.csv.stat().st_mtime_ns == mtime
    again = export_package(ledger, package.out_dir, ["YB-2024-000003"], overwrite=True, today=T0)
    assert again.n_cases == 1
    assert len(pd.read_csv(again.csv, encoding="utf-8-sig")) == 1


def test_default_selection_and_dispatch(ledger, tmp_path):
    ledger.advance("YB-2024-000005", "dismiss", today=T0)
    pkg = export_package(ledger, tmp_path / "a", today=T0, dispatch=True, actor="调度员")
    assert pkg.n_cases == 4  # the false alarm is not sent out again
    assert set(ledger.cases(status="dispatched")["case_id"]) == {
        f"YB-2024-00000{i}" for i in range(1, 5)
    }
    ev = ledger.events("YB-2024-000001")
    assert ev["kind"].tolist() == ["detect", "dispatch"] and ev["actor"].iloc[-1] == "调度员"
    with pytest.raises(Exception, match="no case"):
        export_package(ledger, tmp_path / "b", ["YB-2024-999999"])
    empty = export_package(ledger, tmp_path / "c", ledger.cases().iloc[:0], today=T0)
    assert empty.n_cases == 0 and len(gpd.read_file(empty.gpkg)) == 0
    assert ledger.check().ok


# --------------------------------------------------------------------------- results in


def test_import_validates_every_row(ledger, package, tmp_path):
    ledger.advance("YB-2024-000004", "confirm", today=T0, real_type="industry")
    path = fill(
        package.results_template,
        tmp_path / "filled.xlsx",
        {
            2: ok_confirm(),  # good
            3: {"核查结论": "误报", "核查人": "李四", "核查日期": "2024/5/21", "备注": "耕地翻耕"},
            4: ok_confirm(核查结论="可能", 核查日期="2024-02-30"),  # bad value, impossible date
            5: ok_confirm(),  # case 4 is already confirmed: transition not allowed
            # row 6 (case 5) left blank: skipped
            7: {"图斑编号": "YB-2024-999999", **ok_confirm()},  # unknown case
            8: {"图斑编号": "YB-2024-000005", **ok_confirm(核查日期=dt.date(2024, 7, 1))},  # future
            9: {"图斑编号": "YB-2024-000005", **ok_confirm(整改期限=dt.date(2024, 5, 1))},
        },
    )
    report = import_results(ledger, path, today=dt.date(2024, 6, 1))
    assert report.applied
    assert report.accepted["case_id"].tolist() == ["YB-2024-000001", "YB-2024-000002"]
    assert report.accepted["to_status"].tolist() == ["confirmed", "false_alarm"]
    assert report.skipped[["row", "reason"]].values.tolist() == [[6, "not filled in (未填写)"]]
    rej = report.rejected.set_index("row")["reason"]
    assert rej.index.tolist() == [4, 5, 7, 8, 9]
    assert "核查结论 '可能' is not allowed; use 确认 or 误报" in rej[4]
    assert "'2024-02-30' is not a calendar date" in rej[4]
    assert "cannot 'confirm' (-> confirmed) from confirmed (已确认)" in rej[5]
    assert "'YB-2024-999999' is not a case in this ledger" in rej[7]
    assert "appears in rows [8, 9]" in rej[8] and "in the future" in rej[8]
    assert "整改期限 2024-05-01 is before 核查日期 2024-05-20" in rej[9]
    assert "row 4 YB-2024-000003:" in str(report)

    c1 = ledger.case("YB-2024-000001")
    assert c1.status is Status.CONFIRMED and c1.real_type == "industry"
    assert c1.responsible_unit == "某镇人民政府" and c1.deadline == dt.date(2024, 8, 31)
    assert c1.status_since == dt.date(2024, 5, 20)  # the inspection date
    last = ledger.events("YB-2024-000001").iloc[-1]
    assert last["actor"] == "张三" and last["note"] == "新建厂房"
    assert last["attachments"] == ["photos/p1_1.jpg", "photos/p1_2.jpg"]
    assert last["source"] == "import_fieldcheck:filled.xlsx#row2"
    assert ledger.case("YB-2024-000002").status is Status.FALSE_ALARM
    assert ledger.case("YB-2024-000003").status is Status.DETECTED  # rejected: untouched

    # the same file again: nothing new
    n_events = len(ledger.events())
    again = import_results(ledger, path, today=dt.date(2024, 6, 1))
    assert len(again.accepted) == 0
    assert again.skipped.set_index("row")["reason"].to_dict() == {
        2: "already imported (已导入)",
        3: "already imported (已导入)",
        6: "not filled in (未填写)",
    }
    assert len(ledger.events()) == n_events
    assert ledger.check().ok


def test_blank_rows_are_skipped_and_required_fields_checked(ledger, package, tmp_path):
    path = fill(
        package.results_template,
        tmp_path / "f.xlsx",
        {
            2: {"核查结论": "误报", "核查人": None, "核查日期": None},
            3: {"核查结论": "确认", "核查人": "王五", "核查日期": dt.date(2024, 5, 20)},
            4: {
                "核查结论": "误报",
                "核查人": "王五",
                "核查日期": dt.date(2024, 5, 20),
                "整改期限": dt.date(2024, 9, 1),
            },  # fmt: skip
            5: {"核查结论": None, "备注": "去了但没看清"},
            6: {"核查结论": "误报", "核查人": "王五", "核查日期": dt.date(2024, 4, 1)},
        },
    )
    r = import_results(ledger, path, today=dt.date(2024, 6, 1))
    rej = r.rejected.set_index("row")["reason"]
    assert "核查人 is empty" in rej[2] and "核查日期 is empty" in rej[2]
    assert "实际类型 is required for 确认" in rej[3]
    assert "整改期限 is given for a 误报" in rej[4]
    assert "核查结论 is empty" in rej[5]
    assert "before the change was first seen in imagery (2024-05-01)" in rej[6]
    assert len(r.accepted) == 0 and len(r.skipped) == 0  # template rows 7+ are empty
    assert len(ledger.events()) == 5


def test_strict_import_applies_nothing(ledger, package, tmp_path):
    path = fill(
        package.results_template,
        tmp_path / "f.xlsx",
        {2: ok_confirm(), 3: ok_confirm(核查结论="maybe")},
    )
    r = import_results(ledger, path, today=dt.date(2024, 6, 1), strict=True)
    assert not r.applied and r.n_accepted == 0 and len(r.rejected) == 1
    assert "nothing applied" in r.headline()
    assert ledger.case("YB-2024-000001").status is Status.DETECTED


def test_import_rejects_a_reshaped_workbook(ledger, package, tmp_path):
    wb = load_workbook(package.results_template)
    ws = wb["核查结果"]
    ws.delete_cols([c.value for c in ws[1]].index("核查日期") + 1)
    wb.save(tmp_path / "nodate.xlsx")
    with pytest.raises(FieldCheckError, match=r"lacks required column\(s\) \['核查日期'\]"):
        import_results(ledger, tmp_path / "nodate.xlsx")
    wb = load_workbook(package.results_template)
    wb["核查结果"].title = "Sheet1"
    wb["Sheet1"].delete_cols(1)  # and the ID column is gone
    wb.save(tmp_path / "wrongsheet.xlsx")
    with pytest.raises(FieldCheckError, match="no sheet named '核查结果'"):
        import_results(ledger, tmp_path / "wrongsheet.xlsx")
    (tmp_path / "r.json").write_text("{}")
    with pytest.raises(FieldCheckError, match="cannot read results from a .json"):
        import_results(ledger, tmp_path / "r.json")
    with pytest.raises(FieldCheckError, match="does not exist"):
        import_results(ledger, tmp_path / "nothing.xlsx")


def test_renamed_sheet_with_the_right_headers_is_found(ledger, package, tmp_path):
    path = fill(package.results_template, tmp_path / "f.xlsx", {2: ok_confirm()})
    wb = load_workbook(path)
    wb["核查结果"].title = "结果"
    wb.save(path)
    assert len(import_results(ledger, path, today=dt.date(2024, 6, 1)).accepted) == 1


def test_import_from_gbk_csv(ledger, tmp_path):
    df = pd.DataFrame(
        {"图斑编号": ["YB-2024-000001", "YB-2024-000002"], "核查结论": ["误报", "确认"],
         "实际类型": ["", "养殖开发"], "核查人": ["赵六", "赵六"],
         "核查日期": ["2024年5月22日", "20240522"], "整改期限": ["", "2024-09-30"]}
    )  # fmt: skip
    path = tmp_path / "results.csv"
    df.to_csv(path, index=False, encoding="gbk")  # as Excel saves it on Chinese Windows
    r = import_results(ledger, path, today=dt.date(2024, 6, 1), actor="县局 GIS 组")
    assert r.accepted["to_status"].tolist() == ["false_alarm", "confirmed"]
    assert ledger.events("YB-2024-000001")["data"].iloc[-1]["imported_by"] == "县局 GIS 组"
    assert r.accepted["row"].tolist() == [2, 3]
    assert ledger.case("YB-2024-000002").real_type == "farming"


def test_import_from_field_gpkg(ledger, package):
    gdf = gpd.read_file(package.gpkg, layer="cases")
    gdf.loc[0, ["核查结论", "核查人", "核查日期"]] = ["误报", "QField 用户", "2024-05-25"]
    gdf.to_file(package.gpkg, layer="cases", driver="GPKG")
    raw = read_results(package.gpkg)
    assert len(raw) == 5
    r = import_results(ledger, package.gpkg, today=dt.date(2024, 6, 1))
    assert r.accepted["case_id"].tolist() == ["YB-2024-000001"]
    assert len(r.skipped) == 4  # not filled in


def test_parse_date():
    assert parse_date("2024.05.01") == dt.date(2024, 5, 1)
    assert parse_date(pd.Timestamp("2024-05-01 10:00")) == dt.date(2024, 5, 1)
    assert parse_date(dt.datetime(2024, 5, 1, 8)) == dt.date(2024, 5, 1)
    with pytest.raises(ValueError, match="write it as YYYY-MM-DD"):
        parse_date("next tuesday")
    with pytest.raises(ValueError, match="not a calendar date"):
        parse_date("2023年2月29日")


# --------------------------------------------------------------------------- the loop


def test_the_whole_loop_on_hand_made_patches(tmp_path):
    """detect -> add -> export -> fill (with bad rows) -> import -> summary -> a year later."""
    led = Ledger(tmp_path / "ledger.gpkg")
    r1 = led.add_detections(make_patches(SPECS), "2024-05", today=T0)
    assert r1.new == 5
    pkg = export_package(led, tmp_path / "pkg", today=T0, dispatch=True)
    ids = pd.read_csv(pkg.csv, encoding="utf-8-sig")["图斑编号"].tolist()
    rows = {
        2: ok_confirm(),
        3: ok_confirm(实际类型="矿产资源开发", 整改期限=dt.date(2024, 7, 31)),
        4: {"核查结论": "误报", "核查人": "李四", "核查日期": dt.date(2024, 5, 21)},
        5: {"核查结论": "误报", "核查人": "李四", "核查日期": dt.date(2024, 5, 21)},
        6: ok_confirm(核查结论="待定"),  # bad row
    }
    report = import_results(led,
        fill(pkg.results_template, tmp_path / "filled.xlsx", rows), today=dt.date(2024, 6, 1)
    )
    assert len(report.accepted) == 4 and report.rejected["row"].tolist() == [6]
    prec = led.precision()
    assert prec["precision"].iloc[0] == pytest.approx(0.5)
    # case 1 is rectified and closed (销号)
    for kind, day in (("start_rectification", 30), ("complete", 60), ("close", 75)):
        led.advance(ids[0], kind, today=T0 + dt.timedelta(days=day))
    s = led.summary(today=dt.date(2024, 8, 15))
    status = s[s.dimension == "status"].set_index("key")["n_cases"]
    assert status[["closed", "confirmed", "false_alarm", "dispatched"]].tolist() == [1, 1, 2, 1]
    colour = s[s.dimension == "colour"].set_index("key")["n_cases"]
    assert colour["red"] == 1  # case 2: deadline 2024-07-31 passed
    # a year later: cases keep their IDs, the closed one rebounds, a new place opens a case
    year2 = make_patches(
        [("y1", 0.1, 0.1), ("y2", 10.3, 0, 2.0), ("y6", 60, 0)], date_after="2025-05-02"
    )
    r2 = led.add_detections(year2, "2025-05", today=dt.date(2025, 5, 10))
    assert (r2.new, r2.matched, r2.rebound) == (1, 1, 1)
    assert r2.case_ids[:2] == (ids[0], ids[1])
    assert led.case(ids[0]).status is Status.REOPENED
    assert r2.case_ids[2] == "YB-2025-000001"
    assert led.check().ok
    rep = led.export_report(tmp_path / "report", today=dt.date(2025, 5, 10))
    wb = load_workbook(rep["xlsx"])
    assert wb.sheetnames == ["案件清单", "汇总", "核查精度", "事件记录", "矿山修复"]
    assert wb["案件清单"].max_row == 7
