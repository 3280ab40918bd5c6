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

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ecopatch.errors import ConfigError
from ecopatch.options import WINDOWS, AssessOptions, DetectOptions
from ecopatch.tiling import Scheduler, run_passes

if TYPE_CHECKING:
    import geopandas as gpd

    from ecopatch.grid import Grid
    from ecopatch.io.raster import Scene

__all__ = ["assess_and_detect"]


def assess_and_detect(
    before: Scene,
    after: Scene,
    mines: gpd.GeoDataFrame,
    reserves: gpd.GeoDataFrame | None = None,
    *,
    assessment: AssessOptions | None = None,
    detection: DetectOptions | None = None,
    exclude: gpd.GeoDataFrame | None = None,
    history: Sequence[Scene] | None = None,
    grid: Grid | None = None,
    block: int = WINDOWS.block,
    scheduler: Scheduler = None,
    progress: bool | None = None,
    max_source_px: int = WINDOWS.max_source_px,
    swap_dates: bool = False,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Restoration of each mine and new disturbance in the reserves, from one read of the imagery.

    The same as ``(assess_restoration(before, after, mines, options=assessment),
    detect_changes(before, after, reserves, options=detection, exclude=exclude,
    history=history))``, with identical results, but each tile both jobs
    need is decoded once, not twice.

    Parameters
    ----------
    before, after : Scene
        Imagery of the two dates.
    mines : geopandas.GeoDataFrame
        Mine polygons with a unique ``patch_id`` (as for
        :func:`ecopatch.assess_restoration`), in any CRS.
    reserves : geopandas.GeoDataFrame or None
        Reserve / zone polygons watched for change (as for
        :func:`ecopatch.detect_changes`); None watches everywhere both
        scenes see.
    assessment : AssessOptions, optional
        Options of the mines' assessment (``direction_field``, ``rules``,
        ``edge``, ``cover``...; default: the defaults).
    detection : DetectOptions, optional
        Options of the reserves' detection (``min_area_m2``, ``margin_m``,
        ``params``...; default: the defaults).
    exclude, history
        The detection's approved projects and earlier scenes (see
        :func:`ecopatch.detect_changes`).
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
        ``assessment`` or ``detection`` of the wrong type.
    EcopatchError
        Whatever :func:`ecopatch.assess_restoration` or
        :func:`ecopatch.detect_changes` raise for the same inputs
        (:class:`~ecopatch.errors.NoOverlapError`,
        :class:`~ecopatch.errors.NoValidPixelsError`...).  Both jobs are set
        up before the windowed pass starts, so a job that cannot be set up
        fails before the bulk of the reading.
    """
    from ecopatch.encroachment import detection_pass
    from ecopatch.restoration import assessment_pass, shared_scene_estimates

    for given, cls, what in ((assessment, AssessOptions, "assessment"), (detection, DetectOptions, "detection")):
        if given is not None and not isinstance(given, cls):
            raise ConfigError(f"{what}={given!r}: give an ecopatch.options.{cls.__name__} "
                              f"(e.g. {what}={cls.__name__}(...))")
    with shared_scene_estimates():  # the before scene's end-members: sampled once for both jobs
        a_pass = assessment_pass(before, after, mines, assessment, grid=grid, block=block,
                                 max_source_px=max_source_px, swap_dates=swap_dates)
        d_pass = detection_pass(before, after, reserves, detection, exclude=exclude, history=history, grid=grid,
                                block=block, max_source_px=max_source_px, swap_dates=swap_dates)
    # detection first: it reads whole blocks, the assessment the cells around the mines
    d_res, a_res = run_passes([d_pass, a_pass], scheduler=scheduler, progress=progress)
    assessed = a_pass.finish(a_res)
    del a_res
    return assessed, d_pass.finish(d_res)
