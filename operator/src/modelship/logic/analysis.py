"""Canary analysis: from two snapshots of the canary pods' counters, a verdict.

The window is what the pods counted between a baseline snapshot (taken when
the step started) and now. Per pod, counters that went down mean the pod
restarted and its new counts are taken in full (Prometheus' ``increase()``
rule); a pod absent from the baseline is new and counts in full; pods are
summed. Error ratio counts 5xx answers only (4xx are the client's fault).
p99 is Prometheus' ``histogram_quantile`` on the summed buckets. Fewer than
``minRequests`` requests is NoData, never a silent pass; but when the
errors already exceed what ``minRequests`` requests could absorb, the step
fails at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from modelship.api.model import Analysis
from modelship.logic.scrape import RequestCounters

Snapshot = Mapping[str, RequestCounters]  # pod name → its counters


class VerdictKind(StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    NO_DATA = "NoData"


@dataclass(frozen=True)
class WindowStats:
    requests: float
    errors: float  # 5xx
    latency: Mapping[float, float]  # cumulative buckets over the window
    restarted: tuple[str, ...] = ()

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests > 0 else math.nan

    @property
    def p99_seconds(self) -> float:
        return histogram_quantile(0.99, self.latency)


@dataclass(frozen=True)
class Verdict:
    kind: VerdictKind
    message: str
    requests: float = 0.0
    error_ratio: float = math.nan
    p99_ms: float = math.nan


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float:
    """Prometheus' ``histogram_quantile`` on cumulative buckets (upper bound → count).

    Linear interpolation inside the bucket holding the rank, the first
    bucket's lower bound being 0 (if its upper bound is positive); a rank in
    the ``+Inf`` bucket gives the highest finite bound. NaN without
    observations or without a ``+Inf`` bucket; counts that decrease across
    buckets are made monotonic first, as Prometheus does.
    """
    if not buckets or math.inf not in buckets or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    bounds = sorted(buckets)
    counts: list[float] = []
    running = 0.0
    for b in bounds:
        running = max(running, buckets[b])
        counts.append(running)
    total = counts[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    index = next(i for i, c in enumerate(counts) if c >= rank)
    if index == len(bounds) - 1:
        return bounds[-2] if len(bounds) >= 2 else math.nan
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    start = 0.0 if index == 0 else bounds[index - 1]
    below = 0.0 if index == 0 else counts[index - 1]
    in_bucket = counts[index] - below
    if in_bucket <= 0:
        return bounds[index]
    return start + (bounds[index] - start) * (rank - below) / in_bucket


def _went_down(old: RequestCounters, new: RequestCounters) -> bool:
    return any(new.by_code.get(k, 0.0) < v for k, v in old.by_code.items()) or any(
        new.latency.get(k, 0.0) < v for k, v in old.latency.items()
    )


def window(baseline: Snapshot | None, current: Snapshot) -> WindowStats:
    """Counts over the window, summed over pods (reset and new-pod rules in the module doc)."""
    by_code: dict[str, float] = {}
    latency: dict[float, float] = {}
    restarted: list[str] = []
    for pod in sorted(current):
        new = current[pod]
        old = (baseline or {}).get(pod)
        if old is not None and _went_down(old, new):
            restarted.append(pod)
            old = None
        for code, value in new.by_code.items():
            by_code[code] = by_code.get(code, 0.0) + value - (old.by_code.get(code, 0.0) if old else 0.0)
        for le, value in new.latency.items():
            latency[le] = latency.get(le, 0.0) + value - (old.latency.get(le, 0.0) if old else 0.0)
    errors = sum(v for code, v in by_code.items() if code.startswith("5"))
    return WindowStats(sum(by_code.values()), errors, latency, tuple(restarted))


def judge(stats: WindowStats, criteria: Analysis) -> Verdict:
    """Pass, Fail or NoData for one window against the step's criteria, with a message for people."""
    n = stats.requests
    ratio = stats.error_ratio
    p99 = stats.p99_seconds * 1000.0
    shown = f"{int(n)} requests, {_pct(ratio)} errors, p99 {_ms(p99)}"
    if n > 0 and stats.errors / max(n, criteria.min_requests) > criteria.max_error_ratio:
        return Verdict(
            VerdictKind.FAIL,
            f"error ratio {_pct(ratio)} ({int(stats.errors)} of {int(n)} requests answered 5xx) "
            f"is above maxErrorRatio {_pct(criteria.max_error_ratio)}",
            n, ratio, p99,
        )
    if n < criteria.min_requests or n == 0:
        return Verdict(
            VerdictKind.NO_DATA,
            f"{int(n)} requests reached the canary, fewer than minRequests {criteria.min_requests}",
            n, ratio, p99,
        )
    if not math.isnan(p99) and p99 > criteria.max_latency_p99_ms:
        return Verdict(
            VerdictKind.FAIL,
            f"p99 latency {_ms(p99)} is above maxLatencyP99Ms {criteria.max_latency_p99_ms:g} ms ({shown})",
            n, ratio, p99,
        )
    return Verdict(VerdictKind.PASS, shown, n, ratio, p99)


def analyse(baseline: Snapshot | None, current: Snapshot, criteria: Analysis) -> Verdict:
    """``judge(window(baseline, current), criteria)``: what the I/O layer calls each interval."""
    return judge(window(baseline, current), criteria)


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.2f}%"


def _ms(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.1f} ms"
