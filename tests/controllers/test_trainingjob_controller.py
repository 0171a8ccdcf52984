"""The TrainingJob controller against an in-memory API: it creates its Job once, reports what
the Job's pods say (a pod that cannot start, too, relayed to its Model), and a reconcile of an
unchanged world writes nothing."""

from __future__ import annotations

from typing import Any

from controllers.world import NS, context, fresh, model, writes_of
from modelship.controllers import model as model_controller
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


def stuck_pod(job: str, message: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{job}-x", "namespace": NS, "labels": {"batch.kubernetes.io/job-name": job}},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "trainer", "state": {"waiting": {
            "reason": "CreateContainerConfigError", "message": message}}}]}}


def events(kube: FakeKube, name: str) -> list[tuple[str, str, str]]:
    return [(e["type"], e["reason"], e["message"]) for e in kube.list("v1", "Event", NS)
            if e["involvedObject"]["name"] == name]


def test_a_pod_waiting_for_a_missing_secret_is_reported_on_the_training_job_and_its_model() -> None:
    ctx = context()
    kube = ctx.kube
    assert isinstance(kube, FakeKube)
    kube.create(model())
    model_controller.reconcile(ctx, fresh(ctx, "Model", "m"))
    controller.reconcile(ctx, fresh(ctx, "TrainingJob", "m-1"))  # its Job
    assert kube.get("batch/v1", "Job", NS, "m-1") is not None
    kube.add(stuck_pod("m-1", 'secret "modelship-s3" not found'))
    kube.set_status("batch/v1", "Job", NS, "m-1", {"active": 1, "startTime": "2026-12-01T12:00:00Z"})
    writes_of(ctx)
    controller.reconcile(ctx, fresh(ctx, "TrainingJob", "m-1"))
    text = 'Pod m-1-x cannot start: container trainer: CreateContainerConfigError: secret "modelship-s3" not found'
    st = fresh(ctx, "TrainingJob", "m-1")["status"]
    assert (st["phase"], st["reason"], st["message"]) == ("Running", "PodNotStarting", text)
    complete = next(c for c in st["conditions"] if c["type"] == "Complete")
    assert (complete["status"], complete["reason"], complete["message"]) == ("False", "PodNotStarting", text)
    assert ("Warning", "PodNotStarting", text) in events(kube, "m-1")
    writes_of(ctx)
    controller.reconcile(ctx, fresh(ctx, "TrainingJob", "m-1"))  # the same world: no write, no second Event
    assert writes_of(ctx) == []

    model_controller.reconcile(ctx, fresh(ctx, "Model", "m"))
    trained = next(c for c in fresh(ctx, "Model", "m")["status"]["conditions"] if c["type"] == "Trained")
    assert (trained["status"], trained["reason"]) == ("Unknown", "PodNotStarting")
    assert trained["message"] == f"TrainingJob m-1 is running: {text}"

    # The Secret is created; the kubelet starts the container: the reason goes.
    kube.set_status("v1", "Pod", NS, "m-1-x", {"phase": "Running", "containerStatuses": [
        {"name": "trainer", "state": {"running": {}}}]})
    controller.reconcile(ctx, fresh(ctx, "TrainingJob", "m-1"))
    st = fresh(ctx, "TrainingJob", "m-1")["status"]
    assert st["phase"] == "Running" and "reason" not in st and "message" not in st
    assert len([e for e in events(kube, "m-1") if e[1] == "PodNotStarting"]) == 1
    model_controller.reconcile(ctx, fresh(ctx, "Model", "m"))
    trained = next(c for c in fresh(ctx, "Model", "m")["status"]["conditions"] if c["type"] == "Trained")
    assert (trained["reason"], trained["message"]) == ("Training", "TrainingJob m-1 is running")


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
