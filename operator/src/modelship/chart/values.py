"""The Helm chart's values as a pydantic model: the one source of
``charts/modelship/values.schema.json`` and of the values table in
``docs/helm.md``.

``values.yaml`` is written by hand (every key with a comment) and a test
holds it to this model: the same keys, the same defaults. Field names are
camelCase on the wire, as Helm users expect. Unknown keys are refused, so a
typo in ``--set`` or a values file fails ``helm install`` instead of being
ignored.

Usage: ``python -m modelship.chart.values SCHEMA_JSON [DOCS_MD]`` (``make chart-schema``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator
from pydantic.alias_generators import to_camel

from modelship.settings import OperatorSettings

K8sObject = dict[str, Any]
AccessMode = Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod", "ReadOnlyMany"]
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class _Values(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class Crds(_Values):
    enabled: bool = Field(default=True, description="Install the Model, TrainingJob and DriftMonitor CRDs with the chart.")
    keep: bool = Field(
        default=True,
        description="Annotate the CRDs `helm.sh/resource-policy: keep`, so `helm uninstall` leaves them "
        "(and every Model in the cluster) in place.",
    )


class OperatorImage(_Values):
    repository: str = Field(default="docker.io/modelship/operator", description="Operator image repository.")
    tag: str = Field(default="", description="Image tag; empty means the chart's appVersion.")
    digest: str = Field(default="", pattern=r"^(|sha256:[0-9a-f]{64})$",
                        description="Image digest (sha256:...); when set it wins over the tag.")
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="imagePullPolicy of the operator container.")


class DataPlaneImage(_Values):
    repository: str = Field(description="Image repository.")
    tag: str = Field(default="", description="Image tag; empty means the chart's appVersion.")
    digest: str = Field(default="", pattern=r"^(|sha256:[0-9a-f]{64})$",
                        description="Image digest (sha256:...); when set it wins over the tag.")


class Trainer(_Values):
    image: DataPlaneImage = Field(
        default_factory=lambda: DataPlaneImage(repository="docker.io/modelship/trainer"),
        description="Image of the trainer Job pods (`MODELSHIP_TRAINER_IMAGE`).",
    )


class Serving(_Values):
    image: DataPlaneImage = Field(
        default_factory=lambda: DataPlaneImage(repository="docker.io/modelship/serving"),
        description="Image of the serving pods (`MODELSHIP_SERVING_IMAGE`); a Model's spec.serving.image overrides it.",
    )


class LeaderElection(_Values):
    enabled: bool = Field(
        default=True,
        description="Only the holder of a coordination.k8s.io Lease acts (`MODELSHIP_LEADER_ELECTION`). "
        "Needed when replicas > 1, and keeps a rolling upgrade from running two operators at once.",
    )
    lease_name: str = Field(default="", description="Lease name (`MODELSHIP_LEASE_NAME`); empty means the release's full name.")
    lease_duration_seconds: int = Field(
        default=12, ge=1, description="Followers take the Lease this long after the leader's last renewal "
        "(`MODELSHIP_LEASE_DURATION_SECONDS`).")
    renew_deadline_seconds: float = Field(
        default=8.0, gt=0, description="A leader that could not renew for this long exits "
        "(`MODELSHIP_LEASE_RENEW_DEADLINE_SECONDS`); less than leaseDurationSeconds.")
    retry_period_seconds: float = Field(
        default=2.0, gt=0, description="How often the leader renews and followers look "
        "(`MODELSHIP_LEASE_RETRY_PERIOD_SECONDS`); less than renewDeadlineSeconds.")


class S3(_Values):
    endpoint_url: str = Field(
        default="", description="S3-compatible endpoint for trainer and serving pods (`MODELSHIP_S3_ENDPOINT_URL`); "
        "empty means AWS.")
    credentials_secret: str = Field(
        default="",
        description="Name of a Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in each Model's namespace "
        "(`MODELSHIP_S3_CREDENTIALS_SECRET`); the pods reference it, the operator never reads it.",
    )


def _read_write_once() -> list[AccessMode]:
    return ["ReadWriteOnce"]


class ArtifactPvc(_Values):
    create: bool = Field(
        default=False,
        description="Create a PersistentVolumeClaim `<fullname>-artifacts` in each watched namespace (the release "
        "namespace when all are watched) and mount it in trainer and serving pods (`MODELSHIP_ARTIFACT_PVC`).",
    )
    existing_claim: str = Field(
        default="", description="Use this existing PVC (present in every Models' namespace) instead of creating one.")
    size: str = Field(default="10Gi", description="Size of the created PVC.")
    storage_class_name: str = Field(default="", description="StorageClass of the created PVC; empty means the default.")
    access_modes: list[AccessMode] = Field(
        default_factory=_read_write_once,
        description="Access modes of the created PVC: ReadWriteMany when trainer and serving pods may land on "
        "different nodes.",
    )
    mount_path: str = Field(default="/artifacts", pattern=r"^/",
                            description="Where the PVC is mounted in the pods (`MODELSHIP_ARTIFACT_MOUNT_PATH`).")


class Artifacts(_Values):
    store: str = Field(
        default="s3://modelship/artifacts", pattern=r"^(s3|file)://",
        description="Default artifact prefix (`MODELSHIP_ARTIFACT_STORE`): s3://bucket/prefix, or file:///<mountPath>/... "
        "with a PVC. Each TrainingJob writes under <store>/<namespace>/ only (its own <name>-<uid>/ by default), "
        "and never over an existing artifact.",
    )
    allowed_output_prefixes: list[str] = Field(
        default_factory=list,
        description="More prefixes (s3://... or file://...) a TrainingJob's outputUri may name besides `store` "
        "(`MODELSHIP_ALLOWED_OUTPUT_PREFIXES`); each is confined to <prefix>/<namespace>/ as `store` is. Any other "
        "outputUri fails the TrainingJob with InvalidSpec.",
        json_schema_extra={"items": {"type": "string", "pattern": "^(s3|file)://"}, "uniqueItems": True},
    )
    s3: S3 = Field(default_factory=S3, description="S3 access for trainer and serving pods.")
    pvc: ArtifactPvc = Field(default_factory=ArtifactPvc, description="A PVC store for file:// artifacts.")

    @property
    def uses_pvc(self) -> bool:
        return self.pvc.create or bool(self.pvc.existing_claim)


class SecretKey(_Values):
    name: str = Field(default="", description="Secret name; empty means no token.")
    key: str = Field(default="token", description="Key in the Secret holding the token.")


class WebhookTokenSecret(_Values):
    name: str = Field(
        default="",
        description="An existing Secret in the release namespace holding the token; empty means the chart "
        "generates one in `<fullname>-webhook-token` on install and keeps it across upgrades and uninstalls.")
    key: str = Field(default="token", pattern=r"^[-._a-zA-Z0-9]+$", description="Key in the Secret holding the token.")


class Webhook(_Values):
    token_secret: WebhookTokenSecret = Field(
        default_factory=WebhookTokenSecret,
        description="Bearer token the Alertmanager webhook requires (`MODELSHIP_WEBHOOK_TOKEN`, from a Secret in "
        "the release namespace); posts without it get 401. Alertmanager sends it with `http_config.authorization`.",
    )


class PrometheusQueries(_Values):
    timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one query (`MODELSHIP_PROMETHEUS_TIMEOUT_SECONDS`).")
    bearer_token_secret: SecretKey = Field(
        default_factory=SecretKey,
        description="Bearer token sent to Prometheus, from a Secret in the release namespace mounted as a file "
        "(`MODELSHIP_PROMETHEUS_BEARER_TOKEN_FILE`); only to `allowedUrls`, which it makes required.")
    allowed_urls: list[str] = Field(
        default_factory=list,
        description="Prometheus base URLs, http(s)://host[:port][/path], that a DriftMonitor's "
        "source.prometheusUrl must be at or under, compared on scheme, host, port and whole path segments "
        "(`MODELSHIP_PROMETHEUS_ALLOWED_URLS`). Any other URL gets the condition PrometheusUrlNotAllowed and no "
        "request. Empty: any URL, queried without credentials; required once bearerTokenSecret.name is set "
        "(the token goes to these only). With networkPolicy.enabled, their ports are open for egress.",
        json_schema_extra={"items": {"type": "string", "pattern": r"^https?://[^/?#@\s\\]+(/[^?#\s\\]*)?$"},
                           "uniqueItems": True},
    )


class Ports(_Values):
    metrics: int = Field(default=8080, ge=1, le=65535, description="Operator /metrics (`MODELSHIP_METRICS_PORT`).")
    health: int = Field(default=8081, ge=1, le=65535, description="Liveness and readiness /healthz (`MODELSHIP_HEALTH_PORT`).")
    webhook: int = Field(default=8082, ge=1, le=65535,
                         description="Alertmanager webhook /alerts (`MODELSHIP_WEBHOOK_PORT`).")


class Probe(_Values):
    initial_delay_seconds: int = Field(default=5, ge=0, description="Seconds before the first probe.")
    period_seconds: int = Field(default=10, ge=1, description="Seconds between probes.")
    timeout_seconds: int = Field(default=5, ge=1, description="Seconds a probe may take.")
    failure_threshold: int = Field(default=3, ge=1, description="Failures in a row before acting.")


class ServiceAccount(_Values):
    create: bool = Field(default=True, description="Create the operator's ServiceAccount.")
    name: str = Field(default="", description="ServiceAccount name; empty means the release's full name.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations on the ServiceAccount.")


class Rbac(_Values):
    create: bool = Field(
        default=True,
        description="Create the operator's (Cluster)Roles and bindings (the grants are in files/rbac.yaml).")
    aggregate_cluster_roles: bool = Field(
        default=True,
        description="Create `<fullname>-view` and `<fullname>-edit` ClusterRoles that aggregate into the built-in "
        "view, edit and admin roles for the three kinds.",
    )


class Service(_Values):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        default="ClusterIP", description="Type of the Service in front of /metrics and the webhook.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations on the Service.")


class PodDisruptionBudget(_Values):
    enabled: bool = Field(default=False, description="Create a PodDisruptionBudget for the operator pods.")
    min_available: int | str = Field(default=1, description="minAvailable (count or percent); unused when maxUnavailable is set.")
    max_unavailable: int | str = Field(default="", description="maxUnavailable (count or percent); empty means unset.")


class ServiceMonitor(_Values):
    enabled: bool = Field(default=False, description="Create a ServiceMonitor (monitoring.coreos.com/v1) for the operator.")
    interval: str = Field(default="30s", description="Scrape interval.")
    scrape_timeout: str = Field(default="10s", description="Scrape timeout.")
    honor_labels: bool = Field(
        default=True,
        description="Keep the metrics' own namespace and model labels (they name the Model, not the operator pod).")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels, e.g. the one your Prometheus selects on.")


class ServingPodMonitor(_Values):
    enabled: bool = Field(
        default=False,
        description="Create a PodMonitor for the serving pods of every watched namespace; it adds the `revision` "
        "label the dashboard groups by.",
    )
    interval: str = Field(default="15s", description="Scrape interval.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels, e.g. the one your Prometheus selects on.")


class PrometheusRule(_Values):
    enabled: bool = Field(
        default=False,
        description="Create a PrometheusRule with the operator's alerts: ModelshipOperatorDown, "
        "ModelshipReconcileErrors, ModelshipRolledBack.",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on the PrometheusRule object.")
    alert_labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on every alert (e.g. team).")
    disabled: list[str] = Field(default_factory=list, description="Names of default alerts to leave out.")


class Metrics(_Values):
    service_monitor: ServiceMonitor = Field(default_factory=ServiceMonitor, description="Operator scraping.")
    serving_pod_monitor: ServingPodMonitor = Field(default_factory=ServingPodMonitor, description="Serving pods scraping.")
    prometheus_rule: PrometheusRule = Field(default_factory=PrometheusRule, description="Default alerts.")


class Dashboard(_Values):
    enabled: bool = Field(
        default=False,
        description="Ship the Grafana dashboard (files/dashboards/modelship.json) as a ConfigMap for Grafana's "
        "sidecar.")
    namespace: str = Field(default="", description="Namespace of the ConfigMap; empty means the release namespace.")
    labels: dict[str, str] = Field(default_factory=lambda: {"grafana_dashboard": "1"},
                                   description="Labels Grafana's dashboard sidecar selects on.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations (e.g. the sidecar's folder).")


class NetworkPolicyIngress(_Values):
    peers: list[K8sObject] = Field(
        default_factory=list,
        description="NetworkPolicyPeers allowed to reach /metrics and the webhook; empty allows any source.")


class ApiServerEgress(_Values):
    cidrs: list[str] = Field(default_factory=list,
                             description="The API server's addresses (CIDRs); empty allows any address on its ports.")
    ports: list[int] = Field(default_factory=lambda: [443, 6443], description="The API server's ports.")


class DnsEgress(_Values):
    peers: list[K8sObject] = Field(
        default_factory=lambda: [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        description="Where DNS answers (UDP and TCP 53); an empty list allows any address.",
    )


class PrometheusEgress(_Values):
    peers: list[K8sObject] = Field(
        default_factory=list,
        description="NetworkPolicyPeers where Prometheus answers (its pods, or an ipBlock); empty allows any "
        "address on its ports. The ports are those of `prometheus.allowedUrls` (80 or 443 when a URL has none); "
        "no rule without allowed URLs or `ports`.")
    ports: list[int] = Field(
        default_factory=list,
        description="More TCP ports to open towards Prometheus, e.g. its pods' port when its Service maps another "
        "one (a NetworkPolicy sees the pod's port).",
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": 65535}, "uniqueItems": True},
    )


class NetworkPolicyEgress(_Values):
    api_server: ApiServerEgress = Field(default_factory=ApiServerEgress, description="To the API server.")
    dns: DnsEgress = Field(default_factory=DnsEgress, description="To cluster DNS.")
    prometheus: PrometheusEgress = Field(
        default_factory=PrometheusEgress, description="To Prometheus, for DriftMonitors with `source: prometheus`.")
    extra: list[K8sObject] = Field(
        default_factory=list, description="More NetworkPolicyEgressRules (the serving pods' port 8080 is always "
        "allowed: the operator scrapes them; it never talks to the artifact store).")


class NetworkPolicy(_Values):
    enabled: bool = Field(default=False, description="Create a NetworkPolicy for the operator pods.")
    ingress: NetworkPolicyIngress = Field(default_factory=NetworkPolicyIngress, description="Who may scrape or call the webhook.")
    egress: NetworkPolicyEgress = Field(default_factory=NetworkPolicyEgress, description="Where the operator may connect.")


def _default_resources() -> K8sObject:
    return {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}


def _default_pod_security_context() -> K8sObject:
    return {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"}}


def _default_security_context() -> K8sObject:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}


def _pvc_needs_file_store(pvc: dict[str, JsonValue]) -> JsonValue:
    return {
        "if": {"properties": {"artifacts": {"properties": {"pvc": pvc}}}},
        "then": {"properties": {"artifacts": {"properties": {"store": {"pattern": "^file://"}}}}},
    }


PROMETHEUS_TOKEN_NEEDS_URLS = ("prometheus.bearerTokenSecret is set: list the Prometheus base URLs the token may "
                               "be sent to in prometheus.allowedUrls")

# The rules of Values._consistent, in the schema too, so `helm lint` refuses them as well as
# `helm template` (lint reports a template's `fail` as information only).
CROSS_FIELD_RULES: list[JsonValue] = [
    {
        "if": {"properties": {"replicas": {"minimum": 2}}, "required": ["replicas"]},
        "then": {"properties": {"leaderElection": {"properties": {"enabled": {"const": True}}}}},
    },
    _pvc_needs_file_store({"properties": {"create": {"const": True}}, "required": ["create"]}),
    _pvc_needs_file_store({"properties": {"existingClaim": {"minLength": 1}}, "required": ["existingClaim"]}),
    {
        "if": {"properties": {"prometheus": {"properties": {"bearerTokenSecret": {
            "properties": {"name": {"minLength": 1}}, "required": ["name"]}}, "required": ["bearerTokenSecret"]}},
            "required": ["prometheus"]},
        "then": {"properties": {"prometheus": {"properties": {"allowedUrls": {"minItems": 1}},
                                               "required": ["allowedUrls"]}}},
    },
]


class Values(_Values):
    """Everything ``helm install modelship charts/modelship`` accepts."""

    model_config = ConfigDict(json_schema_extra={"allOf": CROSS_FIELD_RULES})

    global_: K8sObject = Field(default_factory=dict, alias="global",
                               description="Values a parent chart shares (unused here; accepted for subchart use).")
    name_override: str = Field(default="", description="Replaces the chart name in object names.")
    full_name_override: str = Field(default="", alias="fullnameOverride",
                                    description="Replaces the full object name prefix (release + chart).")
    crds: Crds = Field(default_factory=Crds, description="The CustomResourceDefinitions.")
    image: OperatorImage = Field(default_factory=OperatorImage, description="The operator image.")
    image_pull_secrets: list[K8sObject] = Field(default_factory=list,
                                                description="imagePullSecrets of the operator pods ([{name: ...}]).")
    replicas: int = Field(default=1, ge=0, description="Operator pods; with more than one, one leads and the rest wait.")
    leader_election: LeaderElection = Field(default_factory=LeaderElection, description="The operator's Lease.")
    watch_namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces the operator watches (`--namespace`, repeated); empty means all, with a ClusterRole. "
        "When set, the operator gets a Role in each (they must exist) and nothing cluster-wide.",
        json_schema_extra={"items": {"type": "string", "pattern": DNS_LABEL}, "uniqueItems": True},
    )
    trainer: Trainer = Field(default_factory=Trainer, description="Trainer Job pods.")
    serving: Serving = Field(default_factory=Serving, description="Serving pods.")
    artifacts: Artifacts = Field(default_factory=Artifacts, description="Where trained models are stored.")
    reconcile_seconds: float = Field(
        default=5.0, gt=0, description="How often in-flight objects are re-examined (`MODELSHIP_RECONCILE_SECONDS`).")
    resync_seconds: float = Field(
        default=300.0, gt=0, description="How often a Model at rest is re-read in full; changes reach it at once "
        "through watch events (`MODELSHIP_RESYNC_SECONDS`).")
    history_limit: int = Field(default=10, ge=1, description="Versions kept in Model.status.history (`MODELSHIP_HISTORY_LIMIT`).")
    scrape_timeout_seconds: float = Field(
        default=3.0, gt=0, description="Timeout of the operator's scrape of a serving pod (`MODELSHIP_SCRAPE_TIMEOUT_SECONDS`).")
    scrape_max_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024,
        description="Most bytes the operator reads from one serving pod's /metrics or artifact metadata; a larger "
        "answer is refused with a logged reason (`MODELSHIP_SCRAPE_MAX_BYTES`).")
    allow_test_faults: bool = Field(
        default=False,
        description="Test only: pass a Model's modelship.io/test-canary-env annotation to canary pods "
        "(`MODELSHIP_ALLOW_TEST_FAULTS`).",
    )
    webhook: Webhook = Field(default_factory=Webhook, description="The Alertmanager webhook.")
    prometheus: PrometheusQueries = Field(
        default_factory=PrometheusQueries,
        description="DriftMonitors with `source: prometheus`: how the operator queries Prometheus.")
    verbose: bool = Field(default=False, description="Debug logging (`--verbose`).")
    extra_env: list[K8sObject] = Field(default_factory=list, description="More env entries for the operator container.")
    ports: Ports = Field(default_factory=Ports, description="Container ports.")
    resources: K8sObject = Field(default_factory=_default_resources, description="Operator container resources.")
    liveness_probe: Probe = Field(default_factory=Probe, description="Liveness probe timing (GET /healthz on ports.health).")
    readiness_probe: Probe = Field(default_factory=Probe, description="Readiness probe timing (GET /healthz on ports.health).")
    pod_security_context: K8sObject = Field(default_factory=_default_pod_security_context,
                                            description="Pod securityContext (non-root uid 65532, seccomp RuntimeDefault).")
    security_context: K8sObject = Field(
        default_factory=_default_security_context,
        description="Container securityContext (read-only root, no privilege escalation, no capabilities).")
    termination_grace_period_seconds: int = Field(
        default=30, ge=0, description="Time the operator gets to finish a reconcile and release its Lease.")
    update_strategy: K8sObject = Field(
        default_factory=dict,
        description="Deployment strategy; empty means RollingUpdate (maxSurge 1, maxUnavailable 0) with leader "
        "election and Recreate without it.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector of the operator pods.")
    tolerations: list[K8sObject] = Field(default_factory=list, description="Tolerations of the operator pods.")
    affinity: K8sObject = Field(
        default_factory=dict, description="Affinity of the operator pods; when set, podAntiAffinity is not applied.")
    pod_anti_affinity: Literal["soft", "hard", "none"] = Field(
        default="soft",
        description="With replicas > 1 and no `affinity`: keep the replicas on different nodes, preferred (soft) "
        "or required (hard, replicas stay Pending without enough nodes), or none.")
    topology_spread_constraints: list[K8sObject] = Field(
        default_factory=list, description="topologySpreadConstraints of the operator pods.")
    priority_class_name: str = Field(default="", description="priorityClassName of the operator pods.")
    pod_annotations: dict[str, str] = Field(default_factory=dict, description="Extra annotations on the operator pods.")
    pod_labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on the operator pods.")
    pod_disruption_budget: PodDisruptionBudget = Field(default_factory=PodDisruptionBudget,
                                                       description="A PodDisruptionBudget.")
    service_account: ServiceAccount = Field(default_factory=ServiceAccount, description="The operator's ServiceAccount.")
    rbac: Rbac = Field(default_factory=Rbac, description="RBAC objects.")
    service: Service = Field(default_factory=Service, description="The Service for /metrics and the webhook.")
    metrics: Metrics = Field(default_factory=Metrics, description="Prometheus Operator objects.")
    dashboard: Dashboard = Field(default_factory=Dashboard, description="The Grafana dashboard.")
    network_policy: NetworkPolicy = Field(default_factory=NetworkPolicy, description="A NetworkPolicy.")

    @model_validator(mode="after")
    def _consistent(self) -> Values:
        # The chart's templates `fail` on the same cases; this keeps the Python side honest.
        if self.replicas > 1 and not self.leader_election.enabled:
            raise ValueError("replicas > 1 needs leaderElection.enabled: two operators would act at once")
        if self.artifacts.uses_pvc and not self.artifacts.store.startswith("file://"):
            raise ValueError("artifacts.pvc is set: artifacts.store must be a file:// URI under pvc.mountPath")
        if self.prometheus.bearer_token_secret.name and not self.prometheus.allowed_urls:
            raise ValueError(PROMETHEUS_TOKEN_NEEDS_URLS)
        return self


# Every MODELSHIP_* setting of the operator and the value that sets it (None: set by the chart itself).
SETTINGS_VALUES: dict[str, str | None] = {
    "trainer_image": "trainer.image",
    "serving_image": "serving.image",
    "artifact_store": "artifacts.store",
    "allowed_output_prefixes": "artifacts.allowedOutputPrefixes",
    "s3_endpoint_url": "artifacts.s3.endpointUrl",
    "s3_credentials_secret": "artifacts.s3.credentialsSecret",
    "artifact_pvc": "artifacts.pvc",
    "artifact_mount_path": "artifacts.pvc.mountPath",
    "reconcile_seconds": "reconcileSeconds",
    "history_limit": "historyLimit",
    "namespaces": "watchNamespaces",
    "metrics_port": "ports.metrics",
    "health_port": "ports.health",
    "webhook_port": "ports.webhook",
    "webhook_token": "webhook.tokenSecret",
    "allow_test_faults": "allowTestFaults",
    "scrape_timeout_seconds": "scrapeTimeoutSeconds",
    "scrape_max_bytes": "scrapeMaxBytes",
    "resync_seconds": "resyncSeconds",
    "prometheus_timeout_seconds": "prometheus.timeoutSeconds",
    "prometheus_bearer_token_file": "prometheus.bearerTokenSecret",
    "prometheus_allowed_urls": "prometheus.allowedUrls",
    "leader_election": "leaderElection.enabled",
    "leader_pod_label": "leaderElection.enabled",
    "lease_name": "leaderElection.leaseName",
    "lease_duration_seconds": "leaderElection.leaseDurationSeconds",
    "lease_renew_deadline_seconds": "leaderElection.renewDeadlineSeconds",
    "lease_retry_period_seconds": "leaderElection.retryPeriodSeconds",
    "lease_namespace": None,  # the pod's namespace (downward API)
    "pod_name": None,  # the pod's name (downward API)
}


def unmapped_settings() -> set[str]:
    """Operator settings no value sets (should be empty)."""
    return set(OperatorSettings.model_fields) - set(SETTINGS_VALUES)


# --- the schema ---------------------------------------------------------------


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Inline $refs and drop titles: a flat schema reads well and suits every validator."""
    if isinstance(node, list):
        return [_inline(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _inline(merged, defs)
    return {k: _inline(v, defs) for k, v in node.items() if k not in {"title", "$defs"}}


def schema() -> dict[str, Any]:
    raw = Values.model_json_schema(by_alias=True, mode="validation")
    out = _inline(raw, raw.get("$defs", {}))
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": "Modelship chart values", **out}


def render_schema() -> str:
    return json.dumps(schema(), indent=2, sort_keys=False) + "\n"


# --- the docs table -------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "")
    text = re.sub(r"<class '(\w+)'>", r"\1", text)
    if text.startswith("Literal["):
        return "one of " + ", ".join(re.findall(r"'([^']*)'", text))
    if text.startswith("list[Literal["):
        return "list of " + ", ".join(re.findall(r"'([^']*)'", text))
    return {"str": "string", "bool": "boolean", "int": "integer", "float": "number","dict[str, Any]": "object", "list[dict[str, Any]]": "list of objects",
            "dict[str, str]": "map of strings", "list[str]": "list of strings",
            "list[int]": "list of integers", "int | str": "integer or string"}.get(text, text)


def rows(values: BaseModel | None = None, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default as JSON, description) for every leaf value, in declaration order."""
    values = Values() if values is None else values
    out: list[tuple[str, str, str, str]] = []
    for name, info in type(values).model_fields.items():
        key = prefix + (info.alias or name)
        value = getattr(values, name)
        if isinstance(value, BaseModel):
            out += rows(value, key + ".")
            continue
        out.append((key, _type_name(info.annotation), json.dumps(value), info.description or ""))
    return out


START, END = "<!-- values:start (generated by `make chart-schema`) -->", "<!-- values:end -->"


def render_table() -> str:
    lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for key, type_, default, description in rows():
        cell = description.replace("|", "\\|")
        lines.append(f"| `{key}` | {type_} | `{default}` | {cell} |")
    return "\n".join(lines)


def update_docs(text: str) -> str:
    """``text`` with the part between the markers replaced by the current table."""
    if START not in text or END not in text:
        raise ValueError(f"the docs need the markers {START!r} and {END!r}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{render_table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(args[0])
    if not out.exists() or out.read_text() != render_schema():
        out.write_text(render_schema())
    print(f"Wrote {out}")
    if len(args) > 1:
        docs = Path(args[1])
        text = docs.read_text()
        new = update_docs(text)
        if new != text:
            docs.write_text(new)
        print(f"Wrote the values table in {docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
