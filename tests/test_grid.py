import numpy as np
import pytest
from affine import Affine
from hypothesis import given
from hypothesis import strategies as st

from ecopatch.errors import InputDataError
from ecopatch.geo.geodesy import geodesic_area_m2
from ecopatch.geo.grid import Grid, Window


def test_basic_properties():
    g = Grid((100, 200), Affine(10, 0, 780_000, 0, -10, 3_350_000), "EPSG:32650")
    assert g.res == (10.0, 10.0)
    assert g.bounds == (780_000.0, 3_349_000.0, 782_000.0, 3_350_000.0)
    assert g.window_from_bounds((780_015, 3_349_015, 780_100, 3_349_990)) == Window(row_off=1, col_off=1,
                                                                                    height=98, width=9)
    assert g.window_from_bounds((0, 0, 1, 1)) is None
    sub = g.subgrid(Window(row_off=3, col_off=4, height=2, width=2))
    assert sub.bounds == (780_040.0, 3_349_950.0, 780_060.0, 3_349_970.0)
    assert hash(g) == hash(Grid((100, 200), Affine(10, 0, 780_000, 0, -10, 3_350_000), "EPSG:32650"))


def test_rotated_and_empty_grids_refused():
    with pytest.raises(InputDataError, match="rotated"):
        Grid((10, 10), Affine(10, 1, 0, 0, -10, 0), "EPSG:32650")
    with pytest.raises(InputDataError, match="1 × 1"):
        Grid((0, 10), Affine(10, 0, 0, 0, -10, 0), "EPSG:32650")


@pytest.mark.parametrize(
    "crs, transform",
    [
        ("EPSG:32650", Affine(10, 0, 780_000, 0, -10, 3_350_000)),  # UTM 50N, ~3° off its meridian
        ("EPSG:4549", Affine(10, 0, 495_000, 0, -10, 3_345_000)),  # CGCS2000 GK CM 120E
        ("EPSG:4528", Affine(10, 0, 40_495_000, 0, -10, 3_345_000)),  # same, zone in false easting
        ("EPSG:4490", Affine(1e-4, 0, 119.95, 0, -1e-4, 30.23)),  # CGCS2000 degrees
        ("EPSG:3395", Affine(0.1, 0, 13_353_000, 0, -0.1, 3_510_000)),  # World Mercator drone grid
    ],
)
def test_cell_areas_sum_to_geodesic_area(crs, transform):
    g = Grid((300, 400), transform, crs)
    total = g.cell_area_m2().sum()
    assert total == pytest.approx(geodesic_area_m2(g.footprint(), crs), rel=1e-6)


@given(
    rows=st.integers(1, 700), cols=st.integers(1, 700), size=st.integers(16, 300),
    r0=st.integers(0, 50), c0=st.integers(0, 50),
)
def test_chunks_tile_the_window_exactly_once(rows, cols, size, r0, c0):
    g = Grid((rows + r0, cols + c0), Affine(10, 0, 0, 0, -10, 0), "EPSG:32650")
    win = Window(row_off=r0, col_off=c0, height=rows, width=cols)
    count = np.zeros(g.shape, dtype=np.int32)
    for w in g.chunks(size, win):
        assert w.height <= size and w.width <= size
        count[w.slices] += 1
    assert (count[win.slices] == 1).all()
    assert count.sum() == rows * cols


def test_window_algebra():
    a, b = Window(row_off=0, col_off=0, height=10, width=10), Window(row_off=5, col_off=5, height=10, width=10)
    assert a.intersection(b) == Window(row_off=5, col_off=5, height=5, width=5)
    assert a.union(b) == Window(row_off=0, col_off=0, height=15, width=15)
    assert a.intersection(Window(row_off=10, col_off=0,
                                 height=3, width=3)) is None
    inner = Window(row_off=5, col_off=5, height=2, width=2)
    assert inner.relative_to(a) == Window(row_off=5, col_off=5, height=2, width=2)
    assert Window(row_off=5, col_off=5, height=2, width=2).pad(1) == Window(row_off=4, col_off=4, height=4, width=4)


@pytest.mark.parametrize(
    "crs,transform",
    [
        ("EPSG:32650", Affine(10, 0, 700_000, 0, -10, 3_400_000)),  # 300 km east of the meridian
        ("EPSG:4490", Affine(0.0001, 0, 119.5, 0, -0.0001, 30.5)),
    ],
)
def test_cell_areas_at_listed_cells_equal_the_window_values(crs, transform):
    g = Grid((700, 900), transform, crs)
    win = Window(row_off=100, col_off=250, height=520, width=600)  # crosses lattice lines
    full = g.cell_area_m2(win)
    rng = np.random.default_rng(0)
    rows = rng.integers(win.row_off, win.row_end, 5000)
    cols = rng.integers(win.col_off, win.col_end, 5000)
    np.testing.assert_array_equal(g.cell_area_m2_at(rows, cols), full[rows - win.row_off, cols - win.col_off])
    assert g.cell_area_m2_at(np.zeros(0, int), np.zeros(0, int)).shape == (0,)


def test_window_from_rasterio_round_trip():
    from rasterio.windows import Window as RioWindow

    w = Window(row_off=10, col_off=20, height=5, width=6)
    rio = w.to_rasterio()
    assert (rio.col_off, rio.row_off, rio.width, rio.height) == (20, 10, 6, 5)
    assert Window.from_rasterio(rio) == w
    with pytest.raises(InputDataError, match="whole pixels"):
        Window.from_rasterio(RioWindow(0.5, 0, 10, 10))


def test_grid_geobox_round_trip():
    geobox_mod = pytest.importorskip("odc.geo.geobox")
    box = geobox_mod.GeoBox((100, 200), Affine(10, 0, 500_000, 0, -10, 3_400_000), "EPSG:32650")
    grid = Grid.from_geobox(box)
    assert grid.shape == (100, 200)
    assert grid.transform == Affine(10, 0, 500_000, 0, -10, 3_400_000)
    assert grid.crs.to_epsg() == 32650
    assert grid.to_geobox() == box
    geo = geobox_mod.GeoBox((50, 80), Affine(0.001, 0, 110.0, 0, -0.001, 30.0), "EPSG:4490")
    assert Grid.from_geobox(geo).crs.to_epsg() == 4490
    with pytest.raises(InputDataError, match="not a GeoBox"):
        Grid.from_geobox(object())
