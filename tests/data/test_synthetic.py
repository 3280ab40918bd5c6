"""Tests for ecopatch.data.synthetic: determinism, block rendering and truth consistency."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from rasterio import features

from ecopatch.data.synthetic import (
    BANDS_10M,
    BANDS_20M,
    DATES,
    MATERIALS,
    RASTERS,
    make_drone,
    make_scene,
)
from ecopatch.data.synthetic.noise import Noise
from ecopatch.errors import ConfigError, InputDataError
from ecopatch.geo.geodesy import geodesic_area_m2, transformer
from ecopatch.geo.grid import Window
from ecopatch.vocabulary import CHANGE_TYPES, ZONE_ALIASES, canonical_zone

MMU_M2 = 400.0


@pytest.fixture(scope="module")
def scene():
    """The committed sample's scene (400 × 500 px, seed 20240912)."""
    return make_scene()


@pytest.fixture(scope="module")
def tiny_kwargs():
    return dict(shape=(100, 130), seed=7, n_mines=2, n_reserves=1, n_encroachments=3, n_decoys=1)


def reflectance(scene, date, band):
    return scene.reflectance(date, band).astype(np.float64)


# -- determinism ------------------------------------------------------------


def test_same_seed_gives_identical_arrays_and_truth(tiny_kwargs):
    a = make_scene(**tiny_kwargs)
    b = make_scene(**tiny_kwargs)
    for d in DATES:
        for r in RASTERS:
            assert a.dn[d][r].tobytes() == b.dn[d][r].tobytes(), (d, r)
    assert a.restoration_truth.equals(b.restoration_truth)
    assert a.encroachments.geometry.geom_equals_exact(b.encroachments.geometry, 0).all()


def test_other_seed_gives_other_scene(tiny_kwargs):
    a = make_scene(**tiny_kwargs)
    b = make_scene(**{**tiny_kwargs, "seed": 8})
    assert not np.array_equal(a.dn["after"]["B04"], b.dn["after"]["B04"])


def test_seed_accepts_a_generator(tiny_kwargs):
    kw = {k: v for k, v in tiny_kwargs.items() if k != "seed"}
    a = make_scene(seed=np.random.default_rng(3), **kw)
    b = make_scene(seed=np.random.default_rng(3), **kw)
    assert a.seed == b.seed
    assert np.array_equal(a.dn["before"]["B08"], b.dn["before"]["B08"])


@pytest.mark.parametrize("block", [(64, 64), (50, 70)])
def test_blockwise_rendering_equals_whole(scene, block):
    whole = scene.dn  # rendered in one go
    fresh = make_scene()  # same seed, nothing rendered yet
    for d in DATES:
        for b in ("B04", "B08", "B11", "SCL"):
            g = fresh.band_grid(b)
            out = np.zeros(g.shape, whole[d][b].dtype)
            for win in g.chunks(block):
                out[win.slices] = fresh.render_block(d, b, win)
            assert out.tobytes() == whole[d][b].tobytes(), (d, b, block)


def test_rendering_does_not_depend_on_what_was_rendered_before(scene):
    fresh = make_scene()
    wins = [Window(row_off=250, col_off=250,
                   height=40, width=60),
            Window(row_off=0, col_off=0, height=400, width=500),
            Window(row_off=120, col_off=380, height=6, width=8)]
    for win in wins:
        fresh._cache.clear()
        out = fresh.render_window("after", win)
        assert np.array_equal(out["B02"], scene.dn["after"]["B02"][win.slices])


def test_render_window_gives_every_raster_on_its_grid(scene):
    win = Window(row_off=100, col_off=200, height=50, width=61)
    out = scene.render_window("after", win)
    assert set(out) == set(RASTERS)
    for b in BANDS_10M:
        assert out[b].shape == (50, 61) and out[b].dtype == np.uint16
        assert np.array_equal(out[b], scene.dn["after"][b][win.slices])
    for b in (*BANDS_20M, "SCL"):
        assert out[b].shape == (25, 31)
        assert np.array_equal(out[b], scene.dn["after"][b][50:75, 100:131])
    with pytest.raises(InputDataError, match="even"):
        scene.render_window("after", Window(row_off=1, col_off=0, height=10, width=10))


def test_scene_pickles_for_dask_workers(scene):
    import pickle

    clone = pickle.loads(pickle.dumps(scene))
    win = Window(row_off=200, col_off=300, height=64, width=64)
    assert np.array_equal(clone.render_window("after", win)["B08"], scene.dn["after"]["B08"][win.slices])
    assert clone.restoration_truth.equals(scene.restoration_truth)


def test_grid_and_point_noise_agree():
    n = Noise(11)
    xs = 781440.0 + 10.0 * np.arange(37) + 5
    ys = 3348840.0 - 10.0 * np.arange(23) - 5
    g = n.grid(xs, ys, 160.0, 3, 11)
    xx, yy = np.meshgrid(xs, ys)
    assert np.array_equal(g, n.points(xx, yy, 160.0, 3, 11))
    assert -1.0 <= g.min() and g.max() <= 1.0


# -- grids, products, radiometry --------------------------------------------


def test_grids_are_utm50_near_hangzhou(scene):
    g, g20 = scene.grid, scene.grid20
    assert g.crs.to_epsg() == 32650 and g.shape == (400, 500) and g.res == (10.0, 10.0)
    assert g20.shape == (200, 250) and g20.res == (20.0, 20.0)
    assert g20.bounds == g.bounds
    # snapped to the 60 m lattice of tile T50RQU
    assert (g.transform.c - 699960.0) % 60 == 0 and (g.transform.f - 3400020.0) % 60 == 0
    lon, lat = transformer(g.crs, "EPSG:4326").transform(*g.xy(200, 250))
    assert abs(lon - 119.95) < 0.01 and abs(lat - 30.22) < 0.01
    # the trap: map area and ground area differ by about 0.12 % here
    cell = g.cell_area_m2(Window(row_off=0, col_off=0, height=1, width=1))[0, 0]
    assert 99.85 < cell < 99.93


def test_products_and_dates(scene):
    assert str(scene.dates["before"]) == "2021-09-18" and str(scene.dates["after"]) == "2024-09-12"
    before, after = scene.products["before"], scene.products["after"]
    assert before.processing_baseline == "03.01" and before.add_offset == 0
    assert after.processing_baseline == "05.10" and after.add_offset == -1000
    assert after.product_id == "S2B_MSIL2A_20240912T023529_N0510_R089_T50RQU_20240912T061020"
    assert before.product_id.startswith("S2A_MSIL2A_20210918T")


def test_dn_carry_the_offset_after_baseline_4(scene):
    water = _pure_pixels(scene, "before", {"clear_water", "turbid_water"})
    assert water.sum() > 20
    b08_before = scene.dn["before"]["B08"][water].astype(float)
    b08_after = scene.dn["after"]["B08"][water].astype(float)
    assert np.median(b08_before) < 400  # water is dark in NIR: DN = rho * 10000
    assert 900 < np.median(b08_after) < 1400  # + 1000
    assert scene.dn["after"]["B02"][scene.dn["after"]["B02"] > 0].min() > 900


def test_global_radiometric_shift_between_dates(scene):
    forest = _pure_pixels(scene, "before", {"forest"}) & _pure_pixels(scene, "after", {"forest"})
    rb = reflectance(scene, "before", "B02")[forest]
    ra = reflectance(scene, "after", "B02")[forest]
    # stable forest is brighter in blue after (haze + offset): naive differencing sees change
    assert np.nanmedian(ra - rb) > 0.005


def _pure_pixels(scene, date, keys, grid=None, buffer_m=12.0):
    """Pixels of the 10 m grid whose neighbourhood is entirely one of the materials ``keys``."""
    g = grid or scene.grid
    shapes = scene.surface_shapes(date, g.bounds)
    other = [(geom.buffer(buffer_m), 1) for geom, k in shapes if k not in keys]
    if "forest" in keys:
        mask_other = features.rasterize(other, out_shape=g.shape, transform=g.transform, fill=0,
                                        all_touched=True, dtype="uint8") if other else np.zeros(g.shape)
        return mask_other == 0
    inside = [(geom.buffer(-buffer_m), 1) for geom, k in shapes if k in keys]
    inside = [(s, v) for s, v in inside if not s.is_empty]
    m_in = features.rasterize(inside, out_shape=g.shape, transform=g.transform, fill=0, dtype="uint8")
    later_other = features.rasterize(other, out_shape=g.shape, transform=g.transform, fill=0,
                                     all_touched=True, dtype="uint8") if other else np.zeros(g.shape)
    return (m_in == 1) & (later_other == 0)


def test_pure_forest_ndvi_in_expected_range(scene):
    forest = _pure_pixels(scene, "before", {"forest"})
    assert forest.sum() > 10000
    nir = reflectance(scene, "before", "B08")[forest]
    red = reflectance(scene, "before", "B04")[forest]
    ndvi = (nir - red) / (nir + red)
    lo, med, hi = np.nanpercentile(ndvi, [2, 50, 98])
    assert 0.55 < lo and 0.68 < med < 0.85 and hi < 0.9


def test_mine_rock_is_bright_and_not_vegetated(scene):
    rock = _pure_pixels(scene, "before", {"quarry_rock"})
    assert rock.sum() > 30
    nir = reflectance(scene, "before", "B08")[rock]
    red = reflectance(scene, "before", "B04")[rock]
    assert np.median((nir - red) / (nir + red)) < 0.15
    assert np.median(reflectance(scene, "before", "B02")[rock]) > 0.12


def test_material_spectra_are_reflectances():
    for m in MATERIALS:
        assert len(m.spectrum) == 6 and all(0 <= v <= 1 for v in m.spectrum), m.key
        assert m.group in {"vegetation", "bare", "built", "water"}


def test_nodata_strip_only_on_the_before_date(scene):
    before = scene.dn["before"]
    assert (before["B04"][:, -1] == 0).all() and (before["B04"][:, 0] != 0).all()
    assert (before["SCL"][:, -1] == 0).all() and (before["B11"][:, -1] == 0).all()
    for r in RASTERS:
        assert (scene.dn["after"][r] != 0).all(), r
    assert list(scene.nodata["date"]) == ["before"]


# -- clouds ---------------------------------------------------------------------


def _centres_in(grid, geom):
    return features.geometry_mask([geom], out_shape=grid.shape, transform=grid.transform, invert=True)


def test_scl_marks_the_cloud_and_its_shadow(scene):
    g20 = scene.grid20
    scl = scene.dn["after"]["SCL"]
    kinds = scene.clouds.set_index("kind").geometry
    high = _centres_in(g20, kinds["cloud_high"])
    assert high.sum() > 100
    assert (scl[high] == 9).mean() > 0.95
    medium = _centres_in(g20, kinds["cloud_medium"].buffer(-20))
    assert np.isin(scl[medium], (8, 9)).mean() > 0.9
    cirrus = _centres_in(g20, kinds["cirrus"].buffer(-20))
    assert (scl[cirrus] == 10).mean() > 0.9
    shadow = _centres_in(g20, kinds["shadow"].buffer(-20))
    assert shadow.sum() > 50 and (scl[shadow] == 3).mean() > 0.9
    assert not np.isin(scene.dn["before"]["SCL"], (3, 8, 9, 10)).any()
    assert set(np.unique(scl)) <= {3, 4, 5, 6, 8, 9, 10}


def test_cloud_is_bright_and_flat_and_shadow_dark(scene):
    high = _centres_in(scene.grid, scene.clouds.set_index("kind").geometry["cloud_high"])
    bands = {b: np.median(reflectance(scene, "after", b)[high]) for b in BANDS_10M}
    assert min(bands.values()) > 0.3
    assert max(bands.values()) - min(bands.values()) < 0.08
    shadow = _centres_in(scene.grid, scene.clouds.set_index("kind").geometry["shadow"].buffer(-20))
    assert np.median(reflectance(scene, "after", "B08")[shadow]) < 0.15


def test_cloud_covers_part_of_a_reserve_and_part_of_a_mine(scene):
    cloud = shapely.union_all(scene.clouds.geometry.values)
    assert any(0 < g.intersection(cloud).area < g.area for g in scene.reserves.geometry)
    touched = scene.restoration_truth[scene.restoration_truth["cloud_touched"]]
    assert ((touched["cloud_fraction"] > 0.2) & (touched["cloud_fraction"] < 0.8)).any()


# -- truth consistency ----------------------------------------------------------------


def test_restoration_truth_is_consistent(scene):
    t = scene.restoration_truth
    assert len(t) == len(scene.mines) == 8
    tol = 1e-6 * t["area_m2"]
    assert (t["restored_m2"] <= t["damaged_m2"] + tol).all()
    assert (t["damaged_m2"] <= t["area_m2"] + tol).all()
    assert np.allclose(t["restored_m2"] + t["still_bare_m2"], t["damaged_m2"], rtol=1e-6)
    assert np.allclose(t["damaged_m2"] + t["vegetated_before_m2"] + t["water_m2"], t["area_m2"], rtol=1e-6)
    assert np.allclose(t["restoration_rate"], t["restored_m2"] / t["damaged_m2"])
    assert (t["restoration_rate"] == 0).sum() >= 1  # one not started
    assert (t["restoration_rate"] > 0.95).sum() >= 1  # one essentially complete
    partial = t["restoration_rate"][(t["restoration_rate"] > 0) & (t["restoration_rate"] < 0.95)]
    assert len(partial) >= 5 and partial.between(0.15, 0.85).all()
    assert ((t["area_m2"] >= 4900) & (t["area_m2"] <= 80500)).all()  # 0.5-8 ha
    assert t["has_hole"].any() and (t["n_parts"] > 1).any() and t["invalid_in_source"].sum() == 1
    assert (t["vegetated_before_m2"] > 0).any() and (t["water_m2"] > 0).any()
    assert set(t["direction"]) == {"宜林", "宜草", "宜耕", "宜灌", "宜荒"}


def test_truth_areas_are_geodesic_areas_of_the_truth_geometries(scene):
    mines = scene.mines.set_index("矿山编号")
    t = scene.restoration_truth.set_index("mine_id")
    geod = geodesic_area_m2(mines.geometry.values, scene.crs)
    assert np.allclose(geod, t.loc[mines.index, "area_m2"], rtol=1e-12)
    assert not np.allclose(mines.geometry.area, geod, rtol=5e-4)  # map area is ~0.12 % off
    enc = scene.encroachments
    assert np.allclose(geodesic_area_m2(enc.geometry.values, scene.crs), enc["area_m2"], rtol=1e-12)


def test_mine_parts_partition_each_mine(scene):
    for mid, geom in zip(scene.mines["矿山编号"], scene.mines.geometry):
        for d in DATES:
            parts = scene.mine_parts[(scene.mine_parts["mine_id"] == mid) & (scene.mine_parts["date"] == d)]
            union = shapely.union_all(parts.geometry.values)
            assert abs(union.area - geom.area) < 1e-6 * geom.area, (mid, d)
            assert abs(parts.geometry.area.sum() - geom.area) < 1e-6 * geom.area, (mid, d)


def test_restored_ground_is_green_after_and_bare_before(scene):
    parts = scene.mine_parts
    restored = parts[(parts["date"] == "after") & (parts["group"] == "vegetation")]
    before_bare = shapely.union_all(parts[(parts["date"] == "before") & (parts["group"] != "vegetation")
                                          & (parts["group"] != "water")].geometry.values)
    zone = shapely.union_all(restored.geometry.values).intersection(before_bare).buffer(-15)
    px = _centres_in(scene.grid, zone)
    assert px.sum() > 100
    for d, lo, hi in (("before", -1, 0.3), ("after", 0.4, 1)):
        nir = reflectance(scene, d, "B08")[px]
        red = reflectance(scene, d, "B04")[px]
        ndvi = np.nanmedian((nir - red) / (nir + red))
        assert lo < ndvi < hi, (d, ndvi)


def test_encroachment_truth(scene):
    enc = scene.encroachments
    real, decoys = enc[~enc["is_decoy"]], enc[enc["is_decoy"]]
    assert len(real) == 14 and len(decoys) == 4
    assert (real["area_m2"] >= MMU_M2).all() and (decoys["area_m2"] < MMU_M2).all()
    assert decoys["area_m2"].between(100, 250).all()
    assert real["area_m2"].max() <= 15000 and real["area_m2"].max() > 10000
    assert set(real["change_type"]) == set(CHANGE_TYPES)
    inside = real[real["reserve_name"].notna()]
    assert set(inside["change_type"]) == set(CHANGE_TYPES)
    assert len(inside) > len(real) / 2 and (real["reserve_name"].isna()).sum() >= 1
    assert real["under_cloud"].any()
    assert real["zones"].str.contains(",").any()  # crosses a zone boundary
    assert (real.loc[real["reserve_name"].isna(), "zone"] == "outside").all()
    assert set(enc["zone"]) <= {"core", "buffer", "experimental", "outside"}
    assert enc["enc_id"].is_unique
    # no two changes overlap, and none overlaps a mine
    geoms = list(enc.geometry)
    for i, a in enumerate(geoms):
        assert all(a.distance(b) > 0 for b in geoms[i + 1:])
        assert all(a.distance(m) > 0 for m in scene.mines.geometry)


def test_boundary_crossing_encroachment_touches_two_zones(scene):
    enc = scene.encroachments
    row = enc[(~enc["is_decoy"]) & enc["zones"].str.contains("core,")].iloc[0]
    zones = scene.reserves[scene.reserves["保护地名称"] == row["reserve_name"]]
    touched = [z for z, g in zip(zones["功能分区"], zones.geometry) if g.intersection(row.geometry).area > 1]
    assert len(touched) >= 2


def test_changes_are_visible_in_the_images(scene):
    enc = scene.encroachments
    row = enc[(enc["change_type"] == "water") & (~enc["is_decoy"]) & (~enc["under_cloud"])]
    row = row.sort_values("area_m2").iloc[-1]
    px = _centres_in(scene.grid, row.geometry.buffer(-12))
    assert px.sum() >= 4
    g_after = reflectance(scene, "after", "B03")[px]
    sw_after = reflectance(scene, "after", "B08")[px]
    assert np.median(g_after) > np.median(sw_after)  # open water: green above NIR


def test_reserves_have_nested_zones(scene):
    res = scene.reserves
    assert res.crs.to_epsg() == 32650
    assert list(res.columns[:5]) == ["保护地编号", "保护地名称", "保护地类型", "级别", "功能分区"]
    assert set(res["功能分区"]) <= set(ZONE_ALIASES)
    styles = {}
    for name, grp in res.groupby("保护地名称"):
        zones = list(grp["功能分区"])
        styles[name] = zones
        geoms = list(grp.geometry)
        assert all(g.is_valid and not g.is_empty for g in geoms)
        for i, a in enumerate(geoms):
            for b in geoms[i + 1:]:
                assert a.intersection(b).area < 1e-6
        assert canonical_zone(zones[0]) == "core"
    assert sorted(map(len, styles.values())) == [2, 3]
    assert any(z == ["核心区", "缓冲区", "实验区"] for z in styles.values())
    assert any(z == ["核心保护区", "一般控制区"] for z in styles.values())


def test_mines_source_has_one_invalid_polygon_that_repairs_to_the_truth(scene):
    src = scene.mines_source
    assert src.crs.to_epsg() == 4490
    assert list(src.columns[:6]) == ["矿山编号", "矿山名称", "修复方向", "所在区县", "责任单位", "计划完成年份"]
    valid = src.geometry.is_valid
    assert (~valid).sum() == 1
    bad = src[~valid].iloc[0]
    repaired = shapely.make_valid(bad.geometry)
    truth = scene.mines.set_index("矿山编号").geometry[bad["矿山编号"]]
    a = geodesic_area_m2(repaired, "EPSG:4490")
    assert abs(a - geodesic_area_m2(truth, scene.crs)) < 1e-3
    assert src["矿山编号"].str.match(r"^YH-KS-\d{3}$").all()
    assert src["矿山名称"].str.startswith("余杭区").all()
    assert set(src["所在区县"]) == {"余杭区"}


# -- drone ------------------------------------------------------------------------------


def test_drone_ortho(scene):
    d = make_drone(scene)
    assert d.mine_id == scene.drone_mine_id
    assert d.grid.crs.to_epsg() == 4549 and d.grid.res == (0.1, 0.1)
    assert d.rgb.dtype == np.uint8 and d.rgb.shape == (3, *d.grid.shape)
    assert d.alpha.shape == d.grid.shape and set(np.unique(d.alpha)) == {0, 255}
    assert (d.rgb[:, d.alpha == 0] == 0).all()
    assert (d.rgb[:, d.alpha == 255] > 0).all()
    # the mine sits inside the drone grid (easting/northing in EPSG:4549, x first)
    mine = scene.mines.set_index("矿山编号").geometry[d.mine_id]
    tr = transformer(scene.crs, "EPSG:4549")
    x, y = tr.transform(mine.centroid.x, mine.centroid.y)
    lft, b, r, t = d.grid.bounds
    assert lft < x < r and b < y < t and 400_000 < x < 600_000
    with pytest.raises(InputDataError, match="YH-KS"):
        make_drone(scene, mine_id="NO-SUCH")


# -- parameters, errors, big scenes ---------------------------------------------------


def test_counts_scale_with_area_and_are_parameters():
    s = make_scene(shape=(200, 200), seed=2, n_mines=3, n_reserves=1, n_encroachments=6, n_decoys=2)
    assert len(s.mines) == 3 and s.reserves["保护地名称"].nunique() == 1
    assert (~s.encroachments["is_decoy"]).sum() == 6 and s.encroachments["is_decoy"].sum() == 2
    p = make_scene(shape=(200, 200), seed=2).params  # 4 km²: the minimums
    assert p.n_mines == 2 and p.n_reserves == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(shape=(4, 4)), "at least 8"),
        (dict(n_mines=-1), "n_mines"),
        (dict(noise_sigma=(0.01,)), "noise_sigma"),
        (dict(seed="x"), "seed"),
        (dict(shape=(60, 60), n_mines=40), "mine"),
    ],
)
def test_bad_parameters_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_scene(**kwargs)


def test_bad_date_or_band(scene):
    with pytest.raises(InputDataError, match="date"):
        scene.render_block("later", "B04")
    with pytest.raises(InputDataError, match="band"):
        scene.render_block("after", "B8A")


@pytest.mark.slow
def test_full_tile_scene_is_lazy_and_renders_windows():
    s = make_scene(shape=(10980, 10980), n_mines=6, n_reserves=2, n_encroachments=6, n_decoys=2,
                   n_clouds=2)
    assert s.grid.shape == (10980, 10980) and s.grid20.shape == (5490, 5490)
    win = Window(row_off=5120, col_off=5120, height=256, width=256)
    out = s.render_window("after", win)
    assert out["B04"].shape == (256, 256) and out["SCL"].shape == (128, 128)
    assert (out["B04"] > 0).all()
    mine = s.mines.geometry.iloc[0]
    mw = s.grid.window_from_bounds(mine.bounds)
    mw = Window(row_off=mw.row_off - mw.row_off % 2, col_off=mw.col_off - mw.col_off % 2,
                height=mw.height + 1, width=mw.width + 1)
    blk = s.render_window("before", mw)["B02"]
    assert blk.max() > 1000  # the quarry rock is there


# -- the world's tricks (ecopatch.data.synthetic.tricks, .sensors, .products) ---------

TRICKY = dict(shape=(256, 320), seed=11, seasonal_cropland=0.8, brightness_changes=6,
              dates={"after": "2024-12-10"}, history=["2023-06-12", "2025-08-20"],
              sensors={"before": "landsat_oli_c2l2", "after": "sentinel2_l1c", "2023-06-12": "gf1_wfv"})


@pytest.fixture(scope="module")
def tricky():
    """A winter after date over seasonal cropland, surfaces changing brightness, two extra dates."""
    return make_scene(**TRICKY)


@pytest.fixture(scope="module")
def tricky_plain():
    """The same scene without its tricks."""
    return make_scene(shape=TRICKY["shape"], seed=TRICKY["seed"])


@pytest.fixture(scope="module")
def tricky_written(tricky, tmp_path_factory):
    from ecopatch.data.datasets import write_scene

    return write_scene(tricky, tmp_path_factory.mktemp("tricky"), drone=False)


def _mask(scene, geom, grid=None):
    g = grid or scene.grid
    if geom.is_empty:
        return np.zeros(g.shape, bool)
    return features.geometry_mask([geom], out_shape=g.shape, transform=g.transform, invert=True)


def _ndvi(scene, date):
    red, nir = reflectance(scene, date, "B04"), reflectance(scene, date, "B08")
    return (nir - red) / (nir + red)


def _open_quietly(path, **kw):
    import warnings

    from ecopatch.raster.scene import open_scene

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = open_scene(path, **kw)
    return s, {type(w.message).__name__ for w in caught}


def test_plain_scene_has_no_tricks(scene):
    from ecopatch.data.synthetic import Rendering

    assert scene.tricks is None and scene.pseudo_changes.empty
    assert {"pc_id", "kind", "changed", "cover_before", "cover_after", "zone"} <= set(scene.pseudo_changes.columns)
    acq = scene.acquisitions
    assert list(acq["key"]) == ["before", "after"] and set(acq["sensor"]) == {"sentinel2_l2a"}
    # options at their defaults (or asking for what the plain scene is) give the plain scene
    same = make_scene(shape=(64, 80), seed=1, seasonal_cropland=0.0, brightness_changes=0, haze=0.0,
                      sensors={"after": "sentinel2_l2a", "before": Rendering()})
    assert same.tricks is None


def test_tricks_leave_the_plain_truth_and_pixels_alone(tricky, tricky_plain):
    for attr in ("encroachments", "mines", "clouds", "reserves"):
        a, b = getattr(tricky, attr), getattr(tricky_plain, attr)
        assert a.geometry.geom_equals_exact(b.geometry, 0).all(), attr
    assert tricky.restoration_truth.equals(tricky_plain.restoration_truth)
    # away from the trick surfaces, the before date is the plain scene's, pixel for pixel
    pc = shapely.union_all(tricky.pseudo_changes.geometry.values).buffer(25)
    away = ~_mask(tricky, pc)
    assert away.mean() > 0.3
    assert np.array_equal(tricky.dn["before"]["B04"][away], tricky_plain.render_window("before")["B04"][away])


def test_acquisitions_dates_and_products(tricky):
    acq = tricky.acquisitions.set_index("key")
    assert list(acq.index) == ["before", "after", "2023-06-12", "2025-08-20"]
    assert str(tricky.dates["after"]) == "2024-12-10"
    assert acq.loc["2023-06-12", "ground"] == "before" and acq.loc["2025-08-20", "ground"] == "after"
    assert list(acq["clouds"]) == [False, True, False, False]
    assert acq.loc["after", "sensor"] == "sentinel2_l1c" and acq.loc["before", "sensor"] == "landsat_oli_c2l2"
    p = tricky.products
    assert p["after"].product_id.startswith("S2") and "_20241210T" in p["after"].product_id
    assert p["after"].processing_baseline == "05.10" and p["after"].add_offset == -1000
    assert p["before"] == make_scene(shape=(64, 80), seed=1).products["before"]  # not moved: unchanged
    # every date renders as Sentinel-2 L2A, with its own noise
    for k in tricky.dates:
        assert tricky.dn[k]["B04"].shape == tricky.grid.shape and (tricky.dn[k]["B04"] > 0).mean() > 0.9
    with pytest.raises(InputDataError, match="2023-06-12"):
        tricky.render_window("2024-01-01")


def test_crop_calendar():
    from ecopatch.data.synthetic.tricks import CROP_CALENDARS, CROP_STATES, crop_state

    day = lambda s: __import__("datetime").date.fromisoformat(s)  # noqa: E731
    assert crop_state("rice", day("2024-09-12")) == "green"
    assert crop_state("rice", day("2024-12-10")) == "ploughed"
    assert crop_state("rice", day("2025-06-12")) == "flooded"
    assert crop_state("rice", day("2024-10-20")) == "harvested"
    assert crop_state("rice", day("2024-10-20"), shift_days=12) == "green"  # a late field
    assert crop_state("rice_rape", day("2025-02-20")) == "green"  # winter rape
    for cal in CROP_CALENDARS.values():
        assert {s for _, s in cal} <= set(CROP_STATES)


def test_seasonal_fields_truth(tricky):
    from ecopatch.data.synthetic.tricks import CROP_STATES, crop_state

    pc = tricky.pseudo_changes
    fields = pc[pc["kind"] == "seasonal_cropland"]
    assert len(fields) > 200 and fields["shift_days"].between(-12, 12).all()
    # every field's states follow its calendar at every acquisition, and say how it looks
    for k, d in tricky.dates.items():
        want = [crop_state(c, d, s) for c, s in zip(fields["surface"], fields["shift_days"])]
        assert list(fields[f"state_{k}"]) == want, k
    look = fields["state_after"].map(lambda st: CROP_STATES[st])
    assert (fields["material_after"] == look.str[0]).all() and (fields["cover_after"] == look.str[1]).all()
    # September green, December mostly ploughed (or winter rape), summer green again
    assert (fields["state_before"] == "green").all() and (fields["state_2025-08-20"] == "green").all()
    changed = fields[fields["changed"]]
    assert len(changed) > 0.5 * len(fields)
    assert (changed["cover_before"] == "vegetation").all() and set(changed["cover_after"]) <= {"bare", "water"}
    assert (fields["state_2023-06-12"] == "flooded").mean() > 0.5  # transplanting
    # some of it is inside the reserves, as the farmland of a wetland park is
    inside = changed[changed["zone"] != "outside"]
    assert inside["area_m2"].sum() > 5_000 and inside["reserve_name"].notna().all()
    # fields keep off roads, buildings, mines and encroachments, and off each other
    others = shapely.union_all([*tricky.encroachments.geometry, *tricky.mines.geometry])
    assert shapely.area(shapely.intersection(fields.geometry.values, others)).max() < 1e-6
    assert shapely.union_all(fields.geometry.values).area == pytest.approx(fields.geometry.area.sum(), rel=1e-9)
    np.testing.assert_allclose(geodesic_area_m2(fields.geometry.values, tricky.crs), fields["area_m2"], rtol=1e-12)


def test_seasonal_fields_in_the_imagery(tricky):
    pc = tricky.pseudo_changes
    fields = pc[pc["kind"] == "seasonal_cropland"]
    clouds = shapely.union_all(tricky.clouds.geometry.values).buffer(50)

    def pixels(sel):
        return _mask(tricky, shapely.union_all(sel.geometry.values).buffer(-12).difference(clouds))

    ploughed = pixels(fields[fields["state_after"] == "ploughed"])
    assert ploughed.sum() > 500
    assert np.nanmedian(_ndvi(tricky, "before")[ploughed]) > 0.65  # green in September
    assert np.nanmedian(_ndvi(tricky, "after")[ploughed]) < 0.25  # bare in December
    assert np.nanmedian(_ndvi(tricky, "2025-08-20")[ploughed]) > 0.65  # green again the next season
    flooded = pixels(fields[fields["state_2023-06-12"] == "flooded"])
    g = reflectance(tricky, "2023-06-12", "B03")[flooded]
    sw = np.repeat(np.repeat(reflectance(tricky, "2023-06-12", "B11"), 2, 0), 2, 1)[flooded]
    assert np.nanmedian((g - sw) / (g + sw)) > 0.3  # reads as water (MNDWI)
    # the Sen2Cor classes follow: vegetation before, not vegetated after
    scl = {d: np.repeat(np.repeat(tricky.dn[d]["SCL"], 2, 0), 2, 1)[ploughed] for d in ("before", "after")}
    assert (scl["before"] == 4).mean() > 0.9 and (scl["after"] == 5).mean() > 0.9


def test_brightness_changes_keep_their_cover(tricky):
    pc = tricky.pseudo_changes
    surf = pc[pc["kind"] == "brightness_change"]
    assert len(surf) == 6 and set(surf["surface"]) >= {"quarry", "clay_pit", "construction_site", "steel_roof"}
    assert (surf["cover_before"] == surf["cover_after"]).all() and set(surf["cover_before"]) <= {"bare", "built"}
    assert (surf["material_before"] == surf["material_after"]).all() and (surf["gain_b04"] != 1).all()
    assert (surf["zone"] != "outside").sum() >= 3  # most of them inside the reserves
    assert (surf["state_before"] == "as_before").all()
    assert set(surf["state_after"]) <= {"brighter", "darker"}
    # measured between two clear extra dates: 2023-06-12 shows the before ground, 2025-08-20 the after
    early, late = "2023-06-12", "2025-08-20"
    assert (surf[f"state_{early}"] == "as_before").all() and (surf[f"state_{late}"] == surf["state_after"]).all()
    measured = 0
    for _, row in surf.iterrows():
        px = _mask(tricky, row.geometry.buffer(-8))
        if px.sum() < 2:
            continue
        ratio = np.nanmedian(reflectance(tricky, late, "B04")[px]) / np.nanmedian(reflectance(tricky, early, "B04")[px])
        # each date's own radiometry (a few per cent) aside, the surface changed by its gain
        assert ratio == pytest.approx(row["gain_b04"], rel=0.15), row["pc_id"]
        measured += 1
        # and the ground around it did not change
        ring = _mask(tricky, row.geometry.buffer(60).difference(row.geometry.buffer(30)))
        assert abs(np.nanmedian(reflectance(tricky, late, "B04")[ring] - reflectance(tricky, early, "B04")[ring])) \
            < 0.02
    assert measured >= 4


def test_haze_is_additive_strongest_in_blue_and_can_vary_in_space():
    from ecopatch.data.synthetic import Haze

    kw = dict(shape=(96, 128), seed=4, n_clouds=0, nodata_edge=False, noise_sigma=(0.0,) * 6)
    clear = make_scene(**kw)
    hazy = make_scene(**kw, haze=Haze(blue=0.04))
    assert np.array_equal(hazy.dn["before"]["B02"], clear.dn["before"]["B02"])  # the other date is untouched
    deltas = {b: np.nanmedian(reflectance(hazy, "after", b) - reflectance(clear, "after", b))
              for b in ("B02", "B03", "B04", "B08", "B11", "B12")}
    order = list(deltas.values())
    assert all(a > b for a, b in zip(order, order[1:])), deltas  # falls off with wavelength
    # p (1 - ρ) with p = 0.04 (λ / 492 nm)^-1.3: 0.038 in blue, 0.026 in red over dark ground
    assert 0.034 < deltas["B02"] < 0.04 and 0.022 < deltas["B04"] < 0.028 and deltas["B12"] < 0.006
    assert hazy.acquisitions.set_index("key").loc["after", "haze_b02"] == 0.04
    grad = make_scene(**kw, haze=Haze(blue=0.04, pattern="gradient"))
    d = reflectance(grad, "after", "B02") - reflectance(clear, "after", "B02")
    lo, hi = np.nanpercentile(d, [5, 95])
    assert lo < 0.025 and hi > 0.05  # 0.25 to 1.75 times the haze across the scene
    with pytest.raises(ConfigError, match="pattern"):
        Haze(pattern="fog")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(seasonal_cropland=1.5), "seasonal_cropland"),
        (dict(brightness_changes=-1), "brightness_changes"),
        (dict(dates={"after": "2020-01-01"}), "before date"),
        (dict(dates={"during": "2022-01-01"}), "before"),
        (dict(dates={"after": "12/10/2024"}), "YYYY-MM-DD"),
        (dict(history=["2021-09-18"]), "history"),
        (dict(haze="much"), "haze"),
        (dict(sensors={"after": "spot6"}), "spot6"),
        (dict(sensors={"later": "sentinel2_l1c"}), "later"),
    ],
)
def test_bad_trick_parameters_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_scene(shape=(64, 80), seed=1, **kwargs)


def test_bad_trick_objects_raise_config_error():
    from ecopatch.data.synthetic import Haze, Rendering, render_product

    with pytest.raises(ConfigError, match="acquisition"):
        make_scene(shape=(64, 80), seed=1, haze=Haze(date="2030-01-01"))
    with pytest.raises(ConfigError, match="own grid"):
        Rendering("sentinel2_l1c", crs="EPSG:4326")
    old = make_scene(shape=(64, 80), seed=1, dates={"before": "2010-06-01"})
    with pytest.raises(InputDataError, match="Landsat"):
        render_product(old, "before", sensor="landsat_oli_c2l2")
    with pytest.raises(InputDataError, match="Gaofen"):
        render_product(old, "before", sensor="gf1_wfv")


def test_tricky_scene_pickles_for_dask_workers(tricky):
    import pickle

    from ecopatch.data.synthetic import render_product

    clone = pickle.loads(pickle.dumps(tricky))
    win = Window(row_off=64, col_off=64, height=64, width=64)
    assert np.array_equal(clone.render_window("after", win)["B04"], tricky.dn["after"]["B04"][win.slices])
    a = render_product(clone, "after", window=Window(row_off=2, col_off=2, height=8, width=8))
    b = render_product(tricky, "after", window=Window(row_off=2, col_off=2, height=8, width=8))
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("sensor, block", [("sentinel2_l1c", (7, 9)), ("landsat_oli_c2l2", (20, 33)),
                                           ("gf1_wfv", (40, 64))])
def test_products_render_blockwise_equal_whole(tricky, sensor, block):
    from ecopatch.data.synthetic import product_grids, render_product
    from ecopatch.data.synthetic.sensors import base_grid

    whole = render_product(tricky, "after", sensor=sensor)
    grids = product_grids(tricky, "after", sensor)
    base = base_grid(tricky, "after", sensor)
    for name, arr in whole.items():
        assert arr.shape == grids[name].shape, name
    out = {k: np.zeros_like(v) for k, v in whole.items()}
    for win in base.chunks(block):
        part = render_product(tricky, "after", sensor=sensor, window=win)
        for k, arr in part.items():
            f = int(round(base.res[0] / grids[k].res[0]))
            r0, c0 = win.row_off * f, win.col_off * f
            out[k][r0:r0 + arr.shape[0], c0:c0 + arr.shape[1]] = arr
    for k in whole:
        assert np.array_equal(out[k], whole[k]), k


# -- Sentinel-2 L1C: top of atmosphere, 13 bands, no mask -------------------------------------------


@pytest.fixture(scope="module")
def l1c(tricky):
    from ecopatch.data.synthetic import render_product

    out = render_product(tricky, "after")  # written as sentinel2_l1c
    off = -tricky.products["after"].add_offset
    return {b: np.where(a > 0, (a.astype(np.float64) - off) / 10000, np.nan) for b, a in out.items()}


def _on10(a, shape):
    """A 10, 20 or 60 m band repeated onto the 10 m grid of ``shape``."""
    f = int(np.ceil(shape[0] / a.shape[0]))
    return np.repeat(np.repeat(a, f, 0), f, 1)[: shape[0], : shape[1]]


def test_l1c_product_layout_has_no_mask_and_opens_with_a_missing_mask_warning(tricky, tricky_written):
    data = tricky_written
    safe = data.products["after"]
    assert safe.name.startswith("S2") and "_MSIL1C_20241210T" in safe.name and safe.suffix == ".SAFE"
    assert data.metadata["after"].name == "MTD_MSIL1C.xml"
    import xml.etree.ElementTree as ET

    root = ET.parse(data.metadata["after"]).getroot()
    assert root.findtext(".//PRODUCT_TYPE") == "S2MSI1C" and root.findtext(".//PROCESSING_LEVEL") == "Level-1C"
    assert root.findtext(".//QUANTIFICATION_VALUE") == "10000"
    assert {e.text for e in root.iter("RADIO_ADD_OFFSET")} == {"-1000"}
    assert not list(root.iter("Scene_Classification_ID"))
    assert not [p for p in safe.rglob("*") if "SCL" in p.name or "MSK" in p.name]
    import rasterio

    res = {}
    for b, path in data.bands["after"].items():
        with rasterio.open(path) as ds:
            res[b] = ds.res[0]
            assert ds.crs.to_epsg() == 32650 and ds.dtypes[0] == "uint16" and ds.nodata == 0
    assert res == {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
                   "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20}
    s, warned = _open_quietly(safe, haze="none")
    assert s.sensor.name == "sentinel2_l1c" and s.info.level == "L1C" and s.mask is None
    assert "MissingMaskWarning" in warned and "AssumptionWarning" not in warned
    assert s.date == tricky.dates["after"] and s.band("red").offset == pytest.approx(-0.1)


def test_l1c_is_top_of_atmosphere(tricky, l1c):
    clouds = _mask(tricky, shapely.union_all(tricky.clouds.geometry.values).buffer(100))
    clear = ~clouds
    sr = {b: reflectance(tricky, "after", b) for b in ("B02", "B04", "B08")}
    d_blue = np.nanmedian(l1c["B02"][clear] - sr["B02"][clear])
    d_red = np.nanmedian(l1c["B04"][clear] - sr["B04"][clear])
    assert 0.03 < d_blue < 0.07 and 0 < d_red < d_blue  # path radiance: TOA brighter, most in blue
    ground = clear & (sr["B08"] > 0.2)
    shape = tricky.grid.shape
    b10, b09, b8a = (_on10(l1c[b], shape)[ground] for b in ("B10", "B09", "B8A"))
    assert np.nanmedian(b10) < 0.003  # the cirrus band does not see the ground
    assert np.nanmedian(b09 / b8a) < 0.5  # water vapour absorption
    assert np.nanmedian(_on10(l1c["B01"], shape)[clear]) > np.nanmedian(l1c["B02"][clear])  # the haziest band


def test_l1c_clouds_have_realistic_spectra_in_every_band(tricky, l1c):
    kinds = tricky.clouds.set_index("kind").geometry
    shape = tricky.grid.shape
    thick = _mask(tricky, kinds["cloud_high"].buffer(-30))
    cirrus = _mask(tricky, kinds["cirrus"].buffer(-30))
    ground = ~_mask(tricky, shapely.union_all(kinds.values).buffer(100))
    assert thick.sum() > 100 and cirrus.sum() > 50
    med = {b: np.nanmedian(_on10(a, shape)[thick]) for b, a in l1c.items()}
    vnir = [med[b] for b in ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A")]
    assert min(vnir) > 0.35 and max(vnir) - min(vnir) < 0.08  # bright and flat
    assert med["B11"] > 0.25 and med["B12"] > 0.15  # bright in SWIR
    assert med["B09"] < 0.8 * med["B8A"]  # water vapour above the cloud still absorbs
    b10 = _on10(l1c["B10"], shape)
    b10_ground, b10_cirrus = np.nanmedian(b10[ground]), np.nanmedian(b10[cirrus])
    assert b10_cirrus > med["B10"] > 10 * b10_ground  # thin cirrus high in B10, the low cloud lower
    # thin cirrus brightens the ground a little, the thick cloud a lot
    veil = np.nanmedian(l1c["B04"][cirrus]) - np.nanmedian(l1c["B04"][ground])
    assert 0.02 < veil < med["B04"] - np.nanmedian(l1c["B04"][ground])


def test_cloud_shadows_fall_height_tan_zenith_away_from_the_sun(tricky, l1c):
    from ecopatch.data.synthetic import cloud_geometry

    g = cloud_geometry()
    assert g["cloud_height_m"] * np.tan(np.radians(g["sun_zenith_deg"])) == pytest.approx(
        np.hypot(g["shadow_dx_m"], g["shadow_dy_m"]))
    # away from the sun (azimuth 145°, south-east): the shadow lies north-west
    assert g["shadow_dx_m"] < 0 < g["shadow_dy_m"]
    kinds = tricky.clouds.set_index("kind").geometry
    core = shapely.union_all([kinds["cloud_high"], kinds["cloud_medium"]])
    moved = shapely.affinity.translate(core, g["shadow_dx_m"], g["shadow_dy_m"])
    assert kinds["shadow"].difference(moved).area < 1e-3 * kinds["shadow"].area  # truth: within the cast
    # the imagery: the dark-NIR mask is the cloud mask shifted by (dx, dy), to a pixel
    cm = _mask(tricky, core)
    nir = l1c["B08"]
    dark = (nir < 0.45 * np.nanmedian(nir)) & ~cm
    h, w = cm.shape
    fa = np.fft.rfft2(np.pad(cm.astype(float), ((0, h), (0, w))))
    fb = np.fft.rfft2(np.pad(dark.astype(float), ((0, h), (0, w))))
    corr = np.fft.irfft2(np.conj(fa) * fb, s=(2 * h, 2 * w))
    i, j = np.unravel_index(np.argmax(corr), corr.shape)
    di, dj = (i if i < h else i - 2 * h), (j if j < w else j - 2 * w)
    assert dj * 10 == pytest.approx(g["shadow_dx_m"], abs=15)
    assert -di * 10 == pytest.approx(g["shadow_dy_m"], abs=15)


def test_s2cloudless_finds_the_l1c_clouds_and_not_the_ground(tricky, l1c):
    s2cloudless = pytest.importorskip("s2cloudless")
    # s2cloudless's own band set, at 20 m (10 m bands averaged, 60 m bands repeated)
    h, w = tricky.grid20.shape
    bands = []
    for b in ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12"):
        a = np.nan_to_num(l1c[b])
        if a.shape == tricky.grid.shape:
            a = np.pad(a, ((0, a.shape[0] % 2), (0, a.shape[1] % 2)), mode="edge")
            a = a.reshape(a.shape[0] // 2, 2, a.shape[1] // 2, 2).mean(axis=(1, 3))
        elif a.shape[0] < h:
            a = np.repeat(np.repeat(a, 3, 0), 3, 1)
        bands.append(a[:h, :w])
    det = s2cloudless.S2PixelCloudDetector(threshold=0.4, average_over=None, dilation_size=None)
    prob = det.get_cloud_probability_maps(np.stack(bands, -1)[None])[0]
    kinds = tricky.clouds.set_index("kind").geometry
    thick = _mask(tricky, kinds["cloud_high"].buffer(-40), tricky.grid20)
    ground = ~_mask(tricky, shapely.union_all(kinds.values).buffer(200), tricky.grid20)
    assert (prob[thick] > 0.4).mean() > 0.95
    assert (prob[ground] > 0.4).mean() < 0.01


# -- Landsat 8/9 Collection 2 Level-2 and Gaofen-1 WFV ----------------------------------------------


def test_landsat_product_is_identified_with_its_qa_mask(tricky, tricky_written):
    data = tricky_written
    folder = data.products["before"]
    assert folder.name.startswith("LC08_L2SP_119039_20210918_")  # Landsat 9 flies from 2022
    assert data.metadata["before"].name.endswith("_MTL.txt")
    assert set(data.bands["before"]) == {"SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7", "QA_PIXEL"}
    s, warned = _open_quietly(folder)
    assert s.sensor.name == "landsat_oli_c2l2" and s.info.platform == "LANDSAT_8" and s.info.level == "L2SP"
    assert s.mask is not None and s.mask.kind == "qa_pixel"
    assert not warned & {"AssumptionWarning", "MissingMaskWarning"}
    assert s.grid.crs.to_epsg() == 32651 and s.grid.res == (30.0, 30.0)
    assert s.grid.transform.c % 30 == 15 and s.grid.transform.f % 30 == 15  # the USGS lattice, not S2's
    assert s.band("red").band_id == "SR_B4" and s.band("nir").band_id == "SR_B5"
    assert s.band("red").scale == pytest.approx(2.75e-5) and s.band("red").offset == pytest.approx(-0.2)
    assert s.date == tricky.dates["before"]


def test_landsat_reflectance_matches_sentinel2_over_the_same_ground(tricky):
    from ecopatch.data.synthetic import product_grids, render_product
    from ecopatch.raster.sensors import landsat_qa_flags

    ls = render_product(tricky, "after", sensor="landsat_oli_c2l2")
    g = product_grids(tricky, "after", "landsat_oli_c2l2")["SR_B4"]
    to_ls = transformer(tricky.crs, g.crs)

    def in_ls(geom):
        return shapely.transform(geom, lambda xy: np.column_stack(to_ls.transform(xy[:, 0], xy[:, 1])))

    built = shapely.union_all([geom for geom, _ in tricky.surface_shapes("after", tricky.grid.bounds)])
    cloud = shapely.union_all(tricky.clouds.geometry.values)
    forest = shapely.box(*tricky.grid.bounds).buffer(-100).difference(built.buffer(60)).difference(cloud.buffer(100))
    m_ls = _mask(tricky, in_ls(forest.buffer(-20)), g)
    m_s2 = _mask(tricky, forest.buffer(-20))
    assert m_ls.sum() > 300
    for lb, sb in (("SR_B2", "B02"), ("SR_B4", "B04"), ("SR_B5", "B08"), ("SR_B6", "B11")):
        rl = np.median(ls[lb][m_ls] * 2.75e-5 - 0.2)
        rs = reflectance(tricky, "after", sb)
        rs = rs if rs.shape == tricky.grid.shape else np.repeat(np.repeat(rs, 2, 0), 2, 1)
        assert rl == pytest.approx(np.nanmedian(rs[m_s2]), abs=0.025), lb
    flags = landsat_qa_flags(ls["QA_PIXEL"])
    fill = ls["QA_PIXEL"] == 1
    assert (fill == (ls["SR_B4"] == 0)).all() and 0.02 < fill.mean() < 0.4  # the rotated UTM 51 frame
    kinds = tricky.clouds.set_index("kind").geometry
    for kind, flag in (("cloud_high", "cloud"), ("cirrus", "cirrus"), ("shadow", "cloud_shadow")):
        px = _mask(tricky, in_ls(kinds[kind].buffer(-40)), g)
        assert px.sum() > 10 and flags[flag][px].mean() > 0.9, kind
    assert flags["clear"][m_ls].all()


def test_gaofen_product_is_one_unlabelled_4_band_file(tricky, tricky_written):
    data = tricky_written
    path = data.products["2023-06-12"]
    assert path.name.startswith("GF1_WFV3_E") and "_20230612_" in path.name and path.suffix == ".tif"
    assert data.metadata["2023-06-12"] is None and set(data.bands["2023-06-12"].values()) == {path}
    import rasterio

    with rasterio.open(path) as ds:
        assert ds.count == 4 and ds.crs.to_epsg() == 4490 and ds.res == (0.00015, 0.00015)
        assert ds.descriptions == (None,) * 4 and ds.dtypes == ("uint16",) * 4
    s, warned = _open_quietly(path)
    assert s.sensor.name == "gf1_wfv" and s.date == tricky.dates["2023-06-12"] and s.mask is None
    assert {"AssumptionWarning", "MissingMaskWarning", "DegradedAnalysisWarning"} <= warned  # no SWIR, no mask
    assert [s.band(b).index for b in ("blue", "green", "red", "nir")] == [1, 2, 3, 4]
    obs = s.read(["red", "nir"])
    nir = obs["nir"][obs.valid]
    assert 0.2 < np.median(nir) < 0.4  # reflectance × 10000 read as reflectance


def test_written_trick_truth(tricky, tricky_written):
    import json

    import geopandas as gpd

    data = tricky_written
    assert set(data.products) == {"before", "after", "2023-06-12", "2025-08-20"}
    assert data.products["2025-08-20"].name.startswith("S2") and "_MSIL2A_20250820T" in data.products["2025-08-20"].name
    assert all(p.exists() for p in data.files()) and data.pseudo_changes in data.files()
    pc = gpd.read_file(data.pseudo_changes, layer="pseudo_changes")
    assert len(pc) == len(tricky.pseudo_changes) and pc.crs.to_epsg() == 32650
    assert list(pc["pc_id"]) == list(tricky.pseudo_changes["pc_id"])
    info = json.loads(data.scene_json.read_text(encoding="utf-8"))
    assert info["tricks"]["seasonal_cropland"] == 0.8 and info["tricks"]["dates"] == {"after": "2024-12-10"}
    assert [a["key"] for a in info["acquisitions"]] == list(data.products)
    assert info["cloud_geometry"]["cloud_height_m"] == 1000.0
    assert info["dates"]["2023-06-12"] == "2023-06-12"
