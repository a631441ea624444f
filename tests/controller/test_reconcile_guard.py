"""Reconcile budget, key-Secret refusal and the status-message oracle, on the real apiserver
(issue 12). Each runs an in-process controller scoped to its own namespaces.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _ctl import Kube, ensure_crd, running_controller, temp_namespace, wait_for

from sealkit.model import seal_secret

pytestmark = pytest.mark.stack

KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"
PASSWORD = "Hunter2-Secret-Pw9"  # 18 characters, as in the issue


@pytest.fixture
def kube(kube_api: Any) -> Kube:
    ensure_crd(kube_api)
    return Kube(kube_api)


@pytest.fixture
def spaces(kube_api: Any, namespace: str) -> Iterator[tuple[str, str]]:
    """(app namespace, key namespace)."""
    with temp_namespace(kube_api, "t-guard-k") as keys:
        yield namespace, keys


def _sealed(
    app: Any, name: str, ns: str, values: dict[str, str], **template: Any
) -> dict[str, Any]:
    key = wait_for(app.keyring.latest, 30, "a sealing key")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "stringData": values,
    }
    obj = seal_secret(secret, key.public_key)
    for field, value in template.items():
        if field == "labels":
            obj["spec"]["template"]["metadata"]["labels"] = value
        else:
            obj["spec"]["template"][field] = value
    return obj


def _failed(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    return wait_for(
        lambda: (c := kube.synced(ns, name)) and c["status"] == "False" and c,
        60,
        f"{name} Synced=False",
    )


def _warnings(kube: Kube, ns: str, name: str) -> list[str]:
    return [
        e.get("message", "")
        for e in kube.events(ns)
        if (e.get("involvedObject") or {}).get("name") == name and e.get("type") == "Warning"
    ]


def _errors(app: Any, reason: str) -> float:
    text = app.metrics.exposition().decode()
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("sealed_secrets_controller_unseal_errors_total")
            and f'reason="{reason}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_oversized_rendered_secret_is_a_permanent_failure(
    kube: Kube, stack: Any, spaces: tuple[str, str]
) -> None:
    ns, keys = spaces
    big = "b" * 500_000
    with running_controller(stack.kubeconfig, keys, [ns]) as app:
        # 500 kB decrypted + 1 MB rendered: each under the render budget, together over 1 MiB.
        obj = _sealed(app, "too-big", ns, {"big": big}, data={"twice": "{{ .big }}{{ .big }}"})
        kube.create_sealed(obj)
        cond = _failed(kube, ns, "too-big")
        assert cond["message"].startswith(
            "rendered Secret data is 1500000 bytes, over the apiserver's limit of 1048576 bytes"
        ), cond
        assert kube.get_secret(ns, "too-big") is None
        wait_for(
            lambda: any("over the apiserver's limit" in m for m in _warnings(kube, ns, "too-big")),
            30,
            "the Warning event",
        )
        time.sleep(3)  # a retried failure would count again within a few backoffs
        assert _errors(app, "update") == 1  # upstream's reason label; not retried
        # The poison pill of the issue: a value repeated 1000 times stops at the render budget.
        pill = _sealed(app, "pill", ns, {"v": "p" * 600}, data={"out": "{{ .v }}" * 2000})
        kube.create_sealed(pill)
        cond = _failed(kube, ns, "pill")
        assert "rendered data would exceed 1048576 bytes" in cond["message"], cond
        assert kube.get_secret(ns, "pill") is None


@pytest.mark.parametrize("variant", ["label", "name-prefix", "tls-with-label"])
def test_key_secrets_are_refused(
    kube: Kube, stack: Any, spaces: tuple[str, str], variant: str
) -> None:
    from sealkit.keys import generate_key_and_cert, key_secret_manifest

    ns, keys = spaces
    key, cert = generate_key_and_cert(bits=2048)
    manifest = key_secret_manifest(key, cert, name="x")
    values = {k: base64.b64decode(v).decode() for k, v in manifest["data"].items()}
    with running_controller(stack.kubeconfig, keys, [ns]) as app:
        served = wait_for(app.keyring.latest, 30, "a sealing key").certificate_pem
        name, template = "evil", {"labels": {KEY_LABEL: "active"}}
        if variant == "name-prefix":
            name, template = "sealed-secrets-keyevil", {}
        elif variant == "tls-with-label":
            template["type"] = "kubernetes.io/tls"
        kube.create_sealed(_sealed(app, name, keys, values, **template))
        cond = _failed(kube, keys, name)
        assert cond["message"].startswith("refusing to write a sealing-key Secret"), cond
        assert "key Secrets come only from the key manager" in cond["message"]
        wait_for(
            lambda: any(
                "refusing to write a sealing-key Secret" in m for m in _warnings(kube, keys, name)
            ),
            30,
            "the Warning event",
        )
        assert kube.get_secret(keys, name) is None
        assert len(app.keyring.entries()) == 1
        assert app.keyring.latest().certificate_pem == served


def test_dockerconfigjson_trunc_is_no_oracle(
    kube: Kube, stack: Any, spaces: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The attack of the issue: each `trunc -K` would echo one more character of the password
    through the apiserver's validation message. Every K must give the very same message."""
    ns, keys = spaces
    messages = {}
    with (
        caplog.at_level(logging.DEBUG, logger="controller"),
        running_controller(stack.kubeconfig, keys, [ns]) as app,
    ):
        for k in (1, 2, 5, 13, 18):
            name = f"oracle-{k}"
            kube.create_sealed(
                _sealed(
                    app,
                    name,
                    ns,
                    {"password": PASSWORD},
                    type="kubernetes.io/dockerconfigjson",
                    data={".dockerconfigjson": f"{{{{ trunc -{k} .password }}}}"},
                )
            )
            messages[k] = _failed(kube, ns, name)["message"]
            events = wait_for(lambda name=name: _warnings(kube, ns, name), 30, "an event")
            for text in events:
                assert "invalid character" not in text and PASSWORD[-k:] not in text, text
    assert set(messages.values()) == {
        "cannot write Secret: 422 Invalid (data[.dockerconfigjson]: FieldValueInvalid)"
    }, messages
    logged = caplog.text
    assert "invalid character" not in logged
    for k in (5, 13, 18):
        assert PASSWORD[-k:] not in logged
