"""numba kernels for the hot loops: cover fractions, the change statistic, reflectance and outlines.

The change statistic's inputs have kernels of their own, each bit-identical
to the code it stands in for (same operations, same order, same roundings;
``tests/test_kernels.py``): the NaN-aware Gaussian smoothing
(:func:`smooth_nan_kernel`, scipy's ``gaussian_filter`` step for step), the
scaling and whitening (:func:`scaled_kernel`), the six-band
:func:`ecopatch.compute.cover.surface_fractions` (:func:`surface_kernel`) and the
background's interpolation (:func:`bilinear_kernel`).

A mine's sums in the restoration assessment (edge unmixing, the vegetation
share inside, the area sums) have their kernel next to their NumPy
specification, in :mod:`ecopatch.compute.inside`.

Each kernel does in one pass over the pixels what the NumPy reference
functions (:func:`ecopatch.compute.cover.cover_fractions`,
:func:`ecopatch.compute.change.tolerant_distance`) do in many whole-array passes,
so a 10980 × 10980 tile costs about what decoding it costs rather than ten
times as much.  The NumPy functions remain the specification (they are
readable and handle every band combination); the kernels cover the common
multispectral case and agree with them to float32 rounding
(``tests/test_kernels.py``).  When numba is not installed the NumPy path runs.

:func:`outline_kernel` traces the polygons of labelled change components
along pixel edges, in place of GDAL's polygoniser
(``rasterio.features.shapes``), which gives the same polygons but holds the
GIL for most of its work and builds a Python object per vertex: on the
benchmark tile it was 1.5 s of the 10 s during which threads waited for
each other.  The kernels release the GIL (``nogil``), so threads overlap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

try:  # numba is a dependency, but the library still works without it
    import numba

    #: numba's JIT decorator; the compiled kernels take numba's types, so they are typed as Any here
    njit: Callable[..., Any] = numba.njit
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_NUMBA = False

    def njit(*args: Any, **kwargs: Any) -> Any:
        def wrap(f: Any) -> Any:
            return f

        return wrap if not args or not callable(args[0]) else args[0]


__all__ = ["HAVE_NUMBA", "bilinear_kernel", "clear_kernel", "cover_kernel", "outline_kernel", "reflectance_kernel",
           "reflectances_kernel", "scaled_kernel", "smooth_nan_kernel", "smoothed_statistic_kernel", "surface_kernel",
           "tolerant_kernel"]

_NAN = np.float32(np.nan)
#: Fast-math flags that keep NaN and infinity semantics (NaN marks "not observed"), without
#: "contract": no fused multiply-add, so ``a * b + c`` rounds twice as NumPy does and a kernel and
#: its NumPy reference agree where they must (the reflectance scaling, bit for bit).  Measured
#: (2026-12-05, full tile detection, pixel-interleaved DEFLATE): 30.5 s without, 30.9 s with it.
_FM = {"arcp", "afn", "reassoc"}


@njit(cache=True, inline="always", fastmath=_FM)
def _ramp(x: float, lo: float, hi: float, hard: bool) -> float:
    if math.isnan(x):
        return math.nan
    if hard or hi <= lo:
        return 1.0 if x >= (lo + hi) * 0.5 else 0.0
    v = (x - lo) * (1.0 / (hi - lo))
    return 0.0 if v < 0.0 else (1.0 if v > 1.0 else v)


@njit(cache=True, inline="always", fastmath=_FM)
def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else (hi if x > hi else x)


@njit(cache=True, inline="always", fastmath=_FM)
def _nd(a: float, b: float) -> float:
    den = a + b
    if math.isnan(a) or math.isnan(b) or den == 0.0:
        return math.nan
    return _clip((a - b) / den, -1.0, 1.0)


@njit(cache=True, inline="always", fastmath=_FM)
def _bsi(blue: float, red: float, nir: float, swir1: float) -> float:
    num = (swir1 + red) - (nir + blue)
    den = (swir1 + red) + (nir + blue)
    if math.isnan(num) or math.isnan(den) or den == 0.0:
        return math.nan
    return _clip(num / den, -1.0, 1.0)


@njit(cache=True, fastmath=_FM, nogil=True)
def _cover_loop(blue, green, red, nir, swir1, p, canopy, has_canopy, hard, otsu,  # noqa: ANN001
                o_ndvi, o_mndwi, o_bsi, o_veg, o_bare, o_built, o_water, o_fvc):
    # Two passes, each simple enough for LLVM to vectorise (one fused pass with the canopy
    # unmixing ran ten times slower: it stopped vectorising).
    _cover_pass(blue, green, red, nir, swir1, p, hard, otsu, o_ndvi, o_mndwi, o_bsi, o_veg, o_bare, o_water, o_fvc)
    _split_pass(blue, red, nir, swir1, p, canopy, has_canopy, hard, o_bsi, o_fvc, o_bare, o_built)


@njit(cache=True, fastmath=_FM, nogil=True)
def _cover_pass(blue, green, red, nir, swir1, p, hard, otsu,  # noqa: ANN001
                o_ndvi, o_mndwi, o_bsi, o_veg, o_rest, o_water, o_fvc):
    """NDVI, MNDWI, BSI, water, FVC, vegetation; ``o_rest`` gets 1 - water - vegetation."""
    soil, vegnd, fvc_bare, fvc_veg = p[0], p[1], p[2], p[3]
    wi_c, wi_r, nir_max, thr = p[4], p[5], p[6], p[9]
    inv_span = np.float32(1.0 / (vegnd - soil)) if vegnd != soil else np.float32(0.0)
    soil32 = np.float32(soil)
    w_lo = np.float32(wi_c - wi_r)
    w_inv = np.float32(1.0 / (2 * wi_r)) if wi_r > 0 else np.float32(0.0)
    n_lo = np.float32(-(nir_max + 0.03))
    n_inv = np.float32(1.0 / 0.06)
    v_lo = np.float32(fvc_bare)
    v_inv = np.float32(1.0 / (fvc_veg - fvc_bare)) if fvc_veg > fvc_bare else np.float32(0.0)
    zero, one = np.float32(0.0), np.float32(1.0)
    nan = np.float32(np.nan)
    rows, cols = red.shape
    for i in range(rows):
        for j in range(cols):
            b, g, r, n, s = blue[i, j], green[i, j], red[i, j], nir[i, j], swir1[i, j]
            nd = _nd(n, r)
            wi = _nd(g, s)
            o_ndvi[i, j] = nd
            o_mndwi[i, j] = wi
            o_bsi[i, j] = _bsi(b, r, n, s)
            if hard:
                water = _ramp(wi, wi_c - wi_r, wi_c + wi_r, True) * _ramp(-n, n_lo, -(nir_max - 0.03), True)
            else:
                water = min(max((wi - w_lo) * w_inv, zero), one) * min(max((-n - n_lo) * n_inv, zero), one)
            if math.isnan(water):
                water = zero
            f = min(max((nd - soil32) * inv_span, zero), one)
            if otsu:
                vmem = one if nd >= thr else zero
            elif hard:
                vmem = _ramp(f, fvc_bare, fvc_veg, True)
            else:
                vmem = min(max((f - v_lo) * v_inv, zero), one)
            veg = (one - water) * vmem
            ok = not math.isnan(nd)
            o_veg[i, j] = veg if ok else nan
            o_water[i, j] = water if ok else nan
            o_fvc[i, j] = f if ok else nan
            o_rest[i, j] = one - water - veg if ok else nan


@njit(cache=True, fastmath=_FM, nogil=True)
def _split_pass(blue, red, nir, swir1, p, canopy, has_canopy, hard, raw_bsi, fvc, io_bare, o_built):  # noqa: ANN001
    """Split ``io_bare`` (holding the non-vegetated, non-water share) into bare and built."""
    bsi_c, bsi_r = p[7], p[8]
    lo = np.float32(bsi_c - bsi_r)
    inv = np.float32(1.0 / (2 * bsi_r)) if bsi_r > 0 else np.float32(0.0)
    c0, c1, c2, c3 = np.float32(canopy[0]), np.float32(canopy[1]), np.float32(canopy[2]), np.float32(canopy[3])
    zero, one, cap = np.float32(0.0), np.float32(1.0), np.float32(0.9)
    rows, cols = red.shape
    for i in range(rows):
        for j in range(cols):
            bb = raw_bsi[i, j]
            if has_canopy:
                keep = min(max(fvc[i, j], zero), cap)
                sr = (swir1[i, j] - keep * c3) + (red[i, j] - keep * c1)
                nb = (nir[i, j] - keep * c2) + (blue[i, j] - keep * c0)
                den = sr + nb
                if den != zero:  # NumPy gives inf or NaN there, which keeps the raw BSI: the same
                    un = (sr - nb) / den  # the 1 / (1 - keep) factors cancel in the ratio
                    if not math.isnan(un) and not math.isinf(un):
                        bb = min(max(un, -one), one)
            if hard:
                share = one - _ramp(bb, bsi_c - bsi_r, bsi_c + bsi_r, True)
            else:
                share = one - min(max((bb - lo) * inv, zero), one)
            if math.isnan(share):
                share = zero
            rest = io_bare[i, j]
            built = rest * share
            o_built[i, j] = built
            io_bare[i, j] = rest - built


def cover_kernel(bands: dict[str, np.ndarray], params: Any) -> dict[str, np.ndarray] | None:
    """Fused :func:`ecopatch.compute.cover.cover_fractions` for blue, green, red, nir, swir1 inputs, or None.

    None when numba is missing, a band is missing or the arrays are not 2-D,
    so the caller falls back to the NumPy reference.
    """
    names = ("blue", "green", "red", "nir", "swir1")
    if not HAVE_NUMBA or not all(k in bands for k in names):
        return None
    arrs = [np.asarray(bands[k], dtype=np.float32) for k in names]
    if arrs[0].ndim != 2 or any(a.shape != arrs[0].shape for a in arrs):
        return None
    p = params
    if p.ndvi_soil is not None and p.ndvi_veg is not None and np.float32(p.ndvi_veg) <= np.float32(p.ndvi_soil):
        from ecopatch.errors import ConfigError

        raise ConfigError(
            f"vegetation cover end-members ndvi_soil={p.ndvi_soil:g} and ndvi_veg={p.ndvi_veg:g} leave no range "
            "between bare soil and full canopy; the scene has no vegetation contrast (haze, cloud, or top-of-"
            "atmosphere data compared without normalisation: use normalize='auto' and haze='auto'), or give "
            "CoverParams(ndvi_soil=..., ndvi_veg=...) at least 0.3 apart"
        )
    otsu = p.thresholds == "otsu"
    vec = np.array([p.ndvi_soil, p.ndvi_veg, p.fvc_bare, p.fvc_veg, p.water_index, p.water_ramp, p.water_nir_max,
                    p.bsi_built, p.bsi_ramp, p.veg_threshold if p.veg_threshold is not None else 0.0],
                   dtype=np.float64)
    canopy = dict(p.veg_spectrum) if p.veg_spectrum is not None else {}
    has_canopy = all(k in canopy for k in ("blue", "red", "nir", "swir1"))
    cvec = np.array([canopy.get(k, 0.0) for k in ("blue", "red", "nir", "swir1")], dtype=np.float64)
    shape = arrs[0].shape
    out = {k: np.empty(shape, dtype=np.float32) for k in ("ndvi", "mndwi", "bsi", "veg", "bare", "built", "water",
                                                           "fvc")}
    _cover_loop(*arrs, vec, cvec, has_canopy, p.method == "hard", otsu, out["ndvi"], out["mndwi"], out["bsi"],
                out["veg"], out["bare"], out["built"], out["water"], out["fvc"])
    return out


@njit(cache=True, inline="always")
def _both_observed(y1, y2, i, j):  # noqa: ANN001, ANN202
    for k in range(y1.shape[2]):
        if math.isnan(y1[i, j, k]) or math.isnan(y2[i, j, k]):
            return False
    return True


@njit(cache=True, inline="always")
def _nearest_shift(y1, y2, i, j, r, best12, best21, skip_centre):  # noqa: ANN001, ANN202
    # smallest squared distance from y1[i, j] to y2 within r pixels, and from y2[i, j] to y1;
    # NaN neighbours compare False and are skipped
    h, w, nb = y1.shape
    for dy in range(-r, r + 1):
        ii = i + dy
        if ii < 0 or ii >= h:
            continue
        for dx in range(-r, r + 1):
            jj = j + dx
            if jj < 0 or jj >= w or (skip_centre and dy == 0 and dx == 0):
                continue
            a = np.float32(0.0)
            c = np.float32(0.0)
            for k in range(nb):
                u = y2[ii, jj, k] - y1[i, j, k]
                v = y2[i, j, k] - y1[ii, jj, k]
                a += u * u
                c += v * v
            if a < best12:
                best12 = a
            if c < best21:
                best21 = c
    return best12, best21


@njit(cache=True, inline="always")
def _direct_sq(y1, y2, i, j):  # noqa: ANN001, ANN202
    d = np.float32(0.0)
    for k in range(y1.shape[2]):
        u = y2[i, j, k] - y1[i, j, k]
        d += u * u
    return d


@njit(cache=True, nogil=True)
def _tolerant_loop(y1, y2, r, out):  # noqa: ANN001
    # y1, y2: (rows, cols, bands), C-contiguous: a pixel's bands lie side by side
    h, w, _ = y1.shape
    for i in range(h):
        for j in range(w):
            if not _both_observed(y1, y2, i, j):
                out[i, j] = np.nan
                continue
            best12, best21 = _nearest_shift(y1, y2, i, j, r, np.inf, np.inf, False)
            out[i, j] = math.sqrt(max(best12, best21))


@njit(cache=True, nogil=True)
def _statistic_loop(y1, y2, w1, w2, r, ec, es, mc, ms, zfloor, out):  # noqa: ANN001
    # y*, w*: (rows, cols, bands) C-contiguous, the scaled and the whitened bands of each date
    h, w, _ = y1.shape
    half = np.float32(0.5)
    for i in range(h):
        for j in range(w):
            if not _both_observed(y1, y2, i, j):
                out[i, j] = np.nan
                continue
            e0 = _direct_sq(y1, y2, i, j)
            m0 = _direct_sq(w1, w2, i, j)
            zd = ((np.float32(math.sqrt(e0)) - ec) / es + (np.float32(math.sqrt(m0)) - mc) / ms) * half
            if zd < zfloor:
                # the tolerant distances are at most the direct ones: the statistic stays below too
                out[i, j] = zd
                continue
            e12, e21 = _nearest_shift(y1, y2, i, j, r, e0, e0, True)
            m12, m21 = _nearest_shift(w1, w2, i, j, r, m0, m0, True)
            e = np.float32(math.sqrt(max(e12, e21)))
            m = np.float32(math.sqrt(max(m12, m21)))
            out[i, j] = ((e - ec) / es + (m - mc) / ms) * half


@njit(cache=True, nogil=True)
def _gauss_sep(v, w, tmp, out):  # noqa: ANN001
    # scipy.ndimage.gaussian_filter(v, mode="constant", cval=0) step for step: along axis 0, then
    # axis 1, each a symmetric correlation summed in float64 in scipy's order (centre tap, then the
    # outermost pair inwards) and stored as float32 between and after the passes: bit-identical.
    # Taps outside, pixels inside: each pixel's sum keeps its order and the inner loops vectorise.
    h, wd = v.shape
    r = (w.shape[0] - 1) // 2
    acc = np.empty(wd, dtype=np.float64)
    for i in range(h):
        w0 = w[r]
        for j in range(wd):
            acc[j] = np.float64(v[i, j]) * w0
        for k in range(-r, 0):
            wk = w[r + k]
            ia = i + k
            ib = i - k
            if ia >= 0 and ib < h:
                for j in range(wd):
                    acc[j] += (np.float64(v[ia, j]) + np.float64(v[ib, j])) * wk
            elif ia >= 0:
                for j in range(wd):
                    acc[j] += (np.float64(v[ia, j]) + 0.0) * wk
            elif ib < h:
                for j in range(wd):
                    acc[j] += (0.0 + np.float64(v[ib, j])) * wk
            else:
                for j in range(wd):
                    acc[j] += 0.0 * wk
        for j in range(wd):
            tmp[i, j] = np.float32(acc[j])
    row = np.zeros(wd + 2 * r, dtype=np.float64)
    for i in range(h):
        for j in range(wd):
            row[r + j] = np.float64(tmp[i, j])
        w0 = w[r]
        for j in range(wd):
            acc[j] = row[r + j] * w0
        for k in range(-r, 0):
            wk = w[r + k]
            for j in range(wd):
                acc[j] += (row[r + j + k] + row[r + j - k]) * wk
        for j in range(wd):
            out[i, j] = np.float32(acc[j])


@njit(cache=True, nogil=True)
def _smooth_nan_loop(x, w, out):  # noqa: ANN001
    # normalised convolution per band (NaN ignored, NaN kept), one weight image for all bands
    # where every band has the same pixels observed (as ecopatch.compute.change.smooth_nan)
    nb, h, wd = x.shape
    shared = True
    for b in range(1, nb):
        for i in range(h):
            for j in range(wd):
                if math.isnan(x[b, i, j]) != math.isnan(x[0, i, j]):
                    shared = False
                    break
            if not shared:
                break
        if not shared:
            break
    v = np.empty((h, wd), dtype=np.float32)
    ok = np.empty((h, wd), dtype=np.float32)
    tmp = np.empty((h, wd), dtype=np.float32)
    num = np.empty((h, wd), dtype=np.float32)
    den = np.empty((h, wd), dtype=np.float32)
    for b in range(nb):
        if b == 0 or not shared:
            for i in range(h):
                for j in range(wd):
                    ok[i, j] = np.float32(0.0) if math.isnan(x[b, i, j]) else np.float32(1.0)
            _gauss_sep(ok, w, tmp, den)
        for i in range(h):
            for j in range(wd):
                t = x[b, i, j]
                v[i, j] = np.float32(0.0) if math.isnan(t) else t
        _gauss_sep(v, w, tmp, num)
        for i in range(h):
            for j in range(wd):
                if ok[i, j] == 0.0:
                    out[b, i, j] = np.nan
                else:
                    out[b, i, j] = num[i, j] / den[i, j]


def gaussian_weights(sigma: float, truncate: float = 3.0) -> np.ndarray:
    """The 1-D Gaussian taps scipy.ndimage.gaussian_filter uses (float64, normalised to sum 1)."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * x ** 2)
    return phi / phi.sum()


def smooth_nan_kernel(x: np.ndarray, sigma: float) -> np.ndarray | None:
    """Fused :func:`ecopatch.compute.change.smooth_nan` of a (bands, rows, cols) stack; None without numba.

    Bit-identical to the scipy path (same taps, same float64 sums in the
    same order, same float32 roundings), at a third of its time: one pass
    per band and axis, no temporary arrays per band.
    """
    if not HAVE_NUMBA or x.ndim != 3 or sigma <= 0 or 0 in x.shape:
        return None
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    _smooth_nan_loop(x, gaussian_weights(sigma), out)
    return out


@njit(cache=True, nogil=True)
def _scaled_loop(s1, s2, bg, has_bg, scale, wm, mu, y1, y2, z1, z2):  # noqa: ANN001
    # the arithmetic of ecopatch.compute.change._scaled in float32, each value computed in the same order
    # (the whitening sums from zero, band by band, as numpy's einsum), a row at a time so the inner
    # loops run along contiguous pixels; written pixel-major (rows, cols, bands) for the statistic
    nb, h, wd = s1.shape
    a = np.empty((nb, wd), dtype=np.float32)
    c = np.empty((nb, wd), dtype=np.float32)
    t = np.empty((nb, wd), dtype=np.float32)
    p = np.empty(wd, dtype=np.float32)
    q = np.empty(wd, dtype=np.float32)
    zero = np.float32(0.0)
    for i in range(h):
        for b in range(nb):
            sc = scale[b]
            m = mu[b]
            for j in range(wd):
                d = s2[b, i, j] - s1[b, i, j]
                if has_bg:
                    d = d - bg[b, i, j]
                u = s1[b, i, j] / sc
                v = u + d / sc
                a[b, j] = u
                c[b, j] = v
                t[b, j] = v - m
        for b in range(nb):
            for j in range(wd):
                y1[i, j, b] = a[b, j]
                y2[i, j, b] = c[b, j]
        for k in range(nb):
            for j in range(wd):
                p[j] = zero
                q[j] = zero
            for b in range(nb):
                wkb = wm[k, b]
                for j in range(wd):
                    p[j] += wkb * a[b, j]
                    q[j] += wkb * t[b, j]
            for j in range(wd):
                z1[i, j, k] = p[j]
                z2[i, j, k] = q[j]


def scaled_kernel(s1: np.ndarray, s2: np.ndarray, background: np.ndarray | None, scale: np.ndarray,
                  whitening: np.ndarray, centre: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Fused ``_scaled`` of :mod:`ecopatch.compute.change`: pixel-major ``y1, y2, z1, z2``; None without numba."""
    if not HAVE_NUMBA or s1.ndim != 3 or s1.shape != s2.shape:
        return None
    s1 = np.ascontiguousarray(s1, dtype=np.float32)
    s2 = np.ascontiguousarray(s2, dtype=np.float32)
    has_bg = background is not None
    bg = np.ascontiguousarray(background, dtype=np.float32) if has_bg else np.zeros((1, 1, 1), dtype=np.float32)
    nb, h, wd = s1.shape
    y1, y2, z1, z2 = (np.empty((h, wd, nb), dtype=np.float32) for _ in range(4))
    _scaled_loop(s1, s2, bg, has_bg, np.ascontiguousarray(scale, dtype=np.float32),
                 np.ascontiguousarray(whitening, dtype=np.float32), np.ascontiguousarray(centre, dtype=np.float32),
                 y1, y2, z1, z2)
    return y1, y2, z1, z2


def smoothed_statistic_kernel(s1: np.ndarray, s2: np.ndarray, background: np.ndarray | None, scale: np.ndarray,
                              whitening: np.ndarray, centre: np.ndarray, radius: int,
                              centres: tuple[float, float, float, float], z_floor: float) -> np.ndarray | None:
    """:func:`statistic_kernel` from the smoothed dates, scaling and whitening fused; None without numba."""
    scaled = scaled_kernel(s1, s2, background, scale, whitening, centre)
    if scaled is None:
        return None
    y1, y2, w1, w2 = scaled
    out = np.empty(y1.shape[:2], dtype=np.float32)
    ec, es, mc, ms = (np.float32(v) for v in centres)
    _statistic_loop(y1, y2, w1, w2, radius, ec, es, mc, ms, np.float32(z_floor), out)
    return out


@njit(cache=True, inline="always")
def _ramp32(x, lo, span):  # noqa: ANN001, ANN202
    # ecopatch.compute.cover's ramp on float32: clip((x - lo) / (hi - lo), 0, 1), NaN kept
    t = (x - lo) / span
    if math.isnan(t):
        return t
    return min(max(t, np.float32(0.0)), np.float32(1.0))


@njit(cache=True, inline="always")
def _ratio32(num, den):  # noqa: ANN001, ANN202
    # ecopatch.compute.indices._ratio: num / den clipped to [-1, 1], NaN where either is not finite or den == 0
    if not (math.isfinite(num) and math.isfinite(den)) or den == 0:
        return np.float32(np.nan)
    return min(max(num / den, np.float32(-1.0)), np.float32(1.0))


@njit(cache=True, nogil=True, error_model="numpy")
def _surface_loop(blue, green, red, nir, swir1, swir2, c, veg, bare, built, water, vi_out, wi_out, bsi_out):  # noqa: ANN001
    # ecopatch.compute.cover.surface_fractions with all six bands, value for value in float32 (c: its
    # constants as float32, each ramp's lower end and span as NumPy rounds them)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    half = np.float32(0.5)
    nan = np.float32(np.nan)
    h, w = red.shape
    for i in range(h):
        for j in range(w):
            b, g, r, n, s1, s2 = blue[i, j], green[i, j], red[i, j], nir[i, j], swir1[i, j], swir2[i, j]
            vi = _ratio32(n - r, n + r)
            wi = _ratio32(g - s1, g + s1)
            dark = _ramp32(-s1, c[0], c[1])
            t = _ramp32(wi, c[2], c[3]) * dark
            if math.isnan(t):
                t = zero
            wat = t * _ramp32(-vi, c[4], c[5])
            v = _ramp32(vi, c[6], c[7]) * (one - wat)
            rest = (one - v) - wat
            if not math.isnan(rest):
                rest = min(max(rest, zero), one)
            sign1 = _ramp32(c[8] - b / r, c[9], c[10])
            sign2 = _ramp32(c[11] - s2 / s1, c[12], c[13])
            soil = (sign1 + sign2) / np.float32(2.0)
            if not math.isfinite(soil):
                soil = half
            vi_out[i, j] = vi
            wi_out[i, j] = wi
            bsi_out[i, j] = _ratio32((s1 + r) - (n + b), (s1 + r) + (n + b))
            if math.isnan(vi):
                veg[i, j] = nan
                bare[i, j] = nan
                built[i, j] = nan
                water[i, j] = nan
            else:
                veg[i, j] = v
                bare[i, j] = rest * soil
                built[i, j] = rest * (one - soil)
                water[i, j] = wat


def _ramp_constants(*ramps: tuple[float, float]) -> list[np.float32]:
    out = []
    for lo, hi in ramps:
        out += [np.float32(lo), np.float32(hi - lo)]  # as NumPy: a float32 array minus / over Python floats
    return out


#: Ramps of ecopatch.compute.cover.surface_fractions: dark SWIR1, MNDWI, -NDVI for water, NDVI for vegetation.
_SURFACE_CONSTANTS = np.array(
    _ramp_constants((-0.10, -0.06), (0.0, 0.2), (-0.2, 0.0), (0.15, 0.6))
    + [np.float32(0.66)] + _ramp_constants((0.0, 0.12)) + [np.float32(0.85)] + _ramp_constants((0.0, 0.08)),
    dtype=np.float32,
)


def surface_kernel(bands: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Fused :func:`ecopatch.compute.cover.surface_fractions` for the six-band case; None to fall back.

    Bit-identical to the NumPy function (``tests/test_kernels.py``), which
    stays the specification: a change of its rules must be made here too.
    """
    names = ("blue", "green", "red", "nir", "swir1", "swir2")
    if not HAVE_NUMBA or not all(k in bands for k in names):
        return None
    arrs = [np.ascontiguousarray(bands[k], dtype=np.float32) for k in names]
    if arrs[0].ndim != 2 or any(a.shape != arrs[0].shape for a in arrs):
        return None
    outs = [np.empty(arrs[0].shape, dtype=np.float32) for _ in range(7)]
    _surface_loop(*arrs, _SURFACE_CONSTANTS, *outs)
    veg, bare, built, water, vi, wi, bsi = outs
    return {"veg": veg, "bare": bare, "built": built, "water": water, "ndvi": vi, "mndwi": wi,
            "typed": np.asarray(1.0, dtype=np.float32), "bsi": bsi}


@njit(cache=True, nogil=True)
def _bilinear_loop(v, r0, r1, wr, c0, c1, wc, out):  # noqa: ANN001
    # ecopatch.compute.change.Background.at's separable interpolation in float32, each value as NumPy
    # computes it: along rows first (into a row of the coarse cells), then along columns
    nb = v.shape[0]
    one = np.float32(1.0)
    top = np.empty(v.shape[2], dtype=np.float32)
    for b in range(nb):
        for i in range(r0.shape[0]):
            a, c, t = r0[i], r1[i], wr[i]
            s = one - t
            for q in range(v.shape[2]):
                top[q] = v[b, a, q] * s + v[b, c, q] * t
            for j in range(c0.shape[0]):
                u = wc[j]
                out[b, i, j] = top[c0[j]] * (one - u) + top[c1[j]] * u


def bilinear_kernel(v: np.ndarray, r0: np.ndarray, r1: np.ndarray, wr: np.ndarray, c0: np.ndarray,
                    c1: np.ndarray, wc: np.ndarray) -> np.ndarray | None:
    """Fused interpolation of :meth:`ecopatch.compute.change.Background.at`; None without numba."""
    if not HAVE_NUMBA or v.ndim != 3:
        return None
    out = np.empty((v.shape[0], len(r0), len(c0)), dtype=np.float32)
    _bilinear_loop(np.ascontiguousarray(v, dtype=np.float32), r0.astype(np.int64), r1.astype(np.int64),
                   wr.astype(np.float32), c0.astype(np.int64), c1.astype(np.int64), wc.astype(np.float32), out)
    return out


def _pixel_major(a: np.ndarray) -> np.ndarray:
    """(bands, rows, cols) -> C-contiguous float32 (rows, cols, bands): a pixel's bands in one cache line."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(a, dtype=np.float32), 0, -1))


def tolerant_kernel(y1: np.ndarray, y2: np.ndarray, radius: int) -> np.ndarray | None:
    """Fused :func:`ecopatch.compute.change.tolerant_distance`; None when numba is missing."""
    if not HAVE_NUMBA or y1.ndim != 3 or y1.shape != y2.shape:
        return None
    out = np.empty(y1.shape[1:], dtype=np.float32)
    _tolerant_loop(_pixel_major(y1), _pixel_major(y2), radius, out)
    return out


def statistic_kernel(y1: np.ndarray, y2: np.ndarray, w1: np.ndarray, w2: np.ndarray, radius: int,
                     centres: tuple[float, float, float, float], z_floor: float) -> np.ndarray | None:
    """Fused change statistic (:func:`ecopatch.compute.change.change_statistic` with ``z_floor``); None without numba.

    ``y1, y2`` are the scaled bands and ``w1, w2`` the whitened ones, (bands,
    rows, cols); ``centres`` is (e_centre, e_spread, m_centre, m_spread).
    Where the statistic without the tolerance is below ``z_floor`` it is
    returned as is (the tolerant one can only be smaller).
    """
    if not HAVE_NUMBA or y1.ndim != 3 or y1.shape != y2.shape or w1.shape != w2.shape:
        return None
    out = np.empty(y1.shape[1:], dtype=np.float32)
    ec, es, mc, ms = (np.float32(v) for v in centres)
    _statistic_loop(_pixel_major(y1), _pixel_major(y2), _pixel_major(w1), _pixel_major(w2), radius,
                    ec, es, mc, ms, np.float32(z_floor), out)
    return out


@njit(cache=True, inline="always", fastmath=_FM)
def _refl_px(v, sc, of, nodata, has_nodata, maxval, has_max, lo, hi):  # noqa: ANN001, ANN202
    good = not math.isnan(v)
    if has_nodata and v == nodata:
        good = False
    if has_max and v == maxval:
        good = False
    r = np.float32(v) * sc + of
    if r < lo or r > hi:
        good = False
    return r, good


@njit(cache=True, fastmath=_FM, nogil=True)
def _reflectance_loop(dn, scale, offset, nodata, has_nodata, maxval, has_max, lo, hi, refl, valid):  # noqa: ANN001
    """``refl`` from ``dn``, NaN where ``valid`` is or becomes False; returns the pixels it cleared."""
    nan = np.float32(np.nan)
    sc, of = np.float32(scale), np.float32(offset)
    lo32, hi32 = np.float32(lo), np.float32(hi)
    cleared = 0
    for i in range(refl.shape[0]):
        for j in range(refl.shape[1]):
            r, good = _refl_px(dn[i, j], sc, of, nodata, has_nodata, maxval, has_max, lo32, hi32)
            was = valid[i, j]
            ok = good & was
            refl[i, j] = r if ok else nan
            valid[i, j] = ok
            cleared += was & ~ok
    return cleared


@njit(cache=True, fastmath=_FM, nogil=True)
def _reflectance_loop_at(dn, rows, cols, scale, offset, nodata, has_nodata, maxval, has_max, lo, hi,  # noqa: ANN001
                         refl, valid):
    """As :func:`_reflectance_loop`, pixel ``(i, j)`` from ``dn[rows[i], cols[j]]``."""
    nan = np.float32(np.nan)
    sc, of = np.float32(scale), np.float32(offset)
    lo32, hi32 = np.float32(lo), np.float32(hi)
    cleared = 0
    for i in range(refl.shape[0]):
        src = dn[rows[i]]
        for j in range(refl.shape[1]):
            r, good = _refl_px(src[cols[j]], sc, of, nodata, has_nodata, maxval, has_max, lo32, hi32)
            was = valid[i, j]
            ok = good & was
            refl[i, j] = r if ok else nan
            valid[i, j] = ok
            cleared += was & ~ok
    return cleared


@njit(cache=True, fastmath=_FM, nogil=True)
def _reflectances_loop(data, sel, r0, c0, scale, offset, nodata, has_nodata, maxval, has_max, lo, hi,  # noqa: ANN001
                       refl, valid):
    """:func:`_reflectance_loop` of the bands ``sel`` of ``data`` at once, from row ``r0``, column ``c0``.

    A pixel is valid when it was and every band has a reflectance there;
    every band is NaN where it is not (what reading them one by one, then
    clearing the bands read before a later band's exclusions, gives).
    """
    nan = np.float32(np.nan)
    nb = sel.size
    lo32, hi32 = np.float32(lo), np.float32(hi)
    got = np.empty(nb, dtype=np.float32)
    for i in range(refl.shape[1]):
        for j in range(refl.shape[2]):
            ok = valid[i, j]
            if ok:
                for b in range(nb):
                    r, good = _refl_px(data[sel[b], r0 + i, c0 + j], scale[b], offset[b], nodata[b], has_nodata[b],
                                       maxval[b], has_max[b], lo32, hi32)
                    got[b] = r
                    if not good:
                        ok = False
                        break
            valid[i, j] = ok
            for b in range(nb):
                refl[b, i, j] = got[b] if ok else nan


def reflectances_kernel(data: np.ndarray, sel: Sequence[int], at: tuple[int, int], shape: tuple[int, int],
                        scales: Sequence[float], offsets: Sequence[float], nodatas: Sequence[float | None],
                        maxvals: Sequence[float | None], valid_range: tuple[float, float],
                        valid: np.ndarray) -> np.ndarray | None:
    """Several bands of one read to float32 reflectance in one pass; None to fall back (band by band).

    ``data`` holds the bands read together (bands, rows, columns); band
    ``k`` of the result is ``data[sel[k]]`` from row ``at[0]``, column
    ``at[1]``, ``shape`` pixels, as :func:`reflectance_kernel` converts one
    band (``scales[k]``, ``offsets[k]``, ``nodatas[k]``, ``maxvals[k]``).
    ``valid`` (bool, ``shape``) is cleared in place wherever a band has no
    reflectance, and every band is NaN wherever it is False.
    """
    if not HAVE_NUMBA or data.ndim != 3 or valid.shape != tuple(shape) or valid.dtype != np.bool_:
        return None
    n = len(sel)
    given = [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in nodatas]
    has_nd = np.array([v is not None for v in given])
    nd = np.array([0.0 if v is None else v for v in given])
    has_max = np.array([v is not None for v in maxvals])
    mx = np.array([float(v) if v is not None else 0.0 for v in maxvals])
    refl = np.empty((n, *shape), dtype=np.float32)
    _reflectances_loop(data, np.asarray(sel, dtype=np.int64), int(at[0]), int(at[1]),
                       np.asarray(scales, dtype=np.float32), np.asarray(offsets, dtype=np.float32), nd, has_nd, mx,
                       has_max, float(valid_range[0]), float(valid_range[1]), refl, valid)
    return refl


def reflectance_kernel(dn: np.ndarray, scale: float, offset: float, nodata: float | None,
                       maxval: float | None, valid_range: tuple[float, float], *,
                       rows: np.ndarray | None = None, cols: np.ndarray | None = None,
                       valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int] | None:
    """DN -> float32 reflectance and a validity mask, in one pass; None to fall back.

    Returns ``(refl, valid, cleared)``: NaN in ``refl`` wherever ``valid`` is
    False.  With ``rows`` and ``cols`` (indices into ``dn``), pixel
    ``(i, j)`` comes from ``dn[rows[i], cols[j]]``: a coarser band repeated
    onto a finer grid in the same pass.  With ``valid`` (bool), the pixels it
    already excludes are NaN too, and it is cleared in place where this band
    is not a reflectance; ``cleared`` counts those pixels.
    """
    if not HAVE_NUMBA or dn.ndim != 2:
        return None
    indexed = rows is not None and cols is not None
    shape: tuple[int, ...] = dn.shape
    if rows is not None and cols is not None:
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        shape = (rows.size, cols.size)
    refl = np.empty(shape, dtype=np.float32)
    if valid is None:
        valid = np.ones(shape, dtype=np.bool_)
    elif valid.shape != shape or valid.dtype != np.bool_:
        return None
    has_nd = nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata))
    args = (float(scale), float(offset), float(nodata) if has_nd and nodata is not None else 0.0, has_nd,
            float(maxval) if maxval is not None else 0.0, maxval is not None,
            float(valid_range[0]), float(valid_range[1]), refl, valid)
    cleared = _reflectance_loop_at(dn, rows, cols, *args) if indexed else _reflectance_loop(dn, *args)
    return refl, valid, int(cleared)


# ---------------------------------------------------------------------------
# Clear-sky masks (quality bands) with clouds grown by a buffer
# ---------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _clear_loop(raw, is_scl, lut, k, rows, cols, out):  # noqa: ANN001
    h, w = raw.shape
    clear = np.empty((h, w), np.bool_)
    cloudy = np.zeros((h, w), np.bool_)
    n_cloudy = 0
    for i in range(h):
        for j in range(w):
            v = np.int64(raw[i, j])
            if is_scl:
                c = lut[v] if 0 <= v < lut.size else True
            else:
                c = (v & 63) == 0
            clear[i, j] = c
            if not c and v != 0:  # cloud, shadow, cirrus, snow; not "no data"
                cloudy[i, j] = True
                n_cloudy += 1
    if k > 0 and n_cloudy > 0:
        grown = np.zeros((h, w), np.bool_)
        k2 = k * k
        for i in range(h):
            for j in range(w):
                if cloudy[i, j]:
                    for dy in range(-k, k + 1):
                        y = i + dy
                        if y < 0 or y >= h:
                            continue
                        for dx in range(-k, k + 1):
                            x = j + dx
                            if 0 <= x < w and dy * dy + dx * dx <= k2:
                                grown[y, x] = True
        for i in range(h):
            for j in range(w):
                if grown[i, j]:
                    clear[i, j] = False
    for a in range(rows.size):
        ra = rows[a]
        for b in range(cols.size):
            out[a, b] = clear[ra, cols[b]]


def clear_kernel(raw: np.ndarray, kind: str, k: int, rows: np.ndarray, cols: np.ndarray,
                 unusable_scl: tuple[int, ...]) -> np.ndarray | None:
    """Clear pixels of a quality band with cloud grown by a disk of ``k`` pixels, at ``raw[rows][:, cols]``.

    What :func:`ecopatch.raster.masks.grow_clouds` computes (Sentinel-2 SCL
    classes in ``unusable_scl`` or Landsat QA_PIXEL bits 0-5 are not
    clear; the unclear pixels other than 0, "no data", grow), followed by
    the rows and columns wanted, in one pass and a C-ordered result.  None
    when it cannot run (other mask kinds, float bands): the caller falls back.
    """
    if not HAVE_NUMBA or raw.ndim != 2 or kind not in ("scl", "qa_pixel") or not np.issubdtype(raw.dtype, np.integer):
        return None
    lut = np.ones(256, dtype=np.bool_)
    lut[[v for v in unusable_scl if 0 <= v < 256]] = False
    out = np.empty((rows.size, cols.size), dtype=np.bool_)
    _clear_loop(raw, kind == "scl", lut, int(k), np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64),
                out)
    return out


# ---------------------------------------------------------------------------
# Outlines of labelled components (polygon tracing along pixel edges)
# ---------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _lab_at(lab, r, c):  # noqa: ANN001, ANN202
    if r < 0 or c < 0 or r >= lab.shape[0] or c >= lab.shape[1]:
        return 0
    return lab[r, c]


@njit(cache=True, nogil=True)
def _emit_loop(sx, sy, lo, hi, cx, cy, label, xs, ys, n_out, starts, labels, area2, n_loops):  # noqa: ANN001, ANN202
    """Append the vertices ``sx/sy[lo:hi]`` closed by ``(cx, cy)`` as one loop; return the new counts."""
    starts[n_loops] = n_out
    labels[n_loops] = label
    a = 0
    for k in range(lo, hi):
        xs[n_out] = sx[k]
        ys[n_out] = sy[k]
        n_out += 1
        nx, ny = (sx[k + 1], sy[k + 1]) if k + 1 < hi else (cx, cy)
        a += np.int64(sx[k]) * ny - np.int64(nx) * sy[k]
    xs[n_out] = cx
    ys[n_out] = cy
    n_out += 1
    area2[n_loops] = a
    return n_out, n_loops + 1


@njit(cache=True, nogil=True)
def _trace_loops(lab, keep):  # noqa: ANN001, ANN202
    """Boundary loops of every kept label of ``lab`` (4-connected components), along pixel edges.

    Coordinates are pixel corners (x = column, y = row).  Each loop keeps
    its label's pixels on its right (rows growing downwards): the outer
    boundary has positive twice-signed-area ``area2``, holes negative.
    Where two of a label's pixels meet only at a corner, the loop turns so
    as to keep them apart (4-connectivity), and a loop that would pass
    through such a corner twice is cut there into two simple loops (a hole
    that touches the outer boundary, or another hole, at one point).  Only
    corner vertices are kept; each loop ends with its first vertex.
    """
    h, w = lab.shape
    npx = 0
    for i in range(h):
        for j in range(w):
            v = lab[i, j]
            if v > 0 and keep[v]:
                npx += 1
    cap = 5 * npx + 8  # at most 4 corners per pixel, plus each loop's closing vertex
    xs = np.empty(cap, np.int32)
    ys = np.empty(cap, np.int32)
    starts = np.empty(npx + 2, np.int64)
    labels = np.empty(npx + 1, np.int64)
    area2 = np.empty(npx + 1, np.int64)
    sx = np.empty(cap, np.int32)  # the loop being traced
    sy = np.empty(cap, np.int32)
    spos = np.empty(cap, np.int64)  # stack positions of its corners where it may come back
    seen = np.zeros((h, w), np.bool_)  # top edges already traced
    dxs = (1, 0, -1, 0)  # east, south, west, north (rows grow southwards)
    dys = (0, 1, 0, -1)
    n_out = 0
    n_loops = 0
    for r in range(h):
        for c in range(w):
            L = lab[r, c]
            if L <= 0 or not keep[L] or seen[r, c] or (r > 0 and lab[r - 1, c] == L):
                continue
            x, y, d = c, r, 0
            sx[0], sy[0] = x, y
            top = 1
            spos[0] = 0
            ns = 1
            while True:
                if d == 0:
                    seen[y, x] = True
                x += dxs[d]
                y += dys[d]
                if d == 0:
                    a, b = _lab_at(lab, y, x), _lab_at(lab, y - 1, x)
                elif d == 1:
                    a, b = _lab_at(lab, y, x - 1), _lab_at(lab, y, x)
                elif d == 2:
                    a, b = _lab_at(lab, y - 1, x - 1), _lab_at(lab, y, x - 1)
                else:
                    a, b = _lab_at(lab, y - 1, x), _lab_at(lab, y - 1, x - 1)
                # a: the pixel ahead on the right, b: ahead on the left
                pinch = False
                if a != L:
                    nd = (d + 1) % 4
                    pinch = b == L  # two pixels meeting at a corner: keep them apart
                elif b != L:
                    nd = d
                else:
                    nd = (d + 3) % 4
                if x == c and y == r and nd == 0:
                    break
                if nd != d:
                    found = -1
                    if pinch:
                        for k in range(ns):
                            p = spos[k]
                            if sx[p] == x and sy[p] == y:
                                found = k
                                break
                    if found >= 0:  # back at a pinch corner: cut off the loop since
                        p = spos[found]
                        n_out, n_loops = _emit_loop(sx, sy, p, top, x, y, L, xs, ys, n_out, starts, labels,
                                                    area2, n_loops)
                        top = p + 1
                        ns = found + 1
                    else:
                        sx[top], sy[top] = x, y
                        if pinch:
                            spos[ns] = top
                            ns += 1
                        top += 1
                d = nd
            n_out, n_loops = _emit_loop(sx, sy, 0, top, c, r, L, xs, ys, n_out, starts, labels, area2, n_loops)
    starts[n_loops] = n_out
    return xs[:n_out], ys[:n_out], starts[:n_loops + 1], labels[:n_loops], area2[:n_loops]


def outline_kernel(lab: np.ndarray, keep: np.ndarray, col_off: int, row_off: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Polygons of the kept labels of a 4-connected labelling, as ragged arrays; None to fall back.

    Parameters
    ----------
    lab : ndarray of int
        Labels (0: none), as :func:`scipy.ndimage.label` gives with 4-connectivity.
    keep : ndarray of bool, shape (n + 1,)
        Which labels to outline (``keep[0]`` is ignored).
    col_off, row_off : int
        Added to the pixel-corner coordinates (the block's place in its grid).

    Returns
    -------
    (coords, ring_offsets, polygon_offsets)
        One Polygon per kept label, in ascending label order, as
        :func:`shapely.from_ragged_array` takes them: ``coords`` int32
        ``(m, 2)`` (x = column, y = row of pixel corners), closed rings, the
        outer ring first.  The same polygons as
        ``rasterio.features.shapes(lab, connectivity=4)`` gives (see
        ``tests/test_kernels.py``), up to vertex order and collinear vertices.
        None when numba is missing or a label did not come out as exactly
        one outer ring (labels that are not 4-connected components).
    """
    if not HAVE_NUMBA or lab.ndim != 2:
        return None
    keep = np.asarray(keep, dtype=np.bool_).copy()
    keep[0] = False
    lab32 = np.ascontiguousarray(lab, dtype=np.int32)
    if lab32.size and (lab32.max() >= keep.size or lab32.min() < 0):
        return None
    xs, ys, starts, labels, area2 = _trace_loops(lab32, keep)
    outer = area2 > 0
    kept = np.flatnonzero(keep)
    n_outer = np.bincount(labels[outer], minlength=keep.size)
    if not (n_outer[kept] == 1).all() or n_outer.sum() != kept.size:
        return None
    # each label's rings together, its outer ring first, holes in the order they were traced
    order = np.lexsort((~outer, labels))
    lens = np.diff(starts)[order]
    ends = np.cumsum(lens)
    src = np.repeat(starts[:-1][order] - (ends - lens), lens) + np.arange(int(ends[-1]) if ends.size else 0)
    coords = np.empty((src.size, 2), dtype=np.int32)
    coords[:, 0] = xs[src] + np.int32(col_off)
    coords[:, 1] = ys[src] + np.int32(row_off)
    ring_offsets = np.r_[0, ends].astype(np.int64)
    polygon_offsets = np.r_[0, np.cumsum(np.bincount(labels, minlength=keep.size)[kept])].astype(np.int64)
    return coords, ring_offsets, polygon_offsets
