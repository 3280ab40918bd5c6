"""ecopatch.options: each option defined once, and the API, the configuration and the CLI made from it."""

import inspect
from dataclasses import fields

import click
import pytest
from click.testing import CliRunner

import ecopatch
from ecopatch.analyses.joint import assess_and_detect
from ecopatch.cli.assess import assess
from ecopatch.cli.detect import detect
from ecopatch.cli.main import cli
from ecopatch.errors import ConfigError
from ecopatch.options import (
    WINDOWS,
    AssessOptions,
    DetectOptions,
    RunOptions,
    WindowOptions,
    info,
    option_fields,
    resolve_options,
)
from ecopatch.run import config as run_config


@pytest.mark.parametrize("func, cls", [(ecopatch.detect_changes, DetectOptions),
                                       (ecopatch.assess_restoration, AssessOptions)])
def test_the_keyword_defaults_are_the_fields_defaults(func, cls):
    params = inspect.signature(func).parameters
    for f in fields(cls):
        assert params[f.name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[f.name].default == f.default, f.name
    assert params["options"].default is None


@pytest.mark.parametrize("func, block", [
    (ecopatch.detect_changes, WINDOWS.block), (assess_and_detect, WINDOWS.block),
    (ecopatch.analyses.encroachment.detection_pass, WINDOWS.block),
    # an assessment on its own chooses its windows from the files (assessment_block), from WINDOWS.block up
    (ecopatch.assess_restoration, None), (ecopatch.analyses.restoration.assessment_pass, None),
])
def test_window_defaults_come_from_one_place(func, block):
    params = inspect.signature(func).parameters
    assert params["block"].default == block and WINDOWS.block == 512
    assert params["max_source_px"].default == WINDOWS.max_source_px


def test_imagery_first_then_polygons():
    def first(func, n):
        return list(inspect.signature(func).parameters)[:n]

    assert first(ecopatch.assess_restoration, 3) == ["before", "after", "mines"]
    assert first(ecopatch.detect_changes, 3) == ["before", "after", "reserves"]
    assert first(assess_and_detect, 4) == ["before", "after", "mines", "reserves"]
    assert first(ecopatch.patch_statistics, 2) == ["raster", "patches"]


def test_keywords_that_differ_from_their_default_replace_the_options_fields():
    base = DetectOptions(margin_m=50.0, include_gain=False)
    assert resolve_options(DetectOptions, None, {"margin_m": 0.0}) == DetectOptions()
    assert resolve_options(DetectOptions, base, {"margin_m": 0.0, "include_gain": True}) is base
    got = resolve_options(DetectOptions, base, {"margin_m": 20.0, "min_area_m2": None, "block": 64})
    assert got == DetectOptions(margin_m=20.0, include_gain=False, min_area_m2=None)
    with pytest.raises(ConfigError, match="give a DetectOptions"):
        resolve_options(DetectOptions, AssessOptions(), {})


@pytest.mark.parametrize("make, message", [
    (lambda: DetectOptions(margin_m=-1), r"DetectOptions.margin_m = -1.0: must be a number >= 0 m"),
    (lambda: DetectOptions(min_area_m2=float("nan")), "minimum mapping unit nan"),
    (lambda: DetectOptions(min_area_mu=-2), "minimum mapping unit -2 mu"),
    (lambda: DetectOptions(normalize="rnn"), r"normalize = 'rnn': must be one of 'auto', 'rrn', 'none'"),
    (lambda: DetectOptions(max_flagged_share=0.0), r"max_flagged_share = 0.0: must be a number in \(0, 1\]"),
    (lambda: AssessOptions(edge="soft"), "use 'unmix' or 'uniform'"),
    (lambda: WindowOptions(block=8), r"WindowOptions.block = 8: must be a whole number in \[16, 8192\] pixels"),
    (lambda: RunOptions(baseline="latest"), "RunOptions.baseline = 'latest': must be one of"),
    (lambda: RunOptions(history_scenes=2.5), "must be a whole number in"),
])
def test_bad_values_name_the_option_and_what_is_allowed(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_every_field_has_help_and_every_flag_is_on_its_command():
    for cls in (DetectOptions, AssessOptions, WindowOptions, RunOptions):
        for f, meta in option_fields(cls):
            assert meta.help, f"{cls.__name__}.{f.name} has no help"
    for cmd, cls in ((detect, DetectOptions), (assess, AssessOptions)):
        flags = {o for p in cmd.params for o in p.opts + p.secondary_opts}
        for _f, meta in option_fields(cls):
            if meta.flag:
                for flag in meta.flag.split("/"):
                    assert flag in flags, (cmd.name, flag)


def test_cli_options_carry_the_fields_bounds_and_defaults():
    params = {p.name: p for p in detect.params}
    margin = params["margin_m"]
    assert margin.default == DetectOptions().margin_m
    assert isinstance(margin.type, click.FloatRange) and margin.type.min == 0
    share = params["max_flagged_share"]
    assert share.type.min == 0 and share.type.min_open and share.type.max == 1
    assert isinstance(params["normalize"].type, click.Choice)
    assert params["block"].default == WINDOWS.block and params["block"].type.max == 8192
    res = CliRunner().invoke(cli, ["detect", "--before", ".", "--after", ".", "--out", "x.gpkg",
                                   "--max-flagged-share", "1.5"])
    assert res.exit_code == 2 and "--max-flagged-share" in res.output


def test_the_configuration_keys_are_the_fields():
    for section, cls in run_config._CLASSES.items():
        assert set(run_config._SECTIONS[section]) == {f.name for f in fields(cls)}
    # a key shared with the analyses takes its bounds and help from the analysis' options
    detection = {f.name: f for f in fields(run_config.DetectionConfig)}
    for name in ("margin_m", "normalize", "clouds", "max_flagged_share", "simplify_m", "zone_field"):
        assert info(detection[name]) is info({f.name: f for f in fields(DetectOptions)}[name])
        assert detection[name].default == getattr(DetectOptions(), name)
    run = {f.name: f for f in fields(RunOptions)}
    assert info(run["block"]) is info({f.name: f for f in fields(WindowOptions)}["block"])


def test_the_configuration_gives_the_analyses_options(tmp_path):
    section = run_config.DetectionConfig(min_area=1.0, min_area_unit="mu", margin_m=30.0, include_gain=False,
                                         change={"z_seed": 6.0, "tolerance_px": 0})
    opts = section.detect_options()
    assert opts.units_m2(100.0) == pytest.approx((666.6667, 400.0), rel=1e-6)  # core: 400 m² whatever the unit
    mu = run_config.DetectionConfig(min_area=1.0, core_min_area=0.3, min_area_unit="mu").detect_options()
    assert mu.units_m2(100.0) == pytest.approx((666.6667, 200.0), rel=1e-6)
    assert opts.margin_m == 30.0 and not opts.include_gain
    assert run_config.DetectionConfig().detect_options().units_m2(100.0) == (1000.0, 400.0)  # "auto" at 10 m
    assert opts.params is not None and opts.params.z_seed == 6.0 and opts.params.tolerance_px == 0
    a = run_config.AssessmentConfig(edge="uniform", direction_field=None, start_rate=0.2).assess_options()
    assert a.edge == "uniform" and a.direction_field is None and a.rules is not None and a.rules.start_rate == 0.2
