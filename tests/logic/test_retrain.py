"""Retrain decisions and Alertmanager alert dedup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelship.logic.retrain import (
    MAX_KEY_CHARS,
    Alert,
    AlertBook,
    AlertPayloadError,
    book_bytes,
    is_firing,
    may_retrain,
    parse_alerts,
    recent_triggers,
    record_alerts,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("kwargs", "allowed", "reason"),
    [
        ({}, True, "Allowed"),
        ({"enabled": False}, False, "Disabled"),
        ({"running": "iris-3"}, False, "AlreadyRunning"),
        ({"rolling_out": "iris-5d41402abc"}, False, "RollingOut"),
        ({"alert_firing": False}, False, "AwaitingAlert"),
        ({"alert_firing": True}, True, "Allowed"),
        ({"triggered": [NOW - 0.5 * H]}, False, "CoolingDown"),
        ({"triggered": [NOW - 2 * H]}, True, "Allowed"),
        ({"triggered": [NOW - 2 * H, NOW - 3 * H, NOW - 4 * H]}, False, "DailyLimit"),
        ({"triggered": [NOW - 25 * H, NOW - 26 * H, NOW - 27 * H]}, True, "Allowed"),
        ({"triggered": ["2026-11-23T11:30:00Z"]}, False, "CoolingDown"),
        ({"max_per_day": 0}, False, "DailyLimit"),
    ],
)
def test_may_retrain(kwargs: dict[str, object], allowed: bool, reason: str) -> None:
    args: dict[str, object] = {"cooldown": H, "max_per_day": 3, **kwargs}
    d = may_retrain(NOW, **args)  # type: ignore[arg-type]
    assert (d.allowed, d.reason) == (allowed, reason), d.message


def test_retry_times() -> None:
    d = may_retrain(NOW, cooldown=H, max_per_day=3, triggered=[NOW - 0.25 * H])
    assert d.retry_at == NOW + 0.75 * H and "2026-11-23T12:45:00Z" in d.message
    d = may_retrain(NOW, cooldown=H, max_per_day=2, triggered=[NOW - 20 * H, NOW - 2 * H, NOW - 5 * H])
    assert d.retry_at == NOW - 5 * H + 24 * H


def test_recent_triggers() -> None:
    assert recent_triggers(["2026-11-22T11:00:00Z", NOW - H, "2026-11-23T10:00:00Z"], NOW) == [NOW - 2 * H, NOW - H]


def _payload(status: str, starts: str = "2026-11-23T11:00:00Z", fp: str = "abc", **labels: str) -> dict[str, object]:
    return {
        "version": "4", "groupKey": "{}:{alertname=\"ModelDrift\"}", "status": status,
        "alerts": [{"status": status, "labels": {"alertname": "ModelDrift", "namespace": "ml", "model": "iris", **labels},
                    "annotations": {"summary": "drift"}, "startsAt": starts, "fingerprint": fp}],
    }


def test_alert_dedup_firing_repeats_and_resolve() -> None:
    book = AlertBook()
    book, news = record_alerts(book, parse_alerts(_payload("firing")), NOW)
    assert len(news) == 1 and news[0].target == ("ml", "iris") and news[0].annotations == {"summary": "drift"}
    assert is_firing(book, "ml", "iris")
    # Alertmanager's repeat and retry: same instance, no news.
    book, news = record_alerts(book, parse_alerts(_payload("firing")), NOW + H)
    assert news == []
    book, news = record_alerts(book, parse_alerts(_payload("resolved")), NOW + 2 * H)
    assert [a.status for a in news] == ["resolved"] and not is_firing(book, "ml", "iris")
    book, news = record_alerts(book, parse_alerts(_payload("resolved")), NOW + 2 * H)
    assert news == []
    # Fires again later: a new instance.
    book, news = record_alerts(book, parse_alerts(_payload("firing", starts="2026-11-23T15:00:00Z")), NOW + 3 * H)
    assert len(news) == 1
    # Old entries are forgotten.
    book, _ = record_alerts(book, [], NOW + 72 * H)
    assert book.seen == {}


def test_alert_without_fingerprint_or_model() -> None:
    payload = _payload("firing", fp="")
    alerts = parse_alerts(payload)
    assert alerts[0].key.endswith("@2026-11-23T11:00:00Z") and len(alerts[0].key) > 20
    other = {"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": "X"}}]}
    a = parse_alerts(other)[0]
    assert a.target is None
    book, news = record_alerts(AlertBook(), [a], NOW)
    assert len(news) == 1 and book.firing == {}


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"version": "3", "alerts": []}, "version"),
        ({"version": "4"}, "alerts list"),
        ({"version": "4", "alerts": [{"status": "firing"}]}, "no labels"),
        ({"version": "4", "alerts": [{"status": "odd", "labels": {}}]}, "firing or resolved"),
        ([], "JSON object"),
    ],
)
def test_bad_payloads(payload: object, words: str) -> None:
    with pytest.raises(AlertPayloadError, match=words):
        parse_alerts(payload)  # type: ignore[arg-type]
    assert AlertPayloadError.status == 400


# --- The book is bounded (issue 22, item 1) -------------------------------------


def _firing(i: int, namespace: str = "ml", model: str = "iris", fp_len: int = 16) -> Alert:
    return Alert("firing", {"alertname": "X", "namespace": namespace, "model": model},
                 starts_at=f"2026-11-23T11:00:{i % 60:02d}Z", fingerprint=f"{i:0{fp_len}x}")


def test_a_flood_of_distinct_alerts_stays_within_count_and_bytes() -> None:
    book = AlertBook(max_entries=500, max_bytes=40_000)
    for batch in range(40):  # 40 posts of 250 new alerts each, to many Models
        alerts = [_firing(batch * 250 + i, namespace=f"ns-{i % 50}", model=f"m-{i % 7}") for i in range(250)]
        book, news = record_alerts(book, alerts, NOW + batch * timedelta(seconds=1))
        assert len(news) == 250
        assert len(book.seen) <= 500 and book_bytes(book) <= 40_000
        assert sum(len(v) for v in book.firing.values()) <= len(book.seen)
    assert book.dropped == 40 * 250 - len(book.seen)
    # The newest alerts are the ones kept.
    assert _firing(40 * 250 - 1, namespace="ns-49", model="m-4").key in book.seen


def test_huge_fingerprints_and_names_cost_a_bounded_amount() -> None:
    big = Alert("firing", {"namespace": "n" * 10_000, "model": "iris"}, starts_at="s" * 100_000,
                fingerprint="f" * 100_000)
    assert len(big.key) <= MAX_KEY_CHARS and big.key.startswith("sha256:")
    assert big.target is None  # no namespace is 10,000 characters long
    book, news = record_alerts(AlertBook(), [big], NOW)
    assert len(news) == 1 and book_bytes(book) <= MAX_KEY_CHARS and book.firing == {}
    # The same alert again is still recognised.
    _, news = record_alerts(book, [big], NOW)
    assert news == []


def test_resolved_instances_go_before_firing_ones() -> None:
    book = AlertBook(max_entries=3)
    book, _ = record_alerts(book, [_firing(1)], NOW)  # firing, the oldest
    resolved = [Alert("resolved", {"alertname": "Y"}, starts_at="t", fingerprint=f"r{i}") for i in range(2)]
    book, _ = record_alerts(book, resolved, NOW + H)
    book, _ = record_alerts(book, [_firing(2, model="other")], NOW + 2 * H)
    assert len(book.seen) == 3 and book.dropped == 1
    assert is_firing(book, "ml", "iris") and is_firing(book, "ml", "other")
