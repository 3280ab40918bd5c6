"""The mine card (一矿一卡): before/after chips, the FVC map and the figures of one mine."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ecopatch import vocabulary as V
from ecopatch.errors import InputDataError, MissingCRSError
from ecopatch.geo.units import m2_to_mu
from ecopatch.outputs.fonts import FontSetup, font_context
from ecopatch.outputs.maps import frame as FR
from ecopatch.outputs.maps import furniture as FU
from ecopatch.outputs.maps import style as ST
from ecopatch.vocabulary import RESTORATION_DIRECTIONS

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd
    from matplotlib.figure import Figure

    from ecopatch.compute.cover import CoverParams
    from ecopatch.raster.scene import Scene

log = logging.getLogger(__name__)

_FVC_BANDS = ("red", "green", "blue", "nir", "swir1")

#: Row labels of the card's tables: key -> (zh, en).
_ROWS: dict[str, tuple[str, str]] = {
    "id": ("矿山编号", "Mine ID"),
    "name": ("矿山名称", "Name"),
    "county": ("所在区县", "County / district"),
    "unit": ("责任单位", "Responsible unit"),
    "plan": ("计划完成年份", "Planned completion"),
    "direction": ("修复方向", "Restoration direction"),
    "dates": ("监测时相", "Dates compared"),
    "area": ("矿山面积", "Mine area"),
    "damaged": ("受损面积（前时相）", "Damaged (before)"),
    "restored": ("已修复面积", "Restored"),
    "still_bare": ("未修复面积", "Still bare"),
    "rate": ("修复率", "Restoration rate"),
    "fvc": ("植被覆盖度 FVC（前 → 后）", "FVC (before → after)"),
    "valid": ("有效观测比例", "Observed share"),
    "degraded": ("退化面积（植被损失）", "Vegetation lost"),
    "alerts": ("预警", "Alerts"),
    "reference": ("基准影像", "Reference scene"),
    "status": ("修复状态", "Status"),
}
_DIRECTION_EN = {"forest": "forest", "shrub": "shrub", "grass": "grass", "cropland": "cropland",
                 "natural": "left natural"}


def _lab(key: str, lang: str) -> str:
    return _ROWS[key][0 if lang == "zh" else 1]


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _area(v: Any, lang: str) -> str:
    m2 = _num(v)
    if not math.isfinite(m2):
        return "—"
    mu = float(m2_to_mu(m2))
    return f"{m2:,.0f} m²（{mu:,.2f} 亩）" if lang == "zh" else f"{m2:,.0f} m² ({mu:,.2f} mu)"


def _pct(v: Any) -> str:
    f = _num(v)
    return f"{f:.1%}" if math.isfinite(f) else "—"


def _get(row: Any, *keys: str) -> Any:
    for k in keys:
        if k in row.index:
            v = row[k]
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                return v
    return None


def find_mine(mine: Any, assessment: gpd.GeoDataFrame) -> pd.Series:
    """The assessment row of ``mine`` (a patch ID, or a row given as is)."""
    import pandas as pd

    if isinstance(mine, pd.Series):
        return mine
    if "patch_id" not in assessment.columns:
        raise InputDataError("assessment has no 'patch_id' column; pass the table from assess_restoration")
    hit = assessment[assessment["patch_id"].astype(str) == str(mine)]
    if hit.empty:
        ids = list(assessment["patch_id"].astype(str))
        raise InputDataError(f"no mine {mine!r} in the assessment; its mines are {ids[:12]}"
                             + (" ..." if len(ids) > 12 else ""))
    return hit.iloc[0]


def _direction_text(row: pd.Series, lang: str) -> str:
    key = _get(row, "direction")
    if lang == "zh":
        return str(_get(row, "修复方向") or RESTORATION_DIRECTIONS.get(str(key), key) or "—")
    return _DIRECTION_EN.get(str(key), str(key or "—"))


def card_rows(row: pd.Series, fs: FontSetup) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The card's two tables as (label, value) rows: identity, and restoration figures."""
    L = fs.lang
    pid = str(_get(row, "patch_id", "矿山编号") or "—")
    ident = [(_lab("id", L), fs.text(pid, "—"))]
    for key, cols in (("name", ("矿山名称", "name", "mine_name")), ("county", ("所在区县", "county")),
                      ("unit", ("责任单位", "responsible_unit")), ("plan", ("计划完成年份", "planned_year"))):
        v = _get(row, *cols)
        if v is not None:
            ident.append((_lab(key, L), fs.text(v, "—")))
    ident.append((_lab("direction", L), fs.text(_direction_text(row, L), "—")))
    db, da = _get(row, "date_before"), _get(row, "date_after")
    ident.append((_lab("dates", L), f"{db or '—'} → {da or '—'}"))
    ref = _get(row, "reference_scene")
    if ref is not None:
        ident.append((_lab("reference", L), fs.text(_short(str(ref)), "—")))
    fb, fa = _num(_get(row, "fvc_before")), _num(_get(row, "fvc_after"))
    fvc = f"{fb:.2f} → {fa:.2f}" if math.isfinite(fb) and math.isfinite(fa) else "—"
    status = str(_get(row, "status") or "")
    figures = [
        (_lab("area", L), _area(_get(row, "area_m2"), L)),
        (_lab("damaged", L), _area(_get(row, "damaged_m2"), L)),
        (_lab("restored", L), _area(_get(row, "restored_m2"), L)),
        (_lab("still_bare", L), _area(_get(row, "still_bare_m2"), L)),
        (_lab("rate", L), _pct(_get(row, "restoration_rate"))),
        (_lab("fvc", L), fvc),
        (_lab("valid", L), _pct(_get(row, "valid_fraction"))),
    ]
    if _get(row, "degraded_m2") is not None:
        figures.append((_lab("degraded", L), _area(_get(row, "degraded_m2"), L)))
    alerts = _get(row, "alerts")
    if alerts is not None:
        figures.append((_lab("alerts", L), _alerts(str(alerts), L)))
    figures.append((_lab("status", L), V.label("status", status, L) if status else "—"))
    return ident, figures


def _short(scene_id: str) -> str:
    """A long product name shortened for a table cell (mission, level, sensing date)."""
    parts = scene_id.split("_")
    return "_".join(parts[:3]) if len(scene_id) > 32 and len(parts) >= 3 else scene_id


def _alerts(value: str, lang: str) -> str:
    keys = [k for k in value.split(",") if k]
    if not keys:
        return "无" if lang == "zh" else "none"
    words = V.ALERT_ZH if lang == "zh" else V.ALERT_EN
    return ("、" if lang == "zh" else ", ").join(words.get(k, k) for k in keys)


def _draw_table(ax: Any, rows: list[tuple[str, str]], fs: FontSetup, *, status: str | None = None,
                heading: str = "") -> Any:
    ax.set_axis_off()
    tab = ax.table(cellText=[[a, b] for a, b in rows], colWidths=[0.38, 0.62], loc="upper center",
                   cellLoc="left")
    tab.auto_set_font_size(False)
    tab.set_fontsize(8.5)
    tab.scale(1.0, 1.3)
    for (r, c), cell in tab.get_celld().items():
        cell.set_edgecolor("#d0d0d0")
        cell.set_linewidth(0.6)
        cell.get_text().set_fontfamily(list(fs.family))
        if c == 0:
            cell.set_facecolor("#f2f5f9")
            cell.get_text().set_color("#333333")
        if status and c == 1 and r == len(rows) - 1:
            cell.set_facecolor(ST.category_colour("status", status))
            cell.get_text().set_fontweight(fs.bold)
            cell.get_text().set_color("white" if status in ("restored", "not_started", "degraded", "stalled")
                                      else "black")
    if heading:
        ax.set_title(heading, fontsize=9.5, loc="left", fontweight=fs.bold)
    return tab


def mine_card(
    mine: str | pd.Series,
    assessment: gpd.GeoDataFrame,
    before: Scene,
    after: Scene,
    *,
    lang: str = "zh",
    composite: str = "true",
    margin_m: float = 60.0,
    max_pixels: int = 160_000,
    cover: CoverParams | None = None,
    pct: tuple[float, float] = (2.0, 98.0),
    figsize: tuple[float, float] | None = None,
    history: pd.DataFrame | None = None,
) -> Figure:
    """One mine, one card (一矿一卡): before/after imagery, its FVC map and its restoration figures.

    Parameters
    ----------
    mine : str or pandas.Series
        The mine's ``patch_id`` (矿山编号), or its row of ``assessment``.
    assessment : geopandas.GeoDataFrame
        The table from :func:`ecopatch.assess_restoration` (any CRS).
    before, after : Scene
        The imagery the assessment compared (read decimated around the mine).
    lang : {"zh", "en"}
        Label language (see :func:`ecopatch.outputs.maps.change_map`).
    composite : {"true", "false"}
        Colour composite of the chips.
    margin_m : float
        Ground margin around the mine, m (at least 25 % of its size).
    max_pixels : int
        Display pixels per panel.
    cover : CoverParams, optional
        Cover thresholds for the FVC map; FVC end-members are estimated
        from the after scene around the mine, as in the assessment.
    pct : tuple of float
        Percentile clip of the colour stretch (shared by both dates).
    figsize : tuple of float, optional
        Inches (default 12.5 × 8.2, or 12.5 × 11 with a history).
    history : pandas.DataFrame, optional
        :meth:`ecopatch.Ledger.mine_history` (all mines or this one): the
        card then ends with the mine's trajectory (一矿一档): FVC,
        restoration rate and restored area at each date since its
        reference, the plan's target year and rate when given, alerts.

    Returns
    -------
    matplotlib.figure.Figure
        Panels: before, after, FVC (after date, 0-1) with the mine outlined in
        its status colour; below, the mine's attributes and figures (areas in
        m² and mu, restoration rate, FVC before → after, observed share,
        status, alerts); with a history, its trajectory
        (:func:`ecopatch.outputs.maps.mine_trajectory`).

    Raises
    ------
    InputDataError
        If ``mine`` is not in ``assessment``.
    """
    import geopandas as gpd

    from ecopatch.analyses.restoration import prepare_cover_params
    from ecopatch.compute.cover import cover_fractions

    row = find_mine(mine, assessment)
    traj = None
    if history is not None:
        from ecopatch.analyses.trajectory import plan_of, trajectory

        pid_h = str(_get(row, "patch_id", "矿山编号"))
        if (history["patch_id"].astype(str) == pid_h).any():
            traj = trajectory(history, pid_h)
            plan_year, plan_rate = plan_of(history, pid_h)
    if figsize is None:
        figsize = (12.5, 11.0) if traj is not None else (12.5, 8.2)
    with font_context(lang, stacklevel=5) as fs:
        L = fs.lang
        map_crs = before.grid.crs if not before.grid.is_geographic else after.grid.crs
        if assessment.crs is None:
            raise MissingCRSError("assessment has no CRS; set one before drawing a mine card")
        g = gpd.GeoDataFrame(geometry=[row.geometry], crs=assessment.crs).to_crs(map_crs)
        bb = tuple(g.total_bounds)
        mx = FR.ground_m_per_unit(map_crs, (bb[0] + bb[2]) / 2, (bb[1] + bb[3]) / 2)
        size_m = max(bb[2] - bb[0], bb[3] - bb[1]) * mx
        min_res = min(FU.native_res_m(before), FU.native_res_m(after)) / 3
        frame = FR.MapFrame.around(bb, map_crs, margin_m=max(margin_m, 0.25 * size_m), max_pixels=max_pixels,
                                  min_res_m=min_res, square=True)

        cb, kb = FR.composite_bands(before, composite)
        ca, ka = FR.composite_bands(after, composite)
        lb = FR.render_on_frame(before, frame, cb, max_pixels=max_pixels)
        la = FR.render_on_frame(after, frame, [*{*ca, *_FVC_BANDS}], max_pixels=max_pixels)
        if kb != "asis" and ka != "asis" and cb == ca:
            lims = [FR.stretch_limits([lb[b], la[b]], pct) for b in cb]
            img_b, img_a = FR.rgba_image(lb, cb, kb, lims), FR.rgba_image(la, ca, ka, lims)
        else:
            img_b = FR.rgba_image(lb, cb, kb, [FR.stretch_limits([lb[b]], pct) for b in cb])
            img_a = FR.rgba_image(la, ca, ka, [FR.stretch_limits([la[b]], pct) for b in ca])
        if la.covered:
            params = prepare_cover_params(after, cover)
            fvc = cover_fractions(dict(la.bands), params, source=after.source)["fvc"]
        else:
            fvc = np.full(frame.grid.shape, np.nan, np.float32)

        status = str(_get(row, "status") or "")
        colour = ST.category_colour("status", status) if status else "#ff2a6d"
        fig = FR.new_figure(figsize=figsize, layout="constrained")
        if traj is not None:
            gs = fig.add_gridspec(4, 3, height_ratios=[1.0, 0.05, 0.62, 0.5])
        else:
            gs = fig.add_gridspec(3, 3, height_ratios=[1.0, 0.05, 0.62])
        axs = [fig.add_subplot(gs[0, i]) for i in range(3)]
        for ax in axs[1:]:
            ax.sharex(axs[0])
            ax.sharey(axs[0])
        for i, (ax, img, lay, scene, k, which) in enumerate(
            ((axs[0], img_b, lb, before, kb, "before"), (axs[1], img_a, la, after, ka, "after"))
        ):
            FU.map_panel(ax, frame, fs, img, g, [colour], None, first=i == 0, linewidth=2.0)
            ax.set_title(f"{V.map_word(which, L)} {ST.date_label(scene, L)}\n{ST.sensor_label(scene, L)} · "
                         f"{V.map_word(k, L)}", fontsize=9)
            if not lay.covered:
                FU.no_imagery(ax, L)
        ax = axs[2]
        FU.nodata_background(ax, frame)
        im = ax.imshow(np.ma.masked_invalid(fvc), extent=frame.extent, cmap="YlGn", vmin=0, vmax=1,
                       interpolation="nearest", zorder=1)
        im.set_gid(ST.GID_IMAGE)
        FU.draw_outlines(ax, g.geometry.to_numpy(), [colour], linewidth=2.0)
        FU.setup_map_axes(ax, frame, fs, ylabel=False)
        FU.map_furniture(ax, frame, fs, g)
        ax.set_title(f"{V.map_word('fvc', L)}\n{V.map_word('after', L)} {ST.date_label(after, L)}", fontsize=9)
        cbar = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02)
        cbar.set_label("FVC (0–1)", fontsize=8)
        cbar.ax.tick_params(labelsize=7)

        ident, figures = card_rows(row, fs)
        for ax in axs[1:]:
            ax.tick_params(labelleft=False)
        sub = gs[2, :].subgridspec(1, 2, wspace=0.08)
        _draw_table(fig.add_subplot(sub[0, 0]), ident, fs,
                    heading="基本信息" if L == "zh" else "Mine")
        _draw_table(fig.add_subplot(sub[0, 1]), figures, fs, status=status or None,
                    heading="修复成效" if L == "zh" else "Restoration")
        if traj is not None:
            from ecopatch.outputs.maps._trajectory import draw_trajectory

            draw_trajectory(fig.add_subplot(gs[3, :]), traj, fs, target_year=plan_year, target_rate=plan_rate)

        pid = str(_get(row, "patch_id", "矿山编号") or "")
        name = fs.text(_get(row, "矿山名称", "name", "mine_name") or "", "")
        head = f"{V.map_word('card', L)} · {fs.text(pid, '')} {name}".strip()
        fig.suptitle(head, fontsize=13, fontweight=fs.bold)
        lab = V.map_word("mine", L) + (f"（{V.label('status', status, L)}）" if status and L == "zh"
                                   else f" ({V.label('status', status, L)})" if status else "")
        lax = fig.add_subplot(gs[1, :])
        lax.set_axis_off()
        lax.legend(handles=[FU.outline_handle(colour, lab, linewidth=2.0), FU.nodata_handle(L)],
                   loc="center left", ncols=2, fontsize=8.5, frameon=False)
        lax.text(1.0, 0.5, FU.crs_note(frame, L), transform=lax.transAxes, ha="right", va="center",
                 fontsize=7, color="#444444")
        FU.finish(fig, fs)
    return fig
