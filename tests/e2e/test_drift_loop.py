"""The closed loop on a real cluster: live traffic → drift → one retrain → canary → promoted."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from helpers import dataset, model_manifest, post
from test_model_lifecycle import service_url, status, wait_phase

from conftest import S3, WEBHOOK_TOKEN, Namespace, Operator, wait_until
from modelship.demo import data
from modelship.logic.drift import state_value
from modelship.logic.scrape import parse_samples

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

# Shifted traffic → Drift, with the monitor's interval of 5 s: a verdict needs the next
# evaluation after the traffic, so a few intervals at most on a busy machine.
DETECTION_MAX_S = 30


def monitor(name: str, model: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "modelRef": {"name": model}, "method": "psi", "threshold": 0.2, "warningThreshold": 0.1,
        "window": {"duration": "1m", "minSamples": 200}, "interval": "5s",
        "action": {"retrain": True, "cooldown": "10m", "maxPerDay": 5},
    }
    body.update(spec)
    return {"apiVersion": "modelship.io/v1alpha1", "kind": "DriftMonitor", "metadata": {"name": name}, "spec": body}


def send(url: str, rows: list[dict[str, object]], batch: int = 25) -> None:
    for i in range(0, len(rows), batch):
        code, body = post(url, {"instances": rows[i:i + batch]})
        assert code == 200, body


def monitor_status(ns: Namespace, name: str) -> dict[str, Any]:
    return dict((ns.get("driftmonitor", name) or {}).get("status") or {})


def gauges_mirror_status(ns: Namespace, operator: Operator, name: str) -> bool:
    """The operator's drift series of monitor ``name`` are its status: a score per feature of
    ``status.scores`` and the state, none of either before a verdict on the current reference."""
    st = monitor_status(ns, name)
    want = {("modelship_drift_score", s["feature"]): s["score"] for s in st.get("scores") or []}
    if st.get("state"):
        want[("modelship_drift_state", "")] = state_value(st["state"])
    got = {(x.name, x.labels.get("feature", "")): x.value for x in parse_samples(operator.metrics())
           if x.name in ("modelship_drift_score", "modelship_drift_state")
           and x.labels.get("namespace") == ns.name and x.labels.get("monitor") == name}
    return got == want


def test_shifted_traffic_retrains_once_and_the_new_model_is_promoted(
        namespace: Namespace, s3: S3, operator: Operator) -> None:
    key = f"datasets/{namespace.name}/loans.csv"
    uri = s3.put(key, dataset(seed=21))
    model = model_manifest("loop", uri, retrain={"onDrift": True, "cooldown": "10m", "maxPerDay": 5})
    namespace.apply(model)
    first = wait_phase(namespace, "loop", "Serving")["stableRevision"]
    namespace.apply(monitor("loop", "loop"))
    url = service_url(namespace, "loop")

    # Normal traffic: Stable, and no retrain.
    send(url, data.instances(400, seed=31))
    st = wait_until(lambda: (m := monitor_status(namespace, "loop")).get("state") and m, 60, "a first verdict")
    assert st["state"] == "Stable", st
    assert [t["metadata"]["name"] for t in namespace.list("trainingjob")] == ["loop-1"]

    # The world changes: the dataset URI gets the newest data, and live traffic shifts.
    s3.put(key, dataset(seed=22, shift=data.DEMO_SHIFT))
    started = time.monotonic()
    send(url, data.instances(1500, seed=32, shift=data.DEMO_SHIFT))
    drifted = wait_until(lambda: (m := monitor_status(namespace, "loop")).get("state") == "Drift" and m, 120,
                         "the Drift state")
    delay = time.monotonic() - started
    print(f"detection delay: {delay:.1f} s (bound {DETECTION_MAX_S} s); top: {drifted['scores'][:3]}")
    assert delay <= DETECTION_MAX_S
    assert drifted["lastTriggeredTrainingJob"] == "loop-2"
    assert {s["feature"] for s in drifted["scores"] if s["state"] == "Drift"} >= {"income", "region"}

    # Repeated evaluations do not create a second TrainingJob.
    time.sleep(15)
    names = sorted(t["metadata"]["name"] for t in namespace.list("trainingjob"))
    assert names == ["loop-1", "loop-2"], names
    tj = namespace.get("trainingjob", "loop-2")
    assert tj is not None and tj["spec"]["trigger"] == "drift"

    # The new version goes through the canary (traffic keeps flowing) and is promoted.
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        s = status(namespace, "loop")
        if s.get("stableRevision") not in (None, first) and not s.get("canaryRevision"):
            break
        send(url, data.instances(60, seed=int(time.monotonic()), shift=data.DEMO_SHIFT))
        time.sleep(1)
    s = status(namespace, "loop")
    assert s.get("stableRevision") not in (None, first), s
    assert s["history"][0]["trigger"] == "drift" and s["history"][0]["outcome"] == "Promoted"

    # After promotion the monitor compares against the new model's reference, and its gauges say
    # what its status says: the old model's drifted scores are not exported for the new model.
    wait_until(lambda: monitor_status(namespace, "loop").get("referenceRevision") == s["stableRevision"], 60,
               "the monitor to follow the new revision")
    wait_until(lambda: gauges_mirror_status(namespace, operator, "loop"), 30, "the gauges to mirror the status")


def alert(namespace: str, model: str, status_: str = "firing", fingerprint: str = "f00d") -> dict[str, Any]:
    return {
        "version": "4", "groupKey": f"{{}}:{{model=\"{model}\"}}", "status": status_, "receiver": "modelship",
        "groupLabels": {"model": model}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
        "truncatedAlerts": 0,
        "alerts": [{"status": status_, "labels": {"alertname": "ModelDrift", "namespace": namespace, "model": model},
                    "annotations": {"summary": "drift"}, "startsAt": "2026-11-23T12:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom", "fingerprint": fingerprint}],
    }


def webhook(operator: Operator, payload: Any, token: str = WEBHOOK_TOKEN) -> tuple[int, Any]:
    request = urllib.request.Request(operator.webhook_url, data=json.dumps(payload).encode(),
                                     method="POST", headers={"Content-Type": "application/json",
                                                             "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_require_alert_waits_for_the_alert_and_repeats_retrain_once(
        namespace: Namespace, s3: S3, operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=41))
    namespace.apply(model_manifest("alerted", uri))
    wait_phase(namespace, "alerted", "Serving")
    namespace.apply(monitor("alerted", "alerted", action={"retrain": True, "cooldown": "10m", "requireAlert": True}))
    url = service_url(namespace, "alerted")
    send(url, data.instances(400, seed=42))
    wait_until(lambda: monitor_status(namespace, "alerted").get("state"), 60, "a first verdict")
    assert [t["metadata"]["name"] for t in namespace.list("trainingjob")] == ["alerted-1"]

    assert webhook(operator, alert(namespace.name, "alerted"), token="wrong")[0] == 401
    assert webhook(operator, {"version": "3"})[0] == 400
    s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=43))
    for _ in range(3):  # Alertmanager repeats: one retrain
        code, body = webhook(operator, alert(namespace.name, "alerted"))
        assert code == 200, body
    wait_until(lambda: len(namespace.list("trainingjob")) == 2, 60, "the alert-triggered TrainingJob")
    time.sleep(12)
    assert sorted(t["metadata"]["name"] for t in namespace.list("trainingjob")) == ["alerted-1", "alerted-2"]
