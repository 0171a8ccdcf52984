"""Operator settings, from ``MODELSHIP_*`` environment variables (pydantic-settings).

The Helm chart turns its values into these variables; the CLI's flags
override them.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelship import __version__

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _pod_namespace() -> str:
    """The pod's own namespace when in a pod (the ServiceAccount's mount says it), else `default`."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def _identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELSHIP_", extra="ignore")

    trainer_image: str = Field(
        default=f"docker.io/modelship/trainer:{__version__}",
        description="Image of the trainer Job pods (runs modelship-train).",
    )
    serving_image: str = Field(
        default=f"docker.io/modelship/serving:{__version__}",
        description="Image of the serving pods (runs modelship-serve); a Model may override it.",
    )
    artifact_store: str = Field(
        default="s3://modelship/artifacts",
        description="Default artifact prefix; each TrainingJob writes under <store>/<namespace>/ only "
        "(<name>-<uid>/ by default).",
    )
    allowed_output_prefixes: list[str] = Field(
        default_factory=list,
        description="More prefixes TrainingJobs may write under besides artifact_store, each confined to "
        "<prefix>/<namespace>/ too (a JSON list in the environment).",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint passed to trainer and serving pods as AWS_ENDPOINT_URL."
    )
    s3_credentials_secret: str | None = Field(
        default=None,
        description="Secret (in the Model's namespace) with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for pods.",
    )
    artifact_pvc: str | None = Field(
        default=None, description="PVC mounted at the same path in trainer and serving pods for file:// stores."
    )
    artifact_mount_path: str = Field(default="/artifacts", description="Where artifact_pvc is mounted.")
    reconcile_seconds: float = Field(
        default=5.0, gt=0, description="How often in-flight Models, TrainingJobs and rollouts are re-examined."
    )
    resync_seconds: float = Field(
        default=300.0, gt=0,
        description="How often a Model at rest is re-read in full; changes reach it at once through watch events.",
    )
    history_limit: int = Field(default=10, ge=1, description="Versions kept in Model.status.history.")
    namespaces: list[str] = Field(default_factory=list, description="Namespaces watched; all when empty.")
    metrics_port: int = Field(default=8080, description="Prometheus /metrics of the operator.")
    health_port: int = Field(default=8081, description="Liveness /healthz.")
    webhook_port: int = Field(default=8082, description="Alertmanager webhook /alerts.")
    webhook_token: str | None = Field(default=None, description="Bearer token the webhook requires, if set.")
    allow_test_faults: bool = Field(
        default=False,
        description="Test-only: pass the Model annotation modelship.io/test-canary-env to canary pods.",
    )
    scrape_timeout_seconds: float = Field(default=3.0, gt=0, description="Timeout of a pod /metrics scrape.")
    scrape_max_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024,
        description="Most bytes read from one serving pod's /metrics or artifact metadata; a larger answer "
        "is refused (logged) and never held in memory.",
    )
    prometheus_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of a DriftMonitor's query to Prometheus (source prometheus)."
    )
    prometheus_bearer_token_file: str | None = Field(
        default=None,
        description="File whose content is sent as bearer token to Prometheus (source prometheus), read per query.",
    )
    prometheus_allowed_urls: list[str] = Field(
        default_factory=list,
        description="Prometheus base URLs (http(s)://host[:port][/path]) a DriftMonitor's source.prometheusUrl must "
        "be under (a JSON list in the environment). Empty: any URL without a bearer token, none with one.",
    )
    leader_election: bool = Field(
        default=False,
        description="Act only while holding the leader Lease (needed with more than one replica; the chart sets it).",
    )
    lease_name: str = Field(default="modelship-operator", description="Name of the leader Lease.")
    lease_namespace: str = Field(
        default_factory=_pod_namespace,
        description="Namespace of the leader Lease; default: the pod's own, or `default` outside a pod.",
    )
    pod_name: str = Field(
        default_factory=_identity,
        description="This replica's identity in the Lease (the chart passes the pod name); default: host-pid.",
    )
    leader_pod_label: bool = Field(
        default=False,
        description="Label this replica's pod modelship.io/leader=true|false (the chart's webhook Service selects it).",
    )
    lease_duration_seconds: int = Field(
        default=12, ge=1, description="How long followers wait after the leader's last renewal before taking over."
    )
    lease_renew_deadline_seconds: float = Field(
        default=8.0, gt=0, description="A leader that has not renewed for this long stops acting and exits."
    )
    lease_retry_period_seconds: float = Field(
        default=2.0, gt=0, description="How often the leader renews and a follower looks at the Lease."
    )

    @model_validator(mode="after")
    def _lease_timings(self) -> Self:
        if not self.lease_retry_period_seconds < self.lease_renew_deadline_seconds < self.lease_duration_seconds:
            raise ValueError("leader election needs retry period < renew deadline < lease duration")
        return self
