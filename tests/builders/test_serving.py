"""Serving Deployment, Services, HPA, HTTPRoute, PrometheusRule."""

from __future__ import annotations

import re
from typing import Any

import pytest

from builders.conftest import Validate
from modelship.api.model import Autoscaling, GatewayRef, Serving
from modelship.builders.common import PodEnvironment
from modelship.builders.monitoring import ALERT, build_prometheus_rule, drift_expr
from modelship.builders.routing import (
    build_hpa,
    build_httproute,
    build_revision_service,
    build_service,
    route_paths,
    service_url,
)
from modelship.builders.serving import (
    Drain,
    build_pod_template,
    build_serving_deployment,
    revision_name,
)

SHA = "ab" * 32


def _template(**kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "model_uri": "s3://a/ml/iris-3", "sha256": SHA,
        "serving": Serving(resources={"limits": {"cpu": "1", "memory": "512Mi"}}), "image": "reg/serving:1",
    }
    args.update(kw)
    return build_pod_template("iris", **args)


def _deployment(owner: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return build_serving_deployment("iris", "ml", "iris-0123456789", _template(**kw), replicas=2, owner=owner)


def test_a_revision_is_named_by_the_hash_of_its_pod_template() -> None:
    name = revision_name("iris", _template())
    assert re.fullmatch(r"iris-[0-9a-f]{10}", name)
    assert name == revision_name("iris", _template())  # deterministic
    assert name != revision_name("iris", _template(image="reg/serving:2"))
    assert name != revision_name("iris", _template(sha256="cd" * 32))
    assert name != revision_name("iris", _template(extra_env={"MODELSHIP_FAULT_ERROR_RATIO": "1"}))
    assert name != revision_name("iris", _template(environment=PodEnvironment(s3_endpoint_url="http://s3")))
    # The Deployment adds the revision label to the template it was named by, and nothing else.
    d = build_serving_deployment("iris", "ml", name, _template(), replicas=3, owner=None)
    labels = d["spec"]["template"]["metadata"]["labels"]
    assert labels.pop("modelship.io/revision") == name
    assert d["spec"]["template"] == _template()


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


def _takes(route: dict[str, Any], path: str) -> bool:
    """Whether a Gateway sends ``path`` to the route, by the Gateway API's rules: Exact is the
    whole path; PathPrefix matches whole path elements (``/a/b`` takes ``/a/b`` and ``/a/b/c``,
    not ``/a/bc``), a trailing ``/`` of the value ignored."""
    for rule in route["spec"]["rules"]:
        for m in rule["matches"]:
            kind, value = m["path"]["type"], m["path"]["value"]
            if kind == "Exact" and path == value:
                return True
            if kind == "PathPrefix":
                prefix = value.rstrip("/")
                if path == prefix or path.startswith(prefix + "/") or not prefix:
                    return True
            assert kind in ("Exact", "PathPrefix")
    return False


# Every path the server answers (serving/server.py's router), and whether the Gateway takes it.
ROUTED = [
    ("/v1/models/iris", True),
    ("/v1/models/iris:predict", True),
    ("/v2/models/iris", True),
    ("/v2/models/iris/ready", True),
    ("/v2/models/iris/infer", True),
    ("/v2/models/iris/versions/3", True),
    ("/v2/models/iris/versions/3/ready", True),
    ("/v2/models/iris/versions/3/infer", True),
    ("/v2/models/iris/artifact", False),  # training metadata: dataset URI, leaderboard
    ("/v2/models/iris/feedback", False),  # only with a token (below)
    ("/metrics", False),
    ("/openapi.json", False),
    ("/v2", False),
    ("/v2/health/live", False),
    ("/v2/health/ready", False),
    ("/v1/models", False),
    # Another Model's paths, and names that only start like this one's.
    ("/v1/models/iris2:predict", False),
    ("/v2/models/iris2/infer", False),
    ("/v2/models/iris/versionsx/3/infer", False),
    ("/", False),
]


@pytest.mark.parametrize(("path", "routed"), ROUTED)
def test_httproute_publishes_only_the_models_public_paths(owner: dict[str, Any], path: str, routed: bool) -> None:
    route = build_httproute("iris", "ml", GatewayRef(name="gw"), 0, owner, has_canary=False)
    assert _takes(route, path) is routed


@pytest.mark.parametrize(("feedback", "routed"), [(False, False), (True, True)])
def test_httproute_takes_feedback_only_when_asked(owner: dict[str, Any], feedback: bool, routed: bool) -> None:
    route = build_httproute("iris", "ml", GatewayRef(name="gw"), 0, owner, has_canary=False, feedback=feedback)
    assert _takes(route, "/v2/models/iris/feedback") is routed
    assert not _takes(route, "/v2/models/iris/artifact")


# The HTTPRoute CRD's (standard channel, v1.6) checks on a path value of type Exact or PathPrefix.
PATH_VALUE = re.compile(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$")


@pytest.mark.parametrize("name", ["iris", "a", "loans-v2.eu", "x" * 63])
def test_httproute_stays_within_the_gateway_api_limits(owner: dict[str, Any], name: str) -> None:
    route = build_httproute(name, "ml", GatewayRef(name="gw"), 30, owner, mirror_percent=50, feedback=True)
    rules = route["spec"]["rules"]
    assert len(rules) <= 16 and all(len(r["matches"]) <= 64 for r in rules)
    assert sum(len(r["matches"]) for r in rules) <= 128
    for r in rules:
        for m in r["matches"]:
            value = m["path"]["value"]
            assert PATH_VALUE.match(value) and value.startswith("/") and len(value) <= 1024
            assert not any(bad in value for bad in ("//", "/./", "/../", "%2f", "%2F", "#"))
        # One split: every rule sends to the same backends by the same weights.
        assert r["backendRefs"] == rules[0]["backendRefs"]


def test_httproute_mirrors_inference_only(owner: dict[str, Any]) -> None:
    route = build_httproute("iris", "ml", GatewayRef(name="gw"), 0, owner, has_canary=False, mirror_percent=25)
    inference, meta = route_paths("iris", feedback=False)
    mirrored = [r for r in route["spec"]["rules"] if r.get("filters")]
    assert [r["matches"] for r in mirrored] == [inference]
    assert mirrored[0]["filters"][0]["requestMirror"]["percent"] == 25
    assert [r["matches"] for r in route["spec"]["rules"] if not r.get("filters")] == [meta]


def test_prometheus_rule(validate: Validate, owner: dict[str, Any]) -> None:
    rule = build_prometheus_rule("iris-drift", "ml", "iris", threshold=0.2, for_="2m", owner=owner)
    r = rule["spec"]["groups"][0]["rules"][0]
    assert r["alert"] == ALERT
    assert r["expr"] == ('max by (namespace, model, monitor) '
                         '(modelship_drift_score{namespace="ml",model="iris",monitor="iris-drift"}) >= 0.2')
    assert r["labels"]["namespace"] == "ml" and r["labels"]["model"] == "iris"
    assert {"summary", "description", "runbook_url"} <= set(r["annotations"])
    assert "{{ $value" in r["annotations"]["description"]
    assert rule["metadata"]["ownerReferences"][0]["kind"] == "Model"
    assert drift_expr('a"b', "m", "d\\", 0.1) == ('max by (namespace, model, monitor) '
                                              '(modelship_drift_score{namespace="a\\"b",model="m",monitor="d\\\\"}) >= 0.1')
