import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import box

from ecopatch.errors import MissingCRSError
from ecopatch.geo.geodesy import as_crs, geodesic_area_m2, ground_area_factor, repaired, to_lonlat


def _true_area(lonlat_poly):
    geod = Geod(ellps="GRS80")
    a, _ = geod.geometry_area_perimeter(shapely.orient_polygons(lonlat_poly))
    return abs(a)


@pytest.mark.parametrize("crs", ["EPSG:4490", "EPSG:4549", "EPSG:4528", "EPSG:32650", "EPSG:32651"])
def test_area_is_geodesic_in_any_crs(crs):
    # A ~2 ha irregular patch near Hangzhou, defined in lon/lat and moved into each CRS.
    ll = shapely.Polygon([(119.950, 30.220), (119.9515, 30.2201), (119.9517, 30.2212),
                          (119.9502, 30.2215), (119.9496, 30.2207)])
    from ecopatch.geo.geodesy import transformer

    tr = transformer("EPSG:4490", crs)
    g = shapely.transform(ll, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    area = geodesic_area_m2(g, crs)
    assert area == pytest.approx(_true_area(ll), rel=1e-3)


def test_planar_mercator_area_is_not_what_we_report():
    # In World Mercator at 15°N a 100 m map square is ~7 % smaller on the ground.
    g = box(13_000_000, 1_680_000, 13_000_100, 1_680_100)
    a = geodesic_area_m2(g, "EPSG:3395")
    assert a < 0.95 * g.area
    assert ground_area_factor("EPSG:3395", [13_000_050], [1_680_050])[0] == pytest.approx(a / g.area, rel=1e-3)


def test_empty_none_and_lines_have_zero_area():
    vals = geodesic_area_m2([None, shapely.Polygon(), shapely.LineString([(0, 0), (1, 1)])], "EPSG:4490")
    assert vals.tolist() == [0.0, 0.0, 0.0]


def test_missing_crs_message():
    with pytest.raises(MissingCRSError, match="EPSG:4490"):
        as_crs(None, what="mines.gpkg")


def test_to_lonlat_gauss_kruger_is_x_first():
    # EPSG:4549 is northing-first in its definition; geometries are still x = easting.
    p = shapely.Point(500_000, 3_345_000)  # on the central meridian 120°E
    ll = to_lonlat(p, "EPSG:4549")
    assert ll.x == pytest.approx(120.0, abs=1e-9)
    assert 30 < ll.y < 31


def test_geodesic_area_of_holes_multipolygons_and_nested_collections():
    from shapely.geometry import GeometryCollection, LineString, MultiPolygon, Polygon

    a = box(500_000, 3_300_000, 500_100, 3_300_100)
    b = box(500_200, 3_300_000, 500_300, 3_300_050)
    hole = box(500_020, 3_300_020, 500_040, 3_300_040)
    holed = Polygon(a.exterior.coords, [hole.exterior.coords])
    clockwise = Polygon(list(a.exterior.coords)[::-1])
    nested = GeometryCollection([a, GeometryCollection([b, LineString([(0, 0), (1, 1)])])])
    area = geodesic_area_m2([a, b, hole, holed, MultiPolygon([holed, b]), clockwise, nested], "EPSG:32650")
    np.testing.assert_allclose(area[3], area[0] - area[2], rtol=1e-12)
    np.testing.assert_allclose(area[4], area[3] + area[1], rtol=1e-12)
    assert area[5] == area[0]
    np.testing.assert_allclose(area[6], area[0] + area[1], rtol=1e-12)


def test_geometries_in_keeps_equivalent_crs_and_transforms_others():
    import geopandas as gpd
    import rasterio.crs

    from ecopatch.geo.geodesy import geometries_in

    gdf = gpd.GeoDataFrame(geometry=[box(500_000, 3_300_000, 500_100, 3_300_100)], crs="EPSG:32650")
    # the same CRS as a GeoTIFF would carry it: equivalent, written differently
    tiff_crs = rasterio.crs.CRS.from_wkt(as_crs("EPSG:32650").to_wkt(version="WKT1_GDAL"))
    assert not as_crs(tiff_crs).is_exact_same(gdf.crs)
    same = geometries_in(gdf, tiff_crs)
    assert same[0] is gdf.geometry.iloc[0]  # not transformed, not copied
    moved = geometries_in(gdf, "EPSG:4490")
    assert 116 < moved[0].centroid.x < 118 and 29 < moved[0].centroid.y < 31  # x = longitude
    with pytest.raises(MissingCRSError, match="patches.gpkg"):
        geometries_in(gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)]), "EPSG:4490", what="patches.gpkg")


def test_repaired_replaces_only_the_invalid_geometries():
    bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])
    ok = box(0, 0, 1, 1)
    geoms = np.array([ok, bowtie, None, shapely.Polygon()], dtype=object)
    out = repaired(geoms)
    assert out[0] is ok and out[2] is None and out[3].is_empty
    assert out[1].is_valid and out[1].area == pytest.approx(2.0)
    assert geoms[1] is bowtie  # the input array is left alone
    assert shapely.equals(out[1], shapely.make_valid(bowtie))
    assert repaired([]).shape == (0,)
