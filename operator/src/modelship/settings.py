"""Operator settings, from ``MODELSHIP_*`` environment variables (pydantic-settings).

The Helm chart turns its values into these variables; the CLI's flags
override them.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelship import __version__


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
        description="Default artifact prefix; each TrainingJob writes under <store>/<namespace>/<name>/.",
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
    prometheus_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of a DriftMonitor's query to Prometheus (source prometheus)."
    )
    prometheus_bearer_token_file: str | None = Field(
        default=None,
        description="File whose content is sent as bearer token to Prometheus (source prometheus), read per query.",
    )
