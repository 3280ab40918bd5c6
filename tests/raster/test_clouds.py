"""Clouds and shadows found from the two dates' own pixels (ecopatch.raster.clouds)."""

import numpy as np
import pytest

from ecopatch.raster.clouds import (
    cloud_objects,
    darkened,
    project_shadows,
    shadow_displacement,
    temporal_cloud_test,
)


def _ground(shape=(80, 80), seed=0):
    rng = np.random.default_rng(seed)
    return {"blue": rng.uniform(0.03, 0.06, shape), "green": rng.uniform(0.05, 0.08, shape),
            "red": rng.uniform(0.05, 0.10, shape), "nir": rng.uniform(0.2, 0.35, shape),
            "swir1": rng.uniform(0.15, 0.25, shape)}


def test_a_cloud_and_its_shadow_are_found_where_they_are():
    clear = _ground()
    cloudy = {b: v.copy() for b, v in clear.items()}
    cloud = np.zeros((80, 80), dtype=bool)
    cloud[10:20, 30:42] = True
    for b, v in (("blue", 0.45), ("green", 0.46), ("red", 0.47), ("nir", 0.5), ("swir1", 0.35)):
        cloudy[b][cloud] = v
    shadow = np.roll(np.roll(cloud, 25, axis=0), -12, axis=1)  # the sun to the north-east
    for b in ("nir", "swir1", "red", "green", "blue"):
        cloudy[b][shadow] *= 0.35
    found = cloud_objects(temporal_cloud_test(cloudy, clear), min_px=3, grow_px=0)
    assert found[cloud].mean() > 0.95 and not found[~cloud].any()
    disp = shadow_displacement(found, darkened(cloudy, clear) & ~found, max_px=60)
    assert disp[:2] == (25, -12) and disp[2] > 0.9
    sh, _ = project_shadows(found, darkened(cloudy, clear) & ~found, max_px=60, grow_px=0)
    assert sh[shadow].mean() > 0.95 and sh[~shadow].mean() < 0.01
    # the other date has no cloud
    assert not temporal_cloud_test(clear, cloudy).any()


def test_new_bright_ground_is_not_cloud():
    before = _ground(seed=1)
    after = {b: v.copy() for b, v in before.items()}
    site = np.zeros((80, 80), dtype=bool)
    site[40:50, 40:60] = True
    # a new concrete or sand surface: brighter everywhere, reddish, brightest in SWIR
    for b, v in (("blue", 0.2), ("green", 0.23), ("red", 0.28), ("nir", 0.3), ("swir1", 0.36)):
        after[b][site] = v
    assert not temporal_cloud_test(after, before).any()


def test_no_shadow_without_a_consistent_displacement():
    rng = np.random.default_rng(5)
    cloud = np.zeros((60, 60), dtype=bool)
    cloud[5:12, 5:12] = True
    dark = rng.random((60, 60)) < 0.3  # dark cells everywhere: any displacement hits some
    sh, disp = project_shadows(cloud, dark & ~cloud, max_px=40)
    assert not sh.any() and disp is not None and disp[2] < 0.9


def test_cloud_objects_keep_fringes_of_real_clouds_only():
    core = np.zeros((30, 30), dtype=bool)
    core[5:9, 5:9] = True
    edge = np.zeros((30, 30), dtype=bool)
    edge[4:11, 4:11] = True  # the fringe of the cloud above
    edge[20:25, 20:25] = True  # haze with no cloud core
    out = cloud_objects(core, edge=edge, min_px=3, grow_px=0)
    assert out[4:11, 4:11].all() and not out[20:25, 20:25].any()
    lone = np.zeros((30, 30), dtype=bool)
    lone[15, 15] = True  # one bright roof cell
    assert not cloud_objects(lone, min_px=3).any()


def test_darkened_is_relative_to_the_scene():
    here = {"nir": np.full((10, 10), 0.2), "swir1": np.full((10, 10), 0.15)}
    other = {"nir": np.full((10, 10), 0.3), "swir1": np.full((10, 10), 0.22)}  # a lower sun everywhere
    assert not darkened(here, other).any()
    here["nir"][2:4, 2:4] = 0.05
    here["swir1"][2:4, 2:4] = 0.04
    assert darkened(here, other)[2:4, 2:4].all() and darkened(here, other).sum() == 4


@pytest.mark.parametrize("missing", ["blue", "nir"])
def test_the_two_date_test_needs_visible_and_nir(missing):
    a, b = _ground(), _ground(seed=2)
    a.pop(missing)
    assert not temporal_cloud_test(a, b).any()


def test_s2cloudless_tells_a_thick_cloud_from_vegetation_and_bare_ground():
    from ecopatch.raster.clouds import S2CLOUDLESS_BANDS, S2CLOUDLESS_THRESHOLD, s2cloudless_probability

    shape = (30, 30)
    # top-of-atmosphere reflectance of vegetation (left), bare soil (right), a thick cloud (middle rows)
    veg = {"coastal": 0.12, "blue": 0.09, "red": 0.05, "rededge1": 0.10, "nir": 0.35, "nir08": 0.37,
           "nir09": 0.12, "cirrus": 0.002, "swir1": 0.18, "swir2": 0.09}
    soil = {"coastal": 0.14, "blue": 0.12, "red": 0.20, "rededge1": 0.23, "nir": 0.27, "nir08": 0.28,
            "nir09": 0.09, "cirrus": 0.003, "swir1": 0.33, "swir2": 0.27}
    cloud = {"coastal": 0.55, "blue": 0.52, "red": 0.50, "rededge1": 0.51, "nir": 0.52, "nir08": 0.52,
             "nir09": 0.30, "cirrus": 0.05, "swir1": 0.40, "swir2": 0.30}
    assert set(veg) == set(S2CLOUDLESS_BANDS)
    toa = {}
    for b in S2CLOUDLESS_BANDS:
        a = np.full(shape, veg[b], dtype=np.float32)
        a[:, 15:] = soil[b]
        a[10:20, :] = cloud[b]
        toa[b] = a
    toa["red"][0, 0] = np.nan
    p = s2cloudless_probability(toa)
    assert p.shape == shape and np.isnan(p[0, 0])
    assert np.nanmin(p[10:20]) >= S2CLOUDLESS_THRESHOLD
    assert np.nanmax(p[:10]) < 0.4 and np.nanmax(p[20:]) < 0.4
    # without a band it needs, no probability (the caller falls back to the two-date test)
    assert s2cloudless_probability({b: v for b, v in toa.items() if b != "cirrus"}) is None
