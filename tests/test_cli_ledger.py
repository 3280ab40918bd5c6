"""``ecopatch ledger …`` and ``ecopatch fieldcheck …`` through click's test runner."""

from __future__ import annotations

import datetime as dt
import sqlite3

import geopandas as gpd
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from shapely.geometry import box

from ecopatch.cli.main import cli
from ecopatch.ledger import Ledger

X0, Y0, S = 120.10, 30.25, 0.001


def make_patches(n=3, *, date_after="2024-05-01"):
    rows = []
    for i in range(n):
        x, y = X0 + i * 10 * S, Y0
        rows.append(
            dict(
                patch_id=f"p{i + 1}", change_type="construction", area_m2=1e4, area_mu=15.0,
                confidence=0.8, date_before="2023-05-01", date_after=date_after,
                ndvi_before=0.7, ndvi_after=0.2, centroid_lon=x, centroid_lat=y,
                cgcs2000_lon=x, cgcs2000_lat=y, reserve_name="西溪湿地", zone="core",
                zone_name="核心区", geometry=box(x, y, x + S, y + S),
            )
        )  # fmt: skip
    return gpd.GeoDataFrame(rows, crs="EPSG:4490")


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def patches_file(tmp_path):
    path = tmp_path / "patches.gpkg"
    make_patches().to_file(path, layer="patches")
    return path


@pytest.fixture
def ledger_path(tmp_path, runner, patches_file):
    path = tmp_path / "ledger.gpkg"
    r = runner.invoke(cli, ["ledger", "add", str(patches_file), "--ledger", str(path),
                            "--run-id", "2024-05", "--today", "2024-05-10"])  # fmt: skip
    assert r.exit_code == 0, r.output
    return path


def test_ledger_add_is_idempotent(runner, ledger_path, patches_file):
    assert len(Ledger(ledger_path).cases()) == 3
    r = runner.invoke(cli, ["ledger", "add", str(patches_file), "--ledger", str(ledger_path),
                            "--run-id", "2024-05"])  # fmt: skip
    assert r.exit_code == 0
    assert "0 new" in r.output and "3 unchanged" in r.output


def test_ledger_add_reports_bad_input(runner, tmp_path):
    bad = tmp_path / "bad.gpkg"
    make_patches().drop(columns="zone").to_file(bad)
    r = runner.invoke(cli, ["ledger", "add", str(bad), "--ledger", str(tmp_path / "l.gpkg"),
                            "--run-id", "x"])  # fmt: skip
    assert r.exit_code == 1
    assert "Error:" in r.output and "'zone'" in r.output
    notvec = tmp_path / "notes.txt"
    notvec.write_text("hello")
    r = runner.invoke(cli, ["ledger", "add", str(notvec), "--ledger", str(tmp_path / "l.gpkg"),
                            "--run-id", "x"])  # fmt: skip
    assert r.exit_code == 1 and "cannot read suspect patches" in r.output
    r = runner.invoke(cli, ["ledger", "add", str(bad), "--ledger", str(tmp_path / "l.gpkg")])
    assert r.exit_code == 2 and "--run-id" in r.output


def test_ledger_summary(runner, ledger_path):
    r = runner.invoke(cli, ["ledger", "summary", str(ledger_path), "--today", "2024-06-20"])
    assert r.exit_code == 0, r.output
    assert "[status]" in r.output and "已发现" in r.output and "黄码" in r.output
    r = runner.invoke(cli, ["ledger", "summary", str(ledger_path), "--csv"])
    assert r.output.splitlines()[0] == "dimension,key,label,n_cases,area_m2,area_mu"
    r = runner.invoke(cli, ["ledger", "summary", str(ledger_path), "--today", "20/06/2024"])
    assert r.exit_code == 2 and "YYYY-MM-DD" in r.output


def test_missing_ledger_is_a_usage_error(runner, tmp_path):
    r = runner.invoke(cli, ["ledger", "summary", str(tmp_path / "none.gpkg")])
    assert r.exit_code == 2 and "does not exist" in r.output
    assert not (tmp_path / "none.gpkg").exists()


def test_ledger_check(runner, ledger_path):
    r = runner.invoke(cli, ["ledger", "check", str(ledger_path)])
    assert r.exit_code == 0 and "OK" in r.output
    con = sqlite3.connect(ledger_path)
    con.execute("UPDATE cases SET status='closed'")
    con.commit()
    con.close()
    r = runner.invoke(cli, ["ledger", "check", str(ledger_path)])
    assert r.exit_code == 1 and "problem" in r.output


def test_ledger_advance(runner, ledger_path):
    r = runner.invoke(cli, ["ledger", "advance", str(ledger_path), "YB-2024-000001", "confirm",
                            "--date", "2024-05-20", "--real-type", "工业开发", "--unit", "某镇",
                            "--deadline", "2024-08-31"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "confirmed (已确认)" in r.output
    r = runner.invoke(cli, ["ledger", "advance", str(ledger_path), "YB-2024-000001", "close"])
    assert r.exit_code == 1 and "allowed next states: rectifying" in r.output
    r = runner.invoke(cli, ["ledger", "advance", str(ledger_path), "YB-2024-000001", "explode"])
    assert r.exit_code == 2


def test_ledger_export_report(runner, ledger_path, tmp_path):
    out = tmp_path / "report"
    r = runner.invoke(cli, ["ledger", "export", str(ledger_path), str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "ledger_report.xlsx").exists() and (out / "ledger_cases.csv").exists()
    r = runner.invoke(cli, ["ledger", "export", str(ledger_path), str(out)])
    assert r.exit_code == 1 and "--overwrite" in r.output
    r = runner.invoke(cli, ["ledger", "export", str(ledger_path), str(out), "--overwrite"])
    assert r.exit_code == 0


def test_fieldcheck_export_and_import(runner, ledger_path, tmp_path):
    out = tmp_path / "pkg"
    r = runner.invoke(cli, ["fieldcheck", "export", str(ledger_path), str(out), "--dispatch",
                            "--today", "2024-05-12"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "3 case(s)" in r.output
    assert set(Ledger(ledger_path).cases()["status"]) == {"dispatched"}
    r = runner.invoke(cli, ["fieldcheck", "export", str(ledger_path), str(tmp_path / "one"),
                            "--case", "YB-2024-000002"])  # fmt: skip
    assert r.exit_code == 0 and "1 case(s)" in r.output
    r = runner.invoke(cli, ["fieldcheck", "export", str(ledger_path), str(tmp_path / "two"),
                            "--status", "nonsense"])  # fmt: skip
    assert r.exit_code == 2 and "not a case status" in r.output

    wb = load_workbook(out / "results_template.xlsx")
    ws = wb["核查结果"]
    col = {c.value: c.column for c in ws[1]}
    values = {
        2: {"核查结论": "误报", "核查人": "李四", "核查日期": dt.date(2024, 5, 20)},
        3: {
            "核查结论": "确认",
            "实际类型": "交通开发",
            "核查人": "李四",
            "核查日期": dt.date(2024, 5, 20),
        },  # fmt: skip
        4: {"核查结论": "没去", "核查人": "李四", "核查日期": dt.date(2024, 5, 20)},
    }
    for row, vals in values.items():
        for h, v in vals.items():
            ws.cell(row, col[h]).value = v
    results = tmp_path / "filled.xlsx"
    wb.save(results)

    r = runner.invoke(cli, ["fieldcheck", "import", str(ledger_path), str(results), "--strict"])
    assert r.exit_code == 1 and "nothing applied" in r.output
    r = runner.invoke(cli, ["fieldcheck", "import", str(ledger_path), str(results)])
    assert r.exit_code == 0, r.output
    assert "2 accepted" in r.output and "1 rejected" in r.output
    assert "row 4 YB-2024-000003: 核查结论 '没去' is not allowed" in r.output
    r = runner.invoke(cli, ["fieldcheck", "import", str(ledger_path), str(results)])
    assert "0 accepted" in r.output and "2 skipped" in r.output

    wb = load_workbook(results)
    del wb["核查结果"]
    wb.save(tmp_path / "broken.xlsx")
    r = runner.invoke(
        cli, ["fieldcheck", "import", str(ledger_path), str(tmp_path / "broken.xlsx")]
    )
    assert r.exit_code == 1 and "no sheet named '核查结果'" in r.output


def test_help_lists_the_commands(runner):
    r = runner.invoke(cli, ["ledger", "--help"])
    assert r.exit_code == 0
    for cmd in ("add", "summary", "export", "check", "advance"):
        assert cmd in r.output
    r = runner.invoke(cli, ["fieldcheck", "--help"])
    assert "export" in r.output and "import" in r.output
