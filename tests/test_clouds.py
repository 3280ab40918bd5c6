"""Clouds and shadows found from the two dates' own pixels (ecopatch.clouds)."""

import numpy as np
import pytest

from ecopatch.clouds import (
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
