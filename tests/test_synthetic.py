"""Tests for ecopatch.synthetic: determinism, block rendering and truth consistency."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from rasterio import features

from ecopatch.errors import ConfigError, InputDataError
from ecopatch.geodesy import geodesic_area_m2, transformer
from ecopatch.grid import Window
from ecopatch.schema import CHANGE_TYPES, ZONE_ALIASES, canonical_zone
from ecopatch.synthetic import (
    BANDS_10M,
    BANDS_20M,
    DATES,
    MATERIALS,
    RASTERS,
    _Noise,
    make_drone,
    make_scene,
)

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
    wins = [Window(250, 250, 40, 60), Window(0, 0, 400, 500), Window(120, 380, 6, 8)]
    for win in wins:
        fresh._cache.clear()
        out = fresh.render_window("after", win)
        assert np.array_equal(out["B02"], scene.dn["after"]["B02"][win.slices])


def test_render_window_gives_every_raster_on_its_grid(scene):
    win = Window(100, 200, 50, 61)
    out = scene.render_window("after", win)
    assert set(out) == set(RASTERS)
    for b in BANDS_10M:
        assert out[b].shape == (50, 61) and out[b].dtype == np.uint16
        assert np.array_equal(out[b], scene.dn["after"][b][win.slices])
    for b in (*BANDS_20M, "SCL"):
        assert out[b].shape == (25, 31)
        assert np.array_equal(out[b], scene.dn["after"][b][50:75, 100:131])
    with pytest.raises(InputDataError, match="even"):
        scene.render_window("after", Window(1, 0, 10, 10))


def test_scene_pickles_for_dask_workers(scene):
    import pickle

    clone = pickle.loads(pickle.dumps(scene))
    win = Window(200, 300, 64, 64)
    assert np.array_equal(clone.render_window("after", win)["B08"], scene.dn["after"]["B08"][win.slices])
    assert clone.restoration_truth.equals(scene.restoration_truth)


def test_grid_and_point_noise_agree():
    n = _Noise(11)
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
    cell = g.cell_area_m2(Window(0, 0, 1, 1))[0, 0]
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
    win = Window(5120, 5120, 256, 256)
    out = s.render_window("after", win)
    assert out["B04"].shape == (256, 256) and out["SCL"].shape == (128, 128)
    assert (out["B04"] > 0).all()
    mine = s.mines.geometry.iloc[0]
    mw = s.grid.window_from_bounds(mine.bounds)
    mw = Window(mw.row_off - mw.row_off % 2, mw.col_off - mw.col_off % 2, mw.height + 1, mw.width + 1)
    blk = s.render_window("before", mw)["B02"]
    assert blk.max() > 1000  # the quarry rock is there
