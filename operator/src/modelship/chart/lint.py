"""``make chart-lint``: helm lint --strict and helm template for every ci
values file, each rendered object validated by kubernetes-validate --strict
at the pinned Kubernetes version.

The Prometheus Operator's kinds have no schema there; they, and the CRDs'
instances, are checked server-side by the chart's cluster test
(``kubectl apply --dry-run=server``). Any other kind without a schema fails.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from modelship.chart import helm
from modelship.localcluster import versions

# Kinds kubernetes-validate has no schema for, checked against their CRDs on a cluster instead.
SERVER_SIDE_ONLY = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PodMonitor"),
                    ("monitoring.coreos.com/v1", "PrometheusRule")}


def validation_version() -> str:
    """kubernetes-validate's schemas are per minor: v1.37.2 -> 1.37."""
    major, minor, _ = versions.KUBERNETES.lstrip("v").split(".")
    return f"{major}.{minor}"


def validate(objects: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(errors, skipped kinds) of strict validation of ``objects``."""
    import kubernetes_validate

    errors, skipped = [], []
    for obj in objects:
        what = f"{obj.get('kind')} {obj.get('metadata', {}).get('namespace', '')}/{obj.get('metadata', {}).get('name')}"
        if (obj.get("apiVersion"), obj.get("kind")) in SERVER_SIDE_ONLY:
            skipped.append(what)
            continue
        try:
            kubernetes_validate.validate(obj, validation_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{what}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{what}: no schema for {obj.get('apiVersion')} {obj.get('kind')} at "
                          f"{validation_version()}")
    return errors, skipped


def check(values_file: Path, chart: Path = helm.CHART) -> list[str]:
    """Every problem of one values file: helm lint's, then the render's."""
    problems = []
    res = helm.lint([values_file], chart=chart, check=False)
    if res.returncode != 0:
        problems.append(f"helm lint --strict failed:\n{res.stdout}{res.stderr}")
        return problems
    render = helm.template([values_file], chart=chart)
    errors, skipped = validate(render.objects)
    problems += errors
    status = "FAIL" if problems else "ok"
    print(f" {'✓' if not problems else '✗'} {values_file.name}: {len(render.objects)} objects, "
          f"{len(skipped)} left to the server-side check ({status})")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    chart = Path(args[0]) if args else helm.CHART
    files = helm.ci_values(chart)
    if not files:
        print(f"chart-lint: no values files in {chart / 'ci'}", file=sys.stderr)
        return 1
    print(f"helm {versions.HELM} lint --strict and template at Kubernetes {versions.KUBERNETES}; "
          f"kubernetes-validate --strict {validation_version()}")
    failed = 0
    for f in files:
        problems = check(f, chart)
        for p in problems:
            print(f"   {f.name}: {p}")
        failed += bool(problems)
    if failed:
        print(f"chart-lint: {failed} of {len(files)} values files failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
