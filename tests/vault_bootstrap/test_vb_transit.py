"""Transit for the controller's key wrapping, configured by vault-bootstrap on a real OpenBao:
examples/vault-bootstrap/transit.yaml creates the engine, the key (not exportable, not
deletable), the controller's Kubernetes-auth role and its policy; a re-run makes 0 writes;
then a real sealkit-controller with `--key-wrap` logs in with its ServiceAccount's token
through that role, stores its key wrapped and unseals, and the role can use nothing else."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import pytest
from test_vb_kube import _service_account, _token, rbac  # noqa: F401 - rbac is a fixture
from vb_helpers import ROOT, chapter_env, hvac_client, require, run_cli

sys.path.insert(0, str(ROOT / "tests" / "controller"))
from _ctl import Kube, ensure_crd, running_controller, temp_namespace, wait_for  # noqa: E402

from controller.keyring import KEY_LABEL  # noqa: E402
from sealkit.certs import load_public_key  # noqa: E402
from sealkit.model import seal_secret  # noqa: E402

TRANSIT = str(ROOT / "examples" / "vault-bootstrap" / "transit.yaml")
MOUNT, KEY, ROLE = "sealkit-transit", "sealkit-controller", "sealed-secrets-controller"
VALUE = "transit-bootstrap-known-plaintext-8812"


def test_transit_bootstrap_then_controller_wraps_through_the_role(
    stack: Any,
    kube_api: Any,
    private_bao: Any,
    rbac: Any,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hvac

    require(stack, "kube")
    ensure_crd(kube_api)
    kube = Kube(kube_api)
    with temp_namespace(kube_api, "t-vbt") as keys, temp_namespace(kube_api, "t-vbt-a") as ns:
        _service_account(kube_api, keys, ROLE)
        rbac(keys, ROLE)
        env = chapter_env(
            stack, private_bao, ca_file=stack.ca_file, SEALKIT_CONTROLLER_NAMESPACE=keys
        )
        plan = run_cli("plan", "-f", TRANSIT, env=env)
        assert plan.code == 2, plan.output
        assert f"+ sys/mounts/{MOUNT}  [secrets engine]" in plan.stdout
        assert f"+ {MOUNT}/keys/{KEY}  [transit key]" in plan.stdout
        applied = run_cli("apply", "-f", TRANSIT, env=env)
        assert applied.code == 0, applied.output
        again = run_cli("apply", "-f", TRANSIT, env=env)
        assert again.code == 0 and "Apply complete: 0 writes." in again.stdout, again.output
        assert run_cli("plan", "-f", TRANSIT, env=env).code == 0

        root = hvac_client(private_bao.addr, private_bao.token)
        settings = root.read(f"{MOUNT}/keys/{KEY}")["data"]
        assert settings["type"] == "aes256-gcm96"
        assert settings["exportable"] is False and settings["deletion_allowed"] is False
        assert settings["allow_plaintext_backup"] is False

        # drift on the key's settings is shown and repaired, never by recreating the key
        root.write(f"{MOUNT}/keys/{KEY}/config", deletion_allowed=True)
        drift = run_cli("plan", "-f", TRANSIT, env=env)
        assert drift.code == 2 and "deletion_allowed: true -> false" in drift.stdout, drift.output
        assert run_cli("apply", "-f", TRANSIT, env=env).code == 0
        assert root.read(f"{MOUNT}/keys/{KEY}")["data"]["deletion_allowed"] is False
        assert root.read(f"{MOUNT}/keys/{KEY}")["data"]["latest_version"] == 1

        # the controller: its ServiceAccount's token, the role, no Vault token at all
        jwt = tmp_path / "sa-token"
        jwt.write_text(_token(kube_api, keys, ROLE))
        monkeypatch.setenv("VAULT_ADDR", private_bao.addr)
        monkeypatch.delenv("VAULT_TOKEN", raising=False)
        monkeypatch.setenv("SEALKIT_VAULT_JWT_FILE", str(jwt))
        wrap = [
            "--key-wrap",
            f"transit:{MOUNT}/{KEY}",
            "--key-wrap-vault-role",
            ROLE,
            "--key-renew-period",
            "0",
        ]
        with running_controller(stack.kubeconfig, keys, [ns], *wrap) as app:
            wait_for(app.keyring.has_keys, 60, "a wrapped key")
            stored = kube.list_secrets(keys, KEY_LABEL)
            assert len(stored) == 1
            tls_key = base64.b64decode(stored[0]["data"]["tls.key"])
            assert tls_key.startswith(b"vault:v1:") and b"PRIVATE KEY" not in tls_key
            pem = app.keyring.latest().certificate_pem
            doc = seal_secret(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "one", "namespace": ns},
                    "stringData": {"v": VALUE},
                },
                load_public_key(pem),
            )
            kube.create_sealed(doc)

            def value() -> str | None:
                s = kube.get_secret(ns, "one")
                return base64.b64decode(s["data"]["v"]).decode() if s else None

            wait_for(lambda: value() == VALUE, 30, "unsealed with the wrapped key")

        # least privilege: the role's token encrypts with this key and nothing else
        login = hvac.Client(url=private_bao.addr, token="")
        login.auth.kubernetes.login(ROLE, jwt.read_text(), mount_point="kubernetes")
        login.secrets.transit.encrypt_data(name=KEY, plaintext="eA==", mount_point=MOUNT)
        root.secrets.transit.create_key(name="other", mount_point=MOUNT)
        with pytest.raises(hvac.exceptions.Forbidden):
            login.secrets.transit.encrypt_data(name="other", plaintext="eA==", mount_point=MOUNT)
        with pytest.raises(hvac.exceptions.Forbidden):
            login.read(f"{MOUNT}/keys/{KEY}")
        # a key made by hand next to ours is not ours: the re-run still writes nothing
        last = run_cli("apply", "-f", TRANSIT, env=env)
        assert "Apply complete: 0 writes." in last.stdout, last.output
        for text in (plan.output, applied.output, again.output, drift.output, last.output):
            assert private_bao.token not in text and jwt.read_text() not in text
