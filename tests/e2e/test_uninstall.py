"""`helm uninstall` (the session's last test): everything the chart made goes,
except the CRDs (kept by `helm.sh/resource-policy: keep`) and the user's
Models with what they made and the artifacts in the store."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import dataset, model_manifest

from conftest import S3, Namespace, Operator, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]


def test_uninstall_keeps_crds_models_and_artifacts(
        local_cluster: Any, namespace: Namespace, s3: S3, operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=71))
    namespace.apply(model_manifest("kept", uri))
    st = wait_until(lambda: (s := (namespace.get("model", "kept") or {}).get("status") or {})
                    .get("phase") == "Serving" and s, 420, "the Model to serve", 2)
    artifact = st["history"][0]["artifactUri"]

    operator.stop()  # helm uninstall --wait
    selector = "app.kubernetes.io/instance=modelship"
    for kind in ("deployment", "service", "serviceaccount", "role", "rolebinding", "lease", "pod"):
        left = json.loads(local_cluster.kubectl("get", kind, "-n", operator.namespace, "-l", selector,
                                                "-o", "json").stdout)["items"]
        assert not [o["metadata"]["name"] for o in left if "deletionTimestamp" not in o["metadata"]], (kind, left)
    for kind in ("clusterrole", "clusterrolebinding"):
        left = json.loads(local_cluster.kubectl("get", kind, "-l", selector, "-o", "json").stdout)["items"]
        assert not left, [o["metadata"]["name"] for o in left]
    for crd in ("models", "trainingjobs", "driftmonitors"):
        assert local_cluster.kubectl("get", "crd", f"{crd}.modelship.io", check=False).returncode == 0, crd
    # The user's Model, what it made, and its artifact are untouched.
    assert namespace.get("model", "kept")["status"]["stableRevision"] == st["stableRevision"]
    assert namespace.get("deployment", st["stableRevision"]) is not None
    assert s3.get(artifact.rstrip("/") + "/model.onnx")
