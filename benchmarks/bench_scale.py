"""Scale benchmark: a full Sentinel-2 tile pair, a 2 × 2-tile mosaic, per-patch statistics, a drone mosaic.

Every measurement runs in a **fresh subprocess** (``--worker KIND``), so its
peak RSS is its own, and is repeated ``--repeat`` times (default 3),
interleaved (all kinds once, then all again).  Medians are reported.  The data
come from ``make_data.py`` (run it first, same ``--size``).

Measurements (``--only`` takes these group names):

floor
    The decode floor: every band file the analysis reads (B02, B03, B04,
    B08, B11, B12, SCL of both dates: 14 DEFLATE GeoTIFFs, the set ecopatch's
    scenes point to), read whole with rasterio in 256-row strips into one
    reused buffer per thread, with 1 and with 2 threads (``GDAL_CACHEMAX`` 64
    MB: each block is read once).  Also B04 + B08 of one date on 1 thread
    (the issue's "2-band tile" anchor), and the mosaic's bands on 2 threads.
assess, detect, both
    ``assess_restoration(before, after, mines)``, ``detect_changes(before,
    after, reserves=zones)``, and both in one process; default (threaded)
    scheduler, ``progress=False``.  Opening the scenes and reading the
    polygons is timed separately ("setup").
joint
    ``assess_and_detect(before, after, mines, zones)``: both jobs from one
    windowed pass (each tile decoded once for both; results identical to
    ``both``), on the tile, on the mosaic and on the LocalCluster below.
mosaic
    ``both`` on the 2 × 2 mosaic (4000 mines, 2000 zones at full size).
dask
    ``both`` with ``scheduler=client``, a ``distributed.LocalCluster(n_workers=2,
    threads_per_worker=1)`` started in the subprocess; its start-up, which
    includes importing ecopatch on the workers (as a long-lived cluster has),
    is timed separately and not counted in the call time.
patchstats
    Per-patch class areas and means of ``tile/ndvi_classes_after.tif`` for
    100 / 10 000 / 100 000 random patches: ``ecopatch.patch_statistics`` vs
    ``exactextract.exact_extract(["count", "mean", "unique", "frac"])`` vs
    ``rasterstats.zonal_stats(categorical=True, stats="count mean")`` (on
    the first ``--rasterstats-max`` patches if fewer than asked, then scaled
    up linearly: stated in the table) vs xarray-spatial ``zonal.stats`` +
    ``zonal.crosstab`` on a zone raster burnt from the patches (pixel
    centres; where patches overlap, the later patch gets the pixel).  Each
    timing includes reading the patches (GeoPackage) and, for
    xarray-spatial, reading the raster and burning the zones.
drone
    ``assess_restoration(before=tile, after=drone mosaic, mines=drone_mines)``; and
    the drone decode floor (the whole mosaic decoded at full resolution, 2
    threads).

Run by hand::

    /work/venv/bin/python benchmarks/bench_scale.py --size 2048 --repeat 1     # debug the harness
    /work/venv/bin/python benchmarks/bench_scale.py                             # full size, ~25 min on 2 cores
    /work/venv/bin/python benchmarks/bench_scale.py --only patchstats --patch-counts 100,10000
    /work/venv/bin/python benchmarks/bench_scale.py --profile                   # py-spy of `both`

Needs the ``bench`` extra (exactextract, rasterstats, xarray-spatial, xarray,
psutil, distributed); ``--profile`` needs py-spy.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from make_data import CLASSES, FULL, PATCH_COUNTS, workdir  # noqa: E402

GIB = 1024**3


# ===========================================================================
# Workers (one measurement each, in a fresh process)
# ===========================================================================
def _scenes(root: Path):  # noqa: ANN202
    import ecopatch

    safes = sorted(root.glob("*.SAFE"), key=lambda p: p.name.split("_")[2])
    return ecopatch.open_scene(safes[0]), ecopatch.open_scene(safes[1])


def _band_files(root: Path) -> list[str]:
    """Every file the scenes of ``root`` read: their bands and cloud masks, both dates."""
    files = []
    for sc in _scenes(root):
        files += [ref.path for _, ref in sc.band_refs]
        if sc.mask is not None:
            files.append(sc.mask.path)
    return files


def _decode(files: list[str], threads: int, strip: int = 256, chunksize: int = 4) -> dict:
    """Read ``files`` whole in strips of about ``strip`` rows, one reused buffer per thread and shape.

    Strips are whole multiples of the file's block height (tiles or GDAL strips), all bands of a
    strip in one read, so that every block is decoded once.  Also ``bench_e2e.py``'s decode floor.
    """
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import rasterio
    from rasterio.windows import Window

    local = threading.local()
    tasks = []
    px = 0
    for f in files:
        with rasterio.open(f) as ds:
            h, w, dtype, count = ds.height, ds.width, ds.dtypes[0], ds.count
            bh = ds.block_shapes[0][0]
        rows = bh * max(1, strip // bh) if bh < h else strip
        px += h * w * count
        for r0 in range(0, h, rows):
            tasks.append((f, r0, min(rows, h - r0), w, dtype, count, rows))

    def run(task: tuple) -> int:
        f, r0, nrows, w, dtype, count, rows = task
        dss = getattr(local, "ds", None)
        if dss is None:
            dss = local.ds = {}
            local.buf = {}
        ds = dss.get(f) or dss.setdefault(f, rasterio.open(f))
        key = (dtype, count, rows, w)
        buf = local.buf.get(key)
        if buf is None:
            buf = local.buf[key] = np.empty((count, rows, w), dtype=dtype)
        out = buf[:, :nrows]
        ds.read(window=Window(0, r0, w, nrows), out=out)
        return int(np.nan_to_num(out[0, ::61, ::61]).sum())  # a checksum (float files may hold NaN)

    with rasterio.Env(GDAL_CACHEMAX=64 * 1024 * 1024):
        t = time.perf_counter()
        if threads == 1:
            total = sum(run(tk) for tk in tasks)
        else:
            with ThreadPoolExecutor(threads) as pool:
                total = sum(pool.map(run, tasks, chunksize=chunksize))
        dt = time.perf_counter() - t
    return {"t_call_s": dt, "files": len(files), "pixels": px, "checksum": total}


def _patches(path: Path, id_field: str | None = None):  # noqa: ANN202
    import ecopatch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ecopatch.read_patches(path, id_field=id_field)


def _summ_assess(t) -> dict:  # noqa: ANN001
    return {"rows": len(t), "damaged_m2": float(t["damaged_m2"].sum()), "restored_m2": float(t["restored_m2"].sum()),
            "observed_m2": float(t["observed_m2"].sum())}


def _summ_detect(p) -> dict:  # noqa: ANN001
    out = {"patches": len(p)}
    if len(p):
        out["area_m2"] = float(p["area_m2"].sum())
        if "change_type" in p.columns:
            out["types"] = dict(Counter(p["change_type"].astype(str)))
    return out


def w_analysis(args: argparse.Namespace, what: str, dataset: str, scheduler: str) -> dict:
    import ecopatch

    root = workdir(args.size) / dataset
    res: dict = {}
    t = time.perf_counter()
    before, after = _scenes(root)
    mines = _patches(root / "mines.gpkg", "矿山编号")
    zones = _patches(root / "reserves.gpkg")
    res["t_setup_s"] = time.perf_counter() - t
    res["n_mines"], res["n_zones"] = len(mines), len(zones)
    # the modules the calls use lazily (numba, scipy, the kernels): imported before the timed call, as
    # in a notebook or a long-lived worker (the Dask workers import them in their start-up, the floor
    # imports rasterio before its clock starts); timed apart
    t = time.perf_counter()
    _import_ecopatch()
    res["t_import_s"] = time.perf_counter() - t
    sched = None
    cluster = client = None
    if scheduler == "dask":
        from distributed import Client, LocalCluster

        t = time.perf_counter()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        # a long-lived cluster has imported the library: do it here, in the start-up time
        client.run(_import_ecopatch)
        sched = client
        res["t_cluster_start_s"] = time.perf_counter() - t
    t_all = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if what in ("assess", "both"):
            t = time.perf_counter()
            table = ecopatch.assess_restoration(before, after, mines, scheduler=sched, progress=False)
            res["t_assess_s"] = time.perf_counter() - t
            res["assess"] = _summ_assess(table)
        if what in ("detect", "both"):
            t = time.perf_counter()
            pat = ecopatch.detect_changes(before, after, reserves=zones, scheduler=sched, progress=False)
            res["t_detect_s"] = time.perf_counter() - t
            res["detect"] = _summ_detect(pat)
        if what == "joint":
            table, pat = ecopatch.assess_and_detect(before, after, mines, zones, scheduler=sched, progress=False)
            res["assess"], res["detect"] = _summ_assess(table), _summ_detect(pat)
    res["t_call_s"] = time.perf_counter() - t_all
    if client is not None:
        client.close()
        cluster.close()
    return res


def _import_ecopatch() -> bool:
    """Import what the calls use, before they are timed (what a notebook or long-lived worker has done).

    Run in the measuring process and on each Dask worker.
    """
    import ecopatch.analyses.encroachment  # noqa: F401
    import ecopatch.analyses.joint  # noqa: F401
    import ecopatch.analyses.restoration  # noqa: F401

    return True


def w_warmup(args: argparse.Namespace) -> dict:
    """A few mines, zones and patches: fills numba's on-disk cache of the snapshot (not reported)."""
    import geopandas as gpd

    import ecopatch

    root = workdir(args.size) / "tile"
    before, after = _scenes(root)
    mines = _patches(root / "mines.gpkg", "矿山编号").iloc[:5]
    zones = _patches(root / "reserves.gpkg").iloc[:3]
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ecopatch.assess_restoration(before, after, mines, progress=False)
        ecopatch.detect_changes(before, after, reserves=zones, progress=False)
        gdf = gpd.read_file(workdir(args.size) / "patches" / "patches_100.gpkg", engine="pyogrio")
        ecopatch.patch_statistics(root / "ndvi_classes_after.tif", gdf, classes=list(CLASSES), progress=False)
    return {"t_call_s": time.perf_counter() - t}


def w_drone(args: argparse.Namespace) -> dict:
    import ecopatch

    root = workdir(args.size)
    res: dict = {}
    t = time.perf_counter()
    before, _ = _scenes(root / "tile")
    after = ecopatch.open_scene(root / "drone" / "drone_rgb.tif")
    mines = _patches(root / "drone" / "drone_mines.gpkg", "矿山编号")
    res["t_setup_s"] = time.perf_counter() - t
    res["n_mines"] = len(mines)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = ecopatch.assess_restoration(before, after, mines, progress=False)
    res["t_call_s"] = time.perf_counter() - t
    res["assess"] = _summ_assess(table)
    res["per_mine"] = {str(k): {"restored_m2": float(r), "damaged_m2": float(d)}
                       for k, r, d in zip(table["patch_id"], table["restored_m2"], table["damaged_m2"])}
    return res


def w_patchstats(args: argparse.Namespace, tool: str, n: int) -> dict:
    import geopandas as gpd

    root = workdir(args.size)
    raster = str(root / "tile" / "ndvi_classes_after.tif")
    path = root / "patches" / f"patches_{n}.gpkg"
    out_dir = root / "results"
    out_dir.mkdir(exist_ok=True)
    limit = n if tool != "rasterstats" else min(n, args.rasterstats_max)
    res: dict = {"n": n, "n_run": limit}
    t0 = time.perf_counter()
    gdf = gpd.read_file(path, engine="pyogrio")
    if limit < n:
        gdf = gdf.iloc[:limit]
    res["t_read_s"] = time.perf_counter() - t0
    if tool == "ecopatch":
        import ecopatch

        df = ecopatch.patch_statistics(raster, gdf, classes=list(CLASSES), progress=False)
        table = df.rename(columns={f"area_{c}_m2": f"a{c}" for c in CLASSES})[
            ["patch_id", "observed_m2", "mean", *[f"a{c}" for c in CLASSES]]]
        table = table.assign(unit="m2")
    elif tool == "exactextract":
        from exactextract import exact_extract

        df = exact_extract(raster, gdf, ["count", "mean", "unique", "frac"], include_cols=["patch_id"],
                           output="pandas", progress=False)
        import numpy as np

        cols = {f"a{c}": np.zeros(len(df)) for c in CLASSES}
        for i, (u, f, cnt) in enumerate(zip(df["unique"], df["frac"], df["count"])):
            for v, fr in zip(np.atleast_1d(u), np.atleast_1d(f)):
                if int(v) in CLASSES:
                    cols[f"a{int(v)}"][i] = fr * cnt
        table = gpd.pd.DataFrame({"patch_id": df["patch_id"], "observed_m2": df["count"], "mean": df["mean"], **cols})
        table = table.assign(unit="px")
    elif tool == "rasterstats":
        from rasterstats import zonal_stats

        stats = zonal_stats(list(gdf.geometry), raster, stats=["count", "mean"], categorical=True, nodata=255)
        table = gpd.pd.DataFrame({
            "patch_id": gdf["patch_id"].to_numpy(),
            "observed_m2": [s.get("count") or 0 for s in stats],
            "mean": [s.get("mean") for s in stats],
            **{f"a{c}": [s.get(c, 0) for s in stats] for c in CLASSES},
        }).assign(unit="px")
    elif tool == "xrspatial":
        import numpy as np
        import rasterio
        import xarray as xr
        from rasterio import features
        from xrspatial import zonal

        t = time.perf_counter()
        with rasterio.open(raster) as ds:
            vals = ds.read(1)
            transform, shape = ds.transform, ds.shape
        res["t_raster_read_s"] = time.perf_counter() - t
        t = time.perf_counter()
        zone_ids = np.arange(1, len(gdf) + 1, dtype=np.int32)
        zones = features.rasterize(zip(gdf.geometry, zone_ids), out_shape=shape, transform=transform, fill=0,
                                   dtype="int32")
        res["t_rasterize_s"] = time.perf_counter() - t
        t = time.perf_counter()
        zx = xr.DataArray(zones, dims=("y", "x"))
        vf = vals.astype(np.float32)
        vf[vals == 255] = np.nan
        st = zonal.stats(zx, xr.DataArray(vf, dims=("y", "x")), stats_funcs=["mean", "count"])
        ct = zonal.crosstab(zx, xr.DataArray(vals, dims=("y", "x")), cat_ids=list(CLASSES), nodata_values=255)
        res["t_zonal_s"] = time.perf_counter() - t
        st = st[st["zone"] != 0].set_index("zone")
        ct = ct[ct["zone"] != 0].set_index("zone")
        table = gpd.pd.DataFrame({"patch_id": gdf["patch_id"].to_numpy()}, index=zone_ids)
        table["observed_m2"] = st["count"].reindex(zone_ids).fillna(0).to_numpy()
        table["mean"] = st["mean"].reindex(zone_ids).to_numpy()
        for c in CLASSES:
            col = c if c in ct.columns else str(c)
            table[f"a{c}"] = ct[col].reindex(zone_ids).fillna(0).to_numpy() if col in ct.columns else 0.0
        table = table.reset_index(drop=True).assign(unit="px")
    else:
        raise SystemExit(f"unknown tool {tool}")
    res["t_call_s"] = time.perf_counter() - t0
    res["rows"] = len(table)
    table.to_pickle(out_dir / f"ps_{tool}_{n}.pkl")
    return res


def worker_main(args: argparse.Namespace) -> None:
    t_start = time.perf_counter()
    import ecopatch

    snap = os.environ.get("ECOPATCH_BENCH_SNAPSHOT")
    if snap and not Path(ecopatch.__file__).resolve().is_relative_to(Path(snap).resolve()):
        raise SystemExit(f"ecopatch imported from {ecopatch.__file__}, not from the snapshot {snap}")
    kind = args.worker
    parts = kind.split(":")
    if parts[0] == "floor":
        _, dataset, bands, threads = parts
        root = workdir(args.size)
        if dataset == "drone":
            files = [str(root / "drone" / "drone_rgb.tif")]
            res = _decode(files, int(threads), strip=512)
        else:
            files = _band_files(root / dataset)
            if bands == "2band":
                files = [f for f in files if "20240912" in f and ("_B04_" in f or "_B08_" in f)]
            res = _decode(files, int(threads))
    elif parts[0] in ("assess", "detect", "both", "joint"):
        res = w_analysis(args, parts[0], parts[1], parts[2])
    elif parts[0] == "drone":
        res = w_drone(args)
    elif parts[0] == "warmup":
        res = w_warmup(args)
    elif parts[0] == "ps":
        res = w_patchstats(args, parts[1], int(parts[2]))
    else:
        raise SystemExit(f"unknown worker {kind}")
    ru_self = resource.getrusage(resource.RUSAGE_SELF)
    ru_ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    res.update({
        "kind": kind,
        "maxrss_self_bytes": ru_self.ru_maxrss * 1024,
        "maxrss_children_bytes": ru_ch.ru_maxrss * 1024,
        "cpu_s": ru_self.ru_utime + ru_self.ru_stime + ru_ch.ru_utime + ru_ch.ru_stime,
        "t_in_process_s": time.perf_counter() - t_start,
        "threads_seen": threading.active_count(),
        "ecopatch_file": ecopatch.__file__,
    })
    Path(args.result).write_text(json.dumps(res))


# ===========================================================================
# Harness
# ===========================================================================
def _busy_cpu_s() -> float:
    import psutil

    c = psutil.cpu_times()
    return c.user + c.nice + c.system + getattr(c, "irq", 0) + getattr(c, "softirq", 0) + getattr(c, "steal", 0)


def wait_quiet(args: argparse.Namespace) -> float:
    """Wait until other processes use less than ``--quiet-cores`` CPU cores over 5 s (at most ``--quiet-wait`` s).

    Returns the seconds waited.  Other engineers' test runs share this 2-core
    machine; a measurement taken while one of them holds a core says nothing
    about ecopatch.  The load during each run is recorded either way.
    """
    t0 = time.perf_counter()
    while True:
        b0 = _busy_cpu_s()
        time.sleep(5.0)
        other = (_busy_cpu_s() - b0) / 5.0
        waited = time.perf_counter() - t0
        if other < args.quiet_cores or waited >= args.quiet_wait:
            return waited


def run_one(kind: str, args: argparse.Namespace, extra: list[str] | None = None, prefix: list[str] | None = None
            ) -> dict:
    """Run one measurement in a fresh subprocess; sample its process tree's RSS every 0.1 s."""
    import psutil

    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        result = f.name
    env = dict(os.environ)
    if args.snapshot:
        env["PYTHONPATH"] = str(args.snapshot) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["ECOPATCH_BENCH_SNAPSHOT"] = str(args.snapshot)
    for kv in args.env or []:
        k, _, v = kv.partition("=")
        env[k] = v
    cmd = [*(prefix or []), sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--size", str(args.size),
           "--result", result, "--rasterstats-max", str(args.rasterstats_max), *(extra or [])]
    load_before = os.getloadavg()
    busy0 = _busy_cpu_s()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO), env=env)
    proc = psutil.Process(p.pid)
    peak_tree = peak_one = 0
    out_lines: list[str] = []
    err_lines: list[str] = []
    t_out = threading.Thread(target=lambda: out_lines.extend(p.stdout), daemon=True)
    t_err = threading.Thread(target=lambda: err_lines.extend(p.stderr), daemon=True)
    t_out.start()
    t_err.start()
    while p.poll() is None:
        try:
            procs = [proc, *proc.children(recursive=True)]
            rss = []
            for q in procs:
                try:
                    rss.append(q.memory_info().rss)
                except psutil.Error:
                    pass
            peak_tree = max(peak_tree, sum(rss))
            peak_one = max(peak_one, max(rss, default=0))
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    busy = _busy_cpu_s() - busy0
    t_out.join(5)
    t_err.join(5)
    row = {"kind": kind, "wall_process_s": wall, "load_before": load_before, "load_after": os.getloadavg(),
           "returncode": p.returncode, "peak_tree_sampled_bytes": peak_tree, "peak_one_sampled_bytes": peak_one}
    if p.returncode == 0 and os.path.getsize(result):
        row.update(json.loads(Path(result).read_text()))
        row["other_cpu_cores"] = max(0.0, (busy - row["cpu_s"]) / wall)
    else:
        row["error"] = "".join(err_lines)[-3000:]
    os.unlink(result)
    return row


def _plan(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(group, worker kind) in run order."""
    only = set(args.only.split(","))
    plan = []
    if "floor" in only:
        plan += [("floor", "floor:tile:all:1"), ("floor", "floor:tile:all:2"), ("floor", "floor:tile:2band:1")]
    if "assess" in only:
        plan.append(("assess", "assess:tile:threads"))
    if "detect" in only:
        plan.append(("detect", "detect:tile:threads"))
    if "both" in only:
        plan.append(("both", "both:tile:threads"))
    if "joint" in only:
        plan += [("joint", "joint:tile:threads"), ("joint", "joint:mosaic:threads"), ("joint", "joint:tile:dask")]
    if "mosaic" in only:
        plan += [("mosaic", "floor:mosaic:all:2"), ("mosaic", "both:mosaic:threads")]
    if "dask" in only:
        plan.append(("dask", "both:tile:dask"))
    if "patchstats" in only:
        for n in [int(x) for x in args.patch_counts.split(",")]:
            for tool in args.tools.split(","):
                plan.append(("patchstats", f"ps:{tool}:{n}"))
    if "drone" in only:
        plan += [("drone", "floor:drone:all:2"), ("drone", "drone")]
    return plan


def _med(rows: list[dict], key: str) -> float | None:
    v = [r[key] for r in rows if key in r and r[key] is not None]
    return statistics.median(v) if v else None


def _max(rows: list[dict], key: str) -> float | None:
    v = [r[key] for r in rows if key in r and r[key] is not None]
    return max(v) if v else None


def _last_attempt(rows: list[dict], r: dict) -> dict:
    same = [x for x in rows if x.get("repeat") == r.get("repeat")]
    return max(same, key=lambda x: x.get("attempt", 0))


def summarise(runs: list[dict]) -> dict:
    by = defaultdict(list)
    for r in runs:
        by[r["kind"]].append(r)
    out = {}
    for kind, rows in by.items():
        ok_all = [r for r in rows if r.get("returncode") == 0]
        # a disturbed run that was run again is left out; one that stayed disturbed after the retries is kept
        ok = [r for r in ok_all if not (r.get("disturbed") and r is not _last_attempt(rows, r))]
        s = {"n_ok": len(ok), "n_runs": len(rows), "n_disturbed_kept": sum(bool(r.get("disturbed")) for r in ok),
             "n_disturbed_rerun": len(ok_all) - len(ok)}
        for key in ("t_call_s", "t_assess_s", "t_detect_s", "t_setup_s", "t_cluster_start_s", "wall_process_s",
                    "t_read_s", "t_raster_read_s", "t_rasterize_s", "t_zonal_s", "other_cpu_cores", "cpu_s"):
            m = _med(ok, key)
            if m is not None:
                s[key] = m
                s[key + "_all"] = [r[key] for r in ok]
        for key in ("maxrss_self_bytes", "maxrss_children_bytes", "peak_tree_sampled_bytes"):
            if _max(ok, key) is not None:
                s[key + "_max"] = _max(ok, key)
                s[key + "_median"] = _med(ok, key)
        s["load_before"] = [r["load_before"][0] for r in rows]
        if not ok and rows:
            s["error"] = rows[-1].get("error", "")[-1500:]
        for key in ("assess", "detect", "n_mines", "n_zones", "n_run", "n", "files", "pixels", "per_mine", "rows"):
            if ok and key in ok[0]:
                s[key] = ok[0][key]
        if ok and ok[0].get("n_run", 0) and ok[0]["n_run"] < ok[0]["n"]:
            # run on a subset: reading the whole file is timed as is, the per-patch work scaled linearly
            f = ok[0]["n"] / ok[0]["n_run"]
            s["t_call_extrapolated_s"] = statistics.median(r["t_read_s"] + (r["t_call_s"] - r["t_read_s"]) * f
                                                           for r in ok)
        out[kind] = s
    return out


# ---------------------------------------------------------------------------
# Agreement of the per-patch statistics with exactextract
# ---------------------------------------------------------------------------
def compare_patchstats(size: int, counts: list[int], tools: list[str]) -> dict:
    import numpy as np
    import pandas as pd
    import rasterio
    import shapely

    from ecopatch.geo.geodesy import geodesic_area_m2

    root = workdir(size)
    with rasterio.open(root / "tile" / "ndvi_classes_after.tif") as ds:
        transform, crs = ds.transform, ds.crs
    out = {}
    for n in counts:
        ref_p = root / "results" / f"ps_exactextract_{n}.pkl"
        if not ref_p.exists():
            continue
        ee = pd.read_pickle(ref_p).set_index("patch_id")
        # true ground area of the cell under each patch's centroid (ecopatch's geodesy), to turn
        # exactextract's coverage-weighted pixel counts into m² (cell areas vary by < 1e-6 across a patch)
        import geopandas as gpd

        g = gpd.read_file(root / "patches" / f"patches_{n}.gpkg", engine="pyogrio").set_index("patch_id")
        c = shapely.centroid(g.geometry.to_numpy())
        col = np.floor((shapely.get_x(c) - transform.c) / transform.a)
        row = np.floor((shapely.get_y(c) - transform.f) / transform.e)
        x0 = transform.c + col * transform.a
        y0 = transform.f + row * transform.e
        cells = shapely.box(x0, y0 + transform.e, x0 + transform.a, y0)
        cell_m2 = pd.Series(geodesic_area_m2(cells, crs), index=g.index)
        for tool in tools:
            if tool == "exactextract":
                continue
            p = root / "results" / f"ps_{tool}_{n}.pkl"
            if not p.exists():
                continue
            t = pd.read_pickle(p).set_index("patch_id")
            ids = t.index
            e = ee.loc[ids]
            scale = cell_m2.loc[ids].to_numpy()
            factor = 1.0 if t["unit"].iloc[0] == "m2" else scale
            cls_cols = [f"a{k}" for k in CLASSES]
            a_tool = t[cls_cols].to_numpy() * np.asarray(factor).reshape(-1, 1)
            a_ee = e[cls_cols].to_numpy() * scale.reshape(-1, 1)
            obs_tool = t["observed_m2"].to_numpy() * factor
            obs_ee = e["observed_m2"].to_numpy() * scale
            diff = np.abs(a_tool - a_ee)
            with np.errstate(invalid="ignore", divide="ignore"):
                rel_cls = np.where(a_ee > 0, diff / a_ee, np.where(diff > 0, np.inf, 0.0))
                rel_obs = np.where(obs_ee > 0, np.abs(obs_tool - obs_ee) / obs_ee, 0.0)
                rel_patch = diff.sum(axis=1) / np.where(obs_ee > 0, obs_ee, np.nan)
                mean_diff = np.abs(t["mean"].to_numpy(dtype=float) - e["mean"].to_numpy(dtype=float))
            sig = a_ee >= 0.01 * scale.reshape(-1, 1)  # class areas of at least 1 % of a cell
            out[f"{tool}:{n}"] = {
                "patches": len(ids),
                "class_area_max_rel_err": float(np.nanmax(rel_cls[sig])) if sig.any() else None,
                "class_area_share_within_0.01pct": float(np.mean(rel_cls[sig] <= 1e-4)) if sig.any() else None,
                "class_area_median_rel_err": float(np.nanmedian(rel_cls[sig])) if sig.any() else None,
                "patch_sum_abs_class_err_over_observed_max": float(np.nanmax(rel_patch)),
                "patch_sum_abs_class_err_over_observed_median": float(np.nanmedian(rel_patch)),
                "observed_max_rel_err": float(np.max(rel_obs)),
                "observed_median_rel_err": float(np.median(rel_obs)),
                "mean_max_abs_diff": float(np.nanmax(mean_diff)) if np.isfinite(mean_diff).any() else None,
                "total_class_area_rel_err": float((a_tool.sum() - a_ee.sum()) / a_ee.sum()),
                "patches_with_no_pixel": int(np.sum(obs_tool == 0)),
            }
    return out


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
def _gib(b: float | None) -> str:
    return "" if b is None else f"{b / GIB:.2f}"


def _s(v: float | None, nd: int = 1) -> str:
    return "" if v is None else f"{v:.{nd}f}"


def report(res: dict) -> str:
    s = res["summary"]
    lines = ["| measurement | median call s | runs (call s) | process wall s | peak RSS GiB (max) "
             "| children / tree GiB | other load (cores) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for kind, v in s.items():
        if v["n_ok"] == 0:
            lines.append(f"| {kind} | FAILED: {v.get('error', '')[-120:]!r} | | | | | |")
            continue
        runs = ", ".join(f"{x:.1f}" for x in v.get("t_call_s_all", []))
        if "t_call_extrapolated_s" in v:
            runs += f" (on {v['n_run']} of {v['n']} patches; scaled to all: {v['t_call_extrapolated_s']:.1f} s)"
        ch = _gib(v.get("maxrss_children_bytes_max")) + " / " + _gib(v.get("peak_tree_sampled_bytes_max"))
        lines.append(f"| {kind} | {_s(v.get('t_call_s'), 2)} | {runs} | {_s(v.get('wall_process_s'))} | "
                     f"{_gib(v.get('maxrss_self_bytes_max'))} | {ch} | {_s(v.get('other_cpu_cores'), 2)} |")
    lines.append("")
    if res.get("ratios"):
        lines += ["| target | measured | limit | verdict |", "| --- | --- | --- | --- |"]
        for r in res["ratios"]:
            lines.append(f"| {r['target']} | {r['measured']} | {r['limit']} | {r['verdict']} |")
    if res.get("agreement"):
        lines += ["", "| tool:patches | class area max rel err | share within 0.01 % | observed max rel err | "
                  "total class area rel err | patches with no pixel |", "| --- | --- | --- | --- | --- | --- |"]
        for k, a in res["agreement"].items():
            lines.append(f"| {k} | {a['class_area_max_rel_err']:.2e} | {a['class_area_share_within_0.01pct']:.4f} | "
                         f"{a['observed_max_rel_err']:.2e} | {a['total_class_area_rel_err']:+.2e} | "
                         f"{a['patches_with_no_pixel']} |")
    return "\n".join(lines)


def ratios(s: dict, agreement: dict) -> list[dict]:
    out = []

    def get(kind: str, key: str = "t_call_s") -> float | None:
        return s.get(kind, {}).get(key)

    def add(target: str, value: float | None, limit: float, better: str, fmt: str = "{:.2f}") -> None:
        if value is None:
            return
        ok = value <= limit if better == "le" else value >= limit
        by = (value / limit - 1) * 100
        verdict = "met" if ok else "NOT met"
        verdict += f" ({by:+.0f} % vs limit)"
        out.append({"target": target, "measured": fmt.format(value), "limit": ("≤ " if better == "le" else "≥ ")
                    + fmt.format(limit), "verdict": verdict, "value": value, "limit_value": limit, "met": ok})

    f1, f2 = get("floor:tile:all:1"), get("floor:tile:all:2")
    both = get("both:tile:threads")
    if both and f2:
        add("assess+detect wall / decode floor (2 threads)", both / f2, 2.5, "le")
    if both and f1:
        add("assess+detect wall / decode floor (1 thread)", both / f1, 2.5, "le")
    rss = s.get("both:tile:threads", {}).get("maxrss_self_bytes_max")
    if rss:
        add("assess+detect peak RSS, GiB", rss / GIB, 1.0, "le")
    rss_m = s.get("both:mosaic:threads", {}).get("maxrss_self_bytes_max")
    if rss and rss_m:
        add("mosaic peak RSS / tile peak RSS (±10 %)", rss_m / rss, 1.10, "le", "{:.3f}")
    if rss_m:
        add("mosaic assess+detect peak RSS, GiB", rss_m / GIB, 1.0, "le")
    fm, bm = get("floor:mosaic:all:2"), get("both:mosaic:threads")
    if fm and bm:
        add("mosaic assess+detect wall / mosaic decode floor (2 threads)", bm / fm, 2.5, "le")
    dk = get("both:tile:dask")
    if dk and both:
        add("LocalCluster(2×1) / threaded, assess+detect", dk / both, 1.3, "le")
    for n, lim in ((100, 1.0), (10_000, 3.0), (100_000, 5.0)):
        e, x = get(f"ps:ecopatch:{n}"), get(f"ps:exactextract:{n}")
        if e and x:
            add(f"patch stats, {n} patches: exactextract time / ecopatch time", x / e, lim, "ge")
        ew = get(f"ps:ecopatch:{n}", "wall_process_s")
        xw = get(f"ps:exactextract:{n}", "wall_process_s")
        if n == 100 and ew and xw:
            add("patch stats, 100 patches, whole process: exactextract / ecopatch", xw / ew, 1.0, "ge")
        a = agreement.get(f"ecopatch:{n}")
        if a and a["class_area_max_rel_err"] is not None:
            add(f"patch stats, {n} patches: max class-area rel. diff vs exactextract", a["class_area_max_rel_err"],
                1e-4, "le", "{:.2e}")
    joint, rss_j = get("joint:tile:threads"), get("joint:tile:threads", "maxrss_self_bytes_max")
    if joint and f2:
        add("assess_and_detect (one pass) wall / decode floor (2 threads)", joint / f2, 2.5, "le")
    if joint and both:
        add("assess_and_detect (one pass) wall / assess + detect wall", joint / both, 1.0, "le")
    if rss_j:
        add("assess_and_detect peak RSS, GiB", rss_j / GIB, 1.0, "le")
    rss_jm = get("joint:mosaic:threads", "maxrss_self_bytes_max")
    if rss_j and rss_jm:
        add("assess_and_detect: mosaic peak RSS / tile peak RSS (±10 %)", rss_jm / rss_j, 1.10, "le", "{:.3f}")
    jd = get("joint:tile:dask")
    if jd and joint:
        add("assess_and_detect: LocalCluster(2×1) / threaded", jd / joint, 1.3, "le")
    dr = s.get("drone", {}).get("maxrss_self_bytes_max")
    if dr:
        add("drone mosaic assessment peak RSS, GiB", dr / GIB, 1.0, "le")
    return out


def _code_state() -> dict:
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception:  # noqa: BLE001
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted_src": git("status", "--porcelain", "src").splitlines()}


def snapshot_src(root: Path) -> tuple[Path, str]:
    """Copy ``src/ecopatch`` to ``root/_snapshot/<hash>/`` so that every measurement of a run uses the same code.

    The library is being edited while benchmarks run; the workers import the
    copy (``PYTHONPATH``) and check they did.
    """
    import shutil

    h = hashlib.sha256()
    src = REPO / "src" / "ecopatch"
    for p in sorted(src.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(src)).encode())
            h.update(p.read_bytes())
    digest = h.hexdigest()[:16]
    dest = root / "_snapshot" / digest
    if not (dest / "ecopatch" / "__init__.py").exists():
        tmp = root / "_snapshot" / f".{digest}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(src, tmp / "ecopatch", ignore=shutil.ignore_patterns("__pycache__"))
        os.replace(tmp, dest)
    # Byte-compile the copy, as `pip install` does: with PYTHONDONTWRITEBYTECODE set (as on the
    # benchmark machine) every worker would otherwise compile ecopatch's sources again on import,
    # about 25 ms of a 100-patch call that the other tools, installed with bytecode, do not pay.
    import compileall

    compileall.compile_dir(dest / "ecopatch", quiet=1)
    return dest, digest


def _env() -> dict:
    import numpy
    import psutil
    import rasterio

    vers = {"python": platform.python_version(), "numpy": numpy.__version__, "rasterio": rasterio.__version__,
            "gdal": rasterio.__gdal_version__}
    for mod in ("exactextract", "rasterstats", "xrspatial", "dask", "distributed", "numba", "shapely"):
        try:
            vers[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            vers[mod] = None
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "mem_gib": round(psutil.virtual_memory().total / GIB, 1),
            "versions": vers, "gdal_cachemax_env": os.environ.get("GDAL_CACHEMAX"),
            "ecopatch_num_workers_env": os.environ.get("ECOPATCH_NUM_WORKERS")}


def _py_spy() -> str:
    """py-spy on PATH, else next to this interpreter (a venv that is not activated)."""
    import shutil

    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    return found


def profile_both(args: argparse.Namespace) -> dict:
    """py-spy (all threads, 50 Hz) of the `both` subprocess: top functions by own and by inclusive samples."""
    root = workdir(args.size)
    run_one("warmup", args)
    raw = root / "profile_both.txt"
    row = run_one("both:tile:threads", args,
                  prefix=[_py_spy(), "record", "-r", "50", "-f", "raw", "-o", str(raw), "--"])
    own: Counter = Counter()
    incl: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        n = int(n)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    prof = {"samples": total, "run": {k: row.get(k) for k in ("t_call_s", "t_assess_s", "t_detect_s",
                                                             "maxrss_self_bytes", "wall_process_s")},
            "own_top": [(f, n / total) for f, n in own.most_common(40)],
            "inclusive_top": [(f, n / total) for f, n in incl.most_common(80)]}
    (root / "profile_both.json").write_text(json.dumps(prof, indent=1, ensure_ascii=False))
    return prof


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=FULL, help=f"tile size made by make_data.py (default {FULL})")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (default 3); medians reported")
    ap.add_argument("--only", default="floor,assess,detect,both,joint,mosaic,dask,patchstats,drone",
                    help="groups to run (default all)")
    ap.add_argument("--patch-counts", default=",".join(str(n) for n in PATCH_COUNTS))
    ap.add_argument("--tools", default="ecopatch,exactextract,rasterstats,xrspatial")
    ap.add_argument("--rasterstats-max", type=int, default=10_000,
                    help="run rasterstats on at most this many patches (default 10000) and scale up")
    ap.add_argument("--json", type=Path, default=None,
                    help="results file (default benchmarks/results_scale.json at full size, else in _work/size<N>/)")
    ap.add_argument("--profile", action="store_true", help="only: py-spy profile of one `both` run")
    ap.add_argument("--env", action="append", metavar="KEY=VALUE",
                    help="set an environment variable in every measurement (diagnostics only, e.g. GDAL_CACHEMAX=64)")
    ap.add_argument("--quiet-cores", type=float, default=0.25,
                    help="before each measurement wait until other processes use fewer cores than this (default 0.25)")
    ap.add_argument("--quiet-wait", type=float, default=900,
                    help="longest wait for quiet, s (default 900; 0 = don't wait)")
    ap.add_argument("--retry-disturbed", type=int, default=2,
                    help="run a measurement again (at most this often) when others used > --quiet-cores during it")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--snapshot", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args)
        return 0
    root = workdir(args.size)
    if not (root / "tile" / "ndvi_classes_after.tif").exists():
        print(f"no benchmark data in {root}: run  python benchmarks/make_data.py --size {args.size}", file=sys.stderr)
        return 1
    args.snapshot, digest = snapshot_src(root)
    code = {**_code_state(), "snapshot": str(args.snapshot), "snapshot_sha256": digest}  # the code copied now
    print(f"measuring the code in {args.snapshot} (copy of src/ecopatch, sha256 {digest})", flush=True)
    if args.profile:
        prof = profile_both(args)
        print(json.dumps(prof["run"], indent=1))
        print("own samples (top 40):")
        for f, share in prof["own_top"]:
            print(f"  {share * 100:5.1f} %  {f}")
        print("inclusive samples (top 80):")
        for f, share in prof["inclusive_top"]:
            print(f"  {share * 100:5.1f} %  {f}")
        return 0
    json_path = args.json or (HERE / "results_scale.json" if args.size == FULL else root / "results_scale.json")
    started = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{started}  {uptime}", flush=True)
    # warm the page cache so every measurement decodes from memory, not disk
    for f in sorted((root / "tile").rglob("*.tif")) + sorted((root / "drone").glob("*.tif")):
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    warm = run_one("warmup", args)  # compiles the snapshot's numba kernels into its cache
    print(f"[{time.strftime('%H:%M:%S')}] warm-up (numba cache of the snapshot): "
          f"{warm.get('t_call_s', float('nan')):.1f} s, rc {warm['returncode']} {warm.get('error', '')[-300:]}",
          flush=True)
    plan = _plan(args)
    runs = []
    for rep in range(args.repeat):
        for group, kind in plan:
            for attempt in range(args.retry_disturbed + 1):
                waited = wait_quiet(args) if args.quiet_wait > 0 else 0.0
                row = run_one(kind, args)
                row["group"], row["repeat"], row["waited_for_quiet_s"] = group, rep, waited
                row["disturbed"] = row.get("other_cpu_cores", 0.0) > args.quiet_cores
                row["attempt"] = attempt
                if not row["disturbed"] or attempt == args.retry_disturbed:
                    break
                runs.append(row)  # kept in the JSON, left out of the medians
                print(f"[{time.strftime('%H:%M:%S')}] rep {rep + 1}/{args.repeat} {kind}: disturbed (other "
                      f"{row.get('other_cpu_cores', 0):.2f} cores), call {row.get('t_call_s', float('nan')):.2f} s; "
                      "run again", flush=True)
            runs.append(row)
            msg = (f"call {row['t_call_s']:.2f} s, wall {row['wall_process_s']:.1f} s, peak RSS "
                   f"{row['maxrss_self_bytes'] / GIB:.2f} GiB (tree {row['peak_tree_sampled_bytes'] / GIB:.2f}), "
                   f"load {row['load_before'][0]:.2f}, other {row.get('other_cpu_cores', 0):.2f} cores"
                   + (f", waited {waited:.0f} s for quiet" if waited > 6 else "")
                   + (" DISTURBED" if row.get("disturbed") else "")
                   if row["returncode"] == 0 else f"FAILED rc={row['returncode']}: {row.get('error', '')[-400:]}")
            print(f"[{time.strftime('%H:%M:%S')}] rep {rep + 1}/{args.repeat} {kind}: {msg}", flush=True)
            partial = {"started": started, "size": args.size, "runs": runs}
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.with_suffix(".partial.json").write_text(json.dumps(partial, indent=1, ensure_ascii=False))
    summary = summarise(runs)
    counts = [int(x) for x in args.patch_counts.split(",")]
    agreement = compare_patchstats(args.size, counts, args.tools.split(",")) if "patchstats" in args.only else {}
    res = {
        "started": started,
        "finished": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "uptime_at_start": uptime,
        "size": args.size,
        "repeat": args.repeat,
        "argv": sys.argv[1:],
        "env_overrides": args.env or [],
        "machine": _env(),
        "code": code,
        "data": json.loads((root / "make_data.json").read_text()),
        "warmup": warm,
        "summary": summary,
        "agreement": agreement,
        "runs": runs,
    }
    res["ratios"] = ratios(summary, agreement)
    json_path.write_text(json.dumps(res, indent=1, ensure_ascii=False))
    json_path.with_suffix(".partial.json").unlink(missing_ok=True)
    print(report(res))
    print(f"\nwrote {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
