"""``modelship-serve``: flags (each also a MODELSHIP_* variable) and worker processes.

Test-only fault injection, environment only (the operator's canary-rollback
tests use it to make a canary fail; off by default):

- ``MODELSHIP_FAULT_ERROR_RATIO`` (0..1): that share of inference requests
  (v1 and v2) is answered 500 ``{"error": "injected fault ..."}``.
- ``MODELSHIP_FAULT_LATENCY_MS``: added to every inference request.
- ``MODELSHIP_FAULT_FLIP_LABELS`` (true): a binary classifier answers the
  other class: Ready and healthy, but wrong (what a shadow's agreement catches).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from .settings import ServeSettings

log = logging.getLogger("modelship.serve")

FLAGS: list[tuple[str, str, Any]] = [
    ("--model-uri", "model_uri", str),
    ("--model-name", "model_name", str),
    ("--host", "host", str),
    ("--port", "port", int),
    ("--grpc-port", "grpc_port", int),
    ("--workers", "workers", int),
    ("--max-batch-size", "max_batch_size", int),
    ("--max-batch-delay-ms", "max_batch_delay_ms", float),
    ("--expected-sha256", "expected_sha256", str),
    ("--max-body-bytes", "max_body_bytes", int),
    ("--max-rows", "max_rows", int),
    ("--threads", "threads", int),
    ("--drain-seconds", "drain_seconds", float),
    ("--shutdown-timeout-seconds", "shutdown_timeout_seconds", float),
    ("--idle-timeout-seconds", "idle_timeout_seconds", float),
    ("--load-retry-max-seconds", "load_retry_max_seconds", float),
    ("--load-deadline-seconds", "load_deadline_seconds", float),
    ("--cache-dir", "cache_dir", str),
    ("--log-level", "log_level", str),
    ("--shadow-url", "shadow_url", str),
    ("--shadow-percent", "shadow_percent", float),
    ("--shadow-queue", "shadow_queue", int),
    ("--shadow-timeout-seconds", "shadow_timeout_seconds", float),
    ("--shadow-connections", "shadow_connections", int),
    ("--shadow-retry-seconds", "shadow_retry_seconds", float),
]


def parse(argv: Sequence[str] | None = None) -> ServeSettings:
    parser = argparse.ArgumentParser(
        prog="modelship-serve",
        description="Serve one ONNX model over Open Inference Protocol v2 (REST and gRPC) and KServe v1 REST. "
        "Every flag can also be set as MODELSHIP_<FLAG> (e.g. MODELSHIP_MODEL_URI).",
    )
    fields = ServeSettings.model_fields
    for flag, field, kind in FLAGS:
        parser.add_argument(flag, dest=field, type=kind, default=None, help=fields[field].description)
    parser.add_argument(
        "--allow-missing", dest="allow_missing", action="store_true", default=None,
        help=fields["allow_missing"].description,
    )
    args = parser.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None}
    try:
        return ServeSettings(**given)
    except ValidationError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run_one(settings: ServeSettings, reuse_port: bool = False) -> int:
    from .server import serve

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(serve(settings, reuse_port=reuse_port))


def run_workers(settings: ServeSettings) -> int:
    """Forks N processes (before any model or thread exists) sharing the port."""
    if settings.port == 0 or settings.grpc_port == 0:
        log.error("Refused --workers %d with port 0: workers must share fixed ports", settings.workers)
        return 2
    children: list[int] = []
    for _ in range(settings.workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = run_one(settings, reuse_port=True)
            finally:
                os._exit(code)
        children.append(pid)
    log.info("Started %d workers: %s", len(children), children)

    def forward(signum: int, _frame: Any) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    worst = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGTERM, signal.SIGINT):
            continue  # stopped by the signal we forwarded before it could install its handler
        worst = max(worst, os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)
    return worst


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse(argv)
    logging.basicConfig(
        level=settings.log_level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(process)d %(message)s",
    )
    if settings.fault_error_ratio or settings.fault_latency_ms or settings.fault_flip_labels:
        log.warning(
            "Enabled test-only faults: error ratio %.3f, added latency %.0f ms",
            settings.fault_error_ratio, settings.fault_latency_ms,
        )
    if settings.workers > 1:
        return run_workers(settings)
    return run_one(settings)


if __name__ == "__main__":
    sys.exit(main())
