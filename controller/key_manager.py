"""Loading, watching, generating and renewing the sealing keys (compat §6).

- **load** (every replica): the key Secrets labelled `...sealed-secrets-key=active` in the key
  namespace, plus the legacy Secret named exactly `<key-prefix>`;
- **watch** (every replica, beyond upstream): the same two selections through informers, so a
  restored or BYO key is used at once and a key whose label becomes e.g. `compromised` is
  unloaded, all without a restart;
- **generate** (leader only): when there is no key, or when the newest key's ordering time is
  before `--key-cutoff-time`; then every `--key-renew-period` (the first renewal fires after
  period minus the newest key's age, never in the past; 0 turns renewal off); `force()` (SIGUSR1)
  makes one at once;
- **never delete** a key Secret.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.informer import Handlers, Informer, RawListWatch
from controller.keyring import (
    KEY_LABEL,
    KEY_LABEL_ACTIVE,
    KeyEntry,
    KeyRing,
    entry_from_secret,
    is_key_secret,
)
from controller.kube_gateway import ApiError, secret_path
from sealkit.keys import generate_key_and_cert, key_secret_manifest

__all__ = ["KeyManager", "KeyOptions"]

_LOG = logging.getLogger(__name__)


class KeyOptions:
    def __init__(
        self,
        *,
        namespace: str,
        prefix: str = "sealed-secrets-key",
        bits: int = 4096,
        ttl: timedelta = timedelta(hours=87600),
        cn: str = "",
        renew_period: timedelta = timedelta(hours=720),
        cutoff: datetime | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        self.namespace = namespace
        self.prefix = prefix
        self.bits = bits
        self.ttl = ttl
        self.cn = cn
        self.renew_period = renew_period
        self.cutoff = cutoff
        self.labels = {k: v for k, v in (labels or {}).items() if k != KEY_LABEL}
        self.annotations = dict(annotations or {})


class KeyManager:
    def __init__(self, gateway: Any, keyring: KeyRing, options: KeyOptions) -> None:
        self.gw = gateway
        self.ring = keyring
        self.opts = options
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._force = threading.Event()
        self._lead_lock = threading.Lock()
        self._leading = False
        self._thread: threading.Thread | None = None
        self.informers: list[Informer] = []
        self.generated: list[KeyEntry] = []
        self.backup: Any = None  # a `controller.key_backup.BackupGate` with --key-backup
        self.wrap: Any = None  # a `controller.key_wrap.KeyWrapper` with --key-wrap

    # -- loading (all replicas) ---------------------------------------------------------------
    def load(self) -> int:
        """List the key Secrets once and replace the ring's contents; return the key count."""
        secrets = self.gw.list_secrets(self.opts.namespace, f"{KEY_LABEL}={KEY_LABEL_ACTIVE}")
        legacy = self.gw.get_secret(self.opts.namespace, self.opts.prefix)
        if legacy is not None:
            secrets.append(legacy)
        entries = []
        for secret in sorted(
            secrets, key=lambda s: (s.get("metadata") or {}).get("creationTimestamp") or ""
        ):
            entry = self._entry(secret)
            if entry is not None:
                entries.append(entry)
        self.ring.replace_all(entries)
        _LOG.info(
            "loaded %d sealing key(s) from namespace %s",
            len(self.ring.entries()),
            self.opts.namespace,
        )
        return len(self.ring.entries())

    def _entry(self, secret: Mapping[str, Any]) -> KeyEntry | None:
        if self.wrap is not None and self.wrap.is_wrapped(secret):
            try:
                secret = self.wrap.unwrap(secret)  # in memory only
            except RuntimeError as exc:
                self.wrap.failed(secret, str(exc))
                return None
            self.wrap.forget((secret.get("metadata") or {}).get("name") or "")
        try:
            return entry_from_secret(secret)
        except ValueError as exc:
            _LOG.error("skipping key Secret: %s", exc)
            return None

    def watch(self) -> None:
        """Start informers that keep the ring in sync with the key Secrets."""
        handlers = Handlers(
            on_add=self._upsert,
            on_update=lambda _old, new: self._upsert(new),
            on_delete=self._deleted,
        )
        path = secret_path(self.opts.namespace)
        for name, lw in (
            (
                "keys-active",
                RawListWatch(self.gw, path, label_selector=f"{KEY_LABEL}={KEY_LABEL_ACTIVE}"),
            ),
            (
                "keys-legacy",
                RawListWatch(self.gw, path, field_selector=f"metadata.name={self.opts.prefix}"),
            ),
        ):
            inf = Informer(lw, handlers, name=name)
            inf.start()
            self.informers.append(inf)

    def wait_synced(self, timeout: float) -> bool:
        return all(i.wait_synced(timeout) for i in self.informers)

    def _upsert(self, secret: dict[str, Any]) -> None:
        name = (secret.get("metadata") or {}).get("name") or ""
        if not is_key_secret(secret, key_prefix=self.opts.prefix):
            if self.wrap is not None:
                self.wrap.forget(name)
            if self.ring.remove(name):
                _LOG.warning("key Secret %s is no longer active: key unloaded", name)
            return
        if self._already_loaded(name, secret):
            return  # e.g. the informer's first ADD after load(): no second key parse/unwrap
        entry = self._entry(secret)
        if entry is not None and self.ring.add(entry):
            _LOG.info("sealing key %s loaded from Secret %s", entry.fingerprint, name)

    def _already_loaded(self, name: str, secret: Mapping[str, Any]) -> bool:
        """Same Secret, same certificate: skip the private-key parse (a few ms with
        `sealkit.keys.check_rsa_key`) and, for wrapped keys, the Vault unwrap."""
        from controller.key_backup import cert_fingerprint

        try:
            fp = cert_fingerprint(secret)
        except ValueError:
            return False
        entry = self.ring.by_fingerprint(fp)
        return entry is not None and entry.secret_name == name

    def _deleted(self, secret: dict[str, Any]) -> None:
        name = (secret.get("metadata") or {}).get("name") or ""
        # The legacy informer sees a deleted legacy Secret; the active one sees both deletion
        # and de-labelling. Only unload when neither selection still holds the Secret.
        for inf in self.informers:
            if inf.get(f"{self.opts.namespace}/{name}") is not None:
                return
        if self.ring.remove(name):
            _LOG.warning("key Secret %s deleted: key unloaded", name)

    # -- generation (leader only) -------------------------------------------------------------
    def use_wrap(self, wrapper: Any) -> None:
        """--key-wrap: keys stored wrapped by Vault transit (`controller.key_wrap`)."""
        self.wrap = wrapper
        wrapper.on_unwrapped = self._upsert

    def use_backup(self, gate: Any) -> None:
        """--key-backup: new keys wait for a verified backup (`controller.key_backup`)."""
        self.backup = gate
        gate.on_activated = self._upsert  # load at once; the informer would follow anyway

    def _not_before(self) -> datetime:
        """Now, or one second after a key made within the last few seconds.

        Certificates carry whole seconds and controllers (upstream's too) order keys by
        NotBefore: two keys made within one second would tie, and which one is "newest" (the
        one `/v1/cert.pem` serves) would be arbitrary. Keys dated further ahead (an imported
        key with a future NotBefore) do not push new keys into the future."""
        now = datetime.now(UTC).replace(microsecond=0)
        recent = [
            e.not_before
            for e in (*self.ring.entries(), *self.generated)
            if now <= e.not_before <= now + timedelta(seconds=5)
        ]
        return max(recent) + timedelta(seconds=1) if recent else now

    def generate(self) -> KeyEntry:
        key, cert = generate_key_and_cert(
            self.opts.bits, self.opts.cn, self.opts.ttl, now=self._not_before()
        )
        manifest = key_secret_manifest(
            key,
            cert,
            namespace=self.opts.namespace,
            generate_name=self.opts.prefix,
            labels=self.opts.labels,
            annotations=self.opts.annotations,
        )
        plain_data = manifest["data"]
        if self.wrap is not None:  # etcd gets the transit ciphertext, never the PEM key
            manifest = self.wrap.wrap(manifest)
        if self.backup is not None:  # created pending; served only after a verified backup
            manifest = self.backup.mark_pending(manifest)
        created = self.gw.create_secret(self.opts.namespace, manifest)
        entry = entry_from_secret({**created, "data": plain_data})
        self.generated.append(entry)
        if self.backup is not None:
            _LOG.info(
                "new sealing key %s in Secret %s/%s: pending backup",
                entry.fingerprint,
                self.opts.namespace,
                entry.secret_name,
            )
            self.backup.sweep()
            if entry.secret_name not in self.backup.activated:
                raise self.backup.pending_error()
        self.ring.add(entry)
        _LOG.info(
            "new sealing key %s in Secret %s/%s",
            entry.fingerprint,
            self.opts.namespace,
            entry.secret_name,
        )
        return entry

    def needs_key(self, now: datetime | None = None) -> bool:
        latest = self.ring.latest()
        if latest is None:
            return True
        cutoff = self.opts.cutoff
        return cutoff is not None and latest.order_time(self.ring.order_priority) < cutoff

    def next_renewal(self, now: datetime | None = None) -> datetime | None:
        period = self.opts.renew_period
        latest = self.ring.latest()
        if period <= timedelta(0) or latest is None:
            return None
        now = now or datetime.now(UTC)
        return max(now, latest.order_time(self.ring.order_priority) + period)

    def start_leading(self) -> None:
        """Run the generate/renew loop until `stop_leading()` (called by the elector)."""
        with self._lead_lock:
            if self._leading:
                return
            self._stop.clear()
            thread = threading.Thread(target=self._loop, name="key-manager", daemon=True)
            thread.start()
            # In this order: the supervisor probes `_thread` while `_leading`, and a thread not
            # yet started (or the previous term's, ended) would count as dead.
            self._thread = thread
            self._leading = True

    def stop_leading(self, timeout: float = 10.0) -> None:
        with self._lead_lock:
            self._leading = False
            self._stop.set()
            self._wake.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def force(self) -> None:
        """SIGUSR1: make a new key now (on the leader)."""
        self._force.set()
        self._wake.set()

    def stop(self) -> None:
        self.stop_leading()
        if self.wrap is not None:
            self.wrap.stop()
        for inf in self.informers:
            inf.stop()

    def _loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                if self.backup is not None:
                    self.backup.sweep()
                    if self.backup.pending:  # never a second key while one waits
                        raise self.backup.pending_error()
                if self.needs_key() or self._force.is_set():
                    self.generate()
                    self._force.clear()  # only now: a forced key that failed is retried
                backoff = 1.0
                due = self.next_renewal()
                wait = 3600.0 if due is None else (due - datetime.now(UTC)).total_seconds()
                if self.backup is not None and self.backup.unbacked:
                    wait = min(wait, 60.0)  # keep retrying the backup of older keys
                if due is not None and wait <= 0:
                    self.generate()
                    continue
                self._wake.wait(min(max(wait, 0.05), 3600.0))
                self._wake.clear()
            except (ApiError, ValueError, RuntimeError) as exc:
                # Expected, transient or operator-fixable (apiserver, Vault transit, pending
                # backup, bad Secret): retried. Anything else is a bug and ends the thread, which
                # the supervisor turns into failing probes and a process exit.
                msg = exc.message if isinstance(exc, ApiError) else str(exc)
                _LOG.error("key generation failed: %s; retrying in %.0fs", msg, backoff)
                self._stop.wait(backoff)
                backoff = min(60.0, backoff * 2)
