"""Node steps: host preparation, containerd, kubelet, kube-proxy.

containerd gets its own socket, root and state under the data dir (never a
system one). Kernel facts are detected: cgroup v1 needs the kubelet's
`failCgroupV1: false`; without CAP_SYS_RESOURCE runc cannot lower
oom_score_adj, so containerd must `restrict_oom_score_adj`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from modelship.localcluster import images, paths, pki, procs, teardown
from modelship.localcluster.context import CLUSTER_DOMAIN, DNS_IP, NODE_POD_CIDR, POD_CIDR, Context
from modelship.localcluster.status import StepFailed

SYSCTLS = {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"}


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


# --- host -----------------------------------------------------------------

def start_host(ctx: Context) -> None:
    p = ctx.paths
    for d in (p.data, p.config, p.logs, p.run, p.storage):
        d.mkdir(parents=True, exist_ok=True)
    p.data.chmod(0o711)
    teardown.record_host_before(p)
    pki.ensure_pki(p.pki, ctx.node, ctx.node_ip)
    for client, name in (("admin", "admin"), ("controller-manager", "controller-manager"),
                         ("scheduler", "scheduler"), ("kubelet", "kubelet"), ("kube-proxy", "kube-proxy")):
        pki.write_kubeconfig(p.kubeconfig_for(name), ctx.api_url, p.pki, client)
    saved: dict[str, str] = {}
    for key, value in SYSCTLS.items():
        f = _sysctl_path(key)
        if f.exists():
            saved[key] = f.read_text().strip()
            if saved[key] != value:
                f.write_text(value)
    sysctl_file = p.run / "sysctl.json"
    if not sysctl_file.exists():
        sysctl_file.write_text(json.dumps(saved))


def wait_host(ctx: Context) -> None:
    return None


def stop_host(ctx: Context) -> None:
    sysctl_file = ctx.paths.run / "sysctl.json"
    if sysctl_file.exists():
        for key, value in json.loads(sysctl_file.read_text()).items():
            f = _sysctl_path(key)
            if f.exists() and f.read_text().strip() != value:
                f.write_text(value)
        sysctl_file.unlink()


# --- containerd -----------------------------------------------------------

def containerd_config(ctx: Context) -> str:
    p = ctx.paths
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""\
version = 2
root = "{p.containerd_root}"
state = "{p.containerd_state}"

[grpc]
  address = "{p.containerd_sock}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{p.data / 'containerd' / 'opt'}"

[{cri}]
  sandbox_image = "{images.PAUSE_IMAGE}"
  restrict_oom_score_adj = {str(not ctx.cap_sys_resource).lower()}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{p.containerd_state / 'runc'}"
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{p.cni_conf}"
"""


def cni_config(ctx: Context) -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": "modelship",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": NODE_POD_CIDR}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(ctx.paths.cni_ipam)}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def start_containerd(ctx: Context) -> None:
    p = ctx.paths
    for d in (p.containerd_root, p.containerd_state, p.cni_conf, p.cni_ipam):
        d.mkdir(parents=True, exist_ok=True)
    (p.config / "containerd.toml").write_text(containerd_config(ctx))
    (p.cni_conf / "10-modelship.conflist").write_text(json.dumps(cni_config(ctx), indent=1))
    procs.start(p, "containerd", ["/usr/bin/containerd", "--config", str(p.config / "containerd.toml")])


def _ctr_ok(ctx: Context) -> bool:
    res = subprocess.run(["ctr", "--address", str(ctx.paths.containerd_sock), "version"],
                         capture_output=True, check=False, timeout=10)
    return res.returncode == 0


def wait_containerd(ctx: Context) -> None:
    procs.wait_until("containerd", lambda: _ctr_ok(ctx), 60, ctx.paths, "containerd")
    load_images(ctx)


def load_images(ctx: Context) -> None:
    """Import the system images and every image the builder holds, unless already imported."""
    record = images.imported_record(ctx.paths)
    done: dict[str, str] = json.loads(record.read_text()) if record.exists() else {}
    present = set(images.loaded_images(ctx.paths))
    wanted = {**images.system_archives(), **images.built_archives()}
    for name in [n for n in done if n not in wanted]:  # pruned from the builder's record
        if name in present:
            images.ctr(ctx.paths, "images", "rm", name)
        del done[name]
    record.write_text(json.dumps(done, indent=1))
    for name, archive in wanted.items():
        if done.get(name) == str(archive) and name in present:
            continue
        images.load_archive(archive, ctx.paths)
        done[name] = str(archive)
        record.write_text(json.dumps(done, indent=1))


def stop_containerd(ctx: Context) -> None:
    procs.stop(ctx.paths, "containerd", timeout=15)
    teardown.after_containerd(ctx.paths)


# --- kubelet ----------------------------------------------------------------

def kubelet_config(ctx: Context) -> dict[str, object]:
    cfg: dict[str, object] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "0.0.0.0",
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": ctx.pki("ca.crt")}},
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": ctx.pki("kubelet-serving.crt"),
        "tlsPrivateKeyFile": ctx.pki("kubelet-serving.key"),
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{ctx.paths.containerd_sock}",
        "clusterDNS": [DNS_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "/etc/resolv.conf",
        "failSwapOn": False,
        "maxPods": 250,
        "serializeImagePulls": False,
        "podLogsDir": str(ctx.paths.data / "pod-logs"),
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%",
                         "nodefs.inodesFree": "2%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }
    if ctx.cgroup_version == 1:
        cfg["failCgroupV1"] = False
    return cfg


def start_kubelet(ctx: Context) -> None:
    p = ctx.paths
    p.kubelet.mkdir(parents=True, exist_ok=True)
    (p.config / "kubelet.yaml").write_text(yaml.safe_dump(kubelet_config(ctx)))
    procs.start(p, "kubelet", [
        str(paths.kube_bin("kubelet")), "--config", str(p.config / "kubelet.yaml"),
        "--kubeconfig", str(p.kubeconfig_for("kubelet")), "--root-dir", str(p.kubelet),
        "--cert-dir", str(p.kubelet / "pki"), "--hostname-override", ctx.node, "--node-ip", ctx.node_ip, "--v=1",
    ])


def _node_ready(ctx: Context) -> bool:
    out = ctx.kubectl("get", "node", ctx.node, "-o",
                      'jsonpath={.status.conditions[?(@.type=="Ready")].status}', check=False, timeout=10)
    return out.strip() == "True"


def wait_kubelet(ctx: Context) -> None:
    procs.wait_until("a Ready node", lambda: _node_ready(ctx), 120, ctx.paths, "kubelet", interval=0.5)


def stop_kubelet(ctx: Context) -> None:
    procs.stop(ctx.paths, "kubelet")
    teardown.stop_pods(ctx.paths)


# --- kube-proxy -------------------------------------------------------------

def kube_proxy_config(ctx: Context) -> dict[str, object]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "nftables",
        "clientConnection": {"kubeconfig": str(ctx.paths.kubeconfig_for("kube-proxy"))},
        "clusterCIDR": POD_CIDR,
        "hostnameOverride": ctx.node,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # Leave the host's conntrack sysctls alone.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }


def start_kube_proxy(ctx: Context) -> None:
    (ctx.paths.config / "kube-proxy.yaml").write_text(yaml.safe_dump(kube_proxy_config(ctx)))
    procs.start(ctx.paths, "kube-proxy", [
        str(paths.kube_bin("kube-proxy")), "--config", str(ctx.paths.config / "kube-proxy.yaml"), "--v=1",
    ])


def wait_kube_proxy(ctx: Context) -> None:
    procs.wait_until("kube-proxy /healthz", lambda: procs.http_ok("http://127.0.0.1:10256/healthz"), 60,
                     ctx.paths, "kube-proxy")


def stop_kube_proxy(ctx: Context) -> None:
    procs.stop(ctx.paths, "kube-proxy")
    teardown.after_kube_proxy(ctx.paths)


def check_binaries() -> None:
    missing = [b for b in (paths.etcd_bin(), paths.kube_bin("kubelet")) if not b.exists()]
    if missing:
        raise StepFailed(f"not built: {missing[0]}; run `modelship local build`")
