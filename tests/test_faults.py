"""Real output faults: a read-only folder and a full disk (tmpfs mounts; skipped where mounting is not allowed).

Each must give a clear OutputError/LedgerError, leave no half-written file, and leave the ledger as it was.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from click.testing import CliRunner

import ecopatch
from ecopatch.cli.main import cli
from ecopatch.errors import EcopatchError, OutputError
from ecopatch.vector.layers import write_table


@contextlib.contextmanager
def _tmpfs(base: Path, size: str, *, read_only: bool = False):
    mnt = base / f"mnt-{uuid.uuid4().hex[:8]}"
    mnt.mkdir()
    opts = f"size={size}" + (",ro" if read_only else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip() or r.returncode}); needs root")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _big_table(n=6000):
    rng = np.random.default_rng(0)
    geoms = shapely.buffer(shapely.points(rng.random(n) + 120, rng.random(n) + 30), 0.001)
    return gpd.GeoDataFrame({"patch_id": [f"P{i}" for i in range(n)], "note": ["说明" * 20] * n}, geometry=geoms,
                            crs="EPSG:4490")


@pytest.mark.parametrize("ext", ["gpkg", "csv", "xlsx", "geojson", "kml"])
def test_full_disk_gives_output_error_and_no_file(tmp_path, ext):
    with _tmpfs(tmp_path, "48k") as mnt:
        with pytest.raises(OutputError, match="disk full|No space left"):
            write_table(_big_table(), mnt / f"out.{ext}")
        assert list(mnt.iterdir()) == []


def test_read_only_folder_gives_output_error(tmp_path):
    with _tmpfs(tmp_path, "1m", read_only=True) as mnt:
        with pytest.raises(OutputError, match="writable|read-only"):
            write_table(_big_table(10), mnt / "out.gpkg")


def test_cli_into_read_only_folder_exits_1_with_one_line(tmp_path, sample):
    with _tmpfs(tmp_path, "1m", read_only=True) as mnt:
        res = CliRunner().invoke(cli, ["detect", "--before", str(sample.products["before"]), "--after",
                                       str(sample.products["after"]), "--reserves", str(sample.reserves),
                                       "--out", str(mnt / "patches.gpkg"), "--no-progress"])
        assert res.exit_code == 1
        assert res.output.count("\n") <= 2 and "Traceback" not in res.output
        assert "writable" in res.output or "read-only" in res.output


def test_ledger_on_a_full_disk_keeps_what_it_had(tmp_path, inputs):
    with _tmpfs(tmp_path, "420k") as mnt:
        ledger = ecopatch.Ledger(mnt / "ledger.gpkg")
        first = ledger.add_detections(inputs.patches.iloc[:2], run_id="r1")
        assert first.new == 2
        # fill the disk, then try to add a large run
        filler = mnt / "filler.bin"
        with contextlib.suppress(OSError), open(filler, "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        big = inputs.patches.copy()
        big["geometry"] = big.geometry.buffer(0.0001)  # complex outlines: more bytes
        with pytest.raises(EcopatchError):
            ledger.add_detections(big, run_id="r2")
        filler.unlink()
        again = ecopatch.Ledger(mnt / "ledger.gpkg")
        assert len(again.cases()) == 2
        assert again.check().ok
