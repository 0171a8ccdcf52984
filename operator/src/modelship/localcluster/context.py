"""What every step of a bring-up shares: paths, node facts, addresses, kubectl."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from modelship.localcluster import detect, paths
from modelship.localcluster.paths import ClusterPaths
from modelship.localcluster.status import StepFailed

SERVICE_CIDR = "10.96.0.0/16"
DNS_IP = "10.96.0.10"
POD_CIDR = "10.244.0.0/16"
NODE_POD_CIDR = "10.244.0.0/24"
CLUSTER_DOMAIN = "cluster.local"
API_PORT = 6443

# Every port the cluster binds on the host, checked free before start-up.
PORTS = {
    "etcd": (2379, 2380, 2381),
    "kube-apiserver": (API_PORT,),
    "kube-controller-manager": (10257,),
    "kube-scheduler": (10259,),
    "kubelet": (10248, 10250),
    "kube-proxy": (10249, 10256),
}


@dataclass(frozen=True)
class Context:
    paths: ClusterPaths
    node: str
    node_ip: str
    cgroup_version: int
    cap_sys_resource: bool

    @classmethod
    def detect(cls, cluster: ClusterPaths) -> Context:
        return cls(
            paths=cluster,
            node=detect.node_name(),
            node_ip=detect.primary_ip(),
            cgroup_version=detect.cgroup_version(),
            cap_sys_resource=detect.has_capability(detect.CAP_SYS_RESOURCE),
        )

    @property
    def api_url(self) -> str:
        """Where every kubeconfig points: the API server listens on the node's address only."""
        return f"https://{self.node_ip}:{API_PORT}"

    def pki(self, name: str) -> str:
        return str(self.paths.pki / name)

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120) -> str:
        argv = [str(paths.kube_bin("kubectl")), "--kubeconfig", str(self.paths.kubeconfig_for("admin")), *args]
        res = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise StepFailed(f"kubectl {' '.join(args[:3])} failed: {res.stderr.strip()[-600:]}")
        return res.stdout
