"""Property tests (hypothesis) on the restoration core: invariants that must hold for any input."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ecopatch
from ecopatch.compute.cover import CoverParams
from ecopatch.compute.inside import inside_composition
from ecopatch.geo.geodesy import geodesic_area_m2, transformer
from tests.conftest import write_raster

S2 = ["B02", "B03", "B04", "B08", "B11", "B12"]
T = Affine(10, 0, 780_000, 0, -10, 3_350_000)
P = CoverParams(ndvi_soil=0.12, ndvi_veg=0.82)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), edge=st.sampled_from(["unmix", "uniform"]))
def test_inside_composition_is_a_partition(data, edge):
    shape = (6, 7)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    parts = rng.random((4, *shape))
    parts /= parts.sum(axis=0)
    layers = dict(zip(("veg", "bare", "built", "water"), parts))
    layers["fvc"] = rng.random(shape)
    cov = np.clip(rng.random(shape) * 1.6 - 0.3, 0, 1)
    valid = rng.random(shape) > 0.1
    inside = inside_composition(layers, cov, valid, edge, P)
    total = sum(inside[k] for k in ("veg", "bare", "built", "water"))
    np.testing.assert_allclose(total[valid], 1.0, atol=1e-9)
    for k in ("veg", "bare", "built", "water", "fvc"):
        assert (inside[k] >= -1e-12).all() and (inside[k] <= 1 + 1e-12).all()
        assert (inside[k][~valid] == 0).all()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A 60 x 60 px pair: textured forest and soil before; part of the soil vegetated after; a cloud hole."""
    tmp = tmp_path_factory.mktemp("props")
    rng = np.random.default_rng(5)
    forest = np.array([300, 600, 350, 3500, 1700, 800])[:, None, None]
    soil = np.array([1000, 1400, 2000, 2600, 3400, 3000])[:, None, None]
    yy, xx = np.mgrid[0:60, 0:60]
    bare_b = ((xx - 30) ** 2 + (yy - 30) ** 2) < 18**2
    bare_a = bare_b & (xx > 34)
    def img(bare):
        mix = np.where(bare[None], soil, forest).astype(float)
        return (mix * (1 + 0.05 * rng.standard_normal(mix.shape))).astype(np.uint16)
    after = img(bare_a)
    after[:, 5:9, 40:50] = 0  # no data
    b = write_raster(tmp / "b_20210918.tif", img(bare_b), transform=T, descriptions=S2, nodata=0, dtype="uint16")
    a = write_raster(tmp / "a_20240912.tif", after, transform=T, descriptions=S2, nodata=0, dtype="uint16")
    return ecopatch.open_scene(b), ecopatch.open_scene(a, offset=0.0)


polygons = st.builds(
    lambda cx, cy, w, h, angle: shapely.affinity.rotate(
        shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), angle),
    cx=st.floats(780_080, 780_520), cy=st.floats(3_349_480, 3_349_920), w=st.floats(8, 300), h=st.floats(8, 300),
    angle=st.floats(0, 90),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(polys=st.lists(polygons, min_size=1, max_size=4))
def test_assessment_invariants_and_windowing(pair, polys):
    import warnings

    import geopandas as gpd

    before, after = pair
    mines = gpd.GeoDataFrame({"patch_id": [f"m{i}" for i in range(len(polys))]}, geometry=polys,
                             crs="EPSG:32650")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = ecopatch.assess_restoration(before, after, mines, cover=P, block=1024, progress=False)
        blocks = ecopatch.assess_restoration(before, after, mines, cover=P, block=16, scheduler="synchronous",
                                             progress=False)
    a = whole
    np.testing.assert_allclose(a["veg_before_m2"] + a["damaged_m2"] + a["water_before_m2"], a["observed_m2"],
                               rtol=1e-9, atol=1e-6)
    assert (a["restored_m2"] <= a["damaged_m2"] + 1e-6).all()
    assert (a["damaged_m2"] <= a["observed_m2"] + 1e-6).all()
    assert (a["observed_m2"] <= a["area_m2"] * (1 + 1e-5)).all()
    cols = ["observed_m2", "damaged_m2", "restored_m2", "veg_after_m2"]
    np.testing.assert_allclose(blocks[cols].to_numpy(), whole[cols].to_numpy(), rtol=1e-9, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(poly=polygons, crs=st.sampled_from(["EPSG:4490", "EPSG:4549", "EPSG:4528", "EPSG:32651", "EPSG:3857"]))
def test_patch_area_does_not_depend_on_the_crs(poly, crs):
    tr = transformer("EPSG:32650", crs)
    moved = shapely.transform(poly, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    a = geodesic_area_m2(poly, "EPSG:32650")
    b = geodesic_area_m2(moved, crs)
    assert b == pytest.approx(a, rel=1e-3)
