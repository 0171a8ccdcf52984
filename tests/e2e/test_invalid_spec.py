"""Invalid Models on a real API server: each is refused at apply or gets Ready=False,
reason InvalidSpec, with a message naming the field, and one Warning Event; none makes the
operator's reconciles fail. A quantity the schema refuses ("512MB") never gets stored; a request
above its limit (the schema cannot compare them) is refused when the operator parses the spec; a
child the API server refuses (a Deployment whose pod template it rejects) is refused as the
Model's own invalid spec."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from helpers import condition, dataset, model_manifest

from conftest import S3, Namespace, Operator, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


def invalid_ready(ns: Namespace, name: str) -> dict[str, Any] | None:
    ready = condition(ns.get("model", name), "Ready")
    return ready if ready.get("reason") == "InvalidSpec" else None


def warnings(ns: Namespace, name: str) -> list[dict[str, Any]]:
    items = json.loads(ns.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}",
                                  "-o", "json").stdout)["items"]
    return [e for e in items if e["reason"] == "InvalidSpec" and e["type"] == "Warning"]


def test_invalid_models_are_refused_or_invalid_spec_naming_the_field(namespace: Namespace, s3: S3,
                                                                       operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=13, rows=300))

    # A quantity Kubernetes cannot read: the schema refuses it at apply, naming the field.
    bad_quantity = model_manifest("bytes", uri)
    bad_quantity["spec"]["serving"]["resources"]["requests"]["memory"] = "512MB"
    res = namespace.kubectl("apply", "-f", "-", stdin=json.dumps(bad_quantity), check=False)
    assert res.returncode != 0 and "spec.serving.resources.requests.memory" in res.stderr, res.stderr
    assert namespace.get("model", "bytes") is None

    # A request above its limit: stored, then InvalidSpec from the operator; no TrainingJob is made.
    over = model_manifest("over", uri)
    over["spec"]["serving"]["resources"] = {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}
    namespace.apply(over)
    ready = wait_until(lambda: invalid_ready(namespace, "over"), 60, "Ready=False, InvalidSpec on Model over")
    assert ready["status"] == "False"
    assert "spec.serving.resources" in ready["message"] and "requests.cpu 2 exceeds limits.cpu 1" in ready["message"]
    assert namespace.list("trainingjob", "modelship.io/model=over") == []
    assert len(wait_until(lambda: warnings(namespace, "over"), 30, "the InvalidSpec Event")) == 1

    # A child the API server refuses (a serving pod template with an invalid label selector): the
    # Model says which and why, and is not retried as an error.
    refused = {"apiVersion": "modelship.io/v1alpha1", "kind": "Model", "metadata": {"name": "refused"},
               "spec": {"source": {"uri": f"s3://{namespace.name}/nothing/model.onnx"},
                        "serving": {"replicas": 1, "topologySpreadConstraints": [
                            {"topologyKey": "kubernetes.io/hostname",
                             "labelSelector": {"matchLabels": {"not a key!": "x"}}}]}}}
    namespace.apply(refused)
    ready = wait_until(lambda: invalid_ready(namespace, "refused"), 60, "Ready=False, InvalidSpec on Model refused")
    assert ready["message"].startswith("the API server refused to create Deployment refused-"), ready
    assert "topologySpreadConstraints" in ready["message"], ready
    assert namespace.list("deployment", "modelship.io/model=refused") == []
    time.sleep(10)  # reconciles meanwhile (its events, the resync) post nothing more
    assert len(warnings(namespace, "refused")) == 1
    assert invalid_ready(namespace, "refused") == ready
