"""The local cluster behaves like a real one (issue 11), judged with the
built kubectl against manifests written here. Marked `cluster`; each test
works in its own namespace."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from modelship.localcluster import images

pytestmark = pytest.mark.cluster
BUSYBOX = images.HELPER_IMAGE


@pytest.fixture
def ns(local_cluster: Any) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    local_cluster.kubectl("create", "namespace", name)
    yield name
    local_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def apply(cluster: Any, *docs: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))


def wait_for(what: str, check: Any, timeout: float = 90, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def pod(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", **spec,
                     "containers": [{"name": "main", "image": BUSYBOX, "command": command}]}}


def pod_phase(cluster: Any, ns: str, name: str) -> str:
    return str(cluster.kubectl("-n", ns, "get", "pod", name, "-o", "jsonpath={.status.phase}", check=False).stdout)


def run_pod(cluster: Any, ns: str, name: str, command: list[str], timeout: float = 90) -> str:
    """Run a busybox pod to completion; returns its log."""
    cluster.kubectl("-n", ns, "apply", "-f", "-", stdin=yaml.safe_dump(pod(name, command)))
    phase = wait_for(f"pod {name} to finish",
                     lambda: pod_phase(cluster, ns, name) in ("Succeeded", "Failed") and pod_phase(cluster, ns, name),
                     timeout)
    log = cluster.kubectl("-n", ns, "logs", name).stdout
    assert phase == "Succeeded", log
    return str(log)


def test_versions_and_ready_node(local_cluster: Any) -> None:
    out = json.loads(local_cluster.kubectl("version", "-o", "json").stdout)
    assert out["clientVersion"]["gitVersion"] == out["serverVersion"]["gitVersion"]
    assert out["serverVersion"]["gitVersion"].startswith("v1.")
    nodes = json.loads(local_cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ready = [c["status"] for n in nodes for c in n["status"]["conditions"] if c["type"] == "Ready"]
    assert ready == ["True"]


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.modelship.io"},
    "spec": {"group": "test.modelship.io", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "additionalPrinterColumns": [{"name": "Size", "type": "integer",
                                                         "jsonPath": ".spec.size"}],
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                               "type": "object",
                               "x-kubernetes-validations": [{"rule": "self.size <= self.max",
                                                             "message": "size must not exceed max"}],
                               "properties": {"size": {"type": "integer", "default": 3},
                                              "max": {"type": "integer", "default": 10}}}}}}}]},
}


def test_crd_defaults_cel_and_printer_columns(local_cluster: Any, ns: str) -> None:
    apply(local_cluster, CRD)
    local_cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.test.modelship.io", "--timeout=60s")
    widget = {"apiVersion": "test.modelship.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    wait_for("the CRD to serve", lambda: local_cluster.kubectl(
        "-n", ns, "apply", "-f", "-", stdin=yaml.safe_dump(widget), check=False).returncode == 0, 30)
    got = json.loads(local_cluster.kubectl("-n", ns, "get", "widget", "w", "-o", "json").stdout)
    assert got["spec"] == {"size": 3, "max": 10}
    table = local_cluster.kubectl("-n", ns, "get", "widgets").stdout
    header, row = table.strip().splitlines()
    assert header.split() == ["NAME", "SIZE"] and row.split() == ["w", "3"]
    bad = {**widget, "metadata": {"name": "bad"}, "spec": {"size": 11}}
    res = local_cluster.kubectl("-n", ns, "apply", "-f", "-", stdin=yaml.safe_dump(bad), check=False)
    assert res.returncode != 0 and "size must not exceed max" in res.stderr


def test_service_dns_from_a_pod(local_cluster: Any, ns: str) -> None:
    apply(local_cluster, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
                          "spec": {"selector": {"app": "none"}, "ports": [{"port": 80}]}})
    ip = local_cluster.kubectl("-n", ns, "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}").stdout
    # busybox's nslookup prints (and exits 1 for) the search domains that miss, so judge the output
    log = run_pod(local_cluster, ns, "dns", ["sh", "-c",
                  f"nslookup web.{ns}.svc.cluster.local; nslookup web; "
                  "nslookup kubernetes.default.svc.cluster.local; true"])
    assert log.count(ip) >= 2 and "10.96.0.1" in log, log


def test_failing_job_reports_exit_code_and_message(local_cluster: Any, ns: str) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "fails", "namespace": ns},
           "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
               "name": "main", "image": BUSYBOX,
               "command": ["sh", "-c", "echo 'out of cheese' > /dev/termination-log; exit 3"]}]}}}}
    apply(local_cluster, job)
    local_cluster.kubectl("-n", ns, "wait", "--for=condition=Failed", "job/fails", "--timeout=90s")
    pods = json.loads(local_cluster.kubectl("-n", ns, "get", "pods", "-l", "job-name=fails", "-o", "json").stdout)
    term = pods["items"][0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3 and term["message"].strip() == "out of cheese"


def test_logs_and_exec(local_cluster: Any, ns: str) -> None:
    local_cluster.kubectl("-n", ns, "apply", "-f", "-", stdin=yaml.safe_dump(
        pod("talk", ["sh", "-c", "echo hello-from-pod; sleep 300"], terminationGracePeriodSeconds=1)))
    local_cluster.kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/talk", "--timeout=60s")
    wait_for("the log line", lambda: "hello-from-pod" in local_cluster.kubectl("-n", ns, "logs", "talk").stdout, 20)
    out = local_cluster.kubectl("-n", ns, "exec", "talk", "--", "sh", "-c", "echo $((6*7))").stdout
    assert out.strip() == "42"


def test_service_account_token_is_subject_to_rbac(local_cluster: Any, ns: str) -> None:
    token = local_cluster.kubectl("-n", ns, "create", "token", "default").stdout.strip()
    kc = yaml.safe_load(local_cluster.kubeconfig.read_text())
    ca = ssl.create_default_context(cadata=base64.b64decode(
        kc["clusters"][0]["cluster"]["certificate-authority-data"]).decode())
    base = f"https://{local_cluster.node_ip}:6443" if local_cluster.node_ip != "127.0.0.1" else \
        kc["clusters"][0]["cluster"]["server"]

    def status(path: str) -> int:
        req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=ca))
        try:
            with opener.open(req, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return int(err.code)

    assert status("/api") == 200
    assert status("/api/v1/namespaces/kube-system/secrets") == 403


def test_garbage_collection(local_cluster: Any, ns: str) -> None:
    apply(local_cluster, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner", "namespace": ns}})
    uid = local_cluster.kubectl("-n", ns, "get", "cm", "owner", "-o", "jsonpath={.metadata.uid}").stdout
    apply(local_cluster, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "child", "namespace": ns,
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}})
    local_cluster.kubectl("-n", ns, "delete", "cm", "owner")
    wait_for("the dependent to be collected", lambda: local_cluster.kubectl(
        "-n", ns, "get", "cm", "child", check=False).returncode != 0, 60)


def test_pvc_binds_and_a_pod_writes(local_cluster: Any, ns: str) -> None:
    apply(local_cluster, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                          "metadata": {"name": "data", "namespace": ns},
                          "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}})
    writer = pod("writer", ["sh", "-c", "echo kept > /data/f && cat /data/f"])
    writer["spec"]["containers"][0]["volumeMounts"] = [{"name": "d", "mountPath": "/data"}]
    writer["spec"]["volumes"] = [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]
    local_cluster.kubectl("-n", ns, "apply", "-f", "-", stdin=yaml.safe_dump(writer))
    wait_for("the writer", lambda: pod_phase(local_cluster, ns, "writer") == "Succeeded", 120)
    phase = local_cluster.kubectl("-n", ns, "get", "pvc", "data", "-o", "jsonpath={.status.phase}").stdout
    assert phase == "Bound"
    assert local_cluster.kubectl("-n", ns, "logs", "writer").stdout.strip() == "kept"


def _web(ns: str, version: str) -> dict[str, Any]:
    labels = {"app": "web"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                     "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "terminationGracePeriodSeconds": 15,
                         "containers": [{
                             "name": "web", "image": BUSYBOX,
                             "command": ["sh", "-c", f"mkdir -p /www && echo {version} > /www/index.html && "
                                         "exec httpd -f -p 8080 -h /www"],
                             "ports": [{"containerPort": 8080}],
                             "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                             "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
                         }]}}}}


def test_rolling_update_under_load_has_no_failed_requests(local_cluster: Any, ns: str) -> None:
    apply(local_cluster, _web(ns, "v1"), {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    local_cluster.kubectl("-n", ns, "rollout", "status", "deploy/web", "--timeout=120s")
    ip = local_cluster.kubectl("-n", ns, "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}").stdout
    url = f"http://{ip}/"
    wait_for("the ClusterIP to answer", lambda: _get(url) == "v1", 30)
    seen: dict[str, int] = {}
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                body = _get(url)
                seen[body] = seen.get(body, 0) + 1
            except Exception as exc:
                failures.append(repr(exc))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        time.sleep(1)
        apply(local_cluster, _web(ns, "v2"))
        local_cluster.kubectl("-n", ns, "rollout", "status", "deploy/web", "--timeout=180s")
        time.sleep(2)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=15)
    assert failures == [], f"{len(failures)} failed of {sum(seen.values()) + len(failures)}: {failures[:3]}"
    assert seen.get("v1", 0) > 0 and seen.get("v2", 0) > 0, seen


def _get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as resp:
        return str(resp.read().decode().strip())


def test_an_image_built_here_runs_under_its_short_name(local_cluster: Any, ns: str, tmp_path: Any) -> None:
    if local_cluster.data_dir is None:
        pytest.skip("images are loaded into the local cluster only")
    from modelship.localcluster.paths import ClusterPaths

    (tmp_path / "Dockerfile").write_text(
        "FROM debian:bookworm-slim AS base\nARG GREETING=unset\nRUN echo \"$GREETING\" > /built\n"
        "FROM base AS final\nCMD [\"cat\", \"/built\"]\n")
    name = images.build_image("modelship-test/hello:1", tmp_path, target="final", build_args={"GREETING": "built"},
                              cluster=ClusterPaths.make(local_cluster.data_dir))
    assert name == "docker.io/modelship-test/hello:1"
    spec = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "modelship-test/hello:1"}]}}
    local_cluster.kubectl("-n", ns, "apply", "-f", "-", stdin=yaml.safe_dump(spec))
    wait_for("the pod", lambda: pod_phase(local_cluster, ns, "hello") == "Succeeded", 60)
    assert local_cluster.kubectl("-n", ns, "logs", "hello").stdout.strip() == "built"
    pod_json = json.loads(local_cluster.kubectl("-n", ns, "get", "pod", "hello", "-o", "json").stdout)
    assert pod_json["status"]["containerStatuses"][0]["imageID"]


def test_status_names_the_build_command_for_a_missing_image(local_cluster: Any, ns: str) -> None:
    if local_cluster.data_dir is None:
        pytest.skip("`local status` describes the local cluster only")
    spec = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "missing"},
            "spec": {"containers": [{"name": "main", "image": "modelship-test/missing:1",
                                     "imagePullPolicy": "Never"}]}}  # never contact a registry
    local_cluster.kubectl("-n", ns, "apply", "-f", "-", stdin=yaml.safe_dump(spec))
    import subprocess
    import sys

    def status() -> str:
        return subprocess.run([sys.executable, "-m", "modelship.cli", "local", "status", "--data-dir",
                               str(local_cluster.data_dir)], capture_output=True, text=True, check=False).stdout

    out = wait_for("status to name the image", lambda: "modelship-test/missing:1" in (s := status()) and s, 60)
    assert "modelship local image build -t modelship-test/missing:1" in out


# --- The API server is bound to the node's address (issue 22, item 4) ---------------


def _listeners(port: int) -> list[str]:
    """Local addresses holding a listening TCP socket on ``port`` (IPv4 and IPv6), from /proc/net."""
    import ipaddress
    from pathlib import Path

    found = []
    for table in ("tcp", "tcp6"):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.append(str(ipaddress.ip_address(words)))
    return found


def _host_ipv4_addresses() -> set[str]:
    import socket

    from modelship.localcluster import detect

    return {ip for _, name in socket.if_nameindex() if (ip := detect._iface_ipv4(name))}


def test_api_server_answers_on_the_node_address_only(local_cluster: Any) -> None:
    import socket

    if local_cluster.data_dir is None:
        pytest.skip("a cluster this session did not start (KUBECONFIG): its API server is not ours to check")
    node_ip = local_cluster.node_ip
    assert node_ip != "127.0.0.1", "the node address should be the host's primary, non-loopback address"
    assert _listeners(6443) == [node_ip], (
        f"kube-apiserver listens on {_listeners(6443)}, not only {node_ip}"
        + ("" if local_cluster.started_here else " (this session reused a cluster it did not start: was it "
           "started by code before the API server was bound to the node address?)"))
    kc = yaml.safe_load(local_cluster.kubeconfig.read_text())
    assert kc["clusters"][0]["cluster"]["server"] == f"https://{node_ip}:6443"

    def connects(address: str) -> bool:
        try:
            with socket.create_connection((address, 6443), timeout=3):
                return True
        except OSError:
            return False

    others = (_host_ipv4_addresses() | {"127.0.0.1"}) - {node_ip}
    assert connects(node_ip)
    assert {a for a in others if connects(a)} == set(), f"the API server answered on {others}"
    # TLS and HTTP on the node address, with the CA the kubeconfig embeds.
    ca = ssl.create_default_context(cadata=base64.b64decode(
        kc["clusters"][0]["cluster"]["certificate-authority-data"]).decode())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ca))
    try:
        with opener.open(f"https://{node_ip}:6443/readyz", timeout=10) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as err:
        status = int(err.code)
    assert status in (200, 401, 403)
    # Pods still reach it: the `kubernetes` Service's endpoint is the node address.
    slices = json.loads(local_cluster.kubectl("get", "endpointslices", "-n", "default", "-l",
                                              "kubernetes.io/service-name=kubernetes", "-o", "json").stdout)
    endpoints = {(a, p["port"]) for s in slices["items"] for e in s["endpoints"] for a in e["addresses"]
                 for p in s["ports"]}
    assert endpoints == {(node_ip, 6443)}


def test_pods_reach_the_api_server_through_its_service(local_cluster: Any, ns: str) -> None:
    """With the API server on the node address only, a pod still connects to the `kubernetes` Service."""
    probe = pod("api", ["sh", "-c", "nc -w 5 kubernetes.default.svc.cluster.local 443 </dev/null && echo reached"])
    local_cluster.kubectl("-n", ns, "apply", "-f", "-", stdin=yaml.safe_dump(probe))
    wait_for("the probe pod", lambda: pod_phase(local_cluster, ns, "api") in ("Succeeded", "Failed"), 120)
    assert pod_phase(local_cluster, ns, "api") == "Succeeded", local_cluster.kubectl("-n", ns, "logs", "api").stdout
    assert "reached" in local_cluster.kubectl("-n", ns, "logs", "api").stdout
