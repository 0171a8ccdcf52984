"""Conditions: transition time moves only on a flip; Ready aggregates its dependents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from modelship.api.common import ConditionStatus
from modelship.logic import conditions as c

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_rfc3339_and_parse_round_trip() -> None:
    assert c.rfc3339(T0) == "2026-11-23T12:00:00Z"
    assert c.rfc3339(datetime(2026, 11, 23, 13, 0, 0, tzinfo=timezone(timedelta(hours=1)))) == "2026-11-23T12:00:00Z"
    assert c.rfc3339(datetime(2026, 11, 23, 12, 0, 0)) == "2026-11-23T12:00:00Z"
    assert c.parse_time("2026-11-23T12:00:00Z") == T0
    assert c.parse_time("2026-11-23T12:00:00") == T0
    assert c.parse_time(None) is None and c.parse_time("") is None


@pytest.mark.parametrize(
    ("first", "second", "moved"),
    [
        (True, True, False),
        (True, False, True),
        (False, False, False),
        (ConditionStatus.UNKNOWN, False, True),
    ],
)
def test_transition_time_moves_only_on_flip(first: bool | ConditionStatus, second: bool, moved: bool) -> None:
    conds = c.set_condition([], c.condition(c.TRAINED, first, "A", "one"), T0)
    assert conds[0].last_transition_time == "2026-11-23T12:00:00Z"
    conds = c.set_condition(conds, c.condition(c.TRAINED, second, "B", "two", generation=3), T1)
    assert len(conds) == 1
    assert conds[0].reason == "B" and conds[0].message == "two" and conds[0].observed_generation == 3
    expected = c.rfc3339(T1 if moved else T0)
    assert conds[0].last_transition_time == expected


def test_set_condition_keeps_order_appends_new_and_does_not_mutate() -> None:
    base = c.merge_conditions([], [c.condition(c.READY, False, "X"), c.condition(c.TRAINED, True, "Y")], T0)
    before = [x.model_copy() for x in base]
    out = c.set_condition(base, c.condition(c.PROGRESSING, True, "Z"), T1)
    assert [x.type for x in out] == [c.READY, c.TRAINED, c.PROGRESSING]
    assert base == before
    assert c.get_condition(out, c.PROGRESSING) is not None
    assert c.is_true(out, c.TRAINED) and not c.is_true(out, c.READY) and not c.is_true(out, c.DRIFTED)
    assert [x.type for x in c.remove_condition(out, c.TRAINED)] == [c.READY, c.PROGRESSING]


def test_setting_the_same_condition_twice_is_a_no_op() -> None:
    once = c.set_condition([], c.condition(c.READY, True, "Available", "ok"), T0)
    twice = c.set_condition(once, c.condition(c.READY, True, "Available", "ok"), T1)
    assert once == twice


@pytest.mark.parametrize(
    ("deps", "status", "reason"),
    [
        ({c.TRAINED: True, "Available": True}, ConditionStatus.TRUE, c.Reason.AVAILABLE),
        ({c.TRAINED: True, "Available": False}, ConditionStatus.FALSE, "R-Available"),
        ({c.TRAINED: ConditionStatus.UNKNOWN, "Available": False}, ConditionStatus.FALSE, "R-Available"),
        ({c.TRAINED: ConditionStatus.UNKNOWN, "Available": True}, ConditionStatus.UNKNOWN, "R-Trained"),
        ({c.TRAINED: True}, ConditionStatus.UNKNOWN, "Unknown"),
    ],
)
def test_aggregate_ready(deps: dict[str, bool | ConditionStatus], status: ConditionStatus, reason: str) -> None:
    conds = c.merge_conditions([], [c.condition(t, s, f"R-{t}", f"m-{t}") for t, s in deps.items()], T0)
    ready = c.aggregate_ready(conds, [c.TRAINED, "Available"], generation=4)
    assert ready.type == c.READY and ready.status == status and ready.reason == reason
    assert ready.observed_generation == 4
