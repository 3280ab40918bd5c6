"""The fused numba kernels agree with the NumPy reference implementations."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import ecopatch.compute.change as change_mod
import ecopatch.compute.components as components_mod
import ecopatch.compute.cover as cover_mod
from ecopatch.compute.change import tolerant_distance
from ecopatch.compute.cover import CoverParams, cover_fractions
from ecopatch.compute.kernels import HAVE_NUMBA

pytestmark = pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")

refl = arrays(np.float32, (6, 7), elements=st.one_of(st.floats(-0.0625, 0.75, width=32), st.just(np.nan)))
CANOPY = (("blue", 0.03), ("green", 0.06), ("red", 0.035), ("nir", 0.35), ("swir1", 0.17), ("swir2", 0.08))


def _both(fn, *args, module, **kw):
    module._NUMPY_ONLY = True
    try:
        ref = fn(*args, **kw)
    finally:
        module._NUMPY_ONLY = False
    return ref, fn(*args, **kw)


@settings(max_examples=60, deadline=None)
@given(b=refl, g=refl, r=refl, n=refl, s=refl, canopy=st.booleans(), method=st.sampled_from(["soft", "hard"]))
def test_cover_kernel_matches_numpy(b, g, r, n, s, canopy, method):
    bands = {"blue": b, "green": g, "red": r, "nir": n, "swir1": s}
    p = CoverParams(ndvi_soil=0.12, ndvi_veg=0.82, method=method, veg_spectrum=CANOPY if canopy else None)
    ref, fast = _both(cover_fractions, bands, p, module=cover_mod)
    for k in ("veg", "bare", "built", "water", "fvc", "ndvi", "mndwi", "bsi"):
        assert np.array_equal(np.isnan(ref[k]), np.isnan(fast[k])), k
        np.testing.assert_allclose(fast[k], ref[k], atol=2e-5, equal_nan=True, err_msg=k)


@pytest.mark.parametrize("method", ["soft", "hard"])
def test_cover_kernel_where_the_unmixed_bsi_denominator_is_zero(method):
    # swir1 + red and nir + blue both exactly 0 after unmixing (keep = 0: NDVI -1): NumPy gives NaN
    # there and keeps the raw BSI; the kernel must do the same, not raise ZeroDivisionError
    one = np.ones((2, 3), dtype=np.float32)
    bands = {"blue": 0 * one, "green": 0.05 * one, "red": -0.05 * one, "nir": 0 * one, "swir1": 0.05 * one}
    p = CoverParams(ndvi_soil=0.12, ndvi_veg=0.82, method=method, veg_spectrum=CANOPY)
    ref, fast = _both(cover_fractions, bands, p, module=cover_mod)
    for k in ("veg", "bare", "built", "water", "fvc", "bsi"):
        np.testing.assert_array_equal(np.isnan(ref[k]), np.isnan(fast[k]), err_msg=k)
        np.testing.assert_allclose(fast[k], ref[k], atol=2e-5, equal_nan=True, err_msg=k)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), bands=st.integers(1, 6), radius=st.integers(0, 2))
def test_tolerant_kernel_matches_numpy(data, bands, radius):
    shape = (bands, data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9)))
    elems = st.one_of(st.floats(-3, 3, width=32), st.just(np.nan))
    y1 = data.draw(arrays(np.float32, shape, elements=elems))
    y2 = data.draw(arrays(np.float32, shape, elements=elems))
    ref, fast = _both(tolerant_distance, y1, y2, radius, module=change_mod)
    assert np.array_equal(np.isnan(ref), np.isnan(fast))
    np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-5, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), bands=st.integers(1, 6), sigma=st.sampled_from([0.5, 1.0, 1.7]),
       shared=st.booleans())
def test_smooth_nan_kernel_is_bit_identical_to_scipy(data, bands, sigma, shared):
    from ecopatch.compute.change import smooth_nan

    shape = (bands, data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12)))
    x = data.draw(arrays(np.float32, shape, elements=st.one_of(st.floats(-0.25, 1.25, width=32), st.just(np.nan))))
    if shared:  # the usual case: the same pixels observed in every band (one weight image)
        x[:, np.isnan(x).any(axis=0)] = np.nan
    ref, fast = _both(smooth_nan, x, sigma, module=change_mod)
    assert fast.dtype == np.float32
    assert np.array_equal(ref, fast, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), bands=st.integers(1, 6), background=st.booleans(), seed=st.integers(0, 99))
def test_fused_statistic_matches_numpy(data, bands, background, seed):
    from ecopatch.compute.change import ChangeModel, ChangeParams, change_statistic, whitening

    rng = np.random.default_rng(seed)
    shape = (data.draw(st.integers(1, 10)), data.draw(st.integers(1, 10)))
    names = tuple(f"b{i}" for i in range(bands))
    x1 = rng.normal(0.15, 0.05, (bands, *shape)).astype(np.float32)
    x2 = (x1 + rng.normal(0, 0.02, x1.shape) * (rng.random(shape) < 0.3)).astype(np.float32)
    x1[:, rng.random(shape) < 0.1] = np.nan
    a = rng.normal(size=(bands, bands))
    model = ChangeModel(names, tuple((1.0, 0.0) for _ in names), tuple(rng.uniform(0.02, 0.1, bands)),
                        whitening(a @ a.T + np.eye(bands)), rng.normal(0, 0.1, bands),
                        e_centre=0.5, e_spread=0.3, m_centre=1.0, m_spread=0.5)
    bg = rng.normal(0, 0.01, x1.shape).astype(np.float32) if background else None
    before = dict(zip(names, x1))
    after = dict(zip(names, x2))
    params = ChangeParams()
    ref = change_statistic(before, after, model, params, background=bg)  # NumPy, no floor
    fast = change_statistic(before, after, model, params, background=bg, z_floor=-np.inf)
    assert np.array_equal(np.isnan(ref), np.isnan(fast))
    np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_scaled_kernel_is_the_numpy_arithmetic():
    from ecopatch.compute.change import ChangeModel, ChangeParams, _scaled, whitening
    from ecopatch.compute.kernels import scaled_kernel

    rng = np.random.default_rng(3)
    s1 = rng.normal(0.1, 0.05, (6, 37, 41)).astype(np.float32)
    s2 = (s1 + rng.normal(0, 0.01, s1.shape)).astype(np.float32)
    s1[:, :3, :5] = np.nan
    bg = rng.normal(0, 0.01, s1.shape).astype(np.float32)
    a = rng.normal(size=(6, 6))
    model = ChangeModel(tuple("abcdef"), tuple((1.0, 0.0) for _ in range(6)), tuple(rng.uniform(0.02, 0.1, 6)),
                        whitening(a @ a.T + np.eye(6)), rng.normal(0, 0.1, 6))
    ref = _scaled(s1, s2, model, ChangeParams(smooth_px=0.0), bg)
    fast = scaled_kernel(s1, s2, bg, np.asarray(model.scale, np.float32), np.asarray(model.whitening, np.float32),
                         np.asarray(model.centre, np.float32))
    for r, f in zip(ref, fast):
        # the same float32 operations in the same order (bit-identical where numpy's einsum sums
        # band by band from zero, as on x86-64; a platform summing otherwise differs by rounding)
        np.testing.assert_allclose(f, np.moveaxis(r, 0, -1), rtol=1e-6, atol=1e-7, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(row=st.integers(-40, 400), col=st.integers(-40, 400), rows=st.integers(1, 60), cols=st.integers(1, 60),
       factor=st.integers(1, 25), seed=st.integers(0, 9))
def test_background_at_matches_whole_grid_interpolation(row, col, rows, cols, factor, seed):
    from ecopatch.compute.change import Background, _linear_weights

    v = np.random.default_rng(seed).normal(size=(3, 9, 11)).astype(np.float32)
    got = Background(v, factor).at(row, col, (rows, cols))
    change_mod._NUMPY_ONLY = True
    try:
        assert np.array_equal(got, Background(v, factor).at(row, col, (rows, cols)))  # kernel and NumPy
    finally:
        change_mod._NUMPY_ONLY = False
    # the reference: interpolate from the whole coarse grid
    r0, r1, wr = _linear_weights((np.arange(row, row + rows) + 0.5) / factor - 0.5, v.shape[1])
    c0, c1, wc = _linear_weights((np.arange(col, col + cols) + 0.5) / factor - 0.5, v.shape[2])
    top = v[:, r0] * (1 - wr)[None, :, None] + v[:, r1] * wr[None, :, None]
    assert np.array_equal(got, (top[:, :, c0] * (1 - wc) + top[:, :, c1] * wc).astype(np.float32))


@settings(max_examples=80, deadline=None)
@given(b=refl, g=refl, r=refl, n=refl, s1=refl, s2=refl, zeros=st.integers(0, 63))
def test_surface_kernel_is_bit_identical_to_numpy(b, g, r, n, s1, s2, zeros):
    from ecopatch.compute.cover import surface_fractions

    bands = {"blue": b, "green": g, "red": r, "nir": n, "swir1": s1, "swir2": s2}
    for i, k in enumerate(bands):  # zero reflectance: the ratios' divisions by zero
        if zeros >> i & 1:
            bands[k] = np.where(np.arange(bands[k].size).reshape(bands[k].shape) % 3 == 0, np.float32(0), bands[k])
    ref, fast = _both(surface_fractions, bands, module=cover_mod)
    assert list(ref) == list(fast)
    for k in ref:
        assert fast[k].dtype == np.float32, k
        assert np.array_equal(ref[k], fast[k], equal_nan=True), k


# --- outlines ---------------------------------------------------------------------------------
_FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def _traced_and_gdal(mask, keep_share=1.0, seed=0, offset=(7, 3)):
    import shapely
    from scipy import ndimage

    from ecopatch.compute.kernels import outline_kernel
    from ecopatch.geo.grid import Window

    lab, n = ndimage.label(mask, structure=_FOUR)
    keep = np.random.default_rng(seed).random(n) < keep_share
    lab = np.where(np.r_[False, keep][lab], lab, 0)
    coords, rings, polys = outline_kernel(lab, np.r_[False, keep], *offset)
    assert coords.dtype == np.int32
    got = (shapely.from_ragged_array(shapely.GeometryType.POLYGON, coords.astype(float), (rings, polys))
           if len(polys) > 1 else np.zeros(0, dtype=object))
    win = Window(row_off=offset[1], col_off=offset[0], height=mask.shape[0], width=mask.shape[1])
    want = components_mod._outlines_by_gdal(lab, lab > 0, keep, win)
    return got, want


@settings(max_examples=150, deadline=None)
@given(mask=arrays(np.bool_, st.tuples(st.integers(1, 24), st.integers(1, 24))),
       keep_share=st.sampled_from([1.0, 0.6]), seed=st.integers(0, 5))
def test_outline_kernel_gives_gdal_s_polygons(mask, keep_share, seed):
    import shapely

    got, want = _traced_and_gdal(mask, keep_share, seed)
    assert len(got) == len(want)
    assert shapely.is_valid(got).all()
    assert shapely.equals(got, want).all()
    assert (shapely.area(got) == shapely.area(want)).all()
    assert (shapely.get_type_id(got) == 3).all()  # one Polygon per component


@pytest.mark.parametrize("rows", [
    # a hole touching the outer ring at one corner (the ring would pass that corner twice)
    [".####", "#.###", "#####"],
    # two holes touching each other at a corner, and the loop's first corner is a pinch
    ["######", "#.####", "##.###", "######"],
    # a ring of pixels meeting only at corners inside a square: holes within holes
    ["#######", "#.....#", "#.#.#.#", "#..#..#", "#.#.#.#", "#.....#", "#######"],
    ["#.#", ".#.", "#.#"],  # five single pixels meeting at corners: five components
])
def test_outline_kernel_on_corner_pinches(rows):
    import shapely

    mask = np.array([[ch == "#" for ch in r] for r in rows])
    got, want = _traced_and_gdal(mask)
    assert shapely.is_valid(got).all()
    assert shapely.equals(got, want).all() and len(got) == len(want)
    assert sum(shapely.area(got)) == mask.sum()


def test_block_components_outlines_match_gdal_s():
    import shapely

    from ecopatch.compute.change import PixelChange
    from ecopatch.compute.components import block_components
    from ecopatch.geo.grid import Window

    rng = np.random.default_rng(3)
    code = rng.choice(np.array([0, 0, 0, 1, 1, 2], dtype=np.uint8), (40, 50))
    ones = np.ones(code.shape)
    change = PixelChange(code=code, prob=ones, share=ones, observed=np.ones(code.shape, dtype=bool))
    win = Window(row_off=100, col_off=200, height=38, width=48)
    ref, fast = _both(block_components, change, win, ones * 100.0, halo=1, min_area_m2=250.0,
                      module=components_mod)
    assert ref.category == fast.category and np.array_equal(ref.label, fast.label)
    assert np.array_equal(ref.stats, fast.stats)
    assert len(fast.outline) > 50 and shapely.equals(fast.outline, ref.outline).all()


def test_block_components_read_layers_given_for_a_part_of_the_block():
    from ecopatch.compute.change import PixelChange
    from ecopatch.compute.components import block_components
    from ecopatch.geo.grid import Window

    rng = np.random.default_rng(5)
    code = np.zeros((40, 50), dtype=np.uint8)
    code[10:30, 12:40] = rng.choice(np.array([0, 1, 1, 2], dtype=np.uint8), (20, 28))
    ones = np.ones(code.shape)
    change = PixelChange(code=code, prob=ones, share=ones, observed=np.ones(code.shape, dtype=bool))
    win = Window(row_off=100, col_off=200, height=38, width=48)
    layer = rng.random(code.shape)
    whole = block_components(change, win, ones * 100.0, {"x": layer}, halo=1)
    at = Window(row_off=8, col_off=11, height=24, width=31)  # every changed pixel, in the padded block's frame
    part = block_components(change, win, ones * 100.0, {"x": layer[at.slices]}, halo=1, layers_at=at)
    assert np.array_equal(whole.stats, part.stats) and len(whole.stats) > 10
    with pytest.raises(ValueError, match="layers_at"):
        small = Window(row_off=12, col_off=11, height=10, width=31)
        block_components(change, win, ones * 100.0, {"x": layer[small.slices]}, halo=1, layers_at=small)


@settings(max_examples=60, deadline=None)
@given(dn=arrays(np.float32, st.tuples(st.integers(1, 9), st.integers(1, 9)),
                 elements=st.one_of(st.sampled_from([0.0, 65535.0, np.nan, 16000.0, -2000.0]),
                                    st.floats(0, 12000, width=32))),
       repeat=st.sampled_from([None, 1, 2, 3]), seed=st.integers(0, 9))
@example(dn=np.array([[1017.0, 999.0, 1001.0]], dtype=np.float32), repeat=None, seed=0)
def test_reflectance_kernel_repeats_and_masks_as_numpy_would(dn, repeat, seed):
    from ecopatch.compute.kernels import reflectance_kernel

    rng = np.random.default_rng(seed)
    rows = cols = None
    src = dn
    if repeat is not None:  # a coarser band onto a finer grid: each pixel repeated
        rows = np.repeat(np.arange(dn.shape[0]), repeat)[1:] if dn.shape[0] * repeat > 1 else np.zeros(1, int)
        cols = np.repeat(np.arange(dn.shape[1]), repeat)
        src = dn[rows][:, cols]
    before = rng.random(src.shape) < 0.8
    valid = before.copy()
    refl, out_valid, cleared = reflectance_kernel(dn, 1e-4, -0.1, 0.0, 65535.0, (-0.05, 1.2),
                                                  rows=rows, cols=cols, valid=valid)
    want = src.astype(np.float32) * np.float32(1e-4) + np.float32(-0.1)
    ok = np.isfinite(src) & (src != 0) & (src != 65535) & (want >= np.float32(-0.05)) & (want <= np.float32(1.2))
    assert out_valid is valid and np.array_equal(valid, before & ok)
    assert cleared == int((before & ~ok).sum())
    assert np.array_equal(np.isnan(refl), ~valid)
    # no fused multiply-add (no "contract" fast-math flag): the kernel rounds dn * scale and then
    # the sum, as NumPy does, so the two agree bit for bit (also near dn = -offset / scale)
    np.testing.assert_array_equal(refl[valid], want[valid])


@settings(max_examples=80, deadline=None)
@given(shape=st.tuples(st.integers(1, 12), st.integers(1, 12)), kind=st.sampled_from(["scl", "qa_pixel"]),
       k=st.integers(0, 3), seed=st.integers(0, 99), dtype=st.sampled_from([np.uint8, np.uint16, np.int16]))
def test_clear_kernel_matches_grow_clouds(shape, kind, k, seed, dtype):
    from ecopatch.compute.kernels import clear_kernel
    from ecopatch.raster.masks import grow_clouds as _grow_clouds
    from ecopatch.raster.sensors import SCL_UNUSABLE

    rng = np.random.default_rng(seed)
    if kind == "scl":
        raw = rng.choice(np.array([0, 1, 3, 4, 4, 4, 5, 6, 8, 9, 10, 11, 12], dtype=dtype), shape)
    else:
        raw = rng.choice(np.array([0, 1, 21824, 21824, 22280, 55052, 23888], dtype=np.int64), shape).astype(dtype)
    rows = np.sort(rng.integers(0, shape[0], rng.integers(1, 2 * shape[0] + 1)))
    cols = np.sort(rng.integers(0, shape[1], rng.integers(1, 2 * shape[1] + 1)))
    got = clear_kernel(raw, kind, k, rows, cols, SCL_UNUSABLE)
    want = _grow_clouds(raw, kind, k)[rows][:, cols]
    assert got.flags.c_contiguous and got.dtype == np.bool_
    assert np.array_equal(got, want)


def test_clear_kernel_leaves_other_masks_to_numpy():
    from ecopatch.compute.kernels import clear_kernel

    idx = np.arange(2)
    assert clear_kernel(np.zeros((2, 2), np.uint8), "alpha", 0, idx, idx, (0,)) is None
    assert clear_kernel(np.zeros((2, 2), np.float32), "scl", 1, idx, idx, (0,)) is None
