"""Canary arithmetic (big tables) and the rollout decision, including a simulated rollout."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from modelship.api.model import CanaryStep, Rollout
from modelship.logic.analysis import Verdict, VerdictKind
from modelship.logic.canary import (
    ActionKind,
    DeploymentState,
    RolloutAction,
    RolloutState,
    default_max_surge,
    effective_weight,
    next_rollout_action,
    split_replicas,
    stable_replicas_now,
    step_ends_at,
)
from modelship.logic.conditions import Reason

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PASS = Verdict(VerdictKind.PASS, "100 requests, 0.00% errors, p99 5.0 ms", 100)
FAIL = Verdict(VerdictKind.FAIL, "error ratio 50.00% is above maxErrorRatio 1.00%", 100)
NODATA = Verdict(VerdictKind.NO_DATA, "3 requests reached the canary, fewer than minRequests 20", 3)


@pytest.mark.parametrize(
    ("total", "weight", "surge", "expected"),
    [
        (0, 50, None, (0, 0)),
        (5, 0, None, (0, 5)),
        (5, 100, None, (5, 0)),
        (1, 10, None, (1, 1)),
        (1, 50, None, (1, 1)),
        (1, 90, None, (1, 1)),
        (2, 50, None, (1, 1)),
        (2, 10, None, (1, 2)),
        (3, 50, None, (2, 2)),
        (4, 10, None, (1, 4)),  # 20 % is the best five pods can do
        (4, 25, None, (1, 3)),
        (4, 50, None, (2, 2)),
        (4, 75, None, (3, 1)),
        (10, 10, None, (1, 9)),
        (10, 20, None, (2, 8)),
        (10, 25, None, (3, 9)),  # exact 25 % by surging 2
        (10, 25, 0, (2, 8)),  # 20 % and 30 % tie: fewer pods, more stable
        (10, 50, None, (5, 5)),
        (10, 90, None, (9, 1)),
        (100, 1, None, (1, 99)),
        (100, 33, None, (33, 67)),
        (3, 10, 0, (1, 2)),
        (1, 10, 0, (1, 1)),  # two pods are needed for any canary; surge 0 cannot stop that
    ],
)
def test_split_replicas_table(total: int, weight: int, surge: int | None, expected: tuple[int, int]) -> None:
    assert split_replicas(total, weight, surge) == expected


@pytest.mark.parametrize("total", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 20, 33, 50, 100])
@pytest.mark.parametrize("weight", [1, 5, 10, 20, 25, 30, 33, 40, 50, 60, 66, 75, 80, 90, 95, 99])
def test_split_replicas_invariants(total: int, weight: int) -> None:
    canary, stable = split_replicas(total, weight)
    surge = default_max_surge(total)
    assert canary >= 1 and stable >= 1
    assert canary + stable >= total, "capacity is never below the stable's"
    assert canary + stable <= max(total + surge, 2)
    assert stable <= total
    # no option within the rules gets closer to the weight
    error = abs(100 * canary / (canary + stable) - weight)
    for pods in range(max(total, 2), max(total + surge, 2) + 1):
        for c in range(1, pods):
            if pods - c <= total:
                assert abs(100 * c / pods - weight) >= error - 1e-9


def test_split_replicas_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        split_replicas(-1, 10)
    with pytest.raises(ValueError):
        split_replicas(3, 101)


@pytest.mark.parametrize(
    ("total", "desired_stable", "canary_ready", "expected"),
    [
        (4, 3, 0, 4),  # canary not ready: stable stays whole
        (4, 3, 1, 3),
        (4, 2, 1, 3),  # one ready canary pod lets one stable pod go
        (4, 2, 2, 2),
        (4, 0, 3, 1),
        (4, 0, 4, 0),
        (4, 4, 9, 4),
        (4, 0, 0, 4),
    ],
)
def test_stable_never_shrinks_before_the_canary_is_ready(
    total: int, desired_stable: int, canary_ready: int, expected: int
) -> None:
    assert stable_replicas_now(total, desired_stable, canary_ready) == expected


@pytest.mark.parametrize(("c", "s", "w"), [(0, 0, 0), (1, 9, 10), (1, 1, 50), (3, 0, 100), (1, 2, 33)])
def test_effective_weight(c: int, s: int, w: int) -> None:
    assert effective_weight(c, s) == w


# --- next_rollout_action ---------------------------------------------------

ROLLOUT = Rollout(steps=[CanaryStep(weight=10, pause="30s"), CanaryStep(weight=50, pause="1m")])


def _dep(replicas: int, ready: int | None = None) -> DeploymentState:
    ready = replicas if ready is None else ready
    return DeploymentState(replicas=replicas, ready=ready, available=ready, updated=replicas)


def _state(step: int | None = 0, started: datetime | None = None, served: datetime | None = None) -> RolloutState:
    """``served``: when the step's weight began (default: when the step began)."""
    return RolloutState("m-old", "m-new", step, started, rollout_started_at=T0, weight_since=served or started)


def test_steady_state_does_nothing() -> None:
    a = next_rollout_action(ROLLOUT, 4, RolloutState("m-old", None), None, _dep(4), None, T0)
    assert a.kind == ActionKind.NONE and not a.writes and (a.canary_replicas, a.stable_replicas) == (0, 4)
    a = next_rollout_action(ROLLOUT, 4, RolloutState("m-old", None), None, _dep(2), None, T0)
    assert a.kind == ActionKind.SCALE and a.stable_replicas == 4
    a = next_rollout_action(ROLLOUT, 4, RolloutState("m-old", None), None, None, None, T0)
    assert a.kind == ActionKind.SCALE


def test_first_version_deploys_then_promotes() -> None:
    state = RolloutState(None, "m-new")
    a = next_rollout_action(ROLLOUT, 2, state, None, None, None, T0)
    assert (a.kind, a.canary_replicas, a.stable_replicas) == (ActionKind.SCALE, 2, 0)
    a = next_rollout_action(ROLLOUT, 2, state, _dep(2, 1), None, None, T0)
    assert a.kind == ActionKind.WAIT and a.requeue_after == 10.0
    a = next_rollout_action(ROLLOUT, 2, state, _dep(2), None, None, T0)
    assert a.kind == ActionKind.PROMOTE


def test_recreate_scales_old_to_zero_first() -> None:
    rollout = Rollout(strategy="Recreate", steps=[])
    a = next_rollout_action(rollout, 3, _state(), None, _dep(3), None, T0)
    assert (a.kind, a.canary_replicas, a.stable_replicas, a.reason) == (ActionKind.SCALE, 0, 0, Reason.RECREATING)
    a = next_rollout_action(rollout, 3, _state(), None, _dep(0), None, T0)
    assert (a.kind, a.canary_replicas) == (ActionKind.SCALE, 3)
    a = next_rollout_action(rollout, 3, _state(), _dep(3), _dep(0), None, T0)
    assert a.kind == ActionKind.PROMOTE


def test_zero_replicas_promote_at_once() -> None:
    a = next_rollout_action(ROLLOUT, 0, _state(), None, _dep(0), None, T0)
    assert a.kind == ActionKind.PROMOTE


def test_canary_scales_up_without_touching_stable() -> None:
    a = next_rollout_action(ROLLOUT, 4, _state(), None, _dep(4), None, T0)
    assert (a.kind, a.canary_replicas, a.stable_replicas, a.weight) == (ActionKind.SCALE, 1, 4, 10)
    # Canary asked for but not ready: wait, stable still whole.
    a = next_rollout_action(ROLLOUT, 4, _state(), _dep(1, 0), _dep(4), None, T0)
    assert (a.kind, a.stable_replicas) == (ActionKind.WAIT, 4)
    assert "0/1 pods ready" in a.message


def test_failing_verdict_rolls_back_at_any_time() -> None:
    a = next_rollout_action(ROLLOUT, 4, _state(0, T0), _dep(1), _dep(4), FAIL, T0 + timedelta(seconds=5))
    assert (a.kind, a.canary_replicas, a.stable_replicas, a.reason) == (ActionKind.ROLLBACK, 0, 4, Reason.ANALYSIS_FAILED)
    assert "step 1" in a.message and "maxErrorRatio" in a.message


def test_canary_never_ready_hits_the_deadline() -> None:
    a = next_rollout_action(ROLLOUT, 4, _state(), _dep(1, 0), _dep(4), None, T0 + timedelta(minutes=11))
    assert (a.kind, a.reason) == (ActionKind.ROLLBACK, Reason.PROGRESS_DEADLINE_EXCEEDED)


def test_step_clock_starts_when_canary_is_ready_then_pause_runs() -> None:
    a = next_rollout_action(ROLLOUT, 4, _state(0, None), _dep(1), _dep(4), None, T0)
    assert (a.kind, a.step_started_at) == (ActionKind.START_STEP, T0)
    a = next_rollout_action(ROLLOUT, 4, _state(0, T0), _dep(1), _dep(4), PASS, T0 + timedelta(seconds=25))
    assert a.kind == ActionKind.WAIT and a.requeue_after == 5.0 and "until 2026-11-23T12:00:30Z" in a.message


def test_step_passes_after_pause() -> None:
    a = next_rollout_action(ROLLOUT, 4, _state(0, T0), _dep(1), _dep(4), PASS, T0 + timedelta(seconds=30))
    # Step 2's pause starts now: the time its extra pods take to start counts in it.
    assert (a.kind, a.step, a.weight, a.step_started_at) == (ActionKind.ADVANCE, 1, 50, T0 + timedelta(seconds=30))
    assert (a.canary_replicas, a.stable_replicas) == (2, 3)  # stable shrinks only by the ready canary pod


def test_the_stable_keeps_all_its_pods_through_step_one() -> None:
    """4 replicas at 25 %: the canary's pod joins the 4 stable ones for the whole of step 1, and the
    stable gives one up only when step 2 starts. A canary failed in step 1 (where most bad versions
    are caught), even late in it, is removed at once: no user waits for a replacement stable pod to
    start while the bad one keeps serving. (The stable used to give up its pod after step 1's first
    analysis, which was before the errors were proven: 17 of 26 failed requests in the bench came
    after the decision.)"""
    rollout = Rollout(steps=[CanaryStep(weight=25, pause="30s"), CanaryStep(weight=50, pause="30s")],
                      analysis={"interval": "10s"})
    a = next_rollout_action(rollout, 4, _state(0, None), _dep(1), _dep(4), None, T0)
    assert (a.kind, a.canary_replicas, a.stable_replicas) == (ActionKind.START_STEP, 1, 4)
    for at, verdict in ((9, None), (10, PASS), (20, PASS), (29, None)):
        a = next_rollout_action(rollout, 4, _state(0, T0), _dep(1), _dep(4), verdict, _s(at))
        assert (a.kind, a.canary_replicas, a.stable_replicas) == (ActionKind.WAIT, 1, 4), at
    a = next_rollout_action(rollout, 4, _state(0, T0), _dep(1), _dep(4), FAIL, _s(29))
    assert (a.kind, a.canary_replicas, a.stable_replicas) == (ActionKind.ROLLBACK, 0, 4)
    a = next_rollout_action(rollout, 4, _state(0, T0), _dep(1), _dep(4), PASS, _s(30))
    assert (a.kind, a.step, a.canary_replicas, a.stable_replicas) == (ActionKind.ADVANCE, 1, 2, 3)


def _s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(("pause", "interval", "served", "ends"), [
    ("60s", "10s", 0, 60),  # ready at once: the pause
    ("60s", "10s", 50, 60),  # ready within the pause, an interval before its end: the pause
    ("60s", "10s", 55, 65),  # ready later: one interval at the weight
    ("60s", "10s", 90, 100),  # ready after the pause (the CI run's gateway test): one interval at the weight
    ("5s", "10s", 90, 95),  # a pause shorter than the interval: the pause at the weight
    ("0s", "10s", 90, 90),  # no pause: nothing to wait for
])
def test_step_ends_after_its_pause_and_an_interval_at_its_weight(pause: str, interval: str, served: float,
                                                                 ends: float) -> None:
    rollout = Rollout(steps=[CanaryStep(weight=10, pause="30s"), CanaryStep(weight=50, pause=pause)],
                      analysis={"interval": interval})
    assert step_ends_at(rollout, _state(1, T0, _s(served))) == _s(ends)
    assert step_ends_at(rollout, replace(_state(1, T0), weight_since=None)) is None  # not ready at its size yet
    assert step_ends_at(rollout, _state(2, T0)) is None  # the final stage has no pause


def test_a_step_whose_pods_start_after_its_pause_still_serves_its_weight() -> None:
    """Step 2 (50 %) is asked for at T0 with a 1 m pause; its pods are ready only at 90 s. Its
    weight is routed then and judged for one interval (10 s) before the canary is promoted: it
    used to be promoted at once, and 50 % never reached the route."""
    rollout = ROLLOUT.model_copy(update={"traffic_routing": "gatewayAPI"})
    asked = replace(_state(1, T0), weight_since=None)
    a = next_rollout_action(rollout, 10, asked, _dep(5, 3), _dep(10), PASS, _s(89))
    assert (a.kind, a.route_weight) == (ActionKind.WAIT, 10)
    a = next_rollout_action(rollout, 10, asked, _dep(5), _dep(10), PASS, _s(90))
    assert (a.kind, a.route_weight, a.requeue_after) == (ActionKind.AT_WEIGHT, 50, 10.0)
    assert "analysing for 10 s more" in a.message and a.writes
    served = _state(1, T0, _s(90))
    a = next_rollout_action(rollout, 10, served, _dep(5), _dep(10), PASS, _s(95))
    assert (a.kind, a.route_weight, a.requeue_after) == (ActionKind.WAIT, 50, 5.0) and "until 2026-11-23T12:01:40Z" in a.message
    a = next_rollout_action(rollout, 10, served, _dep(5), _dep(10), FAIL, _s(95))
    assert a.kind == ActionKind.ROLLBACK  # judged at its weight: a failure there rolls back
    a = next_rollout_action(rollout, 10, served, _dep(5), _dep(10), PASS, _s(100))
    assert (a.kind, a.route_weight) == (ActionKind.PROMOTE, 100)
    # Pods ready within the pause: the step still ends with its pause (a rollout lasts its pauses).
    a = next_rollout_action(rollout, 10, _state(1, T0, _s(20)), _dep(5), _dep(10), PASS, _s(60))
    assert a.kind == ActionKind.PROMOTE


@pytest.mark.parametrize(("on_no_data", "kind"), [("pause", ActionKind.PAUSE), ("proceed", ActionKind.ADVANCE)])
def test_no_data(on_no_data: str, kind: ActionKind) -> None:
    rollout = ROLLOUT.model_copy(update={"on_no_data": on_no_data})
    a = next_rollout_action(rollout, 4, _state(0, T0), _dep(1), _dep(4), NODATA, T0 + timedelta(minutes=1))
    assert a.kind == kind
    if kind == ActionKind.PAUSE:
        assert a.reason == Reason.NO_DATA and "minRequests" in a.message and a.requeue_after
    else:
        assert "no data, proceeding" in a.message


def test_no_verdict_after_pause_waits() -> None:
    a = next_rollout_action(ROLLOUT, 4, _state(0, T0), _dep(1), _dep(4), None, T0 + timedelta(minutes=1))
    assert a.kind == ActionKind.WAIT and "waits for an analysis" in a.message


def test_gateway_api_keeps_stable_whole_and_sets_exact_weight() -> None:
    rollout = ROLLOUT.model_copy(update={"traffic_routing": "gatewayAPI"})
    a = next_rollout_action(rollout, 10, _state(1, None), None, _dep(10), None, T0)
    assert (a.canary_replicas, a.stable_replicas, a.weight) == (5, 10, 50)


def _simulate(rollout: Rollout, total: int, verdicts: list[Verdict | None]) -> tuple[list[RolloutAction], RolloutState]:
    """Play the world: deployments do what the action asks (pods become ready one reconcile later)."""
    state = _state(None)
    canary: DeploymentState | None = None
    stable: DeploymentState | None = _dep(total)
    now = T0
    actions: list[RolloutAction] = []
    for i in range(200):
        verdict = verdicts[min(i, len(verdicts) - 1)]
        a = next_rollout_action(rollout, total, state, canary, stable, verdict, now)
        # The same world asked twice gives the same answer: level-based.
        assert next_rollout_action(rollout, total, state, canary, stable, verdict, now) == a
        actions.append(a)
        # Capacity never falls below the stable's, counting only ready pods.
        ready = (canary.ready if canary else 0) + (stable.ready if stable else 0)
        if a.kind not in (ActionKind.PROMOTE, ActionKind.ROLLBACK):
            assert ready >= total or canary is None or canary.ready < (canary.replicas or 1)
        if a.kind in (ActionKind.PROMOTE, ActionKind.ROLLBACK):
            return actions, state
        # Pods become ready after one look; stable shrinks at once.
        canary = _dep(a.canary_replicas, min(canary.ready if canary else 0, a.canary_replicas)
                      if canary is None or canary.replicas != a.canary_replicas else a.canary_replicas)
        stable = _dep(a.stable_replicas)
        served = now if a.kind in (ActionKind.START_STEP, ActionKind.AT_WEIGHT) else (
            None if a.kind == ActionKind.ADVANCE else state.weight_since)
        state = replace(state, step=a.step, step_started_at=a.step_started_at, weight_since=served)
        now += timedelta(seconds=a.requeue_after if a.requeue_after else 1)
    raise AssertionError("the rollout did not finish")


@pytest.mark.parametrize("routing", ["replicas", "gatewayAPI"])
@pytest.mark.parametrize("total", [1, 2, 3, 5, 10])
def test_simulated_rollout_promotes(total: int, routing: str) -> None:
    rollout = ROLLOUT.model_copy(update={"traffic_routing": routing})
    actions, _ = _simulate(rollout, total, [PASS])
    kinds = [a.kind for a in actions]
    assert kinds[-1] == ActionKind.PROMOTE
    assert kinds.count(ActionKind.ADVANCE) == 1
    # Only the first step starts when its pods are ready; later steps start when they are asked for.
    assert [a.weight for a in actions if a.kind == ActionKind.START_STEP] == [10]
    assert [a.weight for a in actions if a.kind == ActionKind.ADVANCE] == [50]
    # ... and its weight is served from when its pods are ready.
    assert [a.route_weight for a in actions if a.kind == ActionKind.AT_WEIGHT] == [50]
    # Promoted as the last pause ends, with the stable's pods kept (they leave as the new ones are ready).
    assert "passed" in actions[-1].message and actions[-1].canary_replicas == total


def test_simulated_rollout_rolls_back_on_failure_in_step_two() -> None:
    verdicts: list[Verdict | None] = [PASS] * 12 + [FAIL]
    actions, _ = _simulate(ROLLOUT, 4, verdicts)
    assert actions[-1].kind == ActionKind.ROLLBACK
    assert ActionKind.ADVANCE in [a.kind for a in actions]


def test_route_weight_moves_only_when_the_canary_is_ready() -> None:
    rollout = ROLLOUT.model_copy(update={"traffic_routing": "gatewayAPI"})
    # Step 1 (10 %): canary asked for, not ready: the route keeps 0 %.
    a = next_rollout_action(rollout, 10, _state(0, None), _dep(1, 0), _dep(10), None, T0)
    assert (a.kind, a.weight, a.route_weight) == (ActionKind.WAIT, 10, 0)
    a = next_rollout_action(rollout, 10, _state(0, None), _dep(1), _dep(10), None, T0)
    assert (a.kind, a.route_weight) == (ActionKind.START_STEP, 10)
    # Advancing keeps the old weight until step 2's five pods are ready.
    a = next_rollout_action(rollout, 10, _state(0, T0), _dep(1), _dep(10), PASS, T0 + timedelta(minutes=1))
    assert (a.kind, a.route_weight, a.canary_replicas) == (ActionKind.ADVANCE, 10, 5)
    a = next_rollout_action(rollout, 10, _state(1, None), _dep(5, 3), _dep(10), None, T0)
    assert (a.kind, a.route_weight) == (ActionKind.WAIT, 10)
    a = next_rollout_action(rollout, 10, _state(1, None), _dep(5), _dep(10), None, T0)
    assert a.route_weight == 50
    # Final stage: 100 % only at promotion.
    a = next_rollout_action(rollout, 10, _state(2, None), _dep(10, 4), _dep(10), None, T0)
    assert (a.kind, a.route_weight) == (ActionKind.WAIT, 50)
    a = next_rollout_action(rollout, 10, _state(2, None), _dep(10), _dep(10), None, T0)
    assert (a.kind, a.route_weight, a.stable_replicas) == (ActionKind.PROMOTE, 100, 0)
    a = next_rollout_action(rollout, 10, _state(1, T0), _dep(5), _dep(10), FAIL, T0)
    assert (a.kind, a.route_weight) == (ActionKind.ROLLBACK, 0)
