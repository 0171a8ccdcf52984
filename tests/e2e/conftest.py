"""End-to-end fixtures: the cluster (tests/conftest.py), the images, an S3 store,
the operator, and a fresh namespace per test.

The suite targets whatever cluster ``local_cluster`` gives: the one KUBECONFIG
names, or the local one. The S3 server (moto) listens on the node's address so
that pods reach it; the operator runs as a host process against the cluster
(the Helm issue moves it into a pod).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "modelship"
SECRET = "modelship-s3"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@dataclass
class S3:
    endpoint: str
    client: Any

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=data)
        return f"s3://{BUCKET}/{key}"


@pytest.fixture(scope="session")
def s3(local_cluster: Any) -> Iterator[S3]:
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port(local_cluster.node_ip)
    server = ThreadedMotoServer(ip_address=local_cluster.node_ip, port=port, verbose=False)
    server.start()
    endpoint = f"http://{local_cluster.node_ip}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="modelship",
                          aws_secret_access_key="modelship", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield S3(endpoint, client)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def images(local_cluster: Any) -> dict[str, str]:
    from modelship import images

    return images.build()


@dataclass
class Operator:
    cluster: Any
    env: dict[str, str]
    metrics_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelship.cli", "operator", "--metrics-port", str(self.metrics_port),
             "--health-port", self.env["MODELSHIP_HEALTH_PORT"], "--webhook-port", self.env["MODELSHIP_WEBHOOK_PORT"]],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        wait_until(self.healthy, 60, "the operator's /healthz")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.env['MODELSHIP_HEALTH_PORT']}/healthz", timeout=2):
                return True
        except OSError:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the operator exited with {self.proc.returncode}:\n{self.log_tail()}") from None
            return False

    def kill(self) -> None:
        """kill -9: no chance to clean up, as a crash or an OOM kill would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
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
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def operator(local_cluster: Any, images: dict[str, str], s3: S3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    local_cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    for crd in ("models", "trainingjobs", "driftmonitors"):
        local_cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}.modelship.io", "--timeout=60s")
    env = {
        **local_cluster.env,
        "MODELSHIP_TRAINER_IMAGE": images["trainer"],
        "MODELSHIP_SERVING_IMAGE": images["serving"],
        "MODELSHIP_ARTIFACT_STORE": f"s3://{BUCKET}/artifacts",
        "MODELSHIP_S3_ENDPOINT_URL": s3.endpoint,
        "MODELSHIP_S3_CREDENTIALS_SECRET": SECRET,
        "MODELSHIP_ALLOW_TEST_FAULTS": "true",
        "MODELSHIP_RECONCILE_SECONDS": "2",
        "MODELSHIP_HEALTH_PORT": str(free_port()),
        "MODELSHIP_WEBHOOK_PORT": str(free_port()),
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_ACCESS_KEY_ID": "modelship",
        "AWS_SECRET_ACCESS_KEY": "modelship",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    handle = Operator(local_cluster, env, free_port(), tmp_path_factory.mktemp("operator") / "operator.log")
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


@dataclass
class Namespace:
    name: str
    cluster: Any

    def apply(self, manifest: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "-n", self.name, "-f", "-", stdin=yaml.safe_dump(manifest))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        res = self.cluster.kubectl("get", "-n", self.name, kind, name, "-o", "json", check=False)
        return json.loads(res.stdout) if res.returncode == 0 else None

    def list(self, kind: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", "-n", self.name, kind, "-o", "json"]
        if selector:
            args += ["-l", selector]
        return list(json.loads(self.cluster.kubectl(*args).stdout)["items"])

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.name, *args, **kw)


@pytest.fixture
def namespace(local_cluster: Any, operator: Operator) -> Iterator[Namespace]:
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    local_cluster.kubectl("create", "namespace", name)
    local_cluster.kubectl("create", "secret", "generic", SECRET, "-n", name,
                          "--from-literal=AWS_ACCESS_KEY_ID=modelship",
                          "--from-literal=AWS_SECRET_ACCESS_KEY=modelship",
                          "--from-literal=AWS_DEFAULT_REGION=us-east-1")
    ns = Namespace(name, local_cluster)
    try:
        yield ns
    finally:
        if os.environ.get("MODELSHIP_KEEP_NAMESPACES") != "1":
            local_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
