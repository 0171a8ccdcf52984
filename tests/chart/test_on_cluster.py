"""Every ci render accepted by a real API server (``kubectl apply
--dry-run=server``), the Prometheus Operator's kinds included: their CRDs
come from its Go module (``modelship local crds install``). Third-party CRDs
and namespaces this test adds are removed again, so a cluster shared with
the end-to-end suite looks as before."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelship.chart import helm
from modelship.localcluster import thirdparty

CI_FILES = helm.ci_values_by_name()
NAMESPACES = (helm.NAMESPACE, "team-a", "team-b")  # the release's and ci/namespaced-values.yaml's
PROBE_CRD = {"prometheus-operator": "servicemonitors.monitoring.coreos.com",
             "gateway-api": "httproutes.gateway.networking.k8s.io"}

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(local_cluster: Any) -> Iterator[Any]:
    """The local cluster with the third-party CRDs and the test's namespaces, restored afterwards."""
    added_crds: list[Path] = []
    added_namespaces = []
    try:
        for name, probe in PROBE_CRD.items():
            if local_cluster.kubectl("get", "crd", probe, check=False).returncode != 0:
                added_crds += thirdparty.install(name, local_cluster.kubeconfig, local_cluster.kubectl_bin)
        for ns in NAMESPACES:
            if local_cluster.kubectl("get", "namespace", ns, check=False).returncode != 0:
                local_cluster.kubectl("create", "namespace", ns)
                added_namespaces.append(ns)
        yield local_cluster
    finally:
        for ns in added_namespaces:
            local_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        if added_crds:
            local_cluster.kubectl("delete", "--ignore-not-found", "--wait=false",
                                  *[a for f in added_crds for a in ("-f", str(f))], check=False, timeout=300)


def test_third_party_crds_come_from_their_modules() -> None:
    names = {p.name for p in thirdparty.crd_files("prometheus-operator")}
    assert {"monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_podmonitors.yaml",
            "monitoring.coreos.com_prometheusrules.yaml"} <= names
    assert "gateway.networking.k8s.io_httproutes.yaml" in {p.name for p in thirdparty.crd_files("gateway-api")}


@pytest.mark.parametrize("name", CI_FILES)
def test_render_passes_server_side_dry_run(cluster: Any, name: str) -> None:
    render = helm.template([CI_FILES[name]])
    res = cluster.kubectl("apply", "--dry-run=server", "--server-side", "--force-conflicts",
                          "--field-manager=modelship-chart-test",
                          "-f", "-", stdin=render.text, check=False, timeout=300)
    assert res.returncode == 0, res.stderr
    applied = [line for line in res.stdout.splitlines() if line.strip()]
    assert len(applied) == len(render.objects), res.stdout


def test_helm_install_dry_run_prints_next_steps(cluster: Any) -> None:
    """helm's own server dry run, which also renders NOTES.txt with the cluster's capabilities."""
    res = subprocess.run(
        [str(helm.helm_bin()), "install", "modelship-dry-run", str(helm.CHART), "--namespace", helm.NAMESPACE,
         "--dry-run=server", "--values", str(CI_FILES["prometheus"]),
         # The CRDs may already be in the cluster, applied without Helm (tests/api): Helm would
         # refuse to adopt them here; their server-side check is the kubectl dry run above.
         "--set", "crds.enabled=false"],
        env=cluster.env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert res.returncode == 0, res.stderr
    notes = res.stdout.split("NOTES:", 1)[1]
    assert "examples/quickstart/model.yaml" in notes
    assert "kubectl get models" in notes
    assert "/metrics" in notes and "ServiceMonitor" in notes


def test_webhook_token_is_generated_once_and_kept(cluster: Any) -> None:
    """The generated webhook token survives `helm upgrade`, and `helm uninstall` + install (issue 22, item 1)."""
    import base64
    import json
    import uuid

    ns = f"chart-token-{uuid.uuid4().hex[:6]}"
    release = "tok"
    cluster.kubectl("create", "namespace", ns)
    # Nothing cluster-wide and no pods: the CRDs stay the session's, no image is pulled.
    sets = ["crds.enabled=false", "replicas=0", "rbac.aggregateClusterRoles=false", f"watchNamespaces={{{ns}}}"]

    def helm_cmd(*args: str) -> str:
        res = subprocess.run([str(helm.helm_bin()), *args, "--namespace", ns], env=cluster.env,
                             capture_output=True, text=True, timeout=300, check=False)
        assert res.returncode == 0, res.stderr
        return res.stdout

    def token() -> str:
        secret = json.loads(cluster.kubectl("get", "secret", "-n", ns, "tok-modelship-webhook-token",
                                            "-o", "json").stdout)
        return base64.b64decode(secret["data"]["token"]).decode()

    def install(*extra: str) -> None:
        helm_cmd("upgrade", "--install", release, str(helm.CHART), *[a for s in [*sets, *extra] for a in ("--set", s)])

    try:
        notes = helm_cmd("upgrade", "--install", release, str(helm.CHART),
                         *[a for s in sets for a in ("--set", s)]).split("NOTES:", 1)[1]
        assert f"Secret {ns}/tok-modelship-webhook-token, key token (generated on install" in notes
        assert f"kubectl -n {ns} get secret tok-modelship-webhook-token" in notes and "get 401" in notes
        first = token()
        assert len(first) == 48
        install("reconcileSeconds=3")
        assert token() == first, "helm upgrade replaced the webhook token"
        helm_cmd("uninstall", release, "--wait")
        assert token() == first, "helm uninstall removed the kept Secret"
        install()
        assert token() == first, "a reinstall replaced the kept token"
        deployment = json.loads(cluster.kubectl("get", "deployment", "-n", ns, "tok-modelship", "-o", "json").stdout)
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["MODELSHIP_WEBHOOK_TOKEN"]["valueFrom"]["secretKeyRef"] == {
            "name": "tok-modelship-webhook-token", "key": "token"}
    finally:
        subprocess.run([str(helm.helm_bin()), "uninstall", release, "--namespace", ns], env=cluster.env,
                       capture_output=True, timeout=120, check=False)
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
