"""Turn the validated config into normalised `DesiredObject`s, resolving references.

This is where `${env:..}` text and secret references are resolved (plan/apply time). Values are
normalised the way Vault reads them back (seconds, sorted sets, defaults for replace-semantics
endpoints), so the planner can compare like with like.
"""

from __future__ import annotations

from ._config import Config, DatabaseEngine, KubernetesAuth, KvV2Engine, TransitEngine
from ._errors import ResolveError
from ._model import DesiredObject, WriteOnly
from ._refs import Resolver

__all__ = ["build_desired", "normalise_policy", "state_location"]

# kubernetes auth config is a *replace* endpoint: every field we do not set is reset to its
# default on each write, so we manage all of them and compare against these defaults.
K8S_CONFIG_DEFAULTS = {
    "kubernetes_host": "",
    "kubernetes_ca_cert": "",
    "issuer": "",
    "disable_iss_validation": True,
    "disable_local_ca_jwt": False,
    "pem_keys": [],
}


def normalise_policy(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()).rstrip() + "\n"


def state_location(config: Config) -> tuple[str, str]:
    return config.state.mount, config.state.path


def build_desired(config: Config, resolver: Resolver) -> list[DesiredObject]:
    out: list[DesiredObject] = []
    for mount, auth in config.auth.items():
        out.extend(_auth(mount, auth, resolver))
    for name, pol in config.policies.items():
        src = f"policies.{name}"
        text = pol.policy if pol.policy is not None else _read(resolver, pol.file or "", src)
        out.append(
            DesiredObject(
                kind="policy",
                path=f"sys/policies/acl/{name}",
                source=src,
                fields={"policy": normalise_policy(text)},
            )
        )
    for mount, engine in config.secrets.items():
        out.extend(_engine(mount, engine, resolver))
    for key, entry in config.kv.items():
        mount, sub = config.kv_mount_and_path(key)
        src = f"kv.{key}"
        out.append(
            DesiredObject(
                kind="kv",
                path=f"{mount}/data/{sub}",
                source=src,
                secrets={
                    k: resolver.secret(ref, f"{src}.data.{k}") for k, ref in entry.data.items()
                },
                mode=entry.mode,
            )
        )
    return out


def _read(resolver: Resolver, path: str, src: str) -> str:
    path = resolver.text(path, f"{src}.file")
    return resolver.text("${file:" + path + "}", f"{src}.file") if path else ""


def _auth(mount: str, auth: KubernetesAuth, r: Resolver) -> list[DesiredObject]:
    src = f"auth.{mount}"
    objs = [
        DesiredObject(
            kind="auth_mount",
            path=f"sys/auth/{mount}",
            source=src,
            fields={"type": auth.type}
            | ({"description": auth.description} if "description" in auth.model_fields_set else {}),
        )
    ]
    c = auth.config
    csrc = f"{src}.config"
    ca = ""
    if c.kubernetes_ca_cert is not None:
        ca = r.text(c.kubernetes_ca_cert, f"{csrc}.kubernetes_ca_cert")
    elif c.kubernetes_ca_cert_file is not None:
        ca = _read(r, c.kubernetes_ca_cert_file, f"{csrc}.kubernetes_ca_cert")
        if not ca:
            raise ResolveError(f"{csrc}.kubernetes_ca_cert_file: file is empty")
    fields = dict(K8S_CONFIG_DEFAULTS)
    fields.update(
        kubernetes_host=r.text(c.kubernetes_host, f"{csrc}.kubernetes_host"),
        kubernetes_ca_cert=ca.strip() + "\n" if ca.strip() else "",
    )
    if c.issuer is not None:
        fields["issuer"] = r.text(c.issuer, f"{csrc}.issuer")
    if c.disable_iss_validation is not None:
        fields["disable_iss_validation"] = c.disable_iss_validation
    if c.disable_local_ca_jwt is not None:
        fields["disable_local_ca_jwt"] = c.disable_local_ca_jwt
    if c.pem_keys is not None:
        fields["pem_keys"] = list(c.pem_keys)
    jwt = (
        r.secret(c.token_reviewer_jwt, f"{csrc}.token_reviewer_jwt")
        if c.token_reviewer_jwt is not None
        else None
    )
    objs.append(
        DesiredObject(
            kind="k8s_config",
            path=f"auth/{mount}/config",
            source=csrc,
            fields=fields,
            write_only={"token_reviewer_jwt": WriteOnly(jwt, c.token_reviewer_jwt_version)},
        )
    )
    for name, role in auth.roles.items():
        rsrc = f"{src}.roles.{name}"
        set_ = role.model_fields_set
        f: dict[str, object] = {
            "bound_service_account_names": sorted(role.bound_service_account_names),
            "bound_service_account_namespaces": sorted(
                r.text(ns, f"{rsrc}.bound_service_account_namespaces")
                for ns in role.bound_service_account_namespaces
            ),
        }
        if "token_policies" in set_:
            f["token_policies"] = sorted(p.lower() for p in role.token_policies)
        for opt in ("token_ttl", "token_max_ttl", "token_type", "audience", "alias_name_source"):
            if opt in set_ and getattr(role, opt) is not None:
                f[opt] = getattr(role, opt)
        objs.append(
            DesiredObject(kind="k8s_role", path=f"auth/{mount}/role/{name}", source=rsrc, fields=f)
        )
    return objs


def _engine(
    mount: str, engine: DatabaseEngine | KvV2Engine | TransitEngine, r: Resolver
) -> list[DesiredObject]:
    src = f"secrets.{mount}"
    mount_fields: dict[str, object] = {"type": "kv" if engine.type == "kv-v2" else engine.type}
    if engine.type == "kv-v2":
        mount_fields["version"] = "2"
    if "description" in engine.model_fields_set:
        mount_fields["description"] = engine.description
    objs = [
        DesiredObject(
            kind="secrets_mount", path=f"sys/mounts/{mount}", source=src, fields=mount_fields
        )
    ]
    if isinstance(engine, TransitEngine):
        return objs + _transit_keys(mount, engine)
    if not isinstance(engine, DatabaseEngine):
        return objs
    for name, conn in engine.connections.items():
        csrc = f"{src}.connections.{name}"
        set_ = conn.model_fields_set
        f: dict[str, object] = {
            "plugin_name": conn.plugin_name,
            "connection_url": r.text(conn.connection_url, f"{csrc}.connection_url"),
            "username": r.text(conn.username, f"{csrc}.username"),
            "allowed_roles": sorted(conn.allowed_roles),
        }
        for opt in (
            "password_authentication",
            "username_template",
            "max_open_connections",
            "max_idle_connections",
            "max_connection_lifetime",
            "root_rotation_statements",
        ):
            if opt in set_ and getattr(conn, opt) is not None:
                f[opt] = getattr(conn, opt)
        objs.append(
            DesiredObject(
                kind="db_connection",
                path=f"{mount}/config/{name}",
                source=csrc,
                fields=f,
                write_only={
                    "password": WriteOnly(
                        r.secret(conn.password, f"{csrc}.password"), conn.password_version
                    ),
                    "rotate_root": WriteOnly(None, conn.rotate_root_version),
                },
                extra_body={"verify_connection": conn.verify_connection},
            )
        )
    for name, role in engine.roles.items():
        objs.append(
            DesiredObject(
                kind="db_role",
                path=f"{mount}/roles/{name}",
                source=f"{src}.roles.{name}",
                fields={
                    "db_name": role.db_name,
                    "creation_statements": list(role.creation_statements),
                    "revocation_statements": list(role.revocation_statements),
                    "rollback_statements": list(role.rollback_statements),
                    "renew_statements": list(role.renew_statements),
                    "default_ttl": role.default_ttl,
                    "max_ttl": role.max_ttl,
                },
            )
        )
    return objs


def _transit_keys(mount: str, engine: TransitEngine) -> list[DesiredObject]:
    out = []
    for name, key in engine.keys.items():
        f: dict[str, object] = {
            "type": key.type,
            "exportable": key.exportable,
            "allow_plaintext_backup": key.allow_plaintext_backup,
            "deletion_allowed": key.deletion_allowed,
        }
        if key.auto_rotate_period is not None:
            f["auto_rotate_period"] = key.auto_rotate_period
        out.append(
            DesiredObject(
                kind="transit_key",
                path=f"{mount}/keys/{name}",
                source=f"secrets.{mount}.keys.{name}",
                fields=f,
            )
        )
    return out
