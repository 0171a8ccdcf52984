"""A Model's life through ``plans.model.plan``: train, deploy, canary, promote, retrain,
refuse, roll back, and steady states that change nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from modelship.api.model import ModelSpec, ModelStatus, Outcome, Phase
from modelship.api.trainingjob import TrainingJobStatus
from modelship.logic.canary import ActionKind
from modelship.plans.model import ObservedTrainingJob, Plan, plan
from plans.model_support import (
    SPEC,
    T0,
    created_job,
    deployments,
    event_reasons,
    obs,
    ready,
    running,
    succeeded,
    tj,
    traffic,
)


def test_first_version_trains_then_deploys_then_serves() -> None:
    p = plan(obs(ModelStatus(), T0))
    assert created_job(p) == ("m-1", "initial")
    assert p.status.phase == Phase.TRAINING and p.status.current_training_job == "m-1"
    assert p.status.history[0].outcome == Outcome.TRAINING and deployments(p) == {}

    # The TrainingJob runs: nothing new is created, the same status comes back.
    p2 = plan(obs(p.status, T0 + timedelta(seconds=5), training_jobs=(tj("m-1", 1, running()),)))
    assert created_job(p2) is None and p2.events == []
    assert p2.status.model_dump() == plan(obs(p2.status, T0 + timedelta(seconds=10),
                                              training_jobs=(tj("m-1", 1, running()),))).status.model_dump()

    # It succeeds and passes its gates: the first revision is deployed at full size.
    jobs = (tj("m-1", 1, succeeded("m-1", "a" * 64)),)
    p3 = plan(obs(p2.status, T0 + timedelta(seconds=60), training_jobs=jobs))
    rev = p3.status.canary_revision
    assert rev and rev.startswith("m-") and deployments(p3) == {rev: 2}
    assert p3.status.phase == Phase.PROGRESSING and p3.status.stable_revision is None
    assert p3.status.history[0].artifact_uri == "s3://b/a/m-1/" and "started" in p3.rollout_events

    # Its pods are ready: promoted, Ready, serving.
    p4 = plan(obs(p3.status, T0 + timedelta(seconds=70), training_jobs=jobs, revisions={rev: ready(2)}))
    assert p4.status.stable_revision == rev and p4.status.canary_revision is None
    assert p4.status.phase == Phase.SERVING and p4.status.url == "http://m.ns.svc.cluster.local"
    assert {c.type: c.status for c in p4.status.conditions}["Ready"] == "True"
    assert p4.status.history[0].outcome == Outcome.PROMOTED and "promoted" in p4.rollout_events

    # Steady state: the same observation gives the same status, no events, nothing to create.
    p5 = plan(obs(p4.status, T0 + timedelta(minutes=5), training_jobs=jobs, revisions={rev: ready(2)}))
    assert p5.status == p4.status and p5.events == [] and created_job(p5) is None
    assert deployments(p5) == {rev: 2}


def serving_model() -> tuple[ModelStatus, str, tuple[ObservedTrainingJob, ...]]:
    jobs = (tj("m-1", 1, succeeded("m-1", "a" * 64)),)
    p = plan(obs(ModelStatus(), T0))
    p = plan(obs(p.status, T0, training_jobs=jobs))
    rev = p.status.canary_revision
    assert rev is not None
    p = plan(obs(p.status, T0, training_jobs=jobs, revisions={rev: ready(2)}))
    return p.status, rev, jobs


def start_canary(trigger_token: str = "1") -> tuple[Plan, str, str, tuple[ObservedTrainingJob, ...]]:
    status, stable, jobs = serving_model()
    p = plan(obs(status, T0, training_jobs=jobs, revisions={stable: ready(2)}, retrain_token=trigger_token))
    assert created_job(p) == ("m-2", "manual")
    assert p.status.phase == Phase.TRAINING  # retraining while the stable serves
    assert {c.type: c.status for c in p.status.conditions}["Ready"] == "True"
    jobs2 = (*jobs, tj("m-2", 2, succeeded("m-2", "b" * 64, 0.95), "manual"))
    p = plan(obs(p.status, T0, training_jobs=jobs2, revisions={stable: ready(2)}, retrain_token=trigger_token))
    canary = p.status.canary_revision
    assert canary and canary != stable
    return p, stable, canary, jobs2


def test_retrain_annotation_canary_steps_and_promotion() -> None:
    p, stable, canary, jobs = start_canary()
    t = T0
    # Step 1 (25 %): canary 1 pod beside the 2 stable (no stable capacity is lost).
    assert deployments(p) == {stable: 2, canary: 1} and p.status.phase == Phase.PROGRESSING
    revs = {stable: ready(2), canary: ready(1)}
    p = plan(obs(p.status, t, training_jobs=jobs, revisions=revs, retrain_token="1", canary_counters=traffic(5)))
    assert p.status.step_started_at is not None and p.status.rollout is not None
    assert [c.pod for c in p.status.rollout.baseline] == ["canary-0"]  # the step counts from here
    t += timedelta(seconds=31)
    p = plan(obs(p.status, t, training_jobs=jobs, revisions=revs, retrain_token="1", canary_counters=traffic(105)))
    assert p.action is not None and p.action.kind == ActionKind.ADVANCE and p.status.canary_step == 1
    assert "100 requests" in p.events[-1].message
    # Step 2 (50 %), then promotion.
    revs = {r: ready(n) for r, n in deployments(p).items()}
    p = plan(obs(p.status, t, training_jobs=jobs, revisions=revs, retrain_token="1", canary_counters=traffic(105)))
    if p.action is not None and p.action.kind == ActionKind.SCALE:
        revs = {r: ready(n) for r, n in deployments(p).items()}
        p = plan(obs(p.status, t, training_jobs=jobs, revisions=revs, retrain_token="1",
                     canary_counters=traffic(105)))
    # Step 2's pause started when it was asked for; its new pod counts in full in its window, and
    # the step's weight is served from when it is ready.
    assert p.action is not None and p.action.kind == ActionKind.AT_WEIGHT and p.status.step_started_at is not None
    assert p.status.rollout is not None and p.status.rollout.weight_since == p.status.step_started_at
    t += timedelta(seconds=31)
    p = plan(obs(p.status, t, training_jobs=jobs, revisions=revs, retrain_token="1", canary_counters=traffic(205)))
    # Promoted as the last pause ends: the new stable scales to full size while the old one keeps
    # the pods it still stands in for, so ready pods never drop below spec.
    assert p.status.stable_revision == canary and p.status.canary_revision is None
    assert p.status.rollout is not None and p.status.rollout.stage == "Promoting"
    assert p.status.rollout.outgoing == stable
    assert deployments(p) == {canary: 2, stable: 1}  # one new pod ready: the old stable keeps one
    assert p.requeue_after == 1.0
    revs = {canary: ready(2, 1), stable: ready(1)}
    p = plan(obs(p.status, t, training_jobs=jobs, revisions=revs, retrain_token="1"))
    assert deployments(p) == {canary: 2, stable: 1}
    revs = {canary: ready(2), stable: ready(1)}
    p = plan(obs(p.status, t, training_jobs=jobs, revisions=revs, retrain_token="1"))
    assert p.status.rollout is None
    assert deployments(p) == {canary: 2}  # the old stable is removed once the new one serves at full size
    outcomes = {h.revision: h.outcome for h in p.status.history}
    assert outcomes[canary] == Outcome.PROMOTED and outcomes[stable] == Outcome.SUPERSEDED


def test_failed_analysis_rolls_back_and_is_not_retried() -> None:
    p, stable, canary, jobs = start_canary()
    revs = {stable: ready(2), canary: ready(1)}
    p = plan(obs(p.status, T0, training_jobs=jobs, revisions=revs, retrain_token="1", canary_counters=traffic(0)))
    p = plan(obs(p.status, T0 + timedelta(seconds=10), training_jobs=jobs, revisions=revs, retrain_token="1",
                 canary_counters=traffic(100, errors=30)))
    assert p.status.canary_revision is None and p.status.stable_revision == stable
    assert deployments(p) == {stable: 2}
    entry = next(h for h in p.status.history if h.revision == canary)
    assert entry.outcome == Outcome.ROLLED_BACK and "error ratio" in (entry.reason or "")
    assert entry.rolled_back_generation == 1
    assert any(e.reason == "RolledBack" and e.warning for e in p.events)
    # The same artifact is not tried again.
    again = plan(obs(p.status, T0 + timedelta(seconds=20), training_jobs=jobs, revisions={stable: ready(2)},
                     retrain_token="1"))
    assert again.status.canary_revision is None and again.status.phase == Phase.SERVING


def test_no_data_pauses_with_a_condition() -> None:
    p, stable, canary, jobs = start_canary()
    revs = {stable: ready(2), canary: ready(1)}
    p = plan(obs(p.status, T0, training_jobs=jobs, revisions=revs, retrain_token="1", canary_counters=traffic(0)))
    p = plan(obs(p.status, T0 + timedelta(seconds=40), training_jobs=jobs, revisions=revs, retrain_token="1",
                 canary_counters=traffic(3)))
    progressing = next(c for c in p.status.conditions if c.type == "Progressing")
    assert progressing.reason == "NoData" and "onNoData: pause" in progressing.message
    assert p.status.canary_step == 0


def test_a_version_that_fails_a_gate_never_gets_traffic() -> None:
    status, stable, jobs = serving_model()
    p = plan(obs(status, T0, training_jobs=jobs, revisions={stable: ready(2)}, retrain_token="x"))
    bad = (*jobs, tj("m-2", 2, succeeded("m-2", "c" * 64, accuracy=0.5), "manual"))
    p = plan(obs(p.status, T0, training_jobs=bad, revisions={stable: ready(2)}, retrain_token="x"))
    assert p.status.canary_revision is None and deployments(p) == {stable: 2}
    refused = next(h for h in p.status.history if h.training_job == "m-2")
    assert refused.outcome == Outcome.REFUSED and "accuracy 0.5 below min 0.8" in (refused.reason or "")
    trained = next(c for c in p.status.conditions if c.type == "Trained")
    assert trained.status == "False" and trained.reason == "GateFailed"
    assert {c.type: c.status for c in p.status.conditions}["Ready"] == "True"
    # Recorded once: a second pass adds no event.
    assert plan(obs(p.status, T0, training_jobs=bad, revisions={stable: ready(2)}, retrain_token="x")).events == []


def test_spec_change_retrains_and_drift_jobs_are_adopted() -> None:
    status, stable, jobs = serving_model()
    changed = SPEC.model_copy(update={"training": SPEC.training.model_copy(update={"task": "binary"})})  # type: ignore[union-attr]
    p = plan(obs(status, T0, spec=changed, training_jobs=jobs, revisions={stable: ready(2)}))
    assert created_job(p) == ("m-2", "spec-change")
    # A TrainingJob created by the DriftMonitor (m-3) becomes the current one.
    drift = (*jobs, tj("m-2", 2, running(), "spec-change"), tj("m-3", 3, running(), "drift"))
    p = plan(obs(p.status, T0, spec=changed, training_jobs=drift, revisions={stable: ready(2)}))
    assert created_job(p) is None and p.status.current_training_job == "m-3"
    assert p.status.history[0].training_job == "m-3" and p.status.history[0].trigger == "drift"


def test_source_model_deploys_without_training() -> None:
    spec = ModelSpec.model_validate({"source": {"uri": "s3://b/iris/model.onnx"}, "serving": {"replicas": 1},
                                     "rollout": {"strategy": "Recreate", "steps": []}})
    p = plan(obs(ModelStatus(), T0, spec=spec))
    rev = p.status.canary_revision
    assert created_job(p) is None and rev is not None and deployments(p) == {rev: 1}
    p = plan(obs(p.status, T0, spec=spec, revisions={rev: ready(1)}))
    assert p.status.stable_revision == rev and p.status.phase == Phase.SERVING


def test_failed_first_training_is_failed_phase() -> None:
    p = plan(obs(ModelStatus(), T0))
    failed = TrainingJobStatus.model_validate({"phase": "Failed", "reason": "InvalidData",
                                               "message": "column y is missing"})
    p = plan(obs(p.status, T0, training_jobs=(tj("m-1", 1, failed),)))
    assert p.status.phase == Phase.FAILED
    ready_c = next(c for c in p.status.conditions if c.type == "Ready")
    assert ready_c.status == "False" and "column y is missing" in ready_c.message
    assert "TrainingFailed" in event_reasons(p) or "InvalidData" in event_reasons(p)


def test_serving_change_makes_a_new_revision_of_the_same_artifact() -> None:
    status, stable, jobs = serving_model()
    spec = SPEC.model_copy(update={"serving": replace_serving(SPEC, max_batch_size=8)})
    p = plan(obs(status, T0, spec=spec, training_jobs=jobs, revisions={stable: ready(2)}))
    assert p.status.canary_revision not in (None, stable)


def replace_serving(spec: ModelSpec, **changes: Any) -> Any:
    return spec.serving.model_copy(update=changes)
