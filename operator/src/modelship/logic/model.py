"""A Model's next step, decided from spec + status + what is observed (pure).

``plan(observation)`` is the whole Model controller minus the I/O: which
TrainingJob to create (initial, spec change, manual annotation), whether the
newest trained version may reach traffic (gates), which revision is stable
and which is the canary, how many replicas each gets (``logic.canary``),
what is recorded in history, and the complete new status. The controller
observes, calls ``plan`` and applies it; applying the same plan twice
changes nothing, so a steady Model writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelship.api.model import HistoryEntry, ModelSpec, ModelStatus, Outcome, Phase, TrafficRouting
from modelship.api.trainingjob import TrainingJobStatus, TrainingPhase, Trigger
from modelship.logic.analysis import Verdict
from modelship.logic.canary import (
    ActionKind,
    DeploymentState,
    RolloutAction,
    RolloutState,
    effective_weight,
    next_rollout_action,
)
from modelship.logic.conditions import (
    PROGRESSING,
    READY,
    TRAINED,
    UNKNOWN,
    Reason,
    condition,
    merge_conditions,
    parse_time,
    rfc3339,
)
from modelship.logic.gates import TrainingResult, check_gates
from modelship.logic.revision import (
    placement,
    revision_name,
    serving_template,
    short_hash,
    spec_hash,
    training_job_name,
    training_job_number,
)

RETRAIN_ANNOTATION = "modelship.io/retrain"


@dataclass(frozen=True)
class ObservedTrainingJob:
    name: str
    number: int
    trigger: str
    status: TrainingJobStatus


@dataclass(frozen=True)
class Observation:
    namespace: str
    name: str
    generation: int | None
    spec: ModelSpec
    status: ModelStatus
    serving_image: str
    now: datetime
    retrain_token: str | None = None
    training_jobs: tuple[ObservedTrainingJob, ...] = ()
    revisions: dict[str, DeploymentState] = field(default_factory=dict)
    verdict: Verdict | None = None
    history_limit: int = 10


@dataclass(frozen=True)
class Artifact:
    """What a revision serves (recorded in history, read back to build its Deployment)."""

    revision: str
    uri: str
    sha256: str | None


@dataclass
class Plan:
    status: ModelStatus
    create_training_job: tuple[str, str] | None = None  # (name, trigger)
    replicas: dict[str, int] = field(default_factory=dict)  # revision → replicas, for revisions kept
    artifacts: dict[str, Artifact] = field(default_factory=dict)  # revision → what it serves
    delete: list[str] = field(default_factory=list)  # revisions to remove
    events: list[tuple[str, str, bool]] = field(default_factory=list)  # (reason, message, warning)
    rollout_events: list[str] = field(default_factory=list)  # started, promoted, rolled_back
    take_baseline: bool = False  # record the canary's counters now (a step started)
    action: RolloutAction | None = None


def template_of(spec: ModelSpec, default_image: str) -> dict[str, Any]:
    serving = spec.serving
    resources = serving.resources.wire() if serving.resources else None
    return serving_template(serving.image or default_image, resources, serving.max_batch_size,
                            serving.max_batch_delay_ms,
                            extra=placement(serving))  # issue 23: a spread change is a new revision


def _entry(history: list[HistoryEntry], **match: Any) -> HistoryEntry | None:
    for h in history:
        if all(getattr(h, k) == v for k, v in match.items()):
            return h
    return None


def _update(history: list[HistoryEntry], old: HistoryEntry, **changes: Any) -> list[HistoryEntry]:
    new = old.model_copy(update=changes)
    return [new if h is old else h for h in history]


def _trim(history: list[HistoryEntry], keep: set[str | None], limit: int) -> list[HistoryEntry]:
    """Newest first, at most ``limit``, but never the entries of the revisions in use."""
    out = []
    for i, h in enumerate(history):
        if i < limit or (h.revision is not None and h.revision in keep):
            out.append(h)
    return out


def artifact_for(history: list[HistoryEntry], revision: str | None) -> Artifact | None:
    if revision is None:
        return None
    h = _entry(history, revision=revision)
    if h is None or h.artifact_uri is None:
        return None
    return Artifact(revision, h.artifact_uri, h.artifact_sha256)


def plan(obs: Observation) -> Plan:
    spec, now, name = obs.spec, obs.now, obs.name
    st = obs.status
    extra: dict[str, Any] = dict(st.extra or {})
    history = list(st.history)
    events: list[tuple[str, str, bool]] = []
    out = Plan(status=st)
    conditions = list(st.conditions)
    gen = obs.generation
    template = template_of(spec, obs.serving_image)
    stamp = rfc3339(now)

    # --- 1. Training: which TrainingJob is current, and should a new one start?
    tjs = sorted(obs.training_jobs, key=lambda t: t.number)
    created = max([t.number for t in tjs] + [st.training_jobs_created])
    current_name = st.current_training_job
    newest = tjs[-1] if tjs else None
    current_number = training_job_number(name, current_name) if current_name else None
    if newest is not None and (current_number is None or newest.number > current_number):
        # A TrainingJob made elsewhere (the DriftMonitor) or one whose creation was not recorded.
        current_name = newest.name
        if _entry(history, training_job=newest.name) is None:
            history.insert(0, HistoryEntry(training_job=newest.name, trigger=newest.trigger,
                                           outcome=Outcome.TRAINING, created_at=stamp))
    candidate: Artifact | None = None
    candidate_entry: HistoryEntry | None = None
    trained = condition(TRAINED, True, Reason.SOURCE_GIVEN, "Serving an existing artifact", generation=gen)
    training_in_flight = False

    if spec.training is not None:
        wanted_hash = spec_hash(spec.training)
        trigger: str | None = None
        if created == 0:
            trigger = Trigger.INITIAL
        elif st.spec_hash is not None and st.spec_hash != wanted_hash:
            trigger = Trigger.SPEC_CHANGE
        elif obs.retrain_token and obs.retrain_token != extra.get("retrainToken"):
            trigger = Trigger.MANUAL
        if trigger is not None:
            created += 1
            current_name = training_job_name(name, created)
            out.create_training_job = (current_name, str(trigger))
            history.insert(0, HistoryEntry(training_job=current_name, trigger=str(trigger),
                                           outcome=Outcome.TRAINING, created_at=stamp))
            events.append(("TrainingStarted", f"Created TrainingJob {current_name} (trigger {trigger})", False))
        extra["retrainToken"] = obs.retrain_token
        st = st.model_copy(update={"spec_hash": wanted_hash})

        current = next((t for t in tjs if t.name == current_name), None)
        entry = _entry(history, training_job=current_name) if current_name else None
        if current is None or current.status.phase in (None, TrainingPhase.PENDING, TrainingPhase.RUNNING):
            training_in_flight = True
            trained = condition(TRAINED, UNKNOWN, Reason.TRAINING,
                                f"TrainingJob {current_name} is running", generation=gen)
        elif current.status.phase == TrainingPhase.FAILED:
            reason = current.status.reason or Reason.TRAINING_FAILED
            message = f"TrainingJob {current.name} failed: {current.status.message or reason}"
            trained = condition(TRAINED, False, reason, message, generation=gen)
            if entry is not None and entry.outcome == Outcome.TRAINING:
                history = _update(history, entry, outcome=Outcome.REFUSED, reason=message,
                                  metrics=dict(current.status.metrics))
                events.append((reason, message, True))
        else:  # Succeeded: the Model's own gates decide
            decision = check_gates(spec.gates, TrainingResult.from_status(current.status))
            artifact = current.status.artifact
            if not decision.allowed or artifact is None:
                message = f"TrainingJob {current.name} was refused: {decision.message or 'no artifact'}"
                trained = condition(TRAINED, False, Reason.GATE_FAILED, message, generation=gen)
                if entry is not None and entry.outcome == Outcome.TRAINING:
                    history = _update(history, entry, outcome=Outcome.REFUSED, reason=message,
                                      metrics=dict(current.status.metrics), artifact_uri=artifact and artifact.uri,
                                      artifact_sha256=artifact and artifact.sha256)
                    events.append((Reason.GATE_FAILED, message, True))
            else:
                revision = revision_name(name, artifact.sha256, template)
                candidate = Artifact(revision, artifact.uri, artifact.sha256)
                candidate_entry = entry
                score = f"{current.status.metric}={current.status.score:.4g}" if current.status.score is not None else ""
                trained = condition(TRAINED, True, Reason.GATES_PASSED,
                                    f"TrainingJob {current.name} passed its gates {score}".strip(), generation=gen)
                if entry is not None and entry.outcome == Outcome.TRAINING:
                    history = _update(history, entry, metrics=dict(current.status.metrics),
                                      artifact_uri=artifact.uri, artifact_sha256=artifact.sha256)
                    candidate_entry = _entry(history, training_job=current.name)
        st = st.model_copy(update={"training_jobs_created": created, "current_training_job": current_name})
    elif spec.source is not None:
        digest = spec.source.sha256 or short_hash(spec.source.uri, length=64)
        revision = revision_name(name, digest, template)
        candidate = Artifact(revision, spec.source.uri, spec.source.sha256)

    # --- 2. Does the candidate start a rollout?
    stable, canary = st.stable_revision, st.canary_revision
    step, step_started = st.canary_step, parse_time(st.step_started_at)
    keep_revisions = {r for r in (stable, canary) if r}
    if candidate is not None and candidate.revision not in keep_revisions:
        earlier = _entry(history, revision=candidate.revision)
        if earlier is not None and earlier.outcome == Outcome.ROLLED_BACK:
            pass  # rolled back once: not retried until a new version or spec change
        else:
            if canary is not None:
                old = _entry(history, revision=canary)
                if old is not None:
                    history = _update(history, old, outcome=Outcome.SUPERSEDED,
                                      reason=f"superseded by {candidate.revision}")
                events.append(("Superseded", f"Canary {canary} was superseded by {candidate.revision}", False))
            canary, step, step_started = candidate.revision, 0, None
            extra["rolloutStartedAt"] = stamp
            extra.pop("baseline", None)
            fields: dict[str, Any] = {"revision": candidate.revision, "outcome": Outcome.PROGRESSING,
                      "artifact_uri": candidate.uri, "artifact_sha256": candidate.sha256}
            if candidate_entry is not None:
                history = _update(history, candidate_entry, **fields)
            elif earlier is not None:
                history = _update(history, earlier, **fields)
            else:
                trigger_name = Trigger.INITIAL if stable is None else Trigger.SPEC_CHANGE
                history.insert(0, HistoryEntry(trigger=str(trigger_name), created_at=stamp, **fields))
            what = "Deploying" if stable is None else "Started canary of"
            events.append(("RolloutStarted", f"{what} {candidate.revision} (artifact {candidate.uri})", False))
            out.rollout_events.append("started")

    # --- 3. The rollout step.
    total = spec.serving.replicas
    if spec.serving.autoscaling is not None:
        stable_state = obs.revisions.get(stable) if stable else None
        observed = stable_state.replicas if stable_state is not None else 0
        total = max(spec.serving.autoscaling.min_replicas, min(observed, spec.serving.autoscaling.max_replicas))
    state = RolloutState(stable, canary, step, step_started, parse_time(extra.get("rolloutStartedAt")))
    action = next_rollout_action(spec.rollout, total, state, obs.revisions.get(canary) if canary else None,
                                 obs.revisions.get(stable) if stable else None, obs.verdict, now)
    out.action = action
    replicas: dict[str, int] = {}
    if stable:
        replicas[stable] = action.stable_replicas
    if canary:
        replicas[canary] = action.canary_replicas
    progressing = condition(PROGRESSING, False, Reason.STABLE, "No rollout in progress", generation=gen)

    if action.kind == ActionKind.PROMOTE and canary is not None:
        entry = _entry(history, revision=canary)
        if entry is not None:
            history = _update(history, entry, outcome=Outcome.PROMOTED, promoted_at=stamp, reason=None)
        if stable is not None and stable != canary:
            prev = _entry(history, revision=stable)
            if prev is not None and prev.outcome == Outcome.PROMOTED:
                history = _update(history, prev, outcome=Outcome.SUPERSEDED, reason=f"replaced by {canary}")
        events.append((Reason.PROMOTED, action.message, False))
        out.rollout_events.append("promoted")
        stable, canary, step, step_started = canary, None, None, None
        replicas = {stable: total}
        extra.pop("baseline", None)
        extra.pop("rolloutStartedAt", None)
    elif action.kind == ActionKind.ROLLBACK and canary is not None:
        entry = _entry(history, revision=canary)
        if entry is not None:
            history = _update(history, entry, outcome=Outcome.ROLLED_BACK, rolled_back_at=stamp,
                              reason=action.message)
        events.append((Reason.ROLLED_BACK, f"Rolled back {canary}: {action.message}", True))
        out.rollout_events.append("rolled_back")
        progressing = condition(PROGRESSING, False, action.reason, f"Rolled back {canary}: {action.message}",
                                generation=gen)
        canary, step, step_started = None, None, None
        replicas = {stable: total} if stable else {}
        extra.pop("baseline", None)
        extra.pop("rolloutStartedAt", None)
    elif action.kind == ActionKind.START_STEP:
        step_started = action.step_started_at
        out.take_baseline = True
    elif action.kind == ActionKind.ADVANCE:
        step, step_started = action.step, None
        extra.pop("baseline", None)
        events.append((Reason.STEP_PASSED, action.message, False))
    if canary is not None:
        progressing = condition(PROGRESSING, True, action.reason, action.message or f"Rolling out {canary}",
                                generation=gen)

    out.replicas = replicas
    out.delete = sorted(r for r in obs.revisions if r not in replicas)
    for revision in replicas:
        found = artifact_for(history, revision)
        if found is not None:
            out.artifacts[revision] = found

    # --- 4. Status.
    stable_state = obs.revisions.get(stable) if stable else None
    canary_state = obs.revisions.get(canary) if canary else None
    available = stable is not None and stable_state is not None and (
        stable_state.available >= 1 or replicas.get(stable, 0) == 0)
    if stable is None:
        ready = condition(READY, False, trained.reason if not _is_true(trained) else Reason.DEPLOYING,
                          trained.message if not _is_true(trained) else "The first version is being deployed",
                          generation=gen)
    elif available:
        ready = condition(READY, True, Reason.AVAILABLE, f"{stable} serves", generation=gen)
    else:
        ready = condition(READY, False, Reason.UNAVAILABLE, f"{stable} has no available pods", generation=gen)
    if stable is None and canary is None:
        phase = Phase.TRAINING if training_in_flight else Phase.FAILED
    elif canary is not None:
        phase = Phase.PROGRESSING
    elif not available:
        phase = Phase.DEGRADED
    elif training_in_flight:
        phase = Phase.TRAINING
    else:
        phase = Phase.SERVING
    weight: int | None = None
    if canary is not None:
        if stable is None:
            weight = 100
        elif spec.rollout.traffic_routing == TrafficRouting.GATEWAY_API:
            weight = action.route_weight  # exact: what the HTTPRoute carries now
        else:
            weight = effective_weight(canary_state.ready if canary_state else 0,
                                      stable_state.ready if stable_state else 0)
    conditions = merge_conditions(conditions, [trained, progressing, ready], now)
    out.status = st.model_copy(update={
        "observed_generation": gen,
        "phase": phase,
        "stable_revision": stable,
        "canary_revision": canary,
        "canary_weight": weight,
        "canary_step": step if canary is not None else None,
        "step_started_at": rfc3339(step_started) if step_started and canary is not None else None,
        "url": f"http://{name}.{obs.namespace}.svc.cluster.local" if stable else None,
        "history": _trim(history, {stable, canary}, obs.history_limit),
        "conditions": conditions,
        "extra": {k: v for k, v in extra.items() if v is not None} or None,
    })
    out.events = events
    return out


def _is_true(c: Any) -> bool:
    return str(c.status) == "True"



def at_rest(body: dict[str, Any]) -> bool:
    """Whether a Model needs no clock: nothing in it waits for time to pass.

    True when its last reconcile saw the current spec and left it Serving
    (or Failed) with no canary: then only events can change what it should
    do (its spec, its TrainingJobs, its Deployments), and they trigger a
    reconcile themselves. A canary (pauses, analysis windows, deadlines) or a
    spec not yet acted on needs the timer.
    """
    # Read straight from the dict: this runs on every timer tick of every Model, and
    # validating the whole status (history included) there would be the fleet's main cost.
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    generation = status.get("observedGeneration")
    if generation is None or generation != meta.get("generation"):
        return False
    if status.get("canaryRevision") is not None:
        return False
    return status.get("phase") in (Phase.SERVING.value, Phase.FAILED.value)


def pod_image_id(pods: list[dict[str, Any]]) -> str | None:
    """The image a revision's pods ran, as the kubelet reports it (``imageID``: a digest),
    from the first running container that has one."""
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            image_id = status.get("imageID")
            if image_id and (status.get("state") or {}).get("running") is not None:
                return str(image_id)
    return None


def revisions_without_image(status: ModelStatus, revisions: dict[str, int]) -> list[str]:
    """Revisions kept now whose history entry does not yet say which image they ran."""
    return [h.revision for h in status.history
            if h.revision is not None and h.revision in revisions and h.image is None]


def with_images(status: ModelStatus, images: dict[str, str]) -> ModelStatus:
    """The status with ``images`` (revision → imageID) recorded in the history entries lacking one."""
    if not images:
        return status
    history = [h.model_copy(update={"image": images[h.revision]})
               if h.revision in images and h.image is None else h for h in status.history]
    return status.model_copy(update={"history": history})
