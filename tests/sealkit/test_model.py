"""Secret -> SealedSecret -> Secret on plain dicts (kubeseal's and the controller's rules)."""

from __future__ import annotations

import base64
import copy

import pytest

from sealkit import InputError, UnsealError
from sealkit.model import seal_secret, unseal_sealed_secret
from sealkit.scopes import CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION, Scope


def secret(**overrides):
    base = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "prod"},
        "type": "Opaque",
        "data": {"password": base64.b64encode(b"hunter2").decode()},
    }
    base.update(overrides)
    return base


def plain(sealed_secret, keys):
    out = unseal_sealed_secret(sealed_secret, keys)
    return {k: base64.b64decode(v) for k, v in out.get("data", {}).items()}


def test_strips_server_fields_last_applied_and_owner_refs(public_key) -> None:
    meta = {
        "name": "db",
        "namespace": "prod",
        "uid": "u",
        "resourceVersion": "1",
        "generation": 3,
        "selfLink": "/x",
        "creationTimestamp": "2024-01-01T00:00:00Z",
        "deletionTimestamp": "2024-01-02T00:00:00Z",
        "deletionGracePeriodSeconds": 30,
        "managedFields": [{"manager": "kubectl"}],
        "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x", "uid": "u"}],
        "labels": {"app": "db"},
        "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"password":"leak"}}',
            "kubecfg.ksonnet.io/last-applied-configuration": "leak",
            "keep": "me",
        },
        "finalizers": ["a/b"],
    }
    out = seal_secret(secret(metadata=meta), public_key)
    assert out["metadata"] == {"name": "db", "namespace": "prod"}
    assert out["spec"]["template"]["metadata"] == {
        "name": "db",
        "namespace": "prod",
        "labels": {"app": "db"},
        "annotations": {"keep": "me"},
        "finalizers": ["a/b"],
    }
    assert "leak" not in repr(out)


def test_only_last_applied_annotations_means_no_annotations(public_key) -> None:
    meta = {
        "name": "db",
        "namespace": "prod",
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
    }
    out = seal_secret(secret(metadata=meta), public_key)
    assert "annotations" not in out["spec"]["template"]["metadata"]


def test_string_data_wins_and_type_immutable_copied(public_key, private_key) -> None:
    s = secret(
        stringData={"password": "from-stringData", "user": "u"},
        immutable=True,
        type="kubernetes.io/basic-auth",
    )
    out = seal_secret(s, public_key)
    assert out["spec"]["template"]["type"] == "kubernetes.io/basic-auth"
    assert out["spec"]["template"]["immutable"] is True
    assert plain(out, [private_key]) == {"password": b"from-stringData", "user": b"u"}


def test_input_is_not_mutated(public_key) -> None:
    s = secret(metadata={"name": "db", "annotations": {"a": "b"}})
    before = copy.deepcopy(s)
    seal_secret(s, public_key, scope=Scope.CLUSTER_WIDE)
    assert s == before


@pytest.mark.parametrize(
    ("scope", "annotation"),
    [
        (Scope.NAMESPACE_WIDE, NAMESPACE_WIDE_ANNOTATION),
        (Scope.CLUSTER_WIDE, CLUSTER_WIDE_ANNOTATION),
    ],
)
def test_scope_flag_sets_annotations_in_both_places(public_key, private_key, scope, annotation):
    out = seal_secret(secret(), public_key, scope=scope)
    assert out["metadata"]["annotations"] == {annotation: "true"}
    assert out["spec"]["template"]["metadata"]["annotations"] == {annotation: "true"}
    assert plain(out, [private_key]) == {"password": b"hunter2"}


def test_scope_strict_keeps_existing_annotation(public_key) -> None:
    meta = {"name": "db", "namespace": "prod", "annotations": {CLUSTER_WIDE_ANNOTATION: "true"}}
    out = seal_secret(secret(metadata=meta), public_key, scope=Scope.STRICT)
    assert out["metadata"]["annotations"] == {CLUSTER_WIDE_ANNOTATION: "true"}


def test_scope_flag_replaces_existing_annotation(public_key) -> None:
    meta = {"name": "db", "namespace": "prod", "annotations": {CLUSTER_WIDE_ANNOTATION: "true"}}
    out = seal_secret(secret(metadata=meta), public_key, scope=Scope.NAMESPACE_WIDE)
    assert out["metadata"]["annotations"] == {NAMESPACE_WIDE_ANNOTATION: "true"}


def test_name_override_and_namespace_default(public_key, private_key) -> None:
    s = secret(metadata={"name": "db"})
    out = seal_secret(s, public_key, name="other", default_namespace=lambda: "from-kubeconfig")
    assert out["metadata"] == {"name": "other", "namespace": "from-kubeconfig"}
    assert plain(out, [private_key]) == {"password": b"hunter2"}


def test_explicit_namespace_fills_missing(public_key) -> None:
    out = seal_secret(
        secret(metadata={"name": "db"}),
        public_key,
        namespace="ns1",
        default_namespace=lambda: pytest.fail("not consulted"),
    )
    assert out["metadata"]["namespace"] == "ns1"


def test_cluster_wide_needs_no_namespace(public_key, private_key) -> None:
    out = seal_secret(secret(metadata={"name": "db"}), public_key, scope=Scope.CLUSTER_WIDE)
    assert "namespace" not in out["metadata"]
    moved = copy.deepcopy(out)
    moved["metadata"].update(name="elsewhere", namespace="any")
    assert plain(moved, [private_key]) == {"password": b"hunter2"}


@pytest.mark.parametrize(
    ("doc", "kwargs", "message"),
    [
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
            {},
            'not a v1 Secret (kind "ConfigMap")',
        ),
        (["not", "a", "map"], {}, "not a v1 Secret"),
        (secret(metadata={"namespace": "prod"}), {}, "missing metadata.name in input Secret"),
        (secret(metadata={"name": "db"}), {}, "secret must declare a namespace"),
        (
            secret(),
            {"namespace": "other"},
            'namespace mismatch: input secret is in namespace "prod" but "other" was specified',
        ),
        (secret(data=None), {}, "secret.data is empty in input Secret"),
        (secret(data={"k": "not base64!"}), {}, "illegal base64 data in data.k"),
        (secret(data={"k": True}), {}, "data.k must be a base64 string"),
        (secret(stringData={"k": 5}), {}, "stringData.k must be a string"),
    ],
)
def test_seal_errors(public_key, doc, kwargs, message) -> None:
    with pytest.raises(InputError) as info:
        seal_secret(doc, public_key, **kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_allow_empty_data(public_key, private_key) -> None:
    out = seal_secret(secret(data=None), public_key, allow_empty_data=True)
    assert out["spec"]["encryptedData"] == {}
    assert "data" not in unseal_sealed_secret(out, [private_key])


# --- unseal --------------------------------------------------------------------------------
def test_unseal_sets_owner_reference_and_forces_name(public_key, private_key) -> None:
    out = seal_secret(secret(), public_key)
    out["metadata"]["uid"] = "1234"
    out["spec"]["template"]["metadata"]["name"] = "template-name-is-ignored"
    result = unseal_sealed_secret(out, [private_key])
    assert result["metadata"]["name"] == "db"
    assert result["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "bitnami.com/v1alpha1",
            "kind": "SealedSecret",
            "name": "db",
            "uid": "1234",
            "controller": True,
        }
    ]


def test_unseal_skip_owner_references(public_key, private_key) -> None:
    meta = {
        "name": "db",
        "namespace": "prod",
        "annotations": {"sealedsecrets.bitnami.com/skip-set-owner-references": "true"},
    }
    result = unseal_sealed_secret(seal_secret(secret(metadata=meta), public_key), [private_key])
    assert "ownerReferences" not in result["metadata"]


def test_renamed_strict_sealed_secret_fails(public_key, private_key) -> None:
    out = seal_secret(secret(), public_key)
    out["metadata"]["name"] = "renamed"
    with pytest.raises(UnsealError, match=r"no key could decrypt secret \(password\)"):
        unseal_sealed_secret(out, [private_key])


def test_label_comes_from_outer_metadata_not_template(public_key, private_key) -> None:
    out = seal_secret(secret(), public_key)  # strict
    # Adding a cluster-wide annotation only to the template must not change the label.
    out["spec"]["template"]["metadata"]["annotations"] = {CLUSTER_WIDE_ANNOTATION: "true"}
    assert plain(out, [private_key]) == {"password": b"hunter2"}
    # On the outer metadata it does change it, so the strict blobs fail.
    out["metadata"]["annotations"] = {CLUSTER_WIDE_ANNOTATION: "true"}
    with pytest.raises(UnsealError):
        unseal_sealed_secret(out, [private_key])


def test_all_or_nothing(public_key, private_key, other_private_key) -> None:
    out = seal_secret(secret(stringData={"a": "1", "b": "2"}), public_key)
    from sealkit.crypto import b64encode, seal

    out["spec"]["encryptedData"]["b"] = b64encode(
        seal(b"2", other_private_key.public_key(), b"prod/db")
    )
    out["spec"]["encryptedData"]["c"] = "%%%not base64"
    with pytest.raises(UnsealError) as info:
        unseal_sealed_secret(out, [private_key])
    assert str(info.value) == "no key could decrypt secret (b, c)"


def test_unseal_rejects_non_sealed_secret(private_key) -> None:
    with pytest.raises(InputError, match='not a SealedSecret \\(kind "Secret"\\)'):
        unseal_sealed_secret(secret(), [private_key])


def test_template_data_rendering(public_key, private_key) -> None:
    out = seal_secret(secret(stringData={"user": "app", "pass": "pw"}, data=None), public_key)
    out["spec"]["template"]["data"] = {
        "url": "postgres://{{ .user }}:{{ .pass }}@db",
        "user": "ignored: encryptedData wins",
        "pass": None,  # null-omit: feeds templates only
    }
    assert plain(out, [private_key]) == {"url": b"postgres://app:pw@db", "user": b"app"}
    raw = unseal_sealed_secret(out, [private_key], render_templates=False)
    assert set(raw["data"]) == {"user", "pass"}


def test_legacy_v1_data(public_key, private_key) -> None:
    import json

    from sealkit.crypto import b64encode, seal

    inner = {"apiVersion": "v1", "kind": "Secret", "data": {"k": "dmFsdWU="}}
    blob = b64encode(seal(json.dumps(inner).encode(), public_key, b"prod/db"))
    legacy = {
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": "db", "namespace": "prod"},
        "spec": {"data": blob},
    }
    assert plain(legacy, [private_key]) == {"k": b"value"}
    legacy["spec"]["encryptedData"] = {"x": blob}
    with pytest.raises(InputError, match="both"):
        unseal_sealed_secret(legacy, [private_key])


def test_unseal_tries_the_hinted_key_first_and_reports_the_opener(
    public_key, private_key, other_private_key, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sealkit.crypto
    from sealkit.model import unseal

    sealed = seal_secret(secret(stringData={"a": "1", "b": "2"}), public_key)
    first_tried = []
    real = sealkit.crypto.unseal_with_index

    def spy(blob, keys, label):  # type: ignore[no-untyped-def]
        first_tried.append(keys[0])
        return real(blob, keys, label)

    monkeypatch.setattr(sealkit.crypto, "unseal_with_index", spy)
    out = unseal(sealed, [other_private_key, private_key])
    assert out.opened_by is private_key
    assert first_tried == [other_private_key, private_key, private_key]  # the opener moves up
    first_tried.clear()
    assert unseal(sealed, [other_private_key, private_key], hint=private_key).opened_by is (
        private_key
    )
    assert first_tried == [private_key] * 3  # one RSA operation per value


def test_verify_and_reencrypt_decrypt_only(public_key, private_key, other_private_key) -> None:
    from sealkit.model import reencrypt, verify

    sealed = seal_secret(secret(), public_key, scope=Scope.NAMESPACE_WIDE)
    sealed["spec"]["template"]["data"] = {"dsn": "{{ .password }}@db"}
    assert verify(sealed, [private_key]) and not verify(sealed, [other_private_key])
    rotated, overwritten = reencrypt(sealed, [private_key], other_private_key.public_key())
    assert not overwritten and "kind" not in rotated
    assert rotated["metadata"]["annotations"] == {NAMESPACE_WIDE_ANNOTATION: "true"}
    assert rotated["spec"]["template"]["data"] == {"dsn": "{{ .password }}@db"}  # not rendered
    rotated.update(kind="SealedSecret", apiVersion="bitnami.com/v1alpha1")
    assert plain(rotated, [other_private_key])["password"] == b"hunter2"
    with pytest.raises(UnsealError):
        reencrypt(sealed, [other_private_key], public_key)
