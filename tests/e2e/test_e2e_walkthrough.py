"""The controller's side of the walkthrough: key rotation, backup and recovery, foreign keys.

These tests run `sealkit-controller` as a local process scoped to a private namespace (they
restart it with other flags), apply the sealed working copy's SealedSecrets with kubectl and
read the controller's own `Synced` condition. The GitOps flow itself, judged by real Argo CD,
is in test_e2e_argocd.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]


def _fail(walk: Any, err: BaseException) -> None:
    pytest.fail(
        f"{err}\n--- log tail ---\n{log_tail(walk.log.path)}\n--- controller log ---\n"
        f"{log_tail(walk.workdir / 'controller.log')}",
        pytrace=False,
    )


def _sealed(walk: Any, name: str) -> dict[str, Any]:
    from kubernetes import client

    return client.CustomObjectsApi(walk.api()).get_namespaced_custom_object(
        "bitnami.com", "v1alpha1", walk.namespace, "sealedsecrets", name
    )


def _synced(walk: Any, name: str, min_generation: int = 0) -> dict[str, Any] | None:
    """The SealedSecret once the controller reports Synced=True for its current generation."""
    obj = _sealed(walk, name)
    meta, status = obj["metadata"], obj.get("status") or {}
    if (
        meta["generation"] < min_generation
        or status.get("observedGeneration") != meta["generation"]
    ):
        return None
    conds = [c for c in status.get("conditions") or [] if c.get("type") == "Synced"]
    return obj if conds and conds[0].get("status") == "True" else None


def _apply_sealed(walk: Any, demo: Any, names: list[str], min_generation: int = 0) -> None:
    docs = [
        d
        for d in demo.load_manifests(walk.gitops / "cluster")
        if d["kind"] == "SealedSecret" and d["metadata"]["name"] in names
    ]
    demo.apply_docs(walk.kubectl, walk.kubeconfig, docs, walk.log)
    for name in names:
        assert demo.wait_for(lambda n=name: _synced(walk, n, min_generation), 60), name


def test_sealed_working_copy_unseals(walk, demo):
    try:
        names = walk.seal_working_copy()
        assert sorted(names) == ["git-auth", "postgresql-auth", "vault-secrets"]
        _apply_sealed(walk, demo, names)
        for name in names:
            assert demo.read_secret_values(walk.api(), walk.namespace, name) == walk.inputs[name]
    except demo.StepFailed as err:
        _fail(walk, err)


def _rfc1123z(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def _key_secrets(walk: Any) -> list[Any]:
    from kubernetes import client

    return (
        client.CoreV1Api(walk.api())
        .list_namespaced_secret(
            walk.key_namespace, label_selector="sealedsecrets.bitnami.com/sealed-secrets-key=active"
        )
        .items
    )


def _private_keys(secret: Any) -> list[Any]:
    from sealkit.keys import load_private_keys

    return load_private_keys(base64.b64decode(secret.data["tls.key"]))


def test_key_rotation_with_cutoff_then_re_encrypt(walk, demo):
    """A new key via --key-cutoff-time; `sealkit --re-encrypt`; old and new ciphertexts open."""
    if not walk.inputs:
        pytest.skip("the walkthrough did not run")
    from sealkit.model import unseal_sealed_secret

    ctl = walk.controller
    keys_before = _key_secrets(walk)
    assert len(keys_before) == 1
    old_cert = demo.http_get(ctl.url + "/v1/cert.pem")[1]
    old_file = walk.workdir / "vault-secrets.old.yaml"
    src = walk.gitops / "cluster" / "vault-secrets.sealedsecret.yaml"
    old_file.write_text(src.read_text())
    try:
        time.sleep(1.1)  # the cutoff must be after the first key's NotBefore (1 s resolution)
        ctl.stop()
        ctl.extra_args = ["--key-cutoff-time", _rfc1123z(dt.datetime.now(dt.UTC))]
        ctl.start()

        # The leader makes the key after it wins the Lease; /v1/cert.pem then serves it.
        def two_keys() -> list[Any] | None:
            keys = _key_secrets(walk)
            return keys if len(keys) == 2 else None

        def newer_cert() -> bytes | None:
            cert = demo.http_get(ctl.url + "/v1/cert.pem")[1]
            return cert if cert != old_cert else None

        keys_after = demo.wait_for(two_keys, 60)
        assert keys_after, "the cutoff did not generate a new key"
        new_cert = demo.wait_for(newer_cert, 30)
        assert new_cert and b"BEGIN CERTIFICATE" in new_cert

        # Re-encrypt through the controller's /v1/rotate. kubeseal (and sealkit by default) go
        # through the apiserver's service proxy, which needs a Pod endpoint; this controller
        # is a process of the walkthrough, not a pod (tests/sealkit/test_cluster.py tests that
        # path against a real controller pod), so sealkit's --controller-url talks to it
        # directly.
        walk.log.run(
            [
                walk.sealkit,
                "--re-encrypt",
                "--controller-url",
                ctl.url,
                "-f",
                str(src),
                "-w",
                str(src),
            ]
        )
        rotated = next(d for d in yaml.safe_load_all(src.read_text()) if d)
        old = next(d for d in yaml.safe_load_all(old_file.read_text()) if d)
        assert rotated["spec"]["encryptedData"].keys() == old["spec"]["encryptedData"].keys()
        assert rotated["spec"]["encryptedData"] != old["spec"]["encryptedData"]

        # The new ciphertexts open with the new key alone, the old ones with the old key alone.
        new_key = next(
            k for k in keys_after if k.metadata.name not in {o.metadata.name for o in keys_before}
        )
        expected = walk.inputs["vault-secrets"]
        opened_new = unseal_sealed_secret(rotated, _private_keys(new_key))
        opened_old = unseal_sealed_secret(old, _private_keys(keys_before[0]))
        for opened in (opened_new, opened_old):
            values = {k: base64.b64decode(v).decode() for k, v in opened["data"].items()}
            assert values == expected
        # ... and the controller (which keeps every key) opens both.
        for doc in (old, rotated):
            status, _ = demo.http_post(ctl.url + "/v1/verify", json.dumps(doc).encode())
            assert status == 200
            time.sleep(1.0)  # /v1/verify is rate-limited (2/s, burst 2)

        generation = _sealed(walk, "vault-secrets")["metadata"]["generation"]
        _apply_sealed(walk, demo, ["vault-secrets"], generation + 1)
        assert demo.read_secret_values(walk.api(), walk.namespace, "vault-secrets") == expected
        # The other SealedSecrets, still sealed for the old key, stay Synced.
        for name in ("git-auth", "postgresql-auth"):
            assert _synced(walk, name)
    except demo.StepFailed as err:
        _fail(walk, err)


def test_demo_log_holds_no_secret_value(walk):
    """Nothing the walkthrough logged (commands, tool output, controller log) holds a value."""
    if not walk.inputs:
        pytest.skip("the walkthrough did not run")
    texts = [
        Path(walk.log.path).read_text(errors="replace"),
        (walk.workdir / "controller.log").read_text(errors="replace"),
    ]
    for values in walk.inputs.values():
        for key, value in values.items():
            if key == "username":
                continue
            for text in texts:
                assert value not in text, f"{key} appears in a log"


def test_key_backup_and_offline_recovery_as_the_readme_says(walk):
    """The README's backup command, then `sealkit --recovery-unseal` with no cluster at all."""
    if not walk.inputs:
        pytest.skip("the walkthrough did not run")
    backup = walk.workdir / "keys-backup.yaml"
    proc = walk.log.run(
        [
            walk.kubectl,
            "--kubeconfig",
            walk.kubeconfig,
            "get",
            "secret",
            "-n",
            walk.key_namespace,
            "-l",
            "sealedsecrets.bitnami.com/sealed-secrets-key",
            "-o",
            "yaml",
        ],
        what="(key backup, not logged)",
    )
    backup.write_text(proc.stdout)
    assert yaml.safe_load(proc.stdout)["kind"] == "List"
    sealed_files = [walk.gitops / "cluster" / f"{n}.sealedsecret.yaml" for n in walk.inputs]
    old = walk.workdir / "vault-secrets.old.yaml"  # sealed for the first key (previous test)
    if old.exists():
        sealed_files.append(old)
    for path in sealed_files:
        out = subprocess.run(
            [
                walk.sealkit,
                "--recovery-unseal",
                "--recovery-private-key",
                str(backup),
                "-f",
                str(path),
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": "/usr/bin:/bin", "HOME": str(walk.workdir)},
        )  # no KUBECONFIG
        assert out.returncode == 0, out.stderr
        secret = json.loads(out.stdout)
        name = secret["metadata"]["name"]
        values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert values == walk.inputs[name], path.name


def test_a_sealed_secret_from_elsewhere_is_degraded_and_writes_nothing(walk, demo):
    """The committed example SealedSecrets (sealed for the discarded demo key) never open: the
    controller reports Synced=False with its reason, and no Secret is written."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    committed = demo.EXAMPLE / "cluster" / "vault-secrets.sealedsecret.yaml"
    doc = next(d for d in yaml.safe_load_all(committed.read_text()) if d)
    doc["metadata"]["name"] = doc["spec"]["template"]["metadata"]["name"] = "from-elsewhere"
    doc["metadata"]["namespace"] = walk.namespace
    doc["spec"]["template"]["metadata"]["namespace"] = walk.namespace
    demo.apply_docs(walk.kubectl, walk.kubeconfig, [doc], walk.log)

    def degraded() -> str | None:
        status = _sealed(walk, "from-elsewhere").get("status") or {}
        conds = [c for c in status.get("conditions") or [] if c.get("type") == "Synced"]
        return conds[0].get("message") if conds and conds[0]["status"] == "False" else None

    message = demo.wait_for(degraded, 60)
    assert message and "decrypt" in message, message
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(walk.api()).read_namespaced_secret("from-elsewhere", walk.namespace)
    assert err.value.status == 404
