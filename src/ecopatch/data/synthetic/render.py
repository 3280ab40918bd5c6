"""Rendering the world to Sentinel-2-like digital numbers (and the drone orthomosaic), tile by tile."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine
from shapely.geometry import box

from ecopatch.data.synthetic.materials import (
    AFTER_GAIN,
    AFTER_HAZE,
    AFTER_OFFSET,
    BANDS,
    BANDS_10M,
    BANDS_20M,
    IS_VEGETATION,
    IS_WATER,
    MATERIAL_INDEX,
    MATERIALS,
    N_MATERIALS,
    N_OVERLAY,
    PHENOLOGY,
    RENDER_TILE,
    RES_M,
    SHADOW_FACTOR,
    SPECTRA,
    SUN_AZIMUTH_DEG,
    SUN_ZENITH_DEG,
    SUPERSAMPLING,
)
from ecopatch.data.synthetic.noise import hash_key, hash_u01
from ecopatch.geo.grid import Grid

if TYPE_CHECKING:  # pragma: no cover
    from ecopatch.data.synthetic.materials import ProductMeta
    from ecopatch.data.synthetic.noise import Noise
    from ecopatch.data.synthetic.world import SceneParams, World


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def _rasterize(shapes: list[tuple[Any, int]], shape: tuple[int, int], transform: Affine,
               fill: int) -> np.ndarray:
    from rasterio import features

    if not shapes:
        return np.full(shape, fill, dtype=np.uint8)
    return features.rasterize(shapes, out_shape=shape, transform=transform, fill=fill,
                              dtype="uint8")


def _block_fractions(ids: np.ndarray, candidates: Iterable[int], n: int) -> dict[int, np.ndarray]:
    """Fraction (0-1, float32) of each id in ``n`` × ``n`` blocks of the fine raster ``ids``."""
    h, w = ids.shape[0] // n, ids.shape[1] // n
    b = np.ascontiguousarray(ids.reshape(h, n, w, n).transpose(0, 2, 1, 3)).reshape(h, w, n * n)
    out = {}
    for c in candidates:
        cnt = (b == c).sum(axis=2, dtype=np.uint16)
        if cnt.any():
            out[int(c)] = cnt.astype(np.float32) / float(n * n)
    return out


def _shade(world: World, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Illumination factor (~0.3-1.4) on the pixel centres ``ys`` × ``xs`` (regular, 10 m)."""
    dx = xs[1] - xs[0]
    dy = ys[0] - ys[1]
    xp = np.concatenate([[xs[0] - dx], xs, [xs[-1] + dx]])
    yp = np.concatenate([[ys[0] + dy], ys, [ys[-1] - dy]])
    z = world.dem_grid(xp, yp)
    return _illumination(z, dx, dy)[1:-1, 1:-1]


def _illumination(z: np.ndarray, dx: float, dy: float) -> np.ndarray:
    gy, gx = np.gradient(z, dy, dx)
    p = gx  # dz/dx (east)
    q = -gy  # dz/dy (north); rows go south
    zen = math.radians(SUN_ZENITH_DEG)
    az = math.radians(SUN_AZIMUTH_DEG)
    cos_i = (math.cos(zen) - math.sin(zen) * (p * math.sin(az) + q * math.cos(az))) / np.sqrt(
        1 + p * p + q * q
    )
    return np.clip(0.15 + 0.85 * cos_i / math.cos(zen), 0.1, 1.6)


def material_reflectance(world: World, mat: int, date: str, xs: np.ndarray, ys: np.ndarray,
                          cache: dict[str, np.ndarray]) -> np.ndarray:
    """Textured surface reflectance of one material, shape (6, rows, cols)."""
    if mat >= N_MATERIALS:  # a trick surface: a material of MATERIALS with its own brightness at each date
        return world.tricks.reflectance(world, mat, date, xs, ys, cache)
    n = world.noise

    def fld(name: str, wl: float, octaves: int, stream: int) -> np.ndarray:
        if name not in cache:
            cache[name] = n.grid(xs, ys, wl, octaves, stream)
        return cache[name]

    def mix(c: np.ndarray, a: tuple[float, ...], b: tuple[float, ...]) -> np.ndarray:
        return c[None] * np.asarray(a)[:, None, None] + (1 - c[None]) * np.asarray(b)[:, None, None]

    key = MATERIALS[mat].key
    after = date == "after"
    if key in ("forest", "shrub_grass", "cropland") and after:
        canopy = {"forest": SPECTRA["forest_canopy"], "shrub_grass": SPECTRA["shrub_canopy"],
                  "cropland": SPECTRA["crop_canopy"]}[key]
        canopy = tuple(np.asarray(canopy) * PHENOLOGY[key])
    if key == "forest":
        d = np.clip(0.74 + 0.30 * fld("forest", 160.0, 3, 11) + 0.08 * fld("forest_fine", 30.0, 2, 12),
                    0.42, 1.0)
        can = canopy if after else SPECTRA["forest_canopy"]
        r = mix(d, can, SPECTRA["forest_open"])
        sp = fld("species", 450.0, 2, 13)
        r = r * (1 + 0.06 * sp[None] * np.array([0, 0, 0, 1.0, 0.5, 0.3])[:, None, None])
    elif key == "shrub_grass":
        c = np.clip(0.72 + 0.28 * fld("shrub", 90.0, 3, 14), 0.45, 0.95)
        r = mix(c, canopy if after else SPECTRA["shrub_canopy"], SPECTRA["dry_grass"])
    elif key == "cropland":
        if "parcel" not in cache:
            xx, yy = np.meshgrid(xs, ys)
            cache["parcel"] = n.cells(xx, yy, (80.0, 40.0), 18.0, 17)
        v = np.clip(0.6 + 0.38 * cache["parcel"] + 0.05 * fld("soil", 70.0, 3, 15), 0.5, 1.0)
        r = mix(v, canopy if after else SPECTRA["crop_canopy"], SPECTRA["wet_soil"])
    elif key == "young_veg":
        c = np.clip(0.72 + 0.25 * fld("young", 40.0, 2, 18), 0.55, 0.9)
        r = mix(c, SPECTRA["young_canopy"], SPECTRA["red_soil"])
    elif key == "logged":
        c = np.clip(0.38 + 0.25 * fld("shrub", 90.0, 3, 14), 0.2, 0.55)
        r = mix(c, SPECTRA["shrub_canopy"], SPECTRA["red_soil"])
    elif key == "fallow":
        c = np.clip(0.25 + 0.15 * fld("soil", 70.0, 3, 15), 0.1, 0.4)
        r = mix(c, SPECTRA["shrub_canopy"], SPECTRA["red_soil"])
    elif key == "bare_soil":
        r = np.asarray(SPECTRA["red_soil"])[:, None, None] * (1 + 0.10 * fld("soil", 70.0, 3, 15))[None]
    elif key == "quarry_rock":
        r = np.asarray(SPECTRA["rock"])[:, None, None] * (1 + 0.15 * fld("rock", 45.0, 3, 16))[None]
    elif key in ("concrete", "asphalt"):
        r = np.asarray(MATERIALS[mat].spectrum)[:, None, None] * (1 + 0.05 * fld("soil", 70.0, 3, 15))[None]
    elif key in ("clear_water", "turbid_water"):
        r = np.asarray(MATERIALS[mat].spectrum)[:, None, None] * (1 + 0.15 * fld("water", 200.0, 2, 19))[None]
    else:  # blue_roof
        r = np.broadcast_to(np.asarray(MATERIALS[mat].spectrum)[:, None, None], (6, ys.size, xs.size))
    if after and MATERIALS[mat].group == "vegetation":
        ph = fld("phenology", 900.0, 2, 31)
        r = r * (1 + 0.03 * ph[None] * np.array([0, 0, -1.0, 1.0, 0, 0])[:, None, None])
    return r


@dataclass
class _TileSurface:
    """Ground of one 256 × 256 render tile at 10 m, before any cloud is drawn over it.

    ``surf[o]`` is the fraction-weighted surface reflectance (6 bands, shaded)
    of the ground under overlay ``o`` (0 clear, 1 shadow, 2 cirrus, 3 cloud
    medium, 4 cloud high) and ``frac_o[o]`` its share of each pixel; ``veg``
    and ``water`` are the vegetated and water shares of each pixel.
    """

    xs: np.ndarray
    ys: np.ndarray
    surf: dict[int, np.ndarray]
    frac_o: dict[int, np.ndarray]
    veg: np.ndarray
    water: np.ndarray


def surface_tile(world: World, date: str, ti: int, tj: int) -> _TileSurface:
    """The ground of acquisition ``date`` over one render tile (see :class:`_TileSurface`)."""
    g = world.grid
    t = g.transform
    x0 = t.c + tj * RENDER_TILE * RES_M
    y0 = t.f - ti * RENDER_TILE * RES_M
    size = RENDER_TILE * RES_M
    bx = box(x0, y0 - size, x0 + size, y0)
    ground, clouds = world.state(date)
    shapes = world.surface_shapes(ground, bx, tile=(ti, tj), acq=date)
    fine_tr = Affine(RES_M / SUPERSAMPLING, 0, x0, 0, -RES_M / SUPERSAMPLING, y0)
    nf = RENDER_TILE * SUPERSAMPLING
    fine = _rasterize(shapes, (nf, nf), fine_tr, MATERIAL_INDEX["forest"])
    overlays = [it for it in world._query("overlays", bx) if it[0].intersects(bx)] if clouds else []
    mats = sorted({MATERIAL_INDEX["forest"], *(m for _, m in shapes)})
    if overlays:
        ov = _rasterize(overlays, (nf, nf), fine_tr, 0)
        fine = fine * np.uint8(N_OVERLAY) + ov
        present = np.flatnonzero(np.bincount(fine.ravel(), minlength=256))
        fr = _block_fractions(fine, present, SUPERSAMPLING)
        joint = {(k // N_OVERLAY, k % N_OVERLAY): v for k, v in fr.items()}
    else:
        fr = _block_fractions(fine, mats, SUPERSAMPLING)
        joint = {(k, 0): v for k, v in fr.items()}
    del fine

    xs = x0 + (np.arange(RENDER_TILE) + 0.5) * RES_M
    ys = y0 - (np.arange(RENDER_TILE) + 0.5) * RES_M
    shade = _shade(world, xs, ys)
    cache: dict[str, np.ndarray] = {}
    refl: dict[int, np.ndarray] = {}
    surf = {o: np.zeros((6, RENDER_TILE, RENDER_TILE)) for o in range(N_OVERLAY)}
    frac_o = {o: np.zeros((RENDER_TILE, RENDER_TILE)) for o in range(N_OVERLAY)}
    veg = np.zeros((RENDER_TILE, RENDER_TILE))
    water = np.zeros((RENDER_TILE, RENDER_TILE))
    for (m, o), f in joint.items():
        b = world.base_of(m)
        if m not in refl:
            r = material_reflectance(world, m, ground, xs, ys, cache)
            refl[m] = r if IS_WATER[b] else r * shade[None]
        surf[o] += f[None] * refl[m]
        frac_o[o] += f
        if IS_VEGETATION[b]:
            veg += f
        elif IS_WATER[b]:
            water += f
    return _TileSurface(xs, ys, surf, frac_o, veg, water)


def render_tile(world: World, params: SceneParams, date: str, ti: int, tj: int) -> dict[str, np.ndarray]:
    """Sentinel-2 L2A DN of every raster over one 256 × 256 (10 m) tile and its 128 × 128 (20 m) twin."""
    ts = surface_tile(world, date, ti, tj)
    xs, ys, surf, frac_o, veg, water = ts.xs, ts.ys, ts.surf, ts.frac_o, ts.veg, ts.water
    x0 = world.grid.transform.c + tj * RENDER_TILE * RES_M
    y0 = world.grid.transform.f - ti * RENDER_TILE * RES_M
    rho = surf[0] + surf[1] * SHADOW_FACTOR[:, None, None]
    if any(frac_o[o].any() for o in (2, 3, 4)):
        n = world.noise
        texture = n.grid(xs, ys, 300.0, 3, 20)
        cloud = np.asarray(SPECTRA["cloud"])[:, None, None] * (1 + 0.08 * texture)[None]
        for o, alpha0 in ((2, 0.28), (3, 0.75), (4, 0.94)):
            if not frac_o[o].any():
                continue
            alpha = np.clip(alpha0 * (1 + 0.12 * texture), 0.0, 0.99)[None]
            rho += (1 - alpha) * surf[o] + alpha * cloud * frac_o[o][None]
    else:
        for o in (2, 3, 4):
            rho += surf[o]
    if date == "after":
        haze = 0.5 + 0.5 * world.noise.grid(xs, ys, 8000.0, 2, 21)
        rho = (AFTER_GAIN[:, None, None] * rho + AFTER_OFFSET[:, None, None]
               + AFTER_HAZE[:, None, None] * haze[None])
    if world.tricks is not None:  # the radiometry of extra dates, and haze
        rho = world.tricks.surface_radiometry(world, date, rho, xs, ys)

    prod = world.products[date]
    dstream = 0 if date == "before" else 1 if date == "after" else world.tricks.noise_stream(date)
    rows10 = (ti * RENDER_TILE + np.arange(RENDER_TILE))[:, None]
    cols10 = (tj * RENDER_TILE + np.arange(RENDER_TILE))[None, :]
    nod10 = nodata_mask(world, date, xs, ys)
    out: dict[str, np.ndarray] = {}
    sig = params.noise_sigma
    for bi, b in enumerate(BANDS):
        if b in BANDS_10M:
            val = rho[bi] + sig[bi] * world.noise.normal(100 + dstream * 16 + bi, rows10, cols10)
            out[b] = _to_dn(val, prod, nod10)
    # 20 m: block means of the noise-free 10 m signal, then 20 m noise.
    h = RENDER_TILE // 2
    xs20 = x0 + (np.arange(h) + 0.5) * 2 * RES_M
    ys20 = y0 - (np.arange(h) + 0.5) * 2 * RES_M
    rows20 = (ti * h + np.arange(h))[:, None]
    cols20 = (tj * h + np.arange(h))[None, :]
    nod20 = nodata_mask(world, date, xs20, ys20)

    def m20(a: np.ndarray) -> np.ndarray:
        return a.reshape(h, 2, h, 2).mean(axis=(1, 3))

    for bi, b in enumerate(BANDS):
        if b in BANDS_20M:
            val = m20(rho[bi]) + sig[bi] * world.noise.normal(100 + dstream * 16 + bi, rows20, cols20)
            out[b] = _to_dn(val, prod, nod20)
    f_high, f_med, f_cir, f_sh = (m20(frac_o[o]) for o in (4, 3, 2, 1))
    veg20, water20 = m20(veg), m20(water)
    scl = np.full((h, h), 5, np.uint8)
    scl[veg20 >= 0.5] = 4
    scl[water20 >= 0.5] = 6
    scl[f_sh >= 0.5] = 3
    scl[f_high + f_med + f_cir >= 0.5] = 10
    scl[f_high + f_med >= 0.5] = 8
    scl[f_high >= 0.5] = 9
    scl[nod20] = 0
    out["SCL"] = scl
    return out


def _to_dn(rho: np.ndarray, prod: ProductMeta, nodata: np.ndarray) -> np.ndarray:
    dn = np.rint(rho * prod.quantification_value) + prod.dn_offset
    dn = np.clip(dn, 1, 65535).astype(np.uint16)
    dn[nodata] = 0
    return dn


def nodata_mask(world: World, date: str, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """True where the date has no data (the edge of a partial swath), at points ``xs``, ``ys``."""
    edge = world.nodata.get(date)
    if edge is None:
        return np.zeros((ys.size, xs.size), bool)
    x_top, slope, top = edge
    return xs[None, :] >= (x_top - slope * (top - ys))[:, None]


def render_drone_block(world: World, sub: Grid, shapes: list[tuple[Any, int]], flight: Any,
                        noise: Noise, inv: Any) -> tuple[np.ndarray, np.ndarray]:
    """RGB and alpha of one block of the drone orthomosaic (grid ``sub``), from the world at 1 m."""
    from rasterio import features

    h, w = sub.shape
    t = sub.transform
    res = t.a
    mat = _rasterize(shapes, (h, w), t, MATERIAL_INDEX["forest"])
    inside = features.geometry_mask([flight], out_shape=(h, w), transform=t, invert=True)
    xs = t.c + (np.arange(w) + 0.5) * res
    ys = t.f - (np.arange(h) + 0.5) * res
    # terrain shading: the scene DEM sampled on a 2 m lattice, via EPSG:32650
    step = max(1, int(round(2.0 / res)))
    lx = xs[::step]
    ly = ys[::step]
    gx, gy = np.meshgrid(lx, ly)
    ux, uy = inv.transform(gx.ravel(), gy.ravel())
    z = world._flatten(world.dem_raw_points(np.asarray(ux), np.asarray(uy))).reshape(gx.shape)
    dz = step * res
    shade_c = _illumination(z, dz, dz) if min(z.shape) > 2 else np.ones_like(z)
    ri = np.minimum(np.arange(h) // step, shade_c.shape[0] - 1)
    ci = np.minimum(np.arange(w) // step, shade_c.shape[1] - 1)
    shade = shade_c[np.ix_(ri, ci)]
    shade = 0.55 + 0.45 * np.clip(shade, 0.3, 1.4)

    def fb(wl: float, octv: int, stream: int) -> np.ndarray:
        return noise.grid(xs, ys, wl, octv, stream)

    fine = fb(0.8, 3, 41)  # grass tufts, gravel
    mid = fb(6.0, 3, 42)  # patches
    out = np.zeros((3, h, w), np.float32)
    present = np.unique(mat)
    for m in present:
        sel = mat == m
        base = np.asarray(MATERIALS[m].rgb, np.float32)[:, None]
        key = MATERIALS[m].key
        f = fine[sel]
        md = mid[sel]
        if key == "forest":
            crowns = fb(2.5, 2, 43)[sel]
            col = base * (1 + 0.35 * crowns + 0.12 * f)
        elif key in ("shrub_grass", "cropland", "logged"):
            col = base * (1 + 0.18 * f + 0.12 * md)
        elif key == "young_veg":
            # planted saplings on a 3 m lattice over hydro-seeded grass and soil
            xx = np.broadcast_to(xs[None, :], (h, w))[sel]
            yy = np.broadcast_to(ys[:, None], (h, w))[sel]
            cx = np.floor(xx / 3.0)
            cy = np.floor(yy / 3.0)
            jx = hash_u01(hash_key(noise.seed, 44), cx, cy) * 1.2 + 0.9
            jy = hash_u01(hash_key(noise.seed, 45), cx, cy) * 1.2 + 0.9
            rr = hash_u01(hash_key(noise.seed, 46), cx, cy) * 0.5 + 0.5
            d = np.hypot(xx - cx * 3.0 - jx, yy - cy * 3.0 - jy)
            tree = d < rr
            grass = np.asarray(MATERIALS[MATERIAL_INDEX["shrub_grass"]].rgb, np.float32)[:, None]
            soil = np.asarray(MATERIALS[MATERIAL_INDEX["bare_soil"]].rgb, np.float32)[:, None]
            cover = np.clip(0.65 + 0.5 * md, 0, 1)
            ground = np.where(f * 0.5 + 0.5 < cover, grass[:, :], soil[:, :]) * (1 + 0.12 * f)
            col = np.where(tree[None], np.array([58, 96, 44], np.float32)[:, None] * (1 + 0.2 * f), ground)
        elif key in ("bare_soil", "fallow"):
            col = base * (1 + 0.10 * f + 0.08 * md)
        elif key == "quarry_rock":
            cracks = np.abs(fb(3.0, 3, 47)[sel])
            col = base * (1 + 0.10 * f + 0.10 * md) * (0.75 + 0.25 * np.clip(cracks * 6, 0, 1))
        elif key == "blue_roof":
            xx = np.broadcast_to(xs[None, :], (h, w))[sel]
            col = base * (1 + 0.08 * np.sin(xx * 2 * math.pi / 0.35))
        elif key in ("clear_water", "turbid_water"):
            col = base * (1 + 0.04 * md)
        else:
            col = base * (1 + 0.05 * f)
        out[:, sel] = col
    out *= shade[None].astype(np.float32)
    rgb = np.clip(np.rint(out), 1, 255).astype(np.uint8)
    rgb[:, ~inside] = 0
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    return rgb, alpha
