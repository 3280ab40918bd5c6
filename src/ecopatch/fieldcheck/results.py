"""Field results in (地上查 back): read the filled results, check every row, record the good ones.

:func:`read_results` reads the filled workbook (or a CSV or GeoPackage with
the same columns) and :func:`validate_results` checks every row against the
ledger's cases, giving the events to record and the rows refused, each with
its reason.  :func:`import_results` does both and records the events in the
ledger in one transaction.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ecopatch.errors import FieldCheckError, InputDataError, LedgerTransitionError, SpreadsheetError
from ecopatch.fieldcheck.cells import (
    CONCLUSION_ALIASES,
    CONCLUSIONS,
    REQUIRED_HEADERS,
    RESULT_HEADERS,
    cell_problem,
    cell_text,
    column_letter,
    normal_header,
    read_csv,
    read_gpkg,
    read_xlsx,
    split_photos,
)
from ecopatch.ledger import Case, Event, Ledger, advance
from ecopatch.ledger.values import content_key, parse_date
from ecopatch.vector.sanitize import for_terminal, text_problem
from ecopatch.vector.tables import Limits
from ecopatch.vocabulary import ACTIVITY_TYPES

__all__ = ["ImportPlan", "ImportReport", "PlannedEvent", "import_results", "read_results", "validate_results"]

log = logging.getLogger(__name__)


def _activity_zh(v: str) -> str | None:
    v = v.strip()
    if v in ACTIVITY_TYPES.values():
        return v
    return ACTIVITY_TYPES.get(v.lower())


def _zh_to_activity_key(zh: str) -> str:
    return next(k for k, z in ACTIVITY_TYPES.items() if z == zh)


def read_results(path: str | os.PathLike[str], *, limits: Limits | None = None) -> pd.DataFrame:
    """Read a filled results file: ``.xlsx``, ``.csv`` or ``.gpkg``.

    Parameters
    ----------
    path : path
        Workbook (sheet 核查结果, or the one sheet whose first row has the
        headers), CSV (UTF-8, UTF-16, or GBK/GB18030 as Excel saves it on
        Chinese Windows; comma, semicolon or tab separated) or GeoPackage
        (layer ``cases`` or the first layer).
    limits : ecopatch.vector.tables.Limits, optional
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
        :class:`ecopatch.vector.tables.Formula`, an error cell a
        :class:`ecopatch.vector.tables.CellError`; :func:`validate_results`
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
            headers, records, rows, extra = read_xlsx(path, limits)
        elif suffix in (".csv", ".txt"):
            headers, records, rows, extra = read_csv(path, limits)
        elif suffix == ".gpkg":
            headers, records, rows, extra = read_gpkg(path)
        elif suffix == ".xls":
            raise FieldCheckError(f"{path}: an old Excel 97-2003 workbook; save it as .xlsx (or CSV) and import that")
        else:
            raise FieldCheckError(
                f"{path}: cannot read results from a {suffix or 'suffix-less'} file; "
                f"use the .xlsx template, or a .csv or .gpkg with the same columns"
            )
    except SpreadsheetError as exc:
        raise FieldCheckError(str(exc)) from exc
    norm = [normal_header(h) for h in headers]
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
            f"{[column_letter(j) for j, h in enumerate(norm) if h in twice]}); keep one of each"
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
    """Result of :func:`import_results`.

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
        for r in self.rejected.to_dict("records"):
            lines.append(for_terminal(f"  row {r['row']} {r['case_id'] or ''}: {r['reason']}"))
        return "\n".join(lines)


_HEADER_OF: dict[str, str] = {"case_id": "图斑编号", **{v: k for k, v in RESULT_HEADERS.items()}}
_ACCEPTED_COLS = ["row", "case_id", "conclusion", "kind", "from_status", "to_status", "real_type",
                  "responsible_unit", "deadline", "inspector", "inspected_on"]  # fmt: skip
_REJECTED_COLS = ["row", "case_id", "reason", "conclusion", "inspector", "inspected_on"]
_SKIPPED_COLS = ["row", "case_id", "reason"]



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
    today = today or _dt.date.today()
    found_on = found_on or {}
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    planned: list[tuple[PlannedEvent, dict[str, Any]]] = []
    rows = []
    for rec in raw.to_dict("records"):
        t: dict[str, Any] = {k: cell_text(rec.get(k)) for k in ("case_id", *RESULT_HEADERS.values())}
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
            problem = cell_problem(header, fld, raw_rec.get(fld))
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
        concl = CONCLUSION_ALIASES.get(r["conclusion"].lower() if r["conclusion"] else "")
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
            attachments=split_photos(r["photos"]), data=data,
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


def import_results(
    ledger: Ledger,
    path: str | os.PathLike[str],
    *,
    today: _dt.date | None = None,
    actor: str | None = None,
    strict: bool = False,
) -> ImportReport:
    """Import filled field results (地上查 back) into a ledger: validate every row, record the good ones.

    Parameters
    ----------
    ledger : ecopatch.ledger.Ledger
        The case ledger the results belong to.
    path : path
        The filled ``results_template.xlsx`` (sheet 核查结果), or a CSV or
        GeoPackage with the same Chinese column names.
    today : datetime.date, optional
        Inspection dates after ``today`` are rejected; default the local date.
    actor : str, optional
        Who imported (kept as ``imported_by`` in each event's data); the
        inspector (核查人) of each row is the event's actor.
    strict : bool
        Apply nothing if any row is rejected (default False: apply the valid
        rows, report the others).

    Returns
    -------
    ImportReport
        ``accepted`` and ``rejected`` (with a ``reason`` per row) and
        ``skipped`` (blank, or already imported) rows.

    Raises
    ------
    FieldCheckError
        If the file is not a results table (wrong sheet, missing column).

    Notes
    -----
    Validation (see :func:`validate_results`): unknown case IDs, values not in
    the allowed lists, unparseable, impossible or future dates, a deadline
    before the inspection, a case in more than one row, and transitions not
    allowed from the case's current state are rejected.  The cases are read
    and all accepted rows recorded in one transaction of the ledger
    (:meth:`Ledger.transaction`); a row imported before (same content for the
    same case) is skipped, so importing the same file twice adds nothing.

    Examples
    --------
    >>> report = import_results(ledger, "field_2024_09/results_template.xlsx")  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    """
    today = today or _dt.date.today()
    path = Path(path)
    if actor is not None and text_problem(str(actor), multiline=False, max_chars=200):
        raise InputDataError(f"actor {text_problem(str(actor), multiline=False, max_chars=200)}")
    raw = read_results(path)
    with ledger.transaction(f"import field results {path.name}") as led:
        cases = led.cases(today=today)
        plan = validate_results(
            raw,
            led.case_states(),
            found_on=dict(zip(cases["case_id"], cases["found_on"])),
            today=today,
            known_keys=led.known_event_keys,
        )
        applied = not (strict and len(plan.rejected))
        if applied:
            for p in plan.events:
                ev = p.event
                if actor:
                    ev = replace(ev, data={**ev.data, "imported_by": actor})
                led.record_event(p.case_id, ev, source=f"import_fieldcheck:{path.name}#row{p.row}",
                                 dedupe_key=p.dedupe_key)
    report = ImportReport(path=path, accepted=plan.accepted, rejected=plan.rejected, skipped=plan.skipped,
                          applied=applied)
    log.info("ledger %s: %s", ledger.path, report.headline())
    return report
