"""Write the data of the scale benchmark (``bench_scale.py``) once, into ``benchmarks/_work/size<N>/``.

What is written (``N`` = ``--size``, 10980 for a full Sentinel-2 tile):

``tile/``
    A two-date Sentinel-2 L2A-like pair of ``N × N`` 10 m pixels from
    :func:`ecopatch.data.synthetic.make_scene` + :func:`ecopatch.data.datasets.write_scene`
    (what :func:`ecopatch.data.datasets.make_sample_data` does, split in two so the
    same scene also gives the drone mosaic below): per date B02, B03, B04, B08
    at 10 m and B11, B12, SCL at 20 m, tiled 256 × 256 DEFLATE GeoTIFFs (no
    overviews), written window by window; ``mines.gpkg`` (1000 mines at full
    size), ``reserves.gpkg`` (214 reserves = 500 functional-zone polygons at
    full size) and the truth.  Smaller sizes scale the counts with the area.
``tile/ndvi_classes_after.tif``
    A classification raster for the per-patch statistics: the after date's
    NDVI (B04, B08 reflectance, no cloud mask) in 5 classes (1: < 0, 2: 0-0.2,
    3: 0.2-0.4, 4: 0.4-0.6, 5: >= 0.6), uint8, nodata 255, tiled 256 DEFLATE.
``mosaic/``
    A 2 × 2-tile mosaic (``2N × 2N``): one GDAL VRT per band and date that
    places four copies of the tile's file side by side (shifted by one tile
    width/height), in ``.SAFE`` folders with the tile's metadata XML, and the
    mines and zones copied four times with the same shifts (EPSG:32650).
    No pixel is copied on disk.
``patches/patches_{100,10000,100000}.gpkg``
    Random star-shaped polygons (8-60 vertices, 0.05-5 ha, log-uniform),
    EPSG:32650, anywhere on the tile; the 100 are the first 100 of the 10 000.
``drone/``
    ``drone_rgb.tif``: a ``D × D`` RGB orthomosaic at 0.1 m (D = 40000 at full
    size: 1.6 Gpx, 4 × 4 km), EPSG:4549, rendered from the same scene's
    vector truth (after date) by the generator's drone renderer block by
    block, tiled 512 JPEG/YCbCr (quality 85) with internal overviews; and
    ``drone_mines.gpkg``: the tile's mines that lie inside it.

Generation times go to ``make_data.json`` in the same folder.

Run by hand::

    /work/venv/bin/python benchmarks/make_data.py --size 2048       # debug size, about 1 minute
    /work/venv/bin/python benchmarks/make_data.py                   # full size, see README.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FULL = 10980
FULL_MINES = 1000
FULL_RESERVES = 214  # 214 reserves = 500 zone polygons (zones cycle 3, 2, 2, 3, 2, 2 per reserve)
SEED = 20240912
PATCH_COUNTS = (100, 10_000, 100_000)
CLASSES = (1, 2, 3, 4, 5)
DRONE_CRS = "EPSG:4549"
DRONE_RES_M = 0.1


def workdir(size: int, base: Path | None = None) -> Path:
    """The data folder of one benchmark size."""
    return (base or HERE / "_work") / f"size{size}"


def counts_for(size: int) -> tuple[int, int]:
    """(n_mines, n_reserves) for a ``size × size`` tile: the full-tile counts scaled by area."""
    a = (size / FULL) ** 2
    return max(4, round(FULL_MINES * a)), max(2, round(FULL_RESERVES * a))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------
# The tile pair
# ---------------------------------------------------------------------------
def build_scene(size: int):  # noqa: ANN201
    from ecopatch.data.synthetic import make_scene

    n_mines, n_reserves = counts_for(size)
    return make_scene(shape=(size, size), seed=SEED, n_mines=n_mines, n_reserves=n_reserves)


def write_tile(scene, root: Path, overwrite: bool) -> None:  # noqa: ANN001
    from ecopatch.data.datasets import write_scene

    write_scene(scene, root / "tile", overwrite=overwrite, drone=False)


def write_classes(root: Path) -> Path:
    """NDVI classes of the after date, window by window."""
    import rasterio

    from ecopatch.data.datasets import load_sample_data

    data = load_sample_data(root / "tile")
    red_p, nir_p = data.band("after", "B04"), data.band("after", "B08")
    out = root / "tile" / "ndvi_classes_after.tif"
    tmp = out.with_name(".tmp_" + out.name)
    meta = json.loads(data.scene_json.read_text(encoding="utf-8"))["products"]["after"]
    offset, quant = float(meta["add_offset"]), float(meta["quantification_value"])
    with rasterio.open(red_p) as red, rasterio.open(nir_p) as nir:
        prof = red.profile.copy()
        prof.update(dtype="uint8", nodata=255, count=1, compress="deflate", predictor=2, tiled=True,
                    blockxsize=256, blockysize=256)
        with rasterio.open(tmp, "w", **prof) as dst:
            for win in _windows(red.height, red.width, 1024):
                dr = red.read(1, window=win)
                dn = nir.read(1, window=win)
                bad = (dr == 0) | (dn == 0)
                r = (dr.astype(np.float32) + offset) / quant  # reflectance (baseline 04.00+ offset applied)
                n = (dn.astype(np.float32) + offset) / quant
                with np.errstate(invalid="ignore", divide="ignore"):
                    ndvi = (n - r) / (n + r)
                cls = np.digitize(ndvi, [0.0, 0.2, 0.4, 0.6]).astype(np.uint8) + 1
                cls[bad | ~np.isfinite(ndvi)] = 255
                dst.write(cls, 1, window=win)
            dst.set_band_description(1, "ndvi_class")
    os.replace(tmp, out)
    return out


def _windows(height: int, width: int, step: int):  # noqa: ANN202
    from rasterio.windows import Window

    for r0 in range(0, height, step):
        for c0 in range(0, width, step):
            yield Window(c0, r0, min(step, width - c0), min(step, height - r0))


# ---------------------------------------------------------------------------
# The 2 x 2 mosaic (VRT)
# ---------------------------------------------------------------------------
_GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float32": "Float32"}


def _vrt_xml(src: Path, vrt: Path, reps: int = 2) -> str:
    import rasterio

    with rasterio.open(src) as ds:
        w, h = ds.width, ds.height
        t = ds.transform
        wkt = ds.crs.to_wkt()
        dtype = _GDAL_TYPES[ds.dtypes[0]]
        bx, by = ds.block_shapes[0][1], ds.block_shapes[0][0]
        nodata = ds.nodata
        desc = ds.descriptions[0] or ""
    rel = os.path.relpath(src, vrt.parent)
    sources = []
    for i in range(reps):
        for j in range(reps):
            sources.append(
                f"""    <SimpleSource>
      <SourceFilename relativeToVRT="1">{rel}</SourceFilename>
      <SourceBand>1</SourceBand>
      <SourceProperties RasterXSize="{w}" RasterYSize="{h}" DataType="{dtype}" BlockXSize="{bx}" BlockYSize="{by}" />
      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}" />
      <DstRect xOff="{j * w}" yOff="{i * h}" xSize="{w}" ySize="{h}" />
    </SimpleSource>"""
            )
    nd = f"    <NoDataValue>{nodata:g}</NoDataValue>\n" if nodata is not None else ""
    srcs = "\n".join(sources)
    return f"""<VRTDataset rasterXSize="{reps * w}" rasterYSize="{reps * h}">
  <SRS dataAxisToSRSAxisMapping="1,2">{wkt.replace('"', '&quot;')}</SRS>
  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>
  <VRTRasterBand dataType="{dtype}" band="1" blockXSize="{bx}" blockYSize="{by}">
{nd}    <Description>{desc}</Description>
{srcs}
  </VRTRasterBand>
</VRTDataset>
"""


def write_mosaic(root: Path, size: int) -> None:
    """2 × 2 copies of the tile as VRTs in SAFE-like folders, with the mines and zones copied alongside."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    tile, mos = root / "tile", root / "mosaic"
    if mos.exists():
        shutil.rmtree(mos)
    mos.mkdir(parents=True)
    for safe in sorted(tile.glob("*.SAFE")):
        for f in safe.rglob("*"):
            if f.is_dir():
                continue
            dst = mos / f.relative_to(tile)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if f.suffix.lower() == ".tif":
                dst = dst.with_suffix(".vrt")
                dst.write_text(_vrt_xml(f, dst))
            else:
                shutil.copy2(f, dst)
    span = size * 10.0  # m, the tile's width = height

    def copies(gdf: gpd.GeoDataFrame, id_cols: list[str]) -> gpd.GeoDataFrame:
        g = gdf.to_crs("EPSG:32650")
        parts = []
        for i in range(2):
            for j in range(2):
                c = g.copy()
                c["geometry"] = shapely.transform(c.geometry.to_numpy(),
                                                  lambda xy, i=i, j=j: xy + [j * span, -i * span])
                for col in id_cols:
                    c[col] = c[col].astype(str) + f"-Q{i}{j}"
                parts.append(c)
        return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs="EPSG:32650")

    mines = gpd.read_file(tile / "mines.gpkg", engine="pyogrio")
    copies(mines, ["矿山编号"]).to_file(mos / "mines.gpkg", layer="mines", driver="GPKG", engine="pyogrio")
    zones = gpd.read_file(tile / "reserves.gpkg", engine="pyogrio")
    copies(zones, ["保护地编号", "保护地名称"]).to_file(mos / "reserves.gpkg", layer="reserves", driver="GPKG",
                                                  engine="pyogrio")


# ---------------------------------------------------------------------------
# Random patches for the per-patch statistics
# ---------------------------------------------------------------------------
def random_patches(n: int, rng: np.random.Generator, bounds: tuple[float, float, float, float]) -> np.ndarray:
    """``n`` random star-shaped (valid, irregular) polygons of 0.05-5 ha with 8-60 vertices."""
    from bench_zonal import star_polygons  # the same generator as the zonal benchmark (benchmarks/ is on sys.path)

    return star_polygons(n, rng, bounds)


def write_patches(root: Path) -> None:
    import geopandas as gpd
    import rasterio
    import shapely

    from ecopatch.data.datasets import load_sample_data

    data = load_sample_data(root / "tile")
    with rasterio.open(data.band("after", "B04")) as ds:
        bounds = tuple(ds.bounds)
        crs = ds.crs
    out = root / "patches"
    out.mkdir(exist_ok=True)
    rng = np.random.default_rng(SEED)
    small = random_patches(10_000, rng, bounds)
    big = random_patches(100_000, rng, bounds)
    assert shapely.is_valid(small).all() and shapely.is_valid(big).all()
    for n, geoms in ((100, small[:100]), (10_000, small), (100_000, big)):
        gdf = gpd.GeoDataFrame({"patch_id": [f"P{i:06d}" for i in range(n)]}, geometry=geoms, crs=crs)
        gdf.to_file(out / f"patches_{n}.gpkg", layer="patches", driver="GPKG", engine="pyogrio")


# ---------------------------------------------------------------------------
# The drone mosaic
# ---------------------------------------------------------------------------
def drone_site(scene, side_m: float):  # noqa: ANN001, ANN201
    """Centre (EPSG:32650) of a ``side_m`` square holding the most whole mines (first such centre)."""
    from shapely.geometry import box

    m = scene.mines
    c = m.geometry.centroid
    best = (-1, 0.0, 0.0)
    tree_geoms = m.geometry.to_numpy()
    import shapely

    tree = shapely.STRtree(tree_geoms)
    lft, b, r, t = scene.grid.bounds
    h = side_m / 2 + 60
    for x, y in zip(c.x, c.y):
        x = min(max(x, lft + h), r - h)
        y = min(max(y, b + h), t - h)
        sq = box(x - side_m / 2 + 30, y - side_m / 2 + 30, x + side_m / 2 - 30, y + side_m / 2 - 30)
        n = len(tree.query(sq, predicate="contains"))
        if n > best[0]:
            best = (n, x, y)
    return best


def write_drone(scene, root: Path, px: int) -> dict:  # noqa: ANN001
    """Render the drone orthomosaic block by block (bounded memory) and write it with overviews."""
    import geopandas as gpd
    import rasterio
    import shapely
    from affine import Affine
    from rasterio.enums import ColorInterp, Resampling
    from rasterio.windows import Window as RWindow
    from shapely.geometry import box

    from ecopatch.data.synthetic.noise import Noise
    from ecopatch.data.synthetic.render import render_drone_block  # the generator's own drone renderer
    from ecopatch.geo.geodesy import transformer
    from ecopatch.geo.grid import Grid, Window

    side_m = px * DRONE_RES_M
    n_in, cx, cy = drone_site(scene, side_m)
    tr = transformer("EPSG:32650", DRONE_CRS)
    inv = transformer(DRONE_CRS, "EPSG:32650")
    gx, gy = tr.transform(cx, cy)
    x0 = round(math.floor((gx - side_m / 2) / DRONE_RES_M) * DRONE_RES_M, 6)
    y1 = round(math.ceil((gy + side_m / 2) / DRONE_RES_M) * DRONE_RES_M, 6)
    grid = Grid((px, px), Affine(DRONE_RES_M, 0, x0, 0, -DRONE_RES_M, y1), DRONE_CRS)
    fp_gk = box(*grid.bounds)
    fp_utm = shapely.transform(shapely.segmentize(fp_gk, 50.0),
                               lambda xy: np.column_stack(inv.transform(xy[:, 0], xy[:, 1])))

    def to_gk(g):  # noqa: ANN001, ANN202
        return shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))

    world = scene._world
    shapes_utm = world.surface_shapes("after", fp_utm.buffer(20.0))
    shapes = [(to_gk(g), m) for g, m in shapes_utm]
    tree = shapely.STRtree([g for g, _ in shapes])
    flight = fp_gk.buffer(1.0, join_style="mitre")
    noise = Noise(scene.seed + 7)
    out_dir = root / "drone"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / "drone_rgb.tif"
    tmp = out_dir / ".tmp_drone_rgb.tif"
    profile = {
        "driver": "GTiff", "width": px, "height": px, "count": 3, "dtype": "uint8", "crs": DRONE_CRS,
        "transform": grid.transform, "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "JPEG",
        "photometric": "YCBCR", "jpeg_quality": 85, "interleave": "pixel", "BIGTIFF": "YES",
    }
    step = 1024
    t0 = time.perf_counter()
    with rasterio.Env(GDAL_CACHEMAX=256 * 1024 * 1024, COMPRESS_OVERVIEW="JPEG", PHOTOMETRIC_OVERVIEW="YCBCR",
                      JPEG_QUALITY_OVERVIEW=85, INTERLEAVE_OVERVIEW="PIXEL", BIGTIFF_OVERVIEW="YES"):
        with rasterio.open(tmp, "w", **profile) as dst:
            n_blocks = math.ceil(px / step) ** 2
            k = 0
            for r0 in range(0, px, step):
                for c0 in range(0, px, step):
                    win = Window(row_off=r0, col_off=c0, height=min(step, px - r0), width=min(step, px - c0))
                    sub = grid.subgrid(win)
                    idx = tree.query(box(*sub.bounds))
                    sel = [shapes[i] for i in sorted(idx)]  # keep paint order
                    rgb, _alpha = render_drone_block(world, sub, sel, flight, noise, inv)
                    dst.write(rgb, window=RWindow(c0, r0, win.width, win.height))
                    k += 1
                    if k % 100 == 0:
                        log(f"  drone: {k}/{n_blocks} blocks, {time.perf_counter() - t0:.0f} s")
            dst.colorinterp = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
            dst.update_tags(ACQUISITION_DATE=scene.dates["after"].isoformat(), GSD_M=f"{DRONE_RES_M:g}",
                            SOURCE="ecopatch.data.synthetic drone renderer (benchmarks/make_data.py)")
        t_base = time.perf_counter() - t0
        levels = [f for f in (2, 4, 8, 16, 32, 64, 128) if px / f >= 256]
        with rasterio.open(tmp, "r+") as dst:
            dst.build_overviews(levels, Resampling.average)
    os.replace(tmp, path)
    t_all = time.perf_counter() - t0
    # the mines that lie inside the mosaic (tile mine IDs), in their source CRS
    mines = gpd.read_file(root / "tile" / "mines.gpkg", engine="pyogrio")
    inside = shapely.contains(fp_utm.buffer(-30.0), mines.to_crs("EPSG:32650").geometry.to_numpy())
    mines[inside].to_file(out_dir / "drone_mines.gpkg", layer="mines", driver="GPKG", engine="pyogrio")
    return {"px": px, "gpx": px * px / 1e9, "res_m": DRONE_RES_M, "crs": DRONE_CRS, "bounds": list(grid.bounds),
            "mines_inside": int(inside.sum()), "render_write_s": round(t_base, 1),
            "overviews": levels, "total_s": round(t_all, 1), "bytes": path.stat().st_size}


# ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=FULL, help=f"tile rows = cols (default {FULL}; 2048 to debug)")
    ap.add_argument("--out", type=Path, default=None, help="base folder (default benchmarks/_work)")
    ap.add_argument("--drone-px", type=int, default=None,
                    help="drone mosaic side in pixels of 0.1 m (default 40000 at full size, else 8000)")
    ap.add_argument("--only", default="tile,classes,mosaic,patches,drone",
                    help="comma-separated steps (tile, classes, mosaic, patches, drone)")
    ap.add_argument("--overwrite", action="store_true", help="redo steps whose output exists")
    args = ap.parse_args(argv)
    root = workdir(args.size, args.out)
    root.mkdir(parents=True, exist_ok=True)
    steps = [s.strip() for s in args.only.split(",") if s.strip()]
    drone_px = args.drone_px or (40_000 if args.size >= FULL else 8000)
    info_path = root / "make_data.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    info.update({"size": args.size, "seed": SEED, "host_cpus": os.cpu_count(), "python": platform.python_version()})
    times = info.setdefault("times_s", {})

    def done(step: str) -> bool:
        marks = {"tile": root / "tile" / "truth" / "scene.json", "classes": root / "tile" / "ndvi_classes_after.tif",
                 "mosaic": root / "mosaic" / "reserves.gpkg", "patches": root / "patches" / "patches_100000.gpkg",
                 "drone": root / "drone" / "drone_mines.gpkg"}
        return marks[step].exists() and not args.overwrite

    scene = None
    if ("tile" in steps and not done("tile")) or ("drone" in steps and not done("drone")):
        log(f"building the scene vector truth ({args.size}², {counts_for(args.size)} mines/reserves)")
        t = time.perf_counter()
        scene = build_scene(args.size)
        times["make_scene"] = round(time.perf_counter() - t, 1)
        info["scene"] = {"n_mines": len(scene.mines), "n_zones": len(scene.reserves),
                         "n_reserves": scene.params.n_reserves, "n_encroachments": scene.params.n_encroachments,
                         "n_decoys": scene.params.n_decoys, "n_clouds": scene.params.n_clouds}
        log(f"  {times['make_scene']} s: {info['scene']}")
    for step in ("tile", "classes", "mosaic", "patches", "drone"):
        if step not in steps:
            continue
        if done(step):
            log(f"{step}: exists, skipped (--overwrite to redo)")
            continue
        log(f"{step} ...")
        t = time.perf_counter()
        if step == "tile":
            write_tile(scene, root, overwrite=True)
        elif step == "classes":
            write_classes(root)
        elif step == "mosaic":
            write_mosaic(root, args.size)
        elif step == "patches":
            write_patches(root)
        elif step == "drone":
            info["drone"] = write_drone(scene, root, drone_px)
        times[step] = round(time.perf_counter() - t, 1)
        log(f"{step}: {times[step]} s")
        info_path.write_text(json.dumps(info, indent=2, ensure_ascii=False))
    sizes = {}
    for sub in ("tile", "mosaic", "patches", "drone"):
        p = root / sub
        if p.exists():
            sizes[sub] = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    info["bytes_on_disk"] = sizes
    info_path.write_text(json.dumps(info, indent=2, ensure_ascii=False))
    log(f"done: {root} ({sum(sizes.values()) / 1e9:.2f} GB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
