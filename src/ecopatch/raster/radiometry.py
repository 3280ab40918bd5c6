"""Digital numbers -> reflectance: scale, offset, no data, saturation and the valid range, over arrays."""

from __future__ import annotations

import math

import numpy as np

from ecopatch.raster.source import VALID_REFLECTANCE

__all__ = ["saturation", "to_reflectance"]


def saturation(dtype: str | np.dtype) -> float | None:
    """The fill / saturation value of an integer type (its maximum), None for floats."""
    dt = np.dtype(dtype)
    return float(np.iinfo(dt).max) if np.issubdtype(dt, np.integer) else None


def to_reflectance(dn: np.ndarray, scale: float, offset: float, nodata: float | None,
                   dtype: str | np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """``dn × scale + offset`` as float32 reflectance, and where it is valid.

    Invalid (NaN in the result, False in the mask): non-finite values,
    ``nodata``, the saturation value of an integer ``dtype`` and reflectance
    outside :data:`~ecopatch.raster.source.VALID_REFLECTANCE`.
    """
    from ecopatch.compute.kernels import reflectance_kernel

    maxval = saturation(dtype)
    fused = reflectance_kernel(dn, scale, offset, nodata, maxval, VALID_REFLECTANCE)
    if fused is not None:
        return fused[0], fused[1]
    ok = np.ones(dn.shape, dtype=bool)
    if np.issubdtype(dn.dtype, np.floating):
        ok &= np.isfinite(dn)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        ok &= dn != nodata
    if maxval is not None:
        ok &= dn != maxval  # saturation / fill
    refl = dn.astype(np.float32) * np.float32(scale) + np.float32(offset)
    lo, hi = VALID_REFLECTANCE
    with np.errstate(invalid="ignore"):
        ok &= (refl >= lo) & (refl <= hi)
    refl[~ok] = np.nan
    return refl, ok
