"""Key and certificate material for the local control plane.

Everything is generated fresh per stack with `cryptography` (RSA 2048, short
validity) and written with mode 0600 into the stack directory. The extensions
are the full, proper set (BasicConstraints, KeyUsage, EKU, SKI/AKI, SANs)
because Go requires SANs and Python 3.13+ verifies X.509 strictly.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True)
class ControlPlaneCerts:
    """Paths of the generated PEM files."""

    ca_crt: Path
    ca_key: Path
    apiserver_crt: Path
    apiserver_key: Path
    admin_crt: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _key_usage(*, cert_sign: bool = False, key_encipherment: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(cn: str = "sealkit-devstack-ca") -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A self-signed CA (CA:TRUE critical, keyCertSign+cRLSign, SKI)."""
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(
    ca_key: rsa.RSAPrivateKey,
    ca_cert: x509.Certificate,
    *,
    cn: str,
    org: str | None = None,
    server: bool = False,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A leaf certificate signed by the CA: serverAuth (with SANs) or clientAuth."""
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    eku = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key_encipherment=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def write_control_plane_certs(
    directory: Path, *, extra_ips: tuple[str, ...] = ()
) -> ControlPlaneCerts:
    """Generate CA, apiserver serving cert, admin client cert and SA signing pair.

    `extra_ips`: further SANs of the apiserver (with a node: the host veth address
    it advertises and the `kubernetes` Service's ClusterIP)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = serialization.Encoding.PEM
    ca_key, ca_cert = make_ca()
    srv_key, srv_cert = issue(
        ca_key,
        ca_cert,
        cn="kube-apiserver",
        server=True,
        dns=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        ips=("127.0.0.1", *extra_ips),
    )
    adm_key, adm_cert = issue(ca_key, ca_cert, cn="testplane-admin", org="system:masters")
    sa_key = _new_key()
    sa_pub = sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    d = directory
    return ControlPlaneCerts(
        ca_crt=_write(d / "ca.crt", ca_cert.public_bytes(pem)),
        ca_key=_write(d / "ca.key", _key_pem(ca_key)),
        apiserver_crt=_write(d / "apiserver.crt", srv_cert.public_bytes(pem)),
        apiserver_key=_write(d / "apiserver.key", _key_pem(srv_key)),
        admin_crt=_write(d / "admin.crt", adm_cert.public_bytes(pem)),
        admin_key=_write(d / "admin.key", _key_pem(adm_key)),
        sa_key=_write(d / "sa.key", _key_pem(sa_key)),
        sa_pub=_write(d / "sa.pub", sa_pub),
    )


@dataclass(frozen=True)
class NodeCerts:
    """The node's credentials, all signed by the stack's CA."""

    kubelet_client_crt: Path  # O=system:nodes, CN=system:node:<name>: the Node authorizer
    kubelet_client_key: Path
    kubelet_serving_crt: Path  # the kubelet's :10250, SAN = the node's IP
    kubelet_serving_key: Path
    kube_proxy_crt: Path  # CN=system:kube-proxy (bound by the default RBAC)
    kube_proxy_key: Path
    apiserver_kubelet_crt: Path  # the apiserver's client cert for logs/exec/port-forward
    apiserver_kubelet_key: Path


def _load_ca(directory: Path) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key, x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())


def write_node_certs(directory: Path, node_name: str, node_ip: str) -> NodeCerts:
    """Issue the node's certificates with the CA in `directory` (written 0600 there)."""
    ca_key, ca_cert = _load_ca(directory)
    pem = serialization.Encoding.PEM
    out: list[Path] = []
    for stem, kwargs in (
        ("kubelet-client", {"cn": f"system:node:{node_name}", "org": "system:nodes"}),
        ("kubelet-serving", {"cn": node_name, "server": True, "dns": (node_name,),
                             "ips": (node_ip,)}),
        ("kube-proxy", {"cn": "system:kube-proxy"}),
        ("apiserver-kubelet-client", {"cn": "kube-apiserver-kubelet-client",
                                      "org": "system:masters"}),
    ):  # fmt: skip
        key, cert = issue(ca_key, ca_cert, **kwargs)  # type: ignore[arg-type]
        out += [_write(directory / f"{stem}.crt", cert.public_bytes(pem)),
                _write(directory / f"{stem}.key", _key_pem(key))]  # fmt: skip
    return NodeCerts(*out)
