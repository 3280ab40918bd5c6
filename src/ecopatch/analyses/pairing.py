"""Make two dates comparable before comparing them: clouds, radiometry, and the scene's own noise.

:func:`prepare_pair` is run once per scene pair, before the windowed pass of
:func:`ecopatch.detect_changes`, on bounded reads of both scenes:

1. **Clouds and shadows** for a scene without a usable mask (Sentinel-2
   L1C, Landsat Level-1 without QA, Gaofen, band stacks): computed at a
   coarse resolution from both dates (:mod:`ecopatch.raster.clouds`) and attached
   to the scene as its mask, so no read after this sees them.
2. **Relative radiometric normalisation** of the later date onto the
   earlier one: per band, a reduced-major-axis line fitted on
   pseudo-invariant pixels (ground that is neither vegetated nor water at
   either date: roofs, roads, rock; trimmed iteratively of pixels whose
   residual exceeds 2.5 robust standard deviations in any band).  Seasonal
   vegetation is deliberately *not* used to fit it, so that a green field
   that turned brown still reads brown after normalisation.
3. **The slowly varying difference** (haze, illumination, phenology over
   about ``background_m``): per band, the median of the normalised
   difference over that window, on a coarse grid.
4. **The noise of unchanged ground**: on a sample of windows of the area
   of interest, the robust covariance of the standardised band
   differences, and the median and spread of the two distances of
   :func:`ecopatch.compute.change.change_statistic`.  Change is then measured in
   these units, so a threshold means the same on every scene pair.

Top-of-atmosphere and digital-number inputs are accepted (haze is removed
by dark-object subtraction when they are opened), with a warning that
they are not surface reflectance.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import shapely

from ecopatch._warnfilters import filters_guard
from ecopatch.compute.change import (
    Background,
    ChangeModel,
    ChangeParams,
    robust_covariance,
    robust_location_scale,
    whitening,
)
from ecopatch.compute.cover import CoverParams, cover_fractions, surface_fractions
from ecopatch.errors import ConfigError, EcopatchWarning, NoValidPixelsError, caller_stacklevel
from ecopatch.geo.grid import Grid, Window
from ecopatch.options import WINDOWS
from ecopatch.raster.clouds import (
    S2CLOUDLESS_BANDS,
    S2CLOUDLESS_EDGE,
    S2CLOUDLESS_THRESHOLD,
    CloudMask,
    cloud_objects,
    darkened,
    mask_grid,
    pixel_size_m,
    project_shadows,
    s2cloudless_probability,
    temporal_cloud_test,
)
from ecopatch.raster.ongrid import read_on_grid, reproject_array
from ecopatch.raster.source import (
    Observation,
    RasterSource,
    large_block_bytes,
    read_decimated,
    read_reach_px,
    reads_outside_a_pass,
    release_large_blocks,
)

__all__ = ["PairSetup", "SurfaceDeriver", "prepare_pair"]

log = logging.getLogger(__name__)

#: Reflectance bands the change statistic compares, when both dates have them.
SPECTRAL_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir1", "swir2")
#: Cover fractions compared instead when the dates share fewer than three reflectance bands.
FRACTION_BANDS: tuple[str, ...] = ("veg", "bare", "built", "water")
#: Coarsest cell (m) at which clouds are looked for, and the largest mask grid (cells).
CLOUD_RES_M = 60.0
MAX_MASK_CELLS = 1_500_000
#: Largest grid (cells) the background difference is estimated on.  Scenes up to about
#: 30 km across keep cells of ``background_m / 12``; larger ones get coarser cells (a full
#: Sentinel-2 tile: about 210 m, the median taken over 3 x 3 of them), which a difference that
#: varies over kilometres does not notice and which keeps the set-up of a tile to seconds.
MAX_BACKGROUND_CELLS = 250_000
#: Longest cloud-to-shadow distance searched, m (a 5 km high cloud at a 45° sun zenith).
MAX_SHADOW_M = 5_000.0


class NotSurfaceReflectanceWarning(EcopatchWarning):
    """A scene compared is top-of-atmosphere reflectance or digital numbers, not surface reflectance."""


@dataclass(frozen=True)
class SurfaceDeriver:
    """Picklable derive for :func:`ecopatch.raster.ongrid.read_on_grid`: the compared layers and cover fractions.

    For reflectance scenes: the model's bands (the after date normalised
    onto the before date) and :func:`ecopatch.compute.cover.surface_fractions` of
    them.  For relative-brightness imagery (drone RGB):
    :func:`ecopatch.compute.cover.cover_fractions` with the scene's own parameters.
    """

    bands: tuple[str, ...]
    gains: tuple[tuple[float, float], ...] | None = None
    cover: CoverParams | None = None
    source: str = ""

    def __call__(self, obs: Observation) -> dict[str, np.ndarray]:
        """The layers of one read: bands (normalised), cover fractions and indices, float32."""
        bands = {k: v for k, v in obs.bands.items()}
        if self.gains is not None:
            for b, (g, o) in zip(self.bands, self.gains):
                if b in bands:
                    x = np.asarray(bands[b], dtype=np.float32) - np.float32(o)
                    x /= np.float32(g)
                    bands[b] = x
        if self.cover is not None:
            f = cover_fractions(bands, self.cover, source=self.source)
            out = {k: np.asarray(f[k], dtype=np.float32) for k in ("veg", "bare", "built", "water")}
            for k in ("ndvi", "mndwi", "exg"):
                if k in f:
                    out[k] = np.asarray(f[k], dtype=np.float32)
        else:
            f = surface_fractions(bands)
            out = {k: v for k, v in f.items() if k != "typed"}
        for b in self.bands:
            if b in bands and b not in out:
                out[b] = np.asarray(bands[b], dtype=np.float32)
        return out


@dataclass(frozen=True)
class PairSetup:
    """Everything the windowed pass needs about a scene pair (see :func:`prepare_pair`)."""

    before: RasterSource
    after: RasterSource
    model: ChangeModel
    derive_before: SurfaceDeriver
    derive_after: SurfaceDeriver
    typed: bool
    record: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[tuple[RasterSource, SurfaceDeriver], ...] = ()
    #: Pixels the pass's windows are set back from the multiples of the block (the halo and the scenes'
    #: read reach, :func:`ecopatch.engine.tiling.set_back`); the background was read for those windows.
    window_offset: int = 0


def _reflective(scene: RasterSource) -> bool:
    return bool(scene.sensor.reflectance)


def prepare_pair(before: RasterSource, after: RasterSource, grid: Grid, region: np.ndarray, *, params: ChangeParams,
                 normalize: str = "auto", clouds: str = "auto", cover: CoverParams | None = None,
                 history: Sequence[RasterSource] = (), max_source_px: int = WINDOWS.max_source_px,
                 block: int = WINDOWS.block) -> PairSetup:
    """Clouds, normalisation, background and noise model of a scene pair, from bounded reads.

    Parameters
    ----------
    before, after : RasterSource
    grid : Grid
        The analysis grid.
    region : ndarray of shapely geometries
        The area of interest in ``grid``'s CRS (the sample is drawn from it).
    params : ChangeParams
    normalize : {"auto", "rrn", "none"}
        Relative radiometric normalisation (``"auto"``: when both dates are
        reflectance with at least three common bands).
    clouds : {"auto", "none"}
        Compute cloud and shadow masks for scenes that have none.
    cover : CoverParams, optional
        Cover-rule parameters for relative-brightness imagery (drone RGB).
    history : sequence of RasterSource
        Earlier scenes of the same ground (other seasons and years): each
        gets its clouds masked and is normalised onto ``before`` like
        ``after``, for the per-pixel seasonal range of
        :func:`ecopatch.detect_changes`.
    max_source_px : int
        Bound on the source pixels read at once.
    block : int
        Side of the pass's windows, px: the background is read only around
        the parts of ``region`` the windows of :func:`blocks_touching` will
        compute (:func:`_background_within`).

    Returns
    -------
    PairSetup

    Raises
    ------
    ConfigError
        An unknown option, or ``normalize="rrn"`` without three common
        reflectance bands.
    NoValidPixelsError
        Nothing in the sample is observed at both dates.
    """
    if normalize not in ("auto", "rrn", "none"):
        raise ConfigError(f"normalize={normalize!r}; use 'auto', 'rrn' or 'none'")
    if clouds not in ("auto", "none"):
        raise ConfigError(f"clouds={clouds!r}; use 'auto' or 'none'")
    record: dict[str, Any] = {}
    for which, s in (("before", before), ("after", after)):
        q = s.info.quantity
        if _reflective(s) and not q.startswith("surface reflectance"):
            warnings.warn(
                f"{s.source}: the {which} scene is {q}, not surface reflectance; ecopatch removed haze by "
                "dark-object subtraction and normalises the dates onto each other, but cover types are less "
                "certain than with surface reflectance (Sentinel-2 L2A, Landsat Collection 2 Level-2)",
                NotSurfaceReflectanceWarning, stacklevel=caller_stacklevel(),
            )
            record[f"{which}_radiometry"] = f"{q} (haze: {dict(s.metadata.get('haze_removed', {})) or 'none'})"
        else:
            record[f"{which}_radiometry"] = q
    shared = [b for b in SPECTRAL_BANDS if b in before.bands and b in after.bands]
    spectral = _reflective(before) and _reflective(after) and len(shared) >= 3
    if normalize == "rrn" and not spectral:
        raise ConfigError("normalize='rrn' needs at least three reflectance bands common to both scenes")

    # the set-up's scattered reads hold GDAL's block cache at a pass's size, not GDAL's default
    with reads_outside_a_pass((before, after, *history)):
        # 1. clouds
        if clouds == "auto":
            before, after, record["clouds"] = _attach_cloud_masks(before, after, grid, region)

        # the background's coarse reads (step 3) need neither the sample nor the normalisation: on files
        # without overviews they decode both dates (near the area of interest, _background_within), so
        # they start now, in worker threads, and the sample is read and the normalisation fitted meanwhile
        from ecopatch.engine.tiling import set_back

        samples = _sample_windows(grid, region)
        offset = set_back(params.halo_px, read_reach_px((before, after, *history), grid), block)
        within = _background_within(grid, region, params, block, samples, offset)
        early = (_BackgroundReads.start((before, after), grid, region, tuple(shared), params, within)
                 if spectral else None)
        try:
            setup = _prepare(before, after, grid, region, params=params, normalize=normalize, clouds=clouds,
                             cover=cover, history=history, max_source_px=max_source_px, record=record,
                             shared=shared, spectral=spectral, early=early, samples=samples, within=within)
            return replace(setup, window_offset=offset)
        finally:
            if early is not None:
                early.close()


def _prepare(before: RasterSource, after: RasterSource, grid: Grid, region: np.ndarray, *, params: ChangeParams,
             normalize: str, clouds: str, cover: CoverParams | None, history: Sequence[RasterSource],
             max_source_px: int, record: dict[str, Any], shared: list[str], spectral: bool,
             early: _BackgroundReads | None, samples: list[Window],
             within: list[tuple[float, float, float, float]] | None) -> PairSetup:
    """Steps 2 to 5 of :func:`prepare_pair` (the clouds are attached, the sample's windows chosen)."""
    # 2. a sample of windows, read with the context the statistic needs
    halo = params.halo_px
    if not samples:
        raise NoValidPixelsError("the area of interest has no pixel of the analysis grid")
    # once a date's sample is read, the large decoded blocks this thread's handles keep of its files are let
    # go of while the background's reads go on (a 7-band stack tiled 2048: 98 MiB a file)
    raw_b = [read_on_grid(before, grid, w.pad(halo), max_source_px=max_source_px) for w in samples]
    release_large_blocks()
    raw_a = [read_on_grid(after, grid, w.pad(halo), max_source_px=max_source_px) for w in samples]
    release_large_blocks()

    if spectral:
        bands = tuple(shared)
        gains = None
        if normalize != "none":
            gains = _fit_normalisation(raw_b, raw_a, bands, halo)
            if gains is None and normalize == "rrn":
                raise NoValidPixelsError(
                    "relative radiometric normalisation: too few pixels observed at both dates in the "
                    "sample of the area of interest (cloud?); use normalize='none'"
                )
        if gains is None:
            gains = tuple((1.0, 0.0) for _ in bands)
            record["normalisation"] = "none"
        else:
            record["normalisation"] = "reduced-major-axis on pseudo-invariant pixels"
        d_before = SurfaceDeriver(bands, None, None, before.source)
        d_after = SurfaceDeriver(bands, gains, None, after.source)
        typed = "blue" in shared or ("swir1" in shared and "swir2" in shared)
    else:
        from ecopatch.analyses.restoration import prepare_cover_params

        bands = FRACTION_BANDS
        gains = tuple((1.0, 0.0) for _ in bands)
        d_before = SurfaceDeriver((), None, prepare_cover_params(before, cover), before.source)
        d_after = SurfaceDeriver((), None, prepare_cover_params(after, cover), after.source)
        typed = False
        record["normalisation"] = "none: the dates share fewer than three reflectance bands; cover fractions compared"

    lb = [d_before(_obs(r, grid, w.pad(halo))) for r, w in zip(raw_b, samples)]
    la = [d_after(_obs(r, grid, w.pad(halo))) for r, w in zip(raw_a, samples)]
    del raw_b, raw_a

    # 3. the slowly varying difference
    background = None
    if params.background_m > 0:
        background = _background(before, after, grid, region, bands, d_before, d_after, params, early=early,
                                 within=within)

    # 4. the noise of unchanged ground
    model = _noise_model(lb, la, samples, bands, gains, background, params, halo)
    record["change_model"] = model.summary()
    log.info("change model: %s", record["change_model"])

    # 5. earlier scenes, for each pixel's seasonal range
    hist = _prepare_history(before, history, grid, region, samples, bands=bands, spectral=spectral,
                            clouds=clouds, cover=cover, max_source_px=max_source_px, record=record)
    return PairSetup(before, after, model, d_before, d_after, typed, record, hist)


def _prepare_history(before: RasterSource, history: Sequence[RasterSource], grid: Grid, region: np.ndarray,
                     samples: Sequence[Window], *, bands: tuple[str, ...], spectral: bool,
                     clouds: str, cover: CoverParams | None, max_source_px: int,
                     record: dict[str, Any]) -> tuple[tuple[RasterSource, SurfaceDeriver], ...]:
    """Each earlier scene masked and normalised onto ``before`` (as the after date is)."""
    out = []
    used = []
    for h in history:
        if clouds == "auto":
            h, _, _ = _attach_cloud_masks(h, before, grid, region, only_first=True)
        if spectral and all(b in h.bands for b in bands) and _reflective(h):
            rb = [read_on_grid(before, grid, w, bands=bands, max_source_px=max_source_px) for w in samples]
            rh = [read_on_grid(h, grid, w, bands=bands, max_source_px=max_source_px) for w in samples]
            gains = _fit_normalisation(rb, rh, bands, 0)
            if gains is None:
                log.info("history scene %s: no normalisation onto the before scene (too little common ground)",
                         h.source)
                continue
            deriver = SurfaceDeriver(bands, gains, None, h.source)
        elif not spectral:
            from ecopatch.analyses.restoration import prepare_cover_params

            deriver = SurfaceDeriver((), None, prepare_cover_params(h, cover), h.source)
        else:
            log.info("history scene %s lacks the bands %s: left out", h.source, list(bands))
            continue
        out.append((h, deriver))
        used.append(h.date.isoformat() if h.date else h.source)
    if history:
        record["history"] = {"scenes": used, "left_out": len(history) - len(used)}
    return tuple(out)


def _obs(layers: Mapping[str, np.ndarray], grid: Grid, window: Window) -> Observation:
    """The bands of a :func:`read_on_grid` result as an Observation (for a derive)."""
    valid = np.asarray(layers["valid_fraction"]) > 0
    bands = {k: v for k, v in layers.items() if k != "valid_fraction"}
    return Observation(bands, valid, grid.subgrid(window))


def _sample_windows(g: Grid, parts: np.ndarray, *, size: int = 128, n: int = 24) -> list[Window]:
    """Up to ``n`` windows of ``size`` px, evenly spread over the chunks that meet any of ``parts``."""
    parts = np.asarray(parts, dtype=object)
    parts = parts[~(shapely.is_missing(parts) | shapely.is_empty(parts))]
    if not len(parts):
        return []
    win = g.window_from_bounds(tuple(shapely.total_bounds(parts)), clip=True)
    if win is None:
        return []
    chunks = list(g.chunks(size, win))
    rc = np.array([(w.row_off, w.col_off, w.height, w.width) for w in chunks], dtype=np.float64)
    a, _, c, _, e, f = tuple(g.transform)[:6]
    x0, x1 = c + a * rc[:, 1], c + a * (rc[:, 1] + rc[:, 3])
    y0, y1 = f + e * rc[:, 0], f + e * (rc[:, 0] + rc[:, 2])
    boxes = shapely.box(np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1))
    hit = np.unique(shapely.STRtree(parts).query(boxes, predicate="intersects")[0])
    cand = [chunks[i] for i in hit]
    if len(cand) <= n:
        return cand
    pick = np.unique(np.linspace(0, len(cand) - 1, n).round().astype(int))
    return [cand[i] for i in pick]


# ---------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------
def _core(a: np.ndarray, halo: int) -> np.ndarray:
    return a[halo:a.shape[0] - halo, halo:a.shape[1] - halo] if halo else a


def _fit_normalisation(raw_b: Sequence[Mapping[str, np.ndarray]], raw_a: Sequence[Mapping[str, np.ndarray]],
                       bands: tuple[str, ...], halo: int) -> tuple[tuple[float, float], ...] | None:
    """Per-band ``after = gain · before + offset`` on pseudo-invariant pixels (reduced major axis)."""
    x = {b: np.concatenate([_core(np.asarray(r[b], dtype=np.float64), halo).ravel() for r in raw_b]) for b in bands}
    y = {b: np.concatenate([_core(np.asarray(r[b], dtype=np.float64), halo).ravel() for r in raw_a]) for b in bands}
    ok = np.ones(x[bands[0]].shape, dtype=bool)
    for b in bands:
        ok &= np.isfinite(x[b]) & np.isfinite(y[b])
    if ok.sum() < 200:
        return None
    pif = ok.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        if "red" in bands and "nir" in bands:
            for d in (x, y):
                pif &= (d["nir"] - d["red"]) / (d["nir"] + d["red"]) < 0.3
        if "green" in bands and "swir1" in bands:
            for d in (x, y):
                pif &= (d["green"] - d["swir1"]) / (d["green"] + d["swir1"]) < 0.0
    if pif.sum() < max(1000, 0.02 * ok.sum()):
        pif = ok  # too little bare ground: fit on everything observed (trimmed below)
    x = {b: v[pif] for b, v in x.items()}
    y = {b: v[pif] for b, v in y.items()}
    stable = np.ones(int(pif.sum()), dtype=bool)
    fits: dict[str, tuple[float, float]] = {}
    for _ in range(5):
        fits = {}
        resid_z = np.zeros(stable.shape)
        for b in bands:
            xs, ys = x[b][stable], y[b][stable]
            sx, sy = float(np.std(xs)), float(np.std(ys))
            if len(xs) < 100 or sx == 0 or sy == 0:
                return None
            r = float(np.corrcoef(xs, ys)[0, 1])
            g = math.copysign(sy / sx, r) if r != 0 else 1.0
            o = float(np.mean(ys) - g * np.mean(xs))
            fits[b] = (float(g), o)
            res = y[b] - (g * x[b] + o)
            med = np.median(res[stable])
            mad = 1.4826 * np.median(np.abs(res[stable] - med)) or 1e-6
            resid_z = np.maximum(resid_z, np.abs(res - med) / mad)
        new = resid_z < 2.5
        if new.sum() < 100 or np.array_equal(new, stable):
            break
        stable = new
    if any(not (0.5 <= g <= 2.0) for g, _ in fits.values()):
        # raised while the background's reads run in other threads: under the caller's filters, not
        # inside one of their blocks (ecopatch._warnfilters)
        with filters_guard():
            warnings.warn(
                f"relative radiometric normalisation gave implausible gains "
                f"{ {b: round(g, 3) for b, (g, _) in fits.items()} }; not applied (the dates may differ too "
                "much, or the scenes may not show the same ground)",
                EcopatchWarning, stacklevel=caller_stacklevel(),
            )
        return None
    return tuple(fits[b] for b in bands)


# ---------------------------------------------------------------------------
# Coarse reads: clouds and the background
# ---------------------------------------------------------------------------
def _coarse_grid(grid: Grid, region: np.ndarray, res_m: float,
                 max_cells: int = MAX_MASK_CELLS) -> tuple[Grid, int]:
    """A grid of whole multiples of ``grid``'s pixels over the whole grid, no finer than ``res_m``."""
    px = pixel_size_m(grid)
    area_m2 = grid.height * grid.width * px * px
    res = max(res_m, math.sqrt(area_m2 / max_cells))
    k = max(1, int(math.floor(res / px + 1e-9)))
    return mask_grid(grid, k * px), k


def _coarse_read(scene: RasterSource, coarse: Grid, bands: Sequence[str] | None = None,
                 toa: bool = False) -> dict[str, np.ndarray]:
    """The scene's bands sampled at the coarse grid's cells (decimated read, then bilinear onto it)."""
    names = [b for b in (bands or scene.bands) if b in scene.bands]
    return _onto_coarse(scene, _coarse_fetch(scene, coarse, names), coarse, names, toa)


def _coarse_fetch(scene: RasterSource, coarse: Grid, names: Sequence[str],
                  within: Sequence[tuple[float, float, float, float]] | None = None) -> Observation:
    """The decimated read behind :func:`_coarse_read` (twice as fine as the coarse grid).

    ``within``: rectangles in ``coarse``'s CRS where the values are needed (NaN elsewhere).
    """
    max_px = max(coarse.height * coarse.width * 4, 10_000)
    return read_decimated(scene, aoi_bounds=coarse.bounds, aoi_crs=coarse.crs, max_pixels=max_px, bands=names,
                          within=within)


def _onto_coarse(scene: RasterSource, obs: Observation, coarse: Grid, names: Sequence[str],
                 toa: bool) -> dict[str, np.ndarray]:
    """Bands of a decimated read resampled bilinearly onto the coarse grid (haze added back for TOA)."""
    out = {}
    haze = dict(scene.metadata.get("haze_removed", {})) if toa else {}
    for b in names:
        v = np.asarray(obs.bands[b], dtype=np.float32)
        if b in haze:
            v = v + np.float32(haze[b])
        out[b] = reproject_array(v, obs.grid, coarse, resampling="bilinear")
    return out


def _coarse_reads(scenes: Sequence[RasterSource], coarse: Grid, bands: Sequence[str],
                  within: Sequence[tuple[float, float, float, float]] | None = None) -> list[dict[str, np.ndarray]]:
    """:func:`_coarse_read` of each scene (the bands it has), the scenes' files read at the same time.

    A decimated read of a file without overviews decodes all of it; GDAL
    does so without holding the GIL, so two dates take the time of one.
    The resampling stays in the calling thread (it silences a rasterio
    warning, which only the main thread may do safely).  ``within``: as
    for :func:`_coarse_fetch`.
    """
    from concurrent.futures import ThreadPoolExecutor

    names = [[b for b in bands if b in s.bands] for s in scenes]
    if len(scenes) < 2 or (os.cpu_count() or 1) < 2:
        obs = [_coarse_fetch(s, coarse, n, within) for s, n in zip(scenes, names)]
    else:
        with ThreadPoolExecutor(max_workers=len(scenes)) as ex:
            obs = list(ex.map(lambda sn: _coarse_fetch(sn[0], coarse, sn[1], within), zip(scenes, names)))
    return [_onto_coarse(s, o, coarse, n, False) for s, o, n in zip(scenes, obs, names)]


def _attach_cloud_masks(before: RasterSource, after: RasterSource, grid: Grid, region: np.ndarray, *,
                        only_first: bool = False) -> tuple[RasterSource, RasterSource, dict[str, Any]]:
    """Cloud and shadow masks for the scenes that have none (see :mod:`ecopatch.raster.clouds`).

    With ``only_first``, only ``before`` gets a mask; ``after`` is the
    reference date for the two-date tests.
    """
    need = [s.mask_status["kind"] == "none" and _reflective(s) and "nir" in s.bands for s in (before, after)]
    if only_first:
        need[1] = False
    info: dict[str, Any] = {}
    if not any(need):
        return before, after, info
    coarse, _ = _coarse_grid(grid, region, CLOUD_RES_M)
    core = ("blue", "green", "red", "nir", "swir1")
    reads = _coarse_reads((before, after), coarse, core)
    res = pixel_size_m(coarse)
    out = []
    for i, s in enumerate((before, after)):
        if not need[i]:
            out.append(s)
            continue
        here, other = reads[i], reads[1 - i]
        method = "two-date brightness test"
        cloud = edge = None
        if s.sensor.name.startswith("sentinel2") and all(b in s.bands for b in S2CLOUDLESS_BANDS):
            toa = _coarse_read(s, coarse, S2CLOUDLESS_BANDS, toa=True)
            prob = s2cloudless_probability(toa)
            if prob is not None:
                prob = np.nan_to_num(prob, nan=0.0)
                cloud, edge = prob >= S2CLOUDLESS_THRESHOLD, prob >= S2CLOUDLESS_EDGE
                method = f"s2cloudless (core >= {S2CLOUDLESS_THRESHOLD}, edge >= {S2CLOUDLESS_EDGE})"
        if cloud is None:
            cloud = temporal_cloud_test(here, other)
        cloud = cloud_objects(cloud, edge=edge, min_px=2, grow_px=1)
        dark = darkened(here, other) & ~cloud
        shadow, disp = project_shadows(cloud, dark, max_px=max(2, int(MAX_SHADOW_M / res)))
        name = f"ecopatch clouds: {method} + projected shadows, {res:.0f} m"
        stats = {"method": method, "resolution_m": round(res, 1), "cloud_share": round(float(cloud.mean()), 5),
                 "shadow_share": round(float(shadow.mean()), 5),
                 "shadow_displacement_m": None if disp is None else
                 [round(disp[0] * res, 1), round(disp[1] * res, 1), round(disp[2], 3)]}
        mask = CloudMask(name, cloud | shadow, coarse, stats)
        out.append(s.with_mask(mask))
        info["before" if i == 0 else "after"] = stats
        log.info("%s: %s", s.source, stats)
    return out[0], out[1], info


def _fill_nan_nearest(a: np.ndarray, max_cells: float | None = None,
                      memo: dict[str, Any] | None = None) -> np.ndarray:
    """NaN cells given the value of the nearest finite cell; with ``max_cells``, 0 where none is that near.

    ``memo``: a dict kept across calls (the bands of one background), so that the
    distance transform is computed once for bands missing the same cells.
    """
    from scipy.ndimage import distance_transform_edt

    bad = ~np.isfinite(a)
    if not bad.any():
        return a
    if bad.all():
        return np.zeros_like(a)
    memo = {} if memo is None else memo
    cached = memo.get("bad")
    if cached is None or memo["max_cells"] != max_cells or not np.array_equal(cached, bad):
        if max_cells is None:
            idx, far = distance_transform_edt(bad, return_distances=False, return_indices=True), None
        else:
            dist, idx = distance_transform_edt(bad, return_distances=True, return_indices=True)
            far = dist > max_cells
        memo.update(bad=bad, max_cells=max_cells, idx=tuple(idx), far=far)
    out = a[memo["idx"]]
    if memo["far"] is not None:
        out[memo["far"]] = 0
    return out


def _fill_reach(size: int) -> int:
    """Cells from an observed cell within which the background's gaps are filled (:func:`_background`).

    A coarse cell at most two cells from an observed one (the bilinear
    steps) has a median window (``size`` cells square) whose every cell
    lies this near an observed cell: its background is what an unbounded
    nearest fill gives.
    """
    return math.ceil((size // 2) * math.sqrt(2)) + 2


def _background_grid(grid: Grid, region: np.ndarray, params: ChangeParams) -> tuple[Grid, int, int] | None:
    """The background's coarse grid, its cell in pixels and the median's size in cells; None: no background."""
    px = pixel_size_m(grid)
    if params.background_m / px < 3:
        return None  # the background would be finer than three pixels: nothing smooth to take out
    coarse, k = _coarse_grid(grid, region, max(params.background_m / 12, px), MAX_BACKGROUND_CELLS)
    # at least 3 x 3 cells: on a large scene (a Landsat scene, a mosaic) the capped grid's cells can
    # be a third of background_m or coarser, and the median then spans somewhat more than it
    size = max(3, int(round(params.background_m / (k * px))))
    size += 1 - size % 2
    return coarse, k, size


def _background_within(grid: Grid, region: np.ndarray, params: ChangeParams, block: int,
                       samples: Sequence[Window], offset: int) -> list[tuple[float, float, float, float]] | None:
    """Rectangles (``grid``'s CRS) outside which no background value is used; None: no background.

    The pass computes, in each window of :func:`blocks_touching` (``block``
    px, set back by ``offset``: :func:`ecopatch.engine.tiling.set_back`), the bounding box of the parts
    of ``region`` in it (one pixel more,
    see :func:`ecopatch.analyses.encroachment._needed`) with the
    statistic's halo, and the noise model the sample windows with theirs.
    Each such box, grown by the background's reach (the median's half
    size, the gap fill's reach and three coarse cells, for the bilinear
    steps), is one rectangle.
    Where the reserves cover a small part of a large scene, the coarse
    reads then decode only the file blocks near them.
    """
    got = _background_grid(grid, region, params)
    if got is None or params.background_m <= 0:
        return None
    _, k, size = got
    from ecopatch.engine.tiling import blocks_touching

    halo = params.halo_px
    reach = halo + 3 + (size // 2 + _fill_reach(size) + 3) * k
    parts = np.asarray(region, dtype=object)
    rects = []
    for w, idx in blocks_touching(grid, parts, block=block, pad=1, offset=offset):
        clipped = shapely.clip_by_rect(parts[idx], *grid.subgrid(w.pad(2)).bounds)
        clipped = clipped[~shapely.is_empty(clipped)]
        if len(clipped):
            box = grid.window_from_bounds(tuple(shapely.total_bounds(clipped)), pad=reach, clip=True)
            if box is not None:
                rects.append(grid.subgrid(box).bounds)
    for w in samples:
        rects.append(grid.subgrid(w.pad(reach)).bounds)
    return rects


#: Decoded blocks (all bands of a pixel-interleaved one) from which the background's decimated reads of
#: both dates run one after the other in one thread (:class:`_BackgroundReads`).  The set-up's sample
#: windows, read meanwhile in the calling thread, each decode whole blocks, and with blocks this large
#: they decode more than the background's reads: a 7-band uint16 stack tiled 2048 (56 MiB blocks), the
#: sample about 10 s on one core.  One background thread then costs no time and holds one block and its
#: handle's copy fewer (the detection's set-up on the full 10980² pair: peak 0.97/0.92 -> 0.88/0.86 GiB;
#: float32, 112 MiB blocks: assess + detect 1.93 -> 1.44/1.47 GiB).  Not for tiles of 1024 (14 MiB),
#: whose sample is the shorter: assess + detect on that stack took 25.1-26.8 s -> 28.1-30.2 s.
ONE_BACKGROUND_READER_BYTES = 32 * 1024 * 1024


class _BackgroundReads:
    """The background's decimated reads of both dates, running in worker threads from :meth:`start`.

    :meth:`result` gives what :func:`_coarse_reads` would (the resampling onto the coarse grid
    runs in the calling thread, as there); :meth:`close` waits for the threads.
    """

    def __init__(self, scenes: Sequence[RasterSource], coarse: Grid, bands: Sequence[str],
                 within: Sequence[tuple[float, float, float, float]] | None = None) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.scenes, self.coarse, self.bands = tuple(scenes), coarse, tuple(bands)
        self.within = within
        self._names = [[b for b in bands if b in s.bands] for s in scenes]
        # blocks of ONE_BACKGROUND_READER_BYTES or more: one thread reads both dates in turn, holding one
        # decoded block fewer (see the constant)
        workers = 1 if large_block_bytes(scenes) >= ONE_BACKGROUND_READER_BYTES else len(scenes)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ecopatch-background")
        self._jobs = [self._pool.submit(_coarse_fetch, s, coarse, n, within) for s, n in zip(scenes, self._names)]

    @classmethod
    def start(cls, scenes: Sequence[RasterSource], grid: Grid, region: np.ndarray, bands: tuple[str, ...],
              params: ChangeParams, within: Sequence[tuple[float, float, float, float]] | None = None,
              ) -> _BackgroundReads | None:
        """Start the reads where a background will be estimated and two cores can share the work."""
        if params.background_m <= 0 or (os.cpu_count() or 1) < 2 or len(bands) < 3:
            return None
        got = _background_grid(grid, region, params)
        return None if got is None else cls(scenes, got[0], bands, within)

    def result(self, coarse: Grid, bands: Sequence[str],
               within: Sequence[tuple[float, float, float, float]] | None = None,
               ) -> list[dict[str, np.ndarray]] | None:
        """The coarse reads, or None when they were started for another grid, other bands or areas."""
        if coarse != self.coarse or tuple(bands) != self.bands or within != self.within:
            return None
        obs = [j.result() for j in self._jobs]
        return [_onto_coarse(s, o, coarse, n, False) for s, o, n in zip(self.scenes, obs, self._names)]

    def close(self) -> None:
        for j in self._jobs:
            j.cancel()
        self._pool.shutdown(wait=True)


def _background(before: RasterSource, after: RasterSource, grid: Grid, region: np.ndarray, bands: tuple[str, ...],
                d_before: SurfaceDeriver, d_after: SurfaceDeriver, params: ChangeParams, *,
                early: _BackgroundReads | None = None,
                within: Sequence[tuple[float, float, float, float]] | None = None) -> Background | None:
    """Median of the normalised band differences over ``params.background_m``, on a coarse grid.

    ``early``: the coarse reads, started before the sample was read (:meth:`_BackgroundReads.start`).
    ``within``: where the background is needed (:func:`_background_within`); elsewhere the
    differences are not read.

    Cells with no difference (cloud, no data, not read) take the nearest
    observed cell's within :func:`_fill_reach` cells, else 0, before the
    median: the background of a cell then depends only on the cells
    within ``size // 2 + _fill_reach(size)`` of it, whatever the extent
    read (the pass's windows, the reserves elsewhere).
    """
    from scipy.ndimage import median_filter

    got = _background_grid(grid, region, params)
    if got is None:
        return None
    coarse, k, size = got
    if d_before.cover is not None:
        return None  # fractions are compared: no radiometric background to remove
    reads = early.result(coarse, bands, within) if early is not None else None
    rb, raw_a = reads if reads is not None else _coarse_reads((before, after), coarse, bands, within)
    ra = d_after(Observation(raw_a, np.ones(coarse.shape, dtype=bool), coarse))
    filled = []
    memo: dict[str, Any] = {}  # the bands usually miss the same cells: one distance transform
    for b in bands:
        diff = np.asarray(ra[b], dtype=np.float32) - np.asarray(rb[b], dtype=np.float32)
        if not np.isfinite(diff).any():
            return None
        filled.append(_fill_nan_nearest(diff, _fill_reach(size), memo))

    def median(a: np.ndarray) -> np.ndarray:
        return median_filter(a, size=size, mode="nearest")

    if len(filled) > 1 and size > 3 and (os.cpu_count() or 1) > 1:
        # a wide median (13 x 13 cells on a scene of 1000² pixels: 35 ms a band) runs without the GIL
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2, thread_name_prefix="ecopatch-median") as ex:
            values = list(ex.map(median, filled))
    else:
        values = [median(a) for a in filled]
    return Background(np.stack(values).astype(np.float32), k)


# ---------------------------------------------------------------------------
# The noise model
# ---------------------------------------------------------------------------
def _noise_model(lb: Sequence[Mapping[str, np.ndarray]], la: Sequence[Mapping[str, np.ndarray]],
                 samples: Sequence[Window], bands: tuple[str, ...], gains: tuple[tuple[float, float], ...],
                 background: Background | None, params: ChangeParams, halo: int) -> ChangeModel:
    from ecopatch.compute.change import change_distances, smooth_nan

    x1s = [np.stack([np.asarray(b[n], dtype=np.float32) for n in bands]) for b in lb]
    x2s = [np.stack([np.asarray(a[n], dtype=np.float32) for n in bands]) for a in la]
    allb = np.concatenate([x[:, halo:-halo, halo:-halo].reshape(len(bands), -1) for x in x1s], axis=1)
    ok = np.isfinite(allb).all(axis=0)
    if ok.sum() < 100:
        raise NoValidPixelsError(
            "no pixel of the sample of the area of interest is observed at both dates (all cloud or no "
            "data?); use another date"
        )
    scale = np.maximum(np.nanstd(allb[:, ok], axis=1), 1e-3)
    bgs = [background.at(w.row_off - halo, w.col_off - halo, x.shape[1:]) if background is not None else None
           for w, x in zip(samples, x1s)]
    diffs = []
    for x1, x2, bg in zip(x1s, x2s, bgs):
        s1, s2 = smooth_nan(x1, params.smooth_px), smooth_nan(x2, params.smooth_px)
        d = s2 - s1
        if bg is not None:
            d -= bg
        d = (d / scale[:, None, None])[:, halo:-halo, halo:-halo].reshape(len(bands), -1)
        diffs.append(d[:, np.isfinite(d).all(axis=0)])
    D = np.concatenate(diffs, axis=1).T
    if len(D) > 200_000:
        D = D[:: int(math.ceil(len(D) / 200_000))]
    try:
        mu, cov = robust_covariance(D)
        W = whitening(cov)
    except (ValueError, np.linalg.LinAlgError):
        mu, W = np.zeros(len(bands)), np.eye(len(bands))
    proto = ChangeModel(bands, gains, tuple(float(s) for s in scale), W, mu, background=background)
    es, ms = [], []
    for x1, x2, bg in zip(x1s, x2s, bgs):
        e, m = change_distances(x1, x2, proto, params, bg)
        es.append(e[halo:-halo, halo:-halo].ravel())
        ms.append(m[halo:-halo, halo:-halo].ravel())
    e_c, e_s = robust_location_scale(np.concatenate(es))
    m_c, m_s = robust_location_scale(np.concatenate(ms))
    return replace(proto, e_centre=e_c, e_spread=e_s, m_centre=m_c, m_spread=m_s)
