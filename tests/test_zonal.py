"""Tests for ecopatch.compute.zonal: exact pixel coverage fractions and per-patch sums."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.affinity import affine_transform
from shapely.geometry import LineString, MultiPolygon, Polygon, box

from ecopatch.compute.zonal import (
    DEFAULT_MAX_CELLS,
    FRAC_EPS,
    Coverage,
    coverage_fraction,
    coverage_table,
    coverage_windows,
    zonal_sums,
)
from ecopatch.errors import (
    ConfigError,
    CRSMismatchError,
    GeometryError,
    GeometryRepairedWarning,
    InputDataError,
)
from ecopatch.geo.geodesy import geodesic_area_m2
from ecopatch.geo.grid import Grid, Window
from ecopatch.geo.units import MU_M2

# -- named inputs (UTM 50N metres, on the 10 m grid UTM_GRID) --------------------

X0, Y0 = 500_000.0, 3_300_400.0  # top-left corner of UTM_GRID
UTM_GRID = Grid((40, 40), Affine(10, 0, X0, 0, -10, Y0), "EPSG:32650")

#: 100 m × 100 m = 1 ha = 15 mu, on pixel edges: rows 0-9, cols 0-9.
square_1ha = box(X0, Y0 - 100, X0 + 100, Y0)
#: 1 ha patch with a 20 m × 20 m hole (rows 4-5, cols 4-5).
patch_with_hole = Polygon(
    [(X0, Y0), (X0 + 100, Y0), (X0 + 100, Y0 - 100), (X0, Y0 - 100)],
    [[(X0 + 40, Y0 - 40), (X0 + 60, Y0 - 40), (X0 + 60, Y0 - 60), (X0 + 40, Y0 - 60)]],
)
#: Two parts that share pixel (row 20, col 20) without touching.
multipart_patch = MultiPolygon(
    [box(X0 + 201, Y0 - 209, X0 + 204, Y0 - 201), box(X0 + 206, Y0 - 209, X0 + 209, Y0 - 201)]
)
#: Self-intersecting ring (figure of eight).
bowtie_invalid = Polygon([(X0, Y0), (X0 + 100, Y0 - 100), (X0 + 100, Y0), (X0, Y0 - 100)])

# -- grids in the CRSs that break things -----------------------------------------

CRS_GRIDS = {
    # UTM 50N, 10 m.
    "EPSG:32650": Affine(10, 0, 500_000, 0, -10, 3_300_400),
    # CGCS2000 3-degree Gauss-Krüger, CM 120° E: northing-first in its definition,
    # geometries still x = easting.
    "EPSG:4549": Affine(10, 0, 480_000, 0, -10, 3_350_000),
    # CGCS2000 geographic, latitude-first in its definition; 1e-4° (~10 m) pixels.
    "EPSG:4490": Affine(1e-4, 0, 120.0, 0, -1e-4, 30.004),
}
CRSS = list(CRS_GRIDS)


def make_grid(crs: str, shape: tuple[int, int] = (40, 40)) -> Grid:
    return Grid(shape, CRS_GRIDS[crs], crs)


def px(grid: Grid, geom):
    """A geometry given in pixel space (x = col, y = row) mapped to the grid's CRS."""
    t = grid.transform
    return affine_transform(geom, [t.a, t.b, t.d, t.e, t.c, t.f])


def dense(table: Coverage, i: int, grid: Grid) -> np.ndarray:
    out = np.zeros(grid.shape)
    sel = table.index == i
    out[table.row[sel], table.col[sel]] = table.frac[sel]
    return out


def reference(geom, grid: Grid, win: Window) -> np.ndarray:
    """shapely.intersection(box(cell), geom).area / cell area, for every cell of win."""
    t = grid.transform
    rows, cols = np.mgrid[win.row_off : win.row_end, win.col_off : win.col_end]
    xa, xb = t.c + t.a * cols, t.c + t.a * (cols + 1)
    ya, yb = t.f + t.e * rows, t.f + t.e * (rows + 1)
    cells = shapely.box(
        np.minimum(xa, xb), np.minimum(ya, yb), np.maximum(xa, xb), np.maximum(ya, yb)
    )
    return shapely.area(shapely.intersection(cells, geom)) / shapely.area(cells)


def keys(table: Coverage) -> list[tuple[int, int, int]]:
    return list(zip(table.index.tolist(), table.row.tolist(), table.col.tolist()))


# -- hand-checkable truth ----------------------------------------------------------


def test_square_1ha_on_pixel_edges():
    win, frac = coverage_fraction(square_1ha, UTM_GRID)
    assert win == Window(row_off=0, col_off=0, height=10, width=10)
    assert frac.dtype == np.float64
    np.testing.assert_array_equal(frac, np.ones((10, 10)))
    area_m2 = frac.sum() * 100.0
    assert area_m2 == 10_000.0
    assert area_m2 / MU_M2 == pytest.approx(15.0)


def test_square_shifted_half_pixel():
    win, frac = coverage_fraction(shapely.affinity.translate(square_1ha, 5, -5), UTM_GRID)
    assert win == Window(row_off=0, col_off=0, height=11, width=11)
    expected = np.ones((11, 11))
    expected[[0, -1], :] = 0.5
    expected[:, [0, -1]] = 0.5
    expected[[0, 0, -1, -1], [0, -1, 0, -1]] = 0.25
    np.testing.assert_array_equal(frac, expected)
    assert frac.sum() == 100.0


def test_patch_with_hole():
    win, frac = coverage_fraction(patch_with_hole, UTM_GRID)
    expected = np.ones((10, 10))
    expected[4:6, 4:6] = 0.0
    np.testing.assert_array_equal(frac, expected)
    # The hole half a pixel off the edges: 3 × 3 cells, the middle one fully inside it.
    hole = box(X0 + 45, Y0 - 65, X0 + 65, Y0 - 45)
    win, frac = coverage_fraction(square_1ha.difference(hole), UTM_GRID)
    np.testing.assert_allclose(
        frac[4:7, 4:7], [[0.75, 0.5, 0.75], [0.5, 0.0, 0.5], [0.75, 0.5, 0.75]], atol=1e-12
    )
    assert frac.sum() == pytest.approx(96.0, abs=1e-12)


def test_multipart_patch_parts_share_a_cell():
    win, frac = coverage_fraction(multipart_patch, UTM_GRID)
    assert win == Window(row_off=20, col_off=20, height=1, width=1)
    assert frac[0, 0] == pytest.approx(0.24 + 0.24, abs=1e-12)


@pytest.mark.parametrize("crs", CRSS)
def test_triangle(crs):
    grid = make_grid(crs)
    _, frac = coverage_fraction(px(grid, Polygon([(0, 0), (4, 0), (0, 4)])), grid)
    r, c = np.mgrid[0:4, 0:4]
    expected = np.where(r + c <= 2, 1.0, np.where(r + c == 3, 0.5, 0.0))
    np.testing.assert_allclose(frac, expected, atol=1e-9)


@pytest.mark.parametrize("crs", CRSS)
def test_diamond_with_vertices_on_pixel_corners(crs):
    grid = make_grid(crs)
    win, frac = coverage_fraction(px(grid, Polygon([(12, 10), (14, 12), (12, 14), (10, 12)])), grid)
    assert win == Window(row_off=10, col_off=10, height=4, width=4)
    expected = np.array([[0, 0.5, 0.5, 0], [0.5, 1, 1, 0.5], [0.5, 1, 1, 0.5], [0, 0.5, 0.5, 0]])
    np.testing.assert_allclose(frac, expected, atol=1e-9)


def test_polygon_smaller_than_one_pixel():
    tiny = box(X0 + 52, Y0 - 57, X0 + 54, Y0 - 54)  # 2 m × 3 m inside row 5, col 5
    win, frac = coverage_fraction(tiny, UTM_GRID)
    assert win == Window(row_off=5, col_off=5, height=1, width=1)
    assert frac[0, 0] == pytest.approx(0.06, abs=1e-12)
    # 2 m × 2 m centred on a pixel corner: four cells of 1 %.
    corner = box(X0 + 99, Y0 - 101, X0 + 101, Y0 - 99)
    win, frac = coverage_fraction(corner, UTM_GRID)
    assert win == Window(row_off=9, col_off=9, height=2, width=2)
    np.testing.assert_allclose(frac, np.full((2, 2), 0.01), atol=1e-12)


@pytest.mark.parametrize("geom", [None, Polygon()], ids=["None", "empty"])
def test_missing_geometry_gives_0x0(geom):
    win, frac = coverage_fraction(geom, UTM_GRID)
    assert (win.height, win.width) == (0, 0)
    assert frac.shape == (0, 0)
    cov = coverage_table([square_1ha, geom, square_1ha], UTM_GRID)
    assert cov.n_geometries == 3
    assert set(cov.index.tolist()) == {0, 2}


def test_polygon_outside_grid_gives_0x0():
    win, frac = coverage_fraction(box(X0 - 500, Y0, X0 - 100, Y0 + 300), UTM_GRID)
    assert frac.shape == (0, 0) and win.height == win.width == 0


def test_polygon_partly_outside_grid_is_clipped():
    hanging = shapely.affinity.translate(square_1ha, -55, 25)  # 45 m × 75 m inside
    win, frac = coverage_fraction(hanging, UTM_GRID)
    assert win == Window(row_off=0, col_off=0, height=8, width=5)
    assert frac.sum() * 100 == pytest.approx(45 * 75, rel=1e-12)
    assert frac[:, 4].tolist() == [0.5] * 7 + [0.25]


def test_window_restricts_result():
    win, frac = coverage_fraction(square_1ha, UTM_GRID, window=Window(row_off=5, col_off=8, height=20, width=20))
    assert win == Window(row_off=5, col_off=8, height=5, width=2)
    np.testing.assert_array_equal(frac, np.ones((5, 2)))


@pytest.mark.parametrize("exterior_cw", [False, True])
@pytest.mark.parametrize("interior_cw", [False, True])
def test_ring_orientation_does_not_matter(exterior_cw, interior_cw):
    shell = np.array([(0, 0), (7.3, 0.2), (6.1, 5.9), (0.4, 6.6)])
    hole = np.array([(2.2, 2.1), (4.5, 2.6), (3.1, 4.4)])
    shell = shell[::-1] if exterior_cw else shell
    hole = hole[::-1] if interior_cw else hole
    poly = px(UTM_GRID, Polygon(shell, [hole]))
    _, frac = coverage_fraction(poly, UTM_GRID)
    _, ref = coverage_fraction(shapely.orient_polygons(poly), UTM_GRID)
    np.testing.assert_allclose(frac, ref, atol=1e-12)
    assert frac.sum() * 100 == pytest.approx(poly.area, rel=1e-12)


@pytest.mark.parametrize(
    "transform",
    [
        Affine(10, 0, X0, 0, 10, Y0 - 400),  # south-up (positive e): rows flipped
        Affine(-10, 0, X0 + 400, 0, -10, Y0),  # columns run west: columns flipped
    ],
    ids=["positive-e", "negative-a"],
)
def test_flipped_grids(transform):
    grid = Grid((40, 40), transform, "EPSG:32650")
    poly = Polygon([(X0 + 13, Y0 - 17), (X0 + 96, Y0 - 41), (X0 + 55, Y0 - 123)])
    base = dense(coverage_table([poly], UTM_GRID), 0, UTM_GRID)
    flipped = base[::-1] if transform.e > 0 else base[:, ::-1]
    np.testing.assert_allclose(dense(coverage_table([poly], grid), 0, grid), flipped, atol=1e-12)


def test_table_is_sorted_readonly_and_typed():
    geoms = [shapely.affinity.translate(square_1ha, 5, -5), None, patch_with_hole, multipart_patch]
    cov = coverage_table(geoms, UTM_GRID)
    assert cov.window == UTM_GRID.window and cov.n_geometries == 4 and len(cov) == 121 + 96 + 1
    for name in ("index", "row", "col"):
        assert getattr(cov, name).dtype == np.int64
    assert cov.frac.dtype == np.float64
    order = np.lexsort((cov.col, cov.row, cov.index))
    np.testing.assert_array_equal(order, np.arange(len(cov)))
    with pytest.raises(ValueError):
        cov.frac[0] = 0.5
    assert "218 entries" in repr(cov)


def test_geodataframe_input_and_crs_check():
    gpd = pytest.importorskip("geopandas")
    gdf = gpd.GeoDataFrame({"id": [1, 2]}, geometry=[square_1ha, patch_with_hole], crs="EPSG:32650")
    cov = coverage_table(gdf, UTM_GRID)
    assert np.bincount(cov.index, cov.frac).tolist() == [100.0, 96.0]
    assert len(coverage_table(gdf.geometry, UTM_GRID)) == len(cov)
    with pytest.raises(CRSMismatchError, match="EPSG:4490.*EPSG:32650"):
        coverage_table(gdf.set_crs("EPSG:4490", allow_override=True), UTM_GRID)


@pytest.mark.parametrize("crs", CRSS)
def test_weighted_area_matches_geodesic_area(crs):
    grid = make_grid(crs, (60, 60))
    poly = px(grid, Polygon([(3.3, 2.2), (51.7, 9.1), (44.2, 55.5), (8.8, 40.4)]))
    cov = coverage_table([poly], grid)
    sums = zonal_sums(
        cov, {"one": np.ones(grid.shape)}, window=grid.window, weights=grid.cell_area_m2()
    )
    assert sums["w_one"][0] == pytest.approx(geodesic_area_m2(poly, crs), rel=1e-3)
    assert sums["sum_one"][0] == sums["w_one"][0]


# -- zonal sums ---------------------------------------------------------------------


def test_zonal_sums_by_hand():
    cov = coverage_table([square_1ha, shapely.affinity.translate(square_1ha, 5, -5)], UTM_GRID)
    veg = np.zeros(UTM_GRID.shape, dtype=np.float32)
    veg[:, :3] = 1.0  # three columns of vegetation
    veg[9, :] = np.nan  # one row under cloud
    area_m2 = np.full(UTM_GRID.shape, 100.0)
    s = zonal_sums(cov, {"veg": veg}, window=UTM_GRID.window, weights=area_m2)
    assert set(s) == {"sum_veg", "w_veg"}
    # Shifted square, columns 0-2 without row 9: (0.25 + 8 × 0.5 + 0.25) + 2 × (0.5 + 8 + 0.5).
    np.testing.assert_allclose(s["sum_veg"], [2700.0, 2250.0])
    # Row 9 under cloud is 10 pixels of either square.
    np.testing.assert_allclose(s["w_veg"], [9000.0, 9000.0])
    px_sums = zonal_sums(cov, {"veg": veg}, window=UTM_GRID.window)
    np.testing.assert_allclose(px_sums["w_veg"], s["w_veg"] / 100.0)


def test_zonal_sums_geometry_without_cells_gets_zero():
    cov = coverage_table([None, square_1ha], UTM_GRID)
    s = zonal_sums(cov, {"a": np.full(UTM_GRID.shape, np.nan)}, window=UTM_GRID.window)
    assert s["sum_a"].tolist() == [0.0, 0.0] and s["w_a"].tolist() == [0.0, 0.0]


def test_chunks_add_up_for_patch_spanning_four_chunks():
    grid = UTM_GRID
    # Centred on the corner of four 16 × 16 chunks (row 16, col 16).
    poly = Polygon(
        [(X0 + 97, Y0 - 101), (X0 + 233, Y0 - 131), (X0 + 201, Y0 - 262), (X0 + 121, Y0 - 229)]
    )
    geoms = [poly, multipart_patch, square_1ha]
    rng = np.random.default_rng(7)
    values = {"ndvi": rng.random(grid.shape), "bare": rng.random(grid.shape).astype(np.float32)}
    values["ndvi"][rng.random(grid.shape) < 0.2] = np.nan
    weights = grid.cell_area_m2()
    whole_cov = coverage_table(geoms, grid)
    whole = zonal_sums(whole_cov, values, window=grid.window, weights=weights)
    chunks = list(grid.chunks(16))
    assert sum(w.intersection(Window(row_off=0, col_off=0, height=30, width=30)) is not None for w in chunks) >= 4
    total = {k: np.zeros(3) for k in whole}
    total_from_whole = {k: np.zeros(3) for k in whole}
    spanned = set()
    for w in chunks:
        cov = coverage_table(geoms, grid, window=w)
        if np.any(cov.index == 0):
            spanned.add(w)
        vals = {k: v[w.slices] for k, v in values.items()}
        for k, v in zonal_sums(cov, vals, window=w, weights=weights[w.slices]).items():
            total[k] += v
        # One whole-grid table serves every chunk too.
        for k, v in zonal_sums(whole_cov, vals, window=w, weights=weights[w.slices]).items():
            total_from_whole[k] += v
    assert len(spanned) == 4
    for k in whole:
        np.testing.assert_allclose(total[k], whole[k], rtol=1e-12)
        np.testing.assert_allclose(total_from_whole[k], whole[k], rtol=1e-12)


def test_small_max_cells_gives_same_table():
    geoms = [
        px(UTM_GRID, Polygon([(-3.5, 1.2), (38.1, 4.4), (22.2, 43.3)])),
        patch_with_hole,
        square_1ha,
    ]
    a = coverage_table(geoms, UTM_GRID)
    b = coverage_table(geoms, UTM_GRID, max_cells=50)  # bands of rows, many batches
    assert keys(a) == keys(b)
    np.testing.assert_allclose(a.frac, b.frac, atol=1e-12)


# -- errors -------------------------------------------------------------------------


def test_invalid_polygon_raises_fixes_or_is_ignored():
    with pytest.raises(GeometryError, match="invalid.*make_valid"):
        coverage_table([square_1ha, bowtie_invalid], UTM_GRID)
    with pytest.warns(GeometryRepairedWarning, match="position 1"):
        cov = coverage_table([square_1ha, bowtie_invalid], UTM_GRID, on_invalid="fix")
    assert np.bincount(cov.index, cov.frac).tolist() == pytest.approx([100.0, 50.0])
    cov = coverage_table([bowtie_invalid], UTM_GRID, on_invalid="ignore")  # no check
    assert cov.n_geometries == 1


def test_non_polygon_raises():
    with pytest.raises(GeometryError, match="LineString"):
        coverage_table([square_1ha, LineString([(X0, Y0), (X0 + 50, Y0 - 50)])], UTM_GRID)
    with pytest.raises(GeometryError, match="not a shapely geometry"):
        coverage_table([square_1ha, "POLYGON ((0 0, 1 0, 1 1, 0 0))"], UTM_GRID)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("on_invalid", ["raise", "ignore"])
def test_nan_coordinates_raise(on_invalid):
    poly = Polygon([(X0, Y0), (np.nan, Y0 - 10), (X0 + 10, Y0 - 10)])
    with pytest.raises(GeometryError, match="geometry 1 has NaN"):
        coverage_table([square_1ha, poly], UTM_GRID, on_invalid=on_invalid)


def test_bad_options_raise():
    with pytest.raises(ConfigError, match="'raise', 'fix', 'ignore'"):
        coverage_table([square_1ha], UTM_GRID, on_invalid="repair")
    with pytest.raises(ConfigError, match="max_cells"):
        coverage_table([square_1ha], UTM_GRID, max_cells=0)
    with pytest.raises(InputDataError, match="does not lie inside the grid"):
        coverage_table([square_1ha], UTM_GRID, window=Window(row_off=30, col_off=30, height=20, width=20))


def test_zonal_sums_shape_errors():
    cov = coverage_table([square_1ha], UTM_GRID)
    with pytest.raises(InputDataError, match=r"values\['a'\] has shape \(10, 10\)"):
        zonal_sums(cov, {"a": np.ones((10, 10))}, window=UTM_GRID.window)
    with pytest.raises(InputDataError, match="cell_area_m2"):
        zonal_sums(cov, {"a": np.ones((40, 40))}, window=UTM_GRID.window, weights=np.ones(3))
    with pytest.raises(InputDataError, match="at least one raster"):
        zonal_sums(cov, {}, window=UTM_GRID.window)
    with pytest.raises(InputDataError, match="must be the ecopatch.geo.grid.Window"):
        zonal_sums(cov, {"a": np.ones((40, 40))}, window=(0, 0, 40, 40))
    with pytest.raises(InputDataError, match="from coverage_table"):
        zonal_sums({"index": []}, {"a": np.ones((40, 40))}, window=UTM_GRID.window)


# -- properties -------------------------------------------------------------------

PROPS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def pixel_polygons(draw):
    """Random convex or star-shaped polygons (3-40 vertices), in pixel space, maybe with a hole."""
    n = draw(st.integers(3, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    size = draw(st.sampled_from([0.3, 1.0, 4.0, 12.0, 30.0]))
    # Centre anywhere, even off the 40 × 40 grid; sometimes on pixel edges or half pixels.
    snap = draw(st.sampled_from([None, 1.0, 0.5]))
    centre = rng.uniform(-8, 48, 2)
    if snap:
        centre = np.round(centre / snap) * snap
    candidates = []
    if draw(st.booleans()):
        pts = rng.uniform(-1, 1, (n, 2)) * size
        candidates.append(shapely.convex_hull(shapely.MultiPoint(pts)))
    else:
        gap = rng.uniform(0.3, 1.0, n)
        ang = np.cumsum(gap) / gap.sum() * 2 * np.pi
        rad = rng.uniform(0.35, 1.0, n) * size
        pts = np.column_stack([rad * np.cos(ang), rad * np.sin(ang)])
        if snap and size >= 4:  # vertices on pixel edges and corners
            pts = np.round(pts / snap) * snap
        if draw(st.booleans()):
            candidates.append(Polygon(pts, [pts[::-1] * 0.3]))
        candidates.append(Polygon(pts))
    candidates.append(box(-size / 2, -size / 3, size / 2, size / 3))
    for poly in candidates:
        poly = shapely.affinity.translate(poly, *centre)
        if poly.geom_type == "Polygon" and poly.is_valid and poly.area > 1e-6 * size * size:
            break
    if draw(st.booleans()):
        poly = shapely.orient_polygons(poly, exterior_cw=True)
    assert poly.is_valid
    return poly


@pytest.mark.parametrize("crs", CRSS)
@PROPS
@given(poly=pixel_polygons())
def test_matches_shapely_per_cell(crs, poly):
    grid = make_grid(crs)
    geom = px(grid, poly)
    win, frac = coverage_fraction(geom, grid)
    ref = reference(geom, grid, grid.window)
    got = np.zeros(grid.shape)
    if win.height:
        got[win.slices] = frac
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("crs", CRSS)
@PROPS
@given(polys=st.lists(pixel_polygons(), min_size=1, max_size=4))
def test_total_area_and_range(crs, polys):
    grid = make_grid(crs)
    geoms = [px(grid, p) for p in polys]
    geoms.append(shapely.union_all(geoms))  # multipolygon whose parts may share cells
    cov = coverage_table(geoms, grid)
    assert np.all(cov.frac > FRAC_EPS) and np.all(cov.frac <= 1.0)
    k = cov.index * grid.height * grid.width + cov.row * grid.width + cov.col
    assert np.all(np.diff(k) > 0)  # sorted, no duplicates
    cell_map_area = abs(grid.transform.a * grid.transform.e)
    got = np.bincount(cov.index, cov.frac, minlength=len(geoms)) * cell_map_area
    clipped = shapely.area(shapely.clip_by_rect(np.array(geoms), *grid.bounds))
    np.testing.assert_allclose(got, clipped, rtol=1e-9, atol=1e-9 * cell_map_area)


@pytest.mark.parametrize("crs", CRSS)
@PROPS
@given(
    polys=st.lists(pixel_polygons(), min_size=1, max_size=4),
    chunk=st.tuples(st.integers(3, 25), st.integers(3, 25)),
    max_cells=st.sampled_from([7, 100, DEFAULT_MAX_CELLS]),
)
def test_chunked_equals_whole(crs, polys, chunk, max_cells):
    grid = make_grid(crs)
    geoms = [px(grid, p) for p in polys]
    whole = coverage_table(geoms, grid)
    parts = [coverage_table(geoms, grid, window=w, max_cells=max_cells) for w in grid.chunks(chunk)]
    for part in parts:
        w = part.window
        assert np.all((part.row >= w.row_off) & (part.row < w.row_end))
        assert np.all((part.col >= w.col_off) & (part.col < w.col_end))
    got = {k: f for p in parts for k, f in zip(keys(p), p.frac.tolist())}
    assert sum(len(p) for p in parts) == len(got)
    want = dict(zip(keys(whole), whole.frac.tolist()))
    assert set(got) == set(want)
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=0, atol=1e-12)


@pytest.mark.parametrize("crs", CRSS)
@PROPS
@given(polys=st.lists(pixel_polygons(), min_size=1, max_size=5))
def test_plain_polygons_take_the_same_path_as_any_other(crs, polys):
    # Plain polygons without holes skip building ring geometries (a faster path); adding
    # a multipolygon to the batch sends everything down the general path. The entries of
    # the plain polygons must be the same to the last bit either way.
    grid = make_grid(crs)
    plain = [px(grid, shapely.Polygon(p.exterior)) for p in polys]
    fast = coverage_table(plain, grid)
    general = coverage_table([*plain, multipart_patch], grid)
    own = general.index < len(plain)
    assert keys(fast) == keys(general)[: int(own.sum())]
    assert fast.frac.tobytes() == general.frac[own].tobytes()
    a_fast = geodesic_area_m2(plain, crs)
    a_general = geodesic_area_m2([*plain, multipart_patch], crs)[: len(plain)]
    assert a_fast.tobytes() == a_general.tobytes()


def test_outline_pixels_centres_then_touched_and_share_inside():
    from ecopatch.compute.zonal import outline_pixels

    g = Grid((10, 10), Affine(10, 0, 0, 0, -10, 100), "EPSG:32650")
    win, m, inside = outline_pixels(g, shapely.box(20, 50, 40, 70))  # 2 x 2 pixels, whole
    assert m.sum() == 4 and inside == 1.0 and (win.row_off, win.col_off) == (2, 1)
    _, small, _ = outline_pixels(g, shapely.box(21, 51, 24, 54))  # covers no pixel centre: the one it touches
    assert small.sum() == 1
    _, half, share = outline_pixels(g, shapely.box(-20, 50, 20, 70))  # half west of the grid
    assert share == 0.5 and half.sum() == 4
    assert outline_pixels(g, shapely.box(500, 500, 600, 600)) is None
    assert outline_pixels(g, shapely.Polygon()) is None


# -- many polygons, each over a window of its own ------------------------------------


def _placed(geom, grid: Grid, win: Window) -> np.ndarray:
    """coverage_fraction over ``win``, placed in an array of ``win``'s shape."""
    cw, part = coverage_fraction(geom, grid, window=win)
    out = np.zeros(win.shape)
    if part.size:
        out[cw.relative_to(win).slices] = part
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 6), halo=st.integers(0, 4))
def test_coverage_windows_is_coverage_fraction_per_polygon(seed, n, halo):
    rng = np.random.default_rng(seed)
    geoms = []
    for _ in range(n):
        x, y = rng.uniform(0, 30, 2)
        w, h = rng.uniform(0.3, 9, 2)
        g = px(UTM_GRID, box(x, y, x + w, y + h).buffer(rng.uniform(0, 1.5), quad_segs=3))
        if rng.random() < 0.3:  # a part elsewhere, or a hole: the general path of coverage_table
            g = g.union(px(UTM_GRID, box(x + w + 1, y, x + w + 3, y + 2))) if rng.random() < 0.5 else \
                g.difference(g.centroid.buffer(min(w, h) * 2.5))
        geoms.append(g)
    wins = [UTM_GRID.window_from_bounds(g.bounds, pad=halo, clip=True) for g in geoms]
    got = coverage_windows(geoms, UTM_GRID, wins)
    simple = all(g.geom_type == "Polygon" and not g.interiors for g in geoms)
    for g, w, a in zip(geoms, wins, got):
        want = _placed(g, UTM_GRID, w)
        assert a.shape == w.shape
        if simple:  # the same arithmetic in the same order
            assert np.array_equal(a, want)
        else:  # edges of other polygons' rings in the same batch: additions in another order
            np.testing.assert_allclose(a, want, rtol=0, atol=1e-12)


def test_coverage_windows_clips_each_polygon_to_its_window():
    # a window that cuts the square: only its cells, as coverage_fraction over that window
    cut = Window(row_off=2, col_off=3, height=4, width=20)
    got = coverage_windows([square_1ha, None, patch_with_hole], UTM_GRID,
                           [cut, Window(row_off=0, col_off=0, height=2, width=2), UTM_GRID.window])
    assert np.array_equal(got[0], _placed(square_1ha, UTM_GRID, cut))
    assert got[0][:, :7].sum() == 4 * 7 and got[0][:, 7:].sum() == 0
    assert got[1].shape == (2, 2) and not got[1].any()
    assert got[2].sum() == pytest.approx(96.0)


def test_coverage_windows_checks_its_windows():
    with pytest.raises(InputDataError, match="2 geometries but 1 windows"):
        coverage_windows([square_1ha, square_1ha], UTM_GRID, [UTM_GRID.window])
    with pytest.raises(InputDataError, match="does not lie inside the grid"):
        coverage_windows([square_1ha], UTM_GRID, [Window(row_off=-1, col_off=0, height=5, width=5)])
    assert coverage_windows([], UTM_GRID, []) == []
