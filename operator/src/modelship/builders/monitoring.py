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


def drift_expr(namespace: str, model: str, threshold: float) -> str:
    selector = f'namespace="{_escape(namespace)}",model="{_escape(model)}"'
    return f"max by (namespace, model) (modelship_drift_score{{{selector}}}) >= {threshold:g}"


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
                    "expr": drift_expr(namespace, model, threshold),
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
