"""Digest of ecopatch's outputs, to compare two versions of the code: before and after a change.

A refactor or a speed change must not move results.  This runs a fixed set
of analyses and writes, for every output table, what a reviewer compares:
row count, columns and dtypes, for each numeric column its sum, min and max,
for each text column a hash of its values, and for the geometries a hash of
their WKB after rounding coordinates (default 1e-7 degrees or 1e-3 m).  Two
digests are then compared with stated tolerances: equal hashes, or numbers
within a relative tolerance.

Cases (each optional with ``--cases``):

``sample``
    The bundled sample (``sample_data/``): ``assess_restoration``,
    ``detect_changes`` within the reserves, ``assess_and_detect`` and
    ``patch_statistics`` of the drone mosaic over the mines.
``oscd``
    ``detect_changes`` on two labelled OSCD cities (real Sentinel-2 L1C,
    ``../shared/data``; skipped when absent): beihai and paris.
``run``
    ``ecopatch run`` on a copy of the sample site: the ledger's cases and
    events (ids, states, tiers), the run's tables.

Usage (from the repository root)::

    python benchmarks/outputs_digest.py write before.json              # with the code as installed
    PYTHONPATH=/path/to/other/src python benchmarks/outputs_digest.py write after.json
    python benchmarks/outputs_digest.py compare before.json after.json [--rtol 1e-9]

``compare`` exits 1 and lists every difference when the digests differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ECOPATCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
#: Columns that hold wall-clock times, paths or run-time stamps: never compared.
VOLATILE = ("recorded_at", "updated_at", "run_at", "elapsed", "seconds", "path", "folder", "source", "_s")


def _h(values: Any) -> str:
    return hashlib.sha256("\x1f".join(map(str, values)).encode("utf-8")).hexdigest()[:16]


def table_digest(df: pd.DataFrame, *, ndigits_deg: int = 7, ndigits_m: int = 3) -> dict[str, Any]:
    """Row count, columns, numeric summaries, text hashes and a geometry hash of one table."""
    import shapely

    out: dict[str, Any] = {"rows": int(len(df)), "columns": [str(c) for c in df.columns], "cols": {}}
    geom_col = getattr(df, "geometry", None) if hasattr(df, "crs") else None
    for c in df.columns:
        name = str(c)
        if any(v in name for v in VOLATILE):
            continue
        s = df[c]
        if geom_col is not None and name == df.geometry.name:
            geographic = df.crs is not None and df.crs.is_geographic
            nd = ndigits_deg if geographic else ndigits_m
            g = shapely.transform(np.asarray(s.values, dtype=object), lambda xy, nd=nd: np.round(xy, nd))
            out["cols"][name] = {"kind": "geometry", "crs": str(df.crs.to_epsg() if df.crs else None),
                                 "hash": _h(shapely.to_wkb(g, hex=True)),
                                 "area_sum": float(shapely.area(g).sum())}
        elif len(s) and all(isinstance(v, dict) for v in s):
            out["cols"][name] = _mapping_digest(s)
        elif pd.api.types.is_bool_dtype(s):
            out["cols"][name] = {"kind": "bool", "true": int(s.sum())}
        elif pd.api.types.is_numeric_dtype(s):
            v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
            fin = v[np.isfinite(v)]
            out["cols"][name] = {"kind": "number", "sum": float(fin.sum()) if fin.size else 0.0,
                                 "min": float(fin.min()) if fin.size else None,
                                 "max": float(fin.max()) if fin.size else None, "nan": int((~np.isfinite(v)).sum())}
        else:
            out["cols"][name] = {"kind": "text", "hash": _h(s.astype(str).tolist())}
    return out


def _mapping_digest(s: pd.Series) -> dict[str, Any]:
    """A column of dicts (a ledger's ``attrs``): a hash of the keys and of the values that are not
    floats, and per float key the sum of its finite values, compared with the tolerance of numbers
    (a float written out in full in a text would differ in its last digit when additions change order)."""
    fixed, sums = [], {}
    for d in s:
        for k in sorted(d, key=str):
            v = d[k]
            if isinstance(v, float):
                fixed.append(f"{k}=<float>")
                if np.isfinite(v):
                    sums[f"sum:{k}"] = sums.get(f"sum:{k}", 0.0) + float(v)
            else:
                fixed.append(f"{k}={v!r}")
    return {"kind": "mapping", "hash": _h(fixed), **sums}


def _sample() -> dict[str, Any]:
    import geopandas as gpd

    import ecopatch

    d = ROOT / "sample_data"
    safes = sorted(d.glob("*.SAFE"))
    before, after = ecopatch.open_scene(safes[0]), ecopatch.open_scene(safes[1])
    mines = gpd.read_file(d / "mines.gpkg")
    reserves = gpd.read_file(d / "reserves.gpkg")
    id_field = "矿山编号" if "矿山编号" in mines else mines.columns[0]
    mines = mines.rename(columns={id_field: "patch_id"})
    out = {}
    t = ecopatch.assess_restoration(before, after, mines, progress=False)
    out["assess_restoration"] = table_digest(t)
    p = ecopatch.detect_changes(before, after, reserves, progress=False)
    out["detect_changes"] = table_digest(p)
    t2, p2 = ecopatch.assess_and_detect(before, after, mines, reserves, progress=False)
    out["assess_and_detect.table"] = table_digest(t2)
    out["assess_and_detect.patches"] = table_digest(p2)
    drone = d / "drone_YH-KS-006_20240912.tif"
    if drone.exists():
        out["patch_statistics"] = table_digest(ecopatch.patch_statistics(drone, mines, progress=False))
    return out


def _oscd() -> dict[str, Any]:
    import ecopatch

    out = {}
    for city, folder in (("beihai", SHARED / "oscd_china" / "beihai"), ("paris", SHARED / "oscd_cities" / "paris")):
        if not folder.is_dir():
            print(f"  {folder}: absent, skipped", file=sys.stderr)
            continue
        dates = dict(line.split(": ", 1) for line in (folder / "dates.txt").read_text().splitlines() if ": " in line)
        b = ecopatch.open_scene(folder / "imgs_1", date=dates["date_1"].strip())
        a = ecopatch.open_scene(folder / "imgs_2", date=dates["date_2"].strip())
        out[f"oscd.{city}"] = table_digest(ecopatch.detect_changes(b, a, progress=False))
    return out


def _run() -> dict[str, Any]:
    from ecopatch.ledger import Ledger
    from ecopatch.run.config import load_config
    from ecopatch.run.pipeline import run_pipeline

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        shutil.copytree(ROOT / "sample_data", site)
        cfg = load_config(site / "ecopatch.toml")
        res = run_pipeline(cfg, progress=False)
        out["run.exit_code"] = {"value": int(res.exit_code)}
        led = Ledger(cfg.outputs.ledger)
        out["run.cases"] = table_digest(led.cases())
        ev = led.events()
        out["run.events"] = table_digest(ev.drop(columns=[c for c in ("data", "recorded_at") if c in ev]))
        out["run.events.data"] = {"hash": _h(json.dumps(d, sort_keys=True, default=str) for d in ev.get("data", []))}
        out["run.mine_history"] = table_digest(led.mine_history())
    return out


def write(path: str, cases: list[str]) -> None:
    import ecopatch

    warnings.simplefilter("ignore")
    digest: dict[str, Any] = {"ecopatch": getattr(ecopatch, "__version__", "?"),
                              "code": str(Path(ecopatch.__file__).parent),
                              "made": time.strftime("%Y-%m-%dT%H:%M:%S"), "outputs": {}}
    for case in cases:
        t = time.perf_counter()
        digest["outputs"].update({"sample": _sample, "oscd": _oscd, "run": _run}[case]())
        print(f"{case}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    Path(path).write_text(json.dumps(digest, indent=1, ensure_ascii=False, sort_keys=True), encoding="utf-8")


def compare(a_path: str, b_path: str, rtol: float = 1e-9, atol: float = 1e-9) -> list[str]:
    """Every difference between two digests (empty when they agree within ``rtol`` / ``atol``)."""
    a = json.loads(Path(a_path).read_text(encoding="utf-8"))["outputs"]
    b = json.loads(Path(b_path).read_text(encoding="utf-8"))["outputs"]
    diffs: list[str] = []
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            diffs.append(f"{key}: only in {'the first' if key in a else 'the second'}")
            continue
        x, y = a[key], b[key]
        for k in ("rows", "columns", "value", "hash"):
            if x.get(k) != y.get(k):
                diffs.append(f"{key}: {k} {x.get(k)!r} != {y.get(k)!r}")
        for col in sorted(set(x.get("cols", {})) | set(y.get("cols", {}))):
            cx, cy = x.get("cols", {}).get(col), y.get("cols", {}).get(col)
            if cx is None or cy is None:
                continue  # a column added or dropped shows in "columns"
            for k in sorted(set(cx) | set(cy)):
                u, v = cx.get(k), cy.get(k)
                if isinstance(u, float) and isinstance(v, float):
                    if not np.isclose(u, v, rtol=rtol, atol=atol):
                        diffs.append(f"{key}.{col}: {k} {u!r} != {v!r} (rel {abs(u - v) / max(abs(u), 1e-300):.2e})")
                elif u != v:
                    diffs.append(f"{key}.{col}: {k} {u!r} != {v!r}")
    return diffs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="run the cases and write a digest (JSON)")
    w.add_argument("out")
    w.add_argument("--cases", default="sample,oscd,run", help="comma-separated: sample, oscd, run")
    c = sub.add_parser("compare", help="compare two digests; exit 1 when they differ")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--rtol", type=float, default=1e-9)
    c.add_argument("--atol", type=float, default=1e-9)
    args = ap.parse_args(argv)
    if args.cmd == "write":
        write(args.out, [s.strip() for s in args.cases.split(",") if s.strip()])
        return 0
    diffs = compare(args.a, args.b, args.rtol, args.atol)
    for d in diffs:
        print(d)
    print(f"{len(diffs)} difference(s)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
