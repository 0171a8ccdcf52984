"""A DriftMonitor's live quality (pure): when to measure, what a measurement says, and when a
drop retrains. Part of the DriftMonitor's plan (``plans.driftmonitor``).

A DriftMonitor with ``performance`` measures on its own schedule with a
short Job of the trainer image (``modelship-quality``): the operator never
reads the store, so the join of the prediction log with the labels runs
there, and the answer comes back in the Job's termination message.
:func:`plan_quality` takes what the controller observed (the monitor, its
Model, the quality Job in flight as read back, the Model's TrainingJobs) and
returns the whole next performance status, the PerformanceDegraded
condition, the children it wants (the quality Job, the TrainingJob a drop
creates), Events, and the gauges to set.

One measurement at a time: a Job named after the end of its window
(``<monitor>-quality-<hash>``) is a desired child from the reconcile that
starts it until the one that reads its answer; from then on it is no longer
desired, so ``k8s.apply.ensure`` deletes it (as it deletes one left behind
by a removed ``performance`` section). Only a fresh measurement can start a
retrain, and only the stable revision's: with at least ``minLabelledRows``
labelled rows, below ``floor``. The retrain goes through the same limits as
drift (the stricter of the monitor's and the Model's cooldown and daily
limit, counting drift and performance retrains alike, none while a
TrainingJob runs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
from modelship.api.model import ModelSpec, ModelStatus, Outcome, champion_uri
from modelship.api.trainingjob import Trigger
from modelship.builders.common import Child, PodEnvironment
from modelship.builders.quality import build_performance_retrain, build_quality_job
from modelship.logic import conditions as c
from modelship.logic.drift import retrain_within_limits
from modelship.logic.retrain import RetrainDecision
from modelship.logic.revision import child_name, short_hash
from modelship.plans.common import Event
from modelship_runtime.groundtruth.layout import groundtruth_uri

Obj = dict[str, Any]

PERFORMANCE_DEGRADED = "PerformanceDegraded"
CONTAINER = "quality"
MAX_REVISIONS = 5
AUTOMATIC = (Trigger.DRIFT, Trigger.PERFORMANCE)  # retrains that share the Model's automatic limits


class Reason:
    BELOW_FLOOR = "BelowFloor"
    AT_OR_ABOVE_FLOOR = "AtOrAboveFloor"
    NOT_ENOUGH_LABELS = "NotEnoughLabels"
    NO_STABLE_REVISION = "NoStableRevision"
    INVALID_MODEL_SPEC = "InvalidModelSpec"
    MEASURING = "Measuring"
    QUALITY_JOB_FAILED = "QualityJobFailed"
    QUALITY_MEASURED = "QualityMeasured"
    PERFORMANCE_BELOW_FLOOR = "PerformanceBelowFloor"


@dataclass(frozen=True)
class ObservedQualityJob:
    """The quality Job in flight as read back: 'Complete' or 'Failed' once it has finished, and
    the newest termination message of its container (read only once it has finished)."""

    name: str
    finished: str | None = None
    message: str = ""


@dataclass(frozen=True)
class QualityObservation:
    """What the DriftMonitor controller observed that live quality depends on."""

    owner: Obj  # the DriftMonitor: owner of the quality Job
    generation: int | None
    spec: DriftMonitorSpec
    status: DriftMonitorStatus
    now: datetime
    model: Obj | None = None  # the Model's body: owner of a retraining TrainingJob
    model_spec: ModelSpec | str | None = None  # a message when the Model's spec is invalid
    model_status: ModelStatus = field(default_factory=ModelStatus)
    job: ObservedQualityJob | None = None  # the Job named by status.performance.job, if it exists
    running_training_job: str | None = None
    automatic_retrains: Sequence[str] = ()  # creation times of the Model's drift and performance TrainingJobs
    next_training_job: str | None = None  # the name a new TrainingJob of the Model would get
    default_store: str = ""
    trainer_image: str = ""
    environment: PodEnvironment = field(default_factory=PodEnvironment)

    @property
    def namespace(self) -> str:
        return str(self.owner["metadata"]["namespace"])

    @property
    def monitor(self) -> str:
        return str(self.owner["metadata"]["name"])


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
    conditions: list[Condition] = field(default_factory=list)
    job: Child | None = None  # the quality Job wanted: the one in flight, or a new one
    retrain: Child | None = None  # the TrainingJob (trigger performance) a drop creates
    decision: RetrainDecision | None = None
    events: list[Event] = field(default_factory=list)
    gauges: list[tuple[str, str, str, float]] = field(default_factory=list)  # (revision, metric, source, value)

    @property
    def children(self) -> list[Child]:
        return [x for x in (self.job, self.retrain) if x is not None]


# --- small steps -----------------------------------------------------------------


def job_name(monitor: str, end: str) -> str:
    """``<monitor>-quality-<hash of the window end>``: one name per measurement."""
    return child_name(monitor, f"quality-{short_hash(end, length=8)}")


def is_due(perf: Performance, status: PerformanceStatus | None, now: datetime) -> bool:
    last = c.parse_time(status.last_evaluated) if status else None
    return last is None or now - last >= parse_duration(perf.interval)


def wanted(spec: DriftMonitorSpec, status: DriftMonitorStatus, now: datetime) -> bool:
    """Whether live quality has anything to do now: a measurement due, a Job in flight to poll,
    or a removed ``performance`` section to clear."""
    perf, old = spec.performance, status.performance
    if perf is None:
        return old is not None
    return old is None or bool(old.job) or is_due(perf, old, now)


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


def store_of(obs: QualityObservation, model_spec: ModelSpec) -> str:
    return groundtruth_uri(model_spec.artifact_store or obs.default_store, obs.namespace, obs.spec.model_ref.name)


def quality_request(obs: QualityObservation, perf: Performance, model_spec: ModelSpec, end: datetime) -> Obj:
    """The QualityRequest (``modelship_runtime.groundtruth.cli``) for a window ending at ``end``."""
    return {
        "groundtruthUri": store_of(obs, model_spec),
        "labels": [s.wire() for s in perf.labels],
        "start": c.rfc3339(end - parse_duration(perf.window)),
        "end": c.rfc3339(end),
        "revisions": served_revisions(obs.model_status),
        "estimate": perf.estimate,
    }


def quality_job(obs: QualityObservation, perf: Performance, model_spec: ModelSpec, name: str, end: datetime) -> Child:
    """The quality Job ``name`` measuring the window ending at ``end`` (created once, never patched:
    a Job's pod template is immutable, and its name says which window it measures)."""
    request = quality_request(obs, perf, model_spec, end)
    job = build_quality_job(name, obs.namespace, obs.spec.model_ref.name, obs.monitor, request,
                            image=obs.trainer_image, owner=obs.owner, environment=obs.environment,
                            resource_spec=perf.resources)
    return Child(job, sync=())


def production_data(obs: QualityObservation, perf: Performance, model_spec: ModelSpec,
                    end: datetime) -> ProductionData | None:
    """What a performance retrain trains on: the window's labelled rows (all revisions' traffic)."""
    if perf.retrain_data == RetrainData.TRAINING:
        return None
    return ProductionData(
        uri=store_of(obs, model_spec),
        labels=list(perf.labels),
        start=c.rfc3339(end - parse_duration(perf.window)),
        end=c.rfc3339(end),
        include_training_data=perf.retrain_data == RetrainData.PRODUCTION_AND_TRAINING,
        min_rows=perf.min_labelled_rows,
    )


def retrain_decision(obs: QualityObservation, perf: Performance, model_spec: ModelSpec,
                     performance: PerformanceStatus) -> RetrainDecision:
    """The drift path's limits: the stricter cooldown and daily limit, drift and performance retrains alike."""
    return retrain_within_limits(
        obs.now, obs.spec.action, model_spec.retrain, triggered=[*obs.status.triggered_at, *performance.triggered_at],
        model_triggered=obs.automatic_retrains, model_limits="the Model's automatic retrains",
        running=obs.running_training_job, enabled=perf.retrain, rolling_out=obs.model_status.canary_revision)


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


def _recent(times: Sequence[str], now: datetime) -> list[str]:
    return [t for t in times if (p := c.parse_time(t)) is not None and now - p < timedelta(hours=24)]


# --- the plan -----------------------------------------------------------------------


def plan_quality(obs: QualityObservation) -> QualityPlan:
    """The whole next performance status and the children it wants, from one observation."""
    perf = obs.spec.performance
    generation = obs.generation
    old = obs.status.performance
    if perf is None:
        # The section was removed: forget the measurement and the condition; a Job in flight is
        # no longer wanted, so it is deleted.
        return QualityPlan(None)
    performance = (old or PerformanceStatus()).model_copy(deep=True)
    plan = QualityPlan(performance)
    name = obs.spec.model_ref.name
    if obs.model is None or obs.model_spec is None or isinstance(obs.model_spec, str):
        performance.job, performance.job_window_end = None, None  # a Job in flight is given up
        reason, message = (Reason.NO_STABLE_REVISION, f"Model {name} does not exist") \
            if obs.model is None or obs.model_spec is None else \
            (Reason.INVALID_MODEL_SPEC, f"Model {name} has an invalid spec: {obs.model_spec}")
        plan.conditions.append(_condition(None, reason, message, generation))
        return plan
    model_spec = obs.model_spec

    # 1. A measurement in flight: keep it while it runs, read it once it has finished (it is then
    #    no longer wanted, and deleted), or forget it when its Job is gone.
    if performance.job:
        seen = obs.job if obs.job is not None and obs.job.name == performance.job else None
        if seen is None:
            performance.job, performance.job_window_end = None, None
        elif seen.finished is None:
            end = c.parse_time(performance.job_window_end) or obs.now.replace(microsecond=0)
            plan.job = quality_job(obs, perf, model_spec, performance.job, end)
            return plan  # still measuring; the condition stays what it was
        else:
            result = parse_result(seen.message, str(perf.metric))
            performance.job, performance.job_window_end = None, None
            performance.last_evaluated = c.rfc3339(obs.now)
            if not result.ok:
                message = f"quality Job failed ({result.reason}): {result.message}"
                plan.conditions.append(_condition(None, Reason.QUALITY_JOB_FAILED, message, generation))
                plan.events.append(Event(Reason.QUALITY_JOB_FAILED, message, warning=True))
                return plan
            _take_result(obs, plan, perf, model_spec, result)
            return plan

    # 2. Time for a new measurement?
    if not obs.model_status.stable_revision:
        plan.conditions.append(_condition(None, Reason.NO_STABLE_REVISION,
                                          f"Model {name} has no serving revision yet", generation))
        return plan
    if is_due(perf, performance, obs.now):
        end = obs.now.replace(microsecond=0)
        new = job_name(obs.monitor, c.rfc3339(end))
        performance.job, performance.job_window_end = new, c.rfc3339(end)
        plan.job = quality_job(obs, perf, model_spec, new, end)
        if not performance.state:
            plan.conditions.append(_condition(None, Reason.MEASURING, f"measuring {perf.metric} with Job {new}",
                                              generation))
    return plan


def _take_result(obs: QualityObservation, plan: QualityPlan, perf: Performance, model_spec: ModelSpec,
                 result: QualityResult) -> None:
    performance = plan.performance
    assert performance is not None
    was = performance.state
    revisions = judged(perf, result.revisions)
    performance.revisions = revisions
    performance.predictions, performance.labelled, performance.seconds = (
        result.predictions, result.labelled, result.seconds)
    performance.window_start, performance.window_end = result.start, result.end
    for q in revisions:
        plan.gauges += [(q.revision, metric, "realised", value) for metric, value in q.metrics.items()]
        plan.gauges += [(q.revision, metric, "estimated", value) for metric, value in q.estimates.items()]
        plan.gauges.append((q.revision, "labelled_rows", "realised", float(q.labelled)))
    stable = obs.model_status.stable_revision
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
        plan.conditions.append(_condition(mine.state, Reason.AT_OR_ABOVE_FLOOR, f"{text}, floor {perf.floor:g}",
                                          obs.generation))
        if was != QualityState.HEALTHY:
            plan.events.append(Event(Reason.QUALITY_MEASURED, f"{text}: at or above the floor {perf.floor:g}"))
        return
    message = f"{text} is below the floor {perf.floor:g}"
    if model_spec.training is None:
        plan.conditions.append(_condition(mine.state, Reason.BELOW_FLOOR,
                                          message + "; the Model serves spec.source and cannot be retrained",
                                          obs.generation))
        return
    decision = retrain_decision(obs, perf, model_spec, performance)
    plan.decision = decision
    if decision.allowed and obs.next_training_job and obs.model is not None:
        tj = obs.next_training_job
        end = c.parse_time(result.end) or obs.now
        plan.retrain = Child(build_performance_retrain(
            obs.model, model_spec, tj, default_store=obs.default_store,
            production=production_data(obs, perf, model_spec, end), champion_uri=champion_uri(obs.model_status)),
            sync=())
        performance.last_triggered_training_job = tj
        performance.triggered_at = [*_recent(performance.triggered_at, obs.now), c.rfc3339(obs.now)]
        message += f"; created TrainingJob {tj} on {perf.retrain_data} data"
        plan.events.append(Event(c.Reason.RETRAIN_TRIGGERED, f"Created TrainingJob {tj} for Model "
                                 f"{obs.spec.model_ref.name} (trigger performance): {text} is below {perf.floor:g}"))
    elif not decision.allowed:
        message += f"; no retrain: {decision.message}"
    plan.conditions.append(_condition(mine.state, Reason.BELOW_FLOOR, message, obs.generation))
    if was != QualityState.DEGRADED:  # one Event per drop, not one per measurement
        plan.events.append(Event(Reason.PERFORMANCE_BELOW_FLOOR, message, warning=True))


def merged_status(status: DriftMonitorStatus, plan: QualityPlan, now: datetime) -> DriftMonitorStatus:
    """``status`` with the plan's performance part and condition (other parts untouched)."""
    conditions = c.merge_conditions(status.conditions, plan.conditions, now)
    if plan.performance is None:
        conditions = c.remove_condition(conditions, PERFORMANCE_DEGRADED)
    return status.model_copy(update={"performance": plan.performance, "conditions": conditions})
