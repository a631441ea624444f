"""Read every managed (and owned) object from Vault and normalise it for comparison.

Normalisation mirrors `_desired`: durations as seconds, legacy role field names mapped to
`token_*`, comma strings and sets as sorted lists, trailing `/` stripped from mount keys, policy
text with trailing whitespace trimmed. Children of a mount that does not exist are not read.
The normalisers are pure functions over the raw `data` dicts, so they are unit-tested directly.
The per-object reads are independent, so they run on at most `concurrency` threads (the
gateway gives each thread its own HTTP session); the mount tables and the state entry are read
first because they decide what else to read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._desired import normalise_policy
from ._errors import PlanError
from ._gateway import VaultGateway
from ._model import DesiredObject, Observed, ObservedObject, StateRecord
from ._redact import Sensitive

__all__ = ["NORMALISERS", "mount_of", "observe", "split_key"]


def _sorted_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return sorted(v.strip() for v in value.split(",") if v.strip())
    return sorted(str(v) for v in value)


def _seconds(value: Any) -> int:
    if value in (None, ""):
        return 0
    if isinstance(value, (int, float)):
        return int(value)
    from ._config import _duration

    return _duration(str(value))


def normalise_k8s_config(raw: dict[str, Any]) -> ObservedObject:
    ca = str(raw.get("kubernetes_ca_cert") or "")
    return ObservedObject(
        fields={
            "kubernetes_host": str(raw.get("kubernetes_host") or ""),
            "kubernetes_ca_cert": ca.strip() + "\n" if ca.strip() else "",
            "issuer": str(raw.get("issuer") or ""),
            "disable_iss_validation": bool(raw.get("disable_iss_validation", True)),
            "disable_local_ca_jwt": bool(raw.get("disable_local_ca_jwt", False)),
            "pem_keys": list(raw.get("pem_keys") or []),
        },
        flags={"token_reviewer_jwt_set": bool(raw.get("token_reviewer_jwt_set", False))},
    )


def normalise_k8s_role(raw: dict[str, Any]) -> ObservedObject:
    policies = raw.get("token_policies") or raw.get("policies") or []
    ttl = raw.get("token_ttl") if raw.get("token_ttl") not in (None, 0) else raw.get("ttl")
    max_ttl = (
        raw.get("token_max_ttl")
        if raw.get("token_max_ttl") not in (None, 0)
        else raw.get("max_ttl")
    )
    return ObservedObject(
        fields={
            "bound_service_account_names": _sorted_list(raw.get("bound_service_account_names")),
            "bound_service_account_namespaces": _sorted_list(
                raw.get("bound_service_account_namespaces")
            ),
            "token_policies": _sorted_list(policies),
            "token_ttl": _seconds(ttl),
            "token_max_ttl": _seconds(max_ttl),
            "token_type": str(raw.get("token_type") or "default"),
            "audience": str(raw.get("audience") or ""),
            "alias_name_source": str(raw.get("alias_name_source") or "serviceaccount_uid"),
        }
    )


def normalise_db_connection(raw: dict[str, Any]) -> ObservedObject:
    details = raw.get("connection_details") or {}
    fields: dict[str, Any] = {
        "plugin_name": str(raw.get("plugin_name") or ""),
        "connection_url": str(details.get("connection_url") or ""),
        "username": str(details.get("username") or ""),
        "allowed_roles": _sorted_list(raw.get("allowed_roles")),
        "root_rotation_statements": list(raw.get("root_credentials_rotate_statements") or []),
    }
    for opt in ("password_authentication", "username_template"):
        fields[opt] = str(details.get(opt) or "")
    for opt in ("max_open_connections", "max_idle_connections"):
        if opt in details:
            fields[opt] = int(details[opt])
    if "max_connection_lifetime" in details:
        fields["max_connection_lifetime"] = _seconds(details["max_connection_lifetime"])
    return ObservedObject(fields=fields)


def normalise_db_role(raw: dict[str, Any]) -> ObservedObject:
    def stmts(name: str) -> list[str]:
        v = raw.get(name) or []
        return [v] if isinstance(v, str) else [str(s) for s in v]

    return ObservedObject(
        fields={
            "db_name": str(raw.get("db_name") or ""),
            "creation_statements": stmts("creation_statements"),
            "revocation_statements": stmts("revocation_statements"),
            "rollback_statements": stmts("rollback_statements"),
            "renew_statements": stmts("renew_statements"),
            "default_ttl": _seconds(raw.get("default_ttl")),
            "max_ttl": _seconds(raw.get("max_ttl")),
        }
    )


def normalise_policy_read(raw: dict[str, Any]) -> ObservedObject:
    return ObservedObject(fields={"policy": normalise_policy(str(raw.get("policy") or ""))})


def normalise_kv(raw: dict[str, Any]) -> ObservedObject:
    data = raw.get("data") or {}
    return ObservedObject(
        secrets={str(k): Sensitive(str(v)) for k, v in data.items()},
        flags={"version": (raw.get("metadata") or {}).get("version")},
    )


def normalise_transit_key(raw: dict[str, Any]) -> ObservedObject:
    """Settings only: the `keys` map (versions, and public keys for RSA) is never kept."""
    return ObservedObject(
        fields={
            "type": str(raw.get("type") or ""),
            "exportable": bool(raw.get("exportable", False)),
            "allow_plaintext_backup": bool(raw.get("allow_plaintext_backup", False)),
            "deletion_allowed": bool(raw.get("deletion_allowed", False)),
            "auto_rotate_period": _seconds(raw.get("auto_rotate_period")),
        }
    )


NORMALISERS = {
    "transit_key": normalise_transit_key,
    "k8s_config": normalise_k8s_config,
    "k8s_role": normalise_k8s_role,
    "db_connection": normalise_db_connection,
    "db_role": normalise_db_role,
    "policy": normalise_policy_read,
    "kv": normalise_kv,
}


def split_key(key: str) -> tuple[str, str]:
    kind, _, path = key.partition(":")
    return kind, path


def mount_of(kind: str, path: str) -> tuple[str, str] | None:
    """(mount table, mount path) an object lives under, or None for mounts/policies."""
    if kind in ("k8s_config", "k8s_role"):
        rest = path.removeprefix("auth/")
        sep = "/config" if kind == "k8s_config" else "/role/"
        return "auth", rest.rsplit(sep, 1)[0]
    if kind == "db_connection":
        return "secrets", path.rsplit("/config/", 1)[0]
    if kind == "db_role":
        return "secrets", path.rsplit("/roles/", 1)[0]
    if kind == "transit_key":
        return "secrets", path.rsplit("/keys/", 1)[0]
    if kind in ("kv", "state"):
        return "secrets", path.split("/data/", 1)[0]
    return None


def observe(
    gw: VaultGateway,
    desired: Iterable[DesiredObject],
    *,
    state_mount: str,
    state_path: str,
    concurrency: int = 1,
) -> Observed:
    obs = Observed()
    auth_raw = gw.read("sys/auth") or {}
    for key, info in auth_raw.items():
        if isinstance(info, dict):
            obs.auth_mounts[key.rstrip("/")] = str(info.get("type"))
    mounts_raw = gw.read("sys/mounts") or {}
    for key, info in mounts_raw.items():
        if isinstance(info, dict):
            version = str((info.get("options") or {}).get("version") or "1")
            obs.secrets_mounts[key.rstrip("/")] = (str(info.get("type")), version)

    # The state entry: what we created before and which write-only versions we sent.
    if state_mount in obs.secrets_mounts:
        mtype, version = obs.secrets_mounts[state_mount]
        if mtype != "kv" or version != "2":
            raise PlanError(f"state.mount: {state_mount!r} is not a KV v2 mount")
        raw = gw.read(f"{state_mount}/data/{state_path}")
        if raw is not None:
            obs.state = StateRecord.from_data(raw.get("data"))
            obs.state_exists = True

    keys = [d.key for d in desired]
    known = set(keys)
    keys += sorted(k for k in obs.state.created if k not in known)
    to_read: list[tuple[str, str, str]] = []
    for key in keys:
        kind, path = split_key(key)
        if kind == "auth_mount":
            obs.objects[key] = _mount_obj(auth_raw.get(path.removeprefix("sys/auth/") + "/"))
            continue
        if kind == "secrets_mount":
            obs.objects[key] = _mount_obj(mounts_raw.get(path.removeprefix("sys/mounts/") + "/"))
            continue
        where = mount_of(kind, path)
        if where is not None:
            table, mpath = where
            present = obs.auth_mounts if table == "auth" else obs.secrets_mounts
            if mpath not in present:
                obs.objects[key] = None
                continue
        if kind in NORMALISERS:
            to_read.append((key, kind, path))
    raws = _read_all(gw, [path for _, _, path in to_read], concurrency)
    for (key, kind, _), raw in zip(to_read, raws, strict=True):
        obs.objects[key] = None if raw is None else NORMALISERS[kind](raw)
    return obs


def _read_all(gw: VaultGateway, paths: list[str], concurrency: int) -> list[Any]:
    """`gw.read` of every path, in order; concurrently on at most `concurrency` threads."""
    if concurrency <= 1 or len(paths) <= 1:
        return [gw.read(p) for p in paths]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(concurrency, len(paths))) as pool:
        return list(pool.map(gw.read, paths))


def _mount_obj(info: Any) -> ObservedObject | None:
    if not isinstance(info, dict):
        return None
    fields: dict[str, Any] = {
        "type": str(info.get("type")),
        "description": str(info.get("description") or ""),
    }
    if info.get("type") == "kv":
        fields["version"] = str((info.get("options") or {}).get("version") or "1")
    return ObservedObject(fields=fields)
