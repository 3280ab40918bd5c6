"""Change maps (before / after / index difference) and per-case image chips for field packages."""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ecopatch import vocabulary as V
from ecopatch.compute.indices import INDICES, compute_index
from ecopatch.errors import ConfigError, InputDataError
from ecopatch.geo.geodesy import as_crs
from ecopatch.outputs.fonts import FontSetup, font_context
from ecopatch.outputs.maps import frame as FR
from ecopatch.outputs.maps import furniture as FU
from ecopatch.outputs.maps import style as ST
from ecopatch.outputs.maps.render import png_bytes, render_pngs

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

    from ecopatch.raster.scene import Scene

log = logging.getLogger(__name__)

#: Default outline colour when patches are not coloured by a category.
PLAIN_OUTLINE = "#ff2a6d"
#: Outline colour of the case in field chips (red, as 图斑 are drawn in the field).
CHIP_OUTLINE = "#ff1a1a"


def _pick_index(index: str, before: Scene, after: Scene) -> str:
    key = index.strip().lower()
    if key not in INDICES:
        raise ConfigError(f"unknown index {index!r}; use one of {sorted(INDICES)}")
    for k in [key, *INDICES]:
        if all(b in before.bands and b in after.bands for b in INDICES[k].bands):
            if k != key:
                log.info("index %s needs bands the scenes do not both have; showing %s instead", key, k)
            return k
    raise InputDataError(
        f"no index can be computed from both scenes (before has {list(before.bands)}, after has "
        f"{list(after.bands)})"
    )


def _index_cmap(key: str) -> str:
    desc = INDICES[key].description
    if "vegetation" in desc:
        return "RdYlGn"
    if "water" in desc:
        return "BrBG"
    return "RdYlGn_r"


def _default_bounds(before: Scene, after: Scene, patches: gpd.GeoDataFrame | None, crs: Any,
                    margin_m: float) -> tuple[tuple[float, float, float, float], float]:
    if patches is not None and len(patches):
        bb = FR.layers_bounds([patches], crs)
        if bb is not None:
            mx = FR.ground_m_per_unit(crs, (bb[0] + bb[2]) / 2, (bb[1] + bb[3]) / 2)
            span_m = max(bb[2] - bb[0], bb[3] - bb[1]) * mx
            return bb, max(margin_m, 0.12 * span_m)
    fb = before.grid.footprint_in(crs)
    fa = after.grid.footprint_in(crs)
    both = fb.intersection(fa)
    poly = both if not both.is_empty else fb
    return tuple(poly.bounds), 0.0


def _patch_colours(patches: gpd.GeoDataFrame, kind: str) -> list[str]:
    if kind == "none":
        return [PLAIN_OUTLINE] * len(patches)
    return [ST.category_colour(kind, v) for v in patches[kind]]


def _patch_handles(patches: gpd.GeoDataFrame, kind: str, lang: str) -> list[Any]:
    if kind == "none":
        return [FU.outline_handle(PLAIN_OUTLINE, f"{V.map_word('patch', lang)} ({len(patches)})")]
    return FU.category_handles(kind, patches[kind], lang, order=ST.category_order(kind))


def change_map(
    before: Scene,
    after: Scene,
    patches: gpd.GeoDataFrame | None = None,
    *,
    bounds: tuple[float, float, float, float] | None = None,
    crs: Any = None,
    composite: str = "true",
    index: str | None = "ndvi",
    color_by: str = "auto",
    lang: str = "zh",
    margin_m: float = 150.0,
    max_pixels: int = 250_000,
    pct: tuple[float, float] = (2.0, 98.0),
    label_field: str | None = None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Before and after imagery side by side, an index-difference panel, and the patches outlined.

    Parameters
    ----------
    before, after : Scene
        Imagery of the two dates (any sensors, grids and CRSs; a drone RGB
        mosaic is shown as delivered).  Read decimated over the map frame
        only (:func:`ecopatch.raster.source.read_decimated`), never whole.
    patches : geopandas.GeoDataFrame, optional
        Polygons to outline: suspect patches from
        :func:`ecopatch.detect_changes`, ledger cases, or mines; any CRS.
    bounds : tuple of float, optional
        ``(left, bottom, right, top)`` of the area to show, in ``crs``.
        Default: the patches' extent plus a margin, or the overlap of the
        two scenes.
    crs : CRS-like, optional
        CRS of the map (and of ``bounds``); default the before scene's.  A
        projected CRS gives coordinates in metres, a geographic one degrees;
        the figure states which.
    composite : {"true", "false"}
        True colour (red, green, blue) or standard false colour (NIR, red,
        green; vegetation red).  Drone RGB mosaics are always shown as is.
    index : str or None
        Index whose difference (after − before) is shown in a third panel
        (any key of :data:`ecopatch.compute.indices.INDICES`; one both scenes
        support is chosen when they lack its bands, e.g. ExG for a drone
        mosaic).  None: no difference panel.
    color_by : {"auto", "change_type", "status", "colour"}
        Column that colours the outlines.  "auto": ``colour`` (red/yellow/
        green code of ledger cases) if present, else ``change_type``, else
        ``status``, else one colour.
    lang : {"zh", "en"}
        Label language.  Chinese needs a CJK font (:mod:`ecopatch.outputs.fonts`);
        without one, English labels and a :class:`~ecopatch.errors.FontWarning`.
    margin_m : float
        Ground margin around the patches, m (at least 12 % of their extent).
    max_pixels : int
        Display pixels per panel (bounds memory and reading time).
    pct : tuple of float
        Percentile clip of the colour stretch (the same limits for both
        dates when both are reflectance products).
    label_field : str, optional
        Column whose values are written next to each patch.
    title : str, optional
        Figure title; default "变化图斑前后对比图" / "Change map".
    figsize : tuple of float, optional
        Inches; default from the number of panels.
    axes : sequence of Axes, optional
        Draw into these (2 or 3, matching ``index``) instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot; shows inline in Jupyter, save with
        ``fig.savefig(path)``.

    Raises
    ------
    ConfigError
        Unknown ``composite``, ``index`` or ``color_by``.
    MissingBandError
        A scene lacks red, green or blue.
    InputDataError
        ``color_by`` names a missing column; bad ``bounds``.

    Notes
    -----
    Cloud, cloud shadow and no-data pixels (NaN in the reads) are drawn
    transparent over a hatched grey background and listed in the legend.
    The north arrow points to true north (rotated by the meridian
    convergence in projected CRSs); the scale bar gives ground metres.
    """
    with font_context(lang, stacklevel=5) as fs:
        L = fs.lang
        map_crs = as_crs(crs) if crs is not None else before.grid.crs
        kind = ST.resolve_color_by(color_by, patches) if patches is not None else "none"
        if label_field is not None and (patches is None or label_field not in patches.columns):
            raise InputDataError(f"label_field={label_field!r} is not a column of the patches")
        if bounds is None:
            bounds, margin = _default_bounds(before, after, patches, map_crs, margin_m)
        else:
            margin = margin_m
        min_res = min(FU.native_res_m(before), FU.native_res_m(after)) / 3
        frame = FR.MapFrame.around(bounds, map_crs, margin_m=margin, max_pixels=max_pixels, min_res_m=min_res)

        (bb, kb), (ba, ka) = FR.composite_bands(before, composite), FR.composite_bands(after, composite)
        ikey = _pick_index(index, before, after) if index is not None else None
        ib = INDICES[ikey].bands if ikey else ()
        lb = FR.render_on_frame(before, frame, [*bb, *ib], max_pixels=max_pixels)
        la = FR.render_on_frame(after, frame, [*ba, *ib], max_pixels=max_pixels)
        if kb != "asis" and ka != "asis" and bb == ba:
            lims = [FR.stretch_limits([lb[b], la[b]], pct) for b in bb]
            img_b, img_a = FR.rgba_image(lb, bb, kb, lims), FR.rgba_image(la, ba, ka, lims)
        else:
            img_b = FR.rgba_image(lb, bb, kb, [FR.stretch_limits([lb[b]], pct) for b in bb])
            img_a = FR.rgba_image(la, ba, ka, [FR.stretch_limits([la[b]], pct) for b in ba])

        n = 3 if ikey else 2
        if axes is not None:
            axs = list(axes)
            if len(axs) != n:
                need = "before, after, difference" if ikey else "before, after"
                raise ConfigError(f"axes: {n} axes needed ({need}), got {len(axs)}")
            fig: Figure = cast("Figure", axs[0].figure)  # a SubFigure's axes draw on it as well
        else:
            rows, cols = frame.grid.shape
            aspect = rows / cols
            w = figsize[0] if figsize else 4.6 * n + 0.8
            h = figsize[1] if figsize else min(max((w - 1.6) / n * aspect + 1.75, 3.6), 9.0)
            fig = FR.new_figure(figsize=(w, h), layout="constrained")
            gs = fig.add_gridspec(2, n, height_ratios=[1.0, 0.4 / max(h - 2.0, 1.0)])
            axs = [fig.add_subplot(gs[0, i]) for i in range(n)]
            for ax in axs[1:]:
                ax.sharex(axs[0])
                ax.sharey(axs[0])
                ax.tick_params(labelleft=False)
            footer = fig.add_subplot(gs[1, :])
            footer.set_axis_off()

        pg = FR.to_frame(patches, frame, "patches") if patches is not None else None
        colours = _patch_colours(pg, kind) if pg is not None else []
        titles = [
            f"{V.map_word('before', L)} {ST.date_label(before, L)}\n{ST.sensor_label(before, L)} · {V.map_word(kb, L)}",
            f"{V.map_word('after', L)} {ST.date_label(after, L)}\n{ST.sensor_label(after, L)} · {V.map_word(ka, L)}",
        ]
        for i, (ax, img, lay) in enumerate(zip(axs[:2], (img_b, img_a), (lb, la))):
            FU.map_panel(ax, frame, fs, img, pg, colours, label_field, first=i == 0)
            ax.set_title(titles[i], fontsize=9)
            if not lay.covered:
                FU.no_imagery(ax, L)
        if ikey:
            ax = axs[2]
            with np.errstate(invalid="ignore"):
                diff = compute_index(ikey, la.bands) - compute_index(ikey, lb.bands)
            fin = np.abs(diff[np.isfinite(diff)])
            vmax = max(float(np.percentile(fin, 98)) if fin.size else 0.1, 0.05)
            FU.nodata_background(ax, frame)
            im = ax.imshow(np.ma.masked_invalid(diff), extent=frame.extent, cmap=_index_cmap(ikey),
                           vmin=-vmax, vmax=vmax, interpolation="nearest", zorder=1)
            im.set_gid(ST.GID_IMAGE)
            if pg is not None and len(pg):
                FU.draw_outlines(ax, pg.geometry.to_numpy(), colours)
            FU.setup_map_axes(ax, frame, fs, ylabel=False)
            FU.map_furniture(ax, frame, fs, pg)
            ax.set_title(V.map_word("diff", L, idx=ikey.upper()) + "\n" + _dates(before, after, L), fontsize=9)
            cb = fig.colorbar(im, ax=ax, shrink=0.75, pad=0.02, extend="both")
            cb.set_label(f"Δ{ikey.upper()}", fontsize=8)
            cb.ax.tick_params(labelsize=7)
        handles = (_patch_handles(pg, kind, L) if pg is not None else []) + [FU.nodata_handle(L)]
        if axes is None:
            footer.legend(handles=handles, loc="upper center", ncols=min(len(handles), 6), fontsize=8,
                          frameon=False, borderaxespad=0)
            footer.text(1.0, 0.0, FU.crs_note(frame, L), transform=footer.transAxes, ha="right", va="bottom",
                        fontsize=6.5, color="#444444")
            head = title or V.map_word("change_map", L)
            if pg is not None:
                head += f"（{len(pg)} 个图斑）" if L == "zh" else f" ({len(pg)} patches)"
            fig.suptitle(head, fontsize=12, fontweight=fs.bold)
        else:
            axs[-1].legend(handles=handles, loc="lower right", fontsize=7)
        FU.finish(fig, fs)
    return fig


def _dates(before: Scene, after: Scene, lang: str) -> str:
    return f"{ST.date_label(before, lang)} → {ST.date_label(after, lang)}"


# ---------------------------------------------------------------------------
# Chips for field packages
# ---------------------------------------------------------------------------
class CaseChips:
    """Writes before/after PNG chips of one case; pass to ``ecopatch.fieldcheck.export_package(..., chips=...)``.

    Build with :func:`case_chips`.  Calling it as ``chips(case_row,
    before_png, after_png)`` writes two square maps centred on the case,
    each with the case outline, date, scale bar and north arrow.  The two
    chips share one colour stretch so they compare directly.
    """

    def __init__(self, before: Scene, after: Scene, *, size_m: float, crs: Any, map_crs: Any,
                 composite: str, lang: str, dpi: int, size_in: float, max_pixels: int,
                 pct: tuple[float, float]) -> None:
        FR.composite_bands(before, composite)
        FR.composite_bands(after, composite)
        if size_m <= 0:
            raise ConfigError(f"size_m={size_m}: must be > 0 (ground width of a chip, m)")
        self.before, self.after = before, after
        self.size_m = float(size_m)
        self.crs = as_crs(crs)
        self.map_crs = as_crs(map_crs) if map_crs is not None else (
            before.grid.crs if not before.grid.is_geographic else after.grid.crs)
        self.composite, self.lang = composite, lang
        self.dpi, self.size_in, self.max_pixels, self.pct = int(dpi), float(size_in), int(max_pixels), pct
        self._layout: tuple[float, float, float, float] | None = None  # the map's place, found on the first chip
        self._canvases: dict[str, tuple[Any, Any, list[Any]]] = {}  # kept figures of _pngs (per process)

    def __repr__(self) -> str:
        return (f"CaseChips({self.before.label} → {self.after.label}, size_m={self.size_m:g}, "
                f"lang={self.lang!r})")

    def figures(self, case_row: pd.Series | Any) -> tuple[Figure, Figure]:
        """The before and after chip figures of one case (for a look in a notebook).

        Parameters
        ----------
        case_row : pandas.Series
            A row of :meth:`ecopatch.Ledger.cases` or of a patch table: its
            geometry (in ``crs`` given to :func:`case_chips`, default
            EPSG:4490), ``case_id`` or ``patch_id``, and optionally ``colour``.
        """
        import geopandas as gpd

        g, cid, code = self._case(case_row)
        with font_context(self.lang, stacklevel=6) as fs:
            frame, imgs, lays, kinds = self._imagery(g)
            figs = []
            for i, (which, scene) in enumerate((("before", self.before), ("after", self.after))):
                # every chip has the same furniture: the layout engine places the map once, and later
                # chips reuse its place (a third of a chip's drawing time)
                fixed = self._layout
                fig = FR.new_figure(figsize=(self.size_in, self.size_in + 0.75), dpi=self.dpi,
                                   layout=None if fixed else "constrained")
                ax = fig.add_subplot()
                if fixed:
                    ax.set_position(fixed)
                one = gpd.GeoDataFrame(geometry=[g], crs=self.map_crs)
                self._panel(ax, fs, frame, one, imgs[i], lays[i], kinds[i], which, scene, cid, code)
                self._static(fig, ax, fs, frame)
                FU.finish(fig, fs)
                if fixed is None and which == "before":
                    fig.draw_without_rendering()  # lays the chip out once
                    self._layout = tuple(ax.get_position(original=True).bounds)
                figs.append(fig)
        return figs[0], figs[1]

    def _case(self, case_row: Any) -> tuple[Any, str, Any]:
        """The case's outline in the map CRS, its ID and its code."""
        import geopandas as gpd

        geom = _row_geometry(case_row)
        g = gpd.GeoSeries([geom], crs=self.crs).to_crs(self.map_crs).iloc[0]
        cid = str(_get(case_row, "case_id") or _get(case_row, "patch_id") or "")
        return g, cid, _get(case_row, "colour")

    def _imagery(self, g: Any) -> tuple[FR.MapFrame, tuple[np.ndarray, np.ndarray], tuple[Any, Any],
                                        tuple[str, str]]:
        """The square frame around the outline ``g``, and both dates' RGBA images on it (one stretch)."""
        cx, cy = g.centroid.x, g.centroid.y
        x0, y0, x1, y1 = g.bounds
        mx = FR.ground_m_per_unit(self.map_crs, cx, cy)
        half_m = max(self.size_m / 2, 0.65 * max(x1 - x0, y1 - y0) * mx)
        frame = FR.MapFrame.around((cx, cy, cx, cy), self.map_crs, margin_m=half_m,
                                  max_pixels=self.max_pixels, square=True)
        bb, kb = FR.composite_bands(self.before, self.composite)
        ba, ka = FR.composite_bands(self.after, self.composite)
        lb = FR.render_on_frame(self.before, frame, bb, max_pixels=self.max_pixels)
        la = FR.render_on_frame(self.after, frame, ba, max_pixels=self.max_pixels)
        if kb != "asis" and ka != "asis" and bb == ba:
            lims = [FR.stretch_limits([lb[b], la[b]], self.pct) for b in bb]
            imgs = (FR.rgba_image(lb, bb, kb, lims), FR.rgba_image(la, ba, ka, lims))
        else:
            imgs = (FR.rgba_image(lb, bb, kb, [FR.stretch_limits([lb[b]], self.pct) for b in bb]),
                    FR.rgba_image(la, ba, ka, [FR.stretch_limits([la[b]], self.pct) for b in ba]))
        return frame, imgs, (lb, la), (kb, ka)

    def _panel(self, ax: Axes, fs: FontSetup, frame: FR.MapFrame, one: gpd.GeoDataFrame, img: np.ndarray,
               lay: Any, kind: str, which: str, scene: Scene, cid: str, code: Any) -> Any:
        """What changes from case to case: imagery, outline, map furniture, title; returns the no-imagery note."""
        FU.map_panel(ax, frame, fs, img, one, [CHIP_OUTLINE], None, first=True, linewidth=1.8)
        note = FU.no_imagery(ax, fs.lang) if not lay.covered else None
        ax.set_title(self._title(fs, cid, code, which, scene, kind), fontsize=7.5)
        return note

    @staticmethod
    def _title(fs: FontSetup, cid: str, code: Any, which: str, scene: Scene, kind: str) -> str:
        L = fs.lang
        tag = f" · {V.label('colour', code, L)}" if code else ""
        return (f"{fs.text(cid, '')}{tag}\n{V.map_word(which, L)} {ST.date_label(scene, L)} · "
                f"{ST.sensor_label(scene, L)} · {V.map_word(kind, L)}")

    def _static(self, fig: Figure, ax: Axes, fs: FontSetup, frame: FR.MapFrame) -> None:
        """What every chip has: the legend and the CRS note."""
        L = fs.lang
        ax.legend(handles=[FU.outline_handle(CHIP_OUTLINE, V.map_word("patch", L)), FU.nodata_handle(L)],
                  loc="lower right", fontsize=6.5, framealpha=0.85)
        fig.text(0.995, 0.003, FU.crs_note(frame, L), ha="right", va="bottom", fontsize=4.8, color="#444444")

    def _pngs(self, case_row: pd.Series | Any) -> list[bytes]:
        """The case's two chips as PNG bytes: the same as :meth:`figures` draws, for less work.

        The same pixels (tested), drawn on a figure kept from the case
        before (the imagery, outline, furniture and title of the last case
        are taken off and this case's put on), and what the two dates share
        (the axes' ticks and labels, the CRS note: a third of a chip's
        drawing) drawn once per case: the map's inside and the title are
        then drawn over it for each date, in the order a whole draw would.
        """
        import geopandas as gpd
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.image import imsave

        from ecopatch.outputs.maps.render import PNG_COMPRESS_LEVEL

        if self._layout is None:
            self.figures(case_row)  # finds the layout
        g, cid, code = self._case(case_row)
        out = []
        with font_context(self.lang, stacklevel=6) as fs:
            frame, imgs, lays, kinds = self._imagery(g)
            one = gpd.GeoDataFrame(geometry=[g], crs=self.map_crs)
            kept = self._canvases.get("chip")
            if kept is None:
                fig = FR.new_figure(figsize=(self.size_in, self.size_in + 0.75), dpi=self.dpi)
                FigureCanvasAgg(fig)
                ax = fig.add_subplot()
                ax.set_position(cast("tuple[float, float, float, float]", self._layout))  # found above
                self._static(fig, ax, fs, frame)
                kept = (fig, ax, [])
            fig, ax, last = kept
            for artist in last:
                artist.remove()
            known = set(ax.get_children())
            no_imagery = self._panel(ax, fs, frame, one, imgs[0], lays[0], kinds[0], "before", self.before, cid,
                                     code)
            if no_imagery is None and not lays[1].covered:
                no_imagery = FU.no_imagery(ax, fs.lang)
            titles = [ax.title.get_text(), self._title(fs, cid, code, "after", self.after, kinds[1])]
            new = [a for a in ax.get_children() if a not in known]
            image = cast("AxesImage", next(a for a in new if a.get_gid() == ST.GID_IMAGE))
            FU.finish(fig, fs, texts=[t for t in new if hasattr(t, "get_text")] + [ax.title])
            self._canvases["chip"] = (fig, ax, new)

            # What both dates share, drawn once: the figure without the map's inside, the title (an
            # empty title stays where it is; a hidden one would be moved by the title placement) and
            # the tick marks (the map's edge pixels hold both: they are drawn per date, as in a whole
            # draw: after the imagery, before the frame).
            canvas = cast("FigureCanvasAgg", fig.canvas)
            axes = (ax.xaxis, ax.yaxis)
            inside = [a for a in ax.get_children() if a not in {*axes, ax.patch, ax.title}]
            ticks = [t for axis in axes for t in (*axis.get_major_ticks(), *axis.get_minor_ticks())]
            marks = {t: t.tick1line.get_visible() for t in ticks}
            labels = {t: t.label1.get_visible() for t in ticks}
            ax.title.set_text("")
            for a in (ax.patch, *inside):
                a.set_visible(False)
            for t in ticks:
                t.tick1line.set_visible(False)
            try:
                canvas.draw()
                shared = canvas.copy_from_bbox(fig.bbox)
                # the dates: the inside, the tick marks (not their labels) and the title
                for t in ticks:
                    t.tick1line.set_visible(marks[t])
                    t.label1.set_visible(False)
                for axis in axes:
                    axis.label.set_visible(False)
                for a in (ax.patch, *inside):
                    a.set_visible(True)
                renderer = canvas.get_renderer()
                order = sorted([*inside, *axes, ax.title], key=lambda a: a.get_zorder())  # stable: the axes' order
                for i in range(2):
                    image.set_data(imgs[i])
                    ax.title.set_text(titles[i])
                    if no_imagery is not None:
                        no_imagery.set_visible(not lays[i].covered)
                    canvas.restore_region(shared)
                    ax.patch.draw(renderer)
                    for a in order:
                        a.draw(renderer)
                    buf = io.BytesIO()  # as savefig writes a PNG (print_png)
                    imsave(buf, canvas.buffer_rgba(), format="png", origin="upper", dpi=fig.dpi,
                           pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
                    out.append(buf.getvalue())
            finally:
                for a in (ax.patch, *inside):
                    a.set_visible(True)
                for axis in axes:  # ticks made meanwhile take the first tick's settings, as the axis does
                    got = [*axis.get_major_ticks(), *axis.get_minor_ticks()]
                    for t in got:
                        t.tick1line.set_visible(marks.get(t, marks.get(got[0], True)))
                        t.label1.set_visible(labels.get(t, labels.get(got[0], True)))
                for axis in axes:
                    axis.label.set_visible(True)
        return out

    def __call__(self, case_row: pd.Series | Any, before_png: str | Path, after_png: str | Path) -> None:
        """Write the before and after chips of one case as PNG files."""
        fb, fa = self.figures(case_row)
        for fig, path in ((fb, before_png), (fa, after_png)):
            Path(path).write_bytes(png_bytes(fig, dpi=self.dpi))

    def drawn(self, cases: pd.DataFrame, *, workers: int | None = None) -> DrawnChips:
        """Draw the chips of ``cases`` now, several at once, for a field package written next.

        Each case's two figures are built and drawn to PNG in worker
        processes (see :func:`ecopatch.outputs.maps.render_pngs`); the returned
        writer then only writes the bytes.  Pass it where this writer would
        go (``export_package(ledger, ..., chips=chips.drawn(cases))``); a
        case it was not given (or whose outline has changed) is drawn then,
        as this writer would.

        Parameters
        ----------
        cases : pandas.DataFrame
            Rows as the writer will get them (:meth:`ecopatch.Ledger.cases`).
        workers : int, optional
            Processes drawing at once (default: the CPUs available).

        Returns
        -------
        DrawnChips
        """
        rows = [row for _, row in cases.iterrows()]
        if rows and self._layout is None:
            self.figures(rows[0])  # the layout, found here once for every worker
        pngs = render_pngs([partial(self._pngs, row) for row in rows], dpi=self.dpi, workers=workers)
        return DrawnChips(self, {_chip_key(row): (p[0], p[1]) for row, p in zip(rows, pngs)})


def _chip_key(row: Any) -> tuple:
    """What a case's chips depend on: its ID, outline and code."""
    geom = _row_geometry(row)
    return (str(_get(row, "case_id") or _get(row, "patch_id") or ""), geom.wkb, str(_get(row, "colour")))


class DrawnChips:
    """Chips drawn ahead (:meth:`CaseChips.drawn`): writes their PNG bytes; draws any other case then."""

    def __init__(self, chips: CaseChips, pngs: dict[tuple, tuple[bytes, bytes]]) -> None:
        self.chips, self.pngs = chips, pngs

    def __repr__(self) -> str:
        return f"DrawnChips({len(self.pngs)} case(s), {self.chips!r})"

    def __call__(self, case_row: pd.Series | Any, before_png: str | Path, after_png: str | Path) -> None:
        """Write the before and after chips of one case as PNG files."""
        got = self.pngs.get(_chip_key(case_row))
        if got is None:
            self.chips(case_row, before_png, after_png)
            return
        for data, path in zip(got, (before_png, after_png)):
            Path(path).write_bytes(data)


def _get(row: Any, key: str) -> Any:
    try:
        v = row[key]
    except (KeyError, IndexError, TypeError):
        return None
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


def _row_geometry(row: Any) -> Any:
    from shapely.geometry import Point

    for key in ("geometry", "geom"):
        g = _get(row, key)
        if g is not None and not getattr(g, "is_empty", True):
            return g
    lon, lat = _get(row, "lon"), _get(row, "lat")
    if lon is not None and lat is not None:
        return Point(float(lon), float(lat))
    raise InputDataError("case row has neither a geometry nor lon/lat; pass a row of Ledger.cases()")


def case_chips(
    before: Scene,
    after: Scene,
    *,
    size_m: float = 400.0,
    crs: Any = "EPSG:4490",
    map_crs: Any = None,
    composite: str = "true",
    lang: str = "zh",
    dpi: int = 150,
    size_in: float = 4.0,
    max_pixels: int = 160_000,
    pct: tuple[float, float] = (2.0, 98.0),
) -> CaseChips:
    """A chip writer for field packages: before/after PNGs of each case with its outline.

    Parameters
    ----------
    before, after : Scene
        Imagery of the two dates (read decimated around each case only).
    size_m : float
        Ground width of a chip, m (grown to fit a larger patch with a margin).
    crs : CRS-like
        CRS of the case geometries handed to the writer; default EPSG:4490,
        that of :meth:`ecopatch.Ledger.cases`.
    map_crs : CRS-like, optional
        CRS the chips are drawn in; default the before scene's (if
        projected).
    composite : {"true", "false"}
        Colour composite (see :func:`change_map`).
    lang : {"zh", "en"}
        Label language.
    dpi : int
        PNG resolution, dots per inch.
    size_in : float
        Chip width, inches (the PNG is ``size_in × dpi`` pixels wide).
    max_pixels : int
        Display pixels per chip.
    pct : tuple of float
        Percentile clip of the colour stretch.

    Returns
    -------
    CaseChips
        ``chips(case_row, before_png, after_png) -> None``, as
        :func:`ecopatch.fieldcheck.export_package` expects.

    Examples
    --------
    >>> chips = case_chips(before, after, size_m=300)  # doctest: +SKIP
    >>> export_package(ledger, "field_2024_09", chips=chips)  # doctest: +SKIP
    """
    from ecopatch.outputs.fonts import check_lang

    return CaseChips(before, after, size_m=size_m, crs=crs, map_crs=map_crs, composite=composite,
                     lang=check_lang(lang), dpi=dpi, size_in=size_in, max_pixels=max_pixels, pct=pct)
