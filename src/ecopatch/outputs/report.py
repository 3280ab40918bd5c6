"""Reports handed up the chain (月复盘): a self-contained HTML report and an Excel workbook.

:func:`write_report` puts the summary figures, the overview map, the change
map, a card per mine (一矿一卡), the mine table, the case list and the
detection precision from field checks into ``report.html`` (figures
embedded as PNG, no external files) and ``report.xlsx`` (sheets 汇总, 矿山,
图斑 / 案件, 核查精度, with Chinese headers).  The same tables are available
for notebooks (:func:`mine_table`, :func:`patch_table`, :func:`case_table`,
:func:`summary_table`), with Chinese or English headers.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import html
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ecopatch.errors import EcopatchError, InputDataError, OutputError, OutputExistsError, describe_os_error
from ecopatch.geo.units import m2_to_mu
from ecopatch.outputs.fonts import check_lang
from ecopatch.vector.sanitize import repair_text, unique_filenames
from ecopatch.vocabulary import (
    ALERT_EN,
    ALERT_ZH,
    CASE_HEADERS,
    CHANGE_TYPE_ZH,
    CODE_EN,
    CODE_ZH,
    MINE_HEADERS,
    MINE_STATUS_EN,
    MINE_STATUS_ZH,
    PATCH_HEADERS,
    PRECISION_HEADERS,
    RESTORATION_DIRECTIONS,
    SUMMARY_HEADERS,
    ZONE_ZH,
    label,
)

if TYPE_CHECKING:
    import geopandas as gpd
    from matplotlib.figure import Figure

    from ecopatch.ledger import Ledger
    from ecopatch.raster.scene import Scene

__all__ = [
    "case_table",
    "mine_table",
    "patch_table",
    "precision_table",
    "summary_table",
    "write_report",
]

log = logging.getLogger(__name__)

_CODE_FILLS = {"red": "FFC7CE", "yellow": "FFEB9C", "green": "C6EFCE"}
_STATUS_FILLS = {"restored": "C6EFCE", "in_progress": "FFEB9C", "not_started": "FFC7CE", "insufficient_data": "E0E0E0",
                 "degraded": "FF9C9C", "stalled": "FFD8A8"}
_FILLS = {  # cell fills (hex RGB) by label (zh and en), for Excel and HTML
    **{words[k]: fill for k, fill in _CODE_FILLS.items() for words in (CODE_ZH, CODE_EN)},
    **{words[k]: fill for k, fill in _STATUS_FILLS.items() for words in (MINE_STATUS_ZH, MINE_STATUS_EN)},
}


def _headers(table: Mapping[str, tuple[str, str]], lang: str) -> dict[str, str]:
    i = 0 if lang == "zh" else 1
    return {k: v[i] for k, v in table.items()}


def _col(df: pd.DataFrame, *names: str) -> pd.Series:
    for n in names:
        if n in df.columns:
            return df[n]
    return pd.Series([None] * len(df), index=df.index, dtype=object)


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce")


def _date_text(s: pd.Series) -> pd.Series:
    return s.map(lambda v: v.isoformat()[:10] if hasattr(v, "isoformat") else (None if v is None or v != v else v))


def _flat(df: pd.DataFrame) -> pd.DataFrame:
    geo = getattr(df, "geometry", None)
    if geo is not None and getattr(geo, "name", None) in df.columns:
        df = df.drop(columns=geo.name)
    return pd.DataFrame(df).reset_index(drop=True)


def mine_table(assessment: pd.DataFrame, *, lang: str = "zh") -> pd.DataFrame:
    """The mine table (矿山): one row per mine, areas in m² and mu, rate and FVC, status.

    Parameters
    ----------
    assessment : pandas.DataFrame
        From :func:`ecopatch.assess_restoration`.
    lang : {"zh", "en"}
        Header and label language.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`MINE_HEADERS` (headers in ``lang``); areas rounded to
        0.1 m² and 0.01 mu, percentages to 0.1.
    """
    lang = check_lang(lang)
    a = _flat(assessment)
    out = pd.DataFrame(index=a.index)
    out["patch_id"] = _col(a, "patch_id", "矿山编号").astype(str)
    out["name"] = _col(a, "矿山名称", "name", "mine_name")
    direction = _col(a, "direction")
    if lang == "zh":
        given = _col(a, "修复方向")
        out["direction_zh"] = [g if isinstance(g, str) and g else RESTORATION_DIRECTIONS.get(str(d), d)
                               for g, d in zip(given, direction)]
    else:
        out["direction_zh"] = direction
    for k in ("area", "damaged", "restored", "still_bare", "degraded"):
        m2 = _num(_col(a, f"{k}_m2"))
        out[f"{k}_m2"] = m2.round(1)
        if f"{k}_mu" in MINE_HEADERS:
            out[f"{k}_mu"] = pd.Series(m2_to_mu(m2.to_numpy(dtype=float)), index=a.index).round(2)
    out["rate_pct"] = (_num(_col(a, "restoration_rate")) * 100).round(1)
    out["fvc_before"] = _num(_col(a, "fvc_before")).round(3)
    out["fvc_after"] = _num(_col(a, "fvc_after")).round(3)
    out["valid_pct"] = (_num(_col(a, "valid_fraction")) * 100).round(1)
    st = _col(a, "status")
    out["status_label"] = [(MINE_STATUS_ZH if lang == "zh" else MINE_STATUS_EN).get(str(s), s) for s in st]
    out["alerts_label"] = [_alerts_text(v, lang) for v in _col(a, "alerts")]
    out["date_before"] = _date_text(_col(a, "date_before"))
    out["date_after"] = _date_text(_col(a, "date_after"))
    return out[list(MINE_HEADERS)].rename(columns=_headers(MINE_HEADERS, lang))


def _history_of(history: pd.DataFrame | None, pid: str) -> pd.DataFrame | None:
    """The history rows of one mine, or None when it has none."""
    if history is None or not len(history):
        return None
    h = history[history["patch_id"].astype(str) == str(pid)]
    return h if len(h) else None


def _alerts_text(v: Any, lang: str) -> str:
    keys = [k for k in str(v).split(",") if k] if isinstance(v, str) else []
    words = ALERT_ZH if lang == "zh" else ALERT_EN
    return ("、" if lang == "zh" else ", ").join(words.get(k, k) for k in keys)


def _change_label(v: Any, lang: str) -> Any:
    return label("change_type", v, lang) if v is not None and v == v else v


def _zone_label(zone: Any, zone_name: Any, lang: str) -> Any:
    if lang == "zh" and isinstance(zone_name, str) and zone_name:
        return zone_name
    if zone is None or zone != zone:
        return None
    return ZONE_ZH.get(str(zone), zone) if lang == "zh" else label("zone", zone, lang)


def patch_table(patches: pd.DataFrame, *, lang: str = "zh") -> pd.DataFrame:
    """The suspect-patch table (疑似图斑) from :func:`ecopatch.detect_changes`, one row per patch.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PATCH_HEADERS`; areas in m² (0.1) and mu (0.01),
        coordinates WGS84 degrees (6 decimals, about 0.1 m).
    """
    lang = check_lang(lang)
    p = _flat(patches)
    out = pd.DataFrame(index=p.index)
    out["patch_id"] = _col(p, "patch_id").astype(str)
    out["change_label"] = [_change_label(v, lang) for v in _col(p, "change_type")]
    out["area_m2"] = _num(_col(p, "area_m2")).round(1)
    out["area_mu"] = _num(_col(p, "area_mu")).round(2)
    out["confidence"] = _num(_col(p, "confidence")).round(3)
    out["reserve_name"] = _col(p, "reserve_name")
    out["zone_label"] = [_zone_label(z, n, lang) for z, n in zip(_col(p, "zone"), _col(p, "zone_name"))]
    out["centroid_lon"] = _num(_col(p, "centroid_lon")).round(6)
    out["centroid_lat"] = _num(_col(p, "centroid_lat")).round(6)
    out["ndvi_before"] = _num(_col(p, "ndvi_before")).round(3)
    out["ndvi_after"] = _num(_col(p, "ndvi_after")).round(3)
    out["date_before"] = _date_text(_col(p, "date_before"))
    out["date_after"] = _date_text(_col(p, "date_after"))
    return out[list(PATCH_HEADERS)].rename(columns=_headers(PATCH_HEADERS, lang))


def case_table(cases: pd.DataFrame, *, lang: str = "zh") -> pd.DataFrame:
    """The case list (案件清单) from :meth:`ecopatch.Ledger.cases`, one row per case.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CASE_HEADERS`; coordinates CGCS2000 degrees.
    """
    lang = check_lang(lang)
    c = _flat(cases)
    out = pd.DataFrame(index=c.index)
    out["case_id"] = _col(c, "case_id").astype(str)
    out["status_label"] = [label("status", s, lang) for s in _col(c, "status")]
    out["colour_label"] = [label("colour", s, lang) for s in _col(c, "colour")]
    out["sky_tier_label"] = [label("sky_tier", s, lang) if isinstance(s, str) else None
                             for s in _col(c, "sky_tier")]
    out["change_label"] = [_change_label(v, lang) for v in _col(c, "change_type")]
    out["area_m2"] = _num(_col(c, "area_m2")).round(1)
    out["area_mu"] = _num(_col(c, "area_mu")).round(2)
    out["reserve_name"] = _col(c, "reserve_name")
    out["zone_label"] = [_zone_label(z, n, lang) for z, n in zip(_col(c, "zone"), _col(c, "zone_name"))]
    out["lon"] = _num(_col(c, "lon")).round(6)
    out["lat"] = _num(_col(c, "lat")).round(6)
    out["found_on"] = _date_text(_col(c, "found_on"))
    out["confirmed_on"] = _date_text(_col(c, "confirmed_on"))
    out["deadline"] = _date_text(_col(c, "deadline"))
    out["responsible_unit"] = _col(c, "responsible_unit")
    out["n_detections"] = _num(_col(c, "n_detections")).astype("Int64")
    return out[list(CASE_HEADERS)].rename(columns=_headers(CASE_HEADERS, lang))


def precision_table(ledger: Ledger, *, lang: str = "zh") -> pd.DataFrame:
    """Detection precision from the field verdicts: overall, then by change type.

    Returns
    -------
    pandas.DataFrame
        Columns 分组 (group), 确认, 误报, 已核查, 精度(%) (NaN where nothing
        was checked).
    """
    lang = check_lang(lang)
    rows = []
    overall = ledger.precision()
    for _, r in overall.iterrows():
        rows.append({"group": "合计" if lang == "zh" else "All", **_prec(r)})
    by = ledger.precision(by="change_type")
    for _, r in by.iterrows():
        rows.append({"group": _change_label(r["change_type"], lang), **_prec(r)})
    df = pd.DataFrame(rows, columns=list(PRECISION_HEADERS))
    return df.rename(columns=_headers(PRECISION_HEADERS, lang))


def _prec(r: pd.Series) -> dict[str, Any]:
    p = float(r["precision"]) if r["precision"] == r["precision"] else math.nan
    return {"confirmed": int(r["confirmed"]), "false_alarm": int(r["false_alarm"]), "checked": int(r["checked"]),
            "precision_pct": round(p * 100, 1) if math.isfinite(p) else math.nan}


def summary_table(
    assessment: pd.DataFrame | None = None,
    patches: pd.DataFrame | None = None,
    cases: pd.DataFrame | None = None,
    precision: pd.DataFrame | None = None,
    *,
    lang: str = "zh",
) -> pd.DataFrame:
    """Summary figures (汇总): mines by status and areas, patches by type, cases by code, precision.

    Parameters
    ----------
    assessment, patches, cases : pandas.DataFrame, optional
        From :func:`ecopatch.assess_restoration`, :func:`ecopatch.detect_changes`
        and :meth:`ecopatch.Ledger.cases`.
    precision : pandas.DataFrame, optional
        From :meth:`ecopatch.Ledger.precision` (overall).
    lang : {"zh", "en"}

    Returns
    -------
    pandas.DataFrame
        Columns 项目 (item), 数值 (value), 单位 (unit); areas in m² and mu.
    """
    lang = check_lang(lang)
    zh = lang == "zh"
    rows: list[tuple[str, Any, str]] = []

    def add(zh_item: str, en_item: str, value: Any, zh_unit: str = "", en_unit: str = "") -> None:
        rows.append((zh_item if zh else en_item, value, zh_unit if zh else en_unit))

    if assessment is not None:
        a = assessment
        add("矿山总数", "Mines", len(a), "座", "")
        st = _col(a, "status").value_counts()
        for k in ("restored", "in_progress", "not_started", "insufficient_data", "degraded", "stalled"):
            if k in ("degraded", "stalled") and not st.get(k, 0):
                continue
            add(f"  其中{MINE_STATUS_ZH[k]}", f"  {MINE_STATUS_EN[k]}", int(st.get(k, 0)), "座", "")
        dam = float(_num(_col(a, "damaged_m2")).sum())
        res = float(_num(_col(a, "restored_m2")).sum())
        add("受损面积（前时相）", "Damaged area (before)", round(dam, 1), "平方米", "m²")
        add("受损面积（前时相）", "Damaged area (before)", round(float(m2_to_mu(dam)), 2), "亩", "mu")
        add("已修复面积", "Restored area", round(res, 1), "平方米", "m²")
        add("已修复面积", "Restored area", round(float(m2_to_mu(res)), 2), "亩", "mu")
        add("总体修复率", "Overall restoration rate", round(res / dam * 100, 1) if dam > 0 else math.nan, "%", "%")
    if patches is not None:
        p = patches
        area = float(_num(_col(p, "area_m2")).sum())
        add("疑似图斑数", "Suspect patches", len(p), "个", "")
        add("疑似图斑面积", "Suspect patch area", round(area, 1), "平方米", "m²")
        add("疑似图斑面积", "Suspect patch area", round(float(m2_to_mu(area)), 2), "亩", "mu")
        for kind, n in _col(p, "change_type").value_counts().items():
            add(f"  其中{CHANGE_TYPE_ZH.get(str(kind), kind)}", f"  {label('change_type', kind, 'en')}", int(n),
                "个", "")
    if cases is not None:
        c = cases
        add("台账案件数", "Ledger cases", len(c), "个", "")
        cc = _col(c, "colour").value_counts()
        for k in ("red", "yellow", "green"):
            add(f"  其中{label('colour', k, 'zh')}", f"  {label('colour', k, 'en')}",
                int(cc.get(k, 0)), "个", "")
        if "sky_tier" in c:  # seen once (疑似) or again in a later clear scene (影像确认)
            tc = _col(c, "sky_tier").value_counts()
            for k in ("probable", "confirmed"):
                add(f"  其中{label('sky_tier', k, 'zh')}", f"  {label('sky_tier', k, 'en')}",
                    int(tc.get(k, 0)), "个", "")
        sc = _col(c, "status").value_counts()
        for state, n in sc.items():
            add(f"  状态：{label('status', state, 'zh')}", f"  status: {label('status', state, 'en')}",
                int(n), "个", "")
    if precision is not None and len(precision):
        r = precision.iloc[0]
        add("已核查图斑", "Patches checked in the field", int(r["checked"]), "个", "")
        p_ = float(r["precision"]) if r["precision"] == r["precision"] else math.nan
        add("检测精度（确认 / 已核查）", "Detection precision (confirmed / checked)",
            round(p_ * 100, 1) if math.isfinite(p_) else math.nan, "%", "%")
    df = pd.DataFrame(rows, columns=list(SUMMARY_HEADERS))
    return df.rename(columns=_headers(SUMMARY_HEADERS, lang))


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------
def _write_xlsx(path: Path, sheets: Sequence[tuple[str, pd.DataFrame, str | None]]) -> None:
    """The workbook, every cell through :func:`ecopatch.vector.tables.cell_value` (no formula, no control character)."""
    from ecopatch.vector.tables import write_workbook

    write_workbook(path, sheets, fills=_FILLS, wrap_header=True)


def _fmt(v: Any) -> str:
    if v is None or v is pd.NA:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return "—"
        if v.is_integer() and abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:,.6f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.1f}"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}" if abs(int(v)) >= 10000 else str(int(v))
    return repair_text(str(v))


def _html_table(df: pd.DataFrame, *, max_rows: int = 2000) -> str:
    """An HTML table of ``df`` (escaped, status and colour-code cells tinted)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for rec in df.head(max_rows).itertuples(index=False):
        cells = []
        for v in rec:
            txt = html.escape(_fmt(v))
            fill = _FILLS.get(str(v))
            style = f' style="background:#{fill}"' if fill else ""
            cls = ' class="num"' if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else ""
            cells.append(f"<td{cls}{style}>{txt}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (f'<p class="note">… {len(df) - max_rows} more rows in the workbook</p>'
            if len(df) > max_rows else "")
    return f'<div class="tbl"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>{more}'


_CSS = """
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei","PingFang SC","WenQuanYi Micro Hei",
"Helvetica Neue",Arial,sans-serif;margin:0 auto;max-width:1280px;padding:1.5em 2em;color:#222;line-height:1.5}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;border-bottom:2px solid #2c6e8f;padding-bottom:.2em;
margin-top:2em}h3{font-size:1.05em;margin:1.2em 0 .4em}.meta{color:#555;font-size:.9em}
nav a{margin-right:1.2em;color:#2c6e8f;text-decoration:none}
.kpis{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}.kpi{background:#f3f7fa;border-left:4px solid #2c6e8f;
padding:.5em .9em;min-width:9em}.kpi b{display:block;font-size:1.5em}
.kpi small{font-size:.6em;color:#444}.kpi span{color:#555;font-size:.85em}
.tbl{overflow-x:auto;max-height:36em;overflow-y:auto;border:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;width:100%}th{position:sticky;top:0;background:#ddebf7;
font-weight:600}th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background-color:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{color:#555;font-size:.85em}
.note{color:#777;font-size:.85em}footer{margin-top:3em;color:#888;font-size:.8em}
"""

_SECTIONS = {
    "summary": ("汇总", "Summary"),
    "overview": ("总览图", "Overview map"),
    "changes": ("变化图斑", "Suspect patches"),
    "mines": ("矿山修复（一矿一卡）", "Mine restoration (one card per mine)"),
    "cases": ("案件清单", "Case list"),
    "precision": ("核查精度", "Field-check precision"),
}
_NUMERALS = "一二三四五六七八九十"


def _img(png: bytes, alt: str, caption: str = "") -> str:
    b64 = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">{cap}</figure>'


def _kpis(summary: pd.DataFrame) -> str:
    """Headline figures: top-level rows, an area in m² and mu on one tile."""
    keys = summary.columns
    tiles: dict[str, list[str]] = {}
    for _, r in summary.iterrows():
        item = str(r[keys[0]])
        if item.startswith("  "):
            continue
        unit = str(r[keys[2]])
        tiles.setdefault(item, []).append(f"{_fmt(r[keys[1]])}{' ' if unit not in ('', '%') else ''}{unit}")
    out = []
    for item, vals in tiles.items():
        main = html.escape(vals[0])
        rest = "".join(f"<small> ({html.escape(v)})</small>" for v in vals[1:])
        out.append(f'<div class="kpi"><b>{main}{rest}</b><span>{html.escape(item)}</span></div>')
    return '<div class="kpis">' + "".join(out) + "</div>"


def write_report(
    out_dir: str | os.PathLike[str],
    *,
    assessment: gpd.GeoDataFrame | None = None,
    patches: gpd.GeoDataFrame | None = None,
    ledger: Ledger | None = None,
    before: Scene | None = None,
    after: Scene | None = None,
    reserves: gpd.GeoDataFrame | None = None,
    title: str | None = None,
    lang: str = "zh",
    overwrite: bool = False,
    today: _dt.date | None = None,
    max_mine_cards: int = 30,
    dpi: int = 110,
    max_pixels: int = 250_000,
    mine_before: Mapping[str, Scene] | None = None,
    history: pd.DataFrame | None = None,
    workers: int | None = None,
    extra_change_map: tuple[str | os.PathLike[str], float] | None = None,
) -> dict[str, Path]:
    """Write the monthly report: ``report.html`` (self-contained) and ``report.xlsx``.

    Parameters
    ----------
    out_dir : path
        Folder for the report (created if missing).  Receives
        ``report.html``, ``report.xlsx`` and ``figures/*.png`` (the same
        figures as separate files, for pasting into documents).
    assessment : geopandas.GeoDataFrame or pandas.DataFrame, optional
        Mine restoration from :func:`ecopatch.assess_restoration`; a plain
        table (read back from the ``.xlsx``/``.csv`` ``ecopatch assess``
        wrote) goes into the tables but not onto the maps or mine cards.
    patches : geopandas.GeoDataFrame or pandas.DataFrame, optional
        Suspect patches from :func:`ecopatch.detect_changes` (a plain table:
        tables only).
    ledger : Ledger, optional
        The case ledger: case list (案件), red/yellow/green codes and the
        precision of field checks (核查精度).
    before, after : Scene, optional
        Imagery of the two dates; with them the report has a change map and
        a card per mine.
    mine_before : mapping of str to Scene, optional
        Per mine ID, its reference scene when it is not ``before`` (mines
        measured against their own reference, as ``ecopatch run`` does).
    history : DataFrame, optional
        :meth:`ecopatch.Ledger.mine_history`: each mine card then shows the
        mine's trajectory.
    reserves : geopandas.GeoDataFrame, optional
        Reserve zones for the overview map.
    title : str, optional
        Report title; default "生态修复与保护地监管月报" / "Monitoring report".
    lang : {"zh", "en"}
        Language of the HTML report and figures.  The workbook always has
        Chinese headers.
    overwrite : bool
        Replace existing report files (default False).
    today : datetime.date, optional
        Report date and reference date of the red/yellow/green codes;
        default the local date.
    max_mine_cards : int
        At most this many mine cards (mines not restored first).
    dpi : int
        Resolution of the figures, dots per inch.
    max_pixels : int
        Display pixels per map panel.
    workers : int, optional
        Processes drawing the figures at once (default: the CPUs available,
        where the platform forks; 1 draws them in this process).
    extra_change_map : tuple of (path, float), optional
        ``(path, dpi)``: also write the report's change map as a PNG at this
        path and resolution (dots per inch), drawn with the report's figures
        (in parallel) instead of separately.  ``ecopatch run`` writes its
        ``maps/change_map.png`` so.  Replaces an existing file.  Needs a
        change map in the report (``before``, ``after`` and patches or cases
        to show).

    Returns
    -------
    dict of str to Path
        ``"html"``, ``"xlsx"``, and ``"figure:<name>"`` for each PNG.

    Raises
    ------
    InputDataError
        Nothing to report (no assessment, patches or ledger).
    OutputExistsError
        A report file exists and ``overwrite`` is False (nothing is written).
    OutputError
        The folder cannot be created or written.

    Notes
    -----
    Every file is written to a temporary name beside its target and renamed
    when complete (:func:`ecopatch.vector.layers.atomic_path`), so an
    interrupted run never leaves a half-written report in place of a good one.
    """
    from ecopatch import __version__
    from ecopatch.analyses.restoration import prepare_cover_params, shared_scene_estimates
    from ecopatch.outputs.maps import change_map, mine_card, overview_map
    from ecopatch.outputs.maps.render import png_bytes, render_pngs
    from ecopatch.raster import quicklook as _quicklook
    from ecopatch.vector.layers import atomic_path

    lang = check_lang(lang)
    if assessment is None and patches is None and ledger is None:
        raise InputDataError("write_report needs at least one of assessment, patches or ledger")
    today = today or _dt.date.today()
    zh = lang == "zh"
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "figures").mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create report folder {out}: {describe_os_error(exc)}") from exc

    cases = ledger.cases(today=today) if ledger is not None else None
    precision = ledger.precision() if ledger is not None else None
    # a table read back from .xlsx/.csv has no outlines: its figures go in the tables only
    mines_geo = assessment if _has_geometry(assessment) else None
    patches_geo = patches if _has_geometry(patches) else None
    for what, table, geo in (("assessment", assessment, mines_geo), ("patches", patches, patches_geo)):
        if table is not None and geo is None:
            log.info("report: the %s has no geometry (a table): it is in the tables but not on the maps", what)

    # plan the figures first, so existing files are found before anything is drawn or written
    fig_jobs: list[tuple[str, str, Callable[[], Figure | bytes]]] = []

    if any(x is not None and len(x) for x in (mines_geo, patches_geo, cases, reserves)):
        fig_jobs.append(("overview", _fig_name("overview", zh), lambda: overview_map(
            mines_geo, reserves, cases if cases is not None else patches_geo, lang=lang, background=after,
            max_pixels=max_pixels)))
    shown = patches_geo if patches_geo is not None and len(patches_geo) else cases

    def _change_fig() -> Figure:
        assert before is not None and after is not None and shown is not None  # planned only then
        return change_map(before, after, shown, lang=lang, max_pixels=max_pixels)

    def _card_fig(pid: str) -> Figure:
        assert before is not None and after is not None and assessment is not None  # planned only then
        return mine_card(pid, assessment, (mine_before or {}).get(pid, before), after, lang=lang,
                         max_pixels=max_pixels // 2, history=_history_of(history, pid))

    if before is not None and after is not None and shown is not None and len(shown):
        fig_jobs.append(("change_map", _fig_name("change_map", zh), _change_fig))
    extra: tuple[Path, float] | None = None
    if extra_change_map is not None:
        if not fig_jobs or fig_jobs[-1][0] != "change_map":
            raise InputDataError("extra_change_map: the report has no change map to draw (it needs before, "
                                 "after and patches or cases to show)")
        extra = (Path(extra_change_map[0]), float(extra_change_map[1]))
        extra_dpi = extra[1]
        # a figure of its own: one figure saved at two resolutions is laid out differently the second time
        fig_jobs.append(("", "", lambda: png_bytes(_change_fig(), dpi=extra_dpi)))
    cards: list[str] = []
    card_names: dict[str, str] = {}
    if before is not None and after is not None and mines_geo is not None and len(mines_geo):
        assert assessment is not None
        order = {"degraded": 0, "not_started": 1, "stalled": 2, "in_progress": 3, "insufficient_data": 4,
                 "restored": 5}
        a = assessment.assign(_o=[order.get(str(s), 4) for s in _col(assessment, "status")])
        cards = [str(v) for v in a.sort_values(["_o", "patch_id"])["patch_id"].head(max(0, max_mine_cards))]
        card_names = unique_filenames(cards)
        if len(assessment) > len(cards):
            log.info("report: %d of %d mine cards drawn (max_mine_cards=%d)", len(cards), len(assessment),
                     max_mine_cards)
        for pid in cards:
            fig_jobs.append((f"mine_{card_names[pid]}", f"{_fig_name('card', zh)} {pid}", partial(_card_fig, pid)))
    targets = {"html": out / "report.html", "xlsx": out / "report.xlsx"}
    for name, _, _ in fig_jobs:
        if name:
            targets[f"figure:{name}"] = out / "figures" / f"{name}.png"
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"report files exist: {existing[:5]}{' ...' if len(existing) > 5 else ''}; pass overwrite=True "
            "(CLI: --overwrite) to replace them, or choose another folder"
        )

    # tables
    t_sum = summary_table(assessment, patches, cases, precision, lang=lang)
    t_mine = mine_table(assessment, lang=lang) if assessment is not None else None
    t_patch = patch_table(patches, lang=lang) if patches is not None else None
    t_case = case_table(cases, lang=lang) if cases is not None else None
    t_prec = precision_table(ledger, lang=lang) if ledger is not None else None

    # figures
    pngs: dict[str, tuple[bytes, str]] = {}
    with contextlib.ExitStack() as stack:
        # the figures share one decimated read of each scene and, for the mine cards' FVC, one
        # estimate of the after scene's end-members, made here before they are drawn in parallel
        if _quicklook._ACTIVE.get() is None:
            stack.enter_context(_quicklook.shared_reads())
        stack.enter_context(shared_scene_estimates())
        if cards and after is not None:
            with contextlib.suppress(EcopatchError):  # a card that cannot estimate them says so itself
                prepare_cover_params(after, None)
        drawn = render_pngs([make for _, _, make in fig_jobs], dpi=dpi, workers=workers)
    for (name, alt, _), (png, *_) in zip(fig_jobs, drawn):
        if name:
            pngs[name] = (png, alt)
        elif extra is not None:
            with atomic_path(extra[0], overwrite=True) as tmp:
                tmp.write_bytes(png)
    log.info("report: %d figure(s) drawn", len(pngs))
    for name, (png, _) in pngs.items():
        with atomic_path(targets[f"figure:{name}"], overwrite=overwrite) as tmp:
            tmp.write_bytes(png)

    # workbook: always Chinese headers
    sheets: list[tuple[str, pd.DataFrame, str | None]] = [
        ("汇总", summary_table(assessment, patches, cases, precision, lang="zh"),
         f"报告日期 {today.isoformat()}；面积为椭球面真实面积，1 亩 = 10000/15 平方米"),
    ]
    if assessment is not None:
        sheets.append(("矿山", mine_table(assessment, lang="zh"), None))
    if patches is not None:
        sheets.append(("图斑", patch_table(patches, lang="zh"), "经纬度为 WGS84；疑似图斑须经实地核查确认"))
    if cases is not None:
        sheets.append(("案件", case_table(cases, lang="zh"), "经纬度为 CGCS2000 (EPSG:4490)"))
    sheets.append(("核查精度", precision_table(ledger, lang="zh") if ledger is not None else
                   pd.DataFrame(columns=[v[0] for v in PRECISION_HEADERS.values()]),
                   None if ledger is not None else "未提供台账，无核查结果"))
    with atomic_path(targets["xlsx"], overwrite=overwrite) as tmp:
        _write_xlsx(tmp, sheets)

    # HTML
    head = title or ("生态修复与保护地监管月报" if zh else "Mine restoration and nature-reserve monitoring report")
    dates = ""
    if before is not None or after is not None:
        def d(s: Scene | None) -> str:
            return s.date.isoformat() if s is not None and s.date else "—"

        dates = (f" · 前时相 {d(before)} · 后时相 {d(after)}" if zh else f" · before {d(before)} · after {d(after)}")
    parts = [f"<header><h1>{html.escape(head)}</h1><p class='meta'>"
             f"{'报告日期' if zh else 'Report date'} {today.isoformat()}{html.escape(dates)}</p></header>"]
    secs: list[tuple[str, str]] = []
    secs.append(("summary", _kpis(t_sum) + _html_table(t_sum)))
    if "overview" in pngs:
        secs.append(("overview", _img(pngs["overview"][0], pngs["overview"][1])))
    if t_patch is not None or "change_map" in pngs:
        body = _img(pngs["change_map"][0], pngs["change_map"][1]) if "change_map" in pngs else ""
        if t_patch is not None:
            body += _html_table(t_patch)
        body += ("<p class='note'>疑似图斑为遥感线索，须经实地核查确认。</p>" if zh else
                 "<p class='note'>Suspect patches are clues from imagery; each must be verified on site.</p>")
        secs.append(("changes", body))
    if t_mine is not None:
        assert assessment is not None  # the mine table comes from it
        body = _html_table(t_mine)
        for pid in cards:
            key = f"mine_{card_names[pid]}"
            body += f"<h3>{html.escape(pngs[key][1])}</h3>" + _img(pngs[key][0], pngs[key][1])
        if cards and len(cards) < len(assessment):
            body += (f"<p class='note'>仅绘制 {len(cards)} 张矿山卡片（共 {len(assessment)} 座）。</p>" if zh else
                     f"<p class='note'>{len(cards)} of {len(assessment)} mine cards drawn.</p>")
        secs.append(("mines", body))
    if t_case is not None:
        secs.append(("cases", _html_table(t_case)))
    if t_prec is not None:
        secs.append(("precision", _html_table(t_prec) + (
            "<p class='note'>精度 = 确认 / (确认 + 误报)，按最新核查结论计。</p>" if zh else
            "<p class='note'>Precision = confirmed / (confirmed + false alarms), latest verdict per case.</p>")))
    nav = " ".join(f"<a href='#{k}'>{html.escape(_sec_title(k, i, zh))}</a>" for i, (k, _) in enumerate(secs))
    parts.append(f"<nav>{nav}</nav>")
    for i, (k, body) in enumerate(secs):
        parts.append(f"<section id='{k}'><h2>{html.escape(_sec_title(k, i, zh))}</h2>{body}</section>")
    parts.append(f"<footer>ecopatch {html.escape(__version__)} · "
                 f"{'工作簿' if zh else 'workbook'}: report.xlsx</footer>")
    doc = ("<!DOCTYPE html>\n<html lang='" + ("zh-CN" if zh else "en") + "'><head><meta charset='utf-8'>"
           f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(head)}</title>"
           f"<style>{_CSS}</style></head><body>" + "".join(parts) + "</body></html>\n")
    with atomic_path(targets["html"], overwrite=overwrite) as tmp:
        tmp.write_text(doc, encoding="utf-8")
    log.info("report written to %s (%d figures)", out, len(pngs))
    return targets


def _has_geometry(df: Any) -> bool:
    geo = getattr(df, "geometry", None) if df is not None and hasattr(df, "crs") else None
    try:
        return geo is not None and geo.name in df.columns and df.crs is not None
    except AttributeError:
        return False


def _sec_title(key: str, i: int, zh: bool) -> str:
    zh_t, en_t = _SECTIONS[key]
    return f"{_NUMERALS[i]}、{zh_t}" if zh else f"{i + 1}. {en_t}"


def _fig_name(key: str, zh: bool) -> str:
    """Figure names for alt texts."""
    names = {"overview": ("总览图", "Overview map"), "change_map": ("变化图斑前后对比图", "Change map"),
             "card": ("一矿一卡", "Mine card")}
    return names[key][0 if zh else 1]
