"""Restoration verdicts of field teams against the imagery: reading, validation, agreement."""

from __future__ import annotations

import datetime as dt
import doctest

import pandas as pd
import pytest

import ecopatch.fieldcheck.verdicts
from ecopatch.fieldcheck import VERDICTS, read_verdicts, validate_verdicts, verdict_agreement

D = dt.date


def test_doctests():
    assert doctest.testmod(ecopatch.fieldcheck.verdicts, raise_on_error=False).failed == 0


def raw(*rows):
    cols = ["row", "patch_id", "verdict", "inspector", "inspected_on", "restored_m2", "note", "photos"]
    return pd.DataFrame([dict(zip(cols, (i + 2, *r))) for i, r in enumerate(rows)], columns=cols)


def test_aliases_and_duplicates():
    plan = validate_verdicts(raw(
        ("M1", "合格", "王工", "2025/10/8", "1,250", None, "a.jpg; b.jpg"),
        ("M2", "不合格", "王工", "2025年10月8日", None, None, None),
        ("M3", "施工中", "王工", D(2025, 10, 8), None, None, None),
        ("M3", "施工中", "李工", D(2025, 10, 8), None, None, None),
        ("M4", None, None, None, None, None, None),
    ), {"M1", "M2", "M3", "M4"}, today=D(2025, 11, 1))
    assert [(v.patch_id, v.verdict) for v in plan.verdicts] == [("M1", "accepted"), ("M2", "rejected")]
    m1 = plan.verdicts[0]
    assert m1.restored_m2 == 1250 and m1.attachments == ("a.jpg", "b.jpg") and m1.inspected_on == D(2025, 10, 8)
    assert all("rows [4, 5] for the same 核查日期" in r for r in plan.rejected["reason"])
    assert list(plan.skipped["reason"]) == ["not filled in (未填写)"]
    assert set(VERDICTS.values()) == {"accepted", "rejected", "in_progress", "not_started", "degraded"}


def test_a_verdict_is_compared_with_the_nearest_usable_observation():
    h = pd.DataFrame({
        "patch_id": ["a"] * 4,
        "date_after": [D(2024, 9, 1), D(2025, 3, 1), D(2025, 9, 1), D(2025, 10, 20)],
        "status": ["in_progress", "in_progress", "restored", "insufficient_data"],
        "restoration_rate": [0.5, 0.7, 0.9, 0.95], "fvc_after": [0.3, 0.4, 0.6, 0.7], "alerts": ""})
    v = pd.DataFrame({"patch_id": ["a", "a", "b"], "verdict": ["accepted", "in_progress", "accepted"],
                      "inspected_on": [D(2025, 10, 15), D(2025, 6, 1), D(2025, 10, 1)]})
    r = verdict_agreement(v, h)
    t = r.table
    # 2025-10-15: the 10-20 observation is cloudy; 09-01 is nearest (-44 d)
    assert t.loc[0, "imagery_date"] == D(2025, 9, 1) and t.loc[0, "days_apart"] == -44 and t.loc[0, "agree"]
    # 2025-06-01: 03-01 (-92 d) and 09-01 (+92 d) tie: the earlier one
    assert t.loc[1, "imagery_date"] == D(2025, 3, 1) and t.loc[1, "same_class"] and t.loc[1, "agree"]
    assert not t.loc[2, "compared"] and "no usable observation" in t.loc[2, "note"]
    assert r.n == 2 and r.agreement == 1.0 and r.class_agreement == 1.0
    far = verdict_agreement(v.iloc[[0]], h, max_days=30)
    assert far.n == 0 and "44 days away" in far.table.loc[0, "note"] and "no verdict compared" in str(far)


def test_kappa_by_hand():
    # 10 mines: field restored / imagery restored = 4 yes-yes, 1 yes-no, 1 no-yes, 4 no-no
    pairs = [(True, True)] * 4 + [(True, False)] + [(False, True)] + [(False, False)] * 4
    h = pd.DataFrame({"patch_id": [f"m{i}" for i in range(10)], "date_after": [D(2025, 9, 1)] * 10,
                      "status": ["restored" if im else "in_progress" for _, im in pairs],
                      "restoration_rate": 0.5, "fvc_after": 0.5, "alerts": ""})
    v = pd.DataFrame({"patch_id": [f"m{i}" for i in range(10)],
                      "verdict": ["accepted" if f else "rejected" for f, _ in pairs],
                      "inspected_on": [D(2025, 9, 10)] * 10})
    r = verdict_agreement(v, h)
    po, pe = 0.8, (5 * 5 + 5 * 5) / 100
    assert r.agreement == pytest.approx(po) and r.kappa == pytest.approx((po - pe) / (1 - pe))
    assert r.confusion.to_numpy().tolist() == [[4, 1], [1, 4]]
    assert len(r.disagreements) == 2


def test_read_verdicts_errors(tmp_path):
    from ecopatch.errors import FieldCheckError

    with pytest.raises(FieldCheckError, match="does not exist"):
        read_verdicts(tmp_path / "none.xlsx")
    (tmp_path / "v.txt.json").write_text("{}")
    with pytest.raises(FieldCheckError, match="cannot read verdicts from a .json file"):
        read_verdicts(tmp_path / "v.txt.json")
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["图斑编号", "核查结论"])
    wb.save(tmp_path / "cases.xlsx")
    with pytest.raises(FieldCheckError, match="no sheet named '修复核查'.*矿山编号 and 核查结论"):
        read_verdicts(tmp_path / "cases.xlsx")
