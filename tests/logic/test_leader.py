"""Leader election decisions: tables of (Lease as read, time, who asks) → what to do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelship.logic.leader import (
    Action,
    Decision,
    LeaseRecord,
    decide,
    follower_sleep,
    from_spec,
    must_stop,
    released,
    to_spec,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def held(holder: str, renewed: float, duration: int = 15, transitions: int = 3) -> LeaseRecord:
    return LeaseRecord(holder, duration, at(-100), at(renewed), transitions)


# (case, observed, now, leading) → (action, written holder, written transitions, wait seconds)
CASES: list[tuple[str, LeaseRecord | None, float, bool, Action, str | None, int | None, float]] = [
    ("no-lease", None, 0, False, Action.ACQUIRE, "a", 0, 0),
    ("no-lease-while-leading", None, 0, True, Action.LOST, None, None, 0),
    ("released", LeaseRecord("", 1, at(-5), at(-5), 4), 0, False, Action.ACQUIRE, "a", 5, 0),
    ("released-just-now", LeaseRecord("", 1, at(0), at(0), 4), 0, False, Action.ACQUIRE, "a", 5, 0),
    ("other-fresh", held("b", -1), 0, False, Action.WAIT, None, None, 14),
    ("other-at-expiry", held("b", -15), 0, False, Action.ACQUIRE, "a", 4, 0),
    ("other-just-before-expiry", held("b", -14.5), 0, False, Action.WAIT, None, None, 0.5),
    ("other-expired", held("b", -60), 0, False, Action.ACQUIRE, "a", 4, 0),
    ("other-short-lease", held("b", -2, duration=1), 0, False, Action.ACQUIRE, "a", 4, 0),
    ("other-no-renew-time", LeaseRecord("b", 15, None, None, 2), 0, False, Action.ACQUIRE, "a", 3, 0),
    ("other-while-leading", held("b", -1), 0, True, Action.LOST, None, None, 0),
    ("other-expired-while-leading", held("b", -60), 0, True, Action.LOST, None, None, 0),
    ("mine-renew", held("a", -2), 0, True, Action.RENEW, "a", 3, 0),
    ("mine-renew-late", held("a", -30), 0, True, Action.RENEW, "a", 3, 0),
    ("mine-after-restart", held("a", -3), 0, False, Action.ACQUIRE, "a", 3, 0),
]


@pytest.mark.parametrize(("case", "observed", "now", "leading", "action", "holder", "transitions", "wait"),
                         CASES, ids=[c[0] for c in CASES])
def test_decide(case: str, observed: LeaseRecord | None, now: float, leading: bool, action: Action,
                holder: str | None, transitions: int | None, wait: float) -> None:
    got = decide(observed, "a", at(now), 15, leading)
    assert got.action is action
    assert got.wait_seconds == pytest.approx(wait)
    if holder is None:
        assert got.write is None
        return
    assert got.write is not None
    assert (got.write.holder, got.write.transitions) == (holder, transitions)
    assert got.write.renew_time == at(now)
    assert got.write.duration_seconds == 15
    # A new holder starts its tenure now; the same holder keeps its acquire time.
    same = observed is not None and observed.holder == "a"
    assert got.write.acquire_time == (observed.acquire_time if same and observed else at(now))


def test_renewal_keeps_the_lease_alive_for_its_duration() -> None:
    mine = decide(None, "a", at(0), 15, leading=False).write
    assert mine is not None
    assert decide(mine, "b", at(14.9), 15, leading=False).action is Action.WAIT
    assert decide(mine, "b", at(15), 15, leading=False).action is Action.ACQUIRE
    renewed = decide(mine, "a", at(2), 15, leading=True).write
    assert renewed is not None
    assert decide(renewed, "b", at(16), 15, leading=False).action is Action.WAIT


def test_release_lets_a_successor_acquire_at_once() -> None:
    mine = held("a", 0)
    gone = released(mine, at(0.5))
    assert (gone.holder, gone.duration_seconds, gone.transitions) == ("", 1, 3)
    got = decide(gone, "b", at(0.6), 15, leading=False)
    assert got.action is Action.ACQUIRE and got.write is not None and got.write.transitions == 4


# (case, last renewed, now, renew deadline) → stop
STOPS = [
    ("fresh", 100.0, 100.0, 10.0, False),
    ("one-missed", 100.0, 104.0, 10.0, False),
    ("just-before", 100.0, 109.99, 10.0, False),
    ("at-deadline", 100.0, 110.0, 10.0, True),
    ("long-gone", 100.0, 200.0, 10.0, True),
]


@pytest.mark.parametrize(("case", "last", "now", "deadline", "stop"), STOPS, ids=[c[0] for c in STOPS])
def test_must_stop(case: str, last: float, now: float, deadline: float, stop: bool) -> None:
    assert must_stop(last, now, deadline) is stop


# (case, decision, retry) → sleep
SLEEPS = [
    ("wait-long", Decision(Action.WAIT, wait_seconds=14), 2.0, 2.0),
    ("wait-short", Decision(Action.WAIT, wait_seconds=0.5), 2.0, 0.51),
    ("wait-none", Decision(Action.WAIT, wait_seconds=0), 2.0, 0.01),
    ("not-waiting", Decision(Action.ACQUIRE), 2.0, 2.0),
]


@pytest.mark.parametrize(("case", "decision", "retry", "sleep"), SLEEPS, ids=[c[0] for c in SLEEPS])
def test_follower_sleep(case: str, decision: Decision, retry: float, sleep: float) -> None:
    assert follower_sleep(decision, retry) == pytest.approx(sleep)


SPECS = [
    ("full", {"holderIdentity": "op-1", "leaseDurationSeconds": 15, "acquireTime": "2026-01-01T12:00:00.000000Z",
              "renewTime": "2026-01-01T12:00:02.500000Z", "leaseTransitions": 7},
     LeaseRecord("op-1", 15, T0, at(2.5), 7)),
    ("empty", {}, LeaseRecord()),
    ("none", None, LeaseRecord()),
    ("released", {"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": "2026-01-01T12:00:00Z"},
     LeaseRecord("", 1, None, T0, 0)),
    ("garbage-time", {"holderIdentity": "x", "renewTime": "yesterday"}, LeaseRecord("x", 0, None, None, 0)),
]


@pytest.mark.parametrize(("case", "spec", "record"), SPECS, ids=[c[0] for c in SPECS])
def test_from_spec(case: str, spec: dict[str, object] | None, record: LeaseRecord) -> None:
    assert from_spec(spec) == record


def test_spec_round_trip_in_microtime() -> None:
    record = LeaseRecord("op-1", 15, at(0.000001), at(2.123456), 2)
    spec = to_spec(record)
    assert spec["renewTime"] == "2026-01-01T12:00:02.123456Z"
    assert from_spec(spec) == record
