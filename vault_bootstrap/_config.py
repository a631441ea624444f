"""The config file model: one YAML document, validated up front, unknown keys rejected.

Errors are reported as one line naming the field path, e.g.
``chapter.yaml: auth.kubernetes.roles.app.token_ttl: invalid duration '1x'``.
Nothing here touches the network or reads a referenced value: references are parsed and checked
for shape only, and resolved when `plan`/`apply` run (see `_refs`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from ._errors import ConfigError
from ._refs import SecretRef, check_interpolation, parse_secret_ref

__all__ = ["Config", "load_config", "parse_config"]

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)*$")
RESERVED_MOUNTS = {"sys", "identity", "cubbyhole", "auth", "token", "agent-registry"}


def _duration(value: Any) -> int:
    """Vault-style duration (``90``, ``"90s"``, ``"1h30m"``, ``"7d"``) to integer seconds."""
    if isinstance(value, bool):
        raise ValueError("invalid duration (a boolean)")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("duration must not be negative")
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        m = _DURATION.match(text)
        if text and m:
            d, h, mi, s = (int(g) if g else 0 for g in m.groups())
            return ((d * 24 + h) * 60 + mi) * 60 + s
    raise ValueError(f"invalid duration {value!r} (use seconds or e.g. 30s, 15m, 1h, 7d)")


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("expected a string")
    return check_interpolation(str(value))


def _str_list(value: Any) -> Any:
    """Vault accepts a comma string or a single statement; store lists."""
    if isinstance(value, str):
        return [value]
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"invalid name {value!r}")
    return value


Duration = Annotated[int, PlainValidator(_duration)]
Text = Annotated[str, PlainValidator(_text)]
SecretRefField = Annotated[SecretRef, PlainValidator(parse_secret_ref)]
Statements = Annotated[list[str], BeforeValidator(_str_list)]
Name = Annotated[str, BeforeValidator(_name)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- connection, init, state -------------------------------------------------------------


class KubernetesLogin(_Strict):
    """Log in with a service-account JWT (the pod's own token by default)."""

    role: str
    mount: str = "kubernetes"
    jwt: SecretRefField = SecretRef("file", "/var/run/secrets/kubernetes.io/serviceaccount/token")


class Connection(_Strict):
    """Where Vault is and how to log in. Unset values fall back to BAO_* then VAULT_* env vars."""

    address: Text | None = None
    ca_cert_file: Text | None = None
    tls_skip_verify: bool | None = None
    token: SecretRefField | None = None
    kubernetes_login: KubernetesLogin | None = None
    wait_timeout: Duration = 300
    request_timeout: Duration = 30
    # Vault requests at most in flight at once (reads, and writes within a dependency wave).
    concurrency: int = Field(default=8, ge=1, le=64)

    @model_validator(mode="after")
    def _one_login(self) -> Connection:
        if self.token is not None and self.kubernetes_login is not None:
            raise ValueError("set either token or kubernetes_login, not both")
        return self


class KubeSecretName(_Strict):
    namespace: Name
    name: Name


class KeyStore(_Strict):
    """Where init writes the unseal keys and root token: a file or a Kubernetes Secret."""

    file: Text | None = None
    kubernetes_secret: KubeSecretName | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> KeyStore:
        if (self.file is None) == (self.kubernetes_secret is None):
            raise ValueError("set exactly one of file, kubernetes_secret")
        return self


class Init(_Strict):
    """Opt-in initialisation and unseal of a fresh server."""

    secret_shares: int = Field(default=1, ge=1, le=10)
    secret_threshold: int = Field(default=1, ge=1, le=10)
    key_store: KeyStore
    unseal: bool = True

    @model_validator(mode="after")
    def _threshold(self) -> Init:
        if self.secret_threshold > self.secret_shares:
            raise ValueError("secret_threshold must not exceed secret_shares")
        return self


class State(_Strict):
    """The KV v2 entry where we record what we created and which write-only versions we sent."""

    mount: Name = "secret"
    path: str = "vault-bootstrap/state"

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not _PATH.match(v):
            raise ValueError(f"invalid path {v!r}")
        return v


# --- auth ---------------------------------------------------------------------------------


class KubernetesAuthConfig(_Strict):
    kubernetes_host: Text
    kubernetes_ca_cert: Text | None = None
    kubernetes_ca_cert_file: Text | None = None
    token_reviewer_jwt: SecretRefField | None = None
    token_reviewer_jwt_version: int = Field(default=1, ge=1)
    issuer: Text | None = None
    disable_iss_validation: bool | None = None
    disable_local_ca_jwt: bool | None = None
    pem_keys: list[str] | None = None

    @model_validator(mode="after")
    def _ca(self) -> KubernetesAuthConfig:
        if self.kubernetes_ca_cert is not None and self.kubernetes_ca_cert_file is not None:
            raise ValueError("set kubernetes_ca_cert or kubernetes_ca_cert_file, not both")
        return self


class KubernetesRole(_Strict):
    bound_service_account_names: list[str] = Field(min_length=1)
    bound_service_account_namespaces: list[Text] = Field(min_length=1)
    token_policies: list[str] = []
    token_ttl: Duration | None = None
    token_max_ttl: Duration | None = None
    token_type: (
        Literal["default", "service", "batch", "default-service", "default-batch"] | None
    ) = None
    audience: str | None = None
    alias_name_source: Literal["serviceaccount_uid", "serviceaccount_name"] | None = None


class KubernetesAuth(_Strict):
    type: Literal["kubernetes"]
    description: str = ""
    config: KubernetesAuthConfig
    roles: dict[Name, KubernetesRole] = {}


# --- secrets engines ----------------------------------------------------------------------


class PostgresConnection(_Strict):
    plugin_name: Literal["postgresql-database-plugin"] = "postgresql-database-plugin"
    connection_url: Text
    username: Text
    password: SecretRefField
    password_version: int = Field(default=1, ge=1)
    allowed_roles: list[str] = []
    verify_connection: bool = True
    password_authentication: Literal["password", "scram-sha-256"] | None = None
    username_template: str | None = None
    max_open_connections: int | None = Field(default=None, ge=0)
    max_idle_connections: int | None = Field(default=None, ge=0)
    max_connection_lifetime: Duration | None = None
    root_rotation_statements: Statements | None = None
    rotate_root_version: int = Field(default=0, ge=0)

    @field_validator("connection_url")
    @classmethod
    def _templated(cls, v: str) -> str:
        if "{{username}}" not in v or "{{password}}" not in v:
            raise ValueError(
                "connection_url must be templated with {{username}} and {{password}} "
                "(credentials go in username/password, never in the URL)"
            )
        return v


class DatabaseRole(_Strict):
    db_name: str
    creation_statements: Statements = Field(min_length=1)
    revocation_statements: Statements = []
    rollback_statements: Statements = []
    renew_statements: Statements = []
    default_ttl: Duration = 0
    max_ttl: Duration = 0


class DatabaseEngine(_Strict):
    type: Literal["database"]
    description: str = ""
    connections: dict[Name, PostgresConnection] = {}
    roles: dict[Name, DatabaseRole] = {}

    @model_validator(mode="after")
    def _role_connections(self) -> DatabaseEngine:
        for name, role in self.roles.items():
            if role.db_name not in self.connections:
                raise ValueError(
                    f"roles.{name}.db_name: {role.db_name!r} is not a connection of this mount"
                )
        return self


class KvV2Engine(_Strict):
    type: Literal["kv-v2"]
    description: str = ""


class TransitKey(_Strict):
    """A named transit key. Only its settings are managed, never its material: no rotate,
    export or backup call is ever made. ``exportable`` and ``allow_plaintext_backup`` are
    one-way in Vault (once true, always true), so they default to false and the planner
    refuses to turn them off; ``deletion_allowed`` defaults to false so nobody deletes the
    key (and every secret it wraps) by accident."""

    type: Literal[
        "aes128-gcm96", "aes256-gcm96", "chacha20-poly1305", "rsa-2048", "rsa-3072", "rsa-4096"
    ] = "aes256-gcm96"
    exportable: bool = False
    allow_plaintext_backup: bool = False
    deletion_allowed: bool = False
    auto_rotate_period: Duration | None = None  # managed only if set; 0 = off

    @field_validator("auto_rotate_period")
    @classmethod
    def _rotate(cls, v: int | None) -> int | None:
        if v is not None and 0 < v < 3600:
            raise ValueError("auto_rotate_period must be 0 (off) or at least 1h")
        return v


class TransitEngine(_Strict):
    type: Literal["transit"]
    description: str = ""
    keys: dict[Name, TransitKey] = {}


SecretsEngine = Annotated[DatabaseEngine | KvV2Engine | TransitEngine, Field(discriminator="type")]


# --- policies and kv ----------------------------------------------------------------------


class Policy(_Strict):
    policy: str | None = None
    file: Text | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Policy:
        if (self.policy is None) == (self.file is None):
            raise ValueError("set exactly one of policy (inline HCL) or file")
        return self


class KvEntry(_Strict):
    mount: Name | None = None
    mode: Literal["enforce", "create-only"] = "enforce"
    data: dict[str, SecretRefField] = Field(min_length=1)


# --- verify -------------------------------------------------------------------------------


class VerifyDatabase(_Strict):
    mount: str = "database"
    role: str
    host: Text
    port: Text = "5432"
    dbname: Text
    sslmode: str = "disable"
    query: str = "SELECT 1"


class Verify(_Strict):
    """Post-apply smoke test: log in as a service account and use what it was granted."""

    service_account: KubeSecretName
    auth_mount: str = "kubernetes"
    role: str
    audiences: list[str] | None = None
    database: VerifyDatabase | None = None
    read_kv: list[str] = []
    denied_kv: list[str] = []


# --- the file -----------------------------------------------------------------------------


class Config(_Strict):
    connection: Connection = Connection()
    init: Init | None = None
    auth: dict[str, KubernetesAuth] = {}
    secrets: dict[str, SecretsEngine] = {}
    policies: dict[str, Policy] = {}
    kv: dict[str, KvEntry] = {}
    prune: bool = False
    state: State = State()
    verify: Verify | None = None

    @field_validator("auth", "secrets")
    @classmethod
    def _mount_paths(cls, v: dict[str, Any]) -> dict[str, Any]:
        for path in v:
            if not _PATH.match(path):
                raise ValueError(f"invalid mount path {path!r} (no leading/trailing slash)")
            if path.split("/")[0] in RESERVED_MOUNTS:
                raise ValueError(f"mount path {path!r} is reserved by Vault")
        return v

    @field_validator("policies")
    @classmethod
    def _policy_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not _NAME.match(name) or name != name.lower():
                raise ValueError(f"policy name {name!r} must be lower-case letters, digits, -_.")
            if name == "root":
                raise ValueError("the root policy cannot be managed")
        return v

    @field_validator("kv")
    @classmethod
    def _kv_paths(cls, v: dict[str, Any]) -> dict[str, Any]:
        for path, entry in v.items():
            if not _PATH.match(path):
                raise ValueError(f"invalid kv path {path!r}")
            mount = entry.mount or path.split("/")[0]
            if not path.startswith(mount + "/") or path == mount + "/":
                raise ValueError(f"kv path {path!r} must be <mount>/<path> under mount {mount!r}")
        return v

    def kv_mount_and_path(self, key: str) -> tuple[str, str]:
        mount = self.kv[key].mount or key.split("/")[0]
        return mount, key[len(mount) + 1 :]


# --- loading ------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if key in result:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        result[key] = loader.construct_object(value_node)
    return result


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def _loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        # Tagged unions insert the tag ("database", "kv-v2") after the mount key; hide it.
        if i == 2 and loc[0] == "secrets" and item in ("database", "kv-v2", "transit"):
            continue
        parts.append(str(item))
    return ".".join(parts) or "(top level)"


def format_validation_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "required key missing"
    elif first["type"] == "union_tag_invalid":
        msg = f"unknown type; expected one of {first.get('ctx', {}).get('expected_tags', '')}"
    elif first["type"] == "union_tag_not_found":
        msg = "missing 'type' (database, kv-v2 or transit)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{_loc(tuple(first['loc']))}: {msg}{more}"


def parse_config(data: Any, *, source: str = "config") -> Config:
    """Validate an already-parsed YAML document."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
    if not (config.init or config.auth or config.secrets or config.policies or config.kv):
        # An empty file (or one whose sections all went missing) is a mistake, and with
        # --prune it would plan to delete everything the tool owns.
        raise ConfigError(
            f"{source}: the config declares nothing (no init, auth, secrets, policies or kv)"
        )
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; every failure is one `ConfigError` line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{source}: {where}{problem}") from None
    return parse_config(data, source=source)
