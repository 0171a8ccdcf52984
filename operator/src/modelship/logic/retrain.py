"""Automatic retraining: may a retrain start now? And Alertmanager alerts, deduplicated.

Alertmanager repeats a firing alert every ``repeat_interval`` and retries a
failed webhook, so the same alert arrives many times. One alert instance is
identified by its fingerprint and ``startsAt`` (a new firing after a resolve
has a new ``startsAt``); it counts once. The webhook payload is version 4.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelship.logic.conditions import parse_time, rfc3339
from modelship.logic.revision import short_hash

DAY = timedelta(hours=24)


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
) -> RetrainDecision:
    """Whether an automatic retrain may start now, with the reason when not.

    ``triggered``: times of earlier automatic retrains (any order; older than
    24 h are ignored). ``running``: the TrainingJob in flight, if any.
    ``alert_firing``: ``None`` when no alert is required, else whether the
    matching alert is firing (so Alertmanager's silences and inhibitions
    apply). Checks in order: enabled, running, alert, daily limit, cooldown.
    """
    if not enabled:
        return RetrainDecision(False, "Disabled", "automatic retraining is off")
    if running:
        return RetrainDecision(False, "AlreadyRunning", f"TrainingJob {running} is still running")
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
        """One alert instance: its fingerprint (or a hash of its labels) and when it started."""
        fingerprint = self.fingerprint or short_hash(dict(self.labels), length=16)
        return f"{fingerprint}@{self.starts_at}"

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    @property
    def target(self) -> tuple[str, str] | None:
        """(namespace, model) from the labels, or ``None`` when the alert names no model."""
        namespace, model = self.labels.get("namespace"), self.labels.get("model")
        return (namespace, model) if namespace and model else None


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
    """Alert instances seen (key → when first seen) and what is firing per (namespace, model)."""

    seen: Mapping[str, datetime] = field(default_factory=dict)
    firing: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)


def record_alerts(
    book: AlertBook, alerts: Iterable[Alert], now: datetime, *, forget_after: timedelta = timedelta(days=2)
) -> tuple[AlertBook, list[Alert]]:
    """Take in a batch of alerts; returns the new book and the alerts that are news.

    News: a firing instance not seen before, or the resolve of one that was
    firing. Repeats (the same instance firing again) are not news. Entries
    older than ``forget_after`` are dropped.
    """
    seen = {k: t for k, t in book.seen.items() if now - t < forget_after}
    firing = {k: set(v) for k, v in book.firing.items()}
    news: list[Alert] = []
    for alert in alerts:
        target = alert.target
        if alert.firing:
            if alert.key not in seen:
                seen[alert.key] = now
                news.append(alert)
            if target is not None:
                firing.setdefault(target, set()).add(alert.key)
        else:
            if target is not None and alert.key in firing.get(target, set()):
                firing[target].discard(alert.key)
                news.append(alert)
            seen.setdefault(alert.key, now)
    return AlertBook(seen, {k: frozenset(v) for k, v in firing.items() if v}), news


def is_firing(book: AlertBook, namespace: str, model: str) -> bool:
    return bool(book.firing.get((namespace, model)))
