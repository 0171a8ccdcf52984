"""Prometheus text exposition → samples, and the two views the operator needs of them.

Parsing uses ``prometheus_client.parser`` (a pure library). The views:
:func:`request_counters` (what canary analysis reads from a serving pod) and
:func:`drift_counts` (live per-bin counts of each feature, on the reference's
bins, for the drift monitor). Metric names are the serving runtime's contract
(``modelship_runtime.serving.metrics`` and ``.drift``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from modelship_runtime.artifacts.metadata import (
    OTHER_CATEGORY,
    CategoricalReference,
    NumericReference,
)

REQUESTS = "modelship_requests_total"
LATENCY_BUCKET = "modelship_request_duration_seconds_bucket"
FEATURE_BUCKET = "modelship_feature_value_bucket"
FEATURE_CATEGORY = "modelship_feature_category_total"
# Only predictions count for canary analysis: health probes are requests too
# (a not-ready pod answers its readiness probe with 503), and would be noise.
INFERENCE_ENDPOINTS = frozenset({"infer", "predict"})


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


class ScrapeError(ValueError):
    """The text is not Prometheus exposition format."""


def parse_samples(text: str) -> list[Sample]:
    """All samples in a scrape, in order. Raises :class:`ScrapeError` on malformed text."""
    try:
        return [
            Sample(s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]
    except (ValueError, TypeError, IndexError) as exc:
        raise ScrapeError(f"cannot parse the metrics text: {exc}") from exc


def _le(value: str) -> float:
    return math.inf if value in ("+Inf", "Inf", "inf") else float(value)


@dataclass(frozen=True)
class RequestCounters:
    """One pod's cumulative request counters (since it started).

    ``by_code``: requests per HTTP status code; ``latency``: cumulative
    latency histogram buckets, upper bound (seconds, ``inf`` last) → count.
    """

    by_code: Mapping[str, float] = field(default_factory=dict)
    latency: Mapping[float, float] = field(default_factory=dict)

    @property
    def requests(self) -> float:
        return float(sum(self.by_code.values()))

    def to_wire(self) -> dict[str, Any]:
        """A JSON-safe form for the status (so a restarted operator keeps its baseline)."""
        return {
            "byCode": dict(self.by_code),
            "latency": {("+Inf" if math.isinf(k) else repr(k)): v for k, v in sorted(self.latency.items())},
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RequestCounters:
        return cls(
            {str(k): float(v) for k, v in dict(data.get("byCode", {})).items()},
            {_le(str(k)): float(v) for k, v in dict(data.get("latency", {})).items()},
        )


def request_counters(samples: Iterable[Sample]) -> RequestCounters:
    """Sum a pod's inference request counters over protocols, by code; latency by ``le``.

    Requests to other endpoints (health, metadata) are left out.
    """
    by_code: dict[str, float] = {}
    latency: dict[float, float] = {}
    for s in samples:
        if s.name == REQUESTS and s.labels.get("endpoint", "infer") in INFERENCE_ENDPOINTS:
            code = s.labels.get("code", "")
            by_code[code] = by_code.get(code, 0.0) + s.value
        elif s.name == LATENCY_BUCKET and "le" in s.labels:
            le = _le(s.labels["le"])
            latency[le] = latency.get(le, 0.0) + s.value
    return RequestCounters(by_code, latency)


def drift_counts(
    samples: Iterable[Sample],
    references: Mapping[str, NumericReference | CategoricalReference],
) -> dict[str, np.ndarray[Any, np.dtype[np.float64]]]:
    """Per feature, the pod's cumulative count per reference bin (``len(edges) + 1`` or
    ``len(categories) + 1``). Features the pod does not report are left out; a
    numeric histogram whose ``le`` set differs from the reference's edges is
    left out too (the pod serves another model version)."""
    buckets: dict[str, dict[float, float]] = {}
    categories: dict[str, dict[str, float]] = {}
    for s in samples:
        feature = s.labels.get("feature")
        if feature is None or feature not in references:
            continue
        if s.name == FEATURE_BUCKET and "le" in s.labels:
            buckets.setdefault(feature, {})[_le(s.labels["le"])] = s.value
        elif s.name == FEATURE_CATEGORY and "category" in s.labels:
            categories.setdefault(feature, {})[s.labels["category"]] = s.value
    out: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = {}
    for feature, ref in references.items():
        if isinstance(ref, NumericReference) and feature in buckets:
            got = buckets[feature]
            les = sorted(got)
            if len(les) != len(ref.edges) + 1 or not np.allclose(les[:-1], ref.edges, rtol=1e-12, atol=0):
                continue
            cumulative = np.array([got[le] for le in les], dtype=np.float64)
            out[feature] = np.diff(cumulative, prepend=0.0)
        elif isinstance(ref, CategoricalReference) and feature in categories:
            got_c = categories[feature]
            names = [*ref.categories, OTHER_CATEGORY]
            out[feature] = np.array([got_c.get(name, 0.0) for name in names], dtype=np.float64)
    return out


# The stable's comparison of its answers with a shadow's (modelship_runtime.serving.shadow).
SHADOW_ROWS = "modelship_shadow_rows_total"
SHADOW_SUMS = {
    "modelship_shadow_abs_diff_sum": "abs_diff_sum",
    "modelship_shadow_stable_prediction_sum": "prediction_sum",
    "modelship_shadow_stable_prediction_sq_sum": "prediction_sq_sum",
}


def shadow_tally(samples: Iterable[Sample]) -> dict[str, float]:
    """A stable pod's cumulative shadow comparison: agree, disagree, compared and the sums
    (``ShadowTally``'s fields). Counters may carry prometheus_client's ``_total`` suffix."""
    out = {"agree": 0.0, "disagree": 0.0, "compared": 0.0, "abs_diff_sum": 0.0, "prediction_sum": 0.0,
           "prediction_sq_sum": 0.0}
    for s in samples:
        name = s.name.removesuffix("_total") if s.name != SHADOW_ROWS else s.name
        if s.name == SHADOW_ROWS and s.labels.get("result") in ("agree", "disagree", "compared"):
            out[s.labels["result"]] += s.value
        elif name in SHADOW_SUMS:
            out[SHADOW_SUMS[name]] += s.value
    return out
