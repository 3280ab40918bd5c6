"""ecopatch.testing: the assertions pass on equal tables and name what differs otherwise."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from ecopatch.testing import assert_patches_close, assert_restoration_close, assert_tables_close


def _restoration() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patch_id": ["KS-1", "KS-2", "KS-3"],
            "status": ["restored", "partial", "not_restored"],
            "area_m2": [12000.0, 5400.0, 800.0],
            "area_mu": [18.0, 8.1, 1.2],
            "restoration_rate": [0.91, 0.44, np.nan],
        }
    )


def _patches(crs: str = "EPSG:32650") -> gpd.GeoDataFrame:
    boxes = [shapely.box(500000, 3300000, 500100, 3300100), shapely.box(501000, 3300000, 501040, 3300050)]
    frame = gpd.GeoDataFrame(
        {"patch_id": ["P1", "P2"], "change_type": ["construction", "bare_soil"], "area_m2": [10000.0, 2000.0]},
        geometry=boxes,
        crs="EPSG:32650",
    )
    return frame.to_crs(crs)


def test_restoration_equal_in_any_row_order():
    t = _restoration()
    assert_restoration_close(t.iloc[::-1], t)


def test_restoration_within_tolerance_passes_and_beyond_fails():
    t = _restoration()
    near = t.copy()
    near.loc[0, "area_m2"] *= 1.004
    assert_restoration_close(near, t)
    far = t.copy()
    far.loc[1, "restoration_rate"] = 0.50
    with pytest.raises(AssertionError, match="'KS-2', column 'restoration_rate'"):
        assert_restoration_close(far, t)


def test_restoration_names_missing_mine_and_status():
    t = _restoration()
    with pytest.raises(AssertionError, match="row 'KS-3' missing"):
        assert_restoration_close(t.iloc[:2], t)
    other = t.copy()
    other.loc[2, "status"] = "restored"
    with pytest.raises(AssertionError, match="column 'status'"):
        assert_restoration_close(other, t)


def test_tables_nan_equals_nan_and_missing_column_is_named():
    t = _restoration()
    assert_tables_close(t.copy(), t, key="patch_id")
    with pytest.raises(AssertionError, match="column 'area_mu' missing"):
        assert_tables_close(t.drop(columns="area_mu"), t, key="patch_id")


def test_patches_same_ground_in_another_crs():
    assert_patches_close(_patches("EPSG:4490"), _patches())


def test_patches_moved_or_retyped_fail():
    moved = _patches()
    moved.loc[0, "geometry"] = shapely.box(500050, 3300000, 500150, 3300100)
    with pytest.raises(AssertionError, match="IoU"):
        assert_patches_close(moved, _patches())
    retyped = _patches()
    retyped.loc[1, "change_type"] = "water"
    with pytest.raises(AssertionError, match="change_type"):
        assert_patches_close(retyped, _patches())
    with pytest.raises(AssertionError, match="1 patches, expected 2"):
        assert_patches_close(_patches().iloc[:1], _patches())
