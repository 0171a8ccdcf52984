"""DriftMonitor: watches a Model's live inputs and retrains it on confirmed drift."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from modelship.api.common import (
    CelRule,
    Condition,
    Duration,
    LocalObjectReference,
    Spec,
    Status,
    cel_config,
)
from modelship.api.groundtruth import Performance, PerformanceStatus


class Method(StrEnum):
    PSI = "psi"
    JS = "js"
    CHI2 = "chi2"


class SourceType(StrEnum):
    PODS = "pods"
    PROMETHEUS = "prometheus"


class MetricsSource(Spec):
    """Where live histograms come from."""

    model_config = cel_config(
        [
            {
                "rule": "!has(self.type) || self.type != 'prometheus' || has(self.prometheusUrl)",
                "message": "source type prometheus needs prometheusUrl",
                "fieldPath": ".prometheusUrl",
            }
        ]
    )

    type: SourceType = Field(
        default=SourceType.PODS,
        description="pods (the operator scrapes the serving pods' /metrics) or prometheus (it queries "
        "Prometheus, which must scrape the serving pods with the labels in docs/prometheus.md).",
    )
    prometheus_url: str | None = Field(
        default=None, pattern=r"^https?://.+",
        description="Prometheus base URL for source prometheus (queried at <url>/api/v1/query).",
    )


class Window(Spec):
    duration: Duration = Field(default="10m", description="Live counts are taken over this window.")
    min_samples: int = Field(
        default=500, ge=1, description="Fewer observations than this: no verdict, state unchanged."
    )


class Action(Spec):
    """What confirmed drift does."""

    retrain: bool = Field(default=True, description="Create a TrainingJob (trigger drift) for the Model.")
    cooldown: Duration = Field(default="1h", description="Least time between two retrains it triggers.")
    max_per_day: int = Field(default=3, ge=0, le=100, description="Most retrains it triggers per 24 h.")
    require_alert: bool = Field(
        default=False,
        description="Wait for the Alertmanager alert before retraining, so silences and inhibitions apply.",
    )


DRIFT_MONITOR_RULES: list[CelRule] = [
    {
        "rule": "!has(self.warningThreshold) || self.warningThreshold < self.threshold",
        "message": "warningThreshold must be below threshold",
        "fieldPath": ".warningThreshold",
    },
    {
        "rule": "!has(self.action) || !has(self.action.cooldown) || !has(self.interval) || "
        "duration(self.action.cooldown) >= duration(self.interval)",
        "message": "action.cooldown must be at least interval",
        "fieldPath": ".action.cooldown",
    },
    {
        "rule": "!has(self.window) || !has(self.window.duration) || !has(self.interval) || "
        "duration(self.window.duration) >= duration(self.interval)",
        "message": "window.duration must be at least interval",
        "fieldPath": ".window.duration",
    },
]


class DriftMonitorSpec(Spec):
    """Compare a Model's live feature distributions with its training reference."""

    model_config = cel_config(DRIFT_MONITOR_RULES)

    model_ref: LocalObjectReference = Field(description="The Model to watch.")
    features: list[str] | None = Field(default=None, description="Features to watch; all when unset.")
    method: Method = Field(default=Method.PSI, description="psi, js (Jensen-Shannon distance) or chi2.")
    threshold: float = Field(default=0.2, gt=0.0, description="Score at or above which a feature drifts.")
    warning_threshold: float | None = Field(default=0.1, gt=0.0, description="Score for the Warning state.")
    min_drifted_features: int = Field(default=1, ge=1, description="Drifted features needed for Drift.")
    prediction_drift: bool = Field(default=True, description="Also score the prediction distribution.")
    window: Window = Field(default_factory=Window, description="Evaluation window.")
    interval: Duration = Field(default="1m", description="How often to evaluate.")
    source: MetricsSource = Field(default_factory=MetricsSource, description="Where the counts come from.")
    action: Action = Field(default_factory=Action, description="What drift does.")
    top_n: int = Field(default=10, ge=1, le=1000, description="Feature scores kept in status.")
    performance: Performance | None = Field(
        default=None,
        description="Live quality from logged predictions and late labels, per revision; a drop below the "
        "floor retrains (trigger performance) within action's cooldown and daily limit.",
    )


class DriftState(StrEnum):
    STABLE = "Stable"
    WARNING = "Warning"
    DRIFT = "Drift"


class FeatureScore(Status):
    feature: str = Field(description="Feature name, or __prediction__.")
    score: float = Field(description="Statistic value.")
    state: DriftState = Field(description="This feature's verdict.")
    p_value: float | None = Field(default=None, description="chi2 only: corrected p-value.")


class CountsSnapshot(Status):
    """The serving pods' cumulative per-bin counts at one moment."""

    taken_at: str = Field(description="When the pods were read.")
    counts: dict[str, list[float]] = Field(
        default_factory=dict, description="feature/pod -> cumulative count per reference bin."
    )


class WindowState(Status):
    """What the next evaluation's window counts from (pods source), kept across operator restarts."""

    revision: str = Field(description="Revision the snapshots were read from (a new one starts afresh).")
    snapshots: list[CountsSnapshot] = Field(
        default_factory=list, description="Oldest first: the window's baseline, then a few newer ones."
    )


class DriftMonitorStatus(Status):
    observed_generation: int | None = Field(default=None, description="Last spec generation acted on.")
    state: DriftState | None = Field(default=None, description="Stable, Warning or Drift.")
    last_evaluated: str | None = Field(default=None, description="Time of the last evaluation.")
    samples: int | None = Field(default=None, description="Observations in the last window.")
    max_score: float | None = Field(default=None, description="Highest feature score.")
    scores: list[FeatureScore] = Field(default_factory=list, description="Top features by score.")
    reference_revision: str | None = Field(default=None, description="Revision whose reference is used.")
    last_triggered_training_job: str | None = Field(default=None, description="Last TrainingJob it created.")
    last_triggered_at: str | None = Field(default=None, description="When it last triggered a retrain.")
    triggered_at: list[str] = Field(default_factory=list, description="Retrain times in the last 24 h.")
    performance: PerformanceStatus | None = Field(default=None, description="Live quality per revision.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Drifted, PerformanceDegraded.")
    window: WindowState | None = Field(default=None, description="Window bookkeeping (source pods).")
