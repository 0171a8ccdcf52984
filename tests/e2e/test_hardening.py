"""Issue 22 on a real cluster: a TrainingJob cannot write outside its
namespace's artifact prefix; a Model whose pipeline imputes serves rows with
nulls through its Service, with the imputed predictions; and a serving pod
replaced while the S3 store is down waits for the store (the other replicas
serving every request meanwhile) and becomes ready once it is back."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
import pytest
from helpers import Load, dataset, model_manifest, post, service_url
from onnx import numpy_helper

from conftest import S3, Namespace, Operator, wait_until
from modelship.demo import data, stack
from modelship_runtime.artifacts.metadata import CategoricalReference, Metadata

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


def model_status(ns: Namespace, name: str) -> dict[str, Any]:
    return dict((ns.get("model", name) or {}).get("status") or {})


@pytest.fixture(scope="module")
def served(local_cluster: Any, operator: Operator, s3: S3) -> Iterator[tuple[Namespace, dict[str, Any]]]:
    """One Model, 3 replicas, trained on the demo data (which has missing values), serving."""
    name = f"e2e-h-{uuid.uuid4().hex[:6]}"
    local_cluster.kubectl("create", "namespace", name)
    local_cluster.kubectl("create", "secret", "generic", stack.SECRET, "-n", name,
                          *[f"--from-literal={k}={v}" for k, v in stack.KEYS.items()])
    ns = Namespace(name, local_cluster)
    try:
        uri = s3.put(f"datasets/{name}/loans.csv", dataset(seed=11))
        manifest = model_manifest("held", uri)
        manifest["spec"]["serving"]["replicas"] = 3
        ns.apply(manifest)
        st = wait_until(lambda: (s := model_status(ns, "held")).get("phase") == "Serving" and s, 420,
                        "the Model to serve", 2)
        yield ns, st
    finally:
        local_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


# --- 3: outputs confined to <store>/<namespace>/ ----------------------------------------


def test_an_output_outside_the_namespace_fails_as_invalid_spec(namespace: Namespace, s3: S3,
                                                                operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=12, rows=300))
    victim = f"s3://{stack.BUCKET}/artifacts/someone-else/loans-1/"
    namespace.apply({
        "apiVersion": "modelship.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "sneaky"},
        "spec": {"dataset": {"uri": uri, "target": data.TARGET},
                 "candidates": [{"estimator": "LogisticRegression", "params": {"C": [1.0]}}],
                 "search": {"cvFolds": 2}, "outputUri": victim}})
    tj = wait_until(lambda: (t := namespace.get("trainingjob", "sneaky")) and (t.get("status") or {}).get("phase")
                    and t, 60, "the TrainingJob's verdict")
    st = tj["status"]
    assert (st["phase"], st["reason"]) == ("Failed", "InvalidSpec"), st
    assert victim in st["message"] and f"s3://{stack.BUCKET}/artifacts/{namespace.name}/" in st["message"]
    assert namespace.get("job", "sneaky") is None  # no trainer ever ran
    events = json.loads(namespace.kubectl("get", "events", "--field-selector", "involvedObject.name=sneaky",
                                          "-o", "json").stdout)["items"]
    assert any(e["reason"] == "InvalidSpec" and e["type"] == "Warning" for e in events)


# --- 11: nulls follow from the artifact --------------------------------------------------


def _artifact(s3: S3, uri: str) -> tuple[Metadata, onnx.ModelProto]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    read = lambda key: s3.client.get_object(Bucket=bucket, Key=prefix.rstrip("/") + "/" + key)["Body"].read()  # noqa: E731
    return Metadata.model_validate_json(read("metadata.json")), onnx.load_from_string(read("model.onnx"))


def _fill_values(meta: Metadata, graph: onnx.ModelProto) -> dict[str, Any]:
    """What the graph puts in place of a missing value: the numeric imputer's statistics (in the order of
    the numeric features) and, for a category, the most frequent one of the training data."""
    stats = [numpy_helper.to_array(i).ravel() for i in graph.graph.initializer if i.name.startswith("impute_stats")]
    assert len(stats) == 1, [i.name for i in graph.graph.initializer]
    numeric = [f.name for f in meta.features if f.type == "numeric"]
    fills: dict[str, Any] = dict(zip(numeric, (float(v) for v in stats[0]), strict=True))
    for f in meta.features:
        ref = meta.reference.features.get(f.name)
        if isinstance(ref, CategoricalReference):
            fills[f.name] = ref.categories[int(np.argmax(ref.proportions[:-1]))]
    return fills


def test_rows_with_nulls_get_the_imputed_predictions_through_the_service(
        served: tuple[Namespace, dict[str, Any]], s3: S3) -> None:
    ns, st = served
    uri = st["history"][0]["artifactUri"]
    meta, graph = _artifact(s3, uri)
    assert sorted(meta.imputed_inputs) == sorted(f.name for f in meta.features)
    fills = _fill_values(meta, graph)
    url = service_url(ns, "held")
    rows = data.instances(6, seed=21)
    gaps = [("income",), ("debt_ratio", "employment"), ("age", "region"), ("loan_amount",), ("employment",),
            ("income", "debt_ratio", "age", "credit_lines", "loan_amount", "region", "employment")]
    with_nulls = [{**r, **{k: None for k in g}} for r, g in zip(rows, gaps, strict=True)]
    filled = [{**r, **{k: fills[k] for k in g}} for r, g in zip(rows, gaps, strict=True)]
    code, got = post(url, {"instances": with_nulls, "parameters": {"probabilities": True}})
    assert code == 200, got
    code, want = post(url, {"instances": filled, "parameters": {"probabilities": True}})
    assert code == 200, want
    assert got["predictions"] == want["predictions"]
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], rtol=0, atol=1e-12)
    # A key left out is still an error, not a null: the request names it.
    code, body = post(url, {"instances": [{k: v for k, v in rows[0].items() if k != "age"}]})
    assert code == 400 and "age" in str(body)


# --- 5: the store down while a serving pod is replaced -------------------------------------


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def _readiness(pod: dict[str, Any]) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return 0, "no IP yet"
    try:
        with urllib.request.urlopen(f"http://{ip}:8080/v2/health/ready", timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def test_a_pod_replaced_while_the_store_is_down_waits_for_it_and_nothing_fails(
        served: tuple[Namespace, dict[str, Any]], s3: S3) -> None:
    ns, st = served
    revision = st["stableRevision"]
    selector = f"modelship.io/revision={revision}"
    before = {p["metadata"]["name"] for p in ns.list("pods", selector) if _ready(p)}
    assert len(before) == 3
    victim = sorted(before)[0]
    with Load(service_url(ns, "held"), threads=4) as load:
        time.sleep(3)
        s3.stop()
        try:
            ns.kubectl("delete", "pod", victim, "--wait=false")
            new = wait_until(lambda: [p for p in ns.list("pods", selector)
                                      if p["metadata"]["name"] not in before], 60, "the replacement pod")[0]
            name = new["metadata"]["name"]
            # It retries, and says why, while the other two serve.
            reason = wait_until(lambda: (r := _readiness(ns.get("pod", name) or {}))[0] == 503
                                and "could not be fetched yet" in r[1] and r[1], 90, "the new pod to report the store")
            print(f"replacement {name} while the store is down: {reason}")
            time.sleep(20)
            pod = ns.get("pod", name) or {}
            assert not _ready(pod)
            assert all(cs.get("restartCount", 0) == 0 for cs in pod["status"].get("containerStatuses") or [])
            failed_while_down = load.failed
        finally:
            s3.start()
        back = time.monotonic()
        wait_until(lambda: _ready(ns.get("pod", name) or {}), 90, "the new pod to become ready once the store is back")
        ready_after = time.monotonic() - back
        time.sleep(3)
    print(f"store back → replacement ready in {ready_after:.1f} s; requests ok {load.ok}, failed {load.failed}")
    assert failed_while_down == 0 and load.failed == 0, load.failures
    assert load.ok > 100
    assert len([p for p in ns.list("pods", selector) if _ready(p)]) == 3
    assert ready_after < 45  # the backoff tops out at 30 s
