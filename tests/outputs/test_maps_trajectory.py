"""The mine card with its history (一矿一档) and the trajectory figure."""

from __future__ import annotations

import datetime as dt

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest

from ecopatch.errors import InputDataError
from ecopatch.outputs.maps import mine_card, mine_trajectory
from ecopatch.outputs.maps._trajectory import (
    GID_ALERT,
    GID_FVC,
    GID_RATE,
    GID_RESTORED,
    GID_TARGET_RATE,
    GID_TARGET_YEAR,
)
from tests.mapdata import all_text, assert_cjk_font, by_gid, legend_labels, render

MAX_PX = 20_000


def history(assessment, pid="YH-KS-006", target_rate=np.nan):
    """Three dates of one mine built from the sample's assessment: progress, then a loss."""
    row = assessment[assessment["patch_id"] == pid].iloc[0]
    rows = []
    for date, k, alerts in ((dt.date(2023, 9, 10), 0.6, ""), (dt.date(2024, 9, 12), 1.0, ""),
                            (dt.date(2025, 9, 15), 0.5, "rebound")):
        rows.append({
            "patch_id": pid, "date_after": date, "date_before": dt.date(2021, 9, 18),
            "reference_scene": row["reference_scene"], "status": "in_progress",
            "restoration_rate": row["restoration_rate"] * k, "restored_m2": row["restored_m2"] * k,
            "degraded_m2": 0.0, "fvc_before": row["fvc_before"], "fvc_after": row["fvc_after"] * k,
            "alerts": alerts, "target_year": row["target_year"], "target_rate": target_rate,
        })
    return pd.DataFrame(rows)


def _xdates(line):
    return [mdates.num2date(x).date() for x in line.get_xdata()]


def test_card_shows_the_trajectory(inputs, cjk):
    h = history(inputs.assessment, target_rate=0.8)
    fig = mine_card("YH-KS-006", inputs.assessment, inputs.before, inputs.after, max_pixels=MAX_PX, history=h)
    (fvc,) = by_gid(fig, GID_FVC)
    (rate,) = by_gid(fig, GID_RATE)
    # the series starts at the reference (rate 0), then one point per date
    assert _xdates(fvc) == [dt.date(2021, 9, 18), dt.date(2023, 9, 10), dt.date(2024, 9, 12), dt.date(2025, 9, 15)]
    np.testing.assert_allclose(rate.get_ydata(), [0.0, *h["restoration_rate"]])
    np.testing.assert_allclose(fvc.get_ydata()[1:], h["fvc_after"])
    assert fvc.get_ydata()[0] == pytest.approx(h["fvc_before"].iloc[0])
    bars = by_gid(fig, GID_RESTORED)
    np.testing.assert_allclose([b.get_height() for b in bars], h["restored_m2"])
    # the plan: completion by the end of 2024 (计划完成年份 of the sample), a target rate of 80 %
    (year,) = by_gid(fig, GID_TARGET_YEAR)
    assert mdates.num2date(year.get_xdata()[0]).date() == dt.date(2024, 12, 31)
    (target,) = by_gid(fig, GID_TARGET_RATE)
    assert target.get_ydata()[0] == 0.8
    (alert,) = by_gid(fig, GID_ALERT)
    assert len(alert.get_offsets()) == 1  # the 2025 rebound
    text = all_text(fig)
    assert "修复进程（一矿一档）" in text and "计划完成 2024年" in text and "目标修复率 80%" in text
    assert "预警" in text and "基准影像" in text
    assert {"植被覆盖度 FVC", "修复率", "已修复面积（平方米）"} <= set(legend_labels(fig))
    assert assert_cjk_font(fig, cjk) >= 20
    render(fig)


def test_card_without_history_has_no_trajectory(inputs):
    fig = mine_card("YH-KS-006", inputs.assessment, inputs.before, inputs.after, max_pixels=MAX_PX, lang="en")
    assert not by_gid(fig, GID_FVC)
    # a history of other mines only: no trajectory either
    fig = mine_card("YH-KS-006", inputs.assessment, inputs.before, inputs.after, max_pixels=MAX_PX, lang="en",
                    history=history(inputs.assessment, pid="YH-KS-004"))
    assert not by_gid(fig, GID_FVC)


def test_trajectory_figure_in_english_without_a_plan(inputs):
    h = history(inputs.assessment).assign(target_year=pd.array([None] * 3, dtype="Int64"), alerts="")
    fig = mine_trajectory(h, "YH-KS-006", lang="en")
    assert not by_gid(fig, GID_TARGET_YEAR) and not by_gid(fig, GID_TARGET_RATE) and not by_gid(fig, GID_ALERT)
    text = all_text(fig)
    assert "Restoration over time" in text and "Reference" in text and "In progress" in text
    render(fig)
    with pytest.raises(InputDataError, match="no history for mine 'NOPE'"):
        mine_trajectory(h, "NOPE")
