"""Canary analysis: from two snapshots of the canary pods' counters, a verdict.

The window is what the pods counted between a baseline snapshot (taken when
the step started) and now. Per pod, counters that went down mean the pod
restarted and its new counts are taken in full (Prometheus' ``increase()``
rule); a pod absent from the baseline is new and counts in full; pods are
summed. Error ratio counts 5xx answers only (4xx are the client's fault).
p99 is Prometheus' ``histogram_quantile`` on the summed buckets. Fewer than
``minRequests`` requests is NoData, never a silent pass.

A step fails as soon as its errors *prove* the error ratio above
``maxErrorRatio``, whatever the number of requests so far: Wald's sequential
probability ratio test of p0 = maxErrorRatio against p1 = ``alternative(p0)``
aborts when the likelihood ratio reaches 1/alpha. Under p0 the likelihood
ratio is a martingale, so by Ville's inequality the chance that it *ever*
reaches 1/alpha, however often it is looked at, is at most alpha
(``FALSE_ABORT_RATE``, 1 %): a canary exactly at the limit is wrongly rolled
back at most 1 % of the time, a better one less. At the end of the pause
the plain ratio decides as before. The same test serves the shadow's
disagreement share against ``1 - minAgreement``.
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


FALSE_ABORT_RATE = 0.01


def alternative(p0: float) -> float:
    """The "clearly bad" rate the test is powered for: 5x the limit, at least 2 points above it."""
    return min(0.99, max(5 * p0, p0 + 0.02))


def proves_above(failures: float, trials: float, p0: float, alpha: float = FALSE_ABORT_RATE) -> bool:
    """Whether ``failures`` of ``trials`` already prove the failure rate above ``p0`` (SPRT)."""
    if failures <= 0:
        return False
    if p0 <= 0:
        return True  # any failure exceeds a zero limit
    if p0 >= 1:
        return False
    p1 = alternative(p0)
    llr = failures * math.log(p1 / p0) + (trials - failures) * math.log((1 - p1) / (1 - p0))
    return bool(llr >= math.log(1 / alpha))


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


def judge(stats: WindowStats, criteria: Analysis, final: bool = True) -> Verdict:
    """Pass, Fail or NoData for one window against the step's criteria, with a message for people.

    ``final``: the step's pause is over, so the plain ratio decides too; before that only
    a proven excess fails (and a Pass is provisional)."""
    n = stats.requests
    ratio = stats.error_ratio
    p99 = stats.p99_seconds * 1000.0
    shown = f"{int(n)} requests, {_pct(ratio)} errors, p99 {_ms(p99)}"
    if proves_above(stats.errors, n, criteria.max_error_ratio) or (
            final and n >= criteria.min_requests and ratio > criteria.max_error_ratio):
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


def analyse(baseline: Snapshot | None, current: Snapshot, criteria: Analysis, final: bool = True) -> Verdict:
    """``judge(window(baseline, current), criteria, final)``: what a plan calls each interval."""
    return judge(window(baseline, current), criteria, final)


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.2f}%"


def _ms(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.1f} ms"


Tally = Mapping[str, float]  # a stable pod's shadow comparison counters (ShadowTally's fields)


@dataclass(frozen=True)
class Comparison:
    """The stable pods' comparison with the shadow over a window, summed over pods."""

    agree: float = 0.0
    disagree: float = 0.0
    compared: float = 0.0
    abs_diff_sum: float = 0.0
    prediction_sum: float = 0.0
    prediction_sq_sum: float = 0.0

    @property
    def labelled(self) -> float:
        return self.agree + self.disagree

    @property
    def agreement(self) -> float:
        return self.agree / self.labelled if self.labelled else math.nan

    @property
    def shift(self) -> float:
        """Mean |stable - shadow| in units of the stable's standard deviation on the same rows."""
        if not self.compared:
            return math.nan
        mean = self.prediction_sum / self.compared
        sd = math.sqrt(max(self.prediction_sq_sum / self.compared - mean * mean, 0.0))
        mad = self.abs_diff_sum / self.compared
        if sd <= 1e-12:
            return 0.0 if mad <= 1e-12 else math.inf
        return mad / sd


def compare_window(baseline: Mapping[str, Tally] | None, current: Mapping[str, Tally]) -> Comparison:
    """The comparison counted between two snapshots (a pod whose counters went down restarted)."""
    sums: dict[str, float] = {}
    for pod, new in current.items():
        old = (baseline or {}).get(pod)
        if old is not None and any(new.get(k, 0.0) < v for k, v in old.items()):
            old = None
        for key, value in new.items():
            sums[key] = sums.get(key, 0.0) + value - (old.get(key, 0.0) if old else 0.0)
    return Comparison(**{k: v for k, v in sums.items() if k in Comparison.__dataclass_fields__})


def judge_shadow(stats: WindowStats, cmp: Comparison, criteria: Analysis, final: bool) -> Verdict:
    """The shadow's verdict: its own 5xx and p99 (as a canary's) and its agreement with the stable.

    Errors and disagreements fail as soon as they are proven (``proves_above``); at the end
    the plain figures decide, and too few mirrored requests is NoData."""
    n, ratio, p99 = stats.requests, stats.error_ratio, stats.p99_seconds * 1000.0
    agreement, shift = cmp.agreement, cmp.shift
    shown = (f"{int(n)} mirrored requests, {_pct(ratio)} errors, p99 {_ms(p99)}"
             + (f", agreement {_pct(agreement)} on {int(cmp.labelled)} rows" if cmp.labelled else "")
             + (f", prediction shift {shift:.3g} sd on {int(cmp.compared)} rows" if cmp.compared else ""))
    failures = []
    if proves_above(stats.errors, n, criteria.max_error_ratio) or (
            final and n >= criteria.min_requests and ratio > criteria.max_error_ratio):
        failures.append(f"error ratio {_pct(ratio)} is above maxErrorRatio {_pct(criteria.max_error_ratio)}")
    if proves_above(cmp.disagree, cmp.labelled, 1 - criteria.min_agreement) or (
            final and cmp.labelled and agreement < criteria.min_agreement):
        failures.append(f"agreement with the stable {_pct(agreement)} is below minAgreement "
                        f"{_pct(criteria.min_agreement)}")
    if final and cmp.compared and shift > criteria.max_prediction_shift:
        failures.append(f"prediction shift {shift:.3g} sd is above maxPredictionShift {criteria.max_prediction_shift:g}")
    if n >= criteria.min_requests and not math.isnan(p99) and p99 > criteria.max_latency_p99_ms:
        failures.append(f"p99 latency {_ms(p99)} is above maxLatencyP99Ms {criteria.max_latency_p99_ms:g} ms")
    if failures:
        return Verdict(VerdictKind.FAIL, "; ".join(failures) + f" ({shown})", n, ratio, p99)
    if n < criteria.min_requests or n == 0:
        return Verdict(VerdictKind.NO_DATA, f"{int(n)} mirrored requests reached the shadow, fewer than "
                       f"minRequests {criteria.min_requests}", n, ratio, p99)
    return Verdict(VerdictKind.PASS, shown, n, ratio, p99)
