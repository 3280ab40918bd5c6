"""assess_and_detect: both jobs from one read of the imagery, with the results of the two calls."""

import warnings

import numpy as np
import pandas as pd
import pytest
import shapely

import ecopatch
from ecopatch.analyses.encroachment import observation_table
from ecopatch.engine.tiling import joint_order, locality_order
from ecopatch.errors import ConfigError, LowCoverageWarning, NoOverlapError
from ecopatch.geo.grid import Window
from ecopatch.options import AssessOptions, DetectOptions
from ecopatch.raster import fileread as raster
from tests.scenes import write_pair


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    # 32 x 32 GeoTIFF tiles, so the windows go through the shared tile cache
    s, before, after = write_pair(tmp_path_factory.mktemp("joint"), tile=32, shape=(220, 260), seed=11,
                                  n_mines=4, n_encroachments=8, n_decoys=2)
    return s, before, after, s.mines.rename(columns={"矿山编号": "patch_id"})


def _same_assessment(a, b):
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
    assert shapely.equals_exact(a.geometry.to_numpy(), b.geometry.to_numpy(), 0).all()


def _same_patches(a, b):
    assert len(a) > 0
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
    assert shapely.equals_exact(a.geometry.to_numpy(), b.geometry.to_numpy(), 0).all()
    pd.testing.assert_frame_equal(observation_table(a), observation_table(b))


@pytest.mark.usefixtures("shared_small_tiles")
@pytest.mark.parametrize("scheduler", [None, "synchronous"])
def test_joint_run_equals_the_two_calls_and_decodes_less(tiled, scheduler):
    s, before, after, mines = tiled
    opts = {"min_area_m2": 200.0, "margin_m": 20.0}
    raster.TILES.clear()
    d0 = raster.TILES.decoded
    a = ecopatch.assess_restoration(before, after, mines, block=64, scheduler=scheduler, progress=False)
    raster.TILES.clear()
    d = ecopatch.detect_changes(before, after, s.reserves, block=64, scheduler=scheduler, progress=False, **opts)
    separate = raster.TILES.decoded - d0
    raster.TILES.clear()
    d1 = raster.TILES.decoded
    ja, jd = ecopatch.assess_and_detect(before, after, mines, s.reserves, detection=DetectOptions(**opts), block=64,
                                        scheduler=scheduler, progress=False)
    joint = raster.TILES.decoded - d1
    _same_assessment(a, ja)
    _same_patches(d, jd)
    # the assessment's tiles come from the detection's reads
    assert joint < separate


def _decoded_pixels(monkeypatch):
    """Count the pixels GDAL decodes, through the tile cache and straight."""
    from ecopatch.raster import blocks

    px = []
    through_cache, straight = blocks.ds_read, raster._ds_read

    def count(real):
        def read(ds, indexes, win, out=None):
            px.append(win.height * win.width)
            return real(ds, indexes, win, out)
        return read

    monkeypatch.setattr(blocks, "ds_read", count(through_cache))
    monkeypatch.setattr(raster, "_ds_read", count(straight))
    return px


@pytest.mark.usefixtures("shared_small_tiles")
@pytest.mark.parametrize("call", ["detect", "joint"])
def test_small_files_are_decoded_once_from_the_set_up_to_the_pass(tiled, monkeypatch, call):
    # the set-up's sample windows and the pass read the same blocks: for files that fit in the tile
    # cache whole, the blocks are kept from one to the other (decoded_once), and the results are the same
    import contextlib

    from ecopatch.analyses import encroachment, joint
    from ecopatch.raster import blocks

    s, before, after, mines = tiled

    def run():
        if call == "detect":
            return ecopatch.detect_changes(before, after, s.reserves, block=64, progress=False, min_area_m2=200.0)
        return ecopatch.assess_and_detect(before, after, mines, s.reserves, block=64, progress=False)

    px = _decoded_pixels(monkeypatch)
    held = run()
    assert not blocks.TILES.active and not blocks.TILES._tiles  # nothing stays after the call
    held_px = sum(px)
    for module in (encroachment, joint):
        monkeypatch.setattr(module, "decoded_once", lambda sources, near=None: contextlib.nullcontext())
    px.clear()
    plain = run()
    for a, b in zip(held if call == "joint" else [held], plain if call == "joint" else [plain]):
        pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
        assert shapely.equals_exact(a.geometry.to_numpy(), b.geometry.to_numpy(), 0).all()
    assert held_px < 0.8 * sum(px)


def test_files_larger_than_the_tile_cache_are_not_held(tiled, monkeypatch):
    from ecopatch.raster import blocks
    from ecopatch.raster.arrays import from_array
    from ecopatch.raster.source import decoded_once

    s, before, after, mines = tiled
    with decoded_once([before, after]):
        assert blocks.TILES.active
    assert not blocks.TILES.active
    monkeypatch.setenv("ECOPATCH_TILE_CACHE_MB", "0")
    with decoded_once([before, after]):
        assert not blocks.TILES.active
    arrays = from_array(np.zeros((3, 8, 8)), transform=before.grid.transform, crs=before.grid.crs,
                        bands=["red", "nir", "swir1"], date="2024-01-01")
    with decoded_once([None, arrays]):
        assert not blocks.TILES.active


def test_joint_run_samples_each_scene_once(tiled, monkeypatch):
    # both jobs estimate the before scene's end-members from the same sample: taken once
    from ecopatch.analyses import restoration

    s, before, after, mines = tiled
    seen = []
    real = restoration.read_sample

    def counting(scene, **kw):
        seen.append(scene)
        return real(scene, **kw)

    monkeypatch.setattr(restoration, "read_sample", counting)
    ecopatch.assess_and_detect(before, after, mines, s.reserves, block=64, progress=False)
    assert sum(x is before for x in seen) == 1 and sum(x is after for x in seen) == 1
    seen.clear()
    ecopatch.assess_restoration(before, after, mines, block=64, progress=False)
    ecopatch.detect_changes(before, after, s.reserves, block=64, progress=False)
    # detection of a reflectance pair types cover with fixed rules in the normalised space and
    # samples no end-members: only the assessment samples the before scene
    assert sum(x is before for x in seen) == 1
    seen.clear()
    with restoration.shared_scene_estimates():
        p = ecopatch.CoverParams(veg_spectrum=[("red", 0.03), ("nir", 0.4)])  # unhashable: not memoised
        restoration.prepare_cover_params(before, p)
        restoration.prepare_cover_params(before, p)
    assert len(seen) == 2


def test_joint_run_passes_each_job_its_options(tiled):
    s, before, after, mines = tiled
    rules = ecopatch.StatusRules(start_rate=0.5)
    a = ecopatch.assess_restoration(before, after, mines, rules=rules, edge="uniform", progress=False)
    d = ecopatch.detect_changes(before, after, None, include_gain=False, min_area_mu=1.0, progress=False)
    ja, jd = ecopatch.assess_and_detect(before, after, mines, None,
                                        assessment=AssessOptions(rules=rules, edge="uniform"),
                                        detection=DetectOptions(include_gain=False, min_area_mu=1.0), progress=False)
    _same_assessment(a, ja)
    pd.testing.assert_frame_equal(d.drop(columns="geometry"), jd.drop(columns="geometry"))
    assert "vegetation_gain" not in set(jd["change_type"])


def test_options_are_typed_and_checked(tiled):
    s, before, after, mines = tiled
    with pytest.raises(ConfigError, match=r"assessment=.*give an ecopatch.options.AssessOptions"):
        ecopatch.assess_and_detect(before, after, mines, s.reserves, assessment={"edge": "uniform"})
    with pytest.raises(ConfigError, match=r"detection=.*give an ecopatch.options.DetectOptions"):
        ecopatch.assess_and_detect(before, after, mines, s.reserves, detection=AssessOptions())
    with pytest.raises(ConfigError, match="minimum mapping unit -1"):
        ecopatch.assess_and_detect(before, after, mines, s.reserves, detection=DetectOptions(min_area_m2=-1))


def test_keywords_replace_the_fields_of_options(tiled):
    s, before, after, mines = tiled
    opts = DetectOptions(min_area_m2=200.0, margin_m=20.0, include_gain=False, max_flagged_share=1.0)
    a = ecopatch.detect_changes(before, after, s.reserves, options=opts, min_area_m2=1500.0, block=64,
                                progress=False)
    b = ecopatch.detect_changes(before, after, s.reserves, min_area_m2=1500.0, margin_m=20.0, include_gain=False,
                                max_flagged_share=1.0, block=64, progress=False)
    _same_patches(a, b)
    c = ecopatch.detect_changes(before, after, s.reserves, options=opts, block=64, progress=False)
    assert (a["area_m2"] >= 1500).all() and len(c) > len(a)  # min_area_m2=1500 replaced the options' 200


def test_a_job_that_cannot_be_set_up_raises_its_own_error(tiled):
    s, before, after, mines = tiled
    far = mines.copy()
    far["geometry"] = far.geometry.translate(1e6, 0)
    with pytest.raises(NoOverlapError, match="mines"):
        ecopatch.assess_and_detect(before, after, far, s.reserves, progress=False)


def test_warnings_point_at_the_caller(tiled):
    s, before, after, mines = tiled
    rules = ecopatch.StatusRules(min_valid_fraction=1.01)  # every mine "insufficient_data"
    for call in (lambda: ecopatch.assess_restoration(before, after, mines, rules=rules, progress=False),
                 lambda: ecopatch.assess_and_detect(before, after, mines, s.reserves,
                                                    assessment=AssessOptions(rules=rules), progress=False)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        low = [w for w in caught if issubclass(w.category, LowCoverageWarning)]
        assert low and low[0].filename == __file__


def test_joint_order_follows_each_first_pass_window_with_the_later_passes_there():
    first = [Window(row_off=r * 64, col_off=c * 64, height=64, width=64) for r in range(3) for c in range(5)]
    later = [first[7], first[0], Window(row_off=500, col_off=500, height=64, width=64), first[14]]
    order = joint_order([first, later], stripe_px=128)
    assert sorted(order) == sorted([(0, i) for i in range(len(first))] + [(1, i) for i in range(len(later))])
    # the first pass keeps its own locality order
    assert [i for k, i in order if k == 0] == locality_order(first, stripe_px=128)
    pos = {p: n for n, p in enumerate(order)}
    for j, w in enumerate(later):
        if w in first:
            at = pos[(0, first.index(w))]
            # one first-pass window later, unless the first pass has ended
            nxt = at + 1 + next((n for n, p in enumerate(order[at + 1:]) if p[0] == 0), len(order))
            assert at < pos[(1, j)] and (pos[(1, j)] == nxt + 1 or nxt >= len(order))
    assert joint_order([first]) == [(0, i) for i in locality_order(first)]
    assert joint_order([[], later]) == [(1, i) for i in locality_order(later)]
    np.testing.assert_array_equal(joint_order([[], []]), [])
