"""The pure planner: normalisation, write-only versions, prune ownership, rendering."""

from __future__ import annotations

import json

from vault_bootstrap import make_plan, plan_to_json, render_plan
from vault_bootstrap._model import DesiredObject, Observed, ObservedObject, StateRecord, WriteOnly
from vault_bootstrap._observe import normalise_db_role, normalise_k8s_role
from vault_bootstrap._redact import Sensitive

SECRET = "pw-very-secret-4242"


def _plan(desired: list[DesiredObject], observed: Observed, prune: bool = False):
    return make_plan(desired, observed, state_mount="secret", state_path="vb/state", prune=prune)


def _conn(version: int = 1, rotate: int = 0) -> DesiredObject:
    return DesiredObject(
        kind="db_connection",
        path="database/config/pg",
        source="secrets.database.connections.pg",
        fields={
            "plugin_name": "postgresql-database-plugin",
            "connection_url": "u",
            "username": "admin",
            "allowed_roles": ["app"],
        },
        write_only={
            "password": WriteOnly(Sensitive(SECRET), version),
            "rotate_root": WriteOnly(None, rotate),
        },
        extra_body={"verify_connection": True},
    )


def _observed_conn(state: StateRecord | None = None) -> Observed:
    obs = Observed(state=state or StateRecord(), state_exists=state is not None)
    obs.objects["db_connection:database/config/pg"] = ObservedObject(
        fields={
            "plugin_name": "postgresql-database-plugin",
            "connection_url": "u",
            "username": "admin",
            "allowed_roles": ["app"],
            "root_rotation_statements": [],
        }
    )
    return obs


def test_role_normalisation_maps_legacy_names_and_durations() -> None:
    raw = {
        "bound_service_account_names": "b,a",
        "bound_service_account_namespaces": ["ns"],
        "policies": ["p2", "p1"],
        "ttl": "1h",
        "token_ttl": 0,
    }
    fields = normalise_k8s_role(raw).fields
    assert fields["bound_service_account_names"] == ["a", "b"]
    assert fields["token_policies"] == ["p1", "p2"]
    assert fields["token_ttl"] == 3600


def test_db_role_single_statement_string_is_a_list() -> None:
    fields = normalise_db_role(
        {"db_name": "pg", "creation_statements": "CREATE", "default_ttl": 60}
    ).fields
    assert fields["creation_statements"] == ["CREATE"]
    assert fields["revocation_statements"] == []
    assert fields["default_ttl"] == 60


def test_new_connection_sends_password_and_records_version() -> None:
    plan = _plan([_conn()], Observed())
    (change,) = plan.changes
    assert change.action == "create"
    assert change.body["password"].reveal() == SECRET
    assert plan.new_state.versions == {"database/config/pg#password": 1}
    assert "db_connection:database/config/pg" in plan.new_state.created


def test_adopted_connection_never_gets_password() -> None:
    plan = _plan([_conn()], _observed_conn())
    assert [c.action for c in plan.changes] == ["adopt"]
    assert all("password" not in c.body for c in plan.changes)
    assert plan.new_state.versions == {"database/config/pg#password": 1}
    assert "db_connection:database/config/pg" not in plan.new_state.created  # not ours


def test_recorded_version_means_no_write_and_bump_resends() -> None:
    state = StateRecord(versions={"database/config/pg#password": 1})
    assert not _plan([_conn()], _observed_conn(state)).has_changes
    bumped = _plan([_conn(version=2)], _observed_conn(state))
    (change,) = bumped.changes
    assert change.action == "update" and change.body["password"].reveal() == SECRET
    assert bumped.new_state.versions["database/config/pg#password"] == 2


def test_field_change_does_not_resend_password() -> None:
    state = StateRecord(versions={"database/config/pg#password": 1})
    desired = _conn()
    desired.fields["allowed_roles"] = ["app", "other"]
    (change,) = _plan([desired], _observed_conn(state)).changes
    assert change.action == "update"
    assert "password" not in change.body  # merge keeps the stored (maybe rotated) password
    assert [f.name for f in change.fields] == ["allowed_roles"]


def test_rotate_root_is_an_explicit_versioned_intent() -> None:
    state = StateRecord(versions={"database/config/pg#password": 1})
    plan = _plan([_conn(rotate=1)], _observed_conn(state))
    (change,) = plan.changes
    assert change.action == "rotate" and change.write_path == "database/rotate-root/pg"
    state.versions["database/config/pg#rotate_root"] = 1
    assert not _plan([_conn(rotate=1)], _observed_conn(state)).has_changes


def _k8s_config(jwt: Sensitive | None, version: int = 1) -> DesiredObject:
    return DesiredObject(
        kind="k8s_config",
        path="auth/kubernetes/config",
        source="auth.kubernetes.config",
        fields={
            "kubernetes_host": "https://k",
            "kubernetes_ca_cert": "",
            "issuer": "",
            "disable_iss_validation": True,
            "disable_local_ca_jwt": True,
            "pem_keys": [],
        },
        write_only={"token_reviewer_jwt": WriteOnly(jwt, version)},
    )


def _observed_k8s(
    jwt_set: bool, state: StateRecord | None = None, host: str = "https://k"
) -> Observed:
    obs = Observed(state=state or StateRecord(), state_exists=state is not None)
    obs.objects["k8s_config:auth/kubernetes/config"] = ObservedObject(
        fields={
            "kubernetes_host": host,
            "kubernetes_ca_cert": "",
            "issuer": "",
            "disable_iss_validation": True,
            "disable_local_ca_jwt": True,
            "pem_keys": [],
        },
        flags={"token_reviewer_jwt_set": jwt_set},
    )
    return obs


def test_reviewer_jwt_is_resent_on_any_config_write_replace_semantics() -> None:
    state = StateRecord(versions={"auth/kubernetes/config#token_reviewer_jwt": 1})
    jwt = Sensitive("eyJ-reviewer-jwt-value")
    assert not _plan([_k8s_config(jwt)], _observed_k8s(True, state)).has_changes
    (change,) = _plan([_k8s_config(jwt)], _observed_k8s(True, state, host="https://old")).changes
    assert change.body["token_reviewer_jwt"] is jwt  # else the replace would clear it
    (bump,) = _plan([_k8s_config(jwt, version=2)], _observed_k8s(True, state)).changes
    assert [f.name for f in bump.fields] == ["token_reviewer_jwt"]


def test_reviewer_jwt_removed_from_config_is_cleared() -> None:
    (change,) = _plan([_k8s_config(None)], _observed_k8s(True)).changes
    assert change.fields[0].op == "-" and "token_reviewer_jwt" not in change.body


def _policy(name: str) -> DesiredObject:
    return DesiredObject(
        kind="policy",
        path=f"sys/policies/acl/{name}",
        source=f"policies.{name}",
        fields={"policy": 'path "x" {}\n'},
    )


def test_prune_only_objects_we_created_and_never_builtins() -> None:
    state = StateRecord(
        created={
            "policy:sys/policies/acl/old",
            "policy:sys/policies/acl/default",
            "policy:sys/policies/acl/keep",
            "policy:sys/policies/acl/gone",
        }
    )
    obs = Observed(state=state, state_exists=True)
    for name in ("old", "default", "keep", "handmade"):
        obs.objects[f"policy:sys/policies/acl/{name}"] = ObservedObject(
            fields={"policy": 'path "x" {}\n'}
        )
    obs.objects["policy:sys/policies/acl/gone"] = None
    desired = [_policy("keep")]

    no_prune = _plan(desired, obs)
    assert [c.action for c in no_prune.changes] == []
    assert "policy:sys/policies/acl/old" in no_prune.new_state.created  # kept for a later prune
    assert "policy:sys/policies/acl/gone" not in no_prune.new_state.created

    pruned = _plan(desired, obs, prune=True)
    assert [(c.action, c.path) for c in pruned.changes] == [("delete", "sys/policies/acl/old")]
    assert "policy:sys/policies/acl/old" not in pruned.new_state.created


def test_kv_compares_values_and_renders_them_sensitive() -> None:
    desired = DesiredObject(
        kind="kv",
        path="secret/data/app",
        source="kv.secret/app",
        secrets={"token": Sensitive("kv-secret-value-1")},
    )
    same = Observed()
    same.objects["kv:secret/data/app"] = ObservedObject(
        secrets={"token": Sensitive("kv-secret-value-1")}
    )
    assert not _plan([desired], same).changes
    other = Observed()
    other.objects["kv:secret/data/app"] = ObservedObject(
        secrets={"token": Sensitive("kv-secret-value-0"), "extra": Sensitive("kv-extra-value")}
    )
    plan = _plan([desired], other)
    text = render_plan(plan) + plan_to_json(plan)
    for value in ("kv-secret-value-1", "kv-secret-value-0", "kv-extra-value"):
        assert value not in text
    assert "~ data.token = (sensitive)" in text and "- data.extra" in text
    data = json.loads(plan_to_json(plan))
    assert data["changes"][0]["fields"][0]["after"] == "(sensitive)"


def test_render_symbols_and_summary() -> None:
    plan = _plan([_conn()], Observed())
    text = render_plan(plan)
    assert text.splitlines()[0] == "+ database/config/pg  [database connection]"
    assert "    + password = (sensitive)" in text
    assert SECRET not in text and SECRET not in plan_to_json(plan)
    assert text.rstrip().endswith("Plan: 1 to add, 0 to change, 0 to delete.")


def test_pruning_a_mount_forgets_everything_below_it() -> None:
    state = StateRecord(
        created={
            "auth_mount:sys/auth/old",
            "k8s_config:auth/old/config",
            "k8s_role:auth/old/role/r",
        },
        versions={"auth/old/config#token_reviewer_jwt": 1},
    )
    obs = Observed(state=state, state_exists=True)
    for key in state.created:
        obs.objects[key] = ObservedObject(fields={"type": "kubernetes"})
    plan = _plan([], obs, prune=True)
    assert [(c.action, c.path) for c in plan.changes] == [
        ("delete", "auth/old/role/r"),
        ("delete", "sys/auth/old"),
    ]
    assert plan.new_state.created == set() and plan.new_state.versions == {}
