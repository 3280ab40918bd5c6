"""The benchmark's unsupervised baselines (benchmarks/baselines.py) on small synthetic pairs with known change."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks import baselines as bl
from scipy.stats import chi2 as chi2_law

SHAPE = (80, 80)


def _pair(seed: int = 0, p: int = 5, change: bool = True, shape: tuple[int, int] = SHAPE):
    """Two dates of ``p`` correlated bands; the after date has another gain and offset per band,
    and (``change``) two blocks with a new spectrum.  Returns before, after, truth."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(p, p)) + 2 * np.eye(p)
    ground = np.einsum("ij,jrc->irc", mix, rng.normal(size=(p, *shape)))
    before = ground + 0.3 * rng.normal(size=ground.shape)
    gain = rng.uniform(0.5, 2.0, size=(p, 1, 1))
    offset = rng.uniform(-3, 3, size=(p, 1, 1))
    after = gain * ground + offset + 0.3 * rng.normal(size=ground.shape)
    truth = np.zeros(shape, dtype=bool)
    if change:
        truth[10:30, 10:30] = True
        truth[50:60, 40:75] = True
        after[:, 10:30, 10:30] += 4 * np.sign(rng.normal(size=(p, 1, 1))) * gain
        after[:, 50:60, 40:75] += 3 * np.sign(rng.normal(size=(p, 1, 1))) * gain
    return before, after, truth


def _f1(mask, truth) -> float:
    tp = np.sum(mask & truth)
    return 2 * tp / (mask.sum() + truth.sum())


# ---------------------------------------------------------------------------
# Otsu, standardisation, CVA
# ---------------------------------------------------------------------------
def test_otsu_threshold_splits_two_modes_and_ignores_nan():
    rng = np.random.default_rng(1)
    v = np.r_[rng.normal(0, 1, 5000), rng.normal(10, 1, 500), [np.nan, np.inf]]
    t = bl.otsu_threshold(v)
    assert 3 < t < 7
    assert np.isnan(bl.otsu_threshold(np.full(10, 2.0)))
    # a few extreme values squeeze the bulk into the first bins; clipping the histogram first does not
    w = np.r_[v[:5500], np.full(3, 1e4)]
    assert (w > bl.otsu_threshold(w)).sum() == 3
    assert 3 < bl.otsu_threshold(w, clip_pct=99.9) < 7
    assert np.isnan(bl.otsu_threshold(np.array([np.nan, 1.0])))


def test_standardize_over_valid_pixels_only():
    rng = np.random.default_rng(2)
    x = rng.normal(5, 3, size=(3, 20, 20))
    x[2] = 7.0  # constant band
    valid = np.ones((20, 20), bool)
    valid[0, :5] = False
    z = bl.standardize(x, valid)
    assert np.isnan(z[:, ~valid]).all()
    assert np.allclose(z[:2, valid].mean(axis=1), 0) and np.allclose(z[:2, valid].std(axis=1), 1)
    assert (z[2, valid] == 0).all()


def test_cva_magnitude_plain_and_z_scored():
    before, after, _ = _pair(change=False)
    plain = bl.cva_magnitude(before, after, z=False)
    assert np.allclose(plain, np.linalg.norm(after - before, axis=0))
    # z-scoring makes CVA blind to per-band gains and offsets of either date
    z1 = bl.cva_magnitude(before, after, z=True)
    z2 = bl.cva_magnitude(before, 3.0 * after - 7.0, z=True)
    assert np.allclose(z1, z2)
    before[1, 3, 4] = np.nan
    m = bl.cva_magnitude(before, after)
    assert np.isnan(m[3, 4]) and np.isfinite(np.delete(m.ravel(), 3 * SHAPE[1] + 4)).all()


def test_cva_otsu_finds_the_changed_blocks():
    before, after, truth = _pair(seed=3)
    before[0, 0, 0] = np.nan
    mask, t = bl.cva_otsu(before, after)
    assert t > 0 and not mask[0, 0]
    assert _f1(mask, truth) > 0.95


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="band stacks"):
        bl.cva_magnitude(np.zeros((3, 5, 5)), np.zeros((2, 5, 5)))


# ---------------------------------------------------------------------------
# PCA-k-means
# ---------------------------------------------------------------------------
def test_pca_kmeans_finds_the_changed_blocks_deterministically():
    before, after, truth = _pair(seed=4)
    diff = bl.cva_magnitude(before, after)
    diff[5, 5] = np.nan
    m1 = bl.pca_kmeans(diff, seed=0)
    m2 = bl.pca_kmeans(diff, seed=0)
    assert (m1 == m2).all()
    assert not m1[5, 5]
    assert _f1(m1, truth) > 0.9


def test_pca_kmeans_refuses_an_image_smaller_than_its_block():
    with pytest.raises(ValueError, match="smaller"):
        bl.pca_kmeans(np.zeros((3, 10)), h=4)


# ---------------------------------------------------------------------------
# IR-MAD
# ---------------------------------------------------------------------------
def test_mad_first_pass_is_plain_canonical_correlation_analysis():
    """One pass, no ridge: ρ are the canonical correlations, σ² = 2(1 − ρ), χ² follows the law."""
    before, after, _ = _pair(seed=5, p=4, change=False, shape=(120, 120))
    res = bl.irmad(before, after, max_iter=1, ridge=0.0)
    assert res.n_iter == 1 and not res.converged
    x = before.reshape(4, -1)
    y = after.reshape(4, -1)
    cxx, cyy = np.cov(x, bias=True), np.cov(y, bias=True)
    cxy = np.cov(np.vstack([x, y]), bias=True)[:4, 4:]
    m = np.linalg.solve(cxx, cxy) @ np.linalg.solve(cyy, cxy.T)
    rho = np.sort(np.sqrt(np.clip(np.linalg.eigvals(m).real, 0, 1)))
    assert np.allclose(res.rho, rho, atol=1e-8)
    assert np.allclose(res.sigma2, 2 * (1 - res.rho), rtol=1e-6)
    # unweighted MAD of a pair without change: its χ² has the law's median
    assert res.diagnostics()["chi2_median_ratio"] == pytest.approx(1.0, abs=0.05)


def test_irmad_finds_the_changed_blocks_and_converges():
    before, after, truth = _pair(seed=6)
    res = bl.irmad(before, after)
    assert res.converged and 2 <= res.n_iter <= 30
    assert len(res.history) == res.n_iter
    assert np.all(np.diff(res.rho) >= 0) and res.rho.max() <= 1
    assert _f1(bl.irmad_change(res, "otsu"), truth) > 0.95
    d = res.diagnostics()
    assert 0 < d["ess_share"] <= 1 and 0 <= d["w_gt_half"] <= 1


def test_irmad_is_blind_to_gains_and_offsets_of_either_date():
    before, after, _ = _pair(seed=7)
    a = bl.irmad(before, after)
    b = bl.irmad(2.5 * before + 1.0, 0.2 * after - 4.0)
    assert np.allclose(a.chi2, b.chi2, rtol=1e-6, atol=1e-8)


def test_published_weighting_drifts_above_the_law_and_the_robust_spread_does_not():
    """What the docstring says, measured: a pair with no change at all."""
    before, after, _ = _pair(seed=8, p=6, change=False, shape=(150, 150))
    pub = bl.irmad(before, after)
    rob = bl.irmad(before, after, sigma="robust")
    assert pub.diagnostics()["chi2_median_ratio"] > 1.5
    assert bl.irmad_change(pub, "chi2").mean() > 0.10
    assert rob.diagnostics()["chi2_median_ratio"] == pytest.approx(1.0, abs=0.1)
    assert bl.irmad_change(rob, "chi2", alpha=0.01).mean() == pytest.approx(0.01, abs=0.01)


def test_irmad_chi2_rule_uses_the_stated_significance():
    before, after, truth = _pair(seed=9)
    res = bl.irmad(before, after, sigma="robust")
    m01 = bl.irmad_change(res, "chi2", alpha=0.01)
    m001 = bl.irmad_change(res, "chi2", alpha=0.001)
    assert (m001 <= m01).all()
    assert np.array_equal(m01, np.nan_to_num(res.chi2, nan=-1) > chi2_law.isf(0.01, 5))
    assert _f1(m01, truth) > 0.8


def test_irmad_survives_collinear_bands_and_missing_pixels():
    before, after, truth = _pair(seed=10, p=4)
    before = np.concatenate([before, before[:1] * 1.0000001])  # a duplicated band, as B08 / B8A nearly are
    after = np.concatenate([after, after[:1]])
    before[:, 0, :10] = np.nan
    res = bl.irmad(before, after)
    assert np.isnan(res.chi2[0, :10]).all() and np.isfinite(res.chi2[1:]).all()
    for rule in ("otsu", "chi2"):
        mask = bl.irmad_change(res, rule)
        assert not mask[0, :10].any()
    assert _f1(bl.irmad_change(res, "otsu"), truth) > 0.9


def test_irmad_refuses_bad_arguments():
    before, after, _ = _pair(seed=11)
    with pytest.raises(ValueError, match="sigma"):
        bl.irmad(before, after, sigma="median")
    res = bl.irmad(before, after, max_iter=2)
    with pytest.raises(ValueError, match="rule"):
        bl.irmad_change(res, "kittler")
    with pytest.raises(ValueError, match="observed pixels"):
        bl.irmad(before[:, :2, :2], after[:, :2, :2])
