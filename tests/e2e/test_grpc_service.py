"""OIP v2 gRPC through the Model's Service on a real cluster, with Triton's own client.

The Service carries port ``grpc`` (8081, h2c) next to ``http``; the serving
pods answer on it, count the calls in the same series the canary analysis
reads, and agree with REST on the same rows.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import numpy as np
import pytest
from helpers import dataset, model_manifest, post

from conftest import S3, Namespace, Operator, wait_until
from modelship.demo import data
from modelship.logic.scrape import parse_samples

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


def _service(ns: Namespace, name: str) -> dict[str, Any]:
    svc = ns.get("service", name)
    assert svc is not None, "the Model's Service is missing"
    return svc


def test_grpc_through_the_models_service(namespace: Namespace, s3: S3, operator: Operator) -> None:
    import tritonclient.grpc as tgrpc

    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=11))
    namespace.apply(model_manifest("loans", uri))
    wait_until(lambda: (m := namespace.get("model", "loans")) and m.get("status", {}).get("phase") == "Serving",
               420, "Model loans Serving", interval=2)
    svc = _service(namespace, "loans")
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["grpc"]["port"] == 8081 and ports["grpc"]["appProtocol"] == "kubernetes.io/h2c"
    ip = svc["spec"]["clusterIP"]

    client = tgrpc.InferenceServerClient(f"{ip}:8081")
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("loans")
        meta = client.get_model_metadata("loans", as_json=True)
        http = f"http://{ip}:{ports['http']['port']}"
        rest_meta = json.loads(urllib.request.urlopen(f"{http}/v2/models/loans", timeout=10).read())
        params = rest_meta["parameters"]
        rows = data.instances(12, seed=7)
        dtypes = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "BYTES": object}
        inputs = []
        for spec in meta["inputs"]:
            if params["input_mode"] == "tensor":  # one input: the features in the artifact's order
                values = [[r[f["name"]] for f in params["features"]] for r in rows]
            else:
                values = [[r[spec["name"]]] for r in rows]
            if spec["datatype"] == "BYTES":
                values = [[str(v) for v in row] for row in values]
            arr = np.array(values, dtype=dtypes[spec["datatype"]])
            t = tgrpc.InferInput(spec["name"], list(arr.shape), spec["datatype"])
            t.set_data_from_numpy(arr)
            inputs.append(t)
        result = client.infer("loans", inputs)
        label = next(name for name, role in params["output_roles"].items() if role == "label")
        grpc_labels = [v.decode() if isinstance(v, bytes) else v.item() for v in result.as_numpy(label).ravel()]
    finally:
        client.close()

    code, body = post(f"{http}/v1/models/loans:predict", {"instances": rows})
    assert code == 200, body
    assert grpc_labels == body["predictions"], (grpc_labels, body)

    # The pods counted the gRPC calls in the series the canary analysis sums.
    counted = 0.0
    for pod in namespace.list("pod", "modelship.io/model=loans,app.kubernetes.io/name=modelship-serving"):
        text = urllib.request.urlopen(f"http://{pod['status']['podIP']}:8080/metrics", timeout=10).read().decode()
        counted += sum(s.value for s in parse_samples(text) if s.name == "modelship_requests_total"
                       and s.labels.get("protocol") == "grpc" and s.labels.get("endpoint") == "infer")
    assert counted >= 1, json.dumps([p["metadata"]["name"] for p in namespace.list("pod", "modelship.io/model=loans")])
