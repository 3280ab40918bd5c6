"""Windowed processing gives the same answer whatever the block size or scheduler."""

import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine
from shapely.geometry import box

import ecopatch
from ecopatch.encroachment import observation_table
from ecopatch.grid import Grid
from ecopatch.tiling import blocks_touching, run_tasks
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


def test_assess_is_block_invariant(pair):
    _, before, after, mines = pair
    a = ecopatch.assess_restoration(mines, before, after, block=1024, progress=False)
    b = ecopatch.assess_restoration(mines, before, after, block=16, scheduler="synchronous", progress=False)
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
    local_a = ecopatch.assess_restoration(mines, before, after, block=64, progress=False)
    local_d = ecopatch.detect_changes(before, after, s.reserves, block=64, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        dist_a = ecopatch.assess_restoration(mines, before, after, block=64, scheduler=client, progress=False)
        dist_d = ecopatch.detect_changes(before, after, s.reserves, block=64, scheduler=client, progress=False)
        addr = ecopatch.assess_restoration(mines, before, after, block=64, scheduler=cluster.scheduler_address,
                                           progress=False)
    np.testing.assert_array_equal(_numeric(local_a), _numeric(dist_a))
    np.testing.assert_array_equal(_numeric(local_a), _numeric(addr))
    assert list(local_d["patch_id"]) == list(dist_d["patch_id"])
    np.testing.assert_array_equal(_numeric(local_d), _numeric(dist_d))
    assert shapely.equals_exact(local_d.geometry.to_numpy(), dist_d.geometry.to_numpy(), 0).all()
