"""Assertions for tests of code that uses ecopatch, like ``geopandas.testing`` and ``xarray.testing``.

A bureau's scripts and the tools that import ecopatch compare its tables in
their own tests: the same mines assessed from files and from an xarray
Dataset, a run before and after an upgrade, a site's results against last
month's.  These helpers compare what matters with stated tolerances and say
which row and which column differ::

    from ecopatch.testing import assert_restoration_close, assert_patches_close

    assert_restoration_close(from_xarray, from_files, rtol=0.005)
    assert_patches_close(new_patches, old_patches, min_iou=0.9)

Areas are compared in the tables' own area columns (m², mu), which ecopatch
computes as true ground areas whatever the CRS; outlines are compared by
the true ground area of their overlap (:func:`ecopatch.geo.geodesy.geodesic_area_m2`),
so two tables in different CRSs compare as the same ground.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["assert_patches_close", "assert_restoration_close", "assert_tables_close"]

#: Columns that name a time or a place on disk, never compared.
_VOLATILE = ("reference_scene", "path", "source", "run_at", "recorded_at", "updated_at")


def _fail(what: str, problems: Sequence[str], limit: int = 20) -> None:
    shown = list(problems[:limit])
    more = len(problems) - len(shown)
    tail = f"\n  ... and {more} more" if more > 0 else ""
    raise AssertionError(f"{what}: {len(problems)} difference(s)\n  " + "\n  ".join(shown) + tail)


def assert_tables_close(
    actual: pd.DataFrame,
    expected: pd.DataFrame,
    *,
    key: str | None = None,
    rtol: float = 1e-9,
    atol: float = 0.0,
    columns: Sequence[str] | None = None,
    ignore: Sequence[str] = _VOLATILE,
    what: str = "tables",
) -> None:
    """Assert that two result tables hold the same rows: text equal, numbers within tolerance.

    Parameters
    ----------
    actual, expected : pandas.DataFrame
        Tables to compare (a ``geometry`` column is skipped: compare geometries
        with :func:`assert_patches_close`).
    key : str, optional
        Column that identifies a row (e.g. ``"patch_id"``); rows are matched on
        it, whatever their order.  Without it rows are compared in order.
    rtol, atol : float
        Numbers agree when ``|a - e| <= atol + rtol * |e|``; NaN equals NaN.
        The tolerance is in each column's own unit (m², mu, a fraction).
    columns : sequence of str, optional
        Only these columns; by default every column of ``expected``.
    ignore : sequence of str
        Columns never compared (paths, run stamps).
    what : str
        What the tables are, for the message.

    Raises
    ------
    AssertionError
        Listing each missing or extra row or column and each differing cell.
    """
    problems: list[str] = []
    cols = [c for c in (columns if columns is not None else expected.columns) if c != "geometry" and c not in ignore]
    missing_cols = [c for c in cols if c not in actual.columns]
    problems += [f"column {c!r} missing" for c in missing_cols]
    cols = [c for c in cols if c not in missing_cols]
    if key is not None:
        for name, df in (("actual", actual), ("expected", expected)):
            if key not in df.columns:
                raise AssertionError(f"{what}: the {name} table has no key column {key!r}")
            if df[key].duplicated().any():
                raise AssertionError(f"{what}: the {name} table repeats values of its key column {key!r}")
        a = actual.set_index(key, drop=False)
        e = expected.set_index(key, drop=False)
        problems += [f"row {k!r} missing" for k in e.index.difference(a.index)]
        problems += [f"row {k!r} not expected" for k in a.index.difference(e.index)]
        common = e.index.intersection(a.index, sort=False)
        a, e = a.loc[common], e.loc[common]
    else:
        if len(actual) != len(expected):
            _fail(what, [f"{len(actual)} rows, expected {len(expected)}"])
        a, e = actual.reset_index(drop=True), expected.reset_index(drop=True)
    for c in cols:
        av, ev = a[c], e[c]
        numeric = pd.api.types.is_numeric_dtype(ev) and pd.api.types.is_numeric_dtype(av)
        if numeric and not pd.api.types.is_bool_dtype(ev):
            x = av.to_numpy(dtype="float64", na_value=np.nan)
            y = ev.to_numpy(dtype="float64", na_value=np.nan)
            bad = ~(np.isclose(x, y, rtol=rtol, atol=atol) | (np.isnan(x) & np.isnan(y)))
            rows = map(int, np.flatnonzero(bad))
            problems += [f"row {a.index[i]!r}, column {c!r}: {x[i]!r} != {y[i]!r}" for i in rows]
        else:
            xs = av.astype("object").where(av.notna(), None).tolist()
            ys = ev.astype("object").where(ev.notna(), None).tolist()
            problems += [
                f"row {a.index[i]!r}, column {c!r}: {x!r} != {y!r}" for i, (x, y) in enumerate(zip(xs, ys)) if x != y
            ]
    if problems:
        _fail(what, problems)


def assert_restoration_close(
    actual: pd.DataFrame,
    expected: pd.DataFrame,
    *,
    rtol: float = 0.005,
    atol_m2: float = 1.0,
    key: str = "patch_id",
) -> None:
    """Assert that two :func:`ecopatch.assess_restoration` tables agree mine by mine.

    Parameters
    ----------
    actual, expected : pandas.DataFrame
        Restoration tables (one row per mine).
    rtol : float
        Relative tolerance of every numeric column (default 0.5 %).
    atol_m2 : float
        Absolute tolerance of the area columns, m² (mu columns get the same
        area in mu); other numbers (rates, FVC, fractions) get ``rtol`` only,
        plus 1e-6.
    key : str
        Column identifying a mine.

    Raises
    ------
    AssertionError
        Naming each mine and column that differ.
    """
    problems: list[str] = []
    for cols, atol in (
        ([c for c in expected.columns if c.endswith("_m2")], atol_m2),
        ([c for c in expected.columns if c.endswith("_mu")], atol_m2 / 666.6666666666666),
    ):
        try:
            assert_tables_close(actual, expected, key=key, rtol=rtol, atol=atol, columns=cols, what="restoration")
        except AssertionError as exc:
            problems.append(str(exc))
    rest = [c for c in expected.columns if not c.endswith(("_m2", "_mu"))]
    try:
        assert_tables_close(actual, expected, key=key, rtol=rtol, atol=1e-6, columns=rest, what="restoration")
    except AssertionError as exc:
        problems.append(str(exc))
    if problems:
        raise AssertionError("\n".join(problems))


def assert_patches_close(
    actual: pd.DataFrame,
    expected: pd.DataFrame,
    *,
    min_iou: float = 0.9,
    area_rtol: float = 0.005,
    atol_m2: float = 1.0,
    same_type: bool = True,
) -> None:
    """Assert that two sets of suspect patches are the same patches, matched by overlap.

    Each expected patch must overlap exactly one actual patch with an
    intersection over union of at least ``min_iou`` (on an equal-area
    projection of the patches' region), and the reverse; matched patches must
    have the same ``change_type`` and ``area_m2`` within tolerance.

    Parameters
    ----------
    actual, expected : geopandas.GeoDataFrame
        Patch tables (:func:`ecopatch.detect_changes`), in any CRS each.
    min_iou : float
        Least intersection over union of two matched outlines.
    area_rtol, atol_m2 : float
        Tolerance of ``area_m2`` (relative, and m²).
    same_type : bool
        Also require the same ``change_type``.

    Raises
    ------
    AssertionError
        Naming each unmatched patch and each differing pair.
    """
    import shapely

    from ecopatch.geo.geodesy import geodesic_area_m2

    problems: list[str] = []
    if len(actual) != len(expected):
        problems.append(f"{len(actual)} patches, expected {len(expected)}")
    if len(actual) and len(expected):
        e_geoms = np.asarray(expected.geometry.to_crs(4326).to_numpy())
        a_geoms = np.asarray(actual.geometry.to_crs(4326).to_numpy())
        tree = shapely.STRtree(a_geoms)
        used: set[int] = set()
        for i, g in enumerate(e_geoms):
            best, best_iou = -1, 0.0
            for j in tree.query(g, predicate="intersects"):
                inter = geodesic_area_m2(shapely.intersection(g, a_geoms[j]), 4326)
                iou = float(inter / geodesic_area_m2(shapely.union(g, a_geoms[j]), 4326))
                if iou > best_iou:
                    best, best_iou = int(j), iou
            label = expected["patch_id"].iloc[i] if "patch_id" in expected.columns else i
            if best < 0 or best_iou < min_iou:
                problems.append(f"expected patch {label!r}: best overlap IoU {best_iou:.3f} < {min_iou}")
                continue
            if best in used:
                problems.append(f"expected patch {label!r} matches an actual patch already matched")
            used.add(best)
            er, ar = expected.iloc[i], actual.iloc[best]
            if same_type and "change_type" in expected.columns and er["change_type"] != ar.get("change_type"):
                problems.append(f"patch {label!r}: change_type {ar.get('change_type')!r} != {er['change_type']!r}")
            if "area_m2" in expected.columns:
                x, y = float(ar["area_m2"]), float(er["area_m2"])
                if abs(x - y) > atol_m2 + area_rtol * abs(y):
                    problems.append(f"patch {label!r}: area_m2 {x:.1f} != {y:.1f}")
        extra = sorted(set(range(len(actual))) - used)
        problems += [f"actual patch {j} matches no expected patch" for j in extra]
    if problems:
        _fail("patches", problems)
