"""The scene model: parameters, mines, changes and the world (terrain, objects, materials) of a scene."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import LineString, box

from ecopatch.data.synthetic.geometry import polygons_of
from ecopatch.data.synthetic.materials import IS_WATER, MATERIAL_INDEX, N_MATERIALS, PRODUCTS, RENDER_TILE, RES_M
from ecopatch.data.synthetic.noise import Noise
from ecopatch.geo.grid import Grid

if TYPE_CHECKING:  # pragma: no cover
    from ecopatch.data.synthetic.materials import ProductMeta


# ---------------------------------------------------------------------------
# Names (fictional) and attribute vocabularies
# ---------------------------------------------------------------------------

PLACES = (
    "青石坞", "白岩山", "黄泥岭", "石门坎", "狮子岩", "龙坞口", "桃花岭", "茶山湾", "竹林坞", "鹰嘴岩",
    "凤凰岗", "石塘坞", "金鸡岭", "板桥山", "大坞里", "上庄岭", "乌龟山", "马鞍山", "长岭头", "碧水坞",
    "松树岗", "栗山坞", "孤峰岭", "溪口山", "枫树湾", "牛角尖", "天竺岭", "双溪岗", "石壁坞", "云峰岭",
)
MINE_KINDS = ("石矿", "建筑石料矿", "采石场", "石灰岩矿", "砖瓦用黏土矿", "花岗岩矿")
TOWNS = ("青石镇", "白云街道", "云溪镇", "石门街道", "桃源镇", "竹岭镇", "双溪街道", "枫林镇")
RESERVE_NAMES = ("石门岭", "云溪", "白鹭湾", "青峰山", "翠竹岭", "碧湖", "天目坞", "紫霞岭", "凤栖谷",
                  "龙潭岭", "清源山", "松涛岭")
RESERVE_TYPES = (  # type, level, style
    ("自然保护区", "省级", "old"),
    ("湿地公园", "国家级", "new"),
    ("森林公园", "省级", "new"),
    ("自然保护区", "国家级", "old"),
    ("森林公园", "国家级", "new"),
    ("湿地公园", "省级", "new"),
)
ZONES_OLD = (("核心区", 0.42), ("缓冲区", 0.68), ("实验区", 1.0))
ZONES_NEW = (("核心保护区", 0.55), ("一般控制区", 1.0))
def town_unit(town: str) -> str:
    """Fictional responsible unit (人民政府) of a town."""
    return town + ("办事处" if town.endswith("街道") else "人民政府")


DIRECTION_KEYS = ("forest", "grass", "cropland", "shrub", "natural")
DIRECTION_WEIGHTS = (0.45, 0.15, 0.15, 0.15, 0.10)


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
class MineTruth:
    """An abandoned mine as placed: its outline, damaged parts and restoration truth."""

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
class ChangeTruth:
    """An encroachment (or decoy) between the dates: where, and which material before and after."""

    enc_id: str
    change_type: str
    geom: Any
    before: list[tuple[Any, int]]
    after: list[tuple[Any, int]]
    is_decoy: bool
    before_material: str
    after_material: str


class World:
    """Everything a scene is drawn from; built once by :func:`make_scene`, then read-only."""

    def __init__(self, grid: Grid, seed: int) -> None:
        self.grid = grid
        self.seed = seed
        self.noise = Noise(seed)
        lft, b, r, t = grid.bounds
        self.bounds = (lft, b, r, t)
        self.valley_level = 0.0
        self.lines: list[tuple[Any, int]] = []  # roads, tracks (buffered pieces)
        self.objects: list[tuple[Any, int]] = []  # lakes, ponds, buildings
        self.mines: list[MineTruth] = []
        self.changes: list[ChangeTruth] = []
        self.overlays: list[tuple[Any, int]] = []  # after-date clouds (geom, overlay code)
        self.nodata: dict[str, Any] = {"before": None, "after": None}
        self._tile_layers: OrderedDict[tuple[int, int], list[tuple[Any, int]]] = OrderedDict()
        # all tiles are kept while objects are placed (random access); rendering keeps a few
        self._tile_cache_max = 1 << 30
        self._lock = threading.Lock()
        self._trees: dict[str, tuple[Any, list[tuple[Any, int]]]] = {}
        self.products: dict[str, ProductMeta] = dict(PRODUCTS)
        # the world's tricks (ecopatch.data.synthetic.tricks.Tricks) when make_scene was asked for any
        self.tricks: Any = None

    def base_of(self, mat: int) -> int:
        """The material of :data:`MATERIALS` a surface id is made of (trick surfaces have ids past them)."""
        return mat if mat < N_MATERIALS else self.tricks.base_of(mat)

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
        """Raw terrain height (m) on the grid of coordinates ``xs`` × ``ys``."""
        n = self.noise
        return (520.0 * n.grid(xs, ys, 2800.0, 4, 1) + 110.0 * n.grid(xs, ys, 700.0, 3, 2)
                + 25.0 * n.grid(xs, ys, 220.0, 2, 4))

    def dem_raw_points(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Raw terrain height (m) at the points ``(x, y)``."""
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
        """Height above the valley floor (m) at the points ``(x, y)``."""
        return self.dem_raw_points(np.asarray(x, float), np.asarray(y, float)) - self.valley_level

    def shrub_field(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Field whose positive part is shrubland, on the grid ``xs`` × ``ys``."""
        return self.noise.grid(xs, ys, 520.0, 3, 3) - 0.28

    # -- landscape tiles (contour polygons) ----------------------------
    def tile_box(self, ti: int, tj: int) -> tuple[float, float, float, float]:
        """Bounds (m, EPSG:32650) of landscape tile ``(ti, tj)``."""
        lft, _, _, t = self.bounds
        size = RENDER_TILE * RES_M
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
        for fn, mat in ((self.shrub_field, MATERIAL_INDEX["shrub_grass"]),
                        (lambda xs, ys: self.valley_level - self.dem_raw_grid(xs, ys), MATERIAL_INDEX["cropland"])):
            for poly in _contour_polygons(fn, bx, step=20.0):
                out.append((poly, mat))
        with self._lock:
            self._tile_layers[key] = out
            while len(self._tile_layers) > self._tile_cache_max:
                self._tile_layers.popitem(last=False)
        return out

    def tiles_for(self, bounds: tuple[float, float, float, float]) -> list[tuple[int, int]]:
        """The landscape tiles ``(ti, tj)`` that ``bounds`` touches."""
        lft, _, _, t = self.bounds
        size = RENDER_TILE * RES_M
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
        for mat in (MATERIAL_INDEX["shrub_grass"], MATERIAL_INDEX["cropland"]):
            out.extend((g, m) for g, m in tile_items if m == mat and g.intersects(bx))
        src_obj = objects if objects is not None else self._query("objects", bx)
        src_lin = lines if lines is not None else self._query("lines", bx)
        water = [it for it in src_obj if IS_WATER[it[1]]]
        built = [it for it in src_obj if not IS_WATER[it[1]]]
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
            return MATERIAL_INDEX["forest"]
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
    out: list[Any] = []
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
        clipped = polygons_of(shapely.clip_by_rect(world, *bounds))
        out.extend(g for g in shapely.get_parts(clipped) if g.area > 1.0)
    return out
