"""The kind cluster's life: create it from ``config.cluster_config``, give its
nodes pod networking (``config.cni_config``, ``config.node_routes``) and the
host routes to pods and Services, load images, and delete it with the host
routes it needed. Every function is safe to run twice."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from modelship.kindcluster import config
from modelship.kindcluster.dockerhost import missing_capabilities, state_dir
from modelship.localcluster import detect, images, paths
from modelship.localcluster.control import AUDIT_POLICY
from modelship.localcluster.status import StepFailed

NETWORK = "kind"  # the Docker network kind makes (and leaves behind; `delete` removes it when empty)
CLUSTER_LABEL = "io.x-k8s.kind.cluster"
ROLE_LABEL = "io.x-k8s.kind.role"


def _run(argv: list[str], timeout: float = 600, check: bool = True, text: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, input=text,
                         stdin=None if text is not None else subprocess.DEVNULL)
    if check and res.returncode != 0:
        raise StepFailed(f"{Path(argv[0]).name} {' '.join(argv[1:3])} failed ({res.returncode}): "
                         f"{(res.stderr or res.stdout).strip()[-1500:]}")
    return res


def kind(*args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run([str(paths.kind_bin()), *args], timeout=timeout, check=check)


def kubeconfig_path(name: str) -> Path:
    return state_dir() / f"{name}.kubeconfig"


def audit_dir(name: str) -> Path:
    """Where the API server's audit log reaches the host (tests/e2e/test_rbac_audit.py reads it)."""
    return state_dir() / f"{name}-audit"


def audit_log(name: str) -> Path:
    return audit_dir(name) / config.AUDIT_LOG


def kubectl(name: str, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run([str(paths.kube_bin("kubectl")), "--kubeconfig", str(kubeconfig_path(name)), *args],
                timeout=timeout, check=check)


def exists(name: str) -> bool:
    res = kind("get", "clusters", check=False, timeout=60)
    return name in res.stdout.split()


def create(name: str, node_image: str, workers: int) -> Path:
    """``kind create cluster`` (no CNI yet: ``setup_network`` gives the nodes theirs); the kubeconfig."""
    audit = audit_dir(name)
    shutil.rmtree(audit, ignore_errors=True)  # a fresh log per cluster, as the local cluster's
    audit.mkdir(parents=True)
    (audit / config.AUDIT_POLICY_FILE).write_text(AUDIT_POLICY)
    cfg = config.cluster_config(
        name, node_image, workers=workers, pause_image=images.PAUSE_IMAGE,
        cgroup_v1=detect.cgroup_version() == 1, restrict_oom_score_adj="CAP_SYS_RESOURCE" in missing_capabilities(),
        audit_dir=str(audit))
    cfg_file = state_dir() / f"{name}.kind.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    kind("create", "cluster", "--config", str(cfg_file), "--kubeconfig", str(kubeconfig_path(name)),
         "--wait=0s", timeout=1200)
    return kubeconfig_path(name)


def node_containers(name: str) -> list[dict[str, Any]]:
    ids = _run(["docker", "ps", "-aq", "--filter", f"label={CLUSTER_LABEL}={name}"]).stdout.split()
    if not ids:
        return []
    return list(json.loads(_run(["docker", "inspect", *ids]).stdout))


def nodes(name: str) -> list[config.Node]:
    """The running nodes: container name, address on the kind network, podCIDR, role."""
    cidrs = {}
    res = kubectl(name, "get", "nodes", "-o", "json", check=False)
    if res.returncode == 0:
        cidrs = {n["metadata"]["name"]: (n.get("spec") or {}).get("podCIDR", "") for n in json.loads(res.stdout)["items"]}
    out = []
    for c in node_containers(name):
        if not c["State"]["Running"]:
            continue
        node = c["Name"].lstrip("/")
        ip = (c["NetworkSettings"]["Networks"].get(NETWORK) or {}).get("IPAddress", "")
        out.append(config.Node(node, ip, cidrs.get(node, ""), c["Config"]["Labels"].get(ROLE_LABEL, "worker")))
    return sorted(out, key=lambda n: (n.role != "control-plane", n.name))


def routes_file(name: str) -> Path:
    return state_dir() / f"{name}.routes.json"


def setup_network(name: str, timeout: float = 120) -> list[config.Node]:
    """Write each node's CNI config, route pod CIDRs between nodes, and route the host to pods and Services."""
    deadline = time.monotonic() + timeout
    found = nodes(name)
    while not found or not all(n.pod_cidr for n in found):
        if time.monotonic() > deadline:
            raise StepFailed(f"nodes got no podCIDR within {timeout:.0f}s: {found}")
        time.sleep(1)
        found = nodes(name)
    for node in found:
        _run(["docker", "exec", "-i", node.name, "sh", "-c", f"mkdir -p /etc/cni/net.d && cat > {config.CNI_FILE}"],
             text=config.cni_config(node.pod_cidr))
        for cidr, via in config.node_routes(found)[node.name]:
            _run(["docker", "exec", node.name, "ip", "route", "replace", cidr, "via", via])
    routes = config.host_routes(found)
    routes_file(name).write_text(json.dumps(routes))
    for cidr, via in routes:
        _run(["ip", "route", "replace", cidr, "via", via])
    return found


def remove_host_routes(name: str) -> None:
    f = routes_file(name)
    if not f.exists():
        return
    for cidr, via in json.loads(f.read_text()):
        _run(["ip", "route", "del", cidr, "via", via], check=False)
    f.unlink()


def wait_ready(name: str, timeout: float = 300) -> None:
    """Every node Ready, CoreDNS available, the default StorageClass's provisioner available."""
    deadline = time.monotonic() + timeout
    checks = [
        ("nodes", ["wait", "--for=condition=Ready", "node", "--all"]),
        ("CoreDNS", ["-n", "kube-system", "rollout", "status", "deployment/coredns"]),
        ("local-path-provisioner", ["-n", "local-path-storage", "rollout", "status",
                                    "deployment/local-path-provisioner"]),
    ]
    for what, args in checks:
        while True:
            left = deadline - time.monotonic()
            res = kubectl(name, *args, f"--timeout={max(1, int(left))}s", check=False, timeout=left + 30)
            if res.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise StepFailed(f"{what} not ready within {timeout:.0f}s: {(res.stderr or res.stdout)[-600:]}")
            time.sleep(2)


def load_archive(name: str, archive: Path, worker_only: bool = True) -> None:
    """``kind load image-archive`` into the workers (the control plane runs no workloads)."""
    targets = [n.name for n in nodes(name) if n.role != "control-plane" or not worker_only]
    kind("load", "image-archive", "--name", name, *(["--nodes", ",".join(targets)] if targets else []),
         str(archive), timeout=1800)


def gateway() -> str:
    """The host's address on the kind network: host services for pods listen there."""
    res = _run(["docker", "network", "inspect", NETWORK, "-f", "{{range .IPAM.Config}}{{.Gateway}} {{end}}"])
    for addr in res.stdout.split():
        if "." in addr:
            return addr
    raise StepFailed(f"the {NETWORK} network has no IPv4 gateway: {res.stdout!r}")


def delete(name: str) -> None:
    remove_host_routes(name)
    if exists(name):
        kind("delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig_path(name)), timeout=600)
    kubeconfig_path(name).unlink(missing_ok=True)
    Path(str(kubeconfig_path(name)) + ".node-ip").unlink(missing_ok=True)
    Path(str(kubeconfig_path(name)) + ".audit-log").unlink(missing_ok=True)
    shutil.rmtree(audit_dir(name), ignore_errors=True)
    if _run(["docker", "network", "inspect", NETWORK], check=False).returncode == 0:
        left = json.loads(_run(["docker", "network", "inspect", NETWORK]).stdout)[0].get("Containers") or {}
        if not left:
            _run(["docker", "network", "rm", NETWORK], check=False)
