"""The kind bring-up as steps under the machine lock, and `make e2e-kind`.

``session()`` takes the local cluster's machine lock for its whole life (the
two clusters never run at once: Docker rewrites the iptables the local
cluster's node relies on), refuses while a local cluster runs, then walks the
steps: Docker from Debian, kind/kubeadm/crictl from their Go modules, the base
and node images, dockerd, the cluster, its networking, readiness. It yields a
``LocalCluster`` (kubeconfig, the host's address on the kind network) and, at
the end, deletes the cluster, stops the dockerd it started and cleans the
host. ``run_e2e`` adds the project's images and the tests/e2e suite, then
checks the host with tests/kindcluster/test_host_clean.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelship.kindcluster import cluster, dockerhost, nodeimage
from modelship.localcluster import build, detect, paths, versions
from modelship.localcluster.status import StepFailed, line, step
from modelship.localcluster.testing import LocalCluster, machine_lock

ROOT = Path(__file__).resolve().parents[4]
DEFAULT_NAME = "modelship-e2e"
WORKERS = 2
HOST_BEFORE_COPY = "last-run-host-before.json"  # what test_host_clean.py compares against


def refuse_beside_local_cluster() -> None:
    """The local cluster's processes run our built binaries from the cache: any of them running
    means a local cluster is up (whatever its data dir)."""
    running = detect.pids_running_from(paths.cache_root() / "bin")
    if running:
        names = ", ".join(sorted({f"{name} (pid {pid})" for pid, name in running}))
        raise StepFailed(f"the local cluster is running ({names}): Docker must not run beside it (it rewrites "
                         "iptables); stop it first with `modelship local down`")


def preflight() -> None:
    if not detect.is_root():
        raise StepFailed("kind's Docker daemon is started and its host routes set as root: run as root (e.g. sudo)")
    refuse_beside_local_cluster()


@contextmanager
def _locked(lock: bool, timeout: float) -> Iterator[None]:
    if not lock:
        yield
        return
    line("Taking the machine lock (local-cluster-session.lock; waits while another session holds it)")
    with machine_lock(timeout):
        yield


@contextmanager
def session(name: str = DEFAULT_NAME, workers: int = WORKERS, keep: bool = False,
            lock_timeout: float = 3600, lock: bool = True) -> Iterator[LocalCluster]:
    """A kind cluster of one control plane and ``workers`` workers for the ``with`` block.
    ``lock=False``: the caller already holds the machine lock."""
    with _locked(lock, lock_timeout):
        with step("Checking root and that no local cluster runs"):
            preflight()
        started_docker = False
        try:
            with step("Installing Docker from Debian (docker.io), if missing"):
                dockerhost.ensure_installed()
            with step("Building kind, kubeadm and crictl from their Go modules (cached)"):
                build.ensure_group("kind")
            with step("Starting dockerd (runtime for this host's capabilities, no default bridge)"):
                started_docker = dockerhost.start()
            with step("Making kind's base image (buildah, cached by content)"):
                base = nodeimage.ensure_base_image()
            with step(f"Making the node image (Kubernetes {versions.KUBERNETES}, cached by content)"):
                node = nodeimage.ensure_node_image(base)
            if cluster.exists(name):
                with step(f"Deleting the cluster {name} left by an earlier run"):
                    cluster.delete(name)
            with step(f"Creating the kind cluster {name} (1 control plane, {workers} workers)"):
                kubeconfig = cluster.create(name, node, workers)
            with step("Setting up pod networking (CNI config and routes on each node, host routes)"):
                cluster.setup_network(name)
            with step("Waiting for Ready nodes, CoreDNS and the StorageClass"):
                cluster.wait_ready(name)
            gateway = cluster.gateway()
            Path(str(kubeconfig) + ".node-ip").write_text(gateway + "\n")
            Path(str(kubeconfig) + ".audit-log").write_text(f"{cluster.audit_log(name)}\n")
            line(f"kind cluster {name} is up: KUBECONFIG={kubeconfig}; host services for pods listen on {gateway}")
            yield LocalCluster(kubeconfig, gateway, None, started_here=True, audit_file=cluster.audit_log(name))
        finally:
            if keep:
                line(f"Keeping the cluster {name} and dockerd running (--keep); "
                     f"`modelship kind down --name {name}` stops both")
            else:
                teardown(name, started_docker)


def teardown(name: str, stop_docker: bool = True) -> None:
    """Delete the cluster and its host routes, then stop the dockerd we started and clean the host."""
    with step(f"Deleting the kind cluster {name} and its host routes"):
        if dockerhost.answers():
            cluster.delete(name)
        else:
            cluster.remove_host_routes(name)
    if stop_docker:
        before = dockerhost.before_file()
        if before.exists():
            shutil.copy2(before, dockerhost.state_dir() / HOST_BEFORE_COPY)
        with step("Stopping dockerd and removing what it left (chains, bridges, tables, sysctls)"):
            dockerhost.stop()


def load_project_images(name: str) -> dict[str, str]:
    """The three images (buildah, content-tagged, as `make images`) loaded into the workers."""
    from modelship import images as project
    from modelship.localcluster import images as builder

    refs = project.build()
    archives = builder.built_archives()
    for image, ref in refs.items():
        with step(f"Loading {image} ({ref}) into the kind nodes"):
            cluster.load_archive(name, archives[ref])
    return refs


def run_e2e(pytest_args: list[str], name: str = DEFAULT_NAME, keep: bool = False) -> int:
    """`make e2e-kind`: the whole set-up, tests/e2e on 3 nodes, teardown, then the host check."""
    t0 = time.monotonic()
    before_copy = dockerhost.state_dir() / HOST_BEFORE_COPY
    before_copy.unlink(missing_ok=True)
    with _locked(True, 3600):  # to the end of the host check: no local cluster may start before it ran
        return _run_e2e_locked(pytest_args, name, keep, t0, before_copy)


def _run_e2e_locked(pytest_args: list[str], name: str, keep: bool, t0: float, before_copy: Path) -> int:
    rc = 1
    try:
        with session(name, keep=keep, lock=False) as kc:
            load_project_images(name)
            env = {**os.environ, "KUBECONFIG": str(kc.kubeconfig), "MODELSHIP_PREBUILT_IMAGES": "1",
                   "MODELSHIP_CLUSTER_TESTS": "all"}
            line(f"Running tests/e2e on kind ({time.monotonic() - t0:.0f}s of set-up)")
            t1 = time.monotonic()
            rc = subprocess.run([sys.executable, "-m", "pytest", "tests/e2e", *pytest_args], cwd=ROOT, env=env,
                                check=False).returncode
            line(f"tests/e2e on kind: exit {rc} in {time.monotonic() - t1:.0f}s")
    except StepFailed as exc:
        line(f"make e2e-kind: {exc}")
        rc = rc or 1
    if keep:
        return rc
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    if before_copy.exists():
        env["MODELSHIP_KIND_HOST_BEFORE"] = str(before_copy)
    env["MODELSHIP_KIND_CLUSTER"] = name
    clean = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/kindcluster/test_host_clean.py"],
                           cwd=ROOT, env=env, check=False).returncode
    line(f"make e2e-kind: {time.monotonic() - t0:.0f}s in all; suite exit {rc}, host check exit {clean}")
    return rc or clean
