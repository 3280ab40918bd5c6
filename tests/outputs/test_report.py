"""The report: self-contained HTML, the workbook with Chinese headers, tables, CLI, web map."""

from __future__ import annotations

import base64
import json
import re
import sys

import pytest
from click.testing import CliRunner

from ecopatch.errors import InputDataError, MissingDependencyError, OutputExistsError
from ecopatch.outputs.report import case_table, mine_table, patch_table, summary_table, write_report
from tests import mapdata
from tests.mapdata import TODAY

# shared session fixtures (the golden sample, its assessment and detection, a ledger, the CJK font)
sample, inputs, ledger, cjk = mapdata.sample, mapdata.inputs, mapdata.ledger, mapdata.cjk


@pytest.fixture(scope="module")
def report(inputs, ledger, tmp_path_factory, cjk):
    out = tmp_path_factory.mktemp("report")
    paths = write_report(out, assessment=inputs.assessment, patches=inputs.patches, ledger=ledger,
                         before=inputs.before, after=inputs.after, reserves=inputs.reserves, today=TODAY,
                         max_mine_cards=3, max_pixels=40_000, dpi=60)
    return out, paths


def _sheets(path):
    import openpyxl

    wb = openpyxl.load_workbook(path)
    return {ws.title: [list(r) for r in ws.iter_rows(values_only=True)] for ws in wb}


def test_report_files(report):
    out, paths = report
    assert paths["html"] == out / "report.html" and paths["xlsx"] == out / "report.xlsx"
    figs = {k for k in paths if k.startswith("figure:")}
    assert figs == {"figure:overview", "figure:change_map", "figure:mine_YH-KS-003", "figure:mine_YH-KS-004",
                    "figure:mine_YH-KS-005"}  # not started first, then in progress, by ID
    for k in figs:
        assert paths[k].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]  # atomic writes leave nothing behind


def test_html_is_self_contained(report, inputs):
    html = report[1]["html"].read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "charset='utf-8'" in html
    srcs = re.findall(r'src="([^"]+)"', html)
    assert len(srcs) == 5 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert base64.b64decode(srcs[0].split(",", 1)[1])[:4] == b"\x89PNG"
    assert "http://" not in html and "https://" not in html and "<link" not in html and "<script" not in html
    for sec in ("一、汇总", "二、总览图", "三、变化图斑", "四、矿山修复（一矿一卡）", "五、案件清单", "六、核查精度"):
        assert sec in html
    for header in ("矿山编号", "修复率(%)", "图斑编号", "变化类型", "红黄绿码", "精度(%)"):
        assert f"<th>{header}</th>" in html
    for pid in inputs.assessment["patch_id"]:
        assert f"<td>{pid}</td>" in html
    assert "仅绘制 3 张矿山卡片（共 8 座）" in html


def test_workbook_sheets_and_headers(report, inputs, ledger):
    sheets = _sheets(report[1]["xlsx"])
    assert list(sheets) == ["汇总", "矿山", "图斑", "案件", "核查精度"]
    assert sheets["汇总"][0] == ["项目", "数值", "单位"]
    assert ["矿山总数", len(inputs.assessment), "座"] in sheets["汇总"]
    mines = sheets["矿山"]
    assert mines[0][:4] == ["矿山编号", "矿山名称", "修复方向", "矿山面积(平方米)"]
    assert len(mines) == 1 + len(inputs.assessment)
    row = dict(zip(mines[0], mines[1]))
    truth = inputs.assessment.iloc[0]
    assert row["矿山编号"] == truth["patch_id"]
    assert row["受损面积(平方米)"] == pytest.approx(truth["damaged_m2"], abs=0.06)
    assert row["修复率(%)"] == pytest.approx(truth["restoration_rate"] * 100, abs=0.06)
    assert row["修复状态"] == truth["status_zh"]
    assert sheets["图斑"][0][:3] == ["图斑编号", "变化类型", "面积(平方米)"]
    assert len(sheets["图斑"]) == 1 + len(inputs.patches) + 2  # + a note
    assert sheets["案件"][0][:3] == ["图斑编号", "状态", "红黄绿码"]
    prec = sheets["核查精度"]
    assert prec[0] == ["分组", "确认(处)", "误报(处)", "已核查(处)", "精度(%)"]
    p = ledger.precision().iloc[0]
    assert prec[1] == ["合计", int(p["confirmed"]), int(p["false_alarm"]), int(p["checked"]),
                       round(p["precision"] * 100, 1)]


def test_no_overwrite_without_asking(report, inputs):
    out, paths = report
    stamp = paths["html"].stat().st_mtime_ns
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_report(out, assessment=inputs.assessment, today=TODAY)
    assert paths["html"].stat().st_mtime_ns == stamp


def test_english_report_keeps_chinese_workbook(inputs, tmp_path):
    paths = write_report(tmp_path, patches=inputs.patches, lang="en", today=TODAY, dpi=50, max_pixels=20_000)
    html = paths["html"].read_text(encoding="utf-8")
    assert "<th>Change type</th>" in html and "1. Summary" in html and "lang='en'" in html
    sheets = _sheets(paths["xlsx"])
    assert list(sheets) == ["汇总", "图斑", "核查精度"]
    assert sheets["图斑"][0][0] == "图斑编号"


def test_report_needs_input(tmp_path):
    with pytest.raises(InputDataError, match="assessment"):
        write_report(tmp_path)


def test_tables_english(inputs, ledger):
    m = mine_table(inputs.assessment, lang="en")
    assert list(m.columns[:3]) == ["Mine ID", "Name", "Direction"]
    assert set(m["Status"]) <= {"Restored", "In progress", "Not started", "Insufficient data"}
    p = patch_table(inputs.patches, lang="en")
    assert p["Area (mu)"].sum() == pytest.approx(inputs.patches["area_mu"].sum(), abs=0.1)
    c = case_table(ledger.cases(today=TODAY), lang="zh")
    assert set(c["红黄绿码"]) <= {"红码", "黄码", "绿码"} and "红码" in set(c["红黄绿码"])
    s = summary_table(inputs.assessment, inputs.patches, lang="en")
    assert "Overall restoration rate" in set(s["Item"])


# ----------------------------------------------------------------------------- CLI
def test_cli_report(inputs, ledger, tmp_path, cjk):
    from ecopatch.cli.main import cli
    from ecopatch.vector.layers import write_table

    a = write_table(inputs.assessment, tmp_path / "assessment.gpkg")
    p = write_table(inputs.patches, tmp_path / "patches.gpkg")
    out = tmp_path / "rep"
    args = ["report", "--assessment", str(a), "--patches", str(p), "--ledger", str(ledger.path),
            "--out", str(out), "--today", "2024-11-01"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "8 mines, 10 patches" in res.output and "report.html" in res.output
    assert (out / "report.xlsx").exists() and (out / "figures" / "overview.png").exists()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert CliRunner().invoke(cli, [*args, "--overwrite"]).exit_code == 0
    bad = CliRunner().invoke(cli, ["report", "--out", str(out)])
    assert bad.exit_code == 2 and "--assessment" in bad.output
    bad_date = CliRunner().invoke(cli, [*args, "--today", "1.11.2024"])
    assert bad_date.exit_code == 2


# ----------------------------------------------------------------------------- web map
def test_web_map(inputs, ledger):
    pytest.importorskip("folium")
    from ecopatch.outputs.webmap import web_map

    cases = ledger.cases(today=TODAY)
    m = web_map(cases, inputs.assessment, inputs.reserves)
    html = m.get_root().render()
    assert cases["case_id"].iloc[0] in html and "YH-KS-001" in html
    assert json.dumps("红黄绿码")[1:-1] in html  # tooltip alias (JSON-escaped in the page)
    assert "World_Imagery" in html


def test_web_map_without_folium(inputs, monkeypatch):
    from ecopatch.outputs.webmap import web_map

    monkeypatch.setitem(sys.modules, "folium", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'ecopatch\[webmap\]'"):
        web_map(inputs.patches)


def test_extra_change_map_drawn_with_the_report(inputs, tmp_path, cjk):
    """ecopatch run's maps/change_map.png: drawn in the report's pass, the same pixels as drawn alone."""
    import io

    import numpy as np
    from PIL import Image

    from ecopatch.outputs.maps import change_map
    from ecopatch.outputs.maps.render import png_bytes
    from ecopatch.raster.quicklook import shared_reads

    extra = tmp_path / "maps" / "change_map.png"
    extra.parent.mkdir()
    extra.write_bytes(b"an older map")  # replaced
    paths = write_report(tmp_path / "report", patches=inputs.patches, before=inputs.before, after=inputs.after,
                         today=TODAY, dpi=40, max_pixels=20_000, extra_change_map=(extra, 50), workers=1)
    assert "figure:change_map" in paths and extra not in paths.values()
    with shared_reads():  # as write_report reads (each scene once, every figure cut from it)
        alone = png_bytes(change_map(inputs.before, inputs.after, inputs.patches, max_pixels=20_000), dpi=50)
    got, want = (np.asarray(Image.open(io.BytesIO(b))) for b in (extra.read_bytes(), alone))
    assert got.shape == want.shape and np.array_equal(got, want)
    in_report = np.asarray(Image.open(paths["figure:change_map"]))
    assert in_report.shape[1] == round(want.shape[1] * 40 / 50)  # the report's own, at its dpi
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_extra_change_map_needs_a_change_map(inputs, tmp_path):
    with pytest.raises(InputDataError, match="extra_change_map"):
        write_report(tmp_path, assessment=inputs.assessment, before=inputs.before, after=inputs.after,
                     extra_change_map=(tmp_path / "cm.png", 120))
    assert not (tmp_path / "cm.png").exists() and not (tmp_path / "report.html").exists()
