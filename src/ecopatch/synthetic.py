"""Synthetic two-date scenes with known truth: the golden data of every accuracy test.

A seeded generator of a hilly landscape near Hangzhou (Yuhang district,
around 119.95° E, 30.22° N) as seen by Sentinel-2 L2A on two dates: abandoned
mines (废弃矿山) restored to different degrees, two kinds of nature reserves
(自然保护地) with functional zones, encroachments between the dates, a cloud
with its shadow, and a drone orthomosaic of one mine.  Everything is drawn
from **vector truth**: material polygons are rasterised at 1 m (10 ×
supersampling of the 10 m grid) and averaged, so boundary pixels are linear
mixtures like real ones.  Truth areas are true ground (geodesic) areas.

This module is pure: it returns arrays, GeoDataFrames and tables and never
touches a file (see :mod:`ecopatch.datasets` for the writers).  Every random
choice comes from ``seed``; textures and sensor noise are hash functions of
the world position / global pixel index, so a scene rendered block by block
is bit-identical to the scene rendered whole, and a 10980 × 10980 tile can be
rendered window by window in bounded memory.

Examples
--------
>>> from ecopatch.synthetic import make_scene
>>> scene = make_scene(shape=(64, 80), seed=1, n_mines=1, n_reserves=1,
...                    n_encroachments=2, n_decoys=0)
>>> scene.grid.shape, scene.grid20.shape
((64, 80), (32, 40))
>>> sorted(scene.dn["after"])
['B02', 'B03', 'B04', 'B08', 'B11', 'B12', 'SCL']
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from affine import Affine
from shapely import affinity
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from ecopatch.errors import ConfigError, InputDataError
from ecopatch.geodesy import geodesic_area_m2, ground_area_factor, transformer
from ecopatch.grid import Grid, Window
from ecopatch.vocabulary import RESTORATION_DIRECTIONS, canonical_zone

if TYPE_CHECKING:  # pragma: no cover
    import geopandas as gpd
    import pandas as pd

    from ecopatch._synthetic_sensors import product_grids, render_product
    from ecopatch._synthetic_tricks import SENSOR_NAMES, Haze, Rendering, cloud_geometry, crop_state

__all__ = [
    "BANDS",
    "BANDS_10M",
    "BANDS_20M",
    "DATES",
    "MATERIALS",
    "PRODUCTS",
    "RASTERS",
    "SCL_CLASSES",
    "SENSOR_NAMES",
    "TILE_ORIGIN_XY",
    "DroneOrtho",
    "Haze",
    "Material",
    "ProductMeta",
    "Rendering",
    "SceneParams",
    "SyntheticScene",
    "cloud_geometry",
    "crop_state",
    "make_drone",
    "make_scene",
    "product_grids",
    "render_product",
]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

#: Sentinel-2 bands rendered at 10 m.
BANDS_10M: tuple[str, ...] = ("B02", "B03", "B04", "B08")
#: Sentinel-2 bands rendered at 20 m (as in real L2A products).
BANDS_20M: tuple[str, ...] = ("B11", "B12")
#: All reflectance bands, in the order of the spectra in :data:`MATERIALS`.
BANDS: tuple[str, ...] = BANDS_10M + BANDS_20M
#: Every raster of a date: the bands and the scene classification (SCL, 20 m).
RASTERS: tuple[str, ...] = BANDS + ("SCL",)
#: The two acquisition keys of a scene.
DATES: tuple[str, ...] = ("before", "after")

#: Sen2Cor scene classification values used by the generator.
SCL_CLASSES: dict[int, str] = {
    0: "no data",
    3: "cloud shadows",
    4: "vegetation",
    5: "not vegetated",
    6: "water",
    8: "cloud medium probability",
    9: "cloud high probability",
    10: "thin cirrus",
}

#: Upper-left corner of MGRS tile T50RQU (EPSG:32650), metres; scenes snap to its 60 m grid.
TILE_ORIGIN_XY: tuple[float, float] = (699960.0, 3400020.0)
_SNAP_M = 60.0
_RES_M = 10.0
_SS = 10  # supersampling factor: 1 m fine pixels for the 10 m grid
_TILE = 256  # internal render tile, 10 m pixels (2.56 km); fixed so blocks are reproducible
_CRS = "EPSG:32650"
_SUN_ZENITH_DEG = 33.0
_SUN_AZIMUTH_DEG = 145.0
_CLOUD_HEIGHT_M = 1000.0  # height of the clouds' bases above the ground; their shadows fall height·tan(zenith) away
_N_OVERLAY = 5  # 0 clear, 1 shadow, 2 cirrus, 3 cloud medium, 4 cloud high


@dataclass(frozen=True)
class Material:
    """A ground material with its Sentinel-2 surface reflectance.

    Attributes
    ----------
    key : str
        Short English name.
    zh : str
        Chinese name.
    group : {"vegetation", "bare", "built", "water"}
        Cover group; "vegetation" counts as vegetated in the truth tables,
        "bare" and "built" as damaged / not vegetated.
    spectrum : tuple of float
        Mean surface reflectance (unitless, 0-1) in B02, B03, B04, B08, B11,
        B12 before texture; vegetation materials mix a canopy spectrum with
        a background one (see ``_material_reflectance``).
    rgb : tuple of int
        Mean sRGB colour (0-255) in the drone orthomosaic.
    """

    key: str
    zh: str
    group: str
    spectrum: tuple[float, ...]
    rgb: tuple[int, int, int]


# Reflectance values follow spectral-library means (USGS splib07, ECOSTRESS)
# resampled to the Sentinel-2 bands: subtropical evergreen canopy, red soil
# (laterite) of Zhejiang, limestone/granite quarry faces, painted steel.
_SP: dict[str, tuple[float, ...]] = {
    "forest_canopy": (0.025, 0.046, 0.025, 0.330, 0.150, 0.062),
    "forest_open": (0.055, 0.085, 0.095, 0.245, 0.255, 0.160),
    "shrub_canopy": (0.032, 0.065, 0.042, 0.320, 0.200, 0.090),
    "dry_grass": (0.060, 0.090, 0.110, 0.280, 0.300, 0.200),
    "crop_canopy": (0.030, 0.068, 0.036, 0.400, 0.205, 0.090),
    "wet_soil": (0.050, 0.065, 0.075, 0.120, 0.140, 0.095),
    "young_canopy": (0.038, 0.075, 0.050, 0.280, 0.210, 0.105),
    "red_soil": (0.075, 0.105, 0.170, 0.230, 0.310, 0.250),
    "rock": (0.200, 0.225, 0.245, 0.280, 0.320, 0.275),
    "concrete": (0.150, 0.165, 0.175, 0.195, 0.225, 0.205),
    "blue_roof": (0.190, 0.165, 0.105, 0.160, 0.150, 0.110),
    "asphalt": (0.055, 0.065, 0.072, 0.090, 0.110, 0.100),
    "clear_water": (0.048, 0.060, 0.032, 0.012, 0.006, 0.004),
    "turbid_water": (0.065, 0.095, 0.085, 0.045, 0.014, 0.009),
    "cloud": (0.440, 0.430, 0.430, 0.450, 0.360, 0.260),
}
_SHADOW_FACTOR = np.array([0.42, 0.38, 0.34, 0.30, 0.28, 0.28])

#: Materials by id (the id is the index).  Ids are stable within a version.
MATERIALS: tuple[Material, ...] = (
    Material("forest", "常绿林", "vegetation", _SP["forest_canopy"], (44, 68, 38)),
    Material("shrub_grass", "灌草地", "vegetation", _SP["shrub_canopy"], (96, 122, 62)),
    Material("cropland", "耕地", "vegetation", _SP["crop_canopy"], (108, 150, 62)),
    Material("young_veg", "复绿新植植被", "vegetation", _SP["young_canopy"], (112, 138, 70)),
    Material("logged", "采伐迹地", "vegetation", _SP["shrub_canopy"], (124, 118, 74)),
    Material("fallow", "撂荒地", "bare", _SP["red_soil"], (152, 122, 86)),
    Material("bare_soil", "裸土", "bare", _SP["red_soil"], (172, 112, 80)),
    Material("quarry_rock", "采场裸岩", "bare", _SP["rock"], (176, 172, 164)),
    Material("concrete", "水泥地面", "built", _SP["concrete"], (186, 186, 180)),
    Material("blue_roof", "彩钢瓦", "built", _SP["blue_roof"], (62, 112, 176)),
    Material("asphalt", "沥青路面", "built", _SP["asphalt"], (72, 72, 74)),
    Material("clear_water", "清水水面", "water", _SP["clear_water"], (48, 74, 82)),
    Material("turbid_water", "浑浊水体", "water", _SP["turbid_water"], (104, 114, 80)),
)
_MAT = {m.key: i for i, m in enumerate(MATERIALS)}
_N_MAT = len(MATERIALS)
_VEG = np.array([m.group == "vegetation" for m in MATERIALS])
_WATER = np.array([m.group == "water" for m in MATERIALS])

_DIRECTION_MATERIAL = {  # restoration direction -> material of the restored ground
    "forest": "young_veg",
    "shrub": "shrub_grass",
    "grass": "shrub_grass",
    "cropland": "cropland",
    "natural": "young_veg",
}

# After-date radiometry relative to before: gain * rho + offset (+ haze), per band.
_AFTER_GAIN = np.array([0.97, 0.98, 0.96, 1.04, 1.03, 1.02])
_AFTER_OFFSET = np.array([0.006, 0.004, 0.003, -0.004, 0.002, 0.001])
_AFTER_HAZE = np.array([0.012, 0.008, 0.005, 0.002, 0.0, 0.0])
# After-date phenology of the canopies (multiplies the canopy spectrum).
_PHENOLOGY = {
    "forest": np.array([0.97, 0.98, 0.94, 1.03, 0.99, 0.98]),  # greener
    "shrub_grass": np.array([1.03, 1.02, 1.06, 0.97, 1.03, 1.04]),  # drier
    "cropland": np.array([1.02, 1.00, 1.08, 0.95, 1.03, 1.04]),  # ripening rice
}
#: Sensor noise, reflectance units (1 sigma), per band.
_NOISE_SIGMA = (0.004, 0.004, 0.004, 0.006, 0.005, 0.005)

# ---------------------------------------------------------------------------
# Product metadata
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductMeta:
    """Sentinel-2 L2A product metadata of one synthetic acquisition.

    Attributes
    ----------
    product_id : str
        SAFE product name without ``.SAFE``.
    spacecraft : str
        "Sentinel-2A" or "Sentinel-2B".
    sensing_time : datetime.datetime
        Datatake sensing start, UTC.
    generation_time : datetime.datetime
        Product generation time, UTC.
    processing_baseline : str
        For example "03.01" or "05.10".
    quantification_value : int
        BOA_QUANTIFICATION_VALUE: reflectance = (DN + add_offset) / value.
    add_offset : int
        BOA_ADD_OFFSET in DN (0 before baseline 04.00, -1000 from it on).
    tile_id : str
        MGRS tile, "T50RQU".
    relative_orbit : int
        Relative orbit number (R089).
    absolute_orbit : int
        Absolute orbit number of the granule.
    """

    product_id: str
    spacecraft: str
    sensing_time: _dt.datetime
    generation_time: _dt.datetime
    processing_baseline: str
    quantification_value: int
    add_offset: int
    tile_id: str
    relative_orbit: int
    absolute_orbit: int

    @property
    def granule_id(self) -> str:
        """Granule folder name, e.g. ``L2A_T50RQU_A038975_20240912T023529``."""
        return f"L2A_{self.tile_id}_A{self.absolute_orbit:06d}_{self.sensing_time:%Y%m%dT%H%M%S}"

    @property
    def file_stem(self) -> str:
        """Prefix of the band file names, e.g. ``T50RQU_20240912T023529``."""
        return f"{self.tile_id}_{self.sensing_time:%Y%m%dT%H%M%S}"

    @property
    def dn_offset(self) -> int:
        """What is added to reflectance × quantification to get DN (``-add_offset``)."""
        return -self.add_offset


def _product(spacecraft: str, sensing: _dt.datetime, generated: _dt.datetime, baseline: str,
             abs_orbit: int) -> ProductMeta:
    add = -1000 if float(baseline) >= 4.0 else 0
    pid = (
        f"S2{spacecraft[-1]}_MSIL2A_{sensing:%Y%m%dT%H%M%S}_N{baseline.replace('.', '')}"
        f"_R089_T50RQU_{generated:%Y%m%dT%H%M%S}"
    )
    return ProductMeta(pid, spacecraft, sensing, generated, baseline, 10000, add, "T50RQU", 89,
                       abs_orbit)


_UTC = _dt.timezone.utc
#: The two products every scene imitates.
PRODUCTS: dict[str, ProductMeta] = {
    "before": _product("Sentinel-2A", _dt.datetime(2021, 9, 18, 2, 35, 51, tzinfo=_UTC),
                       _dt.datetime(2021, 9, 18, 6, 33, 15, tzinfo=_UTC), "03.01", 32547),
    "after": _product("Sentinel-2B", _dt.datetime(2024, 9, 12, 2, 35, 29, tzinfo=_UTC),
                      _dt.datetime(2024, 9, 12, 6, 10, 20, tzinfo=_UTC), "05.10", 38975),
}

# ---------------------------------------------------------------------------
# Deterministic hash noise
# ---------------------------------------------------------------------------

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))
_INV53 = 1.0 / 9007199254740992.0


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> _S30)) * _M2
    z = (z ^ (z >> _S27)) * _M3
    return z ^ (z >> _S31)


@lru_cache(maxsize=4096)
def _key(seed: int, stream: int) -> np.uint64:
    with np.errstate(over="ignore"):
        s = np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
        t = np.array([stream & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
        return _mix(_mix(s * _M1) ^ (t * _M3 + _M2))[0]


def _u01(key: np.uint64, a: Any, b: Any) -> np.ndarray:
    """Uniform [0, 1) from the integer pair (a, b) (broadcast), a pure function of ``key``."""
    with np.errstate(over="ignore"):
        h = _mix(np.asarray(a, dtype=np.int64).astype(np.uint64) * _M1 ^ key)
        h = _mix(h ^ (np.asarray(b, dtype=np.int64).astype(np.uint64) * _M2))
    return (h >> _S11).astype(np.float64) * _INV53


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


class _Noise:
    """Hash-based value noise and fBm, functions of world position (metres)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def _octave_key(self, stream: int, octave: int) -> np.uint64:
        return _key(self.seed, stream * 64 + octave)

    def grid(self, xs: np.ndarray, ys: np.ndarray, wl: float, octaves: int, stream: int,
             gain: float = 0.5) -> np.ndarray:
        """Fractal noise (fBm) on the separable grid ``ys`` (rows) × ``xs`` (cols); about [-1, 1]."""
        xs = np.asarray(xs, dtype=np.float64)
        ys = np.asarray(ys, dtype=np.float64)
        out = np.zeros((ys.size, xs.size))
        total = 0.0
        amp = 1.0
        for o in range(octaves):
            w = wl / (2.0**o)
            key = self._octave_key(stream, o)
            gx = xs / w
            gy = ys / w
            ix = np.floor(gx)
            iy = np.floor(gy)
            u = _fade(gx - ix)[None, :]
            v = _fade(gy - iy)[:, None]
            ix = ix.astype(np.int64)
            iy = iy.astype(np.int64)
            x0, y0 = int(ix.min()), int(iy.min())
            lx = np.arange(x0, int(ix.max()) + 2)
            ly = np.arange(y0, int(iy.max()) + 2)
            lat = _u01(key, lx[None, :], ly[:, None]) * 2.0 - 1.0
            ci = ix - x0
            ri = iy - y0
            a = lat[np.ix_(ri, ci)]
            b = lat[np.ix_(ri, ci + 1)]
            c = lat[np.ix_(ri + 1, ci)]
            d = lat[np.ix_(ri + 1, ci + 1)]
            top = a + (b - a) * u
            bot = c + (d - c) * u
            out += amp * (top + (bot - top) * v)
            total += amp
            amp *= gain
        return out / total

    def points(self, x: np.ndarray, y: np.ndarray, wl: float, octaves: int, stream: int,
               gain: float = 0.5) -> np.ndarray:
        """Fractal noise (fBm) at arbitrary points (same values as :meth:`grid` at the same coordinates)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        out = np.zeros(np.broadcast(x, y).shape)
        total = 0.0
        amp = 1.0
        for o in range(octaves):
            w = wl / (2.0**o)
            key = self._octave_key(stream, o)
            gx = x / w
            gy = y / w
            ix = np.floor(gx)
            iy = np.floor(gy)
            u = _fade(gx - ix)
            v = _fade(gy - iy)
            ix = ix.astype(np.int64)
            iy = iy.astype(np.int64)
            a = _u01(key, ix, iy) * 2 - 1
            b = _u01(key, ix + 1, iy) * 2 - 1
            c = _u01(key, ix, iy + 1) * 2 - 1
            d = _u01(key, ix + 1, iy + 1) * 2 - 1
            top = a + (b - a) * u
            bot = c + (d - c) * u
            out += amp * (top + (bot - top) * v)
            total += amp
            amp *= gain
        return out / total

    def cells(self, x: np.ndarray, y: np.ndarray, size: tuple[float, float], angle_deg: float,
              stream: int) -> np.ndarray:
        """Uniform [0, 1) constant on a rotated lattice of ``size`` (m) cells (field parcels)."""
        t = math.radians(angle_deg)
        u = x * math.cos(t) + y * math.sin(t)
        v = -x * math.sin(t) + y * math.cos(t)
        return _u01(_key(self.seed, stream), np.floor(u / size[0]), np.floor(v / size[1]))

    def normal(self, stream: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Standard normal per global pixel (Box-Muller on two hashes)."""
        u1 = _u01(_key(self.seed, stream * 2 + 1), rows, cols)
        u2 = _u01(_key(self.seed, stream * 2 + 2), rows, cols)
        return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


# ---------------------------------------------------------------------------
# Geometry helpers
# ---------------------------------------------------------------------------


def _polys(geom: Any) -> Any:
    """The polygonal part of ``geom`` (Polygon / MultiPolygon) or an empty Polygon."""
    if geom is None or geom.is_empty:
        return Polygon()
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return Polygon()
    return shapely.union_all(parts)


def _largest(geom: Any) -> Any:
    parts = list(shapely.get_parts(_polys(geom)))
    if not parts:
        return Polygon()
    return max(parts, key=lambda g: g.area)


def _blob(rng: np.random.Generator, cx: float, cy: float, r: float, *, roughness: float = 0.22,
          elong: float = 1.0, angle: float = 0.0, harmonics: int = 7, vertex_m: float = 6.0,
          jitter: float = 0.015) -> Polygon:
    """An irregular star-shaped polygon of mean radius ``r`` (m), vertices every ~``vertex_m``."""
    n = max(16, int(2 * math.pi * r / vertex_m))
    th = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    rad = np.ones(n)
    for k in range(2, harmonics + 1):
        rad += roughness * rng.normal() / k * np.cos(k * th + rng.uniform(0, 2 * math.pi))
    rad *= 1.0 + jitter * rng.normal(size=n)
    rad = np.clip(rad, 0.4, None)
    x = r * rad * np.cos(th) * elong
    y = r * rad * np.sin(th) / elong
    ca, sa = math.cos(angle), math.sin(angle)
    poly = Polygon(np.column_stack([cx + ca * x - sa * y, cy + sa * x + ca * y]))
    if not poly.is_valid:
        poly = _largest(shapely.make_valid(poly))
    return poly


def _quad(rng: np.random.Generator, cx: float, cy: float, w: float, h: float, angle: float,
          jitter: float = 0.06) -> Polygon:
    """A jittered rotated rectangle ``w`` × ``h`` metres centred on (cx, cy)."""
    pts = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    pts = pts + rng.normal(scale=jitter * min(w, h), size=pts.shape)
    ca, sa = math.cos(angle), math.sin(angle)
    xy = np.column_stack([cx + ca * pts[:, 0] - sa * pts[:, 1], cy + sa * pts[:, 0] + ca * pts[:, 1]])
    return Polygon(xy)


def _area_factor(x: float, y: float) -> float:
    """Ground m² per map m² of EPSG:32650 near (x, y) (cached on a 2 km lattice)."""
    return _area_factor_km(int(x // 2000), int(y // 2000))


@lru_cache(maxsize=4096)
def _area_factor_km(i: int, j: int) -> float:
    return float(ground_area_factor(_CRS, np.array([i * 2000.0 + 1000.0]), np.array([j * 2000.0 + 1000.0]))[0])


def _scale_to_ground_area(poly: Any, area_m2: float) -> Any:
    """Scale ``poly`` about its centroid so that its geodesic area is about ``area_m2``."""
    c = poly.centroid
    f = _area_factor(c.x, c.y)
    s = math.sqrt(area_m2 / (poly.area * f))
    return affinity.scale(poly, s, s, origin=c)


def _ground_area(geom: Any) -> float:
    return float(geodesic_area_m2(geom, _CRS)) if geom is not None and not geom.is_empty else 0.0


def _wavy_halfplane(c: tuple[float, float], u: tuple[float, float], tau: float, extent: float,
                    amp: float, phase: float, wl: float) -> Polygon:
    """Region {p : (p - c)·u + amp·sin(2π s / wl + phase) < tau}, s along u⊥, within ``extent``."""
    ux, uy = u
    vx, vy = -uy, ux
    s = np.linspace(-extent, extent, 121)
    t = tau - amp * np.sin(2 * math.pi * s / wl + phase)
    far = -extent * 2
    s = np.r_[s, extent, -extent]
    t = np.r_[t, far, far]
    poly = shapely.polygons(np.column_stack([c[0] + s * vx + t * ux, c[1] + s * vy + t * uy]))
    if not poly.is_valid:
        poly = _polys(shapely.make_valid(poly))
    return poly


def _split_by_fraction(region: Any, c: tuple[float, float], u: tuple[float, float],
                       frac: float, rng: np.random.Generator, extent: float) -> Any:
    """The part of ``region`` on the low side of a wavy front along ``u`` holding ``frac`` of it."""
    if frac <= 0 or region.is_empty:
        return Polygon()
    if frac >= 1:
        return region
    amp = rng.uniform(0.03, 0.08) * extent
    phase = rng.uniform(0, 2 * math.pi)
    wl = rng.uniform(0.5, 1.0) * extent
    total = region.area
    lo, hi = -extent * 1.2, extent * 1.2
    part = Polygon()
    for _ in range(28):
        mid = 0.5 * (lo + hi)
        part = _polys(region.intersection(_wavy_halfplane(c, u, mid, extent * 1.5, amp, phase, wl)))
        if part.area < frac * total:
            lo = mid
        else:
            hi = mid
    return part


def _bowtie(poly: Polygon, rng: np.random.Generator) -> Polygon:
    """Insert a small self-crossing loop in the exterior ring (a digitising error)."""
    ring = np.asarray(poly.exterior.coords)[:-1]
    n = len(ring)
    i = int(rng.integers(0, n))
    p, q = ring[i], ring[(i + 1) % n]
    tan = (q - p) / max(np.hypot(*(q - p)), 1e-9)
    c = np.asarray(poly.centroid.coords[0])
    out = np.array([tan[1], -tan[0]])
    if np.dot(out, p - c) < 0:
        out = -out
    a = p + out * 14.0 + tan * 6.0
    b = p + out * 14.0 - tan * 6.0
    q2 = p + tan * max(np.hypot(*(q - p)), 12.0)
    new = np.vstack([ring[: i + 1], a, b, q2, ring[i + 1:]]) if np.hypot(*(q - p)) < 12 else \
        np.vstack([ring[: i + 1], a, b, ring[i + 1:]])
    return Polygon(new)


def _cover_fraction(g: Any, tree: Any) -> float:
    """Share (0-1) of ``g`` covered by the geometries of ``tree`` (disjoint parts)."""
    if tree is None:
        return 0.0
    idx = tree.query(g, predicate="intersects")
    if idx.size == 0:
        return 0.0
    cover = shapely.union_all(tree.geometries.take(idx))
    return float(min(1.0, g.intersection(cover).area / g.area))


class _Occupancy:
    """Footprints already placed, bucketed on a coarse grid for fast distance checks."""

    def __init__(self, cell: float = 500.0) -> None:
        self.cell = cell
        self.buckets: dict[tuple[int, int], list[Any]] = {}

    def _keys(self, bounds: tuple[float, float, float, float], pad: float) -> Iterable[tuple[int, int]]:
        x0, y0, x1, y1 = bounds
        for i in range(int(math.floor((x0 - pad) / self.cell)), int(math.floor((x1 + pad) / self.cell)) + 1):
            for j in range(int(math.floor((y0 - pad) / self.cell)), int(math.floor((y1 + pad) / self.cell)) + 1):
                yield (i, j)

    def add(self, geom: Any) -> None:
        for k in self._keys(geom.bounds, 0.0):
            self.buckets.setdefault(k, []).append(geom)

    def clear_of(self, geom: Any, gap: float) -> bool:
        seen: set[int] = set()
        for k in self._keys(geom.bounds, gap):
            for g in self.buckets.get(k, ()):
                if id(g) in seen:
                    continue
                seen.add(id(g))
                gx0, gy0, gx1, gy1 = g.bounds
                x0, y0, x1, y1 = geom.bounds
                if gx0 - x1 >= gap or x0 - gx1 >= gap or gy0 - y1 >= gap or y0 - gy1 >= gap:
                    continue
                if g.distance(geom) < gap:
                    return False
        return True


# ---------------------------------------------------------------------------
# Names (fictional) and attribute vocabularies
# ---------------------------------------------------------------------------

_PLACES = (
    "青石坞", "白岩山", "黄泥岭", "石门坎", "狮子岩", "龙坞口", "桃花岭", "茶山湾", "竹林坞", "鹰嘴岩",
    "凤凰岗", "石塘坞", "金鸡岭", "板桥山", "大坞里", "上庄岭", "乌龟山", "马鞍山", "长岭头", "碧水坞",
    "松树岗", "栗山坞", "孤峰岭", "溪口山", "枫树湾", "牛角尖", "天竺岭", "双溪岗", "石壁坞", "云峰岭",
)
_MINE_KINDS = ("石矿", "建筑石料矿", "采石场", "石灰岩矿", "砖瓦用黏土矿", "花岗岩矿")
_TOWNS = ("青石镇", "白云街道", "云溪镇", "石门街道", "桃源镇", "竹岭镇", "双溪街道", "枫林镇")
_RESERVE_NAMES = ("石门岭", "云溪", "白鹭湾", "青峰山", "翠竹岭", "碧湖", "天目坞", "紫霞岭", "凤栖谷",
                  "龙潭岭", "清源山", "松涛岭")
_RESERVE_TYPES = (  # type, level, style
    ("自然保护区", "省级", "old"),
    ("湿地公园", "国家级", "new"),
    ("森林公园", "省级", "new"),
    ("自然保护区", "国家级", "old"),
    ("森林公园", "国家级", "new"),
    ("湿地公园", "省级", "new"),
)
_ZONES_OLD = (("核心区", 0.42), ("缓冲区", 0.68), ("实验区", 1.0))
_ZONES_NEW = (("核心保护区", 0.55), ("一般控制区", 1.0))
def _unit(town: str) -> str:
    return town + ("办事处" if town.endswith("街道") else "人民政府")


_DIRECTION_KEYS = ("forest", "grass", "cropland", "shrub", "natural")
_DIRECTION_WEIGHTS = (0.45, 0.15, 0.15, 0.15, 0.10)


# ---------------------------------------------------------------------------
# Scene parameters and results
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneParams:
    """Generator parameters of a scene (all recorded in the truth JSON).

    Attributes
    ----------
    seed : int
        The seed everything derives from.
    shape : tuple of int
        ``(rows, cols)`` of the 10 m grid.
    center_lonlat : tuple of float
        Requested scene centre, degrees (WGS84 longitude, latitude).
    n_mines, n_reserves, n_encroachments, n_decoys, n_clouds : int
        Object counts actually used.
    valley_level_m : float
        DEM level below which the land is valley floor (cropland, villages).
    noise_sigma : tuple of float
        Sensor noise per band (B02 … B12), reflectance units.
    nodata_edge : bool
        Whether the before date has a strip of nodata at its east edge.
    """

    seed: int
    shape: tuple[int, int]
    center_lonlat: tuple[float, float]
    n_mines: int
    n_reserves: int
    n_encroachments: int
    n_decoys: int
    n_clouds: int
    valley_level_m: float
    noise_sigma: tuple[float, ...]
    nodata_edge: bool


@dataclass
class _Mine:
    mine_id: str
    name: str
    direction: str  # key of RESTORATION_DIRECTIONS
    unit: str
    plan_year: int
    geom: Any  # truth (valid) geometry
    raw: Any  # as digitised (may be invalid)
    target_rate: float
    parts: dict[str, list[tuple[Any, int]]] = field(default_factory=dict)
    restored: Any = None  # the restored region (subset of the damaged ground)
    has_hole: bool = False
    invalid_in_source: bool = False


@dataclass
class _Change:
    enc_id: str
    change_type: str
    geom: Any
    before: list[tuple[Any, int]]
    after: list[tuple[Any, int]]
    is_decoy: bool
    before_material: str
    after_material: str


class _World:
    """Everything a scene is drawn from; built once by :func:`make_scene`, then read-only."""

    def __init__(self, grid: Grid, seed: int) -> None:
        self.grid = grid
        self.seed = seed
        self.noise = _Noise(seed)
        lft, b, r, t = grid.bounds
        self.bounds = (lft, b, r, t)
        self.valley_level = 0.0
        self.lines: list[tuple[Any, int]] = []  # roads, tracks (buffered pieces)
        self.objects: list[tuple[Any, int]] = []  # lakes, ponds, buildings
        self.mines: list[_Mine] = []
        self.changes: list[_Change] = []
        self.overlays: list[tuple[Any, int]] = []  # after-date clouds (geom, overlay code)
        self.nodata: dict[str, Any] = {"before": None, "after": None}
        self._tile_layers: OrderedDict[tuple[int, int], list[tuple[Any, int]]] = OrderedDict()
        # all tiles are kept while objects are placed (random access); rendering keeps a few
        self._tile_cache_max = 1 << 30
        self._lock = threading.Lock()
        self._trees: dict[str, tuple[Any, list[tuple[Any, int]]]] = {}
        self.products: dict[str, ProductMeta] = dict(PRODUCTS)
        # the world's tricks (ecopatch._synthetic_tricks.Tricks) when make_scene was asked for any
        self.tricks: Any = None

    def base_of(self, mat: int) -> int:
        """The material of :data:`MATERIALS` a surface id is made of (trick surfaces have ids past them)."""
        return mat if mat < _N_MAT else self.tricks.base_of(mat)

    def state(self, key: str) -> tuple[str, bool]:
        """``(ground, clouds)`` of an acquisition: which truth state it shows, and whether the clouds are in it."""
        if self.tricks is not None:
            return self.tricks.state(key)
        return key, key == "after"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for k in ("_lock", "_tile_layers", "_trees"):
            state.pop(k)
        state["_frozen"] = bool(self._trees)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        frozen = state.pop("_frozen")
        self.__dict__.update(state)
        self._tile_layers = OrderedDict()
        self._tile_cache_max = 64
        self._lock = threading.Lock()
        self._trees = {}
        if frozen:
            self.freeze()

    # -- terrain -------------------------------------------------------
    def dem_raw_grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        n = self.noise
        return (520.0 * n.grid(xs, ys, 2800.0, 4, 1) + 110.0 * n.grid(xs, ys, 700.0, 3, 2)
                + 25.0 * n.grid(xs, ys, 220.0, 2, 4))

    def dem_raw_points(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        n = self.noise
        return (520.0 * n.points(x, y, 2800.0, 4, 1) + 110.0 * n.points(x, y, 700.0, 3, 2)
                + 25.0 * n.points(x, y, 220.0, 2, 4))

    def _flatten(self, e: np.ndarray) -> np.ndarray:
        d = e - self.valley_level
        w = 8.0
        return 40.0 + w * np.logaddexp(0.0, d / w) + 0.04 * d

    def dem_grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Elevation (m) on the grid ``ys`` × ``xs`` (EPSG:32650 metres)."""
        return self._flatten(self.dem_raw_grid(xs, ys))

    def height_above_valley(self, x: Any, y: Any) -> np.ndarray:
        return self.dem_raw_points(np.asarray(x, float), np.asarray(y, float)) - self.valley_level

    def shrub_field(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        return self.noise.grid(xs, ys, 520.0, 3, 3) - 0.28

    # -- landscape tiles (contour polygons) ----------------------------
    def tile_box(self, ti: int, tj: int) -> tuple[float, float, float, float]:
        lft, _, _, t = self.bounds
        size = _TILE * _RES_M
        return (lft + tj * size, t - (ti + 1) * size, lft + (tj + 1) * size, t - ti * size)

    def tile_layers(self, ti: int, tj: int) -> list[tuple[Any, int]]:
        """Shrub and cropland polygons of one 2.56 km landscape tile (clipped to it)."""
        key = (ti, tj)
        with self._lock:
            hit = self._tile_layers.get(key)
            if hit is not None:
                self._tile_layers.move_to_end(key)
        if hit is not None:
            return hit
        bx = self.tile_box(ti, tj)
        out: list[tuple[Any, int]] = []
        for fn, mat in ((self.shrub_field, _MAT["shrub_grass"]),
                        (lambda xs, ys: self.valley_level - self.dem_raw_grid(xs, ys), _MAT["cropland"])):
            for poly in _contour_polygons(fn, bx, step=20.0):
                out.append((poly, mat))
        with self._lock:
            self._tile_layers[key] = out
            while len(self._tile_layers) > self._tile_cache_max:
                self._tile_layers.popitem(last=False)
        return out

    def tiles_for(self, bounds: tuple[float, float, float, float]) -> list[tuple[int, int]]:
        lft, _, _, t = self.bounds
        size = _TILE * _RES_M
        x0, y0, x1, y1 = bounds
        j0 = int(math.floor((x0 - lft) / size))
        j1 = int(math.floor((x1 - lft) / size))
        i0 = int(math.floor((t - y1) / size))
        i1 = int(math.floor((t - y0) / size))
        return [(i, j) for i in range(i0, i1 + 1) for j in range(j0, j1 + 1)]

    # -- spatial queries -------------------------------------------------
    def freeze(self) -> None:
        """Build the spatial indexes once everything is placed; bound the tile cache."""
        with self._lock:
            self._tile_cache_max = 64
            while len(self._tile_layers) > self._tile_cache_max:
                self._tile_layers.popitem(last=False)
        def tree(items: list[tuple[Any, int]]) -> tuple[Any, list[tuple[Any, int]]]:
            geoms = [g for g, _ in items]
            return (shapely.STRtree(geoms) if geoms else None, items)

        self._trees = {
            "lines": tree(self.lines),
            "objects": tree(self.objects),
            "mine_before": tree([p for m in self.mines for p in m.parts["before"]]),
            "mine_after": tree([p for m in self.mines for p in m.parts["after"]]),
            "change_before": tree([p for c in self.changes for p in c.before]),
            "change_after": tree([p for c in self.changes for p in c.after]),
            "overlays": tree(self.overlays),
        }

    def _query(self, name: str, bx: Any) -> list[tuple[Any, int]]:
        t, items = self._trees[name]
        if t is None:
            return []
        idx = np.sort(t.query(bx))
        return [items[i] for i in idx]

    def landscape_shapes(self, bx: Any, *, tiles: Sequence[tuple[int, int]] | None = None,
                         objects: list[tuple[Any, int]] | None = None,
                         lines: list[tuple[Any, int]] | None = None) -> list[tuple[Any, int]]:
        """Landscape layers (paint order) intersecting the box polygon ``bx``."""
        out: list[tuple[Any, int]] = []
        b = bx.bounds
        tl = tiles if tiles is not None else self.tiles_for(b)
        tile_items = [it for ti, tj in tl for it in self.tile_layers(ti, tj)]
        for mat in (_MAT["shrub_grass"], _MAT["cropland"]):
            out.extend((g, m) for g, m in tile_items if m == mat and g.intersects(bx))
        src_obj = objects if objects is not None else self._query("objects", bx)
        src_lin = lines if lines is not None else self._query("lines", bx)
        water = [it for it in src_obj if _WATER[it[1]]]
        built = [it for it in src_obj if not _WATER[it[1]]]
        out.extend(it for it in water if it[0].intersects(bx))
        out.extend(it for it in src_lin if it[0].intersects(bx))
        out.extend(it for it in built if it[0].intersects(bx))
        return out

    def surface_shapes(self, date: str, bx: Any, tile: tuple[int, int] | None = None,
                       acq: str | None = None) -> list[tuple[Any, int]]:
        """All surface shapes of ``date`` in paint order (the fill below them is forest).

        ``date`` is the ground state ("before" or "after"); ``acq`` the acquisition
        (default ``date``), whose season decides the trick surfaces (seasonal fields).
        """
        shapes = self.landscape_shapes(bx, tiles=[tile] if tile is not None else None)
        if self.tricks is not None:
            shapes += self.tricks.shapes(acq or date, bx)
        shapes += [it for it in self._query(f"mine_{date}", bx) if it[0].intersects(bx)]
        shapes += [it for it in self._query(f"change_{date}", bx) if it[0].intersects(bx)]
        return shapes

    def material_under(self, poly: Any, obstacles: Any) -> int | None:
        """The single landscape material under ``poly``, or None when it is mixed.

        ``obstacles`` is an STRtree of roads, tracks and objects (any hit means mixed).
        """
        bx = box(*poly.bounds)
        if obstacles is not None and obstacles.query(poly, predicate="intersects").size:
            return None
        layers = [it for it in self.landscape_shapes(bx, objects=[], lines=[]) if it[0].intersects(poly)]
        if not layers:
            return _MAT["forest"]
        top = layers[-1][1]
        cover = shapely.union_all([g for g, m in layers if m == top])
        if poly.difference(cover).area > 1e-3 * poly.area:
            return None
        return top


def _contour_polygons(field_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
                      bounds: tuple[float, float, float, float], step: float) -> list[Any]:
    """Polygons where ``field_fn > 0`` inside ``bounds``, from marching squares on a lattice."""
    from skimage.measure import find_contours

    x0, y0, x1, y1 = bounds
    margin = 3
    nx = int(round((x1 - x0) / step)) + 2 * margin + 1
    ny = int(round((y1 - y0) / step)) + 2 * margin + 1
    xs = x0 - margin * step + step * np.arange(nx)
    ys = y1 + margin * step - step * np.arange(ny)
    f = field_fn(xs, ys)
    if (f <= 0).all():
        return []
    bx = box(*bounds)
    if (f > 0).all():
        return [bx]
    fp = np.pad(f, 1, constant_values=-1.0)
    lines = [LineString(c[:, ::-1]) for c in find_contours(fp, 0.0) if len(c) >= 4]
    faces = list(shapely.get_parts(shapely.polygonize(lines)))
    out = []
    for face in faces:
        if face.area <= 0:
            continue
        p = face.representative_point()
        c, r = p.x - 1.0, p.y - 1.0
        ci, ri = int(np.clip(np.floor(c), 0, nx - 2)), int(np.clip(np.floor(r), 0, ny - 2))
        fc, fr = c - ci, r - ri
        val = (f[ri, ci] * (1 - fc) * (1 - fr) + f[ri, ci + 1] * fc * (1 - fr)
               + f[ri + 1, ci] * (1 - fc) * fr + f[ri + 1, ci + 1] * fc * fr)
        if val <= 0:
            continue
        world = affinity.affine_transform(face, [step, 0, 0, -step, xs[0] - step, ys[0] + step])
        clipped = _polys(shapely.clip_by_rect(world, *bounds))
        out.extend(g for g in shapely.get_parts(clipped) if g.area > 1.0)
    return out


# ---------------------------------------------------------------------------
# The scene
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DroneOrtho:
    """A drone RGB orthomosaic rendered from the scene truth.

    Attributes
    ----------
    rgb : ndarray of uint8, shape (3, rows, cols)
        Red, green, blue; 0 outside the flown area (black collar).
    alpha : ndarray of uint8, shape (rows, cols)
        255 inside the flown area, 0 outside.
    grid : Grid
        Its own grid, in EPSG:4549 (CGCS2000 / 3-degree Gauss-Krüger CM 120E,
        metres; northing-first in the CRS definition, x = easting here).
    mine_id : str
        The mine flown.
    date : str
        "after".
    flight_area : shapely Polygon
        The flown area, EPSG:4549.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    grid: Grid
    mine_id: str
    date: str
    flight_area: Any


@dataclass(frozen=True, eq=False)
class SyntheticScene:
    """A synthetic two-date Sentinel-2 L2A scene with its truth.

    Arrays are (row, col); DN are uint16 (SCL uint8) with 0 = nodata.
    Geometries are in EPSG:32650 (WGS 84 / UTM 50N, the imagery CRS) unless
    stated; every ``*_m2`` value is a true ground (geodesic) area.

    The rasters are rendered on demand: :attr:`dn` renders and keeps the
    whole scene (small scenes), :meth:`render_window` and
    :meth:`render_block` render any window with bounded memory (big scenes),
    :meth:`reflectance` converts to surface reflectance.  The vector truth the
    rasters are drawn from is :meth:`surface_shapes`; the terrain is
    :meth:`dem`.  A scene pickles (for Dask workers) without its caches.

    Attributes
    ----------
    params : SceneParams
        Generator parameters (seed, shape, counts).
    grid : Grid
        10 m grid (B02, B03, B04, B08), EPSG:32650.
    grid20 : Grid
        20 m grid (B11, B12, SCL): ``ceil(rows / 2) × ceil(cols / 2)``, same origin.
    dates : dict of str to datetime.date
        ``{"before": 2021-09-18, "after": 2024-09-12}``.
    products : dict of str to ProductMeta
        Per date: product name, processing baseline, quantification and offset.
    mines : GeoDataFrame
        Mine patches as a bureau digitises them (Chinese columns 矿山编号,
        矿山名称, 修复方向, 所在区县, 责任单位, 计划完成年份) with the valid truth
        geometry, EPSG:32650.
    mines_source : GeoDataFrame
        Same attributes in EPSG:4490 with the geometry as digitised: one
        polygon carries a self-intersecting bow-tie (invalid on purpose).
    reserves : GeoDataFrame
        One row per functional-zone polygon (保护地编号, 保护地名称, 保护地类型,
        级别, 功能分区), EPSG:32650.
    encroachments : GeoDataFrame
        Truth of every change between the dates: ``enc_id``, ``change_type``
        (one of :data:`ecopatch.vocabulary.CHANGE_TYPES`), ``area_m2``,
        ``reserve_name`` (None outside), ``zone`` (strictest canonical zone or
        "outside"), ``zones`` (comma-separated canonical zones touched),
        ``zone_name``, ``under_cloud``, ``cloud_fraction``, ``is_decoy``
        (a real change smaller than 400 m²), ``before_material``,
        ``after_material``.
    clouds : GeoDataFrame
        After-date cloud truth, one row per kind: ``kind`` in
        {"cloud_high", "cloud_medium", "cirrus", "shadow"}, ``scl_class``
        (9, 8, 10, 3), ``date``; kinds are disjoint.
    nodata : GeoDataFrame
        Nodata regions per date (``date``, geometry); may be empty.
    restoration_truth : DataFrame
        One row per mine: ``mine_id``, ``name``, ``direction`` (宜林 …),
        ``direction_key``, ``area_m2``, ``damaged_m2``, ``restored_m2``,
        ``still_bare_m2``, ``restoration_rate`` (0-1, restored / damaged),
        ``vegetated_before_m2``, ``water_m2``, ``cloud_touched``,
        ``cloud_fraction``, ``n_parts``, ``has_hole``, ``invalid_in_source``.
    mine_parts : GeoDataFrame
        Fine truth: the material partition of every mine at each date
        (``mine_id``, ``date``, ``material``, ``group``, geometry).
    drone_mine_id : str or None
        A partly restored mine suitable for :func:`make_drone`.
    tricks : Tricks or None
        The world's tricks asked of :func:`make_scene` (seasons, brightness
        changes, haze, other sensors, extra dates) with their truth; None
        for a plain scene.  See :attr:`pseudo_changes` and :attr:`acquisitions`.
    """

    params: SceneParams
    grid: Grid
    grid20: Grid
    dates: dict[str, _dt.date]
    products: dict[str, ProductMeta]
    mines: gpd.GeoDataFrame
    mines_source: gpd.GeoDataFrame
    reserves: gpd.GeoDataFrame
    encroachments: gpd.GeoDataFrame
    clouds: gpd.GeoDataFrame
    nodata: gpd.GeoDataFrame
    restoration_truth: pd.DataFrame
    mine_parts: gpd.GeoDataFrame
    drone_mine_id: str | None
    _world: _World = field(repr=False, compare=False)
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False, compare=False)
    _cache_lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)
    tricks: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        state = {f: getattr(self, f) for f in self.__dataclass_fields__ if f not in ("_cache", "_cache_lock")}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)
        object.__setattr__(self, "_cache", OrderedDict())
        object.__setattr__(self, "_cache_lock", threading.Lock())

    @property
    def seed(self) -> int:
        """The seed the scene derives from."""
        return self.params.seed

    @property
    def crs(self) -> Any:
        """The imagery CRS (EPSG:32650)."""
        return self.grid.crs

    # -- the world's tricks (ecopatch._synthetic_tricks) --------------------
    @property
    def pseudo_changes(self) -> gpd.GeoDataFrame:
        """Truth of what changes in the imagery without being an encroachment (伪变化).

        Seasonal cropland and existing bare or built surfaces whose brightness
        changes; empty unless :func:`make_scene` was asked for them.  See
        :func:`ecopatch._synthetic_tricks.pseudo_change_columns` for the columns.
        """
        from ecopatch._synthetic_tricks import empty_pseudo_changes

        return self.tricks.pseudo_changes if self.tricks is not None else empty_pseudo_changes(self.crs)

    @property
    def acquisitions(self) -> pd.DataFrame:
        """One row per acquisition (``before``, ``after``, extra dates): date, sensor, product, haze, clouds."""
        from ecopatch._synthetic_tricks import acquisition_table

        return acquisition_table(self)

    def _check_key(self, date: str) -> None:
        if date not in self.dates:
            raise InputDataError(f"unknown date {date!r}; use one of {list(self.dates)}")

    def band_grid(self, band: str) -> Grid:
        """The grid a band (or "SCL") lives on: :attr:`grid` or :attr:`grid20`."""
        if band in BANDS_10M:
            return self.grid
        if band in BANDS_20M or band == "SCL":
            return self.grid20
        raise InputDataError(f"unknown band {band!r}; use one of {list(RASTERS)}")

    # -- rendering -------------------------------------------------------
    def _tile(self, date: str, ti: int, tj: int) -> dict[str, np.ndarray]:
        key = (date, ti, tj)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        out = _render_tile(self._world, self.params, date, ti, tj)
        with self._cache_lock:
            self._cache[key] = out
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
        return out

    def render_window(self, date: str, window: Window | None = None) -> dict[str, np.ndarray]:
        """Render every raster of ``date`` over a window of the 10 m grid.

        Parameters
        ----------
        date : str
            Acquisition: "before", "after", or an extra date of the scene
            (its ISO date, see :attr:`acquisitions`).  Every acquisition is
            rendered here as Sentinel-2 L2A, whatever product it is written
            as (:func:`ecopatch.synthetic.render_product` renders that).
        window : Window, optional
            Window of :attr:`grid` (10 m pixels) with even row and column
            offsets; default the whole grid.  It may extend past the grid.

        Returns
        -------
        dict of str to ndarray
            B02, B03, B04, B08 (uint16) of ``window.shape``; B11, B12 (uint16)
            and SCL (uint8, Sen2Cor classes) over the 20 m window
            ``(row_off // 2, col_off // 2, ceil(height / 2), ceil(width / 2))``.
            DN = reflectance × 10000 + dn_offset (0 before, 1000 after);
            0 = nodata in every raster.

        Notes
        -----
        Rendering goes through fixed 256 × 256 tiles aligned to the grid
        origin, so any tiling of the grid gives bit-identical arrays.  Memory
        is bounded by the window plus a few tiles.
        """
        self._check_key(date)
        win = window or self.grid.window
        if win.row_off % 2 or win.col_off % 2:
            raise InputDataError(
                f"render_window needs even row/col offsets so that 20 m pixels line up; got {win}"
            )
        w20 = Window(win.row_off // 2, win.col_off // 2, (win.height + 1) // 2, (win.width + 1) // 2)
        out = {b: np.zeros(win.shape, np.uint16) for b in BANDS_10M}
        out.update({b: np.zeros(w20.shape, np.uint16) for b in BANDS_20M})
        out["SCL"] = np.zeros(w20.shape, np.uint8)
        for ti in range(win.row_off // _TILE, (win.row_end - 1) // _TILE + 1):
            for tj in range(win.col_off // _TILE, (win.col_end - 1) // _TILE + 1):
                tile = self._tile(date, ti, tj)
                tw = Window(ti * _TILE, tj * _TILE, _TILE, _TILE)
                inter = tw.intersection(win)
                if inter is not None:
                    src = inter.relative_to(tw).slices
                    dst = inter.relative_to(win).slices
                    for b in BANDS_10M:
                        out[b][dst] = tile[b][src]
                tw20 = Window(ti * _TILE // 2, tj * _TILE // 2, _TILE // 2, _TILE // 2)
                inter20 = tw20.intersection(w20)
                if inter20 is not None:
                    src = inter20.relative_to(tw20).slices
                    dst = inter20.relative_to(w20).slices
                    for b in (*BANDS_20M, "SCL"):
                        out[b][dst] = tile[b][src]
        return out

    def render_block(self, date: str, band: str, window: Window | None = None) -> np.ndarray:
        """Render one band over a window of its own grid (10 m or 20 m).

        Parameters
        ----------
        date : {"before", "after"}
        band : str
            One of :data:`RASTERS`.
        window : Window, optional
            Window of :meth:`band_grid` ``(band)``; default the whole grid.

        Returns
        -------
        ndarray of uint16 (uint8 for SCL), shape ``window.shape``
            DN (see :meth:`render_window`); identical to the same pixels of
            the whole rendered band.
        """
        g = self.band_grid(band)
        win = window or g.window
        if band in BANDS_10M:
            r0, c0 = win.row_off - win.row_off % 2, win.col_off - win.col_off % 2
            w10 = Window(r0, c0, win.row_end - r0, win.col_end - c0)
            arr = self.render_window(date, w10)[band]
            return arr[win.row_off - r0:, win.col_off - c0:].copy()
        w10 = Window(win.row_off * 2, win.col_off * 2, win.height * 2, win.width * 2)
        return self.render_window(date, w10)[band]

    @cached_property
    def dn(self) -> dict[str, dict[str, np.ndarray]]:
        """Whole-scene Sentinel-2 L2A DN per date and raster: ``dn["after"]["B04"]`` (uint16; SCL uint8).

        Computed on first access and kept; for big scenes use
        :meth:`render_window` instead.
        """
        return {d: self.render_window(d) for d in self.dates}

    def reflectance(self, date: str, band: str) -> np.ndarray:
        """Whole-scene surface reflectance of one band (float32, NaN = nodata)."""
        dn = self.dn[date][band].astype(np.float32)
        p = self.products[date]
        out = (dn + p.add_offset) / p.quantification_value
        out[dn == 0] = np.nan
        return out

    # -- fine truth ------------------------------------------------------
    def surface_shapes(self, date: str, bounds: tuple[float, float, float, float]) -> list[tuple[Any, str]]:
        """Material polygons of ``date`` intersecting ``bounds`` (EPSG:32650), in paint order.

        The ground not covered by any of them is forest.  Later shapes cover
        earlier ones.  This is the vector truth the rasters are rendered from.
        """
        self._check_key(date)
        bx = box(*bounds)
        w = self._world
        ground, _ = w.state(date)
        return [(g, MATERIALS[w.base_of(m)].key) for g, m in w.surface_shapes(ground, bx, acq=date)]

    def dem(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Terrain elevation (m) on the grid of EPSG:32650 coordinates ``ys`` × ``xs``."""
        return self._world.dem_grid(np.asarray(xs, float), np.asarray(ys, float))


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


def _shade(world: _World, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
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
    zen = math.radians(_SUN_ZENITH_DEG)
    az = math.radians(_SUN_AZIMUTH_DEG)
    cos_i = (math.cos(zen) - math.sin(zen) * (p * math.sin(az) + q * math.cos(az))) / np.sqrt(
        1 + p * p + q * q
    )
    return np.clip(0.15 + 0.85 * cos_i / math.cos(zen), 0.1, 1.6)


def _material_reflectance(world: _World, mat: int, date: str, xs: np.ndarray, ys: np.ndarray,
                          cache: dict[str, np.ndarray]) -> np.ndarray:
    """Textured surface reflectance of one material, shape (6, rows, cols)."""
    if mat >= _N_MAT:  # a trick surface: a material of MATERIALS with its own brightness at each date
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
        canopy = {"forest": _SP["forest_canopy"], "shrub_grass": _SP["shrub_canopy"],
                  "cropland": _SP["crop_canopy"]}[key]
        canopy = tuple(np.asarray(canopy) * _PHENOLOGY[key])
    if key == "forest":
        d = np.clip(0.74 + 0.30 * fld("forest", 160.0, 3, 11) + 0.08 * fld("forest_fine", 30.0, 2, 12),
                    0.42, 1.0)
        can = canopy if after else _SP["forest_canopy"]
        r = mix(d, can, _SP["forest_open"])
        sp = fld("species", 450.0, 2, 13)
        r = r * (1 + 0.06 * sp[None] * np.array([0, 0, 0, 1.0, 0.5, 0.3])[:, None, None])
    elif key == "shrub_grass":
        c = np.clip(0.72 + 0.28 * fld("shrub", 90.0, 3, 14), 0.45, 0.95)
        r = mix(c, canopy if after else _SP["shrub_canopy"], _SP["dry_grass"])
    elif key == "cropland":
        if "parcel" not in cache:
            xx, yy = np.meshgrid(xs, ys)
            cache["parcel"] = n.cells(xx, yy, (80.0, 40.0), 18.0, 17)
        v = np.clip(0.6 + 0.38 * cache["parcel"] + 0.05 * fld("soil", 70.0, 3, 15), 0.5, 1.0)
        r = mix(v, canopy if after else _SP["crop_canopy"], _SP["wet_soil"])
    elif key == "young_veg":
        c = np.clip(0.72 + 0.25 * fld("young", 40.0, 2, 18), 0.55, 0.9)
        r = mix(c, _SP["young_canopy"], _SP["red_soil"])
    elif key == "logged":
        c = np.clip(0.38 + 0.25 * fld("shrub", 90.0, 3, 14), 0.2, 0.55)
        r = mix(c, _SP["shrub_canopy"], _SP["red_soil"])
    elif key == "fallow":
        c = np.clip(0.25 + 0.15 * fld("soil", 70.0, 3, 15), 0.1, 0.4)
        r = mix(c, _SP["shrub_canopy"], _SP["red_soil"])
    elif key == "bare_soil":
        r = np.asarray(_SP["red_soil"])[:, None, None] * (1 + 0.10 * fld("soil", 70.0, 3, 15))[None]
    elif key == "quarry_rock":
        r = np.asarray(_SP["rock"])[:, None, None] * (1 + 0.15 * fld("rock", 45.0, 3, 16))[None]
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


def _surface_tile(world: _World, date: str, ti: int, tj: int) -> _TileSurface:
    """The ground of acquisition ``date`` over one render tile (see :class:`_TileSurface`)."""
    g = world.grid
    t = g.transform
    x0 = t.c + tj * _TILE * _RES_M
    y0 = t.f - ti * _TILE * _RES_M
    size = _TILE * _RES_M
    bx = box(x0, y0 - size, x0 + size, y0)
    ground, clouds = world.state(date)
    shapes = world.surface_shapes(ground, bx, tile=(ti, tj), acq=date)
    fine_tr = Affine(_RES_M / _SS, 0, x0, 0, -_RES_M / _SS, y0)
    nf = _TILE * _SS
    fine = _rasterize(shapes, (nf, nf), fine_tr, _MAT["forest"])
    overlays = [it for it in world._query("overlays", bx) if it[0].intersects(bx)] if clouds else []
    mats = sorted({_MAT["forest"], *(m for _, m in shapes)})
    if overlays:
        ov = _rasterize(overlays, (nf, nf), fine_tr, 0)
        fine = fine * np.uint8(_N_OVERLAY) + ov
        present = np.flatnonzero(np.bincount(fine.ravel(), minlength=256))
        fr = _block_fractions(fine, present, _SS)
        joint = {(k // _N_OVERLAY, k % _N_OVERLAY): v for k, v in fr.items()}
    else:
        fr = _block_fractions(fine, mats, _SS)
        joint = {(k, 0): v for k, v in fr.items()}
    del fine

    xs = x0 + (np.arange(_TILE) + 0.5) * _RES_M
    ys = y0 - (np.arange(_TILE) + 0.5) * _RES_M
    shade = _shade(world, xs, ys)
    cache: dict[str, np.ndarray] = {}
    refl: dict[int, np.ndarray] = {}
    surf = {o: np.zeros((6, _TILE, _TILE)) for o in range(_N_OVERLAY)}
    frac_o = {o: np.zeros((_TILE, _TILE)) for o in range(_N_OVERLAY)}
    veg = np.zeros((_TILE, _TILE))
    water = np.zeros((_TILE, _TILE))
    for (m, o), f in joint.items():
        b = world.base_of(m)
        if m not in refl:
            r = _material_reflectance(world, m, ground, xs, ys, cache)
            refl[m] = r if _WATER[b] else r * shade[None]
        surf[o] += f[None] * refl[m]
        frac_o[o] += f
        if _VEG[b]:
            veg += f
        elif _WATER[b]:
            water += f
    return _TileSurface(xs, ys, surf, frac_o, veg, water)


def _render_tile(world: _World, params: SceneParams, date: str, ti: int, tj: int) -> dict[str, np.ndarray]:
    """Sentinel-2 L2A DN of every raster over one 256 × 256 (10 m) tile and its 128 × 128 (20 m) twin."""
    ts = _surface_tile(world, date, ti, tj)
    xs, ys, surf, frac_o, veg, water = ts.xs, ts.ys, ts.surf, ts.frac_o, ts.veg, ts.water
    x0 = world.grid.transform.c + tj * _TILE * _RES_M
    y0 = world.grid.transform.f - ti * _TILE * _RES_M
    rho = surf[0] + surf[1] * _SHADOW_FACTOR[:, None, None]
    if any(frac_o[o].any() for o in (2, 3, 4)):
        n = world.noise
        texture = n.grid(xs, ys, 300.0, 3, 20)
        cloud = np.asarray(_SP["cloud"])[:, None, None] * (1 + 0.08 * texture)[None]
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
        rho = (_AFTER_GAIN[:, None, None] * rho + _AFTER_OFFSET[:, None, None]
               + _AFTER_HAZE[:, None, None] * haze[None])
    if world.tricks is not None:  # the radiometry of extra dates, and haze
        rho = world.tricks.surface_radiometry(world, date, rho, xs, ys)

    prod = world.products[date]
    dstream = 0 if date == "before" else 1 if date == "after" else world.tricks.noise_stream(date)
    rows10 = (ti * _TILE + np.arange(_TILE))[:, None]
    cols10 = (tj * _TILE + np.arange(_TILE))[None, :]
    nod10 = _nodata_mask(world, date, xs, ys)
    out: dict[str, np.ndarray] = {}
    sig = params.noise_sigma
    for bi, b in enumerate(BANDS):
        if b in BANDS_10M:
            val = rho[bi] + sig[bi] * world.noise.normal(100 + dstream * 16 + bi, rows10, cols10)
            out[b] = _to_dn(val, prod, nod10)
    # 20 m: block means of the noise-free 10 m signal, then 20 m noise.
    h = _TILE // 2
    xs20 = x0 + (np.arange(h) + 0.5) * 2 * _RES_M
    ys20 = y0 - (np.arange(h) + 0.5) * 2 * _RES_M
    rows20 = (ti * h + np.arange(h))[:, None]
    cols20 = (tj * h + np.arange(h))[None, :]
    nod20 = _nodata_mask(world, date, xs20, ys20)

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


def _nodata_mask(world: _World, date: str, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    edge = world.nodata.get(date)
    if edge is None:
        return np.zeros((ys.size, xs.size), bool)
    x_top, slope, top = edge
    return xs[None, :] >= (x_top - slope * (top - ys))[:, None]


# ---------------------------------------------------------------------------
# Scene construction
# ---------------------------------------------------------------------------


def _scene_grid(shape: tuple[int, int], center_lonlat: tuple[float, float]) -> Grid:
    rows, cols = (int(v) for v in shape)
    if rows < 8 or cols < 8:
        raise ConfigError(f"scene shape must be at least 8 × 8 pixels, got {shape}")
    x, y = transformer("EPSG:4326", _CRS).transform(*center_lonlat)
    ox, oy = TILE_ORIGIN_XY
    left = ox + round((x - cols * _RES_M / 2 - ox) / _SNAP_M) * _SNAP_M
    top = oy + round((y + rows * _RES_M / 2 - oy) / _SNAP_M) * _SNAP_M
    return Grid((rows, cols), Affine(_RES_M, 0, left, 0, -_RES_M, top), _CRS)


def _as_seed(seed: int | np.random.Generator) -> int:
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63 - 1))
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return int(seed)
    raise ConfigError(f"seed must be an int or a numpy Generator, got {type(seed).__name__}")


def make_scene(
    *,
    shape: tuple[int, int] = (400, 500),
    seed: int | np.random.Generator = 20240912,
    center_lonlat: tuple[float, float] = (119.95, 30.22),
    n_mines: int | None = None,
    n_reserves: int | None = None,
    n_encroachments: int | None = None,
    n_decoys: int | None = None,
    n_clouds: int | None = None,
    nodata_edge: bool = True,
    noise_sigma: Sequence[float] | None = None,
    dates: Mapping[str, _dt.date | str] | None = None,
    history: Sequence[_dt.date | str] = (),
    seasonal_cropland: float = 0.0,
    brightness_changes: int = 0,
    haze: float | Any | Sequence[Any] | None = None,
    sensors: Mapping[str, str | Any] | None = None,
) -> SyntheticScene:
    """Generate a two-date Sentinel-2 L2A scene near Hangzhou with known truth.

    The keywords from ``dates`` on teach the scene the world's tricks (see
    :mod:`ecopatch._synthetic_tricks`); left at their defaults the scene is
    the plain one, byte for byte.

    Parameters
    ----------
    shape : tuple of int
        ``(rows, cols)`` of the 10 m grid; default (400, 500) = 4 × 5 km.
        Any size works; a 10980 × 10980 tile is rendered lazily (only the
        vector truth is built here).
    seed : int or numpy.random.Generator
        Everything derives from it; the same seed gives byte-identical arrays.
    center_lonlat : tuple of float
        Scene centre (longitude, latitude), degrees; the grid (EPSG:32650, 10 m)
        snaps to the 60 m lattice of MGRS tile T50RQU.
    n_mines, n_reserves, n_encroachments, n_decoys, n_clouds : int, optional
        Object counts.  Defaults scale with the area: per 20 km², 8 mines,
        2 reserves, 14 encroachments (≥ 400 m²), 4 decoys (100-250 m²) and
        1 cloud.
    nodata_edge : bool
        Give the before date a slanted strip of nodata (DN 0) at its east edge.
    noise_sigma : sequence of 6 float, optional
        Sensor noise per band B02 … B12, reflectance units (default
        0.004-0.006).
    dates : mapping, optional
        Other acquisition dates for ``"before"`` and/or ``"after"``
        (``datetime.date`` or ``"YYYY-MM-DD"``; default 2021-09-18 and
        2024-09-12), e.g. ``{"after": "2024-12-10"}`` for a winter after date
        when the seasonal fields are ploughed.  Product names, processing
        baselines and offsets follow the dates.
    history : sequence of dates
        Extra acquisitions of the same ground (Sentinel-2 L2A unless
        ``sensors`` says otherwise), keyed by their ISO date: before the
        after date they show the before ground, from it on the after ground;
        each has its own radiometry and noise, no clouds.
    seasonal_cropland : float
        Share (0-1) of the cropland parcels (80 × 40 m) that follow a crop
        calendar (single rice, or rice and winter rape): green, flooded for
        transplanting, harvested stubble or ploughed bare soil depending on
        the day of year (each field shifted by up to ±12 days).  Recorded in
        :attr:`SyntheticScene.pseudo_changes` as ``seasonal_cropland``.
    brightness_changes : int
        Number of existing bare or built surfaces (quarry faces, clay pits,
        construction sites, steel or concrete roofs; about 60 % inside the
        reserves) that are there at both dates with the same cover but a
        different brightness.  Recorded as ``brightness_change``.
    haze : float or Haze or sequence of Haze, optional
        Extra haze: a path reflectance added to the surface, strongest in
        blue (``float``: that much in B02 on the after date, uniform).
    sensors : mapping, optional
        Product each acquisition is written as, by key: a sensor name
        ("sentinel2_l2a", "sentinel2_l1c", "landsat_oli_c2l2", "gf1_wfv") or
        a :class:`~ecopatch._synthetic_tricks.Rendering` (sensor and CRS).
        Rendered by :func:`ecopatch.synthetic.render_product`, written by
        :func:`ecopatch.datasets.write_scene`.

    Returns
    -------
    SyntheticScene

    Raises
    ------
    ConfigError
        If a parameter is out of range or the objects do not fit the scene.
    """
    seed_i = _as_seed(seed)
    grid = _scene_grid(shape, center_lonlat)
    rows, cols = grid.shape
    area_km2 = rows * cols * _RES_M * _RES_M / 1e6
    scale = area_km2 / 20.0

    def count(v: int | None, per20: float, lo: int, name: str) -> int:
        if v is None:
            return max(lo, int(round(per20 * scale)))
        if int(v) < 0:
            raise ConfigError(f"{name} must be ≥ 0, got {v}")
        return int(v)

    n_m = count(n_mines, 8, 1, "n_mines")
    n_r = count(n_reserves, 2, 1, "n_reserves")
    n_e = count(n_encroachments, 14, 0, "n_encroachments")
    n_d = count(n_decoys, 4, 0, "n_decoys")
    n_c = count(n_clouds, 1, 1, "n_clouds")
    sigma = tuple(float(s) for s in (noise_sigma if noise_sigma is not None else _NOISE_SIGMA))
    if len(sigma) != 6 or any(s < 0 for s in sigma):
        raise ConfigError(f"noise_sigma needs 6 non-negative values (B02 … B12), got {sigma}")

    world = _World(grid, seed_i)
    rng = np.random.default_rng(seed_i)
    lft, b, r, t = grid.bounds
    # Valley level: the 28th percentile of the raw terrain over the scene.
    xs = np.linspace(lft, r, 60)
    ys = np.linspace(t, b, 60)
    world.valley_level = float(np.percentile(world.dem_raw_grid(xs, ys), 28))
    if nodata_edge:
        slope = 0.02
        world.nodata["before"] = (r - 40.0, slope, t)

    params = SceneParams(seed_i, (rows, cols), tuple(center_lonlat), n_m, n_r, n_e, n_d, n_c,
                         world.valley_level, sigma, bool(nodata_edge))
    trick_opts = dict(dates=dates, history=history, seasonal_cropland=seasonal_cropland,
                      brightness_changes=brightness_changes, haze=haze, sensors=sensors)
    from ecopatch import _synthetic_tricks

    wanted = _synthetic_tricks.wanted(trick_opts)  # checked before the (slow) build
    builder = _Builder(world, rng, params)
    builder.build()
    if wanted is not None:
        # after everything else is placed, from its own random stream: the plain scene is untouched
        world.tricks = _synthetic_tricks.build(world, builder, wanted)
    world.freeze()
    return builder.result()


class _Builder:
    """Places reserves, mines, clouds, landscape objects and encroachments."""

    def __init__(self, world: _World, rng: np.random.Generator, params: SceneParams) -> None:
        self.w = world
        self.rng = rng
        self.p = params
        lft, b, r, t = world.bounds
        self.inner = box(lft, b, r, t)
        self.min_dim = min(r - lft, t - b)
        nod = world.nodata.get("before")
        self.keep_out = Polygon()
        if nod is not None:
            x_top, slope, top = nod
            self.keep_out = Polygon([(x_top, top), (r, top), (r, b), (x_top - slope * (top - b), b)])
        self.occ_mines = _Occupancy()
        self.occ_cores = _Occupancy()
        self.occ_changes = _Occupancy()
        self.occ_reserves = _Occupancy(cell=2000.0)
        self.reserves: list[dict[str, Any]] = []
        self.clouds: list[dict[str, Any]] = []
        self.drone_mine: str | None = None

    # -- helpers -------------------------------------------------------
    def _inside(self, geom: Any, margin: float) -> bool:
        lft, b, r, t = self.w.bounds
        x0, y0, x1, y1 = geom.bounds
        if x0 < lft + margin or y0 < b + margin or x1 > r - margin or y1 > t - margin:
            return False
        return self.keep_out.is_empty or geom.distance(self.keep_out) > 100.0

    def _random_point(self, region: Any | None = None, margin: float = 0.0) -> tuple[float, float]:
        lft, b, r, t = region.bounds if region is not None else self.w.bounds
        for _ in range(1000):
            x = self.rng.uniform(lft + margin, r - margin) if r - lft > 2 * margin else (lft + r) / 2
            y = self.rng.uniform(b + margin, t - margin) if t - b > 2 * margin else (b + t) / 2
            if region is None or region.contains(Point(x, y)):
                return (x, y)
        c = region.representative_point()
        return (c.x, c.y)

    def _hav(self, x: Any, y: Any) -> np.ndarray:
        return self.w.height_above_valley(x, y)

    def _terrain_point(self, margin: float, lo: float = -np.inf, hi: float = np.inf,
                       tries: int = 20) -> tuple[float, float] | None:
        """A uniform random point whose height above the valley floor is in [lo, hi] m."""
        lft, b, r, t = self.w.bounds
        if r - lft <= 2 * margin or t - b <= 2 * margin:
            return None
        for _ in range(tries):
            x = self.rng.uniform(lft + margin, r - margin, 64)
            y = self.rng.uniform(b + margin, t - margin, 64)
            h = self._hav(x, y)
            ok = np.flatnonzero((h >= lo) & (h <= hi))
            if ok.size:
                return (float(x[ok[0]]), float(y[ok[0]]))
        return None

    # -- build ---------------------------------------------------------
    def build(self) -> None:
        self._place_reserves()
        self._place_mines()
        self._place_clouds()
        self._place_landscape_objects()
        self._place_changes()

    # -- reserves --------------------------------------------------------
    def _place_reserves(self) -> None:
        lft, b, r, t = self.w.bounds
        w, h = r - lft, t - b
        n = self.p.n_reserves
        base = min(w, h)
        placed = _Occupancy(cell=2000.0)
        for k in range(n):
            kind, level, style = _RESERVE_TYPES[k % len(_RESERVE_TYPES)]
            for attempt in range(400):
                if n <= 3:
                    rad = base * self.rng.uniform(0.17, 0.21) * (1.0 if k == 0 else 0.85)
                else:
                    rad = float(np.exp(self.rng.uniform(np.log(500), np.log(1800))))
                rad = min(rad, 0.3 * base)
                margin = rad * 1.3 + 150
                if w <= 2 * margin or h <= 2 * margin:
                    rad *= 0.7
                    margin = rad * 1.3 + 100
                    if w <= 2 * margin or h <= 2 * margin:
                        continue
                pt = self._terrain_point(margin, lo=30.0 if attempt < 300 else -np.inf)
                if pt is None:
                    continue
                cx, cy = pt
                outer = _blob(self.rng, cx, cy, rad, roughness=0.25, elong=self.rng.uniform(1.0, 1.35),
                              angle=self.rng.uniform(0, math.pi), vertex_m=15.0)
                if not self._inside(outer, 100.0):
                    continue
                if not placed.clear_of(outer, 300.0):
                    continue
                placed.add(outer)
                self.occ_reserves.add(outer)
                name_root = _RESERVE_NAMES[k % len(_RESERVE_NAMES)]
                suffix = "" if k < len(_RESERVE_NAMES) else f"{k // len(_RESERVE_NAMES) + 1}号"
                name = f"{name_root}{suffix}{level}{kind}"
                zones = self._zones(outer, cx, cy, rad, style)
                if any(z.is_empty or z.area < 1.0 for _n, z in zones):
                    continue
                halo = outer.buffer(100.0)
                shapely.prepare(halo)
                res = {"id": f"BHD-{k + 1:03d}", "name": name, "kind": kind, "level": level,
                       "style": style, "outer": outer, "zones": zones, "halo": halo,
                       "halo_bounds": halo.bounds}
                self.reserves.append(res)
                self.occ_cores.add(zones[0][1])
                if kind == "湿地公园":
                    self._wetland_lake(res)
                break
            else:
                raise ConfigError(
                    f"could not fit {n} reserves into a {w / 1000:.1f} × {h / 1000:.1f} km scene; "
                    "ask for fewer (n_reserves=) or a bigger shape"
                )

    def _zones(self, outer: Any, cx: float, cy: float, rad: float, style: str) -> list[tuple[str, Any]]:
        spec = _ZONES_OLD if style == "old" else _ZONES_NEW
        shapes: list[Any] = []
        prev = outer
        for _name, k in reversed(spec[:-1]):
            inner = _blob(self.rng, cx + self.rng.normal(0, 0.05 * rad), cy + self.rng.normal(0, 0.05 * rad),
                          rad * k, roughness=0.3, vertex_m=12.0, angle=self.rng.uniform(0, math.pi))
            inner = _largest(inner.intersection(prev.buffer(-min(40.0, 0.1 * rad))))
            shapes.append(inner)
            prev = inner
        shapes = shapes[::-1]  # innermost first
        nested = [*shapes, outer]
        zones = []
        for i, (zname, _k) in enumerate(spec):
            g = nested[i] if i == 0 else _polys(nested[i].difference(nested[i - 1]))
            zones.append((zname, g))
        return zones

    def _wetland_lake(self, res: dict[str, Any]) -> None:
        core = res["zones"][0][1]
        c = core.representative_point()
        rad = math.sqrt(core.area / math.pi) * 0.45
        lake = _blob(self.rng, c.x, c.y, rad, roughness=0.3, vertex_m=8.0)
        lake = _largest(lake.intersection(core.buffer(-30.0)))
        if not lake.is_empty:
            self.w.objects.append((lake, _MAT["clear_water"]))

    # -- mines -----------------------------------------------------------
    def _place_mines(self) -> None:
        n = self.p.n_mines
        rng = self.rng
        areas_ha = np.exp(np.linspace(np.log(0.5), np.log(8.0), n)) if n > 1 else np.array([3.0])
        areas_ha = areas_ha * np.exp(rng.normal(0, 0.05, n))
        max_ha = min(8.0, math.pi * (0.1 * self.min_dim) ** 2 / 1e4)
        areas_ha = np.clip(areas_ha, min(0.5, max_ha), max_ha)
        n_zero = max(1, int(round(0.08 * n))) if n >= 3 else 0
        n_done = max(1, int(round(0.08 * n))) if n >= 3 else 0
        n_part = n - n_zero - n_done
        partial = list(np.linspace(0.2, 0.8, n_part) + rng.uniform(-0.03, 0.03, n_part)) if n_part else []
        rates = [0.0] * n_zero + [float(rng.uniform(0.975, 0.995)) for _ in range(n_done)]
        rates = [float(np.clip(v, 0.2, 0.8)) for v in partial] + rates  # partial first
        # first mine (next to a reserve, under the cloud) gets a middling rate
        order = list(range(n))
        mid = int(np.argmin([abs(rt - 0.5) for rt in rates]))
        order.remove(mid)
        rng.shuffle(order)
        order = [mid, *order]
        rates = [rates[i] for i in order]
        area_order = list(rng.permutation(n))
        # the drone mine: the partial mine whose area is closest to 2.5 ha
        directions = list(_DIRECTION_KEYS) + list(
            rng.choice(_DIRECTION_KEYS, size=max(0, n - 5), p=_DIRECTION_WEIGHTS)
        )
        directions = directions[:n]
        rng.shuffle(directions)
        n_invalid = max(1, n // 100)
        n_multi = max(1, n // 20)
        specials = rng.permutation(np.arange(1, n)) if n > 1 else np.array([0])
        invalid_ids = set(int(i) for i in specials[:n_invalid])
        multi_ids = set(int(i) for i in specials[n_invalid:n_invalid + n_multi])
        for i in range(n):
            area = float(areas_ha[area_order[i]]) * 1e4
            spec = {
                "rate": rates[i],
                "area_m2": area,
                "direction": str(directions[i]),
                "multi": i in multi_ids,
                "invalid": i in invalid_ids and i not in multi_ids,
                "hole": i % 4 == 1 and i not in invalid_ids,
                "veg_inner": i % 4 == 2,
                "pond": i % 3 == 0,
                "buildings": i % 2 == 0,
            }
            self._place_mine(i, spec, near_reserve=(i == 0 and bool(self.reserves)))
        # the drone mine: partly restored, 1.5-5 ha, with as many kinds of ground as possible
        cands = [m for m in self.w.mines[1:] if 0.3 <= m.target_rate <= 0.7] or self.w.mines

        def score(m: _Mine) -> tuple[int, float]:
            kinds = len({mt for _g, mt in m.parts["after"]} | {mt for _g, mt in m.parts["before"]})
            a = m.geom.area
            return (kinds if 1.5e4 <= a <= 5e4 else 0, -abs(math.log(a / 2.5e4)))

        self.drone_mine = max(cands, key=score).mine_id

    def _place_mine(self, i: int, spec: dict[str, Any], near_reserve: bool) -> None:
        rng = self.rng
        area = spec["area_m2"]
        rad = math.sqrt(area / math.pi)
        geom = None
        for attempt in range(600):
            if near_reserve and attempt < 400:
                res = self.reserves[0]["outer"]
                ring = res.exterior
                q = ring.interpolate(rng.uniform(0, ring.length))
                c = res.centroid
                d = np.array([q.x - c.x, q.y - c.y])
                d /= max(np.hypot(*d), 1e-9)
                gap = rng.uniform(60.0, 140.0)
                cx, cy = q.x + d[0] * (rad * 1.3 + gap), q.y + d[1] * (rad * 1.3 + gap)
            else:
                pt = self._terrain_point(min(rad * 2 + 200, 0.3 * self.min_dim),
                                         lo=20.0 if attempt < 450 else -np.inf)
                if pt is None:
                    continue
                cx, cy = pt
            if near_reserve and attempt < 400 and self._hav(cx, cy) < 20:
                continue
            elong = rng.uniform(1.0, 1.6)
            ang = rng.uniform(0, math.pi)
            if spec["multi"]:
                r1, r2 = rad * math.sqrt(0.6), rad * math.sqrt(0.4)
                a = _blob(rng, cx, cy, r1, roughness=0.28, elong=elong, angle=ang)
                off = r1 + r2 + rng.uniform(40, 80)
                th = rng.uniform(0, 2 * math.pi)
                b2 = _blob(rng, cx + off * math.cos(th), cy + off * math.sin(th), r2, roughness=0.28)
                if a.distance(b2) < 25.0:
                    continue
                g = MultiPolygon([a, b2])
            else:
                g = _blob(rng, cx, cy, rad, roughness=0.28, elong=elong, angle=ang)
            g = _scale_to_ground_area(g, area)
            if not self._inside(g, min(150.0, 0.08 * self.min_dim)):
                continue
            if not self.occ_mines.clear_of(g, 100.0):
                continue
            if not self.occ_reserves.clear_of(g, 50.0):
                continue
            geom = g
            break
        if geom is None:
            raise ConfigError(
                f"could not fit mine {i + 1} of {self.p.n_mines} ({area / 1e4:.1f} ha) in the scene; "
                "ask for fewer mines (n_mines=) or a bigger shape"
            )
        raw = geom
        has_hole = False
        if spec["hole"] and geom.geom_type == "Polygon":
            c = geom.representative_point()
            isl = _blob(rng, c.x, c.y, rad * rng.uniform(0.18, 0.28), roughness=0.3, vertex_m=5.0)
            isl = _largest(isl.intersection(geom.buffer(-20.0)))
            if not isl.is_empty and isl.area > 200:
                geom = Polygon(geom.exterior.coords, [isl.exterior.coords])
                raw = geom
                has_hole = True
        invalid = False
        if spec["invalid"] and geom.geom_type == "Polygon" and not has_hole:
            raw = _bowtie(geom, rng)
            if not raw.is_valid:
                geom = _polys(shapely.make_valid(raw))
                invalid = True
            else:
                raw = geom
        idx = len(self.w.mines) + 1
        place = _PLACES[(idx - 1) % len(_PLACES)]
        kind = _MINE_KINDS[int(rng.integers(0, len(_MINE_KINDS)))]
        suffix = "" if idx <= len(_PLACES) else f"{(idx - 1) // len(_PLACES) + 1}号"
        mine = _Mine(
            mine_id=f"YH-KS-{idx:03d}",
            name=f"余杭区{place}{suffix}{kind}",
            direction=spec["direction"],
            unit=_unit(_TOWNS[int(rng.integers(0, len(_TOWNS)))]),
            plan_year=int(rng.integers(2022, 2026)),
            geom=geom,
            raw=raw,
            target_rate=float(spec["rate"]),
            has_hole=has_hole,
            invalid_in_source=invalid,
        )
        self._mine_parts(mine, spec)
        self.w.mines.append(mine)
        self.occ_mines.add(geom)
        self._access_track(geom)

    def _mine_parts(self, mine: _Mine, spec: dict[str, Any]) -> None:
        rng = self.rng
        geom = mine.geom
        c = geom.centroid
        ext = math.sqrt(geom.envelope.area) * 1.2 + 50
        # uphill direction from the terrain gradient at the centroid
        e = 25.0
        hh = self._hav(c.x + np.array([e, -e, 0, 0]), c.y + np.array([0, 0, e, -e]))
        hx, hy = float(hh[0] - hh[1]), float(hh[2] - hh[3])
        nrm = math.hypot(hx, hy)
        up = (hx / nrm, hy / nrm) if nrm > 1e-6 else (0.0, 1.0)
        remaining = geom
        before: list[tuple[Any, int]] = []
        intact: list[tuple[Any, int]] = []  # not damaged: vegetation, water
        area = geom.area
        core = geom.buffer(-12.0)
        if spec["veg_inner"] and not core.is_empty:
            p = core.representative_point()
            g = _blob(rng, p.x, p.y, math.sqrt(area * rng.uniform(0.05, 0.10) / math.pi), roughness=0.3,
                      vertex_m=5.0)
            g = _polys(g.intersection(core))
            if not g.is_empty:
                mat = _MAT["forest"] if rng.uniform() < 0.5 else _MAT["shrub_grass"]
                intact.append((g, mat))
                remaining = _polys(remaining.difference(g))
        low = _split_by_fraction(remaining, (c.x, c.y), up, 0.45, rng, ext)  # downhill part
        if spec["pond"]:
            inner_low = _polys(low.buffer(-10.0))
            if not inner_low.is_empty:
                p = inner_low.representative_point()
                g = _blob(rng, p.x, p.y, math.sqrt(area * rng.uniform(0.03, 0.07) / math.pi),
                          roughness=0.25, vertex_m=4.0)
                g = _polys(g.intersection(inner_low))
                if not g.is_empty:
                    intact.append((g, _MAT["turbid_water"]))
                    remaining = _polys(remaining.difference(g))
                    low = _polys(low.difference(g))
        buildings: list[tuple[Any, int]] = []
        if spec["buildings"]:
            slots = _polys(low.buffer(-8.0))
            for _ in range(int(rng.integers(1, 4))):
                if slots.is_empty:
                    break
                p = self._random_point(slots)
                bw, bh = rng.uniform(12, 30), rng.uniform(10, 22)
                q = _quad(rng, p[0], p[1], bw, bh, rng.uniform(0, math.pi), jitter=0.02)
                q = _polys(q.intersection(slots))
                if q.is_empty or q.area < 60:
                    continue
                mat = _MAT["blue_roof"] if rng.uniform() < 0.5 else _MAT["concrete"]
                buildings.append((q, mat))
                slots = _polys(slots.difference(q.buffer(6.0)))
                remaining = _polys(remaining.difference(q))
                low = _polys(low.difference(q))
        rock = _polys(remaining.difference(low))
        soil = _polys(low)
        damaged = [(rock, _MAT["quarry_rock"]), (soil, _MAT["bare_soil"]), *buildings]
        damaged = [(g, m) for g, m in damaged if not g.is_empty]
        before = [*intact, *damaged]
        # restoration: from the downhill side up to the target share of the damaged ground
        d_union = shapely.union_all([g for g, _ in damaged])
        restored = _split_by_fraction(d_union, (c.x, c.y), up, mine.target_rate, rng, ext) \
            if mine.target_rate > 0 else Polygon()
        rest_mat = _MAT[_DIRECTION_MATERIAL[mine.direction]]
        after = list(intact)
        for g, m in damaged:
            left = _polys(g.difference(restored)) if not restored.is_empty else g
            if not left.is_empty:
                after.append((left, m))
        if not restored.is_empty:
            after.append((restored, rest_mat))
        mine.parts = {"before": before, "after": after}
        mine.restored = restored

    def _access_track(self, geom: Any) -> None:
        rng = self.rng
        c = geom.centroid
        pts = [(c.x, c.y)]
        x, y = c.x, c.y
        heading = rng.uniform(0, 2 * math.pi)
        # the terrain around the mine on a 20 m lattice, sampled bilinearly by the walk
        step, half = 20.0, 600.0
        gx = np.arange(x - half, x + half + step / 2, step)
        gy = np.arange(y + half, y - half - step / 2, -step)
        dem = self.w.dem_raw_grid(gx, gy)
        turn = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
        for _ in range(int(rng.integers(6, 14))):
            cands = heading + turn
            px, py = x + 40 * np.cos(cands), y + 40 * np.sin(cands)
            ci = np.clip((px - gx[0]) / step, 0, gx.size - 1.001)
            ri = np.clip((gy[0] - py) / step, 0, gy.size - 1.001)
            c0, r0 = ci.astype(int), ri.astype(int)
            fc, fr = ci - c0, ri - r0
            hs = (dem[r0, c0] * (1 - fc) * (1 - fr) + dem[r0, c0 + 1] * fc * (1 - fr)
                  + dem[r0 + 1, c0] * (1 - fc) * fr + dem[r0 + 1, c0 + 1] * fc * fr)
            heading = float(cands[int(np.argmin(hs))] if rng.uniform() < 0.8 else cands[int(rng.integers(0, 5))])
            x, y = x + 40 * math.cos(heading), y + 40 * math.sin(heading)
            pts.append((x, y))
        line = LineString(pts).difference(geom.buffer(1.0))
        if line.is_empty:
            return
        band = _polys(line.buffer(2.5, cap_style="flat"))
        cores = [rv["zones"][0][1] for rv in self.reserves if rv["zones"][0][1].intersects(band)]
        if cores:
            band = _polys(band.difference(shapely.union_all(cores)))
        if not band.is_empty and self.occ_mines.clear_of(band, 20.0):
            self.w.lines.append((band, _MAT["concrete"]))

    # -- clouds ----------------------------------------------------------
    def _place_clouds(self) -> None:
        rng = self.rng
        lft, b, r, t = self.w.bounds
        cores = []
        for k in range(self.p.n_clouds):
            if k == 0 and self.reserves and self.w.mines:
                core = self._first_cloud()
            else:
                rad = float(np.exp(rng.uniform(np.log(300), np.log(900))))
                cx, cy = self._random_point(margin=0)
                core = _blob(rng, cx, cy, rad, roughness=0.35, harmonics=9, vertex_m=20.0,
                             angle=rng.uniform(0, math.pi), elong=rng.uniform(1.0, 1.4))
            cores.append(core)
        height = _CLOUD_HEIGHT_M
        az = math.radians(_SUN_AZIMUTH_DEG + 180.0)
        off = height * math.tan(math.radians(_SUN_ZENITH_DEG))
        dx, dy = off * math.sin(az), off * math.cos(az)
        core_u = shapely.union_all(cores)
        high = _polys(core_u.buffer(-80.0))
        medium = _polys(core_u.difference(high))
        cirrus = _polys(core_u.buffer(120.0).difference(core_u))
        shadow = _polys(affinity.translate(core_u, dx, dy).difference(core_u.buffer(120.0)))
        scene_box = box(lft, b, r, t)
        self.clouds = [
            {"kind": k, "scl_class": s, "geom": _polys(g.intersection(scene_box.buffer(500)))}
            for k, s, g in (("cloud_high", 9, high), ("cloud_medium", 8, medium), ("cirrus", 10, cirrus),
                            ("shadow", 3, shadow))
        ]
        codes = {"shadow": 1, "cirrus": 2, "cloud_medium": 3, "cloud_high": 4}
        for c in self.clouds:
            if not c["geom"].is_empty:
                for part in shapely.get_parts(c["geom"]):
                    self.w.overlays.append((part, codes[c["kind"]]))
        self.cloud_union = shapely.union_all([c["geom"] for c in self.clouds])
        shapely.prepare(self.cloud_union)
        parts = list(shapely.get_parts(self.cloud_union))
        self.cloud_tree = shapely.STRtree(parts) if parts else None
        self.cloud_high = high

    def _first_cloud(self) -> Any:
        """A cloud over part of the first reserve and part (20-80 %) of the first mine."""
        from shapely.ops import nearest_points

        rng = self.rng
        mine = self.w.mines[0].geom
        res = self.reserves[0]["outer"]
        p = mine.centroid
        q = nearest_points(res.exterior, p)[0]
        d = np.array([q.x - p.x, q.y - p.y])
        d /= max(float(np.hypot(*d)), 1e-9)
        rad = 380.0
        shape_seed = int(rng.integers(0, 2**63 - 1))
        best, best_err = None, np.inf
        for off in np.linspace(rad - 100.0, rad + 260.0, 19):  # same shape, sliding along p -> q
            core = _blob(np.random.default_rng(shape_seed), p.x + d[0] * off, p.y + d[1] * off, rad,
                         roughness=0.35, harmonics=9, vertex_m=20.0, angle=0.3, elong=1.2)
            cover = _polys(core.buffer(120.0)).intersection(mine).area / mine.area
            err = abs(cover - 0.5)
            if err < best_err:
                best, best_err = core, err
        return best

    # -- landscape objects -------------------------------------------------
    def _place_landscape_objects(self) -> None:
        rng = self.rng
        lft, b, r, t = self.w.bounds
        area_km2 = (r - lft) * (t - b) / 1e6
        scale = area_km2 / 20.0
        cores = [rv["zones"][0][1] for rv in self.reserves]
        avoid_occ = _Occupancy()
        for g in cores:
            avoid_occ.add(g)
        for m in self.w.mines:
            avoid_occ.add(m.geom.buffer(40.0))
        # roads that follow the valleys
        n_roads = max(2, int(round(2.5 * scale)))
        max_steps = int(min(1.5 * max(r - lft, t - b), 12000.0) / 50.0)
        big = max(r - lft, t - b) > 8000.0
        starts = []
        for _ in range(n_roads):
            side = int(rng.integers(0, 4))
            u = rng.uniform(0.1, 0.9)
            x, y, heading = {
                0: (lft + u * (r - lft), t, -math.pi / 2),
                1: (r, b + u * (t - b), math.pi),
                2: (lft + u * (r - lft), b, math.pi / 2),
                3: (lft, b + u * (t - b), 0.0),
            }[side]
            if big and rng.uniform() < 0.6:
                x, y = self._random_point(margin=500)
                heading = rng.uniform(0, 2 * math.pi)
            starts.append((x, y, heading + rng.uniform(-0.4, 0.4)))
        # all roads walk together, each step preferring the lowest ground ahead
        xr = np.array([s_[0] for s_ in starts])
        yr = np.array([s_[1] for s_ in starts])
        hr = np.array([s_[2] for s_ in starts])
        paths: list[list[tuple[float, float]]] = [[(float(a), float(b_))] for a, b_ in zip(xr, yr)]
        alive = np.ones(n_roads, bool)
        turn = np.array([-0.35, -0.17, 0.0, 0.17, 0.35])
        prior = np.array([0.6, 1, 1.6, 1, 0.6])
        for _step in range(max_steps):
            idx = np.flatnonzero(alive)
            if idx.size == 0:
                break
            cands = hr[idx, None] + turn[None, :]
            hs = self._hav(xr[idx, None] + 120 * np.cos(cands), yr[idx, None] + 120 * np.sin(cands))
            pref = np.exp(-np.clip(hs, -50, 200) / 25.0) * prior
            cum = np.cumsum(pref / pref.sum(axis=1, keepdims=True), axis=1)
            pick = np.minimum((cum < rng.uniform(size=(idx.size, 1))).sum(axis=1), 4)
            hr[idx] = cands[np.arange(idx.size), pick]
            xr[idx] += 50 * np.cos(hr[idx])
            yr[idx] += 50 * np.sin(hr[idx])
            for k in idx:
                paths[k].append((float(xr[k]), float(yr[k])))
                if not (lft - 100 < xr[k] < r + 100 and b - 100 < yr[k] < t + 100):
                    alive[k] = False
        for pts in paths:
            for k in range(0, len(pts) - 1, 20):
                seg = LineString(pts[k:k + 21])
                if seg.length <= 0:
                    continue
                piece = seg.buffer(3.5)
                hits = [c for c in cores if c.intersects(piece)]
                if hits:
                    piece = _polys(piece.difference(shapely.union_all(hits)))
                if not piece.is_empty:
                    self.w.lines.append((piece, _MAT["asphalt"]))
        road_geoms = [g for g, m in self.w.lines if m == _MAT["asphalt"]]
        road_tree = shapely.STRtree(road_geoms) if road_geoms else None
        placed = _Occupancy()

        def hits_road(g: Any) -> bool:
            return road_tree is not None and road_tree.query(g, predicate="intersects").size > 0

        # a pool of valley-floor points (vectorised terrain test), with their distance to a road
        n_need = max(4, int(round(9 * scale))) * 3
        pool_x: list[float] = []
        pool_y: list[float] = []
        for _ in range(40):
            if len(pool_x) >= n_need:
                break
            m = 250.0 if min(r - lft, t - b) > 1000 else 0.1 * min(r - lft, t - b)
            xx = rng.uniform(lft + m, r - m, 4096)
            yy = rng.uniform(b + m, t - m, 4096)
            ok = self._hav(xx, yy) < -8.0
            pool_x.extend(xx[ok][: n_need - len(pool_x)])
            pool_y.extend(yy[ok][: n_need - len(pool_y)])
        near = np.zeros(len(pool_x), bool)
        if road_tree is not None and pool_x:
            pts = shapely.points(np.array(pool_x), np.array(pool_y))
            hit = road_tree.query(pts, predicate="dwithin", distance=150.0)
            near[np.unique(hit[0])] = True
        pool = {True: [(x, y) for x, y, n_ in zip(pool_x, pool_y, near) if n_],
                False: [(x, y) for x, y, n_ in zip(pool_x, pool_y, near) if not n_]}

        def valley_point(near_road: bool) -> tuple[float, float] | None:
            src = pool[near_road] if (pool[near_road] or not near_road) else pool[False]
            if not src:
                src = pool[True]
            if not src:
                return None
            return src.pop()

        # villages
        for _ in range(max(2, int(round(4 * scale)))):
            p = valley_point(True)
            if p is None:
                continue
            ang = rng.uniform(0, math.pi)
            rad = rng.uniform(70, 150)
            for _b in range(int(rng.integers(12, 40))):
                bx_, by_ = p[0] + rng.normal(0, rad / 2), p[1] + rng.normal(0, rad / 2)
                q = _quad(rng, bx_, by_, rng.uniform(9, 20), rng.uniform(8, 14), ang + rng.normal(0, 0.08),
                          jitter=0.01)
                if not self._inside(q, 50) or not avoid_occ.clear_of(q, 10) or not placed.clear_of(q, 3.0):
                    continue
                if hits_road(q):
                    continue
                mat = _MAT["blue_roof"] if rng.uniform() < 0.18 else _MAT["concrete"]
                self.w.objects.append((q, mat))
                placed.add(q)
        # factories with big steel-sheet roofs and a concrete yard
        for _ in range(max(1, int(round(1.5 * scale)))):
            p = valley_point(True)
            if p is None:
                continue
            ang = rng.uniform(0, math.pi)
            yard = _quad(rng, p[0], p[1], rng.uniform(60, 110), rng.uniform(40, 70), ang, jitter=0.01)
            if not self._inside(yard, 50) or not avoid_occ.clear_of(yard, 15) or not placed.clear_of(yard, 5):
                continue
            if hits_road(yard):
                continue
            self.w.objects.append((yard, _MAT["concrete"]))
            c = yard.centroid
            roof = _quad(rng, c.x, c.y, rng.uniform(30, 50), rng.uniform(20, 32), ang, jitter=0.005)
            roof = _polys(roof.intersection(yard.buffer(-4)))
            if not roof.is_empty:
                self.w.objects.append((roof, _MAT["blue_roof"]))
            placed.add(yard)
        # fish ponds (aquaculture) in the valleys
        for _ in range(max(1, int(round(2 * scale)))):
            p = valley_point(False)
            if p is None:
                continue
            ang = rng.uniform(0, math.pi)
            nx_, ny_ = int(rng.integers(2, 5)), int(rng.integers(2, 4))
            pw, ph, gap = rng.uniform(40, 60), rng.uniform(25, 40), 6.0
            ca, sa = math.cos(ang), math.sin(ang)
            for i in range(nx_):
                for j in range(ny_):
                    ox_ = (i - (nx_ - 1) / 2) * (pw + gap)
                    oy_ = (j - (ny_ - 1) / 2) * (ph + gap)
                    q = _quad(rng, p[0] + ca * ox_ - sa * oy_, p[1] + sa * ox_ + ca * oy_, pw, ph, ang,
                              jitter=0.01)
                    if not self._inside(q, 50) or not avoid_occ.clear_of(q, 10) or not placed.clear_of(q, 2):
                        continue
                    if hits_road(q):
                        continue
                    self.w.objects.append((q, _MAT["turbid_water"]))
                    placed.add(q)
        # small lakes / reservoirs
        for _ in range(max(1, int(round(1 * scale)))):
            p = valley_point(False)
            if p is None:
                continue
            lake = _blob(rng, p[0], p[1], rng.uniform(60, 160), roughness=0.3, vertex_m=8.0)
            if not self._inside(lake, 50) or not avoid_occ.clear_of(lake, 20) or not placed.clear_of(lake, 10):
                continue
            if hits_road(lake):
                continue
            self.w.objects.append((lake, _MAT["clear_water"]))
            placed.add(lake)

    # -- encroachments -----------------------------------------------------
    def _place_changes(self) -> None:
        rng = self.rng
        n, nd = self.p.n_encroachments, self.p.n_decoys
        types = ("vegetation_loss", "bare_soil", "construction", "water", "vegetation_gain")
        n_in = int(round(0.8 * n)) if self.reserves else 0
        plan: list[dict[str, Any]] = []
        for k in range(n):
            inside = k < n_in
            ctype = types[k % len(types)]
            if k == 0:
                ctype = "vegetation_loss"
            if k == 1:
                ctype = "construction"
            if n < 8:
                area = float(np.exp(rng.uniform(np.log(450), np.log(6000))))
            else:
                area = float(np.exp(rng.uniform(np.log(450), np.log(15000))))
            if k == 2:
                area = 15000.0 * rng.uniform(0.9, 1.0)
            if k == 3:
                area = rng.uniform(430, 520)
            plan.append({"type": ctype, "area": area, "inside": inside, "decoy": False,
                         "force": {0: "cloud", 1: "boundary"}.get(k)})
        decoy_areas = np.linspace(110, 240, nd) if nd else []
        for k in range(nd):
            plan.append({"type": types[(k * 2) % len(types)] if k % 5 != 4 else "construction",
                         "area": float(decoy_areas[k]), "inside": bool(self.reserves) and k % 4 != 3,
                         "decoy": True, "force": None})
        geoms = [g for g, _ in self.w.objects] + [g for g, _ in self.w.lines]
        obstacles = shapely.STRtree(geoms) if geoms else None
        for g in (m.geom for m in self.w.mines):
            self.occ_changes.add(g.buffer(30.0))
        for i, spec in enumerate(plan):
            ch = self._place_change(i, spec, obstacles)
            if ch is None:
                log.warning("could not place change %d (%s, %.0f m²)", i, spec["type"], spec["area"])
                continue
            self.w.changes.append(ch)
            self.occ_changes.add(ch.geom)

    def _change_shape(self, ctype: str, cx: float, cy: float, area: float) -> Any:
        rng = self.rng
        rad = math.sqrt(area / math.pi)
        if ctype in ("construction", "water"):
            w = math.sqrt(area * rng.uniform(1.0, 2.2))
            h = area / w
            g = _quad(rng, cx, cy, w, h, rng.uniform(0, math.pi), jitter=0.05)
        else:
            g = _blob(rng, cx, cy, rad, roughness=0.35, vertex_m=max(2.0, rad / 6),
                      elong=rng.uniform(1.0, 1.8), angle=rng.uniform(0, math.pi))
        if not g.is_valid:
            g = _largest(shapely.make_valid(g))
        return _scale_to_ground_area(g, area)

    def _place_change(self, i: int, spec: dict[str, Any], obstacles: Any) -> _Change | None:
        rng = self.rng
        ctype, area = spec["type"], spec["area"]
        want = {
            "vegetation_loss": ("forest",),
            "bare_soil": ("forest", "shrub_grass"),
            "construction": ("forest", "shrub_grass", "cropland"),
            "water": ("cropland", "forest", "shrub_grass"),
            "vegetation_gain": ("cropland", "shrub_grass", "forest"),
        }[ctype]
        res_list = self.reserves
        cloud_region = None
        if spec["force"] == "cloud" and res_list:
            # where the first reserve lies under thick cloud, shrunk so the patch fits
            under = _polys(self.cloud_high.intersection(res_list[0]["outer"]))
            cloud_region = _polys(under.buffer(-math.sqrt(area)))
            if cloud_region.is_empty:
                cloud_region = under
            if cloud_region.is_empty:
                return None
        for attempt in range(800):
            relax = attempt > 500
            if cloud_region is not None and attempt < 600:
                cx, cy = self._random_point(cloud_region)
            elif spec["force"] == "boundary" and res_list and attempt < 600:
                ring = res_list[0]["zones"][0][1].exterior
                q = ring.interpolate(rng.uniform(0, ring.length))
                cx, cy = q.x, q.y
            elif spec["inside"] and res_list:
                rv = res_list[int(rng.integers(0, len(res_list)))]
                cx, cy = self._random_point(rv["outer"])
            else:
                cx, cy = self._random_point(margin=150)
                if not relax and any(rv["halo"].contains(Point(cx, cy)) for rv in res_list
                                     if rv["halo_bounds"][0] <= cx <= rv["halo_bounds"][2]
                                     and rv["halo_bounds"][1] <= cy <= rv["halo_bounds"][3]):
                    continue
            g = self._change_shape(ctype, cx, cy, area)
            if not self._inside(g, min(60.0, 0.05 * self.min_dim)):
                continue
            if not self.occ_changes.clear_of(g, 25.0):
                continue
            if spec["force"] is None and self.cloud_union.intersects(g) and not relax:
                continue  # keep the forced one as the only clearly-clouded encroachment
            if spec["force"] == "boundary":
                if self.cloud_union.intersects(g) and not relax:
                    continue
                core = res_list[0]["zones"][0][1]
                if not (g.intersects(core) and not core.contains(g)):
                    continue
            mat = self.w.material_under(g, obstacles)
            if mat is None:
                continue
            key = MATERIALS[mat].key
            if key not in want and not (relax and key in ("forest", "shrub_grass", "cropland")):
                continue
            return self._make_change(i, spec, g, mat)
        return None

    def _make_change(self, i: int, spec: dict[str, Any], g: Any, mat: int) -> _Change:
        rng = self.rng
        ctype = spec["type"]
        before = [(g, mat)]
        before_mat = MATERIALS[mat].key
        if ctype == "vegetation_loss":
            after = [(g, _MAT["logged"])]
            after_mat = "logged"
        elif ctype == "bare_soil":
            after = [(g, _MAT["bare_soil"])]
            after_mat = "bare_soil"
        elif ctype == "construction":
            roof_mat = _MAT["blue_roof"] if rng.uniform() < 0.6 else _MAT["concrete"]
            inner = _polys(affinity.scale(g, 0.72, 0.72, origin=g.centroid).intersection(g))
            if spec["decoy"] or inner.is_empty:
                after = [(g, roof_mat)]
            else:
                after = [(_polys(g.difference(inner)), _MAT["bare_soil"]), (inner, roof_mat)]
            after_mat = MATERIALS[roof_mat].key
        elif ctype == "water":
            after = [(g, _MAT["turbid_water"])]
            after_mat = "turbid_water"
        else:  # vegetation_gain: a fallow plot grows over with shrubs and grass
            before = [(g, _MAT["fallow"])]
            before_mat = "fallow"
            after = [(g, _MAT["shrub_grass"])]
            after_mat = "shrub_grass"
        prefix = "DECOY" if spec["decoy"] else "ENC"
        return _Change(f"{prefix}-{i + 1:03d}", ctype, g, before, after, spec["decoy"], before_mat,
                       after_mat)

    # -- results -----------------------------------------------------------
    def result(self) -> SyntheticScene:
        import geopandas as gpd
        import pandas as pd

        w = self.w
        grid = w.grid
        t0 = grid.transform
        g20 = Grid(((grid.height + 1) // 2, (grid.width + 1) // 2),
                   Affine(2 * t0.a, 0.0, t0.c, 0.0, 2 * t0.e, t0.f), grid.crs)
        dir_zh = RESTORATION_DIRECTIONS
        mines = gpd.GeoDataFrame(
            {
                "矿山编号": [m.mine_id for m in w.mines],
                "矿山名称": [m.name for m in w.mines],
                "修复方向": [dir_zh[m.direction] for m in w.mines],
                "所在区县": ["余杭区"] * len(w.mines),
                "责任单位": [m.unit for m in w.mines],
                "计划完成年份": [m.plan_year for m in w.mines],
            },
            geometry=[m.geom for m in w.mines], crs=_CRS,
        )
        src_geoms = gpd.GeoSeries([m.raw for m in w.mines], crs=_CRS)
        tr = transformer(_CRS, "EPSG:4490")
        src_ll = [shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
                  for g in src_geoms]
        mines_source = gpd.GeoDataFrame(mines.drop(columns="geometry"), geometry=src_ll, crs="EPSG:4490")
        rows = []
        for rv in self.reserves:
            for zname, zg in rv["zones"]:
                rows.append({"保护地编号": rv["id"], "保护地名称": rv["name"], "保护地类型": rv["kind"],
                             "级别": rv["level"], "功能分区": zname, "geometry": zg})
        reserves = gpd.GeoDataFrame(rows, geometry="geometry", crs=_CRS) if rows else gpd.GeoDataFrame(
            {"保护地编号": [], "保护地名称": [], "保护地类型": [], "级别": [], "功能分区": []},
            geometry=[], crs=_CRS)
        clouds = gpd.GeoDataFrame(
            {"kind": [c["kind"] for c in self.clouds], "scl_class": [c["scl_class"] for c in self.clouds],
             "date": ["after"] * len(self.clouds)},
            geometry=[c["geom"] for c in self.clouds], crs=_CRS,
        )
        outers = [rv["outer"] for rv in self.reserves]
        res_tree = shapely.STRtree(outers) if outers else None
        # nodata regions
        nod_rows = []
        lft, b, r, t = w.bounds
        for d in DATES:
            e = w.nodata.get(d)
            if e is not None:
                x_top, slope, top = e
                nod_rows.append({"date": d, "geometry": Polygon(
                    [(x_top, t), (r, t), (r, b), (x_top - slope * (top - b), b)])})
        nodata = gpd.GeoDataFrame(nod_rows, geometry="geometry", crs=_CRS) if nod_rows else \
            gpd.GeoDataFrame({"date": []}, geometry=[], crs=_CRS)
        # encroachment truth
        enc_rows = []
        for ch in w.changes:
            g = ch.geom
            rname, zone, zones, zname = None, "outside", "outside", None
            for ri in np.sort(res_tree.query(g, predicate="intersects")) if res_tree is not None else []:
                rv = self.reserves[int(ri)]
                rname = rv["name"]
                touched = [(zn, canonical_zone(zn)) for zn, zg in rv["zones"] if g.intersection(zg).area > 0.01]
                if touched:
                    from ecopatch.vocabulary import ZONE_STRICTNESS

                    touched.sort(key=lambda z: ZONE_STRICTNESS.index(z[1]))
                    zone = touched[0][1]
                    zname = touched[0][0]
                    zones = ",".join(dict.fromkeys(z[1] for z in touched))
                    if not rv["outer"].contains(g):
                        zones += ",outside"
            cf = _cover_fraction(g, self.cloud_tree)
            enc_rows.append({
                "enc_id": ch.enc_id, "change_type": ch.change_type, "area_m2": _ground_area(g),
                "reserve_name": rname, "zone": zone, "zones": zones, "zone_name": zname,
                "under_cloud": bool(cf > 0), "cloud_fraction": float(cf), "is_decoy": ch.is_decoy,
                "before_material": ch.before_material, "after_material": ch.after_material,
                "geometry": g,
            })
        cols = ["enc_id", "change_type", "area_m2", "reserve_name", "zone", "zones", "zone_name",
                "under_cloud", "cloud_fraction", "is_decoy", "before_material", "after_material"]
        enc = gpd.GeoDataFrame(enc_rows, geometry="geometry", crs=_CRS) if enc_rows else \
            gpd.GeoDataFrame({c: [] for c in cols}, geometry=[], crs=_CRS)
        # restoration truth
        truth_rows = []
        part_rows = []
        for m in w.mines:
            for d in DATES:
                for g, mat in m.parts[d]:
                    part_rows.append({"mine_id": m.mine_id, "date": d, "material": MATERIALS[mat].key,
                                      "group": MATERIALS[mat].group, "geometry": g})
            bef = m.parts["before"]
            dmg = shapely.union_all([g for g, mt in bef if MATERIALS[mt].group in ("bare", "built")])
            veg_b = shapely.union_all([g for g, mt in bef if _VEG[mt]])
            wat_b = shapely.union_all([g for g, mt in bef if _WATER[mt]])
            # damaged before and vegetated after: exactly the restored region, which the
            # generator cut out of the damaged ground (intersecting unions instead would add
            # 1e-10 m² slivers where intact vegetation touches the damaged ground)
            rest = _polys(m.restored) if m.restored is not None else Polygon()
            still = _polys(dmg.difference(rest)) if not rest.is_empty else _polys(dmg)
            area = _ground_area(m.geom)
            dmg_a = _ground_area(_polys(dmg))
            rest_a = _ground_area(rest)
            cf = _cover_fraction(m.geom, self.cloud_tree)
            truth_rows.append({
                "mine_id": m.mine_id, "name": m.name, "direction": dir_zh[m.direction],
                "direction_key": m.direction, "area_m2": area, "damaged_m2": dmg_a,
                "restored_m2": rest_a, "still_bare_m2": _ground_area(still),
                "restoration_rate": rest_a / dmg_a if dmg_a > 0 else 0.0,
                "vegetated_before_m2": _ground_area(_polys(veg_b)), "water_m2": _ground_area(_polys(wat_b)),
                "cloud_touched": bool(cf > 0), "cloud_fraction": float(cf),
                "n_parts": int(shapely.get_num_geometries(m.geom)), "has_hole": m.has_hole,
                "invalid_in_source": m.invalid_in_source,
            })
        truth = pd.DataFrame(truth_rows)
        parts = gpd.GeoDataFrame(part_rows, geometry="geometry", crs=_CRS) if part_rows else \
            gpd.GeoDataFrame({"mine_id": [], "date": [], "material": [], "group": []}, geometry=[], crs=_CRS)
        return SyntheticScene(
            params=self.p, grid=grid, grid20=g20,
            dates={d: p.sensing_time.date() for d, p in w.products.items()},
            products=dict(w.products), mines=mines, mines_source=mines_source, reserves=reserves,
            encroachments=enc, clouds=clouds, nodata=nodata, restoration_truth=truth,
            mine_parts=parts, drone_mine_id=self.drone_mine, _world=w, tricks=w.tricks,
        )


# ---------------------------------------------------------------------------
# Drone orthomosaic
# ---------------------------------------------------------------------------


def make_drone(
    scene: SyntheticScene,
    *,
    mine_id: str | None = None,
    res_m: float = 0.1,
    margin_m: float = 25.0,
    crs: Any = "EPSG:4549",
    date: str = "after",
) -> DroneOrtho:
    """Render a drone RGB orthomosaic of one mine from the scene truth.

    Parameters
    ----------
    scene : SyntheticScene
    mine_id : str, optional
        矿山编号 of the mine to fly; default ``scene.drone_mine_id`` (a partly
        restored mine).
    res_m : float
        Ground sampling distance, metres (default 0.1).
    margin_m : float
        Flown margin around the mine, metres.
    crs : CRS-like
        CRS of the orthomosaic grid; default EPSG:4549 (CGCS2000 / 3-degree
        Gauss-Krüger CM 120E, northing-first definition; x = easting here).
    date : {"after", "before"}
        Which date's ground to draw.

    Returns
    -------
    DroneOrtho
        ``rgb`` (3, rows, cols) uint8, ``alpha`` (rows, cols) uint8 and the grid.

    Raises
    ------
    InputDataError
        If ``mine_id`` is not a mine of the scene.
    """
    scene._check_key(date)
    mid = mine_id or scene.drone_mine_id
    rows = scene.mines[scene.mines["矿山编号"] == mid]
    if rows.empty:
        raise InputDataError(
            f"no mine {mid!r} in the scene; choose one of {list(scene.mines['矿山编号'])}"
        )
    if res_m <= 0:
        raise ConfigError(f"res_m must be positive, got {res_m}")
    world = scene._world
    mine = rows.geometry.iloc[0]
    tr = transformer(_CRS, crs)
    inv = transformer(crs, _CRS)

    def to_crs(g: Any) -> Any:
        return shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))

    # the flown block: the mine's minimum rotated rectangle grown by the margin
    block_utm = mine.minimum_rotated_rectangle.buffer(margin_m, join_style="mitre")
    flight = to_crs(block_utm)
    lft, b, r, t = flight.bounds
    x0 = round(math.floor(lft / res_m) * res_m, 6)
    y1 = round(math.ceil(t / res_m) * res_m, 6)
    cols = int(math.ceil((r - x0) / res_m))
    nrows = int(math.ceil((y1 - b) / res_m))
    grid = Grid((nrows, cols), Affine(res_m, 0, x0, 0, -res_m, y1), crs)
    ground, _ = world.state(date)
    shapes_utm = [(g, world.base_of(m)) for g, m in world.surface_shapes(ground, block_utm.buffer(5.0), acq=date)]
    shapes = [(to_crs(g), m) for g, m in shapes_utm]
    rgb = np.zeros((3, nrows, cols), np.uint8)
    alpha = np.zeros((nrows, cols), np.uint8)
    step = 1024
    noise = _Noise(scene.seed + 7)
    for r0 in range(0, nrows, step):
        for c0 in range(0, cols, step):
            win = Window(r0, c0, min(step, nrows - r0), min(step, cols - c0))
            sub = grid.subgrid(win)
            rgb[:, win.slices[0], win.slices[1]], alpha[win.slices] = _render_drone_block(
                world, sub, shapes, flight, noise, inv)
    return DroneOrtho(rgb=rgb, alpha=alpha, grid=grid, mine_id=str(mid), date=date, flight_area=flight)


def _render_drone_block(world: _World, sub: Grid, shapes: list[tuple[Any, int]], flight: Any,
                        noise: _Noise, inv: Any) -> tuple[np.ndarray, np.ndarray]:
    from rasterio import features

    h, w = sub.shape
    t = sub.transform
    res = t.a
    mat = _rasterize(shapes, (h, w), t, _MAT["forest"])
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
            jx = _u01(_key(noise.seed, 44), cx, cy) * 1.2 + 0.9
            jy = _u01(_key(noise.seed, 45), cx, cy) * 1.2 + 0.9
            rr = _u01(_key(noise.seed, 46), cx, cy) * 0.5 + 0.5
            d = np.hypot(xx - cx * 3.0 - jx, yy - cy * 3.0 - jy)
            tree = d < rr
            grass = np.asarray(MATERIALS[_MAT["shrub_grass"]].rgb, np.float32)[:, None]
            soil = np.asarray(MATERIALS[_MAT["bare_soil"]].rgb, np.float32)[:, None]
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


# ---------------------------------------------------------------------------
# The world's tricks (seasons, brightness, haze, other dates and sensors) live in their own
# private modules, which build on the names above: re-exported lazily (PEP 562), so that
# importing either module first works too.
# ---------------------------------------------------------------------------
_TRICK_NAMES = {
    "SENSOR_NAMES": "_synthetic_tricks", "Haze": "_synthetic_tricks", "Rendering": "_synthetic_tricks",
    "cloud_geometry": "_synthetic_tricks", "crop_state": "_synthetic_tricks",
    "product_grids": "_synthetic_sensors", "render_product": "_synthetic_sensors",
}


def __getattr__(name: str) -> Any:
    if name in _TRICK_NAMES:
        import importlib

        return getattr(importlib.import_module(f".{_TRICK_NAMES[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
