"""benchmarks/outputs_digest.py finds every change in a table and none between equal ones."""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import shapely
from benchmarks import outputs_digest as od


def _frame(area=1.5, name="a", x=0.0):
    return gpd.GeoDataFrame({"patch_id": ["p1", name], "area_m2": [2.0, area], "ok": [True, False],
                             "recorded_at": ["now", "later"]},
                            geometry=[shapely.box(0, 0, 1, 1), shapely.box(x, 0, 2, 1)], crs=4490)


def _write(tmp_path, name, **tables):
    p = tmp_path / name
    p.write_text(json.dumps({"outputs": {k: od.table_digest(v) for k, v in tables.items()}}), encoding="utf-8")
    return str(p)


def test_equal_tables_agree_and_every_kind_of_change_is_listed(tmp_path):
    a = _write(tmp_path, "a.json", t=_frame())
    assert od.compare(a, _write(tmp_path, "same.json", t=_frame())) == []
    # wall-clock columns are not compared; a coordinate moved below the rounding (1e-7 degrees) is the same
    assert od.compare(a, _write(tmp_path, "clock.json", t=_frame().assign(recorded_at=["x", "y"]))) == []
    assert od.compare(a, _write(tmp_path, "tiny.json", t=_frame(x=1e-9))) == []
    d = od.compare(a, _write(tmp_path, "b.json", t=_frame(area=1.6, name="b", x=0.5)))
    assert any("area_m2: sum" in x for x in d) and any("area_m2: min" in x for x in d)
    assert any("patch_id: hash" in x for x in d) and any("geometry: hash" in x for x in d)
    assert od.compare(a, _write(tmp_path, "c.json", t=_frame(area=1.5 * (1 + 1e-12)))) == []  # within rtol
    assert od.compare(a, _write(tmp_path, "rows.json", t=_frame().iloc[:1])) != []
    assert od.compare(a, _write(tmp_path, "cols.json", t=_frame().drop(columns="ok"))) != []
    assert od.compare(a, _write(tmp_path, "other.json", u=_frame())) == ["t: only in the first",
                                                                         "u: only in the second"]
    assert od.table_digest(pd.DataFrame({"v": [1.0, float("nan")]}))["cols"]["v"]["nan"] == 1


def test_columns_of_dicts_compare_their_numbers_with_the_tolerance(tmp_path):
    def history(area_mu=34.25142283432152, status="修复中"):
        return pd.DataFrame({"attrs": [{"area_mu": area_mu, "status_zh": status, "previous_date": None},
                                       {"area_mu": 1.0, "status_zh": "未启动", "previous_date": None}]})

    a = _write(tmp_path, "a.json", h=history())
    # the last digit of a float (additions in another order) is no difference; a text or a real number is
    assert od.compare(a, _write(tmp_path, "ulp.json", h=history(area_mu=34.251422834321526))) == []
    assert any("status_zh" not in x and "attrs: hash" in x
               for x in od.compare(a, _write(tmp_path, "status.json", h=history(status="已完成修复"))))
    assert any("attrs: sum:area_mu" in x for x in od.compare(a, _write(tmp_path, "area.json", h=history(35.0))))
