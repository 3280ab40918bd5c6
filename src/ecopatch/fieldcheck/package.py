"""Field packages out (地上查): what field teams load on phones and GPS units.

:func:`write_field_package` writes one row / feature / placemark per case,
with Chinese headers: ``cases.gpkg`` (QField, ArcGIS Field Maps),
``cases.kml`` (one Placemark per case, facts in the description),
``cases.csv`` (UTF-8 with BOM, so Excel shows the Chinese), ``cases.xlsx``,
before/after image chips per case (drawn by a caller-supplied function) and
``results_template.xlsx``, the blank results workbook with drop-down lists
of the allowed values.  :func:`export_package` writes the package of a
ledger's cases and may record their dispatch.

Coordinates (经度, 纬度) are CGCS2000 (EPSG:4490) degrees; CGCS2000 and WGS84
differ by a few centimetres, so KML (WGS84 by definition) gets them unchanged.
Every file is written to a temporary name in its folder and then moved into
place with :func:`os.replace`; nothing is overwritten unless asked.
"""

from __future__ import annotations

import datetime as _dt
import html
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely

from ecopatch.errors import LedgerError, OutputError, describe_os_error
from ecopatch.fieldcheck.cells import (
    CONCLUSIONS,
    REQUIRED_HEADERS,
    RESULT_HEADERS,
    RESULTS_SHEET,
    TEMPLATE_REFERENCE,
    VALUES_SHEET,
    cell_text,
)
from ecopatch.ledger import Event, EventKind, Ledger, Status
from ecopatch.ledger.files import atomic_write, check_targets, remove_partial, tmp_name, write_sheet
from ecopatch.ledger.report import package_table
from ecopatch.vector.sanitize import repair_text, unique_filenames
from ecopatch.vector.tables import append_row, write_csv
from ecopatch.vocabulary import ACTIVITY_TYPES

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["FieldPackage", "export_package", "write_field_package"]

log = logging.getLogger(__name__)


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
        case ID made safe as a file name (:func:`ecopatch.vector.sanitize.unique_filenames`:
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
    check_targets([*paths.values(), *(p for pair in chip_abs.values() for p in pair)], overwrite)

    if chips is not None:
        try:
            (out / "chips").mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create folder {out / 'chips'}: {describe_os_error(exc)}") from exc
        for _, row in cases.iterrows():
            before, after = chip_abs[row["case_id"]]
            tb, ta = tmp_name(before), tmp_name(after)
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
                remove_partial(tb)
                remove_partial(ta)

    table = package_table(cases, chip_rel)
    atomic_write(paths["csv"], lambda p: write_csv(table, p))
    atomic_write(paths["xlsx"], lambda p: _write_cases_xlsx(table, p))
    atomic_write(paths["gpkg"], lambda p: _write_gpkg(table, cases, p))
    atomic_write(paths["kml"], lambda p: _write_kml(table, cases, p))
    atomic_write(paths["results_template"], lambda p: _write_results_template(table, p))
    pkg = FieldPackage(out, **paths, chips=chip_abs, n_cases=len(cases))
    log.info("%s", pkg)
    return pkg


def _write_cases_xlsx(table: pd.DataFrame, path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "图斑清单"
    write_sheet(ws, table)
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
            df[col] = [repair_text(cell_text(v)) if v is not None else None for v in df[col]]
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
            if cell_text(v)
        )
        imgs = "".join(
            f'<p>{html.escape(k)}<br/><img src="{html.escape(_kml_text(rec[k]), quote=True)}" width="320"/></p>'
            for k in ("前时相影像", "后时相影像")
            if cell_text(rec[k])
        )
        ET.SubElement(pm, "description").text = f"<h3>{html.escape(cid)}</h3><table>{rows}</table>{imgs}"
        colour = cell_text(rec["红黄绿码"])
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
    return repair_text(cell_text(v))


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
    write_sheet(ws, ref)
    fill_cols = {h: j for j, h in enumerate(ref.columns, start=1) if h in RESULT_HEADERS}
    for h, j in fill_cols.items():
        cell = ws.cell(row=1, column=j)
        cell.fill = PatternFill("solid", fgColor="FFF2CC")
        cell.font = Font(bold=True, color="C00000" if h in REQUIRED_HEADERS else "000000")
        ws.column_dimensions[get_column_letter(j)].width = 16 if h != "备注" else 30
    conclusions = list(CONCLUSIONS)
    activities = list(ACTIVITY_TYPES.values())
    vals = wb.create_sheet(VALUES_SHEET)
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
        type="list", formula1=f"'{VALUES_SHEET}'!$A$2:$A${len(conclusions) + 1}",
        allow_blank=True, showErrorMessage=True, errorTitle="核查结论",
        error="请从下拉列表选择：" + " / ".join(conclusions),
    )  # fmt: skip
    dv_t = DataValidation(
        type="list", formula1=f"'{VALUES_SHEET}'!$B$2:$B${len(activities) + 1}",
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


def export_package(
    ledger: Ledger,
    out_dir: str | os.PathLike[str],
    cases: Iterable[str] | pd.DataFrame | None = None,
    *,
    chips: Callable[[pd.Series, Path, Path], None] | None = None,
    overwrite: bool = False,
    today: _dt.date | None = None,
    dispatch: bool = False,
    actor: str | None = None,
) -> FieldPackage:
    """Write the field package (地上查) of a ledger's cases for field teams.

    Parameters
    ----------
    ledger : ecopatch.ledger.Ledger
        The case ledger.
    out_dir : path
        Folder for the package (created if missing).
    cases : iterable of case IDs, or a DataFrame with ``case_id``, optional
        Which cases; default those awaiting a ground check (``detected``,
        ``dispatched`` and ``reopened``).
    chips : callable, optional
        ``chips(case_row, before_png, after_png)`` writes the before/after
        image chips of one case (PNG, with the outline); called per case.
        ``case_row`` is the case's row of :meth:`Ledger.cases` (geometry in
        EPSG:4490, ``date_before``/``date_after`` of its latest detection);
        :func:`ecopatch.outputs.maps.case_chips` draws them.
    overwrite : bool
        Replace existing package files (default False:
        :class:`~ecopatch.errors.OutputExistsError`).
    today : datetime.date, optional
        Reference date for the red/yellow/green code and dispatch events.
    dispatch : bool
        After the files are written, record a ``dispatch`` event on every
        exported case in ``detected`` or ``reopened`` (one transaction).
    actor : str, optional
        Who dispatched.

    Returns
    -------
    FieldPackage
        Paths of ``cases.gpkg``, ``cases.kml``, ``cases.csv``,
        ``cases.xlsx``, ``results_template.xlsx`` and the chips.

    Raises
    ------
    LedgerError
        If a requested case ID is not in the ledger.
    OutputExistsError
        If a package file exists and ``overwrite`` is False.

    Examples
    --------
    >>> pkg = export_package(ledger, "field_2024_09", dispatch=True)  # doctest: +SKIP
    """
    today = today or _dt.date.today()
    gdf = ledger.cases(today=today)
    if cases is None:
        sel = gdf[gdf["status"].isin([Status.DETECTED.value, Status.DISPATCHED.value,
                                      Status.REOPENED.value])]  # fmt: skip
    else:
        wanted = list(cases["case_id"]) if isinstance(cases, pd.DataFrame) else list(cases)
        unknown = sorted(set(wanted) - set(gdf["case_id"]))
        if unknown:
            raise LedgerError(f"ledger {ledger.path} has no case(s) {unknown[:10]}")
        sel = gdf[gdf["case_id"].isin(wanted)]
    pkg = write_field_package(sel, out_dir, chips=chips, overwrite=overwrite)
    if dispatch:
        todo = sel[sel["status"].isin([Status.DETECTED.value, Status.REOPENED.value])]
        with ledger.transaction("dispatch cases") as led:
            states = led.case_states()
            for cid in todo["case_id"]:
                if states[cid].status not in (Status.DETECTED, Status.REOPENED):
                    continue  # moved on meanwhile
                ev = Event(EventKind.DISPATCH, today, actor, note=f"field package {pkg.out_dir}")
                led.record_event(cid, ev, source="export_fieldcheck")
    log.info("ledger %s: field package of %d cases in %s", ledger.path, len(sel), pkg.out_dir)
    return pkg
