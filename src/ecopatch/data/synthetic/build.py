"""Placing reserves, mines, clouds, landscape objects and encroachments in a world."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import shapely
from affine import Affine
from shapely import affinity
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from ecopatch.data.synthetic.geometry import (
    Occupancy,
    bowtie,
    cover_fraction,
    ground_area,
    largest_polygon,
    polygons_of,
    random_blob,
    random_quad,
    scale_to_ground_area,
    split_by_fraction,
)
from ecopatch.data.synthetic.materials import (
    CLOUD_HEIGHT_M,
    DATES,
    DIRECTION_MATERIAL,
    IS_VEGETATION,
    IS_WATER,
    MATERIAL_INDEX,
    MATERIALS,
    SCENE_CRS,
    SUN_AZIMUTH_DEG,
    SUN_ZENITH_DEG,
)
from ecopatch.data.synthetic.scene import SyntheticScene
from ecopatch.data.synthetic.world import (
    DIRECTION_KEYS,
    DIRECTION_WEIGHTS,
    MINE_KINDS,
    PLACES,
    RESERVE_NAMES,
    RESERVE_TYPES,
    TOWNS,
    ZONES_NEW,
    ZONES_OLD,
    ChangeTruth,
    MineTruth,
    town_unit,
)
from ecopatch.errors import ConfigError
from ecopatch.geo.geodesy import transformer
from ecopatch.geo.grid import Grid
from ecopatch.vocabulary import RESTORATION_DIRECTIONS, canonical_zone

if TYPE_CHECKING:  # pragma: no cover
    from ecopatch.data.synthetic.world import SceneParams, World


log = logging.getLogger(__name__)


class Builder:
    """Places reserves, mines, clouds, landscape objects and encroachments."""

    def __init__(self, world: World, rng: np.random.Generator, params: SceneParams) -> None:
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
        self.occ_mines = Occupancy()
        self.occ_cores = Occupancy()
        self.occ_changes = Occupancy()
        self.occ_reserves = Occupancy(cell=2000.0)
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
        assert region is not None  # without one, the first point was returned
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
        """Place everything, in order: reserves, mines, clouds, landscape objects, encroachments."""
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
        placed = Occupancy(cell=2000.0)
        for k in range(n):
            kind, level, style = RESERVE_TYPES[k % len(RESERVE_TYPES)]
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
                outer = random_blob(self.rng, cx, cy, rad, roughness=0.25, elong=self.rng.uniform(1.0, 1.35),
                              angle=self.rng.uniform(0, math.pi), vertex_m=15.0)
                if not self._inside(outer, 100.0):
                    continue
                if not placed.clear_of(outer, 300.0):
                    continue
                placed.add(outer)
                self.occ_reserves.add(outer)
                name_root = RESERVE_NAMES[k % len(RESERVE_NAMES)]
                suffix = "" if k < len(RESERVE_NAMES) else f"{k // len(RESERVE_NAMES) + 1}号"
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
        spec = ZONES_OLD if style == "old" else ZONES_NEW
        shapes: list[Any] = []
        prev = outer
        for _name, k in reversed(spec[:-1]):
            inner = random_blob(self.rng, cx + self.rng.normal(0, 0.05 * rad), cy + self.rng.normal(0, 0.05 * rad),
                          rad * k, roughness=0.3, vertex_m=12.0, angle=self.rng.uniform(0, math.pi))
            inner = largest_polygon(inner.intersection(prev.buffer(-min(40.0, 0.1 * rad))))
            shapes.append(inner)
            prev = inner
        shapes = shapes[::-1]  # innermost first
        nested = [*shapes, outer]
        zones = []
        for i, (zname, _k) in enumerate(spec):
            g = nested[i] if i == 0 else polygons_of(nested[i].difference(nested[i - 1]))
            zones.append((zname, g))
        return zones

    def _wetland_lake(self, res: dict[str, Any]) -> None:
        core = res["zones"][0][1]
        c = core.representative_point()
        rad = math.sqrt(core.area / math.pi) * 0.45
        lake = random_blob(self.rng, c.x, c.y, rad, roughness=0.3, vertex_m=8.0)
        lake = largest_polygon(lake.intersection(core.buffer(-30.0)))
        if not lake.is_empty:
            self.w.objects.append((lake, MATERIAL_INDEX["clear_water"]))

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
        directions = list(DIRECTION_KEYS) + list(
            rng.choice(DIRECTION_KEYS, size=max(0, n - 5), p=DIRECTION_WEIGHTS)
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

        def score(m: MineTruth) -> tuple[int, float]:
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
            g: Polygon | MultiPolygon
            if spec["multi"]:
                r1, r2 = rad * math.sqrt(0.6), rad * math.sqrt(0.4)
                a = random_blob(rng, cx, cy, r1, roughness=0.28, elong=elong, angle=ang)
                off = r1 + r2 + rng.uniform(40, 80)
                th = rng.uniform(0, 2 * math.pi)
                b2 = random_blob(rng, cx + off * math.cos(th), cy + off * math.sin(th), r2, roughness=0.28)
                if a.distance(b2) < 25.0:
                    continue
                g = MultiPolygon([a, b2])
            else:
                g = random_blob(rng, cx, cy, rad, roughness=0.28, elong=elong, angle=ang)
            g = scale_to_ground_area(g, area)
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
            isl = random_blob(rng, c.x, c.y, rad * rng.uniform(0.18, 0.28), roughness=0.3, vertex_m=5.0)
            isl = largest_polygon(isl.intersection(geom.buffer(-20.0)))
            if not isl.is_empty and isl.area > 200:
                geom = Polygon(geom.exterior.coords, [isl.exterior.coords])
                raw = geom
                has_hole = True
        invalid = False
        if spec["invalid"] and geom.geom_type == "Polygon" and not has_hole:
            raw = bowtie(geom, rng)
            if not raw.is_valid:
                geom = polygons_of(shapely.make_valid(raw))
                invalid = True
            else:
                raw = geom
        idx = len(self.w.mines) + 1
        place = PLACES[(idx - 1) % len(PLACES)]
        kind = MINE_KINDS[int(rng.integers(0, len(MINE_KINDS)))]
        suffix = "" if idx <= len(PLACES) else f"{(idx - 1) // len(PLACES) + 1}号"
        mine = MineTruth(
            mine_id=f"YH-KS-{idx:03d}",
            name=f"余杭区{place}{suffix}{kind}",
            direction=spec["direction"],
            unit=town_unit(TOWNS[int(rng.integers(0, len(TOWNS)))]),
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

    def _mine_parts(self, mine: MineTruth, spec: dict[str, Any]) -> None:
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
            g = random_blob(rng, p.x, p.y, math.sqrt(area * rng.uniform(0.05, 0.10) / math.pi), roughness=0.3,
                      vertex_m=5.0)
            g = polygons_of(g.intersection(core))
            if not g.is_empty:
                mat = MATERIAL_INDEX["forest"] if rng.uniform() < 0.5 else MATERIAL_INDEX["shrub_grass"]
                intact.append((g, mat))
                remaining = polygons_of(remaining.difference(g))
        low = split_by_fraction(remaining, (c.x, c.y), up, 0.45, rng, ext)  # downhill part
        if spec["pond"]:
            inner_low = polygons_of(low.buffer(-10.0))
            if not inner_low.is_empty:
                p = inner_low.representative_point()
                g = random_blob(rng, p.x, p.y, math.sqrt(area * rng.uniform(0.03, 0.07) / math.pi),
                          roughness=0.25, vertex_m=4.0)
                g = polygons_of(g.intersection(inner_low))
                if not g.is_empty:
                    intact.append((g, MATERIAL_INDEX["turbid_water"]))
                    remaining = polygons_of(remaining.difference(g))
                    low = polygons_of(low.difference(g))
        buildings: list[tuple[Any, int]] = []
        if spec["buildings"]:
            slots = polygons_of(low.buffer(-8.0))
            for _ in range(int(rng.integers(1, 4))):
                if slots.is_empty:
                    break
                p = self._random_point(slots)
                bw, bh = rng.uniform(12, 30), rng.uniform(10, 22)
                q = random_quad(rng, p[0], p[1], bw, bh, rng.uniform(0, math.pi), jitter=0.02)
                q = polygons_of(q.intersection(slots))
                if q.is_empty or q.area < 60:
                    continue
                mat = MATERIAL_INDEX["blue_roof"] if rng.uniform() < 0.5 else MATERIAL_INDEX["concrete"]
                buildings.append((q, mat))
                slots = polygons_of(slots.difference(q.buffer(6.0)))
                remaining = polygons_of(remaining.difference(q))
                low = polygons_of(low.difference(q))
        rock = polygons_of(remaining.difference(low))
        soil = polygons_of(low)
        damaged = [(rock, MATERIAL_INDEX["quarry_rock"]), (soil, MATERIAL_INDEX["bare_soil"]), *buildings]
        damaged = [(g, m) for g, m in damaged if not g.is_empty]
        before = [*intact, *damaged]
        # restoration: from the downhill side up to the target share of the damaged ground
        d_union = shapely.union_all([g for g, _ in damaged])
        restored = split_by_fraction(d_union, (c.x, c.y), up, mine.target_rate, rng, ext) \
            if mine.target_rate > 0 else Polygon()
        rest_mat = MATERIAL_INDEX[DIRECTION_MATERIAL[mine.direction]]
        after = list(intact)
        for g, m in damaged:
            left = polygons_of(g.difference(restored)) if not restored.is_empty else g
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
        band = polygons_of(line.buffer(2.5, cap_style="flat"))
        cores = [rv["zones"][0][1] for rv in self.reserves if rv["zones"][0][1].intersects(band)]
        if cores:
            band = polygons_of(band.difference(shapely.union_all(cores)))
        if not band.is_empty and self.occ_mines.clear_of(band, 20.0):
            self.w.lines.append((band, MATERIAL_INDEX["concrete"]))

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
                core = random_blob(rng, cx, cy, rad, roughness=0.35, harmonics=9, vertex_m=20.0,
                             angle=rng.uniform(0, math.pi), elong=rng.uniform(1.0, 1.4))
            cores.append(core)
        height = CLOUD_HEIGHT_M
        az = math.radians(SUN_AZIMUTH_DEG + 180.0)
        off = height * math.tan(math.radians(SUN_ZENITH_DEG))
        dx, dy = off * math.sin(az), off * math.cos(az)
        core_u = shapely.union_all(cores)
        high = polygons_of(core_u.buffer(-80.0))
        medium = polygons_of(core_u.difference(high))
        cirrus = polygons_of(core_u.buffer(120.0).difference(core_u))
        shadow = polygons_of(affinity.translate(core_u, dx, dy).difference(core_u.buffer(120.0)))
        scene_box = box(lft, b, r, t)
        self.clouds = [
            {"kind": k, "scl_class": s, "geom": polygons_of(g.intersection(scene_box.buffer(500)))}
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
            core = random_blob(np.random.default_rng(shape_seed), p.x + d[0] * off, p.y + d[1] * off, rad,
                         roughness=0.35, harmonics=9, vertex_m=20.0, angle=0.3, elong=1.2)
            cover = polygons_of(core.buffer(120.0)).intersection(mine).area / mine.area
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
        avoid_occ = Occupancy()
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
            for ki in idx:
                paths[ki].append((float(xr[ki]), float(yr[ki])))
                if not (lft - 100 < xr[ki] < r + 100 and b - 100 < yr[ki] < t + 100):
                    alive[ki] = False
        for pts in paths:
            for k in range(0, len(pts) - 1, 20):
                seg = LineString(pts[k:k + 21])
                if seg.length <= 0:
                    continue
                piece = seg.buffer(3.5)
                hits = [c for c in cores if c.intersects(piece)]
                if hits:
                    piece = polygons_of(piece.difference(shapely.union_all(hits)))
                if not piece.is_empty:
                    self.w.lines.append((piece, MATERIAL_INDEX["asphalt"]))
        road_geoms = [g for g, m in self.w.lines if m == MATERIAL_INDEX["asphalt"]]
        road_tree = shapely.STRtree(road_geoms) if road_geoms else None
        placed = Occupancy()

        def hits_road(g: Any) -> bool:
            return road_tree is not None and road_tree.query(g, predicate="intersects").size > 0

        # a pool of valley-floor points (vectorised terrain test), with their distance to a road
        n_need = max(4, int(round(9 * scale))) * 3
        pool_x: list[float] = []
        pool_y: list[float] = []
        for _ in range(40):
            if len(pool_x) >= n_need:
                break
            edge = 250.0 if min(r - lft, t - b) > 1000 else 0.1 * min(r - lft, t - b)
            xx = rng.uniform(lft + edge, r - edge, 4096)
            yy = rng.uniform(b + edge, t - edge, 4096)
            ok = self._hav(xx, yy) < -8.0
            pool_x.extend(xx[ok][: n_need - len(pool_x)])
            pool_y.extend(yy[ok][: n_need - len(pool_y)])
        near = np.zeros(len(pool_x), bool)
        if road_tree is not None and pool_x:
            pool_pts = shapely.points(np.array(pool_x), np.array(pool_y))
            hit = road_tree.query(pool_pts, predicate="dwithin", distance=150.0)
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
                q = random_quad(rng, bx_, by_, rng.uniform(9, 20), rng.uniform(8, 14), ang + rng.normal(0, 0.08),
                          jitter=0.01)
                if not self._inside(q, 50) or not avoid_occ.clear_of(q, 10) or not placed.clear_of(q, 3.0):
                    continue
                if hits_road(q):
                    continue
                mat = MATERIAL_INDEX["blue_roof"] if rng.uniform() < 0.18 else MATERIAL_INDEX["concrete"]
                self.w.objects.append((q, mat))
                placed.add(q)
        # factories with big steel-sheet roofs and a concrete yard
        for _ in range(max(1, int(round(1.5 * scale)))):
            p = valley_point(True)
            if p is None:
                continue
            ang = rng.uniform(0, math.pi)
            yard = random_quad(rng, p[0], p[1], rng.uniform(60, 110), rng.uniform(40, 70), ang, jitter=0.01)
            if not self._inside(yard, 50) or not avoid_occ.clear_of(yard, 15) or not placed.clear_of(yard, 5):
                continue
            if hits_road(yard):
                continue
            self.w.objects.append((yard, MATERIAL_INDEX["concrete"]))
            c = yard.centroid
            roof = random_quad(rng, c.x, c.y, rng.uniform(30, 50), rng.uniform(20, 32), ang, jitter=0.005)
            roof = polygons_of(roof.intersection(yard.buffer(-4)))
            if not roof.is_empty:
                self.w.objects.append((roof, MATERIAL_INDEX["blue_roof"]))
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
                    q = random_quad(rng, p[0] + ca * ox_ - sa * oy_, p[1] + sa * ox_ + ca * oy_, pw, ph, ang,
                              jitter=0.01)
                    if not self._inside(q, 50) or not avoid_occ.clear_of(q, 10) or not placed.clear_of(q, 2):
                        continue
                    if hits_road(q):
                        continue
                    self.w.objects.append((q, MATERIAL_INDEX["turbid_water"]))
                    placed.add(q)
        # small lakes / reservoirs
        for _ in range(max(1, int(round(1 * scale)))):
            p = valley_point(False)
            if p is None:
                continue
            lake = random_blob(rng, p[0], p[1], rng.uniform(60, 160), roughness=0.3, vertex_m=8.0)
            if not self._inside(lake, 50) or not avoid_occ.clear_of(lake, 20) or not placed.clear_of(lake, 10):
                continue
            if hits_road(lake):
                continue
            self.w.objects.append((lake, MATERIAL_INDEX["clear_water"]))
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
        decoy_areas = np.linspace(110, 240, nd) if nd else np.empty(0)
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
            g = random_quad(rng, cx, cy, w, h, rng.uniform(0, math.pi), jitter=0.05)
        else:
            g = random_blob(rng, cx, cy, rad, roughness=0.35, vertex_m=max(2.0, rad / 6),
                      elong=rng.uniform(1.0, 1.8), angle=rng.uniform(0, math.pi))
        if not g.is_valid:
            g = largest_polygon(shapely.make_valid(g))
        return scale_to_ground_area(g, area)

    def _place_change(self, i: int, spec: dict[str, Any], obstacles: Any) -> ChangeTruth | None:
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
            under = polygons_of(self.cloud_high.intersection(res_list[0]["outer"]))
            cloud_region = polygons_of(under.buffer(-math.sqrt(area)))
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

    def _make_change(self, i: int, spec: dict[str, Any], g: Any, mat: int) -> ChangeTruth:
        rng = self.rng
        ctype = spec["type"]
        before = [(g, mat)]
        before_mat = MATERIALS[mat].key
        if ctype == "vegetation_loss":
            after = [(g, MATERIAL_INDEX["logged"])]
            after_mat = "logged"
        elif ctype == "bare_soil":
            after = [(g, MATERIAL_INDEX["bare_soil"])]
            after_mat = "bare_soil"
        elif ctype == "construction":
            roof_mat = MATERIAL_INDEX["blue_roof"] if rng.uniform() < 0.6 else MATERIAL_INDEX["concrete"]
            inner = polygons_of(affinity.scale(g, 0.72, 0.72, origin=g.centroid).intersection(g))
            if spec["decoy"] or inner.is_empty:
                after = [(g, roof_mat)]
            else:
                after = [(polygons_of(g.difference(inner)), MATERIAL_INDEX["bare_soil"]), (inner, roof_mat)]
            after_mat = MATERIALS[roof_mat].key
        elif ctype == "water":
            after = [(g, MATERIAL_INDEX["turbid_water"])]
            after_mat = "turbid_water"
        else:  # vegetation_gain: a fallow plot grows over with shrubs and grass
            before = [(g, MATERIAL_INDEX["fallow"])]
            before_mat = "fallow"
            after = [(g, MATERIAL_INDEX["shrub_grass"])]
            after_mat = "shrub_grass"
        prefix = "DECOY" if spec["decoy"] else "ENC"
        return ChangeTruth(f"{prefix}-{i + 1:03d}", ctype, g, before, after, spec["decoy"], before_mat,
                       after_mat)

    # -- results -----------------------------------------------------------
    def result(self) -> SyntheticScene:
        """The scene built: truth tables and layers around the world."""
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
            geometry=[m.geom for m in w.mines], crs=SCENE_CRS,
        )
        src_geoms = gpd.GeoSeries([m.raw for m in w.mines], crs=SCENE_CRS)
        tr = transformer(SCENE_CRS, "EPSG:4490")
        src_ll = [shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
                  for g in src_geoms]
        mines_source = gpd.GeoDataFrame(mines.drop(columns="geometry"), geometry=src_ll, crs="EPSG:4490")
        rows = []
        for rv in self.reserves:
            for zname, zg in rv["zones"]:
                rows.append({"保护地编号": rv["id"], "保护地名称": rv["name"], "保护地类型": rv["kind"],
                             "级别": rv["level"], "功能分区": zname, "geometry": zg})
        reserves = gpd.GeoDataFrame(rows, geometry="geometry", crs=SCENE_CRS) if rows else gpd.GeoDataFrame(
            {"保护地编号": [], "保护地名称": [], "保护地类型": [], "级别": [], "功能分区": []},
            geometry=[], crs=SCENE_CRS)
        clouds = gpd.GeoDataFrame(
            {"kind": [c["kind"] for c in self.clouds], "scl_class": [c["scl_class"] for c in self.clouds],
             "date": ["after"] * len(self.clouds)},
            geometry=[c["geom"] for c in self.clouds], crs=SCENE_CRS,
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
        nodata = gpd.GeoDataFrame(nod_rows, geometry="geometry", crs=SCENE_CRS) if nod_rows else \
            gpd.GeoDataFrame({"date": []}, geometry=[], crs=SCENE_CRS)
        # encroachment truth
        enc_rows = []
        for ch in w.changes:
            g = ch.geom
            rname, zone, zones, zname = None, "outside", "outside", None
            for ri in np.sort(res_tree.query(g, predicate="intersects")) if res_tree is not None else []:
                rv = self.reserves[int(ri)]
                rname = rv["name"]
                # every zone of a generated reserve has a canonical key
                touched = [(zn, cast(str, canonical_zone(zn))) for zn, zg in rv["zones"]
                           if g.intersection(zg).area > 0.01]
                if touched:
                    from ecopatch.vocabulary import ZONE_STRICTNESS

                    touched.sort(key=lambda z: ZONE_STRICTNESS.index(z[1]))
                    zone = touched[0][1]
                    zname = touched[0][0]
                    zones = ",".join(dict.fromkeys(z[1] for z in touched))
                    if not rv["outer"].contains(g):
                        zones += ",outside"
            cf = cover_fraction(g, self.cloud_tree)
            enc_rows.append({
                "enc_id": ch.enc_id, "change_type": ch.change_type, "area_m2": ground_area(g),
                "reserve_name": rname, "zone": zone, "zones": zones, "zone_name": zname,
                "under_cloud": bool(cf > 0), "cloud_fraction": float(cf), "is_decoy": ch.is_decoy,
                "before_material": ch.before_material, "after_material": ch.after_material,
                "geometry": g,
            })
        cols = ["enc_id", "change_type", "area_m2", "reserve_name", "zone", "zones", "zone_name",
                "under_cloud", "cloud_fraction", "is_decoy", "before_material", "after_material"]
        enc = gpd.GeoDataFrame(enc_rows, geometry="geometry", crs=SCENE_CRS) if enc_rows else \
            gpd.GeoDataFrame({c: [] for c in cols}, geometry=[], crs=SCENE_CRS)
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
            veg_b = shapely.union_all([g for g, mt in bef if IS_VEGETATION[mt]])
            wat_b = shapely.union_all([g for g, mt in bef if IS_WATER[mt]])
            # damaged before and vegetated after: exactly the restored region, which the
            # generator cut out of the damaged ground (intersecting unions instead would add
            # 1e-10 m² slivers where intact vegetation touches the damaged ground)
            rest = polygons_of(m.restored) if m.restored is not None else Polygon()
            still = polygons_of(dmg.difference(rest)) if not rest.is_empty else polygons_of(dmg)
            area = ground_area(m.geom)
            dmg_a = ground_area(polygons_of(dmg))
            rest_a = ground_area(rest)
            cf = cover_fraction(m.geom, self.cloud_tree)
            truth_rows.append({
                "mine_id": m.mine_id, "name": m.name, "direction": dir_zh[m.direction],
                "direction_key": m.direction, "area_m2": area, "damaged_m2": dmg_a,
                "restored_m2": rest_a, "still_bare_m2": ground_area(still),
                "restoration_rate": rest_a / dmg_a if dmg_a > 0 else 0.0,
                "vegetated_before_m2": ground_area(polygons_of(veg_b)), "water_m2": ground_area(polygons_of(wat_b)),
                "cloud_touched": bool(cf > 0), "cloud_fraction": float(cf),
                "n_parts": int(shapely.get_num_geometries(m.geom)), "has_hole": m.has_hole,
                "invalid_in_source": m.invalid_in_source,
            })
        truth = pd.DataFrame(truth_rows)
        parts = gpd.GeoDataFrame(part_rows, geometry="geometry", crs=SCENE_CRS) if part_rows else \
            gpd.GeoDataFrame({"mine_id": [], "date": [], "material": [], "group": []}, geometry=[], crs=SCENE_CRS)
        return SyntheticScene(
            params=self.p, grid=grid, grid20=g20,
            dates={d: p.sensing_time.date() for d, p in w.products.items()},
            products=dict(w.products), mines=mines, mines_source=mines_source, reserves=reserves,
            encroachments=enc, clouds=clouds, nodata=nodata, restoration_truth=truth,
            mine_parts=parts, drone_mine_id=self.drone_mine, _world=w, tricks=w.tricks,
        )
