"""The one exception tree every sealkit part raises.

Every error carries a one-line, user-facing message that never contains a secret value, and
an ``exit_code`` that the CLIs' single top-level handler turns into the process status::

    SealkitError                 exit 1  (base; runtime failure)
    ├── InputError               exit 1  bad manifest, missing name/namespace, malformed YAML
    ├── CertError                exit 1  unreadable, non-RSA or expired certificate
    ├── UnsealError              exit 1  the ONE opaque "cannot decrypt" error
    ├── ClusterError             exit 1  apiserver / controller unreachable or refusing
    └── UsageError               exit 2  bad flag combination (same meaning as click's)

`UnsealError` never says *why* a blob did not open (OAEP padding vs GCM tag vs which key), so
callers get no decryption oracle, in the spirit of Fernet's ``InvalidToken``. The edges
(`controller`, `vault_bootstrap`) import these names from `sealkit`, never from this module;
vault_bootstrap's own tree starts at its `BootstrapError`.
"""

from __future__ import annotations

__all__ = [
    "CertError",
    "ClusterError",
    "InputError",
    "SealkitError",
    "UnsealError",
    "UsageError",
]


class SealkitError(Exception):
    """Base of every sealkit error: a one-line message plus a process exit code."""

    exit_code: int = 1

    def __init__(self, message: str = "") -> None:
        # Keep messages to one line: the CLI prints exactly `error: <message>`.
        message = " ".join(str(message).split("\n")).strip() or self.default_message
        super().__init__(message)
        self.message = message

    default_message = "sealkit error"

    def __str__(self) -> str:
        return self.message


class InputError(SealkitError):
    """The input manifest or file is not what the command needs."""

    default_message = "invalid input"


class CertError(SealkitError):
    """The sealing certificate cannot be used (unreadable, not RSA, expired)."""

    default_message = "invalid certificate"


class UnsealError(SealkitError):
    """A sealed value could not be decrypted. Deliberately says nothing about why."""

    default_message = "no key could decrypt secret"


class ClusterError(SealkitError):
    """The apiserver or the sealed-secrets controller could not be reached or refused."""

    default_message = "cluster request failed"


class UsageError(SealkitError):
    """A bad flag or flag combination; exit code 2 like click's usage errors."""

    exit_code = 2
    default_message = "invalid usage"
