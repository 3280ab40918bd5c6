"""ecopatch: sky watch, ground check (天上看、地上查).

Per-patch monitoring of abandoned-mine restoration and nature-reserve
encroachment from satellite and drone imagery, with a ledger that carries each
suspect patch (疑似图斑) through field verification to closure (销号).

The main entry points::

    import ecopatch
    before = ecopatch.open_scene("S2A_MSIL2A_2021....SAFE")
    after = ecopatch.open_scene("drone_2024.tif")
    mines = ecopatch.read_patches("mines.gpkg", id_field="矿山编号")
    table = ecopatch.assess_restoration(before, after, mines)
    patches = ecopatch.detect_changes(before, after, reserves=ecopatch.read_patches("reserves.gpkg"))
    # both jobs from one read of the imagery (identical results)
    table, patches = ecopatch.assess_and_detect(before, after, mines, reserves)
    ledger = ecopatch.Ledger("ledger.gpkg"); ledger.add_detections(patches, run_id="2024-09")

Names are imported lazily, so ``import ecopatch`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from ecopatch.errors import EcopatchError

__version__ = "0.1.0"

_LAZY = {
    "open_scene": "ecopatch.raster.scene",
    "Scene": "ecopatch.raster.scene",
    "read_patches": "ecopatch.vector.layers",
    "write_table": "ecopatch.vector.layers",
    "Grid": "ecopatch.geo.grid",
    "CoverParams": "ecopatch.compute.cover",
    "ChangeParams": "ecopatch.compute.change",
    "StatusRules": "ecopatch.analyses.restoration",
    "assess_and_detect": "ecopatch.analyses.joint",
    "assess_restoration": "ecopatch.analyses.restoration",
    "detect_changes": "ecopatch.analyses.encroachment",
    "Ledger": "ecopatch.ledger",
    "patch_statistics": "ecopatch.analyses.patchstats",
}

__all__ = ["EcopatchError", "__version__", *sorted(_LAZY)]

logging.getLogger(__name__).addHandler(logging.NullHandler())


#: Submodules reachable as attributes after a plain ``import ecopatch`` (``ecopatch.outputs.maps.change_map``).
_SUBMODULES = {
    "analyses", "change", "cover", "data", "errors", "fieldcheck", "geodesy", "grid", "indices", "io",
    "ledger", "options", "outputs", "raster", "run", "sanitize", "tiling", "units", "vocabulary", "zonal",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        mod = importlib.import_module(f"ecopatch.{name}")
        globals()[name] = mod
        return mod
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ecopatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
