"""What runs beside the cluster in the demo and the end-to-end tests.

A local S3 server (moto) on the node's address, so pods reach it, and the
operator as a host process against the cluster. Both are started and stopped
here; nothing is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
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
    server: Any = None  # the ThreadedMotoServer, for stop() and start()

    def stop(self) -> None:
        """Take the store down (its port refuses connections); what it holds stays in this process."""
        if self.server is not None:
            self.server.stop()
            self.server._server.server_close()  # moto's stop() leaves the socket open: connections would hang
            self.server = None

    def start(self) -> None:
        """Bring the store back on the same address, with the same buckets and objects."""
        from moto.server import ThreadedMotoServer

        if self.server is None:
            host, _, port = self.endpoint.removeprefix("http://").rpartition(":")
            self.server = ThreadedMotoServer(ip_address=host, port=int(port), verbose=False)
            self.server.start()

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
    store = S3(endpoint, client, server)
    try:
        yield store
    finally:
        store.stop()


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



# --- The operator as a pod, installed from the chart (the e2e suite and the demo). ---

RELEASE = "modelship"
RELEASE_NAMESPACE = "modelship-system"
POD_SELECTOR = "app.kubernetes.io/name=modelship,app.kubernetes.io/instance=modelship"


def chart_values(images: dict[str, str], s3: S3, **extra: Any) -> dict[str, Any]:
    """Helm values that point the chart at this stack's images and S3 store."""
    from modelship.images import helm_values  # what `make images` writes for a user's install

    values: dict[str, Any] = {
        **helm_values(images),
        "artifacts": {"store": f"s3://{BUCKET}/artifacts",
                      "s3": {"endpointUrl": s3.endpoint, "credentialsSecret": SECRET}},
    }
    values["image"]["pullPolicy"] = "Never"
    for key, value in extra.items():
        values[key] = value
    return values


@dataclass
class ChartOperator:
    """The operator as pods of the chart's Deployment. ``kill()`` is a kill -9 of the
    operator process from the host (the kubelet restarts the container), ``start()``
    waits until a pod is ready again, ``stop()`` uninstalls the release."""

    kubectl: Callable[..., subprocess.CompletedProcess[str]]
    helm: list[str]
    values_file: Path
    namespace: str = RELEASE_NAMESPACE
    release: str = RELEASE
    metrics_port: int = 8080
    webhook_port: int = 8082
    installed_at: float | None = None  # wall-clock time of the first install
    # Wall-clock windows of each upgrade's roll (until the old pod's grace period is surely over):
    # an old pod may be refused by the new RBAC then, e.g. after a switch to namespaced mode.
    rolls: list[tuple[float, float]] = field(default_factory=list)

    def adopt_crds(self) -> None:
        """Let the release take over CRDs applied without Helm (``kubectl apply -f crds/``),
        the way Helm documents: its ownership label and annotations on each."""
        for crd in ("models", "trainingjobs", "driftmonitors"):
            name = f"crd/{crd}.modelship.io"
            if self.kubectl("get", name, check=False).returncode != 0:
                continue
            self.kubectl("label", "--overwrite", name, "app.kubernetes.io/managed-by=Helm")
            self.kubectl("annotate", "--overwrite", name, f"meta.helm.sh/release-name={self.release}",
                         f"meta.helm.sh/release-namespace={self.namespace}")

    def install(self, timeout: float = 240) -> None:
        self.adopt_crds()
        self.upgrade(timeout=timeout)

    def upgrade(self, *set_values: str, timeout: float = 240) -> None:
        """``helm upgrade --install`` with the values file and any ``--set`` pairs; waits for a leader."""
        started = time.time()
        if self.installed_at is None:
            self.installed_at = started
        sets = [a for v in set_values for a in ("--set", v)]
        res = subprocess.run([*self.helm, "upgrade", "--install", self.release, str(CHART), "-n", self.namespace,
                              "--create-namespace", "-f", str(self.values_file), *sets, "--wait",
                              f"--timeout={int(timeout)}s"], capture_output=True, text=True, timeout=timeout + 30)
        if res.returncode != 0:
            raise RuntimeError(f"helm upgrade --install failed:\n{res.stderr}\n{self.log_tail()}")
        self.start(timeout)
        if started != self.installed_at:
            self.rolls.append((started, time.time() + 35))

    def pods(self) -> list[dict[str, Any]]:
        out = self.kubectl("get", "pods", "-n", self.namespace, "-l", POD_SELECTOR, "-o", "json")
        return list(json.loads(out.stdout)["items"])

    @staticmethod
    def _ready(pod: dict[str, Any]) -> bool:
        status = pod.get("status") or {}
        return bool(status.get("podIP")) and any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])

    def leader(self) -> dict[str, Any] | None:
        """The ready pod whose operator leads (modelship_leader 1), or None."""
        for pod in self.pods():
            if self._ready(pod) and self._leads(pod):
                return pod
        return None

    def _leads(self, pod: dict[str, Any], strict: bool = False) -> bool:
        """Whether the pod's operator reports modelship_leader 1. An unreadable /metrics counts
        as "not leading" unless ``strict``: then only a refused connection does (the operator
        serves /metrics before it campaigns and until it exits, so nothing listening means no
        process that could lead), and anything else (a timeout, a reset) raises: a sampler
        must not guess."""
        if not strict:
            return "modelship_leader 1.0" in self._get(pod, self.metrics_port, "/metrics", "", timeout=2)
        for attempt in range(2):
            try:
                return "modelship_leader 1.0" in self._get(pod, self.metrics_port, "/metrics",
                                                           timeout=2 if attempt == 0 else 6)
            except (urllib.error.URLError, ConnectionResetError, TimeoutError) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                if isinstance(reason, ConnectionRefusedError):
                    return False
                if attempt == 0 and isinstance(reason, (ConnectionResetError, TimeoutError)):
                    # A process closing its listener as it exits, or one busy for 2 s on two
                    # cores: ask once more, longer.
                    time.sleep(0.2)
                    continue
                if (pod.get("metadata") or {}).get("deletionTimestamp") and not self._running(pod):
                    return False  # deleted meanwhile: its network went with its process
                raise
        raise AssertionError("unreachable")

    def _running(self, pod: dict[str, Any]) -> bool:
        """Whether the pod still exists and runs (read afresh)."""
        name = pod["metadata"]["name"]
        return any(p["metadata"]["name"] == name and (p.get("status") or {}).get("phase") == "Running"
                   and not (p.get("metadata") or {}).get("deletionTimestamp") for p in self.pods())

    def _get(self, pod: dict[str, Any], port: int, path: str, default: str | None = None,
             timeout: float = 5) -> str:
        try:
            with urllib.request.urlopen(f"http://{pod['status']['podIP']}:{port}{path}", timeout=timeout) as r:
                return str(r.read().decode())
        except OSError:
            if default is not None:
                return default
            raise

    def start(self, timeout: float = 120) -> None:
        wait_until(self.leader, timeout, "a leading operator pod", interval=1.0)

    def healthy(self) -> bool:
        return self.leader() is not None

    def running(self) -> bool:
        return any(self._ready(p) for p in self.pods())

    def host_pids(self) -> list[int]:
        """Host PIDs of the operator processes in the pods (the image's venv runs `modelship operator`)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].startswith(b"/opt/modelship/bin/") and b"operator" in argv[1:] \
                    and any(a.endswith(b"modelship") for a in argv[:2]):
                pids.append(int(entry.name))
        return pids

    def host_pid_of(self, pod_name: str) -> int | None:
        """The host PID of the operator in pod ``pod_name`` (the chart passes MODELSHIP_POD_NAME)."""
        marker = f"MODELSHIP_POD_NAME={pod_name}".encode()
        for pid in self.host_pids():
            try:
                if marker in (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0"):
                    return pid
            except OSError:
                continue
        return None

    def leaders(self, exclude: tuple[str, ...] = (), strict: bool = False) -> list[str]:
        """Names of the pods whose operator says it leads, read one after another (``exclude``:
        pods not to ask, e.g. one whose process is frozen and would only time out). ``strict``:
        a running pod whose /metrics cannot be read raises instead of counting as a follower."""
        running = [p for p in self.pods() if (p.get("status") or {}).get("podIP")
                   and (p.get("status") or {}).get("phase") == "Running"]  # a leader need not be Ready yet
        return [p["metadata"]["name"] for p in running
                if p["metadata"]["name"] not in exclude
                and self._leads(p, strict)]

    def kill(self) -> None:
        """kill -9 every operator process of the release (from the host, as a crash would)."""
        for pid in self.host_pids():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not self.leader(), 30, "the killed operator to stop answering", interval=0.5)

    def stop(self) -> None:
        subprocess.run([*self.helm, "uninstall", self.release, "-n", self.namespace, "--wait", "--timeout=120s"],
                       capture_output=True, text=True, timeout=180)

    def metrics(self) -> str:
        pod = wait_until(self.leader, 60, "a leading operator pod")
        return self._get(pod, self.metrics_port, "/metrics")

    @property
    def metrics_target(self) -> str:
        """host:port of the leader's /metrics (for a Prometheus on the host)."""
        pod = wait_until(self.leader, 60, "a leading operator pod")
        return f"{pod['status']['podIP']}:{self.metrics_port}"

    @property
    def webhook_service_url(self) -> str:
        """/alerts through the chart's webhook Service, as Alertmanager in the cluster would post."""
        svc = json.loads(self.kubectl("get", "service", "-n", self.namespace, f"{self.release}-webhook",
                                      "-o", "json").stdout)
        return f"http://{svc['spec']['clusterIP']}:{self.webhook_port}/alerts"

    @property
    def webhook_url(self) -> str:
        pod = wait_until(self.leader, 60, "a leading operator pod")
        return f"http://{pod['status']['podIP']}:{self.webhook_port}/alerts"

    def log_tail(self, lines: int = 60) -> str:
        out = self.kubectl("logs", "-n", self.namespace, "-l", POD_SELECTOR, f"--tail={lines}",
                           "--all-containers", "--prefix", check=False)
        return str(out.stdout)


CHART = Path(__file__).resolve().parents[4] / "charts" / "modelship"


@contextmanager
def chart_operator(kubectl: Callable[..., subprocess.CompletedProcess[str]], kubeconfig: Path,
                   values: dict[str, Any], workdir: Path,
                   secrets: dict[str, dict[str, str]] | None = None, keep: bool = False) -> Iterator[ChartOperator]:
    """Install the chart with ``values`` (and ``secrets`` made first in the release namespace),
    yield the handle, uninstall at the end."""
    from modelship.localcluster import paths

    workdir.mkdir(parents=True, exist_ok=True)
    values_file = workdir / "values.json"
    values_file.write_text(json.dumps(values, indent=2))
    helm = [str(paths.helm_bin()), "--kubeconfig", str(kubeconfig)]
    handle = ChartOperator(kubectl, helm, values_file)
    if kubectl("get", "namespace", handle.namespace, check=False).returncode != 0:
        kubectl("create", "namespace", handle.namespace)
    for name, data in (secrets or {}).items():
        manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": handle.namespace},
                    "stringData": data}
        kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    handle.install()
    try:
        yield handle
    finally:
        (workdir / "operator.log").write_text(handle.log_tail(2000))
        if not keep:
            handle.stop()
