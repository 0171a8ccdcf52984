"""The Model plan's shadow stage: the candidate receives mirrored copies of live requests and no
user traffic, and is judged before any user sees it.

The candidate runs as a shadow Deployment (pods without the Model's label, so the Model's Service
never selects them) behind the shadow Service; the stable's servers mirror ``shadow.percent`` of
their requests to it (or the HTTPRoute's RequestMirror filter does) and count how often the two
answers agree. Each ``analysis.interval`` the shadow's own 5xx and p99 and that agreement are
judged (``logic.analysis.judge_shadow``); a proven failure refuses the candidate at once, with the
figures; after ``shadow.duration`` a pass makes it the canary of step 1.
"""

from __future__ import annotations

import math
from dataclasses import replace

from modelship.api.common import parse_duration
from modelship.api.model import Outcome, RolloutProgress, ShadowTally, Stage
from modelship.logic.analysis import VerdictKind, compare_window, judge_shadow, window
from modelship.logic.canary import DEFAULT_PROGRESS_DEADLINE
from modelship.logic.conditions import (
    PROGRESSING,
    Reason,
    condition,
    parse_time,
    rfc3339,
)
from modelship.plans.model import history as h
from modelship.plans.model.measure import from_status, to_status, total_replicas
from modelship.plans.model.observation import Draft, Observation

SHADOW_PASSED = "ShadowPassed"
SHADOW_FAILED = "ShadowFailed"


def _progress(d: Draft) -> RolloutProgress:
    return d.status.rollout or RolloutProgress(stage=Stage.SHADOW)


def _waiting(obs: Observation, d: Draft, message: str, reason: str = Reason.CANARY_NOT_READY,
             requeue: float | None = None) -> Draft:
    return replace(d, requeue_after=requeue, progressing=condition(PROGRESSING, True, reason, message,
                                                                   generation=obs.generation))


def shadow(obs: Observation, d: Draft) -> Draft:
    st, rollout = d.status, d.spec.rollout
    candidate, stable = st.canary_revision, st.stable_revision
    assert candidate is not None and rollout.shadow is not None
    total = total_replicas(obs, d)
    size = max(1, math.ceil(total * rollout.shadow.percent / 100))
    d = replace(d, replicas={stable: total} if stable else {}, shadow_replicas=size)
    progress, seen = _progress(d), obs.shadow
    started = parse_time(progress.shadow_started_at)
    if started is None:
        ready = seen.state.ready if seen is not None and seen.state.replicas == size and seen.state.up_to_date else 0
        if ready < size:
            since = parse_time(progress.started_at) or obs.now
            if obs.now - since > DEFAULT_PROGRESS_DEADLINE:
                return refuse(obs, d, f"its shadow had {ready}/{size} ready pods after "
                              f"{int(DEFAULT_PROGRESS_DEADLINE.total_seconds())} s")
            return _waiting(obs, d, f"Waiting for shadow {candidate}: {ready}/{size} pods ready")
        progress = progress.model_copy(update={
            "shadow_started_at": rfc3339(obs.now), "analysed_at": rfc3339(obs.now),
            "baseline": to_status(obs.canary_counters or {}),
            "shadow_baseline": [ShadowTally(pod=p, **t) for p, t in sorted((obs.stable_tallies or {}).items())]})
        d = replace(d, status=st.model_copy(update={"rollout": progress}))
        return _waiting(obs, d, f"Shadow {candidate} receives {rollout.shadow.percent}% of live requests, mirrored: "
                        f"analysing for {rollout.shadow.duration}", Reason.ANALYSING, _next(obs, d))
    duration, interval = parse_duration(rollout.shadow.duration), parse_duration(rollout.analysis.interval)
    final = obs.now - started >= duration
    last = parse_time(progress.analysed_at) or started
    left = f"Analysing shadow {candidate} until {rfc3339(started + duration)}"
    if not final and obs.now - last < interval:
        so_far = f"{left}; so far {progress.figures}" if progress.figures else left
        return _waiting(obs, d, so_far, Reason.ANALYSING, _next(obs, d))
    if obs.canary_counters is None:
        return _waiting(obs, d, f"Shadow {candidate}: its metrics could not be read; trying again",
                        Reason.ANALYSING, interval.total_seconds())
    tallies = {t.pod: t.model_dump(exclude={"pod"}) for t in progress.shadow_baseline}
    verdict = judge_shadow(window(from_status(progress), obs.canary_counters),
                           compare_window(tallies, obs.stable_tallies or {}), rollout.analysis, final)
    d = replace(d, status=st.model_copy(update={"rollout": progress.model_copy(
        update={"analysed_at": rfc3339(obs.now), "figures": verdict.message or None})}))
    if verdict.kind == VerdictKind.FAIL:
        return refuse(obs, d, verdict.message)
    if not final:
        return _waiting(obs, d, f"{left}; so far {verdict.message}", Reason.ANALYSING, _next(obs, d))
    if verdict.kind == VerdictKind.NO_DATA and rollout.on_no_data == "pause":
        return _waiting(obs, d, f"Paused shadow {candidate}: {verdict.message}; it resumes when enough requests "
                        "are mirrored to it (onNoData: pause)", Reason.NO_DATA, interval.total_seconds())
    return passed(obs, d, verdict.message)


def _next(obs: Observation, d: Draft) -> float:
    """Seconds until the shadow's next analysis or its end, whichever is first."""
    rollout, progress = d.spec.rollout, _progress(d)
    assert rollout.shadow is not None
    moments = [(parse_time(progress.analysed_at) or obs.now) + parse_duration(rollout.analysis.interval),
               (parse_time(progress.shadow_started_at) or obs.now) + parse_duration(rollout.shadow.duration)]
    return max(0.1, min((m - obs.now).total_seconds() for m in moments))


def passed(obs: Observation, d: Draft, figures: str) -> Draft:
    """The shadow passed: the candidate becomes the canary at step 1 (no shadow pods any more)."""
    candidate = d.status.canary_revision
    progress = _progress(d).model_copy(update={"stage": Stage.CANARY, "baseline": [], "shadow_baseline": [],
                                               "analysed_at": None, "figures": None})
    st = d.status.model_copy(update={"rollout": progress, "canary_step": 0, "step_started_at": None})
    message = f"Shadow {candidate} passed: {figures}; promoted to canary"
    return replace(d, status=st, shadow_replicas=None, requeue_after=0.1, events=d.event(SHADOW_PASSED, message),
                   progressing=condition(PROGRESSING, True, SHADOW_PASSED, message, generation=obs.generation))


def refuse(obs: Observation, d: Draft, why: str) -> Draft:
    """The shadow failed: the candidate is refused before any user saw it, and not tried again
    until the spec changes."""
    st, history = d.status, d.history
    candidate = st.canary_revision
    message = f"Refused {candidate} in shadow: {why}"
    history = h.update(history, h.find(history, revision=candidate), outcome=Outcome.REFUSED, reason=message,
                       rolled_back_at=rfc3339(obs.now), rolled_back_generation=obs.generation)
    st = st.model_copy(update={"canary_revision": None, "canary_step": None, "step_started_at": None, "rollout": None})
    return replace(d, status=st, history=history, shadow_replicas=None, requeue_after=None,
                   events=d.event(SHADOW_FAILED, message, warning=True),
                   rollout_events=(*d.rollout_events, "refused_in_shadow"),
                   progressing=condition(PROGRESSING, False, SHADOW_FAILED, message, generation=obs.generation))

