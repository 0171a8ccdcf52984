"""Model: a model a team declares; trained, gated, canary-served, retrained."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, model_validator

from modelship.api.common import (
    CelRule,
    Condition,
    Duration,
    ResourceRequirements,
    Spec,
    Status,
    cel,
    cel_config,
)
from modelship.api.groundtruth import PredictionLog
from modelship.api.trainingjob import (
    FAIRNESS_NEEDS_SENSITIVE,
    TRAINING_TEMPLATE_RULES,
    Gates,
    TrainingTemplate,
)

FAIRNESS_NEEDS_SENSITIVE_MODEL = FAIRNESS_NEEDS_SENSITIVE.replace("dataset.", "training.dataset.")


class Source(Spec):
    """Serve an existing ONNX artifact instead of training one."""

    uri: str = Field(
        pattern=r"^(file|s3|https?)://.+",
        description="A Modelship artifact directory (model.onnx + metadata.json) or a bare .onnx file.",
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Expected sha256 of model.onnx; a mismatch refuses the model.",
    )


class Autoscaling(Spec):
    """A HorizontalPodAutoscaler on CPU for the stable revision."""

    model_config = cel_config(
        [
            {
                "rule": "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                "message": "minReplicas must not exceed maxReplicas",
            }
        ]
    )

    min_replicas: int = Field(default=1, ge=1, le=1000, description="Fewest replicas.")
    max_replicas: int = Field(default=5, ge=1, le=1000, description="Most replicas.")
    target_cpu_utilization: int = Field(default=70, ge=1, le=100, description="Target average CPU percent.")


IntOrPercent = Annotated[
    Annotated[int, Field(ge=0, strict=True)] | Annotated[str, Field(pattern=r"^[0-9]+%$")],
    Field(json_schema_extra={"x-kubernetes-int-or-string": True}),
]


def _int_or_percent_rule(field: str) -> CelRule:
    return {
        "rule": f"!has(self.{field}) || (type(self.{field}) == int ? self.{field} >= 0 : "
        f"self.{field}.matches('^[0-9]+%$'))",
        "message": f"{field} must be a count (0 or more) or a percent like 50%",
        "fieldPath": f".{field}",
    }


class WhenUnsatisfiable(StrEnum):
    SCHEDULE_ANYWAY = "ScheduleAnyway"
    DO_NOT_SCHEDULE = "DoNotSchedule"


class NodeInclusionPolicy(StrEnum):
    HONOR = "Honor"
    IGNORE = "Ignore"


class TopologySpreadConstraint(Spec):
    """A pod topologySpreadConstraint (the Kubernetes field of the same name) for serving pods."""

    max_skew: int = Field(default=1, ge=1, description="Largest difference in pod count between two domains.")
    topology_key: str = Field(
        min_length=1, max_length=316, description="Node label naming the domains, e.g. kubernetes.io/hostname."
    )
    when_unsatisfiable: WhenUnsatisfiable = Field(
        default=WhenUnsatisfiable.SCHEDULE_ANYWAY,
        description="ScheduleAnyway (prefer the spread) or DoNotSchedule (require it).",
    )
    label_selector: dict[str, Any] | None = Field(
        default=None,
        description="Pods counted; the revision's pods when unset.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    min_domains: int | None = Field(default=None, ge=1, description="Fewest eligible domains (DoNotSchedule only).")
    match_label_keys: list[str] | None = Field(default=None, description="Pod label keys added to the selector.")
    node_affinity_policy: NodeInclusionPolicy | None = Field(
        default=None, description="Whether nodeAffinity/nodeSelector limit the domains (Honor, Ignore)."
    )
    node_taints_policy: NodeInclusionPolicy | None = Field(
        default=None, description="Whether node taints limit the domains (Honor, Ignore)."
    )


class DisruptionBudget(Spec):
    """A PodDisruptionBudget for the stable revision's pods: voluntary evictions (``kubectl drain``,
    node upgrades, the cluster autoscaler) wait while they would break it. Unhealthy pods may always
    be evicted, so a crash-looping revision never blocks a drain."""

    model_config = cel_config(
        [
            {
                "rule": "!(has(self.minAvailable) && has(self.maxUnavailable))",
                "message": "set at most one of minAvailable and maxUnavailable",
            },
            _int_or_percent_rule("minAvailable"),
            _int_or_percent_rule("maxUnavailable"),
        ]
    )

    min_available: IntOrPercent | None = Field(
        default=None, description="Pods that must stay available (a count or a percent like 50%)."
    )
    max_unavailable: IntOrPercent | None = Field(
        default=None,
        description="Pods that may be unavailable at once (a count or a percent); 1 when neither is set.",
    )

    @model_validator(mode="after")
    def _one_bound(self) -> DisruptionBudget:
        if self.min_available is not None and self.max_unavailable is not None:
            raise ValueError("set at most one of minAvailable and maxUnavailable")
        return self


class Serving(Spec):
    """How each revision is served."""

    replicas: int = Field(default=1, ge=0, le=1000, description="Serving pods of the stable revision.")
    resources: ResourceRequirements | None = Field(default=None, description="Each serving pod's resources.")
    image: str | None = Field(default=None, description="Serving image override.")
    max_batch_size: int = Field(default=64, ge=1, le=65536, description="Micro-batch size limit.")
    max_batch_delay_ms: float = Field(default=2.0, ge=0.0, le=1000.0, description="Micro-batch wait limit.")
    autoscaling: Autoscaling | None = Field(default=None, description="Optional HPA.")
    prediction_log: PredictionLog | None = Field(
        default=None,
        description="Log predictions to the artifact store and take labels (POST .../feedback), for live "
        "quality (DriftMonitor performance) and retraining on production data.",
    )
    topology_spread_constraints: list[TopologySpreadConstraint] | None = Field(
        default=None,
        max_length=8,
        description="How each revision's pods spread. Unset: over nodes (kubernetes.io/hostname, maxSkew 1, "
        "ScheduleAnyway); [] for no constraint.",
    )
    pod_disruption_budget: DisruptionBudget | None = Field(
        default=None, description="Optional PodDisruptionBudget for the stable revision (e.g. {maxUnavailable: 1})."
    )


class RolloutStrategy(StrEnum):
    CANARY = "Canary"
    RECREATE = "Recreate"


class OnNoData(StrEnum):
    PAUSE = "pause"
    PROCEED = "proceed"


class TrafficRouting(StrEnum):
    REPLICAS = "replicas"
    GATEWAY_API = "gatewayAPI"


class CanaryStep(Spec):
    weight: int = Field(ge=1, le=100, description="Percent of traffic for the canary at this step.")
    pause: Duration = Field(default="30s", description="How long the step is analysed before moving on.")


class Analysis(Spec):
    """What a canary step must show to pass, read from the canary's own metrics."""

    max_error_ratio: float = Field(default=0.01, ge=0.0, le=1.0, description="Largest share of 5xx answers.")
    max_latency_p99_ms: float = Field(default=500.0, gt=0.0, description="Largest p99 latency.")
    min_requests: int = Field(default=20, ge=0, description="Fewer requests than this is 'no data'.")
    interval: Duration = Field(default="10s", description="How often the analysis reads metrics and judges.")
    min_agreement: float = Field(
        default=0.8, ge=0.0, le=1.0,
        description="Shadow, classifiers: least share of mirrored rows where the candidate's label equals the stable's.",
    )
    max_prediction_shift: float = Field(
        default=0.5, ge=0.0,
        description="Shadow, regressors: largest mean |candidate - stable| over mirrored rows, in units of the "
        "stable's standard deviation on them.",
    )


class Shadow(Spec):
    """Before the first canary step the candidate receives mirrored copies of live requests and no
    user traffic; it is judged on its 5xx, p99 and agreement with the stable."""

    duration: Duration = Field(default="1m", description="How long the shadow is analysed before the canary.")
    percent: int = Field(default=100, ge=1, le=100, description="Share of live requests mirrored to it.")


class GatewayRef(Spec):
    name: str = Field(description="HTTPRoute parent Gateway name.")
    namespace: str | None = Field(default=None, description="Gateway namespace; the Model's when unset.")


def _strictly_increasing_rule(max_items: int) -> str:
    indexes = ", ".join(str(i) for i in range(max_items - 1))
    return (
        f"!has(self.steps) || [{indexes}].all(i, i + 1 >= size(self.steps) || "
        "self.steps[i].weight < self.steps[i + 1].weight)"
    )


MAX_STEPS = 10


class Rollout(Spec):
    """How a new revision reaches traffic."""

    model_config = cel_config(
        [
            {
                "rule": _strictly_increasing_rule(MAX_STEPS),
                "message": "canary step weights must be strictly increasing",
                "fieldPath": ".steps",
            },
            {
                "rule": "!has(self.strategy) || !has(self.steps) || self.strategy != 'Recreate' "
                "|| size(self.steps) == 0",
                "message": "steps apply to the Canary strategy only",
                "fieldPath": ".steps",
            },
        ]
    )

    strategy: RolloutStrategy = Field(default=RolloutStrategy.CANARY, description="Canary or Recreate.")
    steps: list[CanaryStep] = Field(
        default_factory=lambda: [CanaryStep(weight=10), CanaryStep(weight=50)],
        max_length=MAX_STEPS,
        description="Canary weights in order, each analysed for its pause; promotion follows the last.",
    )
    analysis: Analysis = Field(default_factory=Analysis, description="Pass criteria per step.")
    shadow: Shadow | None = Field(default=None, description="A shadow stage before the canary (off when unset).")
    on_no_data: OnNoData = Field(default=OnNoData.PAUSE, description="Too few requests: pause or proceed.")
    traffic_routing: TrafficRouting = Field(
        default=TrafficRouting.REPLICAS,
        description="replicas (weight by replica ratio under one Service) or gatewayAPI (HTTPRoute weights).",
    )
    gateway: GatewayRef | None = Field(default=None, description="Gateway for gatewayAPI routing.")


class Retrain(Spec):
    """When the Model retrains by itself."""

    on_drift: bool = Field(default=True, description="Retrain when its DriftMonitor confirms drift.")
    cooldown: Duration = Field(default="1h", description="Least time between two automatic retrains.")
    max_per_day: int = Field(default=3, ge=0, le=100, description="Most automatic retrains per 24 h.")


MODEL_RULES: list[CelRule] = [
    {
        "rule": "has(self.training) != has(self.source)",
        "message": "set exactly one of training (train a model) or source (serve an existing ONNX artifact)",
    },
    {
        "rule": "!has(self.rollout) || !has(self.rollout.trafficRouting) || "
        "self.rollout.trafficRouting != 'gatewayAPI' || has(self.rollout.gateway)",
        "message": "rollout.trafficRouting gatewayAPI needs rollout.gateway",
        "fieldPath": ".rollout.gateway",
    },
    {
        # The TrainingJob the Model makes carries the same rule: without it here the API
        # server would accept the Model and refuse each of its TrainingJobs.
        "rule": "!has(self.training) || !has(self.gates) || !has(self.gates.fairness) || "
        "has(self.training.dataset.sensitiveFeature)",
        "message": FAIRNESS_NEEDS_SENSITIVE_MODEL,
        "fieldPath": ".gates.fairness",
    },
]


class ModelSpec(Spec):
    """A model: train it (training) or take an artifact (source), then serve it."""

    model_config = cel_config(MODEL_RULES)

    training: TrainingTemplate | None = Field(
        default=None,
        description="TrainingJob template: dataset, pipeline, candidates, search, metric.",
        json_schema_extra=cel(TRAINING_TEMPLATE_RULES),
    )
    source: Source | None = Field(default=None, description="An existing ONNX artifact; no training.")
    artifact_store: str | None = Field(
        default=None,
        pattern=r"^(file|s3)://.+",
        description="Where this Model's artifacts and prediction logs go (under <artifactStore>/<namespace>/); the "
        "operator's default when unset. It must be the operator's store or one of its allowed output prefixes (or "
        "a directory inside <that>/<namespace>/), else the Model is Ready=False, InvalidSpec.",
    )
    serving: Serving = Field(default_factory=Serving, description="Serving pods.")
    rollout: Rollout = Field(default_factory=Rollout, description="Canary or Recreate rollout.")
    gates: Gates = Field(default_factory=Gates, description="Checks a new version must pass.")
    retrain: Retrain = Field(default_factory=Retrain, description="Automatic retraining.")

    @model_validator(mode="after")
    def _fairness_has_a_group(self) -> ModelSpec:
        if self.training is not None and self.gates.fairness is not None \
                and self.training.dataset.sensitive_feature is None:
            raise ValueError(FAIRNESS_NEEDS_SENSITIVE_MODEL)
        return self


class Phase(StrEnum):
    TRAINING = "Training"
    PROGRESSING = "Progressing"
    SERVING = "Serving"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class Outcome(StrEnum):
    TRAINING = "Training"
    REFUSED = "Refused"
    PROGRESSING = "Progressing"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    SUPERSEDED = "Superseded"


class HistoryEntry(Status):
    revision: str | None = Field(
        default=None, description="Revision name (short hash of artifact digest and serving template); "
        "empty while the version is training or when it never reached serving."
    )
    training_job: str | None = Field(default=None, description="TrainingJob that produced it.")
    artifact_uri: str | None = Field(default=None, description="Artifact directory.")
    artifact_sha256: str | None = Field(default=None, description="sha256 of model.onnx.")
    image: str | None = Field(default=None, description="Serving image the pods ran (imageID).")
    metrics: dict[str, float] = Field(default_factory=dict, description="Holdout metrics.")
    trigger: str | None = Field(default=None, description="initial, spec-change, manual, drift, alert or performance.")
    outcome: Outcome = Field(description="What became of this version.")
    reason: str | None = Field(default=None, description="Why, when refused or rolled back.")
    created_at: str | None = Field(default=None, description="When the version was made.")
    promoted_at: str | None = Field(default=None, description="When it became stable.")
    rolled_back_at: str | None = Field(default=None, description="When it was rolled back.")
    rolled_back_generation: int | None = Field(
        default=None, description="The Model's generation when it was rolled back: the same artifact is not "
        "rolled out again until the spec changes."
    )


class PodCounters(Status):
    """One canary pod's cumulative request counters, as its /metrics showed them."""

    pod: str = Field(description="Pod name.")
    by_code: dict[str, float] = Field(default_factory=dict, description="Inference requests by HTTP status code.")
    latency: dict[str, float] = Field(
        default_factory=dict, description="Cumulative latency histogram: bucket upper bound (seconds, +Inf) -> count."
    )


class ShadowTally(Status):
    """One stable pod's cumulative comparison of its answers with the shadow's."""

    pod: str = Field(description="Stable pod name.")
    agree: float = Field(default=0.0, description="Rows with the same label (classifiers).")
    disagree: float = Field(default=0.0, description="Rows with another label (classifiers).")
    compared: float = Field(default=0.0, description="Rows compared (regressors).")
    abs_diff_sum: float = Field(default=0.0, description="Sum of |stable - shadow| (regressors).")
    prediction_sum: float = Field(default=0.0, description="Sum of the stable's predictions (regressors).")
    prediction_sq_sum: float = Field(default=0.0, description="Sum of their squares (regressors).")


class Stage(StrEnum):
    SHADOW = "Shadow"
    CANARY = "Canary"
    ROLLING_BACK = "RollingBack"
    PROMOTING = "Promoting"


class RolloutProgress(Status):
    """Bookkeeping of the rollout in progress, kept in status so a restarted operator carries on."""

    stage: Stage = Field(default=Stage.CANARY, description=(
        "Shadow (mirrored traffic only), Canary, RollingBack, or Promoting (the promoted revision is "
        "stable; the previous one serves until it is ready at full size)."))
    outgoing: str | None = Field(default=None, description=(
        "While Promoting: the previous stable revision, kept serving until the new one is ready at full size."))
    started_at: str | None = Field(default=None, description="When this candidate first appeared.")
    analysed_at: str | None = Field(default=None, description="When the analysis last judged (every interval).")
    figures: str | None = Field(default=None, description=(
        "What the last analysis of the current step (or of the shadow) measured; Progressing shows it "
        "until the next one."))
    weight_since: str | None = Field(default=None, description=(
        "When the canary was first ready at the current step's size, so the step's weight was served: "
        "the step passes no sooner than one analysis interval (or its pause, if shorter) after it."))
    shadow_started_at: str | None = Field(default=None, description="When the shadow's pods were ready.")
    shadow_baseline: list[ShadowTally] = Field(
        default_factory=list, description="The stable pods' comparison counters when the shadow began."
    )
    rollback_reason: str | None = Field(default=None, description="Why the canary is being rolled back.")
    baseline: list[PodCounters] = Field(
        default_factory=list,
        description="The canary pods' counters when the current step began: the step's analysis counts from them.",
    )


class ModelStatus(Status):
    observed_generation: int | None = Field(default=None, description="Last spec generation acted on.")
    phase: Phase | None = Field(default=None, description="Training, Validating, Progressing, Serving, Degraded or Failed.")
    stable_revision: str | None = Field(default=None, description="Revision serving all traffic when no canary runs.")
    canary_revision: str | None = Field(default=None, description="Revision under canary analysis.")
    canary_weight: int | None = Field(default=None, description="Canary traffic percent now.")
    canary_step: int | None = Field(default=None, description="Index of the current canary step.")
    step_started_at: str | None = Field(default=None, description="When the current canary step began.")
    url: str | None = Field(default=None, description="In-cluster URL of the model's Service.")
    drift_state: str | None = Field(default=None, description="Stable, Warning or Drift, from the DriftMonitor.")
    training_jobs_created: int = Field(default=0, description="TrainingJobs made for this Model so far.")
    current_training_job: str | None = Field(default=None, description="The TrainingJob in flight.")
    spec_hash: str | None = Field(default=None, description="Hash of the training template last trained.")
    history: list[HistoryEntry] = Field(default_factory=list, description="Last versions, newest first.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Trained, Progressing, Drifted.")
    rollout: RolloutProgress | None = Field(default=None, description="The rollout in progress, if any.")
    retrain_request: str | None = Field(
        default=None, description="The modelship.io/retrain annotation's value last acted on (a new value retrains)."
    )


def champion_uri(status: ModelStatus) -> str | None:
    """The artifact of the revision serving now: the champion a new version must beat."""
    stable = status.stable_revision
    entry = next((h for h in status.history if h.revision == stable), None) if stable else None
    return entry.artifact_uri if entry is not None else None
