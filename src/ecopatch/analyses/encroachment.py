"""Sky watch (天上看) in nature reserves: suspect patches (疑似图斑) between two dates.

:func:`detect_changes` compares two scenes over the reserves (and an
optional margin around them) and returns one row per suspect patch with its
outline on pixel edges, true area, change type, confidence, supporting index
values, coordinates, and the reserve and functional zone it lies in.

Method, in order (the reasons and the measurements behind each step are in
``docs/design.md`` and ``benchmarks/RESULTS.md``):

1. **The dates are made comparable** (:func:`ecopatch.analyses.pairing.prepare_pair`):
   clouds and their shadows are masked where the product has no mask
   (:mod:`ecopatch.raster.clouds`); the later date is normalised onto the earlier
   one by a reduced-major-axis fit per band on pseudo-invariant ground
   (neither vegetated nor water at either date); the slowly varying part of
   the difference (haze, illumination, phenology over ~1 km) is measured;
   and the noise of unchanged ground is estimated from a sample of the
   area of interest.
2. **Change that stands out from the scene's own noise**: per pixel, the
   robust z-score of a misregistration-tolerant standardised change vector
   and Mahalanobis distance (:func:`ecopatch.compute.change.change_statistic`).  A
   patch is a connected set of pixels with ``z >= z_grow`` holding a pixel
   with ``z >= z_seed`` (hysteresis), never vegetation or water at both
   dates, and observed at both dates inside the area of interest.
3. **What changed into what**: each date's cover fractions (vegetation,
   bare, built, water) in the normalised space
   (:func:`ecopatch.compute.cover.surface_fractions`); a patch is typed by its
   conversion (:func:`ecopatch.compute.change.patch_type`) and reports its
   ``class_before`` and ``class_after``.  A patch whose cover did not change
   (a pit that stays bare, a roof that stays a roof) is not reported.
4. Connected pixels form patches (exactly the same whether processed whole
   or in windows); holes smaller than the minimum mapping unit are filled;
   outlines are clipped to the area of interest and cut by the exclusion
   layer; patches whose estimated changed area (``change_m2``) is below the
   minimum mapping unit are dropped.
5. Each patch takes the zone of the reserve polygons it overlaps; when it
   crosses zones, **the strictest zone wins** (core > buffer > experimental >
   outside), with the reserve and zone attributes of the polygon of that zone
   it overlaps most.

``confidence`` is the probability that a patch is a real change of its type
(:func:`patch_confidence`), from how far its pixels stand out and its size;
its reliability on labelled scenes is tabulated in ``benchmarks/RESULTS.md``.
When disturbance covers more than ``max_flagged_share`` of a reserve, a
:class:`WidespreadChangeWarning` names the likely causes.
"""

from __future__ import annotations

import datetime as _dt
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely

from ecopatch._warnfilters import filters_guard
from ecopatch.analyses.pairing import PairSetup, SurfaceDeriver, prepare_pair
from ecopatch.analyses.restoration import analysis_grid
from ecopatch.analyses.zones import (
    attach_zones,
    find_field,
    has_core_zone,
    inside_zone,
    meets_unit,
    outside_core_unit,
    zone_observation_table,
)
from ecopatch.compute.change import (
    ChangeParams,
    dominant_class,
    patch_type,
    pixel_change,
    seasonal_envelope,
    water_gain_linear,
)
from ecopatch.compute.change import change_statistic as _change_statistic
from ecopatch.compute.components import STAT_NAMES, BlockComponents, block_components, merge_components
from ecopatch.compute.cover import CoverParams
from ecopatch.compute.zonal import coverage_table, zonal_sums
from ecopatch.engine.tiling import PatchSums, Scheduler, WindowPass, add_partials, blocks_touching, run_passes
from ecopatch.errors import (
    ConfigError,
    EcopatchWarning,
    InputDataError,
    NoOverlapError,
    NoValidPixelsError,
    caller_stacklevel,
)
from ecopatch.geo.geodesy import as_crs, geodesic_area_m2, geometries_in, repaired, transformer
from ecopatch.geo.grid import Grid, Window
from ecopatch.geo.units import m2_to_mu
from ecopatch.options import WINDOWS, DetectOptions, resolve_options
from ecopatch.raster.ongrid import read_on_grid, read_pair
from ecopatch.raster.source import (
    RasterSource,
    SourceLike,
    as_source,
    check_pair,
    decoded_once,
    near_frames,
    plan_pass_reads,
)

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["detect_changes", "geohash", "observation_table"]

log = logging.getLogger(__name__)

_LAYERS = ("ndvi", "mndwi", "bsi", "fvc", "exg")
_SPECTRAL = ("blue", "green", "red", "nir", "swir1", "swir2")


# ---------------------------------------------------------------------------
# Small pure helpers
# ---------------------------------------------------------------------------
_B32 = "0123456789bcdefghjkmnpqrstuvwxyz"


def geohash(lon: float, lat: float, precision: int = 9) -> str:
    """Geohash of a WGS84 point (precision 9 ≈ 5 m cells).

    Examples
    --------
    >>> geohash(119.95, 30.22, 7)
    'wtmhx2u'
    """
    lat_lo, lat_hi, lon_lo, lon_hi = -90.0, 90.0, -180.0, 180.0
    bits, ch, even = 0, 0, True
    out: list[str] = []
    while len(out) < precision:
        if even:
            mid = (lon_lo + lon_hi) / 2
            if lon >= mid:
                ch = (ch << 1) | 1
                lon_lo = mid
            else:
                ch <<= 1
                lon_hi = mid
        else:
            mid = (lat_lo + lat_hi) / 2
            if lat >= mid:
                ch = (ch << 1) | 1
                lat_lo = mid
            else:
                ch <<= 1
                lat_hi = mid
        even = not even
        bits += 1
        if bits == 5:
            out.append(_B32[ch])
            bits, ch = 0, 0
    return "".join(out)


def _metre_buffer(geoms: np.ndarray, crs: Any, distance_m: float) -> np.ndarray:
    """Buffer geometries by a ground distance in metres, whatever their CRS."""
    if distance_m == 0:
        return geoms
    crs = as_crs(crs)
    if not crs.is_geographic:
        unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        return shapely.buffer(geoms, distance_m / unit)
    from pyproj import CRS

    c = shapely.centroid(shapely.union_all(geoms))
    zone = int((c.x + 180) // 6) + 1
    utm = CRS.from_epsg((32600 if c.y >= 0 else 32700) + zone)
    fwd, back = transformer(crs, utm), transformer(utm, crs)
    proj = shapely.transform(geoms, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1])))
    buf = shapely.buffer(proj, distance_m)
    return shapely.transform(buf, lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1])))


# ---------------------------------------------------------------------------
# The per-block computation
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _BlockTask:
    before: RasterSource
    after: RasterSource
    grid: Grid
    window: Window
    setup: _PassSetup
    aoi: tuple[Any, ...] | None  # parts of the area of interest touching this block (grid CRS); None: everywhere
    zones: tuple[Any, ...]  # reserve polygons touching this block (grid CRS)
    zone_index: np.ndarray
    max_source_px: int
    min_area_m2: float = 0.0


@dataclass(frozen=True)
class _PassSetup:
    """What every block of one detection shares (pickled once per task)."""

    derive_before: SurfaceDeriver
    derive_after: SurfaceDeriver
    model: Any
    params: ChangeParams
    bands_before: tuple[str, ...]
    bands_after: tuple[str, ...]
    history: tuple[tuple[RasterSource, SurfaceDeriver, tuple[str, ...]], ...] = ()


@dataclass
class _BlockResult:
    components: BlockComponents
    zone_sums: PatchSums


def _aoi_mask(parts: tuple[Any, ...] | None, g: Grid, win: Window) -> np.ndarray | None:
    """Pixels of ``win`` touched by any of ``parts`` (the area of interest near it); None: all."""
    if parts is None:
        return None
    from rasterio.features import geometry_mask

    sub = g.subgrid(win)
    # cut to the window: its edges then lie on the window's border, where all_touched
    # rasterising flags only pixels inside the part anyway
    clipped = shapely.clip_by_rect(np.asarray(parts, dtype=object), *sub.bounds)
    clipped = clipped[~shapely.is_empty(clipped)]
    if not len(clipped):
        return np.zeros(win.shape, dtype=bool)
    with filters_guard():  # rasterio's rasterising enters catch_warnings (see ecopatch._warnfilters)
        return ~geometry_mask(list(clipped), out_shape=win.shape, transform=sub.transform, all_touched=True)


#: Layers averaged per patch (area-weighted): the cover fractions of both dates, the change
#: statistic and the indices reported with each patch.
_FRACTIONS = ("veg", "bare", "built", "water")
#: Bands averaged per patch for the new-water estimate (:func:`ecopatch.compute.change.water_gain_linear`).
_WATER_BANDS = ("blue", "green", "nir", "swir1")


def _needed(aoi: np.ndarray | None, cov: Any, p1: Window) -> Window:
    """The part of ``p1`` whose pixels can matter: its area-of-interest pixels and zone cells (and one more).

    Outside the area of interest no pixel is flagged or counted in a
    patch's rim, and of the rest only the zones' cells are used (their
    observed area).  The change statistic of a pixel depends on its own
    neighbourhood only (results do not depend on the windows:
    ``test_detect_is_block_invariant``), so computing it on this part alone
    gives the same patches, to the bit; the part is this bounding box
    widened by one pixel, as a margin.  Reserves cover about a tenth of the
    blocks that touch them on the benchmark tile.  ``aoi`` None (no
    reserves): all of ``p1``.
    """
    if aoi is None:
        return p1
    rows, cols = np.nonzero(aoi)
    rows, cols = rows + p1.row_off, cols + p1.col_off
    if cov is not None and len(cov.row):
        rows, cols = np.r_[rows, cov.row], np.r_[cols, cov.col]
    if not len(rows):
        return Window(row_off=p1.row_off, col_off=p1.col_off, height=1, width=1)
    r0, r1 = max(int(rows.min()) - 1, p1.row_off), min(int(rows.max()) + 2, p1.row_end)
    c0, c1 = max(int(cols.min()) - 1, p1.col_off), min(int(cols.max()) + 2, p1.col_end)
    return Window(row_off=r0, col_off=c0, height=r1 - r0, width=c1 - c0)


def _detect_block(task: _BlockTask) -> _BlockResult:
    g, win, st = task.grid, task.window, task.setup
    halo = st.params.halo_px
    # the components need one pixel of context (rims, all_touched area of interest)
    p1 = win.pad(1)
    aoi = _aoi_mask(task.aoi, g, p1)
    cov = coverage_table(list(task.zones), g, window=win) if len(task.zones) else None
    part = _needed(aoi, cov, p1)
    padded = part.pad(halo - 1)
    lb, la = read_pair(
        lambda: read_on_grid(task.before, g, padded, bands=st.bands_before, derive=st.derive_before,
                             max_source_px=task.max_source_px),
        lambda: read_on_grid(task.after, g, padded, bands=st.bands_after, derive=st.derive_after,
                             max_source_px=task.max_source_px))
    bg = st.model.background.at(padded.row_off, padded.col_off, padded.shape) if st.model.background else None
    # exact where it can matter: at and above the lowest threshold used (a patch's rim)
    z = _change_statistic(lb, la, st.model, st.params, background=bg,
                          z_floor=st.params.rim_min * st.params.z_grow)
    t = halo - 1
    inner = (slice(t, padded.height - t), slice(t, padded.width - t))
    at = part.relative_to(p1)
    aoi_part = aoi if aoi is None or part == p1 else aoi[at.slices]
    keys = (*_FRACTIONS, *_WATER_BANDS, *_LAYERS)
    fb = {k: lb[k][inner] for k in keys if k in lb}
    fa = {k: la[k][inner] for k in keys if k in la}
    envelope = None
    if st.history:
        dates = [fb]
        for hs, hd, hbands in st.history:
            lh = read_on_grid(hs, g, part, bands=hbands, derive=hd, max_source_px=task.max_source_px)
            dates.append({k: lh[k] for k in _FRACTIONS})
        envelope = seasonal_envelope(dates)
    change = pixel_change(z[inner], fb, fa, st.params, aoi=aoi_part, envelope=envelope)
    area = g.cell_area_m2(p1)
    assert change.z is not None  # pixel_change keeps the statistic it was given
    # the per-patch layers, on the part (the components read them at changed pixels only)
    layers: dict[str, np.ndarray] = {"z": change.z}
    if change.water_gain is not None:
        layers["water_gain"] = change.water_gain
    if envelope is not None:
        layers["cropland"] = envelope["cropland"]
    # the share-weighted means type a patch by its changed ground, not by the barely changed
    # cells at its edge (which dilute a small patch's plain means)
    w = np.where(change.code > 0, change.share, 0.0).astype(np.float32)
    layers["sw"] = w
    for k in _FRACTIONS:
        layers[f"{k}_before"] = fb[k]
        layers[f"{k}_after"] = fa[k]
        layers[f"sw_{k}_before"] = fb[k] * w
        layers[f"sw_{k}_after"] = fa[k] * w
    for k in ("ndvi",):
        if k in fb and k in fa:
            layers[f"sw_{k}_before"] = fb[k] * w
            layers[f"sw_{k}_after"] = fa[k] * w
    for k in (*_LAYERS, *_WATER_BANDS):
        if k in fb and k in fa:
            layers[f"{k}_before"] = fb[k]
            layers[f"{k}_after"] = fa[k]
    change = change.on_block(at, p1.shape)
    comps = block_components(change, win, area, layers, halo=1, min_area_m2=task.min_area_m2,
                             layers_at=None if at.shape == p1.shape else at)
    if cov is not None:
        obs = np.where(change.observed[1:-1, 1:-1], 1.0, np.nan)
        sums = zonal_sums(cov, {"all": np.ones(win.shape), "obs": obs}, window=win, weights=area[1:-1, 1:-1])
        zs = PatchSums(task.zone_index, np.column_stack([sums["sum_all"], sums["sum_obs"]])[: len(task.zones)])
    else:
        zs = PatchSums(np.zeros(0, dtype=np.int64), np.zeros((0, 2)))
    return _BlockResult(comps, zs)


# ---------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------
_D = DetectOptions()  # the defaults of detect_changes' keywords


def detect_changes(
    before: SourceLike,
    after: SourceLike,
    reserves: gpd.GeoDataFrame | None = None,
    *,
    options: DetectOptions | None = None,
    min_area_m2: float | str | None = _D.min_area_m2,
    min_area_mu: float | None = _D.min_area_mu,
    core_min_area_m2: float | None = _D.core_min_area_m2,
    margin_m: float = _D.margin_m,
    zone_field: str | None = _D.zone_field,
    name_field: str | None = _D.name_field,
    params: ChangeParams | None = _D.params,
    cover: CoverParams | None = _D.cover,
    normalize: str = _D.normalize,
    clouds: str = _D.clouds,
    include_gain: bool = _D.include_gain,
    max_flagged_share: float = _D.max_flagged_share,
    simplify_m: float = _D.simplify_m,
    exclude: gpd.GeoDataFrame | None = None,
    history: Sequence[SourceLike] | None = None,
    grid: Grid | None = None,
    block: int = WINDOWS.block,
    scheduler: Scheduler = None,
    progress: bool | None = None,
    max_source_px: int = WINDOWS.max_source_px,
    swap_dates: bool = False,
    observations: list[pd.DataFrame] | None = None,
) -> gpd.GeoDataFrame:
    """Find new disturbance between two dates, as suspect patches with type, zone and confidence.

    Parameters
    ----------
    before, after : RasterSource, path, xarray object or open rasterio dataset
        Imagery of the two dates (any sensors, grids and CRSs; a drone
        mosaic as ``after`` works).
    reserves : geopandas.GeoDataFrame, optional
        Reserve / zone polygons; only change inside them (plus ``margin_m``)
        is reported, with their attributes.  Default: everywhere both scenes
        see.
    options : DetectOptions, optional
        All the options below at once (:class:`ecopatch.options.DetectOptions`);
        a keyword given a value other than its default replaces that field.
    min_area_m2, min_area_mu : float, optional
        Minimum mapping unit, m² or mu (亩, overrides m²): a patch's outline
        covers at least this, and at least half of it is estimated changed
        (``change_m2``), so a shed of 150 m² straddling four 10 m cells is
        not reported.  ``min_area_m2="auto"`` (default): ten cells of the
        analysis grid within 400-1000 m², so 1000 m² (0.1 ha, 1.5 mu) on
        Sentinel-2 and Landsat and 400 m² on imagery of 6 m or finer.
    core_min_area_m2 : float, optional
        Minimum mapping unit of patches in core zones (核心区), m² (default
        400; the smaller of it and the unit above applies; None: the same
        as elsewhere).  A patch's zone is the strictest it overlaps.  On
        10 m imagery, patches under 0.1 ha are mostly not the change that
        matters (see Notes); in a core zone a few hundred m² is a case.
    margin_m : float
        Ground distance (m) around ``reserves`` also watched (zone ``outside``).
    exclude : geopandas.GeoDataFrame, optional
        Approved projects and permitted activities: their area is cut out of
        the patches.
    zone_field, name_field : str or None
        Fields of ``reserves`` with the functional zone (功能分区) and the
        reserve name (保护地名称); ``"auto"`` looks for the usual names; None
        means the layer has none (zone then ``None``).
    params : ChangeParams, optional
        Thresholds of the change statistic (in robust standard deviations of
        the scene's unchanged ground) and of the typing.
    cover : CoverParams, optional
        Cover-rule thresholds for relative-brightness imagery (drone RGB).
    normalize : {"auto", "rrn", "none"}
        Relative radiometric normalisation of ``after`` onto ``before``
        (``"auto"``: when both scenes share at least three reflectance bands).
    clouds : {"auto", "none"}
        ``"auto"`` computes cloud and shadow masks for scenes that have none
        (Sentinel-2 L1C, Level-1 and Gaofen products, band stacks).
    include_gain : bool
        Also report ``vegetation_gain`` patches.
    max_flagged_share : float
        Share (0-1) of a reserve's observed area covered by disturbance
        patches beyond which a :class:`WidespreadChangeWarning` is issued
        (default 0.05).
    grid : Grid, optional
        Analysis grid (default the coarser scene's).
    simplify_m : float
        Simplify outlines by this tolerance (ground metres); 0 keeps pixel edges.
    block, scheduler, progress, max_source_px
        Windowed processing (see :func:`ecopatch.assess_restoration`).
    swap_dates : bool
        When ``after`` is older than ``before``, swap them instead of raising
        :class:`~ecopatch.errors.DateOrderError`.
    history : sequence of RasterSource, optional
        Earlier scenes of the same ground (other seasons, other years).
        Each pixel's range of cover over these and ``before`` is its own
        seasonal range: a change is reported only where the after date lies
        outside it (a field ploughed as in every winter is not a patch), and
        such ground is classed ``seasonal_cropland``.  Scenes dated after
        ``after`` are left out.
    observations : list, optional
        A list the call appends the observation table to (a DataFrame, as
        :func:`observation_table` gives it): the per-zone observed areas
        and cloud masks also ride in ``.attrs["observation"]``, which pandas
        drops in ``concat``, ``merge`` and some copies; this form survives.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per patch, in ``reserves``' CRS (else the analysis grid's),
        columns as :data:`ecopatch.vocabulary.PATCH_COLUMNS` plus ``change_m2``
        (estimated changed ground area, m²: the changed share of the
        patch's cells plus that of the partly changed cells at its rim,
        which lie outside the outline, so it can exceed ``area_m2`` by part of
        a cell per rim cell), ``n_px``,
        ``fvc_before``/``fvc_after``, ``mndwi_*``/``bsi_*`` where the bands
        exist, the ``reserves`` attributes of the patch's reserve, and
        ``.attrs["observation"]``: per ``reserves`` polygon, its area and the
        area observed at both dates (m²), so blind spots are known, as
        records; :func:`observation_table` gives it as a DataFrame;
        ``.attrs["scenes"]``: :meth:`~ecopatch.raster.scene.Scene.provenance`
        of both dates (product, bands, scale/offset, cloud mask);
        ``.attrs["detection"]``: how the dates were made comparable
        (radiometry, normalisation, clouds, history) and the minimum mapping
        units applied, m² (``min_area_m2``, ``core_min_area_m2``).

    Raises
    ------
    ConfigError
        A negative minimum mapping unit or an unknown option.
    DateOrderError
        ``after`` is older than ``before`` (and ``swap_dates`` is False).
    InputDataError
        ``reserves`` lacks a zone field (pass ``zone_field=None`` to go without).
    NoOverlapError
        The scenes and ``reserves`` have no ground in common.
    NoValidPixelsError
        Nothing was observed at both dates over the area of interest (all cloud).

    Notes
    -----
    The default minimum mapping unit, 0.1 ha (1.5 mu) on 10 m imagery,
    follows what small patches are there: on the ten OSCD cities (Sentinel-2 L1C),
    construction and bare-soil patches of fewer than 20 pixels held 6-7 %
    labelled change, all such patches 31 %; raising the unit from 400 to
    1000 m² took their macro F1 from 0.336 to 0.353 (recall 0.488 to
    0.476), and left the Landsat Taizhou kappa at 0.905
    (``benchmarks/RESULTS.md``).  Core zones keep 400 m², and so does imagery
    of 6 m or finer, where 400 m² is ten cells or more.
    """
    opts = resolve_options(DetectOptions, options, locals())  # the keywords that differ from their defaults
    before, after = as_source(before), as_source(after)
    history = [as_source(h) for h in history] if history else history
    # the set-up's sample and the pass decode once (small files, or the blocks near a few reserves)
    with decoded_once([before, after, *(history or ())], near=near_frames([reserves], after.grid.crs)):
        p = detection_pass(before, after, reserves, opts, exclude=exclude, history=history, grid=grid, block=block,
                           max_source_px=max_source_px, swap_dates=swap_dates, observations=observations)
        (results,) = run_passes([p], scheduler=scheduler, progress=progress)
    return p.finish(results)


def detection_pass(
    before: SourceLike,
    after: SourceLike,
    reserves: gpd.GeoDataFrame | None = None,
    options: DetectOptions | None = None,
    *,
    exclude: gpd.GeoDataFrame | None = None,
    history: Sequence[SourceLike] | None = None,
    grid: Grid | None = None,
    block: int = WINDOWS.block,
    max_source_px: int = WINDOWS.max_source_px,
    swap_dates: bool = False,
    observations: list[pd.DataFrame] | None = None,
) -> WindowPass:
    """:func:`detect_changes` set up, as a pass to run with others (:func:`ecopatch.engine.tiling.run_passes`).

    Parameters are those of :func:`detect_changes`, the options as one
    :class:`~ecopatch.options.DetectOptions` (default: its defaults).  The
    checks, the area of interest and the scene parameters (read from a
    sample of the imagery) are done here, so most errors of
    :func:`detect_changes` come from this call; the pass's ``finish`` gives
    its GeoDataFrame, or raises :class:`~ecopatch.errors.NoValidPixelsError`
    when nothing over the reserves was observed at both dates.
    """
    import geopandas as gpd

    opts = options if options is not None else DetectOptions()
    if not isinstance(opts, DetectOptions):
        raise ConfigError(f"options={opts!r}: give an ecopatch.options.DetectOptions")
    margin_m, zone_field, name_field = opts.margin_m, opts.zone_field, opts.name_field
    normalize, clouds, cover = opts.normalize, opts.clouds, opts.cover
    before, after = check_pair(as_source(before), as_source(after), swap_dates=swap_dates)
    params = opts.params or ChangeParams()
    g = analysis_grid(before, after, grid)
    centre = Window(row_off=g.height // 2, col_off=g.width // 2, height=1, width=1)
    mmu, mmu_core = opts.units_m2(float(g.cell_area_m2(centre)[0, 0]))  # "auto": ten cells, 400-1000 m²

    # -- area of interest ------------------------------------------------
    zones_gdf = None
    zfield = nfield = None
    first_mmu = mmu  # the unit patches first come out at: the core zones' when there are some
    if reserves is not None:
        if not isinstance(reserves, gpd.GeoDataFrame) or len(reserves) == 0:
            raise InputDataError("reserves must be a non-empty GeoDataFrame of reserve/zone polygons")
        as_crs(reserves.crs, what="reserves layer")
        zfield = find_field(reserves, zone_field, ("功能分区", "zone", "功能区", "分区", "zone_name"), "zone")
        nfield = find_field(reserves, name_field, ("保护地名称", "name", "reserve_name", "保护区名称", "名称"),
                             "reserve name")
        zones_gdf = reserves.reset_index(drop=True)
        if mmu_core < mmu and has_core_zone(zones_gdf, zfield):
            # patches come out at the core zones' smaller unit; those of other zones are held to
            # the general one once their zone is known (outside_core_unit)
            first_mmu = mmu_core
        zg = repaired(geometries_in(zones_gdf, g.crs, what="reserves layer"))
        # the area of interest is kept as its parts (each zone, widened by the margin), never
        # unioned: 2000 zones of a 2 x 2-tile mosaic took 2.7 s to union, serially, and every
        # block then cut the union again
        aoi: np.ndarray | None = np.asarray(_metre_buffer(zg, g.crs, margin_m) if margin_m else zg,
                                            dtype=object)
    else:
        zg = np.zeros(0, dtype=object)
        aoi = None
    footprint = shapely.intersection(
        g.footprint(),
        shapely.intersection(before.grid.footprint_in(g.crs), after.grid.footprint_in(g.crs)),
    )
    # the area of interest in the footprint of both scenes, as parts
    region = np.asarray([footprint]) if aoi is None else _within_footprint(aoi, footprint)
    if not float(np.sum(shapely.area(region))) > 0:
        raise NoOverlapError(
            f"the before scene ({before.source}), the after scene ({after.source})"
            + (" and the reserves" if aoi is not None else "")
            + " have no ground in common; check the extents and CRSs"
        )
    if exclude is not None:
        as_crs(exclude.crs, what="exclusion layer")

    # -- the pair made comparable, from bounded reads ---------------------
    hist = _usable_history(history, before, after)
    pair = prepare_pair(before, after, g, region, params=params, normalize=normalize, clouds=clouds,
                        cover=cover, history=hist, max_source_px=max_source_px, block=block)
    before, after = pair.before, pair.after  # with the cloud masks computed for them, if any
    setup = _pass_setup(pair, params)
    region_m2 = float(np.sum(geodesic_area_m2(region, g.crs)))

    # -- main pass ---------------------------------------------------------
    # pad 1: all_touched rasterising flags pixels just beyond a polygon's bounding box
    # set back by the halo and the scenes' read reach, so that no window decodes a tile of the next
    # stripe (set_back; the background was read for these same windows)
    plan = blocks_touching(g, region, block=block, pad=1, offset=pair.window_offset)
    zone_bounds = shapely.bounds(zg) if len(zg) else np.zeros((0, 4))
    aoi_bounds = shapely.bounds(aoi) if aoi is not None else None
    tasks = []
    for w, _ in plan:
        if len(zg):
            left, b, r, t = g.subgrid(w).bounds
            hit = np.flatnonzero((zone_bounds[:, 0] < r) & (zone_bounds[:, 2] > left) &
                                 (zone_bounds[:, 1] < t) & (zone_bounds[:, 3] > b))
        else:
            hit = np.zeros(0, dtype=np.int64)
        aoi_w = None
        if aoi is not None and aoi_bounds is not None:
            # the parts that can touch the padded block (its halo pixel included)
            left, b, r, t = g.subgrid(w.pad(2)).bounds
            near = np.flatnonzero((aoi_bounds[:, 0] <= r) & (aoi_bounds[:, 2] >= left) &
                                  (aoi_bounds[:, 1] <= t) & (aoi_bounds[:, 3] >= b))
            aoi_w = tuple(aoi[near])
        tasks.append(_BlockTask(before, after, g, w, setup, aoi_w, tuple(zg[hit]), hit, max_source_px, first_mmu))

    def finish(results: list[_BlockResult]) -> gpd.GeoDataFrame:
        merged = merge_components([r.components for r in results])
        zone_sums = add_partials(len(zg), 2, [r.zone_sums for r in results])

        observed_total = zone_sums[:, 1].sum() if len(zg) else None
        if observed_total is not None and observed_total <= 0:
            raise NoValidPixelsError(
                f"no pixel over the reserves was observed at both dates (before {before.label}, after "
                f"{after.label}): the after scene may be all cloud or no data there; use another date"
            )

        patches = _patches_from_components(merged, g, params, first_mmu, aoi, exclude, opts.include_gain,
                                           before, after, opts.simplify_m, pair.typed)
        out_crs = zones_gdf.crs if zones_gdf is not None else g.crs
        # the zones' CRS is usually the grid's, written differently (GeoPackage vs GeoTIFF): then
        # geometries_in leaves the outlines as they are (no no-op transformation: 0.13 s for 7000
        # patches) and they are only labelled with the zones' CRS
        patches = patches.set_geometry(geometries_in(patches, out_crs, what="patches"), crs=out_crs)
        if zones_gdf is not None:
            patches = attach_zones(patches, zones_gdf, zfield, nfield, margin_m)
            if first_mmu < mmu:
                patches = outside_core_unit(patches, mmu)
        patches = _finish(patches, before, after)
        # what each date was read as (product, bands, cloud mask), for the observation table and provenance
        patches.attrs["scenes"] = {"before": before.provenance(), "after": after.provenance()}
        if zones_gdf is not None:
            # plain records, not a DataFrame: pandas compares attrs on merge/concat, and a
            # DataFrame there breaks them ("truth value of a DataFrame is ambiguous")
            table = zone_observation_table(zones_gdf, zfield, nfield, zone_sums)
            patches.attrs["observation"] = table.to_dict("records")
        # the minimum mapping units applied, m² ("auto" resolved on this grid)
        patches.attrs["detection"] = {**pair.record, "min_area_m2": mmu, "core_min_area_m2": mmu_core}
        if observations is not None:
            # attrs do not survive every pandas operation (concat, merge, some copies): this list does
            observations.append(observation_table(patches))
        _warn_if_flagged_widely(patches, region_m2, opts.max_flagged_share)
        log.info("detect_changes: %d patches", len(patches))
        return patches

    return WindowPass("detect", _detect_block, tasks, [w for w, _ in plan], finish,
                      reads=plan_pass_reads((before, after, *(h for h, _ in pair.history)), block=block))


def _usable_history(history: Sequence[SourceLike] | None, before: RasterSource, after: RasterSource
                    ) -> tuple[RasterSource, ...]:
    """The history scenes dated before ``after`` (other than the two dates), oldest first."""
    if not history:
        return ()
    out = []
    for h in history:
        h = as_source(h)
        if h is before or h is after or (h.source == before.source and h.date == before.date):
            continue
        if h.date is not None and after.date is not None and h.date >= after.date:
            log.info("history scene %s is not earlier than the after date: left out", h.source)
            continue
        out.append(h)
    return tuple(sorted(out, key=lambda s: s.date or _dt.date.min))


class WidespreadChangeWarning(EcopatchWarning):
    """Suspect patches cover an implausibly large share of a reserve (season, radiometry or cloud?)."""


def _warn_if_flagged_widely(patches: pd.DataFrame, region_m2: float, limit: float) -> None:
    """Warn when disturbance patches cover more than ``limit`` (0-1) of a reserve's observed area."""
    if not len(patches) or limit >= 1:
        return
    dist = patches[patches["change_type"] != "vegetation_gain"]
    shares: dict[str, float] = {}
    obs = observation_table(patches)
    if len(obs) and "reserve_name" in dist.columns:
        seen = obs.groupby(obs["reserve_name"].astype(str))["observed_m2"].sum()
        flagged = dist.groupby(dist["reserve_name"].astype(str))["area_m2"].sum()
        for key, a in flagged.items():
            name = str(key)
            if seen.get(name, 0) > 0:
                shares[name] = float(a) / float(seen[name])
    elif region_m2 > 0:
        shares["the area of interest"] = float(dist["area_m2"].sum()) / region_m2
    wide = {k: v for k, v in shares.items() if v > limit}
    if wide:
        words = ", ".join(f"{k}: {v:.1%}" for k, v in sorted(wide.items(), key=lambda kv: -kv[1])[:5])
        warnings.warn(
            f"suspect patches cover more than {limit:.0%} of the observed area ({words}); real encroachment "
            "rarely does. Likely causes: a seasonal difference between the dates (ploughing, harvest, leaf fall, "
            "dry-season grass: use a baseline from the same season), radiometry (haze or top-of-atmosphere input: "
            "use surface reflectance), or unmasked cloud and shadow. Check the change map before sending field "
            "teams out (max_flagged_share= sets this limit)",
            WidespreadChangeWarning, stacklevel=caller_stacklevel(),
        )


def _pass_setup(pair: PairSetup, params: ChangeParams) -> _PassSetup:
    """The bands each date is read with, and what the blocks share."""
    core = ("blue", "green", "red", "nir", "swir1", "swir2")
    if pair.derive_before.cover is None:
        bands = tuple(pair.model.bands)
        hist = tuple((h, d, bands) for h, d in pair.history)
        return _PassSetup(pair.derive_before, pair.derive_after, pair.model, params, bands, bands, hist)
    hist = tuple((h, d, tuple(b for b in core if b in h.bands)) for h, d in pair.history)
    return _PassSetup(pair.derive_before, pair.derive_after, pair.model, params,
                      tuple(b for b in core if b in pair.before.bands),
                      tuple(b for b in core if b in pair.after.bands), hist)


def observation_table(patches: pd.DataFrame) -> pd.DataFrame:
    """The per-zone observed-area table of a :func:`detect_changes` result (empty without ``reserves``).

    Columns: ``reserve_name``, ``zone_name``, ``zone``, ``area_m2`` (geodesic
    area of the zone polygon), ``imaged_m2`` (inside the imagery),
    ``observed_m2`` (observed at both dates), ``unobserved_m2``,
    ``observed_fraction`` and ``observed_fraction_of_imaged`` (0-1), and
    ``cloud_mask_before``/``cloud_mask_after``: the cloud mask each date
    was read with (``"scl"``, ``"qa_pixel"``...), or ``"none: <why>"`` when
    the product had none, so clouds counted as observed ground.
    """
    df = pd.DataFrame(patches.attrs.get("observation") or [])
    scenes = patches.attrs.get("scenes") or {}
    if len(df) and scenes:
        for when in ("before", "after"):
            m = (scenes.get(when) or {}).get("mask") or {}
            kind = m.get("kind", "unknown")
            df[f"cloud_mask_{when}"] = kind if kind != "none" else f"none: {m.get('note', '')}"
    return df


def _layer_means(stats: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Area-weighted mean of each averaged layer per patch (NaN where no pixel had a value)."""
    base = len(STAT_NAMES)
    out = {}
    for j, name in enumerate(names):
        s_, w = stats[:, base + 2 * j], stats[:, base + 2 * j + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = np.where(w > 0, s_ / w, np.nan)
    return out


def _types_and_classes(means: Mapping[str, np.ndarray], cats: list[str], params: ChangeParams,
                       typed: bool, swir: bool = True) -> tuple[list[str | None], list[str], list[str]]:
    types: list[str | None] = []
    cb: list[str] = []
    ca: list[str] = []
    for i, cat in enumerate(cats):
        sw = float(means["sw"][i]) if "sw" in means else 0.0
        if sw > 0:  # share-weighted: the changed ground of the patch
            fb = {k: float(means[f"sw_{k}_before"][i]) / sw for k in (*_FRACTIONS, "ndvi") if f"sw_{k}_before" in means}
            fa = {k: float(means[f"sw_{k}_after"][i]) / sw for k in (*_FRACTIONS, "ndvi") if f"sw_{k}_after" in means}
        else:
            fb = {k: float(means[f"{k}_before"][i]) for k in (*_FRACTIONS, "ndvi") if f"{k}_before" in means}
            fa = {k: float(means[f"{k}_after"][i]) for k in (*_FRACTIONS, "ndvi") if f"{k}_after" in means}
        sb = {k: float(means[f"{k}_before"][i]) for k in (*_WATER_BANDS, "mndwi") if f"{k}_before" in means}
        sa = {k: float(means[f"{k}_after"][i]) for k in (*_WATER_BANDS, "mndwi") if f"{k}_after" in means}
        lin = water_gain_linear(sb, sa)
        if "water_gain" in means and np.isfinite(means["water_gain"][i]):
            lin = max(lin or 0.0, float(means["water_gain"][i]))
        types.append(patch_type(fb, fa, params, category=cat, typed=typed, water_gain=lin, swir=swir))
        crop = "cropland" in means and float(means["cropland"][i]) >= 0.5
        cb.append(_seasonal(dominant_class(fb["veg"], fb["bare"], fb["built"], fb["water"]), crop))
        ca.append(_seasonal(dominant_class(fa["veg"], fa["bare"], fa["built"], fa["water"]), crop))
    return types, cb, ca


def _seasonal(cls: str, cropland: bool) -> str:
    """A vegetated or bare class on ground that is cropland by its history becomes ``seasonal_cropland``."""
    return "seasonal_cropland" if cropland and cls in ("vegetation", "sparse_vegetation", "bare") else cls


def patch_confidence(z_mean: np.ndarray, n_px: np.ndarray) -> np.ndarray:
    """Probability (0-1) that a patch is real change, from how far it stands out and its size.

    A logistic function of the patch's mean change statistic ``z_mean``
    (robust standard deviations of the scene's unchanged ground, capped at
    30) and of ``log10(n_px)`` (pixels of the analysis grid), with the
    coefficients :data:`CONFIDENCE_COEF` fitted on the labelled real scenes
    of ``benchmarks/bench_change_realdata.py`` (construction and bare-soil
    patches against the ten OSCD cities' urban-change labels, every patch
    against Taizhou's change samples; each scene weighted equally).  The
    reliability table, with each city's patches scored by coefficients
    fitted without that city, is in ``benchmarks/RESULTS.md``.  Because the
    labels count urban change only, the confidence of real non-urban change
    (a field cleared to bare soil) is understated.
    """
    z = np.minimum(np.nan_to_num(np.asarray(z_mean, dtype=np.float64), nan=0.0), 30.0)
    lp = np.log10(np.maximum(np.asarray(n_px, dtype=np.float64), 1.0))
    x = CONFIDENCE_COEF[0] + CONFIDENCE_COEF[1] * z + CONFIDENCE_COEF[2] * lp
    return 1.0 / (1.0 + np.exp(-x))


#: Logistic coefficients of :func:`patch_confidence`: intercept, mean z, log10(pixels).
#: Fitted by ``benchmarks/bench_change_realdata.py`` (its "Refitting the confidence" section, on the
#: patches of the ten OSCD cities and Taizhou at the default settings; see benchmarks/RESULTS.md).
CONFIDENCE_COEF: tuple[float, float, float] = (-3.177, 0.034, 1.157)


def _patches_from_components(merged: Any, g: Grid, params: ChangeParams, mmu: float, aoi: Any,
                             exclude: gpd.GeoDataFrame | None, include_gain: bool, before: RasterSource,
                             after: RasterSource, simplify_m: float, typed: bool = True) -> gpd.GeoDataFrame:
    import geopandas as gpd
    from affine import Affine

    stats = merged.stats
    cats = merged.category
    names = merged.layer_names
    empty_cols = ["change_type", "change_m2", "n_px", "confidence", "class_before", "class_after"]
    # Clipping and exclusion can only shrink a patch, so patches already below the minimum
    # mapping unit go first (on a full tile most components are a few noisy pixels); so do
    # components without a pixel far beyond the noise (hysteresis), and those whose cover
    # did not change (the ground already was what it is)
    # Inside a window, a component whose changed area is below the unit was already left out
    # (block_components' min_area_m2); one across windows is held to the same rule here, once
    # merged, or the patches would depend on where the windows fall
    a_change_all = stats[:, STAT_NAMES.index("a_change")]
    keep = (meets_unit(stats[:, STAT_NAMES.index("a_total")], a_change_all, mmu) & (a_change_all >= mmu)
            & (stats[:, STAT_NAMES.index("a_seed")] > 0))
    if not include_gain:
        keep &= np.array([c != "gain" for c in cats], dtype=bool)
    means = _layer_means(stats, names)
    # without SWIR1 at both dates the water share comes from NDWI and NIR alone (see patch_type)
    swir = "swir1" in before.bands and "swir1" in after.bands
    types, cls_b, cls_a = _types_and_classes(means, cats, params, typed, swir)
    keep &= np.array([t is not None for t in types], dtype=bool)
    idx = np.flatnonzero(keep)
    stats = stats[idx]
    means = {k: v[idx] for k, v in means.items()}
    types = [types[i] for i in idx]
    cls_b = [cls_b[i] for i in idx]
    cls_a = [cls_a[i] for i in idx]
    outlines_in = merged.outline[idx]
    n = len(idx)
    if n == 0:
        return gpd.GeoDataFrame({c: [] for c in empty_cols}, geometry=[], crs=g.crs)
    t = g.transform
    mean_cell = float(np.mean(stats[:, STAT_NAMES.index("a_total")] / np.maximum(stats[:, 0], 1)))
    hole_px = mmu / mean_cell if mean_cell > 0 else 0
    outlines = np.array([_fill_holes(o, hole_px) for o in outlines_in], dtype=object)
    aff = Affine(t.a, 0, t.c, 0, t.e, t.f)
    geoms = shapely.transform(outlines, lambda xy: np.column_stack(
        [aff.c + aff.a * xy[:, 0], aff.f + aff.e * xy[:, 1]]))
    raw_geoms = geoms
    raw_area = geodesic_area_m2(geoms, g.crs)
    if aoi is not None:
        geoms = _clip_to_area(geoms, aoi)
    approved = np.zeros(n)
    if exclude is not None and len(exclude):
        ex = shapely.union_all(shapely.make_valid(geometries_in(exclude, g.crs, what="exclusion layer")))
        approved = geodesic_area_m2(shapely.intersection(geoms, ex), g.crs)
        geoms = shapely.difference(geoms, ex)
    geoms = np.array([_polygonal(x) for x in geoms], dtype=object)
    # most outlines come through clipping unchanged (the same objects): their area is known
    area = raw_area.copy()
    cut = np.fromiter((a is not b for a, b in zip(geoms, raw_geoms)), dtype=bool, count=len(geoms))
    if cut.any():
        area[cut] = geodesic_area_m2(geoms[cut], g.crs)
    with np.errstate(invalid="ignore", divide="ignore"):
        kept_share = np.where(raw_area > 0, area / raw_area, 0.0)
    # the changed area left after clipping and exclusion: the smaller of a proportional share and
    # what remains when the part cut off is taken as wholly changed (an approved project's
    # footprint accounts for the change inside it; the pixels left at its edge are mostly not)
    a_change = stats[:, STAT_NAMES.index("a_change")]
    change_m2 = np.minimum(a_change * np.clip(kept_share, 0, 1), np.maximum(a_change - (raw_area - area), 0.0))
    # a patch whose change lies mostly inside approved projects is the approved activity itself
    change_m2 = np.where(approved >= 0.75 * a_change, 0.0, change_m2)
    conf = patch_confidence(means.get("z", np.zeros(n)), stats[:, 0])
    data: dict[str, Any] = {
        "change_type": types,
        "area_m2": area,
        "change_m2": change_m2,
        "n_px": stats[:, 0].astype(np.int64),
        "confidence": conf,
        "class_before": cls_b,
        "class_after": cls_a,
        "change_z": means.get("z", np.full(n, np.nan)),
    }
    for k in _FRACTIONS:
        data[f"{k}_before"] = means[f"{k}_before"]
        data[f"{k}_after"] = means[f"{k}_after"]
    for nm in names:
        if (nm not in data and nm not in ("z", "water_gain", "cropland", "sw") and not nm.startswith("sw_")
                and nm.rsplit("_", 1)[0] not in _WATER_BANDS):
            data[nm] = means[nm]
    df = gpd.GeoDataFrame(data, geometry=geoms, crs=g.crs)
    ok = (~shapely.is_empty(geoms)) & meets_unit(df["area_m2"], df["change_m2"], mmu) & (df["area_m2"] > 0).to_numpy()
    df = df[ok].reset_index(drop=True)
    if simplify_m > 0 and len(df):
        unit = 1.0 if not g.is_geographic else 1 / 111_320.0
        df = df.set_geometry(df.geometry.simplify(simplify_m * unit, preserve_topology=True))
        df["area_m2"] = geodesic_area_m2(df.geometry.to_numpy(), g.crs)
    return df


def _within_footprint(parts: np.ndarray, footprint: Any) -> np.ndarray:
    """``parts`` cut to ``footprint``; the parts it contains whole are kept as they are (not copied)."""
    shapely.prepare(footprint)
    inside = shapely.contains_properly(footprint, parts)
    out = np.array(parts, dtype=object)
    out[~inside] = shapely.intersection(out[~inside], footprint)
    return out


def _clip_to_area(geoms: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """``geoms ∩ union(parts)``, computing the intersection only for the geometries that need it.

    The area of interest is every reserve zone (thousands of vertices on a
    provincial run); patches were built from pixels inside it, so most lie
    wholly within one zone, or within the union of the zones they meet (a
    patch across the line between a core and a buffer zone), and keep their
    outline unchanged.  The others are cut by that union.
    """
    tree = shapely.STRtree(parts)
    p_idx, a_idx = tree.query(geoms, predicate="intersects")
    order = np.lexsort((a_idx, p_idx))
    p_idx, a_idx = p_idx[order], a_idx[order]
    whole = np.zeros(len(geoms), dtype=bool)
    whole[p_idx[inside_zone(parts, geoms, p_idx, a_idx)]] = True
    starts = np.searchsorted(p_idx, np.arange(len(geoms) + 1))
    out = geoms.copy()
    # the union of each set of zones met, built once (neighbouring patches meet the same zones)
    unions: dict[tuple[int, ...], Any] = {}
    for i in np.flatnonzero(~whole):
        key = tuple(int(j) for j in a_idx[starts[i]:starts[i + 1]])
        if not key:
            out[i] = shapely.Polygon()
            continue
        local = unions.get(key)
        if local is None:
            local = unions[key] = parts[key[0]] if len(key) == 1 else shapely.union_all(parts[list(key)])
        if len(key) > 1 and shapely.contains_properly(local, geoms[i]):
            continue
        out[i] = shapely.intersection(geoms[i], local)
    return out


def _fill_holes(poly: Any, max_hole_px: float) -> Any:
    """Remove interior rings smaller than ``max_hole_px`` pixels (pixel-coordinate polygons)."""
    if max_hole_px <= 0 or poly is None or poly.is_empty:
        return poly
    if poly.geom_type == "MultiPolygon":
        return shapely.MultiPolygon([_fill_holes(p, max_hole_px) for p in poly.geoms])
    keep = [r for r in poly.interiors if shapely.Polygon(r).area >= max_hole_px]
    if len(keep) == len(poly.interiors):
        return poly
    return shapely.Polygon(poly.exterior, keep)


def _polygonal(g: Any) -> Any:
    if g is None or g.is_empty:
        return shapely.Polygon()
    if g.geom_type in ("Polygon", "MultiPolygon"):
        return g
    parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _finish(patches: gpd.GeoDataFrame, before: RasterSource, after: RasterSource) -> gpd.GeoDataFrame:
    """IDs, dates, coordinates, mu, column order."""
    import geopandas as gpd

    from ecopatch.vocabulary import PATCH_COLUMNS

    df = patches.copy()
    n = len(df)
    crs = as_crs(df.crs)
    pts = shapely.point_on_surface(df.geometry.to_numpy()) if n else np.zeros(0, dtype=object)
    c = shapely.centroid(df.geometry.to_numpy()) if n else np.zeros(0, dtype=object)
    inside = shapely.contains(df.geometry.to_numpy(), c) if n else np.zeros(0, dtype=bool)
    rep = np.where(inside, c, pts) if n else pts
    if n:
        wgs = transformer(crs, "EPSG:4326").transform(shapely.get_x(rep), shapely.get_y(rep))
        cg = transformer(crs, "EPSG:4490").transform(shapely.get_x(rep), shapely.get_y(rep))
    else:
        wgs = cg = (np.zeros(0), np.zeros(0))
    df["centroid_lon"], df["centroid_lat"] = np.round(wgs[0], 7), np.round(wgs[1], 7)
    df["cgcs2000_lon"], df["cgcs2000_lat"] = np.round(cg[0], 7), np.round(cg[1], 7)
    df["area_mu"] = m2_to_mu(np.asarray(df["area_m2"], dtype=float)) if n else []
    df["change_mu"] = m2_to_mu(np.asarray(df["change_m2"], dtype=float)) if n else []
    df["date_before"] = before.date.isoformat() if before.date else None
    df["date_after"] = after.date.isoformat() if after.date else None
    stamp = after.date.strftime("%Y%m%d") if after.date else "undated"
    ids = [f"{stamp}-{geohash(float(x), float(y), 9)}" for x, y in zip(df["centroid_lon"], df["centroid_lat"])]
    seen: dict[str, int] = {}
    uniq = []
    for i in ids:
        k = seen.get(i, 0)
        uniq.append(i if k == 0 else f"{i}-{k + 1}")
        seen[i] = k + 1
    df["patch_id"] = uniq
    for col in PATCH_COLUMNS:
        if col not in df.columns:
            df[col] = None if col not in ("ndvi_before", "ndvi_after") else np.nan
    geom = df.geometry.name
    first = list(PATCH_COLUMNS)
    extra_known = ["change_m2", "change_mu", "n_px", "fvc_before", "fvc_after", "mndwi_before",
                   "mndwi_after", "bsi_before", "bsi_after", "exg_before", "exg_after"]
    order = first + [c for c in extra_known if c in df.columns]
    order += [c for c in df.columns if c not in order and c != geom] + [geom]
    df = df[order]
    df = df.sort_values("patch_id", kind="stable").reset_index(drop=True)
    return gpd.GeoDataFrame(df, geometry=geom, crs=crs)


