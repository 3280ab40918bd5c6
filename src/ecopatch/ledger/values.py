"""Values as the ledger stores them (internal): dates, numbers, text, JSON, time stamps, row keys.

Cells come from spreadsheets, CSV files and DataFrames: NaN, ``pd.NA``,
numpy scalars, dates written in several ways.  These functions turn them into
the plain Python values and ISO strings the ledger's tables hold.  Used by the
ledger and by :mod:`ecopatch.fieldcheck`; not part of the public API, except
:func:`parse_date`, which :mod:`ecopatch.fieldcheck` exports.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from ecopatch.errors import InputDataError

__all__ = [
    "as_date",
    "as_float",
    "as_str",
    "clean",
    "content_key",
    "date_of",
    "iso",
    "now_utc",
    "parse_date",
    "to_json",
]


def now_utc() -> str:
    """The current UTC time, ISO 8601 with milliseconds and ``Z``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def to_json(obj: Any) -> str:
    """JSON text with sorted keys, Chinese kept as it is, dates as ISO strings, numpy scalars as numbers."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, default=_json_default)


def _json_default(v: Any) -> Any:
    if isinstance(v, (_dt.date, _dt.datetime, pd.Timestamp)):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


def clean(v: Any) -> Any:
    """None for NaN/NA, Python scalars for numpy ones."""
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v


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


def as_date(v: Any, what: str) -> _dt.date | None:
    """A date from a cell (None when empty).

    Raises
    ------
    InputDataError
        Naming ``what``, when the value is not a date.
    """
    v = clean(v)
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    try:
        return parse_date(v)
    except ValueError as exc:
        raise InputDataError(f"{what}: {exc}") from None


def iso(d: _dt.date | None) -> str | None:
    """ISO text of a date (None stays None)."""
    return d.isoformat() if d is not None else None


def as_float(v: Any) -> float | None:
    """A float, or None when empty or not a number."""
    v = clean(v)
    if v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def as_str(v: Any) -> str | None:
    """Stripped text, or None when empty."""
    v = clean(v)
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def date_of(v: str | None) -> _dt.date | None:
    """The date of a stored ISO string (None when empty)."""
    return _dt.date.fromisoformat(v) if v else None


def content_key(*parts: Any) -> str:
    """A short stable hash of ``parts`` (for de-duplicating imported rows)."""
    h = hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode())
    return h.hexdigest()[:32]
