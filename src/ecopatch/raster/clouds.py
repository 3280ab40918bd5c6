"""Clouds and their shadows for imagery that comes without a cloud mask.

Sentinel-2 L1C, Landsat Level-1 exports without QA_PIXEL, Gaofen and
stacks of band files carry no usable cloud mask, and an unmasked cloud or
its shadow is the brightest or darkest "change" in a pair.  This module
finds them from the two dates' own pixels, at a coarse resolution (60 m or
coarser), once per pair:

* **Clouds.**  For Sentinel-2 top-of-atmosphere reflectance with the ten
  bands it needs, the ``s2cloudless`` pixel classifier (Zupanc et al.,
  Sentinel Hub; a LightGBM model that ships inside its wheel): cores at
  probability ``>= 0.8`` grown over connected cells ``>= 0.5``
  (:data:`S2CLOUDLESS_THRESHOLD`, :data:`S2CLOUDLESS_EDGE`).  For any other product, a two-date test: a pixel
  is cloud at one date when it is brighter there than at the other date in
  every visible band and in NIR, its visible spectrum is flat (white), and
  it is bright in absolute terms (:func:`temporal_cloud_test`).  Either way,
  only objects of at least ``min_cloud_px`` cells count (bright roofs are
  single cells at this resolution), and they are grown by one cell.
* **Shadows.**  A cloud's shadow is the cloud displaced along the sun's
  azimuth by its height times the tangent of the sun's zenith angle.  The
  displacement is found as the one that best superposes the cloud mask on
  the cells that darkened in NIR and SWIR between the dates
  (:func:`shadow_displacement`, by FFT cross-correlation); the shadow is
  the cloud mask moved by 0.6–1.4 times that displacement (clouds at other
  heights), where the ground darkened (:func:`project_shadows`).

The result is a :class:`CloudMask`, a picklable
:class:`~ecopatch.raster.source.MaskProvider` holding the coarse mask, which a
scene uses as its mask (:meth:`~ecopatch.raster.scene.Scene.with_mask`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ecopatch.errors import ConfigError

if TYPE_CHECKING:
    from ecopatch.geo.grid import Grid
    from ecopatch.raster.scene import Scene

__all__ = [
    "S2CLOUDLESS_BANDS",
    "CloudMask",
    "cloud_objects",
    "project_shadows",
    "s2cloudless_probability",
    "shadow_displacement",
    "temporal_cloud_test",
]

log = logging.getLogger(__name__)

#: The bands s2cloudless reads, as ecopatch common names, in its order (B01, B02, B04, B05,
#: B08, B8A, B09, B10, B11, B12), top-of-atmosphere reflectance 0-1.
S2CLOUDLESS_BANDS: tuple[str, ...] = (
    "coastal", "blue", "red", "rededge1", "nir", "nir08", "nir09", "cirrus", "swir1", "swir2",
)
#: Cloud probability of a cloud's core, and down to which its connected edge counts
#: (s2cloudless's own default is 0.4 at 160 m with averaging; at 60 m, haze, bright roofs and
#: sand reach 0.5-0.7 on the OSCD cities but not 0.8, while real clouds do).
S2CLOUDLESS_THRESHOLD = 0.8
S2CLOUDLESS_EDGE = 0.5


def s2cloudless_probability(toa: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Cloud probability of each pixel (0-1) from Sentinel-2 top-of-atmosphere reflectance.

    Parameters
    ----------
    toa : mapping of str to ndarray of shape (rows, cols)
        The :data:`S2CLOUDLESS_BANDS`, top-of-atmosphere reflectance (DN /
        10 000, baseline offsets removed, *no* haze subtraction); NaN where
        not observed.

    Returns
    -------
    ndarray of float32 or None
        NaN where a band is NaN; None when a band is missing or the
        ``s2cloudless`` package is not installed.
    """
    if not all(b in toa for b in S2CLOUDLESS_BANDS):
        return None
    try:
        from s2cloudless import S2PixelCloudDetector
    except ImportError:  # pragma: no cover - a core dependency, but be kind
        log.warning("s2cloudless is not installed: Sentinel-2 clouds fall back to the two-date test")
        return None
    stack = np.stack([np.asarray(toa[b], dtype=np.float32) for b in S2CLOUDLESS_BANDS], axis=-1)
    bad = ~np.isfinite(stack).all(axis=-1)
    stack = np.nan_to_num(stack, nan=0.0)
    detector = S2PixelCloudDetector(threshold=S2CLOUDLESS_THRESHOLD, average_over=1, dilation_size=0,
                                    all_bands=False)
    prob = detector.get_cloud_probability_maps(stack[None])[0].astype(np.float32)
    prob[bad] = np.nan
    return prob


def temporal_cloud_test(here: Mapping[str, np.ndarray], other: Mapping[str, np.ndarray]) -> np.ndarray:
    """Cells that look like cloud at one date and not at the other (any sensor with blue to NIR).

    A cell is cloud in ``here`` when, against ``other``: blue rose by at least
    0.06 and green, red and NIR rose too (clouds brighten every band); its
    visible spectrum is flat (each of blue, green and red within 30 % of
    their mean: clouds are white) and not reddish (blue at least 0.85 of
    red, as in Fmask's haze-optimised transform); its mean visible
    reflectance is at least 0.18; and, where SWIR1 is present, SWIR1 is at
    least 0.12 (snow and water are dark in SWIR) but no more than 1.1 times
    the visible mean (new concrete, sand and bare building sites are
    brighter in SWIR than in the visible; clouds are not).

    Parameters
    ----------
    here, other : mapping of str to ndarray of shape (rows, cols)
        Reflectance (top-of-atmosphere or surface, 0-1) with ``blue``,
        ``green``, ``red`` and ``nir``; ``swir1`` optional.

    Returns
    -------
    ndarray of bool
    """
    need = ("blue", "green", "red", "nir")
    if not all(b in here and b in other for b in need):
        shape = np.shape(next(iter(here.values())))
        return np.zeros(shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        h = {b: np.asarray(here[b], dtype=np.float64) for b in here}
        o = {b: np.asarray(other[b], dtype=np.float64) for b in other}
        vis = (h["blue"] + h["green"] + h["red"]) / 3
        flat = np.ones(vis.shape, dtype=bool)
        for b in ("blue", "green", "red"):
            flat &= np.abs(h[b] / np.where(vis > 0, vis, np.nan) - 1) < 0.3
        # white or bluish (haze optimised transform: clouds are not redder than blue), unlike
        # soil, concrete and roofs, which redden towards the red band
        out = ((h["blue"] - o["blue"]) >= 0.06) & flat & (vis >= 0.18) & (h["blue"] >= 0.85 * h["red"])
        for b in ("green", "red", "nir"):
            out &= h[b] > o[b]
        if "swir1" in h:
            # clouds are bright in SWIR but darker there than in the visible (water and ice absorb);
            # bright ground (concrete, sand, bare construction sites) is brighter there
            out &= (h["swir1"] >= 0.12) & (h["swir1"] <= 1.1 * vis)
    return np.asarray(out & np.isfinite(vis), dtype=bool)


def cloud_objects(cloud: np.ndarray, *, edge: np.ndarray | None = None, min_px: int = 3,
                  grow_px: int = 1) -> np.ndarray:
    """Connected cloud cells of at least ``min_px`` cells (8-connectivity), grown by ``grow_px`` cells.

    With ``edge`` (a looser cloud test), each object is the connected part
    of ``cloud | edge`` around core cells: a cloud's thin fringe counts,
    haze or a bright roof with no cloud core does not.
    """
    from scipy import ndimage

    cloud = np.asarray(cloud, dtype=bool)
    if not cloud.any():
        return cloud.copy()
    eight = np.ones((3, 3), dtype=bool)
    lab, n = ndimage.label(cloud, structure=eight)
    size = np.bincount(lab.ravel(), minlength=n + 1)
    keep = size >= min_px
    keep[0] = False
    out = keep[lab]
    if edge is not None and out.any():
        lab, n = ndimage.label(out | np.asarray(edge, dtype=bool), structure=eight)
        hit = np.zeros(n + 1, dtype=bool)
        hit[np.unique(lab[out])] = True
        hit[0] = False
        out = hit[lab]
    if grow_px > 0 and out.any():
        out = ndimage.binary_dilation(out, structure=np.ones((3, 3), dtype=bool), iterations=grow_px)
    return out


def shadow_displacement(cloud: np.ndarray, dark: np.ndarray, *, max_px: int,
                        min_px: int = 2) -> tuple[int, int, float] | None:
    """The displacement (rows, cols) that best lays ``cloud`` onto ``dark``, and the share it covers.

    Parameters
    ----------
    cloud, dark : ndarray of bool, same shape
        Cloud cells, and cells that darkened (candidate shadow).
    max_px, min_px : int
        Longest and shortest displacement searched, cells.

    Returns
    -------
    (drow, dcol, share) or None
        ``share`` is the fraction of the displaced cloud cells that fall on
        dark cells; None when there is no cloud.
    """
    from scipy.signal import fftconvolve

    c = np.asarray(cloud, dtype=np.float32)
    n = float(c.sum())
    if n == 0:
        return None
    d = np.asarray(dark, dtype=np.float32)
    corr = fftconvolve(d, c[::-1, ::-1], mode="full")
    h, w = c.shape
    dy = np.arange(corr.shape[0])[:, None] - (h - 1)
    dx = np.arange(corr.shape[1])[None, :] - (w - 1)
    r2 = dy * dy + dx * dx
    corr = np.where((r2 <= max_px * max_px) & (r2 >= min_px * min_px), corr, -1.0)
    i, j = np.unravel_index(int(np.argmax(corr)), corr.shape)
    return int(dy[i, 0]), int(dx[0, j]), float(corr[i, j]) / n


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    if ys.stop - ys.start > 0 and xs.stop - xs.start > 0:
        out[yd, xd] = mask[ys, xs]
    return out


def project_shadows(cloud: np.ndarray, dark: np.ndarray, *, max_px: int, min_share: float = 0.3,
                    grow_px: int = 1) -> tuple[np.ndarray, tuple[int, int, float] | None]:
    """Cloud shadows: the cloud mask moved along its shadow displacement, where the ground darkened.

    The displacement is :func:`shadow_displacement`'s; clouds at other
    heights cast theirs 0.6–1.4 times as far.  When no displacement lays
    at least ``min_share`` of the clouds on dark cells, and three times the
    share of dark cells in the scene (what any displacement would give by
    chance), no shadow is returned (thin or high clouds, or no shadow in
    the scene).

    Returns
    -------
    shadow : ndarray of bool
    displacement : (drow, dcol, share) or None
    """
    from scipy import ndimage

    cloud = np.asarray(cloud, dtype=bool)
    dark = np.asarray(dark, dtype=bool)
    found = shadow_displacement(cloud, dark, max_px=max_px)
    out = np.zeros(cloud.shape, dtype=bool)
    if found is None or found[2] < max(min_share, 3 * float(dark.mean())):
        return out, found
    dy, dx, _ = found
    for t in np.linspace(0.6, 1.4, 9):
        out |= _shift(cloud, int(round(t * dy)), int(round(t * dx)))
    near_dark = ndimage.binary_dilation(dark, iterations=1) if dark.any() else dark
    out &= near_dark
    if grow_px > 0 and out.any():
        out = ndimage.binary_dilation(out, structure=np.ones((3, 3), dtype=bool), iterations=grow_px)
    return out & ~cloud, found


def darkened(here: Mapping[str, np.ndarray], other: Mapping[str, np.ndarray]) -> np.ndarray:
    """Cells at least 25 % darker ``here`` than in ``other`` in NIR (and SWIR1), beyond the scene's usual ratio.

    The ratio of the two dates is taken relative to its median over the
    scene, so a date that is darker everywhere (lower sun) is not shadow.
    """
    out = None
    for b in ("nir", "swir1"):
        if b not in here or b not in other:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.asarray(here[b], dtype=np.float64) / np.asarray(other[b], dtype=np.float64)
        fin = np.isfinite(r)
        med = float(np.median(r[fin])) if fin.any() else 1.0
        with np.errstate(invalid="ignore"):
            d = r < 0.75 * med
        out = d if out is None else out & d
    if out is None:
        return np.zeros(np.shape(next(iter(here.values()))), dtype=bool)
    return np.asarray(out, dtype=bool)


@dataclass(frozen=True)
class CloudMask:
    """A cloud and shadow mask computed for a scene, as a :class:`~ecopatch.raster.source.MaskProvider`.

    Attributes
    ----------
    name : str
        What made it (shown in provenance and the observation table).
    cloudy : ndarray of bool
        True for cloud or shadow, on ``grid``.
    grid : Grid
        The mask's (coarse) grid.
    stats : mapping
        Cloud and shadow shares (0-1) and the shadow displacement found.
    """

    name: str
    cloudy: np.ndarray
    grid: Grid
    stats: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def clear(self, scene: Scene, grid: Grid) -> np.ndarray:
        """True where ``grid``'s pixels are clear: the mask's nearest cell is neither cloud nor shadow."""
        from ecopatch.raster.ongrid import reproject_array

        cloudy = reproject_array(self.cloudy.astype(np.float32), self.grid, grid, resampling="nearest")
        return ~(np.nan_to_num(cloudy, nan=0.0) > 0.5)


def pixel_size_m(grid: Grid) -> float:
    """Ground size of ``grid``'s pixels along a row, m (degrees converted at the grid's mid-latitude)."""
    if grid.is_geographic:
        lat = (grid.bounds[1] + grid.bounds[3]) / 2
        return abs(grid.res[0]) * 111_320.0 * math.cos(math.radians(lat))
    info = grid.crs.axis_info
    return abs(grid.res[0]) * (info[0].unit_conversion_factor if info else 1.0)


def mask_grid(grid: Grid, res_m: float) -> Grid:
    """A grid over ``grid``'s bounds with cells of about ``res_m`` metres (a whole multiple of its pixel)."""
    from affine import Affine

    from ecopatch.geo.grid import Grid as _Grid

    if res_m <= 0:
        raise ConfigError(f"cloud mask resolution {res_m} m: must be > 0")
    k = max(1, int(math.floor(res_m / pixel_size_m(grid) + 1e-9)))
    h, w = max(1, math.ceil(grid.height / k)), max(1, math.ceil(grid.width / k))
    t = grid.transform
    return _Grid((h, w), Affine(t.a * k, 0, t.c, 0, t.e * k, t.f), grid.crs)
