"""Control-plane steps: etcd, kube-apiserver, controller-manager, scheduler.

Flags follow hack/local-up-cluster.sh and kubeadm, with TLS verified on
every connection and the API server's audit log at Metadata level.
"""

from __future__ import annotations

import shutil

from modelship.localcluster import paths, procs
from modelship.localcluster.context import API_PORT, POD_CIDR, SERVICE_CIDR, Context

ETCD_URL = "https://127.0.0.1:2379"
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
"""
AUDIT_ROTATION = {"audit-log-maxsize": "100", "audit-log-maxbackup": "2"}  # MB and files kept; kind's too


def start_etcd(ctx: Context) -> None:
    shutil.rmtree(ctx.paths.etcd, ignore_errors=True)  # a fresh cluster per `up`, as kind
    ctx.paths.etcd.mkdir(parents=True, mode=0o700)
    tls = ["--cert-file", ctx.pki("etcd-server.crt"), "--key-file", ctx.pki("etcd-server.key"),
           "--trusted-ca-file", ctx.pki("ca.crt"), "--client-cert-auth",
           "--peer-cert-file", ctx.pki("etcd-server.crt"), "--peer-key-file", ctx.pki("etcd-server.key"),
           "--peer-trusted-ca-file", ctx.pki("ca.crt"), "--peer-client-cert-auth"]
    procs.start(ctx.paths, "etcd", [
        str(paths.etcd_bin()), "--name", "local", "--data-dir", str(ctx.paths.etcd),
        "--listen-client-urls", ETCD_URL, "--advertise-client-urls", ETCD_URL,
        "--listen-peer-urls", "https://127.0.0.1:2380", "--initial-advertise-peer-urls", "https://127.0.0.1:2380",
        "--initial-cluster", "local=https://127.0.0.1:2380", "--listen-metrics-urls", "http://127.0.0.1:2381",
        "--log-level", "warn", *tls,
    ])


def wait_etcd(ctx: Context) -> None:
    tls = procs.tls_context(ctx.paths, "apiserver-etcd-client")
    procs.wait_until("etcd /health", lambda: procs.https_ok(f"{ETCD_URL}/health", tls), 60, ctx.paths, "etcd")


def stop_etcd(ctx: Context) -> None:
    procs.stop(ctx.paths, "etcd")


def start_apiserver(ctx: Context) -> None:
    (ctx.paths.config / "audit-policy.yaml").write_text(AUDIT_POLICY)
    procs.start(ctx.paths, "kube-apiserver", [
        str(paths.kube_bin("kube-apiserver")),
        "--etcd-servers", ETCD_URL, "--etcd-cafile", ctx.pki("ca.crt"),
        "--etcd-certfile", ctx.pki("apiserver-etcd-client.crt"), "--etcd-keyfile", ctx.pki("apiserver-etcd-client.key"),
        # The node's own address only, as kind publishes its API server on one address: not every
        # interface of the host (bridges, VPNs, a second NIC). Pods reach it there through the
        # `kubernetes` Service, whose endpoint is the advertised address (Endpoints refuse loopback).
        "--bind-address", ctx.node_ip, "--secure-port", str(API_PORT), "--advertise-address", ctx.node_ip,
        "--tls-cert-file", ctx.pki("apiserver.crt"), "--tls-private-key-file", ctx.pki("apiserver.key"),
        "--client-ca-file", ctx.pki("ca.crt"),
        "--kubelet-client-certificate", ctx.pki("apiserver-kubelet-client.crt"),
        "--kubelet-client-key", ctx.pki("apiserver-kubelet-client.key"),
        "--kubelet-certificate-authority", ctx.pki("ca.crt"),
        "--kubelet-preferred-address-types", "InternalIP",
        "--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",
        "--service-cluster-ip-range", SERVICE_CIDR,
        "--service-account-key-file", ctx.pki("sa.pub"), "--service-account-signing-key-file", ctx.pki("sa.key"),
        "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
        "--allow-privileged=true",
        "--audit-policy-file", str(ctx.paths.config / "audit-policy.yaml"),
        "--audit-log-path", str(ctx.paths.audit_log), *(x for k, v in AUDIT_ROTATION.items() for x in (f"--{k}", v)),
        "--profiling=false", "--v=1",
    ])


def wait_apiserver(ctx: Context) -> None:
    tls = procs.tls_context(ctx.paths, "admin")
    procs.wait_until("kube-apiserver /readyz", lambda: procs.https_ok(f"{ctx.api_url}/readyz", tls), 120,
                     ctx.paths, "kube-apiserver")


def stop_apiserver(ctx: Context) -> None:
    procs.stop(ctx.paths, "kube-apiserver")


def _component_auth(ctx: Context, name: str) -> list[str]:
    kc = str(ctx.paths.kubeconfig_for(name))
    return ["--kubeconfig", kc, "--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc,
            "--client-ca-file", ctx.pki("ca.crt"), "--bind-address", "127.0.0.1", "--leader-elect=false",
            "--tls-cert-file", ctx.pki(f"{name}-serving.crt"), "--tls-private-key-file", ctx.pki(f"{name}-serving.key")]


def start_controller_manager(ctx: Context) -> None:
    procs.start(ctx.paths, "kube-controller-manager", [
        str(paths.kube_bin("kube-controller-manager")), *_component_auth(ctx, "controller-manager"),
        "--secure-port", "10257", "--root-ca-file", ctx.pki("ca.crt"),
        "--service-account-private-key-file", ctx.pki("sa.key"), "--use-service-account-credentials",
        "--cluster-signing-cert-file", ctx.pki("ca.crt"), "--cluster-signing-key-file", ctx.pki("ca.key"),
        "--service-cluster-ip-range", SERVICE_CIDR, "--cluster-cidr", POD_CIDR,
        "--allocate-node-cidrs", "--node-cidr-mask-size", "24", "--v=1",
    ])


def _healthz(ctx: Context, port: int) -> bool:
    return procs.https_ok(f"https://127.0.0.1:{port}/healthz", procs.tls_context(ctx.paths, None))


def wait_controller_manager(ctx: Context) -> None:
    procs.wait_until("controller-manager /healthz", lambda: _healthz(ctx, 10257), 60, ctx.paths,
                     "kube-controller-manager")


def stop_controller_manager(ctx: Context) -> None:
    procs.stop(ctx.paths, "kube-controller-manager")


def start_scheduler(ctx: Context) -> None:
    procs.start(ctx.paths, "kube-scheduler", [
        str(paths.kube_bin("kube-scheduler")), *_component_auth(ctx, "scheduler"), "--secure-port", "10259", "--v=1",
    ])


def wait_scheduler(ctx: Context) -> None:
    procs.wait_until("scheduler /healthz", lambda: _healthz(ctx, 10259), 60, ctx.paths, "kube-scheduler")


def stop_scheduler(ctx: Context) -> None:
    procs.stop(ctx.paths, "kube-scheduler")
