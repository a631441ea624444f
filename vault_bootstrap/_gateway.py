"""`VaultGateway`: the only module that talks HTTP to Vault/OpenBao.

Everything above it (planner, executor, phases) sees plain dicts and a handful of methods with
exact request bodies (hvac's typed helpers add fields we do not want, see the API facts).
Idempotent calls are retried with tenacity on connection errors, 5xx, 429 and KV v2's
"upgrading" 400; `init` and `rotate-root` are sent once and never retried blindly. Every
successful write or delete increments `writes`, which is how tests prove a second apply is a
no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import hvac
import hvac.exceptions as hx
import requests

from ._errors import BootstrapError
from ._redact import redact

__all__ = ["Health", "HvacGateway", "VaultCallError", "VaultGateway", "is_retryable"]

log = logging.getLogger("vault_bootstrap.gateway")

_UPGRADING = "Upgrading from non-versioned to versioned data"


class VaultCallError(BootstrapError):
    """A Vault call failed; carries the HTTP status (0 = no response) and Vault's errors."""

    def __init__(self, message: str, *, status: int = 0, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = [redact(e) for e in (errors or [])]


@dataclass(frozen=True)
class Health:
    """`sys/health` as seen by a waiting client; `status` 0 means no HTTP response."""

    status: int
    initialized: bool = False
    sealed: bool = True
    version: str = ""
    detail: str = ""

    @property
    def ready(self) -> bool:
        return self.status == 200


def is_retryable(exc: BaseException) -> bool:
    """Connection problems, 5xx, 429 and the KV v2 upgrade window are worth another try."""
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return True
    if isinstance(exc, (hx.InternalServerError, hx.BadGateway, hx.VaultDown, hx.RateLimitExceeded)):
        return True
    if isinstance(exc, hx.InvalidRequest) and _UPGRADING in str(exc):
        return True
    return False


class VaultGateway(Protocol):
    writes: int

    def health(self) -> Health: ...
    def set_token(self, token: str) -> None: ...
    def lookup_self(self) -> dict[str, Any]: ...
    def login_kubernetes(self, mount: str, role: str, jwt: str) -> str: ...
    def initialize(self, shares: int, threshold: int) -> dict[str, Any]: ...
    def seal_status(self) -> dict[str, Any]: ...
    def submit_unseal_key(self, key: str) -> dict[str, Any]: ...
    def read(self, path: str) -> dict[str, Any] | None: ...
    def list(self, path: str) -> list[str]: ...
    def write(self, path: str, body: Mapping[str, Any], *, retry: bool = True) -> Any: ...
    def delete(self, path: str) -> None: ...


class HvacGateway:
    """The real gateway on hvac. `retry_timeout` bounds the retries of one call."""

    def __init__(
        self,
        address: str,
        *,
        verify: bool | str = True,
        request_timeout: float = 30,
        retry_timeout: float = 60,
        client: hvac.Client | None = None,
    ) -> None:
        self.address = address.rstrip("/")
        self.verify = verify
        self._timeout = request_timeout
        self._retry_timeout = retry_timeout
        # token="" stops hvac from reading VAULT_TOKEN/~/.vault-token behind our back.
        self.client = client or hvac.Client(
            url=self.address, token="", verify=verify, timeout=request_timeout
        )
        self.writes = 0

    # --- plumbing -------------------------------------------------------------------------

    def _call(self, what: str, fn: Any, *, retry: bool = True) -> Any:
        try:
            if not retry:
                return fn()
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - classified right below
                if not is_retryable(exc):
                    raise
                log.debug(
                    "%s: %s; retrying for up to %gs", what, _describe_exc(exc), self._retry_timeout
                )
            return self._retrying()(fn)
        except hx.VaultError as exc:
            status = _status_of(exc)
            errors = [str(e) for e in (exc.errors or [])] if isinstance(exc.errors, list) else []
            detail = "; ".join(errors) or type(exc).__name__
            code = f"HTTP {status}" if status else "Vault error"
            raise VaultCallError(
                f"{what}: {code}: {_one_line(detail)}", status=status, errors=errors
            ) from None
        except requests.exceptions.RequestException as exc:
            tried = f" (retried for {self._retry_timeout:g}s)" if retry else ""
            raise VaultCallError(
                f"{what}: cannot reach {self.address}: {type(exc).__name__}{tried}", status=0
            ) from None

    def _retrying(self) -> Any:
        # tenacity is imported only when a call actually failed: it is start-up time
        # every healthy run would otherwise pay.
        from tenacity import (
            Retrying,
            before_sleep_log,
            retry_if_exception,
            stop_after_delay,
            wait_random_exponential,
        )

        return Retrying(
            stop=stop_after_delay(self._retry_timeout),
            wait=wait_random_exponential(multiplier=0.2, max=5),
            retry=retry_if_exception(is_retryable),
            before_sleep=before_sleep_log(log, logging.DEBUG),
            reraise=True,
        )

    # --- unauthenticated ------------------------------------------------------------------

    def health(self) -> Health:
        try:
            resp = requests.get(
                f"{self.address}/v1/sys/health", verify=self.verify, timeout=min(self._timeout, 5)
            )
        except requests.exceptions.RequestException as exc:
            return Health(status=0, detail=type(exc).__name__)
        try:
            body = resp.json()
        except ValueError:
            body = {}
        return Health(
            status=resp.status_code,
            initialized=bool(body.get("initialized", False)),
            sealed=bool(body.get("sealed", True)),
            version=str(body.get("version", "")),
        )

    def initialize(self, shares: int, threshold: int) -> dict[str, Any]:
        # Never retried: a lost response after a successful init cannot be recovered by retrying.
        return dict(
            self._call(
                "sys/init",
                lambda: self.client.sys.initialize(
                    secret_shares=shares, secret_threshold=threshold
                ),
                retry=False,
            )
        )

    def seal_status(self) -> dict[str, Any]:
        return dict(self._call("sys/seal-status", self.client.sys.read_seal_status))

    def submit_unseal_key(self, key: str) -> dict[str, Any]:
        return dict(self._call("sys/unseal", lambda: self.client.sys.submit_unseal_key(key=key)))

    # --- auth -----------------------------------------------------------------------------

    def set_token(self, token: str) -> None:
        self.client.token = token

    def lookup_self(self) -> dict[str, Any]:
        resp = self._call("auth/token/lookup-self", self.client.auth.token.lookup_self)
        return dict(resp.get("data") or {})

    def login_kubernetes(self, mount: str, role: str, jwt: str) -> str:
        path = f"auth/{mount}/login"
        resp = self._call(
            path,
            lambda: self.client.adapter.post(f"/v1/{path}", json={"role": role, "jwt": jwt}),
        )
        return str(resp["auth"]["client_token"])

    # --- generic --------------------------------------------------------------------------

    def read(self, path: str) -> dict[str, Any] | None:
        """GET /v1/<path> -> the response's `data`, or None on 404."""
        resp = self._call(path, lambda: self.client.read(path))
        if resp is None or not isinstance(resp, dict):
            return None
        data = resp.get("data")
        return dict(data) if isinstance(data, dict) else {}

    def list(self, path: str) -> list[str]:
        """LIST /v1/<path> -> keys ([] on 404)."""
        resp = self._call(path, lambda: self.client.list(path))
        if not isinstance(resp, dict):
            return []
        return [str(k) for k in (resp.get("data") or {}).get("keys") or []]

    def write(self, path: str, body: Mapping[str, Any], *, retry: bool = True) -> Any:
        """POST /v1/<path> with exactly `body`."""
        resp = self._call(path, lambda: self.client.write_data(path, data=dict(body)), retry=retry)
        self.writes += 1
        warnings = resp.get("warnings") if isinstance(resp, dict) else None
        for warning in warnings or []:
            log.warning("%s: vault warning: %s", path, _one_line(str(warning)))
        return resp

    def delete(self, path: str) -> None:
        self._call(path, lambda: self.client.delete(path))
        self.writes += 1


def _describe_exc(exc: BaseException) -> str:
    if isinstance(exc, hx.VaultError):
        return f"HTTP {_status_of(exc) or '?'}"
    return type(exc).__name__


def _status_of(exc: hx.VaultError) -> int:
    for cls, code in (
        (hx.InvalidRequest, 400),
        (hx.Unauthorized, 401),
        (hx.Forbidden, 403),
        (hx.InvalidPath, 404),
        (hx.RateLimitExceeded, 429),
        (hx.InternalServerError, 500),
        (hx.VaultNotInitialized, 501),
        (hx.BadGateway, 502),
        (hx.VaultDown, 503),
    ):
        if isinstance(exc, cls):
            return code
    return 0


def _one_line(text: str) -> str:
    return redact(" ".join(text.split()))[:500]
