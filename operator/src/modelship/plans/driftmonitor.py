"""A DriftMonitor's plan: live counts + the stable revision's reference -> scores, state, status,
and at most one retraining TrainingJob for its Model (pure); with ``performance``, live quality
too (``plans.quality``: the quality Job as a child, the performance status, a retrain on a drop).

The window (source ``pods``) is kept in status: each evaluation adds the pods'
cumulative counts as a snapshot, counts the window from the newest snapshot
at least ``window.duration`` old, and keeps a few snapshots spaced over the
window, so an operator restart or a new leader carries on with the same
window. With ``source: prometheus`` Prometheus has the history and status
keeps none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from pydantic import ValidationError

from modelship.api.common import parse_duration
from modelship.api.driftmonitor import (
    CountsSnapshot,
    DriftMonitorSpec,
    DriftMonitorStatus,
    DriftState,
    SourceType,
    WindowState,
)
from modelship.api.model import ModelSpec, ModelStatus, champion_uri
from modelship.api.trainingjob import TrainingPhase, Trigger
from modelship.builders.common import Child, PodEnvironment
from modelship.builders.model_training import build_training_job_resource
from modelship.builders.monitoring import build_prometheus_rule
from modelship.logic.conditions import Reason, parse_time, rfc3339
from modelship.logic.drift import (
    DriftEvaluation,
    drift_retrain_decision,
    drift_status,
    evaluate_drift,
    reference_bins,
    state_changed,
    unknown_features,
)
from modelship.logic.prometheus import PrometheusError, window_counts_from_vector
from modelship.logic.retrain import RetrainDecision
from modelship.logic.revision import next_training_job
from modelship.logic.scrape import drift_counts, parse_samples
from modelship.plans import quality as q
from modelship.plans.common import Event, built_problem
from modelship_runtime.artifacts.metadata import DriftReference, Metadata
from modelship_runtime.drift.window import Snapshot, pick_baseline, prune, window_counts

Obj = dict[str, Any]
Counts = dict[str, np.ndarray]
MAX_SNAPSHOTS = 4  # spaced over the window: the window counted is at most a quarter longer than asked


@dataclass(frozen=True)
class ObservedJob:
    name: str
    phase: str | None
    trigger: str | None
    created: str | None


@dataclass(frozen=True)
class ObservedModel:
    body: Obj  # owner of a retraining TrainingJob
    spec: ModelSpec | str
    status: ModelStatus
    training_jobs: tuple[ObservedJob, ...] = ()

    @property
    def running(self) -> str | None:
        """The TrainingJob in flight: no automatic retrain starts while one runs."""
        done = (TrainingPhase.SUCCEEDED, TrainingPhase.FAILED)
        return next((j.name for j in self.training_jobs if j.phase not in done), None)

    @property
    def automatic_retrains(self) -> list[str]:
        """When its drift and performance TrainingJobs were made: they share the Model's limits."""
        return [j.created for j in self.training_jobs if j.trigger in q.AUTOMATIC and j.created]

    @property
    def next_training_job(self) -> str:
        return next_training_job(self.body["metadata"]["name"], [j.name for j in self.training_jobs],
                                 self.status.training_jobs_created)


@dataclass(frozen=True)
class Observation:
    owner: Obj
    generation: int | None
    spec: DriftMonitorSpec | str
    status: DriftMonitorStatus
    now: datetime
    artifact_store: str
    model: ObservedModel | None = None
    problem: tuple[str, str] | None = None  # (reason, message): what kept observe from reading the counts
    reference: Metadata | None = None
    texts: Mapping[str, str] = field(default_factory=dict)  # source pods: pod -> /metrics text
    vector: Any = None  # source prometheus: the query's answer
    alert_firing: bool = False
    rule_api: bool = False  # the cluster serves PrometheusRules
    drift_due: bool = True  # False: only live quality has something to do (nothing of drift was read)
    quality_job: q.ObservedQualityJob | None = None  # the quality Job named in status, as read back
    trainer_image: str = ""  # the quality Job's image
    environment: PodEnvironment = field(default_factory=PodEnvironment)  # how the quality Job reaches the store


@dataclass
class Plan:
    status: DriftMonitorStatus
    children: list[Child] | None  # None: leave them (invalid spec)
    events: list[Event] = field(default_factory=list)
    model_drift_state: str | None = None  # set on the Model's status when it differs
    evaluated: bool = False
    quality_gauges: list[tuple[str, str, str, float]] = field(default_factory=list)  # (revision, metric, source, value)


def prometheus_rule(owner: Obj, spec: DriftMonitorSpec) -> Obj:
    """The PrometheusRule kept for a DriftMonitor (its alert fires after one ``interval``)."""
    meta = owner["metadata"]
    return build_prometheus_rule(meta["name"], meta["namespace"], spec.model_ref.name, threshold=spec.threshold,
                                 for_=spec.interval, owner=owner)


def due(spec: DriftMonitorSpec, status: DriftMonitorStatus, generation: int | None, now: datetime) -> bool:
    """Whether an evaluation is due: never evaluated, a new spec, or ``interval`` has passed."""
    last = parse_time(status.last_evaluated)
    if last is None or status.observed_generation != generation:
        return True
    return (now - last) >= parse_duration(spec.interval)


def live_counts(texts: Mapping[str, str], reference: DriftReference) -> dict[str, Counts]:
    """feature -> pod -> cumulative counts per reference bin (unreadable pods are left out)."""
    refs = reference_bins(reference)
    out: dict[str, Counts] = {}
    for pod, text in sorted(texts.items()):
        try:
            per_feature = drift_counts(parse_samples(text), refs)
        except ValueError:
            continue
        for feature, counts in per_feature.items():
            out.setdefault(feature, {})[pod] = counts
    return out


def thin(snapshots: list[tuple[datetime, Snapshot]], spacing: timedelta) -> list[tuple[datetime, Snapshot]]:
    """Keep the oldest, the newest, and between them none closer than ``spacing`` to the last kept."""
    out: list[tuple[datetime, Snapshot]] = []
    for i, snap in enumerate(snapshots):
        if not out or i == len(snapshots) - 1 or snap[0] - out[-1][0] >= spacing:
            out.append(snap)
    return out


def windowed(state: WindowState | None, revision: str, current: dict[str, Counts], now: datetime,
             window: timedelta) -> tuple[Counts, WindowState]:
    """Counts over the window per feature, and the window state to keep."""
    flat = {f"{f}/{pod}": [float(x) for x in c] for f, pods in current.items() for pod, c in pods.items()}
    kept = [(parse_time(s.taken_at) or now, s.counts) for s in state.snapshots] \
        if state is not None and state.revision == revision else []
    base = pick_baseline(kept, now, window)
    snapshots = thin(prune([*kept, (now, flat)], now, window), window / MAX_SNAPSHOTS)
    new_state = WindowState(revision=revision, snapshots=[
        CountsSnapshot(taken_at=rfc3339(t), counts={k: np.asarray(v, dtype=float).tolist() for k, v in c.items()}) for t, c in snapshots])
    old = base[1] if base is not None else {}
    out = {}
    for feature, pods in current.items():
        before = {k.rsplit("/", 1)[1]: v for k, v in old.items() if k.rsplit("/", 1)[0] == feature}
        out[feature] = window_counts(before if base is not None else None, pods).counts
    return out, new_state


def counts(obs: Observation, spec: DriftMonitorSpec, revision: str,
           reference: DriftReference) -> tuple[Counts, WindowState | None] | tuple[str, str]:
    """The window's counts from the source, or the (reason, message) that stopped it."""
    if spec.source.type == SourceType.PROMETHEUS:
        try:
            return window_counts_from_vector(obs.vector, reference_bins(reference)), None
        except PrometheusError as exc:
            return Reason.QUERY_FAILED, f"the answer from Prometheus was unusable: {exc}"
    if not obs.texts:
        return Reason.SCRAPE_FAILED, f"no pod of {revision} answered on /metrics"
    return windowed(obs.status.window, revision, live_counts(obs.texts, reference), obs.now,
                    parse_duration(spec.window.duration))


def retrain(obs: Observation, spec: DriftMonitorSpec, evaluation: DriftEvaluation,
            ) -> tuple[RetrainDecision | None, Child | None]:
    """At most one TrainingJob (trigger drift) for the Model, within the monitor's and the Model's limits."""
    model = obs.model
    wants = evaluation.state == DriftState.DRIFT or (spec.action.require_alert and obs.alert_firing)
    if not (wants and spec.action.retrain) or model is None or isinstance(model.spec, str) \
            or model.spec.training is None:
        return None, None
    decision = drift_retrain_decision(spec, model.spec.retrain, obs.status, obs.now, running=model.running,
                                      alert_firing=obs.alert_firing, model_triggered=model.automatic_retrains,
                                      rolling_out=model.status.canary_revision)
    if not decision.allowed:
        return decision, None
    job = build_training_job_resource(model.body, model.spec, model.next_training_job, Trigger.DRIFT,
                                      default_store=obs.artifact_store, champion_uri=champion_uri(model.status))
    return decision, Child(job, sync=())


def failed(obs: Observation, spec: DriftMonitorSpec, reason: str, message: str, children: list[Child]) -> Plan:
    new = drift_status(spec, obs.status, None, obs.now, generation=obs.generation, reference_revision=None,
                       problem=(reason, message))
    events = [Event(reason, message, warning=True)] if new.conditions != obs.status.conditions else []
    return Plan(status=new, children=children, events=events)


def refused(obs: Observation, message: str) -> Plan:
    """The API server refused a child (``message`` names it and why): Ready=False, InvalidSpec, with
    one Event; nothing of this evaluation is kept, and the next one (when due) tries again."""
    assert not isinstance(obs.spec, str)  # an invalid spec's plan has no children to refuse
    return replace(failed(obs, obs.spec, Reason.INVALID_SPEC, message, []), children=None)


def quality_observation(obs: Observation, spec: DriftMonitorSpec) -> q.QualityObservation:
    """What live quality reads of the observation: the Model's facts, the quality Job in flight."""
    model = obs.model
    facts: dict[str, Any] = {} if model is None else {
        "model": model.body, "model_spec": model.spec, "model_status": model.status,
        "running_training_job": model.running, "automatic_retrains": model.automatic_retrains,
        "next_training_job": model.next_training_job}
    return q.QualityObservation(owner=obs.owner, generation=obs.generation, spec=spec, status=obs.status, now=obs.now,
                                job=obs.quality_job, default_store=obs.artifact_store, trainer_image=obs.trainer_image,
                                environment=obs.environment, **facts)


def with_retrain(obs: Observation, child: Child | None) -> Observation:
    """The observation as the drift part sees it after live quality created a TrainingJob: one is running."""
    if child is None or obs.model is None:
        return obs
    meta = child.obj["metadata"]
    created = ObservedJob(meta["name"], None, str(child.obj["spec"].get("trigger")), rfc3339(obs.now))
    return replace(obs, model=replace(obs.model, training_jobs=(*obs.model.training_jobs, created)))


def plan(obs: Observation) -> Plan:
    spec = obs.spec
    if isinstance(spec, str):
        placeholder = DriftMonitorSpec.model_validate({"modelRef": {"name": "unknown"}})
        return Plan(status=drift_status(placeholder, obs.status, None, obs.now, generation=obs.generation,
                                        reference_revision=None, problem=(Reason.INVALID_SPEC, spec)), children=None)
    children = [Child(prometheus_rule(obs.owner, spec))] if obs.rule_api else []
    try:
        quality = q.plan_quality(quality_observation(obs, spec))
        drift = plan_drift(with_retrain(obs, quality.retrain), spec, children) if obs.drift_due \
            else Plan(status=obs.status, children=children)
    except ValidationError as exc:  # e.g. the Model's retraining TrainingJob: a condition, not a failing reconcile
        return failed(obs, spec, Reason.INVALID_SPEC, f"Model {spec.model_ref.name}: {built_problem(exc)}", children)
    assert drift.children is not None
    return replace(drift, status=q.merged_status(drift.status, quality, obs.now),
                   children=[*drift.children, *quality.children], events=[*drift.events, *quality.events],
                   quality_gauges=quality.gauges)


def plan_drift(obs: Observation, spec: DriftMonitorSpec, children: list[Child]) -> Plan:
    """The drift part: the window's counts scored against the reference, and a retrain on Drift."""
    if obs.problem is not None or obs.model is None or obs.reference is None:
        reason, message = obs.problem or (Reason.NO_REFERENCE, "no reference was read")
        return failed(obs, spec, reason, message, children)
    unknown = unknown_features(spec, obs.reference.reference)
    if unknown:
        return failed(obs, spec, Reason.INVALID_SPEC, f"spec.features names {', '.join(unknown)}, which the model "
                      f"does not have; it has {', '.join(obs.reference.reference.features)}", children)
    revision = obs.model.status.stable_revision or ""
    got = counts(obs, spec, revision, obs.reference.reference)
    if isinstance(got[0], str):
        return failed(obs, spec, got[0], str(got[1]), children)
    live, window = got
    assert isinstance(live, dict)
    evaluation = evaluate_drift(spec, obs.reference.reference, live)
    decision, job = retrain(obs, spec, evaluation)
    triggered = job.obj["metadata"]["name"] if job is not None else None
    new = drift_status(spec, obs.status, evaluation, obs.now, generation=obs.generation,
                       reference_revision=revision, triggered_job=triggered, retrain=decision)
    new = new.model_copy(update={"window": window})
    events = []
    if state_changed(obs.status, new):
        events.append(Event(f"Drift{new.state}", evaluation.message, warning=new.state == DriftState.DRIFT))
    if triggered:
        events.append(Event(Reason.RETRAIN_TRIGGERED, f"Created TrainingJob {triggered} for Model "
                            f"{spec.model_ref.name} (trigger drift): {evaluation.message}"))
    drift_state = new.state if new.state is not None and obs.model.status.drift_state != new.state else None
    return Plan(status=new, children=[*children, *([job] if job else [])], events=events,
                model_drift_state=drift_state, evaluated=True)
