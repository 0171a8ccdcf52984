"""/metrics: request and latency series, batch sizes, model info, and the drift histograms.

The drift histograms must equal the project's binning functions applied to
what was sent: that is what the drift monitor computes from.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from modelship_runtime.artifacts.metadata import Metadata
from modelship_runtime.drift.bins import categorical_bin_counts, numeric_bin_counts


def scrape(server: Any) -> dict[str, Any]:
    text = server.get("/metrics").text
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(families: dict[str, Any], family: str, name: str, **labels: str) -> float:
    for s in families[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise KeyError((name, labels))


def bucket_counts(families: dict[str, Any], model: str, feature: str) -> list[int]:
    cumulative = [(float(s.labels["le"]), s.value) for s in families["modelship_feature_value"].samples
                  if s.name == "modelship_feature_value_bucket"
                  and s.labels["feature"] == feature and s.labels["model"] == model]
    cumulative.sort()
    values = [int(v) for _, v in cumulative]
    return [values[0]] + [b - a for a, b in itertools.pairwise(values)]


def test_feature_and_prediction_histograms_match_the_binning(tmp_path: Path, artifacts: dict[str, Path],
                                                             start_server: Any) -> None:
    server = start_server(artifacts["logistic"].as_uri())  # fresh counters
    md = Metadata.model_validate_json((artifacts["logistic"] / "metadata.json").read_text())
    x = np.random.default_rng(9).normal(size=(500, 30)).astype(np.float32)
    labels: list[int] = []
    for chunk in np.array_split(x, 10):
        r = server.post("/v2/models/logistic/infer", json={"inputs": [
            {"name": "input", "shape": list(chunk.shape), "datatype": "FP32", "data": chunk.ravel().tolist()}]})
        labels += r.json()["outputs"][0]["data"]
    fams = scrape(server)
    for j in (0, 7, 29):
        ref = md.reference.features[f"f{j}"]
        want = numeric_bin_counts(x[:, j].astype(np.float64), ref.edges)  # type: ignore[union-attr]
        assert bucket_counts(fams, "logistic", f"f{j}") == want.tolist()
        # OpenMetrics drops _sum/_count when a bucket bound is negative: the +Inf bucket is the count.
        assert sample(fams, "modelship_feature_value", "modelship_feature_value_bucket", feature=f"f{j}", le="+Inf") == 500
    pred = categorical_bin_counts([str(v) for v in labels], ["0", "1"])
    for cat, n in zip(["0", "1", "__other__"], pred.tolist(), strict=True):
        assert sample(fams, "modelship_feature_category", "modelship_feature_category_total",
                      feature="__prediction__", category=cat) == n
    assert sample(fams, "modelship_drift_rows", "modelship_drift_rows_total", model="logistic") == 500


def test_categorical_and_regression_histograms(mixed: Any, regression: Any, artifacts: dict[str, Path]) -> None:
    before = scrape(mixed)
    base = {c: sample(before, "modelship_feature_category", "modelship_feature_category_total",
                      feature="city", category=c) for c in ("lyon", "nice", "paris", "__other__")}
    cities = ["lyon", "lyon", "paris", "atlantis", "nice"]
    body = {"instances": [{"age": 30.0, "city": c, "visits": 2} for c in cities]}
    assert mixed.post("/v1/models/mixed:predict", json=body).status_code == 200
    after = scrape(mixed)
    delta = {c: sample(after, "modelship_feature_category", "modelship_feature_category_total",
                       feature="city", category=c) - base[c] for c in base}
    assert delta == {"lyon": 2, "nice": 1, "paris": 1, "__other__": 1}
    assert bucket_counts(after, "mixed", "visits")  # int64 feature binned numerically
    x = np.random.default_rng(2).normal(size=(50, 5))
    before_r = scrape(regression)
    n0 = sample(before_r, "modelship_feature_value", "modelship_feature_value_bucket", feature="__prediction__", le="+Inf")
    assert regression.post("/v1/models/regression:predict", json={"instances": x.tolist()}).status_code == 200
    n1 = sample(scrape(regression), "modelship_feature_value", "modelship_feature_value_bucket",
                feature="__prediction__", le="+Inf")
    assert n1 - n0 == 50


def test_request_latency_batch_and_model_metrics(logistic: Any, artifacts: dict[str, Path]) -> None:
    body = {"inputs": [{"name": "input", "shape": [2, 30], "datatype": "FP32", "data": [0.0] * 60}]}
    assert logistic.post("/v2/models/logistic/infer", json=body).status_code == 200
    assert logistic.post("/v2/models/logistic/infer", json={"inputs": []}).status_code == 400
    assert logistic.post("/v1/models/logistic:predict", json={"instances": [[0.0] * 30]}).status_code == 200
    fams = scrape(logistic)
    ok = sample(fams, "modelship_requests", "modelship_requests_total",
                model="logistic", protocol="v2", endpoint="infer", code="200")
    assert ok >= 1
    assert sample(fams, "modelship_requests", "modelship_requests_total", protocol="v2", endpoint="infer", code="400") >= 1
    assert sample(fams, "modelship_request_errors", "modelship_request_errors_total",
                  protocol="v2", endpoint="infer", code="400") >= 1
    assert sample(fams, "modelship_requests", "modelship_requests_total", protocol="v1", endpoint="predict", code="200") >= 1
    assert sample(fams, "modelship_request_duration_seconds", "modelship_request_duration_seconds_count",
                  model="logistic", protocol="v2") >= 2
    assert sample(fams, "modelship_batch_size", "modelship_batch_size_count", model="logistic") >= 2
    assert sample(fams, "modelship_inference_duration_seconds", "modelship_inference_duration_seconds_count") >= 2
    sha = json.loads((artifacts["logistic"] / "metadata.json").read_text())["modelSha256"]
    assert sample(fams, "modelship_model_info", "modelship_model_info", model="logistic", version="3", sha256=sha) == 1
    assert sample(fams, "modelship_model_ready", "modelship_model_ready", model="logistic") == 1
    assert sample(fams, "modelship_model_load_seconds", "modelship_model_load_seconds", model="logistic") > 0
