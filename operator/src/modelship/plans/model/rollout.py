"""The Model plan's rollout step: the canary's next action (``logic.canary``) applied to the
status: replica counts, step bookkeeping, the analysis baseline, promotion and rollback."""

from __future__ import annotations

from dataclasses import replace

from modelship.api.common import parse_duration
from modelship.api.model import ModelStatus, Outcome, RolloutProgress, Stage
from modelship.logic import podstart
from modelship.logic.analysis import Verdict, analyse
from modelship.logic.canary import (
    ActionKind,
    RolloutAction,
    RolloutState,
    next_rollout_action,
    step_ends_at,
)
from modelship.logic.conditions import (
    PROGRESSING,
    Reason,
    condition,
    get_condition,
    parse_time,
    rfc3339,
)
from modelship.logic.podstart import Stuck
from modelship.plans.model import history as h
from modelship.plans.model.measure import from_status, to_status, total_replicas
from modelship.plans.model.observation import Draft, Observation
from modelship.plans.model.shadow import shadow


def verdict(obs: Observation, d: Draft) -> Verdict | None:
    """The canary's analysis over the current step so far, when it is due (every
    ``analysis.interval``, the first one an interval after the start, and when the step may pass:
    the final one); None otherwise or when the canary's metrics cannot be read now."""
    st, rollout = d.status, d.spec.rollout
    if not (st.canary_revision and st.stable_revision and st.step_started_at) or not obs.canary_counters:
        return None
    end = step_ends_at(rollout, _state(d))
    final = end is not None and obs.now >= end
    last = parse_time(st.rollout.analysed_at) if st.rollout else None
    if not (final or last is None or obs.now - last >= parse_duration(rollout.analysis.interval)):
        return None
    return analyse(from_status(st.rollout), obs.canary_counters, rollout.analysis, final=final)


def next_look(obs: Observation, d: Draft) -> float | None:
    """Seconds until the canary's next analysis or the end of its step, whichever is first."""
    st = d.status
    progress, started = st.rollout, parse_time(st.step_started_at)
    if st.canary_revision is None or progress is None or started is None:
        return None
    interval = parse_duration(d.spec.rollout.analysis.interval)
    moments = [(parse_time(progress.analysed_at) or started) + interval]
    end = step_ends_at(d.spec.rollout, _state(d))
    if end is not None:
        moments.append(end)
    return max(0.1, min((m - obs.now).total_seconds() for m in moments))


def _state(d: Draft) -> RolloutState:
    """The rollout's position as the status records it."""
    st = d.status
    progress = st.rollout or RolloutProgress()
    return RolloutState(st.stable_revision, st.canary_revision, st.canary_step, parse_time(st.step_started_at),
                        parse_time(progress.started_at), parse_time(progress.weight_since), progress.figures)


def rollout(obs: Observation, d: Draft) -> Draft:
    st = d.status
    stable, canary = st.stable_revision, st.canary_revision
    progress = st.rollout or RolloutProgress()
    if canary is not None and progress.stage == Stage.SHADOW:
        d = shadow(obs, d)
        if d.status.rollout is None or d.status.rollout.stage == Stage.SHADOW:
            return d
        st, progress = d.status, d.status.rollout  # it passed: the canary starts in this same pass
    if canary is not None and progress.stage == Stage.ROLLING_BACK:
        return rolling_back(obs, d)
    if canary is None and progress.stage == Stage.PROMOTING:
        return promoting(obs, d)
    judged = verdict(obs, d)
    if judged is not None:  # judged now: the next analysis is an interval away, not the next pass
        progress = progress.model_copy(update={"analysed_at": rfc3339(obs.now), "figures": judged.message or None})
        st = st.model_copy(update={"rollout": progress})
        d = replace(d, status=st)
    total = total_replicas(obs, d)
    canary_seen = obs.revisions.get(canary) if canary else None
    stable_seen = obs.revisions.get(stable) if stable else None
    action = next_rollout_action(
        d.spec.rollout, total, _state(d), canary_seen.state if canary_seen else None,
        stable_seen.state if stable_seen else None, judged, obs.now)
    replicas = {r: n for r, n in ((stable, action.stable_replicas), (canary, action.canary_replicas)) if r}
    d = replace(d, action=action, replicas=replicas, progressing=condition(
        PROGRESSING, False, Reason.STABLE, "No rollout in progress", generation=obs.generation))
    if canary is None:
        return d
    reported = _reported_not_starting(d.status)
    stuck = podstart.choose(obs.canary_stuck, reported)
    if stuck is not None and action.reason == Reason.PROGRESS_DEADLINE_EXCEEDED:
        action = replace(action, message=f"{action.message}: {stuck.message()}")
        d = replace(d, action=action)
    if action.kind == ActionKind.PROMOTE:
        return _promote(obs, d, total)
    if action.kind == ActionKind.ROLLBACK:
        return _rollback(obs, d, total)
    if action.kind == ActionKind.START_STEP:
        counters = to_status(obs.canary_counters or {})
        st = st.model_copy(update={"step_started_at": rfc3339(action.step_started_at or obs.now),
                                   "rollout": progress.model_copy(update={"baseline": counters,
                                                                          "analysed_at": rfc3339(obs.now),
                                                                          "weight_since": rfc3339(obs.now),
                                                                          "figures": None})})
    elif action.kind == ActionKind.AT_WEIGHT:
        st = st.model_copy(update={"rollout": progress.model_copy(update={"weight_since": rfc3339(obs.now)})})
    elif action.kind == ActionKind.ADVANCE:
        started = rfc3339(action.step_started_at) if action.step_started_at else None
        st = st.model_copy(update={"canary_step": action.step, "step_started_at": started, "rollout": progress.model_copy(
            update={"baseline": to_status(obs.canary_counters or {}) if started else [], "analysed_at": started,
                    "weight_since": None, "figures": None})})
        d = replace(d, events=d.event(Reason.STEP_PASSED, action.message))
    d = replace(d, status=st, progressing=condition(PROGRESSING, True, action.reason,
                                                    action.message or f"Rolling out {canary}", generation=obs.generation))
    if action.kind == ActionKind.WAIT and stuck is not None:
        d = not_starting(obs, d, stuck, reported)
    wait = 0.1 if action.kind == ActionKind.ADVANCE else next_look(obs, d)
    return replace(d, requeue_after=wait)


def _reported_not_starting(status: ModelStatus) -> str | None:
    """What Progressing last said a pod of the deploying revision waits on, if it said so."""
    before = get_condition(status.conditions, PROGRESSING)
    return before.message if before is not None and before.reason == Reason.POD_NOT_STARTING else None


def not_starting(obs: Observation, d: Draft, stuck: Stuck, previous: str | None) -> Draft:
    """The revision being deployed has a pod that waits on what only a person can fix (an image
    that cannot be pulled, a missing Secret): Progressing says so in the kubelet's words, with one
    Warning Event per new reason, instead of "0/N pods ready" until the progress deadline rolls it
    back. The kubelet keeps trying: a fix (a Secret created) lets it go on. ``previous``: what
    Progressing said before, if it said this."""
    message = podstart.message(stuck, previous)
    progressing = condition(PROGRESSING, True, Reason.POD_NOT_STARTING, message, generation=obs.generation)
    events = d.events if message == previous else d.event(Reason.POD_NOT_STARTING, message, warning=True)
    return replace(d, progressing=progressing, events=events)


def _promote(obs: Observation, d: Draft, total: int) -> Draft:
    st, history = d.status, d.history
    stable, canary = st.stable_revision, st.canary_revision
    assert canary is not None and d.action is not None
    history = h.update(history, h.find(history, revision=canary), outcome=Outcome.PROMOTED,
                       promoted_at=rfc3339(obs.now), reason=None)
    previous = h.find(history, revision=stable) if stable and stable != canary else None
    if previous is not None and previous.outcome == Outcome.PROMOTED:
        history = h.update(history, previous, outcome=Outcome.SUPERSEDED, reason=f"replaced by {canary}")
    keep = stable is not None and stable != canary and obs.revisions.get(stable) is not None
    st = st.model_copy(update={"stable_revision": canary, "canary_revision": None, "canary_step": None,
                               "step_started_at": None, "rollout": RolloutProgress(
                                   stage=Stage.PROMOTING, started_at=rfc3339(obs.now), outgoing=stable)
                               if keep else None})
    d = replace(d, status=st, history=history, replicas={canary: total},
                events=d.event(Reason.PROMOTED, d.action.message),
                rollout_events=(*d.rollout_events, "promoted"))
    return promoting(obs, d) if keep else d


def handover(obs: Observation, incoming: str | None, outgoing: str | None, total: int) -> tuple[int, int | None]:
    """While ``incoming`` grows to ``total``, ``outgoing`` gives up only the pods the ready
    ``incoming`` replaces, so ready serving pods never drop below spec: the ready pods of
    ``incoming``, and how many ``outgoing`` keeps (None: it can go)."""
    new, old = obs.revisions.get(incoming or ""), obs.revisions.get(outgoing or "")
    ready = new.state.ready if new is not None and new.state.replicas >= total else 0
    if incoming is None or old is None or ready >= total:
        return ready, None
    return ready, min(old.state.replicas, max(0, total - ready))


def promoting(obs: Observation, d: Draft) -> Draft:
    """The promoted revision to its full size, the previous stable serving until it is ready; then it goes."""
    st = d.status
    stable, outgoing = st.stable_revision, st.rollout.outgoing if st.rollout else None
    assert stable is not None
    total = total_replicas(obs, d)
    ready, keep = handover(obs, stable, outgoing, total)
    if keep is None:
        return replace(d, status=st.model_copy(update={"rollout": None}), replicas={stable: total},
                       requeue_after=None)
    message = f"Promoted {stable}; {outgoing} serves until {stable} is ready at {total} ({ready} now)"
    return replace(d, replicas={stable: total, outgoing or "": keep}, requeue_after=1.0,
                   progressing=condition(PROGRESSING, True, Reason.PROMOTED, message, generation=obs.generation))


def _rollback(obs: Observation, d: Draft, total: int) -> Draft:
    """Record the rollback now (the verdict's time); the canary goes once the stable is back."""
    st, history = d.status, d.history
    canary, action = st.canary_revision, d.action
    assert canary is not None and action is not None
    history = h.update(history, h.find(history, revision=canary), outcome=Outcome.ROLLED_BACK,
                       rolled_back_at=rfc3339(obs.now), rolled_back_generation=obs.generation, reason=action.message)
    progress = (st.rollout or RolloutProgress()).model_copy(
        update={"stage": Stage.ROLLING_BACK, "rollback_reason": action.message, "baseline": []})
    d = replace(d, status=st.model_copy(update={"rollout": progress}), history=history,
                events=d.event(Reason.ROLLED_BACK, f"Rolled back {canary}: {action.message}", warning=True),
                rollout_events=(*d.rollout_events, "rolled_back"))
    return rolling_back(obs, d)


def rolling_back(obs: Observation, d: Draft) -> Draft:
    """The stable back to its full size first, the canary serving until it is ready; then the canary goes."""
    st = d.status
    stable, canary = st.stable_revision, st.canary_revision
    assert canary is not None
    total = total_replicas(obs, d)
    reason = (st.rollout.rollback_reason if st.rollout else None) or "analysis failed"
    ready, keep = handover(obs, stable, canary, total)
    message = f"Rolled back {canary}: {reason}"
    replicas: dict[str, int] = {stable: total} if stable else {}
    if keep is None:
        st = st.model_copy(update={"canary_revision": None, "canary_step": None, "step_started_at": None,
                                   "rollout": None})
    else:
        replicas[canary] = keep
        message += f"; waiting for {stable} to be ready at {total} ({ready} now)"
    return replace(d, status=st, replicas=replicas, requeue_after=None if keep is None else 1.0,
                   action=RolloutAction(ActionKind.ROLLBACK, replicas.get(canary, 0), total, 0, None, None,
                                        Reason.ROLLED_BACK, message),
                   progressing=condition(PROGRESSING, False, Reason.ROLLED_BACK, message, generation=obs.generation))
