"""Pure parts of devstack: certificates, env file quoting, kubeconfig parsing (no processes)."""

from __future__ import annotations

import base64
import ipaddress
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.certs import write_control_plane_certs
from devstack.kubeconfig import server_and_ca, write_kubeconfig
from devstack.stack import ENV_VARS, parse_env, render_env


def test_certificates_have_the_extensions_go_and_strict_python_need(tmp_path: Path) -> None:
    certs = write_control_plane_certs(tmp_path)
    ca = x509.load_pem_x509_certificate(certs.ca_crt.read_bytes())
    srv = x509.load_pem_x509_certificate(certs.apiserver_crt.read_bytes())
    adm = x509.load_pem_x509_certificate(certs.admin_crt.read_bytes())

    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign

    san = srv.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    eku = srv.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    srv.verify_directly_issued_by(ca)

    assert adm.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "testplane-admin"
    assert adm.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "system:masters"
    )
    assert (
        ExtendedKeyUsageOID.CLIENT_AUTH
        in adm.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    adm.verify_directly_issued_by(ca)
    for key in (certs.ca_key, certs.apiserver_key, certs.admin_key, certs.sa_key):
        assert key.stat().st_mode & 0o077 == 0


def test_env_file_round_trips_awkward_values_through_bash() -> None:
    env = {k: f"v-{k}" for k in ENV_VARS}
    env["PGPASSWORD"] = 'it\'s $HOME `x` "q" ; rm -rf /'
    env["KUBECONFIG"] = "/path with spaces/kc"
    text = render_env(env)
    assert parse_env(text) == env
    script = f'set -eu\n{text}\nprintf \'%s\\n\' "$PGPASSWORD" "$KUBECONFIG"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [env["PGPASSWORD"], env["KUBECONFIG"]]


def test_kubeconfig_round_trip_and_external_parsing(tmp_path: Path) -> None:
    certs = write_control_plane_certs(tmp_path / "pki")
    kc = write_kubeconfig(
        tmp_path / "kc",
        server="https://127.0.0.1:6443",
        ca_file=certs.ca_crt,
        client_cert=certs.admin_crt,
        client_key=certs.admin_key,
    )
    assert kc.stat().st_mode & 0o077 == 0
    server, ca = server_and_ca(kc, tmp_path / "out-ca.crt")
    assert server == "https://127.0.0.1:6443"
    assert Path(ca).read_bytes() == certs.ca_crt.read_bytes()

    # A kind-style kubeconfig with a CA file path relative to the kubeconfig.
    (tmp_path / "rel").mkdir()
    (tmp_path / "rel" / "ca.pem").write_bytes(certs.ca_crt.read_bytes())
    doc = {
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [
            {"name": "k", "cluster": {"server": "https://h:1", "certificate-authority": "ca.pem"}}
        ],
        "users": [{"name": "u", "user": {"token": base64.b64encode(b"t").decode()}}],
    }
    (tmp_path / "rel" / "config").write_text(yaml.safe_dump(doc))
    server, ca = server_and_ca(tmp_path / "rel" / "config", tmp_path / "unused.crt")
    assert (server, ca) == ("https://h:1", str(tmp_path / "rel" / "ca.pem"))


def test_pid_alive_treats_an_unreaped_child_as_gone() -> None:
    import time

    from devstack.processes import pid_alive

    child = subprocess.Popen(["sleep", "30"])
    try:
        assert pid_alive(child.pid)
    finally:
        child.kill()
    deadline = time.monotonic() + 5
    while pid_alive(child.pid):  # exited but not reaped: a zombie, which is not alive
        assert time.monotonic() < deadline, "a zombie still counts as alive"
        time.sleep(0.05)
    child.wait()
    assert not pid_alive(child.pid) and not pid_alive(0)


def test_askpass_socket_stays_in_a_short_stack_and_moves_out_of_a_long_one(
    tmp_path: Path,
) -> None:
    import socket

    from devstack.argocd import askpass_socket, remove_socket_dir

    short = tmp_path / "s"
    assert askpass_socket(short) == short / "argocd-data" / "tmp" / "reposerver-ask-pass.sock"

    deep = tmp_path / ("d" * 90) / "stack"
    path = askpass_socket(deep)
    assert not path.is_relative_to(deep) and len(str(path)) <= 107
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert askpass_socket(deep) == path  # the same stack always gets the same dir
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # the kernel takes it (the in-stack path it replaces would not)
    with socket.socket(socket.AF_UNIX) as sock, pytest.raises(OSError):
        sock.bind(str(deep / "argocd-data" / "tmp" / "reposerver-ask-pass.sock"))
    remove_socket_dir(deep)
    assert not path.parent.exists()
