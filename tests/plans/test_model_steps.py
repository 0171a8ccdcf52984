"""Table tests of the Model plan's steps (``plans.model``): each row is an observation (and the
draft the earlier steps left) and what the step makes of it."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from modelship.api.model import HistoryEntry, ModelSpec, ModelStatus, Outcome, Phase
from modelship.builders.common import PodEnvironment
from modelship.logic.canary import ActionKind
from modelship.logic.conditions import PROGRESSING, Reason, condition
from modelship.logic.podstart import Stuck
from modelship.plans.model import CLUSTER_RECHECK_SECONDS, plan
from modelship.plans.model.observation import Artifact, Draft
from modelship.plans.model.revision import candidate, fault_env, start
from modelship.plans.model.rollout import rollout
from modelship.plans.model.training import adopt, gates, retrain, retrain_trigger, training
from plans.model_support import (
    DEFAULTS,
    SPEC,
    T0,
    deployments,
    event_reasons,
    kinds,
    obs,
    ready,
    running,
    succeeded,
    tj,
    traffic,
)

A, B = "a" * 64, "b" * 64


def draft(status: ModelStatus | None = None, spec: ModelSpec = SPEC) -> Draft:
    status = status or ModelStatus()
    return Draft(status=status, spec=spec, history=tuple(status.history))


def status(**fields: Any) -> ModelStatus:
    return ModelStatus.model_validate(fields)


SERVED = {"stableRevision": "m-old", "trainingJobsCreated": 1, "currentTrainingJob": "m-1",
          "specHash": "x", "history": [{"revision": "m-old", "trainingJob": "m-1", "artifactUri": "s3://b/a/m-1/",
                                        "artifactSha256": A, "outcome": "Promoted"}]}


# --- retrain: why a TrainingJob starts --------------------------------------------------------

@pytest.mark.parametrize(("fields", "annotation", "expected"), [
    ({}, None, "initial"),
    ({"trainingJobsCreated": 1, "specHash": "stale"}, None, "spec-change"),
    ({"trainingJobsCreated": 1}, "now", "manual"),
    ({"trainingJobsCreated": 1, "retrainRequest": "now"}, "now", None),  # already acted on
    ({"trainingJobsCreated": 1, "retrainRequest": "now"}, None, None),
    ({"trainingJobsCreated": 1}, None, None),  # specHash unknown (older status): no spurious retrain
])
def test_retrain_trigger(fields: dict[str, Any], annotation: str | None, expected: str | None) -> None:
    d = draft(status(**fields))
    if fields.get("specHash") == "stale":
        d = replace(d, status=d.status.model_copy(update={"spec_hash": "0" * 16}))
    o = obs(d.status, T0, **({"retrain_token": annotation} if annotation else {}))
    got = retrain_trigger(o, d)
    assert (str(got) if got else None) == expected


def test_retrain_records_the_request_and_numbers_the_job() -> None:
    d = draft(status(trainingJobsCreated=2, specHash="x"))
    d = replace(d, status=d.status.model_copy(update={"spec_hash": retrain_hash()}))
    out = retrain(obs(d.status, T0, retrain_token="r1"), d)
    assert out.create == ("m-3", "manual") and out.status.retrain_request == "r1"
    assert out.status.current_training_job == "m-3" and out.history[0].outcome == Outcome.TRAINING
    again = retrain(obs(out.status, T0, retrain_token="r1"), replace(out, create=None))
    assert again.create is None


def retrain_hash() -> str:
    from modelship.logic.revision import spec_hash
    assert SPEC.training is not None
    return spec_hash(SPEC.training)


# --- adopt and training: which TrainingJob is current, and where it stands ---------------------

@pytest.mark.parametrize(("jobs", "current", "count"), [
    ((), None, 0),
    ((("m-1", 1),), "m-1", 1),
    ((("m-1", 1), ("m-3", 3)), "m-3", 3),  # a DriftMonitor's job is adopted
    ((("other-1", 1),), None, 0),  # not numbered for this Model: ignored upstream by observe
])
def test_adopt(jobs: tuple[tuple[str, int], ...], current: str | None, count: int) -> None:
    observed = tuple(tj(n, k, running()) for n, k in jobs if n.startswith("m-"))
    out = adopt(obs(ModelStatus(), T0, training_jobs=observed), draft())
    assert out.status.current_training_job == current and out.status.training_jobs_created == count


@pytest.mark.parametrize(("phase", "in_flight", "reason", "outcome"), [
    ("Running", True, "Training", "Training"),
    ("Pending", True, "Training", "Training"),
    ("Failed", False, "InvalidData", "Refused"),
    ("Succeeded", False, None, "Training"),  # left for the gates
])
def test_training(phase: str, in_flight: bool, reason: str | None, outcome: str) -> None:
    from modelship.api.trainingjob import TrainingJobStatus
    st = TrainingJobStatus.model_validate({"phase": phase, "reason": "InvalidData" if phase == "Failed" else None,
                                           "message": "no column y" if phase == "Failed" else None})
    base = status(trainingJobsCreated=1, currentTrainingJob="m-1",
                  history=[{"trainingJob": "m-1", "outcome": "Training"}])
    out = training(obs(base, T0, training_jobs=(tj("m-1", 1, st),)), draft(base))
    assert out.training_in_flight is in_flight
    assert (out.trained.reason if out.trained else None) == reason
    assert out.history[0].outcome == outcome


NO_SECRET = 'Pod m-1-x cannot start: container trainer: CreateContainerConfigError: secret "s3" not found'


@pytest.mark.parametrize(("tj_status", "reason", "message"), [
    ({"phase": "Running"}, "Training", "TrainingJob m-1 is running"),
    ({"phase": "Running", "reason": "PodNotStarting", "message": NO_SECRET}, "PodNotStarting",
     f"TrainingJob m-1 is running: {NO_SECRET}"),
    ({"phase": "Pending"}, "Training", "TrainingJob m-1 is running"),
])
def test_trained_relays_what_a_running_training_job_says(tj_status: dict[str, Any], reason: str,
                                                         message: str) -> None:
    from modelship.api.trainingjob import TrainingJobStatus
    base = status(trainingJobsCreated=1, currentTrainingJob="m-1",
                  history=[{"trainingJob": "m-1", "outcome": "Training"}])
    st = TrainingJobStatus.model_validate(tj_status)
    out = training(obs(base, T0, training_jobs=(tj("m-1", 1, st),)), draft(base))
    assert out.trained is not None and out.training_in_flight
    assert (out.trained.status, out.trained.reason, out.trained.message) == ("Unknown", reason, message)


@pytest.mark.parametrize(("accuracy", "allowed"), [(0.9, True), (0.8, True), (0.79, False)])
def test_gates(accuracy: float, allowed: bool) -> None:
    base = status(trainingJobsCreated=1, currentTrainingJob="m-1",
                  history=[{"trainingJob": "m-1", "outcome": "Training"}])
    o = obs(base, T0, training_jobs=(tj("m-1", 1, succeeded("m-1", A, accuracy)),))
    out = gates(o, training(o, draft(base)))
    assert out.trained is not None and (out.trained.reason == "GatesPassed") is allowed
    assert out.history[0].outcome == (Outcome.TRAINING if allowed else Outcome.REFUSED)
    assert out.history[0].artifact_sha256 == A
    assert [e.reason for e in out.events] == ([] if allowed else ["GateFailed"])


# --- candidate and start: which revision should serve --------------------------------------------

def through_gates(o: Any, d: Draft) -> Draft:
    for step in (adopt, retrain, training, gates, candidate):
        d = step(o, d)
    return d


@pytest.mark.parametrize(("history_extra", "jobs", "generation", "expect_artifact"), [
    # A new version that passed its gates.
    ([], [("m-2", 2, B)], 1, B),
    # Its artifact was rolled back at this generation: the stable's artifact stays the candidate.
    ([{"trainingJob": "m-2", "revision": "m-rb", "artifactUri": "s3://b/a/m-2/", "artifactSha256": B,
       "outcome": "RolledBack", "rolledBackGeneration": 1}], [("m-2", 2, B)], 1, A),
    # ... at an older generation: the spec changed since, so it is tried again.
    ([{"trainingJob": "m-2", "revision": "m-rb", "artifactUri": "s3://b/a/m-2/", "artifactSha256": B,
       "outcome": "RolledBack", "rolledBackGeneration": 1}], [("m-2", 2, B)], 2, B),
    # Still training: the stable's artifact.
    ([], [], 1, A),
])
def test_candidate(history_extra: list[dict[str, Any]], jobs: list[tuple[str, int, str]], generation: int,
                   expect_artifact: str) -> None:
    fields = {**SERVED, "history": [*history_extra, *SERVED["history"]]}
    if jobs:
        fields["trainingJobsCreated"] = 2
        fields["currentTrainingJob"] = "m-2"
    base = status(**fields)
    base = base.model_copy(update={"spec_hash": retrain_hash()})
    observed = (tj("m-1", 1, succeeded("m-1", A)), *(tj(n, k, succeeded(n, sha)) for n, k, sha in jobs))
    o = obs(base, T0, generation=generation, training_jobs=observed, revisions={"m-old": ready(2)})
    out = through_gates(o, draft(base))
    assert out.candidate is not None and out.candidate.artifact.sha256 == expect_artifact


def test_a_source_model_candidate_is_its_source() -> None:
    spec = ModelSpec.model_validate({"source": {"uri": "s3://b/x/", "sha256": B}})
    out = through_gates(obs(ModelStatus(), T0, spec=spec), draft(spec=spec))
    assert out.candidate is not None and out.candidate.artifact == Artifact("s3://b/x/", B)


@pytest.mark.parametrize(("fields", "starts"), [
    ({}, True),  # nothing serves: the candidate is deployed
    ({"history": [{"revision": "CAND", "outcome": "RolledBack", "rolledBackGeneration": 1}]}, False),
])
def test_start(fields: dict[str, Any], starts: bool) -> None:
    spec = ModelSpec.model_validate({"source": {"uri": "s3://b/x/", "sha256": B}})
    o = obs(ModelStatus(), T0, spec=spec)
    d = through_gates(o, draft(spec=spec))
    assert d.candidate is not None
    history = [{**h, "revision": d.candidate.revision if h.get("revision") == "CAND" else h.get("revision")}
               for h in fields.get("history", [])]
    d = replace(d, history=tuple(HistoryEntry.model_validate(h) for h in history))
    out = start(o, d)
    assert (out.status.canary_revision == d.candidate.revision) is starts
    assert ("started" in out.rollout_events) is starts


# --- every field that reaches the pods rolls out; nothing else does -----------------------------

SERVING_CHANGES = [
    ("serving.image", {"serving": {"replicas": 2, "image": "example.org/other:2"}}, True),
    ("serving.resources", {"serving": {"replicas": 2, "resources": {"limits": {"memory": "2Gi"}}}}, True),
    ("serving.maxBatchSize", {"serving": {"replicas": 2, "maxBatchSize": 8}}, True),
    ("serving.maxBatchDelayMs", {"serving": {"replicas": 2, "maxBatchDelayMs": 5}}, True),
    ("serving.topologySpreadConstraints",
     {"serving": {"replicas": 2, "topologySpreadConstraints": [{"topologyKey": "topology.kubernetes.io/zone"}]}}, True),
    ("serving.topologySpreadConstraints=[]", {"serving": {"replicas": 2, "topologySpreadConstraints": []}}, True),
    ("serving.replicas", {"serving": {"replicas": 3}}, False),
    ("serving.podDisruptionBudget", {"serving": {"replicas": 2, "podDisruptionBudget": {"maxUnavailable": 1}}}, False),
    ("serving.autoscaling", {"serving": {"replicas": 2, "autoscaling": {"maxReplicas": 4}}}, False),
    ("rollout.steps", {"rollout": {"steps": [{"weight": 10}]}}, False),
    ("gates", {"gates": {"thresholds": [{"metric": "accuracy", "min": 0.5}]}}, False),
]


@pytest.mark.parametrize(("field", "change", "rolls"), SERVING_CHANGES, ids=[c[0] for c in SERVING_CHANGES])
def test_each_field_reaching_the_pods_starts_a_rollout(field: str, change: dict[str, Any], rolls: bool) -> None:
    served, stable = serving()
    spec = ModelSpec.model_validate({**SPEC.model_dump(by_alias=True, exclude_none=True), **change})
    p = plan(obs(served, T0, spec=spec, generation=2, training_jobs=JOBS, revisions={stable: ready(2)}))
    assert (p.status.canary_revision is not None) is rolls, field


@pytest.mark.parametrize(("default", "value"), [
    ("serving_image", "docker.io/modelship/serving:0.2.0"),
    ("environment", PodEnvironment(s3_endpoint_url="http://s3.example:9000")),
])
def test_an_operator_default_reaching_the_pods_rolls_every_model_with_an_event(default: str, value: Any) -> None:
    served, stable = serving()
    o = obs(served, T0, training_jobs=JOBS, revisions={stable: ready(2, template=True)})
    o = replace(o, defaults=replace(DEFAULTS, **{default: value}))
    p = plan(o)
    assert p.status.canary_revision not in (None, stable)
    started = next(e for e in p.events if e.reason == "RolloutStarted")
    assert "the pod template changed" in started.message
    assert (value if isinstance(value, str) else "AWS_ENDPOINT_URL") in started.message


JOBS = (tj("m-1", 1, succeeded("m-1", A)),)


def serving() -> tuple[ModelStatus, str]:
    p = plan(obs(ModelStatus(), T0))
    p = plan(obs(p.status, T0, training_jobs=JOBS))
    rev = p.status.canary_revision
    assert rev is not None
    p = plan(obs(p.status, T0, training_jobs=JOBS, revisions={rev: ready(2)}))
    assert p.status.phase == Phase.SERVING
    return p.status, rev


# --- rollout: the canary's next action ---------------------------------------------------------

def canary_status(step: int = 0, started: bool = True, served: bool | None = None) -> ModelStatus:
    """``served``: whether the step's weight has been served (by default, since the step began)."""
    served = started if served is None else served
    return status(stableRevision="m-s", canaryRevision="m-c", canaryStep=step, trainingJobsCreated=1,
                  stepStartedAt="2026-11-23T12:00:00Z" if started else None,
                  rollout={"startedAt": "2026-11-23T12:00:00Z",
                           **({"weightSince": "2026-11-23T12:00:00Z"} if served else {}),
                           "baseline": [{"pod": "canary-0", "byCode": {"200": 0}}]},
                  history=[{"revision": "m-c", "outcome": "Progressing", "artifactUri": "s3://b/c/"},
                           {"revision": "m-s", "outcome": "Promoted", "artifactUri": "s3://b/s/"}])


@pytest.mark.parametrize(("name", "fields", "revisions", "after", "counters", "kind", "replicas"), [
    ("canary missing: scale it up beside the full stable", dict(started=False), {"m-s": (2, 2)}, 0, None,
     ActionKind.SCALE, {"m-s": 2, "m-c": 1}),
    ("canary not ready: the stable keeps its pods", dict(started=False), {"m-s": (2, 2), "m-c": (1, 0)}, 0, None,
     ActionKind.WAIT, {"m-s": 2, "m-c": 1}),
    ("ready: the step starts", dict(started=False), {"m-s": (2, 2), "m-c": (1, 1)}, 0, traffic(0),
     ActionKind.START_STEP, {"m-s": 2, "m-c": 1}),
    ("pausing", {}, {"m-s": (2, 2), "m-c": (1, 1)}, 10, traffic(50), ActionKind.WAIT, {"m-s": 2, "m-c": 1}),
    ("errors: rolled back at once", {}, {"m-s": (2, 2), "m-c": (1, 1)}, 10, traffic(100, 40),
     ActionKind.ROLLBACK, {"m-s": 2}),
    ("pause over, healthy: advance to 50% (the stable gives up what the ready canary replaces)", {},
     {"m-s": (2, 2), "m-c": (1, 1)}, 31, traffic(100), ActionKind.ADVANCE, {"m-s": 1, "m-c": 1}),
    ("a later step's pods ready after its pause: its weight is served and judged an interval first",
     dict(step=1, served=False), {"m-s": (1, 1), "m-c": (1, 1)}, 200, traffic(100), ActionKind.AT_WEIGHT,
     {"m-s": 1, "m-c": 1}),
    ("last step passed: promote", dict(step=2), {"m-s": (0, 0), "m-c": (2, 2)}, 0, None, ActionKind.PROMOTE,
     {"m-c": 2}),
])
def test_rollout(name: str, fields: dict[str, Any], revisions: dict[str, tuple[int, int]], after: int,
                 counters: Any, kind: ActionKind, replicas: dict[str, int]) -> None:
    from datetime import timedelta
    st = canary_status(**fields)
    o = obs(st, T0 + timedelta(seconds=after), revisions={r: ready(n, k) for r, (n, k) in revisions.items()},
            canary_counters=counters)
    out = rollout(o, draft(st))
    assert out.action is not None and out.action.kind == kind, (name, out.action)
    assert dict(out.replicas) == replicas, name


def test_the_canary_is_judged_once_per_interval_not_on_every_pass() -> None:
    """Step 1 began at T0 (5 s interval, 30 s pause). A judgement is recorded, and the next is an
    interval later: judging on every pass after the first interval put "so far N requests" in
    Progressing each time, so each status write set off the next reconcile, ~7 a second under load."""
    from datetime import timedelta
    st = canary_status()
    seen = {"m-s": ready(2), "m-c": ready(1)}
    first = rollout(obs(st, T0 + timedelta(seconds=6), revisions=seen, canary_counters=traffic(50)), draft(st))
    assert first.status.rollout is not None and first.status.rollout.analysed_at == "2026-11-23T12:00:06Z"
    assert first.progressing is not None and "so far 50 requests" in first.progressing.message
    assert first.requeue_after == 5.0
    written = first.status.model_copy(update={"conditions": [first.progressing]})  # as the status is written
    again = rollout(obs(written, T0 + timedelta(seconds=6.5), revisions=seen, canary_counters=traffic(60)),
                    draft(written))
    assert again.status.rollout is not None and again.status.rollout.analysed_at == "2026-11-23T12:00:06Z"
    assert again.requeue_after == pytest.approx(4.5)
    # Between judgements Progressing stays word for word (the step's end is a time, not "N s left",
    # and the last figures are kept), so the status is not rewritten on every reconcile.
    assert again.progressing is not None and again.progressing.message == first.progressing.message
    assert first.progressing.message == ("Analysing step 1/2 (25%) until 2026-11-23T12:00:30Z; "
                                         "so far 50 requests, 0.00% errors, p99 10.0 ms"), first.progressing.message
    later = rollout(obs(written, T0 + timedelta(seconds=11), revisions=seen, canary_counters=traffic(80)),
                    draft(written))
    assert later.progressing is not None and "so far 80 requests" in later.progressing.message


def test_the_last_figures_live_in_status_rollout_not_in_the_condition_text() -> None:
    """The figures Progressing shows between judgements come from ``status.rollout.figures`` (typed,
    in the CRD), not from re-reading the condition's text: a status whose Progressing was replaced
    (another writer, an older operator) still shows them, and a new step starts without them."""
    from datetime import timedelta
    st = canary_status()
    seen = {"m-s": ready(2), "m-c": ready(1)}
    first = rollout(obs(st, T0 + timedelta(seconds=6), revisions=seen, canary_counters=traffic(50)), draft(st))
    assert first.status.rollout is not None
    assert first.status.rollout.figures == "50 requests, 0.00% errors, p99 10.0 ms"
    other = condition("Progressing", True, "Analysing", "written by someone else")
    written = first.status.model_copy(update={"conditions": [other]})
    again = rollout(obs(written, T0 + timedelta(seconds=7), revisions=seen, canary_counters=traffic(60)),
                    draft(written))
    assert first.progressing is not None and again.progressing is not None
    assert again.progressing.message == first.progressing.message
    passed = rollout(obs(written, T0 + timedelta(seconds=31), revisions=seen, canary_counters=traffic(100)),
                     draft(written))
    assert passed.action is not None and passed.action.kind == ActionKind.ADVANCE
    assert passed.status.rollout is not None and passed.status.rollout.figures is None


def test_a_step_served_late_records_when_and_passes_an_interval_later() -> None:
    """Step 2 (50 %, 30 s pause, 5 s interval) began at T0; its pod was ready only at 200 s. The
    status keeps when its weight began, the next look is an interval later, and then it passes."""
    from datetime import timedelta
    st = canary_status(step=1, served=False)
    assert st.rollout is not None
    st = st.model_copy(update={"rollout": st.rollout.model_copy(update={"analysed_at": "2026-11-23T12:03:20Z"})})
    seen = {"m-s": ready(1), "m-c": ready(1)}
    now = T0 + timedelta(seconds=200)  # 12:03:20, when it was also analysed
    out = rollout(obs(st, now, revisions=seen, canary_counters=traffic(100)), draft(st))
    assert out.status.rollout is not None and out.status.rollout.weight_since == "2026-11-23T12:03:20Z"
    assert out.requeue_after == 5.0
    early = rollout(obs(out.status, now + timedelta(seconds=4), revisions=seen, canary_counters=traffic(150)),
                    draft(out.status))
    assert early.action is not None and early.action.kind == ActionKind.WAIT, early.action
    done = rollout(obs(out.status, now + timedelta(seconds=5), revisions=seen, canary_counters=traffic(200)),
                   draft(out.status))
    assert done.action is not None and done.action.kind == ActionKind.PROMOTE, done.action


# --- children: what the Model owns --------------------------------------------------------------

@pytest.mark.parametrize(("spec_extra", "gateway", "expected"), [
    ({}, False, ["Deployment", "Service"]),
    ({"serving": {"replicas": 2, "autoscaling": {"maxReplicas": 4}}}, False,
     ["Deployment", "Service", "HorizontalPodAutoscaler"]),
    ({"rollout": {"trafficRouting": "gatewayAPI", "gateway": {"name": "gw"}}}, True,
     ["Deployment", "Service", "Service", "HTTPRoute"]),
    ({"serving": {"replicas": 2, "podDisruptionBudget": {"minAvailable": "50%"}}}, False,
     ["Deployment", "Service", "PodDisruptionBudget"]),
])
def test_children_of_a_serving_model(spec_extra: dict[str, Any], gateway: bool, expected: list[str]) -> None:
    served, stable = serving()
    spec = ModelSpec.model_validate({**SPEC.model_dump(by_alias=True, exclude_none=True), **spec_extra})
    p = plan(obs(served, T0, spec=spec, training_jobs=JOBS, revisions={stable: ready(2)}, gateway_api=gateway))
    assert [k for k, _ in kinds(p)] == expected
    assert deployments(p) == {stable: 2}
    syncs = {c.obj["kind"]: c.sync for c in p.children or []}
    assert syncs["Deployment"] == ("spec.replicas",)  # a revision's template is fixed by its name


@pytest.mark.parametrize(("log", "routed"), [
    (None, False),
    ({}, False),  # no token: anyone through the Gateway could post labels
    ({"enabled": False, "feedbackTokenSecret": {"name": "t", "key": "token"}}, False),
    ({"feedbackTokenSecret": {"name": "t", "key": "token"}}, True),
])
def test_the_httproute_takes_feedback_only_behind_a_token(log: dict[str, Any] | None, routed: bool) -> None:
    served, stable = serving()
    serving_spec = {**SPEC.serving.model_dump(by_alias=True, exclude_none=True),
                    **({"predictionLog": log} if log is not None else {})}
    spec = ModelSpec.model_validate({**SPEC.model_dump(by_alias=True, exclude_none=True), "serving": serving_spec,
                                     "rollout": {"trafficRouting": "gatewayAPI", "gateway": {"name": "gw"}}})
    p = plan(obs(served, T0, spec=spec, training_jobs=JOBS, revisions={stable: ready(2)}, gateway_api=True))
    route = next(c.obj for c in p.children or [] if c.obj["kind"] == "HTTPRoute")
    paths = [m["path"]["value"] for r in route["spec"]["rules"] for m in r["matches"]]
    assert ("/v2/models/m/feedback" in paths) is routed
    assert "/v2/models/m/infer" in paths and not any(p in ("/", "/metrics") or p.endswith("/artifact") for p in paths)


@pytest.mark.parametrize(("budget", "bound", "absent"), [
    ({}, {"maxUnavailable": 1}, ("spec.minAvailable",)),
    ({"maxUnavailable": "25%"}, {"maxUnavailable": "25%"}, ("spec.minAvailable",)),
    ({"minAvailable": 1}, {"minAvailable": 1}, ("spec.maxUnavailable",)),
])
def test_the_budget_covers_the_stable_and_clears_the_other_bound(
        budget: dict[str, Any], bound: dict[str, Any], absent: tuple[str, ...]) -> None:
    served, stable = serving()
    spec = ModelSpec.model_validate({**SPEC.model_dump(by_alias=True, exclude_none=True),
                                     "serving": {"replicas": 2, "podDisruptionBudget": budget}})
    p = plan(obs(served, T0, spec=spec, training_jobs=JOBS, revisions={stable: ready(2)}))
    pdb = next(c for c in p.children or [] if c.obj["kind"] == "PodDisruptionBudget")
    assert pdb.obj["metadata"]["name"] == "m" and pdb.sync is None and pdb.absent == absent
    assert pdb.obj["spec"] == {"selector": {"matchLabels": {"modelship.io/model": "m", "modelship.io/revision": stable}},
                               "unhealthyPodEvictionPolicy": "AlwaysAllow", **bound}


def test_no_budget_before_a_stable_exists() -> None:
    spec = ModelSpec.model_validate({**SPEC.model_dump(by_alias=True, exclude_none=True),
                                     "serving": {"replicas": 2, "podDisruptionBudget": {}}})
    p = plan(obs(ModelStatus(), T0, spec=spec))
    p = plan(obs(p.status, T0, spec=spec, training_jobs=JOBS))
    assert p.status.canary_revision is not None and p.status.stable_revision is None
    assert "PodDisruptionBudget" not in [k for k, _ in kinds(p)]


def test_an_invalid_spec_leaves_the_children_alone() -> None:
    served, _ = serving()
    p = plan(obs(served, T0, spec="spec.serving.replicas: Input should be a valid integer"))
    assert p.children is None and p.status.stable_revision == served.stable_revision
    assert [e.reason for e in p.events] == ["InvalidSpec"]
    assert plan(obs(p.status, T0, spec="spec.serving.replicas: Input should be a valid integer")).events == []


def test_gateway_api_missing_is_an_invalid_spec() -> None:
    spec = ModelSpec.model_validate({**SPEC.model_dump(by_alias=True, exclude_none=True),
                                     "rollout": {"trafficRouting": "gatewayAPI", "gateway": {"name": "gw"}}})
    p = plan(obs(ModelStatus(), T0, spec=spec, gateway_api=False))
    ready_c = next(c for c in p.status.conditions if c.type == "Ready")
    assert ready_c.reason == "InvalidSpec" and "Gateway API" in ready_c.message and p.children is None
    # Failed and so at rest, yet the cure is in the cluster: it looks again without an event.
    assert p.requeue_after == CLUSTER_RECHECK_SECONDS
    installed = plan(obs(p.status, T0, spec=spec, gateway_api=True))
    assert next(c for c in installed.status.conditions if c.type == "Ready").reason != "InvalidSpec"
    assert installed.children is not None  # planned as usual once the API is there


# --- the test-fault annotation (test-only, and narrow) --------------------------------------------

@pytest.mark.parametrize(("allowed", "raw", "expected"), [
    (True, None, None),
    (True, json.dumps({"MODELSHIP_FAULT_ERROR_RATIO": "0.5"}), {"MODELSHIP_FAULT_ERROR_RATIO": "0.5"}),
    (True, json.dumps({"MODELSHIP_EXPECTED_SHA256": ""}), "only MODELSHIP_FAULT_* variables are accepted"),
    (True, json.dumps({"LD_PRELOAD": "/x.so"}), "only MODELSHIP_FAULT_* variables are accepted"),
    (True, "{not json", "it is not JSON"),
    (True, "[1]", "must be a JSON object"),
    (False, json.dumps({"MODELSHIP_FAULT_ERROR_RATIO": "0.5"}), "test faults are off"),
])
def test_fault_env(allowed: bool, raw: str | None, expected: Any) -> None:
    o = obs(ModelStatus(), T0, annotations={"modelship.io/test-canary-env": raw} if raw else {})
    o = replace(o, defaults=replace(DEFAULTS, allow_test_faults=allowed))
    got = fault_env(o)
    if isinstance(expected, str):
        assert isinstance(got, str) and expected in got
    else:
        assert got == expected


def test_fault_variables_reach_only_a_new_version_and_refusals_are_visible() -> None:
    served, stable = serving()
    note = json.dumps({"MODELSHIP_FAULT_ERROR_RATIO": "0.5"})
    jobs = (*JOBS, tj("m-2", 2, succeeded("m-2", B), "manual"))
    o = obs(served, T0, training_jobs=jobs, revisions={stable: ready(2)},
            annotations={"modelship.io/test-canary-env": note})
    o = replace(o, defaults=replace(DEFAULTS, allow_test_faults=True))
    p = plan(o)
    env = {c.obj["metadata"]["name"]: {e["name"]: e["value"] for e in
                                       c.obj["spec"]["template"]["spec"]["containers"][0]["env"]}
           for c in p.children or [] if c.obj["kind"] == "Deployment"}
    assert env[stable].get("MODELSHIP_FAULT_ERROR_RATIO") is None  # the stable is untouched
    assert env[p.status.canary_revision or ""]["MODELSHIP_FAULT_ERROR_RATIO"] == "0.5"
    # Off in the operator: ignored, with a Warning Event when it would have applied.
    off = plan(replace(o, defaults=DEFAULTS))
    ignored = next(e for e in off.events if e.reason == "TestFaultsIgnored")
    assert ignored.warning and "test faults are off" in ignored.message
    assert all("MODELSHIP_FAULT_ERROR_RATIO" not in json.dumps(c.obj) for c in off.children or [])
    # Invalid while allowed: a condition says so, and no variable is passed.
    bad = plan(replace(o, annotations={"modelship.io/test-canary-env": "{oops"}))
    faults = next(c for c in bad.status.conditions if c.type == "TestFaults")
    assert faults.status == "False" and "not JSON" in faults.message


# --- a deploying revision whose pods cannot start ------------------------------------------------

PULL = Stuck("m-c-5d9-x", "server", "ErrImagePull", 'failed to pull "registry.invalid/serve:1": no such host')
BACKOFF = Stuck("m-c-5d9-x", "server", "ImagePullBackOff", 'Back-off pulling image "registry.invalid/serve:1"')
SECRET = Stuck("m-c-5d9-x", "server", "CreateContainerConfigError", 'secret "s3" not found')
NO_NODE = Stuck("m-c-5d9-x", None, "Unschedulable", "0/1 nodes are available: 1 Insufficient cpu.")
NO_NODE_AGAIN = Stuck("m-c-5d9-x", None, "Unschedulable", "0/1 nodes are available: 1 Insufficient memory.")


@pytest.mark.parametrize(("name", "before", "stuck", "message", "event"), [
    ("named at once, with one Warning Event", None, PULL, "ErrImagePull: failed to pull", True),
    ("the pull's back-off keeps the first words: no new Event", PULL, BACKOFF, "ErrImagePull: failed to pull", False),
    ("another reason is a new Event", PULL, SECRET, 'CreateContainerConfigError: secret "s3" not found', True),
    ("the same reason again: quiet", SECRET, SECRET, 'secret "s3" not found', False),
    ("no node fits: the scheduler's words", None, NO_NODE, "Unschedulable: 0/1 nodes are available: 1 Insufficient cpu.",
     True),
    ("the scheduler's retry keeps the first words: no new Event", NO_NODE, NO_NODE_AGAIN, "Insufficient cpu.", False),
])
def test_a_canary_whose_pods_cannot_start_says_why(name: str, before: Stuck | None, stuck: Stuck, message: str,
                                                   event: bool) -> None:
    st = canary_status(started=False)
    if before is not None:
        st = st.model_copy(update={"conditions": [condition(PROGRESSING, True, Reason.POD_NOT_STARTING,
                                                            before.message())]})
    o = obs(st, T0, revisions={"m-s": ready(2), "m-c": ready(1, 0)}, canary_stuck=(stuck,))
    out = rollout(o, draft(st))
    assert out.action is not None and out.action.kind == ActionKind.WAIT, name
    assert out.progressing is not None and out.progressing.reason == Reason.POD_NOT_STARTING, name
    assert out.progressing.message.startswith(stuck.prefix) and message in out.progressing.message, \
        (name, out.progressing.message)
    warnings = [e for e in out.events if e.reason == Reason.POD_NOT_STARTING and e.warning]
    assert len(warnings) == (1 if event else 0), name
    assert dict(out.replicas) == {"m-s": 2, "m-c": 1}, name  # the stable keeps serving in full


def test_a_stuck_canary_rolled_back_at_its_deadline_says_why() -> None:
    from datetime import timedelta
    st = canary_status(started=False)
    o = obs(st, T0 + timedelta(minutes=11), revisions={"m-s": ready(2), "m-c": ready(1, 0)}, canary_stuck=(SECRET,))
    out = rollout(o, draft(st))
    assert out.action is not None and out.action.kind == ActionKind.ROLLBACK
    entry = next(e for e in out.history if e.revision == "m-c")
    assert entry.outcome == Outcome.ROLLED_BACK and 'secret "s3" not found' in (entry.reason or "")


def test_a_first_version_whose_pods_cannot_start_is_not_ready_and_says_why() -> None:
    p = plan(obs(ModelStatus(), T0))
    p = plan(obs(p.status, T0, training_jobs=JOBS))
    rev = p.status.canary_revision
    assert rev is not None
    p = plan(obs(p.status, T0, training_jobs=JOBS, revisions={rev: ready(2, 0)}, canary_stuck=(PULL,)))
    ready_ = next(c for c in p.status.conditions if c.type == "Ready")
    assert ready_.status == "False" and ready_.reason == Reason.POD_NOT_STARTING and "ErrImagePull" in ready_.message
    assert p.status.phase == Phase.PROGRESSING and event_reasons(p).count(Reason.POD_NOT_STARTING) == 1
    # Fixed (the pod starts): the reason goes.
    p = plan(obs(p.status, T0, training_jobs=JOBS, revisions={rev: ready(2)}))
    assert p.status.phase == Phase.SERVING
    assert all(c.reason != Reason.POD_NOT_STARTING for c in p.status.conditions)
