"""Pure reconcile rules (compat §5, §7.3) on the planner and the executor with a fake gateway."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from _keys import entries

from controller.executor import Outcome, Reconciler
from controller.keyring import KeyRing
from controller.kube_gateway import ApiError
from controller.reconcile import (
    ANNOTATION_MANAGED,
    ANNOTATION_PATCH,
    ANNOTATION_SKIP_OWNER_REFS,
    plan_reconcile,
    status_patch,
)
from controller.testing import FakeKubeGateway
from sealkit.model import seal_secret
from sealkit.scopes import Scope

SECRET_VALUES = {"password": "hunter2-very-secret", "token": "tok-3141592653"}


def sealed_obj(
    name: str = "db",
    ns: str = "app",
    *,
    scope: Scope | None = None,
    key=None,
    values: dict[str, str] | None = None,
    **template: Any,
) -> dict:
    key = key or entries(1)[0]
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"team": "a"},
            "annotations": template.pop("annotations", {}),
        },
        "stringData": dict(values or SECRET_VALUES),
    }
    if "type" in template:
        secret["type"] = template.pop("type")
    sealed = seal_secret(secret, key.public_key, scope=scope)
    sealed["metadata"].update({"uid": f"uid-{name}", "generation": 1})
    sealed["spec"]["template"].update(template)
    return sealed


def decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_create_copies_template_and_sets_single_owner_reference() -> None:
    keys = entries(1)
    plan = plan_reconcile(sealed_obj(type="kubernetes.io/basic-auth", immutable=True), None, keys)
    assert plan.secret_action == "create" and plan.synced
    secret = plan.secret
    assert decoded(secret) == SECRET_VALUES
    assert secret["metadata"]["name"] == "db" and secret["metadata"]["namespace"] == "app"
    assert secret["metadata"]["labels"] == {"team": "a"}
    assert secret["type"] == "kubernetes.io/basic-auth" and secret["immutable"] is True
    assert secret["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "bitnami.com/v1alpha1",
            "kind": "SealedSecret",
            "name": "db",
            "uid": "uid-db",
            "controller": True,
        }
    ]
    assert plan.opened_by == keys[0].fingerprint
    assert [e.reason for e in plan.events] == ["Unsealed"]
    cond = plan.status_patch["status"]["conditions"][0]
    assert cond["type"] == "Synced" and cond["status"] == "True"
    assert plan.status_patch["status"]["observedGeneration"] == 1


def test_skip_set_owner_references() -> None:
    sealed = sealed_obj(annotations={ANNOTATION_SKIP_OWNER_REFS: "true"})
    plan = plan_reconcile(sealed, None, entries(1))
    assert "ownerReferences" not in plan.secret["metadata"]


@pytest.mark.parametrize("scope", [Scope.STRICT, Scope.NAMESPACE_WIDE, Scope.CLUSTER_WIDE])
def test_label_comes_from_outer_metadata(scope: Scope) -> None:
    sealed = sealed_obj(scope=scope)
    renamed = {**sealed, "metadata": {**sealed["metadata"], "name": "other"}}
    moved = {**sealed, "metadata": {**sealed["metadata"], "namespace": "elsewhere"}}
    assert plan_reconcile(sealed, None, entries(1)).synced
    assert plan_reconcile(renamed, None, entries(1)).synced is (scope is not Scope.STRICT)
    assert plan_reconcile(moved, None, entries(1)).synced is (scope is Scope.CLUSTER_WIDE)
    # the template's name is ignored: the Secret is named after the SealedSecret
    if scope is Scope.CLUSTER_WIDE:
        assert plan_reconcile(moved, None, entries(1)).secret["metadata"]["namespace"] == (
            "elsewhere"
        )


def test_unseal_failure_is_synced_false_with_clear_message_and_no_secret() -> None:
    sealed = sealed_obj()
    blob = bytearray(base64.b64decode(sealed["spec"]["encryptedData"]["password"]))
    blob[-1] ^= 1
    sealed["spec"]["encryptedData"]["password"] = base64.b64encode(bytes(blob)).decode()
    plan = plan_reconcile(sealed, None, entries(1))
    assert plan.secret_action == "none" and plan.secret is None and not plan.synced
    assert plan.message == "no key could decrypt secret (password)"
    assert plan.events[0].reason == "ErrUnsealFailed"
    assert plan.events[0].message == "Failed to unseal: no key could decrypt secret (password)"
    cond = plan.status_patch["status"]["conditions"][0]
    assert cond["status"] == "False" and cond["message"] == plan.message
    assert plan.error_reason == "unseal" and plan.retry


def test_unmanaged_existing_secret_is_left_alone() -> None:
    existing = {"metadata": {"name": "db", "namespace": "app"}, "data": {"x": "eA=="}}
    plan = plan_reconcile(sealed_obj(), existing, entries(1))
    assert plan.secret_action == "none" and not plan.synced and plan.error_reason == "unmanaged"
    assert plan.events[0].reason == "ErrUpdateFailed"
    assert plan.events[0].message == (
        'Resource "db" already exists and is not managed by SealedSecret'
    )


def test_managed_takes_over_and_overwrites() -> None:
    existing = {
        "metadata": {
            "name": "db",
            "namespace": "app",
            "labels": {"old": "1"},
            "annotations": {ANNOTATION_MANAGED: "true"},
        },
        "data": {"stale": "eA=="},
        "type": "Opaque",
    }
    plan = plan_reconcile(sealed_obj(), existing, entries(1))
    assert plan.secret_action == "update"
    assert decoded(plan.secret) == SECRET_VALUES
    assert plan.secret["metadata"]["labels"] == {"team": "a"}
    assert plan.secret["metadata"]["ownerReferences"][0]["uid"] == "uid-db"


def test_patch_merges_without_ownership_unless_managed() -> None:
    existing = {
        "metadata": {
            "name": "db",
            "namespace": "app",
            "labels": {"old": "1"},
            "annotations": {ANNOTATION_PATCH: "true"},
        },
        "data": {"extra": "eA=="},
        "type": "Opaque",
    }
    plan = plan_reconcile(sealed_obj(), existing, entries(1))
    assert plan.secret_action == "update"
    assert set(plan.secret["data"]) == {"extra", "password", "token"}
    assert plan.secret["metadata"]["labels"] == {"old": "1", "team": "a"}
    assert "ownerReferences" not in plan.secret["metadata"]
    existing["metadata"]["annotations"][ANNOTATION_MANAGED] = "true"
    plan = plan_reconcile(sealed_obj(), existing, entries(1))
    assert plan.secret["metadata"]["ownerReferences"][0]["uid"] == "uid-db"


def test_no_update_when_nothing_differs_and_status_skipped_when_unchanged() -> None:
    sealed = sealed_obj()
    first = plan_reconcile(sealed, None, entries(1), now="2026-01-01T00:00:00Z")
    existing = {**first.secret, "metadata": {**first.secret["metadata"], "resourceVersion": "5"}}
    sealed["status"] = first.status_patch["status"]
    again = plan_reconcile(sealed, existing, entries(1))
    assert again.secret_action == "none" and again.events == [] and again.status_patch is None
    # a new generation must be observed even though nothing else changed
    sealed["metadata"]["generation"] = 2
    bumped = plan_reconcile(sealed, existing, entries(1), now="2026-01-02T00:00:00Z")
    st = bumped.status_patch["status"]
    assert st["observedGeneration"] == 2
    assert st["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert st["conditions"][0]["lastUpdateTime"] == "2026-01-02T00:00:00Z"


def test_status_transition_time_moves_on_flip() -> None:
    sealed = sealed_obj()
    sealed["status"] = {
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Synced",
                "status": "True",
                "message": "",
                "reason": "Unsealed",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "lastUpdateTime": "2026-01-01T00:00:00Z",
            }
        ],
    }
    patch = status_patch(
        sealed, synced=False, message="boom", reason="ErrUnsealFailed", now="2026-02-02T00:00:00Z"
    )
    assert patch["status"]["conditions"][0]["lastTransitionTime"] == "2026-02-02T00:00:00Z"


def test_templates_render_into_the_secret() -> None:
    sealed = sealed_obj(
        data={"dsn": "u:{{ .password }}@{{ .host }}", "host": "db.local", "token": None}
    )
    plan = plan_reconcile(sealed, None, entries(1))
    assert decoded(plan.secret) == {
        "dsn": f"u:{SECRET_VALUES['password']}@db.local",
        "host": "db.local",
        "password": SECRET_VALUES["password"],
    }
    bad = sealed_obj(data={"x": '{{ env "HOME" }}'})
    plan = plan_reconcile(bad, None, entries(1))
    assert not plan.synced and "not supported" in plan.message


def test_key_hint_and_multiple_keys() -> None:
    keys = entries(3)
    sealed = sealed_obj(key=keys[0])  # the oldest key
    plan = plan_reconcile(sealed, None, keys)
    assert plan.synced and plan.opened_by == keys[0].fingerprint
    plan = plan_reconcile(sealed, None, keys, hint=keys[0].fingerprint)
    assert plan.opened_by == keys[0].fingerprint
    # a stale hint (key no longer loaded) still works
    assert plan_reconcile(sealed, None, keys, hint="SHA256:gone").synced


def test_no_secret_value_in_any_plan_text() -> None:
    sealed = sealed_obj()
    sealed["spec"]["template"]["data"] = {"bad": "{{ .password | upper | env }}"}
    for plan in (
        plan_reconcile(sealed, None, entries(1)),
        plan_reconcile(sealed_obj(), {"metadata": {"name": "db"}}, entries(1)),
    ):
        text = repr(plan.events) + repr(plan.status_patch) + plan.message
        for v in SECRET_VALUES.values():
            assert v not in text and v.upper() not in text


# --- executor + fake gateway ------------------------------------------------------------------


def make_reconciler(gw: FakeKubeGateway, ring: KeyRing, **kw: Any) -> Reconciler:
    def lookup(key: str):
        ns, name = key.split("/", 1)
        return gw.get_sealed(ns, name)

    return Reconciler(gw, ring, sealed_lookup=lookup, **kw)


def test_executor_creates_once_then_is_idempotent() -> None:
    gw, ring = FakeKubeGateway(), KeyRing()
    ring.replace_all(entries(2))
    gw.put_sealed(sealed_obj(key=entries(2)[0]))
    rec = make_reconciler(gw, ring)
    assert rec.reconcile("app/db") is Outcome.DONE
    assert rec.reconcile("app/db") is Outcome.DONE
    assert [w for w in gw.writes if w[0] != "status"] == [("create", "app", "db")]
    assert [w[0] for w in gw.writes].count("status") == 1
    assert ring.hint("app/db") == entries(2)[0].fingerprint
    assert ring.usage_counts() == {entries(2)[0].fingerprint: 1, entries(2)[1].fingerprint: 0}
    status = gw.sealed[("app", "db")]["status"]
    assert status["conditions"][0]["status"] == "True" and status["observedGeneration"] == 1


def test_executor_recreates_deleted_secret_and_survives_stale_cache() -> None:
    gw, ring = FakeKubeGateway(), KeyRing()
    ring.replace_all(entries(1))
    gw.put_sealed(sealed_obj())
    stale: dict = {}
    rec = make_reconciler(gw, ring, secret_lookup=lambda ns, n: stale.get((ns, n)))
    rec.reconcile("app/db")
    gw.secrets.clear()  # deleted out of band
    assert rec.reconcile("app/db") is Outcome.DONE
    assert ("app", "db") in gw.secrets
    # stale cache says "absent" but the Secret exists: 409, one GET, no second write
    before = len(gw.writes)
    assert rec.reconcile("app/db") is Outcome.DONE
    assert [w for w in gw.writes[before:] if w[0] != "status"] == []


def test_executor_failures_retry_and_emit_events() -> None:
    gw, ring = FakeKubeGateway(), KeyRing()
    gw.put_sealed(sealed_obj())
    rec = make_reconciler(gw, ring)
    assert rec.reconcile("app/db") is Outcome.RETRY  # no keys yet
    assert "app/db" in rec.failed_unseal
    assert gw.events[-1]["reason"] == "ErrUnsealFailed"
    ring.replace_all(entries(1))
    gw.fail_next["create"] = ApiError("boom", 403)
    assert rec.reconcile("app/db") is Outcome.RETRY
    assert gw.events[-1]["reason"] == "ErrUpdateFailed"
    gw.fail_next["create"] = ApiError("apiserver down", 0)  # outage: retried without budget
    assert rec.reconcile("app/db") is Outcome.TRANSIENT
    gw.fail_next["patch_status"] = ApiError("apiserver down", 503)
    assert rec.reconcile("app/db") is Outcome.TRANSIENT  # created, but status still unwritten
    assert gw.sealed[("app", "db")]["status"]["conditions"][0]["status"] == "False"
    assert rec.reconcile("app/db") is Outcome.DONE
    assert "app/db" not in rec.failed_unseal
    for v in SECRET_VALUES.values():
        assert v not in gw.texts()


def test_executor_unmanaged_is_not_retried_and_deletion_forgets() -> None:
    gw, ring = FakeKubeGateway(), KeyRing()
    ring.replace_all(entries(1))
    gw.put_sealed(sealed_obj())
    gw.put_secret({"metadata": {"name": "db", "namespace": "app"}, "data": {"a": "eA=="}})
    rec = make_reconciler(gw, ring)
    assert rec.reconcile("app/db") is Outcome.DONE
    assert gw.secrets[("app", "db")]["data"] == {"a": "eA=="}
    assert gw.sealed[("app", "db")]["status"]["conditions"][0]["status"] == "False"
    del gw.sealed[("app", "db")]
    assert rec.reconcile("app/db") is Outcome.DONE
    assert ring.hint("app/db") is None


def test_immutable_update_is_not_retried() -> None:
    gw, ring = FakeKubeGateway(), KeyRing()
    ring.replace_all(entries(1))
    gw.put_sealed(sealed_obj(immutable=True))
    rec = make_reconciler(gw, ring)
    rec.reconcile("app/db")
    gw.put_sealed(sealed_obj(immutable=True, values={"password": "new-value-xyz"}))
    assert rec.reconcile("app/db") is Outcome.DONE
    assert gw.events[-1]["reason"] == "ErrUpdateFailed"
    assert "new-value-xyz" not in gw.texts()


def test_slim_secret_cache_holds_no_values_and_still_plans() -> None:
    from controller.reconcile import slim_secret

    gw, ring = FakeKubeGateway(), KeyRing()
    ring.replace_all(entries(1))
    gw.put_sealed(sealed_obj())
    rec = make_reconciler(
        gw,
        ring,
        secret_lookup=lambda ns, n: (
            slim_secret(copy.deepcopy(s)) if (s := gw.secrets.get((ns, n))) else None
        ),
    )
    rec.reconcile("app/db")
    slim = slim_secret(copy.deepcopy(gw.secrets[("app", "db")]))
    assert "data" not in slim and not any(v in repr(slim) for v in SECRET_VALUES.values())
    before = len(gw.writes)
    assert rec.reconcile("app/db") is Outcome.DONE
    assert gw.writes[before:] == []  # equal digest: no write, no GET needed
    # a changed value: planned from the real Secret (GET), written once
    gw.put_sealed(sealed_obj(values={"password": "changed-xyz"}))
    rec.reconcile("app/db")
    assert [w[0] for w in gw.writes[before:]] == ["update", "status"]
    assert decoded(gw.secrets[("app", "db")]) == {"password": "changed-xyz"}
    # patch mode needs the existing values: fetched, merged
    gw.put_secret(
        {
            "metadata": {
                "name": "p",
                "namespace": "app",
                "annotations": {ANNOTATION_PATCH: "true"},
            },
            "data": {"keep": "eA=="},
        }
    )
    gw.put_sealed(sealed_obj("p"))
    assert rec.reconcile("app/p") is Outcome.DONE
    assert set(gw.secrets[("app", "p")]["data"]) == {"keep", "password", "token"}


def test_settled_sealed_secrets_are_cached_as_digests_and_fetched_when_needed() -> None:
    from controller.reconcile import is_slim_sealed, slim_sealed, spec_key

    gw, ring = FakeKubeGateway(), KeyRing()
    ring.replace_all(entries(1))
    gw.put_sealed(sealed_obj())

    def lookup(key: str):
        ns, name = key.split("/", 1)
        obj = gw.get_sealed(ns, name)
        return slim_sealed(obj) if obj else None

    rec = Reconciler(gw, ring, sealed_lookup=lookup)
    assert not is_slim_sealed(lookup("app/db"))  # not synced yet: kept whole
    rec.reconcile("app/db")
    slim = lookup("app/db")
    assert is_slim_sealed(slim) and "encryptedData" not in repr(slim)
    assert spec_key(slim) == spec_key(gw.get_sealed("app", "db"))
    gw.secrets.clear()  # deleted out of band: the full object is fetched, Secret re-created
    assert rec.reconcile("app/db") is Outcome.DONE and ("app", "db") in gw.secrets


def test_first_sight_tries_the_key_that_opened_the_last_sealedsecret() -> None:
    """A batch sealed by an old key: after the first, each opens on its first try."""
    gw, ring = FakeKubeGateway(), KeyRing()
    keys = entries(3)
    ring.replace_all(keys)
    oldest = keys[0]
    assert ring.first_try("app/b") is None  # nothing opened yet: newest first
    gw.put_sealed(sealed_obj("a", key=oldest))
    gw.put_sealed(sealed_obj("b", key=oldest))
    rec = make_reconciler(gw, ring)
    assert rec.reconcile("app/a") is Outcome.DONE
    assert ring.hint("app/b") is None  # b was never seen ...
    assert (
        ring.first_try("app/b") == oldest.fingerprint
    )  # ... but the last key that worked goes first
    assert rec.reconcile("app/b") is Outcome.DONE
    assert ring.hint("app/b") == oldest.fingerprint
    gw.put_sealed(sealed_obj("c", key=keys[2]))  # a stale first try still opens with the rest
    assert rec.reconcile("app/c") is Outcome.DONE
    assert ring.first_try("app/zzz") == keys[2].fingerprint
