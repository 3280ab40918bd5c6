"""The scheduled run, in-process: discovery, baselines, the run lock, run folders, failures and skips."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ecopatch.errors import ConfigError, InputDataError, RunLockedError
from ecopatch.run.baseline import choose_baseline, reference_scene
from ecopatch.run.config import load_config
from ecopatch.run.discovery import SceneRef, discover_scenes
from ecopatch.run.lock import RunLock
from ecopatch.run.manifest import MANIFEST, completed_runs
from ecopatch.run.outcome import ExitCode, exit_code_for
from ecopatch.run.pipeline import run_pipeline

from .runsite import AFTER, BEFORE, LATER, add_later_scene, ledger_counts, make_site, sample_source


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return sample_source(tmp_path_factory)


@pytest.fixture
def site(tmp_path, source) -> Path:
    return make_site(tmp_path / "site", source)


def scene(sid: str, y: int, m: int, d: int = 1) -> SceneRef:
    return SceneRef(sid, dt.date(y, m, d), Path(sid))


# --------------------------------------------------------------------------- discovery


def test_discover_scenes_in_a_folder(site):
    img = site.parent / "imagery"
    (img / "notes.txt").write_text("not a scene")
    (img / "misc").mkdir()
    (img / ".hidden").mkdir()
    found = discover_scenes(img, ["*.SAFE"])
    assert [s.scene_id for s in found.scenes] == [BEFORE, AFTER]
    assert [s.date for s in found.scenes] == [dt.date(2021, 9, 18), dt.date(2024, 9, 12)]
    assert found.scenes[1].sensor == "sentinel2_l2a" and not found.problems
    assert found.scenes[1].folder_name == f"2024-09-12_{AFTER}"

    everything = discover_scenes(img)  # "*": the empty folder is reported, the text file ignored
    assert len(everything.scenes) == 2
    assert [Path(p).name for p, _ in everything.problems] == ["misc"]
    assert "cannot be opened as a scene" in everything.problems[0][1]


def test_discover_scenes_in_a_stac_catalog(site):
    img = site.parent / "imagery"
    stac = site.parent / "stac"
    (stac / "items").mkdir(parents=True)
    links = []
    for name, when, pb in ((BEFORE, "2021-09-18T02:35:51Z", "03.01"), (AFTER, "2024-09-12T02:35:29Z", "05.10")):
        bands = sorted((img / f"{name}.SAFE").rglob("*.tif"))
        assets = {}
        for b in bands:
            key = b.stem.split("_")[-2]  # T50RQU_<time>_B04_10m -> B04
            assets[key] = {"href": os.path.relpath(b, stac / "items"), "type": "image/tiff"}
        item = {"type": "Feature", "stac_version": "1.0.0", "id": name, "geometry": None,
                "properties": {"datetime": when, "platform": "sentinel-2b", "s2:processing_baseline": pb},
                "assets": assets, "links": []}
        (stac / "items" / f"{name}.json").write_text(json.dumps(item))
        links.append({"rel": "item", "href": f"./items/{name}.json"})
    coll = {"type": "Collection", "id": "s2", "links": links}
    (stac / "collection.json").write_text(json.dumps(coll))
    cat = {"type": "Catalog", "id": "root", "links": [{"rel": "child", "href": "./collection.json"},
                                                      {"rel": "item", "href": "https://example.com/x.json"}]}
    (stac / "catalog.json").write_text(json.dumps(cat))

    found = discover_scenes(stac / "catalog.json")
    assert [(s.scene_id, s.date) for s in found.scenes] == [(BEFORE, dt.date(2021, 9, 18)),
                                                            (AFTER, dt.date(2024, 9, 12))]
    assert discover_scenes(stac / "catalog.json", ["S2B*"]).scenes[0].scene_id == AFTER
    (stac / "bad.json").write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(InputDataError, match="ItemCollection"):
        discover_scenes(stac / "bad.json")


# --------------------------------------------------------------------------- baselines


def test_previous_baseline():
    a, b, c = scene("a", 2024, 3), scene("b", 2024, 6), scene("c", 2024, 9)
    assert choose_baseline(c, [a, b, c])[0] is b
    assert choose_baseline(c, [a, b, c], unusable={"b"})[0] is a  # b was skipped (cloud) or failed
    assert choose_baseline(a, [a, b, c]) == (None, "no earlier scene")
    same_day = scene("a2", 2024, 3)
    assert choose_baseline(same_day, [a, same_day])[0] is None  # strictly earlier only
    assert "skipped or failed" in choose_baseline(c, [a, b, c], unusable={"a", "b"})[1]


def test_best_baseline_is_the_clearest_then_the_latest():
    a, b, c, d = scene("a", 2023, 9), scene("b", 2024, 3), scene("c", 2024, 6), scene("d", 2024, 9)
    clear = {"a": 0.95, "b": 0.951, "c": 0.40}.__getitem__
    pick, why = choose_baseline(d, [a, b, c, d], rule="best", clear_fraction=lambda s: clear(s.scene_id))
    assert pick is b and "95%" in why  # a and b tie to the percent: the more recent wins
    pick, _ = choose_baseline(d, [a, b, c, d], rule="best", max_age_days=120,
                              clear_fraction=lambda s: clear(s.scene_id))
    assert pick is c  # only c is within 120 days
    none, why = choose_baseline(d, [a, d], rule="best", clear_fraction=lambda s: 0.0)
    assert none is None and "clear of cloud" in why


def test_fixed_baseline():
    a, b, c = scene("a", 2021, 9, 18), scene("b", 2024, 9), scene("c", 2025, 9)
    ref = reference_scene([a, b, c], dt.date(2021, 9, 18))
    assert ref is a
    assert choose_baseline(c, [a, b, c], rule="fixed", reference=ref)[0] is a
    assert choose_baseline(a, [a, b, c], rule="fixed", reference=ref)[0] is None
    assert reference_scene([a, b, c], dt.date(2022, 1, 1)) is a  # the latest before the date
    with pytest.raises(ConfigError, match="no scene dated on or before"):
        reference_scene([b, c], dt.date(2021, 1, 1))


def test_exit_codes_by_error_class():
    from ecopatch.errors import LedgerLockedError, NoOverlapError, OutputError, VectorReadError

    assert exit_code_for(ConfigError("x")) == ExitCode.BAD_CONFIG == 3
    assert exit_code_for(VectorReadError("x")) == exit_code_for(NoOverlapError("x")) == ExitCode.BAD_INPUT == 4
    assert exit_code_for(RunLockedError("x")) == exit_code_for(LedgerLockedError("x")) == ExitCode.LOCKED == 6
    assert exit_code_for(OutputError("x")) == exit_code_for(RuntimeError()) == ExitCode.FAILURE == 1


# --------------------------------------------------------------------------- the run lock


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def write_lock(path: Path, *, pid: int, host: str, age_s: float = 0.0) -> None:
    t = time.time() - age_s
    path.write_text(json.dumps({"pid": pid, "host": host, "started_at": "2024-09-12T03:00:00Z",
                                "started_epoch": t, "token": "other"}))
    os.utime(path, (t, t))


def test_lock_refuses_a_second_run_and_releases(tmp_path):
    path = tmp_path / "ledger.gpkg.lock"
    with RunLock(path) as first:
        assert path.exists() and RunLock.read(path).token == first.info.token
        with pytest.raises(RunLockedError, match=rf"PID {os.getpid()} on host .*started"):
            RunLock(path).acquire()
    assert not path.exists()


def test_stale_lock_of_a_dead_process_is_recovered(tmp_path, caplog):
    path = tmp_path / "ledger.gpkg.lock"
    write_lock(path, pid=dead_pid(), host=socket.gethostname())
    with caplog.at_level(logging.WARNING, logger="ecopatch"), RunLock(path) as lock:
        assert RunLock.read(path).pid == os.getpid() and lock.info is not None
    assert "recovering stale run lock" in caplog.text and "no longer running" in caplog.text
    assert not list(tmp_path.glob("*.stale-*"))


def test_lock_of_another_host_is_stale_only_when_old(tmp_path):
    path = tmp_path / "ledger.gpkg.lock"
    write_lock(path, pid=1, host="other-host", age_s=60)
    with pytest.raises(RunLockedError, match="'other-host'"):
        RunLock(path, max_age_s=3600).acquire()
    write_lock(path, pid=1, host="other-host", age_s=7200)
    with RunLock(path, max_age_s=3600):
        pass
    assert not path.exists()


def test_lock_is_released_only_by_its_owner(tmp_path):
    path = tmp_path / "ledger.gpkg.lock"
    lock = RunLock(path).acquire()
    write_lock(path, pid=os.getpid(), host=socket.gethostname())  # someone else's now
    lock.release()
    assert path.exists()


def test_unreadable_lock_is_respected_while_young(tmp_path):
    path = tmp_path / "ledger.gpkg.lock"
    path.write_text("")  # a run that has just created it
    with pytest.raises(RunLockedError, match="just starting"):
        RunLock(path).acquire()
    old = time.time() - 600
    os.utime(path, (old, old))
    RunLock(path).acquire().release()


# --------------------------------------------------------------------------- ledger transaction


def test_ledger_transaction_is_all_or_nothing(tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    from ecopatch.ledger import Ledger

    led = Ledger(tmp_path / "l.gpkg")
    patches = gpd.GeoDataFrame([dict(patch_id="p1", change_type="construction", area_m2=1e4, area_mu=15.0,
                                     confidence=0.9, date_before="2023-09-01", date_after="2024-09-01",
                                     ndvi_before=0.7, ndvi_after=0.2, centroid_lon=120.0, centroid_lat=30.0,
                                     cgcs2000_lon=120.0, cgcs2000_lat=30.0, reserve_name="r", zone="core",
                                     zone_name="核心区", geometry=box(120, 30, 120.001, 30.001))], crs=4490)
    with pytest.raises(RuntimeError), led.transaction("test") as bound:
        assert bound.add_detections(patches, "r1").new == 1
        assert len(bound.cases()) == 1  # reads inside see the writes
        raise RuntimeError("killed half-way")
    assert len(led.cases()) == 0 and len(led.events()) == 0 and led.check().ok
    with led.transaction("test") as bound:
        bound.add_detections(patches, "r1")
    assert len(led.cases()) == 1


# --------------------------------------------------------------------------- whole runs


def test_run_then_nothing_new_then_force(site, caplog):
    cfg = load_config(site)
    with caplog.at_level(logging.INFO, logger="ecopatch"):  # run.log gets what the logger lets through
        first = run_pipeline(cfg, progress=False)
    assert first.exit_code == ExitCode.OK and first.status == "ok"
    (out,) = first.outcomes
    assert out.status == "ok" and out.baseline.scene_id == BEFORE and out.scene.scene_id == AFTER
    assert out.folder == cfg.outputs.dir / f"2024-09-12_{AFTER}"
    assert {p.name for p in (out.folder / "results").iterdir()} == {
        "mines.gpkg", "mines.csv", "patches.gpkg", "patches.csv", "observation.csv"}
    assert (out.folder / "fieldcheck" / "cases.gpkg").exists() and (out.folder / "run.log").exists()
    assert not (out.folder / "maps").exists() and not (out.folder / "report").exists()
    m = json.loads((out.folder / MANIFEST).read_text(encoding="utf-8"))
    assert m["status"] == "ok" and m["exit_code"] == 0 and m["run_id"] == AFTER
    assert m["baseline"]["id"] == BEFORE and m["baseline"]["rule"] == "season"
    assert m["baseline"]["why"].startswith("same season: 2021-09-18 is 6 day(s) from 2024-09-12")
    assert {r["id"] for r in m["references"]["mines"].values()} == {BEFORE}  # each mine's restoration reference
    assert m["references"]["scenes"][0]["mines"] == 8 and m["references"]["not_assessed"] == {}
    assert set(m["inputs"]) == {"config", "scene", "baseline", "mines", "reserves"}
    assert len(m["inputs"]["scene"]["sha256"]) == 64 and m["inputs"]["mines"]["bytes"] > 0
    assert m["versions"]["ecopatch"] and m["versions"]["gdal"]
    assert m["counts"]["mines"] == 8 and m["counts"]["ledger"]["new"] == first.ledger_counts["cases"]
    assert m["counts"]["patches"] >= m["counts"]["ledger"]["new"]  # vegetation gain opens no case
    assert {o["path"] for o in m["outputs"]} >= {"run.log", "results/patches.gpkg", "fieldcheck/cases.csv"}
    assert "scene 2024-09-12" in (out.folder / "run.log").read_text(encoding="utf-8")
    assert first.baseline_only[0][0].scene_id == BEFORE
    assert not cfg.outputs.ledger.with_name("ledger.gpkg.lock").exists()
    counts = ledger_counts(cfg.outputs.ledger)

    # leftovers of killed runs are removed under the lock; they never count as complete
    runs = cfg.outputs.dir
    (runs / f".2025-01-01_{LATER}.partial").mkdir()
    (runs / f".2025-01-01_{LATER}.partial" / MANIFEST).write_text(json.dumps(m))
    (runs / ".x.superseded-1234").mkdir()
    with caplog.at_level(logging.INFO, logger="ecopatch"):
        again = run_pipeline(cfg, progress=False)
    assert again.exit_code == ExitCode.NOTHING_NEW and again.status == "nothing_new"
    assert "nothing new" in again.summary() and not again.outcomes
    assert "left by a run that was killed" in caplog.text
    assert sorted(p.name for p in runs.iterdir()) == [f"2024-09-12_{AFTER}"]

    forced = run_pipeline(cfg, force=True, progress=False)
    assert forced.exit_code == ExitCode.OK
    assert forced.outcomes[0].counts["ledger"]["new"] == 0
    assert forced.outcomes[0].counts["ledger"]["unchanged"] == m["counts"]["ledger"]["new"]
    assert ledger_counts(cfg.outputs.ledger) == counts
    assert sorted(p.name for p in runs.iterdir()) == [f"2024-09-12_{AFTER}"]
    m2 = json.loads((out.folder / MANIFEST).read_text(encoding="utf-8"))
    assert m2["force"] is True and m2["counts"]["patches"] == m["counts"]["patches"]
    assert m2["counts"]["fieldcheck_cases"] == m["counts"]["fieldcheck_cases"]  # same field package


def test_failed_scene_is_recorded_and_retried(site, monkeypatch):
    import ecopatch.analyses.encroachment

    cfg = load_config(site)

    def broken(*a, **k):
        raise InputDataError("reserves.gpkg: zone field '功能分区' is empty (simulated)")

    monkeypatch.setattr(ecopatch.analyses.encroachment, "detection_pass", broken)
    res = run_pipeline(cfg, progress=False)
    assert res.exit_code == ExitCode.BAD_INPUT and res.status == "bad_input"
    (out,) = res.outcomes
    assert out.status == "failed" and out.folder.name == f"2024-09-12_{AFTER}.failed"
    m = json.loads((out.folder / MANIFEST).read_text(encoding="utf-8"))
    assert m["status"] == "failed" and m["exit_code"] == 4 and "simulated" in m["error"]["message"]
    assert completed_runs(cfg.outputs.dir) == {}
    assert ledger_counts(cfg.outputs.ledger)["events"] == 0  # failed before the ledger: unchanged

    monkeypatch.undo()
    res = run_pipeline(cfg, progress=False)
    assert res.exit_code == ExitCode.OK
    assert sorted(p.name for p in cfg.outputs.dir.iterdir()) == [f"2024-09-12_{AFTER}"]


def test_a_job_that_cannot_run_leaves_a_note_and_the_other_goes_on(site, monkeypatch):
    # the mines' set-up and the reserves' finishing step fail in turn; the other job's
    # results are still written and recorded
    import ecopatch.analyses.encroachment
    import ecopatch.analyses.restoration
    from ecopatch.errors import NoOverlapError, NoValidPixelsError

    cfg = load_config(site)

    def no_mines(*a, **k):
        raise NoOverlapError("none of the mines overlaps the scene (simulated)")

    monkeypatch.setattr(ecopatch.analyses.restoration, "assessment_pass", no_mines)
    res = run_pipeline(cfg, progress=False)
    (out,) = res.outcomes
    assert res.exit_code == ExitCode.OK and out.status == "ok"
    assert out.message == "mines not assessed: none of the mines overlaps the scene (simulated)"
    assert ledger_counts(cfg.outputs.ledger)["mine_records"] == 0
    assert ledger_counts(cfg.outputs.ledger)["detections"] > 0
    assert (out.folder / "results" / "patches.gpkg").exists()
    assert not (out.folder / "results" / "mines.gpkg").exists()

    monkeypatch.undo()
    real = ecopatch.analyses.encroachment.detection_pass

    def cloudy(*a, **k):
        p = real(*a, **k)

        def finish(results):
            raise NoValidPixelsError("no pixel over the reserves was observed (simulated)")

        p.finish = finish
        return p

    monkeypatch.setattr(ecopatch.analyses.encroachment, "detection_pass", cloudy)
    res = run_pipeline(cfg, progress=False, force=True)
    (out,) = res.outcomes
    assert out.status == "ok" and out.message.startswith("reserves not watched: no pixel")
    assert ledger_counts(cfg.outputs.ledger)["mine_records"] > 0


def test_cloudy_scene_is_skipped_and_not_a_baseline(tmp_path, source):
    cfg_path = make_site(tmp_path / "site", source, extra_run="min_clear_fraction = 0.9")
    cfg = load_config(cfg_path)
    res = run_pipeline(cfg, progress=False)
    (out,) = res.outcomes
    assert res.exit_code == ExitCode.OK and out.status == "skipped" and "clear" in out.message
    assert set(completed_runs(cfg.outputs.dir)) == {AFTER}  # recorded: not retried
    assert ledger_counts(cfg.outputs.ledger)["mine_records"] == 0
    assert run_pipeline(cfg).exit_code == ExitCode.NOTHING_NEW

    add_later_scene(tmp_path / "site", source)
    dry = run_pipeline(cfg, dry_run=True)
    assert dry.exit_code == ExitCode.OK and dry.status == "dry_run"
    (pending,) = dry.outcomes
    assert pending.scene.scene_id == LATER and pending.baseline.scene_id == BEFORE  # not the skipped 2024


def test_dry_run_with_best_and_fixed_baselines(tmp_path, source):
    site = tmp_path / "site"
    make_site(site, source)
    add_later_scene(site, source)
    cfg = load_config(site / "ecopatch.toml")

    best = run_pipeline(load_config(_with_run(site, 'baseline = "best"')), dry_run=True)
    assert [(o.scene.scene_id, o.baseline.scene_id) for o in best.outcomes] == [(AFTER, BEFORE), (LATER, BEFORE)]
    assert "clearest" in best.outcomes[1].message  # the 2024 scene has a cloud over the area

    fixed = run_pipeline(load_config(_with_run(site, 'baseline = "fixed"\nreference_date = 2024-09-12')),
                         dry_run=True)
    assert [(o.scene.scene_id, o.baseline.scene_id) for o in fixed.outcomes] == [(LATER, AFTER)]
    assert {s.scene_id for s, _ in fixed.baseline_only} == {BEFORE, AFTER}

    only = run_pipeline(cfg, dry_run=True, scenes=["2025-09-10"])
    assert [o.scene.scene_id for o in only.outcomes] == [LATER]
    with pytest.raises(ConfigError, match="matches no scene"):
        run_pipeline(cfg, dry_run=True, scenes=["1999-01-01"])
    assert not cfg.outputs.dir.exists()  # a dry run writes nothing


def _with_run(site: Path, lines: str) -> Path:
    text = (site / "ecopatch.toml").read_text(encoding="utf-8").replace("[run]\n", f"[run]\n{lines}\n")
    p = site / f"cfg-{abs(hash(lines))}.toml"
    p.write_text(text, encoding="utf-8")
    return p
