"""``ecopatch run`` as cron runs it: real processes, a concurrent second run, SIGKILL half-way.

The runs are started with ``python -m ecopatch.cli.main run``.  To hold a run at a
known point, ``tests/pausing.py`` starts it with a pause at one of the library's
seams: ``run`` (:func:`ecopatch.run.scene.before_manifest`, after the ledger commit
and the outputs, just before ``manifest.json``) or ``txn``
(:func:`ecopatch.ledger.connection.before_commit`, inside the ledger's write
transaction with a hot rollback journal on disk).
"""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from ecopatch.cli.main import cli
from ecopatch.ledger import Ledger
from ecopatch.run.manifest import MANIFEST, completed_runs

from .runsite import (
    AFTER,
    LATER,
    add_later_scene,
    ledger_counts,
    make_site,
    run,
    sample_source,
    start_run,
    wait_for,
)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

FOLDER = f"2024-09-12_{AFTER}"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return sample_source(tmp_path_factory)


def kill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def events(ledger: Path) -> pd.DataFrame:
    return Ledger(ledger, create=False).events().drop(columns=["recorded_at"])


def test_first_run_processes_second_does_nothing_force_adds_no_events(tmp_path, source):
    cfg = make_site(tmp_path / "site", source, maps=True, report=True, chips=True)
    out = tmp_path / "site" / "out"
    ledger = out / "ledger.gpkg"

    first = run(cfg)
    assert first.returncode == 0, first.stderr
    assert "1 scene(s) processed" in first.stdout and FOLDER in first.stdout
    folder = out / "runs" / FOLDER
    for rel in ("manifest.json", "run.log", "results/mines.gpkg", "results/patches.csv", "results/observation.csv",
                "maps/change_map.png", "fieldcheck/cases.gpkg", "fieldcheck/cases.kml", "report/report.html",
                "report/report.xlsx"):
        assert (folder / rel).is_file(), rel
    assert list((folder / "fieldcheck" / "chips").glob("*_after.png"))
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["status"] == "ok" and manifest["timings_s"]["report"] > 0
    # the minimum mapping units the detection applied (the site's config says 400 m²)
    assert manifest["detection"] == {"min_area_m2": 400.0, "core_min_area_m2": 400.0}
    log = (folder / "run.log").read_text(encoding="utf-8")
    assert "INFO ecopatch.run: scene 2024-09-12" in log and "ledger" in log
    assert not (out / "ledger.gpkg.lock").exists()
    counts = ledger_counts(ledger)
    assert counts["cases"] > 0 and counts["mine_records"] == 8
    ev = events(ledger)
    patches = (folder / "results" / "patches.csv").read_bytes()

    second = run(cfg)
    assert second.returncode == 5, second.stderr
    assert "nothing new" in second.stdout
    assert ledger_counts(ledger) == counts

    forced = run(cfg, "--force", "-q")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout == ""  # -q: quiet on success
    assert ledger_counts(ledger) == counts
    pd.testing.assert_frame_equal(events(ledger), ev)  # no duplicate events
    assert (folder / "results" / "patches.csv").read_bytes() == patches  # same outputs
    assert json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["force"] is True
    assert sorted(p.name for p in (out / "runs").iterdir()) == [FOLDER]
    assert Ledger(ledger).check().ok


def test_concurrent_run_is_refused_and_a_killed_run_recovers(tmp_path, source):
    cfg = make_site(tmp_path / "site", source)
    out = tmp_path / "site" / "out"
    ledger, lock = out / "ledger.gpkg", out / "ledger.gpkg.lock"
    sig = tmp_path / "paused"
    first = start_run(cfg, pause=("run", 120, sig))
    wait_for(sig, first)  # holds the lock; ledger committed, manifest not written yet

    second = run(cfg)
    assert second.returncode == 6, second.stderr
    assert "another ecopatch run holds the lock" in second.stderr
    assert f"PID {first.pid} on host" in second.stderr and "started" in second.stderr

    kill(first)
    assert lock.exists()  # a killed run cannot release its lock
    assert completed_runs(out / "runs") == {}  # nothing looks complete
    assert (out / "runs" / f".{FOLDER}.partial").is_dir()
    assert Ledger(ledger).check().ok
    committed = ledger_counts(ledger)
    ev = events(ledger)
    assert committed["cases"] > 0  # the kill came after the ledger commit

    third = run(cfg)
    assert third.returncode == 0, third.stderr
    assert "recovering stale run lock" in third.stderr and "no longer running" in third.stderr
    assert "left by a run that was killed" in third.stderr
    assert set(completed_runs(out / "runs")) == {AFTER}
    assert ledger_counts(ledger) == committed  # the scene again: nothing added twice
    pd.testing.assert_frame_equal(events(ledger), ev)
    assert "already in the ledger" in third.stdout
    assert not lock.exists()


def test_sigkill_inside_the_ledger_transaction_leaves_the_ledger_as_before(tmp_path, source):
    site = tmp_path / "site"
    cfg = make_site(site, source, fieldcheck=False)
    out = site / "out"
    ledger = out / "ledger.gpkg"
    assert run(cfg).returncode == 0
    before = ledger_counts(ledger)
    ev = events(ledger)
    before_bytes = ledger.read_bytes()

    add_later_scene(site, source)
    sig = tmp_path / "in-txn"
    proc = start_run(cfg, pause=("txn", 120, sig))
    wait_for(sig, proc)
    assert ledger.with_name("ledger.gpkg-journal").exists()  # a hot journal: the kill lands mid-write
    kill(proc)
    assert ledger.read_bytes() != before_bytes

    led = Ledger(ledger)  # SQLite rolls the journal back on open
    assert led.check().ok
    assert ledger_counts(ledger) == before
    pd.testing.assert_frame_equal(events(ledger), ev)
    assert set(completed_runs(out / "runs")) == {AFTER}  # no complete-looking 2025 folder

    nxt = run(cfg)
    assert nxt.returncode == 0, nxt.stderr
    assert set(completed_runs(out / "runs")) == {AFTER, LATER}
    after = ledger_counts(ledger)
    # the 2025 scene is the 2021 ground again: against its same-season 2024 baseline the changes
    # run backwards (regrowth, no new disturbance), so the run may add no case events
    assert after["mine_records"] == before["mine_records"] + 8 and after["events"] >= before["events"]
    assert Ledger(ledger).check().ok
    assert sorted(p.name for p in (out / "runs").iterdir()) == [FOLDER, f"2025-09-10_{LATER}"]


# --------------------------------------------------------------------------- quick ones, in-process


@pytest.fixture(autouse=True)
def _restore_logging():
    """The CLI configures the ``ecopatch`` logger (it is the application): put it back afterwards."""
    import logging

    root = logging.getLogger("ecopatch")
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_dry_run_lists_and_writes_nothing(tmp_path, source):
    cfg = make_site(tmp_path / "site", source)
    res = invoke("run", str(cfg), "--dry-run")
    assert res.exit_code == 0, res.output
    assert "would process 1 scene" in res.output and "baseline only" in res.output
    assert not (tmp_path / "site" / "out").exists()


def test_bad_config_exit_code_names_the_key(tmp_path, source):
    cfg = make_site(tmp_path / "site", source)
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("[run]", "[run]\nbaselin = \"best\""), encoding="utf-8")
    res = invoke("run", str(cfg))
    assert res.exit_code == 3
    assert 'Bad config: config file' in res.output and '[run] unknown key "baselin"' in res.output
    assert invoke("run", str(tmp_path / "missing.toml")).exit_code == 3
    assert invoke("run", str(cfg), "--no-such-option").exit_code == 2  # click usage error


def test_bad_input_exit_code(tmp_path, source):
    cfg = make_site(tmp_path / "site", source)
    (tmp_path / "site" / "reserves.gpkg").write_bytes(b"not a geopackage")
    res = invoke("run", str(cfg))
    assert res.exit_code == 4, res.output
    assert "Bad input" in res.output and "reserves.gpkg" in res.output
    assert not (tmp_path / "site" / "out" / "ledger.gpkg.lock").exists()  # released on the way out


_seen_handlers: list = []


@click.command("log-probe")
def _log_probe():
    root = logging.getLogger("ecopatch")
    _seen_handlers.append([type(h).__name__ for h in root.handlers])
    logging.getLogger("ecopatch.probe").info("probe record")


def test_cli_logging_lasts_as_long_as_the_command(capsys, monkeypatch):
    """In-process runs (CliRunner, a notebook) get their logging back, and nothing writes to a closed stream."""
    import ecopatch.cli.main as main

    monkeypatch.setitem(main.COMMANDS, "log-probe", f"{__name__}:_log_probe")
    root = logging.getLogger("ecopatch")
    before_handlers, before_level = list(root.handlers), root.level
    _seen_handlers.clear()
    for _ in range(2):
        res = CliRunner().invoke(main.cli, ["-v", "log-probe"], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        assert "probe record" in res.stderr  # written to the runner's own stderr
        assert list(root.handlers) == before_handlers and root.level == before_level
    assert _seen_handlers == [["StderrHandler"], ["StderrHandler"]]
    # after the command, library logging does not reach the closed streams of the runs
    logging.getLogger("ecopatch.probe").warning("after the command")
    assert "Logging error" not in capsys.readouterr().err
