import geopandas as gpd
import pytest
from shapely.geometry import LineString, Point, box

from ecopatch.errors import (
    DuplicateIDError,
    GeometryError,
    GeometryRepairedWarning,
    InputDataError,
    MissingCRSError,
    OutputError,
    OutputExistsError,
    SuspiciousCoordinatesError,
    VectorReadError,
)
from ecopatch.vector.layers import read_patches, write_table
from tests.common import bowtie_invalid, multipart_patch, patch_with_hole, square_1ha


def _gdf(geoms, crs="EPSG:32650", **cols):
    return gpd.GeoDataFrame(cols, geometry=list(geoms), crs=crs)


def test_gpkg_with_chinese_fields_and_ids(tmp_path):
    p = tmp_path / "mines.gpkg"
    _gdf([square_1ha, patch_with_hole, multipart_patch], 矿山编号=["YH-1", "YH-2", "YH-3"],
         矿山名称=["甲石矿", "乙石矿", "丙石矿"]).to_crs(4490).to_file(p)
    g = read_patches(p, id_field="矿山编号")
    assert list(g["patch_id"]) == ["YH-1", "YH-2", "YH-3"]
    assert g["矿山名称"].iloc[0] == "甲石矿" and g.crs.to_epsg() == 4490
    g2 = read_patches(p)
    assert list(g2["patch_id"]) == ["P0001", "P0002", "P0003"]


def test_gbk_shapefile_without_cpg(tmp_path):
    p = tmp_path / "mines.shp"
    _gdf([square_1ha], 矿山名称=["余杭区石矿"]).to_file(p, encoding="gbk", engine="pyogrio")
    for ext in (".cpg", ".CPG"):
        (tmp_path / f"mines{ext}").unlink(missing_ok=True)
    g = read_patches(p)
    assert g["矿山名称"].iloc[0] == "余杭区石矿"


def test_bowtie_repaired_with_warning_and_empty_dropped(tmp_path):
    p = tmp_path / "m.gpkg"
    _gdf([square_1ha, bowtie_invalid, None], id=["a", "b", "c"]).to_file(p)
    with pytest.warns(GeometryRepairedWarning, match=r"repaired 1 .*\['b'\].*dropped 1 .*\['c'\]"):
        g = read_patches(p, id_field="id")
    assert list(g["patch_id"]) == ["a", "b"]
    assert g.geometry.is_valid.all()
    assert g.attrs["repaired"] == ["b"] and g.attrs["dropped"] == ["c"]
    with pytest.raises(GeometryError, match="on_invalid='fix'"):
        read_patches(p, id_field="id", on_invalid="raise")


def test_duplicate_and_missing_ids(tmp_path):
    p = tmp_path / "m.gpkg"
    _gdf([square_1ha, patch_with_hole], id=["x", "x"]).to_file(p)
    with pytest.raises(DuplicateIDError, match=r"repeats IDs \['x'\]"):
        read_patches(p, id_field="id")
    with pytest.raises(InputDataError, match="no field 'nope'"):
        read_patches(p, id_field="nope")


def test_missing_crs_empty_layer_and_points(tmp_path):
    p = tmp_path / "nocrs.geojson"
    p.write_text('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},'
                 '"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}]}')
    # GeoJSON is WGS84 by definition: a CRS-less format is a Shapefile without .prj
    shp = tmp_path / "noprj.shp"
    _gdf([square_1ha]).to_file(shp)
    (tmp_path / "noprj.prj").unlink()
    with pytest.raises(MissingCRSError, match=r"\.prj"):
        read_patches(shp)
    assert read_patches(shp, crs="EPSG:32650").crs.to_epsg() == 32650
    pts = tmp_path / "pts.gpkg"
    _gdf([Point(780_000, 3_349_000), LineString([(780_000, 3_349_000), (780_010, 3_349_000)])]).to_file(pts)
    with pytest.raises(GeometryError, match="not polygons"):
        read_patches(pts)


def test_suspicious_coordinates(tmp_path):
    # GK metres labelled as degrees
    p = tmp_path / "gk_as_deg.gpkg"
    _gdf([box(40_500_000, 3_345_000, 40_500_100, 3_345_100)], crs="EPSG:4490").to_file(p)
    with pytest.raises(SuspiciousCoordinatesError, match="not degrees"):
        read_patches(p)
    # lat/lon swapped
    p2 = tmp_path / "swapped.gpkg"
    _gdf([box(30.22, 119.95, 30.23, 119.96)], crs="EPSG:4490").to_file(p2)
    with pytest.raises(SuspiciousCoordinatesError, match="swapped"):
        read_patches(p2)
    # GK coordinates with zone prefix given the no-prefix CRS
    p3 = tmp_path / "prefix.gpkg"
    _gdf([box(40_500_000, 3_345_000, 40_500_100, 3_345_100)], crs="EPSG:4549").to_file(p3)
    with pytest.raises(SuspiciousCoordinatesError, match="zone number"):
        read_patches(p3)


def test_not_a_vector_file(tmp_path):
    p = tmp_path / "x.gpkg"
    p.write_text("garbage")
    with pytest.raises(VectorReadError, match="cannot"):
        read_patches(p)
    with pytest.raises(VectorReadError, match="no such file"):
        read_patches(tmp_path / "none.gpkg")


@pytest.mark.parametrize("ext", [".gpkg", ".geojson", ".csv", ".xlsx", ".kml"])
def test_write_table_formats_atomic_and_no_overwrite(tmp_path, ext):
    g = _gdf([square_1ha], patch_id=["a"], 面积_m2=[10000.0])
    out = write_table(g, tmp_path / f"r{ext}")
    assert out.exists()
    assert [p.name for p in tmp_path.iterdir()] == [f"r{ext}"]  # no temporary left
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_table(g, tmp_path / f"r{ext}")
    write_table(g, tmp_path / f"r{ext}", overwrite=True)


def test_write_table_failure_leaves_nothing(tmp_path, monkeypatch):
    g = _gdf([square_1ha], patch_id=["a"])

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", boom)
    with pytest.raises(OutputError, match="disk full"):
        write_table(g, tmp_path / "r.gpkg")
    assert list(tmp_path.iterdir()) == []


def test_id_field_named_patch_id_and_existing_patch_id_column(tmp_path):
    p = tmp_path / "m.gpkg"
    _gdf([square_1ha, patch_with_hole], patch_id=["a", "b"], code=["K1", "K2"]).to_file(p)
    assert list(read_patches(p, id_field="patch_id")["patch_id"]) == ["a", "b"]
    g = read_patches(p, id_field="code")
    assert list(g["patch_id"]) == ["K1", "K2"] and list(g["patch_id_source"]) == ["a", "b"]
