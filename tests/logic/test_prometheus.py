"""DriftMonitor source prometheus, the pure half: the query, and its answer → per-bin counts.

The contract test at the end feeds the serving runtime's own /metrics (two
pods, two scrapes) through what Prometheus' ``sum by (feature, le, category)
(increase(...))`` answers and checks the counts equal the pods path's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from modelship.logic.prometheus import (
    NoSeries,
    PrometheusError,
    counts_query,
    query_url,
    range_seconds,
    vector_samples,
    window_counts_from_vector,
)
from modelship.logic.scrape import FEATURE_BUCKET, FEATURE_CATEGORY, drift_counts, parse_samples
from modelship_runtime.artifacts.metadata import (
    PREDICTION,
    CategoricalReference,
    DriftReference,
    Feature,
    InputMode,
    Metadata,
    NumericReference,
    Output,
)
from modelship_runtime.drift.window import window_counts_by_feature
from modelship_runtime.serving.drift import DriftCounters

NUM = NumericReference(edges=[0.5, 1.0], proportions=[0.3, 0.4, 0.3])
CAT = CategoricalReference(categories=["a", "b"], proportions=[0.5, 0.4, 0.1])
REFS: dict[str, NumericReference | CategoricalReference] = {"x": NUM, "region": CAT}


def vector(*series: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector",
                                          "result": [{"metric": m, "value": [1700000000.123, v]} for m, v in series]}}


@pytest.mark.parametrize(("namespace", "revision", "window", "expected"), [
    ("shop", "loans-7f9c", timedelta(minutes=10),
     'sum by (feature, le, category) (increase({__name__=~"modelship_feature_value_bucket|'
     'modelship_feature_category_total", namespace="shop", modelship_io_revision="loans-7f9c"}[600s]))'),
    ("a", "r", timedelta(seconds=0.2),
     'sum by (feature, le, category) (increase({__name__=~"modelship_feature_value_bucket|'
     'modelship_feature_category_total", namespace="a", modelship_io_revision="r"}[1s]))'),
    ('we"ird', "back\\slash", timedelta(hours=1, minutes=30),
     'sum by (feature, le, category) (increase({__name__=~"modelship_feature_value_bucket|'
     'modelship_feature_category_total", namespace="we\\"ird", modelship_io_revision="back\\\\slash"}[5400s]))'),
])
def test_counts_query(namespace: str, revision: str, window: timedelta, expected: str) -> None:
    assert counts_query(namespace, revision, window) == expected


@pytest.mark.parametrize(("window", "expected"), [
    (timedelta(minutes=1), "60s"), (timedelta(seconds=90.9), "90s"), (timedelta(0), "1s"), (timedelta(days=1), "86400s"),
])
def test_range_seconds(window: timedelta, expected: str) -> None:
    assert range_seconds(window) == expected


@pytest.mark.parametrize(("base", "expected"), [
    ("http://prometheus:9090", "http://prometheus:9090/api/v1/query"),
    ("http://prometheus:9090/", "http://prometheus:9090/api/v1/query"),
    ("https://mon.example/prometheus/", "https://mon.example/prometheus/api/v1/query"),
])
def test_query_url(base: str, expected: str) -> None:
    assert query_url(base) == expected


@pytest.mark.parametrize(("payload", "error", "match"), [
    ([], PrometheusError, "not a JSON object"),
    ({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}, PrometheusError,
     "bad_data: parse error at char 3"),
    ({"status": "error"}, PrometheusError, "error: no message"),
    ({"status": "success", "data": {"resultType": "matrix", "result": []}}, PrometheusError, "got 'matrix'"),
    ({"status": "success"}, PrometheusError, "got None"),
    ({"status": "success", "data": {"resultType": "vector", "result": {}}}, PrometheusError, "not a list"),
    ({"status": "success", "data": {"resultType": "vector", "result": []}}, NoSeries, "no series"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}, PrometheusError,
     "malformed"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "x"]}]}},
     PrometheusError, r"element 0 is malformed \(ValueError"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "s3cret"]}]}},
     PrometheusError, r"^(?!.*s3cret)"),  # the answer's content is not echoed
])
def test_unusable_answers_raise_with_a_message(payload: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        vector_samples(payload)


def test_series_are_named_as_the_pods_name_them() -> None:
    samples = vector_samples(vector(({"feature": "x", "le": "0.5"}, "3"), ({"feature": "r", "category": "a"}, "2"),
                                    ({"feature": "x"}, "9"), ({"feature": "x", "le": "1.0"}, "NaN")))
    assert [(s.name, dict(s.labels), s.value) for s in samples] == [
        (FEATURE_BUCKET, {"feature": "x", "le": "0.5"}, 3.0),
        (FEATURE_CATEGORY, {"feature": "r", "category": "a"}, 2.0),
    ]


@pytest.mark.parametrize(("series", "expected"), [
    # Cumulative buckets → per-bin counts; Prometheus 3 spells le "1.0", the pods "1": both are read as floats.
    ([({"feature": "x", "le": "0.5"}, "30"), ({"feature": "x", "le": "1.0"}, "70"), ({"feature": "x", "le": "+Inf"}, "100"),
      ({"feature": "region", "category": "a"}, "5"), ({"feature": "region", "category": "__other__"}, "1")],
     {"x": [30, 40, 30], "region": [5, 0, 1]}),
    # increase() extrapolates each series apart: a bucket a hair below the one before is a zero bin, not negative.
    ([({"feature": "x", "le": "0.5"}, "30.2"), ({"feature": "x", "le": "1"}, "30.1"), ({"feature": "x", "le": "+Inf"}, "31.5")],
     {"x": [30.2, 0.0, 1.4]}),
    # Other bins (another model version) or unknown features are left out, as for a pod.
    ([({"feature": "x", "le": "0.7"}, "1"), ({"feature": "x", "le": "1"}, "2"), ({"feature": "x", "le": "+Inf"}, "3"),
      ({"feature": "other", "category": "a"}, "4")],
     {}),
])
def test_window_counts_from_vector(series: list[tuple[dict[str, str], str]], expected: dict[str, list[float]]) -> None:
    got = window_counts_from_vector(vector(*series), REFS)
    assert set(got) == set(expected)
    for feature, counts in expected.items():
        np.testing.assert_allclose(got[feature], counts, atol=1e-9)


def test_prometheus_counts_equal_the_pods_path_on_the_runtimes_own_metrics() -> None:
    rng = np.random.default_rng(5)
    reference = DriftReference(features={"a": NUM}, prediction=CategoricalReference(categories=["0", "1"],
                                                                                    proportions=[0.5, 0.5, 0.0]))
    metadata = Metadata(task="binary", features=[Feature(name="a", type="numeric", dtype="float")],
                        input_mode=InputMode.TENSOR, tensor_input="X", tensor_dtype="float",
                        outputs=[Output(name="label", role="label")], model_sha256="0" * 64, reference=reference)
    refs: dict[str, NumericReference | CategoricalReference] = {"a": NUM, PREDICTION: reference.prediction}  # type: ignore[dict-item]
    pods = {name: DriftCounters("loans", metadata) for name in ("p1", "p2")}
    registries = {}
    for name, counters in pods.items():
        registries[name] = CollectorRegistry()
        registries[name].register(counters)

    def serve(rows: int, shift: float) -> None:
        for counters in pods.values():
            x = rng.normal(loc=0.7 + shift, scale=0.4, size=(rows, 1))
            counters.count({"X": x.astype(np.float32)}, {"label": (x[:, 0] > 0.8).astype(np.int64)})

    def texts() -> dict[str, str]:
        return {name: generate_latest(r).decode() for name, r in registries.items()}

    serve(700, 0.0)
    before = texts()
    serve(900, 0.5)
    after = texts()

    # What Prometheus answers: per series new - old (no resets, no extrapolation), summed by (feature, le, category).
    summed: dict[tuple[tuple[str, str], ...], float] = {}
    for pod in pods:
        old = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in parse_samples(before[pod])}
        for s in parse_samples(after[pod]):
            if s.name not in (FEATURE_BUCKET, FEATURE_CATEGORY):
                continue
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k in ("feature", "le", "category")))
            summed[key] = summed.get(key, 0.0) + s.value - old[(s.name, tuple(sorted(s.labels.items())))]
    answer = vector(*[(dict(k), repr(v)) for k, v in summed.items()])
    from_prometheus = window_counts_from_vector(answer, refs)

    pods_path = window_counts_by_feature(
        {p: drift_counts(parse_samples(t), refs) for p, t in before.items()},
        {p: drift_counts(parse_samples(t), refs) for p, t in after.items()},
    )
    assert set(from_prometheus) == set(pods_path) == {"a", PREDICTION}
    for feature, window in pods_path.items():
        np.testing.assert_allclose(from_prometheus[feature], window.counts, atol=1e-9)
        assert window.total == 1800
