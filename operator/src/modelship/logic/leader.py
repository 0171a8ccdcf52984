"""Leader election on a ``coordination.k8s.io/v1`` Lease: the decisions, without I/O.

With several operator replicas exactly one acts. Each replica reads the Lease
and asks :func:`decide` what to do: acquire it (it is absent, released, or its
holder stopped renewing), renew it (it is ours), wait (someone else holds it),
or stop acting (we led and it is no longer ours). Writes go through the API
server with the Lease's resourceVersion, so of two replicas acquiring at once
one gets a 409 and waits.

Expiry compares the holder's ``renewTime`` with this replica's clock, so it
assumes clocks agree to within ``lease - renew deadline`` (5 s by default):
a leader stops acting once it has not renewed for the renew deadline, well
before anyone else may take the Lease.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a Lease's spec that election uses."""

    holder: str = ""
    duration_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0

    def expiry(self) -> datetime | None:
        """When the holder's claim ends; None when there is no claim to respect."""
        if not self.holder or self.renew_time is None or self.duration_seconds <= 0:
            return None
        return self.renew_time + timedelta(seconds=self.duration_seconds)


class Action(StrEnum):
    ACQUIRE = "Acquire"  # write `Decision.write` (create when there is no Lease); we lead once it succeeds
    RENEW = "Renew"  # we lead: write `Decision.write`
    WAIT = "Wait"  # someone else leads: look again after `Decision.wait_seconds` at most
    LOST = "Lost"  # we led and it is no longer ours: stop acting now


@dataclass(frozen=True)
class Decision:
    action: Action
    write: LeaseRecord | None = None
    wait_seconds: float = 0.0


def decide(observed: LeaseRecord | None, me: str, now: datetime, duration_seconds: int,
           leading: bool) -> Decision:
    """What ``me`` does, given the Lease as read (None: there is none) and whether it leads now."""
    if observed is None:
        # A leader whose Lease was deleted cannot know who else created one since: it stops.
        if leading:
            return Decision(Action.LOST)
        return Decision(Action.ACQUIRE, LeaseRecord(me, duration_seconds, now, now, 0))
    if observed.holder == me:
        # Ours: renewing keeps the acquire time; after a restart under the same
        # name (a container restart keeps its pod name) the old process is gone.
        write = replace(observed, duration_seconds=duration_seconds, renew_time=now,
                        acquire_time=observed.acquire_time or now)
        return Decision(Action.RENEW if leading else Action.ACQUIRE, write)
    if leading:
        return Decision(Action.LOST)
    expiry = observed.expiry()
    if expiry is not None and now < expiry:
        return Decision(Action.WAIT, wait_seconds=(expiry - now).total_seconds())
    return Decision(Action.ACQUIRE, LeaseRecord(me, duration_seconds, now, now, observed.transitions + 1))


def released(observed: LeaseRecord, now: datetime) -> LeaseRecord:
    """What a leader writes on a graceful stop, so that a successor need not wait for expiry."""
    return LeaseRecord("", 1, now, now, observed.transitions)


def must_stop(last_renewed: float, now: float, renew_deadline: float) -> bool:
    """A leader stops acting when its last successful renewal (started at
    ``last_renewed``, monotonic seconds) is ``renew_deadline`` old."""
    return now - last_renewed >= renew_deadline


def follower_sleep(decision: Decision, retry_seconds: float) -> float:
    """How long a follower waits before reading the Lease again: the retry
    period, or less when the holder's claim ends sooner (so a crashed leader
    is replaced as soon as its Lease expires, not up to a retry period later)."""
    if decision.action is not Action.WAIT:
        return retry_seconds
    return max(0.0, min(retry_seconds, decision.wait_seconds + 0.01))


# --- The Lease spec on the wire (MicroTime: RFC 3339 with microseconds) ---------


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value.utcoffset() == timedelta(0) else value.isoformat()


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def to_spec(record: LeaseRecord) -> dict[str, Any]:
    return {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.duration_seconds,
        "acquireTime": _time(record.acquire_time),
        "renewTime": _time(record.renew_time),
        "leaseTransitions": record.transitions,
    }


def from_spec(spec: dict[str, Any] | None) -> LeaseRecord:
    spec = spec or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=_parse(spec.get("acquireTime")),
        renew_time=_parse(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
    )
