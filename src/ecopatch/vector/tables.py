"""Spreadsheets and CSV in and out: the one place ecopatch writes and reads them.

Writing
-------
Every CSV and XLSX ecopatch writes (result tables, field packages, results
templates, reports, ledger reports, ``ledger summary --csv``) has its cells
made by :func:`cell_value`:

- text that a spreadsheet would run as a formula gets a leading apostrophe
  (:func:`ecopatch.vector.sanitize.neutralise_formula`, OWASP), so no cell is ever
  a formula and no CSV field starts with ``=``, ``+``, ``-``, ``@``;
- control characters already stored (an old ledger) are shown as control
  pictures (``␇``) instead of making the writer fail;
- text longer than a spreadsheet cell holds (32,767 characters) is cut with
  a visible note, and a warning is logged; the CSV keeps the whole text;
- NaN is an empty cell, infinities are written as text, integers beyond the
  15 significant digits a spreadsheet keeps are written as text (an 18-digit
  ID stays exact), time-zone-aware times as ISO 8601 text.

Reading
-------
:func:`open_workbook` reads ``.xlsx``/``.xlsm`` files with its own streaming
parser (the standard library's zip and expat): the rows are the rows in the
sheet, whatever its ``<dimension>`` says; formulas without a saved value, error
cells and yes/no cells come back as :class:`Formula`, :class:`CellError` and
``bool`` so that callers can refuse them by name; a workbook beyond
:class:`Limits` (uncompressed size, rows, columns, cell length, shared
strings) or with malformed XML or a DTD gets a
:class:`~ecopatch.errors.SpreadsheetError` naming the file and the part.
:func:`read_csv_rows` reads CSV saved by Excel on any system: UTF-8 (with or
without BOM), UTF-16, GBK/GB18030; comma, semicolon or tab separated; a row
with more cells than the header is reported, not shifted.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import math
import os
import re
import zipfile
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from xml.parsers import expat

import numpy as np

from ecopatch.errors import SpreadsheetError
from ecopatch.vector.sanitize import EXCEL_CELL_MAX_CHARS, neutralise_formula, repair_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CellError",
    "Formula",
    "Limits",
    "Workbook",
    "cell_value",
    "csv_text",
    "open_workbook",
    "read_csv_rows",
    "read_table",
    "write_csv",
    "write_sheet",
    "write_workbook",
]

log = logging.getLogger(__name__)

#: Integers with more digits than this lose precision in a spreadsheet (IEEE doubles): written as text.
_EXACT_DIGITS = 15
_CUT_NOTE = "…[cut: {n:,} characters in all; the CSV and the ledger hold the whole text]"


# ---------------------------------------------------------------------------
# Cells out
# ---------------------------------------------------------------------------
def cell_value(v: Any, *, for_csv: bool = False) -> Any:
    r"""One value made safe for a spreadsheet cell (XLSX) or a CSV field.

    Parameters
    ----------
    v : any
        A value from a table.
    for_csv : bool
        CSV: dates as ISO 8601 text, no length cut.

    Returns
    -------
    None, bool, int, float, str, datetime.date or datetime.datetime
        Never a string a spreadsheet would take as a formula; never a
        control character; for XLSX never longer than a cell holds.

    Examples
    --------
    >>> cell_value("=1+1"), cell_value(float("nan")), cell_value("a\x07b"), cell_value(123456789012345678)
    ("'=1+1", None, 'a␇b', '123456789012345678')
    """
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return str(v) if len(str(abs(v))) > _EXACT_DIGITS else v
    if isinstance(v, Decimal):
        v = float(v)
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if isinstance(v, str):
        return _text_cell(v, for_csv)
    if _is_missing(v):
        return None
    if hasattr(v, "to_pydatetime"):  # pandas Timestamp
        v = v.to_pydatetime()
    if isinstance(v, _dt.datetime):
        if v.tzinfo is not None or for_csv:
            return v.isoformat()
        return v
    if isinstance(v, _dt.date):
        return v.isoformat() if for_csv else v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _text_cell(bytes(v).decode("utf-8", "replace"), for_csv)
    if isinstance(v, (list, tuple, dict, set, frozenset)):
        text = json.dumps(list(v) if isinstance(v, (set, frozenset)) else v, ensure_ascii=False, default=str)
        return _text_cell(text, for_csv)
    if hasattr(v, "wkt"):  # a shapely geometry in a flat table
        return _text_cell(str(v.wkt), for_csv)
    return _text_cell(str(v), for_csv)


def _is_missing(v: Any) -> bool:
    try:
        import pandas as pd

        return v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False


def _text_cell(s: str, for_csv: bool) -> str:
    s = neutralise_formula(repair_text(s))
    if not for_csv and len(s) > EXCEL_CELL_MAX_CHARS:
        note = _CUT_NOTE.format(n=len(s))
        s = s[: EXCEL_CELL_MAX_CHARS - len(note)] + note
    return s


def _rows(df: pd.DataFrame, for_csv: bool) -> Iterator[list[Any]]:
    for rec in df.itertuples(index=False, name=None):
        yield [cell_value(v, for_csv=for_csv) for v in rec]


def _header(df: pd.DataFrame, for_csv: bool) -> list[Any]:
    return [cell_value(str(c), for_csv=for_csv) for c in df.columns]


# ---------------------------------------------------------------------------
# CSV out
# ---------------------------------------------------------------------------
def write_csv(df: pd.DataFrame, target: str | os.PathLike[str] | TextIO, *, bom: bool = True) -> None:
    """Write ``df`` as CSV (UTF-8 with a BOM, so Excel shows Chinese), every field through :func:`cell_value`.

    Parameters
    ----------
    df : pandas.DataFrame
        Without geometry (drop it first).
    target : path or text stream
        A path is written as it is: callers write to a temporary file and
        rename it (:func:`ecopatch.vector.layers.atomic_path`).
    bom : bool
        Start with a UTF-8 byte-order mark (paths only).
    """
    if hasattr(target, "write"):
        _csv_to(df, target)  # type: ignore[arg-type]
        return
    with open(target, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
        _csv_to(df, fh)


def csv_text(df: pd.DataFrame) -> str:
    """``df`` as CSV text (no BOM), as :func:`write_csv` writes it."""
    buf = io.StringIO()
    _csv_to(df, buf)
    return buf.getvalue()


def _csv_to(df: pd.DataFrame, fh: TextIO) -> None:
    w = csv.writer(fh, lineterminator="\r\n")  # RFC 4180; fields holding CR or LF are quoted
    w.writerow(_header(df, True))
    for row in _rows(df, True):
        w.writerow(["" if v is None else v for v in row])


# ---------------------------------------------------------------------------
# XLSX out
# ---------------------------------------------------------------------------
def _display_width(v: Any) -> int:
    s = "" if v is None else str(v)
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s[:200])


def write_sheet(
    ws: Any,
    df: pd.DataFrame,
    *,
    note: str | None = None,
    fills: dict[str, str] | None = None,
    fill_columns: Sequence[str] | None = None,
    wrap_header: bool = False,
    max_width: int = 50,
) -> None:
    """Fill an openpyxl worksheet with ``df``: bold frozen header, values, widths, colour fills.

    Every header and value goes through :func:`cell_value`, so no cell is a
    formula and no text breaks the file.

    Parameters
    ----------
    ws : openpyxl worksheet
        Empty.
    df : pandas.DataFrame
    note : str, optional
        A line written two rows below the table.
    fills : dict of str to str, optional
        Cell text -> fill colour (hex RGB), e.g. ``{"红码": "FFC7CE"}``.
    fill_columns : sequence of str, optional
        Columns whose cells get ``fills`` (default: every column holding one
        of its keys).
    wrap_header : bool
        Centre and wrap the header cells.
    max_width : int
        Widest column, in characters.
    """
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    ws.append(_header(df, False))
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
        if wrap_header:
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    cut = 0
    for row in _rows(df, False):
        cut += sum(isinstance(v, str) and v.endswith("hold the whole text]") for v in row)
        ws.append(row)
    if cut:
        log.warning("sheet %s: %d cell(s) longer than a spreadsheet cell holds (%d characters) were cut; "
                    "the CSV and the ledger keep the whole text", ws.title, cut, EXCEL_CELL_MAX_CHARS)
    if note:
        ws.append([])
        ws.append([cell_value(note)])
    ws.freeze_panes = "A2"
    n = len(df)
    for j, col in enumerate(df.columns, start=1):
        letter = get_column_letter(j)
        head = df[col].head(500)
        width = max([_display_width(col)] + [_display_width(cell_value(v)) for v in head])
        ws.column_dimensions[letter].width = min(max(width + 2, 8), max_width)
        if n and isinstance(df[col].iloc[0], _dt.date) and not isinstance(df[col].iloc[0], _dt.datetime):
            for r in ws.iter_rows(min_row=2, max_row=n + 1, min_col=j, max_col=j):
                r[0].number_format = "yyyy-mm-dd"
        if fills and n and (col in fill_columns if fill_columns is not None else df[col].astype(str).isin(fills).any()):
            for r in ws.iter_rows(min_row=2, max_row=n + 1, min_col=j, max_col=j):
                colour = fills.get(str(r[0].value))
                if colour:
                    r[0].fill = PatternFill("solid", fgColor=colour)


def append_row(ws: Any, values: Sequence[Any]) -> None:
    """Append one row of values to an openpyxl worksheet, each through :func:`cell_value`."""
    ws.append([cell_value(v) for v in values])


def write_workbook(
    path: str | os.PathLike[str],
    sheets: Sequence[tuple[str, pd.DataFrame] | tuple[str, pd.DataFrame, str | None]],
    **options: Any,
) -> None:
    """Write an ``.xlsx`` with one sheet per ``(title, frame[, note])``, through :func:`write_sheet`.

    ``path`` is written as it is (callers write to a temporary file and rename it).
    """
    from openpyxl import Workbook

    wb = Workbook()
    for i, spec in enumerate(sheets):
        title, df = spec[0], spec[1]
        note = spec[2] if len(spec) > 2 else None
        ws = wb.active if i == 0 else wb.create_sheet()
        ws.title = title
        write_sheet(ws, df, note=note, **options)
    wb.save(path)


# ---------------------------------------------------------------------------
# Reading workbooks
# ---------------------------------------------------------------------------
@dataclass
class _StringsState:
    """Where the shared-strings parser is: inside <si>, inside <t>, inside phonetic runs, the text so far."""

    in_si: bool = False
    in_t: bool = False
    rph: int = 0
    buf: list[str] = field(default_factory=list)
    n: int = 0
    total: int = 0


@dataclass(frozen=True)
class Limits:
    """What a workbook or CSV may hold before it is refused (all generous for field results).

    Attributes
    ----------
    max_file_bytes : int
        Size of the file on disk.
    max_part_bytes : int
        Uncompressed size of one part of a workbook (a sheet, the shared
        strings); the declared size is enforced by the zip reader.
    max_rows : int
        Rows of a sheet (blank rows included) or records of a CSV.
    max_cols : int
        Columns holding a value.
    max_cells : int
        Cell elements in a sheet, blank ones included.
    max_cell_chars : int
        Characters in one cell.
    max_strings : int
        Entries of the shared-strings table.
    max_string_chars : int
        Characters in the whole shared-strings table.
    """

    max_file_bytes: int = 64 * 2**20
    max_part_bytes: int = 128 * 2**20
    max_rows: int = 100_000
    max_cols: int = 1_000
    max_cells: int = 5_000_000
    max_cell_chars: int = 1_000_000
    max_strings: int = 500_000
    max_string_chars: int = 32_000_000


@dataclass(frozen=True)
class Formula:
    """A formula cell that carries no saved value (the workbook was written by a program, never opened)."""

    text: str

    def __str__(self) -> str:
        return "=" + self.text


@dataclass(frozen=True)
class CellError:
    """An error cell (``#N/A``, ``#REF!`` ...)."""

    code: str

    def __str__(self) -> str:
        return self.code


_DATE_BUILTIN = {*range(14, 23), *range(27, 37), *range(45, 48), *range(50, 59)}  # incl. the CJK date formats
_CHUNK = 1 << 16


def _local(name: str) -> str:
    return name.rsplit(" ", 1)[-1]


def _col_index(ref: str) -> int | None:
    n = 0
    for ch in ref:
        if "A" <= ch <= "Z":
            n = n * 26 + ord(ch) - 64
        elif "a" <= ch <= "z":
            n = n * 26 + ord(ch) - 96
        else:
            break
    return n or None


def _row_index(ref: str) -> int | None:
    m = re.search(r"(\d+)$", ref)
    return int(m.group(1)) if m else None


class _Stop(Exception):
    """Raised inside a handler to stop parsing (caller-side early exit)."""


@dataclass
class Workbook:
    """An ``.xlsx``/``.xlsm`` opened by :func:`open_workbook` (parts are read lazily).

    Attributes
    ----------
    path : Path
    sheet_names : list of str
        In workbook order.
    """

    path: Path
    sheet_names: list[str]
    _zip: zipfile.ZipFile = field(repr=False)
    _parts: dict[str, str] = field(repr=False)  # sheet name -> part name
    _limits: Limits = field(repr=False)
    _date1904: bool = False
    _strings: list[str] | None = field(default=None, repr=False)
    _strings_part: str | None = None
    _date_styles: set[int] | None = field(default=None, repr=False)
    _styles_part: str | None = None

    def close(self) -> None:
        """Close the file."""
        self._zip.close()

    def __enter__(self) -> Workbook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ parts
    def _member(self, part: str) -> zipfile.ZipInfo:
        try:
            info = self._zip.getinfo(part)
        except KeyError:
            raise SpreadsheetError(f"{self.path}: the workbook lacks its part {part!r}; it is damaged: "
                                   "open it in Excel or WPS and save it again") from None
        if info.file_size > self._limits.max_part_bytes:
            raise SpreadsheetError(
                f"{self.path}: part {part} unpacks to {info.file_size / 2**20:,.0f} MB, more than the "
                f"{self._limits.max_part_bytes / 2**20:,.0f} MB allowed; a results workbook is a few hundred "
                "rows: copy the table into a new workbook, or save it as CSV"
            )
        return info

    def _parse(self, part: str, start: Callable[..., None], end: Callable[[str], None],
               chars: Callable[[str], None]) -> Generator[None, None, None]:
        """Feed ``part`` through expat in chunks, yielding after each chunk (so callers can stop early)."""
        info = self._member(part)
        p = expat.ParserCreate(namespace_separator=" ")
        p.buffer_text = True

        def no_dtd(*args: Any) -> None:
            raise SpreadsheetError(f"{self.path}: part {part} declares a DTD or entities, which no spreadsheet "
                                   "program writes; the file was crafted or damaged: refusing to read it")

        p.StartDoctypeDeclHandler = no_dtd
        p.EntityDeclHandler = no_dtd
        p.StartElementHandler = start
        p.EndElementHandler = end
        p.CharacterDataHandler = chars
        try:
            with self._zip.open(info) as fh:
                while True:
                    chunk = fh.read(_CHUNK)
                    p.Parse(chunk, not chunk)
                    yield
                    if not chunk:
                        break
        except expat.ExpatError as exc:
            raise SpreadsheetError(
                f"{self.path}: part {part} is not well-formed XML ({expat.ErrorString(exc.code)} at line "
                f"{exc.lineno}, column {exc.offset}); the workbook is damaged: open it in Excel or WPS and save "
                "it again, or save the sheet as CSV"
            ) from None
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise SpreadsheetError(f"{self.path}: cannot unpack part {part} ({exc}); the file is truncated "
                                   "or damaged") from None

    def _shared_strings(self) -> list[str]:
        if self._strings is not None:
            return self._strings
        out: list[str] = []
        if self._strings_part is None:
            self._strings = out
            return out
        lim = self._limits
        state = _StringsState()

        def start(name: str, attrs: dict[str, str]) -> None:
            tag = _local(name)
            if tag == "si":
                state.in_si, state.buf, state.n = True, [], 0
            elif tag == "rPh":
                state.rph += 1
            elif tag == "t" and state.in_si and not state.rph:
                state.in_t = True

        def end(name: str) -> None:
            tag = _local(name)
            if tag == "t":
                state.in_t = False
            elif tag == "rPh":
                state.rph -= 1
            elif tag == "si":
                out.append("".join(state.buf))
                state.in_si = False
                if len(out) > lim.max_strings:
                    raise SpreadsheetError(
                        f"{self.path}: the shared-strings table holds more than {lim.max_strings:,} entries; "
                        "no results workbook needs that many: the file was crafted or damaged"
                    )

        def chars(data: str) -> None:
            if state.in_t:
                state.buf.append(data)
                state.n += len(data)
                state.total += len(data)
                if state.n > lim.max_cell_chars:
                    raise SpreadsheetError(f"{self.path}: a text holds more than {lim.max_cell_chars:,} "
                                           "characters; shorten it")
                if state.total > lim.max_string_chars:
                    raise SpreadsheetError(f"{self.path}: the shared-strings table holds more than "
                                           f"{lim.max_string_chars:,} characters; the file was crafted or damaged")

        for _ in self._parse(self._strings_part, start, end, chars):
            pass
        self._strings = out
        return out

    def _dates(self) -> set[int]:
        if self._date_styles is not None:
            return self._date_styles
        from openpyxl.styles.numbers import is_date_format

        formats: dict[int, str] = {}
        xfs: list[int] = []
        depth = {"cellXfs": False}

        def start(name: str, attrs: dict[str, str]) -> None:
            tag = _local(name)
            if tag == "numFmt":
                try:
                    formats[int(attrs.get("numFmtId", "-1"))] = attrs.get("formatCode", "")
                except ValueError:
                    pass
            elif tag == "cellXfs":
                depth["cellXfs"] = True
            elif tag == "xf" and depth["cellXfs"]:
                try:
                    xfs.append(int(attrs.get("numFmtId", "0")))
                except ValueError:
                    xfs.append(0)

        def end(name: str) -> None:
            if _local(name) == "cellXfs":
                depth["cellXfs"] = False

        if self._styles_part is not None:
            for _ in self._parse(self._styles_part, start, end, lambda d: None):
                pass
        dates = set()
        for i, fid in enumerate(xfs):
            code = formats.get(fid)
            if (code is not None and is_date_format(code)) or (code is None and fid in _DATE_BUILTIN):
                dates.add(i)
        self._date_styles = dates
        return dates

    # ------------------------------------------------------------------ rows
    def rows(self, sheet: str, *, max_rows: int | None = None) -> Iterator[tuple[int, dict[int, Any]]]:
        """The rows of ``sheet`` that hold a cell element: ``(row number, {column number: value})``.

        Row and column numbers start at 1, as a spreadsheet shows them.
        Values are ``str``, ``float``, ``bool``, ``datetime.datetime``,
        :class:`Formula` (a formula with no saved value) or
        :class:`CellError`; empty cells are left out.

        Parameters
        ----------
        sheet : str
            A name from :attr:`sheet_names`.
        max_rows : int, optional
            Stop after this many rows (e.g. 1 for the header).

        Raises
        ------
        SpreadsheetError
            Malformed XML, or more rows, columns, cells or characters than
            the limits allow.
        """
        if sheet not in self._parts:
            raise SpreadsheetError(f"{self.path}: no sheet {sheet!r} (sheets: {self.sheet_names})")
        part = self._parts[sheet]
        strings = self._shared_strings()
        dates = self._dates()
        lim = self._limits
        epoch = _dt.datetime(1904, 1, 1) if self._date1904 else _dt.datetime(1899, 12, 30)
        done: list[tuple[int, dict[int, Any]]] = []
        st: dict[str, Any] = {"row": 0, "rows": 0, "cells": 0, "cur": None, "col": 0, "cell": None,
                              "text": None, "what": None, "is": False}

        def where() -> str:
            return f"{self.path}, sheet {sheet!r}, row {st['row']}"

        def start(name: str, attrs: dict[str, str]) -> None:
            tag = _local(name)
            if tag == "row":
                st["rows"] += 1
                if st["rows"] > lim.max_rows:
                    raise SpreadsheetError(
                        f"{self.path}: sheet {sheet!r} has more than {lim.max_rows:,} rows (blank rows included); "
                        "delete the empty rows below the table, or copy the table into a new workbook"
                    )
                r = attrs.get("r")
                st["row"] = int(r) if r and r.isdigit() else st["row"] + 1
                st["cur"], st["col"] = {}, 0
            elif tag == "c":
                st["cells"] += 1
                if st["cells"] > lim.max_cells:
                    raise SpreadsheetError(f"{self.path}: sheet {sheet!r} has more than {lim.max_cells:,} cells; "
                                           "the file was crafted or damaged")
                ref = attrs.get("r", "")
                col = _col_index(ref) if ref else None
                st["col"] = col if col else st["col"] + 1
                st["cell"] = {"t": attrs.get("t", "n"), "s": attrs.get("s"), "v": None, "f": None, "is": None}
            elif tag in ("v", "f") and st["cell"] is not None:
                st["what"], st["text"] = tag, []
            elif tag == "is" and st["cell"] is not None:
                st["is"], st["cell"]["is"] = True, []
            elif tag == "t" and st["is"]:
                st["what"], st["text"] = "t", []

        def chars(data: str) -> None:
            if st["text"] is not None:
                st["text"].append(data)
                if sum(map(len, st["text"])) > lim.max_cell_chars:
                    raise SpreadsheetError(f"{where()}: a cell holds more than {lim.max_cell_chars:,} characters")

        def end(name: str) -> None:
            tag = _local(name)
            if tag in ("v", "f", "t") and st["text"] is not None and st["what"] == tag:
                text = "".join(st["text"])
                if tag == "t":
                    st["cell"]["is"].append(text)
                else:
                    st["cell"][tag] = text
                st["text"], st["what"] = None, None
            elif tag == "is":
                st["is"] = False
            elif tag == "c" and st["cell"] is not None:
                value = self._value(st["cell"], strings, dates, epoch, where)
                if value is not None:
                    if st["col"] > lim.max_cols:
                        raise SpreadsheetError(
                            f"{where()}: a value in column {st['col']:,}; at most {lim.max_cols:,} columns are read"
                        )
                    if st["cur"] is None:  # a cell outside any row element
                        st["cur"] = {}
                    st["cur"][st["col"]] = value
                st["cell"] = None
            elif tag == "row":
                if st["cur"]:
                    done.append((st["row"], st["cur"]))
                st["cur"] = None
                if max_rows is not None and st["rows"] >= max_rows:
                    raise _Stop()

        gen = self._parse(part, start, end, chars)
        try:
            for _ in gen:
                yield from done
                done.clear()
        except _Stop:
            yield from done
        finally:
            gen.close()

    def _value(self, c: dict[str, Any], strings: list[str], dates: set[int], epoch: _dt.datetime,
               where: Callable[[], str]) -> Any:
        t, v, f = c["t"], c["v"], c["f"]
        if t == "inlineStr":
            return "".join(c["is"] or []) or None
        if v is None or (v == "" and t not in ("str", "s")):
            return Formula(f) if f else None
        if t == "s":
            try:
                return strings[int(v)]
            except (ValueError, IndexError):
                raise SpreadsheetError(f"{where()}: a cell points to shared string {v!r}, which does not "
                                       "exist; the workbook is damaged") from None
        if t in ("str", "e"):
            return CellError(v) if t == "e" else v
        if t == "b":
            return v.strip() in ("1", "true")
        if t == "d":
            try:
                return _dt.datetime.fromisoformat(v.strip().replace("Z", ""))
            except ValueError:
                return v
        try:
            x = float(v)
        except ValueError:
            return v
        s = c["s"]
        if s is not None and s.isdigit() and int(s) in dates and math.isfinite(x) and -1 < x < 2_958_466:
            try:
                return epoch + _dt.timedelta(days=x)
            except OverflowError:
                return x
        return x


def open_workbook(path: str | os.PathLike[str], *, limits: Limits | None = None) -> Workbook:
    """Open an ``.xlsx``/``.xlsm`` for reading (see the module docstring).

    Raises
    ------
    SpreadsheetError
        Not a workbook (an old ``.xls``, a renamed file, a damaged zip), or
        one beyond ``limits``.
    """
    path = Path(path)
    lim = limits or Limits()
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SpreadsheetError(f"{path}: cannot read ({exc.strerror})") from exc
    if size > lim.max_file_bytes:
        raise SpreadsheetError(f"{path}: {size / 2**20:,.1f} MB, more than the {lim.max_file_bytes / 2**20:,.0f} "
                               "MB a workbook may have here; a results workbook is a few hundred rows")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise SpreadsheetError(f"{path}: an old Excel 97-2003 (.xls) workbook or an encrypted one; save it as .xlsx "
                               "(Excel workbook) without a password, or as CSV")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        kind = "is empty" if size == 0 else f"is not an .xlsx workbook ({exc})"
        raise SpreadsheetError(f"{path}: {kind}; save it from Excel or WPS as .xlsx, or as CSV") from None
    try:
        infos = zf.infolist()
        if len(infos) > 10_000:
            raise SpreadsheetError(f"{path}: the workbook has {len(infos):,} parts; the file was crafted or damaged")
        wb = Workbook(path, [], zf, {}, lim)
        _read_structure(wb)
        return wb
    except BaseException:
        zf.close()
        raise


def _read_structure(wb: Workbook) -> None:
    names = set(wb._zip.namelist())
    if "xl/workbook.xml" not in names:
        raise SpreadsheetError(f"{wb.path}: not an Excel workbook (no xl/workbook.xml); save it as .xlsx or CSV")
    sheets: list[tuple[str, str]] = []
    flags: dict[str, bool] = {}

    def start_wb(name: str, attrs: dict[str, str]) -> None:
        tag = _local(name)
        if tag == "sheet":
            rid = next((v for k, v in attrs.items() if _local(k) == "id" and " " in k), None)
            sheets.append((attrs.get("name", ""), rid or ""))
        elif tag == "workbookPr":
            flags["date1904"] = attrs.get("date1904", "0").lower() in ("1", "true")

    for _ in wb._parse("xl/workbook.xml", start_wb, lambda n: None, lambda d: None):
        pass
    rels: dict[str, tuple[str, str]] = {}

    def start_rel(name: str, attrs: dict[str, str]) -> None:
        if _local(name) == "Relationship" and attrs.get("TargetMode") != "External":
            rels[attrs.get("Id", "")] = (attrs.get("Target", ""), attrs.get("Type", ""))

    if "xl/_rels/workbook.xml.rels" in names:
        for _ in wb._parse("xl/_rels/workbook.xml.rels", start_rel, lambda n: None, lambda d: None):
            pass

    def resolve(target: str) -> str:
        t = target.lstrip("/") if target.startswith("/") else "xl/" + target
        parts: list[str] = []
        for seg in t.split("/"):
            if seg == "..":
                if parts:
                    parts.pop()
            elif seg not in ("", "."):
                parts.append(seg)
        return "/".join(parts)

    for target, kind in rels.values():
        if kind.endswith("/sharedStrings"):
            wb._strings_part = resolve(target)
        elif kind.endswith("/styles"):
            wb._styles_part = resolve(target)
    if wb._strings_part is None and "xl/sharedStrings.xml" in names:
        wb._strings_part = "xl/sharedStrings.xml"
    if wb._styles_part is None and "xl/styles.xml" in names:
        wb._styles_part = "xl/styles.xml"
    for i, (sname, rid) in enumerate(sheets, start=1):
        target = rels.get(rid, ("", ""))[0]
        part = resolve(target) if target else f"xl/worksheets/sheet{i}.xml"
        if part in names:
            wb.sheet_names.append(sname)
            wb._parts[sname] = part
    wb._date1904 = flags.get("date1904", False)
    if not wb.sheet_names:
        raise SpreadsheetError(f"{wb.path}: the workbook has no worksheet")


# ---------------------------------------------------------------------------
# Reading CSV
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CsvTable:
    """A CSV read by :func:`read_csv_rows`.

    Attributes
    ----------
    header : list of str
    rows : list of (int, list of str)
        Record number as a spreadsheet shows it (the header is row 1) and
        the fields; a record may have more fields than the header.
    encoding, delimiter : str
        As detected.
    """

    header: list[str]
    rows: list[tuple[int, list[str]]]
    encoding: str
    delimiter: str


def _decode(data: bytes, path: Path) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", "strict"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise SpreadsheetError(f"{path}: not valid UTF-16 text ({exc.reason}); save it again as CSV") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        raise SpreadsheetError(
            f"{path}: cannot decode as UTF-8 or GBK/GB18030 (byte {exc.start}); save it as "
            "'CSV UTF-8 (comma delimited)' from Excel, or use the .xlsx template"
        ) from None


def read_csv_rows(path: str | os.PathLike[str], *, limits: Limits | None = None) -> CsvTable:
    """Read a CSV as Excel, WPS and LibreOffice save it (see the module docstring).

    Raises
    ------
    SpreadsheetError
        Undecodable, too large, a field longer than the csv module allows
        (131,072 characters), or no header.
    """
    path = Path(path)
    lim = limits or Limits()
    size = path.stat().st_size
    if size > lim.max_file_bytes:
        raise SpreadsheetError(f"{path}: {size / 2**20:,.1f} MB, more than the {lim.max_file_bytes / 2**20:,.0f} "
                               "MB a CSV may have here")
    text, enc = _decode(path.read_bytes(), path)
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", "\t", ";")}
    delim = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    try:
        for k, rec in enumerate(reader, start=1):
            if header is None:
                header = rec
                continue
            if len(rows) >= lim.max_rows:
                raise SpreadsheetError(f"{path}: more than {lim.max_rows:,} records; a results file has one row "
                                       "per case")
            rows.append((k, rec))
    except csv.Error as exc:
        raise SpreadsheetError(f"{path}: cannot read record {reader.line_num} ({exc}); shorten the text there, "
                               "or use the .xlsx template") from None
    if header is None:
        raise SpreadsheetError(f"{path}: the CSV is empty (no header row)")
    return CsvTable(header, rows, enc, delim)


# ---------------------------------------------------------------------------
# A whole table
# ---------------------------------------------------------------------------
def read_table(path: str | os.PathLike[str], *, sheet: str | None = None, limits: Limits | None = None
               ) -> pd.DataFrame:
    """A table written by ecopatch (or typed by hand) as a DataFrame: ``.xlsx``/``.xlsm`` or ``.csv``.

    The first row holds the column names.  CSV columns whose every value
    reads as a number become numbers.  Apostrophes added on writing to
    formula-like text are kept (the text is shown as written).

    Parameters
    ----------
    path : path
    sheet : str, optional
        Sheet name (default: the first sheet).

    Raises
    ------
    SpreadsheetError
        See :func:`open_workbook` and :func:`read_csv_rows`; also an empty
        sheet or repeated column names.
    """
    import pandas as pd

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        with open_workbook(path, limits=limits) as wb:
            name = sheet or wb.sheet_names[0]
            rows = list(wb.rows(name))
        if not rows:
            raise SpreadsheetError(f"{path}: sheet {name!r} is empty")
        (_, head), body = rows[0], rows[1:]
        ncol = max(max(r) for _, r in rows)
        header = [str(head.get(j, "")).strip() for j in range(1, ncol + 1)]
        data = [[r.get(j) for j in range(1, ncol + 1)] for _, r in body]
    elif suffix in (".csv", ".txt"):
        t = read_csv_rows(path, limits=limits)
        header = [h.strip().lstrip("\ufeff") for h in t.header]
        data = [list[Any](rec + [""] * len(header))[: len(header)] for _, rec in t.rows]
    else:
        raise SpreadsheetError(f"{path}: not a table file (.xlsx or .csv)")
    keep = [j for j, h in enumerate(header) if h]
    names = [header[j] for j in keep]
    dup = sorted({h for h in names if names.count(h) > 1})
    if dup:
        raise SpreadsheetError(f"{path}: column(s) {dup} appear more than once; rename or delete the copies")
    df = pd.DataFrame([[row[j] for j in keep] for row in data], columns=names)
    if suffix in (".csv", ".txt"):
        for c in df.columns:
            s = df[c].replace("", None)
            num = pd.to_numeric(s, errors="coerce")
            if s.notna().any() and num[s.notna()].notna().all():
                df[c] = num
            else:
                df[c] = s
    return df
