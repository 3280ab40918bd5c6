"""Issue 21, case by case: exports that cannot attack their readers, field results that cannot be lost.

One test per finding of the issue (security; data loss and lock-out; the table of inputs
that gave tracebacks or silence; the README's command-line chain), each asserting the
specific :class:`~ecopatch.errors.EcopatchError` subclass, a message naming the file,
row and field, and that nothing was lost or half-written.  The whole-run scan is in
``test_hostile_site.py``; the workbook reader's limits in ``io/test_tables.py``.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner
from shapely.geometry import Polygon, box

import ecopatch
from ecopatch import errors as E
from ecopatch.cli.main import cli
from ecopatch.fieldcheck import export_package, export_verdict_template, import_results, import_verdicts
from ecopatch.ledger import Ledger

from .hostile import scan_outputs
from .runsite import AFTER, BEFORE, make_site, sample_source

ROOT = Path(__file__).resolve().parents[1]
TODAY = dt.date(2024, 11, 1)


def _patches(n=2, *, crs="EPSG:4490", **overrides):
    base = {"patch_id": [f"20240912-{i}" for i in range(n)], "change_type": ["construction"] * n,
            "area_m2": [900.0] * n, "area_mu": [1.35] * n, "confidence": [0.9] * n,
            "date_before": ["2021-09-18"] * n, "date_after": ["2024-09-12"] * n, "ndvi_before": [0.8] * n,
            "ndvi_after": [0.2] * n, "centroid_lon": [119.95] * n, "centroid_lat": [30.22] * n,
            "cgcs2000_lon": [119.95] * n, "cgcs2000_lat": [30.22] * n, "reserve_name": ["石门岭"] * n,
            "zone": ["core"] * n, "zone_name": ["核心区"] * n}
    base.update(overrides)
    geoms = [box(119.95 + 0.001 * i, 30.22, 119.9503 + 0.001 * i, 30.2203) for i in range(n)]
    return gpd.GeoDataFrame(base, geometry=geoms, crs=crs)


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(tmp_path / "ledger.gpkg")
    led.add_detections(_patches(3), run_id="r1", today=dt.date(2024, 9, 20))
    return led


def _ids(led):
    return list(led.cases()["case_id"])


def _results_csv(path, rows, header="图斑编号,核查结论,实际类型,责任单位,核查人,核查日期,备注"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _counts(led):
    return len(led.cases()), len(led.events())


# ===========================================================================
# Security
# ===========================================================================
def test_formula_text_from_names_is_neutralised_in_every_table_written(tmp_path, ledger):
    """mines/patches tables, cases.xlsx, cases.csv, results_template.xlsx, report.xlsx, ledger_report.xlsx."""
    evil = "=cmd|' /C calc'!A0"
    con = sqlite3.connect(ledger.path)
    con.execute("UPDATE cases SET reserve_name=?, zone_name=?, responsible_unit=?", (evil, "+SUM(1)", "@A1"))
    con.commit()
    con.close()
    out = tmp_path / "out"
    export_package(ledger, out / "fieldcheck")
    ledger.export_report(out / "ledger")
    ecopatch.outputs.report.write_report(out / "report", ledger=ledger, patches=_patches(2, reserve_name=[evil] * 2))
    table = pd.DataFrame({"patch_id": [evil, "-1+1"], "矿山名称": ["@SUM(A1)", "\t=1"]})
    for ext in ("csv", "xlsx"):
        ecopatch.write_table(table, out / f"mines.{ext}")
    assert scan_outputs(out) == []
    ws = openpyxl.load_workbook(out / "fieldcheck" / "cases.xlsx")["图斑清单"]
    assert "'=cmd|' /C calc'!A0" in [c.value for c in ws["G"]]  # 保护地名称, readable


def test_field_teams_formula_in_the_inspector_cell_reaches_the_event_sheet_as_text(tmp_path, ledger):
    cid = _ids(ledger)[0]
    ledger.advance(cid, "dispatch", today=dt.date(2024, 9, 21))
    rep = import_results(ledger, _results_csv(tmp_path / "r.csv", [
        f"{cid},确认,工业开发,云溪镇,=cmd|' /C calc'!A0,2024-10-10,"]), today=TODAY)
    assert rep.n_accepted == 1
    paths = ledger.export_report(tmp_path / "rep")
    ws = openpyxl.load_workbook(paths["xlsx"])["事件记录"]
    cells = [c for row in ws.iter_rows() for c in row]
    assert not [c for c in cells if c.data_type == "f"]
    assert "'=cmd|' /C calc'!A0" in [c.value for c in cells]


def test_web_map_tooltips_escape_names():
    pytest.importorskip("folium")
    from ecopatch.outputs.webmap import web_map

    reserves = gpd.GeoDataFrame({"保护地名称": ["<img src=x onerror=alert(1)>"], "功能分区": ["核心区"]},
                                geometry=[box(119.9, 30.2, 120.0, 30.3)], crs="EPSG:4490")
    patches = _patches(1, reserve_name=["<script>alert(1)</script>"], change_type=["construction"])
    html = web_map(patches, None, reserves).get_root().render()
    decoded = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), html)
    assert "<img src=x" not in decoded and "<script>alert(1)" not in decoded
    assert "&lt;img src=x onerror=alert(1)&gt;" in decoded


def test_kml_balloons_escape_names(tmp_path, ledger):
    con = sqlite3.connect(ledger.path)
    con.execute("UPDATE cases SET reserve_name=?", ("<img src=x onerror=alert(1)>",))
    con.commit()
    con.close()
    pkg = export_package(ledger, tmp_path / "fc")
    root = ET.parse(pkg.kml).getroot()
    descriptions = [el.text for el in root.iter() if el.tag.endswith("description")]
    assert descriptions and all("<img src=x" not in d for d in descriptions)
    assert all("&lt;img src=x onerror=alert(1)&gt;" in d for d in descriptions)
    balloons = [el.text for el in root.iter() if el.tag.endswith("BalloonStyle") or el.tag.endswith("text")]
    assert "$[description]" in balloons  # raw ExtendedData never reaches the balloon
    # the OGR-written KML of write_table too
    ecopatch.write_table(_patches(1, reserve_name=["<img src=x onerror=alert(1)>"]), tmp_path / "p.kml")
    assert "<img src=x" not in ET.tostring(ET.parse(tmp_path / "p.kml").getroot(), encoding="unicode")
    assert scan_outputs(tmp_path) == []


# ===========================================================================
# Data loss and lock-out
# ===========================================================================
def test_control_characters_are_refused_at_import_with_row_and_field(tmp_path, ledger):
    a, b, c = _ids(ledger)
    rep = import_results(ledger, _results_csv(tmp_path / "r.csv", [
        f"{a},确认,工业开发,云溪镇,李工,2024-10-10,铃\x07声",
        f"{b},确认,工业开发,云溪\x0b镇,李工,2024-10-10,",
        f"{c},确认,工业开发,云溪镇,李\x00工,2024-10-10,",
    ]), today=TODAY)
    assert rep.n_accepted == 0 and len(rep.rejected) == 3
    reasons = dict(zip(rep.rejected["row"], rep.rejected["reason"]))
    assert "备注" in reasons[2] and "U+0007 (BEL)" in reasons[2]
    assert "责任单位" in reasons[3] and "U+000B (VT)" in reasons[3]
    assert "核查人" in reasons[4] and "U+0000 (NUL)" in reasons[4]
    assert "row 2" in str(rep) and "U+0007" in str(rep)
    ledger.export_report(tmp_path / "rep")  # and the ledger still exports


def test_a_ledger_already_holding_control_characters_still_exports(tmp_path, ledger):
    """Text stored by an older ecopatch: planted straight into the GeoPackage with sqlite3."""
    cid = _ids(ledger)[0]
    ledger.advance(cid, "dispatch", today=dt.date(2024, 9, 21), note="派发")
    con = sqlite3.connect(ledger.path)
    con.execute("UPDATE cases SET responsible_unit=?, reserve_name=?, zone_name=? WHERE case_id=?",
                ("云溪\x0b镇", "保护\x07区\u202e", "核心\x00区", cid))
    con.execute("DROP TRIGGER events_no_update")  # as if written before the import checked anything
    con.execute("UPDATE events SET note=?, actor=? WHERE case_id=? AND kind='dispatch'",
                ("铃\x07声" + "长" * 40_000, "李\x00工\x1b[2J", cid))
    con.execute("CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
                "BEGIN SELECT RAISE(ABORT, 'ecopatch ledger: events are append-only'); END")
    con.commit()
    con.close()
    out = tmp_path / "out"
    runner = CliRunner()
    for args in (["ledger", "export", str(ledger.path), str(out / "ledger")],
                 ["fieldcheck", "export", str(ledger.path), str(out / "fc")],
                 ["report", "--ledger", str(ledger.path), "--out", str(out / "report")],
                 ["ledger", "summary", str(ledger.path)],
                 ["ledger", "summary", str(ledger.path), "--csv"]):
        r = runner.invoke(cli, args)
        assert r.exit_code == 0, (args, r.output)
        assert "\x1b" not in r.output and "\x07" not in r.output
    assert scan_outputs(out) == []
    wb = openpyxl.load_workbook(out / "ledger" / "ledger_report.xlsx")
    values = [c.value for ws in wb.worksheets for row in ws.iter_rows() for c in row]
    assert "云溪␋镇" in values and "李␀工␛[2J" in values
    note = next(v for v in values if isinstance(v, str) and v.startswith("铃␇声"))
    assert len(note) == 32_767 and "40,003 characters" in note  # cut visibly, not silently
    csv_text = (out / "ledger" / "ledger_cases.csv").read_text(encoding="utf-8-sig")
    assert "保护␇区\ufffd" in csv_text
    ET.parse(out / "fc" / "cases.kml")  # well-formed XML


def test_rows_beyond_an_understated_dimension_are_read(tmp_path):
    led = Ledger(tmp_path / "ledger.gpkg")
    led.add_detections(_patches(10), run_id="r1", today=dt.date(2024, 9, 20))
    pkg = export_package(led, tmp_path / "fc")
    wb = openpyxl.load_workbook(pkg.results_template)
    ws = wb["核查结果"]
    heads = [c.value for c in ws[1]]
    for r in range(2, 12):
        for h, v in (("核查结论", "误报"), ("核查人", "李工"), ("核查日期", dt.date(2024, 10, 10))):
            ws.cell(row=r, column=heads.index(h) + 1, value=v)
    filled = tmp_path / "filled.xlsx"
    wb.save(filled)
    lied = tmp_path / "lied.xlsx"
    with zipfile.ZipFile(filled) as src, zipfile.ZipFile(lied, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb'<dimension ref="[^"]+"', b'<dimension ref="A1:O3"', data)
            dst.writestr(item, data)
    rep = import_results(led, lied, today=TODAY)
    assert rep.n_accepted == 10 and len(rep.rejected) == 0


@pytest.mark.parametrize("kind", ["bomb", "blank_rows", "malformed", "not_a_zip"])
def test_hostile_workbooks_get_a_field_check_error_naming_the_file(tmp_path, ledger, kind):
    p = tmp_path / "results.xlsx"
    pkg = export_package(ledger, tmp_path / "fc")
    with zipfile.ZipFile(pkg.results_template) as src:
        parts = {n: src.read(n) for n in src.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"]
    if kind == "bomb":
        parts["xl/sharedStrings.xml"] = (b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                                         + b"<si><t/></si>" * 11_000_000 + b"</sst>")
        fragment = "unpacks to"
    elif kind == "blank_rows":
        parts["xl/worksheets/sheet1.xml"] = sheet.replace(
            b"</sheetData>", b"".join(b'<row r="%d"/>' % r for r in range(300, 3_000_300)) + b"</sheetData>")
        fragment = "more than 100,000 rows"
    elif kind == "malformed":
        parts["xl/worksheets/sheet1.xml"] = sheet.replace(b"</sheetData>", b"<row><c><v>1</row></sheetData>")
        fragment = "not well-formed"
    else:
        parts = {}
        fragment = "not an .xlsx"
    if parts:
        with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
            for n, b in parts.items():
                z.writestr(n, b)
    else:
        p.write_bytes(b"PK\x03\x04 not really")
    before = _counts(ledger)
    with pytest.raises(E.FieldCheckError, match=fragment) as info:
        import_results(ledger, p, today=TODAY)
    assert "results.xlsx" in str(info.value) and "Traceback" not in str(info.value)
    assert _counts(ledger) == before


def test_ledger_add_refuses_swapped_coordinates(tmp_path):
    led = Ledger(tmp_path / "ledger.gpkg")
    p = _patches(2)
    p["geometry"] = p.geometry.map(lambda g: Polygon([(y, x) for x, y in g.exterior.coords]))  # lat, lon
    with pytest.raises(E.SuspiciousCoordinatesError, match="swapped"):
        led.add_detections(p, run_id="r1")
    r = CliRunner().invoke(cli, ["ledger", "add", str(_write(p, tmp_path / "p.gpkg")), "--ledger",
                                 str(led.path), "--run-id", "r1"])
    assert r.exit_code == 1 and "swapped" in r.output and r.output.count("\n") == 1
    assert _counts(led) == (0, 0) and led.check().ok


def _write(gdf, path):
    gdf.to_file(path, driver="GPKG")
    return path


@pytest.mark.parametrize("column, value, fragment", [
    ("date_after", "2099-12-31", "date_after 2099-12-31 is in the future"),
    ("date_after", "2021-09-18", "is not after date_before 2021-09-18"),
    ("date_before", "1900-01-01", "before any satellite image"),
    ("date_after", "2024-02-30", "2024-02-30"),
    ("change_type", "<script>", "'<script>' is not a change type"),
    ("change_type", None, "change_type is empty"),
    ("confidence", 7.0, "confidence 7 is outside [0, 1]"),
    ("confidence", float("inf"), "confidence inf is outside [0, 1]"),
    ("ndvi_after", -3.0, "ndvi_after -3 is outside [-1, 1]"),
    ("reserve_name", "黄山\x0b", "reserve_name holds the control character U+000B"),
    ("patch_id", "p\u202e1", "direction-override character U+202E"),
])
def test_ledger_add_validates_like_the_import(tmp_path, column, value, fragment):
    led = Ledger(tmp_path / "ledger.gpkg")
    p = _patches(2)
    p[column] = p[column].astype(object)
    p.loc[1, column] = value
    with pytest.raises(E.InputDataError, match=re.escape(fragment)) as info:
        led.add_detections(p, run_id="r1")
    assert f"patch {p.loc[1, 'patch_id']}" in str(info.value) and "nothing was written" in str(info.value)
    assert _counts(led) == (0, 0)


def test_ledger_add_accepts_chinese_change_types(tmp_path):
    led = Ledger(tmp_path / "ledger.gpkg")
    res = led.add_detections(_patches(1, change_type=["新增建设"]), run_id="r1")
    assert res.new == 1 and led.cases()["change_type"].iloc[0] == "construction"


def test_mine_ids_that_differ_in_unsafe_characters_get_their_own_cards_and_chips(tmp_path, inputs):
    a = inputs.assessment.iloc[:3].copy()
    a["patch_id"] = ["K/1", "K:1", "矿" * 86]
    paths = ecopatch.outputs.report.write_report(tmp_path / "rep", assessment=a, before=inputs.before,
                                                 after=inputs.after, lang="en")
    cards = [k for k in paths if k.startswith("figure:mine_")]
    assert len(cards) == 3 and len({paths[k] for k in cards}) == 3
    assert all(paths[k].is_file() and len(paths[k].name.encode()) < 120 for k in cards)
    cases = _patches(3).assign(case_id=["K/1", "K:1", "矿" * 86], status="detected", colour="green")
    pkg = ecopatch.fieldcheck.write_field_package(
        cases.assign(status_zh="已发现", colour_zh="绿码", change_type_zh="新增建设", lon=119.95, lat=30.22,
                     found_on=dt.date(2024, 9, 12), responsible_unit=None, deadline=None),
        tmp_path / "fc", chips=lambda row, b, a: (b.write_bytes(b"png"), a.write_bytes(b"png")))
    files = {p for pair in pkg.chips.values() for p in pair}
    assert len(files) == 6 and all(p.is_file() for p in files)


def test_disk_full_while_writing_chips_leaves_the_ledger_unchanged(tmp_path, monkeypatch, tmp_path_factory):
    """The README's promise, for outputs written after the scene's records: the ledger commit is last."""
    cfg = make_site(tmp_path / "site", sample_source(tmp_path_factory), chips=True)
    import ecopatch.outputs.maps

    def full_disk(before, after, **kw):
        def chips(row, b, a):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return chips

    monkeypatch.setattr(ecopatch.outputs.maps, "case_chips", full_disk)
    from ecopatch.run.config import load_config
    from ecopatch.run.pipeline import run_pipeline

    res = run_pipeline(load_config(cfg), progress=False)
    out = res.outcomes[0]
    assert out.status == "failed" and res.exit_code == 1
    assert "chips" in out.message and "No space left on device: the disk is full" in out.message
    assert "the ledger is unchanged" in out.message
    led = Ledger(tmp_path / "site" / "out" / "ledger.gpkg", create=False)
    assert _counts(led) == (0, 0) and len(led.mine_history()) == 0
    monkeypatch.undo()
    again = run_pipeline(load_config(cfg), progress=False)
    assert again.exit_code == 0 and again.outcomes[0].counts["ledger"]["new"] > 0


def test_a_real_full_disk_during_a_run_names_the_file_and_keeps_the_ledger(tmp_path, tmp_path_factory):
    from .test_faults import _tmpfs

    cfg = make_site(tmp_path / "site", sample_source(tmp_path_factory), maps=True, report=True, chips=True)
    with _tmpfs(tmp_path, "200k") as mnt:
        r = CliRunner().invoke(cli, ["run", str(cfg), "--out-dir", str(mnt / "runs"), "--ledger",
                                     str(tmp_path / "ledger.gpkg"), "--no-progress"])
        assert r.exit_code == 1, r.output
        assert "the ledger is unchanged" in r.output and "disk is full" in r.output, r.output
        assert str(mnt) in r.output  # the file is named
        assert not [p for p in mnt.rglob("*") if ".tmp" in p.name]
    assert _counts(Ledger(tmp_path / "ledger.gpkg", create=False)) == (0, 0)


# ===========================================================================
# Clear errors instead of tracebacks or silence (the table)
# ===========================================================================
def test_photo_renamed_tif(tmp_path):
    from PIL import Image

    for fmt, word in (("JPEG", "JPEG photo"), ("PNG", "PNG image")):
        p = tmp_path / f"drone_20240912_{fmt}.tif"
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(p, format=fmt)
        with pytest.raises(E.RasterReadError, match=word) as info:
            ecopatch.open_scene(p)
        assert p.name in str(info.value) and "GeoTIFF" in str(info.value)


def test_gcp_only_raster_says_gdalwarp(tmp_path):
    import rasterio
    from rasterio.control import GroundControlPoint as G

    p = tmp_path / "gf2_20240912.tif"
    gcps = [G(0, 0, 120.0, 30.0), G(0, 20, 120.1, 30.0), G(20, 0, 120.0, 29.9)]
    with rasterio.open(p, "w", driver="GTiff", width=20, height=20, count=4, dtype="uint16", gcps=gcps,
                       crs="EPSG:4326") as ds:
        ds.write(np.full((4, 20, 20), 900, np.uint16))
    with pytest.raises(E.InputDataError, match="gdalwarp -t_srs EPSG:4326") as info:
        ecopatch.open_scene(p, sensor="gf1_wfv")
    assert "ground control points" in str(info.value) and p.name in str(info.value)


def _safe_copy(sample, which, tmp_path):
    src = Path(sample.products[which])
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_safe_without_b04_on_assess(tmp_path, sample):
    after = _safe_copy(sample, "after", tmp_path)
    for f in after.rglob("*B04*"):
        f.unlink()
    mines = ecopatch.read_patches(sample.mines, id_field="矿山编号")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(E.MissingBandError, match=r"red \(B04\)") as info:
            ecopatch.assess_restoration(ecopatch.open_scene(sample.products["before"]), ecopatch.open_scene(after),
                                        mines, progress=False)
    assert after.name in str(info.value) and "incomplete download" in str(info.value)
    r = CliRunner().invoke(cli, ["assess", "--before", str(sample.products["before"]), "--after", str(after),
                                 "--mines", str(sample.mines), "--out", str(tmp_path / "r.xlsx")])
    assert r.exit_code == 1 and "B04" in r.output and "KeyError" not in r.output
    assert not (tmp_path / "r.xlsx").exists()


def test_band_files_in_different_crs(tmp_path, sample):
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    after = _safe_copy(sample, "after", tmp_path)
    b08 = next(after.rglob("*B08*.tif"))
    with rasterio.open(b08) as src:
        t, w, h = calculate_default_transform(src.crs, "EPSG:32651", src.width, src.height, *src.bounds)
        prof = src.profile | {"crs": "EPSG:32651", "transform": t, "width": w, "height": h}
        data = src.read(1)
    moved = np.zeros((h, w), data.dtype)
    with rasterio.open(b08) as src:
        reproject(data, moved, src_transform=src.transform, src_crs=src.crs, dst_transform=t,
                  dst_crs="EPSG:32651", resampling=Resampling.nearest)
    with rasterio.open(b08, "w", **prof) as dst:
        dst.write(moved, 1)
    with pytest.raises(E.InputDataError, match="different CRSs") as info:
        ecopatch.open_scene(after)
    assert "B08" in str(info.value) and "32651" in str(info.value) and after.name in str(info.value)


def test_results_csv_with_extra_columns_rejects_that_row(tmp_path, ledger):
    a, b, _ = _ids(ledger)
    rep = import_results(ledger, _results_csv(tmp_path / "r.csv", [
        f"{a},确认,工业开发,云溪镇,李工,2024-10-10,说明",
        f"{b},误报,,云溪镇,李工,2024-10-10,有逗号,没加引号,多出两格",
    ]), today=TODAY)
    assert rep.n_accepted == 1 and list(rep.rejected["row"]) == [3]
    assert "2 filled cell(s) beyond the header" in rep.rejected["reason"].iloc[0]
    assert ledger.case(b).status.value == "detected"  # not shifted into a wrong verdict


def test_formula_cells_without_saved_values_are_named(tmp_path, ledger):
    pkg = export_package(ledger, tmp_path / "fc")
    wb = openpyxl.load_workbook(pkg.results_template)
    ws = wb["核查结果"]
    heads = [c.value for c in ws[1]]
    ws.cell(row=2, column=heads.index("核查结论") + 1, value='=IF(1,"确认","误报")')
    ws.cell(row=2, column=heads.index("核查人") + 1, value="李工")
    ws.cell(row=2, column=heads.index("核查日期") + 1, value=dt.date(2024, 10, 10))
    wb.save(tmp_path / "filled.xlsx")  # openpyxl saves formulas without a computed value
    rep = import_results(ledger, tmp_path / "filled.xlsx", today=TODAY)
    reason = rep.rejected["reason"].iloc[0]
    assert "核查结论 holds a formula (=IF(1,\"确认\",\"误报\")) with no saved value" in reason


def test_booleans_as_names_are_refused(tmp_path, ledger):
    pkg = export_package(ledger, tmp_path / "fc")
    wb = openpyxl.load_workbook(pkg.results_template)
    ws = wb["核查结果"]
    heads = [c.value for c in ws[1]]
    for r, who in ((2, True), (3, "李工")):
        ws.cell(row=r, column=heads.index("核查结论") + 1, value="误报")
        ws.cell(row=r, column=heads.index("核查人") + 1, value=who)
        ws.cell(row=r, column=heads.index("核查日期") + 1, value=dt.date(2024, 10, 10))
    ws.cell(row=3, column=heads.index("责任单位") + 1, value=False)
    wb.save(tmp_path / "filled.xlsx")
    rep = import_results(ledger, tmp_path / "filled.xlsx", today=TODAY)
    reasons = dict(zip(rep.rejected["row"], rep.rejected["reason"]))
    assert "核查人 holds TRUE, a yes/no value, not a name" in reasons[2]
    assert "责任单位 holds FALSE" in reasons[3]
    rep = import_results(ledger, _results_csv(tmp_path / "r.csv", [f"{_ids(ledger)[0]},误报,,,TRUE,2024-10-10,"]),
                                   today=TODAY)
    assert "核查人 holds TRUE" in rep.rejected["reason"].iloc[0]


def test_a_6_mb_note_is_refused_not_cut(tmp_path, ledger):
    a, b, _ = _ids(ledger)
    # a GeoPackage (QField) row: that row is refused, the others go in
    pkg = export_package(ledger, tmp_path / "fc")
    g = gpd.read_file(pkg.gpkg)
    g["核查结论"], g["核查人"], g["核查日期"] = "误报", "李工", "2024-10-10"
    g["备注"] = ["说" * 6_000_000] + ["短"] * (len(g) - 1)
    g.to_file(tmp_path / "results.gpkg", layer="cases", driver="GPKG")
    rep = import_results(ledger, tmp_path / "results.gpkg", today=TODAY)
    assert rep.n_accepted == len(g) - 1
    assert "备注 is 6,000,000 characters long (at most 30,000)" in rep.rejected["reason"].iloc[0]
    # a CSV: past the csv module's 131,072 characters the file is refused whole, naming the record
    with pytest.raises(E.FieldCheckError, match="record 2 .*field larger than field limit") as info:
        import_results(ledger, _results_csv(tmp_path / "r.csv", [
            f"{a},误报,,,李工,2024-10-10,\"{'说' * 6_000_000}\""]), today=TODAY)
    assert "r.csv" in str(info.value)
    # ... and under it, that row
    rep = import_results(ledger, _results_csv(tmp_path / "r2.csv", [f"{b},误报,,,李工,2024-10-10,{'说' * 40_000}"]),
                                   today=TODAY)
    assert "备注 is 40,000 characters long" in rep.rejected["reason"].iloc[0]
    # and the API
    with pytest.raises(E.InputDataError, match="note is 6,000,000 characters long"):
        ledger.advance(b, "note", note="说" * 6_000_000)


def test_corrupt_results_gpkg_gets_a_short_message(tmp_path, ledger):
    pkg = export_package(ledger, tmp_path / "fc")
    bad = tmp_path / "results.gpkg"
    data = pkg.gpkg.read_bytes()
    bad.write_bytes(data[: len(data) // 3])  # a copy cut short (a phone's storage ran out)
    with pytest.raises(E.FieldCheckError) as info:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import_results(ledger, bad, today=TODAY)
    msg = str(info.value)
    assert "results.gpkg" in msg and len(msg) < 400 and "SELECT" not in msg and "SQLite: " in msg, msg


def test_schema_version_stored_as_text(tmp_path, ledger):
    con = sqlite3.connect(ledger.path)
    con.execute("UPDATE meta SET value='one' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(E.LedgerError, match="schema_version .* is 'one', not a whole number"):
        Ledger(ledger.path, create=False)
    r = CliRunner().invoke(cli, ["ledger", "check", str(ledger.path)])
    assert r.exit_code == 1 and "ValueError" not in r.output and "schema_version" in r.output


def test_file_size_limit_names_ulimit(tmp_path):
    code = ("import resource, sys, geopandas as gpd, shapely\n"
            "from ecopatch.vector.layers import write_table\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
            "t = gpd.GeoDataFrame({'note': ['说明' * 50] * 2000}, geometry=[shapely.box(120, 30, 120.1, 30.1)] * 2000,"
            " crs=4490)\n"
            "try:\n"
            f"    write_table(t, {str(tmp_path / 'out.csv')!r})\n"
            "except Exception as e:\n"
            "    print(type(e).__name__, e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "OutputError" in r.stdout and "ulimit -f" in r.stdout and "out.csv" in r.stdout, r.stdout + r.stderr
    assert not (tmp_path / "out.csv").exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize("command", ["fieldcheck", "ledger", "report", "run"])
def test_read_only_output_folder_gives_one_line(tmp_path, ledger, command, tmp_path_factory):
    from .test_faults import _tmpfs

    with _tmpfs(tmp_path, "1m", read_only=True) as mnt:
        if command == "fieldcheck":
            args = ["fieldcheck", "export", str(ledger.path), str(mnt / "fc")]
        elif command == "ledger":
            args = ["ledger", "export", str(ledger.path), str(mnt)]
        elif command == "report":
            args = ["report", "--ledger", str(ledger.path), "--out", str(mnt / "rep")]
        else:
            cfg = make_site(tmp_path / "site", sample_source(tmp_path_factory))
            args = ["run", str(cfg), "--out-dir", str(mnt / "runs"), "--no-progress"]
        r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and "read-only" in r.output, r.output
    assert r.output.strip().count("\n") <= 1 or command == "run"


def test_hole_outside_its_shell_is_dropped_and_said(tmp_path):
    x0, y0 = 780_000, 3_340_000
    ring = [(x0, y0), (x0 + 100, y0), (x0 + 100, y0 + 100), (x0, y0 + 100)]
    hole = [(x0 + 200, y0), (x0 + 250, y0), (x0 + 250, y0 + 50), (x0 + 200, y0 + 50)]
    p = gpd.GeoDataFrame({"矿山编号": ["K1"]}, geometry=[Polygon(ring, [hole])], crs="EPSG:32650")
    p.to_file(tmp_path / "m.gpkg")
    with pytest.warns(E.GeometryRepairedWarning, match="K1: a hole lies outside its shell: the hole was dropped"):
        m = ecopatch.read_patches(tmp_path / "m.gpkg", id_field="矿山编号")
    assert m.geometry.iloc[0].area == pytest.approx(10_000.0)  # not 12,500: a hole never adds ground


def test_attributes_with_control_characters_are_cleaned_on_reading_with_a_warning(tmp_path):
    p = gpd.GeoDataFrame({"矿山编号": ["K1\x0b", "K2"], "矿山名称": ["黄山\u202e", "ok"]},
                         geometry=[box(780_000, 3_340_000, 780_100, 3_340_100),
                                   box(780_200, 3_340_000, 780_300, 3_340_100)], crs="EPSG:32650")
    p.to_file(tmp_path / "m.gpkg")
    with pytest.warns(E.TextRepairedWarning, match=r"row 1 field '矿山编号' \(U\+000B \(VT\)\)"):
        m = ecopatch.read_patches(tmp_path / "m.gpkg", id_field="矿山编号")
    assert list(m["patch_id"]) == ["K1", "K2"] and m["矿山名称"].iloc[0] == "黄山"


def test_boolean_id_field_is_refused(tmp_path):
    p = gpd.GeoDataFrame({"flag": [True, False]}, geometry=[box(780_000, 3_340_000, 780_100, 3_340_100),
                                                            box(780_200, 3_340_000, 780_300, 3_340_100)],
                         crs="EPSG:32650")
    p.to_file(tmp_path / "m.gpkg")
    with pytest.raises(E.DuplicateIDError, match="yes/no values"):
        ecopatch.read_patches(tmp_path / "m.gpkg", id_field="flag")


def test_cover_end_members_without_contrast_are_a_config_error():
    from ecopatch.compute.cover import CoverParams
    from ecopatch.compute.kernels import HAVE_NUMBA, cover_kernel

    if not HAVE_NUMBA:
        pytest.skip("numba kernels not available")
    bands = {k: np.full((4, 4), 0.1, np.float32) for k in ("blue", "green", "red", "nir", "swir1")}
    with pytest.raises(E.ConfigError, match="no range between bare soil and full canopy"):
        cover_kernel(bands, CoverParams(ndvi_soil=0.3, ndvi_veg=0.3 + 1e-9))


def test_detect_into_xlsx_after_a_gpkg_run_writes_nothing_half(tmp_path, sample):
    base = ["detect", "--before", str(sample.products["before"]), "--after", str(sample.products["after"]),
            "--reserves", str(sample.reserves), "--no-progress"]
    assert CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "patches.gpkg")]).exit_code == 0
    r = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "patches.xlsx")])
    assert r.exit_code == 1 and "patches_observation.csv" in r.output and "--overwrite" in r.output
    assert not (tmp_path / "patches.xlsx").exists()
    r = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "patches.xlsx"), "--overwrite"])
    assert r.exit_code == 0 and (tmp_path / "patches.xlsx").exists()


def test_report_takes_the_assessment_table_assess_wrote(tmp_path, sample, inputs):
    ecopatch.write_table(inputs.assessment, tmp_path / "result.xlsx")
    ecopatch.write_table(inputs.assessment, tmp_path / "result.csv")
    for name in ("result.xlsx", "result.csv"):
        r = CliRunner().invoke(cli, ["report", "--assessment", str(tmp_path / name), "--out",
                                     str(tmp_path / f"rep_{name}")])
        assert r.exit_code == 0, r.output
        ws = openpyxl.load_workbook(tmp_path / f"rep_{name}" / "report.xlsx")["矿山"]
        assert ws.max_row - 1 == len(inputs.assessment)
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "other.csv", index=False)
    r = CliRunner().invoke(cli, ["report", "--assessment", str(tmp_path / "other.csv"), "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "lacks column(s)" in r.output and "ecopatch assess" in r.output


# ===========================================================================
# More careless inputs than the issue listed
# ===========================================================================
@pytest.mark.parametrize("encoding, sep", [("gbk", ","), ("utf-8-sig", ","), ("utf-16", "\t"), ("utf-8", ";")])
def test_results_csv_as_excel_saves_it_anywhere(tmp_path, ledger, encoding, sep):
    """Chinese Windows Excel saves GBK; "Unicode text" is UTF-16 with tabs; European locales use ';'."""
    cid = _ids(ledger)[0]
    rows = ["图斑编号,核查结论,实际类型,核查人,核查日期", f"{cid},确认,工业开发,李工,2024-10-10"]
    p = tmp_path / "r.csv"
    p.write_bytes("\r\n".join(r.replace(",", sep) for r in rows).encode(encoding))
    rep = import_results(ledger, p, today=TODAY)
    assert rep.n_accepted == 1, str(rep)


def test_results_with_duplicate_or_decorated_headers(tmp_path, ledger):
    cid = _ids(ledger)[0]
    p = _results_csv(tmp_path / "r.csv", [f"{cid},确认,工业开发,李工,2024-10-10,王工"],
                     header="\ufeff图斑编号,核查结论*,实际类型（HJ 1156）,核查人,核查日期,核查人")
    with pytest.raises(E.FieldCheckError, match=r"\['核查人'\] appear more than once \(columns \['D', 'F'\]\)"):
        import_results(ledger, p, today=TODAY)
    p = _results_csv(tmp_path / "r2.csv", [f"{cid},确认,工业开发,李工,2024-10-10"],
                     header="\u3000图斑编号,核查结论*,实际类型（HJ 1156）,核查人,核查日期")
    assert import_results(ledger, p, today=TODAY).n_accepted == 1


def test_an_empty_results_sheet(tmp_path, ledger):
    wb = openpyxl.Workbook()
    wb.active.title = "核查结果"
    wb.save(tmp_path / "empty.xlsx")
    with pytest.raises(E.FieldCheckError, match="empty.xlsx.*no header"):
        import_results(ledger, tmp_path / "empty.xlsx", today=TODAY)


def test_an_old_xls_workbook(tmp_path, ledger):
    p = tmp_path / "results.xls"
    p.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512)
    with pytest.raises(E.FieldCheckError, match="97-2003.*save it as .xlsx"):
        import_results(ledger, p, today=TODAY)
    p2 = tmp_path / "results.xlsx"
    shutil.copy(p, p2)  # renamed, not converted
    with pytest.raises(E.FieldCheckError, match="97-2003"):
        import_results(ledger, p2, today=TODAY)


def test_run_id_and_inputs_with_terminal_escapes(tmp_path, ledger):
    r = CliRunner().invoke(cli, ["ledger", "add", str(_write(_patches(1), tmp_path / "p.gpkg")), "--ledger",
                                 str(ledger.path), "--run-id", "r\x1b[2J1"])
    assert r.exit_code == 1 and "U+001B (ESC)" in r.output and "\x1b" not in r.output
    r = CliRunner().invoke(cli, ["ledger", "advance", str(ledger.path), _ids(ledger)[0], "note", "--note",
                                 "铃\x07声"])
    assert r.exit_code == 1 and "note holds the control character U+0007" in r.output
    assert "nothing was recorded" in r.output


def test_nan_and_inf_in_patches(tmp_path):
    led = Ledger(tmp_path / "ledger.gpkg")
    p = _patches(2, confidence=[float("nan"), 0.5], area_m2=[float("inf"), 900.0])
    res = led.add_detections(p, run_id="r1")
    assert res.new == 2 and led.check().ok
    d = led.detections()
    assert d["confidence"].isna().iloc[0] and d["attrs"].iloc[0]["input_area_m2"] is None


def test_mine_verdicts_are_read_and_written_as_safely_as_case_results(tmp_path, inputs):
    """The restoration verdicts (ecopatch mines): the same readers, checks and cell writer."""
    led = Ledger(tmp_path / "ledger.gpkg")
    a = inputs.assessment.copy()
    a["矿山名称"] = ["=cmd|' /C calc'!A0", *a["矿山名称"].iloc[1:]]  # a hostile name, into the template
    led.record_assessment(a, run_id="S2B_20240912")
    tpl = export_verdict_template(led, tmp_path / "verdicts.xlsx")
    assert scan_outputs(tmp_path) == []
    mine = str(a["patch_id"].iloc[0])
    rows = [f"{mine},已验收,王\x07工,2024-10-10,,,", f"{mine},已验收,王工,2024-10-11,,说明,照片,多出一格"]
    p = tmp_path / "v.csv"
    header = "矿山编号,核查结论,核查人,核查日期,实测修复面积,备注,照片"
    p.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    rep = import_verdicts(led, p, today=TODAY)
    reasons = dict(zip(rep.rejected["row"], rep.rejected["reason"]))
    assert "核查人 holds the control character U+0007" in reasons[2]
    assert "1 filled cell(s) beyond the header" in reasons[3]
    wb = openpyxl.load_workbook(tpl)
    ws = wb["修复核查"]
    heads = [c.value for c in ws[1]]
    ws.cell(row=2, column=heads.index("核查结论") + 1, value="已验收")
    ws.cell(row=2, column=heads.index("核查人") + 1, value=True)
    ws.cell(row=2, column=heads.index("核查日期") + 1, value=dt.date(2024, 10, 10))
    wb.save(tmp_path / "filled.xlsx")
    rep = import_verdicts(led, tmp_path / "filled.xlsx", today=TODAY)
    assert "核查人 holds TRUE, a yes/no value" in rep.rejected["reason"].iloc[0]


# ===========================================================================
# Guard rail (issue 18, item 7b): too many new cases from one scene pair
# ===========================================================================
def _many(n):
    p = _patches(n)
    p["geometry"] = [box(119.9 + 0.002 * (i % 100), 30.2 + 0.002 * (i // 100), 119.9003 + 0.002 * (i % 100),
                         30.2003 + 0.002 * (i // 100)) for i in range(n)]
    return p


def test_add_detections_refuses_more_new_cases_than_allowed(tmp_path):
    led = Ledger(tmp_path / "ledger.gpkg")
    with pytest.raises(E.TooManyCasesError, match="would open 250 new cases, more than max_new_cases = 200") as info:
        led.add_detections(_many(250), run_id="r1")
    msg = str(info.value)
    assert "nothing was written" in msg and "season" in msg and "haze" in msg and "--allow-many-cases" in msg
    assert _counts(led) == (0, 0)
    assert led.add_detections(_many(250), run_id="r1", max_new_cases=None).new == 250


def test_ledger_add_cli_guard_and_override(tmp_path):
    p = _write(_many(12), tmp_path / "p.gpkg")
    led = tmp_path / "ledger.gpkg"
    r = CliRunner().invoke(cli, ["ledger", "add", str(p), "--ledger", str(led), "--run-id", "r1",
                                 "--max-new-cases", "10"])
    assert r.exit_code == 1 and "12 new cases" in r.output and "field teams would be sent out for nothing" in r.output
    assert _counts(Ledger(led, create=False)) == (0, 0)
    r = CliRunner().invoke(cli, ["ledger", "add", str(p), "--ledger", str(led), "--run-id", "r1",
                                 "--max-new-cases", "10", "--allow-many-cases"])
    assert r.exit_code == 0 and "12 new" in r.output


def test_guard_keys_in_the_run_configuration(tmp_path, tmp_path_factory):
    from ecopatch.run.config import load_config

    cfg = make_site(tmp_path / "site", sample_source(tmp_path_factory),
                    extra_run="max_new_cases = 50\nallow_many_cases = false")
    run = load_config(cfg).run
    assert run.max_new_cases == 50 and run.new_case_limit == 50
    assert load_config(cfg).with_overrides(allow_many_cases=True).run.new_case_limit is None
    for bad, fragment in (("max_new_cases = -1", "max_new_cases"), ("max_new_cases = 2.5", "max_new_cases"),
                          ("allow_many_cases = \"yes\"", "allow_many_cases")):
        cfg.write_text(cfg.read_text(encoding="utf-8").replace("max_new_cases = 50\nallow_many_cases = false", bad),
                       encoding="utf-8")
        with pytest.raises(E.ConfigError, match=fragment):
            load_config(cfg)
        cfg.write_text(cfg.read_text(encoding="utf-8").replace(bad, "max_new_cases = 50\nallow_many_cases = false"),
                       encoding="utf-8")


def test_run_guard_and_override(tmp_path, tmp_path_factory):
    cfg = make_site(tmp_path / "site", sample_source(tmp_path_factory), extra_run="max_new_cases = 2")
    r = CliRunner().invoke(cli, ["run", str(cfg), "--no-progress"])
    assert r.exit_code == 4, r.output
    assert "more than max_new_cases = 2" in r.output and "the ledger is unchanged" in r.output
    led = tmp_path / "site" / "out" / "ledger.gpkg"
    assert _counts(Ledger(led, create=False)) == (0, 0)
    r = CliRunner().invoke(cli, ["run", str(cfg), "--no-progress", "--allow-many-cases"])
    assert r.exit_code == 0, r.output
    assert _counts(Ledger(led, create=False))[0] > 2


def test_run_guard_keeps_the_change_map_to_judge_by(tmp_path, tmp_path_factory):
    """With a report, the run's change map is drawn with the report's figures; a scene the guard
    stops before that still has it in its .failed folder (the message says to look at it)."""
    from ecopatch.run.config import load_config
    from ecopatch.run.pipeline import run_pipeline

    cfg = make_site(tmp_path / "site", sample_source(tmp_path_factory), maps=True, report=True,
                    extra_run="max_new_cases = 2")
    res = run_pipeline(load_config(cfg), progress=False)
    assert res.exit_code == 4
    (failed,) = (tmp_path / "site" / "out" / "runs").glob("*.failed")
    png = failed / "maps" / "change_map.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not (failed / "report").exists()
    assert _counts(Ledger(tmp_path / "site" / "out" / "ledger.gpkg", create=False)) == (0, 0)


# ===========================================================================
# The README's command-line chain, as written
# ===========================================================================
def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [line.split("#", 1)[0].rstrip() for line in block.strip().splitlines()]
    return [c.strip() for c in re.sub(r"\\\n\s*", " ", "\n".join(lines)).splitlines() if c.strip()]


@pytest.mark.slow
def test_readme_command_line_chain_runs_as_written(tmp_path, sample):
    from .conftest import SHARED_DATA

    cmds = _readme_commands()
    assert [" ".join(c.split()[1:3]) for c in cmds] == [
        "assess --before", "detect --before", "detect --before", "ledger add", "fieldcheck export", "fieldcheck import",
        "ledger summary", "ledger check", "report --assessment", "demo demo-output", "run sample_data/ecopatch.toml",
        "mines history", "mines template", "mines import", "mines agreement"]
    # the README's file names: B.SAFE, A.SAFE, mines.gpkg, reserves.gpkg, taizhou_2000/2003.tif (the real
    # Landsat pair of ../shared/data: that one line is left out when it is absent), sample_data/ecopatch.toml
    (tmp_path / "B.SAFE").symlink_to(Path(sample.products["before"]).resolve())
    (tmp_path / "A.SAFE").symlink_to(Path(sample.products["after"]).resolve())
    shutil.copy(sample.mines, tmp_path / "mines.gpkg")
    shutil.copy(sample.reserves, tmp_path / "reserves.gpkg")
    shutil.copytree(ROOT / "sample_data", tmp_path / "sample_data")
    taizhou = SHARED_DATA / "landsat_cd_taizhou_nanjing" / "taizhou"
    if taizhou.is_dir():
        (tmp_path / "taizhou_2000.tif").symlink_to(taizhou / "taizhou_2000-03-17_L7ETM.tif")
        (tmp_path / "taizhou_2003.tif").symlink_to(taizhou / "taizhou_2003-02-06_L7ETM.tif")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOPATCH_TEST_")}
    for cmd in cmds:
        args = shlex.split(cmd)
        assert args[0] == "ecopatch"
        if "taizhou_2000.tif" in args and not taizhou.is_dir():
            continue
        if args[1:3] == ["fieldcheck", "import"]:
            _fill_template(tmp_path / "fieldcheck" / "results_template.xlsx")  # the field teams' part
        if args[1:3] == ["mines", "import"]:
            _fill_verdicts(tmp_path / args[-1])  # the field teams' part
        r = subprocess.run([sys.executable, "-m", "ecopatch.cli.main", *args[1:]], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr, cmd
        if args[1:3] == ["fieldcheck", "import"]:
            assert "2 accepted" in r.stdout, r.stdout
        if args[1:3] == ["mines", "import"]:
            assert "2 verdicts accepted" in r.stdout, r.stdout
    assert (tmp_path / "report" / "report.html").is_file() and (tmp_path / "ecopatch-runs").is_dir()
    assert Ledger(tmp_path / "ledger.gpkg", create=False).check().ok


def _fill_verdicts(path: Path) -> None:
    wb = openpyxl.load_workbook(path)
    ws = wb["修复核查"]
    heads = [c.value for c in ws[1]]
    for r, verdict in ((2, "已验收"), (3, "修复中")):
        ws.cell(row=r, column=heads.index("核查结论") + 1, value=verdict)
        ws.cell(row=r, column=heads.index("核查人") + 1, value="王工")
        ws.cell(row=r, column=heads.index("核查日期") + 1, value=dt.date.today())
    wb.save(path)


def _fill_template(path: Path) -> None:
    wb = openpyxl.load_workbook(path)
    ws = wb["核查结果"]
    heads = [c.value for c in ws[1]]
    for r, verdict in ((2, "确认"), (3, "误报")):
        ws.cell(row=r, column=heads.index("核查结论") + 1, value=verdict)
        if verdict == "确认":
            ws.cell(row=r, column=heads.index("实际类型") + 1, value="工业开发")
        ws.cell(row=r, column=heads.index("核查人") + 1, value="李工")
        ws.cell(row=r, column=heads.index("核查日期") + 1, value=dt.date.today())
    wb.save(path)


_ = (AFTER, BEFORE)
