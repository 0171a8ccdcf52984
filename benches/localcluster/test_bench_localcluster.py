"""Local cluster figures (issue 11): warm `local build`, `local up` to a Ready
node and DNS, RSS per component, pod create -> Ready, a 20-replica
Deployment to Available, requests/s through the ClusterIP against straight
to the pod IP. Needs root; part of `make bench`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from modelship.localcluster import cluster, images, procs
from modelship.localcluster.testing import LocalCluster, machine_lock

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or os.environ.get("MODELSHIP_CLUSTER_BENCH") == "0",
                                reason="needs root (starts its own cluster); MODELSHIP_CLUSTER_BENCH=0 skips it")


def _local(*args: str) -> float:
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "modelship.cli", "local", *args], check=True, timeout=3600)
    return time.monotonic() - t


def _rps(url: str, seconds: float = 5.0, workers: int = 4) -> float:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    count = [0] * workers
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        while time.monotonic() < stop:
            with opener.open(url, timeout=5) as r:
                r.read()
            count[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(count) / seconds


def test_local_cluster_figures() -> None:
    with machine_lock():  # the ports are the machine's: wait for other cluster sessions
        _figures()


def _figures() -> None:
    figures: dict[str, str] = {}
    figures["local build (warm)"] = f"{_local('build'):.1f} s"
    data = Path(tempfile.mkdtemp(prefix="ms-bench-"))
    p = cluster.load_paths(str(data))
    figures["local up to Ready node, DNS and StorageClass"] = f"{_local('up', '--detach', '--data-dir', str(data)):.1f} s"
    try:
        rss = {n: procs.rss_mib(pid) for n in cluster.PROCESSES if (pid := procs.running_pid(p, n))}
        figures["RSS MiB"] = ", ".join(f"{k} {v:.0f}" for k, v in rss.items()) + f"; total {sum(rss.values()):.0f}"
        lc = LocalCluster(p.kubeconfig, p.node_ip_file.read_text().strip(), p.data, True)
        lc.kubectl("create", "namespace", "bench")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "one", "namespace": "bench",
                                                                 "labels": {"app": "one"}},
               "spec": {"containers": [{"name": "web", "image": images.HELPER_IMAGE,
                                        "command": ["sh", "-c", "mkdir -p /w && echo ok > /w/i && "
                                                    "exec httpd -f -p 8080 -h /w"],
                                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}
        t = time.monotonic()
        lc.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(pod))
        lc.kubectl("-n", "bench", "wait", "--for=condition=Ready", "pod/one", "--timeout=120s")
        figures["pod create -> Ready"] = f"{time.monotonic() - t:.1f} s"
        dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "many", "namespace": "bench"},
               "spec": {"replicas": 20, "selector": {"matchLabels": {"app": "many"}},
                        "template": {"metadata": {"labels": {"app": "many"}}, "spec": {
                            "containers": [{"name": "c", "image": images.HELPER_IMAGE,
                                            "command": ["sleep", "3600"]}],
                            "terminationGracePeriodSeconds": 1}}}}
        t = time.monotonic()
        lc.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(dep))
        lc.kubectl("-n", "bench", "wait", "--for=condition=Available", "deploy/many", "--timeout=300s")
        figures["20-replica Deployment -> Available"] = f"{time.monotonic() - t:.1f} s"
        lc.kubectl("-n", "bench", "expose", "pod", "one", "--port", "80", "--target-port", "8080")
        svc_ip = lc.kubectl("-n", "bench", "get", "svc", "one", "-o", "jsonpath={.spec.clusterIP}").stdout
        pod_ip = lc.kubectl("-n", "bench", "get", "pod", "one", "-o", "jsonpath={.status.podIP}").stdout
        time.sleep(2)
        figures["requests/s via ClusterIP"] = f"{_rps(f'http://{svc_ip}/i'):.0f}"
        figures["requests/s to the pod IP"] = f"{_rps(f'http://{pod_ip}:8080/i'):.0f}"
    finally:
        figures["local down"] = f"{_local('down', '--data-dir', str(data)):.1f} s"
        shutil.rmtree(data, ignore_errors=True)  # its containerd root holds a copy of every image
    print("\nLocal cluster figures:")
    for k, v in figures.items():
        print(f"  {k:<48} {v}")
