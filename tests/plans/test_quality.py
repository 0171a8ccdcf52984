"""Live quality (plans.quality): the plan from one observation (measure, read, judge, retrain), as table
tests; the quality Job and the retrain are children of the DriftMonitor's plan."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelship.api.driftmonitor import DriftMonitorSpec, DriftMonitorStatus
from modelship.api.groundtruth import PerformanceStatus, QualityState
from modelship.api.model import ModelSpec, ModelStatus
from modelship.logic import conditions as c
from modelship.plans.common import parse_spec
from modelship.plans.quality import (
    PERFORMANCE_DEGRADED,
    ObservedQualityJob,
    QualityObservation,
    QualityPlan,
    job_finished,
    job_name,
    judge,
    merged_status,
    parse_result,
    plan_quality,
    served_revisions,
    termination_message,
    wanted,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
STORE = "s3://bucket/artifacts"
MONITOR = {"apiVersion": "modelship.io/v1alpha1", "kind": "DriftMonitor",
           "metadata": {"name": "loans", "namespace": "ns", "uid": "u-dm"}}


def spec(**perf: Any) -> DriftMonitorSpec:
    return DriftMonitorSpec.model_validate({
        "modelRef": {"name": "loans"}, "interval": "20s",
        "action": {"cooldown": "10m", "maxPerDay": 3},
        "performance": {"metric": "accuracy", "floor": 0.85, "minLabelledRows": 100, "window": "1h",
                        "interval": "1m", "labels": [{"uri": "s3://bucket/labels/"}], **perf},
    })


def model(stable: str | None = "loans-aaa", training: bool = True, **retrain: Any) -> dict[str, Any]:
    history = [{"revision": "loans-aaa", "trainingJob": "loans-1", "artifactUri": f"{STORE}/ns/loans-1/",
                "outcome": "Promoted", "trigger": "initial"}]
    body: dict[str, Any] = {
        "metadata": {"name": "loans", "namespace": "ns", "uid": "u-1"}, "apiVersion": "modelship.io/v1alpha1",
        "kind": "Model",
        "spec": {"serving": {}, "retrain": {"cooldown": "10m", "maxPerDay": 5, **retrain}},
        "status": {"stableRevision": stable, "history": history if stable else [], "trainingJobsCreated": 1},
    }
    if training:
        body["spec"]["training"] = {"dataset": {"uri": "s3://bucket/data.csv", "target": "approved"},
                                    "candidates": [{"estimator": "LogisticRegression"}]}
    else:
        body["spec"]["source"] = {"uri": f"{STORE}/ns/loans-1/"}
    return body


def finished_job(message: str, failed: bool = False) -> ObservedQualityJob:
    """The Job named in status, finished, read back as the controller reads it."""
    job = {"metadata": {"name": "loans-quality-1"}, "status": {"conditions": [
        {"type": "Failed" if failed else "Complete", "status": "True"}]}}
    pod = {"status": {"containerStatuses": [{"name": "quality", "state": {"terminated": {
        "exitCode": 3 if failed else 0, "message": message, "finishedAt": "2026-12-03T11:59:59Z"}}}]}}
    return ObservedQualityJob("loans-quality-1", job_finished(job), termination_message([pod]))


def answer(value: float, labelled: int = 400, revision: str = "loans-aaa", **extra: Any) -> str:
    return json.dumps({"ok": True, "start": "2026-12-03T11:00:00Z", "end": "2026-12-03T12:00:00Z",
                       "predictions": 1000, "labelled": labelled, "seconds": 0.8, "revisions": [
                           {"revision": revision, "rows": 1000, "labelled": labelled,
                            "metrics": {"accuracy": value, "roc_auc": 0.9},
                            "estimates": {"accuracy": 0.91, "roc_auc": 0.95}}], **extra})


def obs(status: dict[str, Any] | None = None, m: dict[str, Any] | None = None, s: DriftMonitorSpec | None = None,
        **kw: Any) -> QualityObservation:
    body = m if m is not None else model()
    fields: dict[str, Any] = {
        "owner": MONITOR, "generation": 2, "spec": s or spec(),
        "status": DriftMonitorStatus.model_validate(status or {}), "now": NOW, "next_training_job": "loans-2",
        "default_store": STORE, "trainer_image": "reg/trainer:1",
    }
    if body:
        fields.update(model=body, model_spec=parse_spec(ModelSpec, body.get("spec")),
                      model_status=ModelStatus.model_validate(body.get("status") or {}))
    return QualityObservation(**{**fields, **kw})


def request_of(plan: QualityPlan) -> dict[str, Any]:
    assert plan.job is not None
    env = {e["name"]: e.get("value") for e in plan.job.obj["spec"]["template"]["spec"]["containers"][0]["env"]}
    return dict(json.loads(env["MODELSHIP_QUALITY_REQUEST"]))


def production_of(plan: QualityPlan) -> dict[str, Any] | None:
    assert plan.retrain is not None
    return plan.retrain.obj["spec"]["dataset"].get("production")


def in_flight(**perf: Any) -> dict[str, Any]:
    return {"performance": {"job": "loans-quality-1", "jobWindowEnd": "2026-12-03T11:59:00Z", **perf}}


def degraded_condition(plan: Any) -> Any:
    return next((cond for cond in plan.conditions if cond.type == PERFORMANCE_DEGRADED), None)


def test_first_reconcile_starts_a_measurement_of_the_window() -> None:
    plan = plan_quality(obs())
    assert plan.job is not None and plan.job.sync == ()  # created once, never patched
    name = plan.job.obj["metadata"]["name"]
    assert name == job_name("loans", "2026-12-03T12:00:00Z") and name.startswith("loans-quality-")
    assert plan.job.obj["metadata"]["ownerReferences"][0]["uid"] == "u-dm"
    assert plan.job.obj["spec"]["template"]["spec"]["containers"][0]["image"] == "reg/trainer:1"
    assert request_of(plan) == {
        "groundtruthUri": f"{STORE}/ns/_groundtruth/loans/",
        "labels": [{"uri": "s3://bucket/labels/", "idColumn": "request_id", "rowColumn": "row", "labelColumn": "label"}],
        "start": "2026-12-03T11:00:00Z", "end": "2026-12-03T12:00:00Z",
        "revisions": {"loans-aaa": f"{STORE}/ns/loans-1/"}, "estimate": True,
    }
    assert plan.performance is not None and plan.performance.job == name
    assert plan.performance.job_window_end == "2026-12-03T12:00:00Z"
    assert degraded_condition(plan).status == c.UNKNOWN and plan.retrain is None


@pytest.mark.parametrize(("last", "due"), [(NOW - timedelta(seconds=30), False), (NOW - timedelta(seconds=60), True)])
def test_measures_again_after_the_interval(last: datetime, due: bool) -> None:
    status = {"performance": {"lastEvaluated": c.rfc3339(last), "state": "Healthy"}}
    plan = plan_quality(obs(status))
    assert (plan.job is not None) is due
    assert wanted(spec(), DriftMonitorStatus.model_validate(status), NOW) is due


@pytest.mark.parametrize(("performance", "status", "want"), [
    (True, {}, True),  # never measured
    (True, {"performance": {"lastEvaluated": c.rfc3339(NOW), "state": "Healthy"}}, False),
    (True, {"performance": {"lastEvaluated": c.rfc3339(NOW), "job": "loans-quality-1"}}, True),  # poll it
    (False, {"performance": {"state": "Healthy"}}, True),  # removed: clear it
    (False, {}, False),
])
def test_wanted_says_when_live_quality_has_something_to_do(performance: bool, status: dict[str, Any],
                                                          want: bool) -> None:
    s = spec() if performance else DriftMonitorSpec.model_validate({"modelRef": {"name": "loans"}})
    assert wanted(s, DriftMonitorStatus.model_validate(status), NOW) is want


def test_a_job_in_flight_is_left_to_run() -> None:
    plan = plan_quality(obs(in_flight(), job=ObservedQualityJob("loans-quality-1")))
    # Still wanted (so not deleted), under its own name and window; nothing else changes.
    assert plan.job is not None and plan.job.obj["metadata"]["name"] == "loans-quality-1"
    assert request_of(plan)["end"] == "2026-12-03T11:59:00Z" and plan.conditions == [] and plan.retrain is None
    assert plan.performance is not None and plan.performance.job == "loans-quality-1"


def test_a_job_that_vanished_is_forgotten_and_measured_again() -> None:
    plan = plan_quality(obs(in_flight(), job=None))
    assert plan.job is not None and plan.job.obj["metadata"]["name"] != "loans-quality-1"


def test_a_healthy_answer_is_recorded_gauged_and_the_job_no_longer_wanted() -> None:
    plan = plan_quality(obs(in_flight(), job=finished_job(answer(0.91))))
    assert plan.job is None and plan.retrain is None and plan.children == []  # ensure deletes the Job read
    perf = plan.performance
    assert perf is not None and perf.state == QualityState.HEALTHY and perf.job is None
    assert perf.last_evaluated == "2026-12-03T12:00:00Z" and perf.window_end == "2026-12-03T12:00:00Z"
    (rev,) = perf.revisions
    assert (rev.revision, rev.value, rev.estimated, rev.labelled, rev.state) == ("loans-aaa", 0.91, 0.91, 400,
                                                                                   QualityState.HEALTHY)
    cond = degraded_condition(plan)
    assert cond.status == c.FALSE and cond.reason == "AtOrAboveFloor"
    assert "accuracy 0.91 on 400 labelled of 1000 predictions of loans-aaa" in cond.message
    assert ("loans-aaa", "accuracy", "realised", 0.91) in plan.gauges
    assert ("loans-aaa", "roc_auc", "estimated", 0.95) in plan.gauges
    assert ("loans-aaa", "labelled_rows", "realised", 400.0) in plan.gauges
    assert [e.reason for e in plan.events] == ["QualityMeasured"]


def test_a_drop_retrains_once_on_the_windows_production_rows() -> None:
    job = finished_job(answer(0.71))
    plan = plan_quality(obs(in_flight(), job=job))
    assert plan.retrain is not None and plan.retrain.sync == ()
    tj = plan.retrain.obj
    assert tj["kind"] == "TrainingJob" and tj["metadata"]["name"] == "loans-2"
    assert tj["spec"]["trigger"] == "performance" and tj["spec"]["championUri"] == f"{STORE}/ns/loans-1/"
    assert tj["metadata"]["ownerReferences"][0]["name"] == "loans"  # the Model owns it, not the monitor
    assert production_of(plan) == {
        "uri": f"{STORE}/ns/_groundtruth/loans/", "start": "2026-12-03T11:00:00Z", "end": "2026-12-03T12:00:00Z",
        "labels": [{"uri": "s3://bucket/labels/", "idColumn": "request_id", "rowColumn": "row", "labelColumn": "label"}],
        "includeTrainingData": False, "minRows": 100}
    perf = plan.performance
    assert perf is not None and perf.state == QualityState.DEGRADED
    assert perf.last_triggered_training_job == "loans-2" and perf.triggered_at == ["2026-12-03T12:00:00Z"]
    cond = degraded_condition(plan)
    assert cond.status == c.TRUE and cond.reason == "BelowFloor" and "created TrainingJob loans-2" in cond.message
    assert [(e.reason, e.warning) for e in plan.events] == [("RetrainTriggered", False),
                                                            ("PerformanceBelowFloor", True)]
    again = plan_quality(obs(in_flight(state="Degraded"), job=job, running_training_job="loans-2"))
    assert again.events == [] and again.retrain is None  # one Event per drop, not one per measurement


@pytest.mark.parametrize(("case", "why"), [
    ("a TrainingJob runs", "AlreadyRunning"),
    ("the last retrain's version is still a canary", "RollingOut"),
    ("cooling down after a drift retrain", "CoolingDown"),
    ("cooling down after a performance retrain", "CoolingDown"),
    ("the Model's limits, any monitor", "CoolingDown"),
    ("retrain off", "Disabled"),
    ("daily limit", "DailyLimit"),
])
def test_a_drop_does_not_retrain_within_the_limits(case: str, why: str) -> None:
    recent = c.rfc3339(NOW - timedelta(minutes=5))
    status = in_flight()
    kw: dict[str, Any] = {}
    s = spec()
    if case == "a TrainingJob runs":
        kw["running_training_job"] = "loans-2"
    elif case == "the last retrain's version is still a canary":
        kw["model_status"] = ModelStatus.model_validate({**(model().get("status") or {}),
                                                         "canaryRevision": "loans-5fe3d46daa"})
    elif case == "cooling down after a drift retrain":
        status["triggeredAt"] = [recent]
    elif case == "cooling down after a performance retrain":
        status["performance"]["triggeredAt"] = [recent]
    elif case == "the Model's limits, any monitor":
        kw["automatic_retrains"] = [recent]
    elif case == "retrain off":
        s = spec(retrain=False)
    elif case == "daily limit":
        status["performance"]["triggeredAt"] = [c.rfc3339(NOW - timedelta(hours=h)) for h in (3, 2, 1)]
    plan = plan_quality(obs(status, s=s, job=finished_job(answer(0.71)), **kw))
    assert plan.retrain is None and plan.decision is not None and plan.decision.reason == why
    assert degraded_condition(plan).status == c.TRUE and "no retrain" in degraded_condition(plan).message


def test_too_few_labels_gives_no_verdict_and_no_retrain() -> None:
    plan = plan_quality(obs(in_flight(), job=finished_job(answer(0.5, labelled=99))))
    assert plan.retrain is None and plan.performance is not None
    assert plan.performance.state == QualityState.NOT_ENOUGH_LABELS
    cond = degraded_condition(plan)
    assert cond.status == c.UNKNOWN and cond.reason == "NotEnoughLabels" and "minLabelledRows 100" in cond.message


def test_only_the_stable_revision_is_judged() -> None:
    plan = plan_quality(obs(in_flight(), job=finished_job(answer(0.5, revision="loans-old"))))
    assert plan.retrain is None and degraded_condition(plan).reason == "NoStableRevision"
    assert plan.performance is not None and plan.performance.revisions[0].state == QualityState.DEGRADED


@pytest.mark.parametrize(("message", "failed", "reason"), [
    ('{"ok": false, "reason": "StoreError", "message": "s3 down"}', True, "StoreError"),
    ("Traceback (most recent call last): ...", True, "QualityJobFailed"),
    ("", False, "QualityJobFailed"),
])
def test_a_failed_measurement_is_a_condition_and_an_event(message: str, failed: bool, reason: str) -> None:
    plan = plan_quality(obs(in_flight(state="Healthy"), job=finished_job(message, failed=failed)))
    cond = degraded_condition(plan)
    assert cond.status == c.UNKNOWN and cond.reason == "QualityJobFailed" and reason in cond.message
    assert plan.job is None and plan.retrain is None and plan.events[0].warning


def test_a_source_model_is_judged_but_not_retrained() -> None:
    plan = plan_quality(obs(in_flight(), m=model(training=False), job=finished_job(answer(0.5))))
    assert plan.retrain is None and "cannot be retrained" in degraded_condition(plan).message


def test_no_model_or_no_stable_revision_waits() -> None:
    gone = plan_quality(obs(in_flight(), m={}, job=ObservedQualityJob("loans-quality-1")))
    assert degraded_condition(gone).reason == "NoStableRevision"
    assert gone.job is None and gone.performance is not None and gone.performance.job is None  # given up
    plan = plan_quality(obs(m=model(stable=None)))
    assert plan.job is None and degraded_condition(plan).reason == "NoStableRevision"


def test_an_invalid_model_spec_is_a_condition_not_a_crash() -> None:
    plan = plan_quality(obs(model_spec="spec.serving.replicas: Input should be a valid integer"))
    cond = degraded_condition(plan)
    assert cond.reason == "InvalidModelSpec" and "replicas" in cond.message and plan.job is None


def test_removing_the_section_gives_up_the_job_and_clears_status() -> None:
    no_perf = DriftMonitorSpec.model_validate({"modelRef": {"name": "loans"}})
    plan = plan_quality(obs(in_flight(), s=no_perf, job=ObservedQualityJob("loans-quality-1")))
    assert plan.performance is None and plan.children == []  # the Job in flight is no longer wanted
    old = DriftMonitorStatus.model_validate({"performance": {"state": "Healthy"}, "conditions": [
        {"type": PERFORMANCE_DEGRADED, "status": "False"}, {"type": "Drifted", "status": "False"}]})
    new = merged_status(old, plan, NOW)
    assert new.performance is None and [x.type for x in new.conditions] == ["Drifted"]


def test_training_data_retrain_has_no_production_section() -> None:
    job = finished_job(answer(0.5))
    plan = plan_quality(obs(in_flight(), s=spec(retrainData="training"), job=job))
    assert plan.retrain is not None and production_of(plan) is None
    plan = plan_quality(obs(in_flight(), s=spec(retrainData="productionAndTraining"), job=job))
    data = production_of(plan)
    assert data is not None and data["includeTrainingData"] is True


def test_served_revisions_lists_stable_canary_then_history() -> None:
    m = model()
    m["status"]["canaryRevision"] = "loans-bbb"
    m["status"]["history"] = [
        {"revision": "loans-bbb", "artifactUri": "u2", "outcome": "Progressing"},
        {"revision": "loans-aaa", "artifactUri": "u1", "outcome": "Promoted"},
        {"revision": None, "artifactUri": "u0", "outcome": "Refused"},
        {"revision": "loans-zzz", "artifactUri": "u9", "outcome": "Superseded"},
    ]
    assert list(served_revisions(ModelStatus.model_validate(m["status"])).items()) == [
        ("loans-aaa", "u1"), ("loans-bbb", "u2"), ("loans-zzz", "u9")]


@pytest.mark.parametrize(("value", "labelled", "state"), [
    (0.86, 100, QualityState.HEALTHY), (0.85, 100, QualityState.HEALTHY), (0.849, 100, QualityState.DEGRADED),
    (0.5, 99, QualityState.NOT_ENOUGH_LABELS), (None, 500, QualityState.NOT_ENOUGH_LABELS),
])
def test_judge(value: float | None, labelled: int, state: QualityState) -> None:
    from modelship.api.groundtruth import RevisionQuality

    perf = spec().performance
    assert perf is not None
    assert judge(perf, RevisionQuality(revision="r", labelled=labelled, value=value)) == state


@pytest.mark.parametrize(("conditions", "finished"), [
    ([], None),
    ([{"type": "Complete", "status": "True"}], "Complete"),
    ([{"type": "SuccessCriteriaMet", "status": "True"}], "Complete"),
    ([{"type": "FailureTarget", "status": "True"}], "Failed"),
    ([{"type": "Failed", "status": "False"}], None),
])
def test_job_finished(conditions: list[dict[str, str]], finished: str | None) -> None:
    assert job_finished({"status": {"conditions": conditions}}) == finished


def test_parse_result_takes_the_floor_metric_and_skips_junk() -> None:
    r = parse_result(answer(0.8) + "\n", "accuracy")
    assert r.ok and r.revisions[0].value == 0.8 and r.revisions[0].estimated == 0.91
    assert parse_result('{"ok": true, "revisions": [{"rows": 3}, 7]}', "roc_auc").revisions == []
    assert not parse_result("not json", "accuracy").ok


def test_steady_state_changes_nothing_the_second_time() -> None:
    first = plan_quality(obs(in_flight(), job=finished_job(answer(0.91))))
    status = merged_status(DriftMonitorStatus.model_validate(in_flight()), first, NOW)
    later = NOW + timedelta(seconds=5)
    assert not wanted(spec(), status, later)  # the controller does not even look
    again = plan_quality(obs(status.wire(), now=later))
    after = merged_status(status, again, later)
    assert after == status and again.children == [] and again.events == []
    assert isinstance(status.performance, PerformanceStatus)


def test_a_retrain_the_schema_would_refuse_is_the_monitors_invalid_spec_not_a_crash() -> None:
    """The DriftMonitor's plan (drift and quality): a TrainingJob built from a Model spec that skipped
    validation (fairness without its group column) gives Ready False, not a failing reconcile."""
    from modelship.api.trainingjob import Fairness, Gates
    from modelship.plans.driftmonitor import Observation, ObservedModel, plan

    body = model()
    good = ModelSpec.model_validate(body["spec"])
    unchecked = good.model_copy(update={"gates": Gates(fairness=Fairness(max_demographic_parity_difference=0.1))})
    o = Observation(owner=MONITOR, generation=2, spec=spec(), status=DriftMonitorStatus.model_validate(in_flight()),
                    now=NOW, artifact_store=STORE, drift_due=False, quality_job=finished_job(answer(0.71)),
                    model=ObservedModel(body, unchecked, ModelStatus.model_validate(body["status"])))
    p = plan(o)
    ready = next(cond for cond in p.status.conditions if cond.type == "Ready")
    assert ready.status == c.FALSE and ready.reason == "InvalidSpec"
    assert "Model loans: the TrainingJobSpec" in ready.message and "sensitiveFeature" in ready.message
    assert not any(ch.obj["kind"] == "TrainingJob" for ch in p.children or [])
    assert [e.reason for e in p.events] == ["InvalidSpec"]
