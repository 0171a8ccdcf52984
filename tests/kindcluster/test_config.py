"""The kind cluster as data: nodes, the patches this host needs, pod networking."""

from __future__ import annotations

import json

import pytest
import yaml

from modelship.kindcluster import config as c
from modelship.localcluster import versions


@pytest.mark.parametrize(("cgroup_v1", "restrict"), [(True, True), (False, False), (True, False)])
def test_cluster_config(cgroup_v1: bool, restrict: bool) -> None:
    cfg = c.cluster_config("e2e", "node:1", workers=2, pause_image="docker.io/modelship/local-pause:v1",
                           cgroup_v1=cgroup_v1, restrict_oom_score_adj=restrict)
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4" and cfg["name"] == "e2e"
    assert [n["role"] for n in cfg["nodes"]] == ["control-plane", "worker", "worker"]
    assert {n["image"] for n in cfg["nodes"]} == {"node:1"}
    assert cfg["networking"]["disableDefaultCNI"] is True
    containerd = cfg["containerdConfigPatches"][0]
    assert 'sandbox_image = "docker.io/modelship/local-pause:v1"' in containerd
    assert ("restrict_oom_score_adj = true" in containerd) is restrict
    docs = [yaml.safe_load(p) for p in cfg["kubeadmConfigPatches"]]
    cluster = next(d for d in docs if d["kind"] == "ClusterConfiguration")
    assert cluster["imageRepository"] == c.IMAGE_REPOSITORY
    assert cluster["dns"]["imageTag"] == versions.COREDNS
    assert cluster["etcd"]["local"]["imageTag"] == c.ETCD_TAG
    kubelet = [d for d in docs if d["kind"] == "KubeletConfiguration"]
    assert kubelet == ([{"kind": "KubeletConfiguration", "failCgroupV1": False}] if cgroup_v1 else [])
    yaml.safe_dump(cfg)  # serialisable as kind reads it


def test_the_audit_log_reaches_the_host() -> None:
    """The API server writes its audit log into a host directory mounted through the control-plane
    node (tests/e2e/test_rbac_audit.py reads it there, as on the local cluster)."""
    plain = c.cluster_config("e2e", "node:1", workers=2, pause_image="p", cgroup_v1=False,
                             restrict_oom_score_adj=False)
    assert "extraMounts" not in plain["nodes"][0]
    assert "apiServer" not in yaml.safe_load(plain["kubeadmConfigPatches"][0])
    cfg = c.cluster_config("e2e", "node:1", workers=2, pause_image="p", cgroup_v1=False,
                           restrict_oom_score_adj=False, audit_dir="/host/audit")
    control, *workers = cfg["nodes"]
    assert control["extraMounts"] == [{"hostPath": "/host/audit", "containerPath": c.AUDIT_DIR}]
    assert all("extraMounts" not in w for w in workers)
    api = yaml.safe_load(cfg["kubeadmConfigPatches"][0])["apiServer"]
    args = {a["name"]: a["value"] for a in api["extraArgs"]}
    assert args["audit-policy-file"] == f"{c.AUDIT_DIR}/{c.AUDIT_POLICY_FILE}"
    assert args["audit-log-path"] == f"{c.AUDIT_DIR}/{c.AUDIT_LOG}"
    assert args["audit-log-maxsize"] == "100"
    assert api["extraVolumes"] == [{"name": "modelship-audit", "hostPath": c.AUDIT_DIR, "mountPath": c.AUDIT_DIR,
                                    "pathType": "DirectoryOrCreate"}]


def test_system_images_are_ours_with_kubeadm_s_names() -> None:
    names = [i.name for i in c.system_images()] + [c.kube_proxy_image()]
    assert all(n.startswith("docker.io/modelship/k8s/") for n in names)
    assert f"docker.io/modelship/k8s/kube-apiserver:{versions.KUBERNETES}" in names
    assert f"docker.io/modelship/k8s/etcd:{c.ETCD_TAG}" in names
    assert c.ETCD_TAG.startswith(versions.ETCD.lstrip("v"))


def test_cni_config() -> None:
    doc = json.loads(c.cni_config("10.244.2.0/24"))
    assert [p["type"] for p in doc["plugins"]] == ["ptp", "portmap"]
    assert doc["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.244.2.0/24"}]]
    assert doc["plugins"][0]["ipMasq"] is False


NODES = [c.Node("e2e-control-plane", "172.18.0.2", "10.244.0.0/24", "control-plane"),
         c.Node("e2e-worker", "172.18.0.3", "10.244.1.0/24"),
         c.Node("e2e-worker2", "172.18.0.4", "10.244.2.0/24")]


def test_node_routes() -> None:
    routes = c.node_routes(NODES)
    assert routes["e2e-worker"] == [("10.244.0.0/24", "172.18.0.2"), ("10.244.2.0/24", "172.18.0.4")]
    assert routes["e2e-control-plane"] == [("10.244.1.0/24", "172.18.0.3"), ("10.244.2.0/24", "172.18.0.4")]
    # A node without a podCIDR yet gets routes but is no route target.
    partial = c.node_routes([*NODES[:2], c.Node("late", "172.18.0.9", "")])
    assert partial["e2e-worker"] == [("10.244.0.0/24", "172.18.0.2")]


def test_host_routes() -> None:
    assert c.host_routes(NODES) == [("10.244.0.0/24", "172.18.0.2"), ("10.244.1.0/24", "172.18.0.3"),
                                    ("10.244.2.0/24", "172.18.0.4"), (c.SERVICE_SUBNET, "172.18.0.2")]


def test_base_dockerfile_is_kind_s_layout_from_debian() -> None:
    text = c.base_dockerfile("docker.io/library/debian:bookworm-slim")
    assert text.splitlines()[2] == "FROM docker.io/library/debian:bookworm-slim"
    for package in ("systemd", "containerd", "runc", "containernetworking-plugins", "nftables", "iptables"):
        assert package in text
    assert "COPY files/ /" in text and "COPY crictl /usr/local/bin/crictl" in text
    assert 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' in text
    assert "STOPSIGNAL SIGRTMIN+3" in text
