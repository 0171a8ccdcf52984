"""The TrainingJob controller against an in-memory API: it creates its Job once, reports what
the Job's pods say, and a reconcile of an unchanged world writes nothing."""

from __future__ import annotations

from controllers.world import NS, context, fresh, writes_of
from modelship.controllers import trainingjob as controller
from modelship.k8s.fake import FakeKube

SPEC = {"dataset": {"uri": "s3://b/d.csv", "target": "y"}, "candidates": [{"estimator": "LogisticRegression"}]}


def test_creates_its_job_once_and_settles() -> None:
    ctx = context()
    kube = ctx.kube
    assert isinstance(kube, FakeKube)
    kube.create({"apiVersion": "modelship.io/v1alpha1", "kind": "TrainingJob",
                 "metadata": {"name": "t", "namespace": NS}, "spec": SPEC})
    writes_of(ctx)
    controller.reconcile(ctx, fresh(ctx, "TrainingJob", "t"))
    made = writes_of(ctx)
    assert ("create", "Job", "t") in made and ("create", "ConfigMap", "t-spec") in made
    for _ in range(2):
        controller.reconcile(ctx, fresh(ctx, "TrainingJob", "t"))
    assert writes_of(ctx) == []
    summary = '{"artifact": {"uri": "s3://b/a/t/", "sha256": "' + "a" * 64 + '"}, "metric": "accuracy", "score": 0.9}'
    kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "t-x", "namespace": NS, "labels": {"batch.kubernetes.io/job-name": "t"}},
        "status": {"containerStatuses": [{"name": "trainer", "state": {"terminated": {
            "exitCode": 0, "message": summary, "finishedAt": "2026-12-01T12:00:00Z"}}}]}})
    kube.set_status("batch/v1", "Job", NS, "t", {"conditions": [{"type": "Complete", "status": "True"}]})
    controller.reconcile(ctx, fresh(ctx, "TrainingJob", "t"))
    assert fresh(ctx, "TrainingJob", "t")["status"]["phase"] == "Succeeded"
    writes_of(ctx)
    controller.reconcile(ctx, fresh(ctx, "TrainingJob", "t"))
    assert writes_of(ctx) == []


def test_a_job_the_api_server_refuses_fails_the_run_once_as_invalid_spec() -> None:
    ctx = context()
    kube = ctx.kube
    assert isinstance(kube, FakeKube)
    kube.invalid["Job"] = 'spec.template.spec.containers[0].resources.limits[memory]: Invalid value: "1Gb"'
    kube.create({"apiVersion": "modelship.io/v1alpha1", "kind": "TrainingJob",
                 "metadata": {"name": "t", "namespace": NS}, "spec": SPEC})
    writes_of(ctx)
    controller.reconcile(ctx, fresh(ctx, "TrainingJob", "t"))  # does not raise
    made = writes_of(ctx)
    assert [w[:2] for w in made] == [("create", "ConfigMap"), ("patch", "TrainingJob/status"), ("create", "Event")]
    status = fresh(ctx, "TrainingJob", "t")["status"]
    assert status["phase"] == "Failed" and status["reason"] == "InvalidSpec"
    assert status["message"].startswith("the API server refused to create Job t (422)") and "1Gb" in status["message"]
    events = [e for e in kube.list("v1", "Event", NS) if e["reason"] == "InvalidSpec"]
    assert len(events) == 1 and events[0]["type"] == "Warning"
    controller.reconcile(ctx, fresh(ctx, "TrainingJob", "t"))  # finished: nothing more, no second Event
    assert writes_of(ctx) == []
