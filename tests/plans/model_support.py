"""Builders for Model plan tests: observations, TrainingJobs, Deployments, canary traffic."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from modelship.api.model import ModelSpec, ModelStatus
from modelship.api.trainingjob import TrainingJobStatus
from modelship.logic.canary import DeploymentState
from modelship.logic.scrape import RequestCounters
from modelship.plans.model import (
    Observation,
    ObservedRevision,
    ObservedTrainingJob,
    Plan,
    ServingDefaults,
)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
IMAGE = "docker.io/modelship/serving:0.1.0"
OWNER = {"apiVersion": "modelship.io/v1alpha1", "kind": "Model",
         "metadata": {"name": "m", "namespace": "ns", "uid": "uid-m"}}
SPEC = ModelSpec.model_validate({
    "training": {
        "dataset": {"uri": "s3://b/d.csv", "target": "y"},
        "candidates": [{"estimator": "LogisticRegression"}],
    },
    "serving": {"replicas": 2},
    "rollout": {"steps": [{"weight": 25, "pause": "30s"}, {"weight": 50, "pause": "30s"}],
                "analysis": {"interval": "5s"}},
    "gates": {"thresholds": [{"metric": "accuracy", "min": 0.8}]},
})
DEFAULTS = ServingDefaults(serving_image=IMAGE, artifact_store="s3://b/a")


def succeeded(name: str, sha: str, accuracy: float = 0.9) -> TrainingJobStatus:
    return TrainingJobStatus.model_validate({
        "phase": "Succeeded", "artifact": {"uri": f"s3://b/a/{name}/", "sha256": sha},
        "metric": "accuracy", "score": accuracy, "metrics": {"accuracy": accuracy}, "onnxMaxDelta": 1e-9,
        "gates": [{"name": "onnxParity", "passed": True, "message": "ok"}],
    })


def running() -> TrainingJobStatus:
    return TrainingJobStatus.model_validate({"phase": "Running"})


def tj(name: str, n: int, status: TrainingJobStatus, trigger: str = "initial") -> ObservedTrainingJob:
    return ObservedTrainingJob(name, n, trigger, status)


def ready(replicas: int, ready_pods: int | None = None, template: bool = False) -> ObservedRevision:
    """A Deployment with ``ready_pods`` of ``replicas`` ready; ``template``: it carries the pod
    template the plan builds today for the first version (what the API server would return)."""
    n = replicas if ready_pods is None else ready_pods
    pod = None
    if template:
        from modelship.builders.serving import build_pod_template
        pod = build_pod_template("m", model_uri="s3://b/a/m-1/", sha256="a" * 64, serving=SPEC.serving, image=IMAGE)
    return ObservedRevision(DeploymentState(replicas=replicas, ready=n, available=n, updated=replicas), pod)


def traffic(requests: int, errors: int = 0, pod: str = "canary-0", seconds: float = 0.01) -> dict[str, RequestCounters]:
    """A canary pod's cumulative counters after ``requests`` answers (``errors`` of them 500)."""
    by_code = {"200": float(requests - errors), **({"500": float(errors)} if errors else {})}
    buckets = {0.005: 0.0, seconds: float(requests), 1.0: float(requests), math.inf: float(requests)}
    return {pod: RequestCounters(by_code, buckets)}


def obs(status: ModelStatus, now: datetime, **kw: Any) -> Observation:
    if "retrain_token" in kw:
        kw["annotations"] = {"modelship.io/retrain": kw.pop("retrain_token")}
    base: dict[str, Any] = {"owner": OWNER, "generation": 1, "spec": SPEC, "status": status, "now": now,
                            "defaults": DEFAULTS}
    base.update(kw)
    return Observation(**base)


def with_defaults(o: Observation, **changes: Any) -> Observation:
    return replace(o, defaults=replace(o.defaults, **changes))


def deployments(p: Plan) -> dict[str, int]:
    """Revision -> replicas, as the plan wants the Deployments."""
    return {c.obj["metadata"]["name"]: c.obj["spec"]["replicas"] for c in p.children or []
            if c.obj["kind"] == "Deployment"}


def kinds(p: Plan) -> list[tuple[str, str]]:
    return [(c.obj["kind"], c.obj["metadata"]["name"]) for c in p.children or []]


def created_job(p: Plan) -> tuple[str, str] | None:
    """(name, trigger) of the TrainingJob the plan starts."""
    for c in p.children or []:
        if c.obj["kind"] == "TrainingJob":
            return c.obj["metadata"]["name"], c.obj["spec"]["trigger"]
    return None


def event_reasons(p: Plan) -> list[str]:
    return [e.reason for e in p.events]
