"""Fault: restart kube-apiserver in the middle of a batch of 200 SealedSecrets.

Runs on a PRIVATE control plane (`devstack.up(tmp, parts=("kube",))`), because restarting the
shared apiserver would break other test runs. Afterwards every SealedSecret must have converged
(Secret present with the right data, `Synced=True`), and no Secret may have been written twice:
etcd itself says so (each Secret's key has `version == 1`: created once, never modified), and
the controller issued no update.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from _ctl import Kube, ensure_crd, running_controller, wait_for
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from sealkit.model import seal_secret

pytestmark = [pytest.mark.stack, pytest.mark.slow]

N = 200


def etcd_versions(etcd_url: str, prefix: str) -> dict[str, int]:
    """name -> etcd `version` (writes since creation) of every key under `prefix`."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    body = json.dumps(
        {
            "key": b64(prefix),
            "range_end": b64(prefix[:-1] + chr(ord(prefix[-1]) + 1)),
            "keys_only": True,
        }
    ).encode()
    req = urllib.request.Request(
        f"{etcd_url}/v3/kv/range", data=body, headers={"Content-Type": "application/json"}
    )
    kvs = json.loads(urllib.request.urlopen(req, timeout=10).read()).get("kvs") or []
    return {base64.b64decode(kv["key"]).decode()[len(prefix) :]: int(kv["version"]) for kv in kvs}


@pytest.fixture
def private_stack(stack: Any, tmp_path: Path) -> Any:
    import devstack

    try:
        own = devstack.up(tmp_path / "stack", parts=("kube",), quiet=True)
    except devstack.MissingComponent as err:
        pytest.skip(str(err))
    try:
        yield own
    finally:
        own.stop()


def test_apiserver_restart_mid_batch(private_stack: Any) -> None:
    import devstack

    api = config.new_client_from_config(config_file=private_stack.kubeconfig)
    kube = Kube(api)
    ensure_crd(api)
    core = client.CoreV1Api(api)
    for ns in ("app", "keys"):
        core.create_namespace({"metadata": {"name": ns}})
    with running_controller(private_stack.kubeconfig, "keys", ["app"]) as app:
        key = wait_for(app.keyring.latest, 30, "key")
        objs = [
            seal_secret(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": f"s{i:03d}", "namespace": "app"},
                    "stringData": {"a": f"va{i}", "b": f"vb{i}", "c": f"vc{i}"},
                },
                key.public_key,
            )
            for i in range(N)
        ]
        created = threading.Event()

        def create_all() -> None:
            for obj in objs:
                while True:
                    try:
                        kube.create_sealed(obj)
                        break
                    except ApiException as exc:
                        if exc.status == 409:
                            break
                        time.sleep(0.2)
                    except Exception:  # noqa: BLE001 - apiserver down: retry
                        time.sleep(0.2)
            created.set()

        creator = threading.Thread(target=create_all, daemon=True)
        creator.start()
        wait_for(lambda: len(app.controller.sealed_keys()) >= 60, 60, "first SealedSecrets")
        relists_before = sum(i.relists for i in app.controller.informers())
        devstack.restart_apiserver(private_stack)
        assert created.wait(180), "creating the batch did not finish"

        def converged() -> bool:
            secrets = {s["metadata"]["name"]: s for s in kube.list_secrets("app")}
            return len(secrets) == N and all(
                (c := kube.synced("app", f"s{i:03d}")) is not None and c["status"] == "True"
                for i in range(N)
                if i % 20 == 0
            )

        wait_for(converged, 240, "all 200 converged", interval=1.0)
        wait_for(
            lambda: all(
                ((o.get("status") or {}).get("conditions") or [{}])[0].get("status") == "True"
                for o in kube.list_sealed("app")
            ),
            120,
            "all Synced",
            1.0,
        )
        secrets = {s["metadata"]["name"]: s for s in kube.list_secrets("app")}
        assert sorted(secrets) == [f"s{i:03d}" for i in range(N)]
        for i in range(N):
            s = secrets[f"s{i:03d}"]
            assert base64.b64decode(s["data"]["b"]).decode() == f"vb{i}"
        versions = etcd_versions(private_stack.etcd_url, "/registry/secrets/app/")
        assert sorted(versions) == sorted(secrets)
        twice = {name: v for name, v in versions.items() if v != 1}
        assert not twice, f"Secrets written more than once (etcd version): {twice}"
        counters = app.controller.reconciler.counters
        assert counters["update"] == 0
        assert counters["create"] <= N  # a create whose answer was lost is not counted
        assert sum(i.relists for i in app.controller.informers()) >= relists_before
    api.close()
