"""Canary rollouts: weight-to-replica arithmetic and the next step, decided purely.

Traffic under one Service goes to ready endpoints about evenly, so without a
mesh a canary's weight is its share of ready pods. :func:`split_replicas`
picks the canary and stable replica counts whose ratio is closest to the
weight without ever having less capacity than the stable had (surging by up
to ``max_surge`` extra pods for accuracy), and :func:`stable_replicas_now`
keeps Argo Rollouts' rule: the stable is never scaled below what the canary
has *ready* to replace it.

:func:`next_rollout_action` is the level-based decision: from the spec, the
rollout's recorded state, the observed Deployments, the latest analysis
verdict and the time, it returns what to do now. It is idempotent: called
again with the world it asked for, it answers ``WAIT`` or ``NONE`` with the
same replica counts, so a restarted operator simply carries on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from modelship.api.common import parse_duration
from modelship.api.model import Rollout, RolloutStrategy, TrafficRouting
from modelship.logic.analysis import Verdict, VerdictKind
from modelship.logic.conditions import Reason, rfc3339

DEFAULT_SURGE_RATIO = 0.25
DEFAULT_PROGRESS_DEADLINE = timedelta(minutes=10)


def default_max_surge(total: int) -> int:
    """Argo's default maxSurge (25 %, rounded up), at least one pod."""
    return max(1, math.ceil(total * DEFAULT_SURGE_RATIO))


def split_replicas(total: int, weight: int, max_surge: int | None = None) -> tuple[int, int]:
    """(canary, stable) replicas whose ready ratio best approximates ``weight`` percent.

    Rules: weight 0 gives ``(0, total)``, weight 100 gives ``(total, 0)``;
    otherwise both get at least one pod, the sum is at least ``total`` (no
    capacity lost) and at most ``total + max_surge`` (but two pods whenever
    a canary runs, so a single-replica model gets one of each: 50 %), stable
    never exceeds ``total``. ``max_surge`` defaults to Argo's 25 %, at least 1. Among those, the smallest error to the weight wins, then the
    fewest pods, then the most stable pods. ``total`` 0 gives ``(0, 0)``.
    """
    if total < 0 or not 0 <= weight <= 100:
        raise ValueError("total must be >= 0 and weight within 0..100")
    if total == 0:
        return 0, 0
    if weight == 0:
        return 0, total
    if weight == 100:
        return total, 0
    surge = default_max_surge(total) if max_surge is None else max(0, max_surge)
    best: tuple[float, int, int, int, int] | None = None
    for pods in range(max(total, 2), max(total + surge, 2) + 1):
        exact = pods * weight / 100
        for canary in {math.floor(exact), math.ceil(exact)}:
            canary = min(max(canary, 1), pods - 1)
            stable = pods - canary
            if stable > total:
                continue
            error = abs(100 * canary / pods - weight)
            key = (round(error, 9), pods, -stable, canary, stable)
            if best is None or key < best:
                best = key
    if best is None:  # unreachable: pods == max(total, 2) always fits
        return 1, max(total - 1, 1)
    return best[3], best[4]


def effective_weight(canary_ready: int, stable_ready: int) -> int:
    """The canary's share of ready pods, in percent (what the Service really does)."""
    pods = canary_ready + stable_ready
    return 0 if pods == 0 else round(100 * canary_ready / pods)


def stable_replicas_now(total: int, desired_stable: int, canary_ready: int) -> int:
    """Stable replicas to ask for now: never below what the ready canary pods replace."""
    return min(total, max(desired_stable, total - canary_ready))


@dataclass(frozen=True)
class DeploymentState:
    """What the I/O layer observed of one Deployment (``None`` when it does not exist)."""

    replicas: int  # spec.replicas
    ready: int = 0  # status.readyReplicas
    available: int = 0  # status.availableReplicas
    updated: int = 0  # status.updatedReplicas
    up_to_date: bool = True  # status.observedGeneration >= metadata.generation

    @property
    def settled(self) -> bool:
        """All asked-for pods are up to date and ready."""
        return self.up_to_date and self.ready >= self.replicas and self.updated >= self.replicas


@dataclass(frozen=True)
class RolloutState:
    """The rollout's position, as recorded in the Model's status."""

    stable_revision: str | None
    canary_revision: str | None
    step: int | None = None  # index into spec.rollout.steps; len(steps) = final 100 % stage
    step_started_at: datetime | None = None  # when the step began (step 1: when its pods were ready)
    rollout_started_at: datetime | None = None  # when this canary first appeared
    weight_since: datetime | None = None  # when the canary was first ready at this step's size
    figures: str | None = None  # what the step's last analysis measured


class ActionKind(StrEnum):
    NONE = "None"  # steady: nothing to do
    SCALE = "Scale"  # set replicas (and route weights) as given
    WAIT = "Wait"  # pods are coming up, or the step's pause is running
    START_STEP = "StartStep"  # the canary is ready at this step: record the time, take a baseline
    AT_WEIGHT = "AtWeight"  # the canary is ready at a later step's size: its weight is served from now
    ADVANCE = "Advance"  # the step passed: go to ``step``
    PAUSE = "Pause"  # too few requests and onNoData=pause
    PROMOTE = "Promote"  # the canary becomes the stable revision
    ROLLBACK = "Rollback"  # canary to zero, stable back to full, record why


@dataclass(frozen=True)
class RolloutAction:
    """What to do now. Replica counts and the weight are the desired values in every case.

    ``step`` and ``step_started_at`` are what the status should record after
    the action; ``requeue_after`` is when to look again (``None``: on the next
    event only).
    """

    kind: ActionKind
    canary_replicas: int
    stable_replicas: int
    weight: int  # the canary's traffic weight to route (HTTPRoute) or aimed at (replicas)
    step: int | None
    step_started_at: datetime | None
    reason: str
    message: str
    requeue_after: float | None = None
    # The canary weight to put on an HTTPRoute now: a step's weight only once the
    # canary is ready at that step's size, so the route never sends traffic to
    # pods that are not there yet. (With replica routing, informational.)
    route_weight: int = 0

    @property
    def writes(self) -> bool:
        """Whether the action changes the world or the status (WAIT and NONE do not)."""
        return self.kind not in (ActionKind.WAIT, ActionKind.NONE)


def _seconds(td: timedelta) -> float:
    return max(td.total_seconds(), 0.0)


def _step_weight(rollout: Rollout, step: int) -> int:
    return 100 if step >= len(rollout.steps) else rollout.steps[step].weight


def _plan(rollout: Rollout, total: int, weight: int, max_surge: int | None) -> tuple[int, int]:
    """Desired (canary, stable) at ``weight`` for the routing in use."""
    if rollout.traffic_routing == TrafficRouting.GATEWAY_API:
        # Weights are exact on the route: the canary needs only its share of capacity,
        # and the stable keeps all of its pods until the route moves to 100 % at promotion.
        return (total if weight >= 100 else max(1, math.ceil(total * weight / 100))), total
    if weight >= 100:
        return total, 0
    return split_replicas(total, weight, max_surge)


def next_rollout_action(
    rollout: Rollout,
    total: int,
    state: RolloutState,
    canary: DeploymentState | None,
    stable: DeploymentState | None,
    verdict: Verdict | None,
    now: datetime,
    *,
    max_surge: int | None = None,
    progress_deadline: timedelta = DEFAULT_PROGRESS_DEADLINE,
) -> RolloutAction:
    """The next rollout action for one Model.

    ``total``: the stable's replica count (spec.serving.replicas, or the HPA's
    current desired count). ``verdict``: the analysis of the canary over the
    current step's window, from ``step_started_at`` to now (``None`` when not
    analysed, e.g. the scrape failed). A failing verdict rolls back at once;
    a pass only counts once the step's pause has elapsed. A canary that does
    not get ready within ``progress_deadline`` of its step is rolled back.
    """
    if state.canary_revision is None:
        return _steady(total, stable)
    if total == 0:
        # Nothing serves and nothing can be analysed: the new revision simply takes over.
        return RolloutAction(ActionKind.PROMOTE, 0, 0, 100, None, None, Reason.PROMOTED,
                             f"Promoted {state.canary_revision} at zero replicas (nothing to analyse)",
                             route_weight=100)
    if state.stable_revision is None or rollout.strategy == RolloutStrategy.RECREATE:
        return _replace_all(rollout, total, state, canary, stable)
    at = _at_step(rollout, total, state, canary, max_surge)
    if verdict is not None and verdict.kind == VerdictKind.FAIL and at.step < at.last:
        return _rollback(total, Reason.ANALYSIS_FAILED,
                         f"Analysis failed at step {at.step + 1} ({at.weight}%): {verdict.message}")
    if canary is None or canary.replicas != at.want_canary or stable is None or stable.replicas != at.stable_now:
        return replace(
            at.base, kind=ActionKind.SCALE, reason=Reason.CANARY_SCALING,
            message=f"Scaling canary {state.canary_revision} to {at.want_canary} and stable "
            f"{state.stable_revision} to {at.stable_now} for step {at.label} ({at.weight}%)",
        )
    if not (canary.settled and at.canary_ready >= at.want_canary):
        return _not_ready(at, total, state, now, progress_deadline)
    if at.step >= at.last:
        return RolloutAction(
            ActionKind.PROMOTE, total, 0, 100, None, None, Reason.PROMOTED,
            f"Promoted {state.canary_revision}: it passed {at.last} canary step(s) and now serves all traffic",
            route_weight=100,
        )
    return _judge(replace(at, base=replace(at.base, route_weight=at.weight)),  # ready at this step's size
                  rollout, total, state, stable, verdict, now, max_surge)


@dataclass(frozen=True)
class _AtStep:
    """Where a canary stands in its steps, and the action to refine (WAIT at the step's sizes)."""

    step: int
    last: int  # len(steps): the final 100 % stage
    weight: int
    want_canary: int
    stable_now: int
    canary_ready: int
    interval: float  # the analysis interval (s)
    base: RolloutAction

    @property
    def label(self) -> str:
        return _step_label(self.step, self.last)


def _at_step(rollout: Rollout, total: int, state: RolloutState, canary: DeploymentState | None,
             max_surge: int | None) -> _AtStep:
    last = len(rollout.steps)
    step = min(state.step or 0, last)
    weight = _step_weight(rollout, step)
    want_canary, want_stable = _plan(rollout, total, weight, max_surge)
    canary_ready = canary.ready if canary is not None and canary.up_to_date else 0
    # Through step 1 the stable keeps all its pods (the canary's are extra, as a surge): a canary
    # failed there, where most bad versions are caught, is removed at the decision, instead of
    # serving until a replacement stable pod has started. Its share is canary/(canary + total).
    stable_now = total if step == 0 else stable_replicas_now(total, want_stable, min(canary_ready, want_canary))
    interval = _seconds(parse_duration(rollout.analysis.interval))
    base = RolloutAction(ActionKind.WAIT, want_canary, stable_now, weight, step, state.step_started_at,
                         Reason.CANARY_NOT_READY, "", requeue_after=interval,
                         route_weight=0 if step == 0 else _step_weight(rollout, step - 1))
    return _AtStep(step, last, weight, want_canary, stable_now, canary_ready, interval, base)


def _not_ready(at: _AtStep, total: int, state: RolloutState, now: datetime,
               progress_deadline: timedelta) -> RolloutAction:
    """The canary is not ready at the step's size: wait, or roll back past the deadline."""
    started = state.step_started_at or state.rollout_started_at
    if started is not None and now - started > progress_deadline:
        return _rollback(
            total, Reason.PROGRESS_DEADLINE_EXCEEDED,
            f"Canary {state.canary_revision} had {at.canary_ready}/{at.want_canary} ready pods "
            f"after {int(_seconds(progress_deadline))} s",
        )
    return replace(at.base, message=f"Waiting for canary {state.canary_revision}: "
                   f"{at.canary_ready}/{at.want_canary} pods ready")


def _judge(at: _AtStep, rollout: Rollout, total: int, state: RolloutState, stable: DeploymentState,
           verdict: Verdict | None, now: datetime, max_surge: int | None) -> RolloutAction:
    """The canary is ready at its step: start the step's clock, analyse through its pause, then
    pause for data, promote or advance."""
    step, last, weight = at.step, at.last, at.weight
    if state.step_started_at is None:
        return replace(at.base, kind=ActionKind.START_STEP, step_started_at=now, reason=Reason.ANALYSING,
                       message=f"Canary {state.canary_revision} ready at step {at.label} "
                       f"({weight}%): analysing for {rollout.steps[step].pause}")
    end = _step_end(rollout, step, state.step_started_at, state.weight_since or now)
    remaining = _seconds(end - now)
    if state.weight_since is None:
        return replace(at.base, kind=ActionKind.AT_WEIGHT, reason=Reason.ANALYSING,
                       requeue_after=min(at.interval, remaining) or at.interval,
                       message=f"Canary {state.canary_revision} ready at step {at.label} ({weight}%): "
                       f"analysing for {int(remaining)} s more")
    if remaining > 0:
        figures = verdict.message if verdict is not None else state.figures
        detail = f"; so far {figures}" if figures else ""
        return replace(at.base, reason=Reason.ANALYSING, requeue_after=min(at.interval, remaining) or at.interval,
                       message=f"Analysing step {at.label} ({weight}%) until {rfc3339(end)}{detail}")
    if verdict is None:
        return replace(at.base, reason=Reason.ANALYSING,
                       message=f"Step {at.label} ({weight}%) waits for an analysis result")
    if verdict.kind == VerdictKind.NO_DATA and rollout.on_no_data == "pause":
        return replace(at.base, kind=ActionKind.PAUSE, reason=Reason.NO_DATA,
                       message=f"Paused at step {at.label} ({weight}%): {verdict.message}; "
                       "it resumes when enough requests reach the canary (onNoData: pause)")
    note = "no data, proceeding (onNoData: proceed)" if verdict.kind == VerdictKind.NO_DATA else verdict.message
    nxt = step + 1
    if nxt >= last:
        # Promoted the moment the last pause ends (as Argo Rollouts does): the stable keeps its pods
        # until the promoted revision is ready at full size (plans.model.rollout), so no capacity drops.
        return RolloutAction(
            ActionKind.PROMOTE, total, stable.replicas, 100, None, None, Reason.PROMOTED,
            f"Step {at.label} ({weight}%) passed: {note}; promoted {state.canary_revision}: "
            f"it passed {last} canary step(s) and now serves all traffic",
            route_weight=100,
        )
    nxt_weight = _step_weight(rollout, nxt)
    c, s = _plan(rollout, total, nxt_weight, max_surge)
    # The next step's pause runs from now: the time its extra canary pods take to start counts in
    # it (they count in full in its window), so a rollout lasts its pauses, not pauses + pod starts.
    return RolloutAction(
        ActionKind.ADVANCE, c, stable_replicas_now(total, s, at.canary_ready), nxt_weight, nxt, now,
        Reason.STEP_PASSED,
        f"Step {at.label} ({weight}%) passed: {note}; going to step {_step_label(nxt, last)} ({nxt_weight}%)",
        requeue_after=0.0, route_weight=weight,
    )


def step_ends_at(rollout: Rollout, state: RolloutState) -> datetime | None:
    """When the current step may pass (None until the canary is ready at the step's size)."""
    if state.step_started_at is None or state.weight_since is None or state.step is None \
            or state.step >= len(rollout.steps):
        return None
    return _step_end(rollout, state.step, state.step_started_at, state.weight_since)


def _step_end(rollout: Rollout, step: int, started: datetime, served: datetime) -> datetime:
    """The step's pause after it began, and not before the canary has served the step's weight
    (since ``served``) for one analysis interval, or the whole pause if that is shorter. A later
    step begins when it is asked for, so a rollout lasts its pauses; but when its pods take longer
    than its pause to start, its weight is still served and judged before it passes."""
    pause = parse_duration(rollout.steps[step].pause)
    return max(started + pause, served + min(pause, parse_duration(rollout.analysis.interval)))


def _step_label(step: int, last: int) -> str:
    return f"{step + 1}/{last}" if step < last else "final"


def _steady(total: int, stable: DeploymentState | None) -> RolloutAction:
    if stable is None or stable.replicas != total:
        return RolloutAction(ActionKind.SCALE, 0, total, 0, None, None, Reason.STABLE,
                             f"Scaling the stable revision to {total}")
    return RolloutAction(ActionKind.NONE, 0, total, 0, None, None, Reason.STABLE, "")


def _rollback(total: int, reason: str, message: str) -> RolloutAction:
    return RolloutAction(ActionKind.ROLLBACK, 0, total, 0, None, None, reason, message)


def _replace_all(
    rollout: Rollout, total: int, state: RolloutState, canary: DeploymentState | None,
    stable: DeploymentState | None,
) -> RolloutAction:
    """First version (no stable yet) or the Recreate strategy: all at once, then promote."""
    first = state.stable_revision is None
    if not first and stable is not None and stable.replicas > 0:
        return RolloutAction(ActionKind.SCALE, 0, 0, 0, None, None, Reason.RECREATING,
                             f"Recreate: scaling {state.stable_revision} to 0 before starting {state.canary_revision}")
    if canary is None or canary.replicas != total:
        return RolloutAction(ActionKind.SCALE, total, 0, 100, None, None, Reason.DEPLOYING,
                             f"Deploying {state.canary_revision} with {total} replica(s)")
    if canary.settled and canary.ready >= total:
        return RolloutAction(ActionKind.PROMOTE, total, 0, 100, None, None, Reason.PROMOTED,
                             f"{state.canary_revision} is available with {canary.ready} replica(s)",
                             route_weight=100)
    interval = _seconds(parse_duration(rollout.analysis.interval))
    return RolloutAction(ActionKind.WAIT, total, 0, 100, None, None, Reason.DEPLOYING,
                         f"Waiting for {state.canary_revision}: {canary.ready}/{total} pods ready",
                         requeue_after=interval)
