"""Live quality: when to measure, what a measurement says, and when a drop retrains.

A DriftMonitor with ``performance`` measures on its own schedule with a
short Job of the trainer image (``modelship-quality``): the operator never
reads the store, so the join of the prediction log with the labels runs
there, and the answer comes back in the Job's termination message.
This module is the pure part: :func:`plan_quality` takes what the I/O layer
observed (the monitor, its Model, the Job in flight and its pods, the
Model's TrainingJobs) and returns the whole next performance status, the
PerformanceDegraded condition, the Job to create or delete, the TrainingJob
a drop creates, Events, and the gauges to set.

One measurement at a time: a Job named after the end of its window
(``<monitor>-quality-<hash>``) is created when the interval has passed,
read when it finishes and then deleted. Only a fresh measurement can start a
retrain, and only the stable revision's: with at least ``minLabelledRows``
labelled rows, below ``floor``. The retrain goes through the same limits as
drift (the stricter of the monitor's and the Model's cooldown and daily
limit, counting drift and performance retrains alike, none while a
TrainingJob runs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelship.api.common import Condition, ConditionStatus, parse_duration
from modelship.api.driftmonitor import DriftMonitorSpec, DriftMonitorStatus
from modelship.api.groundtruth import (
    Performance,
    PerformanceStatus,
    ProductionData,
    QualityState,
    RetrainData,
    RevisionQuality,
)
from modelship.api.model import ModelSpec, ModelStatus, Outcome
from modelship.logic import conditions as c
from modelship.logic.retrain import RetrainDecision, may_retrain
from modelship.logic.revision import child_name, short_hash
from modelship_runtime.groundtruth.layout import groundtruth_uri

Obj = dict[str, Any]

PERFORMANCE_DEGRADED = "PerformanceDegraded"
CONTAINER = "quality"
MAX_REVISIONS = 5
ESTIMABLE = ("accuracy", "roc_auc")


class Reason:
    BELOW_FLOOR = "BelowFloor"
    AT_OR_ABOVE_FLOOR = "AtOrAboveFloor"
    NOT_ENOUGH_LABELS = "NotEnoughLabels"
    NO_STABLE_REVISION = "NoStableRevision"
    MEASURING = "Measuring"
    QUALITY_JOB_FAILED = "QualityJobFailed"
    QUALITY_MEASURED = "QualityMeasured"
    RETRAIN_TRIGGERED = "RetrainTriggered"


@dataclass(frozen=True)
class QualityObservation:
    """What the I/O layer read for one reconcile."""

    namespace: str
    monitor: str
    generation: int | None
    spec: DriftMonitorSpec
    status: DriftMonitorStatus
    model: Obj | None
    job: Obj | None = None  # the Job named by status.performance.job, if it exists
    job_pods: Sequence[Obj] = ()
    running_training_job: str | None = None
    automatic_retrains: Sequence[str] = ()  # creation times of the Model's drift and performance TrainingJobs
    next_training_job: str | None = None  # the name a new TrainingJob of the Model would get
    default_store: str = ""
    now: datetime = field(default_factory=lambda: datetime.now().astimezone())


@dataclass
class QualityResult:
    """A parsed ``modelship-quality`` answer."""

    ok: bool
    revisions: list[RevisionQuality] = field(default_factory=list)
    predictions: int = 0
    labelled: int = 0
    seconds: float | None = None
    start: str | None = None
    end: str | None = None
    reason: str = ""
    message: str = ""


@dataclass
class QualityPlan:
    performance: PerformanceStatus | None
    conditions: list[Condition]
    create_job: tuple[str, Obj] | None = None  # (name, the QualityRequest as wire JSON)
    delete_job: str | None = None
    retrain: tuple[str, ProductionData | None, str | None] | None = None  # (TrainingJob, data, champion URI)
    decision: RetrainDecision | None = None
    events: list[tuple[str, str, bool]] = field(default_factory=list)
    gauges: list[tuple[str, str, str, float]] = field(default_factory=list)  # (revision, metric, source, value)


# --- small steps -----------------------------------------------------------------


def job_name(monitor: str, end: str) -> str:
    """``<monitor>-quality-<hash of the window end>``: one name per measurement."""
    return child_name(monitor, f"quality-{short_hash(end, length=8)}")


def is_due(perf: Performance, status: PerformanceStatus | None, now: datetime) -> bool:
    last = c.parse_time(status.last_evaluated) if status else None
    return last is None or now - last >= parse_duration(perf.interval)


def job_finished(job: Obj | None) -> str | None:
    """'Complete' or 'Failed' once the Job has finished, else None."""
    for cond in ((job or {}).get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "Complete"
        if cond.get("status") == "True" and cond.get("type") in ("Failed", "FailureTarget"):
            return "Failed"
    return None


def termination_message(pods: Sequence[Obj]) -> str:
    """The newest termination message of the quality container."""
    found = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") != CONTAINER:
                continue
            for state in (cs.get("state") or {}, cs.get("lastState") or {}):
                term = state.get("terminated")
                if term and term.get("message"):
                    found.append((term.get("finishedAt") or "", term["message"]))
    return max(found)[1] if found else ""


def parse_result(message: str, floor_metric: str) -> QualityResult:
    """The Job's answer; a message that is not one is a failed measurement."""
    try:
        doc = json.loads(message.strip().splitlines()[-1]) if message.strip() else None
    except (json.JSONDecodeError, IndexError):
        doc = None
    if not isinstance(doc, dict):
        return QualityResult(False, reason=Reason.QUALITY_JOB_FAILED,
                             message="the quality Job left no summary; see its pod's log")
    if not doc.get("ok"):
        return QualityResult(False, reason=str(doc.get("reason") or Reason.QUALITY_JOB_FAILED),
                             message=str(doc.get("message") or "the quality Job failed"))
    revisions = []
    for r in doc.get("revisions") or []:
        if not isinstance(r, dict) or not r.get("revision"):
            continue
        metrics = {str(k): float(v) for k, v in (r.get("metrics") or {}).items() if isinstance(v, int | float)}
        estimates = {str(k): float(v) for k, v in (r.get("estimates") or {}).items() if isinstance(v, int | float)}
        revisions.append(RevisionQuality(
            revision=str(r["revision"]), rows=int(r.get("rows") or 0), labelled=int(r.get("labelled") or 0),
            value=metrics.get(floor_metric), estimated=estimates.get(floor_metric),
            metrics=metrics, estimates=estimates))
    return QualityResult(True, revisions, int(doc.get("predictions") or 0), int(doc.get("labelled") or 0),
                         doc.get("seconds"), doc.get("start"), doc.get("end"))


def judge(perf: Performance, quality: RevisionQuality) -> QualityState:
    if quality.labelled < perf.min_labelled_rows or quality.value is None:
        return QualityState.NOT_ENOUGH_LABELS
    return QualityState.DEGRADED if quality.value < perf.floor else QualityState.HEALTHY


def judged(perf: Performance, revisions: Sequence[RevisionQuality]) -> list[RevisionQuality]:
    return [r.model_copy(update={"state": judge(perf, r)}) for r in revisions]


def served_revisions(model_status: ModelStatus) -> dict[str, str]:
    """revision → artifact URI of the revisions that served (stable first, then the canary, then history)."""
    out: dict[str, str] = {}
    wanted = [model_status.stable_revision, model_status.canary_revision]
    for revision in wanted:
        entry = next((h for h in model_status.history if h.revision == revision), None)
        if revision and entry is not None and entry.artifact_uri:
            out[revision] = entry.artifact_uri
    for h in model_status.history:
        if (h.revision and h.artifact_uri and h.revision not in out
                and h.outcome in (Outcome.PROMOTED, Outcome.SUPERSEDED, Outcome.ROLLED_BACK, Outcome.PROGRESSING)):
            out[h.revision] = h.artifact_uri
        if len(out) >= MAX_REVISIONS:
            break
    return out


def quality_request(obs: QualityObservation, perf: Performance, model_spec: ModelSpec,
                    model_status: ModelStatus, end: datetime) -> Obj:
    """The QualityRequest (``modelship_runtime.groundtruth.cli``) for a window ending at ``end``."""
    store = model_spec.artifact_store or obs.default_store
    start = end - parse_duration(perf.window)
    return {
        "groundtruthUri": groundtruth_uri(store, obs.namespace, obs.spec.model_ref.name),
        "labels": [s.wire() for s in perf.labels],
        "start": c.rfc3339(start),
        "end": c.rfc3339(end),
        "revisions": served_revisions(model_status),
        "estimate": perf.estimate,
    }


def production_data(obs: QualityObservation, perf: Performance, model_spec: ModelSpec,
                    end: datetime) -> ProductionData | None:
    """What a performance retrain trains on: the window's labelled rows (all revisions' traffic)."""
    if perf.retrain_data == RetrainData.TRAINING:
        return None
    store = model_spec.artifact_store or obs.default_store
    return ProductionData(
        uri=groundtruth_uri(store, obs.namespace, obs.spec.model_ref.name),
        labels=list(perf.labels),
        start=c.rfc3339(end - parse_duration(perf.window)),
        end=c.rfc3339(end),
        include_training_data=perf.retrain_data == RetrainData.PRODUCTION_AND_TRAINING,
        min_rows=perf.min_labelled_rows,
    )


def retrain_decision(obs: QualityObservation, perf: Performance, model_spec: ModelSpec,
                     performance: PerformanceStatus) -> RetrainDecision:
    """The drift path's limits: the stricter cooldown and daily limit, drift and performance retrains alike."""
    action = obs.spec.action
    cooldown = max(parse_duration(action.cooldown), parse_duration(model_spec.retrain.cooldown))
    max_per_day = min(action.max_per_day, model_spec.retrain.max_per_day)
    own = [*obs.status.triggered_at, *performance.triggered_at]
    decision = may_retrain(obs.now, cooldown=cooldown, max_per_day=max_per_day, triggered=own,
                           running=obs.running_training_job, enabled=perf.retrain)
    if not decision.allowed or not obs.automatic_retrains:
        return decision
    model_wide = may_retrain(obs.now, cooldown=parse_duration(model_spec.retrain.cooldown),
                             max_per_day=model_spec.retrain.max_per_day, triggered=obs.automatic_retrains)
    if model_wide.allowed:
        return decision
    return RetrainDecision(False, model_wide.reason, f"the Model's automatic retrains: {model_wide.message}",
                           model_wide.retry_at)


def _condition(state: QualityState | None, reason: str, message: str, generation: int | None) -> Condition:
    status: bool | ConditionStatus = c.UNKNOWN if state is None or state == QualityState.NOT_ENOUGH_LABELS \
        else state == QualityState.DEGRADED
    return c.condition(PERFORMANCE_DEGRADED, status, reason, message, generation=generation)


def _describe(perf: Performance, q: RevisionQuality) -> str:
    value = f"{q.value:.4g}" if q.value is not None else "n/a"
    text = f"{perf.metric} {value} on {q.labelled} labelled of {q.rows} predictions of {q.revision}"
    if q.estimated is not None:
        text += f" (estimated without labels {q.estimated:.4g})"
    return text


# --- the plan -----------------------------------------------------------------------


def plan_quality(obs: QualityObservation) -> QualityPlan:
    """The whole next performance status and what to do, from one observation."""
    perf = obs.spec.performance
    generation = obs.generation
    old = obs.status.performance
    if perf is None:
        # The section was removed: forget the measurement, remove the condition, stop a Job in flight.
        return QualityPlan(None, [], delete_job=old.job if old and old.job else None)
    performance = (old or PerformanceStatus()).model_copy(deep=True)
    conds: list[Condition] = []
    plan = QualityPlan(performance, conds)
    model = obs.model
    if model is None:
        conds.append(_condition(None, Reason.NO_STABLE_REVISION,
                                f"Model {obs.spec.model_ref.name} does not exist", generation))
        return plan
    model_spec = ModelSpec.model_validate(model.get("spec") or {})
    model_status = ModelStatus.model_validate(model.get("status") or {})

    # 1. A measurement in flight: read it when it has finished, or forget it when its Job is gone.
    if performance.job:
        finished = job_finished(obs.job)
        if obs.job is None:
            performance.job, performance.job_window_end = None, None
        elif finished is None:
            return plan  # still measuring; the condition stays what it was
        else:
            plan.delete_job = performance.job
            result = parse_result(termination_message(obs.job_pods), str(perf.metric))
            performance.job, performance.job_window_end = None, None
            performance.last_evaluated = c.rfc3339(obs.now)
            if not result.ok:
                message = f"quality Job failed ({result.reason}): {result.message}"
                conds.append(_condition(None, Reason.QUALITY_JOB_FAILED, message, generation))
                plan.events.append((Reason.QUALITY_JOB_FAILED, message, True))
                return plan
            _take_result(obs, plan, perf, model_spec, model_status, result)
            return plan

    # 2. Time for a new measurement?
    stable = model_status.stable_revision
    if not stable:
        conds.append(_condition(None, Reason.NO_STABLE_REVISION,
                                f"Model {obs.spec.model_ref.name} has no serving revision yet", generation))
        return plan
    if is_due(perf, performance, obs.now):
        end = obs.now.replace(microsecond=0)
        name = job_name(obs.monitor, c.rfc3339(end))
        performance.job, performance.job_window_end = name, c.rfc3339(end)
        plan.create_job = (name, quality_request(obs, perf, model_spec, model_status, end))
        if not performance.state:
            conds.append(_condition(None, Reason.MEASURING, f"measuring {perf.metric} with Job {name}", generation))
    return plan


def _take_result(obs: QualityObservation, plan: QualityPlan, perf: Performance, model_spec: ModelSpec,
                 model_status: ModelStatus, result: QualityResult) -> None:
    performance = plan.performance
    assert performance is not None
    was = performance.state
    revisions = judged(perf, result.revisions)
    performance.revisions = revisions
    performance.predictions, performance.labelled, performance.seconds = (
        result.predictions, result.labelled, result.seconds)
    performance.window_start, performance.window_end = result.start, result.end
    for q in revisions:
        for metric, value in q.metrics.items():
            plan.gauges.append((q.revision, metric, "realised", value))
        for metric, value in q.estimates.items():
            plan.gauges.append((q.revision, metric, "estimated", value))
        plan.gauges.append((q.revision, "labelled_rows", "realised", float(q.labelled)))
    stable = model_status.stable_revision
    mine = next((q for q in revisions if q.revision == stable), None)
    if stable is None or mine is None:
        performance.state, performance.revision = None, stable
        plan.conditions.append(_condition(None, Reason.NO_STABLE_REVISION,
                                          "the stable revision logged no predictions in the window", obs.generation))
        return
    performance.state, performance.revision = mine.state, stable
    text = _describe(perf, mine)
    if mine.state == QualityState.NOT_ENOUGH_LABELS:
        plan.conditions.append(_condition(mine.state, Reason.NOT_ENOUGH_LABELS,
                                          f"{text}: fewer than minLabelledRows {perf.min_labelled_rows}", obs.generation))
        return
    if mine.state == QualityState.HEALTHY:
        plan.conditions.append(_condition(mine.state, Reason.AT_OR_ABOVE_FLOOR, f"{text}, floor {perf.floor:g}", obs.generation))
        if was != QualityState.HEALTHY:
            plan.events.append((Reason.QUALITY_MEASURED, f"{text}: at or above the floor {perf.floor:g}", False))
        return
    message = f"{text} is below the floor {perf.floor:g}"
    if model_spec.training is None:
        plan.conditions.append(_condition(mine.state, Reason.BELOW_FLOOR,
                                          message + "; the Model serves spec.source and cannot be retrained", obs.generation))
        return
    decision = retrain_decision(obs, perf, model_spec, performance)
    plan.decision = decision
    if decision.allowed and obs.next_training_job:
        end = c.parse_time(result.end) or obs.now
        champion = next((h.artifact_uri for h in model_status.history if h.revision == stable), None)
        plan.retrain = (obs.next_training_job, production_data(obs, perf, model_spec, end), champion)
        performance.last_triggered_training_job = obs.next_training_job
        performance.triggered_at = [*_recent(performance.triggered_at, obs.now), c.rfc3339(obs.now)]
        message += f"; created TrainingJob {obs.next_training_job} on {perf.retrain_data} data"
        plan.events.append((Reason.RETRAIN_TRIGGERED, f"Created TrainingJob {obs.next_training_job} for Model "
                            f"{obs.spec.model_ref.name} (trigger performance): {text} is below {perf.floor:g}", False))
    elif not decision.allowed:
        message += f"; no retrain: {decision.message}"
    plan.conditions.append(_condition(mine.state, Reason.BELOW_FLOOR, message, obs.generation))
    if was != QualityState.DEGRADED:  # one Event per drop, not one per measurement
        plan.events.append(("PerformanceBelowFloor", message, True))


def _recent(times: Sequence[str], now: datetime) -> list[str]:
    return [t for t in times if (p := c.parse_time(t)) is not None and now - p < timedelta(hours=24)]


def merged_status(status: DriftMonitorStatus, plan: QualityPlan, now: datetime) -> DriftMonitorStatus:
    """The monitor's status with the plan's performance part and condition (other parts untouched)."""
    conditions = c.merge_conditions(status.conditions, plan.conditions, now)
    if plan.performance is None:
        conditions = c.remove_condition(conditions, PERFORMANCE_DEGRADED)
    return status.model_copy(update={"performance": plan.performance, "conditions": conditions})


def gauges_by_revision(plan: QualityPlan) -> Mapping[str, list[tuple[str, str, float]]]:
    out: dict[str, list[tuple[str, str, float]]] = {}
    for revision, metric, source, value in plan.gauges:
        out.setdefault(revision, []).append((metric, source, value))
    return out
