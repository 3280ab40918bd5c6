"""Connected change pixels of one window, and their union across windows, exactly.

Each window (block) of the analysis grid is labelled on its own
(4-connectivity); components that touch across a block border are joined
by comparing the facing rows and columns of labels, and their outlines (in
integer pixel coordinates, so that shared edges coincide exactly) are
unioned.  The result is identical to labelling the whole raster, for any
block size and on a Dask cluster.

Per component, :func:`block_components` sums :data:`STAT_NAMES` (pixel
count, true ground areas in m²) and area-weighted sums of any extra layers
(cover fractions of both dates, the change statistic ...), so that patch
attributes are exact whatever the tiling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from ecopatch._warnfilters import filters_guard
from ecopatch.geo.grid import Window

if TYPE_CHECKING:
    from ecopatch.compute.change import PixelChange

__all__ = [
    "CATEGORIES",
    "STAT_NAMES",
    "BlockComponents",
    "MergedComponents",
    "PackedOutlines",
    "block_components",
    "merge_components",
    "pack_outlines",
    "unpack_outlines",
]

#: Set True (tests only) to trace outlines with GDAL's polygoniser instead of the numba kernel.
_NUMPY_ONLY = False

#: Categories labelled separately: disturbance (pixel code 1) and vegetation gain (code 2).
CATEGORIES = ("disturbance", "gain")
_CODE = {"disturbance": 1, "gain": 2}

# ---------------------------------------------------------------------------
# Components of one block
# ---------------------------------------------------------------------------
#: Per-component sums returned by :func:`block_components`, in this order: pixel count, then
#: areas (m²): all of the component, its estimated changed part, weighted by the pixels'
#: change probability, and of its *seed* pixels (change far beyond the scene's noise).
STAT_NAMES: tuple[str, ...] = ("n_px", "a_total", "a_change", "a_prob", "a_seed")


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
    min_area_m2: float = 0.0,
    layers_at: Window | None = None,
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
    min_area_m2 : float
        Components whose estimated changed area (``a_change``) is below this
        (m²) and that do not
        touch the block's border are left out: they can only be dropped
        later, and outlining the many one- and two-pixel components of a
        full tile is most of the cost.  Components on the border are kept,
        since they may grow by merging.
    layers_at : Window, optional
        The part of the padded block the ``layers`` cover, in the padded
        block's pixel frame (default: all of it).  Every changed pixel must
        lie in it: the layers are read at those pixels only.

    Returns
    -------
    BlockComponents
    """
    from scipy import ndimage

    from ecopatch.compute.kernels import outline_kernel

    layers = dict(layers or {})
    names = tuple(layers)
    core = (slice(halo, halo + window.height), slice(halo, halo + window.width))
    code_p = change.code
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
    seed = change.seed[core] if change.seed is not None else np.ones(share.shape, dtype=bool)
    for cat in CATEGORIES:
        mask_p = code_p == _CODE[cat]
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
        # the changed pixels in the layers' frame
        lr, lc = (rr + halo, cc + halo) if layers_at is None else (rr + halo - layers_at.row_off,
                                                                    cc + halo - layers_at.col_off)
        if layers_at is not None and not (lr.min() >= 0 and lc.min() >= 0 and lr.max() < layers_at.height
                                          and lc.max() < layers_at.width):
            raise ValueError(f"block_components: changed pixels outside layers_at={layers_at}")
        cols = [
            bsum(np.ones(len(idx))),
            bsum(a_g),
            bsum(a_g * share[rr, cc]) + rim_extra[1:],
            bsum(a_g * prob[rr, cc]),
            bsum(a_g * seed[rr, cc]),
        ]
        for nm in names:
            v = np.asarray(layers[nm])[lr, lc].astype(np.float64)
            ok = np.isfinite(v)
            cols.append(bsum(np.where(ok, a_g * v, 0.0)))
            cols.append(bsum(np.where(ok, a_g, 0.0)))
        block_stats = np.column_stack(cols)
        keep = block_stats[:, STAT_NAMES.index("a_change")] >= min_area_m2
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

    The reference :func:`ecopatch.compute.kernels.outline_kernel` is tested against.
    """
    from affine import Affine
    from rasterio.features import shapes

    # rasterio warns "no geotransform" for an identity transform (the block at the grid
    # origin) and warning filters are not thread-safe, so shift that block by one pixel
    # and shift its outlines back (exact: the coordinates are whole numbers)
    shift = 1 if (window.col_off, window.row_off) == (0, 0) else 0
    tr = Affine(1, 0, window.col_off + shift, 0, 1, window.row_off + shift)
    polys: dict[int, list[Any]] = {}
    with filters_guard():  # rasterio's polygoniser enters catch_warnings (see ecopatch._warnfilters)
        found = list(shapes(lab.astype(np.int32), mask=mask, connectivity=4, transform=tr))
    for geom, val in found:
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


def _zero_edge(n: int) -> np.ndarray:
    """``n`` read-only zeros (uint8), one byte of memory (a broadcast view; nothing cached between calls)."""
    return np.broadcast_to(np.zeros(1, dtype=np.uint8), (n,))


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
            at = _block_at(blocks, row, col)
            if at is None:
                continue
            lab = _border_label(blocks[at], cat, row, col)
            if lab > 0:
                all_stats[key[(cat, at, lab)], i_change] += amount
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
    bounds = shapely.bounds(outs_arr)
    order = np.lexsort((np.array([CATEGORIES.index(c) for c in cats]), bounds[:, 0], bounds[:, 1]))
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
