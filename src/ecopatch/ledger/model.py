"""The life of a suspect patch (疑似图斑) as a pure state machine.

A case is found from the sky, dispatched to a field team, confirmed as a
violation or dismissed as a false alarm, rectified and closed (销号); a look-back
check (回头看) that finds the change again reopens it (反弹回潮).  This module
holds the states, the events that move a case between them, the transition
table, and the red/yellow/green code (红黄绿码).  It opens no file: the
:mod:`ecopatch.ledger.store` is the only writer, and it replays events through
:func:`advance` both to write and to check the ledger.

Transition table (rows: current state; an event is refused unless its target
state is listed in the row)::

    from / to    dispatched confirmed false_alarm rectifying rectified closed reopened
    (new)        -- a case opens in ``detected`` with a ``detect`` event --
    detected     yes        yes       yes         .          .         .      .
    dispatched   .          yes       yes         .          .         .      .
    confirmed    .          .         .           yes        yes       .      .
    false_alarm  .          .         .           .          .         yes    yes
    rectifying   .          .         .           .          yes       .      .
    rectified    .          .         .           yes        .         yes    .
    closed       .          .         .           .          .         .      yes
    reopened     yes        yes       yes         .          .         .      .

Notes on the table:

- ``detected -> confirmed | false_alarm`` without a recorded dispatch is
  allowed: field teams often check a package that was never formally logged as
  dispatched.
- ``rectified -> rectifying``: the acceptance check found the rectification
  incomplete and sent it back.
- ``false_alarm -> closed`` archives a dismissed case; ``false_alarm ->
  reopened`` happens when the place is found again with a much larger change
  (see :mod:`ecopatch.ledger.store`) or by a manual ``reopen``.
- Events that change no state (``redetect``, ``sky_confirm``, ``update``,
  ``note``) are allowed in every state.

Sky tier (影像分级), apart from the state
-----------------------------------------
``confirmed`` above is a *ground* verdict.  How often the *sky* has seen a
case is a separate column, :class:`SkyTier`: a case opens ``probable``
(疑似: seen in one observation); a ``sky_confirm`` event, recorded when a
later clear observation detects it again (see
:meth:`ecopatch.ledger.Ledger.add_detections`), makes it ``confirmed``
(影像确认) with ``confirmed_on``, the date of that observation.  The tier
never goes back and never moves the state.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType
from typing import Any

from ecopatch.errors import LedgerTransitionError
from ecopatch.vocabulary import CASE_STATUS_ZH, CODE_ZH, SKY_TIER_EN, SKY_TIER_ZH

__all__ = [
    "Case",
    "Colour",
    "Event",
    "EventKind",
    "SkyTier",
    "Status",
    "TRANSITIONS",
    "advance",
    "allowed_events",
    "case_colour",
    "open_case",
    "replay",
]


class Status(str, Enum):
    """Lifecycle states of a case.

    The value is the English key stored in the ledger; :attr:`zh` is the label
    used in field packages and reports.

    =============  =========  ====================================================
    member         zh         meaning
    =============  =========  ====================================================
    DETECTED       已发现     found in imagery, not yet sent to the field
    DISPATCHED     已派发     sent to a field team for ground check
    CONFIRMED      已确认     confirmed on the ground as a violation (违法)
    FALSE_ALARM    误报       no violation on the ground
    RECTIFYING     整改中     rectification under way, with a deadline
    RECTIFIED      已整改     rectification reported done, awaiting 销号
    CLOSED         已销号     verified and closed
    REOPENED       反弹       found again after closure (反弹回潮) or reopened
    =============  =========  ====================================================
    """

    DETECTED = "detected"
    DISPATCHED = "dispatched"
    CONFIRMED = "confirmed"
    FALSE_ALARM = "false_alarm"
    RECTIFYING = "rectifying"
    RECTIFIED = "rectified"
    CLOSED = "closed"
    REOPENED = "reopened"

    @property
    def zh(self) -> str:
        """Chinese label of the state."""
        return CASE_STATUS_ZH[self.value]

    @classmethod
    def get(cls, value: str | Status) -> Status:
        """The state named by ``value`` (English key or Chinese label).

        Raises
        ------
        ValueError
            Listing the valid values, if ``value`` names no state.
        """
        if isinstance(value, Status):
            return value
        key = str(value).strip()
        for s in cls:
            if key in (s.value, s.zh, s.name):
                return s
        raise ValueError(
            f"{value!r} is not a case status; use one of "
            f"{[s.value for s in cls]} or {[s.zh for s in cls]}"
        )




class SkyTier(str, Enum):
    """How often the sky has seen a case (影像分级); not its ground verdict.

    =========  ========  =======================================================
    member     zh        meaning
    =========  ========  =======================================================
    PROBABLE   疑似      seen in one observation
    CONFIRMED  影像确认  seen again in a later clear observation
    =========  ========  =======================================================
    """

    PROBABLE = "probable"
    CONFIRMED = "confirmed"

    @property
    def zh(self) -> str:
        """Chinese label of the tier."""
        return SKY_TIER_ZH[self.value]

    @property
    def en(self) -> str:
        """English label of the tier."""
        return SKY_TIER_EN[self.value]


class EventKind(str, Enum):
    """What happened to a case; each kind moves it to one state, or none.

    ===================  ===========  ===========================================
    member               target       meaning
    ===================  ===========  ===========================================
    DETECT               detected     first found in imagery (opens the case)
    REDETECT             (none)       found again by a later run, same place
    SKY_CONFIRM          (none)       seen again in a later clear observation:
                                      sky tier probable -> confirmed (影像确认)
    REBOUND              reopened     found again after closure (回头看 / 反弹)
    DISPATCH             dispatched   sent to a field team
    CONFIRM              confirmed    ground check: violation confirmed
    DISMISS              false_alarm  ground check: false alarm (误报)
    START_RECTIFICATION  rectifying   rectification ordered / started
    COMPLETE             rectified    rectification reported done
    CLOSE                closed       verified and closed (销号)
    REOPEN               reopened     reopened by hand
    UPDATE               (none)       responsible unit, deadline or type changed
    NOTE                 (none)       a note or attachment, nothing else
    ===================  ===========  ===========================================
    """

    DETECT = "detect"
    REDETECT = "redetect"
    SKY_CONFIRM = "sky_confirm"
    REBOUND = "rebound"
    DISPATCH = "dispatch"
    CONFIRM = "confirm"
    DISMISS = "dismiss"
    START_RECTIFICATION = "start_rectification"
    COMPLETE = "complete"
    CLOSE = "close"
    REOPEN = "reopen"
    UPDATE = "update"
    NOTE = "note"

    @property
    def target(self) -> Status | None:
        """The state this kind of event moves a case to (None: unchanged)."""
        return _TARGET[self]

    @classmethod
    def get(cls, value: str | EventKind) -> EventKind:
        """The event kind named by ``value``.

        Raises
        ------
        ValueError
            Listing the valid values, if ``value`` names no event kind.
        """
        if isinstance(value, EventKind):
            return value
        key = str(value).strip().lower()
        for k in cls:
            if key in (k.value, k.name.lower()):
                return k
        raise ValueError(f"{value!r} is not an event kind; use one of {[k.value for k in cls]}")


_TARGET: dict[EventKind, Status | None] = {
    EventKind.DETECT: Status.DETECTED,
    EventKind.REDETECT: None,
    EventKind.SKY_CONFIRM: None,
    EventKind.REBOUND: Status.REOPENED,
    EventKind.DISPATCH: Status.DISPATCHED,
    EventKind.CONFIRM: Status.CONFIRMED,
    EventKind.DISMISS: Status.FALSE_ALARM,
    EventKind.START_RECTIFICATION: Status.RECTIFYING,
    EventKind.COMPLETE: Status.RECTIFIED,
    EventKind.CLOSE: Status.CLOSED,
    EventKind.REOPEN: Status.REOPENED,
    EventKind.UPDATE: None,
    EventKind.NOTE: None,
}

_S = Status
#: Allowed next states from each state (see the module docstring's table).
TRANSITIONS: Mapping[Status, frozenset[Status]] = MappingProxyType(
    {
        _S.DETECTED: frozenset({_S.DISPATCHED, _S.CONFIRMED, _S.FALSE_ALARM}),
        _S.DISPATCHED: frozenset({_S.CONFIRMED, _S.FALSE_ALARM}),
        _S.CONFIRMED: frozenset({_S.RECTIFYING, _S.RECTIFIED}),
        _S.FALSE_ALARM: frozenset({_S.CLOSED, _S.REOPENED}),
        _S.RECTIFYING: frozenset({_S.RECTIFIED}),
        _S.RECTIFIED: frozenset({_S.RECTIFYING, _S.CLOSED}),
        _S.CLOSED: frozenset({_S.REOPENED}),
        _S.REOPENED: frozenset({_S.DISPATCHED, _S.CONFIRMED, _S.FALSE_ALARM}),
    }
)

_STATUS_ORDER = {s: i for i, s in enumerate(Status)}

#: Keys of :attr:`Event.data` that :func:`advance` copies onto the case.
CASE_FIELDS_FROM_EVENTS = ("responsible_unit", "deadline", "real_type")


class Colour(str, Enum):
    """Red/yellow/green code (红黄绿码) of a case; see :func:`case_colour`."""

    RED = "red"
    YELLOW = "yellow"
    GREEN = "green"

    @property
    def zh(self) -> str:
        """Chinese label: 红码, 黄码 or 绿码."""
        return CODE_ZH[self.value]


@dataclass(frozen=True)
class Event:
    """One thing that happened to a case.

    Parameters
    ----------
    kind : EventKind or str
        What happened.
    on : datetime.date
        The date it happened (for field results, the inspection date 核查日期;
        for detections, the date the run recorded them).
    actor : str, optional
        Who did it (inspector, operator, run).
    note : str, optional
        Free text.
    attachments : tuple of str
        Paths or URLs of photos and documents.
    data : mapping
        Facts carried by the event.  ``responsible_unit`` (str), ``deadline``
        (datetime.date) and ``real_type`` (an HJ 1156 activity key) are copied
        onto the case by :func:`advance`; anything else is kept as history.
    """

    kind: EventKind
    on: _dt.date
    actor: str | None = None
    note: str | None = None
    attachments: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EventKind.get(self.kind))
        if isinstance(self.on, _dt.datetime):
            object.__setattr__(self, "on", self.on.date())
        if not isinstance(self.on, _dt.date):
            raise TypeError(f"Event.on must be a datetime.date, not {type(self.on).__name__}")
        object.__setattr__(self, "attachments", tuple(self.attachments))


@dataclass(frozen=True)
class Case:
    """The current state of one case, as the replay of its events gives it.

    Parameters
    ----------
    case_id : str
        Stable ID, e.g. ``"YB-2024-000123"``.
    status : Status
        Current lifecycle state.
    opened_on : datetime.date
        Date of the ``detect`` event that opened the case.
    status_since : datetime.date
        Date of the event that moved the case into ``status``.
    responsible_unit : str, optional
        Unit responsible for rectification (责任单位).
    deadline : datetime.date, optional
        Rectification deadline (整改期限).
    real_type : str, optional
        Activity type found on the ground (an HJ 1156 key of
        :data:`ecopatch.vocabulary.ACTIVITY_TYPES`).
    sky_tier : SkyTier
        ``probable`` until a ``sky_confirm`` event, then ``confirmed``.
    confirmed_on : datetime.date, optional
        Date of the later observation that confirmed it (``sky_confirm``).
    """

    case_id: str
    status: Status
    opened_on: _dt.date
    status_since: _dt.date
    responsible_unit: str | None = None
    deadline: _dt.date | None = None
    real_type: str | None = None
    sky_tier: SkyTier = SkyTier.PROBABLE
    confirmed_on: _dt.date | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status.get(self.status))
        object.__setattr__(self, "sky_tier", SkyTier(self.sky_tier))


def allowed_events(status: Status | str) -> tuple[EventKind, ...]:
    """Event kinds a case in ``status`` accepts.

    Examples
    --------
    >>> [k.value for k in allowed_events("closed")]
    ['redetect', 'sky_confirm', 'rebound', 'reopen', 'update', 'note']
    """
    status = Status.get(status)
    ok = TRANSITIONS[status]
    return tuple(k for k in EventKind if k.target is None or k.target in ok)


def open_case(case_id: str, event: Event) -> Case:
    """Open a case with its first event, which must be a ``detect``.

    Raises
    ------
    LedgerTransitionError
        If ``event`` is not a ``detect`` event.

    Examples
    --------
    >>> import datetime as dt
    >>> c = open_case("YB-2024-000001", Event("detect", dt.date(2024, 5, 1)))
    >>> c.status.value, c.opened_on
    ('detected', datetime.date(2024, 5, 1))
    """
    if event.kind is not EventKind.DETECT:
        raise LedgerTransitionError(
            f"case {case_id}: a case opens with a 'detect' event, not {event.kind.value!r}"
        )
    return _apply_data(
        Case(case_id, Status.DETECTED, opened_on=event.on, status_since=event.on), event
    )


def _apply_data(case: Case, event: Event) -> Case:
    changes = {k: event.data[k] for k in CASE_FIELDS_FROM_EVENTS if event.data.get(k) is not None}
    if "deadline" in changes and not isinstance(changes["deadline"], _dt.date):
        changes["deadline"] = _dt.date.fromisoformat(str(changes["deadline"]))
    return replace(case, **changes) if changes else case


def advance(case: Case, event: Event) -> Case:
    """The case after ``event``; the input case is not changed.

    Parameters
    ----------
    case : Case
        The case before the event.
    event : Event
        What happened.  ``detect`` is refused here (use :func:`open_case`).

    Returns
    -------
    Case
        With the new status (when the event has a target state), ``status_since``
        set to ``event.on`` when the status changed, and the responsible unit,
        deadline and real type taken from ``event.data`` when present.

    Raises
    ------
    LedgerTransitionError
        If the event's target state is not allowed from ``case.status``; the
        message lists the allowed next states.

    Examples
    --------
    >>> import datetime as dt
    >>> c = open_case("YB-2024-000001", Event("detect", dt.date(2024, 5, 1)))
    >>> advance(c, Event("confirm", dt.date(2024, 5, 9))).status.zh
    '已确认'
    >>> advance(c, Event("close", dt.date(2024, 5, 9)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ecopatch.errors.LedgerTransitionError: case YB-2024-000001: cannot 'close' ... (误报)
    """
    kind = event.kind
    target = kind.target
    if kind is EventKind.DETECT:
        raise LedgerTransitionError(
            f"case {case.case_id}: 'detect' only opens a new case; a case found again "
            f"takes a 'redetect' or 'rebound' event"
        )
    if kind is EventKind.SKY_CONFIRM:
        on = event.data.get("confirmed_on")
        if on is not None and not isinstance(on, _dt.date):
            on = _dt.date.fromisoformat(str(on))
        if case.sky_tier is SkyTier.CONFIRMED:  # already confirmed: the first confirmation's date stays
            return case
        return replace(case, sky_tier=SkyTier.CONFIRMED, confirmed_on=on or event.on)
    if target is None:
        return _apply_data(case, event)
    allowed = TRANSITIONS[case.status]
    if target not in allowed:
        names = ", ".join(
            f"{s.value} ({s.zh})" for s in sorted(allowed, key=_STATUS_ORDER.__getitem__)
        )
        raise LedgerTransitionError(
            f"case {case.case_id}: cannot {kind.value!r} (-> {target.value}) from "
            f"{case.status.value} ({case.status.zh}); allowed next states: {names}"
        )
    return _apply_data(replace(case, status=target, status_since=event.on), event)


def replay(case_id: str, events: Iterable[Event]) -> Case:
    """The case that ``events`` (in order, first a ``detect``) lead to.

    Raises
    ------
    LedgerTransitionError
        If there is no event, or an event is not allowed where it stands.
    """
    it = iter(events)
    try:
        first = next(it)
    except StopIteration:
        raise LedgerTransitionError(f"case {case_id}: no events to replay") from None
    case = open_case(case_id, first)
    for ev in it:
        case = advance(case, ev)
    return case


#: Default days before a deadline at which a case turns yellow.
WARN_DAYS = 30
#: Default days a case may wait in ``detected`` / ``dispatched`` before it turns yellow.
STALE_DAYS = 30


def case_colour(
    case: Case,
    today: _dt.date | None = None,
    *,
    warn_days: int = WARN_DAYS,
    stale_days: int = STALE_DAYS,
) -> Colour:
    """Red/yellow/green code (红黄绿码) of a case on ``today``.

    The first rule that applies wins:

    1. ``closed``, ``false_alarm`` or ``rectified`` -> green (nothing to chase;
       a rectified case awaits only its 销号 check).
    2. ``reopened`` -> red (反弹回潮).
    3. A deadline is set and ``today > deadline`` -> red (overdue).
    4. A deadline is set and ``deadline - today <= warn_days`` -> yellow.
    5. ``confirmed`` or ``rectifying`` with no deadline -> yellow (a violation
       without a rectification deadline).
    6. ``detected`` or ``dispatched`` for more than ``stale_days`` days
       (``today - status_since``) -> yellow (not dispatched / not checked).
    7. Otherwise green.

    Parameters
    ----------
    case : Case
        The case.
    today : datetime.date, optional
        The reference date; default the local date.
    warn_days : int
        Days before the deadline at which the code turns yellow (default 30).
    stale_days : int
        Days in ``detected`` or ``dispatched`` before the code turns yellow
        (default 30).

    Returns
    -------
    Colour

    Examples
    --------
    >>> import datetime as dt
    >>> c = Case("YB-2024-000001", "rectifying", dt.date(2024, 3, 1), dt.date(2024, 4, 1),
    ...          deadline=dt.date(2024, 6, 30))
    >>> [case_colour(c, dt.date(2024, m, 1)).value for m in (5, 6, 7)]
    ['green', 'yellow', 'red']
    """
    today = today or _dt.date.today()
    s = case.status
    if s in (Status.CLOSED, Status.FALSE_ALARM, Status.RECTIFIED):
        return Colour.GREEN
    if s is Status.REOPENED:
        return Colour.RED
    if case.deadline is not None:
        if today > case.deadline:
            return Colour.RED
        if (case.deadline - today).days <= warn_days:
            return Colour.YELLOW
    elif s in (Status.CONFIRMED, Status.RECTIFYING):
        return Colour.YELLOW
    if s in (Status.DETECTED, Status.DISPATCHED) and (today - case.status_since).days > stale_days:
        return Colour.YELLOW
    return Colour.GREEN
