"""A serving revision's Deployment and PodDisruptionBudget, and the timing that makes its pods stop
without failed requests.

Placement: a revision's pods spread over nodes by default (a topology spread
on ``kubernetes.io/hostname``, maxSkew 1, ScheduleAnyway: preferred, so a
single-node cluster still schedules them), as users of KServe and Argo
Rollouts expect from replicas that should survive a node; ``serving.
topologySpreadConstraints`` replaces it. ``build_pdb`` keeps voluntary
evictions (a drain) from taking the stable revision below its budget.

Shutdown of a serving pod: the kubelet runs the preStop sleep while
endpoints controllers and kube-proxy drop the pod; then SIGTERM makes the
server report not-ready, keep accepting for ``drain_seconds``, refuse new
connections and finish in-flight requests within ``shutdown_timeout_seconds``
(``modelship_runtime.serving.server``). ``terminationGracePeriodSeconds`` is
the sum plus a margin, so the kubelet never kills a pod that is still
answering.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelship.api.model import DisruptionBudget, Serving
from modelship.builders.common import (
    MODEL_LABEL,
    REVISION_LABEL,
    TMP_MOUNT,
    Obj,
    PodEnvironment,
    container_security_context,
    metadata,
    pod_security_context,
    resources,
    tmp_volume,
)

PORT = 8080
HOSTNAME_KEY = "kubernetes.io/hostname"
# OIP v2 gRPC (inference.GRPCInferenceService), cleartext HTTP/2.
GRPC_PORT = 8081
SERVING_DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


@dataclass(frozen=True)
class Drain:
    """Stop timing of a serving pod (seconds)."""

    pre_stop_seconds: int = 5
    drain_seconds: float = 3.0
    shutdown_timeout_seconds: float = 10.0
    margin_seconds: int = 2

    @property
    def grace_period(self) -> int:
        return self.pre_stop_seconds + math.ceil(self.drain_seconds + self.shutdown_timeout_seconds) + self.margin_seconds


def serving_labels(model: str, revision: str) -> dict[str, str]:
    return {MODEL_LABEL: model, REVISION_LABEL: revision, "app.kubernetes.io/name": "modelship-serving"}


def revision_selector(model: str, revision: str) -> dict[str, str]:
    return {MODEL_LABEL: model, REVISION_LABEL: revision}


def topology_spread(serving: Serving, selector: Mapping[str, str]) -> list[Obj]:
    """The pods' topologySpreadConstraints: the Model's (a constraint without a labelSelector
    counts the revision's pods), or one spreading the revision over nodes."""
    if serving.topology_spread_constraints is None:
        return [{"maxSkew": 1, "topologyKey": HOSTNAME_KEY, "whenUnsatisfiable": "ScheduleAnyway",
                 "labelSelector": {"matchLabels": dict(selector)}}]
    out = []
    for constraint in serving.topology_spread_constraints:
        wire = constraint.wire()
        wire.setdefault("labelSelector", {"matchLabels": dict(selector)})
        out.append(wire)
    return out


def build_pdb(model: str, namespace: str, revision: str, budget: DisruptionBudget,
              owner: Mapping[str, Any] | None) -> Obj:
    """PodDisruptionBudget ``<model>`` over the pods of ``revision`` (the stable one).

    ``unhealthyPodEvictionPolicy: AlwaysAllow``: pods that are not ready may always be evicted,
    so a broken revision never blocks a node drain. With neither bound set, maxUnavailable is 1.
    """
    spec: Obj = {"selector": {"matchLabels": revision_selector(model, revision)},
                 "unhealthyPodEvictionPolicy": "AlwaysAllow"}
    if budget.min_available is not None:
        spec["minAvailable"] = budget.min_available
    else:
        spec["maxUnavailable"] = budget.max_unavailable if budget.max_unavailable is not None else 1
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(model, namespace, {MODEL_LABEL: model}, owner),
        "spec": spec,
    }


def _probe(path: str, period: int, failures: int) -> Obj:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def build_serving_deployment(
    model: str,
    namespace: str,
    revision: str,
    *,
    model_uri: str,
    sha256: str | None,
    replicas: int,
    serving: Serving,
    image: str,
    owner: Mapping[str, Any] | None,
    environment: PodEnvironment | None = None,
    drain: Drain | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Obj:
    """Deployment ``<revision>`` serving ``model_uri`` (checked against ``sha256``) as ``model``.

    Its pods carry ``modelship.io/model`` (the Service selects on it, so
    stable and canary share traffic by replica count) and
    ``modelship.io/revision``; Prometheus scrape annotations point at
    ``/metrics``. ``extra_env`` is for tests' fault settings
    (``MODELSHIP_FAULT_*``) and similar.
    """
    env = environment or PodEnvironment()
    drain = drain or Drain()
    labels = serving_labels(model, revision)
    variables: list[Obj] = [
        {"name": "MODELSHIP_MODEL_URI", "value": model_uri},
        {"name": "MODELSHIP_MODEL_NAME", "value": model},
        {"name": "MODELSHIP_PORT", "value": str(PORT)},
        {"name": "MODELSHIP_GRPC_PORT", "value": str(GRPC_PORT)},
        {"name": "MODELSHIP_MAX_BATCH_SIZE", "value": str(serving.max_batch_size)},
        {"name": "MODELSHIP_MAX_BATCH_DELAY_MS", "value": f"{serving.max_batch_delay_ms:g}"},
        {"name": "MODELSHIP_DRAIN_SECONDS", "value": f"{drain.drain_seconds:g}"},
        {"name": "MODELSHIP_SHUTDOWN_TIMEOUT_SECONDS", "value": f"{drain.shutdown_timeout_seconds:g}"},
        {"name": "MODELSHIP_CACHE_DIR", "value": "/tmp"},
        {"name": "HOME", "value": "/tmp"},
        *env.env(),
    ]
    if sha256:
        variables.insert(1, {"name": "MODELSHIP_EXPECTED_SHA256", "value": sha256})
    for key, value in sorted((extra_env or {}).items()):
        variables.append({"name": key, "value": value})
    container: Obj = {
        "name": "server",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["modelship-serve"],
        "ports": [
            {"name": "http", "containerPort": PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        ],
        "env": variables,
        "resources": resources(serving.resources, SERVING_DEFAULT_RESOURCES),
        "securityContext": container_security_context(),
        "startupProbe": _probe("/v2/health/live", 2, 90),
        "readinessProbe": _probe("/v2/health/ready", 2, 2),
        "livenessProbe": _probe("/v2/health/live", 10, 3),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(drain.pre_stop_seconds)]}}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [TMP_MOUNT, *env.mounts(read_only=True)],
    }
    if env.env_from():
        container["envFrom"] = env.env_from()
    constraints = topology_spread(serving, revision_selector(model, revision))
    spread: Obj = {"topologySpreadConstraints": constraints} if constraints else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(revision, namespace, labels, owner),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 1,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": revision_selector(model, revision)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": drain.grace_period,
                    "securityContext": pod_security_context(),
                    **spread,
                    "containers": [container],
                    "volumes": [tmp_volume(), *env.volumes(read_only=True)],
                },
            },
        },
    }
