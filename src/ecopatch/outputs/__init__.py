"""What ecopatch hands up the chain: maps, reports, web maps, and the fonts their Chinese labels need.

Subpackages and modules (imported on first use)::

    maps      change maps, mine cards (一矿一卡), overview maps, case chips, mine trajectories
    report    the report folder: HTML with figures, Excel tables, CSV (Chinese or English)
    webmap    an interactive folium map of patches, mines and cases
    fonts     an installed CJK font for Chinese labels, used per figure (nothing global)
"""

from __future__ import annotations

import importlib
from typing import Any

__all__: list[str] = []

_SUBMODULES = ("fonts", "maps", "report", "webmap")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
