"""ecopatch leaves no process-wide setting behind: GDAL's cache, the C allocator, its own caches.

What a user reads after an ecopatch call, in the same process, runs with the
settings a fresh process has (checked on the settings themselves, not on
wall time: timings are in benchmarks/bench_e2e.py).
"""

import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.env import get_gdal_config

import ecopatch
from ecopatch.raster import fileread as raster
from tests.conftest import write_raster
from tests.scenes import write_pair
from tests.test_engine import _FakeLibc


@pytest.fixture(scope="module")
def tiled_pair(tmp_path_factory):
    s, before, after = write_pair(tmp_path_factory.mktemp("state"), tile=32, shape=(200, 240), seed=11,
                                  n_mines=3, n_encroachments=6, n_decoys=1)
    return s, before, after, s.mines.rename(columns={"矿山编号": "patch_id"})


def _fresh_process_cachemax() -> int:
    code = "from rasterio.env import get_gdal_config; print(get_gdal_config('GDAL_CACHEMAX'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


# the pair's low-coverage mine warns (expected; not what this test is about)
@pytest.mark.filterwarnings("ignore::ecopatch.errors.EcopatchWarning")
def test_calls_leave_gdal_the_allocator_and_caches_as_a_fresh_process_has_them(tiled_pair, tmp_path, monkeypatch):
    import ecopatch.engine.tiling as tiling
    from ecopatch.outputs.maps import change_map
    from ecopatch.outputs.report import write_report
    from ecopatch.raster.quicklook import shared_reads

    s, before, after, mines = tiled_pair
    for k in ("GDAL_CACHEMAX", "ECOPATCH_GDAL_CACHE_MB", *tiling._MALLOC_ENV):
        monkeypatch.delenv(k, raising=False)
    libc = _FakeLibc()
    monkeypatch.setattr(tiling, "_glibc", lambda: libc)
    monkeypatch.setattr(tiling, "_heap_tuned", False)
    monkeypatch.setattr(tiling, "_malloc_opt_in", False)
    fresh = _fresh_process_cachemax()
    assert get_gdal_config("GDAL_CACHEMAX") == fresh
    had_env = rasterio.env.hasenv()
    def ours():
        """The warning filters ecopatch itself has reason to touch (libraries imported lazily by the calls,
        scipy.special for one, add their own filters on import: not a side effect of ecopatch's)."""
        return [f for f in warnings.filters
                if f[2].__module__.startswith(("ecopatch", "rasterio")) or "fork" in str(f[1] and f[1].pattern)]

    filters = ours()

    # the GDAL cache ecopatch's reads ran with (seen from inside the windows)
    during = []
    read_into = raster.read_into

    def spy(*a, **kw):
        during.append(get_gdal_config("GDAL_CACHEMAX"))
        return read_into(*a, **kw)

    monkeypatch.setattr(raster, "read_into", spy)

    def settled(what):
        assert get_gdal_config("GDAL_CACHEMAX") == fresh, what
        seen = []
        t = threading.Thread(target=lambda: seen.append(get_gdal_config("GDAL_CACHEMAX")))
        t.start()
        t.join()
        assert seen == [fresh], what  # in any thread
        assert rasterio.env.hasenv() == had_env, what
        assert raster.TILES._bytes == 0 and not raster.TILES.active, what  # no decoded block kept
        assert [c for c in libc.calls if c[0] == "mallopt"] == [], what  # allocator settings untouched
        assert ours() == filters, what  # no warning filter added or dropped (worker threads)

    table = ecopatch.assess_restoration(before, after, mines, block=64, progress=False)
    assert during and max(during) < fresh  # the pass itself ran with a small GDAL cache ...
    settled("assess_restoration")  # ... and gave the user's back
    patches = ecopatch.detect_changes(before, after, s.reserves, block=64, progress=False)
    settled("detect_changes")
    ecopatch.assess_and_detect(before, after, mines, s.reserves, block=64, progress=False)
    settled("assess_and_detect")
    with shared_reads():
        after.read_decimated(max_pixels=5000)
        fig = change_map(before, after, patches, lang="en")
    settled("shared_reads, change_map")
    assert fig.axes
    write_report(tmp_path / "report", assessment=table, patches=patches, before=before, after=after,
                 lang="en", workers=2)
    settled("write_report")

    # the user's own read of a pixel-interleaved file afterwards: all bands, decimated, as GDAL reads it
    arr = np.arange(4 * 96 * 128, dtype=np.uint16).reshape(4, 96, 128)
    user = write_raster(tmp_path / "user.tif", arr, tiled=True, blockxsize=32, blockysize=32, compress="deflate",
                        interleave="pixel")
    with rasterio.open(user) as ds:
        got = ds.read(out_shape=(4, 48, 64))
    np.testing.assert_array_equal(got, arr[:, 1::2, 1::2])  # nearest: the centre pixel of each 2 x 2
    settled("user read")


def test_malloc_tuning_only_when_asked(tiled_pair, monkeypatch):
    import ecopatch.engine.tiling as tiling

    s, before, after, mines = tiled_pair
    for k in tiling._MALLOC_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    libc = _FakeLibc()
    monkeypatch.setattr(tiling, "_glibc", lambda: libc)
    monkeypatch.setattr(tiling, "_heap_tuned", False)
    monkeypatch.setattr(tiling, "_malloc_opt_in", False)
    ecopatch.detect_changes(before, after, s.reserves, block=64, progress=False)
    assert [c[0] for c in libc.calls] == ["trim"]
    tiling.tune_malloc()
    ecopatch.detect_changes(before, after, s.reserves, block=64, progress=False)
    assert [c[0] for c in libc.calls].count("mallopt") == 2


@pytest.mark.filterwarnings("ignore::ecopatch.errors.EcopatchWarning")
def test_figures_leave_matplotlibs_fonts_and_rcparams_as_they_were(tiled_pair, tmp_path):
    """ecopatch's figures use their CJK font through a scoped rc_context / the font's file: matplotlib's
    global font list, its rcParams and its font lookups are the same after ecopatch draws (in Chinese)."""
    import matplotlib as mpl
    from matplotlib import font_manager as fm

    from ecopatch.outputs.maps import change_map, mine_card, overview_map
    from ecopatch.outputs.report import write_report

    s, before, after, mines = tiled_pair
    fonts_before = [(e.name, e.fname, e.weight) for e in fm.fontManager.ttflist]
    rc_before = dict(mpl.rcParams)
    default_font = fm.findfont(fm.FontProperties())

    table = ecopatch.assess_restoration(before, after, mines, block=64, progress=False)
    patches = ecopatch.detect_changes(before, after, s.reserves, block=64, progress=False)
    figs = [change_map(before, after, patches, lang="zh"),
            mine_card(str(table["patch_id"].iloc[0]), table, before, after, lang="zh"),
            overview_map(table, s.reserves, patches, lang="zh")]
    for i, fig in enumerate(figs):
        fig.savefig(tmp_path / f"f{i}.png")
    write_report(tmp_path / "report", assessment=table, patches=patches, before=before, after=after, lang="zh")

    assert [(e.name, e.fname, e.weight) for e in fm.fontManager.ttflist] == fonts_before
    # ... and the font list is the one a fresh process has (nothing ecopatch drew before this test added to it)
    code = "from matplotlib import font_manager as fm; print(sorted({e.fname for e in fm.fontManager.ttflist}))"
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert str(sorted({e.fname for e in fm.fontManager.ttflist})) == fresh
    assert dict(mpl.rcParams) == rc_before
    assert fm.findfont(fm.FontProperties()) == default_font
