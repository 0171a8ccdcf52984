"""The Model controller against an in-memory API: observe -> plan -> apply.

At every stage of a Model's life the controller settles: once it has acted on
what changed (its own writes may need one more pass, e.g. a Deployment it
created is then seen waiting for pods), a reconcile of the unchanged world
writes nothing, neither a child nor the status nor an Event."""

from __future__ import annotations

from typing import Any

from controllers.world import (
    NS,
    context,
    fresh,
    model,
    ready_deployment,
    reconcile_twice,
    serving_model,
    succeed_training_job,
    writes_of,
)
from modelship.builders.common import MODEL_LABEL, REVISION_LABEL
from modelship.controllers import model as controller
from modelship.controllers.context import Context
from modelship.k8s.fake import FakeKube


def test_a_model_trains_deploys_and_serves_and_rests_without_writes() -> None:
    ctx = context()
    ctx.kube.create(model())
    writes_of(ctx)

    first = reconcile_twice(ctx)
    assert ("create", "TrainingJob", "m-1") in first and ("patch", "Model/status", "m") in first
    assert fresh(ctx, "Model", "m")["status"]["phase"] == "Training"

    succeed_training_job(ctx, "m-1", "a" * 64)
    first = reconcile_twice(ctx)
    deployments = [w for w in first if w[1] == "Deployment"]
    assert len(deployments) == 1 and deployments[0][0] == "create"
    assert ("create", "Service", "m") in first
    revision = deployments[0][2]
    assert fresh(ctx, "Model", "m")["status"]["canaryRevision"] == revision

    ready_deployment(ctx, revision)
    first = reconcile_twice(ctx)
    assert [w[:2] for w in first] == [("patch", "Model/status"), ("create", "Event")]
    status = fresh(ctx, "Model", "m")["status"]
    assert status["stableRevision"] == revision and status["phase"] == "Serving"
    assert "canaryRevision" not in status and "rollout" not in status


def test_an_invalid_spec_touches_no_child() -> None:
    ctx = context()
    ctx.kube.create(model(serving={"replicas": "many"}))
    writes_of(ctx)
    first = reconcile_twice(ctx)
    assert [w[1] for w in first] == ["Model/status", "Event"]
    ready = next(c for c in fresh(ctx, "Model", "m")["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidSpec" and "spec.serving.replicas" in ready["message"]
    assert ctx.kube.list("modelship.io/v1alpha1", "TrainingJob", NS) == []


def _ready(ctx: Context) -> dict[str, Any]:
    return next(c for c in fresh(ctx, "Model", "m")["status"]["conditions"] if c["type"] == "Ready")


def test_a_child_the_api_server_refuses_is_an_invalid_spec_and_the_stable_serves_on() -> None:
    """The backstop for what neither the schema nor the plan catches: the API server's 422 on a
    child becomes Ready=False, InvalidSpec naming the child and the server's message, with one
    Warning Event; nothing is deleted for it and the reconcile does not fail (so it is not retried
    as an error). A spec that makes a valid child again carries on."""
    ctx = context()
    kube = ctx.kube
    assert isinstance(kube, FakeKube)
    stable = serving_model(ctx)

    # A new pod template (a new revision) the API server refuses.
    kube.patch("modelship.io/v1alpha1", "Model", NS, "m", {"spec": {"serving": {"maxBatchSize": 8}}})
    writes_of(ctx)
    kube.invalid["Deployment"] = ('spec.template.spec.containers[0].resources.requests: Invalid value: "2": '
                                  "must be less than or equal to cpu limit of 1")
    made = reconcile_twice(ctx)  # settles: the refused create is tried again but writes nothing
    assert [w[:2] for w in made] == [("patch", "Model/status"), ("create", "Event")]
    ready = _ready(ctx)
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert ready["message"].startswith("the API server refused to create Deployment m-")
    assert "must be less than or equal to cpu limit of 1" in ready["message"]
    events = [e for e in kube.list("v1", "Event", NS) if e["reason"] == "InvalidSpec"]
    assert len(events) == 1 and events[0]["type"] == "Warning"
    status = fresh(ctx, "Model", "m")["status"]
    assert status["stableRevision"] == stable and "canaryRevision" not in status
    assert [d["metadata"]["name"] for d in kube.list("apps/v1", "Deployment", NS)] == [stable]

    # The cluster takes it again (the spec or the cause changed): the rollout starts.
    kube.invalid.clear()
    controller.reconcile(ctx, fresh(ctx, "Model", "m"))
    status = fresh(ctx, "Model", "m")["status"]
    assert status.get("canaryRevision") not in (None, stable) and _ready(ctx)["reason"] != "InvalidSpec"


def test_a_model_whose_first_child_is_refused_fails_without_an_error() -> None:
    ctx = context()
    kube = ctx.kube
    assert isinstance(kube, FakeKube)
    kube.invalid["TrainingJob"] = "spec.gates.fairness: Invalid value: gates.fairness needs dataset.sensitiveFeature"
    kube.create(model())
    writes_of(ctx)
    made = reconcile_twice(ctx)
    assert [w[1] for w in made] == ["Model/status", "Event"]
    status = fresh(ctx, "Model", "m")["status"]
    assert status["phase"] == "Failed" and status.get("trainingJobsCreated", 0) == 0
    assert "refused to create TrainingJob m-1 (422)" in _ready(ctx)["message"]


def test_a_first_version_whose_pod_cannot_pull_its_image_says_so_once() -> None:
    """observe reads the deploying revision's pods: one waiting on an image pull is named on the
    Model (Ready and Progressing, one Warning Event), and the next reconcile writes nothing."""
    ctx = context()
    ctx.kube.create(model())
    reconcile_twice(ctx)
    succeed_training_job(ctx, "m-1", "a" * 64)
    reconcile_twice(ctx)
    revision = fresh(ctx, "Model", "m")["status"]["canaryRevision"]
    assert isinstance(ctx.kube, FakeKube)
    ctx.kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{revision}-abc", "namespace": NS, "labels": {MODEL_LABEL: "m", REVISION_LABEL: revision}},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "server", "state": {"waiting": {
            "reason": "ErrImagePull", "message": 'failed to pull "registry.invalid/serve:1"'}}}]}})
    reconcile_twice(ctx)
    status = fresh(ctx, "Model", "m")["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["reason"] == "PodNotStarting", conditions
    assert "ErrImagePull" in conditions["Progressing"]["message"], conditions
    warnings = [e for e in ctx.kube.list("v1", "Event", NS) if e.get("reason") == "PodNotStarting"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning", warnings
    # The other replica starts waiting too, and sorts first: still one report, on the pod named first
    # (a CI run once got a second Event for the same cause).
    ctx.kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{revision}-aaa", "namespace": NS, "labels": {MODEL_LABEL: "m", REVISION_LABEL: revision}},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "server", "state": {"waiting": {
            "reason": "ImagePullBackOff", "message": 'Back-off pulling image "registry.invalid/serve:1"'}}}]}})
    reconcile_twice(ctx)
    again = {c["type"]: c for c in fresh(ctx, "Model", "m")["status"]["conditions"]}
    assert again["Progressing"]["message"] == conditions["Progressing"]["message"], again
    assert len([e for e in ctx.kube.list("v1", "Event", NS) if e.get("reason") == "PodNotStarting"]) == 1
