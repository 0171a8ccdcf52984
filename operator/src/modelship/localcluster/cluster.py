"""`local up`, `local down` and `local status`: walk the steps forwards,
backwards, or report. A failed bring-up undoes what it made (unless
--retain), as kind does."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

from modelship.localcluster import build, detect, images, procs, teardown
from modelship.localcluster.context import PORTS, Context
from modelship.localcluster.paths import ClusterPaths
from modelship.localcluster.status import StepFailed, line, step
from modelship.localcluster.steps import bring_up

PROCESSES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet",
             "kube-proxy")


def running(p: ClusterPaths) -> list[str]:
    return [n for n in PROCESSES if procs.running_pid(p, n) is not None]


def refuse_beside_docker() -> None:
    """dockerd rewrites the host's iptables (FORWARD policy DROP, its own NAT chains), which
    breaks the node's networking: the two never run at once (`make e2e-kind` stops its own)."""
    pids = detect.dockerd_pids()
    if pids:
        raise StepFailed(f"dockerd is running (pid {', '.join(map(str, pids))}): Docker rewrites iptables and "
                         "must not run beside the local cluster; stop it first (`make e2e-kind` stops the "
                         "dockerd it started when it ends)")


def preflight(p: ClusterPaths) -> None:
    if not detect.is_root():
        raise StepFailed("the local cluster runs host processes as root: run as root (e.g. sudo)")
    refuse_beside_docker()
    alive = running(p)
    if alive:
        raise StepFailed(f"a local cluster is already running from {p.data} ({', '.join(alive)}); "
                         f"stop it with `modelship local down --data-dir {p.data}`")
    taken = [f"{port} ({name})" for name, ports in PORTS.items() for port in ports if detect.port_in_use(port)]
    if taken:
        raise StepFailed(f"ports in use: {', '.join(taken)}; is another cluster running? (`modelship local down`)")


def load_paths(data_dir: str | None, kubeconfig: str | None = None) -> ClusterPaths:
    """The cluster's paths; the kubeconfig defaults to the one recorded by `up`."""
    p = ClusterPaths.make(data_dir, kubeconfig)
    if kubeconfig is None and p.state_file.exists():
        recorded = json.loads(p.state_file.read_text()).get("kubeconfig")
        if recorded:
            p = ClusterPaths.make(p.data, recorded)
    return p


def up(p: ClusterPaths, detach: bool, retain: bool = False) -> int:
    t0 = time.monotonic()
    with step("Checking root, ports, that no other local cluster and no dockerd runs"):
        preflight(p)
    if not build.all_built("cluster") or not all(images.has_image(n) for n in (
            images.PAUSE_IMAGE, images.COREDNS_IMAGE, images.LOCAL_PATH_IMAGE, images.HELPER_IMAGE)):
        build.build(with_images=True, purpose="cluster")
        t0 = time.monotonic()
    p.data.mkdir(parents=True, exist_ok=True)
    p.run.mkdir(parents=True, exist_ok=True)
    teardown.final_cleanup(p)  # recover from a run that was killed
    ctx = Context.detect(p)
    started = []
    try:
        for s in bring_up():
            with step(s.title):
                started.append(s)
                s.start(ctx)
                s.wait(ctx)
    except BaseException:
        if not retain:
            line("Bring-up failed; stopping what was started (use --retain to keep it for debugging)")
            _stop(ctx, started)
            teardown.final_cleanup(p)
        raise
    from modelship.localcluster import pki

    pki.write_kubeconfig(p.kubeconfig, ctx.api_url, p.pki, "admin")
    p.node_ip_file.write_text(ctx.node_ip + "\n")
    p.state_file.write_text(json.dumps({"kubeconfig": str(p.kubeconfig), "node_ip": ctx.node_ip,
                                        "node": ctx.node, "started": time.time()}))
    elapsed = time.monotonic() - t0
    _summary(ctx, elapsed)
    if detach:
        return 0
    line("Running in the foreground; Ctrl-C stops the cluster")
    stop_event = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop_event.set())
    while not stop_event.wait(1.0):
        pass
    return down(p)


def _summary(ctx: Context, elapsed: float) -> None:
    p = ctx.paths
    line(f"Local cluster up in {elapsed:.1f}s: node {ctx.node} at {ctx.node_ip} "
         f"(cgroup v{ctx.cgroup_version}, restrict_oom_score_adj={not ctx.cap_sys_resource})")
    line(f"  API {ctx.api_url} (the node's address only), etcd https://127.0.0.1:2379, kubelet :10250, "
         f"containerd {p.containerd_sock}, DNS 10.96.0.10, pods 10.244.0.0/24, services 10.96.0.0/16")
    line(f"  KUBECONFIG={p.kubeconfig}")
    line(f"  node address in {p.node_ip_file} (host services for pods listen there, not on 127.0.0.1)")
    line(f"  logs in {p.logs} (audit log {p.audit_log})")
    total = 0.0
    parts = []
    for name in PROCESSES:
        pid = procs.running_pid(p, name)
        if pid:
            rss = procs.rss_mib(pid)
            total += rss
            parts.append(f"{name} {rss:.0f}")
    line(f"  RSS MiB: {', '.join(parts)}; total {total:.0f}")


def _stop(ctx: Context, started: list) -> None:  # type: ignore[type-arg]
    for s in reversed(started):
        try:
            s.stop(ctx)
        except Exception as exc:
            line(f" ! stopping {s.name}: {exc}")


def down(p: ClusterPaths) -> int:
    if not detect.is_root():
        raise StepFailed("run as root")
    if not p.data.exists():
        line(f"No local cluster at {p.data}")
        return 0
    ctx = Context.detect(p)
    for s in reversed(bring_up()):
        with step(f"Stopping {s.name.replace('_', '-')}"):
            s.stop(ctx)
    with step("Removing leftovers (chains, tables, netns, mounts, cgroups)"):
        teardown.final_cleanup(p)
    p.state_file.unlink(missing_ok=True)
    p.node_ip_file.unlink(missing_ok=True)
    left = teardown.leftovers(p)
    if left:
        line("Left behind: " + "; ".join(left))
        return 1
    line("Local cluster stopped; the host is clean")
    return 0


def status(p: ClusterPaths) -> int:
    alive = running(p)
    if not alive:
        print(f"No local cluster running from {p.data}")
        return 3
    for name in PROCESSES:
        pid = procs.running_pid(p, name)
        print(f"{name:<24} {'pid ' + str(pid) + f' {procs.rss_mib(pid):.0f} MiB' if pid else 'not running'}")
    print(f"KUBECONFIG={p.kubeconfig}")
    if p.node_ip_file.exists():
        print(f"node address {p.node_ip_file.read_text().strip()}")
    if "containerd" in alive:
        print("images:")
        for name in images.loaded_images(p):
            if not name.startswith("docker.io/modelship/local-"):
                print(f"  {name}")
        _image_problems(Context.detect(p))
    return 0


def _image_problems(ctx: Context) -> None:
    out = ctx.kubectl("get", "pods", "-A", "-o", "json", check=False, timeout=15)
    if not out:
        return
    for pod in json.loads(out).get("items", []):
        for cs in pod.get("status", {}).get("containerStatuses", []) or []:
            reason = (cs.get("state", {}).get("waiting") or {}).get("reason", "")
            if reason in ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"):
                print(f"pod {pod['metadata']['namespace']}/{pod['metadata']['name']}: {reason} for {cs['image']}; "
                      f"build it with `modelship local image build -t {cs['image']} CONTEXT`")


def node_ip(kubeconfig: str | Path) -> str:
    """The node address `up` wrote beside KUBECONFIG (where host services for pods should listen)."""
    return Path(str(kubeconfig) + ".node-ip").read_text().strip()
