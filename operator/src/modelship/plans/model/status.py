"""The Model plan's last steps: the whole new status (phase, conditions, weight, history), and
the children that serve it."""

from __future__ import annotations

from modelship.api.common import Condition
from modelship.api.model import ModelStatus, Phase, TrafficRouting
from modelship.logic.canary import effective_weight
from modelship.logic.conditions import (
    READY,
    TRUE,
    Reason,
    condition,
    merge_conditions,
    remove_condition,
)
from modelship.plans.model import history as h
from modelship.plans.model.observation import FAULT_ENV_ANNOTATION, Draft, Observation
from modelship.plans.model.revision import fault_env

TEST_FAULTS = "TestFaults"  # present only while the test-fault annotation cannot be used


def _ready(obs: Observation, d: Draft, available: bool) -> Condition:
    gen, stable, trained = obs.generation, d.status.stable_revision, d.trained
    if stable is None:
        if trained is not None and trained.status != TRUE:
            return condition(READY, False, trained.reason, trained.message, generation=gen)
        if d.progressing is not None and d.progressing.reason == Reason.POD_NOT_STARTING:
            return condition(READY, False, Reason.POD_NOT_STARTING, d.progressing.message, generation=gen)
        return condition(READY, False, Reason.DEPLOYING, "The first version is being deployed", generation=gen)
    if available:
        return condition(READY, True, Reason.AVAILABLE, f"{stable} serves", generation=gen)
    return condition(READY, False, Reason.UNAVAILABLE, f"{stable} has no available pods", generation=gen)


def _phase(d: Draft, available: bool) -> Phase:
    stable, canary = d.status.stable_revision, d.status.canary_revision
    if stable is None and canary is None:
        return Phase.TRAINING if d.training_in_flight else Phase.FAILED
    if canary is not None:
        return Phase.PROGRESSING
    if not available:
        return Phase.DEGRADED
    return Phase.TRAINING if d.training_in_flight else Phase.SERVING


def _weight(obs: Observation, d: Draft) -> int | None:
    stable, canary = d.status.stable_revision, d.status.canary_revision
    if canary is None:
        return None
    if stable is None:
        return 100
    if d.spec.rollout.traffic_routing == TrafficRouting.GATEWAY_API:
        return d.action.route_weight if d.action is not None else 0  # exact: what the HTTPRoute carries
    ready = {r: (obs.revisions[r].state.ready if r in obs.revisions else 0) for r in (stable, canary)}
    return effective_weight(ready[canary], ready[stable])


def finish(obs: Observation, d: Draft) -> ModelStatus:
    """The complete status the plan ends with."""
    st = d.status
    stable, canary = st.stable_revision, st.canary_revision
    observed = obs.revisions.get(stable) if stable else None
    available = stable is not None and observed is not None and (
        observed.state.available >= 1 or d.replicas.get(stable, 0) == 0)
    updates = [c for c in (d.trained, d.progressing, _ready(obs, d, available)) if c is not None]
    faults = fault_env(obs) if obs.defaults.allow_test_faults else None
    base = st.conditions
    if isinstance(faults, str):
        updates.append(condition(TEST_FAULTS, False, "InvalidAnnotation",
                                 f"Annotation {FAULT_ENV_ANNOTATION} is ignored: {faults}", generation=obs.generation))
    else:
        base = remove_condition(base, TEST_FAULTS)
    conditions = merge_conditions(base, updates, obs.now)
    images = {r: rev.image for r, rev in obs.revisions.items() if r in d.replicas and rev.image}
    history = [e.model_copy(update={"image": images[e.revision]})
               if e.revision in images and e.image is None else e for e in d.history]
    return st.model_copy(update={
        "observed_generation": obs.generation,
        "phase": _phase(d, available),
        "canary_weight": _weight(obs, d),
        "canary_step": st.canary_step if canary is not None else None,
        "step_started_at": st.step_started_at if canary is not None else None,
        "url": f"http://{obs.name}.{obs.namespace}.svc.cluster.local" if stable else None,
        "history": h.trim(history, {stable, canary}, obs.defaults.history_limit),
        "conditions": conditions,
    })
