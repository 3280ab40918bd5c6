"""The change statistic, pixel candidates and patch typing of ecopatch.compute.change."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecopatch.compute.change import (
    Background,
    ChangeModel,
    ChangeParams,
    change_statistic,
    dominant_class,
    patch_type,
    pixel_change,
    robust_covariance,
    robust_location_scale,
    smooth_nan,
    tolerant_distance,
    whitening,
)
from ecopatch.errors import ConfigError

BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")


def _model(scale=0.05, n=6, **kw):
    return ChangeModel(BANDS[:n], tuple((1.0, 0.0) for _ in range(n)), tuple(scale for _ in range(n)),
                       np.eye(n), np.zeros(n), **kw)


def _field(rng, shape=(60, 60)):
    """A textured scene: smooth fields of reflectance with some structure, bands correlated."""
    from scipy.ndimage import gaussian_filter

    base = gaussian_filter(rng.random(shape), 3) * 0.3 + 0.05
    return {b: (base * (0.6 + 0.1 * i) + rng.normal(0, 0.003, shape)).astype(np.float32)
            for i, b in enumerate(BANDS)}


def test_params_are_checked():
    with pytest.raises(ConfigError, match="z_grow"):
        ChangeParams(z_seed=2, z_grow=3)
    with pytest.raises(ConfigError, match="tolerance_px"):
        ChangeParams(tolerance_px=5)
    with pytest.raises(ConfigError, match="type_share"):
        ChangeParams(type_share=0)
    assert ChangeParams().halo_px == 3 + 1 + 1


def test_smooth_nan_ignores_and_keeps_missing_pixels():
    x = np.ones((9, 9), dtype=np.float32)
    x[4, 4] = np.nan
    x[0, :] = 5.0
    out = smooth_nan(x, 1.0)
    assert np.isnan(out[4, 4]) and np.isfinite(out[3, 3])
    # a constant field stays constant whatever is missing
    c = np.full((9, 9), 0.2, dtype=np.float32)
    c[2:4, 5:7] = np.nan
    s = smooth_nan(c, 1.5)
    assert np.allclose(s[np.isfinite(s)], 0.2, atol=1e-6)
    assert np.array_equal(smooth_nan(x, 0), x, equal_nan=True)


def test_tolerant_distance_forgives_a_one_pixel_shift_but_not_a_new_object():
    rng = np.random.default_rng(0)
    y1 = rng.normal(0, 1, (3, 30, 30)).astype(np.float32)
    shifted = np.roll(y1, 1, axis=2)
    d0 = tolerant_distance(y1, shifted, 0)
    d1 = tolerant_distance(y1, shifted, 1)
    inner = (slice(2, -2), slice(2, -2))
    assert np.nanmedian(d1[inner]) < 1e-6 < np.nanmedian(d0[inner])
    new = y1.copy()
    new[:, 10:16, 10:16] += 5.0
    d = tolerant_distance(y1, new, 1)
    assert d[12:14, 12:14].min() > 4.0  # the object's inside is far from anything of the other date
    assert np.nanmedian(d[20:, 20:]) < 1e-6


def test_tolerant_distance_is_symmetric_and_nan_where_unobserved():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, (2, 12, 12)).astype(np.float32)
    b = rng.normal(0, 1, (2, 12, 12)).astype(np.float32)
    b[:, 3, 3] = np.nan
    ab, ba = tolerant_distance(a, b, 1), tolerant_distance(b, a, 1)
    np.testing.assert_allclose(ab, ba, rtol=1e-6, equal_nan=True)
    assert np.isnan(ab[3, 3]) and np.isfinite(ab[3, 4])


def test_change_statistic_measures_change_in_units_of_the_scene_noise():
    rng = np.random.default_rng(2)
    before = _field(rng)
    after = {b: v + rng.normal(0, 0.003, v.shape).astype(np.float32) for b, v in before.items()}
    after["red"][20:30, 20:30] += 0.15  # a new bright object
    after["swir1"][20:30, 20:30] += 0.2
    model = _model()
    z = change_statistic(before, after, model, ChangeParams())
    assert z[22:28, 22:28].min() > 2 * np.nanpercentile(z, 95)
    # a uniform offset of one date (haze) is taken out by the background
    hazy = {b: v + np.float32(0.03) for b, v in after.items()}
    bg = Background(np.full((len(BANDS), 8, 8), 0.03, dtype=np.float32), 8)
    model_bg = _model(background=bg)
    z_bg = change_statistic(before, hazy, model_bg, ChangeParams(),
                            background=bg.at(0, 0, before["red"].shape))
    np.testing.assert_allclose(z_bg, z, atol=1e-3)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), z_floor=st.floats(-1.0, 6.0), holes=st.booleans())
def test_the_floored_statistic_is_exact_at_and_above_its_floor(seed, z_floor, holes):
    """The detection's shortcut (no neighbourhood search below the floor) changes no decision."""
    rng = np.random.default_rng(seed)
    before = _field(rng, shape=(24, 28))
    after = {b: v + rng.normal(0, 0.004, v.shape).astype(np.float32) for b, v in before.items()}
    r0, c0 = rng.integers(0, 18, 2)
    for b in ("red", "swir1"):
        after[b][r0:r0 + 5, c0:c0 + 6] += np.float32(rng.uniform(0.02, 0.2))
    after["nir"] = np.roll(after["nir"], 1, axis=1)  # a one-pixel shift in one band
    if holes:
        before["green"][3:6, 4:9] = np.nan
    model = _model()
    full = change_statistic(before, after, model, ChangeParams())
    floored = change_statistic(before, after, model, ChangeParams(), z_floor=z_floor)
    assert np.array_equal(np.isnan(full), np.isnan(floored))
    ok = np.isfinite(full)
    high = ok & (floored >= z_floor)
    np.testing.assert_allclose(floored[high], full[high], rtol=1e-5, atol=1e-5)
    # below the floor both are below it (the decisions agree)
    assert (full[ok & ~high] < z_floor + 1e-5).all()
    assert np.array_equal(full[ok] >= z_floor + 1e-4, floored[ok] >= z_floor + 1e-4)


def test_background_depends_on_the_pixel_position_only():
    rng = np.random.default_rng(3)
    bg = Background(rng.random((2, 5, 7)).astype(np.float32), 4)
    whole = bg.at(0, 0, (20, 28))
    part = bg.at(6, 9, (7, 5))
    np.testing.assert_array_equal(part, whole[:, 6:13, 9:14])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), factor=st.integers(1, 9), r0=st.integers(-3, 40), c0=st.integers(-3, 40),
       h=st.integers(1, 30), w=st.integers(1, 30))
def test_background_is_scipys_bilinear_interpolation(seed, factor, r0, c0, h, w):
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(seed)
    v = rng.normal(0, 1, (3, 4, 6)).astype(np.float32)
    got = Background(v, factor).at(r0, c0, (h, w))
    rr = (np.arange(r0, r0 + h) + 0.5) / factor - 0.5
    cc = (np.arange(c0, c0 + w) + 0.5) / factor - 0.5
    R, C = np.meshgrid(rr, cc, indexing="ij")
    want = np.stack([map_coordinates(b, [R, C], order=1, mode="nearest") for b in v])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_smoothing_bands_with_one_mask_equals_smoothing_each():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (4, 30, 40)).astype(np.float32)
    x[:, 5:9, 10:20] = np.nan
    together = smooth_nan(x, 1.0)
    each = np.stack([smooth_nan(b, 1.0) for b in x])
    np.testing.assert_allclose(together, each, atol=1e-6)
    assert np.isnan(together[:, 5:9, 10:20]).all()
    x[1, 0, 0] = np.nan  # masks differ: per band
    np.testing.assert_allclose(smooth_nan(x, 1.0)[1], smooth_nan(x[1], 1.0), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), n=st.integers(2, 6), outliers=st.floats(0.0, 0.3))
def test_robust_covariance_resists_change(seed, n, outliers):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, (n, n))
    cov = a @ a.T + n * np.eye(n)
    d = rng.multivariate_normal(np.zeros(n), cov, 4000)
    k = int(outliers * len(d))
    d[:k] += 50.0  # a share of changed pixels, far away
    mu, est = robust_covariance(d)
    assert np.allclose(mu, 0, atol=0.25 * np.sqrt(np.diag(cov)).max())
    ratio = np.diag(est) / np.diag(cov)
    # without change the normal law's covariance; with up to 30 % change (all of it 50 standard
    # deviations away) at most twice it (the consistency factor assumes no change), where the
    # sample covariance is hundreds of times larger
    assert (ratio > 0.8).all() and (ratio < (1.25 if k == 0 else 2.0)).all()
    W = whitening(est)
    white = (W @ (d[k:] - mu).T).T
    assert np.allclose(np.cov(white.T), np.eye(n), atol=0.45)


def test_robust_location_scale_of_a_normal_sample():
    v = np.random.default_rng(4).normal(3.0, 2.0, 100_000)
    loc, sc = robust_location_scale(np.r_[v, np.nan, np.inf])
    assert loc == pytest.approx(3.0, abs=0.05) and sc == pytest.approx(2.0, rel=0.05)


def _fractions(veg, bare, built, water, shape=(5, 5)):
    return {k: np.full(shape, v, dtype=np.float32) for k, v in
            (("veg", veg), ("bare", bare), ("built", built), ("water", water))}


def test_pixel_candidates_skip_stable_vegetation_and_water_and_grow_from_seeds():
    p = ChangeParams()
    z = np.full((5, 5), 10.0, dtype=np.float32)
    forest = _fractions(0.9, 0.1, 0, 0)
    browner = _fractions(0.85, 0.15, 0, 0)
    assert not pixel_change(z, forest, browner, p).code.any()  # vegetation at both dates: season
    thinned = _fractions(0.65, 0.35, 0, 0)
    assert (pixel_change(z, forest, thinned, p).code == 1).all()  # still green, but thinned: a loss
    lake = _fractions(0, 0, 0, 1)
    assert not pixel_change(z, lake, lake, p).code.any()  # water at both dates: turbidity, waves
    site = _fractions(0.1, 0.2, 0.7, 0)
    pc = pixel_change(z, forest, site, p)
    assert (pc.code == 1).all() and pc.seed.all() and (pc.share > 0.7).all()
    weak = pixel_change(np.full((5, 5), 4.0, dtype=np.float32), forest, site, p)
    assert (weak.code == 1).all() and not weak.seed.any()
    regrowth = pixel_change(z, site, forest, p)
    assert (regrowth.code == 2).all()
    z_nan = z.copy()
    z_nan[0, 0] = np.nan
    assert not pixel_change(z_nan, forest, site, p).observed[0, 0]
    aoi = np.zeros((5, 5), dtype=bool)
    assert not pixel_change(z, forest, site, p, aoi=aoi).code.any()


@pytest.mark.parametrize(("before", "after", "want"), [
    ((0.8, 0.1, 0.1, 0.0), (0.1, 0.2, 0.7, 0.0), "construction"),
    ((0.8, 0.2, 0.0, 0.0), (0.1, 0.8, 0.1, 0.0), "bare_soil"),
    ((0.1, 0.1, 0.8, 0.0), (0.1, 0.8, 0.1, 0.0), "bare_soil"),  # demolished
    ((0.6, 0.4, 0.0, 0.0), (0.0, 0.1, 0.0, 0.9), "water"),
    ((0.9, 0.1, 0.0, 0.0), (0.5, 0.5, 0.0, 0.0), "bare_soil"),  # half cleared to soil
    ((0.9, 0.06, 0.04, 0.0), (0.7, 0.15, 0.13, 0.02), None),  # thinned, still vegetated, no NDVI fall known
    ((0.0, 0.9, 0.1, 0.0), (0.0, 0.85, 0.15, 0.0), None),  # a pit that stays bare
    ((0.0, 0.1, 0.9, 0.0), (0.0, 0.05, 0.95, 0.0), None),  # a roof that stays a roof
    # the type agrees with the classes: a dark new roof whose water share rose is construction
    ((0.3, 0.6, 0.1, 0.0), (0.0, 0.2, 0.55, 0.25), "construction"),
    # a built share that rose on ground still vegetated after: vegetation loss, not construction
    ((0.8, 0.2, 0.0, 0.0), (0.3, 0.25, 0.45, 0.0), "vegetation_loss"),
    ((0.6, 0.3, 0.1, 0.0), (0.5, 0.1, 0.4, 0.0), None),
])
def test_patch_type_is_the_conversion(before, after, want):
    keys = ("veg", "bare", "built", "water")
    got = patch_type(dict(zip(keys, before)), dict(zip(keys, after)), ChangeParams())
    assert got == want


def test_patch_type_gain_and_untyped():
    keys = ("veg", "bare", "built", "water")
    site, forest = dict(zip(keys, (0.1, 0.8, 0.1, 0.0))), dict(zip(keys, (0.8, 0.2, 0.0, 0.0)))
    p = ChangeParams()
    assert patch_type(site, forest, p, category="gain") == "vegetation_gain"
    assert patch_type(forest, site, p, typed=False) == "disturbance"
    assert patch_type(forest, dict(site, veg=float("nan")), p) is None
    # thinned canopy: vegetation loss only with an NDVI fall of LOSS_NDVI_FALL (a mown meadow falls less)
    dense, thinned = dict(zip(keys, (0.9, 0.06, 0.04, 0.0))), dict(zip(keys, (0.7, 0.15, 0.13, 0.02)))
    assert patch_type(dict(dense, ndvi=0.8), dict(thinned, ndvi=0.55), p) == "vegetation_loss"
    assert patch_type(dict(dense, ndvi=0.8), dict(thinned, ndvi=0.7), p) is None


def test_without_swir_water_must_be_most_of_the_ground_after():
    keys = ("veg", "bare", "built", "water")
    field, ploughed = dict(zip(keys, (0.85, 0.14, 0.0, 0.01))), dict(zip(keys, (0.02, 0.75, 0.02, 0.21)))
    pond = dict(zip(keys, (0.0, 0.05, 0.0, 0.95)))
    p = ChangeParams()
    # with SWIR the water share is trusted (small ponds need it), but ground mostly bare after is typed
    # by that conversion: a field laid bare, wet or with a puddle, is bare soil
    assert patch_type(field, ploughed, p) == "bare_soil"
    assert patch_type(field, dict(ploughed, bare=0.45, water=0.51), p) == "water"
    assert patch_type(field, ploughed, p, swir=False) == "bare_soil"  # NDWI alone: wet soil, not a pond
    assert patch_type(field, pond, p, swir=False) == "water"
    # the small rise a 10-20 m pond's mixed pixels give keeps typing it where SWIR is there
    assert patch_type(field, dict(field, veg=0.7, water=0.16), p, water_gain=0.3) == "water"


def test_dominant_class():
    assert dominant_class(0.1, 0.1, 0.1, 0.7) == "water"
    assert dominant_class(0.7, 0.2, 0.1, 0.0) == "vegetation"
    assert dominant_class(0.3, 0.5, 0.2, 0.0) == "sparse_vegetation"
    assert dominant_class(0.0, 0.3, 0.7, 0.0) == "built"
    assert dominant_class(0.0, 0.7, 0.3, 0.0) == "bare"
    assert dominant_class(float("nan"), 0, 0, 0) == "unknown"
