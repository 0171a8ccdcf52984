"""The cluster's CA and certificates (the `cryptography` package), and the
kubeconfigs that use them. TLS is verified everywhere: every kubeconfig
carries the CA, none skips verification. One client certificate per
component, named the way the default RBAC bindings expect."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class CertSpec:
    name: str  # file stem under pki/
    cn: str
    orgs: tuple[str, ...] = ()
    server: bool = False
    client: bool = False
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = field(default_factory=tuple)


def cert_specs(node: str, node_ip: str, service_ip: str = "10.96.0.1") -> list[CertSpec]:
    local = ("localhost", node)
    loop = ("127.0.0.1", node_ip)
    api_dns = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
               "kubernetes.default.svc.cluster.local", *local)
    return [
        CertSpec("etcd-server", "etcd", server=True, client=True, dns=local, ips=loop),
        CertSpec("apiserver", "kube-apiserver", server=True, dns=api_dns, ips=(*loop, service_ip)),
        CertSpec("apiserver-etcd-client", "kube-apiserver-etcd-client", client=True),
        CertSpec("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",), client=True),
        CertSpec("admin", "kubernetes-admin", ("system:masters",), client=True),
        CertSpec("controller-manager", "system:kube-controller-manager", client=True),
        CertSpec("controller-manager-serving", "kube-controller-manager", server=True, dns=local, ips=loop),
        CertSpec("scheduler", "system:kube-scheduler", client=True),
        CertSpec("scheduler-serving", "kube-scheduler", server=True, dns=local, ips=loop),
        CertSpec("kubelet", f"system:node:{node}", ("system:nodes",), client=True),
        CertSpec("kubelet-serving", f"system:node:{node}", ("system:nodes",), server=True, dns=local, ips=loop),
        CertSpec("kube-proxy", "system:kube-proxy", client=True),
    ]


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _load_ca(pki: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def make_ca(pki: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name("modelship-local-ca")
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + 10 * VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(pki / "ca.key", key)
    (pki / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def issue(pki: Path, spec: CertSpec) -> None:
    ca_cert, ca_key = _load_ca(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usages = [u for u, on in ((ExtendedKeyUsageOID.SERVER_AUTH, spec.server),
                              (ExtendedKeyUsageOID.CLIENT_AUTH, spec.client)) if on]
    builder = (
        x509.CertificateBuilder().subject_name(_name(spec.cn, spec.orgs)).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, content_commitment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in spec.dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys(spec.ips)]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(pki / f"{spec.name}.key", key)
    (pki / f"{spec.name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_sa_key(pki: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki / "sa.key", key)
    (pki / "sa.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def ensure_pki(pki: Path, node: str, node_ip: str) -> None:
    """Make the CA once; (re)issue leaf certificates when missing or the node IP changed."""
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    marker = pki / "issued-for"
    fresh = not (pki / "ca.crt").exists()
    if fresh:
        make_ca(pki)
        make_sa_key(pki)
    if fresh or not marker.exists() or marker.read_text() != f"{node} {node_ip}":
        for spec in cert_specs(node, node_ip):
            issue(pki, spec)
        marker.write_text(f"{node} {node_ip}")


def kubeconfig(server: str, pki: Path, client: str, cluster: str = "modelship-local") -> str:
    """A kubeconfig that embeds the CA and the client's certificate (verified TLS)."""
    import base64

    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")}}],
        "users": [{"name": client, "user": {"client-certificate-data": b64(f"{client}.crt"),
                                            "client-key-data": b64(f"{client}.key")}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": client}}],
        "current-context": cluster,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_kubeconfig(path: Path, server: str, pki: Path, client: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(kubeconfig(server, pki, client))
    path.chmod(0o600)
