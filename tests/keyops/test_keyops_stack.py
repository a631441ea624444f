"""Key lifecycle commands against real controllers on the real apiserver: `keys report`
(offline and through /v1/verify), `reencrypt-tree` through /v1/rotate, `keys retire` refused
while a key is in use and allowed after re-encryption, `keys restore`, and an export/import
round trip between two controllers that opens the same SealedSecrets. No value or key material
in any output."""

from __future__ import annotations

import base64
import json
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _ctl import Kube, ensure_crd, running_controller, temp_namespace, wait_for
from _trees import VALUE, make_key, sealed
from conftest_sealkit import run_sealkit

from controller.keyring import KEY_LABEL
from sealkit.certs import load_public_key
from sealkit.output import to_yaml

pytestmark = pytest.mark.stack


@pytest.fixture
def kube(kube_api: Any) -> Kube:
    ensure_crd(kube_api)
    return Kube(kube_api)


@pytest.fixture
def spaces(kube_api: Any) -> Iterator[tuple[str, str]]:
    with temp_namespace(kube_api, "t-ko") as ns, temp_namespace(kube_api, "t-ko-k") as keys:
        yield ns, keys


def value_of(kube: Kube, ns: str, name: str) -> str | None:
    s = kube.get_secret(ns, name)
    return base64.b64decode(s["data"]["password"]).decode() if s else None


def usage(app: Any, fp: str) -> float | None:
    body = urllib.request.urlopen(f"{app.metrics_server.url}/metrics", timeout=5).read().decode()
    line = f'sealkit_key_sealedsecrets{{fingerprint="{fp}"}} '
    return next((float(ln.split()[-1]) for ln in body.splitlines() if ln.startswith(line)), None)


def cert_of(app: Any) -> Any:
    return load_public_key(app.keyring.latest().certificate_pem)


def no_leak(*texts: str, keys: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
    for text in texts:
        assert VALUE not in text and "PRIVATE KEY" not in text
        for s in keys:
            assert s["data"]["tls.key"][30:90] not in text


def test_report_offline_and_online_match_known_tree(
    kube: Kube, stack: Any, spaces: tuple[str, str], tmp_path: Path
) -> None:
    ns, keys = spaces
    foreign = make_key()[0]
    with running_controller(stack.kubeconfig, keys, [ns]) as app:
        wait_for(app.keyring.has_keys, 60, "key")
        tree = tmp_path / "tree"
        tree.mkdir()
        for i in range(4):
            (tree / f"s{i}.yaml").write_text(to_yaml(sealed(f"s{i}", ns, cert_of(app))))
        (tree / "foreign.yaml").write_text(to_yaml(sealed("foreign", ns, foreign.public_key())))
        online = run_sealkit(
            "keys", "report", str(tree), "--controller-url", app.api.url, "-o", "json"
        )
        assert online.returncode == 1, online.stderr
        out = json.loads(online.stdout)
        by_name = {r["name"]: r for r in out["sealedSecrets"]}
        assert all(by_name[f"s{i}"]["fingerprints"] == ["?"] for i in range(4))
        assert by_name["foreign"]["unopened"] == ["*"]
        secrets = kube.list_secrets(keys, KEY_LABEL)
        backup = tmp_path / "backup.yaml"
        backup.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": secrets}))
        offline = run_sealkit(
            "keys", "report", str(tree), "--recovery-private-key", str(backup), "-o", "json"
        )
        rows = {r["name"]: r for r in json.loads(offline.stdout)["sealedSecrets"]}
        fp = app.keyring.latest().fingerprint
        assert all(rows[f"s{i}"]["fingerprints"] == [fp] for i in range(4))
        assert json.loads(offline.stdout)["keys"] == {fp: 4}
        no_leak(online.stdout, online.stderr, offline.stdout, offline.stderr, keys=secrets)


def test_retire_refused_in_use_then_reencrypt_retire_restore(
    kube: Kube, stack: Any, spaces: tuple[str, str], tmp_path: Path
) -> None:
    ns, keys = spaces
    cli = ["--controller-namespace", keys, "--kubeconfig", stack.kubeconfig]
    with running_controller(
        stack.kubeconfig,
        keys,
        [ns],
        "--key-renew-period",
        "0",
        "--rate-limit",
        "50",
        "--rate-limit-burst",
        "50",
    ) as app:
        wait_for(app.keyring.has_keys, 60, "key")
        k1 = app.keyring.latest().fingerprint
        doc = sealed("app", ns, cert_of(app))
        kube.create_sealed(doc)
        wait_for(lambda: value_of(kube, ns, "app") == VALUE, 30, "unsealed")
        wait_for(lambda: usage(app, k1) == 1, 30, "usage 1")
        time.sleep(1.1)  # NotBefore has second granularity: make the second key newer for sure
        app.keys.force()
        wait_for(lambda: len(app.keyring.entries()) == 2, 60, "second key")
        k2 = app.keyring.latest().fingerprint
        metrics = ["--metrics-url", app.metrics_server.url]
        proc = run_sealkit("keys", "retire", k2, *metrics, *cli)
        assert proc.returncode == 1 and "is the newest key" in proc.stderr
        proc = run_sealkit("keys", "retire", k1, *metrics, *cli)
        assert proc.returncode == 1, proc.stderr
        assert "controller reports 1 SealedSecret(s) that open with" in proc.stderr
        # re-encrypt the tree through /v1/rotate, apply it: the old key opens nothing
        tree, old_tree = tmp_path / "tree", tmp_path / "old"
        tree.mkdir()
        (tree / "app.yaml").write_text("# app secrets\n" + to_yaml(doc))
        shutil.copytree(tree, old_tree)
        proc = run_sealkit("reencrypt-tree", str(tree), "--controller-url", app.api.url)
        assert proc.returncode == 0, proc.stderr
        text = (tree / "app.yaml").read_text()
        assert text.startswith("# app secrets\n") and text != (old_tree / "app.yaml").read_text()
        new = yaml.safe_load(text.split("\n", 1)[1])
        current = kube.get_sealed(ns, "app")
        current["spec"] = new["spec"]
        kube.replace_sealed(current)
        wait_for(lambda: usage(app, k1) == 0 and usage(app, k2) == 1, 30, "usage moved")
        proc = run_sealkit("keys", "retire", k1, *metrics, "--tree", str(old_tree), *cli)
        assert proc.returncode == 1 and "1 SealedSecret(s) in the tree" in proc.stderr
        proc = run_sealkit("keys", "retire", k1, *metrics, "--tree", str(tree), *cli)
        assert proc.returncode == 0, proc.stderr
        wait_for(lambda: app.keyring.by_fingerprint(k1) is None, 30, "k1 unloaded")
        labels = [(s["metadata"]["labels"][KEY_LABEL]) for s in kube.list_secrets(keys, KEY_LABEL)]
        assert sorted(labels) == ["active", "retired"]  # relabelled, never deleted
        proc2 = run_sealkit("keys", "restore", k1, *cli)
        assert proc2.returncode == 0, proc2.stderr
        wait_for(lambda: app.keyring.by_fingerprint(k1) is not None, 30, "k1 loaded again")
        no_leak(
            proc.stdout, proc.stderr, proc2.stderr, text, keys=kube.list_secrets(keys, KEY_LABEL)
        )


def _seal_key_secret(
    name: str, ns: str, pub: Any, labels: dict[str, str], key: Any, cert: Any
) -> dict[str, Any]:
    """A SealedSecret (for `pub`) whose template is a key-shaped Secret: what an attacker
    allowed to create SealedSecrets, but not Secrets, in the controller namespace can make."""
    from sealkit.keys import key_secret_manifest
    from sealkit.model import seal_secret

    plain = key_secret_manifest(key, cert, namespace=ns, name=name)
    plain["metadata"]["labels"] = labels
    plain["metadata"]["annotations"] = {
        "sealedsecrets.bitnami.com/skip-set-owner-references": "true"
    }
    return seal_secret(plain, pub)


def test_export_import_between_two_controllers(
    kube: Kube,
    kube_api: Any,
    stack: Any,
    spaces: tuple[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from sealkit.keys import fingerprint, private_key_pem

    caplog.set_level(logging.DEBUG, logger="controller")
    ns, keys_a = spaces
    with running_controller(stack.kubeconfig, keys_a, [ns]) as a:
        wait_for(a.keyring.has_keys, 60, "A's key")
        a_fp, a_pub = a.keyring.latest().fingerprint, cert_of(a)
        kube.create_sealed(sealed("opened-by-a", ns, a_pub))
        wait_for(lambda: value_of(kube, ns, "opened-by-a") == VALUE, 30, "A unseals")
    a_keys = kube.list_secrets(keys_a, KEY_LABEL)
    # NotBefore has whole seconds: B's key must be made in a later second than A's, or the two
    # tie and the imported key (whose Secret is created later) could sort as B's newest. Two
    # real clusters do not make their keys within the same second; two controllers started
    # back to back here (start-up is now ~0.5 s) can.
    time.sleep(1.1)
    with (
        temp_namespace(kube_api, "t-ko-kb") as keys_b,
        running_controller(stack.kubeconfig, keys_b, [ns], "--key-renew-period", "0") as b,
    ):
        cli = ["--controller-namespace", keys_b, "--kubeconfig", stack.kubeconfig]
        wait_for(b.keyring.has_keys, 60, "B's key")
        b_fp, b_pub = b.keyring.latest().fingerprint, cert_of(b)
        kube.create_sealed(sealed("for-a", ns, a_pub))
        wait_for(
            lambda: (kube.synced(ns, "for-a") or {}).get("status") == "False",
            30,
            "B cannot open A's SealedSecret yet",
        )
        cert = tmp_path / "b.pem"
        cert.write_bytes(b.keyring.latest().certificate_pem)
        out = tmp_path / "export.yaml"
        exp = run_sealkit(
            "keys",
            "export",
            "--to-cert",
            str(cert),
            "--to-namespace",
            keys_b,
            "-w",
            str(out),
            "--controller-namespace",
            keys_a,
            "--kubeconfig",
            stack.kubeconfig,
        )
        assert exp.returncode == 0, exp.stderr
        # step 1: the controller unseals the export into a pending Secret, which it does not load
        imp = run_sealkit("keys", "import", str(out), *cli)
        assert imp.returncode == 0, imp.stderr
        assert f"key {a_fp} unsealed, pending" in imp.stderr
        pending = kube.get_secret(keys_b, f"key-import-{a_keys[0]['metadata']['name']}")
        assert pending is not None and KEY_LABEL not in pending["metadata"]["labels"]
        assert not pending["metadata"].get("ownerReferences")
        time.sleep(2)
        assert b.keyring.by_fingerprint(a_fp) is None
        # attacks from someone who may create SealedSecrets in B's key namespace:
        # (a) a template with the active key label is still refused by the guard
        evil, evil_cert = make_key()
        kube.create_sealed(
            _seal_key_secret("evil-key", keys_b, b_pub, {KEY_LABEL: "active"}, evil, evil_cert)
        )
        cond = wait_for(lambda: kube.synced(keys_b, "evil-key"), 30, "guard refusal")
        assert (
            cond["status"] == "False"
            and "refusing to write a sealing-key Secret" in cond["message"]
        )
        assert kube.get_secret(keys_b, "evil-key") is None
        # (b) a well-formed pending Secret nobody asked for is left pending
        kube.create_sealed(
            _seal_key_secret(
                "planted", keys_b, b_pub, {"sealkit.dev/key-import": "pending"}, evil, evil_cert
            )
        )
        wait_for(lambda: kube.get_secret(keys_b, "planted"), 30, "planted pending Secret")
        # (c) a malformed one (key and certificate do not match) is refused in one line
        other, _ = make_key()
        mkey, mcert = make_key()
        bad = _seal_key_secret(
            "mismatch", keys_b, b_pub, {"sealkit.dev/key-import": "pending"}, mkey, mcert
        )
        kube.create_sealed(bad)
        wait_for(lambda: kube.get_secret(keys_b, "mismatch"), 30, "mismatch Secret")
        broken = kube.get_secret(keys_b, "mismatch")
        broken["data"]["tls.key"] = base64.b64encode(private_key_pem(other)).decode()
        kube.core.replace_namespaced_secret("mismatch", keys_b, broken)
        refused = run_sealkit(
            "keys", "import", "--activate", "--fingerprint", fingerprint(mkey.public_key()), *cli
        )
        assert refused.returncode == 1
        assert refused.stderr.count("\n") == 1 and "tls.crt does not match tls.key" in (
            refused.stderr
        ), refused.stderr
        # step 2: activation, by someone who may write Secrets in B's key namespace
        act = run_sealkit("keys", "import", "--activate", str(out), *cli)
        assert act.returncode == 0, act.stderr
        assert f"activated key {a_fp}" in act.stderr
        assert "planted" in act.stderr and "left pending" in act.stderr
        wait_for(lambda: b.keyring.by_fingerprint(a_fp) is not None, 30, "B loads A's key")
        evil_fp = fingerprint(evil.public_key())
        assert b.keyring.by_fingerprint(evil_fp) is None
        assert kube.get_secret(keys_b, "planted")["metadata"]["labels"] == {
            "sealkit.dev/key-import": "pending"
        }
        # the import SealedSecret is gone, the key Secret stays (no ownerReference)
        name = f"key-import-{a_keys[0]['metadata']['name']}"
        assert kube.get_sealed(keys_b, name) is None
        time.sleep(2)
        key_secret = kube.get_secret(keys_b, name)
        assert key_secret["metadata"]["labels"] == {KEY_LABEL: "active"}
        assert not key_secret["metadata"].get("ownerReferences")
        assert b.keyring.latest().fingerprint == b_fp  # B still seals with its own key
        wait_for(lambda: value_of(kube, ns, "for-a") == VALUE, 30, "B opens A's SealedSecret")
        kube.delete_secret(ns, "opened-by-a")  # B re-creates it: the same SealedSecret opens
        wait_for(lambda: value_of(kube, ns, "opened-by-a") == VALUE, 30, "re-created by B")
        # a second run changes nothing
        again = run_sealkit("keys", "import", "--activate", str(out), *cli)
        assert again.returncode == 0 and "already active" in again.stderr, again.stderr
        assert kube.get_sealed(keys_b, name) is None  # not re-created for a key already there
        events = json.dumps(kube.events(keys_b)) + json.dumps(kube.events(ns))
        logs = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("controller"))
        assert "refusing to write a sealing-key Secret" in logs
        no_leak(
            out.read_text(),
            exp.stdout,
            exp.stderr,
            imp.stdout,
            imp.stderr,
            refused.stdout,
            refused.stderr,
            act.stdout,
            act.stderr,
            again.stderr,
            events,
            logs,
            keys=a_keys
            + kube.list_secrets(keys_b, KEY_LABEL)
            + [broken, kube.get_secret(keys_b, "planted")],
        )
