"""Scheduled runs learn each pixel's seasonal range from the earlier scenes of the imagery folder.

``[run] history_scenes`` earlier scenes (dated before the encroachment baseline) go to the
detection as ``history=``; the manifest names them.  Over seasonal cropland, a winter scene
compared with an autumn baseline flags the ploughed fields without them and not with them.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from ecopatch.errors import ConfigError
from ecopatch.run.baseline import choose_history
from ecopatch.run.config import load_config
from ecopatch.run.discovery import SceneRef
from ecopatch.run.manifest import MANIFEST
from ecopatch.run.outcome import ExitCode
from ecopatch.run.pipeline import run_pipeline

from .runsite import make_site
from .test_config import site, with_good, write  # noqa: F401 - the fixture is used by name

AFTER = "2024-12-10"
HISTORY = ("2022-12-12", "2023-09-15")


def sref(sid: str, y: int, m: int, d: int = 1) -> SceneRef:
    return SceneRef(sid, dt.date(y, m, d), Path(sid))


def test_history_is_the_most_recent_usable_scenes_before_the_baseline():
    a, b, c, d, e = (sref(n, y, m) for n, y, m in (("a", 2022, 3), ("b", 2022, 9), ("c", 2023, 3), ("d", 2023, 9),
                                                    ("e", 2024, 3)))
    scenes = [a, b, c, d, e]
    assert choose_history(d, scenes, max_scenes=4) == (a, b, c)
    assert choose_history(d, scenes, max_scenes=2) == (b, c)  # the most recent, oldest first
    assert choose_history(d, scenes, max_scenes=2, unusable={"c"}) == (a, b)  # a skipped run's scene is not taken
    assert choose_history(d, scenes, max_scenes=0) == ()
    # never a scene after the baseline: it may already show the change the new scene is compared for
    assert e not in choose_history(d, scenes, max_scenes=10) and d not in choose_history(d, scenes, max_scenes=10)
    assert choose_history(a, scenes) == ()


def test_history_scenes_key(site):  # noqa: F811
    assert load_config(write(site, with_good(""))).run.history_scenes == 4
    cfg = load_config(write(site, with_good("[run]\nhistory_scenes = 0\n"), "b.toml"))
    assert cfg.run.history_scenes == 0 and cfg.to_dict()["run"]["history_scenes"] == 0
    with pytest.raises(ConfigError, match=r"history_scenes = -1: must be an integer in \[0, 50\]"):
        load_config(write(site, with_good("[run]\nhistory_scenes = -1\n"), "c.toml"))
    with pytest.raises(ConfigError, match=r"history_scenes = 2.5: must be an integer"):
        load_config(write(site, with_good("[run]\nhistory_scenes = 2.5\n"), "d.toml"))


@pytest.fixture(scope="module")
def seasonal_sample(tmp_path_factory):
    """Sample data over seasonal cropland: 2021-09 and 2023-09 (autumn), 2022-12 and 2024-12 (winter)."""
    from ecopatch.data.datasets import make_sample_data

    root = tmp_path_factory.mktemp("seasonal")
    return make_sample_data(root, drone=False, seasonal_cropland=0.8, dates={"after": AFTER}, history=list(HISTORY))


def _site(root: Path, source: Path, history_scenes: int) -> Path:
    # "previous": the 2024-12 scene is compared with 2023-09, another season, as when no scene of the
    # same season exists; the fields ploughed in winter then look like new bare soil
    return make_site(root, source, fieldcheck=False, scenes=[p.stem for p in sorted(source.glob("*.SAFE"))],
                     extra_run=f'baseline = "previous"\nhistory_scenes = {history_scenes}')


@pytest.fixture(scope="module")
def winter_runs(seasonal_sample, tmp_path_factory):
    out = {}
    for n in (0, 4):
        cfg = load_config(_site(tmp_path_factory.mktemp(f"hist{n}") / "site", seasonal_sample.root, n))
        res = run_pipeline(cfg, scenes=[AFTER], progress=False)
        assert res.exit_code == ExitCode.OK, res.summary()
        (o,) = res.outcomes
        out[n] = (o, json.loads((o.folder / MANIFEST).read_text(encoding="utf-8")),
                  gpd.read_file(o.folder / "results" / "patches.gpkg"))
    return out


def test_manifest_names_the_history_scenes(winter_runs):
    o, m, _ = winter_runs[4]
    assert o.baseline.date == dt.date(2023, 9, 15)
    h = m["history"]
    # the scenes before the 2023-09-15 baseline: the 2021 sample date and 2022-12-12
    assert [s["date"] for s in h["scenes"]] == ["2021-09-18", "2022-12-12"]
    assert h["max_scenes"] == 4 and h["used"] == ["2021-09-18", "2022-12-12"] and h["left_out"] == 0
    for s in h["scenes"]:
        assert Path(s["path"]).name.startswith(s["id"])
        assert m["inputs"][f"history {s['id']}"]["sha256"]  # checksummed like the other inputs
    assert m["parameters"]["run"]["history_scenes"] == 4
    off = winter_runs[0][1]["history"]
    assert off["max_scenes"] == 0 and off["scenes"] == [] and "used" not in off


def test_history_removes_the_seasonal_false_patches(seasonal_sample, winter_runs):
    data = seasonal_sample
    pseudo = gpd.read_file(data.pseudo_changes)
    enc = gpd.read_file(data.encroachments)
    enc = enc[~enc["is_decoy"].astype(bool)]

    def counts(patches):
        g = patches.geometry.to_numpy()
        fields = shapely.union_all(pseudo[pseudo["changed"].astype(bool)].to_crs(patches.crs).geometry.to_numpy())
        on_fields = shapely.area(shapely.intersection(g, fields)) > 0.5 * shapely.area(g)
        real = shapely.intersects(g, shapely.union_all(enc.to_crs(patches.crs).geometry.to_numpy()))
        return int(on_fields.sum()), int(real.sum())

    fields_off, real_off = counts(winter_runs[0][2])
    fields_on, real_on = counts(winter_runs[4][2])
    # measured: 17 patches on ploughed fields without history, 0 with; 10 and 9 patches on encroachments
    assert fields_off >= 5 and fields_on <= fields_off // 5
    assert real_on >= real_off - 2 and real_on >= 5
