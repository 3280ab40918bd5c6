"""Stable case IDs: matching new patches to existing cases by overlap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon, box

from ecopatch.ledger.match import match_patches, overlap_score


def test_overlap_score_rules():
    a, b = box(0, 0, 2, 2), box(1, 0, 3, 2)
    assert overlap_score(a, b) == 0.5
    assert overlap_score(a, b, rule="iou") == pytest.approx(1 / 3)
    assert overlap_score(box(0, 0, 1, 1), box(5, 5, 6, 6)) == 0.0
    assert overlap_score(box(0, 0, 1, 1), box(1, 0, 2, 1)) == 0.0  # touching only
    with pytest.raises(ValueError, match=r"use one of \['smaller', 'iou'\]"):
        overlap_score(a, b, rule="area")


def test_grown_patch_keeps_its_case_under_smaller_rule_not_iou():
    old = [box(0, 0, 1, 1)]
    grown = [box(0, 0, 4, 4)]  # a pit that grew 16-fold
    assert match_patches(grown, old).case_index.tolist() == [0]
    assert match_patches(grown, old, rule="iou").case_index.tolist() == [-1]


def test_threshold_is_inclusive():
    old = [box(0, 0, 10, 1)]
    new = [box(7, 0, 17, 1)]  # overlap 3 of 10 -> 0.3
    assert match_patches(new, old, min_overlap=0.3).case_index.tolist() == [0]
    assert match_patches(new, old, min_overlap=0.31).case_index.tolist() == [-1]


def test_one_to_one_by_largest_overlap():
    old = [box(0, 0, 1, 1)]
    new = [box(0.6, 0, 1.6, 1), box(0.2, 0, 1.2, 1)]  # second overlaps more
    r = match_patches(new, old)
    assert r.case_index.tolist() == [-1, 0]
    assert r.score.tolist() == pytest.approx([0.0, 0.8])
    assert r.n_matched == 1


def test_one_new_patch_over_two_cases_takes_the_larger_overlap():
    old = [box(0, 0, 1, 1), box(1, 0, 2, 1)]
    merged = [box(0.3, 0, 2, 1)]  # covers 0.7 of case 0 and all of case 1
    assert match_patches(merged, old).case_index.tolist() == [1]


def test_ties_resolve_by_order_deterministically():
    old = [box(0, 0, 1, 1), box(0, 0, 1, 1)]  # two identical cases (sorted by case ID)
    new = [box(0, 0, 1, 1)]
    assert match_patches(new, old).case_index.tolist() == [0]
    new2 = [box(0, 0, 1, 1), box(0, 0, 1, 1)]
    assert match_patches(new2, old).case_index.tolist() == [0, 1]


def test_empty_inputs_and_bad_threshold():
    assert match_patches([], [box(0, 0, 1, 1)]).case_index.shape == (0,)
    assert match_patches([box(0, 0, 1, 1)], []).case_index.tolist() == [-1]
    with pytest.raises(ValueError, match="min_overlap"):
        match_patches([box(0, 0, 1, 1)], [box(0, 0, 1, 1)], min_overlap=0)


def test_patch_with_hole_around_a_case_does_not_match():
    ring = Polygon(box(0, 0, 10, 10).exterior.coords, [box(4, 4, 6, 6).exterior.coords])
    assert match_patches([box(4.5, 4.5, 5.5, 5.5)], [ring]).case_index.tolist() == [-1]


_boxes = st.lists(
    st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(1, 6), st.integers(1, 6)).map(
        lambda t: box(t[0], t[1], t[0] + t[2], t[1] + t[3])
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(_boxes, _boxes, st.sampled_from(["smaller", "iou"]), st.floats(0.05, 1.0))
def test_matching_is_one_to_one_above_threshold_and_deterministic(new, old, rule, thr):
    r = match_patches(new, old, min_overlap=thr, rule=rule)
    taken = r.case_index[r.case_index >= 0]
    assert len(set(taken.tolist())) == len(taken)  # one to one
    for i, k in enumerate(r.case_index):
        if k >= 0:
            s = overlap_score(new[i], old[k], rule=rule)
            assert s >= thr - 1e-12 and s == pytest.approx(r.score[i])
        else:
            assert r.score[i] == 0.0
    # a new patch left unmatched has no free case it would have matched
    free = set(range(len(old))) - set(taken.tolist())
    for i in np.flatnonzero(r.case_index < 0):
        assert all(overlap_score(new[i], old[k], rule=rule) < thr for k in free)
    r2 = match_patches(new, old, min_overlap=thr, rule=rule)
    assert np.array_equal(r.case_index, r2.case_index)
