"""Run configuration of the two baselines, the mines' references and the loss and stall thresholds."""

from __future__ import annotations

import datetime as dt

import pytest

from ecopatch.errors import ConfigError
from ecopatch.run.config import load_config

from .test_config import site, with_good, write  # noqa: F401 - the fixture is used by name


def test_reference_and_history_keys(site):  # noqa: F811
    cfg = load_config(write(site, with_good("""
        [assessment]
        reference = 2021-09-18
        reference_field = "治理开始年份"
        target_year_field = "none"
        target_rate_field = "目标"
        min_loss_m2 = 200
        stall_after = 4
        stall_tolerance = 0.01
        stall_min_days = 365
        [assessment.max_loss]
        cropland = 0.5
        [run]
        baseline = "previous"
        season_window_days = 30
        """)))
    a = cfg.assessment
    assert a.reference == dt.date(2021, 9, 18) and a.reference_field == "治理开始年份"
    assert a.target_year_field is None and a.target_rate_field == "目标"
    rules = a.status_rules()
    assert rules.max_loss["cropland"] == 0.5 and rules.max_loss["forest"] == 0.05
    assert (rules.min_loss_m2, rules.stall_after, rules.stall_tolerance, rules.stall_min_days) == (200, 4, 0.01, 365)
    assert cfg.run.baseline == "previous" and cfg.run.season_window_days == 30
    d = cfg.to_dict()
    assert d["assessment"]["reference"] == "2021-09-18" and d["assessment"]["max_loss"] == {"cropland": 0.5}
    scene = load_config(write(site, with_good('[assessment]\nreference = "S2A_MSIL2A_20210918T023551"\n'), "b.toml"))
    assert scene.assessment.reference == "S2A_MSIL2A_20210918T023551"
    text = load_config(write(site, with_good('[assessment]\nreference = "2021-09-18"\n'), "c.toml"))
    assert text.assessment.reference == dt.date(2021, 9, 18)


@pytest.mark.parametrize("extra, match", [
    ("[assessment]\nreference = 5\n", r'\[assessment\] reference = 5: "earliest", a date'),
    ("[assessment]\nstall_after = 1\n", r"\[assessment\] stall_after = 1: must be an integer in \[2, 100\]"),
    ("[assessment.max_loss]\njungle = 0.1\n", r'unknown key "jungle"'),
    ("[assessment]\nmin_loss_m2 = -1\n", r"min_loss_m2 = -1: must be a number >= 0 m²"),
    ("[run]\nbaseline = \"seasonal\"\n",
     r'must be one of "season", "previous", "best", "fixed" \(did you mean "season"'),
    ("[run]\nseason_window_days = 200\n", r"season_window_days = 200: must be an integer in \[1, 182\]"),
])
def test_bad_values_are_named(site, extra, match):  # noqa: F811
    with pytest.raises(ConfigError, match=match):
        load_config(write(site, with_good(extra)))
