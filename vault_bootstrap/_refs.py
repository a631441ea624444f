"""References: how the config names values without containing them.

Two forms, both resolved when `plan`/`apply` runs, never when the file is loaded:

* **Secret references** (whole value): ``env:NAME``, ``file:PATH``, ``k8s:NAMESPACE/SECRET#KEY``
  or the mapping forms ``{env: NAME}``, ``{file: PATH}``,
  ``{k8sSecret: {namespace: NS, name: SECRET, key: KEY}}``. Anything else in a secret field is a
  literal and is refused: a value in the file ends up in Git.
* **Text interpolation** for non-secret strings: ``${env:NAME}``, ``${env:NAME:-default}`` and
  ``${file:PATH}`` inside any string, e.g. a connection URL built from ``PGHOST``/``PGPORT``.
  Vault's own ``{{username}}``/``{{password}}`` templates are passed through untouched; no other
  template engine ever runs over the config.

Files are read as UTF-8 with one trailing newline removed (``echo x > f`` habits).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import ResolveError
from ._redact import Sensitive

__all__ = ["Resolver", "SecretRef", "parse_secret_ref", "text_references"]

SCHEMES = ("env", "file", "k8s")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_K8S = re.compile(
    r"^(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)/(?P<name>[a-z0-9]([-.a-z0-9]*[a-z0-9])?)"
    r"#(?P<key>[-._a-zA-Z0-9]+)$"
)
_INTERP = re.compile(r"\$\{(?P<scheme>env|file):(?P<body>[^}]*)\}")

LITERAL_REFUSED = (
    "literal secret values are not allowed here (the file would put the secret in Git); "
    "use env:NAME, file:PATH or k8s:NAMESPACE/SECRET#KEY"
)


@dataclass(frozen=True)
class SecretRef:
    """Where a secret comes from. `str()` is the reference itself, never the value."""

    scheme: str  # env | file | k8s
    target: str  # NAME | PATH | NS/SECRET#KEY

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"


def parse_secret_ref(value: Any) -> SecretRef:
    """Parse a secret reference; raise `ValueError` (pydantic turns it into a field error)."""
    if isinstance(value, SecretRef):
        return value
    if isinstance(value, Mapping):
        if len(value) != 1:
            raise ValueError("a secret reference mapping has exactly one of env, file, k8sSecret")
        ((key, inner),) = value.items()
        if key == "env" and isinstance(inner, str):
            return parse_secret_ref(f"env:{inner}")
        if key == "file" and isinstance(inner, str):
            return parse_secret_ref(f"file:{inner}")
        if key == "k8sSecret" and isinstance(inner, Mapping):
            extra = set(inner) - {"namespace", "name", "key"}
            if extra or not all(
                isinstance(inner.get(k), str) for k in ("namespace", "name", "key")
            ):
                raise ValueError("k8sSecret needs exactly string namespace, name and key")
            return parse_secret_ref(f"k8s:{inner['namespace']}/{inner['name']}#{inner['key']}")
        raise ValueError("unknown secret reference; use env, file or k8sSecret")
    if not isinstance(value, str):
        raise ValueError(LITERAL_REFUSED)
    scheme, sep, target = value.partition(":")
    if not sep or scheme not in SCHEMES:
        raise ValueError(LITERAL_REFUSED)
    if scheme == "env" and not _ENV_NAME.match(target):
        raise ValueError(f"env reference needs a variable name, got {target!r}")
    if scheme == "file" and not target:
        raise ValueError("file reference needs a path")
    if scheme == "k8s" and not _K8S.match(target):
        raise ValueError("k8s reference must look like k8s:NAMESPACE/SECRET#KEY")
    return SecretRef(scheme, target)


def text_references(text: str) -> list[str]:
    """The `${...}` references inside a text value (for validation and docs)."""
    return [m.group(0) for m in _INTERP.finditer(text)]


def _check_interpolation(text: str) -> str:
    for m in _INTERP.finditer(text):
        body = m.group("body")
        if m.group("scheme") == "env":
            name = body.split(":-", 1)[0]
            if not _ENV_NAME.match(name):
                raise ValueError(f"bad variable name in {m.group(0)!r}")
        elif not body:
            raise ValueError("${file:} needs a path")
    return text


KubeSecretReader = Callable[[str, str], Mapping[str, str]]
"""(namespace, name) -> the Secret's base64 `data` map."""


class Resolver:
    """Resolves references against an environment, the filesystem and (lazily) Kubernetes."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        kube_secret_reader: KubeSecretReader | None = None,
    ) -> None:
        self._env = os.environ if env is None else env
        self._kube_secret_reader = kube_secret_reader
        self._cache: dict[SecretRef, Sensitive] = {}

    def secret(self, ref: SecretRef, field: str) -> Sensitive:
        """Resolve a secret reference for config field `field` (used in error messages)."""
        if ref not in self._cache:
            self._cache[ref] = Sensitive(self._lookup(ref, field))
        return self._cache[ref]

    def text(self, text: str, field: str) -> str:
        """Expand `${env:..}`/`${file:..}` in a non-secret string."""

        def sub(m: re.Match[str]) -> str:
            scheme, body = m.group("scheme"), m.group("body")
            if scheme == "env":
                name, has_default, default = body.partition(":-")
                value = self._env.get(name)
                if value is None or (has_default and value == ""):
                    if has_default:
                        return default
                    raise ResolveError(f"{field}: environment variable {name} is not set")
                return value
            return self._read_file(body, field)

        return _INTERP.sub(sub, text)

    def _lookup(self, ref: SecretRef, field: str) -> str:
        if ref.scheme == "env":
            value = self._env.get(ref.target)
            if value is None:
                raise ResolveError(f"{field}: environment variable {ref.target} is not set")
            if value == "":
                raise ResolveError(f"{field}: environment variable {ref.target} is empty")
            return value
        if ref.scheme == "file":
            value = self._read_file(ref.target, field)
            if value == "":
                raise ResolveError(f"{field}: file {ref.target} is empty")
            return value
        m = _K8S.match(ref.target)
        assert m is not None  # validated at parse time
        if self._kube_secret_reader is None:
            raise ResolveError(f"{field}: {ref} needs Kubernetes access (no kubeconfig found)")
        try:
            data = self._kube_secret_reader(m.group("ns"), m.group("name"))
        except ResolveError:
            raise
        except Exception as exc:  # noqa: BLE001 - any client failure becomes one line
            raise ResolveError(
                f"{field}: cannot read Secret {m.group('ns')}/{m.group('name')}: "
                f"{type(exc).__name__}: {_short(exc)}"
            ) from None
        encoded = (data or {}).get(m.group("key"))
        if encoded is None:
            raise ResolveError(
                f"{field}: Secret {m.group('ns')}/{m.group('name')} has no key {m.group('key')}"
            )
        return base64.b64decode(encoded).decode("utf-8")

    @staticmethod
    def _read_file(path: str, field: str) -> str:
        try:
            with open(path, encoding="utf-8") as fh:
                value = fh.read()
        except OSError as exc:
            raise ResolveError(f"{field}: cannot read file {path}: {exc.strerror}") from None
        if value.endswith("\n"):
            value = value[:-1]
            if value.endswith("\r"):
                value = value[:-1]
        return value


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200]


check_interpolation = _check_interpolation
