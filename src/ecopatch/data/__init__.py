"""Data that ships with ecopatch or that it makes: synthetic scenes with known truth, the sample data.

Subpackages and modules (imported on first use)::

    synthetic   the seeded scene generator: vector truth, rasters rendered by window
    datasets    writing a scene as a user receives it (product folders, GeoPackages, truth);
                the committed ``sample_data/`` folder

Package data: ``gaofen_calibration.json`` (absolute calibration coefficients of the Gaofen
sensors, read by :mod:`ecopatch.raster.gaofen`).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__: list[str] = []

_SUBMODULES = ("datasets", "synthetic")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
