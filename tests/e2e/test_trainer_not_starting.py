"""Pods that cannot start, on a real cluster.

A trainer's: in a namespace without the artifact store's credentials Secret the
trainer's container waits with CreateContainerConfigError. The TrainingJob says
so within seconds (reason PodNotStarting, the kubelet's words, a Warning Event)
instead of Running until activeDeadlineSeconds, its Model's Trained condition
relays it, and once the Secret is created the pod starts and the reason goes.

A serving revision's: a first version whose image cannot be pulled is named on
the Model (Ready and Progressing PodNotStarting, one Warning Event) instead of
"0/N pods ready" until the progress deadline; so is one asking for more CPU than
any node has, in the scheduler's words (a trainer's too); fixing the spec rolls
out a revision that serves."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import condition, dataset, model_manifest

from conftest import S3, Namespace, Operator, wait_until
from modelship.demo import stack

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]


@pytest.fixture
def bare_namespace(local_cluster: Any, operator: Operator) -> Iterator[Namespace]:
    """A namespace without the ``artifacts.s3.credentialsSecret`` the trainer's pod refers to."""
    name = f"e2e-ns-{uuid.uuid4().hex[:6]}"
    local_cluster.kubectl("create", "namespace", name)
    try:
        yield Namespace(name, local_cluster)
    finally:
        local_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_a_missing_credentials_secret_is_named_at_once_and_clears_when_created(
        local_cluster: Any, bare_namespace: Namespace, s3: S3, operator: Operator) -> None:
    ns = bare_namespace
    uri = s3.put(f"datasets/{ns.name}/loans.csv", dataset(seed=21, rows=500))
    ns.apply(model_manifest("nosecret", uri))
    missing = f'secret "{stack.SECRET}" not found'

    def stuck() -> dict[str, Any] | None:
        tj = ns.get("trainingjob", "nosecret-1")
        c = condition(tj, "Complete")
        return tj if c.get("reason") == "PodNotStarting" and missing in c.get("message", "") else None

    tj = wait_until(stuck, 90, "the TrainingJob to name the missing Secret", interval=2)
    st = tj["status"]
    assert st["phase"] == "Running", st  # the kubelet keeps trying: not a failure
    assert st["reason"] == "PodNotStarting" and "CreateContainerConfigError" in st["message"], st
    trained = wait_until(lambda: (c := condition(ns.get("model", "nosecret"), "Trained"))
                         .get("reason") == "PodNotStarting" and c, 30, "the Model to relay it")
    assert trained["status"] == "Unknown" and missing in trained["message"], trained
    events = json.loads(ns.kubectl("get", "events", "--field-selector", "involvedObject.name=nosecret-1",
                                   "-o", "json").stdout)["items"]
    warnings = [e for e in events if e["reason"] == "PodNotStarting" and e["type"] == "Warning"]
    assert len(warnings) == 1 and missing in warnings[0]["message"], events
    shown = ns.kubectl("get", "trainingjob", "nosecret-1").stdout
    assert "PodNotStarting" in shown, shown

    # The Secret appears: the kubelet starts the container and the reason goes.
    local_cluster.kubectl("create", "secret", "generic", stack.SECRET, "-n", ns.name,
                          *[f"--from-literal={k}={v}" for k, v in stack.KEYS.items()])
    after = wait_until(lambda: (s := ((ns.get("trainingjob", "nosecret-1") or {}).get("status") or {}))
                       .get("reason") != "PodNotStarting" and s, 180, "the pod to start", interval=2)
    assert after["phase"] in ("Running", "Succeeded"), after


NO_NODE = "Insufficient cpu"  # the scheduler's words for 64 CPUs on a node with 2


def test_a_serving_image_that_cannot_be_pulled_or_a_pod_no_node_fits_is_named_and_a_fixed_spec_serves(
        namespace: Namespace, s3: S3, operator: Operator) -> None:
    ns = namespace
    uri = s3.put(f"datasets/{ns.name}/loans.csv", dataset(seed=22, rows=500))
    doc = model_manifest("nopull", uri)
    doc["spec"]["serving"]["image"] = "registry.invalid/modelship/serving:none"
    ns.apply(doc)
    # Beside it, a trainer no node can hold: its TrainingJob names the scheduler's reason.
    huge = {"dataset": {"uri": uri, "target": "approved"}, "candidates": [{"estimator": "LogisticRegression"}],
            "resources": {"requests": {"cpu": "64", "memory": "256Mi"}}}
    ns.apply({"apiVersion": "modelship.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "huge"},
              "spec": huge})

    def named() -> dict[str, Any] | None:
        model = ns.get("model", "nopull")
        c = condition(model, "Ready")
        return model if c.get("reason") == "PodNotStarting" else None

    model = wait_until(named, 240, "the Model to name the image it cannot pull", interval=2)
    ready, progressing = condition(model, "Ready"), condition(model, "Progressing")
    assert ready["status"] == "False" and "registry.invalid/modelship/serving:none" in ready["message"], ready
    assert "ErrImagePull" in ready["message"] or "ImagePullBackOff" in ready["message"], ready
    assert progressing["reason"] == "PodNotStarting", progressing
    stuck = model["status"]["canaryRevision"]
    events = json.loads(ns.kubectl("get", "events", "--field-selector", "involvedObject.name=nopull",
                                   "-o", "json").stdout)["items"]
    warnings = [e for e in events if e["reason"] == "PodNotStarting" and e["type"] == "Warning"]
    assert len(warnings) == 1, warnings  # the pull's back-off does not repeat it

    tj = wait_until(lambda: (s := ((ns.get("trainingjob", "huge") or {}).get("status") or {}))
                    .get("reason") == "PodNotStarting" and s, 60, "the TrainingJob to say no node fits")
    assert tj["phase"] == "Running" and "Unschedulable" in tj["message"] and NO_NODE in tj["message"], tj

    # The image goes from the spec, and the revision asks for 64 CPUs: it supersedes the stuck one
    # (its pod template changed) and is named in the scheduler's words.
    ns.kubectl("patch", "model", "nopull", "--type=json", "-p", json.dumps([
        {"op": "remove", "path": "/spec/serving/image"},
        {"op": "replace", "path": "/spec/serving/resources/requests/cpu", "value": "64"}]))
    model = wait_until(lambda: (m := ns.get("model", "nopull")) and NO_NODE in condition(m, "Ready").get("message", "")
                       and m, 120, "the Model to say no node fits", interval=2)
    ready = condition(model, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "PodNotStarting" and "Unschedulable" in ready["message"]
    assert model["status"]["canaryRevision"] != stuck
    stuck = model["status"]["canaryRevision"]

    # What the node can hold: it serves.
    ns.kubectl("patch", "model", "nopull", "--type=json", "-p", json.dumps([
        {"op": "replace", "path": "/spec/serving/resources/requests/cpu", "value": "50m"}]))
    served = wait_until(lambda: (s := ((ns.get("model", "nopull") or {}).get("status") or {}))
                        .get("phase") == "Serving" and s, 180, "the fixed spec to serve", interval=2)
    assert served["stableRevision"] != stuck
    assert condition(ns.get("model", "nopull"), "Ready")["status"] == "True"
