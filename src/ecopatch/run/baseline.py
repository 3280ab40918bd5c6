"""The before scenes of a scheduled run.

The reserves' baseline of each new scene (:func:`choose_baseline`: the
``[run] baseline`` rule, and :func:`choose_history` for each pixel's seasonal
range), and each mine's own restoration reference (:func:`choose_references`).
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ecopatch.errors import (
    ConfigError,
)
from ecopatch.run.discovery import SceneRef

if TYPE_CHECKING:

    pass

__all__ = [
    "reference_counts",
    "MineReference",
    "REFERENCE_FIELDS",
    "choose_baseline",
    "choose_history",
    "choose_references",
    "reference_request",
    "reference_scene",
    "season_gap_days",
]

log = logging.getLogger("ecopatch.run")


def choose_baseline(
    scene: SceneRef,
    scenes: Sequence[SceneRef],
    *,
    rule: str = "season",
    reference: SceneRef | None = None,
    unusable: Collection[str] = (),
    clear_fraction: Callable[[SceneRef], float] | None = None,
    max_age_days: int = 0,
    window_days: int = 45,
) -> tuple[SceneRef | None, str]:
    """Choose the encroachment baseline ("before" scene) of ``scene`` (the module docstring gives the rule).

    Parameters
    ----------
    scene : SceneRef
        The new scene.
    scenes : sequence of SceneRef
        Every scene found.
    rule : {"season", "previous", "best", "fixed"}
    reference : SceneRef, optional
        The fixed baseline (``rule="fixed"``), see :func:`reference_scene`.
    unusable : collection of str
        IDs of scenes that cannot serve (their own run was skipped or failed).
    clear_fraction : callable, optional
        ``clear_fraction(scene_ref) -> float`` in [0, 1] over the area of
        interest; needed by ``"best"``.
    max_age_days : int
        ``"best"``: ignore scenes more than this many days older (0: no limit).
    window_days : int
        ``"season"``: how far apart in the calendar (days, across years) an
        earlier year's scene may be.

    Returns
    -------
    (SceneRef or None, str)
        The baseline (None when there is none) and why, in words.

    Examples
    --------
    >>> import datetime as dt
    >>> from pathlib import Path
    >>> a, b, c = (SceneRef(n, dt.date(2024, m, 1), Path(n)) for n, m in (("a", 3), ("b", 6), ("c", 9)))
    >>> choose_baseline(c, [a, b, c], rule="previous")[0].scene_id
    'b'
    >>> choose_baseline(c, [a, b, c], rule="previous", unusable={"b"})[0].scene_id
    'a'
    >>> choose_baseline(a, [a, b, c])
    (None, 'no earlier scene')
    >>> d = SceneRef("d", dt.date(2023, 8, 20), Path("d"))
    >>> pick, why = choose_baseline(c, [d, a, b, c])  # "season": last year's scene of the same time of year
    >>> pick.scene_id, why.split(":")[0]
    ('d', 'same season')
    """
    if rule == "fixed":
        if reference is None:
            raise ConfigError('baseline "fixed" needs the reference scene ([run] reference_date)')
        if scene.date <= reference.date:
            return None, f"not after the reference scene {reference.label}"
        return reference, f"fixed reference scene (reference_date {reference.date})"
    earlier = [s for s in scenes if s.date < scene.date]
    if not earlier:
        return None, "no earlier scene"
    usable = [s for s in earlier if s.scene_id not in unusable]
    if not usable:
        return None, "every earlier scene was skipped or failed"
    if rule == "previous":
        pick = max(usable, key=lambda s: (s.date, s.scene_id))
        return pick, "most recent usable earlier scene"
    if rule == "season":
        return _same_season(scene, usable, window_days)
    if rule == "best":
        if clear_fraction is None:
            raise ConfigError('baseline "best" needs a clear_fraction function')
        if max_age_days:
            usable = [s for s in usable if (scene.date - s.date).days <= max_age_days]
            if not usable:
                return None, f"no usable earlier scene within {max_age_days} days"
        scored = [(round(clear_fraction(s), 2), s.date, s.scene_id, s) for s in usable]
        scored = [t for t in scored if t[0] > 0]
        if not scored:
            return None, "no earlier scene sees the mines and reserves clear of cloud"
        best = max(scored, key=lambda t: t[:3])
        return best[3], f"clearest earlier scene ({best[0]:.0%} of the mines and reserves clear)"
    raise ConfigError(f"baseline rule {rule!r}; use 'previous', 'best' or 'fixed'")


def reference_scene(scenes: Sequence[SceneRef], date: _dt.date) -> SceneRef:
    """The fixed baseline: the scene dated ``date`` (first by ID), else the latest before it.

    Raises
    ------
    ConfigError
        No scene is dated on or before ``date``.
    """
    on = sorted((s for s in scenes if s.date == date), key=lambda s: s.scene_id)
    if on:
        return on[0]
    before = [s for s in scenes if s.date < date]
    if not before:
        dates = ", ".join(sorted({s.date.isoformat() for s in scenes})[:10]) or "none"
        raise ConfigError(
            f"[run] reference_date = {date}: no scene dated on or before it in the imagery (scene dates: {dates}); "
            "set reference_date to one of them"
        )
    pick = max(before, key=lambda s: (s.date, s.scene_id))
    log.warning("no scene dated %s: using the most recent one before it, %s, as the fixed baseline", date,
                pick.label)
    return pick


def season_gap_days(a: _dt.date, b: _dt.date) -> int:
    """Days between two dates' places in the calendar, whatever their years (0-183).

    Examples
    --------
    >>> import datetime as dt
    >>> season_gap_days(dt.date(2021, 9, 18), dt.date(2024, 9, 12)), season_gap_days(dt.date(2023, 12, 20),
    ...                                                                              dt.date(2024, 1, 10))
    (6, 21)
    """
    def shifted(d: _dt.date, year: int) -> _dt.date:
        return d.replace(year=year, day=28) if (d.month, d.day) == (2, 29) else d.replace(year=year)

    return min(abs((shifted(a, y) - b).days) for y in (b.year - 1, b.year, b.year + 1))


def _same_season(scene: SceneRef, usable: Sequence[SceneRef], window_days: int) -> tuple[SceneRef, str]:
    """The ``"season"`` rule: the earlier-year scene nearest in the calendar, else the previous scene."""
    older = [s for s in usable if s.date.year < scene.date.year]
    gaps = [(season_gap_days(s.date, scene.date), -s.date.toordinal(), s.scene_id, s) for s in older]
    inside = [g for g in gaps if g[0] <= window_days]
    if inside:
        # the most recent earlier year with a scene in the window, then the nearest in the calendar there:
        # the window already matches the season, and a more recent year has less change piled up
        year = max(t[3].date.year for t in inside)
        gap, _, _, pick = min((t for t in inside if t[3].date.year == year), key=lambda t: t[:3])
        return pick, (f"same season: {pick.date} is {gap} day(s) from {scene.date} in the calendar (window "
                      f"±{window_days} d; {len(inside)} earlier-year scene(s) in it: the nearest of the most "
                      "recent year taken)")
    prev = max(usable, key=lambda s: (s.date, s.scene_id))
    if gaps:
        gap, _, _, near = min(gaps, key=lambda t: t[:3])
        seen = f"the nearest, {near.date}, is {gap} days away in the calendar"
    else:
        seen = "there is no scene of an earlier year"
    return prev, (f"previous scene: no earlier-year scene within ±{window_days} days of {scene.date:%m-%d} ({seen}); "
                  "most recent usable earlier scene")


def choose_history(
    baseline: SceneRef,
    scenes: Sequence[SceneRef],
    *,
    max_scenes: int = 4,
    unusable: Collection[str] = (),
) -> tuple[SceneRef, ...]:
    """The earlier scenes that give each pixel its own seasonal range (``history=`` of the detection).

    Parameters
    ----------
    baseline : SceneRef
        The encroachment baseline of the new scene (:func:`choose_baseline`).
    scenes : sequence of SceneRef
        Every scene found.
    max_scenes : int
        At most this many (``[run] history_scenes``); 0: none.
    unusable : collection of str
        IDs of scenes whose own run was skipped or failed (not taken).

    Returns
    -------
    tuple of SceneRef
        The most recent ``max_scenes`` usable scenes dated strictly before
        the baseline, oldest first.

    Notes
    -----
    Only scenes before the baseline serve: the range describes the ground
    as it was up to the baseline, its seasons and crop rotation.  A scene
    between the baseline and the new scene may already show the
    encroachment the new scene is compared for, and would hide it.

    Examples
    --------
    >>> import datetime as dt
    >>> from pathlib import Path
    >>> s = [SceneRef(n, dt.date(2023, m, 1), Path(n)) for n, m in (("a", 3), ("b", 6), ("c", 9), ("d", 12))]
    >>> [h.scene_id for h in choose_history(s[2], s, max_scenes=4)]
    ['a', 'b']
    >>> [h.scene_id for h in choose_history(s[3], s, max_scenes=2, unusable={"b"})]
    ['a', 'c']
    """
    if max_scenes <= 0:
        return ()
    earlier = [s for s in scenes if s.date < baseline.date and s.scene_id not in unusable
               and s.scene_id != baseline.scene_id]
    recent = sorted(earlier, key=lambda s: (s.date, s.scene_id), reverse=True)[:max_scenes]
    return tuple(sorted(recent, key=lambda s: (s.date, s.scene_id)))


#: Fields searched (in order) for a mine's own reference with ``[assessment] reference_field = "auto"``:
#: a date or scene ID (修复前影像日期 ...) or a year (治理开始年份 ...).
REFERENCE_FIELDS: tuple[str, ...] = (
    "修复前影像日期", "修复前影像", "基准影像日期", "基准影像", "参考影像日期", "治理开始年份", "修复开始年份",
    "治理开始时间", "reference_date", "reference_scene", "reference_year", "restoration_start_year",
)


@dataclass(frozen=True)
class MineReference:
    """The reference of one mine: the scene its restoration is measured against.

    Attributes
    ----------
    scene : SceneRef or None
        None when no scene can serve.
    rule : str
        Where the request came from, e.g. ``"field 修复前影像日期 = 2021-09-18"``,
        ``"config reference = earliest"``.
    why : str
        Why this scene, in words.
    """

    scene: SceneRef | None
    rule: str
    why: str


def reference_request(value: Any) -> tuple[str, Any] | None:
    """What a reference value asks for: ``("earliest", None)``, ``("date", d)``, ``("year", y)`` or ``("scene", id)``.

    Dates may be dates or strings (``2021-09-18``, ``2021/9/18``, ``2021年9月18日``);
    a whole number 1900-2200 (or ``"2022年"``) is a year (restoration began
    that year); other text is a scene ID.  Empty values give None (use the
    default).

    Examples
    --------
    >>> reference_request("2021-09-18"), reference_request(2022.0), reference_request("2022年")
    (('date', datetime.date(2021, 9, 18)), ('year', 2022), ('year', 2022))
    >>> reference_request("S2A_MSIL2A_20210918T023551"), reference_request(""), reference_request("earliest")
    (('scene', 'S2A_MSIL2A_20210918T023551'), None, ('earliest', None))
    """
    import math

    from ecopatch.fieldcheck import parse_date

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, _dt.date):  # also datetime and pandas.Timestamp (NaT: no value)
        try:
            return ("date", parse_date(value))
        except ValueError:
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if float(value).is_integer() and 1900 <= value <= 2200:
            return ("year", int(value))
        return ("scene", str(value))
    text = str(value).strip()
    if not text:
        return None
    if text.lower() == "earliest":
        return ("earliest", None)
    y = text.removesuffix("年")
    if y.isdigit() and len(y) == 4 and 1900 <= int(y) <= 2200:
        return ("year", int(y))
    try:
        return ("date", parse_date(text))
    except ValueError:
        return ("scene", text)


def choose_references(
    requests: Sequence[tuple[str, Any] | None],
    scenes: Sequence[SceneRef],
    *,
    rules: Sequence[str] | None = None,
    default: tuple[str, Any] = ("earliest", None),
    default_rule: str = "config reference = earliest",
    unusable: Collection[str] = (),
    clear: Callable[[SceneRef], Sequence[float]] | None = None,
    min_clear: float = 0.70,
) -> list[MineReference]:
    """The reference scene of each mine (一矿一策: measured from the state before restoration began).

    Parameters
    ----------
    requests : sequence of (kind, value) or None
        Per mine, from :func:`reference_request` of its own field; None:
        ``default``.
    scenes : sequence of SceneRef
        Every scene found.
    rules : sequence of str, optional
        Per mine, where its request came from (e.g. ``"field 治理开始年份 = 2022"``).
    default : (kind, value)
        The configuration's reference (``[assessment] reference``).
    default_rule : str
        Where ``default`` came from, for the table.
    unusable : collection of str
        IDs of scenes whose own run was skipped or failed: never chosen by
        the ``"earliest"`` and year rules.
    clear : callable, optional
        ``clear(scene) -> per-mine shares (0-1)`` of each mine seen clear in
        ``scene`` (:func:`clear_fractions`); the earliest and year rules then
        pass over scenes that see a mine less than ``min_clear`` clear.
    min_clear : float
        See ``clear`` (the assessment's ``min_valid_fraction``).

    Returns
    -------
    list of MineReference
        One per request, in order.

    Notes
    -----
    - ``("scene", id)``: that scene.
    - ``("date", d)``: the scene dated ``d`` (first by ID), else the latest
      before ``d``.
    - ``("year", y)``: the latest usable scene dated before 1 January of
      ``y`` (restoration began in ``y``) that sees the mine clear.
    - ``("earliest", None)``: the earliest usable scene that sees the mine
      clear.

    When no scene sees a mine clear enough, the clearest one is taken
    (earliest on a tie; for a year, the latest).  A request no scene can
    meet (a scene ID not in the imagery, a date or year before every scene)
    falls back to ``default``, and ``why`` says so.  The choice depends only
    on the imagery, the mines and the runs that were skipped, so every run
    measures a mine against the same reference.
    """
    by_id = {s.scene_id: s for s in scenes}
    ordered = sorted(scenes, key=lambda s: (s.date, s.scene_id))
    usable = [s for s in ordered if s.scene_id not in unusable]
    cache: dict[str, Sequence[float]] = {}

    def share(s: SceneRef, i: int) -> float:
        if clear is None:
            return 1.0
        if s.scene_id not in cache:
            cache[s.scene_id] = clear(s)
        return float(cache[s.scene_id][i])

    def first_clear(cands: Sequence[SceneRef], i: int, pick: str, scope: str) -> tuple[SceneRef, str]:
        for s in cands:
            v = share(s, i)
            if v >= min_clear:
                return s, (f"{pick} that sees the mine clear ({v:.0%} observed)" if clear else pick)
        best = max(cands, key=lambda s: (round(share(s, i), 2), -cands.index(s)))
        return best, (f"no {scope} sees {min_clear:.0%} of the mine clear: the clearest, {best.date} "
                      f"({share(best, i):.0%} observed)")

    def resolve(req: tuple[str, Any], i: int) -> tuple[SceneRef | None, str]:
        kind, value = req
        if kind == "scene":
            hit = by_id.get(str(value))
            return (hit, f"scene {value}") if hit else (None, f"no scene {value!r} in the imagery")
        if kind == "date":
            on = sorted((s for s in ordered if s.date == value), key=lambda s: s.scene_id)
            if on:
                return on[0], f"the scene of {value}"
            before = [s for s in ordered if s.date < value]
            if before:
                pick = before[-1]
                return pick, f"the latest scene before {value} ({pick.date}; none on that date)"
            return None, f"no scene on or before {value}"
        if kind == "year":
            cands = [s for s in usable if s.date < _dt.date(int(value), 1, 1)][::-1]
            if not cands:
                return None, f"no usable scene before {value}"
            return first_clear(cands, i, f"the latest usable scene before {value}", f"usable scene before {value}")
        if not usable:
            return None, "no usable scene"
        return first_clear(usable, i, "the earliest usable scene", "usable scene")

    out: list[MineReference] = []
    for i, req in enumerate(requests):
        rule = (rules[i] if rules is not None and req is not None else None) or default_rule
        pick, why = resolve(req or default, i)
        if pick is None and req is not None:
            fallback, why2 = resolve(default, i)
            pick, why = fallback, f"{why}; {default_rule}: {why2}"
            rule = f"{rule} (fallback: {default_rule})"
        out.append(MineReference(pick, rule, why))
    return out


def reference_counts(refs: Sequence[MineReference], scene: SceneRef) -> tuple[tuple[SceneRef, int], ...]:
    """(reference scene, number of mines) for the references before ``scene``, most used first."""
    counts: dict[str, list[Any]] = {}
    for r in refs:
        if r.scene is not None and r.scene.date < scene.date:
            counts.setdefault(r.scene.scene_id, [r.scene, 0])[1] += 1
    return tuple((sc, n) for sc, n in sorted(counts.values(), key=lambda t: (-t[1], t[0].date)))
