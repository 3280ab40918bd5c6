"""Benchmark ecopatch.compute.zonal against exactextract on a Sentinel-2-sized tile.

Times ``coverage_table`` + ``zonal_sums`` for random irregular patches
(0.05-5 ha, 8-60 vertices) on a 10980 × 10980 10 m UTM grid with two float32
layers (NaN under synthetic cloud), and exactextract's ``["sum", "count"]``
over the same arrays written to a temporary tiled GeoTIFF (nodata = NaN).
Sums are in pixels (no area weights) so that both tools compute the same
numbers.

Run by hand, not by pytest::

    /work/venv/bin/python benchmarks/bench_zonal.py            # 100, 10 000, 100 000
    /work/venv/bin/python benchmarks/bench_zonal.py -n 100 -n 10000 --repeat 3

Needs ``pip install exactextract`` (the ``bench`` extra); without it only our
timings are printed.  Peak memory is about 3 GB (two 482 MB layers, the
GeoTIFF in the page cache, the coverage table of 100 000 patches).
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time

import numpy as np
import shapely
from affine import Affine

from ecopatch.compute.zonal import coverage_table, zonal_sums
from ecopatch.geo.grid import Grid

TILE = 10980
GRID = Grid((TILE, TILE), Affine(10.0, 0.0, 300_000.0, 0.0, -10.0, 3_400_020.0), "EPSG:32650")


def random_patches(n: int, rng: np.random.Generator, grid: Grid = GRID) -> np.ndarray:
    """``n`` random star-shaped (irregular, valid) polygons of 0.05-5 ha with 8-60 vertices."""
    return star_polygons(n, rng, grid.bounds)


def star_polygons(n: int, rng: np.random.Generator, bounds: tuple[float, float, float, float]) -> np.ndarray:
    """``n`` random star-shaped polygons of 0.05-5 ha, 8-60 vertices, at least 200 m inside ``bounds``."""
    left, bottom, right, top = bounds
    k = rng.integers(8, 61, n)
    pid = np.repeat(np.arange(n), k)
    first = np.cumsum(k) - k
    # Angles with gaps of at least ~1/3 of the mean gap, so spikes stay valid.
    gap = rng.uniform(0.3, 1.0, k.sum())
    cg = np.cumsum(gap)
    start = np.r_[0.0, cg][first]
    ang = (cg - gap - start[pid]) / np.bincount(pid, gap)[pid] * 2 * np.pi
    ang += rng.uniform(0, 2 * np.pi, n)[pid]
    rad = rng.uniform(0.4, 1.0, k.sum())
    x, y = rad * np.cos(ang), rad * np.sin(ang)
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    last = first + k - 1
    xn[last], yn[last] = x[first], y[first]
    unit_area = 0.5 * np.bincount(pid, x * yn - xn * y)
    area_m2 = np.exp(rng.uniform(np.log(500.0), np.log(50_000.0), n))
    scale = np.sqrt(area_m2 / unit_area)
    cx = rng.uniform(left + 200, right - 200, n)
    cy = rng.uniform(bottom + 200, top - 200, n)
    xy = np.column_stack([cx[pid] + scale[pid] * x, cy[pid] + scale[pid] * y])
    assert np.isfinite(xy).all()
    with np.errstate(invalid="ignore"):  # stale FP flags from GEOS, not NaN input
        return shapely.polygons(shapely.linearrings(xy, indices=pid))


def value_layers(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Two float32 layers of the tile, NaN under ~7 % synthetic cloud."""
    ndvi = rng.random((TILE, TILE), dtype=np.float32)
    ndvi *= 0.8
    ndvi += 0.1
    bare = (ndvi < 0.3).astype(np.float32)
    # Cloud: NaN in random 61 × 61 blocks.
    cloud = np.zeros((TILE // 61 + 1, TILE // 61 + 1), dtype=bool)
    cloud.flat[rng.choice(cloud.size, cloud.size // 14, replace=False)] = True
    mask = np.repeat(np.repeat(cloud, 61, axis=0), 61, axis=1)[:TILE, :TILE]
    ndvi[mask] = np.nan
    bare[mask] = np.nan
    return {"ndvi": ndvi, "bare": bare}


def write_geotiff(path: str, values: dict[str, np.ndarray]) -> None:
    import rasterio

    profile = {
        "driver": "GTiff",
        "width": TILE,
        "height": TILE,
        "count": len(values),
        "dtype": "float32",
        "crs": GRID.crs.to_wkt(),
        "transform": GRID.transform,
        "nodata": float("nan"),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
    }
    with rasterio.open(path, "w", **profile) as dst:
        for i, arr in enumerate(values.values(), start=1):
            dst.write(arr, i)


def run_ours(
    polys: np.ndarray, values: dict[str, np.ndarray]
) -> tuple[float, dict[str, np.ndarray]]:
    t0 = time.perf_counter()
    cov = coverage_table(polys, GRID)
    sums = zonal_sums(cov, values, window=GRID.window)
    return time.perf_counter() - t0, sums


def run_exactextract(polys: np.ndarray, path: str, names: list[str], strategy: str):
    import geopandas as gpd
    from exactextract import exact_extract

    gdf = gpd.GeoDataFrame(geometry=polys, crs=GRID.crs)
    t0 = time.perf_counter()
    df = exact_extract(path, gdf, ["sum", "count"], output="pandas", strategy=strategy)
    elapsed = time.perf_counter() - t0
    out = {}
    for i, name in enumerate(names, start=1):
        out[f"sum_{name}"] = df[f"band_{i}_sum"].to_numpy(float)
        out[f"w_{name}"] = df[f"band_{i}_count"].to_numpy(float)
    return elapsed, out


def best_of(repeat: int, fn, *args):
    """Shortest time of ``repeat`` runs of ``fn(*args)``, and the last result."""
    times = []
    for _ in range(max(1, repeat)):
        elapsed, result = fn(*args)
        times.append(elapsed)
    return min(times), result


def max_rel_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    worst = 0.0
    for key in a:
        x, y = a[key], b[key]
        denom = np.maximum(np.maximum(np.abs(x), np.abs(y)), 1e-9)
        worst = max(worst, float(np.max(np.abs(x - y) / denom)))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, action="append", help="number of polygons (repeatable)")
    ap.add_argument("--repeat", type=int, default=1, help="best of this many runs (default 1)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument(
        "--strategy",
        default="feature-sequential",
        choices=["feature-sequential", "raster-sequential"],
        help="exactextract processing strategy",
    )
    ap.add_argument("--no-exactextract", action="store_true", help="time ecopatch only")
    args = ap.parse_args()
    sizes = args.n or [100, 10_000, 100_000]

    rng = np.random.default_rng(args.seed)
    values = value_layers(rng)
    names = list(values)
    have_ee = not args.no_exactextract
    if have_ee:
        try:
            import exactextract  # noqa: F401
        except ImportError:
            print("exactextract is not installed (pip install exactextract); timing ecopatch only")
            have_ee = False

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tile.tif")
        if have_ee:
            t0 = time.perf_counter()
            write_geotiff(path, values)
            size_mb = os.path.getsize(path) / 1e6
            print(f"wrote {path} ({size_mb:.0f} MB) in {time.perf_counter() - t0:.1f} s")
        print(f"grid {GRID}; cores: {os.cpu_count()}; exactextract strategy: {args.strategy}")
        header = (
            f"{'n polygons':>10} {'ecopatch s':>11} {'exactextract s':>15} "
            f"{'ratio':>7} {'max rel diff':>13}"
        )
        print(header)
        print("-" * len(header))
        for n in sizes:
            polys = random_patches(n, rng)
            ours, our_sums = best_of(args.repeat, run_ours, polys, values)
            gc.collect()
            if have_ee:
                ee, ee_sums = best_of(
                    args.repeat, run_exactextract, polys, path, names, args.strategy
                )
                diff = max_rel_diff(our_sums, ee_sums)
                print(f"{n:>10} {ours:>11.3f} {ee:>15.3f} {ee / ours:>6.1f}x {diff:>13.2e}")
            else:
                print(f"{n:>10} {ours:>11.3f} {'-':>15} {'-':>7} {'-':>13}")


if __name__ == "__main__":
    main()
