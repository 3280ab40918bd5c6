"""A mine's composition inside its polygon: edge unmixing, the vegetation share, the area sums.

The per-mine core of :func:`ecopatch.analyses.restoration.assess_restoration`.
A cell on a mine's boundary holds ground inside and outside the polygon; its
inside part is unmixed against the neighbouring cells entirely outside
(:func:`inside_compositions`), then weighted by the cell's ground area (m²)
and its share inside, and summed per mine (:func:`mine_sums`).

:func:`inside_compositions` and :func:`mine_sums_reference` are the NumPy
specification; :func:`mine_sums` runs :func:`mine_sums_kernel`, the same
steps in one numba pass over the mine's cells (a mine's window is a few
thousand cells, and the NumPy steps are about a hundred array operations:
0.5 ms a mine, as much as its read), and falls back to the reference
where numba is missing or for Otsu thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ecopatch.compute.cover import CoverParams, local_veg_fraction
from ecopatch.compute.kernels import HAVE_NUMBA, njit
from ecopatch.geo.grid import Window

__all__ = ["MINE_SUMS", "UNMIXED", "inside_composition", "inside_compositions", "mine_sums", "mine_sums_kernel",
           "mine_sums_reference"]

#: The per-mine sums, in order (all m² except the ``fvc_*`` sums, m² × FVC): the mine's area in the
#: task's core, observed on both dates, damaged (bare or built before), restored, vegetated before and
#: after, water before and after, FVC before and after, still damaged after, vegetation lost.
MINE_SUMS = (
    "total", "observed", "damaged", "restored", "veg_before", "veg_after",
    "water_before", "water_after", "fvc_before", "fvc_after", "damaged_after", "lost",
)
#: The layers unmixed at edge cells; the vegetation share inside then follows from the unmixed FVC.
UNMIXED = ("bare", "built", "water", "fvc")


def mine_sums(cov: np.ndarray, both: np.ndarray, at: Window, before: Mapping[str, np.ndarray],
              after: Mapping[str, np.ndarray], area: np.ndarray, keep: Window, edge: str,
              params_before: CoverParams, params_after: CoverParams) -> np.ndarray:
    """One mine's :data:`MINE_SUMS` from one read of the cover layers around it.

    Parameters
    ----------
    cov : ndarray of float64, shape ``at.shape``
        The mine's share of each cell of its window (0-1, 1 entirely inside).
    both : ndarray of bool
        Cells observed on both dates, over the read.
    at : Window
        The mine's window, relative to the read.
    before, after : mapping of str to ndarray
        The dates' :data:`UNMIXED` layers over the read (shares 0-1, FVC 0-1).
    area : ndarray of float64
        Ground area of each cell of the read, m².
    keep : Window
        The cells of the mine's window that count, relative to it (the task's core).
    edge : {"unmix", "uniform"}
        Unmix edge cells against their outside neighbours, or count a cell's
        share of its composition as is.
    params_before, params_after : CoverParams
        The dates' cover rules.

    Returns
    -------
    ndarray of float64, shape (12,)
    """
    got = mine_sums_kernel(cov, both, (at.row_off, at.col_off), tuple(before[k] for k in UNMIXED),
                           tuple(after[k] for k in UNMIXED), area,
                           (keep.row_off, keep.row_end, keep.col_off, keep.col_end), edge == "uniform",
                           params_before, params_after)
    if got is not None:
        return got
    sl = at.slices
    return mine_sums_reference(cov, both[sl], {k: before[k][sl] for k in UNMIXED},
                               {k: after[k][sl] for k in UNMIXED}, area[sl], keep, edge, params_before,
                               params_after)


# ---------------------------------------------------------------------------
# The NumPy specification
# ---------------------------------------------------------------------------
def _neighbour_mean(values: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` over the usable cells of each 3×3 neighbourhood, and their count.

    ``values`` may be a stack of layers (axis 0) sharing ``usable``: each
    layer's mean is then what it would be alone, bit for bit.
    """
    from scipy.ndimage import uniform_filter

    v = np.where(usable, values, 0.0).astype(np.float64)
    n = usable.astype(np.float64)
    s = uniform_filter(v, size=(1,) * (v.ndim - 2) + (3, 3), mode="constant") * 9
    c = uniform_filter(n, size=3, mode="constant") * 9
    c = np.rint(c)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(c > 0, s / np.maximum(c, 1), np.nan)
    return m, c


def _unmix(f: np.ndarray, cov: np.ndarray, valid: np.ndarray, outside: np.ndarray,
           edge_cells: np.ndarray) -> np.ndarray:
    """Inside amount ``x = clip(f - (1 - w) · b, 0, w)`` at edge cells, ``w · f`` elsewhere.

    ``b`` is the mean of ``f`` over the neighbouring cells entirely outside
    the polygon; cells without such a neighbour keep ``w · f``.  ``f`` may
    be a stack of layers (axis 0) over the same cells.
    """
    f = np.where(valid, f, 0.0).astype(np.float64)
    x = cov * f
    if edge_cells.any():
        b, cnt = _neighbour_mean(f, outside)
        use = edge_cells & (cnt > 0)
        x = np.where(use, np.clip(f - (1.0 - cov) * np.nan_to_num(b), 0.0, cov), x)
    return np.where(valid, x, 0.0)


def inside_composition(layers: Mapping[str, np.ndarray], cov: np.ndarray, valid: np.ndarray,
                       edge: str, params: CoverParams) -> dict[str, np.ndarray]:
    """Per cell, the composition (0-1 shares) of the part inside the polygon.

    Edge cells are unmixed against their outside neighbours
    (:func:`_unmix`).  Unmixing needs quantities that mix linearly across a
    cell: water, bare and built shares, and FVC.  The vegetation share
    inside is then the cover rule of ``params`` applied to the *unmixed
    FVC* of the analysis cell: the same rule whatever the sensor, so a 10 m
    cell of young planting that a drone sees as 80 % plants and 20 % soil
    between them counts as vegetated, as the satellite's FVC of that cell
    says.  Shares are rescaled to sum to 1 inside.
    """
    return inside_compositions([layers], cov, valid, edge, [params])[0]


def inside_compositions(dates: Sequence[Mapping[str, np.ndarray]], cov: np.ndarray, valid: np.ndarray,
                        edge: str, params: Sequence[CoverParams]) -> list[dict[str, np.ndarray]]:
    """:func:`inside_composition` of several dates' layers over the same cells, unmixed in one go."""
    w = np.where(cov > 0, cov, 1.0)
    edge_cells = (cov > 0) & (cov < 1) & valid
    if edge == "uniform":
        edge_cells = np.zeros_like(edge_cells)
    outside = (cov == 0) & valid
    stack = np.stack([layers[k] for layers in dates for k in UNMIXED])
    unmixed = np.clip(_unmix(stack, cov, valid, outside, edge_cells) / w, 0.0, 1.0)
    out = []
    for d, (layers, p) in enumerate(zip(dates, params)):
        inside = dict(zip(UNMIXED, unmixed[d * len(UNMIXED):(d + 1) * len(UNMIXED)]))
        fv = np.where(valid, layers["fvc"], np.nan)
        vfrac = local_veg_fraction(fv, p, fvc_for=np.where(valid, inside["fvc"], np.nan), context=cov >= 1.0)
        inside["veg"] = np.where(valid, (1.0 - inside["water"]) * np.nan_to_num(vfrac), 0.0)
        rest = 1.0 - inside["veg"] - inside["water"]
        nonveg = inside["bare"] + inside["built"]
        with np.errstate(invalid="ignore", divide="ignore"):
            share_built = np.where(nonveg > 0, inside["built"] / nonveg, 0.0)
        rest = np.clip(rest, 0.0, 1.0)
        inside["built"] = rest * share_built
        inside["bare"] = rest - inside["built"]
        out.append({k: np.where(valid, inside[k], 0.0) for k in ("veg", *UNMIXED)})
    return out


def mine_sums_reference(cov: np.ndarray, vboth: np.ndarray, before: Mapping[str, np.ndarray],
                        after: Mapping[str, np.ndarray], area: np.ndarray, keep: Window, edge: str,
                        params_before: CoverParams, params_after: CoverParams) -> np.ndarray:
    """One mine's :data:`MINE_SUMS` over its window, in NumPy: the specification of :func:`mine_sums`.

    ``cov`` is the mine's coverage of the window's cells, ``vboth`` the cells
    observed on both dates, ``before`` and ``after`` the dates' layers
    (:data:`UNMIXED`) and ``area`` the cells' areas (m²) over the window;
    only the cells of ``keep`` (relative to the window) count.
    """
    b_in, a_in = inside_compositions([before, after], cov, vboth, edge, [params_before, params_after])
    dam_b = b_in["bare"] + b_in["built"]
    restored = np.clip(a_in["veg"] - b_in["veg"], 0.0, dam_b)
    lost = np.clip(b_in["veg"] - a_in["veg"], 0.0, b_in["veg"])
    kept = np.zeros(cov.shape, dtype=bool)
    kept[keep.slices] = True
    A = area * kept
    Aw = A * cov
    return np.array([
        np.sum(Aw),
        np.sum(Aw * vboth),
        np.sum(Aw * dam_b),
        np.sum(Aw * restored),
        np.sum(Aw * b_in["veg"]),
        np.sum(Aw * a_in["veg"]),
        np.sum(Aw * b_in["water"]),
        np.sum(Aw * a_in["water"]),
        np.sum(Aw * b_in["fvc"]),
        np.sum(Aw * a_in["fvc"]),
        np.sum(Aw * (a_in["bare"] + a_in["built"])),
        np.sum(Aw * lost),
    ])


# ---------------------------------------------------------------------------
# The same in one numba pass
# ---------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _np_clip(x, lo, hi):  # noqa: ANN001, ANN202
    """``np.clip`` of one float: NaN stays NaN (NumPy's max-then-min, same comparisons)."""
    if math.isnan(x):
        return x
    y = x if x > lo else lo
    return y if y < hi else hi


@njit(cache=True, inline="always")
def _nan_to_num(x):  # noqa: ANN001, ANN202
    if math.isnan(x):
        return 0.0
    if math.isinf(x):
        return 1.7976931348623157e308 if x > 0 else -1.7976931348623157e308
    return x


@njit(cache=True)
def _uniform_rows(src, size, dst):  # noqa: ANN001
    """``scipy.ndimage.uniform_filter1d(src, size, axis=0, mode="constant")``, step for step (SciPy 1.17).

    A running sum down each column, over the column padded with zeros:
    the first window summed, then the entering value minus the leaving one
    added at each step, and each sum divided by ``size``.
    """
    h, w = src.shape
    s1 = size // 2
    for j in range(w):
        tmp = 0.0
        for k in range(size):
            r = k - s1
            tmp += src[r, j] if 0 <= r < h else 0.0
        dst[0, j] = tmp / size
        for i in range(1, h):
            a, b = i + size - 1 - s1, i - 1 - s1
            tmp += (src[a, j] if a < h else 0.0) - (src[b, j] if b >= 0 else 0.0)
            dst[i, j] = tmp / size


@njit(cache=True)
def _uniform(src, size, tmp, dst):  # noqa: ANN001
    """``scipy.ndimage.uniform_filter(src, size, mode="constant")`` of a 2-D array: columns, then rows.

    The rows' running sums are the columns' on the transposed arrays.
    """
    _uniform_rows(src, size, tmp)
    _uniform_rows(tmp.T, size, dst.T)


@njit(cache=True)
def _ramp_f32(x, lo, hi, hard):  # noqa: ANN001, ANN202
    """:func:`ecopatch.compute.cover.veg_from_fvc` (fixed thresholds) of one float64 value, in float32 as NumPy."""
    v = np.float32(x)
    if math.isnan(v):
        return v
    if hard:
        return np.float32(1.0) if v >= np.float32((lo + hi) / 2) else np.float32(0.0)
    r = (v - np.float32(lo)) / np.float32(hi - lo)
    return _np_clip(r, np.float32(0.0), np.float32(1.0))


@njit(cache=True)
def _veg_share(fv, target, context, p, out):  # noqa: ANN001
    """:func:`ecopatch.compute.cover.local_veg_fraction` (fixed thresholds, 5 × 5 end-members) into ``out`` (float32).

    ``fv``: FVC of the cells (NaN where not observed); ``target``: the FVC to
    convert; ``context``: cells allowed as end-members; ``p``: method (0 soft,
    1 hard), ``fvc_bare``, ``fvc_veg``, dense margin, texture margin.
    """
    h, w = fv.shape
    hard = p[0] == 1.0
    lo, hi = p[1], p[2]
    any_veg = False
    any_bare = False
    veg = np.zeros((h, w))
    bare = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            out[i, j] = _ramp_f32(target[i, j], lo, hi, hard)
            f = fv[i, j]
            if context[i, j] and math.isfinite(f):
                if f >= hi:
                    veg[i, j] = 1.0
                    any_veg = True
                if f <= lo:
                    bare[i, j] = 1.0
                    any_bare = True
    if hard or not (any_veg and any_bare):
        return
    tmp = np.empty((h, w))
    nv = np.empty((h, w))
    nb = np.empty((h, w))
    sv = np.empty((h, w))
    sb = np.empty((h, w))
    _uniform(veg, 5, tmp, nv)
    _uniform(bare, 5, tmp, nb)
    vals = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            vals[i, j] = fv[i, j] if veg[i, j] > 0 else 0.0
    _uniform(vals, 5, tmp, sv)
    for i in range(h):
        for j in range(w):
            vals[i, j] = fv[i, j] if bare[i, j] > 0 else 0.0
    _uniform(vals, 5, tmp, sb)
    dense_at = hi + p[3]
    for i in range(h):
        for j in range(w):
            n_v = np.rint(nv[i, j] * 5 * 5)
            n_b = np.rint(nb[i, j] * 5 * 5)
            ref_veg = (sv[i, j] * 5 * 5) / n_v if n_v > 0 else math.nan
            ref_bare = (sb[i, j] * 5 * 5) / n_b if n_b > 0 else math.nan
            near_bare = False
            for a in range(max(i - 1, 0), min(i + 2, h)):
                for b in range(max(j - 1, 0), min(j + 2, w)):
                    if bare[a, b] > 0:
                        near_bare = True
            t = target[i, j]
            use = (near_bare and ref_veg >= dense_at and t < ref_veg - p[4] and n_b > 0 and math.isfinite(t))
            if not use:
                continue
            span = ref_veg - ref_bare
            local = _np_clip((t - ref_bare) / (span if span > 0.2 else math.nan), 0.0, 1.0)
            if math.isfinite(local):
                out[i, j] = np.float32(local)


@njit(cache=True, nogil=True)
def _mine_sums_loop(cov, both, r0, c0, lb, la, area, keep, uniform, pb, pa, out):  # noqa: ANN001
    h, w = cov.shape
    valid = np.empty((h, w), dtype=np.bool_)
    edge = np.zeros((h, w), dtype=np.bool_)
    outside = np.zeros((h, w))
    any_edge = False
    for i in range(h):
        for j in range(w):
            v = both[r0 + i, c0 + j]
            c = cov[i, j]
            valid[i, j] = v
            if v and c == 0:
                outside[i, j] = 1.0
            if v and not uniform and c > 0 and c < 1:
                edge[i, j] = True
                any_edge = True
    # the layers (bare, built, water, FVC of before then after), unmixed at edge cells
    raw = np.zeros((8, h, w))
    x = np.empty((8, h, w))
    for k in range(8):
        src = lb[k] if k < 4 else la[k - 4]
        for i in range(h):
            for j in range(w):
                if valid[i, j]:
                    raw[k, i, j] = src[r0 + i, c0 + j]
                x[k, i, j] = cov[i, j] * raw[k, i, j]
    if any_edge:
        tmp = np.empty((h, w))
        cnt = np.empty((h, w))
        _uniform(outside, 3, tmp, cnt)
        for i in range(h):
            for j in range(w):
                cnt[i, j] = np.rint(cnt[i, j] * 9)
        vals = np.empty((h, w))
        s = np.empty((h, w))
        for k in range(8):
            for i in range(h):
                for j in range(w):
                    vals[i, j] = raw[k, i, j] if outside[i, j] > 0 else 0.0
            _uniform(vals, 3, tmp, s)
            for i in range(h):
                for j in range(w):
                    n = cnt[i, j]
                    if edge[i, j] and n > 0:
                        b = (s[i, j] * 9) / max(n, 1.0)
                        c = cov[i, j]
                        x[k, i, j] = _np_clip(raw[k, i, j] - (1.0 - c) * _nan_to_num(b), 0.0, c)
    for k in range(8):
        for i in range(h):
            for j in range(w):
                c = cov[i, j]
                v = x[k, i, j] if valid[i, j] else 0.0
                x[k, i, j] = _np_clip(v / (c if c > 0 else 1.0), 0.0, 1.0)
    # per date, the vegetation share inside from the unmixed FVC, then the shares rescaled to sum to 1
    fv = np.empty((h, w))
    target = np.empty((h, w))
    context = np.empty((h, w), dtype=np.bool_)
    vfrac = np.empty((h, w), dtype=np.float32)
    comp = np.zeros((2, 5, h, w))  # veg, bare, built, water, FVC inside
    for d in range(2):
        src = lb[3] if d == 0 else la[3]
        for i in range(h):
            for j in range(w):
                fv[i, j] = src[r0 + i, c0 + j] if valid[i, j] else math.nan
                target[i, j] = x[4 * d + 3, i, j] if valid[i, j] else math.nan
                context[i, j] = cov[i, j] >= 1.0
        _veg_share(fv, target, context, pb if d == 0 else pa, vfrac)
        for i in range(h):
            for j in range(w):
                if not valid[i, j]:
                    continue
                bare_u, built_u, water_u = x[4 * d, i, j], x[4 * d + 1, i, j], x[4 * d + 2, i, j]
                veg = (1.0 - water_u) * _nan_to_num(np.float64(vfrac[i, j]))
                rest = _np_clip(1.0 - veg - water_u, 0.0, 1.0)
                nonveg = bare_u + built_u
                share_built = built_u / nonveg if nonveg > 0 else 0.0
                built = rest * share_built
                comp[d, 0, i, j] = veg
                comp[d, 1, i, j] = rest - built
                comp[d, 2, i, j] = built
                comp[d, 3, i, j] = water_u
                comp[d, 4, i, j] = x[4 * d + 3, i, j]
    # the sums over this task's core cells (keep: rows kr0-kr1, columns kc0-kc1 of the window)
    for q in range(12):
        out[q] = 0.0
    kr0, kr1, kc0, kc1 = keep
    for i in range(kr0, kr1):
        for j in range(kc0, kc1):
            aw = area[r0 + i, c0 + j] * cov[i, j]
            bv, av = comp[0, 0, i, j], comp[1, 0, i, j]
            dam = comp[0, 1, i, j] + comp[0, 2, i, j]
            out[0] += aw
            out[1] += aw if valid[i, j] else 0.0
            out[2] += aw * dam
            out[3] += aw * _np_clip(av - bv, 0.0, dam)
            out[4] += aw * bv
            out[5] += aw * av
            out[6] += aw * comp[0, 3, i, j]
            out[7] += aw * comp[1, 3, i, j]
            out[8] += aw * comp[0, 4, i, j]
            out[9] += aw * comp[1, 4, i, j]
            out[10] += aw * (comp[1, 1, i, j] + comp[1, 2, i, j])
            out[11] += aw * _np_clip(bv - av, 0.0, bv)


def mine_sums_kernel(cov: np.ndarray, both: np.ndarray, at: tuple[int, int], before: tuple[np.ndarray, ...],
                     after: tuple[np.ndarray, ...], area: np.ndarray, keep: tuple[int, int, int, int], uniform: bool,
                     params_before: CoverParams, params_after: CoverParams) -> np.ndarray | None:
    """One mine's :data:`MINE_SUMS` from its read's cover layers, in one pass.

    What :func:`mine_sums_reference` computes with NumPy (edge unmixing
    against the outside neighbours, the vegetation share inside from the
    unmixed FVC with local end-members, the shares rescaled, then the sums),
    with the same operations in the same order up to the final sums, which
    add cell by cell instead of pairwise (``tests/test_kernels.py``: equal
    to 1e-12 relative).  The kernel releases the GIL.

    Parameters
    ----------
    cov : ndarray of float64, shape (h, w)
        The mine's coverage of its window's cells (0-1), 1 where inside.
    both : ndarray of bool
        Observed on both dates, over the read (a larger window).
    at : (int, int)
        Row and column of the mine's window in the read.
    before, after : tuple of four ndarrays
        Bare, built, water and FVC layers of each date over the read.
    area : ndarray of float64
        Cell areas over the read, m².
    keep : (int, int, int, int)
        Rows ``keep[0]:keep[1]`` and columns ``keep[2]:keep[3]`` of the
        mine's window that count (the task's core).
    uniform : bool
        No edge unmixing (``edge="uniform"``).
    params_before, params_after : CoverParams
        The dates' cover rules.

    Returns
    -------
    ndarray of float64, shape (12,) or None
        None when numba is missing, or for rules it does not cover (Otsu
        thresholds): the caller runs the NumPy reference.
    """
    if not HAVE_NUMBA or params_before.thresholds != "fixed" or params_after.thresholds != "fixed":
        return None
    layers = (*before, *after)
    dtype = layers[0].dtype
    if dtype.kind != "f" or any(a.dtype != dtype or a.shape != both.shape for a in layers):
        return None
    out = np.empty(12)
    _mine_sums_loop(cov, both, int(at[0]), int(at[1]), before, after, area, tuple(int(k) for k in keep),
                    bool(uniform), _share_params(params_before), _share_params(params_after), out)
    return out


def _share_params(p: CoverParams, dense_margin: float = 0.25, texture_margin: float = 0.15) -> np.ndarray:
    """A CoverParams as :func:`_veg_share` takes it (the margins are :func:`local_veg_fraction`'s defaults)."""
    return np.array([1.0 if p.method == "hard" else 0.0, p.fvc_bare, p.fvc_veg, dense_margin, texture_margin])
