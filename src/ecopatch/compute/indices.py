"""Spectral indices on reflectance arrays: vegetation, water, built-up, bare soil, and RGB-only.

Pure functions over NumPy arrays of any shape.  Inputs are reflectance
(unitless, 0-1; relative brightness for drone RGB) with NaN where not
observed.  Outputs are float32, NaN wherever an input is NaN or the
denominator is zero, and clipped to the index's documented range so that a
slightly negative reflectance (dark water after an offset) cannot produce an
absurd value.

References: NDVI (Rouse et al. 1974), EVI (Huete et al. 2002), SAVI (Huete
1988), MSAVI (Qi et al. 1994), NDWI (McFeeters 1996), MNDWI (Xu 2006), NDBI
(Zha et al. 2003), BSI (Rikimaru et al. 2002), ExG (Woebbecke et al. 1995),
VARI and GLI (Gitelson et al. 2002; Louhaichi et al. 2001), NGRDI (Tucker 1979).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ecopatch.errors import ConfigError, MissingBandError

__all__ = [
    "INDICES",
    "bsi",
    "compute_index",
    "evi",
    "exg",
    "gli",
    "mndwi",
    "msavi",
    "ndbi",
    "ndvi",
    "ndwi",
    "ngrdi",
    "normalized_difference",
    "savi",
    "vari",
]

FloatArray = np.ndarray


def _f32(a: object) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def _ratio(num: np.ndarray, den: np.ndarray, lo: float, hi: float) -> np.ndarray:
    num = np.asarray(num, dtype=np.float32)
    den = np.asarray(den, dtype=np.float32)
    out = np.full(np.broadcast(num, den).shape, np.nan, dtype=np.float32)
    ok = np.isfinite(num) & np.isfinite(den) & (den != 0)
    np.divide(num, den, out=out, where=ok)
    np.clip(out, lo, hi, out=out)
    return out


def normalized_difference(a: FloatArray, b: FloatArray) -> FloatArray:
    """``(a - b) / (a + b)``, in [-1, 1]; NaN where an input is NaN or ``a + b == 0``.

    Examples
    --------
    >>> normalized_difference(np.array([0.4, 0.0, np.nan]), np.array([0.1, 0.0, 0.1])).tolist()
    [0.6000000238418579, nan, nan]
    """
    a, b = _f32(a), _f32(b)
    return _ratio(a - b, a + b, -1.0, 1.0)


def ndvi(nir: FloatArray, red: FloatArray) -> FloatArray:
    """Normalised difference vegetation index, ``(nir - red) / (nir + red)``.

    Parameters
    ----------
    nir, red : ndarray
        Surface reflectance, unitless in [0, 1]; NaN where invalid.

    Returns
    -------
    ndarray of float32
        In [-1, 1]; NaN where an input is NaN or ``nir + red == 0``.

    Examples
    --------
    >>> float(ndvi(np.float32(0.35), np.float32(0.035)))  # dense forest
    0.8181818127632141
    """
    return normalized_difference(nir, red)


def evi(nir: FloatArray, red: FloatArray, blue: FloatArray) -> FloatArray:
    """Enhanced vegetation index, ``2.5 (nir - red) / (nir + 6 red - 7.5 blue + 1)``, clipped to [-1, 1]."""
    nir, red, blue = _f32(nir), _f32(red), _f32(blue)
    return _ratio(2.5 * (nir - red), nir + 6 * red - 7.5 * blue + 1, -1.0, 1.0)


def savi(nir: FloatArray, red: FloatArray, L: float = 0.5) -> FloatArray:  # noqa: N803
    """Soil-adjusted vegetation index, ``(1 + L)(nir - red) / (nir + red + L)``, in [-1, 1]."""
    nir, red = _f32(nir), _f32(red)
    return _ratio((1 + L) * (nir - red), nir + red + L, -1.0, 1.0)


def msavi(nir: FloatArray, red: FloatArray) -> FloatArray:
    """Modified SAVI (MSAVI2), ``(2 nir + 1 - sqrt((2 nir + 1)² - 8 (nir - red))) / 2``, in [-1, 1]."""
    nir, red = _f32(nir), _f32(red)
    with np.errstate(invalid="ignore"):
        disc = (2 * nir + 1) ** 2 - 8 * (nir - red)
        out = (2 * nir + 1 - np.sqrt(np.where(disc >= 0, disc, np.nan))) / 2
    return np.clip(out.astype(np.float32), -1.0, 1.0)


def ndwi(green: FloatArray, nir: FloatArray) -> FloatArray:
    """McFeeters water index, ``(green - nir) / (green + nir)``, in [-1, 1]; water > 0."""
    return normalized_difference(green, nir)


def mndwi(green: FloatArray, swir1: FloatArray) -> FloatArray:
    """Modified NDWI (Xu 2006), ``(green - swir1) / (green + swir1)``, in [-1, 1]; water > 0."""
    return normalized_difference(green, swir1)


def ndbi(swir1: FloatArray, nir: FloatArray) -> FloatArray:
    """Normalised difference built-up index, ``(swir1 - nir) / (swir1 + nir)``, in [-1, 1]."""
    return normalized_difference(swir1, nir)


def bsi(blue: FloatArray, red: FloatArray, nir: FloatArray, swir1: FloatArray) -> FloatArray:
    """Bare soil index, ``((swir1 + red) - (nir + blue)) / ((swir1 + red) + (nir + blue))``, in [-1, 1].

    Examples
    --------
    >>> round(float(bsi(0.10, 0.20, 0.26, 0.34)), 3)  # bare red soil
    0.2
    """
    blue, red, nir, swir1 = _f32(blue), _f32(red), _f32(nir), _f32(swir1)
    return _ratio((swir1 + red) - (nir + blue), (swir1 + red) + (nir + blue), -1.0, 1.0)


def exg(red: FloatArray, green: FloatArray, blue: FloatArray) -> FloatArray:
    """Excess green on chromatic coordinates, ``2g - r - b`` with ``g = G / (R + G + B)``; in [-1, 2].

    Scale-free, so it works on 8-bit drone RGB without radiometric calibration.
    NaN where ``R + G + B == 0`` (black no-data collar).

    Examples
    --------
    >>> round(float(exg(60, 120, 40)), 3)
    0.636
    """
    red, green, blue = _f32(red), _f32(green), _f32(blue)
    total = red + green + blue
    num = 2 * green - red - blue
    return _ratio(num, total, -1.0, 2.0)


def vari(red: FloatArray, green: FloatArray, blue: FloatArray) -> FloatArray:
    """Visible atmospherically resistant index, ``(G - R) / (G + R - B)``, clipped to [-1, 1]."""
    red, green, blue = _f32(red), _f32(green), _f32(blue)
    return _ratio(green - red, green + red - blue, -1.0, 1.0)


def gli(red: FloatArray, green: FloatArray, blue: FloatArray) -> FloatArray:
    """Green leaf index, ``(2G - R - B) / (2G + R + B)``, in [-1, 1]."""
    red, green, blue = _f32(red), _f32(green), _f32(blue)
    return _ratio(2 * green - red - blue, 2 * green + red + blue, -1.0, 1.0)


def ngrdi(red: FloatArray, green: FloatArray) -> FloatArray:
    """Normalised green-red difference index, ``(G - R) / (G + R)``, in [-1, 1]."""
    return normalized_difference(green, red)


@dataclass(frozen=True)
class IndexSpec:
    """An index: its function, the common band names it needs (in argument order) and its range."""

    func: Callable[..., np.ndarray]
    bands: tuple[str, ...]
    range: tuple[float, float]
    description: str


#: Every index by name: function, bands, value range.
INDICES: Mapping[str, IndexSpec] = {
    "ndvi": IndexSpec(ndvi, ("nir", "red"), (-1, 1), "vegetation"),
    "evi": IndexSpec(evi, ("nir", "red", "blue"), (-1, 1), "vegetation, less saturated"),
    "savi": IndexSpec(savi, ("nir", "red"), (-1, 1), "vegetation over bright soil"),
    "msavi": IndexSpec(msavi, ("nir", "red"), (-1, 1), "vegetation over bright soil"),
    "ndwi": IndexSpec(ndwi, ("green", "nir"), (-1, 1), "open water"),
    "mndwi": IndexSpec(mndwi, ("green", "swir1"), (-1, 1), "open water, built-up suppressed"),
    "ndbi": IndexSpec(ndbi, ("swir1", "nir"), (-1, 1), "built-up"),
    "bsi": IndexSpec(bsi, ("blue", "red", "nir", "swir1"), (-1, 1), "bare soil"),
    "exg": IndexSpec(exg, ("red", "green", "blue"), (-1, 2), "vegetation from RGB"),
    "vari": IndexSpec(vari, ("red", "green", "blue"), (-1, 1), "vegetation from RGB"),
    "gli": IndexSpec(gli, ("red", "green", "blue"), (-1, 1), "vegetation from RGB"),
    "ngrdi": IndexSpec(ngrdi, ("red", "green"), (-1, 1), "vegetation from RGB"),
}


def compute_index(name: str, bands: Mapping[str, np.ndarray], *, source: str = "scene") -> np.ndarray:
    """Compute index ``name`` from a mapping of common band names to reflectance arrays.

    Parameters
    ----------
    name : str
        A key of :data:`INDICES` (case-insensitive).
    bands : mapping of str to ndarray
        E.g. an :class:`~ecopatch.raster.source.Observation`.
    source : str
        Name of the data, for the error message.

    Raises
    ------
    ConfigError
        Unknown index.
    MissingBandError
        A band the index needs is missing (the message names it and the bands present).

    Examples
    --------
    >>> b = {"nir": np.array([0.3]), "red": np.array([0.1])}
    >>> compute_index("NDVI", b).round(2).tolist()
    [0.5]
    """
    key = name.strip().lower()
    spec = INDICES.get(key)
    if spec is None:
        raise ConfigError(f"unknown index {name!r}; use one of {sorted(INDICES)}")
    have = list(bands.keys()) if hasattr(bands, "keys") else []
    missing = [b for b in spec.bands if b not in bands]
    if missing:
        raise MissingBandError(
            f"{source}: {key.upper()} needs band(s) {missing}, but only {have} are there; "
            f"use an index that these bands support, e.g. "
            f"{[k for k, s in INDICES.items() if all(b in bands for b in s.bands)][:4]}"
        )
    return spec.func(*(bands[b] for b in spec.bands))
