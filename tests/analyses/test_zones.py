"""The reserves' zones: the minimum mapping unit of each zone, the zone field found by its usual names."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from ecopatch.analyses.zones import find_field, has_core_zone, outside_core_unit
from ecopatch.errors import ConfigError, InputDataError
from ecopatch.options import DetectOptions


def _patches(rows):
    df = pd.DataFrame(rows, columns=["zone", "area_m2", "change_m2"])
    return gpd.GeoDataFrame(df, geometry=[shapely.box(i, 0, i + 1, 1) for i in range(len(df))], crs="EPSG:32650")


def test_outside_core_zones_the_general_unit_holds():
    p = _patches([
        ("core", 450.0, 300.0),          # small, but in a core zone: kept
        ("buffer", 450.0, 300.0),        # small: dropped
        ("experimental", 1500.0, 400.0),  # outline big enough, too little of it changed: dropped
        ("experimental", 1500.0, 600.0),  # kept
        ("outside", 999.0, 999.0),       # just under: dropped
        (None, 1000.0, 500.0),           # no zone field: the general unit, met exactly
    ])
    out = outside_core_unit(p, 1000.0)
    assert list(out["zone"][:2]) == ["core", "experimental"] and pd.isna(out["zone"].iloc[2])
    assert list(out["area_m2"]) == [450.0, 1500.0, 1000.0]
    assert out.index.tolist() == [0, 1, 2] and out.crs == p.crs
    assert outside_core_unit(p.iloc[:0], 1000.0).empty
    assert len(outside_core_unit(p, 0.0)) == len(p)


def test_core_zones_are_known_by_their_usual_names():
    z = pd.DataFrame({"功能分区": ["实验区", "缓冲区"]})
    assert not has_core_zone(z, "功能分区")
    assert has_core_zone(pd.DataFrame({"功能分区": ["实验区", "核心保护区"]}), "功能分区")
    assert has_core_zone(pd.DataFrame({"zone": ["Core Zone"]}), "zone")
    assert not has_core_zone(pd.DataFrame({"zone": ["核心区"]}), None)


def test_the_units_follow_the_pixels_and_the_core_unit_is_the_smaller():
    d = DetectOptions()
    assert d.min_area_m2 == "auto" and d.core_min_area_m2 == 400.0
    # "auto": ten cells within 400-1000 m²
    assert d.units_m2(100.0) == (1000.0, 400.0)    # Sentinel-2, 10 m
    assert d.units_m2(99.88) == (1000.0, 400.0)    # ... a 10 m UTM cell's true area
    assert d.units_m2(63.9) == (640.0, 400.0)      # 8 m, rounded to 10 m²
    assert d.units_m2(900.0) == (1000.0, 400.0)    # Landsat, 30 m
    assert d.units_m2(64.0) == (640.0, 400.0)      # Gaofen-1 multispectral, 8 m
    assert d.units_m2(16.0) == (400.0, 400.0)      # Gaofen-2 multispectral, 4 m
    assert d.units_m2(0.01) == (400.0, 400.0)      # a drone mosaic
    assert DetectOptions(min_area_m2=200).units_m2(100.0) == (200.0, 200.0)  # a finer unit applies everywhere
    assert DetectOptions(min_area_m2=5000, core_min_area_m2=None).units_m2(1.0) == (5000.0, 5000.0)
    assert DetectOptions(min_area_mu=3).units_m2(1.0) == (2000.0, 400.0)
    assert DetectOptions(min_area_m2=None).units_m2(100.0) == (0.0, 0.0)
    assert DetectOptions(core_min_area_m2=100).units_m2(100.0) == (1000.0, 100.0)
    with pytest.raises(ConfigError, match=r"minimum mapping unit -5\.0 m² \(core_min_area_m2\)"):
        DetectOptions(core_min_area_m2=-5)
    with pytest.raises(ConfigError, match="core_min_area_m2"):
        DetectOptions(core_min_area_m2=np.nan)
    with pytest.raises(ConfigError, match=r"'big' m² \(min_area_m2\): must be a number >= 0 or \"auto\""):
        DetectOptions(min_area_m2="big")


def test_the_zone_field_is_named_or_found():
    z = gpd.GeoDataFrame({"功能分区": ["核心区"], "名称": ["x"]}, geometry=[shapely.box(0, 0, 1, 1)])
    assert find_field(z, "auto", ("功能分区", "zone"), "zone") == "功能分区"
    assert find_field(z, None, ("功能分区",), "zone") is None
    with pytest.raises(InputDataError, match=r"no field 'zone'.*the fields are \['功能分区', '名称'\]"):
        find_field(z, "zone", ("zone",), "zone")
    with pytest.raises(InputDataError, match="pass zone_field='<field>' or None"):
        find_field(z.drop(columns="功能分区"), "auto", ("功能分区", "zone"), "zone")
