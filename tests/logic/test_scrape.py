"""Scrape text parsing and the drift view of a serving pod's metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelship.logic.scrape import (
    RequestCounters,
    ScrapeError,
    drift_counts,
    parse_samples,
    request_counters,
)
from modelship_runtime.artifacts.metadata import CategoricalReference, NumericReference

TEXT = """\
# HELP modelship_feature_value Live values
# TYPE modelship_feature_value histogram
modelship_feature_value_bucket{model="m",feature="x",le="0.0"} 2.0
modelship_feature_value_bucket{model="m",feature="x",le="1.0"} 5.0
modelship_feature_value_bucket{model="m",feature="x",le="+Inf"} 9.0
modelship_feature_value_count{model="m",feature="x"} 9.0
modelship_feature_value_sum{model="m",feature="x"} 4.0
modelship_feature_value_bucket{model="m",feature="old",le="7.0"} 1.0
modelship_feature_value_bucket{model="m",feature="old",le="+Inf"} 1.0
# TYPE modelship_feature_category counter
modelship_feature_category_total{model="m",feature="color",category="red"} 3.0
modelship_feature_category_total{model="m",feature="color",category="__other__"} 1.0
# TYPE modelship_requests counter
modelship_requests_total{model="m",protocol="v2",endpoint="infer",code="200"} 7.0
modelship_requests_total{model="m",protocol="v1",endpoint="predict",code="200"} 3.0
modelship_requests_total{model="m",protocol="v2",endpoint="infer",code="500"} 1.0
modelship_requests_total{model="m",protocol="v2",endpoint="ready",code="503"} 40.0
modelship_requests_total{model="m",protocol="v2",endpoint="live",code="200"} 90.0
"""

REFS = {
    "x": NumericReference(edges=[0.0, 1.0], proportions=[0.3, 0.3, 0.4]),
    "old": NumericReference(edges=[1.0], proportions=[0.5, 0.5]),  # le set differs: another model version
    "color": CategoricalReference(categories=["red", "blue"], proportions=[0.5, 0.5, 0.0]),
    "absent": NumericReference(edges=[1.0], proportions=[0.5, 0.5]),
}


def test_drift_counts() -> None:
    counts = drift_counts(parse_samples(TEXT), REFS)
    assert set(counts) == {"x", "color"}
    assert counts["x"].tolist() == [2, 3, 4]
    assert counts["color"].tolist() == [3, 0, 1]


def test_request_counters_sum_inference_over_protocols_and_skip_probes() -> None:
    c = request_counters(parse_samples(TEXT))
    assert c.by_code == {"200": 10.0, "500": 1.0}
    assert c.requests == 11.0


def test_request_counters_wire_round_trip() -> None:
    c = RequestCounters({"200": 3.0}, {0.1: 1.0, math.inf: 3.0})
    wire = c.to_wire()
    assert wire == {"byCode": {"200": 3.0}, "latency": {"0.1": 1.0, "+Inf": 3.0}}
    assert RequestCounters.from_wire(wire) == c


def test_bad_text_raises_scrape_error() -> None:
    with pytest.raises(ScrapeError):
        parse_samples("this is { not metrics\n")


def test_empty_text() -> None:
    assert parse_samples("") == []
    assert drift_counts([], REFS) == {}
    np.testing.assert_equal(request_counters([]).requests, 0.0)


GRPC_TEXT = """\
# TYPE modelship_requests counter
modelship_requests_total{model="m",protocol="v2",endpoint="infer",code="200"} 7.0
modelship_requests_total{model="m",protocol="grpc",endpoint="infer",code="200"} 5.0
modelship_requests_total{model="m",protocol="grpc",endpoint="infer",code="400"} 2.0
modelship_requests_total{model="m",protocol="grpc",endpoint="infer",code="500"} 1.0
modelship_requests_total{model="m",protocol="grpc",endpoint="ready",code="200"} 30.0
modelship_requests_total{model="m",protocol="grpc",endpoint="model_metadata",code="200"} 2.0
# TYPE modelship_request_duration_seconds histogram
modelship_request_duration_seconds_bucket{model="m",protocol="v2",le="0.001"} 6.0
modelship_request_duration_seconds_bucket{model="m",protocol="v2",le="+Inf"} 7.0
modelship_request_duration_seconds_count{model="m",protocol="v2"} 7.0
modelship_request_duration_seconds_sum{model="m",protocol="v2"} 0.01
modelship_request_duration_seconds_bucket{model="m",protocol="grpc",le="0.001"} 3.0
modelship_request_duration_seconds_bucket{model="m",protocol="grpc",le="+Inf"} 8.0
modelship_request_duration_seconds_count{model="m",protocol="grpc"} 8.0
modelship_request_duration_seconds_sum{model="m",protocol="grpc"} 0.02
"""


def test_grpc_calls_count_with_rest_for_canary_analysis() -> None:
    """modelship-serve counts gRPC calls with protocol="grpc" and REST-equivalent codes:
    the analysis sums them with REST (health and metadata calls left out), 5xx as errors."""
    from modelship.logic.analysis import window

    c = request_counters(parse_samples(GRPC_TEXT))
    assert c.by_code == {"200": 12.0, "400": 2.0, "500": 1.0}
    assert c.latency == {0.001: 9.0, math.inf: 15.0}
    stats = window(None, {"pod": c})
    assert (stats.requests, stats.errors) == (15.0, 1.0)
