"""``assess_restoration`` on dask-backed xarray data (the odc-stac layout) against the same data in memory.

By hand, on a pair written by ``bench_e2e.py make`` (a 7-band pixel-interleaved stack per date)::

    python benchmarks/bench_dask_inputs.py --data /path/to/e2e --size 10980 --chunk 2048 --mode lazy
    python benchmarks/bench_dask_inputs.py --data /path/to/e2e --size 10980 --chunk 2048 --mode load
    python benchmarks/bench_dask_inputs.py --data /path/to/e2e --size 10980 --crop 4096 --chunk 512

Each band of each date becomes a dask array whose chunks are ``dask.delayed`` rasterio window reads
of the stack, in an ``xarray.Dataset`` laid out as ``odc.stac.load`` returns it (one variable per
band, dims ``(time, y, x)``, a ``spatial_ref`` coordinate). ``--mode`` ``lazy`` hands it to ecopatch
as it is, ``persist`` and ``load`` call ``Dataset.persist()`` / ``Dataset.load()`` first. The
script prints the call's time, how many chunk reads ran (the distinct chunks are bands x dates x
chunks per band) and the process's peak resident memory (which includes the reader's GDAL block
cache at its default size). Results are in RESULTS.md ("Dask-backed inputs").
"""

from __future__ import annotations

import argparse
import resource
import threading
import time
import warnings
from pathlib import Path

NAMES = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B11": "swir16", "B12": "swir22", "SCL": "scl"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="bench_e2e.py's --data folder")
    ap.add_argument("--size", type=int, default=10980, help="the pair's size (bench_e2e.py make --size)")
    ap.add_argument("--layout", default="pixel_tiled_deflate", help="a stack layout of bench_e2e.py")
    ap.add_argument("--chunk", type=int, default=2048, help="dask chunk side, pixels")
    ap.add_argument("--crop", type=int, default=None, help="use the top-left CROP x CROP pixels only")
    ap.add_argument("--mode", choices=("lazy", "persist", "load"), default="lazy")
    args = ap.parse_args()

    import dask
    import dask.array as da
    import numpy as np
    import rasterio
    import xarray as xr
    from rasterio.windows import Window
    from shapely.geometry import box

    import ecopatch

    root = args.data / f"e2e{args.size}"
    files = sorted((root / args.layout).glob("*.tif"), key=lambda p: p.stem.split("_")[-1])
    calls = [0]
    lock = threading.Lock()
    local = threading.local()

    def read(path: str, band: int, r0: int, c0: int, h: int, w: int) -> np.ndarray:
        handles = getattr(local, "ds", None)
        if handles is None:
            handles = local.ds = {}
        ds = handles.get(path) or handles.setdefault(path, rasterio.open(path))
        with lock:
            calls[0] += 1
        return ds.read(band, window=Window(c0, r0, w, h))

    def dataset(path: Path, date: str) -> xr.Dataset:
        with rasterio.open(path) as ds:
            desc, tr, crs, dtype = ds.descriptions, ds.transform, ds.crs, ds.dtypes[0]
            n = min(ds.height, args.crop or ds.height)
        c = args.chunk
        variables = {}
        for i, d in enumerate(desc, start=1):
            rows = [da.concatenate([da.from_delayed(dask.delayed(read)(str(path), i, r0, c0, min(c, n - r0),
                                                                       min(c, n - c0)),
                                                    (min(c, n - r0), min(c, n - c0)), dtype=dtype)
                                    for c0 in range(0, n, c)], axis=1) for r0 in range(0, n, c)]
            variables[NAMES[d]] = (("time", "y", "x"), da.concatenate(rows, axis=0)[None])
        x = tr.c + (np.arange(n) + 0.5) * tr.a
        y = tr.f + (np.arange(n) + 0.5) * tr.e
        return xr.Dataset(variables, coords={"time": [np.datetime64(date)], "x": x, "y": y,
                                             "spatial_ref": ((), 0, {"crs_wkt": crs.to_wkt()})})

    scenes = []
    for path, date in zip(files, ("2021-09-18", "2024-09-12")):
        ds = dataset(path, date)
        if args.mode != "lazy":
            ds = getattr(ds, args.mode)()
        # the stack's DN carry the L2A offset of processing baseline 04.00 and later
        scenes.append(ecopatch.open_scene(ds, sensor="sentinel2_l2a", offset=-0.1))
    before_calls = calls[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mines = ecopatch.read_patches(root / "src" / "mines.gpkg", id_field="矿山编号")
    mines = mines[mines.to_crs(scenes[0].grid.crs).intersects(box(*scenes[0].grid.bounds))]
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        t = time.perf_counter()
        ecopatch.assess_restoration(scenes[0], scenes[1], mines, progress=False)
        took = time.perf_counter() - t
    slow = sorted({type(w.message).__name__ for w in got if "dask" in str(w.message)})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{args.layout} crop {args.crop or 'none'} chunk {args.chunk} {args.mode}: {len(mines)} mines, "
          f"assess_restoration {took:.2f} s, chunk reads {calls[0] - before_calls} in the call "
          f"({before_calls} before it), peak {peak:.2f} GiB, warnings {slow or 'none'}")


if __name__ == "__main__":
    main()
