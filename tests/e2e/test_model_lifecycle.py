"""The operator end to end on a real cluster: real trainer Jobs, real serving pods,
real HTTP through the Service, real load."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from helpers import Load, condition, dataset, model_manifest, post, service_url

from conftest import S3, Namespace, Operator, wait_until
from modelship.demo import data
from modelship_runtime.artifacts.metadata import Metadata

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

# The faulty canary: its pods answer this share of requests with 500, under this load through
# the Service; the users' failed requests until the rollback must stay within the bound.
# (Issue 18 measured 6-11 failed for such a canary at 50 req/s, with 4 replicas and a 25% step.)
FAULTY_CANARY_ERROR_RATIO = 0.2
FAULTY_CANARY_LOAD_RPS = 50
# Until the decision (the stable keeps its pods through step 1, so the canary goes then): 22 here amid
# the suite and 16 on kind (2026-12-05); 33-43 and 46-47 before, when failures lasted until a
# restored stable pod was Ready (docs/kind.md).
FAULTY_CANARY_MAX_FAILED = 60
# apply → Ready of the test Model (one candidate, 2,000 rows, 2 replicas) on a shared 2-core machine.
APPLY_TO_READY_MAX_S = 120


def status(ns: Namespace, name: str) -> dict[str, Any]:
    return dict((ns.get("model", name) or {}).get("status") or {})


def wait_phase(ns: Namespace, name: str, phase: str, timeout: float = 420) -> dict[str, Any]:
    return wait_until(lambda: status(ns, name) if status(ns, name).get("phase") == phase else None,
                      timeout, f"Model {name} phase {phase}", interval=2)  # type: ignore[no-any-return]


def local_predictions(s3: S3, artifact_uri: str, rows: list[dict[str, Any]]) -> list[Any]:
    """The same rows through onnxruntime in this process, from the artifact in the store."""
    bucket, _, prefix = artifact_uri.removeprefix("s3://").partition("/")
    read = lambda key: s3.client.get_object(Bucket=bucket, Key=prefix.rstrip("/") + "/" + key)["Body"].read()  # noqa: E731
    meta = Metadata.model_validate_json(read("metadata.json"))
    session = ort.InferenceSession(read("model.onnx"), providers=["CPUExecutionProvider"])
    types = {"float": np.float32, "double": np.float64, "int64": np.int64, "string": object}
    feeds = {f.name: np.array([[r[f.name]] for r in rows], dtype=types[f.dtype]) for f in meta.features}
    label = next(o.name for o in meta.outputs if o.role == "label")
    out = session.run([label], feeds)[0]
    return [v.item() if hasattr(v, "item") else v for v in np.asarray(out).ravel()]


def test_apply_train_serve_then_canary_promoted_under_load_with_zero_failures(
        namespace: Namespace, s3: S3, operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=1))
    started = time.monotonic()
    namespace.apply(model_manifest("loans", uri))
    st = wait_phase(namespace, "loans", "Serving")
    apply_to_ready = time.monotonic() - started
    print(f"apply → Ready: {apply_to_ready:.1f} s (bound {APPLY_TO_READY_MAX_S} s)")
    assert apply_to_ready <= APPLY_TO_READY_MAX_S
    assert condition(namespace.get("model", "loans"), "Ready")["status"] == "True"
    assert st["url"] == f"http://loans.{namespace.name}.svc.cluster.local"
    tj = namespace.get("trainingjob", "loans-1")
    assert tj is not None and tj["status"]["phase"] == "Succeeded" and tj["status"]["artifact"]["sha256"]

    # Predictions through the Service equal onnxruntime on the same artifact.
    url = service_url(namespace, "loans")
    rows = data.instances(20, seed=5)
    code, body = post(url, {"instances": rows})
    assert code == 200, body
    assert body["predictions"] == local_predictions(s3, tj["status"]["artifact"]["uri"], rows)

    # New data, retrain by annotation; the canary goes through its step under load.
    s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=2))
    first = st["stableRevision"]
    with Load(url) as load:
        time.sleep(2)
        namespace.kubectl("annotate", "model", "loans", "modelship.io/retrain=1", "--overwrite")
        wait_until(lambda: status(namespace, "loans").get("canaryRevision"), 300, "a canary revision")
        # Promoted, and the handover over: the previous stable serves until the promoted revision is
        # ready at full size (on kind's nodes that takes longer than on one machine), then it goes.
        done = wait_until(
            lambda: (s := status(namespace, "loans")).get("stableRevision") not in (None, first)
            and not s.get("canaryRevision") and not s.get("rollout") and s, 300, "promotion of the canary")
        time.sleep(3)
    print(f"load during the rollout: {load.ok} ok, {load.failed} failed")
    assert load.failed == 0, load.failures
    assert load.ok > 100
    history = done["history"]
    assert history[0]["outcome"] == "Promoted" and history[0]["trigger"] == "manual"
    # Each serving revision records the image its pods ran (the kubelet's imageID).
    assert all("sha256:" in (h.get("image") or "") for h in history if h.get("revision")), history
    assert {h.get("trainingJob") for h in history} >= {"loans-1", "loans-2"}
    wait_until(lambda: [d["metadata"]["name"] for d in namespace.list("deployment", "modelship.io/model=loans")]
               == [done["stableRevision"]], 30, "only the promoted revision's Deployment")
    assert "modelship_rollouts_total" in operator.metrics()


def test_faulty_canary_is_rolled_back_and_stable_keeps_serving(
        namespace: Namespace, s3: S3, operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=3))
    namespace.apply(model_manifest("risky", uri))
    st = wait_phase(namespace, "risky", "Serving")
    stable = st["stableRevision"]
    url = service_url(namespace, "risky")
    s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=4))
    namespace.kubectl("annotate", "model", "risky", "--overwrite", "modelship.io/test-canary-env="
                      f'{{"MODELSHIP_FAULT_ERROR_RATIO": "{FAULTY_CANARY_ERROR_RATIO}"}}')
    with Load(url, rate=FAULTY_CANARY_LOAD_RPS) as load:
        namespace.kubectl("annotate", "model", "risky", "modelship.io/retrain=1", "--overwrite")
        done = wait_until(
            lambda: (s := status(namespace, "risky")) and any(h["outcome"] == "RolledBack" for h in s["history"])
            and not s.get("canaryRevision") and s, 300, "the rollback")
    rolled = next(h for h in done["history"] if h["outcome"] == "RolledBack")
    assert "error ratio" in rolled["reason"], rolled
    assert done["stableRevision"] == stable and done["phase"] == "Serving"
    print(f"load during the faulty canary ({FAULTY_CANARY_ERROR_RATIO:.0%} injected 5xx): {load.ok} ok, "
          f"{load.failed} failed at {load.achieved_rate:.1f} req/s (bound {FAULTY_CANARY_MAX_FAILED} "
          f"at {FAULTY_CANARY_LOAD_RPS} req/s)")
    assert load.achieved_rate >= 0.8 * FAULTY_CANARY_LOAD_RPS, "the load ran slower than the bound assumes"
    assert 0 < load.failed <= FAULTY_CANARY_MAX_FAILED, load.failures
    # After the rollback only the stable revision answers, and it answers every request.
    serving = "modelship.io/model=risky,app.kubernetes.io/name=modelship-serving"
    wait_until(lambda: len(namespace.list("pod", serving)) == 2, 120, "canary pods gone")
    with Load(url, threads=2) as after:
        time.sleep(5)
    assert after.failed == 0 and after.ok > 20, after.failures
    events = namespace.kubectl("get", "events", "--field-selector", "involvedObject.name=risky", "-o", "json").stdout
    assert any(e["reason"] == "RolledBack" for e in json.loads(events)["items"])


def test_a_version_failing_a_gate_never_receives_traffic(namespace: Namespace, s3: S3, operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=6))
    namespace.apply(model_manifest("strict", uri, gates={"thresholds": [{"metric": "roc_auc", "min": 0.9999}]}))
    st = wait_phase(namespace, "strict", "Failed")
    trained = condition(namespace.get("model", "strict"), "Trained")
    assert trained["status"] == "False" and trained["reason"] == "GateFailed", trained
    assert "roc_auc" in trained["message"]
    assert st["history"][0]["outcome"] == "Refused"
    assert namespace.list("deployment", "modelship.io/model=strict") == []
    tj = namespace.get("trainingjob", "strict-1")
    assert tj is not None and tj["status"]["reason"] == "GateFailed"


def test_invalid_specs_are_refused_or_reported(namespace: Namespace, s3: S3, operator: Operator) -> None:
    bad = model_manifest("bad", "s3://modelship/x.csv")
    bad["spec"]["rollout"]["steps"] = [{"weight": 50}, {"weight": 10}]
    res = namespace.kubectl("apply", "-f", "-", stdin=json.dumps(bad), check=False)
    assert res.returncode != 0 and "canary step weights must be strictly increasing" in res.stderr
    tj = {"apiVersion": "modelship.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "typo"},
          "spec": {"dataset": {"uri": s3.put(f"datasets/{namespace.name}/typo.csv", dataset(seed=5)),
                               "target": "approved"},
                   "candidates": [{"estimator": "LogisticRegression", "params": {"Cee": [1]}}]}}
    namespace.apply(tj)
    got = wait_until(lambda: (t := namespace.get("trainingjob", "typo")) and
                     t.get("status", {}).get("phase") == "Failed" and t, 240, "the TrainingJob to fail")
    assert got["status"]["reason"] == "InvalidSpec", got["status"]
    assert "Cee" in condition(got, "Failed")["message"]
    # A bad spec fails the Job at once: one pod, no retries.
    assert len(namespace.list("pod", "batch.kubernetes.io/job-name=typo")) == 1


def test_operator_killed_during_rollouts_resumes_without_duplicates(
        namespace: Namespace, s3: S3, operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=7))
    namespace.apply(model_manifest("sturdy", uri))
    rng = random.Random(11)
    try:
        for _ in range(2):  # kill -9 at a random moment of training, deploying or serving
            time.sleep(rng.uniform(2, 12))
            operator.kill()
            operator.start()
        first = wait_phase(namespace, "sturdy", "Serving")["stableRevision"]
        s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=8))
        with Load(service_url(namespace, "sturdy"), threads=2) as load:  # the canary needs requests to be judged
            namespace.kubectl("annotate", "model", "sturdy", "modelship.io/retrain=1", "--overwrite")
            for _ in range(2):  # and during the canary
                time.sleep(rng.uniform(3, 15))
                operator.kill()
                operator.start()
            done = wait_until(lambda: (s := status(namespace, "sturdy")).get("stableRevision") not in (None, first)
                              and not s.get("canaryRevision") and s, 420, "promotion after the kills")
    finally:
        operator.start()  # returns at once when an operator leads
    print(f"load while the operator was killed twice during the canary: {load.ok} ok, {load.failed} failed")
    assert load.failed == 0, load.failures  # the operator is not in the data path: a crash fails no request
    assert load.ok > 50
    tjs = sorted(t["metadata"]["name"] for t in namespace.list("trainingjob"))
    assert tjs == ["sturdy-1", "sturdy-2"], tjs
    # The old stable serves until the promoted revision is ready at full size, then goes (also
    # after a restart: status.rollout keeps it). Nothing else is left behind.
    wait_until(lambda: [d["metadata"]["name"] for d in namespace.list("deployment", "modelship.io/model=sturdy")]
               == [done["stableRevision"]], 60, "only the promoted revision's Deployment")


def test_deleting_a_model_removes_what_it_made(namespace: Namespace, s3: S3, operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=9))
    namespace.apply(model_manifest("brief", uri))
    wait_phase(namespace, "brief", "Serving")
    namespace.kubectl("delete", "model", "brief", "--wait=true", "--timeout=120s")
    for kind in ("trainingjob", "deployment", "service", "job", "configmap"):
        wait_until(lambda k=kind: not [o for o in namespace.list(k) if o["metadata"]["name"].startswith("brief")],
                   120, f"{kind}s of the deleted Model to go")



def test_autoscaling_puts_an_hpa_on_the_stable_revision(namespace: Namespace, s3: S3, operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=12))
    manifest = model_manifest("elastic", uri)
    manifest["spec"]["serving"]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 3, "targetCpuUtilization": 60}
    namespace.apply(manifest)
    st = wait_phase(namespace, "elastic", "Serving")
    hpa = wait_until(lambda: namespace.get("hpa", "elastic"), 60, "the HPA")
    assert hpa["spec"]["scaleTargetRef"]["name"] == st["stableRevision"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)
    # Editing the bounds edits the HPA.
    namespace.kubectl("patch", "model", "elastic", "--type=merge",
                      "-p", '{"spec": {"serving": {"autoscaling": {"maxReplicas": 4}}}}')
    wait_until(lambda: (namespace.get("hpa", "elastic") or {}).get("spec", {}).get("maxReplicas") == 4, 60,
               "the HPA to follow the Model")
    # Turning autoscaling off removes it.
    namespace.kubectl("patch", "model", "elastic", "--type=json",
                      "-p", '[{"op": "remove", "path": "/spec/serving/autoscaling"}]')
    wait_until(lambda: namespace.get("hpa", "elastic") is None, 60, "the HPA to go")
    assert "modelship_models{phase=\"Serving\"}" in operator.metrics()
