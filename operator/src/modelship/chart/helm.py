"""Run the helm the local cluster builds (never a downloaded one) on the chart.

``template`` returns the rendered objects as dicts, for ``make chart-lint``
and the chart tests. The Kubernetes version helm renders for is the local
cluster's pin, so ``kubeVersion`` checks and ``.Capabilities`` agree with it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelship.localcluster import paths, versions

ROOT = Path(__file__).resolve().parents[4]
CHART = ROOT / "charts" / "modelship"
RELEASE = "modelship"
NAMESPACE = "modelship-system"

Obj = dict[str, Any]


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries its stderr."""


@dataclass(frozen=True)
class Render:
    """One ``helm template``: the objects, and helm's own output for messages."""

    objects: list[Obj]
    text: str

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o.get("kind") == kind]

    def one(self, kind: str, name: str | None = None) -> Obj:
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        if len(found) != 1:
            raise LookupError(f"{len(found)} {kind} objects named {name or '*'} in the render")
        return found[0]


def helm_bin() -> Path:
    path = paths.helm_bin()
    if not path.exists():
        raise HelmError(f"helm {versions.HELM} is not built at {path}: run `make cluster-build` "
                        "(`modelship local build`)")
    return path


def run(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(helm_bin()), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and res.returncode != 0:
        output = "\n".join(t.strip() for t in (res.stdout if args[0] == "lint" else "", res.stderr) if t.strip())
        raise HelmError(f"helm {' '.join(args)} failed ({res.returncode}):\n{output}")
    return res


def _value_args(values_files: Sequence[Path | str], sets: Sequence[str]) -> list[str]:
    args: list[str] = []
    for f in values_files:
        args += ["--values", str(f)]
    for s in sets:
        args += ["--set", s]
    return args


def template(values_files: Sequence[Path | str] = (), sets: Sequence[str] = (), chart: Path = CHART,
             release: str = RELEASE, namespace: str = NAMESPACE) -> Render:
    res = run("template", release, str(chart), "--namespace", namespace, "--kube-version", versions.KUBERNETES,
              *_value_args(values_files, sets))
    objects = [d for d in yaml.safe_load_all(res.stdout) if d]
    return Render(objects, res.stdout)


def lint(values_files: Sequence[Path | str] = (), sets: Sequence[str] = (), chart: Path = CHART,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("lint", "--strict", str(chart), "--kube-version", versions.KUBERNETES,
               *_value_args(values_files, sets), check=check)


def ci_values(chart: Path = CHART) -> list[Path]:
    return sorted((chart / "ci").glob("*.yaml"))


def ci_values_by_name(chart: Path = CHART) -> dict[str, Path]:
    """ci/ha-values.yaml -> "ha", and so on."""
    return {p.name.removesuffix("-values.yaml"): p for p in ci_values(chart)}
