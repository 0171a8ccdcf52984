"""The Model plan's first steps: which TrainingJob is current, whether a new one starts, and
whether the version it made passes the Model's gates."""

from __future__ import annotations

from dataclasses import replace

from modelship.api.model import HistoryEntry, Outcome
from modelship.api.trainingjob import TrainingPhase, Trigger
from modelship.logic.conditions import TRAINED, UNKNOWN, Reason, condition, rfc3339
from modelship.logic.gates import TrainingResult, check_gates
from modelship.logic.revision import spec_hash, training_job_name, training_job_number
from modelship.plans.model import history as h
from modelship.plans.model.observation import RETRAIN_ANNOTATION, Artifact, Draft, Observation


def adopt(obs: Observation, d: Draft) -> Draft:
    """The newest TrainingJob of the Model becomes the current one, even one made elsewhere
    (a DriftMonitor's) or one whose creation the status missed; the count never goes down."""
    jobs = sorted(obs.training_jobs, key=lambda t: t.number)
    created = max([t.number for t in jobs] + [d.status.training_jobs_created])
    current = d.status.current_training_job
    history = d.history
    newest = jobs[-1] if jobs else None
    number = training_job_number(obs.name, current) if current else None
    if newest is not None and (number is None or newest.number > number):
        current = newest.name
        if h.find(history, training_job=newest.name) is None:
            history = h.push(history, HistoryEntry(training_job=newest.name, trigger=newest.trigger,
                                                   outcome=Outcome.TRAINING, created_at=rfc3339(obs.now)))
    status = d.status.model_copy(update={"training_jobs_created": created, "current_training_job": current})
    return replace(d, status=status, history=history)


def retrain_trigger(obs: Observation, d: Draft) -> Trigger | None:
    """Why a new TrainingJob starts now, if one does."""
    training = d.spec.training
    if training is None:
        return None
    if d.status.training_jobs_created == 0:
        return Trigger.INITIAL
    if d.status.spec_hash is not None and d.status.spec_hash != spec_hash(training):
        return Trigger.SPEC_CHANGE
    request = obs.annotations.get(RETRAIN_ANNOTATION)
    if request and request != d.status.retrain_request:
        return Trigger.MANUAL
    return None


def retrain(obs: Observation, d: Draft) -> Draft:
    """Start the next TrainingJob when ``retrain_trigger`` says so; remember what was acted on."""
    if d.spec.training is None:
        return d
    trigger = retrain_trigger(obs, d)
    status = d.status.model_copy(update={"spec_hash": spec_hash(d.spec.training),
                                         "retrain_request": obs.annotations.get(RETRAIN_ANNOTATION)})
    if trigger is None:
        return replace(d, status=status)
    n = status.training_jobs_created + 1
    name = training_job_name(obs.name, n)
    status = status.model_copy(update={"training_jobs_created": n, "current_training_job": name})
    entry = HistoryEntry(training_job=name, trigger=str(trigger), outcome=Outcome.TRAINING,
                         created_at=rfc3339(obs.now))
    return replace(d, status=status, history=h.push(d.history, entry), create=(name, str(trigger)),
                   events=d.event("TrainingStarted", f"Created TrainingJob {name} (trigger {trigger})"))


def training(obs: Observation, d: Draft) -> Draft:
    """Where the current TrainingJob stands: running (Trained Unknown) or failed (Trained False,
    its version Refused). A Model serving ``spec.source`` has nothing to train."""
    gen = obs.generation
    if d.spec.training is None:
        return replace(d, trained=condition(TRAINED, True, Reason.SOURCE_GIVEN, "Serving an existing artifact",
                                            generation=gen))
    name = d.status.current_training_job
    current = next((t for t in obs.training_jobs if t.name == name), None)
    if current is None or current.status.phase in (None, TrainingPhase.PENDING, TrainingPhase.RUNNING):
        # The TrainingJob's own reason and message when it has one (a pod that cannot start).
        said = current.status if current is not None and current.status.message else None
        message = f"TrainingJob {name} is running" + (f": {said.message}" if said else "")
        reason = (said.reason if said else None) or Reason.TRAINING
        return replace(d, current=current, training_in_flight=True, trained=condition(
            TRAINED, UNKNOWN, reason, message, generation=gen))
    if current.status.phase != TrainingPhase.FAILED:
        return replace(d, current=current)
    reason = current.status.reason or Reason.TRAINING_FAILED
    message = f"TrainingJob {current.name} failed: {current.status.message or reason}"
    d = replace(d, current=current, trained=condition(TRAINED, False, reason, message, generation=gen))
    return _refuse(d, reason, message)


def gates(obs: Observation, d: Draft) -> Draft:
    """A succeeded TrainingJob's version must pass the Model's own gates (which may have changed
    since the TrainingJob was made) before it may reach traffic."""
    current = d.current
    if current is None or current.status.phase != TrainingPhase.SUCCEEDED or d.trained is not None:
        return d
    gen = obs.generation
    decision = check_gates(d.spec.gates, TrainingResult.from_status(current.status))
    artifact = current.status.artifact
    if not decision.allowed or artifact is None:
        message = f"TrainingJob {current.name} was refused: {decision.message or 'no artifact'}"
        d = replace(d, trained=condition(TRAINED, False, Reason.GATE_FAILED, message, generation=gen))
        return _refuse(d, Reason.GATE_FAILED, message, artifact_uri=artifact and artifact.uri,
                       artifact_sha256=artifact and artifact.sha256)
    score = f"{current.status.metric}={current.status.score:.4g}" if current.status.score is not None else ""
    trained = condition(TRAINED, True, Reason.GATES_PASSED,
                        f"TrainingJob {current.name} passed its gates {score}".strip(), generation=gen)
    history = d.history
    entry = h.find(history, training_job=current.name)
    if entry is not None and entry.outcome == Outcome.TRAINING:
        history = h.update(history, entry, metrics=dict(current.status.metrics), artifact_uri=artifact.uri,
                           artifact_sha256=artifact.sha256)
    return replace(d, trained=trained, history=history)


def trained_artifact(d: Draft) -> Artifact | None:
    """The artifact the gates let through, if any."""
    if d.current is None or d.trained is None or d.trained.reason != Reason.GATES_PASSED:
        return None
    artifact = d.current.status.artifact
    return Artifact(artifact.uri, artifact.sha256) if artifact is not None else None


def _refuse(d: Draft, reason: str, message: str, **fields: object) -> Draft:
    """Record once that the current version was refused (an Event the first time only)."""
    assert d.current is not None
    entry = h.find(d.history, training_job=d.current.name)
    if entry is None or entry.outcome != Outcome.TRAINING:
        return d
    history = h.update(d.history, entry, outcome=Outcome.REFUSED, reason=message,
                       metrics=dict(d.current.status.metrics), **fields)
    return replace(d, history=history, events=d.event(reason, message, warning=True))
