"""Docker and the local cluster never run at once: each refuses to start beside the other,
saying why and what to do. The detection reads /proc; here it reads a fake one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelship.kindcluster import session
from modelship.localcluster import cluster, detect, paths
from modelship.localcluster.status import StepFailed


def fake_proc(root: Path, procs: dict[int, tuple[str, str]]) -> Path:
    """A /proc with <pid>/comm and <pid>/exe (a symlink) for each (comm, exe)."""
    proc = root / "proc"
    for pid, (comm, exe) in procs.items():
        d = proc / str(pid)
        d.mkdir(parents=True)
        (d / "comm").write_text(comm + "\n")
        (d / "exe").symlink_to(exe)
    (proc / "self").mkdir(parents=True, exist_ok=True)  # not a pid: ignored
    return proc


def test_detection_on_a_fake_proc(tmp_path: Path) -> None:
    cache_bin = tmp_path / "cache" / "bin"
    proc = fake_proc(tmp_path, {
        101: ("dockerd", "/usr/sbin/dockerd"),
        202: ("kube-apiserver", str(cache_bin / "kubernetes-v1.37.2" / "kube-apiserver")),
        303: ("kubelet", "/usr/bin/kubelet"),  # a kind node's kubelet: not the local cluster's
        404: ("bash", "/usr/bin/bash"),
    })
    assert detect.dockerd_pids(proc) == [101]
    assert detect.pids_running_from(cache_bin, proc) == [(202, "kube-apiserver")]
    assert detect.pids_running_from(tmp_path / "elsewhere", proc) == []
    assert detect.dockerd_pids(tmp_path / "missing") == []


def test_an_exited_unreaped_dockerd_is_not_running(tmp_path: Path) -> None:
    """The dockerd `make e2e-kind` started stays a zombie until reaped: it must not keep the
    host clean-up from running (it did, and left Docker's iptables chains behind)."""
    proc = fake_proc(tmp_path, {101: ("dockerd", "/usr/sbin/dockerd"), 102: ("dockerd", "/usr/sbin/dockerd")})
    (proc / "101" / "stat").write_text("101 (dockerd) Z 1 101 101 0 -1 4194564 0 0\n")
    (proc / "102" / "stat").write_text("102 (dockerd) S 1 102 102 0 -1 4194560 0 0\n")
    assert detect.dockerd_pids(proc) == [102]


def test_the_local_cluster_refuses_to_start_beside_dockerd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "dockerd_pids", lambda proc=None: [4242])
    monkeypatch.setattr(detect, "is_root", lambda: True)
    with pytest.raises(StepFailed) as err:
        cluster.preflight(paths.ClusterPaths.make("/nonexistent/modelship-test"))
    message = str(err.value)
    assert "dockerd is running (pid 4242)" in message and "must not run beside the local cluster" in message
    assert "make e2e-kind" in message


def test_kind_refuses_to_start_beside_the_local_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODELSHIP_CACHE", str(tmp_path / "cache"))
    proc = fake_proc(tmp_path, {
        7: ("kube-apiserver", str(tmp_path / "cache" / "bin" / "kubernetes-v1.37.2" / "kube-apiserver")),
        8: ("etcd", str(tmp_path / "cache" / "bin" / "etcd-v3.7.0" / "etcd")),
    })
    real = detect.pids_running_from
    monkeypatch.setattr(detect, "pids_running_from", lambda d, p=proc: real(d, p))
    monkeypatch.setattr(detect, "is_root", lambda: True)
    with pytest.raises(StepFailed) as err:
        session.preflight()
    message = str(err.value)
    assert "the local cluster is running (etcd (pid 8), kube-apiserver (pid 7))" in message
    assert "`modelship local down`" in message


def test_neither_refuses_on_a_quiet_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODELSHIP_CACHE", str(tmp_path / "cache"))
    proc = fake_proc(tmp_path, {os.getpid(): ("python", "/usr/bin/python3")})
    monkeypatch.setattr(detect, "is_root", lambda: True)
    real_from, real_docker = detect.pids_running_from, detect.dockerd_pids
    monkeypatch.setattr(detect, "pids_running_from", lambda d, p=proc: real_from(d, p))
    monkeypatch.setattr(detect, "dockerd_pids", lambda p=proc: real_docker(p))
    session.preflight()
    cluster.refuse_beside_docker()
