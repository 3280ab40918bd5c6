"""Quality bands -> clear pixels: product cloud masks decoded and grown, as pure functions over arrays."""

from __future__ import annotations

import numpy as np

from ecopatch.errors import ConfigError
from ecopatch.raster.sensors import hls_fmask_clear, landsat_qa_clear, scl_clear

__all__ = ["MASK_KINDS", "grow_clouds", "grow_clouds_at", "mask_clear"]

#: Mask kinds a quality band can be read as, in words.
MASK_KINDS = {
    "scl": "Sentinel-2 scene classification (SCL): cloud, shadow, cirrus, snow masked",
    "qa_pixel": "Landsat QA_PIXEL: fill, dilated cloud, cirrus, cloud, shadow, snow masked",
    "fmask": "HLS Fmask: cloud, adjacent, shadow, snow masked",
    "alpha": "alpha band",
    "cloud01": "cloud raster (> 0 = cloud)",
}


def mask_clear(raw: np.ndarray, kind: str) -> np.ndarray:
    """Clear pixels (True) of a quality band of ``kind`` (see :data:`MASK_KINDS`); NaN counts as 0."""
    raw = np.nan_to_num(np.asarray(raw), nan=0)
    if kind == "scl":
        return scl_clear(raw.astype(np.int64))
    if kind == "qa_pixel":
        return landsat_qa_clear(raw.astype(np.int64))
    if kind == "fmask":
        return hls_fmask_clear(raw.astype(np.int64))
    if kind == "alpha":
        return raw > 0
    if kind == "cloud01":
        return raw <= 0
    raise ConfigError(f"unknown mask kind {kind!r}; use one of {sorted(MASK_KINDS)}")


def grow_clouds(raw: np.ndarray, kind: str, k: int) -> np.ndarray:
    """Clear pixels of a quality band, with cloud/shadow/cirrus grown by ``k`` pixels (not no data)."""
    clear = mask_clear(raw, kind)
    if k <= 0:
        return clear
    from scipy.ndimage import binary_dilation

    nodata = np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=0) == 0
    cloudy = ~clear & ~nodata
    yy, xx = np.mgrid[-k:k + 1, -k:k + 1]
    disk = (yy * yy + xx * xx) <= k * k
    return clear & ~binary_dilation(cloudy, structure=disk)


def grow_clouds_at(raw: np.ndarray, kind: str, k: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``grow_clouds(raw, kind, k)[rows][:, cols]``, in one pass where the kernel can (C order)."""
    from ecopatch.compute.kernels import clear_kernel
    from ecopatch.raster.sensors import SCL_UNUSABLE

    fused = clear_kernel(raw, kind, k, rows, cols, SCL_UNUSABLE)
    if fused is not None:
        return fused
    return np.ascontiguousarray(grow_clouds(raw, kind, k)[rows][:, cols])
