"""Restored area and restoration rate of each abandoned mine (废弃矿山) between two dates.

For each mine polygon, from a ``before`` and an ``after`` scene:

- ``damaged_m2``: ground that was bare or built (not vegetated, not water)
  at ``before``;
- ``restored_m2``: damaged at ``before`` and vegetated at ``after``;
- ``still_bare_m2 = damaged_m2 - restored_m2``;
- ``restoration_rate = restored_m2 / damaged_m2`` (NaN when nothing was
  damaged);
- ``degraded_m2``: vegetated at ``before`` and no longer at ``after``
  (vegetation lost inside the mine, 退化);
- mean fractional vegetation cover (FVC) at both dates, the share of the
  mine observed at both dates (clouds and no data excluded), and a status
  per the mine's restoration direction (宜林/宜草/宜耕/宜灌/宜荒) that sees
  losses (:class:`StatusRules`).

``before`` is the mine's *reference*: the state before restoration began
(一矿一策), not the previous date.  A scheduled run keeps one reference per
mine and a history per mine (:mod:`ecopatch.analyses.trajectory`,
:meth:`ecopatch.Ledger.mine_history`).

How the areas are counted (:func:`assess_restoration`, Notes): cover
fractions (:mod:`ecopatch.compute.cover`) are computed at each scene's own
resolution and area-averaged onto one analysis grid; each cell's true ground
area (m²) is weighted by the exact share of the cell inside the mine; at the
mine's edge, the part of a mixed cell that lies outside the mine is given
the composition of the neighbouring cells outside (*edge unmixing*), so a
cell that is one third quarry and two thirds forest, on a mine boundary that
cuts it one third inside, counts as fully damaged inside.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import shapely

from ecopatch.compute.cover import (
    CoverParams,
    cover_fractions,
    estimate_canopy_spectrum,
    estimate_endmembers,
    otsu_threshold,
)
from ecopatch.compute.inside import MINE_SUMS, mine_sums
from ecopatch.compute.zonal import coverage_windows
from ecopatch.engine.tiling import (
    PatchSums,
    Scheduler,
    WindowPass,
    add_partials,
    blocks_touching,
    run_passes,
    set_back,
)
from ecopatch.errors import ConfigError, InputDataError, LowCoverageWarning, NoOverlapError, caller_stacklevel
from ecopatch.geo.geodesy import as_crs, geodesic_area_m2, geometries_in, repaired
from ecopatch.geo.grid import Grid, Window
from ecopatch.geo.units import m2_to_mu
from ecopatch.options import WINDOWS, AssessOptions, resolve_options
from ecopatch.raster.ongrid import read_on_grid, read_pair
from ecopatch.raster.source import (
    Observation,
    RasterSource,
    SourceLike,
    as_source,
    check_pair,
    plan_pass_reads,
    read_reach_px,
    read_sample,
    reads_outside_a_pass,
)
from ecopatch.vocabulary import ALERT_ZH, MINE_STATUS_ZH, RESTORATION_DIRECTIONS

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = [
    "StatusRules",
    "analysis_grid",
    "apply_status",
    "assess_restoration",
    "prepare_cover_params",
]

log = logging.getLogger(__name__)

_DIRECTION_ALIASES = {v: k for k, v in RESTORATION_DIRECTIONS.items()}
_DIRECTION_ALIASES.update({k: k for k in RESTORATION_DIRECTIONS})
_DIRECTION_ALIASES.update({"宜林则林": "forest", "宜草则草": "grass", "宜耕则耕": "cropland",
                           "宜灌则灌": "shrub", "宜荒则荒": "natural", "林": "forest", "草": "grass",
                           "耕": "cropland", "灌": "shrub", "荒": "natural"})


@dataclass(frozen=True)
class StatusRules:
    """When a mine counts as restored, in progress, not started, degraded or stalled.

    A mine is ``insufficient_data`` when less than ``min_valid_fraction`` of
    its area was observed at both dates.  Otherwise it is ``degraded`` (退化)
    when its vegetated area has *fallen* since the reference by at least the
    loss threshold (below); ``restored`` when its restoration rate reaches
    ``done_rate[direction]`` and its mean FVC after reaches
    ``min_fvc[direction]`` (or when less than ``min_damaged_fraction`` of it
    was damaged to begin with, and its FVC after reaches the same bar);
    ``in_progress`` when the rate reaches ``start_rate``; ``not_started``
    otherwise.  With its history (:func:`ecopatch.analyses.trajectory.mine_status`),
    an ``in_progress`` mine whose restoration rate has moved less than
    ``stall_tolerance`` over its last ``stall_after`` observations, spanning
    at least ``stall_min_days``, is ``stalled`` (停滞).

    The **loss threshold** of a mine is ``max(max_loss[direction] ×
    observed area, min_loss_m2)``.  Vegetation lost since the reference
    (``degraded_m2``) at or above it raises the ``degradation`` alert (退化)
    even when restoration elsewhere in the mine outweighs it; a fall of the
    vegetated area since the previous observation at or above it raises the
    ``rebound`` alert (反弹).

    Where the numbers come from:

    - ``done_rate``: common practice for acceptance of restored mines:
      forest, shrub and grass need 85 % of the damaged ground vegetated;
      cropland 60 % (fields may be bare between crops); left-natural (宜荒)
      sites 30 %, since rock faces stay.  ``min_fvc``: the lower bound of the
      "medium cover" grade (FVC 0.45-0.60) for shrub and grass, a little
      more (0.50) for forest, less for cropland (0.30) and left-natural
      sites (0.20).
    - ``max_loss``: measured on real Sentinel-2 imagery of ground that did
      not change (eo-learn's Slovenia patch: NDVI and s2cloudless masks of
      2015-2017; 26 forest, grassland and shrubland polygons of 0.2-34 ha;
      vegetated share by this module's FVC rule; 1 431 pairs of growing-season
      dates of different years within 45 days of each other;
      ``tests/test_realdata_loss.py``): the share of a polygon that loses
      vegetation is at most 1.1 % (forest), 0.4 % (grassland) and 0 %
      (shrubland) in 95 % of the pairs; 2.0 %, 0.6 % and 1.9 % of the pairs
      reach 5 %, all of them pairs with 2017-09-28, a partly cloudy date
      (7.5 % of the patch flagged, the lowest median NDVI of the growing
      seasons).  Hence 5 % for forest and shrub.  Grass on
      restored spoil is sparse and follows the rain: 10 %.  Left-natural
      sites: 10 %, for the same reason.  Cropland is harvested and ploughed:
      a field can lose all its cover between two dates of the same season,
      so only a loss beyond 30 % of the mine counts.
    - ``min_loss_m2`` = 400 m²: the usual minimum mapping unit of provincial
      land surveys (200-600 m²), the default of :func:`ecopatch.detect_changes`
      in core zones.
    - ``stall_tolerance`` = 0.02: two observations of the same ground differ
      by up to 1.0 point of restoration rate on the sample (9 re-observations
      with fresh noise and radiometric differences,
      ``benchmarks/bench_restoration_history.py``), so a smaller move is no
      move.  ``stall_after`` = 3 observations and
      ``stall_min_days`` = 180, so that a winter without growth between
      monthly scenes is not called a stall.

    Override any of them per direction (``[assessment.max_loss]`` in a run
    configuration).
    """

    done_rate: Mapping[str, float] = field(default_factory=lambda: {
        "forest": 0.85, "shrub": 0.85, "grass": 0.85, "cropland": 0.60, "natural": 0.30,
    })
    min_fvc: Mapping[str, float] = field(default_factory=lambda: {
        "forest": 0.50, "shrub": 0.45, "grass": 0.45, "cropland": 0.30, "natural": 0.20,
    })
    start_rate: float = 0.05
    min_valid_fraction: float = 0.70
    min_damaged_fraction: float = 0.01
    default_direction: str = "forest"
    max_loss: Mapping[str, float] = field(default_factory=lambda: {
        "forest": 0.05, "shrub": 0.05, "grass": 0.10, "cropland": 0.30, "natural": 0.10,
    })
    min_loss_m2: float = 400.0
    stall_after: int = 3
    stall_tolerance: float = 0.02
    stall_min_days: int = 180

    def __post_init__(self) -> None:
        for name in ("done_rate", "min_fvc", "max_loss"):
            table = dict(getattr(self, name))
            unknown = set(table) - set(RESTORATION_DIRECTIONS)
            if unknown:
                raise ConfigError(
                    f"StatusRules.{name}: unknown direction(s) {sorted(unknown)}; "
                    f"use {sorted(RESTORATION_DIRECTIONS)}"
                )
            defaults = cast("Callable[[], Mapping[str, float]]", StatusRules.__dataclass_fields__[name].default_factory)
            full = dict(defaults())
            full.update(table)
            object.__setattr__(self, name, full)
        if self.default_direction not in RESTORATION_DIRECTIONS:
            raise ConfigError(f"default_direction={self.default_direction!r}; use {sorted(RESTORATION_DIRECTIONS)}")
        if not self.min_loss_m2 >= 0:
            raise ConfigError(f"StatusRules.min_loss_m2={self.min_loss_m2!r}: give an area >= 0 m²")
        if int(self.stall_after) != self.stall_after or self.stall_after < 2:
            raise ConfigError(f"StatusRules.stall_after={self.stall_after!r}: give a whole number of "
                              "observations >= 2")
        if not 0.0 <= self.stall_tolerance <= 1.0:
            raise ConfigError(f"StatusRules.stall_tolerance={self.stall_tolerance!r}: give a restoration-rate "
                              "change in [0, 1]")
        if int(self.stall_min_days) != self.stall_min_days or self.stall_min_days < 0:
            raise ConfigError(f"StatusRules.stall_min_days={self.stall_min_days!r}: give a whole number of days >= 0")

    def loss_threshold_m2(self, observed_m2: float, direction: str) -> float:
        """Vegetation loss (m²) that raises an alert in a mine of ``observed_m2`` observed (see the class)."""
        return max(self.max_loss[direction] * float(observed_m2), self.min_loss_m2)

    def status(self, rate: float, fvc_after: float, valid_fraction: float, damaged_fraction: float,
               direction: str, *, net_loss_m2: float = 0.0, observed_m2: float = 0.0) -> str:
        """The status of one mine at one date (see the class docstring).

        ``net_loss_m2`` is the fall of the vegetated area since the reference
        (m², positive for a loss), over ``observed_m2`` (m²) observed at both
        dates; without them no mine is ``degraded``.
        """
        if not valid_fraction >= self.min_valid_fraction:
            return "insufficient_data"
        if observed_m2 > 0 and net_loss_m2 >= self.loss_threshold_m2(observed_m2, direction):
            return "degraded"
        bar_fvc = self.min_fvc[direction]
        if damaged_fraction < self.min_damaged_fraction:
            return "restored" if fvc_after >= bar_fvc else "not_started"
        if rate >= self.done_rate[direction] and fvc_after >= bar_fvc:
            return "restored"
        if rate >= self.start_rate:
            return "in_progress"
        return "not_started"


def canonical_direction(value: Any, default: str) -> str:
    """Map a restoration direction as users write it (宜林, 宜林则林, forest) to its key."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    key = str(value).strip()
    d = _DIRECTION_ALIASES.get(key) or _DIRECTION_ALIASES.get(key.lower())
    if d is None:
        raise InputDataError(
            f"restoration direction {value!r} is not one of {sorted(set(_DIRECTION_ALIASES))}; "
            "fix the value in the mines layer"
        )
    return d


# ---------------------------------------------------------------------------
# Grids and parameters
# ---------------------------------------------------------------------------
def _ground_res_m(grid: Grid) -> float:
    """Approximate pixel size on the ground, m (for choosing the coarser grid)."""
    if grid.is_geographic:
        lat = (grid.bounds[1] + grid.bounds[3]) / 2
        return grid.res[0] * 111_320.0 * math.cos(math.radians(lat))
    info = grid.crs.axis_info
    return grid.res[0] * (info[0].unit_conversion_factor if info else 1.0)


def analysis_grid(before: RasterSource, after: RasterSource, grid: Grid | None = None) -> Grid:
    """The grid both dates are compared on: ``grid`` if given, else the coarser scene's grid.

    Comparing on the coarser grid means the finer image (a drone mosaic, a
    GF-2 scene) is area-averaged, never invented by interpolation.
    """
    if grid is not None:
        return grid
    return before.grid if _ground_res_m(before.grid) >= _ground_res_m(after.grid) else after.grid


def prepare_cover_params(
    scene: RasterSource,
    params: CoverParams | None,
    *,
    max_pixels: int = 1_000_000,
) -> CoverParams:
    """Cover parameters with scene-specific values filled in (FVC end-members, canopy spectrum, Otsu).

    The values are estimated once per scene from a decimated read of the
    **whole scene** (at most ``max_pixels``, through overviews), so every
    window uses the same ones, the result does not depend on how the raster
    is split into windows, and a mine's figures do not depend on which other
    mines are assessed with it.
    """
    p = params or CoverParams()
    rgb = "nir" not in scene.bands
    scene.require(("red", "green", "blue") if rgb else ("red", "nir"), "vegetation cover")
    need_em = not rgb and (p.ndvi_soil is None or p.ndvi_veg is None)
    need_otsu = p.thresholds == "otsu" and p.veg_threshold is None
    if not (need_em or need_otsu):
        return p
    memo = _SCENE_ESTIMATES.get()
    key = (id(scene), p, max_pixels)
    try:
        hash(key)
    except TypeError:  # parameters holding a list or an array: estimated afresh
        memo = None
    if memo is not None and key in memo and memo[key][0] is scene:
        return memo[key][1]
    est = _estimate_cover_params(scene, p, rgb, need_em, need_otsu, max_pixels)
    if memo is not None:
        memo[key] = (scene, est)  # the scene is held, so its id is not reused while the memo lives
    return est


def _both_cover_params(before: RasterSource, p_before: CoverParams | None, after: RasterSource,
                       p_after: CoverParams | None) -> tuple[CoverParams, CoverParams]:
    """:func:`prepare_cover_params` of both dates, the after date's in a second thread where two cores are free.

    Each samples its whole scene (a decimated read): on files without
    overviews whose blocks are large, a few seconds of decoding each (a
    7-band stack tiled 2048: 1.4 s a date), which GDAL does without the
    GIL.  The worker runs in a copy of the caller's context, so it shares
    :func:`shared_scene_estimates`'s memo and the caller's scoped settings.
    """
    if (os.cpu_count() or 1) < 2 or before is after:
        return prepare_cover_params(before, p_before), prepare_cover_params(after, p_after)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="ecopatch-cover") as ex:
        job = ex.submit(contextvars.copy_context().run, prepare_cover_params, after, p_after)
        try:
            got_before = prepare_cover_params(before, p_before)
        except BaseException:
            job.cancel()
            raise
        return got_before, job.result()


#: (id(scene), params, max_pixels) -> (scene, estimated params), inside :func:`shared_scene_estimates`.
_SCENE_ESTIMATES: ContextVar[dict[tuple[Any, ...], tuple[RasterSource, CoverParams]] | None] = ContextVar(
    "ecopatch_scene_estimates", default=None)


@contextmanager
def shared_scene_estimates() -> Iterator[None]:
    """Within the block, :func:`prepare_cover_params` samples each scene once per set of parameters.

    For jobs set up together on the same scenes (assessment and detection
    both estimate the before scene's end-members from the same sample).
    Only for the block: a later call reads the files again, in case they
    changed.
    """
    token = _SCENE_ESTIMATES.set({})
    try:
        yield
    finally:
        _SCENE_ESTIMATES.reset(token)


def _estimate_cover_params(scene: RasterSource, p: CoverParams, rgb: bool, need_em: bool, need_otsu: bool,
                           max_pixels: int) -> CoverParams:
    want = [b for b in ("blue", "red", "nir", "swir1") if b in scene.bands] if not rgb else ["red", "green", "blue"]
    obs = read_sample(scene, max_pixels=max_pixels, bands=want)
    if not obs.valid.any():
        from ecopatch.errors import NoValidPixelsError

        raise NoValidPixelsError(
            f"{scene.source}: no usable pixel in the {scene.label} scene (all no data or cloud); use "
            "another date, or check the nodata/offset settings"
        )
    if rgb:
        from ecopatch.compute.indices import exg

        idx = exg(obs["red"], obs["green"], obs["blue"])
    else:
        from ecopatch.compute.indices import ndvi

        idx = ndvi(obs["nir"], obs["red"])
    if need_em:
        p = p.with_endmembers(*estimate_endmembers(idx))
        if p.veg_spectrum is None and p.ndvi_veg is not None:
            from dataclasses import replace as _replace

            p = _replace(p, veg_spectrum=estimate_canopy_spectrum(obs.bands, p.ndvi_veg))
    if need_otsu:
        from dataclasses import replace

        p = replace(p, veg_threshold=otsu_threshold(idx))
    log.info("cover parameters for %s: %s", scene.label, p)
    return p


# ---------------------------------------------------------------------------
# The per-block computation
# ---------------------------------------------------------------------------
_PARTITION = ("veg", "bare", "built", "water")
#: Cells of context read around each block and each mine: 1 for edge unmixing
#: plus 2 for the 5 × 5 local end-members.
_HALO = 3


@dataclass(frozen=True)
class _BlockTask:
    before: RasterSource
    after: RasterSource
    grid: Grid
    window: Window
    params_before: CoverParams
    params_after: CoverParams
    geometries: tuple[Any, ...]
    index: np.ndarray
    edge: str
    max_source_px: int


class _Deriver:
    """Picklable ``derive`` callable: cover fractions of an observation."""

    def __init__(self, params: CoverParams, source: str) -> None:
        self.params = params
        self.source = source

    def __call__(self, obs: Observation) -> dict[str, np.ndarray]:
        f = cover_fractions(obs.bands, self.params, source=self.source)
        return {k: f[k] for k in (*_PARTITION, "fvc")}


def _mine_windows(task: _BlockTask) -> list[Window | None]:
    """Per mine: its bounding box plus the context it needs, within this block and its halo."""
    padded = task.window.pad(_HALO)
    out: list[Window | None] = []
    for geom in task.geometries:
        mwin = task.grid.window_from_bounds(geom.bounds, pad=_HALO, clip=True)
        out.append(mwin.intersection(padded) if mwin is not None else None)
    return out


def _reads(task: _BlockTask, wins: list[Window | None]) -> list[Window]:
    """The windows to read: one around all the block's mines, or one per mine when they are scattered.

    Only the cells around the mines are read, not the whole block: 1000 mines on a full tile
    cover a few per cent of it.
    """
    present = [w for w in wins if w is not None]
    if not present:
        return []
    union = present[0]
    for w in present[1:]:
        union = union.union(w)
    if union.height * union.width <= 2 * sum(w.height * w.width for w in present):
        return [union]
    return present


def _assess_block(task: _BlockTask) -> PatchSums:
    wins = _mine_windows(task)
    rows = np.zeros((len(task.index), len(MINE_SUMS)))
    present = {j: w for j, w in enumerate(wins) if w is not None}
    # every mine's coverage in one go: one call per mine cost more than the rest of its sums
    # (repaired once before the pass, by assessment_pass: not checked again in every window)
    covs: dict[int, np.ndarray] = dict(zip(present, coverage_windows(
        [task.geometries[j] for j in present], task.grid, list(present.values()), on_invalid="ignore")))
    for read in _reads(task, wins):
        members = [j for j, w in enumerate(wins) if w is not None and read.intersection(w) == w]
        rows[members] = _assess_window(task, read, [(j, covs[j], w) for j in members
                                                    if (w := wins[j]) is not None])
    return PatchSums(task.index, rows)


def _assess_window(task: _BlockTask, padded: Window, mines: list[tuple[int, np.ndarray, Window]]) -> np.ndarray:
    """Per-mine sums (rows in ``mines`` order) from one read of ``padded``.

    ``mines`` holds, per mine, its position in the task, its coverage of its
    window's cells (:func:`ecopatch.compute.zonal.coverage_windows`) and that window.
    """
    grid, win = task.grid, task.window
    lb, la = read_pair(
        lambda: read_on_grid(task.before, grid, padded, derive=_Deriver(task.params_before, task.before.source),
                             max_source_px=task.max_source_px),
        lambda: read_on_grid(task.after, grid, padded, derive=_Deriver(task.params_after, task.after.source),
                             max_source_px=task.max_source_px))
    area = grid.cell_area_m2(padded)
    valid_b = np.isfinite(lb["veg"])
    valid_a = np.isfinite(la["veg"])
    both = valid_b & valid_a
    rows = np.zeros((len(mines), len(MINE_SUMS)))
    for j, (_, cov, mwin) in enumerate(mines):
        # only cells of this block's core count (the halo belongs to neighbours)
        inner = mwin.intersection(win)
        if inner is None or not cov.any():
            continue
        # "entirely inside" must not depend on float rounding of the clip window
        cov[cov > 1.0 - 1e-9] = 1.0
        rows[j] = mine_sums(cov, both, mwin.relative_to(padded), lb, la, area, inner.relative_to(mwin), task.edge,
                            task.params_before, task.params_after)
    return rows


# ---------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------
_A = AssessOptions()  # the defaults of assess_restoration's keywords


def assess_restoration(
    before: SourceLike,
    after: SourceLike,
    mines: gpd.GeoDataFrame,
    *,
    options: AssessOptions | None = None,
    direction_field: str | None = _A.direction_field,
    cover: CoverParams | None = _A.cover,
    cover_before: CoverParams | None = _A.cover_before,
    cover_after: CoverParams | None = _A.cover_after,
    rules: StatusRules | None = _A.rules,
    edge: str = _A.edge,
    target_year_field: str | None = _A.target_year_field,
    target_rate_field: str | None = _A.target_rate_field,
    grid: Grid | None = None,
    block: int | None = None,
    scheduler: Scheduler = None,
    progress: bool | None = None,
    max_source_px: int = WINDOWS.max_source_px,
    swap_dates: bool = False,
) -> gpd.GeoDataFrame:
    """Restoration of each mine between two dates: damaged, restored and still-bare areas.

    Parameters
    ----------
    before, after : RasterSource, path, xarray object or open rasterio dataset
        Imagery of the two dates (any sensors, grids and CRSs; e.g. a
        Sentinel-2 baseline and a drone mosaic now).
    mines : geopandas.GeoDataFrame
        Mine polygons with a unique ``patch_id`` column (see
        :func:`ecopatch.read_patches`), in any CRS.
    options : AssessOptions, optional
        The options below at once (:class:`ecopatch.options.AssessOptions`);
        a keyword given a value other than its default replaces that field.
    direction_field : str or None
        Column holding each mine's restoration direction (宜林, 宜草, 宜耕,
        宜灌, 宜荒 or forest/grass/cropland/shrub/natural).  ``"auto"`` looks
        for ``修复方向``, ``direction`` or ``restoration_direction``; None
        uses ``rules.default_direction`` for all.
    cover, cover_before, cover_after : CoverParams, optional
        Cover-rule thresholds (for both dates, or per date).  FVC end-members
        left unset are estimated from each scene.
    rules : StatusRules, optional
        Status thresholds per direction.
    grid : Grid, optional
        Analysis grid; default the coarser of the two scenes' grids.
    edge : {"unmix", "uniform"}
        How a cell cut by the mine boundary is shared (module docstring);
        ``"uniform"`` gives the inside part the cell's average composition.
    block : int, optional
        Window side in pixels of the analysis grid.  Default
        :func:`assessment_block`: 1024 unless a file is striped, else 512.
    scheduler : optional
        Dask scheduler (see :func:`ecopatch.engine.tiling.run_tasks`).
    progress : bool, optional
        Progress bar (default on a terminal).
    max_source_px : int
        Largest number of source pixels read at once (bounds memory for
        drone mosaics).
    swap_dates : bool
        When ``after`` is older than ``before``, swap them instead of raising
        :class:`~ecopatch.errors.DateOrderError` (a mine read backwards comes
        out "restored").
    target_year_field, target_rate_field : str or None
        Columns with the plan's target year (计划完成年份) and target
        restoration rate (目标修复率: 0-1, a percentage such as 85 or
        "85%").  ``"auto"`` looks for the usual names (see
        :data:`TARGET_YEAR_FIELDS`, :data:`TARGET_RATE_FIELDS`); None: no
        plan.  A mine past its target year and short of its target (or, with
        no target rate, not ``restored``) gets the ``behind_plan`` alert.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per mine, in the mines' CRS: ``patch_id``, the mines'
        attributes, ``direction``, ``area_m2`` (geodesic), ``observed_m2``,
        ``damaged_m2``, ``restored_m2``, ``still_bare_m2``,
        ``restoration_rate`` (0-1), ``fvc_before``, ``fvc_after`` (mean FVC,
        0-1, over the observed part), ``veg_before_m2``, ``veg_after_m2``,
        ``water_before_m2``, ``water_after_m2``, ``degraded_m2`` (vegetated
        at before, not at after), ``valid_fraction`` (share observed at both
        dates), ``status`` and ``status_zh`` (see :class:`StatusRules`),
        ``alerts`` and ``alerts_zh`` (comma-separated keys of
        :data:`ecopatch.vocabulary.ALERT_ZH`, "" when none), ``target_year`` and ``target_rate``
        (the plan, when given), ``reference_scene`` (the before scene: the
        mine's reference), ``date_before``, ``date_after``, and every area
        again in mu (``*_mu``).  Areas are true ground areas in m²; they
        cover the observed part only.

    Raises
    ------
    NoOverlapError
        No mine overlaps both scenes.
    CRSError
        The mines have no CRS.
    DateOrderError
        ``after`` is older than ``before`` (and ``swap_dates`` is False).
    InputDataError
        A direction, target year or target rate that cannot be read (the
        message names the mine, the field and the value).

    Notes
    -----
    Per cell (true ground area ``A``, share inside the mine ``w``, cover
    fractions ``veg``, ``bare``, ``built`` at each date):
    damaged = ``A·w·(bare + built)`` at before; restored =
    ``A·w·clip(veg_after - veg_before, 0, bare_before + built_before)``;
    degraded = ``A·w·clip(veg_before - veg_after, 0, veg_before)``.
    Only cells observed at both dates count; ``valid_fraction`` tells how
    much that is.  For edge cells the inside composition comes from edge
    unmixing (``edge="unmix"``), which removes the bias that spreading a
    mixed cell uniformly has for polygons drawn along the damage boundary.
    """
    opts = resolve_options(AssessOptions, options, locals())  # the keywords that differ from their defaults
    p = assessment_pass(before, after, mines, opts, grid=grid, block=block, max_source_px=max_source_px,
                        swap_dates=swap_dates)
    (partials,) = run_passes([p], scheduler=scheduler, progress=progress)
    return p.finish(partials)


def assessment_pass(
    before: SourceLike,
    after: SourceLike,
    mines: gpd.GeoDataFrame,
    options: AssessOptions | None = None,
    *,
    grid: Grid | None = None,
    block: int | None = None,
    max_source_px: int = WINDOWS.max_source_px,
    swap_dates: bool = False,
) -> WindowPass:
    """:func:`assess_restoration` set up, as a pass to run with others (:func:`ecopatch.engine.tiling.run_passes`).

    Parameters are those of :func:`assess_restoration`, the options as one
    :class:`~ecopatch.options.AssessOptions` (default: its defaults).  The
    checks that need no imagery, and the cover parameters, are done here,
    so the errors of :func:`assess_restoration` come from this call; the
    pass's ``finish`` gives its GeoDataFrame.
    """
    import geopandas as gpd

    opts = options if options is not None else AssessOptions()
    if not isinstance(opts, AssessOptions):
        raise ConfigError(f"options={opts!r}: give an ecopatch.options.AssessOptions")
    edge, direction_field = opts.edge, opts.direction_field
    if not isinstance(mines, gpd.GeoDataFrame):
        raise InputDataError("mines must be a GeoDataFrame (read it with ecopatch.read_patches)")
    if "patch_id" not in mines.columns:
        raise InputDataError(
            "mines has no 'patch_id' column; read it with ecopatch.read_patches(path, id_field=...)"
        )
    if mines["patch_id"].duplicated().any():
        from ecopatch.errors import DuplicateIDError

        dups = sorted(set(mines.loc[mines["patch_id"].duplicated(), "patch_id"].astype(str)))
        raise DuplicateIDError(f"mines: patch_id repeats {dups[:10]}; each mine needs its own ID")
    crs = as_crs(mines.crs, what="mines layer")
    before, after = check_pair(as_source(before), as_source(after), swap_dates=swap_dates)
    rules = opts.rules or StatusRules()
    plan_of = mine_plans(mines, target_year_field=opts.target_year_field, target_rate_field=opts.target_rate_field)
    g = analysis_grid(before, after, grid)

    geoms_grid = repaired(geometries_in(mines, g.crs, what="mines layer"))
    _check_overlap(geoms_grid, g.crs, before, after, len(mines))
    # the samples' scattered reads hold GDAL's block cache at a pass's size, not GDAL's default (5 % of
    # the RAM, which kept 0.6 GiB of a 2048²-tiled stack's decoded blocks after each scene's sample)
    with reads_outside_a_pass((before, after)):
        p_b, p_a = _both_cover_params(before, opts.cover_before or opts.cover, after, opts.cover_after or opts.cover)

    block = assessment_block(before, after) if block is None else block
    # windows set back by their halo and the scenes' read reach, so that none decodes a tile of the
    # next stripe (set_back)
    offset = set_back(_HALO, read_reach_px((before, after), g), block)
    plan = blocks_touching(g, geoms_grid, block=block, pad=_HALO, offset=offset)
    if not plan:
        raise NoOverlapError(
            f"none of the {len(mines)} mines overlaps the analysis grid {g!r}; check that the "
            "imagery covers the mines and that both carry the right CRS"
        )
    tasks = [
        _BlockTask(before, after, g, w, p_b, p_a, tuple(geoms_grid[idx]), idx, edge, max_source_px)
        for w, idx in plan
    ]

    def finish(partials: list[PatchSums]) -> gpd.GeoDataFrame:
        sums = add_partials(len(mines), len(MINE_SUMS), partials)
        return _assemble(mines, crs, sums, rules, direction_field, before, after, plan_of)

    return WindowPass("assess", _assess_block, tasks, [w for w, _ in plan], finish,
                      reads=plan_pass_reads((before, after), block=block))


#: Window side of an assessment over files that are not striped, or over arrays, pixels of the analysis grid.
WIDE_BLOCK = 1024


def assessment_block(before: RasterSource, after: RasterSource) -> int:
    """The window side an assessment of the pair takes when none is given, pixels of the analysis grid.

    An assessment holds less per pixel than a detection, and each window
    costs a fixed share (its reads around the mines, their rasterising, the
    mines it cuts), so it runs in windows of :data:`WIDE_BLOCK`: on the full
    10980² benchmark pair with 1000 mines (``assess_restoration``, one
    process, 512 then 1024) 13.5 -> 8.7 s in a stack tiled 1024, 3.9 ->
    3.5 s band-interleaved tiled 256, 4.4-4.7 -> 4.1-4.2 s over one file
    per band, and the same tables (sums equal to 1e-14, the order of
    additions differs).  Over striped files the windows keep the shared
    :data:`ecopatch.options.WINDOWS` size: a strip is decoded across the
    whole width, and the rows a window holds grow with it (a 7-band
    pixel-interleaved LZW stack: 0.64 -> 0.82 GiB at 1024).
    """
    from ecopatch.raster.source import striped_sources

    return WINDOWS.block if striped_sources((before, after)) else WIDE_BLOCK


def _check_overlap(geoms: np.ndarray, crs: Any, before: RasterSource, after: RasterSource, n: int) -> None:
    """Raise NoOverlapError naming the scene when no mine touches it."""
    for scene, which in ((before, "before"), (after, "after")):
        fp = scene.grid.footprint_in(crs)
        if not shapely.intersects(geoms, fp).any():
            raise NoOverlapError(
                f"none of the {n} mines overlaps the {which} scene {scene.source} (its extent is "
                f"{tuple(round(v, 6) for v in scene.grid.bounds)} in {scene.grid.crs.to_string()}); "
                "check that the imagery covers the mines and that both carry the right CRS"
            )


def _assemble(mines: gpd.GeoDataFrame, crs: Any, sums: np.ndarray, rules: StatusRules,
              direction_field: str | None, before: RasterSource, after: RasterSource,
              plans: pd.DataFrame) -> gpd.GeoDataFrame:
    import warnings

    s = {k: sums[:, i] for i, k in enumerate(MINE_SUMS)}
    area = geodesic_area_m2(mines.geometry.to_numpy(), crs)
    observed = s["observed"]
    with np.errstate(invalid="ignore", divide="ignore"):
        valid_fraction = np.where(area > 0, np.clip(observed / area, 0, 1), 0.0)
        rate = np.where(s["damaged"] > 0, s["restored"] / s["damaged"], np.nan)
        fvc_b = np.where(observed > 0, s["fvc_before"] / observed, np.nan)
        fvc_a = np.where(observed > 0, s["fvc_after"] / observed, np.nan)
        dam_frac = np.where(observed > 0, s["damaged"] / observed, 0.0)
    field_name = _direction_field(mines, direction_field)
    if field_name is None:
        directions = [rules.default_direction] * len(mines)
    else:
        directions = [canonical_direction(v, rules.default_direction) for v in mines[field_name]]
    net_loss = s["veg_before"] - s["veg_after"]
    status = [
        rules.status(float(r), float(fa), float(vf), float(df), d, net_loss_m2=float(nl), observed_m2=float(ob))
        for r, fa, vf, df, d, nl, ob in zip(rate, fvc_a, valid_fraction, dam_frac, directions, net_loss, observed)
    ]
    out = mines.copy()
    cols: dict[str, Any] = {
        "direction": directions,
        "area_m2": area,
        "observed_m2": observed,
        "damaged_m2": s["damaged"],
        "restored_m2": s["restored"],
        "still_bare_m2": np.maximum(s["damaged"] - s["restored"], 0.0),
        "restoration_rate": rate,
        "fvc_before": fvc_b,
        "fvc_after": fvc_a,
        "veg_before_m2": s["veg_before"],
        "veg_after_m2": s["veg_after"],
        "water_before_m2": s["water_before"],
        "water_after_m2": s["water_after"],
        "degraded_m2": s["lost"],
        "valid_fraction": valid_fraction,
        "status": status,
        "status_zh": [MINE_STATUS_ZH[x] for x in status],
        "alerts": "",
        "alerts_zh": "",
        "target_year": plans["target_year"].to_numpy(),
        "target_rate": plans["target_rate"].to_numpy(),
        "reference_scene": scene_name(before),
        "date_before": before.date.isoformat() if before.date else None,
        "date_after": after.date.isoformat() if after.date else None,
    }
    for k, v in cols.items():
        out[k] = v
    for k in ("area", "observed", "damaged", "restored", "still_bare", "degraded"):
        out[f"{k}_mu"] = m2_to_mu(np.asarray(out[f"{k}_m2"], dtype=float))
    out = set_alerts(out, rules)
    low = out.loc[out["status"] == "insufficient_data", "patch_id"].tolist()
    if low:
        warnings.warn(
            f"{len(low)} mine(s) observed on less than {rules.min_valid_fraction:.0%} of their area "
            f"at both dates (cloud, no data or outside the imagery): {low[:10]}",
            LowCoverageWarning,
            stacklevel=caller_stacklevel(),  # the user's line
        )
    geom = out.geometry.name
    order = ["patch_id"] + [c for c in out.columns if c not in ("patch_id", geom)] + [geom]
    return gpd_frame(out[order], crs)


def set_alerts(assessment: pd.DataFrame, rules: StatusRules, *, extra: Mapping[Any, Sequence[str]] | None = None
               ) -> pd.DataFrame:
    """``alerts`` and ``alerts_zh`` of an assessment from its own figures (and ``extra`` alerts per row).

    ``degradation`` when ``degraded_m2`` reaches the mine's loss threshold
    (:meth:`StatusRules.loss_threshold_m2`); ``behind_plan`` when the year of
    ``date_after`` is past ``target_year`` and the mine falls short of
    ``target_rate`` (or, without one, is not ``restored``).  Mines with
    ``insufficient_data`` get no alert from their own figures.  ``extra``
    maps a row label to more alert keys (``rebound``, from the history).

    Returns
    -------
    DataFrame
        A copy with ``alerts`` (comma-separated keys of :data:`ecopatch.vocabulary.ALERT_ZH`, in
        that order) and ``alerts_zh`` (、-separated labels).
    """
    out = assessment.copy()
    keys: list[str] = []
    for label, r in out.iterrows():
        found: set[str] = set((extra or {}).get(label, ()))
        if r["status"] != "insufficient_data":
            d = str(r["direction"])
            if float(r["degraded_m2"]) >= rules.loss_threshold_m2(float(r["observed_m2"]), d):
                found.add("degradation")
            found.update(_behind_plan(r))
        keys.append(",".join(k for k in ALERT_ZH if k in found))
    out["alerts"] = keys
    out["alerts_zh"] = ["、".join(ALERT_ZH[k] for k in v.split(",") if k) for v in keys]
    return out


def _behind_plan(r: pd.Series) -> tuple[str, ...]:
    year, target = r.get("target_year"), r.get("target_rate")
    when = r.get("date_after")
    if year is None or pd.isna(year) or when is None or (isinstance(when, float) and math.isnan(when)):
        return ()
    if _dt.date.fromisoformat(str(when)[:10]).year <= int(year):
        return ()
    if target is not None and not pd.isna(target):
        rate = float(r["restoration_rate"]) if not pd.isna(r["restoration_rate"]) else 0.0
        return ("behind_plan",) if rate < float(target) else ()
    return ("behind_plan",) if r["status"] != "restored" else ()


def scene_name(scene: RasterSource) -> str:
    """A scene's ID: the product name (``.SAFE`` folder without the suffix), or the file stem."""
    from pathlib import PurePath

    name = PurePath(str(scene.source).rstrip("/\\")).name
    if name.upper().endswith(".SAFE"):
        return name[:-5]
    return PurePath(name).stem if "." in name else name


#: Field names searched (in order) for the plan's target year, with ``target_year_field="auto"``.
TARGET_YEAR_FIELDS = ("计划完成年份", "目标年份", "治理完成年份", "计划完成时间", "target_year", "planned_year")
#: Field names searched (in order) for the plan's target restoration rate.
TARGET_RATE_FIELDS = ("目标修复率", "修复目标", "目标修复比例", "target_rate", "target_restoration_rate")


def mine_plans(mines: pd.DataFrame, *, target_year_field: str | None = "auto",
               target_rate_field: str | None = "auto") -> pd.DataFrame:
    """Each mine's plan: ``target_year`` (int, or NA) and ``target_rate`` (0-1, or NaN).

    Parameters
    ----------
    mines : DataFrame
        The mines layer.
    target_year_field, target_rate_field : str or None
        Field names, ``"auto"`` (:data:`TARGET_YEAR_FIELDS`,
        :data:`TARGET_RATE_FIELDS`) or None.

    Returns
    -------
    DataFrame
        Same index as ``mines``; year as pandas ``Int64``.

    Raises
    ------
    InputDataError
        A named field that is missing, or a value that is not a year
        (1900-2200, e.g. ``2026``, ``"2026年"``, a date) or a rate (0-1, a
        percentage 1-100, ``"85%"``); the message names the mine and field.

    Examples
    --------
    >>> import pandas as pd
    >>> m = pd.DataFrame({"patch_id": ["a", "b"], "计划完成年份": ["2026年", None], "目标修复率": ["85%", 0.6]})
    >>> mine_plans(m).to_dict("list")
    {'target_year': [2026, None], 'target_rate': [0.85, 0.6]}
    """
    def field_for(given: str | None, names: Sequence[str], what: str) -> str | None:
        if given is None:
            return None
        if given != "auto":
            if given not in mines.columns:
                fields_ = [c for c in mines.columns if c != getattr(mines, "_geometry_column_name", "")]
                raise InputDataError(f"mines: no field {given!r} for the {what}; the fields are {fields_}")
            return given
        return next((n for n in names if n in mines.columns), None)

    ids = mines["patch_id"] if "patch_id" in mines.columns else pd.Series(mines.index, index=mines.index)
    years: list[Any] = [pd.NA] * len(mines)
    rates = [math.nan] * len(mines)
    fy = field_for(target_year_field, TARGET_YEAR_FIELDS, "target year")
    fr = field_for(target_rate_field, TARGET_RATE_FIELDS, "target restoration rate")
    if fy is not None:
        years = [_year(v, f"mine {pid}: {fy}") for pid, v in zip(ids, mines[fy])]
    if fr is not None:
        rates = [_rate(v, f"mine {pid}: {fr}") for pid, v in zip(ids, mines[fr])]
    return pd.DataFrame({"target_year": pd.array(years, dtype="Int64"), "target_rate": rates}, index=mines.index)


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()) \
        or (not isinstance(v, str) and pd.isna(v))


def _year(v: Any, what: str) -> Any:
    if _blank(v):
        return pd.NA
    if isinstance(v, (_dt.date, pd.Timestamp)):
        return int(v.year)
    text = str(v).strip().removesuffix("年")
    try:
        f = float(text)
    except ValueError:
        try:
            return _dt.date.fromisoformat(text[:10]).year
        except ValueError:
            raise InputDataError(f"{what} = {v!r} is not a year; write it as e.g. 2026") from None
    if not (f.is_integer() and 1900 <= f <= 2200):
        raise InputDataError(f"{what} = {v!r} is not a year (1900-2200); write it as e.g. 2026")
    return int(f)


def _rate(v: Any, what: str) -> float:
    if _blank(v):
        return math.nan
    text = str(v).strip()
    pct = text.endswith(("%", "％"))
    try:
        f = float(text.rstrip("%％").strip())
    except ValueError:
        raise InputDataError(f"{what} = {v!r} is not a rate; write it as 0.85, 85 or 85%") from None
    if pct or f > 1.0:
        f /= 100.0
    if not 0.0 < f <= 1.0:
        raise InputDataError(f"{what} = {v!r} is not a rate in (0, 100 %]")
    return f


def apply_status(assessment: pd.DataFrame, rules: StatusRules) -> pd.DataFrame:
    """The same assessment with ``status`` recomputed under other rules (no imagery is read).

    Parameters
    ----------
    assessment : DataFrame
        From :func:`assess_restoration` (needs ``restoration_rate``,
        ``fvc_after``, ``valid_fraction``, ``damaged_m2``, ``observed_m2``
        and ``direction``).
    rules : StatusRules
        The new thresholds.

    Returns
    -------
    DataFrame
        A copy with ``status`` and ``status_zh`` replaced (and ``alerts``,
        ``alerts_zh`` when the table has ``degraded_m2``).  A mine's history
        is not read: ``stalled`` and ``rebound`` need
        :func:`ecopatch.analyses.trajectory.mine_status`.
    """
    need = {"restoration_rate", "fvc_after", "valid_fraction", "damaged_m2", "observed_m2", "direction"}
    missing = sorted(need - set(assessment.columns))
    if missing:
        raise InputDataError(f"apply_status: the table lacks {missing}; pass the output of assess_restoration")
    out = assessment.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        dam = np.where(out["observed_m2"] > 0, out["damaged_m2"] / out["observed_m2"], 0.0)
    if {"veg_before_m2", "veg_after_m2"} <= set(out.columns):
        net_loss = (out["veg_before_m2"] - out["veg_after_m2"]).to_numpy(dtype=float)
    else:
        net_loss = np.zeros(len(out))
    out["status"] = [
        rules.status(float(r), float(f), float(v), float(d), str(k), net_loss_m2=float(nl), observed_m2=float(ob))
        for r, f, v, d, k, nl, ob in zip(out["restoration_rate"], out["fvc_after"], out["valid_fraction"], dam,
                                         out["direction"], net_loss, out["observed_m2"])
    ]
    out["status_zh"] = [MINE_STATUS_ZH[x] for x in out["status"]]
    if "degraded_m2" in out.columns:
        out = set_alerts(out, rules)
    return out


def gpd_frame(df: pd.DataFrame, crs: Any) -> gpd.GeoDataFrame:
    """A GeoDataFrame with its geometry column set and CRS kept."""
    import geopandas as gpd

    geom = [c for c in df.columns if isinstance(df[c].dtype, gpd.array.GeometryDtype)][-1]
    return gpd.GeoDataFrame(df, geometry=geom, crs=crs)


def _direction_field(mines: pd.DataFrame, direction_field: str | None) -> str | None:
    if direction_field is None:
        return None
    if direction_field != "auto":
        if direction_field not in mines.columns:
            raise InputDataError(
                f"mines: no field {direction_field!r} for the restoration direction; the fields "
                f"are {[c for c in mines.columns if c != mines.geometry.name]}"
            )
        return direction_field
    for cand in ("修复方向", "direction", "restoration_direction", "治理方向"):
        if cand in mines.columns:
            return cand
    return None


def _today() -> _dt.date:  # pragma: no cover - convenience
    return _dt.date.today()
