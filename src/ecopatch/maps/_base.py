"""Building blocks of ecopatch maps: the map frame, imagery on it, stretches, map furniture.

Private module; the public names are re-exported from :mod:`ecopatch.maps`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from ecopatch import vocabulary as V
from ecopatch.errors import ConfigError, InputDataError, MissingBandError, NoOverlapError
from ecopatch.fonts import FontSetup
from ecopatch.geodesy import as_crs, transformer
from ecopatch.grid import Grid
from ecopatch.vocabulary import CASE_STATUS_ZH, MINE_STATUS_ZH, SENSOR_LABELS, canonical_zone

if TYPE_CHECKING:
    import geopandas as gpd
    from matplotlib.axes import Axes
    from matplotlib.collections import PatchCollection
    from pyproj import CRS

    from ecopatch.io.raster import Scene

log = logging.getLogger(__name__)

#: gid of the artists ecopatch adds, so tests and users can find them.
GID_OUTLINES = "ecopatch-outlines"
GID_SCALEBAR = "ecopatch-scalebar"
GID_NORTH = "ecopatch-north-arrow"
GID_NODATA = "ecopatch-nodata"
GID_IMAGE = "ecopatch-image"

#: Colour of cloud / no-data pixels (drawn hatched under transparent pixels).
NODATA_FACE = "#e6e6e6"
NODATA_EDGE = "#9a9a9a"
NODATA_HATCH = "////"

# ---------------------------------------------------------------------------
# The figure
# ---------------------------------------------------------------------------
class MapFigure(Figure):
    """A matplotlib Figure that also shows inline in Jupyter when pyplot was never imported.

    IPython shows plain :class:`~matplotlib.figure.Figure` objects as text
    unless pyplot's inline backend has registered its formatter; this class
    renders itself as PNG (``_repr_png_``) in that case.  Its PNGs are
    compressed at zlib level 1 unless ``pil_kwargs`` say otherwise
    (:data:`ecopatch.maps._render.PNG_COMPRESS_LEVEL`: the same pixels, about
    half the encoding time of PIL's default level 6, files about 6 % larger);
    this figure only, nothing global.  In every other respect it is a Figure.
    """

    def savefig(self, fname: Any, **kwargs: Any) -> None:  # noqa: D102 - Figure.savefig's
        if "pil_kwargs" not in kwargs and _png_format(fname, kwargs.get("format")):
            from ecopatch.maps._render import PNG_COMPRESS_LEVEL

            kwargs["pil_kwargs"] = {"compress_level": PNG_COMPRESS_LEVEL}
        super().savefig(fname, **kwargs)

    def _repr_png_(self) -> bytes:
        import io

        buf = io.BytesIO()
        self.savefig(buf, format="png")
        return buf.getvalue()


def _png_format(fname: Any, fmt: str | None) -> bool:
    """Whether ``savefig(fname, format=fmt)`` writes a PNG (matplotlib's rule: format, else suffix, else rc)."""
    import os

    import matplotlib as mpl

    if fmt is None and isinstance(fname, (str, os.PathLike)):
        fmt = os.path.splitext(os.fspath(fname))[1][1:]
    return (fmt or mpl.rcParams["savefig.format"]).lower() == "png"


def new_figure(**kwargs: Any) -> MapFigure:
    """A new :class:`MapFigure` (a :class:`~matplotlib.figure.Figure`; no pyplot state).

    With ``layout="constrained"`` the outer padding is widened a little:
    the layout engine under-reserves room for a y label next to rotated
    tick labels on a fixed-aspect map axes.
    """
    fig = MapFigure(**kwargs)
    if kwargs.get("layout") == "constrained":
        fig.get_layout_engine().set(w_pad=0.1, h_pad=0.06)
    return fig


#: Outline colours by change type (bright, to stand out on imagery).
CHANGE_COLOURS: dict[str, str] = {
    "vegetation_loss": "#ff8c00",
    "bare_soil": "#ffe135",
    "construction": "#ff2a6d",
    "water": "#00c8ff",
    "vegetation_gain": "#7dff3a",
}
#: Colours of the restoration status of a mine.
STATUS_COLOURS: dict[str, str] = {
    "restored": "#1a9850",
    "in_progress": "#fdae61",
    "not_started": "#d73027",
    "insufficient_data": "#9e9e9e",
    "degraded": "#7b1fa2",
    "stalled": "#8c6d1f",
}
#: Colours of ledger lifecycle states.
CASE_STATUS_COLOURS: dict[str, str] = {
    "detected": "#ff7f00",
    "dispatched": "#ffd92f",
    "confirmed": "#e41a1c",
    "false_alarm": "#a6a6a6",
    "rectifying": "#984ea3",
    "rectified": "#377eb8",
    "closed": "#4daf4a",
    "reopened": "#a65628",
}
#: The red/yellow/green code (红黄绿码) of a case.
CODE_COLOURS: dict[str, str] = {"red": "#e41a1c", "yellow": "#ffd400", "green": "#2ca02c"}
#: Fill colours of reserve functional zones.
ZONE_COLOURS: dict[str, str] = {
    "core": "#01665e",
    "buffer": "#5ab4ac",
    "experimental": "#c7eae5",
    "outside": "#f0f0f0",
}
_OTHER = "#bdbdbd"

COLOR_BY = ("auto", "change_type", "status", "colour")


def category_colour(kind: str, key: Any) -> str:
    """Colour of a category value (see :data:`CHANGE_COLOURS` and friends)."""
    k = "" if key is None else str(key)
    table: Mapping[str, str] = {
        "change_type": CHANGE_COLOURS,
        "status": {**STATUS_COLOURS, **CASE_STATUS_COLOURS},
        "colour": CODE_COLOURS,
        "zone": ZONE_COLOURS,
    }.get(kind, {})
    return table.get(k, _OTHER)


def resolve_color_by(color_by: str, frame: Any) -> str:
    """``color_by`` checked against the table's columns; "auto" picks colour > change_type > status."""
    if color_by not in COLOR_BY:
        raise ConfigError(f"color_by={color_by!r}; use one of {list(COLOR_BY)}")
    cols = set(getattr(frame, "columns", ()))
    if color_by == "auto":
        for c in ("colour", "change_type", "status"):
            if c in cols:
                return c
        return "none"
    if color_by not in cols:
        raise InputDataError(
            f"color_by={color_by!r}, but the table has no {color_by!r} column; its columns are "
            f"{sorted(map(str, cols))[:20]}"
        )
    return color_by


def sensor_label(scene: Scene, lang: str) -> str:
    """Short product name of a scene (e.g. "Sentinel-2 L2A")."""
    pair = SENSOR_LABELS.get(scene.sensor.name)
    if pair:
        return pair[0 if lang == "zh" else 1]
    zh = scene.sensor.label_zh  # the profile's own short name (Landsat, HLS, Gaofen L1A, NAIP ...)
    if zh and (lang == "zh" or zh.isascii()):
        return zh
    return scene.sensor.name


def date_label(scene: Scene, lang: str) -> str:
    """ISO date of a scene, or "undated"."""
    return scene.date.isoformat() if scene.date else V.map_word("undated", lang)


# ---------------------------------------------------------------------------
# The frame: what part of the ground a map shows, in which CRS
# ---------------------------------------------------------------------------
def ground_m_per_unit(crs: CRS, x: float, y: float) -> float:
    """Ground metres per CRS unit along x at ``(x, y)`` (geodesic; handles degrees and scale factors)."""
    from pyproj import Geod

    crs = as_crs(crs)
    geo = crs.geodetic_crs or as_crs("EPSG:4326")
    d = 1e-4 if crs.is_geographic else 50.0
    tr = transformer(crs, geo)
    lon, lat = tr.transform([x - d, x + d], [y, y])
    ellps = geo.ellipsoid
    geod = Geod(a=ellps.semi_major_metre, rf=ellps.inverse_flattening) if ellps else Geod(ellps="WGS84")
    _, _, dist = geod.inv(lon[0], lat[0], lon[1], lat[1])
    return float(dist / (2 * d))


@dataclass(frozen=True)
class MapFrame:
    """The ground a map shows: a north-up display grid in one CRS.

    Attributes
    ----------
    grid : Grid
        Display pixels; imagery is brought onto it.  Bounds in CRS units.
    m_per_unit : float
        Ground metres per CRS unit along x at the frame centre (1 for metre
        grids, about 96 000 for degrees at 30° N).
    """

    grid: Grid
    m_per_unit: float

    @property
    def crs(self) -> CRS:
        """CRS of the frame."""
        return self.grid.crs

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in CRS units."""
        return self.grid.bounds

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(left, right, bottom, top)`` for :meth:`~matplotlib.axes.Axes.imshow`."""
        left, b, r, t = self.grid.bounds
        return (left, r, b, t)

    @property
    def geographic(self) -> bool:
        """True for longitude/latitude frames."""
        return self.grid.is_geographic

    @property
    def centre(self) -> tuple[float, float]:
        """Centre ``(x, y)`` in CRS units."""
        left, b, r, t = self.grid.bounds
        return ((left + r) / 2, (b + t) / 2)

    @property
    def width_m(self) -> float:
        """Ground width of the frame, metres."""
        left, _, r, _ = self.grid.bounds
        return (r - left) * self.m_per_unit

    @classmethod
    def around(
        cls,
        bounds: tuple[float, float, float, float],
        crs: Any,
        *,
        margin_m: float = 0.0,
        max_pixels: int = 250_000,
        min_res_m: float = 0.0,
        square: bool = False,
    ) -> MapFrame:
        """A frame covering ``bounds`` (in ``crs``) plus ``margin_m`` metres.

        Parameters
        ----------
        bounds : tuple of float
            ``(left, bottom, right, top)`` in ``crs`` units.
        crs : CRS-like
            CRS of the frame (projected: metres; geographic: degrees).
        margin_m : float
            Ground distance added on every side, m.
        max_pixels : int
            Upper bound on the display pixels (memory and drawing time).
        min_res_m : float
            Display pixels no finer than this ground size, m.
        square : bool
            Grow the shorter side so the frame is square on the ground.
        """
        crs = as_crs(crs)
        left, b, r, t = (float(v) for v in bounds)
        if not all(map(math.isfinite, (left, b, r, t))) or r < left or t < b:
            raise InputDataError(f"map bounds {bounds} are not (left, bottom, right, top) in {crs.to_string()}")
        cx, cy = (left + r) / 2, (b + t) / 2
        mx = ground_m_per_unit(crs, cx, cy)
        my = mx / math.cos(math.radians(cy)) if crs.is_geographic else mx  # degrees of latitude
        half_w = (r - left) / 2 * mx + margin_m
        half_h = (t - b) / 2 * my + margin_m
        half_w, half_h = max(half_w, 20.0), max(half_h, 20.0)
        if square:
            half_w = half_h = max(half_w, half_h)
        res_m = max(math.sqrt(4 * half_w * half_h / max(int(max_pixels), 16)), float(min_res_m), 1e-3)
        cols = max(2, int(math.ceil(2 * half_w / res_m)))
        rows = max(2, int(math.ceil(2 * half_h / res_m)))
        from affine import Affine

        xres, yres = 2 * half_w / cols / mx, 2 * half_h / rows / my
        tr = Affine(xres, 0, cx - half_w / mx, 0, -yres, cy + half_h / my)
        return cls(Grid((rows, cols), tr, crs), mx)


def frame_crs(*candidates: Any) -> CRS:
    """The first CRS among ``candidates`` (CRS-likes or GeoDataFrames/Scenes) that is set."""
    for c in candidates:
        if c is None:
            continue
        crs = getattr(c, "crs", None) if not isinstance(c, (str, int)) else c
        if crs is None and hasattr(c, "grid"):
            crs = c.grid.crs
        if crs is None and not hasattr(c, "crs"):
            crs = c
        if crs is not None:
            return as_crs(crs)
    raise InputDataError("cannot tell the map's CRS: pass crs=... or layers with a CRS")


def layers_bounds(layers: Iterable[Any], crs: CRS) -> tuple[float, float, float, float] | None:
    """Union of the bounds of GeoDataFrames, transformed to ``crs`` (None if all empty)."""
    import shapely

    boxes = []
    for gdf in layers:
        if gdf is None or len(gdf) == 0:
            continue
        g = gdf.to_crs(crs) if gdf.crs is not None and as_crs(gdf.crs) != crs else gdf
        geoms = g.geometry.to_numpy()
        geoms = geoms[~shapely.is_empty(geoms) & ~shapely.is_missing(geoms)]
        if len(geoms):
            boxes.append(shapely.total_bounds(geoms))
    if not boxes:
        return None
    a = np.array(boxes)
    return (float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 2].max()), float(a[:, 3].max()))


def scene_bounds_in(scene: Scene, crs: CRS) -> tuple[float, float, float, float]:
    """A scene's footprint bounds in ``crs``."""
    return tuple(scene.grid.footprint_in(crs).bounds)  # type: ignore[return-value]


def to_frame(gdf: gpd.GeoDataFrame, frame: MapFrame, what: str) -> gpd.GeoDataFrame:
    """``gdf`` in the frame's CRS, rows with empty geometries dropped."""
    from ecopatch.errors import MissingCRSError

    if gdf.crs is None:
        raise MissingCRSError(f"{what} has no CRS; set one (gdf.set_crs('EPSG:4490')) before drawing")
    out = gdf if as_crs(gdf.crs) == frame.crs else gdf.to_crs(frame.crs)
    keep = ~(out.geometry.is_empty | out.geometry.isna())
    return out[keep.to_numpy()]


# ---------------------------------------------------------------------------
# Imagery on the frame
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Layers:
    """Bands of one scene on a frame's display grid (float32, NaN = cloud/no data/outside)."""

    bands: Mapping[str, np.ndarray]
    valid: np.ndarray
    covered: bool

    def __getitem__(self, name: str) -> np.ndarray:
        return self.bands[name]

    def __contains__(self, name: object) -> bool:
        return name in self.bands


def render_on_frame(scene: Scene, frame: MapFrame, bands: Sequence[str], *, max_pixels: int) -> Layers:
    """Read ``bands`` of ``scene`` decimated over the frame and warp them onto its grid.

    Uses :func:`ecopatch.io.raster.read_decimated` (overviews / every k-th
    pixel), so a full tile or a multi-GB drone mosaic is never read whole;
    nearest-neighbour resampling keeps the imagery's own pixels visible.
    """
    from rasterio.warp import Resampling, reproject

    from ecopatch.io.raster import read_decimated

    names = [b for b in bands if b in scene.bands]
    shape = frame.grid.shape
    try:
        obs = read_decimated(scene, aoi_bounds=frame.bounds, aoi_crs=frame.crs, max_pixels=max_pixels,
                             bands=names)
    except NoOverlapError:
        log.info("%s does not cover the map frame", scene.label)
        nan = {n: np.full(shape, np.nan, np.float32) for n in names}
        return Layers(nan, np.zeros(shape, bool), False)
    out: dict[str, np.ndarray] = {}
    picks = _nearest_pixels(obs.grid, frame.grid)
    if picks is not None:
        # same CRS, both north-up: nearest neighbour is an index lookup (GDAL's warper costs ~15 ms a band)
        rows, cols, inside = picks
        for n in names:
            dst = np.asarray(obs.bands[n], dtype=np.float32)[rows[:, None], cols[None, :]]
            dst[~inside] = np.nan
            out[n] = dst
    else:
        src_crs = obs.grid.crs.to_wkt()
        dst_crs = frame.crs.to_wkt()
        for n in names:
            dst = np.full(shape, np.nan, np.float32)
            reproject(
                np.asarray(obs.bands[n], dtype=np.float32), dst,
                src_transform=obs.grid.transform, src_crs=src_crs,
                dst_transform=frame.grid.transform, dst_crs=dst_crs,
                src_nodata=np.nan, dst_nodata=np.nan, resampling=Resampling.nearest,
            )
            out[n] = dst
    valid = np.ones(shape, bool)
    for v in out.values():
        valid &= np.isfinite(v)
    if not scene.sensor.reflectance and out:
        # drone mosaics: a black collar is no data (as in Scene.read); JPEG-compressed
        # collars are not exactly 0, hence the small tolerance (3 of 255)
        dark = np.ones(shape, bool)
        for v in out.values():
            with np.errstate(invalid="ignore"):
                dark &= v <= 3.0 / 255.0
        valid &= ~dark
        for v in out.values():
            v[~valid] = np.nan
    covered = bool(valid.any())
    k = int(round(getattr(scene, "cloud_buffer_m", 0.0) / _frame_res_m(frame)))
    if k > 0 and scene.mask is not None and covered:
        # the decimated read does not grow the product's cloud mask; do it here so
        # cloud fringes do not show as change
        from scipy.ndimage import binary_dilation

        valid &= ~binary_dilation(~valid, iterations=min(k, 10))
        for v in out.values():
            v[~valid] = np.nan
    return Layers(out, valid, covered)


def _nearest_pixels(src: Grid, dst: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """For grids in one CRS, both north-up: the ``src`` row and column under each ``dst`` pixel centre.

    Returns ``(rows, cols, inside)``, ``inside`` (2-D) False where the centre
    falls outside ``src``; None when the grids need a real reprojection.
    """
    a, b = src.transform, dst.transform
    if src.crs != dst.crs or a.b or a.d or b.b or b.d or a.e >= 0 or b.e >= 0:
        return None
    x = b.c + (np.arange(dst.width) + 0.5) * b.a
    y = b.f + (np.arange(dst.height) + 0.5) * b.e
    c = np.floor((x - a.c) / a.a).astype(np.int64)
    r = np.floor((y - a.f) / a.e).astype(np.int64)
    ok_c = (c >= 0) & (c < src.width)
    ok_r = (r >= 0) & (r < src.height)
    return np.clip(r, 0, src.height - 1), np.clip(c, 0, src.width - 1), ok_r[:, None] & ok_c[None, :]


def _frame_res_m(frame: MapFrame) -> float:
    return frame.grid.res[0] * frame.m_per_unit


COMPOSITES = ("true", "false")


def composite_bands(scene: Scene, composite: str) -> tuple[tuple[str, str, str], str]:
    """Bands (R, G, B order) and the label key of a composite for ``scene``.

    Drone RGB mosaics (not reflectance) are shown as delivered; a false-colour
    composite falls back to true colour for a scene without NIR.
    """
    if composite not in COMPOSITES:
        raise ConfigError(f"composite={composite!r}; use one of {list(COMPOSITES)}")
    if not scene.sensor.reflectance:
        return ("red", "green", "blue"), "asis"
    if composite == "false":
        if all(b in scene.bands for b in ("nir", "red", "green")):
            return ("nir", "red", "green"), "false"
        log.info("%s has no NIR band: true colour instead of false colour", scene.label)
    missing = [b for b in ("red", "green", "blue") if b not in scene.bands]
    if missing:
        raise MissingBandError(
            f"{scene.source}: a colour composite needs red, green and blue bands; missing {missing} "
            f"(the scene has {list(scene.bands)})"
        )
    return ("red", "green", "blue"), "true"


def stretch_limits(
    arrays: Sequence[np.ndarray], pct: tuple[float, float] = (2.0, 98.0)
) -> tuple[float, float]:
    """Robust display limits: the ``pct`` percentiles of the finite values of ``arrays`` together."""
    vals = np.concatenate([np.asarray(a, dtype=np.float32)[np.isfinite(a)].ravel() for a in arrays] or [[]])
    if vals.size == 0:
        return (0.0, 1.0)
    if vals.size > 400_000:  # a regular subsample is plenty for percentiles
        vals = vals[:: vals.size // 400_000]
    lo, hi = (float(v) for v in np.percentile(vals, pct))
    if not hi > lo:
        hi = lo + 1e-3
    return (lo, hi)


def robust_stretch(
    rgb: Sequence[np.ndarray],
    *,
    pct: tuple[float, float] = (2.0, 98.0),
    limits: Sequence[tuple[float, float]] | None = None,
) -> np.ndarray:
    """Stretch three bands to an RGBA image with a percentile clip; NaN pixels transparent.

    Parameters
    ----------
    rgb : sequence of 3 ndarrays of shape (rows, cols)
        Red, green and blue display channels (reflectance or any unit); NaN
        where not observed.
    pct : tuple of float
        Lower and upper percentiles (0-100) clipped to black and white, per
        band, over the finite pixels.
    limits : sequence of 3 (low, high), optional
        Fixed limits per band instead of percentiles (to stretch two dates
        alike, use :func:`stretch_limits` over both).

    Returns
    -------
    ndarray of float32, shape (rows, cols, 4)
        RGBA in [0, 1]; alpha 0 where any band is NaN.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[0.0, 0.1], [0.2, np.nan]], dtype=np.float32)
    >>> img = robust_stretch([a, a, a], pct=(0, 100))
    >>> img[..., 0].round(2).tolist(), img[..., 3].tolist()
    ([[0.0, 0.5], [1.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]])
    """
    if len(rgb) != 3:
        raise ConfigError(f"robust_stretch needs 3 bands (R, G, B), got {len(rgb)}")
    lims = list(limits) if limits is not None else [stretch_limits([b], pct) for b in rgb]
    shape = np.shape(rgb[0])
    out = np.zeros((*shape, 4), np.float32)
    valid = np.ones(shape, bool)
    for i, (band, (lo, hi)) in enumerate(zip(rgb, lims)):
        b = np.asarray(band, dtype=np.float32)
        valid &= np.isfinite(b)
        with np.errstate(invalid="ignore"):
            out[..., i] = np.clip((b - lo) / (hi - lo), 0, 1)
    out[..., :3] = np.nan_to_num(out[..., :3], nan=0.0)
    out[..., 3] = valid
    return out


def rgba_image(layers: Layers, bands: Sequence[str], kind: str,
               limits: Sequence[tuple[float, float]] | None) -> np.ndarray:
    """RGBA for a composite: stretched with ``limits``, or as delivered (``kind == "asis"``)."""
    chans = [layers[b] for b in bands]
    if kind == "asis":
        return robust_stretch(chans, limits=[(0.0, 1.0)] * 3)
    return robust_stretch(chans, limits=limits)


# ---------------------------------------------------------------------------
# Axes furniture
# ---------------------------------------------------------------------------
def nodata_background(ax: Axes, frame: MapFrame) -> None:
    """A hatched grey rectangle under the imagery: transparent pixels show as cloud / no data."""
    from matplotlib.patches import Rectangle

    left, b, r, t = frame.bounds
    ax.add_patch(Rectangle((left, b), r - left, t - b, facecolor=NODATA_FACE, edgecolor=NODATA_EDGE,
                           hatch=NODATA_HATCH, linewidth=0, zorder=0, gid=GID_NODATA))


def nodata_handle(lang: str) -> Any:
    """Legend entry of cloud / no data."""
    from matplotlib.patches import Patch

    return Patch(facecolor=NODATA_FACE, edgecolor=NODATA_EDGE, hatch=NODATA_HATCH, label=V.map_word("nodata", lang))


def setup_map_axes(ax: Axes, frame: MapFrame, fs: FontSetup, *, xlabel: bool = True, ylabel: bool = True) -> None:
    """Extent, aspect (true shape on the ground), tick formatting and axis labels in the frame's units."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    left, b, r, t = frame.bounds
    ax.set_xlim(left, r)
    ax.set_ylim(b, t)
    if frame.geographic:
        ax.set_aspect(1.0 / math.cos(math.radians(frame.centre[1])))
        span = max(r - left, t - b)
        nd = max(2, min(6, int(math.ceil(-math.log10(max(span, 1e-9)))) + 1))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _deg(v, nd, "E", "W")))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _deg(v, nd, "N", "S")))
        xl, yl = V.map_word("lon", fs.lang), V.map_word("lat", fs.lang)
    else:
        ax.set_aspect("equal")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}"))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}"))
        xl, yl = V.map_word("easting", fs.lang), V.map_word("northing", fs.lang)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=3, steps=[1, 2, 2.5, 5, 10]))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))
    ax.tick_params(labelsize=7, length=3)
    ax.tick_params(axis="y", labelrotation=90)
    if xlabel:
        ax.set_xlabel(xl, fontsize=8)
    if ylabel:
        ax.set_ylabel(yl, fontsize=8)


def _deg(v: float, nd: int, pos: str, neg: str) -> str:
    return f"{abs(v):.{nd}f}°{pos if v >= 0 else neg}"


def crs_note(frame: MapFrame, lang: str) -> str:
    """One line stating the CRS and coordinate units, e.g. "CRS EPSG:32650 (WGS 84 / UTM zone 50N), m"."""
    crs = frame.crs
    epsg = crs.to_epsg()
    code = f"EPSG:{epsg}" if epsg else "custom"
    unit = V.map_word("degree", lang) if frame.geographic else _unit_name(crs, lang)
    if lang == "zh":
        return f"{V.map_word('crs', lang)}：{code}（{crs.name}）；坐标单位：{unit}"
    return f"{V.map_word('crs', lang)}: {code} ({crs.name}); coordinates in {unit}"


def _unit_name(crs: CRS, lang: str) -> str:
    info = crs.axis_info
    name = info[0].unit_name if info else "metre"
    if name in ("metre", "meter"):
        return V.map_word("metre", lang)
    return name


def _nice_length(target_m: float) -> float:
    if target_m <= 0:
        return 1.0
    e = math.floor(math.log10(target_m))
    for m in (5, 2, 1):
        if m * 10**e <= target_m:
            return float(m * 10**e)
    return float(10**e)


def _length_text(length_m: float, lang: str) -> str:
    if length_m >= 1000:
        v = length_m / 1000
        num = f"{v:g}"
        return f"{num} 千米" if lang == "zh" else f"{num} km"
    num = f"{length_m:g}"
    return f"{num} 米" if lang == "zh" else f"{num} m"


def add_scale_bar(ax: Axes, frame: MapFrame, fs: FontSetup, *, loc: str = "lower left",
                  fraction: float = 0.25) -> Any:
    """Draw a scale bar (alternating black and white segments) of a round ground length.

    Parameters
    ----------
    ax : matplotlib Axes
        A map axes whose data coordinates are the frame's CRS.
    frame : MapFrame
        Gives the ground metres per CRS unit.
    fs : FontSetup
        Fonts and label language.
    loc : str
        Corner, as for a legend.
    fraction : float
        Target length as a share of the frame width; rounded down to 1, 2
        or 5 × 10ⁿ metres.

    Returns
    -------
    matplotlib.offsetbox.AnchoredOffsetbox
        The bar (``gid="ecopatch-scalebar"``).
    """
    from matplotlib.offsetbox import AuxTransformBox, TextArea, VPacker
    from matplotlib.patches import Rectangle

    length_m = _nice_length(frame.width_m * fraction)
    lead = int(f"{length_m:e}"[0])
    nseg = {1: 4, 2: 4, 5: 5}.get(lead, 4)
    unit_len = length_m / frame.m_per_unit
    seg = unit_len / nseg
    left, b, r, t = frame.bounds
    my = frame.m_per_unit / math.cos(math.radians(frame.centre[1])) if frame.geographic else frame.m_per_unit
    h = (t - b) * 0.012 * (frame.m_per_unit / my) if frame.geographic else (t - b) * 0.012
    h = max(h, (t - b) * 0.008)
    bar = AuxTransformBox(ax.transData)
    for i in range(nseg):
        bar.add_artist(Rectangle((i * seg, 0), seg, h, facecolor="black" if i % 2 == 0 else "white",
                                 edgecolor="black", linewidth=0.6))
    text = TextArea(_length_text(length_m, fs.lang), textprops={"fontsize": 7, "family": list(fs.family)})
    box = VPacker(children=[bar, text], align="center", pad=0, sep=2)
    return _add_map_furniture(ax, box, loc=loc, pad=0.3, gid=GID_SCALEBAR)


def _add_map_furniture(ax: Any, box: Any, *, loc: str, pad: float, gid: str) -> Any:
    """Place ``box`` (a scale bar, a north arrow) in a corner of ``ax`` on a light, framed patch."""
    from matplotlib.offsetbox import AnchoredOffsetbox

    anchored = AnchoredOffsetbox(loc=loc, child=box, pad=pad, borderpad=0.4, frameon=True)
    anchored.patch.set_alpha(0.8)
    anchored.patch.set_edgecolor("#666666")
    anchored.patch.set_linewidth(0.5)
    anchored.set_gid(gid)
    anchored.set_zorder(20)
    ax.add_artist(anchored)
    return anchored


def true_north_angle(frame: MapFrame) -> float:
    """Angle of true north from the map's up direction at the frame centre, degrees (clockwise +).

    Zero for longitude/latitude frames; in a projected CRS it is minus the
    meridian convergence: east of the central meridian (northern hemisphere)
    true north leans west of grid north, e.g. about −1.5° at 119.95° E,
    30.2° N in UTM zone 50N (central meridian 117° E).
    """
    if frame.geographic:
        return 0.0
    geo = frame.crs.geodetic_crs or as_crs("EPSG:4326")
    cx, cy = frame.centre
    lon, lat = transformer(frame.crs, geo).transform(cx, cy)
    x2, y2 = transformer(geo, frame.crs).transform(lon, min(lat + 0.01, 89.9))
    return math.degrees(math.atan2(x2 - cx, y2 - cy))


def add_north_arrow(ax: Axes, frame: MapFrame, fs: FontSetup, *, loc: str = "upper right",
                    size_pt: float = 26.0) -> Any:
    """Draw a north arrow pointing to true north, with "N" (or 北) at its tip, in a small box.

    Parameters
    ----------
    ax : matplotlib Axes
    frame : MapFrame
        For the meridian convergence (see :func:`true_north_angle`).
    fs : FontSetup
    loc : str
        Corner, as for a legend.
    size_pt : float
        Arrow length, points.

    Returns
    -------
    matplotlib.offsetbox.AnchoredOffsetbox
        ``gid="ecopatch-north-arrow"``.
    """
    from matplotlib.offsetbox import DrawingArea, TextArea, VPacker
    from matplotlib.patches import Polygon

    theta = math.radians(true_north_angle(frame))
    s = size_pt
    w = 0.32 * s
    da = DrawingArea(s * 0.75, s, 0, 0)
    c = np.array([s * 0.375, s / 2])

    def rot(pts: list[tuple[float, float]]) -> np.ndarray:
        p = np.asarray(pts, dtype=float)
        ct, st = math.cos(theta), math.sin(theta)
        return c + p @ np.array([[ct, -st], [st, ct]])

    tip, tail = (0.0, s / 2), (0.0, -s / 2)
    notch = (0.0, -s * 0.22)
    da.add_artist(Polygon(rot([tip, (-w / 2, tail[1]), notch]), closed=True, facecolor="black",
                          edgecolor="black", linewidth=0.8))
    da.add_artist(Polygon(rot([tip, (w / 2, tail[1]), notch]), closed=True, facecolor="white",
                          edgecolor="black", linewidth=0.8))
    letter = TextArea(V.map_word("north", fs.lang), textprops={"fontsize": 8, "fontweight": fs.bold,
                                                        "family": list(fs.family)})
    box = VPacker(children=[letter, da], align="center", pad=0, sep=1)
    return _add_map_furniture(ax, box, loc=loc, pad=0.25, gid=GID_NORTH)


def pick_corner(frame: MapFrame, geoms: Sequence[Any] | None, candidates: Sequence[str],
                size: float = 0.22) -> str:
    """The corner of ``candidates`` (legend-style locations) that hides the fewest of ``geoms``.

    Ties go to the first candidate, so maps look alike when nothing is in the way.
    """
    import shapely

    if geoms is None or len(geoms) == 0:
        return candidates[0]
    left, b, r, t = frame.bounds
    w, h = (r - left) * size, (t - b) * size
    boxes = {
        "upper right": (r - w, t - h, r, t),
        "upper left": (left, t - h, left + w, t),
        "lower right": (r - w, b, r, b + h),
        "lower left": (left, b, left + w, b + h),
    }
    arr = np.asarray(list(geoms), dtype=object)
    best, best_n = candidates[0], None
    for c in candidates:
        n = int(shapely.intersects(arr, shapely.box(*boxes[c])).sum())
        if best_n is None or n < best_n:
            best, best_n = c, n
    return best


def geom_path(geom: Any) -> Any:
    """A matplotlib Path of a (Multi)Polygon's rings (holes included), or of a line."""
    import shapely
    from matplotlib.path import Path

    verts: list[np.ndarray] = []
    codes: list[np.ndarray] = []

    def ring(coords: np.ndarray, closed: bool) -> None:
        n = len(coords)
        if n < 2:
            return
        c = np.full(n, Path.LINETO, dtype=Path.code_type)
        c[0] = Path.MOVETO
        if closed:
            c[-1] = Path.CLOSEPOLY
        verts.append(coords[:, :2])
        codes.append(c)

    for part in shapely.get_parts(geom):
        if isinstance(part, shapely.Polygon):
            ring(np.asarray(part.exterior.coords), True)
            for hole in part.interiors:
                ring(np.asarray(hole.coords), True)
        elif isinstance(part, (shapely.LineString, shapely.LinearRing)):
            ring(np.asarray(part.coords), False)
        elif hasattr(part, "geoms"):
            sub = geom_path(part)
            if len(sub.vertices):
                verts.append(sub.vertices)
                codes.append(sub.codes)
    if not verts:
        return Path(np.zeros((0, 2)))
    return Path(np.concatenate(verts), np.concatenate(codes))


def draw_outlines(ax: Axes, geoms: Sequence[Any], colours: Sequence[str], *, linewidth: float = 1.6,
                  fill_alpha: float = 0.0, halo: bool = True, zorder: float = 6) -> PatchCollection:
    """Outline polygons, one path per geometry, in per-geometry colours with a dark halo.

    Returns
    -------
    matplotlib.collections.PatchCollection
        ``gid="ecopatch-outlines"``; ``len(coll.get_paths()) == len(geoms)``.
    """
    import matplotlib.patheffects as pe
    from matplotlib.collections import PatchCollection
    from matplotlib.colors import to_rgba
    from matplotlib.patches import PathPatch

    patches = [PathPatch(geom_path(g)) for g in geoms]
    faces = [to_rgba(c, fill_alpha) for c in colours] if fill_alpha > 0 else "none"
    coll = PatchCollection(patches, facecolors=faces, edgecolors=list(colours), linewidths=linewidth,
                           zorder=zorder, match_original=False)
    if halo:
        coll.set_path_effects([pe.Stroke(linewidth=linewidth + 1.8, foreground="#111111"), pe.Normal()])
    coll.set_gid(GID_OUTLINES)
    ax.add_collection(coll, autolim=False)
    return coll


def outline_handle(colour: str, label: str, *, linewidth: float = 1.8, fill_alpha: float = 0.0) -> Any:
    """Legend entry of an outline colour."""
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Patch

    return Patch(facecolor=to_rgba(colour, fill_alpha) if fill_alpha else "none", edgecolor=colour,
                 linewidth=linewidth, label=label)


def category_handles(kind: str, values: Iterable[Any], lang: str, *, counts: bool = True,
                     order: Sequence[str] | None = None, fill_alpha: float = 0.0) -> list[Any]:
    """Legend entries for the categories present in ``values`` (with counts)."""
    from collections import Counter

    c = Counter("" if v is None else str(v) for v in values)
    keys = [k for k in (order or []) if k in c] + sorted(k for k in c if k not in (order or []))
    out = []
    for k in keys:
        lab = V.label(kind, k, lang) or "—"
        if counts:
            lab = f"{lab} ({c[k]})"
        out.append(outline_handle(category_colour(kind, k), lab, fill_alpha=fill_alpha))
    return out


def category_order(kind: str) -> list[str]:
    """Display order of a kind's categories."""
    from ecopatch.vocabulary import CHANGE_TYPES

    return {
        "change_type": list(CHANGE_TYPES),
        "status": list(MINE_STATUS_ZH) + list(CASE_STATUS_ZH),
        "colour": ["red", "yellow", "green"],
        "zone": ["core", "buffer", "experimental", "outside"],
    }.get(kind, [])


def zone_key(row: Mapping[str, Any]) -> str | None:
    """Canonical zone of a reserve row (``zone`` column, or 功能分区/zone_name via the aliases)."""
    for col in ("zone", "功能分区", "zone_name", "功能区", "分区"):
        v = row.get(col)
        if v is not None and v == v:
            k = canonical_zone(v) if col != "zone" else (canonical_zone(v) or str(v))
            if k:
                return k
    return None


def first_column(frame: Any, names: Sequence[str]) -> str | None:
    """The first of ``names`` that is a column of ``frame``."""
    cols = set(getattr(frame, "columns", ()))
    for n in names:
        if n in cols:
            return n
    return None


def finish(fig: Any, fs: FontSetup, hooks: Sequence[Callable[[], None]] = (), *,
           texts: Sequence[Any] | None = None) -> None:
    """Common last steps: fonts on any CJK text (of ``texts``, default every text of ``fig``), callbacks."""
    from ecopatch.fonts import apply_fonts

    for h in hooks:
        h()
    apply_fonts(fig, fs, texts)
