"""A serving revision's pod template and Deployment, and the timing that makes its pods stop
without failed requests. Where the pods run (spread over nodes) is ``builders.placement``'s.

Shutdown of a serving pod: the kubelet runs the preStop sleep while
endpoints controllers and kube-proxy drop the pod; then SIGTERM makes the
server report not-ready, keep accepting for ``drain_seconds``, refuse new
connections and finish in-flight requests within ``shutdown_timeout_seconds``
(``modelship_runtime.serving.server``). ``terminationGracePeriodSeconds`` is
the sum plus a margin, so the kubelet never kills a pod that is still
answering.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelship.api.common import parse_duration
from modelship.api.model import Serving
from modelship.builders.common import (
    MODEL_LABEL,
    REVISION_LABEL,
    ROLE_LABEL,
    SHADOW_LABEL,
    TMP_MOUNT,
    Obj,
    PodEnvironment,
    container_security_context,
    metadata,
    pod_security_context,
    resources,
    tmp_volume,
)
from modelship.builders.placement import SERVING_APP, topology_spread
from modelship.logic.revision import child_name, short_hash

PORT = 8080
# OIP v2 gRPC (inference.GRPCInferenceService), cleartext HTTP/2.
GRPC_PORT = 8081
SERVING_DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
SHADOW_URL_ENV = "MODELSHIP_SHADOW_URL"  # on the stable's pods when its Model has a shadow stage: it mirrors there


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


@dataclass(frozen=True)
class Mirror:
    """Where a stable's server mirrors live requests while a shadow runs (its Service), and how many."""

    url: str
    percent: int


def shadow_service_name(model: str) -> str:
    return child_name(model, "shadow")


def shadow_deployment_name(revision: str) -> str:
    return child_name(revision, "shadow")


def build_shadow_deployment(
    model: str, namespace: str, revision: str, template: Obj, *, replicas: int, owner: Mapping[str, Any] | None
) -> Obj:
    """Deployment ``<revision>-shadow``: the candidate's pods while it only receives mirrored copies.

    Its pods carry ``modelship.io/shadow`` instead of ``modelship.io/model``, so the Model's
    Service never sends them a user's request; the shadow Service selects them. When the shadow
    passes, the canary Deployment ``<revision>`` (the same template, the usual labels) takes over.
    """
    pod = copy.deepcopy(template)
    labels = {k: v for k, v in pod["metadata"]["labels"].items() if k != MODEL_LABEL}
    pod["metadata"]["labels"] = {**labels, SHADOW_LABEL: model, REVISION_LABEL: revision}
    return _deployment(metadata(shadow_deployment_name(revision), namespace,
                                {MODEL_LABEL: model, REVISION_LABEL: revision, ROLE_LABEL: "shadow"}, owner),
                       replicas, {SHADOW_LABEL: model, REVISION_LABEL: revision}, pod)


def _deployment(meta: Obj, replicas: int, selector: Mapping[str, str], pod: Obj) -> Obj:
    """A serving Deployment: new pods surge one at a time and none is taken down before."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 1,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": dict(selector)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": pod,
        },
    }


def serving_labels(model: str, revision: str) -> dict[str, str]:
    return {MODEL_LABEL: model, REVISION_LABEL: revision, **SERVING_APP}


def prediction_log_env(serving: Serving, uri: str | None) -> list[Obj]:
    """The server's MODELSHIP_PREDICTION_LOG_* variables; none when the log is off (pods unchanged).

    The revision is the hash of the template, so it reaches the server from the pod's own
    revision label (the Downward API), not as a value written here.
    """
    log = serving.prediction_log
    if log is None or not log.enabled or not uri:
        return []
    out: list[Obj] = [
        {"name": "MODELSHIP_PREDICTION_LOG_URI", "value": uri},
        {"name": "MODELSHIP_REVISION",
         "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{REVISION_LABEL}']"}}},
        {"name": "MODELSHIP_PREDICTION_LOG_SAMPLE_RATIO", "value": f"{log.sample_ratio:g}"},
        {"name": "MODELSHIP_PREDICTION_LOG_FLUSH_SECONDS", "value": f"{parse_duration(log.flush_interval).total_seconds():g}"},
        {"name": "MODELSHIP_PREDICTION_LOG_MAX_QUEUE_ROWS", "value": str(log.max_queue_rows)},
    ]
    if log.feedback_token_secret is not None:
        ref = log.feedback_token_secret
        out.append({"name": "MODELSHIP_FEEDBACK_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    return out


def _probe(path: str, period: int, failures: int) -> Obj:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def build_pod_template(
    model: str,
    *,
    model_uri: str,
    sha256: str | None,
    serving: Serving,
    image: str,
    environment: PodEnvironment | None = None,
    drain: Drain | None = None,
    extra_env: Mapping[str, str] | None = None,
    shadow: Mirror | None = None,
    prediction_log_uri: str | None = None,
) -> Obj:
    """The pod template of a revision serving ``model_uri`` (checked against ``sha256``) as ``model``.

    Everything that reaches the pods is here, and the revision is named by its
    hash (``revision_name``), so any change to it makes a new revision and
    nothing else does. The revision label is added by the Deployment builder
    (it is the hash, so it cannot be part of it). Prometheus scrape
    annotations point at ``/metrics``. ``extra_env`` is for tests' fault
    settings (``MODELSHIP_FAULT_*``).
    With ``serving.predictionLog`` enabled the pods log predictions under
    ``prediction_log_uri`` (the Model's ground-truth prefix) and may write to
    a file:// store's volume.
    """
    env = environment or PodEnvironment()
    drain = drain or Drain()
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
    if shadow is not None:
        variables += [{"name": SHADOW_URL_ENV, "value": shadow.url},
                      {"name": "MODELSHIP_SHADOW_PERCENT", "value": str(shadow.percent)}]
    logging = prediction_log_env(serving, prediction_log_uri)
    variables += logging
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
        # Probed every second: a pod that replaces another (a rollback restoring the stable, a
        # canary step) is Ready about a second after its server is, not two to four.
        "startupProbe": _probe("/v2/health/live", 1, 180),
        "readinessProbe": _probe("/v2/health/ready", 1, 3),
        "livenessProbe": _probe("/v2/health/live", 10, 3),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(drain.pre_stop_seconds)]}}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [TMP_MOUNT, *env.mounts(read_only=not logging)],
    }
    if env.env_from():
        container["envFrom"] = env.env_from()
    spread = topology_spread(serving)
    return {
        "metadata": {
            "labels": {MODEL_LABEL: model, **SERVING_APP},
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
            **({"topologySpreadConstraints": spread} if spread else {}),
            "containers": [container],
            "volumes": [tmp_volume(), *env.volumes(read_only=not logging)],
        },
    }


def revision_name(model: str, template: Obj) -> str:
    """``<model>-<hash of the pod template>``: the Deployment's name and its pods' revision label."""
    return child_name(model, short_hash(template))


def build_serving_deployment(
    model: str, namespace: str, revision: str, template: Obj, *, replicas: int, owner: Mapping[str, Any] | None
) -> Obj:
    """Deployment ``<revision>`` of ``template`` (``build_pod_template``; ``revision`` its name).

    Its pods carry ``modelship.io/model`` (the Service selects on it, so
    stable and canary share traffic by replica count) and
    ``modelship.io/revision``.
    """
    labels = serving_labels(model, revision)
    pod = copy.deepcopy(template)
    pod["metadata"]["labels"] = {**pod["metadata"]["labels"], **labels}
    return _deployment(metadata(revision, namespace, labels, owner), replicas,
                       {MODEL_LABEL: model, REVISION_LABEL: revision}, pod)
