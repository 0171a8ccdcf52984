"""The Elector against an in-memory Lease with the API server's optimistic
concurrency (a write with a stale resourceVersion gets a conflict), on fake
clocks; one test uses real threads for the renew deadline."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from modelship.controllers.leader import Elector
from modelship.k8s.lease import Conflict, Observed
from modelship.logic.leader import LeaseRecord


class MemoryLease:
    def __init__(self) -> None:
        self.obj: Observed | None = None
        self.version = 0
        self.writes = 0
        self.broken = False

    def _write(self, record: LeaseRecord) -> Observed:
        if self.broken:
            raise ConnectionError("API server unreachable")
        self.version += 1
        self.writes += 1
        self.obj = Observed(record, str(self.version))
        return self.obj

    def get(self) -> Observed | None:
        if self.broken:
            raise ConnectionError("API server unreachable")
        return self.obj

    def create(self, record: LeaseRecord) -> Observed:
        if self.obj is not None:
            raise Conflict("exists")
        return self._write(record)

    def update(self, resource_version: str, record: LeaseRecord) -> Observed:
        if self.obj is None or self.obj.resource_version != resource_version:
            raise Conflict("stale")
        return self._write(record)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def wall(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.t)

    def mono(self) -> float:
        return 1000 + self.t


def elector(store: MemoryLease, clock: Clock, name: str, lost: list[str]) -> Elector:
    return Elector(store, name, 15, 10.0, 2.0, on_lost=lambda why: lost.append(f"{name}: {why}"),
                   wall=clock.wall, monotonic=clock.mono)


def test_one_leads_the_other_takes_over_when_renewals_stop() -> None:
    store, clock, lost = MemoryLease(), Clock(), []
    a, b = elector(store, clock, "a", lost), elector(store, clock, "b", lost)
    assert a.try_acquire() == 0.0 and a.leading
    assert b.try_acquire() == 2.0 and not b.leading
    for _ in range(5):  # a renews every 2 s: b keeps waiting
        clock.t += 2
        assert a.renew_once()
        assert b.try_acquire() > 0 and not b.leading
    last_renewal = clock.t
    clock.t += 14  # a is silent (crashed): b sleeps only until the Lease expires
    assert b.try_acquire() == 1.01 and not b.leading
    clock.t = last_renewal + 15
    b.try_acquire()
    assert b.leading and store.obj is not None
    assert (store.obj.record.holder, store.obj.record.transitions) == ("b", 1)
    # a comes back (it was paused, not dead): its renewal finds b and stops it.
    assert not a.renew_once()
    assert lost == ["a: it is held by b"] and not a.leading


def test_two_at_once_one_wins_by_the_resource_version() -> None:
    store, clock, lost = MemoryLease(), Clock(), []
    store.obj = Observed(LeaseRecord("old", 15, clock.wall(), clock.wall(), 4), "7")
    store.version = 7
    clock.t = 30
    a, b = elector(store, clock, "a", lost), elector(store, clock, "b", lost)
    seen = store.get()
    assert seen is not None
    a.try_acquire()
    # b read before a wrote: its write carries the old version and loses.
    b_write = LeaseRecord("b", 15, clock.wall(), clock.wall(), 5)
    try:
        store.update(seen.resource_version, b_write)
        raise AssertionError("a stale write must conflict")
    except Conflict:
        pass
    b.try_acquire()
    assert a.leading and not b.leading and store.obj is not None and store.obj.record.holder == "a"


def test_release_hands_over_at_once() -> None:
    store, clock, lost = MemoryLease(), Clock(), []
    a, b = elector(store, clock, "a", lost), elector(store, clock, "b", lost)
    a.try_acquire()
    b.try_acquire()
    clock.t += 1
    a.release()
    assert not a.leading and store.obj is not None and store.obj.record.holder == ""
    clock.t += 0.1
    assert b.try_acquire() == 0.0 and b.leading and lost == []


def test_a_renewal_conflict_is_read_again_not_lost() -> None:
    store, clock, lost = MemoryLease(), Clock(), []
    a = elector(store, clock, "a", lost)
    a.try_acquire()
    assert store.obj is not None
    store.obj = Observed(store.obj.record, "99")  # someone relabelled the Lease: same holder, new version
    clock.t += 2
    assert a.renew_once() and lost == [] and store.obj.record.holder == "a"


def test_campaign_stops_on_the_stop_event() -> None:
    store, clock, lost = MemoryLease(), Clock(), []
    store.obj = Observed(LeaseRecord("b", 15, clock.wall(), clock.wall(), 0), "1")
    a = elector(store, clock, "a", lost)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert a.campaign(stop) is False
    assert time.monotonic() - started < 1.5


def test_renew_deadline_stops_a_leader_that_cannot_reach_the_api() -> None:
    store, lost = MemoryLease(), []
    a = Elector(store, "a", 2, 0.5, 0.1, on_lost=lost.append)
    assert a.campaign(threading.Event())
    a.start_renewing()
    time.sleep(0.35)
    assert lost == [] and store.writes >= 3  # renewing every 0.1 s
    store.broken = True
    broke = time.monotonic()
    deadline = broke + 3
    while not lost and time.monotonic() < deadline:
        time.sleep(0.02)
    took = time.monotonic() - broke
    a.stop_renewing()
    assert lost and lost[0].startswith("not renewed for")
    assert 0.3 < took < 0.9, took  # the deadline (0.5 s) after the last renewal, not later
    assert not a.leading
    a.release()  # a lost Lease is not written again
    assert store.obj is not None and store.obj.record.holder == "a"
