"""The cells of the field tables (地上查): headers, readers, and what a cell may hold.

The results workbook of a field package and the mines' verdicts workbook are
read the same way, by their cells and within size limits (:mod:`ecopatch.vector.tables`):
an ``.xlsx`` sheet, a CSV as Excel or WPS saves it, or the layer of a
GeoPackage edited in QField.  :func:`cell_problem` says, in words, why a cell
cannot be used (a formula with no saved value, an error value, a control
character, over-long text).
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecopatch.errors import FieldCheckError
from ecopatch.ledger.model import EventKind
from ecopatch.vector.sanitize import text_problem
from ecopatch.vector.tables import Limits

__all__ = [
    "CONCLUSIONS",
    "CONCLUSION_ALIASES",
    "MAX_CHARS",
    "REQUIRED_HEADERS",
    "RESULTS_SHEET",
    "RESULT_HEADERS",
    "Records",
    "TEMPLATE_REFERENCE",
    "VALUES_SHEET",
    "cell_problem",
    "cell_text",
    "column_letter",
    "normal_header",
    "read_csv",
    "read_gpkg",
    "read_xlsx",
    "split_photos",
]

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
VALUES_SHEET = "取值"

#: Allowed 核查结论 values -> event kind (Chinese values go in the drop-down).
CONCLUSIONS: dict[str, EventKind] = {
    "确认": EventKind.CONFIRM,
    "误报": EventKind.DISMISS,
}
CONCLUSION_ALIASES = {
    "确认": "确认", "确认违法": "确认", "属实": "确认", "confirmed": "确认", "confirm": "确认",
    "误报": "误报", "不属实": "误报", "false_alarm": "误报", "false alarm": "误报",
    "dismiss": "误报",
}  # fmt: skip



def cell_text(v: Any) -> str:
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


def normal_header(h: Any) -> str:
    """A header as compared: no BOM or odd spaces, no ``*`` marks, nothing after a bracket or line break."""
    s = re.sub(r"[\ufeff\u200b\u3000\xa0]", " ", cell_text(h)).replace("*", "").replace("＊", "")
    return re.split(r"[(（\n]", s, maxsplit=1)[0].strip()


#: Longest text accepted per results field (characters); a spreadsheet cell holds 32,767.
MAX_CHARS: dict[str, int] = {
    "case_id": 100, "conclusion": 50, "real_type": 50, "responsible_unit": 200, "deadline": 50,
    "inspector": 100, "inspected_on": 50, "note": 30_000, "photos": 30_000,
}  # fmt: skip
#: Fields that may hold line breaks and tabs.
_MULTILINE = ("note", "photos")


def column_letter(j: int) -> str:
    """The spreadsheet letter of column ``j`` (0-based)."""
    from openpyxl.utils import get_column_letter

    return get_column_letter(j + 1)


Records = tuple[list[Any], list[tuple[Any, ...]], list[int], list[int]]


def read_xlsx(path: Path, limits: Limits | None = None, *, sheet: str = RESULTS_SHEET,
               key_headers: tuple[str, ...] = ("图斑编号", "核查结论"),
               template: str = "the results_template.xlsx of the field package") -> Records:
    """Headers, records, row numbers and extra-cell counts of a results sheet (read by its cells, safely)."""
    from ecopatch.vector.tables import open_workbook

    with open_workbook(path, limits=limits) as wb:
        if sheet in wb.sheet_names:
            name = sheet
        else:
            cands = []
            for sname in wb.sheet_names:
                first = next(wb.rows(sname, max_rows=1), (0, {}))[1]
                if set(key_headers) <= {normal_header(h) for h in first.values()}:
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
            if any(cell_text(v) for v in rec):
                records.append(rec)
                rows.append(k)
    return headers, records, rows, [0] * len(rows)


def read_csv(path: Path, limits: Limits | None = None) -> Records:
    """Headers, records, row numbers and extra-cell counts of a CSV table (UTF-8, UTF-16 or GB18030)."""
    from ecopatch.vector.tables import read_csv_rows

    t = read_csv_rows(path, limits=limits)
    n = len(t.header)
    records, rows, extra = [], [], []
    for k, rec in t.rows:
        if any(cell_text(v) for v in rec):
            records.append(tuple(rec[:n]) + ("",) * max(0, n - len(rec)))
            rows.append(k)
            extra.append(sum(1 for v in rec[n:] if v.strip()))
    return list(t.header), records, rows, extra


def read_gpkg(path: Path) -> Records:
    """Headers, records, feature IDs of the ``cases`` layer (or the first layer) of a GeoPackage."""
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
        if any(cell_text(v) for v in rec):
            records.append(tuple(rec))
            rows.append(int(fid))
    return list(df.columns), records, rows, [0] * len(rows)


def cell_problem(header: str, field: str, v: Any, *, max_chars: int | None = None) -> str | None:
    """Why a raw results cell cannot be used, in words (None when it can).

    Shared by the case results and the mines' verdicts (:mod:`ecopatch.fieldcheck.verdicts`): a formula with no
    saved value, an error value, a yes/no value where text belongs, a control or direction-override
    character, text longer than ``max_chars`` (default :data:`MAX_CHARS` of the field).
    """
    from ecopatch.vector.tables import CellError, Formula

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



def split_photos(v: str) -> tuple[str, ...]:
    """Photo paths of a cell, separated by ; , 、 or line breaks (ASCII or full-width)."""
    return tuple(p.strip() for p in re.split(r"[;；,，、\n]+", v) if p.strip())
