"""Overview map: every mine, reserve and case on one map, coloured by status."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ecopatch import vocabulary as V
from ecopatch.errors import ConfigError, InputDataError
from ecopatch.geo.geodesy import as_crs
from ecopatch.outputs.fonts import FontSetup, font_context
from ecopatch.outputs.maps import frame as FR
from ecopatch.outputs.maps import furniture as FU
from ecopatch.outputs.maps import style as ST

if TYPE_CHECKING:
    import geopandas as gpd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from pyproj import CRS

    from ecopatch.raster.scene import Scene

log = logging.getLogger(__name__)

CASES_AS = ("auto", "points", "outlines")
GID_CASES = "ecopatch-cases"
GID_MINES = "ecopatch-mines"
GID_RESERVES = "ecopatch-reserves"
_RESERVE_EDGE = "#014636"
_MINE_PLAIN = "#6a3d9a"


def _map_crs(crs: Any, background: Scene | None, layers: list[gpd.GeoDataFrame]) -> CRS:
    if crs is not None:
        return as_crs(crs)
    if background is not None and not background.grid.is_geographic:
        return background.grid.crs
    for g in layers:
        if g.crs is not None and not as_crs(g.crs).is_geographic:
            return as_crs(g.crs)
    for g in layers:
        if g.crs is not None and len(g):
            utm = g.estimate_utm_crs()
            log.info("overview map drawn in %s (estimated from the layers' extent)", utm.name)
            return as_crs(utm)
    if background is not None:
        return background.grid.crs
    raise InputDataError("cannot tell the map's CRS: the layers have no CRS; pass crs=...")


def _header(text: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(visible=False, label=text)


def overview_map(
    mines: gpd.GeoDataFrame | None = None,
    reserves: gpd.GeoDataFrame | None = None,
    cases: gpd.GeoDataFrame | None = None,
    *,
    lang: str = "zh",
    background: Scene | None = None,
    crs: Any = None,
    bounds: tuple[float, float, float, float] | None = None,
    cases_as: str = "auto",
    color_cases_by: str = "auto",
    label_mines: bool = True,
    label_reserves: bool = True,
    composite: str = "true",
    max_pixels: int = 400_000,
    pct: tuple[float, float] = (2.0, 98.0),
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """All mines, reserves and cases on one map, coloured by status.

    Parameters
    ----------
    mines : geopandas.GeoDataFrame, optional
        Mine polygons; filled by restoration status when they carry a
        ``status`` column (the table of :func:`ecopatch.assess_restoration`).
    reserves : geopandas.GeoDataFrame, optional
        Reserve functional-zone polygons (``功能分区`` / ``zone_name`` /
        ``zone``), shaded by zone and labelled with ``保护地名称`` /
        ``reserve_name``.
    cases : geopandas.GeoDataFrame, optional
        Ledger cases (:meth:`ecopatch.Ledger.cases`, coloured by their
        red/yellow/green ``colour``) or suspect patches
        (:func:`ecopatch.detect_changes`, coloured by ``change_type``).
    lang : {"zh", "en"}
        Label language.
    background : Scene, optional
        Imagery under the layers (true colour, read decimated).
    crs : CRS-like, optional
        Map CRS (and CRS of ``bounds``).  Default: the background's, else the
        first projected layer's, else the UTM zone of the layers.
    bounds : tuple of float, optional
        ``(left, bottom, right, top)`` in ``crs``; default all layers.
    cases_as : {"auto", "points", "outlines"}
        Cases as points (at a point on each patch) or outlines; "auto" uses
        points when patches are small at the map's scale.
    color_cases_by : {"auto", "colour", "change_type", "status"}
        Column colouring the cases (see :func:`ecopatch.outputs.maps.change_map`).
    label_mines, label_reserves : bool
        Write mine IDs and reserve names on the map.
    composite : {"true", "false"}
        Colour composite of the background.
    max_pixels : int
        Display pixels of the background.
    pct : tuple of float
        Percentile clip of the background stretch.
    title : str, optional
        Default "矿山与保护地监管总览图" / "Overview of mines, reserves and cases".
    figsize : tuple of float, optional
        Inches (ignored with ``ax``); default 11.5 wide, as high as the
        area's shape needs.
    ax : matplotlib Axes, optional
        Draw into this axes.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InputDataError
        Nothing to draw, or a layer without CRS.
    ConfigError
        Bad ``cases_as`` or ``color_cases_by``.
    """
    if cases_as not in CASES_AS:
        raise ConfigError(f"cases_as={cases_as!r}; use one of {list(CASES_AS)}")
    layers = [g for g in (mines, reserves, cases) if g is not None]
    if not layers and background is None:
        raise InputDataError("overview_map needs mines, reserves, cases or a background scene")
    with font_context(lang, stacklevel=5) as fs:
        L = fs.lang
        map_crs = _map_crs(crs, background, layers)
        if bounds is None:
            bb = FR.layers_bounds(layers, map_crs)
            if bb is None:
                if background is None:
                    raise InputDataError("the layers are empty and there is no background to show")
                bb = FR.scene_bounds_in(background, map_crs)
                margin = 0.0
            else:
                mx = FR.ground_m_per_unit(map_crs, (bb[0] + bb[2]) / 2, (bb[1] + bb[3]) / 2)
                margin = max(100.0, 0.05 * max(bb[2] - bb[0], bb[3] - bb[1]) * mx)
        else:
            bb, margin = bounds, 0.0
        frame = FR.MapFrame.around(bb, map_crs, margin_m=margin, max_pixels=max_pixels)

        if ax is None:
            if figsize is None:
                rows, cols = frame.grid.shape
                figsize = (11.5, min(max((11.5 - 3.0) * rows / cols + 1.5, 5.0), 12.0))
            fig: Figure = FR.new_figure(figsize=figsize, layout="constrained")
            ax = fig.add_subplot()
            own = True
        else:
            fig = cast("Figure", ax.figure)  # a SubFigure's axes draw on it as well
            own = False
        handles: list[Any] = []
        if background is not None:
            bands, kind = FR.composite_bands(background, composite)
            lay = FR.render_on_frame(background, frame, bands, max_pixels=max_pixels)
            img = FR.rgba_image(lay, bands, kind, [FR.stretch_limits([lay[b]], pct) for b in bands])
            img[..., :3] = 0.25 + 0.75 * img[..., :3]  # faded, so the layers stand out
            FU.nodata_background(ax, frame)
            im = ax.imshow(img, extent=frame.extent, interpolation="nearest", zorder=1)
            im.set_gid(ST.GID_IMAGE)
        else:
            ax.set_facecolor("#f6f6f1")
        if reserves is not None and len(reserves):
            handles += _draw_reserves(ax, FR.to_frame(reserves, frame, "reserves"), fs, label_reserves,
                                      alpha=0.3 if background is not None else 0.45)
        if mines is not None and len(mines):
            handles += _draw_mines(ax, FR.to_frame(mines, frame, "mines"), frame, fs, label_mines)
        if cases is not None and len(cases):
            handles += _draw_cases(ax, FR.to_frame(cases, frame, "cases"), frame, fs, cases_as, color_cases_by)
        if background is not None:
            handles.append(FU.nodata_handle(L))
        FU.setup_map_axes(ax, frame, fs)
        geoms = np.concatenate([FR.to_frame(g, frame, "layer").geometry.to_numpy() for g in layers]) if layers else None
        FU.add_scale_bar(ax, frame, fs, loc=FU.pick_corner(frame, geoms, ("lower left", "lower right")),
                        fraction=0.2)
        FU.add_north_arrow(ax, frame, fs, loc=FU.pick_corner(frame, geoms, ("upper right", "upper left")))
        if own:
            leg = fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False,
                             handlelength=1.6, borderaxespad=0.5)
        else:
            leg = ax.legend(handles=handles, loc="upper left", fontsize=7, framealpha=0.85)
        for h, t in zip(leg.legend_handles, leg.get_texts()):
            if h is not None and not h.get_visible():
                t.set_fontweight(fs.bold)
        head = title or V.map_word("overview", L)
        counts = _counts_line(mines, reserves, cases, L)
        if own:
            fig.suptitle(head + ("\n" + counts if counts else ""), fontsize=12, fontweight=fs.bold)
            fig.text(0.995, 0.004, FU.crs_note(frame, L), ha="right", va="bottom", fontsize=6.5, color="#444444")
        else:
            ax.set_title(head, fontsize=10)
        FU.finish(fig, fs)
    return fig


def _counts_line(mines: Any, reserves: Any, cases: Any, lang: str) -> str:
    parts = []
    zh = lang == "zh"
    if mines is not None:
        parts.append(f"矿山 {len(mines)} 座" if zh else f"{len(mines)} mines")
    if reserves is not None:
        col = ST.first_column(reserves, ("保护地名称", "reserve_name", "name", "保护地编号"))
        n = reserves[col].nunique() if col else len(reserves)
        parts.append(f"保护地 {n} 处" if zh else f"{n} reserves")
    if cases is not None:
        word = "案件" if "case_id" in cases.columns else "图斑"
        parts.append(f"{word} {len(cases)} 个" if zh else
                     f"{len(cases)} {'cases' if word == '案件' else 'patches'}")
    return (" · " if zh else " · ").join(parts)


def _draw_reserves(ax: Axes, res: gpd.GeoDataFrame, fs: FontSetup, label: bool, *, alpha: float) -> list[Any]:
    import matplotlib.patheffects as pe
    from matplotlib.collections import PatchCollection
    from matplotlib.colors import to_rgba
    from matplotlib.patches import PathPatch

    L = fs.lang
    zones = [ST.zone_key(r) for _, r in res.iterrows()]
    patches = [PathPatch(FU.geom_path(g)) for g in res.geometry]
    faces = [to_rgba(ST.category_colour("zone", z) if z else "#d9f0d3", alpha) for z in zones]
    coll = PatchCollection(patches, facecolors=faces, edgecolors=[to_rgba(_RESERVE_EDGE, 0.6)] * len(patches),
                           linewidths=0.6, zorder=3, match_original=False)
    coll.set_gid(GID_RESERVES)
    ax.add_collection(coll, autolim=False)
    name_col = ST.first_column(res, ("保护地名称", "reserve_name", "name"))
    id_col = ST.first_column(res, ("保护地编号", "reserve_id"))
    if name_col is not None:
        outer = res.dissolve(by=name_col)
        FU.draw_outlines(ax, outer.geometry.to_numpy(), [_RESERVE_EDGE] * len(outer), linewidth=1.4, halo=False,
                        zorder=3.5).set_gid(GID_RESERVES)
        if label:
            ids = res.groupby(name_col)[id_col].first() if id_col else None
            for name, g in zip(outer.index, outer.geometry):
                p = g.representative_point()
                fallback = ids[name] if ids is not None else "reserve"
                ax.annotate(fs.text(name, fallback), (p.x, p.y), ha="center", va="center", fontsize=8,
                            color=_RESERVE_EDGE, fontweight=fs.bold, zorder=9, annotation_clip=True,
                            path_effects=[pe.withStroke(linewidth=3, foreground="white")])
    order = ST.category_order("zone")
    present = [z for z in order if z in zones] + sorted({z for z in zones if z and z not in order})
    out = [_header(V.map_word("reserves", L))]
    from collections import Counter

    n = Counter(zones)
    for z in present:
        out.append(FU.outline_handle(ST.category_colour("zone", z), f"{V.label('zone', z, L)} ({n[z]})",
                                    fill_alpha=alpha, linewidth=0.8))
    if None in n:
        out.append(FU.outline_handle("#d9f0d3", f"{'未分区' if L == 'zh' else 'No zone'} ({n[None]})",
                                    fill_alpha=alpha, linewidth=0.8))
    return out


def _draw_mines(ax: Axes, mines: gpd.GeoDataFrame, frame: FR.MapFrame, fs: FontSetup, label: bool) -> list[Any]:
    import matplotlib.patheffects as pe

    L = fs.lang
    has_status = "status" in mines.columns
    if has_status:
        colours = [ST.category_colour("status", s) for s in mines["status"]]
    else:
        colours = [_MINE_PLAIN] * len(mines)
    coll = FU.draw_outlines(ax, mines.geometry.to_numpy(), colours, linewidth=1.3, fill_alpha=0.55, zorder=5)
    coll.set_gid(GID_MINES)
    if label:
        id_col = ST.first_column(mines, ("patch_id", "矿山编号"))
        if id_col is not None:
            left, _, right, _ = frame.bounds
            for g, v in zip(mines.geometry, mines[id_col]):
                c = g.centroid
                x0, _, x1, _ = g.bounds
                east = x1 > right - 0.15 * (right - left)  # near the east edge: label on the west side
                ax.annotate(fs.text(v, "?"), (x0 if east else x1, c.y), xytext=(-3 if east else 3, 0),
                            textcoords="offset points", fontsize=6.5, va="center", ha="right" if east else "left",
                            zorder=9, annotation_clip=True,
                            path_effects=[pe.withStroke(linewidth=2.2, foreground="white")])
    out = [_header(V.map_word("mines" if has_status else "mine_plain", L))]
    if has_status:
        out += FU.category_handles("status", mines["status"], L, order=ST.category_order("status"), fill_alpha=0.55)
    else:
        out.append(FU.outline_handle(_MINE_PLAIN, f"{V.map_word('mine', L)} ({len(mines)})", fill_alpha=0.55))
    return out


def _draw_cases(ax: Axes, cases: gpd.GeoDataFrame, frame: FR.MapFrame, fs: FontSetup, cases_as: str,
                color_by: str) -> list[Any]:
    from matplotlib.lines import Line2D

    L = fs.lang
    kind = ST.resolve_color_by(color_by, cases)
    colours = [ST.category_colour(kind, v) for v in cases[kind]] if kind != "none" else ["#ff2a6d"] * len(cases)
    if cases_as == "auto":
        b = cases.geometry.bounds
        size = float(np.median(np.maximum(b["maxx"] - b["minx"], b["maxy"] - b["miny"])))
        left, _, r, _ = frame.bounds
        cases_as = "points" if size < 0.025 * (r - left) else "outlines"
    title = V.map_word("case_colour" if kind == "colour" else "cases", L)
    out: list[Any] = [_header(title)]
    if cases_as == "points":
        pts = cases.geometry.representative_point()
        sc = ax.scatter(pts.x, pts.y, s=46, c=colours, edgecolors="black", linewidths=0.8, marker="o", zorder=10)
        sc.set_gid(GID_CASES)
        if kind == "none":
            out.append(Line2D([], [], marker="o", linestyle="none", markerfacecolor="#ff2a6d",
                              markeredgecolor="black", label=f"{V.map_word('patch', L)} ({len(cases)})"))
        else:
            from collections import Counter

            n = Counter(str(v) for v in cases[kind])
            order = ST.category_order(kind)
            keys = [k for k in order if k in n] + sorted(k for k in n if k not in order)
            for k in keys:
                out.append(Line2D([], [], marker="o", linestyle="none", markersize=7,
                                  markerfacecolor=ST.category_colour(kind, k), markeredgecolor="black",
                                  label=f"{V.label(kind, k, L)} ({n[k]})"))
    else:
        coll = FU.draw_outlines(ax, cases.geometry.to_numpy(), colours, linewidth=1.6, zorder=10)
        coll.set_gid(GID_CASES)
        if kind == "none":
            out.append(FU.outline_handle("#ff2a6d", f"{V.map_word('patch', L)} ({len(cases)})"))
        else:
            out += FU.category_handles(kind, cases[kind], L, order=ST.category_order(kind))
    return out
