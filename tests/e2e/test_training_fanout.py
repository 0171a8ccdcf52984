"""The search fanned out over an Indexed Job on a real cluster, and the trainer's failure modes.

* A Model whose training sets ``search.parallelism: 2`` trains (2 search
  pods, then a refit pod), gates and serves; a TrainingJob with the same
  spec at parallelism 1 writes the same ``model.onnx`` (sha256).
* An index whose pod is deleted mid-search is retried alone.
* Bad data fails the whole search at once, with no retry and no refit.
* A trainer killed for memory ends the run as ``OOMKilled``, not retried,
  with a message naming the limit to raise.
"""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import condition, dataset, model_manifest, post, service_url

from conftest import S3, Namespace, Operator, wait_until
from modelship.demo import data

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
GRID = [{"estimator": "LogisticRegression", "params": {"C": [0.1, 1.0, 10.0]}},
        {"estimator": "KNeighbors", "params": {"n_neighbors": [5, 15]}}]


def tj_status(ns: Namespace, name: str) -> dict[str, Any]:
    return dict((ns.get("trainingjob", name) or {}).get("status") or {})


def wait_finished(ns: Namespace, name: str, timeout: float = 420) -> dict[str, Any]:
    return wait_until(  # type: ignore[no-any-return]
        lambda: (s := tj_status(ns, name)).get("phase") in ("Succeeded", "Failed") and s,
        timeout, f"TrainingJob {name} to finish", interval=2)


def training_job(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "modelship.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name}, "spec": spec}


def pods_by_index(ns: Namespace, job: str) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for pod in ns.list("pod", f"batch.kubernetes.io/job-name={job}"):
        out.setdefault(int(pod["metadata"]["labels"][INDEX_LABEL]), []).append(pod)
    return out


def test_model_with_parallelism_2_trains_gates_and_serves_the_bytes_of_one_pod(
        namespace: Namespace, s3: S3, operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=21))
    manifest = model_manifest("fan", uri)
    manifest["spec"]["training"]["candidates"] = GRID
    manifest["spec"]["training"]["search"] = {"strategy": "grid", "cvFolds": 3, "parallelism": 2}
    namespace.apply(manifest)
    wait_until(lambda: (namespace.get("model", "fan") or {}).get("status", {}).get("phase") == "Serving",
               600, "Model fan to serve", interval=2)
    tj = namespace.get("trainingjob", "fan-1")
    assert tj is not None
    st = tj["status"]
    assert st["phase"] == "Succeeded" and st["jobName"] == "fan-1"
    search = st["search"]
    assert (search["parallelism"], search["cellsDone"], search["cellsTotal"], search["progress"]) == (2, 15, 15,
                                                                                                     "15/15")
    assert [(i["index"], i["phase"]) for i in search["indexes"]] == [(0, "Succeeded"), (1, "Succeeded")]
    assert search["bestScore"] == pytest.approx(st["leaderboard"][0]["score"], abs=1e-6)
    job = namespace.get("job", "fan-1-search")
    assert job is not None and job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 2
    assert {i: len(p) for i, p in pods_by_index(namespace, "fan-1-search").items()} == {0: 1, 1: 1}
    assert len(namespace.list("pod", "batch.kubernetes.io/job-name=fan-1")) == 1  # the refit
    shown = namespace.kubectl("get", "tj", "fan-1").stdout
    assert "CELLS" in shown and "15/15" in shown, shown
    # It serves.
    code, body = post(service_url(namespace, "fan"), {"instances": data.instances(5, seed=5)})
    assert code == 200 and len(body["predictions"]) == 5, body
    # The same spec in one pod writes the same model.onnx.
    spec = copy.deepcopy(tj["spec"])
    spec["search"]["parallelism"] = 1
    spec["outputUri"] = spec["outputUri"].replace("/fan-1/", "/fan-single/")
    namespace.apply(training_job("fan-single", spec))
    single = wait_finished(namespace, "fan-single")
    assert single["phase"] == "Succeeded", single
    assert single["artifact"]["sha256"] == st["artifact"]["sha256"]
    assert single["leaderboard"] == st["leaderboard"] and single["bestEstimator"] == st["bestEstimator"]
    assert single["search"]["progress"] == "15/15" and single["search"]["parallelism"] == 1


def slow_spec(uri: str, **search: Any) -> dict[str, Any]:
    """A search each share needs tens of seconds for (gradient boosting on a few thousand rows)."""
    return {
        "dataset": {"uri": uri, "target": "approved", "categoricalFeatures": ["region", "employment"]},
        "candidates": [{"estimator": "GradientBoosting", "params": {"n_estimators": [60, 120],
                                                                    "max_depth": [3, 4]}}],
        "search": {"strategy": "grid", "cvFolds": 4, **search},
        "backoffLimit": 1,
    }


def test_an_index_whose_pod_is_lost_is_retried_alone(namespace: Namespace, s3: S3, operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=22, rows=4000))
    namespace.apply(training_job("lossy", slow_spec(uri, parallelism=2)))
    victim = wait_until(lambda: next((p for p in pods_by_index(namespace, "lossy-search").get(1, [])
                                      if p["status"].get("phase") == "Running"), None),
                        240, "index 1 of the search to run", interval=0.2)
    # Deleted at once: while the trainer still imports scikit-learn (seconds here), the case that once
    # died of SIGKILL after the grace period (PID 1 ignored SIGTERM) and failed the whole Job.
    name = victim["metadata"]["name"]
    namespace.kubectl("delete", "pod", name, "--wait=false")
    # The Job's tracking finalizer keeps the pod until its end is counted: how it ended is seen.
    exits: list[int] = []

    def ended() -> bool:
        pod = namespace.get("pod", name)
        exits[:] = [] if pod is None else [s["state"]["terminated"]["exitCode"] for s in
                                           pod["status"].get("containerStatuses", [])
                                           if "terminated" in s.get("state", {})]
        return pod is None or bool(exits)

    wait_until(ended, 120, "the deleted pod to end", interval=0.2)
    print(f"the deleted trainer exited {exits}")
    assert exits in ([], [143]), f"a deleted trainer must exit 143 (SIGTERM), not {exits}"
    st = wait_finished(namespace, "lossy", timeout=600)
    assert st["phase"] == "Succeeded", st
    job = namespace.get("job", "lossy-search")
    assert job is not None
    # The deleted pod's trainer exits 143 on SIGTERM, which the podFailurePolicy ignores: replaced,
    # not counted as a failure of its index.
    assert not job["status"].get("failed") and job["status"].get("succeeded") == 2, job["status"]
    assert job["status"].get("completedIndexes") == "0,1" and not job["status"].get("failedIndexes")
    indexes = pods_by_index(namespace, "lossy-search")
    assert len(indexes[0]) == 1, "index 0 ran once: the lost pod cost only its own index"
    assert [i["phase"] for i in st["search"]["indexes"]] == ["Succeeded", "Succeeded"]
    assert st["search"]["progress"] == "16/16"


def test_bad_data_fails_the_whole_search_at_once(namespace: Namespace, s3: S3, operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=23))
    spec = slow_spec(uri, parallelism=3)
    spec["dataset"]["target"] = "no_such_column"
    spec["backoffLimit"] = 3
    namespace.apply(training_job("broken", spec))
    st = wait_finished(namespace, "broken", timeout=300)
    assert st["phase"] == "Failed" and st["reason"] == "InvalidData", st
    assert "no_such_column" in st["message"] and "Search index" in st["message"]
    failed = condition(namespace.get("trainingjob", "broken"), "Failed")
    assert failed["reason"] == "InvalidData"
    job = namespace.get("job", "broken-search")
    assert job is not None
    # Since v1.31 the Job first gets FailureTarget (the operator acts on it) and Failed only once
    # every pod has terminated; either one names the policy.
    reasons = {c.get("reason") for c in job["status"].get("conditions") or []
               if c["type"] in ("Failed", "FailureTarget")}
    assert reasons == {"PodFailurePolicy"}, job["status"]
    # No index was retried (backoffLimit 3 notwithstanding), and no refit was made.
    assert all(len(p) == 1 for p in pods_by_index(namespace, "broken-search").values())
    assert namespace.get("job", "broken") is None


def big_csv(rows: int = 400_000, seed: int = 0) -> bytes:
    """~46 MB of numbers: the trainer needs about 600 MB for it (measured with /usr/bin/time -v)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 12)).round(6), columns=[f"x{i}" for i in range(12)])
    frame["y"] = (frame["x0"] > 0).astype(int)
    out = io.StringIO()
    frame.to_csv(out, index=False)
    return out.getvalue().encode()


def test_a_trainer_killed_for_memory_is_reported_as_oomkilled_and_not_retried(
        namespace: Namespace, s3: S3, operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/big.csv", big_csv())
    spec = {"dataset": {"uri": uri, "target": "y"}, "candidates": [{"estimator": "LogisticRegression"}],
            "search": {"cvFolds": 2}, "backoffLimit": 2,
            "resources": {"requests": {"cpu": "100m", "memory": "384Mi"}, "limits": {"memory": "384Mi"}}}
    namespace.apply(training_job("hungry", spec))
    st = wait_finished(namespace, "hungry", timeout=300)
    assert st["phase"] == "Failed" and st["reason"] == "OOMKilled", st
    assert "spec.resources.limits.memory of TrainingJob hungry" in st["message"]
    assert "384Mi" in st["message"] and "not retried" in st["message"]
    pods = namespace.list("pod", "batch.kubernetes.io/job-name=hungry")
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]  # backoffLimit 2, yet no blind retry
    term = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "OOMKilled" and term["exitCode"] == 137
    events = json.loads(namespace.kubectl("get", "events", "--field-selector", "involvedObject.name=hungry",
                                          "-o", "json").stdout)["items"]
    assert any(e["reason"] == "OOMKilled" and e["type"] == "Warning" for e in events)
