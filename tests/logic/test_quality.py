"""Live quality: the plan from one observation (measure, read, judge, retrain), as table tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelship.api.driftmonitor import DriftMonitorSpec, DriftMonitorStatus
from modelship.api.groundtruth import PerformanceStatus, QualityState
from modelship.logic import conditions as c
from modelship.logic.quality import (
    PERFORMANCE_DEGRADED,
    QualityObservation,
    job_name,
    judge,
    merged_status,
    parse_result,
    plan_quality,
    served_revisions,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
STORE = "s3://bucket/artifacts"


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


def finished_job(message: str, failed: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    job = {"metadata": {"name": "x"}, "status": {"conditions": [
        {"type": "Failed" if failed else "Complete", "status": "True"}]}}
    pod = {"status": {"containerStatuses": [{"name": "quality", "state": {"terminated": {
        "exitCode": 3 if failed else 0, "message": message, "finishedAt": "2026-12-03T11:59:59Z"}}}]}}
    return job, [pod]


def answer(value: float, labelled: int = 400, revision: str = "loans-aaa", **extra: Any) -> str:
    return json.dumps({"ok": True, "start": "2026-12-03T11:00:00Z", "end": "2026-12-03T12:00:00Z",
                       "predictions": 1000, "labelled": labelled, "seconds": 0.8, "revisions": [
                           {"revision": revision, "rows": 1000, "labelled": labelled,
                            "metrics": {"accuracy": value, "roc_auc": 0.9},
                            "estimates": {"accuracy": 0.91, "roc_auc": 0.95}}], **extra})


def obs(status: dict[str, Any] | None = None, m: dict[str, Any] | None = None, s: DriftMonitorSpec | None = None,
        **kw: Any) -> QualityObservation:
    fields: dict[str, Any] = {
        "namespace": "ns", "monitor": "loans", "generation": 2, "spec": s or spec(),
        "status": DriftMonitorStatus.model_validate(status or {}), "model": m if m is not None else model(),
        "next_training_job": "loans-2", "default_store": STORE, "now": NOW, **kw,
    }
    return QualityObservation(**fields)


def in_flight(**perf: Any) -> dict[str, Any]:
    return {"performance": {"job": "loans-quality-1", "jobWindowEnd": "2026-12-03T11:59:00Z", **perf}}


def degraded_condition(plan: Any) -> Any:
    return next((cond for cond in plan.conditions if cond.type == PERFORMANCE_DEGRADED), None)


def test_first_reconcile_starts_a_measurement_of_the_window() -> None:
    plan = plan_quality(obs())
    assert plan.create_job is not None
    name, request = plan.create_job
    assert name == job_name("loans", "2026-12-03T12:00:00Z") and name.startswith("loans-quality-")
    assert request == {
        "groundtruthUri": f"{STORE}/ns/_groundtruth/loans/",
        "labels": [{"uri": "s3://bucket/labels/", "idColumn": "request_id", "rowColumn": "row", "labelColumn": "label"}],
        "start": "2026-12-03T11:00:00Z", "end": "2026-12-03T12:00:00Z",
        "revisions": {"loans-aaa": f"{STORE}/ns/loans-1/"}, "estimate": True,
    }
    assert plan.performance is not None and plan.performance.job == name
    assert degraded_condition(plan).status == c.UNKNOWN and plan.retrain is None


@pytest.mark.parametrize(("last", "due"), [(NOW - timedelta(seconds=30), False), (NOW - timedelta(seconds=60), True)])
def test_measures_again_after_the_interval(last: datetime, due: bool) -> None:
    plan = plan_quality(obs({"performance": {"lastEvaluated": c.rfc3339(last), "state": "Healthy"}}))
    assert (plan.create_job is not None) is due


def test_a_job_in_flight_is_left_to_run() -> None:
    running = {"metadata": {"name": "loans-quality-1"}, "status": {"active": 1}}
    plan = plan_quality(obs(in_flight(), job=running))
    assert plan.create_job is None and plan.delete_job is None and plan.conditions == []
    assert plan.performance is not None and plan.performance.job == "loans-quality-1"


def test_a_job_that_vanished_is_forgotten_and_measured_again() -> None:
    plan = plan_quality(obs(in_flight(), job=None))
    assert plan.create_job is not None and plan.create_job[0] != "loans-quality-1"


def test_a_healthy_answer_is_recorded_gauged_and_the_job_deleted() -> None:
    job, pods = finished_job(answer(0.91))
    plan = plan_quality(obs(in_flight(), job=job, job_pods=pods))
    assert plan.delete_job == "loans-quality-1" and plan.create_job is None and plan.retrain is None
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


def test_a_drop_retrains_once_on_the_windows_production_rows() -> None:
    job, pods = finished_job(answer(0.71))
    plan = plan_quality(obs(in_flight(), job=job, job_pods=pods))
    assert plan.retrain is not None
    name, data, champion = plan.retrain
    assert name == "loans-2" and champion == f"{STORE}/ns/loans-1/"
    assert data is not None and data.wire() == {
        "uri": f"{STORE}/ns/_groundtruth/loans/", "start": "2026-12-03T11:00:00Z", "end": "2026-12-03T12:00:00Z",
        "labels": [{"uri": "s3://bucket/labels/", "idColumn": "request_id", "rowColumn": "row", "labelColumn": "label"}],
        "includeTrainingData": False, "minRows": 100}
    perf = plan.performance
    assert perf is not None and perf.state == QualityState.DEGRADED
    assert perf.last_triggered_training_job == "loans-2" and perf.triggered_at == ["2026-12-03T12:00:00Z"]
    cond = degraded_condition(plan)
    assert cond.status == c.TRUE and cond.reason == "BelowFloor" and "created TrainingJob loans-2" in cond.message
    assert [e[0] for e in plan.events] == ["RetrainTriggered", "PerformanceBelowFloor"]
    again = plan_quality(obs(in_flight(state="Degraded"), job=job, job_pods=pods, running_training_job="loans-2"))
    assert again.events == []  # one Event per drop, not one per measurement


@pytest.mark.parametrize(("case", "why"), [
    ("a TrainingJob runs", "AlreadyRunning"),
    ("cooling down after a drift retrain", "CoolingDown"),
    ("cooling down after a performance retrain", "CoolingDown"),
    ("the Model's limits, any monitor", "CoolingDown"),
    ("retrain off", "Disabled"),
    ("daily limit", "DailyLimit"),
])
def test_a_drop_does_not_retrain_within_the_limits(case: str, why: str) -> None:
    job, pods = finished_job(answer(0.71))
    recent = c.rfc3339(NOW - timedelta(minutes=5))
    status = in_flight()
    kw: dict[str, Any] = {}
    s = spec()
    if case == "a TrainingJob runs":
        kw["running_training_job"] = "loans-2"
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
    plan = plan_quality(obs(status, s=s, job=job, job_pods=pods, **kw))
    assert plan.retrain is None and plan.decision is not None and plan.decision.reason == why
    assert degraded_condition(plan).status == c.TRUE and "no retrain" in degraded_condition(plan).message


def test_too_few_labels_gives_no_verdict_and_no_retrain() -> None:
    job, pods = finished_job(answer(0.5, labelled=99))
    plan = plan_quality(obs(in_flight(), job=job, job_pods=pods))
    assert plan.retrain is None and plan.performance is not None
    assert plan.performance.state == QualityState.NOT_ENOUGH_LABELS
    cond = degraded_condition(plan)
    assert cond.status == c.UNKNOWN and cond.reason == "NotEnoughLabels" and "minLabelledRows 100" in cond.message


def test_only_the_stable_revision_is_judged() -> None:
    job, pods = finished_job(answer(0.5, revision="loans-old"))
    plan = plan_quality(obs(in_flight(), job=job, job_pods=pods))
    assert plan.retrain is None and degraded_condition(plan).reason == "NoStableRevision"
    assert plan.performance is not None and plan.performance.revisions[0].state == QualityState.DEGRADED


@pytest.mark.parametrize(("message", "failed", "reason"), [
    ('{"ok": false, "reason": "StoreError", "message": "s3 down"}', True, "StoreError"),
    ("Traceback (most recent call last): ...", True, "QualityJobFailed"),
    ("", False, "QualityJobFailed"),
])
def test_a_failed_measurement_is_a_condition_and_an_event(message: str, failed: bool, reason: str) -> None:
    job, pods = finished_job(message, failed=failed)
    plan = plan_quality(obs(in_flight(state="Healthy"), job=job, job_pods=pods))
    cond = degraded_condition(plan)
    assert cond.status == c.UNKNOWN and cond.reason == "QualityJobFailed" and reason in cond.message
    assert plan.delete_job == "loans-quality-1" and plan.retrain is None and plan.events[0][2]


def test_a_source_model_is_judged_but_not_retrained() -> None:
    job, pods = finished_job(answer(0.5))
    plan = plan_quality(obs(in_flight(), m=model(training=False), job=job, job_pods=pods))
    assert plan.retrain is None and "cannot be retrained" in degraded_condition(plan).message


def test_no_model_or_no_stable_revision_waits() -> None:
    assert degraded_condition(plan_quality(obs(m={}))).reason == "NoStableRevision"
    plan = plan_quality(obs(m=model(stable=None)))
    assert plan.create_job is None and degraded_condition(plan).reason == "NoStableRevision"


def test_removing_the_section_stops_the_job_and_clears_status() -> None:
    no_perf = DriftMonitorSpec.model_validate({"modelRef": {"name": "loans"}})
    plan = plan_quality(obs(in_flight(), s=no_perf))
    assert plan.performance is None and plan.delete_job == "loans-quality-1"
    old = DriftMonitorStatus.model_validate({"performance": {"state": "Healthy"}, "conditions": [
        {"type": PERFORMANCE_DEGRADED, "status": "False"}, {"type": "Drifted", "status": "False"}]})
    new = merged_status(old, plan, NOW)
    assert new.performance is None and [x.type for x in new.conditions] == ["Drifted"]


def test_training_data_retrain_has_no_production_section() -> None:
    job, pods = finished_job(answer(0.5))
    plan = plan_quality(obs(in_flight(), s=spec(retrainData="training"), job=job, job_pods=pods))
    assert plan.retrain is not None and plan.retrain[1] is None
    plan = plan_quality(obs(in_flight(), s=spec(retrainData="productionAndTraining"), job=job, job_pods=pods))
    assert plan.retrain is not None and plan.retrain[1] is not None and plan.retrain[1].include_training_data


def test_served_revisions_lists_stable_canary_then_history() -> None:
    m = model()
    m["status"]["canaryRevision"] = "loans-bbb"
    m["status"]["history"] = [
        {"revision": "loans-bbb", "artifactUri": "u2", "outcome": "Progressing"},
        {"revision": "loans-aaa", "artifactUri": "u1", "outcome": "Promoted"},
        {"revision": None, "artifactUri": "u0", "outcome": "Refused"},
        {"revision": "loans-zzz", "artifactUri": "u9", "outcome": "Superseded"},
    ]
    from modelship.api.model import ModelStatus

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


def test_parse_result_takes_the_floor_metric_and_skips_junk() -> None:
    r = parse_result(answer(0.8) + "\n", "accuracy")
    assert r.ok and r.revisions[0].value == 0.8 and r.revisions[0].estimated == 0.91
    assert parse_result('{"ok": true, "revisions": [{"rows": 3}, 7]}', "roc_auc").revisions == []
    assert not parse_result("not json", "accuracy").ok


def test_steady_state_changes_nothing_the_second_time() -> None:
    job, pods = finished_job(answer(0.91))
    first = plan_quality(obs(in_flight(), job=job, job_pods=pods))
    status = merged_status(DriftMonitorStatus.model_validate(in_flight()), first, NOW)
    again = plan_quality(obs(status.wire(), now=NOW + timedelta(seconds=5)))
    after = merged_status(status, again, NOW + timedelta(seconds=5))
    assert after == status and again.create_job is None and again.retrain is None
    assert isinstance(status.performance, PerformanceStatus)
