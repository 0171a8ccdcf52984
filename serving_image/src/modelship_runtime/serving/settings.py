"""Settings of modelship-serve: every flag also comes from a MODELSHIP_* variable.

Precedence: command-line flag, then environment, then the default here.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .shadow_url import parse_url


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELSHIP_", extra="ignore", protected_namespaces=())

    model_uri: str = Field(
        description="Artifact directory (file://, s3://, a path) with model.onnx and "
        "metadata.json, or a bare .onnx file (file://, s3://, http(s)://, a path)."
    )
    model_name: str | None = Field(
        default=None, description="Name in URLs; default: metadata's modelName, else the file stem."
    )
    host: str = Field(default="0.0.0.0", description="Address to listen on.")
    port: int = Field(default=8080, ge=0, le=65535, description="HTTP port (0: any free port).")
    grpc_port: int = Field(
        default=8081, ge=-1, le=65535,
        description="gRPC port (OIP v2 inference.GRPCInferenceService; 0: any free port, -1: no gRPC).",
    )
    workers: int = Field(
        default=1, ge=1, le=256,
        description="Processes sharing the port through SO_REUSEPORT (for use outside Kubernetes).",
    )
    max_batch_size: int = Field(default=64, ge=1, description="Most rows in one onnxruntime call.")
    max_batch_delay_ms: float = Field(
        default=0.0, ge=0.0, le=1000.0,
        description="Longest wait for more requests before running a batch that is not full. "
        "0: no wait; requests that queue up while a batch runs still share the next call.",
    )
    expected_sha256: str | None = Field(
        default=None, description="sha256 of model.onnx; on mismatch the server never becomes ready."
    )
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, description="Larger bodies get 413.")
    max_rows: int = Field(default=65536, ge=1, description="Most rows in one request (400 above).")
    allow_missing: bool = Field(
        default=False,
        description="Accept null/NaN in every input. Not needed for a Modelship artifact: its metadata.json "
        "lists the inputs its graph imputes, and those accept nulls by themselves; this is for a bare "
        "ONNX model known to handle them. Otherwise nulls are refused with 400.",
    )
    threads: int | None = Field(
        default=None, ge=1,
        description="onnxruntime intra-op threads; default: the cgroup CPU limit (or CPU count) "
        "divided among the workers.",
    )
    drain_seconds: float = Field(
        default=3.0, ge=0.0,
        description="After SIGTERM: keep accepting (with readiness false) this long, so endpoints "
        "can drop the pod, then refuse new connections and finish in-flight requests.",
    )
    shutdown_timeout_seconds: float = Field(
        default=25.0, ge=0.0, description="Longest wait for in-flight requests after the drain."
    )
    idle_timeout_seconds: float = Field(
        default=75.0, gt=0.0,
        description="Close a keep-alive connection idle this long, or one that takes this long to send "
        "a request (slow clients must not hold sockets forever).",
    )
    load_retry_max_seconds: float = Field(
        default=30.0, gt=0.0,
        description="Longest wait between two attempts to fetch the model while the store cannot be read "
        "(the wait starts at 0.5 s and doubles).",
    )
    load_deadline_seconds: float = Field(
        default=300.0, ge=0.0,
        description="After this long without a loaded model (the store still unreadable), liveness answers "
        "503 so the kubelet restarts the pod; readiness says why all along. 0: never.",
    )
    cache_dir: str | None = Field(
        default=None, description="Writable directory for downloaded artifacts (default: $TMPDIR)."
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    # Shadow traffic (issue 18): the operator sets the URL on the stable's pods
    # while a Model's rollout may run a shadow; see serving/shadow.py.
    shadow_url: str | None = Field(
        default=None,
        description="Base URL (http://name[:port]) of the candidate's shadow Service. Set: mirror a sample "
        "of inference requests there and compare answers; while the name does not resolve or refuses "
        "connections, mirroring waits (counted as unavailable). Unset or empty: off.",
    )
    shadow_percent: float = Field(
        default=100.0, ge=0.0, le=100.0, description="Share of inference requests mirrored to the shadow (0-100)."
    )
    shadow_queue: int = Field(
        default=256, ge=1, le=65536,
        description="Copies waiting for the shadow at most; a copy that finds the queue full is dropped (counted).",
    )
    shadow_timeout_seconds: float = Field(
        default=2.0, gt=0.0, le=600.0, description="Longest wait for the shadow's answer to one copy (connect included)."
    )
    shadow_connections: int = Field(
        default=4, ge=1, le=64, description="Keep-alive connections to the shadow (one copy in flight on each)."
    )
    shadow_retry_seconds: float = Field(
        default=2.0, gt=0.0, le=600.0,
        description="After the shadow was not found (name not resolved, connection refused): count copies "
        "as unavailable this long, then try again.",
    )
    # Test-only faults: the operator's canary-rollback tests use them to make a
    # canary fail. Environment only (no flag); off by default.
    fault_error_ratio: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="Test only: share of inference requests answered 500 (injected fault).",
    )
    fault_latency_ms: float = Field(
        default=0.0, ge=0.0, le=60000.0, description="Test only: delay added to every inference request."
    )
    fault_flip_labels: bool = Field(
        default=False,
        description="Test only: a binary classifier answers the other class (Ready, healthy, and wrong).",
    )

    @field_validator("shadow_url")
    @classmethod
    def _shadow_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_url(value)  # raises ValueError with the reason
        return value.strip()
