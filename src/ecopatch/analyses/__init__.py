"""The analyses: restoration of mines, encroachment in reserves, patch statistics, sky tier, histories.

Each reads imagery through the raster-source protocol
(:mod:`ecopatch.raster.source`) and never opens a file itself: any source
(files and products, xarray objects, arrays, rasterio datasets) goes in.

    :mod:`~ecopatch.analyses.restoration`  :func:`assess_restoration`, per mine
    :mod:`~ecopatch.analyses.encroachment`  :func:`detect_changes`, suspect patches in reserves
    :mod:`~ecopatch.analyses.joint`  both from one read of the imagery
    :mod:`~ecopatch.analyses.patchstats`  exact per-patch class areas of any raster
    :mod:`~ecopatch.analyses.sky_tier`  a later scene over the ledger's probable cases
    :mod:`~ecopatch.analyses.trajectory`  a mine's status over the dates
    :mod:`~ecopatch.analyses.layers`  cover classes, FVC and change codes as layers (numpy or xarray)
    :mod:`~ecopatch.analyses.validation`  scores against labelled truth

Submodules are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    try:
        return importlib.import_module(f"ecopatch.analyses.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise  # the submodule exists and lacks a dependency
        raise AttributeError(f"module 'ecopatch.analyses' has no attribute {name!r}") from None
