"""Automatic retraining: may a retrain start now? And Alertmanager alerts, deduplicated.

Alertmanager repeats a firing alert every ``repeat_interval`` and retries a
failed webhook, so the same alert arrives many times. One alert instance is
identified by its fingerprint and ``startsAt`` (a new firing after a resolve
has a new ``startsAt``); it counts once. The webhook payload is version 4.

The book lives in the operator's memory, so it is bounded: a key longer than
``MAX_KEY_CHARS`` is kept as a hash, a target whose names could not be a
namespace and a Model is not kept, and past ``max_entries`` instances or
``max_bytes`` of stored text the oldest instances go first (resolved ones
before firing ones). A flood of distinct alerts costs at most the bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelship.logic.conditions import parse_time, rfc3339
from modelship.logic.revision import short_hash

DAY = timedelta(hours=24)
MAX_KEY_CHARS = 128
MAX_NAMESPACE_CHARS = 63
MAX_NAME_CHARS = 253
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class RetrainDecision:
    allowed: bool
    reason: str  # PascalCase: Allowed, Disabled, AlreadyRunning, CoolingDown, DailyLimit, AwaitingAlert
    message: str
    retry_at: datetime | None = None  # when asking again could give another answer


def recent_triggers(times: Iterable[datetime | str], now: datetime) -> list[datetime]:
    """Trigger times within the last 24 h, oldest first (strings are RFC 3339)."""
    parsed = [parse_time(t) if isinstance(t, str) else t for t in times]
    return sorted(t for t in parsed if t is not None and now - t < DAY)


def may_retrain(
    now: datetime,
    *,
    cooldown: timedelta,
    max_per_day: int,
    triggered: Sequence[datetime | str] = (),
    running: str | None = None,
    enabled: bool = True,
    alert_firing: bool | None = None,
    rolling_out: str | None = None,
) -> RetrainDecision:
    """Whether an automatic retrain may start now, with the reason when not.

    ``triggered``: times of earlier automatic retrains (any order; older than
    24 h are ignored). ``running``: the TrainingJob in flight, if any.
    ``rolling_out``: the Model's canary (or shadow) revision, if any: what it
    would retrain has not been judged yet, so nothing starts until it ends.
    ``alert_firing``: ``None`` when no alert is required, else whether the
    matching alert is firing (so Alertmanager's silences and inhibitions
    apply). Checks in order: enabled, running, rolling out, alert, daily limit, cooldown.
    """
    if not enabled:
        return RetrainDecision(False, "Disabled", "automatic retraining is off")
    if running:
        return RetrainDecision(False, "AlreadyRunning", f"TrainingJob {running} is still running")
    if rolling_out:
        return RetrainDecision(False, "RollingOut", f"revision {rolling_out} is still rolling out")
    if alert_firing is False:
        return RetrainDecision(False, "AwaitingAlert", "waiting for the Alertmanager alert to fire (requireAlert)")
    recent = recent_triggers(triggered, now)
    if len(recent) >= max_per_day:
        retry = recent[len(recent) - max_per_day] + DAY if max_per_day > 0 else None
        return RetrainDecision(
            False, "DailyLimit",
            f"{len(recent)} automatic retrain(s) in the last 24 h reached the limit of {max_per_day}"
            + (f"; next possible at {rfc3339(retry)}" if retry else ""),
            retry,
        )
    if recent and now - recent[-1] < cooldown:
        retry = recent[-1] + cooldown
        return RetrainDecision(
            False, "CoolingDown",
            f"the last retrain was at {rfc3339(recent[-1])}; the cooldown of "
            f"{int(cooldown.total_seconds())} s ends at {rfc3339(retry)}",
            retry,
        )
    return RetrainDecision(True, "Allowed", "retraining may start")


# --- Alertmanager -------------------------------------------------------------


class AlertPayloadError(ValueError):
    """The webhook body is not an Alertmanager version 4 payload (HTTP 400)."""

    status = 400


@dataclass(frozen=True)
class Alert:
    status: str  # firing | resolved
    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: str = ""
    fingerprint: str = ""
    group_key: str = ""

    @property
    def key(self) -> str:
        """One alert instance: its fingerprint (or a hash of its labels) and when it started.

        At most ``MAX_KEY_CHARS`` long: a longer one (Alertmanager's are 16 hex digits and a
        timestamp) is replaced by its hash, so the book's size does not depend on the sender.
        """
        fingerprint = self.fingerprint or short_hash(dict(self.labels), length=16)
        key = f"{fingerprint}@{self.starts_at}"
        return key if len(key) <= MAX_KEY_CHARS else "sha256:" + short_hash(key, length=64)

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    @property
    def target(self) -> tuple[str, str] | None:
        """(namespace, model) from the labels, or ``None`` when the alert names no model."""
        namespace, model = self.labels.get("namespace"), self.labels.get("model")
        if not namespace or not model or len(namespace) > MAX_NAMESPACE_CHARS or len(model) > MAX_NAME_CHARS:
            return None  # no Model can have these names
        return namespace, model


def parse_alerts(payload: Mapping[str, Any]) -> list[Alert]:
    """The alerts of a webhook payload (version 4); raises :class:`AlertPayloadError`."""
    if not isinstance(payload, Mapping):
        raise AlertPayloadError("the body must be a JSON object")
    version = str(payload.get("version", ""))
    if version != "4":
        raise AlertPayloadError(f"unsupported Alertmanager payload version {version!r}; expected '4'")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise AlertPayloadError("the payload has no alerts list")
    group_key = str(payload.get("groupKey", ""))
    out = []
    for i, a in enumerate(alerts):
        if not isinstance(a, Mapping) or not isinstance(a.get("labels"), Mapping):
            raise AlertPayloadError(f"alert {i} has no labels")
        status = str(a.get("status") or payload.get("status") or "")
        if status not in ("firing", "resolved"):
            raise AlertPayloadError(f"alert {i} has status {status!r}; expected firing or resolved")
        out.append(Alert(
            status,
            {str(k): str(v) for k, v in a["labels"].items()},
            {str(k): str(v) for k, v in dict(a.get("annotations") or {}).items()},
            str(a.get("startsAt", "")),
            str(a.get("fingerprint", "")),
            group_key,
        ))
    return out


@dataclass(frozen=True)
class AlertBook:
    """Alert instances seen (key → when first seen) and what is firing per (namespace, model).

    ``max_entries`` and ``max_bytes`` bound it (see the module's docstring);
    ``dropped`` counts the instances it had to forget early, over its life.
    """

    seen: Mapping[str, datetime] = field(default_factory=dict)
    firing: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    max_entries: int = DEFAULT_MAX_ENTRIES
    max_bytes: int = DEFAULT_MAX_BYTES
    dropped: int = 0


def book_bytes(book: AlertBook) -> int:
    """The text the book holds: every key once for ``seen``, again with its target's names for ``firing``."""
    size = sum(len(k) for k in book.seen)
    for (namespace, model), keys in book.firing.items():
        size += len(namespace) + len(model) + sum(len(k) for k in keys)
    return size


def _key_of_target(firing: Mapping[tuple[str, str], set[str]]) -> dict[str, tuple[str, str]]:
    return {k: target for target, keys in firing.items() for k in keys}


def _bound(seen: dict[str, datetime], firing: dict[tuple[str, str], set[str]],
           max_entries: int, max_bytes: int) -> int:
    """Forget the oldest instances, resolved before firing, until the book fits; returns how many."""
    target_of = _key_of_target(firing)
    size = sum(len(k) for k in seen) + sum(len(t[0]) + len(t[1]) + len(k) for k, t in target_of.items())
    if len(seen) <= max_entries and size <= max_bytes:
        return 0
    order = sorted(seen, key=lambda k: (k in target_of, seen[k], k))
    dropped = 0
    for key in order:
        if len(seen) <= max_entries and size <= max_bytes:
            break
        del seen[key]
        size -= len(key)
        target = target_of.pop(key, None)
        if target is not None:
            firing[target].discard(key)
            size -= len(target[0]) + len(target[1]) + len(key)
        dropped += 1
    return dropped


def record_alerts(
    book: AlertBook, alerts: Iterable[Alert], now: datetime, *, forget_after: timedelta = timedelta(days=2)
) -> tuple[AlertBook, list[Alert]]:
    """Take in a batch of alerts; returns the new book and the alerts that are news.

    News: a firing instance not seen before, or the resolve of one that was
    firing. Repeats (the same instance firing again) are not news. Entries
    older than ``forget_after`` are dropped, and the oldest beyond the book's
    bounds (``AlertBook.dropped`` counts those).
    """
    seen = {k: t for k, t in book.seen.items() if now - t < forget_after}
    firing = {k: {key for key in v if key in seen} for k, v in book.firing.items()}
    news: list[Alert] = []
    for alert in alerts:
        target = alert.target
        key = alert.key
        if alert.firing:
            if key not in seen:
                seen[key] = now
                news.append(alert)
            if target is not None:
                firing.setdefault(target, set()).add(key)
        else:
            if target is not None and key in firing.get(target, set()):
                firing[target].discard(key)
                news.append(alert)
            seen.setdefault(key, now)
    dropped = _bound(seen, firing, book.max_entries, book.max_bytes)
    return AlertBook(seen, {k: frozenset(v) for k, v in firing.items() if v}, book.max_entries, book.max_bytes,
                     book.dropped + dropped), news


def is_firing(book: AlertBook, namespace: str, model: str) -> bool:
    return bool(book.firing.get((namespace, model)))
