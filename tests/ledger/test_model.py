"""The pure lifecycle state machine and the red/yellow/green code."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecopatch.errors import LedgerTransitionError
from ecopatch.ledger.model import (
    TRANSITIONS,
    Case,
    Colour,
    Event,
    EventKind,
    Status,
    advance,
    allowed_events,
    case_colour,
    open_case,
    replay,
)

D0 = dt.date(2024, 5, 1)


def ev(kind: str, day: int = 0, **data) -> Event:
    return Event(kind, D0 + dt.timedelta(days=day), data=data)


def case_in(status: str, *, since: dt.date = D0, **kw) -> Case:
    return Case("YB-2024-000001", status, opened_on=D0, status_since=since, **kw)


def test_status_labels_and_lookup():
    assert [s.zh for s in Status] == [
        "已发现", "已派发", "已确认", "误报", "整改中", "已整改", "已销号", "反弹",
    ]  # fmt: skip
    assert Status.get("已销号") is Status.CLOSED
    assert Status.get("false_alarm") is Status.FALSE_ALARM
    with pytest.raises(ValueError, match="not a case status.*detected"):
        Status.get("done")


def test_event_kind_lookup_and_targets():
    assert EventKind.get("DISMISS") is EventKind.DISMISS
    assert EventKind.CLOSE.target is Status.CLOSED
    assert EventKind.REDETECT.target is None
    with pytest.raises(ValueError, match="not an event kind"):
        EventKind.get("approve")


def test_event_and_case_are_frozen():
    e = ev("confirm")
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.kind = EventKind.CLOSE  # type: ignore[misc]
    c = case_in("detected")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.status = Status.CLOSED  # type: ignore[misc]


def test_event_date_from_datetime():
    assert Event("note", dt.datetime(2024, 5, 1, 23, 59)).on == D0
    with pytest.raises(TypeError):
        Event("note", "2024-05-01")  # type: ignore[arg-type]


# every (state, event kind) pair: allowed exactly when the table says so
_PAIRS = [(s, k) for s in Status for k in EventKind if k is not EventKind.DETECT]


@pytest.mark.parametrize(
    ("status", "kind"), _PAIRS, ids=[f"{s.value}-{k.value}" for s, k in _PAIRS]
)
def test_transition_table_is_enforced(status, kind):
    case = case_in(status.value)
    event = Event(kind, D0 + dt.timedelta(days=3))
    if kind.target is None or kind.target in TRANSITIONS[status]:
        after = advance(case, event)
        assert after.status is (kind.target or status)
        assert after.status_since == (event.on if kind.target else case.status_since)
        assert kind in allowed_events(status)
        assert case.status is status  # input unchanged
    else:
        with pytest.raises(LedgerTransitionError, match=f"from {status.value}") as info:
            advance(case, event)
        for nxt in TRANSITIONS[status]:
            assert f"{nxt.value} ({nxt.zh})" in str(info.value)
        assert kind not in allowed_events(status)


def test_transition_error_message():
    with pytest.raises(LedgerTransitionError) as info:
        advance(case_in("detected"), ev("close"))
    msg = str(info.value)
    assert msg.startswith("case YB-2024-000001: cannot 'close' (-> closed) from detected (已发现)")
    assert msg.endswith("dispatched (已派发), confirmed (已确认), false_alarm (误报)")


def test_detect_only_opens():
    with pytest.raises(LedgerTransitionError, match="opens with a 'detect'"):
        open_case("YB-2024-000001", ev("confirm"))
    with pytest.raises(LedgerTransitionError, match="only opens a new case"):
        advance(case_in("closed"), ev("detect"))
    with pytest.raises(LedgerTransitionError, match="no events"):
        replay("YB-2024-000001", [])


def test_full_lifecycle_with_rebound():
    events = [
        ev("detect"),
        ev("dispatch", 2),
        ev("confirm", 10, real_type="mining", responsible_unit="某镇人民政府"),
        ev("start_rectification", 12, deadline="2024-08-31"),
        ev("redetect", 20),
        ev("complete", 80),
        ev("close", 90),
        ev("rebound", 400),
        ev("confirm", 410),
    ]
    c = replay("YB-2024-000001", events)
    assert c.status is Status.CONFIRMED
    assert c.opened_on == D0
    assert c.status_since == D0 + dt.timedelta(days=410)
    assert c.real_type == "mining"
    assert c.responsible_unit == "某镇人民政府"
    assert c.deadline == dt.date(2024, 8, 31)  # ISO string from stored JSON becomes a date


def test_rectified_can_go_back_to_rectifying():
    assert advance(case_in("rectified"), ev("start_rectification")).status is Status.RECTIFYING


def test_update_changes_facts_not_state():
    c = advance(case_in("rectifying"), ev("update", 5, deadline=dt.date(2024, 9, 1)))
    assert c.status is Status.RECTIFYING and c.deadline == dt.date(2024, 9, 1)
    assert c.status_since == D0


# --------------------------------------------------------------------------- colour


T = dt.date(2024, 6, 1)


@pytest.mark.parametrize(
    ("status", "kw", "expected"),
    [
        ("closed", {"deadline": dt.date(2024, 1, 1)}, "green"),  # overdue does not matter
        ("false_alarm", {}, "green"),
        ("rectified", {"deadline": dt.date(2024, 1, 1)}, "green"),
        ("reopened", {"since": T}, "red"),
        ("rectifying", {"deadline": dt.date(2024, 5, 31)}, "red"),  # overdue
        ("confirmed", {"deadline": dt.date(2024, 7, 1)}, "yellow"),  # 30 days left
        ("confirmed", {"deadline": dt.date(2024, 7, 2)}, "green"),  # 31 days left
        ("confirmed", {"deadline": T}, "yellow"),  # due today
        ("confirmed", {}, "yellow"),  # violation without a deadline
        ("rectifying", {}, "yellow"),
        ("detected", {"since": dt.date(2024, 5, 2)}, "green"),  # 30 days: not yet stale
        ("detected", {"since": dt.date(2024, 5, 1)}, "yellow"),  # 31 days without dispatch
        ("dispatched", {"since": dt.date(2024, 3, 1)}, "yellow"),
        ("dispatched", {"since": dt.date(2024, 5, 20)}, "green"),
        ("dispatched", {"since": dt.date(2024, 5, 20), "deadline": dt.date(2024, 5, 30)}, "red"),
    ],
)
def test_case_colour_rules(status, kw, expected):
    since = kw.pop("since", D0)
    assert case_colour(case_in(status, since=since, **kw), T) is Colour(expected)


def test_case_colour_thresholds_are_parameters():
    c = case_in("confirmed", deadline=dt.date(2024, 6, 11))
    assert case_colour(c, T).value == "yellow"
    assert case_colour(c, T, warn_days=5).value == "green"
    d = case_in("detected", since=dt.date(2024, 5, 25))
    assert case_colour(d, T, stale_days=3).value == "yellow"
    assert Colour.RED.zh == "红码"


def test_case_colour_default_today_is_local_date():
    c = case_in("confirmed", deadline=dt.date.today() + dt.timedelta(days=365))
    assert case_colour(c).value == "green"


# --------------------------------------------------------------------------- properties

_KINDS = [k for k in EventKind if k is not EventKind.DETECT]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_KINDS), max_size=25))
def test_any_event_sequence_stays_inside_the_table(kinds):
    case = open_case("YB-2024-000001", ev("detect"))
    accepted = [ev("detect")]
    for i, k in enumerate(kinds, start=1):
        e = Event(k, D0 + dt.timedelta(days=i))
        try:
            nxt = advance(case, e)
        except LedgerTransitionError:
            assert k.target is not None and k.target not in TRANSITIONS[case.status]
            continue
        assert nxt.status is case.status or nxt.status in TRANSITIONS[case.status]
        assert (nxt.status_since != case.status_since) == (k.target is not None)
        case = nxt
        accepted.append(e)
    assert replay("YB-2024-000001", accepted) == case


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(list(Status)),
    st.one_of(st.none(), st.dates(dt.date(2023, 1, 1), dt.date(2026, 1, 1))),
    st.dates(dt.date(2023, 1, 1), dt.date(2026, 1, 1)),
)
def test_colour_is_total_and_closed_cases_are_green(status, deadline, today):
    c = case_in(status.value, deadline=deadline)
    colour = case_colour(c, today)
    assert isinstance(colour, Colour)
    if status in (Status.CLOSED, Status.FALSE_ALARM, Status.RECTIFIED):
        assert colour is Colour.GREEN
    if status is Status.REOPENED:
        assert colour is Colour.RED
