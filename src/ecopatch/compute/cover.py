"""Land cover from indices: vegetation, bare, built and water fractions per pixel, and FVC.

Every pixel gets four *fractions* that sum to 1 where it is observed:
``veg`` (vegetation), ``bare`` (bare soil and rock), ``built`` (roofs,
concrete, roads) and ``water``.  Fractions rather than hard classes, because
a 10 m pixel on the edge of a quarry is part rock and part forest, and small
mines are mostly edge: counting such pixels as half restored is what keeps
per-mine areas right (see :mod:`ecopatch.analyses.restoration`).

Rules (defaults in :class:`CoverParams`, each overridable):

1. **Water** from MNDWI (NDWI when there is no SWIR band): membership rises
   linearly from 0 at ``water_index - water_ramp`` to 1 at
   ``water_index + water_ramp``, times a second ramp requiring a dark NIR
   (from 0 at ``water_nir_max + 0.03`` to 1 at ``water_nir_max - 0.03``),
   because blue steel-sheet roofs (彩钢瓦) also have a positive MNDWI.
2. **Vegetation** from fractional vegetation cover (FVC) by the dimidiate
   pixel model, ``FVC = (NDVI - NDVI_soil) / (NDVI_veg - NDVI_soil)``
   clipped to [0, 1] (Gutman & Ignatov 1998).  The end-members come from the
   scene (5th/95th percentiles of NDVI, :func:`estimate_endmembers`) or are
   given.  The vegetation fraction rises linearly from 0 at ``fvc_bare`` to 1
   at ``fvc_veg``: pure canopy with some texture saturates at 1, pure soil at
   0, and a pixel mixed half and half lands near 0.5.
3. What is neither is **bare** or **built**, split by the bare soil index:
   built where BSI is below ``bsi_built`` (roofs, concrete and asphalt
   reflect less SWIR relative to visible than soil does), with a linear ramp
   of ``bsi_ramp`` either side.  Canopy lowers BSI, so in a cell part soil,
   part forest the soil would read as concrete: when the scene's canopy
   spectrum is known (``veg_spectrum``), BSI is computed on the non-vegetated
   remainder ``(ρ - FVC · ρ_canopy) / (1 - FVC)`` (linear unmixing with one
   known end-member).
4. Drone RGB (no NIR): vegetation from excess green (ExG) between
   ``exg_bare`` and ``exg_veg``; water where blue dominates and the pixel is
   dark; no built/bare split (all non-vegetated land is bare).

``method="hard"`` turns the memberships into 0/1 at the ramp centres;
``thresholds="otsu"`` sets the vegetation threshold per scene by Otsu's
method on the NDVI (or ExG) histogram instead of ``fvc_bare``/``fvc_veg``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from ecopatch.compute.indices import bsi, exg, mndwi, ndvi, ndwi
from ecopatch.errors import ConfigError, MissingBandError, NoValidPixelsError

__all__ = [
    "CLASSES",
    "CoverParams",
    "classify",
    "cover_fractions",
    "estimate_canopy_spectrum",
    "estimate_endmembers",
    "fvc",
    "local_veg_fraction",
    "otsu_threshold",
    "surface_fractions",
    "veg_from_fvc",
]

#: Set True (tests only) to force the NumPy reference instead of the fused numba kernel.
_NUMPY_ONLY = False

#: Cover classes, in the order of the codes :func:`classify` returns (0 = no data).
CLASSES: tuple[str, ...] = ("veg", "bare", "built", "water")


@dataclass(frozen=True)
class CoverParams:
    """Thresholds of the cover rules (see the module docstring).

    Parameters
    ----------
    ndvi_soil, ndvi_veg : float or None
        NDVI of bare soil and of full canopy (FVC end-members).  None: take
        them from the scene with :func:`estimate_endmembers`.
    fvc_bare, fvc_veg : float
        FVC at or below which a pixel has no vegetation, and at or above
        which it is fully vegetated.  Defaults 0.10 and 0.45: the upper
        bound of the "bare" grade and the lower bound of the "medium cover"
        grade of the vegetation-cover grading used in Chinese soil-erosion
        classification (<10 %, 10-30 %, 30-45 %, 45-60 %, 60-75 %, >75 %), so
        a young planting of medium cover counts as vegetated.
    water_index, water_ramp : float
        MNDWI (or NDWI) centre and half-width of the water ramp.
    water_nir_max : float
        NIR reflectance above which a pixel is not water (ramp ±0.03).
    bsi_built, bsi_ramp : float
        BSI centre and half-width of the built/bare split; 0.12 is midway
        between concrete (about 0.05) and bare soil (about 0.2) in spectral
        libraries.
    exg_bare, exg_veg : float
        Excess green (chromatic, ``2g - r - b``) of bare ground and of full
        vegetation in drone RGB.
    method : {"soft", "hard"}
        Fractions, or 0/1 classes at the ramp centres.
    thresholds : {"fixed", "otsu"}
        ``"otsu"`` replaces the vegetation ramp by a hard Otsu threshold on
        the scene's NDVI (ExG for RGB), set with :func:`otsu_threshold`.
    veg_threshold : float or None
        The Otsu threshold once estimated (NDVI, or ExG for RGB).
    veg_spectrum : tuple of (band, reflectance) pairs, or None
        Reflectance of full canopy in the scene (e.g. from
        :func:`estimate_canopy_spectrum`), used to unmix canopy out of mixed
        cells before the built/bare split.
    """

    ndvi_soil: float | None = None
    ndvi_veg: float | None = None
    fvc_bare: float = 0.10
    fvc_veg: float = 0.45
    water_index: float = 0.05
    water_ramp: float = 0.10
    water_nir_max: float = 0.12
    bsi_built: float = 0.12
    bsi_ramp: float = 0.04
    exg_bare: float = 0.03
    exg_veg: float = 0.12
    method: str = "soft"
    thresholds: str = "fixed"
    veg_threshold: float | None = None
    veg_spectrum: tuple[tuple[str, float], ...] | None = None

    def __post_init__(self) -> None:
        if self.method not in ("soft", "hard"):
            raise ConfigError(f"cover method={self.method!r}; use 'soft' or 'hard'")
        if self.thresholds not in ("fixed", "otsu"):
            raise ConfigError(f"cover thresholds={self.thresholds!r}; use 'fixed' or 'otsu'")
        if not 0 <= self.fvc_bare < self.fvc_veg <= 1:
            raise ConfigError(
                f"need 0 <= fvc_bare < fvc_veg <= 1, got fvc_bare={self.fvc_bare}, fvc_veg={self.fvc_veg}"
            )
        if self.ndvi_soil is not None and self.ndvi_veg is not None and self.ndvi_veg <= self.ndvi_soil:
            raise ConfigError(
                f"ndvi_veg ({self.ndvi_veg}) must exceed ndvi_soil ({self.ndvi_soil})"
            )
        if self.water_ramp < 0 or self.bsi_ramp < 0:
            raise ConfigError("ramp half-widths must be >= 0")

    def with_endmembers(self, ndvi_soil: float, ndvi_veg: float) -> CoverParams:
        """A copy with the FVC end-members set (only where not given already)."""
        return replace(
            self,
            ndvi_soil=self.ndvi_soil if self.ndvi_soil is not None else float(ndvi_soil),
            ndvi_veg=self.ndvi_veg if self.ndvi_veg is not None else float(ndvi_veg),
        )


def _ramp(x: np.ndarray, lo: float, hi: float, hard: bool) -> np.ndarray:
    """0 at or below ``lo``, 1 at or above ``hi``, linear between; NaN stays NaN."""
    if hard or hi <= lo:
        mid = (lo + hi) / 2
        out = (x >= mid).astype(np.float32)
        out[np.isnan(x)] = np.nan
        return out
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def fvc(ndvi_values: np.ndarray, ndvi_soil: float, ndvi_veg: float) -> np.ndarray:
    """Fractional vegetation cover by the dimidiate pixel model, in [0, 1].

    Parameters
    ----------
    ndvi_values : ndarray
        NDVI, NaN where not observed.
    ndvi_soil, ndvi_veg : float
        NDVI of bare soil and of full canopy.

    Returns
    -------
    ndarray of float32
        ``(NDVI - ndvi_soil) / (ndvi_veg - ndvi_soil)`` clipped to [0, 1].

    Examples
    --------
    >>> fvc(np.array([0.05, 0.45, 0.9]), 0.05, 0.85).round(2).tolist()
    [0.0, 0.5, 1.0]
    """
    if ndvi_veg <= ndvi_soil:
        raise ConfigError(f"ndvi_veg ({ndvi_veg}) must exceed ndvi_soil ({ndvi_soil})")
    out = (np.asarray(ndvi_values, dtype=np.float32) - ndvi_soil) / (ndvi_veg - ndvi_soil)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def estimate_endmembers(
    ndvi_sample: np.ndarray, *, high_pct: float = 95.0, bare_max: float = 0.3,
    default_soil: float = 0.1,
) -> tuple[float, float]:
    """NDVI of bare soil and of full canopy from a scene's NDVI distribution.

    Canopy: the ``high_pct`` percentile of the finite values.  Soil: the
    median NDVI of the pixels that are plainly bare land (``0 < NDVI <
    bare_max``), because in a mostly green landscape even the 5th percentile
    of NDVI is vegetation; ``default_soil`` when fewer than 0.2 % of the
    pixels are bare.  Both are kept within physically sensible bounds (soil
    in [-0.05, 0.25], canopy in [0.55, 0.95]).

    Parameters
    ----------
    ndvi_sample : ndarray
        NDVI values (any shape), NaN ignored.
    high_pct : float
        Percentile for the canopy end-member.
    bare_max : float
        NDVI below which (and above 0, to leave out water) a pixel is bare.
    default_soil : float
        Soil NDVI when the sample holds almost no bare pixel.

    Returns
    -------
    (ndvi_soil, ndvi_veg) : tuple of float

    Raises
    ------
    NoValidPixelsError
        When the sample holds no finite value.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.r_[rng.normal(0.12, 0.02, 300), rng.normal(0.8, 0.03, 5000)]
    >>> [round(v, 2) for v in estimate_endmembers(x)]
    [0.12, 0.85]
    """
    v = np.asarray(ndvi_sample, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise NoValidPixelsError(
            "no valid pixel to estimate the NDVI end-members from (all cloud or no data); "
            "give ndvi_soil and ndvi_veg explicitly or use a clearer scene"
        )
    hi = float(np.percentile(v, high_pct))
    bare = v[(v > 0) & (v < bare_max)]
    lo = float(np.median(bare)) if bare.size >= max(5, 0.002 * v.size) else default_soil
    return float(np.clip(lo, -0.05, 0.25)), float(np.clip(hi, 0.55, 0.95))


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of the finite values (maximises between-class variance).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.r_[rng.normal(0.1, 0.03, 1000), rng.normal(0.7, 0.05, 1000)]
    >>> 0.2 < otsu_threshold(x) < 0.6   # anywhere in the gap between the modes
    True
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise NoValidPixelsError("Otsu threshold: no valid value")
    if np.ptp(v) == 0:
        return float(v[0])
    hist, edges = np.histogram(v, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m = np.cumsum(hist * centres)
    mu0 = m / np.maximum(w0, 1)
    mu1 = (m[-1] - m) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    # When the modes are separated by empty bins every cut in the gap is
    # equally good: take the middle of that plateau, not its first bin.
    best = np.flatnonzero(between >= between.max() * (1 - 1e-12))
    k0, k1 = best[0], best[-1]
    return float((edges[k0 + 1] + edges[k1 + 1]) / 2)


def veg_from_fvc(fvc_values: np.ndarray, params: CoverParams) -> np.ndarray:
    """Vegetation fraction (0-1) from FVC by the rule of ``params`` (ramp, hard or Otsu).

    This is the mapping :func:`cover_fractions` applies per pixel; it is
    exposed so that FVC can be unmixed first (FVC mixes about linearly across
    a pixel, the saturating vegetation fraction does not) and classified
    after, as :mod:`ecopatch.analyses.restoration` does at patch edges.
    """
    f = np.asarray(fvc_values, dtype=np.float32)
    if params.thresholds == "otsu":
        if params.veg_threshold is None or params.ndvi_soil is None or params.ndvi_veg is None:
            raise ConfigError("thresholds='otsu' needs veg_threshold and the end-members set")
        nd = params.ndvi_soil + f * (params.ndvi_veg - params.ndvi_soil)
        out = (nd >= params.veg_threshold).astype(np.float32)
        out[np.isnan(f)] = np.nan
        return out
    return _ramp(f, params.fvc_bare, params.fvc_veg, params.method == "hard")


def local_veg_fraction(
    fvc_values: np.ndarray,
    params: CoverParams,
    *,
    fvc_for: np.ndarray | None = None,
    size: int = 5,
    dense_margin: float = 0.25,
    texture_margin: float = 0.15,
    context: np.ndarray | None = None,
) -> np.ndarray:
    """Vegetation fraction with local end-members where vegetation meets bare ground.

    A fixed ramp on FVC saturates early for dense canopy: a cell half
    cropland (FVC 0.85) and half bare soil has FVC ≈ 0.42 and would count as
    ~90 % vegetated.  Cells with a bare neighbour (FVC ≤ ``fvc_bare`` within
    the 3 × 3 block) are therefore unmixed between local end-members: the
    mean FVC of the clearly vegetated (FVC ≥ ``fvc_veg``) and of the clearly
    bare cells in the ``size`` × ``size`` neighbourhood.  Every other cell
    uses :func:`veg_from_fvc`.

    Parameters
    ----------
    fvc_values : ndarray of shape (rows, cols)
        FVC of the cells (0-1, NaN where not observed); sets the local
        end-members.
    params : CoverParams
    fvc_for : ndarray, optional
        FVC values to convert (same shape), e.g. the FVC of the part of each
        cell inside a polygon after edge unmixing; default ``fvc_values``.
    size : int
        Neighbourhood for the local end-members, cells.
    dense_margin, texture_margin : float
        See above (FVC units).
    context : ndarray of bool, optional
        Cells allowed to serve as end-members (e.g. the cells entirely inside
        one mine, so that forest around a mine does not set the reference
        for the planting inside it).  Default all.

    Returns
    -------
    ndarray of float32
        Vegetation fraction 0-1, NaN where ``fvc_for`` is NaN.
    """
    from scipy.ndimage import maximum_filter, uniform_filter

    f = np.asarray(fvc_values, dtype=np.float64)
    target = f if fvc_for is None else np.asarray(fvc_for, dtype=np.float64)
    base = veg_from_fvc(target, params).astype(np.float64)
    if params.thresholds == "otsu" or params.method == "hard":
        return base.astype(np.float32)
    ok = np.isfinite(f)
    if context is not None:
        ok &= np.asarray(context, dtype=bool)
    veg = ok & (f >= params.fvc_veg)
    bare = ok & (f <= params.fvc_bare)
    if not (veg.any() and bare.any()):
        return base.astype(np.float32)  # no canopy or no bare end-member: no cell is unmixed below

    def local_mean(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # counts are rounded: uniform_filter's running sums leave ~1e-17 residues
        # whose sign depends on the array's extent, which would break window invariance
        n = np.rint(uniform_filter(mask.astype(np.float64), size=size, mode="constant") * size * size)
        s = uniform_filter(np.where(mask, f, 0.0), size=size, mode="constant") * size * size
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, s / np.where(n > 0, n, 1), np.nan), n

    ref_veg, nv = local_mean(veg)
    ref_bare, nb = local_mean(bare)
    near_bare = maximum_filter(bare.astype(np.uint8), size=3, mode="constant") > 0
    # Only dense canopy saturates the ramp early, and only cells clearly below
    # their canopy neighbours are mixed (not just textured canopy).
    dense = ref_veg >= params.fvc_veg + dense_margin
    below = target < ref_veg - texture_margin
    use = near_bare & dense & below & (nb > 0) & np.isfinite(target)
    with np.errstate(invalid="ignore", divide="ignore"):
        span = ref_veg - ref_bare
        local = np.clip((target - ref_bare) / np.where(span > 0.2, span, np.nan), 0.0, 1.0)
    use &= np.isfinite(local)
    return np.where(use, local, base).astype(np.float32)


def _has(bands: Mapping[str, np.ndarray], *names: str) -> bool:
    return all(n in bands for n in names)


def cover_fractions(
    bands: Mapping[str, np.ndarray],
    params: CoverParams | None = None,
    *,
    rgb: bool | None = None,
    source: str = "scene",
) -> dict[str, np.ndarray]:
    """Per-pixel cover fractions and supporting indices from reflectance bands.

    Parameters
    ----------
    bands : mapping of str to ndarray of shape (rows, cols)
        Reflectance by common band name (NaN where not observed).  Needs
        ``red`` and ``nir`` (multispectral) or ``red``, ``green``, ``blue``
        (RGB); ``swir1`` and ``blue`` enable the water and built rules.
    params : CoverParams, optional
        Thresholds.  FVC end-members must be set (see
        :meth:`CoverParams.with_endmembers`) for multispectral input.
    rgb : bool, optional
        Force the RGB rules; default when there is no ``nir`` band.
    source : str
        Name of the data for error messages.

    Returns
    -------
    dict of str to ndarray of float32
        ``veg``, ``bare``, ``built``, ``water`` (fractions 0-1 summing to 1
        where observed, NaN elsewhere), ``fvc`` (0-1; for RGB the vegetation
        fraction), and the indices used: ``ndvi``, ``mndwi`` or ``ndwi``,
        ``bsi`` (multispectral) or ``exg`` (RGB).

    Raises
    ------
    MissingBandError
        If neither band set is present.
    ConfigError
        If the FVC end-members are not set.
    """
    p = params or CoverParams()
    hard = p.method == "hard"
    if rgb is None:
        rgb = "nir" not in bands
    if rgb:
        if not _has(bands, "red", "green", "blue"):
            raise MissingBandError(
                f"{source}: cover classes need red and nir (or red, green and blue for RGB); "
                f"got {list(bands)}"
            )
        return _rgb_fractions(bands, p, hard)
    if not _has(bands, "red", "nir"):
        raise MissingBandError(f"{source}: cover classes need red and nir bands; got {list(bands)}")
    if p.ndvi_soil is None or p.ndvi_veg is None:
        raise ConfigError(
            "FVC end-members not set: give CoverParams(ndvi_soil=..., ndvi_veg=...) or call "
            "params.with_endmembers(*estimate_endmembers(ndvi_sample))"
        )
    from ecopatch.compute.kernels import cover_kernel

    fused = cover_kernel(dict(bands), p) if not _NUMPY_ONLY else None
    if fused is not None:
        return fused
    red, nir = bands["red"], bands["nir"]
    nd = ndvi(nir, red)
    valid = np.isfinite(nd)
    out: dict[str, np.ndarray] = {"ndvi": nd}
    if _has(bands, "green", "swir1"):
        wi = mndwi(bands["green"], bands["swir1"])
        out["mndwi"] = wi
    elif "green" in bands:
        wi = ndwi(bands["green"], nir)
        out["ndwi"] = wi
    else:
        wi = np.full(nd.shape, -1.0, dtype=np.float32)
    water = _ramp(wi, p.water_index - p.water_ramp, p.water_index + p.water_ramp, hard)
    water = water * _ramp(-np.asarray(nir, dtype=np.float32), -(p.water_nir_max + 0.03),
                          -(p.water_nir_max - 0.03), hard)
    water = np.where(np.isnan(water) & valid, 0.0, water)
    f = fvc(nd, p.ndvi_soil, p.ndvi_veg)
    if p.thresholds == "otsu":
        if p.veg_threshold is None:
            raise ConfigError("thresholds='otsu' needs veg_threshold set from the scene (otsu_threshold)")
        vmem = (nd >= p.veg_threshold).astype(np.float32)
    else:
        vmem = _ramp(f, p.fvc_bare, p.fvc_veg, hard)
    veg = (1.0 - water) * vmem
    rest = 1.0 - water - veg
    if _has(bands, "blue", "swir1"):
        b = bsi(bands["blue"], red, nir, bands["swir1"])
        out["bsi"] = b
        if p.veg_spectrum is not None:
            b = _bsi_without_canopy(bands, f, dict(p.veg_spectrum), b)
        builtshare = 1.0 - _ramp(b, p.bsi_built - p.bsi_ramp, p.bsi_built + p.bsi_ramp, hard)
        builtshare = np.where(np.isnan(builtshare), 0.0, builtshare)
    else:
        builtshare = np.zeros(nd.shape, dtype=np.float32)
    built = rest * builtshare
    bare = rest - built
    out.update(veg=veg, bare=bare, built=built, water=water, fvc=f)
    for k in ("veg", "bare", "built", "water", "fvc"):
        a = np.asarray(out[k], dtype=np.float32)
        a[~valid] = np.nan
        out[k] = a
    return out


def _bsi_without_canopy(bands: Mapping[str, np.ndarray], f: np.ndarray, canopy: Mapping[str, float],
                        raw: np.ndarray) -> np.ndarray:
    """BSI of the non-vegetated remainder of each cell (canopy unmixed out); raw BSI where FVC ≥ 0.9."""
    if not all(k in canopy for k in ("blue", "red", "nir", "swir1")):
        return raw
    keep = np.clip(np.asarray(f, dtype=np.float32), 0.0, 0.9)
    rest = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in ("blue", "red", "nir", "swir1"):
            rest[k] = (np.asarray(bands[k], dtype=np.float32) - keep * np.float32(canopy[k])) / (1.0 - keep)
    out = bsi(rest["blue"], rest["red"], rest["nir"], rest["swir1"])
    return np.where(np.isfinite(out), out, raw)


def estimate_canopy_spectrum(bands: Mapping[str, np.ndarray], ndvi_veg: float) -> tuple[tuple[str, float], ...] | None:
    """Median reflectance of full-canopy pixels (NDVI at or above ``ndvi_veg`` - 0.05), per band.

    Returns None when fewer than 20 such pixels are observed.
    """
    nd = ndvi(bands["nir"], bands["red"])
    sel = np.isfinite(nd) & (nd >= ndvi_veg - 0.05)
    if sel.sum() < 20:
        return None
    return tuple((k, float(np.nanmedian(np.asarray(v)[sel]))) for k, v in bands.items())


def _rgb_fractions(bands: Mapping[str, np.ndarray], p: CoverParams, hard: bool) -> dict[str, np.ndarray]:
    r, g, b = (np.asarray(bands[k], dtype=np.float32) for k in ("red", "green", "blue"))
    e = exg(r, g, b)
    valid = np.isfinite(e)
    if p.thresholds == "otsu":
        if p.veg_threshold is None:
            raise ConfigError("thresholds='otsu' needs veg_threshold set from the scene (otsu_threshold)")
        vmem = (e >= p.veg_threshold).astype(np.float32)
    else:
        vmem = _ramp(e, p.exg_bare, p.exg_veg, hard)
    brightness = (r + g + b) / 3
    water = ((b > g) & (b > r) & (brightness < 0.35)).astype(np.float32)
    veg = (1 - water) * vmem
    bare = 1 - water - veg
    out = {"exg": e, "veg": veg, "bare": bare, "built": np.zeros_like(veg), "water": water, "fvc": veg.copy()}
    for k in ("veg", "bare", "built", "water", "fvc"):
        out[k] = np.asarray(out[k], dtype=np.float32)
        out[k][~valid] = np.nan
    return out


def classify(fractions: Mapping[str, np.ndarray]) -> np.ndarray:
    """Hard class codes from fractions: 0 no data, then 1 + index in :data:`CLASSES` of the largest.

    Returns
    -------
    ndarray of uint8
    """
    stack = np.stack([np.asarray(fractions[c], dtype=np.float32) for c in CLASSES])
    nodata = np.all(np.isnan(stack), axis=0)
    codes = np.argmax(np.nan_to_num(stack, nan=-1.0), axis=0).astype(np.uint8) + 1
    codes[nodata] = 0
    return codes


def surface_fractions(bands: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Cover fractions of one date for change typing, from reflectance in one radiometric space.

    The sky watch describes both dates with the same fixed rules, on
    reflectance already made comparable (haze removed, the later date
    normalised onto the earlier), so that a fraction that rises between
    the dates is ground that changed, not a different scene statistic:

    * ``water`` = ramp(MNDWI, 0 → 0.2) × ramp(SWIR1, 0.10 → 0.06) ×
      ramp(NDVI, 0.2 → 0) (each ramp rises from 0 at its first value to 1
      at its second): water stays dark in SWIR even when turbid; steel
      roofs, with a positive MNDWI too, do not.  Without SWIR1: NDWI of
      green and NIR, and ramp(NIR, 0.15 → 0.10);
    * ``veg`` = ramp(NDVI, 0.15 → 0.6) × (1 - water);
    * the rest is ``bare`` or ``built`` in the proportion of two soil
      signs: a red-over-blue visible spectrum (blue/red from 0.66 down to
      0.54: soil, sand and rock are reddish, concrete, asphalt and roofs
      grey) and clay or moisture absorption at 2.2 µm (SWIR2/SWIR1 from
      0.85 down to 0.77).  Their mean is the bare share; a sign whose bands
      are missing is left out.

    Parameters
    ----------
    bands : mapping of str to ndarray of shape (rows, cols)
        Reflectance (0-1): ``red`` and ``nir`` at least; ``green``,
        ``blue``, ``swir1``, ``swir2`` where the sensor has them.

    Returns
    -------
    dict of str to ndarray of float32
        ``veg``, ``bare``, ``built``, ``water`` (summing to 1), ``ndvi``,
        ``mndwi`` (or NDWI), ``bsi`` (where the bands exist), and
        ``typed`` (a 0-d array: 1.0 when bare and built could be told apart,
        0.0 when no soil sign could be computed).
    """
    if not _has(bands, "red", "nir"):
        raise MissingBandError("surface_fractions needs red and nir bands")
    if not _NUMPY_ONLY:
        from ecopatch.compute.kernels import surface_kernel

        fused = surface_kernel(dict(bands))  # the six-band case in one pass, bit-identical to the below
        if fused is not None:
            return fused

    def ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.clip((x - lo) / (hi - lo), 0.0, 1.0)

    red = np.asarray(bands["red"], dtype=np.float32)
    nir = np.asarray(bands["nir"], dtype=np.float32)
    vi = ndvi(nir, red)
    if _has(bands, "green", "swir1"):
        wi = mndwi(bands["green"], bands["swir1"])
        # water stays dark in SWIR even when turbid (then bright in red and NIR); steel roofs,
        # which share water's positive MNDWI, are bright in SWIR
        dark = ramp(-np.asarray(bands["swir1"], dtype=np.float32), -0.10, -0.06)
    elif _has(bands, "green"):
        wi = ndwi(bands["green"], nir)
        dark = ramp(-nir, -0.15, -0.10)
    else:
        wi = np.full(red.shape, np.nan, dtype=np.float32)
        dark = np.zeros(red.shape, dtype=np.float32)
    water = np.nan_to_num(ramp(wi, 0.0, 0.2) * dark, nan=0.0) * ramp(-vi, -0.2, 0.0)
    veg = ramp(vi, 0.15, 0.6) * (1.0 - water)
    rest = np.clip(1.0 - veg - water, 0.0, 1.0)
    signs = []
    with np.errstate(invalid="ignore", divide="ignore"):
        if _has(bands, "blue"):
            signs.append(ramp(0.66 - np.asarray(bands["blue"], dtype=np.float32) / red, 0.0, 0.12))
        if _has(bands, "swir1", "swir2"):
            s1 = np.asarray(bands["swir1"], dtype=np.float32)
            signs.append(ramp(0.85 - np.asarray(bands["swir2"], dtype=np.float32) / s1, 0.0, 0.08))
    typed = bool(signs)
    soil = np.mean(signs, axis=0) if signs else np.full(red.shape, 0.5, dtype=np.float32)
    soil = np.where(np.isfinite(soil), soil, 0.5)
    ok = np.isfinite(vi)
    out = {
        "veg": np.where(ok, veg, np.nan).astype(np.float32),
        "bare": np.where(ok, rest * soil, np.nan).astype(np.float32),
        "built": np.where(ok, rest * (1.0 - soil), np.nan).astype(np.float32),
        "water": np.where(ok, water, np.nan).astype(np.float32),
        "ndvi": vi.astype(np.float32),
        "mndwi": np.asarray(wi, dtype=np.float32),
        "typed": np.asarray(1.0 if typed else 0.0, dtype=np.float32),
    }
    if _has(bands, "blue", "red", "nir", "swir1"):
        out["bsi"] = bsi(bands["blue"], red, nir, bands["swir1"]).astype(np.float32)
    return out
