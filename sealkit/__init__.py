"""sealkit: Kubernetes GitOps secrets, byte-compatible with Bitnami Sealed Secrets.

The public surface is re-exported here. Everything except the exception tree is imported
lazily on first attribute access, because the ``sealkit`` CLI's cold start is benchmarked
against the Go kubeseal binary. Example::

    import sealkit
    public_key = sealkit.load_public_key(open("cert.pem", "rb").read())
    sealed = sealkit.seal_secret(secret_dict, public_key)
"""

from __future__ import annotations

import importlib

from sealkit._exceptions import (
    CertError,
    ClusterError,
    InputError,
    SealkitError,
    UnsealError,
    UsageError,
)
from sealkit._record import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from sealkit.certs import load_certificate, load_public_key
    from sealkit.crypto import b64decode, b64encode, seal, unseal, unseal_with_index
    from sealkit.keys import (
        fingerprint,
        generate_key_and_cert,
        key_secret_manifest,
        load_private_keys,
    )
    from sealkit.model import seal_secret, seal_value, unseal_sealed_secret
    from sealkit.scopes import Scope, label_for, scope_of

__version__ = "0.1.0"

__all__ = [
    "CertError",
    "ClusterError",
    "InputError",
    "Scope",
    "SealkitError",
    "UnsealError",
    "UsageError",
    "__version__",
    "b64decode",
    "b64encode",
    "fingerprint",
    "generate_key_and_cert",
    "key_secret_manifest",
    "label_for",
    "load_certificate",
    "load_private_keys",
    "load_public_key",
    "scope_of",
    "seal",
    "seal_secret",
    "seal_value",
    "unseal",
    "unseal_sealed_secret",
    "unseal_with_index",
]

_LAZY = {
    "Scope": "sealkit.scopes",
    "label_for": "sealkit.scopes",
    "scope_of": "sealkit.scopes",
    "b64decode": "sealkit.crypto",
    "b64encode": "sealkit.crypto",
    "seal": "sealkit.crypto",
    "unseal": "sealkit.crypto",
    "unseal_with_index": "sealkit.crypto",
    "load_certificate": "sealkit.certs",
    "load_public_key": "sealkit.certs",
    "fingerprint": "sealkit.keys",
    "generate_key_and_cert": "sealkit.keys",
    "key_secret_manifest": "sealkit.keys",
    "load_private_keys": "sealkit.keys",
    "seal_secret": "sealkit.model",
    "seal_value": "sealkit.model",
    "unseal_sealed_secret": "sealkit.model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sealkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
