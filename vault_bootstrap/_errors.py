"""Errors raised by `vault_bootstrap`, all under `BootstrapError` (a `sealkit.SealkitError`).

Every message is one line and never contains a secret value: messages that quote a Vault
response pass through `redact()` first, because Vault echoes request fragments back::

    SealkitError (sealkit)               exit 1
    └── BootstrapError                   (not hvac's `VaultError`, which the gateway maps)
        ├── ConfigError                  bad config file: `<field.path>: <reason>`
        ├── ResolveError                 a secret/text reference cannot be resolved
        ├── NotReadyError                Vault did not become ready before the deadline
        ├── InitError                    init/unseal refused or failed
        ├── LoginError                   no usable credentials, or login refused
        ├── PlanError                    observed state cannot be reconciled (e.g. type clash)
        ├── ApplyError                   a write failed
        └── VerifyError                  the post-apply smoke test failed
"""

from __future__ import annotations

from sealkit import SealkitError

from ._redact import redact

__all__ = [
    "ApplyError",
    "BootstrapError",
    "ConfigError",
    "InitError",
    "LoginError",
    "NotReadyError",
    "PlanError",
    "ResolveError",
    "VerifyError",
]


class BootstrapError(SealkitError):
    """Base of vault-bootstrap failures; the message is scrubbed of known secrets."""

    default_message = "vault-bootstrap failed"

    def __init__(self, message: str = "") -> None:
        super().__init__(redact(str(message)))


class ConfigError(BootstrapError):
    default_message = "invalid config"


class ResolveError(BootstrapError):
    default_message = "cannot resolve reference"


class NotReadyError(BootstrapError):
    default_message = "vault is not ready"


class InitError(BootstrapError):
    default_message = "init/unseal failed"


class LoginError(BootstrapError):
    default_message = "login failed"


class PlanError(BootstrapError):
    default_message = "cannot plan"


class ApplyError(BootstrapError):
    default_message = "apply failed"


class VerifyError(BootstrapError):
    default_message = "verify failed"
