"""A cluster for a test session: the one KUBECONFIG names, the local cluster
already running from the default data dir, or a fresh `local up --detach`
that is stopped at the end. Used by the `local_cluster` fixture in
tests/conftest.py; other suites can call `session()` directly."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from modelship.localcluster import locks, paths
from modelship.localcluster.paths import ClusterPaths


@dataclass(frozen=True)
class LocalCluster:
    kubeconfig: Path
    node_ip: str  # host services for pods listen here (127.0.0.1 in a pod is the pod)
    data_dir: Path | None  # None for a cluster we did not start
    started_here: bool
    audit_file: Path | None = None  # the API server's audit log where the host can read it (kind's)

    @property
    def kubectl_bin(self) -> str:
        built = paths.kube_bin("kubectl")
        return str(built) if built.exists() else "kubectl"

    @property
    def audit_log(self) -> Path | None:
        if self.audit_file is not None:
            return self.audit_file
        return ClusterPaths.make(self.data_dir).audit_log if self.data_dir else None

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([self.kubectl_bin, "--kubeconfig", str(self.kubeconfig), *args],
                             input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}): {res.stderr}")
        return res

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelship.cli", "local", *args],
                          text=True, check=False, timeout=3600)


@contextmanager
def machine_lock(timeout: float = 3600) -> Iterator[None]:
    """One local-cluster session per machine (the ports are the machine's): a
    second session waits here instead of stopping the first one's cluster."""
    from modelship.localcluster.status import line

    with locks.flock(locks.session_lock_path(), timeout, "another local-cluster session", on_wait=line):
        yield


@contextmanager
def session(data_dir: str | Path | None = None, keep: bool = False) -> Iterator[LocalCluster]:
    """``keep``: leave a cluster started here running at the end (the demo's --keep)."""
    given = os.environ.get("KUBECONFIG")
    if given and Path(given).exists():
        ip_file = Path(given + ".node-ip")
        ip = ip_file.read_text().strip() if ip_file.exists() else "127.0.0.1"
        audit_file = Path(given + ".audit-log")  # written by `modelship kind` beside its kubeconfig
        audit = Path(audit_file.read_text().strip()) if audit_file.exists() else None
        yield LocalCluster(Path(given), ip, None, started_here=False, audit_file=audit)
        return
    with machine_lock(), _local_session(data_dir, keep) as cluster:
        yield cluster


@contextmanager
def _local_session(data_dir: str | Path | None, keep: bool) -> Iterator[LocalCluster]:
    from modelship.localcluster import cluster

    p = cluster.load_paths(str(data_dir) if data_dir else None)
    if cluster.running(p) and p.node_ip_file.exists():
        yield LocalCluster(p.kubeconfig, p.node_ip_file.read_text().strip(), p.data, started_here=False)
        return
    res = _cli("up", "--detach", "--data-dir", str(p.data))
    if res.returncode != 0:
        raise RuntimeError(f"`modelship local up --detach` failed ({res.returncode}); see {p.logs}")
    try:
        yield LocalCluster(p.kubeconfig, p.node_ip_file.read_text().strip(), p.data, started_here=True)
    finally:
        if not keep:
            _cli("down", "--data-dir", str(p.data))
