"""`modelship local build`: which targets each command builds, the progress it
prints, and the locks: one build at a time, and the demo's build done (lock
released) before its cluster session takes the machine's session lock."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from modelship.localcluster import build, locks, testing, versions
from modelship.localcluster.status import StepFailed

CLUSTER = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
           "kubectl", "cri-stop-all", "coredns", "local-path-provisioner"]


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELSHIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(locks, "POLL_SECONDS", 0.05)
    return tmp_path / "cache"


@pytest.mark.parametrize(("purpose", "names"), [
    ("cluster", CLUSTER),
    ("demo", [*CLUSTER, "helm"]),  # the demo installs the chart; Prometheus is the tests' alone
    ("all", [*CLUSTER, "helm", "prometheus"]),
    ("bench", [*CLUSTER, "helm", "prometheus", "argo-rollouts"]),  # the rollout bench's peer; not make test's
])
def test_each_command_builds_what_it_needs(purpose: str, names: list[str]) -> None:
    assert [t.name for t in build.select(purpose)] == names


def test_an_unknown_build_set_is_refused() -> None:
    with pytest.raises(StepFailed, match="unknown build set 'tests'"):
        build.select("tests")


def test_every_target_names_its_own_version() -> None:
    versions = {t.name: t.version for t in build.targets()}
    assert versions["etcd"].startswith("v3.") and versions["kubectl"].startswith("v1.")
    assert versions["prometheus"].startswith("3.")
    assert versions["argo-rollouts"] == "v1.10.2"


def test_argo_rollouts_builds_in_its_wrapper_module_with_argos_replace_block() -> None:
    """`go install` of Argo Rollouts fails (its go.mod replaces k8s.io modules, which only a main
    module may do): our module requires it and carries the same replace directives."""
    target = next(t for t in build.targets() if t.name == "argo-rollouts")
    gomod = (target.module / "go.mod").read_text()
    assert target.module == build.ARGOMOD and target.needed_by == "bench" and "@" not in target.package
    pinned = re.search(rf"^\s*{re.escape(build.ARGO_MODULE)} (v\S+)", gomod, re.M)
    assert pinned is not None and pinned.group(1) == versions.ARGO_ROLLOUTS  # versions.py and go.mod agree
    assert re.search(rf"^tool {re.escape(target.package)}$", gomod, re.M)
    replaced = dict(re.findall(r"^\s+(k8s\.io/[\w.-]+) => k8s\.io/[\w.-]+ (v\S+)$", gomod, re.M))
    assert replaced["k8s.io/client-go"] == replaced["k8s.io/api"] == "v0.34.5" and len(replaced) >= 30


def fake_targets(cache: Path, names: list[str]) -> list[build.Target]:
    return [build.Target(n, cache / "bin" / n, f"example.com/{n}@v1", "v1") for n in names]


def test_a_cold_build_prints_each_component_its_time_and_what_is_left(
        cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    targets = fake_targets(cache, ["a", "b", "c"])
    targets[0].output.parent.mkdir(parents=True)
    targets[0].output.write_text("built before")
    built: list[str] = []

    def run_go(go: str, target: build.Target, log: Path, after: str = "") -> None:
        built.append(f"{target.name}: {after}")
        target.output.write_text("built")

    monkeypatch.setattr(build, "targets", lambda: targets)
    for name in ("preflight", "ensure_apt", "build_pause"):
        monkeypatch.setattr(build, name, lambda *a: None)
    monkeypatch.setattr(build, "record_debian_versions", lambda: cache)
    monkeypatch.setattr(build, "find_go", lambda: "go")
    monkeypatch.setattr(build, "_run_go", run_go)
    assert build.build(with_images=False) == 0
    err = capsys.readouterr().err.splitlines()
    assert built == ["b: then c", "c: the last one"]  # the ticker's suffix while each builds
    assert " ✓ Cached: a (under" in err[2]
    assert "2 to build" in err[3] and err[3].endswith(": b, c")
    assert err[4].startswith(" ✓ Building b v1 [1/2] (") and err[4].endswith("· 1/2 built; left: c")
    assert err[5].startswith(" ✓ Building c v1 [2/2] (") and err[5].endswith("· 2/2 built; nothing left")
    # What was built is recorded with its time (the cold build's figures, which make bench reads).
    times = build.build_times()
    assert sorted(times) == ["b", "c"] and times["b"]["version"] == "v1"
    assert isinstance(times["c"]["seconds"], float) and times["c"]["cpus"]


def test_the_build_holds_the_build_lock_and_a_second_build_waits(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[bool] = []
    monkeypatch.setattr(build, "_build", lambda wanted, with_images: seen.append(locks.held(locks.build_lock_path())) or 0)
    released = threading.Event()

    def other_build() -> None:
        with build.build_lock():
            released.wait(5)

    other = threading.Thread(target=other_build)
    other.start()
    time.sleep(0.2)
    started = time.monotonic()
    threading.Timer(0.5, released.set).start()
    assert build.build() == 0
    other.join()
    assert time.monotonic() - started >= 0.4, "the second build did not wait for the first"
    assert seen == [True]
    assert "waiting for another `modelship local build`" in capsys.readouterr().err
    assert not locks.held(locks.build_lock_path())


def test_ensure_target_builds_under_the_lock_unless_built_meanwhile(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    targets = fake_targets(cache, ["prometheus"])
    calls: list[bool] = []

    def run_go(go: str, target: build.Target, log: Path, after: str = "") -> None:
        calls.append(locks.held(locks.build_lock_path()))
        target.output.parent.mkdir(parents=True, exist_ok=True)
        target.output.write_text("built")

    monkeypatch.setattr(build, "targets", lambda: targets)
    monkeypatch.setattr(build, "find_go", lambda: "go")
    monkeypatch.setattr(build, "_run_go", run_go)
    assert build.ensure_target("prometheus") == targets[0].output
    assert build.ensure_target("prometheus") == targets[0].output
    assert calls == [True]


def test_the_demo_builds_only_its_set_and_releases_the_build_lock_before_its_session(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from modelship import images
    from modelship.demo import loop, run

    events: list[tuple[str, Any]] = []

    def fake_build(wanted: list[build.Target], with_images: bool) -> int:
        events.append(("build", [t.name for t in wanted], locks.held(locks.build_lock_path()),
                       locks.held(locks.session_lock_path())))
        return 0

    @contextmanager
    def fake_session(keep: bool = False) -> Iterator[object]:
        with testing.machine_lock(timeout=5):  # the real session lock, as testing.session takes it
            events.append(("session", locks.held(locks.build_lock_path())))
            yield testing.LocalCluster(tmp_path / "kubeconfig", "10.0.0.1", None, started_here=False)

    monkeypatch.setattr(build, "_build", fake_build)
    monkeypatch.setattr(testing, "session", fake_session)
    monkeypatch.setattr(images, "build", lambda: events.append(("images",)) or {})
    monkeypatch.setattr(loop, "run_loop", lambda *a, **kw: events.append(("loop",)) or 0)
    assert run.run_cluster_demo(tmp_path, keep=False) == 0
    assert events == [
        ("build", [*CLUSTER, "helm"], True, False),  # under the build lock, not the session's
        ("session", False),  # the build lock is free again before the session starts
        ("images",),
        ("loop",),
    ]


def test_a_failed_build_ends_the_demo_with_its_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from modelship.demo import run

    def fail(wanted: list[build.Target], with_images: bool) -> int:
        raise StepFailed("no Go toolchain")

    monkeypatch.setattr(build, "_build", fail)
    monkeypatch.setattr(testing, "session", lambda **kw: pytest.fail("no session after a failed build"))
    assert run.run_cluster_demo(tmp_path, keep=False) == 1
    assert "no Go toolchain" in capsys.readouterr().out
