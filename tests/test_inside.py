"""A mine's sums: the numba pass agrees with the NumPy specification, step by step where it decides."""

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ecopatch.compute.cover import CoverParams, local_veg_fraction
from ecopatch.compute.inside import UNMIXED, mine_sums, mine_sums_kernel, mine_sums_reference
from ecopatch.compute.kernels import HAVE_NUMBA
from ecopatch.compute.zonal import coverage_fraction
from ecopatch.geo.grid import Grid, Window

numba_only = pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")


@settings(max_examples=60, deadline=None)
@given(src=arrays(np.float64, st.tuples(st.integers(1, 14), st.integers(1, 14)),
                  elements=st.one_of(st.floats(0, 1), st.just(0.0), st.just(1.0))),
       size=st.sampled_from([3, 5]))
def test_uniform_filter_is_bit_identical_to_scipy(src, size):
    from scipy.ndimage import uniform_filter

    from ecopatch.compute.inside import _uniform

    tmp, out = np.empty_like(src), np.empty_like(src)
    _uniform(src, size, tmp, out)
    assert np.array_equal(out, uniform_filter(src, size=size, mode="constant"))


def _fvc_field(rng, shape, nan_share=0.1):
    """FVC with bare, mixed and dense cells and values on the thresholds (0.10, 0.45, 0.70)."""
    v = rng.choice(np.array([0.0, 0.05, 0.1, 0.3, 0.45, 0.6, 0.7, 0.85, 0.95, 1.0]), shape)
    v = np.where(rng.random(shape) < 0.5, rng.random(shape), v).astype(np.float32)
    v[rng.random(shape) < nan_share] = np.nan
    return v


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10_000), shape=st.tuples(st.integers(1, 16), st.integers(1, 16)),
       method=st.sampled_from(["soft", "hard"]), context_share=st.sampled_from([0.0, 0.6, 1.0]))
def test_veg_share_is_local_veg_fraction(seed, shape, method, context_share):
    from ecopatch.compute.inside import _share_params, _veg_share

    rng = np.random.default_rng(seed)
    p = CoverParams(ndvi_soil=0.12, ndvi_veg=0.82, method=method)
    fv = _fvc_field(rng, shape)
    target = np.where(rng.random(shape) < 0.5, fv.astype(np.float64) * rng.random(shape), fv)
    context = rng.random(shape) < context_share
    got = np.empty(shape, dtype=np.float32)
    _veg_share(fv.astype(np.float64), target, context, _share_params(p), got)
    want = local_veg_fraction(fv, p, fvc_for=target, context=context)
    assert want.dtype == np.float32
    assert np.array_equal(got, want, equal_nan=True)


def _mine_case(seed, shape, pad):
    """A mine's window inside a read: coverage from a polygon, the dates' layers, areas, cells observed."""
    rng = np.random.default_rng(seed)
    h, w = shape
    grid = Grid((h, w), Affine(10, 0, 500_000, 0, -10, 3_300_000), "EPSG:32650")
    x0, y0 = rng.uniform(0, 0.4, 2)
    x1, y1 = rng.uniform(0.6, 1.0, 2)
    poly = shapely.box(500_000 + 10 * w * x0, 3_300_000 - 10 * h * y1, 500_000 + 10 * w * x1,
                       3_300_000 - 10 * h * y0).buffer(rng.uniform(0, 8), quad_segs=2)
    cw, part = coverage_fraction(poly, grid)
    cov = np.zeros(shape)
    cov[cw.slices] = part
    cov[cov > 1.0 - 1e-9] = 1.0
    read = (h + 2 * pad, w + 2 * pad)

    def layers():
        bare = rng.random(read).astype(np.float32)
        built = (rng.random(read) * (1 - bare)).astype(np.float32)
        water = (rng.random(read) * 0.2).astype(np.float32)
        return tuple(np.ascontiguousarray(a) for a in (bare, built, water, _fvc_field(rng, read, 0.0)))

    before, after = layers(), layers()
    both = rng.random(read) > 0.15
    area = rng.uniform(99.0, 101.0, read)
    kr0, kc0 = rng.integers(0, h), rng.integers(0, w)
    keep = Window(row_off=int(kr0), col_off=int(kc0), height=int(rng.integers(1, h - kr0 + 1)),
                  width=int(rng.integers(1, w - kc0 + 1)))
    if rng.random() < 0.5:
        keep = Window(row_off=0, col_off=0, height=h, width=w)
    return cov, both, before, after, area, keep


@numba_only
@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10_000), shape=st.tuples(st.integers(1, 18), st.integers(1, 18)),
       pad=st.integers(0, 3), edge=st.sampled_from(["unmix", "uniform"]),
       methods=st.sampled_from([("soft", "soft"), ("hard", "soft"), ("hard", "hard")]))
def test_mine_sums_kernel_matches_the_numpy_reference(seed, shape, pad, edge, methods):

    cov, both, before, after, area, keep = _mine_case(seed, shape, pad)
    pb, pa = (CoverParams(ndvi_soil=0.12, ndvi_veg=0.82, method=m) for m in methods)
    at = Window(row_off=pad, col_off=pad, height=shape[0], width=shape[1])
    got = mine_sums_kernel(cov, both, (pad, pad), before, after, area,
                           (keep.row_off, keep.row_end, keep.col_off, keep.col_end), edge == "uniform", pb, pa)
    want = mine_sums_reference(cov, both[at.slices], dict(zip(UNMIXED, (a[at.slices] for a in before))),
                                dict(zip(UNMIXED, (a[at.slices] for a in after))), area[at.slices], keep, edge,
                                pb, pa)
    # the same operations up to the sums, which add cell by cell rather than pairwise
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)


@numba_only
def test_mine_sums_kernel_leaves_otsu_and_other_layers_to_numpy():
    cov, both, before, after, area, _ = _mine_case(1, (6, 6), 1)
    soft = CoverParams(ndvi_soil=0.12, ndvi_veg=0.82)
    otsu = CoverParams(ndvi_soil=0.12, ndvi_veg=0.82, thresholds="otsu", veg_threshold=0.4)
    keep = (0, 6, 0, 6)
    assert mine_sums_kernel(cov, both, (1, 1), before, after, area, keep, False, soft, otsu) is None
    mixed = (*before[:3], before[3].astype(np.float64))
    assert mine_sums_kernel(cov, both, (1, 1), mixed, after, area, keep, False, soft, soft) is None
    assert mine_sums_kernel(cov, both, (1, 1), before, after, area, keep, False, soft, soft).shape == (12,)


def test_mine_sums_runs_the_reference_where_the_kernel_does_not():
    cov, both, before, after, area, keep = _mine_case(7, (9, 8), 2)
    soft = CoverParams(ndvi_soil=0.12, ndvi_veg=0.82)
    otsu = CoverParams(ndvi_soil=0.12, ndvi_veg=0.82, thresholds="otsu", veg_threshold=0.4)
    at = Window(row_off=2, col_off=2, height=9, width=8)
    layers_b, layers_a = dict(zip(UNMIXED, before)), dict(zip(UNMIXED, after))
    got = mine_sums(cov, both, at, layers_b, layers_a, area, keep, "unmix", soft, otsu)
    want = mine_sums_reference(cov, both[at.slices], {k: v[at.slices] for k, v in layers_b.items()},
                               {k: v[at.slices] for k, v in layers_a.items()}, area[at.slices], keep, "unmix",
                               soft, otsu)
    assert np.array_equal(got, want)
    # the sums are areas: the mine's core area first, every other sum within it
    assert got[0] == pytest.approx(float((area[at.slices] * cov)[keep.slices].sum()))
    assert np.all(got[1:8] <= got[0] * (1 + 1e-12)) and np.all(got >= 0)
