"""Windowed processing gives the same answer whatever the block size or scheduler."""

import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine
from shapely.geometry import box

import ecopatch
from ecopatch.analyses.encroachment import observation_table
from ecopatch.engine.tiling import SMALL_JOB_PX, blocks_touching, locality_order, run_tasks
from ecopatch.geo.grid import Grid, Window
from tests.scenes import write_pair


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    s, before, after = write_pair(tmp_path_factory.mktemp("pair"), shape=(220, 260), seed=11,
                                  n_mines=4, n_encroachments=8, n_decoys=2)
    mines = s.mines.rename(columns={"矿山编号": "patch_id"})
    return s, before, after, mines


def _numeric(df):
    return df.select_dtypes("number").to_numpy(dtype=float)


def test_plan_reads_only_blocks_touching_patches():
    g = Grid((10980, 10980), Affine(10, 0, 699_960, 0, -10, 3_400_020), "EPSG:32650")
    tiny = box(750_000, 3_350_000, 750_050, 3_350_050)
    plan = blocks_touching(g, [tiny], block=512)
    assert len(plan) == 1 and plan[0][1].tolist() == [0]
    # a polygon on a block corner touches 4 blocks, and the plan is independent of the others
    corner = box(699_960 + 5110, 3_400_020 - 5130, 699_960 + 5130, 3_400_020 - 5110)
    assert len(blocks_touching(g, [corner], block=512)) == 4


def test_run_tasks_orders_results_and_rejects_unknown_scheduler():
    assert run_tasks(abs, [-3, 1, -2], progress=False) == [3, 1, 2]
    assert run_tasks(abs, [-3], scheduler="synchronous", progress=False) == [3]
    with pytest.raises(ecopatch.errors.ConfigError, match="scheduler="):
        run_tasks(abs, [1], scheduler="gpu")


def test_run_tasks_starts_items_in_the_given_order_and_returns_them_in_item_order(monkeypatch):
    import threading

    started = []

    def work(i):
        started.append(i)
        return -i

    order = [3, 0, 4, 1, 5, 2]
    monkeypatch.setenv("ECOPATCH_NUM_WORKERS", "1")
    for sched in (None, "synchronous"):
        started.clear()
        assert run_tasks(work, range(6), scheduler=sched, order=order, progress=False) == [0, -1, -2, -3, -4, -5]
        assert started == order
    with pytest.raises(ecopatch.errors.ConfigError, match="permutation"):
        run_tasks(work, range(3), order=[0, 0, 1])
    # a small job runs in the calling thread unless a scheduler is named
    caller = threading.get_ident()
    assert run_tasks(lambda _: threading.get_ident(), [1, 2], work_px=SMALL_JOB_PX - 1) == [caller, caller]
    monkeypatch.setenv("ECOPATCH_NUM_WORKERS", "2")
    assert caller not in run_tasks(lambda _: threading.get_ident(), [1, 2], work_px=SMALL_JOB_PX)


def test_locality_order_walks_stripes_row_by_row_down_one_and_up_the_next():
    wins = [Window(row_off=r * 512, col_off=c * 512, height=512, width=512) for r in range(3) for c in range(6)]
    got = [(wins[i].row_off // 512, wins[i].col_off // 512) for i in locality_order(wins, stripe_px=2048)]
    assert got[:8] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]
    # the second stripe starts where the first ended, at the bottom, whose tiles are still cached
    assert got[12:] == [(2, 4), (2, 5), (1, 4), (1, 5), (0, 4), (0, 5)]
    assert sorted(locality_order(wins)) == list(range(len(wins)))


@pytest.fixture(scope="module")
def tiled_pair(tmp_path_factory):
    s, before, after = write_pair(tmp_path_factory.mktemp("tiled"), tile=32, shape=(220, 260), seed=11,
                                  n_mines=4, n_encroachments=8, n_decoys=2)
    return s, before, after, s.mines.rename(columns={"矿山编号": "patch_id"})


@pytest.mark.usefixtures("shared_small_tiles")
def test_tiled_files_give_the_same_results_through_the_tile_cache(pair, tiled_pair, monkeypatch):
    # the same pixels stored in 32 x 32 tiles: padded windows then take their neighbours' tiles from
    # the shared tile cache; results must equal the striped files' to the last bit, and a cache of
    # a cache of 150 tiles (of about 900, so evicting all the time) must change nothing either
    from ecopatch.raster import fileread as raster

    s, before, after, mines = pair
    _, tb, ta, _ = tiled_pair
    d = ecopatch.detect_changes(before, after, s.reserves, block=64, progress=False)
    r = ecopatch.assess_restoration(before, after, mines, block=64, progress=False)
    for budget in (None, 150 * 32 * 32 * 2):
        if budget:
            monkeypatch.setattr(raster.TILES, "budget", budget)
        raster.TILES.clear()
        hits = raster.TILES.hits
        dt = ecopatch.detect_changes(tb, ta, s.reserves, block=64, progress=False)
        rt = ecopatch.assess_restoration(tb, ta, mines, block=64, progress=False)
        assert raster.TILES.hits > hits
        assert raster.TILES._bytes <= raster.TILES.budget
        pd.testing.assert_frame_equal(d.drop(columns="geometry"), dt.drop(columns="geometry"))
        assert d.geometry.geom_equals_exact(dt.geometry, 0).all()
        pd.testing.assert_frame_equal(r, rt)


def test_assess_is_block_invariant(pair):
    _, before, after, mines = pair
    a = ecopatch.assess_restoration(before, after, mines, block=1024, progress=False)
    b = ecopatch.assess_restoration(before, after, mines, block=16, scheduler="synchronous", progress=False)
    np.testing.assert_allclose(_numeric(a), _numeric(b), rtol=1e-9, atol=1e-6)
    assert list(a["status"]) == list(b["status"])


def test_detect_is_block_invariant(pair):
    s, before, after, _ = pair
    a = ecopatch.detect_changes(before, after, s.reserves, block=1024, progress=False)
    b = ecopatch.detect_changes(before, after, s.reserves, block=24, scheduler="synchronous", progress=False)
    assert len(a) > 0
    assert list(a["patch_id"]) == list(b["patch_id"])
    assert a.geometry.geom_equals(b.geometry).all()
    np.testing.assert_allclose(_numeric(a), _numeric(b), rtol=1e-9, atol=1e-6)
    pd.testing.assert_frame_equal(observation_table(a), observation_table(b), rtol=1e-9)


@pytest.mark.slow
def test_distributed_cluster_equals_threads(pair):
    distributed = pytest.importorskip("distributed")
    s, before, after, mines = pair
    local_a = ecopatch.assess_restoration(before, after, mines, block=64, progress=False)
    local_d = ecopatch.detect_changes(before, after, s.reserves, block=64, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        dist_a = ecopatch.assess_restoration(before, after, mines, block=64, scheduler=client, progress=False)
        dist_d = ecopatch.detect_changes(before, after, s.reserves, block=64, scheduler=client, progress=False)
        addr = ecopatch.assess_restoration(before, after, mines, block=64, scheduler=cluster.scheduler_address,
                                           progress=False)
        joint_a, joint_d = ecopatch.assess_and_detect(before, after, mines, s.reserves, block=64, scheduler=client,
                                                      progress=False)
    np.testing.assert_array_equal(_numeric(local_a), _numeric(dist_a))
    np.testing.assert_array_equal(_numeric(local_a), _numeric(addr))
    assert list(local_d["patch_id"]) == list(dist_d["patch_id"])
    np.testing.assert_array_equal(_numeric(local_d), _numeric(dist_d))
    assert shapely.equals_exact(local_d.geometry.to_numpy(), dist_d.geometry.to_numpy(), 0).all()
    # both jobs as one pass on the cluster
    np.testing.assert_array_equal(_numeric(local_a), _numeric(joint_a))
    assert list(local_d["patch_id"]) == list(joint_d["patch_id"])
    np.testing.assert_array_equal(_numeric(local_d), _numeric(joint_d))
    assert shapely.equals_exact(local_d.geometry.to_numpy(), joint_d.geometry.to_numpy(), 0).all()


def _blocks_touching_reference(grid, geometries, block, pad, offset=0):
    """The plan computed geometry by geometry with Grid.window_from_bounds (the definition)."""
    out = {}
    for i, geom in enumerate(geometries):
        if geom is None or geom.is_empty:
            continue
        win = grid.window_from_bounds(geom.bounds, pad=pad, clip=True)
        if win is None:
            continue
        for br in range(-1, grid.shape[0] // block + 2):
            for bc in range(-1, grid.shape[1] // block + 2):
                cell = Window(row_off=br * block - offset, col_off=bc * block - offset, height=block, width=block)
                if cell.intersection(grid.window) is not None and cell.intersection(win) is not None:
                    out.setdefault((br, bc), []).append(i)
    return [(Window(row_off=br * block - offset, col_off=bc * block - offset, height=block,
                    width=block).intersection(grid.window), idx)
            for (br, bc), idx in sorted(out.items())]


@pytest.mark.parametrize("e", [-10.0, 10.0])
def test_blocks_touching_equals_its_per_geometry_definition(e):
    from shapely.geometry import LineString, Point

    rng = np.random.default_rng(3)
    g = Grid((300, 410), Affine(10, 0, 500_000, 0, e, 3_000_000), "EPSG:32650")
    left, bottom, right, top = g.bounds
    geoms = []
    for _ in range(400):
        x, y = rng.uniform(left - 300, right + 300), rng.uniform(bottom - 300, top + 300)
        w, h = rng.choice([0.0, 3.0, 10.0, 55.5, 700.0, 5000.0], size=2)
        kind = rng.integers(0, 5)
        geoms.append(None if kind == 0 else shapely.Polygon() if kind == 1 else Point(x, y) if kind == 2
                     else LineString([(x, y), (x + w, y)]) if kind == 3 else box(x, y, x + w + 0.1, y + h + 0.1))
    for block, pad, offset in ((16, 0, 0), (64, 1, 0), (100, 2, 0), (16, 0, 15), (64, 3, 3), (100, 2, 7)):
        got = blocks_touching(g, geoms, block=block, pad=pad, offset=offset)
        want = _blocks_touching_reference(g, geoms, block, pad, offset)
        assert [w for w, _ in got] == [w for w, _ in want]
        assert [list(i) for _, i in got] == [i for _, i in want]


class _FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("trim", pad))
        return 1


def test_batches_reuse_freed_buffers_only_where_a_malloc_variable_is_set(monkeypatch):
    import threading

    import ecopatch.engine.tiling as tiling

    fake = _FakeLibc()
    monkeypatch.setattr(tiling, "_glibc", lambda: fake)
    monkeypatch.setattr(tiling, "_heap_tuned", False)
    monkeypatch.setattr(tiling, "_malloc_opt_in", False)
    for k in tiling._MALLOC_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    # not asked for: the allocator is left alone, with or without a nanny's variable
    assert tiling._call_batch(lambda x: x * 2, [1, 2]) == [2, 4]
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    assert tiling._call_batch(lambda x: x * 2, [1, 2]) == [2, 4]
    assert fake.calls == [] and not tiling._heap_tuned
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")

    # opted in (tune_malloc(), or tune=True as run_tasks hands it to cluster workers)
    tune = [("mallopt", tiling._M_MMAP_THRESHOLD, tiling._HEAP_THRESHOLD),
            ("mallopt", tiling._M_TRIM_THRESHOLD, tiling._HEAP_THRESHOLD)]
    assert tiling._call_batch(lambda x: x * 2, [1, 2], tune=True) == [2, 4]
    assert fake.calls == tune  # a worker without a nanny: set once, for the process
    assert tiling._call_batch(lambda x: x * 2, [1, 2]) == [2, 4]
    assert fake.calls == tune  # not again
    fake.calls.clear()

    # as a dask nanny starts its workers: its choice is kept, and the batch raises the
    # mmap threshold only for its own length
    monkeypatch.setattr(tiling, "_heap_tuned", False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    inside = []
    assert tiling._call_batch(lambda x: inside.append(list(fake.calls)) or x, [7]) == [7]
    assert inside == [[("mallopt", tiling._M_MMAP_THRESHOLD, tiling._MMAP_THRESHOLD_MAX)]]
    assert fake.calls[1:] == [("mallopt", tiling._M_MMAP_THRESHOLD, tiling._MMAP_THRESHOLD_DEFAULT), ("trim", 0)]

    # overlapping batches on two threads: set once, restored when the last one ends
    fake.calls.clear()
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "262144")
    first_in, second_done = threading.Event(), threading.Event()

    def slow(_):
        first_in.set()
        assert second_done.wait(10)
        return "slow"

    t = threading.Thread(target=lambda: tiling._call_batch(slow, [0]))
    t.start()
    assert first_in.wait(10)
    tiling._call_batch(lambda x: x, [1])
    assert [c for c in fake.calls if c[0] == "trim"] == []  # the other batch is still running
    second_done.set()
    t.join(10)
    assert fake.calls == [("mallopt", tiling._M_MMAP_THRESHOLD, tiling._MMAP_THRESHOLD_MAX),
                          ("mallopt", tiling._M_MMAP_THRESHOLD, 262144), ("trim", 0)]
    assert tiling._reuse_depth == 0


def test_glibc_handle_has_the_functions_the_batches_call():
    import platform

    import ecopatch.engine.tiling as tiling

    libc = tiling._glibc()
    if platform.libc_ver()[0] != "glibc":
        assert libc is None
    else:
        assert libc.malloc_trim(0) in (0, 1)


def test_windowed_passes_hand_freed_heap_back(pair, monkeypatch):
    import ecopatch.engine.tiling as tiling
    from ecopatch.raster import blocks

    s, before, after, mines = pair
    fake = _FakeLibc()
    monkeypatch.setattr(tiling, "_glibc", lambda: fake)
    # these files are striped: their passes also trim every few windows (tests/raster/test_blocks.py)
    monkeypatch.setattr(blocks, "TRIM_STRIPED", 0)
    # the first pass of the process sets glibc's thresholds; every pass ends by trimming
    monkeypatch.setattr(tiling, "_heap_tuned", False)
    for k in tiling._MALLOC_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.rtld.optional_static_tls=2048")  # not a malloc one
    # without the opt-in no allocator setting is touched: a pass only hands freed heap back
    monkeypatch.setattr(tiling, "_malloc_opt_in", False)
    ecopatch.assess_restoration(before, after, mines, progress=False)
    assert fake.calls == [("trim", 0)] and not tiling._heap_tuned
    fake.calls.clear()
    tiling.tune_malloc()
    tune = [("mallopt", tiling._M_MMAP_THRESHOLD, tiling._HEAP_THRESHOLD),
            ("mallopt", tiling._M_TRIM_THRESHOLD, tiling._HEAP_THRESHOLD)]
    ecopatch.assess_restoration(before, after, mines, progress=False)
    assert fake.calls == tune + [("trim", 0)]
    ecopatch.detect_changes(before, after, s.reserves, progress=False)
    assert fake.calls == tune + [("trim", 0)] * 2
    fake.calls.clear()
    ecopatch.detect_changes(before, after, s.reserves, progress=False, scheduler="synchronous")
    assert fake.calls == [("trim", 0)]
    # malloc settings chosen by the user are left alone
    monkeypatch.setattr(tiling, "_heap_tuned", False)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576")
    fake.calls.clear()
    ecopatch.detect_changes(before, after, s.reserves, progress=False)
    assert fake.calls == [("trim", 0)]


def test_blocks_set_back_by_an_offset_stay_in_the_stripe_whose_tiles_they_read():
    g = Grid((1200, 5000), Affine(10, 0, 0, 0, -10, 12_000), "EPSG:32650")
    plan = blocks_touching(g, [box(*g.bounds)], block=1024, pad=0, offset=3)
    wins = [w for w, _ in plan]
    assert [w.col_off for w in wins[:5]] == [0, 1021, 2045, 3069, 4093]
    assert wins[0].width == 1021 and wins[4].col_end == 5000
    stripes = [(wins[i].col_off, wins[i].row_off) for i in locality_order(wins, stripe_px=2048)]
    # stripe 0 holds the blocks before column 2045 (their last column, 2044, is in it)
    assert stripes[:4] == [(0, 0), (1021, 0), (0, 1021), (1021, 1021)]
    assert stripes[4:8] == [(2045, 1021), (3069, 1021), (2045, 0), (3069, 0)]
    with pytest.raises(ecopatch.errors.ConfigError, match="offset"):
        blocks_touching(g, [box(*g.bounds)], block=64, offset=64)


def test_detection_windows_are_set_back_by_the_statistic_s_halo(pair):
    """A detection window reads its halo and its scenes' reach around it: set back by both, its reads end on a block."""
    from ecopatch.analyses.encroachment import detection_pass
    from ecopatch.compute.change import ChangeParams
    from ecopatch.raster.source import read_reach_px

    s, before, after, _ = pair
    # and by how far the scenes' reads reach beyond it (the 20 m SCL grown by its cloud margin)
    reach = read_reach_px((before, after), before.grid)
    assert reach == 3
    offset = ChangeParams().halo_px + reach
    p = detection_pass(before, after, s.reserves, block=64)
    cols = {t.window.col_off for t in p.tasks}
    rows = {t.window.row_off for t in p.tasks}
    assert len(cols) > 2 and len(rows) > 1
    assert all(c == 0 or (c + offset) % 64 == 0 for c in cols)
    assert all(r == 0 or (r + offset) % 64 == 0 for r in rows)
