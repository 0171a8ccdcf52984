"""The operator's own Prometheus metrics, on its own registry (not the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "modelship_reconciles_total", "Reconciles run, by kind and result.", ["kind", "result"], registry=REGISTRY
)
RECONCILE_SECONDS = Histogram(
    "modelship_reconcile_duration_seconds", "Time one reconcile took.", ["kind"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
API_WRITES = Counter(
    "modelship_api_writes_total", "Writes the operator sent to the API server, by verb and kind.",
    ["verb", "kind"], registry=REGISTRY,
)
ROLLOUTS = Counter(
    "modelship_rollouts_total", "Rollout events: started, promoted, rolled_back.", ["namespace", "model", "event"],
    registry=REGISTRY,
)
MODELS_BY_PHASE = Gauge("modelship_models", "Models by phase.", ["phase"], registry=REGISTRY)
DRIFT_SCORE = Gauge(
    "modelship_drift_score",
    "A DriftMonitor's latest score per feature (and __prediction__) on its Model's current reference; "
    "none before its first verdict on a newly promoted revision.",
    ["namespace", "model", "monitor", "feature", "method"], registry=REGISTRY,
)
DRIFT_STATE = Gauge(
    "modelship_drift_state", "Drift state of a DriftMonitor: 0 Stable, 1 Warning, 2 Drift.",
    ["namespace", "model", "monitor"], registry=REGISTRY,
)
MODEL_QUALITY = Gauge(
    "modelship_model_quality",
    "Live quality per serving revision from logged predictions and late labels: source realised (on labelled "
    "rows) or estimated (CBPE, binary classifiers); metric labelled_rows counts the labelled rows.",
    ["namespace", "model", "revision", "metric", "source"], registry=REGISTRY,
)
ALERTS = Counter(
    "modelship_alerts_total", "Alertmanager alerts received, by status and outcome.", ["status", "outcome"],
    registry=REGISTRY,
)
LEADER = Gauge(
    "modelship_leader", "1 while this process acts (holds the leader Lease, or runs without leader election).",
    registry=REGISTRY,
)
