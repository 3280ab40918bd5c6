"""Writing the synthetic products' files: temporary names beside the target, moved into place on success.

Nothing half-written is left: :func:`atomic` and :func:`rasters_in_place` move their
temporary files into place only when the block succeeds, and remove them on any error.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic", "band_profile", "rasters_in_place", "tmp_name"]


def tmp_name(path: Path) -> Path:
    """A hidden temporary name beside ``path`` that keeps its extension (GDAL drivers check it)."""
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


@contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        for p in (tmp, Path(str(tmp) + ".aux.xml")):
            if p.exists():
                p.unlink()
        raise


@contextmanager
def rasters_in_place(paths: Iterable[Path]) -> Iterator[tuple[dict[Path, Path], dict[Any, Any]]]:
    """Temporary names beside ``paths`` and a dict for the datasets opened on them.

    When the block succeeds the datasets are closed and every file is moved into place; on any
    error they are closed and the temporary files removed, so no half-written raster is left.
    """
    tmps = {p: tmp_name(p) for p in paths}
    dsts: dict[Any, Any] = {}
    try:
        yield tmps, dsts
        for dst in dsts.values():
            dst.close()
        for p, tmp in tmps.items():
            os.replace(tmp, p)
    except BaseException:
        for dst in dsts.values():
            if not dst.closed:
                dst.close()
        for tmp in tmps.values():
            if tmp.exists():
                tmp.unlink()
        raise


def band_profile(grid: Any, dtype: str) -> dict[str, Any]:
    """Profile of a single-band tiled, deflate-compressed GeoTIFF on ``grid`` (nodata 0)."""
    block = 256 if min(grid.shape) >= 256 else 16 * max(1, min(grid.shape) // 16)
    return {
        "driver": "GTiff", "width": grid.width, "height": grid.height, "count": 1, "dtype": dtype,
        "crs": grid.crs.to_wkt(), "transform": grid.transform, "nodata": 0, "tiled": True,
        "blockxsize": block, "blockysize": block, "compress": "deflate", "predictor": 2,
    }
