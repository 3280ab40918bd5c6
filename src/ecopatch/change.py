"""Two-date change: per-pixel change type, then change polygons merged exactly across windows.

The pixel rules work on the cover fractions and FVC of :mod:`ecopatch.cover`
at both dates (on one analysis grid), so they hold for any pair of sensors,
including a Sentinel-2 baseline against a drone RGB mosaic:

==================  =========================================================
change type         a pixel is of this type when ...
==================  =========================================================
``water``           water share rose by ``water_gain`` (new pond, flooded pit)
``construction``    built fraction rose by ``built_gain`` and built ground is
                    at least ``built_share`` after (roofs, concrete)
``bare_soil``       FVC fell by ``fvc_drop`` and bare + built ground is the
                    larger share after
``vegetation_loss`` FVC fell by ``fvc_drop`` otherwise (clearing to sparse
                    shrub or grass)
``vegetation_gain`` FVC rose by ``fvc_gain`` (and no disturbance)
==================  =========================================================

The water share that appeared is the larger of the rise of the water
fraction and, where both dates have NIR and SWIR1, a linear estimate from
the fall of their reflectance: water is the one surface dark in both, and
reflectance (unlike MNDWI) mixes linearly, so a 10 m cell 60 % covered by a
new pond reads about 0.6 (:func:`water_gain_linear`).

Pixels not observed at both dates (cloud, shadow, no data) never change.
Connected pixels (4-connectivity) of the four disturbance types form one
patch, whose type is the type with the largest area, except that
``construction`` or ``water`` wins when it makes up ``construction_share`` of
the patch (buildings and ponds come with cleared ground around them);
``vegetation_gain`` patches are formed separately.

Windows: each block is labelled on its own; components that touch across a
block border are joined by comparing the facing rows/columns of labels, and
their outlines (in integer pixel coordinates, so that shared edges coincide
exactly) are unioned.  The result is identical to labelling the whole raster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import shapely

from .errors import ConfigError
from .grid import Window

__all__ = [
    "CHANGE_CODES",
    "BlockComponents",
    "ChangeParams",
    "block_components",
    "classify_change",
    "merge_components",
]

#: Set True (tests only) to force the NumPy reference instead of the fused numba kernel.
_NUMPY_ONLY = False

#: Pixel codes of :func:`classify_change` (0 = no change).
CHANGE_CODES: dict[str, int] = {
    "vegetation_loss": 1,
    "bare_soil": 2,
    "construction": 3,
    "water": 4,
    "vegetation_gain": 5,
}
_CODE_NAMES = {v: k for k, v in CHANGE_CODES.items()}
_DISTURBANCE = (1, 2, 3, 4)
#: Categories labelled separately: disturbance and gain.
CATEGORIES = ("disturbance", "gain")


@dataclass(frozen=True)
class ChangeParams:
    """Thresholds of the pixel change rules (see the module docstring).

    Parameters
    ----------
    fvc_drop, fvc_gain : float
        Fall / rise of fractional vegetation cover (0-1) that counts as
        vegetation change.
    water_gain, built_gain : float
        Rise of the water / built fraction (0-1) that counts.
    built_share : float
        Built fraction after (0-1) a construction pixel needs.
    construction_share : float
        Share of a patch's area (0-1) of construction pixels that makes the
        whole patch ``construction``.
    water_share_small, water_mndwi_rise : float
        A patch is ``water`` from this share of water pixels when its mean
        MNDWI rose by at least ``water_mndwi_rise`` (see :func:`patch_type`).
    rim_min : float
        A cell bordering a patch but below the thresholds adds its changed
        share to the patch's ``change_m2`` only when its change reaches this
        fraction (0-1) of a threshold: partly changed cells count, mild
        widespread change around a patch (seasonal crops) does not.
    loss_reference : float
        FVC fall of a pixel entirely cleared to sparse vegetation; the
        changed share of a ``vegetation_loss`` pixel is its FVC fall over
        this (used for ``change_m2``).
    noise : mapping, optional
        Standard deviation of ΔFVC, Δwater and Δbuilt on unchanged pixels
        (``{"fvc": 0.03, ...}``), used for confidence.  Set by
        :func:`ecopatch.detect_changes` from the scene pair.
    """

    fvc_drop: float = 0.25
    fvc_gain: float = 0.30
    water_gain: float = 0.40
    built_gain: float = 0.40
    built_share: float = 0.40
    construction_share: float = 0.30
    loss_reference: float = 0.40
    water_share_small: float = 0.15
    water_mndwi_rise: float = 0.20
    rim_min: float = 0.5
    noise: Mapping[str, float] = field(default_factory=lambda: {"fvc": 0.05, "water": 0.05, "built": 0.05})

    def __post_init__(self) -> None:
        for name in ("fvc_drop", "fvc_gain", "water_gain", "built_gain", "built_share",
                     "construction_share", "loss_reference", "water_share_small", "water_mndwi_rise", "rim_min"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise ConfigError(f"ChangeParams.{name}={v}: must be in (0, 1]")
        object.__setattr__(self, "noise", dict(self.noise))


@dataclass(frozen=True)
class PixelChange:
    """Per-pixel result of :func:`classify_change`.

    ``code`` (uint8, :data:`CHANGE_CODES`), ``prob`` (0-1, probability that
    the change exceeds its threshold given the noise), ``share`` (0-1,
    estimated changed share of the pixel), ``observed`` (bool, observed at
    both dates), and ``rim_disturbance`` / ``rim_gain`` (0-1, the changed
    share of pixels below the thresholds, net of one noise standard
    deviation; counted for the rim of a patch, see :func:`block_components`).
    """

    code: np.ndarray
    prob: np.ndarray
    share: np.ndarray
    observed: np.ndarray
    rim_disturbance: np.ndarray | None = None
    rim_gain: np.ndarray | None = None


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def water_gain_linear(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Share of each cell newly covered by water, from the fall of NIR and SWIR1 (0-1), or None.

    Water is the one surface dark in both NIR and SWIR1, and reflectance
    mixes linearly, so the share of a cell that turned to water is about
    ``(rho_before - rho_after) / (rho_before - rho_water)`` in each band
    (``rho_water`` 0.03 in NIR, 0.01 in SWIR1).  The smaller of the two
    estimates is taken (asphalt or a dark roof darkens NIR but not SWIR1),
    and it counts only where MNDWI rose by more than 0.05 (full weight from
    0.15) and the blue band after stays below 0.15 (none above 0.18: steel
    roofs and concrete are bright in blue).  Needs ``rho_nir``,
    ``rho_swir1``, ``rho_blue`` and ``mndwi`` layers at both dates; returns
    None otherwise.
    """
    need = ("rho_swir1", "rho_blue", "rho_nir", "mndwi")
    if not all(k in before and k in after for k in need):
        return None

    def fall(band: str, dark: float) -> np.ndarray:
        b = np.asarray(before[band], dtype=np.float64)
        a = np.asarray(after[band], dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.clip((b - a) / np.maximum(b - dark, 0.05), 0.0, 1.0)

    share = np.minimum(fall("rho_nir", 0.03), fall("rho_swir1", 0.01))
    with np.errstate(invalid="ignore"):
        gate = _ramp(np.asarray(after["mndwi"]) - np.asarray(before["mndwi"]), 0.05, 0.15)
        gate = gate * _ramp(-np.asarray(after["rho_blue"], dtype=np.float64), -0.18, -0.15)
    return np.nan_to_num(share * gate)


def _phi(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(z)


def classify_change(
    before: Mapping[str, np.ndarray],
    after: Mapping[str, np.ndarray],
    params: ChangeParams,
    *,
    aoi: np.ndarray | None = None,
) -> PixelChange:
    """Per-pixel change type from cover fractions at two dates.

    Parameters
    ----------
    before, after : mapping of str to ndarray of shape (rows, cols)
        ``veg``, ``bare``, ``built``, ``water`` fractions and ``fvc`` (0-1,
        NaN where not observed), as from :func:`ecopatch.cover.cover_fractions`.
    params : ChangeParams
    aoi : ndarray of bool, optional
        Pixels that may change (inside the area of interest).

    Returns
    -------
    PixelChange
    """
    from ._kernels import change_kernel

    fused = change_kernel(before, after, params, aoi) if not _NUMPY_ONLY else None
    if fused is not None:
        return PixelChange(*fused)
    fb, fa = before["fvc"], after["fvc"]
    observed = np.isfinite(fb) & np.isfinite(fa)
    for k in ("water", "built", "bare", "veg"):
        observed &= np.isfinite(before[k]) & np.isfinite(after[k])
    if aoi is not None:
        observed_aoi = observed & aoi
    else:
        observed_aoi = observed
    with np.errstate(invalid="ignore"):
        dfvc = np.where(observed, fa - fb, 0.0)
        dwater = np.where(observed, after["water"] - before["water"], 0.0)
        dbuilt = np.where(observed, after["built"] - before["built"], 0.0)
        dveg = np.where(observed, after["veg"] - before["veg"], 0.0)
        ba = np.where(observed, after["built"], 0.0)
        bare_a = np.where(observed, after["bare"], 0.0)
    lin = water_gain_linear(before, after)
    if lin is not None:
        dwater = np.maximum(dwater, np.where(observed, lin, 0.0))
    p = params
    is_water = dwater >= p.water_gain
    is_built = (dbuilt >= p.built_gain) & (ba >= p.built_share) & ~is_water
    veg_drop = dfvc <= -p.fvc_drop
    is_bare = veg_drop & ((bare_a + ba) >= 0.5) & ~is_water & ~is_built
    is_loss = veg_drop & ~is_water & ~is_built & ~is_bare
    is_gain = (dfvc >= p.fvc_gain) & ~(is_water | is_built | veg_drop)
    code = np.zeros(fb.shape, dtype=np.uint8)
    code[is_loss] = 1
    code[is_bare] = 2
    code[is_built] = 3
    code[is_water] = 4
    code[is_gain] = 5
    code[~observed_aoi] = 0

    nz = p.noise
    s_fvc, s_w, s_b = (max(float(nz.get(k, 0.05)), 1e-3) for k in ("fvc", "water", "built"))
    z = np.full(fb.shape, -np.inf)
    z = np.where(is_water, (dwater - p.water_gain) / s_w, z)
    z = np.where(is_built, (dbuilt - p.built_gain) / s_b, z)
    z = np.where(is_bare | is_loss, (-dfvc - p.fvc_drop) / s_fvc, z)
    z = np.where(is_gain, (dfvc - p.fvc_gain) / s_fvc, z)
    # a pixel just at the threshold has probability 0.5 of being above it
    prob = np.where(code > 0, _phi(z), 0.0)

    share = np.zeros(fb.shape)
    share = np.where(is_water, np.clip(dwater, 0, 1), share)
    share = np.where(is_built, np.clip(np.maximum(dbuilt, -dveg), 0, 1), share)
    share = np.where(is_bare, np.clip(np.maximum(-dveg, bare_a + ba - before["bare"] - before["built"]), 0, 1), share)
    share = np.where(is_loss, np.clip(-dfvc / p.loss_reference, 0, 1), share)
    share = np.where(is_gain, np.clip(np.maximum(dveg, dfvc / p.loss_reference), 0, 1), share)
    share = np.where(code > 0, np.nan_to_num(share), 0.0)

    # changed share of the pixels that stay below the thresholds: counted where
    # they border a patch, so that small patches' areas are not biased low
    noise = s_fvc / p.loss_reference
    rim_d = np.maximum.reduce([-dveg, dwater, dbuilt, -dfvc / p.loss_reference])
    rim_g = np.maximum(dveg, dfvc / p.loss_reference)
    # only partly changed cells count: at least rim_min of the way to a threshold
    strong_d = np.maximum.reduce([-dfvc / p.fvc_drop, dwater / p.water_gain, dbuilt / p.built_gain]) >= p.rim_min
    strong_g = dfvc / p.fvc_gain >= p.rim_min
    rim_d = np.where(observed_aoi & (code == 0) & strong_d, np.clip(rim_d - noise, 0, 1), 0.0)
    rim_g = np.where(observed_aoi & (code == 0) & strong_g, np.clip(rim_g - noise, 0, 1), 0.0)
    return PixelChange(code, prob.astype(np.float32), share.astype(np.float32), observed,
                       np.nan_to_num(rim_d).astype(np.float32), np.nan_to_num(rim_g).astype(np.float32))


# ---------------------------------------------------------------------------
# Components of one block
# ---------------------------------------------------------------------------
#: Per-component sums returned by :func:`block_components`, in this order.
#: ``a_*`` are areas (m²); ``s_*`` are area-weighted sums of a layer, ``w_*`` their weights.
STAT_NAMES: tuple[str, ...] = (
    "n_px", "a_total", "a_change", "a_prob",
    "a_vegetation_loss", "a_bare_soil", "a_construction", "a_water", "a_vegetation_gain",
)


@dataclass
class BlockComponents:
    """Connected change components of one block.

    Attributes
    ----------
    window : Window
        The block (pixels of the analysis grid).
    category : list of str
        Per component: "disturbance" or "gain".
    label : ndarray of int
        Per component, its label within the block and category (1-based).
    outlines_packed : PackedOutlines or ndarray of shapely geometries
        Per component, its outline in integer pixel coordinates of the
        analysis grid (x = column, y = row), packed (:func:`pack_outlines`);
        :attr:`outline` gives the shapely Polygons.
    stats : ndarray of float64, shape (n, len(STAT_NAMES) + 2 * len(layer_names))
        Sums per component: :data:`STAT_NAMES`, then for each layer the
        area-weighted sum and its weight.
    layer_names : tuple of str
        The averaged layers (e.g. ``ndvi_before``).
    borders : dict
        ``(category, side) -> labels`` along the block's ``top``,
        ``bottom``, ``left`` and ``right`` edges (read-only, in the smallest
        unsigned type that holds them).
    pending : list of (category, row, col, m²)
        Rim area owed to the patch of the flagged pixel at (row, col), which
        lies in a neighbouring block.
    """

    window: Window
    category: list[str]
    label: np.ndarray
    outlines_packed: Any
    stats: np.ndarray
    layer_names: tuple[str, ...]
    borders: dict[tuple[str, str], np.ndarray]
    pending: list[tuple[str, int, int, float]] = field(default_factory=list)

    @property
    def outline(self) -> np.ndarray:
        """Per component, its outline (shapely Polygon) in integer pixel coordinates of the analysis grid."""
        return unpack_outlines(self.outlines_packed)


@dataclass(frozen=True)
class PackedOutlines:
    """Polygons with whole-number coordinates as one int32 vertex array plus offsets.

    A block's outlines live from its task to the merge at the end of the
    pass; as shapely objects they take about 32 bytes per vertex (GEOS
    geometries and their Python wrappers), packed 8.  The 2 × 2 benchmark
    mosaic's per-block results were the larger part of the 47 MB its peak
    RSS grew by as they accumulated.  Packing and unpacking are exact.
    """

    kind: Any  # shapely.GeometryType of the ragged arrays
    coords: np.ndarray  # int32, shape (n, 2)
    offsets: tuple[np.ndarray, ...]
    multi: np.ndarray  # bool per outline: it was a MultiPolygon


def pack_outlines(outlines: np.ndarray) -> PackedOutlines | np.ndarray:
    """Pack Polygons/MultiPolygons with whole-number coordinates; anything else is returned as it is."""
    outlines = np.asarray(outlines, dtype=object)
    if not len(outlines):
        return outlines
    types = shapely.get_type_id(outlines)
    if not np.isin(types, (3, 6)).all() or shapely.is_empty(outlines).any():
        return outlines
    kind, xy, offsets = shapely.to_ragged_array(outlines)
    ixy = xy.astype(np.int32)
    if not np.array_equal(ixy, xy):
        return outlines
    return PackedOutlines(kind, ixy, tuple(offsets), types == 6)


def unpack_outlines(packed: PackedOutlines | np.ndarray) -> np.ndarray:
    """The shapely geometries :func:`pack_outlines` packed (the same types, vertices and vertex order)."""
    if not isinstance(packed, PackedOutlines):
        return packed
    geoms = shapely.from_ragged_array(packed.kind, packed.coords.astype(np.float64), packed.offsets)
    single = ~packed.multi
    if packed.kind == shapely.GeometryType.MULTIPOLYGON and single.any():
        geoms[single] = shapely.get_geometry(geoms[single], 0)
    return np.asarray(geoms, dtype=object)


_FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def block_components(
    change: PixelChange,
    window: Window,
    cell_area_m2: np.ndarray,
    layers: Mapping[str, np.ndarray] | None = None,
    *,
    halo: int = 0,
    min_change_m2: float = 0.0,
) -> BlockComponents:
    """Label and outline the change components of one block, with per-component sums.

    Parameters
    ----------
    change : PixelChange
        Of the block's pixels plus ``halo`` pixels on every side.
    window : Window
        The block in the analysis grid (without the halo).
    cell_area_m2 : ndarray
        True ground area of each cell of the padded block, m².
    layers : mapping, optional
        Extra per-pixel layers (padded shape) to average per component (NaN
        ignored), e.g. ``ndvi_before``.
    halo : int
        Pixels of context around the block (0 or 1).  With a halo, the
        changed share of the unflagged pixels bordering a patch (its *rim*)
        is added to the patch's ``a_change``; a rim pixel whose flagged
        neighbour lies in the next block is handed to the merge step
        (:attr:`BlockComponents.pending`).
    min_change_m2 : float
        Components whose changed area is below this (m²) and that do not
        touch the block's border are left out: they can only be dropped
        later, and outlining the many one- and two-pixel components of a
        full tile is most of the cost.  Components on the border are kept,
        since they may grow by merging.

    Returns
    -------
    BlockComponents
    """
    from scipy import ndimage

    from ._kernels import outline_kernel

    layers = dict(layers or {})
    names = tuple(layers)
    core = (slice(halo, halo + window.height), slice(halo, halo + window.width))
    code_p = change.code
    code = code_p[core]
    cats: list[str] = []
    labs: list[int] = []
    outs: list[Any] = []  # per category: ragged arrays (traced) or shapely outlines
    stats: list[np.ndarray] = []
    borders: dict[tuple[str, str], np.ndarray] = {}
    pending: list[tuple[str, int, int, float]] = []
    area_p = np.asarray(cell_area_m2, dtype=np.float64)
    area = area_p[core]
    share = change.share[core]
    prob = change.prob[core]
    for cat in CATEGORIES:
        mask_p = np.isin(code_p, _DISTURBANCE) if cat == "disturbance" else code_p == 5
        mask = mask_p[core]
        lab, n = ndimage.label(mask, structure=_FOUR)
        borders[(cat, "top")] = _edge(lab[0, :])
        borders[(cat, "bottom")] = _edge(lab[-1, :])
        borders[(cat, "left")] = _edge(lab[:, 0])
        borders[(cat, "right")] = _edge(lab[:, -1])
        rim_extra = np.zeros(n + 1)
        rim = change.rim_disturbance if cat == "disturbance" else change.rim_gain
        if halo and rim is not None:  # also with n == 0: rim cells may belong to the next block's patch
            rim_extra = _rim_sums(mask_p, lab, rim, area_p, halo, window, cat, pending, n)
        if n == 0:
            continue
        # sums over the labelled pixels only, gathered in row-major order (the same
        # products and the same order of addition as whole-block arrays would give)
        rr, cc = np.nonzero(lab)
        idx = lab[rr, cc]

        def bsum(w: np.ndarray, idx: np.ndarray = idx, n: int = n) -> np.ndarray:
            return np.bincount(idx, weights=w, minlength=n + 1)[1:]

        a_g = area[rr, cc]
        code_g = code[rr, cc]
        cols = [
            bsum(np.ones(len(idx))),
            bsum(a_g),
            bsum(a_g * share[rr, cc]) + rim_extra[1:],
            bsum(a_g * prob[rr, cc]),
        ]
        for c in (1, 2, 3, 4, 5):
            cols.append(bsum(a_g * (code_g == c)))
        for nm in names:
            v = np.asarray(layers[nm])[core][rr, cc].astype(np.float64)
            ok = np.isfinite(v)
            cols.append(bsum(np.where(ok, a_g * v, 0.0)))
            cols.append(bsum(np.where(ok, a_g, 0.0)))
        block_stats = np.column_stack(cols)
        keep = block_stats[:, STAT_NAMES.index("a_change")] >= min_change_m2
        if not keep.all():
            on_border = np.unique(np.concatenate([lab[0, :], lab[-1, :], lab[:, 0], lab[:, -1]]))
            keep[on_border[on_border > 0] - 1] = True
            lab = np.where(keep[np.maximum(lab, 1) - 1] & (lab > 0), lab, 0)
            mask = lab > 0
        traced = None if _NUMPY_ONLY else outline_kernel(lab, np.r_[False, keep], window.col_off, window.row_off)
        if traced is not None:
            outs.append(traced)
        else:
            outs.append(_outlines_by_gdal(lab, mask, keep, window))
        for k in np.flatnonzero(keep) + 1:
            cats.append(cat)
            labs.append(int(k))
            stats.append(block_stats[k - 1])
    width = len(STAT_NAMES) + 2 * len(names)
    return BlockComponents(
        window=window,
        category=cats,
        label=np.asarray(labs, dtype=np.int64),
        outlines_packed=_pack_parts(outs),
        stats=np.vstack(stats) if stats else np.zeros((0, width)),
        layer_names=names,
        borders=borders,
        pending=pending,
    )


def _outlines_by_gdal(lab: np.ndarray, mask: np.ndarray, keep: np.ndarray, window: Window) -> np.ndarray:
    """Outlines of the kept labels by GDAL's polygoniser (when the numba tracer cannot run).

    The reference :func:`ecopatch._kernels.outline_kernel` is tested against.
    """
    from affine import Affine
    from rasterio.features import shapes

    # rasterio warns "no geotransform" for an identity transform (the block at the grid
    # origin) and warning filters are not thread-safe, so shift that block by one pixel
    # and shift its outlines back (exact: the coordinates are whole numbers)
    shift = 1 if (window.col_off, window.row_off) == (0, 0) else 0
    tr = Affine(1, 0, window.col_off + shift, 0, 1, window.row_off + shift)
    polys: dict[int, list[Any]] = {}
    for geom, val in shapes(lab.astype(np.int32), mask=mask, connectivity=4, transform=tr):
        poly = shapely.geometry.shape(geom)
        if shift:
            poly = shapely.transform(poly, lambda xy: xy - shift)
        polys.setdefault(int(val), []).append(poly)
    out = []
    for k in np.flatnonzero(keep) + 1:
        parts = polys.get(int(k), [])
        out.append(parts[0] if len(parts) == 1 else shapely.union_all(parts))
    return np.asarray(out, dtype=object)


def _pack_parts(parts: Sequence[Any]) -> PackedOutlines | np.ndarray:
    """One :class:`PackedOutlines` from each category's traced ragged arrays (or shapely outlines)."""
    if parts and all(isinstance(p, tuple) for p in parts):
        n = sum(len(p[2]) - 1 for p in parts)
        if n == 0:
            return np.zeros(0, dtype=object)
        coords, rings, polys = [], [np.zeros(1, dtype=np.int64)], [np.zeros(1, dtype=np.int64)]
        n_xy = n_ring = 0
        for xy, ring_off, poly_off in parts:
            coords.append(xy)
            rings.append(ring_off[1:] + n_xy)
            polys.append(poly_off[1:] + n_ring)
            n_xy += len(xy)
            n_ring += len(ring_off) - 1
        return PackedOutlines(shapely.GeometryType.POLYGON, np.concatenate(coords),
                              (np.concatenate(rings), np.concatenate(polys)), np.zeros(n, dtype=bool))
    geoms = [unpack_outlines(_pack_parts([p])) if isinstance(p, tuple) else p for p in parts]
    return pack_outlines(np.concatenate(geoms) if geoms else np.zeros(0, dtype=object))


def _edge(labels: np.ndarray) -> np.ndarray:
    """A compact copy of one edge's labels (read-only): they live until every block is done.

    Most edges cross no change (88 % on the benchmark tile) and share one
    array of zeros; the others take the smallest unsigned type that holds
    their largest label.  Stored as int32 copies they were two thirds of the
    per-block results (20 MB of 31 MB on the 2 x 2 benchmark mosaic).
    """
    top = int(labels.max()) if labels.size else 0
    if top == 0:
        return _zero_edge(len(labels))
    out = labels.astype(np.uint8 if top <= 0xFF else np.uint16 if top <= 0xFFFF else np.uint32)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def _zero_edge(n: int) -> np.ndarray:
    z = np.zeros(n, dtype=np.uint8)
    z.setflags(write=False)
    return z


#: Order in which a rim pixel looks for the patch it belongs to: up, left, right, down.
_NEIGHBOURS = ((-1, 0), (0, -1), (0, 1), (1, 0))


def _rim_sums(mask_p: np.ndarray, lab: np.ndarray, rim: np.ndarray, area_p: np.ndarray, halo: int,
              window: Window, cat: str, pending: list[tuple[str, int, int, float]], n: int) -> np.ndarray:
    """Rim shares (m²) per label; rim pixels whose patch is in the next block go to ``pending``."""
    h, w = window.height, window.width
    core_rim = rim[halo:halo + h, halo:halo + w]
    core_mask = mask_p[halo:halo + h, halo:halo + w]
    # the rim pixels, found once; each then goes to the first flagged neighbour (row-major
    # order within each direction, as whole-block masks would give)
    r_all, c_all = np.nonzero((~core_mask) & (core_rim > 0))
    extra = np.zeros(n + 1)
    free = np.ones(len(r_all), dtype=bool)
    for dr, dc in _NEIGHBOURS:
        hit = free & mask_p[halo + dr + r_all, halo + dc + c_all]
        if not hit.any():
            continue
        free &= ~hit
        rr, cc = r_all[hit], c_all[hit]
        nr, nc = rr + dr, cc + dc
        amount = core_rim[rr, cc] * area_p[halo + rr, halo + cc]
        inside = (nr >= 0) & (nr < h) & (nc >= 0) & (nc < w)
        np.add.at(extra, lab[nr[inside], nc[inside]], amount[inside])
        for r_, c_, a_ in zip(nr[~inside], nc[~inside], amount[~inside]):
            pending.append((cat, int(window.row_off + r_), int(window.col_off + c_), float(a_)))
    return extra


# ---------------------------------------------------------------------------
# Merging across blocks
# ---------------------------------------------------------------------------
class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        p = self.parent
        root = i
        while p[root] != root:
            root = p[root]
        while p[i] != root:
            p[i], i = root, p[i]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if ra < rb:
                self.parent[rb] = ra
            else:
                self.parent[ra] = rb


@dataclass(frozen=True)
class MergedComponents:
    """Change patches after merging across blocks, in pixel coordinates.

    ``category`` (per patch), ``outline`` (shapely Polygons/MultiPolygons in
    integer pixel coordinates), ``stats`` (summed block statistics, columns
    as :attr:`BlockComponents.stats`) and ``layer_names``.
    """

    category: list[str]
    outline: np.ndarray
    stats: np.ndarray
    layer_names: tuple[str, ...]


def merge_components(blocks: Sequence[BlockComponents]) -> MergedComponents:
    """Join components that touch across block borders; sum their statistics.

    Blocks must come from one tiling of the grid (non-overlapping windows).
    Two components join when they share a pixel edge across a border, which
    is exactly when 4-connected labelling of the whole raster would have
    given them one label.

    Returns
    -------
    MergedComponents
        Patches in a deterministic order (by top-left pixel of the outline).
    """
    blocks = [b for b in blocks]
    names = blocks[0].layer_names if blocks else ()
    offsets = np.cumsum([0] + [len(b.label) for b in blocks])
    n = int(offsets[-1])
    if n == 0:
        return MergedComponents([], np.zeros(0, dtype=object), np.zeros((0, len(STAT_NAMES) + 2 * len(names))), names)
    uf = _UnionFind(n)
    # (category, block, label) -> global index
    key: dict[tuple[str, int, int], int] = {}
    for bi, b in enumerate(blocks):
        for j, (c, lab) in enumerate(zip(b.category, b.label)):
            key[(c, bi, int(lab))] = int(offsets[bi] + j)
    by_corner = {(b.window.row_off, b.window.col_off): bi for bi, b in enumerate(blocks)}
    for bi, b in enumerate(blocks):
        w = b.window
        right = _neighbour(by_corner, blocks, w.row_off, w.col_end, w)
        below = _neighbour(by_corner, blocks, w.row_end, w.col_off, w)
        for cat in CATEGORIES:
            if right is not None:
                nb = blocks[right]
                _join(uf, key, cat, bi, b.borders[(cat, "right")], right, nb.borders[(cat, "left")],
                      along=(w.row_off, nb.window.row_off))
            if below is not None:
                nb = blocks[below]
                _join(uf, key, cat, bi, b.borders[(cat, "bottom")], below, nb.borders[(cat, "top")],
                      along=(w.col_off, nb.window.col_off))
    roots = np.array([uf.find(i) for i in range(n)])
    all_stats = np.vstack([b.stats for b in blocks if len(b.label)]).copy()
    i_change = STAT_NAMES.index("a_change")
    for b in blocks:
        for cat, row, col, amount in b.pending:
            j = _block_at(blocks, row, col)
            if j is None:
                continue
            lab = _border_label(blocks[j], cat, row, col)
            if lab > 0:
                all_stats[key[(cat, j, lab)], i_change] += amount
    all_outlines = np.concatenate([b.outline for b in blocks if len(b.label)])
    all_cats = [c for b in blocks for c in b.category]
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(roots):
        groups.setdefault(int(r), []).append(i)
    cats, outs, stats = [], [], []
    for r, members in groups.items():
        cats.append(all_cats[r])
        if len(members) == 1:
            outs.append(all_outlines[members[0]])
        else:
            outs.append(shapely.union_all(all_outlines[members], grid_size=None))
        stats.append(all_stats[members].sum(axis=0))
    # one canonical form, so areas and IDs do not depend on how blocks were cut: no
    # collinear vertices left on block borders (exact in integer pixel coordinates), and
    # one vertex order
    outs_arr = shapely.normalize(shapely.simplify(np.asarray(outs, dtype=object), 0))
    # deterministic order: by (min row, min col) of the outline, then category
    b = shapely.bounds(outs_arr)
    order = np.lexsort((np.array([CATEGORIES.index(c) for c in cats]), b[:, 0], b[:, 1]))
    return MergedComponents([cats[i] for i in order], outs_arr[order], np.vstack(stats)[order], names)


def _block_at(blocks: Sequence[BlockComponents], row: int, col: int) -> int | None:
    for j, b in enumerate(blocks):
        w = b.window
        if w.row_off <= row < w.row_end and w.col_off <= col < w.col_end:
            return j
    return None


def _border_label(b: BlockComponents, cat: str, row: int, col: int) -> int:
    w = b.window
    if row == w.row_off:
        return int(b.borders[(cat, "top")][col - w.col_off])
    if row == w.row_end - 1:
        return int(b.borders[(cat, "bottom")][col - w.col_off])
    if col == w.col_off:
        return int(b.borders[(cat, "left")][row - w.row_off])
    if col == w.col_end - 1:
        return int(b.borders[(cat, "right")][row - w.row_off])
    return 0


def _neighbour(by_corner: dict[tuple[int, int], int], blocks: Sequence[BlockComponents], row: int,
               col: int, w: Window) -> int | None:
    """The block starting exactly at (row, col) that shares an edge with ``w``."""
    return by_corner.get((row, col))


def _join(uf: _UnionFind, key: dict[tuple[str, int, int], int], cat: str, bi: int, edge_a: np.ndarray,
          bj: int, edge_b: np.ndarray, along: tuple[int, int]) -> None:
    # align the two edges in absolute pixel positions
    a0, b0 = along
    start = max(a0, b0)
    stop = min(a0 + len(edge_a), b0 + len(edge_b))
    if stop <= start:
        return
    ea = edge_a[start - a0: stop - a0]
    eb = edge_b[start - b0: stop - b0]
    both = (ea > 0) & (eb > 0)
    if not both.any():
        return
    pairs = np.unique(np.column_stack([ea[both], eb[both]]), axis=0)
    for la, lb in pairs:
        uf.union(key[(cat, bi, int(la))], key[(cat, bj, int(lb))])


def patch_type(stats_row: np.ndarray, params: ChangeParams, mndwi_rise: float | None = None) -> str:
    """Type of a disturbance patch from its per-type areas (see the module docstring).

    Construction and water are what a patch is *for* (a shed, a fish pond);
    the cleared and bare ground around them is their footprint.  So either
    wins when its pixels make up ``params.construction_share`` of the patch
    (the larger of the two if both do).  Water also wins from
    ``params.water_share_small`` when the patch's mean MNDWI rose by
    ``params.water_mndwi_rise`` (``mndwi_rise``): a pond smaller than a few
    20 m SWIR pixels has few pixels that are mostly water, but the rise of
    MNDWI over the whole patch gives it away.  Otherwise the type with the
    largest area wins.
    """
    i0 = STAT_NAMES.index("a_vegetation_loss")
    areas = stats_row[i0:i0 + 4]
    total = areas.sum()
    names = ("vegetation_loss", "bare_soil", "construction", "water")
    if total <= 0:
        return "vegetation_loss"
    strong = [i for i in (2, 3) if areas[i] / total >= params.construction_share]
    if (3 not in strong and mndwi_rise is not None and np.isfinite(mndwi_rise)
            and mndwi_rise >= params.water_mndwi_rise and areas[3] / total >= params.water_share_small):
        strong.append(3)
    if strong:
        return names[max(strong, key=lambda i: areas[i])]
    return names[int(np.argmax(areas))]
