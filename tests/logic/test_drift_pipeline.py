"""The drift contract end to end, without a cluster: server counters → /metrics text →
operator parse → window over two scrapes → evaluation. Catches any mismatch of metric
names, labels or ``le`` formatting between the data plane and the operator."""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from modelship.api.driftmonitor import DriftMonitorSpec, DriftState
from modelship.logic.drift import evaluate_drift
from modelship.logic.scrape import drift_counts, parse_samples
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

RNG = np.random.default_rng(3)
EDGES = [float(e) for e in np.quantile(RNG.normal(size=100_000), np.linspace(0.1, 0.9, 9))]
REFERENCE = DriftReference(
    features={
        "a": NumericReference(edges=EDGES, proportions=[0.1] * 10),
        "b": NumericReference(edges=EDGES, proportions=[0.1] * 10),
    },
    prediction=CategoricalReference(categories=["0", "1"], proportions=[0.5, 0.5, 0.0]),
    rows=100_000,
)
METADATA = Metadata(
    task="binary",
    features=[Feature(name="a", type="numeric", dtype="float"), Feature(name="b", type="numeric", dtype="float")],
    input_mode=InputMode.TENSOR,
    tensor_input="X",
    tensor_dtype="float",
    outputs=[Output(name="label", role="label")],
    model_sha256="0" * 64,
    reference=REFERENCE,
)


class Pod:
    def __init__(self) -> None:
        self.counters = DriftCounters("iris", METADATA)
        self.registry = CollectorRegistry()
        self.registry.register(self.counters)

    def serve(self, rows: int, shift: float) -> None:
        x = RNG.normal(size=(rows, 2))
        x[:, 0] += shift
        labels = (x[:, 1] > 0).astype(np.int64)
        self.counters.count({"X": x.astype(np.float32)}, {"label": labels})

    def scrape(self) -> dict[str, Any]:
        return drift_counts(parse_samples(generate_latest(self.registry).decode()), {
            **REFERENCE.features, PREDICTION: REFERENCE.prediction,
        })


def test_shift_on_one_feature_is_seen_through_the_metrics_text() -> None:
    spec = DriftMonitorSpec.model_validate({"modelRef": {"name": "iris"}, "window": {"minSamples": 1000}})
    pods = {"p1": Pod(), "p2": Pod()}
    for pod in pods.values():
        pod.serve(5000, 0.0)  # before the window: normal traffic
    before = {name: pod.scrape() for name, pod in pods.items()}
    for pod in pods.values():
        pod.serve(4000, 0.8)  # during the window: feature a shifted
    after = {name: pod.scrape() for name, pod in pods.items()}

    window = window_counts_by_feature(before, after)
    assert window["a"].total == 8000 and window["b"].total == 8000
    evaluation = evaluate_drift(spec, REFERENCE, {f: w.counts for f, w in window.items()})
    by_name = {s.feature: s for s in evaluation.scores}
    assert evaluation.state == DriftState.DRIFT, evaluation.message
    assert by_name["a"].state == DriftState.DRIFT and by_name["b"].state == DriftState.STABLE
    assert by_name[PREDICTION].state == DriftState.STABLE
    assert evaluation.missing == ()
