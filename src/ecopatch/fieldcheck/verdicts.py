"""Ground check of restored mines (修复核查): field verdicts in, agreement with the imagery out.

The sky says how much of a mine is vegetated again; a field team says
whether the restoration passes (已验收) or not.  This module is the mine
side of the field check, built on the same readers and writers as the
case results (:mod:`ecopatch.fieldcheck.results`):

- :func:`write_verdict_template` writes the workbook field teams fill in,
  one row per mine with the latest figures from the imagery and drop-down
  lists of the allowed verdicts;
- :func:`read_verdicts` reads it back (``.xlsx``, or a ``.csv`` / ``.gpkg``
  with the same Chinese headers) and :func:`validate_verdicts` checks every
  row, giving the verdicts to record and the rows refused with their reasons;
  :func:`import_verdicts` records them in the ledger in one
  transaction, and importing the same file twice adds nothing;
- :func:`verdict_agreement` compares each verdict with the imagery's status
  of the mine at the nearest date: agreement, Cohen's kappa, the
  confusion table and the mines where the two disagree.

Verdicts (核查结论), with their keys:

======================  ==============  ===========================================
核查结论                 key             counts as restored (for the agreement)
======================  ==============  ===========================================
已验收                   ``accepted``    yes
未通过验收               ``rejected``    no
修复中                   ``in_progress`` no
未启动                   ``not_started`` no
退化                     ``degraded``    no
======================  ==============  ===========================================
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecopatch.errors import FieldCheckError, SpreadsheetError
from ecopatch.fieldcheck.cells import (
    cell_problem,
    cell_text,
    normal_header,
    read_csv,
    read_gpkg,
    read_xlsx,
    split_photos,
)
from ecopatch.ledger import Ledger
from ecopatch.ledger.files import atomic_write, check_targets, write_sheet
from ecopatch.ledger.values import content_key, parse_date
from ecopatch.vector.sanitize import for_terminal
from ecopatch.vector.tables import append_row
from ecopatch.vocabulary import MINE_STATUS_ZH, RESTORATION_DIRECTIONS

__all__ = [
    "AgreementReport",
    "PlannedVerdict",
    "VERDICTS",
    "VERDICTS_SHEET",
    "VERDICT_HEADERS",
    "VerdictImportReport",
    "VerdictPlan",
    "export_verdict_template",
    "import_verdicts",
    "read_verdicts",
    "validate_verdicts",
    "verdict_agreement",
    "write_verdict_template",
]

log = logging.getLogger(__name__)

#: Allowed 核查结论 values (the drop-down list) -> verdict key.
VERDICTS: dict[str, str] = {
    "已验收": "accepted",
    "未通过验收": "rejected",
    "修复中": "in_progress",
    "未启动": "not_started",
    "退化": "degraded",
}
_VERDICT_ALIASES: dict[str, str] = {
    **{k: k for k in VERDICTS},
    "验收通过": "已验收", "通过验收": "已验收", "已通过验收": "已验收", "合格": "已验收", "已完成修复": "已验收",
    "accepted": "已验收", "passed": "已验收",
    "验收未通过": "未通过验收", "未通过": "未通过验收", "不合格": "未通过验收", "不通过": "未通过验收",
    "验收不合格": "未通过验收", "验收不通过": "未通过验收",
    "rejected": "未通过验收", "failed": "未通过验收",
    "治理中": "修复中", "施工中": "修复中", "在建": "修复中", "in_progress": "修复中", "in progress": "修复中",
    "未开工": "未启动", "未治理": "未启动", "not_started": "未启动", "not started": "未启动",
    "反弹": "退化", "degraded": "退化",
}
_VERDICT_ZH = {v: k for k, v in VERDICTS.items()}
#: Which imagery statuses match each verdict, for the per-class agreement.
_MATCHING_STATUS: dict[str, tuple[str, ...]] = {
    "accepted": ("restored",),
    "rejected": ("in_progress", "not_started", "stalled", "degraded"),
    "in_progress": ("in_progress", "stalled"),
    "not_started": ("not_started",),
    "degraded": ("degraded",),
}

#: Name of the sheet verdicts are read from (and written to in the template).
VERDICTS_SHEET = "修复核查"
#: Columns the field team fills in: Chinese header -> field.
VERDICT_HEADERS: dict[str, str] = {
    "核查结论": "verdict",
    "核查人": "inspector",
    "核查日期": "inspected_on",
    "实测修复面积": "restored_m2",
    "备注": "note",
    "照片": "photos",
}
#: Columns a verdicts file must have.
REQUIRED_HEADERS = ("矿山编号", "核查结论", "核查人", "核查日期")
_REF_HEADERS = ("矿山编号", "矿山名称", "修复方向", "影像日期", "影像修复状态", "修复率", "植被覆盖度")
_VALUES_SHEET = "取值"


# --------------------------------------------------------------------------- template out


def write_verdict_template(history: pd.DataFrame, path: str | os.PathLike[str], *,
                           overwrite: bool = False) -> Path:
    """Write the verdicts workbook for field teams: one row per mine, the imagery's latest figures beside.

    Parameters
    ----------
    history : DataFrame
        :meth:`ecopatch.Ledger.mine_history` (the latest row of each mine is shown).
    path : path-like
        The ``.xlsx`` to write (sheet 修复核查, a hidden sheet of allowed
        values, a sheet of instructions); written atomically.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.
    FieldCheckError
        The history is empty: assess the mines first.
    """
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    path = Path(path)
    check_targets([path], overwrite)
    if history is None or len(history) == 0:
        raise FieldCheckError("the ledger has no mine history yet: record an assessment (ecopatch run) before "
                              "writing the verdicts template")
    latest = history.sort_values(["patch_id", "date_after"], kind="stable").groupby("patch_id").tail(1)
    attrs: list[Any] = list(latest["attrs"]) if "attrs" in latest else [{}] * len(latest)
    table = pd.DataFrame({
        "矿山编号": latest["patch_id"].astype(str).to_numpy(),
        "矿山名称": [_name(a) for a in attrs],
        "修复方向": [RESTORATION_DIRECTIONS.get(str(d), d) for d in latest.get("direction", [None] * len(latest))],
        "影像日期": list(latest["date_after"]),
        "影像修复状态": [MINE_STATUS_ZH.get(str(s), s) for s in latest["status"]],
        "修复率": [round(float(v), 3) if pd.notna(v) else None for v in latest["restoration_rate"]],
        "植被覆盖度": [round(float(v), 3) if pd.notna(v) else None for v in latest["fvc_after"]],
    })
    for h in VERDICT_HEADERS:
        table[h] = None

    def write(tmp: Path) -> None:
        wb = Workbook()
        ws = wb.active
        ws.title = VERDICTS_SHEET
        write_sheet(ws, table)
        fill_cols = {h: j for j, h in enumerate(table.columns, start=1) if h in VERDICT_HEADERS}
        for h, j in fill_cols.items():
            cell = ws.cell(row=1, column=j)
            cell.fill = PatternFill("solid", fgColor="FFF2CC")
            cell.font = Font(bold=True, color="C00000" if h in REQUIRED_HEADERS else "000000")
            ws.column_dimensions[get_column_letter(j)].width = 16 if h != "备注" else 30
        vals = wb.create_sheet(_VALUES_SHEET)
        append_row(vals, ["核查结论"])
        for v in VERDICTS:
            append_row(vals, [v])
        vals.sheet_state = "hidden"
        n_rows = max(len(table) + 1, 200)
        dv = DataValidation(type="list", formula1=f"'{_VALUES_SHEET}'!$A$2:$A${len(VERDICTS) + 1}",
                            allow_blank=True, showErrorMessage=True, errorTitle="核查结论",
                            error="请从下拉列表选择：" + " / ".join(VERDICTS))
        dd = DataValidation(type="date", operator="between", formula1="DATE(2000,1,1)",
                            formula2="DATE(2100,12,31)", allow_blank=True, showErrorMessage=True,
                            errorTitle="日期", error="请填写日期，如 2025-05-01")
        ws.add_data_validation(dv)
        ws.add_data_validation(dd)
        col = {h: get_column_letter(j) for h, j in fill_cols.items()}
        dv.add(f"{col['核查结论']}2:{col['核查结论']}{n_rows}")
        dd.add(f"{col['核查日期']}2:{col['核查日期']}{n_rows}")
        for r in range(2, n_rows + 1):
            ws.cell(row=r, column=fill_cols["核查日期"]).number_format = "yyyy-mm-dd"
        comments = {
            "核查结论": "必填：" + " / ".join(VERDICTS),
            "核查人": "必填",
            "核查日期": "必填，日期 YYYY-MM-DD，不晚于今天",
            "实测修复面积": "选填，平方米",
            "照片": "照片文件路径，多个用 ; 分隔",
        }
        for h, text in comments.items():
            ws.cell(row=1, column=fill_cols[h]).comment = Comment(text, "ecopatch")
        notes = wb.create_sheet("说明")
        for line in (
            ("填写说明", "每座矿山一行，只填黄色表头的列；红色表头为必填。不要改动表头和矿山编号。"),
            ("核查结论", " / ".join(VERDICTS)),
            ("影像修复状态", "最近一期遥感监测的结果，供对照；与核查结论不一致时请在备注中说明。"),
            ("日期格式", "YYYY-MM-DD"),
        ):
            append_row(notes, line)
        wb.save(tmp)

    atomic_write(path, write)
    log.info("verdicts template of %d mines: %s", len(table), path)
    return path


def _name(attrs: Any) -> str | None:
    if isinstance(attrs, Mapping):
        for k in ("矿山名称", "name", "mine_name"):
            if attrs.get(k):
                return str(attrs[k])
    return None


# --------------------------------------------------------------------------- verdicts in


def read_verdicts(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a filled verdicts file: ``.xlsx`` (sheet 修复核查), ``.csv`` or ``.gpkg``.

    Parameters
    ----------
    path : path-like
        As :func:`ecopatch.fieldcheck.read_results` reads case results: the
        workbook from :func:`write_verdict_template` (or any sheet whose
        first row has 矿山编号 and 核查结论), a CSV (UTF-8 or GB18030) or a
        GeoPackage (its first layer).

    Returns
    -------
    pandas.DataFrame
        Raw cell values: ``row`` (the row number a user sees), ``patch_id``
        and the fields of :data:`VERDICT_HEADERS`.

    Raises
    ------
    FieldCheckError
        The file cannot be read, or lacks a required column (named).
    """
    path = Path(path)
    if not path.exists():
        raise FieldCheckError(f"verdicts file {path} does not exist")
    suffix = path.suffix.lower()
    try:  # the case results' readers: by cells, within size limits, extra CSV cells counted
        if suffix in (".xlsx", ".xlsm"):
            headers, records, rows, extra = read_xlsx(
                path, sheet=VERDICTS_SHEET, key_headers=("矿山编号", "核查结论"),
                template="the verdicts template (ecopatch mines template)")
        elif suffix in (".csv", ".txt"):
            headers, records, rows, extra = read_csv(path)
        elif suffix == ".gpkg":
            headers, records, rows, extra = read_gpkg(path)
        else:
            raise FieldCheckError(f"{path}: cannot read verdicts from a {suffix or 'suffix-less'} file; use the "
                                  ".xlsx template, or a .csv or .gpkg with the same columns")
    except SpreadsheetError as exc:
        raise FieldCheckError(str(exc)) from exc
    norm = [normal_header(h) for h in headers]
    missing = [h for h in REQUIRED_HEADERS if h not in norm]
    if missing:
        raise FieldCheckError(f"{path}: verdicts table lacks required column(s) {missing} (found {norm}); fill "
                              "in the template from `ecopatch mines template` without changing its headers")
    index = {h: norm.index(h) for h in ("矿山编号", *VERDICT_HEADERS) if h in norm}
    out = []
    for rownum, rec, ext in zip(rows, records, extra):
        j_id = index["矿山编号"]
        d: dict[str, Any] = {"row": rownum, "patch_id": rec[j_id] if j_id < len(rec) else None}
        for h, name in VERDICT_HEADERS.items():
            j = index.get(h)
            d[name] = rec[j] if j is not None and j < len(rec) else None
        d["extra_cells"] = ext
        out.append(d)
    return pd.DataFrame(out, columns=["row", "patch_id", *VERDICT_HEADERS.values(), "extra_cells"])


@dataclass(frozen=True)
class PlannedVerdict:
    """A verdict an accepted row will record."""

    row: int
    patch_id: str
    verdict: str
    verdict_text: str
    inspected_on: _dt.date
    inspector: str
    restored_m2: float | None
    note: str | None
    attachments: tuple[str, ...]
    dedupe_key: str


@dataclass(frozen=True)
class VerdictPlan:
    """Outcome of :func:`validate_verdicts`: the verdicts to record, and the row tables."""

    verdicts: tuple[PlannedVerdict, ...]
    accepted: pd.DataFrame
    rejected: pd.DataFrame
    skipped: pd.DataFrame


@dataclass(frozen=True)
class VerdictImportReport:
    """What :func:`import_verdicts` did.

    Attributes
    ----------
    path : Path
    accepted : DataFrame
        Rows recorded: ``row, patch_id, verdict, verdict_text, inspector, inspected_on, restored_m2``.
    rejected : DataFrame
        Rows refused: ``row, patch_id, reason`` (all reasons, "; "-joined) and the raw values.
    skipped : DataFrame
        Rows not filled in, or imported before: ``row, patch_id, reason``.
    applied : bool
        False when a ``strict`` import refused the whole file.
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
        return for_terminal(f"{self.path.name}: {len(self.accepted)} verdicts accepted (接受), "
                            f"{len(self.rejected)} rejected (退回), {len(self.skipped)} skipped (跳过){state}")

    def __str__(self) -> str:
        lines = [self.headline()]
        for r in self.rejected.to_dict("records"):
            lines.append(for_terminal(f"  row {r['row']} {r['patch_id'] or ''}: {r['reason']}"))
        return "\n".join(lines)


#: Longest text accepted per verdicts field (characters), where it differs from the case results'.
_MAX_CHARS: dict[str, int] = {"patch_id": 200, "verdict": 50, "restored_m2": 50}
_ACCEPTED_COLS = ["row", "patch_id", "verdict", "verdict_text", "inspector", "inspected_on", "restored_m2"]
_REJECTED_COLS = ["row", "patch_id", "reason", "verdict", "inspector", "inspected_on"]
_SKIPPED_COLS = ["row", "patch_id", "reason"]


def validate_verdicts(
    raw: pd.DataFrame,
    mines: Iterable[str],
    *,
    today: _dt.date | None = None,
    known_keys: Callable[[list[str]], set[str]] | None = None,
) -> VerdictPlan:
    """Check every verdicts row; plan what to record.

    Parameters
    ----------
    raw : DataFrame
        From :func:`read_verdicts`.
    mines : iterable of str
        IDs of the mines the ledger knows (those with a history).
    today : datetime.date, optional
        Inspection dates after it are refused (default the local date).
    known_keys : callable, optional
        ``known_keys(keys) -> set`` of the row keys already imported; those
        rows are skipped.

    Returns
    -------
    VerdictPlan

    Notes
    -----
    A row is **skipped** when nothing is filled in, or when the same verdict
    of the same mine was imported before.  It is **rejected**, with every
    reason found, when 矿山编号 is empty or not a mine of the ledger; the
    same mine and date appear in more than one filled row; a cell holds a
    control character, over-long text, a yes/no value, an error value or a
    formula with no saved value, or a CSV record more cells than the header
    (as :func:`ecopatch.fieldcheck.validate_results` refuses them); 核查结论 is empty
    or not one of :data:`VERDICTS` (aliases such as 验收通过 or 不合格 are
    read); 核查人 or 核查日期 is empty; the date cannot be read or is in the
    future; 实测修复面积 is not an area >= 0 m².

    Examples
    --------
    >>> raw = pd.DataFrame([{"row": 2, "patch_id": "M1", "verdict": "验收通过", "inspector": "王工",
    ...                      "inspected_on": "2025-05-01", "restored_m2": None, "note": None, "photos": None},
    ...                     {"row": 3, "patch_id": "M9", "verdict": "合格", "inspector": "",
    ...                      "inspected_on": "2025-05-01", "restored_m2": None, "note": None, "photos": None}])
    >>> plan = validate_verdicts(raw, {"M1"}, today=_dt.date(2025, 6, 1))
    >>> [(v.patch_id, v.verdict) for v in plan.verdicts], list(plan.rejected["reason"])
    ([('M1', 'accepted')], ["矿山编号 'M9' is not a mine of this ledger (no assessment recorded); 核查人 is empty"])
    """
    today = today or _dt.date.today()
    known_mines = {str(m) for m in mines}
    fields = list(VERDICT_HEADERS.values())
    rows = []
    for rec in raw.to_dict("records"):
        t: dict[str, Any] = {k: cell_text(rec.get(k)) for k in ("patch_id", *fields)}
        t["row"] = int(rec["row"])
        t["_raw"] = rec
        rows.append(t)
    seen: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        if r["patch_id"] and any(r[f] for f in fields):
            seen.setdefault((r["patch_id"], r["inspected_on"]), []).append(r["row"])
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    planned: list[tuple[PlannedVerdict, dict[str, Any]]] = []
    for r in rows:
        pid = r["patch_id"]
        if not any(r[f] for f in fields):
            if pid:
                skipped.append({"row": r["row"], "patch_id": pid, "reason": "not filled in (未填写)"})
            continue
        reasons: list[str] = []
        for fld, header in (("patch_id", "矿山编号"), *((f, h) for h, f in VERDICT_HEADERS.items())):
            problem = cell_problem(header, fld, r["_raw"].get(fld), max_chars=_MAX_CHARS.get(fld))
            if problem:
                reasons.append(problem)
        if r["_raw"].get("extra_cells"):
            reasons.append(f"the row has {int(r['_raw']['extra_cells'])} filled cell(s) beyond the header's last "
                           "column: a value holding the separator (a comma) shifted the others; put such values in "
                           "double quotes, or use the .xlsx template")
        if reasons:  # the other checks would only repeat these on garbled values
            rejected.append({"row": r["row"], "patch_id": pid or None, "reason": "; ".join(reasons),
                             "verdict": r["verdict"], "inspector": r["inspector"],
                             "inspected_on": r["inspected_on"]})
            continue
        if not pid:
            reasons.append("矿山编号 is empty")
        elif pid not in known_mines:
            reasons.append(f"矿山编号 {pid!r} is not a mine of this ledger (no assessment recorded)")
        dup = seen.get((pid, r["inspected_on"]), [])
        if pid and len(dup) > 1:
            reasons.append(f"mine {pid} has rows {dup} for the same 核查日期; keep one")
        zh = _VERDICT_ALIASES.get(r["verdict"]) or _VERDICT_ALIASES.get(r["verdict"].lower())
        if not r["verdict"]:
            reasons.append("核查结论 is empty")
        elif zh is None:
            reasons.append(f"核查结论 {r['verdict']!r} is not allowed; use one of {' / '.join(VERDICTS)}")
        if not r["inspector"]:
            reasons.append("核查人 is empty")
        inspected = None
        if not r["inspected_on"]:
            reasons.append("核查日期 is empty")
        else:
            try:
                inspected = parse_date(r["_raw"]["inspected_on"])
            except ValueError as exc:
                reasons.append(f"核查日期: {exc}")
            if inspected is not None and inspected > today:
                reasons.append(f"核查日期 {inspected} is in the future (today is {today})")
        area = None
        if r["restored_m2"]:
            try:
                area = float(r["restored_m2"].replace(",", ""))
            except ValueError:
                area = math.nan
            if not (math.isfinite(area) and area >= 0):
                reasons.append(f"实测修复面积 {r['restored_m2']!r} is not an area in m² (a number >= 0)")
        if reasons or zh is None or inspected is None:
            rejected.append({"row": r["row"], "patch_id": pid or None, "reason": "; ".join(reasons) or "invalid row",
                             "verdict": r["verdict"], "inspector": r["inspector"],
                             "inspected_on": r["inspected_on"]})
            continue
        key = "mineverdict:" + content_key(pid, VERDICTS[zh], inspected, r["inspector"], area, r["note"],
                                           r["photos"])
        pv = PlannedVerdict(r["row"], pid, VERDICTS[zh], r["verdict"], inspected, r["inspector"], area,
                            r["note"] or None, split_photos(r["photos"]), key)
        planned.append((pv, r))
    known = known_keys([p.dedupe_key for p, _ in planned]) if (known_keys and planned) else set()
    out: list[PlannedVerdict] = []
    for p, _ in planned:
        if p.dedupe_key in known:
            skipped.append({"row": p.row, "patch_id": p.patch_id, "reason": "already imported (已导入)"})
            continue
        out.append(p)
        accepted.append({"row": p.row, "patch_id": p.patch_id, "verdict": p.verdict, "verdict_text": p.verdict_text,
                         "inspector": p.inspector, "inspected_on": p.inspected_on, "restored_m2": p.restored_m2})

    def sort(df: pd.DataFrame) -> pd.DataFrame:
        return df.sort_values("row", kind="stable").reset_index(drop=True)

    return VerdictPlan(tuple(out), sort(pd.DataFrame(accepted, columns=_ACCEPTED_COLS)),
                       sort(pd.DataFrame(rejected, columns=_REJECTED_COLS)),
                       sort(pd.DataFrame(skipped, columns=_SKIPPED_COLS)))


# --------------------------------------------------------------------------- agreement


@dataclass(frozen=True)
class AgreementReport:
    """Field verdicts against the imagery (:func:`verdict_agreement`).

    Attributes
    ----------
    table : DataFrame
        One row per verdict: ``patch_id, inspected_on, verdict, verdict_zh,
        imagery_date, days_apart`` (imagery date minus inspection date),
        ``imagery_status, restoration_rate, fvc_after, alerts,
        field_restored, imagery_restored`` (bool; None when not compared),
        ``agree`` (restored or not: the same), ``same_class`` (the verdict
        and the status say the same thing, e.g. 修复中 and ``in_progress``)
        and ``compared`` (False when no usable observation was close
        enough, with the reason in ``note``).
    confusion : DataFrame
        Counts: field (rows: 已验收 restored / 未验收 not restored) against
        imagery (columns: restored / not restored), compared verdicts only.
    n : int
        Verdicts compared.
    agreement : float
        Share of compared verdicts where field and imagery agree on restored
        or not (0-1; NaN when none).
    kappa : float
        Cohen's kappa of that agreement (NaN when undefined).
    class_agreement : float
        Share of compared verdicts where ``same_class`` holds.
    max_days : int
        The largest gap allowed between inspection and imagery.
    """

    table: pd.DataFrame
    confusion: pd.DataFrame
    n: int
    agreement: float
    kappa: float
    class_agreement: float
    max_days: int

    @property
    def disagreements(self) -> pd.DataFrame:
        """The compared verdicts where field and imagery disagree on restored or not."""
        t = self.table
        return t[t["compared"] & ~t["agree"].astype(bool)].reset_index(drop=True)

    def __str__(self) -> str:
        if self.n == 0:
            return (f"no verdict compared with the imagery ({len(self.table)} verdict(s), none within "
                    f"{self.max_days} days of a usable observation)")
        lines = [f"{self.n} verdict(s) compared with the imagery (within {self.max_days} days): agreement "
                 f"{self.agreement:.0%} on restored or not (Cohen's kappa {_fmt(self.kappa)}), "
                 f"{self.class_agreement:.0%} on the status itself"]
        for r in self.disagreements.itertuples(index=False):
            lines.append(f"  {r.patch_id}: field {r.verdict_zh} ({r.inspected_on}) vs imagery "
                         f"{MINE_STATUS_ZH.get(str(r.imagery_status), r.imagery_status)} ({r.imagery_date}, rate "
                         f"{_fmt(r.restoration_rate, pct=True)})")
        return "\n".join(lines)


def _fmt(v: Any, *, pct: bool = False) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(f):
        return "—"
    return f"{f:.0%}" if pct else f"{f:.2f}"


def _as_date(v: Any) -> _dt.date | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, _dt.datetime):
        return v.date()
    if isinstance(v, _dt.date):
        return v
    try:
        return parse_date(v)
    except ValueError:
        return None


def verdict_agreement(verdicts: pd.DataFrame, history: pd.DataFrame, *, max_days: int = 365) -> AgreementReport:
    """Compare field verdicts with the imagery's status of each mine at the nearest date.

    Parameters
    ----------
    verdicts : DataFrame
        ``patch_id``, ``verdict`` (a key of :data:`VERDICTS`' values) and
        ``inspected_on``, e.g. :meth:`ecopatch.Ledger.mine_verdicts`.
    history : DataFrame
        :meth:`ecopatch.Ledger.mine_history`.
    max_days : int
        Largest gap (days) between the inspection and the observation it is
        compared with.

    Returns
    -------
    AgreementReport

    Notes
    -----
    Each verdict is compared with the mine's observation nearest in time to
    the inspection (the earlier one on a tie), among those with enough of
    the mine observed (status not ``insufficient_data``).  已验收 counts as
    restored and every other verdict as not; the imagery counts ``restored``
    as restored.  Cohen's kappa is ``(p_o - p_e) / (1 - p_e)`` of that 2 × 2
    table.

    Examples
    --------
    >>> h = pd.DataFrame({"patch_id": ["a", "b"], "date_after": [_dt.date(2025, 5, 1)] * 2,
    ...                   "status": ["restored", "in_progress"], "restoration_rate": [0.9, 0.4],
    ...                   "fvc_after": [0.6, 0.3], "alerts": ["", ""]})
    >>> v = pd.DataFrame({"patch_id": ["a", "b"], "verdict": ["accepted", "accepted"],
    ...                   "inspected_on": [_dt.date(2025, 6, 1)] * 2})
    >>> r = verdict_agreement(v, h)
    >>> r.n, r.agreement, list(r.disagreements["patch_id"])
    (2, 0.5, ['b'])
    """
    cols = ["patch_id", "inspected_on", "verdict", "verdict_zh", "imagery_date", "days_apart", "imagery_status",
            "restoration_rate", "fvc_after", "alerts", "field_restored", "imagery_restored", "agree", "same_class",
            "compared", "note"]
    h = history.copy() if history is not None else pd.DataFrame(columns=["patch_id", "date_after", "status"])
    h["_date"] = [_as_date(v) for v in h["date_after"]]
    h = h[h["status"] != "insufficient_data"]
    by_mine = {str(k): g for k, g in h.groupby(h["patch_id"].astype(str), sort=False)}
    rows = []
    for v in verdicts.itertuples(index=False):
        pid, key, when = str(v.patch_id), str(v.verdict), _as_date(v.inspected_on)
        rec: dict[str, Any] = {"patch_id": pid, "inspected_on": when, "verdict": key,
                               "verdict_zh": _VERDICT_ZH.get(key, key), "compared": False}
        g = by_mine.get(pid)
        if g is None or g.empty or when is None:
            rec["note"] = "no usable observation of this mine"
            rows.append(rec)
            continue
        gaps = np.array([(d - when).days for d in g["_date"]])
        order = np.lexsort((gaps, np.abs(gaps)))  # nearest, then the earlier
        best = int(order[0])
        if abs(int(gaps[best])) > max_days:
            rec["note"] = f"nearest observation {abs(int(gaps[best]))} days away (more than {max_days})"
            rows.append(rec)
            continue
        o = g.iloc[best]
        status = str(o["status"])
        rec.update(imagery_date=o["_date"], days_apart=int(gaps[best]), imagery_status=status,
                   restoration_rate=o.get("restoration_rate"), fvc_after=o.get("fvc_after"),
                   alerts=o.get("alerts", ""), field_restored=key == "accepted",
                   imagery_restored=status == "restored", compared=True, note="")
        rec["agree"] = rec["field_restored"] == rec["imagery_restored"]
        rec["same_class"] = status in _MATCHING_STATUS.get(key, ())
        rows.append(rec)
    table = pd.DataFrame(rows, columns=cols)
    done = table[table["compared"].astype(bool)]
    labels_f = ["已验收 restored", "未验收 not restored"]
    labels_i = ["restored", "not restored"]
    counts = np.zeros((2, 2), dtype=np.int64)
    for fr, ir in zip(done["field_restored"], done["imagery_restored"]):
        counts[0 if fr else 1, 0 if ir else 1] += 1
    conf = pd.DataFrame(counts, index=labels_f, columns=labels_i)
    n = len(done)
    if n:
        po = float(np.trace(conf.to_numpy())) / n
        pe = float((conf.sum(axis=1).to_numpy() * conf.sum(axis=0).to_numpy()).sum()) / n ** 2
        kappa = (po - pe) / (1 - pe) if pe < 1 else math.nan
        same = float(done["same_class"].astype(bool).mean())
    else:
        po = kappa = same = math.nan
    return AgreementReport(table, conf, n, po, kappa, same, int(max_days))


# --------------------------------------------------------------------------- with a ledger


def export_verdict_template(ledger: Ledger, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write the verdicts workbook of a ledger's mines (:func:`write_verdict_template` of its mine history).

    Returns
    -------
    Path

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.
    FieldCheckError
        The ledger has no mine history yet.
    """
    return write_verdict_template(ledger.mine_history(), path, overwrite=overwrite)


def import_verdicts(
    ledger: Ledger,
    path: str | os.PathLike[str],
    *,
    today: _dt.date | None = None,
    actor: str | None = None,
    strict: bool = False,
) -> VerdictImportReport:
    """Import restoration verdicts of field teams (已验收, 未通过验收, ...) into a ledger, like case results.

    Parameters
    ----------
    ledger : ecopatch.ledger.Ledger
        The ledger whose mines were inspected.
    path : path
        The filled verdicts workbook (sheet 修复核查, from
        :func:`export_verdict_template`), or a CSV / GeoPackage with the
        same Chinese columns (矿山编号, 核查结论, 核查人, 核查日期; 实测修复面积,
        备注, 照片 optional).
    today : datetime.date, optional
        Inspection dates after it are refused; default the local date.
    actor : str, optional
        Who imported (kept in each row's ``source``).
    strict : bool
        Record nothing if any row is rejected.

    Returns
    -------
    VerdictImportReport

    Raises
    ------
    FieldCheckError
        The file is not a verdicts table (wrong sheet, missing column).

    Notes
    -----
    Validation: :func:`validate_verdicts`.  The accepted rows are recorded
    (:meth:`Ledger.record_mine_verdict`) in one transaction of the ledger, in
    its append-only ``mine_verdicts`` table; a verdict imported before is
    skipped, so importing the same file twice adds nothing.
    """
    path = Path(path)
    raw = read_verdicts(path)
    with ledger.transaction(f"import mine verdicts {path.name}") as led:
        plan = validate_verdicts(raw, led.mine_ids(), today=today or _dt.date.today(),
                                 known_keys=led.known_verdict_keys)
        applied = not (strict and len(plan.rejected))
        if applied:
            for v in plan.verdicts:
                led.record_mine_verdict(
                    v.patch_id, v.verdict, inspected_on=v.inspected_on, inspector=v.inspector,
                    verdict_text=v.verdict_text, restored_m2=v.restored_m2, note=v.note,
                    attachments=v.attachments, dedupe_key=v.dedupe_key,
                    source=f"import_mine_verdicts:{path.name}#row{v.row}" + (f" by {actor}" if actor else ""),
                )
    report = VerdictImportReport(path, plan.accepted, plan.rejected, plan.skipped, applied)
    log.info("ledger %s: %s", ledger.path, report.headline())
    return report
