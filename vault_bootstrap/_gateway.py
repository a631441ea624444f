"""`VaultGateway`: the only module that talks HTTP to Vault/OpenBao.

Everything above it (planner, executor, phases) sees plain dicts and a handful of methods with
exact request bodies (hvac's typed helpers add fields we do not want, see the API facts).
Idempotent calls are retried with tenacity on connection errors, 5xx, 429 and KV v2's
"upgrading" 400; `init` and `rotate-root` are sent once and never retried blindly. Every
call is counted by operation in `stats` (`CallStats`): successful writes and deletes make
`writes`, which is how tests prove a second apply is a no-op, and the in-flight high-water mark
proves the executor's concurrency bound.

Thread safety: the executor and the observer call the gateway from a bounded thread pool.
hvac's `Client` wraps one `requests.Session`, which is not documented as thread-safe (its
adapter state, cookie jar and connection-pool bookkeeping are shared), so every thread gets its
OWN hvac client and session (`threading.local`), created on first use with the current token.
That also gives each worker one keep-alive connection. The only shared state is `CallStats` and
the rate-limit pause, both behind one lock.

Rate limits: a 429 sets a gateway-wide pause until `Retry-After` (read from the response by a
`requests` hook, capped at 30 s; jittered exponential backoff when absent) so all workers back
off together, then the call is retried like any idempotent call. Non-idempotent calls
(`sys/init`, `rotate-root`) are never retried, 429 or not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import hvac
import hvac.exceptions as hx
import requests

from ._errors import BootstrapError
from ._redact import redact

__all__ = [
    "CallStats",
    "Health",
    "HvacGateway",
    "VaultCallError",
    "VaultGateway",
    "is_retryable",
]

log = logging.getLogger("vault_bootstrap.gateway")

_UPGRADING = "Upgrading from non-versioned to versioned data"
_MAX_RETRY_AFTER = 30.0


class CallStats:
    """Thread-safe counts of the Vault API calls one gateway made, by operation.

    `ops` counts attempts that got an answer or failed (`read`, `list`, `write`, `delete`,
    `login`, `lookup`, `init`, `unseal`, `seal-status`); `rate_limited` counts HTTP 429
    answers and `retries` the repeated attempts. `in_flight`/`max_in_flight` are the number of
    requests on the wire now and at most so far.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ops: dict[str, int] = {}
        self.writes = 0  # successful writes and deletes
        self.rate_limited = 0
        self.retries = 0
        self.in_flight = 0
        self.max_in_flight = 0

    def begin(self, op: str, *, retry: bool) -> None:
        with self._lock:
            self.ops[op] = self.ops.get(op, 0) + 1
            if retry:
                self.retries += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self, *, wrote: bool, limited: bool) -> None:
        with self._lock:
            self.in_flight -= 1
            self.writes += int(wrote)
            self.rate_limited += int(limited)

    def snapshot(self) -> dict[str, Any]:
        """Plain data for logs and `--json`: no paths, no values."""
        with self._lock:
            ops = dict(sorted(self.ops.items()))
            return {
                "total": sum(ops.values()),
                "reads": ops.get("read", 0) + ops.get("list", 0),
                "writes": ops.get("write", 0) + ops.get("delete", 0),
                "by_kind": ops,
                "rate_limited": self.rate_limited,
                "retries": self.retries,
                "max_in_flight": self.max_in_flight,
            }

    @staticmethod
    def describe(snap: dict[str, Any]) -> str:
        kinds = ", ".join(f"{k}={v}" for k, v in snap["by_kind"].items()) or "none"
        return (
            f"vault api calls: {snap['total']} ({kinds}); 429s={snap['rate_limited']}, "
            f"retries={snap['retries']}, max in flight={snap['max_in_flight']}"
        )


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
    @property
    def writes(self) -> int: ...

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
        self._token = ""
        self._local = threading.local()
        self._pause_lock = threading.Lock()
        self._not_before = 0.0  # monotonic time before which no request is sent (429)
        self.stats = CallStats()
        self._local.client = client or self._new_client()
        self._hook(self._local.client)

    @property
    def writes(self) -> int:
        return self.stats.writes

    @writes.setter
    def writes(self, value: int) -> None:
        # Lets a caller discount a write that is not configuration (verify's lease revoke).
        self.stats.writes = value

    @property
    def client(self) -> hvac.Client:
        """This thread's hvac client (one `requests.Session` per thread, see the docstring)."""
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = self._new_client()
            self._hook(c)
        if c.token != self._token:
            c.token = self._token
        return c

    def _new_client(self) -> hvac.Client:
        # token="" stops hvac from reading VAULT_TOKEN/~/.vault-token behind our back.
        return hvac.Client(
            url=self.address, token=self._token, verify=self.verify, timeout=self._timeout
        )

    def _hook(self, client: hvac.Client) -> None:
        session = getattr(client.adapter, "session", None)
        if session is not None:
            session.hooks.setdefault("response", []).append(self._on_response)

    def _on_response(self, resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Remember this thread's last Retry-After (hvac's exceptions drop the headers)."""
        if resp.status_code == 429:
            self._local.retry_after = _retry_after(resp.headers.get("Retry-After"))

    # --- plumbing -------------------------------------------------------------------------

    def _attempt(self, op: str, fn: Callable[[], Any], *, repeat: bool) -> Any:
        """One request: wait out a rate-limit pause, count it, note a 429 for everyone."""
        while True:
            with self._pause_lock:
                wait = self._not_before - time.monotonic()
            if wait <= 0:
                break
            time.sleep(wait)
        self._local.retry_after = None
        self.stats.begin(op, retry=repeat)
        wrote = limited = False
        try:
            result = fn()
            wrote = op in ("write", "delete")
            return result
        except hx.RateLimitExceeded:
            limited = True
            self._pause(getattr(self._local, "retry_after", None))
            raise
        finally:
            self.stats.end(wrote=wrote, limited=limited)

    def _pause(self, retry_after: float | None) -> None:
        import random

        delay = retry_after if retry_after is not None else 0.2 + random.random() * 0.8
        with self._pause_lock:
            self._not_before = max(self._not_before, time.monotonic() + delay)
        log.debug("rate limited (HTTP 429): pausing all requests for %.2fs", delay)

    def _call(self, what: str, fn: Any, *, retry: bool = True, op: str = "read") -> Any:
        attempts = [0]

        def once() -> Any:
            attempts[0] += 1
            return self._attempt(op, fn, repeat=attempts[0] > 1)

        try:
            if not retry:
                return once()
            try:
                return once()
            except Exception as exc:  # noqa: BLE001 - classified right below
                if not is_retryable(exc):
                    raise
                log.debug(
                    "%s: %s; retrying for up to %gs", what, _describe_exc(exc), self._retry_timeout
                )
            return self._retrying()(once)
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
                op="init",
            )
        )

    def seal_status(self) -> dict[str, Any]:
        return dict(
            self._call(
                "sys/seal-status", lambda: self.client.sys.read_seal_status(), op="seal-status"
            )
        )

    def submit_unseal_key(self, key: str) -> dict[str, Any]:
        return dict(
            self._call(
                "sys/unseal", lambda: self.client.sys.submit_unseal_key(key=key), op="unseal"
            )
        )

    # --- auth -----------------------------------------------------------------------------

    def set_token(self, token: str) -> None:
        self._token = token
        self.client.token = token

    def lookup_self(self) -> dict[str, Any]:
        resp = self._call(
            "auth/token/lookup-self", lambda: self.client.auth.token.lookup_self(), op="lookup"
        )
        return dict(resp.get("data") or {})

    def login_kubernetes(self, mount: str, role: str, jwt: str) -> str:
        path = f"auth/{mount}/login"
        resp = self._call(
            path,
            lambda: self.client.adapter.post(f"/v1/{path}", json={"role": role, "jwt": jwt}),
            op="login",
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
        resp = self._call(path, lambda: self.client.list(path), op="list")
        if not isinstance(resp, dict):
            return []
        return [str(k) for k in (resp.get("data") or {}).get("keys") or []]

    def write(self, path: str, body: Mapping[str, Any], *, retry: bool = True) -> Any:
        """POST /v1/<path> with exactly `body`."""
        resp = self._call(
            path, lambda: self.client.write_data(path, data=dict(body)), retry=retry, op="write"
        )
        warnings = resp.get("warnings") if isinstance(resp, dict) else None
        for warning in warnings or []:
            log.warning("%s: vault warning: %s", path, _one_line(str(warning)))
        return resp

    def delete(self, path: str) -> None:
        self._call(path, lambda: self.client.delete(path), op="delete")


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (Vault sends an integer); dates and junk mean "unknown"."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or seconds != seconds or seconds < 0:
        return None
    return min(seconds, _MAX_RETRY_AFTER)


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
