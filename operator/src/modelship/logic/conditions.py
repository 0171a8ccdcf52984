"""Conditions: constant types and reasons, set/merge, and the aggregate Ready.

Like Argo Rollouts' ``utils/conditions``: ``lastTransitionTime`` moves only
when a condition's status flips, so writing the same condition again changes
nothing and a steady state costs no status patch. Functions return new lists
and never mutate their inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from modelship.api.common import Condition, ConditionStatus

TRUE = ConditionStatus.TRUE
FALSE = ConditionStatus.FALSE
UNKNOWN = ConditionStatus.UNKNOWN

# Types.
READY = "Ready"
TRAINED = "Trained"
PROGRESSING = "Progressing"
DRIFTED = "Drifted"
COMPLETE = "Complete"
FAILED = "Failed"


class Reason:
    """PascalCase reasons, shared by conditions, Events and history entries."""

    # Model
    INVALID_SPEC = "InvalidSpec"
    TRAINING = "Training"
    TRAINING_FAILED = "TrainingFailed"
    TRAINED = "Trained"
    SOURCE_GIVEN = "SourceGiven"
    GATES_PASSED = "GatesPassed"
    GATE_FAILED = "GateFailed"
    AWAITING_TRAINING = "AwaitingTraining"
    DEPLOYING = "Deploying"
    AVAILABLE = "Available"
    UNAVAILABLE = "Unavailable"
    CANARY_SCALING = "CanaryScaling"
    CANARY_NOT_READY = "CanaryNotReady"
    ANALYSING = "Analysing"
    STEP_PASSED = "StepPassed"
    NO_DATA = "NoData"
    PROMOTING = "Promoting"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    ANALYSIS_FAILED = "AnalysisFailed"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    RECREATING = "Recreating"
    STABLE = "Stable"
    # TrainingJob
    JOB_CREATED = "JobCreated"
    JOB_RUNNING = "JobRunning"
    POD_NOT_STARTING = "PodNotStarting"  # running, but a pod waits on something only a person can fix
    SUCCEEDED = "Succeeded"
    # DriftMonitor
    DRIFT_DETECTED = "DriftDetected"
    NO_DRIFT = "NoDrift"
    WARNING = "Warning"
    NOT_ENOUGH_SAMPLES = "NotEnoughSamples"
    SCRAPE_FAILED = "ScrapeFailed"
    QUERY_FAILED = "QueryFailed"
    PROMETHEUS_URL_NOT_ALLOWED = "PrometheusUrlNotAllowed"
    NO_SERIES = "NoSeries"
    NO_REFERENCE = "NoReference"
    MODEL_NOT_FOUND = "ModelNotFound"
    RETRAIN_TRIGGERED = "RetrainTriggered"


def rfc3339(moment: datetime) -> str:
    """A timestamp as Kubernetes writes it: UTC, seconds, a ``Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    """Parse an RFC 3339 timestamp (``Z`` or an offset); ``None`` stays ``None``."""
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def condition(
    type_: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str = "",
    *,
    generation: int | None = None,
) -> Condition:
    """A condition without a transition time (``set_condition`` fills it in)."""
    if isinstance(status, bool):
        status = TRUE if status else FALSE
    return Condition(type=type_, status=status, reason=reason, message=message, observed_generation=generation)


def get_condition(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Iterable[Condition], type_: str) -> bool:
    c = get_condition(conditions, type_)
    return c is not None and c.status == TRUE


def set_condition(conditions: Sequence[Condition], new: Condition, now: datetime) -> list[Condition]:
    """Put ``new`` in place of the condition of its type.

    ``lastTransitionTime`` is kept when the status is unchanged and set to
    ``now`` when it flips or the condition is new; reason, message and
    observedGeneration are always taken from ``new``. Order is kept; a new
    type goes at the end.
    """
    old = get_condition(conditions, new.type)
    if old is not None and old.status == new.status and old.last_transition_time:
        stamp = old.last_transition_time
    else:
        stamp = rfc3339(now)
    placed = new.model_copy(update={"last_transition_time": stamp})
    out = [placed if c.type == new.type else c for c in conditions]
    if old is None:
        out.append(placed)
    return out


def merge_conditions(conditions: Sequence[Condition], updates: Iterable[Condition], now: datetime) -> list[Condition]:
    """``set_condition`` for each update in turn."""
    out = list(conditions)
    for update in updates:
        out = set_condition(out, update, now)
    return out


def remove_condition(conditions: Sequence[Condition], type_: str) -> list[Condition]:
    return [c for c in conditions if c.type != type_]


def aggregate_ready(
    conditions: Sequence[Condition],
    dependents: Sequence[str],
    *,
    generation: int | None = None,
    ready_reason: str = Reason.AVAILABLE,
    ready_message: str = "",
) -> Condition:
    """Ready from its dependents (Knative's ConditionSet rule).

    False when any dependent is False (its reason and message are carried
    over), else Unknown when any is Unknown or missing, else True.
    """
    first_unknown: Condition | None = None
    for type_ in dependents:
        c = get_condition(conditions, type_)
        if c is not None and c.status == FALSE:
            return condition(READY, FALSE, c.reason, c.message, generation=generation)
        if first_unknown is None and (c is None or c.status == UNKNOWN):
            first_unknown = c or condition(type_, UNKNOWN, "Unknown", f"{type_} has not been reported yet")
    if first_unknown is not None:
        return condition(READY, UNKNOWN, first_unknown.reason, first_unknown.message, generation=generation)
    return condition(READY, TRUE, ready_reason, ready_message, generation=generation)
