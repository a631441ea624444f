"""The phases before planning: connect, wait for Vault, optional init/unseal, login.

Waiting treats "connection refused", sealed (503) and uninitialised (501) as *not ready yet*
and polls `sys/health` with jittered exponential backoff until a deadline. When `init` is
configured, a reachable sealed/uninitialised server is handed to `init_and_unseal` instead.

Init is never retried and is refused when the key store already holds keys; keys and the root
token go only to the key store (a 0600 file created exclusively, or a new Kubernetes Secret) and
are never printed.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ._config import Config, Init
from ._errors import InitError, LoginError, NotReadyError
from ._gateway import Health, HvacGateway, VaultCallError, VaultGateway
from ._kube import KubeAccess
from ._redact import Sensitive
from ._refs import Resolver

__all__ = [
    "ConnectionSettings",
    "KeyStoreIO",
    "connection_settings",
    "init_and_unseal",
    "login",
    "make_gateway",
    "wait_for_vault",
]

log = logging.getLogger("vault_bootstrap.phases")

_TRUE = {"1", "true", "yes", "on"}


def _env(env: Mapping[str, str], name: str) -> str | None:
    """OpenBao's order: BAO_<name>, then VAULT_<name>."""
    for prefix in ("BAO_", "VAULT_"):
        value = env.get(prefix + name)
        if value:
            return value
    return None


@dataclass(frozen=True)
class ConnectionSettings:
    address: str
    verify: bool | str
    request_timeout: int
    wait_timeout: int


def connection_settings(
    config: Config, resolver: Resolver, env: Mapping[str, str]
) -> ConnectionSettings:
    c = config.connection
    address = resolver.text(c.address, "connection.address") if c.address else _env(env, "ADDR")
    if not address:
        raise LoginError(
            "connection.address: not set and neither BAO_ADDR nor VAULT_ADDR is in the environment"
        )
    verify: bool | str = True
    ca = resolver.text(c.ca_cert_file, "connection.ca_cert_file") if c.ca_cert_file else None
    ca = ca or _env(env, "CACERT")
    if ca:
        verify = ca
    skip = c.tls_skip_verify
    if skip is None:
        skip = (_env(env, "SKIP_VERIFY") or "").lower() in _TRUE
    if skip:
        verify = False
    return ConnectionSettings(address, verify, c.request_timeout, c.wait_timeout)


def make_gateway(settings: ConnectionSettings, *, retry_timeout: float = 60) -> HvacGateway:
    return HvacGateway(
        settings.address,
        verify=settings.verify,
        request_timeout=settings.request_timeout,
        retry_timeout=retry_timeout,
    )


def wait_for_vault(
    gw: VaultGateway,
    *,
    timeout: float,
    accept_uninitialised: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Health:
    """Poll `sys/health` until active (or, with init configured, reachable but sealed/uninit)."""
    deadline = clock() + timeout
    delay = 0.2
    last = ""
    while True:
        health = gw.health()
        if health.ready:
            return health
        if accept_uninitialised and health.status in (501, 503):
            return health
        state = _describe(health)
        if state != last:
            log.info("waiting for Vault: %s", state)
            last = state
        remaining = deadline - clock()
        if remaining <= 0:
            raise NotReadyError(
                f"Vault at {getattr(gw, 'address', '?')} not ready after {timeout:g}s: {state}"
            )
        sleep(min(delay * (0.5 + random.random()), remaining))
        delay = min(delay * 2, 5.0)


def _describe(h: Health) -> str:
    if h.status == 0:
        return f"unreachable ({h.detail or 'no response'})"
    if h.status == 501:
        return "not initialised"
    if h.status == 503:
        return "sealed"
    if h.status == 429:
        return "standby node (apply runs on the active node)"
    return f"HTTP {h.status}"


# --- key store ----------------------------------------------------------------------------


class KeyStoreIO:
    """Reads and creates the init material in a file or a Kubernetes Secret; never overwrites."""

    def __init__(self, init: Init, resolver: Resolver, kube: KubeAccess | None = None) -> None:
        self._init = init
        self._kube = kube
        ks = init.key_store
        self.file = resolver.text(ks.file, "init.key_store.file") if ks.file else None
        self.secret = ks.kubernetes_secret

    @property
    def where(self) -> str:
        if self.file:
            return f"file {self.file}"
        assert self.secret is not None
        return f"Secret {self.secret.namespace}/{self.secret.name}"

    def exists(self) -> bool:
        if self.file:
            return os.path.exists(self.file)
        assert self.secret is not None and self._kube is not None
        return self._kube.secret_exists(self.secret.namespace, self.secret.name)

    def check_writable(self) -> None:
        if self.file:
            parent = os.path.dirname(os.path.abspath(self.file))
            if not os.access(parent, os.W_OK):
                raise InitError(f"init.key_store.file: directory {parent} is not writable")

    def save(self, keys: list[str], root_token: str) -> None:
        if self.file:
            payload = json.dumps({"unseal_keys_b64": keys, "root_token": root_token})
            fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(payload)
            return
        assert self.secret is not None and self._kube is not None
        data = {f"unseal-key-{i}": k for i, k in enumerate(keys)} | {"root-token": root_token}
        self._kube.create_secret(self.secret.namespace, self.secret.name, data)

    def load(self) -> tuple[list[Sensitive], Sensitive | None]:
        if self.file:
            with open(self.file, encoding="utf-8") as fh:
                data = json.load(fh)
            keys = [Sensitive(k) for k in data.get("unseal_keys_b64") or []]
            root = data.get("root_token")
            return keys, Sensitive(root) if root else None
        assert self.secret is not None and self._kube is not None
        import base64

        raw = self._kube.read_secret_data(self.secret.namespace, self.secret.name)
        decoded = {k: base64.b64decode(v).decode() for k, v in raw.items()}
        keys = [Sensitive(decoded[k]) for k in sorted(decoded) if k.startswith("unseal-key-")]
        root = decoded.get("root-token")
        return keys, Sensitive(root) if root else None


def init_and_unseal(gw: VaultGateway, store: KeyStoreIO, health: Health, init: Init) -> None:
    """Initialise (once, never retried) and unseal; keys only ever go to the key store."""
    if health.status == 501 or not health.initialized:
        if store.exists():
            raise InitError(
                f"init: Vault is not initialised but the key store ({store.where}) already "
                "holds keys; refusing to overwrite them. Move them away if they are stale"
            )
        store.check_writable()
        log.info(
            "initialising Vault (%d shares, threshold %d)",
            init.secret_shares,
            init.secret_threshold,
        )
        try:
            result = gw.initialize(init.secret_shares, init.secret_threshold)
        except VaultCallError as exc:
            raise InitError(f"init: sys/init failed (not retried): {exc}") from None
        keys = [Sensitive(k) for k in result.get("keys_base64") or result.get("keys") or []]
        root = Sensitive(str(result.get("root_token") or ""))
        try:
            store.save([k.reveal() for k in keys], root.reveal())
        except Exception as exc:  # noqa: BLE001
            raise InitError(
                f"init: Vault was initialised but saving the keys to {store.where} failed "
                f"({type(exc).__name__}); the keys are NOT recoverable from this run"
            ) from None
        log.info("stored unseal keys and root token in %s", store.where)
        health = Health(status=503, initialized=True, sealed=True)
    if health.sealed and init.unseal:
        if not store.exists():
            raise InitError(f"init: Vault is sealed and the key store ({store.where}) is empty")
        keys, _ = store.load()
        log.info("unsealing Vault with keys from %s", store.where)
        for key in keys[: init.secret_threshold]:
            status = gw.submit_unseal_key(key.reveal())
            if not status.get("sealed", True):
                break
        status = gw.seal_status()
        if status.get("sealed", True):
            raise InitError(f"init: Vault is still sealed after submitting keys from {store.where}")
        log.info("Vault unsealed")


def login(
    gw: VaultGateway,
    config: Config,
    resolver: Resolver,
    env: Mapping[str, str],
    *,
    store: KeyStoreIO | None = None,
) -> None:
    """Authenticate `gw`: kubernetes login, a token ref, BAO_/VAULT_TOKEN, or the key store."""
    c = config.connection
    if c.kubernetes_login is not None:
        kl = c.kubernetes_login
        jwt = resolver.secret(kl.jwt, "connection.kubernetes_login.jwt")
        try:
            token = gw.login_kubernetes(kl.mount, kl.role, jwt.reveal())
        except VaultCallError as exc:
            if exc.status == 0:
                raise NotReadyError(f"connection.kubernetes_login: {exc}") from None
            raise LoginError(
                f"connection.kubernetes_login: login to auth/{kl.mount} as role {kl.role!r} "
                f"failed: {exc}"
            ) from None
        Sensitive(token)
        gw.set_token(token)
        log.info("logged in with kubernetes auth (role %s)", kl.role)
        return
    if c.token is not None:
        token_s = resolver.secret(c.token, "connection.token")
        source = f"connection.token ({c.token})"
    elif _env(env, "TOKEN"):
        token_s = Sensitive(_env(env, "TOKEN") or "")
        source = "BAO_TOKEN/VAULT_TOKEN"
    elif store is not None and store.exists():
        _, root = store.load()
        if root is None:
            raise LoginError(f"connection: no token configured and {store.where} has no root token")
        token_s = root
        source = f"the root token in {store.where}"
    else:
        raise LoginError(
            "connection: no credentials; set connection.token, connection.kubernetes_login, "
            "or BAO_TOKEN/VAULT_TOKEN"
        )
    gw.set_token(token_s.reveal())
    try:
        gw.lookup_self()
    except VaultCallError as exc:
        if exc.status == 0:  # no answer at all: the token was never judged
            raise NotReadyError(f"connection: {exc}") from None
        raise LoginError(f"connection: the token from {source} was refused: {exc}") from None
    log.info("using the token from %s", source)
