"""Stable case IDs across runs: match new suspect patches to existing cases by overlap.

The rule (pure, deterministic, documented once here and used by the store):

1. **Overlap score.** For a new patch *N* and an existing case geometry *C*::

       score = area(N ∩ C) / min(area(N), area(C))      (rule="smaller", default)
       score = area(N ∩ C) / area(N ∪ C)                (rule="iou")

   Intersection over the *smaller* area keeps a patch that grew or shrank
   between runs (a pit that doubled in size still scores 1.0 against its old
   outline), which IoU would not.
2. **Candidates.** A pair is a candidate when ``score >= min_overlap``
   (default 0.3) and the intersection is not empty.
3. **One-to-one.** Candidates are taken greedily by descending score, then
   descending intersection area, then ascending new index, then ascending
   case index; a pair is kept when neither side is taken yet.  Each new patch
   thus keeps at most one case and each case takes at most one new patch; a
   second patch on the same case (the old patch split in two) opens a new case.
4. Whatever is left unmatched among the new patches opens new cases.

Change type plays no part: the same *place* keeps its case ID.  Areas are
computed in the coordinates given; for the ledger these are CGCS2000
longitude/latitude degrees, in which the ratio of two areas of the same
small place is exact to well under 0.1 % (both scale by the same cos(lat)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

__all__ = ["MATCH_RULES", "MatchResult", "match_patches", "overlap_score"]

#: Valid values of ``rule``.
MATCH_RULES = ("smaller", "iou")


@dataclass(frozen=True)
class MatchResult:
    """Which existing case each new patch matched.

    Attributes
    ----------
    case_index : ndarray of int, shape (n_new,)
        Index into the existing geometries of the case each new patch matched,
        or -1 for a patch that opens a new case.
    score : ndarray of float, shape (n_new,)
        Overlap score of the kept pair (0.0 where unmatched).
    """

    case_index: np.ndarray
    score: np.ndarray

    @property
    def n_matched(self) -> int:
        """Number of new patches that matched an existing case."""
        return int((self.case_index >= 0).sum())


def _check_rule(rule: str) -> None:
    if rule not in MATCH_RULES:
        raise ValueError(f"rule={rule!r} is not a match rule; use one of {list(MATCH_RULES)}")


def overlap_score(a: Any, b: Any, *, rule: str = "smaller") -> float:
    """Overlap score of two polygons under ``rule`` (see the module docstring).

    Examples
    --------
    >>> from shapely.geometry import box
    >>> overlap_score(box(0, 0, 2, 2), box(1, 0, 3, 2))
    0.5
    >>> round(overlap_score(box(0, 0, 2, 2), box(1, 0, 3, 2), rule="iou"), 4)
    0.3333
    >>> overlap_score(box(0, 0, 1, 1), box(0, 0, 4, 4))   # a patch that grew
    1.0
    """
    _check_rule(rule)
    inter = shapely.area(shapely.intersection(a, b))
    if inter <= 0:
        return 0.0
    if rule == "smaller":
        den = min(shapely.area(a), shapely.area(b))
    else:
        den = shapely.area(shapely.union(a, b))
    return float(inter / den) if den > 0 else 0.0


def match_patches(
    new: Sequence[Any] | np.ndarray,
    existing: Sequence[Any] | np.ndarray,
    *,
    min_overlap: float = 0.3,
    rule: str = "smaller",
) -> MatchResult:
    """Match new patch polygons to existing case polygons, one to one.

    Parameters
    ----------
    new : array-like of shapely polygons, shape (n_new,)
        New suspect patches, in the same CRS as ``existing``.
    existing : array-like of shapely polygons, shape (n_cases,)
        Current geometries of the existing cases, in a fixed order (the store
        passes them sorted by case ID so that ties resolve the same way every
        time).
    min_overlap : float
        Minimum overlap score in (0, 1] for a pair to match (default 0.3).
    rule : {"smaller", "iou"}
        Intersection over the smaller area (default) or intersection over union.

    Returns
    -------
    MatchResult

    Raises
    ------
    ValueError
        If ``rule`` or ``min_overlap`` is not allowed.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> old = [box(0, 0, 1, 1), box(10, 10, 11, 11)]
    >>> new = [box(10.2, 10, 11.2, 11), box(0.5, 0, 1.5, 1), box(0.6, 0, 1.6, 1), box(5, 5, 6, 6)]
    >>> r = match_patches(new, old)
    >>> r.case_index.tolist(), r.score.round(2).tolist()
    ([1, 0, -1, -1], [0.8, 0.5, 0.0, 0.0])
    """
    _check_rule(rule)
    if not 0.0 < float(min_overlap) <= 1.0:
        raise ValueError(f"min_overlap={min_overlap!r} must be in (0, 1]")
    new_a = np.asarray(new, dtype=object).reshape(-1)
    old_a = np.asarray(existing, dtype=object).reshape(-1)
    case_index = np.full(len(new_a), -1, dtype=np.int64)
    score = np.zeros(len(new_a), dtype=np.float64)
    if len(new_a) == 0 or len(old_a) == 0:
        return MatchResult(case_index, score)

    tree = shapely.STRtree(old_a)
    i_new, i_old = tree.query(new_a, predicate="intersects")
    if len(i_new) == 0:
        return MatchResult(case_index, score)
    a_new = shapely.area(new_a[i_new])
    a_old = shapely.area(old_a[i_old])
    inter = shapely.area(shapely.intersection(new_a[i_new], old_a[i_old]))
    if rule == "smaller":
        den = np.minimum(a_new, a_old)
    else:
        den = a_new + a_old - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(den > 0, inter / den, 0.0)
    keep = (inter > 0) & (sc >= min_overlap)
    i_new, i_old, sc, inter = i_new[keep], i_old[keep], sc[keep], inter[keep]
    # Greedy one-to-one: score desc, intersection desc, new asc, old asc.
    order = np.lexsort((i_old, i_new, -inter, -sc))
    taken_old: set[int] = set()
    for k in order:
        n, o = int(i_new[k]), int(i_old[k])
        if case_index[n] >= 0 or o in taken_old:
            continue
        case_index[n] = o
        score[n] = float(sc[k])
        taken_old.add(o)
    return MatchResult(case_index, score)
