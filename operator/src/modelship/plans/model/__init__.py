"""A Model's plan: its next status and children, from what was observed (pure).

The steps run in order, each a small pure function of the observation and
the draft so far (in the manner of Argo Rollouts' ordered reconcile steps):

1. ``adopt``: the newest TrainingJob is the current one;
2. ``retrain``: start a TrainingJob (first, training-template change, retrain annotation);
3. ``training``: where the current one stands (running, failed);
4. ``gates``: a succeeded one's version must pass the Model's gates;
5. ``candidate``: the revision that should serve (artifact x today's pod template);
6. ``start``: a new candidate becomes the canary;
7. ``rollout``: the canary's next action: scale, analyse, advance, promote, roll back;
8. ``finish`` and ``children``: the whole status, the whole set of children.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from modelship.api.model import ModelSpec, Phase, TrafficRouting
from modelship.logic.conditions import READY, Reason, condition, merge_conditions
from modelship.logic.outputs import confine_store
from modelship.plans.common import Event, built_problem
from modelship.plans.model.children import children
from modelship.plans.model.observation import (
    FAULT_ENV_ANNOTATION,
    RETRAIN_ANNOTATION,
    Draft,
    Observation,
    ObservedRevision,
    ObservedTrainingJob,
    Plan,
    ServingDefaults,
)
from modelship.plans.model.revision import candidate, fault_env, start
from modelship.plans.model.rollout import rollout
from modelship.plans.model.status import finish
from modelship.plans.model.training import adopt, gates, retrain, training

GATEWAY_API = "gateway.networking.k8s.io/v1"
# A problem of the cluster rather than the spec (the Gateway API's CRDs absent) is looked at again
# this often: installing them needs no change to the Model (the operator's discovery answer ages 60 s).
CLUSTER_RECHECK_SECONDS = 30.0
STEPS = (adopt, retrain, training, gates, candidate, start, rollout)

__all__ = [
    "CLUSTER_RECHECK_SECONDS",
    "FAULT_ENV_ANNOTATION",
    "GATEWAY_API",
    "RETRAIN_ANNOTATION",
    "Observation",
    "ObservedRevision",
    "ObservedTrainingJob",
    "Plan",
    "ServingDefaults",
    "at_rest",
    "plan",
    "refused",
]


def invalid(obs: Observation, message: str, requeue_after: float | None = None) -> Plan:
    """An invalid spec: say so in Ready and touch no child (the stable keeps serving)."""
    st = obs.status
    ready = condition(READY, False, Reason.INVALID_SPEC, message, generation=obs.generation)
    status = st.model_copy(update={
        "observed_generation": obs.generation,
        "phase": st.phase if st.stable_revision else Phase.FAILED,
        "conditions": merge_conditions(st.conditions, [ready], obs.now),
    })
    changed = status.conditions != st.conditions
    return Plan(status=status, children=None, requeue_after=requeue_after,
                events=[Event(Reason.INVALID_SPEC, message, warning=True)] if changed else [])


def refused(obs: Observation, message: str) -> Plan:
    """The API server refused a child the plan wanted (``message`` names it and why): the spec
    asks for something the cluster will not take, so it is treated as an invalid spec. Nothing the
    plan decided is kept (the status stays as observed, but for Ready), and the next reconcile,
    on a new spec or any event, plans afresh."""
    return invalid(obs, message)


def cluster_problem(obs: Observation, spec: ModelSpec) -> str | None:
    """What the cluster lacks for the spec, as a message a person can act on."""
    if spec.rollout.traffic_routing == TrafficRouting.GATEWAY_API and not obs.gateway_api:
        return (f"rollout.trafficRouting is gatewayAPI but the cluster serves no Gateway API ({GATEWAY_API}): "
                "install its CRDs or use trafficRouting: replicas")
    return None


def problem(obs: Observation, spec: ModelSpec) -> str | None:
    """What the schema cannot say about a spec, as a message a person can act on."""
    return confine_store(spec.artifact_store, store=obs.defaults.artifact_store,
                         allowed_prefixes=obs.defaults.allowed_output_prefixes, namespace=obs.namespace)


def plan(obs: Observation) -> Plan:
    spec = obs.spec
    if isinstance(spec, str):
        return invalid(obs, spec)
    message = cluster_problem(obs, spec)
    if message is not None:  # at rest (Failed, no timer): it must look again by itself
        return invalid(obs, message, requeue_after=CLUSTER_RECHECK_SECONDS)
    message = problem(obs, spec)
    if message is not None:
        return invalid(obs, message)
    d = Draft(status=obs.status, spec=spec, history=tuple(obs.status.history))
    try:
        for step in STEPS:
            d = step(obs, d)
        wanted = children(obs, d)
    except ValidationError as exc:  # a child the schema would refuse: say so rather than fail every reconcile
        return invalid(obs, built_problem(exc))
    if "started" in d.rollout_events:
        faults = fault_env(obs)
        if isinstance(faults, str):
            d = replace(d, events=d.event("TestFaultsIgnored",
                                          f"Ignored annotation {FAULT_ENV_ANNOTATION}: {faults}", warning=True))
    return Plan(status=finish(obs, d), children=wanted, events=list(d.events),
                rollout_events=list(d.rollout_events), action=d.action, requeue_after=d.requeue_after)


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
    if status.get("canaryRevision") is not None or status.get("rollout") is not None:
        return False
    return status.get("phase") in (Phase.SERVING.value, Phase.FAILED.value)
