"""In-memory `KubeGateway` for pure reconcile tests (no apiserver), shipped like click.testing.

It keeps SealedSecrets and Secrets as dicts, bumps `resourceVersion` on every write, enforces
create-conflicts, resourceVersion-guarded replaces and immutable Secrets, and records every
write and event so tests can assert "written once", "nothing written" and "no secret value in
any message".
"""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from controller.kube_gateway import ApiError

__all__ = ["FakeKubeGateway"]


class FakeKubeGateway:
    def __init__(self) -> None:
        self.sealed: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.namespaces: set[str] = set()
        self.events: list[dict[str, Any]] = []
        self.writes: list[tuple[str, str, str]] = []  # (verb, namespace, name)
        self.fail_next: dict[str, ApiError] = {}  # verb -> error raised once
        self._rv = itertools.count(1)
        self._lock = threading.RLock()

    # -- helpers for tests ------------------------------------------------------------------
    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(next(self._rv))
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        return obj

    def _maybe_fail(self, verb: str) -> None:
        err = self.fail_next.pop(verb, None)
        if err is not None:
            raise err

    def put_sealed(self, sealed: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update a SealedSecret (bumping generation when spec changes)."""
        with self._lock:
            obj = copy.deepcopy(dict(sealed))
            meta = obj.setdefault("metadata", {})
            key = (meta["namespace"], meta["name"])
            old = self.sealed.get(key)
            if old is not None:
                meta["uid"] = old["metadata"]["uid"]
                gen = old["metadata"].get("generation", 1)
                meta["generation"] = gen + (old.get("spec") != obj.get("spec"))
                obj["status"] = old.get("status")
            else:
                meta.setdefault("generation", 1)
            self.sealed[key] = self._stamp(obj)
            return copy.deepcopy(obj)

    def put_secret(self, secret: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            obj = self._stamp(copy.deepcopy(dict(secret)))
            self.secrets[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
            return copy.deepcopy(obj)

    def texts(self) -> str:
        """Every event message and status message, for secret-leak greps."""
        parts = [e["message"] for e in self.events]
        for s in self.sealed.values():
            for c in (s.get("status") or {}).get("conditions") or []:
                parts.append(str(c.get("message")))
        return "\n".join(parts)

    # -- KubeGateway ------------------------------------------------------------------------
    def get_sealed(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self.sealed.get((namespace, name))
            return copy.deepcopy(obj) if obj else None

    def patch_sealed_status(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        with self._lock:
            self._maybe_fail("patch_status")
            obj = self.sealed.get((namespace, name))
            if obj is None:
                raise ApiError("not found", 404, "NotFound")
            status = dict(obj.get("status") or {})
            status.update(copy.deepcopy(dict(patch.get("status") or {})))
            obj["status"] = status
            self._stamp(obj)
            self.writes.append(("status", namespace, name))
            return copy.deepcopy(obj)

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            self._maybe_fail("get_secret")
            obj = self.secrets.get((namespace, name))
            return copy.deepcopy(obj) if obj else None

    def create_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._maybe_fail("create")
            body = copy.deepcopy(dict(body))
            meta = body["metadata"]
            if not meta.get("name"):  # generateName, as the apiserver does it
                meta["name"] = meta.get("generateName", "") + uuid.uuid4().hex[:5]
            name = meta["name"]
            if (namespace, name) in self.secrets:
                raise ApiError("already exists", 409, "AlreadyExists")
            obj = copy.deepcopy(dict(body))
            obj["metadata"].pop("resourceVersion", None)
            obj["metadata"].pop("uid", None)
            self.secrets[(namespace, name)] = self._stamp(obj)
            self.writes.append(("create", namespace, name))
            return copy.deepcopy(obj)

    def replace_secret(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._maybe_fail("replace")
            old = self.secrets.get((namespace, name))
            if old is None:
                raise ApiError("not found", 404, "NotFound")
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise ApiError("conflict", 409, "Conflict")
            if old.get("immutable") and (old.get("data") != body.get("data")):
                raise ApiError("field is immutable when `immutable` is set", 422, "Invalid")
            obj = copy.deepcopy(dict(body))
            obj["metadata"]["uid"] = old["metadata"]["uid"]
            self.secrets[(namespace, name)] = self._stamp(obj)
            self.writes.append(("update", namespace, name))
            return copy.deepcopy(obj)

    def delete_secret(self, namespace: str, name: str, uid: str | None = None) -> None:
        with self._lock:
            old = self.secrets.get((namespace, name))
            if old is not None and (uid is None or old["metadata"]["uid"] == uid):
                del self.secrets[(namespace, name)]
                self.writes.append(("delete", namespace, name))

    def list_secrets(self, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        want = dict(p.split("=", 1) for p in label_selector.split(",") if "=" in p)
        with self._lock:
            return [
                copy.deepcopy(s)
                for (ns, _), s in sorted(self.secrets.items())
                if ns == namespace
                and all(((s["metadata"].get("labels") or {}).get(k) == v) for k, v in want.items())
            ]

    def emit_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        meta = involved.get("metadata") or {}
        with self._lock:
            self.events.append(
                {
                    "namespace": meta.get("namespace"),
                    "name": meta.get("name"),
                    "type": type_,
                    "reason": reason,
                    "message": message,
                }
            )

    def namespace_exists(self, name: str) -> bool:
        return name in self.namespaces
