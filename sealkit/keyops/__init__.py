"""Key lifecycle operations on GitOps trees: which key opens what, bulk re-encryption.

Pure cores (no click, no Kubernetes client): the CLI in `sealkit.cli._keys` and
`sealkit.cli._reencrypt` feeds them files and gateways. Nothing here returns or logs a
decrypted value; reports carry fingerprints, names and data-key names only.
"""

from __future__ import annotations

from sealkit.keyops._find import SealedRef, find_sealed
from sealkit.keyops._report import (
    Keyset,
    KeyUse,
    load_keyset,
    opened_by,
    report_offline,
    report_online,
    summarise,
)
from sealkit.keyops._throttle import retry_throttled

__all__ = [
    "KeyUse",
    "Keyset",
    "SealedRef",
    "find_sealed",
    "load_keyset",
    "opened_by",
    "report_offline",
    "report_online",
    "retry_throttled",
    "summarise",
]
