"""What the chart renders for each ci values file: a hardened operator pod
whose env the operator understands, RBAC exactly as files/rbac.yaml says,
CRDs equal to crds/, and objects valid for the pinned Kubernetes version."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import modelship
from modelship.api import crdgen
from modelship.builders.serving import PORT as SERVING_PORT
from modelship.chart import helm, lint
from modelship.chart import rbac as chart_rbac
from modelship.chart import values as chart_values
from modelship.localcluster import versions
from modelship.settings import OperatorSettings

Obj = dict[str, Any]
CI_FILES = helm.ci_values_by_name()
RBAC = yaml.safe_load((helm.CHART / "files" / "rbac.yaml").read_text())
CLUSTER_WIDE = [n for n in CI_FILES if n != "namespaced"]
# Leader-election settings the operator gains with the HA work; checked against
# OperatorSettings as soon as it has them.
PENDING_SETTINGS = {"leader_election", "lease_name", "lease_namespace", "pod_name"}


def operator_deployment(render: helm.Render) -> Obj:
    return render.one("Deployment")


def container(render: helm.Render) -> Obj:
    containers = operator_deployment(render)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]  # type: ignore[no-any-return]


def env(render: helm.Render) -> dict[str, Obj]:
    return {e["name"]: e for e in container(render)["env"]}


def rules_of(obj: Obj) -> list[Obj]:
    return list(obj.get("rules") or [])


def without_why(rules: list[Obj]) -> list[Obj]:
    return [{k: v for k, v in r.items() if k != "why"} for r in rules]


@pytest.mark.parametrize("name", CI_FILES)
def test_renders_are_valid_for_the_pinned_kubernetes(renders: dict[str, helm.Render], name: str) -> None:
    errors, skipped = lint.validate(renders[name].objects)
    assert not errors
    assert all(s.split()[0] in {"ServiceMonitor", "PodMonitor", "PrometheusRule"} for s in skipped)


def test_strict_validation_catches_an_unknown_field(helm_bin: Path) -> None:
    render = helm.template(sets=["podSecurityContext.runAsUsr=1000"])
    errors, _ = lint.validate(render.objects)
    assert any("runAsUsr" in e for e in errors), errors


@pytest.mark.parametrize("name", CI_FILES)
def test_operator_pod_is_hardened(renders: dict[str, helm.Render], name: str) -> None:
    pod = operator_deployment(renders[name])["spec"]["template"]["spec"]
    c = container(renders[name])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
    assert pod["terminationGracePeriodSeconds"] >= 10
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


@pytest.mark.parametrize("name", CI_FILES)
def test_probes_and_ports(renders: dict[str, helm.Render], name: str) -> None:
    c = container(renders[name])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8080, "health": 8081, "webhook": 8082}
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    service = renders[name].one("Service", "modelship")
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {"metrics": "metrics"}
    # Alertmanager's posts go to the leader only: the pod it labels.
    webhook = renders[name].one("Service", "modelship-webhook")
    assert [p["targetPort"] for p in webhook["spec"]["ports"]] == ["webhook"]
    leading = container(renders[name])["env"]
    assert webhook["spec"]["selector"].get("modelship.io/leader") == "true"
    assert {"name": "MODELSHIP_LEADER_POD_LABEL", "value": "true"} in leading


@pytest.mark.parametrize("name", CI_FILES)
def test_env_names_are_operator_settings(renders: dict[str, helm.Render], name: str) -> None:
    fields = set(OperatorSettings.model_fields)
    for var in env(renders[name]):
        if not var.startswith("MODELSHIP_"):
            continue
        field = var.removeprefix("MODELSHIP_").lower()
        assert field in fields or field in PENDING_SETTINGS, f"{var} is no OperatorSettings field"


@pytest.mark.parametrize("name", CI_FILES)
def test_env_values_parse_as_operator_settings(renders: dict[str, helm.Render], name: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for var, entry in env(renders[name]).items():
        if var.startswith("MODELSHIP_") and "value" in entry:
            monkeypatch.setenv(var, entry["value"])
    settings = OperatorSettings()
    assert settings.reconcile_seconds == 5.0
    assert (settings.metrics_port, settings.health_port, settings.webhook_port) == (8080, 8081, 8082)


def test_every_operator_setting_is_rendered_by_some_values_file(renders: dict[str, helm.Render]) -> None:
    rendered = {v.removeprefix("MODELSHIP_").lower() for r in renders.values() for v in env(r)}
    # namespaces are --namespace flags, not env
    assert set(OperatorSettings.model_fields) - {"namespaces"} <= rendered


def test_default_render(renders: dict[str, helm.Render]) -> None:
    r = renders["default"]
    c = container(r)
    assert c["image"] == f"docker.io/modelship/operator:{modelship.__version__}"
    assert c["command"] == ["modelship", "operator"]
    assert c["args"] == ["--all-namespaces"]
    e = env(r)
    assert e["MODELSHIP_TRAINER_IMAGE"]["value"] == f"docker.io/modelship/trainer:{modelship.__version__}"
    assert e["MODELSHIP_SERVING_IMAGE"]["value"] == f"docker.io/modelship/serving:{modelship.__version__}"
    assert e["MODELSHIP_LEADER_ELECTION"]["value"] == "true"
    assert e["MODELSHIP_LEASE_NAME"]["value"] == "modelship"
    assert e["MODELSHIP_LEASE_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert e["MODELSHIP_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert e["MODELSHIP_WEBHOOK_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "modelship-webhook-token", "key": "token"}}
    assert operator_deployment(r)["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    kinds = {o["kind"] for o in r.objects}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule", "NetworkPolicy", "PodDisruptionBudget",
                        "PersistentVolumeClaim", "ConfigMap"}


# --- The webhook is authenticated by default (issue 22, item 1) ------------------


def webhook_token(render: helm.Render) -> str:
    secret = render.one("Secret", "modelship-webhook-token")
    return base64.b64decode(secret["data"]["token"]).decode()


@pytest.mark.parametrize("name", [n for n in CI_FILES if n != "namespaced"])
def test_every_install_generates_a_kept_webhook_token(renders: dict[str, helm.Render], name: str) -> None:
    r = renders[name]
    secret = r.one("Secret", "modelship-webhook-token")
    assert secret["metadata"]["namespace"] == helm.NAMESPACE
    assert secret["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    token = webhook_token(r)
    assert len(token) == 48 and token.isalnum()
    assert env(r)["MODELSHIP_WEBHOOK_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "modelship-webhook-token", "key": "token"}}


def test_without_a_cluster_each_render_draws_a_new_token(helm_bin: Path) -> None:
    """`helm template` renders (lookup finds nothing); only an install keeps the token (tests/chart/test_on_cluster.py)."""
    assert webhook_token(helm.template()) != webhook_token(helm.template())


def test_an_existing_token_secret_is_used_and_none_generated(renders: dict[str, helm.Render]) -> None:
    r = renders["namespaced"]  # webhook.tokenSecret.name: modelship-webhook
    assert r.of_kind("Secret") == []
    render = helm.template(sets=["webhook.tokenSecret.name=am-token", "webhook.tokenSecret.key=bearer"])
    assert render.of_kind("Secret") == []
    assert env(render)["MODELSHIP_WEBHOOK_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "am-token", "key": "bearer"}}



def test_namespaced_render(renders: dict[str, helm.Render]) -> None:
    r = renders["namespaced"]
    assert container(r)["args"] == ["--namespace=team-a", "--namespace=team-b"]
    # Nothing cluster-wide grants the operator anything.
    assert r.of_kind("ClusterRoleBinding") == []
    for cr in r.of_kind("ClusterRole"):
        assert any(k.startswith("rbac.authorization.k8s.io/aggregate-to-") for k in cr["metadata"]["labels"])
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in r.of_kind("Role")}
    assert roles == {("team-a", "modelship"), ("team-b", "modelship"),
                     (helm.NAMESPACE, "modelship-leader-election")}
    for binding in r.of_kind("RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "modelship", "namespace": helm.NAMESPACE}]
        assert binding["roleRef"]["kind"] == "Role"
    e = env(r)
    assert e["MODELSHIP_WEBHOOK_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "modelship-webhook", "key": "token"}}
    assert e["MODELSHIP_S3_CREDENTIALS_SECRET"]["value"] == "modelship-s3"
    assert e["MODELSHIP_S3_ENDPOINT_URL"]["value"] == "http://minio.storage.svc:9000"
    assert e["HTTPS_PROXY"]["value"] == "http://proxy.example:3128"


@pytest.mark.parametrize("name", CLUSTER_WIDE)
def test_cluster_wide_rbac_is_files_rbac_yaml(renders: dict[str, helm.Render], name: str) -> None:
    r = renders[name]
    assert rules_of(r.one("ClusterRole", "modelship")) == without_why(RBAC["watched"])
    binding = r.one("ClusterRoleBinding", "modelship")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "modelship"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "modelship", "namespace": helm.NAMESPACE}]
    assert r.of_kind("Role") == [r.one("Role", "modelship-leader-election")]


def test_namespaced_roles_are_files_rbac_yaml(renders: dict[str, helm.Render]) -> None:
    for role in renders["namespaced"].of_kind("Role"):
        expected = RBAC["release"] if role["metadata"]["name"].endswith("-leader-election") else RBAC["watched"]
        assert rules_of(role) == without_why(expected)


@pytest.mark.parametrize("name", CI_FILES)
def test_no_wildcards_and_no_secrets_in_any_rule(renders: dict[str, helm.Render], name: str) -> None:
    for obj in renders[name].of_kind("ClusterRole") + renders[name].of_kind("Role"):
        for rule in rules_of(obj):
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert not any("*" in item for item in rule.get(field, [])), (obj["metadata"]["name"], rule)
            assert "secrets" not in rule["resources"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_rbac_file_gives_every_rule_a_reason_and_lists_only_granted_unexercised() -> None:
    for rule in RBAC["watched"] + RBAC["release"]:
        assert rule["why"].strip()
    assert chart_rbac.unexercised(), "the list the audit-log test reads"
    assert set(chart_rbac.unexercised()) <= chart_rbac.granted()
    assert all(reason for reason in chart_rbac.unexercised().values())
    assert chart_rbac.granted("release") == {chart_rbac.Grant(v, "coordination.k8s.io", "leases", "")
                                             for v in ("get", "create", "update")} | {
                                             chart_rbac.Grant("patch", "", "pods", "")}  # the leader label
    assert chart_rbac.Grant("patch", "modelship.io", "models", "status") in chart_rbac.granted("watched")


def test_aggregated_roles(renders: dict[str, helm.Render]) -> None:
    r = renders["default"]
    view, edit = r.one("ClusterRole", "modelship-view"), r.one("ClusterRole", "modelship-edit")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    kinds = {"models", "trainingjobs", "driftmonitors"}
    assert kinds <= set(view["rules"][0]["resources"]) and set(view["rules"][0]["verbs"]) == {"get", "list", "watch"}
    assert set(edit["rules"][0]["resources"]) == kinds
    assert "create" in edit["rules"][0]["verbs"]


@pytest.mark.parametrize("name", CI_FILES)
def test_crds_are_the_generated_ones_and_kept(renders: dict[str, helm.Render], name: str) -> None:
    crds = {o["metadata"]["name"]: o for o in renders[name].of_kind("CustomResourceDefinition")}
    expected = {f"{k.plural}.modelship.io": crdgen.build_crd(k) for k in crdgen.KINDS}
    assert set(crds) == set(expected)
    for crd_name, crd in crds.items():
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "modelship"
        assert crd["spec"] == expected[crd_name]["spec"]


def test_crds_can_be_left_out_or_not_kept(helm_bin: Path) -> None:
    assert helm.template(sets=["crds.enabled=false"]).of_kind("CustomResourceDefinition") == []
    for crd in helm.template(sets=["crds.keep=false"]).of_kind("CustomResourceDefinition"):
        assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})


def test_chart_crd_files_equal_crds_dir() -> None:
    """One source: `make crds` writes both copies from modelship.api.crdgen."""
    ours = {p.name: p.read_text() for p in (helm.CHART / "files" / "crds").glob("*.yaml")}
    repo = {p.name: p.read_text() for p in (helm.ROOT / "crds").glob("*.yaml")}
    assert ours == repo, "charts/modelship/files/crds differs from crds/: run `make crds`"


def test_ha_render(renders: dict[str, helm.Render]) -> None:
    r = renders["ha"]
    dep = operator_deployment(r)
    assert dep["spec"]["replicas"] == 2
    assert env(r)["MODELSHIP_LEASE_NAME"]["value"] == "modelship-leader"
    pdb = r.one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert container(r)["image"].startswith("docker.io/modelship/operator@sha256:")
    assert dep["spec"]["template"]["spec"]["priorityClassName"] == "system-cluster-critical"


def _anti_affinity(r: helm.Render) -> Obj | None:
    spec = operator_deployment(r)["spec"]["template"]["spec"]
    return (spec.get("affinity") or {}).get("podAntiAffinity")


def test_replicas_prefer_different_nodes(renders: dict[str, helm.Render], helm_bin: Path) -> None:
    # Two replicas: preferred on different nodes by default (a one-node cluster still runs both).
    soft = _anti_affinity(renders["ha"])
    assert soft is not None
    term = soft["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == operator_deployment(renders["ha"])["spec"]["selector"]["matchLabels"]
    # One replica: nothing to spread.
    assert _anti_affinity(renders["default"]) is None
    hard = _anti_affinity(helm.template(sets=["replicas=2", "podAntiAffinity=hard"]))
    assert hard is not None and hard["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == \
        "kubernetes.io/hostname"
    assert _anti_affinity(helm.template(sets=["replicas=2", "podAntiAffinity=none"])) is None
    # An affinity of the user's own replaces it.
    own = helm.template(sets=["replicas=2", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
                              ".nodeSelectorTerms[0].matchExpressions[0].key=pool",
                              "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
                              ".nodeSelectorTerms[0].matchExpressions[0].operator=Exists"])
    assert _anti_affinity(own) is None


def test_without_leader_election_one_pod_never_overlaps(helm_bin: Path) -> None:
    r = helm.template(sets=["leaderElection.enabled=false"])
    assert operator_deployment(r)["spec"]["strategy"] == {"type": "Recreate"}
    assert env(r)["MODELSHIP_LEADER_ELECTION"]["value"] == "false"


def test_pvc_render(renders: dict[str, helm.Render]) -> None:
    r = renders["pvc"]
    pvc = r.one("PersistentVolumeClaim", "modelship-artifacts")
    assert pvc["metadata"]["namespace"] == helm.NAMESPACE
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    e = env(r)
    assert e["MODELSHIP_ARTIFACT_PVC"]["value"] == "modelship-artifacts"
    assert e["MODELSHIP_ARTIFACT_STORE"]["value"] == "file:///artifacts/models"
    assert e["MODELSHIP_ARTIFACT_MOUNT_PATH"]["value"] == "/artifacts"


def test_pvc_in_each_watched_namespace(helm_bin: Path) -> None:
    r = helm.template(sets=["watchNamespaces={a,b}", "artifacts.pvc.create=true", "artifacts.store=file:///artifacts"])
    assert {p["metadata"]["namespace"] for p in r.of_kind("PersistentVolumeClaim")} == {"a", "b"}


def test_the_prometheus_token_goes_only_to_the_allowed_urls(renders: dict[str, helm.Render]) -> None:
    prom = env(renders["prometheus"])
    assert json.loads(prom["MODELSHIP_PROMETHEUS_ALLOWED_URLS"]["value"]) == [
        "http://prometheus-operated.monitoring.svc:9090", "https://thanos.example.com/prometheus"]
    assert prom["MODELSHIP_PROMETHEUS_BEARER_TOKEN_FILE"]["value"] == "/etc/modelship/prometheus/token"
    default = env(renders["default"])
    assert default["MODELSHIP_PROMETHEUS_ALLOWED_URLS"]["value"] == "[]"
    assert "MODELSHIP_PROMETHEUS_BEARER_TOKEN_FILE" not in default


def test_a_prometheus_token_without_allowed_urls_is_refused(helm_bin: Path) -> None:
    with pytest.raises(helm.HelmError, match="/prometheus/allowedUrls"):  # by the schema
        helm.template(sets=["prometheus.bearerTokenSecret.name=reader"])
    with pytest.raises(helm.HelmError, match=r"in prometheus\.allowedUrls"):  # by the template, without it
        helm.run("template", "modelship", str(helm.CHART), "--skip-schema-validation", "--kube-version",
                 versions.KUBERNETES, "--set", "prometheus.bearerTokenSecret.name=reader")
    with pytest.raises(ValueError, match=r"prometheus\.allowedUrls"):
        chart_values.Values.model_validate({"prometheus": {"bearerTokenSecret": {"name": "reader"}}})


def test_network_policy(renders: dict[str, helm.Render]) -> None:
    np = renders["namespaced"].one("NetworkPolicy")
    assert np["spec"]["podSelector"]["matchLabels"] == operator_deployment(renders["namespaced"])["spec"]["selector"][
        "matchLabels"]
    ingress = np["spec"]["ingress"][0]
    assert {p["port"] for p in ingress["ports"]} == {"metrics", "webhook"}
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    egress_ports = [{p["port"] for p in rule["ports"]} for rule in np["spec"]["egress"]]
    assert {53} in egress_ports and {443, 6443} in egress_ports
    serving = next(rule for rule in np["spec"]["egress"] if {p["port"] for p in rule["ports"]} == {SERVING_PORT})
    assert serving["to"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "modelship-serving"}
    api = next(rule for rule in np["spec"]["egress"] if {p["port"] for p in rule["ports"]} == {443, 6443})
    assert api["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]


def ports_of(rule: Obj) -> list[int]:
    return [p["port"] for p in rule["ports"]]


def test_network_policy_opens_the_allowed_prometheus_ports(helm_bin: Path, tmp_path: Path) -> None:
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    values = tmp_path / "prometheus.yaml"
    values.write_text(yaml.safe_dump({
        "prometheus": {"allowedUrls": ["http://prometheus-operated.monitoring.svc:9090",
                                       "https://thanos.example.com/prometheus", "http://[fd00::1]",
                                       "http://prometheus-operated.monitoring.svc:9090/tenant"]},
        "networkPolicy": {"egress": {"prometheus": {"peers": [monitoring], "ports": [9091, 443]}}}}))
    r = helm.template([CI_FILES["namespaced"], values])
    errors, _ = lint.validate(r.objects)
    assert not errors
    egress = r.one("NetworkPolicy")["spec"]["egress"]
    # the URLs' ports (the scheme's default when none), then the extra ones, each once
    prometheus = next(rule for rule in egress if 9090 in ports_of(rule))
    assert ports_of(prometheus) == [9090, 443, 80, 9091]
    assert {p["protocol"] for p in prometheus["ports"]} == {"TCP"}
    assert prometheus["to"] == [monitoring]


def test_network_policy_has_no_prometheus_rule_without_allowed_urls(renders: dict[str, helm.Render],
                                                                   helm_bin: Path) -> None:
    egress = renders["namespaced"].one("NetworkPolicy")["spec"]["egress"]
    assert [ports_of(rule) for rule in egress] == [[53, 53], [443, 6443], [SERVING_PORT]]
    # allowed URLs and no peers: any address on their ports
    r = helm.template([CI_FILES["namespaced"]], sets=["prometheus.allowedUrls={https://prom.example}"])
    prometheus = r.one("NetworkPolicy")["spec"]["egress"][-1]
    assert ports_of(prometheus) == [443] and "to" not in prometheus
