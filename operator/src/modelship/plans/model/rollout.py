"""The Model plan's rollout step: the canary's next action (``logic.canary``) applied to the
status: replica counts, step bookkeeping, the analysis baseline, promotion and rollback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from modelship.api.model import Outcome, PodCounters, RolloutProgress
from modelship.logic.analysis import Verdict, analyse
from modelship.logic.canary import ActionKind, RolloutState, next_rollout_action
from modelship.logic.conditions import PROGRESSING, Reason, condition, parse_time, rfc3339
from modelship.logic.scrape import RequestCounters
from modelship.plans.model import history as h
from modelship.plans.model.observation import Draft, Observation


def to_status(counters: Mapping[str, RequestCounters]) -> list[PodCounters]:
    return [PodCounters(pod=pod, **c.to_wire()) for pod, c in sorted(counters.items())]


def from_status(progress: RolloutProgress | None) -> dict[str, RequestCounters]:
    if progress is None:
        return {}
    return {c.pod: RequestCounters.from_wire({"byCode": c.by_code, "latency": c.latency}) for c in progress.baseline}


def verdict(obs: Observation, d: Draft) -> Verdict | None:
    """The canary's analysis over the current step so far (None when it cannot be read now)."""
    st = d.status
    if not (st.canary_revision and st.stable_revision and st.step_started_at) or not obs.canary_counters:
        return None
    return analyse(from_status(st.rollout), obs.canary_counters, d.spec.rollout.analysis)


def total_replicas(obs: Observation, d: Draft) -> int:
    """The stable's size: spec.serving.replicas, or what the HPA chose within its bounds."""
    autoscaling = d.spec.serving.autoscaling
    if autoscaling is None:
        return d.spec.serving.replicas
    stable = obs.revisions.get(d.status.stable_revision) if d.status.stable_revision else None
    observed = stable.state.replicas if stable is not None else 0
    return max(autoscaling.min_replicas, min(observed, autoscaling.max_replicas))


def rollout(obs: Observation, d: Draft) -> Draft:
    st = d.status
    stable, canary = st.stable_revision, st.canary_revision
    progress = st.rollout or RolloutProgress()
    state = RolloutState(stable, canary, st.canary_step, parse_time(st.step_started_at),
                         parse_time(progress.started_at))
    total = total_replicas(obs, d)
    canary_seen = obs.revisions.get(canary) if canary else None
    stable_seen = obs.revisions.get(stable) if stable else None
    action = next_rollout_action(
        d.spec.rollout, total, state, canary_seen.state if canary_seen else None,
        stable_seen.state if stable_seen else None, verdict(obs, d), obs.now)
    replicas = {r: n for r, n in ((stable, action.stable_replicas), (canary, action.canary_replicas)) if r}
    d = replace(d, action=action, replicas=replicas, progressing=condition(
        PROGRESSING, False, Reason.STABLE, "No rollout in progress", generation=obs.generation))
    if canary is None:
        return d
    if action.kind == ActionKind.PROMOTE:
        return _promote(obs, d, total)
    if action.kind == ActionKind.ROLLBACK:
        return _rollback(obs, d, total)
    if action.kind == ActionKind.START_STEP:
        counters = to_status(obs.canary_counters or {})
        st = st.model_copy(update={"step_started_at": rfc3339(action.step_started_at or obs.now),
                                   "rollout": progress.model_copy(update={"baseline": counters})})
    elif action.kind == ActionKind.ADVANCE:
        st = st.model_copy(update={"canary_step": action.step, "step_started_at": None,
                                   "rollout": progress.model_copy(update={"baseline": []})})
        d = replace(d, events=d.event(Reason.STEP_PASSED, action.message))
    return replace(d, status=st, progressing=condition(
        PROGRESSING, True, action.reason, action.message or f"Rolling out {canary}", generation=obs.generation))


def _promote(obs: Observation, d: Draft, total: int) -> Draft:
    st, history = d.status, d.history
    stable, canary = st.stable_revision, st.canary_revision
    assert canary is not None and d.action is not None
    entry = h.find(history, revision=canary)
    if entry is not None:
        history = h.update(history, entry, outcome=Outcome.PROMOTED, promoted_at=rfc3339(obs.now), reason=None)
    previous = h.find(history, revision=stable) if stable and stable != canary else None
    if previous is not None and previous.outcome == Outcome.PROMOTED:
        history = h.update(history, previous, outcome=Outcome.SUPERSEDED, reason=f"replaced by {canary}")
    st = st.model_copy(update={"stable_revision": canary, "canary_revision": None, "canary_step": None,
                               "step_started_at": None, "rollout": None})
    return replace(d, status=st, history=history, replicas={canary: total},
                   events=d.event(Reason.PROMOTED, d.action.message),
                   rollout_events=(*d.rollout_events, "promoted"))


def _rollback(obs: Observation, d: Draft, total: int) -> Draft:
    st, history = d.status, d.history
    stable, canary, action = st.stable_revision, st.canary_revision, d.action
    assert canary is not None and action is not None
    entry = h.find(history, revision=canary)
    if entry is not None:
        history = h.update(history, entry, outcome=Outcome.ROLLED_BACK, rolled_back_at=rfc3339(obs.now),
                           rolled_back_generation=obs.generation, reason=action.message)
    st = st.model_copy(update={"canary_revision": None, "canary_step": None, "step_started_at": None,
                               "rollout": None})
    message = f"Rolled back {canary}: {action.message}"
    return replace(d, status=st, history=history, replicas={stable: total} if stable else {},
                   events=d.event(Reason.ROLLED_BACK, message, warning=True),
                   rollout_events=(*d.rollout_events, "rolled_back"),
                   progressing=condition(PROGRESSING, False, action.reason, message, generation=obs.generation))

