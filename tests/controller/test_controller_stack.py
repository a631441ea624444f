"""The controller against the real kube-apiserver (+ KCM for the garbage collector).

Each test runs an in-process `sealkit-controller` (controller.main.App) scoped to its own
namespaces and its own key namespace, so test runs sharing the apiserver do not interfere.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from typing import Any

import pytest
from _ctl import Kube, ensure_crd, running_controller, temp_namespace, wait_for
from kubernetes.client.exceptions import ApiException

from sealkit.model import seal_secret
from sealkit.scopes import Scope

pytestmark = pytest.mark.stack

VALUES = {"password": "pw-7f3a9c1e-known", "api-token": "tok-51c0ffee-known"}


@pytest.fixture
def kube(kube_api: Any) -> Kube:
    ensure_crd(kube_api)
    return Kube(kube_api)


@pytest.fixture
def spaces(kube_api: Any, namespace: str) -> Iterator[tuple[str, str, str]]:
    """(app namespace, second app namespace, key namespace)."""
    with temp_namespace(kube_api, "t-ctl-b") as other, temp_namespace(kube_api, "t-ctl-k") as keys:
        yield namespace, other, keys


def sealed_for(
    app: Any,
    name: str,
    ns: str,
    *,
    scope: Scope | None = None,
    values: dict[str, str] | None = None,
    annotations: dict | None = None,
    **template: Any,
) -> dict[str, Any]:
    key = wait_for(app.keyring.latest, 30, "a sealing key")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app": "demo"},
            "annotations": dict(annotations or {}),
        },
        "stringData": dict(values or VALUES),
    }
    obj = seal_secret(secret, key.public_key, scope=scope)
    obj["spec"]["template"].update(template)
    return obj


def plain(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def test_scopes_status_events_and_renames(
    kube: Kube, stack: Any, spaces: tuple[str, str, str]
) -> None:
    ns, other, keys = spaces
    with running_controller(stack.kubeconfig, keys, [ns, other]) as app:
        strict = sealed_for(app, "strict", ns)
        nswide = sealed_for(app, "nswide", ns, scope=Scope.NAMESPACE_WIDE)
        cwide = sealed_for(app, "cwide", ns, scope=Scope.CLUSTER_WIDE)
        for obj in (strict, nswide, cwide):
            kube.create_sealed(obj)
        for name in ("strict", "nswide", "cwide"):
            secret = wait_for(lambda n=name: kube.get_secret(ns, n), 30, f"Secret {name}")
            assert plain(secret) == VALUES
            assert secret["metadata"]["labels"] == {"app": "demo"}
            refs = secret["metadata"]["ownerReferences"]
            assert len(refs) == 1 and refs[0]["kind"] == "SealedSecret" and refs[0]["controller"]
            cond = wait_for(lambda n=name: kube.synced(ns, n), 10, "status")
            assert cond["status"] == "True" and cond["type"] == "Synced"
            assert kube.get_sealed(ns, name)["status"]["observedGeneration"] == 1

        def renamed(obj: dict, name: str | None = None, namespace: str | None = None) -> dict:
            o = copy.deepcopy(obj)
            o["metadata"]["name"] = name or o["metadata"]["name"]
            o["metadata"]["namespace"] = namespace or o["metadata"]["namespace"]
            return o

        kube.create_sealed(renamed(strict, name="strict-renamed"))
        kube.create_sealed(renamed(strict, namespace=other))
        kube.create_sealed(renamed(nswide, name="nswide-renamed"))
        kube.create_sealed(renamed(nswide, namespace=other))
        kube.create_sealed(renamed(cwide, name="cwide-moved", namespace=other))
        ok = [(ns, "nswide-renamed"), (other, "cwide-moved")]
        bad = [(ns, "strict-renamed"), (other, "strict"), (other, "nswide")]
        for n, name in ok:
            assert plain(wait_for(lambda n=n, m=name: kube.get_secret(n, m), 30, name)) == VALUES
        for n, name in bad:
            cond = wait_for(lambda n=n, m=name: kube.synced(n, m), 30, f"status of {name}")
            assert cond["status"] == "False"
            assert cond["message"].startswith("no key could decrypt secret (")
            assert kube.get_secret(n, name) is None

        def reasons() -> set[tuple[str, str]]:
            return {(e["involvedObject"]["name"], e["reason"]) for e in kube.events(ns)}

        # events are posted from a background pool: wait for them
        wait_for(
            lambda: {("strict", "Unsealed"), ("strict-renamed", "ErrUnsealFailed")} <= reasons(),
            30,
            "events",
        )
        events = kube.events(ns)
        ev = next(e for e in events if e["reason"] == "ErrUnsealFailed")
        assert ev["message"].startswith("Failed to unseal: no key could decrypt secret")
        assert ev["source"]["component"] == "sealed-secrets" and ev["type"] == "Warning"
        text = repr(events) + repr(kube.list_sealed(ns)) + repr(kube.list_sealed(other))
        assert not any(v in text for v in VALUES.values())


def test_update_managed_patch_recreate_and_gc(
    kube: Kube, stack: Any, spaces: tuple[str, str, str]
) -> None:
    ns, _, keys = spaces
    with running_controller(stack.kubeconfig, keys, [ns]) as app:
        # unmanaged pre-existing Secret: left alone, clear error
        kube.create_secret(
            {"metadata": {"name": "taken", "namespace": ns}, "stringData": {"mine": "x"}}
        )
        kube.create_sealed(sealed_for(app, "taken", ns))
        cond = wait_for(lambda: kube.synced(ns, "taken"), 30, "unmanaged status")
        assert cond["status"] == "False"
        assert cond["message"] == (
            'Resource "taken" already exists and is not managed by SealedSecret'
        )
        assert plain(kube.get_secret(ns, "taken")) == {"mine": "x"}
        # managed: taken over and overwritten
        kube.create_secret(
            {
                "metadata": {
                    "name": "mgd",
                    "namespace": ns,
                    "annotations": {"sealedsecrets.bitnami.com/managed": "true"},
                },
                "stringData": {"old": "x"},
            }
        )
        kube.create_sealed(sealed_for(app, "mgd", ns))
        secret = wait_for(
            lambda: (s := kube.get_secret(ns, "mgd")) and "old" not in s["data"] and s,
            30,
            "managed takeover",
        )
        assert plain(secret) == VALUES and secret["metadata"]["ownerReferences"]
        # patch: merged, not owned
        kube.create_secret(
            {
                "metadata": {
                    "name": "pat",
                    "namespace": ns,
                    "labels": {"x": "1"},
                    "annotations": {"sealedsecrets.bitnami.com/patch": "true"},
                },
                "stringData": {"extra": "keep"},
            }
        )
        kube.create_sealed(sealed_for(app, "pat", ns))
        secret = wait_for(
            lambda: (s := kube.get_secret(ns, "pat")) and "password" in s["data"] and s,
            30,
            "patch merge",
        )
        assert plain(secret) == {**VALUES, "extra": "keep"}
        assert secret["metadata"]["labels"] == {"x": "1", "app": "demo"}
        assert not secret["metadata"].get("ownerReferences")

        # spec change -> re-unseal; new generation observed
        kube.create_sealed(sealed_for(app, "app", ns))
        wait_for(lambda: kube.get_secret(ns, "app"), 30, "Secret app")
        new = sealed_for(app, "app", ns, values={"password": "pw-rotated-known"})

        def replace_spec() -> bool:  # the controller patches status concurrently: retry 409s
            obj = kube.get_sealed(ns, "app")
            obj["spec"] = new["spec"]
            try:
                kube.replace_sealed(obj)
                return True
            except ApiException as exc:
                if exc.status != 409:
                    raise
                return False

        wait_for(replace_spec, 10, "spec replaced")
        wait_for(
            lambda: plain(kube.get_secret(ns, "app")) == {"password": "pw-rotated-known"},
            30,
            "updated Secret",
        )
        wait_for(
            lambda: kube.get_sealed(ns, "app")["status"].get("observedGeneration") == 2,
            30,
            "observedGeneration 2",
        )

        # deleted out of band -> re-created
        uid = kube.get_secret(ns, "app")["metadata"]["uid"]
        kube.delete_secret(ns, "app")
        wait_for(
            lambda: (s := kube.get_secret(ns, "app")) and s["metadata"]["uid"] != uid,
            30,
            "re-created Secret",
        )

        # SealedSecret deleted -> the GC (kube-controller-manager) deletes its Secret
        kube.delete_sealed(ns, "app")
        wait_for(lambda: kube.get_secret(ns, "app") is None, 60, "GC of the owned Secret")
        counters = app.controller.reconciler.counters
        assert counters["create"] == 2  # "app", then its re-creation: nothing written twice
        assert counters["update"] == 3  # managed takeover, patch merge, spec change


def test_tampered_ciphertext_and_unsupported_template(
    kube: Kube, stack: Any, spaces: tuple[str, str, str]
) -> None:
    ns, _, keys = spaces
    with running_controller(stack.kubeconfig, keys, [ns]) as app:
        bad = sealed_for(app, "tampered", ns)
        blob = bytearray(base64.b64decode(bad["spec"]["encryptedData"]["password"]))
        blob[40] ^= 0xFF
        bad["spec"]["encryptedData"]["password"] = base64.b64encode(bytes(blob)).decode()
        kube.create_sealed(bad)
        tmpl = sealed_for(app, "tmpl", ns, data={"x": '{{ env "HOME" }}'})
        kube.create_sealed(tmpl)
        good = sealed_for(
            app, "good", ns, data={"dsn": "user:{{ .password | quote }}@db", "api-token": None}
        )
        kube.create_sealed(good)
        cond = wait_for(lambda: kube.synced(ns, "tampered"), 30, "tampered status")
        assert cond["status"] == "False"
        assert cond["message"] == "no key could decrypt secret (password)"
        cond = wait_for(lambda: kube.synced(ns, "tmpl"), 30, "template status")
        assert cond["status"] == "False" and "'env' not supported" in cond["message"]
        secret = wait_for(lambda: kube.get_secret(ns, "good"), 30, "templated Secret")
        assert plain(secret) == {
            "password": VALUES["password"],
            "dsn": f'user:"{VALUES["password"]}"@db',
        }
        assert kube.get_secret(ns, "tampered") is None and kube.get_secret(ns, "tmpl") is None
        obj = kube.get_sealed(ns, "tampered")
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
