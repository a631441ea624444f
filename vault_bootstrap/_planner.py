"""The pure planner: desired objects + observed state -> `Plan`.

No I/O. For each desired object it compares only the fields we manage and emits a `Change`
carrying the exact request body (secrets still wrapped in `Sensitive`). Write-only fields are
handled with version counters recorded in the state entry:

* created now -> send the secret, record its version;
* exists, never recorded (adopted) -> do not send, record the configured version, so a
  password Vault rotated with rotate-root is never clobbered;
* exists, recorded version differs from the configured one -> send it (explicit rotation).

Prune candidates are objects recorded as *created by us* that are no longer in the config; they
are planned only when pruning is enabled, and built-ins are never candidates.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any

from ._errors import PlanError
from ._model import (
    KIND_ORDER,
    Change,
    DesiredObject,
    FieldChange,
    Observed,
    Plan,
    StateRecord,
)
from ._observe import mount_of, split_key

__all__ = ["BUILTIN_PATHS", "is_builtin", "make_plan"]

BUILTIN_PATHS = {
    "sys/auth/token",
    "sys/mounts/sys",
    "sys/mounts/identity",
    "sys/mounts/cubbyhole",
    "sys/mounts/agent-registry",
    "sys/policies/acl/root",
    "sys/policies/acl/default",
    "sys/policies/acl/default-ceiling",
}


def is_builtin(path: str) -> bool:
    return path in BUILTIN_PATHS or path.startswith(("sys/mounts/sys/", "sys/mounts/identity/"))


def _wo_key(path: str, name: str) -> str:
    return f"{path}#{name}"


def make_plan(
    desired: Iterable[DesiredObject],
    observed: Observed,
    *,
    state_mount: str,
    state_path: str,
    prune: bool = False,
) -> Plan:
    desired = list(desired)
    plan = Plan(state_path=f"{state_mount}/data/{state_path}")
    old = observed.state
    new = StateRecord(created=set(old.created), versions=dict(old.versions))
    changes: list[Change] = []

    for d in desired:
        obs = observed.objects.get(d.key)
        handler = _HANDLERS[d.kind]
        changes.extend(handler(d, obs, new, plan))

    desired_keys = {d.key for d in desired}
    for key in sorted(old.created - desired_keys):
        kind, path = split_key(key)
        exists = observed.objects.get(key) is not None
        if not exists:
            new.created.discard(key)
            continue
        obs_obj = observed.objects.get(key)
        if (
            prune
            and kind == "secrets_mount"
            and obs_obj is not None
            and obs_obj.fields.get("type") == "transit"
        ):
            plan.warnings.append(
                f"{path}: transit engine no longer in the config, not pruned (unmounting it "
                "destroys its keys and every secret they wrap); disable it by hand"
            )
            continue
        if prune and not is_builtin(path) and kind in _DELETE_PATHS:
            changes.append(
                Change(
                    action="delete",
                    kind=kind,
                    path=path,
                    source="prune",
                    write_path=_DELETE_PATHS[kind](path),
                )
            )

    # A desired object that no longer exists cannot stay recorded as ours.
    for d in desired:
        if observed.objects.get(d.key) is None and not any(
            c.key == d.key and c.action == "create" for c in changes
        ):
            new.created.discard(d.key)

    order = {k: i for i, k in enumerate(KIND_ORDER)}
    creates = [c for c in changes if c.action != "delete"]
    deletes = [c for c in changes if c.action == "delete"]
    creates.sort(key=lambda c: order[c.kind])  # stable: config order within a kind
    deletes.sort(key=lambda c: -order[c.kind])
    plan.changes = creates + deletes
    for c in plan.changes:
        if c.action == "create":
            new.created.add(c.key)
        elif c.action == "delete":
            _forget(new, c.key)
            if c.kind in ("auth_mount", "secrets_mount"):
                # Unmounting removes everything below it: forget those records too.
                table = "auth" if c.kind == "auth_mount" else "secrets"
                mpath = c.path.split("/", 2)[2]
                for key in list(new.created):
                    if mount_of(*split_key(key)) == (table, mpath):
                        _forget(new, key)
        new.versions.update(c.versions)
    plan.new_state = new
    plan.state_changed = new.to_data() != old.to_data() or (
        not observed.state_exists and bool(new.created or new.versions)
    )
    return plan


def _forget(state: StateRecord, key: str) -> None:
    state.created.discard(key)
    path = split_key(key)[1]
    for vk in [k for k in state.versions if k.startswith(path + "#")]:
        del state.versions[vk]


# --- field diffs --------------------------------------------------------------------------


def _diff_fields(desired: dict[str, Any], observed: dict[str, Any] | None) -> list[FieldChange]:
    out: list[FieldChange] = []
    for name, want in desired.items():
        if observed is None:
            out.append(FieldChange(name, "+", None, want))
            continue
        have = observed.get(name)
        if have != want:
            # False == 0 in Python: a flag turned off is a change, not a removal
            empty = not isinstance(want, bool) and want in (None, "", [], 0)
            op = "-" if empty and have not in (None, "", [], 0) else "~"
            out.append(FieldChange(name, op, have, want))
    return out


# --- handlers -----------------------------------------------------------------------------


def _mount(d: DesiredObject, obs: Any, new: StateRecord, plan: Plan) -> list[Change]:
    table = "auth" if d.kind == "auth_mount" else "secrets"
    mpath = d.path.split("/", 2)[2]
    if obs is None:
        body: dict[str, Any] = {"type": d.fields["type"]}
        if "description" in d.fields:
            body["description"] = d.fields["description"]
        if d.fields.get("version"):
            body["options"] = {"version": d.fields["version"]}
        return [Change("create", d.kind, d.path, d.source, _diff_fields(d.fields, None), body)]
    if obs.fields["type"] != d.fields["type"]:
        raise PlanError(
            f"{d.source}: {table} mount {mpath!r} is a {obs.fields['type']!r} engine but the "
            f"config wants {d.fields['type']!r}; changing the type would unmount it and destroy "
            "its data, so do that by hand"
        )
    diffs = _diff_fields(d.fields, obs.fields)
    if not diffs:
        return []
    if any(f.name == "version" and f.before == "2" for f in diffs):
        raise PlanError(f"{d.source}: KV v2 cannot be downgraded to v1")
    body = {}
    for f in diffs:
        if f.name == "description":
            body["description"] = f.after
        elif f.name == "version":
            body["options"] = {"version": "2"}
    tune = f"sys/mounts/auth/{mpath}/tune" if table == "auth" else f"sys/mounts/{mpath}/tune"
    return [Change("update", d.kind, d.path, d.source, diffs, body, write_path=tune)]


def _k8s_config(d: DesiredObject, obs: Any, new: StateRecord, plan: Plan) -> list[Change]:
    wo = d.write_only["token_reviewer_jwt"]
    vkey = _wo_key(d.path, "token_reviewer_jwt")
    recorded = new.versions.get(vkey)
    diffs = _diff_fields(d.fields, obs.fields if obs else None)
    send_jwt = False
    versions: dict[str, int] = {}
    if wo.value is not None:
        if obs is None or not obs.flags.get("token_reviewer_jwt_set"):
            diffs.append(FieldChange("token_reviewer_jwt", "+", None, wo.value, sensitive=True))
            send_jwt = True
        elif recorded is None:
            versions[vkey] = wo.version  # adopt: Vault holds one, we do not know its age
        elif recorded != wo.version:
            diffs.append(
                FieldChange(
                    "token_reviewer_jwt",
                    "~",
                    None,
                    wo.value,
                    sensitive=True,
                    note=f"version {recorded} -> {wo.version}",
                )
            )
            send_jwt = True
        if send_jwt or diffs:
            versions[vkey] = wo.version
    elif obs is not None and obs.flags.get("token_reviewer_jwt_set"):
        diffs.append(FieldChange("token_reviewer_jwt", "-", None, None, sensitive=True))
        versions = {}
        new.versions.pop(vkey, None)

    if not diffs:
        if versions:
            return [Change("adopt", d.kind, d.path, d.source, versions=versions)]
        return []
    # Replace semantics: send the full managed set, including the JWT if configured.
    body: dict[str, Any] = dict(d.fields)
    if wo.value is not None:
        body["token_reviewer_jwt"] = wo.value
    return [
        Change(
            "create" if obs is None else "update",
            d.kind,
            d.path,
            d.source,
            diffs,
            body,
            versions=versions,
        )
    ]


def _merge_object(d: DesiredObject, obs: Any, new: StateRecord, plan: Plan) -> list[Change]:
    """Merge-semantics objects (roles, policies): send every managed field when anything differs."""
    diffs = _diff_fields(d.fields, obs.fields if obs else None)
    if not diffs:
        return []
    return [
        Change(
            "create" if obs is None else "update", d.kind, d.path, d.source, diffs, dict(d.fields)
        )
    ]


def _db_connection(d: DesiredObject, obs: Any, new: StateRecord, plan: Plan) -> list[Change]:
    pw = d.write_only["password"]
    rot = d.write_only["rotate_root"]
    pkey, rkey = _wo_key(d.path, "password"), _wo_key(d.path, "rotate_root")
    diffs = _diff_fields(d.fields, obs.fields if obs else None)
    versions: dict[str, int] = {}
    send_pw = False
    if obs is None:
        diffs.append(FieldChange("password", "+", None, pw.value, sensitive=True))
        send_pw = True
        versions[pkey] = pw.version
    elif new.versions.get(pkey) is None:
        versions[pkey] = pw.version  # adopted: never re-send, Vault may have rotated it
    elif new.versions[pkey] != pw.version:
        diffs.append(
            FieldChange(
                "password",
                "~",
                None,
                pw.value,
                sensitive=True,
                note=f"password_version {new.versions[pkey]} -> {pw.version}",
            )
        )
        send_pw = True
        versions[pkey] = pw.version

    out: list[Change] = []
    if diffs:
        body: dict[str, Any] = dict(d.fields) | dict(d.extra_body)
        if send_pw:
            body["password"] = pw.value
        out.append(
            Change(
                "create" if obs is None else "update",
                d.kind,
                d.path,
                d.source,
                diffs,
                body,
                versions=versions,
            )
        )
    elif versions:
        out.append(Change("adopt", d.kind, d.path, d.source, versions=versions))

    recorded_rot = new.versions.get(rkey, 0)
    if rot.version > recorded_rot:
        mount, _, name = d.path.partition("/config/")
        out.append(
            Change(
                "rotate",
                "db_rotate_root",
                d.path,
                d.source,
                [
                    FieldChange(
                        "root password",
                        "~",
                        None,
                        None,
                        sensitive=True,
                        note=f"rotate_root_version {recorded_rot} -> {rot.version}",
                    )
                ],
                {},
                write_path=f"{mount}/rotate-root/{name}",
                versions={rkey: rot.version},
            )
        )
    return out


def _kv(d: DesiredObject, obs: Any, new: StateRecord, plan: Plan) -> list[Change]:
    mount, _, sub = d.path.partition("/data/")
    if obs is None:
        diffs = [
            FieldChange(f"data.{k}", "+", None, v, sensitive=True) for k, v in d.secrets.items()
        ]
        body: dict[str, Any] = {"data": dict(d.secrets)}
        if d.mode == "create-only":
            body["options"] = {"cas": 0}
        return [Change("create", "kv", d.path, d.source, diffs, body)]
    if d.mode == "create-only":
        return []
    diffs = []
    for k, v in d.secrets.items():
        have = obs.secrets.get(k)
        if have is None:
            diffs.append(FieldChange(f"data.{k}", "+", None, v, sensitive=True))
        elif not hmac.compare_digest(have.reveal().encode(), v.reveal().encode()):
            diffs.append(FieldChange(f"data.{k}", "~", have, v, sensitive=True))
    for k in obs.secrets:
        if k not in d.secrets:
            diffs.append(FieldChange(f"data.{k}", "-", obs.secrets[k], None, sensitive=True))
    if not diffs:
        return []
    return [Change("update", "kv", d.path, d.source, diffs, {"data": dict(d.secrets)})]


_ONE_WAY = ("exportable", "allow_plaintext_backup")


def _transit_key(d: DesiredObject, obs: Any, new: StateRecord, plan: Plan) -> list[Change]:
    """Create with the settings, or tune `<key>/config`; never rotate, export or delete."""
    config = f"{d.path}/config"
    if obs is None:
        body = {k: v for k, v in d.fields.items() if k != "deletion_allowed"}
        out = [Change("create", d.kind, d.path, d.source, _diff_fields(d.fields, None), body)]
        if d.fields["deletion_allowed"]:  # only the config endpoint sets it
            out.append(
                Change(
                    "update",
                    d.kind,
                    d.path,
                    d.source,
                    [FieldChange("deletion_allowed", "~", False, True)],
                    {"deletion_allowed": True},
                    write_path=config,
                )
            )
        return out
    if obs.fields["type"] != d.fields["type"]:
        raise PlanError(
            f"{d.source}: transit key {d.path!r} is {obs.fields['type']!r} but the config wants "
            f"{d.fields['type']!r}; a key's type cannot change (make a new key)"
        )
    for name in _ONE_WAY:
        if obs.fields[name] and not d.fields[name]:
            raise PlanError(
                f"{d.source}.{name}: transit key {d.path!r} has {name}=true, which Vault "
                "cannot undo; set it to true in the config"
            )
    diffs = _diff_fields(d.fields, obs.fields)
    if not diffs:
        return []
    body = {f.name: f.after for f in diffs}
    return [Change("update", d.kind, d.path, d.source, diffs, body, write_path=config)]


_HANDLERS = {
    "transit_key": _transit_key,
    "auth_mount": _mount,
    "secrets_mount": _mount,
    "k8s_config": _k8s_config,
    "k8s_role": _merge_object,
    "policy": _merge_object,
    "db_connection": _db_connection,
    "db_role": _merge_object,
    "kv": _kv,
}


def _kv_delete(path: str) -> str:
    mount, _, sub = path.partition("/data/")
    return f"{mount}/metadata/{sub}"


_DELETE_PATHS = {
    "auth_mount": lambda p: p,
    "secrets_mount": lambda p: p,
    "policy": lambda p: p,
    "k8s_role": lambda p: p,
    "db_connection": lambda p: p,
    "db_role": lambda p: p,
    "kv": _kv_delete,
}
