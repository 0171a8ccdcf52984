"""Where the local cluster keeps things: the build cache and one data dir.

The cache (binaries, base image, image archives) is keyed by the pinned
versions and lives outside the checkout; everything a running cluster makes
(state, logs, certificates, kubeconfigs) lives under its data dir.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from modelship.localcluster import versions


def cache_root() -> Path:
    base = os.environ.get("MODELSHIP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "modelship"
    )
    return Path(base)


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "modelship" / "local"


def bin_dir(component: str, version: str) -> Path:
    return cache_root() / "bin" / f"{component}-{version}"


def kube_bin(name: str) -> Path:
    return bin_dir("kubernetes", versions.KUBERNETES) / name


def etcd_bin() -> Path:
    return bin_dir("etcd", versions.ETCD) / "etcd"


def coredns_bin() -> Path:
    return bin_dir("coredns", versions.COREDNS) / "coredns"


def local_path_bin() -> Path:
    return bin_dir("local-path-provisioner", versions.LOCAL_PATH_PROVISIONER) / "local-path-provisioner"


def helm_bin() -> Path:
    return bin_dir("helm", versions.HELM) / "helm"


def prometheus_bin() -> Path:
    return bin_dir("prometheus", versions.PROMETHEUS) / "prometheus"


def kind_bin() -> Path:
    return bin_dir("kind", versions.KIND) / "kind"


def crictl_bin() -> Path:
    return bin_dir("crictl", versions.CRI_TOOLS) / "crictl"


def argo_rollouts_bin() -> Path:
    return bin_dir("argo-rollouts", versions.ARGO_ROLLOUTS) / "rollouts-controller"


def cri_stop_bin() -> Path:
    return bin_dir("cri-stop-all", versions.KUBERNETES) / "cri-stop-all"


def pause_bin() -> Path:
    return bin_dir("pause", versions.KUBERNETES) / "pause"


@dataclass(frozen=True)
class ClusterPaths:
    """Every path of one cluster, derived from its data dir and kubeconfig."""

    data: Path
    kubeconfig: Path

    @classmethod
    def make(cls, data_dir: str | Path | None = None, kubeconfig: str | Path | None = None) -> ClusterPaths:
        data = Path(data_dir) if data_dir else default_data_dir()
        kc = Path(kubeconfig) if kubeconfig else data / "kubeconfig"
        return cls(data=data.absolute(), kubeconfig=kc.absolute())

    @property
    def pki(self) -> Path:
        return self.data / "pki"

    @property
    def logs(self) -> Path:
        return self.data / "logs"

    @property
    def run(self) -> Path:
        return self.data / "run"

    @property
    def etcd(self) -> Path:
        return self.data / "etcd"

    @property
    def config(self) -> Path:
        return self.data / "config"

    @property
    def containerd_root(self) -> Path:
        return self.data / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.run / "containerd"

    @property
    def containerd_sock(self) -> Path:
        return self.run / "containerd.sock"

    @property
    def kubelet(self) -> Path:
        return self.data / "kubelet"

    @property
    def cni_conf(self) -> Path:
        return self.config / "cni"

    @property
    def cni_ipam(self) -> Path:
        return self.data / "cni-ipam"

    @property
    def storage(self) -> Path:
        return self.data / "storage"

    @property
    def audit_log(self) -> Path:
        return self.logs / "audit.log"

    @property
    def node_ip_file(self) -> Path:
        return self.kubeconfig.with_name(self.kubeconfig.name + ".node-ip")

    @property
    def state_file(self) -> Path:
        """Records the kubeconfig path, so `down`/`status` find the cluster by data dir."""
        return self.data / "cluster.json"

    def kubeconfig_for(self, component: str) -> Path:
        return self.config / f"{component}.kubeconfig"
