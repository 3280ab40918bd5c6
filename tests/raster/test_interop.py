"""Acceptance (issue 23): imagery held in memory gives the analyses' results of the files it was read from.

The bundled sample scenes (Sentinel-2 L2A SAFE folders: 10 m bands, 20 m SWIR
and SCL) are read into arrays with rasterio (digital numbers, the 20 m bands
repeated onto the 10 m grid as the file reader does), wrapped in the layouts
users hold them in (a rioxarray-style Dataset, an odc-stac-style Dataset with
a time coordinate, a stackstac-style DataArray with a band dimension, numpy
arrays with a transform, an open rasterio dataset), and run through
``assess_restoration`` and ``detect_changes``: per mine and per patch the
results agree with the files' within 0.5 %.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shapely

import ecopatch

xr = pytest.importorskip("xarray")

#: Agreement asked of in-memory inputs against the files (issue 23): 0.5 %.
TOL = 0.005
#: Per-mine columns compared: areas (m², relative to the mine's area) and shares (0-1).
AREA_COLUMNS = ["observed_m2", "damaged_m2", "restored_m2", "still_bare_m2", "veg_before_m2", "veg_after_m2",
                "water_before_m2", "water_after_m2", "degraded_m2"]
SHARE_COLUMNS = ["restoration_rate", "fvc_before", "fvc_after", "valid_fraction"]
S2_IDS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir1": "B11", "swir2": "B12"}


def _quiet(func: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


def _dn(path: str, index: int, shape: tuple[int, int]) -> np.ndarray:
    """Band ``index`` of ``path`` as digital numbers, coarser bands repeated onto ``shape`` (aligned grids)."""
    import rasterio

    with rasterio.open(path) as ds:
        a = ds.read(index)
    k = shape[0] // a.shape[0]
    if k > 1:
        a = np.repeat(np.repeat(a, k, axis=0), k, axis=1)
    return np.ascontiguousarray(a[: shape[0], : shape[1]])


class Read:
    """One sample scene as arrays: DN per band role, the SCL band, and how DN become reflectance."""

    def __init__(self, scene: Any) -> None:
        import rasterio

        g = scene.grid
        self.scene, self.grid, self.date = scene, g, scene.date
        self.dn = {n: _dn(r.path, r.index, g.shape) for n, r in scene.band_refs}
        self.scl = _dn(scene.mask.path, scene.mask.index, g.shape)
        with rasterio.open(scene.mask.path) as ds:
            self.scl20 = ds.read(scene.mask.index)  # at its own 20 m
        ref = scene.band("red")
        self.scale, self.offset, self.nodata = ref.scale, ref.offset, ref.nodata
        assert all(scene.band(n).scale == self.scale and scene.band(n).offset == self.offset for n in self.dn)
        t = g.transform
        self.x = t.c + t.a * (np.arange(g.width) + 0.5)
        self.y = t.f + t.e * (np.arange(g.height) + 0.5)

    def coords(self) -> dict[str, Any]:
        return {"y": self.y, "x": self.x}

    def spatial_ref(self) -> Any:
        return xr.DataArray(0, attrs={"crs_wkt": self.grid.crs.to_wkt(), "spatial_ref": self.grid.crs.to_wkt()})

    def rioxarray_dataset(self) -> Any:
        """``rioxarray.open_rasterio(..., band_as_variable=True)`` merged: one variable per band, CF attributes."""
        attrs = {"scale_factor": self.scale, "add_offset": self.offset, "_FillValue": self.nodata,
                 "grid_mapping": "spatial_ref"}
        data = {n: xr.DataArray(v, dims=("y", "x"), attrs=dict(attrs)) for n, v in self.dn.items()}
        data["scl"] = xr.DataArray(self.scl, dims=("y", "x"), attrs={"grid_mapping": "spatial_ref"})
        return xr.Dataset(data, coords={**self.coords(), "spatial_ref": self.spatial_ref()},
                          attrs={"date": self.date.isoformat()})

    def odc_stac_dataset(self) -> Any:
        """``odc.stac.load``: variables by STAC common name (swir16, swir22, scl), dims (time, y, x), no scale."""
        names = {"swir1": "swir16", "swir2": "swir22"}
        data = {names.get(n, n): xr.DataArray(v[None], dims=("time", "y", "x"), attrs={"nodata": 0})
                for n, v in self.dn.items()}
        data["scl"] = xr.DataArray(self.scl[None], dims=("time", "y", "x"), attrs={"nodata": 0})
        time = np.array([np.datetime64(f"{self.date.isoformat()}T02:35:51")])
        return xr.Dataset(data, coords={"time": time, **self.coords(), "spatial_ref": self.spatial_ref()})

    def stackstac_array(self) -> Any:
        """``stackstac.stack``: one DataArray (time, band, y, x), band IDs as the band coordinate, CRS in attrs."""
        ids = [S2_IDS[n] for n in self.dn] + ["SCL"]
        stack = np.stack([*self.dn.values(), self.scl])[None]
        time = np.array([np.datetime64(f"{self.date.isoformat()}T02:35:51")])
        t = self.grid.transform
        return xr.DataArray(stack, dims=("time", "band", "y", "x"),
                            coords={"time": time, "band": ids, **self.coords(), "epsg": self.grid.crs.to_epsg()},
                            attrs={"crs": f"epsg:{self.grid.crs.to_epsg()}", "transform": tuple(t)[:6]})


@pytest.fixture(scope="module")
def files(sample):
    before = _quiet(ecopatch.open_scene, sample.products["before"])
    after = _quiet(ecopatch.open_scene, sample.products["after"])
    mines = _quiet(ecopatch.read_patches, sample.mines, id_field="矿山编号")
    reserves = _quiet(ecopatch.read_patches, sample.reserves)
    table = _quiet(ecopatch.assess_restoration, before, after, mines, progress=False)
    patches = _quiet(ecopatch.detect_changes, before, after, reserves=reserves, progress=False)
    # an SCL brought onto the 10 m grid grows its clouds on 10 m pixels, the file reader on the SCL's own
    # 20 m ones: the buffers' shapes differ (up to 0.9 % of a small mine's observed area on this sample).
    # The xarray layouts, which hold every band on one grid, are compared with both read unbuffered.
    b0 = _quiet(ecopatch.open_scene, sample.products["before"], cloud_buffer_m=0)
    a0 = _quiet(ecopatch.open_scene, sample.products["after"], cloud_buffer_m=0)
    unbuffered = {"mines": mines, "reserves": reserves,
                  "table": _quiet(ecopatch.assess_restoration, b0, a0, mines, progress=False),
                  "patches": _quiet(ecopatch.detect_changes, b0, a0, reserves=reserves, progress=False)}
    return {"before": before, "after": after, "mines": mines, "reserves": reserves, "table": table,
            "patches": patches, "reads": (Read(before), Read(after)), "unbuffered": unbuffered}


def assert_same_assessment(got: pd.DataFrame, want: pd.DataFrame, tol: float = TOL) -> None:
    """Per mine, within ``tol``: areas relative to the mine's area, shares absolutely; same status."""
    got, want = got.set_index("patch_id"), want.set_index("patch_id")
    assert list(got.index) == list(want.index)
    scale = want["area_m2"].to_numpy()
    for col in AREA_COLUMNS:
        diff = np.abs(got[col].to_numpy(float) - want[col].to_numpy(float))
        assert np.all(np.nan_to_num(diff) <= tol * scale), (col, (diff / scale).max())
    for col in SHARE_COLUMNS:
        a, b = got[col].to_numpy(float), want[col].to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), col
        assert np.nanmax(np.abs(a - b), initial=0.0) <= tol, (col, np.nanmax(np.abs(a - b)))
    assert (got["status"] == want["status"]).mean() >= 0.9  # a rate on a threshold may tip within the tolerance
    assert list(got["date_before"]) == list(want["date_before"])
    assert list(got["date_after"]) == list(want["date_after"])


def assert_same_patches(got: Any, want: Any) -> None:
    """The same patches: their union differs from the files' by at most :data:`TOL` of its area."""
    assert len(want) > 0
    assert abs(len(got) - len(want)) <= max(1, round(TOL * len(want)))
    a = shapely.union_all(got.geometry.to_numpy())
    b = shapely.union_all(want.geometry.to_numpy())
    assert shapely.symmetric_difference(a, b).area <= TOL * b.area, shapely.symmetric_difference(a, b).area / b.area
    assert abs(got["area_m2"].sum() - want["area_m2"].sum()) <= TOL * want["area_m2"].sum()
    assert sorted(got["change_type"]) == sorted(want["change_type"])


def _run(files: dict[str, Any], before: Any, after: Any) -> None:
    table = _quiet(ecopatch.assess_restoration, before, after, files["mines"], progress=False)
    assert_same_assessment(table, files["table"])
    patches = _quiet(ecopatch.detect_changes, before, after, reserves=files["reserves"], progress=False)
    assert_same_patches(patches, files["patches"])


def test_a_rioxarray_dataset_gives_the_files_results(files):
    rb, ra = files["reads"]
    before = ecopatch.open_scene(rb.rioxarray_dataset(), cloud_buffer_m=0)
    after = ecopatch.open_scene(ra.rioxarray_dataset(), cloud_buffer_m=0)
    assert before.mask_status["kind"] == "scl" and before.date == rb.date
    _run(files["unbuffered"], before, after)


def test_the_analyses_take_an_xarray_dataset_as_it_is(files):
    """No open_scene needed: the analyses make the source themselves (SCL grown by 20 m, as for files)."""
    rb, ra = files["reads"]
    ds_b, ds_a = rb.rioxarray_dataset(), ra.rioxarray_dataset()
    direct = _quiet(ecopatch.assess_restoration, ds_b, ds_a, files["mines"], progress=False)
    opened = _quiet(ecopatch.assess_restoration, ecopatch.open_scene(ds_b), ecopatch.open_scene(ds_a),
                    files["mines"], progress=False)
    pd.testing.assert_frame_equal(pd.DataFrame(direct.drop(columns="geometry")),
                                  pd.DataFrame(opened.drop(columns="geometry")))
    assert_same_assessment(direct, files["table"], tol=1e-9)  # identical: SCL grown on its own 20 m pixels


def test_an_odc_stac_dataset_with_a_time_coordinate_gives_the_files_results(files):
    rb, ra = files["reads"]
    before = ecopatch.open_scene(rb.odc_stac_dataset(), scale=rb.scale, offset=rb.offset, cloud_buffer_m=0)
    after = ecopatch.open_scene(ra.odc_stac_dataset(), scale=ra.scale, offset=ra.offset, cloud_buffer_m=0)
    assert before.date == rb.date and after.date == ra.date
    assert before.mask_status["kind"] == "scl"
    _run(files["unbuffered"], before, after)


def test_a_stackstac_dataarray_with_a_band_dimension_gives_the_files_results(files):
    rb, ra = files["reads"]
    before = ecopatch.open_scene(rb.stackstac_array(), sensor="sentinel2_l2a", offset=rb.offset, cloud_buffer_m=0)
    after = ecopatch.open_scene(ra.stackstac_array(), sensor="sentinel2_l2a", offset=ra.offset, cloud_buffer_m=0)
    assert set(before.bands) == set(S2_IDS)
    _run(files["unbuffered"], before, after)


def test_numpy_arrays_with_a_transform_give_the_files_results(files):
    rb, ra = files["reads"]

    def wrap(r: Read) -> Any:
        stack = np.stack(list(r.dn.values()))
        return ecopatch.open_scene(stack, bands=list(r.dn), date=r.date, transform=r.grid.transform,
                                   crs=r.grid.crs, scale=r.scale, offset=r.offset, nodata=r.nodata,
                                   cloud_mask=(r.scl20, "scl"), cloud_buffer_m=20)

    _run(files, wrap(rb), wrap(ra))


def test_open_rasterio_datasets_work(files, tmp_path):
    """A dataset on disk is read as its file (same results); one in memory through arrays."""
    import rasterio
    from rasterio.io import MemoryFile

    rb, ra = files["reads"]
    paths = []
    for r in (rb, ra):
        p = tmp_path / f"stack_{r.date:%Y%m%d}.tif"
        prof = dict(driver="GTiff", height=r.grid.height, width=r.grid.width, count=len(r.dn), dtype="uint16",
                    crs=r.grid.crs, transform=r.grid.transform, nodata=0)
        with rasterio.open(p, "w", **prof) as ds:
            ds.write(np.stack(list(r.dn.values())))
            for i, n in enumerate(r.dn, start=1):
                ds.set_band_description(i, n)
        paths.append(p)
    with rasterio.open(paths[0]) as ds:
        scene = _quiet(ecopatch.open_scene, ds, sensor="sentinel2_l2a", date=rb.date)
        assert type(scene).__name__ == "Scene" and scene.source == str(paths[0])
    with MemoryFile(paths[0].read_bytes()) as mb, MemoryFile(paths[1].read_bytes()) as ma:
        with mb.open() as db, ma.open() as da:
            before = ecopatch.open_scene(db, date=rb.date, scale=rb.scale, offset=rb.offset,
                                         cloud_mask=(rb.scl20, "scl"), cloud_buffer_m=20)
            after = ecopatch.open_scene(da, date=ra.date, scale=ra.scale, offset=ra.offset,
                                        cloud_mask=(ra.scl20, "scl"), cloud_buffer_m=20)
            assert set(before.bands) == set(rb.dn)
            _run(files, before, after)
