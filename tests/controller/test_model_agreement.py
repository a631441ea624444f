"""The CLI's ``--recovery-unseal`` and the controller's reconciler give the same Secret.

Both call `sealkit.model.unseal`; this guard feeds the same SealedSecrets to the real CLI entry
point and to `plan_reconcile` and compares the whole Secret (type, stripped server fields,
ownerReference, rendered data), so the two can never drift apart again.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.reconcile import plan_reconcile
from sealkit.crypto import b64encode, seal
from sealkit.keys import private_key_pem
from sealkit.model import SERVER_FIELDS, seal_secret
from sealkit.scopes import Scope, label_for
from tests.controller._keys import entries
from tests.sealkit.beyond_support import run_cli

SERVER_META = {
    "uid": "t-uid",
    "resourceVersion": "7",
    "generation": 3,
    "creationTimestamp": "2026-01-01T00:00:00Z",
    "selfLink": "/x",
    "managedFields": [{"manager": "kubectl"}],
    "deletionGracePeriodSeconds": 5,
}


def _sealed(
    name: str,
    *,
    scope: Scope | None = None,
    secret_type: str | None = None,
    template: dict[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "app", "labels": {"team": "a"}, **meta},
        "stringData": {"user": "admin", "password": "pw-" + name},
    }
    if secret_type:
        secret["type"] = secret_type
    sealed = seal_secret(secret, entries(2)[1].public_key, scope=scope)
    sealed["metadata"].update({"uid": f"uid-{name}", "generation": 1})
    sealed["spec"]["template"].update(template or {})
    return sealed


def _legacy_v1() -> dict[str, Any]:
    inner = {
        "apiVersion": "v1",
        "kind": "Secret",
        "data": {"token": base64.b64encode(b"legacy").decode()},
    }
    label = label_for(Scope.STRICT, "app", "legacy")
    blob = seal(json.dumps(inner).encode(), entries(2)[0].public_key, label)
    return {
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": "legacy", "namespace": "app", "uid": "uid-legacy"},
        "spec": {"template": {"metadata": {"name": "legacy"}}, "data": b64encode(blob)},
    }


def cases() -> list[dict[str, Any]]:
    with_server_fields = _sealed("plain")
    with_server_fields["spec"]["template"]["metadata"].update(SERVER_META)
    return [
        with_server_fields,
        _sealed("typed", secret_type="kubernetes.io/basic-auth", template={"immutable": True}),
        _sealed(
            "wide",
            scope=Scope.NAMESPACE_WIDE,
            annotations={"sealedsecrets.bitnami.com/skip-set-owner-references": "true"},
        ),
        _sealed("cluster", scope=Scope.CLUSTER_WIDE),
        _sealed(
            "templated",
            template={"data": {"dsn": "{{ .user }}:{{ .password }}@db", "password": None}},
        ),
        _legacy_v1(),
    ]


def test_recovery_unseal_and_reconciler_write_the_same_secret(tmp_path: Path) -> None:
    keys = entries(2)
    docs = cases()
    sealed_file = tmp_path / "sealed.yaml"
    sealed_file.write_text(yaml.safe_dump_all(docs))
    key_file = tmp_path / "keys.pem"
    key_file.write_bytes(b"".join(private_key_pem(e.private_key) for e in keys))

    result = run_cli(
        [
            "--recovery-unseal",
            "--recovery-private-key",
            str(key_file),
            "-f",
            str(sealed_file),
            "-o",
            "yaml",
        ]
    )
    assert result.code == 0, result.err
    from_cli = [d for d in yaml.safe_load_all(result.out) if d]

    from_controller = []
    for doc in docs:
        plan = plan_reconcile(doc, None, keys)
        assert plan.synced and plan.secret_action == "create", plan.message
        from_controller.append(plan.secret)

    assert from_cli == from_controller
    for secret in from_cli:
        assert secret["type"] in {"Opaque", "kubernetes.io/basic-auth"}
        assert not set(SERVER_FIELDS[:-2]) & set(secret["metadata"])  # all but ownerRefs/mF
        assert "managedFields" not in secret["metadata"]
    by_name = {s["metadata"]["name"]: s for s in from_cli}
    assert by_name["plain"]["type"] == "Opaque"
    assert by_name["typed"]["immutable"] is True
    assert "ownerReferences" not in by_name["wide"]["metadata"]
    assert by_name["cluster"]["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "bitnami.com/v1alpha1",
            "kind": "SealedSecret",
            "name": "cluster",
            "uid": "uid-cluster",
            "controller": True,
        }
    ]
    assert set(by_name["templated"]["data"]) == {"dsn", "user"}
    assert base64.b64decode(by_name["legacy"]["data"]["token"]) == b"legacy"


@pytest.mark.parametrize("index", range(len(cases())))
def test_both_treat_a_moved_sealed_secret_alike(tmp_path: Path, index: int) -> None:
    """Moved to another namespace: a strict or namespace-wide one fails in both, naming no
    value; a cluster-wide one opens in both, to the same Secret."""
    doc = cases()[index]
    doc["metadata"]["namespace"] = "elsewhere"
    sealed_file = tmp_path / "sealed.yaml"
    sealed_file.write_text(yaml.safe_dump(doc))
    key_file = tmp_path / "keys.pem"
    key_file.write_bytes(b"".join(private_key_pem(e.private_key) for e in entries(2)))
    result = run_cli(
        ["--recovery-unseal", "--recovery-private-key", str(key_file), "-f", str(sealed_file)]
    )
    plan = plan_reconcile(doc, None, entries(2))
    if doc["metadata"].get("annotations", {}).get("sealedsecrets.bitnami.com/cluster-wide"):
        assert result.code == 0 and plan.synced
        assert json.loads(result.out) == plan.secret
        return
    assert result.code == 1 and not plan.synced
    assert result.err.strip() == f"error: {plan.message}"
    assert "pw-" not in result.err + plan.message
