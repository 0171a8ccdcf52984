"""Ground truth on a real cluster: logged predictions + late labels → quality per revision → a drop
retrains once on the labelled production rows → the new version is promoted through the canary."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from typing import Any

import pytest
from helpers import Load, dataset, model_manifest, post
from test_model_lifecycle import service_url, status, wait_phase

from conftest import S3, Namespace, Operator, wait_until
from modelship.builders.common import REVISION_LABEL
from modelship.demo import data
from modelship.logic.scrape import parse_samples

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(3600)]  # includes waiting for the machine lock
FLOOR = 0.85


def monitor(name: str, model: str, labels_uri: str) -> dict[str, Any]:
    return {"apiVersion": "modelship.io/v1alpha1", "kind": "DriftMonitor", "metadata": {"name": name}, "spec": {
        "modelRef": {"name": model}, "interval": "10s", "window": {"duration": "1m", "minSamples": 200},
        "action": {"retrain": True, "cooldown": "10m", "maxPerDay": 5},
        "performance": {"metric": "accuracy", "floor": FLOOR, "minLabelledRows": 150, "window": "30m",
                        "interval": "10s", "labels": [{"uri": labels_uri}], "retrainData": "production"},
    }}


def send(url: str, rows: list[dict[str, Any]], batch: int = 20) -> list[tuple[str, int, dict[str, Any]]]:
    """Predictions through the Service; (request id, row, the row) for each row sent."""
    out = []
    for i in range(0, len(rows), batch):
        part = rows[i:i + batch]
        code, body = post(url, {"instances": [{k: v for k, v in r.items() if k != data.TARGET} for r in part]})
        assert code == 200, body
        out += [(body["id"], j, r) for j, r in enumerate(part)]
    return out


def labels_csv(sent: list[tuple[str, int, dict[str, Any]]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["request_id", "row", "label"])
    for request_id, row, r in sent:
        writer.writerow([request_id, row, r[data.TARGET]])
    return buf.getvalue().encode()


def feedback(url: str, sent: list[tuple[str, int, dict[str, Any]]]) -> None:
    body = {"labels": [{"id": i, "row": j, "label": r[data.TARGET]} for i, j, r in sent]}
    code, answer = post(url.replace(":predict", "").replace("/v1/", "/v2/") + "/feedback", body)
    assert code == 200 and answer == {"accepted": len(sent)}, answer


def performance(ns: Namespace, name: str) -> dict[str, Any]:
    return dict(((ns.get("driftmonitor", name) or {}).get("status") or {}).get("performance") or {})


def revision_quality(ns: Namespace, name: str, revision: str) -> dict[str, Any]:
    return next((r for r in performance(ns, name).get("revisions", []) if r["revision"] == revision), {})


def training_jobs(ns: Namespace, trigger: str) -> list[dict[str, Any]]:
    return [t for t in ns.list("trainingjob") if t["spec"].get("trigger") == trigger]


def test_late_labels_measure_quality_and_a_drop_retrains_once_on_production_rows(
        namespace: Namespace, s3: S3, operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=51))
    serving = {"replicas": 2, "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                                            "limits": {"memory": "512Mi"}},
               "predictionLog": {"flushInterval": "2s"}}
    namespace.apply(model_manifest("truth", uri, serving=serving, gates={"mustBeatChampion": True},
                                   retrain={"onDrift": True, "cooldown": "10m", "maxPerDay": 5}))
    first = wait_phase(namespace, "truth", "Serving")["stableRevision"]
    labels_prefix = f"labels/{namespace.name}/"
    namespace.apply(monitor("truth", "truth", f"s3://modelship/{labels_prefix}"))
    url = service_url(namespace, "truth")

    # Normal traffic; labels arrive later, for part of it: a file for some, the feedback endpoint for others.
    normal = send(url, list(data.rows(400, seed=52, missing=0.0)))
    s3.put(labels_prefix + "normal.csv", labels_csv(normal[:200]))
    feedback(url, normal[200:300])
    healthy = wait_until(lambda: (q := revision_quality(namespace, "truth", first)).get("labelled", 0) >= 300
                         and q, 180, "quality of the first revision on 300 labelled rows")
    print(f"first revision: {healthy}")
    assert healthy["rows"] >= 400 and healthy["state"] == "Healthy" and healthy["value"] >= FLOOR
    assert {"accuracy", "roc_auc"} <= set(healthy["estimates"]) and healthy["estimated"] is not None
    assert training_jobs(namespace, "performance") == []
    # Matched on labels, not text: prometheus_client orders labels in its exposition by name.
    gauged = {(x.labels.get("revision"), x.labels.get("metric"), x.labels.get("source"))
              for x in parse_samples(operator.metrics()) if x.name == "modelship_model_quality"
              and x.labels.get("namespace") == namespace.name and x.labels.get("model") == "truth"}
    assert (first, "accuracy", "realised") in gauged, gauged

    # The world changes its mind (same inputs, new outcomes): labels show the drop, drift does not.
    started = time.monotonic()
    shifted = send(url, list(data.rows(900, seed=53, shift=data.CONCEPT_SHIFT, missing=0.0)))
    s3.put(labels_prefix + "shifted.csv", labels_csv(shifted[:500]))
    feedback(url, shifted[500:700])
    retrain = wait_until(lambda: training_jobs(namespace, "performance"), 240, "the performance retrain")
    print(f"labels of the shift → retrain: {time.monotonic() - started:.1f} s")
    assert len(retrain) == 1
    tj = retrain[0]
    # The status is written right after the TrainingJob is created.
    wait_until(lambda: performance(namespace, "truth").get("lastTriggeredTrainingJob") == tj["metadata"]["name"],
               30, "the performance status")
    production = tj["spec"]["dataset"]["production"]
    assert production["uri"].endswith(f"/{namespace.name}/_groundtruth/truth/")
    assert production["labels"] == [{"uri": f"s3://modelship/{labels_prefix}", "idColumn": "request_id",
                                     "rowColumn": "row", "labelColumn": "label"}]
    assert tj["spec"]["championUri"] and not production["includeTrainingData"]
    dropped = performance(namespace, "truth")
    assert dropped["state"] == "Degraded" and dropped["lastTriggeredTrainingJob"] == tj["metadata"]["name"]
    degraded = next(c for c in namespace.get("driftmonitor", "truth")["status"]["conditions"]
                    if c["type"] == "PerformanceDegraded")
    assert degraded["status"] == "True" and degraded["reason"] == "BelowFloor", degraded
    # Inputs did not move: the drift part stays quiet, only performance retrains.
    assert training_jobs(namespace, "drift") == []

    # The new version trains on the labelled production rows, and the canary promotes it under traffic.
    name = tj["metadata"]["name"]
    done = wait_until(lambda: (t := namespace.get("trainingjob", name)) and
                      t.get("status", {}).get("phase") in ("Succeeded", "Failed") and t, 300, f"TrainingJob {name}")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    trained_on = done["status"]["dataset"]
    assert trained_on["rows"] >= 700 and len(trained_on["sha256"]) == 64, trained_on
    champion = next(g for g in done["status"]["gates"] if g["name"] == "champion")
    assert champion["passed"], champion
    artifact = done["status"]["artifact"]["uri"]
    written = s3.get(artifact.rstrip("/") + "/dataset.parquet")
    assert hashlib.sha256(written).hexdigest() == trained_on["sha256"]
    with Load(url, threads=3) as load:
        # Promoted, and the previous stable gone (stage Promoting over): later rows reach the new one only.
        promoted = wait_until(lambda: (s := status(namespace, "truth")).get("stableRevision") not in (None, first)
                              and not s.get("canaryRevision") and not s.get("rollout") and s, 400,
                              "the retrained version promoted")
    assert load.failed == 0, load.failures
    assert promoted["history"][0]["trigger"] == "performance" and promoted["history"][0]["outcome"] == "Promoted"
    new = promoted["stableRevision"]

    # Exactly one retrain: later measurements see the new revision. Its old pods drain for a few
    # seconds after the promotion and answer what reaches them meanwhile: wait until they are gone.
    wait_until(lambda: not namespace.list("pod", f"{REVISION_LABEL}={first}"), 120, "the old revision's pods to go")
    more = send(url, list(data.rows(200, seed=54, shift=data.CONCEPT_SHIFT, missing=0.0)))
    feedback(url, more)
    improved = wait_until(lambda: (q := revision_quality(namespace, "truth", new)).get("labelled", 0) >= 150 and q,
                          180, "quality of the retrained revision")
    print(f"retrained revision: {improved}; old revision: {revision_quality(namespace, 'truth', first)}")
    assert improved["value"] > revision_quality(namespace, "truth", first)["value"]
    assert len(training_jobs(namespace, "performance")) == 1


def test_feedback_refuses_bad_bodies_through_the_service(namespace: Namespace, s3: S3, operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=61))
    serving = {"replicas": 1, "predictionLog": {"flushInterval": "2s"}}
    namespace.apply(model_manifest("fb", uri, serving=serving))
    wait_phase(namespace, "fb", "Serving")
    url = service_url(namespace, "fb").replace(":predict", "").replace("/v1/", "/v2/") + "/feedback"
    code, body = post(url, {"label": 1})
    assert code == 400 and "'id'" in (body if isinstance(body, dict) else json.loads(body))["error"]
    code, body = post(url, {"id": "x"})
    assert code == 400 and "label" in (body if isinstance(body, dict) else json.loads(body))["error"]
