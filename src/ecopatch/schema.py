"""The words ecopatch's tables use: column names, change types, zones, lifecycle states.

One place for the vocabulary shared by detection, the ledger, field packages
and reports, with the Chinese terms field teams and bureaus use.
"""

from __future__ import annotations

__all__ = [
    "ACTIVITY_TYPES",
    "CHANGE_TYPES",
    "CHANGE_TYPE_ZH",
    "PATCH_COLUMNS",
    "RESTORATION_DIRECTIONS",
    "ZONE_ALIASES",
    "ZONE_STRICTNESS",
    "ZONE_ZH",
    "canonical_zone",
]

#: Change types reported by :func:`ecopatch.detect_changes` (``change_type`` column).
CHANGE_TYPES: tuple[str, ...] = (
    "vegetation_loss",
    "bare_soil",
    "construction",
    "water",
    "vegetation_gain",
)

#: Chinese labels for change types, as used in field packages and reports.
CHANGE_TYPE_ZH: dict[str, str] = {
    "vegetation_loss": "植被减少",
    "bare_soil": "新增裸土",
    "construction": "新增建设",
    "water": "新增水体",
    "vegetation_gain": "植被增加",
}

#: Human-activity types of HJ 1156-2021 (key, Chinese), for the field teams' "real type".
ACTIVITY_TYPES: dict[str, str] = {
    "mining": "矿产资源开发",
    "industry": "工业开发",
    "energy": "能源开发",
    "tourism": "旅游开发",
    "transport": "交通开发",
    "farming": "养殖开发",
    "other": "其它活动",
}

#: Restoration directions (宜耕则耕、宜林则林、宜灌则灌、宜草则草、宜荒则荒).
RESTORATION_DIRECTIONS: dict[str, str] = {
    "cropland": "宜耕",
    "forest": "宜林",
    "shrub": "宜灌",
    "grass": "宜草",
    "natural": "宜荒",
}

#: Canonical functional zones, strictest first.  Old-style reserves have
#: core/buffer/experimental zones; reserves after the 2019 reform have a core
#: protection zone and a general control zone.
ZONE_STRICTNESS: tuple[str, ...] = (
    "core",          # 核心区 / 核心保护区
    "buffer",        # 缓冲区
    "experimental",  # 实验区 / 一般控制区
    "outside",       # the margin around a reserve
)

#: Ways users write zone names, mapped to the canonical key.
ZONE_ALIASES: dict[str, str] = {
    "核心区": "core",
    "核心保护区": "core",
    "core": "core",
    "core zone": "core",
    "缓冲区": "buffer",
    "buffer": "buffer",
    "buffer zone": "buffer",
    "实验区": "experimental",
    "试验区": "experimental",
    "一般控制区": "experimental",
    "experimental": "experimental",
    "experimental zone": "experimental",
    "general control": "experimental",
    "周边": "outside",
    "outside": "outside",
}

ZONE_ZH: dict[str, str] = {
    "core": "核心区",
    "buffer": "缓冲区",
    "experimental": "实验区",
    "outside": "保护地外围",
}


def canonical_zone(name: object) -> str | None:
    """Canonical zone key for a zone name as written in a user's layer, or None.

    Examples
    --------
    >>> canonical_zone("核心区"), canonical_zone(" Buffer Zone "), canonical_zone("办公区")
    ('core', 'buffer', None)
    """
    if name is None:
        return None
    key = str(name).strip()
    return ZONE_ALIASES.get(key) or ZONE_ALIASES.get(key.lower())


#: Columns of a suspect-patch (疑似图斑) table from :func:`ecopatch.detect_changes`,
#: in order, with their meaning.  Attributes of the reserve polygon a patch
#: lies in follow these.
PATCH_COLUMNS: dict[str, str] = {
    "patch_id": "deterministic ID from the after date and the patch's location",
    "change_type": "one of CHANGE_TYPES",
    "area_m2": "true ground area, m²",
    "area_mu": "true ground area, mu (亩)",
    "confidence": "0-1, mean probability that the patch's pixels changed beyond noise",
    "date_before": "acquisition date of the before scene (ISO 8601)",
    "date_after": "acquisition date of the after scene (ISO 8601)",
    "ndvi_before": "mean NDVI inside the patch, before",
    "ndvi_after": "mean NDVI inside the patch, after",
    "centroid_lon": "WGS84 longitude of the patch's representative point, degrees",
    "centroid_lat": "WGS84 latitude, degrees",
    "cgcs2000_lon": "CGCS2000 (EPSG:4490) longitude, degrees",
    "cgcs2000_lat": "CGCS2000 (EPSG:4490) latitude, degrees",
    "reserve_name": "name of the reserve the patch lies in (None outside)",
    "zone": "canonical zone key (core / buffer / experimental / outside); strictest touched",
    "zone_name": "zone name as written in the reserves layer",
}
