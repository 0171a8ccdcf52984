"""The DriftMonitor controller against an in-memory API and canned pod answers: it evaluates
when due, writes nothing when not, retrains once, and its window survives an operator restart;
with performance, its quality Job is created, polled, read back and deleted, and a drop retrains once;
a prometheus source is queried only at an allowed URL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest

from controllers.world import NS, context, fresh, model, writes_of
from logic.test_drift_pipeline import METADATA, Pod
from modelship.controllers import driftmonitor as controller
from modelship.controllers.context import Context
from modelship.k8s.fake import FakeKube, FakePods
from modelship.logic.prometheus import NoSeries
from modelship.logic.scrape import parse_samples
from modelship.metrics import REGISTRY

SHA = "0" * 64


def world(pod: Pod, **settings: Any) -> Context:
    ctx = context(**settings)
    kube = ctx.kube
    assert isinstance(kube, FakeKube)
    kube.create(model())
    kube.set_status("modelship.io/v1alpha1", "Model", NS, "m", {
        "stableRevision": "m-r1", "phase": "Serving", "trainingJobsCreated": 1,
        "history": [{"revision": "m-r1", "trainingJob": "m-1", "artifactUri": "s3://s/a/", "artifactSha256": SHA,
                     "outcome": "Promoted"}]})
    kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "m-r1-0", "namespace": NS, "labels": {"modelship.io/model": "m", "modelship.io/revision": "m-r1"}},
        "status": {"phase": "Running", "podIP": "10.0.0.9"}})
    kube.create({"apiVersion": "modelship.io/v1alpha1", "kind": "DriftMonitor",
                 "metadata": {"name": "dm", "namespace": NS},
                 "spec": {"modelRef": {"name": "m"}, "interval": "1m", "window": {"duration": "5m", "minSamples": 100},
                          "action": {"cooldown": "1h"}}})
    answer(ctx, pod)
    writes_of(ctx)
    return ctx


def answer(ctx: Context, pod: Pod) -> None:
    assert isinstance(ctx.pods, FakePods)
    ctx.pods.texts["m-r1-0"] = generate_latest(pod.registry).decode()
    ctx.pods.bodies[("m-r1-0", "/v2/models/m/artifact")] = METADATA.model_dump_json(by_alias=True)


def evaluate(ctx: Context, at: datetime, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(controller, "datetime", type("Clock", (), {"now": staticmethod(lambda tz=None: at)}))
    controller.reconcile(ctx, fresh(ctx, "DriftMonitor", "dm"))
    return fresh(ctx, "DriftMonitor", "dm")["status"]


def test_evaluates_when_due_and_writes_nothing_between(monkeypatch: pytest.MonkeyPatch) -> None:
    pod = Pod()
    pod.serve(2000, shift=0.0)
    ctx = world(pod)
    t0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
    st = evaluate(ctx, t0, monkeypatch)
    assert st["state"] == "Stable" and st["samples"] == 2000
    assert st["window"]["revision"] == "m-r1" and len(st["window"]["snapshots"]) == 1
    assert [w[1] for w in writes_of(ctx)] == ["DriftMonitor/status", "Model/status", "Event"]
    evaluate(ctx, t0 + timedelta(seconds=30), monkeypatch)  # not due: no read, no write
    assert writes_of(ctx) == []


def test_the_window_survives_a_restart_and_drift_retrains_once(monkeypatch: pytest.MonkeyPatch) -> None:
    pod = Pod()
    pod.serve(5000, shift=0.0)  # a long, normal past
    ctx = world(pod)
    t0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
    evaluate(ctx, t0, monkeypatch)
    # The operator restarts (a new context: no memory), the inputs shift, a window later:
    restarted = Context(settings=ctx.settings, kube=ctx.kube, pods=ctx.pods)
    pod.serve(1000, shift=1.5)
    answer(restarted, pod)
    st = evaluate(restarted, t0 + timedelta(minutes=5), monkeypatch)
    # Counted from the snapshot kept in status: only the shifted window, not all 6000 rows.
    assert st["samples"] == 1000 and st["state"] == "Drift", st
    writes = writes_of(restarted)
    assert ("create", "TrainingJob", "m-2") in writes
    job = restarted.kube.get("modelship.io/v1alpha1", "TrainingJob", NS, "m-2")
    assert job is not None and job["spec"]["trigger"] == "drift"
    assert job["metadata"]["ownerReferences"][0]["name"] == "m"
    # Still drifting a minute later: cooldown, no second TrainingJob.
    pod.serve(200, shift=1.5)
    answer(restarted, pod)
    evaluate(restarted, t0 + timedelta(minutes=6), monkeypatch)
    assert not [w for w in writes_of(restarted) if w[1] == "TrainingJob"]


def exported(monitor: str = "dm") -> dict[str, float]:
    """The operator's drift series of one monitor: feature (or "state") -> value."""
    out = {}
    for x in parse_samples(generate_latest(REGISTRY).decode()):
        if x.labels.get("namespace") == NS and x.labels.get("monitor") == monitor:
            if x.name == "modelship_drift_score":
                out[x.labels["feature"]] = x.value
            elif x.name == "modelship_drift_state":
                out["state"] = x.value
    return out


def promote(ctx: Context, revision: str, rows: int) -> Pod:
    """A new stable revision whose one pod has served ``rows`` unshifted rows."""
    kube = ctx.kube
    assert isinstance(kube, FakeKube)
    status = fresh(ctx, "Model", "m")["status"]
    kube.set_status("modelship.io/v1alpha1", "Model", NS, "m", {**status, "stableRevision": revision, "history": [
        {"revision": revision, "trainingJob": "m-2", "artifactUri": "s3://s/b/", "artifactSha256": SHA,
         "outcome": "Promoted"}, *status["history"]]})
    kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{revision}-0", "namespace": NS, "labels": {"modelship.io/model": "m", "modelship.io/revision": revision}},
        "status": {"phase": "Running", "podIP": "10.0.0.10"}})
    pod = Pod()
    pod.serve(rows, shift=0.0)
    assert isinstance(ctx.pods, FakePods)
    ctx.pods.texts[f"{revision}-0"] = generate_latest(pod.registry).decode()
    ctx.pods.bodies[(f"{revision}-0", "/v2/models/m/artifact")] = METADATA.model_dump_json(by_alias=True)
    return pod


def test_the_gauges_follow_status_and_a_promoted_model_drops_the_old_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    controller.forget(NS, "dm")  # the registry is the process's: start from nothing of this monitor
    pod = Pod()
    pod.serve(2000, shift=1.5)
    ctx = world(pod)
    t0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
    st = evaluate(ctx, t0, monkeypatch)
    assert st["state"] == "Drift"
    assert exported() == {**{s["feature"]: s["score"] for s in st["scores"]}, "state": 2}
    assert max(v for k, v in exported().items() if k != "state") >= 0.2  # what the alert fires on

    # The retrained model is promoted; its pod has served too little for a verdict. The status
    # forgets the old model's scores, and so do the gauges: the alert on them resolves.
    new = promote(ctx, "m-r2", rows=50)
    st = evaluate(ctx, t0 + timedelta(minutes=1), monkeypatch)
    assert st["referenceRevision"] == "m-r2" and st["scores"] == [] and "state" not in st, st
    assert exported() == {}

    # The first verdict on the new reference exports its scores and state again.
    new.serve(2000, shift=0.0)
    assert isinstance(ctx.pods, FakePods)
    ctx.pods.texts["m-r2-0"] = generate_latest(new.registry).decode()
    st = evaluate(ctx, t0 + timedelta(minutes=2), monkeypatch)
    assert st["state"] == "Stable"
    assert exported() == {**{s["feature"]: s["score"] for s in st["scores"]}, "state": 0}

    # A second monitor of the model has its own series; deleting one leaves the other's.
    controller.export_verdict(NS, "m", "other", "psi", controller.DriftMonitorStatus.model_validate(
        {"state": "Drift", "scores": [{"feature": "a", "score": 0.5, "state": "Drift"}]}))
    controller.forget(NS, "dm")
    assert exported() == {} and exported("other") == {"a": 0.5, "state": 2}
    controller.forget(NS, "other")
    assert exported("other") == {}


def test_a_missing_model_is_a_condition_and_one_event(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context()
    ctx.kube.create({"apiVersion": "modelship.io/v1alpha1", "kind": "DriftMonitor",
                     "metadata": {"name": "dm", "namespace": NS}, "spec": {"modelRef": {"name": "nope"}}})
    writes_of(ctx)
    t0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
    st = evaluate(ctx, t0, monkeypatch)
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ModelNotFound" and "nope" in ready["message"]
    assert [w[1] for w in writes_of(ctx)] == ["DriftMonitor/status", "Event"]
    evaluate(ctx, t0 + timedelta(seconds=5), monkeypatch)  # evaluated again at once (never evaluated), same answer
    assert writes_of(ctx) == []


def test_a_prometheus_rule_api_that_answers_404_after_discovery_is_treated_as_absent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The Prometheus Operator's CRD removed while discovery still said served (seen on a cluster
    whose tests install and remove it): the monitor carries on without its rule, and asks again."""
    from modelship.k8s import fake

    ctx = context()
    kube = ctx.kube
    assert isinstance(kube, FakeKube)
    kube.apis.add("monitoring.coreos.com/v1")
    real_list = kube.list

    def gone(api_version: str, kind: str, namespace: str | None, selector: str | None = None) -> list[Any]:
        if kind == "PrometheusRule":
            raise fake._error(404, "NotFound")
        return real_list(api_version, kind, namespace, selector)

    monkeypatch.setattr(kube, "list", gone)
    kube.create({"apiVersion": "modelship.io/v1alpha1", "kind": "DriftMonitor",
                 "metadata": {"name": "dm", "namespace": NS}, "spec": {"modelRef": {"name": "nope"}}})
    writes_of(ctx)
    st = evaluate(ctx, datetime(2026, 12, 1, 12, tzinfo=UTC), monkeypatch)
    assert condition(st, "Ready")["reason"] == "ModelNotFound"  # reconciled, not stuck on the 404
    assert "monitoring.coreos.com/v1" not in ctx._apis  # forgotten: discovery is asked again


# --- live quality (spec.performance): the quality Job is a child of the monitor's plan -------------

PERFORMANCE = {"metric": "accuracy", "floor": 0.85, "minLabelledRows": 100, "window": "1h", "interval": "5m"}


def with_performance(ctx: Context, **perf: Any) -> None:
    ctx.kube.patch("modelship.io/v1alpha1", "DriftMonitor", NS, "dm", {"spec": {"performance": {**PERFORMANCE,
                                                                                               **perf}}})
    writes_of(ctx)


def quality_answer(value: float, labelled: int = 400) -> str:
    return json.dumps({"ok": True, "start": "2026-12-01T11:00:00Z", "end": "2026-12-01T12:00:00Z",
                       "predictions": 1000, "labelled": labelled, "seconds": 0.5, "revisions": [
                           {"revision": "m-r1", "rows": 1000, "labelled": labelled, "metrics": {"accuracy": value},
                            "estimates": {"accuracy": 0.9}}]})


def finish(ctx: Context, job: str, message: str) -> None:
    """What the Job controller and the kubelet do: the Job completes, its pod leaves its answer."""
    kube = ctx.kube
    assert isinstance(kube, FakeKube)
    kube.set_status("batch/v1", "Job", NS, job, {"conditions": [{"type": "Complete", "status": "True"}]})
    kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{job}-x", "namespace": NS, "labels": {"batch.kubernetes.io/job-name": job}},
        "status": {"containerStatuses": [{"name": "quality", "state": {"terminated": {
            "exitCode": 0, "message": message, "finishedAt": "2026-12-01T12:00:40Z"}}}]}})


def condition(st: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in st["conditions"] if c["type"] == type_)


def test_a_quality_job_is_created_polled_read_and_deleted_and_a_drop_retrains_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pod = Pod()
    pod.serve(2000, shift=0.0)
    ctx = world(pod)
    with_performance(ctx)
    t0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
    st = evaluate(ctx, t0, monkeypatch)
    name = st["performance"]["job"]
    assert ("create", "Job", name) in writes_of(ctx)
    job = ctx.kube.get("batch/v1", "Job", NS, name)
    assert job is not None and job["metadata"]["ownerReferences"][0]["name"] == "dm"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "example.org/trainer:1" and container["command"] == ["modelship-quality"]
    assert condition(st, "PerformanceDegraded")["reason"] == "Measuring"

    # Running: the Job is looked at (drift is not due), nothing is written.
    evaluate(ctx, t0 + timedelta(seconds=20), monkeypatch)
    assert writes_of(ctx) == []

    # Finished with a drop: read, deleted (no longer wanted), one retrain on the window's production rows.
    finish(ctx, name, quality_answer(0.6))
    st = evaluate(ctx, t0 + timedelta(seconds=40), monkeypatch)
    writes = writes_of(ctx)
    assert ("create", "TrainingJob", "m-2") in writes and ("delete", "Job", name) in writes
    assert ctx.kube.get("batch/v1", "Job", NS, name) is None
    tj = ctx.kube.get("modelship.io/v1alpha1", "TrainingJob", NS, "m-2")
    assert tj is not None and tj["spec"]["trigger"] == "performance"
    assert tj["spec"]["dataset"]["production"]["uri"] == "s3://store/artifacts/ns/_groundtruth/m/"
    assert tj["metadata"]["ownerReferences"][0]["name"] == "m"
    perf = st["performance"]
    assert perf["state"] == "Degraded" and perf["lastTriggeredTrainingJob"] == "m-2" and "job" not in perf
    degraded = condition(st, "PerformanceDegraded")
    assert degraded["status"] == "True" and degraded["reason"] == "BelowFloor"
    reasons = [e["reason"] for e in ctx.kube.list("v1", "Event", NS)]
    assert "RetrainTriggered" in reasons and "PerformanceBelowFloor" in reasons
    from modelship.metrics import REGISTRY

    assert ('modelship_model_quality{metric="accuracy",model="m",namespace="ns",revision="m-r1",source="realised"} 0.6'
            in generate_latest(REGISTRY).decode())

    # The next drift evaluation sees the performance retrain running: no second TrainingJob.
    pod.serve(1000, shift=1.5)
    answer(ctx, pod)
    st = evaluate(ctx, t0 + timedelta(minutes=1), monkeypatch)
    assert not [w for w in writes_of(ctx) if w[1] in ("TrainingJob", "Job")]
    # Not due for either: nothing read, nothing written.
    evaluate(ctx, t0 + timedelta(minutes=1, seconds=10), monkeypatch)
    assert writes_of(ctx) == []


def test_drift_and_a_quality_drop_in_one_reconcile_create_one_training_job(monkeypatch: pytest.MonkeyPatch) -> None:
    pod = Pod()
    pod.serve(5000, shift=0.0)
    ctx = world(pod)
    with_performance(ctx)
    t0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
    name = evaluate(ctx, t0, monkeypatch)["performance"]["job"]
    finish(ctx, name, quality_answer(0.6))
    pod.serve(1000, shift=1.5)
    answer(ctx, pod)
    st = evaluate(ctx, t0 + timedelta(minutes=5), monkeypatch)
    assert st["state"] == "Drift"
    created = [w for w in writes_of(ctx) if w[0] == "create" and w[1] == "TrainingJob"]
    assert created == [("create", "TrainingJob", "m-2")]
    tj = ctx.kube.get("modelship.io/v1alpha1", "TrainingJob", NS, "m-2")
    assert tj is not None and tj["spec"]["trigger"] == "performance"
    assert "no retrain: TrainingJob m-2 is still running" in condition(st, "Drifted")["message"]


def test_removing_performance_deletes_the_job_in_flight_and_clears_status(monkeypatch: pytest.MonkeyPatch) -> None:
    pod = Pod()
    pod.serve(2000, shift=0.0)
    ctx = world(pod)
    with_performance(ctx)
    t0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
    name = evaluate(ctx, t0, monkeypatch)["performance"]["job"]
    writes_of(ctx)
    ctx.kube.patch("modelship.io/v1alpha1", "DriftMonitor", NS, "dm", {"spec": {"performance": None}})
    writes_of(ctx)
    st = evaluate(ctx, t0 + timedelta(seconds=10), monkeypatch)
    assert ("delete", "Job", name) in writes_of(ctx)
    assert "performance" not in st and not [c for c in st["conditions"] if c["type"] == "PerformanceDegraded"]
    evaluate(ctx, t0 + timedelta(seconds=20), monkeypatch)
    assert writes_of(ctx) == []


# --- source prometheus: only allowed URLs are queried, and only they get the token ---------------

PROM = "http://prometheus.monitoring.svc:9090"


def prometheus_world(monkeypatch: pytest.MonkeyPatch, url: str, **settings: Any) -> tuple[Context, list[Any]]:
    """A monitor with source prometheus at ``url``; the returned list records each query the operator made."""
    pod = Pod()
    pod.serve(2000, shift=0.0)
    ctx = world(pod, **settings)
    ctx.kube.patch("modelship.io/v1alpha1", "DriftMonitor", NS, "dm",
                   {"spec": {"source": {"type": "prometheus", "prometheusUrl": url}}})
    writes_of(ctx)
    queries: list[Any] = []

    def instant_query(*args: Any) -> Any:
        queries.append(args)
        raise NoSeries("the query matched no series")

    monkeypatch.setattr(controller, "instant_query", instant_query)
    return ctx, queries


@pytest.mark.parametrize(("url", "settings", "words"), [
    ("http://prometheus.monitoring.svc:9090@evil.example", {"prometheus_allowed_urls": [PROM]}, "user info"),
    ("http://prometheus.monitoring.svc.evil.example:9090", {"prometheus_allowed_urls": [PROM]},
     f"not under an allowed Prometheus URL ({PROM})"),
    ("http://prometheus.monitoring.svc:9091", {"prometheus_allowed_urls": [PROM],
                                               "prometheus_bearer_token_file": "/token"}, "prometheus.allowedUrls"),
    (PROM, {"prometheus_bearer_token_file": "/token"}, "no Prometheus URL is allowed to receive it"),
])
def test_a_prometheus_url_that_is_not_allowed_is_never_queried(
        monkeypatch: pytest.MonkeyPatch, url: str, settings: dict[str, Any], words: str) -> None:
    ctx, queries = prometheus_world(monkeypatch, url, **settings)
    t0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
    st = evaluate(ctx, t0, monkeypatch)
    assert queries == []
    ready = condition(st, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PrometheusUrlNotAllowed")
    assert words in ready["message"]
    assert [(v, k) for v, k, _ in writes_of(ctx)] == [("patch", "DriftMonitor/status"), ("create", "Event")]
    evaluate(ctx, t0 + timedelta(minutes=1), monkeypatch)  # the same refusal again: nothing written
    assert queries == [] and writes_of(ctx) == []


@pytest.mark.parametrize(("url", "settings", "token"), [
    (PROM + "/", {"prometheus_allowed_urls": [PROM], "prometheus_bearer_token_file": "/token"}, "/token"),
    (PROM + "/tenant-a", {"prometheus_allowed_urls": [PROM]}, None),
    ("http://anything.example:1234", {}, None),  # no token, no list: any URL, as before allow-lists
])
def test_an_allowed_prometheus_url_is_queried(monkeypatch: pytest.MonkeyPatch, url: str, settings: dict[str, Any],
                                              token: str | None) -> None:
    ctx, queries = prometheus_world(monkeypatch, url, **settings)
    st = evaluate(ctx, datetime(2026, 12, 1, 12, tzinfo=UTC), monkeypatch)
    assert [(q[0], q[3]) for q in queries] == [(url, token)]
    assert condition(st, "Ready")["reason"] == "NoSeries"


def test_a_retrain_the_api_server_refuses_is_a_condition_not_a_failing_reconcile(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pod = Pod()
    pod.serve(2000, shift=0.0)
    ctx = world(pod)
    kube = ctx.kube
    assert isinstance(kube, FakeKube)
    with_performance(ctx)
    t0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
    name = evaluate(ctx, t0, monkeypatch)["performance"]["job"]
    finish(ctx, name, quality_answer(0.6))
    writes_of(ctx)
    kube.invalid["TrainingJob"] = "spec.dataset.uri: Invalid value"
    st = evaluate(ctx, t0 + timedelta(seconds=40), monkeypatch)  # does not raise
    ready = condition(st, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert ready["message"].startswith("the API server refused to create TrainingJob m-2 (422)")
    assert [w[1] for w in writes_of(ctx)] == ["DriftMonitor/status", "Event"]
    assert kube.get("batch/v1", "Job", NS, name) is not None  # nothing deleted for it: read again next time
    evaluate(ctx, t0 + timedelta(seconds=50), monkeypatch)  # the same answer: no second Event
    assert writes_of(ctx) == []
