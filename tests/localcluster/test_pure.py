"""Pure parts of the local cluster: names, certificates, generated configs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelship.localcluster import addons, gomodgen, images, node, pki, versions
from modelship.localcluster.context import DNS_IP, Context
from modelship.localcluster.paths import ClusterPaths
from modelship.localcluster.status import StepFailed


@pytest.mark.parametrize(("given", "stored"), [
    ("web:1", "docker.io/library/web:1"),
    ("example/web:1", "docker.io/example/web:1"),
    ("docker.io/example/web:1.2", "docker.io/example/web:1.2"),
    ("localhost/x:2", "localhost/x:2"),
    ("registry.example:5000/a/b:3", "registry.example:5000/a/b:3"),
])
def test_names_are_fully_qualified(given: str, stored: str) -> None:
    assert images.qualify(given) == stored


@pytest.mark.parametrize("bad", ["web", "web:latest", "example/web:latest", "registry:5000/web"])
def test_latest_and_untagged_are_refused(bad: str) -> None:
    with pytest.raises(StepFailed):
        images.qualify(bad)


def test_staging_version() -> None:
    assert versions.staging_version("v1.37.2") == "v0.37.2"


def test_gomod_replaces_every_staging_module() -> None:
    gomod = (gomodgen.GOMOD_DIR / "go.mod").read_text()
    assert f"k8s.io/kubernetes {versions.KUBERNETES}" in gomod
    staging = versions.staging_version()
    replaced = re.findall(r"^\s*(k8s\.io/[\w.-]+) => \1 (v\S+)$", gomod, re.M)
    assert len(replaced) > 25
    assert {v for _, v in replaced} == {staging}
    assert (gomodgen.GOMOD_DIR / "go.sum").stat().st_size > 10000


def test_render_from_upstream_gomod() -> None:
    upstream = "module k8s.io/kubernetes\n\ngo 1.26.0\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n)\n"
    out = gomodgen.render(upstream)
    assert f"k8s.io/api => k8s.io/api {versions.staging_version()}" in out
    assert "go 1.26.0" in out


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    pki.ensure_pki(d, "node1", "192.0.2.7")
    return d


def _cert(d: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((d / f"{name}.crt").read_bytes())


def test_every_leaf_is_signed_by_the_ca(pki_dir: Path) -> None:
    ca = _cert(pki_dir, "ca")
    for spec in pki.cert_specs("node1", "192.0.2.7"):
        _cert(pki_dir, spec.name).verify_directly_issued_by(ca)


def test_component_identities_match_default_rbac(pki_dir: Path) -> None:
    def subject(name: str) -> tuple[str, list[str]]:
        c = _cert(pki_dir, name)
        cn = c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        orgs = [a.value for a in c.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        return str(cn), [str(o) for o in orgs]

    assert subject("kubelet") == ("system:node:node1", ["system:nodes"])
    assert subject("admin")[1] == ["system:masters"]
    assert subject("kube-proxy")[0] == "system:kube-proxy"
    assert subject("controller-manager")[0] == "system:kube-controller-manager"
    assert subject("scheduler")[0] == "system:kube-scheduler"


def test_apiserver_serves_the_node_ip_and_service_ip(pki_dir: Path) -> None:
    c = _cert(pki_dir, "apiserver")
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    assert {"127.0.0.1", "192.0.2.7", "10.96.0.1"} <= ips
    assert "kubernetes.default.svc.cluster.local" in san.get_values_for_type(x509.DNSName)
    eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku


def test_kubeconfig_verifies_tls(pki_dir: Path) -> None:
    doc = yaml.safe_load(pki.kubeconfig("https://127.0.0.1:6443", pki_dir, "admin"))
    cluster = doc["clusters"][0]["cluster"]
    assert "certificate-authority-data" in cluster
    assert "insecure-skip-tls-verify" not in cluster


def _ctx(cgroup: int, cap: bool, tmp_path: Path) -> Context:
    return Context(ClusterPaths.make(tmp_path), "node1", "192.0.2.7", cgroup, cap)


def test_kernel_facts_shape_the_configs(tmp_path: Path) -> None:
    v1 = node.kubelet_config(_ctx(1, False, tmp_path))
    assert v1["failCgroupV1"] is False and v1["cgroupDriver"] == "cgroupfs"
    assert "failCgroupV1" not in node.kubelet_config(_ctx(2, True, tmp_path))
    assert v1["authentication"]["anonymous"]["enabled"] is False  # type: ignore[index]
    assert "restrict_oom_score_adj = true" in node.containerd_config(_ctx(1, False, tmp_path))
    assert "restrict_oom_score_adj = false" in node.containerd_config(_ctx(1, True, tmp_path))
    assert str(tmp_path) in node.containerd_config(_ctx(1, True, tmp_path))


def test_apiserver_binds_the_node_address_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not 0.0.0.0 (every interface of the host), as kind binds one address; kubeconfigs follow (issue 22)."""
    from modelship.localcluster import control, procs

    started: dict[str, list[str]] = {}
    monkeypatch.setattr(procs, "start", lambda paths, name, argv, **kw: started.__setitem__(name, argv))
    ctx = _ctx(1, False, tmp_path)
    ctx.paths.config.mkdir(parents=True, exist_ok=True)
    control.start_apiserver(ctx)
    argv = started["kube-apiserver"]
    assert argv[argv.index("--bind-address") + 1] == "192.0.2.7"
    assert argv[argv.index("--advertise-address") + 1] == "192.0.2.7"
    assert "0.0.0.0" not in argv
    assert ctx.api_url == "https://192.0.2.7:6443"


def test_dns_service_sits_at_the_cluster_dns_address() -> None:
    svc = next(d for d in addons.coredns_manifests() if d["kind"] == "Service")
    assert svc["metadata"]["name"] == "kube-dns" and svc["spec"]["clusterIP"] == DNS_IP


def test_storage_class_is_default_and_uses_local_images() -> None:
    docs = addons.storage_manifests("/data/storage")
    sc = next(d for d in docs if d["kind"] == "StorageClass")
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    assert images.HELPER_IMAGE in cm["data"]["helperPod.yaml"]
    assert "/data/storage" in cm["data"]["config.json"]


def test_built_images_keep_the_newest_two_tags_per_repository(tmp_path: Path) -> None:
    record = {n: str(tmp_path / f"{i}.tar") for i, n in enumerate(["a/x:1", "a/x:2", "b/y:1", "a/x:3"])}
    for f in record.values():
        Path(f).write_text("archive")
    kept = images._prune(record)
    assert list(kept) == ["a/x:2", "b/y:1", "a/x:3"]
    assert not (tmp_path / "0.tar").exists() and (tmp_path / "3.tar").exists()
