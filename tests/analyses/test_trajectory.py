"""A mine's history: rebound (反弹) and stalled (停滞) from earlier observations, and its series."""

from __future__ import annotations

import datetime as dt
import doctest

import numpy as np
import pandas as pd
import pytest

import ecopatch.analyses.trajectory
from ecopatch.analyses.restoration import StatusRules
from ecopatch.analyses.trajectory import mine_status, plan_of, trajectory
from ecopatch.errors import InputDataError

REF = "S2A_REF"


def history(rates, veg, *, dates=None, statuses=None, ref=REF, pid="M1", observed=40_000.0):
    n = len(rates)
    dates = dates or [dt.date(2022 + i, 9, 1) for i in range(n)]
    return pd.DataFrame({
        "patch_id": pid, "date_after": dates, "date_before": dt.date(2021, 9, 1), "reference_scene": ref,
        "status": statuses or ["in_progress"] * n, "restoration_rate": rates, "observed_m2": observed,
        "veg_after_m2": veg, "fvc_before": 0.05, "fvc_after": np.linspace(0.2, 0.4, n),
        "restored_m2": [r * 30_000 for r in rates], "degraded_m2": 0.0, "alerts": "",
        "target_year": pd.array([2026] * n, dtype="Int64"), "target_rate": 0.8,
    })


def now(date, rate, veg, *, status="in_progress", ref=REF, pid="M1", direction="forest", observed=40_000.0):
    return pd.DataFrame([{
        "patch_id": pid, "date_after": date.isoformat(), "date_before": "2021-09-01", "reference_scene": ref,
        "status": status, "direction": direction, "restoration_rate": rate, "observed_m2": observed,
        "veg_after_m2": veg, "degraded_m2": 0.0, "alerts": "", "target_year": 2030, "target_rate": np.nan,
    }])


def test_doctests():
    assert doctest.testmod(ecopatch.analyses.trajectory, raise_on_error=False).failed == 0


def test_rebound_when_the_vegetated_share_falls_by_the_loss_threshold():
    h = history([0.40, 0.60], [16_000, 24_000])
    # forest: 5 % of 40 000 m² = 2 000 m²
    r = mine_status(now(dt.date(2024, 9, 1), 0.55, 22_100), h)
    assert r["alerts"].iloc[0] == "" and r["previous_date"].iloc[0] == dt.date(2023, 9, 1)
    r = mine_status(now(dt.date(2024, 9, 1), 0.40, 21_900), h)
    assert r["alerts"].iloc[0] == "rebound" and r["alerts_zh"].iloc[0] == "反弹"
    assert r["status"].iloc[0] == "in_progress"  # a flag: the figures stand
    # cropland tolerates 30 %: the same fall raises nothing
    assert mine_status(now(dt.date(2024, 9, 1), 0.40, 21_900, direction="cropland"), h)["alerts"].iloc[0] == ""


def test_rebound_compares_shares_of_the_observed_area():
    # half the mine under cloud now: the same vegetated share, half the area, is no loss
    h = history([0.6], [24_000])
    r = mine_status(now(dt.date(2024, 9, 1), 0.6, 12_000, observed=20_000.0), h)
    assert r["alerts"].iloc[0] == ""


def test_only_earlier_rows_of_the_same_reference_count():
    h = history([0.60], [24_000], ref="OTHER")
    assert mine_status(now(dt.date(2024, 9, 1), 0.1, 4_000), h)["previous_date"].iloc[0] is None
    later = history([0.60], [24_000], dates=[dt.date(2025, 9, 1)])
    assert mine_status(now(dt.date(2024, 9, 1), 0.1, 4_000), later)["alerts"].iloc[0] == ""
    cloudy = history([0.60], [24_000], statuses=["insufficient_data"])
    assert mine_status(now(dt.date(2024, 9, 1), 0.1, 4_000), cloudy)["alerts"].iloc[0] == ""
    # rows without a reference scene are matched on the reference date
    old = history([0.60], [24_000], ref=None)
    assert mine_status(now(dt.date(2024, 9, 1), 0.1, 4_000, ref=None), old)["alerts"].iloc[0] == "rebound"


def test_stalled_needs_n_flat_observations_over_enough_time():
    rules = StatusRules()  # 3 observations, < 0.02 apart, over >= 180 days
    flat = history([0.400, 0.410], [16_000, 16_400])
    assert mine_status(now(dt.date(2024, 9, 1), 0.405, 16_200), flat, rules)["status"].iloc[0] == "stalled"
    assert mine_status(now(dt.date(2024, 9, 1), 0.425, 17_000), flat, rules)["status"].iloc[0] == "in_progress"
    # two observations only
    assert mine_status(now(dt.date(2024, 9, 1), 0.405, 16_200), flat.iloc[1:], rules)["status"].iloc[0] \
        == "in_progress"
    # three flat monthly scenes over a winter: too short to call a stall
    winter = history([0.40, 0.41], [16_000, 16_400], dates=[dt.date(2023, 11, 1), dt.date(2023, 12, 1)])
    assert mine_status(now(dt.date(2024, 1, 1), 0.405, 16_200), winter, rules)["status"].iloc[0] == "in_progress"
    quick = StatusRules(stall_min_days=0)
    assert mine_status(now(dt.date(2024, 1, 1), 0.405, 16_200), winter, quick)["status"].iloc[0] == "stalled"
    # a restored or a not-started mine is never "stalled"
    for s in ("restored", "not_started"):
        assert mine_status(now(dt.date(2024, 9, 1), 0.405, 16_200, status=s), flat, rules)["status"].iloc[0] == s
    longer = StatusRules(stall_after=4)
    assert mine_status(now(dt.date(2024, 9, 1), 0.405, 16_200), flat, longer)["status"].iloc[0] == "in_progress"


def test_no_history_leaves_the_assessment_as_it_is():
    n = now(dt.date(2024, 9, 1), 0.4, 16_000)
    for h in (None, history([0.4], [1.0]).iloc[:0]):
        r = mine_status(n, h)
        assert list(r["status"]) == ["in_progress"] and r["previous_date"].iloc[0] is None


def test_missing_columns_are_named():
    with pytest.raises(InputDataError, match=r"lacks \['veg_after_m2'\]"):
        mine_status(now(dt.date(2024, 9, 1), 0.4, 1.0).drop(columns="veg_after_m2"), None)
    with pytest.raises(InputDataError, match="history lacks"):
        mine_status(now(dt.date(2024, 9, 1), 0.4, 1.0), history([0.4], [1.0]).drop(columns="status"))


def test_trajectory_of_one_mine():
    h = pd.concat([history([0.3, 0.5], [12_000, 20_000]), history([0.9], [1.0], pid="M2")], ignore_index=True)
    t = trajectory(h, "M1")
    assert list(t["date"]) == [dt.date(2021, 9, 1), dt.date(2022, 9, 1), dt.date(2023, 9, 1)]
    assert list(t["is_reference"]) == [True, False, False]
    assert t["restoration_rate"].tolist() == [0.0, 0.3, 0.5] and t["fvc"].iloc[0] == pytest.approx(0.05)
    assert list(t["status"]) == ["reference", "in_progress", "in_progress"]
    assert plan_of(h, "M1") == (2026, 0.8) and plan_of(h, "nope") == (None, None)
    # rows against an older reference are left out: the series follows the latest one
    mixed = pd.concat([history([0.2], [1.0], ref="OLD", dates=[dt.date(2020, 9, 1)]), h], ignore_index=True)
    assert len(trajectory(mixed, "M1")) == 3
    with pytest.raises(InputDataError, match="no history for mine 'M9'"):
        trajectory(h, "M9")
