"""The PrometheusRule of a DriftMonitor: an alert on the operator's exported drift score.

The alert carries ``namespace`` and ``model`` labels, which is how the
operator's Alertmanager webhook maps it back to the DriftMonitor
(``modelship.logic.retrain``). When Prometheus scrapes the operator, the
scrape must keep the series' own ``namespace`` label (``honorLabels: true``
in the ServiceMonitor the chart makes), else it is overwritten by the
operator pod's namespace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelship.builders.common import MODEL_LABEL, MONITOR_LABEL, Obj, metadata

ALERT = "ModelshipDataDrift"
DEFAULT_RUNBOOK = "https://github.com/modelship/modelship/blob/main/docs/runbooks/drift.md"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def drift_expr(namespace: str, model: str, monitor: str, threshold: float) -> str:
    """The monitor's own scores against its own threshold (two monitors on one Model, say with
    different methods or thresholds, each fire on what they measured)."""
    selector = f'namespace="{_escape(namespace)}",model="{_escape(model)}",monitor="{_escape(monitor)}"'
    return f"max by (namespace, model, monitor) (modelship_drift_score{{{selector}}}) >= {threshold:g}"


def build_prometheus_rule(
    monitor: str,
    namespace: str,
    model: str,
    *,
    threshold: float,
    for_: str,
    owner: Mapping[str, Any] | None,
    runbook_url: str = DEFAULT_RUNBOOK,
    severity: str = "warning",
) -> Obj:
    """monitoring.coreos.com/v1 PrometheusRule ``<monitor>-drift`` with one alerting rule."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(f"{monitor}-drift", namespace, {MODEL_LABEL: model, MONITOR_LABEL: monitor}, owner),
        "spec": {
            "groups": [{
                "name": f"modelship.{namespace}.{monitor}",
                "rules": [{
                    "alert": ALERT,
                    "expr": drift_expr(namespace, model, monitor, threshold),
                    "for": for_,
                    "labels": {
                        "severity": severity,
                        "namespace": namespace,
                        "model": model,
                        "monitor": monitor,
                    },
                    "annotations": {
                        "summary": f"Input drift on model {namespace}/{model}",
                        "description": (
                            f"The highest feature drift score of model {model} in namespace {namespace} "
                            f"is {{{{ $value | printf \"%.3f\" }}}}, at or above the threshold {threshold:g} "
                            f"of DriftMonitor {monitor}. See `kubectl -n {namespace} describe "
                            f"driftmonitor {monitor}` for the features."
                        ),
                        "runbook_url": runbook_url,
                    },
                }],
            }],
        },
    }


# --- Scrape and receiver configuration (docs/prometheus.md) ---------------------
#
# The label convention ``source: prometheus`` queries by (``modelship.logic.prometheus``):
# the pod's namespace as ``namespace`` and its labels ``modelship.io/model`` and
# ``modelship.io/revision`` as ``modelship_io_model`` and ``modelship_io_revision``, the
# names prometheus-operator gives ``podTargetLabels`` and a ``labelmap`` gives a plain job.
# The serving series keep their own ``model`` label (the Model's name).

SERVING_JOB = "modelship-serving"
OPERATOR_JOB = "modelship-operator"
SERVING_PORT_NAME = "http"


def serving_scrape_config(
    *,
    job: str = SERVING_JOB,
    kubeconfig_file: str | None = None,
    namespaces: list[str] | None = None,
    scrape_interval: str | None = None,
) -> Obj:
    """A Prometheus ``scrape_configs`` entry for every serving pod (``kubernetes_sd_configs``, role pod).

    Keeps pods with a ``modelship.io/revision`` label, on their ``http``
    port; ``kubeconfig_file`` for a Prometheus outside the cluster.
    """
    sd: Obj = {"role": "pod"}
    if kubeconfig_file:
        sd["kubeconfig_file"] = kubeconfig_file
    if namespaces:
        sd["namespaces"] = {"names": list(namespaces)}
    config: Obj = {"job_name": job}
    if scrape_interval:
        config["scrape_interval"] = scrape_interval
    config["kubernetes_sd_configs"] = [sd]
    config["relabel_configs"] = [
        {"source_labels": ["__meta_kubernetes_pod_label_modelship_io_revision"], "regex": ".+", "action": "keep"},
        {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": SERVING_PORT_NAME,
         "action": "keep"},
        {"regex": "__meta_kubernetes_pod_label_(modelship_io_model|modelship_io_revision)", "action": "labelmap"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    return config


def operator_scrape_config(targets: list[str], *, job: str = OPERATOR_JOB) -> Obj:
    """The operator's /metrics; ``honor_labels`` keeps the drift series' own ``namespace`` label."""
    return {"job_name": job, "honor_labels": True, "static_configs": [{"targets": list(targets)}]}


def alertmanager_receiver(url: str, *, name: str = "modelship", token_file: str | None = None,
                          token: str | None = None) -> Obj:
    """An Alertmanager receiver posting to the operator's webhook (``.../alerts``), resolves included."""
    webhook: Obj = {"url": url, "send_resolved": True}
    if token_file:
        webhook["http_config"] = {"authorization": {"credentials_file": token_file}}
    elif token:
        webhook["http_config"] = {"authorization": {"credentials": token}}
    return {"name": name, "webhook_configs": [webhook]}
