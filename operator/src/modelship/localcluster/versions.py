"""The pinned versions of everything the local cluster runs, in one place.

Cache keys, the generated Go module and the version stamps all derive from
these; changing one here is the only way to move a component.
"""

from __future__ import annotations

KUBERNETES = "v1.37.2"
ETCD = "v3.7.0"  # the etcd release k8s.io/kubernetes KUBERNETES requires
COREDNS = "v1.15.0"
LOCAL_PATH_PROVISIONER = "v0.0.30"
HELM = "v3.22.0"
# Third-party CRDs the chart's objects and the operator's optional features use
# (ServiceMonitor, PodMonitor, PrometheusRule; HTTPRoute), taken from these Go
# modules on the module proxy (thirdparty.py).
PROMETHEUS_OPERATOR = "v0.85.0"
GATEWAY_API = "v1.6.3"
# Prometheus v3 for the tests with a real Prometheus (kubernetes_sd); its Go module is v0.<minor>.<patch>.
PROMETHEUS = "v0.316.0"
# Build tags that leave out every service discovery but Kubernetes and file (without them the
# build fails: a nomad dependency is missing from the module proxy).
PROMETHEUS_TAGS = ("remove_all_sd", "enable_kubernetes_sd", "enable_file_sd")

# kind (`make e2e-kind`, the 3-node cluster the drills run on): the Go module, and
# crictl for its node image (`kind load` asks the node's CRI; Debian has no cri-tools).
KIND = "v0.33.0"
CRI_TOOLS = "v1.37.0"
# Debian packages `make e2e-kind` installs when missing (the daemon kind drives).
KIND_APT_PACKAGES = ("docker.io",)

# Argo Rollouts' controller, the peer `make bench` compares rollouts with (benches/rollouts),
# built from its Go module in our wrapper module localcluster/argomod (see its go.mod).
ARGO_ROLLOUTS = "v1.10.2"

# Debian packages `local build` installs when missing.
APT_PACKAGES = (
    "containerd",
    "runc",
    "containernetworking-plugins",
    "nftables",
    "iptables",
    "buildah",
    "debootstrap",
    "gcc",
    "libc6-dev",
    "conntrack",
    "busybox-static",
)


def staging_version(kubernetes: str = KUBERNETES) -> str:
    """v1.37.2 -> v0.37.2: the tag of the k8s.io/<staging> modules."""
    _major, minor, patch = kubernetes.lstrip("v").split(".")
    return f"v0.{minor}.{patch}"
