"""The ledger survives real faults: a writer SIGKILLed mid-transaction, two writers at once.

These tests start real Python processes.  A child pauses inside its open write
transaction: ``tests/pausing.py`` replaces the ledger's seam
:func:`ecopatch.ledger.connection.before_commit` with a pause (and gives the
child a one-page cache); by then its changed pages have reached the ledger
file and a hot rollback journal sits beside it, so the kill lands in the
middle of a real write.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from ecopatch.errors import LedgerLockedError
from ecopatch.fieldcheck import export_package, import_results
from ecopatch.ledger import Ledger

from .. import pausing

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

T0 = dt.date(2024, 5, 10)

CHILD = textwrap.dedent(
    """
    import datetime as dt, sys
    import geopandas as gpd
    from shapely.geometry import box
    from ecopatch.fieldcheck import import_results
    from ecopatch.ledger import Ledger

    def patches(prefix, n, x0):
        rows = []
        for i in range(n):
            x, y = x0 + i * 0.002, 30.25
            rows.append(dict(
                patch_id=f"{prefix}{i}", change_type="construction", area_m2=1e4, area_mu=15.0,
                confidence=0.8, date_before="2023-05-01", date_after="2024-05-01",
                ndvi_before=0.7, ndvi_after=0.2, centroid_lon=x, centroid_lat=y,
                cgcs2000_lon=x, cgcs2000_lat=y, reserve_name="西溪湿地", zone="core",
                zone_name="核心区", geometry=box(x, y, x + 0.001, y + 0.001)))
        return gpd.GeoDataFrame(rows, crs="EPSG:4490")

    path, mode = sys.argv[1], sys.argv[2]
    led = Ledger(path, timeout_s=30)
    if mode == "add":
        prefix, n, x0 = sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        res = led.add_detections(patches(prefix, n, x0), "run-" + prefix, today=dt.date(2024, 5, 9))
        print(",".join(res.case_ids))
    elif mode == "import":
        rep = import_results(led, sys.argv[3], today=dt.date(2024, 6, 1))
        print(len(rep.accepted))
    """
)


@pytest.fixture
def child(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")

    def start(*args, pause: float | None = None, signal_file: Path | None = None):
        argv = [str(script), *map(str, args)]
        if pause is not None:
            argv = pausing.command("txn", pause, signal_file or Path(os.devnull), *argv)
        else:
            argv = [sys.executable, *argv]
        return subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    return start


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("child never reached the pause inside its transaction")
        time.sleep(0.02)


def snapshot(led: Ledger) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    cases = pd.DataFrame(led.cases(today=T0)).drop(columns="geometry")
    return cases, led.events(), pd.DataFrame(led.detections()).drop(columns="geometry")


def assert_same(a, b) -> None:
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x, y)


@pytest.fixture
def seeded(tmp_path, child):
    """A ledger with 3 cases, written by a child process as a real run would."""
    path = tmp_path / "ledger.gpkg"
    p = child(path, "add", "a", 3, 120.10)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    return path


def kill_mid_write(proc: subprocess.Popen, ledger_path: Path, signal_file: Path) -> None:
    wait_for(signal_file, proc)
    journal = ledger_path.with_name(ledger_path.name + "-journal")
    assert journal.exists(), "the writer should be inside a transaction with a hot journal"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_kill_during_add_detections_leaves_the_ledger_as_before(seeded, child, tmp_path):
    before_bytes = seeded.read_bytes()
    before = snapshot(Ledger(seeded))
    sig = tmp_path / "in-txn"
    proc = child(seeded, "add", "k", 60, 120.30, pause=60, signal_file=sig)
    kill_mid_write(proc, seeded, sig)
    assert seeded.read_bytes() != before_bytes  # the kill really hit a half-written file

    led = Ledger(seeded)  # SQLite rolls the hot journal back on open
    report = led.check()
    assert report.ok, str(report)
    assert_same(snapshot(led), before)
    assert not seeded.with_name(seeded.name + "-journal").exists()
    # and the ledger takes the same run afterwards
    again = child(seeded, "add", "k", 60, 120.30)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert len(led.cases()) == 63 and led.check().ok


def test_kill_during_import_leaves_the_ledger_as_before(seeded, child, tmp_path):
    led = Ledger(seeded)
    pkg = export_package(led, tmp_path / "pkg", today=T0)
    wb = load_workbook(pkg.results_template)
    ws = wb["核查结果"]
    col = {c.value: c.column for c in ws[1]}
    for r in (2, 3, 4):
        for h, v in {
            "核查结论": "误报",
            "核查人": "李四",
            "核查日期": dt.date(2024, 5, 20),
        }.items():
            ws.cell(r, col[h]).value = v
    results = tmp_path / "filled.xlsx"
    wb.save(results)
    before = snapshot(led)
    sig = tmp_path / "in-txn"
    proc = child(seeded, "import", results, pause=60, signal_file=sig)
    kill_mid_write(proc, seeded, sig)

    led = Ledger(seeded)
    assert led.check().ok
    assert_same(snapshot(led), before)
    # the interrupted import can simply be run again
    rep = import_results(led, results, today=dt.date(2024, 6, 1))
    assert len(rep.accepted) == 3 and set(led.cases()["status"]) == {"false_alarm"}


def test_two_concurrent_writers_both_land(tmp_path, child):
    path = tmp_path / "ledger.gpkg"
    Ledger(path)
    sig = tmp_path / "a-in-txn"
    a = child(path, "add", "a", 20, 120.10, pause=2.5, signal_file=sig)
    wait_for(sig, a)  # A holds the write lock now
    b = child(path, "add", "b", 20, 120.50)  # starts while A holds the lock, so it waits
    out_a, err_a = a.communicate(timeout=60)
    out_b, err_b = b.communicate(timeout=60)
    assert a.returncode == 0, err_a
    assert b.returncode == 0, err_b
    ids_a = out_a.strip().split(",")
    ids_b = out_b.strip().split(",")
    assert len(ids_a) == len(ids_b) == 20
    # B took its serials inside its own transaction, after A's commit: no collision
    assert ids_a == [f"YB-2024-{i:06d}" for i in range(1, 21)]
    assert ids_b == [f"YB-2024-{i:06d}" for i in range(21, 41)]
    led = Ledger(path)
    cases = led.cases()
    assert len(cases) == 40 and cases["case_id"].is_unique
    assert sorted(cases["case_id"]) == [f"YB-2024-{i:06d}" for i in range(1, 41)]
    assert set(led.detections()["run_id"]) == {"run-a", "run-b"}
    assert led.check().ok


def test_a_writer_that_waits_too_long_gets_a_clear_error(tmp_path, child):
    path = tmp_path / "ledger.gpkg"
    Ledger(path)
    sig = tmp_path / "a-in-txn"
    a = child(path, "add", "a", 5, 120.10, pause=2, signal_file=sig)
    wait_for(sig, a)
    # the writer holds the file exclusively (its pages are being written), so even
    # opening waits; after timeout_s the error says what happened and what to do
    with pytest.raises(LedgerLockedError, match="locked by another process.*timeout_s"):
        Ledger(path, timeout_s=0.3).advance("YB-2024-000001", "dispatch")
    out, err = a.communicate(timeout=60)
    assert a.returncode == 0, err
    assert len(Ledger(path).cases()) == 5
