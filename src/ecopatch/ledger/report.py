"""The monthly ledger report (月复盘) and the case table with Chinese headers.

:func:`write_ledger_report` writes what :meth:`ecopatch.ledger.Ledger.export_report`
promises: a workbook of all cases (with their red/yellow/green code), the
summary, the detection precision, the events and the mine history, and a CSV
of the cases.  :func:`package_table` is the case table with Chinese headers
that the report and the field packages (:mod:`ecopatch.fieldcheck`) share.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ecopatch.errors import OutputError, describe_os_error
from ecopatch.ledger.files import atomic_write, check_targets, write_sheet
from ecopatch.vector.tables import write_csv
from ecopatch.vocabulary import ACTIVITY_TYPES, CHANGE_TYPE_ZH, ZONE_ZH

__all__ = ["PACKAGE_HEADERS", "package_table", "write_ledger_report"]

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
    check_targets(paths.values(), overwrite)
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
        write_sheet(ws, base)
        write_sheet(wb.create_sheet("汇总"), summ)
        write_sheet(wb.create_sheet("核查精度"), precision)
        write_sheet(wb.create_sheet("事件记录"), ev)
        write_sheet(
            wb.create_sheet("矿山修复"),
            mines.assign(
                attrs=[json.dumps(a, ensure_ascii=False, default=str) for a in mines["attrs"]]
            )
            if "attrs" in mines
            else mines,
        )
        wb.save(p)

    atomic_write(paths["csv"], lambda p: write_csv(base, p))
    atomic_write(paths["xlsx"], write_xlsx)
    return paths
