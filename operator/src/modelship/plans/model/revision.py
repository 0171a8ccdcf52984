"""The Model plan's revision step: which artifact should serve, under today's pod template, and
whether that starts a rollout.

The revision is named by the hash of the pod template the builder makes, so
a change to anything that reaches the pods (the spec's serving fields, the
operator's serving image or store settings) makes a new revision of the same
artifact, rolled out through the canary like a new version, with an Event
naming what changed.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from modelship.api.model import (
    HistoryEntry,
    Outcome,
    RolloutProgress,
    RolloutStrategy,
    Stage,
    TrafficRouting,
)
from modelship.api.trainingjob import Trigger
from modelship.builders.routing import mirror_for
from modelship.builders.serving import SHADOW_URL_ENV, build_pod_template, revision_name
from modelship.logic.conditions import rfc3339
from modelship.logic.objects import changes
from modelship.plans.model import history as h
from modelship.plans.model.observation import (
    FAULT_ENV_ANNOTATION,
    Artifact,
    Candidate,
    Draft,
    Obj,
    Observation,
)
from modelship.plans.model.training import trained_artifact
from modelship_runtime.groundtruth.layout import groundtruth_uri

FAULT_PREFIX = "MODELSHIP_FAULT_"


def fault_env(obs: Observation) -> dict[str, str] | str | None:
    """The test-fault variables the annotation asks for; a message when it is not usable."""
    raw = obs.annotations.get(FAULT_ENV_ANNOTATION)
    if not raw:
        return None
    if not obs.defaults.allow_test_faults:
        return "test faults are off in this operator (allowTestFaults)"
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        return f"it is not JSON ({exc})"
    if not isinstance(parsed, dict):
        return "it must be a JSON object of variable names to values"
    wrong = sorted(k for k in parsed if not str(k).startswith(FAULT_PREFIX))
    if wrong:
        return f"only {FAULT_PREFIX}* variables are accepted, not {', '.join(map(str, wrong))}"
    return {str(k): str(v) for k, v in parsed.items()}


def stable_artifact(d: Draft) -> Artifact | None:
    stable = d.status.stable_revision
    entry = h.find(d.history, revision=stable) if stable else None
    return Artifact(entry.artifact_uri, entry.artifact_sha256) if entry and entry.artifact_uri else None


def template_for(obs: Observation, d: Draft, artifact: Artifact) -> Obj:
    """The pod template ``artifact`` gets today. A new version (not the stable's artifact)
    carries the test-fault variables when the operator allows them."""
    env = fault_env(obs)
    extra = env if isinstance(env, dict) and artifact != stable_artifact(d) else None
    serving, rollout = d.spec.serving, d.spec.rollout
    mirror = mirror_for(obs.name, obs.namespace, rollout.shadow.percent) \
        if rollout.shadow is not None and rollout.traffic_routing == TrafficRouting.REPLICAS else None
    return build_pod_template(obs.name, model_uri=artifact.uri, sha256=artifact.sha256, serving=serving,
                              image=serving.image or obs.defaults.serving_image,
                              environment=obs.defaults.environment, extra_env=extra, shadow=mirror,
                              prediction_log_uri=groundtruth_uri(d.spec.artifact_store or obs.defaults.artifact_store,
                                                                 obs.namespace, obs.name))


def stable_mirrors(obs: Observation, stable: str | None) -> bool:
    """The stable's pods copy requests to the shadow Service (their template carries its URL)."""
    seen = obs.revisions.get(stable) if stable else None
    if seen is None or seen.template is None:
        return True  # not read: the spec says it does
    containers = (seen.template.get("spec") or {}).get("containers") or []
    return any(e.get("name") == SHADOW_URL_ENV for c in containers for e in c.get("env") or [])


def shadow_possible(obs: Observation, d: Draft) -> bool:
    """A shadow stage can judge the candidate: asked for, a canary rollout, and someone mirrors to it
    (the Gateway's RequestMirror filter, or stable pods started with the shadow URL). When the shadow
    has just been turned on, the stable does not mirror yet: that rollout goes straight to canary."""
    rollout, stable = d.spec.rollout, d.status.stable_revision
    if rollout.shadow is None or stable is None or rollout.strategy != RolloutStrategy.CANARY:
        return False
    return rollout.traffic_routing == TrafficRouting.GATEWAY_API or stable_mirrors(obs, stable)


def turned_back(entry: HistoryEntry, generation: int | None) -> bool:
    """Rolled back from a canary or refused in shadow, at this generation of the spec."""
    rejected = entry.outcome == Outcome.ROLLED_BACK or (
        entry.outcome == Outcome.REFUSED and entry.rolled_back_generation is not None)
    return rejected and entry.rolled_back_generation in (None, generation)


def _blocked(obs: Observation, d: Draft, artifact: Artifact) -> bool:
    """An artifact rolled back is not rolled out again until the Model's spec changes."""
    return any(turned_back(e, obs.generation) and e.artifact_sha256 == artifact.sha256
               and e.artifact_uri == artifact.uri for e in d.history)


def candidate(obs: Observation, d: Draft) -> Draft:
    """The revision that should serve: the newest version that passed its gates (or the spec's
    source), else the stable's artifact under today's template."""
    source = d.spec.source
    artifact = Artifact(source.uri, source.sha256) if source is not None else trained_artifact(d)
    if artifact is None or _blocked(obs, d, artifact):
        artifact = stable_artifact(d)
    if artifact is None:
        return d
    template = template_for(obs, d, artifact)
    revision = revision_name(obs.name, template)
    # The current TrainingJob's entry becomes this revision's only while it names no other one: a
    # new pod template for the artifact already serving (e.g. the shadow turned on) is a revision
    # of its own, and the stable's entry must keep naming the stable.
    entry = h.find(d.history, training_job=d.current.name) if d.current is not None else None
    if entry is not None and (entry.artifact_sha256 != artifact.sha256 or entry.revision not in (None, revision)):
        entry = None
    return replace(d, candidate=Candidate(revision, artifact, template, entry))


def why(obs: Observation, d: Draft) -> str:
    """What the Event says a rollout is of: a new artifact, or a changed pod template."""
    c, stable = d.candidate, d.status.stable_revision
    assert c is not None
    old = obs.revisions.get(stable) if stable else None
    if stable is None or c.artifact != stable_artifact(d) or old is None or old.template is None:
        return f"artifact {c.artifact.uri}"
    found = changes(c.template, old.template)
    return "the pod template changed: " + ("; ".join(found) if found else "labels or annotations")


def start(obs: Observation, d: Draft) -> Draft:
    """A candidate that is neither stable nor canary becomes the canary (superseding any other)."""
    c, status = d.candidate, d.status
    if c is None or c.revision in (status.stable_revision, status.canary_revision):
        return d
    history = d.history
    earlier = h.find(history, revision=c.revision)
    if earlier is not None and turned_back(earlier, obs.generation):
        return d  # refused once: not tried again until the spec changes
    shadowed = shadow_possible(obs, d)
    what = "Deploying" if status.stable_revision is None else (
        "Started shadow of" if shadowed else "Started canary of")
    message = f"{what} {c.revision} ({why(obs, d)})"
    if status.canary_revision is not None:
        history = h.update(history, h.find(history, revision=status.canary_revision),
                           outcome=Outcome.SUPERSEDED, reason=f"superseded by {c.revision}")
        d = replace(d, events=d.event("Superseded", f"Canary {status.canary_revision} was superseded by {c.revision}"))
    fields: dict[str, Any] = {"revision": c.revision, "outcome": Outcome.PROGRESSING, "artifact_uri": c.artifact.uri,
              "artifact_sha256": c.artifact.sha256, "reason": None}
    target = c.entry if c.entry is not None else earlier
    if target is not None:
        history = h.update(history, target, **fields)
    else:
        trigger = Trigger.INITIAL if status.stable_revision is None else Trigger.SPEC_CHANGE
        history = h.push(history, HistoryEntry(trigger=str(trigger), created_at=rfc3339(obs.now), **fields))
    status = status.model_copy(update={"canary_revision": c.revision, "canary_step": None if shadowed else 0,
                                       "step_started_at": None, "rollout": RolloutProgress(
                                           stage=Stage.SHADOW if shadowed else Stage.CANARY,
                                           started_at=rfc3339(obs.now))})
    return replace(d, status=status, history=history, events=d.event("RolloutStarted", message),
                   rollout_events=(*d.rollout_events, "started"))
