"""Assess the mines and watch the reserves in one read of the imagery.

A scheduled run does both jobs on the same pair of scenes.  Run one after
the other, :func:`ecopatch.assess_restoration` and
:func:`ecopatch.detect_changes` each decode the tiles they need, and on a
full Sentinel-2 tile the mines and the reserves need much the same tiles.
:func:`assess_and_detect` sets both passes up, runs their windows as one job
(:func:`ecopatch.tiling.run_passes`: each window of the assessment follows
the detection window at the same place, whose decoded tiles it finds in the
tile cache), then finishes each.  Its results are those of the two
functions, to the last bit: only the order of the work changes.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ecopatch.errors import ConfigError
from ecopatch.tiling import Scheduler, run_passes

if TYPE_CHECKING:
    import geopandas as gpd

    from ecopatch.grid import Grid
    from ecopatch.raster.source import SourceLike

__all__ = ["assess_and_detect"]

#: Options that belong to the joint run, not to one of the jobs.
_SHARED = ("grid", "block", "scheduler", "progress", "max_source_px", "swap_dates")


def _options(func: Any, given: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    """``given`` checked against the keyword-only parameters of ``func``, less :data:`_SHARED`."""
    opts = dict(given or {})
    allowed = [n for n, p in inspect.signature(func).parameters.items()
               if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in _SHARED]
    shared = sorted(k for k in opts if k in _SHARED)
    if shared:
        raise ConfigError(f"{what}: {shared} apply to both jobs; pass them to assess_and_detect itself")
    unknown = sorted(k for k in opts if k not in allowed)
    if unknown:
        raise ConfigError(f"{what}: unknown option(s) {unknown}; use any of {allowed}")
    return opts


def assess_and_detect(
    mines: gpd.GeoDataFrame,
    reserves: gpd.GeoDataFrame | None,
    before: SourceLike,
    after: SourceLike,
    *,
    assessment: Mapping[str, Any] | None = None,
    detection: Mapping[str, Any] | None = None,
    grid: Grid | None = None,
    block: int = 512,
    scheduler: Scheduler = None,
    progress: bool | None = None,
    max_source_px: int = 4_000_000,
    swap_dates: bool = False,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Restoration of each mine and new disturbance in the reserves, from one read of the imagery.

    The same as ``(assess_restoration(mines, before, after, **assessment),
    detect_changes(before, after, reserves, **detection))``, with identical
    results, but each tile both jobs need is decoded once, not twice.

    Parameters
    ----------
    mines : geopandas.GeoDataFrame
        Mine polygons with a unique ``patch_id`` (as for
        :func:`ecopatch.assess_restoration`), in any CRS.
    reserves : geopandas.GeoDataFrame or None
        Reserve / zone polygons watched for change (``within`` of
        :func:`ecopatch.detect_changes`); None watches everywhere both
        scenes see.
    before, after : RasterSource, path, xarray object or open rasterio dataset
        Imagery of the two dates.
    assessment : mapping, optional
        Keyword options of :func:`ecopatch.assess_restoration`
        (``direction_field``, ``rules``, ``edge``, ``cover``...).
    detection : mapping, optional
        Keyword options of :func:`ecopatch.detect_changes` (``min_area_m2``,
        ``margin_m``, ``exclude``, ``params``...).
    grid : Grid, optional
        Analysis grid of both jobs (default the coarser scene's).
    block, scheduler, progress, max_source_px
        Windowed processing, for both jobs (see
        :func:`ecopatch.assess_restoration`).
    swap_dates : bool
        When ``after`` is older than ``before``, swap them instead of raising
        :class:`~ecopatch.errors.DateOrderError`.

    Returns
    -------
    (geopandas.GeoDataFrame, geopandas.GeoDataFrame)
        The mines' assessment (as :func:`ecopatch.assess_restoration`: areas
        in m² and mu, true ground areas) and the suspect patches (as
        :func:`ecopatch.detect_changes`).

    Raises
    ------
    ConfigError
        An option unknown to its job, or one of ``grid``, ``block``,
        ``scheduler``, ``progress``, ``max_source_px`` given to one job.
    EcopatchError
        Whatever :func:`ecopatch.assess_restoration` or
        :func:`ecopatch.detect_changes` raise for the same inputs
        (:class:`~ecopatch.errors.NoOverlapError`,
        :class:`~ecopatch.errors.NoValidPixelsError`...).  Both jobs are set
        up before the windowed pass starts, so a job that cannot be set up
        fails before the bulk of the reading.
    """
    from ecopatch.analyses.encroachment import detect_changes, detection_pass
    from ecopatch.analyses.restoration import assess_restoration, assessment_pass, shared_scene_estimates

    a_opts = _options(assess_restoration, assessment, "assessment")
    d_opts = _options(detect_changes, detection, "detection")
    shared: dict[str, Any] = {"grid": grid, "block": block, "max_source_px": max_source_px, "swap_dates": swap_dates}
    with shared_scene_estimates():  # the before scene's end-members: sampled once for both jobs
        a_pass = assessment_pass(mines, before, after, **a_opts, **shared)
        d_pass = detection_pass(before, after, reserves, **d_opts, **shared)
    # detection first: it reads whole blocks, the assessment the cells around the mines
    d_res, a_res = run_passes([d_pass, a_pass], scheduler=scheduler, progress=progress)
    assessed = a_pass.finish(a_res)
    del a_res
    return assessed, d_pass.finish(d_res)
