"""The shadow stage and the exact canary (issue 18) through ``plans.model.plan``: a candidate
judged on mirrored traffic first (refused with the figures, or promoted to canary), the analysis
interval honoured, and a rollback that keeps ready capacity at spec."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from modelship.api.model import ModelSpec, ModelStatus, Outcome, Phase
from modelship.logic.canary import ActionKind
from modelship.plans.model import Plan, plan
from plans.model_support import (
    SPEC,
    T0,
    deployments,
    kinds,
    obs,
    ready,
    succeeded,
    tj,
    traffic,
)

SHADOWED = ModelSpec.model_validate({**SPEC.model_dump(by_alias=True, exclude_none=True), "rollout": {
    "steps": [{"weight": 25, "pause": "30s"}, {"weight": 50, "pause": "30s"}],
    "analysis": {"interval": "5s", "minRequests": 20},
    "shadow": {"duration": "30s", "percent": 50}}})
JOBS = (tj("m-1", 1, succeeded("m-1", "a" * 64)),)
JOBS2 = (*JOBS, tj("m-2", 2, succeeded("m-2", "b" * 64, 0.95), "manual"))


def serving(spec: ModelSpec = SHADOWED, gateway: bool = False) -> tuple[ModelStatus, str]:
    p = plan(obs(ModelStatus(), T0, spec=spec, gateway_api=gateway))
    p = plan(obs(p.status, T0, spec=spec, training_jobs=JOBS, gateway_api=gateway))
    rev = p.status.canary_revision
    assert rev is not None
    p = plan(obs(p.status, T0, spec=spec, training_jobs=JOBS, revisions={rev: ready(2)}, gateway_api=gateway))
    assert p.status.phase == Phase.SERVING and p.status.stable_revision == rev
    return p.status, rev


def look(p: Plan, stable: str, at: float, spec: ModelSpec = SHADOWED, **kw: Any) -> Plan:
    kw.setdefault("revisions", {stable: ready(2)})
    return plan(obs(p.status, T0 + timedelta(seconds=at), spec=spec, training_jobs=JOBS2, retrain_token="1", **kw))


def tally(agree: int, disagree: int) -> dict[str, dict[str, float]]:
    return {"stable-0": {"agree": float(agree), "disagree": float(disagree), "compared": 0.0,
                         "abs_diff_sum": 0.0, "prediction_sum": 0.0, "prediction_sq_sum": 0.0}}


def start_shadow() -> tuple[Plan, str, str]:
    status, stable = serving()
    p = plan(obs(status, T0, spec=SHADOWED, training_jobs=JOBS, revisions={stable: ready(2)}, retrain_token="1"))
    p = look(p, stable, 0)
    candidate = p.status.canary_revision
    assert candidate and candidate != stable
    assert p.status.rollout is not None and p.status.rollout.stage == "Shadow"
    assert any(e.reason == "RolloutStarted" and "Started shadow of" in e.message for e in p.events)
    # No user traffic: the candidate runs only as a shadow Deployment beside the full stable.
    assert deployments(p) == {stable: 2, f"{candidate}-shadow": 1}
    assert ("Service", "m-shadow") in kinds(p) and p.status.canary_weight == 0
    shadow_pods = next(c.obj for c in p.children or [] if c.obj["metadata"]["name"] == f"{candidate}-shadow")
    assert "modelship.io/model" not in shadow_pods["spec"]["template"]["metadata"]["labels"]
    # The shadow's pods are ready: its window starts.
    p = look(p, stable, 2, shadow=ready(1), canary_counters=traffic(0), stable_tallies=tally(0, 0))
    assert p.status.rollout is not None and p.status.rollout.shadow_started_at is not None
    return p, stable, candidate


def test_the_stable_mirrors_to_a_fixed_shadow_service() -> None:
    _, stable = serving()
    p = plan(obs(serving()[0], T0, spec=SHADOWED, training_jobs=JOBS, revisions={stable: ready(2)}))
    dep = next(c.obj for c in p.children or [] if c.obj["metadata"]["name"] == stable)
    env = {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELSHIP_SHADOW_URL"] == "http://m-shadow.ns.svc.cluster.local."
    assert env["MODELSHIP_SHADOW_PERCENT"] == "50"


def test_turning_the_shadow_on_keeps_the_stable_serving_while_its_mirroring_twin_rolls_out() -> None:
    """The same artifact under a new pod template (it mirrors) is a canary of its own: the stable
    keeps its history entry, its Deployment and its pods until the twin is promoted."""
    p = plan(obs(ModelStatus(), T0))
    p = plan(obs(p.status, T0, training_jobs=JOBS))
    stable = p.status.canary_revision
    assert stable is not None
    p = plan(obs(p.status, T0, training_jobs=JOBS, revisions={stable: ready(2, template=True)}))
    assert p.status.stable_revision == stable and p.status.canary_revision is None
    turned_on = plan(obs(p.status, T0, spec=SHADOWED, training_jobs=JOBS, revisions={stable: ready(2, template=True)}))
    twin = turned_on.status.canary_revision
    assert twin is not None and twin != stable
    assert turned_on.status.rollout is not None and turned_on.status.rollout.stage == "Canary"
    assert deployments(turned_on) == {stable: 2, twin: 1}  # the stable in full until the twin is ready
    entries = {e.revision: e for e in turned_on.status.history}
    assert set(entries) == {stable, twin} and entries[stable].outcome == Outcome.PROMOTED
    assert entries[twin].trigger == "spec-change" and entries[twin].outcome == Outcome.PROGRESSING
    # A reconcile later, the stable is still there (its entry was not taken over by the twin).
    again = plan(obs(turned_on.status, T0 + timedelta(seconds=1), spec=SHADOWED, training_jobs=JOBS,
                     revisions={stable: ready(1, template=True), twin: ready(1)}))
    assert stable in deployments(again) and again.status.stable_revision == stable


def test_the_shadow_service_stays_while_the_spec_asks_for_a_shadow() -> None:
    status, stable = serving()
    at_rest = plan(obs(status, T0, spec=SHADOWED, training_jobs=JOBS, revisions={stable: ready(2)}))
    assert ("Service", "m-shadow") in kinds(at_rest)  # no shadow runs, but its name resolves already
    off = plan(obs(status, T0, spec=SPEC, training_jobs=JOBS, revisions={stable: ready(2)}))
    assert ("Service", "m-shadow") not in kinds(off)  # not desired: ensure deletes it


def test_a_healthy_shadow_becomes_the_canary_after_its_duration() -> None:
    p, stable, candidate = start_shadow()
    p = look(p, stable, 10, shadow=ready(1), canary_counters=traffic(200), stable_tallies=tally(195, 5))
    assert p.status.rollout is not None and p.status.rollout.stage == "Shadow"  # not over yet
    assert p.requeue_after is not None and p.requeue_after <= 5
    p = look(p, stable, 33, shadow=ready(1), canary_counters=traffic(600), stable_tallies=tally(590, 10))
    passed = next(e for e in p.events if e.reason == "ShadowPassed")
    assert "600 mirrored requests" in passed.message and "agreement 98.33%" in passed.message
    assert p.status.rollout is not None and p.status.rollout.stage == "Canary" and p.status.canary_step == 0
    assert deployments(p) == {stable: 2, candidate: 1}  # step 1 of the canary; the shadow is gone
    assert ("Service", "m-shadow") in kinds(p)  # kept (no endpoints now): its name resolves for the next one


def test_between_analyses_the_shadow_progressing_message_stays_as_it_is() -> None:
    """Judged at 7 s (its window began at 2 s, 5 s interval); passes at 8 and 9 s do not judge and
    leave Progressing word for word (an end time, the last figures kept), so the status is written
    once per interval, not on every reconcile as a "N s left" countdown was."""
    p, stable, candidate = start_shadow()
    p = look(p, stable, 7, shadow=ready(1), canary_counters=traffic(100), stable_tallies=tally(98, 2))
    judged = next(c for c in p.status.conditions if c.type == "Progressing").message
    assert judged.startswith(f"Analysing shadow {candidate} until 2026-11-23T12:00:32Z; so far 100 mirrored"), judged
    assert p.status.rollout is not None and judged.endswith(f"; so far {p.status.rollout.figures}")  # kept in status
    for at in (8, 9):
        p = look(p, stable, at, shadow=ready(1), canary_counters=traffic(100 + 20 * at), stable_tallies=tally(98, 2))
        assert next(c for c in p.status.conditions if c.type == "Progressing").message == judged


@pytest.mark.parametrize(("counters", "tallies", "why"), [
    (traffic(60, errors=15), tally(60, 0), "error ratio"),  # answers 500 to a quarter of copies
    (traffic(60), tally(5, 55), "agreement with the stable"),  # Ready, but its outputs are inverted
])
def test_a_bad_candidate_is_refused_in_shadow_at_once(counters: Any, tallies: Any, why: str) -> None:
    p, stable, candidate = start_shadow()
    p = look(p, stable, 8, shadow=ready(1), canary_counters=counters, stable_tallies=tallies)
    assert p.status.canary_revision is None and deployments(p) == {stable: 2}
    entry = next(h for h in p.status.history if h.revision == candidate)
    assert entry.outcome == Outcome.REFUSED and why in (entry.reason or "")
    failed = next(e for e in p.events if e.reason == "ShadowFailed")
    assert failed.warning and why in failed.message and "mirrored requests" in failed.message
    # Not tried again for this spec.
    again = look(p, stable, 20)
    assert again.status.canary_revision is None


def test_the_analysis_interval_is_honoured() -> None:
    status, stable = serving(SPEC)
    p = plan(obs(status, T0, training_jobs=JOBS, revisions={stable: ready(2)}, retrain_token="1"))
    spec_at = {2: SPEC.model_copy(deep=True), 20: SPEC.model_copy(deep=True)}
    for seconds, spec in spec_at.items():
        spec.rollout.analysis.interval = f"{seconds}s"
    outcomes = {}
    for seconds, spec in spec_at.items():
        q = look(p, stable, 0, spec=spec)
        canary = q.status.canary_revision
        revs = {stable: ready(2), canary or "": ready(1)}
        q = look(q, stable, 0, spec=spec, revisions=revs, canary_counters=traffic(0))
        assert q.action is not None and q.action.kind == ActionKind.START_STEP
        # 3 s later the canary has failed 10 of 40 requests: judged only if an interval has passed.
        q = look(q, stable, 3, spec=spec, revisions=revs, canary_counters=traffic(40, errors=10))
        outcomes[seconds] = q.status.canary_revision is None
        if seconds == 20:
            assert q.requeue_after is not None and 16 <= q.requeue_after <= 17  # next look at the interval
    assert outcomes == {2: True, 20: False}


def test_a_rollback_keeps_ready_capacity_at_spec() -> None:
    status, stable = serving(SPEC)
    spec = SPEC.model_copy(deep=True)
    spec.serving.replicas = 4
    p = plan(obs(status, T0, spec=spec, training_jobs=JOBS, revisions={stable: ready(4)}, retrain_token="1"))
    p = plan(obs(p.status, T0, spec=spec, training_jobs=JOBS2, revisions={stable: ready(4)}, retrain_token="1"))
    canary = p.status.canary_revision
    assert canary
    # Step 2 (50 %): stable 2, canary 2, all ready.
    status = p.status.model_copy(update={"canary_step": 1, "step_started_at": "2026-11-23T12:00:00Z"})
    revs = {stable: ready(2), canary: ready(2)}
    p = plan(obs(status, T0 + timedelta(seconds=5), spec=spec, training_jobs=JOBS2, revisions=revs,
                 retrain_token="1", canary_counters=traffic(50, errors=25)))
    assert any(e.reason == "RolledBack" for e in p.events)
    assert deployments(p) == {stable: 4, canary: 2}  # the canary stays until the stable is back
    for stable_ready, canary_left in ((2, 2), (3, 1), (4, None)):
        revs = {stable: ready(4, stable_ready), canary: ready(2)}
        p = plan(obs(p.status, T0 + timedelta(seconds=6), spec=spec, training_jobs=JOBS2, revisions=revs,
                     retrain_token="1"))
        assert deployments(p).get(canary) == canary_left
        assert stable_ready + (canary_left or 0) >= 4  # ready capacity never below spec
    assert p.status.canary_revision is None and p.status.phase == Phase.SERVING


def test_gateway_api_mirrors_with_a_request_mirror_filter() -> None:
    spec = ModelSpec.model_validate({**SHADOWED.model_dump(by_alias=True, exclude_none=True), "rollout": {
        **SHADOWED.rollout.model_dump(by_alias=True, exclude_none=True),
        "trafficRouting": "gatewayAPI", "gateway": {"name": "gw"}}})
    status, stable = serving(spec, gateway=True)
    p = plan(obs(status, T0, spec=spec, training_jobs=JOBS, revisions={stable: ready(2)}, retrain_token="1",
                 gateway_api=True))
    p = plan(obs(p.status, T0, spec=spec, training_jobs=JOBS2, revisions={stable: ready(2)}, retrain_token="1",
                 gateway_api=True))
    route = next(c.obj for c in p.children or [] if c.obj["kind"] == "HTTPRoute")
    rule = route["spec"]["rules"][0]
    assert rule["filters"][0]["requestMirror"] == {
        "backendRef": {"group": "", "kind": "Service", "name": "m-shadow", "port": 80}, "percent": 50}
    assert [b["name"] for b in rule["backendRefs"]] == ["m-stable"]  # users reach the stable only
    dep = next(c.obj for c in p.children or [] if c.obj["metadata"]["name"] == stable)
    assert "MODELSHIP_SHADOW_URL" not in str(dep)  # the gateway mirrors, not the stable's server


def test_turning_the_shadow_on_rolls_the_stable_through_a_canary_first() -> None:
    """The stable's pods started before the shadow was asked for mirror nothing: the rollout that
    gives them the shadow URL goes straight to canary (a shadow would wait for copies forever)."""
    status, stable = serving()
    plain = ready(2, template=True)  # the template the plan built without a shadow: no mirroring
    assert not any(e["name"] == "MODELSHIP_SHADOW_URL"
                   for e in (plain.template or {})["spec"]["containers"][0].get("env") or [])
    p = plan(obs(status, T0, spec=SHADOWED, training_jobs=JOBS, revisions={stable: plain}, retrain_token="1"))
    p = look(p, stable, 0, revisions={stable: plain})
    assert p.status.canary_revision is not None
    assert p.status.rollout is not None and p.status.rollout.stage == "Canary"
    assert any(e.reason == "RolloutStarted" and "Started canary of" in e.message for e in p.events)
