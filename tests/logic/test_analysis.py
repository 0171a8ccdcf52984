"""Canary analysis: histogram_quantile, windows with restarts and new pods, verdicts."""

from __future__ import annotations

import math

import pytest

from modelship.api.model import Analysis
from modelship.logic.analysis import (
    VerdictKind,
    WindowStats,
    analyse,
    histogram_quantile,
    judge,
    window,
)
from modelship.logic.scrape import RequestCounters, parse_samples, request_counters

INF = math.inf


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        # 100 observations: 50 in (0, .1], 40 in (.1, .2], 10 in (.2, .5]
        (0.5, {0.1: 50, 0.2: 90, 0.5: 100, INF: 100}, 0.1),
        (0.9, {0.1: 50, 0.2: 90, 0.5: 100, INF: 100}, 0.2),
        (0.99, {0.1: 50, 0.2: 90, 0.5: 100, INF: 100}, 0.2 + 0.3 * 9 / 10),
        (0.25, {0.1: 50, 0.2: 90, 0.5: 100, INF: 100}, 0.05),  # first bucket from 0
        (0.99, {0.1: 50, 0.2: 90, 0.5: 95, INF: 100}, 0.5),  # in +Inf: highest finite bound
        (0.99, {0.1: 0, INF: 0}, math.nan),
        (0.5, {0.1: 5}, math.nan),  # no +Inf bucket
        (0.5, {}, math.nan),
        (0.5, {INF: 10}, math.nan),
        (1.5, {0.1: 1, INF: 1}, INF),
        (-0.1, {0.1: 1, INF: 1}, -INF),
        (0.5, {-1.0: 10, 0.0: 10, INF: 10}, -1.0),  # non-positive first bound is returned as is
        (0.5, {0.1: 10, 0.2: 8, INF: 10}, 0.05),  # non-monotonic counts are fixed first
    ],
)
def test_histogram_quantile(q: float, buckets: dict[float, float], expected: float) -> None:
    got = histogram_quantile(q, buckets)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected)


def _pod(ok: float, err: float = 0.0, fast: float | None = None) -> RequestCounters:
    total = ok + err
    fast = total if fast is None else fast
    return RequestCounters({"200": ok, "500": err, "400": 0.0}, {0.01: fast, 0.5: total, INF: total})


def test_window_differences_resets_and_new_pods() -> None:
    base = {"a": _pod(100), "b": _pod(500, 5)}
    now = {"a": _pod(160, 0), "b": _pod(20, 1), "c": _pod(30)}  # b restarted, c is new
    w = window(base, now)
    assert w.requests == 60 + 21 + 30
    assert w.errors == 1
    assert w.restarted == ("b",)
    assert w.latency[INF] == 111
    assert window(None, now).requests == 160 + 21 + 30


@pytest.mark.parametrize(
    ("requests", "errors", "fast", "kind", "words"),
    [
        (100, 0, 100, VerdictKind.PASS, "100 requests"),
        (100, 1, 100, VerdictKind.PASS, "1.00% errors"),  # at the limit passes
        (100, 2, 100, VerdictKind.FAIL, "above maxErrorRatio"),
        (10, 0, 10, VerdictKind.NO_DATA, "fewer than minRequests 20"),
        (0, 0, 0, VerdictKind.NO_DATA, "0 requests"),
        (5, 5, 5, VerdictKind.FAIL, "5 of 5"),  # already beyond what 20 requests could absorb
        (100, 0, 50, VerdictKind.FAIL, "p99 latency"),
    ],
)
def test_judge(requests: float, errors: float, fast: float, kind: VerdictKind, words: str) -> None:
    criteria = Analysis(max_error_ratio=0.01, max_latency_p99_ms=100, min_requests=20)
    stats = WindowStats(requests, errors, {0.01: fast, 0.5: requests, INF: requests})
    v = judge(stats, criteria)
    assert v.kind == kind, v.message
    assert words in v.message
    assert v.requests == requests


def test_analyse_from_scrapes() -> None:
    text_then = (
        '# TYPE modelship_requests counter\n'
        'modelship_requests_total{model="m",protocol="v2",endpoint="infer",code="200"} 10\n'
        '# TYPE modelship_request_duration_seconds histogram\n'
        'modelship_request_duration_seconds_bucket{model="m",protocol="v2",le="0.01"} 10\n'
        'modelship_request_duration_seconds_bucket{model="m",protocol="v2",le="+Inf"} 10\n'
        'modelship_request_duration_seconds_count{model="m",protocol="v2"} 10\n'
        'modelship_request_duration_seconds_sum{model="m",protocol="v2"} 0.05\n'
    )
    text_now = text_then.replace("} 10", "} 60").replace(
        'code="200"} 60', 'code="200"} 60\nmodelship_requests_total{model="m",protocol="v1",endpoint="predict",code="503"} 1'
    )
    base = {"pod": request_counters(parse_samples(text_then))}
    now = {"pod": request_counters(parse_samples(text_now))}
    v = analyse(base, now, Analysis(min_requests=20, max_error_ratio=0.05))
    assert v.kind == VerdictKind.PASS, v.message
    assert v.requests == 51 and v.error_ratio == pytest.approx(1 / 51)
    assert v.p99_ms == pytest.approx(10 * 0.99 * 60 / 60, rel=1e-6)  # rank in the first bucket


def test_analysis_reads_the_servers_own_metrics() -> None:
    from modelship_runtime.serving.metrics import Metrics

    pod = Metrics("iris")
    for _ in range(30):
        pod.observe("v2", "ready", 503, None)  # probes of a pod still loading: not predictions
    base = {"p": request_counters(parse_samples(pod.render().decode()))}
    for i in range(200):
        pod.observe("v2" if i % 2 else "v1", "infer" if i % 2 else "predict", 200, 0.004)
    for _ in range(3):
        pod.observe("v2", "infer", 500, 0.004)
    now = {"p": request_counters(parse_samples(pod.render().decode()))}
    v = analyse(base, now, Analysis(max_error_ratio=0.01, max_latency_p99_ms=100, min_requests=20))
    assert v.requests == 203
    assert v.kind == VerdictKind.FAIL and "3 of 203" in v.message
    ok = analyse(base, now, Analysis(max_error_ratio=0.05, max_latency_p99_ms=100, min_requests=20))
    assert ok.kind == VerdictKind.PASS, ok.message
    assert 2.5 < ok.p99_ms <= 5.0  # in the (2.5 ms, 5 ms] bucket
    for _ in range(5):
        pod.observe("v2", "infer", 200, 0.3)  # 5 slow of 208: p99 lands in the (250, 500] ms bucket
    slow = analyse(base, {"p": request_counters(parse_samples(pod.render().decode()))},
                   Analysis(max_error_ratio=0.05, max_latency_p99_ms=100, min_requests=20))
    assert slow.kind == VerdictKind.FAIL and "p99 latency" in slow.message and 250 < slow.p99_ms <= 500
