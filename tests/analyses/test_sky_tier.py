"""A later scene's cover over the ledger's cases, and which probable cases it still shows.

(:mod:`ecopatch.analyses.sky_tier`)
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from ecopatch.analyses.sky_tier import MIN_PROGRESS, cover_over, persisting
from ecopatch.compute.cover import surface_fractions
from ecopatch.errors import InputDataError
from tests.scenes import write_pair

WAS = {"veg_before": 0.9, "bare_before": 0.1, "built_before": 0.0, "water_before": 0.0,
       "veg_after": 0.1, "bare_after": 0.3, "built_after": 0.6, "water_after": 0.0}
FOUND = dt.date(2024, 9, 12)
SEEN = dt.date(2024, 10, 10)


def _cases(n, **over):
    df = pd.DataFrame([WAS] * n).assign(case_id=[f"C{i}" for i in range(n)], sky_tier="probable", found_on=FOUND,
                                        class_before="vegetation", class_after="built")
    for k, v in over.items():
        df[k] = v
    return df


def _cover(rows):
    return pd.DataFrame([dict(zip(("veg", "bare", "built", "water"), f), class_now="x", clear_share=c)
                         for f, c in rows])


def test_persisting_needs_more_than_halfway_to_the_new_ground_clear_and_later():
    cases = _cases(7)
    cases.loc[4, "found_on"] = SEEN  # first found on the scene's own date
    cases.loc[5, "sky_tier"] = "confirmed"  # already confirmed
    cases.loc[6, ["veg_after", "bare_after", "built_after"]] = [0.9, 0.1, 0.0]  # recorded no change of cover
    cover = _cover([((0.1, 0.3, 0.6, 0.0), 1.0),  # as found after: progress 1
                    ((0.45, 0.2, 0.35, 0.0), 0.9),  # a bit more than halfway (0.56)
                    ((0.6, 0.15, 0.25, 0.0), 0.9),  # green again, less than halfway (0.38)
                    ((0.1, 0.3, 0.6, 0.0), 0.5),  # seen only half clear
                    ((0.1, 0.3, 0.6, 0.0), 1.0), ((0.1, 0.3, 0.6, 0.0), 1.0), ((0.1, 0.3, 0.6, 0.0), 1.0)])
    out = persisting(cases, cover, SEEN, min_clear_share=0.7)
    assert list(out["case_id"]) == ["C0", "C1"]
    # (0.36 + 0.02 + 0.21) / (0.64 + 0.04 + 0.36): the dot product with the change, over its squared length
    assert out["progress"].tolist() == pytest.approx([1.0, 0.59 / 1.04]) and MIN_PROGRESS == 0.5
    assert list(out.columns[:5]) == ["case_id", "class_before", "class_after", "class_now", "progress"]
    assert persisting(cases, cover, SEEN, min_clear_share=0.7, min_progress=0.6)["case_id"].tolist() == ["C0"]
    # without the recorded fractions (a detection from an older ledger) nothing is confirmed this way
    assert persisting(cases.drop(columns=["veg_before"]), cover, SEEN, min_clear_share=0.7).empty
    assert persisting(cases.assign(veg_after=np.nan), cover, SEEN, min_clear_share=0.7).empty
    assert persisting(cases.iloc[:0], cover.iloc[:0], SEEN, min_clear_share=0.7).empty
    with pytest.raises(InputDataError, match="min_clear_share"):
        persisting(cases, cover, SEEN, min_clear_share=70)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    s, before, after = write_pair(tmp_path_factory.mktemp("skytier"), shape=(120, 140), seed=3, n_mines=2,
                                  n_encroachments=3, n_decoys=0)
    return s, after


def _clear_block(valid, h, w, col=None):
    for r in range(valid.shape[0] - h):
        for c in ([col] if col is not None else range(valid.shape[1] - w)):
            if valid[r:r + h, c:c + w].all():
                return r, c
    raise AssertionError("no clear block in the test scene")


def test_cover_over_is_the_mean_of_the_clear_pixels_inside(pair):
    _, scene = pair
    g, t = scene.grid, scene.grid.transform
    obs = scene.read([b for b in ("blue", "green", "red", "nir", "swir1", "swir2") if b in scene.bands], g.window)
    f = surface_fractions(obs.bands)
    r, c = _clear_block(obs.valid, 12, 16)
    inside = shapely.box(t.c + c * t.a, t.f + (r + 12) * t.e, t.c + (c + 16) * t.a, t.f + r * t.e)
    r2, _ = _clear_block(obs.valid, 10, 8, col=0)
    half_out = shapely.box(t.c - 8 * t.a, t.f + (r2 + 10) * t.e, t.c + 8 * t.a, t.f + r2 * t.e)  # half left of the grid
    far = shapely.box(t.c - 5000, t.f + 5000, t.c - 4000, t.f + 6000)
    polys = gpd.GeoSeries([inside, half_out, far], crs=g.crs, index=[10, 11, 12])
    cov = cover_over(scene, polys.to_crs(4490))  # any CRS: here the ledger's
    assert list(cov.index) == [10, 11, 12]
    sl = (slice(r, r + 12), slice(c, c + 16))
    for k in ("veg", "bare", "built", "water"):
        assert cov.loc[10, k] == pytest.approx(float(f[k][sl].mean()), abs=0.02), k
    assert cov.loc[10, "clear_share"] == pytest.approx(1.0, abs=0.05)
    assert cov.loc[10, "class_now"] in {"vegetation", "sparse_vegetation", "bare", "built", "water"}
    assert cov.loc[11, "clear_share"] == pytest.approx(0.5, abs=0.08)
    assert cov.loc[12, "clear_share"] == 0.0 and cov.loc[12, "class_now"] == "unknown"
    assert np.isnan(cov.loc[12, "veg"])
    # a cloudy outline: no clear pixel, no fractions
    rc = np.argwhere(~obs.valid)[0]
    cloudy = shapely.box(t.c + rc[1] * t.a, t.f + (rc[0] + 1) * t.e, t.c + (rc[1] + 1) * t.a, t.f + rc[0] * t.e)
    one = cover_over(scene, gpd.GeoSeries([cloudy], crs=g.crs))
    assert one.loc[0, "clear_share"] == 0.0 and one.loc[0, "class_now"] == "unknown"


def test_cover_over_reads_with_gdal_s_cache_at_a_pass_s_size(pair, monkeypatch):
    from rasterio.env import get_gdal_config

    from ecopatch.raster.source import plan_pass_reads

    _, scene = pair
    seen = []
    real = type(scene).read

    def spy(self, *args, **kwargs):
        seen.append(get_gdal_config("GDAL_CACHEMAX"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(scene), "read", spy)
    outside = get_gdal_config("GDAL_CACHEMAX")
    g, t = scene.grid, scene.grid.transform
    box = shapely.box(t.c + 10 * t.a, t.f + 30 * t.e, t.c + 30 * t.a, t.f + 10 * t.e)
    cover_over(scene, gpd.GeoSeries([box], crs=g.crs))
    assert seen and set(seen) == {plan_pass_reads((scene,)).gdal_cache_bytes}
    assert get_gdal_config("GDAL_CACHEMAX") == outside


def test_cover_over_needs_red_and_nir(pair):
    _, scene = pair
    with pytest.raises(InputDataError, match="red and NIR"):
        cover_over(dataclasses.replace(scene, band_refs=tuple(b for b in scene.band_refs if b[0] != "nir")),
                   gpd.GeoSeries([shapely.box(0, 0, 1, 1)], crs=4490))


def test_without_a_mask_a_cloud_is_not_clear_ground(shared_data):
    # Sentinel-2 L1C without a mask: s2cloudless on the window; the Slovenia stack has two overcast dates
    folder = shared_data / "eolearn_s2_slovenia"
    from ecopatch import open_scene

    shares = {}
    for date in ("2015-07-11", "2015-07-31", "2015-08-20"):
        s = open_scene(folder / f"s2_l1c_{date}.tif")
        assert s.mask is None
        cov = cover_over(s, gpd.GeoSeries([shapely.box(*s.grid.bounds)], crs=s.grid.crs))
        shares[date] = float(cov.loc[0, "clear_share"])
    assert shares["2015-07-11"] > 0.99 and shares["2015-07-31"] < 0.2 and shares["2015-08-20"] < 0.05, shares


def test_a_product_of_another_sensor_without_a_mask_has_nothing_known_clear(pair):
    _, scene = pair
    box = gpd.GeoSeries([shapely.box(*scene.grid.bounds)], crs=scene.grid.crs)
    assert cover_over(scene, box).loc[0, "clear_share"] > 0.3  # with its SCL mask
    bare = dataclasses.replace(scene, mask=None)  # no mask, and not the bands s2cloudless needs
    cov = cover_over(bare, box)
    assert cov.loc[0, "clear_share"] == 0.0 and cov.loc[0, "class_now"] == "unknown"


def test_a_run_on_imagery_without_nir_skips_the_check_instead_of_failing():
    from types import SimpleNamespace

    from ecopatch.run.scene import _cases_still_shown

    class NoLedger:  # touched only if the check went on
        def detections(self):
            raise AssertionError("the ledger should not be read")

    rgb = SimpleNamespace(date=SEEN, bands=("blue", "green", "red"), source="drone_rgb.tif")
    assert _cases_still_shown(SimpleNamespace(ledger=NoLedger()), rgb, _cases(2)) is None
