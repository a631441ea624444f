"""Helpers for controller tests on the real apiserver: CRD install, in-process controllers,
namespaces, and small wait/CRUD wrappers (dict bodies through the official client)."""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "deploy" / "crd.yaml"
G, V, P = "bitnami.com", "v1alpha1", "sealedsecrets"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition", interval: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


def ensure_crd(api: Any) -> None:
    ext = client.ApiextensionsV1Api(api)
    body = yaml.safe_load(CRD_PATH.read_text())
    try:
        ext.create_custom_resource_definition(body)
    except ApiException as exc:
        if exc.status != 409:
            raise

    def established() -> bool:
        crd = json.loads(
            ext.read_custom_resource_definition(
                "sealedsecrets.bitnami.com", _preload_content=False
            ).data
        )
        return any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        )

    wait_for(established, 30, "CRD established")


@contextlib.contextmanager
def temp_namespace(api: Any, prefix: str = "t-ctl") -> Iterator[str]:
    core = client.CoreV1Api(api)
    name = f"{prefix}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name, "labels": {"sealkit-test": "1"}}})
    try:
        yield name
    finally:
        with contextlib.suppress(ApiException):
            core.delete_namespace(name)


def controller_args(kubeconfig: str, key_ns: str, watch: list[str], *extra: str) -> list[str]:
    return [
        "--kubeconfig",
        kubeconfig,
        "--namespace",
        key_ns,
        "--all-namespaces=false",
        "--additional-namespaces",
        ",".join(watch),
        "--key-size",
        "2048",
        "--listen-addr",
        f"127.0.0.1:{free_port()}",
        "--listen-metrics-addr",
        f"127.0.0.1:{free_port()}",
        "--leader-elect=false",
        "--kubeclient-qps",
        "200",
        "--kubeclient-burst",
        "400",
        *extra,
    ]


FOREIGN_CONTROLLER_LABELS = (
    "app.kubernetes.io/name=sealed-secrets-controller",
    "app.kubernetes.io/name=sealed-secrets",
)


def require_no_cluster_wide_controller(kubeconfig: str) -> None:
    """Fail at once if a controller pod (deploy/, the Helm chart, upstream's chart) runs on the
    stack. It watches every namespace with its own keys, so it races the in-process controller
    of these tests on their SealedSecrets and writes "no key could decrypt secret (...)" into
    their status (seen on a shared stack that still ran a deployed controller)."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=kubeconfig)
    try:
        core = client.CoreV1Api(api)
        running = sorted(
            f"{p.metadata.namespace}/{p.metadata.name}"
            for selector in FOREIGN_CONTROLLER_LABELS
            for p in core.list_pod_for_all_namespaces(label_selector=selector).items
            if not p.metadata.deletion_timestamp and p.status.phase in ("Pending", "Running")
        )
    finally:
        api.close()
    if running:
        import pytest

        pytest.fail(
            f"a cluster-wide controller runs on this stack ({', '.join(running)}): it "
            "would race this test's controller; remove it first",
            pytrace=False,
        )


@contextlib.contextmanager
def running_controller(
    kubeconfig: str, key_ns: str, watch: list[str], *extra: str
) -> Iterator[Any]:
    """An in-process controller (`controller.main.App`) scoped to `watch` + `key_ns`."""
    from controller.config import ControllerConfig
    from controller.main import App

    require_no_cluster_wide_controller(kubeconfig)
    app = App(ControllerConfig.from_argv(controller_args(kubeconfig, key_ns, watch, *extra)))
    app.start()
    try:
        yield app
    finally:
        app.shutdown()


class Kube:
    """Dict-in/dict-out CRUD on the stack apiserver."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    @staticmethod
    def _json(resp: Any) -> dict[str, Any]:
        return json.loads(resp.data)

    def create_sealed(self, obj: dict[str, Any]) -> dict[str, Any]:
        ns = obj["metadata"]["namespace"]
        return self._json(
            self.custom.create_namespaced_custom_object(G, V, ns, P, obj, _preload_content=False)
        )

    def get_sealed(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            return self._json(
                self.custom.get_namespaced_custom_object(G, V, ns, P, name, _preload_content=False)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def replace_sealed(self, obj: dict[str, Any]) -> dict[str, Any]:
        m = obj["metadata"]
        return self._json(
            self.custom.replace_namespaced_custom_object(
                G, V, m["namespace"], P, m["name"], obj, _preload_content=False
            )
        )

    def delete_sealed(self, ns: str, name: str, propagation: str = "Background") -> None:
        self.custom.delete_namespaced_custom_object(
            G, V, ns, P, name, body={"propagationPolicy": propagation}
        )

    def list_sealed(self, ns: str) -> list[dict[str, Any]]:
        return self._json(
            self.custom.list_namespaced_custom_object(G, V, ns, P, _preload_content=False)
        )["items"]

    def get_secret(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            return self._json(self.core.read_namespaced_secret(name, ns, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_secret(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self._json(
            self.core.create_namespaced_secret(
                obj["metadata"]["namespace"], obj, _preload_content=False
            )
        )

    def list_secrets(self, ns: str, selector: str = "") -> list[dict[str, Any]]:
        return self._json(
            self.core.list_namespaced_secret(ns, label_selector=selector, _preload_content=False)
        )["items"]

    def delete_secret(self, ns: str, name: str) -> None:
        self.core.delete_namespaced_secret(name, ns)

    def events(self, ns: str) -> list[dict[str, Any]]:
        return self._json(self.core.list_namespaced_event(ns, _preload_content=False))["items"]

    def synced(self, ns: str, name: str) -> dict[str, Any] | None:
        obj = self.get_sealed(ns, name)
        conds = ((obj or {}).get("status") or {}).get("conditions") or []
        return conds[0] if conds else None
