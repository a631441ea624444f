"""Plain data shared by the desired-state builder, the observer, the planner and the executor.

Objects are identified by the Vault API path they are written to. `kind` decides how an object
is read, compared and written (see `_kinds`). Secret values only ever travel as `Sensitive`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ._redact import Sensitive

__all__ = [
    "Change",
    "DesiredObject",
    "FieldChange",
    "KIND_ORDER",
    "ObservedObject",
    "Observed",
    "Plan",
    "StateRecord",
    "WriteOnly",
]

# Dependency order for creates/updates; deletes run in reverse.
KIND_ORDER = (
    "auth_mount",
    "k8s_config",
    "policy",
    "secrets_mount",
    "transit_key",
    "db_connection",
    "db_rotate_root",
    "db_role",
    "k8s_role",
    "kv",
    "state",
)


@dataclass(frozen=True)
class WriteOnly:
    """A field Vault never returns: sent on create or when `version` differs from the record."""

    value: Sensitive | None
    version: int


@dataclass
class DesiredObject:
    kind: str
    path: str
    source: str  # config field path, for messages: "secrets.database.connections.pg"
    fields: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Sensitive] = field(default_factory=dict)  # KV data
    write_only: dict[str, WriteOnly] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)  # sent, never compared
    mode: str = "enforce"  # kv: enforce | create-only

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.path}"


@dataclass
class ObservedObject:
    fields: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Sensitive] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)  # e.g. token_reviewer_jwt_set


@dataclass
class StateRecord:
    """What we created and which write-only versions we sent; stored in a KV v2 entry."""

    created: set[str] = field(default_factory=set)  # "kind:path"
    versions: dict[str, int] = field(default_factory=dict)  # "path#field" -> version

    def to_data(self) -> dict[str, Any]:
        return {
            "managed-by": "vault-bootstrap",
            "created": sorted(self.created),
            "versions": dict(sorted(self.versions.items())),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any] | None) -> StateRecord:
        data = data or {}
        created = data.get("created") or []
        versions = data.get("versions") or {}
        return cls(
            created={str(c) for c in created} if isinstance(created, list) else set(),
            versions={str(k): int(v) for k, v in versions.items()}
            if isinstance(versions, dict)
            else {},
        )


@dataclass
class Observed:
    objects: dict[str, ObservedObject | None] = field(default_factory=dict)  # key -> obj
    state: StateRecord = field(default_factory=StateRecord)
    state_exists: bool = False
    auth_mounts: dict[str, str] = field(default_factory=dict)  # path -> type
    secrets_mounts: dict[str, tuple[str, str]] = field(default_factory=dict)  # path->(type,ver)


@dataclass(frozen=True)
class FieldChange:
    name: str
    op: Literal["+", "~", "-"]
    before: Any = None
    after: Any = None
    sensitive: bool = False
    note: str = ""


@dataclass
class Change:
    action: Literal["create", "update", "delete", "rotate", "adopt"]
    kind: str
    path: str
    source: str
    fields: list[FieldChange] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)  # may hold Sensitive values
    write_path: str = ""  # where to send; defaults to path
    versions: dict[str, int] = field(default_factory=dict)  # record after success

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.path}"

    @property
    def writes(self) -> bool:
        return self.action != "adopt"


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    state_path: str = ""
    new_state: StateRecord = field(default_factory=StateRecord)
    state_changed: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool([c for c in self.changes if c.writes]) or self.state_changed

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "delete": 0}
        for c in self.changes:
            if c.action == "create":
                out["create"] += 1
            elif c.action in ("update", "rotate"):
                out["update"] += 1
            elif c.action == "delete":
                out["delete"] += 1
        return out
