"""Ground check (地上查): field packages out, field results in, detection precision.

Out: :func:`write_field_package` writes what field teams load on phones and GPS
units, one row / feature / placemark per case, with Chinese headers:
``cases.gpkg`` (QField, ArcGIS Field Maps), ``cases.kml`` (one Placemark per
case, facts in the description), ``cases.csv`` (UTF-8 with BOM, so Excel shows
the Chinese), ``cases.xlsx``, before/after image chips per case (drawn by a
caller-supplied function) and ``results_template.xlsx``, the blank results
workbook with drop-down lists of the allowed values.

In: :func:`read_results` reads the filled workbook (or a CSV or GeoPackage with
the same columns) and :func:`validate_results` checks every row against the
ledger's cases, giving the events to record and the rows refused, each with
its reason.  :class:`ecopatch.ledger.Ledger` applies the events in one
transaction.

Coordinates (经度, 纬度) are CGCS2000 (EPSG:4490) degrees; CGCS2000 and WGS84
differ by a few centimetres, so KML (WGS84 by definition) gets them unchanged.
Every file is written to a temporary name in its folder and then moved into
place with :func:`os.replace`; nothing is overwritten unless asked.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import logging
import os
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely

from ecopatch.errors import (
    FieldCheckError,
    LedgerTransitionError,
    OutputError,
    OutputExistsError,
    SpreadsheetError,
    describe_os_error,
)
from ecopatch.io.tables import Limits, append_row, write_csv
from ecopatch.ledger.model import Case, Event, EventKind, advance
from ecopatch.sanitize import for_terminal, repair_text, text_problem, unique_filenames
from ecopatch.vocabulary import ACTIVITY_TYPES, CHANGE_TYPE_ZH, ZONE_ZH

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = [
    "CONCLUSIONS",
    "FieldPackage",
    "ImportPlan",
    "ImportReport",
    "PACKAGE_HEADERS",
    "PlannedEvent",
    "RESULT_HEADERS",
    "RESULTS_SHEET",
    "detection_precision",
    "parse_date",
    "read_results",
    "validate_results",
    "write_field_package",
    "write_ledger_report",
]

log = logging.getLogger(__name__)

#: Columns of the case table in the field package: ledger column -> Chinese header.
PACKAGE_HEADERS: dict[str, str] = {
    "case_id": "图斑编号",
    "change_type_zh": "变化类型",
    "area_mu": "面积(亩)",
    "area_m2": "面积(平方米)",
    "lon": "经度",
    "lat": "纬度",
    "reserve_name": "保护地名称",
    "zone_label": "功能分区",
    "found_on": "发现日期",
    "sky_tier_zh": "影像分级",
    "confirmed_on": "影像确认日期",
    "date_before": "前时相日期",
    "date_after": "后时相日期",
    "confidence": "置信度",
    "status_zh": "状态",
    "colour_zh": "红黄绿码",
    "responsible_unit": "责任单位",
    "deadline": "整改期限",
    "patch_id": "检测图斑号",
    "chip_before": "前时相影像",
    "chip_after": "后时相影像",
}

#: Columns of the results workbook the field team fills in: Chinese header -> field.
RESULT_HEADERS: dict[str, str] = {
    "核查结论": "conclusion",
    "实际类型": "real_type",
    "责任单位": "responsible_unit",
    "整改期限": "deadline",
    "核查人": "inspector",
    "核查日期": "inspected_on",
    "备注": "note",
    "照片": "photos",
}
#: Columns a results file must have (the others may be left out).
REQUIRED_HEADERS = ("图斑编号", "核查结论", "核查人", "核查日期")
#: Reference columns pre-filled in the results template.
TEMPLATE_REFERENCE = ("图斑编号", "变化类型", "面积(亩)", "经度", "纬度", "保护地名称", "功能分区")
#: Name of the sheet the results are read from.
RESULTS_SHEET = "核查结果"
_VALUES_SHEET = "取值"

#: Allowed 核查结论 values -> event kind (Chinese values go in the drop-down).
CONCLUSIONS: dict[str, EventKind] = {
    "确认": EventKind.CONFIRM,
    "误报": EventKind.DISMISS,
}
_CONCLUSION_ALIASES = {
    "确认": "确认", "确认违法": "确认", "属实": "确认", "confirmed": "确认", "confirm": "确认",
    "误报": "误报", "不属实": "误报", "false_alarm": "误报", "false alarm": "误报",
    "dismiss": "误报",
}  # fmt: skip


# --------------------------------------------------------------------------- values


_DATE_PATTERNS = (
    re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T].*)?$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
)


def parse_date(value: Any) -> _dt.date:
    """A calendar date from a cell value.

    Accepts :class:`datetime.date` / ``datetime`` / ``pandas.Timestamp`` and
    the strings ``2024-05-01``, ``2024/5/1``, ``2024.05.01``, ``20240501``,
    ``2024年5月1日`` and ISO date-times.

    Raises
    ------
    ValueError
        If the value is not a date or not a real calendar date (2024-02-30).

    Examples
    --------
    >>> parse_date("2024年5月1日"), parse_date("2024/05/01 08:30")
    (datetime.date(2024, 5, 1), datetime.date(2024, 5, 1))
    >>> parse_date("2024-02-30")
    Traceback (most recent call last):
    ...
    ValueError: '2024-02-30' is not a calendar date (day is out of range for month)
    """
    if isinstance(value, pd.Timestamp):
        if pd.isna(value):
            raise ValueError("empty date")
        return value.date()
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).date()
    s = str(value).strip()
    for pat in _DATE_PATTERNS:
        m = pat.match(s)
        if m:
            y, mo, d = (int(g) for g in m.groups())
            try:
                return _dt.date(y, mo, d)
            except ValueError as exc:
                raise ValueError(f"{s!r} is not a calendar date ({exc})") from None
    raise ValueError(f"cannot read {s!r} as a date; write it as YYYY-MM-DD")


def _text(v: Any) -> str:
    """Cell value as stripped text ('' for empty / NaN)."""
    if v is None:
        return ""
    if isinstance(v, float) and np.isnan(v):
        return ""
    if isinstance(v, (pd.Timestamp, _dt.datetime)):
        return v.date().isoformat() if not pd.isna(v) else ""
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _activity_zh(v: str) -> str | None:
    v = v.strip()
    if v in ACTIVITY_TYPES.values():
        return v
    return ACTIVITY_TYPES.get(v.lower())


def _zh_to_activity_key(zh: str) -> str:
    return next(k for k, z in ACTIVITY_TYPES.items() if z == zh)


# --------------------------------------------------------------------------- files


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Write via ``write(tmp)`` to a temporary file beside ``path``, then move it into place."""
    tmp = _tmp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink(tmp)
        raise OutputError(f"cannot write {path}: {describe_os_error(exc)}; nothing was written") from exc
    except BaseException:
        _unlink(tmp)
        raise
    return path


def _unlink(p: Path) -> None:
    for q in (p, p.with_name(p.name + "-journal")):
        try:
            q.unlink()
        except OSError:  # not there, or a read-only folder where it could not be made either
            pass


def _check_targets(targets: Iterable[Path], overwrite: bool) -> None:
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{len(existing)} output file(s) exist, e.g. {existing[:3]}; pass overwrite=True "
            f"(--overwrite) to replace them or choose another folder"
        )


_COLOUR_FILL = {"红码": "FFC7CE", "黄码": "FFEB9C", "绿码": "C6EFCE"}


def _write_sheet(ws: Any, df: pd.DataFrame) -> None:
    """Header row (bold, frozen), values, column widths; 红黄绿码 cells filled in colour.

    Every cell goes through :func:`ecopatch.io.tables.cell_value`: no formula,
    no control character, nothing longer than a cell holds.
    """
    from ecopatch.io.tables import write_sheet

    write_sheet(ws, df, fills=_COLOUR_FILL, fill_columns=["红黄绿码"])


# --------------------------------------------------------------------------- package out


@dataclass(frozen=True)
class FieldPackage:
    """Files of one field package (see :func:`write_field_package`)."""

    out_dir: Path
    gpkg: Path
    kml: Path
    csv: Path
    xlsx: Path
    results_template: Path
    chips: Mapping[str, tuple[Path, Path]] = field(default_factory=dict)
    n_cases: int = 0

    def __str__(self) -> str:
        return (
            f"field package of {self.n_cases} case(s) in {self.out_dir}: "
            f"{self.gpkg.name}, {self.kml.name}, {self.csv.name}, {self.xlsx.name}, "
            f"{self.results_template.name}"
            + (f", {len(self.chips)} chip pair(s)" if self.chips else "")
        )


def package_table(
    cases: pd.DataFrame, chips: Mapping[str, tuple[str, str]] | None = None
) -> pd.DataFrame:
    """The case table of a field package, with Chinese headers.

    Parameters
    ----------
    cases : pandas.DataFrame
        As from :meth:`ecopatch.ledger.Ledger.cases`.
    chips : mapping of case ID to (before, after) relative paths, optional

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PACKAGE_HEADERS` (values), one row per case; areas in
        mu (2 decimals) and m² (1 decimal), coordinates CGCS2000 degrees
        (6 decimals, about 0.1 m).
    """
    chips = chips or {}
    df = pd.DataFrame(index=range(len(cases)))
    c = cases.reset_index(drop=True)
    for col in PACKAGE_HEADERS:
        if col == "zone_label":
            df[col] = [
                (zn if isinstance(zn, str) and zn else ZONE_ZH.get(z or "", z))
                for z, zn in zip(c["zone"], c["zone_name"])
            ]
        elif col == "change_type_zh":
            df[col] = [CHANGE_TYPE_ZH.get(t or "", t) for t in c["change_type"]]
        elif col == "chip_before":
            df[col] = [chips.get(cid, ("", ""))[0] for cid in c["case_id"]]
        elif col == "chip_after":
            df[col] = [chips.get(cid, ("", ""))[1] for cid in c["case_id"]]
        else:
            df[col] = c[col].to_numpy() if col in c else None
    df["area_mu"] = df["area_mu"].astype(float).round(2)
    df["area_m2"] = df["area_m2"].astype(float).round(1)
    df["lon"] = df["lon"].astype(float).round(6)
    df["lat"] = df["lat"].astype(float).round(6)
    df["confidence"] = pd.to_numeric(df["confidence"], errors="coerce").round(3)
    return df.rename(columns=PACKAGE_HEADERS)


def write_field_package(
    cases: gpd.GeoDataFrame,
    out_dir: str | os.PathLike[str],
    *,
    chips: Callable[[pd.Series, Path, Path], None] | None = None,
    overwrite: bool = False,
) -> FieldPackage:
    """Write a field package for ``cases`` into ``out_dir``.

    Parameters
    ----------
    cases : geopandas.GeoDataFrame
        Cases as from :meth:`ecopatch.ledger.Ledger.cases` (EPSG:4490).
    out_dir : path
        Folder, created if missing.
    chips : callable, optional
        ``chips(case_row, before_png, after_png) -> None`` writes the before
        and after image chips of one case (PNG, with the outline); ``case_row``
        is the case's row of ``cases`` (a Series; geometry in EPSG:4490).  It is given
        temporary paths that are moved to ``chips/{stem}_before.png`` and
        ``chips/{stem}_after.png`` when it returns, where ``stem`` is the
        case ID made safe as a file name (:func:`ecopatch.sanitize.unique_filenames`:
        the ID itself for ledger IDs such as ``YB-2024-000001``); the tables and the KML
        refer to those.  An exception from it stops the export.
    overwrite : bool
        Replace existing files; otherwise :class:`OutputExistsError` before
        anything is written.

    Returns
    -------
    FieldPackage
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {out}: {describe_os_error(exc)}") from exc
    cases = cases.reset_index(drop=True)
    paths = {
        "gpkg": out / "cases.gpkg",
        "kml": out / "cases.kml",
        "csv": out / "cases.csv",
        "xlsx": out / "cases.xlsx",
        "results_template": out / "results_template.xlsx",
    }
    chip_rel: dict[str, tuple[str, str]] = {}
    chip_abs: dict[str, tuple[Path, Path]] = {}
    if chips is not None:
        stems = unique_filenames(cases["case_id"])
        for cid in cases["case_id"]:
            rel = (f"chips/{stems[cid]}_before.png", f"chips/{stems[cid]}_after.png")
            chip_rel[cid] = rel
            chip_abs[cid] = (out / rel[0], out / rel[1])
    _check_targets([*paths.values(), *(p for pair in chip_abs.values() for p in pair)], overwrite)

    if chips is not None:
        try:
            (out / "chips").mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create folder {out / 'chips'}: {describe_os_error(exc)}") from exc
        for _, row in cases.iterrows():
            before, after = chip_abs[row["case_id"]]
            tb, ta = _tmp_name(before), _tmp_name(after)
            try:
                chips(row, tb, ta)
                for t, p in ((tb, before), (ta, after)):
                    if t.exists():
                        os.replace(t, p)
                    else:
                        log.warning("chips() wrote no %s for case %s", p.name, row["case_id"])
            except OutputError:
                raise
            except OSError as exc:
                raise OutputError(
                    f"cannot write the image chips {before.name} / {after.name} in {before.parent}: "
                    f"{describe_os_error(exc)}"
                ) from exc
            finally:
                _unlink(tb)
                _unlink(ta)

    table = package_table(cases, chip_rel)
    _atomic(paths["csv"], lambda p: write_csv(table, p))
    _atomic(paths["xlsx"], lambda p: _write_cases_xlsx(table, p))
    _atomic(paths["gpkg"], lambda p: _write_gpkg(table, cases, p))
    _atomic(paths["kml"], lambda p: _write_kml(table, cases, p))
    _atomic(paths["results_template"], lambda p: _write_results_template(table, p))
    pkg = FieldPackage(out, **paths, chips=chip_abs, n_cases=len(cases))
    log.info("%s", pkg)
    return pkg


def _write_cases_xlsx(table: pd.DataFrame, path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "图斑清单"
    _write_sheet(ws, table)
    notes = wb.create_sheet("说明")
    for line in (
        ("坐标系", "CGCS2000 (EPSG:4490) 经纬度，度"),
        ("面积", "椭球面真实面积；1 亩 = 10000/15 平方米"),
        ("数据来源", "ecopatch 遥感变化检测疑似图斑台账"),
    ):
        append_row(notes, line)
    wb.save(path)


def _write_gpkg(table: pd.DataFrame, cases: gpd.GeoDataFrame, path: Path) -> None:
    import geopandas as gpd
    import pyogrio

    df = table.copy()
    for col in df.columns:  # text as stored, control characters made visible (GDAL cuts text at NUL)
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col].dtype):
            df[col] = [repair_text(_text(v)) if v is not None else None for v in df[col]]
    for h in RESULT_HEADERS:  # empty result fields, so the teams can fill them in QField
        if h not in df:
            df[h] = pd.Series([None] * len(df), dtype=object)
    gdf = gpd.GeoDataFrame(df, geometry=cases.geometry.to_numpy(), crs=cases.crs)
    pyogrio.write_dataframe(
        gdf, path, layer="cases", driver="GPKG", geometry_type="MultiPolygon", promote_to_multi=True
    )


_KML_NS = "http://www.opengis.net/kml/2.2"
_KML_COLOUR = {"红码": "ff0000ff", "黄码": "ff00d7ff", "绿码": "ff00b050"}  # aabbggrr


def _ring_coords(ring: Any) -> str:
    return " ".join(f"{x:.7f},{y:.7f}" for x, y in np.asarray(ring.coords)[:, :2])


def _write_kml(table: pd.DataFrame, cases: gpd.GeoDataFrame, path: Path) -> None:
    """One Placemark per case; the balloon shows only our description, in which every value is HTML-escaped.

    KML ``<description>`` is HTML to Google Earth and most phone apps, so the
    values (names typed by people) are escaped before they go in, and a
    ``BalloonStyle`` keeps the raw ``ExtendedData`` values out of the balloon.
    Text in ``<name>`` and ``ExtendedData`` is the value itself (XML-escaped
    by the writer), with control characters made visible.
    """
    ET.register_namespace("", _KML_NS)
    kml = ET.Element(f"{{{_KML_NS}}}kml")
    doc = ET.SubElement(kml, "Document")
    ET.SubElement(doc, "name").text = "疑似图斑 (ecopatch)"
    for key, colour in _KML_COLOUR.items():
        st = ET.SubElement(doc, "Style", id=key)
        ET.SubElement(ET.SubElement(st, "BalloonStyle"), "text").text = "$[description]"
        ls = ET.SubElement(st, "LineStyle")
        ET.SubElement(ls, "color").text = colour
        ET.SubElement(ls, "width").text = "2"
        ps = ET.SubElement(st, "PolyStyle")
        ET.SubElement(ps, "color").text = "40" + colour[2:]
    plain = ET.SubElement(doc, "Style", id="plain")
    ET.SubElement(ET.SubElement(plain, "BalloonStyle"), "text").text = "$[description]"
    for i, rec in table.iterrows():
        cid = _kml_text(rec["图斑编号"])
        pm = ET.SubElement(doc, "Placemark", id=f"case-{i}")
        ET.SubElement(pm, "name").text = cid
        rows = "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_kml_text(v))}</td></tr>"
            for k, v in rec.items()
            if _text(v)
        )
        imgs = "".join(
            f'<p>{html.escape(k)}<br/><img src="{html.escape(_kml_text(rec[k]), quote=True)}" width="320"/></p>'
            for k in ("前时相影像", "后时相影像")
            if _text(rec[k])
        )
        ET.SubElement(pm, "description").text = f"<h3>{html.escape(cid)}</h3><table>{rows}</table>{imgs}"
        colour = _text(rec["红黄绿码"])
        ET.SubElement(pm, "styleUrl").text = f"#{colour}" if colour in _KML_COLOUR else "#plain"
        ext = ET.SubElement(pm, "ExtendedData")
        for k, v in rec.items():
            d = ET.SubElement(ext, "Data", name=str(k))
            ET.SubElement(d, "value").text = _kml_text(v)
        mg = ET.SubElement(pm, "MultiGeometry")
        pt = ET.SubElement(mg, "Point")
        ET.SubElement(pt, "coordinates").text = f"{float(rec['经度']):.7f},{float(rec['纬度']):.7f}"
        geom = cases.geometry.iloc[i]
        for poly in shapely.get_parts(geom):
            pe = ET.SubElement(mg, "Polygon")
            ob = ET.SubElement(ET.SubElement(pe, "outerBoundaryIs"), "LinearRing")
            ET.SubElement(ob, "coordinates").text = _ring_coords(poly.exterior)
            for hole in poly.interiors:
                ib = ET.SubElement(ET.SubElement(pe, "innerBoundaryIs"), "LinearRing")
                ET.SubElement(ib, "coordinates").text = _ring_coords(hole)
    tree = ET.ElementTree(kml)
    ET.indent(tree, space=" ")
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _kml_text(v: Any) -> str:
    """A value as XML-safe text (control characters made visible)."""
    return repair_text(_text(v))


def _write_results_template(table: pd.DataFrame, path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = Workbook()
    ws = wb.active
    ws.title = RESULTS_SHEET
    ref = table[list(TEMPLATE_REFERENCE)].copy()
    for h in RESULT_HEADERS:
        ref[h] = None
    _write_sheet(ws, ref)
    fill_cols = {h: j for j, h in enumerate(ref.columns, start=1) if h in RESULT_HEADERS}
    for h, j in fill_cols.items():
        cell = ws.cell(row=1, column=j)
        cell.fill = PatternFill("solid", fgColor="FFF2CC")
        cell.font = Font(bold=True, color="C00000" if h in REQUIRED_HEADERS else "000000")
        ws.column_dimensions[get_column_letter(j)].width = 16 if h != "备注" else 30
    conclusions = list(CONCLUSIONS)
    activities = list(ACTIVITY_TYPES.values())
    vals = wb.create_sheet(_VALUES_SHEET)
    append_row(vals, ["核查结论", "实际类型"])
    for k in range(max(len(conclusions), len(activities))):
        append_row(vals, [conclusions[k] if k < len(conclusions) else None,
                          activities[k] if k < len(activities) else None])  # fmt: skip
    vals.sheet_state = "hidden"
    last = max(len(table), 1) + 1
    n_rows = max(last, 200)

    def col(h: str) -> str:
        return get_column_letter(fill_cols[h])

    dv_c = DataValidation(
        type="list", formula1=f"'{_VALUES_SHEET}'!$A$2:$A${len(conclusions) + 1}",
        allow_blank=True, showErrorMessage=True, errorTitle="核查结论",
        error="请从下拉列表选择：" + " / ".join(conclusions),
    )  # fmt: skip
    dv_t = DataValidation(
        type="list", formula1=f"'{_VALUES_SHEET}'!$B$2:$B${len(activities) + 1}",
        allow_blank=True, showErrorMessage=True, errorTitle="实际类型",
        error="请从下拉列表选择 HJ 1156-2021 人类活动类型",
    )  # fmt: skip
    dv_d = DataValidation(
        type="date", operator="between", formula1="DATE(2000,1,1)", formula2="DATE(2100,12,31)",
        allow_blank=True, showErrorMessage=True, errorTitle="日期",
        error="请填写日期，如 2024-05-01",
    )  # fmt: skip
    for dv in (dv_c, dv_t, dv_d):
        ws.add_data_validation(dv)
    dv_c.add(f"{col('核查结论')}2:{col('核查结论')}{n_rows}")
    dv_t.add(f"{col('实际类型')}2:{col('实际类型')}{n_rows}")
    for h in ("整改期限", "核查日期"):
        dv_d.add(f"{col(h)}2:{col(h)}{n_rows}")
        for r in range(2, n_rows + 1):
            ws.cell(row=r, column=fill_cols[h]).number_format = "yyyy-mm-dd"
    comments = {
        "核查结论": "必填：" + " / ".join(conclusions),
        "实际类型": "确认时必填（HJ 1156-2021）：" + "、".join(activities),
        "整改期限": "日期 YYYY-MM-DD，不早于核查日期；误报不填",
        "核查人": "必填",
        "核查日期": "必填，日期 YYYY-MM-DD，不晚于今天",
        "照片": "照片文件路径，多个用 ; 分隔",
    }
    for h, text in comments.items():
        ws.cell(row=1, column=fill_cols[h]).comment = Comment(text, "ecopatch")
    notes = wb.create_sheet("说明")
    for line in (
        ("填写说明", "每个图斑一行，只填黄色表头的列；红色表头为必填。不要改动表头和图斑编号。"),
        ("核查结论", " / ".join(conclusions)),
        ("实际类型", "、".join(activities)),
        ("日期格式", "YYYY-MM-DD"),
    ):
        append_row(notes, line)
    wb.save(path)


# --------------------------------------------------------------------------- results in


def _normal_header(h: Any) -> str:
    s = re.sub(r"[\ufeff\u200b\u3000\xa0]", " ", _text(h)).replace("*", "").replace("＊", "")
    return re.split(r"[(（\n]", s, maxsplit=1)[0].strip()


#: Longest text accepted per results field (characters); a spreadsheet cell holds 32,767.
MAX_CHARS: dict[str, int] = {
    "case_id": 100, "conclusion": 50, "real_type": 50, "responsible_unit": 200, "deadline": 50,
    "inspector": 100, "inspected_on": 50, "note": 30_000, "photos": 30_000,
}  # fmt: skip
#: Fields that may hold line breaks and tabs.
_MULTILINE = ("note", "photos")


def read_results(path: str | os.PathLike[str], *, limits: Limits | None = None) -> pd.DataFrame:
    """Read a filled results file: ``.xlsx``, ``.csv`` or ``.gpkg``.

    Parameters
    ----------
    path : path
        Workbook (sheet 核查结果, or the one sheet whose first row has the
        headers), CSV (UTF-8, UTF-16, or GBK/GB18030 as Excel saves it on
        Chinese Windows; comma, semicolon or tab separated) or GeoPackage
        (layer ``cases`` or the first layer).
    limits : ecopatch.io.tables.Limits, optional
        Size limits of a workbook or CSV (default generous for results).

    Returns
    -------
    pandas.DataFrame
        Raw cell values, one row per data row: ``row`` (the row number a user
        sees: the spreadsheet row, the CSV record, the GeoPackage fid),
        ``case_id`` and the fields of :data:`RESULT_HEADERS` (columns missing
        from the file are empty), and ``extra_cells`` (cells beyond the
        header in a CSV record).  Workbook values keep their kind: a yes/no
        cell is a ``bool``, a formula with no saved value an
        :class:`ecopatch.io.tables.Formula`, an error cell a
        :class:`ecopatch.io.tables.CellError`; :func:`validate_results`
        refuses them by name.

    Raises
    ------
    FieldCheckError
        If the file cannot be read (damaged, crafted, too large: the message
        says which), has no results sheet, lacks a required column or repeats
        one (named in the message).
    """
    path = Path(path)
    if not path.exists():
        raise FieldCheckError(f"results file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm"):
            headers, records, rows, extra = _read_xlsx(path, limits)
        elif suffix in (".csv", ".txt"):
            headers, records, rows, extra = _read_csv(path, limits)
        elif suffix == ".gpkg":
            headers, records, rows, extra = _read_gpkg(path)
        elif suffix == ".xls":
            raise FieldCheckError(f"{path}: an old Excel 97-2003 workbook; save it as .xlsx (or CSV) and import that")
        else:
            raise FieldCheckError(
                f"{path}: cannot read results from a {suffix or 'suffix-less'} file; "
                f"use the .xlsx template, or a .csv or .gpkg with the same columns"
            )
    except SpreadsheetError as exc:
        raise FieldCheckError(str(exc)) from exc
    norm = [_normal_header(h) for h in headers]
    missing = [h for h in REQUIRED_HEADERS if h not in norm]
    if missing:
        raise FieldCheckError(
            f"{path}: results table lacks required column(s) {missing} (found {[h for h in norm if h]}); "
            f"fill in the results_template.xlsx of the field package without changing its headers"
        )
    wanted = ("图斑编号", *RESULT_HEADERS)
    twice = [h for h in wanted if norm.count(h) > 1]
    if twice:
        raise FieldCheckError(
            f"{path}: column(s) {twice} appear more than once (columns "
            f"{[_column_letter(j) for j, h in enumerate(norm) if h in twice]}); keep one of each"
        )
    index = {h: norm.index(h) for h in wanted if h in norm}
    out = []
    for rownum, rec, ext in zip(rows, records, extra):
        d: dict[str, Any] = {"row": rownum}
        d["case_id"] = rec[index["图斑编号"]] if index["图斑编号"] < len(rec) else None
        for h, name in RESULT_HEADERS.items():
            j = index.get(h)
            d[name] = rec[j] if j is not None and j < len(rec) else None
        d["extra_cells"] = ext
        out.append(d)
    return pd.DataFrame(out, columns=["row", "case_id", *RESULT_HEADERS.values(), "extra_cells"])


def _column_letter(j: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(j + 1)


_Read = tuple[list[Any], list[tuple[Any, ...]], list[int], list[int]]


def _read_xlsx(path: Path, limits: Limits | None = None, *, sheet: str = RESULTS_SHEET,
               key_headers: tuple[str, ...] = ("图斑编号", "核查结论"),
               template: str = "the results_template.xlsx of the field package") -> _Read:
    """Headers, records, row numbers and extra-cell counts of a results sheet (read by its cells, safely)."""
    from ecopatch.io.tables import open_workbook

    with open_workbook(path, limits=limits) as wb:
        if sheet in wb.sheet_names:
            name = sheet
        else:
            cands = []
            for sname in wb.sheet_names:
                first = next(wb.rows(sname, max_rows=1), (0, {}))[1]
                if set(key_headers) <= {_normal_header(h) for h in first.values()}:
                    cands.append(sname)
            if len(cands) != 1:
                raise FieldCheckError(
                    f"{path}: no sheet named {sheet!r} (sheets: {wb.sheet_names}) and "
                    f"{'no' if not cands else 'more than one'} sheet with the headers "
                    f"{' and '.join(key_headers)}; use {template}"
                )
            name = cands[0]
        rows_iter = wb.rows(name)
        first_row = next(rows_iter, None)
        if first_row is None or first_row[0] != 1:
            raise FieldCheckError(f"{path}: sheet {name!r} has no header in its first row; use {template}")
        head = first_row[1]
        width = max(head)
        headers = [head.get(j) for j in range(1, width + 1)]
        records, rows = [], []
        for k, cells in rows_iter:
            rec = tuple(cells.get(j) for j in range(1, width + 1))
            if any(_text(v) for v in rec):
                records.append(rec)
                rows.append(k)
    return headers, records, rows, [0] * len(rows)


def _read_csv(path: Path, limits: Limits | None = None) -> _Read:
    from ecopatch.io.tables import read_csv_rows

    t = read_csv_rows(path, limits=limits)
    n = len(t.header)
    records, rows, extra = [], [], []
    for k, rec in t.rows:
        if any(_text(v) for v in rec):
            records.append(tuple(rec[:n]) + ("",) * max(0, n - len(rec)))
            rows.append(k)
            extra.append(sum(1 for v in rec[n:] if v.strip()))
    return list(t.header), records, rows, extra


def _read_gpkg(path: Path) -> _Read:
    import pyogrio

    try:
        layers = [name for name, _ in pyogrio.list_layers(path)]
        if not layers:
            raise FieldCheckError(f"{path}: the GeoPackage has no layer")
        layer = "cases" if "cases" in layers else layers[0]
        df = pyogrio.read_dataframe(path, layer=layer, read_geometry=False, fid_as_index=True)
    except FieldCheckError:
        raise
    except Exception as exc:  # noqa: BLE001 - GDAL errors of any kind
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if "sqlite3_" in first and "failed:" in first:  # GDAL quotes the whole SQL statement: keep the reason
            first = "SQLite: " + first.rsplit("failed:", 1)[1].strip()
        raise FieldCheckError(
            f"cannot read GeoPackage {path} ({first[:160]}{'…' if len(first) > 160 else ''}); the file is "
            "damaged or not a GeoPackage: export the layer again from QField / ArcGIS Field Maps, or use the "
            ".xlsx template"
        ) from exc
    records, rows = [], []
    for fid, rec in zip(df.index, df.itertuples(index=False)):
        if any(_text(v) for v in rec):
            records.append(tuple(rec))
            rows.append(int(fid))
    return list(df.columns), records, rows, [0] * len(rows)


def _cell_problem(header: str, field: str, v: Any, *, max_chars: int | None = None) -> str | None:
    """Why a raw results cell cannot be used, in words (None when it can).

    Shared by the case results and the mines' verdicts (:mod:`ecopatch.minecheck`): a formula with no
    saved value, an error value, a yes/no value where text belongs, a control or direction-override
    character, text longer than ``max_chars`` (default :data:`MAX_CHARS` of the field).
    """
    from ecopatch.io.tables import CellError, Formula

    if isinstance(v, Formula):
        return (f"{header} holds a formula ({v}) with no saved value; open the file in Excel or WPS and save it, "
                "or type the value instead of a formula")
    if isinstance(v, CellError):
        return f"{header} holds the error value {v.code}; type the value"
    if isinstance(v, (bool, np.bool_)):
        return f"{header} holds {'TRUE' if v else 'FALSE'}, a yes/no value, not {_WHAT.get(field, 'text')}"
    if isinstance(v, str):
        if field in ("inspector", "responsible_unit") and v.strip().upper() in ("TRUE", "FALSE"):
            return f"{header} holds {v.strip().upper()}, a yes/no value, not {_WHAT[field]}"
        problem = text_problem(v, multiline=field in _MULTILINE, max_chars=max_chars or MAX_CHARS.get(field))
        if problem:
            fix = ("put long text in a document and list it under 照片" if "characters long" in problem
                   else "delete it (it is invisible in most programs) and import again")
            return f"{header} {problem}; {fix}"
    return None


_WHAT = {"case_id": "a case ID", "inspector": "a name", "responsible_unit": "a name", "conclusion": "a conclusion",
         "real_type": "an activity type", "deadline": "a date", "inspected_on": "a date"}


@dataclass(frozen=True)
class PlannedEvent:
    """An event an accepted results row will record."""

    row: int
    case_id: str
    event: Event
    dedupe_key: str


@dataclass(frozen=True)
class ImportPlan:
    """Outcome of :func:`validate_results`: events to record, and the row tables."""

    events: tuple[PlannedEvent, ...]
    accepted: pd.DataFrame
    rejected: pd.DataFrame
    skipped: pd.DataFrame


@dataclass(frozen=True)
class ImportReport:
    """Result of :meth:`ecopatch.ledger.Ledger.import_fieldcheck`.

    Attributes
    ----------
    path : Path
        The results file.
    accepted : pandas.DataFrame
        Rows recorded: ``row, case_id, conclusion, kind, from_status,
        to_status, real_type, responsible_unit, deadline, inspector,
        inspected_on``.
    rejected : pandas.DataFrame
        Rows refused: ``row, case_id, reason`` (all reasons, "; "-joined) and
        the raw ``conclusion``, ``inspector``, ``inspected_on``.
    skipped : pandas.DataFrame
        Rows not filled in, or imported before: ``row, case_id, reason``.
    applied : bool
        False when ``strict`` import refused the whole file.
    """

    path: Path
    accepted: pd.DataFrame
    rejected: pd.DataFrame
    skipped: pd.DataFrame
    applied: bool = True

    @property
    def n_accepted(self) -> int:
        """Rows recorded (0 when not applied)."""
        return len(self.accepted) if self.applied else 0

    def headline(self) -> str:
        """One line: file, accepted, rejected, skipped."""
        state = "" if self.applied else " (strict: nothing applied)"
        return for_terminal(
            f"{self.path.name}: {len(self.accepted)} accepted (接受), {len(self.rejected)} "
            f"rejected (退回), {len(self.skipped)} skipped (跳过){state}"
        )

    def __str__(self) -> str:
        lines = [self.headline()]
        for r in self.rejected.itertuples(index=False):
            lines.append(for_terminal(f"  row {r.row} {r.case_id or ''}: {r.reason}"))
        return "\n".join(lines)


_HEADER_OF: dict[str, str] = {"case_id": "图斑编号", **{v: k for k, v in RESULT_HEADERS.items()}}
_ACCEPTED_COLS = ["row", "case_id", "conclusion", "kind", "from_status", "to_status", "real_type",
                  "responsible_unit", "deadline", "inspector", "inspected_on"]  # fmt: skip
_REJECTED_COLS = ["row", "case_id", "reason", "conclusion", "inspector", "inspected_on"]
_SKIPPED_COLS = ["row", "case_id", "reason"]


def _split_photos(v: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in re.split(r"[;；,，、\n]+", v) if p.strip())


def validate_results(
    raw: pd.DataFrame,
    cases: Mapping[str, Case],
    *,
    found_on: Mapping[str, _dt.date | None] | None = None,
    today: _dt.date | None = None,
    known_keys: Callable[[list[str]], set[str]] | None = None,
) -> ImportPlan:
    """Check every results row against the ledger's cases; plan the events.

    Parameters
    ----------
    raw : pandas.DataFrame
        As from :func:`read_results`.
    cases : mapping of case ID to Case
        The ledger's cases in their current state.
    found_on : mapping of case ID to date, optional
        Date of the after image in which each case's change was first seen;
        an inspection before it is refused.
    today : datetime.date, optional
        Inspection dates after ``today`` are refused; default the local date.
    known_keys : callable, optional
        ``known_keys(keys) -> set`` of the row keys already in the ledger;
        those rows are skipped as already imported.

    Returns
    -------
    ImportPlan

    Notes
    -----
    A row is **skipped** when 核查结论 and every other result field are empty
    (not checked yet), or when the same results for the same case were
    imported before.  It is **rejected**, with every reason found, when:

    - a cell holds a control or direction-override character, more text
      than :data:`MAX_CHARS` allows, a yes/no value (TRUE/FALSE), an error
      value (#N/A) or a formula with no saved value; or a CSV record has more
      cells than the header (a comma in an unquoted value): each is named,
      with its column;
    - 图斑编号 is empty or not a case in the ledger;
    - the case appears in more than one filled row (all its rows are refused);
    - 核查结论 is empty while other fields are filled, or not one of
      :data:`CONCLUSIONS`;
    - 实际类型 is not an HJ 1156-2021 type, or is empty for 确认;
    - 核查人 or 核查日期 is empty;
    - a date cannot be read or is not a calendar date; 核查日期 is after
      ``today`` or before the change was first seen; 整改期限 is before
      核查日期, or is given for 误报;
    - the case's state does not allow the conclusion (e.g. a case already
      confirmed or closed), as :func:`ecopatch.ledger.model.advance` says.
    """
    from ecopatch.ledger.store import content_key

    today = today or _dt.date.today()
    found_on = found_on or {}
    accepted, rejected, skipped = [], [], []
    planned: list[tuple[PlannedEvent, dict[str, Any]]] = []
    rows = []
    for rec in raw.to_dict("records"):
        t = {k: _text(rec.get(k)) for k in ("case_id", *RESULT_HEADERS.values())}
        t["row"] = int(rec["row"])
        t["_raw"] = rec
        rows.append(t)
    fields = list(RESULT_HEADERS.values())
    filled = [r for r in rows if any(r[f] for f in fields)]
    counts: dict[str, list[int]] = {}
    for r in filled:
        if r["case_id"]:
            counts.setdefault(r["case_id"], []).append(r["row"])

    for r in rows:
        cid = r["case_id"]
        if not any(r[f] for f in fields):
            if cid:
                skipped.append(
                    {"row": r["row"], "case_id": cid, "reason": "not filled in (未填写)"}
                )
            continue
        reasons: list[str] = []
        raw_rec = r["_raw"]
        for fld, header in _HEADER_OF.items():
            problem = _cell_problem(header, fld, raw_rec.get(fld))
            if problem:
                reasons.append(problem)
        extra = raw_rec.get("extra_cells") or 0
        if extra:
            reasons.append(
                f"the row has {int(extra)} filled cell(s) beyond the header's last column: a value holding the "
                "separator (a comma) shifted the others; put such values in double quotes, or use the .xlsx template"
            )
        if reasons:  # the other checks would only repeat these on garbled values
            rejected.append(_rejection(r, reasons))
            continue
        case = cases.get(cid) if cid else None
        if not cid:
            reasons.append("图斑编号 is empty")
        elif case is None:
            reasons.append(f"图斑编号 {cid!r} is not a case in this ledger")
        if cid and len(counts.get(cid, [])) > 1:
            reasons.append(f"case {cid} appears in rows {counts[cid]}; keep one row per case")
        concl = _CONCLUSION_ALIASES.get(r["conclusion"].lower() if r["conclusion"] else "")
        if not r["conclusion"]:
            reasons.append("核查结论 is empty")
        elif concl is None:
            reasons.append(
                f"核查结论 {r['conclusion']!r} is not allowed; use {' or '.join(CONCLUSIONS)}"
            )
        rtype = None
        if r["real_type"]:
            rtype = _activity_zh(r["real_type"])
            if rtype is None:
                reasons.append(
                    f"实际类型 {r['real_type']!r} is not an HJ 1156-2021 type; use one of "
                    f"{'、'.join(ACTIVITY_TYPES.values())}"
                )
        elif concl == "确认":
            reasons.append("实际类型 is required for 确认")
        if not r["inspector"]:
            reasons.append("核查人 is empty")
        inspected = deadline = None
        if not r["inspected_on"]:
            reasons.append("核查日期 is empty")
        else:
            try:
                inspected = parse_date(raw_rec["inspected_on"])
            except ValueError as exc:
                reasons.append(f"核查日期: {exc}")
        if inspected is not None:
            if inspected > today:
                reasons.append(f"核查日期 {inspected} is in the future (today is {today})")
            seen = found_on.get(cid) if cid else None
            if seen is not None and inspected < seen:
                reasons.append(
                    f"核查日期 {inspected} is before the change was first seen in imagery ({seen})"
                )
        if r["deadline"]:
            try:
                deadline = parse_date(raw_rec["deadline"])
            except ValueError as exc:
                reasons.append(f"整改期限: {exc}")
            if concl == "误报":
                reasons.append(
                    "整改期限 is given for a 误报 (false alarm); clear it or correct 核查结论"
                )
            elif deadline is not None and inspected is not None and deadline < inspected:
                reasons.append(f"整改期限 {deadline} is before 核查日期 {inspected}")
        if reasons or case is None or concl is None or inspected is None:
            rejected.append(_rejection(r, reasons))
            continue
        data: dict[str, Any] = {"inspector": r["inspector"], "inspected_on": inspected}
        if rtype:
            data["real_type"] = _zh_to_activity_key(rtype)
        if r["responsible_unit"]:
            data["responsible_unit"] = r["responsible_unit"]
        if deadline is not None:
            data["deadline"] = deadline
        ev = Event(
            CONCLUSIONS[concl], inspected, actor=r["inspector"], note=r["note"] or None,
            attachments=_split_photos(r["photos"]), data=data,
        )  # fmt: skip
        key = "fieldcheck:" + content_key(
            cid, ev.kind.value, data.get("real_type"), data.get("responsible_unit"), deadline,
            r["inspector"], inspected, ev.note, "|".join(ev.attachments),
        )  # fmt: skip
        planned.append((PlannedEvent(r["row"], cid, ev, key), r))

    known = known_keys([p.dedupe_key for p, _ in planned]) if (known_keys and planned) else set()
    events: list[PlannedEvent] = []
    for p, r in planned:
        if p.dedupe_key in known:
            skipped.append(
                {"row": p.row, "case_id": p.case_id, "reason": "already imported (已导入)"}
            )
            continue
        before = cases[p.case_id]
        try:
            after = advance(before, p.event)
        except LedgerTransitionError as exc:
            rejected.append(_rejection(r, [str(exc)]))
            continue
        events.append(p)
        d = p.event.data
        accepted.append(
            {
                "row": p.row,
                "case_id": p.case_id,
                "conclusion": r["conclusion"],
                "kind": p.event.kind.value,
                "from_status": before.status.value,
                "to_status": after.status.value,
                "real_type": d.get("real_type"),
                "responsible_unit": d.get("responsible_unit"),
                "deadline": d.get("deadline"),
                "inspector": r["inspector"],
                "inspected_on": p.event.on,
            }
        )
    sort = lambda df: df.sort_values("row", kind="stable").reset_index(drop=True)  # noqa: E731
    return ImportPlan(
        events=tuple(events),
        accepted=sort(pd.DataFrame(accepted, columns=_ACCEPTED_COLS)),
        rejected=sort(pd.DataFrame(rejected, columns=_REJECTED_COLS)),
        skipped=sort(pd.DataFrame(skipped, columns=_SKIPPED_COLS)),
    )


def _rejection(r: dict[str, Any], reasons: list[str]) -> dict[str, Any]:
    return {
        "row": r["row"],
        "case_id": r["case_id"] or None,
        "reason": "; ".join(reasons) or "invalid row",
        "conclusion": r["conclusion"],
        "inspector": r["inspector"],
        "inspected_on": r["inspected_on"],
    }


# --------------------------------------------------------------------------- precision

_PRECISION_BY = (None, "change_type", "zone", "reserve_name")


def detection_precision(verdicts: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Detection precision from field verdicts: confirmed / (confirmed + false alarm).

    Parameters
    ----------
    verdicts : pandas.DataFrame
        One row per checked case: ``verdict`` ("confirmed" or "false_alarm")
        and the grouping columns (``change_type``, ``zone``, ``reserve_name``).
    by : {None, "change_type", "zone", "reserve_name"}
        Overall (one row) or one row per group (missing values as "(none)").

    Returns
    -------
    pandas.DataFrame
        ``[by], confirmed, false_alarm, checked, precision`` (0-1; NaN where
        nothing was checked).

    Examples
    --------
    >>> v = pd.DataFrame({"verdict": ["confirmed", "confirmed", "false_alarm"],
    ...                   "zone": ["core", "buffer", "core"]})
    >>> detection_precision(v, by="zone")[["zone", "precision"]].to_dict("list")
    {'zone': ['buffer', 'core'], 'precision': [1.0, 0.5]}
    """
    if by not in _PRECISION_BY:
        raise ValueError(f"by={by!r} is not allowed; use one of {list(_PRECISION_BY)}")
    v = verdicts.copy()
    v["confirmed"] = (v["verdict"] == "confirmed").astype(int)
    v["false_alarm"] = (v["verdict"] == "false_alarm").astype(int)
    if by is None:
        out = pd.DataFrame(
            {"confirmed": [int(v["confirmed"].sum())], "false_alarm": [int(v["false_alarm"].sum())]}
        )
    else:
        keys = v[by].astype(object).where(v[by].notna(), "(none)") if by in v else "(none)"
        v["_k"] = keys
        out = (
            v.groupby("_k", sort=True)[["confirmed", "false_alarm"]]
            .sum()
            .reset_index()
            .rename(columns={"_k": by})
        )
    out["checked"] = out["confirmed"] + out["false_alarm"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["precision"] = np.where(
            out["checked"] > 0,
            out["confirmed"] / out["checked"].where(out["checked"] > 0, 1),
            np.nan,
        )
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- ledger report


def write_ledger_report(
    out_dir: str | os.PathLike[str],
    *,
    cases: pd.DataFrame,
    summary: pd.DataFrame,
    precision: pd.DataFrame,
    events: pd.DataFrame,
    mines: pd.DataFrame,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write the ledger report workbook and CSV (see ``Ledger.export_report``).

    Returns
    -------
    dict of str to Path
        ``{"xlsx": out_dir / "ledger_report.xlsx", "csv": out_dir / "ledger_cases.csv"}``.
    """
    from openpyxl import Workbook

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {out}: {describe_os_error(exc)}") from exc
    paths = {"xlsx": out / "ledger_report.xlsx", "csv": out / "ledger_cases.csv"}
    _check_targets(paths.values(), overwrite)
    c = pd.DataFrame(
        cases.drop(columns=cases.geometry.name) if hasattr(cases, "geometry") else cases
    )
    base = package_table(c) if len(c) else pd.DataFrame(columns=list(PACKAGE_HEADERS.values()))
    base = base.drop(columns=["前时相影像", "后时相影像"])
    base["状态代码"] = c["status"].to_numpy() if len(c) else []
    base["实际类型"] = [ACTIVITY_TYPES.get(t, t) if t else None for t in c.get("real_type", [])]
    base["状态日期"] = c["status_since"].to_numpy() if len(c) else []
    base["检出次数"] = c["n_detections"].to_numpy() if len(c) else []
    base["事件数"] = c["n_events"].to_numpy() if len(c) else []
    summ = summary.rename(columns={"dimension": "维度", "key": "代码", "label": "名称",
                                   "n_cases": "图斑数", "area_m2": "面积(平方米)",
                                   "area_mu": "面积(亩)"})  # fmt: skip
    ev = events.copy()
    for col in ("attachments", "data"):
        if col in ev:
            ev[col] = [json.dumps(v, ensure_ascii=False, default=str) if v else "" for v in ev[col]]

    def write_xlsx(p: Path) -> None:
        wb = Workbook()
        ws = wb.active
        ws.title = "案件清单"
        _write_sheet(ws, base)
        _write_sheet(wb.create_sheet("汇总"), summ)
        _write_sheet(wb.create_sheet("核查精度"), precision)
        _write_sheet(wb.create_sheet("事件记录"), ev)
        _write_sheet(
            wb.create_sheet("矿山修复"),
            mines.assign(
                attrs=[json.dumps(a, ensure_ascii=False, default=str) for a in mines["attrs"]]
            )
            if "attrs" in mines
            else mines,
        )
        wb.save(p)

    _atomic(paths["csv"], lambda p: write_csv(base, p))
    _atomic(paths["xlsx"], write_xlsx)
    return paths
