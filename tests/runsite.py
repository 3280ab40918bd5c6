"""A bureau's site on disk for scheduled-run tests: imagery folder, layers, config, outputs.

The scenes come from :func:`ecopatch.data.datasets.make_sample_data` (generated once per
session into a temporary folder; the committed ``sample_data/`` is never written).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

_CACHE: dict[str, Path] = {}

BEFORE = "S2A_MSIL2A_20210918T023551_N0301_R089_T50RQU_20210918T063315"
AFTER = "S2B_MSIL2A_20240912T023529_N0510_R089_T50RQU_20240912T061020"
#: A third date made from the 2021 product (reversed changes against 2024).
LATER = "S2A_MSIL2A_20250910T023551_N0301_R089_T50RQU_20250910T063315"


def sample_source(tmp_path_factory) -> Path:
    """The synthetic sample (two SAFE products, mines.gpkg, reserves.gpkg), once per session."""
    if "root" not in _CACHE:
        from ecopatch.data.datasets import make_sample_data

        root = tmp_path_factory.mktemp("sample")
        make_sample_data(root, size="small", drone=False)
        _CACHE["root"] = root
    return _CACHE["root"]


def make_site(root: Path, source: Path, *, maps: bool = False, report: bool = False, fieldcheck: bool = True,
              chips: bool = False, extra_run: str = "", scenes: Sequence[str] = (BEFORE, AFTER)) -> Path:
    """Copy the sample into ``root`` (imagery/, mines.gpkg, reserves.gpkg) and write ``root/ecopatch.toml``.

    ``scenes`` are the product names (without ``.SAFE``) copied into imagery/.
    """
    root.mkdir(parents=True, exist_ok=True)
    img = root / "imagery"
    img.mkdir(exist_ok=True)
    for name in scenes:
        shutil.copytree(source / f"{name}.SAFE", img / f"{name}.SAFE")
    for name in ("mines.gpkg", "reserves.gpkg"):
        shutil.copy2(source / name, root / name)

    def b(v: bool) -> str:
        return "true" if v else "false"

    cfg = root / "ecopatch.toml"
    cfg.write_text(textwrap.dedent(f"""
        [inputs]
        imagery = "imagery"
        scene_pattern = "*.SAFE"
        mines = "mines.gpkg"
        mines_id_field = "矿山编号"
        reserves = "reserves.gpkg"

        [outputs]
        dir = "out/runs"
        ledger = "out/ledger.gpkg"
        formats = ["gpkg", "csv"]
        maps = {b(maps)}
        report = {b(report)}
        fieldcheck = {b(fieldcheck)}
        chips = {b(chips)}

        [detection]
        min_area = 400  # the unit the golden scene was made for (as sample_data/ecopatch.toml)

        [run]
        scheduler = "threads"
        {extra_run}
        """), encoding="utf-8")
    return cfg


def add_later_scene(site: Path, source: Path) -> Path:
    """Put a 2025-09-10 product (the 2021 data re-dated) into the site's imagery folder."""
    dst = site / "imagery" / f"{LATER}.SAFE"
    shutil.copytree(source / f"{BEFORE}.SAFE", dst)
    mtd = dst / "MTD_MSIL2A.xml"
    text = mtd.read_text(encoding="utf-8")
    mtd.write_text(text.replace("2021-09-18", "2025-09-10").replace("20210918", "20250910"), encoding="utf-8")
    return dst


def add_repeat_scene(site: Path, source: Path, date: str, **kw) -> Path:
    """Put a product showing the 2024 ground again on ``date`` into the site's imagery folder.

    ``kw`` go to :func:`ecopatch.data.datasets.write_repeat_product` (``seed``, ``cleared``, ``gain`` ...).
    """
    from ecopatch.data.datasets import load_sample_data, write_repeat_product

    return write_repeat_product(load_sample_data(source), date, out_dir=site / "imagery", **kw)


def ledger_counts(path: Path) -> dict[str, int]:
    from ecopatch.ledger import Ledger

    led = Ledger(path, create=False)
    return {"cases": len(led.cases()), "events": len(led.events()), "detections": len(led.detections()),
            "mine_records": len(led.mine_history())}


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def start_run(config: Path, *args: str, env: dict[str, str] | None = None,
              pause: tuple[str, float, Path] | None = None) -> subprocess.Popen:
    """``python -m ecopatch.cli.main run CONFIG ...`` as a real process.

    ``pause=(where, seconds, signal_file)`` starts it through ``tests/pausing.py`` instead, paused at
    the seam ``where`` ("run": before a scene's manifest; "txn": inside the ledger's write transaction).
    """
    argv = [sys.executable, "-m", "ecopatch.cli.main", "run", str(config), *args]
    if pause is not None:
        from .pausing import command

        argv = command(*pause, "cli", "run", str(config), *args)
    return subprocess.Popen(argv, env=env or child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(config: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 900) -> subprocess.CompletedProcess:
    p = start_run(config, *args, env=env)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"run exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("the run never reached its pause")
        time.sleep(0.05)
