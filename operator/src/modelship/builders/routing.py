"""Traffic objects: the model's Service, per-revision Services, the HPA and a Gateway API HTTPRoute."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelship.api.model import Autoscaling, GatewayRef
from modelship.builders.common import (
    MODEL_LABEL,
    REVISION_LABEL,
    ROLE_LABEL,
    SHADOW_LABEL,
    Obj,
    metadata,
)
from modelship.builders.serving import GRPC_PORT, PORT, Mirror, shadow_service_name
from modelship.logic.revision import child_name

SERVICE_PORT = 80
# gRPC keeps its number on the Service (KServe's convention); h2c tells proxies it is HTTP/2.
SERVICE_GRPC_PORT = GRPC_PORT


def _service(name: str, namespace: str, labels: Mapping[str, str], selector: Mapping[str, str],
             owner: Mapping[str, Any] | None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, namespace, labels, owner),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [
                {"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "grpc", "port": SERVICE_GRPC_PORT, "targetPort": "grpc", "protocol": "TCP",
                 "appProtocol": "kubernetes.io/h2c"},
            ],
        },
    }


def build_service(model: str, namespace: str, owner: Mapping[str, Any] | None) -> Obj:
    """Service ``<model>`` selecting every revision of the model (stable and canary share it)."""
    return _service(model, namespace, {MODEL_LABEL: model}, {MODEL_LABEL: model}, owner)


def revision_service_name(model: str, role: str) -> str:
    return child_name(model, role)


def build_revision_service(
    model: str, namespace: str, role: str, revision: str, owner: Mapping[str, Any] | None
) -> Obj:
    """Service ``<model>-<role>`` (stable or canary) selecting one revision, for HTTPRoute backends."""
    return _service(
        revision_service_name(model, role), namespace, {MODEL_LABEL: model, ROLE_LABEL: role},
        {MODEL_LABEL: model, REVISION_LABEL: revision}, owner,
    )


def build_shadow_service(model: str, namespace: str, owner: Mapping[str, Any] | None) -> Obj:
    """Service ``<model>-shadow`` selecting the shadow's pods: where the stable's servers (or the
    HTTPRoute's RequestMirror filter) send copies. It exists while the Model's spec asks for a
    shadow and has endpoints only while one runs."""
    return _service(shadow_service_name(model), namespace, {MODEL_LABEL: model, ROLE_LABEL: "shadow"},
                    {SHADOW_LABEL: model}, owner)


def mirror_for(model: str, namespace: str, percent: int) -> Mirror:
    """What a stable's server mirrors to: the shadow Service, by its cluster DNS name."""
    # Fully qualified (the trailing dot): the pod's resolver asks for that one name only, not
    # each search domain first (ndots 5).
    return Mirror(service_url(shadow_service_name(model), namespace) + ".", percent)


def service_url(model: str, namespace: str) -> str:
    return f"http://{model}.{namespace}.svc.cluster.local"


def build_hpa(
    model: str, namespace: str, deployment: str, autoscaling: Autoscaling, owner: Mapping[str, Any] | None
) -> Obj:
    """autoscaling/v2 HPA ``<model>`` on the stable Deployment's CPU.

    The HPA owns the stable's replica count: the operator reads its desired
    count as the rollout's total instead of fighting it.
    """
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(model, namespace, {MODEL_LABEL: model}, owner),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                       "averageUtilization": autoscaling.target_cpu_utilization}},
            }],
        },
    }


def _match(kind: str, path: str) -> Obj:
    return {"path": {"type": kind, "value": path}}


def route_paths(model: str, *, feedback: bool = False) -> tuple[list[Obj], list[Obj]]:
    """The HTTPRoute matches of the model's public paths: (inference, metadata).

    What KServe's InferenceService publishes of its predictor: v1 ``/v1/models/<m>`` and
    ``:predict``; v2 ``/v2/models/<m>``, ``/ready``, ``/infer`` and the same under
    ``/versions/<v>`` (a PathPrefix, which matches whole path elements; the server answers
    nothing else below it). Not routed: ``/metrics``, ``/openapi.json``,
    ``/v2/models/<m>/artifact`` (the training metadata), the server-wide ``/v2``,
    ``/v2/health/*`` and ``/v1/models`` (the route has no hostname: two Models on one Gateway
    would both claim them), and ``/v2/models/<m>/feedback`` unless ``feedback`` (a token
    guards it)."""
    v1, v2 = f"/v1/models/{model}", f"/v2/models/{model}"
    inference = [_match("Exact", f"{v1}:predict"), _match("Exact", f"{v2}/infer"),
                 _match("PathPrefix", f"{v2}/versions")]
    meta = [_match("Exact", v1), _match("Exact", v2), _match("Exact", f"{v2}/ready")]
    if feedback:
        meta.append(_match("Exact", f"{v2}/feedback"))
    return inference, meta


def build_httproute(
    model: str,
    namespace: str,
    gateway: GatewayRef,
    canary_weight: int,
    owner: Mapping[str, Any] | None,
    *,
    has_canary: bool = True,
    mirror_percent: int | None = None,
    feedback: bool = False,
) -> Obj:
    """gateway.networking.k8s.io/v1 HTTPRoute ``<model>``: the model's public paths
    (``route_paths``) to the stable and canary Services by weight; with ``mirror_percent`` a
    RequestMirror filter copies that share of the inference requests to the shadow Service."""
    if not 0 <= canary_weight <= 100:
        raise ValueError("canary_weight must be within 0..100")
    # The API server's defaults (group, kind) are written out, so that the object read
    # back equals the one built and an unchanged route costs no patch.
    parent: Obj = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway.name}
    if gateway.namespace:
        parent["namespace"] = gateway.namespace

    def backend(role: str, weight: int) -> Obj:
        return {"group": "", "kind": "Service", "name": revision_service_name(model, role), "port": SERVICE_PORT,
                "weight": weight}

    def backends() -> list[Obj]:
        out = [backend("stable", 100 - canary_weight if has_canary else 100)]
        if has_canary:
            out.append(backend("canary", canary_weight))
        return out

    inference, metadata_paths = route_paths(model, feedback=feedback)
    # Two rules, one split: only inference is mirrored (as the stable's own servers mirror),
    # so a shadow never sees a label post or a metadata read.
    infer_rule: Obj = {"matches": inference, "backendRefs": backends()}
    if mirror_percent is not None:
        infer_rule["filters"] = [{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"group": "", "kind": "Service", "name": shadow_service_name(model), "port": SERVICE_PORT},
            "percent": mirror_percent}}]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata(model, namespace, {MODEL_LABEL: model}, owner),
        "spec": {"parentRefs": [parent], "rules": [infer_rule, {"matches": metadata_paths, "backendRefs": backends()}]},
    }


__all__ = [
    "GRPC_PORT", "PORT", "SERVICE_GRPC_PORT", "SERVICE_PORT", "build_hpa", "build_httproute", "build_revision_service", "build_service",
    "revision_service_name", "route_paths", "service_url",
]
