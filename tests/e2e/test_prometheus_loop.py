"""The loop through a real Prometheus and Alertmanager: shifted traffic → the generated rule
fires → Alertmanager posts to the operator → one retrain → canary → promoted.

Prometheus (v3, the local cluster's build target) discovers the serving pods with
kubernetes_sd and scrapes them and the operator; its rules are what the operator
would put in the DriftMonitors' PrometheusRules. Both monitors require the alert;
one reads the pods itself, the other (``source: prometheus``) asks Prometheus.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import condition, dataset, model_manifest
from monitoring import Monitoring, monitoring
from test_drift_loop import gauges_mirror_status, monitor, monitor_status, send
from test_model_lifecycle import service_url, status, wait_phase

from conftest import S3, WEBHOOK_TOKEN, Namespace, Operator, wait_until
from modelship.api.driftmonitor import DriftMonitorSpec
from modelship.demo import data
from modelship.demo.stack import free_port
from modelship.localcluster import build
from modelship.logic.scrape import parse_samples
from modelship.plans.driftmonitor import prometheus_rule

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

# Seconds after the shifted traffic (interval 5 s, Prometheus scrapes every few seconds, the
# rule fires after its `for`, Alertmanager groups): bounds with room for a busy machine.
DRIFT_MAX_S = 30
ALERT_MAX_S = 60
RETRAIN_MAX_S = 90
PROMOTED_MAX_S = 240
MODEL = "watched"
ACTION = {"retrain": True, "cooldown": "10m", "maxPerDay": 5, "requireAlert": True}


@pytest.fixture
def mon(local_cluster: Any, namespace: Namespace, operator: Operator, tmp_path: Path) -> Iterator[Monitoring]:
    prometheus = build.ensure_target("prometheus")  # ~2-3 min the first time, cached after
    # Alertmanager posts through the chart's webhook Service (it selects the leader's pod).
    with monitoring(prometheus, Path(local_cluster.kubeconfig), namespace.name, operator.metrics_target,
                    operator.webhook_service_url, WEBHOOK_TOKEN, tmp_path / "monitoring",
                    prometheus_host=local_cluster.node_ip) as m:
        yield m


def rule_groups(ns: Namespace, monitors: list[str]) -> list[dict[str, Any]]:
    """The operator's PrometheusRule for each monitor; equal to the object when the CRD is installed."""
    groups: list[dict[str, Any]] = []
    for name in monitors:
        body = ns.get("driftmonitor", name)
        assert body is not None
        rule = prometheus_rule(body, DriftMonitorSpec.model_validate(body["spec"]))
        created = ns.get("prometheusrule", rule["metadata"]["name"])  # None without monitoring.coreos.com
        if created is not None:
            assert created["spec"] == rule["spec"]
        groups += rule["spec"]["groups"]
    return groups


def training_jobs(ns: Namespace) -> list[str]:
    return sorted(t["metadata"]["name"] for t in ns.list("trainingjob"))


def test_the_prometheus_rule_fires_alertmanager_posts_and_one_retrain_is_promoted(
        namespace: Namespace, s3: S3, operator: Operator, mon: Monitoring) -> None:
    t0 = time.monotonic()
    key = f"datasets/{namespace.name}/loans.csv"
    namespace.apply(model_manifest(MODEL, s3.put(key, dataset(seed=51)),
                                   retrain={"onDrift": True, "cooldown": "10m", "maxPerDay": 5}))
    first = wait_phase(namespace, MODEL, "Serving")["stableRevision"]
    serving_at = time.monotonic() - t0

    # A prometheus source that is down is a condition, not a crash; then the real one.
    down = {"type": "prometheus", "prometheusUrl": f"http://127.0.0.1:{free_port()}"}
    namespace.apply(monitor("pods", MODEL, action=ACTION))
    namespace.apply(monitor("prom", MODEL, action=ACTION, source=down))
    ready = wait_until(lambda: (c := condition(namespace.get("driftmonitor", "prom"), "Ready")).get("reason")
                       == "QueryFailed" and c, 60, "the QueryFailed condition")
    assert ready["status"] == "False" and "cannot reach Prometheus" in ready["message"], ready
    namespace.apply(monitor("prom", MODEL, action=ACTION, source={**down, "prometheusUrl": mon.prometheus}))
    mon.load_rules(rule_groups(namespace, ["pods", "prom"]))

    # Normal traffic: a Stable verdict from both sources; Prometheus scrapes the pods and the operator.
    # Every serving pod scraped once before the traffic: increase() over the window cannot see
    # requests counted before a series' first sample, and all 400 rows must count for the prom
    # monitor's minSamples of 200 (with one pod of two scraped, no verdict came).
    pods = {p["status"].get("podIP") for p in namespace.list("pod", f"modelship.io/revision={first}")}
    assert len(pods) >= 2 and None not in pods, pods

    def scraped() -> set[str]:
        return {urllib.parse.urlsplit(t["scrapeUrl"]).hostname or "" for t in mon.targets()
                if t["labels"].get("job") == "modelship-serving" and t["health"] == "up"}

    wait_until(lambda: pods <= scraped(), 60, "Prometheus scraping every serving pod")
    url = service_url(namespace, MODEL)
    send(url, data.instances(400, seed=52))
    for name in ("pods", "prom"):
        st = wait_until(lambda n=name: (m := monitor_status(namespace, n)).get("state") and m, 60,
                        f"a first verdict of {name}")
        # No drift. 400 rows leave room for noise: a PSI of 0.11 (Warning, at 0.1) was seen once
        # from Prometheus, whose increase() extrapolates each pod's counts to the window's edges.
        assert st["state"] in ("Stable", "Warning") and st["maxScore"] < 0.2, st
    jobs = {t["labels"]["job"]: t for t in mon.targets() if t["health"] == "up"}
    assert {"modelship-serving", "modelship-operator"} <= set(jobs), mon.targets()
    assert jobs["modelship-serving"]["labels"]["modelship_io_revision"] == first
    assert training_jobs(namespace) == [f"{MODEL}-1"]

    # The world changes; both monitors see Drift, wait for the alert, and the alert brings one retrain.
    s3.put(key, dataset(seed=53, shift=data.DEMO_SHIFT))
    shifted = time.monotonic()
    send(url, data.instances(1500, seed=54, shift=data.DEMO_SHIFT))
    seen: dict[str, float] = {}
    deadline = shifted + 150
    while time.monotonic() < deadline and "job" not in seen:
        now = time.monotonic() - shifted
        for name in ("pods", "prom"):
            st = monitor_status(namespace, name)
            if st.get("state") == "Drift":
                seen.setdefault(f"drift-{name}", now)
                if "waiting for the Alertmanager alert" in condition({"status": st}, "Drifted").get("message", ""):
                    seen.setdefault("awaiting", now)
        if any(a["labels"].get("model") == MODEL for a in mon.firing_alerts()):
            seen.setdefault("alertmanager", now)
        if len(training_jobs(namespace)) > 1:
            seen["job"] = now
        time.sleep(0.5)
    print("seconds after the shifted traffic:", {k: round(v, 1) for k, v in seen.items()})
    assert {"drift-pods", "drift-prom", "awaiting", "alertmanager", "job"} <= set(seen), seen
    assert max(seen["drift-pods"], seen["drift-prom"]) <= DRIFT_MAX_S, seen
    assert seen["alertmanager"] <= ALERT_MAX_S and seen["job"] <= RETRAIN_MAX_S, seen
    assert seen["awaiting"] < seen["job"], seen
    assert training_jobs(namespace) == [f"{MODEL}-1", f"{MODEL}-2"]
    tj = namespace.get("trainingjob", f"{MODEL}-2")
    assert tj is not None and tj["spec"]["trigger"] == "drift"
    received = sum(x.value for x in parse_samples(operator.metrics()) if x.name == "modelship_alerts_total"
                   and x.labels.get("status") == "firing" and x.labels.get("outcome") == "new")
    assert received >= 1, "the operator counted no new firing alert (a post without the token is refused)"
    prom = monitor_status(namespace, "prom")
    assert {s["feature"] for s in prom["scores"] if s["state"] == "Drift"} >= {"income", "region"}, prom

    # The new version goes through the canary and is promoted; Alertmanager's repeats add nothing.
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        s = status(namespace, MODEL)
        if s.get("stableRevision") not in (None, first) and not s.get("canaryRevision"):
            break
        send(url, data.instances(60, seed=int(time.monotonic()), shift=data.DEMO_SHIFT))
        time.sleep(1)
    promoted = time.monotonic() - shifted
    assert promoted <= PROMOTED_MAX_S, f"promoted {promoted:.0f} s after the shifted traffic"
    s = status(namespace, MODEL)
    assert s.get("stableRevision") not in (None, first), s
    assert s["history"][0]["trigger"] == "drift" and s["history"][0]["outcome"] == "Promoted"
    assert training_jobs(namespace) == [f"{MODEL}-1", f"{MODEL}-2"]
    wait_until(lambda: all(monitor_status(namespace, n).get("referenceRevision") == s["stableRevision"]
                           for n in ("pods", "prom")), 60, "the monitors to follow the new revision")

    def counted(status_: str) -> float:
        return sum(x.value for x in parse_samples(operator.metrics()) if x.name == "modelship_alerts_total"
                   and x.labels.get("status") == status_ and x.labels.get("outcome") == "new")

    # On the new reference the old model's scores are gone (until a verdict on the new one, whose
    # scores are low): the alert resolves, and Alertmanager says so.
    for name in ("pods", "prom"):
        wait_until(lambda n=name: gauges_mirror_status(namespace, operator, n), 30, f"{name}'s gauges to mirror its status")
    wait_until(lambda: counted("resolved") >= 1, 90, "the resolved alert")
    print(f"serving after {serving_at:.0f} s; drift → promoted {promoted:.0f} s; "
          f"test {time.monotonic() - t0:.0f} s")
