"""``ecopatch run`` on a site whose every name is hostile: no output anywhere holds a formula or live markup.

The mines carry IDs and names that are spreadsheet formulas, HTML/JS, mathtext,
control characters, path tricks, 86-character Chinese IDs and IDs that differ
only in characters a file name cannot hold; the reserves' names are the same
kind.  A full run (every table format, change map, field package with chips,
report), a field-results import with formula and markup text, the ledger report,
a field package export and a web map are then scanned file by file
(:func:`tests.hostile.scan_outputs`): every workbook opened with openpyxl (no
cell of type ``f``, no text that a spreadsheet would run), every CSV field, every
HTML, KML and JSON file.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner

from ecopatch.cli.main import cli
from ecopatch.ledger import Ledger

from .hostile import FORMULAS, MARKUP, scan_outputs
from .runsite import AFTER, make_site, run, sample_source

MINE_IDS = ["K/1", "K:1", "=cmd|' /C calc'!A0", "矿" * 86, "<script>alert('xss')</script>", "黄山\x0b矿",
            "$\\foo$", "@SUM(A1)"]
RESERVE_NAMES = ["<img src=x onerror=alert(1)>", "=HYPERLINK(\"http://evil.example\",\"点我\")",
                 "黄山\x0b自然保护区\u202e", "\"><svg onload=alert(2)>", "+SUM(1,2) $\\foo$"]


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    source = sample_source(tmp_path_factory)
    root = tmp_path_factory.mktemp("hostile") / "site"
    cfg = make_site(root, source, maps=True, report=True, chips=True)
    text = cfg.read_text(encoding="utf-8").replace('formats = ["gpkg", "csv"]',
                                                   'formats = ["gpkg", "csv", "xlsx", "geojson", "kml"]')
    text = text.replace("[detection]\n", '[detection]\nzone_field = "功能分区"\nname_field = "保护地名称"\n', 1)
    cfg.write_text(text, encoding="utf-8")
    mines = gpd.read_file(root / "mines.gpkg")
    mines["矿山编号"] = MINE_IDS[: len(mines)]
    mines["矿山名称"] = (MARKUP + FORMULAS)[: len(mines)]
    mines["责任单位"] = (FORMULAS + MARKUP)[: len(mines)]
    mines.to_file(root / "mines.gpkg", driver="GPKG")
    reserves = gpd.read_file(root / "reserves.gpkg")
    reserves["保护地名称"] = RESERVE_NAMES[: len(reserves)]
    reserves.to_file(root / "reserves.gpkg", driver="GPKG")
    res = run(cfg, timeout=600)
    return root, res


def test_the_run_succeeds_and_says_what_it_cleaned(hostile_run):
    root, res = hostile_run
    assert res.returncode == 0, res.stderr
    folder = root / "out" / "runs" / f"2024-09-12_{AFTER}"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "ok" and manifest["counts"]["ledger"]["new"] > 0
    # the layers are read before the scene's run.log opens: the warning is on stderr (the cron mail)
    assert "TextRepairedWarning" in res.stderr and "U+000B" in res.stderr  # the control character, named
    log = (folder / "run.log").read_text(encoding="utf-8")
    assert "\x0b" not in res.stderr + log and "\x1b" not in res.stderr + log


def test_no_output_of_the_run_holds_a_formula_or_markup(hostile_run):
    root, _ = hostile_run
    runs = root / "out" / "runs"
    assert scan_outputs(runs) == []
    # the outputs really hold the hostile names (as text), so the scan looked at something
    folder = runs / f"2024-09-12_{AFTER}"
    mines_csv = (folder / "results" / "mines.csv").read_text(encoding="utf-8-sig")
    assert "'=cmd|' /C calc'!A0" in mines_csv and "<script>alert('xss')</script>" in mines_csv
    html = (folder / "report" / "report.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt;" in html
    import openpyxl

    cells = [c.value for ws in openpyxl.load_workbook(folder / "report" / "report.xlsx").worksheets
             for row in ws.iter_rows() for c in row]
    assert "'=cmd|' /C calc'!A0" in cells


def test_file_names_from_hostile_ids_are_distinct_and_bounded(hostile_run):
    root, _ = hostile_run
    folder = root / "out" / "runs" / f"2024-09-12_{AFTER}"
    figures = sorted(p.name for p in (folder / "report" / "figures").glob("mine_*.png"))
    assert len(figures) == len(MINE_IDS)  # K/1 and K:1 no longer write the same card
    assert all(len(n.encode()) < 120 for n in figures)
    assert all(len(p.name.encode()) < 120 for p in folder.rglob("*"))


def test_field_results_with_formulas_and_markup_export_as_text(hostile_run, tmp_path):
    root, _ = hostile_run
    ledger_path = root / "out" / "ledger.gpkg"
    case = Ledger(ledger_path, create=False).cases()["case_id"].iloc[0]
    results = tmp_path / "results.csv"
    results.write_text(
        "图斑编号,核查结论,实际类型,责任单位,核查人,核查日期,备注\n"
        f"{case},确认,工业开发,\"=HYPERLINK(\"\"http://x\"\")\",=cmd|' /C calc'!A0,2024-10-10,"
        "<script>alert('xss')</script>\n", encoding="utf-8")
    r = CliRunner().invoke(cli, ["fieldcheck", "import", str(ledger_path), str(results), "--today", "2024-11-01"])
    assert r.exit_code == 0 and "1 accepted" in r.output, r.output
    out = tmp_path / "exports"
    r = CliRunner().invoke(cli, ["ledger", "export", str(ledger_path), str(out / "ledger")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["fieldcheck", "export", str(ledger_path), str(out / "fieldcheck"), "--status",
                                 "confirmed"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["report", "--ledger", str(ledger_path), "--out", str(out / "report")])
    assert r.exit_code == 0, r.output
    assert scan_outputs(out) == []
    import openpyxl

    ws = openpyxl.load_workbook(out / "ledger" / "ledger_report.xlsx")["事件记录"]
    actors = [c.value for c in next(col for col in ws.iter_cols() if col[0].value == "actor")]
    assert "'=cmd|' /C calc'!A0" in actors  # the field team's text, shown as text


def test_web_map_escapes_every_name(hostile_run, tmp_path):
    pytest.importorskip("folium")
    from ecopatch.outputs.webmap import web_map
    from ecopatch.vector.layers import read_patches

    root, _ = hostile_run
    led = Ledger(root / "out" / "ledger.gpkg", create=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mines = read_patches(root / "mines.gpkg", id_field="矿山编号")
        reserves = read_patches(root / "reserves.gpkg")
    m = web_map(led.cases(today=dt.date(2024, 11, 1)), mines, reserves)
    m.save(str(tmp_path / "map.html"))
    assert scan_outputs(tmp_path) == []
    html = (tmp_path / "map.html").read_text(encoding="utf-8")
    # shown as text in the tooltip (folium writes & as \u0026 inside the page's data)
    assert "\\u0026lt;img src=x onerror=alert(1)\\u0026gt;" in html


def test_hostile_mine_ids_in_the_ledger(hostile_run):
    root, _ = hostile_run
    hist = Ledger(root / "out" / "ledger.gpkg", create=False).mine_history()
    ids = set(hist["patch_id"])
    assert {"K/1", "K:1", "=cmd|' /C calc'!A0", "矿" * 86, "黄山矿"} <= ids  # stored as they are (control removed)


def test_scan_finds_what_it_looks_for(tmp_path):
    """The scanner itself: unsafe files are reported (so that a clean scan means something)."""
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active["A1"] = "=1+1"
    wb.active["A2"] = "@SUM(1)"
    wb.save(tmp_path / "bad.xlsx")
    (tmp_path / "bad.csv").write_text("a\n=cmd|' /C calc'!A0\n", encoding="utf-8")
    (tmp_path / "bad.html").write_text("<p><img src=x onerror=alert(1)></p>", encoding="utf-8")
    (tmp_path / "bad.kml").write_text("<kml><description><![CDATA[<script>alert(3)</script>]]></description></kml>",
                                      encoding="utf-8")
    (tmp_path / "bad.json").write_text('{"a": "\x07"}', encoding="utf-8")
    (tmp_path / "bad_map.html").write_text('<script>var d = {"n": "\\u003csvg onload=alert(2)\\u003e"};</script>',
                                           encoding="utf-8")
    found = "\n".join(scan_outputs(tmp_path))
    for what in ("a formula cell", "formula-like text", "starts a formula", "unescaped markup", "renders markup",
                 "bad.json", "bad_map.html: unescaped markup '<svg onload'"):
        assert what in found, what


def test_hostile_names_are_really_hostile():
    """Without ecopatch's writers, the same names do make formula cells (the threat is real)."""
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.append(MINE_IDS[2:3] + RESERVE_NAMES[1:2])
    assert [c.data_type for c in wb.active[1]] == ["f", "f"]


_ = Path  # (used in type comments of fixtures)
