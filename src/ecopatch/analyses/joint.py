"""Assess the mines and watch the reserves in one read of the imagery.

A scheduled run does both jobs on the same pair of scenes.  Run one after
the other, :func:`ecopatch.assess_restoration` and
:func:`ecopatch.detect_changes` each decode the tiles they need, and on a
full Sentinel-2 tile the mines and the reserves need much the same tiles.
:func:`assess_and_detect` sets both passes up, runs their windows as one job
(:func:`ecopatch.engine.tiling.run_passes`: each window of the assessment follows
the detection window at the same place, whose decoded tiles it finds in the
tile cache), then finishes each.  Its results are those of the two
functions, to the last bit: only the order of the work changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ecopatch.engine.tiling import Scheduler, WindowPass, run_passes
from ecopatch.errors import ConfigError, EcopatchError
from ecopatch.options import WINDOWS, AssessOptions, DetectOptions
from ecopatch.raster.source import as_source, decoded_once, near_frames

if TYPE_CHECKING:
    import geopandas as gpd

    from ecopatch.geo.grid import Grid
    from ecopatch.raster.source import SourceLike

__all__ = ["assess_and_detect"]


def assess_and_detect(
    before: SourceLike,
    after: SourceLike,
    mines: gpd.GeoDataFrame,
    reserves: gpd.GeoDataFrame | None = None,
    *,
    assessment: AssessOptions | None = None,
    detection: DetectOptions | None = None,
    exclude: gpd.GeoDataFrame | None = None,
    history: Sequence[SourceLike] | None = None,
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
    before, after : RasterSource, path, xarray object or open rasterio dataset
        Imagery of the two dates.
    mines : geopandas.GeoDataFrame
        Mine polygons with a unique ``patch_id`` (as for
        :func:`ecopatch.assess_restoration`), in any CRS.
    reserves : geopandas.GeoDataFrame or None
        Reserve / zone polygons watched for change (as for
        :func:`ecopatch.detect_changes`); None watches everywhere both
        scenes see.
    before, after : RasterSource, path, xarray object or open rasterio dataset
        Imagery of the two dates.
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
    for given, cls, what in ((assessment, AssessOptions, "assessment"), (detection, DetectOptions, "detection")):
        if given is not None and not isinstance(given, cls):
            raise ConfigError(f"{what}={given!r}: give an ecopatch.options.{cls.__name__} "
                              f"(e.g. {what}={cls.__name__}(...))")
    out = run_jobs(after, assessments={"mines": (before, mines)}, detection=(before, reserves),
                   assessment=assessment, detection_options=detection, exclude=exclude, history=history,
                   grid=grid, block=block, scheduler=scheduler, progress=progress, max_source_px=max_source_px,
                   swap_dates=swap_dates)
    return out["assess:mines"], out["detect"]


def run_jobs(
    after: SourceLike,
    *,
    assessments: Mapping[str, tuple[SourceLike, gpd.GeoDataFrame]] | None = None,
    detection: tuple[SourceLike, gpd.GeoDataFrame | None] | None = None,
    assessment: AssessOptions | None = None,
    detection_options: DetectOptions | None = None,
    exclude: gpd.GeoDataFrame | None = None,
    history: Sequence[SourceLike] | None = None,
    grid: Grid | None = None,
    block: int = WINDOWS.block,
    scheduler: Scheduler = None,
    progress: bool | None = None,
    max_source_px: int = WINDOWS.max_source_px,
    swap_dates: bool = False,
    failed: Callable[[str, EcopatchError], None] | None = None,
    stage: Callable[[str], AbstractContextManager[Any]] | None = None,
) -> dict[str, gpd.GeoDataFrame]:
    """Several assessments (each group of mines against its own before scene) and one detection, in one pass.

    What :func:`assess_and_detect` does, for a scheduled run
    (:func:`ecopatch.run.pipeline.run_pipeline`), where each mine is
    measured against its own reference scene and the reserves against the
    run's baseline: every job is set up, their windows are read as one job
    (detection first), then each is finished.

    Parameters
    ----------
    after : RasterSource
        The after scene of every job.
    assessments : mapping of str to (RasterSource, geopandas.GeoDataFrame), optional
        Per key, the before scene and the mines measured against it.
    detection : (RasterSource, geopandas.GeoDataFrame or None), optional
        The before scene of the detection and its reserves (None: everywhere).
    assessment, detection_options : AssessOptions, DetectOptions, optional
        The options of every assessment and of the detection.
    exclude, history, grid, block, scheduler, progress, max_source_px, swap_dates
        As for :func:`assess_and_detect`.
    failed : callable, optional
        ``failed(job, error)`` is called, instead of raising, for a job that
        cannot be set up or finished for want of overlap or of valid pixels
        (:class:`~ecopatch.errors.NoOverlapError`,
        :class:`~ecopatch.errors.NoValidPixelsError`); the other jobs go on.
    stage : callable, optional
        ``with stage(name):`` around each stage (``"assess"``, ``"detect"``,
        ``"windows"``), e.g. to time it.

    Returns
    -------
    dict of str to geopandas.GeoDataFrame
        ``"assess:<key>"`` per assessment and ``"detect"``, for the jobs
        that did not fail.
    """
    from ecopatch.analyses.encroachment import detection_pass
    from ecopatch.analyses.restoration import assessment_pass, shared_scene_estimates
    from ecopatch.errors import NoOverlapError, NoValidPixelsError

    at = stage if stage is not None else (lambda name: contextlib.nullcontext())

    def _failed(job: str, exc: EcopatchError) -> None:
        if failed is None:
            raise exc
        failed(job, exc)

    after = as_source(after)
    assessments = {key: (as_source(b), m) for key, (b, m) in (assessments or {}).items()}
    if detection is not None:
        detection = (as_source(detection[0]), detection[1])
    history = [as_source(h) for h in history] if history else history
    befores = [b for b, _ in assessments.values()] + ([detection[0]] if detection is not None else [])
    # small files, or the blocks near a few reserves and mines: the set-ups' samples and the passes
    # decode each block once
    frames = [m for _, m in assessments.values()] + ([detection[1]] if detection is not None else [])
    near = near_frames(frames, after.grid.crs) if frames else None
    with decoded_once([after, *befores, *(history or ())], near=near):
        passes: dict[str, WindowPass] = {}
        with shared_scene_estimates():  # each scene's end-members sampled once for every job that reads it
            with at("assess"):
                for key, (before, mines) in assessments.items():
                    try:
                        passes[f"assess:{key}"] = assessment_pass(before, after, mines, assessment, grid=grid,
                                                                  block=block, max_source_px=max_source_px,
                                                                  swap_dates=swap_dates)
                    except (NoOverlapError, NoValidPixelsError) as exc:
                        _failed(f"assess:{key}", exc)
            if detection is not None:
                with at("detect"):
                    try:
                        passes["detect"] = detection_pass(detection[0], after, detection[1], detection_options,
                                                          exclude=exclude, history=history, grid=grid, block=block,
                                                          max_source_px=max_source_px, swap_dates=swap_dates)
                    except (NoOverlapError, NoValidPixelsError) as exc:
                        _failed("detect", exc)
        results: dict[str, Any] = {}
        if passes:
            with at("windows"):
                # detection first: it reads whole blocks, the assessment the cells around the mines
                jobs = sorted(passes, key=lambda job: job != "detect")
                results = dict(zip(jobs, run_passes([passes[j] for j in jobs], scheduler=scheduler,
                                                    progress=progress)))
    finished: dict[str, gpd.GeoDataFrame] = {}
    for job in sorted(passes, key=lambda job: job == "detect"):
        with at(job.split(":")[0]):
            try:
                finished[job] = passes[job].finish(results.pop(job))
            except (NoOverlapError, NoValidPixelsError) as exc:
                _failed(job, exc)
    return finished
