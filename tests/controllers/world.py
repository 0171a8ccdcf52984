"""A small in-memory world for controller tests: a FakeKube, canned pod answers, a Context."""

from __future__ import annotations

from typing import Any

from modelship.controllers import model as controller
from modelship.controllers.context import Context
from modelship.k8s.fake import FakeKube, FakePods
from modelship.settings import OperatorSettings

NS = "ns"


def context(**settings: Any) -> Context:
    kube = FakeKube()
    kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    base = {"serving_image": "example.org/serving:1", "trainer_image": "example.org/trainer:1",
            "artifact_store": "s3://store/artifacts"}
    return Context(settings=OperatorSettings(**{**base, **settings}), kube=kube, pods=FakePods())


def model(name: str = "m", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "training": {"dataset": {"uri": "s3://b/d.csv", "target": "y"},
                     "candidates": [{"estimator": "LogisticRegression"}]},
        "serving": {"replicas": 2},
        "rollout": {"steps": [{"weight": 25, "pause": "30s"}], "analysis": {"interval": "5s"}},
    }
    base.update(spec)
    return {"apiVersion": "modelship.io/v1alpha1", "kind": "Model",
            "metadata": {"name": name, "namespace": NS}, "spec": base}


def fresh(ctx: Context, kind: str, name: str) -> dict[str, Any]:
    body = ctx.kube.get("modelship.io/v1alpha1", kind, NS, name)
    assert body is not None
    return body


def writes_of(ctx: Context) -> list[tuple[str, str, str]]:
    kube = ctx.kube
    assert isinstance(kube, FakeKube)
    out = list(kube.writes)
    kube.writes.clear()
    return out


def succeed_training_job(ctx: Context, name: str, sha: str, score: float = 0.9) -> None:
    kube = ctx.kube
    assert isinstance(kube, FakeKube)
    kube.set_status("modelship.io/v1alpha1", "TrainingJob", NS, name, {
        "phase": "Succeeded", "artifact": {"uri": f"s3://store/artifacts/{NS}/{name}/", "sha256": sha},
        "metric": "accuracy", "score": score, "metrics": {"accuracy": score}, "onnxMaxDelta": 1e-9,
        "gates": [{"name": "onnxParity", "passed": True, "message": "ok"}]})


def ready_deployment(ctx: Context, name: str) -> None:
    """What the Deployment controller and the kubelet do: every asked-for pod ready."""
    kube = ctx.kube
    assert isinstance(kube, FakeKube)
    dep = kube.get("apps/v1", "Deployment", NS, name)
    assert dep is not None
    n = dep["spec"]["replicas"]
    kube.set_status("apps/v1", "Deployment", NS, name, {
        "observedGeneration": dep["metadata"]["generation"], "replicas": n, "readyReplicas": n,
        "availableReplicas": n, "updatedReplicas": n})


def reconcile_twice(ctx: Context, name: str = "m") -> list[tuple[str, str, str]]:
    """Reconcile until a pass writes nothing (at most two passes write); the writes made."""
    made: list[tuple[str, str, str]] = []
    for _ in range(2):
        controller.reconcile(ctx, fresh(ctx, "Model", name))
        made += writes_of(ctx)
    controller.reconcile(ctx, fresh(ctx, "Model", name))
    assert writes_of(ctx) == [], f"a reconcile of an unchanged world wrote (after {made})"
    return made


def serving_model(ctx: Context, **spec: Any) -> str:
    """A Model (``model(**spec)``) trained, deployed and serving; its stable revision."""
    ctx.kube.create(model(**spec))
    reconcile_twice(ctx)
    succeed_training_job(ctx, "m-1", "a" * 64)
    reconcile_twice(ctx)
    revision = fresh(ctx, "Model", "m")["status"]["canaryRevision"]
    ready_deployment(ctx, revision)
    reconcile_twice(ctx)
    assert fresh(ctx, "Model", "m")["status"]["stableRevision"] == revision
    return str(revision)
