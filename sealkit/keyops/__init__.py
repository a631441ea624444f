"""Key lifecycle operations on GitOps trees: which key opens what, bulk re-encryption.

Pure cores (no click, no Kubernetes client): the CLI in `sealkit.cli._keys` and
`sealkit.cli._reencrypt` feeds them files and gateways. Nothing here returns or logs a
decrypted value; reports carry fingerprints, names and data-key names only.
"""

from __future__ import annotations

from sealkit.keyops._export import export_fingerprint, export_keys, is_key_export, is_old_export
from sealkit.keyops._find import SealedRef, find_sealed
from sealkit.keyops._import import PENDING, PENDING_LABEL, activated, check_pending
from sealkit.keyops._kube import KeySecretsGateway
from sealkit.keyops._reencrypt import plan_offline, plan_online
from sealkit.keyops._report import (
    Keyset,
    KeyUse,
    load_keyset,
    opened_by,
    report_offline,
    report_online,
    summarise,
)
from sealkit.keyops._retire import (
    KEY_LABEL,
    RETIRED,
    fingerprint_of_secret,
    key_usage_from_metrics,
    newest_active,
    relabel,
    select_key,
)
from sealkit.keyops._throttle import retry_throttled

__all__ = [
    "KEY_LABEL",
    "PENDING",
    "PENDING_LABEL",
    "RETIRED",
    "KeySecretsGateway",
    "KeyUse",
    "Keyset",
    "activated",
    "check_pending",
    "SealedRef",
    "export_fingerprint",
    "export_keys",
    "find_sealed",
    "fingerprint_of_secret",
    "is_key_export",
    "is_old_export",
    "key_usage_from_metrics",
    "load_keyset",
    "newest_active",
    "opened_by",
    "plan_offline",
    "plan_online",
    "relabel",
    "report_offline",
    "report_online",
    "retry_throttled",
    "select_key",
    "summarise",
]
