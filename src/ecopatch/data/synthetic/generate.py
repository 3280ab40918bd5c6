"""The front doors of the generator: :func:`make_scene` and :func:`make_drone`."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from affine import Affine

from ecopatch.data.synthetic.build import Builder
from ecopatch.data.synthetic.materials import NOISE_SIGMA, RES_M, SCENE_CRS, SNAP_M, TILE_ORIGIN_XY
from ecopatch.data.synthetic.noise import Noise
from ecopatch.data.synthetic.render import render_drone_block
from ecopatch.data.synthetic.scene import DroneOrtho
from ecopatch.data.synthetic.world import SceneParams, World
from ecopatch.errors import ConfigError, InputDataError
from ecopatch.geo.geodesy import as_crs, transformer
from ecopatch.geo.grid import Grid, Window

if TYPE_CHECKING:  # pragma: no cover
    from ecopatch.data.synthetic.scene import SyntheticScene


# ---------------------------------------------------------------------------
# Scene construction
# ---------------------------------------------------------------------------


def _scene_grid(shape: tuple[int, int], center_lonlat: tuple[float, float]) -> Grid:
    rows, cols = (int(v) for v in shape)
    if rows < 8 or cols < 8:
        raise ConfigError(f"scene shape must be at least 8 × 8 pixels, got {shape}")
    x, y = transformer("EPSG:4326", SCENE_CRS).transform(*center_lonlat)
    ox, oy = TILE_ORIGIN_XY
    left = ox + round((x - cols * RES_M / 2 - ox) / SNAP_M) * SNAP_M
    top = oy + round((y + rows * RES_M / 2 - oy) / SNAP_M) * SNAP_M
    return Grid((rows, cols), Affine(RES_M, 0, left, 0, -RES_M, top), as_crs(SCENE_CRS))


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
    :mod:`ecopatch.data.synthetic.tricks`); left at their defaults the scene is
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
        a :class:`~ecopatch.data.synthetic.tricks.Rendering` (sensor and CRS).
        Rendered by :func:`ecopatch.data.synthetic.render_product`, written by
        :func:`ecopatch.data.datasets.write_scene`.

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
    area_km2 = rows * cols * RES_M * RES_M / 1e6
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
    sigma = tuple(float(s) for s in (noise_sigma if noise_sigma is not None else NOISE_SIGMA))
    if len(sigma) != 6 or any(s < 0 for s in sigma):
        raise ConfigError(f"noise_sigma needs 6 non-negative values (B02 … B12), got {sigma}")

    world = World(grid, seed_i)
    rng = np.random.default_rng(seed_i)
    lft, b, r, t = grid.bounds
    # Valley level: the 28th percentile of the raw terrain over the scene.
    xs = np.linspace(lft, r, 60)
    ys = np.linspace(t, b, 60)
    world.valley_level = float(np.percentile(world.dem_raw_grid(xs, ys), 28))
    if nodata_edge:
        slope = 0.02
        world.nodata["before"] = (r - 40.0, slope, t)

    lon, lat = center_lonlat
    params = SceneParams(seed_i, (rows, cols), (lon, lat), n_m, n_r, n_e, n_d, n_c,
                         world.valley_level, sigma, bool(nodata_edge))
    trick_opts = dict(dates=dates, history=history, seasonal_cropland=seasonal_cropland,
                      brightness_changes=brightness_changes, haze=haze, sensors=sensors)
    from ecopatch.data.synthetic import tricks

    wanted = tricks.wanted(trick_opts)  # checked before the (slow) build
    builder = Builder(world, rng, params)
    builder.build()
    if wanted is not None:
        # after everything else is placed, from its own random stream: the plain scene is untouched
        world.tricks = tricks.build(world, builder, wanted)
    world.freeze()
    return builder.result()


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
    tr = transformer(SCENE_CRS, crs)
    inv = transformer(crs, SCENE_CRS)

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
    noise = Noise(scene.seed + 7)
    for r0 in range(0, nrows, step):
        for c0 in range(0, cols, step):
            win = Window(row_off=r0, col_off=c0, height=min(step, nrows - r0), width=min(step, cols - c0))
            sub = grid.subgrid(win)
            rgb[:, win.slices[0], win.slices[1]], alpha[win.slices] = render_drone_block(
                world, sub, shapes, flight, noise, inv)
    return DroneOrtho(rgb=rgb, alpha=alpha, grid=grid, mine_id=str(mid), date=date, flight_area=flight)
