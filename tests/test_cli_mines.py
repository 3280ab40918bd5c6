"""``ecopatch mines``: history, verdicts template, import, agreement (CliRunner)."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
from click.testing import CliRunner

from ecopatch.cli.main import cli
from ecopatch.ledger import Ledger

from .ledger.test_store_mines import _fill, mines


def test_mines_commands(tmp_path):
    path = tmp_path / "ledger.gpkg"
    led = Ledger(path)
    led.record_assessment(mines(), "r2024")
    led.record_assessment(mines("2025-09-15", rate=(0.6, 0.92)), "r2025")
    run = CliRunner().invoke

    res = run(cli, ["mines", "history", str(path), "M01"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("mine") and len(lines) == 3
    assert "2024-09-12" in lines[1] and "in_progress" in lines[1] and "50%" in lines[1] and "10,000" in lines[1]
    assert "(2021-09-18)" in lines[2]
    res = run(cli, ["mines", "history", str(path), "--csv"])
    assert res.exit_code == 0 and res.output.count("\n") == 5 and res.output.startswith("patch_id,date_after")
    res = run(cli, ["mines", "history", str(path), "NOPE"])
    assert res.exit_code == 2 and "no history for mine 'NOPE'" in res.output

    tpl = tmp_path / "v.xlsx"
    res = run(cli, ["mines", "template", str(path), str(tpl)])
    assert res.exit_code == 0 and tpl.exists()
    assert run(cli, ["mines", "template", str(path), str(tpl)]).exit_code == 1  # exists: not overwritten
    filled = _fill(tpl, {"M01": {"核查结论": "已验收", "核查人": "王工", "核查日期": "2025-10-08"},
                         "M02": {"核查结论": "乱填", "核查人": "王工", "核查日期": "2025-10-08"}}, tmp_path / "f.xlsx")
    res = run(cli, ["mines", "import", str(path), str(filled), "--today", "2025-11-01", "--strict"])
    assert res.exit_code == 1 and "strict: nothing applied" in res.output and "row 3 M02" in res.output
    res = run(cli, ["mines", "import", str(path), str(filled), "--today", "2025-11-01"])
    assert res.exit_code == 0 and "1 verdicts accepted" in res.output
    assert list(Ledger(path).mine_verdicts()["patch_id"]) == ["M01"]

    res = run(cli, ["mines", "agreement", str(path)])
    assert res.exit_code == 0, res.output
    assert "1 verdict(s) compared" in res.output and "agreement 0%" in res.output and "M01: field 已验收" in res.output
    res = run(cli, ["mines", "agreement", str(path), "--csv"])
    t = pd.read_csv(io.StringIO(res.output))
    assert t.loc[0, "imagery_status"] == "in_progress" and t.loc[0, "imagery_date"] == str(dt.date(2025, 9, 15))
