import threading
import time

import numpy as np
import pytest
from rasterio.env import get_gdal_config

from ecopatch.raster import blocks
from ecopatch.raster.blocks import FileLayout, plan_reads
from ecopatch.raster.gdalcache import gdal_cache
from tests.conftest import write_raster

MB = 1024 * 1024


def _layout(**kw):
    base = dict(driver="GTiff", shape=(10980, 10980), count=1, dtype="uint16", block=(256, 256), interleave="band",
                compression="deflate", overviews=())
    base.update(kw)
    return FileLayout(**base)


def test_layout_of_files_says_how_they_store_pixels(tmp_path):
    from ecopatch.raster.fileread import file_layout

    arr = np.zeros((3, 64, 80), np.uint16)
    p = write_raster(tmp_path / "a.tif", arr, tiled=True, blockxsize=16, blockysize=32, compress="lzw",
                     interleave="pixel")
    lay = file_layout(p)
    assert (lay.count, lay.block, lay.interleave, lay.compression) == (3, (32, 16), "pixel", "lzw")
    assert lay.tiled and not lay.striped and lay.multiband and lay.block_set_bytes == 32 * 16 * 2 * 3
    s = file_layout(write_raster(tmp_path / "b.tif", arr, interleave="band", blockysize=4))
    assert s.striped and s.compression == "none" and not s.multiband
    # band-interleaved, tiled or striped: each band's blocks decode alone; the bands a read wants come in one call
    t = file_layout(write_raster(tmp_path / "c.tif", arr, tiled=True, blockxsize=16, blockysize=16,
                                 compress="deflate", interleave="band"))
    assert t.interleave == "band" and t.banded and not t.multiband and s.banded and not lay.banded
    assert "striped (4 rows)" in s.describe() and "no overviews" in s.describe()


def test_gdal_cache_scope_is_counted_across_threads_and_restored(monkeypatch):
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    monkeypatch.delenv("ECOPATCH_GDAL_CACHE_MB", raising=False)
    before = get_gdal_config("GDAL_CACHEMAX")
    inside, entered, release = [], threading.Event(), threading.Event()

    def pass_on_another_thread():
        with gdal_cache(3 * MB):
            entered.set()
            inside.append(get_gdal_config("GDAL_CACHEMAX"))
            release.wait(10)

    with gdal_cache(2 * MB):
        assert get_gdal_config("GDAL_CACHEMAX") == 2 * MB
        t = threading.Thread(target=pass_on_another_thread)
        t.start()
        assert entered.wait(10)
        assert inside == [3 * MB]  # a nested scope may raise the size ...
        with gdal_cache(1 * MB):
            assert get_gdal_config("GDAL_CACHEMAX") == 3 * MB  # ... never lower it
        with gdal_cache(64 * MB, at_least=True):
            assert get_gdal_config("GDAL_CACHEMAX") == 64 * MB
    # the first scope has ended, the other thread's still runs: not restored yet
    assert get_gdal_config("GDAL_CACHEMAX") != before
    release.set()
    t.join(10)
    assert get_gdal_config("GDAL_CACHEMAX") == before  # restored by the last to leave


def test_gdal_cache_scope_respects_the_users_choice(monkeypatch):
    import rasterio

    monkeypatch.delenv("ECOPATCH_GDAL_CACHE_MB", raising=False)
    with rasterio.Env(GDAL_CACHEMAX=48 * MB):
        with gdal_cache(1 * MB):
            assert get_gdal_config("GDAL_CACHEMAX") == 48 * MB
    monkeypatch.setenv("GDAL_CACHEMAX", "256")
    before = get_gdal_config("GDAL_CACHEMAX")
    with gdal_cache(1 * MB):
        assert get_gdal_config("GDAL_CACHEMAX") == before
    monkeypatch.delenv("GDAL_CACHEMAX")
    monkeypatch.setenv("ECOPATCH_GDAL_CACHE_MB", "24")
    before = get_gdal_config("GDAL_CACHEMAX")
    with gdal_cache(1 * MB):
        assert get_gdal_config("GDAL_CACHEMAX") == 24 * MB
    assert get_gdal_config("GDAL_CACHEMAX") == before


def test_plans_follow_the_layout(monkeypatch):
    # 256-pixel tiles: 4096-pixel stripes in the default cache
    tiles = [(_layout(), 1.0)] * 8 + [(_layout(shape=(5490, 5490)), 2.0)] * 6
    p = plan_reads(tiles, workers=2)
    assert p.stripe_px == 4096 and p.tile_cache_bytes is None and p.gdal_cache_bytes == 1 * MB
    # JPEG 2000's 1024-pixel tiles: narrower stripes, so two rows of tiles still fit
    jp2 = [(_layout(driver="JP2OpenJPEG", block=(1024, 1024), compression="jpeg2000"), 1.0)] * 8
    p = plan_reads(jp2, workers=2)
    assert p.stripe_px < 4096 and p.gdal_cache_bytes >= 4 * 2 * MB
    # ... but at least two tiles wide, also for windows of 512: a tile is decoded whole for any pixel,
    # and in stripes one tile wide every window's halo at a stripe boundary decodes the tiles beyond it
    for block in (512, 1024):
        p = plan_reads(jp2, workers=2, block=block)
        assert p.stripe_px == 2048 and p.tile_cache_bytes >= 2 * 1024 * (2048 + 2 * 1024) * 2 * 8
    # a GeoTIFF stack with the same tiles keeps the narrower stripes (cheap to decode; memory first)
    assert plan_reads([(_layout(block=(1024, 1024), count=7, interleave="pixel"), 1.0)] * 2,
                      workers=2, block=512).stripe_px == 1024
    # ... and the heap handed back after each window (the decoder's buffers fragment the arenas)
    assert p.trim_every == 1 and plan_reads(tiles, workers=2).trim_every == 0
    assert blocks.ReadPlan.combine([plan_reads(tiles, workers=2), p]).trim_every == 1
    # a GeoTIFF stack with large tiles (7 x 1024² uint16 = 14 MiB decoded) fragments the heap as
    # well: handed back every few windows; 512-pixel tiles (3.5 MiB) are not
    for interleave in ("pixel", "band"):  # band-interleaved: the pass holds every band's block of a position
        big = [(_layout(block=(1024, 1024), count=7, interleave=interleave), 1.0)] * 2
        assert plan_reads(big, workers=2).trim_every == blocks.TRIM_STRIPED
    assert plan_reads([(_layout(block=(512, 512), count=7, interleave="pixel"), 1.0)] * 2, workers=2).trim_every == 0
    # tiles wider than two windows (a 7-band stack tiled 2048: 59 MiB a position): stripes one tile wide,
    # so each tile is decoded once, in a cache of two rows of that tile (not the general rule's six tiles,
    # capped at MAX_TILE_CACHE_MB), and GDAL's own cache none of them (the tile cache reads them whole and
    # holds them)
    huge = _layout(block=(2048, 2048), count=7, interleave="pixel")
    p = plan_reads([(huge, 1.0)] * 2, workers=2, block=512)
    assert p.stripe_px == 2048
    assert 2 * 2 * huge.held_block_bytes <= p.tile_cache_bytes < 3 * 2 * huge.held_block_bytes
    assert huge.large_blocks and p.gdal_cache_bytes == blocks.PASS_GDAL_CACHE_MB * MB
    # ... unless the tile cache is off, or the blocks are too large for it: GDAL's cache holds one per thread
    with monkeypatch.context() as m:
        m.setenv("ECOPATCH_TILE_CACHE_MB", "0")
        assert plan_reads([(huge, 1.0)] * 2, workers=2, block=512).gdal_cache_bytes == 2 * huge.block_set_bytes
    vast = _layout(block=(4096, 4096), count=7, interleave="pixel")
    assert blocks.tile_spec(vast, ("f", 1), 1) is None
    assert plan_reads([(vast, 1.0)] * 2, workers=2, block=512).gdal_cache_bytes == 2 * vast.block_set_bytes
    # ... also when two rows of such tiles exceed MAX_TILE_CACHE_MB (float32: 112 MiB a position): the
    # cap would leave the tiles unshared and each decoded again by every window over them (assess +
    # detect on the full tile: 20.5 times the decode)
    f32 = _layout(block=(2048, 2048), count=7, interleave="pixel", dtype="float32")
    p = plan_reads([(f32, 1.0)] * 2, workers=2)
    assert 2 * 2 * f32.held_block_bytes > blocks.MAX_TILE_CACHE_MB * MB
    assert p.stripe_px == 2048 and 2 * 2 * f32.held_block_bytes <= p.tile_cache_bytes < 3 * 2 * f32.held_block_bytes
    assert blocks.tile_spec(f32, ("f", 1), 1) is not None
    # the general rule stays capped (JPEG 2000, tiles narrower than the stripe)
    assert plan_reads(jp2 * 4, workers=2).tile_cache_bytes <= blocks.MAX_TILE_CACHE_MB * MB
    # strips: windows in rows across the whole width, the cache holding one row of windows' strips
    strips = [(_layout(block=(1, 10980), count=7, interleave="pixel"), 1.0)] * 2
    p = plan_reads(strips, workers=2, grid_width=10980)
    assert p.stripe_px == 10980 and p.trim_every == blocks.TRIM_STRIPED
    assert p.tile_cache_bytes >= 2 * 512 * 10980 * 7 * 2
    # band-interleaved strips: each band's strips are kept, so the row of windows needs them all
    # (sized for one band, a full tile's assess + detect took 53 s instead of 21 s)
    bands = [(_layout(block=(1, 10980), count=7, interleave="band"), 1.0)] * 2
    assert plan_reads(bands, workers=2, grid_width=10980).tile_cache_bytes >= 2 * 512 * 10980 * 7 * 2
    # uncompressed strips too: GDAL reads a strip whole whatever the window
    p = plan_reads([(_layout(block=(1, 10980), compression="none"), 1.0)], workers=2, grid_width=10980)
    assert p.stripe_px == 10980 and p.tile_cache_bytes is not None
    # other drivers are read straight through GDAL: nothing to size the tile cache for
    p = plan_reads([(_layout(driver="HFA", block=(64, 64)), 1.0)], workers=2, grid_width=10980)
    assert p.stripe_px == 4096 and p.tile_cache_bytes is None


def test_tile_spec_groups_strips_and_shares_pixel_interleaved_blocks():
    ident = ("f", 1)
    # uncompressed tiles are read straight through GDAL (nothing to decode, sharing only copies)
    assert blocks.tile_spec(_layout(compression="none"), ident, 1) is None
    assert blocks.tile_spec(_layout(compression="none", block=(4, 10980)), ident, 1).tile == (64, 10980)
    assert blocks.tile_spec(_layout(driver="HFA"), ident, 1) is None
    s = blocks.tile_spec(_layout(block=(4, 10980)), ident, 2)
    assert s.tile == (64, 10980) and s.indexes is None and s.key[-1] == 2
    m = blocks.tile_spec(_layout(count=4, interleave="pixel"), ident, 3)
    assert m.indexes == (1, 2, 3, 4) and m.key[-1] == 0
    # band-interleaved tiles: the bands wanted read together, under a key of their own
    b = blocks.bands_spec(_layout(count=4), ident, (2, 4))
    assert b.indexes == (2, 4) and b.tile == (256, 256) and b.key != blocks.tile_spec(_layout(count=4), ident, 2).key
    assert blocks.bands_spec(_layout(count=4, compression="none"), ident, (2, 4)) is None  # straight through GDAL
    # large tiles are shared as long as a few positions fit the largest cache (a 7-band stack tiled 2048,
    # read through GDAL's block cache, had its tiles decoded again for every stripe and window across them)
    big = blocks.tile_spec(_layout(block=(2048, 2048), count=7, interleave="pixel"), ident, 1)
    assert big is not None and big.tile == (2048, 2048)
    too_big = _layout(block=(4096, 4096), count=5, interleave="pixel")
    assert too_big.held_block_bytes > blocks.MAX_SHARED_TILE_MB * MB
    assert blocks.tile_spec(too_big, ident, 1) is None
    # a small compressed file in one block (a 1000² stack written as one 2048² tile) is held whole: every
    # window's read decoded all of it; uncompressed, GDAL reads it without decoding
    one = _layout(shape=(1000, 1000), block=(2048, 2048), count=7, interleave="pixel")
    assert not one.tiled and not one.striped
    assert blocks.tile_spec(one, ident, 1).tile == (2048, 2048)
    assert blocks.tile_spec(_layout(shape=(1000, 1000), block=(2048, 2048), compression="none"), ident, 1) is None
    assert blocks.tile_spec(_layout(shape=(8000, 8000), block=(8000, 8000), count=7, interleave="pixel"),
                            ident, 1) is None  # 854 MiB decoded: not held


def test_small_geotiff_tiles_are_read_straight_through_gdal():
    ident = ("f", 1)
    # 64² and 128² tiles: the tile cache's book-keeping per tile cost more than GDAL decoding a halo again
    for side in (64, 128):
        small = _layout(block=(side, side), count=7, interleave="pixel")
        assert blocks.small_tiles(small) and blocks.tile_spec(small, ident, 1) is None
        assert blocks.bands_spec(_layout(block=(side, side), count=4), ident, (2, 4)) is None
    assert blocks.tile_spec(_layout(block=(256, 256), count=7, interleave="pixel"), ident, 1) is not None
    assert blocks.tile_spec(_layout(block=(512, 128), count=7, interleave="pixel"), ident, 1) is not None
    # strips, a file in one small tile and JPEG 2000's tiles are shared as before
    assert not blocks.small_tiles(_layout(block=(4, 10980)))
    assert blocks.tile_spec(_layout(shape=(100, 100), block=(128, 128)), ident, 1) is not None
    assert blocks.tile_spec(_layout(driver="JP2OpenJPEG", block=(128, 128)), ident, 1) is not None
    # and a pass over such files plans no tile cache for them: GDAL's own, one decoded block set per thread
    p = plan_reads([(_layout(block=(64, 64), count=7, interleave="pixel"), 1.0)] * 2, workers=2, grid_width=10980)
    assert p.tile_cache_bytes is None and p.stripe_px == blocks.STRIPE_PX
    assert p.gdal_cache_bytes == blocks.PASS_GDAL_CACHE_MB * MB


def test_tile_cache_sessions_nest_and_drop_their_blocks():
    cache = blocks.TileCache(4 * MB)
    with cache.session(8 * MB):
        assert cache.active and cache.budget == 8 * MB
        with cache.session():
            assert cache.budget == 8 * MB
        cache._put(("k", 0, 0), np.zeros((16, 16), np.uint16))
        assert cache._bytes > 0
    assert not cache.active and cache.budget == 4 * MB and cache._bytes == 0
    with pytest.raises(AssertionError):
        assert cache.active


def test_ignoring_silences_in_any_thread_and_puts_the_filters_back():
    import threading
    import warnings

    from ecopatch.raster.quiet import ignoring

    class Noise(UserWarning):
        pass

    start = list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with ignoring(Noise):
            warnings.warn("main", Noise, stacklevel=1)
        assert seen == []  # silenced in the main thread
    assert warnings.filters == start

    # in a worker thread too: its block holds the lock every ecopatch thread's filter blocks take
    # (ecopatch._warnfilters), so no other thread's block interleaves with it
    heard = []

    def work():
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            with ignoring(Noise):
                warnings.warn("worker", Noise, stacklevel=1)
            heard.extend(got)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert heard == [] and warnings.filters == start


def test_passes_hand_the_heap_back_every_so_many_windows(monkeypatch):
    import itertools

    from ecopatch.engine import tiling
    from ecopatch.geo.grid import Window

    trims = []
    monkeypatch.setattr(tiling, "_release_pass_memory", lambda: trims.append(1))
    wins = [Window(row_off=0, col_off=64 * i, height=64, width=64) for i in range(5)]

    def run(plan):
        trims.clear()
        monkeypatch.setattr(tiling, "_WINDOWS_RUN", itertools.count())
        p = tiling.WindowPass("t", lambda w: w.col_off, list(wins), list(wins), lambda r: r, reads=plan)
        (got,) = tiling.run_passes([p], scheduler="synchronous", progress=False)
        assert got == [w.col_off for w in wins]
        return len(trims)

    assert run(blocks.ReadPlan(trim_every=1)) == 5 + 1  # each window, then the pass's end
    assert run(blocks.ReadPlan(trim_every=2)) == 3 + 1  # windows 1, 3 and 5
    assert run(blocks.ReadPlan()) == 1


@pytest.mark.parametrize("interleave", ["pixel", "band"])
def test_a_scene_reads_bands_of_one_read_without_copies_and_a_lone_read_owns_its_pixels(tmp_path, interleave):
    # inside band_reads (Scene.read) a window inside the file is the band as read with the others,
    # C-ordered for the kernels; outside, a read is its own array (it holds no other band)
    from ecopatch.geo.grid import Window
    from ecopatch.raster import fileread

    arr = np.random.default_rng(5).integers(1, 5000, (4, 60, 70)).astype(np.uint16)
    p = write_raster(tmp_path / "t.tif", arr, tiled=True, blockxsize=16, blockysize=16, interleave=interleave)
    g = fileread.grid_of(p)[0]
    win = Window(row_off=5, col_off=7, height=40, width=50)
    alone = fileread.read_block(p, 2, g, win, 0)
    assert alone.flags.owndata
    with fileread.band_reads({p: [1, 2, 3]}):
        got = [fileread.read_block(p, b, g, win, 0) for b in (1, 2, 3)]
        edge = fileread.read_block(p, 2, g, Window(row_off=50, col_off=60, height=20, width=20), 9)
    for b, band in zip((1, 2, 3), got):
        np.testing.assert_array_equal(band, arr[b - 1][win.slices])
        assert band.flags.c_contiguous and not band.flags.owndata
    np.testing.assert_array_equal(alone, got[1])
    assert edge.flags.owndata and (edge[10:, :] == 9).all() and (edge[:, 10:] == 9).all()
    np.testing.assert_array_equal(edge[:10, :10], arr[1, 50:60, 60:70])


@pytest.mark.parametrize("compress", ["deflate", None])
def test_band_interleaved_tiled_bands_read_together_are_the_files_pixels(tmp_path, monkeypatch, compress):
    # the bands a read wants (not the others) in one call per window, from the tile cache or straight
    import rasterio

    from ecopatch.geo.grid import Window
    from ecopatch.raster import fileread

    rng = np.random.default_rng(3)
    arr = rng.integers(1, 5000, (5, 70, 90)).astype(np.uint16)
    p = write_raster(tmp_path / "t.tif", arr, tiled=True, blockxsize=16, blockysize=16, interleave="band",
                     **({"compress": compress} if compress else {}))
    assert fileread.file_layout(p).banded
    calls = []
    real = fileread._ds_read
    monkeypatch.setattr(fileread, "_ds_read", lambda ds, idx, win: calls.append(idx) or real(ds, idx, win))
    through_cache = blocks.ds_read
    monkeypatch.setattr(blocks, "ds_read",
                        lambda ds, idx, win, out=None: calls.append(idx) or through_cache(ds, idx, win, out))
    g = fileread.grid_of(p)[0]
    win = Window(row_off=5, col_off=7, height=40, width=50)
    with fileread.band_reads({p: [4, 1, 2]}), blocks.TILES.session():
        got = [fileread.read_block(p, b, g, win, 0) for b in (1, 2, 4)]
        inner = fileread.read_block(p, 2, g, Window(row_off=10, col_off=10, height=5, width=5), 0)
    with rasterio.open(p) as ds:
        want = ds.read([1, 2, 4], window=((5, 45), (7, 57)))
    np.testing.assert_array_equal(np.stack(got), want)
    np.testing.assert_array_equal(inner, want[1, 5:10, 3:8])  # from the same read, inside its window
    assert {tuple(c) if not isinstance(c, int) else (c,) for c in calls} == {(1, 2, 4)}  # band 3, 5 not read
    calls.clear()
    with fileread.band_reads():  # nothing said: band by band, as before
        fileread.read_block(p, 2, g, win, 0)
    assert calls == [2]


@pytest.mark.parametrize("layout", [
    dict(tiled=True, blockxsize=64, blockysize=64, interleave="pixel", compress="deflate"),
    dict(tiled=True, blockxsize=64, blockysize=64, interleave="band"),
    dict(blockysize=8, interleave="pixel", compress="lzw"),
])
def test_a_sample_of_values_reads_a_few_blocks_spread_over_the_file(tmp_path, layout):
    # every pixel holds the number of its 64 x 64 cell, band b adds 10000 * b
    rows, cols = np.divmod(np.arange(640 * 576).reshape(640, 576), 576)
    cell = (rows // 64) * 9 + cols // 64
    arr = np.stack([cell + 10000 * b for b in range(3)]).astype(np.uint16)
    p = write_raster(tmp_path / "s.tif", arr, **layout)
    import rasterio

    with rasterio.open(p) as ds:
        got = blocks.sample_blocks(ds, [1, 3])
    assert got.shape[0] == 2 and got.shape[1] > 0
    assert np.array_equal(got[1] - got[0], np.full(got.shape[1], 20000))  # the bands of the same pixels
    seen = np.unique(got[0])
    if layout.get("tiled"):
        # nine tiles, one in each third of the rows and of the columns: never the whole file
        assert len(seen) == 9 and len(seen) < cell.max() + 1
        assert set(seen // 9) == {1, 5, 8} and set(seen % 9) == {1, 4, 7}
    else:
        # strips of 8 rows: 64 x 64 pixels around the centres of strips 13, 40 and 66 of 80
        assert set(seen // 9) == {1, 2, 4, 5, 7, 8} and set(seen % 9) == {4}


def test_a_sample_of_a_file_smaller_than_its_window_is_the_file(tmp_path):
    import rasterio

    arr = np.arange(5 * 7, dtype=np.float32).reshape(1, 5, 7)
    with rasterio.open(write_raster(tmp_path / "t.tif", arr)) as ds:
        got = blocks.sample_blocks(ds, [1])
    assert np.array_equal(np.unique(got), arr.ravel())


def _tiles_of(tmp_path, *, seed, shape, tile=32):
    """A random uint16 band in ``tile`` × ``tile`` DEFLATE tiles, its tile spec and an empty tile cache."""
    data = np.random.default_rng(seed).integers(0, 60_000, size=(1, *shape), dtype=np.uint16)
    path = write_raster(tmp_path / "t.tif", data, dtype="uint16", tiled=True, blockxsize=tile, blockysize=tile,
                        compress="deflate")
    return data, path, blocks.TileSpec(("t", 1), (tile, tile), None), blocks.TileCache(None)


def test_the_next_stripe_copies_the_last_columns_of_the_tiles_before_it(tmp_path):
    """A stripe's first windows reach a few pixels into tiles long out of the cache: no decode for that."""
    import rasterio

    from ecopatch.geo.grid import Window

    t = 64  # tiles wider than the kept edge
    data, path, spec, cache = _tiles_of(tmp_path, seed=4, shape=(4 * t, 4 * t), tile=t)
    reads = []

    def read(ds, win):
        out = np.zeros((win.height, win.width), np.uint16)
        before = cache.decoded
        cache.read_into(ds, spec, win, out)
        reads.append(cache.decoded - before)
        np.testing.assert_array_equal(out, data[0, win.row_off:win.row_end, win.col_off:win.col_end])

    # a budget of two tiles: whole tiles are evicted at once
    with rasterio.open(path) as ds, cache.session(2 * t * t * 2):
        cache.budget = 2 * t * t * 2
        for r in range(0, 4 * t, t):  # the first stripe, two tiles wide, going down
            read(ds, Window(row_off=r, col_off=0, height=t, width=2 * t))
        decoded = cache.decoded
        # the next stripe's first windows, reaching to their left as far as the edge kept (a detection
        # window set back by its halo and its mask's reach reads twice that, 16 px, to its left)
        for r in range(0, 4 * t, t):
            read(ds, Window(row_off=r, col_off=2 * t - blocks.EDGE_PX, height=t, width=t + blocks.EDGE_PX))
        assert cache.decoded - decoded == 4  # the stripe's own tiles only
        # more than the kept columns: the tile is decoded again
        read(ds, Window(row_off=0, col_off=2 * t - blocks.EDGE_PX - 1, height=8, width=12))
        assert reads[-1] >= 1
    assert not cache._edges and cache._edge_bytes == 0


def test_a_tile_another_thread_is_decoding_is_not_decoded_again(tmp_path, monkeypatch):
    """Two windows side by side start together; the second's halo needs the first's tile: one decode."""
    import rasterio

    from ecopatch.geo.grid import Window

    data, path, spec, cache = _tiles_of(tmp_path, seed=5, shape=(64, 128))
    decoded = []
    first_started = threading.Event()
    real = blocks.ds_read

    def slow_read(ds, indexes, win, out=None):
        decoded.append((win.col_off, win.width))
        if win.col_off == 0:
            first_started.set()
            time.sleep(0.3)  # the first window's tile takes a while: the second asks for it meanwhile
        return real(ds, indexes, win, out)

    monkeypatch.setattr(blocks, "ds_read", slow_read)
    outs = {}

    def read(ds, win):
        out = np.zeros((win.height, win.width), np.uint16)
        cache.read_into(ds, spec, win, out)
        outs[win.col_off] = out

    with rasterio.open(path) as ds, cache.session(1 * MB):
        first = threading.Thread(target=read, args=(ds, Window(row_off=0, col_off=0, height=32, width=32)))
        first.start()
        assert first_started.wait(5)
        # the next window, set back by a 3-pixel halo: it reads the first tile's last 6 columns
        read(ds, Window(row_off=0, col_off=32 - 6, height=32, width=32 + 6))
        first.join()
    assert sorted(decoded) == [(0, 32), (32, 32)]  # each tile once
    np.testing.assert_array_equal(outs[0], data[0, :32, :32])
    np.testing.assert_array_equal(outs[26], data[0, :32, 26:64])
    assert not cache._loading


def test_the_blocks_near_a_few_areas_are_held_from_the_set_up_to_the_pass(tmp_path, monkeypatch):
    """decoded_once(near=...): the blocks within reach of the areas, counted once, held when they fit."""
    from affine import Affine

    from ecopatch.raster import source
    from ecopatch.raster.fileread import decoded_bytes_near
    from ecopatch.raster.scene import open_scene

    monkeypatch.setattr(blocks, "default_budget", lambda: 1 * MB)
    data = np.ones((6, 512, 512), dtype=np.uint16)
    path = write_raster(tmp_path / "s2_20210918.tif", data, dtype="uint16", tiled=True, blockxsize=64,
                        blockysize=64, compress="deflate", interleave="pixel",
                        descriptions=["B02", "B03", "B04", "B08", "B11", "B12"],
                        transform=Affine(10, 0, 500_000, 0, -10, 3_300_000))
    s = open_scene(path)
    one_tile = 64 * 64 * 6 * 2
    inside = (500_100.0, 3_299_500.0, 500_200.0, 3_299_401.0)  # rows 50-59, cols 10-19: tile (0, 0)
    assert decoded_bytes_near([s], [inside], s.grid.crs, 0) == one_tile
    assert decoded_bytes_near([s, s], [inside, inside], s.grid.crs, 0) == one_tile  # each block once
    assert decoded_bytes_near([s], [inside], s.grid.crs, 64) == 4 * one_tile  # clipped at the file's corner
    # the file decoded whole (3 MiB) is above the budget: only the blocks near the area are held
    sessions = []
    real = blocks.TILES.session
    monkeypatch.setattr(blocks.TILES, "session", lambda need=None: sessions.append(need) or real(need))
    with source.decoded_once([s]):
        pass
    assert sessions == []
    with source.decoded_once([s], near=([inside], s.grid.crs)):
        assert sessions == [decoded_bytes_near([s], [inside], s.grid.crs, source.NEAR_PAD_PX)]
    monkeypatch.setattr(source, "NEAR_CACHE_MB", 0)
    sessions.clear()
    with source.decoded_once([s], near=([inside], s.grid.crs)):
        pass
    assert sessions == []
    assert source.near_frames([None], s.grid.crs) is None
    assert source.near_frames([object()], s.grid.crs) is None  # not a GeoDataFrame: the analysis says so

    class Broken:
        crs = "EPSG:4326"

        def to_crs(self, crs):
            raise ValueError("cannot transform")

    assert source.near_frames([Broken()], s.grid.crs) is None


def test_handles_of_large_block_files_are_closed_before_a_pass(tmp_path):
    # a GTiff handle keeps the last block it decoded with it (about 90 MiB for a 7-band uint16 stack
    # tiled 2048, 190 MiB in float32); the thread that read a pass's set-up samples lets go of them
    from ecopatch.geo.grid import Window
    from ecopatch.raster import fileread

    big = str(write_raster(tmp_path / "big.tif", np.zeros((2048, 2048), "uint16"), tiled=True, blockxsize=2048,
                           blockysize=2048, compress="deflate"))  # one 8 MiB block
    small = str(write_raster(tmp_path / "small.tif", np.zeros((512, 512), "uint16"), tiled=True, blockxsize=256,
                             blockysize=256, compress="deflate"))
    plain = str(write_raster(tmp_path / "plain.tif", np.zeros((2048, 2048), "uint16"), tiled=True,
                             blockxsize=2048, blockysize=2048))  # large, but read without decoding

    def read_all():
        for p in (big, small, plain):
            fileread.read_block(p, 1, fileread.grid_of(p)[0], Window(0, 0, 64, 64), fill=0)
        return [fileread.open_dataset(p) for p in (big, small, plain)]

    try:
        ds_big, ds_small, ds_plain = read_all()
        fileread.release_large_handles()
        assert ds_big.closed and not ds_small.closed and not ds_plain.closed
        assert fileread.open_dataset(big) is not ds_big and not fileread.open_dataset(big).closed  # reopened on use
        # a pass starting in this thread lets go of them; a task's session (in a worker process) does not
        from ecopatch.engine.tiling import WindowPass, run_passes

        ds_big = read_all()[0]
        with blocks.ReadPlan().session():
            assert not ds_big.closed
        seen = []
        run_passes([WindowPass("t", seen.append, [1], [Window(0, 0, 1, 1)], lambda r: r, reads=blocks.ReadPlan())],
                   scheduler="synchronous")
        assert seen == [1] and ds_big.closed
    finally:
        fileread.close_datasets()


def test_a_pool_lends_one_handle_per_file_and_opens_another_only_while_it_is_lent(tmp_path):
    p = str(write_raster(tmp_path / "a.tif", np.arange(64 * 64, dtype="uint16").reshape(1, 64, 64)))
    pool = blocks.HandlePool()
    with blocks.open_raster(p) as ds:
        with pool.borrow(ds) as a:
            assert a is not ds  # never the caller's own handle
            with pool.borrow(ds) as b:  # another thread decoding the same file now
                assert b is not a and pool.opened == 2
        assert a.closed and not b.closed  # the first given back is kept for the next decode, the other closed
        with pool.borrow(ds) as c:
            assert c is b and pool.opened == 2
            np.testing.assert_array_equal(c.read(1), ds.read(1))
        pool.close()
        assert b.closed
        with pool.borrow(ds) as d:
            pool.close()  # the pass ends while a decode is still out: closed when given back
        assert d.closed


def test_a_pool_keeps_no_idle_handle_of_a_file_whose_blocks_are_very_large(tmp_path):
    p = str(write_raster(tmp_path / "a.tif", np.arange(64 * 64, dtype="uint16").reshape(1, 64, 64)))
    pool = blocks.HandlePool()
    with blocks.open_raster(p) as ds:
        for i in range(2):
            with pool.borrow(ds, keep_idle=False) as a:
                np.testing.assert_array_equal(a.read(1), ds.read(1))
            assert a.closed and not pool._idle and pool.opened == i + 1  # a fresh handle for each decode
        with pool.borrow(ds) as b:  # a file whose handles may wait: kept
            pass
        assert not b.closed and pool._idle
        pool.close()
        assert b.closed


def test_files_of_very_large_blocks_keep_no_idle_handle():
    """A decoded 7-band uint16 block of 2048² is 56 MiB; GDAL's handle keeps it and its compressed bytes."""
    at = blocks.IDLE_HANDLE_MAX_BYTES
    stack = _layout(count=7, interleave="pixel", block=(2048, 2048))
    assert stack.block_set_bytes >= at
    spec = blocks.tile_spec(stack, ("s",), 1)
    assert spec is not None and spec.pooled and not spec.idle
    smaller = blocks.tile_spec(_layout(count=7, interleave="pixel", block=(1024, 1024)), ("t",), 1)
    assert smaller is not None and smaller.pooled and smaller.idle  # 14 MiB: large, its handle kept
    band = _layout(count=7, interleave="band", block=(2048, 2048))  # one band's block: 8 MiB
    both = blocks.bands_spec(band, ("b",), (1, 2))
    assert both is not None and both.pooled and both.idle
    strips = _layout(count=7, interleave="pixel", block=(512, 10980))  # 75 MiB strips
    spec = blocks.tile_spec(strips, ("r",), 1)
    assert spec is not None and spec.pooled and not spec.idle


@pytest.mark.parametrize("idle", [True, False])
def test_blocks_of_large_block_files_are_decoded_by_the_pools_handles_not_the_threads(tmp_path, monkeypatch, idle):
    """Each reading thread's handle would keep a decoded block of 8 MiB or more: the pass's pool decodes them.

    ``idle=False``: blocks at the bound above which the pool keeps no idle handle (lowered to these 8 MiB).
    """
    from ecopatch.geo.grid import Window
    from ecopatch.raster import fileread

    if not idle:
        monkeypatch.setattr(blocks, "IDLE_HANDLE_MAX_BYTES", 8 * MB)

    rng = np.random.default_rng(3)
    data = rng.integers(0, 4000, (4, 2048, 2048), dtype=np.uint16)
    path = str(write_raster(tmp_path / "stack.tif", data, tiled=True, blockxsize=1024, blockysize=1024,
                            compress="deflate", interleave="pixel"))
    layout = fileread.file_layout(path)
    assert layout.large_blocks and layout.block_set_bytes == 8 * MB
    assert not fileread.file_layout(write_raster(tmp_path / "s.tif", data[:, :512, :512], tiled=True,
                                                 compress="deflate", interleave="pixel")).large_blocks
    real = blocks.ds_read
    own: list = []
    readers: list = []

    def read(ds, indexes, win, out=None):
        readers.append(ds)
        return real(ds, indexes, win, out)

    monkeypatch.setattr(blocks, "ds_read", read)
    monkeypatch.setattr(fileread, "_ds_read", read)
    opened: list = []
    real_open = blocks.open_raster
    monkeypatch.setattr(blocks, "open_raster", lambda p: opened.append(real_open(p)) or opened[-1])
    wins = [Window(row_off=r, col_off=c, height=300, width=300) for r in (0, 900) for c in (0, 900, 1700)]
    wins.append(Window(row_off=1024, col_off=1024, height=1024, width=1024))  # one whole tile: read straight
    got: dict = {}

    def worker(ws):
        for w in ws:
            got[w] = fileread.interleaved_band(path, 2, w, True)
        own.append(fileread.open_dataset(path))
        fileread.close_datasets()

    pool = blocks.TILES.handles
    try:
        with blocks.TILES.session(64 * MB):
            threads = [threading.Thread(target=worker, args=(wins[i::2],)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert readers and not any(r in own for r in readers)  # no block decoded by a thread's own handle
            if idle:
                # one handle kept for the next decode; any other opened while it was lent is closed
                assert len(pool._idle) == 1 and [h for h in opened if not h.closed] == list(pool._idle.values())
            else:  # each decode opened a handle and closed it
                pooled = [r for r in readers if r in opened]
                assert pooled and len(set(map(id, pooled))) == len(pooled)
                assert not pool._idle and all(h.closed for h in opened)
        assert all(h.closed for h in opened) and not pool._idle  # the pass is over: its handles are closed
        for w in wins:
            np.testing.assert_array_equal(got[w], data[1][w.slices])
        # outside a pass, reads go through the thread's own handle
        readers.clear()
        fileread.interleaved_band(path, 2, wins[0], True)
        assert readers == [fileread.open_dataset(path)]
    finally:
        fileread.close_datasets()
