"""Shared fixtures: real data under ../shared/data (skipped when absent), small rasters in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (CI and local alike), so a run is
# reproducible and a failure is a real regression, not a rare draw met by chance.  Explore
# with fresh random examples: HYPOTHESIS_PROFILE=explore pytest ...
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: The golden sample (committed sample_data/ or generated once) and its analyses, for every module.
pytest_plugins = ["tests.mapdata"]

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ECOPATCH_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-imagery folder; tests using it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set ECOPATCH_SHARED_DATA)")
    return SHARED_DATA


def write_raster(path, array, *, crs="EPSG:32650", transform=None, nodata=None, descriptions=None,
                 dtype=None, tags=None, photometric=None, **profile):
    """Write a (bands, rows, cols) or (rows, cols) array as a GeoTIFF; returns the path."""
    import rasterio
    from affine import Affine

    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[None]
    transform = transform or Affine(10, 0, 780_000, 0, -10, 3_350_000)
    prof = dict(driver="GTiff", height=arr.shape[1], width=arr.shape[2], count=arr.shape[0],
                dtype=dtype or arr.dtype, crs=crs, transform=transform, nodata=nodata)
    if photometric:
        prof["photometric"] = photometric
    prof.update(profile)
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(arr.astype(prof["dtype"]))
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                ds.set_band_description(i, d)
        if tags:
            ds.update_tags(**tags)
    return Path(path)


@pytest.fixture
def raster_writer(tmp_path):
    """``raster_writer(name, array, **kw)`` writes into tmp_path."""

    def _w(name, array, **kw):
        return write_raster(tmp_path / name, array, **kw)

    return _w


@pytest.fixture
def shared_small_tiles(monkeypatch):
    """The tile cache shares the test files' small tiles (by default only tiles of 256² pixels and up)."""
    from ecopatch.raster import blocks

    monkeypatch.setattr(blocks, "MIN_SHARED_TILE_PX", 0)
