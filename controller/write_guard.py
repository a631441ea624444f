"""Refusals decided before a Secret is written (pure; no I/O).

Why, each from issue 12:

- **Size.** A SealedSecret whose template repeats a large value rendered a Secret the
  apiserver cut off mid-write; the controller took that for an outage and retried forever. The
  apiserver refuses Secret data over 1 MiB (``MaxSecretSize``) and etcd a request over 1.5 MiB,
  so both are checked here first: over either, the SealedSecret fails for good with a status
  that says so, and nothing is sent.
- **Key Secrets come only from the key manager.** A template carrying the key label (or named
  like a key Secret in the controller's namespace) made the controller write a "sealing key"
  it then loaded and served: key injection. Such a write is refused.

Both raise `ReconcileError` with ``retry=False``: waiting cannot fix either.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.reconcile import REASON_UPDATE_FAILED, ReconcileError

__all__ = [
    "KEY_LABEL",
    "MAX_OBJECT_BYTES",
    "MAX_SECRET_DATA_BYTES",
    "WritePolicy",
    "check_secret_write",
]

KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"
MAX_SECRET_DATA_BYTES = 1 << 20  # k8s.io/kubernetes/pkg/apis/core.MaxSecretSize
MAX_OBJECT_BYTES = (3 << 19) - (32 << 10)  # etcd's 1.5 MiB request limit, less headroom


@dataclass(frozen=True)
class WritePolicy:
    """Where key Secrets live: the controller's namespace and the key name prefix."""

    controller_namespace: str = ""
    key_prefix: str = "sealed-secrets-key"


def _refuse(message: str, metric_reason: str) -> ReconcileError:
    return ReconcileError(
        message, event_reason=REASON_UPDATE_FAILED, metric_reason=metric_reason, retry=False
    )


def _data_bytes(data: Mapping[str, Any]) -> int:
    """Decoded size, as the apiserver counts it (undecodable values: their length)."""
    total = 0
    for value in data.values():
        text = str(value or "")
        try:
            total += len(base64.b64decode(text, validate=True))
        except ValueError:
            total += len(text)
    return total


def key_secret_reason(secret: Mapping[str, Any], policy: WritePolicy) -> str | None:
    """Why ``secret`` would be a sealing-key Secret, or None."""
    meta = secret.get("metadata") or {}
    labels = meta.get("labels") or {}
    if KEY_LABEL in labels:
        return f"it carries the label {KEY_LABEL}"
    name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "")
    if (
        policy.controller_namespace
        and namespace == policy.controller_namespace
        and policy.key_prefix
        and name.startswith(policy.key_prefix)
    ):
        return (
            f"its name starts with the key prefix {policy.key_prefix!r} in the controller's "
            "namespace"
        )
    return None


def check_secret_write(secret: Mapping[str, Any], policy: WritePolicy) -> None:
    """Raise `ReconcileError` (permanent) if ``secret`` must not be written."""
    why = key_secret_reason(secret, policy)
    if why is not None:
        raise _refuse(
            f"refusing to write a sealing-key Secret ({why}): key Secrets come only "
            "from the key manager",
            "update",
        )
    data = secret.get("data") or {}
    size = _data_bytes(data) if isinstance(data, Mapping) else 0
    if size > MAX_SECRET_DATA_BYTES:
        raise _refuse(
            f"rendered Secret data is {size} bytes, over the apiserver's limit of "
            f"{MAX_SECRET_DATA_BYTES} bytes",
            "update",
        )
    encoded = len(json.dumps(secret, separators=(",", ":")))
    if encoded > MAX_OBJECT_BYTES:
        raise _refuse(
            f"rendered Secret is {encoded} bytes encoded, over the limit of "
            f"{MAX_OBJECT_BYTES} bytes",
            "update",
        )
