"""Settings of modelship-serve: every flag also comes from a MODELSHIP_* variable.

Precedence: command-line flag, then environment, then the default here.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
        description="Accept null/NaN in numeric inputs (set when the model's pipeline imputes); "
        "otherwise they are rejected with 400.",
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
    cache_dir: str | None = Field(
        default=None, description="Writable directory for downloaded artifacts (default: $TMPDIR)."
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    # Test-only faults: the operator's canary-rollback tests use them to make a
    # canary fail. Environment only (no flag); off by default.
    fault_error_ratio: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="Test only: share of inference requests answered 500 (injected fault).",
    )
    fault_latency_ms: float = Field(
        default=0.0, ge=0.0, le=60000.0, description="Test only: delay added to every inference request."
    )
