"""Pure reconcile planning: SealedSecret + existing Secret + keys -> what to write.

No I/O here. `plan_reconcile` returns a `Plan` that `controller.executor` applies through a
`KubeGateway`. What a SealedSecret unseals to is `sealkit.model.unseal` (the same function as
``sealkit --recovery-unseal``); this module keeps only the Kubernetes write rules (compat §7.3):

- a pre-existing Secret we do not control is an `ErrUpdateFailed` (reason `unmanaged`) unless
  it carries `managed` (take over, overwrite) or `patch` (merge; ownerRef only if also managed);
- the Secret is written only when something differs;
- the `/status` merge patch always carries the full `conditions` list and `observedGeneration`,
  and is omitted when nothing would change.

Beyond upstream: the key that opened a SealedSecret last (`hint`) is tried first, so unsealing
costs one RSA operation per value instead of one per key.

No message built here ever contains a decrypted value: errors name keys, never contents.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from controller.keyring import KeyEntry
from sealkit import SealkitError
from sealkit.model import SKIP_SET_OWNER_REFERENCES_ANNOTATION, unseal

__all__ = [
    "ANNOTATION_MANAGED",
    "ANNOTATION_PATCH",
    "ANNOTATION_SKIP_OWNER_REFS",
    "NeedFullSecret",
    "Event",
    "Plan",
    "ReconcileError",
    "Unsealed",
    "desired_secret",
    "is_controlled_by",
    "merge_into_existing",
    "slim_sealed",
    "slim_secret",
    "spec_key",
    "plan_reconcile",
    "status_patch",
]

ANNOTATION_MANAGED = "sealedsecrets.bitnami.com/managed"
ANNOTATION_PATCH = "sealedsecrets.bitnami.com/patch"
ANNOTATION_SKIP_OWNER_REFS = SKIP_SET_OWNER_REFERENCES_ANNOTATION
CONDITION = "Synced"

REASON_UNSEALED = "Unsealed"
REASON_UNSEAL_FAILED = "ErrUnsealFailed"
REASON_UPDATE_FAILED = "ErrUpdateFailed"
SUCCESS_MESSAGE = "SealedSecret unsealed successfully"


class NeedFullSecret(Exception):
    """The cached (slim) Secret is not enough to plan a patch-mode merge."""


class ReconcileError(SealkitError):
    """A reconcile failure with its event reason and metric reason attached."""

    def __init__(
        self, message: str, *, event_reason: str, metric_reason: str, retry: bool = True
    ) -> None:
        super().__init__(message)
        self.event_reason = event_reason
        self.metric_reason = metric_reason
        self.retry = retry


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Unsealed:
    secret: dict[str, Any]
    fingerprint: str | None  # the key that opened it (None: nothing to decrypt)


@dataclass
class Plan:
    """What the executor should do for one SealedSecret."""

    secret_action: Literal["create", "update", "none"]
    secret: dict[str, Any] | None
    status_patch: dict[str, Any] | None
    events: list[Event] = field(default_factory=list)
    synced: bool = True
    error_reason: str | None = None  # metric reason on failure
    retry: bool = False
    opened_by: str | None = None
    message: str = ""


def _is_true(annotations: Mapping[str, Any] | None, key: str) -> bool:
    return (annotations or {}).get(key) == "true"


def desired_secret(
    sealed: Mapping[str, Any],
    keys: Sequence[KeyEntry],
    *,
    hint: str | None = None,
    accept_v1_data: bool = True,
) -> Unsealed:
    """The Secret this SealedSecret unseals to: `sealkit.model.unseal`, keys newest first.

    Raises `ReconcileError` (event `ErrUnsealFailed`, metric reason `unseal`).
    """
    newest_first = list(reversed(keys))
    hinted = next((e.private_key for e in newest_first if e.fingerprint == hint), None)
    try:
        unsealed = unseal(
            sealed,
            [e.private_key for e in newest_first],
            hint=hinted,
            accept_v1_data=accept_v1_data,
        )
    except SealkitError as exc:
        raise ReconcileError(
            exc.message, event_reason=REASON_UNSEAL_FAILED, metric_reason="unseal"
        ) from None
    opened_by = next(
        (e.fingerprint for e in newest_first if e.private_key is unsealed.opened_by), None
    )
    return Unsealed(unsealed.secret, opened_by)


def is_controlled_by(secret: Mapping[str, Any], sealed: Mapping[str, Any]) -> bool:
    uid = (sealed.get("metadata") or {}).get("uid")
    for ref in (secret.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid") == uid and uid:
            return True
    return False


def _refs_key(refs: Any) -> list[tuple[Any, ...]]:
    return [
        (
            r.get("apiVersion"),
            r.get("kind"),
            r.get("name"),
            r.get("uid"),
            bool(r.get("controller")),
            bool(r.get("blockOwnerDeletion")),
        )
        for r in refs or []
    ]


DATA_DIGEST = "__sealkit_data_digest__"


def data_digest(data: Mapping[str, Any] | None) -> str:
    """A digest of a Secret's `data`, so caches need not hold (base64) secret values."""
    import hashlib

    h = hashlib.sha256()
    for k in sorted(data or {}):
        h.update(k.encode() + b"\0" + str((data or {})[k]).encode() + b"\0")
    return h.hexdigest()


def slim_secret(secret: dict[str, Any]) -> dict[str, Any]:
    """The cached form of a Secret: no managedFields, `data` replaced by its digest."""
    (secret.get("metadata") or {}).pop("managedFields", None)
    secret[DATA_DIGEST] = data_digest(secret.pop("data", None))
    secret.pop("stringData", None)
    from controller.informer import compact

    slim: dict[str, Any] = compact(secret)
    return slim


SPEC_DIGEST = "__sealkit_spec_digest__"


def spec_digest(spec: Any) -> str:
    import hashlib

    raw = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def is_settled(sealed: Mapping[str, Any]) -> bool:
    """Synced=True at the current generation: nothing to do until the spec changes."""
    status = sealed.get("status") or {}
    generation = (sealed.get("metadata") or {}).get("generation")
    if generation is None or status.get("observedGeneration") != generation:
        return False
    return any(
        c.get("type") == CONDITION and c.get("status") == "True"
        for c in status.get("conditions") or []
        if isinstance(c, Mapping)
    )


def slim_sealed(sealed: dict[str, Any]) -> dict[str, Any]:
    """Cache form of a *settled* SealedSecret: its ciphertexts replaced by a digest.

    Settled objects are most of a cluster and are rarely reconciled again (resync, leader
    change, Secret re-creation, new key), so the executor GETs the full object in those cases
    instead of every replica holding every ciphertext in memory.
    """
    if is_settled(sealed):
        sealed["spec"] = {SPEC_DIGEST: spec_digest(sealed.get("spec"))}
    return sealed


def is_slim_sealed(sealed: Mapping[str, Any] | None) -> bool:
    spec = (sealed or {}).get("spec")
    return isinstance(spec, Mapping) and SPEC_DIGEST in spec


def spec_key(sealed: Mapping[str, Any]) -> str:
    """What "spec changed" compares, for full and slim cache entries alike."""
    spec = sealed.get("spec")
    if isinstance(spec, Mapping) and SPEC_DIGEST in spec:
        return str(spec[SPEC_DIGEST])
    return spec_digest(spec)


def is_slim(secret: Mapping[str, Any] | None) -> bool:
    return secret is not None and DATA_DIGEST in secret


def _semantic(secret: Mapping[str, Any]) -> tuple[Any, ...]:
    meta = secret.get("metadata") or {}
    digest = secret.get(DATA_DIGEST) or data_digest(secret.get("data"))
    return (
        digest,
        secret.get("type") or "Opaque",
        bool(secret.get("immutable")),
        dict(meta.get("labels") or {}),
        dict(meta.get("annotations") or {}),
        _refs_key(meta.get("ownerReferences")),
        list(meta.get("finalizers") or []),
    )


def merge_into_existing(
    desired: Mapping[str, Any], existing: Mapping[str, Any], sealed: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The updated Secret body, or None when the existing one already matches.

    Raises `ReconcileError` (reason `unmanaged`) for a Secret that is not ours to touch.
    """
    emeta = existing.get("metadata") or {}
    annotations = emeta.get("annotations") or {}
    managed = _is_true(annotations, ANNOTATION_MANAGED)
    patch = _is_true(annotations, ANNOTATION_PATCH)
    if not is_controlled_by(existing, sealed) and not managed and not patch:
        name = (sealed.get("metadata") or {}).get("name") or ""
        raise ReconcileError(
            f'Resource "{name}" already exists and is not managed by SealedSecret',
            event_reason=REASON_UPDATE_FAILED,
            metric_reason="unmanaged",
            retry=False,
        )
    if patch and is_slim(existing):
        raise NeedFullSecret()  # merging needs the existing values: the executor GETs them
    dmeta = desired.get("metadata") or {}
    updated = copy.deepcopy(dict(existing))
    updated.pop(DATA_DIGEST, None)
    umeta = updated.setdefault("metadata", {})
    if patch:
        updated["data"] = {**(existing.get("data") or {}), **(desired.get("data") or {})}
        umeta["annotations"] = {**annotations, **(dmeta.get("annotations") or {})}
        umeta["labels"] = {**(emeta.get("labels") or {}), **(dmeta.get("labels") or {})}
        if managed:
            umeta["ownerReferences"] = copy.deepcopy(dmeta.get("ownerReferences") or [])
    else:
        updated["data"] = dict(desired.get("data") or {})
        new_annotations = dict(dmeta.get("annotations") or {})
        if managed and not dmeta.get("ownerReferences"):
            # Upstream drops `managed` on takeover (the ownerRef takes over its role). Without
            # an ownerRef (skip-set-owner-references) that would lock the Secret out of later
            # updates, so only then is the opt-in kept (docs/compatibility.md).
            new_annotations.setdefault(ANNOTATION_MANAGED, "true")
        umeta["annotations"] = new_annotations
        umeta["labels"] = dict(dmeta.get("labels") or {})
        umeta["ownerReferences"] = copy.deepcopy(dmeta.get("ownerReferences") or [])
        if "finalizers" in dmeta:
            umeta["finalizers"] = list(dmeta["finalizers"])
    updated["type"] = desired.get("type") or "Opaque"
    if "immutable" in desired:
        updated["immutable"] = desired["immutable"]
    for k in ("labels", "annotations", "ownerReferences"):
        if not umeta.get(k):
            umeta.pop(k, None)
    if _semantic(updated) == _semantic(existing):
        return None
    umeta.pop("managedFields", None)
    return updated


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_patch(
    sealed: Mapping[str, Any], *, synced: bool, message: str, reason: str, now: str | None = None
) -> dict[str, Any] | None:
    """The `/status` JSON merge patch (full `conditions` + `observedGeneration`), or None."""
    status = sealed.get("status") or {}
    generation = (sealed.get("metadata") or {}).get("generation")
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, Mapping)]
    current = next((c for c in conditions if c.get("type") == CONDITION), None)
    want = "True" if synced else "False"
    if (
        current is not None
        and current.get("status") == want
        and (current.get("message") or "") == message
        and current.get("reason") == reason
        and status.get("observedGeneration") == generation
    ):
        return None
    now = now or _now()
    transition = now
    if current is not None and current.get("status") == want and current.get("lastTransitionTime"):
        transition = current["lastTransitionTime"]
    condition = {
        "type": CONDITION,
        "status": want,
        "message": message,
        "reason": reason,
        "lastUpdateTime": now,
        "lastTransitionTime": transition,
    }
    others = [dict(c) for c in conditions if c.get("type") != CONDITION]
    body: dict[str, Any] = {"conditions": [condition, *others]}
    if generation is not None:
        body["observedGeneration"] = generation
    return {"status": body}


def plan_reconcile(
    sealed: Mapping[str, Any],
    existing: Mapping[str, Any] | None,
    keys: Sequence[KeyEntry],
    *,
    hint: str | None = None,
    accept_v1_data: bool = True,
    update_status: bool = True,
    now: str | None = None,
) -> Plan:
    """Decide the Secret write, the status patch and the events for one SealedSecret."""
    try:
        unsealed = desired_secret(sealed, keys, hint=hint, accept_v1_data=accept_v1_data)
        if existing is None:
            action: Literal["create", "update", "none"] = "create"
            body: dict[str, Any] | None = unsealed.secret
        else:
            body = merge_into_existing(unsealed.secret, existing, sealed)
            action = "none" if body is None else "update"
    except ReconcileError as exc:
        return failure_plan(sealed, exc, update_status=update_status, now=now)
    events = [Event("Normal", REASON_UNSEALED, SUCCESS_MESSAGE)] if action != "none" else []
    patch = (
        status_patch(sealed, synced=True, message="", reason=REASON_UNSEALED, now=now)
        if update_status
        else None
    )
    return Plan(action, body, patch, events, synced=True, opened_by=unsealed.fingerprint)


def failure_plan(
    sealed: Mapping[str, Any],
    exc: ReconcileError,
    *,
    update_status: bool = True,
    now: str | None = None,
) -> Plan:
    """The plan for a failed reconcile: no write, a Warning event, `Synced=False`."""
    # As upstream: the condition carries the bare error, the event prefixes unseal failures.
    message = exc.message
    event_message = message
    if exc.event_reason == REASON_UNSEAL_FAILED:
        event_message = f"Failed to unseal: {message}"
    patch = (
        status_patch(sealed, synced=False, message=message, reason=exc.event_reason, now=now)
        if update_status
        else None
    )
    return Plan(
        "none",
        None,
        patch,
        [Event("Warning", exc.event_reason, event_message)],
        synced=False,
        error_reason=exc.metric_reason,
        retry=exc.retry,
        message=message,
    )
