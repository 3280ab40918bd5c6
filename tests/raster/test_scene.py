import datetime as dt
import pickle
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from affine import Affine

from ecopatch import errors as ecopatch_errors
from ecopatch.errors import InputDataError, MissingBandError, MissingCRSError, RasterReadError
from ecopatch.geo.grid import Grid, Window
from ecopatch.raster.gdalcache import MIN_CACHE_BYTES
from ecopatch.raster.ongrid import read_on_grid
from ecopatch.raster.scene import open_scene
from ecopatch.raster.source import read_decimated
from tests.conftest import write_raster

S2_NAMES = ["B02", "B03", "B04", "B08", "B11", "B12"]


def _s2_stack(tmp_path, dn, name="s2_20210918.tif", **kw):
    return write_raster(tmp_path / name, dn, descriptions=S2_NAMES, dtype="uint16", nodata=0, **kw)


def test_multiband_with_descriptions_and_baseline_offset(tmp_path):
    dn = np.full((6, 8, 8), 2000, dtype=np.uint16)
    path = _s2_stack(tmp_path, dn, name="s2_20240912.tif", tags={"PROCESSING_BASELINE": "05.10"})
    s = open_scene(path)
    assert s.sensor.name == "sentinel2_l2a"
    assert s.bands == ("blue", "green", "red", "nir", "swir1", "swir2")
    assert s.date == dt.date(2024, 9, 12)
    assert s.grid.crs.to_epsg() == 32650
    obs = s.read(window=Window(row_off=0, col_off=0, height=2, width=2))
    np.testing.assert_allclose(obs["red"], 0.1, atol=1e-6)  # (2000 - 1000) / 10000


def test_undated_baseline_warns_after_2022(tmp_path):
    from ecopatch.errors import EcopatchWarning

    path = _s2_stack(tmp_path, np.full((6, 4, 4), 900, dtype=np.uint16), name="s2_20240912.tif")
    with pytest.warns(EcopatchWarning, match="BOA_ADD_OFFSET"):
        open_scene(path)


def test_old_baseline_has_no_offset_and_explicit_override(tmp_path):
    dn = np.full((6, 4, 4), 2000, dtype=np.uint16)
    path = _s2_stack(tmp_path, dn, tags={"PROCESSING_BASELINE": "03.01"})
    assert open_scene(path).read()["red"][0, 0] == pytest.approx(0.2)
    assert open_scene(path, offset=-0.1).read()["red"][0, 0] == pytest.approx(0.1)


def test_nodata_and_saturation_are_nan(tmp_path):
    dn = np.full((6, 4, 4), 1500, dtype=np.uint16)
    dn[:, 0, 0] = 0
    dn[2, 1, 1] = 65535
    dn[5, 3, 3] = 0  # no data in the last band read only
    s = open_scene(_s2_stack(tmp_path, dn))
    obs = s.read()
    assert not obs.valid[0, 0] and not obs.valid[1, 1] and obs.valid[2, 2] and not obs.valid[3, 3]
    # a saturated band or a gap in one band invalidates the pixel in every band, read before or after it
    for name in s.bands:
        assert np.array_equal(np.isnan(obs[name]), ~obs.valid), name


def test_band_mapping_errors_name_the_fix(tmp_path):
    path = write_raster(tmp_path / "gf1_wfv_x.tif", np.ones((3, 4, 4), dtype=np.uint16) * 500)
    with pytest.raises(MissingBandError, match="bands="):
        open_scene(path, sensor="gf1_wfv")
    s = open_scene(path, sensor="gf1_wfv", bands={"red": 1, "green": 2, "nir": 3})
    assert s.bands == ("green", "red", "nir")
    with pytest.raises(MissingBandError, match="file has 3 band"):
        open_scene(path, sensor="gf1_wfv", bands={"nir": 4})


def test_drone_rgb_black_collar_is_nodata(tmp_path):
    rgb = np.full((3, 10, 10), 120, dtype=np.uint8)
    rgb[:, :, :2] = 0
    path = write_raster(tmp_path / "drone.tif", rgb, crs="EPSG:4549",
                        transform=Affine(0.1, 0, 500_000, 0, -0.1, 3_345_000))
    s = open_scene(path)
    assert s.sensor.name == "drone_rgb"
    obs = s.read()
    assert obs.valid[:, 2:].all() and not obs.valid[:, :2].any()
    assert all(np.isnan(obs[b][:, :2]).all() and not np.isnan(obs[b][:, 2:]).any() for b in s.bands)


def test_bad_files(tmp_path):
    with pytest.raises(RasterReadError, match="no such file"):
        open_scene(tmp_path / "missing.tif")
    junk = tmp_path / "notes.tif"
    junk.write_text("this is not a raster")
    with pytest.raises(RasterReadError, match="cannot open as a raster"):
        open_scene(junk)
    good = _s2_stack(tmp_path, np.full((6, 64, 64), 900, dtype=np.uint16))
    trunc = tmp_path / "truncated.tif"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(RasterReadError, match="truncated"):
        s = open_scene(trunc)
        s.read()


def test_missing_crs_and_geotransform(tmp_path):
    import rasterio

    p = tmp_path / "nocrs.tif"
    with rasterio.open(p, "w", driver="GTiff", height=4, width=4, count=1, dtype="uint8",
                       transform=Affine(10, 0, 0, 0, -10, 0)) as ds:
        ds.write(np.ones((1, 4, 4), dtype=np.uint8))
    with pytest.raises(MissingCRSError, match="gdal_edit.py -a_srs"):
        open_scene(p, sensor="gf1_wfv", bands={"red": 1})
    p2 = tmp_path / "notransform.tif"
    with rasterio.open(p2, "w", driver="GTiff", height=4, width=4, count=1, dtype="uint8",
                       crs="EPSG:32650") as ds:
        ds.write(np.ones((1, 4, 4), dtype=np.uint8))
    with pytest.raises(InputDataError, match="no geotransform"):
        open_scene(p2, sensor="gf1_wfv", bands={"red": 1})


def test_scene_pickles(tmp_path):
    s = open_scene(_s2_stack(tmp_path, np.full((6, 4, 4), 900, dtype=np.uint16)))
    s2 = pickle.loads(pickle.dumps(s))
    assert s2.bands == s.bands and s2.grid == s.grid and s2.sensor == s.sensor


def test_read_on_grid_averages_a_fine_scene(tmp_path):
    # a 1 m scene, left half bright, read onto a 10 m grid: the boundary cell is the mean
    fine = np.full((3, 40, 40), 50, dtype=np.uint8)
    fine[:, :, :15] = 200
    path = write_raster(tmp_path / "drone.tif", fine, transform=Affine(1, 0, 780_000, 0, -1, 3_350_000))
    s = open_scene(path)
    g = Grid((4, 4), Affine(10, 0, 780_000, 0, -10, 3_350_000), "EPSG:32650")
    out = read_on_grid(s, g)
    red = out["red"] * 255
    np.testing.assert_allclose(red[:, 0], 200, atol=0.5)
    np.testing.assert_allclose(red[:, 1], 0.5 * 200 + 0.5 * 50, atol=0.5)
    np.testing.assert_allclose(out["valid_fraction"], 1.0)


def test_read_on_grid_other_crs_and_outside(tmp_path):
    dn = np.full((6, 50, 50), 1200, dtype=np.uint16)
    s = open_scene(_s2_stack(tmp_path, dn))
    # the same ground in CGCS2000 GK (EPSG:4549); a grid far away is all NaN
    far = Grid((3, 3), Affine(10, 0, 100_000, 0, -10, 100_000), "EPSG:32650")
    out = read_on_grid(s, far)
    assert np.isnan(out["red"]).all() and (out["valid_fraction"] == 0).all()


def test_read_decimated(tmp_path):
    s = open_scene(_s2_stack(tmp_path, np.full((6, 100, 100), 900, dtype=np.uint16)))
    obs = read_decimated(s, max_pixels=400)
    assert obs["red"].size <= 400 and obs.grid.bounds == s.grid.bounds


@pytest.mark.parametrize("layout", [dict(tiled=True, blockxsize=32, blockysize=32), dict(tiled=False, blockysize=3)])
@pytest.mark.parametrize("size", [(173, 211), (97, 64)])
@pytest.mark.parametrize("max_pixels", [400, 2_000, 5_000])
@pytest.mark.parametrize("strip_bytes", [None, 40_000])
def test_decimating_a_pixel_interleaved_file_takes_gdals_nearest_pixels(tmp_path, monkeypatch, layout, size,
                                                                         max_pixels, strip_bytes):
    """The strip-wise decimation of pixel-interleaved files samples the pixels GDAL's nearest read does.

    With ``strip_bytes`` a strip of tiles is read a run of tiles at a time (two 32 x 32 tiles of
    6 bands here), as a 10980-pixel row of 512-pixel tiles is.
    """
    import rasterio
    from rasterio.enums import Resampling

    from ecopatch.raster import quicklook

    if strip_bytes is not None:
        monkeypatch.setattr(quicklook, "_STRIP_BYTES", strip_bytes)
        bh, bw = (32, 32) if layout["tiled"] else (3, size[1])
        parts = quicklook._strip_parts(0, size[1], SimpleNamespace(tiled=layout["tiled"], block=(bh, bw)), bh * 12)
        assert parts[0][0] == 0 and parts[-1][1] == size[1] and all(a % bw == 0 for a, _ in parts)
        assert len(parts) == (1 if not layout["tiled"] or size[1] * bh * 12 <= strip_bytes else 3)
    calls = []
    strips = quicklook._decimate_in_strips
    monkeypatch.setattr(quicklook, "_decimate_in_strips", lambda *a, **kw: calls.append(1) or strips(*a, **kw))
    rng = np.random.default_rng(3)
    dn = rng.integers(1, 10_000, size=(6, *size), dtype=np.uint16)
    path = _s2_stack(tmp_path, dn, interleave="pixel", compress="deflate", **layout)
    s = open_scene(path)
    obs = read_decimated(s, max_pixels=max_pixels)
    assert calls  # the strip path was taken
    grid = obs.grid
    with rasterio.open(path) as ds:
        assert ds.interleaving.name.lower() == "pixel"
        want = ds.read([1, 2, 3, 4, 5, 6], out_shape=(6, *grid.shape), resampling=Resampling.nearest)
    # ... and it gives GDAL's pixels
    got = np.stack([obs[b] for b in s.bands])
    ref = (want.astype(np.float64) - 0) / 10_000
    np.testing.assert_allclose(got, ref, atol=1e-6)


@pytest.mark.parametrize("layout", [
    dict(interleave="pixel", tiled=True, blockxsize=32, blockysize=32),
    dict(interleave="band", tiled=True, blockxsize=32, blockysize=32),
    dict(interleave="pixel", tiled=False, blockysize=4),
    dict(interleave="band", tiled=False, blockysize=4),
])
def test_a_decimated_read_within_rectangles_decodes_only_the_blocks_under_them(tmp_path, monkeypatch, layout):
    """Pixels in the rectangles are GDAL's nearest pixels; the others NaN; blocks far from them unread."""
    import rasterio
    from rasterio.enums import Resampling

    rng = np.random.default_rng(12)
    dn = rng.integers(1, 10_000, size=(6, 256, 320), dtype=np.uint16)
    path = _s2_stack(tmp_path, dn, compress="deflate", **layout)
    s = open_scene(path)
    g = s.grid
    # two small areas: rows 10-40 x cols 20-60, and rows 200-230 x cols 280-300
    rects = [g.subgrid(Window(row_off=10, col_off=20, height=30, width=40)).bounds,
             g.subgrid(Window(row_off=200, col_off=280, height=30, width=20)).bounds]
    windows = []
    real = rasterio.io.DatasetReader.read

    def spy(self, *a, **kw):
        if kw.get("window") is not None:
            windows.append(kw["window"])
        return real(self, *a, **kw)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    obs = read_decimated(s, max_pixels=256 * 320 // 9, within=rects)
    monkeypatch.setattr(rasterio.io.DatasetReader, "read", real)
    grid = obs.grid
    with rasterio.open(path) as ds:
        want = ds.read(list(range(1, 7)), out_shape=(6, *grid.shape), resampling=Resampling.nearest)
    xs = grid.transform.c + grid.transform.a * (np.arange(grid.width) + 0.5)
    ys = grid.transform.f + grid.transform.e * (np.arange(grid.height) + 0.5)
    inside = np.zeros(grid.shape, dtype=bool)
    for left, bottom, right, top in rects:
        inside |= ((ys >= bottom) & (ys <= top))[:, None] & ((xs >= left) & (xs <= right))[None, :]
    assert 0 < inside.sum() < inside.size // 10
    got = np.stack([obs[b] for b in s.bands])
    np.testing.assert_allclose(got[:, inside], want[:, inside] / 10_000, atol=1e-6)
    assert np.isnan(got[:, ~inside]).all() and not obs.valid[~inside].any() and obs.valid[inside].all()
    # what was decoded: the blocks under the two areas, not the rows or tiles between them
    read_rows = set()
    read_cols = set()
    for w in windows:
        read_rows |= set(range(int(w.row_off), int(w.row_off + w.height)))
        read_cols |= set(range(int(w.col_off), int(w.col_off + w.width)))
    assert windows and not read_rows & set(range(64, 192))
    if layout["tiled"]:
        assert not read_cols & set(range(96, 256))


def test_a_file_of_one_row_strips_is_decimated_from_the_sampled_strips_only(tmp_path, monkeypatch):
    """GDAL writes wide multi-band rows one per strip: every k-th strip is all a decimated read needs."""
    import rasterio

    rng = np.random.default_rng(5)
    dn = rng.integers(1, 10_000, size=(6, 200, 150), dtype=np.uint16)
    path = _s2_stack(tmp_path, dn, interleave="pixel", compress="deflate", tiled=False, blockysize=1)
    s = open_scene(path)
    rows = []
    real = rasterio.io.DatasetReader.read

    def spy(self, *a, **kw):
        if kw.get("window") is not None:
            rows.append(int(kw["window"].height))
        return real(self, *a, **kw)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    obs = read_decimated(s, max_pixels=200 * 150 // 16)  # every 4th pixel
    monkeypatch.setattr(rasterio.io.DatasetReader, "read", real)
    assert obs.grid.shape == (50, 38)
    assert sum(rows) == 50  # one strip per output row, not all 200
    with rasterio.open(path) as ds:
        from rasterio.enums import Resampling

        want = ds.read(list(range(1, 7)), out_shape=(6, 50, 38), resampling=Resampling.nearest)
    np.testing.assert_allclose(np.stack([obs[b] for b in s.bands]), want / 10_000, atol=1e-6)


@pytest.mark.parametrize("shape,out", [((1000, 999), (333, 334)), ((301, 257), (100, 86)), ((700, 500), (233, 125))])
def test_strip_decimation_takes_gdals_pixels_at_exact_half_steps(tmp_path, shape, out):
    """166.5 × 1000 / 333 is 500 exactly but 499.99999999999994 in floating point: GDAL takes 500, and so must we."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import Window as RioWindow

    from ecopatch.raster import blocks, quicklook

    dn = np.arange(shape[0] * shape[1], dtype=np.uint32).reshape(1, *shape) % 65_521
    path = write_raster(tmp_path / "one.tif", dn.astype(np.uint16), dtype="uint16", tiled=True,
                        blockxsize=64, blockysize=64)
    with rasterio.open(path) as ds:
        win = RioWindow(0, 0, shape[1], shape[0])
        gdal = ds.read([1], window=win, out_shape=(1, *out), resampling=Resampling.nearest)
        ours = quicklook._decimate_in_strips(ds, [1], win, (1, *out), blocks.layout_of(ds))
    np.testing.assert_array_equal(ours, gdal)


@pytest.mark.parametrize("layout", [
    dict(interleave="pixel", tiled=True, blockxsize=32, blockysize=32),
    dict(interleave="band", tiled=True, blockxsize=16, blockysize=48),
    dict(interleave="pixel", tiled=False, blockysize=1),
    dict(interleave="band", tiled=False, blockysize=6),
])
@pytest.mark.parametrize("seed", range(3))
def test_strip_decimation_of_scattered_wanted_pixels_takes_gdals_pixels_there(tmp_path, layout, seed):
    """Wanted pixels anywhere (not rectangles): GDAL's nearest pixels there."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import Window as RioWindow

    from ecopatch.raster import blocks, quicklook

    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(150, 260)), int(rng.integers(150, 330)))
    dn = rng.integers(1, 60_000, size=(3, *shape), dtype=np.uint16)
    path = write_raster(tmp_path / "three.tif", dn, dtype="uint16", compress="deflate", **layout)
    out = (max(2, shape[0] // int(rng.integers(2, 9))), max(2, shape[1] // int(rng.integers(2, 9))))
    wanted = rng.random(out) < (0.002, 0.02, 0.2)[seed]
    wanted[int(rng.integers(0, out[0])), :] = seed == 2  # a whole row of them, once
    with rasterio.open(path) as ds:
        win = RioWindow(0, 0, shape[1], shape[0])
        gdal = ds.read([1, 2, 3], window=win, out_shape=(3, *out), resampling=Resampling.nearest)
        ours = quicklook._decimate_in_strips(ds, [1, 2, 3], win, (3, *out), blocks.layout_of(ds), wanted)
    np.testing.assert_array_equal(ours[:, wanted], gdal[:, wanted])
    # the others: 0, or GDAL's pixel where a read for a wanted one covered them
    other, theirs = ours[:, ~wanted], gdal[:, ~wanted]
    assert ((other == 0) | (other == theirs)).all()


def test_a_band_interleaved_tiled_stack_reads_its_bands_together_and_only_those(tmp_path, monkeypatch):
    import rasterio

    from ecopatch.raster import fileread

    rng = np.random.default_rng(8)
    dn = rng.integers(1, 10_000, size=(6, 90, 110), dtype=np.uint16)
    extra = rng.integers(1, 10_000, size=(2, 90, 110), dtype=np.uint16)
    kw = dict(tiled=True, blockxsize=32, blockysize=32, compress="deflate")
    banded = write_raster(tmp_path / "s2_20210918_band.tif", np.concatenate([dn, extra]),
                          descriptions=(*S2_NAMES, "extra1", "extra2"), dtype="uint16", nodata=0,
                          interleave="band", **kw)
    pixel = _s2_stack(tmp_path, dn, name="s2_20210918_pixel.tif", interleave="pixel", **kw)
    reads = []
    real = fileread._ds_read
    monkeypatch.setattr(fileread, "_ds_read",
                        lambda ds, idx, win: reads.append((ds.name, idx)) or real(ds, idx, win))
    win = Window(row_off=7, col_off=9, height=60, width=70)
    a, b = open_scene(banded).read(window=win), open_scene(pixel).read(window=win)
    for n in b.bands:
        np.testing.assert_array_equal(a[n], b[n])
    with rasterio.open(banded) as ds:
        assert ds.interleaving.name.lower() == "band"
    got = [idx if isinstance(idx, int) else tuple(idx) for name, idx in reads if name.endswith("_band.tif")]
    assert got and all(r == (1, 2, 3, 4, 5, 6) for r in got)  # one call, the six bands used, not 7 and 8


def test_decimated_reads_from_overviews_hold_the_whole_area_in_gdals_cache(tmp_path, monkeypatch):
    """GDAL reads a pixel-interleaved file's overview band after band: its cache must hold every block once."""
    import contextlib

    import rasterio
    from rasterio.enums import Resampling

    from ecopatch.raster import quicklook

    rng = np.random.default_rng(4)
    dn = rng.integers(1, 10_000, size=(6, 512, 512), dtype=np.uint16)
    path = _s2_stack(tmp_path, dn, interleave="pixel", compress="deflate", tiled=True, blockxsize=32,
                     blockysize=32)
    with rasterio.open(path, "r+") as ds:
        ds.build_overviews([2, 4], Resampling.nearest)
    asked = []
    real = quicklook.gdal_cache

    @contextlib.contextmanager
    def recording(size, **kw):
        asked.append(size)
        with real(size, **kw):
            yield

    monkeypatch.setattr(quicklook, "gdal_cache", recording)
    obs = read_decimated(open_scene(path), max_pixels=128 * 128)  # from the 4x overview, 128 x 128
    assert obs["red"].shape == (128, 128)
    whole = (128 // 32 + 1) ** 2 * 32 * 32 * 6 * 2  # every block of the overview, all bands, and a margin
    assert asked and asked[-1] >= whole  # one row of blocks (5 x 32 x 128 px) would decode each 6 times


@pytest.mark.realdata
def test_real_sentinel2_l2a_folder_with_stac(shared_data):
    s = open_scene(shared_data / "s2l2a_landsatc2l2_formats" / "s2_l2a_S2A_29RKH_20200219")
    assert s.sensor.name == "sentinel2_l2a" and s.date == dt.date(2020, 2, 19)
    assert s.metadata["processing_baseline"] == "02.14"
    assert s.grid.shape == (1098, 1098) and s.mask.kind == "scl"
    assert s.band("swir1").grid.res == (200.0, 200.0)  # brought onto the 100 m grid when read
    obs = s.read(window=Window(row_off=0, col_off=0, height=50, width=50))
    assert obs["swir1"].shape == (50, 50)
    assert 0.0 < np.nanmedian(obs["red"]) < 0.6  # desert, no offset before baseline 04.00


@pytest.mark.realdata
def test_real_landsat_c2l2_all_cloud(shared_data):
    s = open_scene(shared_data / "s2l2a_landsatc2l2_formats" / "landsat8_c2l2_LC08_L2SP_001062_20201031")
    assert s.sensor.name == "landsat_oli_c2l2" and s.date == dt.date(2020, 10, 31)
    red = s.band("red")
    assert red.scale == pytest.approx(2.75e-5) and red.offset == pytest.approx(-0.2)
    assert s.read().valid.sum() == 0  # 99.9 % cloud: QA_PIXEL masks everything


@pytest.mark.realdata
def test_real_drone_tile_in_mercator(shared_data):
    s = open_scene(shared_data / "drone_oam_tcd" / "5b90f92da0d7280005fab355_4310.tif")
    assert s.sensor.name == "drone_rgb" and s.grid.crs.to_epsg() == 3395
    obs = read_decimated(s, max_pixels=20_000)
    assert 0.2 < obs.valid.mean() <= 1.0


def test_stacked_file_with_bands_needs_scale_not_sensor(tmp_path):
    p = write_raster(tmp_path / "stack_20030206.tif", np.full((4, 8, 8), 100, dtype=np.uint16))
    with pytest.raises(InputDataError, match="scale="):
        open_scene(p, bands={"red": 3, "nir": 4})
    s = open_scene(p, bands={"red": 3, "nir": 4}, scale=1 / 1000)
    assert s.sensor.name == "generic" and s.read()["nir"][0, 0] == pytest.approx(0.1)


def test_folder_date_from_file_names(tmp_path):
    folder = tmp_path / "imgs_1"
    folder.mkdir()
    for b in ("B02", "B03", "B04", "B08"):
        write_raster(folder / f"S2A_OPER_MSI_L1C_20161209_{b}.tif", np.full((4, 4), 900, dtype=np.uint16))
    assert open_scene(folder, sensor="sentinel2_l1c").date == dt.date(2016, 12, 9)


@pytest.mark.parametrize(("made", "orbit", "acquired"), [
    ("20161227T091305", 1222, dt.date(2015, 9, 16)),  # OSCD Águas Claras: made 15 months later
    ("20160706T155721", 849, dt.date(2015, 8, 21)),   # OSCD Nantes and Rennes
    ("20161130T130757", 7527, dt.date(2016, 11, 30)),  # OSCD Bercy: made the same day
])
def test_old_format_sentinel2_names_date_from_the_orbit_not_the_production_time(tmp_path, made, orbit, acquired):
    folder = tmp_path / "imgs_1"
    folder.mkdir()
    for b in ("B02", "B03", "B04", "B08"):
        write_raster(folder / f"S2A_OPER_MSI_L1C_TL_EPA__{made}_A{orbit:06d}_T22LHH_{b}.tif",
                     np.full((4, 4), 900, dtype=np.uint16))
    s = open_scene(folder, sensor="sentinel2_l1c")
    assert s.date == acquired
    assert f"absolute orbit A{orbit:06d}" in repr(s.provenance())


def test_old_format_names_of_another_orbit_or_an_impossible_date_are_not_guessed(tmp_path):
    folder = tmp_path / "imgs_1"
    folder.mkdir()
    # production before the orbit's overpass: not the format's meaning, the name's date is kept
    for b in ("B02", "B03", "B04", "B08"):
        write_raster(folder / f"S2A_OPER_MSI_L1C_TL_EPA__20150701T091305_A009999_T22LHH_{b}.tif",
                     np.full((4, 4), 900, dtype=np.uint16))
    assert open_scene(folder, sensor="sentinel2_l1c").date == dt.date(2015, 7, 1)


@pytest.mark.realdata
def test_real_oscd_folders_open_with_their_acquisition_dates(shared_data):
    """The ten OSCD cities' folders, as distributed: every date as in the dataset's dates.txt."""
    folders = sorted((shared_data / "oscd_cities").glob("*/dates.txt")) + sorted(
        (shared_data / "oscd_china").glob("*/dates.txt"))
    assert len(folders) >= 10
    for dates in folders:
        want = dict(line.strip().split(": ") for line in dates.read_text().splitlines() if ": " in line)
        for i in (1, 2):
            with pytest.warns(ecopatch_errors.EcopatchWarning):  # no mask, level from file names
                s = open_scene(dates.parent / f"imgs_{i}")
            assert s.date.strftime("%Y%m%d") == want[f"date_{i}"], (dates.parent.name, i)


def test_dark_object_subtraction_for_toa_products(tmp_path):
    rng = np.random.default_rng(0)
    dn = (rng.random((6, 64, 64)) * 2000 + 1000).astype(np.uint16)  # haze lifts every band by ~0.09
    p = write_raster(tmp_path / "S2A_MSIL1C_20161209_stack.tif", dn, descriptions=S2_NAMES, nodata=0)
    raw = open_scene(p, sensor="sentinel2_l1c", haze="none")
    dos = open_scene(p, sensor="sentinel2_l1c")  # auto: L1C is top of atmosphere
    h = dos.metadata["haze_removed"]["blue"]
    assert 0.08 < h < 0.1
    np.testing.assert_allclose(dos.read()["blue"], raw.read()["blue"] - h, atol=1e-6)
    l2a = open_scene(p, sensor="sentinel2_l2a")
    assert "haze_removed" not in l2a.metadata
    with pytest.raises(ecopatch_errors.ConfigError, match="haze="):
        open_scene(p, haze="fog")


@pytest.mark.parametrize("layout", [
    dict(tiled=True, blockxsize=16, blockysize=16, compress="deflate"),
    dict(tiled=True, blockxsize=16, blockysize=16, compress="deflate", interleave="pixel"),
    dict(tiled=True, blockxsize=16, blockysize=16, compress="lzw", interleave="band"),
    dict(tiled=False, blockysize=3, compress="deflate", interleave="pixel"),
    dict(tiled=False, blockysize=2, compress="lzw", interleave="band"),
    dict(tiled=True, blockxsize=32, blockysize=16, compress=None, interleave="pixel"),
], ids=["tiled", "tiled-pixel", "tiled-band-lzw", "striped-pixel", "striped-band", "uncompressed"])
@pytest.mark.usefixtures("shared_small_tiles")
def test_tile_cache_reads_equal_direct_reads_in_every_layout(tmp_path, layout):
    # windows of every shape and position, some partly outside the file, through a cache of a few
    # blocks (evicting and recycling buffers all the time), against plain reads of the same windows;
    # the bands of a pixel-interleaved file come from one read of all of them
    from ecopatch.raster import fileread as raster

    rng = np.random.default_rng(5)
    arr = rng.integers(0, 60000, size=(3, 90, 100)).astype(np.uint16)
    p = write_raster(tmp_path / "f.tif", arr, **layout)
    g = Grid((90, 100), Affine(10, 0, 780_000, 0, -10, 3_350_000), "EPSG:32650")
    lay = raster.file_layout(p)
    assert lay.striped == (not layout["tiled"]) and lay.multiband == (layout.get("interleave", "pixel") == "pixel")
    raster.TILES.clear()
    hits = raster.TILES.hits
    budget = 6 * 16 * 100 * 2 * 3
    with raster.TILES.session(budget):
        raster.TILES.budget = budget
        for _ in range(200):
            r, c = rng.integers(-20, 95, size=2)
            h, w = rng.integers(1, 60, size=2)
            win = Window(row_off=int(r), col_off=int(c), height=int(h), width=int(w))
            band = int(rng.integers(1, 4))
            got = raster.read_block(str(p), band, g, win, fill=0)
            want = np.zeros(win.shape, np.uint16)
            inner = win.intersection(g.window)
            if inner is not None:
                want[inner.relative_to(win).slices] = arr[band - 1][inner.slices]
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(raster.read_block(str(p), band, g, win, fill=0, shared=False), want)
            assert raster.TILES._bytes <= raster.TILES.budget
            with raster.band_reads():
                for b in (1, 2, 3):
                    np.testing.assert_array_equal(raster.read_block(str(p), b, g, win, fill=7)[
                        inner.relative_to(win).slices] if inner else 0, arr[b - 1][inner.slices] if inner else 0)
    if layout.get("compress"):
        assert raster.TILES.hits > hits
    assert raster.TILES._bytes == 0  # blocks are dropped when the last pass ends


def test_tile_cache_keeps_nothing_outside_a_pass_and_its_size_is_checked(tmp_path, monkeypatch):
    from ecopatch.raster import fileread as raster

    arr = np.arange(2 * 64 * 64, dtype=np.uint16).reshape(2, 64, 64)
    p = write_raster(tmp_path / "t.tif", arr, tiled=True, blockxsize=16, blockysize=16, compress="deflate")
    g = Grid((64, 64), Affine(10, 0, 780_000, 0, -10, 3_350_000), "EPSG:32650")
    raster.TILES.clear()
    raster.read_block(str(p), 1, g, Window(row_off=3, col_off=3, height=20, width=20), fill=0)
    assert raster.TILES._bytes == 0 and not raster.TILES.active
    monkeypatch.setenv("ECOPATCH_TILE_CACHE_MB", "lots")
    monkeypatch.setattr(raster.TILES, "budget", None)
    with pytest.raises(ecopatch_errors.ConfigError, match="ECOPATCH_TILE_CACHE_MB"):
        with raster.TILES.session():
            pass


def _vrt(path, size, sources, *, nodata=None, dtype="UInt16", descriptions=()):
    """A VRT of ``size`` (rows, cols) from (file, src (row, col, h, w), dst (row, col)[, tag]).

    One band, or one per description, band ``b`` pasting band ``b`` of each source.
    """
    nd = f"<NoDataValue>{nodata}</NoDataValue>" if nodata is not None else ""
    bands = []
    for band, desc in enumerate(descriptions or [None], start=1):
        parts = []
        for src in sources:
            fn, (sr, sc, h, w), (dr, dc), *tag = src
            tag = tag[0] if tag else "SimpleSource"
            parts.append(f"""<{tag}><SourceFilename relativeToVRT="0">{fn}</SourceFilename>
<SourceBand>{band}</SourceBand><SrcRect xOff="{sc}" yOff="{sr}" xSize="{w}" ySize="{h}"/>
<DstRect xOff="{dc}" yOff="{dr}" xSize="{w}" ySize="{h}"/></{tag}>""")
        text = f"<Description>{desc}</Description>" if desc else ""
        bands.append(f"""<VRTRasterBand dataType="{dtype}" band="{band}">{nd}{text}{"".join(parts)}</VRTRasterBand>""")
    path.write_text(f"""<VRTDataset rasterXSize="{size[1]}" rasterYSize="{size[0]}">
<SRS>EPSG:32650</SRS><GeoTransform>780000, 10, 0, 3350000, 0, -10</GeoTransform>{"".join(bands)}</VRTDataset>""")
    return path


def test_vrt_mosaics_read_their_sources_through_the_tile_cache(tmp_path):
    # overlapping sources (the later on top), a gap (the band's nodata), a source cut from the middle
    # of a file: the same pixels as GDAL's own VRT reading, for random windows in and around it
    import rasterio

    from ecopatch.raster import fileread as raster
    from ecopatch.raster.vrt import vrt_simple_sources

    rng = np.random.default_rng(9)
    a = write_raster(tmp_path / "a.tif", rng.integers(1, 60000, size=(48, 40)).astype(np.uint16),
                     tiled=True, blockxsize=16, blockysize=16)
    b = write_raster(tmp_path / "b.tif", rng.integers(1, 60000, size=(30, 35)).astype(np.uint16),
                     tiled=True, blockxsize=16, blockysize=16)
    simple = [(a, (0, 0, 48, 40), (0, 0)), (b, (0, 0, 30, 35), (10, 30)), (a, (5, 7, 20, 30), (60, 2))]
    cases = {
        "mosaic": (_vrt(tmp_path / "m.vrt", (85, 70), simple, nodata=7), True),
        "no nodata": (_vrt(tmp_path / "n.vrt", (85, 70), simple), True),
        "complex": (_vrt(tmp_path / "c.vrt", (85, 70), [*simple[:2], (a, (0, 0, 10, 10), (70, 50), "ComplexSource")],
                         nodata=7), False),
        "other type": (_vrt(tmp_path / "t.vrt", (85, 70), simple, dtype="Float32"), False),
    }
    g = Grid((85, 70), Affine(10, 0, 780_000, 0, -10, 3_350_000), "EPSG:32650")
    for name, (vrt, fast) in cases.items():
        with rasterio.open(vrt) as ds:
            assert (vrt_simple_sources(str(vrt), ds, 1, raster.open_dataset) is not None) == fast, name
            ref = ds.read(1)
        for _ in range(60):
            r, c = (int(v) for v in rng.integers(-10, 80, size=2))
            h, w = (int(v) for v in rng.integers(1, 50, size=2))
            win = Window(row_off=r, col_off=c, height=h, width=w)
            want = np.full((h, w), 3, dtype=ref.dtype)
            inner = win.intersection(g.window)
            if inner is not None:
                want[inner.relative_to(win).slices] = ref[inner.slices]
            np.testing.assert_array_equal(raster.read_block(str(vrt), 1, g, win, fill=3), want, err_msg=name)



@pytest.mark.parametrize("max_pixels", [600, 3_000])
def test_decimating_a_vrt_of_pixel_interleaved_stacks_reads_strips_and_the_pixels_under_the_centres(
        tmp_path, monkeypatch, max_pixels):
    # GDAL decimates a VRT band by band, decoding every tile of a pixel-interleaved source again for
    # each band; a mosaic of two such stacks (overlapping, the later on top, a gap) is read in strips
    import rasterio

    from ecopatch.raster import quicklook

    calls = []
    strips = quicklook._decimate_in_strips
    monkeypatch.setattr(quicklook, "_decimate_in_strips", lambda *a, **kw: calls.append(1) or strips(*a, **kw))
    rng = np.random.default_rng(4)
    kw = dict(interleave="pixel", tiled=True, blockxsize=32, blockysize=32, compress="deflate")
    a = _s2_stack(tmp_path, rng.integers(1, 10_000, size=(6, 96, 80), dtype=np.uint16), name="a.tif", **kw)
    b = _s2_stack(tmp_path, rng.integers(1, 10_000, size=(6, 64, 70), dtype=np.uint16), name="b.tif", **kw)
    vrt = _vrt(tmp_path / "s2_20210918_mosaic.vrt", (130, 140),
               [(a, (0, 0, 96, 80), (0, 0)), (b, (0, 0, 64, 70), (50, 60))], nodata=0, descriptions=S2_NAMES)
    s = open_scene(vrt)
    obs = read_decimated(s, max_pixels=max_pixels)
    assert calls  # the strip path was taken
    # the pixel under each decimated pixel's centre, as for a GeoTIFF (GDAL's VRT reading rounds its
    # sources' offsets its own way: 42 of 7722 pixels differ from it with 3000 pixels asked)
    out_h, out_w = obs.grid.shape
    rows = np.floor((np.arange(out_h) + 0.5) * 130 / out_h).astype(int)
    cols = np.floor((np.arange(out_w) + 0.5) * 140 / out_w).astype(int)
    with rasterio.open(vrt) as ds:
        want = ds.read(list(range(1, 7)))[:, rows][:, :, cols]
    got = np.stack([obs[n] for n in s.bands])
    ref = np.where(want == 0, np.nan, want.astype(np.float64) / 10_000)
    # valid only where the mosaic has data (the scene also drops a collar along no data)
    ok = np.isfinite(got)
    assert ok.mean() > 0.5 and not (ok & np.isnan(ref)).any()
    np.testing.assert_allclose(got[ok], ref[ok], atol=1e-6)
    # a VRT of single-band files is left to GDAL (each band's tiles are decoded once anyway)
    calls.clear()
    one = write_raster(tmp_path / "one.tif", np.full((96, 80), 500, np.uint16), tiled=True, blockxsize=32,
                       blockysize=32)
    with rasterio.open(_vrt(tmp_path / "one.vrt", (96, 80), [(one, (0, 0, 96, 80), (0, 0))])) as ds:
        assert quicklook._strips_layout(ds.name, ds, 4.0) is None

_LAYOUTS = {
    "pixel-tiled-deflate": dict(interleave="pixel", tiled=True, blockxsize=32, blockysize=32, compress="deflate"),
    "pixel-striped-deflate": dict(interleave="pixel", compress="deflate"),
    "band-tiled-lzw": dict(interleave="band", tiled=True, blockxsize=32, blockysize=32, compress="lzw"),
    "band-striped-lzw": dict(interleave="band", blockysize=3, compress="lzw"),
    "pixel-striped-none": dict(interleave="pixel"),
    "band-tiled-none": dict(interleave="band", tiled=True, blockxsize=16, blockysize=16),
    # the other combinations of the same properties (as in bench_e2e.LAYOUTS)
    "pixel-tiled-none": dict(interleave="pixel", tiled=True, blockxsize=32, blockysize=32),
    "band-striped-none": dict(interleave="band", blockysize=5),
    "band-tiled-deflate": dict(interleave="band", tiled=True, blockxsize=32, blockysize=32, compress="deflate"),
    "pixel-striped-lzw": dict(interleave="pixel", blockysize=7, compress="lzw"),
    # and codecs and options no benchmark has: ZSTD, a horizontal-differencing predictor
    "pixel-tiled-zstd-predictor": dict(interleave="pixel", tiled=True, blockxsize=64, blockysize=64, compress="zstd",
                                       predictor=2),
    "band-striped-deflate-predictor": dict(interleave="band", blockysize=11, compress="deflate", predictor=2),
}


def test_a_stack_reads_the_same_in_every_layout(tmp_path):
    # the same 7-band Sentinel-2 stack (SCL as band 7) in twelve layouts: every window of a pass (inside
    # its tile-cache session), some partly outside the file, and a decimated read, value for value
    from ecopatch.raster import fileread as raster

    rng = np.random.default_rng(7)
    dn = rng.integers(900, 4000, size=(7, 150, 170)).astype(np.uint16)
    dn[6] = rng.choice([4, 5, 6, 8, 9], size=(150, 170), p=[0.4, 0.3, 0.2, 0.05, 0.05])  # SCL
    dn[:6, :5, :7] = 0  # no data
    names = [*S2_NAMES, "SCL"]
    tags = {"PROCESSING_BASELINE": "05.10", "PROCESSING_LEVEL": "Level-2A"}
    scenes = {k: open_scene(write_raster(tmp_path / f"s2_{k}_20240912.tif", dn, descriptions=names, dtype="uint16",
                                         nodata=0, tags=tags, **opts)) for k, opts in _LAYOUTS.items()}
    assert {s.mask.kind for s in scenes.values()} == {"scl"}
    wins = [Window(row_off=-3, col_off=-3,
                   height=40, width=50),
            Window(row_off=30, col_off=60, height=64, width=64),
            Window(row_off=100, col_off=140, height=60, width=60),
            Window(row_off=0, col_off=0, height=150, width=170)]
    ref = None
    for name, s in scenes.items():
        with raster.TILES.session(64 * 1024):
            got = [s.read(window=w) for w in wins]
        dec = read_decimated(s, max_pixels=2000)
        if ref is None:
            ref = (got, dec)
            continue
        for a, b in zip(got, ref[0]):
            np.testing.assert_array_equal(a.valid, b.valid, err_msg=name)
            for band in s.bands:
                np.testing.assert_array_equal(a[band], b[band], err_msg=f"{name} {band}")
        np.testing.assert_array_equal(dec.valid, ref[1].valid, err_msg=name)
        for band in s.bands:
            np.testing.assert_array_equal(dec[band], ref[1][band], err_msg=f"{name} decimated {band}")
    assert ref[0][1].valid.sum() < ref[0][1].valid.size  # clouds and no data are masked somewhere


@pytest.mark.parametrize(("buffer_m", "expected"), [(0.0, 1), (20.0, 3), (60.0, 7)])
def test_a_scene_read_reaches_no_further_than_its_read_reach(tmp_path, monkeypatch, buffer_m, expected):
    """The passes set their windows back by ``read_reach_px``: no file read may go beyond it.

    Sentinel-2's SCL is on a 20 m grid and read with its cloud-growth margin
    around the window; a read beyond the reach would decode a tile of the
    next stripe (a whole JPEG 2000 or 2048² tile for a few columns).
    """
    from ecopatch.raster import fileread
    from tests.scenes import write_pair

    _, before, _ = write_pair(tmp_path, shape=(96, 128), seed=3)
    scene = before.with_mask(before.mask, cloud_buffer_m=buffer_m) if buffer_m != 20.0 else before
    reach = scene.read_reach_px()
    # the 20 m bands alone: 1 pixel past a window ending inside a 20 m pixel; the SCL grown by k pixels
    # of 20 m: (k + 1) * 2 - 1
    assert reach == expected
    g = scene.grid
    seen = []
    orig = fileread.read_block

    def spy(path, index, grid, window, fill, **kw):
        # the file window in pixels of the scene's grid
        kx, ky = grid.res[0] / g.res[0], grid.res[1] / g.res[1]
        c0 = (grid.transform.c - g.transform.c) / g.res[0] + window.col_off * kx
        r0 = (g.transform.f - grid.transform.f) / g.res[1] + window.row_off * ky
        seen.append((r0, c0, r0 + window.height * ky, c0 + window.width * kx))
        return orig(path, index, grid, window, fill, **kw)

    monkeypatch.setattr(fileread, "read_block", spy)
    widest = 0.0
    for r, c in ((20, 30), (21, 31), (40, 57)):  # even and odd offsets against the 20 m grid
        win = Window(row_off=r, col_off=c, height=30, width=41)
        seen.clear()
        scene.read(window=win)
        assert seen
        for r0, c0, r1, c1 in seen:
            assert r0 >= win.row_off - reach and c0 >= win.col_off - reach
            assert r1 <= win.row_end + reach and c1 <= win.col_end + reach
            widest = max(widest, c1 - win.col_end, win.col_off - c0)
    assert widest == reach  # the bound is tight: a smaller set-back would read beyond the block


def test_gdal_holds_no_block_for_decimated_reads_of_large_blocks(tmp_path, monkeypatch):
    """Blocks of ``_STRIP_BYTES`` or more are read one at a time, all bands at once: GDAL's cache holds none.

    GDAL decodes such a block once into the handle's own buffer for all bands; its cache only held a
    copy (a float32 7-band stack tiled 2048, 112 MiB a block: 448 MiB of cache for the detection's
    background reads of both dates, then 224 MiB, now the 1 MiB every decimated read has).  Nor for
    strips of blocks that hold one band each (band files, band-interleaved stacks): each is decoded
    once in a strip's read whatever GDAL's cache holds.
    """
    import rasterio

    from ecopatch.raster import quicklook

    dn = np.full((6, 128, 128), 900, dtype=np.uint16)
    path = str(_s2_stack(tmp_path, dn, interleave="pixel", compress="deflate", tiled=True, blockxsize=32,
                         blockysize=32))
    s = open_scene(path)
    src = s.grid
    dgrid = Grid((32, 32), src.transform @ Affine.scale(4), src.crs)
    block_set = 32 * 32 * 6 * 2
    pool = quicklook._Handles()
    try:
        # small blocks: a strip of at most _STRIP_BYTES (and no more than the whole area read), and a
        # block more for the part-blocks at its ends
        whole = 128 * 128 * 6 * 2
        assert quicklook._row_bytes(pool, path, src, dgrid) == whole + block_set
        monkeypatch.setattr(quicklook, "_STRIP_BYTES", 50_000)
        assert quicklook._row_bytes(pool, path, src, dgrid) == 50_000 + block_set
        monkeypatch.setattr(quicklook, "_STRIP_BYTES", block_set)
        assert quicklook._row_bytes(pool, path, src, dgrid) == 0
    finally:
        pool.close()
    # ... and the pixels are GDAL's nearest ones either way, read with GDAL's cache at its least
    sizes = []
    real = quicklook.gdal_cache
    monkeypatch.setattr(quicklook, "gdal_cache", lambda n: sizes.append(n) or real(n))
    obs = read_decimated(s, max_pixels=32 * 32)
    assert np.allclose(obs["red"], 0.09) and sizes == [0]  # nothing beyond gdal_cache's floor
    monkeypatch.setattr(quicklook, "_STRIP_BYTES", 16 * 1024 * 1024)
    sizes.clear()
    assert np.allclose(read_decimated(s, max_pixels=32 * 32)["red"], 0.09) and sizes == [2 * (whole + block_set)]
    # a band-interleaved file is read by the strips too when only some pixels are wanted (the detection's
    # background near the reserves). Its blocks hold one band each: GDAL decodes each once in a strip's read
    # whatever its cache holds, so it gets none beyond the floor (a row of blocks of every band was 784 MiB
    # for a band-interleaved 7-band stack tiled 2048, and the set-up peaked at 1.38 GiB instead of 0.64; a
    # strip's worth for each of a SAFE product's band files kept the full pair at 0.96-1.02 GiB, now 0.81-0.85)
    monkeypatch.undo()
    band = str(_s2_stack(tmp_path, dn, name="s2b_20210918.tif", interleave="band", compress="deflate", tiled=True,
                         blockxsize=32, blockysize=32))
    src = open_scene(band).grid
    pool = quicklook._Handles()
    try:
        across = (128 // 32 + 1) * 32 * 32 * 6 * 2  # a row of blocks, all bands: the general rule
        assert quicklook._row_bytes(pool, band, src, dgrid) == across
        assert quicklook._row_bytes(pool, band, src, dgrid, wanted=True) == 0
    finally:
        pool.close()
    rng = np.random.default_rng(5)
    one = str(write_raster(tmp_path / "B04.tif", rng.integers(1, 9000, size=(128, 128)).astype(np.uint16),
                           compress="deflate", tiled=True, blockxsize=32, blockysize=32))
    with rasterio.open(one) as ds:
        g1 = Grid(ds.shape, ds.transform, ds.crs)
        ref = ds.read(1, out_shape=(32, 32))  # GDAL's nearest pixels
    d1 = Grid((32, 32), g1.transform @ Affine.scale(4), g1.crs)
    wanted = np.zeros((32, 32), dtype=bool)
    wanted[3:9, 20:30] = True
    pool = quicklook._Handles()
    try:
        assert quicklook._row_bytes(pool, one, g1, d1) == (128 // 32 + 1) * 32 * 32 * 2  # the general rule
        assert quicklook._row_bytes(pool, one, g1, d1, wanted=True) == 0
        with quicklook.gdal_cache(MIN_CACHE_BYTES):
            got = quicklook._decimate_file(pool, one, [1], g1, d1, wanted)
    finally:
        pool.close()
    assert np.array_equal(got[0][wanted], ref[wanted])


@pytest.mark.parametrize("layout", [
    dict(tiled=True, blockxsize=16, blockysize=16, compress="deflate", interleave="pixel"),
    dict(tiled=True, blockxsize=16, blockysize=16, compress="deflate", interleave="band"),
    dict(tiled=False, blockysize=3, compress="lzw", interleave="pixel"),
    dict(tiled=False, blockysize=3, compress="lzw", interleave="band"),
], ids=["tiled-pixel", "tiled-band", "striped-pixel", "striped-band"])
@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_bands_of_one_file_read_together_equal_band_by_band_reads(tmp_path, monkeypatch, layout, dtype):
    # DN with the file's nodata, the type's maximum (saturation), values outside the valid range and NaN in
    # floats, scattered so that a later band excludes pixels the earlier bands kept; a scene mask too
    from ecopatch.raster import fileread
    from ecopatch.raster import scene as scene_mod

    rng = np.random.default_rng(11)
    if dtype == "uint16":
        dn = rng.integers(1, 9000, size=(6, 40, 50)).astype(np.uint16)
        for b, v in ((0, 0), (3, 65535), (5, 13000)):  # nodata, saturation, reflectance above the range
            dn[b][rng.random((40, 50)) < 0.08] = v
        scl = np.where(rng.random((1, 40, 50)) < 0.02, 9, 4).astype(np.uint16)  # a few clouds (class 9), grown
        dn = np.concatenate([dn, scl])
        kw = dict(nodata=0)
    else:
        dn = rng.uniform(0.0, 0.9, size=(6, 40, 50)).astype(np.float32)
        dn[2][rng.random((40, 50)) < 0.08] = np.nan
        dn[4][rng.random((40, 50)) < 0.08] = 1.7
        kw = {}
    names = S2_NAMES + ["SCL"] if dtype == "uint16" else S2_NAMES
    p = write_raster(tmp_path / "S2B_MSIL2A_20210918_stack.tif", dn, descriptions=names, dtype=dtype, **kw,
                     **layout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the float stack has no SCL band
        s = open_scene(p, sensor="sentinel2_l2a")
    assert (s.mask is not None) == (dtype == "uint16")
    calls = []
    fused = fileread.read_reflectances

    def counted(*a):
        got = fused(*a)
        calls.append(got is not None)
        return got

    monkeypatch.setattr(scene_mod, "read_reflectances", counted)
    wins = [Window(row_off=0, col_off=0, height=40, width=50), Window(row_off=5, col_off=7, height=20, width=31),
            Window(row_off=-3, col_off=40, height=10, width=15)]  # the last partly outside: band by band
    together = [s.read(window=w) for w in wins]
    # in one pass wherever the bands come from one read (every layout here), not for a window partly outside
    assert calls == [True, True, False]
    monkeypatch.setattr(scene_mod, "read_reflectances", lambda *a: None)
    for w, got in zip(wins, together):
        want = s.read(window=w)
        assert np.array_equal(got.valid, want.valid)
        for name in want.bands:
            assert got.bands[name].dtype == np.float32
            np.testing.assert_array_equal(got.bands[name], want.bands[name])
        assert 0 < got.valid.sum() < got.valid.size
