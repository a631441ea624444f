"""No secret value in any log line, event, status message or metric of a controller run.

Runs the real `sealkit-controller` process (JSON logs at DEBUG) through successes and every
failure path with known plaintexts, then greps everything it produced for them (raw, base64,
upper-cased and quoted forms).
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from _ctl import (
    Kube,
    controller_args,
    ensure_crd,
    require_no_cluster_wide_controller,
    temp_namespace,
    wait_for,
)

from sealkit.model import seal_secret

pytestmark = pytest.mark.stack

KNOWN = {
    "password": "Leak-Canary-p4ss-0001",
    "dsn": "leak-canary-dsn-0002",
    "b64": base64.b64encode(b"leak-canary-inner-0003").decode(),
}


def forms(value: str) -> set[str]:
    out = {value, value.upper(), value.lower(), base64.b64encode(value.encode()).decode()}
    if value == KNOWN["b64"]:
        out.add(base64.b64decode(value).decode())
    return out


def test_no_secret_value_anywhere(
    kube_api: Any, stack: Any, namespace: str, tmp_path: Path
) -> None:
    ensure_crd(kube_api)
    require_no_cluster_wide_controller(stack.kubeconfig)
    kube = Kube(kube_api)
    ns = namespace
    with temp_namespace(kube_api, "t-ctl-k") as keys:
        argv = controller_args(
            stack.kubeconfig, keys, [ns], "--log-format", "json", "--log-level", "DEBUG"
        )
        api_port = argv[argv.index("--listen-addr") + 1].rsplit(":", 1)[1]
        metrics_port = argv[argv.index("--listen-metrics-addr") + 1].rsplit(":", 1)[1]
        env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
        out, err = (tmp_path / "stdout.log").open("wb"), (tmp_path / "stderr.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller.main", *argv],
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:

            def cert() -> bytes | None:
                try:
                    return urllib.request.urlopen(
                        f"http://127.0.0.1:{api_port}/v1/cert.pem", timeout=2
                    ).read()
                except OSError:
                    return None

            from sealkit.certs import load_public_key

            pub = load_public_key(wait_for(cert, 60, "controller serving its cert"))

            def sealed(name: str, **template: Any) -> dict[str, Any]:
                obj = seal_secret(
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": name, "namespace": ns},
                        "stringData": dict(KNOWN),
                    },
                    pub,
                )
                obj["spec"]["template"].update(template)
                return obj

            kube.create_sealed(sealed("ok", data={"url": "x:{{ .password }}@{{ .dsn | upper }}"}))
            kube.create_sealed(
                sealed(
                    "tmpl-bad",
                    data={
                        "x": "{{ .password | b64dec }}",
                        "y": "{{ .password | sha256sum }}",
                        "z": '{{ printf "%x" .dsn }}',
                    },
                )
            )
            tampered = sealed("tampered")
            tampered["spec"]["encryptedData"]["dsn"] = tampered["spec"]["encryptedData"][
                "password"
            ]  # a valid blob under the wrong key name still opens: swap labels
            tampered["metadata"]["name"] = "renamed"  # strict label mismatch -> cannot open
            kube.create_sealed(tampered)
            kube.create_secret(
                {"metadata": {"name": "taken", "namespace": ns}, "stringData": {"other": "x"}}
            )
            kube.create_sealed(sealed("taken"))
            kube.create_sealed(sealed("imm", immutable=True))
            wait_for(lambda: kube.get_secret(ns, "ok"), 30, "ok Secret")
            wait_for(lambda: kube.get_secret(ns, "imm"), 30, "imm Secret")
            for name in ("tmpl-bad", "renamed", "taken"):
                wait_for(lambda n=name: kube.synced(ns, n), 30, f"status of {name}")
            # an immutable Secret whose value changes: the apiserver refuses the update
            obj = kube.get_sealed(ns, "imm")
            obj["spec"] = seal_secret(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "imm", "namespace": ns},
                    "stringData": {"password": KNOWN["password"] + "-v2"},
                },
                pub,
            )["spec"]
            obj["spec"]["template"]["immutable"] = True
            kube.replace_sealed(obj)
            wait_for(
                lambda: (kube.synced(ns, "imm") or {}).get("status") == "False",
                30,
                "immutable update refused",
            )
            metrics = (
                urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
                .read()
                .decode()
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
            out.close()
            err.close()
        logs = (tmp_path / "stdout.log").read_text() + (tmp_path / "stderr.log").read_text()
        events = kube.events(ns)
        statuses = [
            c.get("message", "")
            for o in kube.list_sealed(ns)
            for c in (o.get("status") or {}).get("conditions") or []
        ]
        assert "reconciled" in logs and "failed" in logs  # the run did log
        assert any("not supported" in m for m in statuses)
        assert any("immutable" in m for m in statuses), statuses
        corpus = "\n".join([logs, repr(events), "\n".join(statuses), metrics])
        for value in list(KNOWN.values()) + [KNOWN["password"] + "-v2"]:
            for form in forms(value):
                assert form not in corpus, f"a secret value ({len(form)} chars) leaked"
