"""The frame of a map (what part of the ground it shows, in which CRS) and the imagery on it.

:class:`MapFigure` and :func:`new_figure` make the figure; :class:`MapFrame` fixes the
ground extent and its CRS; :func:`render_on_frame` reads a scene decimated onto the frame's
display grid; :func:`robust_stretch` turns bands into an image.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine

from ecopatch._warnfilters import filters_guard
from ecopatch.errors import ConfigError, InputDataError, MissingBandError, NoOverlapError
from ecopatch.geo.geodesy import as_crs, transformer
from ecopatch.geo.grid import Grid

if TYPE_CHECKING:
    import geopandas as gpd
    from pyproj import CRS

    from ecopatch.raster.scene import Scene

log = logging.getLogger(__name__)


__all__ = [
    "COMPOSITES",
    "Layers",
    "MapFigure",
    "MapFrame",
    "composite_bands",
    "frame_crs",
    "ground_m_per_unit",
    "layers_bounds",
    "new_figure",
    "render_on_frame",
    "rgba_image",
    "robust_stretch",
    "scene_bounds_in",
    "stretch_limits",
    "to_frame",
]


class MapFigure(Figure):
    """A matplotlib Figure that also shows inline in Jupyter when pyplot was never imported.

    IPython shows plain :class:`~matplotlib.figure.Figure` objects as text
    unless pyplot's inline backend has registered its formatter; this class
    renders itself as PNG (``_repr_png_``) in that case.  Its PNGs are
    compressed at zlib level 1 unless ``pil_kwargs`` say otherwise
    (:data:`ecopatch.outputs.maps.render.PNG_COMPRESS_LEVEL`: the same pixels, about
    half the encoding time of PIL's default level 6, files about 6 % larger);
    this figure only, nothing global.  In every other respect it is a Figure.
    """

    def savefig(self, fname: Any, **kwargs: Any) -> None:  # noqa: D102 - Figure.savefig's
        if "pil_kwargs" not in kwargs and _png_format(fname, kwargs.get("format")):
            from ecopatch.outputs.maps.render import PNG_COMPRESS_LEVEL

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
    engine = fig.get_layout_engine()
    if kwargs.get("layout") == "constrained" and isinstance(engine, ConstrainedLayoutEngine):
        engine.set(w_pad=0.1, h_pad=0.06)
    return fig


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
    return tuple(scene.grid.footprint_in(crs).bounds)


def to_frame(gdf: gpd.GeoDataFrame, frame: MapFrame, what: str) -> gpd.GeoDataFrame:
    """``gdf`` in the frame's CRS, rows with empty geometries dropped."""
    from ecopatch.errors import MissingCRSError

    if gdf.crs is None:
        raise MissingCRSError(f"{what} has no CRS; set one (gdf.set_crs('EPSG:4490')) before drawing")
    out = gdf if as_crs(gdf.crs) == frame.crs else gdf.to_crs(frame.crs)
    keep = ~(out.geometry.is_empty | out.geometry.isna())
    return out[keep.to_numpy()]


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

    Uses :func:`ecopatch.raster.source.read_decimated` (overviews / every k-th
    pixel), so a full tile or a multi-GB drone mosaic is never read whole;
    nearest-neighbour resampling keeps the imagery's own pixels visible.
    """
    from rasterio.warp import Resampling, reproject

    from ecopatch.raster.source import read_decimated

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
            with filters_guard():  # rasterio's array warp enters catch_warnings (see ecopatch._warnfilters)
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
