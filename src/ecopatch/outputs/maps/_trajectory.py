"""A mine's trajectory (一矿一档): FVC, restoration rate and restored area over time, against its plan."""

from __future__ import annotations

import datetime as _dt
import math
from typing import TYPE_CHECKING, Any

from ecopatch import vocabulary as V
from ecopatch.outputs.fonts import FontSetup, font_context
from ecopatch.outputs.maps import frame as FR
from ecopatch.outputs.maps import furniture as FU
from ecopatch.outputs.maps import style as ST

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: ``gid`` of the trajectory's artists (tests and styling find them by it).
GID_FVC = "ecopatch-trajectory-fvc"
GID_RATE = "ecopatch-trajectory-rate"
GID_RESTORED = "ecopatch-trajectory-restored"
GID_TARGET_RATE = "ecopatch-trajectory-target-rate"
GID_TARGET_YEAR = "ecopatch-trajectory-target-year"
GID_ALERT = "ecopatch-trajectory-alert"

_T: dict[str, tuple[str, str]] = {
    "title": ("修复进程（一矿一档）", "Restoration over time"),
    "fvc": ("植被覆盖度 FVC", "Vegetation cover (FVC)"),
    "rate": ("修复率", "Restoration rate"),
    "restored": ("已修复面积（平方米）", "Restored area (m²)"),
    "share": ("比例（0–1）", "Share (0–1)"),
    "target_rate": ("目标修复率 {v:.0%}", "Target rate {v:.0%}"),
    "target_year": ("计划完成 {v}年", "Plan: done by {v}"),
    "reference": ("基准（修复前）", "Reference"),
    "alert": ("预警（退化 / 反弹）", "Alert (loss / rebound)"),
    "date": ("监测日期", "Date"),
}


def _t(key: str, lang: str, **kw: Any) -> str:
    zh, en = _T[key]
    return (zh if lang == "zh" else en).format(**kw)


def draw_trajectory(ax: Axes, traj: pd.DataFrame, fs: FontSetup, *, target_year: int | None = None,
                    target_rate: float | None = None) -> Axes:
    """Draw a trajectory (from :func:`ecopatch.analyses.trajectory.trajectory`) into ``ax``; returns the area axes.

    Left axis, 0-1: FVC (green) and restoration rate (blue), with the
    plan's target rate (dashed) when given.  Right axis: restored area, m²
    (bars).  A vertical dashed line marks the end of the plan's target
    year; red rings mark observations with a loss or rebound alert; each
    observation's status is written under it in its status colour.
    """
    import matplotlib.dates as mdates
    import numpy as np

    L = fs.lang
    dates = list(traj["date"])
    x = mdates.date2num(dates)
    span = max(1.0, float(x.max() - x.min())) if len(x) else 1.0
    ax2 = ax.twinx()
    obs = ~traj["is_reference"].to_numpy(dtype=bool)
    width = min(45.0, max(8.0, span / max(8, 6 * len(x))))
    bars = ax2.bar(x[obs], traj.loc[obs, "restored_m2"].to_numpy(dtype=float), width=width, color="#9ecae1",
                   alpha=0.55, zorder=1, label=_t("restored", L))
    for patch in bars.patches:
        patch.set_gid(GID_RESTORED)
    ax2.set_ylabel(_t("restored", L), fontsize=8)
    ax2.tick_params(labelsize=7)
    top = float(np.nanmax(traj["restored_m2"].to_numpy(dtype=float))) if obs.any() else 0.0
    ax2.set_ylim(0, max(1.0, top) * 1.35)
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    (lf,) = ax.plot(x, traj["fvc"].to_numpy(dtype=float), "-o", color="#1a9850", lw=2, ms=5, label=_t("fvc", L))
    lf.set_gid(GID_FVC)
    (lr,) = ax.plot(x, traj["restoration_rate"].to_numpy(dtype=float), "-s", color="#2166ac", lw=2, ms=5,
                    label=_t("rate", L))
    lr.set_gid(GID_RATE)
    handles = [lf, lr, bars]
    ref = traj["is_reference"].to_numpy(dtype=bool)
    if ref.any():
        ax.plot(x[ref], traj.loc[ref, "fvc"].to_numpy(dtype=float), "o", mfc="white", mec="#1a9850", ms=7, zorder=5)
        ax.annotate(_t("reference", L), (x[ref][0], 0.0), xytext=(0, -22), textcoords="offset points",
                    ha="center", va="top", fontsize=7, color="#444444")
    alerted = np.array([bool(str(a)) and any(k in str(a) for k in ("degradation", "rebound"))
                        for a in traj["alerts"]])
    if alerted.any():
        sc = ax.scatter(x[alerted], traj.loc[alerted, "fvc"].to_numpy(dtype=float), s=160, facecolors="none",
                        edgecolors="#d7191c", linewidths=2, zorder=6, label=_t("alert", L))
        sc.set_gid(GID_ALERT)
        handles.append(sc)
    lo, hi = float(x.min()) - 0.06 * span, float(x.max()) + 0.06 * span
    if target_rate is not None and math.isfinite(target_rate):
        ln = ax.axhline(target_rate, color="#2166ac", ls="--", lw=1.2, label=_t("target_rate", L, v=target_rate))
        ln.set_gid(GID_TARGET_RATE)
        handles.append(ln)
    if target_year is not None:
        xt = mdates.date2num(_dt.date(int(target_year), 12, 31))
        lv = ax.axvline(xt, color="#555555", ls="--", lw=1.2, label=_t("target_year", L, v=int(target_year)))
        lv.set_gid(GID_TARGET_YEAR)
        handles.append(lv)
        lo, hi = min(lo, xt - 0.03 * span), max(hi, xt + 0.03 * span)
    for xi, (_, r) in zip(x, traj.iterrows()):
        if r["is_reference"]:
            continue
        st = str(r["status"])
        ax.annotate(V.label("status", st, L), (xi, 0.0), xytext=(0, -22), textcoords="offset points",
                    ha="center", va="top", fontsize=7, color=ST.category_colour("status", st), fontweight=fs.bold)
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(_t("share", L), fontsize=8)
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=8))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
    ax.tick_params(labelsize=7)
    ax.grid(True, axis="y", color="#e0e0e0", lw=0.6)
    ax.legend(handles=handles, loc="upper left", fontsize=7.5, ncols=min(3, len(handles)), frameon=False)
    ax.set_title(_t("title", L), fontsize=9.5, loc="left", fontweight=fs.bold)
    return ax2


def mine_trajectory(
    history: pd.DataFrame,
    mine: str,
    *,
    lang: str = "zh",
    figsize: tuple[float, float] = (9.0, 3.6),
) -> Figure:
    """One mine's trajectory (一矿一档) as a figure: FVC, restoration rate and restored area over time.

    Parameters
    ----------
    history : pandas.DataFrame
        :meth:`ecopatch.Ledger.mine_history` (all mines, or this one).
    mine : str
        The mine's ``patch_id`` (矿山编号).
    lang : {"zh", "en"}
        Label language.
    figsize : tuple of float
        Inches.

    Returns
    -------
    matplotlib.figure.Figure
        Against the mine's latest reference: FVC and restoration rate (0-1,
        left axis) from the reference date on, restored area (m², bars, right
        axis), the plan's target rate and target year when the history has
        them, alerts ringed in red, each date's status under it.

    Raises
    ------
    InputDataError
        The mine has no history.
    """
    from ecopatch.analyses.trajectory import plan_of, trajectory

    traj = trajectory(history, mine)
    year, rate = plan_of(history, mine)
    with font_context(lang, stacklevel=5) as fs:
        fig = FR.new_figure(figsize=figsize, layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        draw_trajectory(ax, traj, fs, target_year=year, target_rate=rate)
        fig.suptitle(f"{mine}", fontsize=11, fontweight=fs.bold)
        FU.finish(fig, fs)
    return fig
