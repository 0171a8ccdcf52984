"""The chart's monitoring objects read metrics that exist: the dashboard's
and the alerts' metric names are the operator's and the server's own, the
alerts pass Prometheus' rule checker and fire when they should."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from modelship.builders.serving import PORT as SERVING_PORT
from modelship.builders.serving import serving_labels
from modelship.chart import helm
from modelship.metrics import REGISTRY as OPERATOR_REGISTRY
from modelship_runtime.serving.metrics import Metrics

DASHBOARD = helm.CHART / "files" / "dashboards" / "modelship.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "gauge": ("",), "summary": ("", "_count", "_sum", "_created")}


def series_names(registry: CollectorRegistry) -> set[str]:
    return {m.name + s for m in registry.collect() for s in SUFFIXES[m.type]}


KNOWN = series_names(OPERATOR_REGISTRY) | series_names(Metrics("m").registry) | {"up"}


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b(modelship_[a-z_]+)\b", expr))
    names |= {n for n in re.findall(r"__name__=~\"([^\"]+)\"", expr) for n in n.split("|")}
    return names | ({"up"} if re.search(r"\bup\{", expr) else set())


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_exprs() -> list[str]:
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_dashboard_reads_only_metrics_that_exist() -> None:
    unknown = {n for e in dashboard_exprs() for n in metric_names(e)} - KNOWN
    assert not unknown, f"the dashboard reads metrics nobody exports: {unknown}"


def test_dashboard_has_the_panels_the_issue_names() -> None:
    exprs = "\n".join(dashboard_exprs())
    for needed in ("modelship_rollouts_total", "modelship_drift_score", "modelship_requests_total",
                   "modelship_request_duration_seconds_bucket"):
        assert needed in exprs
    assert "by (namespace, model, revision" in exprs  # per revision
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard()["uid"] == "modelship"


def test_dashboard_configmap_carries_the_file(renders: dict[str, helm.Render]) -> None:
    cm = renders["prometheus"].one("ConfigMap", "modelship-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["modelship.json"]) == dashboard()


def test_serving_pod_monitor_matches_the_serving_pods(renders: dict[str, helm.Render]) -> None:
    pm = renders["prometheus"].one("PodMonitor")
    labels = serving_labels("m", "m-abc")
    assert pm["spec"]["selector"]["matchLabels"].items() <= labels.items()
    endpoint = pm["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == "http" and SERVING_PORT == 8080
    assert {"sourceLabels": ["__meta_kubernetes_pod_label_modelship_io_revision"], "targetLabel": "revision"} \
        in endpoint["relabelings"]
    assert pm["spec"]["namespaceSelector"] == {"any": True}


def test_service_monitor_selects_the_operator_service(renders: dict[str, helm.Render]) -> None:
    r = renders["prometheus"]
    sm, svc = r.one("ServiceMonitor"), r.one("Service", "modelship")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["endpoints"][0]["honorLabels"] is True
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def rule_groups(render: helm.Render) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = render.one("PrometheusRule")["spec"]["groups"]
    return groups


def test_alerts_read_only_metrics_that_exist(renders: dict[str, helm.Render]) -> None:
    rules = [r for g in rule_groups(renders["prometheus"]) for r in g["rules"]]
    assert [r["alert"] for r in rules] == ["ModelshipOperatorDown", "ModelshipReconcileErrors", "ModelshipRolledBack"]
    unknown = {n for r in rules for n in metric_names(r["expr"])} - KNOWN
    assert not unknown
    assert all(r["labels"]["team"] == "ml-platform" for r in rules)


def test_alerts_can_be_disabled(helm_bin: Path) -> None:
    r = helm.template(sets=["metrics.prometheusRule.enabled=true",
                            "metrics.prometheusRule.disabled={ModelshipRolledBack}"])
    assert [x["alert"] for g in rule_groups(r) for x in g["rules"]] == ["ModelshipOperatorDown",
                                                                       "ModelshipReconcileErrors"]


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if not path:
        pytest.skip("promtool is missing: `make apt-tools` installs Debian's prometheus package")
    return path


def test_alerts_pass_promtool_and_fire(renders: dict[str, helm.Render], promtool: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(renders["prometheus"])}))
    check = subprocess.run([promtool, "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    job, ns = "modelship", helm.NAMESPACE
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": f'up{{job="{job}",namespace="{ns}",pod="a"}}', "values": "1 1 0x10"},
                {"series": f'modelship_rollouts_total{{job="{job}",namespace="shop",model="loans",'
                           'event="rolled_back"}', "values": "0 0 0 1 1 1 1 1 1 1 1 1"},
            ],
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": "ModelshipOperatorDown", "exp_alerts": []},
                {"eval_time": "9m", "alertname": "ModelshipOperatorDown", "exp_alerts": [{
                    "exp_labels": {"severity": "critical", "team": "ml-platform"},
                    "exp_annotations": {"summary": "The Modelship operator is down", "description": (
                        f"No operator pod of {ns}/{job} has been scraped up for 5 minutes: Models are not "
                        "reconciled, canaries do not advance and drift is not checked.")}}]},
                {"eval_time": "2m", "alertname": "ModelshipRolledBack", "exp_alerts": []},
                {"eval_time": "4m", "alertname": "ModelshipRolledBack", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "team": "ml-platform", "job": job,
                                   "namespace": "shop", "model": "loans", "event": "rolled_back"},
                    "exp_annotations": {"summary": "Model shop/loans rolled back a canary", "description": (
                        "The canary analysis of shop/loans failed and the stable revision serves again; "
                        "`kubectl describe model` shows why.")}}]},
            ],
        }],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    res = subprocess.run([promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
