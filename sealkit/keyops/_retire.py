"""Safe retirement of a sealing key: pure decisions for `keys retire` / `keys restore`.

Retiring relabels the key Secret ``sealedsecrets.bitnami.com/sealed-secrets-key: retired``
(upstream and sealkit load only ``active``), so the controller unloads it live; the Secret is
never deleted, and `keys restore` relabels it ``active`` again. Refused while:

- the key is the newest one, i.e. the key ``/v1/cert.pem`` serves (retire it by making a new
  key first);
- the controller says SealedSecrets still open with it: ``sealkit_key_sealedsecrets
  {fingerprint=...}`` from the **leading** replica (only the leader reconciles, so a follower's
  counts are meaningless; `leader_election_master_status` tells them apart);
- a given tree holds SealedSecrets that the key opens (checked with the cluster's own key
  Secrets, in memory; nothing is written).

Only a key labelled ``retired`` is restored: a key labelled e.g. ``compromised`` by an operator
stays out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sealkit._exceptions import InputError

__all__ = [
    "RETIRED",
    "RETIRED_AT",
    "fingerprint_of_secret",
    "key_usage_from_metrics",
    "relabel",
    "select_key",
]

KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"
RETIRED = "retired"
RETIRED_AT = "sealkit.dev/retired-at"
_USAGE = re.compile(
    r'^sealkit_key_sealedsecrets\{fingerprint="([^"]+)"\}\s+([0-9.eE+-]+)$', re.MULTILINE
)
_LEADER = re.compile(r"^leader_election_master_status\{[^}]*\}\s+([0-9.]+)$", re.MULTILINE)


def fingerprint_of_secret(secret: Mapping[str, Any]) -> str | None:
    """Fingerprint of a key Secret's `tls.crt` (None when it is not a usable key Secret)."""
    from sealkit.certs import load_public_key
    from sealkit.crypto import b64decode
    from sealkit.keys import fingerprint

    data = secret.get("data") or {}
    try:
        return fingerprint(
            load_public_key(
                b64decode(str(data.get("tls.crt") or "")), now=datetime(1970, 1, 2, tzinfo=UTC)
            )
        )
    except Exception:  # noqa: BLE001 - any unusable Secret is simply not a match
        return None


def _not_before(secret: Mapping[str, Any]) -> datetime:
    from cryptography import x509

    from sealkit.crypto import b64decode

    pem = b64decode(str((secret.get("data") or {}).get("tls.crt") or ""))
    return x509.load_pem_x509_certificate(pem).not_valid_before_utc


def select_key(
    secrets: Sequence[Mapping[str, Any]], fingerprint: str, *, label: str
) -> Mapping[str, Any]:
    """The one key Secret with `fingerprint` whose key label is `label`; one-line errors."""
    matches = [s for s in secrets if fingerprint_of_secret(s) == fingerprint]
    if not matches:
        raise InputError(f"no key Secret with fingerprint {fingerprint}")
    with_label = [
        s
        for s in matches
        if ((s.get("metadata") or {}).get("labels") or {}).get(KEY_LABEL) == label
    ]
    if not with_label:
        names = ", ".join(str((s.get("metadata") or {}).get("name")) for s in matches)
        raise InputError(f"key {fingerprint} ({names}) is not labelled {label}")
    return with_label[0]


def newest_active(secrets: Sequence[Mapping[str, Any]]) -> str | None:
    """Fingerprint of the newest active key, in the controller's default order (KeyRing):
    certificate NotBefore, then the Secret's creationTimestamp, then its name. NotBefore has
    second granularity, so two keys made within one second tie on it; without the same
    tie-breakers this and the controller could disagree on which key /v1/cert.pem serves."""
    active = [
        s
        for s in secrets
        if ((s.get("metadata") or {}).get("labels") or {}).get(KEY_LABEL) == "active"
        and fingerprint_of_secret(s)
    ]
    if not active:
        return None
    return fingerprint_of_secret(max(active, key=_controller_order))


def _controller_order(secret: Mapping[str, Any]) -> tuple[datetime, str, str]:
    meta = secret.get("metadata") or {}
    # RFC 3339 UTC timestamps ("...Z") sort as text; a missing one sorts first, as the
    # controller's epoch default does.
    return (
        _not_before(secret),
        str(meta.get("creationTimestamp") or ""),
        str(meta.get("name") or ""),
    )


def key_usage_from_metrics(text: str, fingerprint: str) -> int:
    """SealedSecrets the leader says `fingerprint` opens (0 when the key is not loaded).

    Raises `InputError` when the metrics come from a replica that does not lead.
    """
    leader = _LEADER.findall(text)
    if leader and float(leader[0]) != 1:
        raise InputError("the controller replica that answered is not the leader")
    counts = {fp: int(float(v)) for fp, v in _USAGE.findall(text)}
    return counts.get(fingerprint, 0)


def relabel(
    secret: Mapping[str, Any], label: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """A copy of `secret` with its key label set to `label` (retired-at kept in step)."""
    import copy

    out = copy.deepcopy(dict(secret))
    meta = out.setdefault("metadata", {})
    meta.setdefault("labels", {})[KEY_LABEL] = label
    annotations = meta.setdefault("annotations", {}) or {}
    if label == RETIRED:
        annotations[RETIRED_AT] = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        annotations.pop(RETIRED_AT, None)
    meta["annotations"] = annotations
    if not annotations:
        del meta["annotations"]
    return out
