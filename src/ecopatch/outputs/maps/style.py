"""How ecopatch maps look: the ids of their artists, colours by category, labels of scenes.

Shared by every map of :mod:`ecopatch.outputs.maps` (and by :mod:`ecopatch.outputs.webmap`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ecopatch import vocabulary as V
from ecopatch.errors import ConfigError, InputDataError
from ecopatch.vocabulary import CASE_STATUS_ZH, MINE_STATUS_ZH, SENSOR_LABELS, canonical_zone

if TYPE_CHECKING:

    from ecopatch.raster.scene import Scene

log = logging.getLogger(__name__)


__all__ = [
    "CASE_STATUS_COLOURS",
    "CHANGE_COLOURS",
    "CODE_COLOURS",
    "COLOR_BY",
    "GID_IMAGE",
    "GID_NODATA",
    "GID_NORTH",
    "GID_OUTLINES",
    "GID_SCALEBAR",
    "NODATA_EDGE",
    "NODATA_FACE",
    "NODATA_HATCH",
    "STATUS_COLOURS",
    "ZONE_COLOURS",
    "category_colour",
    "category_order",
    "date_label",
    "first_column",
    "resolve_color_by",
    "sensor_label",
    "zone_key",
]


#: gid of the artists ecopatch adds, so tests and users can find them.
GID_OUTLINES = "ecopatch-outlines"


GID_SCALEBAR = "ecopatch-scalebar"


GID_NORTH = "ecopatch-north-arrow"


GID_NODATA = "ecopatch-nodata"


GID_IMAGE = "ecopatch-image"


#: Colour of cloud / no-data pixels (drawn hatched under transparent pixels).
NODATA_FACE = "#e6e6e6"


NODATA_EDGE = "#9a9a9a"


NODATA_HATCH = "////"


#: Outline colours by change type (bright, to stand out on imagery).
CHANGE_COLOURS: dict[str, str] = {
    "vegetation_loss": "#ff8c00",
    "bare_soil": "#ffe135",
    "construction": "#ff2a6d",
    "water": "#00c8ff",
    "vegetation_gain": "#7dff3a",
}


#: Colours of the restoration status of a mine.
STATUS_COLOURS: dict[str, str] = {
    "restored": "#1a9850",
    "in_progress": "#fdae61",
    "not_started": "#d73027",
    "insufficient_data": "#9e9e9e",
    "degraded": "#7b1fa2",
    "stalled": "#8c6d1f",
}


#: Colours of ledger lifecycle states.
CASE_STATUS_COLOURS: dict[str, str] = {
    "detected": "#ff7f00",
    "dispatched": "#ffd92f",
    "confirmed": "#e41a1c",
    "false_alarm": "#a6a6a6",
    "rectifying": "#984ea3",
    "rectified": "#377eb8",
    "closed": "#4daf4a",
    "reopened": "#a65628",
}


#: The red/yellow/green code (红黄绿码) of a case.
CODE_COLOURS: dict[str, str] = {"red": "#e41a1c", "yellow": "#ffd400", "green": "#2ca02c"}


#: Fill colours of reserve functional zones.
ZONE_COLOURS: dict[str, str] = {
    "core": "#01665e",
    "buffer": "#5ab4ac",
    "experimental": "#c7eae5",
    "outside": "#f0f0f0",
}


_OTHER = "#bdbdbd"


COLOR_BY = ("auto", "change_type", "status", "colour")


def category_colour(kind: str, key: Any) -> str:
    """Colour of a category value (see :data:`CHANGE_COLOURS` and friends)."""
    k = "" if key is None else str(key)
    table: Mapping[str, str] = {
        "change_type": CHANGE_COLOURS,
        "status": {**STATUS_COLOURS, **CASE_STATUS_COLOURS},
        "colour": CODE_COLOURS,
        "zone": ZONE_COLOURS,
    }.get(kind, {})
    return table.get(k, _OTHER)


def resolve_color_by(color_by: str, frame: Any) -> str:
    """``color_by`` checked against the table's columns; "auto" picks colour > change_type > status."""
    if color_by not in COLOR_BY:
        raise ConfigError(f"color_by={color_by!r}; use one of {list(COLOR_BY)}")
    cols = set(getattr(frame, "columns", ()))
    if color_by == "auto":
        for c in ("colour", "change_type", "status"):
            if c in cols:
                return c
        return "none"
    if color_by not in cols:
        raise InputDataError(
            f"color_by={color_by!r}, but the table has no {color_by!r} column; its columns are "
            f"{sorted(map(str, cols))[:20]}"
        )
    return color_by


def sensor_label(scene: Scene, lang: str) -> str:
    """Short product name of a scene (e.g. "Sentinel-2 L2A")."""
    pair = SENSOR_LABELS.get(scene.sensor.name)
    if pair:
        return pair[0 if lang == "zh" else 1]
    zh = scene.sensor.label_zh  # the profile's own short name (Landsat, HLS, Gaofen L1A, NAIP ...)
    if zh and (lang == "zh" or zh.isascii()):
        return zh
    return scene.sensor.name


def date_label(scene: Scene, lang: str) -> str:
    """ISO date of a scene, or "undated"."""
    return scene.date.isoformat() if scene.date else V.map_word("undated", lang)


def category_order(kind: str) -> list[str]:
    """Display order of a kind's categories."""
    from ecopatch.vocabulary import CHANGE_TYPES

    return {
        "change_type": list(CHANGE_TYPES),
        "status": list(MINE_STATUS_ZH) + list(CASE_STATUS_ZH),
        "colour": ["red", "yellow", "green"],
        "zone": ["core", "buffer", "experimental", "outside"],
    }.get(kind, [])


def zone_key(row: Mapping[str, Any]) -> str | None:
    """Canonical zone of a reserve row (``zone`` column, or 功能分区/zone_name via the aliases)."""
    for col in ("zone", "功能分区", "zone_name", "功能区", "分区"):
        v = row.get(col)
        if v is not None and v == v:
            k = canonical_zone(v) if col != "zone" else (canonical_zone(v) or str(v))
            if k:
                return k
    return None


def first_column(frame: Any, names: Sequence[str]) -> str | None:
    """The first of ``names`` that is a column of ``frame``."""
    cols = set(getattr(frame, "columns", ()))
    for n in names:
        if n in cols:
            return n
    return None
