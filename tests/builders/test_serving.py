"""Serving Deployment, Services, HPA, HTTPRoute, PrometheusRule."""

from __future__ import annotations

from typing import Any

import pytest

from builders.conftest import Validate
from modelship.api.model import Autoscaling, DisruptionBudget, GatewayRef, Serving
from modelship.builders.common import PodEnvironment
from modelship.builders.monitoring import ALERT, build_prometheus_rule, drift_expr
from modelship.builders.routing import (
    build_hpa,
    build_httproute,
    build_revision_service,
    build_service,
    service_url,
)
from modelship.builders.serving import Drain, build_pdb, build_serving_deployment

SHA = "ab" * 32


def _deployment(owner: dict[str, Any], **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "model_uri": "s3://a/ml/iris-3", "sha256": SHA, "replicas": 2,
        "serving": Serving(resources={"limits": {"cpu": "1", "memory": "512Mi"}}), "image": "reg/serving:1",
        "owner": owner,
    }
    args.update(kw)
    return build_serving_deployment("iris", "ml", "iris-0123456789", **args)


def test_deployment(validate: Validate, owner: dict[str, Any]) -> None:
    d = _deployment(owner, environment=PodEnvironment(artifact_pvc="art"), extra_env={"MODELSHIP_FAULT_ERROR_RATIO": "1"})
    validate(d)
    pod = d["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["MODELSHIP_MODEL_URI"] == "s3://a/ml/iris-3"
    assert env["MODELSHIP_EXPECTED_SHA256"] == SHA
    assert env["MODELSHIP_MODEL_NAME"] == "iris"
    assert env["MODELSHIP_FAULT_ERROR_RATIO"] == "1"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert {"name": "artifacts", "mountPath": "/artifacts", "readOnly": True} in c["volumeMounts"]
    labels = d["spec"]["template"]["metadata"]["labels"]
    assert labels["modelship.io/model"] == "iris" and labels["modelship.io/revision"] == "iris-0123456789"
    assert d["spec"]["selector"]["matchLabels"] == {"modelship.io/model": "iris", "modelship.io/revision": "iris-0123456789"}
    ann = d["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/path"] == "/metrics"
    assert d["spec"]["replicas"] == 2
    assert c["resources"] == {"limits": {"cpu": "1", "memory": "512Mi"}}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8080, "grpc": 8081}
    assert env["MODELSHIP_PORT"] == "8080" and env["MODELSHIP_GRPC_PORT"] == "8081"


def test_grace_period_covers_prestop_drain_and_shutdown(validate: Validate, owner: dict[str, Any]) -> None:
    drain = Drain(pre_stop_seconds=5, drain_seconds=3, shutdown_timeout_seconds=10)
    d = _deployment(owner, drain=drain, sha256=None)
    validate(d)
    pod = d["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 20 == drain.grace_period
    c = pod["containers"][0]
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["MODELSHIP_DRAIN_SECONDS"] == "3" and env["MODELSHIP_SHUTDOWN_TIMEOUT_SECONDS"] == "10"
    assert "MODELSHIP_EXPECTED_SHA256" not in env


def test_services(validate: Validate, owner: dict[str, Any]) -> None:
    s = build_service("iris", "ml", owner)
    validate(s)
    assert s["spec"]["selector"] == {"modelship.io/model": "iris"}
    ports = {p["name"]: p for p in s["spec"]["ports"]}
    assert (ports["http"]["port"], ports["http"]["targetPort"]) == (80, "http")
    assert (ports["grpc"]["port"], ports["grpc"]["targetPort"], ports["grpc"]["appProtocol"]) == (
        8081, "grpc", "kubernetes.io/h2c")
    r = build_revision_service("iris", "ml", "canary", "iris-abc", owner)
    validate(r)
    assert r["metadata"]["name"] == "iris-canary"
    assert r["spec"]["selector"] == {"modelship.io/model": "iris", "modelship.io/revision": "iris-abc"}
    assert service_url("iris", "ml") == "http://iris.ml.svc.cluster.local"


def test_hpa(validate: Validate, owner: dict[str, Any]) -> None:
    h = build_hpa("iris", "ml", "iris-abc", Autoscaling(min_replicas=2, max_replicas=6, target_cpu_utilization=60), owner)
    validate(h)
    assert h["spec"]["scaleTargetRef"]["name"] == "iris-abc"
    assert h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60


@pytest.mark.parametrize(("weight", "has_canary", "weights"), [(10, True, [90, 10]), (0, False, [100]), (100, True, [0, 100])])
def test_httproute(validate: Validate, owner: dict[str, Any], weight: int, has_canary: bool, weights: list[int]) -> None:
    route = build_httproute("iris", "ml", GatewayRef(name="gw", namespace="infra"), weight, owner, has_canary=has_canary)
    backends = route["spec"]["rules"][0]["backendRefs"]
    assert [b["weight"] for b in backends] == weights
    # Written with the API server's defaults, so the object read back compares equal.
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw",
                                            "namespace": "infra"}]
    assert all(b["group"] == "" and b["kind"] == "Service" for b in backends)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    with pytest.raises(ValueError):
        build_httproute("iris", "ml", GatewayRef(name="gw"), 101, owner)


def test_prometheus_rule(validate: Validate, owner: dict[str, Any]) -> None:
    rule = build_prometheus_rule("iris-drift", "ml", "iris", threshold=0.2, for_="2m", owner=owner)
    r = rule["spec"]["groups"][0]["rules"][0]
    assert r["alert"] == ALERT
    assert r["expr"] == 'max by (namespace, model) (modelship_drift_score{namespace="ml",model="iris"}) >= 0.2'
    assert r["labels"]["namespace"] == "ml" and r["labels"]["model"] == "iris"
    assert {"summary", "description", "runbook_url"} <= set(r["annotations"])
    assert "{{ $value" in r["annotations"]["description"]
    assert rule["metadata"]["ownerReferences"][0]["kind"] == "Model"
    assert drift_expr('a"b', "m", 0.1) == 'max by (namespace, model) (modelship_drift_score{namespace="a\\"b",model="m"}) >= 0.1'


REVISION_PODS = {"matchLabels": {"modelship.io/model": "iris", "modelship.io/revision": "iris-0123456789"}}
DEFAULT_SPREAD = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                   "labelSelector": REVISION_PODS}]


@pytest.mark.parametrize(("constraints", "expected"), [
    # unset: the revision's pods spread over nodes, preferred (a single node still schedules them)
    (None, DEFAULT_SPREAD),
    # [] turns spreading off: no field at all
    ([], None),
    # a zone spread, required; the revision's pods are counted when no selector is given
    ([{"topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule", "minDomains": 2}],
     [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
       "minDomains": 2, "labelSelector": REVISION_PODS}]),
    # a selector of the user's own is kept as written
    ([{"topologyKey": "kubernetes.io/hostname", "maxSkew": 2, "labelSelector": {"matchLabels": {"team": "a"}},
       "matchLabelKeys": ["pod-template-hash"], "nodeTaintsPolicy": "Honor"}],
     [{"maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
       "labelSelector": {"matchLabels": {"team": "a"}}, "matchLabelKeys": ["pod-template-hash"],
       "nodeTaintsPolicy": "Honor"}]),
])
def test_topology_spread(validate: Validate, owner: dict[str, Any], constraints: list[dict[str, Any]] | None,
                         expected: list[dict[str, Any]] | None) -> None:
    serving = Serving.model_validate({"topologySpreadConstraints": constraints})
    d = _deployment(owner, serving=serving)
    validate(d)
    assert d["spec"]["template"]["spec"].get("topologySpreadConstraints") == expected


@pytest.mark.parametrize(("budget", "expected"), [
    ({}, {"maxUnavailable": 1}),
    ({"maxUnavailable": 2}, {"maxUnavailable": 2}),
    ({"maxUnavailable": "25%"}, {"maxUnavailable": "25%"}),
    ({"minAvailable": 1}, {"minAvailable": 1}),
    ({"minAvailable": "50%"}, {"minAvailable": "50%"}),
    ({"minAvailable": 0}, {"minAvailable": 0}),
])
def test_pdb(validate: Validate, owner: dict[str, Any], budget: dict[str, Any], expected: dict[str, Any]) -> None:
    pdb = build_pdb("iris", "ml", "iris-0123456789", DisruptionBudget.model_validate(budget), owner)
    validate(pdb)
    assert pdb["metadata"]["name"] == "iris" and pdb["metadata"]["namespace"] == "ml"
    assert pdb["metadata"]["ownerReferences"][0]["kind"] == "Model"
    assert pdb["spec"] == {"selector": REVISION_PODS, "unhealthyPodEvictionPolicy": "AlwaysAllow", **expected}


@pytest.mark.parametrize("budget", [
    {"minAvailable": 1, "maxUnavailable": 1},  # one or the other
    {"maxUnavailable": -1},
    {"minAvailable": "half"},
    {"maxUnavailable": "50"},
])
def test_pdb_refuses_bad_budgets(budget: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DisruptionBudget.model_validate(budget)
