"""The GeoPackage ledger: cases, events, matching across runs, lifecycle, integrity."""

from __future__ import annotations

import datetime as dt
import sqlite3
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from shapely.geometry import Polygon, box

from ecopatch.errors import (
    DuplicateIDError,
    GeometryError,
    GeometryRepairedWarning,
    InputDataError,
    LedgerError,
    LedgerIntegrityError,
    LedgerLockedError,
    LedgerTransitionError,
    MissingCRSError,
)
from ecopatch.geo.geodesy import geodesic_area_m2, transformer
from ecopatch.ledger import SCHEMA_VERSION, AddResult, Ledger, Status
from ecopatch.ledger.gpkg import decode_geometry, encode_geometry
from ecopatch.vocabulary import PATCH_COLUMNS

X0, Y0 = 120.10, 30.25  # Xixi wetland, Hangzhou
S = 0.001  # ~ 96 m x 111 m
T0 = dt.date(2024, 5, 10)


def make_patches(specs, *, date_after="2024-05-01", crs="EPSG:4490"):
    """specs: (patch_id, dx, dy[, size, change_type, zone]) in units of S from (X0, Y0)."""
    rows = []
    for spec in specs:
        pid, dx, dy, size, ctype, zone = (*spec, *(1.0, "construction", "core")[len(spec) - 3 :])
        x, y = X0 + dx * S, Y0 + dy * S
        rows.append(
            dict(
                patch_id=pid, change_type=ctype, area_m2=1.0e4, area_mu=15.0, confidence=0.8,
                date_before="2023-05-01", date_after=date_after, ndvi_before=0.7, ndvi_after=0.2,
                centroid_lon=x, centroid_lat=y, cgcs2000_lon=x, cgcs2000_lat=y,
                reserve_name="西溪湿地", zone=zone, zone_name=None, source_scene="S2A_T50RQU",
                geometry=box(x, y, x + size * S, y + size * S),
            )
        )  # fmt: skip
    return gpd.GeoDataFrame(rows, crs=crs)


@pytest.fixture
def ledger(tmp_path):
    return Ledger(tmp_path / "ledger.gpkg")


@pytest.fixture
def three(ledger):
    p = make_patches([("p1", 0, 0), ("p2", 10, 0, 2.0, "bare_soil", "buffer"), ("p3", 20, 0)])
    res = ledger.add_detections(p, "run-2024-05", today=T0)
    return ledger, res


# --------------------------------------------------------------------------- file format


def test_new_ledger_is_a_geopackage(ledger):
    con = sqlite3.connect(ledger.path)
    try:
        assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
        assert con.execute("PRAGMA user_version").fetchone()[0] == 10400
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        srs = {r[0] for r in con.execute("SELECT srs_id FROM gpkg_spatial_ref_sys")}
        assert {4490, 4326, 0, -1} <= srs
        contents = dict(con.execute("SELECT table_name, data_type FROM gpkg_contents"))
        assert contents["cases"] == "features" and contents["events"] == "attributes"
        gc = con.execute("SELECT geometry_type_name, srs_id FROM gpkg_geometry_columns "
                         "WHERE table_name='cases'").fetchone()  # fmt: skip
        assert gc == ("MULTIPOLYGON", 4490)
    finally:
        con.close()
    assert ledger.schema_version == SCHEMA_VERSION == 3
    assert ledger.check().ok
    assert not list(ledger.path.parent.glob("*-wal")) and not list(
        ledger.path.parent.glob("*-journal")
    )


def test_gdal_reads_cases_with_crs_and_identical_geometries(three):
    ledger, _ = three
    ours = ledger.cases(today=T0)
    gdal = gpd.read_file(ledger.path, layer="cases")
    assert gdal.crs.to_epsg() == 4490
    assert list(gdal["case_id"]) == list(ours["case_id"])
    assert all(gdal.geometry.geom_type == "MultiPolygon")
    assert all(a.equals_exact(b, 0) for a, b in zip(gdal.geometry, ours.geometry))
    layers = dict(pyogrio.list_layers(ledger.path))
    assert layers["cases"] == "MultiPolygon" and layers["detections"] == "MultiPolygon"
    assert layers["events"] is None  # attributes table
    ev = pyogrio.read_dataframe(ledger.path, layer="events")
    assert len(ev) == 3 and set(ev["kind"]) == {"detect"}


def test_geometries_equal_the_input(three):
    ledger, _ = three
    src = make_patches([("p1", 0, 0), ("p2", 10, 0, 2.0), ("p3", 20, 0)])
    got = ledger.cases()
    assert all(a.equals(b) for a, b in zip(got.geometry, src.geometry))


def test_gpkg_binary_roundtrip():
    g = shapely.MultiPolygon([box(0, 0, 1, 1), box(2, 2, 3, 3)])
    b = encode_geometry(g)
    assert b[:2] == b"GP" and b[3] == 0b11
    assert decode_geometry(b).equals_exact(g, 0)
    assert decode_geometry(encode_geometry(shapely.MultiPolygon())).is_empty
    assert decode_geometry(None) is None
    with pytest.raises(ValueError, match="magic"):
        decode_geometry(b"XX" + b[2:])


def test_gauss_kruger_input_is_transformed_with_lon_first(ledger):
    ll = make_patches([("g1", 0, 0, 3.0)])
    gk = ll.to_crs("EPSG:4549")  # CGCS2000 / 3-degree GK CM 120E, northing-first definition
    ledger.add_detections(gk, "gk", today=T0)
    c = ledger.cases().iloc[0]
    assert c["lon"] == pytest.approx(X0 + 1.5 * S, abs=1e-4)
    assert c["lat"] == pytest.approx(Y0 + 1.5 * S, abs=1e-4)
    true_m2 = geodesic_area_m2(gk.geometry.values, "EPSG:4549")[0]
    assert c["area_m2"] == pytest.approx(true_m2, rel=1e-3)
    assert c["area_mu"] == pytest.approx(c["area_m2"] * 15 / 10_000)
    assert c.geometry.equals_exact(shapely.MultiPolygon([ll.geometry.iloc[0]]), 1e-9)


def test_existing_rtree_triggers_do_not_block_writes(three):
    """A user who added a spatial index in QGIS/GDAL gets triggers calling ST_* functions."""
    ledger, _ = three
    con = sqlite3.connect(ledger.path)
    con.executescript(
        """
        CREATE VIRTUAL TABLE rtree_cases_geom USING rtree(id, minx, maxx, miny, maxy);
        CREATE TRIGGER rtree_cases_geom_insert AFTER INSERT ON cases
        WHEN (new.geom NOT NULL AND NOT ST_IsEmpty(NEW.geom)) BEGIN
          INSERT OR REPLACE INTO rtree_cases_geom VALUES (NEW.fid, ST_MinX(NEW.geom),
            ST_MaxX(NEW.geom), ST_MinY(NEW.geom), ST_MaxY(NEW.geom));
        END;
        """
    )
    con.close()
    ledger.add_detections(make_patches([("p9", 50, 50)]), "more", today=T0)
    con = sqlite3.connect(ledger.path)
    (minx,) = con.execute("SELECT minx FROM rtree_cases_geom").fetchone()
    con.close()
    assert minx == pytest.approx(X0 + 50 * S, abs=1e-4)


def test_ledger_open_in_wal_mode_elsewhere_stays_usable(three):
    """QGIS opens GeoPackages in WAL mode; the ledger must keep working meanwhile."""
    ledger, _ = three
    qgis = sqlite3.connect(ledger.path)
    assert qgis.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    qgis.execute("SELECT COUNT(*) FROM cases").fetchone()
    try:
        res = ledger.add_detections(make_patches([("w1", 80, 80)]), "wal", today=T0)
        assert res.new == 1 and ledger.check().ok
    finally:
        qgis.close()
    assert len(ledger.cases()) == 4  # next open switches back to a rollback journal
    con = sqlite3.connect(ledger.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()
    assert not list(ledger.path.parent.glob("*-wal"))


# --------------------------------------------------------------------------- opening


def test_open_errors(tmp_path):
    with pytest.raises(LedgerError, match="no ledger at"):
        Ledger(tmp_path / "missing.gpkg", create=False)
    with pytest.raises(LedgerError, match="does not exist"):
        Ledger(tmp_path / "nodir" / "l.gpkg")
    junk = tmp_path / "junk.gpkg"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(LedgerError, match="not a GeoPackage/SQLite file"):
        Ledger(junk)
    other = tmp_path / "other.gpkg"
    make_patches([("p1", 0, 0)]).to_file(other, layer="patches")
    with pytest.raises(LedgerError, match="not an ecopatch ledger"):
        Ledger(other)
    with pytest.raises(ValueError, match="id_prefix"):
        Ledger(tmp_path / "x.gpkg", id_prefix="Y B")


def test_newer_schema_is_refused(ledger):
    con = sqlite3.connect(ledger.path)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(LedgerError, match="newer than this ecopatch"):
        Ledger(ledger.path)


# --------------------------------------------------------------------------- add_detections


def test_add_opens_cases_with_readable_ids(three):
    assert set(PATCH_COLUMNS) < set(make_patches([("a", 0, 0)]).columns)
    ledger, res = three
    assert isinstance(res, AddResult)
    assert (res.new, res.matched, res.rebound, res.unchanged) == (3, 0, 0, 0)
    assert res.case_ids == ("YB-2024-000001", "YB-2024-000002", "YB-2024-000003")
    c = ledger.cases(today=T0)
    assert list(c["status"]) == ["detected"] * 3
    assert list(c["found_on"]) == [dt.date(2024, 5, 1)] * 3
    assert list(c["patch_id"]) == ["p1", "p2", "p3"]
    ev = ledger.events()
    assert list(ev["kind"]) == ["detect"] * 3 and list(ev["patch_id"]) == ["p1", "p2", "p3"]
    assert ev["data"][0]["run_id"] == "run-2024-05"
    det = ledger.detections()
    assert det.crs.to_epsg() == 4490 and list(det["outcome"]) == ["new"] * 3
    assert det["attrs"][0]["source_scene"] == "S2A_T50RQU"  # extra columns kept


def test_adding_the_same_detections_twice_changes_nothing(three):
    ledger, _ = three
    before_cases = ledger.cases(today=T0)
    before_events = ledger.events()
    p = make_patches([("p1", 0, 0), ("p2", 10, 0, 2.0, "bare_soil", "buffer"), ("p3", 20, 0)])
    again = ledger.add_detections(p, "run-2024-05", today=T0)
    assert (again.new, again.matched, again.rebound, again.unchanged) == (0, 0, 0, 3)
    assert again.case_ids == ("YB-2024-000001", "YB-2024-000002", "YB-2024-000003")
    # the same detections under another run ID (same patch_id and after date) too
    other = ledger.add_detections(p, "rerun", today=T0)
    assert other.unchanged == 3
    pd.testing.assert_frame_equal(ledger.events(), before_events)
    pd.testing.assert_frame_equal(
        ledger.cases(today=T0).drop(columns="geometry"), before_cases.drop(columns="geometry")
    )


def test_second_run_a_year_later_keeps_ids_and_flags_rebound(three):
    ledger, _ = three
    # case 1 goes all the way to 销号
    for kind, day in (("dispatch", 11), ("confirm", 20), ("start_rectification", 21),
                      ("complete", 60), ("close", 70)):  # fmt: skip
        ledger.advance("YB-2024-000001", kind, today=T0 + dt.timedelta(days=day),
                       real_type="工业开发" if kind == "confirm" else None)  # fmt: skip
    year2 = make_patches(
        [
            ("q1", 0.2, 0, 1.0),  # case 1 (closed) found again -> rebound
            ("q2", 10, 0.5, 2.5, "construction", "buffer"),  # case 2, grown -> matched
            ("q4", 40, 0),  # a new place -> new case, 2025 serial
        ],
        date_after="2025-05-03",
    )
    res = ledger.add_detections(year2, "run-2025-05", today=dt.date(2025, 5, 10))
    assert (res.new, res.matched, res.rebound, res.unchanged) == (1, 1, 1, 0)
    assert res.case_ids == ("YB-2024-000001", "YB-2024-000002", "YB-2025-000001")
    c = ledger.cases(today=dt.date(2025, 5, 10)).set_index("case_id")
    assert c.loc["YB-2024-000001", "status"] == "reopened"
    assert c.loc["YB-2024-000001", "colour"] == "red"
    assert c.loc["YB-2024-000002", "status"] == "detected"
    assert c.loc["YB-2024-000002", "n_detections"] == 2
    assert c.loc["YB-2024-000002", "change_type"] == "construction"  # follows latest detection
    assert c.loc["YB-2024-000002", "found_on"] == dt.date(2024, 5, 1)  # first seen stays
    assert c.loc["YB-2025-000001", "found_on"] == dt.date(2025, 5, 3)
    ev = ledger.events("YB-2024-000001")
    # found again a year later: rebound, and seen from the sky a second time (sky tier confirmed)
    assert list(ev["kind"])[-2:] == ["rebound", "sky_confirm"] and ev["patch_id"].iloc[-2] == "q1"
    assert ev["data"].iloc[-2]["overlap_score"] == pytest.approx(0.8)
    assert ev["data"].iloc[-1]["confirmed_on"] == "2025-05-03"
    assert res.sky_confirmed == 2 and c.loc["YB-2024-000002", "sky_tier"] == "confirmed"
    assert c.loc["YB-2025-000001", "sky_tier"] == "probable"
    assert ledger.check().ok


def test_false_alarm_found_again_is_matched_unless_much_bigger(three):
    ledger, _ = three
    ledger.advance("YB-2024-000003", "dismiss", today=T0)
    same = make_patches([("r3", 20, 0, 1.2)], date_after="2024-09-01")
    assert ledger.add_detections(same, "sep", today=T0).matched == 1
    assert ledger.case("YB-2024-000003").status is Status.FALSE_ALARM
    big = make_patches([("s3", 20, 0, 2.0)], date_after="2024-10-01")  # 4x the area
    assert ledger.add_detections(big, "oct", today=T0).rebound == 1
    assert ledger.case("YB-2024-000003").status is Status.REOPENED
    assert ledger.check().ok


def test_older_detection_does_not_overwrite_newer_geometry(three):
    ledger, _ = three
    newer = make_patches([("n1", 0, 0, 1.5)], date_after="2024-08-01")
    ledger.add_detections(newer, "aug", today=T0)
    older = make_patches([("o1", 0, 0, 0.8)], date_after="2024-03-01")
    ledger.add_detections(older, "mar", today=T0)
    c = ledger.cases().set_index("case_id").loc["YB-2024-000001"]
    assert c["patch_id"] == "n1" and c["n_detections"] == 3


def test_new_cases_continue_the_serial(three):
    ledger, _ = three
    res = ledger.add_detections(make_patches([("p7", 60, 60)]), "r2", today=T0)
    assert res.case_ids == ("YB-2024-000004",)


def test_custom_prefix(tmp_path):
    led = Ledger(tmp_path / "k.gpkg", id_prefix="KS")
    res = led.add_detections(make_patches([("a", 0, 0)]), "r", today=T0)
    assert res.case_ids == ("KS-2024-000001",)
    assert Ledger(tmp_path / "k.gpkg").id_prefix == "KS"  # fixed at creation


def test_empty_input_writes_nothing(ledger):
    empty = make_patches([("a", 0, 0)]).iloc[:0]
    assert ledger.add_detections(empty, "r") == AddResult(0, 0, 0, 0, "r", ())


@pytest.mark.parametrize("column", ["zone", "patch_id", "date_after"])
def test_missing_column_is_named(ledger, column):
    p = make_patches([("a", 0, 0)]).drop(columns=column)
    with pytest.raises(InputDataError, match=f"lack column.*'{column}'"):
        ledger.add_detections(p, "r")


def test_bad_inputs(ledger):
    p = make_patches([("a", 0, 0), ("b", 5, 0)])
    with pytest.raises(MissingCRSError, match="patches has no coordinate reference system"):
        ledger.add_detections(p.set_crs(None, allow_override=True), "r")
    with pytest.raises(InputDataError, match="GeoDataFrame"):
        ledger.add_detections(pd.DataFrame(p.drop(columns="geometry")), "r")
    with pytest.raises(DuplicateIDError, match=r"repeat patch_id \['a'\]"):
        ledger.add_detections(p.assign(patch_id=["a", "a"]), "r")
    with pytest.raises(DuplicateIDError, match="missing patch_id"):
        ledger.add_detections(p.assign(patch_id=["a", None]), "r")
    bad = p.copy()
    bad.loc[1, "geometry"] = Polygon()
    with pytest.raises(GeometryError, match=r"\['b'\] have no geometry"):
        ledger.add_detections(bad, "r")
    line = p.copy()
    line.loc[1, "geometry"] = shapely.LineString([(X0, Y0), (X0 + S, Y0)])
    with pytest.raises(GeometryError, match="patch b: geometry is a LineString"):
        ledger.add_detections(line, "r")
    with pytest.raises(InputDataError, match="patch a: date_after: cannot read"):
        ledger.add_detections(p.assign(date_after=["soon", "2024-05-01"]), "r")
    with pytest.raises(InputDataError, match="run_id"):
        ledger.add_detections(p, " ")
    assert len(ledger.cases()) == 0 and len(ledger.events()) == 0


def test_invalid_geometry_is_repaired_with_a_warning(ledger):
    p = make_patches([("bow", 0, 0)])
    x, y = X0, Y0
    p.loc[0, "geometry"] = Polygon([(x, y), (x + S, y + S), (x + S, y), (x, y + S)])  # bowtie
    with pytest.warns(GeometryRepairedWarning, match="bow"):
        ledger.add_detections(p, "r", today=T0)
    g = ledger.cases().geometry.iloc[0]
    assert g.is_valid and g.geom_type == "MultiPolygon" and len(g.geoms) == 2


# --------------------------------------------------------------------------- lifecycle


def test_advance_records_events_and_refuses_invalid_transitions(three):
    ledger, _ = three
    c = ledger.advance("YB-2024-000002", "confirm", today=dt.date(2024, 5, 20), actor="张三",
                       real_type="矿产资源开发", responsible_unit="某镇政府",
                       deadline="2024-08-31", attachments=["photos/1.jpg"])  # fmt: skip
    assert c.status is Status.CONFIRMED and c.real_type == "mining"
    assert c.deadline == dt.date(2024, 8, 31)
    with pytest.raises(LedgerTransitionError, match="allowed next states: rectifying"):
        ledger.advance("YB-2024-000002", "close")
    with pytest.raises(LedgerTransitionError, match="come from add_detections"):
        ledger.advance("YB-2024-000002", "rebound")
    with pytest.raises(LedgerError, match="no case 'YB-2099-000001'"):
        ledger.advance("YB-2099-000001", "dispatch")
    with pytest.raises(InputDataError, match="not an HJ 1156"):
        ledger.advance("YB-2024-000001", "confirm", real_type="farming?")
    ev = ledger.events("YB-2024-000002")
    assert list(ev["seq"]) == [1, 2]
    last = ev.iloc[-1]
    assert last["actor"] == "张三" and last["attachments"] == ["photos/1.jpg"]
    assert last["data"]["change_type"] == "bare_soil"  # snapshot for precision
    assert ledger.check().ok


def test_events_are_append_only(three):
    ledger, _ = three
    con = sqlite3.connect(ledger.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute("UPDATE events SET kind='close'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute("DELETE FROM events")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute("DELETE FROM detections")
    finally:
        con.close()


def test_colours_and_summary(three):
    ledger, _ = three
    ledger.advance("YB-2024-000001", "confirm", today=dt.date(2024, 5, 20),
                   real_type="industry", deadline=dt.date(2024, 6, 15))  # fmt: skip
    ledger.advance("YB-2024-000003", "dismiss", today=dt.date(2024, 5, 20))
    today = dt.date(2024, 6, 1)
    c = ledger.cases(today=today).set_index("case_id")
    assert c["colour"].to_dict() == {
        "YB-2024-000001": "yellow",  # deadline in 14 days
        "YB-2024-000002": "green",  # detected 22 days ago
        "YB-2024-000003": "green",  # false alarm
    }
    assert ledger.cases(today=dt.date(2024, 6, 20)).set_index("case_id")["colour"].to_dict() == {
        "YB-2024-000001": "red",  # overdue
        "YB-2024-000002": "yellow",  # 41 days without dispatch
        "YB-2024-000003": "green",
    }
    s = ledger.summary(today=dt.date(2024, 6, 20))
    assert list(s.columns) == ["dimension", "key", "label", "n_cases", "area_m2", "area_mu"]
    total = s[s.dimension == "all"].iloc[0]
    assert total["n_cases"] == 3
    for dim in ("status", "colour", "change_type", "reserve", "zone"):
        part = s[s.dimension == dim]
        assert part["n_cases"].sum() == 3
        assert part["area_m2"].sum() == pytest.approx(total["area_m2"])
    st = s[s.dimension == "status"].set_index("key")
    assert len(st) == 8 and st.loc["closed", "n_cases"] == 0
    assert st.loc["confirmed", "label"] == "已确认"
    col = s[s.dimension == "colour"].set_index("key")["n_cases"].to_dict()
    assert col == {"red": 1, "yellow": 1, "green": 1}
    assert np.allclose(s["area_mu"], s["area_m2"] * 15 / 10_000)
    z = s[s.dimension == "zone"].set_index("key")
    assert z.loc["buffer", "label"] == "缓冲区" and z.loc["buffer", "n_cases"] == 1
    filtered = ledger.cases(status=["已确认", "false_alarm"])
    assert sorted(filtered["case_id"]) == ["YB-2024-000001", "YB-2024-000003"]


def test_precision_from_verdicts(three):
    ledger, _ = three
    assert ledger.precision()["checked"].tolist() == [0]
    ledger.advance("YB-2024-000001", "confirm", today=T0, real_type="industry")
    ledger.advance("YB-2024-000002", "dismiss", today=T0)
    ledger.advance("YB-2024-000003", "dismiss", today=T0)
    p = ledger.precision()
    assert p[["confirmed", "false_alarm", "checked"]].iloc[0].tolist() == [1, 2, 3]
    assert p["precision"].iloc[0] == pytest.approx(1 / 3)
    by_type = ledger.precision(by="change_type").set_index("change_type")
    assert by_type.loc["construction", "precision"] == 0.5
    assert by_type.loc["bare_soil", "precision"] == 0.0
    by_zone = ledger.precision(by="zone").set_index("zone")
    assert by_zone.loc["core", "checked"] == 2
    with pytest.raises(ValueError, match="by='colour' is not allowed"):
        ledger.precision(by="colour")


# --------------------------------------------------------------------------- mines


def _mines(rate=0.5):
    return gpd.GeoDataFrame(
        {
            "patch_id": ["M01", "M02"], "area_m2": [5.0e4, 8.0e4], "damaged_m2": [2.0e4, 3.0e4],
            "restored_m2": [1.0e4, 2.0e4], "restoration_rate": [rate, 0.667],
            "status": ["restoring", "restored"], "fvc_before": [0.2, 0.3], "fvc_after": [0.4, 0.6],
            "valid_fraction": [0.98, 1.0], "date_before": ["2023-05-01", "2023-05-01"],
            "date_after": ["2024-05-01", "2024-05-01"], "mine_name": ["东山采石场", "西山采石场"],
        },
        geometry=[box(X0, Y0, X0 + S, Y0 + S), box(X0 + 2 * S, Y0, X0 + 3 * S, Y0 + S)],
        crs="EPSG:4490",
    )  # fmt: skip


def test_record_assessment_and_history(ledger):
    r = ledger.record_assessment(_mines(), "assess-2024")
    assert (r.added, r.unchanged) == (2, 0)
    assert ledger.record_assessment(_mines(), "assess-2024").unchanged == 2
    m2025 = _mines(0.8).assign(date_after=["2025-05-01"] * 2)
    ledger.record_assessment(m2025, "assess-2025")
    h = ledger.mine_history("M01")
    assert list(h["run_id"]) == ["assess-2024", "assess-2025"]
    assert list(h["restoration_rate"]) == [0.5, 0.8]
    assert h["date_after"].iloc[1] == dt.date(2025, 5, 1)
    assert h["attrs"].iloc[0] == {"mine_name": "东山采石场"}
    assert len(ledger.mine_history()) == 4
    with pytest.raises(InputDataError, match=r"lacks column\(s\) \['fvc_after'\]"):
        ledger.record_assessment(_mines().drop(columns="fvc_after"), "x")
    with pytest.raises(DuplicateIDError):
        ledger.record_assessment(_mines().assign(patch_id=["M01", "M01"]), "x")


# --------------------------------------------------------------------------- check and locks


def test_check_finds_tampering(three):
    ledger, _ = three
    assert ledger.check().ok
    con = sqlite3.connect(ledger.path)
    con.execute("UPDATE cases SET status='closed' WHERE case_id='YB-2024-000002'")
    con.execute("DROP TRIGGER events_no_update")
    con.execute("UPDATE events SET seq=5 WHERE case_id='YB-2024-000003'")
    con.execute(
        "INSERT INTO events (case_id, seq, kind, to_status, on_date, recorded_at) "
        "VALUES ('YB-1999-000001', 1, 'detect', 'detected', '2024-01-01', 'x')"
    )
    con.commit()
    con.close()
    report = ledger.check()
    assert not report.ok
    text = str(report)
    assert "YB-2024-000002: stored" in text
    assert "YB-2024-000003: event sequence [5]" in text
    assert "events of unknown case(s) ['YB-1999-000001']" in text
    with pytest.raises(LedgerIntegrityError, match="problem"):
        ledger.check(raise_on_error=True)


def test_check_finds_a_damaged_file(three):
    ledger, _ = three
    con = sqlite3.connect(ledger.path)
    page_size, n_pages = (
        con.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "page_count")
    )
    assert con.execute("PRAGMA freelist_count").fetchone()[0] == 0
    con.close()
    data = bytearray(ledger.path.read_bytes())
    page = n_pages // 2  # 0-based: a b-tree page in use, well past the file header
    data[page * page_size : page * page_size + 16] = b"\xff" * 16
    ledger.path.write_bytes(bytes(data))
    report = Ledger(ledger.path).check()
    assert not report.ok
    assert "malformed" in str(report) or "integrity_check" in str(report)
    with pytest.raises(LedgerIntegrityError):
        report.raise_if_failed()


def test_a_held_lock_gives_ledger_locked_error(three):
    ledger, _ = three
    holder = sqlite3.connect(ledger.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        impatient = Ledger(ledger.path, timeout_s=0.2)
        with pytest.raises(LedgerLockedError, match="locked by another process.*0.2 s"):
            impatient.add_detections(make_patches([("z", 70, 70)]), "locked", today=T0)
        with pytest.raises(LedgerLockedError):
            impatient.advance("YB-2024-000001", "dispatch")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(ledger.cases()) == 3 and len(ledger.events()) == 3


def test_reading_does_not_warn(three):
    ledger, _ = three
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ledger.cases()
        ledger.events()
        ledger.detections()
        ledger.summary()


def test_transformer_axis_order_sanity():
    # EPSG:4490 is lat-first in its definition; ecopatch always uses x = lon
    x, y = transformer("EPSG:4490", "EPSG:4549").transform(120.0, 30.0)
    assert x == pytest.approx(500_000, abs=1) and y > 3_000_000
