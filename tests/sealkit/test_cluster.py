"""The certificate / verify / rotate path through the REAL apiserver's service proxy.

kubeseal reaches the controller as ``/api/v1/namespaces/<ns>/services/http:<name>:<port>/proxy``.
The `proxied_controller` fixture runs the real controller as a pod on the stack's node:
`deploy/` applied into a namespace of this module's own (`devstack.deploy.ControllerVariant`:
one replica watching only that namespace, a rate limit these back-to-back calls stay under),
with two key Secrets put there before the pod starts (the committed test key, and a newer one:
the one served). A second Service with an unnamed port selects the same pod. Both sealkit and
the real kubeseal then talk to it through the apiserver.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.sealkit.conftest import VECTORS, assert_one_line_error, run_sealkit

pytestmark = pytest.mark.stack

SECRET = json.dumps(
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "prod"},
        "stringData": {"password": "hunter2"},
    }
)
SERVICE = "sealed-secrets-controller"
UNNAMED = "sealed-secrets-unnamed-port"


def _service(
    core: Any,
    namespace: str,
    port_name: str | None,
    target_port: int,
    name: str = SERVICE,
    *,
    down: bool = False,
) -> None:
    """A controller Service; ``down`` adds the empty Endpoints of a controller with no ready
    pod (what the endpoints controller writes for a selector Service with nothing behind it)."""
    port: dict[str, Any] = {"port": 8080, "targetPort": target_port, "protocol": "TCP"}
    if port_name:
        port["name"] = port_name
    core.create_namespaced_service(
        namespace, {"metadata": {"name": name}, "spec": {"ports": [port]}}
    )
    if down:
        core.create_namespaced_endpoints(namespace, {"metadata": {"name": name}, "subsets": []})


def _settle(args: list[str], name: str = SERVICE) -> None:
    """Wait until the apiserver's proxy sees a just-created Service (its view lags a GET)."""
    deadline = time.monotonic() + 90  # the apiserver sees new Endpoints late under load
    while f'services "{name}" not found' in run_sealkit("--fetch-cert", *args).stderr:
        assert time.monotonic() < deadline, "the service proxy never saw the Service"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def controller_pod(stack: Any, kube_api: Any) -> Iterator[dict[str, Any]]:
    """The controller pod of this module; deleted with its namespace when the module ends."""
    from cryptography import x509
    from kubernetes import client

    from devstack.deploy import ControllerVariant, running_variant
    from sealkit.keys import generate_key_and_cert, key_secret_manifest, load_private_keys
    from tests.conftest import require

    require(stack, "kube", "node", "kubectl")
    old_key = load_private_keys((VECTORS / "test-key.pem").read_bytes())[0]
    old_cert = x509.load_pem_x509_certificate((VECTORS / "test-cert.pem").read_bytes())
    newest_key, newest_cert = generate_key_and_cert(2048)
    variant = ControllerVariant(
        namespace=f"t-seal-{secrets.token_hex(3)}",
        args=("--all-namespaces=false", "--rate-limit=1000", "--rate-limit-burst=1000"),
    )
    keys = [
        key_secret_manifest(old_key, old_cert, name="sealed-secrets-keyold"),
        key_secret_manifest(newest_key, newest_cert, name="sealed-secrets-keynew"),
    ]
    with running_variant(stack, variant, key_secrets=keys):
        # The same pod behind a Service whose only port has no name (kubeseal then asks the
        # proxy for "http:<name>:").
        client.CoreV1Api(kube_api).create_namespaced_service(
            variant.namespace,
            {
                "metadata": {"name": UNNAMED},
                "spec": {
                    "selector": {"app.kubernetes.io/name": SERVICE},
                    "ports": [{"port": 8080, "targetPort": "http", "protocol": "TCP"}],
                },
            },
        )
        yield {
            "namespace": variant.namespace,
            "newest_key": newest_key,
            "newest_cert": newest_cert,
        }


@pytest.fixture(params=["http"])
def proxied_controller(request: Any, stack: Any, controller_pod: dict[str, Any]) -> dict[str, Any]:
    """sealkit/kubeseal arguments for the module's pod, through its named-port Service
    ("http") or the unnamed-port one ("")."""
    args = ["--kubeconfig", stack.kubeconfig, "--controller-namespace", controller_pod["namespace"]]
    if not request.param:
        args += ["--controller-name", UNNAMED]
    deadline = time.monotonic() + 90
    while run_sealkit("--fetch-cert", *args).returncode != 0:  # endpoints propagate
        assert time.monotonic() < deadline, "proxy never reached the controller"
        time.sleep(0.5)
    return {**controller_pod, "args": args}


def kubeseal(path: str, *args: str, input: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([path, *args], input=input, capture_output=True, text=True, timeout=60)


def _open(text: str, key: Any) -> dict[str, bytes]:
    from sealkit.documents import load_documents
    from sealkit.model import unseal_sealed_secret

    (doc,) = load_documents(text)
    data = unseal_sealed_secret(doc, [key])["data"]
    return {k: base64.b64decode(v) for k, v in data.items()}


def test_fetch_cert_through_proxy_matches_kubeseal(proxied_controller, kubeseal_path) -> None:
    from cryptography.hazmat.primitives import serialization

    args = proxied_controller["args"]
    ours = run_sealkit("--fetch-cert", *args)
    theirs = kubeseal(kubeseal_path, "--fetch-cert", *args)
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    pem = proxied_controller["newest_cert"].public_bytes(serialization.Encoding.PEM).decode()
    assert ours.stdout == theirs.stdout == pem


@pytest.mark.parametrize(
    "proxied_controller", ["http", ""], indirect=True, ids=["named-port", "unnamed-port"]
)
def test_seal_without_cert_uses_the_proxy(proxied_controller, kubeseal_path) -> None:
    args = proxied_controller["args"]
    for proc in (run_sealkit(*args, input=SECRET), kubeseal(kubeseal_path, *args, input=SECRET)):
        assert proc.returncode == 0, proc.stderr
        assert _open(proc.stdout, proxied_controller["newest_key"]) == {"password": b"hunter2"}


def test_validate_through_proxy(proxied_controller, kubeseal_path, cert_path, tmp_path) -> None:
    args = proxied_controller["args"]
    good = run_sealkit("--cert", cert_path, input=SECRET).stdout
    bad = json.loads(good)
    bad["metadata"]["name"] = "moved"
    bad_text = json.dumps(bad)
    ours_ok = run_sealkit("--validate", *args, input=good)
    assert ours_ok.returncode == 0 and ours_ok.stderr == "", ours_ok.stderr
    assert kubeseal(kubeseal_path, "--validate", *args, input=good).returncode == 0
    ours_bad = run_sealkit("--validate", *args, input=bad_text)
    assert_one_line_error(ours_bad, 1, "unable to decrypt sealed secret: moved")
    theirs_bad = kubeseal(kubeseal_path, "--validate", *args, input=bad_text)
    assert theirs_bad.returncode == 1 and "unable to decrypt sealed secret" in theirs_bad.stderr


def test_re_encrypt_through_proxy(proxied_controller, kubeseal_path, cert_path, tmp_path) -> None:
    args = proxied_controller["args"]
    sealed = run_sealkit("--cert", cert_path, "-o", "yaml", input=SECRET).stdout
    ours = run_sealkit("--re-encrypt", *args, input=sealed)
    theirs = kubeseal(kubeseal_path, "--re-encrypt", *args, input=sealed)
    for proc in (ours, theirs):
        assert proc.returncode == 0, proc.stderr
        assert _open(proc.stdout, proxied_controller["newest_key"]) == {"password": b"hunter2"}
    # in place, keeping the file's YAML (kubeseal would write JSON into it: #251)
    path = tmp_path / "sealed.yaml"
    path.write_text(sealed)
    assert run_sealkit("--re-encrypt", *args, "-f", str(path)).returncode == 0
    assert path.read_text().startswith("---\n")
    assert _open(path.read_text(), proxied_controller["newest_key"]) == {"password": b"hunter2"}


def test_missing_service(stack, namespace, kubeseal_path) -> None:
    args = ["--kubeconfig", stack.kubeconfig, "--controller-namespace", namespace]
    ours = run_sealkit(*args, input=SECRET)
    assert_one_line_error(
        ours,
        1,
        "cannot get sealed secret service:",
        "not found",
        "--controller-name and --controller-namespace",
    )
    theirs = kubeseal(kubeseal_path, *args, input=SECRET)
    assert theirs.returncode == 1 and "cannot get sealed secret service" in theirs.stderr


@pytest.mark.parametrize("port_name", ["http", None])
def test_no_endpoints_same_message_as_kubeseal(
    stack, kube_api, namespace, kubeseal_path, port_name
) -> None:
    from kubernetes import client

    _service(client.CoreV1Api(kube_api), namespace, port_name, 8080, down=True)
    args = ["--kubeconfig", stack.kubeconfig, "--controller-namespace", namespace]
    _settle(args)
    ours = run_sealkit(*args, input=SECRET)
    theirs = kubeseal(kubeseal_path, *args, input=SECRET)
    # The apiserver's own words, passed through unchanged by both tools.
    assert_one_line_error(ours, 1, "cannot fetch certificate: no endpoints available for service")
    assert ours.stderr == theirs.stderr
    for mode in ("--validate", "--re-encrypt"):
        sealed = json.dumps(
            {
                "apiVersion": "bitnami.com/v1alpha1",
                "kind": "SealedSecret",
                "metadata": {"name": "a", "namespace": "b"},
                "spec": {"encryptedData": {"k": "AgA="}},
            }
        )
        assert_one_line_error(run_sealkit(mode, *args, input=sealed), 1, "no endpoints available")


def test_controller_name_flag(stack, kube_api, namespace) -> None:
    from kubernetes import client

    _service(client.CoreV1Api(kube_api), namespace, "http", 8080, "sealed-secrets", down=True)
    args = ["--kubeconfig", stack.kubeconfig, "--controller-namespace", namespace]
    _settle([*args, "--controller-name", "sealed-secrets"], "sealed-secrets")
    named = run_sealkit(*args, "--controller-name", "sealed-secrets", input=SECRET)
    assert_one_line_error(named, 1, 'no endpoints available for service "sealed-secrets"')
    via_env = run_sealkit(
        *args, input=SECRET, env={"SEALED_SECRETS_CONTROLLER_NAME": "sealed-secrets"}
    )
    assert_one_line_error(via_env, 1, 'no endpoints available for service "sealed-secrets"')


def test_context_flag_selects_the_cluster(stack, namespace, tmp_path) -> None:
    config = yaml.safe_load(open(stack.kubeconfig))
    good = config["contexts"][0]["name"]
    config["clusters"].append(
        {
            "name": "dead",
            "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True},
        }
    )
    config["contexts"].append(
        {"name": "dead", "context": {"cluster": "dead", "user": config["users"][0]["name"]}}
    )
    config["current-context"] = "dead"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    args = [
        "--kubeconfig",
        str(path),
        "--controller-namespace",
        namespace,
        "--request-timeout",
        "5s",
    ]
    dead = run_sealkit(*args, input=SECRET)
    assert_one_line_error(dead, 1, "cannot get sealed secret service")
    alive = run_sealkit(*args, "--context", good, input=SECRET)
    assert_one_line_error(alive, 1, "not found")  # reached the real apiserver this time


def test_bad_kubeconfig(tmp_path) -> None:
    missing = run_sealkit("--kubeconfig", str(tmp_path / "none"), input=SECRET)
    assert_one_line_error(missing, 1, f"stat {tmp_path / 'none'}: no such file or directory")
    garbage = tmp_path / "garbage"
    garbage.write_text("{{{")
    assert_one_line_error(
        run_sealkit("--kubeconfig", str(garbage), input=SECRET), 1, "error loading config file"
    )
    empty = tmp_path / "empty"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    assert_one_line_error(
        run_sealkit("--kubeconfig", str(empty), input=SECRET), 1, "invalid configuration"
    )
