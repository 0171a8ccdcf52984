"""The bring-up as an ordered list of named steps (kind's actions, STYLE.md
point 10). Each step starts, waits until ready and stops; stopping a step
that is not running does nothing, so teardown can walk the list backwards
any number of times."""

from __future__ import annotations

from dataclasses import dataclass

from modelship.localcluster import addons, control, node
from modelship.localcluster.context import Context


@dataclass(frozen=True)
class Named:
    """Binds a title to a module's start/wait/stop functions."""

    name: str
    title: str
    module: object

    def start(self, ctx: Context) -> None:
        getattr(self.module, f"start_{self.name.replace('-', '_')}")(ctx)

    def wait(self, ctx: Context) -> None:
        getattr(self.module, f"wait_{self.name.replace('-', '_')}")(ctx)

    def stop(self, ctx: Context) -> None:
        getattr(self.module, f"stop_{self.name.replace('-', '_')}")(ctx)


Step = Named


def bring_up() -> list[Step]:
    return [
        Named("host", "Preparing host (certificates, kubeconfigs, sysctls)", node),
        Named("etcd", "Starting etcd", control),
        Named("apiserver", "Starting kube-apiserver (waiting for /readyz)", control),
        Named("controller_manager", "Starting kube-controller-manager", control),
        Named("scheduler", "Starting kube-scheduler", control),
        Named("containerd", "Starting containerd and loading images", node),
        Named("kubelet", "Starting kubelet (waiting for a Ready node)", node),
        Named("kube_proxy", "Starting kube-proxy (nftables)", node),
        Named("coredns", "Installing CoreDNS behind kube-dns", addons),
        Named("storage", "Installing the local-path StorageClass", addons),
    ]
