"""What runs beside the cluster in the demo and the end-to-end tests.

A local S3 server (moto) on the node's address, so pods reach it, and the
operator as a host process against the cluster. Both are started and stopped
here; nothing is left behind.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUCKET = "modelship"
SECRET = "modelship-s3"
# moto accepts any keys; these are what the pods and the operator present.
KEYS = {"AWS_ACCESS_KEY_ID": "modelship", "AWS_SECRET_ACCESS_KEY": "modelship", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy; raise with the last value on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@dataclass
class S3:
    endpoint: str
    client: Any

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=data)
        return f"s3://{BUCKET}/{key}"

    def get(self, uri: str) -> bytes:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return bytes(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())


@contextmanager
def s3_server(host: str) -> Iterator[S3]:
    """moto's S3 on ``host`` (the node's address: 127.0.0.1 in a pod is the pod)."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per S3 request otherwise
    port = free_port(host)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"], region_name=KEYS["AWS_DEFAULT_REGION"])
    client.create_bucket(Bucket=BUCKET)
    try:
        yield S3(endpoint, client)
    finally:
        server.stop()


def operator_env(base: dict[str, str], images: dict[str, str], s3: S3, **extra: str) -> dict[str, str]:
    """The operator's settings for this stack (pods get the S3 endpoint and the Secret's keys)."""
    return {
        **base,
        "MODELSHIP_TRAINER_IMAGE": images["trainer"],
        "MODELSHIP_SERVING_IMAGE": images["serving"],
        "MODELSHIP_ARTIFACT_STORE": f"s3://{BUCKET}/artifacts",
        "MODELSHIP_S3_ENDPOINT_URL": s3.endpoint,
        "MODELSHIP_S3_CREDENTIALS_SECRET": SECRET,
        "MODELSHIP_HEALTH_PORT": str(free_port()),
        "MODELSHIP_WEBHOOK_PORT": str(free_port()),
        "MODELSHIP_METRICS_PORT": str(free_port()),
        "AWS_ENDPOINT_URL": s3.endpoint,
        **KEYS,
        **extra,
    }


@dataclass
class OperatorProcess:
    """The operator as a host process; ``kill()`` is a kill -9, ``start()`` starts it again."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    @property
    def metrics_port(self) -> int:
        return int(self.env["MODELSHIP_METRICS_PORT"])

    @property
    def webhook_port(self) -> int:
        return int(self.env["MODELSHIP_WEBHOOK_PORT"])

    def start(self, timeout: float = 60) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "modelship.cli", "operator"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(self.healthy, timeout, "the operator's /healthz", interval=0.5)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.env['MODELSHIP_HEALTH_PORT']}/healthz", timeout=2):
                return True
        except OSError:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the operator exited with {self.proc.returncode}:\n{self.log_tail()}") from None
            return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def operator_process(env: dict[str, str], log_path: Path) -> Iterator[OperatorProcess]:
    handle = OperatorProcess(env, log_path)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()

