"""Geometry helpers of the scene generator: blobs, quads, ground areas, splits, occupancy."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, cast

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import Polygon

from ecopatch.data.synthetic.materials import SCENE_CRS
from ecopatch.geo.geodesy import geodesic_area_m2, ground_area_factor

# ---------------------------------------------------------------------------
# Geometry helpers
# ---------------------------------------------------------------------------


def polygons_of(geom: Any) -> Any:
    """The polygonal part of ``geom`` (Polygon / MultiPolygon) or an empty Polygon."""
    if geom is None or geom.is_empty:
        return Polygon()
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return Polygon()
    return shapely.union_all(parts)


def largest_polygon(geom: Any) -> Any:
    """The largest polygon part of ``geom`` (an empty Polygon when there is none)."""
    parts = list(shapely.get_parts(polygons_of(geom)))
    if not parts:
        return Polygon()
    return max(parts, key=lambda g: g.area)


def random_blob(rng: np.random.Generator, cx: float, cy: float, r: float, *, roughness: float = 0.22,
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
        poly = largest_polygon(shapely.make_valid(poly))
    return poly


def random_quad(rng: np.random.Generator, cx: float, cy: float, w: float, h: float, angle: float,
          jitter: float = 0.06) -> Polygon:
    """A jittered rotated rectangle ``w`` × ``h`` metres centred on (cx, cy)."""
    pts = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    pts = pts + rng.normal(scale=jitter * min(w, h), size=pts.shape)
    ca, sa = math.cos(angle), math.sin(angle)
    xy = np.column_stack([cx + ca * pts[:, 0] - sa * pts[:, 1], cy + sa * pts[:, 0] + ca * pts[:, 1]])
    return Polygon(xy)


def _area_factor(x: float, y: float) -> float:
    """Ground m² per map m² of EPSG:32650 near (x, y), taken at the centre of its 2 km lattice cell."""
    return _area_factor_km(int(x // 2000), int(y // 2000))


def _area_factor_km(i: int, j: int) -> float:
    return float(ground_area_factor(SCENE_CRS, np.array([i * 2000.0 + 1000.0]), np.array([j * 2000.0 + 1000.0]))[0])


def scale_to_ground_area(poly: Any, area_m2: float) -> Any:
    """Scale ``poly`` about its centroid so that its geodesic area is about ``area_m2``."""
    c = poly.centroid
    f = _area_factor(c.x, c.y)
    s = math.sqrt(area_m2 / (poly.area * f))
    return affinity.scale(poly, s, s, origin=c)


def ground_area(geom: Any) -> float:
    """True (geodesic) ground area of ``geom`` in the scene CRS, m² (0 for None or empty)."""
    return float(geodesic_area_m2(geom, SCENE_CRS)) if geom is not None and not geom.is_empty else 0.0


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
    poly = cast(Polygon, shapely.polygons(np.column_stack([c[0] + s * vx + t * ux, c[1] + s * vy + t * uy])))
    if not poly.is_valid:
        poly = polygons_of(shapely.make_valid(poly))
    return poly


def split_by_fraction(region: Any, c: tuple[float, float], u: tuple[float, float],
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
        part = polygons_of(region.intersection(_wavy_halfplane(c, u, mid, extent * 1.5, amp, phase, wl)))
        if part.area < frac * total:
            lo = mid
        else:
            hi = mid
    return part


def bowtie(poly: Polygon, rng: np.random.Generator) -> Polygon:
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


def cover_fraction(g: Any, tree: Any) -> float:
    """Share (0-1) of ``g`` covered by the geometries of ``tree`` (disjoint parts)."""
    if tree is None:
        return 0.0
    idx = tree.query(g, predicate="intersects")
    if idx.size == 0:
        return 0.0
    cover = shapely.union_all(tree.geometries.take(idx))
    return float(min(1.0, g.intersection(cover).area / g.area))


class Occupancy:
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
        """Record ``geom`` as occupied."""
        for k in self._keys(geom.bounds, 0.0):
            self.buckets.setdefault(k, []).append(geom)

    def clear_of(self, geom: Any, gap: float) -> bool:
        """True if ``geom`` keeps at least ``gap`` metres from every occupied geometry."""
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
