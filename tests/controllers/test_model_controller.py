"""The Model controller against an in-memory API: observe -> plan -> apply.

At every stage of a Model's life the controller settles: once it has acted on
what changed (its own writes may need one more pass, e.g. a Deployment it
created is then seen waiting for pods), a reconcile of the unchanged world
writes nothing, neither a child nor the status nor an Event."""

from __future__ import annotations

from controllers.world import (
    NS,
    context,
    fresh,
    model,
    ready_deployment,
    reconcile_twice,
    succeed_training_job,
    writes_of,
)


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
