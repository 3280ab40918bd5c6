"""Run configuration: a good config loads into typed values; each bad one names its key and what is allowed."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

import ecopatch
import ecopatch.options
from ecopatch.errors import ConfigError
from ecopatch.run.config import RunConfig, load_config, parse_config

GOOD = """
[inputs]
imagery = "imagery"
scene_pattern = "*.SAFE"
mines = "mines.gpkg"
mines_id_field = "矿山编号"
reserves = "reserves.gpkg"

[outputs]
dir = "runs"
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "imagery").mkdir()
    (tmp_path / "mines.gpkg").write_bytes(b"")
    (tmp_path / "reserves.gpkg").write_bytes(b"")
    (tmp_path / "approved.gpkg").write_bytes(b"")
    return tmp_path


def write(site: Path, text: str, name: str = "ecopatch.toml") -> Path:
    p = site / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def with_good(extra: str) -> str:
    """GOOD plus more sections (TOML allows a section only once, so `extra` must not repeat them)."""
    return GOOD + textwrap.dedent(extra)


def test_minimal_config_gets_defaults(site):
    cfg = load_config(write(site, GOOD))
    assert isinstance(cfg, RunConfig)
    assert cfg.inputs.imagery == site / "imagery"  # relative to the config file's folder
    assert cfg.inputs.scene_pattern == ("*.SAFE",)
    assert cfg.inputs.mines_id_field == "矿山编号"
    assert cfg.outputs.dir == site / "runs"
    assert cfg.outputs.ledger == site / "runs" / "ledger.gpkg"
    assert cfg.outputs.formats == ("gpkg", "csv", "xlsx")
    assert cfg.detection.min_area_m2 == "auto" and cfg.detection.detect_options().core_min_area_m2 == 400.0
    assert cfg.detection.detect_options() == ecopatch.options.DetectOptions(params=ecopatch.ChangeParams())
    assert cfg.detection.zone_field == "auto"
    assert cfg.assessment.edge == "unmix"
    assert cfg.run.baseline == "season" and cfg.run.season_window_days == 45 and cfg.run.reference_date is None
    assert cfg.assessment.reference == "earliest" and cfg.assessment.reference_field == "auto"
    assert cfg.path == (site / "ecopatch.toml").resolve()


def test_full_config_maps_onto_the_library(site):
    cfg = load_config(write(site, with_good("""
        [detection]
        min_area = 0.6
        min_area_unit = "mu"
        margin_m = 50
        exclude = "approved.gpkg"
        zone_field = "none"
        name_field = "保护地名称"
        clouds = "none"
        [detection.change]
        z_seed = 9
        tolerance_px = 2
        [assessment]
        direction_field = "修复方向"
        edge = "uniform"
        start_rate = 0.1
        [assessment.done_rate]
        cropland = 0.5
        [run]
        baseline = "fixed"
        reference_date = 2021-09-18
        scheduler = "synchronous"
        block = 256
        """)))
    assert cfg.detection.min_area_m2 == pytest.approx(400.0)
    assert cfg.detection.zone_field is None
    assert cfg.detection.exclude == site / "approved.gpkg"
    assert cfg.detection.change_params().z_seed == 9.0 and cfg.detection.change_params().tolerance_px == 2
    assert cfg.detection.clouds == "none"
    rules = cfg.assessment.status_rules()
    assert rules.done_rate["cropland"] == 0.5 and rules.done_rate["forest"] == 0.85
    assert rules.start_rate == 0.1
    assert cfg.run.reference_date == dt.date(2021, 9, 18)
    assert cfg.run.scheduler == "synchronous"
    d = cfg.to_dict()
    assert d["run"]["reference_date"] == "2021-09-18" and d["inputs"]["imagery"] == str(site / "imagery")


def test_paths_expand_home_and_variables(site, monkeypatch):
    monkeypatch.setenv("ECOPATCH_SITE", str(site))
    text = GOOD.replace('imagery = "imagery"', 'imagery = "${ECOPATCH_SITE}/imagery"')
    assert load_config(write(site, text)).inputs.imagery == site / "imagery"


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        # unknown keys and sections, with a suggestion
        ("[detection]\nmin_aera = 400\n", ['[detection] unknown key "min_aera"', 'did you mean "min_area"']),
        ("[detections]\nmin_area = 400\n", ["unknown section [detections]", "did you mean [detection]"]),
        ("[run]\nbaselin = 'best'\n", ['[run] unknown key "baselin"', 'did you mean "baseline"']),
        ("[assessment.done_rate]\nforrest = 0.8\n", ['unknown key "forrest"', 'did you mean "forest"']),
        # wrong types
        ("[detection]\nmin_area = \"400\"\n", ['[detection] min_area = "400"', "must be a number", "not a string"]),
        ("[outputs_x]\n", ["unknown section [outputs_x]"]),
        ("[run]\nblock = 4.5\n", ["[run] block = 4.5", "must be an integer in [16, 8192]"]),
        ("[detection]\ninclude_gain = \"yes\"\n", ["[detection] include_gain", "true or false"]),
        ("[run]\nreference_date = \"18/09/2021\"\nbaseline = \"fixed\"\n", ["[run] reference_date", "YYYY-MM-DD"]),
        # out of range
        ("[detection]\nmin_area = -5\n", ["[detection] min_area = -5", "must be a number >= 0"]),
        ("[detection.change]\ntype_share = 1.5\n", ["[detection.change] type_share = 1.5", "in (0, 1]"]),
        ("[detection.change]\nfvc_drop = 0.3\n", ["unknown key \"fvc_drop\"", "z_seed"]),
        ("[detection.change]\nz_seed = 2\nz_grow = 4\n", ["z_grow <= z_seed"]),
        ("[run]\nmin_clear_fraction = 2\n", ["[run] min_clear_fraction = 2", "in [0, 1]"]),
        # enumerations
        ("[detection]\nmin_area_unit = \"acre\"\n", ['min_area_unit = "acre"', '"m2", "mu", "ha"']),
        ("[run]\nbaseline = \"latest\"\n", ['[run] baseline = "latest"', '"previous", "best", "fixed"']),
        ("[detection]\nnormalize = \"rnn\"\n", ['normalize = "rnn"', 'did you mean "rrn"']),
        ("[run]\nscheduler = \"thread\"\n", ['scheduler = "thread"', "tcp://", 'did you mean "threads"']),
        ("[inputs2]\n", ["unknown section [inputs2]"]),
        ("[assessment]\nedge = \"soft\"\n", ['edge = "soft"', '"unmix", "uniform"']),
        # cross-key rules
        ("[run]\nbaseline = \"fixed\"\n", ['baseline = "fixed" needs [run] reference_date']),
        ("[run]\nreference_date = 2021-09-18\n", ['only used with baseline = "fixed"']),
        # a missing input path is named, resolved against the config's folder
        ("[detection]\nexclude = \"nope.gpkg\"\n", ['[detection] exclude = "nope.gpkg"', "does not exist",
                                                    "config file's folder"]),
    ],
)
def test_bad_config_names_the_key(site, extra, fragments):
    with pytest.raises(ConfigError) as ei:
        load_config(write(site, with_good(extra)))
    for f in fragments:
        assert f in str(ei.value), (f, str(ei.value))


def test_formats_and_sensor_are_checked(site):
    text = GOOD.replace('dir = "runs"', 'dir = "runs"\nformats = ["gpkg", "xlxs"]')
    text = text.replace('scene_pattern = "*.SAFE"', 'scene_pattern = "*.SAFE"\nsensor = "sentinel3"')
    with pytest.raises(ConfigError) as ei:
        load_config(write(site, text))
    msg = str(ei.value)
    assert "2 problems" in msg
    assert '"xlxs" not allowed' in msg and 'did you mean "xlsx"' in msg
    assert '[inputs] sensor = "sentinel3"' in msg and "sentinel2_l2a" in msg


def test_missing_required_keys_and_paths(site):
    with pytest.raises(ConfigError) as ei:
        load_config(write(site, '[inputs]\nimagery = "elsewhere"\n'))
    msg = str(ei.value)
    assert '[inputs] imagery = "elsewhere"' in msg and "does not exist" in msg
    assert "[inputs] mines is required" in msg
    assert "[inputs] reserves is required" in msg
    assert "[outputs] dir is required" in msg


def test_output_paths_of_the_wrong_kind(site):
    (site / "afile").write_text("x")
    with pytest.raises(ConfigError, match=r"\[outputs\] dir = .*afile.*is not a folder"):
        load_config(write(site, GOOD.replace('dir = "runs"', 'dir = "afile"')))
    with pytest.raises(ConfigError, match=r"\[outputs\] ledger = .*is a folder"):
        load_config(write(site, GOOD.replace('dir = "runs"', 'dir = "runs"\nledger = "imagery"')))
    with pytest.raises(ConfigError, match="is an input layer"):
        load_config(write(site, GOOD.replace('dir = "runs"', 'dir = "runs"\nledger = "mines.gpkg"')))


def test_not_toml_and_missing_file(site):
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(write(site, "[inputs\nimagery = 1\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(site / "missing.toml")


def test_top_level_key_outside_a_section(site):
    with pytest.raises(ConfigError, match='unknown top-level key "dir".*sections'):
        load_config(write(site, 'dir = "runs"\n' + GOOD))


def test_overrides_from_the_command_line(site, monkeypatch):
    monkeypatch.chdir(site)
    cfg = load_config(write(site, GOOD))
    o = cfg.with_overrides(out_dir="elsewhere", scheduler="tcp://10.0.0.5:8786")
    assert o.outputs.dir == site / "elsewhere"
    assert o.outputs.ledger == site / "elsewhere" / "ledger.gpkg"  # the default ledger follows
    assert o.run.scheduler == "tcp://10.0.0.5:8786"
    assert o.with_overrides(ledger="l.gpkg").outputs.ledger == site / "l.gpkg"
    with pytest.raises(ConfigError, match="--scheduler"):
        cfg.with_overrides(scheduler="fast")
    named = load_config(write(site, GOOD.replace('dir = "runs"', 'dir = "runs"\nledger = "my.gpkg"')))
    assert named.with_overrides(out_dir="x").outputs.ledger == site / "my.gpkg"  # a named ledger stays


def test_parse_config_directly(site):
    cfg = parse_config({"inputs": {"imagery": "imagery", "mines": "mines.gpkg", "reserves": "reserves.gpkg"},
                        "outputs": {"dir": "out"}}, base=site)
    assert cfg.outputs.dir == site / "out" and cfg.path is None
    with pytest.raises(ConfigError, match="must be a section"):
        parse_config({"inputs": 3}, base=site)


def test_sample_config_is_valid():
    root = Path(__file__).resolve().parents[1] / "sample_data"
    if not (root / "ecopatch.toml").exists() or not (root / "mines.gpkg").exists():
        pytest.skip("sample_data/ not present in this checkout")
    cfg = load_config(root / "ecopatch.toml")
    assert cfg.inputs.scene_pattern == ("*.SAFE",)
    assert not str(cfg.outputs.dir.resolve()).startswith(str(root.resolve()))  # outputs outside sample_data/


# --- how to read each scene: [[inputs.products]] -----------------------------------------------------
PRODUCTS = """
[[inputs.products]]
pattern = "taizhou_*.tif"
sensor = "landsat7"
bands = {blue = 1, green = 2, red = 3, nir = 4, swir1 = 5, swir2 = 6}
scale = 0.00392157
nodata = 0

[[inputs.products]]
pattern = "GF2_*.tar.gz"
dem = "approved.gpkg"
"""


def test_product_rules_load_and_give_open_scene_keywords(site):
    import json

    cfg = load_config(write(site, GOOD + PRODUCTS))
    rules = cfg.inputs.products
    assert [r.pattern for r in rules] == ["taizhou_*.tif", "GF2_*.tar.gz"]
    assert rules[0].sensor == "landsat_etm_c2l2" and rules[0].bands["nir"] == 4 and rules[0].scale == 0.00392157
    opts = cfg.inputs.open_options(site / "imagery" / "taizhou_2000-03-17_L7ETM.tif")
    assert opts["sensor"] == "landsat_etm_c2l2" and opts["scale"] == 0.00392157 and opts["nodata"] == 0
    assert cfg.inputs.open_options("GF2_PMS1_x.tar.gz")["dem"] == site / "approved.gpkg"
    assert cfg.inputs.open_options("S2A_MSIL2A_x.SAFE") == {"sensor": None}
    json.dumps(cfg.to_dict())  # manifests
    assert cfg.to_dict()["inputs"]["products"][0]["bands"]["red"] == 3


@pytest.mark.parametrize("rule, message", [
    ('sensor = "landsat7"', "pattern is required"),
    ('pattern = "*"\nbands = {infrared = 4}', r'"infrared" is not a band role'),
    ('pattern = "*"\nbands = {nir = 0}', "must be a band number"),
    ('pattern = "*"\nscale = "1/255"', "scale"),
    ('pattern = "*"\nsensr = "naip"', r'unknown key "sensr" \(did you mean "sensor"\?\)'),
    ('pattern = "*"\nsensor = "worldview"', "sensor"),
    ('pattern = "*"\ndem = "nowhere.tif"', "does not exist"),
])
def test_bad_product_rules_name_the_key(site, rule, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(site, GOOD + "\n[[inputs.products]]\n" + rule + "\n"))


def test_retired_thresholds_key_loads_with_a_warning(site):
    from ecopatch.errors import EcopatchWarning

    with pytest.warns(EcopatchWarning, match="thresholds is no longer used"):
        cfg = load_config(write(site, with_good("""
            [detection]
            thresholds = "otsu"
            """)))
    assert cfg.detection.change_params() == ecopatch.ChangeParams()
