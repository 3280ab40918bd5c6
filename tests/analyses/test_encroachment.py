"""Suspect patches in the reserves against the golden sample's truth (issue acceptance figures)."""

import geopandas as gpd
import numpy as np
import pytest
import shapely

import ecopatch
import ecopatch.analyses.encroachment
import ecopatch.analyses.pairing
import ecopatch.analyses.zones
from ecopatch.analyses.validation import score_patches
from ecopatch.vocabulary import PATCH_COLUMNS, ZONE_STRICTNESS


@pytest.fixture(scope="module")
def truth(sample):
    enc = gpd.read_file(sample.encroachments)
    enc["eligible"] = enc["reserve_name"].notna() & ~enc["is_decoy"].astype(bool) & ~enc["under_cloud"].astype(bool)
    return enc


@pytest.fixture(scope="module")
def score(inputs, truth):
    return score_patches(inputs.patches, truth, eligible=truth["eligible"].to_numpy(), reserves=inputs.reserves)


def test_recall_precision_and_area(score):
    assert score.n_true >= 6
    assert score.recall >= 0.95, score.table
    assert score.precision >= 0.9, score.false_patches
    assert 0.85 <= score.area_ratio <= 1.15
    assert 0.85 <= score.change_area_ratio <= 1.15


def test_no_decoy_and_water_typed_as_water(score, truth):
    t = score.table
    decoys = t[t["enc_id"].isin(truth.loc[truth["is_decoy"].astype(bool), "enc_id"])]
    assert not decoys["found"].any(), decoys
    water = t[(t["true_type"] == "water") & t["eligible"]]
    assert len(water) >= 1 and (water["type_found"] == "water").all(), water


def test_no_patch_from_the_cloud(sample, inputs):
    clouds = gpd.read_file(sample.clouds, layer="clouds").to_crs(inputs.patches.crs)
    cloud = shapely.union_all(clouds.geometry.to_numpy())
    inside = shapely.area(shapely.intersection(inputs.patches.geometry.to_numpy(), cloud))
    assert (inside <= 0.05 * inputs.patches["area_m2"].to_numpy()).all()


def test_unobserved_area_is_reported(inputs):
    obs = ecopatch.analyses.encroachment.observation_table(inputs.patches)
    # pandas operations that compare attrs keep working
    assert len(inputs.patches.merge(inputs.patches[["patch_id"]], on="patch_id")) == len(inputs.patches)
    assert {"reserve_name", "zone", "area_m2", "observed_m2", "unobserved_m2"} <= set(obs.columns)
    assert (obs["observed_m2"] <= obs["area_m2"] * 1.001).all()
    assert (obs["observed_fraction"] < 0.9).any()  # the cloud blinds part of a reserve
    assert (obs["observed_fraction"] > 0.99).any()


def test_schema_units_and_coordinates(inputs):
    p = inputs.patches
    assert list(p.columns[: len(PATCH_COLUMNS)]) == list(PATCH_COLUMNS)
    assert p["patch_id"].is_unique
    np.testing.assert_allclose(p["area_mu"], p["area_m2"] * 15 / 10_000)
    assert p["change_type"].isin(ecopatch.vocabulary.CHANGE_TYPES).all()
    assert ((p["confidence"] >= 0) & (p["confidence"] <= 1)).all()
    assert p["zone"].isin(ZONE_STRICTNESS).all()
    assert p["centroid_lon"].between(119.9, 120.0).all() and p["centroid_lat"].between(30.1, 30.3).all()
    # CGCS2000 and WGS84 agree to centimetres at this scale
    assert (abs(p["cgcs2000_lon"] - p["centroid_lon"]) < 1e-6).all()
    assert p.crs.to_epsg() == 4490  # the reserves' CRS


def test_patch_ids_are_deterministic(inputs):
    again = ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, block=128, progress=False,
                                    min_area_m2=400)
    assert list(again["patch_id"]) == list(inputs.patches["patch_id"])
    assert inputs.patches["patch_id"].str.match(r"^20240912-[0-9a-z]{9}(-\d+)?$").all()


def test_only_the_ground_near_the_reserves_is_computed_and_nothing_moves(inputs, monkeypatch):
    # a block is read and its statistic computed only over the part the reserves (and one pixel
    # around) touch; the patches, their numbers and the observation table must be those of whole blocks
    import pandas as pd

    enc = ecopatch.analyses.encroachment
    real = enc._needed
    shrunk = []

    def spy(aoi, cov, p1):
        part = real(aoi, cov, p1)
        shrunk.append(part.height * part.width < p1.height * p1.width)
        return part

    monkeypatch.setattr(enc, "_needed", spy)
    part = ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, block=96, progress=False)
    assert any(shrunk) and len(part) > 0
    monkeypatch.setattr(enc, "_needed", lambda aoi, cov, p1: p1)
    whole = ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, block=96, progress=False)
    pd.testing.assert_frame_equal(part.drop(columns="geometry"), whole.drop(columns="geometry"))
    assert part.geometry.geom_equals_exact(whole.geometry, 0).all()
    assert part.attrs["observation"] == whole.attrs["observation"]


def test_the_needed_part_of_a_block():
    from ecopatch.geo.grid import Window

    p1 = Window(row_off=9, col_off=19, height=12, width=12)
    aoi = np.zeros(p1.shape, dtype=bool)
    aoi[4, 5] = aoi[6, 7] = True
    part = ecopatch.analyses.encroachment._needed(aoi, None, p1)
    # the pixels touched, one around, in grid coordinates
    assert part == Window(row_off=9 + 3, col_off=19 + 4, height=5, width=5)
    aoi[0, 0] = True  # one around is clipped to the block
    assert ecopatch.analyses.encroachment._needed(aoi, None, p1) == Window(row_off=9, col_off=19, height=8, width=9)
    assert ecopatch.analyses.encroachment._needed(None, None, p1) == p1
    empty = ecopatch.analyses.encroachment._needed(np.zeros(p1.shape, dtype=bool), None, p1)
    assert empty.height * empty.width == 1


def test_crossing_a_zone_boundary_takes_the_strictest_zone(inputs, truth, score):
    rank = {z: i for i, z in enumerate(ZONE_STRICTNESS)}
    crossing = truth[truth["zones"].fillna("").str.contains(",") & truth["eligible"]]
    assert len(crossing) >= 1
    p = inputs.patches.set_index("patch_id")
    for _, row in crossing.iterrows():
        found = score.table.set_index("enc_id").loc[row["enc_id"], "patch_ids"]
        strictest = min(row["zones"].split(","), key=rank.get)
        assert any(p.loc[pid, "zone"] == strictest for pid in found)


def test_exclusion_layer_removes_approved_activity(inputs, truth, score):
    t = score.table[score.table["found"]]
    approved = truth[truth["enc_id"] == t["enc_id"].iloc[0]]
    out = ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, exclude=approved, progress=False,
                                  min_area_m2=400)
    assert len(out) == len(inputs.patches) - len(t["patch_ids"].iloc[0])


def test_margin_watches_around_the_reserves(inputs):
    wide = ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, margin_m=300, progress=False,
                                   min_area_m2=400)
    assert len(wide) >= len(inputs.patches)
    # every patch is still there (those cut by a reserve edge now extend past it)
    hits = shapely.intersects(inputs.patches.geometry.to_numpy()[:, None], wide.geometry.to_numpy()[None, :])
    assert hits.any(axis=1).all()
    out = wide[wide["zone"] == "outside"]
    assert (out["zone_name"] == "保护地外围").all()


def test_mmu_in_mu_and_no_gain(inputs):
    big = ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, min_area_mu=3, include_gain=False,
                                  progress=False)
    assert (big["change_m2"] >= 2000 - 1e-6).all()
    assert (big["change_type"] != "vegetation_gain").all()


def test_cli_detect_writes_formats(sample, tmp_path):
    from click.testing import CliRunner

    from ecopatch.cli.main import cli

    for ext in ("gpkg", "geojson", "csv", "kml"):
        out = tmp_path / f"patches.{ext}"
        res = CliRunner().invoke(cli, ["detect", "--before", str(sample.products["before"]), "--after",
                                       str(sample.products["after"]), "--reserves", str(sample.reserves),
                                       "--min-area", "400", "--out", str(out), "--no-progress"])
        assert res.exit_code == 0, res.output
        assert out.exists() and (tmp_path / "patches_observation.csv").exists()
        assert "suspect patches" in res.output
        (tmp_path / "patches_observation.csv").unlink()


def test_block_at_the_grid_origin_outlines_without_warnings():
    # rasterio warns "no geotransform" for an identity transform, and warning filters are not
    # thread-safe: the block at (0, 0) must neither warn nor be shifted by the workaround
    import warnings

    from ecopatch.compute.change import PixelChange
    from ecopatch.compute.components import STAT_NAMES, block_components
    from ecopatch.geo.grid import Window

    code = np.zeros((6, 6), dtype=np.uint8)
    code[1:3, 2:5] = 1  # a 2 x 3 pixel patch
    ones = np.ones(code.shape)
    change = PixelChange(code=code, prob=ones, share=ones, observed=np.ones(code.shape, dtype=bool))
    for win in (Window(row_off=0, col_off=0, height=6, width=6), Window(row_off=512, col_off=1024, height=6, width=6)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            comps = block_components(change, win, ones * 100.0)
        assert len(comps.outline) == 1
        assert comps.outline[0].bounds == (win.col_off + 2, win.row_off + 1, win.col_off + 5, win.row_off + 3)
        assert comps.stats[0][STAT_NAMES.index("n_px")] == 6
        assert comps.stats[0][STAT_NAMES.index("a_total")] == pytest.approx(600.0)


def test_attach_zones_strictest_then_largest_overlap_then_first_zone():
    from shapely.geometry import box

    zones = gpd.GeoDataFrame(
        {"name": ["A", "B", "C", "D"], "zone": ["实验区", "核心区", "缓冲区", "缓冲区"]},
        geometry=[box(0, 0, 100, 100), box(50, 50, 100, 100), box(200, 0, 300, 100), box(200, 0, 300, 100)],
        crs="EPSG:32650",
    )
    patches = gpd.GeoDataFrame(
        {"k": [0, 1, 2, 3, 4]},
        geometry=[
            box(60, 60, 70, 70),    # inside A and B: the core zone B
            box(10, 10, 20, 20),    # inside A only
            box(40, 10, 60, 20),    # crosses nothing but A (B starts at y 50)
            box(210, 10, 220, 20),  # inside C and D, the same zone and overlap: the first, C
            box(-30, 10, -20, 20),  # outside, in the margin: named after the nearest reserve polygon
        ],
        crs="EPSG:32650",
    )
    shapely.prepare(zones.geometry.values[0])
    out = ecopatch.analyses.zones.attach_zones(patches, zones, "zone", "name", 50.0)
    assert list(out["reserve_name"]) == ["B", "A", "A", "C", "A"]
    assert list(out["zone"])[:4] == ["core", "experimental", "experimental", "buffer"]
    assert out["zone"].iloc[4] == "outside"
    # the zones it prepared itself are released again; one prepared by the caller stays prepared
    assert list(shapely.is_prepared(zones.geometry.values)) == [True, False, False, False]


# -- the area of interest, kept as its parts (never unioned) ------------------------------
def _area_parts(seed: int) -> np.ndarray:
    """Zones as a reserve has them: squares sharing edges (core / buffer), a ring, and blobs."""
    from shapely.geometry import box

    rng = np.random.default_rng(seed)
    x0, y0 = rng.integers(0, 40, 2) * 10.0
    parts = [box(x0, y0, x0 + 200, y0 + 200), box(x0 + 200, y0, x0 + 350, y0 + 200),  # share an edge
             box(x0, y0 + 200, x0 + 350, y0 + 260)]
    ring = shapely.Point(rng.uniform(300, 700, 2)).buffer(rng.uniform(60, 150))
    parts.append(ring.difference(shapely.Point(ring.centroid).buffer(30)))
    for _ in range(int(rng.integers(0, 4))):
        blob = shapely.Point(rng.uniform(0, 1000, 2))
        parts.append(blob.buffer(rng.uniform(5, 120), quad_segs=int(rng.integers(2, 9))))
    return np.asarray(parts, dtype=object)


@pytest.mark.parametrize("seed", range(12))
def test_area_parts_clip_patches_as_their_union_would(seed):
    from shapely.geometry import box

    parts = _area_parts(seed)
    x0, y0 = shapely.bounds(parts[0])[:2]  # the last patch lies across the edge parts 0 and 1 share
    rng = np.random.default_rng(1000 + seed)
    x, y = rng.uniform(-50, 1000, (2, 60))
    patches = np.asarray([box(a, b, a + w, b + h) for a, b, w, h in zip(x, y, *rng.uniform(3, 90, (2, 60)))]
                         + [box(x0 + 150, y0 + 50, x0 + 260, y0 + 120)], dtype=object)
    union = shapely.union_all(parts)
    got = ecopatch.analyses.encroachment._clip_to_area(patches, parts)
    want = shapely.intersection(patches, union)
    assert (shapely.equals(got, want) | (shapely.is_empty(got) & shapely.is_empty(want))).all()
    inside = shapely.contains_properly(union, patches)
    assert inside[-1]
    # a patch inside the area keeps its own outline, vertex for vertex
    assert shapely.equals_exact(got[inside], patches[inside], 0).all()


@pytest.mark.parametrize("seed", range(6))
def test_area_parts_give_the_union_s_pixels_and_sample_windows(seed):
    from affine import Affine

    from ecopatch.geo.grid import Grid, Window

    parts = _area_parts(seed)
    g = Grid((110, 120), Affine(10.0, 0, -50.0, 0, -10.0, 1050.0), "EPSG:32650")
    union = shapely.union_all(parts)
    for win in (Window(row_off=0, col_off=0,
                       height=64, width=64),
                Window(row_off=30, col_off=50, height=66, width=66),
                Window(row_off=60, col_off=60, height=50, width=60)):
        sub = g.subgrid(win)
        near = tuple(p for p in parts if shapely.intersects(p, sub.footprint()))
        got = ecopatch.analyses.encroachment._aoi_mask(near, g, win)
        want = ecopatch.analyses.encroachment._aoi_mask((union,), g, win)
        assert got.shape == win.shape and (got == want).all()
    # the sample windows: the chunks (cut to the area's bounding window) that meet the union
    region = shapely.intersection(parts, g.footprint())
    whole = shapely.union_all(region)
    win = g.window_from_bounds(whole.bounds, clip=True)
    want = [w for w in g.chunks(16, win) if shapely.intersects(whole, g.subgrid(w).footprint())]
    cand = ecopatch.analyses.pairing._sample_windows(g, region, size=16, n=10_000)
    assert cand == want
    picked = ecopatch.analyses.pairing._sample_windows(g, region, size=16, n=5)
    assert len(picked) == 5 and set(picked) <= set(want) and picked[0] == want[0] and picked[-1] == want[-1]


@pytest.mark.parametrize("seed", range(6))
def test_area_parts_are_cut_to_the_footprint_and_the_whole_ones_not_copied(seed):
    from shapely.geometry import box

    parts = _area_parts(seed)
    x0 = shapely.bounds(parts[0])[0]
    footprint = box(x0 + 100.0, -100.0, 2000.0, 2000.0)  # cuts part 0, holds part 1 whole
    got = ecopatch.analyses.encroachment._within_footprint(parts, footprint)
    want = shapely.intersection(parts, footprint)
    assert (shapely.equals(got, want) | (shapely.is_empty(got) & shapely.is_empty(want))).all()
    whole = shapely.contains_properly(footprint, parts)
    assert whole.any() and not whole.all()
    assert all(g is p for g, p, w in zip(got, parts, whole) if w)
    assert not any(g is p for g, p, w in zip(got, parts, whole) if not w)


def test_outlines_are_packed_exactly():
    from shapely.geometry import MultiPolygon, box

    from ecopatch.compute.components import PackedOutlines, pack_outlines, unpack_outlines

    holed = box(0, 0, 5, 5).difference(box(1, 1, 3, 2))
    multi = MultiPolygon([box(10, 10, 11, 12), box(13, 10, 14, 11)])
    big = box(21_000, 43_000, 21_960, 43_921)
    for geoms in ([holed, box(2, 7, 4, 9), big], [box(3, 3, 4, 4), multi, holed], [multi]):
        geoms = np.asarray(geoms, dtype=object)
        packed = pack_outlines(geoms)
        assert isinstance(packed, PackedOutlines) and packed.coords.dtype == np.int32
        back = unpack_outlines(packed)
        assert list(shapely.get_type_id(back)) == list(shapely.get_type_id(geoms))
        assert shapely.equals_exact(back, geoms, 0).all()  # same vertices in the same order
        assert (shapely.get_num_interior_rings(back) == shapely.get_num_interior_rings(geoms)).all()
    # anything that would not come back exactly stays as it is
    for geoms in ([box(0, 0, 1.5, 1)], [box(0, 0, 1, 1), shapely.Polygon()], [shapely.Point(1, 1)], []):
        geoms = np.asarray(geoms, dtype=object)
        assert pack_outlines(geoms) is not None and not isinstance(pack_outlines(geoms), PackedOutlines)
        assert unpack_outlines(pack_outlines(geoms)) is not None


def test_block_edges_are_kept_compact_and_read_only():
    from ecopatch.compute.change import PixelChange
    from ecopatch.compute.components import block_components, merge_components
    from ecopatch.geo.grid import Window

    code = np.zeros((10, 10), dtype=np.uint8)
    code[0:3, 2:5] = 1  # on the top edge (halo row 0 is outside the block)
    code[4:6, 4:6] = 1  # inside: on no edge
    ones = np.ones(code.shape)
    change = PixelChange(code=code, prob=ones, share=ones, observed=np.ones(code.shape, dtype=bool))
    comps = block_components(change, Window(row_off=512, col_off=512, height=8, width=8), ones * 100.0, halo=1)
    top = comps.borders[("disturbance", "top")]
    assert top.dtype == np.uint8 and list(top) == [0, 1, 1, 1, 0, 0, 0, 0]
    zero = comps.borders[("disturbance", "bottom")]
    assert not zero.any() and zero.strides == (0,) and zero.base.nbytes == 1  # zeros held in one byte
    assert not any(v.flags.writeable for v in comps.borders.values())
    # many labels on an edge: a wider type, the same values
    wide = np.zeros((3, 602), dtype=np.uint8)
    wide[1, 1:-1:2] = 1  # 300 one-pixel patches along the edge
    change = PixelChange(code=wide, prob=np.ones(wide.shape), share=np.ones(wide.shape),
                         observed=np.ones(wide.shape, dtype=bool))
    comps = block_components(change, Window(row_off=0, col_off=0, height=1, width=600), np.ones(wide.shape), halo=1)
    top = comps.borders[("disturbance", "top")]
    assert top.dtype == np.uint16 and top.max() == 300 and np.count_nonzero(top) == 300
    assert len(merge_components([comps]).outline) == 300


def test_zones_in_the_grid_crs_written_differently_label_the_patches_with_it(inputs):
    from pyproj import CRS

    grid_crs = inputs.after.grid.crs
    # the grid's CRS as another program might write it: equivalent, not identical
    written = CRS.from_wkt(CRS(grid_crs).to_wkt(version="WKT1_ESRI"))
    zones = inputs.reserves.to_crs(grid_crs).set_crs(written, allow_override=True)
    assert zones.crs == CRS(grid_crs) and not zones.crs.is_exact_same(CRS(grid_crs))
    p = ecopatch.detect_changes(inputs.before, inputs.after, zones, progress=False)
    assert p.crs.is_exact_same(written)  # the zones' CRS, as given
    # the same outlines as with the zones in the grid's own CRS, where nothing is relabelled
    ref = ecopatch.detect_changes(inputs.before, inputs.after, zones.set_crs(grid_crs, allow_override=True),
                                  progress=False)
    assert len(p) == len(ref) > 0
    assert shapely.equals_exact(p.geometry.to_numpy(), ref.geometry.to_numpy(), tolerance=0).all()


def test_the_observation_table_survives_what_drops_attrs(inputs):
    """pandas drops ``attrs`` in concat; ``observations=`` keeps the table in a list the caller holds."""
    import warnings

    import pandas as pd

    import ecopatch
    from ecopatch.analyses.encroachment import observation_table

    got: list[pd.DataFrame] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        patches = ecopatch.detect_changes(inputs.before, inputs.after, reserves=inputs.reserves, observations=got,
                                          progress=False)
    assert len(got) == 1
    pd.testing.assert_frame_equal(got[0], observation_table(patches))
    assert len(got[0]) and (got[0]["observed_m2"] > 0).any()
    other = patches.iloc[:0].copy()
    other.attrs = {}  # another run's patches, say, read back from a file
    both = pd.concat([patches, other])
    assert observation_table(both).empty  # attrs gone: what the list is for


def test_the_set_up_reads_hold_gdal_s_cache_at_the_pass_size(inputs, monkeypatch):
    # the sample's scattered reads must not fill GDAL's default cache (5 % of the RAM) with decoded
    # blocks: a full-tile JPEG 2000 detection peaked at 1.2 GiB in its set-up for that
    from rasterio.env import get_gdal_config

    from ecopatch.raster.source import plan_pass_reads

    pairing = ecopatch.analyses.pairing
    seen = []
    real = pairing.read_on_grid

    def spy(*args, **kwargs):
        seen.append(get_gdal_config("GDAL_CACHEMAX"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pairing, "read_on_grid", spy)
    outside = get_gdal_config("GDAL_CACHEMAX")
    plan = plan_pass_reads((inputs.before, inputs.after))
    ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, progress=False)
    # the pass's size, or what the background's decimated reads (in threads meanwhile) raised it to
    assert seen and max(seen) <= 64 * 2**20 < outside
    assert get_gdal_config("GDAL_CACHEMAX") == outside
    # without those threads (whose timing decides which of the two sizes a read sees), the pass's size
    seen.clear()
    monkeypatch.setattr(pairing._BackgroundReads, "start", classmethod(lambda cls, *a, **k: None))
    ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, progress=False)
    assert seen and set(seen) == {plan.gdal_cache_bytes}
    assert get_gdal_config("GDAL_CACHEMAX") == outside


def test_default_unit_drops_small_patches_outside_core_zones_only(inputs, truth):
    # the golden patches are made at 400 m² everywhere (tests/mapdata.py); at the defaults, 1000 m²
    # outside core zones and 400 m² in them, the same patches less the small ones outside core zones
    d = ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, progress=False)
    assert (d.attrs["detection"]["min_area_m2"], d.attrs["detection"]["core_min_area_m2"]) == (1000.0, 400.0)
    assert inputs.patches.attrs["detection"]["min_area_m2"] == 400.0
    golden = inputs.patches.set_index("patch_id")
    assert set(d["patch_id"]) <= set(golden.index)
    dropped = golden.drop(index=list(d["patch_id"]))
    assert len(dropped) >= 1
    assert ((dropped["area_m2"] < 1000) | (dropped["change_m2"] < 500)).all()
    assert (dropped["zone"] != "core").all()
    kept = golden.loc[list(d["patch_id"])]
    pd_cols = ["change_type", "area_m2", "change_m2", "zone"]
    assert kept[pd_cols].reset_index(drop=True).equals(d[pd_cols].reset_index(drop=True))
    # the two small true encroachments of the wetland park's 一般控制区 (466 and 503 m²) are among them
    small = truth[truth["eligible"] & (truth["area_m2"] < 1000)]
    assert set(small["enc_id"]) == {"ENC-004", "ENC-007"}
    assert not shapely.intersects(small.to_crs(d.crs).geometry.to_numpy()[:, None],
                                  d.geometry.to_numpy()[None, :]).any()
    # the same ground called core zone (核心保护区): reported at the defaults
    core = inputs.reserves.copy()
    core["功能分区"] = core["功能分区"].replace({"一般控制区": "核心保护区"})
    c = ecopatch.detect_changes(inputs.before, inputs.after, core, progress=False)
    hit = shapely.intersects(small.to_crs(c.crs).geometry.to_numpy()[:, None], c.geometry.to_numpy()[None, :])
    assert hit.any(axis=1).all()
    assert (c.loc[hit.any(axis=0), "zone"] == "core").all()
    # no unit of its own for core zones: 1000 m² there too
    one = ecopatch.detect_changes(inputs.before, inputs.after, core, core_min_area_m2=None, progress=False)
    assert set(one["patch_id"]) < set(c["patch_id"])
    gone = c[~c["patch_id"].isin(one["patch_id"])]
    assert ((gone["area_m2"] < 1000) | (gone["change_m2"] < 500)).all()
    assert not (one["area_m2"] < 1000).any()


def test_cli_units_of_both_mapping_units(inputs, sample, tmp_path):
    from click.testing import CliRunner

    from ecopatch.cli.main import cli

    out = tmp_path / "p.gpkg"
    args = ["detect", "--before", str(sample.products["before"]), "--after", str(sample.products["after"]),
            "--reserves", str(sample.reserves), "--out", str(out), "--no-progress"]
    res = CliRunner().invoke(cli, [*args, "--min-area", "1.5", "--core-min-area", "0.6", "--unit", "mu"])
    assert res.exit_code == 0, res.output
    d = ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, progress=False)
    assert sorted(gpd.read_file(out)["patch_id"]) == sorted(d["patch_id"])  # 1000 m² and 400 m²
    res = CliRunner().invoke(cli, [*args, "--min-area", "auto", "--overwrite"])  # the defaults, said
    assert res.exit_code == 0, res.output
    assert sorted(gpd.read_file(out)["patch_id"]) == sorted(d["patch_id"])
    res = CliRunner().invoke(cli, [*args, "--min-area", "0.6", "--unit", "mu", "--overwrite"])  # core: 400 m² still
    assert res.exit_code == 0, res.output
    assert sorted(gpd.read_file(out)["patch_id"]) == sorted(inputs.patches["patch_id"])
    res = CliRunner().invoke(cli, [*args, "--core-min-area", "-1", "--overwrite"])
    assert res.exit_code != 0 and "--core-min-area" in res.output
    res = CliRunner().invoke(cli, [*args, "--min-area", "big", "--overwrite"])
    assert res.exit_code != 0 and "give a number >= 0 or 'auto'" in res.output


def test_detection_takes_its_unit_from_the_analysis_grid(inputs, monkeypatch):
    # units_m2 gets the true ground area of a cell of the analysis grid (a geographic grid too)
    from affine import Affine

    from ecopatch.geo.grid import Grid
    from ecopatch.options import DetectOptions

    class Seen(Exception):
        pass

    def spy(self, cell_m2):
        raise Seen(cell_m2)

    monkeypatch.setattr(DetectOptions, "units_m2", spy)
    with pytest.raises(Seen) as got:
        ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, progress=False)
    assert got.value.args[0] == pytest.approx(99.88, rel=1e-3)  # the sample's 10 m UTM grid (scale factor)
    left, bottom, right, top = inputs.after.grid.footprint_in("EPSG:4326").bounds
    g = Grid((int((top - bottom) / 1e-4), int((right - left) / 1e-4)), Affine(1e-4, 0, left, 0, -1e-4, top),
             "EPSG:4326")
    with pytest.raises(Seen) as got:
        ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, grid=g, progress=False)
    lat = (top + bottom) / 2  # 1e-4 degrees: 11.1 m north-south, 11.1 m x cos(latitude) east-west
    assert got.value.args[0] == pytest.approx(11.09 * 11.13 * np.cos(np.radians(lat)), rel=0.01)


@pytest.mark.parametrize("seed", range(4))
def test_the_background_of_a_cell_depends_only_on_the_differences_near_it(seed):
    """The gap fill and the median reach ``size // 2 + _fill_reach(size)`` cells: beyond, nothing counts.

    What :func:`_background_within` relies on to read the coarse differences near the reserves only.
    """
    from scipy.ndimage import binary_erosion, median_filter

    pairing = ecopatch.analyses.pairing
    rng = np.random.default_rng(seed)
    size = (3, 5, 13)[seed % 3]
    diff = rng.normal(0, 0.02, (90, 110)).astype(np.float32)
    # clouds: blobs of missing cells, some larger than the median window
    for _ in range(6):
        r, c, h = rng.integers(0, 90), rng.integers(0, 110), rng.integers(2, 30)
        diff[r:r + h, c:c + h] = np.nan
    reach = pairing._fill_reach(size)

    def background(d):
        return median_filter(pairing._fill_nan_nearest(d, reach), size=size, mode="nearest")

    full = background(diff)
    known = np.zeros(diff.shape, dtype=bool)
    known[20:75, 15:95] = True  # the cells read
    part = background(np.where(known, diff, np.nan))
    core = binary_erosion(known, structure=np.ones((3, 3), dtype=bool), iterations=size // 2 + reach)
    assert core.any()
    np.testing.assert_array_equal(part[core], full[core])
    # near observed cells the bounded fill is the unbounded one
    from scipy.ndimage import distance_transform_edt

    near = distance_transform_edt(~np.isfinite(diff)) <= 2
    unbounded = median_filter(pairing._fill_nan_nearest(diff), size=size, mode="nearest")
    np.testing.assert_array_equal(full[near], unbounded[near])


def test_fill_nan_nearest_stops_at_its_reach():
    pairing = ecopatch.analyses.pairing
    a = np.full((1, 9), np.nan, dtype=np.float32)
    a[0, 0] = 5.0
    np.testing.assert_array_equal(pairing._fill_nan_nearest(a, 3), [[5, 5, 5, 5, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(pairing._fill_nan_nearest(a), np.full((1, 9), 5.0))
    # the bands of one background share their distance transform when they miss the same cells
    memo = {}
    np.testing.assert_array_equal(pairing._fill_nan_nearest(a, 3, memo), [[5, 5, 5, 5, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(pairing._fill_nan_nearest(a * 2, 3, memo), [[10, 10, 10, 10, 0, 0, 0, 0, 0]])
    b = a.copy()
    b[0, 8] = 1.0  # other cells missing: computed again
    np.testing.assert_array_equal(pairing._fill_nan_nearest(b, 3, memo), [[5, 5, 5, 5, 0, 1, 1, 1, 1]])
    np.testing.assert_array_equal(pairing._fill_nan_nearest(b, 3, memo), pairing._fill_nan_nearest(b, 3))
    np.testing.assert_array_equal(pairing._fill_nan_nearest(a, None, memo), np.full((1, 9), 5.0))


def test_the_background_is_read_near_the_reserves_only_and_nothing_moves(inputs, monkeypatch):
    """One reserve of the sample: the coarse reads skip the ground far from it; the patches are the same."""
    import pandas as pd

    from ecopatch.raster import quicklook

    pairing = ecopatch.analyses.pairing
    one = inputs.reserves.iloc[[0]]
    shares = []
    real = quicklook.wanted_pixels

    def spy(dgrid, within, crs=None):
        w = real(dgrid, within, crs)
        shares.append(1.0 if w is None else float(w.mean()))
        return w

    monkeypatch.setattr(quicklook, "wanted_pixels", spy)
    near = ecopatch.detect_changes(inputs.before, inputs.after, one, progress=False)
    small = ecopatch.detect_changes(inputs.before, inputs.after, one, block=64, progress=False)
    assert shares and max(shares) < 0.9
    monkeypatch.setattr(pairing, "_background_within", lambda *a, **kw: None)
    whole = ecopatch.detect_changes(inputs.before, inputs.after, one, progress=False)
    assert len(whole) > 0
    for got in (near, small):
        pd.testing.assert_frame_equal(got.drop(columns="geometry"), whole.drop(columns="geometry"))
        assert got.geometry.geom_equals_exact(whole.geometry, 0).all()


def test_the_background_s_medians_in_two_threads_are_the_sequential_ones(inputs, monkeypatch):
    """The per-band median filters run in two threads where a wide median is taken: same background to the bit."""
    import threading

    import scipy.ndimage

    pairing = ecopatch.analyses.pairing
    seen, where = [], []
    real = pairing._background
    monkeypatch.setattr(pairing, "_background", lambda *a, **kw: seen.append(real(*a, **kw)) or seen[-1])
    real_median = scipy.ndimage.median_filter
    monkeypatch.setattr(scipy.ndimage, "median_filter",
                        lambda *a, **kw: where.append(threading.current_thread().name) or real_median(*a, **kw))
    ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, progress=False)
    assert where and all(n.startswith("ecopatch-median") for n in where)  # the sample's median is 13 cells wide
    where.clear()
    monkeypatch.setattr(pairing.os, "cpu_count", lambda: 1)
    ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, progress=False)
    assert where and not [n for n in where if n.startswith("ecopatch-median")]
    threaded, sequential = seen
    assert threaded is not None and threaded.values.shape[0] > 1
    np.testing.assert_array_equal(threaded.values, sequential.values)


def test_the_set_up_lets_go_of_each_dates_large_blocks_once_its_sample_is_read(inputs, monkeypatch):
    """A handle keeps its last decoded block (90 MiB in a stack tiled 2048): let go of before the next date is read."""
    pairing = ecopatch.analyses.pairing
    seen = []
    real = pairing.read_on_grid

    def read(scene, *a, **kw):
        seen.append("before" if scene is before else "after" if scene is after else "other")
        return real(scene, *a, **kw)

    real_prepare = pairing._prepare

    def prepare(b, a, *args, **kw):
        nonlocal before, after
        before, after = b, a
        return real_prepare(b, a, *args, **kw)

    before = after = None
    monkeypatch.setattr(pairing, "read_on_grid", read)
    monkeypatch.setattr(pairing, "_prepare", prepare)
    monkeypatch.setattr(pairing, "release_large_blocks", lambda: seen.append("release"))
    ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, progress=False)
    n = seen.index("release")
    assert n > 0 and seen[:n] == ["before"] * n
    assert seen[n + 1:2 * n + 2] == ["after"] * n + ["release"]


def test_files_of_large_blocks_have_their_backgrounds_read_by_one_thread(inputs, monkeypatch):
    """Both dates' decimated reads in one worker where blocks are very large; the same patches."""
    import threading

    pairing = ecopatch.analyses.pairing
    monkeypatch.setattr(pairing.os, "cpu_count", lambda: 2)  # the reads run in workers where two cores share them
    threads = []
    real = pairing._coarse_fetch
    monkeypatch.setattr(pairing, "_coarse_fetch",
                        lambda *a, **kw: threads.append(threading.current_thread().name) or real(*a, **kw))
    two = ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, progress=False)
    assert len(threads) == 2 and all(t.startswith("ecopatch-background") for t in threads)
    threads.clear()
    monkeypatch.setattr(pairing, "large_block_bytes", lambda scenes: pairing.ONE_BACKGROUND_READER_BYTES - 1)
    ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, progress=False)
    assert len(threads) == 2 and len(set(threads)) == 2  # blocks under the bound: a thread per date still
    threads.clear()
    monkeypatch.setattr(pairing, "large_block_bytes", lambda scenes: pairing.ONE_BACKGROUND_READER_BYTES)
    one = ecopatch.detect_changes(inputs.before, inputs.after, inputs.reserves, progress=False)
    assert len(threads) == 2 and len(set(threads)) == 1 and threads[0].startswith("ecopatch-background")
    assert len(one) == len(two) > 0
    assert one.geometry.geom_equals_exact(two.geometry, 0).all()
