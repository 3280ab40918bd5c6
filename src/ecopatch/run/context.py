"""The state of one scheduled run (:class:`RunContext`) and the reads it caches.

The layers, the ledger, the lock, and per scene the clear-sky shares of the
mines and reserves (:func:`clear_fraction`, :func:`clear_fractions`) from one
decimated read each.  Nothing here is global: a context lives for one
invocation of :func:`ecopatch.run.pipeline.run_pipeline`.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecopatch._warnfilters import filters_guard
from ecopatch.errors import (
    ConfigError,
    EcopatchError,
    InputDataError,
    NoOverlapError,
    NoValidPixelsError,
)
from ecopatch.run.baseline import REFERENCE_FIELDS, MineReference, choose_references, reference_request
from ecopatch.run.config import RunConfig
from ecopatch.run.discovery import SceneRef
from ecopatch.run.lock import RunLock
from ecopatch.run.logs import warnings_to_log

if TYPE_CHECKING:
    import geopandas as gpd

    from ecopatch.ledger import Ledger
    from ecopatch.raster.scene import Scene

__all__ = [
    "RunContext",
    "check_reference",
    "clear_fraction",
    "clear_fractions",
    "clear_share",
    "heartbeat",
    "ledger_counts",
    "open_ledger",
    "open_ref",
    "provenance",
    "read_layers",
    "scene_references",
]

log = logging.getLogger("ecopatch.run")


_CLEAR_PIXELS = 250_000


@dataclass
class RunContext:
    """State of one invocation (not shared, not global)."""

    config: RunConfig
    runs_dir: Path
    progress: bool | None
    force: bool
    mines: gpd.GeoDataFrame | None = None
    reserves: gpd.GeoDataFrame | None = None
    exclude: gpd.GeoDataFrame | None = None
    aoi: Any = None  # GeoSeries of mines and reserves, EPSG:4490
    ledger: Ledger | None = None
    lock: RunLock | None = None
    clear_cache: dict[str, float] = field(default_factory=dict)
    digest_cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    scenes: Sequence[SceneRef] = ()
    mine_clear_cache: dict[str, Any] = field(default_factory=dict)  # scene ID -> per-mine clear shares


def heartbeat(ctx: RunContext) -> None:
    """Refresh the run lock's heartbeat (a run that holds it is alive)."""
    if ctx.lock is not None:
        ctx.lock.refresh()


def _reference_field(ctx: RunContext) -> str | None:
    """The mines layer's field holding per-mine references (None: the configuration's for all)."""
    name = ctx.config.assessment.reference_field
    assert ctx.mines is not None
    if name is None:
        return None
    if name != "auto":
        if name not in ctx.mines.columns:
            fields_ = [c for c in ctx.mines.columns if c != ctx.mines.geometry.name]
            raise InputDataError(f"{ctx.config.inputs.mines}: no field {name!r} for [assessment] reference_field; "
                                 f"the fields are {fields_}")
        return name
    return next((f for f in REFERENCE_FIELDS if f in ctx.mines.columns), None)


def scene_references(ctx: RunContext, scene: SceneRef | None, unusable: Collection[str]) -> list[MineReference]:
    """Each mine's reference (aligned with ``ctx.mines``), as :func:`choose_references` gives it."""
    read_layers(ctx)
    assert ctx.mines is not None
    a = ctx.config.assessment
    ref = a.reference
    default = ("earliest", None) if ref == "earliest" else (("date", ref) if isinstance(ref, _dt.date)
                                                           else ("scene", str(ref)))
    default_rule = f"config reference = {ref.isoformat() if isinstance(ref, _dt.date) else ref}"
    fld = _reference_field(ctx)
    requests: list[tuple[str, Any] | None] = [None] * len(ctx.mines)
    rules: list[str] = [default_rule] * len(ctx.mines)
    if fld is not None:
        for i, v in enumerate(ctx.mines[fld]):
            req = requests[i] = reference_request(v)
            if req is not None:
                shown = req[1].isoformat() if req[0] == "date" else req[1]
                rules[i] = f"field {fld} = {shown}"
    check_reference(ctx.config, ctx.scenes)
    return choose_references(requests, ctx.scenes, rules=rules, default=default, default_rule=default_rule,
                             unusable=unusable, clear=lambda s: _mine_clear(ctx, s),
                             min_clear=a.min_valid_fraction)


def check_reference(cfg: RunConfig, scenes: Sequence[SceneRef]) -> None:
    """``[assessment] reference`` naming a scene must name one of the imagery."""
    ref = cfg.assessment.reference
    if isinstance(ref, str) and ref != "earliest" and not any(s.scene_id == ref for s in scenes):
        ids = ", ".join(s.scene_id for s in scenes[:5]) or "none"
        raise ConfigError(f"[assessment] reference = {ref!r}: no such scene in the imagery (scenes: {ids}); "
                          'use "earliest", a date (YYYY-MM-DD) or one of the scene IDs')


def _mine_clear(ctx: RunContext, ref: SceneRef) -> Any:
    """Per mine (``ctx.mines`` order), the share seen clear in ``ref`` (decimated read; cached)."""
    if ref.scene_id not in ctx.mine_clear_cache:
        read_layers(ctx)
        assert ctx.mines is not None
        values = clear_fractions(open_ref(ctx, ref), ctx.mines)
        ctx.mine_clear_cache[ref.scene_id] = values
        log.info("mines seen clear in %s: %d of %d at >= %.0f %%", ref.label,
                 int((values >= ctx.config.assessment.min_valid_fraction).sum()), len(values),
                 100 * ctx.config.assessment.min_valid_fraction)
    return ctx.mine_clear_cache[ref.scene_id]


def read_layers(ctx: RunContext) -> None:
    """Mines, reserves, exclusion layer, and the area of interest for clear fractions."""
    import geopandas as gpd
    import pandas as pd

    from ecopatch.vector.layers import read_patches

    if ctx.mines is not None:
        return
    i = ctx.config.inputs
    d = ctx.config.detection
    with warnings_to_log():
        ctx.mines = read_patches(i.mines, id_field=i.mines_id_field, layer=i.mines_layer, encoding=i.encoding)
        ctx.reserves = read_patches(i.reserves, layer=i.reserves_layer, encoding=i.encoding)
        if d.exclude is not None:
            ctx.exclude = read_patches(d.exclude, layer=d.exclude_layer, encoding=i.encoding)
    ctx.aoi = gpd.GeoSeries(pd.concat([ctx.mines.geometry.to_crs(4490), ctx.reserves.geometry.to_crs(4490)],
                                      ignore_index=True), crs=4490)
    log.info("layers: %d mines (%s), %d reserve zones (%s)", len(ctx.mines), i.mines, len(ctx.reserves), i.reserves)


def open_ledger(ctx: RunContext) -> None:
    """Open (or create) the ledger of the run and check its integrity; nothing is processed if it fails."""
    from ecopatch.errors import LedgerIntegrityError
    from ecopatch.ledger import Ledger

    o = ctx.config.outputs
    if not o.ledger.exists():
        log.warning("ledger %s does not exist: creating a new, empty ledger", o.ledger)
    ctx.ledger = Ledger(o.ledger, id_prefix=o.id_prefix, timeout_s=ctx.config.run.ledger_timeout_s)
    report = ctx.ledger.check()
    if not report.ok:
        raise LedgerIntegrityError(f"{report}\nthe ledger fails its integrity check; nothing was processed. "
                                   "Restore it from a backup or repair it before the next run.")


def clear_share(ctx: RunContext, ref: SceneRef) -> float:
    """Share (0-1) of the mines and reserves seen clear in ``ref`` (decimated read; cached)."""
    if ref.scene_id in ctx.clear_cache:
        return ctx.clear_cache[ref.scene_id]
    read_layers(ctx)
    value = clear_fraction(open_ref(ctx, ref), ctx.aoi)
    ctx.clear_cache[ref.scene_id] = value
    log.info("clear share of the mines and reserves in %s: %.1f %%", ref.label, 100 * value)
    return value


def clear_fraction(scene: Scene, aoi: gpd.GeoSeries, *, max_pixels: int = _CLEAR_PIXELS) -> float:
    """Share of the area of interest that ``scene`` sees clear (not cloud, not no-data).

    Parameters
    ----------
    scene : Scene
    aoi : geopandas.GeoSeries
        Polygons (any CRS); overlaps count once.
    max_pixels : int
        Pixels of the decimated read.

    Returns
    -------
    float
        In [0, 1]; parts of the area outside the scene count as not seen.
    """
    import numpy as np
    import shapely
    from rasterio.features import geometry_mask

    from ecopatch.raster.source import read_decimated

    geoms = aoi.to_crs(scene.grid.crs)
    union = shapely.union_all(shapely.make_valid(geoms.geometry.to_numpy()))
    if union.is_empty or union.area <= 0:
        return 0.0
    try:
        with warnings_to_log():
            left, bottom, right, top = union.bounds
            obs = read_decimated(scene, aoi_bounds=(left, bottom, right, top), max_pixels=max_pixels)
    except (NoOverlapError, NoValidPixelsError):
        return 0.0
    with filters_guard():  # rasterio's rasterising enters catch_warnings (see ecopatch._warnfilters)
        inside = geometry_mask([union], out_shape=obs.valid.shape, transform=obs.grid.transform, invert=True)
    a = obs.grid.transform
    clear_area = float(np.count_nonzero(inside & obs.valid)) * abs(a.a * a.e)
    return float(min(1.0, max(0.0, clear_area / union.area)))


def clear_fractions(scene: Scene, polygons: gpd.GeoDataFrame | gpd.GeoSeries, *,
                    max_pixels: int = _CLEAR_PIXELS) -> Any:
    """Per polygon, the share that ``scene`` sees clear (not cloud, not no-data), from one decimated read.

    Parameters
    ----------
    scene : Scene
    polygons : geopandas.GeoDataFrame or GeoSeries
        Mines (any CRS).
    max_pixels : int
        Pixels of the decimated read over the polygons' extent.

    Returns
    -------
    ndarray of float, shape (n,)
        In [0, 1]: the share of the polygon inside the scene times the share
        of its pixels (centres inside; every pixel it touches when it covers
        no centre) that are clear.  0 for a polygon outside the scene.
    """
    import numpy as np
    import shapely

    from ecopatch.compute.zonal import outline_pixels
    from ecopatch.geo.geodesy import geometries_in
    from ecopatch.raster.source import read_decimated

    geoms = shapely.make_valid(geometries_in(polygons, scene.grid.crs, what="mines layer"))
    out = np.zeros(len(geoms))
    ok = ~shapely.is_empty(geoms) & (shapely.area(geoms) > 0)
    if not ok.any():
        return out
    union_bounds = shapely.total_bounds(geoms[ok])
    try:
        with warnings_to_log():
            obs = read_decimated(scene, aoi_bounds=tuple(union_bounds), max_pixels=max_pixels)
    except (NoOverlapError, NoValidPixelsError):
        return out
    g = obs.grid
    footprint = g.footprint()
    for i in np.flatnonzero(ok):
        got = outline_pixels(g, geoms[i], footprint)
        if got is not None:
            win, m, inside = got
            out[i] = inside * float(np.count_nonzero(m & obs.valid[win.slices])) / m.sum()
    return out


def open_ref(ctx: RunContext, ref: SceneRef) -> Scene:
    """The scene of ``ref``, opened as the configuration says (its product rule, else ``sensor``)."""
    from ecopatch.raster.scene import open_scene

    if ref.scene is not None:
        return ref.scene
    with warnings_to_log():
        return open_scene(ref.path, **ctx.config.inputs.open_options(ref.path))


def provenance(ctx: RunContext, ref: SceneRef) -> dict[str, Any]:
    """:meth:`Scene.provenance` of a scene for its manifest; the reason instead when it cannot be opened."""
    try:
        return open_ref(ctx, ref).provenance()
    except (EcopatchError, OSError, ValueError) as exc:
        return {"error": f"cannot describe the scene: {exc}"}


def ledger_counts(ledger: Ledger) -> dict[str, int]:
    """Rows of the ledger's tables (cases, events, detections, mine records), for the run's result."""
    try:
        return {"cases": len(ledger.cases()), "events": len(ledger.events()),
                "detections": len(ledger.detections()), "mine_records": len(ledger.mine_history())}
    except EcopatchError as exc:  # pragma: no cover - reporting only
        log.warning("cannot count the ledger: %s", exc)
        return {}

