"""The words of ecopatch, written once: every zh/en label and the words its tables use.

Change types, zones, restoration statuses and alerts of a mine, lifecycle
states of a case, sky tiers, the red/yellow/green code, sensor names, map
furniture and the column headers of reports and web maps: each key with its
Chinese label (the terms field teams and bureaus use) and its English one.
Detection, the ledger, field packages, maps and reports all read them from
here; :func:`label` looks one up by kind.

Examples
--------
>>> label("change_type", "bare_soil", "zh"), label("zone", "core", "en")
('新增裸土', 'Core zone')
>>> label("status", "closed", "zh"), label("sky_tier", "confirmed", "en")
('已销号', 'Confirmed by imagery')
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ACTIVITY_TYPES",
    "ALERT_EN",
    "ALERT_ZH",
    "CASE_HEADERS",
    "CASE_STATUS_EN",
    "CASE_STATUS_ZH",
    "CHANGE_TYPES",
    "CHANGE_TYPE_EN",
    "CHANGE_TYPE_ZH",
    "CODE_EN",
    "CODE_ZH",
    "LABEL_KINDS",
    "MAP_WORDS",
    "MINE_HEADERS",
    "MINE_STATUS_EN",
    "MINE_STATUS_ZH",
    "PATCH_COLUMNS",
    "PATCH_HEADERS",
    "PRECISION_HEADERS",
    "RESTORATION_DIRECTIONS",
    "SENSOR_LABELS",
    "SKY_TIER_EN",
    "SKY_TIER_ZH",
    "SUMMARY_HEADERS",
    "WEBMAP_FIELDS",
    "ZONE_ALIASES",
    "ZONE_EN",
    "ZONE_STRICTNESS",
    "ZONE_ZH",
    "canonical_zone",
    "label",
    "map_word",
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
#: English labels for change types, for maps and reports.
CHANGE_TYPE_EN: dict[str, str] = {
    "vegetation_loss": "Vegetation loss",
    "bare_soil": "New bare soil",
    "construction": "New construction",
    "water": "New water",
    "vegetation_gain": "Vegetation gain",
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
ZONE_EN: dict[str, str] = {
    "core": "Core zone",
    "buffer": "Buffer zone",
    "experimental": "Experimental zone",
    "outside": "Around the reserve",
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


# ---------------------------------------------------------------------------
# Mines: restoration status and alerts
# ---------------------------------------------------------------------------

#: Status values of :func:`ecopatch.assess_restoration` (and of
#: :func:`ecopatch.trajectory.mine_status`, which adds ``stalled``), with their Chinese labels.
MINE_STATUS_ZH: dict[str, str] = {
    "restored": "已完成修复",
    "in_progress": "修复中",
    "not_started": "未启动",
    "insufficient_data": "数据不足",
    "degraded": "退化",
    "stalled": "停滞",
}
#: The same statuses in English.
MINE_STATUS_EN: dict[str, str] = {
    "restored": "Restored",
    "in_progress": "In progress",
    "not_started": "Not started",
    "insufficient_data": "Insufficient data",
    "degraded": "Degraded",
    "stalled": "Stalled",
}

#: Alerts a mine can carry besides its status, with their Chinese labels: vegetation lost since
#: the reference (``degradation``), since the previous observation (``rebound``, from the
#: history), or the plan's target year passed before the target was reached (``behind_plan``).
ALERT_ZH: dict[str, str] = {
    "degradation": "退化",
    "rebound": "反弹",
    "behind_plan": "逾期未完成",
}
#: The same alerts in English, for maps and reports.
ALERT_EN: dict[str, str] = {"degradation": "vegetation lost", "rebound": "rebound", "behind_plan": "behind plan"}

# ---------------------------------------------------------------------------
# Cases: lifecycle states, sky tier, red/yellow/green code
# ---------------------------------------------------------------------------

#: Lifecycle states of a ledger case (:class:`ecopatch.ledger.Status`), with their Chinese labels.
CASE_STATUS_ZH: dict[str, str] = {
    "detected": "已发现",
    "dispatched": "已派发",
    "confirmed": "已确认",
    "false_alarm": "误报",
    "rectifying": "整改中",
    "rectified": "已整改",
    "closed": "已销号",
    "reopened": "反弹",
}
#: The same states in English.
CASE_STATUS_EN: dict[str, str] = {
    "detected": "Detected",
    "dispatched": "Dispatched",
    "confirmed": "Confirmed",
    "false_alarm": "False alarm",
    "rectifying": "Rectifying",
    "rectified": "Rectified",
    "closed": "Closed",
    "reopened": "Reopened",
}

#: How often the sky has seen a case (影像分级, :class:`ecopatch.ledger.SkyTier`).
SKY_TIER_ZH: dict[str, str] = {"probable": "疑似", "confirmed": "影像确认"}
SKY_TIER_EN: dict[str, str] = {"probable": "Probable", "confirmed": "Confirmed by imagery"}

#: The red/yellow/green code of a case (红黄绿码, :class:`ecopatch.ledger.Colour`).
CODE_ZH: dict[str, str] = {"red": "红码", "yellow": "黄码", "green": "绿码"}
CODE_EN: dict[str, str] = {"red": "Red", "yellow": "Yellow", "green": "Green"}

# ---------------------------------------------------------------------------
# Sensors and map furniture
# ---------------------------------------------------------------------------

#: Short product names on maps: sensor profile name -> (zh, en).
SENSOR_LABELS: dict[str, tuple[str, str]] = {
    "sentinel2_l2a": ("哨兵二号 L2A", "Sentinel-2 L2A"),
    "sentinel2_l1c": ("哨兵二号 L1C", "Sentinel-2 L1C"),
    "landsat_c2l2": ("Landsat C2 L2", "Landsat C2 L2"),
    "gf1_wfv": ("高分一号 WFV", "GF-1 WFV"),
    "gf6_wfv": ("高分六号 WFV", "GF-6 WFV"),
    "gf2_pms": ("高分二号 PMS", "GF-2 PMS"),
    "drone_rgb": ("无人机正射影像", "drone orthomosaic"),
    "drone_ms": ("无人机多光谱", "drone multispectral"),
}

#: Words of map titles, axes, legends and panels: key -> (zh, en); ``{name}`` fields are
#: filled by :func:`map_word`.
MAP_WORDS: dict[str, tuple[str, str]] = {
    "before": ("前时相", "Before"),
    "after": ("后时相", "After"),
    "change_map": ("变化图斑前后对比图", "Change map"),
    "diff": ("{idx} 差值（后 − 前）", "{idx} difference (after − before)"),
    "nodata": ("云 / 无数据", "Cloud / no data"),
    "true": ("真彩色", "true colour"),
    "false": ("标准假彩色", "false colour (NIR-R-G)"),
    "asis": ("原始色彩", "as delivered"),
    "easting": ("东坐标 X（米）", "Easting X (m)"),
    "northing": ("北坐标 Y（米）", "Northing Y (m)"),
    "lon": ("经度（°）", "Longitude (°)"),
    "lat": ("纬度（°）", "Latitude (°)"),
    "crs": ("坐标系", "CRS"),
    "unit": ("单位", "units"),
    "metre": ("米", "m"),
    "degree": ("度", "degrees"),
    "north": ("北", "N"),
    "patch": ("图斑边界", "Patch outline"),
    "mine": ("矿山边界", "Mine boundary"),
    "undated": ("日期不详", "undated"),
    "no_imagery": ("此范围无影像", "no imagery here"),
    "fvc": ("植被覆盖度 FVC", "Vegetation cover FVC"),
    "card": ("一矿一卡", "Mine card"),
    "overview": ("矿山与保护地监管总览图", "Overview of mines, reserves and cases"),
    "mines": ("矿山（修复状态）", "Mines (restoration status)"),
    "reserves": ("自然保护地（功能分区）", "Nature reserves (zones)"),
    "cases": ("图斑 / 案件", "Patches / cases"),
    "case_colour": ("案件（红黄绿码）", "Cases (red / yellow / green)"),
    "mine_plain": ("矿山", "Mines"),
}


def map_word(key: str, lang: str, **kw: Any) -> str:
    """The map word ``key`` in ``lang`` ("zh" or "en"), formatted with ``kw``.

    Examples
    --------
    >>> map_word("diff", "en", idx="NDVI")
    'NDVI difference (after − before)'
    """
    zh, en = MAP_WORDS[key]
    return (zh if lang == "zh" else en).format(**kw)


# ---------------------------------------------------------------------------
# Labels by kind
# ---------------------------------------------------------------------------

#: Kinds of category :func:`label` knows.
LABEL_KINDS: tuple[str, ...] = ("change_type", "status", "colour", "sky_tier", "zone")


def label(kind: str, key: Any, lang: str) -> str:
    """Label of a category value in ``lang``: change type, status, colour code, sky tier or zone.

    ``status`` covers both a mine's restoration status and a case's lifecycle
    state.  An unknown key comes back as it is (a change type in English with
    its underscores as spaces); so does any key of an unknown ``kind``.

    Examples
    --------
    >>> label("status", "in_progress", "zh"), label("colour", "red", "en"), label("zone", "x", "en")
    ('修复中', 'Red', 'x')
    """
    k = "" if key is None else str(key)
    zh = lang == "zh"
    if kind == "change_type":
        return CHANGE_TYPE_ZH.get(k, k) if zh else CHANGE_TYPE_EN.get(k, k.replace("_", " "))
    if kind == "status":
        if k in MINE_STATUS_ZH:
            return MINE_STATUS_ZH[k] if zh else MINE_STATUS_EN[k]
        if k in CASE_STATUS_ZH:
            return CASE_STATUS_ZH[k] if zh else CASE_STATUS_EN[k]
        return k
    if kind == "colour":
        return (CODE_ZH if zh else CODE_EN).get(k, k)
    if kind == "sky_tier":
        return (SKY_TIER_ZH if zh else SKY_TIER_EN).get(k, k)
    if kind == "zone":
        return (ZONE_ZH if zh else ZONE_EN).get(k, k)
    return k


# ---------------------------------------------------------------------------
# Column headers of reports and web maps: column -> (zh, en)
# ---------------------------------------------------------------------------

#: Columns of the mine table (矿山) of a report, in order.
MINE_HEADERS: dict[str, tuple[str, str]] = {
    "patch_id": ("矿山编号", "Mine ID"),
    "name": ("矿山名称", "Name"),
    "direction_zh": ("修复方向", "Direction"),
    "area_m2": ("矿山面积(平方米)", "Area (m²)"),
    "area_mu": ("矿山面积(亩)", "Area (mu)"),
    "damaged_m2": ("受损面积(平方米)", "Damaged (m²)"),
    "damaged_mu": ("受损面积(亩)", "Damaged (mu)"),
    "restored_m2": ("已修复面积(平方米)", "Restored (m²)"),
    "restored_mu": ("已修复面积(亩)", "Restored (mu)"),
    "still_bare_m2": ("未修复面积(平方米)", "Still bare (m²)"),
    "degraded_m2": ("退化面积(平方米)", "Vegetation lost (m²)"),
    "rate_pct": ("修复率(%)", "Restoration rate (%)"),
    "fvc_before": ("植被覆盖度(前)", "FVC before"),
    "fvc_after": ("植被覆盖度(后)", "FVC after"),
    "valid_pct": ("有效观测比例(%)", "Observed (%)"),
    "status_label": ("修复状态", "Status"),
    "alerts_label": ("预警", "Alerts"),
    "date_before": ("前时相", "Date before"),
    "date_after": ("后时相", "Date after"),
}
#: Columns of the suspect-patch table (图斑) of a report, in order.
PATCH_HEADERS: dict[str, tuple[str, str]] = {
    "patch_id": ("图斑编号", "Patch ID"),
    "change_label": ("变化类型", "Change type"),
    "area_m2": ("面积(平方米)", "Area (m²)"),
    "area_mu": ("面积(亩)", "Area (mu)"),
    "confidence": ("置信度", "Confidence"),
    "reserve_name": ("保护地名称", "Reserve"),
    "zone_label": ("功能分区", "Zone"),
    "centroid_lon": ("经度", "Longitude"),
    "centroid_lat": ("纬度", "Latitude"),
    "ndvi_before": ("NDVI(前)", "NDVI before"),
    "ndvi_after": ("NDVI(后)", "NDVI after"),
    "date_before": ("前时相", "Date before"),
    "date_after": ("后时相", "Date after"),
}
#: Columns of the case list (案件) of a report, in order.
CASE_HEADERS: dict[str, tuple[str, str]] = {
    "case_id": ("图斑编号", "Case ID"),
    "status_label": ("状态", "Status"),
    "colour_label": ("红黄绿码", "Code"),
    "sky_tier_label": ("影像分级", "Seen from the sky"),
    "change_label": ("变化类型", "Change type"),
    "area_m2": ("面积(平方米)", "Area (m²)"),
    "area_mu": ("面积(亩)", "Area (mu)"),
    "reserve_name": ("保护地名称", "Reserve"),
    "zone_label": ("功能分区", "Zone"),
    "lon": ("经度", "Longitude"),
    "lat": ("纬度", "Latitude"),
    "found_on": ("发现日期", "Found on"),
    "confirmed_on": ("影像确认日期", "Confirmed by imagery on"),
    "deadline": ("整改期限", "Deadline"),
    "responsible_unit": ("责任单位", "Responsible unit"),
    "n_detections": ("检出次数", "Detections"),
}
#: Columns of the field-check precision table of a report.
PRECISION_HEADERS: dict[str, tuple[str, str]] = {
    "group": ("分组", "Group"),
    "confirmed": ("确认(处)", "Confirmed"),
    "false_alarm": ("误报(处)", "False alarms"),
    "checked": ("已核查(处)", "Checked"),
    "precision_pct": ("精度(%)", "Precision (%)"),
}
#: Columns of the summary table of a report.
SUMMARY_HEADERS: dict[str, tuple[str, str]] = {
    "item": ("项目", "Item"), "value": ("数值", "Value"), "unit": ("单位", "Unit"),
}
#: Tooltip labels of the web map's layers, by column; the first of two columns with one label wins.
WEBMAP_FIELDS: dict[str, tuple[str, str]] = {
    "case_id": ("图斑编号", "Case"),
    "patch_id": ("编号", "ID"),
    "矿山名称": ("矿山名称", "Name"),
    "保护地名称": ("保护地名称", "Reserve"),
    "功能分区": ("功能分区", "Zone"),
    "status_zh": ("状态", "Status"),
    "colour_zh": ("红黄绿码", "Code"),
    "sky_tier_zh": ("影像分级", "Seen from the sky"),
    "change_type_zh": ("变化类型", "Change type"),
    "change_type": ("变化类型", "Change type"),
    "area_mu": ("面积(亩)", "Area (mu)"),
    "area_m2": ("面积(平方米)", "Area (m²)"),
    "restoration_rate": ("修复率", "Restoration rate"),
    "reserve_name": ("保护地名称", "Reserve"),
    "zone_name": ("功能分区", "Zone"),
    "deadline": ("整改期限", "Deadline"),
    "date_after": ("后时相", "Date after"),
}
