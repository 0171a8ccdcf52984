"""Third-party CRDs from their Go modules: the Prometheus Operator's
(ServiceMonitor, PodMonitor, PrometheusRule, ...) and the Gateway API's
standard channel (HTTPRoute, ...).

No release download: ``go mod download`` fetches the pinned module from the
Go module proxy (the same toolchain and proxy ``local build`` uses), and the
CRD files are copied into the cache, ``<cache>/crds/<name>-<version>/``, so
later calls take no network. ``modelship local crds install NAME`` applies
them to the running local cluster (server-side: some are too big for the
last-applied annotation).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from modelship.localcluster import build, paths, versions
from modelship.localcluster.status import StepFailed


@dataclass(frozen=True)
class CrdSource:
    """Where a set of CRDs lives: a Go module, its pinned version and the directory inside it."""

    name: str
    module: str
    version: str
    directory: str

    @property
    def cache_dir(self) -> Path:
        return paths.cache_root() / "crds" / f"{self.name}-{self.version}"


SOURCES: dict[str, CrdSource] = {
    "prometheus-operator": CrdSource("prometheus-operator", "github.com/prometheus-operator/prometheus-operator",
                                     versions.PROMETHEUS_OPERATOR, "example/prometheus-operator-crd"),
    "gateway-api": CrdSource("gateway-api", "sigs.k8s.io/gateway-api", versions.GATEWAY_API,
                             "config/crd/standard"),
}


def source(name: str) -> CrdSource:
    try:
        return SOURCES[name]
    except KeyError:
        raise StepFailed(f"unknown CRD set {name!r}; known: {', '.join(SOURCES)}") from None


def is_crd(path: Path) -> bool:
    """Only CustomResourceDefinitions: the Gateway API's directory also holds a ValidatingAdmissionPolicy."""
    # Top-level kinds, read textually: PyYAML cannot load some of these files (a bare `=` value).
    kinds = re.findall(r"^kind:\s*(\S+)", path.read_text(), flags=re.MULTILINE)
    return bool(kinds) and set(kinds) == {"CustomResourceDefinition"}


def download(src: CrdSource) -> Path:
    """The module's directory in the Go module cache (downloaded from the proxy when absent)."""
    go = build.find_go()
    res = subprocess.run([go, "mod", "download", "-json", f"{src.module}@{src.version}"],
                         env=build.go_env(go), capture_output=True, text=True, timeout=600, check=False)
    info = json.loads(res.stdout) if res.stdout.strip().startswith("{") else {}
    if res.returncode != 0 or not info.get("Dir"):
        raise StepFailed(f"go mod download {src.module}@{src.version} failed: "
                         f"{info.get('Error') or res.stderr.strip()}")
    return Path(info["Dir"])


def crd_files(name: str) -> list[Path]:
    """The CRD YAML files of ``name`` (``prometheus-operator`` or ``gateway-api``), from the cache."""
    src = source(name)
    done = src.cache_dir / ".complete"
    if not done.exists():
        module_dir = download(src)
        found = sorted(p for p in (module_dir / src.directory).glob("*.yaml") if is_crd(p))
        if not found:
            raise StepFailed(f"{src.module}@{src.version} has no CRDs in {src.directory}/")
        tmp = src.cache_dir.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for p in found:
            (tmp / p.name).write_bytes(p.read_bytes())  # module cache files are read-only
        (tmp / ".complete").write_text(f"{src.module}@{src.version}\n")
        shutil.rmtree(src.cache_dir, ignore_errors=True)
        tmp.rename(src.cache_dir)
    return sorted(src.cache_dir.glob("*.yaml"))


def install(name: str, kubeconfig: Path, kubectl: str | None = None) -> list[Path]:
    """Apply ``name``'s CRDs to the cluster ``kubeconfig`` names and wait until they are Established."""
    files = crd_files(name)
    kubectl = kubectl or (str(paths.kube_bin("kubectl")) if paths.kube_bin("kubectl").exists() else "kubectl")
    base = [kubectl, "--kubeconfig", str(kubeconfig)]
    args = [a for f in files for a in ("-f", str(f))]
    res = subprocess.run([*base, "apply", "--server-side", "--force-conflicts",
                          "--field-manager=modelship-local", *args],
                         capture_output=True, text=True, timeout=300, check=False)
    if res.returncode != 0:
        raise StepFailed(f"kubectl apply of the {name} CRDs failed: {res.stderr.strip()}")
    res = subprocess.run([*base, "wait", "--for=condition=Established", "--timeout=120s", *args],
                         capture_output=True, text=True, timeout=180, check=False)
    if res.returncode != 0:
        raise StepFailed(f"the {name} CRDs did not become Established: {res.stderr.strip()}")
    return files
