"""Two-date change: how far each pixel changed against the scene's own noise, and into what.

The sky watch asks two questions of every pixel, and answers them apart:

1. **Did it change beyond what unchanged ground does between these two
   dates?**  After the later date is normalised onto the earlier one
   (:class:`ChangeModel.gains`, fitted on pseudo-invariant pixels), both
   dates are smoothed (a Gaussian of ``smooth_px`` pixels) and their band
   difference, less its slowly varying part (haze, illumination and
   seasonal drift over about a kilometre, :class:`ChangeModel.background`),
   is measured two ways, each tolerant of ``tolerance_px`` of
   misregistration (a pixel's distance to the best-matching pixel of the
   other date within that radius, both ways round, the larger kept):

   * a standardised change vector (each band's difference in units of the
     band's spread in the scene: CVA on z-scores), and
   * a Mahalanobis distance with the robust covariance of the differences
     of unchanged ground (the chi-square statistic of IR-MAD, with the
     no-change covariance estimated robustly instead of by reweighting).

   Each is turned into a robust z-score against the scene's own
   distribution (median and median absolute deviation over a sample of the
   area of interest) and the two are averaged: :func:`change_statistic`.
   A patch is a connected set of pixels with ``z >= z_grow`` that holds at
   least one pixel with ``z >= z_seed`` (hysteresis).

2. **From what into what?**  Each date is described by cover fractions
   (:func:`ecopatch.compute.cover.surface_fractions`: vegetation, bare ground,
   built surfaces, water) in the normalised space, and a patch is typed by
   its conversion, from the area-weighted mean fractions of its pixels
   (:func:`patch_type`):

   ==================  ====================================================
   ``water``           the water share rose by ``type_share`` (without
                       SWIR at both dates, also water is the larger part
                       of the ground after: NDWI alone rises on wet soil)
   ``construction``    the built share rose by ``type_share`` and built is
                       the larger part of the open ground after: ground
                       that was not built before and is built after
   ``bare_soil``       the ground is mostly bare or built after, and
                       vegetation fell or the bare share rose by
                       ``type_share`` (cleared, dug or demolished)
   ``vegetation_loss`` vegetation fell by ``type_share`` and is no longer
                       the larger part of the ground, or NDVI fell by
                       :data:`LOSS_NDVI_FALL` (forest thinned to
                       sparse cover; grass mown or grazed, a smaller fall
                       and still mostly green, is not a loss)
   ``vegetation_gain`` vegetation rose by ``type_share`` from ground that was
                       not mostly vegetated, or NDVI rose by
                       :data:`LOSS_NDVI_FALL` (reported apart)
   ==================  ====================================================

   A patch that changed spectrally without changing cover (a pit or a
   construction site that stays bare, a roof that stays a roof, a field
   that stays green, water that changes colour) is *not* reported: its
   ground was already what it is now.  Pixels that are vegetation at both
   dates or water at both dates never join a patch (seasons, turbidity).

Pixels not observed at both dates (cloud, shadow, no data) never change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ecopatch.errors import ConfigError
from ecopatch.options import option

if TYPE_CHECKING:
    from ecopatch.geo.grid import Window

__all__ = [
    "CLASS_NAMES",
    "ChangeModel",
    "ChangeParams",
    "PixelChange",
    "change_statistic",
    "dominant_class",
    "patch_type",
    "pixel_change",
    "seasonal_envelope",
    "smooth_nan",
    "tolerant_distance",
]

#: Set True (tests only) to force the NumPy reference instead of the numba kernel.
_NUMPY_ONLY = False

#: NDVI change of a cell wholly changed in vegetation (a forest logged to sparse shrub, grass
#: sown on bare ground): about 40 % of the range from closed canopy (0.85) to bare soil (0.15).
LOSS_REFERENCE_NDVI = 0.3

#: Fall of a patch's mean NDVI that makes it a vegetation loss though it stays mostly green:
#: about 30 % of the canopy-to-soil range.  Mown or grazed grass falls by about 0.15 (Slovenian
#: meadows, July to September 2015, measured); forest logged to 40 % shrub cover by 0.3 or more.
LOSS_NDVI_FALL = 0.2

#: Cover classes of one date, as reported in ``class_before`` / ``class_after``.
CLASS_NAMES: tuple[str, ...] = ("water", "vegetation", "sparse_vegetation", "bare", "built", "seasonal_cropland")


@dataclass(frozen=True)
class ChangeParams:
    """Thresholds of the change statistic and of the patch typing (see the module docstring).

    Parameters
    ----------
    z_seed : float
        A patch needs a pixel whose change stands this many robust standard
        deviations beyond the scene's unchanged ground (default 7).
    z_grow : float
        Pixels connected to such a pixel join its patch down to this
        (2.75; the measured sensitivity to 2.5 and 3 is in
        ``benchmarks/RESULTS.md``).
    smooth_px : float
        Gaussian smoothing before differencing, standard deviation in
        pixels of the analysis grid (1; 0 turns it off).
    tolerance_px : int
        Misregistration tolerated between the dates, pixels (1).
    type_share : float
        Rise or fall of a cover fraction (0-1), averaged over a patch, that
        types it (0.1).
    pixel_share : float
        A pixel belongs to a patch's outline when at least this share of it
        (0-1, its largest cover-fraction change) changed (default 0: any); partly
        changed cells at the edge count through ``rim_min``.
    rim_min : float
        A cell bordering a patch adds its changed share to the patch's
        ``change_m2`` when its statistic reaches this fraction (0-1) of
        ``z_grow`` (0.5).
    background_m : float
        Ground size of the window (m) over which the slowly varying part of
        the difference is taken out (720; 0 turns it off).
    """

    z_seed: float = option(7.0, help="how far a patch's seed stands out", unit="robust standard deviations",
                           lo=0.0, hi=100.0, lo_open=True)
    z_grow: float = option(2.75, help="how far a patch's other pixels stand out", unit="robust standard deviations",
                           lo=0.0, hi=100.0, lo_open=True)
    smooth_px: float = option(1.0, help="smoothing of the change statistic", unit="pixels", lo=0.0, hi=5.0)
    tolerance_px: int = option(1, help="misregistration tolerated", unit="pixels", lo=0, hi=3)
    type_share: float = option(0.1, help="share of a patch a change type needs", lo=0.0, hi=1.0, lo_open=True)
    pixel_share: float = option(0.0, help="share of the changed pixels a patch keeps", lo=0.0, hi=1.0)
    rim_min: float = option(0.5, help="rim pixels counted from this fraction of z_grow", lo=0.0, hi=1.0,
                            lo_open=True)
    background_m: float = option(720.0, help="window of the slowly varying background (0: off)", unit="m",
                                 lo=0.0, hi=20_000.0)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.z_grow) and math.isfinite(self.z_seed) and 0 < self.z_grow <= self.z_seed):
            raise ConfigError(
                f"ChangeParams: need 0 < z_grow <= z_seed (got z_grow={self.z_grow}, z_seed={self.z_seed})"
            )
        if not 0 <= self.smooth_px <= 5:
            raise ConfigError(f"ChangeParams.smooth_px={self.smooth_px}: must be in [0, 5] pixels")
        if int(self.tolerance_px) != self.tolerance_px or not 0 <= self.tolerance_px <= 3:
            raise ConfigError(f"ChangeParams.tolerance_px={self.tolerance_px}: must be 0, 1, 2 or 3 pixels")
        for name in ("type_share", "rim_min"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise ConfigError(f"ChangeParams.{name}={v}: must be in (0, 1]")
        if not 0 <= self.pixel_share <= 1:
            raise ConfigError(f"ChangeParams.pixel_share={self.pixel_share}: must be in [0, 1]")
        if not (math.isfinite(self.background_m) and self.background_m >= 0):
            raise ConfigError(f"ChangeParams.background_m={self.background_m}: must be >= 0 m")
        object.__setattr__(self, "tolerance_px", int(self.tolerance_px))

    @property
    def halo_px(self) -> int:
        """Pixels of context a window needs on each side for exact results (smoothing, tolerance, rim)."""
        return int(math.ceil(3 * self.smooth_px)) + self.tolerance_px + 1


@dataclass(frozen=True)
class ChangeModel:
    """What a scene pair's change statistic needs, fitted once per pair from a sample of it.

    Attributes
    ----------
    bands : tuple of str
        The layers compared (reflectance bands both dates have, or cover
        fractions for pairs without common reflectance bands).
    gains : tuple of (float, float)
        Per band, ``before-equivalent = (after - offset) / gain``.
    scale : tuple of float
        Per band, the spread of the before date (standard deviation,
        reflectance), by which differences are standardised.
    whitening : ndarray of shape (n, n)
        ``W`` with ``W.T @ W`` the inverse of the robust covariance of the
        standardised differences of unchanged ground.
    centre : ndarray of shape (n,)
        Their robust mean.
    e_centre, e_spread, m_centre, m_spread : float
        Median and median absolute deviation (scaled to a standard
        deviation) of the two distances over the sample.
    background : Background or None
        The slowly varying part of the normalised differences.
    """

    bands: tuple[str, ...]
    gains: tuple[tuple[float, float], ...]
    scale: tuple[float, ...]
    whitening: np.ndarray
    centre: np.ndarray
    e_centre: float = 0.0
    e_spread: float = 1.0
    m_centre: float = 0.0
    m_spread: float = 1.0
    background: Background | None = None

    def normalise(self, after: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The after date's bands mapped onto the before date's radiometry (float32)."""
        out = dict(after)
        for b, (g, o) in zip(self.bands, self.gains):
            if b in out:
                x = np.asarray(out[b], dtype=np.float32) - np.float32(o)
                x /= np.float32(g)
                out[b] = x
        return out

    def summary(self) -> dict[str, Any]:
        """Plain numbers for the outputs' provenance."""
        return {
            "bands": list(self.bands),
            "normalisation": {b: {"gain": round(g, 5), "offset": round(o, 5)} for b, (g, o) in
                              zip(self.bands, self.gains)},
            "noise": {"cva_median": round(self.e_centre, 4), "cva_mad": round(self.e_spread, 4),
                      "mahalanobis_median": round(self.m_centre, 4), "mahalanobis_mad": round(self.m_spread, 4)},
            "background_removed": self.background is not None,
        }


@dataclass(frozen=True)
class Background:
    """The slowly varying part of the normalised band differences, on a coarse grid.

    ``values`` has shape (bands, rows, cols) on ``grid``, a grid whose
    cells are ``factor`` × ``factor`` pixels of the analysis grid, aligned
    with its origin; it is interpolated bilinearly at the pixel centres
    (:meth:`at`), so each pixel's value depends only on its position and
    windowed results equal whole-raster ones.
    """

    values: np.ndarray
    factor: int

    def at(self, row_off: int, col_off: int, shape: tuple[int, int]) -> np.ndarray:
        """Values at the pixels ``[row_off, row_off + rows) × [col_off, col_off + cols)`` of the analysis grid."""
        k = float(self.factor)
        v = np.asarray(self.values, dtype=np.float32)
        r0, r1, wr = _linear_weights((np.arange(row_off, row_off + shape[0]) + 0.5) / k - 0.5, v.shape[1])
        c0, c1, wc = _linear_weights((np.arange(col_off, col_off + shape[1]) + 0.5) / k - 0.5, v.shape[2])
        # only the coarse cells the window reaches (a few of a tile's hundreds), indexes relative to them
        rs, cs = int(r0[0]), int(c0[0])
        v = v[:, rs:int(r1[-1]) + 1, cs:int(c1[-1]) + 1]
        r0, r1, c0, c1 = r0 - rs, r1 - rs, c0 - cs, c1 - cs
        if not _NUMPY_ONLY:
            from ecopatch.compute.kernels import bilinear_kernel

            fused = bilinear_kernel(v, r0, r1, wr, c0, c1, wc)  # bit-identical to the below
            if fused is not None:
                return fused
        # separable bilinear interpolation, edge values beyond the grid (as map_coordinates' "nearest")
        top = v[:, r0] * (1 - wr)[None, :, None] + v[:, r1] * wr[None, :, None]
        return (top[:, :, c0] * (1 - wc) + top[:, :, c1] * wc).astype(np.float32)


def _linear_weights(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper neighbours and the upper weight of coordinates ``x`` on ``n`` samples, clamped."""
    x = np.clip(x, 0.0, n - 1.0)
    i0 = np.floor(x).astype(np.intp)
    i1 = np.minimum(i0 + 1, n - 1)
    return i0, i1, (x - i0).astype(np.float32)


@dataclass(frozen=True)
class PixelChange:
    """Per-pixel result of :func:`pixel_change`.

    ``code`` (uint8: 0 none, 1 candidate disturbance, 2 candidate vegetation
    gain), ``prob`` (0-1, how far beyond the growth threshold the pixel's
    statistic lies), ``share`` (0-1, estimated changed share of the pixel),
    ``observed`` (bool, observed at both dates), ``seed`` (bool, statistic
    at least ``z_seed``), ``z`` (the statistic), ``rim_disturbance`` /
    ``rim_gain`` (0-1, changed share of pixels below the thresholds, counted
    for the rim of a patch) and ``water_gain`` (0-1, share of the pixel newly
    water by the linear estimate).
    """

    code: np.ndarray
    prob: np.ndarray
    share: np.ndarray
    observed: np.ndarray
    rim_disturbance: np.ndarray | None = None
    rim_gain: np.ndarray | None = None
    seed: np.ndarray | None = None
    z: np.ndarray | None = field(default=None, compare=False)
    water_gain: np.ndarray | None = field(default=None, compare=False)

    def on_block(self, at: Window, shape: tuple[int, int]) -> PixelChange:
        """The change of a part of a block (``at``, in the block's frame) on the whole block (``shape``).

        Outside the part nothing changed or was observed: codes, shares and
        rims 0, the statistic NaN.
        """
        if self.code.shape == tuple(shape):
            return self

        def put(a: np.ndarray, fill: Any) -> np.ndarray:
            out = np.full(shape, fill, dtype=a.dtype)
            out[at.slices] = a
            return out

        def opt(a: np.ndarray | None, fill: Any) -> np.ndarray | None:
            return None if a is None else put(a, fill)

        return PixelChange(put(self.code, 0), put(self.prob, 0), put(self.share, 0), put(self.observed, False),
                           opt(self.rim_disturbance, 0), opt(self.rim_gain, 0), opt(self.seed, False),
                           opt(self.z, np.nan), opt(self.water_gain, 0))


# ---------------------------------------------------------------------------
# The change statistic
# ---------------------------------------------------------------------------
def smooth_nan(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing that ignores NaN (normalised convolution); NaN stays NaN.

    Parameters
    ----------
    x : ndarray of shape (rows, cols) or (bands, rows, cols)
    sigma : float
        Standard deviation, pixels (truncated at 3 sigma); 0 returns a copy.
    """
    from scipy.ndimage import gaussian_filter

    x = np.asarray(x, dtype=np.float32)
    if sigma <= 0:
        return x.copy()
    if x.ndim == 3 and not _NUMPY_ONLY:
        from ecopatch.compute.kernels import smooth_nan_kernel

        fused = smooth_nan_kernel(x, sigma)  # bit-identical to the scipy path below
        if fused is not None:
            return fused
    if x.ndim == 3:
        ok = np.isfinite(x)
        if len(x) > 1 and (ok == ok[0]).all():
            # the same pixels observed in every band (the usual case): one weight image for all
            den = gaussian_filter(ok[0].astype(np.float32), sigma, mode="constant", cval=0.0, truncate=3.0)
            out = np.empty_like(x)
            for i, b in enumerate(x):
                num = gaussian_filter(np.where(ok[0], b, np.float32(0.0)), sigma, mode="constant", cval=0.0,
                                      truncate=3.0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[i] = num / den
            out[:, ~ok[0]] = np.nan
            return out
        return np.stack([smooth_nan(b, sigma) for b in x])
    ok = np.isfinite(x)
    v = np.where(ok, x, 0.0).astype(np.float32)
    w = ok.astype(np.float32)
    num = gaussian_filter(v, sigma, mode="constant", cval=0.0, truncate=3.0)
    den = gaussian_filter(w, sigma, mode="constant", cval=0.0, truncate=3.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~ok] = np.nan
    return out.astype(np.float32)


def tolerant_distance(y1: np.ndarray, y2: np.ndarray, radius: int) -> np.ndarray:
    """Distance between two dates that tolerates ``radius`` pixels of misregistration.

    For each pixel ``p``, the Euclidean distance from ``y1[:, p]`` to the
    nearest of ``y2[:, p + s]`` over shifts ``|s| <= radius``, and from
    ``y2[:, p]`` to the nearest ``y1[:, p + s]``; the larger of the two.
    An edge that moved by a pixel between the dates is then not change; a
    new object is, as neither date has a pixel like the other's.

    Parameters
    ----------
    y1, y2 : ndarray of float32, shape (bands, rows, cols)
        NaN where not observed (such neighbours are skipped).
    radius : int

    Returns
    -------
    ndarray of float32, shape (rows, cols)
        NaN where either date is not observed.
    """
    from ecopatch.compute.kernels import tolerant_kernel

    y1 = np.ascontiguousarray(y1, dtype=np.float32)
    y2 = np.ascontiguousarray(y2, dtype=np.float32)
    fused = tolerant_kernel(y1, y2, int(radius)) if not _NUMPY_ONLY else None
    if fused is not None:
        return fused
    return _tolerant_numpy(y1, y2, int(radius))


def _tolerant_numpy(y1: np.ndarray, y2: np.ndarray, r: int) -> np.ndarray:
    b, h, w = y1.shape
    big = np.float32(np.inf)

    def padded(y: np.ndarray) -> np.ndarray:
        return np.pad(y, ((0, 0), (r, r), (r, r)), constant_values=np.nan)

    p1, p2 = padded(y1), padded(y2)
    d12 = np.full((h, w), big, dtype=np.float32)
    d21 = np.full((h, w), big, dtype=np.float32)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            s2 = p2[:, r + dy:r + dy + h, r + dx:r + dx + w]
            s1 = p1[:, r + dy:r + dy + h, r + dx:r + dx + w]
            a = np.sum((s2 - y1) ** 2, axis=0, dtype=np.float32)
            c = np.sum((y2 - s1) ** 2, axis=0, dtype=np.float32)
            d12 = np.fmin(d12, a)
            d21 = np.fmin(d21, c)
    out = np.sqrt(np.maximum(d12, d21)).astype(np.float32)
    bad = ~(np.isfinite(y1).all(axis=0) & np.isfinite(y2).all(axis=0))
    out[bad] = np.nan
    return out


def change_statistic(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray], model: ChangeModel,
                     params: ChangeParams, *, background: np.ndarray | None = None,
                     z_floor: float | None = None) -> np.ndarray:
    """The robust z-score of each pixel's change against the scene's unchanged ground.

    Parameters
    ----------
    before, after : mapping of str to ndarray of shape (rows, cols)
        The model's bands; ``after`` already normalised
        (:meth:`ChangeModel.normalise`).  NaN where not observed.
    model : ChangeModel
    params : ChangeParams
    background : ndarray of shape (bands, rows, cols), optional
        The slowly varying part of the difference at these pixels
        (:meth:`Background.at`).
    z_floor : float, optional
        Exact only at and above this value: a pixel whose statistic
        *without* the misregistration tolerance is below it gets that value,
        an upper bound of the tolerant one (which is then below it too).
        The detection passes the lowest threshold it uses (the rim's),
        which skips the neighbourhood search for most pixels.

    Returns
    -------
    ndarray of float32, shape (rows, cols)
        The mean of the two distances' robust z-scores; NaN where either
        date is not observed.
    """
    x1 = np.stack([np.asarray(before[b], dtype=np.float32) for b in model.bands])
    x2 = np.stack([np.asarray(after[b], dtype=np.float32) for b in model.bands])
    if z_floor is not None and not _NUMPY_ONLY:
        from ecopatch.compute.kernels import smoothed_statistic_kernel

        # _scaled's arithmetic fused with the statistic (same float32 operations in the same order)
        fused = smoothed_statistic_kernel(
            smooth_nan(x1, params.smooth_px), smooth_nan(x2, params.smooth_px), background,
            np.asarray(model.scale, dtype=np.float32), np.asarray(model.whitening, dtype=np.float32),
            np.asarray(model.centre, dtype=np.float32), int(params.tolerance_px),
            (model.e_centre, model.e_spread, model.m_centre, model.m_spread), z_floor)
        if fused is not None:
            return fused
    e, m = change_distances(x1, x2, model, params, background)
    ze = (e - np.float32(model.e_centre)) / np.float32(model.e_spread)
    zm = (m - np.float32(model.m_centre)) / np.float32(model.m_spread)
    z = (ze + zm) * np.float32(0.5)
    return z.astype(np.float32)


def _scaled(x1: np.ndarray, x2: np.ndarray, model: ChangeModel, params: ChangeParams,
            background: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both dates smoothed and scaled (``y1, y2``), and whitened (``z1, z2``), as the distances compare them."""
    s1 = smooth_nan(x1, params.smooth_px)
    s2 = smooth_nan(x2, params.smooth_px)
    scale = np.asarray(model.scale, dtype=np.float32)[:, None, None]
    d = s2 - s1
    if background is not None:
        d -= background.astype(np.float32)
    y1 = s1 / scale
    y2 = y1 + d / scale
    W = np.asarray(model.whitening, dtype=np.float32)
    mu = np.asarray(model.centre, dtype=np.float32)[:, None, None]
    z1 = np.einsum("ij,jhw->ihw", W, y1)
    z2 = np.einsum("ij,jhw->ihw", W, y2 - mu)
    return y1, y2, z1, z2


def change_distances(x1: np.ndarray, x2: np.ndarray, model: ChangeModel, params: ChangeParams,
               background: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The standardised-CVA and Mahalanobis tolerant distances (see :func:`change_statistic`)."""
    y1, y2, z1, z2 = _scaled(x1, x2, model, params, background)
    e = tolerant_distance(y1, y2, params.tolerance_px)
    m = tolerant_distance(z1, z2, params.tolerance_px)
    return e, m


def pixel_change(z: np.ndarray, before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray],
                 params: ChangeParams, *, aoi: np.ndarray | None = None,
                 envelope: Mapping[str, np.ndarray] | None = None) -> PixelChange:
    """Candidate change pixels from the statistic and the two dates' cover fractions.

    Parameters
    ----------
    z : ndarray of shape (rows, cols)
        :func:`change_statistic`.
    before, after : mapping of str to ndarray
        ``veg``, ``bare``, ``built`` and ``water`` fractions (0-1) of each
        date (:func:`ecopatch.compute.cover.surface_fractions`).
    params : ChangeParams
    aoi : ndarray of bool, optional
        Pixels that may change (inside the area of interest).
    envelope : mapping of str to ndarray, optional
        Each pixel's own range over earlier dates (:func:`seasonal_envelope`).
        With it, a pixel changes only when its after state lies outside that
        range by ``type_share`` (less vegetated, more open ground, more water
        than ever, or mostly built where it never was): a field bare after
        harvest, as it was in earlier seasons, is not a change.

    Returns
    -------
    PixelChange
    """
    z = np.asarray(z, dtype=np.float32)
    f = {k: (np.asarray(before[k], dtype=np.float32), np.asarray(after[k], dtype=np.float32))
         for k in ("veg", "bare", "built", "water")}
    observed = np.isfinite(z)
    for b, a in f.values():
        observed &= np.isfinite(b) & np.isfinite(a)
    inside = observed if aoi is None else observed & aoi
    with np.errstate(invalid="ignore"):
        dveg = f["veg"][1] - f["veg"][0]
        # vegetation at both dates that did not lose vegetation (greener, browner, another crop
        # stage), and water at both dates (colour, turbidity, waves): no change of cover
        ndvi_drop = _ndvi_drop(before, after)
        stable_veg = ((f["veg"][0] >= 0.5) & (f["veg"][1] >= 0.5) & (dveg > -params.type_share)
                      & (ndvi_drop < params.type_share))
        stable_water = (f["water"][0] >= 0.5) & (f["water"][1] >= 0.5)
        share = np.maximum.reduce([np.abs(a - b) for b, a in f.values()])
        lin, water_lin = _linear_shares(before, after)
        share = np.maximum(share, lin)
        share = np.clip(np.nan_to_num(share), 0, 1).astype(np.float32)
        # a pixel whose own cover hardly changed is not part of a patch, however much its smoothed
        # neighbourhood did (outlines follow the changed ground, not the smoothing kernel)
        eligible = inside & ~stable_veg & ~stable_water
        if envelope is not None:
            t = params.type_share
            # bare and built are told apart less surely than vegetation from either (wet or dark
            # ploughed soil can read as partly built): the open ground is compared as one, and a
            # rise of the built share counts where the ground is mostly built after
            open_a = f["bare"][1] + f["built"][1]
            new_state = ((f["veg"][1] < envelope["veg_min"] - t) | (f["water"][1] > envelope["water_max"] + t)
                         | (open_a > envelope["open_max"] + t)
                         | ((f["built"][1] > envelope["built_max"] + t) & (f["built"][1] >= 0.5))
                         | (f["veg"][1] > envelope["veg_max"] + t))
            eligible &= new_state | ~np.isfinite(envelope["veg_min"])
        cand = eligible & (z >= params.z_grow) & (share >= params.pixel_share)
        gain = cand & (dveg >= params.type_share)
        code = np.zeros(z.shape, dtype=np.uint8)
        code[cand & ~gain] = 1
        code[gain] = 2
        seed = cand & (z >= params.z_seed)
        prob = np.where(cand, np.clip((z - params.z_grow) / (params.z_seed - params.z_grow), 0, 1), 0.0)
        near = eligible & ~cand & (z >= params.rim_min * params.z_grow)
        rim_d = np.where(near & (dveg < params.type_share), share, 0.0).astype(np.float32)
        rim_g = np.where(near & (dveg >= params.type_share), share, 0.0).astype(np.float32)
    return PixelChange(code, prob.astype(np.float32), np.where(cand, share, 0.0).astype(np.float32), observed,
                       rim_d, rim_g, seed, z, water_lin)


def _ndvi_drop(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray]) -> np.ndarray:
    """Fall of NDVI over the canopy-to-soil range (0.65): the share of vegetation cleared, nearly linear."""
    if "ndvi" not in before or "ndvi" not in after:
        return np.zeros(np.shape(before["veg"]), dtype=np.float32)
    with np.errstate(invalid="ignore"):
        d = (np.asarray(before["ndvi"], dtype=np.float32) - np.asarray(after["ndvi"], dtype=np.float32)) / 0.65
    return np.nan_to_num(d).astype(np.float32)


def _linear_shares(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Changed share, and share newly water, of each pixel from quantities that mix linearly.

    The cover fractions saturate (a cell 80 % under canopy reads as fully
    vegetated), which is right for typing but undercounts the changed area
    of cells at a patch's edge.  Reflectance and, nearly, NDVI mix linearly:
    a cell vegetated at both dates counts as wholly changed (thinned or
    densified all over) when its NDVI fell or rose by
    :data:`LOSS_REFERENCE_NDVI` (forest logged to sparse shrub, about 40 %
    of the canopy-to-soil range), proportionally below; a cell converted to
    or from open ground counts in proportion to its NDVI change over the
    canopy-to-soil range (0.7); and the share turned
    to water is the fall of NIR and SWIR1 towards water's reflectance (see
    :func:`water_gain_linear`, here per pixel).  Zero where the layers are
    missing.
    """
    shape = np.shape(before["veg"])
    veg = np.zeros(shape, dtype=np.float32)
    water = np.zeros(shape, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        if "ndvi" in before and "ndvi" in after:
            dv = np.abs(np.asarray(after["ndvi"]) - np.asarray(before["ndvi"]))
            # a cell that stays vegetated either side was thinned (or grew denser) all over: it counts
            # fully from LOSS_REFERENCE_NDVI; a cell converted to open ground or water counts in
            # proportion to the canopy it lost (NDVI mixes about linearly between 0.85 and 0.15)
            green = (np.asarray(after["veg"]) >= 0.2) & (np.asarray(before["veg"]) >= 0.2)
            veg = np.where(green, dv / np.float32(LOSS_REFERENCE_NDVI), dv / np.float32(0.7))
        need = ("nir", "swir1", "blue", "green", "mndwi")
        if all(k in before and k in after for k in need):
            def fall(b: str, dark: float) -> np.ndarray:
                x, y = np.asarray(before[b], dtype=np.float32), np.asarray(after[b], dtype=np.float32)
                return np.clip((x - y) / np.maximum(x - np.float32(dark), np.float32(0.05)), 0, 1)

            rise = np.asarray(after["mndwi"]) - np.asarray(before["mndwi"])
            gate = (np.clip((rise - 0.05) / 0.1, 0, 1) * np.clip((0.18 - np.asarray(after["blue"])) / 0.03, 0, 1)
                    * (np.asarray(after["green"]) > np.asarray(after["nir"])))
            water = np.fmin(fall("nir", 0.03), fall("swir1", 0.01)) * gate
    water = np.nan_to_num(water).astype(np.float32)
    return np.fmax(np.nan_to_num(veg).astype(np.float32), water), water


def seasonal_envelope(dates: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Each pixel's own range of cover over earlier dates: its seasons, its crop rotation.

    Parameters
    ----------
    dates : sequence of mappings of str to ndarray
        ``veg``, ``bare``, ``built`` and ``water`` fractions (0-1) of each
        earlier date (the before date among them), NaN where not observed.

    Returns
    -------
    dict of str to ndarray of float32
        ``veg_min``, ``veg_max``, ``bare_max``, ``built_max``,
        ``water_max``, ``open_max`` (bare + built; NaN where no date
        observed the pixel), and
        ``cropland`` (1.0 where the pixel was both vegetated, fraction
        >= 0.5, and bare, vegetation < 0.2, at some dates: seasonal
        cropland; else 0.0).
    """
    # NaN-aware extremes without numpy's all-NaN RuntimeWarning: this runs in worker threads,
    # where silencing it with warnings.catch_warnings would race with the caller's warning filters
    veg = np.stack([np.asarray(d["veg"], dtype=np.float32) for d in dates])
    out = {"veg_min": _nan_extreme(veg, np.fmin), "veg_max": _nan_extreme(veg, np.fmax)}
    for k in ("bare", "built", "water"):
        out[f"{k}_max"] = _nan_extreme(np.stack([np.asarray(d[k], dtype=np.float32) for d in dates]), np.fmax)
    out["open_max"] = _nan_extreme(np.stack([np.asarray(d["bare"], dtype=np.float32)
                                             + np.asarray(d["built"], dtype=np.float32) for d in dates]), np.fmax)
    with np.errstate(invalid="ignore"):
        crop = (out["veg_max"] >= 0.5) & (out["veg_min"] < 0.2)
    out["cropland"] = crop.astype(np.float32)
    return {k: v.astype(np.float32) for k, v in out.items()}


def _nan_extreme(stack: np.ndarray, op: np.ufunc) -> np.ndarray:
    """``np.fmin`` / ``np.fmax`` over the first axis: NaN ignored, NaN where every layer is NaN."""
    return op.reduce(stack, axis=0)


# ---------------------------------------------------------------------------
# Types and classes of patches
# ---------------------------------------------------------------------------
def dominant_class(veg: float, bare: float, built: float, water: float) -> str:
    """The cover class of a patch at one date from its mean fractions (0-1).

    ``water`` from half the area, ``vegetation`` from half, then
    ``sparse_vegetation`` from a fifth; otherwise ``bare`` or ``built``,
    whichever is larger.
    """
    if not all(math.isfinite(v) for v in (veg, bare, built, water)):
        return "unknown"
    if water >= 0.5:
        return "water"
    if veg >= 0.5:
        return "vegetation"
    if veg >= 0.2:
        return "sparse_vegetation"
    return "bare" if bare >= built else "built"


def patch_type(before: Mapping[str, float], after: Mapping[str, float], params: ChangeParams, *,
               category: str = "disturbance", typed: bool = True, water_gain: float | None = None,
               swir: bool = True) -> str | None:
    """A patch's change type from the mean cover fractions of its pixels at both dates.

    Parameters
    ----------
    before, after : mapping of str to float
        ``veg``, ``bare``, ``built`` and ``water`` (0-1), area-weighted means
        over the patch; ``ndvi`` optional.
    params : ChangeParams
    category : {"disturbance", "gain"}
    typed : bool
        False when the scenes lack the bands that tell bare ground from
        built surfaces: what would be ``construction`` or ``bare_soil`` is
        then ``disturbance`` (untyped).
    water_gain : float, optional
        Share of the patch newly covered by water estimated from the fall of
        its NIR and SWIR reflectance (:func:`water_gain_linear`); the water
        share's rise counts as at least this.
    swir : bool
        Whether both dates have SWIR1.  Without it the water share comes
        from NDWI and NIR alone, which ploughed wet soil, shade and dark
        roofs raise too: a patch is then ``water`` only where water is the
        larger part of its ground after (on NAIP 2016 -> 2020, two fields
        ploughed to bare soil, water share 0.11 and 0.21 after, were typed
        new water without this).

    Notes
    -----
    The type follows the conversion of the patch's class
    (:func:`dominant_class` of the same means) where the two could
    disagree: ``water`` is not given to ground that is mostly built or bare
    after and was not so before, whatever its water share did (dark new
    roofs and their shade raise it), and ``construction`` only to ground
    mostly built or bare after; a built share that rose on ground still
    partly vegetated is a vegetation loss, or no change of cover.  On the
    ten OSCD cities this took the macro F1 of construction + bare-soil
    patches from 0.324 to 0.336, no city lower
    (``benchmarks/bench_change_realdata.py``, RESULTS.md).

    Returns
    -------
    str or None
        One of ``water``, ``construction``, ``bare_soil``,
        ``vegetation_loss``, ``vegetation_gain``, ``disturbance``; None when
        the cover did not change (the ground already was what it is).

    Examples
    --------
    >>> p = ChangeParams()
    >>> patch_type({"veg": 0.7, "bare": 0.2, "built": 0.1, "water": 0.0},
    ...            {"veg": 0.1, "bare": 0.3, "built": 0.6, "water": 0.0}, p)
    'construction'
    >>> patch_type({"veg": 0.0, "bare": 0.9, "built": 0.1, "water": 0.0},
    ...            {"veg": 0.0, "bare": 0.85, "built": 0.15, "water": 0.0}, p) is None
    True
    """
    t = params.type_share
    d = {k: after[k] - before[k] for k in ("veg", "bare", "built", "water")}
    if not all(math.isfinite(v) for v in d.values()):
        return None
    if water_gain is not None and math.isfinite(water_gain):
        d["water"] = max(d["water"], water_gain)
    ndvi_change = after.get("ndvi", math.nan) - before.get("ndvi", math.nan)
    if category == "gain":
        # as for losses: regrowth of grass that was mown, or a crop coming up, is no gain of cover
        grew = before["veg"] < 0.5 or (math.isfinite(ndvi_change) and ndvi_change >= LOSS_NDVI_FALL)
        return "vegetation_gain" if d["veg"] >= t and grew else None
    was = dominant_class(before["veg"], before["bare"], before["built"], before["water"])
    now = dominant_class(after["veg"], after["bare"], after["built"], after["water"])
    # typed by the conversion: ground that is mostly built or bare after, and was not so before,
    # is not new water however its water share rose (dark new roofs, shade)
    if d["water"] >= t and (swir or after["water"] >= 0.5) and not (now in ("built", "bare") and now != was):
        return "water"
    built_rise = d["built"] >= t and after["built"] >= after["bare"]
    if built_rise and now in ("built", "bare"):
        return "construction" if typed else "disturbance"
    # a built share that rose on ground still partly vegetated after is vegetation thinned (below)
    open_after = after["bare"] + after["built"]
    if open_after >= 0.5 and (d["veg"] <= -t or d["bare"] >= t) and not built_rise:
        return "bare_soil" if typed else "disturbance"
    if d["veg"] <= -t and (after["veg"] < 0.5 or (math.isfinite(ndvi_change) and -ndvi_change >= LOSS_NDVI_FALL)):
        return "vegetation_loss"
    return None


def water_gain_linear(before: Mapping[str, float], after: Mapping[str, float]) -> float | None:
    """Share (0-1) of an area newly covered by water, from the fall of its mean NIR and SWIR1 reflectance.

    Water is the one surface dark in both NIR and SWIR1, and reflectance
    mixes linearly, so the share that turned to water is about
    ``(rho_before - rho_after) / (rho_before - rho_water)`` in each band
    (``rho_water`` 0.03 in NIR, 0.01 in SWIR1); the smaller of the two is
    taken (asphalt or a dark roof darkens NIR but not SWIR1).  It counts
    only where MNDWI rose by more than 0.05 (fully from 0.15), the area is
    darker in NIR than in green after (asphalt, dark roofs and shade are
    not) and blue stays below 0.15 after (none above 0.18: steel roofs and
    concrete are bright in blue).  This finds a pond of a few hundred m², whose SWIR
    pixels (20 m on Sentinel-2) are mixed with the land around it.

    Parameters
    ----------
    before, after : mapping of str to float
        Mean ``nir``, ``swir1``, ``blue``, ``green`` reflectance and
        ``mndwi`` of the area at each date.

    Returns
    -------
    float or None
        None when a value is missing.
    """
    try:
        nb, na, sb, sa = before["nir"], after["nir"], before["swir1"], after["swir1"]
        rise, blue, green = after["mndwi"] - before["mndwi"], after["blue"], after["green"]
    except KeyError:
        return None
    if not all(math.isfinite(v) for v in (nb, na, sb, sa, rise, blue, green)):
        return None
    if green <= na:
        return 0.0  # water is darker in NIR than in green; asphalt, dark roofs and shade are not

    def fall(b: float, a: float, dark: float) -> float:
        return min(max((b - a) / max(b - dark, 0.05), 0.0), 1.0)

    def ramp(x: float, lo: float, hi: float) -> float:
        return min(max((x - lo) / (hi - lo), 0.0), 1.0)

    share = min(fall(nb, na, 0.03), fall(sb, sa, 0.01))
    return share * ramp(rise, 0.05, 0.15) * ramp(-blue, -0.18, -0.15)


def robust_location_scale(v: np.ndarray) -> tuple[float, float]:
    """Median and median absolute deviation (scaled to a normal standard deviation) of finite values."""
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    med = float(np.median(v))
    mad = 1.4826 * float(np.median(np.abs(v - med)))
    return med, max(mad, 1e-6)


def robust_covariance(d: np.ndarray, *, core: float = 0.5, iterations: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the central part of a cloud of difference vectors.

    Iteratively keeps the ``core`` share of vectors closest (Mahalanobis)
    to the current estimate (the concentration steps of FAST-MCD,
    Rousseeuw & Van Driessen 1999) and rescales the covariance of that core
    to the normal law's (the consistency factor of a normal truncated at
    the chi-square's ``core`` quantile).

    Parameters
    ----------
    d : ndarray of shape (n, bands)
        Finite difference vectors.

    Returns
    -------
    mean : ndarray of shape (bands,)
    covariance : ndarray of shape (bands, bands)
    """
    # chi-square cdf / ppf through the regularised incomplete gamma function: scipy.stats would
    # cost more than a second to import in a fresh process, more than the fit itself
    from scipy.special import gammainc, gammaincinv

    d = np.asarray(d, dtype=np.float64)
    n, p = d.shape
    if n < 10 * p:
        raise ValueError(f"robust_covariance: {n} vectors are too few for {p} bands")
    h = max(int(core * n), 5 * p)
    q = 2.0 * float(gammaincinv(p / 2.0, core))  # chi2.ppf(core, p)
    factor = core / float(gammainc((p + 2) / 2.0, q / 2.0))  # ... / chi2.cdf(q, p + 2)
    mu = np.median(d, axis=0)
    cov = np.cov(d.T).reshape(p, p)
    keep = np.ones(n, dtype=bool)
    for _ in range(iterations + 1):
        c = d - mu
        inv = np.linalg.inv(cov + np.eye(p) * 1e-12 * max(float(np.trace(cov)), 1e-12))
        d2 = np.einsum("ij,jk,ik->i", c, inv, c)
        new = np.zeros(n, dtype=bool)
        new[np.argpartition(d2, h - 1)[:h]] = True  # the h closest: a concentration step
        if np.array_equal(new, keep):
            break
        keep = new
        mu = d[keep].mean(axis=0)
        cov = np.cov(d[keep].T).reshape(p, p) * factor
    return mu, cov


def whitening(cov: np.ndarray) -> np.ndarray:
    """``W`` such that ``W @ x`` has unit covariance for ``x`` of covariance ``cov`` (Cholesky)."""
    inv = np.linalg.inv(np.asarray(cov, dtype=np.float64))
    return np.linalg.cholesky((inv + inv.T) / 2).T


def _check_bands(bands: Sequence[str]) -> None:
    if len(bands) < 1:
        raise ConfigError("the change statistic needs at least one layer common to both dates")
