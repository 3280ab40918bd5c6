import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecopatch.compute.cover import (
    CLASSES,
    CoverParams,
    classify,
    cover_fractions,
    estimate_endmembers,
    fvc,
    local_veg_fraction,
)
from ecopatch.errors import ConfigError, MissingBandError, NoValidPixelsError

# reflectance (blue, green, red, nir, swir1, swir2) of pure materials
FOREST = dict(blue=0.03, green=0.06, red=0.035, nir=0.35, swir1=0.17, swir2=0.08)
SOIL = dict(blue=0.10, green=0.14, red=0.20, nir=0.26, swir1=0.34, swir2=0.30)
ROOF = dict(blue=0.25, green=0.20, red=0.12, nir=0.15, swir1=0.12, swir2=0.10)
WATER = dict(blue=0.07, green=0.06, red=0.04, nir=0.02, swir1=0.01, swir2=0.005)
P = CoverParams(ndvi_soil=0.13, ndvi_veg=0.82)


def _px(*mats, weights=None):
    weights = weights or [1 / len(mats)] * len(mats)
    return {b: np.array([sum(w * m[b] for w, m in zip(weights, mats))], dtype=np.float32) for b in FOREST}


@pytest.mark.parametrize("mat, cls", [(FOREST, "veg"), (SOIL, "bare"), (ROOF, "built"), (WATER, "water")])
def test_pure_materials(mat, cls):
    f = cover_fractions(_px(mat), P)
    assert f[cls][0] == pytest.approx(1.0, abs=0.01)
    assert sum(f[c][0] for c in CLASSES) == pytest.approx(1.0, abs=1e-6)


def test_half_young_planting_half_soil_is_about_half_vegetated():
    # young restoration planting: FVC ~0.55; the 0.10-0.45 ramp keeps its mixes linear
    young = dict(blue=0.045, green=0.08, red=0.075, nir=0.27, swir1=0.24, swir2=0.14)
    assert cover_fractions(_px(young), P)["veg"][0] == pytest.approx(1.0)
    f = cover_fractions(_px(young, SOIL), P)
    assert 0.35 < f["veg"][0] < 0.65


def test_local_endmembers_fix_dense_canopy_mixes():
    # a row: forest, forest, mixed 50/50, soil, soil. The fixed ramp saturates the mixed
    # cell (dense canopy has FVC ~0.9, half of it is past 0.45); local end-members do not.
    row = [_px(FOREST), _px(FOREST), _px(FOREST, SOIL), _px(SOIL), _px(SOIL)]
    bands = {b: np.array([[c[b][0] for c in row]] * 5, dtype=np.float32) for b in FOREST}
    f = cover_fractions(bands, P)
    assert f["veg"][2, 2] > 0.85
    local = local_veg_fraction(f["fvc"], P)
    assert 0.35 < local[2, 2] < 0.65
    assert local[2, 0] == pytest.approx(1.0) and local[2, 4] == pytest.approx(0.0)


def test_local_endmembers_need_canopy_and_bare_ground_in_the_context():
    # the same row: without bare cells (or without canopy) allowed as end-members, every cell
    # takes the fixed ramp, bit for bit (the shortcut that skips the neighbourhood filters)
    from ecopatch.compute.cover import veg_from_fvc

    row = [_px(FOREST), _px(FOREST), _px(FOREST, SOIL), _px(SOIL), _px(SOIL)]
    bands = {b: np.array([[c[b][0] for c in row]] * 5, dtype=np.float32) for b in FOREST}
    fv = cover_fractions(bands, P)["fvc"]
    ramp = veg_from_fvc(np.asarray(fv, dtype=np.float64), P).astype(np.float32)
    assert not np.array_equal(local_veg_fraction(fv, P), ramp)  # both end-members: the mixed cell unmixed
    for context in (np.arange(5)[None, :].repeat(5, 0) < 3, np.arange(5)[None, :].repeat(5, 0) > 2):
        got = local_veg_fraction(fv, P, context=context)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, ramp)


@settings(max_examples=60)
@given(w=st.lists(st.floats(0, 1), min_size=4, max_size=4).filter(lambda v: sum(v) > 0.01))
def test_fractions_sum_to_one_and_stay_in_range(w):
    tot = sum(w)
    f = cover_fractions(_px(FOREST, SOIL, ROOF, WATER, weights=[x / tot for x in w]), P)
    s = sum(f[c] for c in CLASSES)
    assert s[0] == pytest.approx(1.0, abs=1e-5)
    for c in CLASSES:
        assert -1e-6 <= f[c][0] <= 1 + 1e-6


def test_nan_where_not_observed():
    b = _px(FOREST)
    b["red"] = np.array([np.nan], dtype=np.float32)
    f = cover_fractions(b, P)
    assert all(np.isnan(f[c][0]) for c in CLASSES)
    assert classify(f)[0] == 0


def test_rgb_rules_for_drone():
    rgb = {"red": np.array([0.25, 0.55, 0.0]), "green": np.array([0.50, 0.45, 0.0]),
           "blue": np.array([0.15, 0.35, 0.0])}
    f = cover_fractions(rgb, CoverParams())
    assert f["veg"][0] == 1.0 and f["bare"][1] == 1.0 and np.isnan(f["veg"][2])


def test_params_validation_and_missing_endmembers():
    with pytest.raises(ConfigError, match="fvc_bare < fvc_veg"):
        CoverParams(fvc_bare=0.8, fvc_veg=0.2)
    with pytest.raises(ConfigError, match="end-members not set"):
        cover_fractions(_px(FOREST), CoverParams())
    with pytest.raises(MissingBandError, match="red and nir"):
        cover_fractions({"nir": np.ones(1)}, P, rgb=False)


def test_fvc_and_endmembers():
    np.testing.assert_allclose(fvc(np.array([0.05, 0.45, 0.9]), 0.05, 0.85), [0, 0.5, 1], atol=1e-6)
    rng = np.random.default_rng(1)
    sample = np.r_[rng.normal(0.12, 0.02, 500), rng.normal(0.8, 0.03, 1500), [np.nan] * 10]
    soil, veg = estimate_endmembers(sample)
    assert 0.05 < soil < 0.15 and 0.8 < veg < 0.9
    with pytest.raises(NoValidPixelsError):
        estimate_endmembers(np.array([np.nan]))
